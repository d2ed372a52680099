/* Packed partial states: one record (m, l, o[0..D-1]) per (batch, head). A record is what one
 * rank sends per (b, h), and the unit an MPI reduction combines. */
#include <math.h>
#include <stddef.h>

#include "mpi_internal.h"

/* Weight of a part with max m_i against the merged max M; an empty part (m = -inf) and every
 * part of an all-empty merge (M = -inf) weigh 0, never NaN. */
static double ra_mpi__weight(float m_i, float M)
{
    return M == -INFINITY ? 0.0 : exp((double)m_i - (double)M);
}

/* The same log-sum-exp rule as ra_merge for two parts. Weights and sums are taken in double and
 * rounded once, so a chain of pairwise merges loses no more than one rounding per step. */
static void ra_mpi__merge_record(const float *a, float *b, int D)
{
    /* A NaN-ignoring max: a NaN part still poisons o and l through its weight. */
    float M = b[0] > a[0] ? b[0] : a[0];
    double wa = ra_mpi__weight(a[0], M);
    double wb = ra_mpi__weight(b[0], M);
    b[0] = M;
    b[1] = (float)(wa * a[1] + wb * b[1]);
    for (int d = 0; d < D; ++d)
        b[2 + d] = (float)(wa * a[2 + d] + wb * b[2 + d]);
}

void ra_mpi__record_op(void *left, void *right, int *count, MPI_Datatype *type)
{
    /* The datatype is a contiguous run of D + 2 floats, so its size tells D: no global state
     * is needed to pass it. */
    int bytes = 0;
    MPI_Type_size(*type, &bytes);
    int rec = bytes / (int)sizeof(float);
    const float *a = left;
    float *b = right;
    for (int i = 0; i < *count; ++i)
        ra_mpi__merge_record(a + (size_t)i * rec, b + (size_t)i * rec, rec - 2);
}

void ra_mpi__pack(const ra_tensor *o, const ra_tensor *m, const ra_tensor *l, float *rec)
{
    int64_t B = ra_tensor_dim(o, 0), H = ra_tensor_dim(o, 2), D = ra_tensor_dim(o, 3);
    const float *po = ra_tensor_data(o), *pm = ra_tensor_data(m), *pl = ra_tensor_data(l);
    /* Strides read once: the accessors are calls into the shared library. */
    const int64_t ob = ra_tensor_stride(o, 0), oh = ra_tensor_stride(o, 2);
    const int64_t od = ra_tensor_stride(o, 3);
    const int64_t mb = ra_tensor_stride(m, 0), mh = ra_tensor_stride(m, 2);
    const int64_t lb = ra_tensor_stride(l, 0), lh = ra_tensor_stride(l, 2);
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t h = 0; h < H; ++h) {
            float *r = rec + (size_t)(b * H + h) * (size_t)(D + 2);
            const float *src = po + b * ob + h * oh;
            r[0] = pm[b * mb + h * mh];
            r[1] = pl[b * lb + h * lh];
            for (int64_t d = 0; d < D; ++d)
                r[2 + d] = src[d * od];
        }
    }
}

ra_status ra_mpi__wrap_records(float *rec, int64_t B, int64_t H, int64_t D, ra_tensor **o,
                               ra_tensor **m, ra_tensor **l)
{
    int64_t row = H * (D + 2);
    const int64_t st[4] = {row, row, D + 2, 1};
    const int64_t so[4] = {B, 1, H, D}, sml[4] = {B, 1, H, 1};
    *o = *m = *l = NULL;
    ra_status s = ra_tensor_wrap(o, RA_DTYPE_F32, 4, so, st, rec + 2);
    if (s == RA_OK)
        s = ra_tensor_wrap(m, RA_DTYPE_F32, 4, sml, st, rec);
    if (s == RA_OK)
        s = ra_tensor_wrap(l, RA_DTYPE_F32, 4, sml, st, rec + 1);
    if (s != RA_OK) {
        ra_tensor_destroy(*o);
        ra_tensor_destroy(*m);
        ra_tensor_destroy(*l);
        *o = *m = *l = NULL;
        return ra_mpi__fail(s, "wrapping the packed records: %s", ra_last_error());
    }
    return RA_OK;
}
