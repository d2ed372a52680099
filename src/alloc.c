/* Aligned scratch allocation with a failure-injection hook for tests. */
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"

/* The only mutable global in the library, and only tests ever set it. Atomic pointer reads
 * keep concurrent (non-test) callers well defined. */
static ra__alloc_fail_hook fail_hook;
static void *fail_hook_user;

void ra__set_alloc_fail_hook(ra__alloc_fail_hook hook, void *user)
{
    __atomic_store_n(&fail_hook_user, user, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fail_hook, hook, __ATOMIC_SEQ_CST);
}

void *ra__alloc(size_t bytes)
{
    ra__alloc_fail_hook hook = __atomic_load_n(&fail_hook, __ATOMIC_SEQ_CST);
    if (hook && hook(bytes, __atomic_load_n(&fail_hook_user, __ATOMIC_SEQ_CST)))
        return NULL;
    /* aligned_alloc needs a multiple of the alignment; round up (and never ask for 0). */
    size_t rounded = (bytes + 63u) & ~(size_t)63u;
    if (rounded < bytes)
        return NULL;
    return aligned_alloc(64, rounded ? rounded : 64);
}

void *ra__calloc(size_t bytes)
{
    void *p = ra__alloc(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void ra__free(void *p)
{
    free(p);
}
