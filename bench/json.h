/* The run's figures as JSON, for scripts and for the README's tables. One flat record per
 * (case, K/V dtype, thread count, kernel), written as each is measured. */
#ifndef BENCH_JSON_H
#define BENCH_JSON_H

#include <stdio.h>

#include "cli.h"
#include "measure.h"
#include "workload.h"

typedef struct bench_json {
    FILE *f;
    const char *path;
    int n_results;
} bench_json;

/* Opens path (before any long work, so a bad path fails at once) and writes the run's
 * settings. Returns 0, or -1 after printing why to stderr. */
int bench_json_open(bench_json *j, const char *path, const bench_config *cfg,
                    size_t stream_bytes, size_t flush_bytes, const char *cpu);
void bench_json_result(bench_json *j, const bench_config *cfg, const bench_workload *w,
                       int threads, const bench_result *r);
/* Ends the document. Returns 0, or -1 after printing why if anything failed to reach the
 * file. */
int bench_json_close(bench_json *j);
/* Closes and removes a document the run could not finish. */
void bench_json_abandon(bench_json *j);

#endif
