/* Deterministic test data in any of the library's float dtypes. */
#ifndef BENCH_FILL_H
#define BENCH_FILL_H

#include <stddef.h>
#include <stdint.h>

#include "raggedattn.h"

/* A 64-bit mix of (seed, stream, index): values are a pure function of their position, so a
 * parallel fill gives the same data for any thread count. */
uint64_t bench_hash3(uint64_t seed, uint64_t stream, uint64_t index);

/* dst[i] = uniform in [-amp, amp), stored as dtype (f32, f16 or bf16, rounded to nearest even).
 * Filled by OpenMP threads, which also places the pages. */
void bench_fill_uniform(void *dst, ra_dtype dtype, size_t n, float amp, uint64_t seed,
                        uint64_t stream);

/* The same values as bench_fill_uniform gives elements [first, first + n) of its array, written
 * to dst[0 .. n-1] by the calling thread alone: pieces of one logical array (the pages of a
 * paged cache) then hold exactly what the whole array holds. */
void bench_fill_uniform_run(void *dst, ra_dtype dtype, size_t n, float amp, uint64_t seed,
                            uint64_t stream, uint64_t first);

uint16_t bench_f32_to_bf16(float f);
uint16_t bench_f32_to_f16(float f);

/* Bytes per element of dtype. */
size_t bench_dtype_size(ra_dtype t);

#endif
