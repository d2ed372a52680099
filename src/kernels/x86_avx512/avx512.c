/* AVX-512 kernel (compiled with -mavx512f/bw/vl/dq/bf16 -mfma; chosen at run time). One fused
 * step per head tile of GT query heads (8, 4, 2 or 1) over a tile of up to TILE positions:
 *
 * QK: register tiles of GT heads x TT = 16/GT positions (16 zmm accumulators) walk D 16 lanes
 *     at a time; one transpose-reduction turns them into one vector of 16 logits, lane
 *     g*TT + i = head g, position i. The tile's logits stay in that layout.
 * Softmax: on whole vectors - per-head max and sum by butterflies inside each group of TT
 *     lanes, a vector exp (range reduction + degree-7 polynomial + vscalefps), and the
 *     rescale factor alpha folded into the output update (o = o * alpha + p.V), so nothing
 *     scalar runs per tile.
 * PV: GT heads x 64 features x U positions in flight (8 heads: 32 features, one position;
 *     16 accumulators either way); each V vector loaded feeds GT heads.
 * K/V may be f32, f16 (vcvtph2ps) or bf16, independently; q, o, m, l stay f32, and so does
 * every sum. bf16 rows load 32 elements whole and split them into even and odd ones with a
 * shift and a mask, so q comes pre-split (ra__tile.qp) and PV sums return to feature order
 * once per tile. e4m3 rows take the same path where the CPU has AVX512-VBMI: byte table
 * lookups turn 32 codes into 32 exact bf16, fewer operations than widening them to f32 16 at a
 * time. When q and K are both bf16 and the CPU has AVX512-BF16, QK multiplies them as bf16
 * pairs instead (vdpbf16ps: exact products, f32 sums, 32 elements per instruction); bf16
 * subnormals, which the instruction reads as 0, are detected and take exact products. */
#include <immintrin.h>
#include <math.h>

#include "common/lse.h"
#include "avx512_inline.h"
#include "config.h"
#include "kernels/kernel.h"

_Static_assert(TILE % 16 == 0 && TILE >= 16, "the logits of a tile fill whole 16-lane vectors");

/* Butterflies over each group of TT adjacent lanes: every lane ends with its group's max
 * (NaN-propagating) or sum. TT is 2, 4, 8 or 16. */
RA_INLINE __m512 group_max(__m512 x, const int TT)
{
    x = nanmax(x, _mm512_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)));
    if (TT >= 4)
        x = nanmax(x, _mm512_permute_ps(x, _MM_SHUFFLE(1, 0, 3, 2)));
    if (TT >= 8)
        x = nanmax(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(2, 3, 0, 1)));
    if (TT >= 16)
        x = nanmax(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(1, 0, 3, 2)));
    return x;
}

RA_INLINE __m512 group_sum(__m512 x, const int TT)
{
    x = _mm512_add_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)));
    if (TT >= 4)
        x = _mm512_add_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(1, 0, 3, 2)));
    if (TT >= 8)
        x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(2, 3, 0, 1)));
    if (TT >= 16)
        x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(1, 0, 3, 2)));
    return x;
}

/* lane -> its head's value: v[g] spread over lanes g*TT .. g*TT+TT-1. */
RA_INLINE __m512 spread_heads(const float *v, const int GT, const int TT)
{
    const __m512i head_of_lane = _mm512_srli_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), TT == 2 ? 1 : TT == 4 ? 2 : TT == 8 ? 3 : 4);
    return _mm512_permutexvar_ps(head_of_lane, _mm512_maskz_loadu_ps((__mmask16)((1u << GT) - 1u), v));
}

/* paged (a compile-time flag): the target is a list of lines. */
#define PF_GO(pf, tick, paged)                                                                 \
    ((paged) ? ra__prefetch_step_list(pf, tick) : ra__prefetch_step(pf, tick))
#define PF_ROW(pf, tick, i, fine) ((fine) ? PF_GO(pf, (tick) + (i), paged) : (void)0)
#define PF_STEP(pf, tick, fine) ((fine) ? (void)0 : PF_GO(pf, tick, paged))
#define PF_PER_STEP(TT, fine) ((fine) ? (TT) : 1)

/* The K "dtype" of the steps for q and K both bf16 (table field step_bf16_dot): vdpbf16ps
 * multiplies 32 bf16 pairs exactly and sums them in f32, twice the multiply-adds of an FMA and
 * no widening of K. */
#define KDT_BF16_DOT 3

/* acc[g*TT + i] += q[g][d..d+15] * k_i[d..d+15] for the lanes in mk (0xffff inside D). */
RA_INLINE void qk_accumulate(__m512 acc[16], const float *q, int64_t D, const char *const krow[16],
                             int64_t d, __mmask16 mk, const int GT, const int kdt,
                             const ra__prefetcher *pf, int64_t tick, const int paged)
{
    const int TT = 16 / GT;
    __m512 qv[8];
    for (int g = 0; g < GT; g++)
        qv[g] = _mm512_maskz_loadu_ps(mk, q + g * D + d);
    for (int i = 0; i < TT; i++) {
        PF_ROW(pf, tick, i, PF_FINE_QK(GT, kdt));
        __m512 kv = load16(krow[i], d, mk, kdt);
        for (int g = 0; g < GT; g++)
            acc[g * TT + i] = _mm512_fmadd_ps(qv[g], kv, acc[g * TT + i]);
    }
}

/* The same for q and K in bf16: lane j of acc[g*TT + i] gains q[g][d+2j] k_i[d+2j] +
 * q[g][d+2j+1] k_i[d+2j+1], for the elements in mk (32 per step). */
/* Lanes of 32 bf16 that hold a subnormal (exponent 0, mantissa not 0). */
RA_INLINE __mmask32 bf16_subnormal(__m512i x)
{
    return _mm512_mask_test_epi16_mask(_mm512_testn_epi16_mask(x, _mm512_set1_epi16(0x7f80)), x,
                                       _mm512_set1_epi16(0x007f));
}

RA_INLINE void qk_accumulate_dot(__m512 acc[16], const uint16_t *q, int64_t D,
                                 const char *const krow[16], int64_t d, __mmask32 mk, const int GT,
                                 const ra__prefetcher *pf, int64_t tick, __m512i *exp_min,
                                 const int paged)
{
    const int TT = 16 / GT;
    __m512bh qv[4];
    for (int g = 0; g < GT; g++)
        qv[g] = (__m512bh)_mm512_maskz_loadu_epi16(mk, q + g * D + d);
    for (int i = 0; i < TT; i++) {
        PF_ROW(pf, tick, i, PF_FINE_QK(GT, KDT_BF16_DOT));
        const __m512i x = _mm512_maskz_loadu_epi16(mk, (const uint16_t *)krow[i] + d);
        *exp_min = _mm512_mask_min_epu16(*exp_min, mk, *exp_min,
                                         _mm512_and_si512(x, _mm512_set1_epi16(0x7f80)));
        const __m512bh kv = (__m512bh)x;
        for (int g = 0; g < GT; g++)
            acc[g * TT + i] = _mm512_dpbf16_ps(acc[g * TT + i], qv[g], kv);
    }
}

/* The same for bf16 (or e4m3 read as bf16) K and f32 q: 32 K elements load whole and split
 * into even and odd ones by a shift and a mask (no widening shuffle); q comes pre-split (ra__tile.qp: each 32
 * elements as 16 even, then 16 odd, zero-padded). */
RA_INLINE void qk_accumulate_pairs(__m512 acc[16], const float *qp, int64_t ld,
                                   const char *const krow[16], int64_t d, __mmask32 mk, const int GT,
                                   const int kdt, const ra__prefetcher *pf, int64_t tick,
                                   const int paged)
{
    const int TT = 16 / GT;
    __m512 qe[8], qo[8];
    for (int g = 0; g < GT; g++) {
        qe[g] = _mm512_loadu_ps(qp + g * ld + d);
        qo[g] = _mm512_loadu_ps(qp + g * ld + d + 16);
    }
    for (int i = 0; i < TT; i++) {
        PF_ROW(pf, tick, i, PF_FINE_QK(GT, kdt));
        const __m512i x = load_bf16x32(krow[i], d, mk, kdt);
        __m512 ke, ko;
        bf16_split(x, &ke, &ko);
        for (int g = 0; g < GT; g++) {
            acc[g * TT + i] = _mm512_fmadd_ps(qe[g], ke, acc[g * TT + i]);
            acc[g * TT + i] = _mm512_fmadd_ps(qo[g], ko, acc[g * TT + i]);
        }
    }
}

/* Elements of q and K per step of the QK loop. */
#define QK_WIDTH(kdt) ((kdt) == KDT_BF16_DOT || RA_PAIRED(kdt) ? 32 : 16)

/* Whether rows krow[0..n-1] hold a bf16 subnormal among their D elements. */
RA_INLINE bool rows_have_bf16_subnormal(const char *const krow[16], int n, int64_t D)
{
    for (int i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d += 32) {
            if (bf16_subnormal(_mm512_maskz_loadu_epi16(lanes32(D - d), (const uint16_t *)krow[i] + d)))
                return true;
        }
    return false;
}

/* acc[g*TT + i] = q[g0+g] . k_{t0+i} over all of D for one register tile of positions. For
 * KDT_BF16_DOT, returns whether some K element had a zero exponent (0 or subnormal), which
 * costs two operations per K vector instead of an exact test. */
RA_INLINE bool qk_register_tile(__m512 acc[16], const ra__tile *t, int64_t g0, const int GT,
                                     const int kdt, const char *const krow[16],
                                     const ra__prefetcher *pf, int64_t step, const int paged)
{
    const int TT = 16 / GT, W = QK_WIDTH(kdt);
    const int64_t D = t->D, Dw = D & ~(int64_t)(W - 1); /* whole steps; the tail is masked */
    const int64_t d_iters = (D + W - 1) / W;
    const float *q = t->q + g0 * D;
    const uint16_t *qb = kdt == KDT_BF16_DOT ? t->qb + g0 * D : NULL;
    const float *qp = RA_PAIRED(kdt) ? t->qp + g0 * t->qp_ld : NULL;
    const int64_t qp_ld = t->qp_ld;
    __m512i exp_min = _mm512_set1_epi16(0x7f80);
    for (int i = 0; i < 16; i++)
        acc[i] = _mm512_setzero_ps();
    for (int64_t d = 0; d < Dw; d += W) {
        const int64_t tick = (step * d_iters + d / W) * PF_PER_STEP(TT, PF_FINE_QK(GT, kdt));
        PF_STEP(pf, tick, PF_FINE_QK(GT, kdt));
        if (kdt == KDT_BF16_DOT)
            qk_accumulate_dot(acc, qb, D, krow, d, 0xffffffffu, GT, pf, tick, &exp_min, paged);
        else if (RA_PAIRED(kdt))
            qk_accumulate_pairs(acc, qp, qp_ld, krow, d, 0xffffffffu, GT, kdt, pf, tick, paged);
        else
            qk_accumulate(acc, q, D, krow, d, 0xffff, GT, kdt, pf, tick, paged);
    }
    if (Dw < D) {
        const int64_t tick = (step * d_iters + Dw / W) * PF_PER_STEP(TT, PF_FINE_QK(GT, kdt));
        PF_STEP(pf, tick, PF_FINE_QK(GT, kdt));
        const __mmask32 tail = lanes32(D - Dw);
        if (kdt == KDT_BF16_DOT)
            qk_accumulate_dot(acc, qb, D, krow, Dw, tail, GT, pf, tick, &exp_min, paged);
        else if (RA_PAIRED(kdt))
            qk_accumulate_pairs(acc, qp, qp_ld, krow, Dw, tail, GT, kdt, pf, tick, paged);
        else
            qk_accumulate(acc, q, D, krow, Dw, lanes(D - Dw), GT, kdt, pf, tick, paged);
    }
    return kdt == KDT_BF16_DOT && _mm512_cmpeq_epi16_mask(exp_min, _mm512_setzero_si512());
}

/* Logits of heads g0..g0+GT-1 for the tile's positions into sb: vector k holds positions
 * k*TT .. k*TT+TT-1 of every head (lane g*TT + i); lanes past T hold -inf. */
RA_INLINE void qk_tile(const ra__tile *t, int64_t g0, const int GT, const int kdt, float *sb,
                       const ra__prefetcher *pf, const int paged)
{
    const int TT = 16 / GT;
    const size_t es = RA_ES(kdt);
    const int64_t T = t->T, k_st = t->k_st;
    const char *k = t->k;
    const __m512 scale = _mm512_set1_ps(t->scale);
    const int64_t steps = (T + TT - 1) / TT;
    for (int64_t step = 0; step < steps; step++) {
        const int64_t t0 = step * TT, tn = T - t0 < TT ? T - t0 : TT;
        const char *krow[16];
        for (int i = 0; i < TT; i++) { /* past the tail, repeat the last row (masked below) */
            const int64_t r = t0 + (i < tn ? i : tn - 1);
            krow[i] = paged ? t->k_rows[r] + t->k_row_off : k + (size_t)(r * k_st) * es;
        }
        __m512 acc[16];
        if (qk_register_tile(acc, t, g0, GT, kdt, krow, pf, step, paged) &&
            rows_have_bf16_subnormal(krow, (int)tn, t->D)) {
            /* vdpbf16ps reads bf16 subnormals as 0: redo these positions exactly (rare) */
            const ra__prefetcher none = {0};
            qk_register_tile(acc, t, g0, GT, RA_DTYPE_BF16, krow, &none, 0, 0);
        }
        /* lanes whose position is past the tail become -inf: no weight in the softmax */
        const __mmask16 pos_ok = (__mmask16)(((1u << tn) - 1u) * (GT == 8 ? 0x5555u : GT == 4 ? 0x1111u : GT == 2 ? 0x0101u : 1u));
        _mm512_store_ps(sb + 16 * step, _mm512_mask_mul_ps(_mm512_set1_ps(-INFINITY), pos_ok,
                                                           sum16(acc), scale));
    }
    for (int64_t step = steps; step < TILE / TT; step++)
        _mm512_store_ps(sb + 16 * step, _mm512_set1_ps(-INFINITY));
}

/* The online-softmax update of heads g0..g0+GT-1 on the tile's logits in sb (the layout of
 * qk_tile), by the rule of softmax16_begin/_end: sb becomes p = exp(s - m_new), m and l are
 * updated, and alpha (lane g*TT) goes to ab for the output update. */
RA_INLINE void softmax_tile(const ra__tile *t, int64_t g0, const int GT, float *sb, float *ab)
{
    const int TT = 16 / GT, NV = TILE / TT;
    /* the logits stay in registers, except for 8 heads (TILE/2 vectors), which read them twice */
    __m512 x[TILE / 4];
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int k = 0; k < NV; k++) {
        const __m512 xk = _mm512_load_ps(sb + 16 * k);
        if (NV <= TILE / 4)
            x[k] = xk;
        mx = nanmax(mx, xk);
    }
    const softmax16 st = softmax16_begin(spread_heads(t->m + g0, GT, TT), group_max(mx, TT));
    __m512 sum = _mm512_setzero_ps();
    for (int k = 0; k < NV; k++) {
        __m512 p = exp16(
            _mm512_sub_ps(NV <= TILE / 4 ? x[k] : _mm512_load_ps(sb + 16 * k), st.m_sub));
        _mm512_store_ps(sb + 16 * k, p);
        sum = _mm512_add_ps(sum, p);
    }
    __m512 m_new, l_new;
    const __m512 alpha = softmax16_end(&st, spread_heads(t->l + g0, GT, TT), group_sum(sum, TT),
                                       &m_new, &l_new);
    float mb[16] __attribute__((aligned(64))), lb[16] __attribute__((aligned(64)));
    _mm512_store_ps(mb, m_new);
    _mm512_store_ps(lb, l_new);
    _mm512_store_ps(ab, alpha);
    for (int g = 0; g < GT; g++) {
        t->m[g0 + g] = mb[g * TT];
        t->l[g0 + g] = lb[g * TT];
    }
}

/* 16*NC features (NC = 2 or 4) of a V row from element i: for bf16 and e4m3 in even/odd order, the
 * first NC of {v[i+2j]}, {v[i+2j+1]}, {v[i+32+2j]}, {v[i+32+2j+1]} (j = lane), which a shift
 * and a mask make out of whole loads with no widening shuffle; natural order {v[i+j]},
 * {v[i+16+j]}, ... otherwise. */
RA_INLINE void load_v(const void *row, int64_t i, const __mmask16 mk[4], const int dt,
                      __m512 vv[4], const int NC)
{
    if (!RA_PAIRED(dt)) {
        for (int c = 0; c < NC; c++)
            vv[c] = load16(row, i + 16 * c, mk[c], dt);
        return;
    }
    for (int h = 0; h < NC / 2; h++) {
        const __mmask32 m = (__mmask32)mk[2 * h] | ((__mmask32)mk[2 * h + 1] << 16);
        const __m512i x = m ? load_bf16x32(row, i + 32 * h, m, dt) : _mm512_setzero_si512();
        bf16_split(x, &vv[2 * h], &vv[2 * h + 1]);
    }
}

/* o[g0..g0+GT-1] = o * alpha + p.V over the tile, FW features at a time, U positions in
 * flight; p[g][i] is sb[(i / TT) * 16 + g * TT + i % TT]. */
RA_INLINE void pv_tile(const ra__tile *t, int64_t g0, const int GT, const int vdt,
                       const float *sb, const float *ab, const ra__prefetcher *pf,
                       const int paged)
{
    const int TT = 16 / GT, U = PV_U(GT), FW = PV_FW(GT), NC = FW / 16;
    const size_t es = RA_ES(vdt);
    const int64_t T = t->T, D = t->D, v_st = t->v_st;
    const char *v = t->v;
    float *o = t->o + g0 * D;
#define P_AT(g, i) _mm512_set1_ps(sb[((i) / TT) * 16 + (g) * TT + (i) % TT])
    const int64_t pos_iters = (T + U - 1) / U;
    for (int64_t d0 = 0; d0 < D; d0 += FW) {
#define PV_PF_STEP(pf, tick0, i) (PF_FINE_PV(GT, vdt) ? (void)0 : PF_GO(pf, (tick0) + (i) / U, paged))
#define PV_PF_POS(pf, tick0, i) (PF_FINE_PV(GT, vdt) ? PF_GO(pf, (tick0) + (i), paged) : (void)0)
        const int64_t tick0 = d0 / FW * (PF_FINE_PV(GT, vdt) ? T : pos_iters);
        __mmask16 mk[4];
        for (int c = 0; c < NC; c++)
            mk[c] = lanes(D - d0 - 16 * c);
        __m512 acc[4][8][4]; /* [u][g][c] */
        for (int u = 0; u < U; u++)
            for (int g = 0; g < GT; g++)
                for (int c = 0; c < NC; c++)
                    acc[u][g][c] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + U <= T; i += U) {
            PV_PF_STEP(pf, tick0, i);
            for (int u = 0; u < U; u++) {
                PV_PF_POS(pf, tick0, i + u);
                const char *vrow = paged ? t->v_rows[i + u] + t->v_row_off
                                         : v + (size_t)((i + u) * v_st) * es;
                __m512 vv[4];
                load_v(vrow, d0, mk, vdt, vv, NC);
                for (int g = 0; g < GT; g++) {
                    __m512 p = P_AT(g, i + u);
                    for (int c = 0; c < NC; c++)
                        acc[u][g][c] = _mm512_fmadd_ps(p, vv[c], acc[u][g][c]);
                }
            }
        }
        if (i < T)
            PV_PF_STEP(pf, tick0, i);
        /* The tail repeats the body above for one position: sharing it through an inline helper
         * made gcc 12's code much slower (docs/performance.md). */
        for (; i < T; i++) {
            PV_PF_POS(pf, tick0, i);
            const char *vrow = paged ? t->v_rows[i] + t->v_row_off : v + (size_t)(i * v_st) * es;
            __m512 vv[4];
            load_v(vrow, d0, mk, vdt, vv, NC);
            for (int g = 0; g < GT; g++) {
                __m512 p = P_AT(g, i);
                for (int c = 0; c < NC; c++)
                    acc[0][g][c] = _mm512_fmadd_ps(p, vv[c], acc[0][g][c]);
            }
        }
        for (int g = 0; g < GT; g++) {
            const __m512 alpha = _mm512_set1_ps(ab[g * TT]);
            __m512 sum[4];
            for (int c = 0; c < NC; c++) {
                sum[c] = acc[0][g][c];
                for (int u = 1; u < U; u++)
                    sum[c] = _mm512_add_ps(sum[c], acc[u][g][c]);
            }
            if (RA_PAIRED(vdt)) /* even/odd lanes back to feature order */
                for (int h = 0; h < NC / 2; h++)
                    pairs_to_features(&sum[2 * h], &sum[2 * h + 1]);
            for (int c = 0; c < NC; c++) {
                if (!mk[c])
                    continue;
                float *og = o + g * D + d0 + 16 * c;
                _mm512_mask_storeu_ps(og, mk[c], _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk[c], og),
                                                                 alpha, sum[c]));
            }
        }
    }
#undef P_AT
#undef PV_PF_STEP
#undef PV_PF_POS
}

/* scales[i] of each lane's position (lane g*TT + i of step k is position k*TT + i). Only the
 * tile's T scales are loaded: the scratch holding them may end right after them. */
RA_INLINE __m512 position_scales(const float *scales, int64_t k, const int TT, int64_t T,
                                 __mmask16 ok)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 s = _mm512_maskz_loadu_ps(lanes(T - k * TT) & lanes(TT), scales + k * TT);
    return _mm512_maskz_permutexvar_ps(ok, _mm512_and_si512(lane, _mm512_set1_epi32(TT - 1)), s);
}

/* Quantized V: the tile's probabilities in sb times each position's V scale, after the
 * softmax summed them into l and before the p.V. */
RA_INLINE void scale_p_tile(const ra__tile *t, const int GT, float *sb)
{
    const int TT = 16 / GT;
    const int64_t steps = (t->T + TT - 1) / TT;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i in_step = _mm512_and_si512(lane, _mm512_set1_epi32(TT - 1));
    for (int64_t k = 0; k < steps; k++) {
        const __m512i pos = _mm512_add_epi32(in_step, _mm512_set1_epi32((int)(k * TT)));
        const __mmask16 ok = _mm512_cmp_epi32_mask(pos, _mm512_set1_epi32((int)t->T), _MM_CMPINT_LT);
        _mm512_store_ps(sb + 16 * k, _mm512_mul_ps(_mm512_load_ps(sb + 16 * k),
                                                   position_scales(t->v_scales, k, TT, t->T, ok)));
    }
}

/* The K scales of quantized K, then the score modifiers (ra__tile), on the valid lanes of the
 * tile's logits in sb (the layout of qk_tile); lanes past T keep -inf. */
RA_INLINE void modify_tile(const ra__tile *t, int64_t g0, const int GT, float *sb)
{
    const int TT = 16 / GT;
    const int64_t steps = (t->T + TT - 1) / TT;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    /* position of a lane inside its step: lane % TT */
    const __m512i in_step = _mm512_and_si512(lane, _mm512_set1_epi32(TT - 1));
    const __m512 slope = t->slopes ? spread_heads(t->slopes + g0, GT, TT) : _mm512_setzero_ps();
    const float dist0 = (float)(t->last_pos - t->t_first);
    for (int64_t k = 0; k < steps; k++) {
        const __m512i pos = _mm512_add_epi32(in_step, _mm512_set1_epi32((int)(k * TT)));
        const __mmask16 ok = _mm512_cmp_epi32_mask(pos, _mm512_set1_epi32((int)t->T), _MM_CMPINT_LT);
        const __m512 dist = _mm512_sub_ps(_mm512_set1_ps(dist0), _mm512_cvtepi32_ps(pos));
        __m512 x = _mm512_load_ps(sb + 16 * k);
        if (t->k_scales)
            x = _mm512_mask_mul_ps(x, ok, x, position_scales(t->k_scales, k, TT, t->T, ok));
        _mm512_store_ps(sb + 16 * k, _mm512_mask_mov_ps(x, ok, modify16(x, t->softcap, slope, dist,
                                                                        t->slopes != NULL)));
    }
}

/* One head tile: dtp packs the K and V dtypes (8 * k + v, k may be KDT_BF16_DOT) and, in
 * bit 6, whether the call is paged (rows through ra__tile.k_rows, prefetch lists), so
 * that one macro argument carries them all into the specialization. */
#define RA__DTP(k, v, paged) (8 * (k) + (v) + 64 * (paged))
RA_INLINE void head_tile_step(const ra__tile *t, int64_t g0, const int GT, const int dtp)
{
    const int kd = (dtp >> 3) & 7, vdt = dtp & 7, paged = dtp >> 6;
    float sb[TILE * 8] __attribute__((aligned(64))); /* logits, then p: TILE*GT floats */
    float ab[16] __attribute__((aligned(64)));
    const int TT = 16 / GT;
    const int64_t T = t->T, D = t->D;
    /* This head tile's share (GT of G) of the next tile's K and V lines, spread evenly over
     * its loop iterations (each about 16 FMAs): bursts of prefetches stall the core once the
     * miss buffers fill, and the memory then idles while it computes. */
    /* A single head's QK loop is bound by the K loads: pair products gain nothing there, so it
     * splits K into f32 (docs/performance.md). */
    const int kdt = kd == KDT_BF16_DOT && GT == 1 ? RA_DTYPE_BF16 : kd;
    const int64_t W = QK_WIDTH(kdt);
    const int64_t n_qk = (T + TT - 1) / TT * ((D + W - 1) / W) * PF_PER_STEP(TT, PF_FINE_QK(GT, kdt));
    const int U = PV_U(GT), FW = PV_FW(GT);
    const int64_t n_pv = (PF_FINE_PV(GT, vdt) ? T : (T + U - 1) / U) * ((D + FW - 1) / FW);
    const ra__prefetcher pk = ra__prefetcher_for_heads(&t->pf_k, g0, GT, t->G, n_qk);
    const ra__prefetcher pv = ra__prefetcher_for_heads(&t->pf_v, g0, GT, t->G, n_pv);
    qk_tile(t, g0, GT, kdt, sb, &pk, paged);
    if (t->k_scales || t->softcap != 0.0f || t->slopes)
        modify_tile(t, g0, GT, sb);
    softmax_tile(t, g0, GT, sb, ab);
    if (t->v_scales)
        scale_p_tile(t, GT, sb);
    pv_tile(t, g0, GT, vdt, sb, ab, &pv, paged);
}


#define RA__STEP(kd, vd, paged, name)                                                         \
    static void name(const ra__tile *t)                                                       \
    {                                                                                         \
        RA__FOR_HEAD_TILES_8(head_tile_step, t, RA__DTP(RA_DTYPE_##kd, RA_DTYPE_##vd, paged), \
                             WITH8(RA_DTYPE_##kd));                                           \
    }
#define RA__STEPS(kd, vd)                                                                     \
    RA__STEP(kd, vd, 0, step_##kd##_##vd)                                                     \
    RA__STEP(kd, vd, 1, paged_##kd##_##vd)
RA__STEPS(F32, F32)
RA__STEPS(F32, F16)
RA__STEPS(F32, BF16)
RA__STEPS(F16, F32)
RA__STEPS(F16, F16)
RA__STEPS(F16, BF16)
RA__STEPS(BF16, F32)
RA__STEPS(BF16, F16)
RA__STEPS(BF16, BF16)
RA__STEPS(I8, I8)
/* e4m3 reads its rows as bf16 through byte tables (vpermi2b) where the CPU has AVX512-VBMI.
 * Each way is a function of its own: with both inlined into one, gcc 12 dropped the
 * prefetches of the contiguous step. */
#define RA__E4M3_WAY(dt, paged, name)                                                         \
    __attribute__((noinline)) static void name(const ra__tile *t)                             \
    {                                                                                         \
        RA__FOR_HEAD_TILES_8(head_tile_step, t, RA__DTP(dt, dt, paged), WITH8(dt));           \
    }
#define RA__STEP_E4M3(paged, name)                                                            \
    RA__E4M3_WAY(RA_DTYPE_FP8_E4M3, paged, name##_vbmi)                                       \
    RA__E4M3_WAY(RA_E4M3_NO_VBMI, paged, name##_no_vbmi)                                      \
    static void name(const ra__tile *t)                                                       \
    {                                                                                         \
        if (ra__cpu_has_avx512vbmi())                                                         \
            name##_vbmi(t);                                                                   \
        else                                                                                  \
            name##_no_vbmi(t);                                                                \
    }
RA__STEP_E4M3(0, step_FP8_E4M3_FP8_E4M3)
RA__STEP_E4M3(1, paged_FP8_E4M3_FP8_E4M3)
#undef RA__STEP_E4M3
#undef RA__E4M3_WAY
RA__STEPS(FP8_E5M2, FP8_E5M2)
#undef RA__STEPS
#undef RA__STEP

/* no 8-head tiles (see WITH8): qk_accumulate_dot holds q for 4 heads */
#define RA__STEP_DOT(vd, paged, name)                                                         \
    static void name(const ra__tile *t)                                                       \
    {                                                                                         \
        RA__FOR_HEAD_TILES_8(head_tile_step, t, RA__DTP(KDT_BF16_DOT, RA_DTYPE_##vd, paged), \
                             0);                                                              \
    }
RA__STEP_DOT(F32, 0, step_DOT_F32)
RA__STEP_DOT(F16, 0, step_DOT_F16)
RA__STEP_DOT(BF16, 0, step_DOT_BF16)
RA__STEP_DOT(F32, 1, paged_DOT_F32)
RA__STEP_DOT(F16, 1, paged_DOT_F16)
RA__STEP_DOT(BF16, 1, paged_DOT_BF16)
#undef RA__STEP_DOT

/* The q layout of the pair steps (table field prepare_q): element 32c + 2j + e of a head
 * row at 32c + 16e + j, so that the even and odd elements of each 32 are one vector each, as
 * bf16_split makes the K pairs; the row is padded to whole 32s with zeros. */
static int64_t q_pairs_ld(int64_t D)
{
    return (D + 31) & ~(int64_t)31;
}

static void q_pairs_split(const float *q, int64_t D, float *row)
{
    /* two permutes per 32 elements: this runs for every query row of a call */
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int64_t d = 0; d < D; d += 32) {
        const __m512 a = _mm512_maskz_loadu_ps(lanes(D - d), q + d);
        const __m512 b = D - d > 16 ? _mm512_maskz_loadu_ps(lanes(D - d - 16), q + d + 16)
                                    : _mm512_setzero_ps(); /* no pointer past the row */
        _mm512_storeu_ps(row + d, _mm512_permutex2var_ps(a, even, b));
        _mm512_storeu_ps(row + d + 16, _mm512_permutex2var_ps(a, odd, b));
    }
}

#define RA__AVX512_TABLE                                                                      \
    .id = RA_KERNEL_AVX512, .tile_max = TILE, .default_split = RA_AVX512_DEFAULT_SPLIT,        \
    .all_heads_per_item = true, .needs_unit_d = true, .needs_conv = false,                    \
    .self_prefetch = true, .row_pointers = true,                                               \
    .q_pairs_for_k = {[RA_DTYPE_BF16] = true, [RA_DTYPE_FP8_E4M3] = true},                     \
    .q_ld = q_pairs_ld, .prepare_q = q_pairs_split,                                           \
    .rows = {[RA_DTYPE_F32] = {ra__avx512_rows_F32_F32, ra__avx512_rows_F32_F16,               \
                               ra__avx512_rows_F32_BF16},                                      \
             [RA_DTYPE_F16] = {ra__avx512_rows_F16_F32, ra__avx512_rows_F16_F16,               \
                               ra__avx512_rows_F16_BF16},                                      \
             [RA_DTYPE_BF16] = {ra__avx512_rows_BF16_F32, ra__avx512_rows_BF16_F16,            \
                                ra__avx512_rows_BF16_BF16},                                    \
             [RA_DTYPE_I8] = {[RA_DTYPE_I8] = ra__avx512_rows_I8_I8},                          \
             [RA_DTYPE_FP8_E4M3] = {[RA_DTYPE_FP8_E4M3] = ra__avx512_rows_FP8_E4M3_FP8_E4M3},  \
             [RA_DTYPE_FP8_E5M2] = {[RA_DTYPE_FP8_E5M2] = ra__avx512_rows_FP8_E5M2_FP8_E5M2}}, \
    .rows_serve = ra__avx512_rows_pay,                                                        \
    .step = {[RA_DTYPE_F32] = {step_F32_F32, step_F32_F16, step_F32_BF16},                    \
             [RA_DTYPE_F16] = {step_F16_F32, step_F16_F16, step_F16_BF16},                    \
             [RA_DTYPE_BF16] = {step_BF16_F32, step_BF16_F16, step_BF16_BF16},                \
             [RA_DTYPE_I8] = {[RA_DTYPE_I8] = step_I8_I8},                                    \
             [RA_DTYPE_FP8_E4M3] = {[RA_DTYPE_FP8_E4M3] = step_FP8_E4M3_FP8_E4M3},            \
             [RA_DTYPE_FP8_E5M2] = {[RA_DTYPE_FP8_E5M2] = step_FP8_E5M2_FP8_E5M2}},           \
    .step_rows = {[RA_DTYPE_F32] = {paged_F32_F32, paged_F32_F16, paged_F32_BF16},            \
                  [RA_DTYPE_F16] = {paged_F16_F32, paged_F16_F16, paged_F16_BF16},            \
                  [RA_DTYPE_BF16] = {paged_BF16_F32, paged_BF16_F16, paged_BF16_BF16},        \
                  [RA_DTYPE_I8] = {[RA_DTYPE_I8] = paged_I8_I8},                              \
                  [RA_DTYPE_FP8_E4M3] = {[RA_DTYPE_FP8_E4M3] = paged_FP8_E4M3_FP8_E4M3},      \
                  [RA_DTYPE_FP8_E5M2] = {[RA_DTYPE_FP8_E5M2] = paged_FP8_E5M2_FP8_E5M2}},   \
    .step_wide = {[RA_DTYPE_F32] = {ra__avx512_wide_F32_F32, ra__avx512_wide_F32_F16,          \
                                    ra__avx512_wide_F32_BF16},                                 \
                  [RA_DTYPE_F16] = {ra__avx512_wide_F16_F32, ra__avx512_wide_F16_F16,          \
                                    ra__avx512_wide_F16_BF16},                                 \
                  [RA_DTYPE_BF16] = {ra__avx512_wide_BF16_F32, ra__avx512_wide_BF16_F16,       \
                                     ra__avx512_wide_BF16_BF16}},                              \
    .wide_min_rows = RA_AVX512_WIDE_MIN_ROWS, .wide_ld = ra__avx512_wide_ld,                 \
    .wide_q = ra__avx512_wide_q

const ra__kernel_table ra__kernels_avx512 = {RA__AVX512_TABLE};

/* For CPUs with AVX512-BF16 (dispatch.c checks): the same, plus the q-and-K-bf16 steps. */
const ra__kernel_table ra__kernels_avx512_bf16 = {
    RA__AVX512_TABLE,
    .step_bf16_dot = {step_DOT_F32, step_DOT_F16, step_DOT_BF16},
    .step_bf16_dot_rows = {paged_DOT_F32, paged_DOT_F16, paged_DOT_BF16},
};
