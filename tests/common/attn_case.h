/* One attention test case: inputs in a chosen layout for one of the seed's six functions,
 * the oracle's expectation, a call through the public API, and the comparison. */
#ifndef RA_TEST_ATTN_CASE_H
#define RA_TEST_ATTN_CASE_H

#include "oracle.h"

typedef enum tc_fn {
    TC_RAGGED_MQA,
    TC_RAGGED_MHA,
    TC_RAGGED_GQA,
    TC_REFERENCE_MQA,
    TC_REFERENCE_MHA,
    TC_REFERENCE_GQA,
    TC_FN_COUNT
} tc_fn;

const char *tc_fn_name(tc_fn fn);
bool tc_fn_is_ragged(tc_fn fn);
bool tc_fn_is_mqa(tc_fn fn);
bool tc_fn_is_mha(tc_fn fn);

typedef enum tc_layout {
    TC_LAYOUT_NATIVE,    /* the seed's shapes, contiguous */
    TC_LAYOUT_SWAPPED,   /* K/V memory with the S axis and its neighbour swapped: a [B,Hkv,S,D]
                            buffer behind a [B,S,Hkv,D] view and vice versa; 3-D K/V as [S,B,D] */
    TC_LAYOUT_PADDED,    /* every input and output row-major with 3 extra elements per axis */
    TC_LAYOUT_BROADCAST  /* K/V batch stride 0 (one cache for all b), q head stride 0 */
} tc_layout;

typedef struct tc_params {
    tc_fn fn;
    int64_t B, Hq, Hkv, S, D; /* MQA functions need Hkv == 1, MHA ones Hq == Hkv */
    ra_dtype qdt, kdt, vdt;   /* 0 is f32 */
    const int32_t *lengths;   /* NULL: random in [1, S-1] */
    uint64_t seed;
    float scale;      /* 0: the default 1.0 */
    float mask_value; /* 0: the default -0.7*FLT_MAX */
    tc_layout layout;
    double lo, hi; /* input value range; both 0: [-1, 1) */
    bool no_ml;    /* pass NULL for m and l */
} tc_params;

/* Options for one run; 0 everywhere means the defaults. */
typedef struct tc_opts {
    ra_kernel kernel;
    int64_t block_size;
    int64_t split_tokens;
    int num_threads;
    bool null_opts; /* pass NULL options (only with default scale and mask) */
    const or_modifiers *mod; /* score modifiers to set, or NULL */
} tc_opts;

typedef struct tc_case {
    tc_params p;
    or_dims d;
    int32_t *lengths;
    or_buf q, k, v, len, o, m, l;
    or_view qv, kv, vv;
    or_state expect;
    /* after tc_run: logical outputs (row-major [B][H][D] and [B][H]) and bytes of the output
     * buffers that changed outside the logical elements */
    float *got_o, *got_m, *got_l;
    int64_t stray_writes;
    bool sinks_set; /* the last tc_run set sinks: a length-0 head is then not empty */
} tc_case;

/* Builds inputs (random, with NaN past each length for the ragged functions so that reading
 * there shows up) and the expectation. */
void tc_init(tc_case *c, const tc_params *p);
/* Recomputes the expectation after a test edited the inputs. */
void tc_expect(tc_case *c);
/* The expectation of a ragged function with score modifiers (or_attention_mod). */
void tc_expect_mod(tc_case *c, const or_modifiers *mod);
/* Fills the outputs with a NaN sentinel, calls the function, gathers the outputs. Returns the
 * status of ra_options_set_kernel when that fails (RA_ERR_UNSUPPORTED), else the call's. */
ra_status tc_run(tc_case *c, const tc_opts *o);

typedef struct tc_errs {
    or_err o, m, l;
} tc_errs;

/* got vs the expectation for this function's convention (o*l for ragged MHA/GQA). */
tc_errs tc_compare(const tc_case *c);
/* After a successful tc_run (checking its status is the caller's job): asserts o, m, l within
 * tol, exact empty states for length-0 rows of the ragged functions, and no stray writes;
 * notes the o error under stat_key (when not NULL). Prints details on failure. */
void tc_check(const tc_case *c, double tol, const char *stat_key);
void tc_free(tc_case *c);

/* Write one logical element q[b][h][x] or k/v[b][t][j][x] of the case's inputs, whatever the
 * function's layout (call tc_expect afterwards). */
void tc_set_q(tc_case *c, int64_t b, int64_t h, int64_t x, double val);
void tc_set_k(tc_case *c, int64_t b, int64_t t, int64_t j, int64_t x, double val);
void tc_set_v(tc_case *c, int64_t b, int64_t t, int64_t j, int64_t x, double val);

/* Whether ra_options_set_kernel accepts k on this CPU. */
bool tc_kernel_available(ra_kernel k);

/* Whether to run the next case of a grid: all of them, unless RA_TEST_SAMPLE=N asks for one in
 * N (tools/valgrind.sh does, where each case runs many times slower; the other builds run
 * them all). */
bool tc_sampled(void);

#endif
