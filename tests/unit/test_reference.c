/* The reference functions (ra_reference_mqa/mha/gqa): the seed's arithmetic (docs/design.md,
 * "The reference arithmetic"), its length-0 result, the mask value, and agreement with the
 * ragged functions where lengths >= 1 (docs/design.md, "Edge cases").
 *
 * Tolerances: 1e-5 of max|expected| with f32 v. With f16/bf16 v the seed rounds twice to v's
 * dtype (probabilities, then the PV sum); the library's f32 sums and the oracle's double sums
 * can land on either side of a rounding boundary, which moves one element by one ulp of v's
 * dtype: 2^-10 (f16) or 2^-7 (bf16) of that element, at most. Allowed: 2e-3 and 1e-2. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"

static const tc_fn ref_fns[3] = {TC_REFERENCE_MQA, TC_REFERENCE_MHA, TC_REFERENCE_GQA};

static double tol_for(ra_dtype v)
{
    return v == RA_DTYPE_BF16 ? 1e-2 : v == RA_DTYPE_F16 ? 2e-3 : 1e-5;
}

static void run_and_check(const tc_params *p, const tc_opts *o, const char *stat_key)
{
    if (!tc_sampled())
        return;
    tc_case c;
    tc_init(&c, p);
    ra_status s = tc_run(&c, o);
    if (s != RA_OK)
        fail_msg("%s: %s (%s)", tc_fn_name(p->fn), ra_status_string(s), ra_last_error());
    tc_check(&c, tol_for(p->vdt), stat_key);
    tc_free(&c);
}

static void test_maxtext_shapes(void **state)
{
    (void)state;
    const struct {
        int64_t B, S, D, Hq, Hkv;
    } shapes[] = {{4, 512, 128, 1, 1}, {4, 512, 128, 32, 32}, {4, 512, 128, 32, 8},
                  {2, 32, 32, 4, 4},   {2, 32, 32, 4, 2}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        for (int f = 0; f < 3; f++) {
            tc_fn fn = ref_fns[f];
            int64_t Hkv = shapes[i].Hkv;
            if (fn == TC_REFERENCE_MQA && Hkv != shapes[i].Hq)
                continue;
            if (fn == TC_REFERENCE_MQA)
                Hkv = 1;
            if (fn == TC_REFERENCE_MHA && shapes[i].Hq != Hkv)
                continue;
            tc_params p = {.fn = fn, .B = shapes[i].B, .Hq = shapes[i].Hq, .Hkv = Hkv,
                           .S = shapes[i].S, .D = shapes[i].D, .seed = 1000 + i};
            run_and_check(&p, NULL, "reference maxtext shapes, f32");
            p.qdt = p.kdt = p.vdt = RA_DTYPE_BF16;
            p.seed += 50;
            run_and_check(&p, NULL, "reference maxtext shapes, bf16");
        }
    }
}

/* lengths[b] == 0: the seed's softmax over S equal masked logits, i.e. the mean of v over all S
 * positions, m == mask_value exactly (|logit| is far below half an ulp of 2.4e38) and l == S.
 * Checked here directly, without the oracle. */
static void test_length_zero_is_mean_of_v(void **state)
{
    (void)state;
    const int32_t lens[3] = {0, 5, 0};
    for (int f = 0; f < 3; f++) {
        tc_fn fn = ref_fns[f];
        int64_t Hq = 4, Hkv = fn == TC_REFERENCE_MQA ? 1 : fn == TC_REFERENCE_MHA ? 4 : 2;
        int64_t S = 12, D = 8;
        tc_params p = {.fn = fn, .B = 3, .Hq = Hq, .Hkv = Hkv, .S = S, .D = D,
                       .lengths = lens, .seed = 1100};
        tc_case c;
        tc_init(&c, &p);
        assert_int_equal(tc_run(&c, NULL), RA_OK);
        tc_check(&c, 1e-5, NULL);
        for (int b = 0; b < 3; b += 2) {
            for (int64_t h = 0; h < Hq; h++) {
                int64_t bh = b * Hq + h, j = h / (Hq / Hkv);
                assert_true(c.got_m[bh] == -0.7f * FLT_MAX);
                assert_true(c.got_l[bh] == (float)S);
                for (int64_t x = 0; x < D; x++) {
                    double mean = 0;
                    for (int64_t t = 0; t < S; t++)
                        mean += or_view_get(&c.vv, b, t, j, x);
                    mean /= (double)S;
                    if (!(fabs(c.got_o[bh * D + x] - mean) <= 1e-6))
                        fail_msg("%s b=%d h=%lld: o[%lld] = %.9g, mean of v = %.9g",
                                 tc_fn_name(fn), b, (long long)h, (long long)x,
                                 (double)c.got_o[bh * D + x], mean);
                }
            }
        }
        tc_free(&c);
    }
}

/* A small mask value leaves weight on the masked positions; the reference must add it, not
 * drop them. */
static void test_mask_value_is_added(void **state)
{
    (void)state;
    const float masks[3] = {-3.0f, -0.5f, -1e4f};
    for (int i = 0; i < 3; i++) {
        for (int f = 0; f < 3; f++) {
            tc_fn fn = ref_fns[f];
            tc_params p = {.fn = fn, .B = 3, .Hq = 4, .S = 24, .D = 16, .mask_value = masks[i],
                           .seed = 1200 + i};
            p.Hkv = fn == TC_REFERENCE_MQA ? 1 : fn == TC_REFERENCE_MHA ? 4 : 2;
            run_and_check(&p, NULL, "reference, custom mask_value");
        }
    }
    /* And the weight really is there: with mask -0.5, l exceeds the l over valid keys. */
    const int32_t lens[1] = {4};
    tc_params p = {.fn = TC_REFERENCE_GQA, .B = 1, .Hq = 2, .Hkv = 1, .S = 24, .D = 16,
                   .mask_value = -0.5f, .lengths = lens, .seed = 1203};
    tc_case c;
    tc_init(&c, &p);
    assert_int_equal(tc_run(&c, NULL), RA_OK);
    or_state valid;
    or_state_alloc(&valid, 1, 2, 16);
    or_attention(&c.d, &c.qv, &c.kv, &c.vv, c.lengths, 1.0, &valid);
    for (int h = 0; h < 2; h++) {
        double l_valid_at_m = valid.l[h] * exp(valid.m[h] - c.got_m[h]);
        assert_true(c.got_l[h] > l_valid_at_m * 1.01);
    }
    or_state_free(&valid);
    tc_free(&c);
}

/* Copies the inputs of `from` (any function) into `to` for positions t < lengths[b], so that
 * both see the same valid keys whatever their layouts. */
static void copy_valid_inputs(tc_case *to, const tc_case *from)
{
    for (int64_t b = 0; b < to->d.B; b++) {
        for (int64_t h = 0; h < to->d.Hq; h++)
            for (int64_t x = 0; x < to->d.D; x++)
                tc_set_q(to, b, h, x, or_view_get(&from->qv, b, h, x, 0));
        for (int64_t t = 0; t < from->lengths[b]; t++)
            for (int64_t j = 0; j < to->d.Hkv; j++)
                for (int64_t x = 0; x < to->d.D; x++) {
                    tc_set_k(to, b, t, j, x, or_view_get(&from->kv, b, t, j, x));
                    tc_set_v(to, b, t, j, x, or_view_get(&from->vv, b, t, j, x));
                }
    }
    tc_expect(to);
}

/* Where lengths[b] >= 1, ragged and reference agree (f32 v, default mask; docs/design.md,
 * "The reference arithmetic"). */
static void test_agrees_with_ragged(void **state)
{
    (void)state;
    const tc_fn pairs[3][2] = {{TC_RAGGED_MQA, TC_REFERENCE_MQA},
                               {TC_RAGGED_MHA, TC_REFERENCE_MHA},
                               {TC_RAGGED_GQA, TC_REFERENCE_GQA}};
    for (int i = 0; i < 3; i++) {
        int64_t Hkv = i == 0 ? 1 : i == 1 ? 8 : 2;
        tc_params p = {.fn = pairs[i][0], .B = 4, .Hq = 8, .Hkv = Hkv, .S = 100, .D = 64,
                       .seed = 1300 + i};
        tc_case rag, ref;
        tc_init(&rag, &p);
        p.fn = pairs[i][1];
        p.seed += 7;
        tc_init(&ref, &p);
        memcpy(ref.lengths, rag.lengths, sizeof(int32_t) * 4);
        for (int64_t b = 0; b < 4; b++)
            or_buf_set(&ref.len, &b, rag.lengths[b]);
        copy_valid_inputs(&ref, &rag);
        tc_opts o = {.block_size = 32};
        assert_int_equal(tc_run(&rag, &o), RA_OK);
        assert_int_equal(tc_run(&ref, &o), RA_OK);
        tc_check(&rag, 1e-5, NULL);
        tc_check(&ref, 1e-5, NULL);
        int64_t BH = 4 * 8, D = 64;
        float *o_rag = calloc((size_t)(BH * D), sizeof(float));
        assert_non_null(o_rag);
        bool normalized = pairs[i][0] == TC_RAGGED_MQA;
        for (int64_t bh = 0; bh < BH; bh++)
            for (int64_t x = 0; x < D; x++)
                o_rag[bh * D + x] = rag.got_o[bh * D + x] / (normalized ? 1.0f : rag.got_l[bh]);
        or_err e = or_compare_f32(ref.got_o, o_rag, BH * D);
        if (e.nonfinite || e.rel > 1e-5)
            fail_msg("%s vs %s: o differs by %.3e", tc_fn_name(pairs[i][0]),
                     tc_fn_name(pairs[i][1]), e.rel);
        or_stat_note("reference vs ragged, f32", e.rel);
        e = or_compare_f32(ref.got_m, rag.got_m, BH);
        assert_true(e.nonfinite == 0 && e.rel <= 1e-5);
        e = or_compare_f32(ref.got_l, rag.got_l, BH);
        assert_true(e.nonfinite == 0 && e.rel <= 1e-5);
        free(o_rag);
        tc_free(&rag);
        tc_free(&ref);
    }
}

static int print_stats(void **state)
{
    (void)state;
    or_stat_print("reference functions vs the double oracle");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxtext_shapes),
        cmocka_unit_test(test_length_zero_is_mean_of_v),
        cmocka_unit_test(test_mask_value_is_added),
        cmocka_unit_test(test_agrees_with_ragged),
    };
    return cmocka_run_group_tests(tests, NULL, print_stats);
}
