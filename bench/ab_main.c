/* raggedattn-bench-ab: two builds of libraggedattn timed against each other in one process.
 * On a machine whose speed drifts from one run to the next (a VM sharing its memory), two
 * builds benchmarked one after the other differ by more than most changes do. This program
 * dlopens both builds, runs the same decode call on the same buffers with each in turn (A B,
 * then B A, ...), flushes the caches before every call, and reports the median of the
 * per-pair time ratios B/A, which the drift mostly cancels out of. Give the same library
 * twice for an A/A run: its ratio spread is the method's noise. */
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raggedattn.h"

enum { MAX_PAIRS = 1000 };

/* Where the cache flush's reads go, so that the compiler keeps them. */
static volatile unsigned g_flush_sink;

typedef struct ab_args {
    const char *lib[2];
    int64_t B, S, Hq, Hkv, D, page, threads, pairs, flush_mib;
    ra_dtype kv;
    const char *kv_name;
} ab_args;

/* One build: its API table and its own handles over the shared buffers. */
typedef struct ab_lib {
    void *dl;
    const ra_api *api;
    ra_options *opts;
    ra_tensor *q, *k, *v, *len, *pages, *o;
} ab_lib;

static int usage(const char *argv0, int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: %s --a LIB --b LIB [--B N] [--S N] [--hq N] [--hkv N] [--D N]\n"
            "          [--dtype f32|bf16] [--paged PAGE_SIZE] [--threads N] [--pairs N]\n"
            "          [--flush-mib N]\n"
            "Times ra_ragged_gqa (or ra_paged_gqa over shuffled pages) of two builds of the\n"
            "library, alternating, caches flushed before each call, every sequence S long;\n"
            "prints both medians and the median of the per-pair ratios B/A.\n"
            "Defaults: B 1, S 32768, hq 32, hkv 8, D 128, bf16, contiguous, 1 thread,\n"
            "30 pairs, a 512 MiB flush.\n",
            argv0);
    return rc;
}

static int parse(int argc, char **argv, ab_args *a)
{
    *a = (ab_args){{NULL, NULL}, 1, 32768, 32, 8, 128, 0, 1, 30, 512, RA_DTYPE_BF16, "bf16"};
    /* the numeric options: flag, field, smallest and largest value */
    const struct {
        const char *flag;
        int64_t *at, lo, hi;
    } nums[] = {{"--B", &a->B, 1, 1LL << 40},          {"--S", &a->S, 1, 1LL << 40},
                {"--hq", &a->Hq, 1, 1LL << 40},        {"--hkv", &a->Hkv, 1, 1LL << 40},
                {"--D", &a->D, 1, 1LL << 40},          {"--paged", &a->page, 0, 1LL << 40},
                {"--threads", &a->threads, 1, 1024},   {"--pairs", &a->pairs, 1, MAX_PAIRS},
                {"--flush-mib", &a->flush_mib, 1, 1LL << 20}};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-h") || !strcmp(f, "--help"))
            return usage(argv[0], 0) - 1;
        if (i + 1 >= argc)
            return usage(argv[0], 2);
        const char *v = argv[++i];
        size_t k = 0;
        while (k < sizeof nums / sizeof nums[0] && strcmp(f, nums[k].flag))
            k++;
        if (k < sizeof nums / sizeof nums[0]) {
            char *rest;
            const long long n = strtoll(v, &rest, 10);
            if (rest == v || *rest || n < nums[k].lo || n > nums[k].hi)
                return usage(argv[0], 2);
            *nums[k].at = n;
        } else if (!strcmp(f, "--a") || !strcmp(f, "--b")) {
            a->lib[f[2] == 'b'] = v;
        } else if (!strcmp(f, "--dtype") && (!strcmp(v, "f32") || !strcmp(v, "bf16"))) {
            a->kv = v[0] == 'b' ? RA_DTYPE_BF16 : RA_DTYPE_F32;
            a->kv_name = v;
        } else {
            return usage(argv[0], 2);
        }
    }
    if (!a->lib[0] || !a->lib[1] || a->Hq % a->Hkv || (a->page && a->S % a->page)) {
        fprintf(stderr, "raggedattn-bench-ab: need --a and --b, hkv dividing hq, and a page "
                        "size dividing S\n");
        return 2;
    }
    return 0;
}

/* n values uniform in [-1, 1) into dst, f32 or bf16 (the library is not linked: both builds
 * come in through dlopen, so that neither one's symbols stand in for the other's). */
static void fill(void *dst, ra_dtype dt, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        const float x = (float)(seed >> 40) / (float)(1u << 23) - 1.0f;
        if (dt == RA_DTYPE_F32) {
            ((float *)dst)[i] = x;
        } else {
            uint32_t bits;
            memcpy(&bits, &x, sizeof bits);
            ((uint16_t *)dst)[i] = (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
        }
    }
}

static int open_lib(const char *path, const ab_args *a, void *q, void *k, void *v,
                    int32_t *len, int32_t *pages, float *o, ab_lib *l)
{
    void *h = l->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const ra_api *(*get)(uint32_t) = h ? (const ra_api *(*)(uint32_t))dlsym(h, "ra_get_api")
                                       : NULL;
    if (!get || !(l->api = get(RA_API_VERSION))) {
        fprintf(stderr, "raggedattn-bench-ab: %s: %s\n", path, h ? "no API version 3" : dlerror());
        return -1;
    }
    const ra_api *api = l->api;
    const int64_t qs[4] = {a->B, 1, a->Hq, a->D}, bs[1] = {a->B}, n_pages = a->page ? a->S / a->page : 0;
    const int64_t kv[4] = {a->page ? a->B * n_pages : a->B, a->page ? a->page : a->S, a->Hkv, a->D};
    const int64_t pt[2] = {a->B, n_pages};
    if (api->options_create(&l->opts) || api->options_set_num_threads(l->opts, (int)a->threads) ||
        api->options_set_scale(l->opts, 1.0f / sqrtf((float)a->D)) ||
        api->tensor_wrap(&l->q, RA_DTYPE_F32, 4, qs, NULL, q) ||
        api->tensor_wrap(&l->o, RA_DTYPE_F32, 4, qs, NULL, o) ||
        api->tensor_wrap(&l->k, a->kv, 4, kv, NULL, k) ||
        api->tensor_wrap(&l->v, a->kv, 4, kv, NULL, v) ||
        api->tensor_wrap(&l->len, RA_DTYPE_I32, 1, bs, NULL, len) ||
        (a->page && api->tensor_wrap(&l->pages, RA_DTYPE_I32, 2, pt, NULL, pages))) {
        fprintf(stderr, "raggedattn-bench-ab: %s: setup: %s\n", path, api->last_error());
        return -1;
    }
    return 0;
}

static void close_lib(ab_lib *l)
{
    if (l->api) {
        ra_tensor *ts[] = {l->q, l->k, l->v, l->len, l->pages, l->o};
        for (int i = 0; i < 6; i++)
            l->api->tensor_destroy(ts[i]);
        l->api->options_destroy(l->opts);
    }
    if (l->dl)
        dlclose(l->dl);
}

static double call(const ab_lib *l)
{
    const double t0 = omp_get_wtime();
    const ra_status s =
        l->pages ? l->api->paged_gqa(l->opts, l->q, l->k, l->v, l->pages, l->len, l->o, NULL, NULL)
                 : l->api->ragged_gqa(l->opts, l->q, l->k, l->v, l->len, l->o, NULL, NULL);
    const double t = omp_get_wtime() - t0;
    if (s != RA_OK) {
        fprintf(stderr, "raggedattn-bench-ab: %s\n", l->api->last_error());
        return -1.0;
    }
    return t;
}

static int by_value(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The q-th quantile (0..1) of v[0..n), sorting v. */
static double quantile(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return v[(int)(q * (n - 1) + 0.5)];
}

int main(int argc, char **argv)
{
    ab_args a;
    const int rc = parse(argc, argv, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    const size_t es = a.kv == RA_DTYPE_F32 ? 4 : 2, nkv = (size_t)(a.B * a.S * a.Hkv * a.D),
                 nq = (size_t)(a.B * a.Hq * a.D), flush_bytes = (size_t)a.flush_mib << 20;
    const int64_t n_pages = a.page ? a.B * (a.S / a.page) : 0;
    void *k = aligned_alloc(4096, (nkv * es + 4095) & ~(size_t)4095);
    void *v = aligned_alloc(4096, (nkv * es + 4095) & ~(size_t)4095);
    float *q = malloc(nq * sizeof *q), *o = malloc(nq * sizeof *o);
    int32_t *len = malloc((size_t)a.B * sizeof *len);
    int32_t *pages = malloc((size_t)(n_pages ? n_pages : 1) * sizeof *pages);
    unsigned char *flush = malloc(flush_bytes ? flush_bytes : 1);
    double *t[2] = {malloc(MAX_PAIRS * sizeof(double)), malloc(MAX_PAIRS * sizeof(double))};
    double *ratio = malloc(MAX_PAIRS * sizeof(double));
    ab_lib lib[2] = {{0}, {0}};
    int status = 1;
    if (!k || !v || !q || !o || !len || !pages || !flush || !t[0] || !t[1] || !ratio) {
        fprintf(stderr, "raggedattn-bench-ab: out of memory\n");
        goto done;
    }
    fill(k, a.kv, nkv, 1);
    fill(v, a.kv, nkv, 2);
    fill(q, RA_DTYPE_F32, nq, 3);
    memset(flush, 1, flush_bytes);
    for (int64_t b = 0; b < a.B; b++)
        len[b] = (int32_t)a.S;
    uint64_t state = 20261204u; /* every sequence's pages, shuffled over the pool */
    for (int64_t i = 0; i < n_pages; i++)
        pages[i] = (int32_t)i;
    for (int64_t i = n_pages - 1; i > 0; i--) {
        state = state * 6364136223846793005u + 1442695040888963407u;
        const int64_t j = (int64_t)((state >> 33) % (uint64_t)(i + 1));
        const int32_t x = pages[i];
        pages[i] = pages[j];
        pages[j] = x;
    }
    for (int w = 0; w < 2; w++)
        if (open_lib(a.lib[w], &a, q, k, v, len, pages, o, &lib[w]))
            goto done;
    printf("raggedattn-bench-ab: A %s (%s), B %s (%s)%s\n", a.lib[0], lib[0].api->version_string(),
           a.lib[1], lib[1].api->version_string(),
           lib[0].api == lib[1].api ? ": the same library (an A/A run)" : "");
    printf("ra_%s_gqa, B %lld, S %lld, Hq %lld, Hkv %lld, D %lld, K/V %s, %s, %d thread%s, "
           "%d pairs, %lld MiB flushed before each call\n",
           a.page ? "paged" : "ragged", (long long)a.B, (long long)a.S, (long long)a.Hq,
           (long long)a.Hkv, (long long)a.D, a.kv_name,
           a.page ? "shuffled pages" : "contiguous", (int)a.threads, a.threads > 1 ? "s" : "",
           (int)a.pairs, (long long)a.flush_mib);
    if (a.page)
        printf("page size %lld\n", (long long)a.page);
    for (int r = -2; r < a.pairs; r++) { /* two warm-up pairs */
        for (int i = 0; i < 2; i++) {
            const int w = r & 1 ? 1 - i : i; /* A B, then B A */
            unsigned sum = 0;
            for (size_t x = 0; x < flush_bytes; x += 64)
                sum += flush[x];
            g_flush_sink += sum;
            const double dt = call(&lib[w]);
            if (dt < 0)
                goto done;
            if (r >= 0)
                t[w][r] = dt * 1e3;
        }
        if (r >= 0)
            ratio[r] = t[1][r] / t[0][r];
        fprintf(stderr, "\rpair %d of %d ", r + 3, (int)a.pairs + 2);
    }
    fprintf(stderr, "\r%30s\r", "");
    const double ma = quantile(t[0], (int)a.pairs, 0.5), mb = quantile(t[1], (int)a.pairs, 0.5);
    const double lo = quantile(ratio, (int)a.pairs, 0.25), hi = quantile(ratio, (int)a.pairs, 0.75);
    printf("A median %.3f ms, B median %.3f ms; B/A per pair: median %.3f (quartiles %.3f-%.3f)\n",
           ma, mb, quantile(ratio, (int)a.pairs, 0.5), lo, hi);
    status = 0;
done:
    close_lib(&lib[1]);
    close_lib(&lib[0]);
    free(k), free(v), free(q), free(o), free(len), free(pages), free(flush);
    free(t[0]), free(t[1]), free(ratio);
    return status;
}
