/* The reference engine: a literal transcription of the seed's reference_* arithmetic. */
#ifndef RA_REFERENCE_H
#define RA_REFERENCE_H

#include "problem.h"

ra_status ra__reference(const ra__problem *p);

#endif
