/* The log-sum-exp rule for combining partial (o, m, l) states, shared by ra_merge and by the
 * split-KV merge of the decode core so that both give the same bits. */
#ifndef RA_COMMON_LSE_H
#define RA_COMMON_LSE_H

#include <math.h>

/* A part's weight exp(m_i - M) given the running max M of all parts. Empty parts (and every
 * part when all are empty, M = -inf) weigh 0, never NaN. */
static inline float ra__merge_weight(float m_i, float M)
{
    return M == -INFINITY ? 0.0f : expf(m_i - M);
}

/* A max that propagates NaN: a head whose logits are NaN must come out NaN, never empty. */
static inline float ra__nan_max(float a, float b)
{
    return (b > a || b != b) ? b : a;
}

/* The output convention: o/L or the un-normalized o. A state with L = 0 normalizes to 0, but
 * o * 0 keeps a NaN that reached o (a NaN v under a zero weight: 0 * NaN = NaN), as the
 * contract asks of a NaN in a valid position. */
static inline float ra__finish_o(float o, float L, int normalize)
{
    return normalize ? (L == 0.0f ? o * 0.0f : o / L) : o;
}

#endif
