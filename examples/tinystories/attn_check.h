/* --check-attention: an independent double-precision attention to compare each call with. */
#ifndef TS_ATTN_CHECK_H
#define TS_ATTN_CHECK_H

#include "attention.h"

/* Recomputes layer `layer`'s attention for every query row of every slot from a->q, the cache
 * and the causal lengths (ts_attn_row_length) in double precision (a plain two-pass softmax),
 * and compares a->out and a->l with it: |out - ref| <= 1e-5 * max|ref| over the call,
 * |l - ref| <= 1e-5 * ref, and exact zeros for padding rows and idle slots. Updates a->worst_rel. Returns 0, or -1 after printing the first failure. */
int ts_attn_check(ts_attn *a, int layer);

/* Paged layout: copies every slot's valid rows of layer `layer` out of the pool into a
 * contiguous [B,S,Hkv,D] cache, runs ra_ragged_gqa (ra_ragged_gqa_multi in a multi step) on
 * it with the same options, and requires its o*l, m and l to be bitwise the ones ra_paged_gqa
 * (_multi) left in a->o_part, a->m and a->l.
 * Returns 0, or -1 after printing the first difference. */
int ts_attn_check_contiguous(ts_attn *a, int layer);

/* Frees what ts_attn_check_contiguous allocated (nothing if it never ran). */
void ts_attn_check_free(ts_attn *a);

#endif
