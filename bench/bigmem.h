/* Large, page-aligned buffers for K/V and the bandwidth arrays. */
#ifndef BENCH_BIGMEM_H
#define BENCH_BIGMEM_H

#include <stdbool.h>
#include <stddef.h>

/* 2 MiB-aligned memory of at least bytes, or NULL. With thp, asks the kernel for transparent
 * huge pages (madvise), which changes how many TLB misses a long stream takes. The pages are
 * not touched here; whoever fills them first places them. Free with bench_free_big. */
void *bench_alloc_big(size_t bytes, bool thp);
void bench_free_big(void *p);

#endif
