/* Planning a decode call: which kernel family and walk, the tile, the cut of every sequence
 * into work items (longest first), the thread team, one allocation for every buffer, and q
 * in the layouts the kernel reads. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "common/dtype.h"
#include "common/size_math.h"
#include "decode.h"
#include "engine/plan.h"
#include "status_internal.h"
#include "team.h"
#include "tensor_internal.h"

/* Elements of q (B x Hq x D) from which the team prepares it (ra__plan_prepare_q): 1 MiB of
 * f32, the q of a multi-token pass's round or of a very large decode batch. */
#ifndef RA_PREPARE_Q_TEAM_ELEMS
#define RA_PREPARE_Q_TEAM_ELEMS ((int64_t)1 << 18)
#endif

/* Longest items first balances ragged work; ties keep the natural order, so the schedule is
 * a pure function of the lengths. (Which thread runs an item never changes its result.) */
static int longest_first(const void *a, const void *b)
{
    const ra__item *x = a, *y = b;
    int64_t lx = x->t1 - x->t0, ly = y->t1 - y->t0;
    if (lx != ly)
        return lx < ly ? 1 : -1;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* Cache lines of `rows` rows of `heads` f32 rows of D elements, one page each at worst (each
 * run of rows starts and ends inside a line): rows * (ceil(heads*D*4 / 64) + 2), or -1 on
 * overflow. */
static int64_t lines_for(int64_t rows, int64_t heads, int64_t D)
{
    int64_t bytes, lines;
    if (__builtin_mul_overflow(heads, D, &bytes) || __builtin_mul_overflow(bytes, 4, &bytes) ||
        __builtin_mul_overflow(rows, bytes / 64 + (bytes % 64 != 0) + 2, &lines))
        return -1;
    return lines;
}

/* The kernel family that runs p: the one asked for (or the best), else the portable one. */
static const ra__kernel_table *table_for(const ra__problem *p)
{
    const ra__kernel_table *kt = ra__kernel_table_for(ra__kernel_resolve(p->kernel));
    const bool unit_d = p->k.sd == 1 && p->v.sd == 1;
    const bool runs_dtypes = kt->step[p->k.dtype][p->v.dtype] ||
                             (kt->qk[p->k.dtype] && kt->pv[p->v.dtype]);
    if ((kt->needs_unit_d && !unit_d) || !runs_dtypes ||
        (kt->id == RA_KERNEL_BLAS && (p->G > INT_MAX || p->D > INT_MAX)))
        kt = &ra__kernels_portable; /* same function, any layout and dtype */
    return kt;
}

/* Whether q and K both bf16 take the family's bf16-pair steps: products of bf16 are exact in
 * f32, so a kernel may multiply them as pairs (vdpbf16ps) with the same f32 sums. */
static bool takes_dot(const ra__kernel_table *kt, const ra__problem *p)
{
    return p->q.dtype == RA_DTYPE_BF16 && p->k.dtype == RA_DTYPE_BF16 &&
           kt->step_bf16_dot[p->v.dtype];
}

int64_t ra__plan_wide_rows(const ra__problem *p, bool *runs)
{
    const ra__kernel_table *kt = table_for(p);
    const bool has = kt->step_wide[p->k.dtype][p->v.dtype] != NULL;
    *runs = has && !takes_dot(kt, p);
    return has ? kt->wide_min_rows : 0;
}

ra_status ra__plan_build(const ra__problem *p, ra__plan *pl, void **block,
                         const ra__scratch *given, size_t *need)
{
    const ra__kernel_table *kt = table_for(p);
    pl->p = p;
    pl->kt = kt;
    pl->tile = p->block_size < kt->tile_max ? p->block_size : kt->tile_max;
    pl->rows_tile = p->block_size < RA__ROWS_TILE_MAX ? p->block_size : RA__ROWS_TILE_MAX;
    pl->split = p->split_tokens ? p->split_tokens : kt->default_split;
    pl->heads_per_item = kt->all_heads_per_item ? p->Hkv : 1;
    pl->groups = p->Hkv / pl->heads_per_item;
    pl->s_ld = (pl->tile + 15) & ~(int64_t)15;
    /* Row order pays when an item's heads fill whole contiguous K/V rows: the cache is then
     * read as two plain streams. (A [B,Hkv,S,D] cache already is, head by head.) */
    bool whole_rows = pl->heads_per_item == p->Hkv && p->Hkv > 1 && p->k.sd == 1 &&
                      p->v.sd == 1 && p->k.sh == p->D && p->v.sh == p->D &&
                      p->k.st == p->Hkv * p->D && p->v.st == p->Hkv * p->D;
#ifdef RA_NO_ROWS /* a build knob for measuring the head-by-head walk */
    whole_rows = false;
#endif
    if (whole_rows && kt->rows_serve && kt->rows_serve(p->G, p->k.dtype, p->v.dtype))
        pl->rows = kt->rows[p->k.dtype][p->v.dtype];
    if (!pl->rows && takes_dot(kt, p)) {
        pl->dot = kt->step_bf16_dot[p->v.dtype];
        pl->dot_rows = kt->step_bf16_dot_rows[p->v.dtype];
    }
    /* Groups of whole 16-row blocks, enough of them, take the wide steps where the family has
     * them: rows in the vector lanes, no reductions across lanes (see avx512_wide.c). */
    if (!pl->rows && !pl->dot && p->G % 16 == 0 && p->G >= kt->wide_min_rows)
        pl->wide = kt->step_wide[p->k.dtype][p->v.dtype];
    if (p->causal_g && !pl->wide) /* only the wide steps mask rows (multi.c asks first) */
        return ra__fail(RA_ERR_INTERNAL, "decode: a causal group of %lld rows without wide "
                        "steps", (long long)p->G);
    bool want_qp = !pl->rows && kt->prepare_q && kt->q_pairs_for_k[p->k.dtype];
    pl->qp_ld = pl->wide ? kt->wide_ld(p->D) : want_qp ? kt->q_ld(p->D) : 0;

    int64_t n = 0;
    for (int64_t b = 0; b < p->B; b++) {
        int64_t add;
        if (__builtin_mul_overflow(pl->groups, ra__chunks_in(pl, b), &add) ||
            __builtin_add_overflow(n, add, &n))
            return ra__fail(RA_ERR_OVERFLOW, "decode: too many work items");
    }
    pl->n_items = n;
    int64_t positions = 0; /* saturating: only sizes the thread team */
    for (int64_t b = 0; b < p->B; b++)
        if (__builtin_add_overflow(positions, ra__visible_positions(p, b), &positions))
            positions = INT64_MAX;
    pl->team = need ? ra__team_cap(p->num_threads, n, positions, p->Hq, p->D)
                    : ra__team_size(p->num_threads, n, positions, p->Hq, p->D);

    const int64_t hq_item = pl->heads_per_item * p->G;
    ra__arena a = {0, false};
    size_t at_base = ra__arena_take(&a, p->B + 1, 1, 1, sizeof(int64_t));
    size_t at_items = ra__arena_take(&a, n, 1, 1, sizeof(ra__item));
    size_t at_pending = ra__arena_take(&a, p->B, 1, 1, sizeof(int64_t));
    size_t at_q = ra__arena_take(&a, p->B, p->Hq, p->D, sizeof(float));
    size_t at_qb = ra__arena_take(&a, pl->dot ? p->B : 0, p->Hq, p->D, sizeof(uint16_t));
    size_t at_no_dot = ra__arena_take(&a, pl->dot ? p->B : 0, 1, 1, sizeof(bool));
    size_t at_qp = ra__arena_take(&a, p->B, p->Hq, pl->qp_ld, sizeof(float));
    /* tensor.c keeps o's [.., Hq, D] f32 bytes within int64_t, so Hq*D < 2^61: neither stride
     * below can overflow; the check guards against that changing */
    int64_t o_floats;
    if (__builtin_mul_overflow(hq_item, p->D, &o_floats) || o_floats > INT64_MAX - 15)
        a.overflow = true;
    pl->o_st = a.overflow ? 0 : (o_floats + 15) & ~(int64_t)15;
    pl->ml_st = (2 * hq_item + 15) & ~(int64_t)15;
    size_t at_o = ra__arena_take(&a, n, pl->o_st, 1, sizeof(float));
    size_t at_ml = ra__arena_take(&a, n, pl->ml_st, 1, sizeof(float));
    /* per thread: logits [G][s_ld], then (row order) room for the ra__rows scratch, which the
     * kernel lays out from the start of the block, then the wide steps' widened tile [tile
     * rounded to 16][wide_ld(D)] and their rows' tile max [G], or (BLAS) a [tile][D]
     * conversion buffer */
    ra__arena per = {0, false};
    ra__arena_take(&per, p->G, pl->s_ld, 1, sizeof(float));
    if (pl->rows)
        ra__arena_take(&per, ra__rows_scratch_floats(hq_item, p->D), 1, 1, sizeof(float));
    if (pl->wide) {
        ra__arena_take(&per, (pl->tile + 15) & ~(int64_t)15, pl->qp_ld, 1, sizeof(float));
        pl->row_max_at = (int64_t)(ra__arena_take(&per, p->G, 1, 1, sizeof(float)) /
                                   sizeof(float));
    } else if (kt->needs_conv)
        ra__arena_take(&per, pl->tile, p->D, 1, sizeof(float));
    if (p->pages) { /* row pointers of a tile's K and V; the next tile's prefetch lines */
        pl->row_ptrs_at = (int64_t)(ra__arena_take(&per, 2, pl->tile, 1, sizeof(char *)) /
                                    sizeof(float));
        /* the lines of one share (walk.c): a tile of one head's rows, or, when the item's
         * heads fill whole rows, 1/heads of a tile of whole rows; at most f32, each page's
         * run of rows spanning up to 2 lines more than its bytes fill */
        int64_t cap = 0;
        if (kt->row_pointers || !kt->self_prefetch) {
            const int64_t nh = pl->heads_per_item, whole_rows = (pl->tile + nh - 1) / nh;
            const int64_t a = lines_for(pl->tile, 1, p->D), b = lines_for(whole_rows, nh, p->D);
            per.overflow |= a < 0 || b < 0;
            cap = a > b ? a : b;
        }
        pl->pf_lines_cap = cap;
        pl->pf_lines_at = (int64_t)(ra__arena_take(&per, 2, cap, 1, sizeof(char *)) /
                                    sizeof(float));
    }
    if (p->k.scale || p->v.scale) /* a tile's K and V scales (quantized K/V) */
        pl->scales_at = (int64_t)(ra__arena_take(&per, 2, pl->tile, 1, sizeof(float)) /
                                  sizeof(float));
    if (p->pages && !kt->row_pointers) { /* a gathered tile's K and V rows (at most f32) */
        ra__arena g = {0, false};
        ra__arena_take(&g, pl->tile, pl->heads_per_item, p->D, sizeof(float));
        pl->gather_floats = (int64_t)(g.used / sizeof(float));
        pl->gather_at = (int64_t)(ra__arena_take(&per, 2, pl->gather_floats, 1, sizeof(float)) /
                                  sizeof(float));
        per.overflow |= g.overflow;
    }
    size_t at_scratch = ra__arena_take(&a, pl->team, (int64_t)(per.used / sizeof(float)), 1,
                                       sizeof(float));
    if (a.overflow || per.overflow)
        return ra__fail(RA_ERR_OVERFLOW, "decode: scratch for B=%lld Hq=%lld D=%lld and %lld "
                        "work items overflows", (long long)p->B, (long long)p->Hq,
                        (long long)p->D, (long long)n);
    if (need) {
        *need = a.used;
        return RA_OK;
    }
    if (given && given->bytes < a.used) { /* fewer threads: results never depend on them */
        const size_t fit = per.used ? (given->bytes - at_scratch) / per.used : 0;
        if (given->bytes < at_scratch + per.used)
            return ra__fail(RA_ERR_OUT_OF_MEMORY, "decode: %zu bytes of scratch given, %zu "
                            "needed", given->bytes, at_scratch + per.used);
        pl->team = fit < (size_t)pl->team ? (int)fit : pl->team;
    }
    char *base = given ? given->base : ra__alloc(a.used);
    if (!base)
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "decode: cannot allocate %zu bytes of scratch "
                        "for %lld work items", a.used, (long long)n);
    *block = given ? NULL : base;
    pl->item_base = (int64_t *)(base + at_base);
    pl->items = (ra__item *)(base + at_items);
    pl->pending = (int64_t *)(base + at_pending);
    pl->qf = (float *)(base + at_q);
    pl->qb = pl->dot ? (uint16_t *)(base + at_qb) : NULL;
    pl->no_dot = pl->dot ? (bool *)(base + at_no_dot) : NULL;
    pl->qp = pl->qp_ld ? (float *)(base + at_qp) : NULL;
    pl->part_o = (float *)(base + at_o);
    pl->part_ml = (float *)(base + at_ml);
    pl->scratch = (float *)(base + at_scratch);
    pl->scratch_per_thread = per.used / sizeof(float);

    int64_t k = 0;
    for (int64_t b = 0; b < p->B; b++) {
        int64_t r[2][2];
        const int nr = ra__visible_ranges(p, b, r);
        pl->item_base[b] = k;
        for (int64_t g = 0; g < pl->groups; g++)
            for (int i = 0; i < nr; i++) {
                const int64_t lo = r[i][0], hi = r[i][1], nc = ra__chunks_of(pl, hi - lo);
                for (int64_t c = 0; c < nc; c++, k++) {
                    int64_t t0 = lo + (pl->split ? c * pl->split : 0);
                    int64_t t1 = pl->split && t0 + pl->split < hi ? t0 + pl->split : hi;
                    pl->items[k] = (ra__item){b, g * pl->heads_per_item, t0, t1, k};
                }
            }
    }
    pl->item_base[p->B] = k;
    for (int64_t b = 0; b < p->B; b++)
        pl->pending[b] = pl->item_base[b + 1] - pl->item_base[b];
    qsort(pl->items, (size_t)n, sizeof(ra__item), longest_first);
    return RA_OK;
}

/* q of batch entry b into f32 [Hq][D] (one row at a time, so the copies stay in cache), plus
 * what the kernel asked for: the bf16 bits (qb: exact, q is bf16 then) for its bf16 dot
 * steps, and its own layout (qp, written by the family's prepare_q).
 * Marks in no_dot the batch entries whose q holds a bf16 subnormal, which the pair products
 * would read as 0: those take the exact steps, and the others keep theirs, so a sequence's
 * result does not depend on its neighbours. */
static void prepare_entry(const ra__problem *p, const ra__plan *pl, int64_t b)
{
    const int64_t D = p->D;
    bool subnormal = false;
    for (int64_t h = 0; h < p->Hq; h++) {
        ra__row row;
        ra__row_at(p, b, h, &row); /* a padding row reads a real query: never written back */
        const ra__operand *q = &row.p->q;
        const int64_t r = b * p->Hq + h, at = row.b * q->sb + row.i * q->st + row.h * q->sh;
        float *qf = pl->qf + r * D;
        if (q->dtype == RA_DTYPE_F32 && q->sd == 1)
            memcpy(qf, (const float *)q->data + at, sizeof(float) * (size_t)D);
        else
            for (int64_t d = 0; d < D; d++)
                qf[d] = ra__load_f32(q->data, q->dtype, at + d * q->sd);
        if (pl->qb)
            for (int64_t d = 0; d < D; d++) {
                uint32_t bits;
                memcpy(&bits, &qf[d], sizeof bits);
                pl->qb[r * D + d] = (uint16_t)(bits >> 16);
                subnormal |= (bits & 0x7f800000u) == 0 && (bits & 0x007f0000u) != 0;
            }
        if (pl->qp && !pl->wide)
            pl->kt->prepare_q(qf, D, pl->qp + r * pl->qp_ld);
        else if (pl->qp && h % 16 == 15) /* G % 16 == 0: rows h-15..h share a KV head */
            pl->kt->wide_q(qf - 15 * D, D, p->k.dtype, pl->qp + (r - 15) * pl->qp_ld);
    }
    if (pl->no_dot)
        pl->no_dot[b] = subnormal;
}

void ra__plan_prepare_q(const ra__problem *p, const ra__plan *pl)
{
    /* A large q (a multi-token pass's: hundreds of rows per entry; a very large decode batch)
     * is prepared by the team, which would otherwise wait for the calling thread; a smaller
     * one does not pay for waking it. */
    if (pl->team > 1 && p->B > 1 && p->B * p->Hq * p->D >= RA_PREPARE_Q_TEAM_ELEMS) {
#pragma omp parallel for num_threads(pl->team) schedule(dynamic)
        for (int64_t b = 0; b < p->B; b++)
            prepare_entry(p, pl, b);
    } else {
        for (int64_t b = 0; b < p->B; b++)
            prepare_entry(p, pl, b);
    }
}
