/* raggedattn-decode-loop: one decode call after another, with single-threaded "other work"
 * between them, as a server's decode loop runs; optionally with another process spinning on
 * one core. It shows what a thread count costs when the cores are shared (docs/threads.md):
 * per call mean, median, 90th percentile and maximum, and the wall time per step.
 *
 *   raggedattn-decode-loop [--threads 0,1,2] [--gap MS] [--calls N] [--busy]
 *                          [--B N --S N --hq N --hkv N --D N]
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "raggedattn.h"

typedef struct loop_config {
    int threads[16], n_threads;
    double gap_ms;
    int calls;
    int busy;
    int64_t B, S, Hq, Hkv, D;
} loop_config;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int parse_int_list(const char *s, int *out, int max)
{
    int n = 0;
    for (const char *p = s; *p && n < max;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 1024)
            return -1;
        out[n++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static int parse_args(int argc, char **argv, loop_config *c)
{
    *c = (loop_config){.threads = {0, 1}, .n_threads = 2, .gap_ms = 0.5, .calls = 500,
                       .B = 4, .S = 2048, .Hq = 8, .Hkv = 8, .D = 128};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t *dim = !strcmp(a, "--B")     ? &c->B
                       : !strcmp(a, "--S")   ? &c->S
                       : !strcmp(a, "--hq")  ? &c->Hq
                       : !strcmp(a, "--hkv") ? &c->Hkv
                       : !strcmp(a, "--D")   ? &c->D
                                             : NULL;
        if (!strcmp(a, "--busy")) {
            c->busy = 1;
        } else if (!strcmp(a, "--help")) {
            printf("usage: %s [--threads 0,1,2] [--gap MS] [--calls N] [--busy] "
                   "[--B N --S N --hq N --hkv N --D N]\n", argv[0]);
            return 1;
        } else if (!v) {
            fprintf(stderr, "%s: %s needs a value (see --help)\n", argv[0], a);
            return -1;
        } else if (!strcmp(a, "--threads")) {
            if ((c->n_threads = parse_int_list(v, c->threads, 16)) <= 0) {
                fprintf(stderr, "%s: bad --threads '%s'\n", argv[0], v);
                return -1;
            }
            i++;
        } else if (!strcmp(a, "--gap") || !strcmp(a, "--calls") || dim) {
            char *end;
            double x = strtod(v, &end);
            if (*end || x < 0 || x > 1e9 || (strcmp(a, "--gap") && x < 1)) {
                fprintf(stderr, "%s: bad value '%s' for %s\n", argv[0], v, a);
                return -1;
            }
            if (!strcmp(a, "--gap"))
                c->gap_ms = x;
            else if (!strcmp(a, "--calls"))
                c->calls = (int)x;
            else
                *dim = (int64_t)x;
            i++;
        } else {
            fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", argv[0], a);
            return -1;
        }
    }
    if (c->Hq % c->Hkv) {
        fprintf(stderr, "%s: --hq must be a multiple of --hkv\n", argv[0]);
        return -1;
    }
    return 0;
}

/* The competing process: a loop that never sleeps, until killed. */
static pid_t start_spinner(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        volatile unsigned long x = 0;
        for (;;)
            x++;
    }
    return pid;
}

int main(int argc, char **argv)
{
    loop_config c;
    int rc = parse_args(argc, argv, &c);
    if (rc)
        return rc > 0 ? 0 : 2;
    const int64_t nq = c.B * c.Hq * c.D, nkv = c.B * c.S * c.Hkv * c.D;
    float *q = malloc(sizeof(float) * (size_t)nq), *o = malloc(sizeof(float) * (size_t)nq);
    float *k = malloc(sizeof(float) * (size_t)nkv), *v = malloc(sizeof(float) * (size_t)nkv);
    int32_t *len = malloc(sizeof(int32_t) * (size_t)c.B);
    double *t = malloc(sizeof(double) * (size_t)c.calls);
    if (!q || !o || !k || !v || !len || !t) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < nkv; i++) {
        k[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
        v[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
    }
    for (int64_t i = 0; i < nq; i++)
        q[i] = (float)((i * 3) % 7) / 7.0f - 0.5f;
    for (int64_t b = 0; b < c.B; b++)
        len[b] = (int32_t)(c.S - (b * c.S) / (2 * c.B)); /* S down to about S/2 */
    const int64_t qs[] = {c.B, 1, c.Hq, c.D}, ks[] = {c.B, c.S, c.Hkv, c.D}, ls[] = {c.B};
    ra_tensor *tq, *tk, *tv, *tl, *to;
    if (ra_tensor_wrap(&tq, RA_DTYPE_F32, 4, qs, NULL, q) ||
        ra_tensor_wrap(&tk, RA_DTYPE_F32, 4, ks, NULL, k) ||
        ra_tensor_wrap(&tv, RA_DTYPE_F32, 4, ks, NULL, v) ||
        ra_tensor_wrap(&tl, RA_DTYPE_I32, 1, ls, NULL, len) ||
        ra_tensor_wrap(&to, RA_DTYPE_F32, 4, qs, NULL, o)) {
        fprintf(stderr, "%s\n", ra_last_error());
        return 1;
    }
    pid_t spinner = c.busy ? start_spinner() : 0;
    if (spinner < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        return 1;
    }
    printf("decode loop: B=%lld S=%lld Hq=%lld Hkv=%lld D=%lld f32, %.2f ms of other work "
           "between calls, %d calls%s\n\n", (long long)c.B, (long long)c.S, (long long)c.Hq,
           (long long)c.Hkv, (long long)c.D, c.gap_ms, c.calls,
           c.busy ? ", another process spinning on one core" : "");
    printf("| num_threads | mean ms | median ms | p90 ms | max ms | wall ms per step |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int ti = 0; ti < c.n_threads; ti++) {
        ra_options *opts;
        if (ra_options_create(&opts) || ra_options_set_num_threads(opts, c.threads[ti])) {
            fprintf(stderr, "%s\n", ra_last_error());
            return 1;
        }
        for (int i = 0; i < 5; i++) /* warm-up: the thread pool, page faults */
            ra_ragged_gqa(opts, tq, tk, tv, tl, to, NULL, NULL);
        double sum = 0, start = now();
        for (int i = 0; i < c.calls; i++) {
            double a = now();
            if (ra_ragged_gqa(opts, tq, tk, tv, tl, to, NULL, NULL) != RA_OK) {
                fprintf(stderr, "%s\n", ra_last_error());
                return 1;
            }
            t[i] = now() - a;
            sum += t[i];
            for (double until = now() + c.gap_ms * 1e-3; now() < until;)
                ;
        }
        double wall = now() - start;
        qsort(t, (size_t)c.calls, sizeof(double), cmp_double);
        printf("| %d | %.3f | %.3f | %.3f | %.2f | %.3f |\n", c.threads[ti],
               1e3 * sum / c.calls, 1e3 * t[c.calls / 2], 1e3 * t[(c.calls * 9) / 10],
               1e3 * t[c.calls - 1], 1e3 * wall / c.calls);
        fflush(stdout);
        ra_options_destroy(opts);
    }
    if (spinner > 0) {
        kill(spinner, SIGKILL);
        waitpid(spinner, NULL, 0);
    }
    ra_tensor *all[] = {tq, tk, tv, tl, to};
    for (int i = 0; i < 5; i++)
        ra_tensor_destroy(all[i]);
    free(q), free(o), free(k), free(v), free(len), free(t);
    return 0;
}
