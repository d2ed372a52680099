/* Command line of raggedattn-bench: what to run and how to report it. */
#ifndef BENCH_CLI_H
#define BENCH_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raggedattn.h"
#include "workload.h"

enum { BENCH_MAX_LIST = 64 };

/* The largest page size --paged takes (the longest named sequence). */
#define BENCH_MAX_PAGE_SIZE 65536

typedef struct bench_config {
    bench_shape cases[BENCH_MAX_LIST]; /* named cases and/or one custom shape, in run order */
    int n_cases;
    ra_dtype kv_dtypes[6]; /* the float dtypes, then i8 and fp8 in the order given */
    int n_kv_dtypes;
    ra_dtype q_dtype;
    int threads[BENCH_MAX_LIST];
    int n_threads;
    ra_kernel kernels[5];
    int n_kernels;
    /* K/V layouts timed side by side, in increasing order: 0 = the contiguous cache, else the
     * page size of a paged pool (ra_paged_gqa). Without --paged: {0}. */
    int64_t page_sizes[BENCH_MAX_PAGED];
    int n_page_sizes;
    bool paged; /* --paged was given: the report shows the page size and the ratio columns */
    /* --softcap, --window, --sinks, --alibi: each configuration also runs with these (a case
     * may add its own window, bench_case_mods) beside the plain call */
    bench_mods mods;
    int reps;     /* timed calls of each ragged kernel per configuration */
    int ref_reps; /* timed calls of the reference path, <= reps; 0 = do not run it */
    int warmup;   /* untimed calls before timing, >= 1 */
    int64_t block_size;   /* 0 = each case's own */
    int64_t split_tokens; /* 0 = the library's automatic choice */
    uint64_t seed;
    bool hot; /* skip the cache flush between calls */
    bool thp; /* ask for transparent huge pages on K/V and the bandwidth arrays */
    bool quick; /* the preset: quick (default) or full */
    bool custom; /* a flag beyond --quick/--full/--json changed what or how the run measures */
    char args[256]; /* the command line's flags, for the report (cut short with "...") */
    const char *json_path; /* NULL = no JSON */
} bench_config;

/* Fills cfg from argv. Returns 0 to run, 1 when --help/--version was handled (exit 0), and
 * -1 after printing an error to stderr (exit 2). */
int bench_parse_args(int argc, char **argv, bench_config *cfg);

/* What the run is, for the report's header: "quick preset", "full preset", or "custom run:
 * <flags> (the rest from the quick preset)". */
const char *bench_run_description(const bench_config *cfg, char *buf, size_t size);
/* The JSON's "preset": "quick", "full" or "custom". */
const char *bench_preset_name(const bench_config *cfg);

/* "auto" for RA_KERNEL_AUTO, else ra_kernel_name(k). */
const char *bench_kernel_name(ra_kernel k);

/* "f32", "bf16", "f16", "i32", "i8", "fp8_e4m3", "fp8_e5m2". */
const char *bench_dtype_name(ra_dtype t);

/* The kernel that runs a call with K/V of kv_dtype when `resolved` is asked for: the library's
 * AVX2 kernel has no i8/fp8 steps and runs them on the portable one. */
ra_kernel bench_kernel_for_dtype(ra_kernel resolved, ra_dtype kv_dtype);

#endif
