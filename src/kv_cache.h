/* Where the K/V rows of a position live, for a contiguous [B,S,Hkv,D] cache (any strides) and
 * for a paged one (a pool of pages and a page table per sequence). The engine asks here for a
 * tile's address. A tile of a paged cache that crosses from one page to a page that does not
 * follow it in memory is handed to the kernel as one row pointer per position, or, for kernels
 * that only take (base, row stride), gathered into a dense buffer first; either way the tiles,
 * and with them the results, are the same as for a contiguous cache. */
#ifndef RA_KV_CACHE_H
#define RA_KV_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "problem.h"

/* Row t of sequence b, KV head j, in x (p->k or p->v). */
static inline const char *ra__kv_row(const ra__problem *p, const ra__operand *x, int64_t b,
                                     int64_t t, int64_t j, size_t es)
{
    int64_t at;
    if (p->pages) {
        const int64_t page = p->pages[p->page_at[b] + t / p->page_size];
        at = page * x->sp + (t % p->page_size) * x->st;
    } else {
        at = b * x->sb + t * x->st;
    }
    return (const char *)x->data + (size_t)(at + j * x->sh) * es;
}

/* Whether positions [t, end) of sequence b have K rows, and V rows, each a constant stride
 * apart: always for a contiguous cache; for a paged one, when they lie in one page or in
 * pages that follow each other in memory. */
bool ra__kv_one_run(const ra__problem *p, int64_t b, int64_t t, int64_t end);

/* The end of the run of rows that starts at t (as in ra__kv_one_run), or limit if sooner. */
int64_t ra__kv_run_end(const ra__problem *p, int64_t b, int64_t t, int64_t limit);

/* rows[i] = ra__kv_row(p, x, b, t0 + i, j) for i < n (without a division per row). */
void ra__kv_rows(const ra__problem *p, const ra__operand *x, int64_t b, int64_t t0, int64_t n,
                 int64_t j, const char **rows);

/* The address of every cache line of the rows of positions [t0, t0 + n) of sequence b, KV
 * head j, in x, each row x->st elements long; returns how many it wrote to lines (at most
 * n * (ceil(row bytes / 64) + 2)). */
size_t ra__kv_lines(const ra__problem *p, const ra__operand *x, int64_t b, int64_t t0, int64_t n,
                    int64_t j, const char **lines);

/* Prefetches the first line of the rows of positions [t0, t0 + n), KV heads [j0, j0 + nh),
 * of sequence b in x, one row per 4 KiB where rows lie closer: the address translations of
 * the memory pages they start in are then done before those rows are prefetched line by line
 * or streamed. Nothing for a contiguous x whose rows are under RA_TRANSLATE_MIN_ROW bytes
 * apart (one walk serves many rows). */
void ra__kv_translate_ahead(const ra__problem *p, const ra__operand *x, int64_t b, int64_t t0,
                            int64_t n, int64_t j0, int64_t nh);

/* out[i] = the scale of position t0 + i of sequence b, KV head j, in quantized x. */
void ra__kv_scales(const ra__problem *p, const ra__operand *x, int64_t b, int64_t t0, int64_t n,
                   int64_t j, float *out);

/* Copies positions [t0, t0 + n) of KV heads [j0, j0 + nh) of x into dst, dense [n][nh][D] in
 * x's dtype, and meanwhile prefetches the rows of positions [next, next + n_next) of the same
 * heads (possibly of another sequence, nb), one row per row copied. */
void ra__kv_gather(const ra__problem *p, const ra__operand *x, int64_t b, int64_t t0, int64_t n,
                   int64_t j0, int64_t nh, void *dst, int64_t nb, int64_t next, int64_t n_next);

#endif
