/* ra_merge: combine partial (o, m, l) states with the log-sum-exp rule (common/lse.h). */
#include <stdbool.h>
#include <stdio.h>

#include "common/lse.h"
#include "problem.h"
#include "status_internal.h"
#include "tensor_internal.h"

static const ra__layout o_layout = {4, {RA_R_B, RA_R_ONE, RA_R_HQ, RA_R_D}};
static const ra__layout ml_layout = {4, {RA_R_B, RA_R_ONE, RA_R_HQ, RA_R_ONE}};

static ra_status check_part(const char *what, size_t i, const ra_tensor *t,
                            const ra__layout *lay, int64_t dims[RA_R_COUNT])
{
    char name[48];
    snprintf(name, sizeof name, i == (size_t)-1 ? "%s" : "%s[%zu]", what, i);
    if (!t)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_merge: %s is NULL", name);
    if (t->dtype != RA_DTYPE_F32)
        return ra__fail(RA_ERR_DTYPE, "ra_merge: %s has dtype %s, expected f32", name,
                        ra__dtype_name(t->dtype));
    int64_t strides[RA_R_COUNT];
    return ra__bind_layout("ra_merge", name, t, lay, dims, strides);
}

static int64_t at(const ra_tensor *t, int64_t i0, int64_t i2, int64_t i3)
{
    return i0 * t->strides[0] + i2 * t->strides[2] + i3 * t->strides[3];
}

/* True when a and b put every element at the same byte: same data pointer, shape and strides
 * on each axis of extent > 1 (an axis of extent 1 never moves the address). Both are f32. */
static bool same_view(const ra_tensor *a, const ra_tensor *b)
{
    if (a->data != b->data || a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i] || (a->shape[i] > 1 && a->strides[i] != b->strides[i]))
            return false;
    return true;
}

/* Outputs may not overlap themselves, each other, or any input, with one exception that makes
 * in-place merging possible: an output may be exactly the same view as an input of its own
 * role (o_out as some o[i], m_out as m[i], l_out as l[i]). The merge loop reads every part's
 * element of a (b, h) row before it writes that row's output elements. */
static ra_status check_merge_aliasing(size_t n, const ra_tensor *const *o,
                                      const ra_tensor *const *m, const ra_tensor *const *l,
                                      const ra_tensor *const outs[3])
{
    static const char *const out_names[3] = {"o_out", "m_out", "l_out"};
    static const char *const in_names[3] = {"o", "m", "l"};
    const ra_tensor *const *ins[3] = {o, m, l};
    for (int r = 0; r < 3; r++) {
        if (!outs[r])
            continue;
        if (ra__tensor_self_overlaps(outs[r]))
            return ra__fail(RA_ERR_ALIAS, "ra_merge: output %s has overlapping elements (a zero "
                            "or too small stride)", out_names[r]);
        for (int q = 0; q < r; q++)
            if (outs[q] && ra__tensors_overlap(outs[r], outs[q]))
                return ra__fail(RA_ERR_ALIAS, "ra_merge: outputs %s and %s overlap",
                                out_names[q], out_names[r]);
    }
    for (int r = 0; r < 3; r++) {
        if (!outs[r])
            continue;
        for (int x = 0; x < 3; x++) {
            if (!ins[x]) /* m == NULL (n == 1) */
                continue;
            for (size_t i = 0; i < n; i++) {
                const ra_tensor *in = ins[x][i];
                if (!ra__tensors_overlap(outs[r], in) || (x == r && same_view(outs[r], in)))
                    continue;
                return ra__fail(RA_ERR_ALIAS, "ra_merge: output %s overlaps input %s[%zu] (an "
                                "output may only be the very same view as an input of its own "
                                "role, e.g. o_out as o[i])", out_names[r], in_names[x], i);
            }
        }
    }
    return RA_OK;
}

/* The weights exp(m_i - M) of parts i0 .. i0+cnt-1 at (b, h); 1 when m is NULL (n == 1). */
static void part_weights(const ra_tensor *const *m, size_t i0, size_t cnt, int64_t b,
                         int64_t h, float M, float *w)
{
    for (size_t i = 0; i < cnt; i++)
        w[i] = m ? ra__merge_weight(((const float *)m[i0 + i]->data)[at(m[i0 + i], b, h, 0)], M)
                 : 1.0f;
}

ra_status ra_merge(size_t n, const ra_tensor *const *o, const ra_tensor *const *m,
                   const ra_tensor *const *l, ra_tensor *o_out, ra_tensor *m_out,
                   ra_tensor *l_out)
{
    if (n == 0)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_merge: n is 0, need at least one part");
    if (!o || !l || (!m && n != 1))
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_merge: the %s array is NULL%s",
                        !o ? "o" : !l ? "l" : "m", !o || !l ? "" : " (allowed only when n == 1)");
    /* Without the parts' m the merged max is unknown, so there is nothing to give m_out. */
    if (!m && m_out)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_merge: m_out is given but the m array is "
                        "NULL; pass m, or NULL for m_out");
    int64_t dims[RA_R_COUNT] = {-1, -1, -1, -1, -1, -1};
    ra_status s;
    for (size_t i = 0; i < n; i++)
        if ((s = check_part("o", i, o[i], &o_layout, dims)) ||
            (m && (s = check_part("m", i, m[i], &ml_layout, dims))) ||
            (s = check_part("l", i, l[i], &ml_layout, dims)))
            return s;
    if ((s = check_part("o_out", (size_t)-1, o_out, &o_layout, dims)) ||
        (m_out && (s = check_part("m_out", (size_t)-1, m_out, &ml_layout, dims))) ||
        (l_out && (s = check_part("l_out", (size_t)-1, l_out, &ml_layout, dims))))
        return s;
    if (dims[RA_R_D] == 0)
        return ra__fail(RA_ERR_SHAPE, "ra_merge: head dimension D is 0");
    const ra_tensor *const outs[3] = {o_out, m_out, l_out};
    if ((s = check_merge_aliasing(n, o, m, l, outs)))
        return s;

    const int64_t B = dims[RA_R_B], H = dims[RA_R_HQ], D = dims[RA_R_D];
    float *po = o_out->data;
    /* Weights are taken in blocks of PARTS parts and o in chunks of CHUNK features, summed in
     * local accumulators: an output that is the same view as an input is written only after
     * every part's element of the chunk was read. The sums run in part order either way. */
    enum { PARTS = 32, CHUNK = 256 };
    float w[PARTS], acc[CHUNK];
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            float M = -INFINITY, L = 0.0f;
            for (size_t i = 0; m && i < n; i++)
                M = ra__nan_max(M, ((const float *)m[i]->data)[at(m[i], b, h, 0)]);
            for (size_t i0 = 0; i0 < n; i0 += PARTS) {
                size_t cnt = n - i0 < PARTS ? n - i0 : PARTS;
                part_weights(m, i0, cnt, b, h, M, w);
                for (size_t i = 0; i < cnt; i++)
                    L += w[i] * ((const float *)l[i0 + i]->data)[at(l[i0 + i], b, h, 0)];
            }
            /* With n <= PARTS, w still holds every part's weight. */
            for (int64_t d0 = 0; d0 < D; d0 += CHUNK) {
                int64_t dn = D - d0 < CHUNK ? D - d0 : CHUNK;
                for (int64_t d = 0; d < dn; d++)
                    acc[d] = 0.0f;
                for (size_t i0 = 0; i0 < n; i0 += PARTS) {
                    size_t cnt = n - i0 < PARTS ? n - i0 : PARTS;
                    if (n > PARTS)
                        part_weights(m, i0, cnt, b, h, M, w);
                    for (int64_t d = 0; d < dn; d++) {
                        float a = acc[d];
                        for (size_t i = 0; i < cnt; i++) {
                            const ra_tensor *oi = o[i0 + i];
                            a += w[i] * ((const float *)oi->data)[at(oi, b, h, d0 + d)];
                        }
                        acc[d] = a;
                    }
                }
                for (int64_t d = 0; d < dn; d++)
                    po[at(o_out, b, h, d0 + d)] = ra__finish_o(acc[d], L, 1);
            }
            if (L == 0.0f) /* every part empty (l = 0): the empty state, whatever m said */
                M = -INFINITY;
            if (m_out)
                ((float *)m_out->data)[at(m_out, b, h, 0)] = M;
            if (l_out)
                ((float *)l_out->data)[at(l_out, b, h, 0)] = L;
        }
    return RA_OK;
}
