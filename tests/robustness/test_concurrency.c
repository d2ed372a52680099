#define _POSIX_C_SOURCE 200809L /* pthread_barrier_t */
/* Concurrency: 8 pthreads call every entry point at the same time, on shared read-only inputs
 * (tensors and one options object used by all) and on their own inputs and outputs, with
 * num_threads varying from call to call. Every result must match the single-threaded result
 * bitwise, and each thread's ra_last_error must stay its own. The threads only record what
 * they see; cmocka (not thread-safe) checks it after the join. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"

enum { N_THREADS = 8, N_ITERS = 20, N_KERNELS = 4, N_PARTS = 3 };

typedef ra_status (*attn_fn)(const ra_options *, const ra_tensor *, const ra_tensor *,
                             const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                             ra_tensor *);
static const attn_fn fns[TC_FN_COUNT] = {ra_ragged_mqa,    ra_ragged_mha,    ra_ragged_gqa,
                                         ra_reference_mqa, ra_reference_mha, ra_reference_gqa};
static const ra_kernel kernels[N_KERNELS] = {RA_KERNEL_AUTO, RA_KERNEL_PORTABLE, RA_KERNEL_BLAS,
                                             RA_KERNEL_AVX2};

/* Outputs shaped like a case's: one set per thread and case, plus the references. */
typedef struct outset {
    or_buf o, m, l;
} outset;

static tc_case cases[TC_FN_COUNT];     /* shared, read-only inputs */
static outset ref[TC_FN_COUNT][N_KERNELS]; /* single-threaded results */
static bool kernel_ok[N_KERNELS];
static outset mine[N_THREADS][TC_FN_COUNT];
static ra_options *shared_opts;         /* used by every thread at once */
static or_buf parts[3][N_PARTS], merged_ref[3], merged[N_THREADS][3];
static or_buf bad_len[N_THREADS];       /* each thread's invalid lengths */
static int64_t cost_ref[3];
static pthread_barrier_t barrier;

typedef struct result {
    int mismatches;
    char first[256];
} result;
static result results[N_THREADS];

static void note(result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(result *r, const char *fmt, ...)
{
    if (r->mismatches++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->first, sizeof r->first, fmt, ap);
        va_end(ap);
    }
}

static void outset_like(outset *s, const tc_case *c)
{
    const or_buf *src[3] = {&c->o, &c->m, &c->l};
    or_buf *dst[3] = {&s->o, &s->m, &s->l};
    for (int i = 0; i < 3; i++)
        or_buf_init(dst[i], RA_DTYPE_F32, src[i]->rank, src[i]->shape, src[i]->strides);
}

static void outset_free(outset *s)
{
    or_buf_free(&s->o);
    or_buf_free(&s->m);
    or_buf_free(&s->l);
}

static ra_status run_case(int fn, const ra_options *o, outset *s)
{
    tc_case *c = &cases[fn];
    or_buf_fill_bytes(&s->o, 0xFF);
    or_buf_fill_bytes(&s->m, 0xFF);
    or_buf_fill_bytes(&s->l, 0xFF);
    return fns[fn](o, c->q.t, c->k.t, c->v.t, c->len.t, s->o.t, s->m.t, s->l.t);
}

static bool same(const outset *a, const outset *b)
{
    return !memcmp(a->o.data, b->o.data, a->o.bytes) &&
           !memcmp(a->m.data, b->m.data, a->m.bytes) && !memcmp(a->l.data, b->l.data, a->l.bytes);
}

static ra_status run_merge(or_buf *out)
{
    const ra_tensor *o[N_PARTS], *m[N_PARTS], *l[N_PARTS];
    for (int i = 0; i < N_PARTS; i++)
        o[i] = parts[0][i].t, m[i] = parts[1][i].t, l[i] = parts[2][i].t;
    for (int i = 0; i < 3; i++)
        or_buf_fill_bytes(&out[i], 0xFF);
    return ra_merge(N_PARTS, o, m, l, out[0].t, out[1].t, out[2].t);
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    result *r = &results[id];
    ra_options *opts = NULL;
    if (ra_options_create(&opts) != RA_OK) {
        note(r, "ra_options_create failed");
        return NULL;
    }
    for (int it = 0; it < N_ITERS; it++) {
        /* Every attention function, every kernel, with a thread count that keeps changing. */
        for (int fn = 0; fn < TC_FN_COUNT; fn++)
            for (int k = 0; k < N_KERNELS; k++) {
                if (!kernel_ok[k])
                    continue;
                int threads = (id + it + fn + k) % 4;
                if (ra_options_set_kernel(opts, kernels[k]) != RA_OK ||
                    ra_options_set_num_threads(opts, threads) != RA_OK) {
                    note(r, "setting options failed");
                    continue;
                }
                ra_status s = run_case(fn, opts, &mine[id][fn]);
                if (s != RA_OK || !same(&mine[id][fn], &ref[fn][k]))
                    note(r, "%s kernel %s with %d threads: status %d or bits differ from one "
                         "thread", tc_fn_name((tc_fn)fn), ra_kernel_name(kernels[k]), threads,
                         (int)s);
            }
        /* The options object every thread shares. */
        int fn = (id + it) % TC_FN_COUNT;
        if (run_case(fn, shared_opts, &mine[id][fn]) != RA_OK || !same(&mine[id][fn], &ref[fn][0]))
            note(r, "%s with the shared options differs", tc_fn_name((tc_fn)fn));
        /* Merge and cost estimate on shared inputs. */
        if (run_merge(merged[id]) != RA_OK)
            note(r, "ra_merge failed: %s", ra_last_error());
        for (int i = 0; i < 3; i++)
            if (memcmp(merged[id][i].data, merged_ref[i].data, merged_ref[i].bytes))
                note(r, "ra_merge output %d differs", i);
        int64_t f = 0, t = 0, b = 0;
        if (ra_mha_cost_estimate(cases[TC_RAGGED_MHA].q.t, cases[TC_RAGGED_MHA].k.t,
                                 cases[TC_RAGGED_MHA].v.t, cases[TC_RAGGED_MHA].len.t, &f, &t,
                                 &b) != RA_OK ||
            f != cost_ref[0] || t != cost_ref[1] || b != cost_ref[2])
            note(r, "ra_mha_cost_estimate differs");
        /* Handles. */
        int64_t shape[3] = {id + 1, 3, it + 2};
        ra_tensor *tt = NULL;
        if (ra_tensor_create(&tt, RA_DTYPE_BF16, 3, shape) != RA_OK ||
            ra_tensor_dim(tt, 0) != id + 1 || ra_tensor_stride(tt, 0) != 3 * (it + 2))
            note(r, "ra_tensor_create or its accessors misbehaved");
        ra_tensor_destroy(tt);
        ra_options *o2 = NULL;
        if (ra_options_create(&o2) != RA_OK || ra_options_set_block_size(o2, id + 1) != RA_OK)
            note(r, "options create/set failed");
        ra_options_destroy(o2);

        /* ra_last_error stays per thread: all threads fail at once with their own value,
         * then each reads its message back after the others have failed, and again after a
         * successful call of its own (which must not clear it). */
        char want[64];
        snprintf(want, sizeof want, "= %d", -1000 - id);
        tc_case *c = &cases[TC_RAGGED_GQA];
        ra_status s = ra_ragged_gqa(NULL, c->q.t, c->k.t, c->v.t, bad_len[id].t,
                                    mine[id][TC_RAGGED_GQA].o.t, NULL, NULL);
        if (s != RA_ERR_LENGTH)
            note(r, "invalid lengths gave status %d", (int)s);
        pthread_barrier_wait(&barrier);
        if (!strstr(ra_last_error(), want))
            note(r, "ra_last_error is \"%s\", expected this thread's \"%s\"", ra_last_error(),
                 want);
        run_case(TC_RAGGED_MQA, NULL, &mine[id][TC_RAGGED_MQA]);
        if (!strstr(ra_last_error(), want))
            note(r, "a successful call changed ra_last_error to \"%s\"", ra_last_error());
        pthread_barrier_wait(&barrier);
    }
    ra_options_destroy(opts);
    return NULL;
}

static void test_concurrent_calls(void **state)
{
    (void)state;
    static const ra_dtype dts[TC_FN_COUNT] = {RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16,
                                              RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F32};
    for (int k = 0; k < N_KERNELS; k++)
        kernel_ok[k] = tc_kernel_available(kernels[k]);
    ra_options *o1 = NULL;
    assert_int_equal(ra_options_create(&o1), RA_OK);
    assert_int_equal(ra_options_set_num_threads(o1, 1), RA_OK);
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        bool mqa = tc_fn_is_mqa((tc_fn)fn), mha = tc_fn_is_mha((tc_fn)fn);
        tc_params p = {.fn = (tc_fn)fn, .B = 3, .Hq = 4, .Hkv = mqa ? 1 : mha ? 4 : 2, .S = 70,
                       .D = 24, .qdt = dts[fn], .kdt = dts[fn], .vdt = dts[fn],
                       .seed = 700 + (uint64_t)fn, .layout = TC_LAYOUT_PADDED};
        tc_init(&cases[fn], &p);
        assert_int_equal(tc_run(&cases[fn], NULL), RA_OK);
        tc_check(&cases[fn], 1e-5, NULL); /* the shared inputs give right answers at all */
        for (int k = 0; k < N_KERNELS; k++) {
            outset_like(&ref[fn][k], &cases[fn]);
            if (!kernel_ok[k])
                continue;
            assert_int_equal(ra_options_set_kernel(o1, kernels[k]), RA_OK);
            assert_int_equal(run_case(fn, o1, &ref[fn][k]), RA_OK);
        }
        for (int t = 0; t < N_THREADS; t++)
            outset_like(&mine[t][fn], &cases[fn]);
    }
    ra_options_destroy(o1);
    assert_int_equal(ra_options_create(&shared_opts), RA_OK);
    assert_int_equal(ra_options_set_num_threads(shared_opts, 2), RA_OK);

    /* Merge parts: random (o, m, l) states of shape [2,1,3,20]. */
    or_rng rng = or_rng_seed(71);
    int64_t os[4] = {2, 1, 3, 20}, ms[4] = {2, 1, 3, 1};
    for (int i = 0; i < N_PARTS; i++) {
        or_buf_init(&parts[0][i], RA_DTYPE_F32, 4, os, NULL);
        or_buf_init(&parts[1][i], RA_DTYPE_F32, 4, ms, NULL);
        or_buf_init(&parts[2][i], RA_DTYPE_F32, 4, ms, NULL);
        or_buf_fill_uniform(&parts[0][i], &rng, -3, 3);
        or_buf_fill_uniform(&parts[1][i], &rng, -5, 5);
        or_buf_fill_uniform(&parts[2][i], &rng, 1, 50);
    }
    for (int t = -1; t < N_THREADS; t++) {
        or_buf *out = t < 0 ? merged_ref : merged[t];
        or_buf_init(&out[0], RA_DTYPE_F32, 4, os, NULL);
        or_buf_init(&out[1], RA_DTYPE_F32, 4, ms, NULL);
        or_buf_init(&out[2], RA_DTYPE_F32, 4, ms, NULL);
    }
    assert_int_equal(run_merge(merged_ref), RA_OK);
    tc_case *mh = &cases[TC_RAGGED_MHA];
    assert_int_equal(ra_mha_cost_estimate(mh->q.t, mh->k.t, mh->v.t, mh->len.t, &cost_ref[0],
                                          &cost_ref[1], &cost_ref[2]),
                     RA_OK);
    int64_t bs[1] = {3};
    for (int t = 0; t < N_THREADS; t++) {
        or_buf_init(&bad_len[t], RA_DTYPE_I32, 1, bs, NULL);
        for (int64_t b = 0; b < 3; b++)
            or_buf_set(&bad_len[t], &b, b == 1 ? -1000 - t : 5);
    }

    pthread_t th[N_THREADS];
    assert_int_equal(pthread_barrier_init(&barrier, NULL, N_THREADS), 0);
    for (int t = 0; t < N_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t), 0);
    for (int t = 0; t < N_THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    pthread_barrier_destroy(&barrier);
    int bad = 0;
    for (int t = 0; t < N_THREADS; t++)
        if (results[t].mismatches) {
            print_error("thread %d: %d problems, first: %s\n", t, results[t].mismatches,
                        results[t].first);
            bad++;
        }
    assert_int_equal(bad, 0);
    print_message("%d threads x %d rounds: each called 6 functions x %d kernels, ra_merge, the "
                  "cost estimate, handles and a failing call; all matched\n", N_THREADS, N_ITERS,
                  N_KERNELS);

    ra_options_destroy(shared_opts);
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        for (int k = 0; k < N_KERNELS; k++)
            outset_free(&ref[fn][k]);
        for (int t = 0; t < N_THREADS; t++)
            outset_free(&mine[t][fn]);
        tc_free(&cases[fn]);
    }
    for (int i = 0; i < N_PARTS; i++)
        for (int j = 0; j < 3; j++)
            or_buf_free(&parts[j][i]);
    for (int j = 0; j < 3; j++) {
        or_buf_free(&merged_ref[j]);
        for (int t = 0; t < N_THREADS; t++)
            or_buf_free(&merged[t][j]);
    }
    for (int t = 0; t < N_THREADS; t++)
        or_buf_free(&bad_len[t]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_concurrent_calls)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
