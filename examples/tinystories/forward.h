/* One decode step of the Llama-2 transformer for a batch of sequences. */
#ifndef TS_FORWARD_H
#define TS_FORWARD_H

#include "attention.h"
#include "model.h"

/* Activations for B slots, each row-major [B, width]. */
typedef struct ts_state {
    int B, threads;
    float *x, *xb, *xb2, *hb, *hb2, *k, *v, *logits;
} ts_state;

/* threads: OpenMP threads for the matrix products (0 = OpenMP default). Returns 0, or -1 after
 * printing the reason to stderr. */
int ts_state_init(ts_state *s, const ts_config *c, int B, int threads);
void ts_state_free(ts_state *s);

/* Runs token[b] at position pos[b] for the n_active slots listed in active[], writing
 * s->logits[b * vocab ...]. The caller has run ts_attn_begin_step for this step (lengths, and
 * pages). Stores their keys and values at row pos[b] of each layer's cache; each layer's
 * attention is one ts_attn_run (one ra_ragged_gqa or ra_paged_gqa) for the whole batch, with
 * idle slots at length 0. Returns 0, or -1 when the attention call failed. */
int ts_forward(const ts_model *m, ts_state *s, ts_attn *a, const int *active, int n_active,
               const int *token, const int *pos);

#endif
