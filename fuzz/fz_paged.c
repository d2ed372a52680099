/* The paged attention operation: ra_paged_gqa on a fuzz-built pool of pages (page sizes 1..64,
 * NHD, HND, K and V as two views of one buffer or as one view, padded or fuzz-chosen strides),
 * a page table (pages shuffled, in order, repeated or shared between sequences; used slots that
 * may name a page outside the pool, unused slots that hold garbage), lengths that may be out
 * of range, and fuzz-chosen dtypes and options (with score modifiers when the input ends in a
 * modifier trailer). The harness decides the status from the header and checks that nothing is
 * written on failure; a success must match the double-precision oracle, give the same bits with
 * another thread count, and give the bits of ra_ragged_gqa with the same options on a
 * contiguous copy of the rows it reads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz_paged.h"

/* ra_paged_gqa's shapes for the oracle: q and outputs as ra_ragged_gqa's, un-normalized. The
 * call itself has another signature, so it has no function pointer here. */
static const fz_fn paged_fn = {"ra_paged_gqa", NULL, 4, 1, 4, 4, 2, true, false};

static const int64_t tab_b[] = {1, 1, 2, 2, 3, 1, 2, 0};
static const int64_t tab_hkv[] = {1, 2, 1, 4, 3, 2, 1, 8, 0};
static const int64_t tab_g[] = {1, 2, 4, 1, 3, 2, 1, 8};
static const int64_t tab_d[] = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100,
                                128, 129, 8, 16, 0};
/* 0 is invalid (RA_ERR_SHAPE); the rest cover one position per page, odd sizes, and sizes
 * around the kernels' 16- and 32-position steps, up to 64. */
static const int64_t tab_ps[] = {1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 31, 32, 33, 64, 1, 16, 0};
static const int64_t tab_mp[] = {0, 1, 2, 3, 4, 5, 6, 8, 1, 2, 3};
static const ra_dtype tab_dt[] = {RA_DTYPE_F32, RA_DTYPE_F32, RA_DTYPE_BF16, RA_DTYPE_F16};

static bool is_output(int r)
{
    return r == A_O || r == A_M || r == A_L;
}

int64_t fz_ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* The header's rules for ra_paged_gqa, applied to the tensors as built. */
static fz_expect expect_paged(const fz_paged *pg)
{
    const fz_case *c = &pg->a.c;
    const fz_tensor *t = c->t;
    fz_expect e = {0, 0};
    static const int required[] = {A_Q, A_K, A_V, A_LEN, A_O, P_TABLE};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!t[required[i]].present)
            e.must |= FZ_BIT(RA_ERR_INVALID_ARGUMENT);
    for (int r = 0; r < P_N; r++) {
        if (!t[r].present || r == A_K || r == A_V)
            continue;
        bool ok = r == A_Q                      ? fz_dtype_is_float(t[r].dt)
                  : r == A_LEN || r == P_TABLE ? t[r].dt == RA_DTYPE_I32
                                               : t[r].dt == RA_DTYPE_F32;
        if (!ok)
            e.must |= FZ_BIT(RA_ERR_DTYPE);
    }
    fz_quant_expect_kv(&t[A_K], true, &e);
    fz_quant_expect_kv(&t[A_V], true, &e);
    /* Dims as q, k_pages and the page table state them; every tensor must then have exactly
     * its expected shape. */
    const fz_tensor *q = &t[A_Q], *k = &t[A_K], *tab = &t[P_TABLE];
    bool dims_known = q->present && k->present && tab->present && q->rank == 4 &&
                      k->rank == 4 && tab->rank == 2;
    if (!dims_known) {
        e.must |= FZ_BIT(RA_ERR_SHAPE);
    } else {
        const int64_t B = q->shape[0], Hq = q->shape[2], D = q->shape[3];
        const int64_t NP = k->shape[0], PS = k->shape[1], Hkv = k->shape[2], MP = tab->shape[1];
        if (Hkv == 0 && Hq == 0)
            e.may |= FZ_BIT(RA_ERR_SHAPE); /* 0 % 0: the header does not say */
        else if (Hkv == 0 || Hq % Hkv != 0)
            e.must |= FZ_BIT(RA_ERR_SHAPE);
        if (D == 0 || PS == 0)
            e.must |= FZ_BIT(RA_ERR_SHAPE);
        /* per-head modifier tensors of another length than Hq */
        const fz_mods *md = pg->a.mods;
        if ((md->n_sinks && md->n_sinks != Hq) || (md->n_alibi && md->n_alibi != Hq))
            e.must |= FZ_BIT(RA_ERR_SHAPE);
        const int64_t want[P_N][4] = {
            [A_Q] = {B, 1, Hq, D},   [A_K] = {NP, PS, Hkv, D}, [A_V] = {NP, PS, Hkv, D},
            [A_LEN] = {B},           [A_O] = {B, 1, Hq, D},    [A_M] = {B, 1, Hq, 1},
            [A_L] = {B, 1, Hq, 1},   [P_TABLE] = {B, MP},
        };
        const int want_rank[P_N] = {4, 4, 4, 1, 4, 4, 4, 2};
        for (int r = 0; r < P_N; r++) {
            if (!t[r].present)
                continue;
            bool same = t[r].rank == want_rank[r];
            for (int i = 0; same && i < want_rank[r]; i++)
                same = t[r].shape[i] == want[r][i];
            if (!same)
                e.must |= FZ_BIT(RA_ERR_SHAPE);
        }
        /* Lengths, then the used page-table slots, once the structure is right; with other
         * errors a library may report them first, so they are allowed then too. */
        const fz_tensor *len = &t[A_LEN];
        if (len->present && len->dt == RA_DTYPE_I32 && len->rank == 1 && PS > 0) {
            const int64_t S = MP * PS; /* the builders keep both small */
            bool table_ok = tab->dt == RA_DTYPE_I32 && tab->shape[0] == B;
            bool bad = false;
            for (int64_t b = 0; b < len->shape[0]; b++) {
                const int64_t lidx[4] = {b, 0, 0, 0};
                const int32_t n = fz_get_i32(c, len, lidx);
                if (n < 0 || n > S) {
                    bad = true;
                    continue;
                }
                for (int64_t i = 0; table_ok && b < B && i < fz_ceil_div(n, PS); i++) {
                    const int64_t tidx[4] = {b, i, 0, 0};
                    const int32_t page = fz_get_i32(c, tab, tidx);
                    bad |= page < 0 || page >= NP;
                }
            }
            if (bad && e.must == 0 && len->shape[0] == B)
                e.must |= FZ_BIT(RA_ERR_LENGTH);
            else if (bad)
                e.may |= FZ_BIT(RA_ERR_LENGTH);
        }
    }
    /* Outputs may not overlap themselves, each other or any input (the page table and the
     * scales too). */
    for (int r = A_O; r <= A_L; r++) {
        if (!t[r].present)
            continue;
        if (fz_self_overlaps(&t[r]))
            e.must |= FZ_BIT(RA_ERR_ALIAS);
        else if (!fz_layout_nested(&t[r]))
            e.may |= FZ_BIT(RA_ERR_ALIAS);
        for (int x = 0; x < P_ALL; x++) {
            if (x == r || (is_output(x) && x > r))
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

int32_t fz_pick_length(uint8_t x, int64_t S)
{
    const int64_t S1 = S + 1;
    const int64_t n = x < 200    ? x % S1
                      : x < 220  ? S
                      : x < 240  ? 0
                      : x == 240 ? -1
                      : x == 241 ? S + 1
                      : x == 242 ? INT32_MAX
                      : x == 243 ? INT32_MIN
                                 : x % S1;
    return (int32_t)n;
}

void fz_final_lengths(const fz_tensor *len, const int32_t *wrote, int64_t n, int32_t *out)
{
    for (int64_t b = 0; b < n; b++) {
        out[b] = wrote[b];
        const int64_t ib[4] = {b, 0, 0, 0};
        for (int64_t b2 = b + 1; len->rank == 1 && b2 < n; b2++) {
            const int64_t ib2[4] = {b2, 0, 0, 0};
            if (fz_offset(len, ib2) == fz_offset(len, ib))
                out[b] = wrote[b2];
        }
    }
}

void fz_paged_pool_layout(fz_paged *pg, fz_in *in)
{
    fz_case *c = &pg->a.c;
    fz_tensor *k = &c->t[A_K], *v = &c->t[A_V];
    const int lay = pg->layout;
    if (k->rank != 4 || v->rank != 4 || lay == POOL_FUZZED) {
        fz_choose_layout(in, k, true);
        fz_choose_layout(in, v, true);
        return;
    }
    const int64_t PS = k->shape[1], H = k->shape[2], D = k->shape[3];
    int64_t st[4] = {PS * H * D, H * D, D, 1};
    int64_t v_off = 0;
    switch (lay) {
    case POOL_HND:
    case POOL_ONE_HND:
        st[0] = (lay == POOL_ONE_HND ? 2 : 1) * H * PS * D, st[1] = D, st[2] = PS * D;
        v_off = lay == POOL_ONE_HND ? H * PS * D : 0;
        break;
    case POOL_ONE_NHD:
        st[0] = 2 * PS * H * D;
        v_off = PS * H * D;
        break;
    case POOL_PADDED: {
        int64_t row_pad = fz_u8(in) % 3, page_pad = 1 + fz_u8(in) % 16;
        st[1] = H * D + row_pad;
        st[0] = PS * st[1] + page_pad;
        break;
    }
    default:
        break;
    }
    memcpy(k->st, st, sizeof st);
    k->null_strides = lay == POOL_NHD && (fz_u8(in) & 1);
    if (lay == POOL_MIXED) { /* V alone as HND */
        const int64_t hnd[4] = {H * PS * D, D, PS * D, 1};
        memcpy(v->st, hnd, sizeof hnd);
        v->null_strides = false;
        return;
    }
    /* V: the same strides where v's shape is k's (a mutated v keeps its own row-major ones) */
    bool same_shape = true;
    for (int i = 0; i < 4; i++)
        same_shape &= v->shape[i] == k->shape[i];
    if (same_shape) {
        memcpy(v->st, st, sizeof st);
        v->null_strides = k->null_strides;
    }
    if (lay == POOL_ONE_NHD || lay == POOL_ONE_HND || lay == POOL_SAME) {
        v->host = A_K;
        v->off = (size_t)v_off * fz_dtype_size(k->dt);
    }
}

/* Page indices for the used slots of each sequence (before any invalid entry is planted),
 * following pg->pages_mode. n_used[b] slots of row b are used. */
static void plan_pages(fz_paged *pg, fz_in *in, const int64_t *n_used, int64_t B,
                       int32_t *plan /* [B][MP] */)
{
    const int64_t NP = pg->NP, MP = pg->MP;
    int32_t *order = malloc(sizeof *order * (size_t)(NP ? NP : 1));
    FZ_CHECK(order != NULL, "harness out of memory");
    for (int64_t i = 0; i < NP; i++)
        order[i] = (int32_t)i;
    fz_rng rng = {fz_u64(in)};
    if (pg->pages_mode != PAGES_IN_ORDER)
        for (int64_t i = NP - 1; i > 0; i--) {
            int64_t j = (int64_t)(fz_rng_next(&rng) % (uint64_t)(i + 1));
            int32_t x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
    int64_t next = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < n_used[b] && i < MP; i++) {
            int32_t page;
            if (pg->pages_mode == PAGES_REPEATED)
                page = NP ? (int32_t)(fz_rng_next(&rng) % (uint64_t)NP) : 0;
            else if (pg->pages_mode == PAGES_SHARED_PREFIX && b > 0 && i < n_used[0])
                page = plan[i]; /* sequence 0's page: a common prefix */
            else
                page = next < NP ? order[next++] : (NP ? order[(next++) % NP] : 0);
            plan[b * MP + i] = page;
        }
    free(order);
}

/* An integer into t, whatever dtype a mutation gave it. */
static void put_int(fz_case *c, const fz_tensor *t, const int64_t *idx, int32_t x)
{
    if (t->dt == RA_DTYPE_I32)
        fz_put_i32(c, t, idx, x);
    else
        fz_put(c, t, idx, (double)x);
}

/* Marks the elements of row (page, row) of pool x as read, when x is quantized. */
static void mark_row(const fz_tensor *x, bool *used, int64_t page, int64_t row)
{
    if (!used)
        return;
    const int64_t per_row = x->shape[2] * x->shape[3];
    for (int64_t i = 0; i < per_row; i++)
        used[(page * x->shape[1] + row) * per_row + i] = true;
}

void fz_paged_fill(fz_in *in, fz_in *qs, fz_paged *pg, const int32_t *len_wrote)
{
    fz_attn *a = &pg->a;
    fz_case *c = &a->c;
    fz_tensor *len = &c->t[A_LEN], *tab = &c->t[P_TABLE];
    const int64_t B = a->B;
    if (len->present && fz_numel(len) > 0)
        for (int64_t b = 0; b < len->shape[0]; b++) {
            const int64_t idx[4] = {b, 0, 0, 0};
            put_int(c, len, idx, b < B ? len_wrote[b] : fz_pick_length(fz_u8(in), a->S));
        }

    /* The table: planned pages in the used slots (now and then one out of range), garbage in
     * the others. */
    if (tab->present && fz_numel(tab) > 0 && tab->rank == 2) {
        const int64_t rows = tab->shape[0], slots = tab->shape[1], MP = pg->MP;
        int64_t *n_used = calloc((size_t)(rows + B + 1), sizeof *n_used);
        int32_t *plan = calloc((size_t)(B * MP + 1), sizeof *plan);
        FZ_CHECK(n_used && plan, "harness out of memory");
        for (int64_t b = 0; b < rows && b < B; b++)
            n_used[b] = len_wrote[b] >= 0 && pg->PS > 0 ? fz_ceil_div(len_wrote[b], pg->PS) : 0;
        plan_pages(pg, in, n_used, B, plan);
        const uint8_t bad = fz_u8(in);
        const int64_t bad_b = fz_u8(in), bad_i = fz_u8(in);
        const int32_t bad_values[] = {-1, (int32_t)pg->NP, (int32_t)pg->NP + 7, INT32_MAX,
                                      INT32_MIN};
        const uint8_t junk = fz_u8(in);
        fz_rng rng = {fz_u64(in)};
        for (int64_t b = 0; b < rows; b++)
            for (int64_t i = 0; i < slots; i++) {
                const int64_t idx[4] = {b, i, 0, 0};
                int64_t x;
                if (b < B && i < MP && i < n_used[b])
                    x = plan[b * MP + i];
                else if (junk % 4 == 0)
                    x = -7;
                else if (junk % 4 == 1)
                    x = (int32_t)fz_rng_next(&rng); /* anything, valid or not */
                else if (junk % 4 == 2)
                    x = (i % 2) ? INT32_MAX : pg->NP;
                else
                    x = INT32_MIN;
                put_int(c, tab, idx, (int32_t)x);
            }
        /* one used slot names a page outside the pool: RA_ERR_LENGTH */
        if (bad >= 200 && B > 0) {
            const int64_t b = bad_b % B;
            if (n_used[b] > 0) {
                const int64_t idx[4] = {b, bad_i % n_used[b], 0, 0};
                if (idx[1] < slots)
                    put_int(c, tab, idx, bad_values[bad % 5]);
            }
        }
        free(n_used);
        free(plan);
    }

    fz_rng rng = {fz_u64(in)};
    int cls[3] = {fz_u8(in) % 8, fz_u8(in) % 8, fz_u8(in) % 8};
    const bool poison = fz_u8(in) & 1;
    /* Background: every pool element, poison (NaN, huge) or ordinary values. */
    for (int r = A_K; r <= A_V; r++) {
        fz_tensor *t = &c->t[r];
        int64_t idx[4] = {0, 0, 0, 0};
        for (int64_t e = 0, n = t->present ? fz_numel(t) : 0; e < n; e++) {
            for (int64_t rem = e, i = t->rank - 1; i >= 0; i--)
                idx[i] = rem % t->shape[i], rem /= t->shape[i];
            double x = poison                     ? ((fz_rng_next(&rng) & 1) ? NAN : 3e38)
                       : fz_dtype_is_quant(t->dt) ? fz_quant_code(&rng, t->dt, cls[r])
                                                  : fz_attn_value(&rng, cls[r]);
            fz_put(c, t, idx, x);
        }
    }
    /* Valid positions the window keeps: the rows the table names, as the tensors hold them
     * now (the others keep their background, poison or not). */
    bool structured = len->present && len->dt == RA_DTYPE_I32 && len->rank == 1 &&
                      len->shape[0] >= B && tab->present && tab->dt == RA_DTYPE_I32 &&
                      tab->rank == 2 && tab->shape[0] >= B && pg->PS > 0;
    bool *used[3] = {NULL, NULL, NULL}; /* quantized K, V: which elements valid rows hold */
    for (int r = A_K; structured && r <= A_V; r++)
        if (c->t[r].quant && c->t[r].rank == 4) {
            used[r] = calloc((size_t)fz_numel(&c->t[r]) + 1, sizeof *used[r]);
            FZ_CHECK(used[r] != NULL, "harness out of memory");
        }
    for (int64_t b = 0; structured && b < B; b++) {
        const int64_t lidx[4] = {b, 0, 0, 0};
        const int32_t n = fz_get_i32(c, len, lidx);
        for (int64_t t = 0; n <= a->S && t < n && t / pg->PS < tab->shape[1]; t++) {
            if (!fz_visible(a->mods, n, t))
                continue;
            const int64_t tidx[4] = {b, t / pg->PS, 0, 0};
            const int32_t page = fz_get_i32(c, tab, tidx);
            for (int r = A_K; r <= A_V; r++) {
                fz_tensor *x = &c->t[r];
                if (!x->present || x->rank != 4 || page < 0 || page >= x->shape[0] ||
                    t % pg->PS >= x->shape[1])
                    continue;
                int64_t idx[4] = {page, t % pg->PS, 0, 0};
                mark_row(x, used[r], page, t % pg->PS);
                for (idx[2] = 0; idx[2] < x->shape[2]; idx[2]++)
                    for (idx[3] = 0; idx[3] < x->shape[3]; idx[3]++)
                        fz_put(c, x, idx, fz_dtype_is_quant(x->dt)
                                              ? fz_quant_code(&rng, x->dt, cls[r])
                                              : fz_attn_value(&rng, cls[r]));
            }
        }
    }
    for (int r = A_K; r <= A_V; r++) {
        fz_quant_fill_scale(qs, c, r, used[r], poison);
        free(used[r]);
    }
    fz_tensor *q = &c->t[A_Q];
    int64_t idx[4] = {0, 0, 0, 0};
    for (int64_t e = 0, n = q->present ? fz_numel(q) : 0; e < n; e++) {
        for (int64_t rem = e, i = q->rank - 1; i >= 0; i--)
            idx[i] = rem % q->shape[i], rem /= q->shape[i];
        fz_put(c, q, idx, fz_attn_value(&rng, cls[0]));
    }
    uint8_t ns = fz_u8(in);
    for (int i = 0; ns >= 200 && i < 1 + (ns - 200) % 4; i++) {
        fz_tensor *t = &c->t[A_Q + fz_u8(in) % 3];
        uint32_t at = fz_u32(in);
        double x = fz_attn_special(fz_u8(in));
        int64_t n = t->present ? fz_numel(t) : 0;
        if (n == 0)
            continue;
        for (int64_t rem = (int64_t)(at % (uint64_t)n), d = t->rank - 1; d >= 0; d--)
            idx[d] = rem % t->shape[d], rem /= t->shape[d];
        fz_put(c, t, idx, x);
    }
}

/* The contiguous copy's element strides for pool x: rows ordered as the pool orders them, so
 * that the contiguous call takes the walk the paged one takes. Whole NHD rows (what the
 * AVX-512 row walk wants) stay [B,S,Hkv,D]; other unit-feature layouts become [B,Hkv,S,D]
 * viewed as [B,S,Hkv,D]; a feature stride other than 1 (the portable kernel) stays one. */
static void copy_strides(const fz_tensor *x, int64_t S, int64_t H, int64_t D, int64_t st[4])
{
    if (x->st[3] == 1 && x->st[2] == D && x->st[1] == H * D) {
        const int64_t nhd[4] = {S * H * D, H * D, D, 1};
        memcpy(st, nhd, sizeof nhd);
    } else if (x->st[3] == 1) {
        const int64_t hnd[4] = {H * S * D, D, S * D, 1};
        memcpy(st, hnd, sizeof hnd);
    } else {
        const int64_t wide[4] = {2 * S * H * D, 2 * H * D, 2 * D, 2};
        memcpy(st, wide, sizeof wide);
    }
}

/* The same f32 bits, any NaN counting as any other: which NaN an operation returns when both
 * operands are NaN (a NaN code times a NaN scale) depends on the order a compiler gives them,
 * and the contract is only that the head is NaN. */
static bool same_value(const float *a, const float *b)
{
    return !memcmp(a, b, sizeof *a) || (isnan(*a) && isnan(*b));
}

/* ra_ragged_gqa with the same options on a contiguous copy of the rows the paged call read
 * (NaN at every other position, those a window leaves out included) must give the paged call's
 * bits (any NaN for a NaN). A quantized pool's copy has per-position scales [B,S,Hkv,1]
 * holding the ones the pool's rows use. */
static void check_contiguous(fz_paged *pg, const ra_options *opts)
{
    fz_attn *a = &pg->a;
    fz_case *c = &a->c;
    const int64_t B = a->B, Hq = a->Hq, H = a->Hkv, D = a->D, PS = c->t[A_K].shape[1];
    const int64_t S = c->t[P_TABLE].shape[1] * PS; /* the table may have grown in a mutation */
    if (H == 0)
        return; /* Hq = Hkv = 0: the header leaves the call open, and there is nothing to see */
    const fz_tensor *x[2] = {&c->t[A_K], &c->t[A_V]}, *len = &c->t[A_LEN];
    const fz_tensor *tab = &c->t[P_TABLE];
    unsigned char *mem[2];
    float *smem[2] = {NULL, NULL};
    ra_tensor *h[2], *sh[2] = {NULL, NULL};
    const int64_t shape[4] = {B, S, H, D}, sshape[4] = {B, S, H, 1};
    for (int r = 0; r < 2; r++) {
        const size_t es = fz_dtype_size(x[r]->dt);
        int64_t st[4];
        copy_strides(x[r], S, H, D, st);
        const size_t bytes = (size_t)(B * st[0]) * es + 16;
        mem[r] = malloc(bytes);
        FZ_CHECK(mem[r] != NULL, "harness out of memory");
        memset(mem[r], 0xff, bytes); /* NaN in every dtype */
        if (x[r]->quant) {
            smem[r] = malloc(sizeof(float) * (size_t)(B * S * H + 1));
            FZ_CHECK(smem[r] != NULL, "harness out of memory");
            memset(smem[r], 0xff, sizeof(float) * (size_t)(B * S * H + 1));
        }
        for (int64_t b = 0; b < B; b++) {
            const int64_t lidx[4] = {b, 0, 0, 0};
            const int32_t n = fz_get_i32(c, len, lidx);
            for (int64_t t = 0; t < n; t++) {
                if (!fz_visible(a->mods, n, t))
                    continue;
                const int64_t tidx[4] = {b, t / PS, 0, 0};
                int64_t from[4] = {fz_get_i32(c, tab, tidx), t % PS, 0, 0};
                for (from[2] = 0; from[2] < H; from[2]++) {
                    if (smem[r])
                        smem[r][(b * S + t) * H + from[2]] = (float)fz_get_scale(c, x[r], from);
                    for (from[3] = 0; from[3] < D; from[3]++) {
                        const int64_t to = b * st[0] + t * st[1] + from[2] * st[2] +
                                           from[3] * st[3];
                        memcpy(mem[r] + (size_t)to * es,
                               fz_data(c, x[r]) + (size_t)fz_offset(x[r], from) * es, es);
                    }
                    from[3] = 0;
                }
            }
        }
        ra_status s = smem[r] ? ra_tensor_wrap(&sh[r], RA_DTYPE_F32, 4, sshape, NULL, smem[r])
                              : RA_OK;
        if (s == RA_OK)
            s = smem[r] ? ra_tensor_wrap_quantized(&h[r], x[r]->dt, 4, shape, st, mem[r], sh[r])
                        : ra_tensor_wrap(&h[r], x[r]->dt, 4, shape, st, mem[r]);
        FZ_CHECK(s == RA_OK, "wrapping the contiguous copy failed: %d", (int)s);
    }
    const int64_t os[4] = {B, 1, Hq, D}, ms[4] = {B, 1, Hq, 1};
    float *o2 = malloc(sizeof(float) * (size_t)(B * Hq * D + 1));
    float *m2 = malloc(sizeof(float) * (size_t)(B * Hq + 1));
    float *l2 = malloc(sizeof(float) * (size_t)(B * Hq + 1));
    FZ_CHECK(o2 && m2 && l2, "harness out of memory");
    ra_tensor *to, *tm, *tl;
    FZ_CHECK(ra_tensor_wrap(&to, RA_DTYPE_F32, 4, os, NULL, o2) == RA_OK &&
                 ra_tensor_wrap(&tm, RA_DTYPE_F32, 4, ms, NULL, m2) == RA_OK &&
                 ra_tensor_wrap(&tl, RA_DTYPE_F32, 4, ms, NULL, l2) == RA_OK,
             "wrapping the contiguous outputs failed");
    ra_status s = ra_ragged_gqa(opts, c->t[A_Q].h, h[0], h[1], len->h, to, tm, tl);
    FZ_CHECK(s == RA_OK, "ra_ragged_gqa on the contiguous copy returned %d", (int)s);
    const fz_tensor *o = &c->t[A_O], *m = &c->t[A_M], *l = &c->t[A_L];
    for (int64_t b = 0; b < B; b++)
        for (int64_t hq = 0; hq < Hq; hq++) {
            int64_t idx[4] = {b, 0, hq, 0};
            for (idx[3] = 0; idx[3] < D; idx[3]++) {
                const float *got = (const float *)(const void *)(fz_data(c, o) +
                                                                 fz_offset(o, idx) * 4);
                const float want = o2[(b * Hq + hq) * D + idx[3]];
                FZ_CHECK(same_value(got, &want), "ra_paged_gqa b=%lld h=%lld d=%lld: o = %a, "
                         "ra_ragged_gqa on the contiguous copy %a", (long long)b,
                         (long long)hq, (long long)idx[3], (double)*got, (double)want);
            }
            idx[3] = 0;
            const fz_tensor *ml[2] = {m, l};
            const float *want_ml[2] = {m2, l2};
            for (int i = 0; i < 2; i++) {
                if (!ml[i]->present)
                    continue;
                const float *got = (const float *)(const void *)(fz_data(c, ml[i]) +
                                                                 fz_offset(ml[i], idx) * 4);
                FZ_CHECK(same_value(got, &want_ml[i][b * Hq + hq]), "ra_paged_gqa b=%lld "
                         "h=%lld: %s = %a, ra_ragged_gqa on the contiguous copy %a",
                         (long long)b, (long long)hq, i ? "l" : "m", (double)*got,
                         (double)want_ml[i][b * Hq + hq]);
            }
        }
    ra_tensor_destroy(to);
    ra_tensor_destroy(tm);
    ra_tensor_destroy(tl);
    for (int r = 0; r < 2; r++) {
        ra_tensor_destroy(h[r]);
        ra_tensor_destroy(sh[r]);
        free(mem[r]);
        free(smem[r]);
    }
    free(o2);
    free(m2);
    free(l2);
}

/* A readable description of the case, for bug reports (FZ_DEBUG=1). */
static void describe(const fz_paged *pg, const fz_opts *eo, const ra_options *opts)
{
    const fz_attn *a = &pg->a;
    const fz_case *c = &a->c;
    static const char *const layouts[] = {"NHD", "HND", "one buffer NHD", "one buffer HND",
                                          "K NHD V HND", "padded", "fuzzed", "K = V"};
    static const char *const modes[] = {"shuffled", "in order", "repeated", "shared prefix"};
    fprintf(stderr, "ra_paged_gqa B=%lld Hq=%lld Hkv=%lld D=%lld page_size=%lld num_pages=%lld "
            "max_pages=%lld pools %s, pages %s; opts=%s block=%lld split=%lld threads=%d "
            "kernel=%d scale=%g\n", (long long)a->B, (long long)a->Hq, (long long)a->Hkv,
            (long long)a->D, (long long)pg->PS, (long long)pg->NP, (long long)pg->MP,
            layouts[pg->layout], modes[pg->pages_mode], opts ? "set" : "NULL",
            (long long)eo->block_size, (long long)eo->split_tokens, eo->num_threads,
            (int)eo->kernel, (double)eo->scale);
    fz_mods_describe(&eo->mods);
    static const char *const names[] = {"q", "k_pages", "v_pages", "lengths", "o", "m", "l",
                                        "page_table", "k scale", "v scale"};
    for (int r = 0; r < P_ALL; r++) {
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
        fprintf(stderr, "] host=%d off=%zu%s\n", t->host, t->off, t->quant ? " quantized" : "");
    }
    const fz_tensor *len = &c->t[A_LEN], *tab = &c->t[P_TABLE];
    if (len->present && len->dt == RA_DTYPE_I32 && len->rank == 1)
        for (int64_t b = 0; b < len->shape[0]; b++) {
            const int64_t idx[4] = {b, 0, 0, 0};
            fprintf(stderr, "  lengths[%lld] = %d\n", (long long)b, fz_get_i32(c, len, idx));
        }
    for (int r = A_K; r <= A_V; r++) { /* the non-finite values a quantized pool holds */
        const fz_tensor *t = &c->t[r];
        int64_t idx[4] = {0, 0, 0, 0};
        for (int64_t e = 0, n = t->present && t->quant ? fz_numel(t) : 0; e < n; e++) {
            for (int64_t rem = e, i = t->rank - 1; i >= 0; i--)
                idx[i] = rem % t->shape[i], rem /= t->shape[i];
            if (!isfinite(fz_get(c, t, idx)))
                fprintf(stderr, "  %s[%lld,%lld,%lld,%lld] = code %g * scale %g\n", names[r],
                        (long long)idx[0], (long long)idx[1], (long long)idx[2],
                        (long long)idx[3], fz_get_code(c, t, idx), fz_get_scale(c, t, idx));
        }
    }
    if (tab->present && tab->dt == RA_DTYPE_I32 && tab->rank == 2)
        for (int64_t b = 0; b < tab->shape[0]; b++) {
            fprintf(stderr, "  page_table[%lld] =", (long long)b);
            for (int64_t i = 0; i < tab->shape[1]; i++) {
                const int64_t idx[4] = {b, i, 0, 0};
                fprintf(stderr, " %d", fz_get_i32(c, tab, idx));
            }
            fprintf(stderr, "\n");
        }
}

void fz_op_paged(fz_in *in, fz_in *mods, fz_in *quant)
{
    fz_paged pg;
    memset(&pg, 0, sizeof pg);
    fz_attn *a = &pg.a;
    a->fn = &paged_fn;
    a->B = FZ_PICK(in, tab_b);
    a->Hkv = FZ_PICK(in, tab_hkv);
    a->Hq = a->Hkv * FZ_PICK(in, tab_g);
    a->D = FZ_PICK(in, tab_d);
    pg.PS = FZ_PICK(in, tab_ps);
    pg.MP = FZ_PICK(in, tab_mp);
    /* Keeps one input well under a second with ASan and the double-precision oracle. */
    while (a->B * a->Hq * pg.MP * pg.PS * a->D > 60000 && (pg.MP > 1 || pg.PS > 1)) {
        if (pg.MP > 1)
            pg.MP--;
        else
            pg.PS /= 2;
    }
    a->S = pg.MP * pg.PS;
    pg.layout = fz_u8(in) % POOL_N;
    pg.pages_mode = fz_u8(in) % PAGES_N;
    int32_t wrote[4] = {0, 0, 0, 0}; /* B <= 3 */
    for (int64_t b = 0; b < a->B; b++)
        wrote[b] = fz_pick_length(fz_u8(in), a->S);

    fz_opts eo;
    ra_options *opts = fz_build_options(in, &eo);
    fz_build_modifiers(mods, &opts, &eo, a->Hq);
    a->scale = eo.scale;
    a->mask = eo.mask;
    a->mods = &eo.mods;

    fz_case *c = &a->c;
    c->n = P_ALL;
    const bool one_buffer = pg.layout == POOL_ONE_NHD || pg.layout == POOL_ONE_HND ||
                            pg.layout == POOL_SAME;
    for (int r = 0; r < P_N; r++) {
        fz_tensor *t = &c->t[r];
        t->dt = r <= A_V ? tab_dt[fz_u8(in) % 4]
                : r == A_LEN || r == P_TABLE ? RA_DTYPE_I32
                                             : RA_DTYPE_F32;
        if (r == A_V && one_buffer)
            t->dt = c->t[A_K].dt; /* one buffer holds one dtype */
        t->host = r;
        switch (r) {
        case A_K:
        case A_V:
            break; /* once the pool size is known */
        case P_TABLE:
            fz_set_shape(t, t->dt, 2, a->B, pg.MP, 1, 1);
            break;
        default:
            fz_attn_shape(a->fn, r, a->B, a->Hq, a->Hkv, a->S, a->D, t);
            break;
        }
    }
    const bool k_quant = fz_quant_pick_dtype(quant, &c->t[A_K]);
    if (one_buffer)
        c->t[A_V].dt = c->t[A_K].dt; /* one buffer holds one dtype */
    const bool v_quant = one_buffer ? k_quant : fz_quant_pick_dtype(quant, &c->t[A_V]);
    /* Pages: enough for every sequence's own, or fewer (pages repeat), plus spare ones. */
    fz_tensor *len = &c->t[A_LEN];
    fz_mutate(in, len, false);
    fz_choose_layout(in, len, true);
    int32_t final[4] = {0, 0, 0, 0};
    fz_final_lengths(len, wrote, a->B, final);
    int64_t needed = 0;
    for (int64_t b = 0; b < a->B; b++)
        if (final[b] > 0 && final[b] <= a->S && pg.PS > 0)
            needed += fz_ceil_div(final[b], pg.PS);
    const uint8_t spare = fz_u8(in);
    pg.NP = pg.pages_mode == PAGES_REPEATED ? (needed > 0) + (int64_t)(spare % 4) * needed / 4
                                            : needed + spare % 4;
    fz_set_shape(&c->t[A_K], c->t[A_K].dt, 4, pg.NP, pg.PS, a->Hkv, a->D);
    fz_set_shape(&c->t[A_V], c->t[A_V].dt, 4, pg.NP, pg.PS, a->Hkv, a->D);
    for (int r = 0; r < P_N; r++) {
        fz_tensor *t = &c->t[r];
        if (r != A_LEN)
            fz_mutate(in, t, r == A_M || r == A_L);
        if (r != A_LEN && r != A_K && r != A_V)
            fz_choose_layout(in, t, r != A_O && r != A_M && r != A_L);
        t->null_data = fz_u8(in) & 1; /* honoured only for empty tensors */
    }
    fz_paged_pool_layout(&pg, in);
    static const int outs[] = {A_O, A_M, A_L}, scales[] = {P_KS, P_VS};
    if (k_quant)
        fz_quant_build_scale(quant, c, A_K, P_KS);
    if (v_quant)
        fz_quant_build_scale(quant, c, A_V, P_VS);
    fz_quant_share(quant, c, outs, 3, scales, 2);
    /* Deliberate sharing of memory: q inside a pool's buffer (allowed), or an output inside
     * another tensor's buffer (an error when they overlap). */
    uint8_t share = fz_u8(in);
    if (share >= 224) {
        int x = share >= 240 ? A_O + fz_u8(in) % 3 : A_Q;
        int y = share >= 240 ? fz_u8(in) % P_N : A_K + fz_u8(in) % 2;
        if (x != y && c->t[x].present && c->t[y].present && c->t[y].host == y &&
            c->t[x].host == x) {
            c->t[x].host = y;
            c->t[x].off = 4 * (size_t)(fz_u8(in) % 16);
        }
    }
    fz_case_materialize(c);
    fz_paged_fill(in, quant, &pg, final);
    a->table = &c->t[P_TABLE];
    a->page_size = c->t[A_K].shape[1]; /* read only after a success, when k_pages says it */
    if (getenv("FZ_DEBUG"))
        describe(&pg, &eo, opts);

    fz_expect e = expect_paged(&pg);
    const ra_tensor *h[P_N];
    for (int r = 0; r < P_N; r++)
        h[r] = c->t[r].present ? c->t[r].h : NULL;
    fz_snapshot(c);
    fz_mark_last_error();
    ra_status s = ra_paged_gqa(opts, h[A_Q], h[A_K], h[A_V], h[P_TABLE], h[A_LEN],
                               (ra_tensor *)h[A_O], (ra_tensor *)h[A_M], (ra_tensor *)h[A_L]);
    fz_check_status(&e, s, "ra_paged_gqa");
    if (s != RA_OK) {
        fz_check_new_error("ra_paged_gqa");
        fz_check_untouched(c, NULL, 0, "ra_paged_gqa");
    } else {
        fz_check_untouched(c, outs, 3, "ra_paged_gqa");
        fz_attn_check_values(a);
        check_contiguous(&pg, opts);

        /* Bitwise the same with another thread count. */
        unsigned char **first = fz_bufs_copy(c);
        fz_restore(c);
        const int threads2 = eo.num_threads == 1 ? 3 : 1;
        ra_options *o2 = fz_rerun_options(&eo, threads2);
        s = ra_paged_gqa(o2, h[A_Q], h[A_K], h[A_V], h[P_TABLE], h[A_LEN], (ra_tensor *)h[A_O],
                         (ra_tensor *)h[A_M], (ra_tensor *)h[A_L]);
        FZ_CHECK(s == RA_OK, "ra_paged_gqa: rerun with another thread count returned %d",
                 (int)s);
        fz_bufs_check_same(c, first, "ra_paged_gqa", eo.num_threads, threads2);
        fz_bufs_free(c, first);
        ra_options_destroy(o2);
    }
    ra_options_destroy(opts);
    fz_case_free(c);
}
