/* Extremes: huge and subnormal logits, NaN/Inf inputs (propagate to their head only, never
 * crash), S = 2^20 with a small D, S = 2^40 behind a short length, shapes that overflow,
 * zero-sized dimensions and outputs that alias inputs. Values are checked against the
 * double-precision oracle of tests/common; tolerances are stated where they differ from the
 * project's 1e-5 (relative to max|o|). */
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

typedef ra_status (*attn_fn)(const ra_options *, const ra_tensor *, const ra_tensor *,
                             const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                             ra_tensor *);
static const attn_fn fns[TC_FN_COUNT] = {ra_ragged_mqa,    ra_ragged_mha,    ra_ragged_gqa,
                                         ra_reference_mqa, ra_reference_mha, ra_reference_gqa};

/* Head counts that fit each function: MQA Hkv = 1, MHA Hkv = Hq. */
static tc_params params_for(tc_fn fn, int64_t B, int64_t S, int64_t D, uint64_t seed)
{
    int64_t Hq = 4, Hkv = tc_fn_is_mqa(fn) ? 1 : tc_fn_is_mha(fn) ? 4 : 2;
    return (tc_params){.fn = fn, .B = B, .Hq = Hq, .Hkv = Hkv, .S = S, .D = D, .seed = seed};
}

/* Writes x (rounded to the view's dtype) at a logical element of an oracle view. */
static void view_put(const or_view *v, int64_t i0, int64_t i1, int64_t i2, int64_t i3, float x)
{
    int64_t off = i0 * v->st[0] + i1 * v->st[1] + i2 * v->st[2] + i3 * v->st[3];
    unsigned char *p = (unsigned char *)v->data + off * (int64_t)or_dtype_size(v->dtype);
    uint16_t h = v->dtype == RA_DTYPE_F16 ? or_f32_to_f16(x) : or_f32_to_bf16(x);
    if (v->dtype == RA_DTYPE_F32)
        memcpy(p, &x, 4);
    else
        memcpy(p, &h, 2);
}

/* ---- huge and subnormal logits ----------------------------------------------------------- */

static void test_huge_logits(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        /* |q|, |k| up to 1e15: logits up to D * 1e30 (D = 8), far from one another, so the
         * softmax is one-hot and f32 gets it exactly; the oracle reproduces it. */
        tc_params p = params_for((tc_fn)fn, 2, 50, 8, 100 + (uint64_t)fn);
        p.lo = -1e15, p.hi = 1e15;
        tc_case c;
        tc_init(&c, &p);
        assert_int_equal(tc_run(&c, NULL), RA_OK);
        tc_check(&c, 1e-5, NULL);
        for (int64_t i = 0; i < c.d.B * c.d.Hq * c.d.D; i++)
            assert_true(isfinite(c.got_o[i]));
        tc_free(&c);
    }
}

static void test_subnormals(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        /* q, k around 1e-20: logits around 1e-40, f32 subnormals, so the weights are uniform.
         * Each subnormal product carries an absolute error of 2^-150, so m (~1e-40, from D = 16
         * such products) and o below are held to 1e-4 relative instead of 1e-5. */
        tc_params p = params_for((tc_fn)fn, 2, 40, 16, 200 + (uint64_t)fn);
        p.lo = -1e-20, p.hi = 1e-20;
        tc_case c;
        tc_init(&c, &p);
        assert_int_equal(tc_run(&c, NULL), RA_OK);
        tc_check(&c, 1e-4, NULL);
        /* v subnormal too (q, k as before): o is around 1e-39. */
        for (int64_t b = 0; b < c.d.B; b++)
            for (int64_t t = 0; t < c.d.S; t++)
                for (int64_t j = 0; j < c.d.Hkv; j++)
                    for (int64_t d = 0; d < c.d.D; d++)
                        if (t < c.lengths[b] || !tc_fn_is_ragged((tc_fn)fn))
                            view_put(&c.vv, b, t, j, d,
                                     (float)(1e-39 * (double)((t * 7 + d * 3 + b) % 11 - 5)));
        tc_expect(&c);
        assert_int_equal(tc_run(&c, NULL), RA_OK);
        tc_check(&c, 1e-4, NULL);
        tc_free(&c);
    }
}

/* bf16 subnormals in q or K, where they carry the logits: q near 2^126 times K near 1e-39
 * (bf16 subnormal) gives products up to 0.1 and logits of a few units, so reading either as 0 changes the answer. The
 * AVX-512 kernel's bf16 pair products (vdpbf16ps) treat subnormal inputs as 0 and must fall
 * back to exact products; every kernel this CPU runs is checked at 1e-5. */
static void test_bf16_subnormal_q_k(void **state)
{
    (void)state;
    static const ra_kernel kernels[] = {RA_KERNEL_AUTO, RA_KERNEL_AVX512, RA_KERNEL_AVX2,
                                        RA_KERNEL_NEON, RA_KERNEL_PORTABLE};
    for (int which = 0; which < 2; which++) { /* 0: K subnormal, 1: q subnormal */
        tc_params p = {.fn = TC_RAGGED_GQA, .B = 2, .Hq = 8, .Hkv = 2, .S = 70, .D = 72,
                       .qdt = RA_DTYPE_BF16, .kdt = RA_DTYPE_BF16, .vdt = RA_DTYPE_BF16,
                       .seed = 450 + (uint64_t)which};
        tc_case c;
        tc_init(&c, &p);
        const double big = 0x1p126, tiny = 1e-39;
        for (int64_t b = 0; b < c.d.B; b++) {
            for (int64_t h = 0; h < c.d.Hq; h++)
                for (int64_t d = 0; d < c.d.D; d++) {
                    double x = (double)((b * 5 + h * 3 + d) % 9 - 4) / 4.0;
                    view_put(&c.qv, b, h, d, 0, (float)(x * (which ? tiny : big)));
                }
            for (int64_t t = 0; t < c.lengths[b]; t++)
                for (int64_t j = 0; j < c.d.Hkv; j++)
                    for (int64_t d = 0; d < c.d.D; d++) {
                        double x = (double)((t * 7 + j * 5 + d * 3 + b) % 13 - 6) / 6.0;
                        view_put(&c.kv, b, t, j, d, (float)(x * (which ? big : tiny)));
                    }
        }
        tc_expect(&c);
        for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++) {
            tc_opts o = {.kernel = kernels[i]};
            if (!tc_kernel_available(kernels[i]))
                continue;
            assert_int_equal(tc_run(&c, &o), RA_OK);
            tc_check(&c, 1e-5, NULL);
        }
        tc_free(&c);
    }
}

/* A bf16 subnormal in one sequence's q sends that sequence to the exact steps; the other
 * sequences keep the pair products, so each gives the bits it gives alone. */
static void test_bf16_subnormal_q_leaves_neighbours_alone(void **state)
{
    (void)state;
    tc_params p = {.fn = TC_RAGGED_GQA, .B = 2, .Hq = 32, .Hkv = 8, .S = 64, .D = 128,
                   .qdt = RA_DTYPE_BF16, .kdt = RA_DTYPE_BF16, .vdt = RA_DTYPE_BF16,
                   .seed = 460};
    tc_case both, alone;
    tc_init(&both, &p);
    view_put(&both.qv, 0, 3, 7, 0, 1e-39f); /* sequence 0 only */
    tc_expect(&both);
    assert_int_equal(tc_run(&both, NULL), RA_OK);
    tc_check(&both, 1e-5, NULL);
    /* sequence 1 alone: the same inputs, B = 1 */
    tc_params p1 = p;
    p1.B = 1;
    int32_t len1[1] = {both.lengths[1]};
    p1.lengths = len1;
    tc_init(&alone, &p1);
    const int64_t H = p.Hq, D = p.D, S = p.S, J = p.Hkv;
    for (int64_t h = 0; h < H; h++)
        for (int64_t d = 0; d < D; d++)
            view_put(&alone.qv, 0, h, d, 0, (float)or_view_get(&both.qv, 1, h, d, 0));
    for (int64_t t = 0; t < S; t++)
        for (int64_t j = 0; j < J; j++)
            for (int64_t d = 0; d < D; d++) {
                view_put(&alone.kv, 0, t, j, d, (float)or_view_get(&both.kv, 1, t, j, d));
                view_put(&alone.vv, 0, t, j, d, (float)or_view_get(&both.vv, 1, t, j, d));
            }
    tc_expect(&alone);
    assert_int_equal(tc_run(&alone, NULL), RA_OK);
    tc_check(&alone, 1e-5, NULL);
    assert_memory_equal(alone.got_o, both.got_o + H * D, sizeof(float) * (size_t)(H * D));
    assert_memory_equal(alone.got_m, both.got_m + H, sizeof(float) * (size_t)H);
    tc_free(&both);
    tc_free(&alone);
}

/* ---- NaN and Inf ------------------------------------------------------------------------- */

/* Puts x into one valid position of q, k or v (which = 0, 1, 2) for head h = 1 of batch 1, runs,
 * and checks: heads that read x are NaN (for a NaN) or at least do not crash; every other head
 * is bitwise the same as without x. */
static void one_nonfinite(tc_fn fn, int which, float x)
{
    tc_params p = params_for(fn, 2, 40, 16, 300 + (uint64_t)fn);
    int32_t lengths[2] = {17, 29};
    p.lengths = lengths;
    tc_case c;
    tc_init(&c, &p);
    assert_int_equal(tc_run(&c, NULL), RA_OK);
    tc_check(&c, 1e-5, NULL);
    const int64_t B = c.d.B, H = c.d.Hq, D = c.d.D, G = H / c.d.Hkv;
    float *o0 = malloc(sizeof(float) * (size_t)(B * H * D)), *m0 = malloc(sizeof(float) * B * H),
          *l0 = malloc(sizeof(float) * (size_t)(B * H));
    assert_true(o0 && m0 && l0);
    memcpy(o0, c.got_o, sizeof(float) * (size_t)(B * H * D));
    memcpy(m0, c.got_m, sizeof(float) * (size_t)(B * H));
    memcpy(l0, c.got_l, sizeof(float) * (size_t)(B * H));

    const int64_t bx = 1, hx = 1, jx = hx / G, tx = 5, dx = 3;
    if (which == 0)
        view_put(&c.qv, bx, hx, dx, 0, x);
    else
        view_put(which == 1 ? &c.kv : &c.vv, bx, tx, jx, dx, x);
    assert_int_equal(tc_run(&c, NULL), RA_OK);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            bool hit = b == bx && (which == 0 ? h == hx : h / G == jx);
            int64_t bh = b * H + h;
            if (!hit) {
                if (memcmp(&c.got_o[bh * D], &o0[bh * D], sizeof(float) * (size_t)D) ||
                    memcmp(&c.got_m[bh], &m0[bh], 4) || memcmp(&c.got_l[bh], &l0[bh], 4))
                    fail_msg("%s: %g in %s changed head b=%lld h=%lld, which does not read it",
                             tc_fn_name(fn), (double)x, which == 0 ? "q" : which == 1 ? "k" : "v",
                             (long long)b, (long long)h);
                continue;
            }
            if (isnan(x)) {
                bool any = false;
                for (int64_t d = 0; d < D; d++)
                    any |= isnan(c.got_o[bh * D + d]);
                if (!any)
                    fail_msg("%s: NaN in %s (valid position) did not reach o of b=%lld h=%lld",
                             tc_fn_name(fn), which == 0 ? "q" : which == 1 ? "k" : "v",
                             (long long)b, (long long)h);
            }
        }
    assert_int_equal(c.stray_writes, 0);
    free(o0);
    free(m0);
    free(l0);
    tc_free(&c);
}

static void test_nan_inf_propagate_per_head(void **state)
{
    (void)state;
    const float values[] = {NAN, INFINITY, -INFINITY, 3e38f};
    for (int fn = 0; fn < TC_FN_COUNT; fn++)
        for (int which = 0; which < 3; which++)
            for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
                one_nonfinite((tc_fn)fn, which, values[i]);
}

/* ---- logits of -inf ----------------------------------------------------------------------
 *
 * exp(-inf) = 0: a position whose logit is -inf (an -inf in k under a positive q) has no
 * weight. A head whose every valid logit is -inf therefore has no weight anywhere, and the
 * ragged functions return the empty state for it, o = 0, m = -inf, l = 0, as for length 0
 * (and as FlashAttention does for a fully masked row): the one answer under which split-KV,
 * ra_merge and sharding give the same result as a single call. The reference functions keep
 * the seed's arithmetic, exp(-inf - -inf) = NaN. */

enum { NI_B = 2, NI_S = 300, NI_D = 32 };

/* Puts -inf into feature 0 of k for positions [t0, t1) of KV head 0 of batch 1, and 1 into
 * feature 0 of q for that KV head's query heads, so their logits there are -inf. */
static void put_minus_inf(tc_case *c, int64_t t0, int64_t t1)
{
    const int64_t G = c->d.Hq / c->d.Hkv;
    for (int64_t t = t0; t < t1; t++)
        view_put(&c->kv, 1, t, 0, 0, -INFINITY);
    for (int64_t g = 0; g < G; g++)
        view_put(&c->qv, 1, g, 0, 0, 1.0f);
}

static void one_all_minus_inf(tc_fn fn, int64_t Hq, int64_t Hkv, ra_dtype qdt, ra_dtype kdt,
                              const tc_opts *o)
{
    int32_t lengths[NI_B] = {NI_S, 229};
    tc_params p = {.fn = fn, .B = NI_B, .Hq = Hq, .Hkv = Hkv, .S = NI_S, .D = NI_D,
                   .qdt = qdt, .kdt = kdt, .vdt = kdt, .lengths = lengths, .seed = 77};
    tc_case c;
    tc_init(&c, &p);
    put_minus_inf(&c, 0, tc_fn_is_ragged(fn) ? lengths[1] : NI_S);
    /* the other heads against the oracle, with the edited inputs */
    assert_int_equal(tc_run(&c, o), RA_OK);
    const int64_t H = c.d.Hq, D = c.d.D, G = H / c.d.Hkv;
    for (int64_t b = 0; b < NI_B; b++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t bh = b * H + h;
            const bool hit = b == 1 && h < G;
            if (!hit) {
                or_err e = or_compare(&c.got_o[bh * D], &c.expect.o[bh * D], D);
                if (tc_fn_is_ragged(fn) && !tc_fn_is_mqa(fn))
                    e = or_compare(&c.got_o[bh * D], &c.expect.o_un[bh * D], D);
                if (e.nonfinite || e.rel > 1e-5)
                    fail_msg("%s: head b=%lld h=%lld, which has finite logits, is off by %.3g",
                             tc_fn_name(fn), (long long)b, (long long)h, e.rel);
                continue;
            }
            for (int64_t d = 0; d < D; d++) {
                float x = c.got_o[bh * D + d];
                if (tc_fn_is_ragged(fn) ? x != 0.0f : !isnan(x))
                    fail_msg("%s (%s q, %s k, kernel %d, split %lld): all logits -inf gave "
                             "o[%lld] = %g for h=%lld, expected %s", tc_fn_name(fn),
                             or_dtype_name(qdt), or_dtype_name(kdt), (int)o->kernel,
                             (long long)o->split_tokens, (long long)d, (double)x, (long long)h,
                             tc_fn_is_ragged(fn) ? "0" : "NaN");
            }
            if (tc_fn_is_ragged(fn) && (c.got_m[bh] != -INFINITY || c.got_l[bh] != 0.0f))
                fail_msg("%s: all logits -inf gave m = %g, l = %g for h=%lld, expected -inf, 0",
                         tc_fn_name(fn), (double)c.got_m[bh], (double)c.got_l[bh],
                         (long long)h);
        }
    assert_int_equal(c.stray_writes, 0);
    tc_free(&c);
}

static void test_all_logits_minus_inf(void **state)
{
    (void)state;
    static const ra_kernel kernels[] = {RA_KERNEL_AUTO, RA_KERNEL_PORTABLE, RA_KERNEL_BLAS,
                                        RA_KERNEL_AVX2, RA_KERNEL_AVX512, RA_KERNEL_NEON};
    /* MQA, MHA (row order on AVX-512), GQA 2:1 (row order) and 4:1 (head by head) */
    static const struct {
        tc_fn fn;
        int64_t Hq, Hkv;
    } shapes[] = {{TC_RAGGED_MQA, 8, 1},
                  {TC_RAGGED_MHA, 4, 4},
                  {TC_RAGGED_GQA, 4, 2},
                  {TC_RAGGED_GQA, 8, 2}};
    static const ra_dtype dts[][2] = {{RA_DTYPE_F32, RA_DTYPE_F32},
                                      {RA_DTYPE_F32, RA_DTYPE_F16},
                                      {RA_DTYPE_F32, RA_DTYPE_BF16},
                                      {RA_DTYPE_BF16, RA_DTYPE_BF16}}; /* q and K bf16 pairs */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++)
            for (size_t t = 0; t < sizeof dts / sizeof dts[0]; t++)
                for (int64_t split = 0; split <= 64; split += 64) {
                    if (!tc_kernel_available(kernels[k]))
                        continue;
                    tc_opts o = {.kernel = kernels[k], .split_tokens = split};
                    one_all_minus_inf(shapes[s].fn, shapes[s].Hq, shapes[s].Hkv, dts[t][0],
                                      dts[t][1], &o);
                }
    for (tc_fn fn = TC_REFERENCE_MQA; fn <= TC_REFERENCE_GQA; fn++) {
        tc_opts o = {0};
        one_all_minus_inf(fn, 4, tc_fn_is_mqa(fn) ? 1 : tc_fn_is_mha(fn) ? 4 : 2, RA_DTYPE_F32,
                          RA_DTYPE_F32, &o);
    }
}

/* Chunks of a split whose logits are all -inf are empty states that merge to nothing: the
 * result is exact attention over the other positions. */
static void test_minus_inf_chunks_merge_exactly(void **state)
{
    (void)state;
    for (int64_t split = 32; split <= 128; split *= 2) {
        int32_t lengths[NI_B] = {NI_S, 229};
        tc_params p = {.fn = TC_RAGGED_GQA, .B = NI_B, .Hq = 8, .Hkv = 2, .S = NI_S,
                       .D = NI_D, .lengths = lengths, .seed = 78};
        tc_case c;
        tc_init(&c, &p);
        put_minus_inf(&c, 0, 150); /* whole chunks and part of one; 150..228 stay finite */
        tc_expect(&c);
        tc_opts o = {.split_tokens = split, .num_threads = 2};
        assert_int_equal(tc_run(&c, &o), RA_OK);
        tc_check(&c, 1e-5, NULL);
        tc_free(&c);
    }
}

/* ---- long sequences ---------------------------------------------------------------------- */

static void test_one_million_tokens(void **state)
{
    (void)state;
    const int64_t S = INT64_C(1) << 20;
    static const struct {
        tc_fn fn;
        int64_t D;
        ra_dtype dt;
    } runs[] = {{TC_RAGGED_GQA, 2, RA_DTYPE_F32},
                {TC_RAGGED_MQA, 1, RA_DTYPE_BF16},
                {TC_RAGGED_MHA, 4, RA_DTYPE_F16},
                {TC_REFERENCE_MQA, 2, RA_DTYPE_F32}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        int32_t lengths[1] = {(int32_t)S - (int32_t)i};
        tc_params p = {.fn = runs[i].fn, .B = 1, .Hq = 2, .S = S, .D = runs[i].D,
                       .qdt = runs[i].dt, .kdt = runs[i].dt, .vdt = runs[i].dt,
                       .lengths = lengths, .seed = 400 + i};
        p.Hkv = tc_fn_is_mqa(p.fn) ? 1 : tc_fn_is_mha(p.fn) ? 2 : 1;
        tc_case c;
        tc_init(&c, &p);
        assert_int_equal(tc_run(&c, NULL), RA_OK);
        /* 2^20 terms summed in f32: the error bound grows with the length; blocked sums keep
         * it far below this 1e-4. */
        tc_check(&c, 1e-4, "S=2^20");
        tc_free(&c);
    }
}

/* S = 2^40 declared, but the buffer holds 8 positions and the length is 5: the ragged
 * functions must read (and allocate) nothing for the positions past the length. ASan and
 * valgrind see any read past the 8 positions. */
static void test_huge_s_short_length(void **state)
{
    (void)state;
    enum { D = 4, T = 8, LEN = 5 };
    const int64_t S = INT64_C(1) << 40;
    float q[2 * D], k[T * D], v[T * D], o[2 * D], m[2], l[2];
    for (int i = 0; i < T * D; i++) {
        k[i] = (float)((i * 7) % 13 - 6) / 8.0f;
        v[i] = (float)((i * 5) % 11 - 5) / 4.0f;
    }
    for (int i = 0; i < 2 * D; i++)
        q[i] = (float)(i % 5 - 2) / 2.0f;
    int32_t len[1] = {LEN};
    for (int fn = TC_RAGGED_MQA; fn <= TC_RAGGED_GQA; fn++) {
        bool mqa = fn == TC_RAGGED_MQA;
        int64_t H = mqa ? 2 : fn == TC_RAGGED_MHA ? 1 : 2;
        int64_t q3[3] = {1, H, D}, q4[4] = {1, 1, H, D};
        int64_t k3[3] = {1, S, D}, k4[4] = {1, S, 1, D};
        int64_t ks3[3] = {0, D, 1}, ks4[4] = {0, D, 0, 1};
        int64_t ml2[2] = {1, H}, ml4[4] = {1, 1, H, 1}, ls[1] = {1};
        ra_tensor *tq, *tk, *tv, *tl, *to, *tm, *tll;
        assert_int_equal(ra_tensor_wrap(&tq, RA_DTYPE_F32, mqa ? 3 : 4, mqa ? q3 : q4, NULL, q),
                         RA_OK);
        assert_int_equal(ra_tensor_wrap(&tk, RA_DTYPE_F32, mqa ? 3 : 4, mqa ? k3 : k4,
                                        mqa ? ks3 : ks4, k), RA_OK);
        assert_int_equal(ra_tensor_wrap(&tv, RA_DTYPE_F32, mqa ? 3 : 4, mqa ? k3 : k4,
                                        mqa ? ks3 : ks4, v), RA_OK);
        assert_int_equal(ra_tensor_wrap(&tl, RA_DTYPE_I32, 1, ls, NULL, len), RA_OK);
        assert_int_equal(ra_tensor_wrap(&to, RA_DTYPE_F32, mqa ? 3 : 4, mqa ? q3 : q4, NULL, o),
                         RA_OK);
        assert_int_equal(ra_tensor_wrap(&tm, RA_DTYPE_F32, mqa ? 2 : 4, mqa ? ml2 : ml4, NULL, m),
                         RA_OK);
        assert_int_equal(ra_tensor_wrap(&tll, RA_DTYPE_F32, mqa ? 2 : 4, mqa ? ml2 : ml4, NULL,
                                        l), RA_OK);
        ra_status s = fns[fn](NULL, tq, tk, tv, tl, to, tm, tll);
        if (s != RA_OK)
            fail_msg("%s with S = 2^40 and length 5: status %d (%s)", tc_fn_name((tc_fn)fn),
                     (int)s, ra_last_error());
        /* The oracle over the 5 positions. */
        or_dims dims = {1, H, 1, LEN, D};
        or_view qv = {q, RA_DTYPE_F32, {H * D, D, 1, 0}};
        or_view kv = {k, RA_DTYPE_F32, {0, D, 0, 1}}, vv = {v, RA_DTYPE_F32, {0, D, 0, 1}};
        or_state st;
        or_state_alloc(&st, 1, H, D);
        or_attention(&dims, &qv, &kv, &vv, len, 1.0, &st);
        or_err e = or_compare(o, fn == TC_RAGGED_MQA ? st.o : st.o_un, H * D);
        if (!(e.rel <= 1e-5) || e.nonfinite)
            fail_msg("%s with S = 2^40: o rel err %g", tc_fn_name((tc_fn)fn), e.rel);
        e = or_compare(l, st.l, H);
        assert_true(e.rel <= 1e-5 && !e.nonfinite);
        or_state_free(&st);
        ra_tensor *all[] = {tq, tk, tv, tl, to, tm, tll};
        for (size_t i = 0; i < 7; i++)
            ra_tensor_destroy(all[i]);
    }
}

/* ---- overflow ---------------------------------------------------------------------------- */

static void test_overflow(void **state)
{
    (void)state;
    float one[1] = {0};
    ra_tensor *t = NULL;
    /* Byte size or furthest byte offset beyond int64/size_t. */
    int64_t s1[2] = {INT64_C(1) << 62, 4}, s2[1] = {INT64_C(1) << 62}, s3[2] = {3, 2};
    int64_t st3[2] = {INT64_C(1) << 62, 1};
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 2, s1, NULL, one), RA_ERR_OVERFLOW);
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_BF16, 1, s2, NULL, one), RA_ERR_OVERFLOW);
    assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 2, s3, st3, one), RA_ERR_OVERFLOW);
    assert_int_equal(ra_tensor_create(&t, RA_DTYPE_F32, 2, s1), RA_ERR_OVERFLOW);
    assert_null(t);
    assert_true(strstr(ra_last_error(), "overflow") != NULL);

    /* The cost estimate of tensors that fit: flops B*H*S*(4D+S) overflows int64. Broadcast
     * (stride 0) views over one element stand for the huge tensors. */
    int64_t B = 1, H = 1 << 20, S = INT64_C(1) << 24, D = 1;
    int64_t qs[4] = {B, 1, H, D}, ks[4] = {B, S, H, D}, ls[1] = {B}, z[4] = {0, 0, 0, 0};
    int32_t len[1] = {0};
    ra_tensor *tq, *tk, *tv, *tl;
    assert_int_equal(ra_tensor_wrap(&tq, RA_DTYPE_F32, 4, qs, z, one), RA_OK);
    assert_int_equal(ra_tensor_wrap(&tk, RA_DTYPE_BF16, 4, ks, z, one), RA_OK);
    assert_int_equal(ra_tensor_wrap(&tv, RA_DTYPE_BF16, 4, ks, z, one), RA_OK);
    assert_int_equal(ra_tensor_wrap(&tl, RA_DTYPE_I32, 1, ls, z, len), RA_OK);
    int64_t f = -7, tr = -7, by = -7;
    assert_int_equal(ra_mha_cost_estimate(tq, tk, tv, tl, &f, &tr, &by), RA_ERR_OVERFLOW);
    assert_true(f == -7 && tr == -7 && by == -7);
    /* Just below: transcendentals and bytes fit, flops = 2^44 * (4 + 2^24) fits too. */
    int64_t ks2[4] = {B, INT64_C(1) << 20, H, D};
    ra_tensor *tk2;
    assert_int_equal(ra_tensor_wrap(&tk2, RA_DTYPE_BF16, 4, ks2, z, one), RA_OK);
    assert_int_equal(ra_mha_cost_estimate(tq, tk2, tk2, tl, &f, &tr, &by), RA_OK);
    assert_true(f == (INT64_C(1) << 40) * (4 + (INT64_C(1) << 20)));
    assert_true(tr == INT64_C(1) << 40);
    assert_true(by == 4 * H + 2 * 2 * (INT64_C(1) << 40) + 4);
    ra_tensor *all[] = {tq, tk, tv, tl, tk2};
    for (size_t i = 0; i < 5; i++)
        ra_tensor_destroy(all[i]);
}

/* ---- zero-sized dimensions --------------------------------------------------------------- */

/* Wraps a tensor of the given shape over data (NULL allowed when it has no elements). */
static ra_tensor *wrap(ra_dtype dt, int rank, int64_t a, int64_t b, int64_t c, int64_t d,
                       void *data)
{
    int64_t sh[4] = {a, b, c, d};
    ra_tensor *t = NULL;
    ra_status s = ra_tensor_wrap(&t, dt, rank, sh, NULL, data);
    if (s != RA_OK)
        fail_msg("wrap [%lld,%lld,%lld,%lld]: %s", (long long)a, (long long)b, (long long)c,
                 (long long)d, ra_last_error());
    return t;
}

/* Calls fn with dims (B, Hq, Hkv, S, D); every tensor gets a real buffer (filled with 0x5A)
 * or NULL when empty; returns the status and whether any output byte changed. */
static ra_status call_dims(tc_fn fn, int64_t B, int64_t Hq, int64_t Hkv, int64_t S, int64_t D,
                           bool *wrote)
{
    static float buf[7][4096];
    static int32_t lens[16];
    memset(buf, 0x5A, sizeof buf);
    for (int i = 0; i < 16; i++)
        lens[i] = 0;
    bool mqa = tc_fn_is_mqa(fn), q3 = fn == TC_RAGGED_MQA || fn == TC_REFERENCE_MQA ||
                                      fn == TC_REFERENCE_GQA;
    ra_tensor *q = q3 ? wrap(RA_DTYPE_F32, 3, B, Hq, D, 1, buf[0])
                      : wrap(RA_DTYPE_F32, 4, B, 1, Hq, D, buf[0]);
    ra_tensor *k, *v;
    if (mqa) {
        k = wrap(RA_DTYPE_F32, 3, B, S, D, 1, buf[1]);
        v = wrap(RA_DTYPE_F32, 3, B, S, D, 1, buf[2]);
    } else if (fn == TC_REFERENCE_GQA) {
        k = wrap(RA_DTYPE_F32, 4, B, Hkv, S, D, buf[1]);
        v = wrap(RA_DTYPE_F32, 4, B, Hkv, S, D, buf[2]);
    } else {
        k = wrap(RA_DTYPE_F32, 4, B, S, Hkv, D, buf[1]);
        v = wrap(RA_DTYPE_F32, 4, B, S, Hkv, D, buf[2]);
    }
    ra_tensor *l = wrap(RA_DTYPE_I32, 1, B, 1, 1, 1, B ? lens : NULL);
    ra_tensor *o = mqa ? wrap(RA_DTYPE_F32, 3, B, Hq, D, 1, buf[4])
                       : wrap(RA_DTYPE_F32, 4, B, 1, Hq, D, buf[4]);
    ra_tensor *m = fn == TC_RAGGED_MQA ? wrap(RA_DTYPE_F32, 2, B, Hq, 1, 1, buf[5])
                   : mqa               ? wrap(RA_DTYPE_F32, 3, B, Hq, 1, 1, buf[5])
                                       : wrap(RA_DTYPE_F32, 4, B, 1, Hq, 1, buf[5]);
    ra_tensor *ll = fn == TC_RAGGED_MQA ? wrap(RA_DTYPE_F32, 2, B, Hq, 1, 1, buf[6])
                    : mqa               ? wrap(RA_DTYPE_F32, 3, B, Hq, 1, 1, buf[6])
                                        : wrap(RA_DTYPE_F32, 4, B, 1, Hq, 1, buf[6]);
    ra_status s = fns[fn](NULL, q, k, v, l, o, m, ll);
    *wrote = false;
    for (int i = 4; i < 7; i++)
        for (size_t j = 0; j < sizeof buf[i]; j++)
            *wrote |= ((unsigned char *)buf[i])[j] != 0x5A;
    if (s == RA_OK && B > 0 && Hq > 0) /* S = 0 (all lengths 0): the empty state */
        for (int64_t i = 0; i < B * Hq; i++)
            if (tc_fn_is_ragged(fn))
                assert_true(buf[5][i] == -INFINITY && buf[6][i] == 0.0f && buf[4][i * D] == 0.0f);
    ra_tensor *all[] = {q, k, v, l, o, m, ll};
    for (size_t i = 0; i < 7; i++)
        ra_tensor_destroy(all[i]);
    return s;
}

static void test_zero_sized(void **state)
{
    (void)state;
    for (int fn = 0; fn < TC_FN_COUNT; fn++) {
        bool mqa = tc_fn_is_mqa((tc_fn)fn), mha = tc_fn_is_mha((tc_fn)fn), wrote;
        int64_t Hkv = mqa ? 1 : mha ? 4 : 2;
        /* B = 0 and Hq = 0: valid calls that write nothing. */
        assert_int_equal(call_dims((tc_fn)fn, 0, 4, Hkv, 16, 8, &wrote), RA_OK);
        assert_false(wrote);
        assert_int_equal(call_dims((tc_fn)fn, 2, 0, mha ? 0 : Hkv, 16, 8, &wrote), RA_OK);
        assert_false(wrote);
        /* D = 0 is a shape error. */
        assert_int_equal(call_dims((tc_fn)fn, 2, 4, Hkv, 16, 0, &wrote), RA_ERR_SHAPE);
        assert_false(wrote);
        assert_true(strstr(ra_last_error(), "D") != NULL);
        /* S = 0: every length is 0; the ragged functions return the empty state. */
        if (tc_fn_is_ragged((tc_fn)fn))
            assert_int_equal(call_dims((tc_fn)fn, 2, 4, Hkv, 0, 8, &wrote), RA_OK);
    }
}

/* ---- aliasing ---------------------------------------------------------------------------- */

static void expect_alias(tc_fn fn, tc_case *c, ra_tensor *o, ra_tensor *m, ra_tensor *l,
                         const char *what)
{
    size_t qb = c->q.bytes, kb = c->k.bytes;
    unsigned char *q0 = malloc(qb), *k0 = malloc(kb);
    assert_true(q0 && k0);
    memcpy(q0, c->q.data, qb);
    memcpy(k0, c->k.data, kb);
    or_buf_fill_bytes(&c->o, 0x5A);
    or_buf_fill_bytes(&c->m, 0x5A);
    or_buf_fill_bytes(&c->l, 0x5A);
    ra_status s = fns[fn](NULL, c->q.t, c->k.t, c->v.t, c->len.t, o, m, l);
    if (s != RA_ERR_ALIAS)
        fail_msg("%s, %s: status %d, expected RA_ERR_ALIAS", tc_fn_name(fn), what, (int)s);
    assert_memory_equal(q0, c->q.data, qb);
    assert_memory_equal(k0, c->k.data, kb);
    for (size_t i = 0; i < c->o.bytes; i++)
        assert_int_equal(c->o.data[i], 0x5A);
    free(q0);
    free(k0);
}

static void test_alias(void **state)
{
    (void)state;
    for (int f = 0; f < TC_FN_COUNT; f++) {
        tc_fn fn = (tc_fn)f;
        tc_params p = params_for(fn, 2, 20, 8, 500 + (uint64_t)f);
        tc_case c;
        tc_init(&c, &p);
        const ra_tensor *o = c.o.t;
        int rank = ra_tensor_rank(o);
        int64_t sh[4], st[4];
        for (int i = 0; i < rank; i++)
            sh[i] = ra_tensor_dim(o, i), st[i] = ra_tensor_stride(o, i);
        ra_tensor *t;
        /* o over q's memory (the same byte count). */
        assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, rank, sh, st, c.q.data), RA_OK);
        if (c.q.dtype == RA_DTYPE_F32 && c.q.bytes >= c.o.bytes)
            expect_alias(fn, &c, t, c.m.t, c.l.t, "o is q");
        ra_tensor_destroy(t);
        /* o starting inside k. */
        assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, rank, sh, st, c.k.data + 64), RA_OK);
        expect_alias(fn, &c, t, c.m.t, c.l.t, "o inside k");
        ra_tensor_destroy(t);
        /* o whose elements overlap each other (D stride 0). */
        st[rank - 1] = 0;
        assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, rank, sh, st, c.o.data), RA_OK);
        expect_alias(fn, &c, t, c.m.t, c.l.t, "o with a zero D stride");
        ra_tensor_destroy(t);
        /* m and l the same memory. */
        expect_alias(fn, &c, c.o.t, c.m.t, c.m.t, "m is l");
        /* m inside o's memory. */
        const ra_tensor *m = c.m.t;
        int mr = ra_tensor_rank(m);
        int64_t msh[4];
        for (int i = 0; i < mr; i++)
            msh[i] = ra_tensor_dim(m, i);
        assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, mr, msh, NULL, c.o.data + 4), RA_OK);
        expect_alias(fn, &c, c.o.t, t, c.l.t, "m inside o");
        ra_tensor_destroy(t);
        tc_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_huge_logits),
        cmocka_unit_test(test_subnormals),
        cmocka_unit_test(test_bf16_subnormal_q_k),
        cmocka_unit_test(test_bf16_subnormal_q_leaves_neighbours_alone),
        cmocka_unit_test(test_nan_inf_propagate_per_head),
        cmocka_unit_test(test_all_logits_minus_inf),
        cmocka_unit_test(test_minus_inf_chunks_merge_exactly),
        cmocka_unit_test(test_huge_s_short_length),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_zero_sized),
        cmocka_unit_test(test_alias),
        cmocka_unit_test(test_one_million_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
