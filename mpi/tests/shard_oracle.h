/* Test helpers for the MPI layer that share no code with the library: reproducible data and a
 * double-precision attention oracle over the whole (unsharded) KV cache. */
#ifndef RA_SHARD_ORACLE_H
#define RA_SHARD_ORACLE_H

#include <stddef.h>
#include <stdint.h>

/* Uniform in [-1, 1), a pure function of (seed, i), so every rank makes the same data. */
float so_value(uint64_t seed, uint64_t i);

/* x rounded to bfloat16 (nearest even), as bits, and back. */
uint16_t so_f32_to_bf16(float x);
float so_bf16_to_f32(uint16_t h);

/* Exact attention in double, q [B][Hq][D], k and v [B][S][Hkv][D], over t < len[b]:
 * normalized o [B][Hq][D], m and l [B][Hq]. len[b] == 0 gives o = 0, m = -inf, l = 0. */
void so_attention(int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, const float *q,
                  const float *k, const float *v, const int32_t *len, double scale, double *o,
                  double *m, double *l);

/* max|got - want| / max|want| over n values (absolute when max|want| is 0); a NaN in got
 * gives +inf. */
double so_rel_err(const float *got, const double *want, size_t n);

#endif
