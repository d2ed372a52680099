/* The ragged decode core: one engine for MQA, MHA and GQA. */
#ifndef RA_DECODE_H
#define RA_DECODE_H

#include "problem.h"

ra_status ra__decode(const ra__problem *p);

/* Threads for a parallel region: the caller's num_threads (0 = the OpenMP default), never
 * more than there are work items. */
int ra__team_size(int requested, int64_t work);

#endif
