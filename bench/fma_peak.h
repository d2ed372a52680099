/* The machine's f32 FMA peak, measured in the same run as the calls it is compared with. */
#ifndef BENCH_FMA_PEAK_H
#define BENCH_FMA_PEAK_H

typedef struct bench_fma_peak {
    const char *isa;       /* "avx512", "avx2" or "scalar": the vectors the chains used */
    double flops_per_iter; /* of one loop iteration on one thread */
    double gflops;         /* best of three timed rounds, all threads together */
} bench_fma_peak;

/* Runs independent FMA chains on `threads` OpenMP threads for about seconds_each per round. */
bench_fma_peak bench_fma_peak_measure(int threads, double seconds_each);

#endif
