/* ra_merge: partial states from ra_ragged_gqa over separate caches, merged, equal attention
 * over all their valid keys (the oracle on the concatenation); staged (tree) merges; empty
 * parts; chaining through m_out/l_out; a single part without m; merging in place (an output
 * that is the same view as an input of its role); validation.
 *
 * Tolerances: 1e-5 of max|expected| against the attention oracle (as for the ragged functions;
 * the merge adds a few f32 operations per element). Against the merge oracle applied to the
 * library's own partial states, only the merge's operations remain: 1e-6. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"

enum { NB = 4, HQ = 8, HKV = 2, HD = 64, NPARTS = 4 };

/* Four caches of one batch. b = 3 is empty everywhere; cache 1 is empty at b = 1, cache 0 at
 * b = 2: zero-length parts inside non-empty merges. */
static const int64_t part_S[NPARTS] = {40, 24, 16, 9};
static const int32_t part_len[NPARTS][NB] = {
    {40, 17, 0, 0}, {5, 0, 24, 0}, {16, 3, 0, 0}, {9, 0, 1, 0}};

typedef struct merge_fixture {
    tc_case part[NPARTS];
} merge_fixture;

static int setup(void **state)
{
    merge_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    for (int i = 0; i < NPARTS; i++) {
        tc_params p = {.fn = TC_RAGGED_GQA, .B = NB, .Hq = HQ, .Hkv = HKV, .S = part_S[i],
                       .D = HD, .lengths = part_len[i], .seed = 4000 + (uint64_t)i,
                       /* one part's partial state lives in padded (strided) tensors */
                       .layout = i == 1 ? TC_LAYOUT_PADDED : TC_LAYOUT_NATIVE};
        tc_init(&f->part[i], &p);
        if (i > 0) { /* every cache is attended by the same query */
            for (int64_t b = 0; b < NB; b++)
                for (int64_t h = 0; h < HQ; h++)
                    for (int64_t x = 0; x < HD; x++)
                        tc_set_q(&f->part[i], b, h, x, or_view_get(&f->part[0].qv, b, h, x, 0));
            tc_expect(&f->part[i]);
        }
        assert_int_equal(tc_run(&f->part[i], NULL), RA_OK);
        tc_check(&f->part[i], 1e-5, NULL);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    merge_fixture *f = *state;
    for (int i = 0; i < NPARTS; i++)
        tc_free(&f->part[i]);
    free(f);
    or_stat_print("ra_merge");
    return 0;
}

/* The oracle over the concatenation of the valid keys of parts idx[0..n). */
static void concat_oracle(merge_fixture *f, const int *idx, int n, or_state *out)
{
    int64_t S = 0;
    for (int i = 0; i < n; i++)
        S += part_S[idx[i]];
    int64_t sh[4] = {NB, S, HKV, HD};
    or_buf k, v;
    or_buf_init(&k, RA_DTYPE_F32, 4, sh, NULL);
    or_buf_init(&v, RA_DTYPE_F32, 4, sh, NULL);
    int32_t lens[NB];
    for (int64_t b = 0; b < NB; b++) {
        int64_t t_out = 0;
        for (int i = 0; i < n; i++) {
            const tc_case *c = &f->part[idx[i]];
            for (int64_t t = 0; t < c->lengths[b]; t++, t_out++)
                for (int64_t j = 0; j < HKV; j++)
                    for (int64_t x = 0; x < HD; x++) {
                        int64_t at[4] = {b, t_out, j, x};
                        or_buf_set(&k, at, or_view_get(&c->kv, b, t, j, x));
                        or_buf_set(&v, at, or_view_get(&c->vv, b, t, j, x));
                    }
        }
        lens[b] = (int32_t)t_out;
    }
    or_dims d = {NB, HQ, HKV, S, HD};
    or_view kv = or_view_of(&k, 0, 1, 2, 3), vv = or_view_of(&v, 0, 1, 2, 3);
    or_attention(&d, &f->part[0].qv, &kv, &vv, lens, 1.0, out);
    or_buf_free(&k);
    or_buf_free(&v);
}

typedef struct merged {
    or_buf o, m, l;
    float o_got[NB * HQ * HD], m_got[NB * HQ], l_got[NB * HQ];
} merged;

static void merged_init(merged *r)
{
    int64_t osh[4] = {NB, 1, HQ, HD}, msh[4] = {NB, 1, HQ, 1};
    or_buf_init(&r->o, RA_DTYPE_F32, 4, osh, NULL);
    or_buf_init(&r->m, RA_DTYPE_F32, 4, msh, NULL);
    or_buf_init(&r->l, RA_DTYPE_F32, 4, msh, NULL);
}

static void merged_free(merged *r)
{
    or_buf_free(&r->o);
    or_buf_free(&r->m);
    or_buf_free(&r->l);
}

static ra_status merge_tensors(size_t n, const ra_tensor *const *o, const ra_tensor *const *m,
                               const ra_tensor *const *l, merged *r)
{
    or_buf_fill_bytes(&r->o, 0xFF);
    or_buf_fill_bytes(&r->m, 0xFF);
    or_buf_fill_bytes(&r->l, 0xFF);
    ra_status s = ra_merge(n, o, m, l, r->o.t, r->m.t, r->l.t);
    or_buf_gather_f32(&r->o, r->o_got);
    or_buf_gather_f32(&r->m, r->m_got);
    or_buf_gather_f32(&r->l, r->l_got);
    return s;
}

static void merge_parts(merge_fixture *f, const int *idx, int n, merged *r)
{
    const ra_tensor *o[NPARTS], *m[NPARTS], *l[NPARTS];
    for (int i = 0; i < n; i++) {
        o[i] = f->part[idx[i]].o.t;
        m[i] = f->part[idx[i]].m.t;
        l[i] = f->part[idx[i]].l.t;
    }
    ra_status s = merge_tensors((size_t)n, o, m, l, r);
    if (s != RA_OK)
        fail_msg("ra_merge: %s (%s)", ra_status_string(s), ra_last_error());
}

static void check_against(const merged *r, const or_state *want, double tol, const char *key)
{
    or_err eo = or_compare(r->o_got, want->o, NB * HQ * HD);
    or_err em = or_compare(r->m_got, want->m, NB * HQ);
    or_err el = or_compare(r->l_got, want->l, NB * HQ);
    if (eo.nonfinite || em.nonfinite || el.nonfinite || eo.rel > tol || em.rel > tol ||
        el.rel > tol)
        fail_msg("%s: o %.3e, m %.3e, l %.3e (non-finite mismatches %lld/%lld/%lld; tol %.0e)",
                 key, eo.rel, em.rel, el.rel, (long long)eo.nonfinite, (long long)em.nonfinite,
                 (long long)el.nonfinite, tol);
    or_stat_note(key, eo.rel);
    /* An all-empty row is exactly the empty state. */
    for (int64_t bh = 0; bh < NB * HQ; bh++) {
        if (want->l[bh] != 0.0)
            continue;
        assert_true(r->m_got[bh] == -INFINITY);
        assert_true(r->l_got[bh] == 0.0f);
        for (int64_t x = 0; x < HD; x++)
            assert_true(r->o_got[bh * HD + x] == 0.0f);
    }
}

/* The library's partial states as oracle states (for the merge oracle). */
static void part_state(const tc_case *c, or_state *s)
{
    or_state_alloc(s, NB, HQ, HD);
    for (int64_t i = 0; i < NB * HQ; i++) {
        s->m[i] = c->got_m[i];
        s->l[i] = c->got_l[i];
    }
    for (int64_t i = 0; i < NB * HQ * HD; i++)
        s->o_un[i] = c->got_o[i];
}

static void test_prefill_plus_autoregressive(void **state)
{
    merge_fixture *f = *state;
    const int idx[2] = {0, 1};
    merged r;
    merged_init(&r);
    merge_parts(f, idx, 2, &r);
    or_state want;
    or_state_alloc(&want, NB, HQ, HD);
    concat_oracle(f, idx, 2, &want);
    check_against(&r, &want, 1e-5, "2 caches vs attention over both");

    or_state parts[2], lse;
    part_state(&f->part[0], &parts[0]);
    part_state(&f->part[1], &parts[1]);
    or_state_alloc(&lse, NB, HQ, HD);
    or_merge(2, parts, &lse);
    check_against(&r, &lse, 1e-6, "2 caches vs the merge oracle");
    or_state_free(&parts[0]);
    or_state_free(&parts[1]);
    or_state_free(&lse);
    or_state_free(&want);
    merged_free(&r);
}

static void test_four_parts_flat_and_tree(void **state)
{
    merge_fixture *f = *state;
    const int all[4] = {0, 1, 2, 3};
    or_state want;
    or_state_alloc(&want, NB, HQ, HD);
    concat_oracle(f, all, 4, &want);

    merged flat;
    merged_init(&flat);
    merge_parts(f, all, 4, &flat);
    check_against(&flat, &want, 1e-5, "4 caches, flat merge");

    /* (0,1) and (2,3) first; their (o*L, M, L) are partial states again. */
    merged half[2];
    or_buf o_un[2];
    for (int i = 0; i < 2; i++) {
        merged_init(&half[i]);
        const int idx[2] = {2 * i, 2 * i + 1};
        merge_parts(f, idx, 2, &half[i]);
        int64_t osh[4] = {NB, 1, HQ, HD};
        or_buf_init(&o_un[i], RA_DTYPE_F32, 4, osh, NULL);
        for (int64_t bh = 0; bh < NB * HQ; bh++)
            for (int64_t x = 0; x < HD; x++) {
                int64_t at[4] = {bh / HQ, 0, bh % HQ, x};
                or_buf_set(&o_un[i], at, half[i].o_got[bh * HD + x] * half[i].l_got[bh]);
            }
    }
    const ra_tensor *o[2] = {o_un[0].t, o_un[1].t}, *m[2] = {half[0].m.t, half[1].m.t},
                    *l[2] = {half[0].l.t, half[1].l.t};
    merged tree;
    merged_init(&tree);
    assert_int_equal(merge_tensors(2, o, m, l, &tree), RA_OK);
    check_against(&tree, &want, 1e-5, "4 caches, tree merge");
    or_err e = or_compare_f32(tree.o_got, flat.o_got, NB * HQ * HD);
    assert_true(e.nonfinite == 0 && e.rel <= 1e-5);
    or_stat_note("tree vs flat", e.rel);

    /* Parts are combined in index order: the same call twice is bitwise the same. */
    merged again;
    merged_init(&again);
    merge_parts(f, all, 4, &again);
    assert_memory_equal(again.o.data, flat.o.data, flat.o.bytes);
    assert_memory_equal(again.m.data, flat.m.data, flat.m.bytes);
    assert_memory_equal(again.l.data, flat.l.data, flat.l.bytes);

    merged_free(&again);
    merged_free(&tree);
    for (int i = 0; i < 2; i++) {
        merged_free(&half[i]);
        or_buf_free(&o_un[i]);
    }
    merged_free(&flat);
    or_state_free(&want);
}

/* n = 1 normalizes; a state merged with itself keeps m and doubles l. */
static void test_single_and_self(void **state)
{
    merge_fixture *f = *state;
    const tc_case *c = &f->part[0];
    or_state one, want;
    part_state(c, &one);
    or_state_alloc(&want, NB, HQ, HD);
    or_merge(1, &one, &want);
    merged r;
    merged_init(&r);
    const ra_tensor *o[2] = {c->o.t, c->o.t}, *m[2] = {c->m.t, c->m.t}, *l[2] = {c->l.t, c->l.t};
    assert_int_equal(merge_tensors(1, o, m, l, &r), RA_OK);
    check_against(&r, &want, 1e-6, "n = 1");
    assert_int_equal(merge_tensors(2, o, m, l, &r), RA_OK);
    for (int64_t i = 0; i < NB * HQ; i++)
        want.l[i] *= 2.0;
    check_against(&r, &want, 1e-6, "a state with itself");
    merged_free(&r);
    or_state_free(&one);
    or_state_free(&want);
}

/* Synthetic states with m far from 0: exp(m) would overflow or underflow without the max. */
static void test_extreme_m(void **state)
{
    (void)state;
    const double ms[3][3] = {{1000.0, 990.0, -INFINITY},
                             {-1000.0, -1005.0, -998.0},
                             {-INFINITY, -INFINITY, -INFINITY}};
    const double ls[3][3] = {{2.0, 3.0, 0.0}, {1.5, 4.0, 1.0}, {0.0, 0.0, 0.0}};
    or_rng r = or_rng_seed(4100);
    for (int k = 0; k < 3; k++) {
        or_state parts[3], want;
        or_buf ob[3], mb[3], lb[3];
        int64_t osh[4] = {NB, 1, HQ, HD}, msh[4] = {NB, 1, HQ, 1};
        for (int i = 0; i < 3; i++) {
            or_state_alloc(&parts[i], NB, HQ, HD);
            or_buf_init(&ob[i], RA_DTYPE_F32, 4, osh, NULL);
            or_buf_init(&mb[i], RA_DTYPE_F32, 4, msh, NULL);
            or_buf_init(&lb[i], RA_DTYPE_F32, 4, msh, NULL);
            for (int64_t bh = 0; bh < NB * HQ; bh++) {
                int64_t at[4] = {bh / HQ, 0, bh % HQ, 0};
                parts[i].m[bh] = ms[k][i];
                parts[i].l[bh] = ls[k][i];
                or_buf_set(&mb[i], at, ms[k][i]);
                or_buf_set(&lb[i], at, ls[k][i]);
                for (int64_t x = 0; x < HD; x++) {
                    at[3] = x;
                    /* an empty part holds o = 0, as the ragged functions return it */
                    double val = ls[k][i] > 0 ? (float)or_rng_uniform(&r, -2, 2) : 0.0;
                    parts[i].o_un[bh * HD + x] = val;
                    or_buf_set(&ob[i], at, val);
                }
            }
        }
        or_state_alloc(&want, NB, HQ, HD);
        or_merge(3, parts, &want);
        const ra_tensor *o[3] = {ob[0].t, ob[1].t, ob[2].t}, *m[3] = {mb[0].t, mb[1].t, mb[2].t},
                        *l[3] = {lb[0].t, lb[1].t, lb[2].t};
        merged res;
        merged_init(&res);
        assert_int_equal(merge_tensors(3, o, m, l, &res), RA_OK);
        check_against(&res, &want, 1e-6, "synthetic states, |m| ~ 1e3");
        /* m_out and l_out may be NULL. */
        or_buf_fill_bytes(&res.o, 0xFF);
        assert_int_equal(ra_merge(3, o, m, l, res.o.t, NULL, NULL), RA_OK);
        float o2[NB * HQ * HD];
        or_buf_gather_f32(&res.o, o2);
        assert_memory_equal(o2, res.o_got, sizeof o2);
        merged_free(&res);
        or_state_free(&want);
        for (int i = 0; i < 3; i++) {
            or_state_free(&parts[i]);
            or_buf_free(&ob[i]);
            or_buf_free(&mb[i]);
            or_buf_free(&lb[i]);
        }
    }
}

/* The test's own normalization of one part in double: o / l, and 0 where l = 0. */
static void normalize_oracle(const tc_case *c, double *want_o)
{
    for (int64_t bh = 0; bh < NB * HQ; bh++)
        for (int64_t x = 0; x < HD; x++)
            want_o[bh * HD + x] =
                c->got_l[bh] != 0.0f ? (double)c->got_o[bh * HD + x] / c->got_l[bh] : 0.0;
}

/* Copies a part's (o, m, l) into fresh tensors padded by `pad` elements per axis, so that an
 * in-place merge can overwrite them. */
static void copy_state(const tc_case *c, int64_t pad, or_buf *o, or_buf *m, or_buf *l)
{
    int64_t osh[4] = {NB, 1, HQ, HD}, msh[4] = {NB, 1, HQ, 1};
    or_buf_init_padded(o, RA_DTYPE_F32, 4, osh, pad);
    or_buf_init_padded(m, RA_DTYPE_F32, 4, msh, pad);
    or_buf_init_padded(l, RA_DTYPE_F32, 4, msh, pad);
    or_buf_fill_bytes(o, 0xA5);
    or_buf_fill_bytes(m, 0xA5);
    or_buf_fill_bytes(l, 0xA5);
    for (int64_t bh = 0; bh < NB * HQ; bh++) {
        int64_t at[4] = {bh / HQ, 0, bh % HQ, 0};
        or_buf_set(m, at, c->got_m[bh]);
        or_buf_set(l, at, c->got_l[bh]);
        for (at[3] = 0; at[3] < HD; at[3]++)
            or_buf_set(o, at, c->got_o[bh * HD + at[3]]);
    }
}

/* n = 1 with m == NULL: o / l (0 where l = 0), l passed through; m_out must then be NULL. */
static void test_single_without_m(void **state)
{
    merge_fixture *f = *state;
    const tc_case *c = &f->part[0]; /* b = 2 and 3 are empty there (l = 0) */
    static double want_o[NB * HQ * HD];
    normalize_oracle(c, want_o);
    const ra_tensor *o[1] = {c->o.t}, *m[1] = {c->m.t}, *l[1] = {c->l.t};

    merged r;
    merged_init(&r);
    or_buf_fill_bytes(&r.o, 0xFF);
    or_buf_fill_bytes(&r.m, 0xA5);
    or_buf_fill_bytes(&r.l, 0xFF);
    assert_int_equal(ra_merge(1, o, NULL, l, r.o.t, NULL, r.l.t), RA_OK);
    or_buf_gather_f32(&r.o, r.o_got);
    or_buf_gather_f32(&r.l, r.l_got);
    for (size_t b = 0; b < r.m.bytes; b++)
        assert_int_equal(r.m.data[b], 0xA5); /* m_out was NULL: the buffer is not written */
    or_err e = or_compare(r.o_got, want_o, NB * HQ * HD);
    if (e.nonfinite || e.rel > 1e-6)
        fail_msg("n = 1 without m: o %.3e (non-finite mismatches %lld)", e.rel,
                 (long long)e.nonfinite);
    or_stat_note("n = 1 without m", e.rel);
    int empty_rows = 0;
    for (int64_t bh = 0; bh < NB * HQ; bh++) {
        assert_true(r.l_got[bh] == c->got_l[bh]); /* weight 1: L is the part's l */
        if (c->got_l[bh] != 0.0f)
            continue;
        empty_rows++;
        for (int64_t x = 0; x < HD; x++)
            assert_true(r.o_got[bh * HD + x] == 0.0f);
    }
    assert_true(empty_rows > 0 && empty_rows < NB * HQ);

    /* The same bits as the call with m (whose only part weighs exp(m - m) = 1, or 0 when
     * empty, where o is 0 anyway). */
    merged with_m;
    merged_init(&with_m);
    assert_int_equal(merge_tensors(1, o, m, l, &with_m), RA_OK);
    assert_memory_equal(with_m.o_got, r.o_got, sizeof r.o_got);
    assert_memory_equal(with_m.l_got, r.l_got, sizeof r.l_got);

    /* In place: o_out and l_out are the part's own o and l. */
    or_buf po, pm, pl;
    copy_state(c, 1, &po, &pm, &pl);
    const ra_tensor *io[1] = {po.t}, *il[1] = {pl.t};
    assert_int_equal(ra_merge(1, io, NULL, il, po.t, NULL, pl.t), RA_OK);
    float got[NB * HQ * HD], got_l[NB * HQ];
    or_buf_gather_f32(&po, got);
    or_buf_gather_f32(&pl, got_l);
    assert_memory_equal(got, r.o_got, sizeof got);
    assert_memory_equal(got_l, r.l_got, sizeof got_l);
    or_buf_free(&po);
    or_buf_free(&pm);
    or_buf_free(&pl);

    /* With m NULL the merged max is unknown: an m_out is refused, nothing is written. */
    or_buf_fill_bytes(&r.o, 0x5A);
    or_buf_fill_bytes(&r.m, 0x5A);
    or_buf_fill_bytes(&r.l, 0x5A);
    assert_int_equal(ra_merge(1, o, NULL, l, r.o.t, r.m.t, r.l.t), RA_ERR_INVALID_ARGUMENT);
    assert_true(or_msg_names(ra_last_error(), "m_out"));
    for (size_t b = 0; b < r.o.bytes; b++)
        assert_int_equal(r.o.data[b], 0x5A);
    for (size_t b = 0; b < r.m.bytes; b++)
        assert_int_equal(r.m.data[b], 0x5A);
    for (size_t b = 0; b < r.l.bytes; b++)
        assert_int_equal(r.l.data[b], 0x5A);
    merged_free(&with_m);
    merged_free(&r);
}

/* o_out, m_out and l_out may be the very same views as an input of their role: the result is
 * bitwise the out-of-place one, and no other input changes. Parts sit in padded (strided)
 * copies, each with its own padding. */
static void test_in_place(void **state)
{
    merge_fixture *f = *state;
    enum { N = 3 };
    or_state parts[N], lse;
    for (int i = 0; i < N; i++)
        part_state(&f->part[i], &parts[i]);
    or_state_alloc(&lse, NB, HQ, HD);
    or_merge(N, parts, &lse);

    or_buf ob[N], mb[N], lb[N];
    const ra_tensor *o[N], *m[N], *l[N];
    for (int i = 0; i < N; i++) {
        copy_state(&f->part[i], i, &ob[i], &mb[i], &lb[i]);
        o[i] = ob[i].t, m[i] = mb[i].t, l[i] = lb[i].t;
    }
    merged ref;
    merged_init(&ref);
    assert_int_equal(merge_tensors(N, o, m, l, &ref), RA_OK);
    check_against(&ref, &lse, 1e-6, "3 parts, out of place");

    /* {o_out, m_out, l_out} as {o[k], m[k], l[k]} for k = 0 and 2, then a mix of parts. */
    const int which[3][3] = {{0, 0, 0}, {2, 2, 2}, {2, 0, 1}};
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < N; i++) { /* fresh copies: the last round overwrote some */
            or_buf_free(&ob[i]);
            or_buf_free(&mb[i]);
            or_buf_free(&lb[i]);
            copy_state(&f->part[i], i, &ob[i], &mb[i], &lb[i]);
            o[i] = ob[i].t, m[i] = mb[i].t, l[i] = lb[i].t;
        }
        unsigned char *before[N][3];
        for (int i = 0; i < N; i++) {
            or_buf *bs[3] = {&ob[i], &mb[i], &lb[i]};
            for (int r = 0; r < 3; r++) {
                before[i][r] = malloc(bs[r]->bytes);
                assert_non_null(before[i][r]);
                memcpy(before[i][r], bs[r]->data, bs[r]->bytes);
            }
        }
        int ko = which[c][0], km = which[c][1], kl = which[c][2];
        assert_int_equal(ra_merge(N, o, m, l, ob[ko].t, mb[km].t, lb[kl].t), RA_OK);
        merged got;
        or_buf_gather_f32(&ob[ko], got.o_got);
        or_buf_gather_f32(&mb[km], got.m_got);
        or_buf_gather_f32(&lb[kl], got.l_got);
        char key[64];
        snprintf(key, sizeof key, "3 parts in place (o[%d], m[%d], l[%d])", ko, km, kl);
        check_against(&got, &lse, 1e-6, key);
        assert_memory_equal(got.o_got, ref.o_got, sizeof got.o_got);
        assert_memory_equal(got.m_got, ref.m_got, sizeof got.m_got);
        assert_memory_equal(got.l_got, ref.l_got, sizeof got.l_got);
        for (int i = 0; i < N; i++) {
            or_buf *bs[3] = {&ob[i], &mb[i], &lb[i]};
            const int k[3] = {ko, km, kl};
            for (int r = 0; r < 3; r++) {
                if (i != k[r]) /* an input that is no output keeps every byte */
                    assert_memory_equal(before[i][r], bs[r]->data, bs[r]->bytes);
                free(before[i][r]);
            }
        }
    }

    /* n = 1 in place with m: the normalized state (o / l, M = m, L = l). */
    or_state want1;
    or_state_alloc(&want1, NB, HQ, HD);
    or_merge(1, &parts[0], &want1);
    or_buf_free(&ob[0]);
    or_buf_free(&mb[0]);
    or_buf_free(&lb[0]);
    copy_state(&f->part[0], 2, &ob[0], &mb[0], &lb[0]);
    o[0] = ob[0].t, m[0] = mb[0].t, l[0] = lb[0].t;
    assert_int_equal(ra_merge(1, o, m, l, ob[0].t, mb[0].t, lb[0].t), RA_OK);
    merged one;
    or_buf_gather_f32(&ob[0], one.o_got);
    or_buf_gather_f32(&mb[0], one.m_got);
    or_buf_gather_f32(&lb[0], one.l_got);
    check_against(&one, &want1, 1e-6, "n = 1 in place");

    or_state_free(&want1);
    for (int i = 0; i < N; i++) {
        or_buf_free(&ob[i]);
        or_buf_free(&mb[i]);
        or_buf_free(&lb[i]);
        or_state_free(&parts[i]);
    }
    or_state_free(&lse);
    merged_free(&ref);
}

/* More parts than one block of weights (32) and a head dimension longer than one chunk of
 * features (256), merged in place into the first and into the last part, against the merge
 * oracle in double. */
static void test_in_place_many_parts(void **state)
{
    (void)state;
    enum { N = 37, B = 2, H = 3, D = 300 };
    const int64_t osh[4] = {B, 1, H, D}, msh[4] = {B, 1, H, 1};
    or_state parts[N], want;
    or_buf ob[N], mb[N], lb[N];
    or_state_alloc(&want, B, H, D);
    for (int k = 0; k < 2; k++) {
        const int out = k == 0 ? 0 : N - 1;
        or_rng r = or_rng_seed(4200); /* the same parts in both rounds */
        const ra_tensor *o[N], *m[N], *l[N];
        for (int i = 0; i < N; i++) {
            or_state_alloc(&parts[i], B, H, D);
            or_buf_init(&ob[i], RA_DTYPE_F32, 4, osh, NULL);
            or_buf_init(&mb[i], RA_DTYPE_F32, 4, msh, NULL);
            or_buf_init(&lb[i], RA_DTYPE_F32, 4, msh, NULL);
            o[i] = ob[i].t, m[i] = mb[i].t, l[i] = lb[i].t;
            for (int64_t bh = 0; bh < B * H; bh++) {
                int64_t at[4] = {bh / H, 0, bh % H, 0};
                bool empty = (i + bh) % 7 == 3;
                double mv = empty ? -INFINITY : (float)or_rng_uniform(&r, -6, 6);
                double lv = empty ? 0.0 : (float)or_rng_uniform(&r, 0.5, 3);
                parts[i].m[bh] = mv, parts[i].l[bh] = lv;
                or_buf_set(&mb[i], at, mv);
                or_buf_set(&lb[i], at, lv);
                for (at[3] = 0; at[3] < D; at[3]++) {
                    double x = empty ? 0.0 : (float)or_rng_uniform(&r, 0, 2);
                    parts[i].o_un[bh * D + at[3]] = x;
                    or_buf_set(&ob[i], at, x);
                }
            }
        }
        if (k == 0)
            or_merge(N, parts, &want);
        assert_int_equal(ra_merge(N, o, m, l, ob[out].t, mb[out].t, lb[out].t), RA_OK);
        float *go = malloc(sizeof(float) * B * H * D), gm[B * H], gl[B * H];
        assert_non_null(go);
        or_buf_gather_f32(&ob[out], go);
        or_buf_gather_f32(&mb[out], gm);
        or_buf_gather_f32(&lb[out], gl);
        or_err eo = or_compare(go, want.o, B * H * D), em = or_compare(gm, want.m, B * H),
               el = or_compare(gl, want.l, B * H);
        if (eo.nonfinite || em.nonfinite || el.nonfinite || eo.rel > 1e-5 || em.rel > 1e-6 ||
            el.rel > 1e-5)
            fail_msg("%d parts in place into part %d: o %.3e, m %.3e, l %.3e", N, out, eo.rel,
                     em.rel, el.rel);
        or_stat_note("37 parts, D = 300, in place", eo.rel);
        free(go);
        for (int i = 0; i < N; i++) {
            or_buf_free(&ob[i]);
            or_buf_free(&mb[i]);
            or_buf_free(&lb[i]);
            or_state_free(&parts[i]);
        }
    }
    or_state_free(&want);
}

/* ---- validation ------------------------------------------------------------------------- */

/* Calls ra_merge and checks status, message and that every buffer in `outs` is untouched. */
static void expect_merge_fails(size_t n, const ra_tensor *const *o, const ra_tensor *const *m,
                               const ra_tensor *const *l, ra_tensor *o_out, ra_tensor *m_out,
                               ra_tensor *l_out, or_buf *const *outs, int n_outs, ra_status want,
                               const char *const *names, const char *ctx)
{
    for (int i = 0; i < n_outs; i++)
        or_buf_fill_bytes(outs[i], 0xA5);
    ra_status s = ra_merge(n, o, m, l, o_out, m_out, l_out);
    if (s != want)
        fail_msg("ra_merge %s: got %s, want %s (%s)", ctx, ra_status_string(s),
                 ra_status_string(want), ra_last_error());
    bool named = names == NULL;
    for (const char *const *w = names; w && *w; w++)
        named = named || or_msg_names(ra_last_error(), *w);
    if (!named)
        fail_msg("ra_merge %s: message \"%s\" does not name %s", ctx, ra_last_error(), names[0]);
    for (int i = 0; i < n_outs; i++)
        for (size_t b = 0; b < outs[i]->bytes; b++)
            if (outs[i]->data[b] != 0xA5)
                fail_msg("ra_merge %s: an output was written although the call failed", ctx);
}

static void test_merge_rejects(void **state)
{
    merge_fixture *f = *state;
    const ra_tensor *o[2] = {f->part[0].o.t, f->part[2].o.t};
    const ra_tensor *m[2] = {f->part[0].m.t, f->part[2].m.t};
    const ra_tensor *l[2] = {f->part[0].l.t, f->part[2].l.t};
    merged r;
    merged_init(&r);
    or_buf *outs[3] = {&r.o, &r.m, &r.l};
    const char *n_names[] = {"n", NULL}, *o_names[] = {"o", NULL}, *m_names[] = {"m", NULL},
               *l_names[] = {"l", NULL}, *oo_names[] = {"o_out", NULL};

    expect_merge_fails(0, o, m, l, r.o.t, r.m.t, r.l.t, outs, 3, RA_ERR_INVALID_ARGUMENT,
                       n_names, "n = 0");
    expect_merge_fails(2, NULL, m, l, r.o.t, r.m.t, r.l.t, outs, 3, RA_ERR_INVALID_ARGUMENT,
                       o_names, "o == NULL");
    expect_merge_fails(2, o, NULL, l, r.o.t, r.m.t, r.l.t, outs, 3, RA_ERR_INVALID_ARGUMENT,
                       m_names, "m == NULL");
    expect_merge_fails(2, o, m, NULL, r.o.t, r.m.t, r.l.t, outs, 3, RA_ERR_INVALID_ARGUMENT,
                       l_names, "l == NULL");
    const ra_tensor *o_hole[2] = {o[0], NULL}, *m_hole[2] = {NULL, m[1]}, *l_hole[2] = {l[0], NULL};
    expect_merge_fails(2, o_hole, m, l, r.o.t, r.m.t, r.l.t, outs, 3, RA_ERR_INVALID_ARGUMENT,
                       o_names, "o[1] == NULL");
    expect_merge_fails(2, o, m_hole, l, r.o.t, r.m.t, r.l.t, outs, 3, RA_ERR_INVALID_ARGUMENT,
                       m_names, "m[0] == NULL");
    expect_merge_fails(2, o, m, l_hole, r.o.t, r.m.t, r.l.t, outs, 3, RA_ERR_INVALID_ARGUMENT,
                       l_names, "l[1] == NULL");
    expect_merge_fails(2, o, m, l, NULL, r.m.t, r.l.t, outs, 3, RA_ERR_INVALID_ARGUMENT,
                       oo_names, "o_out == NULL");

    /* Shapes that differ, or that are not [NB,1,H,HD] / [NB,1,H,1]. */
    struct {
        int which; /* 0: o[1], 1: m[1], 2: l[1], 3: o_out, 4: m_out, 5: l_out */
        int rank;
        int64_t shape[4];
        ra_dtype dt;
        ra_status want;
        const char *name;
    } bad[] = {
        {0, 4, {NB, 1, HQ, HD + 1}, RA_DTYPE_F32, RA_ERR_SHAPE, "o"},
        {0, 4, {NB + 1, 1, HQ, HD}, RA_DTYPE_F32, RA_ERR_SHAPE, "o"},
        {0, 3, {NB, HQ, HD}, RA_DTYPE_F32, RA_ERR_SHAPE, "o"},
        {1, 4, {NB, 1, HQ + 1, 1}, RA_DTYPE_F32, RA_ERR_SHAPE, "m"},
        {1, 4, {NB, 1, HQ, 2}, RA_DTYPE_F32, RA_ERR_SHAPE, "m"},
        {2, 3, {NB, HQ, 1}, RA_DTYPE_F32, RA_ERR_SHAPE, "l"},
        {3, 4, {NB, 1, HQ, HD - 1}, RA_DTYPE_F32, RA_ERR_SHAPE, "o_out"},
        {4, 4, {NB, 2, HQ, 1}, RA_DTYPE_F32, RA_ERR_SHAPE, "m_out"},
        {5, 2, {NB, HQ}, RA_DTYPE_F32, RA_ERR_SHAPE, "l_out"},
        {0, 4, {NB, 1, HQ, HD}, RA_DTYPE_BF16, RA_ERR_DTYPE, "o"},
        {1, 4, {NB, 1, HQ, 1}, RA_DTYPE_F16, RA_ERR_DTYPE, "m"},
        {2, 4, {NB, 1, HQ, 1}, RA_DTYPE_I32, RA_ERR_DTYPE, "l"},
        {3, 4, {NB, 1, HQ, HD}, RA_DTYPE_F16, RA_ERR_DTYPE, "o_out"},
        {4, 4, {NB, 1, HQ, 1}, RA_DTYPE_BF16, RA_ERR_DTYPE, "m_out"},
        {5, 4, {NB, 1, HQ, 1}, RA_DTYPE_F16, RA_ERR_DTYPE, "l_out"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        or_buf x;
        or_buf_init(&x, bad[i].dt, bad[i].rank, bad[i].shape, NULL);
        or_buf_fill_bytes(&x, 0);
        const ra_tensor *oo[2] = {o[0], o[1]}, *mm[2] = {m[0], m[1]}, *ll[2] = {l[0], l[1]};
        ra_tensor *out[3] = {r.o.t, r.m.t, r.l.t};
        or_buf *watch[4] = {&r.o, &r.m, &r.l, &x};
        int n_watch = 3;
        if (bad[i].which == 0)
            oo[1] = x.t;
        else if (bad[i].which == 1)
            mm[1] = x.t;
        else if (bad[i].which == 2)
            ll[1] = x.t;
        else {
            out[bad[i].which - 3] = x.t;
            n_watch = 4;
        }
        const char *names[] = {bad[i].name, NULL};
        char ctx[64];
        snprintf(ctx, sizeof ctx, "bad case %zu (%s, %s)", i, bad[i].name,
                 or_dtype_name(bad[i].dt));
        expect_merge_fails(2, oo, mm, ll, out[0], out[1], out[2], watch, n_watch, bad[i].want,
                           names, ctx);
        or_buf_free(&x);
    }
    merged_free(&r);
}

static void test_merge_rejects_aliasing(void **state)
{
    merge_fixture *f = *state;
    /* Copies of two partial states that outputs can then overlap. */
    merged in[2];
    for (int i = 0; i < 2; i++) {
        merged_init(&in[i]);
        const tc_case *c = &f->part[i == 0 ? 0 : 2];
        or_buf_fill_bytes(&in[i].o, 0);
        for (int64_t bh = 0; bh < NB * HQ; bh++) {
            int64_t at[4] = {bh / HQ, 0, bh % HQ, 0};
            or_buf_set(&in[i].m, at, c->got_m[bh]);
            or_buf_set(&in[i].l, at, c->got_l[bh]);
        }
    }
    const ra_tensor *o[2] = {in[0].o.t, in[1].o.t}, *m[2] = {in[0].m.t, in[1].m.t},
                    *l[2] = {in[0].l.t, in[1].l.t};
    merged r;
    merged_init(&r);
    int64_t osh[4] = {NB, 1, HQ, HD}, msh[4] = {NB, 1, HQ, 1};
    ra_tensor *t = NULL;

    /* Only the very same view of an input of the same role may be an output: o_out over o[1]
     * shifted by one element, or on o[1]'s memory with other strides, overlaps it; m_out on
     * exactly l[0]'s view is still an alias (another role); l_out over m[1], shifted. */
    const char *names_o[] = {"o_out", "o", NULL};
    unsigned char *snap = malloc(in[1].o.bytes);
    assert_non_null(snap);
    memcpy(snap, in[1].o.data, in[1].o.bytes);
    or_buf *outs[2] = {&r.m, &r.l};
    /* o[1]'s values in a buffer one element longer, so o_out fits one element further on. */
    int64_t host_sh[1] = {NB * HQ * HD + 1};
    or_buf host;
    or_buf_init(&host, RA_DTYPE_F32, 1, host_sh, NULL);
    or_buf_fill_bytes(&host, 0);
    ra_tensor *o1 = NULL;
    assert_int_equal(ra_tensor_wrap(&o1, RA_DTYPE_F32, 4, osh, NULL, host.data), RA_OK);
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 4, osh, NULL, host.data + 4), RA_OK);
    const ra_tensor *o_sh[2] = {o[0], o1};
    unsigned char *host_snap = malloc(host.bytes);
    assert_non_null(host_snap);
    memcpy(host_snap, host.data, host.bytes);
    expect_merge_fails(2, o_sh, m, l, t, r.m.t, r.l.t, outs, 2, RA_ERR_ALIAS, names_o,
                       "o_out over o[1], one element on");
    assert_memory_equal(host_snap, host.data, host.bytes);
    free(host_snap);
    ra_tensor_destroy(t);
    ra_tensor_destroy(o1);
    or_buf_free(&host);
    int64_t transposed[4] = {HQ * HD, HQ * HD, 1, HQ}; /* [b][d][h] order, no self-overlap */
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 4, osh, transposed, in[1].o.data), RA_OK);
    expect_merge_fails(2, o, m, l, t, r.m.t, r.l.t, outs, 2, RA_ERR_ALIAS, names_o,
                       "o_out on o[1]'s memory, other strides");
    assert_memory_equal(snap, in[1].o.data, in[1].o.bytes);
    free(snap);
    ra_tensor_destroy(t);

    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 4, msh, NULL, in[0].l.data), RA_OK);
    const char *names_m[] = {"m_out", "l", NULL};
    or_buf *outs2[2] = {&r.o, &r.l};
    expect_merge_fails(2, o, m, l, r.o.t, t, r.l.t, outs2, 2, RA_ERR_ALIAS, names_m,
                       "m_out over l[0]");
    ra_tensor_destroy(t);

    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 4, msh, NULL, in[1].m.data + 4), RA_OK);
    const char *names_l[] = {"l_out", "m", NULL};
    or_buf *outs3[2] = {&r.o, &r.m};
    expect_merge_fails(2, o, m, l, r.o.t, r.m.t, t, outs3, 2, RA_ERR_ALIAS, names_l,
                       "l_out over m[1]");
    ra_tensor_destroy(t);

    /* Outputs overlapping each other: m_out and l_out on the same memory; l_out inside o_out. */
    const char *names_ml[] = {"m_out", "l_out", NULL};
    or_buf *outs4[2] = {&r.o, &r.m};
    expect_merge_fails(2, o, m, l, r.o.t, r.m.t, r.m.t, outs4, 2, RA_ERR_ALIAS, names_ml,
                       "m_out == l_out");
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 4, msh, NULL, r.o.data + 64), RA_OK);
    const char *names_ol[] = {"l_out", "o_out", NULL};
    or_buf *outs5[2] = {&r.o, &r.m};
    expect_merge_fails(2, o, m, l, r.o.t, r.m.t, t, outs5, 2, RA_ERR_ALIAS, names_ol,
                       "l_out inside o_out");
    ra_tensor_destroy(t);

    /* An o_out whose elements overlap (head stride 0). */
    int64_t st[4] = {HQ * HD, HQ * HD, 0, 1};
    or_buf self;
    or_buf_init(&self, RA_DTYPE_F32, 4, osh, st);
    const char *names_self[] = {"o_out", NULL};
    or_buf *outs6[3] = {&self, &r.m, &r.l};
    expect_merge_fails(2, o, m, l, self.t, r.m.t, r.l.t, outs6, 3, RA_ERR_ALIAS, names_self,
                       "o_out with a zero stride");
    or_buf_free(&self);

    merged_free(&r);
    merged_free(&in[0]);
    merged_free(&in[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefill_plus_autoregressive),
        cmocka_unit_test(test_four_parts_flat_and_tree),
        cmocka_unit_test(test_single_and_self),
        cmocka_unit_test(test_extreme_m),
        cmocka_unit_test(test_single_without_m),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_in_place_many_parts),
        cmocka_unit_test(test_merge_rejects),
        cmocka_unit_test(test_merge_rejects_aliasing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
