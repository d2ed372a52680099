#include "model.h"

#include "fileio.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TS_HEADER_INTS 7
/* Far above any model this toy runner is meant for; keeps every size product below 2^63. */
#define TS_MAX_DIM (1 << 20)

static int check_header(const ts_config *c, const char *path)
{
    const int v[TS_HEADER_INTS] = {c->dim,     c->hidden_dim, c->n_layers, c->n_heads,
                                   c->n_kv_heads, c->vocab_size, c->seq_len};
    static const char *const names[TS_HEADER_INTS] = {"dim",        "hidden_dim", "n_layers",
                                                      "n_heads",    "n_kv_heads", "vocab_size",
                                                      "seq_len"};
    for (int i = 0; i < TS_HEADER_INTS; i++) {
        /* vocab_size alone may be negative (unshared classifier) */
        if (v[i] == 0 || v[i] > TS_MAX_DIM || v[i] < -TS_MAX_DIM || (v[i] < 0 && i != 5)) {
            fprintf(stderr, "tinystories: model '%s': header %s = %d is out of range\n", path,
                    names[i], v[i]);
            return -1;
        }
    }
    if (c->dim % c->n_heads != 0 || c->n_heads % c->n_kv_heads != 0 ||
        (c->dim / c->n_heads) % 2 != 0) {
        fprintf(stderr,
                "tinystories: model '%s': dim %d, n_heads %d, n_kv_heads %d do not fit "
                "(need dim %% n_heads == 0, n_heads %% n_kv_heads == 0, even head size)\n",
                path, c->dim, c->n_heads, c->n_kv_heads);
        return -1;
    }
    return 0;
}

/* dst[L, cols, rows] = the transpose of each of the n_mats matrices src[L, rows, cols]. */
static float *transpose(float *dst, const float *src, int n_mats, int rows, int cols)
{
    for (int l = 0; l < n_mats; l++) {
        const float *s = src + (size_t)l * rows * cols;
        float *d = dst + (size_t)l * rows * cols;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                d[(size_t)c * rows + r] = s[(size_t)r * cols + c];
    }
    return dst + (size_t)n_mats * rows * cols;
}

/* Transposes *field's matrices to dst, points *field there, and returns the end of dst. */
static float *transpose_into(float *dst, const float **field, int n_mats, int rows, int cols)
{
    const float *src = *field;
    *field = dst;
    return transpose(dst, src, n_mats, rows, cols);
}

static int transpose_matrices(ts_model *m)
{
    const ts_config *c = &m->cfg;
    const size_t L = (size_t)c->n_layers, D = (size_t)c->dim, KV = (size_t)c->kv_dim,
                 H = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
    m->transposed = malloc((L * (2 * D * D + 2 * KV * D + 3 * H * D) + V * D) * sizeof(float));
    if (!m->transposed) {
        fprintf(stderr, "tinystories: out of memory for the transposed weights\n");
        return -1;
    }
    ts_weights *w = &m->w;
    float *t = m->transposed;
    const int l = c->n_layers;
    t = transpose_into(t, &w->wq, l, c->dim, c->dim);
    t = transpose_into(t, &w->wk, l, c->kv_dim, c->dim);
    t = transpose_into(t, &w->wv, l, c->kv_dim, c->dim);
    t = transpose_into(t, &w->wo, l, c->dim, c->dim);
    t = transpose_into(t, &w->w1, l, c->hidden_dim, c->dim);
    t = transpose_into(t, &w->w2, l, c->dim, c->hidden_dim);
    t = transpose_into(t, &w->w3, l, c->hidden_dim, c->dim);
    transpose_into(t, &w->wcls, 1, c->vocab_size, c->dim);
    return 0;
}

int ts_model_load(ts_model *m, const char *path)
{
    memset(m, 0, sizeof *m);
    unsigned char *raw;
    size_t size;
    if (ts_read_file(path, "model", &raw, &size) != 0)
        return -1;
    if (size < TS_HEADER_INTS * sizeof(int32_t)) {
        fprintf(stderr, "tinystories: model '%s' is too short for its header (%zu bytes)\n",
                path, size);
        free(raw);
        return -1;
    }
    int32_t h[TS_HEADER_INTS];
    memcpy(h, raw, sizeof h); /* the format is little-endian, as is every host we build on */
    ts_config c = {h[0], h[1], h[2], h[3], h[4], h[5], h[6], 0, 0};
    if (check_header(&c, path) != 0) {
        free(raw);
        return -1;
    }
    int shared = c.vocab_size > 0;
    if (!shared)
        c.vocab_size = -c.vocab_size;
    c.head_size = c.dim / c.n_heads;
    c.kv_dim = c.head_size * c.n_kv_heads;

    /* Every factor is <= 2^20, so these int64 products cannot overflow. */
    int64_t L = c.n_layers, D = c.dim, H = c.hidden_dim, KV = c.kv_dim, V = c.vocab_size;
    int64_t per_layer = D + D * D + 2 * KV * D + D * D + D + 3 * H * D;
    int64_t rope = 2 * (int64_t)c.seq_len * (c.head_size / 2);
    int64_t n = V * D + L * per_layer + D + rope + (shared ? 0 : V * D);
    uint64_t want = sizeof h + (uint64_t)n * sizeof(float);
    if ((uint64_t)size != want) {
        fprintf(stderr,
                "tinystories: model '%s' has %zu bytes but its header (dim %d, hidden %d, "
                "layers %d, heads %d/%d, vocab %d, seq_len %d) needs %llu\n",
                path, size, c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                c.vocab_size, c.seq_len, (unsigned long long)want);
        free(raw);
        return -1;
    }
    float *blob = malloc((size_t)n * sizeof(float));
    if (!blob) {
        fprintf(stderr, "tinystories: out of memory for the model weights\n");
        free(raw);
        return -1;
    }
    memcpy(blob, raw + sizeof h, (size_t)n * sizeof(float));
    free(raw);

    const float *p = blob;
    ts_weights *w = &m->w;
    w->tok_emb = p;   p += V * D;
    w->rms_att = p;   p += L * D;
    w->wq = p;        p += L * D * D;
    w->wk = p;        p += L * KV * D;
    w->wv = p;        p += L * KV * D;
    w->wo = p;        p += L * D * D;
    w->rms_ffn = p;   p += L * D;
    w->w1 = p;        p += L * H * D;
    w->w2 = p;        p += L * D * H;
    w->w3 = p;        p += L * H * D;
    w->rms_final = p; p += D;
    p += rope; /* the stored RoPE tables: we compute the angles instead */
    w->wcls = shared ? w->tok_emb : p;
    m->cfg = c;
    m->blob = blob;
    if (transpose_matrices(m) != 0) {
        ts_model_free(m);
        return -1;
    }
    return 0;
}

void ts_model_free(ts_model *m)
{
    free(m->blob);
    free(m->transposed);
    memset(m, 0, sizeof *m);
}
