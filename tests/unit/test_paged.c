/* ra_paged_gqa: attention over a pool of pages and a page table per sequence.
 *
 * Each case lays the same logical K/V out twice: contiguously ([B,S,Hkv,D]) and in a pool of
 * pages (shuffled or in order, NHD or HND, K and V as two pools or as two views of one
 * buffer, pages shared between sequences, partially filled last pages; every row of the pool
 * that holds no valid position is NaN, and so are the page-table slots past each sequence's
 * last page). The paged result must match the test's double-precision oracle (1e-5 of
 * max|o*l|) and be bitwise the result of ra_ragged_gqa on the contiguous layout whose
 * positions hold their rows as the pool's pages do ([B,S,Hkv,D] for NHD, [B,Hkv,S,D] viewed as
 * [B,S,Hkv,D] for HND), for every kernel, dtype, page size (1, 3, 16, 256), split and thread
 * count. Then the errors: every
 * bad argument gets its status, a message that names it, and untouched outputs. */
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

typedef enum pool_layout {
    POOL_NHD,       /* two pools [NP][PS][Hkv][D] */
    POOL_HND,       /* two pools stored [NP][Hkv][PS][D], passed as strided views */
    POOL_ONE_BUFFER /* one buffer [NP][2][PS][Hkv][D]: K and V are two views of it */
} pool_layout;

typedef struct pg_params {
    int64_t B, Hq, Hkv, S, D, page_size;
    ra_dtype qdt, kdt, vdt;
    const int32_t *lengths; /* NULL: random in [0, S] */
    pool_layout layout;
    bool shuffle;      /* pages in random order; else in sequence order */
    bool share_prefix; /* sequence 1 starts with sequence 0's first pages (same data) */
    uint64_t seed;
} pg_params;

typedef struct pg_case {
    pg_params p;
    int32_t *lengths;
    or_buf q, kc, vc, len;     /* q [B,1,Hq,D]; contiguous K/V [B,S,Hkv,D]; lengths [B] */
    int64_t num_pages, max_pages;
    unsigned char *pool[2];    /* K and V pools (one allocation for POOL_ONE_BUFFER) */
    ra_tensor *kp, *vp;        /* the pool views */
    or_buf table;              /* i32 [B, max_pages] */
    or_buf o, m, l;            /* outputs of the paged call */
    or_buf o2, m2, l2;         /* outputs of the contiguous call */
    or_state expect;
} pg_case;

static const double NAN_D = (double)NAN;

static void fill_nan(unsigned char *p, size_t bytes, ra_dtype dt)
{
    size_t es = or_dtype_size(dt);
    float f = NAN;
    uint16_t h = dt == RA_DTYPE_F16 ? 0x7e00 : 0x7fc0;
    for (size_t i = 0; i + es <= bytes; i += es)
        memcpy(p + i, es == 4 ? (const void *)&f : (const void *)&h, es);
}

/* Element strides of the pool views, and the byte offset of V's view in its buffer. */
static void pool_strides(const pg_case *c, int64_t st[4], size_t *v_offset)
{
    const int64_t PS = c->p.page_size, H = c->p.Hkv, D = c->p.D;
    *v_offset = 0;
    switch (c->p.layout) {
    case POOL_NHD:
        st[0] = PS * H * D, st[1] = H * D, st[2] = D, st[3] = 1;
        break;
    case POOL_HND:
        st[0] = H * PS * D, st[1] = D, st[2] = PS * D, st[3] = 1;
        break;
    case POOL_ONE_BUFFER:
        st[0] = 2 * PS * H * D, st[1] = H * D, st[2] = D, st[3] = 1;
        *v_offset = (size_t)(PS * H * D);
        break;
    }
}

static void pg_init(pg_case *c, const pg_params *p)
{
    memset(c, 0, sizeof *c);
    c->p = *p;
    const int64_t B = p->B, S = p->S, Hq = p->Hq, H = p->Hkv, D = p->D, PS = p->page_size;
    or_rng rng = or_rng_seed(p->seed);
    c->lengths = malloc(sizeof(int32_t) * (size_t)(B ? B : 1));
    assert_non_null(c->lengths);
    for (int64_t b = 0; b < B; b++)
        c->lengths[b] = p->lengths ? p->lengths[b] : (int32_t)or_rng_int(&rng, 0, S);

    const int64_t qs[4] = {B, 1, Hq, D}, ks[4] = {B, S, H, D}, ls[1] = {B};
    const int64_t ms[4] = {B, 1, Hq, 1};
    or_buf_init(&c->q, p->qdt, 4, qs, NULL);
    /* Rows ordered within a position as the pool orders them within a page (HND: each
     * head's positions together), so that the two calls take the same walk. */
    const int64_t hnd[4] = {H * S * D, D, S * D, 1};
    or_buf_init(&c->kc, p->kdt, 4, ks, p->layout == POOL_HND ? hnd : NULL);
    or_buf_init(&c->vc, p->vdt, 4, ks, p->layout == POOL_HND ? hnd : NULL);
    or_buf_init(&c->len, RA_DTYPE_I32, 1, ls, NULL);
    memcpy(c->len.data, c->lengths, sizeof(int32_t) * (size_t)B);
    or_buf_fill_uniform(&c->q, &rng, -1, 1);
    for (int64_t b = 0; b < B; b++) /* valid positions random, the rest NaN */
        for (int64_t t = 0; t < S; t++)
            for (int64_t j = 0; j < H; j++)
                for (int64_t d = 0; d < D; d++) {
                    const int64_t idx[4] = {b, t, j, d};
                    bool valid = t < c->lengths[b];
                    or_buf_set(&c->kc, idx, valid ? or_rng_uniform(&rng, -1, 1) : NAN_D);
                    or_buf_set(&c->vc, idx, valid ? or_rng_uniform(&rng, -1, 1) : NAN_D);
                }

    /* Pages: sequence 1 may start with sequence 0's first pages (and then the same data). */
    int64_t shared = 0;
    if (p->share_prefix && B >= 2) {
        int64_t common = c->lengths[0] < c->lengths[1] ? c->lengths[0] : c->lengths[1];
        shared = common / PS; /* whole pages only: a page holds one sequence's rows */
        for (int64_t t = 0; t < shared * PS; t++)
            for (int64_t j = 0; j < H; j++)
                for (int64_t d = 0; d < D; d++) {
                    const int64_t from[4] = {0, t, j, d}, to[4] = {1, t, j, d};
                    or_buf_set(&c->kc, to, or_buf_get(&c->kc, from));
                    or_buf_set(&c->vc, to, or_buf_get(&c->vc, from));
                }
    }
    c->max_pages = (S + PS - 1) / PS + 1; /* one slot more than any sequence needs */
    int64_t needed = 0;
    for (int64_t b = 0; b < B; b++)
        needed += (c->lengths[b] + PS - 1) / PS - (b == 1 ? shared : 0);
    c->num_pages = needed + 3; /* spare pages: NaN, never referenced */
    int32_t *order = malloc(sizeof(int32_t) * (size_t)c->num_pages);
    assert_non_null(order);
    for (int64_t i = 0; i < c->num_pages; i++)
        order[i] = (int32_t)i;
    for (int64_t i = c->num_pages - 1; p->shuffle && i > 0; i--) {
        int64_t r = or_rng_int(&rng, 0, i);
        int32_t x = order[i];
        order[i] = order[r];
        order[r] = x;
    }
    const int64_t tshape[2] = {B, c->max_pages};
    or_buf_init(&c->table, RA_DTYPE_I32, 2, tshape, NULL);
    int32_t *table = (int32_t *)c->table.data;
    for (int64_t i = 0; i < B * c->max_pages; i++) /* slots past a sequence's pages: garbage */
        table[i] = i % 2 ? -7 : INT32_MAX;
    int64_t next = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t n = (c->lengths[b] + PS - 1) / PS;
        for (int64_t i = 0; i < n; i++)
            table[b * c->max_pages + i] = b == 1 && i < shared ? table[i] : order[next++];
    }
    free(order);

    /* The pools: NaN everywhere, then each valid position's row in its page. */
    int64_t st[4];
    size_t v_off;
    pool_strides(c, st, &v_off);
    const size_t kes = or_dtype_size(p->kdt), ves = or_dtype_size(p->vdt);
    const int64_t per_pool = c->num_pages * PS * H * D;
    if (p->layout == POOL_ONE_BUFFER) {
        assert_true(p->kdt == p->vdt);
        c->pool[0] = malloc((size_t)(2 * per_pool) * kes + 64);
        c->pool[1] = c->pool[0] + v_off * kes;
        fill_nan(c->pool[0], (size_t)(2 * per_pool) * kes, p->kdt);
    } else {
        c->pool[0] = malloc((size_t)per_pool * kes + 64);
        c->pool[1] = malloc((size_t)per_pool * ves + 64);
        fill_nan(c->pool[0], (size_t)per_pool * kes, p->kdt);
        fill_nan(c->pool[1], (size_t)per_pool * ves, p->vdt);
    }
    assert_true(c->pool[0] && c->pool[1]);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < c->lengths[b]; t++) {
            int64_t page = table[b * c->max_pages + t / PS], row = t % PS;
            for (int64_t j = 0; j < H; j++)
                for (int64_t d = 0; d < D; d++) {
                    const int64_t idx[4] = {b, t, j, d};
                    int64_t at = page * st[0] + row * st[1] + j * st[2] + d * st[3];
                    memcpy(c->pool[0] + (size_t)at * kes,
                           c->kc.data + (size_t)or_buf_offset(&c->kc, idx) * kes, kes);
                    memcpy(c->pool[1] + (size_t)at * ves,
                           c->vc.data + (size_t)or_buf_offset(&c->vc, idx) * ves, ves);
                }
        }
    const int64_t pshape[4] = {c->num_pages, PS, H, D};
    assert_int_equal(ra_tensor_wrap(&c->kp, p->kdt, 4, pshape, st, c->pool[0]), RA_OK);
    assert_int_equal(ra_tensor_wrap(&c->vp, p->vdt, 4, pshape, st, c->pool[1]), RA_OK);

    or_buf_init(&c->o, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_init(&c->m, RA_DTYPE_F32, 4, ms, NULL);
    or_buf_init(&c->l, RA_DTYPE_F32, 4, ms, NULL);
    or_buf_init(&c->o2, RA_DTYPE_F32, 4, qs, NULL);
    or_buf_init(&c->m2, RA_DTYPE_F32, 4, ms, NULL);
    or_buf_init(&c->l2, RA_DTYPE_F32, 4, ms, NULL);

    or_dims dims = {B, Hq, H, S, D};
    or_view qv = or_view_of(&c->q, 0, 2, 3, -1), kv = or_view_of(&c->kc, 0, 1, 2, 3),
            vv = or_view_of(&c->vc, 0, 1, 2, 3);
    or_state_alloc(&c->expect, B, Hq, D);
    or_attention(&dims, &qv, &kv, &vv, c->lengths, 1.0, &c->expect);
}

static void pg_free(pg_case *c)
{
    ra_tensor_destroy(c->kp);
    ra_tensor_destroy(c->vp);
    free(c->pool[0]);
    if (c->p.layout != POOL_ONE_BUFFER)
        free(c->pool[1]);
    or_buf *bufs[] = {&c->q, &c->kc, &c->vc, &c->len, &c->table, &c->o,
                      &c->m, &c->l,  &c->o2, &c->m2, &c->l2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        or_buf_free(bufs[i]);
    or_state_free(&c->expect);
    free(c->lengths);
}

typedef struct pg_opts {
    ra_kernel kernel;
    int64_t block_size, split_tokens;
    int num_threads;
    bool modifiers; /* soft-cap, a window with sink positions, sinks and ALiBi (test_modifiers
                     * checks them against the oracle; here paged must equal contiguous) */
} pg_opts;

static ra_options *make_opts(const pg_opts *o)
{
    ra_options *opts;
    assert_int_equal(ra_options_create(&opts), RA_OK);
    if (o->kernel != RA_KERNEL_AUTO && ra_options_set_kernel(opts, o->kernel) != RA_OK) {
        ra_options_destroy(opts);
        return NULL;
    }
    if (o->block_size)
        assert_int_equal(ra_options_set_block_size(opts, o->block_size), RA_OK);
    if (o->split_tokens)
        assert_int_equal(ra_options_set_split_tokens(opts, o->split_tokens), RA_OK);
    assert_int_equal(ra_options_set_num_threads(opts, o->num_threads), RA_OK);
    if (o->modifiers) {
        static float per_head[64];
        for (int h = 0; h < 64; h++)
            per_head[h] = 0.05f * (float)(h % 7) - 0.1f;
        const int64_t hs[1] = {8};
        ra_tensor *t;
        assert_int_equal(ra_tensor_wrap(&t, RA_DTYPE_F32, 1, hs, NULL, per_head), RA_OK);
        assert_int_equal(ra_options_set_softcap(opts, 3.0f), RA_OK);
        assert_int_equal(ra_options_set_window(opts, 45, 3), RA_OK);
        assert_int_equal(ra_options_set_sinks(opts, t), RA_OK);
        assert_int_equal(ra_options_set_alibi(opts, t), RA_OK);
        ra_tensor_destroy(t);
    }
    return opts;
}

static const char *layout_name(pool_layout l)
{
    return l == POOL_NHD ? "NHD" : l == POOL_HND ? "HND" : "one buffer";
}

/* Runs the paged and the contiguous call; checks the oracle and bitwise equality. Returns
 * false when the kernel is not available here. */
static bool pg_check(pg_case *c, const pg_opts *o)
{
    ra_options *opts = make_opts(o);
    if (!opts)
        return false;
    or_buf *outs[] = {&c->o, &c->m, &c->l, &c->o2, &c->m2, &c->l2};
    for (int i = 0; i < 6; i++)
        or_buf_fill_bytes(outs[i], 0xFF);
    ra_status s = ra_paged_gqa(opts, c->q.t, c->kp, c->vp, c->table.t, c->len.t, c->o.t, c->m.t,
                               c->l.t);
    if (s != RA_OK)
        fail_msg("ra_paged_gqa: %s", ra_last_error());
    assert_int_equal(ra_ragged_gqa(opts, c->q.t, c->kc.t, c->vc.t, c->len.t, c->o2.t, c->m2.t,
                                   c->l2.t), RA_OK);
    ra_options_destroy(opts);

    const int64_t B = c->p.B, H = c->p.Hq, D = c->p.D;
    float *go = malloc(sizeof(float) * (size_t)(B * H * D + 1)),
          *gm = malloc(sizeof(float) * (size_t)(B * H + 1)),
          *gl = malloc(sizeof(float) * (size_t)(B * H + 1));
    assert_true(go && gm && gl);
    or_buf_gather_f32(&c->o, go);
    or_buf_gather_f32(&c->m, gm);
    or_buf_gather_f32(&c->l, gl);
    or_err eo = or_compare(go, c->expect.o_un, B * H * D);
    or_err em = or_compare(gm, c->expect.m, B * H);
    or_err el = or_compare(gl, c->expect.l, B * H);
    char what[256];
    snprintf(what, sizeof what,
             "B=%lld Hq=%lld Hkv=%lld S=%lld D=%lld page %lld %s%s%s q=%s k=%s v=%s kernel %s "
             "block %lld split %lld threads %d", (long long)B, (long long)H,
             (long long)c->p.Hkv, (long long)c->p.S, (long long)D, (long long)c->p.page_size,
             layout_name(c->p.layout), c->p.shuffle ? " shuffled" : "",
             c->p.share_prefix ? " shared" : "", or_dtype_name(c->p.qdt),
             or_dtype_name(c->p.kdt), or_dtype_name(c->p.vdt), ra_kernel_name(o->kernel),
             (long long)o->block_size, (long long)o->split_tokens, o->num_threads);
    if (!o->modifiers && (eo.rel > 1e-5 || eo.nonfinite || em.rel > 1e-5 || em.nonfinite ||
                          el.rel > 1e-5 || el.nonfinite))
        fail_msg("paged %s: against the oracle o %.3g (%lld non-finite), m %.3g, l %.3g", what,
                 eo.rel, (long long)eo.nonfinite, em.rel, el.rel);
    if (!o->modifiers) /* the oracle holds the unmodified scores */
        or_stat_note("ra_paged_gqa o vs oracle", eo.rel);
    if (memcmp(c->o.data, c->o2.data, c->o.bytes) || memcmp(c->m.data, c->m2.data, c->m.bytes) ||
        memcmp(c->l.data, c->l2.data, c->l.bytes))
        fail_msg("paged %s: not bitwise the contiguous result", what);
    free(go);
    free(gm);
    free(gl);
    return true;
}

/* ---- results --------------------------------------------------------------------------- */

static const ra_kernel kernels[] = {RA_KERNEL_AUTO, RA_KERNEL_PORTABLE, RA_KERNEL_BLAS,
                                    RA_KERNEL_AVX2, RA_KERNEL_AVX512, RA_KERNEL_NEON};

/* Lengths 0, 1, page - 1, page, page + 1, S and a random one, clamped to [0, S]. */
static void edge_lengths(int32_t *len, int64_t page, int64_t S, uint64_t seed)
{
    const int64_t want[7] = {0, 1, page - 1, page, page + 1, S, -1};
    or_rng r = or_rng_seed(seed);
    for (int i = 0; i < 7; i++) {
        int64_t x = want[i] < 0 ? or_rng_int(&r, 1, S) : want[i];
        len[i] = (int32_t)(x < 0 ? 0 : x > S ? S : x);
    }
}

/* Every kernel, page size and pool layout, on MHA (row order on AVX-512), GQA 2:1 (row
 * order), 4:1 and MQA (head by head), f32. */
static void test_page_sizes_layouts_kernels(void **state)
{
    (void)state;
    static const int64_t pages[] = {1, 3, 16, 256};
    static const struct {
        int64_t Hq, Hkv, D;
    } shapes[] = {{4, 4, 32}, {4, 2, 64}, {8, 2, 40}, {8, 1, 128}, {128, 2, 40}};
    uint64_t seed = 100;
    for (size_t pi = 0; pi < sizeof pages / sizeof pages[0]; pi++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (pool_layout lay = POOL_NHD; lay <= POOL_ONE_BUFFER; lay++) {
                const int64_t S = pages[pi] == 256 ? 600 : 150;
                int32_t len[7];
                edge_lengths(len, pages[pi], S, seed);
                pg_params p = {.B = 7, .Hq = shapes[si].Hq, .Hkv = shapes[si].Hkv, .S = S,
                               .D = shapes[si].D, .page_size = pages[pi], .lengths = len,
                               .layout = lay, .shuffle = true, .share_prefix = true,
                               .seed = seed++};
                pg_case c;
                pg_init(&c, &p);
                for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
                    pg_opts o = {.kernel = kernels[k], .num_threads = 1 + (int)(k % 2)};
                    pg_check(&c, &o);
                }
                pg_opts split = {.split_tokens = 48, .block_size = 32, .num_threads = 2};
                pg_check(&c, &split);
                pg_free(&c);
            }
}

/* Every dtype combination the kernels specialize: f32, f16 and bf16 K/V, q and K both bf16
 * (pair products), mixed. */
static void test_dtypes(void **state)
{
    (void)state;
    static const ra_dtype combos[][3] = {
        {RA_DTYPE_F32, RA_DTYPE_F16, RA_DTYPE_F16},  {RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_BF16},
        {RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_BF16}, {RA_DTYPE_F16, RA_DTYPE_F32, RA_DTYPE_BF16},
        {RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_F32}};
    static const int64_t pages[] = {1, 16};
    static const struct {
        int64_t Hq, Hkv;
    } shapes[] = {{4, 4}, {8, 2}, {8, 1}, {64, 1}};
    uint64_t seed = 300;
    for (size_t ci = 0; ci < sizeof combos / sizeof combos[0]; ci++)
        for (size_t pi = 0; pi < sizeof pages / sizeof pages[0]; pi++)
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                pg_params p = {.B = 3, .Hq = shapes[si].Hq, .Hkv = shapes[si].Hkv, .S = 100,
                               .D = 64, .page_size = pages[pi], .qdt = combos[ci][0],
                               .kdt = combos[ci][1], .vdt = combos[ci][2],
                               .layout = pi ? POOL_HND : POOL_NHD, .shuffle = true,
                               .seed = seed++};
                pg_case c;
                pg_init(&c, &p);
                for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
                    pg_opts o = {.kernel = kernels[k]};
                    pg_check(&c, &o);
                }
                pg_free(&c);
            }
}

/* Pages in sequence order (adjacent pages read as one run), block sizes that do and do not
 * divide the page, splits, and 1-3 threads on work big enough to use them. */
static void test_runs_blocks_splits_threads(void **state)
{
    (void)state;
    static const int64_t blocks[] = {0, 5, 16, 100};
    static const int64_t splits[] = {0, 7, 64, 1000};
    for (int shuffle = 0; shuffle <= 1; shuffle++)
        for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
            pg_params p = {.B = 3, .Hq = 8, .Hkv = 2, .S = 1500, .D = 64, .page_size = 16,
                           .kdt = RA_DTYPE_BF16, .vdt = RA_DTYPE_BF16, .shuffle = shuffle,
                           .seed = 500 + bi};
            pg_case c;
            pg_init(&c, &p);
            for (size_t si = 0; si < sizeof splits / sizeof splits[0]; si++)
                for (int threads = 1; threads <= 3; threads++) {
                    pg_opts o = {.block_size = blocks[bi], .split_tokens = splits[si],
                                 .num_threads = threads};
                    pg_check(&c, &o);
                }
            pg_free(&c);
        }
}

/* Score modifiers on a paged cache: bitwise the contiguous call with the same options, for
 * every kernel and page size (8 query heads: the modifiers' per-head tensors). */
static void test_modifiers_on_pages(void **state)
{
    (void)state;
    static const int64_t pages[] = {1, 16, 64};
    for (size_t pi = 0; pi < sizeof pages / sizeof pages[0]; pi++)
        for (int64_t hkv = 1; hkv <= 8; hkv *= 8) {
            pg_params p = {.B = 4, .Hq = 8, .Hkv = hkv, .S = 200, .D = 32,
                           .page_size = pages[pi], .shuffle = true, .seed = 600 + pi};
            pg_case c;
            pg_init(&c, &p);
            for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
                pg_opts o = {.kernel = kernels[k], .split_tokens = 32, .num_threads = 2,
                             .modifiers = true};
                pg_check(&c, &o);
            }
            pg_free(&c);
        }
}

/* A sequence's result does not depend on the others in the batch: alone, it gives the same
 * bits as in the batch. */
static void test_batch_composition(void **state)
{
    (void)state;
    int32_t len[4] = {333, 0, 77, 512};
    pg_params p = {.B = 4, .Hq = 8, .Hkv = 2, .S = 512, .D = 64, .page_size = 16,
                   .lengths = len, .shuffle = true, .seed = 700};
    pg_case all;
    pg_init(&all, &p);
    pg_opts o = {.num_threads = 2};
    pg_check(&all, &o);
    /* sequence 3 alone: the same pool, its page-table row, its length */
    const int64_t qs[4] = {1, 1, 8, 64}, ms[4] = {1, 1, 8, 1}, ts[2] = {1, all.max_pages},
                  ls[1] = {1};
    const int64_t q_st[4] = {0, 0, 64, 1}, t_st[2] = {0, 1};
    ra_tensor *q1, *t1, *l1, *o1, *m1, *ll1;
    float out_o[8 * 64], out_m[8], out_l[8];
    const int64_t qoff = 3 * 8 * 64;
    assert_int_equal(ra_tensor_wrap(&q1, RA_DTYPE_F32, 4, qs, q_st,
                                    (float *)all.q.data + qoff), RA_OK);
    assert_int_equal(ra_tensor_wrap(&t1, RA_DTYPE_I32, 2, ts, t_st,
                                    (int32_t *)all.table.data + 3 * all.max_pages), RA_OK);
    assert_int_equal(ra_tensor_wrap(&l1, RA_DTYPE_I32, 1, ls, NULL, &len[3]), RA_OK);
    assert_int_equal(ra_tensor_wrap(&o1, RA_DTYPE_F32, 4, qs, NULL, out_o), RA_OK);
    assert_int_equal(ra_tensor_wrap(&m1, RA_DTYPE_F32, 4, ms, NULL, out_m), RA_OK);
    assert_int_equal(ra_tensor_wrap(&ll1, RA_DTYPE_F32, 4, ms, NULL, out_l), RA_OK);
    for (int threads = 1; threads <= 2; threads++) {
        ra_options *opts = make_opts(&(pg_opts){.num_threads = threads});
        assert_int_equal(ra_paged_gqa(opts, q1, all.kp, all.vp, t1, l1, o1, m1, ll1), RA_OK);
        ra_options_destroy(opts);
        assert_memory_equal(out_o, (float *)all.o.data + qoff, sizeof out_o);
        assert_memory_equal(out_m, (float *)all.m.data + 3 * 8, sizeof out_m);
        assert_memory_equal(out_l, (float *)all.l.data + 3 * 8, sizeof out_l);
    }
    ra_tensor *ts_[] = {q1, t1, l1, o1, m1, ll1};
    for (int i = 0; i < 6; i++)
        ra_tensor_destroy(ts_[i]);
    pg_free(&all);
}

/* ---- errors ---------------------------------------------------------------------------- */

/* Runs a call expected to fail: status, a message naming `word`, outputs untouched. */
static void expect_error(pg_case *c, ra_status want, const char *word, const ra_tensor *q,
                         const ra_tensor *kp, const ra_tensor *vp, const ra_tensor *table,
                         const ra_tensor *len, ra_tensor *o)
{
    or_buf_fill_bytes(&c->o, 0xAB);
    or_buf_fill_bytes(&c->m, 0xAB);
    ra_status s = ra_paged_gqa(NULL, q, kp, vp, table, len, o, c->m.t, NULL);
    if (s != want)
        fail_msg("expected %s, got %s (%s)", ra_status_string(want), ra_status_string(s),
                 ra_last_error());
    if (!or_msg_names(ra_last_error(), word))
        fail_msg("the message '%s' does not name %s", ra_last_error(), word);
    for (size_t i = 0; i < c->o.bytes; i++)
        assert_int_equal(c->o.data[i], 0xAB);
    for (size_t i = 0; i < c->m.bytes; i++)
        assert_int_equal(c->m.data[i], 0xAB);
}

static void test_errors(void **state)
{
    (void)state;
    int32_t len[3] = {40, 17, 0};
    pg_params p = {.B = 3, .Hq = 4, .Hkv = 2, .S = 48, .D = 16, .page_size = 8,
                   .lengths = len, .shuffle = true, .seed = 900};
    pg_case c;
    pg_init(&c, &p);
    int32_t *table = (int32_t *)c.table.data;
    const int64_t MP = c.max_pages;

    /* a page index out of range in a slot that holds valid positions: b, slot and value */
    const int32_t bad[] = {-1, (int32_t)c.num_pages, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t keep = table[1 * MP + 2]; /* sequence 1: positions 16..23 */
        table[1 * MP + 2] = bad[i];
        expect_error(&c, RA_ERR_LENGTH, "page_table", c.q.t, c.kp, c.vp, c.table.t, c.len.t,
                     c.o.t);
        char want[64];
        snprintf(want, sizeof want, "page_table[1][2] = %d", (int)bad[i]);
        if (!strstr(ra_last_error(), want))
            fail_msg("'%s' does not say %s", ra_last_error(), want);
        table[1 * MP + 2] = keep;
    }
    /* slots past a sequence's last page are never read (they hold garbage already) */
    pg_opts o = {0};
    pg_check(&c, &o);

    /* a length beyond max_pages * page_size */
    ((int32_t *)c.len.data)[0] = (int32_t)(MP * 8 + 1);
    expect_error(&c, RA_ERR_LENGTH, "lengths", c.q.t, c.kp, c.vp, c.table.t, c.len.t, c.o.t);
    ((int32_t *)c.len.data)[0] = 40;

    /* NULL, dtype and shape of the page table; page_size 0 */
    expect_error(&c, RA_ERR_INVALID_ARGUMENT, "page_table", c.q.t, c.kp, c.vp, NULL, c.len.t,
                 c.o.t);
    ra_tensor *tf, *tb, *kz;
    const int64_t tshape[2] = {3, MP}, tshort[2] = {2, MP};
    assert_int_equal(ra_tensor_wrap(&tf, RA_DTYPE_F32, 2, tshape, NULL, c.table.data), RA_OK);
    assert_int_equal(ra_tensor_wrap(&tb, RA_DTYPE_I32, 2, tshort, NULL, c.table.data), RA_OK);
    expect_error(&c, RA_ERR_DTYPE, "page_table", c.q.t, c.kp, c.vp, tf, c.len.t, c.o.t);
    expect_error(&c, RA_ERR_SHAPE, "page_table", c.q.t, c.kp, c.vp, tb, c.len.t, c.o.t);
    const int64_t zshape[4] = {c.num_pages, 0, 2, 16};
    assert_int_equal(ra_tensor_wrap(&kz, RA_DTYPE_F32, 4, zshape, NULL, c.pool[0]), RA_OK);
    expect_error(&c, RA_ERR_SHAPE, "page_size", c.q.t, kz, kz, c.table.t, c.len.t, c.o.t);
    /* K and V pools that disagree on the page size */
    const int64_t other[4] = {c.num_pages / 2, 16, 2, 16};
    ra_tensor *k16;
    assert_int_equal(ra_tensor_wrap(&k16, RA_DTYPE_F32, 4, other, NULL, c.pool[0]), RA_OK);
    expect_error(&c, RA_ERR_SHAPE, "page_size", c.q.t, c.kp, k16, c.table.t, c.len.t, c.o.t);
    ra_tensor *ts_[] = {tf, tb, kz, k16};
    for (int i = 0; i < 4; i++)
        ra_tensor_destroy(ts_[i]);
    pg_free(&c);
}

/* An output that overlaps the page table is RA_ERR_ALIAS. */
static void test_output_over_page_table(void **state)
{
    (void)state;
    int32_t len[1] = {5};
    pg_params p = {.B = 1, .Hq = 1, .Hkv = 1, .S = 8, .D = 4, .page_size = 4, .lengths = len,
                   .seed = 950};
    pg_case c;
    pg_init(&c, &p);
    /* the table is [1, 3] i32: an l of one float inside it */
    ra_tensor *l_on_table;
    const int64_t ls[4] = {1, 1, 1, 1};
    assert_int_equal(ra_tensor_wrap(&l_on_table, RA_DTYPE_F32, 4, ls, NULL, c.table.data),
                     RA_OK);
    or_buf_fill_bytes(&c.o, 0xAB);
    assert_int_equal(ra_paged_gqa(NULL, c.q.t, c.kp, c.vp, c.table.t, c.len.t, c.o.t, NULL,
                                  l_on_table), RA_ERR_ALIAS);
    assert_true(or_msg_names(ra_last_error(), "page_table"));
    for (size_t i = 0; i < c.o.bytes; i++)
        assert_int_equal(c.o.data[i], 0xAB);
    ra_tensor_destroy(l_on_table);
    pg_free(&c);
}

/* B = 0 and Hq = 0 are valid no-ops; the function is in the dlopen table. */
static void test_empty_and_table(void **state)
{
    (void)state;
    pg_params p = {.B = 0, .Hq = 4, .Hkv = 2, .S = 8, .D = 4, .page_size = 4, .seed = 960};
    pg_case c;
    pg_init(&c, &p);
    assert_int_equal(ra_paged_gqa(NULL, c.q.t, c.kp, c.vp, c.table.t, c.len.t, c.o.t, NULL,
                                  NULL), RA_OK);
    pg_free(&c);
    const ra_api *api = ra_get_api(2);
    assert_non_null(api);
    assert_true(offsetof(ra_api, paged_gqa) < api->struct_size);
    assert_ptr_equal(api->paged_gqa, ra_paged_gqa);
    assert_int_equal(api->abi_version, 2);
    assert_non_null(ra_get_api(1));
    assert_null(ra_get_api(RA_API_VERSION + 1));
}

static int print_stats(void **state)
{
    (void)state;
    or_stat_print("ra_paged_gqa");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_sizes_layouts_kernels),
        cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_runs_blocks_splits_threads),
        cmocka_unit_test(test_batch_composition),
        cmocka_unit_test(test_modifiers_on_pages),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_output_over_page_table),
        cmocka_unit_test(test_empty_and_table),
    };
    return cmocka_run_group_tests(tests, NULL, print_stats);
}
