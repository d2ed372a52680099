/* raggedattn_mpi under mpirun: sharded attention (each rank's slice a contiguous cache, or
 * pages) against a double oracle over the whole cache and against the single-process
 * ra_ragged_gqa + ra_merge result, for 1, 2 or 3 ranks.
 *
 * Not CMocka: a failed CMocka assertion leaves its test on one rank while the others wait in a
 * collective. Here a failed check is counted and the rank carries on, so the ranks stay in
 * step; after each case they add up their failures and rank 0 reports the case. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raggedattn_mpi.h"
#include "shard_oracle.h"

/* f32 inputs: 1e-5 relative to max|o| (the project's tolerance); m and the log-sum-exp
 * M + log L to 1e-5 relative to max(1, |value|). */
#define TOL 1e-5

static int g_rank, g_size, g_failures;

static void check_(bool ok, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check_(bool ok, int line, const char *fmt, ...)
{
    if (ok)
        return;
    ++g_failures;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[rank %d] line %d: ", g_rank, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}
#define CHECK(cond, ...) check_((cond), __LINE__, __VA_ARGS__)

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "[rank %d] out of memory\n", g_rank);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return p;
}

static ra_tensor *wrap(ra_dtype dt, int64_t a, int64_t b, int64_t c, int64_t d,
                       const int64_t *strides, void *data)
{
    const int64_t shape[4] = {a, b, c, d};
    ra_tensor *t = NULL;
    ra_status s = ra_tensor_wrap(&t, dt, 4, shape, strides, data);
    if (s != RA_OK) {
        fprintf(stderr, "[rank %d] ra_tensor_wrap: %s\n", g_rank, ra_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return t;
}

/* ---- the whole problem, known to every rank ------------------------------------------------ */

typedef struct problem {
    int64_t B, S, Hq, Hkv, D;
    ra_dtype kv_dtype;
    float *q, *k, *v;      /* f32 [B,Hq,D] and [B,S,Hkv,D], bf16-representable for bf16 */
    uint16_t *k16, *v16;   /* the same values as bf16, when kv_dtype is bf16 */
    int32_t len[8];
    double *o_or, *m_or, *l_or;     /* the oracle */
    float *o_sp, *m_sp, *l_sp;      /* one process: ra_ragged_gqa over the whole cache + ra_merge */
    ra_options *opts;
} problem;

static float kv_value(ra_dtype dt, uint64_t seed, uint64_t i)
{
    float x = so_value(seed, i);
    return dt == RA_DTYPE_BF16 ? so_bf16_to_f32(so_f32_to_bf16(x)) : x;
}

static void problem_init(problem *p, ra_dtype kv_dtype)
{
    memset(p, 0, sizeof *p);
    p->B = 5, p->S = 301, p->Hq = 8, p->Hkv = 2, p->D = 64;
    p->kv_dtype = kv_dtype;
    /* The whole cache, none of it, one position, and two that end on shard boundaries. */
    const int32_t len[5] = {301, 0, 1, 150, 200};
    memcpy(p->len, len, sizeof len);
    size_t nq = (size_t)(p->B * p->Hq * p->D), nkv = (size_t)(p->B * p->S * p->Hkv * p->D);
    p->q = xmalloc(nq * sizeof(float));
    p->k = xmalloc(nkv * sizeof(float));
    p->v = xmalloc(nkv * sizeof(float));
    for (size_t i = 0; i < nq; ++i)
        p->q[i] = so_value(1, i);
    for (size_t i = 0; i < nkv; ++i) {
        p->k[i] = kv_value(kv_dtype, 2, i);
        p->v[i] = kv_value(kv_dtype, 3, i);
    }
    if (kv_dtype == RA_DTYPE_BF16) {
        p->k16 = xmalloc(nkv * sizeof(uint16_t));
        p->v16 = xmalloc(nkv * sizeof(uint16_t));
        for (size_t i = 0; i < nkv; ++i) {
            p->k16[i] = so_f32_to_bf16(p->k[i]);
            p->v16[i] = so_f32_to_bf16(p->v[i]);
        }
    }
    size_t nh = (size_t)(p->B * p->Hq);
    p->o_or = xmalloc(nq * sizeof(double));
    p->m_or = xmalloc(nh * sizeof(double));
    p->l_or = xmalloc(nh * sizeof(double));
    p->o_sp = xmalloc(nq * sizeof(float));
    p->m_sp = xmalloc(nh * sizeof(float));
    p->l_sp = xmalloc(nh * sizeof(float));
    double scale = 1.0 / sqrt((double)p->D);
    if (ra_options_create(&p->opts) != RA_OK ||
        ra_options_set_scale(p->opts, (float)scale) != RA_OK ||
        ra_options_set_block_size(p->opts, 32) != RA_OK ||
        ra_options_set_num_threads(p->opts, 1) != RA_OK) {
        fprintf(stderr, "[rank %d] options: %s\n", g_rank, ra_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

static void problem_solve(problem *p)
{
    double scale = 1.0 / sqrt((double)p->D);
    so_attention(p->B, p->S, p->Hq, p->Hkv, p->D, p->q, p->k, p->v, p->len, scale, p->o_or,
                 p->m_or, p->l_or);

    /* The single-process result the sharded one must reproduce. */
    bool bf = p->kv_dtype == RA_DTYPE_BF16;
    ra_tensor *q = wrap(RA_DTYPE_F32, p->B, 1, p->Hq, p->D, NULL, p->q);
    ra_tensor *k = wrap(p->kv_dtype, p->B, p->S, p->Hkv, p->D, NULL, bf ? (void *)p->k16 : p->k);
    ra_tensor *v = wrap(p->kv_dtype, p->B, p->S, p->Hkv, p->D, NULL, bf ? (void *)p->v16 : p->v);
    const int64_t nb[1] = {p->B};
    ra_tensor *len = NULL;
    ra_tensor_wrap(&len, RA_DTYPE_I32, 1, nb, NULL, p->len);
    ra_tensor *o, *m, *l, *o_out, *m_out, *l_out;
    ra_tensor_create(&o, RA_DTYPE_F32, 4, (const int64_t[]){p->B, 1, p->Hq, p->D});
    ra_tensor_create(&m, RA_DTYPE_F32, 4, (const int64_t[]){p->B, 1, p->Hq, 1});
    ra_tensor_create(&l, RA_DTYPE_F32, 4, (const int64_t[]){p->B, 1, p->Hq, 1});
    o_out = wrap(RA_DTYPE_F32, p->B, 1, p->Hq, p->D, NULL, p->o_sp);
    m_out = wrap(RA_DTYPE_F32, p->B, 1, p->Hq, 1, NULL, p->m_sp);
    l_out = wrap(RA_DTYPE_F32, p->B, 1, p->Hq, 1, NULL, p->l_sp);
    ra_status s = ra_ragged_gqa(p->opts, q, k, v, len, o, m, l);
    if (s == RA_OK) {
        const ra_tensor *po[1] = {o}, *pm[1] = {m}, *pl[1] = {l};
        s = ra_merge(1, po, pm, pl, o_out, m_out, l_out);
    }
    if (s != RA_OK || len == NULL) {
        fprintf(stderr, "[rank %d] single-process result: %s\n", g_rank, ra_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    ra_tensor *all[] = {q, k, v, len, o, m, l, o_out, m_out, l_out};
    for (size_t i = 0; i < sizeof all / sizeof *all; ++i)
        ra_tensor_destroy(all[i]);
}

static void problem_free(problem *p)
{
    void *all[] = {p->q, p->k, p->v, p->k16, p->v16, p->o_or, p->m_or,
                   p->l_or, p->o_sp, p->m_sp, p->l_sp};
    for (size_t i = 0; i < sizeof all / sizeof *all; ++i)
        free(all[i]);
    ra_options_destroy(p->opts);
}

/* ---- this rank's shard ------------------------------------------------------------------ */

/* EVEN: P equal ranges. GAPPY: ranks 0..P-3 split the first half, rank P-2 holds nothing at
 * all, rank P-1 holds the rest. */
enum cut { EVEN, GAPPY };

static void cut_range(enum cut c, int64_t S, int P, int r, int64_t *start, int64_t *count)
{
    int64_t lo, hi;
    if (c == EVEN || P == 1) {
        lo = r * S / P, hi = (r + 1) * S / P;
    } else {
        int64_t mid = P == 2 ? 0 : S / 2;
        if (r < P - 2)
            lo = r * mid / (P - 2), hi = (r + 1) * mid / (P - 2);
        else if (r == P - 2)
            lo = hi = mid;
        else
            lo = mid, hi = S;
    }
    *start = lo, *count = hi - lo;
}

typedef struct shard {
    int32_t len[8];
    void *kbuf, *vbuf; /* copies of the slice, unless it is a view into the whole cache */
    ra_tensor *q, *k, *v, *lengths;
} shard;

/* view: strided tensors over the whole cache instead of contiguous copies of the slice. */
static void shard_init(shard *sh, const problem *p, enum cut c, bool view)
{
    memset(sh, 0, sizeof *sh);
    int64_t start, count;
    cut_range(c, p->S, g_size, g_rank, &start, &count);
    for (int64_t b = 0; b < p->B; ++b) {
        int64_t n = p->len[b] - start;
        sh->len[b] = (int32_t)(n < 0 ? 0 : n > count ? count : n);
    }
    bool bf = p->kv_dtype == RA_DTYPE_BF16;
    size_t esz = bf ? sizeof(uint16_t) : sizeof(float);
    const char *k = bf ? (const char *)p->k16 : (const char *)p->k;
    const char *v = bf ? (const char *)p->v16 : (const char *)p->v;
    int64_t row = p->Hkv * p->D; /* elements per (b, t) */
    if (view) {
        const int64_t st[4] = {p->S * row, row, p->D, 1};
        sh->k = wrap(p->kv_dtype, p->B, count, p->Hkv, p->D, st, (void *)(k + start * row * esz));
        sh->v = wrap(p->kv_dtype, p->B, count, p->Hkv, p->D, st, (void *)(v + start * row * esz));
    } else {
        size_t slice = (size_t)(count * row) * esz;
        sh->kbuf = xmalloc((size_t)p->B * slice);
        sh->vbuf = xmalloc((size_t)p->B * slice);
        for (int64_t b = 0; b < p->B; ++b) {
            size_t from = (size_t)((b * p->S + start) * row) * esz;
            memcpy((char *)sh->kbuf + b * slice, k + from, slice);
            memcpy((char *)sh->vbuf + b * slice, v + from, slice);
        }
        sh->k = wrap(p->kv_dtype, p->B, count, p->Hkv, p->D, NULL, sh->kbuf);
        sh->v = wrap(p->kv_dtype, p->B, count, p->Hkv, p->D, NULL, sh->vbuf);
    }
    sh->q = wrap(RA_DTYPE_F32, p->B, 1, p->Hq, p->D, NULL, p->q);
    const int64_t nb[1] = {p->B};
    if (ra_tensor_wrap(&sh->lengths, RA_DTYPE_I32, 1, nb, NULL, sh->len) != RA_OK)
        MPI_Abort(MPI_COMM_WORLD, 2);
}

static void shard_free(shard *sh)
{
    ra_tensor_destroy(sh->q);
    ra_tensor_destroy(sh->k);
    ra_tensor_destroy(sh->v);
    ra_tensor_destroy(sh->lengths);
    free(sh->kbuf);
    free(sh->vbuf);
}

/* ---- this rank's shard as pages -------------------------------------------------------- */

typedef struct paged_shard {
    int32_t len[8];
    int64_t page_size, num_pages, max_pages;
    void *kpool, *vpool;
    int32_t *table; /* [B][max_pages]; -1 past each sequence's last page */
    ra_tensor *q, *k, *v, *table_t, *lengths;
} paged_shard;

/* This rank's range of the cut, kept as pages of page_size positions in an order shuffled per
 * rank, in pools [num_pages, page_size, Hkv, D] (hnd: stored [num_pages, Hkv, page_size, D] and
 * passed as a strided view) with two spare pages. Every pool row that holds no valid position
 * is NaN, so a read of one would show in the result. */
static void paged_shard_init(paged_shard *ps, const problem *p, enum cut c, int64_t page_size,
                             bool hnd)
{
    memset(ps, 0, sizeof *ps);
    int64_t start, count;
    cut_range(c, p->S, g_size, g_rank, &start, &count);
    ps->page_size = page_size;
    ps->max_pages = (count + page_size - 1) / page_size;
    int64_t used = 0;
    for (int64_t b = 0; b < p->B; ++b) {
        int64_t n = p->len[b] - start;
        ps->len[b] = (int32_t)(n < 0 ? 0 : n > count ? count : n);
        used += (ps->len[b] + page_size - 1) / page_size;
    }
    ps->num_pages = used + 2;
    int32_t *order = xmalloc((size_t)ps->num_pages * sizeof(int32_t));
    for (int64_t i = 0; i < ps->num_pages; ++i)
        order[i] = (int32_t)i;
    for (int64_t i = ps->num_pages - 1; i > 0; --i) { /* Fisher-Yates from so_value */
        int64_t r = (int64_t)((so_value(40 + (uint64_t)g_rank, (uint64_t)i) + 1.0f) * 0.5f *
                              (float)(i + 1));
        r = r > i ? i : r;
        int32_t t = order[i];
        order[i] = order[r];
        order[r] = t;
    }
    ps->table = xmalloc((size_t)(p->B * (ps->max_pages ? ps->max_pages : 1)) * sizeof(int32_t));
    int64_t next = 0;
    for (int64_t b = 0; b < p->B; ++b)
        for (int64_t i = 0; i < ps->max_pages; ++i)
            ps->table[b * ps->max_pages + i] =
                i < (ps->len[b] + page_size - 1) / page_size ? order[next++] : -1;
    free(order);

    bool bf = p->kv_dtype == RA_DTYPE_BF16;
    size_t esz = bf ? sizeof(uint16_t) : sizeof(float);
    const int64_t H = p->Hkv, D = p->D, PS = page_size;
    const int64_t st[4] = {PS * H * D, hnd ? D : H * D, hnd ? PS * D : D, 1};
    size_t n = (size_t)(ps->num_pages * PS * H * D);
    ps->kpool = xmalloc(n * esz);
    ps->vpool = xmalloc(n * esz);
    const float nan_f = NAN;
    const uint16_t nan_bf = 0x7FC0;
    for (size_t i = 0; i < n; ++i) {
        memcpy((char *)ps->kpool + i * esz, bf ? (const void *)&nan_bf : &nan_f, esz);
        memcpy((char *)ps->vpool + i * esz, bf ? (const void *)&nan_bf : &nan_f, esz);
    }
    const char *k = bf ? (const char *)p->k16 : (const char *)p->k;
    const char *v = bf ? (const char *)p->v16 : (const char *)p->v;
    for (int64_t b = 0; b < p->B; ++b)
        for (int64_t t = 0; t < ps->len[b]; ++t) {
            int64_t page = ps->table[b * ps->max_pages + t / PS];
            for (int64_t j = 0; j < H; ++j) {
                size_t from = (size_t)(((b * p->S + start + t) * H + j) * D) * esz;
                size_t to = (size_t)(page * st[0] + (t % PS) * st[1] + j * st[2]) * esz;
                memcpy((char *)ps->kpool + to, k + from, (size_t)D * esz);
                memcpy((char *)ps->vpool + to, v + from, (size_t)D * esz);
            }
        }
    ps->k = wrap(p->kv_dtype, ps->num_pages, PS, H, D, st, ps->kpool);
    ps->v = wrap(p->kv_dtype, ps->num_pages, PS, H, D, st, ps->vpool);
    ps->q = wrap(RA_DTYPE_F32, p->B, 1, p->Hq, p->D, NULL, p->q);
    const int64_t nb[1] = {p->B}, ts[2] = {p->B, ps->max_pages};
    if (ra_tensor_wrap(&ps->lengths, RA_DTYPE_I32, 1, nb, NULL, ps->len) != RA_OK ||
        ra_tensor_wrap(&ps->table_t, RA_DTYPE_I32, 2, ts, NULL, ps->table) != RA_OK)
        MPI_Abort(MPI_COMM_WORLD, 2);
}

static void paged_shard_free(paged_shard *ps)
{
    ra_tensor *all[] = {ps->q, ps->k, ps->v, ps->table_t, ps->lengths};
    for (size_t i = 0; i < sizeof all / sizeof *all; ++i)
        ra_tensor_destroy(all[i]);
    free(ps->kpool);
    free(ps->vpool);
    free(ps->table);
}

/* ---- outputs, prefilled with a NaN pattern so that untouched memory shows ---------------- */

typedef struct outs {
    float *o, *m, *l;
    ra_tensor *to, *tm, *tl;
    size_t no, nh;
} outs;

static const uint32_t SENTINEL = 0x7FC0DEADu;

static void outs_init(outs *x, const problem *p)
{
    x->no = (size_t)(p->B * p->Hq * p->D), x->nh = (size_t)(p->B * p->Hq);
    x->o = xmalloc(x->no * sizeof(float));
    x->m = xmalloc(x->nh * sizeof(float));
    x->l = xmalloc(x->nh * sizeof(float));
    for (size_t i = 0; i < x->no; ++i)
        memcpy(&x->o[i], &SENTINEL, sizeof(float));
    for (size_t i = 0; i < x->nh; ++i) {
        memcpy(&x->m[i], &SENTINEL, sizeof(float));
        memcpy(&x->l[i], &SENTINEL, sizeof(float));
    }
    x->to = wrap(RA_DTYPE_F32, p->B, 1, p->Hq, p->D, NULL, x->o);
    x->tm = wrap(RA_DTYPE_F32, p->B, 1, p->Hq, 1, NULL, x->m);
    x->tl = wrap(RA_DTYPE_F32, p->B, 1, p->Hq, 1, NULL, x->l);
}

static bool outs_untouched(const outs *x)
{
    for (size_t i = 0; i < x->no; ++i)
        if (memcmp(&x->o[i], &SENTINEL, sizeof(float)) != 0)
            return false;
    for (size_t i = 0; i < x->nh; ++i)
        if (memcmp(&x->m[i], &SENTINEL, sizeof(float)) != 0 ||
            memcmp(&x->l[i], &SENTINEL, sizeof(float)) != 0)
            return false;
    return true;
}

static void outs_free(outs *x)
{
    ra_tensor_destroy(x->to);
    ra_tensor_destroy(x->tm);
    ra_tensor_destroy(x->tl);
    free(x->o);
    free(x->m);
    free(x->l);
}

/* ---- comparisons -------------------------------------------------------------------------- */

static double rel_f32(const float *got, const float *want, size_t n)
{
    double *w = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; ++i)
        w[i] = want[i];
    double e = so_rel_err(got, w, n);
    free(w);
    return e;
}

/* The merged state against the oracle and the single-process result. */
static void check_result(const problem *p, const outs *x, const char *what)
{
    double e_or = so_rel_err(x->o, p->o_or, x->no);
    double e_sp = rel_f32(x->o, p->o_sp, x->no);
    CHECK(e_or <= TOL, "%s: o vs the double oracle: rel err %.3g > %g", what, e_or, TOL);
    CHECK(e_sp <= TOL, "%s: o vs one process: rel err %.3g > %g", what, e_sp, TOL);
    for (size_t i = 0; i < x->nh; ++i) {
        double M = p->m_or[i], L = p->l_or[i];
        if (L == 0.0) {
            CHECK(x->m[i] == -INFINITY && x->l[i] == 0.0f, "%s: empty head %zu: M %g L %g", what,
                  i, (double)x->m[i], (double)x->l[i]);
            for (int64_t d = 0; d < p->D; ++d)
                CHECK(x->o[i * (size_t)p->D + (size_t)d] == 0.0f, "%s: empty head %zu: o != 0",
                      what, i);
            continue;
        }
        double lse = M + log(L), got = (double)x->m[i] + log((double)x->l[i]);
        CHECK(fabs(x->m[i] - M) <= TOL * fmax(1.0, fabs(M)), "%s: head %zu: M %.9g, oracle %.9g",
              what, i, (double)x->m[i], M);
        CHECK(fabs(got - lse) <= TOL * fmax(1.0, fabs(lse)),
              "%s: head %zu: M + log L %.9g, oracle %.9g", what, i, got, lse);
        CHECK(fabs(x->m[i] - p->m_sp[i]) <= TOL * fmax(1.0, fabs(M)),
              "%s: head %zu: M %.9g, one process %.9g", what, i, (double)x->m[i],
              (double)p->m_sp[i]);
    }
}

static const char *method_name(ra_mpi_method m)
{
    return m == RA_MPI_METHOD_GATHER ? "gather" : m == RA_MPI_METHOD_REDUCE ? "reduce" : "auto";
}

/* ---- cases ------------------------------------------------------------------------------- */

/* Every cut, method and destination gives the oracle's attention on the receiving ranks and
 * leaves the other ranks' outputs alone. */
static void case_matches_oracle(void)
{
    problem p;
    problem_init(&p, RA_DTYPE_F32);
    problem_solve(&p);
    const ra_mpi_method methods[3] = {RA_MPI_METHOD_AUTO, RA_MPI_METHOD_REDUCE,
                                      RA_MPI_METHOD_GATHER};
    for (int c = EVEN; c <= GAPPY; ++c) {
        shard sh;
        shard_init(&sh, &p, (enum cut)c, false);
        for (int mi = 0; mi < 3; ++mi) {
            const int roots[2] = {RA_MPI_ALL_RANKS, g_size - 1};
            for (int ri = 0; ri < 2; ++ri) {
                int r = roots[ri];
                char what[96];
                snprintf(what, sizeof what, "%s cut, %s, root %d",
                         c == EVEN ? "even" : "gappy", method_name(methods[mi]), r);
                outs x;
                outs_init(&x, &p);
                ra_status s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, r, methods[mi], p.opts, sh.q,
                                                sh.k, sh.v, sh.lengths, x.to, x.tm, x.tl);
                CHECK(s == RA_OK, "%s: %s", what, ra_mpi_last_error());
                if (r == RA_MPI_ALL_RANKS || r == g_rank)
                    check_result(&p, &x, what);
                else
                    CHECK(outs_untouched(&x), "%s: a non-root rank's outputs were written", what);
                outs_free(&x);
            }
        }
        shard_free(&sh);
    }
    problem_free(&p);
}

/* Non-root ranks may pass NULL outputs; m and l may be NULL on the root too. */
static void case_null_outputs_where_allowed(void)
{
    problem p;
    problem_init(&p, RA_DTYPE_F32);
    problem_solve(&p);
    shard sh;
    shard_init(&sh, &p, EVEN, false);
    outs x;
    outs_init(&x, &p);
    bool root = g_rank == 0;
    ra_status s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, 0, RA_MPI_METHOD_REDUCE, p.opts, sh.q, sh.k,
                                    sh.v, sh.lengths, root ? x.to : NULL, NULL, NULL);
    CHECK(s == RA_OK, "%s", ra_mpi_last_error());
    if (root) {
        double e = so_rel_err(x.o, p.o_or, x.no);
        CHECK(e <= TOL, "o vs the oracle: rel err %.3g", e);
    }
    outs_free(&x);
    shard_free(&sh);
    problem_free(&p);
}

/* Same bits on every rank and on every run, for both methods; the methods agree to rounding. */
static void case_deterministic(void)
{
    problem p;
    problem_init(&p, RA_DTYPE_F32);
    problem_solve(&p);
    shard sh;
    shard_init(&sh, &p, GAPPY, false);
    outs x[2][2]; /* [method][run] */
    const ra_mpi_method methods[2] = {RA_MPI_METHOD_REDUCE, RA_MPI_METHOD_GATHER};
    for (int mi = 0; mi < 2; ++mi) {
        for (int run = 0; run < 2; ++run) {
            outs_init(&x[mi][run], &p);
            ra_status s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, methods[mi], p.opts,
                                            sh.q, sh.k, sh.v, sh.lengths, x[mi][run].to,
                                            x[mi][run].tm, x[mi][run].tl);
            CHECK(s == RA_OK, "%s: %s", method_name(methods[mi]), ra_mpi_last_error());
        }
        outs *a = &x[mi][0], *b = &x[mi][1];
        CHECK(memcmp(a->o, b->o, a->no * sizeof(float)) == 0 &&
                  memcmp(a->m, b->m, a->nh * sizeof(float)) == 0 &&
                  memcmp(a->l, b->l, a->nh * sizeof(float)) == 0,
              "%s: two runs differ", method_name(methods[mi]));
        /* Rank 0's bits against every rank's. */
        size_t n = a->no + 2 * a->nh;
        float *mine = xmalloc(n * sizeof(float)), *first = xmalloc(n * sizeof(float));
        memcpy(mine, a->o, a->no * sizeof(float));
        memcpy(mine + a->no, a->m, a->nh * sizeof(float));
        memcpy(mine + a->no + a->nh, a->l, a->nh * sizeof(float));
        memcpy(first, mine, n * sizeof(float));
        MPI_Bcast(first, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
        CHECK(memcmp(first, mine, n * sizeof(float)) == 0, "%s: rank %d differs from rank 0",
              method_name(methods[mi]), g_rank);
        free(mine);
        free(first);
    }
    double e = rel_f32(x[0][0].o, x[1][0].o, x[0][0].no);
    CHECK(e <= TOL, "reduce vs gather: rel err %.3g", e);
    for (int mi = 0; mi < 2; ++mi)
        for (int run = 0; run < 2; ++run)
            outs_free(&x[mi][run]);
    shard_free(&sh);
    problem_free(&p);
}

/* A bf16 cache, each rank's slice a strided view into the whole cache (no copy). */
static void case_bf16_views(void)
{
    problem p;
    problem_init(&p, RA_DTYPE_BF16);
    problem_solve(&p);
    for (int c = EVEN; c <= GAPPY; ++c) {
        shard sh;
        shard_init(&sh, &p, (enum cut)c, true);
        outs x;
        outs_init(&x, &p);
        ra_status s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, RA_MPI_METHOD_AUTO,
                                        p.opts, sh.q, sh.k, sh.v, sh.lengths, x.to, x.tm, x.tl);
        CHECK(s == RA_OK, "%s", ra_mpi_last_error());
        check_result(&p, &x, c == EVEN ? "bf16, even cut" : "bf16, gappy cut");
        outs_free(&x);
        shard_free(&sh);
    }
    problem_free(&p);
}

/* A NaN in v at the last valid position of sequence 0 (on the last rank) spoils the heads that
 * read that KV head, and no other head. */
static void case_nan_stays_in_its_heads(void)
{
    problem p;
    problem_init(&p, RA_DTYPE_F32);
    size_t at = (size_t)((((0 * p.S) + p.S - 1) * p.Hkv + 0) * p.D + 3); /* b 0, t S-1, j 0, d 3 */
    p.v[at] = NAN;
    problem_solve(&p);
    for (int mi = RA_MPI_METHOD_REDUCE; mi <= RA_MPI_METHOD_GATHER; ++mi) {
        shard sh;
        shard_init(&sh, &p, EVEN, false);
        outs x;
        outs_init(&x, &p);
        ra_status s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, (ra_mpi_method)mi,
                                        p.opts, sh.q, sh.k, sh.v, sh.lengths, x.to, x.tm, x.tl);
        CHECK(s == RA_OK, "%s", ra_mpi_last_error());
        int64_t G = p.Hq / p.Hkv;
        for (int64_t b = 0; b < p.B; ++b) {
            for (int64_t h = 0; h < p.Hq; ++h) {
                size_t i = (size_t)((b * p.Hq + h) * p.D);
                bool hit = b == 0 && h / G == 0;
                CHECK(!hit || isnan(x.o[i + 3]), "%s: b 0 h %lld: no NaN", method_name(mi),
                      (long long)h);
                for (int64_t d = 0; d < p.D; ++d) {
                    if (hit && d == 3)
                        continue;
                    double e = fabs(x.o[i + (size_t)d] - p.o_or[i + (size_t)d]);
                    CHECK(e <= TOL, "%s: b %lld h %lld d %lld: %g vs oracle %g",
                          method_name(mi), (long long)b, (long long)h, (long long)d,
                          (double)x.o[i + (size_t)d], p.o_or[i + (size_t)d]);
                }
            }
        }
        outs_free(&x);
        shard_free(&sh);
    }
    problem_free(&p);
}

/* Rank r's partial state for (b, h), a pure function of (r, b, h, d) so that every rank can
 * merge all of them in double. m spreads over +-40 so that some weights underflow; some parts
 * are empty, and head 0 is empty on every rank. */
static void large_part(int r, int64_t i, int64_t D, float *m, float *l, float *o)
{
    bool empty = i == 0 || (i + r) % 5 == 0;
    *m = empty ? -INFINITY : 40.0f * so_value(100 + (uint64_t)r, (uint64_t)i);
    *l = empty ? 0.0f : 1.0f + 100.0f * fabsf(so_value(200 + (uint64_t)r, (uint64_t)i));
    for (int64_t d = 0; d < D; ++d)
        o[d] = empty ? 0.0f : *l * so_value(300 + (uint64_t)r, (uint64_t)(i * D + d));
}

/* ra_mpi_merge alone on states of half a megabyte per rank (large enough for MPI to pick its
 * bigger-message algorithms), against a double merge of every rank's state. */
static void case_merge_large_states(void)
{
    const int64_t B = 16, H = 64, D = 128, n = B * H;
    float *m = xmalloc((size_t)n * sizeof(float)), *l = xmalloc((size_t)n * sizeof(float));
    float *o = xmalloc((size_t)(n * D) * sizeof(float)), *tmp = xmalloc((size_t)D * sizeof(float));
    double *om = xmalloc((size_t)(n * D) * sizeof(double));
    double *Mm = xmalloc((size_t)n * sizeof(double)), *Lm = xmalloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; ++i)
        large_part(g_rank, i, D, &m[i], &l[i], o + i * D);
    for (int64_t i = 0; i < n; ++i) {
        double M = -INFINITY, L = 0.0;
        float mr, lr;
        for (int r = 0; r < g_size; ++r) {
            large_part(r, i, D, &mr, &lr, tmp);
            M = fmax(M, (double)mr);
        }
        for (int64_t d = 0; d < D; ++d)
            om[i * D + d] = 0.0;
        for (int r = 0; r < g_size && M > -INFINITY; ++r) {
            large_part(r, i, D, &mr, &lr, tmp);
            double w = exp((double)mr - M);
            L += w * lr;
            for (int64_t d = 0; d < D; ++d)
                om[i * D + d] += w * tmp[d];
        }
        for (int64_t d = 0; d < D; ++d)
            om[i * D + d] = L > 0.0 ? om[i * D + d] / L : 0.0;
        Mm[i] = M, Lm[i] = L;
    }
    ra_tensor *to = wrap(RA_DTYPE_F32, B, 1, H, D, NULL, o);
    ra_tensor *tm = wrap(RA_DTYPE_F32, B, 1, H, 1, NULL, m);
    ra_tensor *tl = wrap(RA_DTYPE_F32, B, 1, H, 1, NULL, l);
    float *ro = xmalloc((size_t)(n * D) * sizeof(float)), *first = xmalloc((size_t)(n * D) * sizeof(float));
    float *rm = xmalloc((size_t)n * sizeof(float)), *rl = xmalloc((size_t)n * sizeof(float));
    ra_tensor *xo = wrap(RA_DTYPE_F32, B, 1, H, D, NULL, ro);
    ra_tensor *xm = wrap(RA_DTYPE_F32, B, 1, H, 1, NULL, rm);
    ra_tensor *xl = wrap(RA_DTYPE_F32, B, 1, H, 1, NULL, rl);
    for (int mi = RA_MPI_METHOD_REDUCE; mi <= RA_MPI_METHOD_GATHER; ++mi) {
        const int roots[2] = {RA_MPI_ALL_RANKS, 0};
        for (int ri = 0; ri < 2; ++ri) {
            memset(ro, 0, (size_t)(n * D) * sizeof(float));
            ra_status s = ra_mpi_merge(MPI_COMM_WORLD, roots[ri], (ra_mpi_method)mi, to, tm, tl,
                                       xo, xm, xl);
            CHECK(s == RA_OK, "%s: %s", method_name(mi), ra_mpi_last_error());
            if (roots[ri] != RA_MPI_ALL_RANKS && g_rank != roots[ri])
                continue;
            double e = so_rel_err(ro, om, (size_t)(n * D));
            CHECK(e <= TOL, "%s root %d: o vs double merge: rel err %.3g", method_name(mi),
                  roots[ri], e);
            for (int64_t i = 0; i < n; ++i) {
                if (Lm[i] == 0.0) {
                    CHECK(rm[i] == -INFINITY && rl[i] == 0.0f, "%s: empty head %lld: M %g L %g",
                          method_name(mi), (long long)i, (double)rm[i], (double)rl[i]);
                    continue;
                }
                CHECK(rm[i] == (float)Mm[i], "%s: head %lld: M %.9g vs %.9g", method_name(mi),
                      (long long)i, (double)rm[i], Mm[i]);
                CHECK(fabs(rl[i] - Lm[i]) <= TOL * Lm[i], "%s: head %lld: L %.9g vs %.9g",
                      method_name(mi), (long long)i, (double)rl[i], Lm[i]);
            }
            if (roots[ri] == RA_MPI_ALL_RANKS) {
                memcpy(first, ro, (size_t)(n * D) * sizeof(float));
                MPI_Bcast(first, (int)(n * D), MPI_FLOAT, 0, MPI_COMM_WORLD);
                CHECK(memcmp(first, ro, (size_t)(n * D) * sizeof(float)) == 0,
                      "%s: rank %d's o differs from rank 0's", method_name(mi), g_rank);
            }
        }
    }
    ra_tensor *all[] = {to, tm, tl, xo, xm, xl};
    for (size_t i = 0; i < 6; ++i)
        ra_tensor_destroy(all[i]);
    void *mem[] = {m, l, o, tmp, om, Mm, Lm, ro, first, rm, rl};
    for (size_t i = 0; i < sizeof mem / sizeof *mem; ++i)
        free(mem[i]);
}

/* B = 0 is a valid call that writes nothing, as for ra_ragged_gqa, by either method. */
static void case_empty_batch(void)
{
    ra_tensor *q = wrap(RA_DTYPE_F32, 0, 1, 4, 8, NULL, NULL);
    ra_tensor *k = wrap(RA_DTYPE_F32, 0, 5, 2, 8, NULL, NULL);
    ra_tensor *v = wrap(RA_DTYPE_F32, 0, 5, 2, 8, NULL, NULL);
    ra_tensor *o = wrap(RA_DTYPE_F32, 0, 1, 4, 8, NULL, NULL);
    ra_tensor *len = NULL;
    const int64_t zero[1] = {0};
    CHECK(ra_tensor_wrap(&len, RA_DTYPE_I32, 1, zero, NULL, NULL) == RA_OK, "%s",
          ra_last_error());
    for (int mi = RA_MPI_METHOD_REDUCE; mi <= RA_MPI_METHOD_GATHER; ++mi) {
        ra_status s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, (ra_mpi_method)mi, NULL,
                                        q, k, v, len, o, NULL, NULL);
        CHECK(s == RA_OK, "%s: %s", method_name(mi), ra_mpi_last_error());
    }
    ra_tensor *all[] = {q, k, v, o, len};
    for (size_t i = 0; i < 5; ++i)
        ra_tensor_destroy(all[i]);
}

/* A status every rank must return, with outputs untouched everywhere. */
static void expect_everywhere(ra_status s, ra_status want, const outs *x, const char *what)
{
    CHECK(s == want, "%s: status %d (%s), expected %d", what, (int)s, ra_mpi_last_error(),
          (int)want);
    CHECK(outs_untouched(x), "%s: an output was written", what);
}

static bool says(const char *word)
{
    return strstr(ra_mpi_last_error(), word) != NULL;
}

/* Bad input on one rank, or disagreement between ranks, fails every rank (none waits
 * forever) and names the culprit. */
static void case_errors(void)
{
    problem p;
    problem_init(&p, RA_DTYPE_F32);
    shard sh;
    shard_init(&sh, &p, EVEN, false);
    int last = g_size - 1;
    ra_status s;
    char rank_word[32];
    snprintf(rank_word, sizeof rank_word, "rank %d", last);

    { /* A length beyond the slice on the last rank. */
        outs x;
        outs_init(&x, &p);
        int32_t keep = sh.len[2];
        if (g_rank == last)
            sh.len[2] = (int32_t)(ra_tensor_dim(sh.k, 1) + 1);
        s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, RA_MPI_METHOD_AUTO, p.opts, sh.q,
                              sh.k, sh.v, sh.lengths, x.to, x.tm, x.tl);
        expect_everywhere(s, RA_ERR_LENGTH, &x, "bad length on the last rank");
        CHECK(says(rank_word), "message does not name %s: %s", rank_word, ra_mpi_last_error());
        if (g_rank == last)
            CHECK(says("ra_ragged_gqa"), "the failing rank's message: %s", ra_mpi_last_error());
        sh.len[2] = keep;
        outs_free(&x);
    }
    { /* Rank 0 has one sequence fewer than the others (only a mismatch with 2+ ranks). */
        outs x;
        outs_init(&x, &p);
        ra_tensor *q = sh.q, *k = sh.k, *v = sh.v, *len = sh.lengths;
        ra_tensor *o = x.to, *m = x.tm, *l = x.tl;
        int64_t B = g_rank == 0 && g_size > 1 ? p.B - 1 : p.B;
        if (B != p.B) {
            int64_t S = ra_tensor_dim(sh.k, 1);
            q = wrap(RA_DTYPE_F32, B, 1, p.Hq, p.D, NULL, p.q);
            k = wrap(RA_DTYPE_F32, B, S, p.Hkv, p.D, NULL, sh.kbuf);
            v = wrap(RA_DTYPE_F32, B, S, p.Hkv, p.D, NULL, sh.vbuf);
            const int64_t nb[1] = {B};
            ra_tensor_wrap(&len, RA_DTYPE_I32, 1, nb, NULL, sh.len);
            o = wrap(RA_DTYPE_F32, B, 1, p.Hq, p.D, NULL, x.o);
            m = wrap(RA_DTYPE_F32, B, 1, p.Hq, 1, NULL, x.m);
            l = wrap(RA_DTYPE_F32, B, 1, p.Hq, 1, NULL, x.l);
        }
        s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, RA_MPI_METHOD_GATHER, p.opts, q, k,
                              v, len, o, m, l);
        if (g_size > 1) {
            expect_everywhere(s, RA_ERR_SHAPE, &x, "ranks disagree on B");
            CHECK(says("differ in shape"), "message: %s", ra_mpi_last_error());
        } else {
            CHECK(s == RA_OK, "one rank: %s", ra_mpi_last_error());
        }
        if (B != p.B) {
            ra_tensor *all[] = {q, k, v, len, o, m, l};
            for (size_t i = 0; i < 7; ++i)
                ra_tensor_destroy(all[i]);
        }
        outs_free(&x);
    }
    { /* A root outside the communicator, and a method that does not exist. */
        outs x;
        outs_init(&x, &p);
        s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, g_size, RA_MPI_METHOD_AUTO, p.opts, sh.q, sh.k,
                              sh.v, sh.lengths, x.to, x.tm, x.tl);
        expect_everywhere(s, RA_ERR_INVALID_ARGUMENT, &x, "root = size");
        CHECK(says("root"), "message: %s", ra_mpi_last_error());
        s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, -2, RA_MPI_METHOD_AUTO, p.opts, sh.q, sh.k, sh.v,
                              sh.lengths, x.to, x.tm, x.tl);
        expect_everywhere(s, RA_ERR_INVALID_ARGUMENT, &x, "root = -2");
        s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, 0, (ra_mpi_method)7, p.opts, sh.q, sh.k, sh.v,
                              sh.lengths, x.to, x.tm, x.tl);
        expect_everywhere(s, RA_ERR_INVALID_ARGUMENT, &x, "method 7");
        CHECK(says("method"), "message: %s", ra_mpi_last_error());
        s = ra_mpi_ragged_gqa(MPI_COMM_NULL, 0, RA_MPI_METHOD_AUTO, p.opts, sh.q, sh.k, sh.v,
                              sh.lengths, x.to, x.tm, x.tl);
        expect_everywhere(s, RA_ERR_INVALID_ARGUMENT, &x, "MPI_COMM_NULL");
        CHECK(says("MPI_COMM_NULL"), "message: %s", ra_mpi_last_error());
        outs_free(&x);
    }
    { /* The root passes no o, then an o of the wrong dtype and of the wrong shape. */
        outs x;
        outs_init(&x, &p);
        s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, last, RA_MPI_METHOD_REDUCE, p.opts, sh.q, sh.k,
                              sh.v, sh.lengths, g_rank == last ? NULL : x.to, x.tm, x.tl);
        expect_everywhere(s, RA_ERR_INVALID_ARGUMENT, &x, "NULL o on the root");
        CHECK(g_rank != last || says("o is NULL"), "message: %s", ra_mpi_last_error());
        ra_tensor *bad = wrap(RA_DTYPE_I32, p.B, 1, p.Hq, p.D, NULL, x.o);
        s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, RA_MPI_METHOD_REDUCE, p.opts,
                              sh.q, sh.k, sh.v, sh.lengths, g_rank == 0 ? bad : x.to, x.tm, x.tl);
        expect_everywhere(s, RA_ERR_DTYPE, &x, "i32 o on rank 0");
        ra_tensor_destroy(bad);
        bad = wrap(RA_DTYPE_F32, p.B, 1, p.Hq, p.D / 2, NULL, x.o);
        s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, RA_MPI_METHOD_GATHER, p.opts,
                              sh.q, sh.k, sh.v, sh.lengths, g_rank == 0 ? bad : x.to, x.tm, x.tl);
        expect_everywhere(s, RA_ERR_SHAPE, &x, "o of half width on rank 0");
        ra_tensor_destroy(bad);
        outs_free(&x);
    }
    { /* ra_mpi_merge without this rank's m. */
        outs in, x;
        outs_init(&in, &p);
        outs_init(&x, &p);
        s = ra_mpi_merge(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, RA_MPI_METHOD_AUTO, in.to,
                         g_rank == last ? NULL : in.tm, in.tl, x.to, x.tm, x.tl);
        expect_everywhere(s, RA_ERR_INVALID_ARGUMENT, &x, "ra_mpi_merge with a NULL m");
        outs_free(&in);
        outs_free(&x);
    }
    { /* The root's m_out overlaps its o_out: found by the final write, on the root only. */
        outs x;
        outs_init(&x, &p);
        ra_tensor *m_alias = wrap(RA_DTYPE_F32, p.B, 1, p.Hq, 1, NULL, x.o);
        s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, 0, RA_MPI_METHOD_AUTO, p.opts, sh.q, sh.k, sh.v,
                              sh.lengths, x.to, m_alias, x.tl);
        if (g_rank == 0)
            expect_everywhere(s, RA_ERR_ALIAS, &x, "m_out overlapping o_out on the root");
        else
            CHECK(s == RA_OK, "non-root: %s", ra_mpi_last_error());
        ra_tensor_destroy(m_alias);
        outs_free(&x);
    }
    shard_free(&sh);
    problem_free(&p);
}

/* Each rank keeps its slice as pages (shuffled, of 1, 7 or 16 positions, NHD or HND pools):
 * every cut, method and destination gives the oracle's attention, and with NHD pools the very
 * bits ra_mpi_ragged_gqa returns for the same slices laid out contiguously. */
static void case_paged_matches_oracle(void)
{
    problem p;
    problem_init(&p, RA_DTYPE_F32);
    problem_solve(&p);
    const int64_t page_sizes[3] = {1, 7, 16};
    const ra_mpi_method methods[2] = {RA_MPI_METHOD_REDUCE, RA_MPI_METHOD_GATHER};
    for (int c = EVEN; c <= GAPPY; ++c) {
        shard sh;
        shard_init(&sh, &p, (enum cut)c, false);
        for (int pi = 0; pi < 3; ++pi) {
            for (int hnd = 0; hnd < 2; ++hnd) {
                paged_shard ps;
                paged_shard_init(&ps, &p, (enum cut)c, page_sizes[pi], hnd);
                for (int mi = 0; mi < 2; ++mi) {
                    const int roots[2] = {RA_MPI_ALL_RANKS, g_size - 1};
                    for (int ri = 0; ri < 2; ++ri) {
                        int r = roots[ri];
                        char what[128];
                        snprintf(what, sizeof what, "%s cut, pages of %lld%s, %s, root %d",
                                 c == EVEN ? "even" : "gappy", (long long)page_sizes[pi],
                                 hnd ? " (HND)" : "", method_name(methods[mi]), r);
                        outs x, y;
                        outs_init(&x, &p);
                        outs_init(&y, &p);
                        ra_status s = ra_mpi_paged_gqa(MPI_COMM_WORLD, r, methods[mi], p.opts,
                                                       ps.q, ps.k, ps.v, ps.table_t, ps.lengths,
                                                       x.to, x.tm, x.tl);
                        CHECK(s == RA_OK, "%s: %s", what, ra_mpi_last_error());
                        s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, r, methods[mi], p.opts, sh.q, sh.k,
                                              sh.v, sh.lengths, y.to, y.tm, y.tl);
                        CHECK(s == RA_OK, "%s (contiguous): %s", what, ra_mpi_last_error());
                        if (r == RA_MPI_ALL_RANKS || r == g_rank) {
                            check_result(&p, &x, what);
                            CHECK(hnd || (memcmp(x.o, y.o, x.no * sizeof(float)) == 0 &&
                                          memcmp(x.m, y.m, x.nh * sizeof(float)) == 0 &&
                                          memcmp(x.l, y.l, x.nh * sizeof(float)) == 0),
                                  "%s: not bitwise ra_mpi_ragged_gqa's result", what);
                        } else {
                            CHECK(outs_untouched(&x), "%s: a non-root rank's outputs were written",
                                  what);
                        }
                        outs_free(&x);
                        outs_free(&y);
                    }
                }
                paged_shard_free(&ps);
            }
        }
        shard_free(&sh);
    }
    problem_free(&p);
}

/* bf16 pools, every rank's pages in its own order. */
static void case_paged_bf16(void)
{
    problem p;
    problem_init(&p, RA_DTYPE_BF16);
    problem_solve(&p);
    for (int c = EVEN; c <= GAPPY; ++c) {
        paged_shard ps;
        paged_shard_init(&ps, &p, (enum cut)c, 16, false);
        outs x;
        outs_init(&x, &p);
        ra_status s = ra_mpi_paged_gqa(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, RA_MPI_METHOD_AUTO,
                                       p.opts, ps.q, ps.k, ps.v, ps.table_t, ps.lengths, x.to,
                                       x.tm, x.tl);
        CHECK(s == RA_OK, "%s", ra_mpi_last_error());
        check_result(&p, &x, c == EVEN ? "bf16 pages, even cut" : "bf16 pages, gappy cut");
        outs_free(&x);
        paged_shard_free(&ps);
    }
    problem_free(&p);
}

/* A bad page table on one rank fails every rank, which name the culprit. */
static void case_paged_errors(void)
{
    problem p;
    problem_init(&p, RA_DTYPE_F32);
    paged_shard ps;
    paged_shard_init(&ps, &p, EVEN, 16, false);
    int last = g_size - 1;
    char rank_word[32];
    snprintf(rank_word, sizeof rank_word, "rank %d", last);
    { /* A page index outside the pool, in a slot that holds valid positions, on the last rank
       * (sequence 0 has positions on every rank of the even cut). */
        outs x;
        outs_init(&x, &p);
        int32_t keep = ps.table[0];
        if (g_rank == last)
            ps.table[0] = (int32_t)ps.num_pages;
        ra_status s = ra_mpi_paged_gqa(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, RA_MPI_METHOD_AUTO,
                                       p.opts, ps.q, ps.k, ps.v, ps.table_t, ps.lengths, x.to,
                                       x.tm, x.tl);
        expect_everywhere(s, RA_ERR_LENGTH, &x, "a page outside the pool on the last rank");
        CHECK(says(rank_word), "message does not name %s: %s", rank_word, ra_mpi_last_error());
        if (g_rank == last)
            CHECK(says("ra_paged_gqa") && says("page_table[0][0]"),
                  "the failing rank's message: %s", ra_mpi_last_error());
        ps.table[0] = keep;
        outs_free(&x);
    }
    { /* No page table on rank 0. */
        outs x;
        outs_init(&x, &p);
        ra_status s = ra_mpi_paged_gqa(MPI_COMM_WORLD, RA_MPI_ALL_RANKS, RA_MPI_METHOD_GATHER,
                                       p.opts, ps.q, ps.k, ps.v, g_rank == 0 ? NULL : ps.table_t,
                                       ps.lengths, x.to, x.tm, x.tl);
        expect_everywhere(s, RA_ERR_INVALID_ARGUMENT, &x, "a NULL page table on rank 0");
        CHECK(g_rank != 0 || says("page_table is NULL"), "rank 0's message: %s",
              ra_mpi_last_error());
        CHECK(says("rank 0"), "message does not name rank 0: %s", ra_mpi_last_error());
        outs_free(&x);
    }
    paged_shard_free(&ps);
    problem_free(&p);
}

/* ---- runner ------------------------------------------------------------------------------ */

static int g_passed, g_failed;

static void run(const char *name, void (*fn)(void))
{
    g_failures = 0;
    fn();
    int total = 0;
    MPI_Allreduce(&g_failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0)
        printf("[%s] %s (%d ranks)\n", total == 0 ? "  OK  " : " FAIL ", name, g_size);
    if (total == 0)
        ++g_passed;
    else
        ++g_failed;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    run("matches_oracle", case_matches_oracle);
    run("null_outputs_where_allowed", case_null_outputs_where_allowed);
    run("deterministic", case_deterministic);
    run("bf16_views", case_bf16_views);
    run("nan_stays_in_its_heads", case_nan_stays_in_its_heads);
    run("merge_large_states", case_merge_large_states);
    run("empty_batch", case_empty_batch);
    run("errors", case_errors);
    run("paged_matches_oracle", case_paged_matches_oracle);
    run("paged_bf16", case_paged_bf16);
    run("paged_errors", case_paged_errors);
    if (g_rank == 0)
        printf("%d passed, %d failed\n", g_passed, g_failed);
    MPI_Finalize();
    return g_failed == 0 ? 0 : 1;
}
