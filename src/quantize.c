/* ra_quantize: a float cache slice into i8 or fp8 values and their scales (raggedattn.h). */
#include <math.h>
#include <stdio.h>

#include "dtype.h"
#include "status_internal.h"
#include "tensor_internal.h"

/* Round to nearest even, saturating at the largest finite value (448); NaN is 0x7f. */
static uint8_t f32_to_e4m3(float f)
{
    const uint8_t sign = signbit(f) ? 0x80 : 0;
    const float a = fabsf(f);
    if (isnan(f))
        return 0x7f;
    if (a >= 448.0f)
        return sign | 0x7e;
    if (a < 0x1p-6f) /* subnormal, or the first normal after rounding up: m / 8 * 2^-6 */
        return sign | (uint8_t)rintf(a * 0x1p9f);
    uint32_t x = ra__f32_to_bits(a);
    x += 0x7ffffu + ((x >> 20) & 1u); /* round the mantissa to 3 bits */
    const int e = (int)(x >> 23) - 127 + 7;
    const uint8_t code = (uint8_t)((e << 3) | ((x >> 20) & 7u));
    return sign | (code > 0x7e ? 0x7e : code);
}

/* Round to nearest even, saturating at the largest finite value (57344); NaN is 0x7e. */
static uint8_t f32_to_e5m2(float f)
{
    const uint8_t sign = signbit(f) ? 0x80 : 0;
    const float a = fabsf(f);
    if (isnan(f))
        return 0x7e;
    if (a >= 57344.0f)
        return sign | 0x7b;
    if (a < 0x1p-14f) /* subnormal, or the first normal after rounding up: m / 4 * 2^-14 */
        return sign | (uint8_t)rintf(a * 0x1p16f);
    uint32_t x = ra__f32_to_bits(a);
    x += 0xfffffu + ((x >> 21) & 1u); /* round the mantissa to 2 bits */
    const int e = (int)(x >> 23) - 127 + 15;
    const uint8_t code = (uint8_t)((e << 2) | ((x >> 21) & 3u));
    return sign | (code > 0x7b ? 0x7b : code);
}

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
