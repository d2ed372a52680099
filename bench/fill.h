/* Deterministic test data in any of the library's float dtypes, and quantized by ra_quantize. */
#ifndef BENCH_FILL_H
#define BENCH_FILL_H

#include <stdbool.h>
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

/* Bytes per element of dtype (1 for i8 and fp8). */
size_t bench_dtype_size(ra_dtype t);

/* i8, fp8 e4m3 or fp8 e5m2: K/V stored as codes with scales. */
bool bench_dtype_quantized(ra_dtype t);

/* The number a code of a quantized dtype stands for before its scale (decoded here, not by the
 * library): i8 as a signed byte, e4m3 with bias 7 and NaN at 0x7f/0xff, e5m2 as the top byte of
 * an IEEE binary16. */
float bench_code_value(ra_dtype t, uint8_t code);

/* The values bench_fill_uniform_run gives elements [first_row * row_len, +rows * row_len) of its
 * array, quantized by ra_quantize with one f32 scale per row of row_len elements (a K/V row is
 * one position of one KV head): codes[0 .. rows*row_len-1] and scales[0 .. rows-1]. Pieces of one
 * logical array (pages) then hold exactly what the whole array holds. Calling thread only.
 * Returns 0, or -1 after printing the library's error to stderr. */
int bench_fill_quantized_run(uint8_t *codes, float *scales, ra_dtype dtype, size_t rows,
                             size_t row_len, float amp, uint64_t seed, uint64_t stream,
                             uint64_t first_row);

/* bench_fill_quantized_run over the whole array (rows from 0), by OpenMP threads, which also
 * places the pages. Returns 0, or -1 after printing the library's error to stderr. */
int bench_fill_quantized(uint8_t *codes, float *scales, ra_dtype dtype, size_t rows,
                         size_t row_len, float amp, uint64_t seed, uint64_t stream);

/* dst[i] = bench_code_value(codes[i]) * scales[i / row_len] for rows * row_len elements: the
 * f32 values a quantized array stands for. */
void bench_dequantize(float *dst, const uint8_t *codes, const float *scales, ra_dtype dtype,
                      size_t rows, size_t row_len);

#endif
