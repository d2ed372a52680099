#include "membw.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bigmem.h"

/* 16-byte vectors (SSE2, the x86-64 baseline; NEON on arm64): a scalar loop would be bound by
 * the adds, not by memory. */
typedef uint64_t u64x2 __attribute__((vector_size(16)));

/* Results land here so the compiler has to do every load. */
static volatile uint64_t g_sink;

enum { LANES_PER_STEP = 4 }; /* vectors per array per loop step: independent accumulators */

static uint64_t read_two(const u64x2 *a, const u64x2 *b, size_t n)
{
    u64x2 s0 = {0, 0}, s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + LANES_PER_STEP <= n; i += LANES_PER_STEP) {
        s0 += a[i] ^ b[i];
        s1 += a[i + 1] ^ b[i + 1];
        s2 += a[i + 2] ^ b[i + 2];
        s3 += a[i + 3] ^ b[i + 3];
    }
    for (; i < n; i++)
        s0 += a[i] ^ b[i];
    u64x2 s = s0 + s1 + s2 + s3;
    return s[0] ^ s[1];
}

int bench_membw_init(bench_membw *mb, size_t stream_total, size_t flush_bytes, bool thp)
{
    memset(mb, 0, sizeof *mb);
    /* a whole number of loop steps per array */
    size_t step = LANES_PER_STEP * sizeof(u64x2);
    mb->bytes_each = stream_total / 2 / step * step;
    mb->flush_bytes = flush_bytes / step * step;
    mb->flush_threads = omp_get_num_procs();
    mb->a = bench_alloc_big(mb->bytes_each, thp);
    mb->b = bench_alloc_big(mb->bytes_each, thp);
    mb->flush = bench_alloc_big(mb->flush_bytes, thp);
    if (!mb->a || !mb->b || !mb->flush) {
        fprintf(stderr, "raggedattn-bench: error: cannot allocate %zu MiB for the bandwidth "
                        "arrays\n", (2 * mb->bytes_each + mb->flush_bytes) >> 20);
        bench_membw_free(mb);
        return -1;
    }
    /* non-zero data, written in parallel so the pages are really there before any timing */
    long long n = (long long)mb->bytes_each;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < n; i++) {
        mb->a[i] = (unsigned char)(i * 7 + 1);
        mb->b[i] = (unsigned char)(i * 13 + 5);
    }
    memset(mb->flush, 0x5a, mb->flush_bytes);
    return 0;
}

void bench_membw_free(bench_membw *mb)
{
    bench_free_big(mb->a);
    bench_free_big(mb->b);
    bench_free_big(mb->flush);
    memset(mb, 0, sizeof *mb);
}

/* Each thread reads its contiguous share of both arrays. */
static uint64_t read_parallel(const unsigned char *a, const unsigned char *b, size_t bytes,
                              int threads)
{
    size_t n = bytes / sizeof(u64x2);
    const u64x2 *va = (const u64x2 *)(const void *)a;
    const u64x2 *vb = (const u64x2 *)(const void *)b;
    uint64_t acc = 0;
#pragma omp parallel num_threads(threads) reduction(^ : acc)
    {
        size_t nt = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
        size_t lo = n * id / nt, hi = n * (id + 1) / nt;
        acc ^= read_two(va + lo, vb + lo, hi - lo);
    }
    return acc;
}

double bench_membw_read_pass(const bench_membw *mb, int threads)
{
    double t0 = omp_get_wtime();
    uint64_t acc = read_parallel(mb->a, mb->b, mb->bytes_each, threads);
    double t1 = omp_get_wtime();
    g_sink ^= acc;
    return (double)(2 * mb->bytes_each) / (t1 - t0);
}

/* Every line of page p of both arrays, into L2. */
static void prefetch_page(const unsigned char *a, const unsigned char *b, size_t page_bytes,
                          size_t p)
{
    for (size_t x = 0; x < page_bytes; x += 64) {
        __builtin_prefetch(a + p * page_bytes + x, 0, 2);
        __builtin_prefetch(b + p * page_bytes + x, 0, 2);
    }
}

/* Pages order[0 .. n) of both arrays, prefetching page order[i + lead] a line of each per 64
 * bytes read, so the prefetches spread over the loop as the kernels spread theirs. */
static uint64_t read_pages(const unsigned char *a, const unsigned char *b, size_t page_bytes,
                           const size_t *order, size_t n, size_t lead)
{
    uint64_t acc = 0;
    const size_t vecs = page_bytes / sizeof(u64x2), per_line = 64 / sizeof(u64x2);
    for (size_t i = 0; i < lead && i < n; i++) /* the first pages, before the loop keeps up */
        prefetch_page(a, b, page_bytes, order[i]);
    for (size_t i = 0; i < n; i++) {
        const u64x2 *pa = (const u64x2 *)(const void *)(a + order[i] * page_bytes);
        const u64x2 *pb = (const u64x2 *)(const void *)(b + order[i] * page_bytes);
        const unsigned char *na = i + lead < n ? a + order[i + lead] * page_bytes : NULL;
        const unsigned char *nb = i + lead < n ? b + order[i + lead] * page_bytes : NULL;
        u64x2 s0 = {0, 0}, s1 = s0, s2 = s0, s3 = s0;
        for (size_t v = 0; v + per_line <= vecs; v += per_line) {
            if (na) {
                __builtin_prefetch(na + v * sizeof(u64x2), 0, 2);
                __builtin_prefetch(nb + v * sizeof(u64x2), 0, 2);
            }
            s0 += pa[v] ^ pb[v];
            s1 += pa[v + 1] ^ pb[v + 1];
            s2 += pa[v + 2] ^ pb[v + 2];
            s3 += pa[v + 3] ^ pb[v + 3];
        }
        const u64x2 s = s0 + s1 + s2 + s3;
        acc ^= s[0] ^ s[1];
    }
    return acc;
}

double bench_membw_read_pages(const bench_membw *mb, int threads, size_t page_bytes,
                              size_t ahead_bytes, const size_t *order, size_t n_pages)
{
    const size_t lead = ahead_bytes > page_bytes ? (ahead_bytes + page_bytes - 1) / page_bytes : 1;
    uint64_t acc = 0;
    const double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(^ : acc)
    {
        const size_t nt = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
        const size_t lo = n_pages * id / nt, hi = n_pages * (id + 1) / nt;
        acc ^= read_pages(mb->a, mb->b, page_bytes, order + lo, hi - lo, lead);
    }
    const double t1 = omp_get_wtime();
    g_sink ^= acc;
    return (double)(2 * n_pages * page_bytes) / (t1 - t0);
}

void bench_membw_flush(const bench_membw *mb)
{
    size_t half = mb->flush_bytes / 2 / (LANES_PER_STEP * sizeof(u64x2)) *
                  (LANES_PER_STEP * sizeof(u64x2));
    g_sink ^= read_parallel(mb->flush, mb->flush + half, half, mb->flush_threads);
}
