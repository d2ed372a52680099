/* The ragged decode engine's driver. One engine serves MQA, MHA and GQA, contiguous and paged
 * caches, and the passes of multi-token calls: the entry points only bind shapes and the
 * output convention (problem.c).
 *
 * Work is cut into items of (batch b, a range of KV heads, a chunk of positions) by the plan
 * (plan.c). Items run in parallel (OpenMP), each with the plan's walk (walk.c: head tiles or
 * row order). Each item leaves a partial (o, m, l) state; the thread that completes a batch
 * entry's last item merges that entry's chunks in chunk order (finish.c). Neither the cut nor
 * the merge order depends on the thread count or on the other sequences, so results are
 * bitwise reproducible for any num_threads and any batch composition. */
#include <omp.h>

#include "alloc_internal.h"
#include "decode.h"
#include "engine/plan.h"
#include "team.h"

/* The walk of this thread's last call (ra__last_walk), for tests. */
static _Thread_local ra__walk_record last_walk;

ra__walk_record ra__last_walk(void)
{
    return last_walk;
}

ra_status ra__decode_bytes(const ra__problem *p, size_t *bytes)
{
    *bytes = 0;
    if (p->B == 0 || p->Hq == 0)
        return RA_OK;
    ra__plan pl = {0};
    return ra__plan_build(p, &pl, NULL, NULL, bytes);
}

static ra_status decode_with(const ra__problem *p, const ra__scratch *given)
{
    if (p->B == 0 || p->Hq == 0)
        return RA_OK;
    ra__plan pl = {0};
    void *block = NULL;
    ra_status s = ra__plan_build(p, &pl, &block, given, NULL);
    if (s != RA_OK)
        return s;
    last_walk.family = pl.kt->id;
    last_walk.walk = pl.rows   ? RA__WALK_ROW_ORDER
                     : pl.wide ? RA__WALK_HEAD_TILES_WIDE
                     : pl.dot  ? RA__WALK_HEAD_TILES_DOT
                               : RA__WALK_HEAD_TILES;
    ra__plan_prepare_q(p, &pl);

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
        /* dynamic scheduling; ra__walk_item claims each next item (walk.c) */
        for (int64_t i = ra__claim_item(&pl, &next_item); i < pl.n_items;) {
            int64_t b = pl.items[i].b;
            i = ra__walk_item(&pl, &pl.items[i], &next_item, scratch);
            /* acquire-release: the merging thread sees every other item's partial state */
            if (__atomic_sub_fetch(&pl.pending[b], 1, __ATOMIC_ACQ_REL) == 0)
                ra__finish_entry(&pl, b);
        }
        ra__team_watch_leave(&watch, mark);
    }
    ra__team_watch_end(&watch);
    ra__free(block);
    return RA_OK;
}

ra_status ra__decode(const ra__problem *p)
{
    return decode_with(p, NULL);
}

ra_status ra__decode_in(const ra__problem *p, void *scratch, size_t bytes)
{
    const ra__scratch given = {scratch, bytes};
    return decode_with(p, &given);
}
