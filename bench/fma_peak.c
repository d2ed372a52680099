/* The machine's f32 FMA peak, measured: independent FMA chains in the widest vectors the CPU
 * runs, on every thread of a team, so that a compute-bound call can be read as a share of it. */
#include <omp.h>
#include <stdint.h>

#include "fma_peak.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* 12 chains: more than the FMA latency times the FMA ports, so the ports never wait. */
__attribute__((target("avx512f"))) static float chains_avx512(int64_t iters, float seed)
{
    __m512 acc[12], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(seed * 1e-7f);
    for (int i = 0; i < 12; i++)
        acc[i] = _mm512_set1_ps(seed + (float)i);
    for (int64_t n = 0; n < iters; n++)
        for (int i = 0; i < 12; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    for (int i = 1; i < 12; i++)
        acc[0] = _mm512_add_ps(acc[0], acc[i]);
    return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx2,fma"))) static float chains_avx2(int64_t iters, float seed)
{
    __m256 acc[12], x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(seed * 1e-7f);
    for (int i = 0; i < 12; i++)
        acc[i] = _mm256_set1_ps(seed + (float)i);
    for (int64_t n = 0; n < iters; n++)
        for (int i = 0; i < 12; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    for (int i = 1; i < 12; i++)
        acc[0] = _mm256_add_ps(acc[0], acc[i]);
    float out[8];
    _mm256_storeu_ps(out, acc[0]);
    return out[0] + out[7];
}
#endif

/* Scalar chains: a floor for CPUs without vector FMA. */
static float chains_scalar(int64_t iters, float seed)
{
    float acc[12];
    for (int i = 0; i < 12; i++)
        acc[i] = seed + (float)i;
    for (int64_t n = 0; n < iters; n++)
        for (int i = 0; i < 12; i++)
            acc[i] = acc[i] * 0.999999f + seed * 1e-7f;
    float s = 0.0f;
    for (int i = 0; i < 12; i++)
        s += acc[i];
    return s;
}

static volatile float sink;

bench_fma_peak bench_fma_peak_measure(int threads, double seconds_each)
{
    bench_fma_peak r = {"scalar", 2.0 * 12, 0.0};
    float (*fn)(int64_t, float) = chains_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        fn = chains_avx512;
        r.isa = "avx512";
        r.flops_per_iter = 2.0 * 12 * 16;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        fn = chains_avx2;
        r.isa = "avx2";
        r.flops_per_iter = 2.0 * 12 * 8;
    }
#endif
    /* calibrate the iteration count on one thread, then time the whole team (best of 3) */
    int64_t iters = 1 << 16;
    for (;;) {
        double t0 = omp_get_wtime();
        sink = fn(iters, 1.0f);
        if (omp_get_wtime() - t0 > seconds_each / 4 || iters > ((int64_t)1 << 40))
            break;
        iters *= 2;
    }
    iters *= 4;
    for (int round = 0; round < 3; round++) {
        double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads)
        sink = fn(iters, (float)omp_get_thread_num() + 1.0f);
        double dt = omp_get_wtime() - t0;
        double gflops = r.flops_per_iter * (double)iters * threads / dt * 1e-9;
        if (gflops > r.gflops)
            r.gflops = gflops;
    }
    return r;
}
