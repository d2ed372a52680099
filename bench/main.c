/* raggedattn-bench: ra_ragged_gqa's (or, with --paged, ra_paged_gqa's) time per call, plain
 * and with score modifiers, its effective K/V bandwidth as a share of the machine's own read
 * bandwidth measured alongside, and its speed and error against the library's reference
 * path. */
#include <omp.h>
#include <stdio.h>

#include "cli.h"
#include "json.h"
#include "measure.h"
#include "membw.h"
#include "report.h"
#include "workload.h"

enum {
    STREAM_BYTES = 1 << 30, /* two arrays of 512 MiB: far past any cache */
    FLUSH_BYTES = 64 << 20  /* twice the 32 MiB L3 */
};

/* Every thread count of one case and K/V dtype. */
static int run_workload(const bench_config *cfg, bench_workload *w, const bench_membw *mb,
                        bench_json *json, bench_report *rep, double start, int *done, int total)
{
    bench_result res[BENCH_MAX_PAGED * 5 * 2]; /* layouts x kernels x plain, modified */
    for (int t = 0; t < cfg->n_threads; t++) {
        char what[128];
        snprintf(what, sizeof what, "case %s, K/V %s, %d thread%s", w->shape.name,
                 bench_dtype_name(w->kv_dtype), cfg->threads[t], cfg->threads[t] == 1 ? "" : "s");
        bench_progress(start, ++*done, total, what);
        if (bench_measure(cfg, w, mb, cfg->threads[t], res))
            return -1;
        for (int k = 0; k < bench_n_variants(cfg, &w->shape); k++) {
            bench_report_row(rep, w, cfg->threads[t], &res[k]);
            if (json->f)
                bench_json_result(json, cfg, w, cfg->threads[t], &res[k]);
        }
    }
    return 0;
}

static int run(const bench_config *cfg, const bench_membw *mb, bench_json *json,
               bench_report *rep)
{
    double start = omp_get_wtime();
    int done = 0, total = cfg->n_cases * cfg->n_kv_dtypes * cfg->n_threads;
    for (int c = 0; c < cfg->n_cases; c++) {
        for (int d = 0; d < cfg->n_kv_dtypes; d++) {
            /* one workload in memory at a time: a and b take 256 MiB of f32 K/V each, and up to
             * as much again for each page size of --paged */
            bench_workload w;
            if (bench_workload_init(&w, &cfg->cases[c], cfg->kv_dtypes[d], cfg->q_dtype,
                                    cfg->seed, cfg->thp, &cfg->mods, cfg->page_sizes,
                                    cfg->n_page_sizes, cfg->ref_reps > 0))
                return -1;
            if (d == 0)
                bench_report_case(rep, &w);
            int rc = run_workload(cfg, &w, mb, json, rep, start, &done, total);
            bench_workload_free(&w);
            if (rc)
                return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_config cfg;
    int parsed = bench_parse_args(argc, argv, &cfg);
    if (parsed != 0)
        return parsed > 0 ? 0 : 2;

    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    bench_json json = {0};
    if (cfg.json_path &&
        bench_json_open(&json, cfg.json_path, &cfg, STREAM_BYTES, FLUSH_BYTES, cpu))
        return 1;
    bench_membw mb;
    bench_report rep;
    int rows = 0;
    for (int c = 0; c < cfg.n_cases; c++)
        rows += cfg.n_kv_dtypes * cfg.n_threads * bench_n_variants(&cfg, &cfg.cases[c]);
    if (bench_report_init(&rep, rows)) {
        bench_json_abandon(&json);
        return 1;
    }
    if (bench_membw_init(&mb, STREAM_BYTES, FLUSH_BYTES, cfg.thp)) {
        bench_json_abandon(&json);
        bench_report_free(&rep);
        return 1;
    }
    bench_print_preamble(&cfg, &mb, cpu);
    int rc = run(&cfg, &mb, &json, &rep);
    bench_progress_end();
    bench_report_print(&rep, &cfg); /* also the rows measured before a failure */
    bench_report_free(&rep);
    if (json.f) {
        if (rc == 0)
            rc = bench_json_close(&json);
        else
            bench_json_abandon(&json);
    }
    bench_membw_free(&mb);
    return rc == 0 ? 0 : 1;
}
