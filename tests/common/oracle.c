/* Test helpers and double-precision oracles; see oracle.h. Nothing here includes a library
 * header other than the public API, and nothing calls the library except ra_tensor_wrap. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"

/* ---- dtypes --------------------------------------------------------------------------- */

uint16_t or_f32_to_f16(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    if (isnan(x))
        return (uint16_t)(sign | 0x7e00u);
    double a = fabs((double)x);
    if (a >= 65520.0) /* halfway between 65504 (max f16) and 2^16 rounds up to Inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < ldexp(1.0, -14)) {
        /* Subnormal: multiples of 2^-24. rint rounds to nearest even (default mode); 1024
         * carries into the exponent field and becomes the smallest normal, as it should. */
        return (uint16_t)(sign | (uint16_t)rint(a * ldexp(1.0, 24)));
    }
    int e;
    double fr = frexp(a, &e); /* a = fr * 2^e, fr in [0.5, 1) */
    int E = e - 1;            /* a = (1 + f) * 2^E */
    double mant = rint((ldexp(fr, 1) - 1.0) * 1024.0);
    if (mant >= 1024.0) {
        mant = 0.0;
        E++;
    }
    if (E > 15)
        return (uint16_t)(sign | 0x7c00u);
    return (uint16_t)(sign | (uint16_t)((E + 15) << 10) | (uint16_t)mant);
}

float or_f16_to_f32(uint16_t h)
{
    int E = (h >> 10) & 0x1f;
    int mant = h & 0x3ff;
    double a;
    if (E == 0)
        a = ldexp((double)mant, -24);
    else if (E == 31)
        a = mant ? NAN : INFINITY;
    else
        a = ldexp((double)(1024 + mant), E - 25);
    return (float)((h & 0x8000u) ? -a : a);
}

uint16_t or_f32_to_bf16(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if (isnan(x))
        return (uint16_t)((bits >> 16) | 0x0040u); /* keep sign and payload top, force quiet */
    /* Add just under half an ulp of bf16, plus the lowest kept bit for ties-to-even; a carry
     * into the exponent is the correct rounding (up to Inf at the top). */
    uint32_t lsb = (bits >> 16) & 1u;
    bits += 0x7fffu + lsb;
    return (uint16_t)(bits >> 16);
}

float or_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

float or_round_to(ra_dtype dt, float x)
{
    switch (dt) {
    case RA_DTYPE_F16:
        return or_f16_to_f32(or_f32_to_f16(x));
    case RA_DTYPE_BF16:
        return or_bf16_to_f32(or_f32_to_bf16(x));
    default:
        return x;
    }
}

size_t or_dtype_size(ra_dtype dt)
{
    if (dt == RA_DTYPE_I8 || dt == RA_DTYPE_FP8_E4M3 || dt == RA_DTYPE_FP8_E5M2)
        return 1;
    return (dt == RA_DTYPE_F16 || dt == RA_DTYPE_BF16) ? 2 : 4;
}

/* FP8 codes by their definition: sign, exponent field e with bias `bias`, mantissa field m of
 * `mbits` bits; e = 0 is subnormal. E4M3 (e4m3fn) has no infinities, and e = 15, m = 7 is NaN;
 * E5M2 follows binary16 (e = 31: infinity or NaN). */
static double fp8_value(uint8_t x, int mbits, int bias, bool e4m3)
{
    const int e = (x & 0x7f) >> mbits, m = x & ((1 << mbits) - 1), emax = e4m3 ? 15 : 31;
    double v;
    if (e4m3 && e == emax && m == (1 << mbits) - 1)
        return NAN;
    if (!e4m3 && e == emax)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, 1 - bias - mbits);
    else
        v = ldexp(1.0 + (double)m / (double)(1 << mbits), e - bias);
    return (x & 0x80) ? -v : v;
}

double or_fp8_to_f64(ra_dtype dt, uint8_t x)
{
    return dt == RA_DTYPE_FP8_E4M3 ? fp8_value(x, 3, 7, true) : fp8_value(x, 2, 15, false);
}

/* The code nearest to x, ties to the even code (by searching every code). */
static uint8_t fp8_nearest(ra_dtype dt, double x)
{
    uint8_t best = 0;
    double best_d = INFINITY;
    for (int c = 0; c < 256; c++) {
        double v = or_fp8_to_f64(dt, (uint8_t)c);
        if (!isfinite(v))
            continue;
        double d = fabs(v - x);
        if (d < best_d || (d == best_d && (c & 1) == 0 && ((v < 0) == (x < 0)))) {
            best = (uint8_t)c;
            best_d = d;
        }
    }
    return isnan(x) ? (dt == RA_DTYPE_FP8_E4M3 ? 0x7f : 0x7e) : best;
}

const char *or_dtype_name(ra_dtype dt)
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
    return "?";
}

/* ---- random numbers --------------------------------------------------------------------- */

or_rng or_rng_seed(uint64_t seed)
{
    or_rng r = {seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull};
    return r;
}

uint64_t or_rng_next(or_rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double or_rng_uniform(or_rng *r, double lo, double hi)
{
    double u = (double)(or_rng_next(r) >> 11) * 0x1.0p-53;
    return lo + (hi - lo) * u;
}

int64_t or_rng_int(or_rng *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1u;
    return lo + (int64_t)(or_rng_next(r) % span);
}

/* ---- test buffers ----------------------------------------------------------------------- */

static void fill_nan_pattern(or_buf *b)
{
    size_t es = or_dtype_size(b->dtype);
    for (size_t off = 0; off + es <= b->bytes; off += es) {
        if (b->dtype == RA_DTYPE_F32) {
            uint32_t nan = 0x7fc00000u;
            memcpy(b->data + off, &nan, 4);
        } else if (b->dtype == RA_DTYPE_I32) {
            uint32_t junk = 0x5A5A5A5Au;
            memcpy(b->data + off, &junk, 4);
        } else if (es == 1) {
            /* 0x7f is a NaN in e4m3 and e5m2 and 127 in int8 */
            b->data[off] = 0x7f;
        } else {
            uint16_t nan = b->dtype == RA_DTYPE_F16 ? 0x7e00u : 0x7fc0u;
            memcpy(b->data + off, &nan, 2);
        }
    }
}

void or_buf_init(or_buf *b, ra_dtype dt, int rank, const int64_t *shape, const int64_t *strides)
{
    memset(b, 0, sizeof *b);
    b->dtype = dt;
    b->rank = rank;
    b->numel = 1;
    int64_t run = 1;
    for (int i = rank - 1; i >= 0; i--) {
        b->shape[i] = shape[i];
        b->strides[i] = strides ? strides[i] : run;
        run *= shape[i] > 0 ? shape[i] : 1;
    }
    int64_t last = 0;
    for (int i = 0; i < rank; i++) {
        b->numel *= shape[i];
        if (shape[i] > 0)
            last += (shape[i] - 1) * b->strides[i];
    }
    size_t need = (size_t)(last + 1) * or_dtype_size(dt);
    b->bytes = (need + 63) / 64 * 64;
    b->data = aligned_alloc(64, b->bytes);
    assert_non_null(b->data);
    fill_nan_pattern(b);
    ra_status s = ra_tensor_wrap(&b->t, dt, rank, shape, b->strides, b->data);
    if (s != RA_OK)
        fail_msg("ra_tensor_wrap failed: %s (%s)", ra_status_string(s), ra_last_error());
}

void or_buf_init_padded(or_buf *b, ra_dtype dt, int rank, const int64_t *shape, int64_t pad)
{
    int64_t st[4];
    int64_t run = 1;
    for (int i = rank - 1; i >= 0; i--) {
        st[i] = run;
        run *= shape[i] + pad;
    }
    or_buf_init(b, dt, rank, shape, st);
}

void or_buf_free(or_buf *b)
{
    ra_tensor_destroy(b->t);
    free(b->data);
    memset(b, 0, sizeof *b);
}

int64_t or_buf_offset(const or_buf *b, const int64_t *idx)
{
    int64_t off = 0;
    for (int i = 0; i < b->rank; i++)
        off += idx[i] * b->strides[i];
    return off;
}

static double load(const void *data, ra_dtype dt, int64_t off)
{
    const unsigned char *p = (const unsigned char *)data + (size_t)off * or_dtype_size(dt);
    switch (dt) {
    case RA_DTYPE_F32: {
        float x;
        memcpy(&x, p, 4);
        return x;
    }
    case RA_DTYPE_F16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return or_f16_to_f32(h);
    }
    case RA_DTYPE_BF16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return or_bf16_to_f32(h);
    }
    case RA_DTYPE_I32: {
        int32_t i;
        memcpy(&i, p, 4);
        return i;
    }
    case RA_DTYPE_I8:
        return (double)*(const int8_t *)p;
    case RA_DTYPE_FP8_E4M3:
    case RA_DTYPE_FP8_E5M2:
        return or_fp8_to_f64(dt, *p);
    }
    return NAN;
}

double or_buf_get(const or_buf *b, const int64_t *idx)
{
    return load(b->data, b->dtype, or_buf_offset(b, idx));
}

void or_buf_set(or_buf *b, const int64_t *idx, double x)
{
    unsigned char *p = b->data + (size_t)or_buf_offset(b, idx) * or_dtype_size(b->dtype);
    float f = (float)x;
    switch (b->dtype) {
    case RA_DTYPE_F32:
        memcpy(p, &f, 4);
        break;
    case RA_DTYPE_F16: {
        uint16_t h = or_f32_to_f16(f);
        memcpy(p, &h, 2);
        break;
    }
    case RA_DTYPE_BF16: {
        uint16_t h = or_f32_to_bf16(f);
        memcpy(p, &h, 2);
        break;
    }
    case RA_DTYPE_I32: {
        int32_t i = (int32_t)x;
        memcpy(p, &i, 4);
        break;
    }
    case RA_DTYPE_I8: /* the stored value q, rounded and saturated */
        *(int8_t *)p = (int8_t)(isnan(x) ? 0 : fmax(-128.0, fmin(127.0, nearbyint(x))));
        break;
    case RA_DTYPE_FP8_E4M3:
    case RA_DTYPE_FP8_E5M2:
        *p = fp8_nearest(b->dtype, x);
        break;
    }
}

/* Calls fn for every logical index in row-major order. */
static void for_each_index(const or_buf *b, void (*fn)(or_buf *, const int64_t *, void *),
                           void *user)
{
    if (b->numel == 0)
        return;
    int64_t idx[4] = {0, 0, 0, 0};
    for (;;) {
        fn((or_buf *)b, idx, user);
        int ax = b->rank - 1;
        while (ax >= 0 && ++idx[ax] == b->shape[ax])
            idx[ax--] = 0;
        if (ax < 0)
            return;
    }
}

struct fill_ctx {
    or_rng *r;
    double lo, hi;
};

static void fill_one(or_buf *b, const int64_t *idx, void *user)
{
    struct fill_ctx *c = user;
    or_buf_set(b, idx, or_rng_uniform(c->r, c->lo, c->hi));
}

void or_buf_fill_uniform(or_buf *b, or_rng *r, double lo, double hi)
{
    struct fill_ctx c = {r, lo, hi};
    for_each_index(b, fill_one, &c);
}

void or_buf_fill_bytes(or_buf *b, unsigned char byte)
{
    memset(b->data, byte, b->bytes);
}

struct gather_ctx {
    float *out;
    int64_t n;
};

static void gather_one(or_buf *b, const int64_t *idx, void *user)
{
    struct gather_ctx *c = user;
    c->out[c->n++] = (float)or_buf_get(b, idx);
}

void or_buf_gather_f32(const or_buf *b, float *out)
{
    struct gather_ctx c = {out, 0};
    for_each_index(b, gather_one, &c);
}

/* ---- oracle views and states -------------------------------------------------------------- */

or_view or_view_of(const or_buf *b, int a0, int a1, int a2, int a3)
{
    or_view v;
    int axes[4] = {a0, a1, a2, a3};
    v.data = b->data;
    v.dtype = b->dtype;
    for (int i = 0; i < 4; i++)
        v.st[i] = axes[i] < 0 ? 0 : b->strides[axes[i]];
    return v;
}

double or_view_get(const or_view *v, int64_t i0, int64_t i1, int64_t i2, int64_t i3)
{
    return load(v->data, v->dtype, i0 * v->st[0] + i1 * v->st[1] + i2 * v->st[2] + i3 * v->st[3]);
}

void or_state_alloc(or_state *s, int64_t B, int64_t H, int64_t D)
{
    size_t bh = (size_t)(B * H) + 1, bhd = (size_t)(B * H * D) + 1;
    s->B = B;
    s->H = H;
    s->D = D;
    s->m = calloc(bh, sizeof(double));
    s->l = calloc(bh, sizeof(double));
    s->o_un = calloc(bhd, sizeof(double));
    s->o = calloc(bhd, sizeof(double));
    assert_true(s->m && s->l && s->o_un && s->o);
}

void or_state_free(or_state *s)
{
    free(s->m);
    free(s->l);
    free(s->o_un);
    free(s->o);
    memset(s, 0, sizeof *s);
}

/* ---- the attention oracle (docs/design.md, "The attention computed") ---------------------- */

void or_attention(const or_dims *d, const or_view *q, const or_view *k, const or_view *v,
                  const int32_t *lengths, double scale, or_state *out)
{
    int64_t group = d->Hkv > 0 ? d->Hq / d->Hkv : 1;
    double *s = malloc(sizeof(double) * (size_t)(d->S + 1));
    assert_non_null(s);
    for (int64_t b = 0; b < d->B; b++) {
        int64_t len = lengths[b];
        for (int64_t h = 0; h < d->Hq; h++) {
            int64_t j = h / group;
            int64_t bh = b * d->Hq + h;
            double *o_un = out->o_un + bh * d->D, *o = out->o + bh * d->D;
            double m = -INFINITY, l = 0.0;
            for (int64_t t = 0; t < len; t++) {
                double dot = 0.0;
                for (int64_t x = 0; x < d->D; x++)
                    dot += or_view_get(q, b, h, x, 0) * or_view_get(k, b, t, j, x);
                s[t] = scale * dot;
                if (s[t] > m || isnan(s[t]))
                    m = isnan(m) ? m : s[t];
            }
            for (int64_t x = 0; x < d->D; x++)
                o_un[x] = 0.0;
            for (int64_t t = 0; t < len; t++) {
                double p = exp(s[t] - m);
                l += p;
                for (int64_t x = 0; x < d->D; x++)
                    o_un[x] += p * or_view_get(v, b, t, j, x);
            }
            for (int64_t x = 0; x < d->D; x++)
                o[x] = len > 0 ? o_un[x] / l : 0.0;
            out->m[bh] = m;
            out->l[bh] = l;
        }
    }
    free(s);
}

void or_attention_mod(const or_dims *d, const or_view *q, const or_view *k, const or_view *v,
                      const int32_t *lengths, double scale, const or_modifiers *mod,
                      or_state *out)
{
    int64_t group = d->Hkv > 0 ? d->Hq / d->Hkv : 1;
    double *s = malloc(sizeof(double) * (size_t)(d->S + 1));
    bool *seen = malloc(sizeof(bool) * (size_t)(d->S + 1));
    assert_true(s && seen);
    for (int64_t b = 0; b < d->B; b++) {
        int64_t len = lengths[b];
        for (int64_t h = 0; h < d->Hq; h++) {
            int64_t j = h / group;
            int64_t bh = b * d->Hq + h;
            double *o_un = out->o_un + bh * d->D, *o = out->o + bh * d->D;
            double m = mod->sinks ? (double)mod->sinks[h] : -INFINITY;
            for (int64_t t = 0; t < len; t++) {
                seen[t] = !mod->window || t >= len - mod->window || t < mod->sink_positions;
                if (!seen[t])
                    continue;
                double dot = 0.0;
                for (int64_t x = 0; x < d->D; x++)
                    dot += or_view_get(q, b, h, x, 0) * or_view_get(k, b, t, j, x);
                s[t] = scale * dot;
                if (mod->softcap != 0.0)
                    s[t] = mod->softcap * tanh(s[t] / mod->softcap);
                if (mod->alibi)
                    s[t] -= (double)mod->alibi[h] * (double)(len - 1 - t);
                if (s[t] > m || isnan(s[t]))
                    m = isnan(m) ? m : s[t];
            }
            double l = mod->sinks && m != -INFINITY ? exp((double)mod->sinks[h] - m) : 0.0;
            for (int64_t x = 0; x < d->D; x++)
                o_un[x] = 0.0;
            for (int64_t t = 0; t < len; t++) {
                if (!seen[t] || m == -INFINITY)
                    continue;
                double p = exp(s[t] - m);
                l += p;
                for (int64_t x = 0; x < d->D; x++)
                    o_un[x] += p * or_view_get(v, b, t, j, x);
            }
            for (int64_t x = 0; x < d->D; x++)
                o[x] = l > 0 ? o_un[x] / l : 0.0;
            out->m[bh] = m;
            out->l[bh] = l;
        }
    }
    free(s);
    free(seen);
}

/* ---- the seed's reference arithmetic (docs/design.md, "The reference arithmetic") --------- */

void or_reference(const or_dims *d, const or_view *q, const or_view *k, const or_view *v,
                  const int32_t *lengths, float scale, float mask_value, or_state *out)
{
    int64_t group = d->Hkv > 0 ? d->Hq / d->Hkv : 1;
    float *logit = malloc(sizeof(float) * (size_t)(d->S + 1));
    double *p = malloc(sizeof(double) * (size_t)(d->S + 1));
    assert_true(logit && p);
    for (int64_t b = 0; b < d->B; b++) {
        for (int64_t h = 0; h < d->Hq; h++) {
            int64_t j = h / group;
            int64_t bh = b * d->Hq + h;
            float m = -INFINITY;
            for (int64_t t = 0; t < d->S; t++) {
                double dot = 0.0;
                for (int64_t x = 0; x < d->D; x++)
                    dot += or_view_get(q, b, h, x, 0) * or_view_get(k, b, t, j, x);
                float lg = (float)((double)scale * dot); /* step 1: f32 logits */
                if (t >= lengths[b])
                    lg = lg + mask_value; /* step 2, in f32 (FLT_EVAL_METHOD 0 on x86-64) */
                logit[t] = lg;
                if (lg > m || isnan(lg))
                    m = isnan(m) ? m : lg;
            }
            double l = 0.0;
            for (int64_t t = 0; t < d->S; t++) {
                double e = exp((double)logit[t] - (double)m); /* step 3 */
                l += e;                                       /* step 4 */
                p[t] = or_round_to(v->dtype, (float)e);       /* step 5 */
            }
            for (int64_t x = 0; x < d->D; x++) {
                double pv = 0.0;
                for (int64_t t = 0; t < d->S; t++)
                    pv += p[t] * or_view_get(v, b, t, j, x);
                double pv_r = or_round_to(v->dtype, (float)pv); /* step 6 */
                out->o_un[bh * d->D + x] = pv_r;
                out->o[bh * d->D + x] = pv_r / l; /* step 7 */
            }
            out->m[bh] = m;
            out->l[bh] = l;
        }
    }
    free(logit);
    free(p);
}

/* ---- the merge oracle (docs/design.md, "Output conventions") ------------------------------ */

void or_merge(size_t n, const or_state *parts, or_state *out)
{
    int64_t BH = out->B * out->H, D = out->D;
    for (int64_t bh = 0; bh < BH; bh++) {
        double M = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (parts[i].m[bh] > M)
                M = parts[i].m[bh];
        double L = 0.0;
        for (int64_t x = 0; x < D; x++)
            out->o_un[bh * D + x] = 0.0;
        if (M != -INFINITY) {
            for (size_t i = 0; i < n; i++) {
                if (parts[i].m[bh] == -INFINITY)
                    continue; /* an empty part contributes nothing */
                double w = exp(parts[i].m[bh] - M);
                L += w * parts[i].l[bh];
                for (int64_t x = 0; x < D; x++)
                    out->o_un[bh * D + x] += w * parts[i].o_un[bh * D + x];
            }
        }
        out->m[bh] = M;
        out->l[bh] = L;
        for (int64_t x = 0; x < D; x++)
            out->o[bh * D + x] = L > 0.0 ? out->o_un[bh * D + x] / L : 0.0;
    }
}

/* ---- comparisons -------------------------------------------------------------------------- */

or_err or_compare(const float *got, const double *expect, int64_t n)
{
    or_err e = {0.0, 0.0, 0.0, -1, 0};
    for (int64_t i = 0; i < n; i++) {
        double x = expect[i], g = got[i];
        if (!isfinite(x)) {
            bool same = isnan(x) ? isnan(g) : g == x;
            if (!same) {
                e.nonfinite++;
                e.worst = i;
            }
            continue;
        }
        if (!isfinite(g)) {
            e.nonfinite++;
            e.worst = i;
            continue;
        }
        if (fabs(x) > e.max_ref)
            e.max_ref = fabs(x);
        if (fabs(g - x) > e.max_abs) {
            e.max_abs = fabs(g - x);
            if (e.nonfinite == 0)
                e.worst = i;
        }
    }
    e.rel = e.max_ref > 0.0 ? e.max_abs / e.max_ref : e.max_abs;
    return e;
}

or_err or_compare_f32(const float *got, const float *expect, int64_t n)
{
    double *x = malloc(sizeof(double) * (size_t)(n + 1));
    assert_non_null(x);
    for (int64_t i = 0; i < n; i++)
        x[i] = expect[i];
    or_err e = or_compare(got, x, n);
    free(x);
    return e;
}

/* ---- statistics --------------------------------------------------------------------------- */

#define OR_MAX_STATS 256

static struct {
    char key[80];
    double max;
} stats[OR_MAX_STATS];
static int n_stats;

void or_stat_note(const char *key, double err)
{
    for (int i = 0; i < n_stats; i++) {
        if (strcmp(stats[i].key, key) == 0) {
            if (err > stats[i].max)
                stats[i].max = err;
            return;
        }
    }
    if (n_stats == OR_MAX_STATS)
        return;
    snprintf(stats[n_stats].key, sizeof stats[n_stats].key, "%s", key);
    stats[n_stats].max = err;
    n_stats++;
}

void or_stat_print(const char *title)
{
    print_message("%s (max error relative to max|expected|)\n", title);
    for (int i = 0; i < n_stats; i++)
        print_message("  %-48s %.3e\n", stats[i].key, stats[i].max);
}

bool or_msg_names(const char *msg, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(msg, word); p; p = strstr(p + 1, word)) {
        bool left = p == msg || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool right = !(isalnum((unsigned char)p[n]) || p[n] == '_');
        if (left && right)
            return true;
    }
    return false;
}
