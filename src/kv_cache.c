/* K/V addressing for contiguous and paged caches (kv_cache.h). */
#include <string.h>

#include "common/dtype.h"
#include "kernels/kernel.h"
#include "kv_cache.h"
#include "tensor_internal.h"

int64_t ra__kv_run_end(const ra__problem *p, int64_t b, int64_t t, int64_t limit)
{
    if (!p->pages || limit <= t)
        return limit;
    const int64_t ps = p->page_size;
    const int32_t *page = p->pages + p->page_at[b] + t / ps;
    int64_t end = (t / ps + 1) * ps;
    /* pages that follow each other in both pools read as one run */
    const bool joins = p->k.sp == ps * p->k.st && p->v.sp == ps * p->v.st;
    for (; joins && end < limit && page[1] == page[0] + 1; page++)
        end += ps;
    return end < limit ? end : limit;
}

bool ra__kv_one_run(const ra__problem *p, int64_t b, int64_t t, int64_t end)
{
    return ra__kv_run_end(p, b, t, end) >= end;
}

void ra__kv_rows(const ra__problem *p, const ra__operand *x, int64_t b, int64_t t0, int64_t n,
                 int64_t j, const char **rows)
{
    const size_t es = ra__dtype_size(x->dtype);
    if (!p->pages || n <= 0) {
        for (int64_t i = 0; i < n; i++)
            rows[i] = ra__kv_row(p, x, b, t0 + i, j, es);
        return;
    }
    /* one division, then row by row through the pages */
    const int64_t ps = p->page_size;
    const int32_t *page = p->pages + p->page_at[b] + t0 / ps;
    int64_t in = t0 % ps;
    const char *head = (const char *)x->data + (size_t)(j * x->sh) * es;
    for (int64_t i = 0; i < n; i++) {
        rows[i] = head + (size_t)(*page * x->sp + in * x->st) * es;
        if (++in == ps) {
            in = 0;
            page++;
        }
    }
}

size_t ra__kv_lines(const ra__problem *p, const ra__operand *x, int64_t b, int64_t t0, int64_t n,
                    int64_t j, const char **lines)
{
    const size_t es = ra__dtype_size(x->dtype), row = (size_t)x->st * es;
    size_t count = 0;
    uintptr_t next = 0; /* the end of the last line written */
    const char *head = (const char *)x->data + (size_t)(j * x->sh) * es;
    const int64_t ps = p->pages ? p->page_size : n;
    const int32_t *page = p->pages ? p->pages + p->page_at[b] + t0 / ps : NULL;
    int64_t in = p->pages ? t0 % ps : 0;
    for (int64_t i = 0; i < n;) { /* one page at a time (the whole range if contiguous) */
        const int64_t k = ps - in < n - i ? ps - in : n - i;
        const uintptr_t at = (uintptr_t)(page ? head + (size_t)(*page * x->sp + in * x->st) * es
                                              : ra__kv_row(p, x, b, t0, j, es));
        const uintptr_t end = at + (size_t)k * row;
        /* a page that follows the last one in memory continues its lines */
        for (uintptr_t line = at >= next || at + 64 < next ? at & ~(uintptr_t)63 : next;
             line < end; line += 64)
            lines[count++] = (const char *)line;
        next = (end + 63) & ~(uintptr_t)63;
        i += k;
        in = 0;
        page += page != NULL;
    }
    return count;
}

/* Prefetches rows [i0, i1) of heads [j0, j0 + heads) from base (a page, or a sequence), every
 * step-th row. */
static void prefetch_row_starts(const ra__operand *x, const char *base, int64_t i0, int64_t i1,
                                int64_t step, int64_t j0, int64_t heads, size_t es)
{
    for (int64_t h = 0; h < heads; h++)
        for (int64_t i = i0; i < i1; i += step)
            __builtin_prefetch(base + (size_t)(i * x->st + (j0 + h) * x->sh) * es, 0, RA_PF_HINT);
}

void ra__kv_translate_ahead(const ra__problem *p, const ra__operand *x, int64_t b, int64_t t0,
                            int64_t n, int64_t j0, int64_t nh)
{
    const size_t es = ra__dtype_size(x->dtype), st = (size_t)x->st * es;
    if (n <= 0 || (!p->pages && st < RA_TRANSLATE_MIN_ROW))
        return;
    /* heads side by side in a row start in one page; heads apart (HND views) each in theirs */
    const int64_t heads = x->sh == p->D ? 1 : nh;
    /* rows closer than a page: one prefetch per page's worth of them */
    const int64_t step = st >= 4096 ? 1 : (int64_t)(4096 / (st ? st : 1));
    if (!p->pages) {
        const char *base = (const char *)x->data + (size_t)(b * x->sb) * es;
        prefetch_row_starts(x, base, t0, t0 + n, step, j0, heads, es);
        return;
    }
    const int64_t ps = p->page_size;
    const int32_t *page = p->pages + p->page_at[b] + t0 / ps;
    for (int64_t t = t0, in = t0 % ps; t < t0 + n; page++, in = 0) {
        const int64_t k = ps - in < t0 + n - t ? ps - in : t0 + n - t;
        const char *base = (const char *)x->data + (size_t)(*page * x->sp) * es;
        prefetch_row_starts(x, base, in, in + k, step, j0, heads, es);
        t += k;
    }
}

void ra__kv_scales(const ra__problem *p, const ra__operand *x, int64_t b, int64_t t0, int64_t n,
                   int64_t j, float *out)
{
    const float *head = x->scale + j * x->c_sh;
    if (!p->pages) {
        for (int64_t i = 0; i < n; i++)
            out[i] = head[b * x->c_sb + (t0 + i) * x->c_st];
        return;
    }
    const int64_t ps = p->page_size;
    const int32_t *page = p->pages + p->page_at[b] + t0 / ps;
    int64_t in = t0 % ps;
    for (int64_t i = 0; i < n; i++) {
        out[i] = head[*page * x->c_sp + in * x->c_st];
        if (++in == ps) {
            in = 0;
            page++;
        }
    }
}

/* The bytes of heads [j0, j0 + nh) of one row, when they are contiguous; else 0. */
static size_t heads_bytes(const ra__operand *x, int64_t nh, int64_t D, size_t es)
{
    return x->sd == 1 && (nh == 1 || x->sh == D) ? (size_t)(nh * D) * es : 0;
}

static void prefetch_bytes(const char *at, size_t bytes)
{
    for (size_t off = 0; off < bytes; off += 64)
        __builtin_prefetch(at + off, 0, RA_PF_HINT);
}

void ra__kv_gather(const ra__problem *p, const ra__operand *x, int64_t b, int64_t t0, int64_t n,
                   int64_t j0, int64_t nh, void *dst, int64_t nb, int64_t next, int64_t n_next)
{
    const int64_t D = p->D;
    const size_t es = ra__dtype_size(x->dtype), whole = heads_bytes(x, nh, D, es);
    char *out = dst;
    for (int64_t i = 0; i < n || i < n_next; i++) {
        if (i < n_next) {
            if (whole)
                prefetch_bytes(ra__kv_row(p, x, nb, next + i, j0, es), whole);
            else
                for (int64_t jj = 0; jj < nh && x->sd == 1; jj++)
                    prefetch_bytes(ra__kv_row(p, x, nb, next + i, j0 + jj, es), (size_t)D * es);
        }
        if (i >= n)
            continue;
        if (whole) {
            memcpy(out, ra__kv_row(p, x, b, t0 + i, j0, es), whole);
            out += whole;
            continue;
        }
        for (int64_t jj = 0; jj < nh; jj++) {
            const char *row = ra__kv_row(p, x, b, t0 + i, j0 + jj, es);
            for (int64_t d = 0; d < D; d++, out += es)
                memcpy(out, row + (size_t)(d * x->sd) * es, es);
        }
    }
}
