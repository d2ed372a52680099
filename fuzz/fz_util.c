/* Harness basics: failures, the byte reader, dtype conversions, status expectations and CPU
 * features (detected here independently of the library's dispatch). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz.h"

void fz_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "\nFUZZ CHECK FAILED at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n  ra_last_error: \"%s\"\n", ra_last_error());
    fflush(stderr);
    abort();
}

/* ---- bytes ------------------------------------------------------------------------------ */

uint8_t fz_u8(fz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

uint16_t fz_u16(fz_in *in)
{
    uint16_t lo = fz_u8(in);
    return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

uint32_t fz_u32(fz_in *in)
{
    uint32_t lo = fz_u16(in);
    return lo | (uint32_t)fz_u16(in) << 16;
}

uint64_t fz_u64(fz_in *in)
{
    uint64_t lo = fz_u32(in);
    return lo | (uint64_t)fz_u32(in) << 32;
}

int64_t fz_pick(fz_in *in, const int64_t *table, size_t n)
{
    return table[fz_u8(in) % n];
}

uint64_t fz_rng_next(fz_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- dtypes ----------------------------------------------------------------------------- */

size_t fz_dtype_size(ra_dtype dt)
{
    switch ((int)dt) {
    case RA_DTYPE_F32:
    case RA_DTYPE_I32:
        return 4;
    case RA_DTYPE_F16:
    case RA_DTYPE_BF16:
        return 2;
    case RA_DTYPE_I8:
    case RA_DTYPE_FP8_E4M3:
    case RA_DTYPE_FP8_E5M2:
        return 1;
    default:
        return 0;
    }
}

bool fz_dtype_is_float(ra_dtype dt)
{
    return dt == RA_DTYPE_F32 || dt == RA_DTYPE_F16 || dt == RA_DTYPE_BF16;
}

bool fz_dtype_is_quant(ra_dtype dt)
{
    return dt == RA_DTYPE_I8 || dt == RA_DTYPE_FP8_E4M3 || dt == RA_DTYPE_FP8_E5M2;
}

double fz_quant_max(ra_dtype dt)
{
    return dt == RA_DTYPE_I8 ? 127 : dt == RA_DTYPE_FP8_E4M3 ? 448 : 57344;
}

/* From the OCP FP8 definitions: e4m3 has bias 7 and 3 mantissa bits, 0x7f/0xff NaN and no
 * infinities; e5m2 has bias 15 and 2 mantissa bits, IEEE-style infinities and NaNs. */
double fz_code_value(ra_dtype dt, uint8_t code)
{
    if (dt == RA_DTYPE_I8)
        return (int8_t)code;
    const bool e4 = dt == RA_DTYPE_FP8_E4M3;
    const int mbits = e4 ? 3 : 2, bias = e4 ? 7 : 15, emax = e4 ? 15 : 31;
    const int e = (code & 0x7f) >> mbits, m = code & ((1 << mbits) - 1);
    double v;
    if (e4 && (code & 0x7f) == 0x7f)
        v = NAN;
    else if (!e4 && e == emax)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(m, 1 - bias - mbits);
    else
        v = ldexp((1 << mbits) + m, e - bias - mbits);
    return (code & 0x80) ? -v : v;
}

/* The nearest finite code by search: slow but independent of the library's rounding code. */
static uint8_t nearest_fp8(ra_dtype dt, double x)
{
    int best = 0;
    double best_d = INFINITY;
    for (int c = 0; c < 256; c++) {
        const double v = fz_code_value(dt, (uint8_t)c);
        if (!isfinite(v) || (v == 0 && signbit(v) != signbit(x)))
            continue;
        const double d = fabs(v - x);
        if (d < best_d || (d == best_d && (c & 1) == 0))
            best = c, best_d = d;
    }
    return (uint8_t)best;
}

uint8_t fz_code_of(ra_dtype dt, double x)
{
    if (dt == RA_DTYPE_I8)
        return isnan(x) ? 0 : (uint8_t)(int8_t)nearbyint(fmax(-127.0, fmin(127.0, x)));
    if (isnan(x))
        return 0x7f;
    if (isinf(x) && dt == RA_DTYPE_FP8_E5M2)
        return x > 0 ? 0x7c : 0xfc;
    const double qmax = fz_quant_max(dt);
    return nearest_fp8(dt, fmax(-qmax, fmin(qmax, x)));
}

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t fz_f32_to_bf16(float x)
{
    uint32_t u = f32_bits(x);
    if (isnan(x))
        return (uint16_t)((u >> 16) | 0x40); /* keep it a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u);      /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float fz_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

/* Through double arithmetic: scale to an integer count of f16 units, round to even. */
uint16_t fz_f32_to_f16(float x)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs((double)x);
    if (isnan(x))
        return 0x7e00;
    if (a >= 65520.0) /* rounds to Inf (65504 + half an ulp and above) */
        return sign | 0x7c00;
    int e;
    frexp(a, &e); /* a = f * 2^e, f in [0.5, 1) */
    int exp16 = e - 1 + 15;
    if (a == 0.0)
        return sign;
    if (exp16 <= 0) { /* subnormal: units of 2^-24 */
        double units = nearbyint(a * 0x1p24);
        return sign | (uint16_t)units; /* 1024 units carries into the smallest normal */
    }
    double mant = nearbyint(ldexp(a, 10 - (e - 1))); /* 1024..2048 */
    if (mant >= 2048.0) {
        mant /= 2;
        exp16++;
    }
    if (exp16 >= 31)
        return sign | 0x7c00;
    return sign | (uint16_t)(exp16 << 10) | (uint16_t)((int)mant - 1024);
}

float fz_f16_to_f32(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(m, -24);
    else
        v = ldexp(1024 + m, e - 25);
    return (float)(sign ? -v : v);
}

double fz_round_to(ra_dtype dt, double x)
{
    float f = (float)x;
    if (dt == RA_DTYPE_F16)
        return fz_f16_to_f32(fz_f32_to_f16(f));
    if (dt == RA_DTYPE_BF16)
        return fz_bf16_to_f32(fz_f32_to_bf16(f));
    return f;
}

double fz_dtype_eps(ra_dtype dt)
{
    return dt == RA_DTYPE_F16 ? 0x1p-11 : dt == RA_DTYPE_BF16 ? 0x1p-8 : 0x1p-24;
}

/* ---- statuses --------------------------------------------------------------------------- */

void fz_check_status(const fz_expect *e, ra_status got, const char *what)
{
    if (e->must == 0 && got == RA_OK)
        return;
    FZ_CHECK(got != RA_OK || e->must == 0,
             "%s: returned RA_OK for an invalid call (expected one of mask 0x%x)", what, e->must);
    FZ_CHECK((unsigned)got < 32 && ((e->must | e->may) & FZ_BIT(got)),
             "%s: returned %d (%s); allowed: must 0x%x may 0x%x", what, (int)got,
             ra_status_string(got), e->must, e->may);
}

/* The text of the marker message, to tell it apart from the message of the call under test. */
static char marker[512];

void fz_mark_last_error(void)
{
    /* Any failing call sets a message; this one is cheap and has a fixed text. */
    ra_status s = ra_options_set_block_size(NULL, 1);
    FZ_CHECK(s == RA_ERR_INVALID_ARGUMENT, "ra_options_set_block_size(NULL) returned %d", (int)s);
    const char *msg = ra_last_error();
    FZ_CHECK(msg != NULL && msg[0] != '\0', "a failing call left ra_last_error empty");
    snprintf(marker, sizeof marker, "%s", msg);
}

void fz_check_new_error(const char *what)
{
    const char *msg = ra_last_error();
    FZ_CHECK(msg != NULL && msg[0] != '\0', "%s failed without a message", what);
    FZ_CHECK(strcmp(msg, marker) != 0, "%s failed but ra_last_error still holds the message "
             "of the previous failing call", what);
}

/* ---- CPU features ----------------------------------------------------------------------- */

bool fz_kernel_runs(ra_kernel k)
{
    switch ((int)k) {
    case RA_KERNEL_AUTO:
    case RA_KERNEL_BLAS:
    case RA_KERNEL_PORTABLE:
        return true;
#if (defined(__x86_64__) || defined(__i386__)) && !defined(RA_TEST_GENERIC_ISA)
    case RA_KERNEL_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case RA_KERNEL_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
#if defined(__aarch64__) && !defined(RA_TEST_GENERIC_ISA)
    case RA_KERNEL_NEON: /* Advanced SIMD is part of AArch64 */
        return true;
#endif
    default:
        return false;
    }
}

ra_kernel fz_kernel_auto(void)
{
    if (fz_kernel_runs(RA_KERNEL_AVX512))
        return RA_KERNEL_AVX512;
    if (fz_kernel_runs(RA_KERNEL_AVX2))
        return RA_KERNEL_AVX2;
    if (fz_kernel_runs(RA_KERNEL_NEON))
        return RA_KERNEL_NEON;
    return RA_KERNEL_PORTABLE;
}
