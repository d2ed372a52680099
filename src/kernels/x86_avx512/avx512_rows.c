/* AVX-512 kernel for whole work items in row order (see ra__rows in kernel.h): for each
 * position, the logits of every KV head's G query heads, then the p.V update of every head,
 * so K and V are read front to back like plain arrays.
 *
 * The item is cut into two halves that are walked side by side: each step takes position t of
 * the first half and position t of the second, so every q chunk loaded serves two QKs and
 * every o update adds two p.Vs. That halves the q and o traffic in L1 (the heads' q and o
 * rows are read and written at every position), which the wide groups are bound by; the two
 * halves are far apart in memory, so they are two more plain streams to the prefetchers.
 * (Rows t and t+1, 4 KiB apart, would not be: that read ran at half speed.)
 *
 * Each tile runs in two phases: QK over its K rows, the softmax, then p.V over its V rows, so
 * only one of the kernel's q and o copies is in use at a time. Long phases (256 positions)
 * keep each stream running; interleaving K and V position by position, or four parts instead
 * of two, is slower for wide groups: L1 holds q or o, not both, and not beside four streams
 * (docs/performance.md).
 *
 * Layout of a tile's logits: row i (position i) holds every query head of the item, head
 * j*G + g in lane j*G + g, padded to whole vectors; the first half's rows come first. The
 * online softmax then runs down the columns: one vector holds 16 heads, so max, exp and sum
 * need no shuffles.
 *
 * The q and o accesses hit L1, yet when they run front to back too they disturb the
 * prefetchers that stream K and V (docs/performance.md). So the kernel keeps its own copies of
 * q and o whose 16-float chunks are stored in a scrambled order (see chunk_mult). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "avx512_inline.h"
#include "config.h"
#include "kernels/kernel.h"

/* Where a head row's 16-float chunk c lives in the kernel's copies of q and o: chunk c at
 * slot (c * mult) mod nc, with mult coprime to nc and neither 1 nor -1 (mod nc), so that
 * consecutive chunks are neither adjacent nor a constant stride apart. Rows of up to four
 * chunks, and six, have no such mult and keep their order (mult 1).
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
 * D = 128 (8 chunks, mult 5) unrolls into constant offsets, and other rows step
 * (c * mult) mod nc (a table of slots read in the loops is slower).
 * Unrolled, each chunk's q load is its own instruction with a constant stride from head to
 * head, which the prefetchers learn again: G = 1 keeps the stepped loop, G = 2 gains from
 * unrolling (docs/performance.md). */
enum { ORDER_STEPPED, ORDER_D128 };

/* With ORDER_D128, the row layout as literals, which the compiler folds into the loops. */
RA_INLINE void pin_order(const int order, int64_t *dp, int64_t *mult)
{
    if (order == ORDER_D128) {
        *dp = 128;
        *mult = 5;
    }
}

/* The slot after slot s. */
RA_INLINE int64_t next_slot(int64_t s, int64_t mult, int64_t nc)
{
    s += mult;
    return s >= nc ? s - nc : s;
}

/* out[i] = where item position pos0 + i of K (or V: base, st, sp of V) starts, for i < n:
 * for a paged cache one division, then row by row through the pages. */
static void rows_from(const ra__rows *r, const void *base, int64_t st, int64_t sp, int64_t pos0,
                      int64_t n, size_t es, const char **out)
{
    if (!r->pages) {
        for (int64_t i = 0; i < n; i++)
            out[i] = (const char *)base + (size_t)((pos0 + i) * st) * es;
        return;
    }
    const int64_t t = r->t_first + pos0;
    const int32_t *page = r->pages + t / r->page_size;
    int64_t in = t % r->page_size;
    for (int64_t i = 0; i < n; i++) {
        out[i] = (const char *)base + (size_t)(*page * sp + in * st) * es;
        if (++in == r->page_size) {
            in = 0;
            page++;
        }
    }
}

/* Prefetches the lines of bytes bytes at p (NULL: nothing): one head's row of a later
 * position beside that head's work, or a whole position's row at once. */
RA_INLINE void prefetch_head_row(const char *p, int64_t bytes)
{
    if (!p)
        return;
    for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)63; a < (uintptr_t)p + (uintptr_t)bytes; a += 64)
        __builtin_prefetch((const char *)a, 0, RA_PF_HINT);
}

/* Prefetches every head's row at the position row p (NULL: nothing) at once, as the one run
 * of lines from the first head's row to the last's end (heads sh elements apart). */
RA_INLINE void prefetch_heads(const ra__rows *r, const char *p, int64_t sh, size_t es)
{
    prefetch_head_row(p, ((r->Hkv - 1) * sh + r->D) * (int64_t)es);
}

/* How the walk prefetches K or V (see config.h): at all, head by head beside the work
 * (spread) or a position at once, and which rows of a page (its first head_rows). */
typedef struct pf_plan {
    bool on, spread;
    int64_t head_rows, sh;
    size_t es;
} pf_plan;

static pf_plan plan_prefetch(const ra__rows *r, int64_t sh, size_t es)
{
    const int64_t row_bytes = r->Hkv * r->D * (int64_t)es;
    const int64_t head = (RA_AVX512_ROWS_PF_HEAD_BYTES + row_bytes - 1) / row_bytes;
    const bool spread = r->D * (int64_t)es >= RA_AVX512_ROWS_SPREAD_BYTES;
    /* a contiguous cache gains from prefetches only where they spread, with one query head
     * per KV head (docs/performance.md) */
    return (pf_plan){.on = r->pages || (spread && r->G == 1), .spread = spread,
                     .head_rows = head > 1 ? head : 1, .sh = sh, .es = es};
}

/* The prefetch targets of a position: rows j of both halves (at0, at1: rows known up to n0,
 * n1; sequence positions pos and pos + half), when the plan prefetches them. Spread: returned
 * in out for the position's loop (NULL: no target); else prefetched here at once. */
RA_INLINE const char *const *position_prefetch(const ra__rows *r, const pf_plan *pp,
                                               const char *const *at0, int64_t n0,
                                               const char *const *at1, int64_t n1, int64_t j,
                                               int64_t pos, int64_t half, const char *out[2])
{
    if (!pp->on)
        return NULL;
    out[0] = j < n0 && (!r->pages || pos % r->page_size < pp->head_rows) ? at0[j] : NULL;
    out[1] = j < n1 && (!r->pages || (pos + half) % r->page_size < pp->head_rows) ? at1[j]
                                                                                     : NULL;
    if (!pp->spread) {
        prefetch_heads(r, out[0], pp->sh, pp->es);
        prefetch_heads(r, out[1], pp->sh, pp->es);
        return NULL;
    }
    return out[0] || out[1] ? out : NULL;
}

/* The first line of the K and V rows of item position pos (if < end; the item's first head),
 * so that the page walks of the memory pages those rows start in end before the rows are
 * prefetched line by line or streamed: every row of a paged cache; of a contiguous one, the
 * rows of x with prime_x (see walk_halves) that start a memory page. */
RA_INLINE void translate_position(const ra__rows *r, int64_t pos, int64_t end, size_t kes,
                                  size_t ves, bool prime_k, bool prime_v)
{
    if (pos >= end)
        return;
    const char *k, *v;
    rows_from(r, r->k, r->k_st, r->k_sp, pos, 1, kes, &k);
    rows_from(r, r->v, r->v_st, r->v_sp, pos, 1, ves, &v);
    const uintptr_t ka = (uintptr_t)k, va = (uintptr_t)v;
    const size_t kst = (size_t)r->k_st * kes, vst = (size_t)r->v_st * ves;
    if (r->pages || (prime_k && ((ka ^ (ka - kst)) >> 12)))
        __builtin_prefetch(k, 0, RA_PF_HINT);
    if (r->pages || (prime_v && ((va ^ (va - vst)) >> 12)))
        __builtin_prefetch(v, 0, RA_PF_HINT);
}

/* Logits of every head at positions pos[0..NP) (NP = 1 or 2) into row[p][0 .. hp): register
 * tiles of 16/(G*NP) KV heads x G query heads x NP positions, each head's K rows read front to
 * back, then one transpose-reduction. qs is q in chunk order, dp floats per head. kpf: two
 * later rows (or NULL) whose heads are prefetched beside the same heads' work, or NULL. */
RA_INLINE void qk_position(const ra__rows *r, const float *qs, int64_t dp, int64_t mult,
                           const char *const kpos[2], const char *const *kpf,
                           float *const row[2], const int G, const int NP, const int kdt,
                           const int order)
{
    const int HPV = 16 / (G * NP); /* KV heads per vector of logits */
    const size_t es = RA_ES(kdt);
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
            const char *krow[2];
            for (int p = 0; p < NP; p++)
                krow[p] = kpos[p] + (size_t)((jb + jt) * r->k_sh) * es;
            for (int p = 0; kpf && p < 2; p++)
                prefetch_head_row(kpf[p] ? kpf[p] + (size_t)((jb + jt) * r->k_sh) * es : NULL,
                                  D * (int64_t)es);
            const float *q = qs + (jb + jt) * G * dp;
            __m512 a[2][4];
            for (int p = 0; p < NP; p++)
                for (int g = 0; g < G; g++)
                    a[p][g] = _mm512_setzero_ps();
            int64_t sl = 0;
            for (int64_t d = 0; d < D; d += 16, sl = next_slot(sl, mult, dp / 16)) {
                const __mmask16 mk = d < Dw ? (__mmask16)0xffff : tail; /* q pads with 0 */
                __m512 kv[2];
                for (int p = 0; p < NP; p++)
                    kv[p] = load16(krow[p], d, mk, kdt);
                const float *qc = q + 16 * sl;
                for (int g = 0; g < G; g++) {
                    const __m512 qv = _mm512_load_ps(qc + g * dp);
                    for (int p = 0; p < NP; p++)
                        a[p][g] = _mm512_fmadd_ps(qv, kv[p], a[p][g]);
                }
            }
            for (int p = 0; p < NP; p++)
                for (int g = 0; g < G; g++)
                    acc[p * (16 / NP) + jt * G + g] = a[p][g];
        }
        const __m512 x = _mm512_mul_ps(sum16(acc), scale);
        if (NP == 1) {
            _mm512_store_ps(row[0] + jb * G, x);
        } else { /* lanes 0-7: the first position, 8-15: the second */
            _mm256_store_ps(row[0] + jb * G, _mm512_castps512_ps256(x));
            _mm256_store_ps(row[1] + jb * G, _mm512_extractf32x8_ps(x, 1));
        }
    }
}

/* os[h] += the sum over positions pos[0..NP) (NP = 1 or 2) of p[h] * v_row(h), p from logit
 * row row[p], for every head h of the item (os: o in chunk order; padding lanes gain p * 0).
 * vpf as kpf of qk_position. */
RA_INLINE void pv_position(const ra__rows *r, float *os, int64_t dp, int64_t mult,
                           const char *const vpos[2], const char *const *vpf,
                           const float *const row[2], const int G, const int NP, const int vdt,
                           const int order)
{
    const size_t es = RA_ES(vdt);
    const int64_t D = order == ORDER_D128 ? 128 : r->D, Dw = D & ~(int64_t)15;
    pin_order(order, &dp, &mult);
    const __mmask16 tail = lanes(D - Dw);
    for (int64_t j = 0; j < r->Hkv; j++) {
        const char *vrow[2];
        __m512 pw[2][4];
        for (int p = 0; vpf && p < 2; p++)
            prefetch_head_row(vpf[p] ? vpf[p] + (size_t)(j * r->v_sh) * es : NULL,
                              D * (int64_t)es);
        for (int p = 0; p < NP; p++) {
            vrow[p] = vpos[p] + (size_t)(j * r->v_sh) * es;
            for (int g = 0; g < G; g++)
                pw[p][g] = _mm512_set1_ps(row[p][j * G + g]);
        }
        float *o = os + j * G * dp;
        int64_t sl = 0;
        for (int64_t d = 0; d < D; d += 16, sl = next_slot(sl, mult, dp / 16)) {
            __m512 vv[2];
            for (int p = 0; p < NP; p++)
                vv[p] = load16(vrow[p], d, d < Dw ? 0xffff : tail, vdt);
            float *oc = o + 16 * sl;
            for (int g = 0; g < G; g++) {
                __m512 x = _mm512_load_ps(oc + g * dp);
                for (int p = 0; p < NP; p++)
                    x = _mm512_fmadd_ps(pw[p][g], vv[p], x);
                _mm512_store_ps(oc + g * dp, x);
            }
        }
    }
}

/* The score modifiers (ra__rows) on n logit rows (ld floats apart) of item positions pos0 + i,
 * every head in its lane. */
static void modify_rows(const ra__rows *r, float *s, int64_t n, int64_t ld, int64_t pos0)
{
    const int64_t hq = r->Hkv * r->G;
    for (int64_t h = 0; h < hq; h += 16) {
        const __m512 slope = r->slopes ? _mm512_maskz_loadu_ps(lanes(hq - h), r->slopes + h)
                                       : _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i++) {
            const __m512 dist = _mm512_set1_ps((float)(r->last_pos - r->t_first - pos0 - i));
            float *x = s + i * ld + h;
            _mm512_store_ps(x, modify16(_mm512_load_ps(x), r->softcap, slope, dist,
                                        r->slopes != NULL));
        }
    }
}

/* Quantized K or V: n rows (ld floats apart) of item positions pos0 + i, every head in its
 * lane, times the scale of their (position, KV head) at scale (st, sh, sp as in ra__rows). */
static void scale_rows(const ra__rows *r, float *s, int64_t n, int64_t ld, int64_t pos0,
                       const float *scale, int64_t st, int64_t sh, int64_t sp)
{
    const int64_t hq = r->Hkv * r->G;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int shift = r->G == 2 ? 1 : 0; /* lane h reads KV head h / G (G is 1 or 2 here) */
    int64_t t = r->t_first + pos0, in = r->pages ? t % r->page_size : 0;
    const int32_t *page = r->pages ? r->pages + t / r->page_size : NULL;
    for (int64_t i = 0; i < n; i++) {
        const float *row = scale + (page ? *page * sp + in * st : (pos0 + i) * st);
        for (int64_t h = 0; h < hq; h += 16) {
            const __mmask16 mk = lanes(hq - h);
            __m512 f;
            if (sh == 1) { /* the heads' scales side by side: a load, spread over G lanes */
                const __m512 x = _mm512_maskz_loadu_ps(lanes((hq - h + r->G - 1) >> shift),
                                                       row + (h >> shift));
                f = shift ? _mm512_permutexvar_ps(_mm512_srli_epi32(lane, 1), x) : x;
            } else {
                const __m512i head = _mm512_srli_epi32(
                    _mm512_add_epi32(lane, _mm512_set1_epi32((int)h)), (unsigned)shift);
                const __m512i idx = _mm512_mullo_epi32(head, _mm512_set1_epi32((int)sh));
                f = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, idx, row, 4);
            }
            float *x = s + i * ld + h;
            _mm512_store_ps(x, _mm512_mask_mul_ps(_mm512_load_ps(x), mk, _mm512_load_ps(x), f));
        }
        if (page && ++in == r->page_size) {
            in = 0;
            page++;
        }
    }
}

/* The online-softmax update of every head on a tile of n logit rows (ld floats apart), by the
 * rule of softmax16_begin/_end: the rows become p = exp(s - m_new), m and l are updated and
 * alpha goes to alpha[h]. */
static void softmax_rows(const ra__rows *r, float *s, int64_t n, int64_t ld, float *alpha)
{
    const int64_t hq = r->Hkv * r->G;
    for (int64_t h = 0; h < hq; h += 16) {
        const __mmask16 mk = lanes(hq - h);
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int64_t i = 0; i < n; i++)
            mx = nanmax(mx, _mm512_load_ps(s + i * ld + h));
        const softmax16 st =
            softmax16_begin(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mk, r->m + h), mx);
        __m512 sum = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i++) {
            const __m512 p = exp16(_mm512_sub_ps(_mm512_load_ps(s + i * ld + h), st.m_sub));
            _mm512_store_ps(s + i * ld + h, p);
            sum = _mm512_add_ps(sum, p);
        }
        __m512 m_new, l_new;
        const __m512 a =
            softmax16_end(&st, _mm512_maskz_loadu_ps(mk, r->l + h), sum, &m_new, &l_new);
        _mm512_mask_storeu_ps(r->m + h, mk, m_new);
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
             d += 16, sl = next_slot(sl, mult, dp / 16))
            _mm512_store_ps(chunks + h * dp + 16 * sl,
                            _mm512_maskz_loadu_ps(lanes(D - d), rows + h * D + d));
}

static void from_chunks(const float *chunks, float *rows, int64_t hq, int64_t D, int64_t dp,
                        int64_t mult)
{
    for (int64_t h = 0; h < hq; h++)
        for (int64_t d = 0, sl = 0; d < dp;
             d += 16, sl = next_slot(sl, mult, dp / 16))
            _mm512_mask_storeu_ps(rows + h * D + d, lanes(D - d),
                                  _mm512_load_ps(chunks + h * dp + 16 * sl));
}

/* The kernel's view of its scratch (laid out as ra__rows_scratch_floats says). */
typedef struct rows_work {
    int64_t hq, hp, dp; /* query heads; floats per logit row and per q/o head row */
    float *logits;      /* [tile][hp] */
    float *alpha;       /* [hp] */
    const float *qs;    /* [hq][dp] q in chunk order (or the caller's q, see rows_item) */
    float *os;          /* [hq][dp] o likewise */
    int64_t mult;       /* the chunk order (chunk_mult) */
} rows_work;

/* The walk (see the top of this file): positions [0, half) and [half, T) side by side, a
 * tile of up to tile/2 positions of each per phase. The second half is never longer, so the
 * first half's last position of an odd T goes alone. */
RA_INLINE void walk_halves(const ra__rows *r, const rows_work *w, const int G, const int kdt,
                           const int vdt, const int order)
{
    const int64_t half = (r->T + 1) / 2, per = r->tile / 2 > 1 ? r->tile / 2 : 1;
    const size_t kes = RA_ES(kdt), ves = RA_ES(vdt);
    float *s = w->logits;
    /* The rows of a phase's positions, [half][position], K then V, and when it prefetches
     * (config.h) the AHEAD positions after them. */
    enum { AHEAD = RA_AVX512_ROWS_AHEAD, TRANSLATE = RA_AVX512_ROWS_TRANSLATE };
    const char *at[2][RA__ROWS_TILE_MAX / 2 + AHEAD];
    const pf_plan kp = plan_prefetch(r, r->k_sh, kes), vp = plan_prefetch(r, r->v_sh, ves);
    const int64_t ahead = kp.on || vp.on ? AHEAD : 0;
    /* Page walks ahead: a paged cache's rows; a contiguous cache's where rows lie 512 bytes or
     * more apart and the walk does not prefetch them itself (then they cost, docs/performance.md). */
    const bool prime_k = !kp.on && (size_t)r->k_st * kes >= RA_TRANSLATE_MIN_ROW;
    const bool prime_v = !vp.on && (size_t)r->v_st * ves >= RA_TRANSLATE_MIN_ROW;
    const bool translate = r->pages || prime_k || prime_v;
    for (int64_t t0 = 0; t0 < half; t0 += per) {
        const int64_t na = half - t0 < per ? half - t0 : per; /* first half's positions */
        const int64_t rest = r->T - half - t0;
        const int64_t nb = rest < na ? rest : na; /* second half's: rows na .. na+nb-1 */
        /* rows known per half, with the look-ahead */
        const int64_t ka = half - t0 < na + ahead ? half - t0 : na + ahead;
        const int64_t kb = rest < nb + ahead ? (rest > 0 ? rest : 0) : nb + ahead;
        rows_from(r, r->k, r->k_st, r->k_sp, t0, ka, kes, at[0]);
        rows_from(r, r->k, r->k_st, r->k_sp, half + t0, kb, kes, at[1]);
        for (int64_t i = 0; i < na; i++) {
            if (translate) {
                translate_position(r, t0 + i + TRANSLATE, half, kes, ves, prime_k, prime_v);
                translate_position(r, half + t0 + i + TRANSLATE, r->T, kes, ves, prime_k,
                                   prime_v);
            }
            const char *targets[2];
            const char *const *kpf = position_prefetch(r, &kp, at[0], ka, at[1], kb, i + ahead,
                                                       r->t_first + t0 + i + ahead, half, targets);
            const char *const kpos[2] = {at[0][i], i < nb ? at[1][i] : at[0][i]};
            float *const row[2] = {s + i * w->hp, s + (na + i) * w->hp};
            if (i < nb)
                qk_position(r, w->qs, w->dp, w->mult, kpos, kpf, row, G, 2, kdt, order);
            else
                qk_position(r, w->qs, w->dp, w->mult, kpos, kpf, row, G, 1, kdt, order);
        }
        if (r->k_scale) { /* quantized K: the logits times their scales, first */
            scale_rows(r, s, na, w->hp, t0, r->k_scale, r->ks_st, r->ks_sh, r->ks_sp);
            scale_rows(r, s + na * w->hp, nb, w->hp, half + t0, r->k_scale, r->ks_st, r->ks_sh,
                       r->ks_sp);
        }
        if (r->softcap != 0.0f || r->slopes) { /* the halves' rows: positions t0.., half+t0.. */
            modify_rows(r, s, na, w->hp, t0);
            modify_rows(r, s + na * w->hp, nb, w->hp, half + t0);
        }
        softmax_rows(r, s, na + nb, w->hp, w->alpha);
        if (r->v_scale) { /* quantized V: p times the scales, after l summed p */
            scale_rows(r, s, na, w->hp, t0, r->v_scale, r->vs_st, r->vs_sh, r->vs_sp);
            scale_rows(r, s + na * w->hp, nb, w->hp, half + t0, r->v_scale, r->vs_st, r->vs_sh,
                       r->vs_sp);
        }
        rescale_o(w->os, w->hq, w->dp, w->alpha);
        rows_from(r, r->v, r->v_st, r->v_sp, t0, ka, ves, at[0]);
        rows_from(r, r->v, r->v_st, r->v_sp, half + t0, kb, ves, at[1]);
        for (int64_t i = 0; i < na; i++) {
            const char *targets[2];
            const char *const *vpf = position_prefetch(r, &vp, at[0], ka, at[1], kb, i + ahead,
                                                       r->t_first + t0 + i + ahead, half, targets);
            const char *const vpos[2] = {at[0][i], i < nb ? at[1][i] : at[0][i]};
            const float *const row[2] = {s + i * w->hp, s + (na + i) * w->hp};
            if (i < nb)
                pv_position(r, w->os, w->dp, w->mult, vpos, vpf, row, G, 2, vdt, order);
            else
                pv_position(r, w->os, w->dp, w->mult, vpos, vpf, row, G, 1, vdt, order);
        }
    }
}

RA_INLINE void rows_item(const ra__rows *r, const int G, const int kdt, const int vdt)
{
    rows_work w;
    w.hq = r->Hkv * G;
    w.hp = (w.hq + 15) & ~(int64_t)15;
    w.dp = (r->D + 15) & ~(int64_t)15;
    w.logits = r->s;
    w.alpha = r->s + RA__ROWS_TILE_MAX * w.hp;
    float *const q_copy = w.alpha + w.hp, *const o_copy = q_copy + w.hq * w.dp;
    w.mult = chunk_mult(w.dp / 16);
    /* in feature order and whole vectors, q and o are used where they are */
    const bool direct = w.mult == 1 && w.dp == r->D;
    w.qs = direct ? r->q : q_copy;
    w.os = direct ? r->o : o_copy;
    if (!direct) {
        to_chunks(r->q, q_copy, w.hq, r->D, w.dp, w.mult);
        to_chunks(r->o, o_copy, w.hq, r->D, w.dp, w.mult);
    }
    if (G > 1 && w.dp == 128 && r->D == 128 && w.mult == 5)
        walk_halves(r, &w, G, kdt, vdt, ORDER_D128);
    else
        walk_halves(r, &w, G, kdt, vdt, ORDER_STEPPED);
    if (!direct)
        from_chunks(w.os, r->o, w.hq, r->D, w.dp, w.mult);
}

/* One entry per K/V dtype pair, specialized only for the G that ra__avx512_rows_pay lets
 * through (the core never calls it with another). */
#define RA__ROWS(kd, vd)                                                                      \
    void ra__avx512_rows_##kd##_##vd(const ra__rows *r)                                       \
    {                                                                                         \
        if (RA_DTYPE_##kd == RA_DTYPE_F32 && RA_DTYPE_##vd == RA_DTYPE_F32 && r->G == 4)     \
            rows_item(r, 4, RA_DTYPE_##kd, RA_DTYPE_##vd);                                    \
        else if (r->G == 2)                                                                   \
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
RA__ROWS(I8, I8)
RA__ROWS(FP8_E4M3, FP8_E4M3)
RA__ROWS(FP8_E5M2, FP8_E5M2)
#undef RA__ROWS
