#include "attention.h"

#include "attn_check.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ra_fail(ra_status s, const char *what)
{
    fprintf(stderr, "tinystories: %s failed: %s (%s)\n", what, ra_status_string(s),
            ra_last_error());
    return -1;
}

static int wrap(ra_tensor **t, ra_dtype dt, int rank, const int64_t *shape,
                const int64_t *strides, void *data, const char *what)
{
    ra_status s = ra_tensor_wrap(t, dt, rank, shape, strides, data);
    return s == RA_OK ? 0 : ra_fail(s, what);
}

int ts_attn_init(ts_attn *a, const ts_config *c, int B, ts_layout layout, int threads,
                 ra_kernel kernel, int check)
{
    memset(a, 0, sizeof *a);
    a->B = B;
    a->S = c->seq_len;
    a->Hq = c->n_heads;
    a->Hkv = c->n_kv_heads;
    a->D = c->head_size;
    a->n_layers = c->n_layers;
    a->layout = layout;
    a->check = check;
    const int64_t S = a->S, Hq = a->Hq, Hkv = a->Hkv, D = a->D;
    if (layout == TS_LAYOUT_BSTH) {
        const int64_t st[4] = {S * Hkv * D, Hkv * D, D, 1};
        memcpy(a->kv_stride, st, sizeof st);
    } else {
        const int64_t st[4] = {Hkv * S * D, D, S * D, 1};
        memcpy(a->kv_stride, st, sizeof st);
    }
    const size_t cache = (size_t)B * (size_t)(S * Hkv * D);
    const size_t qsize = (size_t)B * (size_t)(Hq * D);
    a->k = calloc((size_t)a->n_layers, sizeof *a->k);
    a->v = calloc((size_t)a->n_layers, sizeof *a->v);
    a->kt = calloc((size_t)a->n_layers, sizeof *a->kt);
    a->vt = calloc((size_t)a->n_layers, sizeof *a->vt);
    a->q = calloc(qsize, sizeof(float));
    a->o_part = calloc(qsize, sizeof(float));
    a->out = calloc(qsize, sizeof(float));
    a->m = calloc((size_t)(B * Hq), sizeof(float));
    a->l = calloc((size_t)(B * Hq), sizeof(float));
    a->lengths = calloc((size_t)B, sizeof(int32_t));
    if (!a->k || !a->v || !a->kt || !a->vt || !a->q || !a->o_part || !a->out || !a->m ||
        !a->l || !a->lengths)
        goto oom;

    const int64_t kv_shape[4] = {B, S, Hkv, D};
    for (int i = 0; i < a->n_layers; i++) {
        a->k[i] = calloc(cache, sizeof(float));
        a->v[i] = calloc(cache, sizeof(float));
        if (!a->k[i] || !a->v[i])
            goto oom;
        if (wrap(&a->kt[i], RA_DTYPE_F32, 4, kv_shape, a->kv_stride, a->k[i], "wrapping K") ||
            wrap(&a->vt[i], RA_DTYPE_F32, 4, kv_shape, a->kv_stride, a->v[i], "wrapping V"))
            goto fail;
    }
    const int64_t q_shape[4] = {B, 1, Hq, D}, ml_shape[4] = {B, 1, Hq, 1}, len_shape[1] = {B};
    if (wrap(&a->qt, RA_DTYPE_F32, 4, q_shape, NULL, a->q, "wrapping q") ||
        wrap(&a->o_part_t, RA_DTYPE_F32, 4, q_shape, NULL, a->o_part, "wrapping o") ||
        wrap(&a->out_t, RA_DTYPE_F32, 4, q_shape, NULL, a->out, "wrapping out") ||
        wrap(&a->mt, RA_DTYPE_F32, 4, ml_shape, NULL, a->m, "wrapping m") ||
        wrap(&a->lt, RA_DTYPE_F32, 4, ml_shape, NULL, a->l, "wrapping l") ||
        wrap(&a->lengths_t, RA_DTYPE_I32, 1, len_shape, NULL, a->lengths, "wrapping lengths"))
        goto fail;

    ra_status s = ra_options_create(&a->opts);
    if (s == RA_OK)
        s = ra_options_set_scale(a->opts, 1.0f / sqrtf((float)a->D));
    if (s == RA_OK)
        s = ra_options_set_num_threads(a->opts, threads);
    if (s == RA_OK && kernel != RA_KERNEL_AUTO)
        s = ra_options_set_kernel(a->opts, kernel);
    if (s != RA_OK) {
        ra_fail(s, "setting the attention options");
        goto fail;
    }
    return 0;
oom:
    fprintf(stderr, "tinystories: out of memory for the KV cache of %d sequences\n", B);
fail:
    ts_attn_free(a);
    return -1;
}

void ts_attn_free(ts_attn *a)
{
    for (int i = 0; i < a->n_layers; i++) {
        if (a->kt)
            ra_tensor_destroy(a->kt[i]);
        if (a->vt)
            ra_tensor_destroy(a->vt[i]);
        if (a->k)
            free(a->k[i]);
        if (a->v)
            free(a->v[i]);
    }
    free(a->k);
    free(a->v);
    free(a->kt);
    free(a->vt);
    ra_tensor_destroy(a->qt);
    ra_tensor_destroy(a->o_part_t);
    ra_tensor_destroy(a->out_t);
    ra_tensor_destroy(a->mt);
    ra_tensor_destroy(a->lt);
    ra_tensor_destroy(a->lengths_t);
    ra_options_destroy(a->opts);
    free(a->q);
    free(a->o_part);
    free(a->out);
    free(a->m);
    free(a->l);
    free(a->lengths);
    memset(a, 0, sizeof *a);
}

int ts_attn_run(ts_attn *a, int layer)
{
    const double t0 = omp_get_wtime();
    ra_status s = ra_ragged_gqa(a->opts, a->qt, a->kt[layer], a->vt[layer], a->lengths_t,
                                a->o_part_t, a->mt, a->lt);
    if (s != RA_OK)
        return ra_fail(s, "ra_ragged_gqa");
    /* One partial state merges to o / l, and to zeros for idle slots (l == 0). */
    const ra_tensor *o = a->o_part_t, *m = a->mt, *l = a->lt;
    s = ra_merge(1, &o, &m, &l, a->out_t, NULL, NULL);
    if (s != RA_OK)
        return ra_fail(s, "ra_merge");
    a->seconds += omp_get_wtime() - t0;
    return a->check ? ts_attn_check(a, layer) : 0;
}
