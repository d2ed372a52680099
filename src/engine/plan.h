/* The plan of one decode call: its work items, the kernel family and walk that run them,
 * and every buffer the call needs, carved out of one allocation. Built by plan.c, walked by
 * walk.c, merged by finish.c, driven by decode.c. */
#ifndef RA_ENGINE_PLAN_H
#define RA_ENGINE_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernel.h"
#include "problem.h"

typedef struct ra__item {
    int64_t b, j0, t0, t1; /* batch, first KV head, position range */
    int64_t slot;          /* index of its partial state */
} ra__item;

/* Everything the workers share, read-only during the parallel pass. */
typedef struct ra__plan {
    const ra__problem *p;
    const ra__kernel_table *kt;
    int64_t tile, split, heads_per_item, groups;
    int64_t n_items;
    int team; /* threads in the parallel region */
    ra__item *items;        /* in execution order (longest first) */
    int64_t *item_base; /* [B+1] first slot of each batch entry */
    int64_t *pending;   /* [B] items of each batch entry not yet done; the last one merges */
    float *qf;          /* [B][Hq][D] q in f32 */
    ra__tile_fn dot;    /* the kernel's step for q and K both bf16, or NULL */
    ra__tile_fn dot_rows; /* the same reading row pointers (a paged tile), or NULL */
    ra__rows_fn rows;   /* the kernel's row-order item, when it serves this problem, or NULL */
    ra__tile_fn wide;   /* the kernel's step for whole 16-row blocks, when it serves, or NULL */
    uint16_t *qb;       /* [B][Hq][D] q as bf16 bits when dot runs, else NULL */
    bool *no_dot;       /* [B] when dot runs: entries whose q has a bf16 subnormal */
    float *qp;          /* [B][Hq][qp_ld] q in the kernel's own layout (its prepare_q, or
                         * wide_q per 16 rows for wide) when it wants one, else NULL */
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
    /* Paged calls, floats into a thread's scratch: its tile's row pointers (K then V), the
     * next tile's prefetch lines (K then V, pf_lines_cap each), and, for kernels without row
     * pointers, a gathered K, then V (gather_floats each) */
    int64_t row_ptrs_at, pf_lines_at, pf_lines_cap, gather_at, gather_floats;
    int64_t scales_at; /* quantized K/V: floats into a thread's scratch of a tile's scales */
    int64_t row_max_at; /* wide steps: floats into a thread's scratch of its rows' tile max */
} ra__plan;

static inline int64_t ra__seq_len(const ra__problem *p, int64_t b)
{
    return p->len[b];
}

static inline int64_t ra__chunks_of(const ra__plan *pl, int64_t len)
{
    if (len == 0 || pl->split == 0)
        return 1;
    return 1 + (len - 1) / pl->split; /* not (len + split - 1) / split: split may be huge */
}

/* The positions of sequence b that the call reads, as ranges [r[i][0], r[i][1]) in position
 * order: all of them (from first[b] when set), or with a window the last `window` and the
 * first `sink_positions`. Returns the number of ranges (1 or 2; one empty range for length 0). */
static inline int ra__visible_ranges(const ra__problem *p, int64_t b, int64_t r[2][2])
{
    const int64_t len = ra__seq_len(p, b);
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
static inline int64_t ra__visible_positions(const ra__problem *p, int64_t b)
{
    int64_t r[2][2], n = 0;
    for (int i = 0, nr = ra__visible_ranges(p, b, r); i < nr; i++)
        n += r[i][1] - r[i][0];
    return n;
}

/* Work items (chunks) of one (b, group of KV heads): the chunks of each visible range. */
static inline int64_t ra__chunks_in(const ra__plan *pl, int64_t b)
{
    int64_t r[2][2], n = 0;
    for (int i = 0, nr = ra__visible_ranges(pl->p, b, r); i < nr; i++)
        n += ra__chunks_of(pl, r[i][1] - r[i][0]);
    return n;
}

/* Positions in the tile that starts at t0 of a range ending at t1 (0 past its end). */
static inline int64_t ra__tile_at(const ra__plan *pl, int64_t t0, int64_t t1)
{
    return t1 - t0 < pl->tile ? t1 - t0 : pl->tile;
}

/* Claims the next unclaimed work item (n_items when none is left). */
static inline int64_t ra__claim_item(const ra__plan *pl, int64_t *next_item)
{
    int64_t i = __atomic_fetch_add(next_item, 1, __ATOMIC_RELAXED);
    return i < pl->n_items ? i : pl->n_items;
}

/* Caller-provided scratch for a call (64-byte aligned). */
typedef struct ra__scratch {
    void *base;
    size_t bytes;
} ra__scratch;

/* Chooses the kernel, the tile and the cut into work items, and carves every buffer the call
 * needs out of one allocation (*block, freed by the caller), or out of given (then *block is
 * NULL, and the team is lowered to what given holds). With need set it only sizes: *need
 * gets the bytes for the largest team the call could have, and nothing is allocated. */
ra_status ra__plan_build(const ra__problem *p, ra__plan *pl, void **block,
                         const ra__scratch *given, size_t *need);
/* q in f32 and the layouts the kernel asked for (see plan.c). */
void ra__plan_prepare_q(const ra__problem *p, const ra__plan *pl);
/* Runs item it with the plan's walk and returns the item this thread runs next. */
int64_t ra__walk_item(const ra__plan *pl, const ra__item *it, int64_t *next_item,
                      float *scratch);
/* Merges the partial states of batch entry b into the caller's outputs. */
void ra__finish_entry(const ra__plan *pl, int64_t b);

#endif
