/* The merge operation: ra_merge on fuzz-built partial states, checked against the log-sum-exp
 * rule in double precision. Also covers the header's relaxations: a NULL m array for n == 1,
 * and outputs that are the very same view as an input of their role (in place). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"

#define MAX_PARTS 5
enum { OUT_O = 3 * MAX_PARTS, OUT_M, OUT_L, N_TENSORS };

typedef struct merge_case {
    fz_case c; /* part i: o at 3i, m at 3i+1, l at 3i+2; outputs at OUT_* */
    size_t n;
    int64_t B, H, D;
    bool null_array[3];
} merge_case;

static bool same_shape(const fz_tensor *t, int rank, const int64_t *shape)
{
    if (t->rank != rank)
        return false;
    for (int i = 0; i < rank; i++)
        if (t->shape[i] != shape[i])
            return false;
    return true;
}

/* Whether part tensor i (< OUT_O) is passed to the call: the m array may be NULL. */
static bool passed(const merge_case *mc, int i)
{
    return i < 3 * (int)mc->n && !(i % 3 == 1 && mc->null_array[1]);
}

/* The header's in-place rule: output r (OUT_O..OUT_L) may be exactly the view of an input of
 * its own role (o, m, l): same buffer, offset, dtype and shape, and the same stride on every
 * axis of extent > 1. */
static bool same_view_same_role(const merge_case *mc, int r, int x)
{
    const fz_tensor *a = &mc->c.t[r], *b = &mc->c.t[x];
    if (x >= OUT_O || x % 3 != r - OUT_O || a->host != b->host || a->off != b->off ||
        a->dt != b->dt || a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i] || (a->shape[i] > 1 && a->st[i] != b->st[i]))
            return false;
    return true;
}

static fz_expect expect_merge(const merge_case *mc)
{
    const fz_tensor *t = mc->c.t;
    fz_expect e = {0, 0};
    const bool m_null = mc->null_array[1];
    if (mc->n == 0 || mc->null_array[0] || mc->null_array[2] || (m_null && mc->n != 1) ||
        !t[OUT_O].present)
        e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
    /* Without m the merged max is unknown: m_out must be NULL then. */
    if (m_null && t[OUT_M].present)
        e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
    for (int i = 0; i < 3 * (int)mc->n; i++)
        if (passed(mc, i) && !t[i].present)
            e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
    for (int i = 0; i < N_TENSORS; i++)
        if ((passed(mc, i) || i >= OUT_O) && t[i].present && t[i].dt != RA_DTYPE_F32)
            e.must |= FZ_BIT(RA_ERR_DTYPE);
    /* The shape every o must have: o_out's, or the first part's. */
    const fz_tensor *ref = t[OUT_O].present ? &t[OUT_O] : t[0].present ? &t[0] : NULL;
    if (ref) {
        int64_t o_shape[4], ml_shape[4];
        memcpy(o_shape, ref->shape, sizeof o_shape);
        if (ref->rank != 4 || ref->shape[1] != 1)
            e.must |= FZ_BIT(RA_ERR_SHAPE);
        if (ref->rank == 4 && ref->shape[3] == 0)
            e.may |= FZ_BIT(RA_ERR_SHAPE); /* D = 0: the spec says SHAPE for attention only */
        ml_shape[0] = o_shape[0], ml_shape[1] = 1, ml_shape[2] = o_shape[2], ml_shape[3] = 1;
        for (int i = 0; i < N_TENSORS; i++) {
            if (!t[i].present || (i < OUT_O && !passed(mc, i)))
                continue;
            bool is_o = i == OUT_O || (i < OUT_O && i % 3 == 0);
            if (!same_shape(&t[i], ref->rank, is_o ? o_shape : ml_shape))
                e.must |= FZ_BIT(RA_ERR_SHAPE);
        }
    }
    for (int r = OUT_O; r <= OUT_L; r++) {
        if (!t[r].present)
            continue;
        if (fz_self_overlaps(&t[r]))
            e.must |= FZ_BIT(RA_ERR_ALIAS);
        else if (!fz_layout_nested(&t[r]))
            e.may |= FZ_BIT(RA_ERR_ALIAS);
        for (int x = 0; x < r; x++) {
            if (x < OUT_O && (!passed(mc, x) || same_view_same_role(mc, r, x)))
                continue;
            bool bytes, spans;
            fz_overlap(&mc->c, &t[r], &t[x], &bytes, &spans);
            if (bytes)
                e.must |= FZ_BIT(RA_ERR_ALIAS);
            else if (spans)
                e.may |= FZ_BIT(RA_ERR_ALIAS);
        }
    }
    return e;
}

static bool in_shape(const fz_tensor *t, const int64_t *idx)
{
    for (int i = 0; i < t->rank; i++)
        if (idx[i] >= t->shape[i])
            return false;
    return true;
}

static void fill_parts(fz_in *in, merge_case *mc)
{
    fz_case *c = &mc->c;
    fz_rng rng = {fz_u64(in)};
    int64_t idx[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < mc->n; i++) {
        fz_tensor *o = &c->t[3 * i], *m = &c->t[3 * i + 1], *l = &c->t[3 * i + 2];
        if (!o->present || !m->present || !l->present || o->rank != 4 || m->rank != 4 ||
            l->rank != 4 || fz_numel(m) == 0)
            continue;
        for (idx[0] = 0; idx[0] < m->shape[0]; idx[0]++)
            for (idx[2] = 0; idx[2] < m->shape[2]; idx[2]++) {
                uint64_t x = fz_rng_next(&rng);
                int kind = (int)(x % 8);
                double mv = ((int64_t)((x >> 8) % 161) - 80) / 4.0; /* [-20, 20] */
                double lv = 1 + (double)((x >> 20) % 3000) / 10.0;
                if (kind == 0)
                    mv = -INFINITY, lv = 0; /* an empty state */
                else if (kind == 1)
                    lv = 0; /* l = 0 with a finite m: also empty */
                idx[1] = 0, idx[3] = 0;
                fz_put(c, m, idx, mv);
                if (in_shape(l, idx))
                    fz_put(c, l, idx, lv);
                int64_t oi[4] = {idx[0], 0, idx[2], 0};
                for (oi[3] = 0; oi[3] < o->shape[3] && in_shape(o, oi); oi[3]++) {
                    double u = ((int64_t)(fz_rng_next(&rng) % 257) - 128) / 64.0;
                    fz_put(c, o, oi, kind <= 1 ? 0.0 : lv * u);
                }
            }
    }
    static const double specials[] = {NAN, INFINITY, -INFINITY, 1e30, -1e30, 0.0, -0.0};
    uint8_t ns = fz_u8(in);
    for (int i = 0; ns >= 224 && i < 1 + ns % 3; i++) {
        fz_tensor *t = &c->t[fz_u8(in) % (3 * (mc->n ? mc->n : 1))];
        uint32_t at = fz_u32(in);
        double x = specials[fz_u8(in) % (sizeof specials / sizeof specials[0])];
        int64_t n = t->present ? fz_numel(t) : 0;
        if (n == 0)
            continue;
        int64_t j[4] = {0, 0, 0, 0};
        for (int64_t rem = (int64_t)(at % (uint64_t)n), d = t->rank - 1; d >= 0; d--)
            j[d] = rem % t->shape[d], rem /= t->shape[d];
        fz_put(c, t, j, x);
    }
}

/* Inputs are read as they were before the call (an output may have been one of them). */
static void check_merge_values(const merge_case *mc)
{
    const fz_case *c = &mc->c;
    const fz_tensor *oo = &c->t[OUT_O], *mo = &c->t[OUT_M], *lo = &c->t[OUT_L];
    const bool has_m = !mc->null_array[1];
    const double eps = 0x1p-24;
    const int64_t B = oo->shape[0], H = oo->shape[2], D = oo->shape[3];
    double *num = malloc((size_t)(D ? D : 1) * 2 * sizeof *num), *absn = num + (D ? D : 1);
    FZ_CHECK(num != NULL, "harness out of memory");
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            int64_t ml[4] = {b, 0, h, 0}, oi[4] = {b, 0, h, 0};
            bool skip = false, all_empty = true;
            double M = has_m ? -INFINITY : 0.0, mmax = 0;
            for (size_t i = 0; i < mc->n; i++) {
                double m = has_m ? fz_get_before(c, &c->t[3 * i + 1], ml) : 0.0;
                double l = fz_get_before(c, &c->t[3 * i + 2], ml);
                skip |= isnan(m) || m == INFINITY || !isfinite(l) || l < 0 || l > 1e30;
                for (oi[3] = 0; oi[3] < D; oi[3]++) {
                    double o = fz_get_before(c, &c->t[3 * i], oi);
                    skip |= !isfinite(o) || fabs(o) > 1e30;
                }
                all_empty &= l == 0;
                M = fmax(M, m);
                if (isfinite(m))
                    mmax = fmax(mmax, fabs(m));
            }
            if (skip || mmax > 1e6)
                continue;
            double gm = mo->present ? fz_get(c, mo, ml) : NAN;
            double gl = lo->present ? fz_get(c, lo, ml) : NAN;
            if (all_empty) {
                for (oi[3] = 0; oi[3] < D; oi[3]++)
                    FZ_CHECK(fz_get(c, oo, oi) == 0.0, "ra_merge b=%lld h=%lld: all parts empty "
                             "must give o = 0", (long long)b, (long long)h);
                /* The spec calls l = 0 empty and wants M = -inf; the header calls (l = 0,
                 * m = -inf) empty. With l = 0 under a finite m, M = max m is accepted too. */
                FZ_CHECK(!mo->present || gm == -INFINITY || gm == M, "ra_merge: all parts empty "
                         "must give M = -inf, got %g", gm);
                FZ_CHECK(!lo->present || gl == 0.0, "ra_merge: all parts empty must give L = 0, "
                         "got %g", gl);
                continue;
            }
            if (M == -INFINITY) /* l > 0 under m = -inf: not a state the spec defines */
                continue;
            double L = 0;
            for (int64_t d = 0; d < D; d++)
                num[d] = absn[d] = 0;
            for (size_t i = 0; i < mc->n; i++) {
                /* Without m (n == 1) the single part weighs 1. */
                double m = has_m ? fz_get_before(c, &c->t[3 * i + 1], ml) : 0.0;
                double l = fz_get_before(c, &c->t[3 * i + 2], ml);
                double w = exp(m - M);
                L += w * l;
                for (oi[3] = 0; oi[3] < D; oi[3]++) {
                    double o = fz_get_before(c, &c->t[3 * i], oi);
                    num[oi[3]] += w * o;
                    absn[oi[3]] += fabs(w * o);
                }
            }
            if (L < 1e-30)
                continue;
            /* m_i - M is rounded in f32 before exp; sums of n terms. */
            double rel = expm1(4 * eps * mmax + 1e-6) + (double)(mc->n + 4) * 2 * eps;
            FZ_CHECK(!mo->present || gm == M, "ra_merge b=%lld h=%lld: M = %.9g, expected %.9g",
                     (long long)b, (long long)h, gm, M);
            FZ_CHECK(!lo->present || fabs(gl - L) <= L * (2 * rel + 1e-5),
                     "ra_merge b=%lld h=%lld: L = %.9g, expected %.9g", (long long)b,
                     (long long)h, gl, L);
            for (oi[3] = 0; oi[3] < D; oi[3]++) {
                double got = fz_get(c, oo, oi), want = num[oi[3]] / L;
                double tol = absn[oi[3]] / L * (4 * rel + 1e-5) + 1e-37;
                FZ_CHECK(fabs(got - want) <= tol, "ra_merge b=%lld h=%lld d=%lld: o = %.9g, "
                         "expected %.9g, tol %.3g", (long long)b, (long long)h,
                         (long long)oi[3], got, want, tol);
            }
        }
    free(num);
}

static const int64_t tab_n[] = {1, 2, 3, 2, 1, 4, 5, 0};
static const int64_t tab_b[] = {1, 2, 3, 1, 2, 0};
static const int64_t tab_h[] = {1, 2, 4, 3, 8, 1, 0};
static const int64_t tab_d[] = {1, 2, 3, 8, 16, 17, 32, 33, 64, 65, 128, 0};

void fz_op_merge(fz_in *in)
{
    merge_case mc;
    memset(&mc, 0, sizeof mc);
    mc.n = (size_t)FZ_PICK(in, tab_n);
    mc.B = FZ_PICK(in, tab_b);
    mc.H = FZ_PICK(in, tab_h);
    mc.D = FZ_PICK(in, tab_d);
    fz_case *c = &mc.c;
    c->n = N_TENSORS;
    for (int i = 0; i < N_TENSORS; i++) {
        fz_tensor *t = &c->t[i];
        bool is_o = i == OUT_O || (i < OUT_O && i % 3 == 0);
        bool output = i >= OUT_O;
        if (!output && i >= 3 * (int)mc.n)
            continue;
        fz_set_shape(t, RA_DTYPE_F32, 4, mc.B, 1, mc.H, is_o ? mc.D : 1);
        t->host = i;
        fz_mutate(in, t, i == OUT_M || i == OUT_L);
        fz_choose_layout(in, t, !output);
    }
    uint8_t x = fz_u8(in);
    if (x >= 250)
        mc.null_array[x % 3] = true;
    else if (x >= 240 && mc.n == 1)
        mc.null_array[1] = true; /* normalizing one state without m, valid since 0.2.0 */
    uint8_t share = fz_u8(in);
    if (share >= 240) {
        int out = OUT_O + fz_u8(in) % 3, y = fz_u8(in) % N_TENSORS;
        if (out != y && c->t[out].present && c->t[y].present && c->t[y].host == y) {
            c->t[out].host = y;
            c->t[out].off = 4 * (size_t)(fz_u8(in) % 16);
        }
    } else if (share >= 216 && mc.n > 0) {
        /* In place: an output takes the very view of a part's tensor of its role. */
        int role = fz_u8(in) % 3, y = 3 * (int)(fz_u8(in) % mc.n) + role;
        fz_tensor *out = &c->t[OUT_O + role];
        if (out->present && c->t[y].present && c->t[y].host == y) {
            *out = c->t[y]; /* its buffer (host y, offset 0), dtype, shape and strides */
            out->h = NULL;
        }
    }
    fz_case_materialize(c);
    fill_parts(in, &mc);

    const ra_tensor *ho[MAX_PARTS], *hm[MAX_PARTS], *hl[MAX_PARTS];
    for (size_t i = 0; i < mc.n; i++) {
        ho[i] = c->t[3 * i].present ? c->t[3 * i].h : NULL;
        hm[i] = c->t[3 * i + 1].present ? c->t[3 * i + 1].h : NULL;
        hl[i] = c->t[3 * i + 2].present ? c->t[3 * i + 2].h : NULL;
    }
    ra_tensor *out[3];
    for (int r = 0; r < 3; r++)
        out[r] = c->t[OUT_O + r].present ? c->t[OUT_O + r].h : NULL;
    fz_expect e = expect_merge(&mc);
    fz_snapshot(c);
    fz_mark_last_error();
    ra_status s = ra_merge(mc.n, mc.null_array[0] ? NULL : ho, mc.null_array[1] ? NULL : hm,
                           mc.null_array[2] ? NULL : hl, out[0], out[1], out[2]);
    fz_check_status(&e, s, "ra_merge");
    static const int outs[] = {OUT_O, OUT_M, OUT_L};
    if (s != RA_OK) {
        fz_check_new_error("ra_merge");
        fz_check_untouched(c, NULL, 0, "ra_merge");
    } else {
        fz_check_untouched(c, outs, 3, "ra_merge");
        check_merge_values(&mc);
    }
    fz_case_free(c);
}
