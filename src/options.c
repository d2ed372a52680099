/* The options handle and its defaults. */
#include <float.h>
#include <math.h>

#include "alloc_internal.h"
#include "kernels/kernel.h"
#include "options_internal.h"
#include "status_internal.h"
#include "tensor_internal.h"

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
    if (!o)
        return;
    ra__free(o->sinks);
    ra__free(o->alibi);
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
    if ((int)kernel < RA_KERNEL_AUTO || (int)kernel > RA_KERNEL_NEON)
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

ra_status ra_options_set_softcap(ra_options *o, float cap)
{
    RA__NEED_OPTIONS("ra_options_set_softcap")
    if (!isfinite(cap) || cap < 0.0f)
        return ra__fail(RA_ERR_INVALID_ARGUMENT,
                        "ra_options_set_softcap: cap = %g, must be finite and >= 0 (0 = off)",
                        (double)cap);
    o->softcap = cap;
    return RA_OK;
}

ra_status ra_options_set_window(ra_options *o, int64_t window, int64_t sink_positions)
{
    RA__NEED_OPTIONS("ra_options_set_window")
    if (window < 0 || sink_positions < 0 || (window == 0 && sink_positions != 0))
        return ra__fail(RA_ERR_INVALID_ARGUMENT,
                        "ra_options_set_window: window = %lld, sink_positions = %lld; both must "
                        "be >= 0, and sink_positions 0 without a window (window 0 = off)",
                        (long long)window, (long long)sink_positions);
    o->window = window;
    o->sink_positions = window ? sink_positions : 0;
    return RA_OK;
}

/* Copies a per-query-head f32 [H] tensor's values into *dst (NULL t: clears it). ok(x) says
 * which values are allowed; what names them in messages. */
static ra_status set_per_head(const char *fn, const char *what, const ra_tensor *t,
                              bool (*ok)(float), const char *allowed, float **dst, int64_t *n)
{
    if (!t) {
        ra__free(*dst);
        *dst = NULL;
        *n = 0;
        return RA_OK;
    }
    if (t->dtype != RA_DTYPE_F32 || t->rank != 1 || t->shape[0] < 1)
        return ra__fail(t->dtype != RA_DTYPE_F32 ? RA_ERR_DTYPE : RA_ERR_SHAPE,
                        "%s: %s must be an f32 tensor [Hq] with Hq >= 1, got dtype %s, rank %d",
                        fn, what, ra__dtype_name(t->dtype), t->rank);
    const int64_t h = t->shape[0];
    const float *src = t->data;
    for (int64_t i = 0; i < h; i++) {
        float x = src[i * t->strides[0]];
        if (!ok(x))
            return ra__fail(RA_ERR_INVALID_ARGUMENT, "%s: %s[%lld] = %g, must be %s", fn, what,
                            (long long)i, (double)x, allowed);
    }
    float *copy = ra__alloc(sizeof(float) * (size_t)h);
    if (!copy)
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "%s: cannot allocate %lld %s", fn, (long long)h,
                        what);
    for (int64_t i = 0; i < h; i++)
        copy[i] = src[i * t->strides[0]];
    ra__free(*dst);
    *dst = copy;
    *n = h;
    return RA_OK;
}

static bool finite_or_minus_inf(float x)
{
    return isfinite(x) || x == -INFINITY;
}

static bool finite(float x)
{
    return isfinite(x);
}

ra_status ra_options_set_sinks(ra_options *o, const ra_tensor *sinks)
{
    RA__NEED_OPTIONS("ra_options_set_sinks")
    return set_per_head("ra_options_set_sinks", "sinks", sinks, finite_or_minus_inf,
                        "finite or -inf", &o->sinks, &o->n_sinks);
}

ra_status ra_options_set_alibi(ra_options *o, const ra_tensor *slopes)
{
    RA__NEED_OPTIONS("ra_options_set_alibi")
    return set_per_head("ra_options_set_alibi", "slopes", slopes, finite, "finite", &o->alibi,
                        &o->n_alibi);
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
    case RA_KERNEL_NEON:
        return "neon";
    }
    return "unknown";
}
