/* The ragged functions (ra_ragged_mqa/mha/gqa) against the double-precision oracle, on
 * MaxText's test shapes and on the edge cases of docs/design.md, "Edge cases". The edge cases
 * whose contract the reference functions share (block sizes, D, scale, large logits, NaN) run
 * on all six.
 *
 * Tolerance: 1e-5 of max|expected|. The functions read f16/bf16 inputs exactly into f32 and
 * the oracle reads the same rounded values, so what is left is f32 accumulation error:
 * about sqrt(D) * 2^-24 relative on each logit (under 1e-6 for |logit| <~ 20 and D <= 256)
 * and a few ulp in the sums of at most S = 512 positions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"

#define TOL 1e-5

static const tc_fn ragged_fns[3] = {TC_RAGGED_MQA, TC_RAGGED_MHA, TC_RAGGED_GQA};

/* The KV heads fn takes, given a GQA-style choice: 1 for MQA, Hq for MHA. */
static int64_t kv_heads(tc_fn fn, int64_t Hq, int64_t Hkv)
{
    return tc_fn_is_mqa(fn) ? 1 : tc_fn_is_mha(fn) ? Hq : Hkv;
}

/* Runs p with o and checks it against the oracle. */
static void run_and_check(const tc_params *p, const tc_opts *o, const char *stat_key)
{
    if (!tc_sampled())
        return;
    tc_case c;
    tc_init(&c, p);
    ra_status s = tc_run(&c, o);
    if (s != RA_OK)
        fail_msg("%s: %s (%s)", tc_fn_name(p->fn), ra_status_string(s), ra_last_error());
    tc_check(&c, TOL, stat_key);
    tc_free(&c);
}

/* MaxText's ragged_attention_test: B=4, S=512, D=128, block 256 with (Hq,Hkv) = (1,1),
 * (32,32), (32,8), and B=2, S=32, D=32, block 16 with (4,4), (4,2). Lengths in [1, S-1]. */
static void test_maxtext_shapes(void **state)
{
    (void)state;
    const struct {
        int64_t B, S, D, block, Hq, Hkv;
    } shapes[] = {{4, 512, 128, 256, 1, 1},  {4, 512, 128, 256, 32, 32},
                  {4, 512, 128, 256, 32, 8}, {2, 32, 32, 16, 4, 4},
                  {2, 32, 32, 16, 4, 2}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        for (int f = 0; f < 3; f++) {
            tc_fn fn = ragged_fns[f];
            int64_t Hkv = shapes[i].Hkv;
            if (fn == TC_RAGGED_MQA && Hkv != shapes[i].Hq)
                continue;
            if (fn == TC_RAGGED_MQA)
                Hkv = 1; /* MaxText's MQA test: the same Hq over one KV head */
            if (fn == TC_RAGGED_MHA && shapes[i].Hq != Hkv)
                continue;
            tc_params p = {.fn = fn, .B = shapes[i].B, .Hq = shapes[i].Hq, .Hkv = Hkv,
                           .S = shapes[i].S, .D = shapes[i].D, .seed = 100 + i};
            tc_opts o = {.block_size = shapes[i].block};
            run_and_check(&p, &o, "maxtext shapes, f32");
            p.qdt = p.kdt = p.vdt = RA_DTYPE_BF16;
            p.seed += 50;
            run_and_check(&p, &o, "maxtext shapes, bf16");
        }
    }
}

/* lengths 0, 1, block-1, block, block+1, S-1, S with S not a multiple of the block, a multiple
 * of it, equal to it and smaller than it. */
static void test_edge_lengths(void **state)
{
    (void)state;
    const struct {
        int64_t S, block;
    } cfg[] = {{50, 16}, {48, 16}, {50, 50}, {50, 64}, {50, 7}, {50, 1}, {3, 256}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        int64_t S = cfg[i].S, bs = cfg[i].block;
        int32_t lens[7] = {0, 1, (int32_t)(bs - 1), (int32_t)bs, (int32_t)(bs + 1),
                           (int32_t)(S - 1), (int32_t)S};
        for (int b = 0; b < 7; b++) /* clamp the block-relative ones into [0, S] */
            lens[b] = lens[b] > S ? (int32_t)S : lens[b];
        for (int f = 0; f < TC_FN_COUNT; f++) {
            tc_fn fn = (tc_fn)f;
            tc_params p = {.fn = fn, .B = 7, .Hq = 4, .Hkv = kv_heads(fn, 4, 2), .S = S,
                           .D = 32, .lengths = lens, .seed = 200 + i};
            tc_opts o = {.block_size = bs};
            run_and_check(&p, &o, "edge lengths");
        }
    }
}

static void test_empty_sequences(void **state)
{
    (void)state;
    const int32_t zeros[3] = {0, 0, 0};
    for (int f = 0; f < 3; f++) {
        tc_fn fn = ragged_fns[f];
        const int64_t Ss[2] = {0, 20}; /* an empty cache, and a full one that is not used */
        for (int i = 0; i < 2; i++) {
            tc_params p = {.fn = fn, .B = 3, .Hq = 2, .Hkv = kv_heads(fn, 2, 1), .S = Ss[i],
                           .D = 16, .lengths = zeros, .seed = 300};
            run_and_check(&p, NULL, NULL);
        }
    }
}

static void test_head_dims(void **state)
{
    (void)state;
    const int64_t dims[5] = {16, 64, 80, 128, 256};
    for (int i = 0; i < 5; i++) {
        for (int f = 0; f < TC_FN_COUNT; f++) {
            tc_fn fn = (tc_fn)f;
            tc_params p = {.fn = fn, .B = 2, .Hq = 4, .Hkv = kv_heads(fn, 4, 2), .S = 70,
                           .D = dims[i], .seed = 400 + i};
            tc_opts o = {.block_size = 32};
            char key[48];
            snprintf(key, sizeof key, "head dim D=%lld", (long long)dims[i]);
            run_and_check(&p, &o, key);
        }
    }
}

/* MQA is GQA with one KV head: both entry points, same data, same answer. */
static void test_mqa_through_gqa(void **state)
{
    (void)state;
    tc_params p = {.fn = TC_RAGGED_MQA, .B = 3, .Hq = 8, .Hkv = 1, .S = 90, .D = 64,
                   .seed = 500};
    tc_opts o = {.block_size = 32};
    tc_case mqa, gqa;
    tc_init(&mqa, &p);
    p.fn = TC_RAGGED_GQA;
    tc_init(&gqa, &p); /* the same seed fills the same logical values */
    assert_int_equal(tc_run(&mqa, &o), RA_OK);
    assert_int_equal(tc_run(&gqa, &o), RA_OK);
    tc_check(&mqa, TOL, NULL);
    tc_check(&gqa, TOL, NULL);
    int64_t BH = 3 * 8, D = 64;
    float *norm = calloc((size_t)(BH * D), sizeof(float));
    assert_non_null(norm);
    for (int64_t bh = 0; bh < BH; bh++)
        for (int64_t x = 0; x < D; x++)
            norm[bh * D + x] = gqa.got_o[bh * D + x] / gqa.got_l[bh];
    or_err e = or_compare_f32(norm, mqa.got_o, BH * D);
    assert_true(e.rel <= TOL && e.nonfinite == 0);
    e = or_compare_f32(gqa.got_m, mqa.got_m, BH);
    assert_true(e.rel <= TOL && e.nonfinite == 0);
    e = or_compare_f32(gqa.got_l, mqa.got_l, BH);
    assert_true(e.rel <= TOL && e.nonfinite == 0);
    free(norm);
    tc_free(&mqa);
    tc_free(&gqa);
}

static void test_scale(void **state)
{
    (void)state;
    const float scales[3] = {0.125f, -1.75f, 3.0f};
    for (int i = 0; i < 3; i++) {
        for (int f = 0; f < TC_FN_COUNT; f++) {
            tc_fn fn = (tc_fn)f;
            tc_params p = {.fn = fn, .B = 3, .Hq = 4, .Hkv = kv_heads(fn, 4, 2), .S = 40,
                           .D = 32, .scale = scales[i], .seed = 600 + i};
            tc_opts o = {.block_size = 16};
            run_and_check(&p, &o, "scale != 1");
        }
    }
}

/* Logits of magnitude ~1e3 built from small integers, so every partial dot product is exact
 * in f32 whatever the summation order: exp(1000) overflows and exp(-1000) underflows unless
 * the max is subtracted first. all_negative makes every logit negative, some hundreds. */
static void large_logits(tc_fn fn, bool all_negative, float scale)
{
    int64_t B = 2, Hq = 4, S = 40, D = 64;
    int64_t Hkv = kv_heads(fn, Hq, 2);
    tc_params p = {.fn = fn, .B = B, .Hq = Hq, .Hkv = Hkv, .S = S, .D = D, .seed = 700,
                   .kdt = RA_DTYPE_BF16, .scale = scale};
    tc_case c;
    tc_init(&c, &p);
    or_rng r = or_rng_seed(701);
    for (int64_t b = 0; b < B; b++) {
        double sgn[64];
        for (int64_t x = 0; x < D; x++)
            sgn[x] = (or_rng_next(&r) & 1) ? 1.0 : -1.0;
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t x = 0; x < D; x++)
                tc_set_q(&c, b, h, x, sgn[x] * (h % 2 ? 3.0 : 4.0));
        for (int64_t t = 0; t < c.lengths[b]; t++) {
            double st = all_negative || (or_rng_next(&r) & 1) ? -1.0 : 1.0;
            for (int64_t j = 0; j < Hkv; j++)
                for (int64_t x = 0; x < D; x++)
                    tc_set_k(&c, b, t, j, x, sgn[x] * st * (double)or_rng_int(&r, 1, 4));
        }
    }
    tc_expect(&c);
    double mmax = 0;
    for (int64_t i = 0; i < B * Hq; i++)
        if (isfinite(c.expect.m[i]) && fabs(c.expect.m[i]) > mmax)
            mmax = fabs(c.expect.m[i]);
    if (!(mmax > 200.0)) /* the construction really makes logits far past exp's f32 range (88) */
        fail_msg("%s: largest |m| is only %g", tc_fn_name(fn), mmax);
    tc_opts o = {.block_size = 16};
    assert_int_equal(tc_run(&c, &o), RA_OK);
    tc_check(&c, TOL, "large logits (exact integer logits)");
    tc_free(&c);
}

static void test_large_logits(void **state)
{
    (void)state;
    for (int f = 0; f < TC_FN_COUNT; f++) {
        large_logits((tc_fn)f, false, 1.0f);
        large_logits((tc_fn)f, true, 1.0f);
        large_logits((tc_fn)f, false, 0.5f);
    }
}

/* The heads whose expected m or l is finite must match; the rest must not crash. o is compared
 * everywhere, NaN against NaN. Prints what differs and returns false. */
static bool check_heads(const tc_case *c, const char *what)
{
    tc_errs e = tc_compare(c);
    if (e.o.nonfinite || e.o.rel > TOL) {
        print_error("%s %s: o rel err %.3e, %lld non-finite mismatches (last at element %lld)\n",
                    tc_fn_name(c->p.fn), what, e.o.rel, (long long)e.o.nonfinite,
                    (long long)e.o.worst);
        return false;
    }
    for (int64_t bh = 0; bh < c->d.B * c->d.Hq; bh++) {
        if (!isfinite(c->expect.m[bh]) || !isfinite(c->expect.l[bh]))
            continue;
        double dm = fabs(c->got_m[bh] - c->expect.m[bh]);
        double dl = fabs(c->got_l[bh] - c->expect.l[bh]) / c->expect.l[bh];
        if (!(dm <= TOL * fmax(1.0, fabs(c->expect.m[bh])) && dl <= TOL)) {
            print_error("%s %s: head %lld m %g vs %g, l %g vs %g\n", tc_fn_name(c->p.fn), what,
                        (long long)bh, (double)c->got_m[bh], c->expect.m[bh],
                        (double)c->got_l[bh], c->expect.l[bh]);
            return false;
        }
    }
    return true;
}

/* Every kernel: a NaN must reach the output of its own head whichever kernel runs. */
static int nan_case(tc_fn fn, ra_kernel kernel)
{
    const int32_t lens[3] = {20, 25, 10};
    tc_params p = {.fn = fn, .B = 3, .Hq = 4, .Hkv = kv_heads(fn, 4, 2), .S = 30, .D = 16,
                   .lengths = lens, .seed = 800};
    char what[64];
    snprintf(what, sizeof what, "(kernel %s) with NaN inputs",
             kernel ? ra_kernel_name(kernel) : "auto");
    tc_case c;
    tc_init(&c, &p);
    tc_set_q(&c, 0, 1, 3, NAN);            /* head (0,1): every logit NaN */
    tc_set_k(&c, 1, 5, 1 % p.Hkv, 2, NAN); /* the heads of KV head 1 (or 0) in b = 1 */
    tc_set_v(&c, 2, 4, 0, 7, NAN);         /* column 7 of the heads of KV head 0 in b = 2 */
    tc_expect(&c);
    int64_t nan_rows = 0;
    for (int64_t bh = 0; bh < 12; bh++)
        nan_rows += isnan(c.expect.o_un[bh * 16]);
    assert_true(nan_rows >= 2 && nan_rows < 12);
    tc_opts o = {.kernel = kernel, .block_size = 8};
    assert_int_equal(tc_run(&c, &o), RA_OK);
    int failures = !check_heads(&c, what);
    tc_free(&c);

    /* Inf in one valid key: whatever that head gets, the others are exact. */
    snprintf(what, sizeof what, "(kernel %s) with an Inf key",
             kernel ? ra_kernel_name(kernel) : "auto");
    tc_init(&c, &p);
    tc_set_k(&c, 0, 2, 0, 0, INFINITY);
    tc_expect(&c);
    assert_int_equal(tc_run(&c, &o), RA_OK);
    int64_t group = p.Hq / p.Hkv;
    for (int64_t h = 0; h < group; h++) /* the heads reading KV head 0 of b = 0 */
        for (int64_t x = 0; x < 16; x++)
            c.expect.o_un[h * 16 + x] = c.expect.o[h * 16 + x] = c.got_o[h * 16 + x];
    failures += !check_heads(&c, what);
    tc_free(&c);
    return failures;
}

static void test_nan_stays_in_its_head(void **state)
{
    (void)state;
    int failures = 0, cases = 0;
    for (int f = 0; f < TC_FN_COUNT; f++) {
        failures += nan_case((tc_fn)f, RA_KERNEL_AUTO);
        cases += 2;
        if (!tc_fn_is_ragged((tc_fn)f))
            continue;
        for (int k = RA_KERNEL_BLAS; k <= RA_KERNEL_NEON; k++)
            if (tc_kernel_available((ra_kernel)k)) {
                failures += nan_case((tc_fn)f, (ra_kernel)k);
                cases += 2;
            }
    }
    if (failures)
        fail_msg("%d of %d NaN/Inf cases went wrong (listed above)", failures, cases);
}

static int print_stats(void **state)
{
    (void)state;
    or_stat_print("attention functions vs the double oracle");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxtext_shapes),    cmocka_unit_test(test_edge_lengths),
        cmocka_unit_test(test_empty_sequences),   cmocka_unit_test(test_head_dims),
        cmocka_unit_test(test_mqa_through_gqa),   cmocka_unit_test(test_scale),
        cmocka_unit_test(test_large_logits),      cmocka_unit_test(test_nan_stays_in_its_head),
    };
    return cmocka_run_group_tests(tests, NULL, print_stats);
}
