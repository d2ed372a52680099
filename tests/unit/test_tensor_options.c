/* Tensor handles, options, status strings, versions, the last-error message and the function
 * table: the small API around the attention functions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "attn_case.h"
#include "oracle.h"
#include "raggedattn.h"

/* A handle value that no successful call returns, to see that failures leave *out alone. */
static ra_tensor *const UNTOUCHED = (ra_tensor *)(uintptr_t)0x1234;

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(ra_version_number(), RA_VERSION_NUMBER);
    assert_int_equal(RA_VERSION_NUMBER,
                     RA_VERSION_MAJOR * 10000 + RA_VERSION_MINOR * 100 + RA_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", RA_VERSION_MAJOR, RA_VERSION_MINOR, RA_VERSION_PATCH);
    assert_non_null(ra_version_string());
    assert_string_equal(ra_version_string(), want);
    assert_string_equal(RA_VERSION_STRING, want);
}

static void test_status_strings(void **state)
{
    (void)state;
    static const char *names[] = {"RA_OK",
                                  "RA_ERR_INVALID_ARGUMENT",
                                  "RA_ERR_SHAPE",
                                  "RA_ERR_DTYPE",
                                  "RA_ERR_LENGTH",
                                  "RA_ERR_OVERFLOW",
                                  "RA_ERR_OUT_OF_MEMORY",
                                  "RA_ERR_ALIAS",
                                  "RA_ERR_INTERNAL",
                                  "RA_ERR_UNSUPPORTED"};
    for (int s = 0; s < (int)(sizeof names / sizeof names[0]); s++) {
        const char *str = ra_status_string((ra_status)s);
        assert_non_null(str);
        /* The name must be there as a whole word: RA_ERR_SHAPE is not RA_ERR_SHAPES. */
        if (!or_msg_names(str, names[s]))
            fail_msg("ra_status_string(%d) = \"%s\" does not name %s", s, str, names[s]);
        for (int t = 0; t < s; t++)
            assert_string_not_equal(str, ra_status_string((ra_status)t));
    }
    const int unknown[] = {-1, 10, 99, 1 << 20};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *str = ra_status_string((ra_status)unknown[i]);
        assert_non_null(str);
        assert_true(strlen(str) > 0);
    }
}

struct thread_seen {
    char before[512]; /* ra_last_error() before anything failed on the thread */
    char after[512];  /* after a failing call there */
};

static void *fresh_thread(void *arg)
{
    struct thread_seen *seen = arg;
    snprintf(seen->before, sizeof seen->before, "%s", ra_last_error());
    ra_tensor *t = NULL;
    int64_t shape[1] = {4};
    if (ra_tensor_wrap(&t, RA_DTYPE_F32, 7, shape, NULL, NULL) == RA_ERR_INVALID_ARGUMENT)
        snprintf(seen->after, sizeof seen->after, "%s", ra_last_error());
    return NULL;
}

static void test_last_error_is_per_thread(void **state)
{
    (void)state;
    ra_tensor *t = NULL;
    int64_t shape[1] = {4};
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 1, shape, NULL, NULL),
                     RA_ERR_INVALID_ARGUMENT);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", ra_last_error());
    assert_true(strlen(mine) > 0);

    struct thread_seen seen = {"unset", ""};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fresh_thread, &seen), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_string_equal(seen.before, "");
    if (!strstr(seen.after, "7"))
        fail_msg("rank 7 failure on the thread gave message \"%s\" (want it to name 7)",
                 seen.after);
    /* The other thread's failure did not touch ours. */
    assert_string_equal(ra_last_error(), mine);
}

static void test_last_error_errno_like(void **state)
{
    (void)state;
    ra_tensor *t = NULL;
    int64_t shape[2] = {2, 3};
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 0, shape, NULL, NULL),
                     RA_ERR_INVALID_ARGUMENT);
    char first[512];
    snprintf(first, sizeof first, "%s", ra_last_error());
    assert_true(or_msg_names(first, "rank"));

    /* A success does not clear it. */
    assert_int_equal(ra_tensor_create(&t, RA_DTYPE_F32, 2, shape), RA_OK);
    assert_string_equal(ra_last_error(), first);
    ra_tensor_destroy(t);

    /* A new failure replaces it. */
    ra_options *o = NULL;
    assert_int_equal(ra_options_create(&o), RA_OK);
    assert_int_equal(ra_options_set_block_size(o, 0), RA_ERR_INVALID_ARGUMENT);
    assert_string_not_equal(ra_last_error(), first);
    assert_true(or_msg_names(ra_last_error(), "block_size"));
    ra_options_destroy(o);
}

static void test_wrap_and_accessors(void **state)
{
    (void)state;
    uint16_t buf[64];
    int64_t shape[3] = {2, 3, 4}, strides[3] = {20, 5, 1};
    ra_tensor *t = NULL;
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_BF16, 3, shape, strides, buf), RA_OK);
    assert_ptr_equal(ra_tensor_data(t), buf);
    assert_int_equal(ra_tensor_dtype(t), RA_DTYPE_BF16);
    assert_int_equal(ra_tensor_rank(t), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ra_tensor_dim(t, i), shape[i]);
        assert_int_equal(ra_tensor_stride(t, i), strides[i]);
    }
    assert_int_equal(ra_tensor_dim(t, -1), -1);
    assert_int_equal(ra_tensor_dim(t, 3), -1);
    assert_int_equal(ra_tensor_stride(t, -1), -1);
    assert_int_equal(ra_tensor_stride(t, 3), -1);
    ra_tensor_destroy(t);

    /* NULL strides: row-major contiguous. */
    int64_t shape4[4] = {2, 1, 3, 5};
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 4, shape4, NULL, buf), RA_OK);
    const int64_t want[4] = {15, 15, 5, 1};
    for (int i = 0; i < 4; i++)
        if (shape4[i] > 1)
            assert_int_equal(ra_tensor_stride(t, i), want[i]);
    ra_tensor_destroy(t);

    /* Broadcast strides are legal on a handle (outputs reject them later, at the call). */
    int64_t bstrides[3] = {0, 4, 1};
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F16, 3, shape, bstrides, buf), RA_OK);
    assert_int_equal(ra_tensor_stride(t, 0), 0);
    ra_tensor_destroy(t);

    /* NULL handle. */
    assert_null(ra_tensor_data(NULL));
    assert_int_equal((int)ra_tensor_dtype(NULL), -1);
    assert_int_equal(ra_tensor_rank(NULL), -1);
    assert_int_equal(ra_tensor_dim(NULL, 0), -1);
    assert_int_equal(ra_tensor_stride(NULL, 0), -1);
    ra_tensor_destroy(NULL);
}

static void expect_wrap_fails(ra_dtype dt, int rank, const int64_t *shape,
                              const int64_t *strides, void *data, ra_status want,
                              const char *word)
{
    ra_tensor *t = UNTOUCHED;
    ra_status s = ra_tensor_wrap(&t, dt, rank, shape, strides, data);
    if (s != want)
        fail_msg("ra_tensor_wrap returned %s, want %s (%s)", ra_status_string(s),
                 ra_status_string(want), ra_last_error());
    assert_ptr_equal(t, UNTOUCHED);
    if (word && !or_msg_names(ra_last_error(), word))
        fail_msg("message \"%s\" does not name %s", ra_last_error(), word);
}

static void test_wrap_rejects_bad_arguments(void **state)
{
    (void)state;
    float buf[16];
    int64_t shape[2] = {2, 3};
    assert_int_equal(ra_tensor_wrap(NULL, RA_DTYPE_F32, 2, shape, NULL, buf),
                     RA_ERR_INVALID_ARGUMENT);
    expect_wrap_fails(RA_DTYPE_F32, 0, shape, NULL, buf, RA_ERR_INVALID_ARGUMENT, "rank");
    expect_wrap_fails(RA_DTYPE_F32, 5, shape, NULL, buf, RA_ERR_INVALID_ARGUMENT, "rank");
    expect_wrap_fails(RA_DTYPE_F32, -1, shape, NULL, buf, RA_ERR_INVALID_ARGUMENT, "rank");
    expect_wrap_fails(RA_DTYPE_F32, 2, NULL, NULL, buf, RA_ERR_INVALID_ARGUMENT, "shape");
    expect_wrap_fails((ra_dtype)7, 2, shape, NULL, buf, RA_ERR_DTYPE, "dtype");
    expect_wrap_fails((ra_dtype)-1, 2, shape, NULL, buf, RA_ERR_DTYPE, "dtype");
    /* data may be NULL only for a tensor without elements. */
    expect_wrap_fails(RA_DTYPE_F32, 2, shape, NULL, NULL, RA_ERR_INVALID_ARGUMENT, "data");
    int64_t empty[2] = {2, 0};
    ra_tensor *t = NULL;
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 2, empty, NULL, NULL), RA_OK);
    assert_null(ra_tensor_data(t));
    assert_int_equal(ra_tensor_dim(t, 1), 0);
    ra_tensor_destroy(t);
}

static void test_wrap_rejects_negative_shape_and_strides(void **state)
{
    (void)state;
    float buf[16];
    int64_t neg_shape[2] = {2, -3};
    ra_tensor *t = UNTOUCHED;
    ra_status s = ra_tensor_wrap(&t, RA_DTYPE_F32, 2, neg_shape, NULL, buf);
    assert_true(s == RA_ERR_SHAPE || s == RA_ERR_INVALID_ARGUMENT);
    assert_ptr_equal(t, UNTOUCHED);
    assert_true(or_msg_names(ra_last_error(), "shape") || strstr(ra_last_error(), "-3"));

    int64_t shape[2] = {2, 3}, neg_strides[2] = {3, -1};
    s = ra_tensor_wrap(&t, RA_DTYPE_F32, 2, shape, neg_strides, buf + 8);
    assert_true(s == RA_ERR_INVALID_ARGUMENT || s == RA_ERR_SHAPE);
    assert_ptr_equal(t, UNTOUCHED);
    assert_true(strstr(ra_last_error(), "stride") != NULL);
}

static void test_wrap_and_create_overflow(void **state)
{
    (void)state;
    float buf[4];
    /* The element count overflows int64. */
    int64_t count[2] = {INT64_C(1) << 40, INT64_C(1) << 30};
    expect_wrap_fails(RA_DTYPE_F32, 2, count, NULL, buf, RA_ERR_OVERFLOW, NULL);
    /* The count fits but the byte size does not (2^62 f32 elements). */
    int64_t bytes[1] = {INT64_C(1) << 62};
    expect_wrap_fails(RA_DTYPE_F32, 1, bytes, NULL, buf, RA_ERR_OVERFLOW, NULL);
    /* Small shape, but the furthest element's offset overflows. */
    int64_t shape[2] = {3, 2}, strides[2] = {INT64_MAX / 2, 1};
    expect_wrap_fails(RA_DTYPE_F32, 2, shape, strides, buf, RA_ERR_OVERFLOW, NULL);
    int64_t strides2[2] = {INT64_MAX / 4 + 1, 1}; /* offset 2^62, its byte offset overflows */
    expect_wrap_fails(RA_DTYPE_F16, 2, shape, strides2, buf, RA_ERR_OVERFLOW, NULL);

    /* create checks before allocating anything. */
    ra_tensor *t = UNTOUCHED;
    assert_int_equal(ra_tensor_create(&t, RA_DTYPE_F32, 2, count), RA_ERR_OVERFLOW);
    assert_int_equal(ra_tensor_create(&t, RA_DTYPE_BF16, 1, bytes), RA_ERR_OVERFLOW);
    assert_ptr_equal(t, UNTOUCHED);
#if !defined(__SANITIZE_ADDRESS__)
    /* 2^52 bytes fit in size_t but not in the address space: out of memory, not a crash.
     * (ASan aborts on such requests by default, so this part runs in plain builds.) */
    int64_t huge[1] = {INT64_C(1) << 50};
    assert_int_equal(ra_tensor_create(&t, RA_DTYPE_F32, 1, huge), RA_ERR_OUT_OF_MEMORY);
    assert_ptr_equal(t, UNTOUCHED);
#endif
}

static void test_create(void **state)
{
    (void)state;
    const ra_dtype dts[4] = {RA_DTYPE_F32, RA_DTYPE_F16, RA_DTYPE_BF16, RA_DTYPE_I32};
    int64_t shape[3] = {3, 5, 7};
    for (int i = 0; i < 4; i++) {
        ra_tensor *t = NULL;
        assert_int_equal(ra_tensor_create(&t, dts[i], 3, shape), RA_OK);
        unsigned char *p = ra_tensor_data(t);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        for (size_t b = 0; b < 105 * or_dtype_size(dts[i]); b++)
            assert_int_equal(p[b], 0);
        memset(p, 0x7f, 105 * or_dtype_size(dts[i])); /* the whole extent is writable */
        assert_int_equal(ra_tensor_dtype(t), dts[i]);
        assert_int_equal(ra_tensor_rank(t), 3);
        assert_int_equal(ra_tensor_stride(t, 0), 35);
        assert_int_equal(ra_tensor_stride(t, 1), 7);
        assert_int_equal(ra_tensor_stride(t, 2), 1);
        ra_tensor_destroy(t);
    }
    int64_t empty[2] = {0, 4};
    ra_tensor *t = NULL;
    assert_int_equal(ra_tensor_create(&t, RA_DTYPE_F32, 2, empty), RA_OK);
    assert_int_equal(ra_tensor_dim(t, 0), 0);
    ra_tensor_destroy(t);

    assert_int_equal(ra_tensor_create(NULL, RA_DTYPE_F32, 3, shape), RA_ERR_INVALID_ARGUMENT);
    t = UNTOUCHED;
    assert_int_equal(ra_tensor_create(&t, RA_DTYPE_F32, 5, shape), RA_ERR_INVALID_ARGUMENT);
    assert_int_equal(ra_tensor_create(&t, (ra_dtype)9, 3, shape), RA_ERR_DTYPE);
    assert_int_equal(ra_tensor_create(&t, RA_DTYPE_F32, 3, NULL), RA_ERR_INVALID_ARGUMENT);
    assert_ptr_equal(t, UNTOUCHED);
}

static void expect_option_fails(ra_status s, const char *word)
{
    if (s != RA_ERR_INVALID_ARGUMENT)
        fail_msg("setter returned %s, want RA_ERR_INVALID_ARGUMENT", ra_status_string(s));
    if (!or_msg_names(ra_last_error(), word))
        fail_msg("message \"%s\" does not name %s", ra_last_error(), word);
}

static void test_options_values(void **state)
{
    (void)state;
    assert_int_equal(ra_options_create(NULL), RA_ERR_INVALID_ARGUMENT);
    ra_options_destroy(NULL);
    ra_options *o = NULL;
    assert_int_equal(ra_options_create(&o), RA_OK);
    assert_non_null(o);

    assert_int_equal(ra_options_set_block_size(o, 1), RA_OK);
    assert_int_equal(ra_options_set_block_size(o, 1 << 20), RA_OK);
    expect_option_fails(ra_options_set_block_size(o, 0), "block_size");
    expect_option_fails(ra_options_set_block_size(o, -16), "block_size");

    assert_int_equal(ra_options_set_scale(o, 0.125f), RA_OK);
    assert_int_equal(ra_options_set_scale(o, -3.0f), RA_OK);
    assert_int_equal(ra_options_set_scale(o, 0.0f), RA_OK);
    expect_option_fails(ra_options_set_scale(o, NAN), "scale");
    expect_option_fails(ra_options_set_scale(o, INFINITY), "scale");
    expect_option_fails(ra_options_set_scale(o, -INFINITY), "scale");

    assert_int_equal(ra_options_set_mask_value(o, -1e30f), RA_OK);
    assert_int_equal(ra_options_set_mask_value(o, -2.0f), RA_OK);

    assert_int_equal(ra_options_set_num_threads(o, 0), RA_OK);
    assert_int_equal(ra_options_set_num_threads(o, 1), RA_OK);
    assert_int_equal(ra_options_set_num_threads(o, 64), RA_OK);
    expect_option_fails(ra_options_set_num_threads(o, -1), "num_threads");

    assert_int_equal(ra_options_set_split_tokens(o, 0), RA_OK);
    assert_int_equal(ra_options_set_split_tokens(o, 7), RA_OK);
    expect_option_fails(ra_options_set_split_tokens(o, -1), "split_tokens");

    assert_int_equal(ra_options_set_kernel(o, RA_KERNEL_AUTO), RA_OK);
    assert_int_equal(ra_options_set_kernel(o, RA_KERNEL_BLAS), RA_OK);
    assert_int_equal(ra_options_set_kernel(o, RA_KERNEL_PORTABLE), RA_OK);
    expect_option_fails(ra_options_set_kernel(o, (ra_kernel)6), "kernel");
    expect_option_fails(ra_options_set_kernel(o, (ra_kernel)-1), "kernel");
    for (int k = RA_KERNEL_AVX2; k <= RA_KERNEL_NEON; k++) {
        ra_status s = ra_options_set_kernel(o, (ra_kernel)k);
        assert_true(s == RA_OK || s == RA_ERR_UNSUPPORTED);
        if (s == RA_ERR_UNSUPPORTED)
            assert_true(strlen(ra_last_error()) > 0);
    }
    ra_options_destroy(o);

    /* NULL options in a setter is an error, not a crash. */
    expect_option_fails(ra_options_set_block_size(NULL, 16), "options");
    assert_int_equal(ra_options_set_scale(NULL, 1.0f), RA_ERR_INVALID_ARGUMENT);
    assert_int_equal(ra_options_set_mask_value(NULL, -1.0f), RA_ERR_INVALID_ARGUMENT);
    assert_int_equal(ra_options_set_num_threads(NULL, 1), RA_ERR_INVALID_ARGUMENT);
    assert_int_equal(ra_options_set_kernel(NULL, RA_KERNEL_BLAS), RA_ERR_INVALID_ARGUMENT);
    assert_int_equal(ra_options_set_split_tokens(NULL, 0), RA_ERR_INVALID_ARGUMENT);
}

static void test_kernel_resolve_and_names(void **state)
{
    (void)state;
    assert_string_equal(ra_kernel_name(RA_KERNEL_BLAS), "blas");
    assert_string_equal(ra_kernel_name(RA_KERNEL_PORTABLE), "portable");
    assert_string_equal(ra_kernel_name(RA_KERNEL_AVX2), "avx2");
    assert_string_equal(ra_kernel_name(RA_KERNEL_AVX512), "avx512");
    assert_string_equal(ra_kernel_name(RA_KERNEL_NEON), "neon");
    assert_string_equal(ra_kernel_name((ra_kernel)42), "unknown");
    assert_non_null(ra_kernel_name(RA_KERNEL_AUTO));

    /* AUTO: AVX-512, then AVX2+FMA, then NEON, then portable C, whichever this CPU and build
     * run first; a build has the SIMD kernels of one architecture at most. */
    ra_kernel want = tc_kernel_available(RA_KERNEL_AVX512) ? RA_KERNEL_AVX512
                     : tc_kernel_available(RA_KERNEL_AVX2) ? RA_KERNEL_AVX2
                     : tc_kernel_available(RA_KERNEL_NEON) ? RA_KERNEL_NEON
                                                           : RA_KERNEL_PORTABLE;
    assert_false(tc_kernel_available(RA_KERNEL_NEON) && tc_kernel_available(RA_KERNEL_AVX2));
    assert_int_equal(ra_kernel_resolve(NULL), want);
    print_message("AUTO resolves to %s on this CPU\n", ra_kernel_name(want));
    ra_options *o = NULL;
    assert_int_equal(ra_options_create(&o), RA_OK);
    assert_int_equal(ra_kernel_resolve(o), want);
    for (int k = RA_KERNEL_BLAS; k <= RA_KERNEL_NEON; k++) {
        if (ra_options_set_kernel(o, (ra_kernel)k) == RA_OK)
            assert_int_equal(ra_kernel_resolve(o), k);
    }
    /* A rejected value leaves the previous choice in place. */
    assert_int_equal(ra_options_set_kernel(o, RA_KERNEL_PORTABLE), RA_OK);
    assert_int_equal(ra_options_set_kernel(o, (ra_kernel)77), RA_ERR_INVALID_ARGUMENT);
    assert_int_equal(ra_kernel_resolve(o), RA_KERNEL_PORTABLE);
    ra_options_destroy(o);
}

static void test_api_table(void **state)
{
    (void)state;
    assert_null(ra_get_api(0));
    assert_null(ra_get_api(RA_API_VERSION + 1));
    const ra_api *api = ra_get_api(RA_API_VERSION);
    assert_non_null(api);
    assert_true(api->struct_size >= sizeof(ra_api));
    assert_int_equal(api->abi_version, RA_API_VERSION);
    /* Every member is filled ... */
    size_t n = (sizeof(ra_api) - offsetof(ra_api, version_number)) / sizeof(void (*)(void));
    for (size_t i = 0; i < n; i++) {
        void (*f)(void);
        memcpy(&f, (const char *)api + offsetof(ra_api, version_number) + i * sizeof f, sizeof f);
        assert_non_null(f);
    }
    /* ... and calls the same functions (by behaviour: addresses may differ across a DSO). */
    assert_int_equal(api->version_number(), RA_VERSION_NUMBER);
    assert_string_equal(api->version_string(), RA_VERSION_STRING);
    assert_string_equal(api->status_string(RA_ERR_ALIAS), ra_status_string(RA_ERR_ALIAS));
    assert_string_equal(api->kernel_name(RA_KERNEL_BLAS), "blas");
    int64_t shape[2] = {2, 3};
    ra_tensor *t = NULL;
    assert_int_equal(api->tensor_create(&t, RA_DTYPE_F16, 2, shape), RA_OK);
    assert_int_equal(api->tensor_dim(t, 1), 3);
    assert_int_equal(api->tensor_dtype(t), RA_DTYPE_F16);
    api->tensor_destroy(t);
    assert_int_equal(api->merge(0, NULL, NULL, NULL, NULL, NULL, NULL), RA_ERR_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_last_error_is_per_thread),
        cmocka_unit_test(test_last_error_errno_like),
        cmocka_unit_test(test_wrap_and_accessors),
        cmocka_unit_test(test_wrap_rejects_bad_arguments),
        cmocka_unit_test(test_wrap_rejects_negative_shape_and_strides),
        cmocka_unit_test(test_wrap_and_create_overflow),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_options_values),
        cmocka_unit_test(test_kernel_resolve_and_names),
        cmocka_unit_test(test_api_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
