/* The one internal description of an attention call. Every seed signature is bound to it by
 * problem.c; nothing below this layer knows which seed function was called. */
#ifndef RA_PROBLEM_H
#define RA_PROBLEM_H

#include <stdbool.h>
#include <stdint.h>

#include "raggedattn.h"

/* A strided operand: base pointer, dtype and element strides per logical axis. */
typedef struct ra__operand {
    const void *data;
    ra_dtype dtype;
    int64_t sb, st, sh, sd; /* batch, position, head, feature; 0 where the axis is absent */
    int64_t sp;             /* a paged cache's pool: between pages (sb is 0 then) */
    /* A quantized operand's scales (element means q * scale): the scale of (b, t, j) is at
     * scale + b*c_sb + t*c_st + j*c_sh (paged: page*c_sp + row*c_st + j*c_sh); else NULL. */
    const float *scale;
    int64_t c_sb, c_st, c_sh, c_sp;
} ra__operand;

typedef struct ra__problem {
    int64_t B, S, Hq, Hkv, G, D; /* G = Hq / Hkv query heads per KV head */
    ra__operand q, k, v;         /* q.st: between query positions (multi-token calls) */
    /* Query positions per sequence (1 for a decode call). In a multi-token call sequence b
     * has qlen[b] <= T new tokens, the last qlen[b] positions of its cache; query i sees the
     * positions before len[b] - qlen[b] + i + 1. NULL for a decode call. */
    int64_t T;
    const int32_t *qlen;
    /* Positions before first[b] are not read (the engine's passes over a multi-token call
     * set it; never together with a window); NULL: from position 0. */
    const int32_t *first;
    /* A causal group (the multi-token prefix pass, on kernels with wide steps): with
     * causal_g > 0, row r of entry b's G rows per KV head sees only the positions before
     * len[b] - causal_n[b] + 1 + r / causal_g (causal_n[b] queries of causal_g rows each, the
     * last of which sees all len[b]); 0: every row sees every position. */
    int64_t causal_g;
    const int32_t *causal_n;
    /* Direct rows (multi-token passes whose rows need no merge): with rows_of set, entry b
     * holds row_t query positions from row_i0[b] of sequence row_b[b] of the caller's problem
     * rows_of, whose q the engine reads and whose outputs it writes, with that problem's sinks
     * and output convention (see ra__row_at). NULL: entry b is batch entry b. */
    const struct ra__problem *rows_of;
    const int64_t *row_b, *row_i0;
    int64_t row_t;
    /* lengths[b], copied once while validating, so that a caller changing its array during the
     * call cannot move a read out of bounds. Points at len_inline or at an allocation that
     * ra__problem_release frees; a bound problem is never copied. */
    const int32_t *len;
    int32_t len_inline[32];
    /* A paged cache (NULL pages for a contiguous one): position t of sequence b is row
     * t % page_size of pool page pages[page_at[b] + t / page_size]. The pages that hold valid
     * positions, copied (and checked) once while validating, like the lengths. */
    const int32_t *pages;
    const int64_t *page_at; /* [B+1] */
    int64_t page_size;
    void *pages_block; /* the allocation behind pages and page_at */
    float *o; /* required */
    int64_t o_sb, o_sh, o_sd, o_st; /* o_st: between query positions (multi-token calls) */
    float *m, *l; /* optional */
    int64_t m_sb, m_sh, l_sb, l_sh, m_st, l_st;
    bool normalize; /* o/l (true) or o*l = un-normalized (false) */
    float scale, mask_value;
    /* score modifiers (ra_options_set_softcap/window/sinks/alibi); 0 or NULL: off */
    float softcap;
    int64_t window, sink_positions;
    const float *sinks, *alibi; /* [Hq] */
    int64_t block_size, split_tokens;
    int num_threads;
    ra_kernel kernel;
} ra__problem;

/* The role each axis of a seed tensor plays. */
/* NP, PS and MP: a paged pool's pages and positions per page, and a page table's slots; T:
 * query positions of a multi-token call. */
enum ra__role {
    RA_R_B, RA_R_S, RA_R_HQ, RA_R_HKV, RA_R_D, RA_R_ONE, RA_R_NP, RA_R_PS, RA_R_MP, RA_R_T,
    RA_R_COUNT
};

typedef struct ra__layout {
    int rank;
    signed char role[4];
} ra__layout;

/* A seed function's signature: the layouts of its tensors and its output convention. */
typedef struct ra__signature {
    const char *name;
    ra__layout q, kv, o, ml;
    bool mha;       /* Hq must equal Hkv */
    bool normalize; /* returns o/l rather than o*l */
    bool paged;     /* kv is a pool of pages [NP,PS,Hkv,D], with a page table [B,MP] */
    bool multi;     /* q and the outputs have T query positions, counted by q_lens [B] */
} ra__signature;

/* Validates every argument (before anything is written) and fills *p. page_table is NULL
 * unless sig->paged, q_lens unless sig->multi. On RA_OK the caller owes one
 * ra__problem_release(p). */
ra_status ra__bind(const ra__signature *sig, const ra_options *opts, const ra_tensor *q,
                   const ra_tensor *k, const ra_tensor *v, const ra_tensor *page_table,
                   const ra_tensor *lengths, const ra_tensor *q_lens, ra_tensor *o,
                   ra_tensor *m, ra_tensor *l, ra__problem *p);

/* The body of every public attention function: binds the arguments, runs engine on the
 * problem, releases it. */
ra_status ra__bind_and_run(const ra__signature *sig, ra_status (*engine)(const ra__problem *),
                           const ra_options *opts, const ra_tensor *q, const ra_tensor *k,
                           const ra_tensor *v, const ra_tensor *page_table,
                           const ra_tensor *lengths, const ra_tensor *q_lens, ra_tensor *o,
                           ra_tensor *m, ra_tensor *l);

/* Whether p uses a score modifier. */
static inline bool ra__problem_modified(const ra__problem *p)
{
    return p->softcap != 0.0f || p->window || p->sinks || p->alibi;
}

/* Row h of entry b as the caller sees it: its problem, batch entry, query position and head. */
typedef struct ra__row {
    const ra__problem *p;
    int64_t b, i, h;
} ra__row;

/* Where row h of entry b lies (p->rows_of): in an entry's G = row_t * G' rows per KV head,
 * h = (j * row_t + k) * G' + g is query position row_i0[b] + k, head j * G' + g of the
 * caller (G' = rows_of->G). Rows past the entry's causal_n[b] queries (a causal group's
 * padding) read its last query and are never written: false for them. An entry holds at
 * least one query (multi.c folds only blocks of two or more). */
static inline bool ra__row_at(const ra__problem *p, int64_t b, int64_t h, ra__row *r)
{
    if (!p->rows_of) {
        *r = (ra__row){p, b, 0, h};
        return true;
    }
    const int64_t g = p->rows_of->G, per_kv = p->row_t * g, k = h % per_kv / g;
    const int64_t n = p->causal_g ? p->causal_n[b] : p->row_t;
    *r = (ra__row){p->rows_of, p->row_b[b], p->row_i0[b] + (k < n ? k : n - 1),
                   h / per_kv * g + h % g};
    return k < n;
}

/* Frees what ra__bind allocated for p. */
void ra__problem_release(ra__problem *p);

/* Binds one tensor to a layout: checks rank, the extents of already-known roles (dims[r] >= 0)
 * and RA_R_ONE axes, records new extents in dims and the strides per role in strides
 * (0 for roles the layout lacks). */
ra_status ra__bind_layout(const char *fn, const char *arg, const ra_tensor *t,
                          const ra__layout *lay, int64_t dims[RA_R_COUNT],
                          int64_t strides[RA_R_COUNT]);

/* Checks outputs against each other, themselves and the inputs (RA_ERR_ALIAS). */
ra_status ra__check_aliasing(const char *fn, const ra_tensor *const *outs,
                             const char *const *out_names, int n_out,
                             const ra_tensor *const *ins, const char *const *in_names, int n_in);

#endif
