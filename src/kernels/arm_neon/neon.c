/* NEON kernels for arm64 (Advanced SIMD is part of the AArch64 baseline, so this file needs no
 * flags and runs on every arm64 CPU). The three-step scheme of the AVX2 kernels with 4-lane
 * vectors and the 32 registers AArch64 has:
 *   QK: GT heads x TT positions (GT*TT = 8 accumulators), one across-lanes add per logit;
 *   PV: GT heads x 16 features x U positions in flight (16 accumulators).
 * K/V dtypes f32, f16, bf16 and i8 (the stored values; the softmax step applies the scales);
 * the fp8 formats go to the portable kernel. The core issues the prefetches. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels/exp_poly.h"
#include "kernels/kernel.h"
#include "config.h"

#define RA_INLINE static inline __attribute__((always_inline))

RA_INLINE size_t elem_size(const int dt)
{
    return dt == RA_DTYPE_F32 ? 4 : dt == RA_DTYPE_I8 ? 1 : 2;
}

/* 4 elements at element index i as f32; n < 4 reads only n of them (the rest are 0). */
RA_INLINE float32x4_t load4(const void *base, int64_t i, int64_t n, const int dt)
{
    if (n <= 0) /* past the row: nothing to read (and no pointer past it is formed) */
        return vdupq_n_f32(0.0f);
    const size_t es = elem_size(dt);
    const char *p = (const char *)base + (size_t)i * es;
    char tmp[16] __attribute__((aligned(16)));
    if (n < 4) { /* stage the tail so that no load reaches past the row */
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, p, (size_t)n * es);
        p = tmp;
    }
    switch (dt) {
    case RA_DTYPE_F32:
        return vld1q_f32((const float *)p);
    case RA_DTYPE_F16: {
        float16x4_t h;
        memcpy(&h, p, sizeof h);
        return vcvt_f32_f16(h);
    }
    case RA_DTYPE_BF16: { /* bf16 is the high half of an f32 */
        uint16x4_t h;
        memcpy(&h, p, sizeof h);
        return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
    }
    default: { /* i8: the stored integer */
        int32_t w;
        memcpy(&w, p, sizeof w);
        int16x8_t x16 = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(w)));
        return vcvtq_f32_s32(vmovl_s16(vget_low_s16(x16)));
    }
    }
}

RA_INLINE void qk_rows(const ra__tile *t, int64_t g0, const int GT, const int dt)
{
    const int TT = RA_NEON_QK_ACC / GT;
    const size_t es = elem_size(dt);
    const int64_t T = t->T, D = t->D, s_ld = t->s_ld, k_st = t->k_st;
    const float *q = t->q + g0 * D;
    const char *k = t->k;
    float *s = t->s + g0 * s_ld;
    for (int64_t t0 = 0; t0 < T; t0 += TT) {
        const int64_t tn = T - t0 < TT ? T - t0 : TT;
        const char *krow[RA_NEON_QK_ACC];
        for (int i = 0; i < TT; i++) /* past the tail, repeat the last row (never stored) */
            krow[i] = k + (size_t)((t0 + (i < tn ? i : tn - 1)) * k_st) * es;
        float32x4_t acc[RA_NEON_QK_ACC];
        for (int i = 0; i < RA_NEON_QK_ACC; i++)
            acc[i] = vdupq_n_f32(0.0f);
        for (int64_t d = 0; d < D; d += 4) {
            const int64_t n = D - d;
            float32x4_t qv[4];
            for (int g = 0; g < GT; g++)
                qv[g] = load4(q + g * D, d, n, RA_DTYPE_F32);
            for (int i = 0; i < TT; i++) {
                float32x4_t kv = load4(krow[i], d, n, dt);
                for (int g = 0; g < GT; g++)
                    acc[g * TT + i] = vfmaq_f32(acc[g * TT + i], qv[g], kv);
            }
        }
        for (int g = 0; g < GT; g++)
            for (int64_t i = 0; i < tn; i++)
                s[g * s_ld + t0 + i] = t->scale * vaddvq_f32(acc[g * TT + i]);
    }
}

RA_INLINE void pv_rows(const ra__tile *t, int64_t g0, const int GT, const int dt)
{
    const int U = RA_NEON_PV_POS / GT;
    const size_t es = elem_size(dt);
    const int64_t T = t->T, D = t->D, s_ld = t->s_ld, v_st = t->v_st;
    const float *s = t->s + g0 * s_ld;
    const char *v = t->v;
    float *o = t->o + g0 * D;
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
        float32x4_t acc[RA_NEON_PV_POS][4][4]; /* [u][g][c] */
        for (int u = 0; u < U; u++)
            for (int g = 0; g < GT; g++)
                for (int c = 0; c < 4; c++)
                    acc[u][g][c] = vdupq_n_f32(0.0f);
        for (int64_t i = 0; i < T; i += U)
            for (int u = 0; u < U && i + u < T; u++) {
                const char *vrow = v + (size_t)((i + u) * v_st) * es;
                float32x4_t vv[4];
                for (int c = 0; c < 4; c++)
                    vv[c] = load4(vrow, d0 + 4 * c, D - d0 - 4 * c, dt);
                for (int g = 0; g < GT; g++) {
                    float32x4_t p = vdupq_n_f32(s[g * s_ld + i + u]);
                    for (int c = 0; c < 4; c++)
                        acc[u][g][c] = vfmaq_f32(acc[u][g][c], p, vv[c]);
                }
            }
        for (int g = 0; g < GT; g++)
            for (int c = 0; c < 4; c++) {
                const int64_t n = D - d0 - 4 * c;
                if (n <= 0)
                    continue;
                float32x4_t sum = acc[0][g][c];
                for (int u = 1; u < U; u++)
                    sum = vaddq_f32(sum, acc[u][g][c]);
                float r[4];
                vst1q_f32(r, sum);
                float *og = o + g * D + d0 + 4 * c;
                for (int64_t e = 0; e < (n < 4 ? n : 4); e++)
                    og[e] += r[e];
            }
    }
}

/* exp(x) by the contract of exp_poly.h; 2^n is built in the exponent bits as 2^(n/2) times
 * 2^(n - n/2), both normal, so that a subnormal result rounds once. The clamp keeps a NaN x
 * (vmaxq/vminq return NaN when either operand is NaN). */
#define NEON_FMADD(a, b, c) vfmaq_f32((c), (a), (b))
RA_INLINE float32x4_t exp4(float32x4_t x)
{
    x = vminq_f32(vdupq_n_f32(RA_EXP_ARG_MAX), vmaxq_f32(vdupq_n_f32(RA_EXP_ARG_MIN), x));
    float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(RA_EXP_LOG2E)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(RA_EXP_LN2_HI));
    r = vfmsq_f32(r, n, vdupq_n_f32(RA_EXP_LN2_LO));
    float32x4_t p = RA_EXP_TAYLOR7(NEON_FMADD, vdupq_n_f32, r);
    const int32x4_t ni = vcvtnq_s32_f32(n), n1 = vshrq_n_s32(ni, 1), bias = vdupq_n_s32(127);
    const float32x4_t e1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    const float32x4_t e2 =
        vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vsubq_s32(ni, n1), bias), 23));
    return vmulq_f32(vmulq_f32(p, e1), e2);
}

/* s[i] = exp(s[i] - m) for the softmax step, 4 lanes at a time. */
static float exp_row(float *s, int64_t n, float m)
{
    float32x4_t vm = vdupq_n_f32(m), vsum = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t e = exp4(vsubq_f32(vld1q_f32(s + i), vm));
        vst1q_f32(s + i, e);
        vsum = vaddq_f32(vsum, e);
    }
    float sum = vaddvq_f32(vsum);
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
static void qk_i8(const ra__tile *t) { RA__FOR_HEAD_TILES(qk_rows, t, RA_DTYPE_I8); }
static void pv_f32(const ra__tile *t) { RA__FOR_HEAD_TILES(pv_rows, t, RA_DTYPE_F32); }
static void pv_f16(const ra__tile *t) { RA__FOR_HEAD_TILES(pv_rows, t, RA_DTYPE_F16); }
static void pv_bf16(const ra__tile *t) { RA__FOR_HEAD_TILES(pv_rows, t, RA_DTYPE_BF16); }
static void pv_i8(const ra__tile *t) { RA__FOR_HEAD_TILES(pv_rows, t, RA_DTYPE_I8); }

const ra__kernel_table ra__kernels_neon = {
    .id = RA_KERNEL_NEON,
    .tile_max = RA_NEON_TILE,
    .default_split = RA_NEON_DEFAULT_SPLIT,
    .all_heads_per_item = true,
    .needs_unit_d = true,
    .needs_conv = false,
    .self_prefetch = false,
    .qk = {[RA_DTYPE_F32] = qk_f32, [RA_DTYPE_F16] = qk_f16, [RA_DTYPE_BF16] = qk_bf16,
           [RA_DTYPE_I8] = qk_i8},
    .softmax = softmax_step,
    .pv = {[RA_DTYPE_F32] = pv_f32, [RA_DTYPE_F16] = pv_f16, [RA_DTYPE_BF16] = pv_bf16,
           [RA_DTYPE_I8] = pv_i8},
};
