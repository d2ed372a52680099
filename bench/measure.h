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
    int64_t page_size;      /* 0: ra_ragged_gqa on the contiguous cache; else ra_paged_gqa */
    int64_t num_pages;      /* of the pool; 0 for the contiguous cache */
    bench_mods mods;        /* the score modifiers of the call; all zero for a plain row */
    int64_t visible_positions; /* positions the call reads, summed over the batch */
    double kv_bytes;        /* bytes of K and V at those positions */
    bench_stats time;
    double kv_gbs;          /* kv_bytes / median time, in GB/s (1e9) */
    double stream_gbs;      /* median of the interleaved read passes, same thread count */
    double stream_slowest_gbs, stream_fastest_gbs; /* the slowest and fastest of those passes */
    int stream_passes;
    double bw_fraction;     /* kv_gbs / stream_gbs */
    bool have_ref;
    bench_stats ref_time;
    double speedup;         /* reference median / ragged median */
    /* rel_err was measured: a plain row against ra_reference_gqa, or for quantized K/V against
     * ra_ragged_gqa on the dequantized values (bench_workload.ref_o) */
    bool have_err;
    double max_rel_err;     /* NaN when not measured (modified rows) or when o holds NaN */
    /* Paged rows beside a contiguous row of the same kernel: median time / its median time
     * (same rounds), and whether the warm-up outputs (o, m, l) were bitwise the same, as
     * ra_paged_gqa promises (1 yes, 0 no). NaN and -1 otherwise. */
    double vs_contiguous;
    int same_as_contiguous;
    /* Modified rows: median time / the plain row's of the same layout and kernel (same
     * rounds), and that plain median in seconds. NaN for plain rows. */
    double vs_plain, plain_time_median;
    bench_flags flags;      /* uneven times or bandwidth passes, share above 100% */
} bench_result;

/* The number of results bench_measure fills for a case: one per (layout, kernel), twice when
 * the case runs with modifiers (bench_case_mods): plain, then modified. */
int bench_n_variants(const bench_config *cfg, const bench_shape *shape);

/* Options for one timed call: the case's block size, scale 1/sqrt(D), the split, `threads`
 * and `kernel`, and with `modified` w's modifiers (its sink and slope tensors). Returns 0, or
 * -1 after printing the library's error to stderr. */
int bench_make_options(const bench_config *cfg, const bench_workload *w, int threads,
                       ra_kernel kernel, bool modified, ra_options **out);

/* Runs every layout of cfg->page_sizes with every kernel of cfg->kernels on w with `threads`
 * threads, plain and (when w has modifiers) modified, interleaved in the same rounds, and fills
 * out[(p * n_kernels + k) * n_mods + mod] (n_mods 1 or 2). Returns 0, or -1 after printing the
 * library's error to stderr. */
int bench_measure(const bench_config *cfg, bench_workload *w, const bench_membw *mb, int threads,
                  bench_result *out);

#endif
