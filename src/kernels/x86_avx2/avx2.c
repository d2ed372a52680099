/* AVX2 + FMA + F16C kernels, for x86-64 CPUs without AVX-512 (compiled with -mavx2 -mfma
 * -mf16c; chosen at run time). The same scheme as avx512.c with 8-lane vectors:
 * QK: GT heads x TT positions (GT*TT = 8 ymm accumulators) and one hadd-tree reduction;
 * PV: GT heads x 16 features x U positions in flight (8 accumulators).
 * Both spread their head tile's share of the next tile's prefetches over their iterations. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/exp_poly.h"
#include "kernels/kernel.h"
#include "config.h"

#define RA_INLINE static inline __attribute__((always_inline))

/* 8 elements at element index i as f32; n < 8 reads only n of them (the rest are 0). */
RA_INLINE __m256 load8(const void *base, int64_t i, int64_t n, const int dt)
{
    if (n <= 0) /* past the row: nothing to read (and no pointer past it is formed) */
        return _mm256_setzero_ps();
    const size_t es = dt == RA_DTYPE_F32 ? 4 : 2;
    const char *p = (const char *)base + (size_t)i * es;
    char tmp[32] __attribute__((aligned(32)));
    if (n < 8) { /* AVX2 has no masked 16-bit load: stage the tail */
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, p, (size_t)(n > 0 ? n : 0) * es);
        p = tmp;
    }
    if (dt == RA_DTYPE_F32)
        return _mm256_loadu_ps((const float *)p);
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (dt == RA_DTYPE_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

_Static_assert(RA_AVX2_QK_ACC == 8, "sum8 reduces exactly 8 QK accumulators");

/* r[i] = sum of the lanes of a[i], for 8 vectors. */
RA_INLINE __m256 sum8(const __m256 a[8])
{
    __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
    __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
    __m256 lo = _mm256_hadd_ps(h01, h23), hi = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
}

RA_INLINE void qk_rows(const ra__tile *t, int64_t g0, const int GT, const int dt)
{
    const int TT = RA_AVX2_QK_ACC / GT;
    const size_t es = dt == RA_DTYPE_F32 ? 4 : 2;
    const int64_t T = t->T, D = t->D, s_ld = t->s_ld, k_st = t->k_st;
    const float *q = t->q + g0 * D;
    const char *k = t->k;
    float *s = t->s + g0 * s_ld;
    const int64_t d_iters = (D + 7) / 8;
    const ra__prefetcher pf = ra__prefetcher_for_heads(&t->pf_k, g0, GT, t->G,
                                                       (T + TT - 1) / TT * d_iters);
    for (int64_t t0 = 0; t0 < T; t0 += TT) {
        const int64_t tn = T - t0 < TT ? T - t0 : TT;
        const char *krow[RA_AVX2_QK_ACC];
        for (int i = 0; i < TT; i++) /* past the tail, repeat the last row (never stored) */
            krow[i] = k + (size_t)((t0 + (i < tn ? i : tn - 1)) * k_st) * es;
        __m256 acc[RA_AVX2_QK_ACC];
        for (int i = 0; i < RA_AVX2_QK_ACC; i++)
            acc[i] = _mm256_setzero_ps();
        for (int64_t d = 0; d < D; d += 8) {
            ra__prefetch_step(&pf, t0 / TT * d_iters + d / 8);
            const int64_t n = D - d;
            __m256 qv[4];
            for (int g = 0; g < GT; g++)
                qv[g] = load8(q + g * D, d, n, RA_DTYPE_F32);
            for (int i = 0; i < TT; i++) {
                __m256 kv = load8(krow[i], d, n, dt);
                for (int g = 0; g < GT; g++)
                    acc[g * TT + i] = _mm256_fmadd_ps(qv[g], kv, acc[g * TT + i]);
            }
        }
        float r[8] __attribute__((aligned(32)));
        _mm256_store_ps(r, _mm256_mul_ps(sum8(acc), _mm256_set1_ps(t->scale)));
        for (int g = 0; g < GT; g++)
            for (int64_t i = 0; i < tn; i++)
                s[g * s_ld + t0 + i] = r[g * TT + i];
    }
}

RA_INLINE void pv_rows(const ra__tile *t, int64_t g0, const int GT, const int dt)
{
    const int U = RA_AVX2_PV_POS / GT;
    const size_t es = dt == RA_DTYPE_F32 ? 4 : 2;
    const int64_t T = t->T, D = t->D, s_ld = t->s_ld, v_st = t->v_st;
    const float *s = t->s + g0 * s_ld;
    const char *v = t->v;
    float *o = t->o + g0 * D;
    const int64_t pos_iters = (T + U - 1) / U;
    const ra__prefetcher pf = ra__prefetcher_for_heads(&t->pf_v, g0, GT, t->G,
                                                       pos_iters * ((D + 15) / 16));
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
        __m256 acc[RA_AVX2_PV_POS][4][2]; /* [u][g][c] */
        for (int u = 0; u < U; u++)
            for (int g = 0; g < GT; g++)
                acc[u][g][0] = acc[u][g][1] = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i < T; i += U) {
            ra__prefetch_step(&pf, d0 / 16 * pos_iters + i / U);
            for (int u = 0; u < U && i + u < T; u++) {
                const char *vrow = v + (size_t)((i + u) * v_st) * es;
                __m256 v0 = load8(vrow, d0, D - d0, dt), v1 = load8(vrow, d0 + 8, D - d0 - 8, dt);
                for (int g = 0; g < GT; g++) {
                    __m256 p = _mm256_broadcast_ss(s + g * s_ld + i + u);
                    acc[u][g][0] = _mm256_fmadd_ps(p, v0, acc[u][g][0]);
                    acc[u][g][1] = _mm256_fmadd_ps(p, v1, acc[u][g][1]);
                }
            }
        }
        for (int g = 0; g < GT; g++)
            for (int c = 0; c < 2; c++) {
                int64_t n = D - d0 - 8 * c;
                if (n <= 0)
                    continue;
                __m256 sum = acc[0][g][c];
                for (int u = 1; u < U; u++)
                    sum = _mm256_add_ps(sum, acc[u][g][c]);
                float r[8] __attribute__((aligned(32)));
                _mm256_store_ps(r, sum);
                float *og = o + g * D + d0 + 8 * c;
                for (int64_t e = 0; e < (n < 8 ? n : 8); e++)
                    og[e] += r[e];
            }
    }
}

/* exp(x) by the contract of exp_poly.h; 2^n is built in the exponent bits as 2^(n/2) times
 * 2^(n - n/2), both normal, so that a subnormal result rounds once. max/min keep a NaN x (they
 * return their second operand when either is NaN). */
RA_INLINE __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_set1_ps(RA_EXP_ARG_MAX), _mm256_max_ps(_mm256_set1_ps(RA_EXP_ARG_MIN), x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(RA_EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(RA_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(RA_EXP_LN2_LO), r);
    __m256 p = RA_EXP_TAYLOR7(_mm256_fmadd_ps, _mm256_set1_ps, r);
    const __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 e2 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, n1), bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, e1), e2);
}

/* s[i] = exp(s[i] - m) for the softmax step, 8 lanes at a time. */
static float exp_row(float *s, int64_t n, float m)
{
    __m256 vm = _mm256_set1_ps(m), vsum = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), vm));
        _mm256_storeu_ps(s + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    float r[8] __attribute__((aligned(32)));
    _mm256_store_ps(r, vsum);
    float sum = ((r[0] + r[4]) + (r[1] + r[5])) + ((r[2] + r[6]) + (r[3] + r[7]));
    for (; i < n; i++) {
        s[i] = expf(s[i] - m);
        sum += s[i];
    }
    return sum;
}

static void softmax_step(const ra__tile *t)
{
    ra__softmax_step_with(t, exp_row);
}

static void qk_f32(const ra__tile *t) { RA__FOR_HEAD_TILES(qk_rows, t, RA_DTYPE_F32); }
static void qk_f16(const ra__tile *t) { RA__FOR_HEAD_TILES(qk_rows, t, RA_DTYPE_F16); }
static void qk_bf16(const ra__tile *t) { RA__FOR_HEAD_TILES(qk_rows, t, RA_DTYPE_BF16); }
static void pv_f32(const ra__tile *t) { RA__FOR_HEAD_TILES(pv_rows, t, RA_DTYPE_F32); }
static void pv_f16(const ra__tile *t) { RA__FOR_HEAD_TILES(pv_rows, t, RA_DTYPE_F16); }
static void pv_bf16(const ra__tile *t) { RA__FOR_HEAD_TILES(pv_rows, t, RA_DTYPE_BF16); }

const ra__kernel_table ra__kernels_avx2 = {
    .id = RA_KERNEL_AVX2,
    .tile_max = RA_AVX2_TILE,
    .default_split = RA_AVX2_DEFAULT_SPLIT,
    .all_heads_per_item = true,
    .needs_unit_d = true,
    .needs_conv = false,
    .self_prefetch = true,
    .qk = {qk_f32, qk_f16, qk_bf16},
    .softmax = softmax_step,
    .pv = {pv_f32, pv_f16, pv_bf16},
};
