/* The ragged decode core: one engine for MQA, MHA and GQA. */
#ifndef RA_DECODE_H
#define RA_DECODE_H

#include "problem.h"

ra_status ra__decode(const ra__problem *p);

/* Threads for a parallel region: the caller's num_threads (0 = the OpenMP default), capped by
 * the OpenMP thread limit, 4 per processor, one per ~2^20 multiply-adds of work (positions x
 * query heads x 2D) and the number of work items. Results never depend on it. */
int ra__team_size(int requested, int64_t items, int64_t positions, int64_t heads, int64_t D);

#endif
