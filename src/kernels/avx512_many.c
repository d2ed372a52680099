/* AVX-512 step for many query rows per KV head: the blocks of a multi-token call (multi.c),
 * where each KV head carries Tq*G rows and the work is compute-bound. Both products run as
 * register-blocked outer products, with no horizontal sums:
 *   QK: logits stored transposed, sT[p][g] (row g of the group is lane g % 16 of vector g / 16):
 *       8 positions x 32 rows in 16 accumulators; per feature d two vectors of q, transposed
 *       once per call (ra__tile.qt), and 8 broadcasts of k[p][d].
 *   Softmax: a row is a lane, so the max, exp and sum over the tile are plain vector ops.
 *   PV: o[g][d..d+63] += p[g][p] * v[p][d..d+63], 4 rows x 64 features in 16 accumulators.
 * K and V (f32, f16 or bf16; rows of a paged tile through row pointers) are first converted to
 * f32 tiles, padded with zero rows to a whole block of positions; q, o, m, l and every sum are
 * f32. */
#include <immintrin.h>
#include <math.h>

#include "avx512_inline.h"
#include "kernel.h"

enum { PB = 8 }; /* positions per QK register block */

/* rows [0, T) of a K or V tile as f32 [Tp][D], rows [T, Tp) zero; the rows are st elements
 * apart from src, or (a paged tile) at rows[p] + row_off bytes */
RA_INLINE void to_f32_tile(float *dst, const void *src, int64_t st, const char *const *rows,
                           size_t row_off, int64_t T, int64_t Tp, int64_t D, const int dt)
{
    const size_t es = RA_ES(dt);
    for (int64_t p = 0; p < Tp; p++) {
        const char *row = p >= T ? NULL
                          : rows ? rows[p] + row_off
                                 : (const char *)src + (size_t)(p * st) * es;
        for (int64_t d = 0; d < D; d += 16) {
            const __mmask16 mk = lanes(D - d);
            const __m512 x = p < T ? load16(row, d, mk, dt) : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(dst + p * D + d, mk, x);
        }
    }
}

/* sT[p][g] = scale * dot(q[g], k[p]) for the positions of one block and NV (1 or 2) vectors
 * of rows from g0 */
RA_INLINE void qk_block(const ra__tile *t, const float *kc, float *sT, int64_t p0, int64_t g0,
                        const int NV)
{
    const int64_t D = t->D, ld = t->qt_ld;
    __m512 acc[PB][2];
    for (int i = 0; i < PB; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    const float *q = t->qt + g0, *k = kc + p0 * D;
    for (int64_t d = 0; d < D; d++, q += ld, k++) {
        const __m512 qa = _mm512_loadu_ps(q), qb = NV > 1 ? _mm512_loadu_ps(q + 16) : qa;
        for (int i = 0; i < PB; i++) {
            const __m512 kb = _mm512_set1_ps(k[i * D]);
            acc[i][0] = _mm512_fmadd_ps(kb, qa, acc[i][0]);
            if (NV > 1)
                acc[i][1] = _mm512_fmadd_ps(kb, qb, acc[i][1]);
        }
    }
    const __m512 sc = _mm512_set1_ps(t->scale);
    for (int i = 0; i < PB; i++)
        for (int v = 0; v < NV; v++)
            _mm512_storeu_ps(sT + (p0 + i) * ld + g0 + 16 * v, _mm512_mul_ps(acc[i][v], sc));
}

/* The online-softmax update of the rows of vector g0..g0+15: p = exp(s - m_new) in place
 * (0 on padded positions), m, l, and each row's rescale factor into alpha */
RA_INLINE void softmax_vector(const ra__tile *t, float *sT, int64_t Tp, int64_t g0, float *alpha)
{
    const int64_t ld = t->qt_ld;
    const __mmask16 rows = lanes(t->G - g0);
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t p = 0; p < t->T; p++) {
        __m512 x = _mm512_loadu_ps(sT + p * ld + g0);
        if (t->softcap != 0.0f) {
            x = modify16(x, t->softcap, x, x, 0);
            _mm512_storeu_ps(sT + p * ld + g0, x);
        }
        mx = nanmax(mx, x);
    }
    const __m512 m_old = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), rows, t->m + g0);
    const __m512 m_new = nanmax(m_old, mx);
    /* rows whose logits are all -inf so far carry no weight: subtract 0 there, so that
     * exp(-inf - 0) = 0 and no -inf - -inf makes a NaN */
    const __mmask16 empty = _mm512_cmp_ps_mask(m_new, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    const __m512 m_sub = _mm512_mask_mov_ps(m_new, empty, _mm512_setzero_ps());
    __m512 sum = _mm512_setzero_ps();
    for (int64_t p = 0; p < Tp; p++) {
        float *s = sT + p * ld + g0;
        const __m512 e = p < t->T ? exp16(_mm512_sub_ps(_mm512_loadu_ps(s), m_sub))
                                  : _mm512_setzero_ps();
        sum = _mm512_add_ps(sum, e);
        _mm512_storeu_ps(s, e);
    }
    const __m512 a = _mm512_mask_mov_ps(exp16(_mm512_sub_ps(m_old, m_sub)), empty,
                                        _mm512_set1_ps(1.0f));
    const __m512 l_old = _mm512_maskz_loadu_ps(rows, t->l + g0);
    _mm512_mask_storeu_ps(t->l + g0, rows, _mm512_fmadd_ps(l_old, a, sum));
    _mm512_mask_storeu_ps(t->m + g0, rows, m_new);
    _mm512_storeu_ps(alpha + g0, a);
}

/* o[g] = o[g] * alpha[g] + sum_p p[g][p] v[p] for the R rows from g0 */
RA_INLINE void pv_rows(const ra__tile *t, const float *vc, const float *sT, int64_t Tp,
                       const float *alpha, int64_t g0, const int R)
{
    const int64_t D = t->D, ld = t->qt_ld;
    for (int64_t d0 = 0; d0 < D; d0 += 64) {
        __mmask16 mk[4];
        __m512 acc[4][4];
        for (int c = 0; c < 4; c++)
            mk[c] = lanes(D - d0 - 16 * c);
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(alpha[g0 + r]);
            for (int c = 0; c < 4; c++)
                acc[r][c] = _mm512_mul_ps(
                    a, _mm512_maskz_loadu_ps(mk[c], t->o + (g0 + r) * D + d0 + 16 * c));
        }
        for (int64_t p = 0; p < Tp; p++) {
            __m512 v[4];
            for (int c = 0; c < 4; c++)
                v[c] = _mm512_maskz_loadu_ps(mk[c], vc + p * D + d0 + 16 * c);
            for (int r = 0; r < R; r++) {
                const __m512 pb = _mm512_set1_ps(sT[p * ld + g0 + r]);
                for (int c = 0; c < 4; c++)
                    acc[r][c] = _mm512_fmadd_ps(pb, v[c], acc[r][c]);
            }
        }
        for (int r = 0; r < R; r++)
            for (int c = 0; c < 4; c++)
                _mm512_mask_storeu_ps(t->o + (g0 + r) * D + d0 + 16 * c, mk[c], acc[r][c]);
    }
}

RA_INLINE void many_step(const ra__tile *t, const int kdt, const int vdt)
{
    const int64_t D = t->D, G = t->G, ld = t->qt_ld, Tp = (t->T + PB - 1) / PB * PB;
    /* scratch (ra__many_scratch_floats): K and V tiles, logits, rescale factors */
    float *kc = t->conv, *vc = kc + t->tile_cap * D, *sT = vc + t->tile_cap * D,
          *alpha = sT + t->tile_cap * ld;
    to_f32_tile(kc, t->k, t->k_st, t->k_rows, t->k_row_off, t->T, Tp, D, kdt);
    to_f32_tile(vc, t->v, t->v_st, t->v_rows, t->v_row_off, t->T, Tp, D, vdt);
    for (int64_t p0 = 0; p0 < Tp; p0 += PB) {
        int64_t g0 = 0;
        for (; g0 + 32 <= ld; g0 += 32)
            qk_block(t, kc, sT, p0, g0, 2);
        if (g0 < ld)
            qk_block(t, kc, sT, p0, g0, 1);
    }
    for (int64_t g0 = 0; g0 < G; g0 += 16)
        softmax_vector(t, sT, Tp, g0, alpha);
    int64_t g0 = 0;
    for (; g0 + 4 <= G; g0 += 4)
        pv_rows(t, vc, sT, Tp, alpha, g0, 4);
    for (; g0 + 2 <= G; g0 += 2)
        pv_rows(t, vc, sT, Tp, alpha, g0, 2);
    for (; g0 < G; g0++)
        pv_rows(t, vc, sT, Tp, alpha, g0, 1);
}

#define RA__MANY(kd, vd)                                                                       \
    void ra__avx512_many_##kd##_##vd(const ra__tile *t)                                        \
    {                                                                                          \
        many_step(t, RA_DTYPE_##kd, RA_DTYPE_##vd);                                            \
    }
RA__MANY(F32, F32)
RA__MANY(F32, F16)
RA__MANY(F32, BF16)
RA__MANY(F16, F32)
RA__MANY(F16, F16)
RA__MANY(F16, BF16)
RA__MANY(BF16, F32)
RA__MANY(BF16, F16)
RA__MANY(BF16, BF16)
#undef RA__MANY
