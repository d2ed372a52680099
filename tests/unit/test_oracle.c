/* The test helpers themselves: conversions against known bit patterns and exhaustive
 * round trips, and the oracles on cases small enough to work out by hand. If these fail,
 * every other result in the suite is suspect. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <string.h>

#include "oracle.h"

#define ASSERT_NEAR(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

static void test_f16_known_values(void **state)
{
    (void)state;
    const struct {
        float x;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3C00},
        {-2.0f, 0xC000},
        {65504.0f, 0x7BFF},
        {65519.0f, 0x7BFF},             /* below the halfway point to 2^16 */
        {65520.0f, 0x7C00},             /* halfway rounds up to Inf */
        {1.0f / 3.0f, 0x3555},
        {0x1p-24f, 0x0001},             /* smallest subnormal */
        {0x1p-25f, 0x0000},             /* halfway to 0: ties to even */
        {0x1.8p-25f, 0x0001},           /* above halfway */
        {0x1.8p-24f, 0x0002},           /* 1.5 ulp: ties to even (2) */
        {0x1p-14f, 0x0400},             /* smallest normal */
        {0x1.ffep-15f, 0x0400},         /* subnormal that rounds up into the normals */
        {1.0f + 0x1p-11f, 0x3C00},      /* tie, even stays */
        {1.0f + 0x1.8p-10f, 0x3C02},    /* tie between 0x3C01 and 0x3C02: even */
        {INFINITY, 0x7C00},
        {-INFINITY, 0xFC00},
        {-0.0f, 0x8000},
        {1e-10f, 0x0000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = or_f32_to_f16(cases[i].x);
        if (got != cases[i].h)
            fail_msg("f16(%a) = 0x%04X, want 0x%04X", (double)cases[i].x, got, cases[i].h);
    }
    uint16_t nan = or_f32_to_f16(NAN);
    assert_true((nan & 0x7C00) == 0x7C00 && (nan & 0x03FF) != 0);
    assert_true(isnan(or_f16_to_f32(0x7E00)));
    assert_true(or_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(or_f16_to_f32(0x7BFF) == 65504.0f);
}

static void test_bf16_known_values(void **state)
{
    (void)state;
    const struct {
        float x;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3F80},
        {-1.0f, 0xBF80},
        {1.0f + 0x1p-8f, 0x3F80},   /* tie, even stays */
        {1.0f + 0x1.8p-7f, 0x3F82}, /* tie between 0x3F81 and 0x3F82: even */
        {1.0f + 0x1p-7f, 0x3F81},   /* exact */
        {FLT_MAX, 0x7F80},          /* past bf16's max: Inf */
        {INFINITY, 0x7F80},
        {0x1p-133f, 0x0001},        /* smallest bf16 subnormal */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = or_f32_to_bf16(cases[i].x);
        if (got != cases[i].h)
            fail_msg("bf16(%a) = 0x%04X, want 0x%04X", (double)cases[i].x, got, cases[i].h);
    }
    assert_true(isnan(or_bf16_to_f32(or_f32_to_bf16(NAN))));
}

/* Every non-NaN pattern survives a round trip, and random floats go to the nearest value. */
static void test_round_trips_and_nearest(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f16 = or_f16_to_f32((uint16_t)h), bf = or_bf16_to_f32((uint16_t)h);
        if (!isnan(f16))
            assert_int_equal(or_f32_to_f16(f16), h);
        if (!isnan(bf))
            assert_int_equal(or_f32_to_bf16(bf), h);
    }
    or_rng r = or_rng_seed(1);
    for (int i = 0; i < 20000; i++) {
        float x = (float)or_rng_uniform(&r, -70000.0, 70000.0) *
                  (float)ldexp(1.0, (int)or_rng_int(&r, -30, 0));
        for (int d = 0; d < 2; d++) {
            uint16_t h = d ? or_f32_to_bf16(x) : or_f32_to_f16(x);
            float y = d ? or_bf16_to_f32(h) : or_f16_to_f32(h);
            if (isinf(y))
                continue; /* overflow was checked with the known values */
            /* No neighbour of h (same sign) is strictly closer to x. */
            for (int step = -1; step <= 1; step += 2) {
                uint16_t n = (uint16_t)(h + step);
                if ((n & 0x7FFF) == 0x7FFF || ((h & 0x7FFF) == 0 && step < 0))
                    continue;
                float z = d ? or_bf16_to_f32(n) : or_f16_to_f32(n);
                if (isnan(z) || isinf(z))
                    continue;
                assert_true(fabs((double)z - x) >= fabs((double)y - x));
            }
        }
    }
}

/* q = 1, keys 0 and ln 2, values 2 and 4: m = ln 2, l = 1.5, o*l = 5. */
static void test_attention_by_hand(void **state)
{
    (void)state;
    int64_t qs[3] = {1, 1, 1}, ks[4] = {1, 3, 1, 1};
    or_buf q, k, v;
    or_buf_init(&q, RA_DTYPE_F32, 3, qs, NULL);
    or_buf_init(&k, RA_DTYPE_F32, 4, ks, NULL);
    or_buf_init(&v, RA_DTYPE_F32, 4, ks, NULL);
    int64_t i0[3] = {0, 0, 0};
    or_buf_set(&q, i0, 1.0);
    const double kv[3][2] = {{0.0, 2.0}, {0.6931471805599453, 4.0}, {NAN, NAN}};
    for (int64_t t = 0; t < 3; t++) {
        int64_t at[4] = {0, t, 0, 0};
        or_buf_set(&k, at, kv[t][0]);
        or_buf_set(&v, at, kv[t][1]);
    }
    or_view qv = or_view_of(&q, 0, 1, 2, -1), kvw = or_view_of(&k, 0, 1, 2, 3),
            vv = or_view_of(&v, 0, 1, 2, 3);
    or_dims d = {1, 1, 1, 3, 1};
    or_state s;
    or_state_alloc(&s, 1, 1, 1);
    const int32_t len2[1] = {2}, len0[1] = {0};
    or_attention(&d, &qv, &kvw, &vv, len2, 1.0, &s);
    ASSERT_NEAR(s.m[0], (float)0.6931471805599453, 1e-7);
    ASSERT_NEAR(s.l[0], 1.5, 1e-7);
    ASSERT_NEAR(s.o_un[0], 5.0, 1e-6);
    ASSERT_NEAR(s.o[0], 5.0 / 1.5, 1e-6);
    or_attention(&d, &qv, &kvw, &vv, len0, 1.0, &s);
    assert_true(s.m[0] == -INFINITY && s.l[0] == 0.0 && s.o[0] == 0.0 && s.o_un[0] == 0.0);

    /* The reference at length 0 (the NaN row at t = 2 replaced first): mean of v over S. */
    int64_t at[4] = {0, 2, 0, 0};
    or_buf_set(&k, at, 0.5);
    or_buf_set(&v, at, 6.0);
    or_reference(&d, &qv, &kvw, &vv, len0, 1.0f, -0.7f * FLT_MAX, &s);
    assert_true(s.m[0] == (double)(-0.7f * FLT_MAX));
    assert_true(s.l[0] == 3.0);
    ASSERT_NEAR(s.o[0], 4.0, 1e-12);
    /* And at length 2 with a mask of -ln 2 on t = 2: weights 0.5, 1, 0.5*e^-ln2... */
    or_reference(&d, &qv, &kvw, &vv, len2, 1.0f, 0.0f, &s); /* mask 0: plain softmax over 3 */
    double w0 = exp(0.0 - log(2.0)), w1 = 1.0, w2 = exp(0.5 - log(2.0));
    ASSERT_NEAR(s.l[0], w0 + w1 + w2, 1e-6);
    ASSERT_NEAR(s.o[0], (2 * w0 + 4 * w1 + 6 * w2) / (w0 + w1 + w2), 1e-5);
    or_state_free(&s);
    or_buf_free(&q);
    or_buf_free(&k);
    or_buf_free(&v);
}

/* Two parts (m 0, l 1, o*l 2) and (m ln 2, l 1, o*l 4), plus an empty one:
 * M = ln 2, L = 0.5 + 1, o = (0.5*2 + 4) / 1.5. */
static void test_merge_by_hand(void **state)
{
    (void)state;
    or_state p[3], out;
    for (int i = 0; i < 3; i++)
        or_state_alloc(&p[i], 1, 1, 1);
    p[0].m[0] = 0.0, p[0].l[0] = 1.0, p[0].o_un[0] = 2.0;
    p[1].m[0] = log(2.0), p[1].l[0] = 1.0, p[1].o_un[0] = 4.0;
    p[2].m[0] = -INFINITY, p[2].l[0] = 0.0, p[2].o_un[0] = 0.0;
    or_state_alloc(&out, 1, 1, 1);
    or_merge(3, p, &out);
    ASSERT_NEAR(out.m[0], log(2.0), 1e-12);
    ASSERT_NEAR(out.l[0], 1.5, 1e-12);
    ASSERT_NEAR(out.o[0], 5.0 / 1.5, 1e-12);
    or_merge(1, &p[2], &out);
    assert_true(out.m[0] == -INFINITY && out.l[0] == 0.0 && out.o[0] == 0.0);
    for (int i = 0; i < 3; i++)
        or_state_free(&p[i]);
    or_state_free(&out);
}

static void test_compare_and_names(void **state)
{
    (void)state;
    const double want[4] = {1.0, -2.0, NAN, -INFINITY};
    const float same[4] = {1.0f, -2.0f, NAN, -INFINITY};
    or_err e = or_compare(same, want, 4);
    assert_true(e.rel == 0.0 && e.nonfinite == 0);
    const float off[4] = {1.0f, -2.002f, NAN, -INFINITY};
    e = or_compare(off, want, 4);
    ASSERT_NEAR(e.rel, 0.001, 1e-6);
    const float bad[4] = {1.0f, -2.0f, 0.0f, -INFINITY};
    assert_int_equal(or_compare(bad, want, 4).nonfinite, 1);
    const float nan_got[4] = {NAN, -2.0f, NAN, -INFINITY};
    assert_int_equal(or_compare(nan_got, want, 4).nonfinite, 1);

    assert_true(or_msg_names("ra_ragged_gqa: q has dtype i32", "q"));
    assert_true(or_msg_names("lengths[2] = 9 > S", "lengths"));
    assert_false(or_msg_names("a required argument", "q"));
    assert_false(or_msg_names("o_out is NULL", "o"));
    assert_true(or_msg_names("o_out is NULL", "o_out"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_known_values),  cmocka_unit_test(test_bf16_known_values),
        cmocka_unit_test(test_round_trips_and_nearest), cmocka_unit_test(test_attention_by_hand),
        cmocka_unit_test(test_merge_by_hand),     cmocka_unit_test(test_compare_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
