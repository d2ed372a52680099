/* Quantized K/V (ra_tensor_wrap_quantized: i8, fp8 e4m3 and e5m2 with per-tensor, per-head
 * or per-position-and-head scales) against the test's double-precision oracle run on the
 * dequantized values q * s (1e-5 of max|o*l|), on every kernel, MQA/MHA/GQA, with split-KV,
 * bitwise across thread counts and between a contiguous and a paged cache; ra_quantize against
 * a brute-force search of the nearest code; and every bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"

typedef enum scale_kind { PER_TENSOR, PER_HEAD, PER_ROW } scale_kind;

static const char *kind_name(scale_kind k)
{
    return k == PER_TENSOR ? "per tensor" : k == PER_HEAD ? "per head" : "per position";
}

/* One K or V: codes, scales, the quantized handle, and its dequantized f32 copy. */
typedef struct qcache {
    ra_dtype dt;
    scale_kind kind;
    or_buf codes, scales, dequant;
    ra_tensor *t;
} qcache;

static uint8_t random_code(or_rng *r, ra_dtype dt)
{
    for (;;) {
        uint8_t c = (uint8_t)or_rng_int(r, 0, 255);
        if (dt == RA_DTYPE_I8)
            return c == 0x80 ? 0 : c; /* -128 is allowed but ra_quantize never writes it */
        if (isfinite(or_fp8_to_f64(dt, c)))
            return c;
    }
}

static void qcache_init(qcache *c, ra_dtype dt, scale_kind kind, const int64_t shape[4],
                        or_rng *r)
{
    c->dt = dt;
    c->kind = kind;
    const int64_t B = shape[0], S = shape[1], H = shape[2], D = shape[3];
    const int64_t sshape[4] = {kind == PER_ROW ? B : 1, kind == PER_ROW ? S : 1,
                               kind == PER_TENSOR ? 1 : H, 1};
    or_buf_init(&c->codes, dt, 4, shape, NULL);
    or_buf_init(&c->scales, RA_DTYPE_F32, 4, sshape, NULL);
    or_buf_init(&c->dequant, RA_DTYPE_F32, 4, shape, NULL);
    /* scales so that the dequantized values lie within about [-1, 1] */
    const double qmax = dt == RA_DTYPE_I8 ? 127 : dt == RA_DTYPE_FP8_E4M3 ? 448 : 57344;
    for (int64_t b = 0; b < sshape[0]; b++)
        for (int64_t t = 0; t < sshape[1]; t++)
            for (int64_t j = 0; j < sshape[2]; j++) {
                const int64_t i[4] = {b, t, j, 0};
                or_buf_set(&c->scales, i, or_rng_uniform(r, 0.3, 1.5) / qmax);
            }
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < S; t++)
            for (int64_t j = 0; j < H; j++)
                for (int64_t d = 0; d < D; d++) {
                    const int64_t i[4] = {b, t, j, d};
                    const int64_t si[4] = {kind == PER_ROW ? b : 0, kind == PER_ROW ? t : 0,
                                           kind == PER_TENSOR ? 0 : j, 0};
                    const uint8_t code = random_code(r, dt);
                    c->codes.data[or_buf_offset(&c->codes, i)] = code;
                    const double q = dt == RA_DTYPE_I8 ? (double)(int8_t)code
                                                       : or_fp8_to_f64(dt, code);
                    or_buf_set(&c->dequant, i, q * or_buf_get(&c->scales, si));
                }
    assert_int_equal(ra_tensor_wrap_quantized(&c->t, dt, 4, shape, NULL, c->codes.data,
                                              c->scales.t), RA_OK);
}

static void qcache_free(qcache *c)
{
    ra_tensor_destroy(c->t);
    or_buf_free(&c->codes);
    or_buf_free(&c->scales);
    or_buf_free(&c->dequant);
}

/* ---- attention ---------------------------------------------------------------------------- */

enum { QB = 5, QS = 120, QD = 72 }; /* D = 64 + 8: every SIMD loop has a masked tail */
static const int32_t qlengths[QB] = {0, 1, 33, 77, QS};
static const ra_kernel kernels[] = {RA_KERNEL_AUTO, RA_KERNEL_PORTABLE, RA_KERNEL_BLAS,
                                    RA_KERNEL_AVX2, RA_KERNEL_AVX512, RA_KERNEL_NEON};

static ra_options *options_for(ra_kernel k, int64_t split, int threads)
{
    ra_options *o;
    assert_int_equal(ra_options_create(&o), RA_OK);
    if (k != RA_KERNEL_AUTO && ra_options_set_kernel(o, k) != RA_OK) {
        ra_options_destroy(o);
        return NULL;
    }
    assert_int_equal(ra_options_set_split_tokens(o, split), RA_OK);
    assert_int_equal(ra_options_set_num_threads(o, threads), RA_OK);
    assert_int_equal(ra_options_set_scale(o, 0.125f), RA_OK);
    return o;
}

/* K, V each quantized (kdt/vdt) or plain f32 (F32: the dequantized copy itself). */
static void one_case(int64_t Hq, int64_t Hkv, ra_dtype kdt, ra_dtype vdt, scale_kind kind,
                     ra_dtype qdt, uint64_t seed)
{
    or_rng r = or_rng_seed(seed);
    const int64_t qs[4] = {QB, 1, Hq, QD}, kvs[4] = {QB, QS, Hkv, QD}, ls[1] = {QB},
                  ms[4] = {QB, 1, Hq, 1};
    or_buf q, len, o, m, l;
    or_buf_init(&q, qdt, 4, qs, NULL);
    or_buf_fill_uniform(&q, &r, -1, 1);
    or_buf_init(&len, RA_DTYPE_I32, 1, ls, NULL);
    memcpy(len.data, qlengths, sizeof qlengths);
    or_buf_init(&o, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_init(&m, RA_DTYPE_F32, 4, ms, NULL);
    or_buf_init(&l, RA_DTYPE_F32, 4, ms, NULL);
    qcache k = {0}, v = {0};
    qcache_init(&k, kdt == RA_DTYPE_F32 ? RA_DTYPE_I8 : kdt, kind, kvs, &r);
    qcache_init(&v, vdt == RA_DTYPE_F32 ? RA_DTYPE_I8 : vdt, kind, kvs, &r);
    ra_tensor *kt = kdt == RA_DTYPE_F32 ? k.dequant.t : k.t;
    ra_tensor *vt = vdt == RA_DTYPE_F32 ? v.dequant.t : v.t;

    or_dims dims = {QB, Hq, Hkv, QS, QD};
    or_view qv = or_view_of(&q, 0, 2, 3, -1), kv = or_view_of(&k.dequant, 0, 1, 2, 3),
            vv = or_view_of(&v.dequant, 0, 1, 2, 3);
    or_state want;
    or_state_alloc(&want, QB, Hq, QD);
    or_attention(&dims, &qv, &kv, &vv, qlengths, 0.125, &want);

    const size_t n_o = (size_t)(QB * Hq * QD);
    float *got = malloc(sizeof(float) * n_o), *first = malloc(sizeof(float) * n_o);
    assert_true(got && first);
    for (size_t ki = 0; ki < sizeof kernels / sizeof kernels[0]; ki++)
        for (int64_t split = 0; split <= 32; split += 32)
            for (int threads = 1; threads <= 2; threads++) {
                ra_options *opts = options_for(kernels[ki], split, threads);
                if (!opts)
                    continue;
                or_buf_fill_bytes(&o, 0xFF);
                ra_status s = ra_ragged_gqa(opts, q.t, kt, vt, len.t, o.t, m.t, l.t);
                ra_options_destroy(opts);
                if (s != RA_OK)
                    fail_msg("ra_ragged_gqa: %s", ra_last_error());
                or_buf_gather_f32(&o, got);
                or_err e = or_compare(got, want.o_un, (int64_t)n_o);
                char key[128];
                snprintf(key, sizeof key, "K %s, V %s, %s", or_dtype_name(kdt),
                         or_dtype_name(vdt), kind_name(kind));
                if (e.nonfinite || e.rel > 1e-5)
                    fail_msg("%s, Hq %lld Hkv %lld, kernel %s, split %lld, %d threads: %.3g "
                             "(%lld non-finite)", key, (long long)Hq, (long long)Hkv,
                             ra_kernel_name(kernels[ki]), (long long)split, threads, e.rel,
                             (long long)e.nonfinite);
                or_stat_note(key, e.rel);
                if (threads == 1)
                    memcpy(first, got, sizeof(float) * n_o);
                else if (memcmp(first, got, sizeof(float) * n_o))
                    fail_msg("%s, kernel %s: 2 threads differ from 1 in bits", key,
                             ra_kernel_name(kernels[ki]));
            }
    free(got);
    free(first);
    or_state_free(&want);
    qcache_free(&k);
    qcache_free(&v);
    or_buf *bufs[] = {&q, &len, &o, &m, &l};
    for (int i = 0; i < 5; i++)
        or_buf_free(bufs[i]);
}

static void test_each_dtype_and_scale_kind(void **state)
{
    (void)state;
    static const ra_dtype dts[] = {RA_DTYPE_I8, RA_DTYPE_FP8_E4M3, RA_DTYPE_FP8_E5M2};
    static const struct {
        int64_t Hq, Hkv;
    } shapes[] = {{8, 1}, {4, 4}, {4, 2}, {8, 2}}; /* MQA, row walk G = 1 and 2, GQA 4:1 */
    uint64_t seed = 1;
    for (size_t d = 0; d < 3; d++)
        for (scale_kind kind = PER_TENSOR; kind <= PER_ROW; kind++)
            for (size_t s = 0; s < 4; s++)
                one_case(shapes[s].Hq, shapes[s].Hkv, dts[d], dts[d], kind, RA_DTYPE_F32,
                         seed++);
}

/* Only K or only V quantized, with bf16 q too. */
static void test_mixed(void **state)
{
    (void)state;
    one_case(8, 2, RA_DTYPE_I8, RA_DTYPE_F32, PER_ROW, RA_DTYPE_F32, 50);
    one_case(8, 2, RA_DTYPE_F32, RA_DTYPE_FP8_E4M3, PER_HEAD, RA_DTYPE_BF16, 51);
    one_case(4, 4, RA_DTYPE_FP8_E5M2, RA_DTYPE_I8, PER_ROW, RA_DTYPE_F16, 52);
}

/* A NaN scale at one valid position makes only the heads that read it NaN. */
static void test_nan_scale_stays_in_its_head(void **state)
{
    (void)state;
    or_rng r = or_rng_seed(9);
    const int64_t B = 2, S = 16, H = 2, D = 8;
    const int64_t qs[4] = {B, 1, H, D}, kvs[4] = {B, S, H, D}, ls[1] = {B};
    int32_t lens[2] = {S, S};
    or_buf q, len, o;
    or_buf_init(&q, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_fill_uniform(&q, &r, -1, 1);
    or_buf_init(&len, RA_DTYPE_I32, 1, ls, NULL);
    memcpy(len.data, lens, sizeof lens);
    or_buf_init(&o, RA_DTYPE_F32, 4, qs, NULL);
    qcache k, v;
    qcache_init(&k, RA_DTYPE_I8, PER_ROW, kvs, &r);
    qcache_init(&v, RA_DTYPE_I8, PER_ROW, kvs, &r);
    const int64_t at[4] = {1, 5, 0, 0};
    or_buf_set(&v.scales, at, NAN);
    assert_int_equal(ra_ragged_gqa(NULL, q.t, k.t, v.t, len.t, o.t, NULL, NULL), RA_OK);
    float got[2 * 2 * 8];
    or_buf_gather_f32(&o, got);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            bool hit = b == 1 && h == 0, any_nan = false;
            for (int64_t d = 0; d < D; d++)
                any_nan |= isnan(got[(b * H + h) * D + d]);
            if (any_nan != hit)
                fail_msg("b=%lld h=%lld: NaN %s", (long long)b, (long long)h,
                         hit ? "missing" : "leaked");
        }
    qcache_free(&k);
    qcache_free(&v);
    or_buf_free(&q);
    or_buf_free(&len);
    or_buf_free(&o);
}

/* The same codes and scales in pages (scales shaped like the pool) give the contiguous bits. */
static void test_paged_equals_contiguous(void **state)
{
    (void)state;
    or_rng r = or_rng_seed(21);
    enum { B = 3, S = 64, H = 2, D = 32, PS = 16, MP = S / PS, NP = B * MP };
    const int64_t qs[4] = {B, 1, 4, D}, kvs[4] = {B, S, H, D}, ls[1] = {B},
                  pool[4] = {NP, PS, H, D}, pscale[4] = {NP, PS, H, 1}, ts[2] = {B, MP};
    int32_t lens[B] = {S, 40, 17}, table[B * MP];
    for (int i = 0; i < NP; i++) /* a fixed shuffle */
        table[i] = (i * 7) % NP;
    or_buf q, len, tab, o1, o2;
    or_buf_init(&q, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_fill_uniform(&q, &r, -1, 1);
    or_buf_init(&len, RA_DTYPE_I32, 1, ls, NULL);
    memcpy(len.data, lens, sizeof lens);
    or_buf_init(&tab, RA_DTYPE_I32, 2, ts, NULL);
    memcpy(tab.data, table, sizeof table);
    or_buf_init(&o1, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_init(&o2, RA_DTYPE_F32, 4, qs, NULL);
    for (int dt = RA_DTYPE_I8; dt <= RA_DTYPE_FP8_E5M2; dt++) {
        qcache k, v;
        qcache_init(&k, (ra_dtype)dt, PER_ROW, kvs, &r);
        qcache_init(&v, (ra_dtype)dt, PER_ROW, kvs, &r);
        or_buf kp, vp, ksp, vsp; /* pools of codes and of scales */
        or_buf_init(&kp, (ra_dtype)dt, 4, pool, NULL);
        or_buf_init(&vp, (ra_dtype)dt, 4, pool, NULL);
        or_buf_init(&ksp, RA_DTYPE_F32, 4, pscale, NULL);
        or_buf_init(&vsp, RA_DTYPE_F32, 4, pscale, NULL);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < S; t++)
                for (int64_t j = 0; j < H; j++) {
                    const int64_t page = table[b * MP + t / PS];
                    const int64_t si[4] = {b, t, j, 0}, pi[4] = {page, t % PS, j, 0};
                    or_buf_set(&ksp, pi, or_buf_get(&k.scales, si));
                    or_buf_set(&vsp, pi, or_buf_get(&v.scales, si));
                    for (int64_t d = 0; d < D; d++) {
                        const int64_t ci[4] = {b, t, j, d}, cp[4] = {page, t % PS, j, d};
                        kp.data[or_buf_offset(&kp, cp)] = k.codes.data[or_buf_offset(&k.codes, ci)];
                        vp.data[or_buf_offset(&vp, cp)] = v.codes.data[or_buf_offset(&v.codes, ci)];
                    }
                }
        ra_tensor *kpt, *vpt;
        assert_int_equal(ra_tensor_wrap_quantized(&kpt, (ra_dtype)dt, 4, pool, NULL, kp.data,
                                                  ksp.t), RA_OK);
        assert_int_equal(ra_tensor_wrap_quantized(&vpt, (ra_dtype)dt, 4, pool, NULL, vp.data,
                                                  vsp.t), RA_OK);
        for (size_t ki = 0; ki < sizeof kernels / sizeof kernels[0]; ki++) {
            ra_options *opts = options_for(kernels[ki], 16, 2);
            if (!opts)
                continue;
            assert_int_equal(ra_ragged_gqa(opts, q.t, k.t, v.t, len.t, o1.t, NULL, NULL), RA_OK);
            assert_int_equal(ra_paged_gqa(opts, q.t, kpt, vpt, tab.t, len.t, o2.t, NULL, NULL),
                             RA_OK);
            ra_options_destroy(opts);
            if (memcmp(o1.data, o2.data, o1.bytes))
                fail_msg("%s pages differ from the contiguous cache (kernel %s)",
                         or_dtype_name((ra_dtype)dt), ra_kernel_name(kernels[ki]));
        }
        ra_tensor_destroy(kpt);
        ra_tensor_destroy(vpt);
        or_buf *pb[] = {&kp, &vp, &ksp, &vsp};
        for (int i = 0; i < 4; i++)
            or_buf_free(pb[i]);
        qcache_free(&k);
        qcache_free(&v);
    }
    or_buf *bufs[] = {&q, &len, &tab, &o1, &o2};
    for (int i = 0; i < 5; i++)
        or_buf_free(bufs[i]);
}

/* An empty cache (S = 0, or a pool of no pages) with an empty scale, whose data may be NULL,
 * is still quantized: every length is 0 and the call gives the empty state. */
static void test_empty_cache_with_empty_scale(void **state)
{
    (void)state;
    enum { B = 2, H = 2, D = 8 };
    const int64_t qs[4] = {B, 1, H, D}, ms[4] = {B, 1, H, 1}, ls[1] = {B}, ts[2] = {B, 1};
    const int64_t kv[4] = {B, 0, H, D}, kvs[4] = {B, 0, H, 1};
    const int64_t pool[4] = {0, 4, H, D}, pools[4] = {0, 4, H, 1};
    float qd[B * H * D] = {0}, od[B * H * D], md[B * H], ld[B * H];
    int32_t lens[B] = {0, 0}, table[B] = {0, 0};
    ra_tensor *q, *o, *m, *l, *len, *tab, *sc, *k, *psc, *pk;
    assert_int_equal(ra_tensor_wrap(&q, RA_DTYPE_F32, 4, qs, NULL, qd), RA_OK);
    assert_int_equal(ra_tensor_wrap(&o, RA_DTYPE_F32, 4, qs, NULL, od), RA_OK);
    assert_int_equal(ra_tensor_wrap(&m, RA_DTYPE_F32, 4, ms, NULL, md), RA_OK);
    assert_int_equal(ra_tensor_wrap(&l, RA_DTYPE_F32, 4, ms, NULL, ld), RA_OK);
    assert_int_equal(ra_tensor_wrap(&len, RA_DTYPE_I32, 1, ls, NULL, lens), RA_OK);
    assert_int_equal(ra_tensor_wrap(&tab, RA_DTYPE_I32, 2, ts, NULL, table), RA_OK);
    assert_int_equal(ra_tensor_wrap(&sc, RA_DTYPE_F32, 4, kvs, NULL, NULL), RA_OK);
    assert_int_equal(ra_tensor_wrap_quantized(&k, RA_DTYPE_I8, 4, kv, NULL, NULL, sc), RA_OK);
    assert_int_equal(ra_tensor_wrap(&psc, RA_DTYPE_F32, 4, pools, NULL, NULL), RA_OK);
    assert_int_equal(ra_tensor_wrap_quantized(&pk, RA_DTYPE_FP8_E4M3, 4, pool, NULL, NULL, psc),
                     RA_OK);
    for (int paged = 0; paged < 2; paged++) {
        memset(od, 0xAB, sizeof od);
        ra_status s = paged ? ra_paged_gqa(NULL, q, pk, pk, tab, len, o, m, l)
                            : ra_ragged_gqa(NULL, q, k, k, len, o, m, l);
        if (s != RA_OK)
            fail_msg("%s: %s", paged ? "ra_paged_gqa" : "ra_ragged_gqa", ra_last_error());
        for (int i = 0; i < B * H; i++) {
            assert_true(md[i] == -INFINITY && ld[i] == 0.0f);
            for (int d = 0; d < D; d++)
                assert_true(od[i * D + d] == 0.0f);
        }
    }
    ra_tensor *all[] = {q, o, m, l, len, tab, sc, k, psc, pk};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ra_tensor_destroy(all[i]);
}

/* Tiles whose length is not a multiple of the AVX-512 step (three query heads per KV head, a
 * block of 8 positions, lengths 35 and 32): the kernels read the V scales of the tile's
 * positions only, not past the scratch that holds them (ASan in tools/sanitize.sh), and agree
 * with the portable kernel to f32 rounding. */
static void test_short_tile_scales(void **state)
{
    (void)state;
    or_rng r = or_rng_seed(77);
    enum { B = 2, S = 65, H = 8, G = 3, D = 1 };
    const int64_t qs[4] = {B, 1, H * G, D}, kvs[4] = {B, S, H, D}, ls[1] = {B};
    const int32_t lens[B] = {35, 32};
    or_buf q, len, o_ref, o;
    or_buf_init(&q, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_fill_uniform(&q, &r, -1, 1);
    or_buf_init(&len, RA_DTYPE_I32, 1, ls, NULL);
    memcpy(len.data, lens, sizeof lens);
    or_buf_init(&o_ref, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_init(&o, RA_DTYPE_F32, 4, qs, NULL);
    qcache k, v;
    qcache_init(&k, RA_DTYPE_I8, PER_TENSOR, kvs, &r);
    qcache_init(&v, RA_DTYPE_I8, PER_ROW, kvs, &r);
    ra_options *ref = options_for(RA_KERNEL_PORTABLE, 0, 1);
    assert_int_equal(ra_options_set_block_size(ref, 8), RA_OK);
    assert_int_equal(ra_ragged_gqa(ref, q.t, k.t, v.t, len.t, o_ref.t, NULL, NULL), RA_OK);
    ra_options_destroy(ref);
    for (size_t ki = 0; ki < sizeof kernels / sizeof kernels[0]; ki++) {
        ra_options *opts = options_for(kernels[ki], 0, 1);
        if (!opts)
            continue;
        assert_int_equal(ra_options_set_block_size(opts, 8), RA_OK);
        assert_int_equal(ra_ragged_gqa(opts, q.t, k.t, v.t, len.t, o.t, NULL, NULL), RA_OK);
        ra_options_destroy(opts);
        float got[B * H * G], want[B * H * G];
        or_buf_gather_f32(&o, got);
        or_buf_gather_f32(&o_ref, want);
        or_err e = or_compare_f32(got, want, B * H * G);
        if (e.nonfinite || e.rel > 1e-5)
            fail_msg("kernel %s: %.3g from the portable kernel", ra_kernel_name(kernels[ki]),
                     e.rel);
    }
    qcache_free(&k);
    qcache_free(&v);
    or_buf *bufs[] = {&q, &len, &o_ref, &o};
    for (int i = 0; i < 4; i++)
        or_buf_free(bufs[i]);
}

/* ---- ra_quantize ------------------------------------------------------------------------ */

/* Whether code is a nearest code of dt to y (no other finite code is strictly closer). */
static bool is_nearest(ra_dtype dt, uint8_t code, double y)
{
    const double got = dt == RA_DTYPE_I8 ? (double)(int8_t)code : or_fp8_to_f64(dt, code);
    const double qmax = dt == RA_DTYPE_I8 ? 127 : dt == RA_DTYPE_FP8_E4M3 ? 448 : 57344;
    y = fmax(-qmax, fmin(qmax, y));
    for (int c = 0; c < 256; c++) {
        double v = dt == RA_DTYPE_I8 ? (double)(int8_t)c : or_fp8_to_f64(dt, (uint8_t)c);
        if (isfinite(v) && fabs(v) <= qmax && fabs(v - y) < fabs(got - y))
            return false;
    }
    return true;
}

static void test_quantize_helper(void **state)
{
    (void)state;
    or_rng r = or_rng_seed(33);
    const int64_t shape[4] = {2, 9, 3, 20};
    static const ra_dtype srcs[] = {RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16};
    for (size_t si = 0; si < 3; si++)
        for (int dt = RA_DTYPE_I8; dt <= RA_DTYPE_FP8_E5M2; dt++)
            for (scale_kind kind = PER_TENSOR; kind <= PER_ROW; kind++) {
                const int64_t ss[4] = {kind == PER_ROW ? 2 : 1, kind == PER_ROW ? 9 : 1,
                                       kind == PER_TENSOR ? 1 : 3, 1};
                or_buf src, dst, sc;
                or_buf_init(&src, srcs[si], 4, shape, NULL);
                or_buf_fill_uniform(&src, &r, -3, 3);
                const int64_t zero[4] = {1, 4, 2, 0};
                for (int64_t d = 0; d < 20; d++) { /* one row all zero: its scale is 1 */
                    const int64_t i[4] = {1, 4, 2, d};
                    or_buf_set(&src, i, 0.0);
                }
                (void)zero;
                or_buf_init(&dst, (ra_dtype)dt, 4, shape, NULL);
                or_buf_init(&sc, RA_DTYPE_F32, 4, ss, NULL);
                assert_int_equal(ra_quantize(src.t, dst.t, sc.t), RA_OK);
                const double qmax = dt == RA_DTYPE_I8 ? 127 : dt == RA_DTYPE_FP8_E4M3 ? 448 : 57344;
                for (int64_t a = 0; a < ss[0]; a++)
                    for (int64_t b = 0; b < ss[1]; b++)
                        for (int64_t c = 0; c < ss[2]; c++) {
                            double amax = 0;
                            for (int64_t x0 = 0; x0 < 2; x0++)
                                for (int64_t x1 = 0; x1 < 9; x1++)
                                    for (int64_t x2 = 0; x2 < 3; x2++)
                                        for (int64_t x3 = 0; x3 < 20; x3++) {
                                            if ((ss[0] > 1 && x0 != a) || (ss[1] > 1 && x1 != b) ||
                                                (ss[2] > 1 && x2 != c))
                                                continue;
                                            const int64_t i[4] = {x0, x1, x2, x3};
                                            amax = fmax(amax, fabs(or_buf_get(&src, i)));
                                        }
                            const int64_t i[4] = {a, b, c, 0};
                            const float want = amax > 0 ? (float)amax / (float)qmax : 1.0f;
                            assert_true((float)or_buf_get(&sc, i) == want);
                        }
                for (int64_t x0 = 0; x0 < 2; x0++)
                    for (int64_t x1 = 0; x1 < 9; x1++)
                        for (int64_t x2 = 0; x2 < 3; x2++)
                            for (int64_t x3 = 0; x3 < 20; x3++) {
                                const int64_t i[4] = {x0, x1, x2, x3};
                                const int64_t s_i[4] = {ss[0] > 1 ? x0 : 0, ss[1] > 1 ? x1 : 0,
                                                        ss[2] > 1 ? x2 : 0, 0};
                                const float y = (float)or_buf_get(&src, i) /
                                                (float)or_buf_get(&sc, s_i);
                                const uint8_t code = dst.data[or_buf_offset(&dst, i)];
                                if (!is_nearest((ra_dtype)dt, code, y))
                                    fail_msg("%s from %s: code 0x%02x is not nearest to %.9g",
                                             or_dtype_name((ra_dtype)dt),
                                             or_dtype_name(srcs[si]), code, (double)y);
                            }
                or_buf_free(&src);
                or_buf_free(&dst);
                or_buf_free(&sc);
            }
}

/* ---- bad input ----------------------------------------------------------------------------- */

static void expect_status(ra_status got, ra_status want, const char *word)
{
    if (got != want)
        fail_msg("expected %s, got %s (%s)", ra_status_string(want), ra_status_string(got),
                 ra_last_error());
    if (word && !or_msg_names(ra_last_error(), word))
        fail_msg("the message '%s' does not name %s", ra_last_error(), word);
}

static void test_bad_input(void **state)
{
    (void)state;
    int8_t codes[2 * 4 * 2 * 8] = {0};
    float scales[2 * 4 * 2] = {0};
    uint16_t halfs[16] = {0};
    const int64_t shape[4] = {2, 4, 2, 8}, srow[4] = {2, 4, 2, 1}, sbad[4] = {2, 3, 2, 1},
                  slast[4] = {2, 4, 2, 8}, s3[3] = {2, 4, 2};
    ra_tensor *sc, *sc_bad, *sc_last, *sc_f16, *sc_rank, *x;
    assert_int_equal(ra_tensor_wrap(&sc, RA_DTYPE_F32, 4, srow, NULL, scales), RA_OK);
    assert_int_equal(ra_tensor_wrap(&sc_bad, RA_DTYPE_F32, 4, sbad, NULL, scales), RA_OK);
    float big[2 * 4 * 2 * 8];
    assert_int_equal(ra_tensor_wrap(&sc_last, RA_DTYPE_F32, 4, slast, NULL, big), RA_OK);
    assert_int_equal(ra_tensor_wrap(&sc_f16, RA_DTYPE_F16, 4, srow, NULL, halfs), RA_OK);
    assert_int_equal(ra_tensor_wrap(&sc_rank, RA_DTYPE_F32, 3, s3, NULL, scales), RA_OK);
    expect_status(ra_tensor_wrap_quantized(&x, RA_DTYPE_F32, 4, shape, NULL, codes, sc),
                  RA_ERR_DTYPE, "dtype");
    expect_status(ra_tensor_wrap_quantized(&x, RA_DTYPE_I8, 4, shape, NULL, codes, NULL),
                  RA_ERR_INVALID_ARGUMENT, "scale");
    expect_status(ra_tensor_wrap_quantized(&x, RA_DTYPE_I8, 4, shape, NULL, codes, sc_f16),
                  RA_ERR_DTYPE, "scale");
    expect_status(ra_tensor_wrap_quantized(&x, RA_DTYPE_I8, 4, shape, NULL, codes, sc_bad),
                  RA_ERR_SHAPE, "scale");
    expect_status(ra_tensor_wrap_quantized(&x, RA_DTYPE_I8, 4, shape, NULL, codes, sc_last),
                  RA_ERR_SHAPE, "scale");
    expect_status(ra_tensor_wrap_quantized(&x, RA_DTYPE_I8, 4, shape, NULL, codes, sc_rank),
                  RA_ERR_SHAPE, "scale");

    /* a call: i8 K without a scale; the reference functions; an output over the scales */
    float qd[2 * 2 * 8] = {0}, od[2 * 2 * 8];
    int32_t lens[2] = {4, 2};
    const int64_t qs[4] = {2, 1, 2, 8}, ls[1] = {2}, q3[3] = {2, 2, 8}, kr[4] = {2, 2, 4, 8};
    ra_tensor *q, *q3t, *len, *o, *k_plain, *kq, *kq_ref, *o_on_scales;
    assert_int_equal(ra_tensor_wrap(&q, RA_DTYPE_F32, 4, qs, NULL, qd), RA_OK);
    assert_int_equal(ra_tensor_wrap(&q3t, RA_DTYPE_F32, 3, q3, NULL, qd), RA_OK);
    assert_int_equal(ra_tensor_wrap(&len, RA_DTYPE_I32, 1, ls, NULL, lens), RA_OK);
    assert_int_equal(ra_tensor_wrap(&o, RA_DTYPE_F32, 4, qs, NULL, od), RA_OK);
    assert_int_equal(ra_tensor_wrap(&k_plain, RA_DTYPE_I8, 4, shape, NULL, codes), RA_OK);
    assert_int_equal(ra_tensor_wrap_quantized(&kq, RA_DTYPE_I8, 4, shape, NULL, codes, sc),
                     RA_OK);
    const int64_t srr[4] = {2, 2, 4, 1};
    ra_tensor *sc_r;
    assert_int_equal(ra_tensor_wrap(&sc_r, RA_DTYPE_F32, 4, srr, NULL, scales), RA_OK);
    assert_int_equal(ra_tensor_wrap_quantized(&kq_ref, RA_DTYPE_I8, 4, kr, NULL, codes, sc_r),
                     RA_OK);
    memset(od, 0xAB, sizeof od);
    expect_status(ra_ragged_gqa(NULL, q, k_plain, kq, len, o, NULL, NULL),
                  RA_ERR_INVALID_ARGUMENT, "k");
    expect_status(ra_reference_gqa(NULL, q3t, kq_ref, kq_ref, len, o, NULL, NULL),
                  RA_ERR_UNSUPPORTED, NULL);
    const int64_t one[4] = {1, 1, 1, 1};
    assert_int_equal(ra_tensor_wrap(&o_on_scales, RA_DTYPE_F32, 4, one, NULL, scales), RA_OK);
    ra_tensor *l_out = o_on_scales;
    const int64_t ms[4] = {2, 1, 2, 1};
    ra_tensor *l_on_scales;
    assert_int_equal(ra_tensor_wrap(&l_on_scales, RA_DTYPE_F32, 4, ms, NULL, scales), RA_OK);
    expect_status(ra_ragged_gqa(NULL, q, kq, kq, len, o, NULL, l_on_scales), RA_ERR_ALIAS,
                  "l");
    (void)l_out;
    for (size_t i = 0; i < sizeof od; i++)
        assert_int_equal(((unsigned char *)od)[i], 0xAB);

    /* ra_quantize: dtypes, shapes, aliasing */
    float src[2 * 4 * 2 * 8] = {0};
    ra_tensor *fsrc, *dst_f32;
    assert_int_equal(ra_tensor_wrap(&fsrc, RA_DTYPE_F32, 4, shape, NULL, src), RA_OK);
    assert_int_equal(ra_tensor_wrap(&dst_f32, RA_DTYPE_F32, 4, shape, NULL, big), RA_OK);
    expect_status(ra_quantize(fsrc, dst_f32, sc), RA_ERR_DTYPE, "dst");
    expect_status(ra_quantize(k_plain, k_plain, sc), RA_ERR_DTYPE, "src");
    expect_status(ra_quantize(fsrc, k_plain, sc_bad), RA_ERR_SHAPE, "scale");
    expect_status(ra_quantize(fsrc, k_plain, NULL), RA_ERR_INVALID_ARGUMENT, "scale");
    ra_tensor *sc_on_src;
    assert_int_equal(ra_tensor_wrap(&sc_on_src, RA_DTYPE_F32, 4, srow, NULL, src), RA_OK);
    expect_status(ra_quantize(fsrc, k_plain, sc_on_src), RA_ERR_ALIAS, NULL);

    ra_tensor *all[] = {sc,      sc_bad, sc_last,     sc_f16,      sc_rank, q,       q3t,
                        len,     o,      k_plain,     kq,          kq_ref,  sc_r,    o_on_scales,
                        l_on_scales, fsrc, dst_f32, sc_on_src};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ra_tensor_destroy(all[i]);
}

static int print_stats(void **state)
{
    (void)state;
    or_stat_print("quantized K/V vs the double oracle on q * scale");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_dtype_and_scale_kind),
        cmocka_unit_test(test_mixed),
        cmocka_unit_test(test_nan_scale_stays_in_its_head),
        cmocka_unit_test(test_paged_equals_contiguous),
        cmocka_unit_test(test_empty_cache_with_empty_scale),
        cmocka_unit_test(test_short_tile_scales),
        cmocka_unit_test(test_quantize_helper),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, print_stats);
}
