/* The end of a batch entry: its items' partial states merged, in chunk order, by the
 * log-sum-exp rule (with the head's sink), into the caller's outputs. */
#include <math.h>

#include "common/lse.h"
#include "engine/plan.h"

/* Merge the chunks of every (b, head) in chunk order, with the head's sink (which joins the
 * denominator only), and write the caller's outputs (those of p->rows_of for direct rows). */
void ra__finish_entry(const ra__plan *pl, int64_t b)
{
    const ra__problem *p = pl->p;
    const int64_t G = p->G, D = p->D, hq_item = pl->heads_per_item * G;
    const int64_t nc = ra__chunks_in(pl, b);
    for (int64_t h = 0; h < p->Hq; h++) {
        ra__row row;
        if (!ra__row_at(p, b, h, &row))
            continue;
        const ra__problem *c = row.p; /* whose outputs, sinks and convention */
        int64_t j = h / G, group = j / pl->heads_per_item;
        int64_t hh = h - group * hq_item; /* head index inside its item */
        int64_t first = pl->item_base[b] + group * nc;
        float M = c->sinks ? c->sinks[row.h] : -INFINITY, L = 0.0f;
        for (int64_t k = 0; k < nc; k++)
            M = ra__nan_max(M, pl->part_ml[(first + k) * pl->ml_st + hh]);
        for (int64_t k = 0; k < nc; k++) {
            const float *pm = pl->part_ml + (first + k) * pl->ml_st + hh;
            L += ra__merge_weight(*pm, M) * pm[hq_item];
        }
        if (c->sinks)
            L += ra__merge_weight(c->sinks[row.h], M);
        float *out = c->o + row.b * c->o_sb + row.i * c->o_st + row.h * c->o_sh;
        for (int64_t d0 = 0; d0 < D; d0 += 64) {
            int64_t dn = D - d0 < 64 ? D - d0 : 64;
            float acc[64] = {0};
            for (int64_t k = 0; k < nc - 1; k++) {
                const float *po = pl->part_o + (first + k) * pl->o_st + hh * D + d0;
                float w = ra__merge_weight(pl->part_ml[(first + k) * pl->ml_st + hh], M);
                for (int64_t d = 0; d < dn; d++)
                    acc[d] += w * po[d];
            }
            /* The last chunk is added as it is stored: a separate store loop (a plain copy
             * for one chunk, un-normalized, o_sd 1) becomes a `rep movs` (gcc), which stalls
             * on each output line not yet in cache (docs/multi_token.md). */
            const float *po = pl->part_o + (first + nc - 1) * pl->o_st + hh * D + d0;
            float w = ra__merge_weight(pl->part_ml[(first + nc - 1) * pl->ml_st + hh], M);
            for (int64_t d = 0; d < dn; d++)
                out[(d0 + d) * c->o_sd] = ra__finish_o(acc[d] + w * po[d], L, c->normalize);
        }
        if (c->m)
            c->m[row.b * c->m_sb + row.i * c->m_st + row.h * c->m_sh] = M;
        if (c->l)
            c->l[row.b * c->l_sb + row.i * c->l_st + row.h * c->l_sh] = L;
    }
}
