/* Scratch memory: 64-byte aligned, with an allocation-failure hook for tests. */
#ifndef RA_ALLOC_INTERNAL_H
#define RA_ALLOC_INTERNAL_H

#include <stddef.h>

/* NULL on failure (or when the test hook says so). bytes == 0 returns a valid pointer. */
void *ra__alloc(size_t bytes);
void *ra__calloc(size_t bytes);
void ra__free(void *p);

/* Test-only (hidden, not exported from the shared library): when set, each allocation first
 * asks hook(bytes, user); a non-zero answer makes it fail. NULL removes the hook. The hook is
 * process-wide, so tests that use it must not run attention calls on other threads meanwhile. */
typedef int (*ra__alloc_fail_hook)(size_t bytes, void *user);
void ra__set_alloc_fail_hook(ra__alloc_fail_hook hook, void *user);

#endif
