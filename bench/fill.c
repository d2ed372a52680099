#include "fill.h"

#include <math.h>
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
    return t == RA_DTYPE_F16 || t == RA_DTYPE_BF16 ? 2 : 4;
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
