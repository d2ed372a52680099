/* Tensor handles: creation, queries, and the overflow and overlap checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "status_internal.h"
#include "tensor_internal.h"

size_t ra__dtype_size(ra_dtype dt)
{
    switch (dt) {
    case RA_DTYPE_F32:
    case RA_DTYPE_I32:
        return 4;
    case RA_DTYPE_F16:
    case RA_DTYPE_BF16:
        return 2;
    case RA_DTYPE_I8:
    case RA_DTYPE_FP8_E4M3:
    case RA_DTYPE_FP8_E5M2:
        return 1;
    }
    return 0;
}

const char *ra__dtype_name(ra_dtype dt)
{
    switch (dt) {
    case RA_DTYPE_F32:
        return "f32";
    case RA_DTYPE_F16:
        return "f16";
    case RA_DTYPE_BF16:
        return "bf16";
    case RA_DTYPE_I32:
        return "i32";
    case RA_DTYPE_I8:
        return "i8";
    case RA_DTYPE_FP8_E4M3:
        return "fp8_e4m3";
    case RA_DTYPE_FP8_E5M2:
        return "fp8_e5m2";
    }
    return "unknown";
}

const char *ra__shape_str(const ra_tensor *t, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->rank && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
    return buf;
}

/* Validates dtype/rank/shape/strides and fills the derived fields. Every size is computed with
 * overflow checks so that no later arithmetic on this tensor can overflow. */
static ra_status describe(ra_tensor *t, ra_dtype dtype, int rank, const int64_t *shape,
                          const int64_t *strides, const char *who)
{
    size_t esize = ra__dtype_size(dtype);
    if (esize == 0)
        return ra__fail(RA_ERR_DTYPE, "%s: unknown dtype %d", who, (int)dtype);
    if (rank < 1 || rank > RA__MAX_RANK)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "%s: rank %d is outside 1..4", who, rank);
    if (!shape)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "%s: shape is NULL", who);

    bool empty = false;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0)
            return ra__fail(RA_ERR_SHAPE, "%s: shape[%d] = %lld is negative", who, i,
                            (long long)shape[i]);
        if (strides && strides[i] < 0)
            return ra__fail(RA_ERR_INVALID_ARGUMENT, "%s: strides[%d] = %lld is negative", who,
                            i, (long long)strides[i]);
        empty |= shape[i] == 0;
    }
    /* An empty tensor has no bytes, so its other extents may be anything. */
    int64_t numel = empty ? 0 : 1;
    for (int i = 0; i < rank && !empty; i++)
        if (__builtin_mul_overflow(numel, shape[i], &numel))
            return ra__fail(RA_ERR_OVERFLOW, "%s: element count overflows int64 at axis %d",
                            who, i);
    int64_t bytes;
    if (__builtin_mul_overflow(numel, (int64_t)esize, &bytes) || (uint64_t)bytes > SIZE_MAX)
        return ra__fail(RA_ERR_OVERFLOW, "%s: byte size of %lld elements overflows", who,
                        (long long)numel);

    /* Row-major strides when none are given; the furthest element offset otherwise. */
    int64_t st[RA__MAX_RANK];
    int64_t run = 1;
    for (int i = rank - 1; i >= 0; i--) {
        st[i] = strides ? strides[i] : run;
        /* row-major; an empty tensor's strides (never used to address) saturate */
        if (!strides && __builtin_mul_overflow(run, shape[i] ? shape[i] : 1, &run)) {
            if (!empty)
                return ra__fail(RA_ERR_OVERFLOW, "%s: strides overflow int64", who);
            run = INT64_MAX;
        }
    }
    int64_t last = 0; /* offset of the last element, in elements */
    if (numel > 0) {
        for (int i = 0; i < rank; i++) {
            int64_t step;
            if (__builtin_mul_overflow(shape[i] - 1, st[i], &step) ||
                __builtin_add_overflow(last, step, &last))
                return ra__fail(RA_ERR_OVERFLOW, "%s: furthest element offset overflows int64",
                                who);
        }
        int64_t last_byte;
        if (__builtin_add_overflow(last, 1, &last_byte) ||
            __builtin_mul_overflow(last_byte, (int64_t)esize, &last_byte) ||
            (uint64_t)last_byte > SIZE_MAX)
            return ra__fail(RA_ERR_OVERFLOW, "%s: furthest byte offset overflows", who);
    }

    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < RA__MAX_RANK; i++) {
        t->shape[i] = i < rank ? shape[i] : 1;
        t->strides[i] = i < rank ? st[i] : 0;
    }
    t->numel = numel;
    t->span_lo = 0;
    t->span_hi = 0;
    t->scale = NULL;
    for (int i = 0; i < RA__MAX_RANK; i++)
        t->scale_strides[i] = 0;
    t->scale_lo = t->scale_hi = 0;
    (void)last;
    return RA_OK;
}

static void set_span(ra_tensor *t)
{
    if (t->numel == 0 || !t->data) {
        t->span_lo = t->span_hi = 0;
        return;
    }
    int64_t last = 0;
    for (int i = 0; i < t->rank; i++)
        last += (t->shape[i] - 1) * t->strides[i];
    t->span_lo = (uintptr_t)t->data;
    t->span_hi = t->span_lo + (uintptr_t)((last + 1) * (int64_t)ra__dtype_size(t->dtype));
}

ra_status ra_tensor_wrap(ra_tensor **out, ra_dtype dtype, int rank, const int64_t *shape,
                         const int64_t *strides, void *data)
{
    if (!out)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_tensor_wrap: out is NULL");
    ra_tensor tmp;
    ra_status s = describe(&tmp, dtype, rank, shape, strides, "ra_tensor_wrap");
    if (s != RA_OK)
        return s;
    if (!data && tmp.numel > 0)
        return ra__fail(RA_ERR_INVALID_ARGUMENT,
                        "ra_tensor_wrap: data is NULL for a tensor of %lld elements",
                        (long long)tmp.numel);
    ra_tensor *t = ra__alloc(sizeof *t);
    if (!t)
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "ra_tensor_wrap: cannot allocate the handle");
    *t = tmp;
    t->data = data;
    t->owned = false;
    set_span(t);
    *out = t;
    return RA_OK;
}

ra_status ra_tensor_wrap_quantized(ra_tensor **out, ra_dtype dtype, int rank,
                                   const int64_t *shape, const int64_t *strides, void *data,
                                   const ra_tensor *scale)
{
    static const char *fn = "ra_tensor_wrap_quantized";
    if (!out || !scale)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !out ? "out" : "scale");
    if (!ra__dtype_quantized(dtype))
        return ra__fail(RA_ERR_DTYPE, "%s: dtype %s is not i8, fp8_e4m3 or fp8_e5m2", fn,
                        ra__dtype_name(dtype));
    if (scale->dtype != RA_DTYPE_F32)
        return ra__fail(RA_ERR_DTYPE, "%s: scale has dtype %s, expected f32", fn,
                        ra__dtype_name(scale->dtype));
    ra_tensor tmp;
    ra_status s = describe(&tmp, dtype, rank, shape, strides, fn);
    if (s != RA_OK)
        return s;
    char want[96], got[96];
    for (int i = 0; i < rank; i++) {
        const int64_t e = scale->shape[i];
        if (scale->rank != rank || (e != shape[i] && e != 1) || (i == rank - 1 && e != 1))
            return ra__fail(RA_ERR_SHAPE, "%s: scale has shape %s; for data %s each extent "
                            "must be the data's or 1, and the last 1", fn,
                            ra__shape_str(scale, got, sizeof got),
                            ra__shape_str(&tmp, want, sizeof want));
        tmp.scale_strides[i] = e == 1 ? 0 : scale->strides[i];
    }
    if (!data && tmp.numel > 0)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "%s: data is NULL for a tensor of %lld "
                        "elements", fn, (long long)tmp.numel);
    if (!scale->data && tmp.numel > 0)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "%s: scale has no data", fn);
    ra_tensor *t = ra__alloc(sizeof *t);
    if (!t)
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "%s: cannot allocate the handle", fn);
    *t = tmp;
    t->data = data;
    t->owned = false;
    /* An empty scale may have NULL data, but a NULL scale means "not quantized": such a tensor
     * has no elements, so any non-NULL pointer will do, and none is read. */
    static const float no_elements = 0.0f;
    t->scale = scale->data ? scale->data : &no_elements;
    t->scale_lo = scale->span_lo;
    t->scale_hi = scale->span_hi;
    set_span(t);
    *out = t;
    return RA_OK;
}

ra_status ra_tensor_create(ra_tensor **out, ra_dtype dtype, int rank, const int64_t *shape)
{
    if (!out)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_tensor_create: out is NULL");
    ra_tensor tmp;
    ra_status s = describe(&tmp, dtype, rank, shape, NULL, "ra_tensor_create");
    if (s != RA_OK)
        return s;
    size_t bytes = (size_t)tmp.numel * ra__dtype_size(dtype);
    ra_tensor *t = ra__alloc(sizeof *t);
    void *data = t ? ra__calloc(bytes) : NULL;
    if (!t || !data) {
        ra__free(t);
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "ra_tensor_create: cannot allocate %zu bytes",
                        bytes);
    }
    *t = tmp;
    t->data = data;
    t->owned = true;
    set_span(t);
    *out = t;
    return RA_OK;
}

void ra_tensor_destroy(ra_tensor *t)
{
    if (!t)
        return;
    if (t->owned)
        ra__free(t->data);
    ra__free(t);
}

void *ra_tensor_data(const ra_tensor *t)
{
    return t ? t->data : NULL;
}

ra_dtype ra_tensor_dtype(const ra_tensor *t)
{
    return t ? t->dtype : (ra_dtype)-1;
}

int ra_tensor_rank(const ra_tensor *t)
{
    return t ? t->rank : -1;
}

int64_t ra_tensor_dim(const ra_tensor *t, int axis)
{
    return (t && axis >= 0 && axis < t->rank) ? t->shape[axis] : -1;
}

int64_t ra_tensor_stride(const ra_tensor *t, int axis)
{
    return (t && axis >= 0 && axis < t->rank) ? t->strides[axis] : -1;
}

bool ra__tensors_overlap(const ra_tensor *a, const ra_tensor *b)
{
    if (a->span_lo == a->span_hi || b->span_lo == b->span_hi)
        return false;
    return a->span_lo < b->span_hi && b->span_lo < a->span_hi;
}

bool ra__tensor_self_overlaps(const ra_tensor *t)
{
    if (t->numel <= 1)
        return false;
    /* Sort the axes of extent > 1 by stride; the layout is injective if each stride clears
     * the extent spanned by all smaller ones. (Exact for every layout a seed shape can take.) */
    int idx[RA__MAX_RANK], n = 0;
    for (int i = 0; i < t->rank; i++)
        if (t->shape[i] > 1)
            idx[n++] = i;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t->strides[idx[j]] < t->strides[idx[j - 1]]; j--) {
            int x = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = x;
        }
    int64_t reach = 0; /* furthest offset reachable by the smaller axes */
    for (int i = 0; i < n; i++) {
        int64_t s = t->strides[idx[i]];
        if (s <= reach)
            return true;
        reach += (t->shape[idx[i]] - 1) * s;
    }
    return false;
}
