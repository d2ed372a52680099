/* The two walks of a work item, peers that the plan chooses between (ra__plan.rows):
 * - head tiles: the positions tile by tile, every KV head of the item on the same tile before
 *   the next, each head through the kernel's steps (separate or fused, bf16 pairs, row
 *   pointers of a paged tile), with the next tile's prefetches spread over the compute;
 * - row order: the kernel's ra__rows item takes the whole item, every head of a position, then
 *   the next, so K and V are read as two plain streams.
 * Both leave the item's partial (o, m, l) state in the plan's slot. */
#include <math.h>
#include <string.h>

#include "common/dtype.h"
#include "engine/plan.h"
#include "kv_cache.h"
#include "tensor_internal.h"

/* What to prefetch while head jj of nh computes a tile: a 1/nh share of the next tile, so that
 * over the nh heads the whole next tile is requested front to back. The hardware prefetcher
 * does not follow the 4 KiB row stride of a [B,S,Hkv,D] cache. When the item's heads fill
 * whole contiguous rows, the share is a run of rows; when each head's positions are contiguous
 * (a [B,Hkv,S,D] view), it is that head's next tile; other layouts get no prefetch. The share
 * is a byte range (p, bytes): all of it in a contiguous call, its first run of rows in a paged
 * one; or, with as_lines (paged calls), the address of every cache line of its runs, written
 * to lines (room for ra__plan.pf_lines_cap). */
static ra__pf_target prefetch_share(const ra__problem *p, const ra__operand *x, int64_t b,
                                    int64_t next, int64_t n_next, int64_t j0, int64_t nh,
                                    int64_t jj, const char **lines, bool as_lines)
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
    const int64_t end = t0 + n;
    if (!as_lines) {
        pf.p = n > 0 ? ra__kv_row(p, x, b, t0, j, es) : NULL;
        pf.bytes = (size_t)((ra__kv_run_end(p, b, t0, end) - t0) * x->st) * es;
        return pf;
    }
    const size_t n_lines = ra__kv_lines(p, x, b, t0, n, j, lines);
    pf.lines = n_lines ? lines : NULL;
    pf.n_lines = n_lines;
    return pf;
}

/* A row-order item's scales of quantized x: at its first position (of a contiguous cache) and
 * first KV head; NULL when x is not quantized. */
static const float *rows_scale(const ra__problem *p, const ra__operand *x, const ra__item *it)
{
    if (!x->scale)
        return NULL;
    return x->scale + (p->pages ? 0 : it->b * x->c_sb + it->t0 * x->c_st) + it->j0 * x->c_sh;
}

/* Row order: one call of the kernel's ra__rows item. Row-order items read plain streams,
 * which the hardware prefetchers pick up at once, so the next item is claimed only now. */
static int64_t walk_row_order(const ra__plan *pl, const ra__item *it, int64_t *next_item,
                              float *scratch, float *o, float *m, float *l)
{
    const ra__problem *p = pl->p;
    const int64_t G = p->G, D = p->D, nh = pl->heads_per_item;
    if (it->t1 == it->t0) /* an empty sequence: no row to point at (K/V may have no data) */
        return ra__claim_item(pl, next_item);
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
        .last_pos = ra__seq_len(p, it->b) - 1,
        .o = o, .m = m, .l = l, .s = scratch,
    };
    pl->rows(&r);
    return ra__claim_item(pl, next_item);
}

/* Head tiles. The walk claims the item it runs next when it starts its last tile and
 * prefetches that item's first tile meanwhile, so that no item starts on a cold cache;
 * claiming only then keeps the balance of plain dynamic scheduling. */
static int64_t walk_head_tiles(const ra__plan *pl, const ra__item *it, int64_t *next_item,
                               float *scratch, float *o, float *m, float *l)
{
    const ra__problem *p = pl->p;
    const ra__kernel_table *kt = pl->kt;
    const int64_t G = p->G, D = p->D, nh = pl->heads_per_item;
    const size_t kes = ra__dtype_size(p->k.dtype), ves = ra__dtype_size(p->v.dtype);
    ra__tile t = {
        .G = G, .D = D, .scale = p->scale, .s = scratch, .s_ld = pl->s_ld, .qp_ld = pl->qp_ld,
        .softcap = p->softcap, .last_pos = ra__seq_len(p, it->b) - 1,
        .conv = scratch + pl->s_ld * G, .row_max = pl->wide ? scratch + pl->row_max_at : NULL,
        .causal_g = p->causal_g,
        .causal_end0 = p->causal_g ? ra__seq_len(p, it->b) - p->causal_n[it->b] + 1 : 0,
    };
    /* paged: row pointers of a tile's K and V (kernels with row_pointers), the next tile's
     * prefetch lines, gathered K and V (the other kernels) */
    const char **k_rows = (const char **)(void *)(scratch + pl->row_ptrs_at),
               **v_rows = k_rows + pl->tile;
    const char **pf_k_lines = (const char **)(void *)(scratch + pl->pf_lines_at),
               **pf_v_lines = pf_k_lines + pl->pf_lines_cap;
    char *gk = (char *)(scratch + pl->gather_at), *gv = gk + pl->gather_floats * sizeof(float);
    float *k_scales = p->k.scale ? scratch + pl->scales_at : NULL;
    float *v_scales = p->v.scale ? scratch + pl->scales_at + pl->tile : NULL;
    ra__tile_fn qk = kt->qk[p->k.dtype], pv = kt->pv[p->v.dtype];
    const bool dot = pl->dot && !pl->no_dot[it->b];
    ra__tile_fn fused = pl->wide ? pl->wide : dot ? pl->dot : kt->step[p->k.dtype][p->v.dtype];
    ra__tile_fn fused_rows = pl->wide  ? pl->wide
                             : dot     ? pl->dot_rows
                                       : kt->step_rows[p->k.dtype][p->v.dtype];
    int64_t after = -1; /* the item claimed to run next, once claimed */
    for (int64_t t0 = it->t0; t0 < it->t1; t0 += pl->tile) {
        t.T = ra__tile_at(pl, t0, it->t1);
        t.t_first = t0;
        const ra__item *pf_it = it; /* whose tile comes next: this item's, or the next item's first */
        int64_t next = t0 + t.T, n_next = ra__tile_at(pl, next, it->t1);
        if (n_next == 0) {
            after = ra__claim_item(pl, next_item);
            if (after < pl->n_items) {
                pf_it = &pl->items[after];
                next = pf_it->t0;
                n_next = ra__tile_at(pl, next, pf_it->t1);
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
        /* Start the page walks of the tile after next now: a line prefetch that must first
         * walk the page table holds the kernel up until the walk ends. */
        {
            const int64_t t2 = next + n_next, n2 = ra__tile_at(pl, t2, pf_it->t1);
            ra__kv_translate_ahead(p, &p->k, pf_it->b, t2, n2, pf_it->j0, nh);
            ra__kv_translate_ahead(p, &p->v, pf_it->b, t2, n2, pf_it->j0, nh);
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
            /* the paged steps and the core take lists of lines; the plain steps a range */
            const bool as_lines = p->pages && (by_row || !kt->self_prefetch);
            t.pf_k = prefetch_share(p, &p->k, pf_it->b, next, n_pf, pf_it->j0, nh, jj,
                                    pf_k_lines, as_lines);
            t.pf_v = prefetch_share(p, &p->v, pf_it->b, next, n_pf, pf_it->j0, nh, jj,
                                    pf_v_lines, as_lines);
            if (!kt->self_prefetch) {
                const ra__prefetcher pk = ra__prefetcher_init(&t.pf_k, 1);
                const ra__prefetcher pv_ = ra__prefetcher_init(&t.pf_v, 1);
                if (as_lines) {
                    ra__prefetch_step_list(&pk, 0);
                    ra__prefetch_step_list(&pv_, 0);
                } else {
                    ra__prefetch_step(&pk, 0);
                    ra__prefetch_step(&pv_, 0);
                }
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
    return after >= 0 ? after : ra__claim_item(pl, next_item);
}

int64_t ra__walk_item(const ra__plan *pl, const ra__item *it, int64_t *next_item,
                      float *scratch)
{
    const ra__problem *p = pl->p;
    const int64_t G = p->G, D = p->D, nh = pl->heads_per_item, hq_item = nh * G;
    float *o = pl->part_o + it->slot * pl->o_st;
    float *m = pl->part_ml + it->slot * pl->ml_st, *l = m + hq_item;
    memset(o, 0, sizeof(float) * (size_t)(hq_item * D));
    for (int64_t i = 0; i < hq_item; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    return pl->rows ? walk_row_order(pl, it, next_item, scratch, o, m, l)
                    : walk_head_tiles(pl, it, next_item, scratch, o, m, l);
}
