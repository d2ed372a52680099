/* The multi-token operation's checks beyond the oracle: T = 1 against the decode call, bitwise,
 * and 1 against 2 threads, bitwise; and its case description for bug reports. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz_multi.h"

static const ra_tensor *handle(const fz_case *c, int r)
{
    return c->t[r].present ? c->t[r].h : NULL;
}

static ra_status call_with(const fz_multi *mu, const ra_options *opts, ra_tensor *o,
                           ra_tensor *m, ra_tensor *l)
{
    const fz_case *c = &mu->pg.a.c;
    if (mu->paged)
        return ra_paged_gqa_multi(opts, handle(c, A_Q), handle(c, A_K), handle(c, A_V),
                                  handle(c, P_TABLE), handle(c, A_LEN), handle(c, M_QLEN), o, m,
                                  l);
    return ra_ragged_gqa_multi(opts, handle(c, A_Q), handle(c, A_K), handle(c, A_V),
                               handle(c, A_LEN), handle(c, M_QLEN), o, m, l);
}

ra_status fz_multi_call(const fz_multi *mu, const ra_options *opts)
{
    const fz_case *c = &mu->pg.a.c;
    return call_with(mu, opts, (ra_tensor *)handle(c, A_O), (ra_tensor *)handle(c, A_M),
                     (ra_tensor *)handle(c, A_L));
}

/* The f32 element of t at idx, as bits. */
static uint32_t bits_at(const fz_case *c, const fz_tensor *t, const int64_t *idx)
{
    uint32_t x;
    memcpy(&x, fz_data(c, t) + (size_t)fz_offset(t, idx) * 4, 4);
    return x;
}

void fz_multi_check_decode(const fz_multi *mu, const ra_options *opts)
{
    const fz_attn *a = &mu->pg.a;
    const fz_case *c = &a->c;
    const int64_t B = a->B, Hq = a->Hq, D = a->D;
    const int64_t os[4] = {B, 1, Hq, D}, ms[4] = {B, 1, Hq, 1};
    uint32_t *o2 = malloc(4 * (size_t)(B * Hq * D + 1));
    uint32_t *m2 = malloc(4 * (size_t)(B * Hq + 1)), *l2 = malloc(4 * (size_t)(B * Hq + 1));
    FZ_CHECK(o2 && m2 && l2, "harness out of memory");
    ra_tensor *to, *tm, *tl;
    FZ_CHECK(ra_tensor_wrap(&to, RA_DTYPE_F32, 4, os, NULL, o2) == RA_OK &&
                 ra_tensor_wrap(&tm, RA_DTYPE_F32, 4, ms, NULL, m2) == RA_OK &&
                 ra_tensor_wrap(&tl, RA_DTYPE_F32, 4, ms, NULL, l2) == RA_OK,
             "wrapping the decode call's outputs failed");
    const char *dec = mu->paged ? "ra_paged_gqa" : "ra_ragged_gqa";
    ra_status s = mu->paged ? ra_paged_gqa(opts, handle(c, A_Q), handle(c, A_K), handle(c, A_V),
                                           handle(c, P_TABLE), handle(c, A_LEN), to, tm, tl)
                            : ra_ragged_gqa(opts, handle(c, A_Q), handle(c, A_K),
                                            handle(c, A_V), handle(c, A_LEN), to, tm, tl);
    FZ_CHECK(s == RA_OK, "%s on the inputs of a successful %s with T = 1 returned %d", dec,
             a->fn->name, (int)s);
    const fz_tensor *o = &c->t[A_O], *ml[2] = {&c->t[A_M], &c->t[A_L]};
    const uint32_t *want_ml[2] = {m2, l2};
    for (int64_t b = 0; b < B; b++) {
        const int64_t bidx[4] = {b, 0, 0, 0};
        if (fz_get_i32(c, a->q_lens, bidx) != 1)
            continue; /* a padding row: checked against the empty state */
        for (int64_t h = 0; h < Hq; h++) {
            int64_t idx[4] = {b, 0, h, 0};
            for (idx[3] = 0; idx[3] < D; idx[3]++) {
                const uint32_t got = bits_at(c, o, idx), want = o2[(b * Hq + h) * D + idx[3]];
                FZ_CHECK(got == want, "%s T=1 b=%lld h=%lld d=%lld: o bits 0x%08x, %s 0x%08x",
                         a->fn->name, (long long)b, (long long)h, (long long)idx[3], got, dec,
                         want);
            }
            idx[3] = 0;
            for (int i = 0; i < 2; i++) {
                if (!ml[i]->present)
                    continue;
                const uint32_t got = bits_at(c, ml[i], idx), want = want_ml[i][b * Hq + h];
                FZ_CHECK(got == want, "%s T=1 b=%lld h=%lld: %s bits 0x%08x, %s 0x%08x",
                         a->fn->name, (long long)b, (long long)h, i ? "l" : "m", got, dec, want);
            }
        }
    }
    ra_tensor_destroy(to);
    ra_tensor_destroy(tm);
    ra_tensor_destroy(tl);
    free(o2);
    free(m2);
    free(l2);
}

void fz_multi_check_threads(fz_multi *mu, const fz_opts *eo)
{
    fz_case *c = &mu->pg.a.c;
    const int threads2 = eo->num_threads == 1 ? 2 : 1;
    unsigned char **first = fz_bufs_copy(c);
    fz_restore(c);
    ra_options *o2 = fz_rerun_options(eo, threads2);
    ra_status s = fz_multi_call(mu, o2);
    FZ_CHECK(s == RA_OK, "%s: rerun with %d threads returned %d", mu->pg.a.fn->name, threads2,
             (int)s);
    fz_bufs_check_same(c, first, mu->pg.a.fn->name, eo->num_threads, threads2);
    fz_bufs_free(c, first);
    ra_options_destroy(o2);
}

static void print_ints(const fz_case *c, const fz_tensor *t, const char *name)
{
    if (!t->present || t->dt != RA_DTYPE_I32 || t->rank > 2)
        return;
    fprintf(stderr, "  %s =", name);
    int64_t idx[4] = {0, 0, 0, 0};
    for (int64_t e = 0, n = fz_numel(t); e < n; e++) {
        for (int64_t rem = e, i = t->rank - 1; i >= 0; i--)
            idx[i] = rem % t->shape[i], rem /= t->shape[i];
        fprintf(stderr, t->rank == 2 && idx[1] == 0 ? " | %d" : " %d", fz_get_i32(c, t, idx));
    }
    fprintf(stderr, "\n");
}

void fz_multi_describe(const fz_multi *mu, const fz_opts *eo, const ra_options *opts)
{
    const fz_attn *a = &mu->pg.a;
    const fz_case *c = &a->c;
    fprintf(stderr, "%s B=%lld T=%lld Hq=%lld Hkv=%lld S=%lld D=%lld", a->fn->name,
            (long long)a->B, (long long)mu->T, (long long)a->Hq, (long long)a->Hkv,
            (long long)a->S, (long long)a->D);
    if (mu->paged)
        fprintf(stderr, " page_size=%lld num_pages=%lld max_pages=%lld layout=%d pages=%d",
                (long long)mu->pg.PS, (long long)mu->pg.NP, (long long)mu->pg.MP,
                mu->pg.layout, mu->pg.pages_mode);
    fprintf(stderr, "; opts=%s block=%lld split=%lld threads=%d kernel=%d scale=%g mask=%g "
            "rerun=%d\n", opts ? "set" : "NULL", (long long)eo->block_size,
            (long long)eo->split_tokens, eo->num_threads, (int)eo->kernel, (double)eo->scale,
            (double)eo->mask, (int)mu->rerun);
    fz_mods_describe(&eo->mods);
    static const char *const names[M_ALL] = {"q", "k", "v", "lengths", "o", "m", "l",
                                             "page_table", "k scale", "v scale", "q_lens"};
    for (int r = 0; r < M_ALL; r++) {
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
    print_ints(c, &c->t[A_LEN], "lengths");
    print_ints(c, &c->t[M_QLEN], "q_lens");
    print_ints(c, &c->t[P_TABLE], "page_table");
}
