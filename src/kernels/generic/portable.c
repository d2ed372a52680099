/* Portable C kernels: any strides, any dtype. The reference every SIMD kernel is tested
 * against, and the fallback for layouts the SIMD kernels do not take. */
#include "common/dtype.h"
#include "kernels/kernel.h"
#include "config.h"

#define RA__DEFINE_PORTABLE(suffix, dt)                                                        \
    static void qk_##suffix(const ra__tile *t)                                                 \
    {                                                                                          \
        for (int64_t g = 0; g < t->G; g++) {                                                   \
            const float *q = t->q + g * t->D;                                                  \
            for (int64_t i = 0; i < t->T; i++) {                                               \
                float acc = 0.0f;                                                              \
                for (int64_t d = 0; d < t->D; d++)                                             \
                    acc += q[d] * ra__load_f32(t->k, dt, i * t->k_st + d * t->k_sd);           \
                t->s[g * t->s_ld + i] = t->scale * acc;                                        \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void pv_##suffix(const ra__tile *t)                                                 \
    {                                                                                          \
        for (int64_t i = 0; i < t->T; i++)                                                     \
            for (int64_t g = 0; g < t->G; g++) {                                               \
                float p = t->s[g * t->s_ld + i];                                               \
                float *o = t->o + g * t->D;                                                    \
                for (int64_t d = 0; d < t->D; d++)                                             \
                    o[d] += p * ra__load_f32(t->v, dt, i * t->v_st + d * t->v_sd);             \
            }                                                                                  \
    }

RA__DEFINE_PORTABLE(f32, RA_DTYPE_F32)
RA__DEFINE_PORTABLE(f16, RA_DTYPE_F16)
RA__DEFINE_PORTABLE(bf16, RA_DTYPE_BF16)
RA__DEFINE_PORTABLE(i8, RA_DTYPE_I8)
RA__DEFINE_PORTABLE(e4m3, RA_DTYPE_FP8_E4M3)
RA__DEFINE_PORTABLE(e5m2, RA_DTYPE_FP8_E5M2)

const ra__kernel_table ra__kernels_portable = {
    .id = RA_KERNEL_PORTABLE,
    .tile_max = RA_PORTABLE_TILE,
    .default_split = RA_PORTABLE_DEFAULT_SPLIT,
    .all_heads_per_item = true,
    .needs_unit_d = false,
    .needs_conv = false,
    .qk = {qk_f32, qk_f16, qk_bf16, NULL, qk_i8, qk_e4m3, qk_e5m2},
    .softmax = ra__softmax_step_portable,
    .pv = {pv_f32, pv_f16, pv_bf16, NULL, pv_i8, pv_e4m3, pv_e5m2},
};
