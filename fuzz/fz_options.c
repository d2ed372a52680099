/* Options: building them from the fuzz bytes with checked setters, and the options operation,
 * which also covers the small entry points (names, versions, the function table). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fz.h"

static const fz_opts default_opts = {256, 0, 1.0f, -0.7f * FLT_MAX, 0, RA_KERNEL_AUTO};

static void check_setter(ra_status got, bool valid, ra_status bad, bool lenient, const char *what)
{
    fz_expect e = {valid ? 0 : FZ_BIT(bad), lenient ? FZ_BIT(bad) : 0};
    fz_check_status(&e, got, what);
    if (got != RA_OK)
        fz_check_new_error(what);
}

ra_options *fz_build_options(fz_in *in, fz_opts *e)
{
    *e = default_opts;
    if (fz_u8(in) % 4 == 0)
        return NULL;
    ra_options *o = NULL;
    ra_status s = ra_options_create(&o);
    FZ_CHECK(s == RA_OK && o, "ra_options_create failed: %d", (int)s);
    unsigned which = fz_u8(in);
    if (which & 1) {
        static const int64_t t[] = {1, 2, 3, 4, 7, 8, 16, 31, 32, 33, 64, 100, 128, 256, 257,
                                    1000, 1 << 20, INT64_MAX, 0, -1, INT64_MIN};
        int64_t x = FZ_PICK(in, t);
        fz_mark_last_error();
        s = ra_options_set_block_size(o, x);
        check_setter(s, x >= 1, RA_ERR_INVALID_ARGUMENT, false, "set_block_size");
        if (s == RA_OK)
            e->block_size = x;
    }
    if (which & 2) {
        static const double t[] = {1, 0.5, 0.125, 2, -1, 0, 1e-3, 0.08838834764831845, 10,
                                   1e10, -0.0, INFINITY, NAN, -INFINITY};
        float x = (float)t[fz_u8(in) % (sizeof t / sizeof t[0])];
        fz_mark_last_error();
        s = ra_options_set_scale(o, x);
        check_setter(s, isfinite(x), RA_ERR_INVALID_ARGUMENT, false, "set_scale");
        if (s == RA_OK)
            e->scale = x;
    }
    if (which & 4) {
        static const double t[] = {-0.7 * FLT_MAX, -1e30, -1e4, -10, 0, 5, -FLT_MAX,
                                   -INFINITY, NAN};
        float x = (float)t[fz_u8(in) % (sizeof t / sizeof t[0])];
        fz_mark_last_error();
        s = ra_options_set_mask_value(o, x);
        /* The header sets no rule for mask_value; rejecting NaN is reasonable. */
        check_setter(s, true, RA_ERR_INVALID_ARGUMENT, isnan(x), "set_mask_value");
        if (s == RA_OK)
            e->mask = x;
    }
    if (which & 8) {
        static const int64_t t[] = {1, 2, 3, 4, 0, 1, 2, -1, INT32_MIN};
        int x = (int)FZ_PICK(in, t);
        fz_mark_last_error();
        s = ra_options_set_num_threads(o, x);
        check_setter(s, x >= 0, RA_ERR_INVALID_ARGUMENT, false, "set_num_threads");
        if (s == RA_OK)
            e->num_threads = x;
    }
    if (which & 16) {
        static const int64_t t[] = {0, 1, 2, 3, 4, 1, 2, 3, 4, 5, -1};
        ra_kernel x = (ra_kernel)FZ_PICK(in, t);
        bool known = (int)x >= RA_KERNEL_AUTO && (int)x <= RA_KERNEL_AVX512;
        fz_mark_last_error();
        s = ra_options_set_kernel(o, x);
        if (!known)
            check_setter(s, false, RA_ERR_INVALID_ARGUMENT, false, "set_kernel");
        else
            check_setter(s, fz_kernel_runs(x), RA_ERR_UNSUPPORTED, false, "set_kernel");
        if (s == RA_OK)
            e->kernel = x;
    }
    if (which & 32) {
        static const int64_t t[] = {0, 1, 2, 7, 16, 32, 33, 64, 100, 256, 1ll << 40, -1};
        int64_t x = FZ_PICK(in, t);
        fz_mark_last_error();
        s = ra_options_set_split_tokens(o, x);
        check_setter(s, x >= 0, RA_ERR_INVALID_ARGUMENT, false, "set_split_tokens");
        if (s == RA_OK)
            e->split_tokens = x;
    }
    ra_kernel want = e->kernel == RA_KERNEL_AUTO ? fz_kernel_auto() : e->kernel;
    FZ_CHECK(ra_kernel_resolve(o) == want, "ra_kernel_resolve gave %d, expected %d",
             (int)ra_kernel_resolve(o), (int)want);
    return o;
}

ra_options *fz_rerun_options(const fz_opts *e, int threads)
{
    ra_options *o = NULL;
    FZ_CHECK(ra_options_create(&o) == RA_OK, "ra_options_create failed");
    FZ_CHECK(ra_options_set_block_size(o, e->block_size) == RA_OK &&
                 ra_options_set_scale(o, e->scale) == RA_OK &&
                 ra_options_set_mask_value(o, e->mask) == RA_OK &&
                 ra_options_set_kernel(o, e->kernel) == RA_OK &&
                 ra_options_set_split_tokens(o, e->split_tokens) == RA_OK &&
                 ra_options_set_num_threads(o, threads) == RA_OK,
             "re-applying accepted option values failed");
    return o;
}

void fz_op_options(fz_in *in)
{
    fz_opts e;
    ra_options *o = fz_build_options(in, &e);
    ra_options_destroy(o);
    ra_options_destroy(NULL);

    /* Every setter rejects a NULL handle. */
    struct {
        const char *name;
        ra_status s;
    } null_calls[] = {
        {"ra_options_create(NULL)", ra_options_create(NULL)},
        {"set_block_size(NULL)", ra_options_set_block_size(NULL, 16)},
        {"set_scale(NULL)", ra_options_set_scale(NULL, 1.0f)},
        {"set_mask_value(NULL)", ra_options_set_mask_value(NULL, -1.0f)},
        {"set_num_threads(NULL)", ra_options_set_num_threads(NULL, 1)},
        {"set_kernel(NULL)", ra_options_set_kernel(NULL, RA_KERNEL_PORTABLE)},
        {"set_split_tokens(NULL)", ra_options_set_split_tokens(NULL, 0)},
    };
    for (size_t i = 0; i < sizeof null_calls / sizeof null_calls[0]; i++)
        FZ_CHECK(null_calls[i].s == RA_ERR_INVALID_ARGUMENT, "%s returned %d", null_calls[i].name,
                 (int)null_calls[i].s);
    FZ_CHECK(ra_kernel_resolve(NULL) == fz_kernel_auto(), "ra_kernel_resolve(NULL) = %d",
             (int)ra_kernel_resolve(NULL));

    /* Names and strings for arbitrary enum values: never NULL. */
    int32_t x = (int32_t)fz_u32(in);
    static const char *const kernel_names[] = {NULL, "blas", "portable", "avx2", "avx512"};
    const char *kn = ra_kernel_name((ra_kernel)x);
    FZ_CHECK(kn != NULL, "ra_kernel_name(%d) is NULL", (int)x);
    if (x >= 1 && x <= 4)
        FZ_CHECK(strcmp(kn, kernel_names[x]) == 0, "ra_kernel_name(%d) = \"%s\"", (int)x, kn);
    else if (x != 0) /* AUTO may be named "auto" or "unknown"; the header is not explicit */
        FZ_CHECK(strcmp(kn, "unknown") == 0, "ra_kernel_name(%d) = \"%s\"", (int)x, kn);
    static const char *const status_names[] = {
        "RA_OK", "RA_ERR_INVALID_ARGUMENT", "RA_ERR_SHAPE", "RA_ERR_DTYPE", "RA_ERR_LENGTH",
        "RA_ERR_OVERFLOW", "RA_ERR_OUT_OF_MEMORY", "RA_ERR_ALIAS", "RA_ERR_INTERNAL",
        "RA_ERR_UNSUPPORTED"};
    const char *ss = ra_status_string((ra_status)x);
    FZ_CHECK(ss != NULL && ss[0] != '\0', "ra_status_string(%d) is NULL or empty", (int)x);
    if (x >= 0 && x <= 9) {
        size_t n = strlen(status_names[x]);
        FZ_CHECK(strncmp(ss, status_names[x], n) == 0 && (ss[n] == ':' || ss[n] == '\0'),
                 "ra_status_string(%d) = \"%s\"", (int)x, ss);
    }

    /* Versions and the function table. */
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", RA_VERSION_MAJOR, RA_VERSION_MINOR, RA_VERSION_PATCH);
    FZ_CHECK(ra_version_number() == RA_VERSION_NUMBER && strcmp(ra_version_string(), v) == 0,
             "version %u \"%s\"", ra_version_number(), ra_version_string());
    uint32_t abi = fz_u8(in) < 128 ? RA_API_VERSION : fz_u32(in);
    const ra_api *api = ra_get_api(abi);
    if (abi < 1 || abi > RA_API_VERSION) {
        FZ_CHECK(api == NULL, "ra_get_api(%u) is not NULL", abi);
    } else {
        FZ_CHECK(api && api->struct_size == sizeof(ra_api) && api->abi_version == abi,
                 "ra_get_api(%u): bad table", abi);
        FZ_CHECK(api->version_number() == ra_version_number() &&
                     api->kernel_resolve(NULL) == ra_kernel_resolve(NULL) &&
                     api->status_string(RA_ERR_SHAPE) == ra_status_string(RA_ERR_SHAPE),
                 "ra_get_api(%u): table entries disagree with the functions", abi);
    }
}
