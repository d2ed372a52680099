/* The attention operation of the harness: the six functions' signatures, and the oracle that
 * checks a successful call. */
#ifndef RA_FZ_ATTN_H
#define RA_FZ_ATTN_H

#include "fz.h"

typedef ra_status (*fz_attn_fn)(const ra_options *, const ra_tensor *, const ra_tensor *,
                                const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                                ra_tensor *);

/* One seed function, as the header's table describes it. */
typedef struct fz_fn {
    const char *name;
    fz_attn_fn call;
    int q_rank;  /* 3: [B,Hq,D]; 4: [B,1,Hq,D] */
    int kv;      /* 0: [B,S,D]; 1: [B,S,Hkv,D]; 2: [B,Hkv,S,D] */
    int o_rank;  /* 3: [B,Hq,D]; 4: [B,1,Hq,D] */
    int ml_rank; /* 2: [B,Hq]; 3: [B,Hq,1]; 4: [B,1,Hq,1] */
    int heads;   /* 0: MQA (Hkv = 1), 1: MHA (Hkv = Hq), 2: GQA */
    bool ragged;
    bool normalized; /* o/l; false: o*l */
} fz_fn;

extern const fz_fn fz_fns[6];

enum { A_Q, A_K, A_V, A_LEN, A_O, A_M, A_L, A_N };

typedef struct fz_attn {
    const fz_fn *fn;
    fz_case c; /* tensors at A_Q .. A_L */
    int64_t B, Hq, Hkv, S, D;
    float scale, mask;
    /* A paged cache (ra_paged_gqa): K and V are pools [num_pages, page_size, Hkv, D] and
     * position t of sequence b is row t % page_size of page table[b][t / page_size]. NULL for
     * the six seed functions. */
    const fz_tensor *table;
    int64_t page_size;
    /* The score modifiers the options hold (never NULL; all off for inputs without them). */
    const fz_mods *mods;
    /* Several query rows per sequence (ra_ragged_gqa_multi, ra_paged_gqa_multi): q, o, m and
     * l have T rows on axis 1; row i of sequence b is the decode result over the first
     * lengths[b] - q_lens[b] + i + 1 positions, and rows i >= q_lens[b] hold the empty state
     * (o = 0, m = -inf, l = 0, sinks or not). NULL for the decode functions (one row). */
    const fz_tensor *q_lens;
    int64_t T;
} fz_attn;

/* Logical index -> tensor index, for tensors of the expected rank. */
void fz_q_idx(const fz_fn *f, int64_t b, int64_t h, int64_t d, int64_t idx[4]);
void fz_kv_idx(const fz_fn *f, int64_t b, int64_t t, int64_t j, int64_t d, int64_t idx[4]);
void fz_o_idx(const fz_fn *f, int64_t b, int64_t h, int64_t d, int64_t idx[4]);
void fz_ml_idx(const fz_fn *f, int64_t b, int64_t h, int64_t idx[4]);
/* The expected shape of tensor `role` for these dims. */
void fz_attn_shape(const fz_fn *f, int role, int64_t B, int64_t Hq, int64_t Hkv, int64_t S,
                   int64_t D, fz_tensor *t);

/* Checks the outputs of a successful call against the double-precision oracle (each query
 * row alone over its causal prefix when a->q_lens is set). */
void fz_attn_check_values(const fz_attn *a);

/* Fills lengths, then q, k and v (codes for quantized K/V, then their scales from the
 * quantization bytes qs) of a contiguous cache. For the ragged functions, positions past the
 * length, and those a window leaves out, may hold poison (NaN, huge values) that must not
 * change anything. */
void fz_attn_fill_inputs(fz_in *in, fz_in *qs, fz_attn *a);

/* A bulk input value of magnitude class cls (0..7): small, subnormal, huge or spread. */
double fz_attn_value(fz_rng *r, int cls);
/* A non-finite or extreme value, chosen by one byte. */
double fz_attn_special(uint8_t x);

/* Copies every buffer of c (to compare a rerun with); free with fz_bufs_free. */
unsigned char **fz_bufs_copy(const fz_case *c);
void fz_bufs_free(const fz_case *c, unsigned char **bufs);
/* Every buffer of c must equal its copy: the rerun with threads2 threads gave the bits of the
 * first call, with threads1. */
void fz_bufs_check_same(const fz_case *c, unsigned char **first, const char *what, int threads1,
                        int threads2);

#endif
