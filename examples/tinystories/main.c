/* raggedattn-tinystories: greedy text generation with a Llama-2 TinyStories model, where each
 * layer's attention for the whole batch is one ra_ragged_gqa call (ra_paged_gqa with a paged
 * KV cache; their _multi forms when a step runs several prompt tokens of a sequence). stdout
 * gets only the text; speed and diagnostics go to stderr. */
#include "datadir.h"
#include "generate.h"
#include "model.h"
#include "tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <raggedattn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: raggedattn-tinystories [options]\n"
            "  -m, --model PATH        checkpoint (default %s/stories260K.bin)\n"
            "  -z, --tokenizer PATH    tokenizer (default %s/tok512.bin)\n"
            "  -i, --prompt TEXT       a prompt; repeat for a batch (default: one empty prompt)\n"
            "  -n, --steps N           positions per sequence, BOS and prompt included\n"
            "                          (llama2.c's -n; default 256, 0 = the model's seq_len)\n"
            "  -l, --layout L          KV cache layout: bsth = [B,seq,kv_heads,head_size]\n"
            "                          (default), bhst = [B,kv_heads,seq,head_size] (a view),\n"
            "                          or paged: per layer a pool of pages\n"
            "                          [pages,page_size,kv_heads,head_size] shared by the\n"
            "                          batch, one page table per sequence (ra_paged_gqa)\n"
            "  -P, --page-size N       paged: positions per page (default 16)\n"
            "  -p, --pool-pages N      paged: pages in each layer's pool (default: the most\n"
            "                          the sequences hold at once if none ends early); a run\n"
            "                          that needs more fails\n"
            "      --kv DTYPE          KV cache dtype: f32 (default), or i8, e4m3, e5m2: each\n"
            "                          row quantized by ra_quantize as it is stored, one scale\n"
            "                          per position and KV head; stderr's last line counts\n"
            "                          the tokens that differ from the f32 cache's text\n"
            "  -T, --threads N         OpenMP threads for the attention calls and the matrix\n"
            "                          products (default 1: this model is so small that a\n"
            "                          parallel region costs more than it saves on a busy\n"
            "                          machine; 0 = the OpenMP default)\n"
            "  -t, --temperature T     sampling temperature; only 0 (greedy) is supported\n"
            "  -s, --stagger N         sequence b joins N*b steps late (default 0)\n"
            "  -k, --kernel K          auto (default), blas, portable, avx2 or avx512\n"
            "      --prefill MODE      how a prompt runs: all (default): its tokens go through\n"
            "                          the model together, one ra_ragged_gqa_multi (or\n"
            "                          ra_paged_gqa_multi) per layer; token: one position\n"
            "                          per step, as decoding\n"
            "      --chunk N           prefill in chunks of N prompt tokens, each chunk one\n"
            "                          multi-token call per layer (not with --prefill token)\n"
            "      --verify K          then re-run each prompt and its generated tokens K at a\n"
            "                          time through a fresh cache (speculative decoding's\n"
            "                          verification) and fail unless the argmax at every\n"
            "                          position equals the generated token\n"
            "  -c, --check-attention   compare every attention call with a double-precision\n"
            "                          oracle and fail on an error above 1e-5 of max|o|\n"
            "      --check-logits      also decode token by token and fail unless every\n"
            "                          position's logits are within 1e-5 (relative to the\n"
            "                          position's max|logit|) of this run's\n"
            "  -h, --help              this text\n"
            "Each sequence's text goes to stdout followed by a newline, in prompt order.\n"
            "The default model and tokenizer are the ones installed with this program.\n",
            ts_data_dir(), ts_data_dir());
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "tinystories: %s needs an integer in %d..%d, got '%s'\n", opt, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

typedef struct ts_cli {
    const char *model, *tokenizer;
    const char **prompts;
    int n_prompts, steps;
    int verify;       /* --verify K; 0 = off */
    int check_logits; /* --check-logits */
    ts_run_config run;
} ts_cli;

static int parse_kernel(const char *s, ra_kernel *k)
{
    static const struct { const char *name; ra_kernel k; } table[] = {
        {"auto", RA_KERNEL_AUTO},         {"blas", RA_KERNEL_BLAS}, {"portable", RA_KERNEL_PORTABLE},
        {"avx2", RA_KERNEL_AVX2},         {"avx512", RA_KERNEL_AVX512}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(s, table[i].name) == 0) {
            *k = table[i].k;
            return 0;
        }
    fprintf(stderr, "tinystories: --kernel must be auto, blas, portable, avx2 or avx512, got '%s'\n",
            s);
    return -1;
}

static const struct {
    const char *name;
    ra_dtype dt;
} kv_dtypes[] = {{"f32", RA_DTYPE_F32},
                 {"i8", RA_DTYPE_I8},
                 {"e4m3", RA_DTYPE_FP8_E4M3},
                 {"e5m2", RA_DTYPE_FP8_E5M2}};

static int parse_kv(const char *s, ra_dtype *dt)
{
    for (size_t i = 0; i < sizeof kv_dtypes / sizeof kv_dtypes[0]; i++)
        if (strcmp(s, kv_dtypes[i].name) == 0) {
            *dt = kv_dtypes[i].dt;
            return 0;
        }
    fprintf(stderr, "tinystories: --kv must be f32, i8, e4m3 or e5m2, got '%s'\n", s);
    return -1;
}

static const char *kv_name(ra_dtype dt)
{
    for (size_t i = 0; i < sizeof kv_dtypes / sizeof kv_dtypes[0]; i++)
        if (kv_dtypes[i].dt == dt)
            return kv_dtypes[i].name;
    return "?";
}

/* Returns 0 to run, 1 after --help, -1 on a bad command line. */
static int parse_args(int argc, char **argv, ts_cli *c)
{
    int paging_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define IS(short_, long_) (strcmp(a, short_) == 0 || strcmp(a, long_) == 0)
        if (IS("-h", "--help")) {
            usage(stdout);
            return 1;
        }
        if (IS("-c", "--check-attention")) {
            c->run.check = 1;
            continue;
        }
        if (strcmp(a, "--check-logits") == 0) {
            c->check_logits = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tinystories: unknown option or missing value: '%s'\n", a);
            return -1;
        }
        const char *val = argv[++i];
        if (IS("-m", "--model")) {
            c->model = val;
        } else if (IS("-z", "--tokenizer")) {
            c->tokenizer = val;
        } else if (IS("-i", "--prompt")) {
            c->prompts[c->n_prompts++] = val;
        } else if (IS("-n", "--steps")) {
            if (parse_int(a, val, 0, INT_MAX, &c->steps))
                return -1;
        } else if (IS("-T", "--threads")) {
            if (parse_int(a, val, 0, 4096, &c->run.threads))
                return -1;
        } else if (IS("-s", "--stagger")) {
            if (parse_int(a, val, 0, 1 << 20, &c->run.stagger))
                return -1;
        } else if (IS("-l", "--layout")) {
            if (strcmp(val, "bsth") == 0) {
                c->run.layout = TS_LAYOUT_BSTH;
            } else if (strcmp(val, "bhst") == 0) {
                c->run.layout = TS_LAYOUT_BHST;
            } else if (strcmp(val, "paged") == 0) {
                c->run.layout = TS_LAYOUT_PAGED;
            } else {
                fprintf(stderr, "tinystories: --layout must be bsth, bhst or paged, got '%s'\n",
                        val);
                return -1;
            }
        } else if (IS("-P", "--page-size")) {
            if (parse_int(a, val, 1, 1 << 20, &c->run.page_size))
                return -1;
            paging_given = 1;
        } else if (IS("-p", "--pool-pages")) {
            if (parse_int(a, val, 1, 1 << 24, &c->run.pool_pages))
                return -1;
            paging_given = 1;
        } else if (IS("-t", "--temperature")) {
            char *end;
            double t = strtod(val, &end);
            if (end == val || *end != '\0' || t != 0.0) {
                fprintf(stderr,
                        "tinystories: only --temperature 0 (greedy decoding) is supported, "
                        "got '%s'\n",
                        val);
                return -1;
            }
        } else if (IS("-k", "--kernel")) {
            if (parse_kernel(val, &c->run.kernel))
                return -1;
        } else if (strcmp(a, "--kv") == 0) {
            if (parse_kv(val, &c->run.kv_dtype))
                return -1;
        } else if (strcmp(a, "--prefill") == 0) {
            if (strcmp(val, "all") != 0 && strcmp(val, "token") != 0) {
                fprintf(stderr, "tinystories: --prefill must be all or token, got '%s'\n", val);
                return -1;
            }
            c->run.prefill = strcmp(val, "all") == 0;
        } else if (strcmp(a, "--chunk") == 0) {
            if (parse_int(a, val, 1, 1 << 20, &c->run.chunk))
                return -1;
        } else if (strcmp(a, "--verify") == 0) {
            if (parse_int(a, val, 1, 1 << 20, &c->verify))
                return -1;
        } else {
            fprintf(stderr, "tinystories: unknown option '%s' (try --help)\n", a);
            return -1;
        }
#undef IS
    }
    if (c->run.chunk > 0 && !c->run.prefill) {
        fprintf(stderr, "tinystories: --chunk needs --prefill all\n");
        return -1;
    }
    if (paging_given && c->run.layout != TS_LAYOUT_PAGED) {
        fprintf(stderr, "tinystories: --page-size and --pool-pages need --layout paged\n");
        return -1;
    }
    /* the oracle and the contiguous copy read the f32 rows, which a quantized cache lacks */
    if (c->run.check && c->run.kv_dtype != RA_DTYPE_F32) {
        fprintf(stderr, "tinystories: --check-attention needs --kv f32\n");
        return -1;
    }
    /* a quantized run already has a reference run: the f32 cache's */
    if (c->check_logits && c->run.kv_dtype != RA_DTYPE_F32) {
        fprintf(stderr, "tinystories: --check-logits needs --kv f32\n");
        return -1;
    }
    c->run.keep_logits = c->check_logits;
    return 0;
}

/* Runs cfg, printing its text and recording its tokens in got. With a quantized cache it
 * first runs the f32 cache silently, and with check_logits the token-by-token path, recording
 * that run in ref. */
static int generate(const ts_model *m, const ts_tokenizer *tok, const ts_run_config *cfg,
                    int check_logits, ts_run_stats *stats, ts_tokens *ref, ts_tokens *got)
{
    if (cfg->kv_dtype != RA_DTYPE_F32 || check_logits) {
        ts_run_config r = *cfg;
        r.kv_dtype = RA_DTYPE_F32;
        r.prefill = check_logits ? 0 : cfg->prefill;
        if (ts_generate(m, tok, &r, NULL, stats, ref) != 0)
            return -1;
    }
    return ts_generate(m, tok, cfg, stdout, stats, got);
}

/* --verify: re-checks got k tokens at a time; the stderr line says how many and whether all
 * matched. Returns 0 when they did. */
static int verify(const ts_model *m, const ts_tokenizer *tok, const ts_run_config *cfg,
                  const ts_tokens *got, int k)
{
    ts_run_stats v;
    if (ts_verify(m, tok, cfg, got, k, &v) != 0)
        return -1;
    fprintf(stderr, "tinystories: verify %d: %ld generated tokens re-checked %d at a time in "
            "%ld batch steps, %ld differ", k, v.verified, k, v.batch_steps, v.mismatched);
    if (v.mismatched == 0) {
        fprintf(stderr, ": all match\n");
        return 0;
    }
    fprintf(stderr, "; the first is token %d of sequence %d: generated %d, re-check's argmax %d\n",
            v.bad_index, v.bad_seq, v.bad_token, v.bad_argmax);
    return -1;
}

/* How cfg runs the prompts, for the reports. */
static const char *prefill_name(const ts_run_config *cfg, char *buf, size_t size)
{
    if (!cfg->prefill)
        return "token by token";
    if (cfg->chunk == 0)
        return "prefill";
    snprintf(buf, size, "prefill in chunks of %d", cfg->chunk);
    return buf;
}

/* The largest |x - y| of n logits relative to max|y|. */
static double relative_difference(const float *x, const float *y, int n)
{
    double err = 0.0, ymax = 0.0;
    for (int i = 0; i < n; i++) {
        const double e = fabs((double)x[i] - y[i]), a = fabs((double)y[i]);
        err = e > err ? e : err;
        ymax = a > ymax ? a : ymax;
    }
    return ymax > 0.0 ? err / ymax : err;
}

/* --check-logits: got's logits against ref's (token by token) at every position both computed
 * with the same tokens so far, i.e. up to the first generated token that differs. */
static int check_logits(const ts_run_config *cfg, const ts_tokens *ref, const ts_tokens *got)
{
    double worst = 0.0;
    long positions = 0;
    for (int b = 0; b < ref->B; b++) {
        int same = 0; /* generated tokens the two runs share */
        while (same < ref->n[b] && same < got->n[b] && ref->ids[b][same] == got->ids[b][same])
            same++;
        /* position t's input is a prompt token or generated token t - n_prompt */
        const int n_prompt = ref->n_logits[b] - ref->n[b] + 1;
        int n = ref->n_logits[b] < got->n_logits[b] ? ref->n_logits[b] : got->n_logits[b];
        n = n_prompt + same < n ? n_prompt + same : n;
        for (int t = 0; t < n; t++, positions++) {
            const size_t at = (size_t)t * (size_t)ref->vocab;
            const double d = relative_difference(got->logits[b] + at, ref->logits[b] + at,
                                                 ref->vocab);
            worst = d > worst ? d : worst;
        }
    }
    const int ok = worst <= 1e-5;
    char buf[64];
    fprintf(stderr, "tinystories: logits check: %s against token by token: max relative "
            "difference %.3g over %ld positions (limit 1e-5): %s\n",
            prefill_name(cfg, buf, sizeof buf), worst, positions, ok ? "passed" : "FAILED");
    return ok ? 0 : -1;
}

/* The last stderr line of a quantized run: how many generated tokens differ from the f32
 * cache's (position by position; a token one run has and the other lacks differs), and the
 * first that does. */
static void report_kv_difference(ra_dtype kv, const ts_tokens *ref, const ts_tokens *got)
{
    long total = 0, differ = 0;
    int first_b = -1, first_i = -1;
    for (int b = 0; b < ref->B; b++) {
        const int n = ref->n[b] > got->n[b] ? ref->n[b] : got->n[b];
        for (int i = 0; i < n; i++) {
            total++;
            if (i < ref->n[b] && i < got->n[b] && ref->ids[b][i] == got->ids[b][i])
                continue;
            differ++;
            if (first_b < 0)
                first_b = b, first_i = i;
        }
    }
    fprintf(stderr, "tinystories: kv %s: %ld of %ld generated tokens differ from the f32 "
            "cache's text", kv_name(kv), differ, total);
    if (first_b >= 0)
        fprintf(stderr, "; the first is token %d of sequence %d\n", first_i, first_b);
    else
        fprintf(stderr, "\n");
}

static const char *layout_name(ts_layout l)
{
    return l == TS_LAYOUT_BSTH ? "bsth" : l == TS_LAYOUT_BHST ? "bhst" : "paged";
}

int main(int argc, char **argv)
{
    ts_cli cli = {NULL, NULL, NULL, 0, 256, 0, 0, {0}};
    cli.run.layout = TS_LAYOUT_BSTH;
    cli.run.threads = 1;
    cli.run.kernel = RA_KERNEL_AUTO;
    cli.run.kv_dtype = RA_DTYPE_F32;
    cli.run.page_size = 16;
    cli.run.prefill = 1;
    /* at most one prompt per argument pair, plus the default empty prompt */
    cli.prompts = calloc((size_t)argc / 2 + 1, sizeof *cli.prompts);
    if (!cli.prompts) {
        fprintf(stderr, "tinystories: out of memory\n");
        return 1;
    }
    int p = parse_args(argc, argv, &cli);
    if (p != 0) {
        free(cli.prompts);
        return p > 0 ? 0 : 2;
    }
    if (cli.n_prompts == 0)
        cli.prompts[cli.n_prompts++] = "";
    /* The defaults, where the program was installed (or else the configured prefix). */
    char default_model[TS_PATH_MAX], default_tok[TS_PATH_MAX];
    if (!cli.model)
        cli.model = ts_data_file(default_model, "stories260K.bin");
    if (!cli.tokenizer)
        cli.tokenizer = ts_data_file(default_tok, "tok512.bin");

    ts_model model;
    ts_tokenizer tok;
    if (ts_model_load(&model, cli.model) != 0) {
        free(cli.prompts);
        return 1;
    }
    if (ts_tokenizer_load(&tok, cli.tokenizer, model.cfg.vocab_size) != 0) {
        ts_model_free(&model);
        free(cli.prompts);
        return 1;
    }
    int rc = 0;
    if (cli.steps == 0)
        cli.steps = model.cfg.seq_len;
    if (cli.steps > model.cfg.seq_len) {
        fprintf(stderr, "tinystories: --steps %d exceeds the model's seq_len %d\n", cli.steps,
                model.cfg.seq_len);
        rc = 2;
    } else if (cli.run.page_size > model.cfg.seq_len) {
        fprintf(stderr, "tinystories: --page-size %d exceeds the model's seq_len %d\n",
                cli.run.page_size, model.cfg.seq_len);
        rc = 2;
    }
    ts_run_stats stats;
    ts_tokens ref = {0}, got = {0};
    if (rc == 0) {
        cli.run.prompts = cli.prompts;
        cli.run.n_prompts = cli.n_prompts;
        cli.run.steps = cli.steps;
        rc = generate(&model, &tok, &cli.run, cli.check_logits, &stats, &ref, &got) == 0 ? 0 : 1;
    }

    if (rc == 0) {
        ra_options *o = NULL;
        ra_kernel k = cli.run.kernel;
        if (ra_options_create(&o) == RA_OK && ra_options_set_kernel(o, k) == RA_OK)
            k = ra_kernel_resolve(o);
        ra_options_destroy(o);
        const int threads = cli.run.threads > 0 ? cli.run.threads : omp_get_max_threads();
        const double secs = stats.seconds > 0.0 ? stats.seconds : 1e-9;
        fprintf(stderr,
                "tinystories: batch %d, layout %s%s%s, kernel %s, %d thread%s: %ld tokens in "
                "%.3f s = %.1f tok/s (%ld batch steps, %.1f steps/s; attention %.0f%% of the "
                "time)\n",
                cli.n_prompts, layout_name(cli.run.layout),
                cli.run.kv_dtype == RA_DTYPE_F32 ? "" : ", kv ",
                cli.run.kv_dtype == RA_DTYPE_F32 ? "" : kv_name(cli.run.kv_dtype),
                ra_kernel_name(k), threads, threads == 1 ? "" : "s", stats.positions,
                stats.seconds, stats.positions / secs, stats.batch_steps,
                stats.batch_steps / secs, 100.0 * stats.attn_seconds / secs);
        char buf[64];
        fprintf(stderr, "tinystories: prompts (%s): %ld positions in %.3f ms, in the steps "
                "that ran them\n", prefill_name(&cli.run, buf, sizeof buf),
                stats.prompt_positions, 1e3 * stats.prompt_seconds);
        if (cli.run.layout == TS_LAYOUT_PAGED) {
            const long per_seq = (cli.steps + cli.run.page_size - 1) / cli.run.page_size;
            fprintf(stderr,
                    "tinystories: paged KV cache: a pool of %d pages of %d positions per layer "
                    "(%ld if no page were reused), peak %d pages in use, %ld page "
                    "acquisitions\n",
                    stats.pool_pages, cli.run.page_size, per_seq * cli.n_prompts,
                    stats.peak_pages, stats.acquired);
        }
        if (cli.run.check)
            fprintf(stderr, "tinystories: attention check passed, worst error %.3g of max|o|\n",
                    stats.worst_rel);
        if (cli.verify > 0 && verify(&model, &tok, &cli.run, &got, cli.verify) != 0)
            rc = 1;
        if (cli.check_logits && check_logits(&cli.run, &ref, &got) != 0)
            rc = 1;
        if (cli.run.kv_dtype != RA_DTYPE_F32)
            report_kv_difference(cli.run.kv_dtype, &ref, &got);
    }
    ts_tokens_free(&ref);
    ts_tokens_free(&got);
    ts_tokenizer_free(&tok);
    ts_model_free(&model);
    free(cli.prompts);
    return rc;
}
