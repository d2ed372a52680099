/* The ragged decode core: one engine for MQA, MHA and GQA. */
#ifndef RA_DECODE_H
#define RA_DECODE_H

#include "problem.h"

ra_status ra__decode(const ra__problem *p);

#endif
