/* Plain loops, written for clarity: see shard_oracle.h. */
#include "shard_oracle.h"

#include <math.h>
#include <string.h>

float so_value(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 1; /* splitmix64 of a counter */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

uint16_t so_f32_to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if (isnan(x))
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float so_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

void so_attention(int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D, const float *q,
                  const float *k, const float *v, const int32_t *len, double scale, double *o,
                  double *m, double *l)
{
    int64_t G = Hq / Hkv;
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t h = 0; h < Hq; ++h) {
            int64_t j = h / G;
            const float *qh = q + (b * Hq + h) * D;
            double *oh = o + (b * Hq + h) * D;
            double M = -INFINITY, L = 0.0;
            for (int64_t t = 0; t < len[b]; ++t) {
                const float *kt = k + ((b * S + t) * Hkv + j) * D;
                double s = 0.0;
                for (int64_t d = 0; d < D; ++d)
                    s += (double)qh[d] * kt[d];
                if (s * scale > M)
                    M = s * scale;
            }
            for (int64_t d = 0; d < D; ++d)
                oh[d] = 0.0;
            for (int64_t t = 0; t < len[b]; ++t) {
                const float *kt = k + ((b * S + t) * Hkv + j) * D;
                const float *vt = v + ((b * S + t) * Hkv + j) * D;
                double s = 0.0;
                for (int64_t d = 0; d < D; ++d)
                    s += (double)qh[d] * kt[d];
                double p = exp(s * scale - M);
                L += p;
                for (int64_t d = 0; d < D; ++d)
                    oh[d] += p * vt[d];
            }
            for (int64_t d = 0; d < D; ++d)
                oh[d] = L > 0.0 ? oh[d] / L : 0.0;
            m[b * Hq + h] = M;
            l[b * Hq + h] = L;
        }
    }
}

double so_rel_err(const float *got, const double *want, size_t n)
{
    double max_ref = 0.0, max_abs = 0.0;
    for (size_t i = 0; i < n; ++i) {
        if (fabs(want[i]) > max_ref)
            max_ref = fabs(want[i]);
        double e = fabs((double)got[i] - want[i]);
        if (isnan(e))
            return INFINITY;
        if (e > max_abs)
            max_abs = e;
    }
    return max_ref > 0.0 ? max_abs / max_ref : max_abs;
}
