/* AVX-512 kernel for whole work items in row order (see ra__rows in kernel.h): for each
 * position, the logits of every KV head's G query heads, then the p.V update of every head,
 * so K and V are read front to back like two plain arrays. While the kernel's q and o copies
 * are small, the p.V of a tile runs interleaved with the QK of the next one, position by
 * position, so the two streams advance together; past a third of L1, a tile's QK runs over
 * K and then its p.V over V, so that only one of the copies is in use at a time (see phased).
 *
 * Layout of a tile's logits: row i (position i) holds every query head of the item, head
 * j*G + g in lane j*G + g, padded to whole vectors. The online softmax then runs down the
 * columns: one vector holds 16 heads, so max, exp and sum need no shuffles.
 *
 * The output of every head lives in memory (L1) and each position's update loads and stores
 * it; holding it in registers would need a walk of one head at a time again. Those q and o
 * accesses hit L1, yet when they run front to back too they disturb the prefetchers that
 * stream K and V (Zen 4: MHA D=128 f32 ran at 66% of the read bandwidth, about 100% with
 * them out of order). So the kernel keeps its own copies of q and o whose 16-float chunks
 * are stored in a scrambled order (see chunk_mult), and reads K and V front to back. */
#include <math.h>
#include <stdbool.h>

#include "avx512_inline.h"
#include "kernel.h"

/* Where a head row's 16-float chunk c lives in the kernel's copies of q and o: chunk c at
 * slot (c * mult) mod nc, with mult coprime to nc and neither 1 nor -1 (mod nc), so that
 * consecutive chunks are neither adjacent nor a constant stride apart. Rows of up to four
 * chunks, and six, have no such mult and keep their order (mult 1; D=64 measured no loss).
 * Returns mult mod nc. */
static int64_t chunk_mult(int64_t nc)
{
    static const int64_t candidates[] = {5, 3, 7, 11, 13, 17, 19, 23};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        int64_t m = candidates[i] % nc, a = nc, b = m;
        while (b) { /* gcd(nc, m) */
            int64_t t = a % b;
            a = b;
            b = t;
        }
        if (a == 1 && m != 1 && m != nc - 1)
            return m;
    }
    return 1;
}

/* How the hot loops find a chunk's slot; a literal argument, so each case compiles on its own:
 * rows in order just count, D = 128 (8 chunks, mult 5) unrolls into constant offsets, and
 * other rows step (c * mult) mod nc. (A table of slots read in the loops measured slower.)
 * Unrolled, each chunk's q load is its own instruction with a constant stride from head to
 * head, which the prefetchers learn again: G = 1 keeps the stepped loop (MHA D=128 f32, cold:
 * 4.5 ms stepped, 7.3 ms unrolled), G = 2 gains from unrolling (5.4 -> 5.2 ms, and 80 -> 55
 * cycles per position and KV head in cache). */
enum { ORDER_AS_IS, ORDER_STEPPED, ORDER_D128 };

/* With ORDER_D128, the row layout as literals, which the compiler folds into the loops. */
RA_INLINE void pin_order(const int order, int64_t *dp, int64_t *mult)
{
    if (order == ORDER_D128) {
        *dp = 128;
        *mult = 5;
    }
}

/* The slot after slot s. */
RA_INLINE int64_t next_slot(int64_t s, int64_t mult, int64_t nc, const int order)
{
    if (order == ORDER_AS_IS)
        return s + 1;
    s += mult;
    return s >= nc ? s - nc : s;
}

/* Logits of every head at one position into row[0 .. hp): register tiles of 16/G KV heads x
 * G query heads, each head's K row read front to back, then one transpose-reduction. qs is q
 * in chunk order, dp floats per head. */
RA_INLINE void qk_position(const ra__rows *r, const float *qs, int64_t dp, int64_t mult,
                           const char *kpos, float *row, const int G, const int kdt,
                           const int order)
{
    const int HPV = 16 / G; /* KV heads per vector of logits */
    const size_t es = kdt == RA_DTYPE_F32 ? 4 : 2;
    const int64_t D = order == ORDER_D128 ? 128 : r->D, Dw = D & ~(int64_t)15;
    pin_order(order, &dp, &mult);
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
            int64_t sl = 0;
            for (int64_t d = 0; d < Dw; d += 16, sl = next_slot(sl, mult, dp / 16, order)) {
                const __m512 kv = load16(krow, d, 0xffff, kdt);
                const float *qc = q + 16 * sl;
                for (int g = 0; g < G; g++)
                    a[g] = _mm512_fmadd_ps(_mm512_load_ps(qc + g * dp), kv, a[g]);
            }
            if (tail) { /* q's padding lanes are 0 */
                const __m512 kv = load16(krow, Dw, tail, kdt);
                const float *qc = q + 16 * sl;
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
RA_INLINE void pv_position(const ra__rows *r, float *os, int64_t dp, int64_t mult,
                           const char *vpos, const float *row, const int G, const int vdt,
                           const int order)
{
    const size_t es = vdt == RA_DTYPE_F32 ? 4 : 2;
    const int64_t D = order == ORDER_D128 ? 128 : r->D, Dw = D & ~(int64_t)15;
    pin_order(order, &dp, &mult);
    const __mmask16 tail = lanes(D - Dw);
    for (int64_t j = 0; j < r->Hkv; j++) {
        const char *vrow = vpos + (size_t)(j * r->v_sh) * es;
        float *o = os + j * G * dp;
        __m512 p[4];
        for (int g = 0; g < G; g++)
            p[g] = _mm512_set1_ps(row[j * G + g]);
        int64_t sl = 0;
        for (int64_t d = 0; d < D; d += 16, sl = next_slot(sl, mult, dp / 16, order)) {
            const __m512 vv = load16(vrow, d, d < Dw ? 0xffff : tail, vdt);
            float *oc = o + 16 * sl;
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
                      int64_t mult)
{
    for (int64_t h = 0; h < hq; h++)
        for (int64_t d = 0, sl = 0; d < dp;
             d += 16, sl = next_slot(sl, mult, dp / 16, ORDER_STEPPED))
            _mm512_store_ps(chunks + h * dp + 16 * sl,
                            _mm512_maskz_loadu_ps(lanes(D - d), rows + h * D + d));
}

static void from_chunks(const float *chunks, float *rows, int64_t hq, int64_t D, int64_t dp,
                        int64_t mult)
{
    for (int64_t h = 0; h < hq; h++)
        for (int64_t d = 0, sl = 0; d < dp;
             d += 16, sl = next_slot(sl, mult, dp / 16, ORDER_STEPPED))
            _mm512_mask_storeu_ps(rows + h * D + d, lanes(D - d),
                                  _mm512_load_ps(chunks + h * dp + 16 * sl));
}

/* Whether to run a tile's QK over K, then its p.V over V (phased), rather than the p.V of one
 * tile beside the QK of the next, position by position. Interleaved keeps the two streams
 * together and measured faster while the q and o copies are small (MHA D=64: 2.4 against
 * 2.8 ms); once they pass a third of L1, the phases, which need only one of the two at a
 * time, win (GQA 16/8 heads, D=128: 5.6 against 6.3 ms). */
static bool phased(int64_t hq, int64_t dp)
{
#if defined(RA_ROWS_PHASED) /* build knobs, for measuring one walk against the other */
    return true;
#elif defined(RA_ROWS_INTERLEAVED)
    return false;
#else
    return 2 * hq * dp * (int64_t)sizeof(float) > 12 * 1024;
#endif
}

/* The kernel's view of its scratch (laid out as ra__rows_scratch_floats says). */
typedef struct rows_work {
    int64_t hq, hp, dp; /* query heads; floats per logit row and per q/o head row */
    float *logits[2];   /* [tile_max][hp] each */
    float *alpha;       /* [hp] */
    const float *qs;    /* [hq][dp] q in chunk order (or the caller's q, see rows_item) */
    float *os;          /* [hq][dp] o likewise */
    int64_t mult;       /* the chunk order (chunk_mult) */
} rows_work;

RA_INLINE void qk_rows(const ra__rows *r, const rows_work *w, int64_t t0, int64_t i0, int64_t n,
                       float *s, const int G, const int kdt, const int order)
{
    const size_t es = kdt == RA_DTYPE_F32 ? 4 : 2;
    for (int64_t i = i0; i < n; i++)
        qk_position(r, w->qs, w->dp, w->mult,
                    (const char *)r->k + (size_t)((t0 + i) * r->k_st) * es, s + i * w->hp, G, kdt,
                    order);
}

RA_INLINE void pv_rows(const ra__rows *r, const rows_work *w, int64_t t0, int64_t i0, int64_t n,
                       const float *p, const int G, const int vdt, const int order)
{
    const size_t es = vdt == RA_DTYPE_F32 ? 4 : 2;
    for (int64_t i = i0; i < n; i++)
        pv_position(r, w->os, w->dp, w->mult,
                    (const char *)r->v + (size_t)((t0 + i) * r->v_st) * es, p + i * w->hp, G, vdt,
                    order);
}

/* Each tile: QK over its K rows, the softmax, then p.V over its V rows. */
RA_INLINE void walk_phased(const ra__rows *r, const rows_work *w, const int G, const int kdt,
                           const int vdt, const int order)
{
    for (int64_t t0 = 0; t0 < r->T; t0 += r->tile) {
        const int64_t n = r->T - t0 < r->tile ? r->T - t0 : r->tile;
        qk_rows(r, w, t0, 0, n, w->logits[0], G, kdt, order);
        softmax_rows(r, w->logits[0], n, w->hp, w->alpha);
        rescale_o(w->os, w->hq, w->dp, w->alpha);
        pv_rows(r, w, t0, 0, n, w->logits[0], G, vdt, order);
    }
}

/* The p.V of each tile runs beside the QK of the next, position by position (double-buffered
 * logits), so K and V rows are read together. */
RA_INLINE void walk_interleaved(const ra__rows *r, const rows_work *w, const int G, const int kdt,
                                const int vdt, const int order)
{
    int64_t prev_t0 = 0, prev_n = 0; /* the tile whose p.V is pending */
    int cur = 0;
    /* one pass past the last tile (n = 0) drains its p.V; qk_rows and pv_rows each appear
     * once, which keeps the inlined code (and its compile time) small */
    for (int64_t t0 = 0; t0 < r->T || prev_n; t0 += r->tile, cur ^= 1) {
        const int64_t n = r->T - t0 < r->tile ? (r->T > t0 ? r->T - t0 : 0) : r->tile;
        float *s = w->logits[cur];
        const float *p = w->logits[cur ^ 1];
        if (prev_n)
            rescale_o(w->os, w->hq, w->dp, w->alpha);
        const int64_t steps = n > prev_n ? n : prev_n;
        for (int64_t i = 0; i < steps; i++) {
            qk_rows(r, w, t0, i, i < n ? i + 1 : i, s, G, kdt, order);
            pv_rows(r, w, prev_t0, i, i < prev_n ? i + 1 : i, p, G, vdt, order);
        }
        if (n)
            softmax_rows(r, s, n, w->hp, w->alpha);
        prev_t0 = t0;
        prev_n = n;
    }
}

RA_INLINE void rows_item(const ra__rows *r, const int G, const int kdt, const int vdt)
{
    rows_work w;
    w.hq = r->Hkv * G;
    w.hp = (w.hq + 15) & ~(int64_t)15;
    w.dp = (r->D + 15) & ~(int64_t)15;
    w.logits[0] = r->s;
    w.logits[1] = r->s + RA__ROWS_TILE_MAX * w.hp;
    w.alpha = r->s + 2 * RA__ROWS_TILE_MAX * w.hp;
    float *const q_copy = w.alpha + w.hp, *const o_copy = q_copy + w.hq * w.dp;
    w.mult = chunk_mult(w.dp / 16);
    const int order = w.mult == 1 ? ORDER_AS_IS
                      : G > 1 && w.dp == 128 && r->D == 128 && w.mult == 5 ? ORDER_D128
                                                                           : ORDER_STEPPED;
    /* in feature order and whole vectors, q and o are used where they are */
    const bool direct = order == ORDER_AS_IS && w.dp == r->D;
    w.qs = direct ? r->q : q_copy;
    w.os = direct ? r->o : o_copy;
    if (!direct) {
        to_chunks(r->q, q_copy, w.hq, r->D, w.dp, w.mult);
        to_chunks(r->o, o_copy, w.hq, r->D, w.dp, w.mult);
    }
    const bool ph = phased(w.hq, w.dp);
    switch (order) {
    case ORDER_AS_IS:
        ph ? walk_phased(r, &w, G, kdt, vdt, ORDER_AS_IS)
           : walk_interleaved(r, &w, G, kdt, vdt, ORDER_AS_IS);
        break;
    case ORDER_D128:
        ph ? walk_phased(r, &w, G, kdt, vdt, ORDER_D128)
           : walk_interleaved(r, &w, G, kdt, vdt, ORDER_D128);
        break;
    default:
        ph ? walk_phased(r, &w, G, kdt, vdt, ORDER_STEPPED)
           : walk_interleaved(r, &w, G, kdt, vdt, ORDER_STEPPED);
        break;
    }
    if (!direct)
        from_chunks(w.os, r->o, w.hq, r->D, w.dp, w.mult);
}

/* Where row order measured faster than the head-by-head walk (Zen 4, one core, cold, a
 * [1,16384,8,D] cache, medians of 3; share of the same-run read bandwidth):
 * - G = 1: f32 D=128 6.5 -> 4.7 ms (73% -> about 100%), D=64 3.2 -> 2.4 ms; bf16 and f16
 *   D=128 3.0 -> 2.7 ms and 3.4 -> 2.7 ms.
 * - G = 2 with f32 K and V: 7.2 -> 5.2 ms (66% -> 89%). With 16-bit K or V the widening
 *   makes the walk compute-bound and it loses (bf16 3.2 -> 3.4 ms, f16 3.1 -> 3.3 ms).
 * - G = 4: at 32 query heads of D=128 the q and o copies fill L1, and each position reads and
 *   writes 4 KiB of o per KV head: f32 breaks even (7.0 against 7.3 ms), bf16 and f16 lose
 *   1.5-1.7x. */
bool ra__avx512_rows_serve(int64_t G, ra_dtype k, ra_dtype v)
{
    return G == 1 || (G == 2 && k == RA_DTYPE_F32 && v == RA_DTYPE_F32);
}

/* One entry per K/V dtype pair, specialized only for the G that ra__avx512_rows_serve lets
 * through (the core never calls it with another). */
#define RA__ROWS(kd, vd)                                                                      \
    void ra__avx512_rows_##kd##_##vd(const ra__rows *r)                                       \
    {                                                                                         \
        if (RA_DTYPE_##kd == RA_DTYPE_F32 && RA_DTYPE_##vd == RA_DTYPE_F32 && r->G == 2)     \
            rows_item(r, 2, RA_DTYPE_##kd, RA_DTYPE_##vd);                                    \
        else                                                                                  \
            rows_item(r, 1, RA_DTYPE_##kd, RA_DTYPE_##vd);                                    \
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

