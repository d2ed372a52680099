/*
 * raggedattn_mpi: decode attention over a KV cache sharded across MPI ranks.
 *
 * When a sequence's KV cache outgrows one machine, each rank keeps a contiguous range of its
 * positions. Rank r holds positions [start_r, start_r + S_r) of every sequence, and its
 * lengths[b] counts the valid positions of sequence b inside that range (0 is allowed: the
 * sequence then ends before the range, or the range is empty). Every rank runs ra_ragged_gqa on
 * its shard (ra_paged_gqa when it keeps the shard as pages), which yields a partial state
 * (o un-normalized, m, l) per (b, h); the partial states are then combined across ranks with
 * the log-sum-exp rule of ra_merge:
 *
 *     M = max_r m_r,  L = sum_r exp(m_r - M) l_r,  o = sum_r exp(m_r - M) o_r / L
 *
 * Each rank sends B*Hq*(D+2) floats per step, whatever the sequence lengths.
 *
 * Conventions (those of raggedattn.h)
 *   - Every function returns ra_status. On failure nothing is written to any output and
 *     ra_mpi_last_error() names the argument and value (or the rank that failed).
 *   - The layer never prints, aborts or exits, and keeps no mutable global state. It neither
 *     initializes MPI nor changes a communicator's error handler: an MPI error goes to the
 *     communicator's handler, and when that handler returns, the call returns RA_ERR_INTERNAL.
 *   - Every call is collective over comm: every rank calls it with the same comm, root and
 *     method, in the same order as its other collectives on comm, and with the same q
 *     (the library cannot check q cheaply). Ranks agree on every error found before the
 *     exchange (a bad argument on any rank makes every rank return an error), so a bad call
 *     never leaves a rank waiting. Errors of the final write (an output that overlaps another
 *     output) are reported only by the rank whose outputs they concern.
 *   - MPI is called from the calling thread; calls from several threads at once need
 *     MPI_THREAD_MULTIPLE and distinct communicators.
 *   - Deterministic: the ranks are combined in rank order, so a given rank count gives the same
 *     bits on every run and, with RA_MPI_ALL_RANKS, on every rank. Different rank counts agree
 *     to f32 rounding.
 *   - Score modifiers (ra_options_set_*): soft-cap applies per position, so set it on every
 *     rank; set sinks on one rank only, so they count once. A window and ALiBi are measured
 *     from a call's own last position, which a shard does not know: do not set them on a
 *     sharded call (the layer cannot see them in the options and does not check).
 *   - Quantized K/V shards (ra_tensor_wrap_quantized) go to the local call unchanged.
 */
#ifndef RAGGEDATTN_MPI_H
#define RAGGEDATTN_MPI_H

#include <mpi.h>

#include "raggedattn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Pass as root to leave the result on every rank (an allreduce). */
#define RA_MPI_ALL_RANKS (-1)

/* How the partial states travel. Both give the same attention to f32 rounding.
 *   REDUCE: one MPI_Reduce / MPI_Allreduce with a non-commutative user MPI_Op over packed
 *           (m, l, o[D]) records, so MPI combines them in rank order along its own tree. Each
 *           rank receives O(log P) messages of B*Hq*(D+2) floats.
 *   GATHER: MPI_Gather / MPI_Allgather of the packed records, then one ra_merge of all P parts
 *           in rank order. The receiving ranks take in P messages and hold P records each.
 *   AUTO:   REDUCE (see the README section "Scaling past one machine" for the measurements). */
typedef enum ra_mpi_method {
    RA_MPI_METHOD_AUTO = 0,
    RA_MPI_METHOD_REDUCE = 1,
    RA_MPI_METHOD_GATHER = 2
} ra_mpi_method;

/* This thread's message for its last failing ra_mpi_* call; "" if none. Like ra_last_error:
 * successful calls do not clear it, and the pointer stays valid until this thread's next
 * failing ra_mpi_* call. */
const char *ra_mpi_last_error(void);

/* Combines one partial state per rank into the normalized output.
 *   o, m, l:  this rank's partial state, f32 [B,1,H,D], [B,1,H,1], [B,1,H,1] (o un-normalized,
 *             as ra_ragged_mha/gqa return it). Required on every rank; B, H and D must agree.
 *   root:     the rank that receives the result, or RA_MPI_ALL_RANKS for every rank.
 *   o_out:    f32 [B,1,H,D], normalized. Required on the receiving ranks, ignored elsewhere.
 *   m_out, l_out: f32 [B,1,H,1] or NULL; they receive the global M and L, so that
 *             (o_out * L, M, L) is again a partial state. Ignored on the other ranks.
 * A rank whose state is empty for some (b, h) (m = -inf, l = 0) contributes nothing there; if
 * every rank is empty, o_out = 0, M = -inf, L = 0.
 * Errors: RA_ERR_INVALID_ARGUMENT (MPI not initialized, MPI_COMM_NULL, a root outside
 * -1..size-1, an unknown method, a NULL required tensor), RA_ERR_DTYPE, RA_ERR_SHAPE (also when
 * ranks disagree on B, H or D), RA_ERR_OVERFLOW (B*H above INT_MAX), RA_ERR_OUT_OF_MEMORY,
 * RA_ERR_ALIAS, RA_ERR_INTERNAL (an MPI call failed), or the error of another rank. */
ra_status ra_mpi_merge(MPI_Comm comm, int root, ra_mpi_method method, const ra_tensor *o,
                       const ra_tensor *m, const ra_tensor *l, ra_tensor *o_out,
                       ra_tensor *m_out, ra_tensor *l_out);

/* ra_ragged_gqa over a KV cache sharded along the sequence axis, then ra_mpi_merge.
 *   q:        [B,1,Hq,D], the same on every rank.
 *   k, v:     this rank's slice [B,S_r,Hkv,D] (S_r may differ between ranks, and may be 0).
 *   lengths:  i32 [B], the valid positions of each sequence inside this rank's slice, in [0, S_r].
 *   opts:     as for ra_ragged_gqa (NULL for the defaults); the same scale on every rank.
 *   o, m, l:  as o_out, m_out, l_out of ra_mpi_merge: the normalized attention over the whole
 *             sequence, with the global M and L.
 * Errors: those of ra_ragged_gqa on any rank (the failing rank's own message names the
 * argument; the other ranks name that rank), and those of ra_mpi_merge. */
ra_status ra_mpi_ragged_gqa(MPI_Comm comm, int root, ra_mpi_method method,
                            const ra_options *opts, const ra_tensor *q, const ra_tensor *k,
                            const ra_tensor *v, const ra_tensor *lengths, ra_tensor *o,
                            ra_tensor *m, ra_tensor *l);

/* ra_paged_gqa over a paged KV cache sharded along the sequence axis, then ra_mpi_merge: as
 * ra_mpi_ragged_gqa, with each rank's slice kept as pages.
 *   k_pages, v_pages: this rank's pools [num_pages, page_size, Hkv, D] (any strides and K/V
 *             dtypes that ra_paged_gqa takes; num_pages and page_size may differ between ranks).
 *   page_table: i32 [B, max_pages], this rank's pages of each sequence in order: position t of
 *             sequence b's slice is row t % page_size of page page_table[b][t / page_size].
 *   lengths:  i32 [B], the valid positions of each sequence inside this rank's slice, in
 *             [0, max_pages * page_size].
 *   q, opts, o, m, l: as for ra_mpi_ragged_gqa.
 * Each rank's partial state is bitwise the one ra_mpi_ragged_gqa computes from the same rows
 * laid out contiguously, so the two functions return the same bits.
 * Errors: those of ra_paged_gqa on any rank (the failing rank's own message names the
 * argument; the other ranks name that rank), and those of ra_mpi_merge. */
ra_status ra_mpi_paged_gqa(MPI_Comm comm, int root, ra_mpi_method method,
                           const ra_options *opts, const ra_tensor *q, const ra_tensor *k_pages,
                           const ra_tensor *v_pages, const ra_tensor *page_table,
                           const ra_tensor *lengths, ra_tensor *o, ra_tensor *m, ra_tensor *l);

#ifdef __cplusplus
}
#endif

#endif /* RAGGEDATTN_MPI_H */
