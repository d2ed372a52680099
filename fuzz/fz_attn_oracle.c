/* The attention oracle: docs/design.md, "The attention computed" (ragged) and "The reference
 * arithmetic" (the seed's), per (b, h) in double precision, with error bounds derived from f32
 * arithmetic:
 *   - a logit s_t = scale * q.k computed in f32 is within delta = (D+4) * 2^-24 * A of the
 *     exact value, where A = |scale| * sum_d |q_d k_d|;
 *   - so every softmax weight is within a factor e^(+-2 delta) of the exact one;
 *   - sums of n terms add (n+8) * 2^-23 relative error; the seed's roundings to v's dtype may
 *     land one unit apart from ours (2 eps_v each), and vector exp adds ~1e-6.
 * On top of that every bound carries the project's 1e-5 relative tolerance.
 * The score modifiers of the header apply to the ragged and paged functions in its order:
 *   - cap * tanh(s / cap), whose slope is at most 1 (so a logit's bounds map through it), plus
 *     a vector tanh's few ulp and the roundings of s / cap and of the product;
 *   - - slope * (len - 1 - t), computed in f32 within 4 units of the terms' size;
 *   - only positions t >= len - window or t < sink_positions;
 *   - a sink logit in m and l only.
 * A position whose weight cannot exceed e^-100 of the largest is left out of the error bound of
 * the others, and its weight is added to the bounds on its own.
 * Several query rows (the multi-token calls): row i is a decode query of its own over its causal
 * prefix, so every bound above applies to it unchanged.
 * Quantized K/V (the header's ra_tensor_wrap_quantized) mean code * scale, taken exactly here.
 * A kernel may round that product to f32 or fold the scale into the dot product or the weight,
 * so each logit gets 2 more units of A and one step of the subnormal grid per term, each V
 * term 2 more units and qmax steps of that grid (a weight times a tiny scale); a value or a
 * code-domain dot product beyond f32 range may overflow, and skips the head. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "fz_attn.h"

const fz_fn fz_fns[6] = {
    {"ra_ragged_mqa", ra_ragged_mqa, 3, 0, 3, 2, 0, true, true},
    {"ra_ragged_mha", ra_ragged_mha, 4, 1, 4, 4, 1, true, false},
    {"ra_ragged_gqa", ra_ragged_gqa, 4, 1, 4, 4, 2, true, false},
    {"ra_reference_mqa", ra_reference_mqa, 3, 0, 3, 3, 0, false, true},
    {"ra_reference_mha", ra_reference_mha, 4, 1, 4, 4, 1, false, true},
    {"ra_reference_gqa", ra_reference_gqa, 3, 2, 4, 4, 2, false, true},
};

static void set4(int64_t idx[4], int64_t a, int64_t b, int64_t c, int64_t d)
{
    idx[0] = a, idx[1] = b, idx[2] = c, idx[3] = d;
}

void fz_q_idx(const fz_fn *f, int64_t b, int64_t h, int64_t d, int64_t idx[4])
{
    if (f->q_rank == 3)
        set4(idx, b, h, d, 0);
    else
        set4(idx, b, 0, h, d);
}

void fz_kv_idx(const fz_fn *f, int64_t b, int64_t t, int64_t j, int64_t d, int64_t idx[4])
{
    if (f->kv == 0)
        set4(idx, b, t, d, 0);
    else if (f->kv == 1)
        set4(idx, b, t, j, d);
    else
        set4(idx, b, j, t, d);
}

void fz_o_idx(const fz_fn *f, int64_t b, int64_t h, int64_t d, int64_t idx[4])
{
    if (f->o_rank == 3)
        set4(idx, b, h, d, 0);
    else
        set4(idx, b, 0, h, d);
}

void fz_ml_idx(const fz_fn *f, int64_t b, int64_t h, int64_t idx[4])
{
    if (f->ml_rank == 2)
        set4(idx, b, h, 0, 0);
    else if (f->ml_rank == 3)
        set4(idx, b, h, 0, 0);
    else
        set4(idx, b, 0, h, 0);
}

void fz_attn_shape(const fz_fn *f, int role, int64_t B, int64_t Hq, int64_t Hkv, int64_t S,
                   int64_t D, fz_tensor *t)
{
    switch (role) {
    case A_Q:
        if (f->q_rank == 3)
            fz_set_shape(t, t->dt, 3, B, Hq, D, 1);
        else
            fz_set_shape(t, t->dt, 4, B, 1, Hq, D);
        break;
    case A_K:
    case A_V:
        if (f->kv == 0)
            fz_set_shape(t, t->dt, 3, B, S, D, 1);
        else if (f->kv == 1)
            fz_set_shape(t, t->dt, 4, B, S, Hkv, D);
        else
            fz_set_shape(t, t->dt, 4, B, Hkv, S, D);
        break;
    case A_LEN:
        fz_set_shape(t, t->dt, 1, B, 1, 1, 1);
        break;
    case A_O:
        if (f->o_rank == 3)
            fz_set_shape(t, t->dt, 3, B, Hq, D, 1);
        else
            fz_set_shape(t, t->dt, 4, B, 1, Hq, D);
        break;
    default: /* m, l */
        if (f->ml_rank == 2)
            fz_set_shape(t, t->dt, 2, B, Hq, 1, 1);
        else if (f->ml_rank == 3)
            fz_set_shape(t, t->dt, 3, B, Hq, 1, 1);
        else
            fz_set_shape(t, t->dt, 4, B, 1, Hq, 1);
        break;
    }
}

/* Where K/V element (b, t, j, d) of a's cache lives: through the page table for a paged one. */
static void kv_at(const fz_attn *a, int64_t b, int64_t t, int64_t j, int64_t d, int64_t idx[4])
{
    if (!a->table) {
        fz_kv_idx(a->fn, b, t, j, d, idx);
        return;
    }
    const int64_t slot[4] = {b, t / a->page_size, 0, 0};
    set4(idx, fz_get_i32(&a->c, a->table, slot), t % a->page_size, j, d);
}

/* q, o and m/l indices of query row i (axis 1; always 0 for the decode functions). */
static void q_at(const fz_attn *a, int64_t b, int64_t i, int64_t h, int64_t d, int64_t idx[4])
{
    fz_q_idx(a->fn, b, h, d, idx);
    if (a->q_lens)
        idx[1] = i;
}

static void o_at(const fz_attn *a, int64_t b, int64_t i, int64_t h, int64_t d, int64_t idx[4])
{
    fz_o_idx(a->fn, b, h, d, idx);
    if (a->q_lens)
        idx[1] = i;
}

static void ml_at(const fz_attn *a, int64_t b, int64_t i, int64_t h, int64_t idx[4])
{
    fz_ml_idx(a->fn, b, h, idx);
    if (a->q_lens)
        idx[1] = i;
}

/* What one head must produce. */
typedef struct head {
    bool skip;      /* Inf, overflow or an undefined seed result: only "no crash" is checked */
    bool must_nan;  /* a NaN in a valid position: o must contain NaN */
    bool empty;     /* ragged, length 0: exactly o = 0, m = -inf, l = 0 */
    bool sink_only; /* ragged, length 0 with a sink: exactly o = 0, m = the sink, l = 1 */
    double m, l, tol_m, tol_l, tol_o;
    double *o; /* [D], in the function's convention */
} head;

static double f32r(double x)
{
    return (double)(float)x;
}

static void oracle_head(const fz_attn *a, int64_t b, int64_t i, int64_t h, int64_t len,
                        head *r)
{
    const fz_fn *f = a->fn;
    const fz_case *c = &a->c;
    const fz_tensor *q = &c->t[A_Q], *k = &c->t[A_K], *v = &c->t[A_V];
    const int64_t D = a->D, S = a->S, j = h / (a->Hq / a->Hkv);
    const int64_t T = f->ragged ? len : S; /* positions that enter the arithmetic */
    const double eps = 0x1p-24, eps_v = f->ragged ? 0 : fz_dtype_eps(v->dt);
    /* a reference call with a modifier fails, so only ragged ones get here with one */
    const fz_mods *md = a->mods;
    const double cap = md->softcap, slope = md->n_alibi ? md->alibi[h] : 0;
    const double sink = md->n_sinks ? md->sinks[h] : -INFINITY;
    int64_t idx[4];
    r->skip = r->must_nan = r->empty = r->sink_only = false;
    r->m = r->l = r->tol_m = r->tol_l = r->tol_o = 0;
    if (f->ragged && len == 0) {
        r->empty = sink == -INFINITY;
        r->sink_only = !r->empty;
        r->m = sink;
        return;
    }

    /* Non-finite inputs: a NaN in a valid position must show; otherwise skip the values.
     * Positions a window leaves out are never read, whatever they hold. A NaN in v need not
     * show when an infinity in q or k may make every logit -inf: the header gives such a head
     * the empty state, which reads no v. */
    bool nan_valid = false, nan_v = false, inf_qk = false, nonfinite = false;
    const double kq = k->quant ? 1 : 0, vq = v->quant ? fz_quant_max(v->dt) : 0;
    for (int64_t d = 0; d < D; d++) {
        q_at(a, b, i, h, d, idx);
        double x = fz_get(c, q, idx);
        nan_valid |= isnan(x);
        inf_qk |= isinf(x);
        nonfinite |= !isfinite(x);
    }
    for (int64_t t = 0; t < T; t++) {
        if (!fz_visible(md, len, t))
            continue;
        for (int64_t d = 0; d < D; d++) {
            kv_at(a, b, t, j, d, idx);
            double xk = fz_get(c, k, idx), xv = fz_get(c, v, idx);
            nan_valid |= t < len && fz_nan_at(c, k, idx);
            nan_v |= t < len && fz_nan_at(c, v, idx);
            inf_qk |= t < len && !isfinite(xk) && !fz_nan_at(c, k, idx); /* inf, or 0 * inf */
            /* beyond f32: a product code * scale overflows where a kernel forms it */
            nonfinite |= !(fabs(xk) <= FLT_MAX) || !(fabs(xv) <= FLT_MAX);
        }
    }
    nan_valid |= nan_v && !(inf_qk && cap == 0); /* a soft-cap gives -inf logits weight */
    if (nonfinite) {
        r->skip = true;
        r->must_nan = nan_valid && len > 0;
        return;
    }

    const size_t nt = (size_t)(T ? T : 1);
    double *s = malloc(nt * sizeof *s), *w = malloc(nt * sizeof *w);
    double *lo = malloc(nt * sizeof *lo), *hi = malloc(nt * sizeof *hi);
    bool *seen = malloc(nt * sizeof *seen);
    FZ_CHECK(s && w && lo && hi && seen, "harness out of memory");
    double A = 0, V = 0, bias_max = 0, A_code = 0;
    int64_t n_seen = 0;
    for (int64_t t = 0; t < T; t++) {
        seen[t] = fz_visible(md, len, t);
        if (!seen[t])
            continue;
        n_seen++;
        double dot = 0, absdot = 0, absq = 0, absdot_code = 0, ks = 0;
        for (int64_t d = 0; d < D; d++) {
            q_at(a, b, i, h, d, idx);
            double xq = fz_get(c, q, idx);
            kv_at(a, b, t, j, d, idx);
            double xk = fz_get(c, k, idx);
            dot += xq * xk;
            absdot += fabs(xq * xk);
            absq += fabs(xq);
            absdot_code += fabs(xq * fz_get_code(c, k, idx));
            ks = fmax(ks, kq * fabs(fz_get_scale(c, k, idx)));
            V = fmax(V, fabs(fz_get(c, v, idx)));
        }
        s[t] = a->scale * dot;
        const double sc = fabs((double)a->scale), at = sc * absdot;
        A = fmax(A, fmax(at, absdot)); /* q.k may be formed before scaling: both must fit */
        A_code = fmax(A_code, absdot_code);
        /* Quantized K: the dot of q with the codes, and its product with the scale, round on
         * f32's subnormal grid when q is tiny, and the K scale multiplies that absolute error. */
        double delta = (double)(D + 4 + 2 * kq) * eps * at + 1e-300 +
                       kq * sc * (absq + 1) * (double)(D + 2) * 0x1p-149 +
                       ks * (sc * (double)D + 1) * 0x1p-149;
        if (f->ragged || t < len) {
            lo[t] = s[t] - delta, hi[t] = s[t] + delta;
            if (!f->ragged)
                s[t] = f32r(s[t]), lo[t] = f32r(lo[t]), hi[t] = f32r(hi[t]);
        } else { /* the seed adds the mask in f32: emulate it, rounding included */
            lo[t] = f32r(f32r(s[t] - delta) + a->mask);
            hi[t] = f32r(f32r(s[t] + delta) + a->mask);
            s[t] = f32r(f32r(s[t]) + a->mask);
        }
        if (cap != 0) { /* monotonic: the bounds map through it */
            /* f32 tanh to a few ulp of its value, s / cap rounded (absolutely so where it is
             * subnormal, which a huge cap multiplies back), the product rounded */
            const double big = fmax(fabs(lo[t]), fabs(hi[t]));
            const double tc = 16 * eps * fmin(cap, big) + 2 * eps * big + (cap + 1) * 0x1p-149;
            s[t] = cap * tanh(s[t] / cap);
            lo[t] = cap * tanh(lo[t] / cap) - tc;
            hi[t] = cap * tanh(hi[t] / cap) + tc;
        }
        if (slope != 0) {
            const double bias = slope * (double)(len - 1 - t);
            const double err = 4 * eps * (fabs(bias) + fabs(s[t]));
            s[t] -= bias;
            lo[t] -= bias + err;
            hi[t] -= bias - err;
            bias_max = fmax(bias_max, fabs(bias));
        }
    }
    if (A > 1e37 || V * (double)(T + 1) > 1e37 || bias_max > 1e37 ||
        (kq && A_code > 1e37)) { /* f32 may overflow */
        r->skip = true;
        goto out;
    }

    double m = sink, m_lo = sink, m_hi = sink;
    for (int64_t t = 0; t < T; t++)
        if (seen[t])
            m = fmax(m, s[t]), m_lo = fmax(m_lo, lo[t]), m_hi = fmax(m_hi, hi[t]);
    if (!isfinite(m) || !isfinite(m_lo) || !isfinite(m_hi)) { /* e.g. mask = -inf, len 0 */
        r->skip = true;
        goto out;
    }
    /* Weights below e^-100 (even at their bounds' top) only add their size to the bounds. */
    double width = 0, neglect = 0;
    for (int64_t t = 0; t < T; t++) {
        if (!seen[t])
            continue;
        if (hi[t] < m_lo - 100)
            neglect += exp(hi[t] - m_lo);
        else
            width = fmax(width, hi[t] - lo[t]);
    }
    const double dlt = width + (m_hi - m_lo); /* bound on |error of (s_t - m)| */
    double l = sink == -INFINITY ? 0 : exp(sink - m), P = 0;
    for (int64_t t = 0; t < T; t++) {
        w[t] = seen[t] ? exp(s[t] - m) : 0;
        l += w[t];
    }
    const int64_t terms = n_seen + (sink != -INFINITY);
    const double sum_err = (double)(terms + 8) * 2 * eps;
    r->m = m;
    r->tol_m = fmax(m_hi - m, m - m_lo) + 2 * eps * fabs(m) + 1e-30;
    r->l = l;
    /* l is a sum of weights of at most 1, one of which is 1: it lies in [1, terms]. */
    r->tol_l = fmin(l * (expm1(dlt) + sum_err + 2e-6 + 1e-5), (double)terms) + neglect;
    for (int64_t d = 0; d < D; d++) {
        double acc = 0, absacc = 0;
        for (int64_t t = 0; t < T; t++) {
            if (!seen[t])
                continue;
            kv_at(a, b, t, j, d, idx);
            double xv = fz_get(c, v, idx);
            double p = f->ragged ? w[t] : fz_round_to(v->dt, w[t]);
            acc += p * xv;
            absacc += fabs(p * xv);
        }
        if (!f->ragged)
            acc = fz_round_to(v->dt, acc);
        r->o[d] = f->normalized ? acc / l : acc;
        P = fmax(P, absacc);
    }
    if (!f->ragged && (P * 1.01 >= (v->dt == RA_DTYPE_F16 ? 65504.0 : 1e37))) {
        r->skip = true; /* the PV sum overflows v's dtype */
        goto out;
    }
    /* |o_n error| <= (max weighted |v|) * relative error of the weights and sums; but o_n is a
     * weighted mean of v, so however wrong the weights (logits known to no better than dlt,
     * e.g. a reference's f32 logits of 4e8 that differ by ulps of 32 between equal K rows),
     * it stays within 2 V of the oracle's. */
    const double base = f->ragged ? V : P / l;
    const double rel = 6 * eps_v + 2 * sum_err + 2e-6 + 1e-5 + (vq ? 2 * eps : 0);
    double tol_on = fmin(base * 2 * expm1(2 * dlt), 2 * V) + base * rel + V * neglect;
    /* Rounding near the subnormal range is absolute, not relative: each of the T products,
     * their sum and the division may each lose up to one step of the subnormal grid (f32's for
     * the ragged path, which computes in f32; v's dtype for the reference, which rounds p and
     * the PV sum to it). */
    double sub = f->ragged || v->dt == RA_DTYPE_F32 ? 0x1p-149
                 : v->dt == RA_DTYPE_BF16          ? 0x1p-133
                                                   : 0x1p-24;
    tol_on += (double)(n_seen + 2) * sub * fmax(1.0, V) + (double)(n_seen + 2) * vq * 0x1p-149;
    r->tol_o = f->normalized ? tol_on : V * r->tol_l + (l + r->tol_l) * tol_on;
out:
    free(s);
    free(w);
    free(lo);
    free(hi);
    free(seen);
}

/* A padding row of a multi-token call: exactly the empty state, whatever the options. */
static void check_padding(const fz_attn *a, int64_t b, int64_t i)
{
    const fz_case *c = &a->c;
    const fz_tensor *o = &c->t[A_O], *m = &c->t[A_M], *l = &c->t[A_L];
    int64_t idx[4];
    for (int64_t h = 0; h < a->Hq; h++) {
        for (int64_t d = 0; d < a->D; d++) {
            o_at(a, b, i, h, d, idx);
            const double go = fz_get(c, o, idx);
            FZ_CHECK(go == 0.0, "%s b=%lld i=%lld h=%lld d=%lld: a padding row must give o = 0, "
                     "got %g", a->fn->name, (long long)b, (long long)i, (long long)h,
                     (long long)d, go);
        }
        ml_at(a, b, i, h, idx);
        const double gm = m->present ? fz_get(c, m, idx) : -INFINITY;
        const double gl = l->present ? fz_get(c, l, idx) : 0.0;
        FZ_CHECK(gm == -INFINITY && gl == 0.0, "%s b=%lld i=%lld h=%lld: a padding row must "
                 "give m = -inf, l = 0, got %g, %g", a->fn->name, (long long)b, (long long)i,
                 (long long)h, gm, gl);
    }
}

void fz_attn_check_values(const fz_attn *a)
{
    const fz_fn *f = a->fn;
    const fz_case *c = &a->c;
    const fz_tensor *o = &c->t[A_O], *m = &c->t[A_M], *l = &c->t[A_L], *len = &c->t[A_LEN];
    head r;
    r.o = malloc((size_t)(a->D ? a->D : 1) * sizeof *r.o);
    FZ_CHECK(r.o != NULL, "harness out of memory");
    int64_t idx[4], lidx[4] = {0, 0, 0, 0};
    const int64_t rows = a->q_lens ? a->T : 1;
    for (int64_t b = 0; b < a->B; b++) {
        lidx[0] = b;
        const int64_t len_b = fz_get_i32(c, len, lidx);
        const int64_t ql = a->q_lens ? fz_get_i32(c, a->q_lens, lidx) : 1;
        for (int64_t i = 0; i < rows; i++) {
            if (i >= ql) {
                check_padding(a, b, i);
                continue;
            }
            const int64_t n = len_b - ql + i + 1; /* the causal prefix; len_b with one row */
            for (int64_t h = 0; h < a->Hq; h++) {
                oracle_head(a, b, i, h, n, &r);
                double gm = NAN, gl = NAN;
                ml_at(a, b, i, h, idx);
                if (m->present)
                    gm = fz_get(c, m, idx);
                if (l->present)
                    gl = fz_get(c, l, idx);
                bool any_nan = false;
                for (int64_t d = 0; d < a->D; d++) {
                    o_at(a, b, i, h, d, idx);
                    double go = fz_get(c, o, idx);
                    any_nan |= isnan(go);
                    if (r.empty || r.sink_only)
                        FZ_CHECK(go == 0.0, "%s b=%lld i=%lld h=%lld d=%lld: length 0 must give "
                                 "o = 0, got %g", f->name, (long long)b, (long long)i,
                                 (long long)h, (long long)d, go);
                    else if (!r.skip)
                        FZ_CHECK(fabs(go - r.o[d]) <= r.tol_o, "%s b=%lld i=%lld h=%lld d=%lld "
                                 "len=%lld: o = %.9g, oracle %.9g, tol %.3g", f->name,
                                 (long long)b, (long long)i, (long long)h, (long long)d,
                                 (long long)n, go, r.o[d], r.tol_o);
                }
                if (r.must_nan)
                    FZ_CHECK(any_nan, "%s b=%lld i=%lld h=%lld: a NaN input in a valid position "
                             "did not reach o", f->name, (long long)b, (long long)i,
                             (long long)h);
                if (r.empty || r.sink_only) {
                    /* no position: the empty state, or the sink's alone (weight exp(0) = 1) */
                    FZ_CHECK(!m->present || gm == r.m, "%s b=%lld i=%lld h=%lld: length 0 must "
                             "give m = %g, got %g", f->name, (long long)b, (long long)i,
                             (long long)h, r.m, gm);
                    FZ_CHECK(!l->present || gl == (r.empty ? 0.0 : 1.0), "%s b=%lld i=%lld "
                             "h=%lld: length 0 must give l = %g, got %g", f->name, (long long)b,
                             (long long)i, (long long)h, r.empty ? 0.0 : 1.0, gl);
                } else if (!r.skip) {
                    FZ_CHECK(!m->present || fabs(gm - r.m) <= r.tol_m, "%s b=%lld i=%lld h=%lld "
                             "len=%lld: m = %.9g, oracle %.9g, tol %.3g", f->name, (long long)b,
                             (long long)i, (long long)h, (long long)n, gm, r.m, r.tol_m);
                    FZ_CHECK(!l->present || fabs(gl - r.l) <= r.tol_l, "%s b=%lld i=%lld h=%lld "
                             "len=%lld: l = %.9g, oracle %.9g, tol %.3g", f->name, (long long)b,
                             (long long)i, (long long)h, (long long)n, gl, r.l, r.tol_l);
                }
            }
        }
    }
    free(r.o);
}
