/* Greedy generation for a batch of prompts that share one ragged KV cache. */
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
    int threads;   /* 0 = OpenMP default */
    ra_kernel kernel;
    int check;     /* compare every attention call with a double-precision oracle */
} ts_run_config;

typedef struct ts_run_stats {
    long positions;   /* forward positions computed, summed over sequences */
    long batch_steps; /* decode steps of the whole batch */
    double seconds;   /* wall time of the decode loop */
    double attn_seconds; /* the part spent in ra_ragged_gqa and ra_merge */
    double worst_rel; /* worst attention error the check saw (0 without --check-attention) */
} ts_run_stats;

/* Decodes every prompt greedily (argmax) for cfg->steps positions. Every step runs all
 * sequences that have joined and not finished through one ts_forward: a sequence first consumes
 * its prompt tokens, then generates, and stops early if it produces BOS. Each sequence's text
 * goes to out followed by "\n", in prompt order; with one prompt it streams as it is produced.
 * Returns 0, or -1 after printing the reason to stderr. */
int ts_generate(const ts_model *m, const ts_tokenizer *tok, const ts_run_config *cfg, FILE *out,
                ts_run_stats *stats);

#endif
