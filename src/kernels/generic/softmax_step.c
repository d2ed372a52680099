/* The online-softmax update between the two products of a tile, shared by the portable, BLAS,
 * AVX2 and NEON kernels (AVX-512 fuses its own, with a vector max). */
#include <math.h>

#include "common/lse.h"
#include "kernels/kernel.h"

void ra__softmax_step_with(const ra__tile *t, ra__exp_row_fn exp_row)
{
    for (int64_t g = 0; g < t->G; g++) {
        float *s = t->s + g * t->s_ld;
        if (t->k_scales)
            for (int64_t i = 0; i < t->T; i++)
                s[i] *= t->k_scales[i];
        if (t->softcap != 0.0f || t->slopes)
            for (int64_t i = 0; i < t->T; i++)
                s[i] = ra__modify_logit(s[i], t->softcap, t->slopes ? t->slopes + g : NULL,
                                        (float)(t->last_pos - t->t_first - i));
        float mb = -INFINITY;
        for (int64_t i = 0; i < t->T; i++)
            mb = ra__nan_max(mb, s[i]);
        float m_old = t->m[g];
        float m_new = ra__nan_max(m_old, mb);
        if (m_new == -INFINITY) {
            /* Every logit so far is -inf: they carry no weight (avoids -inf - -inf = NaN). */
            for (int64_t i = 0; i < t->T; i++)
                s[i] = 0.0f;
            continue;
        }
        float sum = exp_row(s, t->T, m_new);
        if (t->v_scales) /* l sums p; the p.V takes p times each position's V scale */
            for (int64_t i = 0; i < t->T; i++)
                s[i] *= t->v_scales[i];
        float alpha = expf(m_old - m_new); /* 0 on the first tile (m_old = -inf) */
        t->l[g] = t->l[g] * alpha + sum;
        t->m[g] = m_new;
        if (alpha != 1.0f) {
            float *o = t->o + g * t->D;
            for (int64_t d = 0; d < t->D; d++)
                o[d] *= alpha;
        }
    }
}

static float exp_row_portable(float *s, int64_t n, float m)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        s[i] = expf(s[i] - m);
        sum += s[i];
    }
    return sum;
}

void ra__softmax_step_portable(const ra__tile *t)
{
    ra__softmax_step_with(t, exp_row_portable);
}
