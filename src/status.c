/* Status names, versions and the per-thread last error (errno-like). */
#include <stdarg.h>
#include <stdio.h>

#include "status_internal.h"

/* 512 bytes holds the longest message we format (two tensor names, shapes and values). */
static _Thread_local char last_error[512];

ra_status ra__fail(ra_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

const char *ra_last_error(void)
{
    return last_error;
}

const char *ra_status_string(ra_status s)
{
    switch (s) {
#define RA__STATUS_CASE(name, text) \
    case name:                      \
        return #name ": " text;
        RA__STATUS_LIST(RA__STATUS_CASE)
#undef RA__STATUS_CASE
    }
    return "unknown ra_status value";
}

uint32_t ra_version_number(void)
{
    return RA_VERSION_NUMBER;
}

const char *ra_version_string(void)
{
    return RA_VERSION_STRING;
}
