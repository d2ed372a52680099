/* AVX-512 kernels (compiled with -mavx512f/bw/vl/dq -mfma; chosen at run time).
 *
 * QK: register tiles of GT query heads x TT positions (GT*TT = 16 zmm accumulators) walk D
 *     16 lanes at a time; one transpose-reduction turns the 16 accumulators into 16 logits.
 * PV: tiles of GT heads x 64 features x U positions in flight (16 accumulators) walk the
 *     tile's positions; each V vector loaded feeds GT heads.
 * Softmax: a vector exp (range reduction + degree-7 polynomial + vscalefps).
 * K/V may be f32, f16 (vcvtph2ps) or bf16 (a 16-bit shift); q, o, m, l stay f32, and so does
 * every sum. */
#include <immintrin.h>
#include <math.h>

#include "../merge_internal.h"
#include "exp_poly.h"
#include "kernel.h"

#define RA_INLINE static inline __attribute__((always_inline))

/* 16 elements at element index i of a K/V row, as f32; lanes outside mk read nothing. */
RA_INLINE __m512 load16(const void *base, int64_t i, __mmask16 mk, const int dt)
{
    if (dt == RA_DTYPE_F32)
        return _mm512_maskz_loadu_ps(mk, (const float *)base + i);
    __m256i h = _mm256_maskz_loadu_epi16(mk, (const uint16_t *)base + i);
    if (dt == RA_DTYPE_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

RA_INLINE __mmask16 lanes(int64_t n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
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

/* Logits of heads g0..g0+GT-1 for every position of the tile. Fields are copied to locals:
 * the intrinsics' may_alias stores would otherwise force reloads of *t. */
RA_INLINE void qk_rows(const ra__tile *t, int64_t g0, const int GT, const int dt)
{
    const int TT = 16 / GT;
    const size_t es = dt == RA_DTYPE_F32 ? 4 : 2;
    const int64_t T = t->T, D = t->D, s_ld = t->s_ld, k_st = t->k_st;
    const float *q = t->q + g0 * D;
    const char *k = t->k;
    float *s = t->s + g0 * s_ld;
    const __m512 scale = _mm512_set1_ps(t->scale);
    const int64_t D16 = D & ~(int64_t)15; /* whole vectors; the tail is masked */
    /* the first head tile spreads the next tile's K prefetches over its positions */
    const ra__prefetcher pf = ra__prefetcher_init(g0 == 0 ? t->pf_k : NULL, t->pf_k_bytes,
                                                  (T + TT - 1) / TT);
    for (int64_t t0 = 0, step = 0; t0 < T; t0 += TT, step++) {
        const int64_t tn = T - t0 < TT ? T - t0 : TT;
        ra__prefetch_step(&pf, step);
        const char *krow[16];
        for (int i = 0; i < TT; i++) /* past the tail, repeat the last row (never stored) */
            krow[i] = k + (size_t)((t0 + (i < tn ? i : tn - 1)) * k_st) * es;
        __m512 acc[16];
        for (int i = 0; i < 16; i++)
            acc[i] = _mm512_setzero_ps();
        for (int64_t d = 0; d < D16; d += 16) {
            __m512 qv[4];
            for (int g = 0; g < GT; g++)
                qv[g] = _mm512_loadu_ps(q + g * D + d);
            for (int i = 0; i < TT; i++) {
                __m512 kv = load16(krow[i], d, 0xffff, dt);
                for (int g = 0; g < GT; g++)
                    acc[g * TT + i] = _mm512_fmadd_ps(qv[g], kv, acc[g * TT + i]);
            }
        }
        if (D16 < D) {
            __mmask16 mk = lanes(D - D16);
            __m512 qv[4];
            for (int g = 0; g < GT; g++)
                qv[g] = _mm512_maskz_loadu_ps(mk, q + g * D + D16);
            for (int i = 0; i < TT; i++) {
                __m512 kv = load16(krow[i], D16, mk, dt);
                for (int g = 0; g < GT; g++)
                    acc[g * TT + i] = _mm512_fmadd_ps(qv[g], kv, acc[g * TT + i]);
            }
        }
        /* lane g*TT + i holds head g, position t0 + i: one masked store per head row */
        const __m512 r = _mm512_mul_ps(sum16(acc), scale);
        const __mmask16 keep = lanes(tn);
        if (GT == 1) {
            _mm512_mask_storeu_ps(s + t0, keep, r);
        } else if (GT == 2) {
            _mm256_mask_storeu_ps(s + t0, (__mmask8)keep, _mm512_castps512_ps256(r));
            _mm256_mask_storeu_ps(s + s_ld + t0, (__mmask8)keep, _mm512_extractf32x8_ps(r, 1));
        } else {
            _mm_mask_storeu_ps(s + t0, (__mmask8)keep, _mm512_castps512_ps128(r));
            _mm_mask_storeu_ps(s + s_ld + t0, (__mmask8)keep, _mm512_extractf32x4_ps(r, 1));
            _mm_mask_storeu_ps(s + 2 * s_ld + t0, (__mmask8)keep, _mm512_extractf32x4_ps(r, 2));
            _mm_mask_storeu_ps(s + 3 * s_ld + t0, (__mmask8)keep, _mm512_extractf32x4_ps(r, 3));
        }
    }
}

/* o[g0..g0+GT-1] += p . V over the tile, 64 features at a time, U positions in flight. */
RA_INLINE void pv_rows(const ra__tile *t, int64_t g0, const int GT, const int dt)
{
    const int U = 4 / GT;
    const size_t es = dt == RA_DTYPE_F32 ? 4 : 2;
    const int64_t T = t->T, D = t->D, s_ld = t->s_ld, v_st = t->v_st;
    const float *s = t->s + g0 * s_ld;
    const char *v = t->v;
    float *o = t->o + g0 * D;
    /* the first head tile's first feature block spreads the next tile's V prefetches */
    const ra__prefetcher pf = ra__prefetcher_init(g0 == 0 ? t->pf_v : NULL, t->pf_v_bytes,
                                                  (T + U - 1) / U);
    for (int64_t d0 = 0; d0 < D; d0 += 64) {
        __mmask16 mk[4];
        for (int c = 0; c < 4; c++)
            mk[c] = lanes(D - d0 - 16 * c);
        __m512 acc[4][4][4]; /* [u][g][c] */
        for (int u = 0; u < U; u++)
            for (int g = 0; g < GT; g++)
                for (int c = 0; c < 4; c++)
                    acc[u][g][c] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + U <= T; i += U) {
            if (d0 == 0)
                ra__prefetch_step(&pf, i / U);
            for (int u = 0; u < U; u++) {
                const char *vrow = v + (size_t)((i + u) * v_st) * es;
                __m512 vv[4];
                for (int c = 0; c < 4; c++)
                    vv[c] = load16(vrow, d0 + 16 * c, mk[c], dt);
                for (int g = 0; g < GT; g++) {
                    __m512 p = _mm512_set1_ps(s[g * s_ld + i + u]);
                    for (int c = 0; c < 4; c++)
                        acc[u][g][c] = _mm512_fmadd_ps(p, vv[c], acc[u][g][c]);
                }
            }
        }
        if (d0 == 0 && i < T)
            ra__prefetch_step(&pf, i / U);
        for (; i < T; i++) {
            const char *vrow = v + (size_t)(i * v_st) * es;
            __m512 vv[4];
            for (int c = 0; c < 4; c++)
                vv[c] = load16(vrow, d0 + 16 * c, mk[c], dt);
            for (int g = 0; g < GT; g++) {
                __m512 p = _mm512_set1_ps(s[g * s_ld + i]);
                for (int c = 0; c < 4; c++)
                    acc[0][g][c] = _mm512_fmadd_ps(p, vv[c], acc[0][g][c]);
            }
        }
        for (int g = 0; g < GT; g++)
            for (int c = 0; c < 4; c++) {
                if (!mk[c])
                    continue;
                __m512 sum = acc[0][g][c];
                for (int u = 1; u < U; u++)
                    sum = _mm512_add_ps(sum, acc[u][g][c]);
                float *og = o + g * D + d0 + 16 * c;
                _mm512_mask_storeu_ps(og, mk[c], _mm512_add_ps(_mm512_maskz_loadu_ps(mk[c], og), sum));
            }
    }
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

static void softmax_step(const ra__tile *t)
{
    for (int64_t g = 0; g < t->G; g++) {
        float *s = t->s + g * t->s_ld;
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        __mmask16 nan = 0;
        for (int64_t i = 0; i < t->T; i += 16) {
            __m512 x = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), lanes(t->T - i), s + i);
            vmax = _mm512_max_ps(vmax, x);
            nan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        }
        /* A NaN logit makes the head NaN (max_ps alone may drop it). */
        float mb = nan ? NAN : _mm512_reduce_max_ps(vmax);
        float m_old = t->m[g];
        float m_new = ra__nan_max(m_old, mb);
        if (m_new == -INFINITY) { /* every logit so far is -inf: no weight, and no NaN */
            for (int64_t i = 0; i < t->T; i++)
                s[i] = 0.0f;
            continue;
        }
        __m512 vm = _mm512_set1_ps(m_new), vsum = _mm512_setzero_ps();
        for (int64_t i = 0; i < t->T; i += 16) {
            __mmask16 mk = lanes(t->T - i);
            __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + i), vm));
            _mm512_mask_storeu_ps(s + i, mk, e);
            vsum = _mm512_add_ps(vsum, _mm512_maskz_mov_ps(mk, e));
        }
        float alpha = expf(m_old - m_new); /* 0 on the first tile (m_old = -inf) */
        t->l[g] = t->l[g] * alpha + _mm512_reduce_add_ps(vsum);
        t->m[g] = m_new;
        if (alpha != 1.0f) {
            float *o = t->o + g * t->D;
            __m512 va = _mm512_set1_ps(alpha);
            for (int64_t d = 0; d < t->D; d += 16) {
                __mmask16 mk = lanes(t->D - d);
                _mm512_mask_storeu_ps(o + d, mk, _mm512_mul_ps(va, _mm512_maskz_loadu_ps(mk, o + d)));
            }
        }
    }
}

static void qk_f32(const ra__tile *t) { RA__FOR_HEAD_TILES(qk_rows, t, RA_DTYPE_F32); }
static void qk_f16(const ra__tile *t) { RA__FOR_HEAD_TILES(qk_rows, t, RA_DTYPE_F16); }
static void qk_bf16(const ra__tile *t) { RA__FOR_HEAD_TILES(qk_rows, t, RA_DTYPE_BF16); }
static void pv_f32(const ra__tile *t) { RA__FOR_HEAD_TILES(pv_rows, t, RA_DTYPE_F32); }
static void pv_f16(const ra__tile *t) { RA__FOR_HEAD_TILES(pv_rows, t, RA_DTYPE_F16); }
static void pv_bf16(const ra__tile *t) { RA__FOR_HEAD_TILES(pv_rows, t, RA_DTYPE_BF16); }

const ra__kernel_table ra__kernels_avx512 = {
    .id = RA_KERNEL_AVX512,
    .tile_max = 16,
    .default_split = 2048,
    .all_heads_per_item = true,
    .needs_unit_d = true,
    .needs_conv = false,
    .self_prefetch = true,
    .qk = {qk_f32, qk_f16, qk_bf16},
    .softmax = softmax_step,
    .pv = {pv_f32, pv_f16, pv_bf16},
};
