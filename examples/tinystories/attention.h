/* The KV cache of a batch and the one ra_ragged_gqa call per layer and step. */
#ifndef TS_ATTENTION_H
#define TS_ATTENTION_H

#include "model.h"

#include <raggedattn.h>
#include <stdint.h>

typedef enum ts_layout {
    TS_LAYOUT_BSTH, /* cache [B, seq_len, n_kv_heads, head_size]: the library's native layout */
    TS_LAYOUT_BHST  /* cache [B, n_kv_heads, seq_len, head_size]: passed as a strided view */
} ts_layout;

typedef struct ts_attn {
    int B, S, Hq, Hkv, D, n_layers;
    ts_layout layout;
    int64_t kv_stride[4]; /* element strides of the logical [B,S,Hkv,D] view of a cache */
    float **k, **v;       /* per layer */
    ra_tensor **kt, **vt; /* per layer: views [B,S,Hkv,D] over k[l], v[l] */
    float *q;             /* [B,1,Hq,D]: the caller writes each active sequence's query */
    float *o_part;        /* [B,1,Hq,D]: un-normalized o*l from ra_ragged_gqa */
    float *m, *l;         /* [B,1,Hq,1] */
    float *out;           /* [B,1,Hq,D]: normalized attention output (0 where lengths[b] == 0) */
    int32_t *lengths;     /* [B]: pos+1 for active sequences, 0 for idle slots */
    ra_tensor *qt, *o_part_t, *mt, *lt, *out_t, *lengths_t;
    ra_options *opts;
    int check;         /* compare every call with a double-precision oracle */
    double worst_rel;  /* largest error seen by the check, relative to max|o| of its call */
    double seconds;    /* wall time inside ra_ragged_gqa and ra_merge */
} ts_attn;

/* Allocates zeroed caches for B sequences and wraps them. threads: ra_options num_threads
 * (0 = OpenMP default). kernel: RA_KERNEL_AUTO or a forced kernel. Returns 0, or -1 after
 * printing the reason to stderr. */
int ts_attn_init(ts_attn *a, const ts_config *c, int B, ts_layout layout, int threads,
                 ra_kernel kernel, int check);
void ts_attn_free(ts_attn *a);

/* Where position t of KV head j of sequence b starts in a layer's cache (D floats follow). */
static inline int64_t ts_attn_offset(const ts_attn *a, int b, int t, int j)
{
    return b * a->kv_stride[0] + t * a->kv_stride[1] + j * a->kv_stride[2];
}

/* Attention of layer `layer` for the whole batch: one ra_ragged_gqa over q, the layer's cache
 * and lengths, then ra_merge (n = 1) to normalize into out. Returns 0, or -1 after printing
 * the library's error (or a failed check) to stderr. */
int ts_attn_run(ts_attn *a, int layer);

#endif
