/* The attention operation: one of the six functions on fuzz-built tensors and options (with
 * score modifiers when the input ends in a modifier trailer). Checks the status against the
 * harness's own reading of the rules, that nothing is written on failure (and nothing outside
 * the outputs on success), the values against the oracle, and that a rerun with another thread
 * count gives the same bits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz_attn.h"

/* The scales of quantized K and V, after the call's tensors. */
enum { A_KS = A_N, A_VS, A_ALL };

/* The header and docs/design.md ("Validation and errors"), applied to the tensors as built. */
static fz_expect expect_attention(const fz_attn *a)
{
    const fz_fn *f = a->fn;
    const fz_tensor *t = a->c.t;
    fz_expect e = {0, 0};
    for (int r = A_Q; r <= A_O; r++)
        if (!t[r].present)
            e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
    for (int r = 0; r < A_N; r++) {
        if (!t[r].present || r == A_K || r == A_V)
            continue;
        bool ok = r == A_Q     ? fz_dtype_is_float(t[r].dt)
                  : r == A_LEN ? t[r].dt == RA_DTYPE_I32
                               : t[r].dt == RA_DTYPE_F32;
        if (!ok)
            e.must |= FZ_BIT(RA_ERR_DTYPE);
    }
    fz_quant_expect_kv(&t[A_K], f->ragged, &e);
    fz_quant_expect_kv(&t[A_V], f->ragged, &e);
    /* Dims as q and k state them; every tensor must then have exactly its expected shape. */
    const fz_tensor *q = &t[A_Q], *k = &t[A_K];
    bool dims_known = q->present && k->present && q->rank == f->q_rank &&
                      k->rank == (f->kv == 0 ? 3 : 4);
    if (!dims_known) {
        e.must |= FZ_BIT(RA_ERR_SHAPE);
    } else {
        int64_t B = q->shape[0], Hq = q->shape[q->rank - 2], D = q->shape[q->rank - 1];
        int64_t S = f->kv == 2 ? k->shape[2] : k->shape[1];
        int64_t Hkv = f->kv == 0 ? 1 : f->kv == 1 ? k->shape[2] : k->shape[1];
        if (f->heads == 1 && Hkv != Hq)
            e.must |= FZ_BIT(RA_ERR_SHAPE);
        if (Hkv == 0 && Hq == 0)
            e.may |= FZ_BIT(RA_ERR_SHAPE); /* 0 % 0: the spec does not say */
        else if (Hkv == 0 || Hq % Hkv != 0)
            e.must |= FZ_BIT(RA_ERR_SHAPE);
        if (D == 0)
            e.must |= FZ_BIT(RA_ERR_SHAPE);
        /* per-head modifier tensors of another length than Hq */
        if ((a->mods->n_sinks && a->mods->n_sinks != Hq) ||
            (a->mods->n_alibi && a->mods->n_alibi != Hq))
            e.must |= FZ_BIT(RA_ERR_SHAPE);
        for (int r = 0; r < A_N; r++) {
            if (!t[r].present)
                continue;
            fz_tensor want = t[r];
            fz_attn_shape(f, r, B, Hq, Hkv, S, D, &want);
            bool same = want.rank == t[r].rank;
            for (int i = 0; same && i < want.rank; i++)
                same = want.shape[i] == t[r].shape[i];
            if (!same)
                e.must |= FZ_BIT(RA_ERR_SHAPE);
        }
        /* Lengths are checked once the structure is right; with other errors a library may
         * report the lengths first, so they are allowed then too. */
        const fz_tensor *len = &t[A_LEN];
        if (len->present && len->dt == RA_DTYPE_I32 && len->rank == 1) {
            bool bad = false;
            for (int64_t b = 0; b < len->shape[0]; b++) {
                int64_t idx[4] = {b, 0, 0, 0};
                int32_t n = fz_get_i32(&a->c, len, idx);
                bad |= n < 0 || n > S;
            }
            if (bad && e.must == 0 && len->shape[0] == B)
                e.must |= FZ_BIT(RA_ERR_LENGTH);
            else if (bad)
                e.may |= FZ_BIT(RA_ERR_LENGTH);
        }
    }
    /* Outputs may not overlap themselves, each other or any input (scales included). */
    for (int r = A_O; r <= A_L; r++) {
        if (!t[r].present)
            continue;
        if (fz_self_overlaps(&t[r]))
            e.must |= FZ_BIT(RA_ERR_ALIAS);
        else if (!fz_layout_nested(&t[r]))
            e.may |= FZ_BIT(RA_ERR_ALIAS);
        for (int x = 0; x < A_ALL; x++) {
            if (x == r || (x >= A_O && x <= A_L && x > r))
                continue;
            bool bytes, spans;
            fz_overlap(&a->c, &t[r], &t[x], &bytes, &spans);
            if (bytes)
                e.must |= FZ_BIT(RA_ERR_ALIAS);
            else if (spans) /* interleaved without a shared byte: "overlap" is not defined */
                e.may |= FZ_BIT(RA_ERR_ALIAS);
        }
    }
    /* The reference functions compute the seed's arithmetic only. */
    if (!f->ragged && fz_mods_active(a->mods))
        e.must |= FZ_BIT(RA_ERR_UNSUPPORTED);
    return e;
}

double fz_attn_value(fz_rng *r, int cls)
{
    uint64_t x = fz_rng_next(r);
    double u = (double)((int64_t)(x % 257) - 128);
    switch (cls) {
    case 4:
        return u / 16;
    case 5:
        return u * 0x1p-140; /* f32 subnormals */
    case 6:
        return u * 0x1p43; /* logits up to ~1e30 */
    case 7:
        return ldexp(u / 128, (int)((x >> 12) % 41) - 20);
    default:
        return u / 64;
    }
}

static const double special_values[] = {NAN, INFINITY, -INFINITY, 1e30, -1e30, 1e-41, -0.0,
                                        131008.0};

double fz_attn_special(uint8_t x)
{
    return special_values[x % (sizeof special_values / sizeof special_values[0])];
}

unsigned char **fz_bufs_copy(const fz_case *c)
{
    unsigned char **bufs = calloc(FZ_MAX_TENSORS, sizeof *bufs);
    FZ_CHECK(bufs != NULL, "harness out of memory");
    for (int i = 0; i < c->n; i++)
        if (c->buf[i]) {
            bufs[i] = malloc(c->buf_n[i]);
            FZ_CHECK(bufs[i] != NULL, "harness out of memory");
            memcpy(bufs[i], c->buf[i], c->buf_n[i]);
        }
    return bufs;
}

void fz_bufs_free(const fz_case *c, unsigned char **bufs)
{
    for (int i = 0; i < c->n; i++)
        free(bufs[i]);
    free(bufs);
}

void fz_bufs_check_same(const fz_case *c, unsigned char **first, const char *what, int threads1,
                        int threads2)
{
    for (int i = 0; i < c->n; i++)
        for (size_t j = 0; c->buf[i] && j < c->buf_n[i]; j++)
            FZ_CHECK(first[i][j] == c->buf[i][j], "%s: results differ between %d and %d "
                     "threads: buffer %d byte %zu: 0x%02x vs 0x%02x (float at byte %zu: "
                     "%a vs %a)", what, threads1, threads2, i, j, first[i][j], c->buf[i][j],
                     j & ~(size_t)3, (double)((float *)(void *)first[i])[j / 4],
                     (double)((float *)(void *)c->buf[i])[j / 4]);
}

void fz_attn_fill_inputs(fz_in *in, fz_in *qs, fz_attn *a)
{
    fz_case *c = &a->c;
    fz_tensor *len = &c->t[A_LEN];
    if (len->present && fz_numel(len) > 0) {
        int64_t idx[4] = {0, 0, 0, 0};
        for (idx[0] = 0; idx[0] < len->shape[0]; idx[0]++) {
            uint8_t x = fz_u8(in);
            int64_t S1 = a->S + 1;
            int64_t n = x < 200   ? x % S1
                        : x < 220 ? a->S
                        : x < 240 ? 0
                        : x == 240 ? -1
                        : x == 241 ? a->S + 1
                        : x == 242 ? INT32_MAX
                        : x == 243 ? INT32_MIN
                                   : x % S1;
            if (len->dt == RA_DTYPE_I32)
                fz_put_i32(c, len, idx, (int32_t)n);
            else
                fz_put(c, len, idx, (double)n);
        }
    }
    fz_rng rng = {fz_u64(in)};
    int cls[3] = {fz_u8(in) % 8, fz_u8(in) % 8, fz_u8(in) % 8};
    bool poison = a->fn->ragged && (fz_u8(in) & 1);
    const fz_fn *f = a->fn;
    bool *used[3] = {NULL, NULL, NULL}; /* K, V: which elements valid positions read */
    for (int pass = 0; pass < 2; pass++) { /* masked positions first, so valid ones win */
        for (int r = A_Q; r <= A_V; r++) {
            fz_tensor *t = &c->t[r];
            if (!t->present || fz_numel(t) == 0)
                continue;
            bool structured = r != A_Q && t->rank == (f->kv == 0 ? 3 : 4) &&
                              len->present && len->dt == RA_DTYPE_I32 && len->rank == 1;
            if (structured && t->quant && !used[r]) {
                used[r] = calloc((size_t)fz_numel(t), sizeof *used[r]);
                FZ_CHECK(used[r] != NULL, "harness out of memory");
            }
            int64_t idx[4] = {0, 0, 0, 0};
            for (int64_t e = 0, n = fz_numel(t); e < n; e++) {
                for (int64_t rem = e, i = t->rank - 1; i >= 0; i--)
                    idx[i] = rem % t->shape[i], rem /= t->shape[i];
                bool masked = false;
                if (structured) {
                    int64_t b = idx[0], tpos = f->kv == 2 ? idx[2] : idx[1];
                    int64_t lidx[4] = {b, 0, 0, 0};
                    const int32_t n = b < len->shape[0] ? fz_get_i32(c, len, lidx) : 0;
                    masked = b >= len->shape[0] || tpos >= n || !fz_visible(a->mods, n, tpos);
                }
                if (masked != (pass == 0))
                    continue;
                if (used[r])
                    used[r][e] = !masked;
                double x = fz_dtype_is_quant(t->dt) ? fz_quant_code(&rng, t->dt, cls[r])
                                                    : fz_attn_value(&rng, cls[r]);
                if (masked && poison)
                    x = (fz_rng_next(&rng) & 1) ? NAN : 3e38;
                fz_put(c, t, idx, x);
            }
        }
    }
    for (int r = A_K; r <= A_V; r++) {
        fz_quant_fill_scale(qs, c, r, used[r], poison);
        free(used[r]);
    }
    uint8_t ns = fz_u8(in);
    for (int i = 0; ns >= 200 && i < 1 + (ns - 200) % 4; i++) {
        fz_tensor *t = &c->t[A_Q + fz_u8(in) % 3];
        uint32_t at = fz_u32(in);
        double x = fz_attn_special(fz_u8(in));
        int64_t n = t->present ? fz_numel(t) : 0;
        if (n == 0)
            continue;
        int64_t idx[4] = {0, 0, 0, 0};
        for (int64_t rem = (int64_t)(at % (uint64_t)n), d = t->rank - 1; d >= 0; d--)
            idx[d] = rem % t->shape[d], rem /= t->shape[d];
        fz_put(c, t, idx, x);
    }
}

static const int64_t tab_b[] = {1, 1, 2, 2, 3, 1, 2, 0};
static const int64_t tab_h[] = {1, 2, 1, 4, 3, 2, 1, 8, 0};
static const int64_t tab_g[] = {1, 2, 4, 1, 3, 2, 1, 8};
static const int64_t tab_d[] = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100,
                                128, 129, 8, 16, 0};
static const int64_t tab_s[] = {0, 1, 2, 3, 5, 8, 16, 31, 32, 33, 40, 63, 64, 65, 100, 127, 128,
                                129, 200, 255, 256, 257, 300, 7, 17};
static const ra_dtype tab_dt[] = {RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16};

void fz_op_attention(fz_in *in, fz_in *mods, fz_in *quant)
{
    fz_attn a;
    memset(&a, 0, sizeof a);
    a.fn = &fz_fns[fz_u8(in) % 6];
    const fz_fn *f = a.fn;
    a.B = FZ_PICK(in, tab_b);
    a.Hkv = f->heads == 0 ? 1 : FZ_PICK(in, tab_h);
    a.Hq = f->heads == 2 ? a.Hkv * FZ_PICK(in, tab_g) : f->heads == 1 ? a.Hkv : FZ_PICK(in, tab_h);
    a.D = FZ_PICK(in, tab_d);
    a.S = FZ_PICK(in, tab_s);
    /* Keeps one input well under a second with ASan and the double-precision oracle. */
    while (a.B * a.Hq * a.S * a.D > 60000)
        a.S /= 2;

    fz_opts eo;
    ra_options *opts = fz_build_options(in, &eo);
    fz_build_modifiers(mods, &opts, &eo, a.Hq);
    a.scale = eo.scale;
    a.mask = eo.mask;
    a.mods = &eo.mods;

    fz_case *c = &a.c;
    c->n = A_ALL;
    for (int r = 0; r < A_N; r++) {
        fz_tensor *t = &c->t[r];
        t->dt = r <= A_V ? tab_dt[fz_u8(in) % 4] : r == A_LEN ? RA_DTYPE_I32 : RA_DTYPE_F32;
        fz_attn_shape(f, r, a.B, a.Hq, a.Hkv, a.S, a.D, t);
        t->host = r;
        fz_mutate(in, t, r == A_M || r == A_L);
        fz_choose_layout(in, t, r < A_O);
        t->null_data = fz_u8(in) & 1; /* honoured only for empty tensors */
    }
    /* Deliberate sharing of memory: an input inside another input's buffer (allowed), or an
     * output inside another tensor's buffer (an error when they overlap). */
    uint8_t share = fz_u8(in);
    if (share >= 224) {
        int x = share >= 240 ? A_O + fz_u8(in) % 3 : A_Q + fz_u8(in) % 3;
        int y = fz_u8(in) % A_N;
        if (x != y && c->t[x].present && c->t[y].present && c->t[y].host == y) {
            c->t[x].host = y;
            c->t[x].off = 4 * (size_t)(fz_u8(in) % 16);
        }
    }
    static const int outs[] = {A_O, A_M, A_L}, scales[] = {A_KS, A_VS};
    for (int r = A_K; r <= A_V; r++)
        if (fz_quant_pick_dtype(quant, &c->t[r]))
            fz_quant_build_scale(quant, c, r, r == A_K ? A_KS : A_VS);
    fz_quant_share(quant, c, outs, 3, scales, 2);
    fz_case_materialize(c);
    fz_attn_fill_inputs(in, quant, &a);

    if (getenv("FZ_DEBUG")) { /* a readable description of the case, for bug reports */
        fprintf(stderr, "%s B=%lld Hq=%lld Hkv=%lld S=%lld D=%lld opts=%s block=%lld "
                "split=%lld threads=%d kernel=%d scale=%g mask=%g\n", f->name, (long long)a.B,
                (long long)a.Hq, (long long)a.Hkv, (long long)a.S, (long long)a.D,
                opts ? "set" : "NULL", (long long)eo.block_size, (long long)eo.split_tokens,
                eo.num_threads, (int)eo.kernel, (double)eo.scale, (double)eo.mask);
        fz_mods_describe(&eo.mods);
        static const char *const names[] = {"q", "k", "v", "lengths", "o", "m", "l", "k scale",
                                            "v scale"};
        for (int r = 0; r < A_ALL; r++) {
            const fz_tensor *t = &c->t[r];
            if (!t->present) {
                fprintf(stderr, "  %s NULL\n", names[r]);
                continue;
            }
            fprintf(stderr, "  %s dt=%d shape=[", names[r], (int)t->dt);
            for (int i = 0; i < t->rank; i++)
                fprintf(stderr, i ? ",%lld" : "%lld", (long long)t->shape[i]);
            fprintf(stderr, "] strides=%s[", t->null_strides ? "NULL " : "");
            for (int i = 0; i < t->rank; i++)
                fprintf(stderr, i ? ",%lld" : "%lld", (long long)t->st[i]);
            fprintf(stderr, "] host=%d off=%zu%s\n", t->host, t->off,
                    t->quant ? " quantized" : "");
        }
        const fz_tensor *len = &c->t[A_LEN];
        if (len->present && len->dt == RA_DTYPE_I32)
            for (int64_t b = 0; b < fz_numel(len) && len->rank == 1; b++) {
                int64_t idx[4] = {b, 0, 0, 0};
                fprintf(stderr, "  lengths[%lld] = %d\n", (long long)b, fz_get_i32(c, len, idx));
            }
        for (int r = A_Q; r <= A_V; r++) {
            const fz_tensor *t = &c->t[r];
            int64_t idx[4] = {0, 0, 0, 0};
            for (int64_t e = 0, n = t->present ? fz_numel(t) : 0; e < n; e++) {
                for (int64_t rem = e, i = t->rank - 1; i >= 0; i--)
                    idx[i] = rem % t->shape[i], rem /= t->shape[i];
                double x = fz_get(c, t, idx);
                if (!isfinite(x) || fabs(x) > 1e20)
                    fprintf(stderr, "  %s[%lld,%lld,%lld,%lld] = %g\n", names[r],
                            (long long)idx[0], (long long)idx[1], (long long)idx[2],
                            (long long)idx[3], x);
            }
        }
    }
    fz_expect e = expect_attention(&a);
    const ra_tensor *h[A_N];
    for (int r = 0; r < A_N; r++)
        h[r] = c->t[r].present ? c->t[r].h : NULL;
    fz_snapshot(c);
    fz_mark_last_error();
    ra_status s = f->call(opts, h[A_Q], h[A_K], h[A_V], h[A_LEN], (ra_tensor *)h[A_O],
                          (ra_tensor *)h[A_M], (ra_tensor *)h[A_L]);
    fz_check_status(&e, s, f->name);
    if (s != RA_OK) {
        fz_check_new_error(f->name);
        fz_check_untouched(c, NULL, 0, f->name);
    } else {
        fz_check_untouched(c, outs, 3, f->name);
        fz_attn_check_values(&a);

        /* Bitwise the same with another thread count. */
        unsigned char **first = fz_bufs_copy(c);
        fz_restore(c);
        ra_options *o2 = fz_rerun_options(&eo, eo.num_threads == 1 ? 3 : 1);
        s = f->call(o2, h[A_Q], h[A_K], h[A_V], h[A_LEN], (ra_tensor *)h[A_O],
                    (ra_tensor *)h[A_M], (ra_tensor *)h[A_L]);
        FZ_CHECK(s == RA_OK, "%s: rerun with another thread count returned %d", f->name, (int)s);
        fz_bufs_check_same(c, first, f->name, eo.num_threads, eo.num_threads == 1 ? 3 : 1);
        fz_bufs_free(c, first);
        ra_options_destroy(o2);
    }
    ra_options_destroy(opts);
    fz_case_free(c);
}
