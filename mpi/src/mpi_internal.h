/* Internals of raggedattn_mpi shared by its source files. */
#ifndef RA_MPI_INTERNAL_H
#define RA_MPI_INTERNAL_H

#include <stdint.h>

#include "raggedattn_mpi.h"

/* Records this thread's message for ra_mpi_last_error() and returns s. */
ra_status ra_mpi__fail(ra_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The communicator facts every call needs, checked before any collective. */
typedef struct ra_mpi__comm {
    MPI_Comm comm;
    int rank, size;
    int root;           /* RA_MPI_ALL_RANKS or a rank */
    ra_mpi_method method; /* AUTO resolved */
} ra_mpi__comm;

/* Fails (without communicating) when MPI is not usable or comm is MPI_COMM_NULL. A bad root or
 * method is not reported here: it becomes the rank's local status, which the ranks then agree
 * on, so `local` receives it. */
ra_status ra_mpi__comm_init(ra_mpi__comm *c, const char *fn, MPI_Comm comm, int root,
                            ra_mpi_method method, ra_status *local);

/* True when this rank receives the merged result. */
static inline int ra_mpi__receives(const ra_mpi__comm *c)
{
    return c->root == RA_MPI_ALL_RANKS || c->root == c->rank;
}

/* ra_mpi_merge after the local work: `local` is this rank's status so far (RA_OK, or an error
 * whose message is already recorded). Every rank must get here, whatever `local` is, so that
 * the ranks agree on the outcome instead of waiting for each other. out_names are the caller's
 * names of the outputs, for messages. */
ra_status ra_mpi__merge(const ra_mpi__comm *c, const char *fn, const char *const out_names[3],
                        ra_status local,
                        const ra_tensor *o, const ra_tensor *m, const ra_tensor *l,
                        ra_tensor *o_out, ra_tensor *m_out, ra_tensor *l_out);

/* ---- packed records: (m, l, o[0..D-1]) per (b, h), D + 2 floats -------------------------- */

/* The merge rule on two records, in place: right = left (+) right, where left comes from the
 * lower ranks. The signature of an MPI_User_function; D is read from the datatype's size. */
void ra_mpi__record_op(void *left, void *right, int *count, MPI_Datatype *type);

/* Copies a partial state (contiguous or strided f32 tensors [B,1,H,D] and [B,1,H,1]) into
 * B*H records. */
void ra_mpi__pack(const ra_tensor *o, const ra_tensor *m, const ra_tensor *l, float *rec);

/* Views of the o, m and l fields of B*H records as tensors of the partial-state shapes, for
 * ra_merge. On failure nothing is left allocated. */
ra_status ra_mpi__wrap_records(float *rec, int64_t B, int64_t H, int64_t D, ra_tensor **o,
                               ra_tensor **m, ra_tensor **l);

#endif
