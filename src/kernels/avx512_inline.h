/* Small AVX-512 helpers shared by the kernel files compiled with AVX-512 flags (avx512.c,
 * avx512_rows.c). Everything is inline: this header must only be included from those files. */
#ifndef RA_AVX512_INLINE_H
#define RA_AVX512_INLINE_H

#include <immintrin.h>
#include <stdint.h>

#include "exp_poly.h"
#include "raggedattn.h"

#define RA_INLINE static inline __attribute__((always_inline))

/* 16 elements at element index i of a K/V row, as f32 (of a quantized row, the stored values
 * q, which the caller scales); lanes outside mk read nothing. */
RA_INLINE __m512 load16(const void *base, int64_t i, __mmask16 mk, const int dt)
{
    if (!mk) /* past the row: form no pointer beyond it */
        return _mm512_setzero_ps();
    if (dt == RA_DTYPE_F32)
        return _mm512_maskz_loadu_ps(mk, (const float *)base + i);
    if (dt == RA_DTYPE_I8 || dt == RA_DTYPE_FP8_E4M3 || dt == RA_DTYPE_FP8_E5M2) {
        const __m128i b = _mm_maskz_loadu_epi8(mk, (const uint8_t *)base + i);
        if (dt == RA_DTYPE_I8)
            return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
        const __m256i w = _mm256_cvtepu8_epi16(b);
        if (dt == RA_DTYPE_FP8_E5M2) /* the top byte of a binary16 */
            return _mm512_cvtph_ps(_mm256_slli_epi16(w, 8));
        /* e4m3 as a binary16 with the exponent bias 15 instead of 7 (exact, subnormals too),
         * times 2^8; 0x7f and 0xff are NaN */
        const __m256i mag = _mm256_and_si256(w, _mm256_set1_epi16(0x7f));
        const __m256i h = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(w, _mm256_set1_epi16(0x80)), 8),
                                          _mm256_slli_epi16(mag, 7));
        const __m512 f = _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(256.0f));
        return _mm512_mask_mov_ps(f, _mm256_cmpeq_epi16_mask(mag, _mm256_set1_epi16(0x7f)),
                                  _mm512_set1_ps(NAN));
    }
    __m256i h = _mm256_maskz_loadu_epi16(mk, (const uint16_t *)base + i);
    if (dt == RA_DTYPE_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Bytes per element of a K/V dtype (the bf16 pair steps' pseudo-dtype reads bf16). */
#define RA_ES(dt) ((dt) == RA_DTYPE_F32 ? 4 : (dt) >= RA_DTYPE_I8 ? 1 : 2)

RA_INLINE __mmask16 lanes(int64_t n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

RA_INLINE __mmask32 lanes32(int64_t n)
{
    return n >= 32 ? (__mmask32)0xffffffffu : n <= 0 ? (__mmask32)0 : (__mmask32)((1u << n) - 1u);
}

/* 32 bf16 (one whole load) as f32: the even elements 0, 2, .. 30 and the odd ones 1, 3, .. 31.
 * A shift and a mask, where widening 16 of them at a time takes a shuffle. */
RA_INLINE void bf16_split(__m512i x, __m512 *even, __m512 *odd)
{
    *even = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
    *odd = _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32((int)0xffff0000u)));
}

/* r[i] = sum of the lanes of a[i], for 16 vectors. */
RA_INLINE __m512 sum16(const __m512 a[16])
{
    __m512 z[4];
    for (int grp = 0; grp < 4; grp++) {
        const __m512 *v = a + 4 * grp;
        __m512 x = _mm512_add_ps(_mm512_unpacklo_ps(v[0], v[1]), _mm512_unpackhi_ps(v[0], v[1]));
        __m512 y = _mm512_add_ps(_mm512_unpacklo_ps(v[2], v[3]), _mm512_unpackhi_ps(v[2], v[3]));
        /* per 128-bit lane: [v0, v1, v2, v3] partial sums */
        z[grp] = _mm512_add_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(x), _mm512_castps_pd(y))),
            _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(x), _mm512_castps_pd(y))));
    }
    __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(3, 1, 3, 1)));
    __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(z[2], z[3], _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_f32x4(z[2], z[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* exp(x) to about 1 ulp: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-7 Taylor polynomial,
 * then vscalefps applies 2^n (handling underflow to denormals/0 and overflow to inf).
 * max/min keep a NaN x: they return their second operand when either is NaN. */
RA_INLINE __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_set1_ps(200.0f), _mm512_max_ps(_mm512_set1_ps(-200.0f), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(RA_EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(RA_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(RA_EXP_LN2_LO), r);
    __m512 p = RA_EXP_TAYLOR7(_mm512_fmadd_ps, _mm512_set1_ps, r);
    return _mm512_scalef_ps(p, n);
}

/* tanh(x) to a few ulp: below |x| = 0.625 its odd Taylor polynomial of degree 21 (within 2e-9
 * of tanh there), above 1 - 2 / (e^(2|x|) + 1), where the cancellation is mild; then the sign
 * of x. A NaN stays NaN. */
RA_INLINE __m512 tanh16(__m512 x)
{
    const __m512 a = _mm512_abs_ps(x), z = _mm512_mul_ps(a, a);
    __m512 p = _mm512_set1_ps(9.6915379569294509e-05f);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.00023912911424355248f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.00059002744094558595f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.0014558343870513183f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.0035921280365724811f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.0088632355299021973f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.021869488536155203f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.053968253968253971f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.13333333333333333f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.33333333333333331f));
    const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(a, z), p, a);
    const __m512 big = _mm512_sub_ps(
        _mm512_set1_ps(1.0f),
        _mm512_div_ps(_mm512_set1_ps(2.0f),
                      _mm512_add_ps(exp16(_mm512_add_ps(a, a)), _mm512_set1_ps(1.0f))));
    const __m512 r = _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.625f),
                                                                 _CMP_LT_OQ), small);
    return _mm512_or_ps(r, _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));
}

/* The score modifiers on 16 logits (kernel.h): soft-cap, then the ALiBi bias -slope * dist for
 * each lane's slope and distance to the last position. */
RA_INLINE __m512 modify16(__m512 x, float cap, __m512 slope, __m512 dist, int alibi)
{
    if (cap != 0.0f) {
        const __m512 c = _mm512_set1_ps(cap);
        x = _mm512_mul_ps(c, tanh16(_mm512_div_ps(x, c)));
    }
    return alibi ? _mm512_fnmadd_ps(slope, dist, x) : x;
}

/* max(a, b) that keeps a NaN of either operand (max_ps returns b when either is NaN). */
RA_INLINE __m512 nanmax(__m512 a, __m512 b)
{
    return _mm512_mask_mov_ps(_mm512_max_ps(a, b), _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a);
}

#endif
