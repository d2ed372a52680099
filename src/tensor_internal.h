/* The tensor handle and helpers shared by validation and the kernels. */
#ifndef RA_TENSOR_INTERNAL_H
#define RA_TENSOR_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "raggedattn.h"

#define RA__MAX_RANK 4

struct ra_tensor {
    ra_dtype dtype;
    int rank;
    int64_t shape[RA__MAX_RANK];
    int64_t strides[RA__MAX_RANK]; /* elements */
    void *data;
    bool owned;
    /* Derived once at creation: byte range [span_lo, span_hi) that the elements cover
     * (empty when the tensor has no elements), and the element count. */
    uintptr_t span_lo, span_hi;
    int64_t numel;
    /* A quantized tensor's scales (ra_tensor_wrap_quantized): element i means
     * data[i] * scale[i], with scale_strides 0 along the axes the scale covers whole; NULL
     * scale for any other tensor. scale_span is the scale's byte range, for overlap checks. */
    const float *scale;
    int64_t scale_strides[RA__MAX_RANK];
    uintptr_t scale_lo, scale_hi;
};

/* i8 and the fp8 formats: dtypes that mean q * scale. */
static inline bool ra__dtype_quantized(ra_dtype dt)
{
    return dt == RA_DTYPE_I8 || dt == RA_DTYPE_FP8_E4M3 || dt == RA_DTYPE_FP8_E5M2;
}

size_t ra__dtype_size(ra_dtype dt); /* 0 for an unknown dtype */
const char *ra__dtype_name(ra_dtype dt);

/* True when two tensors' byte spans intersect (a conservative overlap test). */
bool ra__tensors_overlap(const ra_tensor *a, const ra_tensor *b);
/* True when two distinct indices of t address the same element. */
bool ra__tensor_self_overlaps(const ra_tensor *t);

/* Formats "[2,1,8,64]" into buf. */
const char *ra__shape_str(const ra_tensor *t, char *buf, size_t n);

#endif
