/* Whether a row's figures can be trusted: on a busy machine (other processes, a VM whose memory
 * bandwidth changes from minute to minute) the calls of a row take uneven times, the bandwidth
 * passes it is compared with disagree, and a share above 100% can appear. Rows that show this
 * are flagged in the table and in the JSON, and a summary after the table says what the flags
 * mean. */
#ifndef BENCH_STABILITY_H
#define BENCH_STABILITY_H

#include <stdbool.h>
#include <stdio.h>

/* A row's calls are uneven when the median time exceeds the minimum by more than this factor:
 * undisturbed runs of the same call stay within a few percent of each other. */
#define BENCH_TIME_SPREAD_LIMIT 1.25
/* A row's bandwidth passes disagree when the fastest exceeds the slowest by more than this
 * factor; the share is then divided by a figure that moved while the row ran. */
#define BENCH_STREAM_SPREAD_LIMIT 1.25

typedef struct bench_flags {
    bool unstable_time;   /* median / min > BENCH_TIME_SPREAD_LIMIT */
    bool unstable_stream; /* fastest / slowest bandwidth pass > BENCH_STREAM_SPREAD_LIMIT */
    bool share_over_100;  /* K/V read faster than the same-run bandwidth passes */
} bench_flags;

/* Times in seconds, bandwidths in any one unit, share as a fraction. Figures that are not
 * finite or not positive (nothing measured) raise no flag. */
bench_flags bench_classify(double time_median, double time_min, double stream_slowest,
                           double stream_fastest, double share);

bool bench_flags_unstable(bench_flags f);

/* The table's flag column: "T" (uneven times), "S" (uneven bandwidth passes), "%" (share above
 * 100%), in that order, or "-" when none applies. buf needs 4 bytes. */
const char *bench_flags_str(bench_flags f, char buf[4]);

/* Counts of flagged rows, for the summary after the table. */
typedef struct bench_flag_counts {
    int rows, unstable_time, unstable_stream, unstable_any, share_over_100;
} bench_flag_counts;

void bench_flag_counts_add(bench_flag_counts *c, bench_flags f);

/* Explains every flag that occurred (nothing when no row was flagged). hot: caches were not
 * flushed between calls, which also explains shares above 100%. */
void bench_print_flag_summary(FILE *out, const bench_flag_counts *c, bool hot);

#endif
