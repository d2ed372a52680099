/* Validation of the six attention functions: one test per rule. Each check asserts the status,
 * that ra_last_error() names the argument, and that every output is byte-for-byte untouched.
 * Every rule is tried on all six functions, which share the validation (docs/design.md,
 * "Validation and errors"). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"

enum { A_Q, A_K, A_V, A_LEN, A_O, A_M, A_L, A_COUNT };
static const char *const arg_name[A_COUNT] = {"q", "k", "v", "lengths", "o", "m", "l"};

typedef ra_status (*attn_fn)(const ra_options *, const ra_tensor *, const ra_tensor *,
                             const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                             ra_tensor *);

static attn_fn fn_of(tc_fn fn)
{
    const attn_fn fns[TC_FN_COUNT] = {ra_ragged_mqa,    ra_ragged_mha,    ra_ragged_gqa,
                                      ra_reference_mqa, ra_reference_mha, ra_reference_gqa};
    return fns[fn];
}

/* A valid small problem for fn: B=3, S=8, D=4; Hq=4 and Hkv=2 (MQA: 1, MHA: 4). */
static void valid_case(tc_case *c, tc_fn fn)
{
    tc_params p = {.fn = fn, .B = 3, .Hq = 4, .S = 8, .D = 4, .seed = 11};
    p.Hkv = tc_fn_is_mqa(fn) ? 1 : tc_fn_is_mha(fn) ? 4 : 2;
    tc_init(c, &p);
}

static or_buf *case_buf(tc_case *c, int a)
{
    or_buf *bufs[A_COUNT] = {&c->q, &c->k, &c->v, &c->len, &c->o, &c->m, &c->l};
    return bufs[a];
}

/* Checks that msg names one of the words (NULL-terminated list). */
static void expect_names(const char *msg, const char *const *words, const char *ctx)
{
    for (const char *const *w = words; *w; w++)
        if (or_msg_names(msg, *w))
            return;
    fail_msg("%s: message \"%s\" does not name %s%s", ctx, msg, words[0],
             words[1] ? " (or a related argument)" : "");
}

/* Calls fn with the case's tensors, except for replacements (non-NULL entries of repl, or the
 * NULL ones flagged in null_mask), after filling every output and each buffer in `watch` with
 * a sentinel, and checks status, message and untouched outputs. */
static void expect_failure(tc_case *c, const ra_tensor *const *repl, unsigned null_mask,
                           or_buf *const *watch, int n_watch, ra_status want,
                           const char *const *names, const char *ctx)
{
    const ra_tensor *t[A_COUNT];
    for (int a = 0; a < A_COUNT; a++) {
        t[a] = repl && repl[a] ? repl[a] : case_buf(c, a)->t;
        if (null_mask & (1u << a))
            t[a] = NULL;
    }
    or_buf *outs[3 + 8] = {&c->o, &c->m, &c->l};
    int n_outs = 3;
    for (int i = 0; i < n_watch; i++)
        outs[n_outs++] = watch[i];
    for (int i = 0; i < n_outs; i++)
        or_buf_fill_bytes(outs[i], 0xA5);

    ra_status s = fn_of(c->p.fn)(NULL, t[A_Q], t[A_K], t[A_V], t[A_LEN], (ra_tensor *)t[A_O],
                                 (ra_tensor *)t[A_M], (ra_tensor *)t[A_L]);
    char full[256];
    snprintf(full, sizeof full, "%s: %s", tc_fn_name(c->p.fn), ctx);
    if (s != want)
        fail_msg("%s: got %s, want %s (message \"%s\")", full, ra_status_string(s),
                 ra_status_string(want), ra_last_error());
    if (names)
        expect_names(ra_last_error(), names, full);
    for (int i = 0; i < n_outs; i++)
        for (size_t b = 0; b < outs[i]->bytes; b++)
            if (outs[i]->data[b] != 0xA5)
                fail_msg("%s: an output was written (byte %zu) although the call failed", full, b);
}

static void test_null_arguments(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        tc_case c;
        valid_case(&c, (tc_fn)fn);
        for (int a = A_Q; a <= A_O; a++) {
            const char *names[] = {arg_name[a], NULL};
            char ctx[64];
            snprintf(ctx, sizeof ctx, "NULL %s", arg_name[a]);
            expect_failure(&c, NULL, 1u << a, NULL, 0, RA_ERR_INVALID_ARGUMENT, names, ctx);
        }
        tc_free(&c);
    }
}

/* NULL options mean the defaults; NULL m and/or l mean "not wanted". */
static void test_null_options_and_optional_outputs(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        tc_case c;
        valid_case(&c, (tc_fn)fn);
        tc_opts null_opts = {.null_opts = true};
        assert_int_equal(tc_run(&c, &null_opts), RA_OK);
        tc_check(&c, 1e-5, NULL);
        float o_null[3 * 4 * 4];
        memcpy(o_null, c.got_o, sizeof o_null);

        ra_options *def = NULL;
        assert_int_equal(ra_options_create(&def), RA_OK);
        attn_fn f = fn_of((tc_fn)fn);
        for (int which = 0; which < 3; which++) {
            or_buf_fill_bytes(&c.o, 0xFF);
            or_buf_fill_bytes(&c.m, 0xA5);
            or_buf_fill_bytes(&c.l, 0xA5);
            ra_tensor *m = which == 1 ? NULL : c.m.t, *l = which == 2 ? NULL : c.l.t;
            if (which == 0)
                m = l = NULL;
            assert_int_equal(f(def, c.q.t, c.k.t, c.v.t, c.len.t, c.o.t, m, l), RA_OK);
            float o[3 * 4 * 4];
            or_buf_gather_f32(&c.o, o);
            /* Default options and NULL options are the same computation. */
            if (memcmp(o, o_null, sizeof o) != 0)
                fail_msg("%s: default options and NULL options give different o (m %s, l %s)",
                         tc_fn_name((tc_fn)fn), m ? "given" : "NULL", l ? "given" : "NULL");
            if (!m)
                for (size_t b = 0; b < c.m.bytes; b++)
                    assert_int_equal(c.m.data[b], 0xA5);
            if (!l)
                for (size_t b = 0; b < c.l.bytes; b++)
                    assert_int_equal(c.l.data[b], 0xA5);
        }
        ra_options_destroy(def);
        tc_free(&c);
    }
}

/* Replaces argument a with a tensor of the same dtype and the given shape (valid data). */
static void make_like(or_buf *out, const or_buf *like, ra_dtype dt, int rank,
                      const int64_t *shape)
{
    or_buf_init(out, dt, rank, shape, NULL);
    or_rng r = or_rng_seed(5);
    if (dt == RA_DTYPE_I32) { /* valid lengths (1), whatever the shape */
        const int32_t one = 1;
        for (int64_t i = 0; i < out->numel; i++)
            memcpy(out->data + 4 * i, &one, 4);
    } else if (like->dtype != RA_DTYPE_I32) {
        or_buf_fill_uniform(out, &r, -1, 1);
    }
}

static bool is_output(int a)
{
    return a >= A_O;
}

static void test_wrong_rank(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        tc_case c;
        valid_case(&c, (tc_fn)fn);
        for (int a = 0; a < A_COUNT; a++) {
            const or_buf *orig = case_buf(&c, a);
            or_buf bad;
            if (a == A_LEN) {
                int64_t sh[2] = {c.d.B, 1};
                make_like(&bad, orig, RA_DTYPE_I32, 2, sh);
            } else {
                int64_t sh[1] = {orig->numel}; /* same elements, rank 1 */
                make_like(&bad, orig, orig->dtype, 1, sh);
            }
            const ra_tensor *repl[A_COUNT] = {0};
            repl[a] = bad.t;
            or_buf *watch[1] = {&bad};
            const char *names[] = {arg_name[a], NULL};
            char ctx[64];
            snprintf(ctx, sizeof ctx, "rank %d %s", bad.rank, arg_name[a]);
            expect_failure(&c, repl, 0, watch, is_output(a) ? 1 : 0, RA_ERR_SHAPE, names, ctx);
            or_buf_free(&bad);
        }
        tc_free(&c);
    }
}

/* Each dimension of each argument, one larger than it should be. */
static void test_wrong_dims(void **state)
{
    (void)state;
    /* The argument a mismatch can be reported against, besides the one that changed. */
    static const char *const related[A_COUNT][5] = {
        {"q", "k", "o", "lengths", NULL}, {"k", "q", "v", "lengths", NULL},
        {"v", "k", "q", NULL},            {"lengths", "q", "k", NULL},
        {"o", NULL},                      {"m", NULL},
        {"l", NULL}};
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        tc_case c;
        valid_case(&c, (tc_fn)fn);
        for (int a = 0; a < A_COUNT; a++) {
            const or_buf *orig = case_buf(&c, a);
            for (int ax = 0; ax < orig->rank; ax++) {
                int64_t sh[4];
                memcpy(sh, orig->shape, sizeof sh);
                sh[ax] += 1;
                or_buf bad;
                make_like(&bad, orig, orig->dtype, orig->rank, sh);
                const ra_tensor *repl[A_COUNT] = {0};
                repl[a] = bad.t;
                or_buf *watch[1] = {&bad};
                char ctx[64];
                snprintf(ctx, sizeof ctx, "%s with axis %d = %lld", arg_name[a], ax,
                         (long long)sh[ax]);
                expect_failure(&c, repl, 0, watch, is_output(a) ? 1 : 0, RA_ERR_SHAPE,
                               related[a], ctx);
                or_buf_free(&bad);
            }
        }
        tc_free(&c);
    }
}

static void test_wrong_dtype(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        tc_case c;
        valid_case(&c, (tc_fn)fn);
        for (int a = 0; a < A_COUNT; a++) {
            const or_buf *orig = case_buf(&c, a);
            /* Inputs q, k, v take f32/f16/bf16 but not i32; lengths only i32; outputs only f32. */
            ra_dtype bad_dts[2];
            int n = 0;
            if (a <= A_V) {
                bad_dts[n++] = RA_DTYPE_I32;
            } else if (a == A_LEN) {
                bad_dts[n++] = RA_DTYPE_F32;
                bad_dts[n++] = RA_DTYPE_F16;
            } else {
                bad_dts[n++] = RA_DTYPE_BF16;
                bad_dts[n++] = RA_DTYPE_F16;
            }
            for (int i = 0; i < n; i++) {
                or_buf bad;
                make_like(&bad, orig, bad_dts[i], orig->rank, orig->shape);
                const ra_tensor *repl[A_COUNT] = {0};
                repl[a] = bad.t;
                or_buf *watch[1] = {&bad};
                const char *names[] = {arg_name[a], NULL};
                char ctx[64];
                snprintf(ctx, sizeof ctx, "%s of dtype %s", arg_name[a], or_dtype_name(bad_dts[i]));
                expect_failure(&c, repl, 0, watch, is_output(a) ? 1 : 0, RA_ERR_DTYPE, names,
                               ctx);
                or_buf_free(&bad);
            }
        }
        tc_free(&c);
    }
}

static void test_heads_do_not_divide(void **state)
{
    (void)state;
    /* GQA with Hq = 4 and Hkv = 3; MHA with Hq = 4 and Hkv = 2. */
    const tc_fn fns[3] = {TC_RAGGED_GQA, TC_REFERENCE_GQA, TC_RAGGED_MHA};
    for (int i = 0; i < 3; i++) {
        tc_case c;
        valid_case(&c, fns[i]);
        or_buf k, v;
        int64_t sh[4];
        memcpy(sh, c.k.shape, sizeof sh);
        int head_axis = fns[i] == TC_REFERENCE_GQA ? 1 : 2;
        sh[head_axis] = fns[i] == TC_RAGGED_MHA ? 2 : 3;
        make_like(&k, &c.k, c.k.dtype, 4, sh);
        make_like(&v, &c.v, c.v.dtype, 4, sh);
        const ra_tensor *repl[A_COUNT] = {0};
        repl[A_K] = k.t;
        repl[A_V] = v.t;
        const char *names[] = {"k", "q", "Hkv", "Hq", NULL};
        expect_failure(&c, repl, 0, NULL, 0, RA_ERR_SHAPE, names,
                       fns[i] == TC_RAGGED_MHA ? "MHA with Hq 4 != Hkv 2" : "Hq 4 % Hkv 3 != 0");
        or_buf_free(&k);
        or_buf_free(&v);
        tc_free(&c);
    }
    /* Reference MHA as well: its k/v are [B,S,H,D]. */
    tc_case c;
    valid_case(&c, TC_REFERENCE_MHA);
    or_buf k, v;
    int64_t sh[4] = {c.k.shape[0], c.k.shape[1], 2, c.k.shape[3]};
    make_like(&k, &c.k, c.k.dtype, 4, sh);
    make_like(&v, &c.v, c.v.dtype, 4, sh);
    const ra_tensor *repl[A_COUNT] = {0};
    repl[A_K] = k.t;
    repl[A_V] = v.t;
    const char *names[] = {"k", "q", "Hkv", "Hq", NULL};
    expect_failure(&c, repl, 0, NULL, 0, RA_ERR_SHAPE, names, "MHA with Hq 4 != Hkv 2");
    or_buf_free(&k);
    or_buf_free(&v);
    tc_free(&c);
}

/* The message must give the batch index as well as the value. */
static void expect_index(const char *msg, int b, const char *ctx)
{
    char pats[7][24];
    snprintf(pats[0], sizeof pats[0], "[%d]", b);
    snprintf(pats[1], sizeof pats[1], "b=%d", b);
    snprintf(pats[2], sizeof pats[2], "b = %d", b);
    snprintf(pats[3], sizeof pats[3], "batch %d", b);
    snprintf(pats[4], sizeof pats[4], "index %d", b);
    snprintf(pats[5], sizeof pats[5], "entry %d", b);
    snprintf(pats[6], sizeof pats[6], "b %d", b);
    for (int i = 0; i < 7; i++)
        if (strstr(msg, pats[i]))
            return;
    fail_msg("%s: message \"%s\" does not give the batch index %d", ctx, msg, b);
}

static void test_lengths_out_of_range(void **state)
{
    (void)state;
    /* S = 8: a negative length at b = 1 and one past S at b = 2 (and exactly S is fine). */
    const int32_t bad[2][3] = {{8, -7, 3}, {0, 8, 1234}};
    const int bad_b[2] = {1, 2};
    const char *bad_v[2] = {"-7", "1234"};
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        for (int i = 0; i < 2; i++) {
            tc_case c;
            valid_case(&c, (tc_fn)fn);
            for (int64_t b = 0; b < 3; b++)
                or_buf_set(&c.len, &b, bad[i][b]);
            const char *names[] = {"lengths", NULL};
            char ctx[64];
            snprintf(ctx, sizeof ctx, "lengths[%d] = %s", bad_b[i], bad_v[i]);
            expect_failure(&c, NULL, 0, NULL, 0, RA_ERR_LENGTH, names, ctx);
            if (!strstr(ra_last_error(), bad_v[i]))
                fail_msg("%s: message \"%s\" does not give the value", ctx, ra_last_error());
            expect_index(ra_last_error(), bad_b[i], ctx);
            tc_free(&c);
        }
    }
}

static void test_zero_head_dim(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        tc_params p = {.fn = (tc_fn)fn, .B = 2, .Hq = 2, .S = 5, .D = 0, .seed = 3};
        p.Hkv = tc_fn_is_mha((tc_fn)fn) ? 2 : 1;
        tc_case c;
        tc_init(&c, &p);
        expect_failure(&c, NULL, 0, NULL, 0, RA_ERR_SHAPE, NULL, "D == 0");
        assert_true(strlen(ra_last_error()) > 0);
        tc_free(&c);
    }
}

/* B == 0 and Hq == 0 are valid calls that write nothing. */
static void test_zero_batch_and_heads(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        for (int which = 0; which < 2; which++) {
            tc_params p = {.fn = (tc_fn)fn, .B = 3, .Hq = 2, .Hkv = 1, .S = 5, .D = 8, .seed = 4};
            if (which == 0)
                p.B = 0;
            else
                p.Hq = 0;
            if (tc_fn_is_mha((tc_fn)fn))
                p.Hkv = p.Hq;
            tc_case c;
            tc_init(&c, &p);
            ra_status s = tc_run(&c, NULL);
            if (s != RA_OK)
                fail_msg("%s with %s = 0: %s (%s)", tc_fn_name((tc_fn)fn), which ? "Hq" : "B",
                         ra_status_string(s), ra_last_error());
            assert_int_equal(c.stray_writes, 0);
            tc_free(&c);
        }
    }
}

/* Tensors X and Y placed over one shared region, Y shifted by `shift` floats. */
static void alias_case(tc_fn fn, int x, int y, int64_t shift)
{
    tc_case c;
    valid_case(&c, fn);
    size_t region_bytes = 64 * 1024;
    unsigned char *region = aligned_alloc(64, region_bytes);
    assert_non_null(region);
    memset(region, 0, region_bytes);
    /* Copy input contents, lengths last so that its (constrained) values survive. */
    const int order[2] = {x == A_LEN ? y : x, x == A_LEN ? x : y};
    int64_t at[A_COUNT] = {0};
    at[x] = 0;
    at[y] = shift;
    ra_tensor *t[2];
    for (int i = 0; i < 2; i++) {
        const or_buf *b = case_buf(&c, order[i]);
        unsigned char *base = region + at[order[i]] * 4;
        if (!is_output(order[i]))
            memcpy(base, b->data, b->bytes < region_bytes / 2 ? b->bytes : region_bytes / 2);
        assert_int_equal(ra_tensor_wrap(&t[i], b->dtype, b->rank, b->shape, b->strides, base),
                         RA_OK);
    }
    const ra_tensor *repl[A_COUNT] = {0};
    repl[order[0]] = t[0];
    repl[order[1]] = t[1];
    unsigned char *snapshot = malloc(region_bytes);
    assert_non_null(snapshot);
    memcpy(snapshot, region, region_bytes);
    char ctx[64];
    snprintf(ctx, sizeof ctx, "%s overlapping %s", arg_name[y], arg_name[x]);
    const char *names[] = {arg_name[x], arg_name[y], NULL};
    expect_failure(&c, repl, 0, NULL, 0, RA_ERR_ALIAS, names, ctx);
    if (memcmp(snapshot, region, region_bytes) != 0)
        fail_msg("%s: %s: the shared memory changed", tc_fn_name(fn), ctx);
    free(snapshot);
    ra_tensor_destroy(t[0]);
    ra_tensor_destroy(t[1]);
    free(region);
    tc_free(&c);
}

static void test_outputs_alias_inputs(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        for (int in = A_Q; in <= A_LEN; in++) {
            alias_case((tc_fn)fn, in, A_O, 1);
            alias_case((tc_fn)fn, in, A_M, 0);
            alias_case((tc_fn)fn, in, A_L, 2);
        }
    }
}

static void test_outputs_alias_each_other(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        alias_case((tc_fn)fn, A_O, A_M, 5);
        alias_case((tc_fn)fn, A_O, A_L, 0);
        alias_case((tc_fn)fn, A_M, A_L, 1);
        alias_case((tc_fn)fn, A_L, A_M, 3);
    }
}

/* An output whose own elements overlap (a zero or too-small stride). */
static void test_output_self_overlap(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        for (int a = A_O; a <= A_L; a++) {
            for (int kind = 0; kind < 2; kind++) {
                tc_case c;
                valid_case(&c, (tc_fn)fn);
                const or_buf *orig = case_buf(&c, a);
                int64_t st[4];
                memcpy(st, orig->strides, sizeof st);
                /* kind 0: batch stride 0; kind 1: batch stride one short of a full row. */
                st[0] = kind == 0 ? 0 : st[0] - 1;
                or_buf bad;
                or_buf_init(&bad, RA_DTYPE_F32, orig->rank, orig->shape, st);
                const ra_tensor *repl[A_COUNT] = {0};
                repl[a] = bad.t;
                or_buf *watch[1] = {&bad};
                const char *names[] = {arg_name[a], NULL};
                char ctx[64];
                snprintf(ctx, sizeof ctx, "%s with batch stride %lld", arg_name[a],
                         (long long)st[0]);
                expect_failure(&c, repl, 0, watch, 1, RA_ERR_ALIAS, names, ctx);
                or_buf_free(&bad);
                tc_free(&c);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_null_options_and_optional_outputs),
        cmocka_unit_test(test_wrong_rank),
        cmocka_unit_test(test_wrong_dims),
        cmocka_unit_test(test_wrong_dtype),
        cmocka_unit_test(test_heads_do_not_divide),
        cmocka_unit_test(test_lengths_out_of_range),
        cmocka_unit_test(test_zero_head_dim),
        cmocka_unit_test(test_zero_batch_and_heads),
        cmocka_unit_test(test_outputs_alias_inputs),
        cmocka_unit_test(test_outputs_alias_each_other),
        cmocka_unit_test(test_output_self_overlap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
