/* Strided views (docs/design.md, "Edge cases": any layout of the logical shape works without
 * a copy): swapped K/V axes, padded rows on every input and output, and broadcast (stride 0)
 * inputs, for all six functions. Padding is filled with NaN, so reading it shows;
 * padding of the outputs must keep its sentinel. Tolerances as in test_dtypes.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "attn_case.h"

static double tol_for(tc_fn fn, ra_dtype v)
{
    if (tc_fn_is_ragged(fn))
        return 1e-5;
    return v == RA_DTYPE_BF16 ? 1e-2 : v == RA_DTYPE_F16 ? 2e-3 : 1e-5;
}

static const char *layout_name(tc_layout l)
{
    return l == TC_LAYOUT_SWAPPED ? "swapped K/V axes"
           : l == TC_LAYOUT_PADDED ? "padded strides"
           : l == TC_LAYOUT_BROADCAST ? "broadcast (stride 0)"
                                      : "native";
}

static void run_layout(tc_fn fn, tc_layout layout, ra_dtype dt, uint64_t seed)
{
    tc_params p = {.fn = fn, .B = 3, .Hq = 4, .S = 37, .D = 24, .layout = layout,
                   .qdt = dt, .kdt = dt, .vdt = dt, .seed = seed};
    p.Hkv = tc_fn_is_mqa(fn) ? 1 : tc_fn_is_mha(fn) ? 4 : 2;
    tc_case c;
    tc_init(&c, &p);
    tc_opts o = {.block_size = 8};
    ra_status s = tc_run(&c, &o);
    if (s != RA_OK)
        fail_msg("%s with %s: %s (%s)", tc_fn_name(fn), layout_name(layout), ra_status_string(s),
                 ra_last_error());
    char key[80];
    snprintf(key, sizeof key, "%s, %s", layout_name(layout), or_dtype_name(dt));
    tc_check(&c, tol_for(fn, dt), key);
    tc_free(&c);
}

static void test_all_layouts(void **state)
{
    (void)state;
    const tc_layout layouts[3] = {TC_LAYOUT_SWAPPED, TC_LAYOUT_PADDED, TC_LAYOUT_BROADCAST};
    const ra_dtype dts[3] = {RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16};
    for (int fn = 0; fn < TC_FN_COUNT; fn++)
        for (int l = 0; l < 3; l++)
            for (int d = 0; d < 3; d++)
                run_layout((tc_fn)fn, layouts[l], dts[d], (uint64_t)(3000 + fn * 10 + l * 3 + d));
}

/* The case docs/design.md names ("Edge cases", strides): a [B,Hkv,S,D] cache (reference_gqa's
 * layout) passed to ra_ragged_gqa as a view of [B,S,Hkv,D], and the other way round for
 * ra_reference_gqa. */
static void test_head_major_cache_for_ragged_gqa(void **state)
{
    (void)state;
    const int64_t B = 2, Hq = 8, Hkv = 2, S = 300, D = 128;
    const tc_fn fns[2] = {TC_RAGGED_GQA, TC_REFERENCE_GQA};
    for (int i = 0; i < 2; i++) {
        for (int d = 0; d < 2; d++) {
            ra_dtype dt = d ? RA_DTYPE_BF16 : RA_DTYPE_F32;
            tc_params p = {.fn = fns[i], .B = B, .Hq = Hq, .Hkv = Hkv, .S = S, .D = D,
                           .layout = TC_LAYOUT_SWAPPED, .kdt = dt, .vdt = dt, .seed = 3100 + d};
            tc_case c;
            tc_init(&c, &p);
            if (fns[i] == TC_RAGGED_GQA) { /* a [B,S,Hkv,D] view of [B,Hkv,S,D] memory */
                assert_int_equal(c.k.strides[1], D);
                assert_int_equal(c.k.strides[2], S * D);
            } else { /* a [B,Hkv,S,D] view of [B,S,Hkv,D] memory */
                assert_int_equal(c.k.strides[1], D);
                assert_int_equal(c.k.strides[2], Hkv * D);
            }
            tc_opts o = {.block_size = 64};
            assert_int_equal(tc_run(&c, &o), RA_OK);
            tc_check(&c, tol_for(fns[i], dt), "head-major cache view");
            tc_free(&c);
        }
    }
}

static int print_stats(void **state)
{
    (void)state;
    or_stat_print("strided layouts vs the double oracle");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_layouts),
        cmocka_unit_test(test_head_major_cache_for_ragged_gqa),
    };
    return cmocka_run_group_tests(tests, NULL, print_stats);
}
