/* Every tuning constant of the AVX-512 kernels, with the reason for its value; the
 * measurements behind them, and the bench commands that reproduce them, are in
 * docs/performance.md ("AVX-512 kernel constants"). */
#ifndef RA_X86_AVX512_CONFIG_H
#define RA_X86_AVX512_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "raggedattn.h"

/* Positions per tile of the head-tile steps: the per-tile work (reductions, alpha, the o
 * update) is paid once per tile; 16 and 64 were no faster. A build-time knob. */
#ifndef TILE
#define TILE 32
#endif

/* Positions per split-KV chunk when the caller asks for automatic splitting. */
#define RA_AVX512_DEFAULT_SPLIT 2048

/* Prefetch spacing of the head-tile steps: a single-head tile issues its share of the next
 * tile's lines per K/V row, wider tiles (and f16 rows, whose widening already loads the core)
 * per loop step. */
#define PF_FINE_QK(GT, kdt) ((GT) == 1 && (kdt) != RA_DTYPE_F16)
#define PF_FINE_PV(GT, vdt) ((GT) == 1 && (vdt) != RA_DTYPE_F16)

/* Head-tile widths: tiles of 8 heads where K is not read as bf16 pairs (the split q of 8
 * heads leaves too few registers there), else 4, 2, 1. */
#define WITH8(kdt) (!RA_PAIRED(kdt))

/* The p.V loop: positions in flight and features per pass (16 accumulators either way). */
#define PV_U(GT) ((GT) == 8 ? 1 : 4 / (GT))
#define PV_FW(GT) ((GT) == 8 ? 32 : 64)

/* Row-order walk: how many positions ahead it prefetches (the hardware prefetchers pick a
 * stream up late, and pages break the streams); of each page, the rows that start in its
 * first PF_HEAD_BYTES (the hardware prefetchers follow a longer page); and the length of a
 * head's row from which prefetches go head by head beside the work, and contiguous caches
 * with G = 1 are prefetched too (shorter rows: one burst per position, paged caches only). */
#ifndef RA_AVX512_ROWS_AHEAD
#define RA_AVX512_ROWS_AHEAD 8
#endif
/* How many positions ahead of its work the walk starts the page walks of the K and V rows (a
 * prefetch of each row's first line), farther ahead than its line prefetches. */
#ifndef RA_AVX512_ROWS_TRANSLATE
#define RA_AVX512_ROWS_TRANSLATE 24
#endif
#ifndef RA_AVX512_ROWS_PF_HEAD_BYTES
#define RA_AVX512_ROWS_PF_HEAD_BYTES 65536
#endif
#ifndef RA_AVX512_ROWS_SPREAD_BYTES
#define RA_AVX512_ROWS_SPREAD_BYTES 256
#endif

/* Rows per KV head from which the wide steps (avx512_wide.c) serve: at 16 and 32 rows their
 * widening pass costs what the rows in the lanes save, from 64 on they are faster. */
#ifndef RA_AVX512_WIDE_MIN_ROWS
#define RA_AVX512_WIDE_MIN_ROWS 64
#endif

/* Which shapes the row-order walk serves (the head-tile walk the rest): G = 1 and 2 for every
 * dtype, G = 4 for f32 K and V only; with 16-bit K/V its widening makes the walk
 * compute-bound at G = 4. */
static inline bool ra__avx512_rows_pay(int64_t G, ra_dtype k, ra_dtype v)
{
    return G == 1 || G == 2 || (G == 4 && k == RA_DTYPE_F32 && v == RA_DTYPE_F32);
}

#endif
