/* ra_mpi_ragged_gqa and ra_mpi_paged_gqa: attention over this rank's KV shard (a contiguous
 * cache or a pool of pages), then the merge across ranks. */
#include <stdbool.h>

#include "mpi_internal.h"

/* This rank's KV shard: a [B,S_r,Hkv,D] cache, or pools of pages with their page table. */
typedef struct ra_mpi__shard {
    const ra_tensor *k, *v;
    const ra_tensor *page_table; /* used when paged */
    const ra_tensor *lengths;
    bool paged;
} ra_mpi__shard;

/* The partial state of this rank's shard, in tensors this function owns. */
static ra_status ra_mpi__local_gqa(const char *fn, int rank, const ra_options *opts,
                                   const ra_tensor *q, const ra_mpi__shard *sh,
                                   ra_tensor *part[3])
{
    if (q == NULL)
        return ra_mpi__fail(RA_ERR_INVALID_ARGUMENT, "%s: q is NULL", fn);
    if (ra_tensor_rank(q) != 4)
        return ra_mpi__fail(RA_ERR_SHAPE, "%s: q has rank %d; expected 4 ([B,1,Hq,D])", fn,
                            ra_tensor_rank(q));
    const int64_t so[4] = {ra_tensor_dim(q, 0), 1, ra_tensor_dim(q, 2), ra_tensor_dim(q, 3)};
    const int64_t sml[4] = {so[0], 1, so[2], 1};
    ra_status s = ra_tensor_create(&part[0], RA_DTYPE_F32, 4, so);
    if (s == RA_OK)
        s = ra_tensor_create(&part[1], RA_DTYPE_F32, 4, sml);
    if (s == RA_OK)
        s = ra_tensor_create(&part[2], RA_DTYPE_F32, 4, sml);
    if (s != RA_OK)
        return ra_mpi__fail(s, "%s: partial state for q [%lld,1,%lld,%lld]: %s", fn,
                            (long long)so[0], (long long)so[2], (long long)so[3],
                            ra_last_error());
    s = sh->paged ? ra_paged_gqa(opts, q, sh->k, sh->v, sh->page_table, sh->lengths, part[0],
                                 part[1], part[2])
                  : ra_ragged_gqa(opts, q, sh->k, sh->v, sh->lengths, part[0], part[1],
                                  part[2]);
    if (s != RA_OK)
        return ra_mpi__fail(s, "%s: %s on rank %d: %s", fn,
                            sh->paged ? "ra_paged_gqa" : "ra_ragged_gqa", rank, ra_last_error());
    return RA_OK;
}

/* Both public functions: the local attention, then the merge, which every rank reaches. */
static ra_status ra_mpi__sharded_gqa(const char *fn, MPI_Comm comm, int root,
                                     ra_mpi_method method, const ra_options *opts,
                                     const ra_tensor *q, const ra_mpi__shard *sh, ra_tensor *o,
                                     ra_tensor *m, ra_tensor *l)
{
    ra_mpi__comm c;
    ra_status local;
    ra_status s = ra_mpi__comm_init(&c, fn, comm, root, method, &local);
    if (s != RA_OK)
        return s;
    ra_tensor *part[3] = {NULL, NULL, NULL};
    if (local == RA_OK)
        local = ra_mpi__local_gqa(fn, c.rank, opts, q, sh, part);
    /* Every rank merges, failed or not, so that all of them return the same verdict. */
    static const char *const out_names[3] = {"o", "m", "l"};
    s = ra_mpi__merge(&c, fn, out_names, local, part[0], part[1], part[2], o, m, l);
    for (int i = 0; i < 3; ++i)
        ra_tensor_destroy(part[i]);
    return s;
}

ra_status ra_mpi_ragged_gqa(MPI_Comm comm, int root, ra_mpi_method method,
                            const ra_options *opts, const ra_tensor *q, const ra_tensor *k,
                            const ra_tensor *v, const ra_tensor *lengths, ra_tensor *o,
                            ra_tensor *m, ra_tensor *l)
{
    const ra_mpi__shard sh = {k, v, NULL, lengths, false};
    return ra_mpi__sharded_gqa("ra_mpi_ragged_gqa", comm, root, method, opts, q, &sh, o, m, l);
}

ra_status ra_mpi_paged_gqa(MPI_Comm comm, int root, ra_mpi_method method,
                           const ra_options *opts, const ra_tensor *q, const ra_tensor *k_pages,
                           const ra_tensor *v_pages, const ra_tensor *page_table,
                           const ra_tensor *lengths, ra_tensor *o, ra_tensor *m, ra_tensor *l)
{
    const ra_mpi__shard sh = {k_pages, v_pages, page_table, lengths, true};
    return ra_mpi__sharded_gqa("ra_mpi_paged_gqa", comm, root, method, opts, q, &sh, o, m, l);
}
