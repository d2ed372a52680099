/* Multi-token queries with a causal mask, as two passes of the decode engine and one merge.
 *
 * Sequence b has n = qlen[b] new tokens, the last n of its L cached positions; its query i
 * sees the positions before L - n + i + 1. The queries are cut into blocks of up to Tq
 * consecutive ones, and the work of block [i0, i0 + nq) into two parts:
 *   - the prefix [0, L - n + i0 + 1), which every query of the block sees: one decode entry
 *     whose query heads are the block's queries of each KV head (the engine's group of G
 *     query heads per KV head becomes Tq*G rows), so that a K/V tile is read once for all of
 *     them and the kernels get rows enough to be compute-bound;
 *   - the diagonal: query i0 + k (k >= 1) also sees the k positions after the prefix, one
 *     small decode entry each (first[] starts it there). Where the prefix pass runs on the
 *     wide steps, the prefix entry covers these too, as a causal group (see folds).
 * Both passes leave un-normalized (o, m, l) states; the merge adds the sinks, applies the
 * output convention and writes the caller's rows. Where the diagonal folds, each row is whole
 * in one entry, and the engine reads the caller's queries and writes its rows itself (direct
 * rows, set_rows). Rows past qlen[b] get the empty state. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "alloc_internal.h"
#include "decode.h"
#include "common/dtype.h"
#include "common/lse.h"
#include "multi.h"
#include "common/size_math.h"
#include "status_internal.h"
#include "team.h"
#include "tensor_internal.h"

/* Query rows per KV head that a prefix entry aims for, where the kernel has no wide steps:
 * enough for the kernels to reuse each K/V tile many times, few enough to keep a tile's
 * logits and outputs in cache. */
#ifndef RA_MULTI_ROWS
#define RA_MULTI_ROWS 16
#endif
/* The same where it has wide steps (ra__plan_wide_rows, a minimum of 64 rows): each K/V tile
 * they widen then serves 128 rows (docs/multi_token.md). */
#ifndef RA_MULTI_WIDE_ROWS
#define RA_MULTI_WIDE_ROWS 128
#endif
_Static_assert(RA_MULTI_WIDE_ROWS % 16 == 0, "blocks round to 16 rows within the maximum");
/* Scratch per round of blocks (see ra__multi), engine copies included; a round takes
 * cut.round_min blocks even past it (see next_round). */
#ifndef RA_MULTI_ROUND_BYTES
#define RA_MULTI_ROUND_BYTES ((size_t)8 << 20)
#endif

/* A pass of the engine: its problem and the states it leaves, [entries][heads][D] and
 * [entries][heads]. */
typedef struct pass {
    ra__problem p;
    int32_t *len, *first, *pages, *causal_n;
    int64_t *page_at, *row_b, *row_i0;
    char *q;
    float *o, *m, *l;
} pass;

/* Where one pass's arrays lie in the call's scratch: room for n entries and rows query rows
 * (entries times their query heads). */
typedef struct pass_at {
    size_t len, first, pages, causal_n, page_at, row_b, row_i0, q, o, m, l;
} pass_at;

static void take_pass(ra__arena *a, const ra__problem *p, int64_t n, int64_t rows, pass_at *at)
{
    at->len = ra__arena_take(a, n, 1, 1, sizeof(int32_t));
    at->first = ra__arena_take(a, n, 1, 1, sizeof(int32_t));
    at->causal_n = ra__arena_take(a, n, 1, 1, sizeof(int32_t));
    at->pages = ra__arena_take(a, p->pages ? 0 : n, 1, 1, sizeof(int32_t));
    at->page_at = ra__arena_take(a, n + 1, 1, 1, sizeof(int64_t));
    at->row_b = ra__arena_take(a, n, 1, 1, sizeof(int64_t));
    at->row_i0 = ra__arena_take(a, n, 1, 1, sizeof(int64_t));
    at->q = ra__arena_take(a, rows, p->D, 1, ra__dtype_size(p->q.dtype));
    at->o = ra__arena_take(a, rows, p->D, 1, sizeof(float));
    at->m = ra__arena_take(a, rows, 1, 1, sizeof(float));
    at->l = ra__arena_take(a, rows, 1, 1, sizeof(float));
}

/* The pass's problem: entries of p's cache with hq query heads (their number is set per round),
 * un-normalized outputs, no sinks (the merge adds them; with direct rows, the engine adds the
 * caller's, see set_rows). A contiguous cache is viewed as a pool
 * of B pages of S positions, so that an entry names its sequence through the page table like a
 * paged one. */
static void init_pass(pass *x, char *base, const pass_at *at, const ra__problem *p, int64_t hq)
{
    x->len = (int32_t *)(base + at->len);
    x->first = (int32_t *)(base + at->first);
    x->causal_n = (int32_t *)(base + at->causal_n);
    x->pages = p->pages ? NULL : (int32_t *)(base + at->pages);
    x->page_at = (int64_t *)(base + at->page_at);
    x->row_b = (int64_t *)(base + at->row_b);
    x->row_i0 = (int64_t *)(base + at->row_i0);
    x->q = base + at->q;
    x->o = (float *)(base + at->o);
    x->m = (float *)(base + at->m);
    x->l = (float *)(base + at->l);
    const int64_t D = p->D;
    ra__problem d = {
        .B = 0, .S = p->S, .Hq = hq, .Hkv = p->Hkv, .G = hq / p->Hkv, .D = D,
        .q = {x->q, p->q.dtype, hq * D, 0, D, 1, 0, NULL, 0, 0, 0, 0},
        .k = p->k, .v = p->v, .T = 1, .len = x->len, .first = x->first,
        .causal_n = x->causal_n, .row_b = x->row_b, .row_i0 = x->row_i0,
        .pages = p->pages ? p->pages : x->pages, .page_at = x->page_at,
        .page_size = p->pages ? p->page_size : p->S,
        .o = x->o, .o_sb = hq * D, .o_sh = D, .o_sd = 1,
        .m = x->m, .m_sb = hq, .m_sh = 1, .l = x->l, .l_sb = hq, .l_sh = 1,
        .normalize = false, .scale = p->scale, .mask_value = p->mask_value,
        .softcap = p->softcap, .block_size = p->block_size, .split_tokens = p->split_tokens,
        .num_threads = p->num_threads, .kernel = p->kernel,
    };
    if (!p->pages) { /* sequence b is page b: the batch stride becomes the page stride */
        ra__operand *ops[2] = {&d.k, &d.v};
        for (int i = 0; i < 2; i++) {
            ops[i]->sp = ops[i]->sb;
            ops[i]->sb = 0;
            ops[i]->c_sp = ops[i]->c_sb;
            ops[i]->c_sb = 0;
        }
    }
    x->p = d;
}

/* Points entry e of x at sequence b of p's cache, its rows at queries from i (direct rows). */
static void entry_sequence(pass *x, const ra__problem *p, int64_t e, int64_t b, int64_t i)
{
    x->row_b[e] = b;
    x->row_i0[e] = i;
    if (p->pages) {
        x->page_at[e] = p->page_at[b];
    } else {
        x->pages[e] = (int32_t)b;
        x->page_at[e] = e;
    }
}

/* Copies query i of sequence b, heads [h0, h0 + nh), to dst [nh][D] in q's dtype. */
static void copy_query(const ra__problem *p, int64_t b, int64_t i, int64_t h0, int64_t nh,
                       char *dst)
{
    const size_t es = ra__dtype_size(p->q.dtype);
    const int64_t D = p->D;
    for (int64_t h = h0; h < h0 + nh; h++, dst += (size_t)D * es) {
        const char *src = (const char *)p->q.data +
                          (size_t)(b * p->q.sb + i * p->q.st + h * p->q.sh) * es;
        if (p->q.sd == 1)
            memcpy(dst, src, (size_t)D * es);
        else
            for (int64_t d = 0; d < D; d++)
                memcpy(dst + (size_t)d * es, src + (size_t)(d * p->q.sd) * es, es);
    }
}

/* Writes row (b, i, h) of the caller's outputs from parts a and (when c_o is not NULL) c. */
static void write_row(const ra__problem *p, int64_t b, int64_t i, int64_t h, const float *a_o,
                      float a_m, float a_l, const float *c_o, float c_m, float c_l)
{
    float M = p->sinks ? p->sinks[h] : -INFINITY;
    M = ra__nan_max(M, a_m);
    if (c_o)
        M = ra__nan_max(M, c_m);
    const float wa = ra__merge_weight(a_m, M), wc = c_o ? ra__merge_weight(c_m, M) : 0.0f;
    float L = wa * a_l;
    if (c_o)
        L += wc * c_l;
    if (p->sinks)
        L += ra__merge_weight(p->sinks[h], M);
    float *out = p->o + b * p->o_sb + i * p->o_st + h * p->o_sh;
    for (int64_t d = 0; d < p->D; d++) {
        float acc = wa * a_o[d];
        if (c_o)
            acc += wc * c_o[d];
        out[d * p->o_sd] = ra__finish_o(acc, L, p->normalize);
    }
    if (p->m)
        p->m[b * p->m_sb + i * p->m_st + h * p->m_sh] = M;
    if (p->l)
        p->l[b * p->l_sb + i * p->l_st + h * p->l_sh] = L;
}

static void write_empty_row(const ra__problem *p, int64_t b, int64_t i, int64_t h)
{
    float *out = p->o + b * p->o_sb + i * p->o_st + h * p->o_sh;
    for (int64_t d = 0; d < p->D; d++)
        out[d * p->o_sd] = 0.0f;
    if (p->m)
        p->m[b * p->m_sb + i * p->m_st + h * p->m_sh] = -INFINITY;
    if (p->l)
        p->l[b * p->l_sb + i * p->l_st + h * p->l_sh] = 0.0f;
}

/* T = 1: the decode engine on the sequences that have their query; the others are emptied
 * afterwards (so the results are those of ra_ragged_gqa / ra_paged_gqa, bit for bit). */
static ra_status run_single(const ra__problem *p)
{
    bool any_empty = false;
    for (int64_t b = 0; b < p->B; b++)
        any_empty |= p->qlen[b] == 0;
    ra__problem d = *p;
    int32_t *len = NULL;
    if (any_empty) {
        if (!(len = ra__alloc(sizeof(int32_t) * (size_t)p->B)))
            return ra__fail(RA_ERR_OUT_OF_MEMORY, "multi-token: cannot allocate %lld lengths",
                            (long long)p->B);
        for (int64_t b = 0; b < p->B; b++)
            len[b] = p->qlen[b] ? p->len[b] : 0;
        d.len = len;
    }
    ra_status s = ra__decode(&d);
    if (s == RA_OK)
        for (int64_t b = 0; b < p->B; b++)
            for (int64_t h = 0; h < p->Hq && !p->qlen[b]; h++)
                write_empty_row(p, b, 0, h);
    ra__free(len);
    return s;
}

/* A block of queries: nq of sequence b from query i0. */
typedef struct block {
    int64_t b, i0, nq;
} block;

/* How a call cuts queries into blocks: at most tq_max per block; where blocks split evenly,
 * and for blocks of at least wide_q queries (the wide steps' minimum rows), a multiple of
 * quantum, so that their rows per KV head stay whole 16-row blocks for the wide steps. Blocks
 * of fold_q queries or more run on the wide steps, which mask each row's positions itself:
 * their diagonal folds into the prefix entry (see folds). */
typedef struct cut {
    int64_t tq_max, quantum, wide_q, fold_q;
    int64_t round_min; /* blocks a round holds before its byte cap applies (see next_round) */
} cut;

/* The queries per block of sequence b: up to tq_max, no more than it has, save that a block
 * of at least wide_q queries rounds up to the quantum (21 queries at quantum 4: a block of 24,
 * three of them padding, that the wide steps serve; tq_max is a multiple of the quantum). A
 * last block of 2 <= r < tq_max queries would be padded to tq_max rows, so then the queries
 * split into as few blocks as they need, each ceil(n / blocks) rounded up to the quantum (1
 * without wide steps), but the last: it pads fewer rows, never more (22 queries at tq_max 16: 11 + 11 rather than 16 + 6 padded to 16; 70 at tq_max 32 and
 * quantum 4: 24 + 24 + 22). A last block of one query is a lone block (below), which pads
 * nothing. A function of the sequence alone, so that its rows do not depend on the rest of
 * the batch (the blocks set which rows share a kernel tile and where the prefix and diagonal
 * parts meet). */
static int64_t block_size(const ra__problem *p, const cut *c, int64_t b)
{
    const int64_t n = p->qlen[b], tq_max = c->tq_max, blocks = (n + tq_max - 1) / tq_max;
    const int64_t q = c->quantum;
    if (n < tq_max)
        return n >= c->wide_q ? (n + q - 1) / q * q : n; /* <= tq_max, a multiple of q */
    if (n % tq_max <= 1)
        return tq_max;
    const int64_t even = (n + blocks - 1) / blocks;
    return (even + q - 1) / q * q;
}

/* The block after *x (from {0, 0, 0}: the first) among the sequences whose block size is Tq,
 * in (b, i0) order; false past the last. */
static bool next_block(const ra__problem *p, const cut *c, int64_t Tq, block *x)
{
    int64_t b = x->b, i0 = x->i0 + x->nq;
    while (b < p->B && (i0 >= p->qlen[b] || block_size(p, c, b) != Tq)) {
        b++;
        i0 = 0;
    }
    if (b >= p->B)
        return false;
    *x = (block){b, i0, p->qlen[b] - i0 < Tq ? p->qlen[b] - i0 : Tq};
    return true;
}

/* A block of one query (a sequence that decodes while others prefill, or a chunk's last
 * query) is one diagonal-pass entry over its whole prefix: a prefix entry would compute Tq
 * queries' rows for it. */
static bool lone(int64_t Tq, const block *x)
{
    return x->nq == 1 && Tq > 1;
}

/* Whether blocks of Tq queries fold their diagonal into the prefix entry: one entry over all
 * the positions its last query sees, as a causal group (ra__problem.causal_g) whose rows each
 * stop at their own query's end, and no diagonal entries. Only the wide steps mask rows. */
static bool folds(const ra__problem *p, const cut *c, int64_t Tq)
{
    return Tq > 1 && Tq >= c->fold_q && Tq * p->G % 16 == 0;
}

/* Scratch bytes a block adds to a round, counting the engine's own copies of q and the states
 * (about as large again): so that a round stays within RA_MULTI_ROUND_BYTES. */
static size_t block_bytes(const ra__problem *p, int64_t Tq, int64_t hq_a, bool fold,
                          const block *x)
{
    const double row = (double)p->D * ((double)ra__dtype_size(p->q.dtype) + 12.0) + 16.0;
    const double diag = fold ? 0.0 : (double)(x->nq - 1) * (double)p->Hq;
    const double rows = lone(Tq, x) ? (double)p->Hq : (double)hq_a + diag;
    return rows * row > (double)SIZE_MAX / 4 ? SIZE_MAX / 4 : (size_t)(rows * row);
}

/* A block of a round and where its entries start in the prefix pass (ea) and the diagonal
 * pass (ec). */
typedef struct placed {
    block x;
    int64_t ea, ec;
} placed;

/* The blocks of one round from *x on (advancing *x past them): how many, and the entries
 * they make in the prefix pass and the diagonal pass; each block placed in out, in (b, i0)
 * order, unless out is NULL. A round holds c->round_min blocks even past
 * RA_MULTI_ROUND_BYTES (up to 8 times it), so that large blocks still give each thread of the
 * team work: a prefix entry is one work item. */
static bool next_round(const ra__problem *p, const cut *c, int64_t Tq, block *x, placed *out,
                       int64_t *n_blk, int64_t *n_a, int64_t *n_c)
{
    const int64_t hq_a = p->Hkv * Tq * p->G;
    const bool fold = folds(p, c, Tq);
    size_t bytes = 0;
    *n_blk = *n_a = *n_c = 0;
    block y = *x;
    while (next_block(p, c, Tq, &y)) {
        const size_t add = block_bytes(p, Tq, hq_a, fold, &y);
        if (*n_blk > 0 && bytes + add > RA_MULTI_ROUND_BYTES &&
            (*n_blk >= c->round_min || bytes + add > 8 * RA_MULTI_ROUND_BYTES))
            break;
        bytes += add;
        if (out)
            out[*n_blk] = (placed){y, *n_a, *n_c};
        ++*n_blk;
        *n_a += !lone(Tq, &y);
        *n_c += lone(Tq, &y) ? 1 : fold ? 0 : y.nq - 1;
        *x = y;
    }
    return *n_blk > 0;
}

/* Fills the entries of placed block y: its prefix entry (its queries' rows of each KV head)
 * and diagonal entries, or the one entry of a lone block; their queries only with_q (sizing
 * the engine's scratch needs the entries alone). */
static void fill_block(const ra__problem *p, const cut *c, int64_t Tq, const placed *y,
                       bool with_q, pass *pa, pass *pc)
{
    const int64_t G = p->G, Hkv = p->Hkv, Hq = p->Hq, hq_a = Hkv * Tq * G;
    const size_t qrow = (size_t)p->D * ra__dtype_size(p->q.dtype);
    const bool fold = folds(p, c, Tq);
    const int64_t b = y->x.b, i0 = y->x.i0, nq = y->x.nq, ea = y->ea;
    int64_t ec = y->ec;
    const int64_t seen = p->len[b] - p->qlen[b] + i0 + 1; /* the block's shared prefix */
    if (lone(Tq, &y->x)) {
        entry_sequence(pc, p, ec, b, i0);
        pc->first[ec] = 0;
        pc->len[ec] = (int32_t)seen;
        if (with_q)
            copy_query(p, b, i0, 0, Hq, pc->q + (size_t)(ec * Hq) * qrow);
        return;
    }
    entry_sequence(pa, p, ea, b, i0);
    pa->len[ea] = (int32_t)(fold ? seen + nq - 1 : seen);
    pa->first[ea] = 0;
    pa->causal_n[ea] = (int32_t)nq;
    for (int64_t j = 0; j < Hkv && with_q; j++)
        for (int64_t k = 0; k < Tq; k++) {
            char *dst = pa->q + (size_t)(ea * hq_a + (j * Tq + k) * G) * qrow;
            if (k < nq)
                copy_query(p, b, i0 + k, j * G, G, dst);
            else /* a short block: rows that nobody reads back */
                memset(dst, 0, (size_t)G * qrow);
        }
    for (int64_t k = 1; !fold && k < nq; k++, ec++) {
        entry_sequence(pc, p, ec, b, i0 + k);
        pc->first[ec] = (int32_t)seen;
        pc->len[ec] = (int32_t)(seen + k);
        if (with_q)
            copy_query(p, b, i0 + k, 0, Hq, pc->q + (size_t)(ec * Hq) * qrow);
    }
}

/* Writes the rows of placed block y from the passes' states (rounds that do not fold: a
 * block's rows past its first combine the prefix and diagonal entries). */
static void merge_block(const ra__problem *p, int64_t Tq, const placed *y, const pass *pa,
                        const pass *pc)
{
    const int64_t G = p->G, Hq = p->Hq, D = p->D, hq_a = p->Hkv * Tq * G;
    const block *x = &y->x;
    int64_t ec = y->ec;
    if (lone(Tq, x)) { /* its whole prefix is one diagonal entry */
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t rc = ec * Hq + h;
            write_row(p, x->b, x->i0, h, pc->o + rc * D, pc->m[rc], pc->l[rc], NULL, 0.0f, 0.0f);
        }
        return;
    }
    for (int64_t k = 0; k < x->nq; k++) {
        const bool diag = k > 0;
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t ra = y->ea * hq_a + (h / G * Tq + k) * G + h % G, rc = ec * Hq + h;
            write_row(p, x->b, x->i0 + k, h, pa->o + ra * D, pa->m[ra], pa->l[ra],
                      diag ? pc->o + rc * D : NULL, diag ? pc->m[rc] : 0.0f,
                      diag ? pc->l[rc] : 0.0f);
        }
        ec += diag;
    }
}

/* Threads for filling or merging the n placed blocks of a round: copies of whole query rows,
 * worth a team only in calls with many of them (ra__team_size's work rule, rows x Hq x D). */
static int copy_team(const ra__problem *p, int64_t Tq, int64_t n)
{
    return ra__team_size(p->num_threads, n, n * Tq, p->Hq, p->D);
}

static void fill_round(const ra__problem *p, const cut *c, int64_t Tq, const placed *y,
                       int64_t n, bool with_q, pass *pa, pass *pc)
{
    const int team = with_q ? copy_team(p, Tq, n) : 1;
#pragma omp parallel for num_threads(team) if (team > 1) schedule(dynamic)
    for (int64_t i = 0; i < n; i++)
        fill_block(p, c, Tq, &y[i], with_q, pa, pc);
}

static void merge_round(const ra__problem *p, int64_t Tq, const placed *y, int64_t n,
                        const pass *pa, const pass *pc)
{
    const int team = copy_team(p, Tq, n);
#pragma omp parallel for num_threads(team) if (team > 1) schedule(dynamic)
    for (int64_t i = 0; i < n; i++)
        merge_block(p, Tq, &y[i], pa, pc);
}

/* The passes of blocks of Tq queries: where the diagonal folds into the prefix entries, every
 * row is whole in one entry (a prefix entry or a lone block's), and the engine reads the
 * caller's q and writes its rows directly (ra__problem.rows_of); otherwise the passes hold
 * copies of q and their states, which the merge combines. Returns whether rows are direct. */
static bool set_rows(const ra__problem *p, const cut *c, int64_t Tq, pass *pa, pass *pc)
{
    const bool direct = folds(p, c, Tq);
    pa->p.causal_g = direct ? p->G : 0;
    pa->p.rows_of = pc->p.rows_of = direct ? p : NULL;
    pa->p.row_t = Tq;
    pc->p.row_t = 1;
    return direct;
}

ra_status ra__multi(const ra__problem *p)
{
    if (p->B == 0 || p->Hq == 0 || p->T == 0)
        return RA_OK;
    if (p->T == 1)
        return run_single(p);
    const int64_t G = p->G, Hkv = p->Hkv;
    /* Rows per KV head of a prefix entry: RA_MULTI_WIDE_ROWS where the kernel has wide steps
     * and whole queries make it, else RA_MULTI_ROWS. */
    bool lanes = false;
    const int64_t wide_min = ra__plan_wide_rows(p, &lanes);
    const int64_t wide = wide_min > RA_MULTI_WIDE_ROWS ? wide_min : RA_MULTI_WIDE_ROWS;
    cut cs = {G >= RA_MULTI_ROWS ? 1 : RA_MULTI_ROWS / G, 1, INT64_MAX, INT64_MAX, 1};
    if (wide_min > 0 && wide % 16 == 0 && G < wide && wide % G == 0 && wide_min % G == 0)
        cs = (cut){wide / G, G < 16 ? 16 / G : 1, wide_min / G,
                   lanes ? wide_min / G : INT64_MAX, 1};
    /* Two blocks per thread the passes may have: rounds never change a row's bits. */
    cs.round_min = 2 * (int64_t)ra__team_cap(p->num_threads, INT64_MAX, INT64_MAX, 1, 1);
    const cut *c = &cs;
    const int64_t tq_max = c->tq_max;
    if (!p->pages && p->B > INT32_MAX)
        return ra__fail(RA_ERR_OVERFLOW, "multi-token: B = %lld sequences", (long long)p->B);

    /* Sequences go by block size (their prefix entries' rows differ); each size in rounds of
     * whole blocks with bounded scratch, allocated once for the largest round: memory stays
     * proportional to a round, not to T, and the allocator can reuse it call after call
     * instead of handing out fresh pages that must be zeroed. */
    int64_t max_blk = 0, max_a = 0, rows_a = 0, max_c = 0, n_blk, n_a, n_c;
    for (int64_t Tq = 1; Tq <= tq_max; Tq++)
        for (block x = {0, 0, 0}; next_round(p, c, Tq, &x, NULL, &n_blk, &n_a, &n_c);) {
            max_blk = n_blk > max_blk ? n_blk : max_blk;
            max_a = n_a > max_a ? n_a : max_a;
            rows_a = n_a * Hkv * Tq * G > rows_a ? n_a * Hkv * Tq * G : rows_a;
            max_c = n_c > max_c ? n_c : max_c;
        }
    ra__arena a = {0, false};
    pass_at at_a, at_c;
    take_pass(&a, p, max_a, rows_a, &at_a);
    take_pass(&a, p, max_c, max_c * p->Hq, &at_c); /* < B * T * Hq: no overflow */
    const size_t at_placed = ra__arena_take(&a, max_blk, 1, 1, sizeof(placed));
    if (a.overflow)
        return ra__fail(RA_ERR_OVERFLOW, "multi-token: scratch for %lld query rows overflows",
                        (long long)rows_a);
    char *base = ra__alloc(a.used);
    if (!base)
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "multi-token: cannot allocate %zu bytes of "
                        "scratch", a.used);
    pass pa, pc;
    init_pass(&pc, base, &at_c, p, p->Hq);
    placed *round = (placed *)(void *)(base + at_placed);
    /* The engine's scratch for the largest pass of every round, sized by planning each round
     * ahead and allocated once: past that allocation nothing can fail, so a call that fails
     * has written nothing, and the rows go straight to the caller's outputs. */
    size_t engine_bytes = 0;
    ra_status s = RA_OK;
    for (int64_t Tq = 1; s == RA_OK && Tq <= tq_max; Tq++) {
        init_pass(&pa, base, &at_a, p, Hkv * Tq * G);
        set_rows(p, c, Tq, &pa, &pc);
        for (block x = {0, 0, 0};
             s == RA_OK && next_round(p, c, Tq, &x, round, &n_blk, &n_a, &n_c);) {
            size_t ba = 0, bc = 0;
            pa.p.B = n_a;
            pc.p.B = n_c;
            fill_round(p, c, Tq, round, n_blk, false, &pa, &pc);
            s = ra__decode_bytes(&pa.p, &ba);
            if (s == RA_OK)
                s = ra__decode_bytes(&pc.p, &bc);
            engine_bytes = ba > engine_bytes ? ba : engine_bytes;
            engine_bytes = bc > engine_bytes ? bc : engine_bytes;
        }
    }
    void *engine = s == RA_OK ? ra__alloc(engine_bytes) : NULL;
    if (s == RA_OK && !engine)
        s = ra__fail(RA_ERR_OUT_OF_MEMORY, "multi-token: cannot allocate %zu bytes of engine "
                     "scratch", engine_bytes);
    for (int64_t Tq = 1; s == RA_OK && Tq <= tq_max; Tq++) {
        init_pass(&pa, base, &at_a, p, Hkv * Tq * G);
        const bool direct = set_rows(p, c, Tq, &pa, &pc);
        for (block x = {0, 0, 0};
             s == RA_OK && next_round(p, c, Tq, &x, round, &n_blk, &n_a, &n_c);) {
            pa.p.B = n_a;
            pc.p.B = n_c;
            fill_round(p, c, Tq, round, n_blk, !direct, &pa, &pc);
            s = ra__decode_in(&pa.p, engine, engine_bytes);
            if (s == RA_OK)
                s = ra__decode_in(&pc.p, engine, engine_bytes);
            if (s == RA_OK && !direct)
                merge_round(p, Tq, round, n_blk, &pa, &pc);
        }
    }
    for (int64_t b = 0; s == RA_OK && b < p->B; b++) /* padding rows */
        for (int64_t i = p->qlen[b]; i < p->T; i++)
            for (int64_t h = 0; h < p->Hq; h++)
                write_empty_row(p, b, i, h);
    ra__free(engine);
    ra__free(base);
    return s;
}
