/* "Results are bitwise identical for every thread count": 1, 2 and 3 threads give the same
 * bytes (memcmp) for every kernel, with and without split-KV, including single work items
 * (B * Hkv = 1) where the split is what spreads the work. Each result is also checked against
 * the oracle, so that agreeing garbage cannot pass. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"

typedef struct dcfg {
    tc_fn fn;
    int64_t B, Hq, Hkv, S, D;
    ra_dtype dt;
} dcfg;

/* Each shape carries a few million multiply-adds, so that the library really runs 2 and 3
 * threads (it gives calls under ~2^20 multiply-adds per thread fewer threads). */
static const dcfg configs[] = {
    {TC_RAGGED_GQA, 1, 8, 1, 3000, 64, RA_DTYPE_F32},
    {TC_RAGGED_GQA, 3, 8, 2, 1200, 128, RA_DTYPE_BF16},
    {TC_RAGGED_MQA, 2, 4, 1, 4000, 80, RA_DTYPE_F16},
    {TC_RAGGED_MHA, 1, 8, 8, 5000, 32, RA_DTYPE_F32},
    /* a batch whose q (2^18 elements) the team prepares, entry by entry (ra__plan_prepare_q) */
    {TC_RAGGED_GQA, 64, 32, 8, 24, 128, RA_DTYPE_BF16},
};

static const struct {
    int64_t block, split;
} opts_list[] = {{0, 0}, {16, 1}, {16, 7}, {64, 64}, {256, 100}};

static void check_kernel(ra_kernel k)
{
    if (!tc_kernel_available(k)) {
        assert_true(k == RA_KERNEL_AVX2 || k == RA_KERNEL_AVX512 || k == RA_KERNEL_NEON);
        print_message("note: kernel %s is not supported on this CPU/build; skipped\n",
                      ra_kernel_name(k));
        skip();
    }
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        if (!tc_sampled())
            continue;
        const dcfg *g = &configs[i];
        tc_params p = {.fn = g->fn, .B = g->B, .Hq = g->Hq, .Hkv = g->Hkv, .S = g->S,
                       .D = g->D, .qdt = g->dt, .kdt = g->dt, .vdt = g->dt,
                       .seed = 6000 + i};
        tc_case c;
        tc_init(&c, &p);
        size_t bh = (size_t)(g->B * g->Hq), bhd = bh * (size_t)g->D;
        float *o1 = malloc(sizeof(float) * bhd), *m1 = malloc(sizeof(float) * bh),
              *l1 = malloc(sizeof(float) * bh);
        assert_true(o1 && m1 && l1);
        for (size_t j = 0; j < sizeof opts_list / sizeof opts_list[0]; j++) {
            for (int threads = 1; threads <= 3; threads++) {
                tc_opts o = {.kernel = k, .block_size = opts_list[j].block,
                             .split_tokens = opts_list[j].split, .num_threads = threads};
                assert_int_equal(tc_run(&c, &o), RA_OK);
                if (threads == 1) {
                    tc_check(&c, 1e-5, NULL);
                    memcpy(o1, c.got_o, sizeof(float) * bhd);
                    memcpy(m1, c.got_m, sizeof(float) * bh);
                    memcpy(l1, c.got_l, sizeof(float) * bh);
                    continue;
                }
                if (memcmp(o1, c.got_o, sizeof(float) * bhd) != 0 ||
                    memcmp(m1, c.got_m, sizeof(float) * bh) != 0 ||
                    memcmp(l1, c.got_l, sizeof(float) * bh) != 0)
                    fail_msg("%s %s, config %zu, block %lld, split %lld: %d threads differ "
                             "from 1 thread",
                             ra_kernel_name(k), tc_fn_name(g->fn), i,
                             (long long)opts_list[j].block, (long long)opts_list[j].split,
                             threads);
            }
        }
        free(o1);
        free(m1);
        free(l1);
        tc_free(&c);
    }
}

static void test_blas(void **state)
{
    (void)state;
    check_kernel(RA_KERNEL_BLAS);
}

static void test_portable(void **state)
{
    (void)state;
    check_kernel(RA_KERNEL_PORTABLE);
}

static void test_avx2(void **state)
{
    (void)state;
    check_kernel(RA_KERNEL_AVX2);
}

static void test_avx512(void **state)
{
    (void)state;
    check_kernel(RA_KERNEL_AVX512);
}

static void test_neon(void **state)
{
    (void)state;
    check_kernel(RA_KERNEL_NEON);
}

/* The reference functions run in parallel too. */
static void test_reference_functions(void **state)
{
    (void)state;
    const tc_fn fns[3] = {TC_REFERENCE_MQA, TC_REFERENCE_MHA, TC_REFERENCE_GQA};
    for (int f = 0; f < 3; f++) {
        tc_params p = {.fn = fns[f], .B = 3, .Hq = 4, .S = 200, .D = 64, .seed = 6100,
                       .vdt = RA_DTYPE_BF16};
        p.Hkv = f == 0 ? 1 : f == 1 ? 4 : 2;
        tc_case c;
        tc_init(&c, &p);
        float o1[3 * 4 * 64];
        for (int threads = 1; threads <= 3; threads++) {
            tc_opts o = {.num_threads = threads};
            assert_int_equal(tc_run(&c, &o), RA_OK);
            if (threads == 1) {
                tc_check(&c, 1e-2, NULL);
                memcpy(o1, c.got_o, sizeof o1);
            } else {
                assert_memory_equal(o1, c.got_o, sizeof o1);
            }
        }
        tc_free(&c);
    }
}

/* Races show up only now and then: many repeats of small calls with 2 threads must all give
 * the 1-thread bytes. The BLAS kernel and the reference functions call cblas_sgemm from
 * inside the OpenMP region, so they are what this watches most. */
static int repeat_case(const tc_params *p, ra_kernel k, int reps)
{
    tc_case c;
    tc_init(&c, p);
    size_t bh = (size_t)(p->B * p->Hq), bhd = bh * (size_t)p->D;
    tc_opts one = {.kernel = k, .num_threads = 1, .block_size = 16};
    assert_int_equal(tc_run(&c, &one), RA_OK);
    tc_check(&c, tc_fn_is_ragged(p->fn) ? 1e-5 : 1e-2, NULL);
    float *o1 = malloc(sizeof(float) * bhd);
    assert_non_null(o1);
    memcpy(o1, c.got_o, sizeof(float) * bhd);
    int differ = 0;
    for (int i = 0; i < reps; i++) {
        tc_opts two = one;
        two.num_threads = 2;
        assert_int_equal(tc_run(&c, &two), RA_OK);
        differ += memcmp(o1, c.got_o, sizeof(float) * bhd) != 0;
    }
    free(o1);
    tc_free(&c);
    if (differ)
        print_error("%s (kernel %s): %d of %d two-thread calls differ from the one-thread "
                    "result\n",
                    tc_fn_name(p->fn), k ? ra_kernel_name(k) : "auto", differ, reps);
    return differ != 0;
}

static void test_repeated_calls_agree(void **state)
{
    (void)state;
    const tc_params rag = {.fn = TC_RAGGED_GQA, .B = 2, .Hq = 8, .Hkv = 2, .S = 45, .D = 24,
                           .seed = 6200, .layout = TC_LAYOUT_SWAPPED};
    const tc_params ref = {.fn = TC_REFERENCE_MHA, .B = 3, .Hq = 4, .Hkv = 4, .S = 8, .D = 4,
                           .seed = 6201};
    const tc_params ref_gqa = {.fn = TC_REFERENCE_GQA, .B = 3, .Hq = 4, .Hkv = 2, .S = 8,
                               .D = 4, .seed = 6202};
    int bad = repeat_case(&rag, RA_KERNEL_BLAS, 300) + repeat_case(&rag, RA_KERNEL_PORTABLE, 100) +
              repeat_case(&ref, RA_KERNEL_AUTO, 400) + repeat_case(&ref_gqa, RA_KERNEL_AUTO, 400);
    if (bad)
        fail_msg("%d of 4 repeated-call checks saw differing results (listed above)", bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blas),    cmocka_unit_test(test_portable),
        cmocka_unit_test(test_avx2),    cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_neon),
        cmocka_unit_test(test_reference_functions),
        cmocka_unit_test(test_repeated_calls_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
