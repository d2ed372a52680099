/* Test helper: writes two variants of a shared-classifier llama2.c checkpoint.
 *   <out_dir>/unshared.bin   vocab_size negated and the embedding appended as the classifier:
 *                            the same model in the unshared layout, so it must print the same
 *   <out_dir>/truncated.bin  the file without its last float: the loader must reject it
 * usage: make_variants <model.bin> <out_dir> */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_file(const char *dir, const char *name, const void *a, size_t na,
                      const void *b, size_t nb)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        fprintf(stderr, "make_variants: path too long\n");
        return -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f)) {
        fprintf(stderr, "make_variants: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_variants <model.bin> <out_dir>\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        fprintf(stderr, "make_variants: cannot open %s\n", argv[1]);
        return 1;
    }
    static unsigned char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int32_t h[7];
    if (n < sizeof h || n == sizeof buf) {
        fprintf(stderr, "make_variants: %s is not a small checkpoint\n", argv[1]);
        return 1;
    }
    memcpy(h, buf, sizeof h);
    const size_t emb = (size_t)h[5] * (size_t)h[0] * sizeof(float);
    if (h[5] <= 0 || sizeof h + emb > n) {
        fprintf(stderr, "make_variants: %s does not share its classifier\n", argv[1]);
        return 1;
    }
    if (write_file(argv[2], "truncated.bin", buf, n - sizeof(float), NULL, 0))
        return 1;
    h[5] = -h[5];
    memcpy(buf, h, sizeof h);
    /* the embedding is the first tensor after the header */
    if (write_file(argv[2], "unshared.bin", buf, n, buf + sizeof h, emb))
        return 1;
    return 0;
}
