/* ctest bench_paged: the bench's --paged option (parsing, the page sizes it keeps), the pools
 * it builds (every sequence's rows at the place its page table names, the same bytes as the
 * contiguous cache, and for i8/fp8 the same scales, pages shuffled by the seed, unused slots
 * -1), and the warning about paged results that differ from the contiguous ones. */
#define _POSIX_C_SOURCE 200809L /* fmemopen */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fill.h"
#include "report.h"
#include "workload.h"

#include "test_check.h"

static void test_parse(void)
{
    bench_config cfg;
    CHECK(parse(0, NULL, &cfg) == 0, "no flags");
    CHECK(cfg.n_page_sizes == 1 && cfg.page_sizes[0] == 0 && !cfg.paged,
          "without --paged: only the contiguous layout, no paged columns (%d sizes)",
          cfg.n_page_sizes);

    const char *list[] = {"--paged", "256,0,16,16"};
    CHECK(parse(2, list, &cfg) == 0, "--paged 256,0,16,16");
    CHECK(cfg.paged && cfg.custom, "--paged makes a custom run with paged columns");
    CHECK(cfg.n_page_sizes == 3 && cfg.page_sizes[0] == 0 && cfg.page_sizes[1] == 16 &&
              cfg.page_sizes[2] == 256,
          "sorted without repeats: %d sizes", cfg.n_page_sizes);
    char buf[512];
    CHECK(strcmp(bench_run_description(&cfg, buf, sizeof buf),
                 "custom run: --paged 256,0,16,16 (the rest from the quick preset)") == 0,
          "description %s", buf);

    const char *zero[] = {"--paged=0"};
    CHECK(parse(1, zero, &cfg) == 0 && cfg.paged && cfg.n_page_sizes == 1 &&
              cfg.page_sizes[0] == 0,
          "--paged 0: contiguous only, with the paged columns");

    static const char *const bad[] = {"-1", "65537", "x", "", "1,2,3,4,5,6,7,8,9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {"--paged", bad[i]};
        CHECK(parse(2, args, &cfg) == -1, "--paged '%s' must be refused", bad[i]);
    }
}

/* Quantized K/V: the scales of pool row `at` are the contiguous cache's at position `pos`
 * (b * S + t); true for float K/V, which have none. */
static int same_scales(const bench_workload *w, const bench_pool *pool, int64_t at, int64_t pos)
{
    if (!w->ks)
        return !pool->ks;
    const size_t n = (size_t)w->shape.Hkv, sz = n * sizeof(float);
    return pool->ks && !memcmp(pool->ks + (size_t)at * n, w->ks + (size_t)pos * n, sz) &&
           !memcmp(pool->vs + (size_t)at * n, w->vs + (size_t)pos * n, sz);
}

/* Checks one pool of w against its contiguous cache. */
static void check_pool(const bench_workload *w, const bench_pool *pool)
{
    const bench_shape *s = &w->shape;
    const int64_t ps = pool->page_size, row = s->Hkv * s->D;
    const size_t es = bench_dtype_size(w->kv_dtype), rb = (size_t)row * es;
    int64_t want_pages = 0;
    for (int64_t b = 0; b < s->B; b++)
        want_pages += (w->lengths[b] + ps - 1) / ps;
    CHECK(pool->num_pages == want_pages, "page %lld: %lld pages, want %lld", (long long)ps,
          (long long)pool->num_pages, (long long)want_pages);
    CHECK(pool->max_pages == (s->S + ps - 1) / ps, "page %lld: max_pages %lld", (long long)ps,
          (long long)pool->max_pages);
    CHECK(pool->alloc == (size_t)(pool->num_pages * ps) * rb, "page %lld: %zu bytes per pool",
          (long long)ps, pool->alloc);
    int *uses = calloc((size_t)pool->num_pages + 1, sizeof *uses);
    int in_order = 1;
    int64_t prev = -1;
    for (int64_t b = 0; b < s->B; b++) {
        const int64_t n = (w->lengths[b] + ps - 1) / ps;
        for (int64_t i = 0; i < pool->max_pages; i++) {
            const int32_t pg = pool->table[b * pool->max_pages + i];
            if (i >= n) {
                CHECK(pg == -1, "page %lld: unused slot [%lld][%lld] = %d", (long long)ps,
                      (long long)b, (long long)i, (int)pg);
                continue;
            }
            if (pg < 0 || pg >= pool->num_pages) {
                CHECK(0, "page %lld: slot [%lld][%lld] = %d is out of range", (long long)ps,
                      (long long)b, (long long)i, (int)pg);
                continue;
            }
            uses[pg]++;
            in_order &= pg == prev + 1;
            prev = pg;
            for (int64_t r = 0; r < ps; r++) {
                const int64_t t = i * ps + r;
                const char *kp = (const char *)pool->k + (size_t)(pg * ps + r) * rb;
                const char *vp = (const char *)pool->v + (size_t)(pg * ps + r) * rb;
                if (t < s->S) {
                    const size_t at = (size_t)(b * s->S + t) * rb;
                    CHECK(!memcmp(kp, (const char *)w->k + at, rb) &&
                              !memcmp(vp, (const char *)w->v + at, rb) &&
                              same_scales(w, pool, pg * ps + r, b * s->S + t),
                          "page %lld: sequence %lld position %lld differs from the contiguous "
                          "cache", (long long)ps, (long long)b, (long long)t);
                } else {
                    int zero = 1;
                    for (size_t x = 0; x < rb; x++)
                        zero &= kp[x] == 0 && vp[x] == 0;
                    CHECK(zero, "page %lld: the row past S of sequence %lld is not 0",
                          (long long)ps, (long long)b);
                }
            }
        }
    }
    for (int64_t p = 0; p < pool->num_pages; p++)
        CHECK(uses[p] == 1, "page %lld: pool page %lld is used %d times", (long long)ps,
              (long long)p, uses[p]);
    if (pool->num_pages >= 8)
        CHECK(!in_order, "page %lld: the %lld pages are in order, not shuffled", (long long)ps,
              (long long)pool->num_pages);
    free(uses);
}

/* ra_paged_gqa on the pool gives the bits of ra_ragged_gqa on the contiguous cache: the pool's
 * tensors describe it correctly. */
static void check_call(bench_workload *w, const bench_pool *pool)
{
    const bench_shape *s = &w->shape;
    const size_t no = (size_t)(s->B * s->Hq * s->D), nml = (size_t)(s->B * s->Hq);
    float *keep = malloc((no + 2 * nml) * sizeof *keep);
    ra_status st = ra_ragged_gqa(NULL, w->t_q4, w->t_k, w->t_v, w->t_len, w->t_o, w->t_m, w->t_l);
    CHECK(st == RA_OK, "ra_ragged_gqa: %s", ra_last_error());
    memcpy(keep, w->o, no * sizeof *keep);
    memcpy(keep + no, w->m, nml * sizeof *keep);
    memcpy(keep + no + nml, w->l, nml * sizeof *keep);
    st = ra_paged_gqa(NULL, w->t_q4, pool->t_k, pool->t_v, pool->t_table, w->t_len, w->t_o,
                      w->t_m, w->t_l);
    CHECK(st == RA_OK, "ra_paged_gqa: %s", ra_last_error());
    CHECK(!memcmp(keep, w->o, no * sizeof *keep) && !memcmp(keep + no, w->m, nml * 4) &&
              !memcmp(keep + no + nml, w->l, nml * 4),
          "page %lld: ra_paged_gqa on the pool differs from the contiguous result",
          (long long)pool->page_size);
    free(keep);
}

/* Two pools of one page size hold the same scales (or, for float K/V, none). */
static int same_pool_scales(const bench_pool *a, const bench_pool *b, int64_t Hkv)
{
    const size_t n = (size_t)(a->num_pages * a->page_size * Hkv) * sizeof(float);
    if (!a->ks || !b->ks)
        return !a->ks && !b->ks;
    return !memcmp(a->ks, b->ks, n) && !memcmp(a->vs, b->vs, n);
}

static void test_pools(void)
{
    bench_shape shape = *bench_find_case("seed");
    strcpy(shape.name, "pools");
    shape.B = 3, shape.S = 50, shape.Hq = 4, shape.Hkv = 2, shape.D = 8;
    shape.lengths = BENCH_LEN_RANDOM;
    const int64_t sizes[] = {0, 1, 7, 64};
    const ra_dtype dts[] = {RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_I8, RA_DTYPE_FP8_E4M3,
                            RA_DTYPE_FP8_E5M2};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
        bench_workload w, again;
        if (bench_workload_init(&w, &shape, dts[d], RA_DTYPE_F32, 42, false, NULL, sizes, 4,
                                false)) {
            CHECK(0, "bench_workload_init failed");
            return;
        }
        CHECK(w.k != NULL && w.n_pools == 4, "0 listed: the contiguous cache is built");
        for (int p = 1; p < 4; p++) {
            CHECK(w.pools[p].page_size == sizes[p], "pool %d has page size %lld", p,
                  (long long)w.pools[p].page_size);
            check_pool(&w, &w.pools[p]);
            check_call(&w, &w.pools[p]);
        }
        /* the same seed gives the same pages; without 0 and the reference, no contiguous cache */
        if (bench_workload_init(&again, &shape, dts[d], RA_DTYPE_F32, 42, false, NULL,
                                sizes + 1, 3, false)) {
            CHECK(0, "bench_workload_init failed");
            bench_workload_free(&w);
            return;
        }
        CHECK(again.k == NULL && again.v == NULL && again.kv_alloc == 0,
              "no contiguous cache when neither 0 nor the reference needs it");
        for (int p = 0; p < 3; p++) {
            const bench_pool *a = &w.pools[p + 1], *b = &again.pools[p];
            CHECK(a->num_pages == b->num_pages &&
                      !memcmp(a->table, b->table,
                              (size_t)(shape.B * a->max_pages) * sizeof *a->table) &&
                      !memcmp(a->k, b->k, a->alloc) && !memcmp(a->v, b->v, a->alloc) &&
                      same_pool_scales(a, b, shape.Hkv),
                  "page %lld: another run with the same seed built another pool",
                  (long long)a->page_size);
        }
        bench_workload_free(&again);
        bench_workload_free(&w);
    }
}

static void test_summary(void)
{
    static char text[1024];
    FILE *f = fmemopen(text, sizeof text - 1, "w");
    bench_print_paged_summary(f, 3, 0);
    fclose(f);
    CHECK(text[0] == '\0', "no differing row prints nothing, got \"%s\"", text);
    memset(text, 0, sizeof text);
    f = fmemopen(text, sizeof text - 1, "w");
    bench_print_paged_summary(f, 3, 1);
    fclose(f);
    CHECK(strstr(text, "warning: 1 of 3 paged rows are not bitwise the contiguous result") !=
              NULL,
          "differing rows: \"%s\"", text);
}

int main(void)
{
    test_parse();
    test_pools();
    test_summary();
    if (failures) {
        fprintf(stderr, "bench_paged: %d checks failed\n", failures);
        return 1;
    }
    printf("bench_paged: all checks passed\n");
    return 0;
}
