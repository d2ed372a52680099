/* Placeholder until the avx2 kernels land: the portable kernels. */
#include "kernel.h"

const ra__kernel_table ra__kernels_avx2 = {
    .id = RA_KERNEL_AVX2,
    .tile_max = 32,
    .default_split = 2048,
    .all_heads_per_item = true,
    .needs_unit_d = false,
    .needs_conv = false,
    .qk = {0},
    .softmax = ra__softmax_step_portable,
    .pv = {0},
};
