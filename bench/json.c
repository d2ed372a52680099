#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#define SCHEMA "raggedattn-bench/1"

static void str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* JSON has no NaN or infinity: a figure that was not measured is null. */
static void num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

static void key(FILE *f, const char *k)
{
    fputs(",\n      ", f);
    str(f, k);
    fputs(": ", f);
}

static void kv_int(FILE *f, const char *k, long long v)
{
    key(f, k);
    fprintf(f, "%lld", v);
}

static void kv_bool(FILE *f, const char *k, bool v)
{
    key(f, k);
    fputs(v ? "true" : "false", f);
}

static void kv_num(FILE *f, const char *k, double v)
{
    key(f, k);
    num(f, v);
}

static void kv_str(FILE *f, const char *k, const char *v)
{
    key(f, k);
    str(f, v);
}

int bench_json_open(bench_json *j, const char *path, const bench_config *cfg,
                    size_t stream_bytes, size_t flush_bytes, const char *cpu)
{
    memset(j, 0, sizeof *j);
    j->path = path;
    j->f = fopen(path, "w");
    if (!j->f) {
        fprintf(stderr, "raggedattn-bench: error: cannot write --json %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    FILE *f = j->f;
    fprintf(f, "{\n  \"schema\": \"" SCHEMA "\",\n  \"library_version\": ");
    str(f, ra_version_string());
    fprintf(f, ",\n  \"cpu_model\": ");
    str(f, cpu);
    fprintf(f, ",\n  \"nproc\": %d,\n  \"preset\": \"%s\",\n  \"args\": ",
            omp_get_num_procs(), bench_preset_name(cfg));
    str(f, cfg->args);
    fprintf(f, ",\n  \"flag_limits\": {\"time_median_over_min\": %.9g, "
               "\"stream_fastest_over_slowest\": %.9g},\n",
            BENCH_TIME_SPREAD_LIMIT, BENCH_STREAM_SPREAD_LIMIT);
    fprintf(f, "  \"settings\": {\"hot\": %s, \"thp\": %s, \"reps\": %d, \"ref_reps\": %d, "
               "\"warmup\": %d, \"seed\": %llu, \"q_dtype\": \"%s\", \"split_tokens\": %lld, "
               "\"stream_bytes\": %zu, \"flush_bytes\": %zu, \"page_sizes\": [",
            cfg->hot ? "true" : "false", cfg->thp ? "true" : "false", cfg->reps, cfg->ref_reps,
            cfg->warmup, (unsigned long long)cfg->seed, bench_dtype_name(cfg->q_dtype),
            (long long)cfg->split_tokens, stream_bytes, flush_bytes);
    for (int i = 0; i < cfg->n_page_sizes; i++)
        fprintf(f, "%s%lld", i ? ", " : "", (long long)cfg->page_sizes[i]);
    /* the flags' modifiers; a case may add its own window (each result says what it ran) */
    const bench_mods *m = &cfg->mods;
    fprintf(f, "], \"modifiers\": {\"softcap\": %.9g, \"window\": %lld, \"sink_positions\": "
               "%lld, \"sinks\": %s, \"alibi\": %s}},\n  \"results\": [",
            (double)m->softcap, (long long)m->window, (long long)m->sink_positions,
            m->sinks ? "true" : "false", m->alibi ? "true" : "false");
    return 0;
}

void bench_json_result(bench_json *j, const bench_config *cfg, const bench_workload *w,
                       int threads, const bench_result *r)
{
    FILE *f = j->f;
    const bench_shape *s = &w->shape;
    fputs(j->n_results++ ? ",\n    {" : "\n    {", f);
    fputs("\n      \"case\": ", f);
    str(f, s->name);
    kv_int(f, "B", s->B);
    kv_int(f, "S", s->S);
    kv_int(f, "Hq", s->Hq);
    kv_int(f, "Hkv", s->Hkv);
    kv_int(f, "D", s->D);
    kv_str(f, "lengths_kind", bench_lengths_name(s->lengths));
    key(f, "lengths");
    for (int64_t b = 0; b < s->B; b++)
        fprintf(f, "%s%d", b ? ", " : "[", (int)w->lengths[b]);
    fputc(']', f);
    kv_int(f, "sum_lengths", w->sum_lengths);
    kv_int(f, "block_size", cfg->block_size > 0 ? cfg->block_size : s->block_size);
    kv_num(f, "scale", w->scale);
    kv_str(f, "kv_dtype", bench_dtype_name(w->kv_dtype));
    kv_str(f, "q_dtype", bench_dtype_name(w->q_dtype));
    kv_int(f, "threads", threads);
    kv_str(f, "kernel_requested", bench_kernel_name(r->kernel_requested));
    kv_str(f, "kernel", r->kernel);
    kv_int(f, "page_size", r->page_size);
    kv_int(f, "num_pages", r->num_pages);
    kv_int(f, "calls", r->time.calls);
    kv_num(f, "time_median_s", r->time.median);
    kv_num(f, "time_min_s", r->time.min);
    char label[96];
    kv_str(f, "modifiers", bench_mods_label(&r->mods, label, sizeof label));
    kv_num(f, "softcap", r->mods.softcap);
    kv_int(f, "window", r->mods.window);
    kv_int(f, "sink_positions", r->mods.sink_positions);
    kv_bool(f, "sinks", r->mods.sinks);
    kv_bool(f, "alibi", r->mods.alibi);
    kv_int(f, "visible_positions", r->visible_positions);
    kv_num(f, "kv_bytes", r->kv_bytes);
    kv_num(f, "kv_gbs", r->kv_gbs);
    kv_num(f, "stream_gbs", r->stream_gbs);
    kv_num(f, "stream_slowest_gbs", r->stream_slowest_gbs);
    kv_num(f, "stream_fastest_gbs", r->stream_fastest_gbs);
    kv_int(f, "stream_passes", r->stream_passes);
    kv_num(f, "bw_fraction", r->bw_fraction);
    kv_int(f, "ref_calls", r->have_ref ? r->ref_time.calls : 0);
    kv_num(f, "ref_time_median_s", r->have_ref ? r->ref_time.median : NAN);
    kv_num(f, "ref_time_min_s", r->have_ref ? r->ref_time.min : NAN);
    kv_num(f, "speedup", r->speedup);
    kv_num(f, "max_rel_err", r->max_rel_err);
    /* what max_rel_err compares with: the reference, or (quantized K/V) the dequantized f32 */
    key(f, "rel_err_against");
    if (r->have_err)
        str(f, w->dequant_ref ? "dequantized_f32" : "reference");
    else
        fputs("null", f);
    kv_num(f, "time_vs_contiguous", r->vs_contiguous);
    key(f, "same_as_contiguous");
    fputs(r->same_as_contiguous < 0 ? "null" : r->same_as_contiguous ? "true" : "false", f);
    kv_num(f, "plain_time_median_s", r->plain_time_median);
    kv_num(f, "vs_plain", r->vs_plain);
    kv_bool(f, "unstable_time", r->flags.unstable_time);
    kv_bool(f, "unstable_stream", r->flags.unstable_stream);
    kv_bool(f, "unstable", bench_flags_unstable(r->flags));
    kv_bool(f, "share_over_100", r->flags.share_over_100);
    fputs("\n    }", f);
    fflush(f);
}

int bench_json_close(bench_json *j)
{
    fputs("\n  ]\n}\n", j->f);
    int bad = ferror(j->f);
    if (fclose(j->f) != 0)
        bad = 1;
    j->f = NULL;
    if (bad) {
        fprintf(stderr, "raggedattn-bench: error: writing --json %s failed\n", j->path);
        return -1;
    }
    return 0;
}

void bench_json_abandon(bench_json *j)
{
    if (!j->f)
        return;
    fclose(j->f);
    j->f = NULL;
    remove(j->path);
}
