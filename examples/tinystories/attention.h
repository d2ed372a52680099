/* The KV cache of a batch and the one attention call per layer and step: ra_ragged_gqa over a
 * cache with a row per position of every sequence, or ra_paged_gqa over a pool of pages. */
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

typedef struct ts_attn {
    int B, S, Hq, Hkv, D, n_layers;
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
    float *q;             /* [B,1,Hq,D]: the caller writes each active sequence's query */
    float *o_part;        /* [B,1,Hq,D]: un-normalized o*l from ra_ragged_gqa */
    float *m, *l;         /* [B,1,Hq,1] */
    float *out;           /* [B,1,Hq,D]: normalized attention output (0 where lengths[b] == 0) */
    int32_t *lengths;     /* [B]: pos+1 for active sequences, 0 for idle slots */
    ra_tensor *qt, *o_part_t, *mt, *lt, *out_t, *lengths_t;
    ra_options *opts;
    int check;         /* compare every call with a double-precision oracle */
    struct ts_contig *contig; /* paged with check: the rows gathered for ra_ragged_gqa */
    double worst_rel;  /* largest error seen by the check, relative to max|o| of its call */
    double seconds;    /* wall time inside ra_ragged_gqa (or ra_paged_gqa) and ra_merge */
} ts_attn;

/* Allocates zeroed caches for B sequences and wraps them. kv_dtype: f32, or i8/fp8 for a
 * quantized cache. threads: ra_options num_threads (0 = OpenMP default). kernel:
 * RA_KERNEL_AUTO or a forced kernel. For TS_LAYOUT_PAGED, num_pages pages of page_size
 * positions per layer, all free and filled with NaN (unused otherwise). Returns 0, or -1 after
 * printing the reason to stderr. */
int ts_attn_init(ts_attn *a, const ts_config *c, int B, ts_layout layout, ra_dtype kv_dtype,
                 int threads, ra_kernel kernel, int check, int page_size, int num_pages);
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

/* Sets the lengths of a step: pos[b] + 1 for the n_active sequences in active[], 0 for the
 * other slots. Paged: a sequence whose position starts a new page takes one from the free
 * list first. Returns 0, or -1 after printing to stderr that the pool ran out (at step
 * `step`, for the message). */
int ts_attn_begin_step(ts_attn *a, const int *active, int n_active, const int *pos, int step);

/* Paged: sequence b has finished, and its pages go back to the free list, refilled with NaN
 * so that a read of a row no sequence holds shows in the output. Otherwise a no-op. */
void ts_attn_release(ts_attn *a, int b);

/* Attention of layer `layer` for the whole batch: one ra_ragged_gqa (paged: ra_paged_gqa)
 * over q, the layer's cache and lengths, then ra_merge (n = 1) to normalize into out. Returns
 * 0, or -1 after printing the library's error (or a failed check) to stderr. */
int ts_attn_run(ts_attn *a, int layer);

#endif
