/* Every SIMD (and BLAS) micro-kernel against its reference twin, the portable C steps, on random
 * tiles: one KV head's G query heads over T positions, from a random running state, for every
 * K/V dtype pair the family runs, through each entry it has (the three steps, the fused step,
 * the bf16 dot-product step, the row-pointer steps of paged calls), and every whole-item
 * row-order entry against the same steps run head by head. The end-to-end tests reach
 * a kernel only through the shapes the core happens to hand it; this one picks the tile shapes
 * itself: G from 1 to 9, odd and tiny D, T from 1 to the kernel's tile size, score modifiers
 * and quantization scales on and off.
 * Tolerance: o within 2e-5 of the largest |o| and l within 2e-5 relative (f32 sums of up to
 * 1024 products in different orders), plus 2e-7 sqrt(D) |m| for the rounding of logits of
 * size |m|, which moves every exp by as much; m within 1e-5 relative. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dtype.h"
#include "kernels/kernel.h"
#include "tensor_internal.h" /* ra__dtype_size, ra__dtype_quantized */

#define MAX_T 1024
#define MAX_G 80 /* the wide steps' groups; the others go up to 9 */
#define MAX_D 160

typedef struct rng { uint64_t s; } rng;

static uint32_t next_u32(rng *r)
{
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(r->s >> 33);
}

static float uniform(rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)(next_u32(r) >> 8) / 16777216.0f;
}

/* A random element of dtype dt written at byte p (fp8 NaN and infinity codes avoided). */
static void random_elem(rng *r, ra_dtype dt, void *p)
{
    float f = uniform(r, -2.0f, 2.0f);
    uint8_t b = (uint8_t)next_u32(r);
    uint16_t h;
    switch (dt) {
    case RA_DTYPE_F32:
        memcpy(p, &f, 4);
        break;
    case RA_DTYPE_F16:
        h = ra__f32_to_f16(f);
        memcpy(p, &h, 2);
        break;
    case RA_DTYPE_BF16:
        h = ra__f32_to_bf16(f);
        memcpy(p, &h, 2);
        break;
    case RA_DTYPE_FP8_E4M3:
        if ((b & 0x7f) == 0x7f)
            b ^= 1;
        memcpy(p, &b, 1);
        break;
    case RA_DTYPE_FP8_E5M2:
        if (((b >> 2) & 0x1f) == 0x1f)
            b &= (uint8_t)~0x40;
        memcpy(p, &b, 1);
        break;
    default: /* i8 */
        memcpy(p, &b, 1);
        break;
    }
}

/* The largest finite stored value of a quantized dtype. */
static float qmax(ra_dtype dt)
{
    return dt == RA_DTYPE_I8 ? 127.0f : dt == RA_DTYPE_FP8_E4M3 ? 448.0f : 57344.0f;
}

typedef struct tile_case {
    int64_t G, D, T, tile_max;
    ra_dtype kdt, vdt;
    bool dot;    /* q exact in bf16, with its bits in qb */
    bool rows;   /* K/V through row pointers, rows scattered */
    bool mods;   /* soft-cap and ALiBi slopes */
    bool fresh;  /* the first tile of a head: m = -inf, l = 0, o = 0 */
    bool wide;   /* logits spread over about 200, so that p reaches subnormals and 0 */
    /* a causal group (wide steps): row r sees tile positions before causal_end + r / causal_g
     * (clamped to [0, T]); causal_g 0: every position */
    int64_t causal_g, causal_end;
} tile_case;

/* Buffers of one tile; the twin and the kernel each get their own s, o, m, l, conv. */
typedef struct tile_data {
    float q[MAX_G * MAX_D];
    float qp[MAX_G * (MAX_D + 64)] __attribute__((aligned(64))); /* the wide steps load it whole */
    uint16_t qb[MAX_G * MAX_D];
    char *kbuf, *vbuf;            /* rows in a scattered order when rows is set */
    const char *k_rows[MAX_T], *v_rows[MAX_T];
    float k_scales[MAX_T], v_scales[MAX_T], slopes[MAX_G];
    float o0[MAX_G * MAX_D], m0[MAX_G], l0[MAX_G];
} tile_data;

/* q in the family's own layout (its prepare_q hook), as the engine prepares it. */
static int64_t prepare_qp(const ra__kernel_table *kt, const tile_case *c, tile_data *d)
{
    memset(d->qp, 0, sizeof d->qp);
    if (!kt->prepare_q)
        return 0;
    const int64_t ld = kt->q_ld(c->D);
    assert_true(ld >= c->D && ld <= MAX_D + 32);
    for (int64_t g = 0; g < c->G; g++)
        kt->prepare_q(d->q + g * c->D, c->D, d->qp + g * ld);
    return ld;
}

/* q as the wide steps read it: each 16 rows transposed by the family's wide_q hook. */
static int64_t prepare_wide_q(const ra__kernel_table *kt, const tile_case *c, tile_data *d)
{
    memset(d->qp, 0, sizeof d->qp);
    const int64_t ld = kt->wide_ld(c->D);
    assert_true(ld >= c->D && ld <= MAX_D + 64 && c->G % 16 == 0);
    for (int64_t g = 0; g < c->G; g += 16)
        kt->wide_q(d->q + g * c->D, c->D, c->kdt, d->qp + g * ld);
    return ld;
}

static void fill(const tile_case *c, tile_data *d, rng *r)
{
    const size_t kes = ra__dtype_size(c->kdt), ves = ra__dtype_size(c->vdt);
    /* exactly the rows the tile reads (scattered: a pool of MAX_T rows), with no slack, so
     * that a kernel reading past the last row is an AddressSanitizer error */
    const int64_t n_rows = c->rows ? MAX_T : c->T;
    d->kbuf = malloc((size_t)(n_rows * c->D) * kes);
    d->vbuf = malloc((size_t)(n_rows * c->D) * ves);
    assert_non_null(d->kbuf);
    assert_non_null(d->vbuf);
    for (int64_t i = 0; i < n_rows * c->D; i++) {
        random_elem(r, c->kdt, d->kbuf + (size_t)i * kes);
        random_elem(r, c->vdt, d->vbuf + (size_t)i * ves);
    }
    for (int64_t i = 0; i < c->T; i++) { /* row i at a random slot, or at slot i */
        int64_t slot = c->rows ? (int64_t)(next_u32(r) % MAX_T) : i;
        d->k_rows[i] = d->kbuf + (size_t)(slot * c->D) * kes;
        d->v_rows[i] = d->vbuf + (size_t)(slot * c->D) * ves;
        /* scales that bring the stored range to about [-2, 2], as a real cache's do */
        d->k_scales[i] = uniform(r, 1.0f, 2.0f) / qmax(c->kdt);
        d->v_scales[i] = uniform(r, 1.0f, 2.0f) / qmax(c->vdt);
    }
    for (int64_t i = 0; i < c->G * c->D; i++) {
        float f = uniform(r, -1.0f, 1.0f);
        d->q[i] = c->dot ? ra__bf16_to_f32(ra__f32_to_bf16(f)) : f;
        d->qb[i] = ra__f32_to_bf16(d->q[i]);
    }
    for (int64_t g = 0; g < c->G; g++) {
        d->slopes[g] = uniform(r, 0.0f, 0.1f);
        d->m0[g] = c->fresh ? -INFINITY : uniform(r, -1.0f, 1.0f);
        d->l0[g] = c->fresh ? 0.0f : uniform(r, 0.5f, 4.0f);
        for (int64_t x = 0; x < c->D; x++)
            d->o0[g * c->D + x] = c->fresh ? 0.0f : uniform(r, -2.0f, 2.0f);
    }
}

typedef struct tile_out {
    float *s, *conv, o[MAX_G * MAX_D], m[MAX_G], l[MAX_G];
    float row_max[MAX_G] __attribute__((aligned(64))); /* the wide steps' per-row tile max */
} tile_out;

static ra__tile make_tile(const tile_case *c, tile_data *d, tile_out *out, int64_t s_ld,
                          int64_t qp_ld)
{
    const bool quant = ra__dtype_quantized(c->kdt);
    memcpy(out->o, d->o0, sizeof out->o);
    memcpy(out->m, d->m0, sizeof out->m);
    memcpy(out->l, d->l0, sizeof out->l);
    ra__tile t = {
        .G = c->G, .D = c->D, .T = c->T, .q = d->q, .qb = c->dot ? d->qb : NULL,
        .qp = qp_ld ? d->qp : NULL, .qp_ld = qp_ld,
        .k = d->k_rows[0], .k_st = c->D, .k_sd = 1, .v = d->v_rows[0], .v_st = c->D, .v_sd = 1,
        .k_rows = c->rows ? d->k_rows : NULL, .v_rows = c->rows ? d->v_rows : NULL,
        .scale = c->wide ? 6.0f : 0.125f, .softcap = c->mods ? 3.0f : 0.0f, .slopes = c->mods ? d->slopes : NULL,
        .t_first = 40, .last_pos = 40 + c->T + 7,
        .causal_g = c->causal_g, .causal_end0 = 40 + c->causal_end,
        .k_scales = quant ? d->k_scales : NULL, .v_scales = quant ? d->v_scales : NULL,
        .s = out->s, .s_ld = s_ld, .o = out->o, .m = out->m, .l = out->l, .conv = out->conv,
        .row_max = out->row_max,
    };
    return t;
}

/* A state of c->G heads (o [G][D], m, l) against the twin's. */
typedef struct state_view {
    const float *o, *m, *l;
} state_view;

static void compare_states(const tile_case *c, state_view want, state_view got,
                           const char *family, const char *entry)
{
    /* comparisons, not fmax: gcc 12 for aarch64 crashes vectorizing an fmax reduction */
    double omax = 0.0, err = 0.0;
    for (int64_t i = 0; i < c->G * c->D; i++) {
        const double a = fabs(want.o[i]), e = fabs((double)want.o[i] - got.o[i]);
        omax = a > omax ? a : omax;
        err = e > err || e != e ? e : err;
    }
    /* the logits' own rounding, relative to their size, moves every p by as much */
    double mmax = 0.0;
    for (int64_t g = 0; g < c->G; g++)
        if (isfinite(want.m[g]) && fabs(want.m[g]) > mmax)
            mmax = fabs(want.m[g]);
    const double rel = 2e-5 + 2e-7 * sqrt((double)c->D) * mmax;
    bool ok = err <= rel * omax + 1e-30;
    for (int64_t g = 0; g < c->G; g++)
        ok = ok && (want.m[g] == got.m[g] || /* both -inf: a row that saw nothing yet */
                    fabsf(want.m[g] - got.m[g]) <= 1e-5f * fmaxf(1.0f, fabsf(want.m[g]))) &&
             fabs((double)want.l[g] - got.l[g]) <= rel * want.l[g];
    if (!ok)
        fail_msg("%s %s: K %d V %d G %lld D %lld T %lld rows %d mods %d fresh %d: |o| error "
                 "%.3g of %.3g, m %g vs %g, l %g vs %g", family, entry, (int)c->kdt,
                 (int)c->vdt, (long long)c->G, (long long)c->D, (long long)c->T, c->rows,
                 c->mods, c->fresh, err, omax, got.m[0], want.m[0], got.l[0], want.l[0]);
}

static void compare(const tile_case *c, const tile_out *want, const tile_out *got,
                    const char *family, const char *entry)
{
    compare_states(c, (state_view){want->o, want->m, want->l},
                   (state_view){got->o, got->m, got->l}, family, entry);
}

/* The probabilities of a three-step family's softmax against the portable step's (expf) on
 * the same logits: the vector exp contract (kernels/exp_poly.h) asks for about 2 ulp,
 * subnormals within a step, and 0 where expf gives 0. */
static void compare_p(const tile_case *c, const ra__tile *want, const ra__tile *got,
                      const char *family)
{
    for (int64_t g = 0; g < c->G; g++)
        for (int64_t i = 0; i < c->T; i++) {
            const float w = want->s[g * want->s_ld + i], k = got->s[g * got->s_ld + i];
            /* 3 ulp; a subnormal result within 2 steps (each exp within one of e^x) */
            const float ulp = nextafterf(fabsf(w), INFINITY) - fabsf(w);
            const float tol = fabsf(w) >= FLT_MIN ? 3.0f * ulp : 0x1p-148f;
            if (!(fabsf(w - k) <= tol) || (w == 0.0f) != (k == 0.0f))
                fail_msg("%s: p[%lld][%lld] = %a, expf gives %a (K %d G %lld D %lld T %lld "
                         "wide %d)", family, (long long)g, (long long)i, k, w, (int)c->kdt,
                         (long long)c->G, (long long)c->D, (long long)c->T, c->wide);
        }
}

/* One tile through one entry of kt against the portable twin; returns 1 (a tile checked). */
static int check_tile(const ra__kernel_table *kt, const tile_case *c, rng *r, const char *entry)
{
    tile_data d;
    fill(c, &d, r);
    const bool wide_step = !strcmp(entry, "wide");
    const int64_t qp_ld = wide_step                     ? prepare_wide_q(kt, c, &d)
                          : kt->q_pairs_for_k[c->kdt] ? prepare_qp(kt, c, &d)
                                                      : 0;
    const int64_t s_ld = (c->tile_max + 15) & ~(int64_t)15;
    tile_out want, got;
    want.s = aligned_alloc(64, sizeof(float) * (size_t)(s_ld * MAX_G));
    got.s = aligned_alloc(64, sizeof(float) * (size_t)(s_ld * MAX_G));
    want.conv = NULL;
    /* [tile][D] for the converting kernels, [tile rounded to 16][wide_ld(D)] for wide steps */
    got.conv = aligned_alloc(64, sizeof(float) * (size_t)(s_ld * (MAX_D + 64)));
    assert_true(want.s && got.s && got.conv);

    tile_case dense = *c; /* the twin reads the same rows */
    ra__tile tw = make_tile(&dense, &d, &want, s_ld, 0);
    ra__tile tk = make_tile(c, &d, &got, s_ld, qp_ld);
    if (c->rows) { /* the twin gets the scattered rows copied into place */
        const size_t kes = ra__dtype_size(c->kdt), ves = ra__dtype_size(c->vdt);
        char *kd = malloc((size_t)(c->T * c->D) * kes), *vd = malloc((size_t)(c->T * c->D) * ves);
        assert_true(kd && vd);
        for (int64_t i = 0; i < c->T; i++) {
            memcpy(kd + (size_t)(i * c->D) * kes, d.k_rows[i], (size_t)c->D * kes);
            memcpy(vd + (size_t)(i * c->D) * ves, d.v_rows[i], (size_t)c->D * ves);
        }
        tw.k = kd;
        tw.v = vd;
        tw.k_rows = tw.v_rows = NULL;
    }
    if (c->causal_g) /* the twin runs each row alone over the positions it sees */
        for (int64_t g = 0; g < c->G; g++) {
            const int64_t e = c->causal_end + g / c->causal_g;
            ra__tile tr = tw;
            tr.G = 1;
            tr.T = e < 0 ? 0 : e > c->T ? c->T : e;
            tr.q = tw.q + g * c->D;
            tr.o = tw.o + g * c->D;
            tr.m = tw.m + g;
            tr.l = tw.l + g;
            tr.slopes = tw.slopes ? tw.slopes + g : NULL;
            if (tr.T > 0) {
                ra__kernels_portable.qk[c->kdt](&tr);
                ra__kernels_portable.softmax(&tr);
                ra__kernels_portable.pv[c->vdt](&tr);
            }
        }
    else {
        ra__kernels_portable.qk[c->kdt](&tw);
        ra__kernels_portable.softmax(&tw);
    }

    if (!strcmp(entry, "rows"))
        (c->dot ? kt->step_bf16_dot_rows[c->vdt] : kt->step_rows[c->kdt][c->vdt])(&tk);
    else if (!strcmp(entry, "dot"))
        kt->step_bf16_dot[c->vdt](&tk);
    else if (!strcmp(entry, "fused"))
        kt->step[c->kdt][c->vdt](&tk);
    else if (wide_step)
        kt->step_wide[c->kdt][c->vdt](&tk);
    else {
        kt->qk[c->kdt](&tk);
        /* the portable softmax on a copy of this kernel's own logits and state */
        tile_out same;
        same.s = aligned_alloc(64, sizeof(float) * (size_t)(s_ld * MAX_G));
        assert_non_null(same.s);
        memcpy(same.s, got.s, sizeof(float) * (size_t)(s_ld * c->G));
        memcpy(same.o, got.o, sizeof same.o);
        memcpy(same.m, got.m, sizeof same.m);
        memcpy(same.l, got.l, sizeof same.l);
        ra__tile ts = tk;
        ts.s = same.s;
        ts.o = same.o;
        ts.m = same.m;
        ts.l = same.l;
        ra__kernels_portable.softmax(&ts);
        kt->softmax(&tk);
        compare_p(c, &ts, &tk, ra_kernel_name(kt->id));
        free(same.s);
        kt->pv[c->vdt](&tk);
    }
    if (!c->causal_g)
        ra__kernels_portable.pv[c->vdt](&tw);
    compare(c, &want, &got, ra_kernel_name(kt->id), entry);
    if (c->rows) {
        free((void *)tw.k);
        free((void *)tw.v);
    }
    free(want.s);
    free(got.s);
    free(got.conv);
    free(d.kbuf);
    free(d.vbuf);
    return 1;
}

static const int64_t Gs[] = {1, 2, 3, 4, 5, 8, 9};
static const int64_t wide_Gs[] = {16, 32, 48, 64, 80}; /* row blocks: 1, pairs, pairs + 1 */
static const int64_t Ds[] = {1, 3, 16, 33, 64, 128, 160};

/* Every entry of kt for every dtype pair, over the shapes above and T in {1, 7, tile_max}. */
static int check_family(const ra__kernel_table *kt, rng *r)
{
    int tiles = 0;
    for (int kd = 0; kd < RA__KV_DTYPES; kd++)
        for (int vd = 0; vd < RA__KV_DTYPES; vd++) {
            if (kd == RA_DTYPE_I32 || vd == RA_DTYPE_I32)
                continue;
            const bool quant = ra__dtype_quantized((ra_dtype)kd);
            if (quant != ra__dtype_quantized((ra_dtype)vd))
                continue; /* quantized K and V come as a pair */
            const struct { const char *name; bool has, dot, rows; } entries[] = {
                {"steps", kt->qk[kd] && kt->pv[vd] && kt->softmax, false, false},
                {"fused", kt->step[kd][vd] != NULL, false, false},
                {"dot", kd == RA_DTYPE_BF16 && kt->step_bf16_dot[vd], true, false},
                {"rows", kt->step_rows[kd][vd] != NULL, false, true},
                {"rows", kd == RA_DTYPE_BF16 && kt->step_bf16_dot_rows[vd], true, true},
                {"wide", kt->step_wide[kd][vd] != NULL, false, false},
                {"wide", kt->step_wide[kd][vd] != NULL, false, true},
            };
            for (size_t e = 0; e < sizeof entries / sizeof entries[0]; e++) {
                if (!entries[e].has)
                    continue;
                const bool wide = !strcmp(entries[e].name, "wide");
                const size_t n_g = wide ? sizeof wide_Gs / sizeof wide_Gs[0]
                                        : sizeof Gs / sizeof Gs[0];
                for (size_t gi = 0; gi < n_g; gi++)
                    for (size_t di = 0; di < sizeof Ds / sizeof Ds[0]; di++) {
                        const int64_t Ts[] = {1, 7, kt->tile_max};
                        for (int ti = 0; ti < 3; ti++) {
                            tile_case c = {.G = wide ? wide_Gs[gi] : Gs[gi], .D = Ds[di],
                                           .T = Ts[ti],
                                           .tile_max = kt->tile_max, .kdt = (ra_dtype)kd,
                                           .vdt = (ra_dtype)vd, .dot = entries[e].dot,
                                           .rows = entries[e].rows, .mods = (gi + ti) % 2,
                                           .fresh = (di + ti) % 3 == 0,
                                           .wide = (gi + di) % 3 == 1,
                                           /* wide steps: half the tiles a causal group */
                                           .causal_g = wide && (gi + ti) % 2
                                                           ? (di % 2 ? 4 : 1) : 0,
                                           .causal_end = Ts[ti] / 2 - 3};
                            tiles += check_tile(kt, &c, r, entries[e].name);
                        }
                    }
            }
        }
    return tiles;
}

/* ---- row-order items (ra__rows) ------------------------------------------------------- */

/* One whole item in row order through kt->rows[kd][vd] against the portable steps run head by
 * head over tiles of the same size: K/V [T][Hkv][D] (rows whole and contiguous, as the engine
 * hands them), q [Hkv*G][D], from the empty state. */
static void check_rows_item(const ra__kernel_table *kt, ra_dtype kd, ra_dtype vd, int64_t Hkv,
                            int64_t G, int64_t D, int64_t T, int64_t tile, bool mods, rng *r)
{
    const size_t kes = ra__dtype_size(kd), ves = ra__dtype_size(vd);
    const int64_t hq = Hkv * G, st = Hkv * D;
    const bool quant = ra__dtype_quantized(kd);
    char *k = malloc((size_t)(T * st) * kes + 64), *v = malloc((size_t)(T * st) * ves + 64);
    /* q and o 64-byte aligned, as the engine's are (ra__rows) */
    const size_t qo_bytes = (sizeof(float) * (size_t)(hq * D) + 63) & ~(size_t)63;
    float *q = aligned_alloc(64, qo_bytes);
    float *ks = malloc(sizeof(float) * (size_t)(T * Hkv)), *vs = malloc(sizeof(float) * (size_t)(T * Hkv));
    float *slopes = malloc(sizeof(float) * (size_t)hq);
    float *o[2], *m[2], *l[2];
    for (int w = 0; w < 2; w++) {
        o[w] = aligned_alloc(64, qo_bytes);
        assert_non_null(o[w]);
        memset(o[w], 0, qo_bytes);
        m[w] = malloc(sizeof(float) * (size_t)hq);
        l[w] = calloc((size_t)hq, sizeof(float));
        assert_true(o[w] && m[w] && l[w]);
        for (int64_t h = 0; h < hq; h++)
            m[w][h] = -INFINITY;
    }
    const int64_t sf = ra__rows_scratch_floats(hq, D);
    float *scratch = aligned_alloc(64, sizeof(float) * (size_t)((sf + 15) & ~(int64_t)15));
    const int64_t s_ld = (tile + 15) & ~(int64_t)15;
    float *s = aligned_alloc(64, sizeof(float) * (size_t)(s_ld * G));
    assert_true(k && v && q && ks && vs && slopes && scratch && s);
    for (int64_t i = 0; i < T * st; i++) {
        random_elem(r, kd, k + (size_t)i * kes);
        random_elem(r, vd, v + (size_t)i * ves);
    }
    for (int64_t i = 0; i < hq * D; i++)
        q[i] = uniform(r, -1.0f, 1.0f);
    for (int64_t i = 0; i < T * Hkv; i++) {
        ks[i] = uniform(r, 1.0f, 2.0f) / qmax(kd);
        vs[i] = uniform(r, 1.0f, 2.0f) / qmax(vd);
    }
    for (int64_t h = 0; h < hq; h++)
        slopes[h] = uniform(r, 0.0f, 0.1f);
    const float cap = mods ? 3.0f : 0.0f;
    const int64_t t_first = 5, last_pos = t_first + T + 3;

    const ra__rows item = {
        .T = T, .tile = tile, .Hkv = Hkv, .G = G, .D = D, .k = k, .v = v,
        .k_st = st, .k_sh = D, .v_st = st, .v_sh = D, .t_first = t_first,
        .k_scale = quant ? ks : NULL, .v_scale = quant ? vs : NULL,
        .ks_st = Hkv, .ks_sh = 1, .vs_st = Hkv, .vs_sh = 1,
        .q = q, .scale = 0.125f, .softcap = cap, .slopes = mods ? slopes : NULL,
        .last_pos = last_pos, .o = o[0], .m = m[0], .l = l[0], .s = scratch,
    };
    kt->rows[kd][vd](&item);

    float kts[MAX_T], vts[MAX_T];
    for (int64_t j = 0; j < Hkv; j++)
        for (int64_t t0 = 0; t0 < T; t0 += tile) {
            const int64_t n = T - t0 < tile ? T - t0 : tile;
            for (int64_t i = 0; i < n; i++) {
                kts[i] = ks[(t0 + i) * Hkv + j];
                vts[i] = vs[(t0 + i) * Hkv + j];
            }
            ra__tile t = {
                .G = G, .D = D, .T = n, .q = q + j * G * D,
                .k = k + (size_t)(t0 * st + j * D) * kes, .k_st = st, .k_sd = 1,
                .v = v + (size_t)(t0 * st + j * D) * ves, .v_st = st, .v_sd = 1,
                .scale = 0.125f, .softcap = cap, .slopes = mods ? slopes + j * G : NULL,
                .t_first = t_first + t0, .last_pos = last_pos,
                .k_scales = quant ? kts : NULL, .v_scales = quant ? vts : NULL,
                .s = s, .s_ld = s_ld, .o = o[1] + j * G * D, .m = m[1] + j * G, .l = l[1] + j * G,
            };
            ra__kernels_portable.qk[kd](&t);
            ra__kernels_portable.softmax(&t);
            ra__kernels_portable.pv[vd](&t);
        }
    const tile_case c = {.G = hq, .D = D, .T = T, .kdt = kd, .vdt = vd, .mods = mods};
    compare_states(&c, (state_view){o[1], m[1], l[1]}, (state_view){o[0], m[0], l[0]},
                   ra_kernel_name(kt->id), "row order");
    for (int w = 0; w < 2; w++) {
        free(o[w]);
        free(m[w]);
        free(l[w]);
    }
    free(k), free(v), free(q), free(ks), free(vs), free(slopes), free(scratch), free(s);
}

/* Every row-order entry of the family, on the G its rows_serve admits. */
static int check_rows(const ra__kernel_table *kt, rng *r)
{
    static const int64_t Hkvs[] = {2, 3, 8, 17}, Dr[] = {16, 40, 64, 100, 128};
    static const int64_t Tr[] = {1, 7, 255, 256, 300, 600};
    int items = 0;
    if (!kt->rows_serve)
        return 0;
    for (int kd = 0; kd < RA__KV_DTYPES; kd++)
        for (int vd = 0; vd < RA__KV_DTYPES; vd++)
            for (int64_t G = 1; G <= 4; G++) {
                if (!kt->rows[kd][vd] || !kt->rows_serve(G, (ra_dtype)kd, (ra_dtype)vd))
                    continue;
                for (size_t a = 0; a < sizeof Hkvs / sizeof Hkvs[0]; a++)
                    for (size_t b = 0; b < sizeof Dr / sizeof Dr[0]; b++) {
                        const size_t c = (a + b) % (sizeof Tr / sizeof Tr[0]);
                        check_rows_item(kt, (ra_dtype)kd, (ra_dtype)vd, Hkvs[a], G, Dr[b],
                                        Tr[c], (a + b) % 3 ? RA__ROWS_TILE_MAX : 37,
                                        (a + b) % 2, r);
                        items++;
                    }
            }
    return items;
}

static void check_kernel(ra_kernel k)
{
    if (!ra__kernel_available(k)) {
        print_message("note: kernel %s is not in this build or CPU; skipped\n",
                      ra_kernel_name(k));
        skip();
    }
    rng r = {0x9e3779b97f4a7c15ull ^ (uint64_t)k};
    const ra__kernel_table *kt = ra__kernel_table_for(k);
    assert_int_equal(kt->id, k);
    assert_true(kt->tile_max >= 1 && kt->tile_max <= MAX_T);
    int tiles = check_family(kt, &r), items = check_rows(kt, &r);
    print_message("%s: %d random tiles and %d row-order items match the portable twin\n",
                  ra_kernel_name(k), tiles, items);
    assert_true(tiles > 0);
}

static void test_blas(void **state) { (void)state; check_kernel(RA_KERNEL_BLAS); }
static void test_avx2(void **state) { (void)state; check_kernel(RA_KERNEL_AVX2); }
static void test_avx512(void **state) { (void)state; check_kernel(RA_KERNEL_AVX512); }
static void test_neon(void **state) { (void)state; check_kernel(RA_KERNEL_NEON); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blas),
        cmocka_unit_test(test_avx2),
        cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_neon),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
