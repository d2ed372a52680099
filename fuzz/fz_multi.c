/* The multi-token operation: ra_ragged_gqa_multi on a contiguous cache or ra_paged_gqa_multi on
 * pools and a page table, with T query rows per sequence and q_lens. An input selects it with a
 * trailer [bytes][n][0x54][0xC3] just before the quantization trailer (or the modifier trailer,
 * or the end); no input made before it ends in one once those are cut off. The trailer's bytes
 * choose the paged form, T, q_lens (its layout, mutations and values: valid, > T, > lengths,
 * negative), where q_lens or an output sits (over another tensor: ALIAS for an output), and
 * which extra checks run; the main bytes build the rest as the decode operations do (the
 * cache, lengths, page table, dtypes, strides, options; modifiers and quantized K/V from their
 * trailers). The status must follow the header; nothing may be written on failure; a success
 * must match the oracle row by row (each query over its causal prefix, padding rows exactly
 * empty), give ra_ragged_gqa's / ra_paged_gqa's bits when T = 1 (fz_multi_check.c), and the
 * same bits with 1 and 2 threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz_multi.h"

static const fz_fn ragged_multi_fn = {"ra_ragged_gqa_multi", NULL, 4, 1, 4, 4, 2, true, false};
static const fz_fn paged_multi_fn = {"ra_paged_gqa_multi", NULL, 4, 1, 4, 4, 2, true, false};

fz_in fz_split_multi(fz_in *in)
{
    return fz_split_trailer(in, 0x54, 0xC3);
}

static const int64_t tab_t[] = {1, 2, 3, 4, 1, 5, 8, 2, 7, 16, 17, 0, 1, 3};
static const int64_t tab_b[] = {1, 1, 2, 2, 3, 1, 2, 0};
static const int64_t tab_h[] = {1, 2, 1, 4, 3, 2, 1, 8, 0};
static const int64_t tab_g[] = {1, 2, 4, 1, 3, 2, 1, 8};
static const int64_t tab_d[] = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 48, 64, 65, 100,
                                128, 8, 16, 0};
static const int64_t tab_s[] = {0, 1, 2, 3, 5, 8, 16, 31, 32, 33, 40, 63, 64, 65, 100, 128, 129,
                                7, 17};
static const int64_t tab_ps[] = {1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 32, 33, 64, 1, 16, 0};
static const int64_t tab_mp[] = {0, 1, 2, 3, 4, 5, 8, 1, 2, 3};
static const ra_dtype tab_dt[] = {RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16};

static bool is_output(int r)
{
    return r == A_O || r == A_M || r == A_L;
}

static bool is_i32_vector(const fz_tensor *t)
{
    return t->present && t->dt == RA_DTYPE_I32 && t->rank == 1;
}

static int32_t get_b(const fz_case *c, const fz_tensor *t, int64_t b)
{
    const int64_t idx[4] = {b, 0, 0, 0};
    return fz_get_i32(c, t, idx);
}

/* The header's rules for the two multi-token functions, applied to the tensors as built. */
static fz_expect expect_multi(const fz_multi *mu)
{
    const fz_attn *a = &mu->pg.a;
    const fz_case *c = &a->c;
    const fz_tensor *t = c->t;
    const bool paged = mu->paged;
    fz_expect e = {0, 0};
    static const int required[] = {A_Q, A_K, A_V, A_LEN, A_O, M_QLEN, P_TABLE};
    for (int i = 0; i < 6 + paged; i++)
        if (!t[required[i]].present)
            e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
    for (int r = 0; r < M_ALL; r++) {
        if (!t[r].present || r == A_K || r == A_V || r == P_KS || r == P_VS ||
            (r == P_TABLE && !paged))
            continue;
        bool ok = r == A_Q ? fz_dtype_is_float(t[r].dt)
                  : r == A_LEN || r == P_TABLE || r == M_QLEN ? t[r].dt == RA_DTYPE_I32
                                                              : t[r].dt == RA_DTYPE_F32;
        if (!ok)
            e.must |= FZ_BIT(RA_ERR_DTYPE);
    }
    fz_quant_expect_kv(&t[A_K], true, &e);
    fz_quant_expect_kv(&t[A_V], true, &e);
    const fz_mods *md = a->mods;
    const bool one_row_only = md->window != 0 || md->n_alibi > 0; /* needs T = 1 */
    const fz_tensor *q = &t[A_Q], *k = &t[A_K], *tab = &t[P_TABLE], *len = &t[A_LEN];
    const fz_tensor *ql = &t[M_QLEN];
    const bool dims_known = q->present && k->present && q->rank == 4 && k->rank == 4 &&
                            (!paged || (tab->present && tab->rank == 2));
    if (!dims_known) {
        e.must |= FZ_BIT(RA_ERR_SHAPE);
        if (one_row_only)
            e.may |= FZ_BIT(RA_ERR_UNSUPPORTED);
    } else {
        const int64_t B = q->shape[0], T = q->shape[1], Hq = q->shape[2], D = q->shape[3];
        const int64_t Hkv = k->shape[2], PS = k->shape[1];
        const int64_t MP = paged ? tab->shape[1] : 0, S = paged ? MP * PS : k->shape[1];
        if (Hkv == 0 && Hq == 0)
            e.may |= FZ_BIT(RA_ERR_SHAPE); /* 0 % 0: the header does not say */
        else if (Hkv == 0 || Hq % Hkv != 0)
            e.must |= FZ_BIT(RA_ERR_SHAPE);
        if (D == 0 || (paged && PS == 0))
            e.must |= FZ_BIT(RA_ERR_SHAPE);
        if (T == 0) /* "T >= 1 new tokens" in the prose, no error listed for T = 0 */
            e.may |= FZ_BIT(RA_ERR_SHAPE);
        if ((md->n_sinks && md->n_sinks != Hq) || (md->n_alibi && md->n_alibi != Hq))
            e.must |= FZ_BIT(RA_ERR_SHAPE);
        const int64_t kv0 = paged ? k->shape[0] : B;
        const int64_t want[M_ALL][4] = {
            [A_Q] = {B, T, Hq, D},    [A_K] = {kv0, PS, Hkv, D}, [A_V] = {kv0, PS, Hkv, D},
            [A_LEN] = {B},            [A_O] = {B, T, Hq, D},     [A_M] = {B, T, Hq, 1},
            [A_L] = {B, T, Hq, 1},    [P_TABLE] = {B, MP},       [M_QLEN] = {B},
        };
        const int want_rank[M_ALL] = {4, 4, 4, 1, 4, 4, 4, 2, 0, 0, 1};
        for (int r = 0; r < M_ALL; r++) {
            if (!t[r].present || want_rank[r] == 0 || (r == P_TABLE && !paged))
                continue;
            bool same = t[r].rank == want_rank[r];
            for (int i = 0; same && i < want_rank[r]; i++)
                same = t[r].shape[i] == want[r][i];
            if (!same) {
                e.must |= FZ_BIT(RA_ERR_SHAPE);
                if (one_row_only && t[r].rank >= 2 && t[r].shape[1] > 1)
                    e.may |= FZ_BIT(RA_ERR_UNSUPPORTED); /* T as another tensor states it */
            }
        }
        if (one_row_only && T > 1)
            e.must |= FZ_BIT(RA_ERR_UNSUPPORTED);
        /* lengths, then q_lens, then the used page-table slots, once the structure is right;
         * with other errors a library may report them first, so they are allowed then too */
        if (is_i32_vector(len) && (!paged || PS > 0)) {
            const bool ql_ok = is_i32_vector(ql) && ql->shape[0] == B;
            const bool table_ok = paged && tab->dt == RA_DTYPE_I32 && tab->shape[0] == B;
            bool bad = false;
            for (int64_t b = 0; b < len->shape[0]; b++) {
                const int32_t n = get_b(c, len, b);
                if (n < 0 || n > S) {
                    bad = true;
                    continue;
                }
                if (ql_ok && b < B) {
                    const int32_t nq = get_b(c, ql, b);
                    bad |= nq < 0 || nq > T || nq > n;
                }
                for (int64_t i = 0; table_ok && b < B && i < fz_ceil_div(n, PS); i++) {
                    const int64_t tidx[4] = {b, i, 0, 0};
                    const int32_t page = fz_get_i32(c, tab, tidx);
                    bad |= page < 0 || page >= k->shape[0];
                }
            }
            if (bad && e.must == 0 && len->shape[0] == B)
                e.must |= FZ_BIT(RA_ERR_LENGTH);
            else if (bad)
                e.may |= FZ_BIT(RA_ERR_LENGTH);
        }
    }
    /* Outputs may not overlap themselves, each other or any input (q_lens, the page table and
     * the scales included). */
    for (int r = A_O; r <= A_L; r++) {
        if (!t[r].present)
            continue;
        if (fz_self_overlaps(&t[r]))
            e.must |= FZ_BIT(RA_ERR_ALIAS);
        else if (!fz_layout_nested(&t[r]))
            e.may |= FZ_BIT(RA_ERR_ALIAS);
        for (int x = 0; x < M_ALL; x++) {
            if (x == r || (is_output(x) && x > r) || (x == P_TABLE && !paged))
                continue;
            bool bytes, spans;
            fz_overlap(c, &t[r], &t[x], &bytes, &spans);
            if (bytes)
                e.must |= FZ_BIT(RA_ERR_ALIAS);
            else if (spans) /* interleaved without a shared byte: "overlap" is not defined */
                e.may |= FZ_BIT(RA_ERR_ALIAS);
        }
    }
    return e;
}

/* One q_lens value chosen by a byte: mostly valid for lengths[b] = n (when n is), sometimes
 * the edges or past them. */
static int32_t pick_q_len(uint8_t x, int64_t T, int64_t n)
{
    const int64_t top = n >= 0 && n < T ? n : T; /* min(T, n) */
    const int64_t any = top >= 0 ? x % (top + 1) : 0;
    const int64_t v = x < 150    ? any
                      : x < 200  ? top
                      : x < 215  ? 0
                      : x == 215 ? T + 1
                      : x == 216 ? n + 1
                      : x == 217 ? -1
                      : x == 218 ? INT32_MIN
                      : x == 219 ? INT32_MAX
                      : x == 220 ? T
                      : x == 221 ? n
                                 : any;
    return (int32_t)(v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : v);
}

/* Writes q_lens after every other input (a q_lens sharing their memory wins), each element
 * chosen against the length its sequence holds now. */
static void fill_q_lens(fz_in *ms, fz_multi *mu)
{
    fz_case *c = &mu->pg.a.c;
    const fz_tensor *ql = &c->t[M_QLEN], *len = &c->t[A_LEN];
    int64_t idx[4] = {0, 0, 0, 0};
    for (int64_t e = 0, n = ql->present ? fz_numel(ql) : 0; e < n; e++) {
        for (int64_t rem = e, i = ql->rank - 1; i >= 0; i--)
            idx[i] = rem % ql->shape[i], rem /= ql->shape[i];
        const int64_t b = idx[0];
        const int64_t nb = is_i32_vector(len) && b < len->shape[0] ? get_b(c, len, b) : 0;
        const int32_t x = pick_q_len(fz_u8(ms), mu->T, nb);
        if (ql->dt == RA_DTYPE_I32)
            fz_put_i32(c, ql, idx, x);
        else
            fz_put(c, ql, idx, (double)x);
    }
}

/* Shapes of q, o, m, l with T rows; lengths, q_lens, and the table of a paged cache. */
static void set_shapes(fz_multi *mu)
{
    fz_attn *a = &mu->pg.a;
    fz_tensor *t = a->c.t;
    fz_set_shape(&t[A_Q], t[A_Q].dt, 4, a->B, mu->T, a->Hq, a->D);
    fz_set_shape(&t[A_O], RA_DTYPE_F32, 4, a->B, mu->T, a->Hq, a->D);
    fz_set_shape(&t[A_M], RA_DTYPE_F32, 4, a->B, mu->T, a->Hq, 1);
    fz_set_shape(&t[A_L], RA_DTYPE_F32, 4, a->B, mu->T, a->Hq, 1);
    fz_set_shape(&t[A_LEN], RA_DTYPE_I32, 1, a->B, 1, 1, 1);
    fz_set_shape(&t[M_QLEN], RA_DTYPE_I32, 1, a->B, 1, 1, 1);
    if (mu->paged)
        fz_set_shape(&t[P_TABLE], RA_DTYPE_I32, 2, a->B, mu->pg.MP, 1, 1);
    else
        fz_set_shape(&t[A_K], t[A_K].dt, 4, a->B, a->S, a->Hkv, a->D);
    if (!mu->paged)
        fz_set_shape(&t[A_V], t[A_V].dt, 4, a->B, a->S, a->Hkv, a->D);
    for (int r = 0; r < M_ALL; r++)
        t[r].host = r;
}

/* A paged cache as the paged operation builds one: lengths first (their layout decides the
 * pool size), then pools of the pages the sequences need plus spares (or fewer, repeated). */
static void build_paged(fz_in *in, fz_in *quant, fz_multi *mu, int32_t *final)
{
    fz_paged *pg = &mu->pg;
    fz_case *c = &pg->a.c;
    const bool one_buffer = pg->layout == POOL_ONE_NHD || pg->layout == POOL_ONE_HND ||
                            pg->layout == POOL_SAME;
    const bool k_quant = fz_quant_pick_dtype(quant, &c->t[A_K]);
    if (one_buffer)
        c->t[A_V].dt = c->t[A_K].dt; /* one buffer holds one dtype */
    const bool v_quant = one_buffer ? k_quant : fz_quant_pick_dtype(quant, &c->t[A_V]);
    fz_tensor *len = &c->t[A_LEN];
    fz_mutate(in, len, false);
    fz_choose_layout(in, len, true);
    fz_final_lengths(len, mu->wrote, pg->a.B, final);
    int64_t needed = 0;
    for (int64_t b = 0; b < pg->a.B; b++)
        if (final[b] > 0 && final[b] <= pg->a.S && pg->PS > 0)
            needed += fz_ceil_div(final[b], pg->PS);
    const uint8_t spare = fz_u8(in);
    pg->NP = pg->pages_mode == PAGES_REPEATED ? (needed > 0) + (int64_t)(spare % 4) * needed / 4
                                              : needed + spare % 4;
    fz_set_shape(&c->t[A_K], c->t[A_K].dt, 4, pg->NP, pg->PS, pg->a.Hkv, pg->a.D);
    fz_set_shape(&c->t[A_V], c->t[A_V].dt, 4, pg->NP, pg->PS, pg->a.Hkv, pg->a.D);
    for (int r = 0; r < P_N; r++) {
        fz_tensor *t = &c->t[r];
        if (r != A_LEN)
            fz_mutate(in, t, r == A_M || r == A_L);
        if (r != A_LEN && r != A_K && r != A_V)
            fz_choose_layout(in, t, !is_output(r));
        t->null_data = fz_u8(in) & 1; /* honoured only for empty tensors */
    }
    fz_paged_pool_layout(pg, in);
    if (k_quant)
        fz_quant_build_scale(quant, c, A_K, P_KS);
    if (v_quant)
        fz_quant_build_scale(quant, c, A_V, P_VS);
}

static void build_contiguous(fz_in *in, fz_in *quant, fz_multi *mu)
{
    fz_case *c = &mu->pg.a.c;
    c->t[P_TABLE].present = false;
    for (int r = 0; r < A_N; r++) {
        fz_tensor *t = &c->t[r];
        fz_mutate(in, t, r == A_M || r == A_L);
        fz_choose_layout(in, t, !is_output(r));
        t->null_data = fz_u8(in) & 1;
    }
    for (int r = A_K; r <= A_V; r++)
        if (fz_quant_pick_dtype(quant, &c->t[r]))
            fz_quant_build_scale(quant, c, r, r == A_K ? P_KS : P_VS);
}

/* Deliberate sharing of memory, chosen by the trailer: q_lens or an output inside another
 * tensor's buffer (an input inside an input is allowed; an output over anything is ALIAS). */
static void share(fz_in *ms, fz_case *c)
{
    const uint8_t x = fz_u8(ms);
    if (x < 176)
        return;
    static const int movers[] = {A_O, A_M, A_L, M_QLEN};
    static const int hosts[] = {A_Q, A_K, A_V, A_LEN, A_O, A_M, A_L, P_TABLE, M_QLEN};
    const int from = movers[x % 4], to = hosts[fz_u8(ms) % 9];
    const size_t off = 4 * (size_t)(fz_u8(ms) % 16);
    fz_tensor *f = &c->t[from], *h = &c->t[to];
    if (from != to && f->present && h->present && h->host == to && f->host == from) {
        f->host = to;
        f->off = off;
    }
}

void fz_op_multi(fz_in *in, fz_in *ms, fz_in *mods, fz_in *quant)
{
    fz_multi mu;
    memset(&mu, 0, sizeof mu);
    fz_paged *pg = &mu.pg;
    fz_attn *a = &pg->a;
    const uint8_t flags = fz_u8(ms);
    mu.paged = flags & 1;
    mu.rerun = flags & 2; /* the 1- and 2-thread comparison, on about half of the inputs */
    mu.T = FZ_PICK(ms, tab_t);
    a->fn = mu.paged ? &paged_multi_fn : &ragged_multi_fn;
    a->B = FZ_PICK(in, tab_b);
    a->Hkv = FZ_PICK(in, tab_h);
    a->Hq = a->Hkv * FZ_PICK(in, tab_g);
    a->D = FZ_PICK(in, tab_d);
    if (mu.paged) {
        pg->PS = FZ_PICK(in, tab_ps);
        pg->MP = FZ_PICK(in, tab_mp);
        /* Keeps one input well under a second with ASan and the oracle. */
        while (a->B * mu.T * a->Hq * pg->MP * pg->PS * a->D > 60000 && (pg->MP > 1 || pg->PS > 1))
            if (pg->MP > 1)
                pg->MP--;
            else
                pg->PS /= 2;
        a->S = pg->MP * pg->PS;
        pg->layout = fz_u8(in) % POOL_N;
        pg->pages_mode = fz_u8(in) % PAGES_N;
        for (int64_t b = 0; b < a->B; b++)
            mu.wrote[b] = fz_pick_length(fz_u8(in), a->S);
    } else {
        a->S = FZ_PICK(in, tab_s);
        while (a->B * mu.T * a->Hq * a->S * a->D > 60000)
            a->S /= 2;
    }

    fz_opts eo;
    ra_options *opts = fz_build_options(in, &eo);
    fz_build_modifiers(mods, &opts, &eo, a->Hq);
    a->scale = eo.scale;
    a->mask = eo.mask;
    a->mods = &eo.mods;

    fz_case *c = &a->c;
    c->n = M_ALL;
    for (int r = A_Q; r <= A_V; r++)
        c->t[r].dt = tab_dt[fz_u8(in) % 4];
    if (mu.paged && (pg->layout == POOL_ONE_NHD || pg->layout == POOL_ONE_HND ||
                     pg->layout == POOL_SAME))
        c->t[A_V].dt = c->t[A_K].dt;
    set_shapes(&mu);
    int32_t final[4] = {0, 0, 0, 0}; /* B <= 3 */
    if (mu.paged)
        build_paged(in, quant, &mu, final);
    else
        build_contiguous(in, quant, &mu);
    fz_mutate(ms, &c->t[M_QLEN], false);
    fz_choose_layout(ms, &c->t[M_QLEN], true);
    static const int outs[] = {A_O, A_M, A_L}, scales[] = {P_KS, P_VS};
    fz_quant_share(quant, c, outs, 3, scales, 2);
    share(ms, c);
    fz_case_materialize(c);
    if (mu.paged) {
        fz_paged_fill(in, quant, pg, final);
        a->table = &c->t[P_TABLE];
        a->page_size = c->t[A_K].shape[1]; /* read only after a success */
    } else {
        fz_attn_fill_inputs(in, quant, a);
    }
    fill_q_lens(ms, &mu);
    a->q_lens = &c->t[M_QLEN];
    a->T = mu.T;
    if (getenv("FZ_DEBUG"))
        fz_multi_describe(&mu, &eo, opts);

    const char *name = a->fn->name;
    fz_expect e = expect_multi(&mu);
    fz_snapshot(c);
    fz_mark_last_error();
    ra_status s = fz_multi_call(&mu, opts);
    if (getenv("FZ_DEBUG"))
        fprintf(stderr, "  -> status %d\n", (int)s);
    fz_check_status(&e, s, name);
    if (s != RA_OK) {
        fz_check_new_error(name);
        fz_check_untouched(c, NULL, 0, name);
    } else {
        fz_check_untouched(c, outs, 3, name);
        fz_attn_check_values(a);
        if (mu.T == 1)
            fz_multi_check_decode(&mu, opts);
        if (mu.rerun)
            fz_multi_check_threads(&mu, &eo);
    }
    ra_options_destroy(opts);
    fz_case_free(c);
}
