/* Tuning constants of the NEON kernels (not yet measured on arm64 hardware: the values are the
 * AVX2 kernel's scheme scaled to AArch64's 32 vector registers). */
#ifndef RA_ARM_NEON_CONFIG_H
#define RA_ARM_NEON_CONFIG_H

/* Positions per tile and per split-KV chunk (as the portable kernel). */
#define RA_NEON_TILE 32
#define RA_NEON_DEFAULT_SPLIT 2048

/* Register tiles: QK keeps GT heads x RA_NEON_QK_ACC / GT positions in flight, p.V
 * GT heads x 16 features x RA_NEON_PV_POS / GT positions (16 accumulators). */
#define RA_NEON_QK_ACC 8
#define RA_NEON_PV_POS 4

#endif
