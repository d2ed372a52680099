/* The end of a batch entry: its items' partial states merged, in chunk order, by the
 * log-sum-exp rule (with the head's sink), into the caller's outputs. */
#include <math.h>

#include "common/lse.h"
#include "engine/plan.h"

/* Merge the chunks of every (b, head) in chunk order, with the head's sink (which joins the
 * denominator only), and write the caller's outputs. */
void ra__finish_entry(const ra__plan *pl, int64_t b)
{
    const ra__problem *p = pl->p;
    const int64_t G = p->G, D = p->D, hq_item = pl->heads_per_item * G;
    const int64_t nc = ra__chunks_in(pl, b);
    for (int64_t h = 0; h < p->Hq; h++) {
        int64_t j = h / G, group = j / pl->heads_per_item;
        int64_t hh = h - group * hq_item; /* head index inside its item */
        int64_t first = pl->item_base[b] + group * nc;
        float M = p->sinks ? p->sinks[h] : -INFINITY, L = 0.0f;
        for (int64_t c = 0; c < nc; c++)
            M = ra__nan_max(M, pl->part_ml[(first + c) * pl->ml_st + hh]);
        for (int64_t c = 0; c < nc; c++) {
            const float *pm = pl->part_ml + (first + c) * pl->ml_st + hh;
            L += ra__merge_weight(*pm, M) * pm[hq_item];
        }
        if (p->sinks)
            L += ra__merge_weight(p->sinks[h], M);
        float *out = p->o + b * p->o_sb + h * p->o_sh;
        for (int64_t d0 = 0; d0 < D; d0 += 64) {
            int64_t dn = D - d0 < 64 ? D - d0 : 64;
            float acc[64] = {0};
            for (int64_t c = 0; c < nc; c++) {
                const float *po = pl->part_o + (first + c) * pl->o_st + hh * D + d0;
                const float *pm = pl->part_ml + (first + c) * pl->ml_st + hh;
                float w = ra__merge_weight(*pm, M);
                for (int64_t d = 0; d < dn; d++)
                    acc[d] += w * po[d];
            }
            for (int64_t d = 0; d < dn; d++)
                out[(d0 + d) * p->o_sd] = ra__finish_o(acc[d], L, p->normalize);
        }
        if (p->m)
            p->m[b * p->m_sb + h * p->m_sh] = M;
        if (p->l)
            p->l[b * p->l_sb + h * p->l_sh] = L;
    }
}
