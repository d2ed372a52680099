/* A user's C program, linked through the installed CMake package or pkg-config flags alone:
 * header and library must agree on the version, and a tiny ragged GQA must give the
 * hand-computed answer. Built as C99 with -pedantic to show the header asks for nothing more. */
#include <raggedattn.h>
#include <string.h>

#include "tiny_gqa.h"

enum { T_Q, T_K, T_V, T_LEN, T_O, T_M, T_L, T_COUNT };

static int wrap(ra_tensor **t, ra_dtype dtype, int rank, const int64_t *shape, void *data,
                const char *name)
{
    ra_status s = ra_tensor_wrap(t, dtype, rank, shape, NULL, data);
    if (s != RA_OK) {
        fprintf(stderr, "ra_tensor_wrap(%s): %s: %s\n", name, ra_status_string(s), ra_last_error());
        return 1;
    }
    return 0;
}

int main(void)
{
    tiny_buffers b;
    ra_tensor *t[T_COUNT] = {NULL};
    ra_status s;
    int i, bad = 0;

    if (ra_version_number() != RA_VERSION_NUMBER ||
        strcmp(ra_version_string(), RA_VERSION_STRING) != 0) {
        fprintf(stderr, "header says %s, library says %s\n", RA_VERSION_STRING, ra_version_string());
        return 1;
    }

    tiny_fill(&b);
    bad += wrap(&t[T_Q], RA_DTYPE_F32, 4, tiny_q_shape, b.q, "q");
    bad += wrap(&t[T_K], RA_DTYPE_F32, 4, tiny_kv_shape, b.k, "k");
    bad += wrap(&t[T_V], RA_DTYPE_F32, 4, tiny_kv_shape, b.v, "v");
    bad += wrap(&t[T_LEN], RA_DTYPE_I32, 1, tiny_len_shape, b.lengths, "lengths");
    bad += wrap(&t[T_O], RA_DTYPE_F32, 4, tiny_q_shape, b.o, "o");
    bad += wrap(&t[T_M], RA_DTYPE_F32, 4, tiny_ml_shape, b.m, "m");
    bad += wrap(&t[T_L], RA_DTYPE_F32, 4, tiny_ml_shape, b.l, "l");
    if (!bad) {
        s = ra_ragged_gqa(NULL, t[T_Q], t[T_K], t[T_V], t[T_LEN], t[T_O], t[T_M], t[T_L]);
        if (s != RA_OK) {
            fprintf(stderr, "ra_ragged_gqa: %s: %s\n", ra_status_string(s), ra_last_error());
            bad = 1;
        } else {
            bad = tiny_check(&b);
        }
    }
    for (i = 0; i < T_COUNT; i++) ra_tensor_destroy(t[i]);

    if (bad) return 1;
    printf("libraggedattn %s: ragged GQA matches the hand-computed values\n", ra_version_string());
    return 0;
}
