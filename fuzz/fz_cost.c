/* The cost-estimate operation: ra_mha_cost_estimate on tensors with dims up to 2^62 (broadcast
 * views over a few bytes), checked against the seed's formula in 128-bit arithmetic. */
#include <stdlib.h>
#include <string.h>

#include "fz.h"

typedef unsigned __int128 u128;
#define U128_SAT ((u128)1 << 100) /* far above INT64_MAX; products saturate here */

static u128 sat_mul(u128 a, u128 b)
{
    if (a == 0 || b == 0)
        return 0;
    return a > U128_SAT / b ? U128_SAT : a * b;
}

static u128 byte_size(const fz_tensor *t)
{
    u128 n = fz_dtype_size(t->dt);
    for (int i = 0; i < t->rank; i++)
        n = sat_mul(n, (u128)t->shape[i]);
    return n;
}

/* The byte size with zero dims counted as 1: what stays within int64 keeps every partial
 * product within int64 too (empty tensors with huge dims are the tensor operation's case). */
static u128 dense_size(const fz_tensor *t)
{
    u128 n = fz_dtype_size(t->dt);
    for (int i = 0; i < t->rank; i++)
        n = sat_mul(n, (u128)(t->shape[i] ? t->shape[i] : 1));
    return n;
}

static const int64_t tab_dim[] = {1, 2, 3, 8, 64, 128, 1000, 4096, 1 << 20, 1ll << 31,
                                  1ll << 40, 3037000499ll, 1ll << 62, INT64_MAX, 0, 1, 2, 4};

enum { C_Q, C_K, C_V, C_LEN, C_N };

void fz_op_cost(fz_in *in)
{
    fz_case c;
    memset(&c, 0, sizeof c);
    c.n = C_N;
    int64_t B = FZ_PICK(in, tab_dim), H = FZ_PICK(in, tab_dim), Hkv = FZ_PICK(in, tab_dim);
    int64_t S = FZ_PICK(in, tab_dim), D = FZ_PICK(in, tab_dim);
    static const ra_dtype dts[] = {RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16, RA_DTYPE_F32};
    fz_set_shape(&c.t[C_Q], dts[fz_u8(in) % 4], 4, B, 1, H, D);
    fz_set_shape(&c.t[C_K], dts[fz_u8(in) % 4], 4, B, S, Hkv, D);
    fz_set_shape(&c.t[C_V], dts[fz_u8(in) % 4], 4, B, S, Hkv, D);
    fz_set_shape(&c.t[C_LEN], RA_DTYPE_I32, 1, B, 1, 1, 1);
    for (int i = 0; i < C_N; i++) {
        fz_tensor *t = &c.t[i];
        t->host = i;
        fz_mutate(in, t, false);
        /* Tensors whose byte size cannot be described are the tensor operation's business:
         * shrink them until they can. */
        for (int a = 0; dense_size(t) > (u128)INT64_MAX; a = (a + 1) % t->rank)
            t->shape[a] = t->shape[a] > 1 ? t->shape[a] / 1024 : t->shape[a];
        int64_t span = 1; /* elements a dense layout would need, zero dims counted as 1 */
        for (int a = 0; a < t->rank && span <= 4096; a++)
            span = t->shape[a] > 4096 ? 4097 : span * (t->shape[a] > 1 ? t->shape[a] : 1);
        if (span <= 4096) {
            fz_choose_layout(in, t, true);
        } else {
            for (int a = 0; a < t->rank; a++)
                t->st[a] = 0; /* one element stands for all */
            t->null_strides = false;
        }
    }
    fz_case_materialize(&c);

    const fz_tensor *q = &c.t[C_Q], *k = &c.t[C_K], *v = &c.t[C_V], *len = &c.t[C_LEN];
    fz_expect e = {0, 0};
    bool any_null = false;
    for (int i = 0; i < C_N; i++)
        any_null |= !c.t[i].present;
    bool want_out[3] = {fz_u8(in) % 4 != 0, fz_u8(in) % 4 != 0, fz_u8(in) % 4 != 0};
    /* A valid ragged MHA/GQA argument set, as the header describes the estimate's inputs. */
    bool structure = !any_null && q->rank == 4 && k->rank == 4 && v->rank == 4 &&
                     len->rank == 1 && q->shape[1] == 1 && memcmp(k->shape, v->shape, 32) == 0 &&
                     k->shape[0] == q->shape[0] && k->shape[3] == q->shape[3] &&
                     len->shape[0] == q->shape[0] && fz_dtype_is_float(q->dt) &&
                     fz_dtype_is_float(k->dt) && fz_dtype_is_float(v->dt) &&
                     len->dt == RA_DTYPE_I32 &&
                     (k->shape[2] == 0 ? q->shape[2] == 0 : q->shape[2] % k->shape[2] == 0);
    u128 fig[3] = {0, 0, 0};
    bool figures = !any_null && q->rank == 4 && k->rank >= 2;
    if (figures) {
        u128 Bq = (u128)q->shape[0], Hq = (u128)q->shape[2], Dq = (u128)q->shape[3];
        u128 Sk = (u128)k->shape[1];
        u128 bhs = sat_mul(sat_mul(Bq, Hq), Sk);
        fig[0] = sat_mul(bhs, 4 * Dq + Sk);
        fig[1] = bhs;
        for (int i = 0; i < C_N; i++)
            fig[2] += byte_size(&c.t[i]);
    }
    if (any_null) {
        e.must = FZ_BIT(RA_ERR_INVALID_ARGUMENT);
        e.may = FZ_BIT(RA_ERR_SHAPE) | FZ_BIT(RA_ERR_DTYPE);
    } else if (!structure) { /* the seed validates nothing here; either answer is fine */
        e.may = FZ_BIT(RA_ERR_SHAPE) | FZ_BIT(RA_ERR_DTYPE) | FZ_BIT(RA_ERR_INVALID_ARGUMENT) |
                FZ_BIT(RA_ERR_OVERFLOW);
    } else {
        if (q->shape[3] == 0 || (k->shape[2] == 0 && q->shape[2] == 0))
            e.may |= FZ_BIT(RA_ERR_SHAPE);
        for (int i = 0; i < 3; i++)
            if (fig[i] > (u128)INT64_MAX)
                (want_out[i] ? &e.must : &e.may)[0] |= FZ_BIT(RA_ERR_OVERFLOW);
    }

    const int64_t sentinel = 0x7777777777777777ll;
    int64_t out[3] = {sentinel, sentinel, sentinel};
    fz_mark_last_error();
    ra_status s = ra_mha_cost_estimate(
        q->present ? q->h : NULL, k->present ? k->h : NULL, v->present ? v->h : NULL,
        len->present ? len->h : NULL, want_out[0] ? &out[0] : NULL,
        want_out[1] ? &out[1] : NULL, want_out[2] ? &out[2] : NULL);
    fz_check_status(&e, s, "ra_mha_cost_estimate");
    if (s != RA_OK) {
        fz_check_new_error("ra_mha_cost_estimate");
        for (int i = 0; i < 3; i++)
            FZ_CHECK(out[i] == sentinel, "ra_mha_cost_estimate failed but wrote output %d", i);
    } else if (figures) {
        static const char *const names[] = {"flops", "transcendentals", "bytes_accessed"};
        for (int i = 0; i < 3; i++)
            FZ_CHECK(!want_out[i] || (fig[i] <= (u128)INT64_MAX && (u128)out[i] == fig[i]),
                     "ra_mha_cost_estimate: %s = %lld, expected %s%llu", names[i],
                     (long long)out[i], fig[i] > (u128)INT64_MAX ? "an overflow, " : "",
                     (unsigned long long)(fig[i] > (u128)INT64_MAX ? 0 : fig[i]));
    }
    fz_case_free(&c);
}
