/* Timing one configuration (workload x thread count) for every requested kernel, interleaved
 * with the bandwidth passes it is compared with. */
#ifndef BENCH_MEASURE_H
#define BENCH_MEASURE_H

#include <stdbool.h>

#include "cli.h"
#include "membw.h"
#include "stability.h"
#include "workload.h"

typedef struct bench_stats {
    double median, min; /* seconds per call */
    int calls;
} bench_stats;

typedef struct bench_result {
    ra_kernel kernel_requested;
    const char *kernel;     /* ra_kernel_name of what ran */
    bench_stats time;
    double kv_gbs;          /* kv_bytes / median time, in GB/s (1e9) */
    double stream_gbs;      /* median of the interleaved read passes, same thread count */
    double stream_slowest_gbs, stream_fastest_gbs; /* the slowest and fastest of those passes */
    int stream_passes;
    double bw_fraction;     /* kv_gbs / stream_gbs */
    bool have_ref;
    bench_stats ref_time;
    double speedup;         /* reference median / ragged median */
    double max_rel_err;     /* NaN when not measured or when the output holds NaN */
    bench_flags flags;      /* uneven times or bandwidth passes, share above 100% */
} bench_result;

/* Runs cfg->kernels on w with `threads` threads and fills out[0 .. n_kernels-1].
 * Returns 0, or -1 after printing the library's error to stderr. */
int bench_measure(const bench_config *cfg, bench_workload *w, const bench_membw *mb, int threads,
                  bench_result *out);

#endif
