/* Small AVX-512 helpers shared by the kernel files compiled with AVX-512 flags (avx512.c,
 * avx512_rows.c). Everything is inline: this header must only be included from those files. */
#ifndef RA_AVX512_INLINE_H
#define RA_AVX512_INLINE_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "kernels/exp_poly.h"
#include "raggedattn.h"

#define RA_INLINE static inline __attribute__((always_inline))

/* The pseudo K/V dtype of e4m3 rows on CPUs without AVX512-VBMI (no byte table lookups):
 * widened 16 elements at a time through binary16 instead. */
#define RA_E4M3_NO_VBMI 7

/* 16 elements at element index i of a K/V row, as f32 (of a quantized row, the stored values
 * q, which the caller scales); lanes outside mk read nothing. */
RA_INLINE __m512 load16(const void *base, int64_t i, __mmask16 mk, const int dt)
{
    if (!mk) /* past the row: form no pointer beyond it */
        return _mm512_setzero_ps();
    if (dt == RA_DTYPE_F32)
        return _mm512_maskz_loadu_ps(mk, (const float *)base + i);
    if (dt == RA_DTYPE_I8 || dt == RA_DTYPE_FP8_E4M3 || dt == RA_DTYPE_FP8_E5M2 ||
        dt == RA_E4M3_NO_VBMI) {
        const __m128i b = _mm_maskz_loadu_epi8(mk, (const uint8_t *)base + i);
        if (dt == RA_DTYPE_I8)
            return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
        const __m256i w = _mm256_cvtepu8_epi16(b);
        if (dt == RA_DTYPE_FP8_E5M2) /* the top byte of a binary16 */
            return _mm512_cvtph_ps(_mm256_slli_epi16(w, 8));
        /* e4m3 as a binary16 with the exponent bias 15 instead of 7 (exact, subnormals too),
         * times 2^8: the sign-extended byte shifted left by 7 holds the sign in bit 15 and a
         * stray copy in bit 14, which the mask clears; 0x7f and 0xff are NaN */
        const __m256i s7 = _mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7);
        const __m256i h = _mm256_and_si256(s7, _mm256_set1_epi16((short)0xbfff));
        const __m512 f = _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(256.0f));
        const __mmask16 nan = _mm_cmpeq_epi8_mask(_mm_or_si128(b, _mm_set1_epi8((char)0x80)),
                                                  _mm_set1_epi8((char)0xff));
        return _mm512_mask_mov_ps(f, nan, _mm512_set1_ps(NAN));
    }
    __m256i h = _mm256_maskz_loadu_epi16(mk, (const uint16_t *)base + i);
    if (dt == RA_DTYPE_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The bf16 bits of an e4m3 magnitude c (7 bits; e4m3 values are all exact in bf16): exponent
 * e = c >> 3 rebiased from 7 to 127, subnormals (e = 0) normalized, 0x7f a quiet NaN. */
#define RA_E4M3_BF16(c)                                                                        \
    ((c) == 0x7f   ? 0x7fc0                                                                     \
     : (c) >> 3    ? ((((c) >> 3) + 120) << 7) | (((c) & 7) << 4)                              \
     : (c) == 0    ? 0                                                                          \
     : (c) == 1    ? 0x3b00                                                                     \
     : (c) < 4     ? 0x3b80 | (((c) & 1) << 6)                                                  \
                   : 0x3c00 | (((c) & 3) << 5))
#define RA_LUT4(f, c) f(c), f((c) + 1), f((c) + 2), f((c) + 3)
#define RA_LUT16(f, c) RA_LUT4(f, c), RA_LUT4(f, (c) + 4), RA_LUT4(f, (c) + 8), RA_LUT4(f, (c) + 12)
#define RA_LUT64(f, c) RA_LUT16(f, c), RA_LUT16(f, (c) + 16), RA_LUT16(f, (c) + 32), RA_LUT16(f, (c) + 48)
#define RA_E4M3_LO(c) (uint8_t)(RA_E4M3_BF16(c) & 0xff)
#define RA_E4M3_HI(c) (uint8_t)(RA_E4M3_BF16(c) >> 8)
/* Low and high bytes of those bf16, 128 of each: the two-register tables of vpermi2b. */
static const uint8_t ra_e4m3_bf16_lo[128] __attribute__((aligned(64))) = {
    RA_LUT64(RA_E4M3_LO, 0), RA_LUT64(RA_E4M3_LO, 64)};
static const uint8_t ra_e4m3_bf16_hi[128] __attribute__((aligned(64))) = {
    RA_LUT64(RA_E4M3_HI, 0), RA_LUT64(RA_E4M3_HI, 64)};

/* 32 e4m3 codes as 32 bf16 in element order: each code goes to both bytes of its word, the
 * low byte is looked up in one table and the high byte in the other (vpermi2b reads the low
 * 7 bits of each index), and the code's sign bit, which sits at bit 15 already, is kept. */
RA_INLINE __m512i e4m3_to_bf16x32(__m256i codes)
{
    const __m512i both_bytes = _mm512_set_epi8(
        31, 31, 30, 30, 29, 29, 28, 28, 27, 27, 26, 26, 25, 25, 24, 24, 23, 23, 22, 22, 21, 21,
        20, 20, 19, 19, 18, 18, 17, 17, 16, 16, 15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10,
        9, 9, 8, 8, 7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i x = _mm512_permutexvar_epi8(both_bytes, _mm512_castsi256_si512(codes));
    const __m512i lo = _mm512_permutex2var_epi8(_mm512_load_si512(ra_e4m3_bf16_lo), x,
                                                _mm512_load_si512(ra_e4m3_bf16_lo + 64));
    const __m512i hi = _mm512_permutex2var_epi8(_mm512_load_si512(ra_e4m3_bf16_hi), x,
                                                _mm512_load_si512(ra_e4m3_bf16_hi + 64));
    const __m512i mag = _mm512_mask_blend_epi8((__mmask64)0xaaaaaaaaaaaaaaaaull, lo, hi);
    /* mag | (x & 0x8000): the sign bit from the code copy in the high byte */
    return _mm512_ternarylogic_epi32(mag, x, _mm512_set1_epi16((short)0x8000), 0xf8);
}

/* 32 elements of a bf16 or e4m3 row from element i as bf16 bits (lanes outside mk are 0):
 * the rows the pair steps split into even and odd elements. */
RA_INLINE __m512i load_bf16x32(const void *base, int64_t i, __mmask32 mk, const int dt)
{
    if (dt == RA_DTYPE_FP8_E4M3)
        return e4m3_to_bf16x32(_mm256_maskz_loadu_epi8(mk, (const uint8_t *)base + i));
    return _mm512_maskz_loadu_epi16(mk, (const uint16_t *)base + i);
}

/* K/V dtypes that the AVX-512 steps read as bf16 pairs (load_bf16x32). */
#define RA_PAIRED(dt) ((dt) == RA_DTYPE_BF16 || (dt) == RA_DTYPE_FP8_E4M3)

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

/* The inverse of bf16_split on sums over features: 16 even and 16 odd ones (lane j: features
 * 2j and 2j + 1) back to features 0..15 and 16..31. */
RA_INLINE void pairs_to_features(__m512 *even_lo, __m512 *odd_hi)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    const __m512 e = *even_lo, od = *odd_hi;
    *even_lo = _mm512_permutex2var_ps(e, lo, od);
    *odd_hi = _mm512_permutex2var_ps(e, hi, od);
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

/* exp(x) by the contract of exp_poly.h, vscalefps applying 2^n (subnormal results and 0
 * included). max/min keep a NaN x: they return their second operand when either is NaN. */
RA_INLINE __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_set1_ps(RA_EXP_ARG_MAX), _mm512_max_ps(_mm512_set1_ps(RA_EXP_ARG_MIN), x));
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

/* The online-softmax rule of ra__softmax_step_with (softmax_step.c) on 16 lanes, each lane a
 * head: begin from the running max and the tile's max, exponentiate the logits minus m_sub,
 * then end with their sum. A NaN logit makes its head NaN (nanmax); a head whose logits are
 * all -inf so far subtracts 0 (its p = exp(-inf) = 0) and keeps m, l and o (alpha = 1). */
typedef struct softmax16 {
    __m512 m_old, m_new, m_sub;
    __mmask16 empty;
} softmax16;

RA_INLINE softmax16 softmax16_begin(__m512 m_old, __m512 tile_max)
{
    softmax16 st = {m_old, nanmax(m_old, tile_max), _mm512_setzero_ps(), 0};
    st.empty = _mm512_cmp_ps_mask(st.m_new, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    st.m_sub = _mm512_mask_mov_ps(st.m_new, st.empty, _mm512_setzero_ps());
    return st;
}

/* alpha = exp(m_old - m_new), the factor of o; *m and *l get the new running max and sum. */
RA_INLINE __m512 softmax16_end(const softmax16 *st, __m512 l_old, __m512 sum, __m512 *m,
                               __m512 *l)
{
    const __m512 alpha = _mm512_mask_mov_ps(exp16(_mm512_sub_ps(st->m_old, st->m_new)),
                                            st->empty, _mm512_set1_ps(1.0f));
    *m = _mm512_mask_mov_ps(st->m_new, st->empty, st->m_old);
    *l = _mm512_fmadd_ps(l_old, alpha, sum);
    return alpha;
}

#endif
