/* ra_mpi_decode: one decode step over a KV cache sharded across MPI ranks, timed.
 *
 *   mpirun -np 3 ra_mpi_decode --batch 4 --seq 65536 --hq 32 --hkv 8 --dim 128 --steps 10
 *
 * Rank r of P holds positions [r*S/P, (r+1)*S/P) of every sequence. Sequence b has
 * S - b*S/(2B) valid positions (ragged; --full for all S), so late ranks see short or empty
 * shards. The data is a pure function of the global position, so any rank count computes the
 * same attention: compare the printed checksum between -np 1, 2 and 3. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raggedattn_mpi.h"

typedef struct args {
    int64_t B, S, Hq, Hkv, D;
    int steps, merge_reps, threads, root, full;
    ra_dtype dtype;
    ra_mpi_method method;
} args;

static float value(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 1; /* splitmix64 of a counter */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static uint16_t to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static int parse(int argc, char **argv, args *a)
{
    *a = (args){.B = 1, .S = 65536, .Hq = 32, .Hkv = 8, .D = 128, .steps = 10,
                .merge_reps = 200, .threads = 0, .root = RA_MPI_ALL_RANKS, .full = 0,
                .dtype = RA_DTYPE_F32, .method = RA_MPI_METHOD_AUTO};
    for (int i = 1; i < argc; ++i) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "--full") == 0) {
            a->full = 1;
            continue;
        }
        if (v == NULL)
            return -1;
        ++i;
        if (strcmp(k, "--batch") == 0)
            a->B = atoll(v);
        else if (strcmp(k, "--seq") == 0)
            a->S = atoll(v);
        else if (strcmp(k, "--hq") == 0)
            a->Hq = atoll(v);
        else if (strcmp(k, "--hkv") == 0)
            a->Hkv = atoll(v);
        else if (strcmp(k, "--dim") == 0)
            a->D = atoll(v);
        else if (strcmp(k, "--steps") == 0)
            a->steps = atoi(v);
        else if (strcmp(k, "--merge-reps") == 0)
            a->merge_reps = atoi(v);
        else if (strcmp(k, "--threads") == 0)
            a->threads = atoi(v);
        else if (strcmp(k, "--root") == 0)
            a->root = strcmp(v, "all") == 0 ? RA_MPI_ALL_RANKS : atoi(v);
        else if (strcmp(k, "--dtype") == 0 && (!strcmp(v, "f32") || !strcmp(v, "bf16")))
            a->dtype = strcmp(v, "f32") == 0 ? RA_DTYPE_F32 : RA_DTYPE_BF16;
        else if (strcmp(k, "--method") == 0 && !strcmp(v, "auto"))
            a->method = RA_MPI_METHOD_AUTO;
        else if (strcmp(k, "--method") == 0 && !strcmp(v, "reduce"))
            a->method = RA_MPI_METHOD_REDUCE;
        else if (strcmp(k, "--method") == 0 && !strcmp(v, "gather"))
            a->method = RA_MPI_METHOD_GATHER;
        else
            return -1;
    }
    if (a->B < 1 || a->S < 1 || a->Hq < 1 || a->Hkv < 1 || a->D < 1 || a->steps < 1 ||
        a->merge_reps < 1)
        return -1;
    return 0;
}

/* Ends the whole job on a local setup failure: a rank that just returned would leave the
 * others waiting in their next collective. (ra_mpi_* failures need no such care: every rank
 * gets the error.) */
static void need(int ok, int rank, const char *what, const char *msg)
{
    if (ok)
        return;
    fprintf(stderr, "rank %d: %s: %s\n", rank, what, msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The slowest rank's time of each of n rounds of `reps` calls (seconds per call).
 * A barrier starts every round, so a round is as slow as its slowest rank. */
#define TIME_ROUNDS(times, n, reps, body)                                                   \
    do {                                                                                    \
        for (int i_ = 0; i_ < (n); ++i_) {                                                  \
            MPI_Barrier(MPI_COMM_WORLD);                                                    \
            double t0_ = MPI_Wtime();                                                       \
            for (int r_ = 0; r_ < (reps); ++r_) {                                           \
                body;                                                                       \
            }                                                                               \
            double dt_ = (MPI_Wtime() - t0_) / (reps);                                      \
            MPI_Allreduce(&dt_, &(times)[i_], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);      \
        }                                                                                   \
    } while (0)

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    args a;
    if (parse(argc, argv, &a) != 0 || a.Hq % a.Hkv != 0) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np P %s [--batch B] [--seq S] [--hq Hq] [--hkv Hkv] "
                            "[--dim D] [--dtype f32|bf16] [--steps N] [--merge-reps N] "
                            "[--method auto|reduce|gather] [--root all|R] [--threads T] [--full]\n",
                    argv[0]);
        MPI_Finalize();
        return 2;
    }

    /* This rank's slice of every sequence, and the valid positions inside it. */
    int64_t start = rank * a.S / size, count = (rank + 1) * a.S / size - start;
    int32_t *len = malloc((size_t)a.B * sizeof *len);
    need(len != NULL, rank, "malloc", "lengths");
    for (int64_t b = 0; b < a.B; ++b) {
        int64_t total = a.full ? a.S : a.S - b * a.S / (2 * a.B);
        int64_t n = total - start;
        len[b] = (int32_t)(n < 0 ? 0 : n > count ? count : n);
    }

    size_t esz = a.dtype == RA_DTYPE_BF16 ? 2 : 4;
    size_t row = (size_t)(a.Hkv * a.D), nkv = (size_t)(a.B * count) * row;
    float *q = malloc((size_t)(a.B * a.Hq * a.D) * sizeof *q);
    char *k = malloc(nkv * esz + 1), *v = malloc(nkv * esz + 1);
    need(q && k && v, rank, "malloc", "KV shard");
    for (size_t i = 0; i < (size_t)(a.B * a.Hq * a.D); ++i)
        q[i] = value(1, i);
    for (int64_t b = 0; b < a.B; ++b) {
        for (int64_t t = 0; t < count; ++t) {
            for (size_t e = 0; e < row; ++e) {
                size_t local = (size_t)(b * count + t) * row + e;
                uint64_t global = (uint64_t)((b * a.S + start + t) * (int64_t)row) + e;
                float kx = value(2, global), vx = value(3, global);
                if (esz == 2) {
                    uint16_t kb = to_bf16(kx), vb = to_bf16(vx);
                    memcpy(k + 2 * local, &kb, 2);
                    memcpy(v + 2 * local, &vb, 2);
                } else {
                    memcpy(k + 4 * local, &kx, 4);
                    memcpy(v + 4 * local, &vx, 4);
                }
            }
        }
    }

    ra_tensor *tq = NULL, *tk = NULL, *tv = NULL, *tlen = NULL, *to = NULL, *tm = NULL, *tl = NULL;
    ra_tensor *po = NULL, *pm = NULL, *pl = NULL;
    const int64_t sq[4] = {a.B, 1, a.Hq, a.D}, skv[4] = {a.B, count, a.Hkv, a.D};
    const int64_t sml[4] = {a.B, 1, a.Hq, 1}, sb[1] = {a.B};
    ra_options *opts;
    int ok = ra_tensor_wrap(&tq, RA_DTYPE_F32, 4, sq, NULL, q) == RA_OK &&
             ra_tensor_wrap(&tk, a.dtype, 4, skv, NULL, k) == RA_OK &&
             ra_tensor_wrap(&tv, a.dtype, 4, skv, NULL, v) == RA_OK &&
             ra_tensor_wrap(&tlen, RA_DTYPE_I32, 1, sb, NULL, len) == RA_OK &&
             ra_tensor_create(&to, RA_DTYPE_F32, 4, sq) == RA_OK &&
             ra_tensor_create(&tm, RA_DTYPE_F32, 4, sml) == RA_OK &&
             ra_tensor_create(&tl, RA_DTYPE_F32, 4, sml) == RA_OK &&
             ra_tensor_create(&po, RA_DTYPE_F32, 4, sq) == RA_OK &&
             ra_tensor_create(&pm, RA_DTYPE_F32, 4, sml) == RA_OK &&
             ra_tensor_create(&pl, RA_DTYPE_F32, 4, sml) == RA_OK &&
             ra_options_create(&opts) == RA_OK &&
             ra_options_set_scale(opts, (float)(1.0 / sqrt((double)a.D))) == RA_OK &&
             ra_options_set_num_threads(opts, a.threads) == RA_OK;
    need(ok, rank, "setup", ra_last_error());

    /* One step to warm up and to check the arguments; every rank gets the same status. */
    ra_status s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, a.root, a.method, opts, tq, tk, tv, tlen, to,
                                    tm, tl);
    if (s != RA_OK) {
        if (rank == 0 || strstr(ra_mpi_last_error(), "failed with") == NULL)
            fprintf(stderr, "rank %d: %s\n", rank, ra_mpi_last_error());
        MPI_Finalize();
        return 1;
    }

    /* Steps one at a time (median and best of --steps), then the exchange alone on the partial
     * state just computed: ROUNDS rounds alternating the two methods, since the machine's
     * speed drifts and only times taken side by side compare. */
    enum { ROUNDS = 5 };
    double *step = malloc((size_t)a.steps * sizeof *step);
    double *local = malloc((size_t)a.steps * sizeof *local);
    double reduce[ROUNDS], gather[ROUNDS], agree[ROUNDS];
    need(step && local, rank, "malloc", "timings");
    TIME_ROUNDS(step, a.steps, 1,
                s = ra_mpi_ragged_gqa(MPI_COMM_WORLD, a.root, a.method, opts, tq, tk, tv, tlen,
                                      to, tm, tl);
                need(s == RA_OK, rank, "ra_mpi_ragged_gqa", ra_mpi_last_error()));
    TIME_ROUNDS(local, a.steps, 1,
                s = ra_ragged_gqa(opts, tq, tk, tv, tlen, po, pm, pl);
                need(s == RA_OK, rank, "ra_ragged_gqa", ra_last_error()));
    ra_tensor *mo = NULL;
    need(ra_tensor_create(&mo, RA_DTYPE_F32, 4, sq) == RA_OK, rank, "setup", ra_last_error());
    int reps = (a.merge_reps + ROUNDS - 1) / ROUNDS;
    for (int r = 0; r < ROUNDS; ++r) {
        TIME_ROUNDS(reduce + r, 1, reps,
                    s = ra_mpi_merge(MPI_COMM_WORLD, a.root, RA_MPI_METHOD_REDUCE, po, pm, pl, mo,
                                     NULL, NULL);
                    need(s == RA_OK, rank, "ra_mpi_merge", ra_mpi_last_error()));
        TIME_ROUNDS(gather + r, 1, reps,
                    s = ra_mpi_merge(MPI_COMM_WORLD, a.root, RA_MPI_METHOD_GATHER, po, pm, pl, mo,
                                     NULL, NULL);
                    need(s == RA_OK, rank, "ra_mpi_merge", ra_mpi_last_error()));
        /* What the ranks' agreement on errors and shapes costs: one allreduce of 7 int64. */
        int64_t flags[7] = {0};
        TIME_ROUNDS(agree + r, 1, reps,
                    MPI_Allreduce(MPI_IN_PLACE, flags, 7, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD));
    }
    qsort(step, (size_t)a.steps, sizeof *step, cmp_double);
    qsort(local, (size_t)a.steps, sizeof *local, cmp_double);
    qsort(reduce, ROUNDS, sizeof *reduce, cmp_double);
    qsort(gather, ROUNDS, sizeof *gather, cmp_double);
    qsort(agree, ROUNDS, sizeof *agree, cmp_double);

    int out_rank = a.root == RA_MPI_ALL_RANKS ? 0 : a.root;
    if (rank == out_rank) {
        const float *o = ra_tensor_data(to), *m = ra_tensor_data(tm), *l = ra_tensor_data(tl);
        double sum = 0;
        for (int64_t i = 0; i < a.B * a.Hq * a.D; ++i)
            sum += o[i];
        long long floats = (long long)(a.B * a.Hq * (a.D + 2));
        printf("ranks %d  B %lld  S %lld (%lld..%lld per rank)  Hq %lld  Hkv %lld  D %lld  %s  "
               "kernel %s  threads/rank %d%s\n",
               size, (long long)a.B, (long long)a.S, (long long)(a.S / size),
               (long long)((a.S + size - 1) / size), (long long)a.Hq, (long long)a.Hkv,
               (long long)a.D, a.dtype == RA_DTYPE_BF16 ? "bf16" : "f32",
               ra_kernel_name(ra_kernel_resolve(opts)), a.threads,
               a.threads == 0 ? " (OpenMP default)" : "");
        printf("step (ra_mpi_ragged_gqa, %s, root %s): median %.3f ms, best %.3f ms "
               "[slowest rank, %d steps]\n",
               a.method == RA_MPI_METHOD_GATHER ? "gather" : "reduce",
               a.root == RA_MPI_ALL_RANKS ? "all" : "one", step[a.steps / 2] * 1e3,
               step[0] * 1e3, a.steps);
        printf("  local ra_ragged_gqa alone: median %.3f ms, best %.3f ms\n",
               local[a.steps / 2] * 1e3, local[0] * 1e3);
        printf("  ra_mpi_merge alone, median (best) of %d rounds of %d: reduce %.1f (%.1f) us, "
               "gather %.1f (%.1f) us; agreement allreduce %.1f (%.1f) us\n",
               ROUNDS, reps, reduce[ROUNDS / 2] * 1e6, reduce[0] * 1e6,
               gather[ROUNDS / 2] * 1e6, gather[0] * 1e6, agree[ROUNDS / 2] * 1e6,
               agree[0] * 1e6);
        printf("  each rank sends %lld floats (%lld bytes) per step\n", floats, floats * 4);
        printf("checksum: sum(o) %.9g  o[0,0,0,0] %.9g  M[0,0] %.9g  L[0,0] %.9g\n", sum,
               (double)o[0], (double)m[0], (double)l[0]);
    }

    ra_tensor *all[] = {tq, tk, tv, tlen, to, tm, tl, po, pm, pl, mo};
    for (size_t i = 0; i < sizeof all / sizeof *all; ++i)
        ra_tensor_destroy(all[i]);
    ra_options_destroy(opts);
    free(q);
    free(k);
    free(v);
    free(len);
    free(step);
    free(local);
    MPI_Finalize();
    return 0;
}
