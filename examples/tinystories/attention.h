/* The KV cache of a batch and the one attention call per layer and step: ra_ragged_gqa over a
 * cache with a row per position of every sequence, or ra_paged_gqa over a pool of pages; a
 * step that runs several tokens of a sequence (prefill, verification) calls their causal
 * multi-token forms ra_ragged_gqa_multi / ra_paged_gqa_multi instead. */
#ifndef TS_ATTENTION_H
#define TS_ATTENTION_H

#include "model.h"

#include <raggedattn.h>
#include <stdint.h>

typedef enum ts_layout {
    TS_LAYOUT_BSTH, /* cache [B, seq_len, n_kv_heads, head_size]: the library's native layout */
    TS_LAYOUT_BHST, /* cache [B, n_kv_heads, seq_len, head_size]: passed as a strided view */
    TS_LAYOUT_PAGED /* per layer a pool [num_pages, page_size, n_kv_heads, head_size] that the
                       batch shares; one page table for all layers (a page index names the
                       same page in every layer's pool) */
} ts_layout;

/* The page allocator of the paged layout: a sequence takes a page from the free list when its
 * length crosses a page boundary and gives all of its pages back when it finishes. */
typedef struct ts_pages {
    int size;         /* positions per page */
    int count;        /* pages in each layer's pool */
    int max_pages;    /* page-table slots per sequence: enough for seq_len positions */
    int32_t *table;   /* [B, max_pages]: sequence b's pages in order; -1 in unused slots */
    int32_t *held;    /* [B]: pages sequence b holds */
    int32_t *free;    /* stack of the free page indices; the top is reused first */
    int n_free;
    int peak;         /* most pages in use at once */
    long acquired;    /* pages taken from the free list, over the whole run */
    ra_tensor *table_t;
} ts_pages;

/* The tokens one forward runs: active sequence b runs n[b] >= 1 tokens, token[b * T + i] at
 * position pos[b] + i, as row b * T + i of the activations and of the attention's [B,T,Hq,D]
 * buffers (rows i >= n[b] are padding). multi: attend with the multi-token calls (q_lens =
 * n); otherwise T is 1 and the calls are the decode ones. */
typedef struct ts_step {
    int T, multi;
    const int *active;
    int n_active;
    const int *n, *pos, *token;
} ts_step;

typedef struct ts_attn {
    int B, S, Hq, Hkv, D, n_layers;
    int max_T;            /* rows per sequence the buffers hold */
    int T, multi;         /* the current step's (ts_attn_begin_step) */
    ts_layout layout;
    /* RA_DTYPE_F32, or a quantized dtype (i8, fp8): the cache then holds codes, quantized by
     * ra_quantize as each row is stored, and an f32 scale per position and KV head. */
    ra_dtype kv_dtype;
    int64_t kv_stride[4]; /* element strides of the logical [B,S,Hkv,D] view of a cache, or of
                             a pool [num_pages, page_size, Hkv, D] */
    float **k, **v;       /* per layer: the cache, or the pool (f32 caches only) */
    unsigned char **kc, **vc; /* per layer: the codes of a quantized cache, laid out as k, v */
    float **ks, **vs;     /* per layer: their scales, a row's at its row offset / D */
    ra_tensor **kst, **vst; /* per layer: the scale tensors [B,S,Hkv,1] (or [pages,...,1]) */
    ra_tensor **kt, **vt; /* per layer: views [B,S,Hkv,D] (or the pools) over the cache */
    ts_pages pages;       /* the paged layout's allocator (zeroed otherwise) */
    float *q;             /* [B,T,Hq,D]: the caller writes each active sequence's queries */
    float *o_part;        /* [B,T,Hq,D]: un-normalized o*l from the attention call */
    float *m, *l;         /* [B,T,Hq,1] */
    float *out;           /* [B,T,Hq,D]: normalized attention output (0 in empty rows) */
    int32_t *lengths;     /* [B]: pos+n for active sequences, 0 for idle slots */
    int32_t *q_lens;      /* [B]: n for active sequences, 0 for idle slots */
    ra_tensor *qt, *o_part_t, *mt, *lt; /* [B,T,...] views for the attention call */
    ra_tensor *o_flat_t, *m_flat_t, *l_flat_t, *out_t; /* [B*T,1,...] for ra_merge */
    ra_tensor *lengths_t, *q_lens_t;
    ra_options *opts;
    int check;         /* compare every call with a double-precision oracle */
    struct ts_contig *contig; /* paged with check: the rows gathered for ra_ragged_gqa */
    double worst_rel;  /* largest error seen by the check, relative to max|o| of its call */
    double seconds;    /* wall time inside ra_ragged_gqa (or ra_paged_gqa) and ra_merge */
} ts_attn;

/* Allocates zeroed caches for B sequences and wraps them, with query and output buffers for
 * up to max_T tokens per sequence and step. kv_dtype: f32, or i8/fp8 for a
 * quantized cache. threads: ra_options num_threads (0 = OpenMP default). kernel:
 * RA_KERNEL_AUTO or a forced kernel. For TS_LAYOUT_PAGED, num_pages pages of page_size
 * positions per layer, all free and filled with NaN (unused otherwise). Returns 0, or -1 after
 * printing the reason to stderr. */
int ts_attn_init(ts_attn *a, const ts_config *c, int B, int max_T, ts_layout layout,
                 ra_dtype kv_dtype, int threads, ra_kernel kernel, int check, int page_size,
                 int num_pages);
void ts_attn_free(ts_attn *a);

/* Where position t of KV head j of sequence b starts in a layer's cache (D floats follow).
 * Paged: in the page that sequence b's page table lists for t. */
static inline int64_t ts_attn_offset(const ts_attn *a, int b, int t, int j)
{
    if (a->layout == TS_LAYOUT_PAGED) {
        const int ps = a->pages.size;
        const int64_t page = a->pages.table[(int64_t)b * a->pages.max_pages + t / ps];
        return page * a->kv_stride[0] + (t % ps) * a->kv_stride[1] + j * a->kv_stride[2];
    }
    return b * a->kv_stride[0] + t * a->kv_stride[1] + j * a->kv_stride[2];
}

/* Stores the K and V rows [Hkv, D] of position pos of sequence b in layer `layer`'s cache;
 * a quantized cache gets them through ra_quantize, one scale per KV head. Returns 0, or -1
 * after printing the library's error. */
int ts_attn_store(ts_attn *a, int layer, int b, int pos, const float *k, const float *v);

/* Sets the lengths of a step: pos[b] + n[b] (and q_lens n[b]) for the active sequences, 0
 * for the other slots, and the buffers' views for st->T rows per sequence. Paged: each
 * position that starts a new page takes one from the free list first. Returns 0, or -1 after
 * printing to stderr that the pool ran out (at step `step`, for the message). */
int ts_attn_begin_step(ts_attn *a, const ts_step *st, int step);

/* The positions query row i of sequence b sees in the current step: the causal rule
 * lengths[b] - q_lens[b] + i + 1, or 0 for a padding row or an idle slot. */
static inline int ts_attn_row_length(const ts_attn *a, int b, int i)
{
    return i < a->q_lens[b] ? a->lengths[b] - a->q_lens[b] + i + 1 : 0;
}

/* Paged: sequence b has finished, and its pages go back to the free list, refilled with NaN
 * so that a read of a row no sequence holds shows in the output. Otherwise a no-op. */
void ts_attn_release(ts_attn *a, int b);

/* Attention of layer `layer` for the whole batch: one ra_ragged_gqa (paged: ra_paged_gqa, and
 * their _multi forms in a multi step) over q, the layer's cache and lengths, then ra_merge
 * (n = 1, every row of [B*T] as a sequence of its own) to normalize into out. Returns
 * 0, or -1 after printing the library's error (or a failed check) to stderr. */
int ts_attn_run(ts_attn *a, int layer);

#endif
