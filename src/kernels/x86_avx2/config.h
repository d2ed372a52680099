/* Tuning constants of the AVX2 kernels. */
#ifndef RA_X86_AVX2_CONFIG_H
#define RA_X86_AVX2_CONFIG_H

/* Positions per tile and per split-KV chunk (as the portable kernel). */
#define RA_AVX2_TILE 32
#define RA_AVX2_DEFAULT_SPLIT 2048

/* Register tiles: QK keeps GT heads x RA_AVX2_QK_ACC / GT positions in flight, p.V
 * GT heads x 16 features x RA_AVX2_PV_POS / GT positions: 8 of the 16 ymm registers hold
 * accumulators either way, the rest q, K/V and p. */
#define RA_AVX2_QK_ACC 8
#define RA_AVX2_PV_POS 4

#endif
