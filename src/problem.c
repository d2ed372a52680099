/* Argument validation: binds a seed signature's tensors to the internal problem. Every check
 * runs before the caller's outputs are touched. */
#include <stdio.h>
#include <string.h>

#include "alloc_internal.h"
#include "options_internal.h"
#include "problem.h"
#include "status_internal.h"
#include "tensor_internal.h"

static const char *const role_names[RA_R_COUNT] = {"B", "S", "Hq", "Hkv", "D", "1"};

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

ra_status ra__bind(const ra__signature *sig, const ra_options *opts, const ra_tensor *q,
                   const ra_tensor *k, const ra_tensor *v, const ra_tensor *lengths,
                   ra_tensor *o, ra_tensor *m, ra_tensor *l, ra__problem *p)
{
    const char *fn = sig->name;
    const ra_tensor *req[] = {q, k, v, lengths, o};
    const char *req_names[] = {"q", "k", "v", "lengths", "o"};
    for (int i = 0; i < 5; i++)
        if (!req[i])
            return ra__fail(RA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, req_names[i]);

    const ra_tensor *fin[] = {q, k, v};
    for (int i = 0; i < 3; i++)
        if (!is_float_dtype(fin[i]->dtype))
            return ra__fail(RA_ERR_DTYPE, "%s: %s has dtype %s, expected f32, f16 or bf16", fn,
                            req_names[i], ra__dtype_name(fin[i]->dtype));
    if (lengths->dtype != RA_DTYPE_I32)
        return ra__fail(RA_ERR_DTYPE, "%s: lengths has dtype %s, expected i32", fn,
                        ra__dtype_name(lengths->dtype));
    const ra_tensor *outs[] = {o, m, l};
    const char *out_names[] = {"o", "m", "l"};
    for (int i = 0; i < 3; i++)
        if (outs[i] && outs[i]->dtype != RA_DTYPE_F32)
            return ra__fail(RA_ERR_DTYPE, "%s: %s has dtype %s, expected f32", fn, out_names[i],
                            ra__dtype_name(outs[i]->dtype));

    int64_t dims[RA_R_COUNT] = {-1, -1, -1, -1, -1, -1};
    int64_t sq[RA_R_COUNT] = {0}, sk[RA_R_COUNT] = {0}, sv[RA_R_COUNT] = {0},
            so[RA_R_COUNT] = {0}, sm[RA_R_COUNT] = {0}, sl[RA_R_COUNT] = {0},
            slen[RA_R_COUNT] = {0};
    ra_status s;
    if ((s = ra__bind_layout(fn, "q", q, &sig->q, dims, sq)) ||
        (s = ra__bind_layout(fn, "k", k, &sig->kv, dims, sk)) ||
        (s = ra__bind_layout(fn, "v", v, &sig->kv, dims, sv)))
        return s;
    static const ra__layout len_layout = {1, {RA_R_B}};
    if ((s = ra__bind_layout(fn, "lengths", lengths, &len_layout, dims, slen)) ||
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

    const ra_tensor *ins[] = {q, k, v, lengths};
    const char *in_names[] = {"q", "k", "v", "lengths"};
    if ((s = ra__check_aliasing(fn, outs, out_names, 3, ins, in_names, 4)))
        return s;

    int32_t inline_copy[sizeof p->len_inline / sizeof p->len_inline[0]];
    int32_t *len = inline_copy;
    const size_t inline_n = sizeof inline_copy / sizeof inline_copy[0];
    if ((uint64_t)B > inline_n && !(len = ra__alloc(sizeof(int32_t) * (size_t)B)))
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "%s: cannot allocate a copy of %lld lengths", fn,
                        (long long)B);
    const int32_t *from = lengths->data;
    for (int64_t b = 0; b < B; b++) {
        /* one read of each element, which every later use takes from the copy */
        int32_t n = __atomic_load_n(&from[b * lengths->strides[0]], __ATOMIC_RELAXED);
        if (n < 0 || n > S) {
            if (len != inline_copy)
                ra__free(len);
            return ra__fail(RA_ERR_LENGTH, "%s: lengths[%lld] = %d is outside [0, S = %lld]", fn,
                            (long long)b, (int)n, (long long)S);
        }
        len[b] = n;
    }

    const struct ra_options *op = ra__options_or_default(opts);
    *p = (ra__problem){
        .B = B, .S = S, .Hq = Hq, .Hkv = Hkv, .G = Hkv ? Hq / Hkv : 0, .D = D,
        .q = {q->data, q->dtype, sq[RA_R_B], 0, sq[RA_R_HQ], sq[RA_R_D]},
        .k = {k->data, k->dtype, sk[RA_R_B], sk[RA_R_S], sk[RA_R_HKV], sk[RA_R_D]},
        .v = {v->data, v->dtype, sv[RA_R_B], sv[RA_R_S], sv[RA_R_HKV], sv[RA_R_D]},
        .o = o->data, .o_sb = so[RA_R_B], .o_sh = so[RA_R_HQ], .o_sd = so[RA_R_D],
        .m = m ? m->data : NULL, .m_sb = sm[RA_R_B], .m_sh = sm[RA_R_HQ],
        .l = l ? l->data : NULL, .l_sb = sl[RA_R_B], .l_sh = sl[RA_R_HQ],
        .normalize = sig->normalize,
        .scale = op->scale, .mask_value = op->mask_value,
        .block_size = op->block_size, .split_tokens = op->split_tokens,
        .num_threads = op->num_threads, .kernel = op->kernel,
    };
    if (len == inline_copy) {
        memcpy(p->len_inline, inline_copy, sizeof(int32_t) * (size_t)B);
        p->len = p->len_inline;
    } else {
        p->len = len;
    }
    return RA_OK;
}

void ra__problem_release(ra__problem *p)
{
    if (p->len != p->len_inline)
        ra__free((void *)p->len);
}
