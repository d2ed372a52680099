#include "workload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bigmem.h"
#include "fill.h"

const bench_shape bench_named_cases[] = {
    {"seed", 4, 512, 32, 8, 128, BENCH_LEN_RANDOM_BELOW, 256, "MaxText's test shape"},
    {"a", 8, 4096, 32, 8, 128, BENCH_LEN_RANDOM, 256, "GQA, ragged batch"},
    {"b", 1, 32768, 32, 8, 128, BENCH_LEN_FULL, 256, "GQA, one long sequence"},
    {"c", 32, 1024, 8, 8, 64, BENCH_LEN_RANDOM, 256, "MHA"},
    {"d", 1, 65536, 8, 1, 128, BENCH_LEN_FULL, 256, "MQA, one long sequence"},
};
const int bench_n_named_cases = (int)(sizeof bench_named_cases / sizeof bench_named_cases[0]);

/* Generator streams: each tensor gets its own, so adding one never changes another. */
enum { STREAM_LENGTHS = 1, STREAM_Q, STREAM_K, STREAM_V };

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
    return wrap(&w->t_q4, w->q_dtype, 4, q4, NULL, w->q, "q") ||
           wrap(&w->t_q3, w->q_dtype, 3, q3, NULL, w->q, "q (reference view)") ||
           wrap(&w->t_k, w->kv_dtype, 4, kv, NULL, w->k, "k") ||
           wrap(&w->t_v, w->kv_dtype, 4, kv, NULL, w->v, "v") ||
           wrap(&w->t_kref, w->kv_dtype, 4, kvref, kvref_st, w->k, "k (reference view)") ||
           wrap(&w->t_vref, w->kv_dtype, 4, kvref, kvref_st, w->v, "v (reference view)") ||
           wrap(&w->t_len, RA_DTYPE_I32, 1, lb, NULL, w->lengths, "lengths") ||
           wrap(&w->t_o, RA_DTYPE_F32, 4, q4, NULL, w->o, "o") ||
           wrap(&w->t_m, RA_DTYPE_F32, 4, ml, NULL, w->m, "m") ||
           wrap(&w->t_l, RA_DTYPE_F32, 4, ml, NULL, w->l, "l") ||
           wrap(&w->t_ref_o, RA_DTYPE_F32, 4, q4, NULL, w->ref_o, "reference o")
               ? -1
               : 0;
}

int bench_workload_init(bench_workload *w, const bench_shape *shape, ra_dtype kv_dtype,
                        ra_dtype q_dtype, uint64_t seed, bool thp)
{
    memset(w, 0, sizeof *w);
    w->shape = *shape;
    w->kv_dtype = kv_dtype;
    w->q_dtype = q_dtype;
    const bench_shape *s = &w->shape;
    size_t kv_elems = (size_t)(s->B * s->S * s->Hkv * s->D);
    size_t q_elems = (size_t)(s->B * s->Hq * s->D);
    w->kv_alloc = kv_elems * bench_dtype_size(kv_dtype);
    w->lengths = malloc((size_t)s->B * sizeof *w->lengths);
    w->q = malloc(q_elems * bench_dtype_size(q_dtype));
    w->k = bench_alloc_big(w->kv_alloc, thp);
    w->v = bench_alloc_big(w->kv_alloc, thp);
    w->o = malloc(q_elems * sizeof(float));
    w->ref_o = malloc(q_elems * sizeof(float));
    w->m = malloc((size_t)(s->B * s->Hq) * sizeof(float));
    w->l = malloc((size_t)(s->B * s->Hq) * sizeof(float));
    if (!w->lengths || !w->q || !w->k || !w->v || !w->o || !w->ref_o || !w->m || !w->l) {
        fprintf(stderr, "raggedattn-bench: error: out of memory for case %s (%zu MiB of K/V)\n",
                s->name, 2 * w->kv_alloc >> 20);
        bench_workload_free(w);
        return -1;
    }
    w->scale = (float)(1.0 / sqrt((double)s->D));
    uint64_t key = seed ^ case_key(s->name);
    make_lengths(w, key);
    w->kv_bytes = (double)w->sum_lengths * (double)(s->Hkv * s->D) * 2.0 *
                  (double)bench_dtype_size(kv_dtype);
    bench_fill_uniform(w->q, q_dtype, q_elems, 1.0f, key, STREAM_Q);
    bench_fill_uniform(w->k, kv_dtype, kv_elems, 1.0f, key, STREAM_K);
    bench_fill_uniform(w->v, kv_dtype, kv_elems, 1.0f, key, STREAM_V);
    if (make_views(w) != 0) {
        bench_workload_free(w);
        return -1;
    }
    return 0;
}

void bench_workload_free(bench_workload *w)
{
    ra_tensor *ts[] = {w->t_q4, w->t_q3, w->t_k, w->t_v, w->t_kref, w->t_vref,
                       w->t_len, w->t_o, w->t_m, w->t_l, w->t_ref_o};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        ra_tensor_destroy(ts[i]);
    free(w->lengths);
    free(w->q);
    bench_free_big(w->k);
    bench_free_big(w->v);
    free(w->o);
    free(w->ref_o);
    free(w->m);
    free(w->l);
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
