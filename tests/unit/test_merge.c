/* ra_merge: partial states from ra_ragged_gqa over separate caches, merged, equal attention
 * over all their valid keys (the oracle on the concatenation); staged (tree) merges; empty
 * parts; chaining through m_out/l_out; validation.
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

    /* o_out over o[1]'s memory; m_out over l[0]; l_out over m[1], shifted by one element. */
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 4, osh, NULL, in[1].o.data), RA_OK);
    const char *names_o[] = {"o_out", "o", NULL};
    unsigned char *snap = malloc(in[1].o.bytes);
    assert_non_null(snap);
    memcpy(snap, in[1].o.data, in[1].o.bytes);
    or_buf *outs[2] = {&r.m, &r.l};
    expect_merge_fails(2, o, m, l, t, r.m.t, r.l.t, outs, 2, RA_ERR_ALIAS, names_o,
                       "o_out over o[1]");
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
        cmocka_unit_test(test_merge_rejects),
        cmocka_unit_test(test_merge_rejects_aliasing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
