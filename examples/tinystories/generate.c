#include "generate.h"

#include "forward.h"

#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct ts_seq {
    int *prompt; /* BOS + prompt tokens (ts_verify: and the generated tokens) */
    int n_prompt;
    int end;     /* the sequence stops once it has computed this many positions */
    int check_from; /* ts_verify: the prompt tokens from here on are checked against argmax */
    int start;   /* the batch step at which this sequence joins */
    int pos;     /* the position the next forward computes */
    int token;   /* the token at pos */
    int done;
    unsigned char *text; /* printed bytes not yet written out */
    size_t len, cap;
    int *gen; /* the generated tokens (cfg->steps at most) */
    int n_gen;
    float *logits; /* keep_logits: [end][vocab], each position's */
    long checked, bad; /* ts_verify: tokens checked, and how many differ */
    int bad_index, bad_argmax; /* ts_verify: the first that differs (its index in gen) */
} ts_seq;

static int append(ts_seq *q, const unsigned char *p, size_t n)
{
    if (q->len + n > q->cap) {
        size_t cap = q->cap ? q->cap : 256;
        while (cap < q->len + n)
            cap *= 2;
        unsigned char *t = realloc(q->text, cap);
        if (!t) {
            fprintf(stderr, "tinystories: out of memory for the generated text\n");
            return -1;
        }
        q->text = t;
        q->cap = cap;
    }
    memcpy(q->text + q->len, p, n);
    q->len += n;
    return 0;
}

/* The first index of the largest logit, as llama2.c's greedy sampler picks it. */
static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static void free_seqs(ts_seq *seqs, int n)
{
    for (int b = 0; b < n && seqs; b++) {
        free(seqs[b].prompt);
        free(seqs[b].text);
        free(seqs[b].gen);
        free(seqs[b].logits);
    }
    free(seqs);
}

/* Encodes each prompt (extra: room for that many more tokens after it). */
static ts_seq *make_seqs(const ts_tokenizer *tok, const ts_run_config *cfg, const int *extra)
{
    ts_seq *seqs = calloc((size_t)cfg->n_prompts, sizeof *seqs);
    if (!seqs) {
        fprintf(stderr, "tinystories: out of memory for %d sequences\n", cfg->n_prompts);
        return NULL;
    }
    for (int b = 0; b < cfg->n_prompts; b++) {
        ts_seq *q = &seqs[b];
        const size_t room = strlen(cfg->prompts[b]) + 2 + (size_t)(extra ? extra[b] : 0);
        q->prompt = malloc(room * sizeof *q->prompt);
        q->gen = malloc((size_t)cfg->steps * sizeof *q->gen);
        q->logits = cfg->keep_logits ? malloc((size_t)cfg->steps * (size_t)tok->vocab_size *
                                              sizeof(float))
                                     : NULL;
        if (!q->prompt || !q->gen || (cfg->keep_logits && !q->logits)) {
            fprintf(stderr, "tinystories: out of memory for prompt %d\n", b);
            free_seqs(seqs, cfg->n_prompts);
            return NULL;
        }
        q->n_prompt = ts_encode(tok, cfg->prompts[b], q->prompt);
        if (q->n_prompt < 1) {
            free_seqs(seqs, cfg->n_prompts);
            return NULL;
        }
        q->end = cfg->steps;
        q->check_from = INT_MAX;
        q->start = b * cfg->stagger;
        q->token = q->prompt[0];
    }
    return seqs;
}

/* ts_verify: the token a prompt position was given against the model's argmax there. */
static void check_token(ts_seq *q, int given, int best)
{
    q->checked++;
    if (given == best)
        return;
    if (q->bad++ == 0) {
        q->bad_index = q->pos + 1 - q->check_from;
        q->bad_argmax = best;
    }
}

/* Consumes the logits of the forward that computed q->pos: the next prompt token or the
 * argmax. */
static int advance(const ts_tokenizer *tok, ts_seq *q, const float *logits)
{
    const int prompt = q->pos < q->n_prompt - 1;
    const int best = argmax(logits, tok->vocab_size);
    const int next = prompt ? q->prompt[q->pos + 1] : best;
    if (q->logits)
        memcpy(q->logits + (size_t)q->pos * tok->vocab_size, logits,
               (size_t)tok->vocab_size * sizeof(float));
    if (q->pos + 1 >= q->check_from)
        check_token(q, next, best);
    if (!prompt)
        q->gen[q->n_gen++] = next;
    q->pos++;
    if (next == TS_TOKEN_BOS) { /* the model ended the text */
        q->done = 1;
        return 0;
    }
    size_t n;
    const unsigned char *piece = ts_decode(tok, q->token, next, &n);
    if (ts_piece_is_printable(piece, n) && append(q, piece, n) != 0)
        return -1;
    q->token = next;
    q->done = q->pos >= q->end;
    return 0;
}

static int flush_text(ts_seq *q, FILE *out)
{
    if (!out) {
        q->len = 0;
        return 0;
    }
    if (q->len > 0 && fwrite(q->text, 1, q->len, out) != q->len) {
        fprintf(stderr, "tinystories: writing the text failed\n");
        return -1;
    }
    q->len = 0;
    return fflush(out) == 0 ? 0 : -1;
}

void ts_tokens_free(ts_tokens *t)
{
    for (int b = 0; b < t->B && t->ids; b++)
        free(t->ids[b]);
    for (int b = 0; b < t->B && t->logits; b++)
        free(t->logits[b]);
    free(t->ids);
    free(t->n);
    free(t->logits);
    free(t->n_logits);
    memset(t, 0, sizeof *t);
}

/* Hands each sequence's generated tokens over to t. */
static int keep_tokens(ts_seq *seqs, int B, int vocab, ts_tokens *t)
{
    t->B = B;
    t->vocab = vocab;
    t->ids = calloc((size_t)B, sizeof *t->ids);
    t->n = calloc((size_t)B, sizeof *t->n);
    t->logits = calloc((size_t)B, sizeof *t->logits);
    t->n_logits = calloc((size_t)B, sizeof *t->n_logits);
    if (!t->ids || !t->n || !t->logits || !t->n_logits) {
        fprintf(stderr, "tinystories: out of memory for the generated tokens\n");
        ts_tokens_free(t);
        return -1;
    }
    for (int b = 0; b < B; b++) {
        t->ids[b] = seqs[b].gen;
        t->n[b] = seqs[b].n_gen;
        seqs[b].gen = NULL;
        t->logits[b] = seqs[b].logits;
        t->n_logits[b] = seqs[b].logits ? seqs[b].pos : 0;
        seqs[b].logits = NULL;
    }
    return 0;
}

/* How many positions sequence q computes in a step that starts at its position p: with
 * prefill, the rest of its prompt up to cfg->chunk; otherwise one. */
static int step_tokens(const ts_run_config *cfg, const ts_seq *q, int p)
{
    if (!cfg->prefill || p >= q->n_prompt)
        return 1;
    int n = q->n_prompt - p;
    n = cfg->chunk > 0 && cfg->chunk < n ? cfg->chunk : n;
    return q->end - p < n ? q->end - p : n;
}

/* The position sequence q has reached after its first r + 1 steps (at most q->end). */
static long positions_after(const ts_run_config *cfg, const ts_seq *q, long r)
{
    long p = 0;
    for (long i = 0; i <= r && p < q->end; i++)
        p += step_tokens(cfg, q, (int)p);
    return p;
}

/* The steps sequence q takes from joining to finishing if it does not end early. */
static long steps_taken(const ts_run_config *cfg, const ts_seq *q)
{
    long steps = 0;
    for (long p = 0; p < q->end; steps++)
        p += step_tokens(cfg, q, (int)p);
    return steps;
}

/* The most pages the sequences hold at once if none ends early: a sequence holds
 * ceil(n / page_size) pages while it has n positions, from its start step until it finishes,
 * and then frees them all. */
static int pool_pages_needed(const ts_run_config *cfg, const ts_seq *seqs)
{
    /* The count only drops when a sequence finishes, so its maximum is reached on the last
     * step of some sequence. */
    const long ps = cfg->page_size;
    long best = 0;
    for (int e = 0; e < cfg->n_prompts; e++) {
        const long s = seqs[e].start + steps_taken(cfg, &seqs[e]) - 1;
        long held = 0;
        for (int b = 0; b < cfg->n_prompts; b++) {
            const long r = s - seqs[b].start;
            if (r >= 0 && r < steps_taken(cfg, &seqs[b]))
                held += (positions_after(cfg, &seqs[b], r) + ps - 1) / ps;
        }
        best = held > best ? held : best;
    }
    return best < INT_MAX ? (int)best : INT_MAX;
}

/* The most tokens a sequence runs in one step. */
static int max_step_tokens(const ts_run_config *cfg, const ts_seq *seqs)
{
    int T = 1;
    for (int b = 0; b < cfg->n_prompts; b++) {
        const int n = step_tokens(cfg, &seqs[b], 0);
        T = n > T ? n : T;
    }
    return T;
}

/* A step's bookkeeping: the slots that run, their token counts, positions and tokens. */
typedef struct ts_batch {
    ts_step st;
    int *active, *n, *pos, *token;
} ts_batch;

static void batch_free(ts_batch *bt)
{
    free(bt->active), free(bt->n), free(bt->pos), free(bt->token);
}

static int batch_init(ts_batch *bt, int B, int max_T)
{
    bt->active = calloc((size_t)B, sizeof(int));
    bt->n = calloc((size_t)B, sizeof(int));
    bt->pos = calloc((size_t)B, sizeof(int));
    bt->token = calloc((size_t)B * (size_t)max_T, sizeof(int));
    if (!bt->active || !bt->n || !bt->pos || !bt->token) {
        fprintf(stderr, "tinystories: out of memory for the batch bookkeeping\n");
        batch_free(bt);
        return -1;
    }
    ts_step st = {1, 0, bt->active, 0, bt->n, bt->pos, bt->token};
    bt->st = st;
    return 0;
}

/* Fills bt with the sequences that run at step `step`; returns 0 when every sequence is done,
 * 1 otherwise (possibly with none active: all pending ones join later). A sequence in its
 * prompt makes the step a multi one (with prefill), T its most tokens. */
static int batch_plan(ts_batch *bt, const ts_run_config *cfg, const ts_seq *seqs, int step)
{
    int pending = 0;
    ts_step *st = &bt->st;
    st->n_active = 0;
    st->T = 1;
    st->multi = 0;
    for (int b = 0; b < cfg->n_prompts; b++) {
        const ts_seq *q = &seqs[b];
        if (q->done)
            continue;
        pending = 1;
        if (step < q->start)
            continue; /* not arrived yet: an idle slot of length 0 */
        bt->active[st->n_active++] = b;
        bt->pos[b] = q->pos;
        bt->n[b] = step_tokens(cfg, q, q->pos);
        st->T = bt->n[b] > st->T ? bt->n[b] : st->T;
        st->multi |= cfg->prefill && q->pos < q->n_prompt;
    }
    for (int i = 0; i < st->n_active; i++) {
        const int b = bt->active[i];
        const ts_seq *q = &seqs[b];
        for (int j = 0; j < bt->n[b]; j++) /* in a prompt: its tokens; else the last token */
            bt->token[b * st->T + j] = q->pos + j < q->n_prompt ? q->prompt[q->pos + j] : q->token;
    }
    return pending;
}

/* Runs the sequences to the end through one forward per step, printing to out (NULL: nothing)
 * and filling stats. */
static int run_seqs(const ts_model *m, const ts_tokenizer *tok, const ts_run_config *cfg,
                    ts_seq *seqs, FILE *out, ts_run_stats *stats)
{
    const int B = cfg->n_prompts, max_T = max_step_tokens(cfg, seqs);
    memset(stats, 0, sizeof *stats);
    ts_attn attn;
    ts_state st;
    ts_batch bt;
    if (batch_init(&bt, B, max_T) != 0)
        return -1;
    const int pool = cfg->layout != TS_LAYOUT_PAGED ? 0
                     : cfg->pool_pages > 0   ? cfg->pool_pages
                                             : pool_pages_needed(cfg, seqs);
    if (ts_attn_init(&attn, &m->cfg, B, max_T, cfg->layout, cfg->kv_dtype, cfg->threads,
                     cfg->kernel, cfg->check, cfg->page_size, pool)) {
        batch_free(&bt);
        return -1;
    }
    if (ts_state_init(&st, &m->cfg, B, max_T, cfg->threads) != 0) {
        ts_attn_free(&attn);
        batch_free(&bt);
        return -1;
    }

    int rc = 0;
    const double t0 = omp_get_wtime();
    for (int step = 0; rc == 0 && batch_plan(&bt, cfg, seqs, step); step++) {
        if (bt.st.n_active == 0)
            continue;
        const double s0 = omp_get_wtime();
        long prompt = 0;
        rc = ts_attn_begin_step(&attn, &bt.st, step);
        if (rc == 0)
            rc = ts_forward(m, &st, &attn, &bt.st);
        for (int i = 0; i < bt.st.n_active && rc == 0; i++) {
            const int b = bt.active[i];
            for (int j = 0; j < bt.n[b] && rc == 0; j++) {
                prompt += seqs[b].pos < seqs[b].n_prompt;
                rc = advance(tok, &seqs[b],
                             st.logits + (size_t)(b * bt.st.T + j) * tok->vocab_size);
            }
            if (seqs[b].done)
                ts_attn_release(&attn, b); /* its pages serve the sequences that come next */
            stats->positions += bt.n[b];
        }
        if (prompt > 0) {
            stats->prompt_positions += prompt;
            stats->prompt_seconds += omp_get_wtime() - s0;
        }
        if (rc == 0 && B == 1)
            rc = flush_text(&seqs[0], out); /* stream a single sequence */
        stats->batch_steps++;
    }
    stats->seconds = omp_get_wtime() - t0;
    stats->attn_seconds = attn.seconds;
    stats->worst_rel = attn.worst_rel;
    stats->pool_pages = attn.pages.count;
    stats->peak_pages = attn.pages.peak;
    stats->acquired = attn.pages.acquired;
    ts_state_free(&st);
    ts_attn_free(&attn);
    batch_free(&bt);
    return rc;
}

int ts_generate(const ts_model *m, const ts_tokenizer *tok, const ts_run_config *cfg, FILE *out,
                ts_run_stats *stats, ts_tokens *record)
{
    const int B = cfg->n_prompts;
    ts_seq *seqs = make_seqs(tok, cfg, NULL);
    if (!seqs)
        return -1;
    int rc = run_seqs(m, tok, cfg, seqs, out, stats);
    for (int b = 0; b < B && rc == 0; b++) {
        rc = flush_text(&seqs[b], out);
        if (rc == 0 && out && (fputc('\n', out) == EOF || fflush(out) != 0)) {
            fprintf(stderr, "tinystories: writing the text failed\n");
            rc = -1;
        }
    }
    if (rc == 0 && record)
        rc = keep_tokens(seqs, B, tok->vocab_size, record);
    free_seqs(seqs, B);
    return rc;
}

int ts_verify(const ts_model *m, const ts_tokenizer *tok, const ts_run_config *cfg,
              const ts_tokens *gen, int k, ts_run_stats *stats)
{
    /* the prompts again, all from step 0, with the generated tokens appended as more prompt:
     * a prefill in chunks of k that checks the argmax wherever a generated token follows */
    ts_run_config v = *cfg;
    v.stagger = 0;
    v.prefill = 1;
    v.chunk = k;
    v.pool_pages = 0;
    v.keep_logits = 0;
    ts_seq *seqs = make_seqs(tok, &v, gen->n);
    if (!seqs)
        return -1;
    for (int b = 0; b < v.n_prompts; b++) {
        ts_seq *q = &seqs[b];
        q->check_from = q->n_prompt;
        memcpy(q->prompt + q->n_prompt, gen->ids[b], (size_t)gen->n[b] * sizeof(int));
        q->n_prompt += gen->n[b];
        q->end = q->n_prompt - 1; /* the last generated token is only checked, not run */
        q->done = gen->n[b] == 0;
    }
    int rc = run_seqs(m, tok, &v, seqs, NULL, stats);
    for (int b = 0; b < v.n_prompts && rc == 0; b++) {
        const ts_seq *q = &seqs[b];
        stats->verified += q->checked;
        stats->mismatched += q->bad;
        if (q->bad > 0 && stats->mismatched == q->bad) {
            stats->bad_seq = b;
            stats->bad_index = q->bad_index;
            stats->bad_token = gen->ids[b][q->bad_index];
            stats->bad_argmax = q->bad_argmax;
        }
    }
    free_seqs(seqs, v.n_prompts);
    return rc;
}
