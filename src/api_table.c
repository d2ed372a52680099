/* The versioned function table for dlopen users. Members are only ever appended; the
 * assertions below pin the layout of version 1 so that a reordering cannot compile. */
#include <stddef.h>

#include "raggedattn.h"

#define RA__PIN(member, index)                                                                 \
    _Static_assert(offsetof(ra_api, member) == 8 + (index) * sizeof(void (*)(void)),          \
                   "ra_api layout changed: " #member)

_Static_assert(offsetof(ra_api, struct_size) == 0, "ra_api layout changed");
_Static_assert(offsetof(ra_api, abi_version) == 4, "ra_api layout changed");
RA__PIN(version_number, 0);
RA__PIN(version_string, 1);
RA__PIN(status_string, 2);
RA__PIN(last_error, 3);
RA__PIN(tensor_wrap, 4);
RA__PIN(tensor_create, 5);
RA__PIN(tensor_destroy, 6);
RA__PIN(tensor_data, 7);
RA__PIN(tensor_dtype, 8);
RA__PIN(tensor_rank, 9);
RA__PIN(tensor_dim, 10);
RA__PIN(tensor_stride, 11);
RA__PIN(options_create, 12);
RA__PIN(options_destroy, 13);
RA__PIN(options_set_block_size, 14);
RA__PIN(options_set_scale, 15);
RA__PIN(options_set_mask_value, 16);
RA__PIN(options_set_num_threads, 17);
RA__PIN(options_set_kernel, 18);
RA__PIN(options_set_split_tokens, 19);
RA__PIN(kernel_resolve, 20);
RA__PIN(kernel_name, 21);
RA__PIN(ragged_mqa, 22);
RA__PIN(ragged_mha, 23);
RA__PIN(ragged_gqa, 24);
RA__PIN(reference_mqa, 25);
RA__PIN(reference_mha, 26);
RA__PIN(reference_gqa, 27);
RA__PIN(merge, 28);
RA__PIN(mha_cost_estimate, 29);
RA__PIN(paged_gqa, 30); /* version 2 */
RA__PIN(options_set_softcap, 31);
RA__PIN(options_set_window, 32);
RA__PIN(options_set_sinks, 33);
RA__PIN(options_set_alibi, 34);
RA__PIN(tensor_wrap_quantized, 35);
RA__PIN(quantize, 36);
RA__PIN(ragged_gqa_multi, 37); /* version 3 */
RA__PIN(paged_gqa_multi, 38);
_Static_assert(sizeof(ra_api) == 8 + 39 * sizeof(void (*)(void)), "ra_api v3 has 39 functions");

/* The same functions in every table; abi_version echoes the version asked for. */
#define RA__API_TABLE(version)                                                                 \
    {                                                                                          \
        .struct_size = sizeof(ra_api), .abi_version = (version),                               \
        .version_number = ra_version_number,                                                  \
        .version_string = ra_version_string,                                                  \
        .status_string = ra_status_string,                                                    \
        .last_error = ra_last_error,                                                          \
        .tensor_wrap = ra_tensor_wrap,                                                        \
        .tensor_create = ra_tensor_create,                                                    \
        .tensor_destroy = ra_tensor_destroy,                                                  \
        .tensor_data = ra_tensor_data,                                                        \
        .tensor_dtype = ra_tensor_dtype,                                                      \
        .tensor_rank = ra_tensor_rank,                                                        \
        .tensor_dim = ra_tensor_dim,                                                          \
        .tensor_stride = ra_tensor_stride,                                                    \
        .options_create = ra_options_create,                                                  \
        .options_destroy = ra_options_destroy,                                                \
        .options_set_block_size = ra_options_set_block_size,                                  \
        .options_set_scale = ra_options_set_scale,                                            \
        .options_set_mask_value = ra_options_set_mask_value,                                  \
        .options_set_num_threads = ra_options_set_num_threads,                                \
        .options_set_kernel = ra_options_set_kernel,                                          \
        .options_set_split_tokens = ra_options_set_split_tokens,                              \
        .kernel_resolve = ra_kernel_resolve,                                                  \
        .kernel_name = ra_kernel_name,                                                        \
        .ragged_mqa = ra_ragged_mqa,                                                          \
        .ragged_mha = ra_ragged_mha,                                                          \
        .ragged_gqa = ra_ragged_gqa,                                                          \
        .reference_mqa = ra_reference_mqa,                                                    \
        .reference_mha = ra_reference_mha,                                                    \
        .reference_gqa = ra_reference_gqa,                                                    \
        .merge = ra_merge,                                                                    \
        .mha_cost_estimate = ra_mha_cost_estimate,                                            \
        .paged_gqa = ra_paged_gqa,                                                            \
        .options_set_softcap = ra_options_set_softcap,                                        \
        .options_set_window = ra_options_set_window,                                          \
        .options_set_sinks = ra_options_set_sinks,                                            \
        .options_set_alibi = ra_options_set_alibi,                                            \
        .tensor_wrap_quantized = ra_tensor_wrap_quantized,                                    \
        .quantize = ra_quantize,                                                              \
        .ragged_gqa_multi = ra_ragged_gqa_multi,                                              \
        .paged_gqa_multi = ra_paged_gqa_multi,                                                \
    }

static const ra_api api_v1 = RA__API_TABLE(1);
static const ra_api api_v2 = RA__API_TABLE(2);
static const ra_api api_v3 = RA__API_TABLE(3);

const ra_api *ra_get_api(uint32_t abi_version)
{
    switch (abi_version) {
    case 1: return &api_v1;
    case 2: return &api_v2;
    case 3: return &api_v3;
    default: return NULL;
    }
}
