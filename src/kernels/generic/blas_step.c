/* The BLAS path of the original design (docs/design.md, "Why BLAS is kept"): each tile's two
 * products are cblas_sgemm calls, with leading dimensions that cover strided caches. K/V in
 * f16/bf16, or in a layout BLAS cannot describe (feature stride != 1, broadcast or
 * overlapping rows), are converted to f32 scratch first: this OpenBLAS has no bf16 GEMM.
 * Calls go through ra__sgemm (blas_guard.h). */
#include <limits.h>

#include "blas_guard.h"
#include "common/dtype.h"
#include "kernels/kernel.h"
#include "config.h"

/* A [T][D] row-major f32 view of the tile's K or V: the cache itself when BLAS can read it in
 * place, else a converted copy in t->conv. The leading dimension comes back through *ld. */
static const float *f32_rows(const ra__tile *t, const void *base, ra_dtype dt, int64_t st,
                             int64_t sd, int64_t *ld)
{
    if (dt == RA_DTYPE_F32 && sd == 1 && st >= t->D && st <= INT_MAX) {
        *ld = st;
        return base;
    }
    for (int64_t i = 0; i < t->T; i++)
        for (int64_t d = 0; d < t->D; d++)
            t->conv[i * t->D + d] = ra__load_f32(base, dt, i * st + d * sd);
    *ld = t->D;
    return t->conv;
}

static void qk(const ra__tile *t, ra_dtype dt)
{
    int64_t ld;
    const float *k = f32_rows(t, t->k, dt, t->k_st, t->k_sd, &ld);
    /* S[G][T] = Q[G][D] K[T][D]^T, then the scale: BLAS skips the product when alpha is 0,
     * which would turn a NaN logit into 0 instead of NaN. */
    ra__sgemm(true, (int)t->G, (int)t->T, (int)t->D, 1.0f, t->q, (int)t->D, k, (int)ld, 0.0f,
              t->s, (int)t->s_ld);
    for (int64_t g = 0; g < t->G; g++)
        for (int64_t i = 0; i < t->T; i++)
            t->s[g * t->s_ld + i] *= t->scale;
}

static void pv(const ra__tile *t, ra_dtype dt)
{
    int64_t ld;
    const float *v = f32_rows(t, t->v, dt, t->v_st, t->v_sd, &ld);
    /* O[G][D] += P[G][T] V[T][D] */
    ra__sgemm(false, (int)t->G, (int)t->D, (int)t->T, 1.0f, t->s, (int)t->s_ld, v, (int)ld,
              1.0f, t->o, (int)t->D);
}

static void qk_f32(const ra__tile *t) { qk(t, RA_DTYPE_F32); }
static void qk_f16(const ra__tile *t) { qk(t, RA_DTYPE_F16); }
static void qk_bf16(const ra__tile *t) { qk(t, RA_DTYPE_BF16); }
static void pv_f32(const ra__tile *t) { pv(t, RA_DTYPE_F32); }
static void pv_f16(const ra__tile *t) { pv(t, RA_DTYPE_F16); }
static void pv_bf16(const ra__tile *t) { pv(t, RA_DTYPE_BF16); }
static void qk_i8(const ra__tile *t) { qk(t, RA_DTYPE_I8); }
static void qk_e4m3(const ra__tile *t) { qk(t, RA_DTYPE_FP8_E4M3); }
static void qk_e5m2(const ra__tile *t) { qk(t, RA_DTYPE_FP8_E5M2); }
static void pv_i8(const ra__tile *t) { pv(t, RA_DTYPE_I8); }
static void pv_e4m3(const ra__tile *t) { pv(t, RA_DTYPE_FP8_E4M3); }
static void pv_e5m2(const ra__tile *t) { pv(t, RA_DTYPE_FP8_E5M2); }

/* One (batch, KV head) per work item and the caller's block size per GEMM, as on the TPU
 * grid; no split-KV by default (split_tokens 0 keeps whole sequences in one item). */
const ra__kernel_table ra__kernels_blas = {
    .id = RA_KERNEL_BLAS,
    .tile_max = RA_BLAS_TILE,
    .default_split = RA_BLAS_DEFAULT_SPLIT,
    .all_heads_per_item = false,
    .needs_unit_d = false,
    .needs_conv = true,
    .qk = {qk_f32, qk_f16, qk_bf16, NULL, qk_i8, qk_e4m3, qk_e5m2},
    .softmax = ra__softmax_step_portable,
    .pv = {pv_f32, pv_f16, pv_bf16, NULL, pv_i8, pv_e4m3, pv_e5m2},
};
