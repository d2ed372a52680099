/* A llama2.c "v0" checkpoint: 7 int32 header values, then f32 weights. */
#ifndef TS_MODEL_H
#define TS_MODEL_H

typedef struct ts_config {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int head_size, kv_dim; /* derived */
} ts_config;

/* Pointers into the loaded blob; per-layer tensors are stacked along the first axis. */
typedef struct ts_weights {
    const float *tok_emb;   /* [vocab, dim] */
    const float *rms_att;   /* [L, dim] */
    const float *wq;        /* [L, dim, dim] */
    const float *wk;        /* [L, kv_dim, dim] */
    const float *wv;        /* [L, kv_dim, dim] */
    const float *wo;        /* [L, dim, dim] */
    const float *rms_ffn;   /* [L, dim] */
    const float *w1;        /* [L, hidden, dim] */
    const float *w2;        /* [L, dim, hidden] */
    const float *w3;        /* [L, hidden, dim] */
    const float *rms_final; /* [dim] */
    const float *wcls;      /* [vocab, dim]; tok_emb when shared */
} ts_weights;

typedef struct ts_model {
    ts_config cfg;
    ts_weights w;
    float *blob; /* owns all weights */
} ts_model;

/* Reads and validates the checkpoint at path (header sanity, exact file size). Returns 0, or -1
 * after printing the reason to stderr. */
int ts_model_load(ts_model *m, const char *path);
void ts_model_free(ts_model *m);

#endif
