#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include "cli.h"

#include "fill.h"
#include "stability.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "raggedattn-bench"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: " PROG " [options]\n"
        "Times ra_ragged_gqa (decode attention over a [B,S,Hkv,D] K/V cache, q [B,1,Hq,D]),\n"
        "or ra_paged_gqa over the same K/V in pages (--paged), against this machine's read\n"
        "bandwidth and the library's reference path.\n"
        "With no options it runs --quick.\n"
        "\n"
        "What to run\n"
        "  --case NAME       a named workload (below), or 'all' (every one but w); repeatable,\n"
        "                    or a comma list\n"
        "  --dtype LIST      K/V dtypes among f32,bf16,f16 and the quantized i8, fp8_e4m3\n"
        "                    (or e4m3, fp8) and fp8_e5m2 (or e5m2); 'all' = f32,bf16,f16  [all]\n"
        "  --qdtype T        dtype of q: f32, bf16 or f16  [f32]\n"
        "  --threads LIST    OpenMP thread counts, e.g. 1,2  [quick: nproc; full: 1,2,4..nproc]\n"
        "  --kernel LIST     auto,blas,portable,avx2,avx512,neon (timed side by side)  [auto]\n"
        "  --paged LIST      K/V layouts timed side by side: page sizes for ra_paged_gqa over\n"
        "                    a pool of NHD pages [num_pages, size, Hkv, D] holding the same\n"
        "                    K/V bytes, each sequence's pages in a seeded shuffled order; 0 =\n"
        "                    the contiguous cache (ra_ragged_gqa), e.g. 0,16,256  [0]\n"
        "  --quick           all cases, the float dtypes, nproc threads, 10 calls: under a\n"
        "                    minute\n"
        "  --full            all cases, the float dtypes, thread counts 1,2,4..nproc, 20 calls\n"
        "\n"
        "Score modifiers (any of these times each row twice in the same rounds: plain, and with\n"
        "the modifiers; case w brings its own window of 4096 unless --window is given)\n"
        "  --softcap CAP     soft-cap the logits: CAP * tanh(s / CAP), CAP > 0 (Gemma 2: 50)\n"
        "  --window W[:N]    attend to the last W positions and the first N (sink positions,\n"
        "                    StreamingLLM)  [N: 0]\n"
        "  --sinks           a per-head sink logit in the softmax denominator (gpt-oss), drawn\n"
        "                    from --seed, uniform in [-2, 2)\n"
        "  --alibi           ALiBi with BLOOM's slopes 2^(-8(h+1)/Hq), h = 0..Hq-1\n"
        "\n"
        "A custom shape (any of these adds a case named 'custom'; unset ones come from 'seed')\n"
        "  --B N --S N --hq N --hkv N --D N\n"
        "  --lengths full|random   every sequence S long, or uniform in [1, S]\n"
        "  --block N         KV positions per online-softmax block, for every case  [256]\n"
        "  --split N         split-KV chunk in positions; 0 = library's choice  [0]\n"
        "\n"
        "How to time\n"
        "  --reps N          timed calls per kernel and configuration, after warm-up  [10]\n"
        "  --ref-reps N      timed calls of ra_reference_gqa (at most --reps); 0 skips it\n"
        "                    [quick: 1; full: 3]\n"
        "  --no-ref          the same as --ref-reps 0 (no speedup and no error column)\n"
        "  --warmup N        untimed calls before timing (they give rel_err), >= 1  [2]\n"
        "  --hot             do not flush the caches between calls\n"
        "  --thp             ask for transparent huge pages on K/V and the bandwidth arrays\n"
        "  --seed N          data generator seed  [42]\n"
        "\n"
        "Output\n"
        "  --json PATH       also write every figure as JSON to PATH\n"
        "  --version         print the library version and exit\n"
        "  --help            print this help and exit\n"
        "\n"
        "Named workloads (random lengths are drawn from --seed; q, K, V uniform in [-1, 1),\n"
        "scale 1/sqrt(D)):\n");
    for (int i = 0; i < bench_n_named_cases; i++) {
        const bench_shape *s = &bench_named_cases[i];
        fprintf(f, "  %-6s B=%-3lld S=%-6lld Hq=%-3lld Hkv=%-2lld D=%-4lld lengths=%-15s %s\n",
                s->name, (long long)s->B, (long long)s->S, (long long)s->Hq, (long long)s->Hkv,
                (long long)s->D, bench_lengths_name(s->lengths), s->note);
    }
    fprintf(f,
        "\n"
        "Columns: median and min ms per call; GB/s = bytes of K and V for sum(lengths) tokens\n"
        "per median call; stream = the same-run two-array read bandwidth with the same threads;\n"
        "%%bw = GB/s / stream; ref_ms and speedup = ra_reference_gqa on a strided view of the\n"
        "same contiguous K/V (also for paged rows); rel_err = max |o/l - o_ref| / max |o_ref|;\n"
        "with --paged, page = the page size (contig: contiguous) and vs_contig = median time /\n"
        "the contiguous row's (same kernel, same rounds); with modifiers, modifiers = what the\n"
        "row ran with (- plain, e.g. cap30, win4096+4 for 4 sink positions, sinks, alibi) and\n"
        "vs_plain = median time / the plain row's (same layout and kernel); a windowed row's\n"
        "bytes count only the positions it reads, and modified rows have no reference\n"
        "columns (the reference computes no modifiers); i8/fp8 rows hold the same values\n"
        "quantized by ra_quantize with one f32 scale per position and KV head, their bytes\n"
        "count codes and scales, and they have no reference columns (the reference takes no\n"
        "quantized K/V): their rel_err compares with ra_ragged_gqa on the dequantized values\n"
        "(code * scale) in f32; flags = T when the median call took more than %.2fx the\n"
        "fastest, S when the fastest bandwidth pass was more than %.2fx the slowest (both:\n"
        "the machine was busy), %% when %%bw is above 100%%; the warnings after the tables\n"
        "explain them. The tables are printed once every row is measured; progress goes to\n"
        "stderr.\n"
        "\n"
        "Memory: each page size of --paged builds its own pool (the K/V bytes of sum(lengths),\n"
        "rounded up to whole pages), filled directly from the generator, and the contiguous\n"
        "cache is kept beside the pools when 0 is listed or the reference runs: with --paged\n"
        "0,16,256 case a or b in f32 holds up to 3 x 256 MiB of K/V.\n",
        BENCH_TIME_SPREAD_LIMIT, BENCH_STREAM_SPREAD_LIMIT);
}

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": error: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see " PROG " --help)\n");
    return -1;
}

static int parse_ll(const char *flag, const char *s, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return fail("%s takes an integer in [%lld, %lld], not '%s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out)
{
    long long v = 0;
    if (parse_ll(flag, s, lo, hi, &v))
        return -1;
    *out = (int)v;
    return 0;
}

const char *bench_dtype_name(ra_dtype t)
{
    switch (t) {
    case RA_DTYPE_F32: return "f32";
    case RA_DTYPE_F16: return "f16";
    case RA_DTYPE_BF16: return "bf16";
    case RA_DTYPE_I32: return "i32";
    case RA_DTYPE_I8: return "i8";
    case RA_DTYPE_FP8_E4M3: return "fp8_e4m3";
    case RA_DTYPE_FP8_E5M2: return "fp8_e5m2";
    }
    return "?";
}

/* --dtype's names: the dtypes' own, and short aliases of the fp8 ones. */
static const struct {
    const char *name;
    ra_dtype dtype;
} k_kv_names[] = {{"f32", RA_DTYPE_F32},          {"bf16", RA_DTYPE_BF16},
                  {"f16", RA_DTYPE_F16},          {"i8", RA_DTYPE_I8},
                  {"fp8_e4m3", RA_DTYPE_FP8_E4M3}, {"e4m3", RA_DTYPE_FP8_E4M3},
                  {"fp8", RA_DTYPE_FP8_E4M3},      {"fp8_e5m2", RA_DTYPE_FP8_E5M2},
                  {"e5m2", RA_DTYPE_FP8_E5M2}};

static int parse_kv_dtype(const char *s, ra_dtype *out)
{
    for (size_t i = 0; i < sizeof k_kv_names / sizeof k_kv_names[0]; i++)
        if (strcmp(s, k_kv_names[i].name) == 0) {
            *out = k_kv_names[i].dtype;
            return 0;
        }
    return -1;
}

ra_kernel bench_kernel_for_dtype(ra_kernel resolved, ra_dtype kv_dtype)
{
    /* AVX2 has no quantized steps; NEON has i8 but no fp8 ones */
    if (resolved == RA_KERNEL_AVX2 && bench_dtype_quantized(kv_dtype))
        return RA_KERNEL_PORTABLE;
    if (resolved == RA_KERNEL_NEON && bench_dtype_quantized(kv_dtype) && kv_dtype != RA_DTYPE_I8)
        return RA_KERNEL_PORTABLE;
    return resolved;
}

static int parse_float_dtype(const char *s, ra_dtype *out)
{
    const ra_dtype all[3] = {RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, bench_dtype_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return -1;
}

const char *bench_kernel_name(ra_kernel k)
{
    return k == RA_KERNEL_AUTO ? "auto" : ra_kernel_name(k);
}

static int parse_kernel(const char *s, ra_kernel *out)
{
    const ra_kernel all[6] = {RA_KERNEL_AUTO, RA_KERNEL_BLAS, RA_KERNEL_PORTABLE,
                              RA_KERNEL_AVX2, RA_KERNEL_AVX512, RA_KERNEL_NEON};
    for (int i = 0; i < 6; i++)
        if (strcmp(s, bench_kernel_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return -1;
}

/* Calls item(piece) for each comma-separated piece of list (copied, so list stays intact). */
typedef int (*item_fn)(bench_config *cfg, const char *flag, const char *piece);

static int each_item(bench_config *cfg, const char *flag, const char *list, item_fn item)
{
    char buf[512];
    if (strlen(list) >= sizeof buf || list[0] == '\0')
        return fail("%s takes a non-empty comma list, not '%s'", flag, list);
    strcpy(buf, list);
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save))
        if (item(cfg, flag, p))
            return -1;
    return 0;
}

static int add_case(bench_config *cfg, const char *flag, const char *name)
{
    if (strcmp(name, "all") == 0) {
        for (int i = 0; i < bench_n_preset_cases; i++)
            if (add_case(cfg, flag, bench_named_cases[i].name))
                return -1;
        return 0;
    }
    const bench_shape *s = bench_find_case(name);
    if (!s)
        return fail("%s: no workload named '%s' (named: seed, a, b, c, d, w, all)", flag, name);
    if (cfg->n_cases >= BENCH_MAX_LIST)
        return fail("%s: too many cases (the limit is 64)", flag);
    cfg->cases[cfg->n_cases++] = *s;
    return 0;
}

static int add_dtype(bench_config *cfg, const char *flag, const char *name)
{
    if (strcmp(name, "all") == 0)
        return add_dtype(cfg, flag, "f32") || add_dtype(cfg, flag, "bf16") ||
               add_dtype(cfg, flag, "f16");
    ra_dtype t;
    if (parse_kv_dtype(name, &t))
        return fail("%s: unknown dtype '%s' (f32, bf16, f16, i8, fp8_e4m3, fp8_e5m2 or all)",
                    flag, name);
    for (int i = 0; i < cfg->n_kv_dtypes; i++)
        if (cfg->kv_dtypes[i] == t)
            return 0;
    cfg->kv_dtypes[cfg->n_kv_dtypes++] = t;
    return 0;
}

static int add_threads(bench_config *cfg, const char *flag, const char *s)
{
    long long v = 0;
    if (parse_ll(flag, s, 1, 1024, &v))
        return -1;
    if (cfg->n_threads >= BENCH_MAX_LIST)
        return fail("%s: too many thread counts (the limit is 64)", flag);
    cfg->threads[cfg->n_threads++] = (int)v;
    return 0;
}

static int add_kernel(bench_config *cfg, const char *flag, const char *name)
{
    ra_kernel k;
    if (parse_kernel(name, &k))
        return fail("%s: unknown kernel '%s' (auto, blas, portable, avx2 or avx512)", flag, name);
    for (int i = 0; i < cfg->n_kernels; i++)
        if (cfg->kernels[i] == k)
            return 0;
    cfg->kernels[cfg->n_kernels++] = k;
    return 0;
}

/* Keeps the page sizes sorted (contiguous first) and without repeats. */
static int add_page_size(bench_config *cfg, const char *flag, const char *s)
{
    long long v = 0;
    if (parse_ll(flag, s, 0, BENCH_MAX_PAGE_SIZE, &v))
        return -1;
    int i = 0;
    while (i < cfg->n_page_sizes && cfg->page_sizes[i] < v)
        i++;
    if (i < cfg->n_page_sizes && cfg->page_sizes[i] == v)
        return 0;
    if (cfg->n_page_sizes >= BENCH_MAX_PAGED)
        return fail("%s: too many page sizes (the limit is %d)", flag, BENCH_MAX_PAGED);
    memmove(&cfg->page_sizes[i + 1], &cfg->page_sizes[i],
            (size_t)(cfg->n_page_sizes - i) * sizeof cfg->page_sizes[0]);
    cfg->page_sizes[i] = v;
    cfg->n_page_sizes++;
    cfg->paged = true;
    return 0;
}

/* A kernel asked for by name must be the one that runs every K/V dtype of the run, or its rows
 * would time another kernel under its name. */
static int check_kernel_dtypes(const bench_config *cfg, ra_kernel k)
{
    for (int d = 0; d < cfg->n_kv_dtypes && k != RA_KERNEL_AUTO; d++) {
        const ra_kernel runs = bench_kernel_for_dtype(k, cfg->kv_dtypes[d]);
        if (runs != k)
            return fail("--kernel %s has no %s steps: the library runs those calls on the %s "
                        "kernel (ask for --kernel %s, or auto)", bench_kernel_name(k),
                        bench_dtype_name(cfg->kv_dtypes[d]), bench_kernel_name(runs),
                        bench_kernel_name(runs));
    }
    return 0;
}

/* Every kernel asked for must be able to run here; say so before any work starts. */
static int check_kernels(const bench_config *cfg)
{
    for (int i = 0; i < cfg->n_kernels; i++) {
        ra_options *o = NULL;
        if (ra_options_create(&o) != RA_OK)
            return fail("cannot create options: %s", ra_last_error());
        ra_status st = ra_options_set_kernel(o, cfg->kernels[i]);
        ra_options_destroy(o);
        if (st != RA_OK)
            return fail("--kernel %s cannot run here: %s", bench_kernel_name(cfg->kernels[i]),
                        ra_last_error());
        if (check_kernel_dtypes(cfg, cfg->kernels[i]))
            return -1;
    }
    return 0;
}

/* The custom shape's flags, collected before the case is built. */
typedef struct custom_flags {
    bool any;
    bench_shape shape;
} custom_flags;

/* Returns 1 when flag is not a dimension flag. */
static int custom_dim(custom_flags *c, const char *flag, const char *val)
{
    bench_shape *s = &c->shape;
    int64_t *dim = !strcmp(flag, "--B")     ? &s->B
                   : !strcmp(flag, "--S")   ? &s->S
                   : !strcmp(flag, "--hq")  ? &s->Hq
                   : !strcmp(flag, "--hkv") ? &s->Hkv
                   : !strcmp(flag, "--D")   ? &s->D
                                            : NULL;
    if (!dim)
        return 1;
    long long v = 0;
    if (parse_ll(flag, val, 1, INT32_MAX, &v))
        return -1;
    *dim = v;
    c->any = true;
    return 0;
}

static int finish_custom(bench_config *cfg, custom_flags *c)
{
    bench_shape *s = &c->shape;
    if (s->Hq % s->Hkv != 0)
        return fail("--hq %lld is not a multiple of --hkv %lld", (long long)s->Hq,
                    (long long)s->Hkv);
    /* K/V must fit comfortably in memory: a typo in --S should not start swapping */
    double kv_gib = (double)s->B * (double)s->S * (double)s->Hkv * (double)s->D * 8.0 /
                    1073741824.0;
    if (kv_gib > 16.0)
        return fail("the custom shape's f32 K/V would take %.1f GiB (limit 16)", kv_gib);
    if (cfg->n_cases >= BENCH_MAX_LIST)
        return fail("too many cases (the limit is 64)");
    cfg->cases[cfg->n_cases++] = *s;
    return 0;
}

static void preset(bench_config *cfg, bool full)
{
    int nproc = omp_get_num_procs();
    if (cfg->n_cases == 0)
        add_case(cfg, "--case", "all");
    if (cfg->n_kv_dtypes == 0)
        add_dtype(cfg, "--dtype", "all");
    if (cfg->n_threads == 0) {
        if (full)
            for (int t = 1; t < nproc && cfg->n_threads < BENCH_MAX_LIST - 1; t *= 2)
                cfg->threads[cfg->n_threads++] = t;
        cfg->threads[cfg->n_threads++] = nproc;
    }
    if (cfg->n_kernels == 0)
        cfg->kernels[cfg->n_kernels++] = RA_KERNEL_AUTO;
    if (cfg->n_page_sizes == 0)
        cfg->page_sizes[cfg->n_page_sizes++] = 0;
    if (cfg->reps == 0)
        cfg->reps = full ? 20 : 10;
    if (cfg->ref_reps < 0)
        cfg->ref_reps = full ? 3 : 1;
    if (cfg->ref_reps > cfg->reps) /* reference calls ride along the timed rounds */
        cfg->ref_reps = cfg->reps;
}

/* Flags that take a value; the value may follow as the next argument or after '='. */
static const char *const k_valued[] = {"--case", "--dtype", "--qdtype", "--threads", "--kernel",
                                       "--reps", "--ref-reps", "--warmup", "--seed", "--json",
                                       "--B", "--S", "--hq", "--hkv", "--D", "--lengths",
                                       "--block", "--split", "--paged", "--softcap", "--window"};

static bool takes_value(const char *flag)
{
    for (size_t i = 0; i < sizeof k_valued / sizeof k_valued[0]; i++)
        if (strcmp(flag, k_valued[i]) == 0)
            return true;
    return false;
}

/* --softcap CAP: a finite CAP > 0 that stays so as a float (0 would mean no soft-cap). */
static int parse_softcap(const char *s, float *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0.0) || !isfinite((float)v) ||
        (float)v == 0.0f)
        return fail("--softcap takes a finite number > 0, not '%s'", s);
    *out = (float)v;
    return 0;
}

/* --window W[:N]: W >= 1 positions, N >= 0 sink positions. */
static int parse_window(const char *s, bench_mods *m)
{
    char w[64];
    const char *colon = strchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    if (n >= sizeof w)
        return fail("--window takes W or W:N, not '%s'", s);
    memcpy(w, s, n);
    w[n] = '\0';
    long long window = 0, sinks = 0;
    if (parse_ll("--window", w, 1, INT64_MAX, &window) ||
        (colon && parse_ll("--window's sink positions", colon + 1, 0, INT64_MAX, &sinks)))
        return -1;
    m->window = window;
    m->sink_positions = sinks;
    return 0;
}

static int apply(bench_config *cfg, custom_flags *custom, const char *flag, const char *val)
{
    long long v = 0;
    int r = custom_dim(custom, flag, val);
    if (r <= 0)
        return r;
    if (!strcmp(flag, "--case"))
        return each_item(cfg, flag, val, add_case);
    if (!strcmp(flag, "--dtype"))
        return each_item(cfg, flag, val, add_dtype);
    if (!strcmp(flag, "--threads"))
        return each_item(cfg, flag, val, add_threads);
    if (!strcmp(flag, "--kernel"))
        return each_item(cfg, flag, val, add_kernel);
    if (!strcmp(flag, "--paged"))
        return each_item(cfg, flag, val, add_page_size);
    if (!strcmp(flag, "--softcap"))
        return parse_softcap(val, &cfg->mods.softcap);
    if (!strcmp(flag, "--window"))
        return parse_window(val, &cfg->mods);
    if (!strcmp(flag, "--qdtype"))
        return parse_float_dtype(val, &cfg->q_dtype)
                   ? fail("--qdtype: unknown dtype '%s' (f32, bf16 or f16)", val)
                   : 0;
    if (!strcmp(flag, "--lengths")) {
        custom->any = true;
        if (!strcmp(val, "full"))
            custom->shape.lengths = BENCH_LEN_FULL;
        else if (!strcmp(val, "random"))
            custom->shape.lengths = BENCH_LEN_RANDOM;
        else
            return fail("--lengths takes full or random, not '%s'", val);
        return 0;
    }
    if (!strcmp(flag, "--json")) {
        cfg->json_path = val;
        return 0;
    }
    if (!strcmp(flag, "--reps"))
        return parse_int(flag, val, 1, 1000000, &cfg->reps);
    if (!strcmp(flag, "--ref-reps"))
        return parse_int(flag, val, 0, 1000000, &cfg->ref_reps);
    if (!strcmp(flag, "--warmup"))
        return parse_int(flag, val, 1, 1000, &cfg->warmup);
    if (!strcmp(flag, "--block"))
        return parse_ll(flag, val, 1, INT32_MAX, &v) ? -1 : (cfg->block_size = v, 0);
    if (!strcmp(flag, "--split"))
        return parse_ll(flag, val, 0, INT32_MAX, &v) ? -1 : (cfg->split_tokens = v, 0);
    if (!strcmp(flag, "--seed"))
        return parse_ll(flag, val, 0, LLONG_MAX, &v) ? -1 : (cfg->seed = (uint64_t)v, 0);
    return fail("unknown option '%s'", flag);
}

const char *bench_run_description(const bench_config *cfg, char *buf, size_t size)
{
    if (!cfg->custom)
        snprintf(buf, size, "%s preset", cfg->quick ? "quick" : "full");
    else
        snprintf(buf, size, "custom run: %s (the rest from the %s preset)", cfg->args,
                 cfg->quick ? "quick" : "full");
    return buf;
}

const char *bench_preset_name(const bench_config *cfg)
{
    return cfg->custom ? "custom" : cfg->quick ? "quick" : "full";
}

/* Appends the command line's flags to cfg->args, ending in "..." when they do not fit. */
static void record_args(bench_config *cfg, int argc, char **argv)
{
    size_t n = 0, cap = sizeof cfg->args;
    cfg->args[0] = '\0';
    for (int i = 1; i < argc; i++) {
        int w = snprintf(cfg->args + n, cap - n, "%s%s", i > 1 ? " " : "", argv[i]);
        if (w < 0 || (size_t)w >= cap - n) {
            memcpy(cfg->args + cap - 4, "...", 4);
            return;
        }
        n += (size_t)w;
    }
}

int bench_parse_args(int argc, char **argv, bench_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->q_dtype = RA_DTYPE_F32;
    cfg->ref_reps = -1; /* preset decides */
    cfg->warmup = 2;
    cfg->seed = 42;
    custom_flags custom = {false, *bench_find_case("seed")};
    strcpy(custom.shape.name, "custom");
    custom.shape.note = "custom shape";
    bool quick = false, full = false;

    for (int i = 1; i < argc; i++) {
        char flag[64];
        const char *arg = argv[i], *val = NULL, *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (flen >= sizeof flag)
            return fail("unknown option '%s'", arg);
        memcpy(flag, arg, flen);
        flag[flen] = '\0';
        if (!strcmp(flag, "--help") || !strcmp(flag, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(flag, "--version")) {
            printf(PROG " (libraggedattn %s)\n", ra_version_string());
            return 1;
        }
        if (takes_value(flag)) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return fail("%s needs a value", flag);
            if (apply(cfg, &custom, flag, val))
                return -1;
            cfg->custom |= strcmp(flag, "--json") != 0; /* where the JSON goes changes nothing */
            continue;
        }
        if (eq)
            return fail("%s takes no value ('%s')", flag, arg);
        if (strcmp(flag, "--quick") && strcmp(flag, "--full"))
            cfg->custom = true;
        if (!strcmp(flag, "--quick"))
            quick = true;
        else if (!strcmp(flag, "--full"))
            full = true;
        else if (!strcmp(flag, "--hot"))
            cfg->hot = true;
        else if (!strcmp(flag, "--thp"))
            cfg->thp = true;
        else if (!strcmp(flag, "--no-ref"))
            cfg->ref_reps = 0;
        else if (!strcmp(flag, "--sinks"))
            cfg->mods.sinks = true;
        else if (!strcmp(flag, "--alibi"))
            cfg->mods.alibi = true;
        else
            return fail("unknown option '%s'", arg);
    }
    if (quick && full)
        return fail("--quick and --full exclude each other");
    if (custom.any && finish_custom(cfg, &custom))
        return -1;
    cfg->quick = !full;
    record_args(cfg, argc, argv);
    preset(cfg, full);
    return check_kernels(cfg);
}
