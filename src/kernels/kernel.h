/* Block kernels: one KV head's group of G query heads over one tile of T positions.
 *
 * The decode engine (src/engine/walk.c) walks a work item's positions tile by tile and, for every
 * KV head of the item, calls three steps on the same ra__tile:
 *   qk      s[g][t] = scale * dot(q[g], k[t])                     (K's dtype picks the variant)
 *   softmax online-softmax update of m, l and o; s becomes p = exp(s - m_new)
 *   pv      o[g] += sum_t p[g][t] * v[t]                          (V's dtype picks the variant)
 * A family may instead fuse the three into one step, keeping the logits in registers, or take
 * a whole work item in row order (ra__rows below).
 * Each kernel family (generic/: portable C and BLAS; x86_avx2/, x86_avx512/, arm_neon/) fills
 * one ra__kernel_table; dispatch.c picks a table from the CPU's features. */
#ifndef RA_KERNEL_H
#define RA_KERNEL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "raggedattn.h"

/* Kernel tables index their steps by the K and V ra_dtype (f32, f16, bf16, and the quantized
 * i8, fp8 e4m3 and e5m2); a NULL entry is a combination the family does not run. */
#define RA__KV_DTYPES 7

typedef struct ra__tile {
    int64_t G, D; /* query heads in the group, head dimension */
    int64_t T;    /* positions in this tile, 1..tile_max */
    const float *q; /* [G][D] f32, contiguous (converted once per call) */
    const uint16_t *qb; /* [G][D] the same q as bf16 bits, for step_bf16_dot only */
    const float *qp;    /* [G][qp_ld] q in the family's own layout (prepare_q), else NULL */
    int64_t qp_ld;
    const void *k;  /* first position of the tile; element strides below */
    int64_t k_st, k_sd;
    const void *v;
    int64_t v_st, v_sd;
    /* For the step_rows steps (paged calls): position i's row of this head is at k_rows[i] +
     * k_row_off bytes (v_rows[i] + v_row_off), not at k + i * k_st: the rows of the item's
     * first head, filled once per tile, so that a tile is read where its pages are. */
    const char *const *k_rows, *const *v_rows;
    size_t k_row_off, v_row_off;
    float scale;
    /* Score modifiers of the logits before the softmax (ra_options_set_softcap, _alibi):
     * cap 0 is off; slopes [G] of this KV head's query heads, or NULL. Row i of the tile is
     * position t_first + i of its sequence, whose last position is last_pos. */
    float softcap;
    const float *slopes;
    int64_t t_first, last_pos;
    /* A causal group (wide steps only, ra__problem.causal_g): row r of the group sees only
     * the positions before causal_end0 + r / causal_g; causal_g 0: every position. */
    int64_t causal_g, causal_end0;
    /* Quantized K/V: the scale of each of the tile's positions for this KV head (kernels read
     * the stored values q; the logits are multiplied by k_scales[i] before the modifiers, and
     * the probabilities by v_scales[i] after the sum, before the p.V); NULL otherwise. */
    const float *k_scales, *v_scales;
    float *s; /* [G][s_ld] logits, then probabilities */
    int64_t s_ld;
    float *o;      /* [G][D] running un-normalized output (contiguous) */
    float *m, *l;  /* [G] running max and denominator */
    float *conv;   /* [tile_max][D] f32 scratch for kernels that convert K/V first */
    float *row_max; /* [G], 64-byte aligned: the wide steps' max of each row's logits in the
                     * tile, else NULL */
    /* What of later tiles to prefetch while this one computes: a range, bytes from p (the
     * plain steps; of a paged call, the share's first run of rows), or the address of each
     * cache line, lines[0 .. n_lines) (the step_rows steps, and the core's up-front prefetch
     * of a paged call); p and lines NULL: nothing. Kernels that set self_prefetch in their
     * table spread it over their loops; for the others the core issues it up front. */
    struct ra__pf_target {
        const char *p;
        size_t bytes;
        const char *const *lines;
        size_t n_lines;
    } pf_k, pf_v;
} ra__tile;

typedef struct ra__pf_target ra__pf_target;

/* Locality hint of the K/V prefetches: into L2 (prefetcht1); the hints that target L1 or
 * bypass the caches gain nothing (docs/performance.md). */
#ifndef RA_PF_HINT
#define RA_PF_HINT 2
#endif

/* The walks also prefetch one line per 4 KiB memory page of K/V rows well ahead of the line
 * prefetches, so that the page-table walk is done before a line prefetch waits on it; in a
 * contiguous cache only where rows lie at least this many bytes apart (docs/performance.md). */
#ifndef RA_TRANSLATE_MIN_ROW
#define RA_TRANSLATE_MIN_ROW 512
#endif

/* Prefetches of a target spread over a loop of n steps, so that a tile's prefetches overlap
 * its compute instead of stalling it in one burst: step i asks for its share of whole cache
 * lines into L2. (The division happens once per loop, not per step.) The row-pointer steps'
 * targets are lists of line addresses, so that their step is as small as a range's: the
 * kernel's loop keeps its registers for the arithmetic. */
typedef struct ra__prefetcher {
    const char *p;           /* lines [0, lines) from p ... */
    const char *const *list; /* ... or at list[0 .. lines) */
    size_t lines, per;
} ra__prefetcher;

/* Lines [total*num_a/den, total*num_b/den) of x over n steps. */
static inline ra__prefetcher ra__prefetcher_part(const ra__pf_target *x, size_t num_a,
                                                 size_t num_b, size_t den, int64_t n)
{
    ra__prefetcher pf = {NULL, NULL, 0, 0};
    const size_t total = x->lines ? x->n_lines : x->p ? (x->bytes + 63) >> 6 : 0;
    const size_t a = total * num_a / den, b = total * num_b / den;
    pf.lines = b > a && n > 0 ? b - a : 0;
    if (!pf.lines)
        return pf;
    if (x->lines)
        pf.list = x->lines + a;
    else
        pf.p = x->p + (a << 6);
    pf.per = (pf.lines + (size_t)n - 1) / (size_t)n;
    return pf;
}

static inline ra__prefetcher ra__prefetcher_init(const ra__pf_target *x, int64_t n)
{
    return ra__prefetcher_part(x, 0, 1, 1, n);
}

/* Step i of a range target (from p). */
static inline void ra__prefetch_step(const ra__prefetcher *pf, int64_t i)
{
    size_t lo = (size_t)i * pf->per, hi = lo + pf->per < pf->lines ? lo + pf->per : pf->lines;
    for (size_t ln = lo; ln < hi; ln++)
        __builtin_prefetch(pf->p + (ln << 6), 0, RA_PF_HINT);
}

/* Step i of a list target (lines). */
static inline void ra__prefetch_step_list(const ra__prefetcher *pf, int64_t i)
{
    size_t lo = (size_t)i * pf->per, hi = lo + pf->per < pf->lines ? lo + pf->per : pf->lines;
    for (size_t ln = lo; ln < hi; ln++)
        __builtin_prefetch(pf->list[ln], 0, RA_PF_HINT);
}

/* A kernel that splits a KV head's G query heads into register tiles gives the tile of heads
 * g0..g0+gn-1 lines [lines*g0/G, lines*(g0+gn)/G) of a prefetch target, over its n loop
 * iterations, so that every head tile issues its share at an even rate. */
static inline ra__prefetcher ra__prefetcher_for_heads(const ra__pf_target *x, int64_t g0,
                                                      int64_t gn, int64_t G, int64_t n)
{
    return ra__prefetcher_part(x, (size_t)g0, (size_t)(g0 + gn), (size_t)G, n);
}

typedef void (*ra__tile_fn)(const ra__tile *t);

/* A whole work item in row order: every KV head of a position before the next position, so
 * that a [B,S,Hkv,D] cache is read as two plain streams (K and V rows front to back), which
 * the hardware prefetchers follow at full bandwidth; a walk of one head at a time over a tile
 * jumps a row stride per position and reaches about half of it (Zen 4, one core). */
typedef struct ra__rows {
    int64_t T;             /* positions in the item */
    int64_t tile;          /* positions per online-softmax tile, 1..RA__ROWS_TILE_MAX */
    int64_t Hkv, G, D;     /* KV heads of the item, query heads per KV head, head dimension */
    const void *k, *v;     /* the item's first position and first KV head; of a paged
                            * cache, the pool's first page at that head */
    int64_t k_st, k_sh;    /* element strides of K: position, KV head (features are unit) */
    int64_t v_st, v_sh;
    /* A paged cache (pages != NULL): item position i is row (t_first + i) % page_size of page
     * pages[(t_first + i) / page_size], pages k_sp and v_sp elements apart. */
    const int32_t *pages;
    int64_t page_size, t_first, k_sp, v_sp;
    /* Quantized K/V: the scale of item position i, KV head j of the item, is at
     * k_scale + i * ks_st + j * ks_sh (of a paged cache: through the pages, ks_sp apart);
     * NULL otherwise. Likewise V. */
    const float *k_scale, *v_scale;
    int64_t ks_st, ks_sh, ks_sp, vs_st, vs_sh, vs_sp;
    const float *q;        /* [Hkv*G][D] f32, 64-byte aligned (kernels load whole rows) */
    float scale;
    float softcap;         /* score modifiers as in ra__tile: slopes [Hkv*G] or NULL */
    const float *slopes;
    int64_t last_pos;      /* the sequence's last position (item position i is t_first + i) */
    float *o, *m, *l;      /* [Hkv*G][D] (64-byte aligned), [Hkv*G], [Hkv*G]: the state */
    float *s;              /* ra__rows_scratch_floats(Hkv*G, D) floats, 64-byte aligned */
} ra__rows;

/* Positions per tile of a row-order item: its logits, the phases of its walk. Long phases
 * keep each stream running (see avx512_rows.c). */
#define RA__ROWS_TILE_MAX 256

/* A tile of logits and the rescale factors, each row padded to whole 16-float vectors; then
 * q and o in the kernel's chunk order. -1 when it does not fit in int64_t. */
static inline int64_t ra__rows_scratch_floats(int64_t hq, int64_t D)
{
    int64_t hp = (hq + 15) & ~(int64_t)15, dp = (D + 15) & ~(int64_t)15, a, b;
    if (__builtin_mul_overflow(RA__ROWS_TILE_MAX + 1, hp, &a) ||
        __builtin_mul_overflow(2 * hq, dp, &b) || __builtin_add_overflow(a, b, &a))
        return -1;
    return a;
}

typedef void (*ra__rows_fn)(const ra__rows *r);

/* Covers the G query heads of a group with register tiles of 8 (when with8 holds), then 4,
 * then 2, then 1 heads: fn(t, first_head, heads_in_tile, dtype), where heads_in_tile is a
 * literal so that an inlined fn is specialized for it. */
#define RA__FOR_HEAD_TILES_8(fn, t, dt, with8)                                                 \
    do {                                                                                       \
        int64_t g_ = 0;                                                                        \
        for (; (with8) && g_ + 8 <= (t)->G; g_ += 8)                                           \
            fn(t, g_, 8, dt);                                                                  \
        for (; g_ + 4 <= (t)->G; g_ += 4)                                                      \
            fn(t, g_, 4, dt);                                                                  \
        for (; g_ + 2 <= (t)->G; g_ += 2)                                                      \
            fn(t, g_, 2, dt);                                                                  \
        for (; g_ < (t)->G; g_++)                                                              \
            fn(t, g_, 1, dt);                                                                  \
    } while (0)
#define RA__FOR_HEAD_TILES(fn, t, dt) RA__FOR_HEAD_TILES_8(fn, t, dt, 0)

typedef struct ra__kernel_table {
    ra_kernel id;
    int64_t tile_max;        /* positions per tile the kernel is built for */
    int64_t default_split;   /* positions per split-KV chunk when the caller says 0 (auto) */
    bool all_heads_per_item; /* walk every KV head of a token row together (row order) */
    bool needs_unit_d;       /* requires k_sd == v_sd == 1; else the core uses portable */
    bool needs_conv;         /* uses ra__tile.conv */
    bool self_prefetch;      /* consumes ra__tile.pf_* itself */
    /* A second copy of q in the family's own layout, for the K dtypes marked in
     * q_pairs_for_k (ra__tile.qp): q_ld(D) floats per head row, written by prepare_q from
     * the f32 row (NULL: the family reads q as f32 only). */
    bool q_pairs_for_k[RA__KV_DTYPES];
    int64_t (*q_ld)(int64_t D);
    void (*prepare_q)(const float *q, int64_t D, float *row);
    bool row_pointers;       /* has step_rows (and step_bf16_dot_rows where it has dot steps) */
    /* Either the three steps (qk indexed by K's ra_dtype, pv by V's) ... */
    ra__tile_fn qk[RA__KV_DTYPES];
    ra__tile_fn softmax;
    ra__tile_fn pv[RA__KV_DTYPES];
    /* ... or one fused step [K dtype][V dtype] that does all three (NULL: use the three). */
    ra__tile_fn step[RA__KV_DTYPES][RA__KV_DTYPES];
    /* Fused steps [V dtype] for q and K both bf16, with q also in ra__tile.qb (NULL: none). */
    ra__tile_fn step_bf16_dot[RA__KV_DTYPES];
    /* The fused steps again for paged calls: rows through ra__tile.k_rows/v_rows, prefetch
     * targets as lists of lines (ra__prefetch_step_list). Kernels without them get a paged tile
     * that spans runs of rows gathered into a dense buffer. */
    ra__tile_fn step_rows[RA__KV_DTYPES][RA__KV_DTYPES];
    ra__tile_fn step_bf16_dot_rows[RA__KV_DTYPES];
    /* Whole items in row order [K dtype][V dtype] where rows_serve(G, K dtype, V dtype) says
     * they pay (NULL: none); the core uses them when the K/V rows of an item's heads are
     * contiguous. */
    ra__rows_fn rows[RA__KV_DTYPES][RA__KV_DTYPES];
    bool (*rows_serve)(int64_t G, ra_dtype k, ra_dtype v);
    /* Steps [K dtype][V dtype] for groups of whole 16-row blocks (G % 16 == 0), contiguous or
     * paged (NULL: none); they read q from ra__tile.qp as wide_q writes it for each 16
     * consecutive rows (wide_ld(D) floats per row, a multiple of 16; qp 64-byte aligned), and
     * use ra__tile.conv (64-byte aligned), whose floats are wide_ld(D) times the tile rounded
     * up to 16, and ra__tile.row_max (G floats, 64-byte aligned). */
    ra__tile_fn step_wide[RA__KV_DTYPES][RA__KV_DTYPES];
    /* Rows per KV head from which the wide steps beat the fused ones (a multiple of 16): their
     * widening of each tile is then shared by enough row blocks. */
    int64_t wide_min_rows;
    int64_t (*wide_ld)(int64_t D);
    void (*wide_q)(const float *q, int64_t D, ra_dtype k, float *qt);
} ra__kernel_table;

extern const ra__kernel_table ra__kernels_portable;
extern const ra__kernel_table ra__kernels_blas;
extern const ra__kernel_table ra__kernels_avx2;
extern const ra__kernel_table ra__kernels_avx512;
extern const ra__kernel_table ra__kernels_avx512_bf16;
extern const ra__kernel_table ra__kernels_neon;

/* The AVX-512 row-order items (avx512_rows.c), named in the AVX-512 tables. */
void ra__avx512_rows_F32_F32(const ra__rows *r);
void ra__avx512_rows_F32_F16(const ra__rows *r);
void ra__avx512_rows_F32_BF16(const ra__rows *r);
void ra__avx512_rows_F16_F32(const ra__rows *r);
void ra__avx512_rows_F16_F16(const ra__rows *r);
void ra__avx512_rows_F16_BF16(const ra__rows *r);
void ra__avx512_rows_BF16_F32(const ra__rows *r);
void ra__avx512_rows_BF16_F16(const ra__rows *r);
void ra__avx512_rows_BF16_BF16(const ra__rows *r);
void ra__avx512_rows_I8_I8(const ra__rows *r);
void ra__avx512_rows_FP8_E4M3_FP8_E4M3(const ra__rows *r);
void ra__avx512_rows_FP8_E5M2_FP8_E5M2(const ra__rows *r);

/* The AVX-512 steps for wide groups (avx512_wide.c), named in the AVX-512 tables. */
void ra__avx512_wide_F32_F32(const ra__tile *t);
void ra__avx512_wide_F32_F16(const ra__tile *t);
void ra__avx512_wide_F32_BF16(const ra__tile *t);
void ra__avx512_wide_F16_F32(const ra__tile *t);
void ra__avx512_wide_F16_F16(const ra__tile *t);
void ra__avx512_wide_F16_BF16(const ra__tile *t);
void ra__avx512_wide_BF16_F32(const ra__tile *t);
void ra__avx512_wide_BF16_F16(const ra__tile *t);
void ra__avx512_wide_BF16_BF16(const ra__tile *t);
int64_t ra__avx512_wide_ld(int64_t D);
/* q^T of 16 consecutive rows q [16][D]: qt [wide_ld(D)][16], features in the order the steps
 * widen K of dtype k (bf16: per 32, the even ones, then the odd ones), zero past D. */
void ra__avx512_wide_q(const float *q, int64_t D, ra_dtype k, float *qt);

/* Whether this CPU and build can run a kernel family. */
bool ra__kernel_available(ra_kernel k);
/* AUTO -> the best available family; others unchanged. */
ra_kernel ra__kernel_resolve(ra_kernel k);
const ra__kernel_table *ra__kernel_table_for(ra_kernel resolved);
/* Whether the AVX-512 steps may use AVX512-VBMI byte tables (the CPU has it). */
bool ra__cpu_has_avx512vbmi(void);

/* The score modifiers of one logit s (see ra__tile): soft-cap, then ALiBi at distance dist. */
static inline float ra__modify_logit(float s, float cap, const float *slope, float dist)
{
    if (cap != 0.0f)
        s = cap * tanhf(s / cap);
    return slope ? s - *slope * dist : s;
}

/* The online-softmax step. exp_row sets s[i] = exp(s[i] - m) for i < n and returns their sum;
 * the portable step uses expf, a kernel family may pass a vector exp. */
typedef float (*ra__exp_row_fn)(float *s, int64_t n, float m);
void ra__softmax_step_with(const ra__tile *t, ra__exp_row_fn exp_row);
void ra__softmax_step_portable(const ra__tile *t);

#endif
