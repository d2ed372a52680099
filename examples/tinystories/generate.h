/* Greedy generation for a batch of prompts that share one ragged KV cache, and the
 * verification of generated tokens several at a time. */
#ifndef TS_GENERATE_H
#define TS_GENERATE_H

#include "attention.h"
#include "model.h"
#include "tokenizer.h"

#include <stdio.h>

typedef struct ts_run_config {
    const char *const *prompts;
    int n_prompts; /* the batch size B */
    int steps;     /* positions per sequence, BOS included (llama2.c's -n), 1..seq_len */
    int stagger;   /* sequence b joins the batch b * stagger steps late (continuous batching) */
    ts_layout layout;
    ra_dtype kv_dtype; /* RA_DTYPE_F32, or i8/fp8 for a quantized KV cache */
    int threads;   /* 0 = OpenMP default */
    ra_kernel kernel;
    int check;     /* compare every attention call with a double-precision oracle */
    int page_size;  /* TS_LAYOUT_PAGED: positions per page */
    int pool_pages; /* TS_LAYOUT_PAGED: pages per layer's pool; 0 = the most the sequences
                       hold at once if none ends early */
    int prefill;    /* 1: a step runs up to `chunk` prompt tokens of a sequence together, with
                       the multi-token attention calls; 0: one token per step, as decoding */
    int chunk;      /* prefill: prompt tokens per step; 0 = the whole prompt */
    int keep_logits; /* record every position's logits too (ts_tokens.logits) */
} ts_run_config;

typedef struct ts_run_stats {
    long positions;   /* forward positions computed, summed over sequences */
    long batch_steps; /* decode steps of the whole batch */
    double seconds;   /* wall time of the decode loop */
    double attn_seconds; /* the part spent in ra_ragged_gqa (or ra_paged_gqa) and ra_merge */
    double worst_rel; /* worst attention error the check saw (0 without --check-attention) */
    int pool_pages;   /* paged: pages in each layer's pool */
    int peak_pages;   /* paged: most pages in use at once */
    long acquired;    /* paged: pages taken from the free list (more than the peak: reuse) */
    long prompt_positions; /* prompt positions computed */
    double prompt_seconds; /* wall time of the steps that ran prompt positions */
    long verified;    /* ts_verify: generated tokens re-checked */
    long mismatched;  /* ts_verify: how many of them the re-check's argmax differs from */
    int bad_seq, bad_index, bad_token, bad_argmax; /* ts_verify: the first that differs */
} ts_run_stats;

/* The tokens each sequence generated after its prompt (the final BOS of a story included),
 * and with keep_logits the logits of every position it computed. */
typedef struct ts_tokens {
    int B, vocab;
    int **ids; /* [B][n[b]] */
    int *n;
    float **logits; /* [B][n_logits[b] * vocab]: position t's at t * vocab; NULL if not kept */
    int *n_logits;
} ts_tokens;

void ts_tokens_free(ts_tokens *t);

/* Decodes every prompt greedily (argmax) for cfg->steps positions. Every step runs all
 * sequences that have joined and not finished through one ts_forward: a sequence first consumes
 * its prompt tokens (with cfg->prefill, up to cfg->chunk of them per step; otherwise one), then
 * generates one token per step, and stops early if it produces BOS. Each sequence's text
 * goes to out followed by "\n", in prompt order; with one prompt it streams as it is produced.
 * out NULL prints nothing. record, when not NULL, receives the generated tokens (free with
 * ts_tokens_free). Returns 0, or -1 after printing the reason to stderr. */
int ts_generate(const ts_model *m, const ts_tokenizer *tok, const ts_run_config *cfg, FILE *out,
                ts_run_stats *stats, ts_tokens *record);

/* Re-runs each sequence of cfg's prompts followed by its generated tokens gen through a fresh
 * cache, k tokens per step with the multi-token calls (speculative decoding's verification),
 * and compares the argmax at every position that produced a generated token with that token.
 * Fills stats (verified, mismatched, the first mismatch). Returns 0 when it ran (whatever the
 * comparison found), or -1 after printing the reason to stderr. */
int ts_verify(const ts_model *m, const ts_tokenizer *tok, const ts_run_config *cfg,
              const ts_tokens *gen, int k, ts_run_stats *stats);

#endif
