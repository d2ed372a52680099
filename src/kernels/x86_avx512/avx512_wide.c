/* AVX-512 steps for wide groups: G a multiple of 16 query rows per KV head, at least
 * RA_AVX512_WIDE_MIN_ROWS (multi-token prefix passes, MQA with many heads), where the work is
 * compute-bound and every FMA must count.
 *
 * The 16 rows of a block sit in the 16 lanes of a vector, so neither product needs a
 * reduction across lanes:
 *   widen   K (then V) of the tile into f32 once, shared by all the row blocks of the group, in
 *           chunks of 64 features: [Dp/64][Tp][64], so that one pointer plus constant offsets
 *           reaches 16 positions (bf16 K rows split into even and odd features, as the pair
 *           steps do, with q transposed in the same order, see ra__avx512_wide_q; V rows keep
 *           their order);
 *   QK      s[t][r] = q[r] . k[t]: a register tile of 16 positions x one row block, or 8 x
 *           two, each FMA a broadcast K feature times a vector of q^T (16 rows' feature);
 *   softmax per row = per lane: the max is taken as QK stores the logits, the sum runs down
 *           the tile's vectors;
 *   PV      o[r][d] += p[t][r] v[t][d]: 4 rows x 64 features in registers, a broadcast p and
 *           four V vectors per position.
 * The online-softmax rule and the vector exp are those of the other AVX-512 steps. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "avx512_inline.h"
#include "kernels/kernel.h"

#define CHUNK 64 /* features per chunk of the widened tile */
#define QK_P 16  /* positions per QK register tile */
#define PV_R 4   /* rows per PV register tile (x 64 features: 16 accumulators) */

/* Features of a row rounded up to whole chunks: q^T and the widened tile are zero there. */
int64_t ra__avx512_wide_ld(int64_t D)
{
    return (D + CHUNK - 1) & ~(int64_t)(CHUNK - 1);
}

/* Feature d' of the widened order: bf16 rows hold, per 32 features, the 16 even ones, then the
 * 16 odd ones (what bf16_split yields); other dtypes keep their order. */
static int64_t feature_of(int64_t dw, bool paired)
{
    return paired ? (dw & ~(int64_t)31) + 2 * (dw & 15) + ((dw >> 4) & 1) : dw;
}

void ra__avx512_wide_q(const float *q, int64_t D, ra_dtype k, float *qt)
{
    const bool paired = RA_PAIRED(k);
    const int64_t Dp = ra__avx512_wide_ld(D);
    /* feature d of the 16 rows, r * D + d: two gathers of 8 (64-bit offsets, any D) */
    const __m512i lo = _mm512_mullo_epi64(_mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7),
                                          _mm512_set1_epi64(D));
    const __m512i hi = _mm512_add_epi64(lo, _mm512_set1_epi64(8 * D));
    for (int64_t dw = 0; dw < Dp; dw++) {
        const int64_t d = feature_of(dw, paired);
        __m512 x = _mm512_setzero_ps();
        if (d < D)
            x = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_i64gather_ps(lo, q + d, 4)),
                                   _mm512_i64gather_ps(hi, q + d, 4), 1);
        _mm512_store_ps(qt + dw * 16, x);
    }
}

/* Prefetch step i of a target: a range, or a list of lines (paged tiles read by row). */
RA_INLINE void pf_step(const ra__prefetcher *pf, int64_t i)
{
    if (pf->list)
        ra__prefetch_step_list(pf, i);
    else
        ra__prefetch_step(pf, i);
}

/* Row i of the tile's K or V at this KV head. */
RA_INLINE const void *tile_row(const void *base, int64_t st, const char *const *rows,
                               size_t row_off, int64_t i, size_t es)
{
    return rows ? (const void *)(rows[i] + row_off)
                : (const void *)((const char *)base + (size_t)(i * st) * es);
}

/* The tile's T rows as f32 into w [Dp/64][Tp][64] (Tp = T rounded up to 16; rows T..Tp-1 and
 * features past D are 0), prefetching the next tile's lines as it goes. Bf16 rows go in the
 * split order of q^T when paired (K), else in feature order (V: the p.V sums then need no
 * permutes back, and each output feature sums the same products in the same order). */
RA_INLINE void widen(const void *base, int64_t st, const char *const *rows, size_t row_off,
                     int64_t T, int64_t D, const int dt, const bool paired, float *w,
                     const ra__pf_target *target)
{
    const int64_t Dp = ra__avx512_wide_ld(D), Tp = (T + 15) & ~(int64_t)15;
    const size_t es = RA_ES(dt);
    const ra__prefetcher pf = ra__prefetcher_init(target, T);
    const int64_t Dw = D & ~(int64_t)31; /* whole 32s: no masks */
    for (int64_t i = 0; i < T; i++) {
        pf_step(&pf, i);
        const void *row = tile_row(base, st, rows, row_off, i, es);
        for (int64_t d = 0; d < Dw; d += 32) {
            float *dst = w + ((d / CHUNK) * Tp + i) * CHUNK + d % CHUNK;
            __m512 a, b;
            if (paired) {
                bf16_split(load_bf16x32(row, d, 0xffffffffu, dt), &a, &b);
            } else {
                a = load16(row, d, 0xffff, dt);
                b = load16(row, d + 16, 0xffff, dt);
            }
            _mm512_store_ps(dst, a);
            _mm512_store_ps(dst + 16, b);
        }
        for (int64_t d = Dw; d < Dp; d += 32) {
            float *dst = w + ((d / CHUNK) * Tp + i) * CHUNK + d % CHUNK;
            __m512 a, b;
            if (paired) {
                bf16_split(load_bf16x32(row, d, lanes32(D - d), dt), &a, &b);
            } else {
                a = load16(row, d, lanes(D - d), dt);
                b = load16(row, d + 16, lanes(D - d - 16), dt);
            }
            _mm512_store_ps(dst, a);
            _mm512_store_ps(dst + 16, b);
        }
    }
    for (int64_t i = T; i < Tp; i++)
        for (int64_t c = 0; c < Dp / CHUNK; c++)
            memset(w + (c * Tp + i) * CHUNK, 0, CHUNK * sizeof(float));
}

/* The tile position from which row r of the group sees nothing (causal groups), within
 * [0, T]. */
RA_INLINE int64_t row_end(const ra__tile *t, int64_t r)
{
    if (!t->causal_g || t->t_first + t->T <= t->causal_end0)
        return t->T; /* every row sees the whole tile: no division */
    const int64_t e = t->causal_end0 + r / t->causal_g - t->t_first;
    return e < 0 ? 0 : e > t->T ? t->T : e;
}

/* Logits of RB blocks of 16 rows (g0, g0 + 16, ..): s[t][r] for t < T, scaled and modified,
 * from the widened K in w; each broadcast K feature feeds RB FMAs. Positions a row does not
 * see (causal groups) get -inf. Each row's max over the tile goes to row_max, taken in
 * position order as the logits are stored, where the FMAs of the next positions overlap it
 * (a separate pass over s was one dependent chain per block). */
RA_INLINE void qk_blocks(const ra__tile *t, int64_t g0, const float *w, const int RB)
{
    const int P = QK_P / RB; /* positions per register tile: 16 accumulators */
    const int64_t T = t->T, Dp = ra__avx512_wide_ld(t->D), Tp = (T + 15) & ~(int64_t)15;
    const __m512 scale = _mm512_set1_ps(t->scale);
    const bool modify = t->softcap != 0.0f || t->slopes;
    /* lane r of block b: the first tile position row g0 + 16b + r does not see */
    __m512i end[2];
    bool causal = false;
    for (int b = 0; b < RB; b++) {
        int32_t e[16] __attribute__((aligned(64)));
        for (int r = 0; r < 16; r++) {
            e[r] = (int32_t)row_end(t, g0 + 16 * b + r);
            causal |= e[r] < T;
        }
        end[b] = _mm512_load_si512(e);
    }
    for (int64_t t0 = 0; t0 < T; t0 += P) {
        __m512 acc[QK_P];
        for (int p = 0; p < QK_P; p++)
            acc[p] = _mm512_setzero_ps();
        for (int64_t c = 0; c < Dp / CHUNK; c++) {
            const float *kb = w + (c * Tp + t0) * CHUNK;
            const float *qc = t->qp + g0 * t->qp_ld + c * CHUNK * 16;
            for (int d = 0; d < CHUNK; d++) {
                __m512 qv[2];
                for (int b = 0; b < RB; b++)
                    qv[b] = _mm512_load_ps(qc + 16 * b * t->qp_ld + d * 16);
                for (int p = 0; p < P; p++) {
                    const __m512 kv = _mm512_set1_ps(kb[p * CHUNK + d]);
                    for (int b = 0; b < RB; b++)
                        acc[p * RB + b] = _mm512_fmadd_ps(kv, qv[b], acc[p * RB + b]);
                }
            }
        }
        const int n = T - t0 < P ? (int)(T - t0) : P;
        for (int b = 0; b < RB; b++) {
            __m512 mx = t0 ? _mm512_load_ps(t->row_max + g0 + 16 * b) : _mm512_set1_ps(-INFINITY);
            float *s = t->s + (g0 + 16 * b) * t->s_ld;
            const __m512 slope =
                t->slopes ? _mm512_loadu_ps(t->slopes + g0 + 16 * b) : _mm512_setzero_ps();
            for (int p = 0; p < n; p++) {
                __m512 x = _mm512_mul_ps(acc[p * RB + b], scale);
                if (modify) {
                    const float dist = (float)(t->last_pos - (t->t_first + t0 + p));
                    x = modify16(x, t->softcap, slope, _mm512_set1_ps(dist), t->slopes != NULL);
                }
                if (causal) /* NaN or Inf from K at a hidden position stays hidden too */
                    x = _mm512_mask_mov_ps(x,
                                           _mm512_cmpge_epi32_mask(
                                               _mm512_set1_epi32((int32_t)(t0 + p)), end[b]),
                                           _mm512_set1_ps(-INFINITY));
                _mm512_store_ps(s + (t0 + p) * 16, x);
                mx = nanmax(mx, x);
            }
            _mm512_store_ps(t->row_max + g0 + 16 * b, mx);
        }
    }
}

/* The online-softmax update of one block's rows (lanes): s becomes p, m and l move on, and
 * alpha goes to ab. */
RA_INLINE void softmax_block(const ra__tile *t, int64_t g0, float *s, float *ab)
{
    const int64_t T = t->T;
    const softmax16 st = softmax16_begin(_mm512_loadu_ps(t->m + g0),
                                         _mm512_load_ps(t->row_max + g0));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < T; i++) {
        const __m512 p = exp16(_mm512_sub_ps(_mm512_load_ps(s + i * 16), st.m_sub));
        _mm512_store_ps(s + i * 16, p);
        sum = _mm512_add_ps(sum, p);
    }
    __m512 m_new, l_new;
    _mm512_store_ps(ab, softmax16_end(&st, _mm512_loadu_ps(t->l + g0), sum, &m_new, &l_new));
    _mm512_storeu_ps(t->m + g0, m_new);
    _mm512_storeu_ps(t->l + g0, l_new);
}

/* o = o * alpha + p.V for one block's rows, from the widened V in w. A row's hidden
 * positions (causal groups) are skipped, not multiplied by p = 0: their V may be Inf. */
RA_INLINE void pv_block(const ra__tile *t, int64_t g0, const float *w, const float *s,
                        const float *ab)
{
    const int64_t T = t->T, D = t->D, Dp = ra__avx512_wide_ld(D), Tp = (T + 15) & ~(int64_t)15;
    for (int r0 = 0; r0 < 16; r0 += PV_R) {
        int64_t end[PV_R], all = T, any = 0; /* positions every row / some row sees */
        for (int r = 0; r < PV_R; r++) {
            end[r] = row_end(t, g0 + r0 + r);
            all = end[r] < all ? end[r] : all;
            any = end[r] > any ? end[r] : any;
        }
        for (int64_t c = 0; c < Dp / CHUNK; c++) {
            const float *vb = w + c * Tp * CHUNK, *pb = s + r0;
            __m512 acc[PV_R][4];
            for (int r = 0; r < PV_R; r++)
                for (int k = 0; k < 4; k++)
                    acc[r][k] = _mm512_setzero_ps();
            for (int64_t i = 0; i < all; i++) {
                __m512 v[4];
                for (int k = 0; k < 4; k++) { /* once into a register, not once per row */
                    v[k] = _mm512_load_ps(vb + i * CHUNK + 16 * k);
                    __asm__("" : "+v"(v[k]));
                }
                for (int r = 0; r < PV_R; r++) {
                    const __m512 p = _mm512_set1_ps(pb[i * 16 + r]);
                    for (int k = 0; k < 4; k++)
                        acc[r][k] = _mm512_fmadd_ps(p, v[k], acc[r][k]);
                }
            }
            for (int64_t i = all; i < any; i++) /* the causal edge: each row to its own end */
                for (int r = 0; r < PV_R; r++)
                    if (i < end[r]) {
                        const __m512 p = _mm512_set1_ps(pb[i * 16 + r]);
                        for (int k = 0; k < 4; k++)
                            acc[r][k] = _mm512_fmadd_ps(
                                p, _mm512_load_ps(vb + i * CHUNK + 16 * k), acc[r][k]);
                    }
            for (int r = 0; r < PV_R; r++) {
                const __m512 alpha = _mm512_set1_ps(ab[r0 + r]);
                float *o = t->o + (g0 + r0 + r) * D + c * CHUNK;
                for (int k = 0; k < 4; k++) {
                    const __mmask16 mk = lanes(D - c * CHUNK - 16 * k);
                    if (mk)
                        _mm512_mask_storeu_ps(o + 16 * k, mk,
                                              _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, o + 16 * k),
                                                              alpha, acc[r][k]));
                }
            }
        }
    }
}

/* One tile of a wide group: K widened once for all row blocks, their logits and softmax; then
 * V widened once and every block's output. */
RA_INLINE void wide_step(const ra__tile *t, const int kdt, const int vdt)
{
    const int64_t G = t->G;
    float ab[16] __attribute__((aligned(64)));
    widen(t->k, t->k_st, t->k_rows, t->k_row_off, t->T, t->D, kdt, RA_PAIRED(kdt), t->conv,
          &t->pf_k);
    int64_t g0 = 0;
    for (; g0 + 32 <= G; g0 += 32)
        qk_blocks(t, g0, t->conv, 2);
    if (g0 < G)
        qk_blocks(t, g0, t->conv, 1);
    widen(t->v, t->v_st, t->v_rows, t->v_row_off, t->T, t->D, vdt, false, t->conv, &t->pf_v);
    for (g0 = 0; g0 < G; g0 += 16) {
        float *s = t->s + g0 * t->s_ld;
        softmax_block(t, g0, s, ab);
        pv_block(t, g0, t->conv, s, ab);
    }
}

#define RA__WIDE(kd, vd)                                                                      \
    void ra__avx512_wide_##kd##_##vd(const ra__tile *t)                                       \
    {                                                                                         \
        wide_step(t, RA_DTYPE_##kd, RA_DTYPE_##vd);                                           \
    }
RA__WIDE(F32, F32)
RA__WIDE(F32, F16)
RA__WIDE(F32, BF16)
RA__WIDE(F16, F32)
RA__WIDE(F16, F16)
RA__WIDE(F16, BF16)
RA__WIDE(BF16, F32)
RA__WIDE(BF16, F16)
RA__WIDE(BF16, BF16)
#undef RA__WIDE
