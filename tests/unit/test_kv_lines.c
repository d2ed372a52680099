/* The prefetch lists of paged calls (ra__kv_lines): for random pools, page tables (shuffled,
 * shared, runs of consecutive pages), page sizes, element sizes, head layouts and position
 * ranges, the listed lines are whole 64-byte lines, cover every byte of every row asked for,
 * touch no line that holds none of those bytes, and number no more than the plan reserves
 * (rows * (ceil(row bytes / 64) + 2)). The oracle is a byte map of the rows, built here
 * position by position from the page table. A missing line costs only speed, which no other
 * test would notice; a longer list would overrun the plan's buffer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kv_cache.h"

typedef struct rng { uint64_t s; } rng;

static uint32_t next_u32(rng *r)
{
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(r->s >> 33);
}

static int64_t below(rng *r, int64_t n)
{
    return (int64_t)(next_u32(r) % (uint32_t)n);
}

enum { MAX_PAGES = 48, MAX_SLOTS = 40 };

static void test_lines_cover_rows_exactly(void **state)
{
    (void)state;
    static const int64_t page_sizes[] = {1, 3, 16, 256};
    static const ra_dtype dtypes[] = {RA_DTYPE_I8, RA_DTYPE_BF16, RA_DTYPE_F32};
    rng r = {20261203};
    int checked = 0;
    for (int iter = 0; iter < 3000; iter++) {
        const int64_t ps = page_sizes[below(&r, 4)], Hkv = 1 + below(&r, 4), D = 1 + below(&r, 96);
        const ra_dtype dt = dtypes[below(&r, 3)];
        const size_t es = dt == RA_DTYPE_F32 ? 4 : dt == RA_DTYPE_BF16 ? 2 : 1;
        const int64_t np = 1 + below(&r, MAX_PAGES), slots = 1 + below(&r, MAX_SLOTS);
        const bool hnd = below(&r, 2); /* [pages, Hkv, ps, D] rather than [pages, ps, Hkv, D] */
        ra__operand x;
        memset(&x, 0, sizeof x);
        x.dtype = dt;
        x.sd = 1;
        x.st = hnd ? D : Hkv * D;
        x.sh = hnd ? ps * D : D;
        x.sp = ps * Hkv * D;
        /* the pool starts at an odd offset so that rows straddle lines */
        char *pool = malloc((size_t)(np * x.sp) * es + 64);
        assert_non_null(pool);
        x.data = pool + 1 + below(&r, 63);
        int32_t table[MAX_SLOTS];
        for (int64_t s = 0; s < slots; s++) /* runs of consecutive pages, and shared pages */
            table[s] = s > 0 && below(&r, 3) == 0 ? (table[s - 1] + 1) % (int32_t)np
                                                  : (int32_t)below(&r, np);
        const int64_t page_at[2] = {0, slots};
        ra__problem p;
        memset(&p, 0, sizeof p);
        p.pages = table;
        p.page_at = page_at;
        p.page_size = ps;
        p.B = 1;
        p.D = D;
        /* as walk.c lists them: one head's rows of an HND pool, or whole rows (every head)
         * of an NHD pool; either way each row is st elements */
        const int64_t S = slots * ps, t0 = below(&r, S), n = below(&r, S - t0 + 1);
        const int64_t j = hnd ? below(&r, Hkv) : 0;
        const size_t row = (size_t)x.st * es;
        const char **lines = malloc(sizeof(char *) * (size_t)(n * ((row + 63) / 64 + 2) + 1));
        unsigned char *want = calloc((size_t)(np * x.sp) * es + 128, 1);
        assert_non_null(lines);
        assert_non_null(want);
        const size_t count = ra__kv_lines(&p, &x, 0, t0, n, j, lines);
        assert_true(count <= (size_t)(n * ((int64_t)((row + 63) / 64) + 2)));
        /* the oracle: every byte of every row asked for, by position */
        const char *base = (const char *)x.data;
        for (int64_t t = t0; t < t0 + n; t++) {
            const int64_t page = table[t / ps], in = t % ps;
            const size_t at = (size_t)(page * x.sp + in * x.st + j * x.sh) * es;
            memset(want + at + (size_t)(base - pool), 1, row);
        }
        unsigned char *got = calloc((size_t)(np * x.sp) * es + 128, 1);
        assert_non_null(got);
        for (size_t i = 0; i < count; i++) {
            const uintptr_t a = (uintptr_t)lines[i];
            assert_int_equal(a % 64, 0);
            const ptrdiff_t off = (const char *)lines[i] - pool;
            assert_true(off > -64 && off < (ptrdiff_t)((size_t)(np * x.sp) * es + 64));
            bool useful = false;
            for (ptrdiff_t b = off; b < off + 64; b++)
                if (b >= 0 && b < (ptrdiff_t)((size_t)(np * x.sp) * es + 128)) {
                    useful |= want[b] != 0;
                    got[b] = 1;
                }
            assert_true(useful);
        }
        for (size_t b = 0; b < (size_t)(np * x.sp) * es + 128; b++)
            if (want[b])
                assert_true(got[b]);
        free(lines), free(want), free(got), free(pool);
        checked++;
    }
    assert_int_equal(checked, 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_cover_rows_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
