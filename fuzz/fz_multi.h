/* The multi-token operation (fz_multi.c) and its extra checks (fz_multi_check.c). */
#ifndef RA_FZ_MULTI_H
#define RA_FZ_MULTI_H

#include "fz_paged.h"

/* The case's tensors: the paged operation's (the table absent for a contiguous cache), then
 * q_lens. */
enum { M_QLEN = P_ALL, M_ALL };

typedef struct fz_multi {
    fz_paged pg;      /* pg.a: the attention case; pg.a.q_lens and pg.a.T set once filled */
    bool paged;       /* ra_paged_gqa_multi; else ra_ragged_gqa_multi */
    bool rerun;       /* compare 1 and 2 threads */
    int64_t T;
    int32_t wrote[4]; /* paged: the lengths chosen before their layout (B <= 3) */
} fz_multi;

/* The call on the case's tensors with opts. */
ra_status fz_multi_call(const fz_multi *mu, const ra_options *opts);
/* After a success with T = 1: ra_ragged_gqa (or ra_paged_gqa) on the same inputs gives the
 * bits of every row with q_lens[b] = 1. */
void fz_multi_check_decode(const fz_multi *mu, const ra_options *opts);
/* After a success: the call with 1 and with 2 threads gives the same bits. */
void fz_multi_check_threads(fz_multi *mu, const fz_opts *eo);
/* A readable description of the case, for bug reports (FZ_DEBUG=1). */
void fz_multi_describe(const fz_multi *mu, const fz_opts *eo, const ra_options *opts);

#endif
