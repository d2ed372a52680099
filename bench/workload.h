/* One benchmark problem: its shape, and the buffers and tensor views that a run over one
 * K/V dtype needs. */
#ifndef BENCH_WORKLOAD_H
#define BENCH_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raggedattn.h"

typedef enum bench_lengths {
    BENCH_LEN_FULL,        /* every sequence is S long */
    BENCH_LEN_RANDOM,      /* uniform in [1, S] */
    BENCH_LEN_RANDOM_BELOW /* uniform in [1, S): the seed test's randint(1, S) */
} bench_lengths;

typedef struct bench_shape {
    char name[16];
    int64_t B, S, Hq, Hkv, D;
    bench_lengths lengths;
    int64_t block_size;
    const char *note;
    int64_t window; /* the case's own attention window (0: none), used unless --window is given */
} bench_shape;

/* Score modifiers a run times beside the plain call (ra_options_set_softcap, _window, _sinks,
 * _alibi). Zero / false: not used. */
typedef struct bench_mods {
    float softcap;
    int64_t window, sink_positions;
    bool sinks; /* a per-head sink logit drawn from the seed, uniform in [-2, 2) */
    bool alibi; /* BLOOM's slopes 2^(-8(h+1)/Hq), h = 0..Hq-1 */
} bench_mods;

bool bench_mods_any(const bench_mods *m);
/* The modifiers a case runs with: the flags', with the case's own window when the flags set
 * none. */
bench_mods bench_case_mods(const bench_mods *flags, const bench_shape *s);
/* The table's and the JSON's name for m: "-" for none, else the modifiers joined by commas in
 * the order cap, win, sinks, alibi, e.g. "cap30", "win4096+4" (4 sink positions),
 * "cap50,win4096,sinks,alibi". */
const char *bench_mods_label(const bench_mods *m, char *buf, size_t size);
/* Positions of a sequence of length len that a windowed call reads, by the library's rule:
 * t >= len - window or t < sink_positions (all of them when window is 0). */
int64_t bench_visible_positions(int64_t len, int64_t window, int64_t sink_positions);

/* The named cases, in their canonical order; the first bench_n_preset_cases make up 'all' and
 * the presets, the others run only when named. */
extern const bench_shape bench_named_cases[];
extern const int bench_n_named_cases;
extern const int bench_n_preset_cases;
const bench_shape *bench_find_case(const char *name);
const char *bench_lengths_name(bench_lengths l);

/* The cache of a workload as pages of one size, for ra_paged_gqa: NHD pools K and V
 * [num_pages, page_size, Hkv, D] with ceil(lengths[b] / page_size) pages per sequence, and the
 * page table [B, max_pages] (max_pages = ceil(S / page_size)). The pages of all sequences sit
 * in one seeded shuffled order, so a sequence's pages are neither adjacent nor in order. Each
 * page holds the values the contiguous cache holds at its positions (0 past S), so a call
 * reads exactly the K/V bytes of the contiguous one. Unused table slots hold -1.
 * page_size 0 stands for the contiguous cache itself (nothing allocated). */
enum { BENCH_MAX_PAGED = 8 }; /* layouts per run (--paged) */

typedef struct bench_pool {
    int64_t page_size, num_pages, max_pages;
    size_t alloc; /* bytes of each of the K and V pools */
    void *k, *v;
    float *ks, *vs; /* quantized K/V: the scales, shaped like the pool [num_pages, page_size,
                       Hkv, 1]; NULL otherwise */
    int32_t *table;
    ra_tensor *t_k, *t_v, *t_table, *t_ks, *t_vs;
} bench_pool;

typedef struct bench_workload {
    bench_shape shape;
    ra_dtype kv_dtype, q_dtype;
    int32_t *lengths;
    int64_t sum_lengths;
    float scale;       /* 1/sqrt(D), as models use (the seed's default 1.0 only changes the data) */
    double kv_bytes;   /* bytes of K and V for sum(lengths) positions: what a call must read
                          (quantized K/V: the codes and the scales) */
    bench_mods mods;   /* what the modified calls use (bench_case_mods); none: plain only */
    int64_t visible_positions; /* positions the modified calls read, summed over the batch */
    double kv_bytes_visible;   /* bytes of K and V at those positions */
    float *sinks, *alibi;      /* [Hq] per-head values for --sinks and --alibi */
    ra_tensor *t_sinks, *t_alibi;
    size_t kv_alloc;   /* bytes of each of the K and V buffers; 0 without a contiguous cache */
    void *q, *k, *v;   /* k, v: the contiguous [B,S,Hkv,D] cache, or NULL */
    float *ks, *vs;    /* quantized K/V: one f32 scale per position and KV head [B,S,Hkv,1]
                          beside the contiguous codes; NULL otherwise */
    float *o, *m, *l;  /* ra_ragged_gqa's outputs */
    /* The normalized output rel_err compares with: ra_reference_gqa's (its warm-up call writes
     * it), or for quantized K/V (which the reference does not take) ra_ragged_gqa's on an f32
     * copy of the dequantized values code * scale, computed once by bench_workload_init. */
    float *ref_o;
    bool dequant_ref;  /* ref_o holds the dequantized ragged output */
    ra_tensor *t_q4, *t_q3, *t_k, *t_v, *t_kref, *t_vref, *t_len, *t_ks, *t_vs;
    ra_tensor *t_o, *t_m, *t_l, *t_ref_o;
    bench_pool pools[BENCH_MAX_PAGED]; /* one per layout asked for, in the order given */
    int n_pools;
} bench_workload;

/* Bytes one position of K or V takes: Hkv * D elements, plus Hkv f32 scales when kv_dtype is
 * quantized (one per position and KV head). */
double bench_kv_position_bytes(ra_dtype kv_dtype, int64_t Hkv, int64_t D);

/* Allocates and fills w for one case and dtype pair from a counter-based generator, so the
 * values depend only on (seed, case), never on the dtype or thread count; a quantized dtype
 * holds those values quantized by ra_quantize with one scale per position and KV head (so the
 * paged pools hold the contiguous cache's codes and scales). mods: the modifier
 * flags (the case may add its window; NULL: none). page_sizes[0 ..
 * n_page_sizes-1] (at most BENCH_MAX_PAGED) are the layouts to build: 0 the contiguous cache,
 * else a paged pool (bench_pool). contiguous: build the contiguous cache even when 0 is not
 * listed (the reference path reads it; for a quantized dtype it also makes the dequantized
 * output rel_err compares with). Returns 0, or -1 after printing why to stderr. */
int bench_workload_init(bench_workload *w, const bench_shape *shape, ra_dtype kv_dtype,
                        ra_dtype q_dtype, uint64_t seed, bool thp, const bench_mods *mods,
                        const int64_t *page_sizes, int n_page_sizes, bool contiguous);
void bench_workload_free(bench_workload *w);

/* Max |o/l - ref_o| / max |ref_o| over sequences with a length >= 1; NaN if any compared value
 * is NaN. */
double bench_max_rel_error(const bench_workload *w);

#endif
