/* Quantized K/V for the attention operations: the quantization trailer, quantized dtypes and
 * their scale tensors (valid broadcasts, wrong shapes, ranks or dtypes, no scale at all), scale
 * values (ordinary, tiny, huge, negative, NaN, infinite, zero; poison where no valid position
 * reads them), and the header's rules for ra_tensor_wrap_quantized and for K/V dtypes. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "fz.h"

fz_in fz_split_quant(fz_in *in)
{
    return fz_split_trailer(in, 0x51, 0xA8);
}

static const ra_dtype quant_dts[] = {RA_DTYPE_I8, RA_DTYPE_FP8_E4M3, RA_DTYPE_FP8_E5M2};

bool fz_quant_pick_dtype(fz_in *qs, fz_tensor *t)
{
    if (!qs->p)
        return false;
    const uint8_t x = fz_u8(qs);
    if (x % 4 == 3)
        return false; /* this one stays as it is */
    t->dt = quant_dts[x % 4];
    return true;
}

/* How a scale is shaped against its data. */
enum { SCALE_PER_TENSOR, SCALE_BROADCAST, SCALE_WRONG_EXTENT, SCALE_WRONG_RANK,
       SCALE_WRONG_DTYPE, SCALE_NULL, SCALE_NONE };

static int scale_form(uint8_t x)
{
    static const int forms[16] = {SCALE_PER_TENSOR,   SCALE_PER_TENSOR,  SCALE_BROADCAST,
                                  SCALE_BROADCAST,    SCALE_BROADCAST,   SCALE_BROADCAST,
                                  SCALE_BROADCAST,    SCALE_BROADCAST,   SCALE_BROADCAST,
                                  SCALE_BROADCAST,    SCALE_BROADCAST,   SCALE_WRONG_EXTENT,
                                  SCALE_WRONG_RANK,   SCALE_WRONG_DTYPE, SCALE_NULL,
                                  SCALE_NONE};
    return forms[x % 16];
}

/* A scale shape for data d: each axis but the last d's extent where mask has its bit, else 1. */
static void broadcast_shape(const fz_tensor *d, unsigned mask, fz_tensor *sc)
{
    sc->rank = d->rank;
    for (int i = 0; i < 4; i++)
        sc->shape[i] = i < d->rank - 1 && ((mask >> i) & 1) ? d->shape[i] : 1;
}

void fz_quant_build_scale(fz_in *qs, fz_case *c, int data, int scale)
{
    fz_tensor *d = &c->t[data], *sc = &c->t[scale];
    if (!qs->p || !d->present || (!fz_dtype_is_quant(d->dt) && fz_u8(qs) % 8 != 0))
        return; /* a float tensor gets a scale (RA_ERR_DTYPE) one time in eight */
    const uint8_t x = fz_u8(qs), y = fz_u8(qs);
    const int form = scale_form(x);
    if (form == SCALE_NONE)
        return; /* wrapped plainly: a quantized dtype without a scale */
    d->quant = true;
    d->scale = scale;
    sc->present = true;
    sc->dt = RA_DTYPE_F32;
    sc->host = scale;
    broadcast_shape(d, form == SCALE_PER_TENSOR ? 0u : x >> 4, sc);
    if (form == SCALE_WRONG_EXTENT) { /* one extent neither the data's nor 1, or last not 1 */
        const int a = y % d->rank;
        sc->shape[a] = a == d->rank - 1 && d->shape[a] > 1 ? d->shape[a] : d->shape[a] + 1 + (y >> 7);
    } else if (form == SCALE_WRONG_RANK) {
        sc->rank = d->rank == 4 || (y & 1) ? d->rank - 1 : d->rank + 1;
        if (sc->rank == 0)
            sc->rank = 2;
    } else if (form == SCALE_WRONG_DTYPE) {
        static const ra_dtype wrong[] = {RA_DTYPE_F16, RA_DTYPE_BF16, RA_DTYPE_I32, RA_DTYPE_I8};
        sc->dt = wrong[y % 4];
    }
    fz_row_major(sc, 0);
    fz_choose_layout(qs, sc, true);
    sc->present = form != SCALE_NULL; /* the wrap then gets a NULL scale */
}

void fz_quant_share(fz_in *qs, fz_case *c, const int *outs, int n, const int *scales, int ns)
{
    if (!qs->p)
        return;
    const uint8_t x = fz_u8(qs);
    const int o = outs[x % n], s = scales[fz_u8(qs) % ns];
    if (x < 232 || !c->t[o].present || !c->t[s].present || c->t[s].host != s ||
        c->t[o].host != o)
        return;
    c->t[o].host = s;
    c->t[o].off = 4 * (size_t)(fz_u8(qs) % 4);
}

fz_expect fz_quant_expect_wrap(const fz_tensor *t, const fz_tensor *sc)
{
    fz_expect e = {0, 0};
    if (!sc->present) {
        e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
        return e;
    }
    if (!fz_dtype_is_quant(t->dt) || sc->dt != RA_DTYPE_F32)
        e.must |= FZ_BIT(RA_ERR_DTYPE);
    bool shape_ok = sc->rank == t->rank;
    for (int i = 0; shape_ok && i < t->rank; i++)
        shape_ok = (sc->shape[i] == t->shape[i] || sc->shape[i] == 1) &&
                   (i < t->rank - 1 || sc->shape[i] == 1);
    if (!shape_ok)
        e.must |= FZ_BIT(RA_ERR_SHAPE);
    return e;
}

void fz_quant_expect_kv(const fz_tensor *kv, bool takes_quant, fz_expect *e)
{
    if (!kv->present || fz_dtype_is_float(kv->dt))
        return;
    if (!fz_dtype_is_quant(kv->dt)) {
        e->must |= FZ_BIT(RA_ERR_DTYPE);
        return;
    }
    if (!takes_quant) /* the reference functions compute the seed's arithmetic only */
        e->must |= FZ_BIT(RA_ERR_UNSUPPORTED);
    /* The header names no code for a quantized dtype wrapped without a scale: either fits. */
    if (!kv->quant)
        e->must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT) | FZ_BIT(RA_ERR_DTYPE);
}

double fz_quant_code(fz_rng *r, ra_dtype dt, int cls)
{
    for (;;) {
        uint8_t b = (uint8_t)fz_rng_next(r);
        if (cls % 2 == 0) /* small codes: i8 in [-8, 7], fp8 below 1 */
            b = dt == RA_DTYPE_I8 ? (uint8_t)((int8_t)(b & 15) - 8) : (uint8_t)(b & 0xb7);
        const double v = fz_code_value(dt, b);
        if (isfinite(v))
            return v;
    }
}

int64_t fz_scale_index(const fz_tensor *sc, const int64_t *idx, int64_t sidx[4])
{
    int64_t f = 0;
    for (int i = 0; i < 4; i++)
        sidx[i] = i < sc->rank && sc->shape[i] != 1 ? idx[i] : 0; /* broadcast: its one scale */
    for (int i = 0; i < sc->rank; i++)
        f = f * sc->shape[i] + sidx[i];
    return f;
}

/* Which scale elements some valid position reads. */
static bool *scales_used(const fz_tensor *d, const fz_tensor *sc, const bool *used)
{
    const int64_t n = fz_numel(sc);
    bool *u = calloc((size_t)(n ? n : 1), sizeof *u);
    FZ_CHECK(u != NULL, "harness out of memory");
    if (fz_numel(d) == 0)
        return u;
    int64_t idx[4] = {0, 0, 0, 0}, si[4], e = 0;
    do
        if (!used || used[e])
            u[fz_scale_index(sc, idx, si)] = true;
    while (e++, fz_next_index(d, idx));
    return u;
}

void fz_quant_fill_scale(fz_in *qs, fz_case *c, int data, const bool *used, bool poison)
{
    const fz_tensor *d = &c->t[data];
    if (!d->quant)
        return;
    const fz_tensor *sc = &c->t[d->scale];
    const int64_t n = fz_numel(sc);
    if (n == 0)
        return;
    const uint8_t mode = fz_u8(qs);
    static const double mags[] = {1, 1, 1, 1, 0x1p-6, 0x1p6, 0x1p-120, 0x1p100};
    const double base = mags[mode % 8] / fz_quant_max(d->dt) * ((mode & 0x30) == 0x30 ? -1 : 1);
    fz_rng rng = {fz_u64(qs)};
    bool *u = scales_used(d, sc, used);
    int64_t idx[4] = {0, 0, 0, 0};
    for (int pass = 0; pass < 2; pass++) { /* unused first, so that used elements win */
        int64_t e = 0;
        do {
            const uint64_t r = fz_rng_next(&rng);
            if (u[e] != (pass == 1))
                continue;
            const double x = u[e] || !poison ? base * (0.5 + (double)(r % 1024) / 1024)
                                             : (r & 1) ? NAN : 3e38;
            fz_put(c, sc, idx, x);
        } while (e++, fz_next_index(sc, idx));
    }
    free(u);
    const uint8_t plant = fz_u8(qs);
    static const double special[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, -1.0, 1e-45, FLT_MAX};
    for (int i = 0; plant >= 192 && i < 1 + plant % 4; i++) {
        int64_t at = (int64_t)(fz_u32(qs) % (uint64_t)n);
        for (int a = sc->rank - 1; a >= 0; a--)
            idx[a] = at % sc->shape[a], at /= sc->shape[a];
        fz_put(c, sc, idx, special[fz_u8(qs) % 8]);
    }
}

bool fz_nan_at(const fz_case *c, const fz_tensor *t, const int64_t *idx)
{
    return isnan(fz_get_code(c, t, idx)) || isnan(fz_get_scale(c, t, idx));
}
