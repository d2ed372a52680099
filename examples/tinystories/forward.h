/* One step of the Llama-2 transformer for a batch of sequences: one token each (decoding), or
 * several (prefill, verification). */
#ifndef TS_FORWARD_H
#define TS_FORWARD_H

#include "attention.h"
#include "model.h"

/* Activations for B slots of up to max_T tokens, each row-major [B * max_T, width]; a step
 * with T tokens per slot uses row b * T + i for token i of slot b (ts_step). */
typedef struct ts_state {
    int rows, threads;
    float *x, *xb, *xb2, *hb, *hb2, *k, *v, *logits;
    int *row; /* the rows a step computes */
} ts_state;

/* threads: OpenMP threads for the matrix products (0 = OpenMP default). Returns 0, or -1 after
 * printing the reason to stderr. */
int ts_state_init(ts_state *s, const ts_config *c, int B, int max_T, int threads);
void ts_state_free(ts_state *s);

/* Runs the tokens of st (ts_step: n[b] tokens of each active slot b from position pos[b]),
 * writing the logits of token i of slot b to s->logits[(b * T + i) * vocab ...]. The caller
 * has run ts_attn_begin_step(a, st) (lengths, q_lens, pages). Stores their keys and values at
 * rows pos[b] .. pos[b] + n[b] - 1 of each layer's cache, then runs each layer's attention as
 * one ts_attn_run for the whole batch (ra_ragged_gqa or ra_paged_gqa, their _multi forms for
 * a multi step), with idle slots at length 0. Returns 0, or -1 when an attention call
 * failed. */
int ts_forward(const ts_model *m, ts_state *s, ts_attn *a, const ts_step *st);

#endif
