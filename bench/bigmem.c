#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "bigmem.h"

#include <stdlib.h>
#include <sys/mman.h>

enum { HUGE_PAGE = 2u << 20 };

void *bench_alloc_big(size_t bytes, bool thp)
{
    size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    if (rounded == 0)
        rounded = HUGE_PAGE;
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, rounded) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (thp)
        (void)madvise(p, rounded, MADV_HUGEPAGE); /* advisory: a refusal only costs speed */
#else
    (void)thp;
#endif
    return p;
}

void bench_free_big(void *p)
{
    free(p);
}
