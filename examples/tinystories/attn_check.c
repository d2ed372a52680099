#include "attn_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define TS_CHECK_TOL 1e-5

int ts_attn_check(ts_attn *a, int layer)
{
    const int D = a->D, Hq = a->Hq, G = a->Hq / a->Hkv;
    const double scale = 1.0 / sqrt((double)D);
    double *ref = calloc((size_t)(a->B * Hq * D), sizeof(double));
    double *lref = calloc((size_t)(a->B * Hq), sizeof(double));
    double *s = calloc((size_t)a->S, sizeof(double));
    if (!ref || !lref || !s) {
        fprintf(stderr, "tinystories: out of memory in the attention check\n");
        free(ref), free(lref), free(s);
        return -1;
    }
    double omax = 0.0;
    for (int b = 0; b < a->B; b++) {
        const int n = a->lengths[b];
        for (int h = 0; h < Hq; h++) {
            const float *q = a->q + (size_t)(b * Hq + h) * D;
            double *o = ref + (size_t)(b * Hq + h) * D;
            double mx = -INFINITY, sum = 0.0;
            for (int t = 0; t < n; t++) {
                const float *k = a->k[layer] + ts_attn_offset(a, b, t, h / G);
                double dot = 0.0;
                for (int d = 0; d < D; d++)
                    dot += (double)q[d] * k[d];
                s[t] = scale * dot;
                mx = s[t] > mx ? s[t] : mx;
            }
            for (int t = 0; t < n; t++) {
                const float *v = a->v[layer] + ts_attn_offset(a, b, t, h / G);
                double p = exp(s[t] - mx);
                sum += p;
                for (int d = 0; d < D; d++)
                    o[d] += p * v[d];
            }
            for (int d = 0; d < D && n > 0; d++) {
                o[d] /= sum;
                omax = fabs(o[d]) > omax ? fabs(o[d]) : omax;
            }
            lref[b * Hq + h] = sum;
        }
    }
    int rc = 0;
    for (int b = 0; b < a->B && rc == 0; b++) {
        for (int h = 0; h < Hq && rc == 0; h++) {
            const int i = b * Hq + h;
            double lerr = fabs(a->l[i] - lref[i]);
            if (a->lengths[b] == 0 ? a->l[i] != 0.0f : lerr > TS_CHECK_TOL * lref[i]) {
                fprintf(stderr,
                        "tinystories: attention check failed: layer %d, sequence %d, head %d, "
                        "length %d: l = %.9g, oracle %.9g\n",
                        layer, b, h, (int)a->lengths[b], (double)a->l[i], lref[i]);
                rc = -1;
            }
            for (int d = 0; d < D && rc == 0; d++) {
                double err = fabs(a->out[(size_t)i * D + d] - ref[(size_t)i * D + d]);
                double rel = omax > 0.0 ? err / omax : err;
                if (rel > a->worst_rel)
                    a->worst_rel = rel;
                if (a->lengths[b] == 0 ? a->out[(size_t)i * D + d] != 0.0f
                                       : err > TS_CHECK_TOL * omax) {
                    fprintf(stderr,
                            "tinystories: attention check failed: layer %d, sequence %d, head "
                            "%d, length %d, d %d: o = %.9g, oracle %.9g (max|o| %.3g)\n",
                            layer, b, h, (int)a->lengths[b], d,
                            (double)a->out[(size_t)i * D + d], ref[(size_t)i * D + d], omax);
                    rc = -1;
                }
            }
        }
    }
    free(ref);
    free(lref);
    free(s);
    return rc;
}
