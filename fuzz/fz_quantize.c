/* The quantize operation: ra_quantize on fuzz-built src, dst and scale (ranks 1..4, small
 * extents, every dtype now and then, broadcast or wrong scale shapes, fuzz-chosen layouts,
 * outputs placed over the input or each other). The status follows the header; a failure
 * writes nothing, a success writes only dst and scale, each scale is max|x| / qmax of the
 * elements it covers (1 when they are all 0) and each code a nearest one to x / scale. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz_attn.h"

enum { Q_SRC, Q_DST, Q_SCALE, Q_N };

static const int64_t tab_dim[] = {1, 2, 3, 4, 5, 7, 8, 16, 33, 1, 2, 0};
static const ra_dtype tab_src[] = {RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F16, RA_DTYPE_BF16,
                                   RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16, RA_DTYPE_I8};
static const ra_dtype tab_dst[] = {RA_DTYPE_I8, RA_DTYPE_FP8_E4M3, RA_DTYPE_FP8_E5M2,
                                   RA_DTYPE_I8, RA_DTYPE_FP8_E4M3, RA_DTYPE_FP8_E5M2,
                                   RA_DTYPE_F32, RA_DTYPE_F16};

/* Shapes: src and dst alike, the scale broadcast along the axes the mask leaves out (last axis
 * always 1), now and then one wrong extent. */
static void build_shapes(fz_in *in, fz_case *c)
{
    fz_tensor *src = &c->t[Q_SRC], *dst = &c->t[Q_DST], *sc = &c->t[Q_SCALE];
    const int rank = 1 + fz_u8(in) % 4;
    int64_t d[4] = {1, 1, 1, 1};
    for (int i = 0; i < rank; i++)
        d[i] = FZ_PICK(in, tab_dim);
    while (d[0] * d[1] * d[2] * d[3] > 4096) /* small: the checks enumerate every element */
        d[0] = (d[0] + 1) / 2, d[rank - 1] = (d[rank - 1] + 1) / 2;
    fz_set_shape(src, tab_src[fz_u8(in) % 8], rank, d[0], d[1], d[2], d[3]);
    fz_set_shape(dst, tab_dst[fz_u8(in) % 8], rank, d[0], d[1], d[2], d[3]);
    const uint8_t mask = fz_u8(in);
    int64_t s[4];
    for (int i = 0; i < 4; i++)
        s[i] = i < rank - 1 && ((mask >> i) & 1) ? d[i] : 1;
    if (mask >= 240) { /* RA_ERR_SHAPE: neither the data's extent nor 1 (or a last one not 1) */
        const int a = mask % rank;
        s[a] = a == rank - 1 && d[a] > 1 ? d[a] : d[a] + 1 + mask % 2;
    }
    fz_set_shape(sc, fz_u8(in) % 16 == 15 ? RA_DTYPE_F16 : RA_DTYPE_F32, rank, s[0], s[1], s[2],
                 s[3]);
}

/* The header's rules for ra_quantize, applied to the tensors as built. */
static fz_expect expect_quantize(const fz_case *c)
{
    const fz_tensor *t = c->t, *src = &t[Q_SRC], *dst = &t[Q_DST], *sc = &t[Q_SCALE];
    fz_expect e = {0, 0};
    for (int r = 0; r < Q_N; r++)
        if (!t[r].present)
            e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
    if ((src->present && !fz_dtype_is_float(src->dt)) ||
        (dst->present && !fz_dtype_is_quant(dst->dt)) || (sc->present && sc->dt != RA_DTYPE_F32))
        e.must |= FZ_BIT(RA_ERR_DTYPE);
    if (src->present && dst->present) {
        bool same = src->rank == dst->rank;
        for (int i = 0; same && i < src->rank; i++)
            same = src->shape[i] == dst->shape[i];
        if (!same)
            e.must |= FZ_BIT(RA_ERR_SHAPE);
    }
    if (dst->present && sc->present) {
        fz_tensor as_quant = *dst; /* the scale rule of ra_tensor_wrap_quantized */
        as_quant.dt = RA_DTYPE_I8;
        as_quant.present = true;
        e.must |= fz_quant_expect_wrap(&as_quant, sc).must & FZ_BIT(RA_ERR_SHAPE);
    }
    /* dst and scale may not overlap themselves, each other or src */
    for (int r = Q_DST; r <= Q_SCALE; r++) {
        if (!t[r].present)
            continue;
        if (fz_self_overlaps(&t[r]))
            e.must |= FZ_BIT(RA_ERR_ALIAS);
        else if (!fz_layout_nested(&t[r]))
            e.may |= FZ_BIT(RA_ERR_ALIAS);
        for (int x = 0; x < r; x++) {
            bool bytes, spans;
            fz_overlap(c, &t[r], &t[x], &bytes, &spans);
            if (bytes)
                e.must |= FZ_BIT(RA_ERR_ALIAS);
            else if (spans)
                e.may |= FZ_BIT(RA_ERR_ALIAS);
        }
    }
    return e;
}

/* src values of one magnitude class, with zeros, specials and an all-zero row now and then. */
static void fill_src(fz_in *in, fz_case *c)
{
    const fz_tensor *src = &c->t[Q_SRC];
    if (!src->present || fz_numel(src) == 0)
        return;
    fz_rng rng = {fz_u64(in)};
    const int cls = fz_u8(in) % 8;
    const uint8_t zeros = fz_u8(in); /* one slice, or everything, zero: scales of 1 */
    int64_t idx[4] = {0, 0, 0, 0};
    do {
        const bool zero = zeros >= 250 || (zeros >= 128 && idx[0] == zeros % 4);
        fz_put(c, src, idx, zero ? 0.0 : fz_attn_value(&rng, cls));
    } while (fz_next_index(src, idx));
    for (uint8_t ns = fz_u8(in), i = 0; ns >= 200 && i < 1 + (ns - 200) % 4; i++) {
        int64_t at = (int64_t)(fz_u32(in) % (uint64_t)fz_numel(src));
        for (int a = src->rank - 1; a >= 0; a--)
            idx[a] = at % src->shape[a], at /= src->shape[a];
        fz_put(c, src, idx, fz_attn_special(fz_u8(in)));
    }
}

/* Whether code value q is a nearest code of dt to y (saturated to +-qmax). */
static bool nearest(ra_dtype dt, double q, double y)
{
    const double qmax = fz_quant_max(dt);
    y = fmax(-qmax, fmin(qmax, y));
    return fabs(q - y) <= fabs(fz_code_value(dt, fz_code_of(dt, y)) - y);
}

/* After a success: every scale from its elements' max |x|, every code from x / scale. */
static void check_values(const fz_case *c)
{
    const fz_tensor *src = &c->t[Q_SRC], *dst = &c->t[Q_DST], *sc = &c->t[Q_SCALE];
    const int64_t n = fz_numel(src), ns = fz_numel(sc);
    if (n == 0)
        return;
    double *amax = calloc((size_t)ns, sizeof *amax);
    bool *bad = calloc((size_t)ns, sizeof *bad); /* a group with a non-finite value */
    FZ_CHECK(amax && bad, "harness out of memory");
    int64_t idx[4] = {0, 0, 0, 0}, si[4];
    do {
        const double x = fz_get(c, src, idx);
        const int64_t g = fz_scale_index(sc, idx, si);
        bad[g] |= !isfinite(x);
        amax[g] = fmax(amax[g], fabs(x));
    } while (fz_next_index(src, idx));
    const double qmax = fz_quant_max(dst->dt);
    do {
        const int64_t g = fz_scale_index(sc, idx, si);
        const double x = fz_get(c, src, idx), s = fz_get(c, sc, si), q = fz_get_code(c, dst, idx);
        const float want_s = amax[g] > 0 ? (float)(amax[g] / qmax) : 1.0f;
        FZ_CHECK(bad[g] || s == (double)want_s, "ra_quantize: scale %lld = %a, expected "
                 "max|x| / qmax = %a / %g = %a", (long long)g, s, amax[g], qmax, (double)want_s);
        if (isnan(x)) /* NaN stays NaN in fp8 and is 0 in i8 */
            FZ_CHECK(dst->dt == RA_DTYPE_I8 ? q == 0 : isnan(q),
                     "ra_quantize: NaN at element %lld,%lld,%lld,%lld gave code value %g",
                     (long long)idx[0], (long long)idx[1], (long long)idx[2], (long long)idx[3],
                     q);
        if (bad[g] || s == 0) /* a scale that underflows to 0: x / 0 is not a value */
            continue;
        const double yd = x / s, yf = (double)((float)x / (float)s);
        FZ_CHECK(nearest(dst->dt, q, yd) || nearest(dst->dt, q, yf), "ra_quantize: element "
                 "%lld,%lld,%lld,%lld: x = %a, scale %a, code value %g is not a nearest code to "
                 "x / scale = %.9g", (long long)idx[0], (long long)idx[1], (long long)idx[2],
                 (long long)idx[3], x, s, q, yd);
    } while (fz_next_index(src, idx));
    free(amax);
    free(bad);
}

void fz_op_quantize(fz_in *in)
{
    fz_case c;
    memset(&c, 0, sizeof c);
    c.n = Q_N;
    build_shapes(in, &c);
    for (int r = 0; r < Q_N; r++) {
        fz_tensor *t = &c.t[r];
        t->host = r;
        fz_mutate(in, t, false);
        fz_choose_layout(in, t, r == Q_SRC);
        t->null_data = fz_u8(in) & 1; /* honoured only for empty tensors */
    }
    const uint8_t share = fz_u8(in); /* dst or scale over src's or the other's memory */
    if (share >= 224) {
        const int x = Q_DST + share % 2, y = (share >> 1) % 2 ? Q_SRC : Q_DST + !(share % 2);
        if (c.t[x].present && c.t[y].present && c.t[y].host == y && c.t[x].host == x) {
            c.t[x].host = y;
            c.t[x].off = 4 * (size_t)(fz_u8(in) % 16);
        }
    }
    fz_case_materialize(&c);
    fill_src(in, &c);
    if (getenv("FZ_DEBUG"))
        for (int r = 0; r < Q_N; r++)
            fprintf(stderr, "ra_quantize %s: present %d dt %d rank %d [%lld,%lld,%lld,%lld] "
                    "strides [%lld,%lld,%lld,%lld] host %d off %zu\n",
                    r == Q_SRC ? "src" : r == Q_DST ? "dst" : "scale", c.t[r].present,
                    (int)c.t[r].dt, c.t[r].rank, (long long)c.t[r].shape[0],
                    (long long)c.t[r].shape[1], (long long)c.t[r].shape[2],
                    (long long)c.t[r].shape[3], (long long)c.t[r].st[0], (long long)c.t[r].st[1],
                    (long long)c.t[r].st[2], (long long)c.t[r].st[3], c.t[r].host, c.t[r].off);
    fz_expect e = expect_quantize(&c);
    const ra_tensor *h[Q_N];
    for (int r = 0; r < Q_N; r++)
        h[r] = c.t[r].present ? c.t[r].h : NULL;
    fz_snapshot(&c);
    fz_mark_last_error();
    ra_status s = ra_quantize(h[Q_SRC], (ra_tensor *)h[Q_DST], (ra_tensor *)h[Q_SCALE]);
    fz_check_status(&e, s, "ra_quantize");
    static const int outs[] = {Q_DST, Q_SCALE};
    if (s != RA_OK) {
        fz_check_new_error("ra_quantize");
        fz_check_untouched(&c, NULL, 0, "ra_quantize");
    } else {
        fz_check_untouched(&c, outs, 2, "ra_quantize");
        check_values(&c);
    }
    fz_case_free(&c);
}
