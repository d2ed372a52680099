/* What the bench prints for people: the run's header, then (once every figure is measured, so
 * that progress never lands inside it) an aligned table per case and a summary of the rows
 * whose figures the machine disturbed, all on stdout; progress goes to stderr. */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdio.h>

#include "cli.h"
#include "measure.h"
#include "membw.h"
#include "stability.h"
#include "workload.h"

/* The first "model name" (or similar) line of /proc/cpuinfo, else "unknown". */
void bench_cpu_model(char *buf, size_t size);

void bench_print_preamble(const bench_config *cfg, const bench_membw *mb, const char *cpu);

/* A case's facts for its table header, kept after its workload is freed. */
typedef struct bench_case_info {
    bench_shape shape;
    int64_t sum_lengths;
    bench_mods mods;           /* of its modified rows (none: plain rows only) */
    int64_t visible_positions; /* what its modified calls read */
} bench_case_info;

typedef struct bench_row {
    int case_index;
    ra_dtype kv_dtype;
    int threads;
    bench_result r;
} bench_row;

/* Every row of the run, printed at the end. */
typedef struct bench_report {
    bench_case_info cases[BENCH_MAX_LIST];
    int n_cases;
    bench_row *rows;
    int n_rows, cap;
    bench_flag_counts counts;
    int paged_compared, paged_differ; /* paged rows checked against the contiguous bits */
    bool modified; /* some case runs with modifiers: the tables show their columns */
} bench_report;

/* Room for max_rows rows. Returns 0, or -1 after printing why to stderr. */
int bench_report_init(bench_report *rep, int max_rows);
void bench_report_free(bench_report *rep);
/* Starts the table of w's case. */
void bench_report_case(bench_report *rep, const bench_workload *w);
/* Adds a row to the current case's table. */
void bench_report_row(bench_report *rep, const bench_workload *w, int threads,
                      const bench_result *r);
/* Every case's table, then the explanation of any flagged rows, and a warning when a paged
 * result was not bitwise the contiguous one. */
void bench_report_print(const bench_report *rep, const bench_config *cfg);
/* The warning about paged rows whose outputs differed from the contiguous ones (nothing when
 * differ is 0). */
void bench_print_paged_summary(FILE *out, int compared, int differ);

/* Progress to stderr once the run has lasted 2 s or more: on a terminal one status line that
 * each call overwrites, otherwise "[i/n, t s] what" lines. */
void bench_progress(double start, int i, int n, const char *what);
/* Clears the terminal's status line, if one was drawn. */
void bench_progress_end(void);

#endif
