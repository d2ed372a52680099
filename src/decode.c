/* The ragged decode core. One engine serves MQA, MHA and GQA: the seed wrappers only choose
 * shapes and the output convention (problem.c).
 *
 * Work is cut into items of (batch b, a range of KV heads, a chunk of positions). Items run in
 * parallel (OpenMP); inside an item the positions are walked tile by tile with an online
 * softmax, every KV head of the item on the same tile before moving on, so the K/V rows of a
 * [B,S,Hkv,D] cache are read front to back. A kernel may instead take a whole item in row
 * order (ra__rows: every head of a position, then the next), where it measured faster. Each item
 * leaves a partial (o, m, l) state; the thread that completes a batch entry's last item merges
 * the chunks of each of its (b, head) in chunk order. Neither the cut nor the merge order depends on the thread count or on the other
 * sequences, so results are bitwise reproducible for any num_threads and any batch composition. */
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "decode.h"
#include "common/dtype.h"
#include "kernels/kernel.h"
#include "kv_cache.h"
#include "common/lse.h"
#include "common/size_math.h"
#include "status_internal.h"
#include "team.h"
#include "tensor_internal.h"

typedef struct item {
    int64_t b, j0, t0, t1; /* batch, first KV head, position range */
    int64_t slot;          /* index of its partial state */
} item;

/* Everything the workers share, read-only during the parallel pass. */
typedef struct plan {
    const ra__problem *p;
    const ra__kernel_table *kt;
    int64_t tile, split, heads_per_item, groups;
    int64_t n_items;
    int team; /* threads in the parallel region */
    item *items;        /* in execution order (longest first) */
    int64_t *item_base; /* [B+1] first slot of each batch entry */
    int64_t *pending;   /* [B] items of each batch entry not yet done; the last one merges */
    float *qf;          /* [B][Hq][D] q in f32 */
    ra__tile_fn dot;    /* the kernel's step for q and K both bf16, or NULL */
    ra__tile_fn dot_rows; /* the same reading row pointers (a paged tile), or NULL */
    ra__rows_fn rows;   /* the kernel's row-order item, when it serves this problem, or NULL */
    uint16_t *qb;       /* [B][Hq][D] q as bf16 bits when dot runs, else NULL */
    bool *no_dot;       /* [B] when dot runs: entries whose q has a bf16 subnormal */
    float *qp;          /* [B][Hq][qp_ld] q split into even/odd halves of 32 (see
                         * ra__tile.qp) when the kernel wants it, else NULL */
    int64_t qp_ld;
    /* Each item's partial state: o [heads_per_item*G][D] at part_o + slot*o_st, and m, l
     * [heads_per_item*G] each at part_ml + slot*ml_st. Both strides are whole cache lines, so
     * that threads running neighbouring items never write to one line (false sharing of m and
     * l slows MQA at 2 threads; docs/performance.md). */
    float *part_o, *part_ml;
    int64_t o_st, ml_st; /* floats, multiples of 16 */
    float *scratch;            /* per thread: s, conv, then (paged) the gathered K and V */
    size_t scratch_per_thread; /* floats, a multiple of 16 (64 B) */
    int64_t s_ld;
    int64_t rows_tile; /* positions per tile of a row-order item */
    /* floats into a thread's scratch of its tile row pointers (K then V, row_pointers
     * kernels), and of a paged call's gathered K, then V (gather_floats each) */
    int64_t row_ptrs_at, gather_at, gather_floats;
    int64_t scales_at; /* quantized K/V: floats into a thread's scratch of a tile's scales */
} plan;

static int64_t seq_len(const ra__problem *p, int64_t b)
{
    return p->len[b];
}

static int64_t chunks_of(const plan *pl, int64_t len)
{
    if (len == 0 || pl->split == 0)
        return 1;
    return 1 + (len - 1) / pl->split; /* not (len + split - 1) / split: split may be huge */
}

/* The positions of sequence b that the call reads, as ranges [r[i][0], r[i][1]) in position
 * order: all of them (from first[b] when set), or with a window the last `window` and the
 * first `sink_positions`. Returns the number of ranges (1 or 2; one empty range for length 0). */
static int visible_ranges(const ra__problem *p, int64_t b, int64_t r[2][2])
{
    const int64_t len = seq_len(p, b);
    r[0][0] = p->first ? p->first[b] : 0;
    r[0][1] = len;
    if (!p->window || p->window >= len)
        return 1;
    const int64_t w0 = len - p->window, s1 = p->sink_positions < len ? p->sink_positions : len;
    if (s1 >= w0)
        return 1;
    r[0][0] = s1 ? 0 : w0;
    r[0][1] = s1 ? s1 : len;
    r[1][0] = w0;
    r[1][1] = len;
    return s1 ? 2 : 1;
}

/* Positions of sequence b that the call reads. */
static int64_t visible_positions(const ra__problem *p, int64_t b)
{
    int64_t r[2][2], n = 0;
    for (int i = 0, nr = visible_ranges(p, b, r); i < nr; i++)
        n += r[i][1] - r[i][0];
    return n;
}

/* Work items (chunks) of one (b, group of KV heads): the chunks of each visible range. */
static int64_t chunks_in(const plan *pl, int64_t b)
{
    int64_t r[2][2], n = 0;
    for (int i = 0, nr = visible_ranges(pl->p, b, r); i < nr; i++)
        n += chunks_of(pl, r[i][1] - r[i][0]);
    return n;
}

/* What to prefetch while head jj of nh computes a tile: a 1/nh share of the next tile, so that
 * over the nh heads the whole next tile is requested front to back. The hardware prefetcher
 * does not follow the 4 KiB row stride of a [B,S,Hkv,D] cache. When the item's heads fill
 * whole contiguous rows, the share is a run of rows; when each head's positions are contiguous
 * (a [B,Hkv,S,D] view), it is that head's next tile; other layouts get no prefetch. A share
 * of a paged cache is one or two runs (p, p2), or else a list of rows written to rows (room
 * for a tile); first_run_only keeps its first run, for kernels that prefetch from p alone. */
static ra__pf_target prefetch_share(const ra__problem *p, const ra__operand *x, int64_t b,
                                    int64_t next, int64_t n_next, int64_t j0, int64_t nh,
                                    int64_t jj, const char **rows, bool first_run_only)
{
    const int64_t D = p->D;
    const size_t es = ra__dtype_size(x->dtype);
    ra__pf_target pf = {0};
    if (n_next <= 0 || x->sd != 1)
        return pf;
    int64_t t0 = next, n = n_next, j = j0 + jj;
    if (x->sh == D && x->st == nh * D) { /* whole rows: share jj of the next tile's rows */
        t0 = next + jj * n_next / nh;
        n = next + (jj + 1) * n_next / nh - t0;
        j = j0;
    } else if (x->st != D) {
        return pf;
    }
    const int64_t end = t0 + n, e1 = ra__kv_run_end(p, b, t0, end),
                  e2 = e1 < end && !first_run_only ? ra__kv_run_end(p, b, e1, end) : end;
    if (first_run_only && e1 < end) { /* kernels that take contiguous targets only */
        pf.p = ra__kv_row(p, x, b, t0, j, es);
        pf.bytes = (size_t)((e1 - t0) * x->st) * es;
    } else if (e2 >= end) { /* one run, or two */
        pf.p = ra__kv_row(p, x, b, t0, j, es);
        pf.bytes = (size_t)((e1 - t0) * x->st) * es;
        if (e1 < end) {
            pf.p2 = ra__kv_row(p, x, b, e1, j, es);
            pf.bytes2 = (size_t)((end - e1) * x->st) * es;
        }
    } else if (n > 0) {
        ra__kv_rows(p, x, b, t0, n, j, rows);
        pf.rows = rows;
        pf.n_rows = (size_t)n;
        pf.row_bytes = (size_t)x->st * es;
    }
    return pf;
}

/* Positions in the tile that starts at t0 of a range ending at t1 (0 past its end). */
static int64_t tile_at(const plan *pl, int64_t t0, int64_t t1)
{
    return t1 - t0 < pl->tile ? t1 - t0 : pl->tile;
}

/* A row-order item's scales of quantized x: at its first position (of a contiguous cache) and
 * first KV head; NULL when x is not quantized. */
static const float *rows_scale(const ra__problem *p, const ra__operand *x, const item *it)
{
    if (!x->scale)
        return NULL;
    return x->scale + (p->pages ? 0 : it->b * x->c_sb + it->t0 * x->c_st) + it->j0 * x->c_sh;
}

/* Claims the next unclaimed work item (n_items when none is left). */
static int64_t claim_item(const plan *pl, int64_t *next_item)
{
    int64_t i = __atomic_fetch_add(next_item, 1, __ATOMIC_RELAXED);
    return i < pl->n_items ? i : pl->n_items;
}

/* Runs item it and returns the item this thread runs next. The head-by-head walk claims that
 * one when it starts its last tile and prefetches its first tile meanwhile, so that no item
 * starts on a cold cache; claiming only then keeps the balance of plain dynamic scheduling.
 * (Row-order items read plain streams, which the hardware prefetchers pick up at once.) */
static int64_t run_item(const plan *pl, const item *it, int64_t *next_item, float *scratch)
{
    const ra__problem *p = pl->p;
    const ra__kernel_table *kt = pl->kt;
    const int64_t G = p->G, D = p->D, nh = pl->heads_per_item, hq_item = nh * G;
    float *o = pl->part_o + it->slot * pl->o_st;
    float *m = pl->part_ml + it->slot * pl->ml_st, *l = m + hq_item;
    memset(o, 0, sizeof(float) * (size_t)(hq_item * D));
    for (int64_t i = 0; i < hq_item; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    if (pl->rows) {
        if (it->t1 == it->t0) /* an empty sequence: no row to point at (K/V may have no data) */
            return claim_item(pl, next_item);
        const bool paged = p->pages != NULL;
        const int64_t ke = (int64_t)ra__dtype_size(p->k.dtype), ve = (int64_t)ra__dtype_size(p->v.dtype);
        const ra__rows r = {
            .T = it->t1 - it->t0, .tile = pl->rows_tile, .Hkv = nh, .G = G, .D = D,
            .k = paged ? (const char *)p->k.data + it->j0 * p->k.sh * ke
                       : ra__kv_row(p, &p->k, it->b, it->t0, it->j0, (size_t)ke),
            .v = paged ? (const char *)p->v.data + it->j0 * p->v.sh * ve
                       : ra__kv_row(p, &p->v, it->b, it->t0, it->j0, (size_t)ve),
            .k_st = p->k.st, .k_sh = p->k.sh, .v_st = p->v.st, .v_sh = p->v.sh,
            .pages = paged ? p->pages + p->page_at[it->b] : NULL, .page_size = p->page_size,
            .t_first = it->t0, .k_sp = p->k.sp, .v_sp = p->v.sp,
            .k_scale = rows_scale(p, &p->k, it), .v_scale = rows_scale(p, &p->v, it),
            .ks_st = p->k.c_st, .ks_sh = p->k.c_sh, .ks_sp = p->k.c_sp,
            .vs_st = p->v.c_st, .vs_sh = p->v.c_sh, .vs_sp = p->v.c_sp,
            .q = pl->qf + (it->b * p->Hq + it->j0 * G) * D, .scale = p->scale,
            .softcap = p->softcap, .slopes = p->alibi ? p->alibi + it->j0 * G : NULL,
            .last_pos = seq_len(p, it->b) - 1,
            .o = o, .m = m, .l = l, .s = scratch,
        };
        pl->rows(&r);
        return claim_item(pl, next_item);
    }
    const size_t kes = ra__dtype_size(p->k.dtype), ves = ra__dtype_size(p->v.dtype);
    ra__tile t = {
        .G = G, .D = D, .scale = p->scale, .s = scratch, .s_ld = pl->s_ld, .qp_ld = pl->qp_ld,
        .softcap = p->softcap, .last_pos = seq_len(p, it->b) - 1,
        .conv = scratch + pl->s_ld * G,
    };
    /* row pointers of a tile's K and V (kernels with row_pointers); paged: gathered K and V */
    const char **k_rows = (const char **)(void *)(scratch + pl->row_ptrs_at),
               **v_rows = k_rows + pl->tile, **pf_k_rows = v_rows + pl->tile,
               **pf_v_rows = pf_k_rows + pl->tile;
    char *gk = (char *)(scratch + pl->gather_at), *gv = gk + pl->gather_floats * sizeof(float);
    float *k_scales = p->k.scale ? scratch + pl->scales_at : NULL;
    float *v_scales = p->v.scale ? scratch + pl->scales_at + pl->tile : NULL;
    ra__tile_fn qk = kt->qk[p->k.dtype], pv = kt->pv[p->v.dtype];
    const bool dot = pl->dot && !pl->no_dot[it->b];
    ra__tile_fn fused = dot ? pl->dot : kt->step[p->k.dtype][p->v.dtype];
    ra__tile_fn fused_rows = dot ? pl->dot_rows : kt->step_rows[p->k.dtype][p->v.dtype];
    int64_t after = -1; /* the item claimed to run next, once claimed */
    for (int64_t t0 = it->t0; t0 < it->t1; t0 += pl->tile) {
        t.T = tile_at(pl, t0, it->t1);
        t.t_first = t0;
        const item *pf_it = it; /* whose tile comes next: this item's, or the next item's first */
        int64_t next = t0 + t.T, n_next = tile_at(pl, next, it->t1);
        if (n_next == 0) {
            after = claim_item(pl, next_item);
            if (after < pl->n_items) {
                pf_it = &pl->items[after];
                next = pf_it->t0;
                n_next = tile_at(pl, next, pf_it->t1);
            }
        }
        /* A paged tile that spans runs of rows, or whose next tile does, is read where its pages
         * are (row pointers, prefetch lists); kernels without row pointers gather it, with the
         * next tile's prefetches. Tiles of one run take the plain steps. */
        const bool one_run = ra__kv_one_run(p, it->b, t0, t0 + t.T);
        const bool by_row = kt->row_pointers &&
                            (!one_run || !ra__kv_one_run(p, pf_it->b, next, next + n_next));
        const bool gather = !one_run && !by_row;
        if (gather) {
            ra__kv_gather(p, &p->k, it->b, t0, t.T, it->j0, nh, gk, pf_it->b, next, n_next);
            ra__kv_gather(p, &p->v, it->b, t0, t.T, it->j0, nh, gv, pf_it->b, next, n_next);
        }
        t.k_st = gather ? nh * D : p->k.st;
        t.k_sd = gather ? 1 : p->k.sd;
        t.v_st = gather ? nh * D : p->v.st;
        t.v_sd = gather ? 1 : p->v.sd;
        t.k_rows = by_row ? k_rows : NULL;
        t.v_rows = by_row ? v_rows : NULL;
        if (by_row) { /* the item's first head; each head adds its offset */
            ra__kv_rows(p, &p->k, it->b, t0, t.T, it->j0, k_rows);
            ra__kv_rows(p, &p->v, it->b, t0, t.T, it->j0, v_rows);
        }
        for (int64_t jj = 0; jj < nh; jj++) {
            int64_t j = it->j0 + jj;
            t.q = pl->qf + (it->b * p->Hq + j * G) * D;
            t.qb = pl->qb ? pl->qb + (it->b * p->Hq + j * G) * D : NULL;
            t.qp = pl->qp ? pl->qp + (it->b * p->Hq + j * G) * pl->qp_ld : NULL;
            t.slopes = p->alibi ? p->alibi + j * G : NULL;
            t.k = gather ? gk + (size_t)(jj * D) * kes : ra__kv_row(p, &p->k, it->b, t0, j, kes);
            t.v = gather ? gv + (size_t)(jj * D) * ves : ra__kv_row(p, &p->v, it->b, t0, j, ves);
            t.k_row_off = (size_t)(jj * p->k.sh) * kes;
            t.v_row_off = (size_t)(jj * p->v.sh) * ves;
            if (k_scales)
                ra__kv_scales(p, &p->k, it->b, t0, t.T, j, k_scales);
            if (v_scales)
                ra__kv_scales(p, &p->v, it->b, t0, t.T, j, v_scales);
            t.k_scales = k_scales;
            t.v_scales = v_scales;
            t.o = o + jj * G * D;
            t.m = m + jj * G;
            t.l = l + jj * G;
            const int64_t n_pf = gather ? 0 : n_next;
            /* self-prefetching kernels without paged steps read p alone */
            const bool first_run_only = kt->self_prefetch && !by_row;
            t.pf_k = prefetch_share(p, &p->k, pf_it->b, next, n_pf, pf_it->j0, nh, jj,
                                    pf_k_rows, first_run_only);
            t.pf_v = prefetch_share(p, &p->v, pf_it->b, next, n_pf, pf_it->j0, nh, jj,
                                    pf_v_rows, first_run_only);
            if (!kt->self_prefetch) {
                ra__prefetcher pk = ra__prefetcher_init(&t.pf_k, 1);
                ra__prefetcher pv_ = ra__prefetcher_init(&t.pf_v, 1);
                ra__prefetch_step_any(&pk, 0);
                ra__prefetch_step_any(&pv_, 0);
            }
            if (by_row) {
                fused_rows(&t);
            } else if (fused) {
                fused(&t);
            } else {
                qk(&t);
                kt->softmax(&t);
                pv(&t);
            }
        }
    }
    return after >= 0 ? after : claim_item(pl, next_item);
}

/* Merge the chunks of every (b, head) in chunk order, with the head's sink (which joins the
 * denominator only), and write the caller's outputs. */
static void finish_batch_entry(const plan *pl, int64_t b)
{
    const ra__problem *p = pl->p;
    const int64_t G = p->G, D = p->D, hq_item = pl->heads_per_item * G;
    const int64_t nc = chunks_in(pl, b);
    for (int64_t h = 0; h < p->Hq; h++) {
        int64_t j = h / G, group = j / pl->heads_per_item;
        int64_t hh = h - group * hq_item; /* head index inside its item */
        int64_t first = pl->item_base[b] + group * nc;
        float M = p->sinks ? p->sinks[h] : -INFINITY, L = 0.0f;
        for (int64_t c = 0; c < nc; c++)
            M = ra__nan_max(M, pl->part_ml[(first + c) * pl->ml_st + hh]);
        for (int64_t c = 0; c < nc; c++) {
            const float *pm = pl->part_ml + (first + c) * pl->ml_st + hh;
            L += ra__merge_weight(*pm, M) * pm[hq_item];
        }
        if (p->sinks)
            L += ra__merge_weight(p->sinks[h], M);
        float *out = p->o + b * p->o_sb + h * p->o_sh;
        for (int64_t d0 = 0; d0 < D; d0 += 64) {
            int64_t dn = D - d0 < 64 ? D - d0 : 64;
            float acc[64] = {0};
            for (int64_t c = 0; c < nc; c++) {
                const float *po = pl->part_o + (first + c) * pl->o_st + hh * D + d0;
                const float *pm = pl->part_ml + (first + c) * pl->ml_st + hh;
                float w = ra__merge_weight(*pm, M);
                for (int64_t d = 0; d < dn; d++)
                    acc[d] += w * po[d];
            }
            for (int64_t d = 0; d < dn; d++)
                out[(d0 + d) * p->o_sd] = ra__finish_o(acc[d], L, p->normalize);
        }
        if (p->m)
            p->m[b * p->m_sb + h * p->m_sh] = M;
        if (p->l)
            p->l[b * p->l_sb + h * p->l_sh] = L;
    }
}

/* Longest items first balances ragged work; ties keep the natural order, so the schedule is
 * a pure function of the lengths. (Which thread runs an item never changes its result.) */
static int longest_first(const void *a, const void *b)
{
    const item *x = a, *y = b;
    int64_t lx = x->t1 - x->t0, ly = y->t1 - y->t0;
    if (lx != ly)
        return lx < ly ? 1 : -1;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* Chooses the kernel, the tile and the cut into work items, and carves every buffer the call
 * needs out of one allocation (*block, freed by the caller). */
static ra_status build_plan(const ra__problem *p, plan *pl, void **block)
{
    ra_kernel id = ra__kernel_resolve(p->kernel);
    const ra__kernel_table *kt = ra__kernel_table_for(id);
    bool unit_d = p->k.sd == 1 && p->v.sd == 1;
    const bool runs_dtypes = kt->step[p->k.dtype][p->v.dtype] ||
                             (kt->qk[p->k.dtype] && kt->pv[p->v.dtype]);
    if ((kt->needs_unit_d && !unit_d) || !runs_dtypes ||
        (kt->id == RA_KERNEL_BLAS && (p->G > INT_MAX || p->D > INT_MAX)))
        kt = &ra__kernels_portable; /* same function, any layout and dtype */
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
    /* q and K both bf16: products of bf16 are exact in f32, so a kernel may multiply them
     * as bf16 pairs (vdpbf16ps) with the same f32 sums. */
    if (!pl->rows && p->q.dtype == RA_DTYPE_BF16 && p->k.dtype == RA_DTYPE_BF16) {
        pl->dot = kt->step_bf16_dot[p->v.dtype];
        pl->dot_rows = kt->step_bf16_dot_rows[p->v.dtype];
    }
    bool want_qp = !pl->rows && kt->q_pairs_for_k[p->k.dtype];
    pl->qp_ld = want_qp ? (p->D + 31) & ~(int64_t)31 : 0; /* no wrap: q holds D elements */

    int64_t n = 0;
    for (int64_t b = 0; b < p->B; b++) {
        int64_t add;
        if (__builtin_mul_overflow(pl->groups, chunks_in(pl, b), &add) ||
            __builtin_add_overflow(n, add, &n))
            return ra__fail(RA_ERR_OVERFLOW, "decode: too many work items");
    }
    pl->n_items = n;
    int64_t positions = 0; /* saturating: only sizes the thread team */
    for (int64_t b = 0; b < p->B; b++)
        if (__builtin_add_overflow(positions, visible_positions(p, b), &positions))
            positions = INT64_MAX;
    pl->team = ra__team_size(p->num_threads, n, positions, p->Hq, p->D);

    const int64_t hq_item = pl->heads_per_item * p->G;
    ra__arena a = {0, false};
    size_t at_base = ra__arena_take(&a, p->B + 1, 1, 1, sizeof(int64_t));
    size_t at_items = ra__arena_take(&a, n, 1, 1, sizeof(item));
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
     * kernel lays out from the start of the block, then (BLAS) a [tile][D] conversion buffer */
    ra__arena per = {0, false};
    ra__arena_take(&per, p->G, pl->s_ld, 1, sizeof(float));
    if (pl->rows)
        ra__arena_take(&per, ra__rows_scratch_floats(hq_item, p->D), 1, 1, sizeof(float));
    if (kt->needs_conv)
        ra__arena_take(&per, pl->tile, p->D, 1, sizeof(float));
    if (p->pages) /* row pointers: a tile's K and V, and the next tile's prefetch shares */
        pl->row_ptrs_at = (int64_t)(ra__arena_take(&per, 4, pl->tile, 1, sizeof(char *)) /
                                    sizeof(float));
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
    char *base = ra__alloc(a.used);
    if (!base)
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "decode: cannot allocate %zu bytes of scratch "
                        "for %lld work items", a.used, (long long)n);
    *block = base;
    pl->item_base = (int64_t *)(base + at_base);
    pl->items = (item *)(base + at_items);
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
        const int nr = visible_ranges(p, b, r);
        pl->item_base[b] = k;
        for (int64_t g = 0; g < pl->groups; g++)
            for (int i = 0; i < nr; i++) {
                const int64_t lo = r[i][0], hi = r[i][1], nc = chunks_of(pl, hi - lo);
                for (int64_t c = 0; c < nc; c++, k++) {
                    int64_t t0 = lo + (pl->split ? c * pl->split : 0);
                    int64_t t1 = pl->split && t0 + pl->split < hi ? t0 + pl->split : hi;
                    pl->items[k] = (item){b, g * pl->heads_per_item, t0, t1, k};
                }
            }
    }
    pl->item_base[p->B] = k;
    for (int64_t b = 0; b < p->B; b++)
        pl->pending[b] = pl->item_base[b + 1] - pl->item_base[b];
    qsort(pl->items, (size_t)n, sizeof(item), longest_first);
    return RA_OK;
}

/* q of every (b, head) into f32 [B][Hq][D] (one row at a time, so the copies stay in cache),
 * plus what the kernel asked for: the bf16 bits (qb: exact, q is bf16 then) and the even/odd
 * split for bf16 K (qp: element 32c + 2j + e of a row goes to 32c + 16e + j, padding 0).
 * Marks in no_dot the batch entries whose q holds a bf16 subnormal, which the pair products
 * would read as 0: those take the exact steps, and the others keep theirs, so a sequence's
 * result does not depend on its neighbours. */
static void prepare_q(const ra__problem *p, const plan *pl)
{
    const int64_t D = p->D, full = D & ~(int64_t)31;
    for (int64_t b = 0; b < p->B; b++) {
        bool subnormal = false;
        for (int64_t h = 0; h < p->Hq; h++) {
            const int64_t r = b * p->Hq + h, at = b * p->q.sb + h * p->q.sh;
            float *qf = pl->qf + r * D;
            if (p->q.dtype == RA_DTYPE_F32 && p->q.sd == 1)
                memcpy(qf, (const float *)p->q.data + at, sizeof(float) * (size_t)D);
            else
                for (int64_t d = 0; d < D; d++)
                    qf[d] = ra__load_f32(p->q.data, p->q.dtype, at + d * p->q.sd);
            if (pl->qb)
                for (int64_t d = 0; d < D; d++) {
                    uint32_t bits;
                    memcpy(&bits, &qf[d], sizeof bits);
                    pl->qb[r * D + d] = (uint16_t)(bits >> 16);
                    subnormal |= (bits & 0x7f800000u) == 0 && (bits & 0x007f0000u) != 0;
                }
            if (pl->qp) {
                float *row = pl->qp + r * pl->qp_ld;
                memset(row + full, 0, sizeof(float) * (size_t)(pl->qp_ld - full));
                for (int64_t d = 0; d < D; d++)
                    row[(d & ~(int64_t)31) + (d & 1) * 16 + (d & 31) / 2] = qf[d];
            }
        }
        if (pl->no_dot)
            pl->no_dot[b] = subnormal;
    }
}

/* The walk of this thread's last call (ra__last_walk), for tests. */
static _Thread_local ra__walk_record last_walk;

ra__walk_record ra__last_walk(void)
{
    return last_walk;
}

ra_status ra__decode(const ra__problem *p)
{
    if (p->B == 0 || p->Hq == 0)
        return RA_OK;
    plan pl = {0};
    void *block = NULL;
    ra_status s = build_plan(p, &pl, &block);
    if (s != RA_OK)
        return s;
    last_walk.family = pl.kt->id;
    last_walk.walk = pl.rows  ? RA__WALK_ROW_ORDER
                     : pl.dot ? RA__WALK_HEAD_TILES_DOT
                              : RA__WALK_HEAD_TILES;
    prepare_q(p, &pl);

    int64_t next_item = 0; /* the first item no thread has claimed */
    /* One synchronization per call, the region's end: the thread that completes a batch
     * entry's last item merges that entry, so no thread waits for the others in between (with
     * a core shared with another process, every wait can cost a scheduler time slice). */
    ra__team_watch watch;
    ra__team_watch_begin(&watch, p->num_threads, pl.team);
#pragma omp parallel num_threads(pl.team) if (pl.team > 1)
    {
        ra__thread_mark mark = ra__team_watch_enter(&watch);
        float *scratch = pl.scratch + (size_t)omp_get_thread_num() * pl.scratch_per_thread;
        /* dynamic scheduling; run_item claims each next item (see there) */
        for (int64_t i = claim_item(&pl, &next_item); i < pl.n_items;) {
            int64_t b = pl.items[i].b;
            i = run_item(&pl, &pl.items[i], &next_item, scratch);
            /* acquire-release: the merging thread sees every other item's partial state */
            if (__atomic_sub_fetch(&pl.pending[b], 1, __ATOMIC_ACQ_REL) == 0)
                finish_batch_entry(&pl, b);
        }
        ra__team_watch_leave(&watch, mark);
    }
    ra__team_watch_end(&watch);
    ra__free(block);
    return RA_OK;
}
