#include "fill.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t bench_hash3(uint64_t seed, uint64_t stream, uint64_t index)
{
    /* splitmix64's finalizer over a combination of the three inputs */
    uint64_t z = seed * 0x9E3779B97F4A7C15ull ^ (stream + 1) * 0xD1B54A32D192ED03ull;
    z += (index + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint16_t bench_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u); /* keep NaN a (quiet) NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

uint16_t bench_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (ax >= 0x477ff000u) /* >= 65520 rounds to infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below 2^-14: a subnormal (or zero), exactly a * 2^24 rounded */
        float a;
        memcpy(&a, &ax, sizeof a);
        return (uint16_t)(sign | (uint16_t)lrintf(a * 16777216.0f));
    }
    ax += 0x0fffu + ((ax >> 13) & 1u); /* round to nearest even at bit 13 */
    return (uint16_t)(sign | ((ax - 0x38000000u) >> 13)); /* rebias 127 -> 15 */
}

size_t bench_dtype_size(ra_dtype t)
{
    return bench_dtype_quantized(t) ? 1 : t == RA_DTYPE_F16 || t == RA_DTYPE_BF16 ? 2 : 4;
}

bool bench_dtype_quantized(ra_dtype t)
{
    return t == RA_DTYPE_I8 || t == RA_DTYPE_FP8_E4M3 || t == RA_DTYPE_FP8_E5M2;
}

float bench_code_value(ra_dtype t, uint8_t code)
{
    if (t == RA_DTYPE_I8)
        return (float)(int8_t)code;
    const int ebits = t == RA_DTYPE_FP8_E4M3 ? 4 : 5, mbits = 7 - ebits;
    const int bias = (1 << (ebits - 1)) - 1, emax = (1 << ebits) - 1;
    const int e = (code >> mbits) & emax, m = code & ((1 << mbits) - 1);
    const float sign = code & 0x80 ? -1.0f : 1.0f;
    if (t == RA_DTYPE_FP8_E4M3 && e == emax && m == (1 << mbits) - 1)
        return NAN; /* e4m3fn has no infinities; only S.1111.111 is NaN */
    if (t == RA_DTYPE_FP8_E5M2 && e == emax)
        return m ? NAN : sign * INFINITY;
    if (e == 0) /* subnormal: m * 2^(1 - bias - mbits) */
        return sign * ldexpf((float)m, 1 - bias - mbits);
    return sign * ldexpf((float)((1 << mbits) + m), e - bias - mbits);
}

static float uniform(uint64_t seed, uint64_t stream, uint64_t i, float amp)
{
    /* the top 24 bits give a float in [0, 1) exactly */
    float u = (float)(bench_hash3(seed, stream, i) >> 40) * (1.0f / 16777216.0f);
    return (2.0f * u - 1.0f) * amp;
}

void bench_fill_uniform_run(void *dst, ra_dtype dtype, size_t n, float amp, uint64_t seed,
                            uint64_t stream, uint64_t first)
{
    if (dtype == RA_DTYPE_F32) {
        float *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = uniform(seed, stream, first + i, amp);
    } else {
        uint16_t *d = dst;
        int bf = dtype == RA_DTYPE_BF16;
        for (size_t i = 0; i < n; i++) {
            float f = uniform(seed, stream, first + i, amp);
            d[i] = bf ? bench_f32_to_bf16(f) : bench_f32_to_f16(f);
        }
    }
}

void bench_fill_uniform(void *dst, ra_dtype dtype, size_t n, float amp, uint64_t seed,
                        uint64_t stream)
{
    long long count = (long long)n;
    if (dtype == RA_DTYPE_F32) {
        float *d = dst;
#pragma omp parallel for schedule(static)
        for (long long i = 0; i < count; i++)
            d[i] = uniform(seed, stream, (uint64_t)i, amp);
    } else {
        uint16_t *d = dst;
        int bf = dtype == RA_DTYPE_BF16;
#pragma omp parallel for schedule(static)
        for (long long i = 0; i < count; i++) {
            float f = uniform(seed, stream, (uint64_t)i, amp);
            d[i] = bf ? bench_f32_to_bf16(f) : bench_f32_to_f16(f);
        }
    }
}

/* Elements quantized per ra_quantize call, through one f32 buffer of that size. */
enum { QUANT_CHUNK_ELEMS = 1 << 14 };

int bench_fill_quantized_run(uint8_t *codes, float *scales, ra_dtype dtype, size_t rows,
                             size_t row_len, float amp, uint64_t seed, uint64_t stream,
                             uint64_t first_row)
{
    if (rows == 0 || row_len == 0)
        return 0;
    size_t chunk = QUANT_CHUNK_ELEMS / row_len;
    chunk = chunk ? chunk : 1;
    float *tmp = malloc((chunk < rows ? chunk : rows) * row_len * sizeof *tmp);
    if (!tmp) {
        fprintf(stderr, "raggedattn-bench: error: out of memory for quantizing K/V\n");
        return -1;
    }
    int rc = 0;
    for (size_t r = 0; r < rows && rc == 0; r += chunk) {
        const size_t n = rows - r < chunk ? rows - r : chunk;
        bench_fill_uniform_run(tmp, RA_DTYPE_F32, n * row_len, amp, seed, stream,
                               (first_row + r) * row_len);
        const int64_t shape[2] = {(int64_t)n, (int64_t)row_len}, sshape[2] = {(int64_t)n, 1};
        ra_tensor *src = NULL, *dst = NULL, *sc = NULL;
        ra_status st = ra_tensor_wrap(&src, RA_DTYPE_F32, 2, shape, NULL, tmp);
        if (st == RA_OK)
            st = ra_tensor_wrap(&dst, dtype, 2, shape, NULL, codes + r * row_len);
        if (st == RA_OK)
            st = ra_tensor_wrap(&sc, RA_DTYPE_F32, 2, sshape, NULL, scales + r);
        if (st == RA_OK)
            st = ra_quantize(src, dst, sc);
        if (st != RA_OK) {
            fprintf(stderr, "raggedattn-bench: error: quantizing K/V failed: %s (%s)\n",
                    ra_status_string(st), ra_last_error());
            rc = -1;
        }
        ra_tensor_destroy(src);
        ra_tensor_destroy(dst);
        ra_tensor_destroy(sc);
    }
    free(tmp);
    return rc;
}

/* Rows each thread quantizes per task of bench_fill_quantized. */
enum { QUANT_TASK_ROWS = 1024 };

int bench_fill_quantized(uint8_t *codes, float *scales, ra_dtype dtype, size_t rows,
                         size_t row_len, float amp, uint64_t seed, uint64_t stream)
{
    const long long tasks = (long long)((rows + QUANT_TASK_ROWS - 1) / QUANT_TASK_ROWS);
    int failed = 0;
#pragma omp parallel for schedule(static) reduction(| : failed)
    for (long long t = 0; t < tasks; t++) {
        const size_t r0 = (size_t)t * QUANT_TASK_ROWS;
        const size_t n = rows - r0 < QUANT_TASK_ROWS ? rows - r0 : QUANT_TASK_ROWS;
        failed |= bench_fill_quantized_run(codes + r0 * row_len, scales + r0, dtype, n, row_len,
                                           amp, seed, stream, r0);
    }
    return failed ? -1 : 0;
}

void bench_dequantize(float *dst, const uint8_t *codes, const float *scales, ra_dtype dtype,
                      size_t rows, size_t row_len)
{
    const long long n = (long long)rows;
#pragma omp parallel for schedule(static)
    for (long long r = 0; r < n; r++)
        for (size_t i = (size_t)r * row_len; i < (size_t)(r + 1) * row_len; i++)
            dst[i] = bench_code_value(dtype, codes[i]) * scales[r];
}
