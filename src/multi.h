/* Multi-token queries with a causal mask, on the decode engine (multi.c). */
#ifndef RA_MULTI_H
#define RA_MULTI_H

#include "problem.h"

/* p from a signature with multi set: T query positions per sequence, qlen[b] of them used. */
ra_status ra__multi(const ra__problem *p);

#endif
