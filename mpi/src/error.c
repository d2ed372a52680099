/* The thread-local last-error message of raggedattn_mpi (the core library's ra_last_error has
 * no public setter, so this layer keeps its own, like errno per thread). */
#include <stdarg.h>
#include <stdio.h>

#include "mpi_internal.h"

static _Thread_local char ra_mpi__message[512];

const char *ra_mpi_last_error(void)
{
    return ra_mpi__message;
}

ra_status ra_mpi__fail(ra_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ra_mpi__message, sizeof ra_mpi__message, fmt, ap);
    va_end(ap);
    return s;
}
