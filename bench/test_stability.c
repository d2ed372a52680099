/* ctest bench_stability: the bench's row flags, its warning summary and its header's run
 * description, from fixed numbers and command lines (a busy machine cannot be reproduced). */
#define _POSIX_C_SOURCE 200809L /* fmemopen */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "stability.h"

#include "test_check.h"

static void expect_flags(double med, double min, double slow, double fast, double share,
                         const char *want)
{
    char buf[4];
    const char *got = bench_flags_str(bench_classify(med, min, slow, fast, share), buf);
    CHECK(strcmp(got, want) == 0,
          "classify(median %g, min %g, stream %g..%g, share %g) = \"%s\", want \"%s\"", med, min,
          slow, fast, share, got, want);
}

static void test_classify(void)
{
    expect_flags(1.00, 1.00, 30.0, 30.0, 0.50, "-");
    expect_flags(1.20, 1.00, 30.0, 36.0, 0.99, "-"); /* within both limits */
    expect_flags(1.25, 1.00, 30.0, 37.5, 1.00, "-"); /* at the limits: not above them */
    expect_flags(1.30, 1.00, 30.0, 30.0, 0.50, "T");
    expect_flags(2.0e-3, 1.5e-3, 30.0, 30.0, 0.50, "T");
    expect_flags(1.00, 1.00, 35.0, 60.0, 0.50, "S"); /* a VM's slow and fast phases */
    expect_flags(1.00, 1.00, 30.0, 30.0, 1.02, "%");
    expect_flags(1.40, 1.00, 20.0, 40.0, 1.30, "TS%");
    /* nothing measured, or nonsense, raises no flag */
    expect_flags(NAN, NAN, NAN, NAN, NAN, "-");
    expect_flags(1.00, 0.00, 0.0, 30.0, INFINITY, "-");
    CHECK(bench_flags_unstable(bench_classify(1.3, 1.0, 30, 30, 0.5)), "T is unstable");
    CHECK(bench_flags_unstable(bench_classify(1.0, 1.0, 30, 40, 0.5)), "S is unstable");
    CHECK(!bench_flags_unstable(bench_classify(1.0, 1.0, 30, 30, 1.5)),
          "a share above 100%% alone is flagged, but not as unstable");
}

/* The summary for these rows' flags, as text. */
static void summary(const bench_flags *rows, int n, bool hot, char *out, size_t size)
{
    bench_flag_counts c = {0};
    for (int i = 0; i < n; i++)
        bench_flag_counts_add(&c, rows[i]);
    memset(out, 0, size);
    FILE *f = fmemopen(out, size - 1, "w");
    if (!f) {
        CHECK(0, "fmemopen failed");
        return;
    }
    bench_print_flag_summary(f, &c, hot);
    fclose(f);
}

static void test_summary(void)
{
    static char text[4096];
    const bench_flags quiet[3] = {{false, false, false}, {false, false, false},
                                  {false, false, false}};
    summary(quiet, 3, false, text, sizeof text);
    CHECK(text[0] == '\0', "no flagged row prints nothing, got \"%s\"", text);

    const bench_flags busy[4] = {{true, false, false}, {true, true, false},
                                 {false, false, false}, {false, true, true}};
    summary(busy, 4, false, text, sizeof text);
    CHECK(strstr(text, "warning: 3 of 4 rows are unstable: the machine was busy") != NULL,
          "busy summary: %s", text);
    CHECK(strstr(text, "T  2 rows: the median call took more than 1.25x the fastest call"),
          "T line: %s", text);
    CHECK(strstr(text, "S  2 rows: the fastest bandwidth pass beside the calls was more than "
                       "1.25x the slowest"),
          "S line: %s", text);
    CHECK(strstr(text, "warning: 1 row (flag %) shows a share above 100%"), "share: %s", text);
    CHECK(strstr(text, "busier than during the calls"), "share without --hot: %s", text);

    const bench_flags hot_row[1] = {{false, false, true}};
    summary(hot_row, 1, true, text, sizeof text);
    CHECK(strstr(text, "unstable") == NULL, "a share alone is not instability: %s", text);
    CHECK(strstr(text, "With --hot the caches are not flushed"), "share with --hot: %s", text);
}

static void expect_description(int argc, const char *const *args, const char *want,
                               const char *want_preset)
{
    bench_config cfg;
    int rc = parse(argc, args, &cfg);
    CHECK(rc == 0, "bench_parse_args returned %d", rc);
    char buf[512];
    const char *got = bench_run_description(&cfg, buf, sizeof buf);
    CHECK(strcmp(got, want) == 0, "description \"%s\", want \"%s\"", got, want);
    CHECK(strcmp(bench_preset_name(&cfg), want_preset) == 0, "preset %s, want %s",
          bench_preset_name(&cfg), want_preset);
}

static void test_description(void)
{
    expect_description(0, NULL, "quick preset", "quick");
    const char *quick[] = {"--quick"};
    expect_description(1, quick, "quick preset", "quick");
    const char *full[] = {"--full"};
    expect_description(1, full, "full preset", "full");
    const char *json[] = {"--json", "out.json"};
    expect_description(2, json, "quick preset", "quick");
    const char *some[] = {"--case", "a", "--dtype", "bf16", "--threads", "1,2"};
    expect_description(6, some,
                       "custom run: --case a --dtype bf16 --threads 1,2 (the rest from the "
                       "quick preset)",
                       "custom");
    const char *full_hot[] = {"--full", "--hot"};
    expect_description(2, full_hot, "custom run: --full --hot (the rest from the full preset)",
                       "custom");
    const char *shape[] = {"--B=2", "--S", "64"};
    expect_description(3, shape, "custom run: --B=2 --S 64 (the rest from the quick preset)",
                       "custom");
}

int main(void)
{
    test_classify();
    test_summary();
    test_description();
    if (failures) {
        fprintf(stderr, "bench_stability: %d checks failed\n", failures);
        return 1;
    }
    printf("bench_stability: all checks passed\n");
    return 0;
}
