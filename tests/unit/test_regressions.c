/* Regressions found by review: each test pins one fixed defect. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "raggedattn.h"

enum { B = 3, S = 8, H = 2, D = 20 };

static float q[B * H * D], k[B * S * H * D], v[B * S * H * D];
static int32_t len[B] = {0, 8, 5};

static void fill(void)
{
    uint32_t x = 12345;
    float *arrs[] = {q, k, v};
    size_t ns[] = {B * H * D, B * S * H * D, B * S * H * D};
    for (int a = 0; a < 3; a++)
        for (size_t i = 0; i < ns[a]; i++) {
            x = x * 1664525u + 1013904223u;
            arrs[a][i] = (float)(x >> 8) / (float)(1u << 24) - 0.5f;
        }
}

/* ra_ragged_mha with the given kernel and split; o*l, m, l out. */
static ra_status run_mha(ra_kernel kern, int64_t split, int threads, float *o, float *m, float *l)
{
    int64_t qs[] = {B, 1, H, D}, kvs[] = {B, S, H, D}, ls[] = {B}, mls[] = {B, 1, H, 1};
    ra_tensor *tq, *tk, *tv, *tl, *to, *tm, *tlo;
    assert_int_equal(ra_tensor_wrap(&tq, RA_DTYPE_F32, 4, qs, NULL, q), RA_OK);
    assert_int_equal(ra_tensor_wrap(&tk, RA_DTYPE_F32, 4, kvs, NULL, k), RA_OK);
    assert_int_equal(ra_tensor_wrap(&tv, RA_DTYPE_F32, 4, kvs, NULL, v), RA_OK);
    assert_int_equal(ra_tensor_wrap(&tl, RA_DTYPE_I32, 1, ls, NULL, len), RA_OK);
    assert_int_equal(ra_tensor_wrap(&to, RA_DTYPE_F32, 4, qs, NULL, o), RA_OK);
    assert_int_equal(ra_tensor_wrap(&tm, RA_DTYPE_F32, 4, mls, NULL, m), RA_OK);
    assert_int_equal(ra_tensor_wrap(&tlo, RA_DTYPE_F32, 4, mls, NULL, l), RA_OK);
    ra_options *op;
    assert_int_equal(ra_options_create(&op), RA_OK);
    ra_status st = ra_options_set_kernel(op, kern);
    if (st == RA_OK) {
        assert_int_equal(ra_options_set_split_tokens(op, split), RA_OK);
        assert_int_equal(ra_options_set_num_threads(op, threads), RA_OK);
        st = ra_ragged_mha(op, tq, tk, tv, tl, to, tm, tlo);
    }
    ra_options_destroy(op);
    ra_tensor *all[] = {tq, tk, tv, tl, to, tm, tlo};
    for (int i = 0; i < 7; i++)
        ra_tensor_destroy(all[i]);
    return st;
}

/* A split_tokens near INT64_MAX overflowed the chunk count: sequences were dropped and scratch
 * read uninitialized. It must behave like "one chunk", checked here against a double oracle. */
static void huge_split_tokens_keep_every_sequence(void **state)
{
    (void)state;
    fill();
    const int64_t splits[] = {INT64_MAX, INT64_MAX - 1, (INT64_C(1) << 62) + 1};
    for (ra_kernel kern = RA_KERNEL_BLAS; kern <= RA_KERNEL_NEON; kern++)
        for (size_t si = 0; si < 3; si++) {
            float o[B * H * D], m[B * H], l[B * H];
            ra_status st = run_mha(kern, splits[si], 2, o, m, l);
            if (st == RA_ERR_UNSUPPORTED)
                continue;
            assert_int_equal(st, RA_OK);
            for (int b = 0; b < B; b++)
                for (int h = 0; h < H; h++) {
                    double s[S], mx = -INFINITY, ls = 0;
                    for (int t = 0; t < len[b]; t++) {
                        s[t] = 0;
                        for (int d = 0; d < D; d++)
                            s[t] += (double)q[(b * H + h) * D + d] * k[((b * S + t) * H + h) * D + d];
                        mx = s[t] > mx ? s[t] : mx;
                    }
                    for (int t = 0; t < len[b]; t++)
                        ls += exp(s[t] - mx);
                    if (len[b] == 0) {
                        assert_true(isinf(m[b * H + h]) && m[b * H + h] < 0);
                        assert_true(l[b * H + h] == 0.0f);
                    } else {
                        assert_float_equal(l[b * H + h], ls, 1e-5 * ls);
                    }
                    for (int d = 0; d < D; d++) {
                        double want = 0;
                        for (int t = 0; t < len[b]; t++)
                            want += exp(s[t] - mx) * v[((b * S + t) * H + h) * D + d];
                        assert_float_equal(o[(b * H + h) * D + d], want, 1e-5 * (1 + fabs(want)));
                    }
                }
        }
}

/* NULL strides mean row-major also for an empty tensor. */
static void empty_tensor_gets_row_major_strides(void **state)
{
    (void)state;
    ra_tensor *t;
    int64_t shape[] = {0, 4, 8};
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 3, shape, NULL, NULL), RA_OK);
    assert_int_equal(ra_tensor_stride(t, 0), 32);
    assert_int_equal(ra_tensor_stride(t, 1), 8);
    assert_int_equal(ra_tensor_stride(t, 2), 1);
    ra_tensor_destroy(t);
}

/* An absurd num_threads must not reach libgomp (which exits the process when it cannot
 * create a thread): the library caps it. */
static void absurd_thread_count_is_capped(void **state)
{
    (void)state;
    fill();
    float o1[B * H * D], m1[B * H], l1[B * H], o2[B * H * D], m2[B * H], l2[B * H];
    assert_int_equal(run_mha(RA_KERNEL_AUTO, 0, 1, o1, m1, l1), RA_OK);
    assert_int_equal(run_mha(RA_KERNEL_AUTO, 1, 1000000, o2, m2, l2), RA_OK);
    assert_int_equal(run_mha(RA_KERNEL_AUTO, 0, 1000000, o2, m2, l2), RA_OK);
    assert_memory_equal(o1, o2, sizeof o1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(huge_split_tokens_keep_every_sequence),
        cmocka_unit_test(empty_tensor_gets_row_major_strides),
        cmocka_unit_test(absurd_thread_count_is_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
