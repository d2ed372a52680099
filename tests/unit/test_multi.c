/* ra_ragged_gqa_multi and ra_paged_gqa_multi: T query tokens per sequence with a causal mask.
 *
 * The contract, case by case:
 *   - Query row i < q_lens[b] of sequence b equals the double-precision oracle run for that
 *     query alone over the positions t < lengths[b] - q_lens[b] + i + 1 (1e-5 of max|o*l|, m
 *     and l likewise), for MQA, MHA and GQA, every dtype pair, kernels, block sizes that do and
 *     do not divide the lengths, split-KV, q_lens of 0, 1, T and lengths[b] (a whole prompt);
 *     rows past q_lens[b] hold the empty state (o = 0, m = -inf, l = 0) exactly.
 *   - With T = 1 the result is bitwise that of ra_ragged_gqa (score modifiers included).
 *   - The paged form is bitwise the contiguous one; every thread count gives the same bits,
 *     and a sequence gives the same bits alone as in a batch.
 *   - Bad q_lens, shapes and options get their status, a message naming the argument, and
 *     untouched outputs. */
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

typedef struct mt_params {
    int64_t B, T, Hq, Hkv, S, D;
    ra_dtype qdt, kdt, vdt;  /* kdt == vdt == RA_DTYPE_I8: quantized with ra_quantize */
    const int32_t *lengths;  /* NULL: random in [0, S] */
    const int32_t *q_lens;   /* NULL: random in [0, min(T, lengths[b])] */
    uint64_t seed;
    float scale, softcap;
    bool sinks;
    bool padded; /* q and the outputs with 3 extra elements per axis (strided rows) */
} mt_params;

typedef struct mt_case {
    mt_params p;
    int32_t lengths[16], q_lens[16];
    or_buf q, k, v, len, qlen, o, m, l;
    or_buf kq, vq, ks, vs; /* i8 codes and their scales when quantized */
    ra_tensor *kt, *vt;    /* what the call reads: k/v, or the quantized views */
    float sinks[64];
    ra_tensor *sinks_t;
} mt_case;

static void mt_init(mt_case *c, const mt_params *p)
{
    memset(c, 0, sizeof *c);
    c->p = *p;
    or_rng r = or_rng_seed(p->seed);
    for (int64_t b = 0; b < p->B; b++) {
        c->lengths[b] = p->lengths ? p->lengths[b] : (int32_t)or_rng_int(&r, 0, p->S);
        int64_t most = c->lengths[b] < p->T ? c->lengths[b] : p->T;
        c->q_lens[b] = p->q_lens ? p->q_lens[b] : (int32_t)or_rng_int(&r, 0, most);
    }
    const int64_t qs[4] = {p->B, p->T, p->Hq, p->D}, kvs[4] = {p->B, p->S, p->Hkv, p->D},
                  ml[4] = {p->B, p->T, p->Hq, 1}, bs[1] = {p->B};
    const bool quant = p->kdt == RA_DTYPE_I8;
    if (p->padded)
        or_buf_init_padded(&c->q, p->qdt, 4, qs, 3);
    else
        or_buf_init(&c->q, p->qdt, 4, qs, NULL);
    or_buf_init(&c->k, quant ? RA_DTYPE_F32 : p->kdt, 4, kvs, NULL);
    or_buf_init(&c->v, quant ? RA_DTYPE_F32 : p->vdt, 4, kvs, NULL);
    or_buf_fill_uniform(&c->q, &r, -1.0, 1.0);
    or_buf_fill_uniform(&c->k, &r, -1.0, 1.0);
    or_buf_fill_uniform(&c->v, &r, -1.0, 1.0);
    or_buf_init(&c->len, RA_DTYPE_I32, 1, bs, NULL);
    or_buf_init(&c->qlen, RA_DTYPE_I32, 1, bs, NULL);
    memcpy(c->len.data, c->lengths, sizeof(int32_t) * (size_t)p->B);
    memcpy(c->qlen.data, c->q_lens, sizeof(int32_t) * (size_t)p->B);
    or_buf *outs[3] = {&c->o, &c->m, &c->l};
    for (int i = 0; i < 3; i++)
        if (p->padded)
            or_buf_init_padded(outs[i], RA_DTYPE_F32, 4, i ? ml : qs, 3);
        else
            or_buf_init(outs[i], RA_DTYPE_F32, 4, i ? ml : qs, NULL);
    c->kt = c->k.t;
    c->vt = c->v.t;
    if (!quant) /* NaN past each length: a read there shows up */
        for (int64_t b = 0; b < p->B; b++)
            for (int64_t t = c->lengths[b]; t < p->S; t++)
                for (int64_t j = 0; j < p->Hkv; j++)
                    for (int64_t x = 0; x < p->D; x++) {
                        const int64_t idx[4] = {b, t, j, x};
                        or_buf_set(&c->k, idx, NAN);
                        or_buf_set(&c->v, idx, NAN);
                    }
    if (quant) { /* i8 codes with a scale per (b, t, j); the oracle reads codes * scales */
        const int64_t sc[4] = {p->B, p->S, p->Hkv, 1};
        or_buf *codes[2] = {&c->kq, &c->vq}, *scales[2] = {&c->ks, &c->vs},
               *src[2] = {&c->k, &c->v};
        ra_tensor **views[2] = {&c->kt, &c->vt};
        for (int i = 0; i < 2; i++) {
            or_buf_init(codes[i], RA_DTYPE_I8, 4, kvs, NULL);
            or_buf_init(scales[i], RA_DTYPE_F32, 4, sc, NULL);
            assert_int_equal(ra_quantize(src[i]->t, codes[i]->t, scales[i]->t), RA_OK);
            assert_int_equal(ra_tensor_wrap_quantized(views[i], RA_DTYPE_I8, 4, kvs, NULL,
                                                      codes[i]->data, scales[i]->t), RA_OK);
            int64_t idx[4];
            for (idx[0] = 0; idx[0] < p->B; idx[0]++)
                for (idx[1] = 0; idx[1] < p->S; idx[1]++)
                    for (idx[2] = 0; idx[2] < p->Hkv; idx[2]++)
                        for (idx[3] = 0; idx[3] < p->D; idx[3]++) {
                            int64_t si[4] = {idx[0], idx[1], idx[2], 0};
                            double code = or_buf_get(codes[i], idx);
                            or_buf_set(src[i], idx, code * or_buf_get(scales[i], si));
                        }
        }
    }
    if (p->sinks) {
        const int64_t hs[1] = {p->Hq};
        for (int64_t h = 0; h < p->Hq; h++)
            c->sinks[h] = (float)or_rng_uniform(&r, -1.0, 2.0);
        assert_int_equal(ra_tensor_wrap(&c->sinks_t, RA_DTYPE_F32, 1, hs, NULL, c->sinks), RA_OK);
    }
}

static void mt_free(mt_case *c)
{
    or_buf *bufs[] = {&c->q, &c->k, &c->v, &c->len, &c->qlen, &c->o, &c->m, &c->l,
                      &c->kq, &c->vq, &c->ks, &c->vs};
    if (c->kt != c->k.t)
        ra_tensor_destroy(c->kt);
    if (c->vt != c->v.t)
        ra_tensor_destroy(c->vt);
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]->data)
            or_buf_free(bufs[i]);
    ra_tensor_destroy(c->sinks_t);
}

static ra_options *mt_options(const mt_case *c, ra_kernel kernel, int64_t block, int64_t split,
                              int threads)
{
    ra_options *o;
    assert_int_equal(ra_options_create(&o), RA_OK);
    if (kernel != RA_KERNEL_AUTO && ra_options_set_kernel(o, kernel) != RA_OK) {
        ra_options_destroy(o);
        return NULL; /* not on this CPU */
    }
    if (block)
        assert_int_equal(ra_options_set_block_size(o, block), RA_OK);
    assert_int_equal(ra_options_set_split_tokens(o, split), RA_OK);
    assert_int_equal(ra_options_set_num_threads(o, threads), RA_OK);
    if (c->p.scale != 0.0f)
        assert_int_equal(ra_options_set_scale(o, c->p.scale), RA_OK);
    if (c->p.softcap != 0.0f)
        assert_int_equal(ra_options_set_softcap(o, c->p.softcap), RA_OK);
    if (c->sinks_t)
        assert_int_equal(ra_options_set_sinks(o, c->sinks_t), RA_OK);
    return o;
}

static ra_status mt_run(mt_case *c, const ra_options *o)
{
    or_buf_fill_bytes(&c->o, 0xff);
    or_buf_fill_bytes(&c->m, 0xff);
    or_buf_fill_bytes(&c->l, 0xff);
    return ra_ragged_gqa_multi(o, c->q.t, c->kt, c->vt, c->len.t, c->qlen.t, c->o.t, c->m.t,
                               c->l.t);
}

/* The bytes of an output outside its view (strides that skip elements) still hold mt_run's
 * fill: no write lands past the rows the caller asked for, such as a block's padding rows. */
static void check_outside_untouched(const or_buf *b, const char *what)
{
    const size_t es = or_dtype_size(b->dtype), n = b->bytes / es;
    unsigned char *inside = calloc(n, 1);
    assert_non_null(inside);
    for (int64_t x = 0; x < b->numel; x++) {
        int64_t rest = x, at = 0;
        for (int a = b->rank - 1; a >= 0; a--) {
            at += rest % b->shape[a] * b->strides[a];
            rest /= b->shape[a];
        }
        inside[at] = 1;
    }
    for (size_t e = 0; e < n; e++)
        for (size_t i = 0; i < es && !inside[e]; i++)
            if (b->data[e * es + i] != 0xff) {
                free(inside);
                fail_msg("%s: element %zu, outside the output's view, was written", what, e);
            }
    free(inside);
}

/* Row by row against the oracle: query i of sequence b alone, over its causal prefix. */
static void mt_check(const mt_case *c, const char *what)
{
    const mt_params *p = &c->p;
    const or_dims d = {p->B, p->Hq, p->Hkv, p->S, p->D};
    const or_modifiers mod = {p->softcap, 0, 0, p->sinks ? c->sinks : NULL, NULL};
    or_view kv = or_view_of(&c->k, 0, 1, 2, 3), vv = or_view_of(&c->v, 0, 1, 2, 3);
    or_state e;
    or_state_alloc(&e, p->B, p->Hq, p->D);
    const size_t qes = or_dtype_size(p->qdt);
    for (int64_t i = 0; i < p->T; i++) {
        int32_t seen[16];
        for (int64_t b = 0; b < p->B; b++)
            seen[b] = i < c->q_lens[b] ? c->lengths[b] - c->q_lens[b] + (int32_t)i + 1 : 0;
        or_view qv = or_view_of(&c->q, 0, 2, 3, -1);
        qv.data = (const char *)qv.data + (size_t)(i * c->q.strides[1]) * qes;
        or_attention_mod(&d, &qv, &kv, &vv, seen, p->scale != 0.0f ? p->scale : 1.0, &mod, &e);
        double max_o = 0.0;
        for (int64_t x = 0; x < p->B * p->Hq * p->D; x++)
            max_o = fmax(max_o, fabs(e.o_un[x]));
        for (int64_t b = 0; b < p->B; b++)
            for (int64_t h = 0; h < p->Hq; h++) {
                const int64_t mi[4] = {b, i, h, 0};
                const double gm = or_buf_get(&c->m, mi), gl = or_buf_get(&c->l, mi);
                const int64_t r = b * p->Hq + h;
                if (i < c->q_lens[b] && isnan(e.l[r])) { /* a NaN it sees: NaN out */
                    if (!isnan(gl))
                        fail_msg("%s: b=%lld i=%lld h=%lld sees a NaN but l = %g", what,
                                 (long long)b, (long long)i, (long long)h, gl);
                    continue;
                }
                if (i >= c->q_lens[b]) { /* padding: the empty state, exactly */
                    if (!(gm == -INFINITY && gl == 0.0))
                        fail_msg("%s: padding row b=%lld i=%lld h=%lld: m=%g l=%g", what,
                                 (long long)b, (long long)i, (long long)h, gm, gl);
                } else if (!(fabs(gm - e.m[r]) <= 1e-5 * fmax(1.0, fabs(e.m[r]))) ||
                           !(fabs(gl - e.l[r]) <= 1e-5 * fmax(1.0, e.l[r]))) {
                    fail_msg("%s: b=%lld i=%lld h=%lld: m %.9g vs %.9g, l %.9g vs %.9g", what,
                             (long long)b, (long long)i, (long long)h, gm, e.m[r], gl, e.l[r]);
                }
                for (int64_t x = 0; x < p->D; x++) {
                    const int64_t oi[4] = {b, i, h, x};
                    const double got = or_buf_get(&c->o, oi);
                    const double want = i < c->q_lens[b] ? e.o_un[r * p->D + x] : 0.0;
                    const bool ok = i >= c->q_lens[b] ? got == 0.0 /* padding: exactly */
                                    : isnan(want) ? isnan(got)
                                                  : fabs(got - want) <= 1e-5 * fmax(max_o, 1e-30);
                    if (!ok)
                        fail_msg("%s: o[b=%lld][i=%lld][h=%lld][%lld] = %.9g, oracle %.9g "
                                 "(tolerance 1e-5 * %g)", what, (long long)b, (long long)i,
                                 (long long)h, (long long)x, got, want, max_o);
                }
            }
    }
    or_state_free(&e);
    const or_buf *outs[3] = {&c->o, &c->m, &c->l};
    for (int i = 0; i < 3 && p->padded; i++)
        check_outside_untouched(outs[i], what);
}

static const ra_kernel all_kernels[] = {RA_KERNEL_AUTO, RA_KERNEL_PORTABLE, RA_KERNEL_BLAS,
                                        RA_KERNEL_AVX2, RA_KERNEL_AVX512, RA_KERNEL_NEON};

static void run_matrix(const mt_params *p, const char *label)
{
    mt_case c;
    mt_init(&c, p);
    const int64_t blocks[] = {0, 7}, splits[] = {0, 5};
    for (size_t ki = 0; ki < sizeof all_kernels / sizeof all_kernels[0]; ki++)
        for (int bi = 0; bi < 2; bi++)
            for (int si = 0; si < 2; si++) {
                ra_options *o = mt_options(&c, all_kernels[ki], blocks[bi], splits[si], 2);
                if (!o)
                    continue;
                char what[160];
                snprintf(what, sizeof what, "%s, kernel %s, block %lld, split %lld", label,
                         ra_kernel_name(all_kernels[ki]), (long long)blocks[bi],
                         (long long)splits[si]);
                ra_status s = mt_run(&c, o);
                if (s != RA_OK)
                    fail_msg("%s: %s: %s", what, ra_status_string(s), ra_last_error());
                mt_check(&c, what);
                ra_options_destroy(o);
            }
    mt_free(&c);
}

/* MQA, MHA and GQA; T from 2 to 40 (blocks of queries full, short and single). */
static void test_shapes_against_oracle(void **state)
{
    (void)state;
    const struct { int64_t B, T, Hq, Hkv, S, D; } shapes[] = {
        {3, 5, 8, 2, 40, 32},  {2, 9, 4, 4, 33, 16}, {3, 4, 8, 1, 24, 24},
        {2, 40, 2, 1, 45, 8},  {1, 2, 6, 3, 17, 72}, {2, 6, 16, 1, 20, 16},
        {2, 11, 6, 2, 30, 24},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const mt_params p = {shapes[i].B, shapes[i].T, shapes[i].Hq, shapes[i].Hkv, shapes[i].S,
                             shapes[i].D, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, NULL, NULL,
                             100 + i, 0.0f, 0.0f, false, (i % 2) == 1};
        char label[96];
        snprintf(label, sizeof label, "B%lld T%lld Hq%lld Hkv%lld S%lld D%lld",
                 (long long)p.B, (long long)p.T, (long long)p.Hq, (long long)p.Hkv,
                 (long long)p.S, (long long)p.D);
        run_matrix(&p, label);
    }
}

static void assert_same_bits(const or_buf *a, const or_buf *b, const char *what)
{
    if (memcmp(a->data, b->data, a->bytes) != 0)
        fail_msg("%s: results differ in bits", what);
}

/* Large enough that the library splits the call into rounds of query blocks (a round's
 * scratch is capped at 8 MiB once it holds two blocks per thread; a block of 4 queries here
 * takes 0.8 MB, so a round holds 10 blocks): sequence 0's 11 blocks end in the second round,
 * which also holds sequence 1's. AVX-512 cuts each sequence into a block of 24 queries and
 * one of 20 padded to 24, 4.2-5.4 MB each with a diagonal pass (bf16 pairs), about half as
 * much folded (CPUs without AVX512-BF16): rounds of 2 or 3 blocks at one thread, 4 and 2 at
 * two. */
static void test_several_rounds(void **state)
{
    (void)state;
    const int32_t lengths[3] = {64, 50, 64}, q_lens[3] = {44, 44, 44};
    const mt_params p = {3, 44, 32, 8, 64, 256, RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_BF16,
                         lengths, q_lens, 77, 0.0625f, 0.0f, false, true};
    mt_case c;
    mt_init(&c, &p);
    or_buf first[3];
    or_buf *outs[3] = {&c.o, &c.m, &c.l};
    for (int i = 0; i < 3; i++)
        or_buf_init(&first[i], RA_DTYPE_F32, 4, outs[i]->shape, outs[i]->strides);
    for (int threads = 1; threads <= 2; threads++) {
        ra_options *o = mt_options(&c, RA_KERNEL_AUTO, 0, 24, threads);
        assert_int_equal(mt_run(&c, o), RA_OK);
        mt_check(&c, threads == 1 ? "rounds, 1 thread" : "rounds, 2 threads");
        /* two threads also prepare the passes' q, and copy and merge rows where the rounds do
         * not fold, in parallel */
        for (int i = 0; i < 3; i++)
            if (threads == 1)
                memcpy(first[i].data, outs[i]->data, outs[i]->bytes);
            else
                assert_same_bits(outs[i], &first[i], "rounds, 2 threads vs 1");
        ra_options_destroy(o);
    }
    for (int i = 0; i < 3; i++)
        or_buf_free(&first[i]);
    mt_free(&c);
}

/* q_lens 0, 1, T and lengths[b] (a whole prompt), lengths 0 and 1. */
static void test_edge_q_lens(void **state)
{
    (void)state;
    const int32_t lengths[6] = {12, 12, 12, 6, 0, 1}, q_lens[6] = {0, 1, 8, 6, 0, 1};
    const mt_params p = {6, 8, 8, 2, 12, 16, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32,
                         lengths, q_lens, 7, 0.0f, 0.0f, false, true};
    run_matrix(&p, "edge q_lens");
}

/* Queries that do not divide into blocks of 16 / G, for the kernels without wide steps: at
 * G = 4 (blocks of up to 4) 6 splits into 3 + 3, 10 into 4 + 4 + 2, 7 into 4 + 3, and 5 and 9
 * end in a lone query; at G = 1 (up to 16) 22 splits into 11 + 11 and 18 into 9 + 9. (AVX-512
 * takes each sequence here as one block; test_wide_blocks splits its blocks.) */
static void test_blocks_split_evenly(void **state)
{
    (void)state;
    const int32_t lengths[5] = {30, 30, 30, 30, 30}, q_lens[5] = {6, 10, 5, 9, 7};
    const mt_params p = {5, 10, 8, 2, 30, 24, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16,
                         lengths, q_lens, 91, 0.0f, 0.0f, false, false};
    run_matrix(&p, "blocks of G = 4");
    const int32_t lengths1[2] = {40, 22}, q_lens1[2] = {22, 18};
    const mt_params p1 = {2, 22, 3, 3, 40, 40, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32,
                          lengths1, q_lens1, 92, 0.0f, 0.0f, true, true};
    run_matrix(&p1, "blocks of G = 1");
}

/* Blocks of 64 to 128 rows per KV head, which AVX-512 runs with its wide steps (16 rows in
 * the vector lanes) and cuts in whole 16-row blocks: at G = 4 (blocks of up to 32 queries) 64
 * queries make 2 blocks of 32, 21 one block padded to 24, 70 split into 24 + 24 + 22, 16 one
 * block of 64 rows, 33 end in a lone query; at G = 1 70 queries pad to 80; at G = 16 blocks of
 * 8 queries and a lone one. Every float K/V dtype, D with a tail past 64, soft-cap and sinks;
 * kernels without wide steps cut as before. */
static void test_wide_blocks(void **state)
{
    (void)state;
    const int32_t lengths[5] = {100, 60, 90, 70, 40}, q_lens[5] = {64, 21, 70, 16, 33};
    const struct { ra_dtype q, k, v; } dts[] = {
        {RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32},
        {RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_BF16},
        {RA_DTYPE_F32, RA_DTYPE_F16, RA_DTYPE_BF16},
    };
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        const mt_params p = {5, 70, 8, 2, 100, 72, dts[i].q, dts[i].k, dts[i].v, lengths,
                             q_lens, 500 + i, 0.125f, i == 2 ? 3.0f : 0.0f, i == 2, i == 1};
        char label[96];
        snprintf(label, sizeof label, "wide blocks, G = 4, q %s, k %s, v %s",
                 or_dtype_name(p.qdt), or_dtype_name(p.kdt), or_dtype_name(p.vdt));
        run_matrix(&p, label);
    }
    const int32_t lengths1[2] = {80, 70}, q_lens1[2] = {70, 64};
    const mt_params p1 = {2, 70, 3, 3, 80, 19, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F32,
                          lengths1, q_lens1, 510, 0.0f, 0.0f, false, true};
    run_matrix(&p1, "wide blocks, G = 1"); /* padded: rows 70-79 of the block stay unwritten */
    const int32_t lengths16[2] = {30, 9}, q_lens16[2] = {9, 9};
    const mt_params p16 = {2, 9, 16, 1, 30, 40, RA_DTYPE_F16, RA_DTYPE_F16, RA_DTYPE_F16,
                           lengths16, q_lens16, 520, 0.0f, 0.0f, true, true};
    run_matrix(&p16, "wide blocks, G = 16");
}

static void test_dtypes_and_modifiers(void **state)
{
    (void)state;
    const struct { ra_dtype q, k, v; } dts[] = {
        {RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_BF16}, {RA_DTYPE_F16, RA_DTYPE_F16, RA_DTYPE_F16},
        {RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16},   {RA_DTYPE_F32, RA_DTYPE_I8, RA_DTYPE_I8},
        {RA_DTYPE_BF16, RA_DTYPE_I8, RA_DTYPE_I8},
    };
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        mt_params p = {2, 6, 8, 2, 30, 40, dts[i].q, dts[i].k, dts[i].v, NULL, NULL, 300 + i,
                       0.125f, 0.0f, false, false};
        char label[96];
        snprintf(label, sizeof label, "q %s, k %s, v %s", or_dtype_name(p.qdt),
                 or_dtype_name(p.kdt), or_dtype_name(p.vdt));
        run_matrix(&p, label);
    }
    const mt_params m = {3, 7, 8, 2, 30, 16, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, NULL,
                         NULL, 400, 0.5f, 2.0f, true, true};
    run_matrix(&m, "soft-cap 2 and sinks");
}

/* A NaN in K or V at one position makes exactly the rows that see it NaN (its KV head's query
 * heads, from the first query whose causal prefix reaches it). */
static void nan_case(const mt_params *p, const int64_t k_at[4], const int64_t v_at[4])
{
    mt_case c;
    mt_init(&c, p);
    or_buf_set(&c.k, k_at, NAN);
    or_buf_set(&c.v, v_at, NAN);
    for (size_t ki = 0; ki < sizeof all_kernels / sizeof all_kernels[0]; ki++) {
        ra_options *o = mt_options(&c, all_kernels[ki], 0, 0, 2);
        if (!o)
            continue;
        assert_int_equal(mt_run(&c, o), RA_OK);
        mt_check(&c, ra_kernel_name(all_kernels[ki]));
        ra_options_destroy(o);
    }
    mt_free(&c);
}

static void test_nan_reaches_only_rows_that_see_it(void **state)
{
    (void)state;
    const int32_t lengths[2] = {20, 30}, q_lens[2] = {12, 9};
    const mt_params p = {2, 12, 8, 2, 30, 16, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32,
                         lengths, q_lens, 17, 0.0f, 0.0f, false, false};
    /* K: seen by queries 5.. of sequence 0, KV head 1; V: queries 4.. of sequence 1, head 0 */
    nan_case(&p, (const int64_t[4]){0, 13, 1, 3}, (const int64_t[4]){1, 25, 0, 0});
    /* blocks of 20 queries (80 rows per KV head), whose rows AVX-512 masks inside one entry:
     * K at position 45 is seen by queries 25.. of sequence 0, V at 52 by queries 22.. of
     * sequence 1, both in the second block, past its first query */
    const int32_t lengths_w[2] = {60, 70}, q_lens_w[2] = {40, 40};
    const mt_params pw = {2, 40, 8, 2, 70, 16, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32,
                          lengths_w, q_lens_w, 18, 0.0f, 0.0f, false, false};
    nan_case(&pw, (const int64_t[4]){0, 45, 1, 3}, (const int64_t[4]){1, 52, 0, 5});
}

/* T = 1 is a decode call: ra_ragged_gqa's bits, with every option. */
static void test_t1_is_ragged_gqa(void **state)
{
    (void)state;
    const int32_t q_lens[4] = {1, 1, 0, 1};
    const mt_params p = {4, 1, 8, 2, 50, 24, RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_BF16, NULL,
                         q_lens, 11, 0.3f, 5.0f, true, false};
    mt_case c;
    mt_init(&c, &p);
    for (int w = 0; w < 2; w++) {
        ra_options *o = mt_options(&c, RA_KERNEL_AUTO, 0, 0, 2);
        if (w)
            assert_int_equal(ra_options_set_window(o, 9, 2), RA_OK);
        or_buf o2, m2, l2;
        or_buf_init(&o2, RA_DTYPE_F32, 4, c.o.shape, NULL);
        or_buf_init(&m2, RA_DTYPE_F32, 4, c.m.shape, NULL);
        or_buf_init(&l2, RA_DTYPE_F32, 4, c.l.shape, NULL);
        assert_int_equal(mt_run(&c, o), RA_OK);
        assert_int_equal(ra_ragged_gqa(o, c.q.t, c.kt, c.vt, c.len.t, o2.t, m2.t, l2.t), RA_OK);
        for (int64_t b = 0; b < p.B; b++) { /* the sequence without a query: empty state */
            if (c.q_lens[b])
                continue;
            for (int64_t h = 0; h < p.Hq; h++) {
                const int64_t mi[4] = {b, 0, h, 0};
                assert_true(or_buf_get(&c.m, mi) == -INFINITY && or_buf_get(&c.l, mi) == 0.0);
                or_buf_set(&m2, mi, -INFINITY);
                or_buf_set(&l2, mi, 0.0);
                for (int64_t x = 0; x < p.D; x++) {
                    const int64_t oi[4] = {b, 0, h, x};
                    assert_true(or_buf_get(&c.o, oi) == 0.0);
                    or_buf_set(&o2, oi, 0.0);
                }
            }
        }
        assert_same_bits(&c.o, &o2, w ? "T=1 with a window: o" : "T=1: o");
        assert_same_bits(&c.m, &m2, "T=1: m");
        assert_same_bits(&c.l, &l2, "T=1: l");
        or_buf_free(&o2);
        or_buf_free(&m2);
        or_buf_free(&l2);
        ra_options_destroy(o);
    }
    mt_free(&c);
}

/* Any thread count, and a sequence alone or in a batch: the same bits, on every kernel.
 * Sequence 1 has fewer queries than the others, whose blocks are larger. */
static void check_deterministic(const mt_params p)
{
    mt_case c;
    mt_init(&c, &p);
    /* sequence 1 alone: views of its rows */
    ra_tensor *q1, *k1, *v1, *len1, *ql1, *o1;
    const int64_t qs[4] = {1, p.T, p.Hq, p.D}, kvs[4] = {1, p.S, p.Hkv, p.D}, one[1] = {1};
    const size_t qrow = (size_t)(p.T * p.Hq * p.D), kvrow = (size_t)(p.S * p.Hkv * p.D);
    float *alone = calloc(qrow, sizeof(float));
    assert_int_equal(ra_tensor_wrap(&q1, RA_DTYPE_F32, 4, qs, NULL, (float *)c.q.data + qrow),
                     RA_OK);
    assert_int_equal(ra_tensor_wrap(&k1, RA_DTYPE_BF16, 4, kvs, NULL,
                                    (uint16_t *)c.k.data + kvrow), RA_OK);
    assert_int_equal(ra_tensor_wrap(&v1, RA_DTYPE_BF16, 4, kvs, NULL,
                                    (uint16_t *)c.v.data + kvrow), RA_OK);
    assert_int_equal(ra_tensor_wrap(&len1, RA_DTYPE_I32, 1, one, NULL, &c.lengths[1]), RA_OK);
    assert_int_equal(ra_tensor_wrap(&ql1, RA_DTYPE_I32, 1, one, NULL, &c.q_lens[1]), RA_OK);
    assert_int_equal(ra_tensor_wrap(&o1, RA_DTYPE_F32, 4, qs, NULL, alone), RA_OK);
    or_buf first;
    or_buf_init(&first, RA_DTYPE_F32, 4, c.o.shape, c.o.strides);
    for (size_t ki = 0; ki < sizeof all_kernels / sizeof all_kernels[0]; ki++) {
        for (int threads = 1; threads <= 3; threads++) {
            ra_options *o = mt_options(&c, all_kernels[ki], 0, 16, threads);
            if (!o)
                break;
            assert_int_equal(mt_run(&c, o), RA_OK);
            if (threads == 1)
                memcpy(first.data, c.o.data, c.o.bytes);
            else
                assert_same_bits(&c.o, &first, ra_kernel_name(all_kernels[ki]));
            if (threads == 2) {
                assert_int_equal(ra_ragged_gqa_multi(o, q1, k1, v1, len1, ql1, o1, NULL, NULL),
                                 RA_OK);
                if (memcmp(alone, (float *)first.data + qrow, qrow * sizeof(float)) != 0)
                    fail_msg("%s: sequence 1 alone differs from in the batch",
                             ra_kernel_name(all_kernels[ki]));
            }
            ra_options_destroy(o);
        }
    }
    ra_tensor *ts[] = {q1, k1, v1, len1, ql1, o1};
    for (size_t i = 0; i < 6; i++)
        ra_tensor_destroy(ts[i]);
    free(alone);
    or_buf_free(&first);
    mt_free(&c);
}

static void test_deterministic(void **state)
{
    (void)state;
    const int32_t lengths[3] = {64, 40, 50}, q_lens[3] = {12, 3, 7};
    check_deterministic((mt_params){3, 12, 8, 2, 64, 32, RA_DTYPE_F32, RA_DTYPE_BF16,
                                    RA_DTYPE_BF16, lengths, q_lens, 21, 0.0f, 0.0f, false,
                                    false});
    /* 40 queries split 20 + 20, 33 = 32 + a lone query, 20 one block: on AVX-512 folded
     * causal groups of 80 and 128 rows */
    const int32_t lengths_w[3] = {80, 60, 70}, q_lens_w[3] = {40, 33, 20};
    check_deterministic((mt_params){3, 40, 8, 2, 80, 32, RA_DTYPE_F32, RA_DTYPE_BF16,
                                    RA_DTYPE_BF16, lengths_w, q_lens_w, 22, 0.0f, 0.0f, false,
                                    false});
}

/* The same cache as shuffled pages of 3 positions: ra_paged_gqa_multi gives the same bits. */
static void check_paged_equals_contiguous(const mt_params p)
{
    mt_case c;
    mt_init(&c, &p);
    const int64_t PS = 3, MP = (p.S + PS - 1) / PS, NP = p.B * MP;
    const int64_t pool_shape[4] = {NP, PS, p.Hkv, p.D}, ts[2] = {p.B, MP};
    or_buf kp, vp, table;
    or_buf_init(&kp, p.kdt, 4, pool_shape, NULL);
    or_buf_init(&vp, p.vdt, 4, pool_shape, NULL);
    or_buf_init(&table, RA_DTYPE_I32, 2, ts, NULL);
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)NP);
    for (int64_t i = 0; i < NP; i++)
        perm[i] = (int32_t)i;
    or_rng r = or_rng_seed(5);
    for (int64_t i = NP - 1; i > 0; i--) {
        int64_t j = or_rng_int(&r, 0, i);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int64_t b = 0; b < p.B; b++)
        for (int64_t s = 0; s < MP; s++) {
            const int64_t ti[2] = {b, s};
            const int32_t page = perm[b * MP + s];
            or_buf_set(&table, ti, page);
            for (int64_t t = s * PS; t < (s + 1) * PS && t < p.S; t++)
                for (int64_t j = 0; j < p.Hkv; j++)
                    for (int64_t x = 0; x < p.D; x++) {
                        const int64_t src[4] = {b, t, j, x}, dst[4] = {page, t % PS, j, x};
                        or_buf_set(&kp, dst, or_buf_get(&c.k, src));
                        or_buf_set(&vp, dst, or_buf_get(&c.v, src));
                    }
        }
    ra_options *o = mt_options(&c, RA_KERNEL_AUTO, 0, 8, 2);
    assert_int_equal(mt_run(&c, o), RA_OK);
    or_buf o2;
    or_buf_init(&o2, RA_DTYPE_F32, 4, c.o.shape, NULL);
    assert_int_equal(ra_paged_gqa_multi(o, c.q.t, kp.t, vp.t, table.t, c.len.t, c.qlen.t, o2.t,
                                        NULL, NULL), RA_OK);
    assert_same_bits(&c.o, &o2, "paged vs contiguous");
    ra_options_destroy(o);
    free(perm);
    or_buf_free(&o2);
    or_buf_free(&kp);
    or_buf_free(&vp);
    or_buf_free(&table);
    mt_free(&c);
}

/* Small blocks, and blocks of 128 rows per KV head (the AVX-512 wide steps). */
static void test_paged_equals_contiguous(void **state)
{
    (void)state;
    check_paged_equals_contiguous((mt_params){3, 6, 8, 2, 31, 16, RA_DTYPE_BF16, RA_DTYPE_BF16,
                                              RA_DTYPE_BF16, NULL, NULL, 33, 0.0f, 0.0f, false,
                                              false});
    const int32_t lengths[2] = {80, 40}, q_lens[2] = {64, 30};
    check_paged_equals_contiguous((mt_params){2, 64, 8, 2, 80, 40, RA_DTYPE_F32, RA_DTYPE_BF16,
                                              RA_DTYPE_F16, lengths, q_lens, 34, 0.0f, 0.0f,
                                              false, false});
}

/* Each bad argument: its status, a message naming it, and untouched outputs. */
static void expect_error(mt_case *c, const ra_options *o, const ra_tensor *ql, ra_status want,
                         const char *word)
{
    or_buf *outs[3] = {&c->o, &c->m, &c->l};
    for (int k = 0; k < 3; k++)
        or_buf_fill_bytes(outs[k], 0xab);
    ra_status s = ra_ragged_gqa_multi(o, c->q.t, c->kt, c->vt, c->len.t, ql, c->o.t, c->m.t,
                                      c->l.t);
    if (s != want || !or_msg_names(ra_last_error(), word))
        fail_msg("want %s naming \"%s\", got %s: %s", ra_status_string(want), word,
                 ra_status_string(s), ra_last_error());
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < outs[k]->bytes; i++)
            if (outs[k]->data[i] != 0xab)
                fail_msg("an error wrote to output %d (byte %zu)", k, i);
}

static void test_errors(void **state)
{
    (void)state;
    const int32_t lengths[2] = {5, 9}, q_lens[2] = {2, 4};
    const mt_params p = {2, 4, 4, 2, 9, 8, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, lengths,
                         q_lens, 1, 0.0f, 0.0f, false, false};
    mt_case c;
    mt_init(&c, &p);
    int32_t bad[2];
    ra_tensor *ql;
    const int64_t two[1] = {2}, three[1] = {3};
    const int32_t cases[][2] = {{6, 1}, {2, 5}, {-1, 0}}; /* > lengths, > T, negative */
    for (int i = 0; i < 3; i++) {
        memcpy(bad, cases[i], sizeof bad);
        assert_int_equal(ra_tensor_wrap(&ql, RA_DTYPE_I32, 1, two, NULL, bad), RA_OK);
        expect_error(&c, NULL, ql, RA_ERR_LENGTH, "q_lens");
        ra_tensor_destroy(ql);
    }
    assert_int_equal(ra_tensor_wrap(&ql, RA_DTYPE_I32, 1, three, NULL, bad), RA_OK);
    expect_error(&c, NULL, ql, RA_ERR_SHAPE, "q_lens");
    ra_tensor_destroy(ql);
    float f[2] = {1, 1};
    assert_int_equal(ra_tensor_wrap(&ql, RA_DTYPE_F32, 1, two, NULL, f), RA_OK);
    expect_error(&c, NULL, ql, RA_ERR_DTYPE, "q_lens");
    ra_tensor_destroy(ql);
    expect_error(&c, NULL, NULL, RA_ERR_INVALID_ARGUMENT, "q_lens");
    /* a window or ALiBi with T > 1 */
    ra_options *o;
    assert_int_equal(ra_options_create(&o), RA_OK);
    assert_int_equal(ra_options_set_window(o, 4, 0), RA_OK);
    expect_error(&c, o, c.qlen.t, RA_ERR_UNSUPPORTED, "window");
    ra_options_destroy(o);
    float slopes[4] = {0.5f, 0.25f, 0.125f, 0.0625f};
    const int64_t hq[1] = {4};
    ra_tensor *st;
    assert_int_equal(ra_tensor_wrap(&st, RA_DTYPE_F32, 1, hq, NULL, slopes), RA_OK);
    assert_int_equal(ra_options_create(&o), RA_OK);
    assert_int_equal(ra_options_set_alibi(o, st), RA_OK);
    expect_error(&c, o, c.qlen.t, RA_ERR_UNSUPPORTED, "ALiBi");
    ra_options_destroy(o);
    ra_tensor_destroy(st);
    /* o with the wrong T */
    or_buf o3;
    const int64_t os[4] = {2, 3, 4, 8};
    or_buf_init(&o3, RA_DTYPE_F32, 4, os, NULL);
    ra_status s = ra_ragged_gqa_multi(NULL, c.q.t, c.kt, c.vt, c.len.t, c.qlen.t, o3.t, NULL, NULL);
    assert_int_equal(s, RA_ERR_SHAPE);
    assert_true(or_msg_names(ra_last_error(), "o"));
    or_buf_free(&o3);
    mt_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_against_oracle),
        cmocka_unit_test(test_edge_q_lens),
        cmocka_unit_test(test_several_rounds),
        cmocka_unit_test(test_blocks_split_evenly),
        cmocka_unit_test(test_wide_blocks),
        cmocka_unit_test(test_dtypes_and_modifiers),
        cmocka_unit_test(test_nan_reaches_only_rows_that_see_it),
        cmocka_unit_test(test_t1_is_ragged_gqa),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_paged_equals_contiguous),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
