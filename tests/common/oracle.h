/* Test helpers that share no code with the library: dtype conversions, seeded random data,
 * strided test buffers, and double-precision oracles for attention, the seed's reference
 * arithmetic and the log-sum-exp merge. Everything here is plain loops, written for clarity
 * rather than speed, so that a bug in the library cannot hide behind a shared helper. */
#ifndef RA_TEST_ORACLE_H
#define RA_TEST_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raggedattn.h"

/* ---- dtypes --------------------------------------------------------------------------- */

/* Round-to-nearest-even conversions, with subnormals, Inf and NaN. */
uint16_t or_f32_to_f16(float x);
float or_f16_to_f32(uint16_t h);
uint16_t or_f32_to_bf16(float x);
float or_bf16_to_f32(uint16_t h);
/* An FP8 code's value (E4M3 as e4m3fn, E5M2 as binary16's top byte). */
double or_fp8_to_f64(ra_dtype dt, uint8_t x);
/* x rounded to dtype dt and back (identity for f32). */
float or_round_to(ra_dtype dt, float x);
size_t or_dtype_size(ra_dtype dt);
const char *or_dtype_name(ra_dtype dt);

/* ---- random numbers (splitmix64: fixed seeds give the same data everywhere) ------------- */

typedef struct or_rng {
    uint64_t state;
} or_rng;

or_rng or_rng_seed(uint64_t seed);
uint64_t or_rng_next(or_rng *r);
double or_rng_uniform(or_rng *r, double lo, double hi); /* [lo, hi) */
int64_t or_rng_int(or_rng *r, int64_t lo, int64_t hi);  /* [lo, hi] inclusive */

/* ---- test buffers: caller-style memory wrapped as an ra_tensor -------------------------- */

/* A buffer of rank 1..4 with arbitrary non-negative strides. The allocation covers the furthest
 * element (at least 64 bytes), is 64-byte aligned, and starts filled with a NaN pattern of its
 * dtype (0x5A5A5A5A for i32), so a kernel that reads padding or past the valid length shows it. */
typedef struct or_buf {
    ra_dtype dtype;
    int rank;
    int64_t shape[4];
    int64_t strides[4];
    int64_t numel;
    size_t bytes;
    unsigned char *data;
    ra_tensor *t; /* wraps data with shape and strides */
} or_buf;

/* Fails the running cmocka test if the wrap fails. strides NULL = row-major contiguous. */
void or_buf_init(or_buf *b, ra_dtype dt, int rank, const int64_t *shape, const int64_t *strides);
/* Row-major strides with `pad` extra elements added to every axis's extent but the last,
 * e.g. a padded [B,S,H,D] has rows of D+pad elements. */
void or_buf_init_padded(or_buf *b, ra_dtype dt, int rank, const int64_t *shape, int64_t pad);
void or_buf_free(or_buf *b);

int64_t or_buf_offset(const or_buf *b, const int64_t *idx);
double or_buf_get(const or_buf *b, const int64_t *idx);
void or_buf_set(or_buf *b, const int64_t *idx, double x); /* rounds through f32 to the dtype */
/* Every logical element, in row-major order. */
void or_buf_fill_uniform(or_buf *b, or_rng *r, double lo, double hi);
/* Fills the whole allocation (padding included) with one byte. */
void or_buf_fill_bytes(or_buf *b, unsigned char byte);
/* Logical f32 elements gathered into out[numel] in row-major order. */
void or_buf_gather_f32(const or_buf *b, float *out);

/* ---- oracle inputs: logical views over test buffers ------------------------------------- */

/* A logical view: element (i0,i1,i2,i3) is at data + sum(i_k * st[k]) elements. q is viewed
 * as (b, h, d, -), k and v as (b, t, j, d). */
typedef struct or_view {
    const void *data;
    ra_dtype dtype;
    int64_t st[4];
} or_view;

/* Maps logical axis k to buffer axis axes[k]; -1 means a unit axis (stride 0). */
or_view or_view_of(const or_buf *b, int a0, int a1, int a2, int a3);
double or_view_get(const or_view *v, int64_t i0, int64_t i1, int64_t i2, int64_t i3);

typedef struct or_dims {
    int64_t B, Hq, Hkv, S, D;
} or_dims;

/* A state per (b, h): m, l, un-normalized o and normalized o (row-major [B][H][D]). */
typedef struct or_state {
    int64_t B, H, D;
    double *m, *l, *o_un, *o;
} or_state;

void or_state_alloc(or_state *s, int64_t B, int64_t H, int64_t D);
void or_state_free(or_state *s);

/* Exact attention over t < lengths[b] in double (docs/design.md, "The attention computed").
 * lengths[b] == 0 gives o = o_un = 0, m = -inf, l = 0. */
void or_attention(const or_dims *d, const or_view *q, const or_view *k, const or_view *v,
                  const int32_t *lengths, double scale, or_state *out);

/* The score modifiers of ra_options_set_softcap/window/sinks/alibi (0 / NULL: off). */
typedef struct or_modifiers {
    double softcap;
    int64_t window, sink_positions;
    const float *sinks, *alibi; /* [Hq] */
} or_modifiers;

/* or_attention with the modifiers, as the header defines them: s = scale * q.k, then
 * cap * tanh(s / cap), then - slope[h] * (len - 1 - t); only positions t >= len - window or
 * t < sink_positions when window > 0; the sink joins m and l only. No visible position and no
 * sink gives the empty state. */
void or_attention_mod(const or_dims *d, const or_view *q, const or_view *k, const or_view *v,
                      const int32_t *lengths, double scale, const or_modifiers *mod,
                      or_state *out);

/* The seed's reference arithmetic (docs/design.md, "The reference arithmetic"). Logits are
 * rounded to f32, mask_value is added in f32 where t >= lengths[b], probabilities are rounded
 * to v's dtype, the PV sum is rounded to v's dtype, then divided by l. o_un is left as PV
 * (rounded). With length 0 this gives the seed's mean of v over all S positions,
 * m ~ mask_value and l = S. */
void or_reference(const or_dims *d, const or_view *q, const or_view *k, const or_view *v,
                  const int32_t *lengths, float scale, float mask_value, or_state *out);

/* The log-sum-exp merge (docs/design.md, "Output conventions") of n parts (their m, l, o_un)
 * into out (m = M, l = L, o_un = o * L, o normalized). All-empty gives o = 0, M = -inf,
 * L = 0. */
void or_merge(size_t n, const or_state *parts, or_state *out);

/* ---- comparisons ------------------------------------------------------------------------ */

/* max|got - expect| over finite expectations, relative to max|expect| (absolute when that is
 * 0). A non-finite expectation must be matched exactly in class (same Inf, or NaN); each
 * mismatch, and each non-finite got against a finite expectation, counts in `nonfinite`. */
typedef struct or_err {
    double max_abs;
    double max_ref;
    double rel;
    int64_t worst;
    int64_t nonfinite;
} or_err;

or_err or_compare(const float *got, const double *expect, int64_t n);
or_err or_compare_f32(const float *got, const float *expect, int64_t n);

/* ---- error statistics printed at the end of a run --------------------------------------- */

/* Keeps the largest value per key; or_stat_print lists them with cmocka's print_message. */
void or_stat_note(const char *key, double err);
void or_stat_print(const char *title);

/* True when `word` appears in msg bounded by characters that cannot be part of an
 * identifier, e.g. "q" in "q: dtype" but not in "required". */
bool or_msg_names(const char *msg, const char *word);

#endif
