/* A llama2.c "v0" checkpoint: 7 int32 header values, then f32 weights. */
#ifndef TS_MODEL_H
#define TS_MODEL_H

typedef struct ts_config {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int head_size, kv_dim; /* derived */
} ts_config;

/* Per-layer tensors are stacked along the first axis. The projection matrices are kept
 * transposed, [L, in, out] rather than the file's [L, out, in], so that a matrix-vector
 * product runs over contiguous outputs and vectorizes without reordering any dot product's
 * sum (each still adds its terms in input order, as llama2.c does). */
typedef struct ts_weights {
    const float *tok_emb;   /* [vocab, dim] */
    const float *rms_att;   /* [L, dim] */
    const float *wq;        /* [L, dim, dim] (transposed) */
    const float *wk;        /* [L, dim, kv_dim] (transposed) */
    const float *wv;        /* [L, dim, kv_dim] (transposed) */
    const float *wo;        /* [L, dim, dim] (transposed) */
    const float *rms_ffn;   /* [L, dim] */
    const float *w1;        /* [L, dim, hidden] (transposed) */
    const float *w2;        /* [L, hidden, dim] (transposed) */
    const float *w3;        /* [L, dim, hidden] (transposed) */
    const float *rms_final; /* [dim] */
    const float *wcls;      /* [dim, vocab] (transposed; a copy of tok_emb when shared) */
} ts_weights;

typedef struct ts_model {
    ts_config cfg;
    ts_weights w;
    float *blob;       /* the file's weights */
    float *transposed; /* the transposed matrices */
} ts_model;

/* Reads and validates the checkpoint at path (header sanity, exact file size). Returns 0, or -1
 * after printing the reason to stderr. */
int ts_model_load(ts_model *m, const char *path);
void ts_model_free(ts_model *m);

#endif
