#include "stability.h"

#include <math.h>

static bool positive(double x)
{
    return isfinite(x) && x > 0.0;
}

bench_flags bench_classify(double time_median, double time_min, double stream_slowest,
                           double stream_fastest, double share)
{
    bench_flags f = {false, false, false};
    if (positive(time_median) && positive(time_min))
        f.unstable_time = time_median > BENCH_TIME_SPREAD_LIMIT * time_min;
    if (positive(stream_slowest) && positive(stream_fastest))
        f.unstable_stream = stream_fastest > BENCH_STREAM_SPREAD_LIMIT * stream_slowest;
    f.share_over_100 = isfinite(share) && share > 1.0;
    return f;
}

bool bench_flags_unstable(bench_flags f)
{
    return f.unstable_time || f.unstable_stream;
}

const char *bench_flags_str(bench_flags f, char buf[4])
{
    int n = 0;
    if (f.unstable_time)
        buf[n++] = 'T';
    if (f.unstable_stream)
        buf[n++] = 'S';
    if (f.share_over_100)
        buf[n++] = '%';
    if (n == 0)
        buf[n++] = '-';
    buf[n] = '\0';
    return buf;
}

void bench_flag_counts_add(bench_flag_counts *c, bench_flags f)
{
    c->rows++;
    c->unstable_time += f.unstable_time;
    c->unstable_stream += f.unstable_stream;
    c->unstable_any += bench_flags_unstable(f);
    c->share_over_100 += f.share_over_100;
}

static const char *rows_word(int n)
{
    return n == 1 ? "row" : "rows";
}

void bench_print_flag_summary(FILE *out, const bench_flag_counts *c, bool hot)
{
    if (c->unstable_any > 0) {
        fprintf(out,
                "\nwarning: %d of %d %s unstable: the machine was busy while they ran (other "
                "processes, or a VM\nwhose memory bandwidth changed), so their times and shares "
                "are not reliable; rerun them on a\nquiet machine, or compare only unflagged "
                "rows.\n",
                c->unstable_any, c->rows, c->unstable_any == 1 ? "row is" : "rows are");
        if (c->unstable_time > 0)
            fprintf(out, "  T  %d %s: the median call took more than %.2fx the fastest call\n",
                    c->unstable_time, rows_word(c->unstable_time), BENCH_TIME_SPREAD_LIMIT);
        if (c->unstable_stream > 0)
            fprintf(out,
                    "  S  %d %s: the fastest bandwidth pass beside the calls was more than "
                    "%.2fx the slowest\n",
                    c->unstable_stream, rows_word(c->unstable_stream),
                    BENCH_STREAM_SPREAD_LIMIT);
    }
    if (c->share_over_100 > 0) {
        fprintf(out,
                "\nwarning: %d %s (flag %%) %s a share above 100%%: K/V was read faster than the "
                "two-array read\npasses of the same run, so the share is not a fraction of what "
                "the machine can do.\n",
                c->share_over_100, rows_word(c->share_over_100),
                c->share_over_100 == 1 ? "shows" : "show");
        if (hot)
            fprintf(out, "  With --hot the caches are not flushed: K/V that fits in the "
                         "caches is read from them.\n");
        else
            fprintf(out, "  The passes ran while the machine was busier than during the calls "
                         "(the bandwidth changed\n  between them), or K/V is small enough to "
                         "stay partly in the caches despite the flush.\n");
    }
}
