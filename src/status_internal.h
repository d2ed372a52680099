/* Status codes, their names, and the thread-local last-error message. */
#ifndef RA_STATUS_INTERNAL_H
#define RA_STATUS_INTERNAL_H

#include "raggedattn.h"

/* One list drives the enum checks, the names and the descriptions. */
#define RA__STATUS_LIST(X)                                                                  \
    X(RA_OK, "success")                                                                     \
    X(RA_ERR_INVALID_ARGUMENT, "invalid argument (NULL, bad option value or rank)")         \
    X(RA_ERR_SHAPE, "tensor shapes do not fit together")                                    \
    X(RA_ERR_DTYPE, "a tensor has a dtype this argument does not take")                     \
    X(RA_ERR_LENGTH, "a sequence length or a page-table index is out of range")             \
    X(RA_ERR_OVERFLOW, "a size or offset does not fit in int64_t/size_t")                   \
    X(RA_ERR_OUT_OF_MEMORY, "out of memory")                                                \
    X(RA_ERR_ALIAS, "an output overlaps an input, another output or itself")                \
    X(RA_ERR_INTERNAL, "internal error")                                                    \
    X(RA_ERR_UNSUPPORTED, "not supported by this CPU, build or function")

/* Record a printf-style message for this thread and return s, so that callers can write
 * `return ra__fail(RA_ERR_SHAPE, "q: ...", ...);`. */
ra_status ra__fail(ra_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
