#include "attn_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TS_CHECK_TOL 1e-5

int ts_attn_check(ts_attn *a, int layer)
{
    const int D = a->D, Hq = a->Hq, G = a->Hq / a->Hkv, T = a->T, rows = a->B * a->T;
    const double scale = 1.0 / sqrt((double)D);
    double *ref = calloc((size_t)(rows * Hq * D), sizeof(double));
    double *lref = calloc((size_t)(rows * Hq), sizeof(double));
    double *s = calloc((size_t)a->S, sizeof(double));
    if (!ref || !lref || !s) {
        fprintf(stderr, "tinystories: out of memory in the attention check\n");
        free(ref), free(lref), free(s);
        return -1;
    }
    double omax = 0.0;
    for (int r = 0; r < rows; r++) {
        const int b = r / T, n = ts_attn_row_length(a, b, r % T);
        for (int h = 0; h < Hq; h++) {
            const float *q = a->q + (size_t)(r * Hq + h) * D;
            double *o = ref + (size_t)(r * Hq + h) * D;
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
            lref[r * Hq + h] = sum;
        }
    }
    int rc = 0;
    for (int r = 0; r < rows && rc == 0; r++) {
        const int b = r / T, n = ts_attn_row_length(a, b, r % T);
        for (int h = 0; h < Hq && rc == 0; h++) {
            const int i = r * Hq + h;
            double lerr = fabs(a->l[i] - lref[i]);
            if (n == 0 ? a->l[i] != 0.0f : lerr > TS_CHECK_TOL * lref[i]) {
                fprintf(stderr,
                        "tinystories: attention check failed: layer %d, sequence %d, query %d, "
                        "head %d, length %d: l = %.9g, oracle %.9g\n",
                        layer, b, r % T, h, n, (double)a->l[i], lref[i]);
                rc = -1;
            }
            for (int d = 0; d < D && rc == 0; d++) {
                double err = fabs(a->out[(size_t)i * D + d] - ref[(size_t)i * D + d]);
                double rel = omax > 0.0 ? err / omax : err;
                if (rel > a->worst_rel)
                    a->worst_rel = rel;
                if (n == 0 ? a->out[(size_t)i * D + d] != 0.0f : err > TS_CHECK_TOL * omax) {
                    fprintf(stderr,
                            "tinystories: attention check failed: layer %d, sequence %d, query "
                            "%d, head %d, length %d, d %d: o = %.9g, oracle %.9g (max|o| "
                            "%.3g)\n",
                            layer, b, r % T, h, n, d,
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

/* The contiguous copy of a paged layer and ra_ragged_gqa's outputs on it. */
struct ts_contig {
    float *k, *v;     /* [B,S,Hkv,D] */
    float *o, *m, *l; /* [B,T,Hq,D], [B,T,Hq,1] for the largest T */
    ra_tensor *kt, *vt, *ot, *mt, *lt;
    int T;            /* the T that ot, mt and lt are wrapped for */
};

void ts_attn_check_free(ts_attn *a)
{
    struct ts_contig *c = a->contig;
    if (!c)
        return;
    ra_tensor *t[] = {c->kt, c->vt, c->ot, c->mt, c->lt};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        ra_tensor_destroy(t[i]);
    free(c->k), free(c->v), free(c->o), free(c->m), free(c->l);
    free(c);
    a->contig = NULL;
}

static struct ts_contig *contig_get(ts_attn *a)
{
    if (a->contig)
        return a->contig;
    struct ts_contig *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    a->contig = c;
    const int64_t B = a->B, S = a->S, Hq = a->Hq, Hkv = a->Hkv, D = a->D;
    const size_t cache = (size_t)(B * S * Hkv * D), rows = (size_t)(B * a->max_T);
    c->k = calloc(cache, sizeof(float));
    c->v = calloc(cache, sizeof(float));
    c->o = calloc(rows * (size_t)(Hq * D), sizeof(float));
    c->m = calloc(rows * (size_t)Hq, sizeof(float));
    c->l = calloc(rows * (size_t)Hq, sizeof(float));
    const int64_t kv_shape[4] = {B, S, Hkv, D};
    if (!c->k || !c->v || !c->o || !c->m || !c->l ||
        ra_tensor_wrap(&c->kt, RA_DTYPE_F32, 4, kv_shape, NULL, c->k) != RA_OK ||
        ra_tensor_wrap(&c->vt, RA_DTYPE_F32, 4, kv_shape, NULL, c->v) != RA_OK) {
        ts_attn_check_free(a);
        return NULL;
    }
    return c;
}

/* Wraps c's outputs for the current step's T rows per sequence. */
static int contig_wrap_rows(struct ts_contig *c, const ts_attn *a)
{
    if (c->ot && c->T == a->T)
        return 0;
    ra_tensor_destroy(c->ot), ra_tensor_destroy(c->mt), ra_tensor_destroy(c->lt);
    c->ot = c->mt = c->lt = NULL;
    c->T = a->T;
    const int64_t o_shape[4] = {a->B, a->T, a->Hq, a->D}, ml_shape[4] = {a->B, a->T, a->Hq, 1};
    return ra_tensor_wrap(&c->ot, RA_DTYPE_F32, 4, o_shape, NULL, c->o) != RA_OK ||
                   ra_tensor_wrap(&c->mt, RA_DTYPE_F32, 4, ml_shape, NULL, c->m) != RA_OK ||
                   ra_tensor_wrap(&c->lt, RA_DTYPE_F32, 4, ml_shape, NULL, c->l) != RA_OK
               ? -1
               : 0;
}

/* The first index where two float arrays differ in their bits, or -1. */
static long first_difference(const float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&x[i], &y[i], sizeof(float)) != 0)
            return (long)i;
    return -1;
}

int ts_attn_check_contiguous(ts_attn *a, int layer)
{
    struct ts_contig *c = contig_get(a);
    if (!c || contig_wrap_rows(c, a) != 0) {
        fprintf(stderr, "tinystories: out of memory in the attention check\n");
        return -1;
    }
    const int64_t S = a->S, Hkv = a->Hkv, D = a->D;
    for (int b = 0; b < a->B; b++)
        for (int t = 0; t < a->lengths[b]; t++)
            for (int j = 0; j < Hkv; j++) {
                const size_t to = (size_t)(((b * S + t) * Hkv + j) * D);
                const int64_t from = ts_attn_offset(a, b, t, j);
                memcpy(c->k + to, a->k[layer] + from, (size_t)D * sizeof(float));
                memcpy(c->v + to, a->v[layer] + from, (size_t)D * sizeof(float));
            }
    ra_status s = a->multi ? ra_ragged_gqa_multi(a->opts, a->qt, c->kt, c->vt, a->lengths_t,
                                                 a->q_lens_t, c->ot, c->mt, c->lt)
                           : ra_ragged_gqa(a->opts, a->qt, c->kt, c->vt, a->lengths_t, c->ot,
                                           c->mt, c->lt);
    if (s != RA_OK) {
        fprintf(stderr, "tinystories: attention check: %s failed: %s (%s)\n",
                a->multi ? "ra_ragged_gqa_multi" : "ra_ragged_gqa", ra_status_string(s),
                ra_last_error());
        return -1;
    }
    const struct {
        const char *name;
        const float *paged, *contig;
        int width; /* floats per (b, i, h) */
    } parts[3] = {{"o*l", a->o_part, c->o, a->D}, {"m", a->m, c->m, 1}, {"l", a->l, c->l, 1}};
    for (int p = 0; p < 3; p++) {
        const size_t n = (size_t)(a->B * a->T) * (size_t)a->Hq * (size_t)parts[p].width;
        const long i = first_difference(parts[p].paged, parts[p].contig, n);
        if (i < 0)
            continue;
        const int rh = (int)(i / parts[p].width), r = rh / a->Hq, b = r / a->T;
        fprintf(stderr,
                "tinystories: attention check failed: layer %d, sequence %d, query %d, head %d, "
                "length %d: ra_paged_gqa%s's %s[%d] = %.9g, ra_ragged_gqa%s on the same rows "
                "laid out contiguously gives %.9g\n",
                layer, b, r % a->T, rh % a->Hq, ts_attn_row_length(a, b, r % a->T),
                a->multi ? "_multi" : "", parts[p].name,
                (int)(i % parts[p].width), (double)parts[p].paged[i],
                a->multi ? "_multi" : "", (double)parts[p].contig[i]);
        return -1;
    }
    return 0;
}
