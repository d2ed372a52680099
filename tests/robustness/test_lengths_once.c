/* The caller's lengths are read once, while validating: a caller that rewrites its lengths
 * array during a call (a bug, or another thread) cannot move a K/V read out of bounds or make
 * the plan disagree with itself. The deterministic test binds a call (validation and the copy),
 * then overwrites the caller's lengths, then runs the engine: the result must be the one for
 * the validated lengths. The stress test rewrites the lengths from another thread while calls
 * run: every result must be the one for one of the values the array held. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "attn_case.h"
#include "decode.h"
#include "problem.h"
#include "reference.h"

enum { B_ = RA_R_B, S_ = RA_R_S, HQ_ = RA_R_HQ, HKV_ = RA_R_HKV, D_ = RA_R_D, ONE_ = RA_R_ONE };

/* The shapes of ra_ragged_gqa and ra_reference_gqa, bound straight to their engines. */
static const ra__signature ragged_gqa = {
    "ragged_gqa", {4, {B_, ONE_, HQ_, D_}}, {4, {B_, S_, HKV_, D_}}, {4, {B_, ONE_, HQ_, D_}},
    {4, {B_, ONE_, HQ_, ONE_}}, false, false, false, false};
static const ra__signature reference_gqa = {
    "reference_gqa", {3, {B_, HQ_, D_}}, {4, {B_, HKV_, S_, D_}}, {4, {B_, ONE_, HQ_, D_}},
    {4, {B_, ONE_, HQ_, ONE_}}, false, true, false, false};

/* Binds c's call, then sets every length of the caller's array to S (valid, but the inputs
 * hold NaN past each real length, so a read of the new lengths shows), then runs the engine. */
static void bind_then_rewrite(tc_case *c, const ra__signature *sig,
                              ra_status (*engine)(const ra__problem *), int threads)
{
    ra_options *opts;
    assert_int_equal(ra_options_create(&opts), RA_OK);
    assert_int_equal(ra_options_set_num_threads(opts, threads), RA_OK);
    assert_int_equal(ra_options_set_split_tokens(opts, 64), RA_OK); /* several chunks each */
    or_buf_fill_bytes(&c->o, 0xFF);
    or_buf_fill_bytes(&c->m, 0xFF);
    or_buf_fill_bytes(&c->l, 0xFF);
    ra__problem p;
    assert_int_equal(ra__bind(sig, opts, c->q.t, c->k.t, c->v.t, NULL, c->len.t, NULL, c->o.t,
                              c->m.t, c->l.t, &p), RA_OK);
    int32_t *caller = (int32_t *)c->len.data;
    for (int64_t b = 0; b < c->p.B; b++)
        caller[b * c->len.strides[0]] = (int32_t)c->p.S;
    assert_int_equal(engine(&p), RA_OK);
    ra__problem_release(&p);
    ra_options_destroy(opts);
    or_buf_gather_f32(&c->o, c->got_o);
    or_buf_gather_f32(&c->m, c->got_m);
    or_buf_gather_f32(&c->l, c->got_l);
    c->stray_writes = 0;
}

static void test_engine_uses_the_validated_copy(void **state)
{
    (void)state;
    /* B = 5 fits the problem's inline copy; B = 40 takes an allocated one. */
    const int64_t batches[] = {5, 40};
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++)
        for (int threads = 1; threads <= 2; threads++) {
            tc_params rp = {.fn = TC_RAGGED_GQA, .B = batches[i], .Hq = 4, .Hkv = 2, .S = 200,
                            .D = 16, .seed = 70 + i};
            tc_case c;
            tc_init(&c, &rp);
            bind_then_rewrite(&c, &ragged_gqa, ra__decode, threads);
            tc_check(&c, 1e-5, NULL);
            tc_free(&c);

            tc_params fp = rp;
            fp.fn = TC_REFERENCE_GQA;
            tc_init(&c, &fp);
            bind_then_rewrite(&c, &reference_gqa, ra__reference, threads);
            tc_check(&c, 1e-5, NULL);
            tc_free(&c);
        }
}

/* ---- another thread rewrites the lengths while calls run ---------------------------------- */

enum { SB = 6, SS = 300, SD = 8, SH = 4, ROUNDS = 300 };

typedef struct flipper {
    int32_t *len;
    const int32_t *a, *b; /* the two arrays it alternates between */
    atomic_int stop;
} flipper;

static void *flip(void *arg)
{
    flipper *f = arg;
    for (unsigned i = 0; !atomic_load(&f->stop); i++)
        for (int b = 0; b < SB; b++)
            __atomic_store_n(&f->len[b], (i & 1) ? f->a[b] : f->b[b], __ATOMIC_RELAXED);
    return NULL;
}

static void test_lengths_rewritten_during_calls(void **state)
{
    (void)state;
    static const int32_t short_len[SB] = {0, 1, 17, 64, 150, 299};
    static const int32_t long_len[SB] = {SS, 2, 18, 65, 151, SS};
    /* One case per length set, over the same inputs: the expectations to match. */
    tc_params p = {.fn = TC_RAGGED_GQA, .B = SB, .Hq = SH, .Hkv = 2, .S = SS, .D = SD,
                   .lengths = short_len, .seed = 91};
    tc_case want_short, want_long, c;
    tc_init(&want_short, &p);
    p.lengths = long_len;
    tc_init(&want_long, &p);
    tc_init(&c, &p);
    /* NaN past the short lengths would be read legitimately under the long ones: use the
     * long case's finite inputs everywhere. */
    memcpy(want_short.k.data, want_long.k.data, want_long.k.bytes);
    memcpy(want_short.v.data, want_long.v.data, want_long.v.bytes);
    tc_expect(&want_short);
    /* A fixed split: results are bitwise the same for any thread count, not for any split. */
    const tc_opts base = {.split_tokens = 64};
    assert_int_equal(tc_run(&want_short, &base), RA_OK);
    assert_int_equal(tc_run(&want_long, &base), RA_OK);

    flipper f = {(int32_t *)c.len.data, short_len, long_len, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, flip, &f), 0);
    int mismatches = 0;
    const int64_t per_b = SH * SD;
    for (int r = 0; r < ROUNDS; r++) {
        tc_opts o = base;
        o.num_threads = 1 + r % 2;
        assert_int_equal(tc_run(&c, &o), RA_OK);
        for (int64_t b = 0; b < SB; b++) {
            const float *got = c.got_o + b * per_b;
            bool as_short = !memcmp(got, want_short.got_o + b * per_b, sizeof(float) * per_b);
            bool as_long = !memcmp(got, want_long.got_o + b * per_b, sizeof(float) * per_b);
            mismatches += !as_short && !as_long;
        }
    }
    atomic_store(&f.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(mismatches, 0);
    tc_free(&c);
    tc_free(&want_short);
    tc_free(&want_long);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_uses_the_validated_copy),
        cmocka_unit_test(test_lengths_rewritten_during_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
