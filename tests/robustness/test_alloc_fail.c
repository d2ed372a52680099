/* Allocation failure: every entry point that allocates is run with its 1st, 2nd, ... Nth
 * allocation failing (through the hidden hook ra__set_alloc_fail_hook) until it no longer
 * allocates that many. Each failing call must return RA_ERR_OUT_OF_MEMORY with a message and
 * leave its outputs untouched; a call that survives a failure must still give the exact result.
 * Leaks on these paths are what the ASan (LeakSanitizer) and valgrind runs of this test catch.
 * Also: shapes that overflow are rejected before any allocation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "attn_case.h"

/* The hook: counts allocations and fails the one numbered fail_at (0-based; -1: none). Atomic
 * because the library allocates inside its OpenMP region too. */
static atomic_long n_allocs;
static atomic_long fail_at;

static int hook(size_t bytes, void *user)
{
    (void)bytes;
    (void)user;
    return atomic_fetch_add(&n_allocs, 1) == atomic_load(&fail_at);
}

static void arm(long k)
{
    atomic_store(&n_allocs, 0);
    atomic_store(&fail_at, k);
}

static int setup(void **state)
{
    (void)state;
    arm(-1);
    ra__set_alloc_fail_hook(hook, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ra__set_alloc_fail_hook(NULL, NULL);
    return 0;
}

/* The bytes of o, m and l, to compare whole buffers (padding included). */
typedef struct outs {
    unsigned char *o, *m, *l;
} outs;

static void save(const tc_case *c, outs *s)
{
    s->o = malloc(c->o.bytes);
    s->m = malloc(c->m.bytes);
    s->l = malloc(c->l.bytes);
    assert_true(s->o && s->m && s->l);
    memcpy(s->o, c->o.data, c->o.bytes);
    memcpy(s->m, c->m.data, c->m.bytes);
    memcpy(s->l, c->l.data, c->l.bytes);
}

static void free_outs(outs *s)
{
    free(s->o);
    free(s->m);
    free(s->l);
}

static bool all_bytes(const or_buf *b, unsigned char x)
{
    for (size_t i = 0; i < b->bytes; i++)
        if (b->data[i] != x)
            return false;
    return true;
}

static ra_status call(tc_fn fn, const ra_options *o, tc_case *c)
{
    static const struct {
        ra_status (*f)(const ra_options *, const ra_tensor *, const ra_tensor *,
                       const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                       ra_tensor *);
    } fns[TC_FN_COUNT] = {{ra_ragged_mqa},    {ra_ragged_mha},    {ra_ragged_gqa},
                          {ra_reference_mqa}, {ra_reference_mha}, {ra_reference_gqa}};
    or_buf_fill_bytes(&c->o, 0xA5);
    or_buf_fill_bytes(&c->m, 0xA5);
    or_buf_fill_bytes(&c->l, 0xA5);
    return fns[fn].f(o, c->q.t, c->k.t, c->v.t, c->len.t, c->o.t, c->m.t, c->l.t);
}

/* Fails each allocation of one call in turn. Returns how many allocations the call makes. */
static long sweep(tc_fn fn, const ra_options *o, tc_case *c, const char *what)
{
    arm(-1);
    assert_int_equal(call(fn, o, c), RA_OK);
    long total = atomic_load(&n_allocs);
    outs ref;
    save(c, &ref);
    long k;
    for (k = 0; k < 10000; k++) {
        arm(k);
        ra_status s = call(fn, o, c);
        if (s == RA_OK) {
            /* Surviving a failed allocation is fine, but the answer must not change. */
            if (memcmp(ref.o, c->o.data, c->o.bytes) || memcmp(ref.m, c->m.data, c->m.bytes) ||
                memcmp(ref.l, c->l.data, c->l.bytes))
                fail_msg("%s: with allocation %ld failing the call succeeded with a different "
                         "result", what, k);
            if (atomic_load(&n_allocs) <= k)
                break; /* the call made fewer than k+1 allocations: all have been failed */
            continue;
        }
        if (s != RA_ERR_OUT_OF_MEMORY)
            fail_msg("%s: allocation %ld failing gave status %d (%s), expected "
                     "RA_ERR_OUT_OF_MEMORY", what, k, (int)s, ra_last_error());
        assert_true(ra_last_error()[0] != '\0');
        if (!all_bytes(&c->o, 0xA5) || !all_bytes(&c->m, 0xA5) || !all_bytes(&c->l, 0xA5))
            fail_msg("%s: allocation %ld failing returned an error but wrote the outputs", what,
                     k);
    }
    assert_true(k < 10000);
    arm(-1);
    free_outs(&ref);
    return total;
}

typedef struct scfg {
    tc_fn fn;
    int64_t B, Hq, Hkv, S, D;
    ra_dtype dt;
} scfg;

static const scfg shapes[] = {
    {TC_RAGGED_MQA, 2, 4, 1, 70, 16, RA_DTYPE_F32},
    {TC_RAGGED_MHA, 2, 2, 2, 65, 8, RA_DTYPE_BF16},
    {TC_RAGGED_GQA, 2, 4, 2, 100, 33, RA_DTYPE_F16},
    {TC_RAGGED_GQA, 1, 8, 1, 300, 64, RA_DTYPE_F32}, /* one work item: split-KV matters */
    {TC_REFERENCE_MQA, 2, 4, 1, 40, 16, RA_DTYPE_F32},
    {TC_REFERENCE_MHA, 2, 2, 2, 33, 8, RA_DTYPE_BF16},
    {TC_REFERENCE_GQA, 2, 4, 2, 50, 16, RA_DTYPE_F16},
};

static void test_attention(void **state)
{
    (void)state;
    static const ra_kernel kernels[] = {RA_KERNEL_AUTO, RA_KERNEL_PORTABLE, RA_KERNEL_BLAS};
    static const int64_t splits[] = {0, 7};
    static const int threads[] = {1, 3};
    long most = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const scfg *g = &shapes[i];
        tc_params p = {.fn = g->fn, .B = g->B, .Hq = g->Hq, .Hkv = g->Hkv, .S = g->S, .D = g->D,
                       .qdt = g->dt, .kdt = g->dt, .vdt = g->dt, .seed = 9100 + i};
        arm(-1);
        tc_case c;
        tc_init(&c, &p);
        for (size_t a = 0; a < 3; a++)
            for (size_t b = 0; b < 2; b++)
                for (size_t t = 0; t < 2; t++) {
                    ra_options *o = NULL;
                    arm(-1);
                    assert_int_equal(ra_options_create(&o), RA_OK);
                    assert_int_equal(ra_options_set_kernel(o, kernels[a]), RA_OK);
                    assert_int_equal(ra_options_set_split_tokens(o, splits[b]), RA_OK);
                    assert_int_equal(ra_options_set_num_threads(o, threads[t]), RA_OK);
                    char what[128];
                    snprintf(what, sizeof what, "%s kernel %s split %lld threads %d",
                             tc_fn_name(g->fn), ra_kernel_name(kernels[a]),
                             (long long)splits[b], threads[t]);
                    long n = sweep(g->fn, o, &c, what);
                    most = n > most ? n : most;
                    ra_options_destroy(o);
                }
        /* The surviving result is still the right one. */
        arm(-1);
        tc_opts d = {0};
        assert_int_equal(tc_run(&c, &d), RA_OK);
        tc_check(&c, 1e-5, NULL);
        tc_free(&c);
    }
    print_message("attention: at most %ld allocations per call, each failed in turn\n", most);
}

/* ra_ragged_gqa_multi on a call large enough to run in several rounds: every failing
 * allocation leaves the outputs untouched, and the call allocates twice however many rounds
 * it runs (its passes' arrays, then the engine's scratch sized for its largest pass), both
 * before it writes a row. */
static void test_multi(void **state)
{
    (void)state;
    enum { B = 2, T = 44, HQ = 32, HKV = 8, S = 64, D = 256 };
    const int64_t qs[4] = {B, T, HQ, D}, kvs[4] = {B, S, HKV, D}, ml[4] = {B, T, HQ, 1},
                  bs[1] = {B};
    or_buf q, k, v, len, qlen, o, m, l;
    or_rng r = or_rng_seed(4242);
    arm(-1);
    or_buf_init(&q, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_init(&k, RA_DTYPE_BF16, 4, kvs, NULL);
    or_buf_init(&v, RA_DTYPE_BF16, 4, kvs, NULL);
    or_buf_init(&len, RA_DTYPE_I32, 1, bs, NULL);
    or_buf_init(&qlen, RA_DTYPE_I32, 1, bs, NULL);
    or_buf_init(&o, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_init(&m, RA_DTYPE_F32, 4, ml, NULL);
    or_buf_init(&l, RA_DTYPE_F32, 4, ml, NULL);
    or_buf_fill_uniform(&q, &r, -1.0, 1.0);
    or_buf_fill_uniform(&k, &r, -1.0, 1.0);
    or_buf_fill_uniform(&v, &r, -1.0, 1.0);
    const int32_t lengths[B] = {64, 50}, q_lens[B] = {44, 37};
    memcpy(len.data, lengths, sizeof lengths);
    memcpy(qlen.data, q_lens, sizeof q_lens);
    or_buf *outs3[3] = {&o, &m, &l};
    unsigned char *ref[3];
    long k_fail;
    for (k_fail = -1; k_fail < 10000; k_fail++) {
        arm(k_fail);
        for (int i = 0; i < 3; i++)
            or_buf_fill_bytes(outs3[i], 0xA5);
        ra_status s = ra_ragged_gqa_multi(NULL, q.t, k.t, v.t, len.t, qlen.t, o.t, m.t, l.t);
        if (k_fail < 0) {
            assert_int_equal(s, RA_OK);
            for (int i = 0; i < 3; i++) {
                ref[i] = malloc(outs3[i]->bytes);
                memcpy(ref[i], outs3[i]->data, outs3[i]->bytes);
            }
            continue;
        }
        if (s == RA_OK) {
            for (int i = 0; i < 3; i++)
                if (memcmp(ref[i], outs3[i]->data, outs3[i]->bytes))
                    fail_msg("multi: allocation %ld failing changed the result", k_fail);
            if (atomic_load(&n_allocs) <= k_fail)
                break;
            continue;
        }
        if (s != RA_ERR_OUT_OF_MEMORY || ra_last_error()[0] == '\0')
            fail_msg("multi: allocation %ld failing gave %s", k_fail, ra_status_string(s));
        for (int i = 0; i < 3; i++)
            if (!all_bytes(outs3[i], 0xA5))
                fail_msg("multi: allocation %ld failing returned an error but wrote the "
                         "outputs", k_fail);
    }
    assert_int_equal(k_fail, 2);
    print_message("multi-token: %ld allocations per call, each failed in turn\n", k_fail);
    arm(-1);
    for (int i = 0; i < 3; i++)
        free(ref[i]);
    or_buf *all[] = {&q, &k, &v, &len, &qlen, &o, &m, &l};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        or_buf_free(all[i]);
}

static void test_merge(void **state)
{
    (void)state;
    enum { B = 2, H = 3, D = 17, N = 3 };
    or_buf o[N], m[N], l[N], oo, mo, lo;
    int64_t os[4] = {B, 1, H, D}, ms[4] = {B, 1, H, 1};
    or_rng r = or_rng_seed(77);
    for (int i = 0; i < N; i++) {
        or_buf_init(&o[i], RA_DTYPE_F32, 4, os, NULL);
        or_buf_init(&m[i], RA_DTYPE_F32, 4, ms, NULL);
        or_buf_init(&l[i], RA_DTYPE_F32, 4, ms, NULL);
        or_buf_fill_uniform(&o[i], &r, -2, 2);
        or_buf_fill_uniform(&m[i], &r, -3, 3);
        or_buf_fill_uniform(&l[i], &r, 1, 9);
    }
    or_buf_init(&oo, RA_DTYPE_F32, 4, os, NULL);
    or_buf_init(&mo, RA_DTYPE_F32, 4, ms, NULL);
    or_buf_init(&lo, RA_DTYPE_F32, 4, ms, NULL);
    const ra_tensor *to[N] = {o[0].t, o[1].t, o[2].t}, *tm[N] = {m[0].t, m[1].t, m[2].t},
                    *tl[N] = {l[0].t, l[1].t, l[2].t};
    arm(-1);
    assert_int_equal(ra_merge(N, to, tm, tl, oo.t, mo.t, lo.t), RA_OK);
    long total = atomic_load(&n_allocs);
    for (long k = 0; k <= total; k++) {
        arm(k);
        or_buf_fill_bytes(&oo, 0xA5);
        ra_status s = ra_merge(N, to, tm, tl, oo.t, mo.t, lo.t);
        if (k == total)
            assert_int_equal(s, RA_OK);
        else if (s != RA_OK) {
            assert_int_equal(s, RA_ERR_OUT_OF_MEMORY);
            assert_true(all_bytes(&oo, 0xA5));
        }
    }
    arm(-1);
    print_message("ra_merge: %ld allocations per call\n", total);
    for (int i = 0; i < N; i++) {
        or_buf_free(&o[i]);
        or_buf_free(&m[i]);
        or_buf_free(&l[i]);
    }
    or_buf_free(&oo);
    or_buf_free(&mo);
    or_buf_free(&lo);
}

/* Handles: wrap and create (handle, then data), options. *out stays untouched on failure. */
static void test_handles(void **state)
{
    (void)state;
    int64_t shape[3] = {2, 3, 5};
    float data[30];
    ra_tensor *const sentinel = (ra_tensor *)(void *)data;
    for (int which = 0; which < 2; which++) {
        long k;
        for (k = 0; k < 100; k++) {
            arm(k);
            ra_tensor *t = sentinel;
            ra_status s = which ? ra_tensor_create(&t, RA_DTYPE_BF16, 3, shape)
                                : ra_tensor_wrap(&t, RA_DTYPE_F32, 3, shape, NULL, data);
            if (s == RA_OK) {
                assert_true(t != sentinel && ra_tensor_dim(t, 2) == 5);
                ra_tensor_destroy(t);
                if (atomic_load(&n_allocs) <= k)
                    break;
                continue;
            }
            assert_int_equal(s, RA_ERR_OUT_OF_MEMORY);
            assert_ptr_equal(t, sentinel);
            assert_true(ra_last_error()[0] != '\0');
        }
        assert_true(k >= 1 && k < 100); /* at least one allocation was there to fail */
    }
    for (long k = 0; k < 100; k++) {
        arm(k);
        ra_options *o = (ra_options *)(void *)data;
        ra_status s = ra_options_create(&o);
        if (s == RA_OK) {
            ra_options_destroy(o);
            if (atomic_load(&n_allocs) <= k)
                break;
            continue;
        }
        assert_int_equal(s, RA_ERR_OUT_OF_MEMORY);
        assert_ptr_equal(o, (ra_options *)(void *)data);
    }
    arm(-1);
}

/* Overflowing shapes fail with RA_ERR_OVERFLOW before anything is allocated. */
static void test_overflow_before_allocation(void **state)
{
    (void)state;
    static const struct {
        ra_dtype dt;
        int rank;
        int64_t shape[4];
    } big[] = {
        {RA_DTYPE_F32, 2, {INT64_C(1) << 62, 4}},           /* element count overflows */
        {RA_DTYPE_F32, 1, {INT64_C(1) << 62}},              /* byte size 2^64 */
        {RA_DTYPE_BF16, 1, {INT64_C(1) << 62}},             /* byte size 2^63 > INT64_MAX */
        {RA_DTYPE_I32, 4, {1 << 16, 1 << 16, 1 << 16, 1 << 14}}, /* 2^62 elements, 2^64 bytes */
        {RA_DTYPE_F16, 3, {INT64_MAX, 2, 1}},
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        ra_tensor *t = NULL;
        arm(-1);
        assert_int_equal(ra_tensor_create(&t, big[i].dt, big[i].rank, big[i].shape),
                         RA_ERR_OVERFLOW);
        assert_int_equal(atomic_load(&n_allocs), 0);
        assert_null(t);
        float one;
        assert_int_equal(ra_tensor_wrap(&t, big[i].dt, big[i].rank, big[i].shape, NULL, &one),
                         RA_ERR_OVERFLOW);
        assert_int_equal(atomic_load(&n_allocs), 0);
    }
    /* Strides whose furthest byte offset overflows, over a shape of few elements. */
    int64_t shape[2] = {4, 2}, strides[2] = {INT64_C(1) << 61, 1};
    float buf[8];
    ra_tensor *t = NULL;
    arm(-1);
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 2, shape, strides, buf), RA_ERR_OVERFLOW);
    assert_int_equal(atomic_load(&n_allocs), 0);
    assert_null(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handles),
        cmocka_unit_test(test_overflow_before_allocation),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_multi),
        cmocka_unit_test(test_attention),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
