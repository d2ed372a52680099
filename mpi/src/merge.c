/* ra_mpi_merge: the partial states of all ranks, combined in rank order. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mpi_internal.h"

static ra_status ra_mpi__mpi_error(const char *fn, const char *call, int err)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error code %d", err);
    return ra_mpi__fail(RA_ERR_INTERNAL, "%s: %s failed: %s", fn, call, text);
}

ra_status ra_mpi__comm_init(ra_mpi__comm *c, const char *fn, MPI_Comm comm, int root,
                            ra_mpi_method method, ra_status *local)
{
    int flag = 0;
    MPI_Initialized(&flag);
    if (!flag)
        return ra_mpi__fail(RA_ERR_INVALID_ARGUMENT, "%s: MPI is not initialized", fn);
    MPI_Finalized(&flag);
    if (flag)
        return ra_mpi__fail(RA_ERR_INVALID_ARGUMENT, "%s: MPI is already finalized", fn);
    if (comm == MPI_COMM_NULL)
        return ra_mpi__fail(RA_ERR_INVALID_ARGUMENT, "%s: comm is MPI_COMM_NULL", fn);
    int err = MPI_Comm_test_inter(comm, &flag);
    if (err != MPI_SUCCESS)
        return ra_mpi__mpi_error(fn, "MPI_Comm_test_inter", err);
    if (flag)
        return ra_mpi__fail(RA_ERR_INVALID_ARGUMENT,
                            "%s: comm is an intercommunicator; an intracommunicator is required",
                            fn);
    if ((err = MPI_Comm_rank(comm, &c->rank)) != MPI_SUCCESS)
        return ra_mpi__mpi_error(fn, "MPI_Comm_rank", err);
    if ((err = MPI_Comm_size(comm, &c->size)) != MPI_SUCCESS)
        return ra_mpi__mpi_error(fn, "MPI_Comm_size", err);
    c->comm = comm;
    c->root = root;
    c->method = method == RA_MPI_METHOD_AUTO ? RA_MPI_METHOD_REDUCE : method;

    *local = RA_OK;
    if (root != RA_MPI_ALL_RANKS && (root < 0 || root >= c->size))
        *local = ra_mpi__fail(RA_ERR_INVALID_ARGUMENT,
                              "%s: root = %d; expected RA_MPI_ALL_RANKS (-1) or a rank in 0..%d",
                              fn, root, c->size - 1);
    else if (method != RA_MPI_METHOD_AUTO && method != RA_MPI_METHOD_REDUCE &&
             method != RA_MPI_METHOD_GATHER)
        *local = ra_mpi__fail(RA_ERR_INVALID_ARGUMENT, "%s: method = %d is not a ra_mpi_method",
                              fn, (int)method);
    return RA_OK;
}

/* f32, rank 4 and, when B >= 0, the shape [B,1,H,last]. */
static ra_status ra_mpi__check(const char *fn, const char *name, const ra_tensor *t, int64_t B,
                               int64_t H, int64_t last)
{
    if (t == NULL)
        return ra_mpi__fail(RA_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, name);
    if (ra_tensor_dtype(t) != RA_DTYPE_F32)
        return ra_mpi__fail(RA_ERR_DTYPE, "%s: %s has dtype %d; partial states are f32 (%d)", fn,
                            name, (int)ra_tensor_dtype(t), (int)RA_DTYPE_F32);
    if (ra_tensor_rank(t) != 4)
        return ra_mpi__fail(RA_ERR_SHAPE, "%s: %s has rank %d; expected 4", fn, name,
                            ra_tensor_rank(t));
    if (B < 0)
        return RA_OK;
    if (ra_tensor_dim(t, 0) != B || ra_tensor_dim(t, 1) != 1 || ra_tensor_dim(t, 2) != H ||
        ra_tensor_dim(t, 3) != last)
        return ra_mpi__fail(RA_ERR_SHAPE, "%s: %s is [%lld,%lld,%lld,%lld]; expected [%lld,1,%lld,%lld]",
                            fn, name, (long long)ra_tensor_dim(t, 0), (long long)ra_tensor_dim(t, 1),
                            (long long)ra_tensor_dim(t, 2), (long long)ra_tensor_dim(t, 3),
                            (long long)B, (long long)H, (long long)last);
    return RA_OK;
}

static ra_status ra_mpi__check_all(const ra_mpi__comm *c, const char *fn,
                                   const char *const out_names[3], const ra_tensor *o,
                                   const ra_tensor *m, const ra_tensor *l,
                                   const ra_tensor *o_out, const ra_tensor *m_out,
                                   const ra_tensor *l_out, int64_t *B, int64_t *H, int64_t *D)
{
    ra_status s = ra_mpi__check(fn, "o", o, -1, 0, 0);
    if (s != RA_OK)
        return s;
    *B = ra_tensor_dim(o, 0);
    *H = ra_tensor_dim(o, 2);
    *D = ra_tensor_dim(o, 3);
    if (ra_tensor_dim(o, 1) != 1)
        return ra_mpi__fail(RA_ERR_SHAPE, "%s: o has dim 1 = %lld; expected 1 ([B,1,H,D])", fn,
                            (long long)ra_tensor_dim(o, 1));
    if (*D == 0)
        return ra_mpi__fail(RA_ERR_SHAPE, "%s: o has D = 0", fn);
    if ((s = ra_mpi__check(fn, "m", m, *B, *H, 1)) != RA_OK ||
        (s = ra_mpi__check(fn, "l", l, *B, *H, 1)) != RA_OK)
        return s;
    /* MPI counts are int: B*H records of D + 2 floats each. */
    if (*D > INT_MAX - 2 || (*H > 0 && *B > INT_MAX / *H))
        return ra_mpi__fail(RA_ERR_OVERFLOW,
                            "%s: B*H = %lld*%lld records of D+2 = %lld floats exceed MPI's int "
                            "counts", fn, (long long)*B, (long long)*H, (long long)(*D + 2));
    size_t rec_bytes = (size_t)(*D + 2) * sizeof(float);
    size_t n = (size_t)(*B * *H) * (size_t)c->size;
    if (n != 0 && rec_bytes > SIZE_MAX / n)
        return ra_mpi__fail(RA_ERR_OVERFLOW, "%s: %d ranks' records exceed size_t", fn, c->size);
    if (!ra_mpi__receives(c))
        return RA_OK;
    if ((s = ra_mpi__check(fn, out_names[0], o_out, *B, *H, *D)) != RA_OK)
        return s;
    if (m_out != NULL && (s = ra_mpi__check(fn, out_names[1], m_out, *B, *H, 1)) != RA_OK)
        return s;
    if (l_out != NULL && (s = ra_mpi__check(fn, out_names[2], l_out, *B, *H, 1)) != RA_OK)
        return s;
    return RA_OK;
}

/* One small allreduce so that every rank learns whether any rank failed, and whether the
 * shapes agree, before the exchange that would otherwise wait for a rank that gave up. */
static ra_status ra_mpi__agree(const ra_mpi__comm *c, const char *fn, ra_status local,
                               int64_t B, int64_t H, int64_t D)
{
    /* v[0] ranks failures so that the maximum is the lowest failing rank, with its status. */
    int64_t v[7];
    v[0] = local == RA_OK ? 0 : (int64_t)(c->size - c->rank) * 256 + (int64_t)local;
    for (int i = 1; i < 7; ++i)
        v[i] = INT64_MIN; /* a failed rank's shape takes no part */
    if (local == RA_OK) {
        v[1] = B, v[2] = H, v[3] = D;
        v[4] = -B, v[5] = -H, v[6] = -D;
    }
    int err = MPI_Allreduce(MPI_IN_PLACE, v, 7, MPI_INT64_T, MPI_MAX, c->comm);
    if (err != MPI_SUCCESS)
        return ra_mpi__mpi_error(fn, "MPI_Allreduce (agreement)", err);
    if (v[0] != 0) {
        if (local != RA_OK)
            return local; /* this rank's own message stands */
        int first = c->size - (int)(v[0] / 256);
        ra_status s = (ra_status)(v[0] % 256);
        return ra_mpi__fail(s, "%s: rank %d failed with %s; nothing was written", fn, first,
                            ra_status_string(s));
    }
    if (v[1] != -v[4] || v[2] != -v[5] || v[3] != -v[6])
        return ra_mpi__fail(RA_ERR_SHAPE,
                            "%s: the ranks' partial states differ in shape: B in [%lld, %lld], "
                            "H in [%lld, %lld], D in [%lld, %lld]",
                            fn, (long long)-v[4], (long long)v[1], (long long)-v[5],
                            (long long)v[2], (long long)-v[6], (long long)v[3]);
    return RA_OK;
}

static ra_status ra_mpi__exchange(const ra_mpi__comm *c, const char *fn, float *rec, float *all,
                                  int count, int64_t D)
{
    MPI_Datatype rec_t;
    int err = MPI_Type_contiguous((int)(D + 2), MPI_FLOAT, &rec_t);
    if (err != MPI_SUCCESS)
        return ra_mpi__mpi_error(fn, "MPI_Type_contiguous", err);
    if ((err = MPI_Type_commit(&rec_t)) != MPI_SUCCESS) {
        MPI_Type_free(&rec_t);
        return ra_mpi__mpi_error(fn, "MPI_Type_commit", err);
    }
    const char *call;
    if (c->method == RA_MPI_METHOD_REDUCE) {
        MPI_Op op;
        /* Not commutative: MPI must then combine the ranks in rank order, which fixes the
         * rounding for a given rank count. */
        call = "MPI_Op_create";
        err = MPI_Op_create(ra_mpi__record_op, 0, &op);
        if (err == MPI_SUCCESS) {
            if (c->root == RA_MPI_ALL_RANKS) {
                call = "MPI_Allreduce";
                err = MPI_Allreduce(MPI_IN_PLACE, rec, count, rec_t, op, c->comm);
            } else {
                call = "MPI_Reduce";
                err = MPI_Reduce(c->rank == c->root ? MPI_IN_PLACE : rec,
                                 c->rank == c->root ? rec : NULL, count, rec_t, op, c->root,
                                 c->comm);
            }
            MPI_Op_free(&op);
        }
    } else if (c->root == RA_MPI_ALL_RANKS) {
        call = "MPI_Allgather";
        err = MPI_Allgather(rec, count, rec_t, all, count, rec_t, c->comm);
    } else {
        call = "MPI_Gather";
        err = MPI_Gather(rec, count, rec_t, all, count, rec_t, c->root, c->comm);
    }
    MPI_Type_free(&rec_t);
    return err == MPI_SUCCESS ? RA_OK : ra_mpi__mpi_error(fn, call, err);
}

/* Scratch of one call: this rank's records, the gathered ones, and tensor views for ra_merge. */
typedef struct ra_mpi__scratch {
    float *rec, *all;
    size_t nparts;
    ra_tensor **views; /* 3 * nparts: o views, then m views, then l views */
} ra_mpi__scratch;

static void ra_mpi__scratch_free(ra_mpi__scratch *w)
{
    if (w->views != NULL)
        for (size_t i = 0; i < 3 * w->nparts; ++i)
            ra_tensor_destroy(w->views[i]);
    free(w->views);
    free(w->rec);
    free(w->all);
}

/* Everything the exchange and the final merge need, allocated before the ranks agree, so that
 * running out of memory is an error every rank hears about. */
static ra_status ra_mpi__scratch_init(ra_mpi__scratch *w, const ra_mpi__comm *c, const char *fn,
                                      int64_t B, int64_t H, int64_t D)
{
    size_t rec_bytes = (size_t)(D + 2) * sizeof(float);
    size_t count = (size_t)(B * H) > 0 ? (size_t)(B * H) : 1; /* never malloc(0) */
    int gathers = c->method == RA_MPI_METHOD_GATHER && ra_mpi__receives(c);
    w->rec = malloc(count * rec_bytes);
    w->all = gathers ? malloc((size_t)c->size * count * rec_bytes) : NULL;
    if (w->rec == NULL || (gathers && w->all == NULL))
        return ra_mpi__fail(RA_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu records of %zu bytes",
                            fn, count * (gathers ? (size_t)c->size + 1 : 1), rec_bytes);
    if (!ra_mpi__receives(c))
        return RA_OK;
    w->nparts = gathers ? (size_t)c->size : 1;
    w->views = calloc(3 * w->nparts, sizeof *w->views);
    if (w->views == NULL)
        return ra_mpi__fail(RA_ERR_OUT_OF_MEMORY, "%s: out of memory for tensor views", fn);
    for (size_t p = 0; p < w->nparts; ++p) {
        float *base = gathers ? w->all + p * count * (size_t)(D + 2) : w->rec;
        ra_status s = ra_mpi__wrap_records(base, B, H, D, &w->views[p],
                                           &w->views[w->nparts + p], &w->views[2 * w->nparts + p]);
        if (s != RA_OK)
            return s;
    }
    return RA_OK;
}

ra_status ra_mpi__merge(const ra_mpi__comm *c, const char *fn, const char *const out_names[3],
                        ra_status local,
                        const ra_tensor *o, const ra_tensor *m, const ra_tensor *l,
                        ra_tensor *o_out, ra_tensor *m_out, ra_tensor *l_out)
{
    int64_t B = 0, H = 0, D = 0;
    ra_mpi__scratch w = {0};
    if (local == RA_OK)
        local = ra_mpi__check_all(c, fn, out_names, o, m, l, o_out, m_out, l_out, &B, &H, &D);
    if (local == RA_OK)
        local = ra_mpi__scratch_init(&w, c, fn, B, H, D);
    if (local == RA_OK)
        ra_mpi__pack(o, m, l, w.rec);

    ra_status s = ra_mpi__agree(c, fn, local, B, H, D);
    if (s == RA_OK)
        s = ra_mpi__exchange(c, fn, w.rec, w.all, (int)(B * H), D);
    if (s == RA_OK && ra_mpi__receives(c)) {
        /* Normalizes, writes M and L, and for GATHER merges the parts in rank order. */
        const ra_tensor *const *v = (const ra_tensor *const *)w.views;
        s = ra_merge(w.nparts, v, v + w.nparts, v + 2 * w.nparts, o_out, m_out, l_out);
        if (s != RA_OK)
            s = ra_mpi__fail(s, "%s: writing the result: %s", fn, ra_last_error());
    }
    ra_mpi__scratch_free(&w);
    return s;
}

ra_status ra_mpi_merge(MPI_Comm comm, int root, ra_mpi_method method, const ra_tensor *o,
                       const ra_tensor *m, const ra_tensor *l, ra_tensor *o_out,
                       ra_tensor *m_out, ra_tensor *l_out)
{
    static const char fn[] = "ra_mpi_merge";
    ra_mpi__comm c;
    ra_status local;
    ra_status s = ra_mpi__comm_init(&c, fn, comm, root, method, &local);
    if (s != RA_OK)
        return s;
    static const char *const out_names[3] = {"o_out", "m_out", "l_out"};
    return ra_mpi__merge(&c, fn, out_names, local, o, m, l, o_out, m_out, l_out);
}
