/* The machine's read bandwidth, measured by the bench itself, and the cache flush between
 * timed calls. */
#ifndef BENCH_MEMBW_H
#define BENCH_MEMBW_H

#include <stdbool.h>
#include <stddef.h>

typedef struct bench_membw {
    unsigned char *a, *b;     /* the two streamed arrays (like K and V) */
    size_t bytes_each;
    unsigned char *flush;     /* read between timed calls to evict K/V from every cache level */
    size_t flush_bytes;
    int flush_threads;        /* every processor reads, so each core's private L2 is evicted too */
} bench_membw;

/* stream_total: bytes of both arrays together (>= 1 GiB for a figure that means anything).
 * Returns 0, or -1 after printing why to stderr. */
int bench_membw_init(bench_membw *mb, size_t stream_total, size_t flush_bytes, bool thp);
void bench_membw_free(bench_membw *mb);

/* Reads both arrays once with `threads` OpenMP threads, each thread a contiguous slice of both
 * (two streams per thread, as a K/V walk has). Returns the bytes read per second. */
double bench_membw_read_pass(const bench_membw *mb, int threads);

/* Reads both arrays the way a decode call reads a paged cache: pages of page_bytes (page i
 * is bytes [i*page_bytes, (i+1)*page_bytes) of each array) in the order order[0 .. n_pages),
 * each thread a contiguous slice of that order, prefetching into L2 over the loop of each page
 * the page that starts at least ahead_bytes later in that order (the next one when
 * ahead_bytes <= page_bytes), as the kernels prefetch a tile ahead. n_pages * page_bytes must
 * not exceed bytes_each. Returns the bytes read per second. */
double bench_membw_read_pages(const bench_membw *mb, int threads, size_t page_bytes,
                              size_t ahead_bytes, const size_t *order, size_t n_pages);

/* Reads the flush buffer with every processor; not timed. */
void bench_membw_flush(const bench_membw *mb);

#endif
