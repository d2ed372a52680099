/* AVX-512 kernel for whole work items in row order (see ra__rows in kernel.h): for each
 * position, the logits of every KV head's G query heads, then the p.V update of every head,
 * so K and V are read front to back like two plain arrays. The p.V of a tile runs
 * interleaved with the QK of the next one, position by position, so the two streams advance
 * together (reading a tile of K, then a tile of V, measured 25% slower cold).
 *
 * Layout of a tile's logits: row i (position i) holds every query head of the item, head
 * j*G + g in lane j*G + g, padded to whole vectors. The online softmax then runs down the
 * columns: one vector holds 16 heads, so max, exp and sum need no shuffles.
 *
 * The output of every head lives in memory (L1) and each position's update loads and stores
 * it; holding it in registers would need a walk of one head at a time again. */
#include <math.h>

#include "avx512_inline.h"
#include "kernel.h"

/* Logits of every head at one position into row[0 .. hp): register tiles of 16/G KV heads x
 * G query heads, each head's K row read front to back, then one transpose-reduction. */
RA_INLINE void qk_position(const ra__rows *r, const char *kpos, float *row, const int G,
                           const int kdt)
{
    const int HPV = 16 / G; /* KV heads per vector of logits */
    const size_t es = kdt == RA_DTYPE_F32 ? 4 : 2;
    const int64_t D = r->D, Dw = D & ~(int64_t)15;
    const __mmask16 tail = lanes(D - Dw);
    const __m512 scale = _mm512_set1_ps(r->scale);
    for (int64_t jb = 0; jb < r->Hkv; jb += HPV) {
        __m512 acc[16];
        for (int a = 0; a < 16; a++)
            acc[a] = _mm512_setzero_ps();
        const int nj = r->Hkv - jb < HPV ? (int)(r->Hkv - jb) : HPV;
#pragma GCC unroll 16
        for (int jt = 0; jt < HPV; jt++) {
            if (jt >= nj)
                break;
            const char *krow = kpos + (size_t)((jb + jt) * r->k_sh) * es;
            const float *q = r->q + (jb + jt) * G * D;
            __m512 a[4];
            for (int g = 0; g < G; g++)
                a[g] = _mm512_setzero_ps();
            for (int64_t d = 0; d < Dw; d += 16) {
                const __m512 kv = load16(krow, d, 0xffff, kdt);
                for (int g = 0; g < G; g++)
                    a[g] = _mm512_fmadd_ps(_mm512_loadu_ps(q + g * D + d), kv, a[g]);
            }
            if (tail) {
                const __m512 kv = load16(krow, Dw, tail, kdt);
                for (int g = 0; g < G; g++)
                    a[g] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, q + g * D + Dw), kv, a[g]);
            }
            for (int g = 0; g < G; g++)
                acc[jt * G + g] = a[g];
        }
        _mm512_store_ps(row + jb * G, _mm512_mul_ps(sum16(acc), scale));
    }
}

/* o[h] += p[h] * v_row(h) for every head h of the item at one position. */
RA_INLINE void pv_position(const ra__rows *r, const char *vpos, const float *row, const int G,
                           const int vdt)
{
    const size_t es = vdt == RA_DTYPE_F32 ? 4 : 2;
    const int64_t D = r->D, Dw = D & ~(int64_t)15;
    const __mmask16 tail = lanes(D - Dw);
    for (int64_t j = 0; j < r->Hkv; j++) {
        const char *vrow = vpos + (size_t)(j * r->v_sh) * es;
        float *o = r->o + j * G * D;
        __m512 p[4];
        for (int g = 0; g < G; g++)
            p[g] = _mm512_set1_ps(row[j * G + g]);
        for (int64_t d = 0; d < Dw; d += 16) {
            const __m512 vv = load16(vrow, d, 0xffff, vdt);
            for (int g = 0; g < G; g++)
                _mm512_storeu_ps(o + g * D + d,
                                 _mm512_fmadd_ps(p[g], vv, _mm512_loadu_ps(o + g * D + d)));
        }
        if (tail) {
            const __m512 vv = load16(vrow, Dw, tail, vdt);
            for (int g = 0; g < G; g++) {
                float *og = o + g * D + Dw;
                _mm512_mask_storeu_ps(og, tail,
                                      _mm512_fmadd_ps(p[g], vv, _mm512_maskz_loadu_ps(tail, og)));
            }
        }
    }
}

/* The online-softmax update of every head on a tile of n logit rows (ld floats apart): the
 * rows become p = exp(s - m_new), m and l are updated and alpha = exp(m_old - m_new) goes to
 * alpha[h]. The rules are those of the scalar step (softmax_step.c): a NaN logit makes its
 * head NaN, and a head whose logits are all -inf so far gets p = 0 and alpha = 1. */
static void softmax_rows(const ra__rows *r, float *s, int64_t n, int64_t ld, float *alpha)
{
    const int64_t hq = r->Hkv * r->G;
    for (int64_t h = 0; h < hq; h += 16) {
        const __mmask16 mk = lanes(hq - h);
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int64_t i = 0; i < n; i++)
            mx = nanmax(mx, _mm512_load_ps(s + i * ld + h));
        const __m512 m_old = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mk, r->m + h);
        const __m512 m_new = nanmax(m_old, mx);
        const __mmask16 empty = _mm512_cmp_ps_mask(m_new, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
        /* empty heads subtract 0: their logits are -inf, so p = exp(-inf) = 0 */
        const __m512 m_sub = _mm512_mask_mov_ps(m_new, empty, _mm512_setzero_ps());
        __m512 sum = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i++) {
            const __m512 p = exp16(_mm512_sub_ps(_mm512_load_ps(s + i * ld + h), m_sub));
            _mm512_store_ps(s + i * ld + h, p);
            sum = _mm512_add_ps(sum, p);
        }
        const __m512 a = _mm512_mask_mov_ps(exp16(_mm512_sub_ps(m_old, m_new)), empty,
                                            _mm512_set1_ps(1.0f));
        const __m512 l_new = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, r->l + h), a, sum);
        _mm512_mask_storeu_ps(r->m + h, mk, _mm512_mask_mov_ps(m_new, empty, m_old));
        _mm512_mask_storeu_ps(r->l + h, mk, l_new);
        _mm512_store_ps(alpha + h, a);
    }
}

/* o[h] *= alpha[h] for every head: the rescale of the online softmax, before a tile's p.V. */
static void rescale_o(const ra__rows *r, const float *alpha)
{
    const int64_t hq = r->Hkv * r->G, D = r->D, Dw = D & ~(int64_t)15;
    const __mmask16 tail = lanes(D - Dw);
    for (int64_t h = 0; h < hq; h++) {
        const __m512 a = _mm512_set1_ps(alpha[h]);
        float *o = r->o + h * D;
        for (int64_t d = 0; d < Dw; d += 16)
            _mm512_storeu_ps(o + d, _mm512_mul_ps(_mm512_loadu_ps(o + d), a));
        if (tail)
            _mm512_mask_storeu_ps(o + Dw, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, o + Dw), a));
    }
}

RA_INLINE void rows_item(const ra__rows *r, const int G, const int kdt, const int vdt)
{
    const int64_t hp = (r->Hkv * G + 15) & ~(int64_t)15;
    const size_t kes = kdt == RA_DTYPE_F32 ? 4 : 2, ves = vdt == RA_DTYPE_F32 ? 4 : 2;
    float *const logits[2] = {r->s, r->s + RA__ROWS_TILE_MAX * hp};
    float *const alpha = r->s + 2 * RA__ROWS_TILE_MAX * hp;
    const char *k = r->k, *v = r->v;
    int64_t prev_t0 = 0, prev_n = 0; /* the tile whose p.V is pending */
    int cur = 0;
    for (int64_t t0 = 0; t0 < r->T; t0 += r->tile, cur ^= 1) {
        const int64_t n = r->T - t0 < r->tile ? r->T - t0 : r->tile;
        float *s = logits[cur];
        const float *p = logits[cur ^ 1];
        if (prev_n)
            rescale_o(r, alpha);
        const int64_t steps = n > prev_n ? n : prev_n;
        for (int64_t i = 0; i < steps; i++) {
            if (i < n)
                qk_position(r, k + (size_t)((t0 + i) * r->k_st) * kes, s + i * hp, G, kdt);
            if (i < prev_n)
                pv_position(r, v + (size_t)((prev_t0 + i) * r->v_st) * ves, p + i * hp, G, vdt);
        }
        softmax_rows(r, s, n, hp, alpha);
        prev_t0 = t0;
        prev_n = n;
    }
    if (prev_n) {
        rescale_o(r, alpha);
        const float *p = logits[cur ^ 1];
        for (int64_t i = 0; i < prev_n; i++)
            pv_position(r, v + (size_t)((prev_t0 + i) * r->v_st) * ves, p + i * hp, G, vdt);
    }
}

/* Where row order measured faster. The output and q of every head are read (and o written)
 * at each position; with G > 1 that traffic outgrows L1 and the walk loses to the
 * head-by-head one (GQA 32/8 heads, D=128: 200 against 94 cycles per position and KV head in
 * cache, 2.2x slower cold). G = 1 (MHA) gains: 1.5x on workload c. */
bool ra__avx512_rows_for_g(int64_t G)
{
    return G == 1;
}

#define RA__ROWS(kd, vd)                                                                      \
    void ra__avx512_rows_##kd##_##vd(const ra__rows *r)                                           \
    {                                                                                         \
        switch (r->G) {                                                                       \
        case 1: rows_item(r, 1, RA_DTYPE_##kd, RA_DTYPE_##vd); break;                          \
        case 2: rows_item(r, 2, RA_DTYPE_##kd, RA_DTYPE_##vd); break;                          \
        default: rows_item(r, 4, RA_DTYPE_##kd, RA_DTYPE_##vd); break;                         \
        }                                                                                     \
    }
RA__ROWS(F32, F32)
RA__ROWS(F32, F16)
RA__ROWS(F32, BF16)
RA__ROWS(F16, F32)
RA__ROWS(F16, F16)
RA__ROWS(F16, BF16)
RA__ROWS(BF16, F32)
RA__ROWS(BF16, F16)
RA__ROWS(BF16, BF16)
#undef RA__ROWS

