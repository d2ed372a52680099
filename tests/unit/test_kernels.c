/* Every block kernel this CPU runs (BLAS and portable always; AVX2, AVX-512 and NEON when
 * ra_options_set_kernel accepts them), against the oracle and against the BLAS path, with
 * small and odd block sizes and split-KV chunk sizes so that tiles, tails and the split merge
 * are all exercised. Positions past each length hold NaN, so a kernel that reads them fails.
 * Each call must also take the walk its shape is documented to take (expected_walk).
 *
 * Tolerance: 1e-5 of max|expected| against the oracle (f32 accumulation of exactly widened
 * inputs; see test_ragged.c), and 1e-5 of max|BLAS| against the BLAS path ("every kernel
 * computes the same function; results agree to f32 rounding"). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"
#include "decode.h" /* ra__last_walk: which walk a call took */

#define TOL 1e-5

typedef struct kcfg {
    tc_fn fn;
    int64_t B, Hq, Hkv, S, D;
    ra_dtype q, k, v;
    tc_layout layout;
    const int32_t *lengths;
} kcfg;

static const int32_t edge_lens[7] = {0, 1, 15, 16, 17, 49, 50};
/* around the AVX-512 tile (32) and its register tiles (2, 4, 8 or 16 positions) */
static const int32_t tile_lens[9] = {0, 1, 31, 32, 33, 63, 64, 65, 70};

static const kcfg configs[] = {
    {TC_RAGGED_GQA, 3, 8, 2, 77, 80, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, 0, NULL},
    {TC_RAGGED_GQA, 2, 4, 1, 64, 16, RA_DTYPE_F16, RA_DTYPE_BF16, RA_DTYPE_BF16, 0, NULL},
    {TC_RAGGED_GQA, 2, 32, 2, 40, 128, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F32, 0, NULL},
    {TC_RAGGED_GQA, 1, 6, 3, 35, 256, RA_DTYPE_BF16, RA_DTYPE_F16, RA_DTYPE_F16, 0, NULL},
    {TC_RAGGED_GQA, 7, 4, 2, 50, 32, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_BF16, 0, edge_lens},
    {TC_RAGGED_MQA, 2, 4, 1, 70, 64, RA_DTYPE_BF16, RA_DTYPE_F16, RA_DTYPE_F32, 0, NULL},
    {TC_RAGGED_MHA, 2, 3, 3, 40, 128, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_BF16, 0, NULL},
    {TC_RAGGED_GQA, 2, 8, 2, 45, 24, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32,
     TC_LAYOUT_SWAPPED, NULL},
    {TC_RAGGED_GQA, 2, 6, 3, 33, 40, RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_BF16,
     TC_LAYOUT_PADDED, NULL},
    {TC_RAGGED_GQA, 2, 4, 2, 30, 32, RA_DTYPE_F32, RA_DTYPE_F16, RA_DTYPE_F16,
     TC_LAYOUT_BROADCAST, NULL},
    /* groups of 3, 5 and 7 heads (register tiles 2+1, 4+1, 4+2+1), odd D */
    {TC_RAGGED_GQA, 9, 9, 3, 70, 72, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, 0, tile_lens},
    {TC_RAGGED_GQA, 9, 10, 2, 70, 40, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16, 0, tile_lens},
    {TC_RAGGED_MQA, 2, 7, 1, 100, 19, RA_DTYPE_F16, RA_DTYPE_F32, RA_DTYPE_BF16, 0, NULL},
    /* q and K both bf16 (AVX-512 multiplies them as bf16 pairs when the CPU has AVX512-BF16):
     * D a multiple of 32, with a tail of 8 or 19, and under 32 */
    {TC_RAGGED_GQA, 9, 16, 2, 70, 128, RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_F32, 0, tile_lens},
    {TC_RAGGED_GQA, 9, 12, 3, 70, 72, RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_BF16, 0, tile_lens},
    {TC_RAGGED_MHA, 3, 5, 5, 50, 51, RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_F16, 0, NULL},
    {TC_RAGGED_MQA, 2, 3, 1, 90, 19, RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_BF16, 0, NULL},
    /* one query head per KV head in a [B,S,Hkv,D] cache: AVX-512 walks those in row order
     * (every head of a position, then the next position) with q and o in a scrambled chunk
     * order; every K/V dtype pair, D with and without a 16-lane tail, rows of 1 to 8 chunks,
     * more than 16 heads (two vectors of logits) */
    {TC_RAGGED_MHA, 9, 4, 4, 70, 72, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, 0, tile_lens},
    {TC_RAGGED_MHA, 9, 2, 2, 70, 40, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F16, 0, tile_lens},
    {TC_RAGGED_MHA, 9, 3, 3, 70, 64, RA_DTYPE_F16, RA_DTYPE_F32, RA_DTYPE_BF16, 0, tile_lens},
    {TC_RAGGED_GQA, 2, 18, 18, 40, 19, RA_DTYPE_F32, RA_DTYPE_F16, RA_DTYPE_F32, 0, NULL},
    {TC_RAGGED_MHA, 9, 5, 5, 70, 16, RA_DTYPE_F32, RA_DTYPE_F16, RA_DTYPE_F16, 0, tile_lens},
    {TC_RAGGED_MHA, 7, 8, 8, 50, 33, RA_DTYPE_BF16, RA_DTYPE_F16, RA_DTYPE_BF16, 0, edge_lens},
    {TC_RAGGED_MHA, 9, 2, 2, 70, 128, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F32, 0, tile_lens},
    /* ... with many heads: q and o copies larger than L1 can hold beside the K/V streams */
    {TC_RAGGED_MHA, 9, 16, 16, 70, 100, RA_DTYPE_F32, RA_DTYPE_F16, RA_DTYPE_BF16, 0, tile_lens},
    {TC_RAGGED_MHA, 3, 32, 32, 40, 64, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, 0, NULL},
    {TC_RAGGED_GQA, 2, 40, 40, 35, 40, RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_F16, 0, NULL},
    /* two query heads per KV head (row order serves every K/V dtype pair) */
    {TC_RAGGED_GQA, 9, 8, 4, 70, 72, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, 0, tile_lens},
    {TC_RAGGED_GQA, 2, 20, 10, 45, 100, RA_DTYPE_BF16, RA_DTYPE_F32, RA_DTYPE_F32, 0, NULL},
    {TC_RAGGED_GQA, 9, 8, 4, 70, 128, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, 0, tile_lens},
    {TC_RAGGED_GQA, 2, 16, 8, 40, 128, RA_DTYPE_F16, RA_DTYPE_F32, RA_DTYPE_F32, 0, NULL},
    {TC_RAGGED_GQA, 9, 8, 4, 70, 128, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16, 0, tile_lens},
    {TC_RAGGED_GQA, 9, 6, 3, 70, 72, RA_DTYPE_BF16, RA_DTYPE_F16, RA_DTYPE_BF16, 0, tile_lens},
    /* four with f32 K/V: KV heads that do not fill a vector of logits (pairs of positions
     * store 8 lanes each), more than 32 query heads, D=128 (unrolled chunk order), a tail */
    {TC_RAGGED_GQA, 9, 12, 3, 70, 128, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, 0, tile_lens},
    {TC_RAGGED_GQA, 9, 36, 9, 70, 100, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, 0, tile_lens},
    {TC_RAGGED_GQA, 7, 24, 6, 50, 40, RA_DTYPE_BF16, RA_DTYPE_F32, RA_DTYPE_F32, 0, edge_lens},
    /* eight query heads per KV head (AVX-512 tiles of 8 heads: 2 positions per register
     * tile, 32 features per PV pass), with tails of D past 32, 8+4+1 heads, and bf16 K (with
     * f32 or bf16 q), which keeps tiles of 4 */
    {TC_RAGGED_MQA, 9, 8, 1, 70, 72, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, 0, tile_lens},
    {TC_RAGGED_GQA, 9, 16, 2, 70, 40, RA_DTYPE_F32, RA_DTYPE_F16, RA_DTYPE_BF16, 0, tile_lens},
    {TC_RAGGED_MQA, 7, 13, 1, 50, 19, RA_DTYPE_F16, RA_DTYPE_F32, RA_DTYPE_F16, 0, edge_lens},
    {TC_RAGGED_GQA, 9, 16, 2, 70, 72, RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_BF16, 0, tile_lens},
    {TC_RAGGED_MQA, 9, 8, 1, 70, 128, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F32, 0, tile_lens},
    {TC_RAGGED_MQA, 2, 16, 1, 600, 128, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_BF16, 0, NULL},
    /* groups of 64 rows and more per KV head (G a multiple of 16: AVX-512 puts 16 rows in the
     * vector lanes, the wide steps), every float K/V dtype, D with and without a tail past
     * whole chunks of 64, a [B,Hkv,S,D] cache and strided rows, a group of 80 (five row
     * blocks: pairs, then one); q and K both bf16 take the bf16 pairs where the CPU has them */
    {TC_RAGGED_MQA, 9, 64, 1, 70, 72, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, 0, tile_lens},
    {TC_RAGGED_GQA, 9, 128, 2, 70, 64, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F32, 0, tile_lens},
    {TC_RAGGED_GQA, 3, 160, 2, 45, 19, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16,
     TC_LAYOUT_SWAPPED, NULL},
    {TC_RAGGED_MQA, 2, 64, 1, 40, 64, RA_DTYPE_BF16, RA_DTYPE_BF16, RA_DTYPE_BF16, 0, NULL},
    {TC_RAGGED_MQA, 7, 128, 1, 50, 130, RA_DTYPE_F16, RA_DTYPE_F16, RA_DTYPE_BF16, 0, edge_lens},
    {TC_RAGGED_GQA, 2, 128, 2, 40, 40, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F16,
     TC_LAYOUT_PADDED, NULL},
    /* sequences longer than a row-order tile (256 positions: two halves of 128) */
    {TC_RAGGED_GQA, 3, 8, 2, 600, 64, RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_F32, 0, NULL},
    {TC_RAGGED_MHA, 3, 4, 4, 531, 48, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16, 0, NULL},
};

static const struct {
    int64_t block, split;
} opts_list[] = {{0, 0},  {1, 0},   {3, 0},  {16, 0}, {16, 1},
                 {16, 7}, {3, 64},  {256, 64}, {32, 33}};

typedef struct outs {
    float *o, *m, *l;
} outs;

static void save(const tc_case *c, outs *s)
{
    size_t bh = (size_t)(c->d.B * c->d.Hq), bhd = bh * (size_t)c->d.D;
    s->o = malloc(sizeof(float) * (bhd + 1));
    s->m = malloc(sizeof(float) * (bh + 1));
    s->l = malloc(sizeof(float) * (bh + 1));
    assert_true(s->o && s->m && s->l);
    memcpy(s->o, c->got_o, sizeof(float) * bhd);
    memcpy(s->m, c->got_m, sizeof(float) * bh);
    memcpy(s->l, c->got_l, sizeof(float) * bh);
}

static void release(outs *s)
{
    free(s->o);
    free(s->m);
    free(s->l);
}

static bool cpu_has_avx512bf16(void)
{
#if defined(__x86_64__) && !defined(RA_TEST_GENERIC_ISA)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

/* The walk docs/design.md promises each config ("Kernel choice", "Inside an item"): AVX-512
 * walks a [B,S,Hkv,D] cache whose rows hold every KV head contiguously in row order when
 * Hkv > 1 and G is 1 or 2, or 4 with f32 K and V; elsewhere it multiplies q and K as bf16
 * pairs when both are bf16 and the CPU has AVX512-BF16, else takes the wide steps for G a
 * multiple of 16 and at least 64; every other family and shape walks head tiles. All configs
 * here have unit feature strides and float K/V, so no family falls back to portable. */
static ra__walk_record expected_walk(ra_kernel k, const kcfg *g)
{
    ra__walk_record w = {k, RA__WALK_HEAD_TILES};
    if (k != RA_KERNEL_AVX512)
        return w;
    const int64_t G = g->Hq / g->Hkv;
    const bool whole_rows = g->layout == TC_LAYOUT_NATIVE || g->layout == TC_LAYOUT_BROADCAST;
    const bool f32_kv = g->k == RA_DTYPE_F32 && g->v == RA_DTYPE_F32;
#ifdef RA_NO_ROWS /* the measurement knob that turns row order off */
    const bool row_order = false;
#else
    const bool row_order = whole_rows && g->Hkv > 1 && (G == 1 || G == 2 || (G == 4 && f32_kv));
#endif
    if (row_order)
        w.walk = RA__WALK_ROW_ORDER;
    else if (g->q == RA_DTYPE_BF16 && g->k == RA_DTYPE_BF16 && cpu_has_avx512bf16())
        w.walk = RA__WALK_HEAD_TILES_DOT;
    else if (G % 16 == 0 && G >= 64)
        w.walk = RA__WALK_HEAD_TILES_WIDE;
    return w;
}

static const char *walk_name(ra__walk w)
{
    return w == RA__WALK_ROW_ORDER         ? "row order"
           : w == RA__WALK_HEAD_TILES_DOT  ? "bf16 dot"
           : w == RA__WALK_HEAD_TILES_WIDE ? "wide head tiles"
                                           : "head tiles";
}

static void check_kernel(ra_kernel k, const kcfg *cfgs, size_t n_cfgs)
{
    if (!tc_kernel_available(k)) {
        assert_true(k == RA_KERNEL_AVX2 || k == RA_KERNEL_AVX512 || k == RA_KERNEL_NEON);
        print_message("note: kernel %s is not supported on this CPU/build; skipped\n",
                      ra_kernel_name(k));
        skip();
    }
    int walks[4] = {0, 0, 0, 0}; /* configs per walk taken */
    char key_oracle[64], key_blas[64];
    snprintf(key_oracle, sizeof key_oracle, "%s vs oracle", ra_kernel_name(k));
    snprintf(key_blas, sizeof key_blas, "%s vs blas", ra_kernel_name(k));
    for (size_t i = 0; i < n_cfgs; i++) {
        if (!tc_sampled())
            continue;
        const kcfg *g = &cfgs[i];
        tc_params p = {.fn = g->fn, .B = g->B, .Hq = g->Hq, .Hkv = g->Hkv, .S = g->S,
                       .D = g->D, .qdt = g->q, .kdt = g->k, .vdt = g->v, .layout = g->layout,
                       .lengths = g->lengths, .seed = 5000 + i};
        tc_case c;
        tc_init(&c, &p);
        for (size_t j = 0; j < sizeof opts_list / sizeof opts_list[0]; j++) {
            tc_opts blas = {.kernel = RA_KERNEL_BLAS, .block_size = opts_list[j].block,
                            .split_tokens = opts_list[j].split};
            tc_opts mine = blas;
            mine.kernel = k;
            outs ref = {0};
            if (k != RA_KERNEL_BLAS) {
                assert_int_equal(tc_run(&c, &blas), RA_OK);
                tc_check(&c, TOL, NULL);
                save(&c, &ref);
            }
            ra_status s = tc_run(&c, &mine);
            if (s != RA_OK)
                fail_msg("%s, config %zu, block %lld, split %lld: %s (%s)", ra_kernel_name(k),
                         i, (long long)opts_list[j].block, (long long)opts_list[j].split,
                         ra_status_string(s), ra_last_error());
            const ra__walk_record want = expected_walk(k, g), got = ra__last_walk();
            if (got.family != want.family || got.walk != want.walk)
                fail_msg("%s, config %zu: ran %s (%s), expected %s (%s)", ra_kernel_name(k), i,
                         ra_kernel_name(got.family), walk_name(got.walk),
                         ra_kernel_name(want.family), walk_name(want.walk));
            if (j == 0)
                walks[got.walk]++;
            tc_check(&c, TOL, key_oracle);
            if (k != RA_KERNEL_BLAS) {
                int64_t bh = c.d.B * c.d.Hq;
                or_err eo = or_compare_f32(c.got_o, ref.o, bh * c.d.D);
                or_err em = or_compare_f32(c.got_m, ref.m, bh);
                or_err el = or_compare_f32(c.got_l, ref.l, bh);
                if (eo.nonfinite || em.nonfinite || el.nonfinite || eo.rel > TOL ||
                    em.rel > TOL || el.rel > TOL)
                    fail_msg("%s vs blas, config %zu, block %lld, split %lld: o %.3e m %.3e "
                             "l %.3e",
                             ra_kernel_name(k), i, (long long)opts_list[j].block,
                             (long long)opts_list[j].split, eo.rel, em.rel, el.rel);
                or_stat_note(key_blas, eo.rel);
                release(&ref);
            }
        }
        tc_free(&c);
    }
    print_message("%s: configs by walk: %d head tiles, %d bf16 dot, %d row order, %d wide\n",
                  ra_kernel_name(k), walks[RA__WALK_HEAD_TILES], walks[RA__WALK_HEAD_TILES_DOT],
                  walks[RA__WALK_ROW_ORDER], walks[RA__WALK_HEAD_TILES_WIDE]);
}

static void test_blas(void **state)
{
    (void)state;
    check_kernel(RA_KERNEL_BLAS, configs, sizeof configs / sizeof configs[0]);
}

static void test_portable(void **state)
{
    (void)state;
    check_kernel(RA_KERNEL_PORTABLE, configs, sizeof configs / sizeof configs[0]);
}

static void test_avx2(void **state)
{
    (void)state;
    check_kernel(RA_KERNEL_AVX2, configs, sizeof configs / sizeof configs[0]);
}

static void test_avx512(void **state)
{
    (void)state;
    check_kernel(RA_KERNEL_AVX512, configs, sizeof configs / sizeof configs[0]);
}

static void test_neon(void **state)
{
    (void)state;
    check_kernel(RA_KERNEL_NEON, configs, sizeof configs / sizeof configs[0]);
}

/* MaxText's largest test shape, per kernel. */
static void test_maxtext_shape_every_kernel(void **state)
{
    (void)state;
    const kcfg big = {TC_RAGGED_GQA, 4, 32, 8, 512, 128, RA_DTYPE_BF16, RA_DTYPE_BF16,
                      RA_DTYPE_BF16, 0, NULL};
    tc_params p = {.fn = big.fn, .B = big.B, .Hq = big.Hq, .Hkv = big.Hkv, .S = big.S,
                   .D = big.D, .qdt = big.q, .kdt = big.k, .vdt = big.v, .seed = 5100};
    tc_case c;
    tc_init(&c, &p);
    for (int k = RA_KERNEL_BLAS; k <= RA_KERNEL_NEON; k++) {
        if (!tc_kernel_available((ra_kernel)k))
            continue;
        const int64_t splits[2] = {0, 64};
        for (int s = 0; s < 2; s++) {
            tc_opts o = {.kernel = (ra_kernel)k, .block_size = 256, .split_tokens = splits[s]};
            assert_int_equal(tc_run(&c, &o), RA_OK);
            char key[64];
            snprintf(key, sizeof key, "%s vs oracle", ra_kernel_name((ra_kernel)k));
            tc_check(&c, TOL, key);
        }
    }
    tc_free(&c);
}

static int print_stats(void **state)
{
    (void)state;
    or_stat_print("kernels");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blas),
        cmocka_unit_test(test_portable),
        cmocka_unit_test(test_avx2),
        cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_neon),
        cmocka_unit_test(test_maxtext_shape_every_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, print_stats);
}
