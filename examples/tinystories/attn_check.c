#include "attn_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The contiguous copy of a paged layer and ra_ragged_gqa's outputs on it. */
struct ts_contig {
    float *k, *v;     /* [B,S,Hkv,D] */
    float *o, *m, *l; /* [B,1,Hq,D], [B,1,Hq,1] */
    ra_tensor *kt, *vt, *ot, *mt, *lt;
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
    const size_t cache = (size_t)(B * S * Hkv * D), qs = (size_t)(B * Hq * D);
    c->k = calloc(cache, sizeof(float));
    c->v = calloc(cache, sizeof(float));
    c->o = calloc(qs, sizeof(float));
    c->m = calloc((size_t)(B * Hq), sizeof(float));
    c->l = calloc((size_t)(B * Hq), sizeof(float));
    const int64_t kv_shape[4] = {B, S, Hkv, D}, o_shape[4] = {B, 1, Hq, D};
    const int64_t ml_shape[4] = {B, 1, Hq, 1};
    if (!c->k || !c->v || !c->o || !c->m || !c->l ||
        ra_tensor_wrap(&c->kt, RA_DTYPE_F32, 4, kv_shape, NULL, c->k) != RA_OK ||
        ra_tensor_wrap(&c->vt, RA_DTYPE_F32, 4, kv_shape, NULL, c->v) != RA_OK ||
        ra_tensor_wrap(&c->ot, RA_DTYPE_F32, 4, o_shape, NULL, c->o) != RA_OK ||
        ra_tensor_wrap(&c->mt, RA_DTYPE_F32, 4, ml_shape, NULL, c->m) != RA_OK ||
        ra_tensor_wrap(&c->lt, RA_DTYPE_F32, 4, ml_shape, NULL, c->l) != RA_OK) {
        ts_attn_check_free(a);
        return NULL;
    }
    return c;
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
    if (!c) {
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
    ra_status s = ra_ragged_gqa(a->opts, a->qt, c->kt, c->vt, a->lengths_t, c->ot, c->mt, c->lt);
    if (s != RA_OK) {
        fprintf(stderr, "tinystories: attention check: ra_ragged_gqa failed: %s (%s)\n",
                ra_status_string(s), ra_last_error());
        return -1;
    }
    const struct {
        const char *name;
        const float *paged, *contig;
        int width; /* floats per (b, h) */
    } parts[3] = {{"o*l", a->o_part, c->o, a->D}, {"m", a->m, c->m, 1}, {"l", a->l, c->l, 1}};
    for (int p = 0; p < 3; p++) {
        const size_t n = (size_t)a->B * (size_t)a->Hq * (size_t)parts[p].width;
        const long i = first_difference(parts[p].paged, parts[p].contig, n);
        if (i < 0)
            continue;
        const int bh = (int)(i / parts[p].width), b = bh / a->Hq;
        fprintf(stderr,
                "tinystories: attention check failed: layer %d, sequence %d, head %d, length "
                "%d: ra_paged_gqa's %s[%d] = %.9g, ra_ragged_gqa on the same rows laid out "
                "contiguously gives %.9g\n",
                layer, b, bh % a->Hq, (int)a->lengths[b], parts[p].name,
                (int)(i % parts[p].width), (double)parts[p].paged[i],
                (double)parts[p].contig[i]);
        return -1;
    }
    return 0;
}
