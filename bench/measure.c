#include "measure.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static bench_stats stats_of(double *v, int n)
{
    bench_stats s = {NAN, NAN, n};
    if (n > 0) {
        s.median = median(v, n);
        s.min = v[0];
    }
    return s;
}

static int check(ra_status st, const char *what)
{
    if (st == RA_OK)
        return 0;
    fprintf(stderr, "raggedattn-bench: error: %s failed: %s (%s)\n", what, ra_status_string(st),
            ra_last_error());
    return -1;
}

int bench_make_options(const bench_config *cfg, const bench_workload *w, int threads,
                       ra_kernel kernel, bool modified, ra_options **out)
{
    ra_options *o = NULL;
    int64_t block = cfg->block_size > 0 ? cfg->block_size : w->shape.block_size;
    const bench_mods *m = &w->mods;
    if (check(ra_options_create(&o), "ra_options_create") ||
        check(ra_options_set_block_size(o, block), "ra_options_set_block_size") ||
        check(ra_options_set_scale(o, w->scale), "ra_options_set_scale") ||
        check(ra_options_set_num_threads(o, threads), "ra_options_set_num_threads") ||
        check(ra_options_set_kernel(o, kernel), "ra_options_set_kernel") ||
        check(ra_options_set_split_tokens(o, cfg->split_tokens), "ra_options_set_split_tokens") ||
        (modified &&
         (check(ra_options_set_softcap(o, m->softcap), "ra_options_set_softcap") ||
          check(ra_options_set_window(o, m->window, m->sink_positions),
                "ra_options_set_window") ||
          (m->sinks && check(ra_options_set_sinks(o, w->t_sinks), "ra_options_set_sinks")) ||
          (m->alibi && check(ra_options_set_alibi(o, w->t_alibi), "ra_options_set_alibi"))))) {
        ra_options_destroy(o);
        return -1;
    }
    *out = o;
    return 0;
}

/* 2 when w's calls also run with modifiers (plain first), else 1. */
static int n_mods_of(const bench_mods *m)
{
    return bench_mods_any(m) ? 2 : 1;
}

int bench_n_variants(const bench_config *cfg, const bench_shape *shape)
{
    bench_mods m = bench_case_mods(&cfg->mods, shape);
    return cfg->n_page_sizes * cfg->n_kernels * n_mods_of(&m);
}

/* A timed call: layout p of w (the contiguous cache or a pool), or the reference (p < 0). */
static ra_status call(const ra_options *o, bench_workload *w, int p)
{
    if (p < 0)
        return ra_reference_gqa(o, w->t_q3, w->t_kref, w->t_vref, w->t_len, w->t_ref_o, NULL,
                                NULL);
    const bench_pool *pool = &w->pools[p];
    if (pool->page_size == 0)
        return ra_ragged_gqa(o, w->t_q4, w->t_k, w->t_v, w->t_len, w->t_o, w->t_m, w->t_l);
    return ra_paged_gqa(o, w->t_q4, pool->t_k, pool->t_v, pool->t_table, w->t_len, w->t_o,
                        w->t_m, w->t_l);
}

static const char *call_name(const bench_workload *w, int p)
{
    return p < 0 ? "ra_reference_gqa"
           : w->pools[p].page_size == 0 ? "ra_ragged_gqa"
                                         : "ra_paged_gqa";
}

/* One timed call: caches flushed first, or (hot) warmed by an identical untimed call. */
static int timed_call(const bench_config *cfg, const bench_membw *mb, const ra_options *o,
                      bench_workload *w, int p, double *seconds)
{
    const char *what = call_name(w, p);
    if (cfg->hot) {
        if (check(call(o, w, p), what))
            return -1;
    } else {
        bench_membw_flush(mb);
    }
    double t0 = omp_get_wtime();
    ra_status st = call(o, w, p);
    *seconds = omp_get_wtime() - t0;
    return check(st, what);
}

typedef struct samples {
    double *stream, *ref, *ragged; /* ragged: [variant][rep] */
} samples;

static void free_samples(samples *s)
{
    free(s->stream);
    free(s->ref);
    free(s->ragged);
}

/* The contiguous layout's index in w->pools, or -1. */
static int contiguous_layout(const bench_workload *w)
{
    for (int p = 0; p < w->n_pools; p++)
        if (w->pools[p].page_size == 0)
            return p;
    return -1;
}

/* Warm-up: the reference output first, then each variant's first calls and its error. The
 * contiguous layout comes first in cfg->page_sizes, so each (kernel, plain or modified) pair's
 * contiguous outputs are kept (in keep, B*Hq*(D+2) floats per pair) to compare the paged ones
 * with. opts[k * nm + mod]: the options of kernel k, plain (mod 0) or modified (mod 1). */
static int warm_up(const bench_config *cfg, bench_workload *w, ra_options **opts, int nm,
                   const ra_options *ref_opts, float *keep, bench_result *out)
{
    if (ref_opts && check(call(ref_opts, w, -1), "ra_reference_gqa"))
        return -1;
    const bench_shape *s = &w->shape;
    const size_t no = (size_t)(s->B * s->Hq * s->D), nml = (size_t)(s->B * s->Hq);
    const int contig = contiguous_layout(w);
    for (int p = 0; p < w->n_pools; p++)
        for (int k = 0; k < cfg->n_kernels; k++)
            for (int mod = 0; mod < nm; mod++) {
                const int pair = k * nm + mod;
                bench_result *r = &out[p * cfg->n_kernels * nm + pair];
                for (int i = 0; i < cfg->warmup; i++)
                    if (check(call(opts[pair], w, p), call_name(w, p)))
                        return -1;
                /* the reference computes no modifiers: nothing to compare a modified row with */
                r->have_err = (ref_opts || w->dequant_ref) && mod == 0;
                r->max_rel_err = r->have_err ? bench_max_rel_error(w) : NAN;
                float *kept = keep + (size_t)pair * (no + 2 * nml);
                r->same_as_contiguous = -1;
                if (p == contig) {
                    memcpy(kept, w->o, no * sizeof(float));
                    memcpy(kept + no, w->m, nml * sizeof(float));
                    memcpy(kept + no + nml, w->l, nml * sizeof(float));
                } else if (contig >= 0) {
                    r->same_as_contiguous = !memcmp(kept, w->o, no * sizeof(float)) &&
                                            !memcmp(kept + no, w->m, nml * sizeof(float)) &&
                                            !memcmp(kept + no + nml, w->l, nml * sizeof(float));
                }
            }
    return 0;
}

/* Rounds of: one bandwidth pass, then one timed call of each variant (layout x kernel x plain
 * or modified), then (for the first ref_reps <= reps rounds) one of the reference. Interleaving
 * keeps every figure of a row, and the ratios between rows, measured in the same minutes,
 * since this VM's bandwidth drifts. */
static int run_rounds(const bench_config *cfg, bench_workload *w, const bench_membw *mb,
                      int threads, ra_options **opts, int nm, const ra_options *ref_opts,
                      samples *s)
{
    int reps = cfg->reps, npairs = cfg->n_kernels * nm;
    for (int r = 0; r < reps; r++) {
        s->stream[r] = bench_membw_read_pass(mb, threads);
        for (int p = 0; p < w->n_pools; p++)
            for (int pair = 0; pair < npairs; pair++)
                if (timed_call(cfg, mb, opts[pair], w, p,
                               &s->ragged[(p * npairs + pair) * reps + r]))
                    return -1;
        if (ref_opts && r < cfg->ref_reps && timed_call(cfg, mb, ref_opts, w, -1, &s->ref[r]))
            return -1;
    }
    return 0;
}

static void summarize(const bench_config *cfg, const bench_workload *w, ra_options **opts,
                      int nm, bool have_ref, samples *s, bench_result *out)
{
    int reps = cfg->reps, nk = cfg->n_kernels, npairs = nk * nm;
    double stream = median(s->stream, reps); /* sorts the passes: slowest first */
    double slowest = s->stream[0], fastest = s->stream[reps - 1];
    bench_stats ref = stats_of(s->ref, have_ref ? cfg->ref_reps : 0);
    const bench_mods plain = {0};
    for (int p = 0; p < w->n_pools; p++)
        for (int pair = 0; pair < npairs; pair++) {
            const int k = pair / nm, mod = pair % nm;
            bench_result *r = &out[p * npairs + pair];
            r->kernel_requested = cfg->kernels[k];
            r->kernel = ra_kernel_name(
                bench_kernel_for_dtype(ra_kernel_resolve(opts[pair]), w->kv_dtype));
            r->page_size = w->pools[p].page_size;
            r->num_pages = w->pools[p].num_pages;
            r->mods = mod ? w->mods : plain;
            r->visible_positions = mod ? w->visible_positions : w->sum_lengths;
            r->kv_bytes = mod ? w->kv_bytes_visible : w->kv_bytes;
            r->time = stats_of(s->ragged + (p * npairs + pair) * reps, reps);
            r->kv_gbs = r->kv_bytes / r->time.median * 1e-9;
            r->stream_gbs = stream * 1e-9;
            r->stream_slowest_gbs = slowest * 1e-9;
            r->stream_fastest_gbs = fastest * 1e-9;
            r->stream_passes = reps;
            r->bw_fraction = r->kv_gbs / r->stream_gbs;
            r->flags = bench_classify(r->time.median, r->time.min, slowest, fastest,
                                      r->bw_fraction);
            r->have_ref = have_ref && mod == 0;
            r->ref_time = ref;
            r->speedup = r->have_ref ? ref.median / r->time.median : NAN;
        }
    /* every row is summarized above, before the ratios read the medians of other rows */
    int c = contiguous_layout(w);
    for (int p = 0; p < w->n_pools; p++)
        for (int pair = 0; pair < npairs; pair++) {
            bench_result *r = &out[p * npairs + pair];
            const bench_result *contig = c >= 0 ? &out[c * npairs + pair] : NULL;
            r->vs_contiguous = contig && p != c ? r->time.median / contig->time.median : NAN;
            const bench_result *pl = &out[p * npairs + pair - pair % nm];
            r->plain_time_median = pair % nm ? pl->time.median : NAN;
            r->vs_plain = pair % nm ? r->time.median / pl->time.median : NAN;
        }
}

int bench_measure(const bench_config *cfg, bench_workload *w, const bench_membw *mb, int threads,
                  bench_result *out)
{
    const int nm = n_mods_of(&w->mods), npairs = cfg->n_kernels * nm;
    ra_options *opts[10] = {NULL}; /* [kernel][plain, modified] */
    ra_options *ref_opts = NULL;
    int reps = cfg->reps, rc = -1;
    /* the reference reads views of the contiguous cache, which the workload keeps whenever it
     * runs; quantized K/V have none, since the reference does not take them */
    bool have_ref = cfg->ref_reps > 0 && w->t_kref != NULL;
    const bench_shape *sh = &w->shape;
    size_t keep_floats = (size_t)npairs * (size_t)(sh->B * sh->Hq * (sh->D + 2));
    float *keep = malloc((keep_floats ? keep_floats : 1) * sizeof *keep);
    samples s = {malloc((size_t)reps * sizeof(double)), malloc((size_t)reps * sizeof(double)),
                 malloc((size_t)(reps * w->n_pools * npairs) * sizeof(double))};
    if (!s.stream || !s.ref || !s.ragged || !keep) {
        fprintf(stderr, "raggedattn-bench: error: out of memory for timings\n");
        goto done;
    }
    for (int pair = 0; pair < npairs; pair++)
        if (bench_make_options(cfg, w, threads, cfg->kernels[pair / nm], pair % nm == 1,
                               &opts[pair]))
            goto done;
    /* the reference takes the plain options; its kernel choice does not matter to it */
    if (have_ref && bench_make_options(cfg, w, threads, RA_KERNEL_AUTO, false, &ref_opts))
        goto done;
    if (warm_up(cfg, w, opts, nm, ref_opts, keep, out) ||
        run_rounds(cfg, w, mb, threads, opts, nm, ref_opts, &s))
        goto done;
    summarize(cfg, w, opts, nm, have_ref, &s, out);
    rc = 0;
done:
    for (int pair = 0; pair < npairs; pair++)
        ra_options_destroy(opts[pair]);
    ra_options_destroy(ref_opts);
    free_samples(&s);
    free(keep);
    return rc;
}
