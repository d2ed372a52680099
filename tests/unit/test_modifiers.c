/* Score modifiers (ra_options_set_softcap, _window, _sinks, _alibi) against the test's own
 * double-precision oracle (or_attention_mod), each alone and all together, on every kernel,
 * the dtype pairs the kernels specialize, MQA, MHA and GQA shapes (both AVX-512 walks), with
 * and without split-KV, bitwise the same for 1, 2 and 3 threads. Positions outside a window
 * hold NaN, so a kernel that read them would fail. Then sharding with a sink, and every bad
 * value. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"

enum { NB = 7, NS = 150, ND = 32 };

static const ra_kernel kernels[] = {RA_KERNEL_AUTO, RA_KERNEL_PORTABLE, RA_KERNEL_BLAS,
                                    RA_KERNEL_AVX2, RA_KERNEL_AVX512, RA_KERNEL_NEON};

/* Lengths around the window (37) and its sink positions (5), and 0. */
static const int32_t lengths[NB] = {0, 1, 36, 37, 38, NS, 91};

static float sinks_for[16], slopes_for[16];

static void fill_per_head(int64_t Hq)
{
    for (int64_t h = 0; h < Hq; h++) {
        sinks_for[h] = h == 1 ? -INFINITY : (float)(0.75 * (double)h - 2.0);
        slopes_for[h] = powf(2.0f, -1.0f - (float)h); /* ALiBi's geometric slopes */
    }
}

/* Positions that a window (and its sink positions) leaves out get NaN in k and v. */
static void poison_outside(tc_case *c, const or_modifiers *mod)
{
    if (!mod->window)
        return;
    for (int64_t b = 0; b < c->d.B; b++)
        for (int64_t t = mod->sink_positions; t < c->lengths[b] - mod->window; t++)
            for (int64_t j = 0; j < c->d.Hkv; j++)
                for (int64_t x = 0; x < c->d.D; x++) {
                    tc_set_k(c, b, t, j, x, NAN);
                    tc_set_v(c, b, t, j, x, NAN);
                }
}

static const char *mod_name(const or_modifiers *m)
{
    static char buf[96];
    snprintf(buf, sizeof buf, "cap %g window %lld+%lld%s%s", m->softcap, (long long)m->window,
             (long long)m->sink_positions, m->sinks ? " sinks" : "", m->alibi ? " alibi" : "");
    return buf;
}

static void one_config(tc_fn fn, int64_t Hq, int64_t Hkv, ra_dtype qdt, ra_dtype kdt,
                       const or_modifiers *mod, uint64_t seed)
{
    /* inputs in [-2, 2): logits up to about 40, where a cap of 5 bends them */
    tc_params p = {.fn = fn, .B = NB, .Hq = Hq, .Hkv = Hkv, .S = NS, .D = ND, .qdt = qdt,
                   .kdt = kdt, .vdt = kdt, .lengths = lengths, .seed = seed, .lo = -2,
                   .hi = 2};
    tc_case c;
    tc_init(&c, &p);
    poison_outside(&c, mod);
    tc_expect_mod(&c, mod);
    const size_t n_o = (size_t)(NB * Hq * ND), n_ml = (size_t)(NB * Hq);
    float *o1 = malloc(sizeof(float) * n_o), *m1 = malloc(sizeof(float) * n_ml);
    assert_true(o1 && m1);
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
        if (!tc_kernel_available(kernels[k]))
            continue;
        for (int64_t split = 0; split <= 32; split += 32)
            for (int threads = 1; threads <= 3; threads++) {
                tc_opts o = {.kernel = kernels[k], .split_tokens = split,
                             .num_threads = threads, .mod = mod};
                assert_int_equal(tc_run(&c, &o), RA_OK);
                char key[160];
                snprintf(key, sizeof key, "%s %s", tc_fn_name(fn), mod_name(mod));
                if (threads == 1) {
                    tc_check(&c, 1e-5, key);
                    memcpy(o1, c.got_o, sizeof(float) * n_o);
                    memcpy(m1, c.got_m, sizeof(float) * n_ml);
                } else if (memcmp(o1, c.got_o, sizeof(float) * n_o) ||
                           memcmp(m1, c.got_m, sizeof(float) * n_ml)) {
                    fail_msg("%s, kernel %s, split %lld: %d threads differ from 1 in bits",
                             key, ra_kernel_name(kernels[k]), (long long)split, threads);
                }
            }
    }
    free(o1);
    free(m1);
    tc_free(&c);
}

static void run_all(const or_modifiers *mod)
{
    static const struct {
        tc_fn fn;
        int64_t Hq, Hkv;
    } shapes[] = {{TC_RAGGED_MQA, 8, 1},
                  {TC_RAGGED_MHA, 4, 4},  /* AVX-512 row walk */
                  {TC_RAGGED_GQA, 4, 2},  /* AVX-512 row walk */
                  {TC_RAGGED_GQA, 8, 2}}; /* AVX-512 head-by-head walk */
    static const ra_dtype dts[][2] = {{RA_DTYPE_F32, RA_DTYPE_F32},
                                      {RA_DTYPE_F32, RA_DTYPE_BF16},
                                      {RA_DTYPE_F32, RA_DTYPE_F16},
                                      {RA_DTYPE_BF16, RA_DTYPE_BF16}}; /* q and K bf16 pairs */
    uint64_t seed = 1000;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        fill_per_head(shapes[s].Hq);
        for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
            one_config(shapes[s].fn, shapes[s].Hq, shapes[s].Hkv, dts[d][0], dts[d][1], mod,
                       seed++);
    }
}

static void test_softcap(void **state)
{
    (void)state;
    or_modifiers mod = {.softcap = 5.0};
    run_all(&mod);
}

static void test_alibi(void **state)
{
    (void)state;
    or_modifiers mod = {.alibi = slopes_for};
    run_all(&mod);
}

static void test_window(void **state)
{
    (void)state;
    or_modifiers mod = {.window = 37};
    run_all(&mod);
    or_modifiers with_sink_positions = {.window = 37, .sink_positions = 5};
    run_all(&with_sink_positions);
}

static void test_sinks(void **state)
{
    (void)state;
    or_modifiers mod = {.sinks = sinks_for};
    run_all(&mod);
}

static void test_all_together(void **state)
{
    (void)state;
    or_modifiers mod = {.softcap = 5.0, .window = 37, .sink_positions = 5, .sinks = sinks_for,
                        .alibi = slopes_for};
    run_all(&mod);
}

/* A sequence cut in two calls merged with ra_merge: with the sinks on one part only, the
 * result is the single call's. */
static void test_sink_counts_once_across_parts(void **state)
{
    (void)state;
    enum { B = 2, H = 4, S = 96, D = 16, CUT = 40 };
    int32_t full_len[B] = {S, 70}, first_len[B] = {CUT, CUT}, rest_len[B] = {S - CUT, 70 - CUT};
    fill_per_head(H);
    tc_params p = {.fn = TC_RAGGED_GQA, .B = B, .Hq = H, .Hkv = 2, .S = S, .D = D,
                   .lengths = full_len, .seed = 77};
    tc_case whole;
    tc_init(&whole, &p);
    or_modifiers mod = {.sinks = sinks_for};
    tc_expect_mod(&whole, &mod);
    const tc_opts with_sinks = {.mod = &mod};
    assert_int_equal(tc_run(&whole, &with_sinks), RA_OK);
    tc_check(&whole, 1e-5, NULL);

    /* the two parts: strided views of the same cache, positions [0, CUT) and [CUT, ..) */
    const int64_t qs[4] = {B, 1, H, D}, ks[4] = {B, CUT, 2, D}, ks2[4] = {B, S - CUT, 2, D},
                  ms[4] = {B, 1, H, 1}, ls[1] = {B};
    ra_tensor *k1, *v1, *k2, *v2, *l1, *l2, *po[2], *pm[2], *pl[2], *out;
    float o_part[2][B * H * D], m_part[2][B * H], l_part[2][B * H], merged[B * H * D];
    const size_t es = sizeof(float), row = (size_t)(2 * D) * es;
    assert_int_equal(ra_tensor_wrap(&k1, RA_DTYPE_F32, 4, ks, whole.k.strides, whole.k.data), RA_OK);
    assert_int_equal(ra_tensor_wrap(&v1, RA_DTYPE_F32, 4, ks, whole.v.strides, whole.v.data), RA_OK);
    assert_int_equal(ra_tensor_wrap(&k2, RA_DTYPE_F32, 4, ks2, whole.k.strides,
                                    whole.k.data + CUT * row), RA_OK);
    assert_int_equal(ra_tensor_wrap(&v2, RA_DTYPE_F32, 4, ks2, whole.v.strides,
                                    whole.v.data + CUT * row), RA_OK);
    assert_int_equal(ra_tensor_wrap(&l1, RA_DTYPE_I32, 1, ls, NULL, first_len), RA_OK);
    assert_int_equal(ra_tensor_wrap(&l2, RA_DTYPE_I32, 1, ls, NULL, rest_len), RA_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ra_tensor_wrap(&po[i], RA_DTYPE_F32, 4, qs, NULL, o_part[i]), RA_OK);
        assert_int_equal(ra_tensor_wrap(&pm[i], RA_DTYPE_F32, 4, ms, NULL, m_part[i]), RA_OK);
        assert_int_equal(ra_tensor_wrap(&pl[i], RA_DTYPE_F32, 4, ms, NULL, l_part[i]), RA_OK);
    }
    assert_int_equal(ra_tensor_wrap(&out, RA_DTYPE_F32, 4, qs, NULL, merged), RA_OK);
    ra_options *a, *plain;
    const int64_t hs[1] = {H};
    ra_tensor *sinks;
    assert_int_equal(ra_tensor_wrap(&sinks, RA_DTYPE_F32, 1, hs, NULL, sinks_for), RA_OK);
    assert_int_equal(ra_options_create(&a), RA_OK);
    assert_int_equal(ra_options_create(&plain), RA_OK);
    assert_int_equal(ra_options_set_sinks(a, sinks), RA_OK);
    assert_int_equal(ra_ragged_gqa(a, whole.q.t, k1, v1, l1, po[0], pm[0], pl[0]), RA_OK);
    assert_int_equal(ra_ragged_gqa(plain, whole.q.t, k2, v2, l2, po[1], pm[1], pl[1]), RA_OK);
    const ra_tensor *os_[2] = {po[0], po[1]}, *ms_[2] = {pm[0], pm[1]}, *ls_[2] = {pl[0], pl[1]};
    assert_int_equal(ra_merge(2, os_, ms_, ls_, out, NULL, NULL), RA_OK);
    or_err e = or_compare(merged, whole.expect.o, B * H * D);
    if (e.nonfinite || e.rel > 1e-5)
        fail_msg("two parts with the sinks on one differ from one call: %.3g", e.rel);
    ra_tensor *all[] = {k1, v1, k2, v2, l1, l2, po[0], po[1], pm[0], pm[1], pl[0], pl[1], out,
                        sinks};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ra_tensor_destroy(all[i]);
    ra_options_destroy(a);
    ra_options_destroy(plain);
    tc_free(&whole);
}

/* ---- bad values ------------------------------------------------------------------------ */

static void expect_status(ra_status got, ra_status want, const char *word)
{
    if (got != want)
        fail_msg("expected %s, got %s (%s)", ra_status_string(want), ra_status_string(got),
                 ra_last_error());
    if (!or_msg_names(ra_last_error(), word))
        fail_msg("the message '%s' does not name %s", ra_last_error(), word);
}

static void test_bad_values(void **state)
{
    (void)state;
    ra_options *o;
    assert_int_equal(ra_options_create(&o), RA_OK);
    const float caps[] = {NAN, -1.0f, INFINITY};
    for (size_t i = 0; i < 3; i++)
        expect_status(ra_options_set_softcap(o, caps[i]), RA_ERR_INVALID_ARGUMENT, "cap");
    expect_status(ra_options_set_softcap(NULL, 1.0f), RA_ERR_INVALID_ARGUMENT, "options");
    expect_status(ra_options_set_window(o, -1, 0), RA_ERR_INVALID_ARGUMENT, "window");
    expect_status(ra_options_set_window(o, 8, -1), RA_ERR_INVALID_ARGUMENT, "sink_positions");
    expect_status(ra_options_set_window(o, 0, 4), RA_ERR_INVALID_ARGUMENT, "sink_positions");

    float vals[4] = {0.5f, 1.0f, NAN, 2.0f};
    const int64_t h4[1] = {4}, h22[2] = {2, 2}, h0[1] = {0};
    ra_tensor *nan4, *rank2, *empty, *f16;
    uint16_t halfs[4] = {0};
    assert_int_equal(ra_tensor_wrap(&nan4, RA_DTYPE_F32, 1, h4, NULL, vals), RA_OK);
    assert_int_equal(ra_tensor_wrap(&rank2, RA_DTYPE_F32, 2, h22, NULL, vals), RA_OK);
    assert_int_equal(ra_tensor_wrap(&empty, RA_DTYPE_F32, 1, h0, NULL, NULL), RA_OK);
    assert_int_equal(ra_tensor_wrap(&f16, RA_DTYPE_F16, 1, h4, NULL, halfs), RA_OK);
    expect_status(ra_options_set_sinks(o, nan4), RA_ERR_INVALID_ARGUMENT, "sinks");
    expect_status(ra_options_set_alibi(o, nan4), RA_ERR_INVALID_ARGUMENT, "slopes");
    vals[2] = INFINITY; /* a sink of +inf would swallow every head; a slope must be finite */
    expect_status(ra_options_set_sinks(o, nan4), RA_ERR_INVALID_ARGUMENT, "sinks");
    expect_status(ra_options_set_alibi(o, nan4), RA_ERR_INVALID_ARGUMENT, "slopes");
    vals[2] = -INFINITY; /* -inf: no sink for that head */
    assert_int_equal(ra_options_set_sinks(o, nan4), RA_OK);
    expect_status(ra_options_set_alibi(o, nan4), RA_ERR_INVALID_ARGUMENT, "slopes");
    expect_status(ra_options_set_sinks(o, rank2), RA_ERR_SHAPE, "sinks");
    expect_status(ra_options_set_alibi(o, empty), RA_ERR_SHAPE, "slopes");
    expect_status(ra_options_set_sinks(o, f16), RA_ERR_DTYPE, "sinks");

    /* sinks of 4 heads on a call with 8: RA_ERR_SHAPE, outputs untouched */
    tc_params p = {.fn = TC_RAGGED_GQA, .B = 2, .Hq = 8, .Hkv = 2, .S = 16, .D = 8, .seed = 5};
    tc_case c;
    tc_init(&c, &p);
    or_buf_fill_bytes(&c.o, 0xAB);
    expect_status(ra_ragged_gqa(o, c.q.t, c.k.t, c.v.t, c.len.t, c.o.t, NULL, NULL),
                  RA_ERR_SHAPE, "sinks");
    for (size_t i = 0; i < c.o.bytes; i++)
        assert_int_equal(c.o.data[i], 0xAB);
    tc_free(&c);

    /* the reference functions compute the seed's arithmetic only */
    ra_options *w;
    assert_int_equal(ra_options_create(&w), RA_OK);
    assert_int_equal(ra_options_set_window(w, 4, 0), RA_OK);
    tc_params rp = {.fn = TC_REFERENCE_GQA, .B = 2, .Hq = 4, .Hkv = 2, .S = 16, .D = 8,
                    .seed = 6};
    tc_init(&c, &rp);
    or_buf_fill_bytes(&c.o, 0xAB);
    expect_status(ra_reference_gqa(w, c.q.t, c.k.t, c.v.t, c.len.t, c.o.t, NULL, NULL),
                  RA_ERR_UNSUPPORTED, "window");
    for (size_t i = 0; i < c.o.bytes; i++)
        assert_int_equal(c.o.data[i], 0xAB);
    tc_free(&c);

    /* clearing: NULL tensors and zeros turn every modifier off again */
    assert_int_equal(ra_options_set_sinks(o, NULL), RA_OK);
    assert_int_equal(ra_options_set_alibi(o, NULL), RA_OK);
    assert_int_equal(ra_options_set_window(w, 0, 0), RA_OK);
    tc_init(&c, &rp);
    assert_int_equal(ra_reference_gqa(w, c.q.t, c.k.t, c.v.t, c.len.t, c.o.t, NULL, NULL), RA_OK);
    tc_free(&c);
    ra_tensor *all[] = {nan4, rank2, empty, f16};
    for (int i = 0; i < 4; i++)
        ra_tensor_destroy(all[i]);
    ra_options_destroy(o);
    ra_options_destroy(w);
}

static int print_stats(void **state)
{
    (void)state;
    or_stat_print("score modifiers");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softcap),
        cmocka_unit_test(test_alibi),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_sinks),
        cmocka_unit_test(test_all_together),
        cmocka_unit_test(test_sink_counts_once_across_parts),
        cmocka_unit_test(test_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, print_stats);
}
