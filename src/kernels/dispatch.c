/* Run-time choice of the kernel family from the CPU's features and the build's ISA folders.
 * No state: on x86 the answers come from the compiler runtime's CPUID cache, filled once at
 * load time; on arm64 NEON is part of the baseline. */
#include "kernels/kernel.h"

#ifdef RA_HAVE_X86_KERNELS
#include <cpuid.h>

/* F16C from CPUID directly: clang 14's __builtin_cpu_supports does not know "f16c". */
static bool cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

static bool cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma");
}

static bool cpu_has_avx512bf16(void)
{
    __builtin_cpu_init();
    return cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
}

bool ra__cpu_has_avx512vbmi(void)
{
#ifdef RA_NO_AVX512VBMI /* a build knob for testing the steps that do without it */
    return false;
#else
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi");
#endif
}

static bool cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
}
#else
static bool cpu_has_avx512(void) { return false; }
static bool cpu_has_avx2(void) { return false; }
#endif

static bool cpu_has_neon(void)
{
#ifdef RA_HAVE_NEON_KERNELS
    return true; /* Advanced SIMD is mandatory in AArch64 */
#else
    return false;
#endif
}

bool ra__kernel_available(ra_kernel k)
{
    switch (k) {
    case RA_KERNEL_AUTO:
    case RA_KERNEL_BLAS:
    case RA_KERNEL_PORTABLE:
        return true;
    case RA_KERNEL_AVX2:
        return cpu_has_avx2();
    case RA_KERNEL_AVX512:
        return cpu_has_avx512();
    case RA_KERNEL_NEON:
        return cpu_has_neon();
    }
    return false;
}

ra_kernel ra__kernel_resolve(ra_kernel k)
{
    if (k != RA_KERNEL_AUTO)
        return k;
    if (cpu_has_avx512())
        return RA_KERNEL_AVX512;
    if (cpu_has_avx2())
        return RA_KERNEL_AVX2;
    if (cpu_has_neon())
        return RA_KERNEL_NEON;
    return RA_KERNEL_PORTABLE;
}

const ra__kernel_table *ra__kernel_table_for(ra_kernel resolved)
{
    switch (resolved) {
    case RA_KERNEL_BLAS:
        return &ra__kernels_blas;
#ifdef RA_HAVE_X86_KERNELS
    case RA_KERNEL_AVX2:
        return &ra__kernels_avx2;
    case RA_KERNEL_AVX512:
        return cpu_has_avx512bf16() ? &ra__kernels_avx512_bf16 : &ra__kernels_avx512;
#endif
#ifdef RA_HAVE_NEON_KERNELS
    case RA_KERNEL_NEON:
        return &ra__kernels_neon;
#endif
    default:
        return &ra__kernels_portable;
    }
}
