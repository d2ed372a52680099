/* The seed's reference_mqa/mha/gqa, transcribed literally (docs/design.md, "The reference
 * arithmetic"):
 *   1. logits = scale * (q . k) in f32, over all S positions;
 *   2. mask_value added where t >= length;
 *   3. subtract the max, exp;  4. l = the sum;
 *   5. probabilities rounded to v's dtype;
 *   6. PV with f32 accumulation, rounded to v's dtype;  7. divided by l in f32.
 * Work items are (batch, KV head); both products are GEMMs over chunks of positions. */
#include <limits.h>
#include <math.h>
#include <omp.h>

#include "alloc_internal.h"
#include "blas_guard.h"
#include "common/dtype.h"
#include "reference.h"
#include "common/size_math.h"
#include "status_internal.h"
#include "team.h"
#include "tensor_internal.h"

enum { CHUNK = 256 }; /* positions converted to f32 per GEMM */

typedef struct ref_scratch {
    float *q;      /* [G][D] */
    float *logits; /* [G][S] */
    float *rows;   /* [CHUNK][D] */
    float *o;      /* [G][D] */
    float *l;      /* [G] */
} ref_scratch;

/* Positions [t0, t0+n) of head j of batch b, as f32 rows [n][D]. */
static void load_rows(const ra__operand *x, int64_t b, int64_t j, int64_t t0, int64_t n,
                      int64_t D, float *rows)
{
    for (int64_t t = 0; t < n; t++)
        for (int64_t d = 0; d < D; d++)
            rows[t * D + d] = ra__load_f32(x->data, x->dtype,
                                           b * x->sb + (t0 + t) * x->st + j * x->sh + d * x->sd);
}

static void reference_item(const ra__problem *p, int64_t b, int64_t j, const ref_scratch *w)
{
    const int64_t G = p->G, D = p->D, S = p->S;
    const int64_t len = p->len[b];
    for (int64_t g = 0; g < G; g++)
        for (int64_t d = 0; d < D; d++)
            w->q[g * D + d] = ra__load_f32(p->q.data, p->q.dtype,
                                           b * p->q.sb + (j * G + g) * p->q.sh + d * p->q.sd);
    /* 1. logits = scale * q.k */
    for (int64_t t0 = 0; t0 < S; t0 += CHUNK) {
        int64_t n = S - t0 < CHUNK ? S - t0 : CHUNK;
        load_rows(&p->k, b, j, t0, n, D, w->rows);
        ra__sgemm(true, (int)G, (int)n, (int)D, 1.0f, w->q, (int)D, w->rows, (int)D, 0.0f,
                  w->logits + t0, (int)S);
    }
    /* the scale after the product: BLAS skips the product when alpha is 0 (NaN would vanish) */
    for (int64_t i = 0; i < G * S; i++)
        w->logits[i] *= p->scale;
    /* 2-5. mask, max, exp, sum, round to v's dtype */
    for (int64_t g = 0; g < G; g++) {
        float *lg = w->logits + g * S;
        float mx = -INFINITY;
        for (int64_t t = 0; t < S; t++) {
            if (t >= len)
                lg[t] += p->mask_value;
            mx = (lg[t] > mx || isnan(lg[t])) ? lg[t] : mx; /* jnp.max propagates NaN */
        }
        float sum = 0.0f;
        for (int64_t t = 0; t < S; t++) {
            float e = expf(lg[t] - mx);
            sum += e;
            lg[t] = ra__round_to(p->v.dtype, e);
        }
        w->l[g] = sum;
        int64_t h = j * G + g;
        if (p->m)
            p->m[b * p->m_sb + h * p->m_sh] = mx;
        if (p->l)
            p->l[b * p->l_sb + h * p->l_sh] = sum;
    }
    /* 6. PV in f32 */
    for (int64_t i = 0; i < G * D; i++)
        w->o[i] = 0.0f;
    for (int64_t t0 = 0; t0 < S; t0 += CHUNK) {
        int64_t n = S - t0 < CHUNK ? S - t0 : CHUNK;
        load_rows(&p->v, b, j, t0, n, D, w->rows);
        ra__sgemm(false, (int)G, (int)D, (int)n, 1.0f, w->logits + t0, (int)S, w->rows, (int)D,
                  1.0f, w->o, (int)D);
    }
    /* 6-7. round to v's dtype, divide by l (S == 0 has no positions: o = 0, as when empty) */
    for (int64_t g = 0; g < G; g++) {
        float *out = p->o + b * p->o_sb + (j * G + g) * p->o_sh;
        for (int64_t d = 0; d < D; d++)
            out[d * p->o_sd] = S ? ra__round_to(p->v.dtype, w->o[g * D + d]) / w->l[g] : 0.0f;
    }
}

ra_status ra__reference(const ra__problem *p)
{
    if (ra__problem_modified(p) || p->k.scale || p->v.scale)
        return ra__fail(RA_ERR_UNSUPPORTED, "reference: the reference functions compute the "
                        "seed's arithmetic, without soft-cap, window, sinks, ALiBi or quantized "
                        "K/V; use the ragged functions for those");
    if (p->B == 0 || p->Hq == 0)
        return RA_OK;
    if (p->S > INT_MAX || p->G > INT_MAX || p->D > INT_MAX)
        return ra__fail(RA_ERR_OVERFLOW, "reference: S = %lld, G = %lld or D = %lld exceeds the "
                        "GEMM's int range", (long long)p->S, (long long)p->G, (long long)p->D);
    const int64_t G = p->G, D = p->D;
    /* One thread's slices of the scratch block. */
    ra__arena per = {0, false};
    size_t at_q = ra__arena_take(&per, G, D, 1, sizeof(float));
    size_t at_logits = ra__arena_take(&per, G, p->S, 1, sizeof(float));
    size_t at_rows = ra__arena_take(&per, CHUNK, D, 1, sizeof(float));
    size_t at_o = ra__arena_take(&per, G, D, 1, sizeof(float));
    size_t at_l = ra__arena_take(&per, G, 1, 1, sizeof(float));
    int64_t items = p->B * p->Hkv;
    int64_t positions; /* the reference reads all S positions of every sequence */
    if (__builtin_mul_overflow(p->B, p->S, &positions))
        positions = INT64_MAX;
    int nt = ra__team_size(p->num_threads, items, positions, p->Hq, p->D);
    ra__arena all = {0, false};
    ra__arena_take(&all, nt, 1, 1, per.used);
    if (per.overflow || all.overflow)
        return ra__fail(RA_ERR_OVERFLOW, "reference: scratch for G = %lld, S = %lld, D = %lld "
                        "overflows", (long long)G, (long long)p->S, (long long)D);
    char *scratch = ra__alloc(all.used);
    if (!scratch)
        return ra__fail(RA_ERR_OUT_OF_MEMORY, "reference: cannot allocate %zu bytes of scratch",
                        all.used);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        char *base = scratch + (size_t)omp_get_thread_num() * per.used;
        ref_scratch w = {(float *)(base + at_q), (float *)(base + at_logits),
                         (float *)(base + at_rows), (float *)(base + at_o), (float *)(base + at_l)};
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < items; i++)
            reference_item(p, i / p->Hkv, i % p->Hkv, &w);
    }
    ra__free(scratch);
    return RA_OK;
}
