/*
 * libraggedattn: ragged decode attention on CPUs.
 *
 * A batch of B sequences, each with its own KV-cache length, and one new query token per
 * sequence. For batch entry b, query head h, KV head j = h / (Hq/Hkv) and positions
 * t < lengths[b]:
 *
 *     s_t = scale * dot(q[b,h,:], k[b,t,j,:])
 *     m   = max_t s_t
 *     l   = sum_t exp(s_t - m)
 *     o   = sum_t exp(s_t - m) * v[b,t,j,:]      (un-normalized; o / l is the attention output)
 *
 * MHA is Hq == Hkv, MQA is Hkv == 1, GQA is any Hkv that divides Hq.
 *
 * The six attention functions keep the shapes and output conventions of MaxText's
 * ragged_attention module (the "seed"):
 *
 *   function             q            k, v           o returned                 m, l
 *   ra_reference_mqa     [B,H,D]      [B,S,D]        normalized [B,H,D]         [B,H,1]
 *   ra_reference_mha     [B,1,H,D]    [B,S,H,D]      normalized [B,1,H,D]       [B,1,H,1]
 *   ra_reference_gqa     [B,Hq,D]     [B,Hkv,S,D]    normalized [B,1,Hq,D]      [B,1,Hq,1]
 *   ra_ragged_mqa        [B,H,D]      [B,S,D]        normalized [B,H,D]         [B,H]
 *   ra_ragged_mha        [B,1,H,D]    [B,S,H,D]      UN-normalized o*l          [B,1,H,1]
 *   ra_ragged_gqa        [B,1,Hq,D]   [B,S,Hkv,D]    UN-normalized o*l          [B,1,Hq,1]
 *
 * ra_merge combines partial (o*l, m, l) states (log-sum-exp rule) into the normalized output.
 *
 * Conventions
 *   - Every function that can fail returns ra_status; RA_OK is 0. On failure nothing is written
 *     to any output, and ra_last_error() names the argument and the offending value.
 *   - The library never prints, aborts or exits. Its only process-wide objects are a mutex
 *     that serializes its calls into the (non-reentrant) serial OpenBLAS, the fork handlers it
 *     registers on first use (below), and a test-only allocation hook that is not exported;
 *     everything else is per call or per calling thread.
 *   - Tensors are opaque handles with a dtype, a rank (1..4), a shape and strides in elements.
 *
 * Thread safety
 *   - Every function may be called from many threads at once.
 *   - Handles are immutable after creation, apart from the data of the tensors you pass as
 *     outputs. Sharing input tensors and options between concurrent calls is safe; two
 *     concurrent calls must not write the same output memory.
 *   - ra_options setters must not race with calls that read the same options object.
 *   - The attention functions run an OpenMP parallel region of ra_options' num_threads threads
 *     (0 = the OpenMP default). They never change OpenMP or BLAS settings of the process. The
 *     library links the serial (single-threaded) OpenBLAS, so BLAS calls inside that region start
 *     no threads of their own.
 *   - Results are bitwise identical for every thread count.
 *   - Called from inside an OpenMP parallel region, a call runs on its calling thread.
 *   - When threads cannot be created (RLIMIT_AS, a pids limit), a call runs on the threads it
 *     could get, down to its calling thread, instead of letting libgomp exit the process.
 *   - fork(): the child may call the library, with any thread count. Before a fork, a handler
 *     releases the forking thread's idle OpenMP worker threads (omp_pause_resource_all), since
 *     libgomp's thread pool does not survive fork; the next parallel region starts new ones.
 *     It also waits for a BLAS call in flight on another thread, so the child never inherits
 *     the BLAS lock held. (Should the release fail, the child's calls from that thread run on
 *     one thread.)
 *   - dlclose() leaves the library loaded (it is linked with -z nodelete): unloading libgomp
 *     under its own idle threads would crash the process.
 *   - With num_threads 0, a calling thread whose parallel regions keep losing time to other
 *     work on the same cores (more than a quarter of a region) runs its next calls on one
 *     thread, for 1, 2, 4, ... up to 64 calls, then tries again. See docs/threads.md.
 */
#ifndef RAGGEDATTN_H
#define RAGGEDATTN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(RA_BUILDING_SHARED)
#define RA_API __declspec(dllexport)
#elif defined(_WIN32) && defined(RA_USING_SHARED)
#define RA_API __declspec(dllimport)
#elif defined(__GNUC__)
#define RA_API __attribute__((visibility("default")))
#else
#define RA_API
#endif

/* ---- Versions --------------------------------------------------------------------------- */

#define RA_VERSION_MAJOR 0
#define RA_VERSION_MINOR 4
#define RA_VERSION_PATCH 0
#define RA_VERSION_NUMBER (RA_VERSION_MAJOR * 10000 + RA_VERSION_MINOR * 100 + RA_VERSION_PATCH)
#define RA_VERSION_STRING "0.4.0"

/* MAJOR*10000 + MINOR*100 + PATCH of the library actually loaded. Since 0.1.0. */
RA_API uint32_t ra_version_number(void);
/* "MAJOR.MINOR.PATCH" of the library actually loaded; never NULL. Since 0.1.0. */
RA_API const char *ra_version_string(void);

/* ---- Status codes ----------------------------------------------------------------------- */

typedef enum ra_status {
    RA_OK = 0,
    RA_ERR_INVALID_ARGUMENT = 1, /* NULL where not allowed, bad option value, rank outside 1..4 */
    RA_ERR_SHAPE = 2,            /* ranks/dims that do not fit together, Hq % Hkv != 0 */
    RA_ERR_DTYPE = 3,            /* a dtype that this argument does not take */
    RA_ERR_LENGTH = 4,           /* lengths[b] < 0 or > S; a page index outside the pool */
    RA_ERR_OVERFLOW = 5,         /* sizes or offsets that do not fit in int64/size_t */
    RA_ERR_OUT_OF_MEMORY = 6,
    RA_ERR_ALIAS = 7,            /* an output overlaps an input or another output */
    RA_ERR_INTERNAL = 8,
    RA_ERR_UNSUPPORTED = 9       /* a kernel this CPU or build cannot run; a score modifier or
                                  * quantized K/V given to a reference function */
    /* more may be added with new values; values are never reused */
} ra_status;

/* A static English name for s, e.g. "RA_ERR_SHAPE: tensor shapes do not fit together".
 * Never NULL, also for unknown values. Since 0.1.0. */
RA_API const char *ra_status_string(ra_status s);

/* This thread's message for its last failing call, like errno: successful calls do not clear
 * it. "" if no call on this thread has failed. The pointer stays valid until this thread's next
 * failing call. Since 0.1.0. */
RA_API const char *ra_last_error(void);

/* ---- Tensors ---------------------------------------------------------------------------- */

typedef enum ra_dtype {
    RA_DTYPE_F32 = 0,
    RA_DTYPE_F16 = 1,  /* IEEE binary16 */
    RA_DTYPE_BF16 = 2, /* bfloat16: the top 16 bits of an f32 */
    RA_DTYPE_I32 = 3,
    /* Quantized K/V (since 0.2.0): each element is stored as q and means q * scale, the scale
     * carried by the tensor (ra_tensor_wrap_quantized). */
    RA_DTYPE_I8 = 4,        /* signed 8-bit integer */
    RA_DTYPE_FP8_E4M3 = 5,  /* OCP FP8 E4M3 (e4m3fn): exponent bias 7, no infinities, 0x7f and
                             * 0xff are NaN, largest 448 */
    RA_DTYPE_FP8_E5M2 = 6   /* OCP FP8 E5M2: the top byte of an IEEE binary16 */
} ra_dtype;

typedef struct ra_tensor ra_tensor; /* opaque */

/* A view over caller memory, which the library never frees. rank is 1..4; shape[i] >= 0.
 * strides are in elements and >= 0 (0 broadcasts; allowed on inputs only); NULL strides mean
 * row-major contiguous. data may be NULL only when the tensor has no elements.
 * Fails with RA_ERR_OVERFLOW when the byte size or the furthest byte offset does not fit in
 * int64_t or size_t. Since 0.1.0. */
RA_API ra_status ra_tensor_wrap(ra_tensor **out, ra_dtype dtype, int rank, const int64_t *shape,
                                const int64_t *strides, void *data);

/* A contiguous tensor whose memory the library owns: zeroed and 64-byte aligned, freed by
 * ra_tensor_destroy. Since 0.1.0. */
RA_API ra_status ra_tensor_create(ra_tensor **out, ra_dtype dtype, int rank, const int64_t *shape);

/* A quantized K or V cache: a view like ra_tensor_wrap of i8 or fp8 data, each element q
 * standing for q * s, where s is the element of `scale` at the same index, an f32 tensor of the
 * same rank whose every extent is the data's or 1 (1: one scale along that axis) and whose last
 * (feature) extent is 1. For a [B,S,Hkv,D] cache: [1,1,1,1] is one scale per tensor,
 * [1,1,Hkv,1] one per KV head, [B,S,Hkv,1] one per position and head (a paged pool's scales are
 * shaped like the pool). The handle keeps a view of the scale's memory, which the caller keeps
 * alive and may update as the cache grows. Errors: RA_ERR_DTYPE (data not i8/fp8, or scale not
 * f32), RA_ERR_SHAPE (a scale extent that is neither the data's nor 1, or a last extent not
 * 1), RA_ERR_INVALID_ARGUMENT (NULL scale), and those of ra_tensor_wrap. Only the ragged and
 * paged functions take quantized K/V; the attention is exact f32 arithmetic on q * s, and a
 * NaN code or scale at a valid position makes that head NaN. Since 0.2.0. */
RA_API ra_status ra_tensor_wrap_quantized(ra_tensor **out, ra_dtype dtype, int rank,
                                          const int64_t *shape, const int64_t *strides,
                                          void *data, const ra_tensor *scale);

/* Quantizes src (f32, f16 or bf16) into dst (same shape; i8, fp8 e4m3 or e5m2) and scale (f32,
 * shaped as for ra_tensor_wrap_quantized against dst): each scale element is max|x| / qmax over
 * the elements it covers (qmax 127, 448 or 57344; 1 where they are all 0), and each element is
 * x / scale rounded to nearest even (saturated to +-qmax; NaN stays NaN in fp8 and is 0 in i8).
 * Writes nothing on error (RA_ERR_DTYPE, RA_ERR_SHAPE, RA_ERR_INVALID_ARGUMENT, RA_ERR_ALIAS).
 * Since 0.2.0. */
RA_API ra_status ra_quantize(const ra_tensor *src, ra_tensor *dst, ra_tensor *scale);

/* Frees the handle (and the memory, if the library owns it). NULL is a no-op. Since 0.1.0. */
RA_API void ra_tensor_destroy(ra_tensor *t);

/* Queries. On NULL, or an axis outside 0..rank-1: NULL, (ra_dtype)-1 or -1. Since 0.1.0. */
RA_API void *ra_tensor_data(const ra_tensor *t);
RA_API ra_dtype ra_tensor_dtype(const ra_tensor *t);
RA_API int ra_tensor_rank(const ra_tensor *t);
RA_API int64_t ra_tensor_dim(const ra_tensor *t, int axis);
RA_API int64_t ra_tensor_stride(const ra_tensor *t, int axis); /* in elements */

/* ---- Options ---------------------------------------------------------------------------- */

typedef struct ra_options ra_options; /* opaque; NULL wherever accepted means the defaults */

/* Which block kernel computes the ragged functions. AUTO picks the fastest one this CPU runs
 * (x86-64: AVX-512, then AVX2+FMA, then portable C; arm64: NEON). A build has the SIMD
 * kernels of its target only: elsewhere setting one fails with RA_ERR_UNSUPPORTED. BLAS is the original design's path (see
 * docs/design.md, "Why BLAS is kept"): two cblas_sgemm calls per KV block of at most 1024
 * positions (plain loops instead when the process loaded a threaded OpenBLAS; the portable
 * kernel when G or D exceeds INT_MAX). Every kernel computes the same function; results agree
 * to f32 rounding. */
typedef enum ra_kernel {
    RA_KERNEL_AUTO = 0,
    RA_KERNEL_BLAS = 1,
    RA_KERNEL_PORTABLE = 2,
    RA_KERNEL_AVX2 = 3,
    RA_KERNEL_AVX512 = 4,
    RA_KERNEL_NEON = 5 /* arm64 (AArch64 Advanced SIMD). Since 0.4.0. */
} ra_kernel;

/* Defaults: block_size 256, scale 1.0f, mask_value -0.7f*FLT_MAX, num_threads 0,
 * kernel RA_KERNEL_AUTO, split_tokens 0 (automatic). Since 0.1.0. */
RA_API ra_status ra_options_create(ra_options **out);
RA_API void ra_options_destroy(ra_options *o); /* NULL is a no-op */

/* KV positions per online-softmax step (the seed's Pallas block). >= 1. The SIMD kernels step
 * through a block in tiles of at most 32 positions (256 where AVX-512 walks a [B,S,Hkv,D]
 * cache in row order); any block size gives the same attention up to f32 rounding, and every
 * position below the length counts. */
RA_API ra_status ra_options_set_block_size(ra_options *o, int64_t block_size);
/* Multiplies q.k before the softmax; any finite value. The seed applies none (1.0). */
RA_API ra_status ra_options_set_scale(ra_options *o, float scale);
/* Added to masked logits by the reference functions (the ragged ones skip masked positions). */
RA_API ra_status ra_options_set_mask_value(ra_options *o, float mask_value);
/* OpenMP threads per call; 0 means the OpenMP default (omp_get_max_threads()), lowered to one
 * thread while other work keeps the cores busy (see "Thread safety" above). >= 0. An upper
 * bound: a call uses at most the OpenMP thread limit, 4 threads per processor, one per work
 * item, one per about a million multiply-adds (waking a thread costs microseconds), and the
 * threads the process can create. Results never depend on it. */
RA_API ra_status ra_options_set_num_threads(ra_options *o, int num_threads);
/* Force a kernel. RA_ERR_INVALID_ARGUMENT for an unknown value, RA_ERR_UNSUPPORTED when this
 * CPU or build cannot run it. Since 0.1.0. */
RA_API ra_status ra_options_set_kernel(ra_options *o, ra_kernel kernel);
/* Split-KV: the ragged functions cut each sequence into chunks of this many positions (a
 * multiple of block_size is best), compute them in parallel and merge them in a fixed order.
 * Each chunk keeps a partial state of Hq*D floats, so tiny chunks cost memory.
 * 0 = automatic (a fixed size that depends only on the kernel, never on the thread count or on
 * the other sequences of the batch, so results stay bitwise reproducible). >= 0. */
RA_API ra_status ra_options_set_split_tokens(ra_options *o, int64_t split_tokens);

/* ---- Score modifiers of current models (since 0.2.0) -------------------------------------
 *
 * Modifiers of the logits s = scale * q.k, for the ragged and paged functions (the reference
 * functions compute the seed's arithmetic and return RA_ERR_UNSUPPORTED when one is set). In
 * the order they apply, for query head h of sequence b and position t < lengths[b]:
 *   soft-cap (Gemma 2):      s = cap * tanh(s / cap)
 *   ALiBi (BLOOM, MPT):      s = s - slope[h] * (lengths[b] - 1 - t)
 *   window (Mistral, Gemma): only t >= lengths[b] - window, and t < sink_positions
 *                            (StreamingLLM); the other positions are skipped, not read
 *   sinks (gpt-oss):         a logit sink[h] joins the softmax denominator only:
 *                            m = max(m, sink[h]), l = sum_t exp(s_t - m) + exp(sink[h] - m),
 *                            o = sum_t exp(s_t - m) v_t (the sink adds no value)
 * A state that includes a sink is a complete one: when a sequence is split across calls and
 * merged (ra_merge, raggedattn_mpi), set the sinks on one part only, so the sink counts once.
 * A window and ALiBi are measured from lengths[b] - 1, the call's own last position, so they
 * do not apply to a part that does not end where the sequence ends.
 * Setters fail with RA_ERR_INVALID_ARGUMENT on NULL options and bad values; the per-head
 * tensors are copied, and a call whose Hq differs from their length is RA_ERR_SHAPE. */

/* cap finite and >= 0; 0 (the default) turns the soft-cap off. */
RA_API ra_status ra_options_set_softcap(ra_options *o, float cap);
/* window >= 0 positions (0, the default: no window), and sink_positions >= 0 first positions
 * that stay visible (0 without a window). */
RA_API ra_status ra_options_set_window(ra_options *o, int64_t window, int64_t sink_positions);
/* f32 [Hq], each finite or -inf (-inf: no sink for that head); NULL turns sinks off. */
RA_API ra_status ra_options_set_sinks(ra_options *o, const ra_tensor *sinks);
/* f32 [Hq] ALiBi slopes, finite; NULL turns ALiBi off. */
RA_API ra_status ra_options_set_alibi(ra_options *o, const ra_tensor *slopes);

/* The kernel a call with these options would run (AUTO resolved for this CPU), and a kernel's
 * name: "auto", "blas", "portable", "avx2", "avx512"; "unknown" otherwise. A layout the SIMD
 * kernels do not take (a feature stride other than 1) runs on the portable kernel instead.
 * Since 0.1.0. */
RA_API ra_kernel ra_kernel_resolve(const ra_options *o);
RA_API const char *ra_kernel_name(ra_kernel kernel);

/* ---- Attention: the seed's six functions -------------------------------------------------
 *
 * Shapes and output conventions as in the table at the top of this file.
 *   - q, k, v: f32, f16 or bf16, each independently; any strides.
 *   - lengths: i32 [B], each in [0, S].
 *   - o: f32, required. m, l: f32, or NULL when not wanted.
 *   - opts: NULL for the defaults.
 *
 * Ragged functions: exact attention over positions t < lengths[b], whatever the block size.
 * lengths[b] == 0 gives o = 0, m = -inf, l = 0 (a partial state that merges to nothing).
 *
 * Reference functions: a literal transcription of the seed's arithmetic. mask_value is added
 * to the logits of positions t >= lengths[b]; probabilities are rounded to v's dtype before the
 * PV product, whose f32 sum is rounded to v's dtype before dividing by l. At lengths[b] == 0
 * they return what the seed returns (the mean of v over all S positions), not zeros.
 *
 * Zero-sized dimensions: B == 0 or Hq == 0 is a valid call that writes nothing; D == 0 is
 * RA_ERR_SHAPE.
 *
 * Non-finite values stay in their head: a NaN in a valid position of q, k or v makes that
 * head's o NaN, and never touches another head. A logit of -inf (from an -inf in q or k) has
 * weight exp(-inf) = 0. A head whose every valid logit is -inf has no weight anywhere: the
 * ragged functions return the empty state o = 0, m = -inf, l = 0 for it, as for length 0 (the
 * one answer under which split-KV, ra_merge and sharding agree with a single call;
 * FlashAttention does the same for fully masked rows), while the reference functions keep the
 * seed's arithmetic: NaN (exp(-inf - -inf)) when the masked positions' logits are -inf too, as
 * when the length is S, and otherwise the masked rows' weights, as at length 0.
 *
 * lengths are read once, while the arguments are validated; a caller that changes them during
 * the call gets the result for the values read then, never a read out of bounds.
 *
 * Errors (nothing is written): RA_ERR_INVALID_ARGUMENT (NULL q/k/v/lengths/o),
 * RA_ERR_DTYPE, RA_ERR_SHAPE (ranks or dims that do not fit, Hq % Hkv != 0),
 * RA_ERR_LENGTH (a length outside [0, S]), RA_ERR_ALIAS (an output overlaps an input or another
 * output, or its own elements), RA_ERR_OVERFLOW, RA_ERR_OUT_OF_MEMORY. The overlap checks are
 * conservative: they compare byte ranges, and an output's strides must, sorted, each clear the
 * extent of the smaller ones (true of every row-major or transposed layout). Since 0.1.0. */
RA_API ra_status ra_ragged_mqa(const ra_options *opts, const ra_tensor *q, const ra_tensor *k,
                               const ra_tensor *v, const ra_tensor *lengths, ra_tensor *o,
                               ra_tensor *m, ra_tensor *l);
RA_API ra_status ra_ragged_mha(const ra_options *opts, const ra_tensor *q, const ra_tensor *k,
                               const ra_tensor *v, const ra_tensor *lengths, ra_tensor *o,
                               ra_tensor *m, ra_tensor *l);
RA_API ra_status ra_ragged_gqa(const ra_options *opts, const ra_tensor *q, const ra_tensor *k,
                               const ra_tensor *v, const ra_tensor *lengths, ra_tensor *o,
                               ra_tensor *m, ra_tensor *l);
RA_API ra_status ra_reference_mqa(const ra_options *opts, const ra_tensor *q, const ra_tensor *k,
                                  const ra_tensor *v, const ra_tensor *lengths, ra_tensor *o,
                                  ra_tensor *m, ra_tensor *l);
RA_API ra_status ra_reference_mha(const ra_options *opts, const ra_tensor *q, const ra_tensor *k,
                                  const ra_tensor *v, const ra_tensor *lengths, ra_tensor *o,
                                  ra_tensor *m, ra_tensor *l);
RA_API ra_status ra_reference_gqa(const ra_options *opts, const ra_tensor *q, const ra_tensor *k,
                                  const ra_tensor *v, const ra_tensor *lengths, ra_tensor *o,
                                  ra_tensor *m, ra_tensor *l);

/* ---- Paged KV caches ----------------------------------------------------------------------
 *
 * Servers keep K and V in a pool of fixed-size pages and give each sequence a page table
 * (vLLM's block tables, FlashAttention's block_table, FlashInfer's paged cache; llama.cpp's KV
 * cells are pages of one position). ra_paged_gqa attends over such a cache without a copy:
 *   - q [B,1,Hq,D] and the outputs as in ra_ragged_gqa (o un-normalized o*l, m and l
 *     [B,1,Hq,1] or NULL), with the same conventions and options. For every dtype, page size
 *     and thread count the result is bitwise the one ra_ragged_gqa returns for the same
 *     positions in a contiguous cache that holds each position's rows as the pages do
 *     ([B,S,Hkv,D] for NHD pages, [B,Hkv,S,D] for HND).
 *   - k_pages, v_pages [num_pages, page_size, Hkv, D]: f32, f16 or bf16, any strides. A pool
 *     stored [num_pages, Hkv, page_size, D] (HND) passes as a strided view; K and V may be two
 *     pools, or two views of one buffer (e.g. [num_pages, 2, page_size, Hkv, D] viewed twice,
 *     with the page stride of the whole).
 *   - page_table i32 [B, max_pages]: row b lists sequence b's pages in order, so position t of
 *     sequence b is row t % page_size of page page_table[b][t / page_size]. Only the first
 *     ceil(lengths[b] / page_size) entries of a row are read; pages may be shared between
 *     sequences (a common prefix) and used in any order.
 *   - lengths i32 [B], each in [0, max_pages * page_size].
 * MHA is Hkv == Hq and MQA is Hkv == 1 in the same call.
 *
 * Errors (nothing is written): those of ra_ragged_gqa; RA_ERR_SHAPE for page_size 0;
 * RA_ERR_LENGTH for a length above max_pages * page_size, or a page index outside
 * [0, num_pages) in a slot that holds valid positions (the message names b, the slot and the
 * index). lengths and the page-table entries are read once, while validating.
 * Since 0.2.0. */
RA_API ra_status ra_paged_gqa(const ra_options *opts, const ra_tensor *q,
                              const ra_tensor *k_pages, const ra_tensor *v_pages,
                              const ra_tensor *page_table, const ra_tensor *lengths,
                              ra_tensor *o, ra_tensor *m, ra_tensor *l);

/* ---- Several query tokens per sequence (causal) -------------------------------------------
 *
 * Speculative-decoding verification, chunked prefill and prefill attend with T new tokens per
 * sequence at once (FlashAttention's flash_attn_with_kvcache, padded form; T = 0 is a call
 * with nothing to do):
 *   - q [B,T,Hq,D]; q_lens i32 [B]: sequence b uses its first q_lens[b] <= T query rows
 *     (the rest are padding). Its new tokens are already in the cache, as its last q_lens[b]
 *     positions, so q_lens[b] <= lengths[b].
 *   - Causal rule: query row i of sequence b sees the positions t < lengths[b] - q_lens[b] +
 *     i + 1 (itself and everything before it).
 *   - o [B,T,Hq,D] un-normalized (o*l), m and l [B,T,Hq,1] or NULL: row (b, i) as
 *     ra_ragged_gqa returns it for that query alone. Padding rows (i >= q_lens[b]) receive the
 *     empty state: o = 0, m = -inf, l = 0.
 *   - k, v as in ra_ragged_gqa; ra_paged_gqa_multi takes ra_paged_gqa's pools and page table.
 *   - Options as for the decode calls. With T = 1 the results are bitwise those of
 *     ra_ragged_gqa / ra_paged_gqa. A window and ALiBi slopes need T = 1.
 * Results are bitwise identical for every thread count. Work: query rows of a sequence are
 * taken in blocks that share one pass over the K/V they all see (see docs/multi_token.md).
 *
 * Errors (nothing is written): those of the decode calls; RA_ERR_LENGTH for q_lens[b] < 0,
 * > T or > lengths[b]; RA_ERR_UNSUPPORTED for a window or ALiBi with T > 1. q_lens is read
 * once, while validating. Since 0.3.0. */
RA_API ra_status ra_ragged_gqa_multi(const ra_options *opts, const ra_tensor *q,
                                     const ra_tensor *k, const ra_tensor *v,
                                     const ra_tensor *lengths, const ra_tensor *q_lens,
                                     ra_tensor *o, ra_tensor *m, ra_tensor *l);
RA_API ra_status ra_paged_gqa_multi(const ra_options *opts, const ra_tensor *q,
                                    const ra_tensor *k_pages, const ra_tensor *v_pages,
                                    const ra_tensor *page_table, const ra_tensor *lengths,
                                    const ra_tensor *q_lens, ra_tensor *o, ra_tensor *m,
                                    ra_tensor *l);

/* ---- Merging partial states --------------------------------------------------------------
 *
 * Combines n >= 1 partial states (o_i un-normalized [B,1,H,D], m_i and l_i [B,1,H,1], all f32,
 * as ra_ragged_mha/gqa return them) with the log-sum-exp rule:
 *     M = max_i m_i,  L = sum_i exp(m_i - M) l_i,  o_out = sum_i exp(m_i - M) o_i / L
 * A part with l = 0 and m = -inf contributes nothing; if every part has l = 0, o_out = 0,
 * M = -inf and L = 0. m_out and l_out may be NULL; when given they receive M and L, so that
 * (o_out * L, M, L) is again a partial state. Parts are combined in index order.
 *
 * Normalizing one state: with n == 1 the m array may be NULL. The part then weighs 1, so
 * o_out = o / l (0 where l = 0) and l_out receives l; m_out must be NULL, since the max is not
 * known (RA_ERR_INVALID_ARGUMENT otherwise).
 *
 * In place: an output may be exactly the same view as an input of its own role (o_out as some
 * o[i], m_out as some m[i], l_out as some l[i]: same data pointer, shape and strides); the
 * result is the same as out of place. Any other overlap is RA_ERR_ALIAS.
 *
 * Errors: n == 0 or NULL arrays/elements (RA_ERR_INVALID_ARGUMENT; the m array only when
 * n != 1), shapes or dtypes that differ, RA_ERR_ALIAS when an output overlaps an input (other
 * than as above), another output, or its own elements. Since 0.1.0; since 0.2.0 m may be
 * NULL when n == 1, and outputs may be in place (0.1.0 rejects these calls with
 * RA_ERR_INVALID_ARGUMENT and RA_ERR_ALIAS). */
RA_API ra_status ra_merge(size_t n, const ra_tensor *const *o, const ra_tensor *const *m,
                          const ra_tensor *const *l, ra_tensor *o_out, ra_tensor *m_out,
                          ra_tensor *l_out);

/* ---- Cost estimate -----------------------------------------------------------------------
 *
 * The seed's get_mha_cost_estimate, for q [B,1,H,D] and k, v [B,S,Hkv,D]:
 *     flops = B*H*S*(4D + S), transcendentals = B*H*S,
 *     bytes_accessed = the element bytes of q, k, v and lengths together.
 * Any output pointer may be NULL. RA_ERR_OVERFLOW if a figure does not fit in int64_t.
 * Since 0.1.0. */
RA_API ra_status ra_mha_cost_estimate(const ra_tensor *q, const ra_tensor *k, const ra_tensor *v,
                                      const ra_tensor *lengths, int64_t *flops,
                                      int64_t *transcendentals, int64_t *bytes_accessed);

/* ---- Function table for dlopen users -----------------------------------------------------
 *
 * dlsym one symbol, ra_get_api, and call through the table. The struct only ever grows at the
 * end; check struct_size before using a member added after version 1. */
#define RA_API_VERSION 3

typedef struct ra_api {
    uint32_t struct_size; /* sizeof(ra_api) of the loaded library */
    uint32_t abi_version; /* RA_API_VERSION it was asked for */
    uint32_t (*version_number)(void);
    const char *(*version_string)(void);
    const char *(*status_string)(ra_status);
    const char *(*last_error)(void);
    ra_status (*tensor_wrap)(ra_tensor **, ra_dtype, int, const int64_t *, const int64_t *, void *);
    ra_status (*tensor_create)(ra_tensor **, ra_dtype, int, const int64_t *);
    void (*tensor_destroy)(ra_tensor *);
    void *(*tensor_data)(const ra_tensor *);
    ra_dtype (*tensor_dtype)(const ra_tensor *);
    int (*tensor_rank)(const ra_tensor *);
    int64_t (*tensor_dim)(const ra_tensor *, int);
    int64_t (*tensor_stride)(const ra_tensor *, int);
    ra_status (*options_create)(ra_options **);
    void (*options_destroy)(ra_options *);
    ra_status (*options_set_block_size)(ra_options *, int64_t);
    ra_status (*options_set_scale)(ra_options *, float);
    ra_status (*options_set_mask_value)(ra_options *, float);
    ra_status (*options_set_num_threads)(ra_options *, int);
    ra_status (*options_set_kernel)(ra_options *, ra_kernel);
    ra_status (*options_set_split_tokens)(ra_options *, int64_t);
    ra_kernel (*kernel_resolve)(const ra_options *);
    const char *(*kernel_name)(ra_kernel);
    ra_status (*ragged_mqa)(const ra_options *, const ra_tensor *, const ra_tensor *,
                            const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                            ra_tensor *);
    ra_status (*ragged_mha)(const ra_options *, const ra_tensor *, const ra_tensor *,
                            const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                            ra_tensor *);
    ra_status (*ragged_gqa)(const ra_options *, const ra_tensor *, const ra_tensor *,
                            const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                            ra_tensor *);
    ra_status (*reference_mqa)(const ra_options *, const ra_tensor *, const ra_tensor *,
                               const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                               ra_tensor *);
    ra_status (*reference_mha)(const ra_options *, const ra_tensor *, const ra_tensor *,
                               const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                               ra_tensor *);
    ra_status (*reference_gqa)(const ra_options *, const ra_tensor *, const ra_tensor *,
                               const ra_tensor *, const ra_tensor *, ra_tensor *, ra_tensor *,
                               ra_tensor *);
    ra_status (*merge)(size_t, const ra_tensor *const *, const ra_tensor *const *,
                       const ra_tensor *const *, ra_tensor *, ra_tensor *, ra_tensor *);
    ra_status (*mha_cost_estimate)(const ra_tensor *, const ra_tensor *, const ra_tensor *,
                                   const ra_tensor *, int64_t *, int64_t *, int64_t *);
    /* Table version 2 (0.2.0): */
    ra_status (*paged_gqa)(const ra_options *, const ra_tensor *, const ra_tensor *,
                           const ra_tensor *, const ra_tensor *, const ra_tensor *, ra_tensor *,
                           ra_tensor *, ra_tensor *);
    ra_status (*options_set_softcap)(ra_options *, float);
    ra_status (*options_set_window)(ra_options *, int64_t, int64_t);
    ra_status (*options_set_sinks)(ra_options *, const ra_tensor *);
    ra_status (*options_set_alibi)(ra_options *, const ra_tensor *);
    ra_status (*tensor_wrap_quantized)(ra_tensor **, ra_dtype, int, const int64_t *,
                                       const int64_t *, void *, const ra_tensor *);
    ra_status (*quantize)(const ra_tensor *, ra_tensor *, ra_tensor *);
    /* Table version 3 (0.3.0): */
    ra_status (*ragged_gqa_multi)(const ra_options *, const ra_tensor *, const ra_tensor *,
                                  const ra_tensor *, const ra_tensor *, const ra_tensor *,
                                  ra_tensor *, ra_tensor *, ra_tensor *);
    ra_status (*paged_gqa_multi)(const ra_options *, const ra_tensor *, const ra_tensor *,
                                 const ra_tensor *, const ra_tensor *, const ra_tensor *,
                                 const ra_tensor *, ra_tensor *, ra_tensor *, ra_tensor *);
    /* New members are appended here, never inserted. */
} ra_api;

/* The table for abi_version (1 .. RA_API_VERSION of the loaded library); NULL for a version it
 * does not know. The table is static and lives as long as the library is loaded. Since 0.1.0. */
RA_API const ra_api *ra_get_api(uint32_t abi_version);

#ifdef __cplusplus
}
#endif

#endif /* RAGGEDATTN_H */
