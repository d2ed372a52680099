/* Placeholder until the avx512 kernels land: the portable kernels. */
#include "kernel.h"

const ra__kernel_table ra__kernels_avx512 = {
    .id = RA_KERNEL_AVX512,
    .tile_max = 32,
    .default_split = 2048,
    .all_heads_per_item = true,
    .needs_unit_d = false,
    .needs_conv = false,
    .qk = {0},
    .softmax = ra__softmax_step_portable,
    .pv = {0},
};
