/* A ragged GQA problem small enough to solve by hand, shared by the consumer programs.
 *
 * B = 1, S = 3, Hq = 2, Hkv = 1, D = 2, lengths = {2}, scale 1:
 *   q[h0] = (1, 0)   k[t0] = (0, 0)   v[t0] = (1, 0)
 *   q[h1] = (0, 1)   k[t1] = (1, 0)   v[t1] = (0, 2)
 *                    k[t2] = (100, 100), v[t2] = (1000, 1000): beyond the length, must not count.
 * Head 0: scores (0, 1), m = 1, l = 1 + e^-1, o*l = e^-1 v0 + v1 = (e^-1, 2).
 * Head 1: scores (0, 0), m = 0, l = 2,        o*l = v0 + v1      = (1, 2).
 * ra_ragged_gqa returns o un-normalized (o*l). Had t2 counted, m would be 100. */
#ifndef RA_TINY_GQA_H
#define RA_TINY_GQA_H

#include <stdint.h>
#include <stdio.h>

static const int64_t tiny_q_shape[4] = {1, 1, 2, 2};  /* [B,1,Hq,D] */
static const int64_t tiny_kv_shape[4] = {1, 3, 1, 2}; /* [B,S,Hkv,D] */
static const int64_t tiny_len_shape[1] = {1};         /* [B] */
static const int64_t tiny_ml_shape[4] = {1, 1, 2, 1}; /* [B,1,Hq,1] */

typedef struct tiny_buffers {
    float q[4], k[6], v[6];
    int32_t lengths[1];
    float o[4], m[2], l[2];
} tiny_buffers;

static void tiny_fill(tiny_buffers *b)
{
    static const float q[4] = {1, 0, 0, 1};
    static const float k[6] = {0, 0, 1, 0, 100, 100};
    static const float v[6] = {1, 0, 0, 2, 1000, 1000};
    int i;
    for (i = 0; i < 4; i++) b->q[i] = q[i];
    for (i = 0; i < 6; i++) b->k[i] = k[i];
    for (i = 0; i < 6; i++) b->v[i] = v[i];
    b->lengths[0] = 2;
    for (i = 0; i < 4; i++) b->o[i] = -1.0f; /* sentinels: every output must be written */
    for (i = 0; i < 2; i++) b->m[i] = b->l[i] = -1.0f;
}

static int tiny_close(const char *what, int i, double got, double want, double tol)
{
    double d = got - want;
    if (d < 0) d = -d;
    if (!(d <= tol)) { /* also catches NaN */
        fprintf(stderr, "%s[%d] = %.9g, want %.9g (tolerance %.3g)\n", what, i, got, want, tol);
        return 0;
    }
    return 1;
}

/* Returns the number of outputs that differ from the hand-computed values. Tolerance: 1e-5
 * relative to max|o| = 2 for o, and to the magnitude (at least 1) for m and l. */
static int tiny_check(const tiny_buffers *b)
{
    const double e1 = 0.36787944117144233; /* exp(-1) */
    const double want_o[4] = {e1, 2.0, 1.0, 2.0};
    const double want_m[2] = {1.0, 0.0};
    const double want_l[2] = {1.0 + e1, 2.0};
    int i, bad = 0;
    for (i = 0; i < 4; i++) bad += !tiny_close("o", i, b->o[i], want_o[i], 1e-5 * 2.0);
    for (i = 0; i < 2; i++) bad += !tiny_close("m", i, b->m[i], want_m[i], 1e-5);
    for (i = 0; i < 2; i++) bad += !tiny_close("l", i, b->l[i], want_l[i], 1e-5 * 2.0);
    return bad;
}

#endif /* RA_TINY_GQA_H */
