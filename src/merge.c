/* ra_merge: combine partial (o, m, l) states with the log-sum-exp rule (merge_internal.h). */
#include <stdio.h>

#include "merge_internal.h"
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

ra_status ra_merge(size_t n, const ra_tensor *const *o, const ra_tensor *const *m,
                   const ra_tensor *const *l, ra_tensor *o_out, ra_tensor *m_out,
                   ra_tensor *l_out)
{
    if (n == 0)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_merge: n is 0, need at least one part");
    if (!o || !m || !l)
        return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_merge: the %s array is NULL",
                        !o ? "o" : !m ? "m" : "l");
    int64_t dims[RA_R_COUNT] = {-1, -1, -1, -1, -1, -1};
    ra_status s;
    for (size_t i = 0; i < n; i++)
        if ((s = check_part("o", i, o[i], &o_layout, dims)) ||
            (s = check_part("m", i, m[i], &ml_layout, dims)) ||
            (s = check_part("l", i, l[i], &ml_layout, dims)))
            return s;
    if ((s = check_part("o_out", (size_t)-1, o_out, &o_layout, dims)) ||
        (m_out && (s = check_part("m_out", (size_t)-1, m_out, &ml_layout, dims))) ||
        (l_out && (s = check_part("l_out", (size_t)-1, l_out, &ml_layout, dims))))
        return s;
    if (dims[RA_R_D] == 0)
        return ra__fail(RA_ERR_SHAPE, "ra_merge: head dimension D is 0");

    const ra_tensor *outs[] = {o_out, m_out, l_out};
    const char *out_names[] = {"o_out", "m_out", "l_out"};
    for (size_t i = 0; i < n; i++) {
        const ra_tensor *ins[] = {o[i], m[i], l[i]};
        char in_names[3][32];
        snprintf(in_names[0], sizeof in_names[0], "o[%zu]", i);
        snprintf(in_names[1], sizeof in_names[1], "m[%zu]", i);
        snprintf(in_names[2], sizeof in_names[2], "l[%zu]", i);
        const char *names[] = {in_names[0], in_names[1], in_names[2]};
        /* Each part is checked against every output (and the outputs against each other). */
        if ((s = ra__check_aliasing("ra_merge", outs, out_names, 3, ins, names, 3)))
            return s;
    }

    const int64_t B = dims[RA_R_B], H = dims[RA_R_HQ], D = dims[RA_R_D];
    float *po = o_out->data;
    enum { PARTS = 32 }; /* weights computed once per (b, h) and block of parts */
    float w[PARTS];
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            float M = -INFINITY, L = 0.0f;
            for (size_t i = 0; i < n; i++)
                M = ra__nan_max(M, ((const float *)m[i]->data)[at(m[i], b, h, 0)]);
            /* o_out accumulates in place: it overlaps no input (checked above). */
            for (int64_t d = 0; d < D; d++)
                po[at(o_out, b, h, d)] = 0.0f;
            for (size_t i0 = 0; i0 < n; i0 += PARTS) {
                size_t cnt = n - i0 < PARTS ? n - i0 : PARTS;
                for (size_t i = 0; i < cnt; i++) {
                    w[i] = ra__merge_weight(((const float *)m[i0 + i]->data)[at(m[i0 + i], b, h, 0)], M);
                    L += w[i] * ((const float *)l[i0 + i]->data)[at(l[i0 + i], b, h, 0)];
                }
                for (int64_t d = 0; d < D; d++) {
                    float acc = po[at(o_out, b, h, d)];
                    for (size_t i = 0; i < cnt; i++)
                        acc += w[i] * ((const float *)o[i0 + i]->data)[at(o[i0 + i], b, h, d)];
                    po[at(o_out, b, h, d)] = acc;
                }
            }
            for (int64_t d = 0; d < D; d++)
                po[at(o_out, b, h, d)] = ra__finish_o(po[at(o_out, b, h, d)], L, 1);
            if (L == 0.0f) /* every part empty (l = 0): the empty state, whatever m said */
                M = -INFINITY;
            if (m_out)
                ((float *)m_out->data)[at(m_out, b, h, 0)] = M;
            if (l_out)
                ((float *)l_out->data)[at(l_out, b, h, 0)] = L;
        }
    return RA_OK;
}
