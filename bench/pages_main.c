#define _POSIX_C_SOURCE 200809L /* strtok_r */
/* raggedattn-bench-pages: how fast this machine reads K/V laid out in pages, with no attention
 * in the way. A paged decode call reads each sequence's pages in page-table order, so a pool
 * whose pages are shuffled is read in chunks of one page each, in an order the hardware
 * prefetchers cannot guess. This program reads two arrays (like K and V) three ways, in
 * alternating passes: as two plain streams (the bench's bandwidth figure), page by page in
 * memory order, and page by page in a shuffled order; both page walks prefetch pages ahead, the
 * next one or those that start some bytes later, as the kernels prefetch a tile ahead. The
 * shuffled figure over the plain one, at the best lead, is the most a memory-bound paged call
 * can reach against a contiguous one at that page size (docs/performance.md). */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membw.h"

enum { MAX_SIZES = 16, MAX_THREADS = 4 };

typedef struct pages_args {
    size_t page_bytes[MAX_SIZES], ahead[MAX_SIZES];
    int n_sizes, n_ahead;
    int threads[MAX_THREADS], n_threads;
    int reps;
    size_t total_mib;
    bool thp;
} pages_args;

static int usage(const char *argv0, int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: %s [--page-bytes 4096,8192,...] [--ahead 1,65536] [--threads 1,2] [--reps N]\n"
            "          [--mib N] [--thp]\n"
            "Reads two arrays of N/2 MiB each (default 1024 in all) as plain streams, page by\n"
            "page in memory order and page by page in a shuffled order, alternating, and prints\n"
            "the median GB/s of each. Page bytes are multiples of 64; a pool page is\n"
            "page_size * Hkv * D * bytes per element (NHD). The page walks prefetch the page\n"
            "that starts --ahead bytes later (the next page when that is within the current\n"
            "one), once per listed value.\n",
            argv0);
    return rc;
}

/* Comma-separated integers in [1, limit] into out (at most max); returns how many, or -1. */
static int parse_list(const char *v, long long *out, int max, long long limit)
{
    char buf[256];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        const long long x = strtoll(t, &end, 10);
        if (*end || x < 1 || x > limit || n == max)
            return -1;
        out[n++] = x;
    }
    return n ? n : -1;
}

static int parse(int argc, char **argv, pages_args *a)
{
    static const size_t sizes[] = {2048, 4096, 8192, 16384, 32768, 65536, 262144};
    *a = (pages_args){.n_sizes = 7, .ahead = {1, 65536}, .n_ahead = 2, .threads = {1, 2},
                      .n_threads = 2, .reps = 7, .total_mib = 1024};
    memcpy(a->page_bytes, sizes, sizeof sizes);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long xs[MAX_SIZES];
        int n;
        if (!strcmp(f, "-h") || !strcmp(f, "--help"))
            return usage(argv[0], 0) - 1;
        if (!strcmp(f, "--thp")) {
            a->thp = true;
            continue;
        }
        if (!v)
            return usage(argv[0], 2);
        i++;
        if (!strcmp(f, "--page-bytes") && (n = parse_list(v, xs, MAX_SIZES, 1LL << 40)) > 0) {
            for (int k = 0; k < n; k++) {
                if (xs[k] % 64)
                    return usage(argv[0], 2);
                a->page_bytes[k] = (size_t)xs[k];
            }
            a->n_sizes = n;
        } else if (!strcmp(f, "--ahead") && (n = parse_list(v, xs, MAX_SIZES, 1LL << 40)) > 0) {
            for (int k = 0; k < n; k++)
                a->ahead[k] = (size_t)xs[k];
            a->n_ahead = n;
        } else if (!strcmp(f, "--threads") && (n = parse_list(v, xs, MAX_THREADS, 1024)) > 0) {
            for (int k = 0; k < n; k++)
                a->threads[k] = (int)xs[k];
            a->n_threads = n;
        } else if (!strcmp(f, "--reps") && parse_list(v, xs, 1, 1000000) == 1) {
            a->reps = (int)xs[0];
        } else if (!strcmp(f, "--mib") && parse_list(v, xs, 1, 1LL << 20) == 1 && xs[0] >= 64) {
            a->total_mib = (size_t)xs[0];
        } else {
            return usage(argv[0], 2);
        }
    }
    return 0;
}

/* The lead that --ahead BYTES gives pages of pb bytes, in bytes: whole pages, at least one. */
static size_t lead_bytes(size_t ahead, size_t pb)
{
    return (ahead > pb ? (ahead + pb - 1) / pb : 1) * pb;
}

static int by_value(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    pages_args a;
    const int rc = parse(argc, argv, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    bench_membw mb;
    if (bench_membw_init(&mb, a.total_mib << 20, 4096, a.thp))
        return 1;
    size_t max_pages = 0;
    for (int s = 0; s < a.n_sizes; s++)
        if (mb.bytes_each / a.page_bytes[s] > max_pages)
            max_pages = mb.bytes_each / a.page_bytes[s];
    size_t *in_order = malloc(max_pages * sizeof *in_order);
    size_t *shuffled = malloc(max_pages * sizeof *shuffled);
    double *g = malloc(3 * (size_t)a.reps * sizeof *g);
    int status = 0;
    if (!in_order || !shuffled || !g) {
        fprintf(stderr, "raggedattn-bench-pages: error: out of memory\n");
        status = 1;
        goto done;
    }
    printf("raggedattn-bench-pages: two arrays of %zu MiB (%s), median of %d passes each way\n\n",
           mb.bytes_each >> 20, a.thp ? "huge pages requested" : "huge pages not requested",
           a.reps);
    printf("threads  page_bytes  ahead_bytes   stream_GB/s  in_order_GB/s  shuffled_GB/s"
           "  shuffled/in_order  shuffled/stream\n");
    for (int ti = 0; ti < a.n_threads; ti++)
        for (int s = 0; s < a.n_sizes * a.n_ahead; s++) {
            const size_t pb = a.page_bytes[s / a.n_ahead], n = mb.bytes_each / pb;
            const size_t ahead = lead_bytes(a.ahead[s % a.n_ahead], pb);
            bool again = false; /* a lead this page size already ran */
            for (int k = 0; k < s % a.n_ahead; k++)
                again |= lead_bytes(a.ahead[k], pb) == ahead;
            if (again)
                continue;
            if (n < 2) {
                fprintf(stderr, "raggedattn-bench-pages: %zu-byte pages: the arrays hold fewer "
                                "than two (raise --mib)\n", pb);
                status = 2;
                goto done;
            }
            for (size_t i = 0; i < n; i++)
                in_order[i] = shuffled[i] = i;
            uint64_t state = 20261203u; /* Fisher-Yates, the same order every run */
            for (size_t i = n - 1; i > 0; i--) {
                state = state * 6364136223846793005u + 1442695040888963407u;
                const size_t j = (size_t)((state >> 33) % (i + 1)), x = shuffled[i];
                shuffled[i] = shuffled[j];
                shuffled[j] = x;
            }
            double *st = g, *io = g + a.reps, *sh = g + 2 * a.reps;
            for (int r = 0; r < a.reps; r++) {
                fprintf(stderr, "\r%d thread(s), %zu-byte pages, %zu ahead: pass %d of %d ",
                        a.threads[ti], pb, ahead, r + 1, a.reps);
                st[r] = bench_membw_read_pass(&mb, a.threads[ti]) / 1e9;
                io[r] = bench_membw_read_pages(&mb, a.threads[ti], pb, ahead, in_order, n) / 1e9;
                sh[r] = bench_membw_read_pages(&mb, a.threads[ti], pb, ahead, shuffled, n) / 1e9;
            }
            fprintf(stderr, "\r%60s\r", "");
            const double ms = median(st, a.reps), mi = median(io, a.reps),
                         mh = median(sh, a.reps);
            printf("%7d  %10zu  %11zu  %12.1f  %13.1f  %13.1f  %17.2f  %15.2f\n", a.threads[ti],
                   pb, ahead, ms, mi, mh, mh / mi, mh / ms);
            fflush(stdout);
        }
done:
    free(in_order), free(shuffled), free(g);
    bench_membw_free(&mb);
    return status;
}
