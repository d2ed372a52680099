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

/* Fills n floats with NaN: pool rows that no sequence holds. */
static void fill_nan(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
}

static int quantized(const ts_attn *a)
{
    return a->kv_dtype != RA_DTYPE_F32;
}

/* The scales' element strides: one scale per row of D elements, so a row's stride / D. */
static void scale_strides(const ts_attn *a, int64_t st[4])
{
    for (int i = 0; i < 3; i++)
        st[i] = a->kv_stride[i] / a->D;
    st[3] = 1;
}

/* Allocates layer i's K and V of n elements each: f32, or codes and a scale per row. A pool
 * starts as NaN (a quantized one through NaN scales). */
static int alloc_layer(ts_attn *a, int i, size_t n, int paged)
{
    if (!quantized(a)) {
        a->k[i] = calloc(n, sizeof(float));
        a->v[i] = calloc(n, sizeof(float));
        if (!a->k[i] || !a->v[i])
            return -1;
        if (paged) {
            fill_nan(a->k[i], n);
            fill_nan(a->v[i], n);
        }
        return 0;
    }
    const size_t rows = n / (size_t)a->D;
    a->kc[i] = calloc(n, 1);
    a->vc[i] = calloc(n, 1);
    a->ks[i] = calloc(rows, sizeof(float));
    a->vs[i] = calloc(rows, sizeof(float));
    if (!a->kc[i] || !a->vc[i] || !a->ks[i] || !a->vs[i])
        return -1;
    if (paged) {
        fill_nan(a->ks[i], rows);
        fill_nan(a->vs[i], rows);
    }
    return 0;
}

static int wrap_quantized(ra_tensor **t, ra_tensor **scale, const ts_attn *a,
                          const int64_t *shape, unsigned char *codes, float *scales,
                          const char *what)
{
    const int64_t sshape[4] = {shape[0], shape[1], shape[2], 1};
    int64_t sst[4];
    scale_strides(a, sst);
    ra_status s = ra_tensor_wrap(scale, RA_DTYPE_F32, 4, sshape, sst, scales);
    if (s == RA_OK)
        s = ra_tensor_wrap_quantized(t, a->kv_dtype, 4, shape, a->kv_stride, codes, *scale);
    return s == RA_OK ? 0 : ra_fail(s, what);
}

/* Wraps layer i's K and V as tensors of the given shape (the cache's, or the pool's). */
static int wrap_layer(ts_attn *a, int i, const int64_t *shape)
{
    if (quantized(a))
        return wrap_quantized(&a->kt[i], &a->kst[i], a, shape, a->kc[i], a->ks[i],
                              "wrapping K") ||
               wrap_quantized(&a->vt[i], &a->vst[i], a, shape, a->vc[i], a->vs[i],
                              "wrapping V");
    return wrap(&a->kt[i], RA_DTYPE_F32, 4, shape, a->kv_stride, a->k[i], "wrapping K") ||
           wrap(&a->vt[i], RA_DTYPE_F32, 4, shape, a->kv_stride, a->v[i], "wrapping V");
}

/* The page table and free list of num_pages pages of page_size positions, all free; the
 * lowest page index is handed out first. */
static int pages_init(ts_pages *pg, int B, int seq_len, int page_size, int num_pages)
{
    pg->size = page_size;
    pg->count = num_pages;
    pg->max_pages = (seq_len + page_size - 1) / page_size;
    pg->table = malloc((size_t)B * (size_t)pg->max_pages * sizeof *pg->table);
    pg->held = calloc((size_t)B, sizeof *pg->held);
    pg->free = malloc((size_t)num_pages * sizeof *pg->free);
    if (!pg->table || !pg->held || !pg->free)
        return -1;
    for (size_t i = 0; i < (size_t)B * (size_t)pg->max_pages; i++)
        pg->table[i] = -1;
    for (int i = 0; i < num_pages; i++)
        pg->free[i] = num_pages - 1 - i;
    pg->n_free = num_pages;
    return 0;
}

/* Wraps the query and output buffers for T rows per sequence: [B,T,...] for the attention
 * call, and the same memory as [B*T,1,...] for ra_merge, which takes one row per entry. */
static int wrap_rows(ts_attn *a, int T)
{
    ra_tensor **views[] = {&a->qt, &a->o_part_t, &a->mt, &a->lt,
                           &a->o_flat_t, &a->m_flat_t, &a->l_flat_t, &a->out_t};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
        ra_tensor_destroy(*views[i]);
        *views[i] = NULL;
    }
    a->T = T;
    const int64_t B = a->B, Hq = a->Hq, D = a->D;
    const int64_t q_shape[4] = {B, T, Hq, D}, ml_shape[4] = {B, T, Hq, 1};
    const int64_t flat[4] = {B * T, 1, Hq, D}, ml_flat[4] = {B * T, 1, Hq, 1};
    return wrap(&a->qt, RA_DTYPE_F32, 4, q_shape, NULL, a->q, "wrapping q") ||
           wrap(&a->o_part_t, RA_DTYPE_F32, 4, q_shape, NULL, a->o_part, "wrapping o") ||
           wrap(&a->mt, RA_DTYPE_F32, 4, ml_shape, NULL, a->m, "wrapping m") ||
           wrap(&a->lt, RA_DTYPE_F32, 4, ml_shape, NULL, a->l, "wrapping l") ||
           wrap(&a->o_flat_t, RA_DTYPE_F32, 4, flat, NULL, a->o_part, "wrapping o") ||
           wrap(&a->m_flat_t, RA_DTYPE_F32, 4, ml_flat, NULL, a->m, "wrapping m") ||
           wrap(&a->l_flat_t, RA_DTYPE_F32, 4, ml_flat, NULL, a->l, "wrapping l") ||
           wrap(&a->out_t, RA_DTYPE_F32, 4, flat, NULL, a->out, "wrapping out");
}

int ts_attn_init(ts_attn *a, const ts_config *c, int B, int max_T, ts_layout layout,
                 ra_dtype kv_dtype, int threads, ra_kernel kernel, int check, int page_size,
                 int num_pages)
{
    memset(a, 0, sizeof *a);
    a->B = B;
    a->S = c->seq_len;
    a->Hq = c->n_heads;
    a->Hkv = c->n_kv_heads;
    a->D = c->head_size;
    a->n_layers = c->n_layers;
    a->max_T = max_T;
    a->layout = layout;
    a->kv_dtype = kv_dtype;
    a->check = check;
    const int64_t S = a->S, Hq = a->Hq, Hkv = a->Hkv, D = a->D;
    const int paged = layout == TS_LAYOUT_PAGED;
    if (paged) {
        const int64_t st[4] = {page_size * Hkv * D, Hkv * D, D, 1};
        memcpy(a->kv_stride, st, sizeof st);
    } else if (layout == TS_LAYOUT_BSTH) {
        const int64_t st[4] = {S * Hkv * D, Hkv * D, D, 1};
        memcpy(a->kv_stride, st, sizeof st);
    } else {
        const int64_t st[4] = {Hkv * S * D, D, S * D, 1};
        memcpy(a->kv_stride, st, sizeof st);
    }
    /* a cache of B * S rows, or a pool of num_pages * page_size rows */
    const size_t cache = paged ? (size_t)num_pages * (size_t)(page_size * Hkv * D)
                               : (size_t)B * (size_t)(S * Hkv * D);
    const size_t rows = (size_t)B * (size_t)max_T;
    const size_t qsize = rows * (size_t)(Hq * D);
    a->k = calloc((size_t)a->n_layers, sizeof *a->k);
    a->v = calloc((size_t)a->n_layers, sizeof *a->v);
    a->kt = calloc((size_t)a->n_layers, sizeof *a->kt);
    a->vt = calloc((size_t)a->n_layers, sizeof *a->vt);
    a->kc = calloc((size_t)a->n_layers, sizeof *a->kc);
    a->vc = calloc((size_t)a->n_layers, sizeof *a->vc);
    a->ks = calloc((size_t)a->n_layers, sizeof *a->ks);
    a->vs = calloc((size_t)a->n_layers, sizeof *a->vs);
    a->kst = calloc((size_t)a->n_layers, sizeof *a->kst);
    a->vst = calloc((size_t)a->n_layers, sizeof *a->vst);
    a->q = calloc(qsize, sizeof(float));
    a->o_part = calloc(qsize, sizeof(float));
    a->out = calloc(qsize, sizeof(float));
    a->m = calloc(rows * (size_t)Hq, sizeof(float));
    a->l = calloc(rows * (size_t)Hq, sizeof(float));
    a->lengths = calloc((size_t)B, sizeof(int32_t));
    a->q_lens = calloc((size_t)B, sizeof(int32_t));
    if (!a->k || !a->v || !a->kt || !a->vt || !a->kc || !a->vc || !a->ks || !a->vs || !a->kst ||
        !a->vst || !a->q || !a->o_part || !a->out || !a->m || !a->l || !a->lengths ||
        !a->q_lens)
        goto oom;
    if (paged && pages_init(&a->pages, B, a->S, page_size, num_pages) != 0)
        goto oom;

    const int64_t kv_shape[4] = {B, S, Hkv, D};
    const int64_t pool_shape[4] = {num_pages, page_size, Hkv, D};
    for (int i = 0; i < a->n_layers; i++) {
        if (alloc_layer(a, i, cache, paged) != 0)
            goto oom;
        if (wrap_layer(a, i, paged ? pool_shape : kv_shape) != 0)
            goto fail;
    }
    if (paged) {
        const int64_t table_shape[2] = {B, a->pages.max_pages};
        if (wrap(&a->pages.table_t, RA_DTYPE_I32, 2, table_shape, NULL, a->pages.table,
                 "wrapping the page table"))
            goto fail;
    }
    const int64_t len_shape[1] = {B};
    if (wrap_rows(a, 1) ||
        wrap(&a->lengths_t, RA_DTYPE_I32, 1, len_shape, NULL, a->lengths, "wrapping lengths") ||
        wrap(&a->q_lens_t, RA_DTYPE_I32, 1, len_shape, NULL, a->q_lens, "wrapping q_lens"))
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
    if (paged)
        fprintf(stderr,
                "tinystories: out of memory for a pool of %d pages of %d positions per layer\n",
                num_pages, page_size);
    else
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
        if (a->kst)
            ra_tensor_destroy(a->kst[i]);
        if (a->vst)
            ra_tensor_destroy(a->vst[i]);
        if (a->kc)
            free(a->kc[i]), free(a->ks[i]);
        if (a->vc)
            free(a->vc[i]), free(a->vs[i]);
    }
    free(a->k);
    free(a->v);
    free(a->kt);
    free(a->vt);
    free(a->kc);
    free(a->vc);
    free(a->ks);
    free(a->vs);
    free(a->kst);
    free(a->vst);
    ra_tensor *views[] = {a->qt,       a->o_part_t, a->mt,     a->lt,        a->o_flat_t,
                          a->m_flat_t, a->l_flat_t, a->out_t, a->lengths_t, a->q_lens_t};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++)
        ra_tensor_destroy(views[i]);
    ra_options_destroy(a->opts);
    ra_tensor_destroy(a->pages.table_t);
    free(a->pages.table);
    free(a->pages.held);
    free(a->pages.free);
    ts_attn_check_free(a);
    free(a->q);
    free(a->o_part);
    free(a->out);
    free(a->m);
    free(a->l);
    free(a->lengths);
    free(a->q_lens);
    memset(a, 0, sizeof *a);
}

/* Quantizes the rows x [Hkv, D] of one position into the codes at element offset `at` and
 * their scales, one per KV head (max|x| / qmax, ra_quantize's rule). */
static int quantize_rows(const ts_attn *a, const float *x, unsigned char *codes, float *scales,
                         int64_t at)
{
    const int64_t shape[2] = {a->Hkv, a->D}, sshape[2] = {a->Hkv, 1};
    const int64_t st[2] = {a->kv_stride[2], 1}, sst[2] = {a->kv_stride[2] / a->D, 1};
    ra_tensor *src = NULL, *dst = NULL, *sc = NULL;
    ra_status s = ra_tensor_wrap(&src, RA_DTYPE_F32, 2, shape, NULL, (void *)x);
    if (s == RA_OK)
        s = ra_tensor_wrap(&dst, a->kv_dtype, 2, shape, st, codes + at);
    if (s == RA_OK)
        s = ra_tensor_wrap(&sc, RA_DTYPE_F32, 2, sshape, sst, scales + at / a->D);
    if (s == RA_OK)
        s = ra_quantize(src, dst, sc);
    ra_tensor_destroy(src);
    ra_tensor_destroy(dst);
    ra_tensor_destroy(sc);
    return s == RA_OK ? 0 : ra_fail(s, "ra_quantize");
}

int ts_attn_store(ts_attn *a, int layer, int b, int pos, const float *k, const float *v)
{
    if (quantized(a)) {
        const int64_t at = ts_attn_offset(a, b, pos, 0);
        return quantize_rows(a, k, a->kc[layer], a->ks[layer], at) ||
                       quantize_rows(a, v, a->vc[layer], a->vs[layer], at)
                   ? -1
                   : 0;
    }
    for (int j = 0; j < a->Hkv; j++) {
        const int64_t at = ts_attn_offset(a, b, pos, j);
        memcpy(a->k[layer] + at, k + (size_t)j * a->D, (size_t)a->D * sizeof(float));
        memcpy(a->v[layer] + at, v + (size_t)j * a->D, (size_t)a->D * sizeof(float));
    }
    return 0;
}

/* Paged: sequence b takes a page from the free list for position t, the first of a page it
 * does not hold yet. */
static int acquire_page(ts_pages *pg, int b, int t, int step)
{
    if (pg->n_free == 0) {
        fprintf(stderr,
                "tinystories: the page pool is exhausted: at step %d sequence %d needs a "
                "page for position %d, and all %d pages of %d positions are in use "
                "(raise --pool-pages)\n",
                step, b, t, pg->count, pg->size);
        return -1;
    }
    pg->table[(int64_t)b * pg->max_pages + pg->held[b]] = pg->free[--pg->n_free];
    pg->held[b]++;
    pg->acquired++;
    if (pg->count - pg->n_free > pg->peak)
        pg->peak = pg->count - pg->n_free;
    return 0;
}

int ts_attn_begin_step(ts_attn *a, const ts_step *st, int step)
{
    if (st->T != a->T && wrap_rows(a, st->T) != 0)
        return -1;
    a->multi = st->multi;
    memset(a->lengths, 0, (size_t)a->B * sizeof *a->lengths);
    memset(a->q_lens, 0, (size_t)a->B * sizeof *a->q_lens);
    for (int i = 0; i < st->n_active; i++) {
        const int b = st->active[i];
        a->lengths[b] = st->pos[b] + st->n[b];
        a->q_lens[b] = st->n[b];
        for (int t = st->pos[b]; t < a->lengths[b] && a->layout == TS_LAYOUT_PAGED; t++)
            if (t % a->pages.size == 0 && acquire_page(&a->pages, b, t, step) != 0)
                return -1;
    }
    return 0;
}

void ts_attn_release(ts_attn *a, int b)
{
    ts_pages *pg = &a->pages;
    if (a->layout != TS_LAYOUT_PAGED)
        return;
    const size_t rows = (size_t)pg->size * (size_t)(a->Hkv * a->D);
    int32_t *slots = pg->table + (int64_t)b * pg->max_pages;
    for (int i = pg->held[b] - 1; i >= 0; i--) {
        for (int l = 0; l < a->n_layers; l++) {
            if (quantized(a)) { /* NaN scales: every element of the page reads as NaN */
                fill_nan(a->ks[l] + (size_t)slots[i] * rows / (size_t)a->D, rows / (size_t)a->D);
                fill_nan(a->vs[l] + (size_t)slots[i] * rows / (size_t)a->D, rows / (size_t)a->D);
                continue;
            }
            fill_nan(a->k[l] + (size_t)slots[i] * rows, rows);
            fill_nan(a->v[l] + (size_t)slots[i] * rows, rows);
        }
        pg->free[pg->n_free++] = slots[i];
        slots[i] = -1;
    }
    pg->held[b] = 0;
}

/* The step's attention call for layer `layer`, into o_part, m and l; *what names it. */
static ra_status attend(ts_attn *a, int layer, const char **what)
{
    const ra_tensor *k = a->kt[layer], *v = a->vt[layer], *pt = a->pages.table_t;
    if (a->layout == TS_LAYOUT_PAGED) {
        *what = a->multi ? "ra_paged_gqa_multi" : "ra_paged_gqa";
        return a->multi ? ra_paged_gqa_multi(a->opts, a->qt, k, v, pt, a->lengths_t, a->q_lens_t,
                                             a->o_part_t, a->mt, a->lt)
                        : ra_paged_gqa(a->opts, a->qt, k, v, pt, a->lengths_t, a->o_part_t,
                                       a->mt, a->lt);
    }
    *what = a->multi ? "ra_ragged_gqa_multi" : "ra_ragged_gqa";
    return a->multi ? ra_ragged_gqa_multi(a->opts, a->qt, k, v, a->lengths_t, a->q_lens_t,
                                          a->o_part_t, a->mt, a->lt)
                    : ra_ragged_gqa(a->opts, a->qt, k, v, a->lengths_t, a->o_part_t, a->mt,
                                    a->lt);
}

int ts_attn_run(ts_attn *a, int layer)
{
    const double t0 = omp_get_wtime();
    const int paged = a->layout == TS_LAYOUT_PAGED;
    const char *what;
    ra_status s = attend(a, layer, &what);
    if (s != RA_OK)
        return ra_fail(s, what);
    /* Paged with the check: ra_ragged_gqa (_multi) on the same rows laid out contiguously must
     * give the same bits; compared before ra_merge, on the partial state itself. */
    const double t1 = omp_get_wtime();
    if (paged && a->check && ts_attn_check_contiguous(a, layer) != 0)
        return -1;
    const double t2 = omp_get_wtime();
    /* One partial state merges to o / l, and to zeros for empty rows (l == 0). */
    const ra_tensor *o = a->o_flat_t, *m = a->m_flat_t, *l = a->l_flat_t;
    s = ra_merge(1, &o, &m, &l, a->out_t, NULL, NULL);
    if (s != RA_OK)
        return ra_fail(s, "ra_merge");
    a->seconds += omp_get_wtime() - t0 - (t2 - t1);
    return a->check ? ts_attn_check(a, layer) : 0;
}
