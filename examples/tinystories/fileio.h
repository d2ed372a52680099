/* Whole-file reads with clear error messages. */
#ifndef TS_FILEIO_H
#define TS_FILEIO_H

#include <stddef.h>

/* Reads the file at path into a new malloc'd buffer (*data, *size). what names the file's role
 * in messages ("model", "tokenizer"). Returns 0, or -1 after printing the reason to stderr. */
int ts_read_file(const char *path, const char *what, unsigned char **data, size_t *size);

#endif
