/* What the bench prints for people: an aligned table on stdout, progress on stderr. */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdio.h>

#include "cli.h"
#include "measure.h"
#include "membw.h"
#include "workload.h"

/* The first "model name" (or similar) line of /proc/cpuinfo, else "unknown". */
void bench_cpu_model(char *buf, size_t size);

void bench_print_preamble(const bench_config *cfg, const bench_membw *mb, const char *cpu);
/* Names the case and its parameters, then the column heads. */
void bench_print_case(const bench_config *cfg, const bench_workload *w);
void bench_print_row(const bench_workload *w, int threads, const bench_result *r);

/* Prints "[i/n, t s] what" to stderr once the run has lasted 2 s or more. */
void bench_progress(double start, int i, int n, const char *what);

#endif
