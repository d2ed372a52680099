/* The options handle and its defaults. */
#include <float.h>
#include <math.h>

#include "alloc_internal.h"
#include "kernels/kernel.h"
#include "options_internal.h"
#include "status_internal.h"

const struct ra_options ra__default_options = {
    .block_size = 256,
    .scale = 1.0f,
    .mask_value = -0.7f * FLT_MAX, /* MaxText's DEFAULT_MASK_VALUE */
    .num_threads = 0,
    .kernel = RA_KERNEL_AUTO,
    .split_tokens = 0,
};

ra_status ra_options_create(ra_options **out)
{
    if (!out)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_options_create: out is NULL");
    ra_options *o = ra__alloc(sizeof *o);
    if (!o)
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "ra_options_create: cannot allocate the handle");
    *o = ra__default_options;
    *out = o;
    return RA_OK;
}

void ra_options_destroy(ra_options *o)
{
    ra__free(o);
}

#define RA__NEED_OPTIONS(fn)                                                                 \
    if (!o)                                                                                  \
        return ra__fail(RA_ERR_INVALID_ARGUMENT, fn ": options is NULL");

ra_status ra_options_set_block_size(ra_options *o, int64_t block_size)
{
    RA__NEED_OPTIONS("ra_options_set_block_size")
    if (block_size < 1)
        return ra__fail(RA_ERR_INVALID_ARGUMENT,
                        "ra_options_set_block_size: block_size = %lld, must be >= 1",
                        (long long)block_size);
    o->block_size = block_size;
    return RA_OK;
}

ra_status ra_options_set_scale(ra_options *o, float scale)
{
    RA__NEED_OPTIONS("ra_options_set_scale")
    if (!isfinite(scale))
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_options_set_scale: scale = %g is not finite",
                        (double)scale);
    o->scale = scale;
    return RA_OK;
}

ra_status ra_options_set_mask_value(ra_options *o, float mask_value)
{
    RA__NEED_OPTIONS("ra_options_set_mask_value")
    if (isnan(mask_value))
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_options_set_mask_value: mask_value is NaN");
    o->mask_value = mask_value;
    return RA_OK;
}

ra_status ra_options_set_num_threads(ra_options *o, int num_threads)
{
    RA__NEED_OPTIONS("ra_options_set_num_threads")
    if (num_threads < 0)
        return ra__fail(RA_ERR_INVALID_ARGUMENT,
                        "ra_options_set_num_threads: num_threads = %d, must be >= 0", num_threads);
    o->num_threads = num_threads;
    return RA_OK;
}

ra_status ra_options_set_kernel(ra_options *o, ra_kernel kernel)
{
    RA__NEED_OPTIONS("ra_options_set_kernel")
    if ((int)kernel < RA_KERNEL_AUTO || (int)kernel > RA_KERNEL_AVX512)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_options_set_kernel: unknown kernel %d",
                        (int)kernel);
    if (kernel != RA_KERNEL_AUTO && !ra__kernel_available(kernel))
        return ra__fail(RA_ERR_UNSUPPORTED,
                        "ra_options_set_kernel: kernel '%s' cannot run on this CPU or build",
                        ra_kernel_name(kernel));
    o->kernel = kernel;
    return RA_OK;
}

ra_status ra_options_set_split_tokens(ra_options *o, int64_t split_tokens)
{
    RA__NEED_OPTIONS("ra_options_set_split_tokens")
    if (split_tokens < 0)
        return ra__fail(RA_ERR_INVALID_ARGUMENT,
                        "ra_options_set_split_tokens: split_tokens = %lld, must be >= 0",
                        (long long)split_tokens);
    o->split_tokens = split_tokens;
    return RA_OK;
}

ra_kernel ra_kernel_resolve(const ra_options *o)
{
    return ra__kernel_resolve(ra__options_or_default(o)->kernel);
}

const char *ra_kernel_name(ra_kernel kernel)
{
    switch (kernel) {
    case RA_KERNEL_AUTO:
        return "auto";
    case RA_KERNEL_BLAS:
        return "blas";
    case RA_KERNEL_PORTABLE:
        return "portable";
    case RA_KERNEL_AVX2:
        return "avx2";
    case RA_KERNEL_AVX512:
        return "avx512";
    }
    return "unknown";
}
