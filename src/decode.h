/* The ragged decode core: one engine for MQA, MHA and GQA. */
#ifndef RA_DECODE_H
#define RA_DECODE_H

#include <stdbool.h>

#include "problem.h"

ra_status ra__decode(const ra__problem *p);
/* The bytes of scratch ra__decode_in needs for p. */
ra_status ra__decode_bytes(const ra__problem *p, size_t *bytes);
/* ra__decode in caller-provided scratch (64-byte aligned, at least ra__decode_bytes of an
 * identical problem): it allocates nothing, so it fails only where ra__decode_bytes did. */
ra_status ra__decode_in(const ra__problem *p, void *scratch, size_t bytes);

/* How the last ra__decode call on this thread walked its cache: the kernel family whose
 * table ran (after any fallback to portable) and the walk, so that tests can assert which
 * code their shapes reach. Set once a call has its plan; a call that ends early (no work, a
 * failed allocation) leaves the previous record. */
typedef enum ra__walk {
    RA__WALK_HEAD_TILES,     /* one KV head's group of query heads over a tile at a time */
    RA__WALK_HEAD_TILES_DOT, /* the same with q and K multiplied as bf16 pairs (entries whose
                              * q holds a bf16 subnormal still take the exact steps) */
    RA__WALK_ROW_ORDER,      /* every head of a position, then the next (ra__rows) */
    RA__WALK_HEAD_TILES_WIDE /* head tiles by the wide steps: 16 rows in the vector lanes */
} ra__walk;

typedef struct ra__walk_record {
    ra_kernel family;
    ra__walk walk;
} ra__walk_record;

ra__walk_record ra__last_walk(void);

/* Rows per KV head from which the kernel that runs p (its dtypes and layout) has the wide
 * steps, or 0 where it has none: the multi-token layer aims its prefix entries at it. *runs:
 * whether groups that size and a multiple of 16 run them (q and K both bf16 take the bf16
 * pairs instead, where the CPU has them), and so may be causal groups (causal_g). */
int64_t ra__plan_wide_rows(const ra__problem *p, bool *runs);

#endif
