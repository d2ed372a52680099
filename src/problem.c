/* Argument validation: binds a seed signature's tensors to the internal problem. Every check
 * runs before the caller's outputs are touched. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc_internal.h"
#include "options_internal.h"
#include "problem.h"
#include "common/size_math.h"
#include "status_internal.h"
#include "tensor_internal.h"

static const char *const role_names[RA_R_COUNT] = {"B",   "S",         "Hq",
                                                   "Hkv", "D",         "1",
                                                   "num_pages", "page_size", "max_pages", "T"};

static const char *layout_str(const ra__layout *lay, char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < lay->rank && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ",%s" : "%s", role_names[lay->role[i]]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
    return buf;
}

ra_status ra__bind_layout(const char *fn, const char *arg, const ra_tensor *t,
                          const ra__layout *lay, int64_t dims[RA_R_COUNT],
                          int64_t strides[RA_R_COUNT])
{
    char want[64], got[96];
    for (int r = 0; r < RA_R_COUNT; r++)
        strides[r] = 0;
    if (t->rank != lay->rank)
        return ra__fail(RA_ERR_SHAPE, "%s: %s has rank %d (shape %s), expected rank %d %s", fn,
                        arg, t->rank, ra__shape_str(t, got, sizeof got), lay->rank,
                        layout_str(lay, want, sizeof want));
    for (int i = 0; i < lay->rank; i++) {
        int r = lay->role[i];
        int64_t e = t->shape[i];
        if (r == RA_R_ONE) {
            if (e != 1)
                return ra__fail(RA_ERR_SHAPE, "%s: %s axis %d has extent %lld, expected 1 (%s is %s)",
                                fn, arg, i, (long long)e, arg, layout_str(lay, want, sizeof want));
            continue;
        }
        if (dims[r] >= 0 && dims[r] != e)
            return ra__fail(RA_ERR_SHAPE, "%s: %s axis %d (%s) is %lld, but %s = %lld elsewhere "
                            "(%s has shape %s, expected %s)", fn, arg, i, role_names[r],
                            (long long)e, role_names[r], (long long)dims[r], arg,
                            ra__shape_str(t, got, sizeof got), layout_str(lay, want, sizeof want));
        dims[r] = e;
        strides[r] = t->strides[i];
    }
    return RA_OK;
}

ra_status ra__check_aliasing(const char *fn, const ra_tensor *const *outs,
                             const char *const *out_names, int n_out,
                             const ra_tensor *const *ins, const char *const *in_names, int n_in)
{
    for (int i = 0; i < n_out; i++) {
        if (!outs[i])
            continue;
        if (ra__tensor_self_overlaps(outs[i]))
            return ra__fail(RA_ERR_ALIAS, "%s: output %s has overlapping elements (a zero or "
                            "too small stride)", fn, out_names[i]);
        for (int j = 0; j < i; j++)
            if (outs[j] && ra__tensors_overlap(outs[i], outs[j]))
                return ra__fail(RA_ERR_ALIAS, "%s: outputs %s and %s overlap", fn, out_names[j],
                                out_names[i]);
        for (int j = 0; j < n_in; j++)
            if (ins[j] && ra__tensors_overlap(outs[i], ins[j]))
                return ra__fail(RA_ERR_ALIAS, "%s: output %s overlaps input %s", fn,
                                out_names[i], in_names[j]);
    }
    return RA_OK;
}

static bool is_float_dtype(ra_dtype dt)
{
    return dt == RA_DTYPE_F32 || dt == RA_DTYPE_F16 || dt == RA_DTYPE_BF16;
}

/* Copies lengths (checked against the capacity S) into len, which holds B entries. */
static ra_status copy_lengths(const char *fn, const ra_tensor *lengths, int64_t B, int64_t S,
                              bool paged, int32_t *len)
{
    const int32_t *from = lengths->data;
    for (int64_t b = 0; b < B; b++) {
        /* one read of each element, which every later use takes from the copy */
        int32_t n = __atomic_load_n(&from[b * lengths->strides[0]], __ATOMIC_RELAXED);
        if (n < 0 || n > S)
            return ra__fail(RA_ERR_LENGTH, "%s: lengths[%lld] = %d is outside [0, %s = %lld]",
                            fn, (long long)b, (int)n, paged ? "max_pages * page_size" : "S",
                            (long long)S);
        len[b] = n;
    }
    return RA_OK;
}

/* Copies q_lens into qlen, each checked against T and the sequence's length. */
static ra_status copy_q_lens(const char *fn, const ra_tensor *q_lens, int64_t B, int64_t T,
                             const int32_t *len, int32_t *qlen)
{
    const int32_t *from = q_lens->data;
    for (int64_t b = 0; b < B; b++) {
        int32_t n = __atomic_load_n(&from[b * q_lens->strides[0]], __ATOMIC_RELAXED);
        if (n < 0 || n > T || n > len[b])
            return ra__fail(RA_ERR_LENGTH, "%s: q_lens[%lld] = %d is outside [0, min(T = %lld, "
                            "lengths[%lld] = %d)] (the new tokens are the last q_lens[b] "
                            "positions of the cache)", fn, (long long)b, (int)n, (long long)T,
                            (long long)b, (int)len[b]);
        qlen[b] = n;
    }
    return RA_OK;
}

/* Copies the page-table slots that hold valid positions, after checking each page index
 * against the pool; slots past a sequence's last page are never read. */
static ra_status copy_pages(const char *fn, const ra_tensor *table, const int32_t *len,
                            int64_t B, int64_t page_size, int64_t num_pages, ra__problem *p)
{
    int64_t total = 0;
    for (int64_t b = 0; b < B; b++)
        total += (len[b] + page_size - 1) / page_size; /* each < 2^31: no overflow */
    ra__arena a = {0, false};
    size_t at_offsets = ra__arena_take(&a, B + 1, 1, 1, sizeof(int64_t));
    size_t at_pages = ra__arena_take(&a, total, 1, 1, sizeof(int32_t));
    if (a.overflow)
        return ra__fail(RA_ERR_OVERFLOW, "%s: the page table copy overflows", fn);
    char *block = ra__alloc(a.used);
    if (!block)
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "%s: cannot allocate a copy of %lld page-table "
                        "entries", fn, (long long)total);
    int64_t *page_at = (int64_t *)(block + at_offsets);
    int32_t *pages = (int32_t *)(block + at_pages);
    const int32_t *from = table->data;
    int64_t k = 0;
    for (int64_t b = 0; b < B; b++) {
        page_at[b] = k;
        const int64_t n = (len[b] + page_size - 1) / page_size;
        for (int64_t i = 0; i < n; i++, k++) {
            int32_t pg = __atomic_load_n(&from[b * table->strides[0] + i * table->strides[1]],
                                         __ATOMIC_RELAXED);
            if (pg < 0 || pg >= num_pages) {
                ra__free(block);
                return ra__fail(RA_ERR_LENGTH, "%s: page_table[%lld][%lld] = %d is outside "
                                "[0, num_pages = %lld) (sequence %lld has %d positions, in %lld "
                                "pages of %lld)", fn, (long long)b, (long long)i, (int)pg,
                                (long long)num_pages, (long long)b, (int)len[b], (long long)n,
                                (long long)page_size);
            }
            pages[k] = pg;
        }
    }
    page_at[B] = k;
    p->pages = pages;
    p->page_at = page_at;
    p->page_size = page_size;
    p->pages_block = block;
    return RA_OK;
}

ra_status ra__bind(const ra__signature *sig, const ra_options *opts, const ra_tensor *q,
                   const ra_tensor *k, const ra_tensor *v, const ra_tensor *page_table,
                   const ra_tensor *lengths, const ra_tensor *q_lens, ra_tensor *o,
                   ra_tensor *m, ra_tensor *l, ra__problem *p)
{
    const char *fn = sig->name;
    const ra_tensor *req[] = {q, k, v, lengths, o, sig->paged ? page_table : o,
                              sig->multi ? q_lens : o};
    const char *req_names[] = {"q", sig->paged ? "k_pages" : "k", sig->paged ? "v_pages" : "v",
                               "lengths", "o", "page_table", "q_lens"};
    for (int i = 0; i < 7; i++)
        if (!req[i])
            return ra__fail(RA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, req_names[i]);

    const ra_tensor *fin[] = {q, k, v};
    for (int i = 0; i < 3; i++) {
        const bool quantized = i > 0 && ra__dtype_quantized(fin[i]->dtype);
        if (!is_float_dtype(fin[i]->dtype) && !quantized)
            return ra__fail(RA_ERR_DTYPE, "%s: %s has dtype %s, expected f32, f16 or bf16%s", fn,
                            req_names[i], ra__dtype_name(fin[i]->dtype),
                            i > 0 ? ", or i8/fp8 with scales" : "");
        if (quantized && !fin[i]->scale)
            return ra__fail(RA_ERR_INVALID_ARGUMENT, "%s: %s has dtype %s but no scale: wrap it "
                            "with ra_tensor_wrap_quantized", fn, req_names[i],
                            ra__dtype_name(fin[i]->dtype));
    }
    const ra_tensor *ints[] = {lengths, sig->paged ? page_table : NULL,
                               sig->multi ? q_lens : NULL};
    const char *int_names[] = {"lengths", "page_table", "q_lens"};
    for (int i = 0; i < 3; i++)
        if (ints[i] && ints[i]->dtype != RA_DTYPE_I32)
            return ra__fail(RA_ERR_DTYPE, "%s: %s has dtype %s, expected i32", fn,
                            int_names[i], ra__dtype_name(ints[i]->dtype));
    const ra_tensor *outs[] = {o, m, l};
    const char *out_names[] = {"o", "m", "l"};
    for (int i = 0; i < 3; i++)
        if (outs[i] && outs[i]->dtype != RA_DTYPE_F32)
            return ra__fail(RA_ERR_DTYPE, "%s: %s has dtype %s, expected f32", fn, out_names[i],
                            ra__dtype_name(outs[i]->dtype));

    int64_t dims[RA_R_COUNT];
    for (int r = 0; r < RA_R_COUNT; r++)
        dims[r] = -1;
    int64_t sq[RA_R_COUNT] = {0}, sk[RA_R_COUNT] = {0}, sv[RA_R_COUNT] = {0},
            so[RA_R_COUNT] = {0}, sm[RA_R_COUNT] = {0}, sl[RA_R_COUNT] = {0},
            slen[RA_R_COUNT] = {0}, spt[RA_R_COUNT] = {0}, sql[RA_R_COUNT] = {0};
    ra_status s;
    static const ra__layout len_layout = {1, {RA_R_B}};
    static const ra__layout table_layout = {2, {RA_R_B, RA_R_MP}};
    if ((s = ra__bind_layout(fn, "q", q, &sig->q, dims, sq)) ||
        (s = ra__bind_layout(fn, req_names[1], k, &sig->kv, dims, sk)) ||
        (s = ra__bind_layout(fn, req_names[2], v, &sig->kv, dims, sv)) ||
        (sig->paged &&
         (s = ra__bind_layout(fn, "page_table", page_table, &table_layout, dims, spt))) ||
        (s = ra__bind_layout(fn, "lengths", lengths, &len_layout, dims, slen)) ||
        (sig->multi && (s = ra__bind_layout(fn, "q_lens", q_lens, &len_layout, dims, sql))) ||
        (s = ra__bind_layout(fn, "o", o, &sig->o, dims, so)) ||
        (m && (s = ra__bind_layout(fn, "m", m, &sig->ml, dims, sm))) ||
        (l && (s = ra__bind_layout(fn, "l", l, &sig->ml, dims, sl))))
        return s;

    int64_t B = dims[RA_R_B], S = dims[RA_R_S], Hq = dims[RA_R_HQ], D = dims[RA_R_D];
    int64_t Hkv = dims[RA_R_HKV] >= 0 ? dims[RA_R_HKV] : 1; /* MQA layouts have no Hkv axis */
    if (D == 0)
        return ra__fail(RA_ERR_SHAPE, "%s: head dimension D is 0", fn);
    if (sig->mha && Hq != Hkv)
        return ra__fail(RA_ERR_SHAPE, "%s: MHA needs as many query as KV heads, got Hq = %lld, "
                        "Hkv = %lld", fn, (long long)Hq, (long long)Hkv);
    if (Hq > 0 && (Hkv == 0 || Hq % Hkv != 0))
        return ra__fail(RA_ERR_SHAPE, "%s: Hq = %lld is not a multiple of Hkv = %lld", fn,
                        (long long)Hq, (long long)Hkv);
    if (sig->paged) {
        if (dims[RA_R_PS] == 0)
            return ra__fail(RA_ERR_SHAPE, "%s: page_size (axis 1 of k_pages) is 0", fn);
        /* the capacity of a page-table row; lengths fit in int32 anyway */
        if (__builtin_mul_overflow(dims[RA_R_MP], dims[RA_R_PS], &S) || S > INT32_MAX)
            S = INT32_MAX;
    }

    const struct ra_options *op = ra__options_or_default(opts);
    const int64_t *per_head[] = {&op->n_sinks, &op->n_alibi};
    const char *per_head_names[] = {"sinks", "ALiBi slopes"};
    for (int i = 0; i < 2; i++)
        if (*per_head[i] && *per_head[i] != Hq)
            return ra__fail(RA_ERR_SHAPE, "%s: the options' %s have %lld entries, but Hq = %lld",
                            fn, per_head_names[i], (long long)*per_head[i], (long long)Hq);

    const int64_t T = sig->multi ? dims[RA_R_T] : 1;
    /* A window and ALiBi measure distances from the one query position of a decode call. */
    if (T > 1 && (op->window || op->alibi))
        return ra__fail(RA_ERR_UNSUPPORTED, "%s: a window and ALiBi slopes need one query "
                        "position per sequence (T = 1), got T = %lld", fn, (long long)T);

    const ra_tensor *ins[] = {q, k, v, lengths, sig->paged ? page_table : NULL,
                              sig->multi ? q_lens : NULL};
    const char *in_names[] = {"q", req_names[1], req_names[2], "lengths", "page_table", "q_lens"};
    if ((s = ra__check_aliasing(fn, outs, out_names, 3, ins, in_names, 6)))
        return s;
    for (int i = 0; i < 3; i++) /* and the scales of quantized K/V */
        for (int j = 1; j < 3 && outs[i]; j++)
            if (fin[j]->scale && outs[i]->span_lo < fin[j]->scale_hi &&
                fin[j]->scale_lo < outs[i]->span_hi)
                return ra__fail(RA_ERR_ALIAS, "%s: output %s overlaps the scales of %s", fn,
                                out_names[i], req_names[j]);

    *p = (ra__problem){
        .B = B, .S = S, .Hq = Hq, .Hkv = Hkv, .G = Hkv ? Hq / Hkv : 0, .D = D,
        .q = {q->data, q->dtype, sq[RA_R_B], sq[RA_R_T], sq[RA_R_HQ], sq[RA_R_D], 0, NULL, 0, 0,
              0, 0},
        .T = T,
        .k = {k->data, k->dtype, sk[RA_R_B], sk[RA_R_S] + sk[RA_R_PS], sk[RA_R_HKV], sk[RA_R_D],
              sk[RA_R_NP], NULL, 0, 0, 0, 0}, /* scales below */
        .v = {v->data, v->dtype, sv[RA_R_B], sv[RA_R_S] + sv[RA_R_PS], sv[RA_R_HKV], sv[RA_R_D],
              sv[RA_R_NP], NULL, 0, 0, 0, 0},
        .o = o->data, .o_sb = so[RA_R_B], .o_sh = so[RA_R_HQ], .o_sd = so[RA_R_D],
        .o_st = so[RA_R_T],
        .m = m ? m->data : NULL, .m_sb = sm[RA_R_B], .m_sh = sm[RA_R_HQ], .m_st = sm[RA_R_T],
        .l = l ? l->data : NULL, .l_sb = sl[RA_R_B], .l_sh = sl[RA_R_HQ], .l_st = sl[RA_R_T],
        .normalize = sig->normalize,
        .scale = op->scale, .mask_value = op->mask_value,
        .softcap = op->softcap, .window = op->window, .sink_positions = op->sink_positions,
        .sinks = op->sinks, .alibi = op->alibi,
        .block_size = op->block_size, .split_tokens = op->split_tokens,
        .num_threads = op->num_threads, .kernel = op->kernel,
    };
    ra__operand *kv_ops[2] = {&p->k, &p->v};
    for (int i = 0; i < 2; i++) { /* the scales' strides per role, as the data's */
        const ra_tensor *t = fin[i + 1];
        if (!t->scale)
            continue;
        int64_t c[RA_R_COUNT] = {0};
        for (int a = 0; a < sig->kv.rank; a++)
            c[sig->kv.role[a]] = t->scale_strides[a];
        kv_ops[i]->scale = t->scale;
        kv_ops[i]->c_sb = c[RA_R_B];
        kv_ops[i]->c_st = c[RA_R_S] + c[RA_R_PS];
        kv_ops[i]->c_sh = c[RA_R_HKV];
        kv_ops[i]->c_sp = c[RA_R_NP];
    }
    /* lengths, then (multi-token calls) q_lens */
    const uint64_t n_len = (uint64_t)B * (sig->multi ? 2 : 1);
    int32_t *len = p->len_inline;
    if (n_len > sizeof p->len_inline / sizeof p->len_inline[0] &&
        !(len = ra__alloc(sizeof(int32_t) * (size_t)n_len)))
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "%s: cannot allocate a copy of %lld lengths", fn,
                        (long long)B);
    p->len = len;
    p->qlen = sig->multi ? len + B : NULL;
    if ((s = copy_lengths(fn, lengths, B, S, sig->paged, len)) ||
        (sig->multi && (s = copy_q_lens(fn, q_lens, B, T, len, len + B))) ||
        (sig->paged &&
         (s = copy_pages(fn, page_table, len, B, dims[RA_R_PS], dims[RA_R_NP], p)))) {
        ra__problem_release(p);
        return s;
    }
    return RA_OK;
}

ra_status ra__bind_and_run(const ra__signature *sig, ra_status (*engine)(const ra__problem *),
                           const ra_options *opts, const ra_tensor *q, const ra_tensor *k,
                           const ra_tensor *v, const ra_tensor *page_table,
                           const ra_tensor *lengths, const ra_tensor *q_lens, ra_tensor *o,
                           ra_tensor *m, ra_tensor *l)
{
    ra__problem p;
    ra_status s = ra__bind(sig, opts, q, k, v, page_table, lengths, q_lens, o, m, l, &p);
    if (s != RA_OK)
        return s;
    s = engine(&p);
    ra__problem_release(&p);
    return s;
}

void ra__problem_release(ra__problem *p)
{
    if (p->len != p->len_inline)
        ra__free((void *)p->len);
    ra__free(p->pages_block);
    p->pages_block = NULL;
}
