/* raggedattn-bench-multi: several query tokens per sequence (ra_ragged_gqa_multi) on the
 * shapes servers run: speculative-decoding verification, chunked prefill and prefill. These
 * calls are compute-bound, so the table reads them against the machine's FMA peak, measured in
 * the same run on the same threads, and against the way to get the same rows without the
 * multi-token call: one ra_ragged_gqa call per query position, each over its causal prefix.
 * The roofline of a call is the larger of its K/V bytes over the read bandwidth (measured here
 * too) and its FLOPs over the FMA peak; %roof is that time over the measured one. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fill.h"
#include "fma_peak.h"
#include "membw.h"
#include "report.h"

typedef struct multi_case {
    const char *name;
    int64_t B, T, S, Hq, Hkv, D;
    const char *note;
} multi_case;

/* Each sequence holds S positions, its last T being the new tokens. */
static const multi_case cases[] = {
    {"verify", 8, 4, 4096, 32, 8, 128, "speculative decoding: check 4 draft tokens"},
    {"verify6", 8, 6, 4096, 32, 8, 128, "speculative decoding: check 6 draft tokens"},
    {"chunk", 1, 512, 8192, 32, 8, 128, "chunked prefill: 512 new tokens after 7680"},
    {"prefill", 1, 2048, 2048, 32, 8, 128, "prefill of a 2048-token prompt"},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

typedef struct multi_args {
    bool run_case[N_CASES];
    int threads[4], n_threads;
    int reps;
    ra_dtype kv, q;
    ra_kernel kernel;
    const char *json;
} multi_args;

typedef struct multi_row {
    const multi_case *c;
    int threads;
    double t_multi, t_multi_min, t_tokens; /* medians (and min) of seconds per call */
    double gflops, peak_gflops, speedup, max_diff;
    double read_gbs, roofline_s; /* read bandwidth (same threads), max(memory, FMA) time */
    const char *peak_isa;
} multi_row;

static int usage(const char *argv0, int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: %s [--case verify,verify6,chunk,prefill] [--threads 1,2] [--reps N]\n"
            "          [--dtype f32|bf16|f16] [--q f32|bf16] [--kernel NAME] [--json FILE]\n"
            "Times ra_ragged_gqa_multi against one ra_ragged_gqa call per query position and\n"
            "against the FMA peak measured in the same run.\n",
            argv0);
    return rc;
}

static ra_dtype parse_dtype(const char *s)
{
    return !strcmp(s, "f32") ? RA_DTYPE_F32 : !strcmp(s, "bf16") ? RA_DTYPE_BF16
           : !strcmp(s, "f16") ? RA_DTYPE_F16 : (ra_dtype)-1;
}

static int parse(int argc, char **argv, multi_args *a)
{
    *a = (multi_args){{true, true, true}, {1, 2}, 2, 3, RA_DTYPE_BF16, RA_DTYPE_F32,
                      RA_KERNEL_AUTO, NULL};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "-h") || !strcmp(f, "--help"))
            return usage(argv[0], 0) - 1;
        if (!v)
            return usage(argv[0], 2);
        i++;
        if (!strcmp(f, "--case")) {
            memset(a->run_case, 0, sizeof a->run_case);
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                int k = 0;
                while (k < N_CASES && strcmp(cases[k].name, t))
                    k++;
                if (k == N_CASES) {
                    fprintf(stderr, "unknown case '%s' (verify, verify6, chunk, prefill)\n", t);
                    return 2;
                }
                a->run_case[k] = true;
            }
        } else if (!strcmp(f, "--threads")) {
            char buf[64], *t;
            snprintf(buf, sizeof buf, "%s", v);
            a->n_threads = 0;
            for (t = strtok(buf, ","); t && a->n_threads < 4; t = strtok(NULL, ","))
                if ((a->threads[a->n_threads++] = atoi(t)) < 1)
                    return usage(argv[0], 2);
        } else if (!strcmp(f, "--reps")) {
            if ((a->reps = atoi(v)) < 1)
                return usage(argv[0], 2);
        } else if (!strcmp(f, "--dtype") || !strcmp(f, "--q")) {
            ra_dtype d = parse_dtype(v);
            if ((int)d < 0)
                return usage(argv[0], 2);
            *(!strcmp(f, "--q") ? &a->q : &a->kv) = d;
        } else if (!strcmp(f, "--kernel")) {
            int k = RA_KERNEL_AUTO;
            while (k <= RA_KERNEL_NEON && strcmp(bench_kernel_name((ra_kernel)k), v))
                k++;
            if (k > RA_KERNEL_NEON) {
                fprintf(stderr, "unknown kernel '%s' (auto, portable, blas, avx2, avx512, neon)\n", v);
                return 2;
            }
            a->kernel = (ra_kernel)k;
        } else if (!strcmp(f, "--json")) {
            a->json = v;
        } else {
            return usage(argv[0], 2);
        }
    }
    return 0;
}

/* One case's buffers and tensor views. Sequence b's query i is the cache position
 * S - T + i; the per-token calls view q row i as a [B,1,Hq,D] tensor. */
typedef struct multi_data {
    void *q, *k, *v;
    float *o, *o_tok;
    int32_t len[64], q_lens[64], len_tok[64];
    ra_tensor *tq, *tk, *tv, *tlen, *tql, *to;
} multi_data;

static void *alloc_fill(size_t n, ra_dtype dt, uint64_t stream)
{
    void *p = aligned_alloc(64, (n * bench_dtype_size(dt) + 63) & ~(size_t)63);
    if (p)
        bench_fill_uniform(p, dt, n, 1.0f, 20261203, stream);
    return p;
}

static int data_init(multi_data *d, const multi_case *c, const multi_args *a)
{
    memset(d, 0, sizeof *d);
    const size_t nq = (size_t)(c->B * c->T * c->Hq * c->D),
                 nkv = (size_t)(c->B * c->S * c->Hkv * c->D);
    d->q = alloc_fill(nq, a->q, 1);
    d->k = alloc_fill(nkv, a->kv, 2);
    d->v = alloc_fill(nkv, a->kv, 3);
    d->o = aligned_alloc(64, nq * sizeof(float));
    d->o_tok = aligned_alloc(64, nq * sizeof(float));
    if (!d->q || !d->k || !d->v || !d->o || !d->o_tok)
        return -1;
    for (int64_t b = 0; b < c->B; b++) {
        d->len[b] = (int32_t)c->S;
        d->q_lens[b] = (int32_t)c->T;
    }
    const int64_t qs[4] = {c->B, c->T, c->Hq, c->D}, kvs[4] = {c->B, c->S, c->Hkv, c->D},
                  bs[1] = {c->B};
    return ra_tensor_wrap(&d->tq, a->q, 4, qs, NULL, d->q) ||
           ra_tensor_wrap(&d->tk, a->kv, 4, kvs, NULL, d->k) ||
           ra_tensor_wrap(&d->tv, a->kv, 4, kvs, NULL, d->v) ||
           ra_tensor_wrap(&d->tlen, RA_DTYPE_I32, 1, bs, NULL, d->len) ||
           ra_tensor_wrap(&d->tql, RA_DTYPE_I32, 1, bs, NULL, d->q_lens) ||
           ra_tensor_wrap(&d->to, RA_DTYPE_F32, 4, qs, NULL, d->o) ? -1 : 0;
}

static void data_free(multi_data *d)
{
    ra_tensor *ts[] = {d->tq, d->tk, d->tv, d->tlen, d->tql, d->to};
    for (int i = 0; i < 6; i++)
        ra_tensor_destroy(ts[i]);
    free(d->q), free(d->k), free(d->v), free(d->o), free(d->o_tok);
}

/* The same rows as one ra_ragged_gqa call per query position i, over positions < S - T + i + 1. */
static int per_token_calls(const multi_case *c, const multi_args *a, multi_data *d,
                           const ra_options *opts)
{
    const int64_t qs[4] = {c->B, 1, c->Hq, c->D},
                  st[4] = {c->T * c->Hq * c->D, c->Hq * c->D, c->D, 1};
    const size_t qes = bench_dtype_size(a->q);
    for (int64_t i = 0; i < c->T; i++) {
        for (int64_t b = 0; b < c->B; b++)
            d->len_tok[b] = (int32_t)(c->S - c->T + i + 1);
        ra_tensor *q1, *o1;
        ra_tensor_wrap(&q1, a->q, 4, qs, st, (char *)d->q + (size_t)(i * c->Hq * c->D) * qes);
        ra_tensor_wrap(&o1, RA_DTYPE_F32, 4, qs, st, d->o_tok + i * c->Hq * c->D);
        const int64_t bs[1] = {c->B};
        ra_tensor *len1;
        ra_tensor_wrap(&len1, RA_DTYPE_I32, 1, bs, NULL, d->len_tok);
        ra_status s = ra_ragged_gqa(opts, q1, d->tk, d->tv, len1, o1, NULL, NULL);
        ra_tensor_destroy(q1), ra_tensor_destroy(o1), ra_tensor_destroy(len1);
        if (s != RA_OK) {
            fprintf(stderr, "ra_ragged_gqa: %s\n", ra_last_error());
            return -1;
        }
    }
    return 0;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* FLOPs of the attention itself: q.k and p.v, 2*D each per visible (query, position, head). */
static double case_flops(const multi_case *c)
{
    /* query i sees S - T + i + 1 positions: the sum over i < T in closed form */
    const double T = (double)c->T, positions = T * (double)(c->S - c->T) + T * (T + 1.0) / 2.0;
    return 4.0 * (double)c->D * (double)c->Hq * (double)c->B * positions;
}

/* Bytes of K and V the call must read once: every cached position of every sequence. */
static double case_kv_bytes(const multi_case *c, const multi_args *a)
{
    return 2.0 * (double)(c->B * c->S * c->Hkv * c->D) * (double)bench_dtype_size(a->kv);
}

static int measure(const multi_case *c, const multi_args *a, const bench_membw *mb, int threads,
                   multi_row *row, double start, int step, int total)
{
    multi_data d;
    ra_options *opts = NULL;
    int rc = -1;
    if (data_init(&d, c, a) || ra_options_create(&opts) ||
        ra_options_set_num_threads(opts, threads) || ra_options_set_kernel(opts, a->kernel) ||
        ra_options_set_scale(opts, 1.0f / sqrtf((float)c->D))) {
        fprintf(stderr, "case %s: setup failed: %s\n", c->name, ra_last_error());
        goto out;
    }
    double tm[64], tt[64];
    for (int r = -1; r < a->reps; r++) { /* r = -1: warm-up of both, results compared */
        char what[96];
        snprintf(what, sizeof what, "case %s, %d thread%s, round %d of %d", c->name, threads,
                 threads > 1 ? "s" : "", r + 2, a->reps + 1);
        bench_progress(start, step, total, what);
        double t0 = omp_get_wtime();
        if (ra_ragged_gqa_multi(opts, d.tq, d.tk, d.tv, d.tlen, d.tql, d.to, NULL, NULL)) {
            fprintf(stderr, "ra_ragged_gqa_multi: %s\n", ra_last_error());
            goto out;
        }
        double t1 = omp_get_wtime();
        if (per_token_calls(c, a, &d, opts))
            goto out;
        double t2 = omp_get_wtime();
        if (r >= 0) {
            tm[r] = t1 - t0;
            tt[r] = t2 - t1;
        }
    }
    double diff = 0.0, ref = 0.0;
    for (size_t i = 0; i < (size_t)(c->B * c->T * c->Hq * c->D); i++) {
        /* comparisons, not fmax: gcc 12 for aarch64 fails to vectorize the fmax reduction */
        const double e = fabs((double)d.o[i] - d.o_tok[i]), r = fabs((double)d.o_tok[i]);
        diff = e > diff ? e : diff;
        ref = r > ref ? r : ref;
    }
    row->c = c;
    row->threads = threads;
    row->t_tokens = median(tt, a->reps);
    row->t_multi = median(tm, a->reps);
    row->t_multi_min = tm[0]; /* sorted by median() */
    row->gflops = case_flops(c) / row->t_multi * 1e-9;
    row->speedup = row->t_tokens / row->t_multi;
    row->max_diff = ref > 0 ? diff / ref : diff;
    bench_fma_peak pk = bench_fma_peak_measure(threads, 0.2);
    row->peak_gflops = pk.gflops;
    row->peak_isa = pk.isa;
    double bw[3];
    for (int r = 0; r < 3; r++)
        bw[r] = bench_membw_read_pass(mb, threads);
    row->read_gbs = median(bw, 3) * 1e-9;
    const double t_mem = case_kv_bytes(c, a) / (row->read_gbs * 1e9),
                 t_fma = case_flops(c) / (row->peak_gflops * 1e9);
    row->roofline_s = t_mem > t_fma ? t_mem : t_fma;
    rc = 0;
out:
    ra_options_destroy(opts);
    data_free(&d);
    return rc;
}

static void print_table(const multi_row *rows, int n, const multi_args *a)
{
    printf("\nra_ragged_gqa_multi, K/V %s, q %s (median of %d calls; per-token = one "
           "ra_ragged_gqa call per query position)\n\n",
           bench_dtype_name(a->kv), bench_dtype_name(a->q), a->reps);
    printf("%-8s %3s %5s %6s %4s %4s %4s %3s | %10s %8s %6s %6s | %11s %7s | %8s\n", "case",
           "B", "T", "S", "Hq", "Hkv", "D", "thr", "ms/call", "GFLOP/s", "%peak", "%roof",
           "per-token ms", "speedup", "rel diff");
    for (int i = 0; i < n; i++) {
        const multi_row *r = &rows[i];
        printf("%-8s %3lld %5lld %6lld %4lld %4lld %4lld %3d | %10.2f %8.1f %5.1f%% %5.1f%% | "
               "%11.2f %6.2fx | %8.1e\n", r->c->name, (long long)r->c->B, (long long)r->c->T,
               (long long)r->c->S, (long long)r->c->Hq, (long long)r->c->Hkv,
               (long long)r->c->D, r->threads, r->t_multi * 1e3, r->gflops,
               100.0 * r->gflops / r->peak_gflops, 100.0 * r->roofline_s / r->t_multi,
               r->t_tokens * 1e3, r->speedup, r->max_diff);
    }
    printf("\n%%peak: attention FLOPs (4*D per query, position and head) per second over the %s "
           "FMA peak measured on the same threads:", n ? rows[0].peak_isa : "-");
    for (int i = 0; i < n; i++) { /* the first measurement of each thread count */
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= rows[j].threads == rows[i].threads;
        if (!seen)
            printf(" %.1f GFLOP/s and %.1f GB/s read at %d thread%s;", rows[i].peak_gflops,
                   rows[i].read_gbs, rows[i].threads, rows[i].threads > 1 ? "s" : "");
    }
    printf("\n%%roof: max(K/V bytes / read bandwidth, FLOPs / FMA peak) over the time per call.");
    printf("\nrel diff: max |multi - per-token| / max |per-token| of the un-normalized o.\n");
}

static int write_json(const char *path, const multi_row *rows, int n, const multi_args *a)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "{\"library_version\": \"%s\", \"kernel\": \"%s\", \"kv_dtype\": \"%s\", "
            "\"q_dtype\": \"%s\", \"reps\": %d, \"results\": [", ra_version_string(),
            ra_kernel_name(a->kernel ? a->kernel : ra_kernel_resolve(NULL)),
            bench_dtype_name(a->kv),
            bench_dtype_name(a->q), a->reps);
    for (int i = 0; i < n; i++) {
        const multi_row *r = &rows[i];
        fprintf(f, "%s\n  {\"case\": \"%s\", \"B\": %lld, \"T\": %lld, \"S\": %lld, \"Hq\": %lld, "
                "\"Hkv\": %lld, \"D\": %lld, \"threads\": %d, \"time_median_s\": %.6g, "
                "\"time_min_s\": %.6g, \"gflops\": %.4g, \"peak_gflops\": %.4g, "
                "\"peak_isa\": \"%s\", \"per_token_time_median_s\": %.6g, \"speedup\": %.4g, "
                "\"read_gbs\": %.4g, \"roofline_s\": %.6g, \"max_rel_diff\": %.3g}", i ? "," : "",
                r->c->name, (long long)r->c->B,
                (long long)r->c->T, (long long)r->c->S, (long long)r->c->Hq,
                (long long)r->c->Hkv, (long long)r->c->D, r->threads, r->t_multi,
                r->t_multi_min, r->gflops, r->peak_gflops, r->peak_isa, r->t_tokens,
                r->speedup, r->read_gbs, r->roofline_s, r->max_diff);
    }
    fprintf(f, "\n]}\n");
    return fclose(f) ? -1 : 0;
}

int main(int argc, char **argv)
{
    multi_args a;
    int p = parse(argc, argv, &a);
    if (p)
        return p < 0 ? 0 : p;
    if (a.reps > 64)
        a.reps = 64;
    multi_row rows[N_CASES * 4];
    int n = 0, total = 0;
    for (int c = 0; c < N_CASES; c++)
        total += a.run_case[c] ? a.n_threads : 0;
    printf("raggedattn %s, kernel %s\n", ra_version_string(),
           ra_kernel_name(a.kernel ? a.kernel : ra_kernel_resolve(NULL)));
    bench_membw mb; /* two arrays of 256 MiB: far past the 32 MiB L3 */
    if (bench_membw_init(&mb, (size_t)512 << 20, 4096, false)) /* (no flush used) */
        return 1;
    const double start = omp_get_wtime();
    for (int c = 0; c < N_CASES; c++)
        for (int t = 0; t < a.n_threads && a.run_case[c]; t++, n++)
            if (measure(&cases[c], &a, &mb, a.threads[t], &rows[n], start, n + 1, total)) {
                bench_progress_end();
                bench_membw_free(&mb);
                return 1;
            }
    bench_progress_end();
    bench_membw_free(&mb);
    print_table(rows, n, &a);
    return a.json && write_json(a.json, rows, n, &a) ? 1 : 0;
}
