/* Options: building them from the fuzz bytes with checked setters, and the options operation,
 * which also covers the small entry points (names, versions, the function table). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"

static const fz_opts default_opts = {.block_size = 256, .scale = 1.0f, .mask = -0.7f * FLT_MAX,
                                     .kernel = RA_KERNEL_AUTO}; /* the rest 0: no modifiers */

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
        static const int64_t t[] = {0, 1, 2, 3, 4, 5, 2, 3, 4, 6, -1};
        ra_kernel x = (ra_kernel)FZ_PICK(in, t);
        bool known = (int)x >= RA_KERNEL_AUTO && (int)x <= RA_KERNEL_NEON;
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

/* ---- score modifiers -------------------------------------------------------------------- */

bool fz_mods_active(const fz_mods *m)
{
    return m->softcap != 0.0f || m->window != 0 || m->n_sinks > 0 || m->n_alibi > 0;
}

bool fz_visible(const fz_mods *m, int64_t len, int64_t t)
{
    /* t >= len - window, written so that no huge window or bad length overflows */
    return m->window <= 0 || t < m->sink_positions || m->window >= len - t;
}

void fz_mods_describe(const fz_mods *m)
{
    fprintf(stderr, "  modifiers: softcap %a, window %lld, sink_positions %lld, %lld sinks, "
            "%lld slopes\n", (double)m->softcap, (long long)m->window,
            (long long)m->sink_positions, (long long)m->n_sinks, (long long)m->n_alibi);
    for (int64_t i = 0; i < m->n_sinks; i++)
        fprintf(stderr, "    sinks[%lld] = %a\n", (long long)i, (double)m->sinks[i]);
    for (int64_t i = 0; i < m->n_alibi; i++)
        fprintf(stderr, "    slopes[%lld] = %a\n", (long long)i, (double)m->alibi[i]);
}

fz_in fz_split_trailer(fz_in *in, uint8_t m0, uint8_t m1)
{
    fz_in none = {NULL, 0};
    const size_t n = in->n;
    if (n < 3 || in->p[n - 2] != m0 || in->p[n - 1] != m1)
        return none;
    size_t k = in->p[n - 3];
    if (k > n - 3)
        k = n - 3;
    in->n = n - 3 - k;
    fz_in tail = {in->p + in->n, k};
    return tail;
}

fz_in fz_split_mods(fz_in *in)
{
    return fz_split_trailer(in, 0x6D, 0xD6);
}

/* A per-head tensor for set_sinks (is_sinks) or set_alibi, built from the fuzz bytes: mostly
 * f32 [Hq], sometimes another length (the call then fails with RA_ERR_SHAPE), 0 elements,
 * another dtype or rank, strided or broadcast, with a NaN or an infinity planted. Sets it, checks
 * the status against the header, and on success records the values in e. The tensor's memory is
 * poisoned and freed right after: the options must hold a copy. */
static void set_per_head(fz_in *in, ra_options *o, fz_mods *e, int64_t Hq, bool is_sinks)
{
    const char *what = is_sinks ? "set_sinks" : "set_alibi";
    const uint8_t form = fz_u8(in);
    if (form % 16 == 15) { /* NULL turns the modifier off */
        fz_mark_last_error();
        ra_status s = is_sinks ? ra_options_set_sinks(o, NULL) : ra_options_set_alibi(o, NULL);
        FZ_CHECK(s == RA_OK, "%s(NULL) returned %d", what, (int)s);
        *(is_sinks ? &e->n_sinks : &e->n_alibi) = 0;
        return;
    }
    const int64_t lengths[] = {Hq, Hq, Hq, Hq, Hq, Hq + 1, Hq > 0 ? Hq - 1 : 0, 1, 0, 65};
    const int64_t n = lengths[(form >> 4) % 10];
    FZ_CHECK(n <= FZ_MAX_HEADS, "%s: %lld heads exceed the harness's FZ_MAX_HEADS", what,
             (long long)n);
    const uint8_t shape = fz_u8(in);
    static const ra_dtype other_dt[] = {RA_DTYPE_F16, RA_DTYPE_BF16, RA_DTYPE_I32};
    const ra_dtype dt = shape % 8 == 7 ? other_dt[(shape >> 3) % 3] : RA_DTYPE_F32;
    const int rank = (shape >> 5) % 4 == 3 ? 2 : 1; /* [1, n] */
    const int64_t stride = (shape >> 7) ? 2 : 1;    /* every other element */
    const bool broadcast = (form & 8) && n > 0;     /* stride 0: one value for every head */
    const int64_t st = broadcast ? 0 : stride;
    const size_t slots = broadcast ? 1 : (size_t)(n * stride);
    float *buf = malloc(sizeof(float) * (slots ? slots : 1));
    FZ_CHECK(buf != NULL, "harness out of memory");
    memset(buf, 0xff, sizeof(float) * (slots ? slots : 1));

    /* Values: sinks around the logits' range, -inf for a head without one, and extremes;
     * slopes geometric as in ALiBi, 0, negative, large. */
    static const float sink_vals[] = {0.0f, -1.0f, 2.0f, -2.5f, 10.0f, -INFINITY, 0.5f, -100.0f,
                                      88.0f, 1e30f, -1e30f, 3.0f, -0.0f, 1e-41f, 40.0f, -8.0f};
    static const float slope_vals[] = {0.5f, 0.25f, 0.0625f, 0x1p-8f, 1.0f, 0.0f, -0.5f, 8.0f,
                                       1e-3f, 100.0f, 1e30f, -1e-41f, 0.125f, 2.0f, -4.0f, 0.03f};
    const uint8_t vals = fz_u8(in);
    for (int64_t i = 0; i < (broadcast ? 1 : n); i++) {
        const float x = is_sinks ? sink_vals[(vals + 5 * i) % 16] : slope_vals[(vals + 3 * i) % 16];
        if (vals % 4 == 3 && !is_sinks) /* ALiBi's own: 2^(-8(h+1)/Hq) */
            buf[i * stride] = exp2f(-8.0f * (float)(i + 1) / (float)(n ? n : 1));
        else
            buf[i * stride] = x;
    }
    const uint8_t plant = fz_u8(in);
    if (plant >= 224 && n > 0) { /* one bad or edge value */
        static const float bad[] = {NAN, INFINITY, -INFINITY, -NAN};
        buf[broadcast ? 0 : ((int64_t)plant % n) * stride] = bad[plant % 4];
    }
    bool values_ok = true;
    for (int64_t i = 0; i < n; i++) {
        const float x = buf[i * st];
        values_ok &= isfinite(x) || (is_sinks && x == -INFINITY);
    }

    ra_tensor *t = NULL;
    const int64_t dims[2] = {rank == 2 ? 1 : n, n};
    const int64_t strides[2] = {rank == 2 ? n * stride : st, st};
    const int64_t *shape_p = rank == 2 ? dims : &dims[1];
    const int64_t *strides_p = rank == 2 ? strides : &strides[1];
    ra_status s = ra_tensor_wrap(&t, dt, rank, shape_p, strides_p, slots ? buf : NULL);
    FZ_CHECK(s == RA_OK && t, "wrapping a %s tensor failed: %d", what, (int)s);

    fz_expect ex = {0, 0};
    const bool structure_ok = dt == RA_DTYPE_F32 && rank == 1 && n >= 1;
    if (dt != RA_DTYPE_F32)
        ex.must |= FZ_BIT(RA_ERR_DTYPE);
    if (rank != 1 || n < 1)
        ex.must |= FZ_BIT(RA_ERR_SHAPE);
    if (!values_ok) /* judged only once the dtype and shape are right */
        (structure_ok ? &ex.must : &ex.may)[0] |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
    fz_mark_last_error();
    s = is_sinks ? ra_options_set_sinks(o, t) : ra_options_set_alibi(o, t);
    fz_check_status(&ex, s, what);
    if (s != RA_OK) {
        fz_check_new_error(what);
    } else {
        int64_t *count = is_sinks ? &e->n_sinks : &e->n_alibi;
        float *keep = is_sinks ? e->sinks : e->alibi;
        *count = n;
        for (int64_t i = 0; i < n; i++)
            keep[i] = buf[i * st];
    }
    memset(buf, 0xff, sizeof(float) * (slots ? slots : 1));
    ra_tensor_destroy(t);
    free(buf);
}

void fz_build_modifiers(fz_in *in, ra_options **o, fz_opts *e, int64_t Hq)
{
    if (!in->p)
        return;
    if (!*o)
        FZ_CHECK(ra_options_create(o) == RA_OK && *o, "ra_options_create failed");
    fz_mods *m = &e->mods;
    ra_status s;
    for (int calls = 1 + fz_u8(in) % 6; calls > 0; calls--) {
        switch (fz_u8(in) % 4) {
        case 0: {
            static const float caps[] = {30.0f, 50.0f, 5.0f, 1.0f, 0.5f, 0.0f, 20.0f, 1e-3f,
                                         1e30f, FLT_MAX, 1e-41f, -0.0f, NAN, -1.0f, INFINITY,
                                         -INFINITY};
            const float cap = caps[fz_u8(in) % 16];
            fz_mark_last_error();
            s = ra_options_set_softcap(*o, cap);
            /* "finite and >= 0": -0.0 is >= 0, and turns the soft-cap off like 0 */
            check_setter(s, isfinite(cap) && cap >= 0.0f, RA_ERR_INVALID_ARGUMENT, false,
                         "set_softcap");
            if (s == RA_OK)
                m->softcap = cap;
            break;
        }
        case 1: {
            static const int64_t windows[] = {1, 2, 3, 5, 8, 16, 31, 32, 33, 64, 100, 256, 0,
                                              INT64_MAX, -1, INT64_MIN};
            static const int64_t sinks[] = {0, 0, 0, 1, 2, 4, 7, 16, 33, 64, INT64_MAX, -1};
            const int64_t w = windows[fz_u8(in) % 16];
            const int64_t sp = sinks[fz_u8(in) % 12];
            fz_mark_last_error();
            s = ra_options_set_window(*o, w, sp);
            check_setter(s, w >= 0 && sp >= 0 && (w > 0 || sp == 0), RA_ERR_INVALID_ARGUMENT,
                         false, "set_window");
            if (s == RA_OK) {
                m->window = w;
                m->sink_positions = sp;
            }
            break;
        }
        case 2:
            set_per_head(in, *o, m, Hq, true);
            break;
        default:
            set_per_head(in, *o, m, Hq, false);
            break;
        }
    }
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
                 ra_options_set_num_threads(o, threads) == RA_OK &&
                 ra_options_set_softcap(o, e->mods.softcap) == RA_OK &&
                 ra_options_set_window(o, e->mods.window, e->mods.sink_positions) == RA_OK,
             "re-applying accepted option values failed");
    const int64_t *n[2] = {&e->mods.n_sinks, &e->mods.n_alibi};
    const float *vals[2] = {e->mods.sinks, e->mods.alibi};
    for (int i = 0; i < 2; i++) {
        if (*n[i] == 0)
            continue;
        ra_tensor *t = NULL;
        FZ_CHECK(ra_tensor_wrap(&t, RA_DTYPE_F32, 1, n[i], NULL, (void *)vals[i]) == RA_OK,
                 "wrapping accepted per-head values failed");
        ra_status s = i ? ra_options_set_alibi(o, t) : ra_options_set_sinks(o, t);
        FZ_CHECK(s == RA_OK, "re-applying accepted per-head values failed: %d", (int)s);
        ra_tensor_destroy(t);
    }
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
        {"set_softcap(NULL)", ra_options_set_softcap(NULL, 30.0f)},
        {"set_window(NULL)", ra_options_set_window(NULL, 64, 4)},
        {"set_sinks(NULL)", ra_options_set_sinks(NULL, NULL)},
        {"set_alibi(NULL)", ra_options_set_alibi(NULL, NULL)},
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
