/* ra_mha_cost_estimate: the seed's get_mha_cost_estimate, recomputed here from the shapes.
 *   flops = B*H*S*(2D + S + 2D), transcendentals = B*H*S,
 *   bytes = sum over q, k, v, lengths of (element count * element size). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "oracle.h"
#include "raggedattn.h"

typedef struct cost_case {
    int64_t B, H, Hkv, S, D;
    ra_dtype qdt, kdt, vdt;
} cost_case;

static void check_case(const cost_case *c)
{
    int64_t qs[4] = {c->B, 1, c->H, c->D}, ks[4] = {c->B, c->S, c->Hkv, c->D}, ls[1] = {c->B};
    or_buf q, k, v, len;
    or_buf_init(&q, c->qdt, 4, qs, NULL);
    or_buf_init(&k, c->kdt, 4, ks, NULL);
    or_buf_init(&v, c->vdt, 4, ks, NULL);
    or_buf_init(&len, RA_DTYPE_I32, 1, ls, NULL);
    for (int64_t b = 0; b < c->B; b++)
        or_buf_set(&len, &b, 1);

    int64_t flops = -1, trans = -1, bytes = -1;
    ra_status s = ra_mha_cost_estimate(q.t, k.t, v.t, len.t, &flops, &trans, &bytes);
    if (s != RA_OK)
        fail_msg("cost estimate failed: %s (%s)", ra_status_string(s), ra_last_error());
    int64_t want_flops = c->B * c->H * c->S * (2 * c->D + c->S + 2 * c->D);
    int64_t want_trans = c->B * c->H * c->S;
    int64_t numel_q = c->B * c->H * c->D, numel_kv = c->B * c->S * c->Hkv * c->D;
    int64_t want_bytes = numel_q * (int64_t)or_dtype_size(c->qdt) +
                         numel_kv * (int64_t)or_dtype_size(c->kdt) +
                         numel_kv * (int64_t)or_dtype_size(c->vdt) + c->B * 4;
    assert_int_equal(flops, want_flops);
    assert_int_equal(trans, want_trans);
    assert_int_equal(bytes, want_bytes);

    /* Any output pointer may be NULL. */
    int64_t only = -1;
    assert_int_equal(ra_mha_cost_estimate(q.t, k.t, v.t, len.t, NULL, NULL, &only), RA_OK);
    assert_int_equal(only, want_bytes);
    assert_int_equal(ra_mha_cost_estimate(q.t, k.t, v.t, len.t, &only, NULL, NULL), RA_OK);
    assert_int_equal(only, want_flops);
    assert_int_equal(ra_mha_cost_estimate(q.t, k.t, v.t, len.t, NULL, NULL, NULL), RA_OK);

    or_buf_free(&q);
    or_buf_free(&k);
    or_buf_free(&v);
    or_buf_free(&len);
}

static void test_cost_shapes(void **state)
{
    (void)state;
    const cost_case cases[] = {
        {2, 4, 4, 16, 32, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32},
        {4, 32, 32, 512, 128, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32}, /* MaxText's test */
        {4, 32, 8, 512, 128, RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_BF16},
        {3, 8, 2, 100, 64, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16},
        {1, 1, 1, 1, 1, RA_DTYPE_F16, RA_DTYPE_F32, RA_DTYPE_BF16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
    /* MaxText's test shape worked out by hand: 4*32*512*(512+512) and 4*32*512. */
    int64_t qs[4] = {4, 1, 32, 128}, ks[4] = {4, 512, 32, 128}, ls[1] = {4};
    or_buf q, k, v, len;
    or_buf_init(&q, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_init(&k, RA_DTYPE_F32, 4, ks, NULL);
    or_buf_init(&v, RA_DTYPE_F32, 4, ks, NULL);
    or_buf_init(&len, RA_DTYPE_I32, 1, ls, NULL);
    int64_t flops, trans, bytes;
    assert_int_equal(ra_mha_cost_estimate(q.t, k.t, v.t, len.t, &flops, &trans, &bytes), RA_OK);
    assert_int_equal(flops, INT64_C(67108864));
    assert_int_equal(trans, INT64_C(65536));
    assert_int_equal(bytes, INT64_C(16384) * 4 + INT64_C(8388608) * 4 * 2 + 16);
    or_buf_free(&q);
    or_buf_free(&k);
    or_buf_free(&v);
    or_buf_free(&len);
}

/* Broadcast (stride 0) views give huge logical shapes over a few bytes of memory. */
static void test_cost_overflow(void **state)
{
    (void)state;
    static float mem[64];
    int64_t zero[4] = {0, 0, 0, 0};
    int64_t B = INT64_C(1) << 20, H = INT64_C(1) << 10, S = INT64_C(1) << 30, D = 128;
    int64_t qs[4] = {B, 1, H, D}, ks[4] = {B, S, 1, D}, ls[1] = {B};
    ra_tensor *q, *k, *v, *len;
    assert_int_equal(ra_tensor_wrap(&q, RA_DTYPE_BF16, 4, qs, zero, mem), RA_OK);
    assert_int_equal(ra_tensor_wrap(&k, RA_DTYPE_BF16, 4, ks, zero, mem), RA_OK);
    assert_int_equal(ra_tensor_wrap(&v, RA_DTYPE_BF16, 4, ks, zero, mem), RA_OK);
    assert_int_equal(ra_tensor_wrap(&len, RA_DTYPE_I32, 1, ls, zero, mem), RA_OK);
    int64_t flops = 7, trans = 7, bytes = 7;
    /* flops = 2^20 * 2^10 * 2^30 * (512 + 2^30) > 2^63. */
    assert_int_equal(ra_mha_cost_estimate(q, k, v, len, &flops, &trans, &bytes), RA_ERR_OVERFLOW);
    assert_int_equal(flops, 7);
    assert_int_equal(trans, 7);
    assert_int_equal(bytes, 7);
    assert_true(strlen(ra_last_error()) > 0);
    ra_tensor_destroy(q);
    ra_tensor_destroy(k);
    ra_tensor_destroy(v);
    ra_tensor_destroy(len);
}

static void test_cost_rejects_null(void **state)
{
    (void)state;
    int64_t qs[4] = {2, 1, 4, 8}, ks[4] = {2, 5, 4, 8}, ls[1] = {2};
    or_buf q, k, v, len;
    or_buf_init(&q, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_init(&k, RA_DTYPE_F32, 4, ks, NULL);
    or_buf_init(&v, RA_DTYPE_F32, 4, ks, NULL);
    or_buf_init(&len, RA_DTYPE_I32, 1, ls, NULL);
    int64_t flops = 7;
    const ra_tensor *args[4] = {q.t, k.t, v.t, len.t};
    const char *names[4] = {"q", "k", "v", "lengths"};
    for (int i = 0; i < 4; i++) {
        const ra_tensor *a[4] = {args[0], args[1], args[2], args[3]};
        a[i] = NULL;
        assert_int_equal(ra_mha_cost_estimate(a[0], a[1], a[2], a[3], &flops, NULL, NULL),
                         RA_ERR_INVALID_ARGUMENT);
        if (!or_msg_names(ra_last_error(), names[i]))
            fail_msg("message \"%s\" does not name %s", ra_last_error(), names[i]);
        assert_int_equal(flops, 7);
    }
    or_buf_free(&q);
    or_buf_free(&k);
    or_buf_free(&v);
    or_buf_free(&len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cost_shapes),
        cmocka_unit_test(test_cost_overflow),
        cmocka_unit_test(test_cost_rejects_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
