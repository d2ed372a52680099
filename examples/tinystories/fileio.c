#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The models this program runs are tiny; a cap keeps a wrong path (a device, a huge file) from
 * exhausting memory before the format checks can reject it. */
#define TS_MAX_FILE_BYTES ((long)1 << 30)

int ts_read_file(const char *path, const char *what, unsigned char **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "tinystories: cannot open %s file '%s': %s\n", what, path, strerror(errno));
        return -1;
    }
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "tinystories: cannot determine the size of %s file '%s'\n", what, path);
        fclose(f);
        return -1;
    }
    if (len > TS_MAX_FILE_BYTES) {
        fprintf(stderr, "tinystories: %s file '%s' is too large (%ld bytes)\n", what, path, len);
        fclose(f);
        return -1;
    }
    unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
    if (!buf) {
        fprintf(stderr, "tinystories: out of memory reading %s file '%s'\n", what, path);
        fclose(f);
        return -1;
    }
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "tinystories: short read of %s file '%s'\n", what, path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *data = buf;
    *size = (size_t)len;
    return 0;
}
