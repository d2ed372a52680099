/* Every dtype combination of q, k and v (f32, f16, bf16 each, independently) for all six
 * functions, against the oracle reading the same rounded inputs.
 *
 * Tolerances: ragged functions 1e-5 of max|expected| for every combination, since f16/bf16
 * inputs widen to f32 exactly and only f32 accumulation error remains. Reference functions
 * round to v's dtype twice (docs/design.md, "The reference arithmetic"), so one element can
 * move by one ulp of v's dtype: 1e-5 (f32 v), 2e-3 (f16 v), 1e-2 (bf16 v); see
 * test_reference.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "attn_case.h"

static const ra_dtype dtypes[3] = {RA_DTYPE_F32, RA_DTYPE_F16, RA_DTYPE_BF16};

static double tol_for(tc_fn fn, ra_dtype v)
{
    if (tc_fn_is_ragged(fn))
        return 1e-5;
    return v == RA_DTYPE_BF16 ? 1e-2 : v == RA_DTYPE_F16 ? 2e-3 : 1e-5;
}

static void combos_for(tc_fn fn)
{
    for (int qi = 0; qi < 3; qi++)
        for (int ki = 0; ki < 3; ki++)
            for (int vi = 0; vi < 3; vi++) {
                tc_params p = {.fn = fn, .B = 3, .Hq = 4, .S = 40, .D = 32,
                               .qdt = dtypes[qi], .kdt = dtypes[ki], .vdt = dtypes[vi],
                               .seed = (uint64_t)(2000 + fn * 100 + qi * 9 + ki * 3 + vi)};
                p.Hkv = tc_fn_is_mqa(fn) ? 1 : tc_fn_is_mha(fn) ? 4 : 2;
                tc_case c;
                tc_init(&c, &p);
                tc_opts o = {.block_size = 16};
                ra_status s = tc_run(&c, &o);
                if (s != RA_OK)
                    fail_msg("%s q=%s k=%s v=%s: %s (%s)", tc_fn_name(fn),
                             or_dtype_name(dtypes[qi]), or_dtype_name(dtypes[ki]),
                             or_dtype_name(dtypes[vi]), ra_status_string(s), ra_last_error());
                char key[80];
                snprintf(key, sizeof key, "%s q=%s k=%s v=%s",
                         tc_fn_is_ragged(fn) ? "ragged   " : "reference", or_dtype_name(dtypes[qi]),
                         or_dtype_name(dtypes[ki]), or_dtype_name(dtypes[vi]));
                tc_check(&c, tol_for(fn, dtypes[vi]), key);
                tc_free(&c);
            }
}

static void test_ragged_mqa(void **state)
{
    (void)state;
    combos_for(TC_RAGGED_MQA);
}

static void test_ragged_mha(void **state)
{
    (void)state;
    combos_for(TC_RAGGED_MHA);
}

static void test_ragged_gqa(void **state)
{
    (void)state;
    combos_for(TC_RAGGED_GQA);
}

static void test_reference_mqa(void **state)
{
    (void)state;
    combos_for(TC_REFERENCE_MQA);
}

static void test_reference_mha(void **state)
{
    (void)state;
    combos_for(TC_REFERENCE_MHA);
}

static void test_reference_gqa(void **state)
{
    (void)state;
    combos_for(TC_REFERENCE_GQA);
}

static int print_stats(void **state)
{
    (void)state;
    or_stat_print("largest o error per dtype combination (all functions of each kind)");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ragged_mqa),    cmocka_unit_test(test_ragged_mha),
        cmocka_unit_test(test_ragged_gqa),    cmocka_unit_test(test_reference_mqa),
        cmocka_unit_test(test_reference_mha), cmocka_unit_test(test_reference_gqa),
    };
    return cmocka_run_group_tests(tests, NULL, print_stats);
}
