/* ctest bench_quantized: the bench's quantized K/V dtypes (i8, fp8 e4m3, fp8 e5m2): --dtype's
 * names and refusals, the bytes a position takes, the code values the bench decodes, the
 * quantized cache against the generator's f32 values, and the error column's comparison with
 * ra_ragged_gqa on the dequantized values (small on every kernel, large when the scales are
 * wrong). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fill.h"
#include "measure.h"
#include "workload.h"

#include "test_check.h"

static bool kernel_available(ra_kernel k)
{
    ra_options *o = NULL;
    bool ok = ra_options_create(&o) == RA_OK && ra_options_set_kernel(o, k) == RA_OK;
    ra_options_destroy(o);
    return ok;
}

static void test_parse(void)
{
    bench_config cfg;
    const char *names[] = {"--dtype", "i8,e4m3,fp8,fp8_e5m2,e5m2,fp8_e4m3,bf16"};
    CHECK(parse(2, names, &cfg) == 0, "every quantized name and alias");
    CHECK(cfg.n_kv_dtypes == 4 && cfg.kv_dtypes[0] == RA_DTYPE_I8 &&
              cfg.kv_dtypes[1] == RA_DTYPE_FP8_E4M3 && cfg.kv_dtypes[2] == RA_DTYPE_FP8_E5M2 &&
              cfg.kv_dtypes[3] == RA_DTYPE_BF16,
          "aliases name one dtype each, in the order given: %d dtypes", cfg.n_kv_dtypes);
    CHECK(strcmp(bench_dtype_name(RA_DTYPE_FP8_E4M3), "fp8_e4m3") == 0 &&
              strcmp(bench_dtype_name(RA_DTYPE_FP8_E5M2), "fp8_e5m2") == 0 &&
              strcmp(bench_dtype_name(RA_DTYPE_I8), "i8") == 0,
          "the report's names");

    const char *all[] = {"--dtype", "all,i8"};
    CHECK(parse(2, all, &cfg) == 0 && cfg.n_kv_dtypes == 4 &&
              cfg.kv_dtypes[0] == RA_DTYPE_F32 && cfg.kv_dtypes[3] == RA_DTYPE_I8,
          "'all' is the three float dtypes, i8 comes on top");
    CHECK(parse(0, NULL, &cfg) == 0 && cfg.n_kv_dtypes == 3, "the presets run no quantized dtype");

    static const char *const bad[] = {"int8", "fp8_e4m3fn", "e4m3fn", "u8", "i32", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {"--dtype", bad[i]};
        CHECK(parse(2, args, &cfg) == -1, "--dtype '%s' must be refused", bad[i]);
    }
    const char *q8[] = {"--qdtype", "i8"};
    CHECK(parse(2, q8, &cfg) == -1, "q stays a float dtype");

    /* AVX2 runs quantized calls on the portable kernel: asking for it by name is refused */
    CHECK(bench_kernel_for_dtype(RA_KERNEL_AVX2, RA_DTYPE_I8) == RA_KERNEL_PORTABLE &&
              bench_kernel_for_dtype(RA_KERNEL_AVX2, RA_DTYPE_BF16) == RA_KERNEL_AVX2 &&
              bench_kernel_for_dtype(RA_KERNEL_AVX512, RA_DTYPE_FP8_E5M2) == RA_KERNEL_AVX512 &&
              bench_kernel_for_dtype(RA_KERNEL_BLAS, RA_DTYPE_FP8_E4M3) == RA_KERNEL_BLAS,
          "the kernel that runs quantized calls");
    if (kernel_available(RA_KERNEL_AVX2)) {
        const char *avx2[] = {"--dtype", "bf16,e5m2", "--kernel", "avx2"};
        CHECK(parse(4, avx2, &cfg) == -1, "--kernel avx2 with fp8 must be refused");
        const char *avx2f[] = {"--dtype", "bf16", "--kernel", "avx2"};
        CHECK(parse(4, avx2f, &cfg) == 0, "--kernel avx2 with bf16 runs");
    }
    const char *others[] = {"--dtype", "i8,fp8,e5m2", "--kernel", "auto,blas,portable"};
    CHECK(parse(4, others, &cfg) == 0, "auto, blas and portable take quantized K/V");
}

static void test_bytes_and_codes(void)
{
    CHECK(bench_kv_position_bytes(RA_DTYPE_I8, 8, 128) == 8 * 128 + 8 * 4,
          "i8: codes and one f32 scale per KV head");
    CHECK(bench_kv_position_bytes(RA_DTYPE_FP8_E5M2, 1, 64) == 64 + 4, "e5m2, one head");
    CHECK(bench_kv_position_bytes(RA_DTYPE_BF16, 8, 128) == 8 * 128 * 2, "bf16: no scales");
    CHECK(bench_kv_position_bytes(RA_DTYPE_F32, 2, 16) == 2 * 16 * 4, "f32: no scales");

    const struct {
        ra_dtype t;
        uint8_t code;
        float value;
    } known[] = {
        {RA_DTYPE_I8, 0x80, -128.0f},          {RA_DTYPE_I8, 0x7f, 127.0f},
        {RA_DTYPE_FP8_E4M3, 0x7e, 448.0f},     {RA_DTYPE_FP8_E4M3, 0x38, 1.0f},
        {RA_DTYPE_FP8_E4M3, 0x01, 0x1p-9f},    {RA_DTYPE_FP8_E4M3, 0xc0, -2.0f},
        {RA_DTYPE_FP8_E5M2, 0x7b, 57344.0f},   {RA_DTYPE_FP8_E5M2, 0x3c, 1.0f},
        {RA_DTYPE_FP8_E5M2, 0x01, 0x1p-16f},   {RA_DTYPE_FP8_E5M2, 0xfc, -INFINITY},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        float v = bench_code_value(known[i].t, known[i].code);
        CHECK(v == known[i].value, "%s code 0x%02x: %g, want %g", bench_dtype_name(known[i].t),
              known[i].code, (double)v, (double)known[i].value);
    }
    CHECK(isnan(bench_code_value(RA_DTYPE_FP8_E4M3, 0x7f)) &&
              isnan(bench_code_value(RA_DTYPE_FP8_E4M3, 0xff)) &&
              isnan(bench_code_value(RA_DTYPE_FP8_E5M2, 0x7d)),
          "NaN codes");
}

static bench_shape small_shape(void)
{
    bench_shape s = *bench_find_case("seed");
    strcpy(s.name, "quant");
    s.B = 3, s.S = 70, s.Hq = 8, s.Hkv = 2, s.D = 32, s.block_size = 16;
    s.lengths = BENCH_LEN_RANDOM;
    return s;
}

/* Half a step of the code grid at x, for a code of dtype under scale. */
static double half_step(ra_dtype t, double x, double scale)
{
    if (t == RA_DTYPE_I8)
        return 0.5 * scale;
    const int mbits = t == RA_DTYPE_FP8_E4M3 ? 3 : 2, min_exp = t == RA_DTYPE_FP8_E4M3 ? -6 : -14;
    int e = 0;
    frexp(fabs(x) / scale, &e); /* |x| / scale in [2^(e-1), 2^e) */
    e = e - 1 < min_exp ? min_exp : e - 1;
    return ldexp(scale, e - mbits - 1);
}

/* The codes times their scales are the generator's f32 values, rounded to the code grid. */
static void check_values(const bench_workload *w)
{
    const bench_shape *s = &w->shape;
    const size_t rows = (size_t)(s->B * s->S * s->Hkv), D = (size_t)s->D;
    float *deq = malloc(rows * D * sizeof *deq);
    bench_workload f32;
    if (!deq ||
        bench_workload_init(&f32, s, RA_DTYPE_F32, RA_DTYPE_F32, 42, false, NULL, NULL, 0, true)) {
        CHECK(0, "the f32 workload");
        free(deq);
        return;
    }
    const void *codes[2] = {w->k, w->v};
    const float *want[2] = {f32.k, f32.v}, *scales[2] = {w->ks, w->vs};
    for (int kv = 0; kv < 2; kv++) {
        bench_dequantize(deq, codes[kv], scales[kv], w->kv_dtype, rows, D);
        size_t bad = 0;
        for (size_t i = 0; i < rows * D; i++) {
            const double x = want[kv][i]; /* f32 rounding of x / scale may cross a halfway */
            bad += fabs((double)deq[i] - x) >
                   half_step(w->kv_dtype, x, scales[kv][i / D]) + 1e-6 * fabs(x);
        }
        CHECK(bad == 0, "%s %c: %zu values are not the generator's rounded to a code",
              bench_dtype_name(w->kv_dtype), "KV"[kv], bad);
    }
    bench_workload_free(&f32);
    free(deq);
}

/* rel_err of ra_ragged_gqa on w's quantized cache with the given options. */
static double rel_err_of(bench_workload *w, const ra_options *o)
{
    ra_status st = ra_ragged_gqa(o, w->t_q4, w->t_k, w->t_v, w->t_len, w->t_o, w->t_m, w->t_l);
    CHECK(st == RA_OK, "ra_ragged_gqa: %s", ra_last_error());
    return st == RA_OK ? bench_max_rel_error(w) : NAN;
}

/* Every kernel the bench times quantized K/V with agrees with the dequantized output, and a
 * wrong scale shows up in the error. */
static void check_rel_err(bench_workload *w)
{
    bench_config cfg;
    const char *args[] = {"--reps", "1"};
    if (parse(2, args, &cfg) != 0) {
        CHECK(0, "parse");
        return;
    }
    const ra_kernel kernels[] = {RA_KERNEL_AUTO, RA_KERNEL_BLAS, RA_KERNEL_PORTABLE,
                                 RA_KERNEL_AVX512};
    const char *dt = bench_dtype_name(w->kv_dtype);
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
        ra_options *o = NULL;
        if (!kernel_available(kernels[k]) ||
            bench_make_options(&cfg, w, 2, kernels[k], false, &o) != 0)
            continue;
        double err = rel_err_of(w, o);
        CHECK(err < 1e-5, "%s on %s: rel_err %g against the dequantized output", dt,
              bench_kernel_name(kernels[k]), err);
        ra_options_destroy(o);
    }
    /* the tensors keep a view of the scales: a wrong K scale must change the output */
    ra_options *o = NULL;
    if (bench_make_options(&cfg, w, 1, RA_KERNEL_AUTO, false, &o) != 0) {
        CHECK(0, "bench_make_options");
        return;
    }
    const size_t n = (size_t)(w->shape.B * w->shape.S * w->shape.Hkv);
    for (size_t i = 0; i < n; i++)
        w->ks[i] *= 1.5f;
    double err = rel_err_of(w, o);
    CHECK(err > 1e-3, "%s: K scales 1.5x too large give rel_err %g", dt, err);
    for (size_t i = 0; i < n; i++)
        w->ks[i] /= 1.5f;
    ra_options_destroy(o);
}

static void test_workloads(void)
{
    const bench_shape shape = small_shape();
    const ra_dtype dts[] = {RA_DTYPE_I8, RA_DTYPE_FP8_E4M3, RA_DTYPE_FP8_E5M2};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
        bench_workload w;
        if (bench_workload_init(&w, &shape, dts[d], RA_DTYPE_F32, 42, false, NULL, NULL, 0,
                                true)) {
            CHECK(0, "bench_workload_init %s", bench_dtype_name(dts[d]));
            continue;
        }
        const char *dt = bench_dtype_name(dts[d]);
        CHECK(w.dequant_ref && w.ks && w.vs && !w.t_kref && !w.t_vref,
              "%s: scales and the dequantized output, no reference views", dt);
        CHECK(w.kv_bytes == (double)w.sum_lengths * 2.0 * (double)(shape.Hkv * (shape.D + 4)),
              "%s: kv_bytes %g count codes and scales", dt, w.kv_bytes);
        CHECK(w.kv_alloc == (size_t)(shape.B * shape.S * shape.Hkv * shape.D),
              "%s: one byte per code", dt);
        check_values(&w);
        check_rel_err(&w);
        bench_workload_free(&w);
    }
}

int main(void)
{
    test_parse();
    test_bytes_and_codes();
    test_workloads();
    if (failures) {
        fprintf(stderr, "bench_quantized: %d checks failed\n", failures);
        return 1;
    }
    printf("bench_quantized: all checks passed\n");
    return 0;
}
