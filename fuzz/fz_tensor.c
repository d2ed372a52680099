/* Test tensors: layouts, exact-size buffers, element access, snapshots and overlap tests. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"

int64_t fz_numel(const fz_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        if (t->shape[i] == 0)
            return 0;
    for (int i = 0; i < t->rank; i++)
        n *= t->shape[i]; /* the builders keep the byte size within int64 */
    return n;
}

size_t fz_extent(const fz_tensor *t)
{
    if (fz_numel(t) == 0)
        return 0;
    int64_t last = 0;
    for (int i = 0; i < t->rank; i++)
        last += (t->shape[i] - 1) * t->st[i];
    return (size_t)(last + 1) * fz_dtype_size(t->dt);
}

int64_t fz_offset(const fz_tensor *t, const int64_t *idx)
{
    int64_t off = 0;
    for (int i = 0; i < t->rank; i++)
        off += idx[i] * t->st[i];
    return off;
}

bool fz_next_index(const fz_tensor *t, int64_t *idx)
{
    for (int i = t->rank - 1; i >= 0; i--) {
        if (++idx[i] < t->shape[i])
            return true;
        idx[i] = 0;
    }
    return false;
}

void fz_row_major(fz_tensor *t, int64_t pad)
{
    int64_t run = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        t->st[i] = run;
        /* Saturates: huge shapes get all-zero strides from their builder anyway. */
        if (__builtin_mul_overflow(run, t->shape[i] > 0 ? t->shape[i] : 1, &run) ||
            __builtin_add_overflow(run, pad, &run))
            run = INT64_MAX;
    }
    t->null_strides = (pad == 0);
}

void fz_set_shape(fz_tensor *t, ra_dtype dt, int rank, int64_t d0, int64_t d1, int64_t d2,
                  int64_t d3)
{
    const int64_t d[4] = {d0, d1, d2, d3};
    t->present = true;
    t->dt = dt;
    t->rank = rank;
    for (int i = 0; i < 4; i++)
        t->shape[i] = i < rank ? d[i] : 1;
    fz_row_major(t, 0);
}

void fz_choose_layout(fz_in *in, fz_tensor *t, bool input)
{
    unsigned mode = fz_u8(in) % 16;
    if (mode <= 5 || mode >= 13) {
        fz_row_major(t, 0);
    } else if (mode == 6) {
        fz_row_major(t, 0);
        t->null_strides = false; /* the same strides, spelled out */
    } else if (mode <= 8) {
        fz_row_major(t, 1 + fz_u8(in) % 3);
    } else if (mode <= 10) {
        /* Axes in a fuzz-chosen memory order, each padded by 0..2 elements. */
        int perm[4] = {0, 1, 2, 3};
        for (int i = t->rank - 1; i > 0; i--) {
            int j = fz_u8(in) % (i + 1), x = perm[i];
            perm[i] = perm[j];
            perm[j] = x;
        }
        int64_t run = 1;
        for (int i = t->rank - 1; i >= 0; i--) {
            int a = perm[i];
            t->st[a] = run;
            if (__builtin_mul_overflow(run, t->shape[a] > 0 ? t->shape[a] : 1, &run) ||
                __builtin_add_overflow(run, fz_u8(in) % 3, &run))
                run = INT64_MAX;
        }
        t->null_strides = false;
    } else if (mode == 11 && input) {
        fz_row_major(t, 0);
        t->st[fz_u8(in) % t->rank] = 0; /* broadcast one axis */
        t->null_strides = false;
    } else {
        /* Small arbitrary strides: inputs may overlap themselves; outputs that do must be
         * rejected. */
        for (int i = 0; i < t->rank; i++)
            t->st[i] = fz_u8(in) % 5;
        t->null_strides = false;
    }
}

unsigned char *fz_data(const fz_case *c, const fz_tensor *t)
{
    if (t->null_data || !c->buf[t->host])
        return NULL;
    return c->buf[t->host] + t->off;
}

/* Wraps t plainly; the builders only describe tensors the header allows. */
static void wrap_plain(fz_case *c, int i)
{
    fz_tensor *t = &c->t[i];
    ra_status s = ra_tensor_wrap(&t->h, t->dt, t->rank, t->shape,
                                 t->null_strides ? NULL : t->st, fz_data(c, t));
    FZ_CHECK(s == RA_OK, "ra_tensor_wrap of harness tensor %d (rank %d) failed: %d", i,
             t->rank, (int)s);
}

/* Wraps t with its scale; when the header says that wrap fails, checks that it does (without
 * touching *out) and wraps t plainly instead, as a quantized tensor without a scale. */
static void wrap_quantized(fz_case *c, int i)
{
    fz_tensor *t = &c->t[i];
    const fz_tensor *sc = &c->t[t->scale];
    fz_expect e = fz_quant_expect_wrap(t, sc);
    ra_tensor *h = NULL;
    fz_mark_last_error();
    ra_status s = ra_tensor_wrap_quantized(&h, t->dt, t->rank, t->shape,
                                           t->null_strides ? NULL : t->st, fz_data(c, t),
                                           sc->present ? sc->h : NULL);
    fz_check_status(&e, s, "ra_tensor_wrap_quantized");
    if (s == RA_OK) {
        t->h = h;
        return;
    }
    fz_check_new_error("ra_tensor_wrap_quantized");
    FZ_CHECK(h == NULL, "ra_tensor_wrap_quantized failed but wrote *out");
    t->quant = false;
    wrap_plain(c, i);
}

void fz_case_materialize(fz_case *c)
{
    for (int i = 0; i < c->n; i++) {
        fz_tensor *t = &c->t[i];
        if (!t->present)
            continue;
        if (t->host < 0 || t->host >= c->n || !c->t[t->host].present)
            t->host = i, t->off = 0;
        size_t need = t->off + fz_extent(t);
        if (need > c->buf_n[t->host])
            c->buf_n[t->host] = need;
    }
    for (int i = 0; i < c->n; i++) {
        if (c->buf_n[i] == 0)
            continue;
        c->buf[i] = malloc(c->buf_n[i]);
        FZ_CHECK(c->buf[i] != NULL, "harness out of memory (%zu bytes)", c->buf_n[i]);
        memset(c->buf[i], 0xff, c->buf_n[i]);
    }
    for (int i = 0; i < c->n; i++) {
        fz_tensor *t = &c->t[i];
        if (t->present && fz_numel(t) > 0)
            t->null_data = false;
        t->quant &= t->present && t->scale >= 0 && t->scale < c->n;
    }
    /* scales first: a quantized wrap takes its scale's handle */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < c->n; i++) {
            if (!c->t[i].present || c->t[i].quant != (pass == 1))
                continue;
            if (pass == 0)
                wrap_plain(c, i);
            else
                wrap_quantized(c, i);
        }
}

void fz_case_free(fz_case *c)
{
    for (int i = 0; i < c->n; i++) {
        ra_tensor_destroy(c->t[i].h);
        free(c->buf[i]);
        free(c->snap[i]);
    }
}

static double decode_at(const fz_tensor *t, const unsigned char *p)
{
    uint16_t h;
    float f;
    int32_t i;
    switch (t->dt) {
    case RA_DTYPE_F32:
        memcpy(&f, p, 4);
        return f;
    case RA_DTYPE_F16:
        memcpy(&h, p, 2);
        return fz_f16_to_f32(h);
    case RA_DTYPE_BF16:
        memcpy(&h, p, 2);
        return fz_bf16_to_f32(h);
    case RA_DTYPE_I8:
    case RA_DTYPE_FP8_E4M3:
    case RA_DTYPE_FP8_E5M2:
        return fz_code_value(t->dt, *p);
    default:
        memcpy(&i, p, 4);
        return i;
    }
}

double fz_get_code(const fz_case *c, const fz_tensor *t, const int64_t *idx)
{
    return decode_at(t, fz_data(c, t) + fz_offset(t, idx) * (int64_t)fz_dtype_size(t->dt));
}

double fz_get_scale(const fz_case *c, const fz_tensor *t, const int64_t *idx)
{
    if (!t->quant)
        return 1;
    const fz_tensor *sc = &c->t[t->scale];
    int64_t si[4];
    fz_scale_index(sc, idx, si);
    return fz_get(c, sc, si);
}

double fz_get(const fz_case *c, const fz_tensor *t, const int64_t *idx)
{
    const double x = fz_get_code(c, t, idx);
    return t->quant ? x * fz_get_scale(c, t, idx) : x;
}

double fz_get_before(const fz_case *c, const fz_tensor *t, const int64_t *idx)
{
    FZ_CHECK(c->snap[t->host] != NULL, "fz_get_before: no snapshot of buffer %d", t->host);
    return decode_at(t, c->snap[t->host] + t->off +
                            fz_offset(t, idx) * (int64_t)fz_dtype_size(t->dt));
}

int32_t fz_get_i32(const fz_case *c, const fz_tensor *t, const int64_t *idx)
{
    int32_t x;
    memcpy(&x, fz_data(c, t) + fz_offset(t, idx) * 4, 4);
    return x;
}

void fz_put(fz_case *c, const fz_tensor *t, const int64_t *idx, double x)
{
    unsigned char *p = fz_data(c, t) + fz_offset(t, idx) * (int64_t)fz_dtype_size(t->dt);
    float f = (float)x;
    uint16_t h;
    int32_t i;
    switch (t->dt) {
    case RA_DTYPE_F32:
        memcpy(p, &f, 4);
        break;
    case RA_DTYPE_F16:
        h = fz_f32_to_f16(f);
        memcpy(p, &h, 2);
        break;
    case RA_DTYPE_BF16:
        h = fz_f32_to_bf16(f);
        memcpy(p, &h, 2);
        break;
    case RA_DTYPE_I8:
    case RA_DTYPE_FP8_E4M3:
    case RA_DTYPE_FP8_E5M2:
        *p = fz_code_of(t->dt, x);
        break;
    default: /* a float value put into an i32 tensor: out-of-range and non-finite become 0 */
        i = (isfinite(x) && fabs(x) < 2147483647.0) ? (int32_t)x : 0;
        memcpy(p, &i, 4);
        break;
    }
}

void fz_put_i32(fz_case *c, const fz_tensor *t, const int64_t *idx, int32_t x)
{
    memcpy(fz_data(c, t) + fz_offset(t, idx) * 4, &x, 4);
}

void fz_snapshot(fz_case *c)
{
    for (int i = 0; i < c->n; i++) {
        if (!c->buf[i])
            continue;
        if (!c->snap[i])
            c->snap[i] = malloc(c->buf_n[i]);
        FZ_CHECK(c->snap[i] != NULL, "harness out of memory");
        memcpy(c->snap[i], c->buf[i], c->buf_n[i]);
    }
}

void fz_restore(fz_case *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->buf[i])
            memcpy(c->buf[i], c->snap[i], c->buf_n[i]);
}

void fz_check_untouched(const fz_case *c, const int *writable, int n_writable, const char *what)
{
    for (int b = 0; b < c->n; b++) {
        if (!c->buf[b])
            continue;
        unsigned char *ok = calloc(c->buf_n[b], 1);
        FZ_CHECK(ok != NULL, "harness out of memory");
        for (int w = 0; w < n_writable; w++) {
            const fz_tensor *t = &c->t[writable[w]];
            if (!t->present || t->host != b || fz_numel(t) == 0)
                continue;
            size_t es = fz_dtype_size(t->dt);
            int64_t idx[4] = {0, 0, 0, 0};
            do
                memset(ok + t->off + (size_t)fz_offset(t, idx) * es, 1, es);
            while (fz_next_index(t, idx));
        }
        for (size_t i = 0; i < c->buf_n[b]; i++)
            FZ_CHECK(ok[i] || c->buf[b][i] == c->snap[b][i],
                     "%s: byte %zu of buffer %d changed (0x%02x -> 0x%02x) outside the outputs "
                     "it may write", what, i, b, c->snap[b][i], c->buf[b][i]);
        free(ok);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sorted element offsets (in bytes from the host buffer start); caller frees. */
static int64_t *sorted_offsets(const fz_tensor *t, int64_t n)
{
    int64_t *v = malloc((size_t)n * sizeof *v);
    FZ_CHECK(v != NULL, "harness out of memory");
    int64_t idx[4] = {0, 0, 0, 0}, k = 0, es = (int64_t)fz_dtype_size(t->dt);
    do
        v[k++] = (int64_t)t->off + fz_offset(t, idx) * es;
    while (fz_next_index(t, idx));
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    return v;
}

bool fz_layout_nested(const fz_tensor *t)
{
    int64_t st[4], ext[4];
    int n = 0;
    for (int i = 0; i < t->rank; i++)
        if (t->shape[i] > 1)
            st[n] = t->st[i], ext[n++] = t->shape[i];
    for (int i = 1; i < n; i++) /* insertion sort by stride */
        for (int j = i; j > 0 && st[j] < st[j - 1]; j--) {
            int64_t a = st[j], b = ext[j];
            st[j] = st[j - 1], ext[j] = ext[j - 1];
            st[j - 1] = a, ext[j - 1] = b;
        }
    int64_t reach = 0;
    for (int i = 0; i < n; i++) {
        if (st[i] <= reach)
            return false;
        reach += (ext[i] - 1) * st[i];
    }
    return true;
}

bool fz_self_overlaps(const fz_tensor *t)
{
    int64_t n = fz_numel(t);
    if (!t->present || n <= 1)
        return false;
    int64_t *v = sorted_offsets(t, n);
    bool dup = false;
    for (int64_t i = 1; i < n && !dup; i++)
        dup = v[i] == v[i - 1];
    free(v);
    return dup;
}

void fz_overlap(const fz_case *c, const fz_tensor *a, const fz_tensor *b, bool *bytes,
                bool *spans)
{
    (void)c;
    *bytes = *spans = false;
    int64_t na = a->present ? fz_numel(a) : 0, nb = b->present ? fz_numel(b) : 0;
    if (na == 0 || nb == 0 || a->host != b->host)
        return;
    int64_t la = (int64_t)fz_dtype_size(a->dt), lb = (int64_t)fz_dtype_size(b->dt);
    int64_t a0 = (int64_t)a->off, a1 = a0 + (int64_t)fz_extent(a);
    int64_t b0 = (int64_t)b->off, b1 = b0 + (int64_t)fz_extent(b);
    *spans = a0 < b1 && b0 < a1;
    if (!*spans)
        return;
    /* Element byte ranges [x, x+la) and [y, y+lb) intersect when y in (x-lb, x+la). */
    int64_t *va = sorted_offsets(a, na), *vb = sorted_offsets(b, nb);
    int64_t j = 0;
    for (int64_t i = 0; i < na && !*bytes; i++) {
        while (j < nb && vb[j] <= va[i] - lb)
            j++;
        *bytes = j < nb && vb[j] < va[i] + la;
    }
    free(va);
    free(vb);
}

void fz_mutate(fz_in *in, fz_tensor *t, bool optional)
{
    uint8_t x = fz_u8(in);
    if (optional && x < 48) {
        t->present = false; /* a valid NULL */
        return;
    }
    if (x < 248)
        return;
    switch (x - 248) {
    case 0:
        t->present = false;
        break;
    case 1:
        t->dt = (ra_dtype)((t->dt + 1 + fz_u8(in) % 3) % 4);
        break;
    case 2: {
        int a = fz_u8(in) % t->rank;
        uint8_t y = fz_u8(in);
        t->shape[a] = (y & 1) ? 0 : t->shape[a] + 1 + y % 3;
        break;
    }
    case 3:
        if (t->rank < 4)
            t->shape[t->rank++] = 1;
        else
            t->rank--;
        break;
    case 4: {
        int a = fz_u8(in) % t->rank, b = fz_u8(in) % t->rank;
        int64_t y = t->shape[a];
        t->shape[a] = t->shape[b];
        t->shape[b] = y;
        break;
    }
    default:
        break;
    }
    fz_row_major(t, 0);
}
