#define _XOPEN_SOURCE 700 /* readlink, realpath, access */
/* The data directory, found at run time relative to the executable (datadir.h). */
#include "datadir.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TS_DEFAULT_DATA_DIR
#define TS_DEFAULT_DATA_DIR "."
#endif
/* The data directory relative to the directory of the installed executable, as configured
 * (e.g. "../share/raggedattn/tinystories"); empty when unknown. */
#ifndef TS_BIN_TO_DATA_DIR
#define TS_BIN_TO_DATA_DIR ""
#endif

/* Writes <directory of this executable>/<TS_BIN_TO_DATA_DIR> into buf; 0 on success. */
static int beside_executable(char *buf, size_t n)
{
    if (TS_BIN_TO_DATA_DIR[0] == '\0')
        return -1;
    char exe[TS_PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return -1;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    char joined[2 * TS_PATH_MAX];
    snprintf(joined, sizeof joined, "%s/%s", exe, TS_BIN_TO_DATA_DIR);
    /* Without the "bin/.." in messages and --help; fails when the directory is missing. */
    char resolved[PATH_MAX];
    if (!realpath(joined, resolved))
        return -1;
    int w = snprintf(buf, n, "%s", resolved);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

const char *ts_data_dir(void)
{
    static char dir[TS_PATH_MAX];
    static const char *found;
    if (found)
        return found;
    char model[TS_PATH_MAX];
    if (beside_executable(dir, sizeof dir) == 0 &&
        snprintf(model, sizeof model, "%s/stories260K.bin", dir) < (int)sizeof model &&
        access(model, R_OK) == 0)
        found = dir;
    else
        found = TS_DEFAULT_DATA_DIR;
    return found;
}

const char *ts_data_file(char *buf, const char *name)
{
    /* A path too long for buf is cut short; opening it then fails with its name shown. */
    snprintf(buf, TS_PATH_MAX, "%s/%s", ts_data_dir(), name);
    return buf;
}
