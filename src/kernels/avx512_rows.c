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
 * it; holding it in registers would need a walk of one head at a time again. Those q and o
 * accesses hit L1, yet when they run front to back too they disturb the prefetchers that
 * stream K and V (Zen 4: MHA D=128 f32 ran at 66% of the read bandwidth, 89% with them
 * out of order). So the kernel keeps its own copies of q and o whose 16-float chunks are
 * stored in a scrambled order (see chunk_order), and reads K and V front to back. */
#include <math.h>

#include "avx512_inline.h"
#include "kernel.h"

/* Where a head row's 16-float chunk c lives in the kernel's copies of q and o: chunk c at
 * slot (c * mult) mod nc, with mult coprime to nc and neither 1 nor -1 (mod nc), so that
 * consecutive chunks are neither adjacent nor a constant stride apart. Rows of up to four
 * chunks, and six, have no such mult and keep their order (D=64 measured no loss). */
static void chunk_order(int32_t *slot, int64_t nc)
{
    static const int64_t candidates[] = {5, 3, 7, 11, 13, 17, 19, 23};
    int64_t mult = 1;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && mult == 1; i++) {
        int64_t m = candidates[i], a = nc, b = m % nc;
        while (b) { /* gcd(nc, m) */
            int64_t t = a % b;
            a = b;
            b = t;
        }
        if (a == 1 && m % nc != 1 && m % nc != nc - 1)
            mult = m;
    }
    for (int64_t c = 0; c < nc; c++)
        slot[c] = (int32_t)(c * mult % nc);
}

/* Logits of every head at one position into row[0 .. hp): register tiles of 16/G KV heads x
 * G query heads, each head's K row read front to back, then one transpose-reduction. qs is q
 * in chunk order, dp floats per head. */
RA_INLINE void qk_position(const ra__rows *r, const float *qs, int64_t dp, const int32_t *slot,
                           const char *kpos, float *row, const int G, const int kdt)
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
            const float *q = qs + (jb + jt) * G * dp;
            __m512 a[4];
            for (int g = 0; g < G; g++)
                a[g] = _mm512_setzero_ps();
            for (int64_t d = 0, c = 0; d < Dw; d += 16, c++) {
                const __m512 kv = load16(krow, d, 0xffff, kdt);
                const float *qc = q + 16 * slot[c];
                for (int g = 0; g < G; g++)
                    a[g] = _mm512_fmadd_ps(_mm512_load_ps(qc + g * dp), kv, a[g]);
            }
            if (tail) { /* q's padding lanes are 0 */
                const __m512 kv = load16(krow, Dw, tail, kdt);
                const float *qc = q + 16 * slot[Dw / 16];
                for (int g = 0; g < G; g++)
                    a[g] = _mm512_fmadd_ps(_mm512_load_ps(qc + g * dp), kv, a[g]);
            }
            for (int g = 0; g < G; g++)
                acc[jt * G + g] = a[g];
        }
        _mm512_store_ps(row + jb * G, _mm512_mul_ps(sum16(acc), scale));
    }
}

/* os[h] += p[h] * v_row(h) for every head h of the item at one position (os: o in chunk
 * order; padding lanes gain p * 0). */
RA_INLINE void pv_position(const ra__rows *r, float *os, int64_t dp, const int32_t *slot,
                           const char *vpos, const float *row, const int G, const int vdt)
{
    const size_t es = vdt == RA_DTYPE_F32 ? 4 : 2;
    const int64_t D = r->D;
    for (int64_t j = 0; j < r->Hkv; j++) {
        const char *vrow = vpos + (size_t)(j * r->v_sh) * es;
        float *o = os + j * G * dp;
        __m512 p[4];
        for (int g = 0; g < G; g++)
            p[g] = _mm512_set1_ps(row[j * G + g]);
        for (int64_t d = 0, c = 0; d < D; d += 16, c++) {
            const __m512 vv = load16(vrow, d, lanes(D - d), vdt);
            float *oc = o + 16 * slot[c];
            for (int g = 0; g < G; g++)
                _mm512_store_ps(oc + g * dp,
                                _mm512_fmadd_ps(p[g], vv, _mm512_load_ps(oc + g * dp)));
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

/* os[h] *= alpha[h] for every head: the rescale of the online softmax, before a tile's p.V. */
static void rescale_o(float *os, int64_t hq, int64_t dp, const float *alpha)
{
    for (int64_t h = 0; h < hq; h++) {
        const __m512 a = _mm512_set1_ps(alpha[h]);
        float *o = os + h * dp;
        for (int64_t d = 0; d < dp; d += 16)
            _mm512_store_ps(o + d, _mm512_mul_ps(_mm512_load_ps(o + d), a));
    }
}

/* [hq][D] rows into chunk order (padding lanes 0), and back. */
static void to_chunks(const float *rows, float *chunks, int64_t hq, int64_t D, int64_t dp,
                      const int32_t *slot)
{
    for (int64_t h = 0; h < hq; h++)
        for (int64_t d = 0, c = 0; d < dp; d += 16, c++)
            _mm512_store_ps(chunks + h * dp + 16 * slot[c],
                            _mm512_maskz_loadu_ps(lanes(D - d), rows + h * D + d));
}

static void from_chunks(const float *chunks, float *rows, int64_t hq, int64_t D, int64_t dp,
                        const int32_t *slot)
{
    for (int64_t h = 0; h < hq; h++)
        for (int64_t d = 0, c = 0; d < dp; d += 16, c++)
            _mm512_mask_storeu_ps(rows + h * D + d, lanes(D - d),
                                  _mm512_load_ps(chunks + h * dp + 16 * slot[c]));
}

RA_INLINE void rows_item(const ra__rows *r, const int G, const int kdt, const int vdt)
{
    const int64_t hq = r->Hkv * G, hp = (hq + 15) & ~(int64_t)15;
    const int64_t D = r->D, dp = (D + 15) & ~(int64_t)15;
    const size_t kes = kdt == RA_DTYPE_F32 ? 4 : 2, ves = vdt == RA_DTYPE_F32 ? 4 : 2;
    /* the scratch, as ra__rows_scratch_floats lays it out */
    float *const logits[2] = {r->s, r->s + RA__ROWS_TILE_MAX * hp};
    float *const alpha = r->s + 2 * RA__ROWS_TILE_MAX * hp;
    float *const qs = alpha + hp, *const os = qs + hq * dp;
    int32_t *const slot = (int32_t *)(os + hq * dp);
    chunk_order(slot, dp / 16);
    to_chunks(r->q, qs, hq, D, dp, slot);
    to_chunks(r->o, os, hq, D, dp, slot);
    const char *k = r->k, *v = r->v;
    int64_t prev_t0 = 0, prev_n = 0; /* the tile whose p.V is pending */
    int cur = 0;
    for (int64_t t0 = 0; t0 < r->T; t0 += r->tile, cur ^= 1) {
        const int64_t n = r->T - t0 < r->tile ? r->T - t0 : r->tile;
        float *s = logits[cur];
        const float *p = logits[cur ^ 1];
        if (prev_n)
            rescale_o(os, hq, dp, alpha);
        const int64_t steps = n > prev_n ? n : prev_n;
        for (int64_t i = 0; i < steps; i++) {
            if (i < n)
                qk_position(r, qs, dp, slot, k + (size_t)((t0 + i) * r->k_st) * kes, s + i * hp,
                            G, kdt);
            if (i < prev_n)
                pv_position(r, os, dp, slot, v + (size_t)((prev_t0 + i) * r->v_st) * ves,
                            p + i * hp, G, vdt);
        }
        softmax_rows(r, s, n, hp, alpha);
        prev_t0 = t0;
        prev_n = n;
    }
    if (prev_n) {
        rescale_o(os, hq, dp, alpha);
        const float *p = logits[cur ^ 1];
        for (int64_t i = 0; i < prev_n; i++)
            pv_position(r, os, dp, slot, v + (size_t)((prev_t0 + i) * r->v_st) * ves,
                        p + i * hp, G, vdt);
    }
    from_chunks(os, r->o, hq, D, dp, slot);
}

/* Where row order measured faster than the head-by-head walk (Zen 4, one core, cold, a
 * [1,16384,8,D] cache). It reads and writes the q and o of every head at each position,
 * G times the K/V traffic of a head in L1, so it wins while that stays small:
 * - G = 1: f32 6.5 -> 4.9 ms (D=128), 3.2 -> 2.4 ms (D=64); bf16 2.95 -> 2.65; f16 3.4 -> 2.7.
 * - G = 2 with f32 K and V: 7.4 -> 6.6 ms. With 16-bit K or V the widening makes the walk
 *   compute-bound and it lost (bf16 3.3 -> 3.9 ms).
 * - G = 4 overflows L1 (q and o are 32 KiB at 32 query heads, D=128): 2.1x slower. */
bool ra__avx512_rows_serve(int64_t G, ra_dtype k, ra_dtype v)
{
    return G == 1 || (G == 2 && k == RA_DTYPE_F32 && v == RA_DTYPE_F32);
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

