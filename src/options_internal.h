/* The options handle. */
#ifndef RA_OPTIONS_INTERNAL_H
#define RA_OPTIONS_INTERNAL_H

#include "raggedattn.h"

struct ra_options {
    int64_t block_size;
    float scale;
    float mask_value;
    int num_threads;
    ra_kernel kernel;
    int64_t split_tokens;
    /* Score modifiers (0 / NULL: off). sinks and alibi are copies the options own. */
    float softcap;
    int64_t window, sink_positions;
    float *sinks, *alibi;
    int64_t n_sinks, n_alibi;
};

/* The defaults, for calls that pass NULL options. */
extern const struct ra_options ra__default_options;

static inline const struct ra_options *ra__options_or_default(const ra_options *o)
{
    return o ? o : &ra__default_options;
}

#endif
