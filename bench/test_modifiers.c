/* ctest bench_modifiers: the bench's score-modifier flags (--softcap, --window, --sinks,
 * --alibi; parsing and refusals), their labels, the positions a windowed call reads (against
 * a count of the library's rule), case w's own window, the per-head sink and slope values, and
 * that the options of a modified row carry the modifiers to the library. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "measure.h"
#include "workload.h"

#include "test_check.h"

static void test_parse(void)
{
    bench_config cfg;
    CHECK(parse(0, NULL, &cfg) == 0 && !bench_mods_any(&cfg.mods), "no flags: no modifiers");

    const char *all[] = {"--softcap", "30", "--window=4096:4", "--sinks", "--alibi"};
    CHECK(parse(5, all, &cfg) == 0, "every modifier flag");
    CHECK(cfg.mods.softcap == 30.0f && cfg.mods.window == 4096 && cfg.mods.sink_positions == 4 &&
              cfg.mods.sinks && cfg.mods.alibi,
          "parsed: cap %g window %lld+%lld sinks %d alibi %d", (double)cfg.mods.softcap,
          (long long)cfg.mods.window, (long long)cfg.mods.sink_positions, cfg.mods.sinks,
          cfg.mods.alibi);
    CHECK(cfg.custom && strcmp(bench_preset_name(&cfg), "custom") == 0,
          "modifiers make a custom run");

    const char *window[] = {"--window", "512", "--softcap", "0.5"};
    CHECK(parse(4, window, &cfg) == 0 && cfg.mods.window == 512 &&
              cfg.mods.sink_positions == 0 && cfg.mods.softcap == 0.5f && !cfg.mods.sinks,
          "--window W alone has no sink positions");

    static const char *const bad_cap[] = {"0", "-1", "nan", "inf", "1e39", "x", "30x", ""};
    for (size_t i = 0; i < sizeof bad_cap / sizeof bad_cap[0]; i++) {
        const char *args[] = {"--softcap", bad_cap[i]};
        CHECK(parse(2, args, &cfg) == -1, "--softcap '%s' must be refused", bad_cap[i]);
    }
    static const char *const bad_window[] = {"0", "-1", "10:-1", "10:", ":4", "x", "10:4:2",
                                             "10:x", ""};
    for (size_t i = 0; i < sizeof bad_window / sizeof bad_window[0]; i++) {
        const char *args[] = {"--window", bad_window[i]};
        CHECK(parse(2, args, &cfg) == -1, "--window '%s' must be refused", bad_window[i]);
    }
    const char *valued[] = {"--sinks=1"};
    CHECK(parse(1, valued, &cfg) == -1, "--sinks takes no value");
}

static void expect_label(bench_mods m, const char *want)
{
    char buf[96];
    const char *got = bench_mods_label(&m, buf, sizeof buf);
    CHECK(strcmp(got, want) == 0, "label \"%s\", want \"%s\"", got, want);
}

static void test_labels(void)
{
    expect_label((bench_mods){0}, "-");
    expect_label((bench_mods){.softcap = 30}, "cap30");
    expect_label((bench_mods){.softcap = 0.5f}, "cap0.5");
    expect_label((bench_mods){.window = 4096}, "win4096");
    expect_label((bench_mods){.window = 4096, .sink_positions = 4}, "win4096+4");
    expect_label((bench_mods){.sinks = true}, "sinks");
    expect_label((bench_mods){.alibi = true}, "alibi");
    expect_label((bench_mods){.softcap = 50, .window = 4096, .sinks = true, .alibi = true},
                 "cap50,win4096,sinks,alibi");
    /* a short buffer gets the start of the label, terminated */
    char small[8];
    memset(small, 'x', sizeof small);
    bench_mods m = {.softcap = 50, .window = 4096, .sinks = true};
    bench_mods_label(&m, small, sizeof small);
    CHECK(strcmp(small, "cap50,w") == 0, "truncated label \"%.8s\"", small);
}

/* bench_visible_positions against a count of the positions the library's rule keeps. */
static void test_visible(void)
{
    for (int64_t len = 0; len <= 40; len++)
        for (int64_t window = 0; window <= 45; window++)
            for (int64_t sinks = 0; sinks <= (window ? 45 : 0); sinks++) {
                int64_t want = 0;
                for (int64_t t = 0; t < len; t++)
                    want += window == 0 || t >= len - window || t < sinks;
                int64_t got = bench_visible_positions(len, window, sinks);
                CHECK(got == want, "len %lld window %lld sinks %lld: %lld positions, want %lld",
                      (long long)len, (long long)window, (long long)sinks, (long long)got,
                      (long long)want);
            }
    CHECK(bench_visible_positions(65536, 4096, 0) == 4096, "case w reads 4096 positions");
    CHECK(bench_visible_positions(65536, 4096, 4) == 4100, "and 4 sink positions more");
    CHECK(bench_visible_positions(3, INT64_MAX, INT64_MAX) == 3, "huge values: all positions");
}

static void test_case_w(void)
{
    bench_config cfg;
    const char *none[] = {"--case", "all"};
    CHECK(parse(2, none, &cfg) == 0, "--case all");
    for (int c = 0; c < cfg.n_cases; c++)
        CHECK(strcmp(cfg.cases[c].name, "w") != 0, "'all' does not take case w");
    CHECK(cfg.n_cases == bench_n_preset_cases, "'all' is the %d preset cases, got %d",
          bench_n_preset_cases, cfg.n_cases);

    const char *w[] = {"--case", "w,a"};
    CHECK(parse(2, w, &cfg) == 0 && cfg.n_cases == 2 && strcmp(cfg.cases[0].name, "w") == 0,
          "--case w,a");
    const bench_shape *sw = &cfg.cases[0], *sa = &cfg.cases[1];
    CHECK(sw->B == 1 && sw->S == 65536 && sw->Hq == 32 && sw->Hkv == 8 && sw->D == 128 &&
              sw->lengths == BENCH_LEN_FULL && sw->window == 4096,
          "case w's shape");
    bench_mods m = bench_case_mods(&cfg.mods, sw);
    CHECK(m.window == 4096 && m.sink_positions == 0 && m.softcap == 0 && !m.sinks,
          "case w without flags: its own window");
    CHECK(!bench_mods_any(&(bench_mods){0}) && bench_mods_any(&m), "bench_mods_any");
    m = bench_case_mods(&cfg.mods, sa);
    CHECK(!bench_mods_any(&m), "case a without flags: plain only");
    CHECK(bench_n_variants(&cfg, sw) == 2 && bench_n_variants(&cfg, sa) == 1,
          "variants: w plain and windowed (%d), a plain (%d)", bench_n_variants(&cfg, sw),
          bench_n_variants(&cfg, sa));

    const char *flags[] = {"--case", "w,a", "--window", "100:2", "--softcap", "20"};
    CHECK(parse(6, flags, &cfg) == 0, "--case w,a with --window and --softcap");
    m = bench_case_mods(&cfg.mods, &cfg.cases[0]);
    CHECK(m.window == 100 && m.sink_positions == 2 && m.softcap == 20.0f,
          "--window replaces case w's own window");
    m = bench_case_mods(&cfg.mods, &cfg.cases[1]);
    CHECK(m.window == 100 && m.softcap == 20.0f, "the flags apply to every case");
    const char *cap[] = {"--case", "w", "--softcap", "20"};
    CHECK(parse(4, cap, &cfg) == 0, "--case w --softcap 20");
    m = bench_case_mods(&cfg.mods, &cfg.cases[0]);
    CHECK(m.window == 4096 && m.softcap == 20.0f, "case w keeps its window beside --softcap");
}

/* The modified options give ra_ragged_gqa the bits that options set by hand with the same
 * modifiers give, and another result than the plain options. */
static void test_workload_and_options(void)
{
    bench_config cfg;
    const char *args[] = {"--softcap", "3", "--window", "7:2", "--sinks", "--alibi"};
    CHECK(parse(6, args, &cfg) == 0, "modifier flags");
    bench_shape shape = *bench_find_case("seed");
    strcpy(shape.name, "tiny");
    shape.B = 4, shape.S = 40, shape.Hq = 8, shape.Hkv = 2, shape.D = 16;
    shape.lengths = BENCH_LEN_RANDOM;
    const int64_t contiguous = 0;
    bench_workload w, again, other;
    if (bench_workload_init(&w, &shape, RA_DTYPE_F32, RA_DTYPE_F32, 42, false, &cfg.mods,
                            &contiguous, 1, false)) {
        CHECK(0, "bench_workload_init failed");
        return;
    }
    int64_t visible = 0;
    for (int64_t b = 0; b < shape.B; b++)
        visible += bench_visible_positions(w.lengths[b], 7, 2);
    CHECK(w.visible_positions == visible && visible < w.sum_lengths,
          "visible positions %lld, want %lld (of %lld)", (long long)w.visible_positions,
          (long long)visible, (long long)w.sum_lengths);
    CHECK(w.kv_bytes_visible == (double)visible * 2 * 16 * 2 * 4,
          "bytes of the visible positions %g", w.kv_bytes_visible);
    CHECK(w.kv_bytes == (double)w.sum_lengths * 2 * 16 * 2 * 4, "plain bytes %g", w.kv_bytes);
    for (int64_t h = 0; h < shape.Hq; h++) {
        CHECK(w.alibi[h] == ldexpf(1.0f, -(int)(h + 1)), "Hq 8: slope %lld = %g, want 2^-%lld",
              (long long)h, (double)w.alibi[h], (long long)(h + 1));
        CHECK(w.sinks[h] >= -2.0f && w.sinks[h] < 2.0f, "sink %lld = %g outside [-2, 2)",
              (long long)h, (double)w.sinks[h]);
    }
    CHECK(w.sinks[0] != w.sinks[1], "the sinks differ between heads");
    if (bench_workload_init(&again, &shape, RA_DTYPE_BF16, RA_DTYPE_F32, 42, false, &cfg.mods,
                            &contiguous, 1, false) == 0) {
        CHECK(!memcmp(w.sinks, again.sinks, 8 * sizeof(float)),
              "the same seed gives the same sinks, whatever the dtype");
        bench_workload_free(&again);
    }
    if (bench_workload_init(&other, &shape, RA_DTYPE_F32, RA_DTYPE_F32, 43, false, &cfg.mods,
                            &contiguous, 1, false) == 0) {
        CHECK(memcmp(w.sinks, other.sinks, 8 * sizeof(float)) != 0,
              "another seed gives other sinks");
        bench_workload_free(&other);
    }

    const size_t no = (size_t)(shape.B * shape.Hq * shape.D), nml = (size_t)(shape.B * shape.Hq);
    float *got = malloc((no + 2 * nml) * sizeof(float));
    ra_options *plain = NULL, *mod = NULL, *hand = NULL;
    if (!got || bench_make_options(&cfg, &w, 1, RA_KERNEL_AUTO, false, &plain) ||
        bench_make_options(&cfg, &w, 1, RA_KERNEL_AUTO, true, &mod) ||
        bench_make_options(&cfg, &w, 1, RA_KERNEL_AUTO, false, &hand)) {
        CHECK(0, "bench_make_options failed");
        goto done;
    }
    CHECK(ra_options_set_softcap(hand, 3.0f) == RA_OK &&
              ra_options_set_window(hand, 7, 2) == RA_OK &&
              ra_options_set_sinks(hand, w.t_sinks) == RA_OK &&
              ra_options_set_alibi(hand, w.t_alibi) == RA_OK,
          "setting the modifiers by hand");
    CHECK(ra_ragged_gqa(mod, w.t_q4, w.t_k, w.t_v, w.t_len, w.t_o, w.t_m, w.t_l) == RA_OK,
          "the modified call: %s", ra_last_error());
    memcpy(got, w.o, no * sizeof(float));
    memcpy(got + no, w.m, nml * sizeof(float));
    memcpy(got + no + nml, w.l, nml * sizeof(float));
    CHECK(ra_ragged_gqa(hand, w.t_q4, w.t_k, w.t_v, w.t_len, w.t_o, w.t_m, w.t_l) == RA_OK,
          "the call with options set by hand: %s", ra_last_error());
    CHECK(!memcmp(got, w.o, no * sizeof(float)) && !memcmp(got + no, w.m, nml * 4) &&
              !memcmp(got + no + nml, w.l, nml * 4),
          "the modified options differ from the same modifiers set by hand");
    CHECK(ra_ragged_gqa(plain, w.t_q4, w.t_k, w.t_v, w.t_len, w.t_o, w.t_m, w.t_l) == RA_OK,
          "the plain call: %s", ra_last_error());
    CHECK(memcmp(got, w.o, no * sizeof(float)) != 0, "the plain options apply modifiers");
    CHECK(ra_reference_gqa(mod, w.t_q3, w.t_kref, w.t_vref, w.t_len, w.t_ref_o, NULL, NULL) ==
              RA_ERR_UNSUPPORTED,
          "the reference refuses the modified options (so the bench never times it with them)");
done:
    ra_options_destroy(plain);
    ra_options_destroy(mod);
    ra_options_destroy(hand);
    free(got);
    bench_workload_free(&w);
}

int main(void)
{
    test_parse();
    test_labels();
    test_visible();
    test_case_w();
    test_workload_and_options();
    if (failures) {
        fprintf(stderr, "bench_modifiers: %d checks failed\n", failures);
        return 1;
    }
    printf("bench_modifiers: all checks passed\n");
    return 0;
}
