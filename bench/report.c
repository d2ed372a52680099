#define _POSIX_C_SOURCE 200809L /* isatty, fileno */
#include "report.h"

#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fill.h"

void bench_cpu_model(char *buf, size_t size)
{
    /* x86 says "model name"; arm64 kernels may say "Model" or only "CPU part" */
    static const char *const keys[] = {"model name", "Model", "cpu model", "CPU part"};
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        rewind(f);
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (!colon || strncmp(line, keys[k], strlen(keys[k])) != 0)
                continue;
            char *v = colon + 1 + strspn(colon + 1, " \t");
            v[strcspn(v, "\n")] = '\0';
            snprintf(buf, size, "%s", v);
            fclose(f);
            return;
        }
    }
    fclose(f);
}

void bench_print_preamble(const bench_config *cfg, const bench_membw *mb, const char *cpu)
{
    char what[sizeof cfg->args + 64];
    printf("raggedattn-bench: libraggedattn %s, %s\n", ra_version_string(),
           bench_run_description(cfg, what, sizeof what));
    printf("CPU: %s, %d processors\n", cpu, omp_get_num_procs());
    printf("q %s, scale 1/sqrt(D); %d timed calls per row after %d warm-up, reference %d\n",
           bench_dtype_name(cfg->q_dtype), cfg->reps, cfg->warmup, cfg->ref_reps);
    printf("caches %s; huge pages %s\n",
           cfg->hot ? "hot (not flushed)" : "flushed before each call",
           cfg->thp ? "requested" : "not requested");
    printf("stream = median of %d two-array read passes over %zu MiB, interleaved with the "
           "calls\n", cfg->reps, (2 * mb->bytes_each) >> 20);
    fflush(stdout);
}

int bench_report_init(bench_report *rep, int max_rows)
{
    memset(rep, 0, sizeof *rep);
    rep->rows = malloc((size_t)(max_rows > 0 ? max_rows : 1) * sizeof *rep->rows);
    if (!rep->rows) {
        fprintf(stderr, "raggedattn-bench: error: out of memory for the report\n");
        return -1;
    }
    rep->cap = max_rows;
    return 0;
}

void bench_report_free(bench_report *rep)
{
    free(rep->rows);
    rep->rows = NULL;
}

void bench_report_case(bench_report *rep, const bench_workload *w)
{
    if (rep->n_cases >= BENCH_MAX_LIST)
        return;
    rep->cases[rep->n_cases++] =
        (bench_case_info){w->shape, w->sum_lengths, w->mods, w->visible_positions};
    rep->modified |= bench_mods_any(&w->mods);
}

void bench_report_row(bench_report *rep, const bench_workload *w, int threads,
                      const bench_result *r)
{
    if (rep->n_rows >= rep->cap || rep->n_cases == 0)
        return;
    rep->rows[rep->n_rows++] = (bench_row){rep->n_cases - 1, w->kv_dtype, threads, *r};
    bench_flag_counts_add(&rep->counts, r->flags);
    if (r->same_as_contiguous >= 0) {
        rep->paged_compared++;
        rep->paged_differ += r->same_as_contiguous == 0;
    }
}

/* Width of the modifiers column: its header, or the longest label of the run. */
static int mods_width(const bench_report *rep)
{
    int width = (int)strlen("modifiers");
    for (int c = 0; c < rep->n_cases; c++) {
        char label[96];
        int n = (int)strlen(bench_mods_label(&rep->cases[c].mods, label, sizeof label));
        width = n > width ? n : width;
    }
    return width;
}

static void print_case(const bench_report *rep, const bench_config *cfg,
                       const bench_case_info *c)
{
    const bench_shape *s = &c->shape;
    printf("\n== case %s (%s): B=%lld S=%lld Hq=%lld Hkv=%lld D=%lld, lengths %s "
           "(sum %lld of %lld), block %lld, K/V %.1f MiB in f32\n",
           s->name, s->note, (long long)s->B, (long long)s->S, (long long)s->Hq,
           (long long)s->Hkv, (long long)s->D, bench_lengths_name(s->lengths),
           (long long)c->sum_lengths, (long long)(s->B * s->S),
           (long long)(cfg->block_size > 0 ? cfg->block_size : s->block_size),
           (double)(s->B * s->S * s->Hkv * s->D) * 8.0 / 1048576.0);
    if (bench_mods_any(&c->mods)) {
        char label[96];
        printf("modifiers %s: the modified calls read %lld of the %lld positions\n",
               bench_mods_label(&c->mods, label, sizeof label), (long long)c->visible_positions,
               (long long)c->sum_lengths);
    }
    printf("%-6s %-8s %3s ", "case", "kv", "thr");
    if (cfg->paged)
        printf("%6s ", "page");
    printf("%-8s ", "kernel");
    if (rep->modified)
        printf("%-*s ", mods_width(rep), "modifiers");
    printf("%10s %10s %7s %7s %6s ", "median_ms", "min_ms", "GB/s", "stream", "%bw");
    if (cfg->paged)
        printf("%9s ", "vs_contig");
    if (rep->modified)
        printf("%8s ", "vs_plain");
    printf("%10s %8s %9s %5s\n", "ref_ms", "speedup", "rel_err", "flags");
}

static void print_row(const bench_report *rep, const bench_config *cfg,
                      const bench_case_info *c, const bench_row *row)
{
    const bench_result *r = &row->r;
    printf("%-6s %-8s %3d ", c->shape.name, bench_dtype_name(row->kv_dtype), row->threads);
    if (cfg->paged) {
        if (r->page_size == 0)
            printf("%6s ", "contig");
        else
            printf("%6lld ", (long long)r->page_size);
    }
    printf("%-8s ", r->kernel);
    if (rep->modified) {
        char label[96];
        printf("%-*s ", mods_width(rep), bench_mods_label(&r->mods, label, sizeof label));
    }
    printf("%10.3f %10.3f %7.1f %7.1f %5.1f%%", r->time.median * 1e3, r->time.min * 1e3,
           r->kv_gbs, r->stream_gbs, 100.0 * r->bw_fraction);
    if (cfg->paged) {
        if (isnan(r->vs_contiguous))
            printf(" %9s", "-");
        else
            printf(" %8.2fx", r->vs_contiguous);
    }
    if (rep->modified) {
        if (isnan(r->vs_plain))
            printf(" %8s", "-");
        else
            printf(" %7.2fx", r->vs_plain);
    }
    if (r->have_ref)
        printf(" %10.2f %7.1fx", r->ref_time.median * 1e3, r->speedup);
    else
        printf(" %10s %8s", "-", "-");
    if (r->have_err && !isnan(r->max_rel_err))
        printf(" %9.1e", r->max_rel_err);
    else
        printf(" %9s", r->have_err ? "NaN" : "-");
    char flags[4];
    printf(" %5s\n", bench_flags_str(r->flags, flags));
}

void bench_report_print(const bench_report *rep, const bench_config *cfg)
{
    for (int c = 0; c < rep->n_cases; c++) {
        print_case(rep, cfg, &rep->cases[c]);
        for (int i = 0; i < rep->n_rows; i++)
            if (rep->rows[i].case_index == c)
                print_row(rep, cfg, &rep->cases[c], &rep->rows[i]);
    }
    bench_print_flag_summary(stdout, &rep->counts, cfg->hot);
    bench_print_paged_summary(stdout, rep->paged_compared, rep->paged_differ);
    fflush(stdout);
}

void bench_print_paged_summary(FILE *out, int compared, int differ)
{
    if (differ > 0)
        fprintf(out, "\nwarning: %d of %d paged %s not bitwise the contiguous result of the "
                "same kernel (o, m\nand l of the warm-up calls); ra_paged_gqa promises the same "
                "bits.\n", differ, compared, compared == 1 ? "row is" : "rows are");
}

static bool g_status_line; /* a terminal status line is showing */

void bench_progress(double start, int i, int n, const char *what)
{
    double t = omp_get_wtime() - start;
    if (t < 2.0)
        return;
    if (isatty(fileno(stderr))) {
        fprintf(stderr, "\r\033[K[%d/%d, %.0f s] %s", i, n, t, what);
        g_status_line = true;
    } else {
        fprintf(stderr, "[%d/%d, %.0f s] %s\n", i, n, t, what);
    }
    fflush(stderr);
}

void bench_progress_end(void)
{
    if (g_status_line)
        fputs("\r\033[K", stderr);
    g_status_line = false;
    fflush(stderr);
}
