/* ra_quantize: a float cache slice into i8 or fp8 values and their scales (raggedattn.h). */
#include <math.h>
#include <stdio.h>

#include "common/dtype.h"
#include "status_internal.h"
#include "tensor_internal.h"

/* An fp8 code of f with mbits mantissa bits and exponent bias `bias`: round to nearest even,
 * saturating at max_code (the largest finite value, max_val); NaN gives nan_code. */
static inline uint8_t f32_to_fp8(float f, int mbits, int bias, float max_val, uint8_t max_code,
                                 uint8_t nan_code)
{
    const uint8_t sign = signbit(f) ? 0x80 : 0;
    const float a = fabsf(f);
    if (isnan(f))
        return nan_code;
    if (a >= max_val)
        return sign | max_code;
    if (a < ldexpf(1.0f, 1 - bias)) /* subnormal, or the first normal after rounding up */
        return sign | (uint8_t)rintf(a * ldexpf(1.0f, bias - 1 + mbits));
    const int shift = 23 - mbits;
    uint32_t x = ra__f32_to_bits(a);
    x += (1u << (shift - 1)) - 1u + ((x >> shift) & 1u); /* round the mantissa to mbits bits */
    const int e = (int)(x >> 23) - 127 + bias;
    const uint8_t code = (uint8_t)((e << mbits) | ((x >> shift) & ((1u << mbits) - 1u)));
    return sign | (code > max_code ? max_code : code);
}

/* e4m3fn: largest finite 448 (0x7e), NaN 0x7f. */
static uint8_t f32_to_e4m3(float f) { return f32_to_fp8(f, 3, 7, 448.0f, 0x7e, 0x7f); }

/* e5m2: largest finite 57344 (0x7b), NaN 0x7e. */
static uint8_t f32_to_e5m2(float f) { return f32_to_fp8(f, 2, 15, 57344.0f, 0x7b, 0x7e); }

static float qmax_of(ra_dtype dt)
{
    return dt == RA_DTYPE_I8 ? 127.0f : dt == RA_DTYPE_FP8_E4M3 ? 448.0f : 57344.0f;
}

static int64_t offset(const int64_t *st, const int64_t i[4])
{
    return i[0] * st[0] + i[1] * st[1] + i[2] * st[2] + i[3] * st[3];
}

ra_status ra_quantize(const ra_tensor *src, ra_tensor *dst, ra_tensor *scale)
{
    static const char *fn = "ra_quantize";
    const ra_tensor *all[] = {src, dst, scale};
    const char *names[] = {"src", "dst", "scale"};
    for (int i = 0; i < 3; i++)
        if (!all[i])
            return ra__fail(RA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, names[i]);
    if (src->dtype != RA_DTYPE_F32 && src->dtype != RA_DTYPE_F16 && src->dtype != RA_DTYPE_BF16)
        return ra__fail(RA_ERR_DTYPE, "%s: src has dtype %s, expected f32, f16 or bf16", fn,
                        ra__dtype_name(src->dtype));
    if (!ra__dtype_quantized(dst->dtype))
        return ra__fail(RA_ERR_DTYPE, "%s: dst has dtype %s, expected i8, fp8_e4m3 or fp8_e5m2",
                        fn, ra__dtype_name(dst->dtype));
    if (scale->dtype != RA_DTYPE_F32)
        return ra__fail(RA_ERR_DTYPE, "%s: scale has dtype %s, expected f32", fn,
                        ra__dtype_name(scale->dtype));
    char a[96], b[96], c[96];
    bool same = src->rank == dst->rank && scale->rank == src->rank;
    for (int i = 0; same && i < src->rank; i++)
        same = src->shape[i] == dst->shape[i] &&
               (scale->shape[i] == src->shape[i] || scale->shape[i] == 1) &&
               (i < src->rank - 1 || scale->shape[i] == 1);
    if (!same)
        return ra__fail(RA_ERR_SHAPE, "%s: src %s and dst %s must have one shape, and scale %s "
                        "its extents or 1 (the last 1)", fn, ra__shape_str(src, a, sizeof a),
                        ra__shape_str(dst, b, sizeof b), ra__shape_str(scale, c, sizeof c));
    if (ra__tensor_self_overlaps(dst) || ra__tensor_self_overlaps(scale) ||
        ra__tensors_overlap(dst, src) || ra__tensors_overlap(scale, src) ||
        ra__tensors_overlap(dst, scale))
        return ra__fail(RA_ERR_ALIAS, "%s: dst and scale must not overlap src, each other or "
                        "themselves", fn);
    if (src->numel == 0)
        return RA_OK;

    /* the scale's strides along the axes it covers whole are 0: one pass per element */
    int64_t sst[4] = {0, 0, 0, 0};
    for (int i = 0; i < src->rank; i++)
        sst[i] = scale->shape[i] == 1 ? 0 : scale->strides[i];
    float *sc = scale->data;
    const int64_t *n = src->shape;
    int64_t i[4];
    for (i[0] = 0; i[0] < scale->shape[0]; i[0]++)
        for (i[1] = 0; i[1] < scale->shape[1]; i[1]++)
            for (i[2] = 0; i[2] < scale->shape[2]; i[2]++)
                for (i[3] = 0; i[3] < scale->shape[3]; i[3]++)
                    sc[offset(scale->strides, i)] = 0.0f;
    for (i[0] = 0; i[0] < n[0]; i[0]++)
        for (i[1] = 0; i[1] < n[1]; i[1]++)
            for (i[2] = 0; i[2] < n[2]; i[2]++)
                for (i[3] = 0; i[3] < n[3]; i[3]++) {
                    float x = fabsf(ra__load_f32(src->data, src->dtype, offset(src->strides, i)));
                    float *m = &sc[offset(sst, i)];
                    if (x > *m) /* NaN never counts */
                        *m = x;
                }
    const float qmax = qmax_of(dst->dtype);
    for (i[0] = 0; i[0] < scale->shape[0]; i[0]++)
        for (i[1] = 0; i[1] < scale->shape[1]; i[1]++)
            for (i[2] = 0; i[2] < scale->shape[2]; i[2]++)
                for (i[3] = 0; i[3] < scale->shape[3]; i[3]++) {
                    float *m = &sc[offset(scale->strides, i)];
                    *m = *m > 0.0f && isfinite(*m) ? *m / qmax : 1.0f;
                }
    uint8_t *out = dst->data;
    for (i[0] = 0; i[0] < n[0]; i[0]++)
        for (i[1] = 0; i[1] < n[1]; i[1]++)
            for (i[2] = 0; i[2] < n[2]; i[2]++)
                for (i[3] = 0; i[3] < n[3]; i[3]++) {
                    const float x = ra__load_f32(src->data, src->dtype, offset(src->strides, i)) /
                                    sc[offset(sst, i)];
                    uint8_t *o = &out[offset(dst->strides, i)];
                    if (dst->dtype == RA_DTYPE_I8) {
                        const float r = isnan(x) ? 0.0f : fmaxf(-qmax, fminf(qmax, rintf(x)));
                        *(int8_t *)o = (int8_t)r;
                    } else {
                        *o = dst->dtype == RA_DTYPE_FP8_E4M3 ? f32_to_e4m3(x) : f32_to_e5m2(x);
                    }
                }
    return RA_OK;
}
