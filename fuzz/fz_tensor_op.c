/* The tensor operation: ra_tensor_wrap / ra_tensor_create with arbitrary dtypes, ranks, shapes,
 * strides and data pointers, the accessors, and destroy. Validity per the header: rank 1..4,
 * shape >= 0, strides >= 0, data NULL only without elements, and RA_ERR_OVERFLOW when the byte
 * size or the furthest byte offset does not fit in int64_t or size_t. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"

typedef unsigned __int128 u128;
#define U128_SAT ((u128)1 << 120)

static u128 sat_mul(u128 a, u128 b)
{
    if (a == 0 || b == 0)
        return 0;
    return a > U128_SAT / b ? U128_SAT : a * b;
}

static const int64_t tab_dim[] = {0, 1, 2, 3, 4, 5, 7, 16, 1000, 1ll << 20, 1ll << 31,
                                  1ll << 40, 1ll << 61, 1ll << 62, INT64_MAX, -1, INT64_MIN,
                                  2, 3, 1};
static const int64_t tab_stride[] = {0, 1, 2, 3, 8, 100, 1ll << 30, 1ll << 40, 1ll << 60,
                                     INT64_MAX, -1, INT64_MIN, 1, 1, 4};

/* The status the header asks for: must (a set), or RA_OK when must is 0. */
static fz_expect expect_wrap(bool null_out, int dt, int rank, const int64_t *shape,
                             const int64_t *strides, bool null_data, bool create,
                             u128 *bytes_out, bool *rm_overflow)
{
    fz_expect e = {0, 0};
    *bytes_out = 0;
    *rm_overflow = false;
    if (null_out)
        e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
    size_t es = fz_dtype_size((ra_dtype)dt);
    if (es == 0)
        e.must |= FZ_BIT(RA_ERR_DTYPE);
    if (rank < 1 || rank > 4) {
        e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
        return e;
    }
    if (!shape) {
        e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
        return e;
    }
    bool negative = false;
    for (int i = 0; i < rank; i++)
        negative |= shape[i] < 0 || (strides && strides[i] < 0);
    if (negative) { /* the header does not name the code for a negative dim or stride */
        e.must |= FZ_BIT(RA_ERR_SHAPE) | FZ_BIT(RA_ERR_INVALID_ARGUMENT);
        e.may |= FZ_BIT(RA_ERR_OVERFLOW);
        return e;
    }
    if (es == 0)
        es = 1; /* judge the rest as if the dtype were fine: a library may check either first */
    u128 numel = 1, last = 0, run = 1;
    for (int i = 0; i < rank; i++)
        numel = sat_mul(numel, (u128)shape[i]);
    /* Row-major strides for NULL: a stride that does not fit in int64 cannot be reported. */
    for (int i = rank - 1; i >= 0; i--) {
        u128 st = strides ? (u128)strides[i] : run;
        if (!strides && st > (u128)INT64_MAX)
            *rm_overflow = true;
        run = sat_mul(run, (u128)(shape[i] ? shape[i] : 1));
        if (numel > 0)
            last += sat_mul((u128)(shape[i] - 1), st);
    }
    u128 bytes = sat_mul(numel, es);
    *bytes_out = bytes;
    bool overflow = bytes > (u128)INT64_MAX || (numel > 0 && sat_mul(last + 1, es) > (u128)INT64_MAX);
    if (overflow)
        e.must |= FZ_BIT(RA_ERR_OVERFLOW);
    else if (numel == 0 && sat_mul(run, es) > (u128)INT64_MAX)
        e.may |= FZ_BIT(RA_ERR_OVERFLOW); /* empty, but huge once its zero dims count as 1 */
    if (!create && null_data && numel > 0)
        e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
    return e;
}

static void check_accessors(const ra_tensor *t, int dt, int rank, const int64_t *shape,
                            const int64_t *strides, const void *data, bool check_strides)
{
    FZ_CHECK(ra_tensor_dtype(t) == (ra_dtype)dt && ra_tensor_rank(t) == rank,
             "accessors: dtype %d rank %d, expected %d %d", (int)ra_tensor_dtype(t),
             ra_tensor_rank(t), dt, rank);
    if (data)
        FZ_CHECK(ra_tensor_data(t) == data, "ra_tensor_data is not the wrapped pointer");
    int64_t run = 1;
    for (int i = rank - 1; i >= 0; i--) {
        FZ_CHECK(ra_tensor_dim(t, i) == shape[i], "ra_tensor_dim(%d) = %lld, expected %lld", i,
                 (long long)ra_tensor_dim(t, i), (long long)shape[i]);
        int64_t want = strides ? strides[i] : run;
        if (check_strides)
            FZ_CHECK(ra_tensor_stride(t, i) == want, "ra_tensor_stride(%d) = %lld, expected %lld",
                     i, (long long)ra_tensor_stride(t, i), (long long)want);
        if (!strides && check_strides)
            run *= shape[i] ? shape[i] : 1;
    }
    const int bad_axes[] = {-1, rank, 4, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad_axes / sizeof bad_axes[0]; i++)
        FZ_CHECK(ra_tensor_dim(t, bad_axes[i]) == -1 && ra_tensor_stride(t, bad_axes[i]) == -1,
                 "axis %d out of range must give -1", bad_axes[i]);
}

void fz_op_tensor(fz_in *in)
{
    static const int dts[] = {0, 1, 2, 3, 0, 1, 2, 3, 4, -1, 100, INT32_MIN};
    static const int ranks[] = {1, 2, 3, 4, 1, 2, 3, 4, 0, 5, -1, 6};
    uint8_t flags = fz_u8(in);
    bool create = flags & 1, null_out = (flags & 0xe0) == 0xe0, null_shape = (flags & 0x1c) == 0x1c;
    bool null_strides = (flags & 2) != 0, null_data = (flags & 0x60) == 0x60;
    int dt = dts[fz_u8(in) % 12], rank = ranks[fz_u8(in) % 12];
    /* Exactly `rank` entries (4 for a larger bad rank), so ASan sees any read past them. */
    int n_alloc = rank >= 1 && rank <= 4 ? rank : 4;
    int64_t *shape = malloc(sizeof(int64_t) * (size_t)n_alloc);
    int64_t *strides = malloc(sizeof(int64_t) * (size_t)n_alloc);
    FZ_CHECK(shape && strides, "harness out of memory");
    for (int i = 0; i < n_alloc; i++) {
        shape[i] = FZ_PICK(in, tab_dim);
        strides[i] = FZ_PICK(in, tab_stride);
    }
    u128 bytes;
    bool rm_overflow;
    fz_expect e = expect_wrap(null_out, dt, rank, null_shape ? NULL : shape,
                              (create || null_strides) ? NULL : strides, null_data, create, &bytes,
                              &rm_overflow);
    /* Never ask for real allocations beyond 1 MiB: only those that must fail early. */
    if (create && e.must == 0 && bytes > (1u << 20))
        goto out;

    static int64_t backing[8]; /* the library never dereferences a wrapped pointer here */
    void *data = null_data ? NULL : backing;
    ra_tensor *sentinel = (ra_tensor *)&backing[1], *t = sentinel;
    fz_mark_last_error();
    ra_status s = create ? ra_tensor_create(null_out ? NULL : &t, (ra_dtype)dt, rank,
                                            null_shape ? NULL : shape)
                         : ra_tensor_wrap(null_out ? NULL : &t, (ra_dtype)dt, rank,
                                          null_shape ? NULL : shape,
                                          null_strides ? NULL : strides, data);
    const char *what = create ? "ra_tensor_create" : "ra_tensor_wrap";
    fz_check_status(&e, s, what);
    if (s != RA_OK) {
        fz_check_new_error(what);
        FZ_CHECK(t == sentinel, "%s failed but wrote *out", what);
        goto out;
    }
    check_accessors(t, dt, rank, shape, (create || null_strides) ? NULL : strides,
                    create ? NULL : data,
                    /* row-major strides of an empty tensor are a convention: not checked */
                    !rm_overflow && (bytes > 0 || !(create || null_strides)));
    if (create && bytes > 0) {
        const unsigned char *p = ra_tensor_data(t);
        FZ_CHECK(p != NULL && ((uintptr_t)p & 63) == 0, "ra_tensor_create: data %p is not "
                 "64-byte aligned", (const void *)p);
        for (size_t i = 0; i < (size_t)bytes; i++)
            FZ_CHECK(p[i] == 0, "ra_tensor_create: byte %zu is not zero", i);
    }
    ra_tensor_destroy(t);
out:
    /* NULL handles: defined answers, no crash. */
    FZ_CHECK(ra_tensor_data(NULL) == NULL && ra_tensor_dtype(NULL) == (ra_dtype)-1 &&
                 ra_tensor_rank(NULL) == -1 && ra_tensor_dim(NULL, 0) == -1 &&
                 ra_tensor_stride(NULL, 0) == -1,
             "accessors on NULL");
    ra_tensor_destroy(NULL);
    free(shape);
    free(strides);
}
