/* The seed's get_mha_cost_estimate. */
#include "status_internal.h"
#include "tensor_internal.h"

ra_status ra_mha_cost_estimate(const ra_tensor *q, const ra_tensor *k, const ra_tensor *v,
                               const ra_tensor *lengths, int64_t *flops,
                               int64_t *transcendentals, int64_t *bytes_accessed)
{
    const ra_tensor *ts[] = {q, k, v, lengths};
    const char *names[] = {"q", "k", "v", "lengths"};
    for (int i = 0; i < 4; i++)
        if (!ts[i])
            return ra__fail(RA_ERR_INVALID_ARGUMENT, "ra_mha_cost_estimate: %s is NULL", names[i]);
    if (q->rank != 4 || k->rank < 2)
        return ra__fail(RA_ERR_SHAPE, "ra_mha_cost_estimate: q must be [B,1,H,D] (rank %d given) "
                        "and k [B,S,Hkv,D] (rank %d given)", q->rank, k->rank);
    /* batch_size, _, num_heads, head_dim = q.shape; seq_len = k.shape[1] */
    int64_t B = q->shape[0], H = q->shape[2], D = q->shape[3], S = k->shape[1];
    int64_t f, tr, per, bytes = 0;
    if (__builtin_mul_overflow(4, D, &per) || __builtin_add_overflow(per, S, &per) ||
        __builtin_mul_overflow(B, H, &tr) || __builtin_mul_overflow(tr, S, &tr) ||
        __builtin_mul_overflow(tr, per, &f))
        return ra__fail(RA_ERR_OVERFLOW, "ra_mha_cost_estimate: flops overflow int64");
    for (int i = 0; i < 4; i++) {
        int64_t b;
        if (__builtin_mul_overflow(ts[i]->numel, (int64_t)ra__dtype_size(ts[i]->dtype), &b) ||
            __builtin_add_overflow(bytes, b, &bytes))
            return ra__fail(RA_ERR_OVERFLOW, "ra_mha_cost_estimate: bytes overflow int64");
    }
    if (flops)
        *flops = f;
    if (transcendentals)
        *transcendentals = tr;
    if (bytes_accessed)
        *bytes_accessed = bytes;
    return RA_OK;
}
