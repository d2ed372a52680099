/* The fuzz harness: shared pieces. The harness builds tensors, options and calls from the fuzz
 * bytes, decides on its own (from the header and docs/design.md, "Validation and errors")
 * whether each call is valid, and checks the library's answer against a double-precision
 * oracle written here. It uses the public API only and shares no code with the library or with
 * tests/common. */
#ifndef RA_FZ_H
#define RA_FZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raggedattn.h"

/* ---- failures --------------------------------------------------------------------------- */

/* Prints the message and aborts, so that libFuzzer records the input as a crash and the
 * corpus replay test fails. */
void fz_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define FZ_CHECK(cond, ...)                                                                  \
    do {                                                                                     \
        if (!(cond))                                                                         \
            fz_fail(__FILE__, __LINE__, __VA_ARGS__);                                        \
    } while (0)

/* ---- the fuzz bytes --------------------------------------------------------------------- */

/* Reads past the end give zeros, so every input decodes to some case. */
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

uint8_t fz_u8(fz_in *in);
uint16_t fz_u16(fz_in *in);
uint32_t fz_u32(fz_in *in);
uint64_t fz_u64(fz_in *in);
/* An element of table[0..n-1] chosen by one byte. */
int64_t fz_pick(fz_in *in, const int64_t *table, size_t n);
#define FZ_PICK(in, table) fz_pick((in), (table), sizeof(table) / sizeof((table)[0]))

/* splitmix64, seeded from the fuzz bytes, for bulk tensor data. */
typedef struct fz_rng {
    uint64_t s;
} fz_rng;
uint64_t fz_rng_next(fz_rng *r);

/* ---- dtypes ----------------------------------------------------------------------------- */

size_t fz_dtype_size(ra_dtype dt); /* 0 for an unknown dtype */
bool fz_dtype_is_float(ra_dtype dt);
bool fz_dtype_is_quant(ra_dtype dt); /* i8, fp8 e4m3, fp8 e5m2 */
/* The largest code of a quantized dtype: 127, 448, 57344. */
double fz_quant_max(ra_dtype dt);
/* The value of a quantized dtype's code (NaN for fp8 NaN codes, +-inf for e5m2's). */
double fz_code_value(ra_dtype dt, uint8_t code);
/* The code nearest to x (ties to even), saturated to +-qmax; NaN gives a NaN code (0 for i8),
 * and e5m2 keeps infinities. */
uint8_t fz_code_of(ra_dtype dt, double x);
uint16_t fz_f32_to_f16(float x);
float fz_f16_to_f32(uint16_t h);
uint16_t fz_f32_to_bf16(float x);
float fz_bf16_to_f32(uint16_t h);
/* x rounded to dt's precision (f32, f16, bf16), as a double. */
double fz_round_to(ra_dtype dt, double x);
/* Unit roundoff of a float dtype: 2^-24, 2^-11, 2^-8. */
double fz_dtype_eps(ra_dtype dt);

/* ---- test tensors ----------------------------------------------------------------------- */

#define FZ_MAX_TENSORS 24

/* A tensor of the case: its description, where its memory is, and its handle. Memory lives
 * in buffers (one per tensor that owns one); a view may sit in another tensor's buffer to
 * create overlaps on purpose. */
typedef struct fz_tensor {
    bool present; /* false: the call gets NULL */
    ra_dtype dt;
    int rank;
    int64_t shape[4];
    int64_t st[4];     /* element strides, always explicit here */
    bool null_strides; /* pass NULL strides (st is row-major then) */
    int host;          /* index of the tensor whose buffer holds the data; itself if it owns one */
    size_t off;        /* byte offset of the data in the host buffer */
    bool null_data;    /* pass data = NULL (only meaningful for empty tensors) */
    /* Wrap with ra_tensor_wrap_quantized and tensor `scale` of the case. Cleared when that wrap
     * fails as expected (the tensor is then wrapped plainly, without a scale). */
    bool quant;
    int scale;
    ra_tensor *h;
} fz_tensor;

typedef struct fz_case {
    int n;
    fz_tensor t[FZ_MAX_TENSORS];
    unsigned char *buf[FZ_MAX_TENSORS];  /* owned buffers, indexed by owner */
    size_t buf_n[FZ_MAX_TENSORS];
    unsigned char *snap[FZ_MAX_TENSORS]; /* copies taken just before the call */
} fz_case;

int64_t fz_numel(const fz_tensor *t);
/* Bytes from the data pointer to the end of the furthest element; 0 when empty. */
size_t fz_extent(const fz_tensor *t);
int64_t fz_offset(const fz_tensor *t, const int64_t *idx); /* in elements */
/* Row-major successor of idx over t's shape; false (idx back at 0) after the last element. */
bool fz_next_index(const fz_tensor *t, int64_t *idx);
void fz_set_shape(fz_tensor *t, ra_dtype dt, int rank, int64_t d0, int64_t d1, int64_t d2,
                  int64_t d3);
void fz_row_major(fz_tensor *t, int64_t pad);
/* Chooses a memory layout from the fuzz bytes: contiguous, padded, permuted, or (inputs only)
 * broadcast and small arbitrary strides that may overlap. */
void fz_choose_layout(fz_in *in, fz_tensor *t, bool input);
/* Now and then makes a tensor invalid: NULL, another dtype, a changed dim, rank or axis
 * order. `optional` tensors (m, l) are also often left out, which is valid. */
void fz_mutate(fz_in *in, fz_tensor *t, bool optional);

/* Allocates exact-size buffers (so that ASan sees any read past a view), fills them with
 * 0xFF (NaN for every float and fp8 dtype, -1 for i32 and i8), and wraps every present tensor.
 * The plain wraps must succeed: the case builders only describe tensors the header allows. A
 * quantized wrap's status is checked against the header (fz_quant_expect_wrap). */
void fz_case_materialize(fz_case *c);
void fz_case_free(fz_case *c);
unsigned char *fz_data(const fz_case *c, const fz_tensor *t);

/* The element's value; code * scale for a quantized tensor. */
double fz_get(const fz_case *c, const fz_tensor *t, const int64_t *idx);
/* The element as stored: the code's own value for a quantized dtype. */
double fz_get_code(const fz_case *c, const fz_tensor *t, const int64_t *idx);
/* The scale of a quantized tensor's element (1 without a scale). */
double fz_get_scale(const fz_case *c, const fz_tensor *t, const int64_t *idx);
/* The element as fz_snapshot saw it: the inputs of a call that may write in place. */
double fz_get_before(const fz_case *c, const fz_tensor *t, const int64_t *idx);
/* Stores x in t's dtype; for a quantized dtype x is a code value (fz_code_of). */
void fz_put(fz_case *c, const fz_tensor *t, const int64_t *idx, double x);
void fz_put_i32(fz_case *c, const fz_tensor *t, const int64_t *idx, int32_t x);
int32_t fz_get_i32(const fz_case *c, const fz_tensor *t, const int64_t *idx);

/* Copies every buffer; fz_check_untouched then verifies that no byte changed, except bytes of
 * the elements of the tensors listed in `writable` (when the call succeeded). */
void fz_snapshot(fz_case *c);
void fz_check_untouched(const fz_case *c, const int *writable, int n_writable, const char *what);
/* Restores the snapshot (to rerun a call on the same outputs). */
void fz_restore(fz_case *c);

/* Overlap, decided by enumerating elements: exact byte overlap, and overlap of the byte spans
 * [first byte, last byte]. */
bool fz_self_overlaps(const fz_tensor *t);
/* True when the axes, sorted by stride, each step past everything the smaller ones reach: the
 * usual proof that a layout has no overlap. Layouts that pass fz_self_overlaps but not this one
 * (e.g. shape [3,2], strides [2,3]) are valid, but a library may reject them conservatively. */
bool fz_layout_nested(const fz_tensor *t);
void fz_overlap(const fz_case *c, const fz_tensor *a, const fz_tensor *b, bool *bytes,
                bool *spans);

/* ---- expectations ----------------------------------------------------------------------- */

/* Which statuses a call may return: `must` are errors that certainly apply (any one of them
 * may be reported); `may` are codes the spec leaves open (a conservative overlap test, 0 % 0).
 * The call must succeed when `must` is empty and may fail only with a code in must | may. */
typedef struct fz_expect {
    uint32_t must, may;
} fz_expect;

#define FZ_BIT(s) (1u << (unsigned)(s))
void fz_check_status(const fz_expect *e, ra_status got, const char *what);
/* Sets a known message, so that a failing call can be checked to set its own. */
void fz_mark_last_error(void);
void fz_check_new_error(const char *what);

/* ---- this CPU --------------------------------------------------------------------------- */

bool fz_kernel_runs(ra_kernel k);
ra_kernel fz_kernel_auto(void);

/* ---- options ---------------------------------------------------------------------------- */

/* Per-head modifier tensors hold at most this many values (Hq is at most 64 here). */
enum { FZ_MAX_HEADS = 80 };

/* The score modifiers (ra_options_set_softcap, _window, _sinks, _alibi) as the options hold
 * them after the setters that succeeded: 0 (softcap, window) and 0 entries mean off. */
typedef struct fz_mods {
    float softcap;
    int64_t window, sink_positions;
    int64_t n_sinks, n_alibi; /* the length the setter took; a call needs it to equal Hq */
    float sinks[FZ_MAX_HEADS], alibi[FZ_MAX_HEADS];
} fz_mods;

/* Some modifier is on: the reference functions must refuse the call (RA_ERR_UNSUPPORTED). */
bool fz_mods_active(const fz_mods *m);
/* Position t of a sequence of length len counts under m's window (true without one). */
bool fz_visible(const fz_mods *m, int64_t len, int64_t t);
/* One line naming m's settings, for FZ_DEBUG case descriptions. */
void fz_mods_describe(const fz_mods *m);

/* The settings a call runs with, as far as the harness knows them (defaults from the header). */
typedef struct fz_opts {
    int64_t block_size, split_tokens;
    float scale, mask;
    int num_threads;
    ra_kernel kernel;
    fz_mods mods;
} fz_opts;

/* NULL (the defaults) or options set from the fuzz bytes; every setter's status is checked
 * against the header's rules and *e tracks the accepted values. */
ra_options *fz_build_options(fz_in *in, fz_opts *e);
/* The modifier bytes of an input: a trailer [bytes][n][0x6D][0xD6] at its end, which
 * fz_split_mods cuts off *in (so the operation reads what precedes it) and returns as its own
 * stream; {NULL, 0} when the input has no trailer, as no input made before the modifiers has. */
fz_in fz_split_mods(fz_in *in);
/* Cuts a trailer [bytes][n][m0][m1] off the end of *in and returns its bytes; {NULL, 0} when
 * *in does not end in m0 m1. */
fz_in fz_split_trailer(fz_in *in, uint8_t m0, uint8_t m1);
/* With a trailer (mods->p set): creates *o if it is NULL, then makes the setter calls the
 * trailer describes (any modifier, valid or not, repeated or cleared) and checks each status;
 * e->mods tracks what the options hold. Hq: the call's query heads, to size the tensors.
 * Without a trailer it does nothing. */
void fz_build_modifiers(fz_in *mods, ra_options **o, fz_opts *e, int64_t Hq);
/* The accepted settings of e (modifiers included) with another thread count. */
ra_options *fz_rerun_options(const fz_opts *e, int threads);

/* ---- quantized K/V (fz_quant.c) --------------------------------------------------------- */

/* The quantization bytes of an input: a trailer [bytes][n][0x51][0xA8] just before the
 * modifier trailer (or at the end without one); {NULL, 0} when the input has none, as no input
 * made before quantized K/V has. */
fz_in fz_split_quant(fz_in *in);
/* With quantization bytes: now and then gives tensor t a quantized dtype (the K or V of an
 * attention call). Returns whether it did. */
bool fz_quant_pick_dtype(fz_in *qs, fz_tensor *t);
/* For a data tensor with a quantized dtype: describes its scale as tensor `scale` of c (a
 * valid broadcast, or now and then a wrong shape, rank or dtype, or no scale at all) with a
 * fuzz-chosen layout, and marks the data for ra_tensor_wrap_quantized. */
void fz_quant_build_scale(fz_in *qs, fz_case *c, int data, int scale);
/* Now and then moves one of the outputs out[0..n-1] into a scale's buffer (ALIAS when they
 * overlap). */
void fz_quant_share(fz_in *qs, fz_case *c, const int *outs, int n, const int *scales, int ns);
/* The status ra_tensor_wrap_quantized must return for data t and its scale. */
fz_expect fz_quant_expect_wrap(const fz_tensor *t, const fz_tensor *scale);
/* The dtype rule for K or V of an attention call: float, or quantized with a scale where the
 * function takes it (`takes_quant`: ragged and paged functions). */
void fz_quant_expect_kv(const fz_tensor *kv, bool takes_quant, fz_expect *e);
/* A random finite code value of a quantized dtype, small or spread by cls. */
double fz_quant_code(fz_rng *r, ra_dtype dt, int cls);
/* Fills the scale of quantized tensor `data`: values from the quantization bytes (ordinary,
 * tiny, huge, negative, with NaN, infinities or 0 planted now and then); elements that no
 * valid position uses (used[data element] false) may get poison instead. used may be NULL
 * (every element counts). */
void fz_quant_fill_scale(fz_in *qs, fz_case *c, int data, const bool *used, bool poison);
/* The scale of data element idx: its index in sc (sidx; 0 along broadcast axes) and its
 * row-major position among sc's elements. */
int64_t fz_scale_index(const fz_tensor *sc, const int64_t *idx, int64_t sidx[4]);
/* True when a NaN at this element must show: a NaN code, or a NaN scale. */
bool fz_nan_at(const fz_case *c, const fz_tensor *t, const int64_t *idx);

/* ---- the operations, one per entry-point family ----------------------------------------- */

/* mods: the input's modifier trailer (fz_split_mods); quant: its quantization trailer. */
void fz_op_attention(fz_in *in, fz_in *mods, fz_in *quant);
void fz_op_paged(fz_in *in, fz_in *mods, fz_in *quant);
/* The multi-token bytes of an input: a trailer [bytes][n][0x54][0xC3] just before the
 * quantization trailer (or the modifier trailer, or the end); {NULL, 0} when the input has
 * none, as no input made before the multi-token calls has. */
fz_in fz_split_multi(fz_in *in);
/* ra_ragged_gqa_multi or ra_paged_gqa_multi; ms: the multi-token bytes. */
void fz_op_multi(fz_in *in, fz_in *ms, fz_in *mods, fz_in *quant);
/* ra_quantize on fuzz-built src, dst and scale. */
void fz_op_quantize(fz_in *in);
void fz_op_merge(fz_in *in);
void fz_op_cost(fz_in *in);
void fz_op_tensor(fz_in *in);
void fz_op_options(fz_in *in);

#endif
