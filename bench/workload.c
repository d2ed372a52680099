#include "workload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bigmem.h"
#include "fill.h"

const bench_shape bench_named_cases[] = {
    {"seed", 4, 512, 32, 8, 128, BENCH_LEN_RANDOM_BELOW, 256, "MaxText's test shape", 0},
    {"a", 8, 4096, 32, 8, 128, BENCH_LEN_RANDOM, 256, "GQA, ragged batch", 0},
    {"b", 1, 32768, 32, 8, 128, BENCH_LEN_FULL, 256, "GQA, one long sequence", 0},
    {"c", 32, 1024, 8, 8, 64, BENCH_LEN_RANDOM, 256, "MHA", 0},
    {"d", 1, 65536, 8, 1, 128, BENCH_LEN_FULL, 256, "MQA, one long sequence", 0},
    /* by name only, so the presets stay as they were (its plain calls read 512 MiB of f32 K/V,
     * twice case b); without --window its modified calls use its own window of 4096 */
    {"w", 1, 65536, 32, 8, 128, BENCH_LEN_FULL, 256, "GQA, window of 4096 (by name only)", 4096},
};
const int bench_n_named_cases = (int)(sizeof bench_named_cases / sizeof bench_named_cases[0]);
const int bench_n_preset_cases = 5;

/* Generator streams: each tensor gets its own, so adding one never changes another. */
enum { STREAM_LENGTHS = 1, STREAM_Q, STREAM_K, STREAM_V, STREAM_PAGES, STREAM_SINKS };

const bench_shape *bench_find_case(const char *name)
{
    for (int i = 0; i < bench_n_named_cases; i++)
        if (strcmp(bench_named_cases[i].name, name) == 0)
            return &bench_named_cases[i];
    return NULL;
}

const char *bench_lengths_name(bench_lengths l)
{
    switch (l) {
    case BENCH_LEN_FULL: return "full";
    case BENCH_LEN_RANDOM: return "random";
    case BENCH_LEN_RANDOM_BELOW: return "random_below_S";
    }
    return "?";
}

bool bench_mods_any(const bench_mods *m)
{
    return m->softcap != 0.0f || m->window > 0 || m->sinks || m->alibi;
}

bench_mods bench_case_mods(const bench_mods *flags, const bench_shape *s)
{
    bench_mods m = *flags;
    if (m.window == 0 && s->window > 0) {
        m.window = s->window;
        m.sink_positions = 0;
    }
    return m;
}

const char *bench_mods_label(const bench_mods *m, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    /* appends one name, with a comma after the first; snprintf truncates a short buffer */
#define ADD(...)                                                                           \
    do {                                                                                   \
        if (n < size && n > 0)                                                             \
            n += (size_t)snprintf(buf + n, size - n, ",");                                 \
        if (n < size)                                                                      \
            n += (size_t)snprintf(buf + n, size - n, __VA_ARGS__);                         \
    } while (0)
    if (m->softcap != 0.0f)
        ADD("cap%g", (double)m->softcap);
    if (m->window > 0 && m->sink_positions > 0)
        ADD("win%lld+%lld", (long long)m->window, (long long)m->sink_positions);
    else if (m->window > 0)
        ADD("win%lld", (long long)m->window);
    if (m->sinks)
        ADD("sinks");
    if (m->alibi)
        ADD("alibi");
#undef ADD
    if (n == 0)
        snprintf(buf, size, "-");
    return buf;
}

int64_t bench_visible_positions(int64_t len, int64_t window, int64_t sink_positions)
{
    if (window <= 0 || window >= len)
        return len;
    /* the last `window` positions, and the sink positions that lie before them */
    int64_t before = len - window;
    return window + (sink_positions < before ? sink_positions : before);
}

static uint64_t case_key(const char *name)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: each case draws its own numbers */
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static void make_lengths(bench_workload *w, uint64_t seed)
{
    const bench_shape *s = &w->shape;
    /* the seed's randint(1, S) excludes S; a one-position cache has only length 1 */
    int64_t span = s->lengths == BENCH_LEN_RANDOM_BELOW && s->S > 1 ? s->S - 1 : s->S;
    w->sum_lengths = 0;
    for (int64_t b = 0; b < s->B; b++) {
        int64_t len = s->S;
        if (s->lengths != BENCH_LEN_FULL)
            len = 1 + (int64_t)(bench_hash3(seed, STREAM_LENGTHS, (uint64_t)b) % (uint64_t)span);
        w->lengths[b] = (int32_t)len;
        w->sum_lengths += len;
    }
}

static int wrap(ra_tensor **t, ra_dtype dt, int rank, const int64_t *shape,
                const int64_t *strides, void *data, const char *what)
{
    ra_status st = ra_tensor_wrap(t, dt, rank, shape, strides, data);
    if (st != RA_OK) {
        fprintf(stderr, "raggedattn-bench: error: cannot wrap %s: %s (%s)\n", what,
                ra_status_string(st), ra_last_error());
        return -1;
    }
    return 0;
}

/* A K or V view [.., .., .., D] of data: plain, or for quantized K/V (scales not NULL) its codes
 * with the view *ts of one scale per row, shaped [.., .., .., 1]. */
static int wrap_kv(ra_tensor **t, ra_tensor **ts, ra_dtype dt, const int64_t shape[4],
                   void *data, float *scales, const char *what)
{
    if (!scales)
        return wrap(t, dt, 4, shape, NULL, data, what);
    const int64_t sshape[4] = {shape[0], shape[1], shape[2], 1};
    char name[64];
    snprintf(name, sizeof name, "%s scales", what);
    if (wrap(ts, RA_DTYPE_F32, 4, sshape, NULL, scales, name))
        return -1;
    ra_status st = ra_tensor_wrap_quantized(t, dt, 4, shape, NULL, data, *ts);
    if (st != RA_OK) {
        fprintf(stderr, "raggedattn-bench: error: cannot wrap %s: %s (%s)\n", what,
                ra_status_string(st), ra_last_error());
        return -1;
    }
    return 0;
}

static int make_views(bench_workload *w)
{
    const bench_shape *s = &w->shape;
    int64_t B = s->B, S = s->S, Hq = s->Hq, Hkv = s->Hkv, D = s->D;
    const int64_t q4[4] = {B, 1, Hq, D}, q3[3] = {B, Hq, D};
    const int64_t kv[4] = {B, S, Hkv, D};
    /* ra_reference_gqa's [B,Hkv,S,D], as a strided view of the same [B,S,Hkv,D] memory */
    const int64_t kvref[4] = {B, Hkv, S, D};
    const int64_t kvref_st[4] = {S * Hkv * D, D, Hkv * D, 1};
    const int64_t lb[1] = {B}, ml[4] = {B, 1, Hq, 1};
    if (w->k && (wrap_kv(&w->t_k, &w->t_ks, w->kv_dtype, kv, w->k, w->ks, "k") ||
                 wrap_kv(&w->t_v, &w->t_vs, w->kv_dtype, kv, w->v, w->vs, "v")))
        return -1;
    /* the reference takes no quantized K/V, so those get no views for it */
    if (w->k && !w->ks &&
        (wrap(&w->t_kref, w->kv_dtype, 4, kvref, kvref_st, w->k, "k (reference view)") ||
         wrap(&w->t_vref, w->kv_dtype, 4, kvref, kvref_st, w->v, "v (reference view)")))
        return -1;
    return wrap(&w->t_q4, w->q_dtype, 4, q4, NULL, w->q, "q") ||
           wrap(&w->t_q3, w->q_dtype, 3, q3, NULL, w->q, "q (reference view)") ||
           wrap(&w->t_len, RA_DTYPE_I32, 1, lb, NULL, w->lengths, "lengths") ||
           wrap(&w->t_o, RA_DTYPE_F32, 4, q4, NULL, w->o, "o") ||
           wrap(&w->t_m, RA_DTYPE_F32, 4, ml, NULL, w->m, "m") ||
           wrap(&w->t_l, RA_DTYPE_F32, 4, ml, NULL, w->l, "l") ||
           wrap(&w->t_ref_o, RA_DTYPE_F32, 4, q4, NULL, w->ref_o, "reference o") ||
           wrap(&w->t_sinks, RA_DTYPE_F32, 1, &s->Hq, NULL, w->sinks, "sinks") ||
           wrap(&w->t_alibi, RA_DTYPE_F32, 1, &s->Hq, NULL, w->alibi, "ALiBi slopes")
               ? -1
               : 0;
}

/* Pool bytes (K and V together) above this fail the run rather than start swapping. */
#define POOL_LIMIT_GIB 16.0

/* Builds pool->page_size's pool of w (see bench_pool). key: the case's generator key. */
static int make_pool(bench_workload *w, bench_pool *pool, uint64_t key, bool thp)
{
    const bench_shape *s = &w->shape;
    const int64_t B = s->B, S = s->S, ps = pool->page_size, row = s->Hkv * s->D;
    const size_t es = bench_dtype_size(w->kv_dtype);
    pool->max_pages = (S + ps - 1) / ps;
    pool->num_pages = 0;
    for (int64_t b = 0; b < B; b++)
        pool->num_pages += (w->lengths[b] + ps - 1) / ps;
    double gib = (double)pool->num_pages * (double)(ps * row) * (double)es * 2.0 / 1073741824.0;
    if (gib > POOL_LIMIT_GIB) {
        fprintf(stderr, "raggedattn-bench: error: case %s's pool of %lld-position pages would take "
                "%.1f GiB (limit %.0f)\n", s->name, (long long)ps, gib, POOL_LIMIT_GIB);
        return -1;
    }
    pool->alloc = (size_t)(pool->num_pages * ps * row) * es;
    pool->k = bench_alloc_big(pool->alloc, thp);
    pool->v = bench_alloc_big(pool->alloc, thp);
    const bool quant = bench_dtype_quantized(w->kv_dtype);
    const size_t n_scales = (size_t)(pool->num_pages * ps * s->Hkv);
    if (quant) {
        pool->ks = malloc((n_scales + 1) * sizeof *pool->ks);
        pool->vs = malloc((n_scales + 1) * sizeof *pool->vs);
    }
    pool->table = malloc((size_t)(B * pool->max_pages + 1) * sizeof *pool->table);
    /* logical page k (the sequences' pages one after another) -> its sequence and pool page */
    int32_t *seq = malloc((size_t)(pool->num_pages + 1) * sizeof *seq);
    int32_t *order = malloc((size_t)(pool->num_pages + 1) * sizeof *order);
    int64_t *first = malloc((size_t)(B + 1) * sizeof *first);
    int rc = -1;
    if (!pool->k || !pool->v || !pool->table || !seq || !order || !first ||
        (quant && (!pool->ks || !pool->vs))) {
        fprintf(stderr, "raggedattn-bench: error: out of memory for case %s's pool of "
                "%lld-position pages (%zu MiB of K/V)\n", s->name, (long long)ps,
                2 * pool->alloc >> 20);
        goto done;
    }
    int64_t n = 0;
    for (int64_t b = 0; b < B; b++) {
        first[b] = n;
        for (int64_t i = 0, np = (w->lengths[b] + ps - 1) / ps; i < np; i++)
            seq[n++] = (int32_t)b;
    }
    first[B] = n;
    for (int64_t i = 0; i < n; i++)
        order[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates, seeded by the case and page size */
        int64_t j = (int64_t)(bench_hash3(key + (uint64_t)ps, STREAM_PAGES, (uint64_t)i) %
                              (uint64_t)(i + 1));
        int32_t x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < pool->max_pages; i++)
            pool->table[b * pool->max_pages + i] =
                first[b] + i < first[b + 1] ? order[first[b] + i] : -1;
    /* Each page from the generator, at the contiguous cache's indices; in parallel, which also
     * places the pages. */
    int failed = 0;
#pragma omp parallel for schedule(static) reduction(| : failed)
    for (int64_t k = 0; k < n; k++) {
        const int64_t b = seq[k], t0 = (k - first[b]) * ps;
        const int64_t valid = S - t0 < ps ? S - t0 : ps; /* positions below S */
        const size_t at = (size_t)((int64_t)order[k] * ps * row) * es;
        const uint64_t from = (uint64_t)((b * S + t0) * row);
        void *pk = (char *)pool->k + at, *pv = (char *)pool->v + at;
        if (quant) { /* rows (b, t, j) of the contiguous cache, each with its own scale */
            const size_t srow = (size_t)((int64_t)order[k] * ps * s->Hkv);
            const size_t rows = (size_t)(valid * s->Hkv);
            const uint64_t from_row = (uint64_t)((b * S + t0) * s->Hkv);
            failed |= bench_fill_quantized_run(pk, pool->ks + srow, w->kv_dtype, rows,
                                               (size_t)s->D, 1.0f, key, STREAM_K, from_row) |
                      bench_fill_quantized_run(pv, pool->vs + srow, w->kv_dtype, rows,
                                               (size_t)s->D, 1.0f, key, STREAM_V, from_row);
            memset(pool->ks + srow + rows, 0, (size_t)((ps - valid) * s->Hkv) * sizeof(float));
            memset(pool->vs + srow + rows, 0, (size_t)((ps - valid) * s->Hkv) * sizeof(float));
        } else {
            bench_fill_uniform_run(pk, w->kv_dtype, (size_t)(valid * row), 1.0f, key, STREAM_K,
                                   from);
            bench_fill_uniform_run(pv, w->kv_dtype, (size_t)(valid * row), 1.0f, key, STREAM_V,
                                   from);
        }
        memset((char *)pk + (size_t)(valid * row) * es, 0, (size_t)((ps - valid) * row) * es);
        memset((char *)pv + (size_t)(valid * row) * es, 0, (size_t)((ps - valid) * row) * es);
    }
    if (failed)
        goto done;
    const int64_t shape[4] = {pool->num_pages, ps, s->Hkv, s->D};
    const int64_t tshape[2] = {B, pool->max_pages};
    if (wrap_kv(&pool->t_k, &pool->t_ks, w->kv_dtype, shape, pool->k, pool->ks, "k_pages") ||
        wrap_kv(&pool->t_v, &pool->t_vs, w->kv_dtype, shape, pool->v, pool->vs, "v_pages") ||
        wrap(&pool->t_table, RA_DTYPE_I32, 2, tshape, NULL, pool->table, "page_table"))
        goto done;
    rc = 0;
done:
    free(seq);
    free(order);
    free(first);
    return rc;
}

static void free_pool(bench_pool *pool)
{
    ra_tensor_destroy(pool->t_k);
    ra_tensor_destroy(pool->t_v);
    ra_tensor_destroy(pool->t_table);
    ra_tensor_destroy(pool->t_ks);
    ra_tensor_destroy(pool->t_vs);
    bench_free_big(pool->k);
    bench_free_big(pool->v);
    free(pool->ks);
    free(pool->vs);
    free(pool->table);
    memset(pool, 0, sizeof *pool);
}

double bench_kv_position_bytes(ra_dtype kv_dtype, int64_t Hkv, int64_t D)
{
    const double scales = bench_dtype_quantized(kv_dtype) ? (double)Hkv * sizeof(float) : 0.0;
    return (double)(Hkv * D) * (double)bench_dtype_size(kv_dtype) + scales;
}

/* The contiguous K and V from the generator; quantized with one scale per position and KV head
 * (row (b, t, j) of [B,S,Hkv,D]), as make_pool quantizes its pages. */
static int fill_contiguous(bench_workload *w, uint64_t key, size_t kv_elems)
{
    const bench_shape *s = &w->shape;
    if (!bench_dtype_quantized(w->kv_dtype)) {
        bench_fill_uniform(w->k, w->kv_dtype, kv_elems, 1.0f, key, STREAM_K);
        bench_fill_uniform(w->v, w->kv_dtype, kv_elems, 1.0f, key, STREAM_V);
        return 0;
    }
    const size_t rows = (size_t)(s->B * s->S * s->Hkv), D = (size_t)s->D;
    return bench_fill_quantized(w->k, w->ks, w->kv_dtype, rows, D, 1.0f, key, STREAM_K) ||
                   bench_fill_quantized(w->v, w->vs, w->kv_dtype, rows, D, 1.0f, key, STREAM_V)
               ? -1
               : 0;
}

/* Divides each head's un-normalized output by its l (sequences of length >= 1 only). */
static void normalize(float *o, const float *l, const bench_workload *w)
{
    const bench_shape *s = &w->shape;
    for (int64_t b = 0; b < s->B; b++) {
        if (w->lengths[b] < 1)
            continue; /* l is 0 there, and bench_max_rel_error skips them */
        for (int64_t h = 0; h < s->Hq; h++)
            for (int64_t d = 0; d < s->D; d++)
                o[(b * s->Hq + h) * s->D + d] /= l[b * s->Hq + h];
    }
}

/* ref_o for quantized K/V, which the reference does not take: ra_ragged_gqa's normalized
 * output on f32 copies of code * scale, so rel_err shows what the quantized path adds. */
static int make_dequant_ref(bench_workload *w)
{
    const bench_shape *s = &w->shape;
    const size_t rows = (size_t)(s->B * s->S * s->Hkv), n = rows * (size_t)s->D;
    const int64_t kv[4] = {s->B, s->S, s->Hkv, s->D};
    float *k = bench_alloc_big(n * sizeof *k, false), *v = bench_alloc_big(n * sizeof *v, false);
    ra_tensor *tk = NULL, *tv = NULL;
    ra_options *o = NULL;
    int rc = -1;
    if (!k || !v) {
        fprintf(stderr, "raggedattn-bench: error: out of memory for case %s's dequantized K/V "
                "(%zu MiB)\n", s->name, 2 * n * sizeof(float) >> 20);
        goto done;
    }
    bench_dequantize(k, w->k, w->ks, w->kv_dtype, rows, (size_t)s->D);
    bench_dequantize(v, w->v, w->vs, w->kv_dtype, rows, (size_t)s->D);
    if (wrap(&tk, RA_DTYPE_F32, 4, kv, NULL, k, "dequantized k") ||
        wrap(&tv, RA_DTYPE_F32, 4, kv, NULL, v, "dequantized v"))
        goto done;
    ra_status st = ra_options_create(&o);
    if (st == RA_OK)
        st = ra_options_set_scale(o, w->scale);
    if (st == RA_OK)
        st = ra_options_set_block_size(o, s->block_size);
    if (st == RA_OK)
        st = ra_ragged_gqa(o, w->t_q4, tk, tv, w->t_len, w->t_ref_o, w->t_m, w->t_l);
    if (st != RA_OK) {
        fprintf(stderr, "raggedattn-bench: error: the dequantized output of case %s failed: "
                "%s (%s)\n", s->name, ra_status_string(st), ra_last_error());
        goto done;
    }
    normalize(w->ref_o, w->l, w);
    w->dequant_ref = true;
    rc = 0;
done:
    ra_options_destroy(o);
    ra_tensor_destroy(tk);
    ra_tensor_destroy(tv);
    bench_free_big(k);
    bench_free_big(v);
    return rc;
}

int bench_workload_init(bench_workload *w, const bench_shape *shape, ra_dtype kv_dtype,
                        ra_dtype q_dtype, uint64_t seed, bool thp, const bench_mods *mods,
                        const int64_t *page_sizes, int n_page_sizes, bool contiguous)
{
    memset(w, 0, sizeof *w);
    w->shape = *shape;
    w->kv_dtype = kv_dtype;
    w->q_dtype = q_dtype;
    const bench_shape *s = &w->shape;
    w->n_pools = n_page_sizes < BENCH_MAX_PAGED ? n_page_sizes : BENCH_MAX_PAGED;
    for (int p = 0; p < w->n_pools; p++) {
        w->pools[p].page_size = page_sizes[p];
        contiguous |= page_sizes[p] == 0;
    }
    size_t kv_elems = contiguous ? (size_t)(s->B * s->S * s->Hkv * s->D) : 0;
    size_t q_elems = (size_t)(s->B * s->Hq * s->D);
    w->kv_alloc = kv_elems * bench_dtype_size(kv_dtype);
    w->lengths = malloc((size_t)s->B * sizeof *w->lengths);
    w->q = malloc(q_elems * bench_dtype_size(q_dtype));
    const bool quant = bench_dtype_quantized(kv_dtype);
    if (contiguous) {
        w->k = bench_alloc_big(w->kv_alloc, thp);
        w->v = bench_alloc_big(w->kv_alloc, thp);
    }
    if (contiguous && quant) {
        w->ks = malloc((size_t)(s->B * s->S * s->Hkv) * sizeof *w->ks);
        w->vs = malloc((size_t)(s->B * s->S * s->Hkv) * sizeof *w->vs);
    }
    w->o = malloc(q_elems * sizeof(float));
    w->ref_o = malloc(q_elems * sizeof(float));
    w->m = malloc((size_t)(s->B * s->Hq) * sizeof(float));
    w->l = malloc((size_t)(s->B * s->Hq) * sizeof(float));
    w->sinks = malloc((size_t)(s->Hq + 1) * sizeof(float));
    w->alibi = malloc((size_t)(s->Hq + 1) * sizeof(float));
    if (!w->lengths || !w->q || (contiguous && (!w->k || !w->v)) || !w->o || !w->ref_o ||
        !w->m || !w->l || !w->sinks || !w->alibi || (contiguous && quant && (!w->ks || !w->vs))) {
        fprintf(stderr, "raggedattn-bench: error: out of memory for case %s (%zu MiB of K/V)\n",
                s->name, 2 * w->kv_alloc >> 20);
        bench_workload_free(w);
        return -1;
    }
    w->scale = (float)(1.0 / sqrt((double)s->D));
    uint64_t key = seed ^ case_key(s->name);
    make_lengths(w, key);
    const double position_bytes = bench_kv_position_bytes(kv_dtype, s->Hkv, s->D);
    w->kv_bytes = (double)w->sum_lengths * position_bytes * 2.0;
    const bench_mods none = {0};
    w->mods = bench_case_mods(mods ? mods : &none, s);
    w->visible_positions = 0;
    for (int64_t b = 0; b < s->B; b++)
        w->visible_positions +=
            bench_visible_positions(w->lengths[b], w->mods.window, w->mods.sink_positions);
    w->kv_bytes_visible = (double)w->visible_positions * position_bytes * 2.0;
    bench_fill_uniform_run(w->sinks, RA_DTYPE_F32, (size_t)s->Hq, 2.0f, key, STREAM_SINKS, 0);
    for (int64_t h = 0; h < s->Hq; h++)
        w->alibi[h] = (float)exp2(-8.0 * (double)(h + 1) / (double)s->Hq);
    bench_fill_uniform(w->q, q_dtype, q_elems, 1.0f, key, STREAM_Q);
    if ((contiguous && fill_contiguous(w, key, kv_elems) != 0) || make_views(w) != 0 ||
        (contiguous && quant && make_dequant_ref(w) != 0)) {
        bench_workload_free(w);
        return -1;
    }
    for (int p = 0; p < w->n_pools; p++)
        if (w->pools[p].page_size > 0 && make_pool(w, &w->pools[p], key, thp) != 0) {
            bench_workload_free(w);
            return -1;
        }
    return 0;
}

void bench_workload_free(bench_workload *w)
{
    ra_tensor *ts[] = {w->t_q4, w->t_q3, w->t_k, w->t_v, w->t_kref, w->t_vref, w->t_len,
                       w->t_o, w->t_m, w->t_l, w->t_ref_o, w->t_sinks, w->t_alibi, w->t_ks,
                       w->t_vs};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        ra_tensor_destroy(ts[i]);
    for (int p = 0; p < w->n_pools; p++)
        free_pool(&w->pools[p]);
    free(w->lengths);
    free(w->q);
    bench_free_big(w->k);
    bench_free_big(w->v);
    free(w->ks);
    free(w->vs);
    free(w->o);
    free(w->ref_o);
    free(w->m);
    free(w->l);
    free(w->sinks);
    free(w->alibi);
    memset(w, 0, sizeof *w);
}

double bench_max_rel_error(const bench_workload *w)
{
    const bench_shape *s = &w->shape;
    double max_ref = 0.0, max_err = 0.0;
    int nan = 0;
    for (int64_t b = 0; b < s->B; b++) {
        if (w->lengths[b] < 1)
            continue; /* the reference returns the seed's mean of v there, not attention */
        for (int64_t h = 0; h < s->Hq; h++) {
            double l = w->l[b * s->Hq + h];
            const float *o = w->o + (b * s->Hq + h) * s->D;
            const float *r = w->ref_o + (b * s->Hq + h) * s->D;
            for (int64_t d = 0; d < s->D; d++) {
                double err = fabs((double)o[d] / l - (double)r[d]);
                if (isnan(err))
                    nan = 1;
                else if (err > max_err)
                    max_err = err;
                if (fabs((double)r[d]) > max_ref)
                    max_ref = fabs((double)r[d]);
            }
        }
    }
    if (nan)
        return NAN;
    return max_ref > 0.0 ? max_err / max_ref : max_err;
}
