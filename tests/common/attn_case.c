/* See attn_case.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"

#define TC_PAD 3
#define TC_DEFAULT_MASK (-0.7f * FLT_MAX)

const char *tc_fn_name(tc_fn fn)
{
    static const char *names[TC_FN_COUNT] = {"ragged_mqa",    "ragged_mha",    "ragged_gqa",
                                             "reference_mqa", "reference_mha", "reference_gqa"};
    return (unsigned)fn < TC_FN_COUNT ? names[fn] : "?";
}

bool tc_fn_is_ragged(tc_fn fn)
{
    return fn == TC_RAGGED_MQA || fn == TC_RAGGED_MHA || fn == TC_RAGGED_GQA;
}

bool tc_fn_is_mqa(tc_fn fn)
{
    return fn == TC_RAGGED_MQA || fn == TC_REFERENCE_MQA;
}

bool tc_fn_is_mha(tc_fn fn)
{
    return fn == TC_RAGGED_MHA || fn == TC_REFERENCE_MHA;
}

/* Strides of a contiguous array of `shape` whose memory order swaps axes a and b. */
static void swapped_strides(int rank, const int64_t *shape, int a, int b, int64_t *st)
{
    int64_t phys[4];
    int order[4];
    for (int i = 0; i < rank; i++) {
        order[i] = i;
        phys[i] = shape[i];
    }
    order[a] = b;
    order[b] = a;
    phys[a] = shape[b];
    phys[b] = shape[a];
    int64_t run = 1;
    int64_t pst[4];
    for (int i = rank - 1; i >= 0; i--) {
        pst[i] = run;
        run *= phys[i] > 0 ? phys[i] : 1;
    }
    for (int i = 0; i < rank; i++)
        st[order[i]] = pst[i];
}

static void make_input(or_buf *b, ra_dtype dt, int rank, const int64_t *shape, tc_layout layout,
                       int swap_a, int swap_b, int bcast_axis)
{
    int64_t st[4];
    switch (layout) {
    case TC_LAYOUT_SWAPPED:
        if (swap_a >= 0) {
            swapped_strides(rank, shape, swap_a, swap_b, st);
            or_buf_init(b, dt, rank, shape, st);
            return;
        }
        break;
    case TC_LAYOUT_PADDED:
        or_buf_init_padded(b, dt, rank, shape, TC_PAD);
        return;
    case TC_LAYOUT_BROADCAST:
        if (bcast_axis >= 0) {
            int64_t run = 1;
            for (int i = rank - 1; i >= 0; i--) {
                st[i] = i == bcast_axis ? 0 : run;
                if (i != bcast_axis)
                    run *= shape[i] > 0 ? shape[i] : 1;
            }
            or_buf_init(b, dt, rank, shape, st);
            return;
        }
        break;
    case TC_LAYOUT_NATIVE:
        break;
    }
    or_buf_init(b, dt, rank, shape, NULL);
}

static void make_output(or_buf *b, int rank, const int64_t *shape, tc_layout layout)
{
    if (layout == TC_LAYOUT_PADDED)
        or_buf_init_padded(b, RA_DTYPE_F32, rank, shape, TC_PAD);
    else
        or_buf_init(b, RA_DTYPE_F32, rank, shape, NULL);
}

void tc_expect(tc_case *c)
{
    if (tc_fn_is_ragged(c->p.fn))
        or_attention(&c->d, &c->qv, &c->kv, &c->vv, c->lengths, c->p.scale, &c->expect);
    else
        or_reference(&c->d, &c->qv, &c->kv, &c->vv, c->lengths, c->p.scale, c->p.mask_value,
                     &c->expect);
}

void tc_expect_mod(tc_case *c, const or_modifiers *mod)
{
    assert_true(tc_fn_is_ragged(c->p.fn));
    or_attention_mod(&c->d, &c->qv, &c->kv, &c->vv, c->lengths, c->p.scale, mod, &c->expect);
}

void tc_init(tc_case *c, const tc_params *p)
{
    memset(c, 0, sizeof *c);
    c->p = *p;
    if (c->p.scale == 0.0f)
        c->p.scale = 1.0f;
    if (c->p.mask_value == 0.0f)
        c->p.mask_value = TC_DEFAULT_MASK;
    if (c->p.lo == 0.0 && c->p.hi == 0.0) {
        c->p.lo = -1.0;
        c->p.hi = 1.0;
    }
    tc_fn fn = p->fn;
    int64_t B = p->B, Hq = p->Hq, Hkv = p->Hkv, S = p->S, D = p->D;
    if (tc_fn_is_mqa(fn))
        assert_int_equal(Hkv, 1);
    if (tc_fn_is_mha(fn))
        assert_int_equal(Hq, Hkv);
    c->d = (or_dims){B, Hq, Hkv, S, D};
    tc_layout lay = p->layout;

    /* q */
    if (fn == TC_RAGGED_MQA || fn == TC_REFERENCE_MQA || fn == TC_REFERENCE_GQA) {
        int64_t sh[3] = {B, Hq, D};
        make_input(&c->q, p->qdt, 3, sh, lay, -1, -1, 1);
        c->qv = or_view_of(&c->q, 0, 1, 2, -1);
    } else {
        int64_t sh[4] = {B, 1, Hq, D};
        make_input(&c->q, p->qdt, 4, sh, lay, -1, -1, 2);
        c->qv = or_view_of(&c->q, 0, 2, 3, -1);
    }
    /* k and v */
    if (tc_fn_is_mqa(fn)) {
        int64_t sh[3] = {B, S, D};
        make_input(&c->k, p->kdt, 3, sh, lay, 0, 1, 0);
        make_input(&c->v, p->vdt, 3, sh, lay, 0, 1, 0);
        c->kv = or_view_of(&c->k, 0, 1, -1, 2);
        c->vv = or_view_of(&c->v, 0, 1, -1, 2);
    } else if (fn == TC_REFERENCE_GQA) {
        int64_t sh[4] = {B, Hkv, S, D};
        make_input(&c->k, p->kdt, 4, sh, lay, 1, 2, 0);
        make_input(&c->v, p->vdt, 4, sh, lay, 1, 2, 0);
        c->kv = or_view_of(&c->k, 0, 2, 1, 3);
        c->vv = or_view_of(&c->v, 0, 2, 1, 3);
    } else {
        int64_t sh[4] = {B, S, Hkv, D};
        make_input(&c->k, p->kdt, 4, sh, lay, 1, 2, 0);
        make_input(&c->v, p->vdt, 4, sh, lay, 1, 2, 0);
        c->kv = or_view_of(&c->k, 0, 1, 2, 3);
        c->vv = or_view_of(&c->v, 0, 1, 2, 3);
    }
    /* lengths */
    int64_t bsh[1] = {B};
    or_buf_init(&c->len, RA_DTYPE_I32, 1, bsh, NULL);
    c->lengths = calloc((size_t)B + 1, sizeof(int32_t));
    assert_non_null(c->lengths);
    or_rng rng = or_rng_seed(p->seed);
    for (int64_t b = 0; b < B; b++) {
        int32_t len = p->lengths ? p->lengths[b]
                      : S >= 2   ? (int32_t)or_rng_int(&rng, 1, S - 1)
                                 : (int32_t)S;
        c->lengths[b] = len;
        or_buf_set(&c->len, &b, len);
    }
    /* data */
    or_buf_fill_uniform(&c->q, &rng, c->p.lo, c->p.hi);
    or_buf_fill_uniform(&c->k, &rng, c->p.lo, c->p.hi);
    or_buf_fill_uniform(&c->v, &rng, c->p.lo, c->p.hi);
    if (tc_fn_is_ragged(fn) && lay != TC_LAYOUT_BROADCAST) {
        /* Poison every position at or past the length: the ragged functions must leave it
         * out exactly, so a single read of it turns the result into NaN. */
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = c->lengths[b]; t < S; t++)
                for (int64_t j = 0; j < Hkv; j++)
                    for (int64_t x = 0; x < D; x++) {
                        int64_t i3[3] = {b, t, x}, i4[4] = {b, t, j, x};
                        or_buf_set(&c->k, tc_fn_is_mqa(fn) ? i3 : i4, NAN);
                        or_buf_set(&c->v, tc_fn_is_mqa(fn) ? i3 : i4, NAN);
                    }
    }
    /* outputs */
    if (tc_fn_is_mqa(fn)) {
        int64_t osh[3] = {B, Hq, D};
        make_output(&c->o, 3, osh, lay);
        if (fn == TC_RAGGED_MQA) {
            int64_t msh[2] = {B, Hq};
            make_output(&c->m, 2, msh, lay);
            make_output(&c->l, 2, msh, lay);
        } else {
            int64_t msh[3] = {B, Hq, 1};
            make_output(&c->m, 3, msh, lay);
            make_output(&c->l, 3, msh, lay);
        }
    } else {
        int64_t osh[4] = {B, 1, Hq, D}, msh[4] = {B, 1, Hq, 1};
        make_output(&c->o, 4, osh, lay);
        make_output(&c->m, 4, msh, lay);
        make_output(&c->l, 4, msh, lay);
    }
    or_state_alloc(&c->expect, B, Hq, D);
    tc_expect(c);
    c->got_o = calloc((size_t)(B * Hq * D) + 1, sizeof(float));
    c->got_m = calloc((size_t)(B * Hq) + 1, sizeof(float));
    c->got_l = calloc((size_t)(B * Hq) + 1, sizeof(float));
    assert_true(c->got_o && c->got_m && c->got_l);
}

/* Bytes of b that differ from `sentinel` outside its logical elements. */
static int64_t count_stray(const or_buf *b, unsigned char sentinel)
{
    unsigned char *copy = malloc(b->bytes);
    assert_non_null(copy);
    memcpy(copy, b->data, b->bytes);
    if (b->numel > 0) {
        int64_t idx[4] = {0, 0, 0, 0};
        for (;;) {
            memset(copy + (size_t)or_buf_offset(b, idx) * 4, sentinel, 4);
            int ax = b->rank - 1;
            while (ax >= 0 && ++idx[ax] == b->shape[ax])
                idx[ax--] = 0;
            if (ax < 0)
                break;
        }
    }
    int64_t n = 0;
    for (size_t i = 0; i < b->bytes; i++)
        n += copy[i] != sentinel;
    free(copy);
    return n;
}

typedef ra_status (*attn_fn)(const ra_options *, const ra_tensor *, const ra_tensor *,
                             const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                             ra_tensor *);

static attn_fn fn_ptr(tc_fn fn)
{
    switch (fn) {
    case TC_RAGGED_MQA:
        return ra_ragged_mqa;
    case TC_RAGGED_MHA:
        return ra_ragged_mha;
    case TC_RAGGED_GQA:
        return ra_ragged_gqa;
    case TC_REFERENCE_MQA:
        return ra_reference_mqa;
    case TC_REFERENCE_MHA:
        return ra_reference_mha;
    default:
        return ra_reference_gqa;
    }
}

ra_status tc_run(tc_case *c, const tc_opts *o)
{
    static const tc_opts defaults;
    if (!o)
        o = &defaults;
    ra_options *opts = NULL;
    c->sinks_set = false;
    if (!o->null_opts) {
        assert_int_equal(ra_options_create(&opts), RA_OK);
        if (o->kernel != RA_KERNEL_AUTO) {
            ra_status s = ra_options_set_kernel(opts, o->kernel);
            if (s != RA_OK) {
                ra_options_destroy(opts);
                return s;
            }
        }
        if (o->block_size)
            assert_int_equal(ra_options_set_block_size(opts, o->block_size), RA_OK);
        if (o->split_tokens)
            assert_int_equal(ra_options_set_split_tokens(opts, o->split_tokens), RA_OK);
        if (o->num_threads)
            assert_int_equal(ra_options_set_num_threads(opts, o->num_threads), RA_OK);
        assert_int_equal(ra_options_set_scale(opts, c->p.scale), RA_OK);
        assert_int_equal(ra_options_set_mask_value(opts, c->p.mask_value), RA_OK);
        if (o->mod) {
            const or_modifiers *mod = o->mod;
            const int64_t hs[1] = {c->d.Hq};
            ra_tensor *sinks = NULL, *slopes = NULL;
            if (mod->sinks)
                assert_int_equal(ra_tensor_wrap(&sinks, RA_DTYPE_F32, 1, hs, NULL,
                                                (void *)mod->sinks), RA_OK);
            if (mod->alibi)
                assert_int_equal(ra_tensor_wrap(&slopes, RA_DTYPE_F32, 1, hs, NULL,
                                                (void *)mod->alibi), RA_OK);
            assert_int_equal(ra_options_set_softcap(opts, (float)mod->softcap), RA_OK);
            assert_int_equal(ra_options_set_window(opts, mod->window, mod->sink_positions),
                             RA_OK);
            assert_int_equal(ra_options_set_sinks(opts, sinks), RA_OK);
            assert_int_equal(ra_options_set_alibi(opts, slopes), RA_OK);
            ra_tensor_destroy(sinks); /* the options keep copies */
            ra_tensor_destroy(slopes);
        }
        c->sinks_set = o->mod && o->mod->sinks;
    } else {
        assert_true(c->p.scale == 1.0f && c->p.mask_value == TC_DEFAULT_MASK);
    }
    or_buf_fill_bytes(&c->o, 0xFF);
    or_buf_fill_bytes(&c->m, 0xFF);
    or_buf_fill_bytes(&c->l, 0xFF);
    ra_status s = fn_ptr(c->p.fn)(opts, c->q.t, c->k.t, c->v.t, c->len.t, c->o.t,
                                  c->p.no_ml ? NULL : c->m.t, c->p.no_ml ? NULL : c->l.t);
    ra_options_destroy(opts);
    or_buf_gather_f32(&c->o, c->got_o);
    or_buf_gather_f32(&c->m, c->got_m);
    or_buf_gather_f32(&c->l, c->got_l);
    c->stray_writes = count_stray(&c->o, 0xFF) + count_stray(&c->m, 0xFF) +
                      count_stray(&c->l, 0xFF);
    return s;
}

tc_errs tc_compare(const tc_case *c)
{
    tc_errs e;
    int64_t BH = c->d.B * c->d.Hq;
    bool un = c->p.fn == TC_RAGGED_MHA || c->p.fn == TC_RAGGED_GQA;
    e.o = or_compare(c->got_o, un ? c->expect.o_un : c->expect.o, BH * c->d.D);
    e.m = or_compare(c->got_m, c->expect.m, BH);
    e.l = or_compare(c->got_l, c->expect.l, BH);
    return e;
}

static void describe_failure(const tc_case *c, const char *what, or_err e)
{
    print_error("%s B=%lld Hq=%lld Hkv=%lld S=%lld D=%lld q=%s k=%s v=%s layout=%d: "
                "%s rel err %.3e (abs %.3e, max|exp| %.3e, non-finite mismatches %lld, "
                "at element %lld)\n",
                tc_fn_name(c->p.fn), (long long)c->d.B, (long long)c->d.Hq,
                (long long)c->d.Hkv, (long long)c->d.S, (long long)c->d.D,
                or_dtype_name(c->p.qdt), or_dtype_name(c->p.kdt), or_dtype_name(c->p.vdt),
                (int)c->p.layout, what, e.rel, e.max_abs, e.max_ref, (long long)e.nonfinite,
                (long long)e.worst);
}

void tc_check(const tc_case *c, double tol, const char *stat_key)
{
    tc_errs e = tc_compare(c);
    bool ok = true;
    if (e.o.nonfinite || !(e.o.rel <= tol)) {
        describe_failure(c, "o", e.o);
        ok = false;
    }
    if (!c->p.no_ml) {
        if (e.m.nonfinite || !(e.m.rel <= tol)) {
            describe_failure(c, "m", e.m);
            ok = false;
        }
        if (e.l.nonfinite || !(e.l.rel <= tol)) {
            describe_failure(c, "l", e.l);
            ok = false;
        }
    }
    if (tc_fn_is_ragged(c->p.fn) && !c->sinks_set) {
        /* An empty sequence is exactly the empty partial state (docs/design.md, "Edge
         * cases"). */
        for (int64_t b = 0; b < c->d.B; b++) {
            if (c->lengths[b] != 0)
                continue;
            for (int64_t h = 0; h < c->d.Hq; h++) {
                int64_t bh = b * c->d.Hq + h;
                for (int64_t x = 0; x < c->d.D; x++)
                    if (c->got_o[bh * c->d.D + x] != 0.0f) {
                        print_error("length 0 at b=%lld: o[%lld] = %g, want 0\n", (long long)b,
                                    (long long)x, (double)c->got_o[bh * c->d.D + x]);
                        ok = false;
                        break;
                    }
                if (!c->p.no_ml && (c->got_m[bh] != -INFINITY || c->got_l[bh] != 0.0f)) {
                    print_error("length 0 at b=%lld h=%lld: m = %g, l = %g; want -inf, 0\n",
                                (long long)b, (long long)h, (double)c->got_m[bh],
                                (double)c->got_l[bh]);
                    ok = false;
                }
            }
        }
    }
    if (c->stray_writes) {
        print_error("%s wrote %lld bytes outside its outputs' elements%s\n", tc_fn_name(c->p.fn),
                    (long long)c->stray_writes, c->p.no_ml ? " (m, l were NULL)" : "");
        ok = false;
    }
    if (stat_key)
        or_stat_note(stat_key, e.o.rel);
    if (!ok)
        fail_msg("%s: results differ from the oracle beyond %.1e", tc_fn_name(c->p.fn), tol);
}

void tc_free(tc_case *c)
{
    or_buf_free(&c->q);
    or_buf_free(&c->k);
    or_buf_free(&c->v);
    or_buf_free(&c->len);
    or_buf_free(&c->o);
    or_buf_free(&c->m);
    or_buf_free(&c->l);
    or_state_free(&c->expect);
    free(c->lengths);
    free(c->got_o);
    free(c->got_m);
    free(c->got_l);
    memset(c, 0, sizeof *c);
}

void tc_set_q(tc_case *c, int64_t b, int64_t h, int64_t x, double val)
{
    int64_t i3[3] = {b, h, x}, i4[4] = {b, 0, h, x};
    or_buf_set(&c->q, c->q.rank == 3 ? i3 : i4, val);
}

static void set_kv(tc_case *c, or_buf *buf, int64_t b, int64_t t, int64_t j, int64_t x,
                   double val)
{
    int64_t i3[3] = {b, t, x}, bsjd[4] = {b, t, j, x}, bjsd[4] = {b, j, t, x};
    if (tc_fn_is_mqa(c->p.fn))
        or_buf_set(buf, i3, val);
    else
        or_buf_set(buf, c->p.fn == TC_REFERENCE_GQA ? bjsd : bsjd, val);
}

void tc_set_k(tc_case *c, int64_t b, int64_t t, int64_t j, int64_t x, double val)
{
    set_kv(c, &c->k, b, t, j, x, val);
}

void tc_set_v(tc_case *c, int64_t b, int64_t t, int64_t j, int64_t x, double val)
{
    set_kv(c, &c->v, b, t, j, x, val);
}

bool tc_kernel_available(ra_kernel k)
{
    ra_options *o = NULL;
    assert_int_equal(ra_options_create(&o), RA_OK);
    ra_status s = ra_options_set_kernel(o, k);
    ra_options_destroy(o);
    if (s != RA_OK && s != RA_ERR_UNSUPPORTED)
        fail_msg("ra_options_set_kernel(%d) returned %s", (int)k, ra_status_string(s));
    return s == RA_OK;
}

bool tc_sampled(void)
{
    static long every = 0, seen = 0;
    if (every == 0) {
        const char *e = getenv("RA_TEST_SAMPLE");
        every = e && atol(e) > 1 ? atol(e) : 1;
        if (every > 1)
            print_message("note: RA_TEST_SAMPLE=%ld: one grid case in %ld runs\n", every, every);
    }
    return seen++ % every == 0;
}
