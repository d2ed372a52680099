/* Tuning constants of the generic kernels (portable C and BLAS); docs/performance.md has the
 * measurements behind the engine's shared ones. */
#ifndef RA_GENERIC_CONFIG_H
#define RA_GENERIC_CONFIG_H

/* Portable C: positions per tile (the logits of a tile stay in L1) and per split-KV chunk. */
#define RA_PORTABLE_TILE 32
#define RA_PORTABLE_DEFAULT_SPLIT 2048

/* BLAS: positions per block GEMM (two cblas_sgemm calls per tile, whose call overhead wants
 * long tiles), and no automatic split: one KV head per work item already gives the threads
 * B * Hkv items. */
#define RA_BLAS_TILE 1024
#define RA_BLAS_DEFAULT_SPLIT 0

#endif
