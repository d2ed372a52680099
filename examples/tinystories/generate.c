#include "generate.h"

#include "forward.h"

#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct ts_seq {
    int *prompt; /* BOS + prompt tokens */
    int n_prompt;
    int start;   /* the batch step at which this sequence joins */
    int pos;     /* the position the next forward computes */
    int token;   /* the token at pos */
    int done;
    unsigned char *text; /* printed bytes not yet written out */
    size_t len, cap;
    int *gen; /* the generated tokens (cfg->steps at most) */
    int n_gen;
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
    }
    free(seqs);
}

static ts_seq *make_seqs(const ts_tokenizer *tok, const ts_run_config *cfg)
{
    ts_seq *seqs = calloc((size_t)cfg->n_prompts, sizeof *seqs);
    if (!seqs) {
        fprintf(stderr, "tinystories: out of memory for %d sequences\n", cfg->n_prompts);
        return NULL;
    }
    for (int b = 0; b < cfg->n_prompts; b++) {
        ts_seq *q = &seqs[b];
        q->prompt = malloc((strlen(cfg->prompts[b]) + 2) * sizeof *q->prompt);
        q->gen = malloc((size_t)cfg->steps * sizeof *q->gen);
        if (!q->prompt || !q->gen) {
            fprintf(stderr, "tinystories: out of memory for prompt %d\n", b);
            free_seqs(seqs, cfg->n_prompts);
            return NULL;
        }
        q->n_prompt = ts_encode(tok, cfg->prompts[b], q->prompt);
        if (q->n_prompt < 1) {
            free_seqs(seqs, cfg->n_prompts);
            return NULL;
        }
        q->start = b * cfg->stagger;
        q->token = q->prompt[0];
    }
    return seqs;
}

/* Consumes the logits of the step that computed q->pos: the next prompt token or the argmax. */
static int advance(const ts_tokenizer *tok, const ts_run_config *cfg, ts_seq *q,
                   const float *logits)
{
    const int prompt = q->pos < q->n_prompt - 1;
    const int next = prompt ? q->prompt[q->pos + 1] : argmax(logits, tok->vocab_size);
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
    q->done = q->pos >= cfg->steps;
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
    free(t->ids);
    free(t->n);
    memset(t, 0, sizeof *t);
}

/* Hands each sequence's generated tokens over to t. */
static int keep_tokens(ts_seq *seqs, int B, ts_tokens *t)
{
    t->B = B;
    t->ids = calloc((size_t)B, sizeof *t->ids);
    t->n = calloc((size_t)B, sizeof *t->n);
    if (!t->ids || !t->n) {
        fprintf(stderr, "tinystories: out of memory for the generated tokens\n");
        ts_tokens_free(t);
        return -1;
    }
    for (int b = 0; b < B; b++) {
        t->ids[b] = seqs[b].gen;
        t->n[b] = seqs[b].n_gen;
        seqs[b].gen = NULL;
    }
    return 0;
}

int ts_pool_pages_needed(const ts_run_config *cfg)
{
    /* The count only drops when a sequence finishes, so its maximum is reached on the last
     * step of some sequence: the step start_e + steps - 1 for some e. */
    const long steps = cfg->steps, ps = cfg->page_size;
    long best = 0;
    for (int e = 0; e < cfg->n_prompts; e++) {
        const long s = (long)e * cfg->stagger + steps - 1;
        long held = 0;
        for (int b = 0; b < cfg->n_prompts; b++) {
            const long start = (long)b * cfg->stagger;
            if (start <= s && s < start + steps)
                held += (s - start + 1 + ps - 1) / ps;
        }
        best = held > best ? held : best;
    }
    return best < INT_MAX ? (int)best : INT_MAX;
}

int ts_generate(const ts_model *m, const ts_tokenizer *tok, const ts_run_config *cfg, FILE *out,
                ts_run_stats *stats, ts_tokens *record)
{
    const int B = cfg->n_prompts;
    memset(stats, 0, sizeof *stats);
    ts_seq *seqs = make_seqs(tok, cfg);
    if (!seqs)
        return -1;
    ts_attn attn;
    ts_state st;
    int *active = calloc((size_t)B, sizeof(int));
    int *token = calloc((size_t)B, sizeof(int));
    int *pos = calloc((size_t)B, sizeof(int));
    if (!active || !token || !pos) {
        fprintf(stderr, "tinystories: out of memory for the batch bookkeeping\n");
        free(active), free(token), free(pos);
        free_seqs(seqs, B);
        return -1;
    }
    const int pool = cfg->layout != TS_LAYOUT_PAGED ? 0
                     : cfg->pool_pages > 0   ? cfg->pool_pages
                                             : ts_pool_pages_needed(cfg);
    if (ts_attn_init(&attn, &m->cfg, B, cfg->layout, cfg->kv_dtype, cfg->threads, cfg->kernel,
                     cfg->check, cfg->page_size, pool)) {
        free(active), free(token), free(pos);
        free_seqs(seqs, B);
        return -1;
    }
    if (ts_state_init(&st, &m->cfg, B, cfg->threads) != 0) {
        ts_attn_free(&attn);
        free(active), free(token), free(pos);
        free_seqs(seqs, B);
        return -1;
    }

    int rc = 0;
    const double t0 = omp_get_wtime();
    for (int step = 0; rc == 0; step++) {
        int n_active = 0, pending = 0;
        for (int b = 0; b < B; b++) {
            if (seqs[b].done)
                continue;
            pending = 1;
            if (step < seqs[b].start)
                continue; /* not arrived yet: an idle slot of length 0 */
            active[n_active++] = b;
            token[b] = seqs[b].token;
            pos[b] = seqs[b].pos;
        }
        if (!pending)
            break;
        if (n_active == 0)
            continue;
        rc = ts_attn_begin_step(&attn, active, n_active, pos, step);
        if (rc == 0)
            rc = ts_forward(m, &st, &attn, active, n_active, token, pos);
        for (int i = 0; i < n_active && rc == 0; i++) {
            const int b = active[i];
            rc = advance(tok, cfg, &seqs[b], st.logits + (size_t)b * tok->vocab_size);
            if (seqs[b].done)
                ts_attn_release(&attn, b); /* its pages serve the sequences that come next */
        }
        if (rc == 0 && B == 1)
            rc = flush_text(&seqs[0], out); /* stream a single sequence */
        stats->positions += n_active;
        stats->batch_steps++;
    }
    stats->seconds = omp_get_wtime() - t0;
    stats->attn_seconds = attn.seconds;
    stats->worst_rel = attn.worst_rel;
    stats->pool_pages = attn.pages.count;
    stats->peak_pages = attn.pages.peak;
    stats->acquired = attn.pages.acquired;
    for (int b = 0; b < B && rc == 0; b++) {
        rc = flush_text(&seqs[b], out);
        if (rc == 0 && out && (fputc('\n', out) == EOF || fflush(out) != 0)) {
            fprintf(stderr, "tinystories: writing the text failed\n");
            rc = -1;
        }
    }
    if (rc == 0 && record)
        rc = keep_tokens(seqs, B, record);
    ts_state_free(&st);
    ts_attn_free(&attn);
    free(active);
    free(token);
    free(pos);
    free_seqs(seqs, B);
    return rc;
}
