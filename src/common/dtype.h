/* Scalar conversions between f32 and the 16-bit float formats, in portable C (no _Float16, so
 * every compiler we build with, including clang 14 for fuzzing, agrees). */
#ifndef RA_COMMON_DTYPE_H
#define RA_COMMON_DTYPE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "raggedattn.h"

static inline float ra__bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t ra__f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float ra__bf16_to_f32(uint16_t h)
{
    return ra__bits_to_f32((uint32_t)h << 16);
}

static inline float ra__f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f)
        return ra__bits_to_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        float f = (float)mant * 0x1p-24f; /* zero or subnormal: exact */
        return sign ? -f : f;
    }
    return ra__bits_to_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* Round to nearest even; NaN stays NaN (quiet). */
static inline uint16_t ra__f32_to_bf16(float f)
{
    uint32_t x = ra__f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static inline uint16_t ra__f32_to_f16(float f)
{
    uint32_t x = ra__f32_to_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u)
        return sign | 0x7e00u; /* NaN */
    if (x >= 0x477ff000u)
        return sign | 0x7c00u; /* rounds to +-inf (>= 65520) */
    if (x < 0x38800000u) {     /* below 2^-14: subnormal f16; scaling by 2^24 is exact */
        float n = rintf(fabsf(f) * 0x1p24f);
        return (uint16_t)(sign | (uint16_t)n);
    }
    uint32_t r = x + 0xfffu + ((x >> 13) & 1u) - (112u << 23);
    return (uint16_t)(sign | (r >> 13));
}

/* OCP FP8 E4M3 (e4m3fn): sign, 4 exponent bits (bias 7), 3 mantissa bits; exponent 15 with
 * mantissa 7 is NaN, there are no infinities. */
static inline float ra__e4m3_to_f32(uint8_t x)
{
    const int e = (x >> 3) & 15, m = x & 7;
    float f = e == 15 && m == 7 ? NAN : e == 0 ? (float)m * 0x1p-9f
                                               : ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return (x & 0x80) ? -f : f;
}

/* OCP FP8 E5M2: the top byte of an IEEE binary16. */
static inline float ra__e5m2_to_f32(uint8_t x)
{
    return ra__f16_to_f32((uint16_t)(x << 8));
}

/* Element i (already scaled by its stride) of a float tensor, as f32; of a quantized one, its
 * stored value q (the caller applies the scale). */
static inline float ra__load_f32(const void *base, ra_dtype dt, int64_t i)
{
    switch (dt) {
    case RA_DTYPE_F16:
        return ra__f16_to_f32(((const uint16_t *)base)[i]);
    case RA_DTYPE_BF16:
        return ra__bf16_to_f32(((const uint16_t *)base)[i]);
    case RA_DTYPE_I8:
        return (float)((const int8_t *)base)[i];
    case RA_DTYPE_FP8_E4M3:
        return ra__e4m3_to_f32(((const uint8_t *)base)[i]);
    case RA_DTYPE_FP8_E5M2:
        return ra__e5m2_to_f32(((const uint8_t *)base)[i]);
    default:
        return ((const float *)base)[i];
    }
}

/* f32 rounded to dt and back: the seed's .astype(v.dtype). */
static inline float ra__round_to(ra_dtype dt, float f)
{
    switch (dt) {
    case RA_DTYPE_F16:
        return ra__f16_to_f32(ra__f32_to_f16(f));
    case RA_DTYPE_BF16:
        return ra__bf16_to_f32(ra__f32_to_bf16(f));
    default:
        return f;
    }
}

#endif
