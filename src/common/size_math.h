/* Overflow-checked size arithmetic for scratch buffers. */
#ifndef RA_COMMON_SIZE_MATH_H
#define RA_COMMON_SIZE_MATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* *out = a * b * c (elements) * esize (bytes); false when it does not fit in size_t. */
static inline bool ra__bytes(int64_t a, int64_t b, int64_t c, size_t esize, size_t *out)
{
    uint64_t r;
    if (a < 0 || b < 0 || c < 0 || __builtin_mul_overflow((uint64_t)a, (uint64_t)b, &r) ||
        __builtin_mul_overflow(r, (uint64_t)c, &r) || __builtin_mul_overflow(r, (uint64_t)esize, &r) ||
        r > SIZE_MAX / 2)
        return false;
    *out = (size_t)r;
    return true;
}

/* Carves one allocation into 64-byte-aligned slices: take() the slices, allocate used bytes
 * once, then add each offset to the base. overflow latches any size that does not fit. */
typedef struct ra__arena {
    size_t used;
    bool overflow;
} ra__arena;

static inline size_t ra__arena_take(ra__arena *a, int64_t n1, int64_t n2, int64_t n3, size_t esize)
{
    size_t bytes, at = a->used;
    if (!ra__bytes(n1, n2, n3, esize, &bytes) || bytes > SIZE_MAX / 4 - at) {
        a->overflow = true;
        return 0;
    }
    a->used = (at + bytes + 63) & ~(size_t)63;
    return at;
}

#endif
