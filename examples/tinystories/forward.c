#include "forward.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ts_state_init(ts_state *s, const ts_config *c, int B, int max_T, int threads)
{
    memset(s, 0, sizeof *s);
    s->rows = B * max_T;
    s->threads = threads;
    const size_t b = (size_t)s->rows;
    s->x = calloc(b * (size_t)c->dim, sizeof(float));
    s->xb = calloc(b * (size_t)c->dim, sizeof(float));
    s->xb2 = calloc(b * (size_t)c->dim, sizeof(float));
    s->hb = calloc(b * (size_t)c->hidden_dim, sizeof(float));
    s->hb2 = calloc(b * (size_t)c->hidden_dim, sizeof(float));
    s->k = calloc(b * (size_t)c->kv_dim, sizeof(float));
    s->v = calloc(b * (size_t)c->kv_dim, sizeof(float));
    s->logits = calloc(b * (size_t)c->vocab_size, sizeof(float));
    s->row = calloc(b, sizeof(int));
    if (!s->x || !s->xb || !s->xb2 || !s->hb || !s->hb2 || !s->k || !s->v || !s->logits ||
        !s->row) {
        fprintf(stderr, "tinystories: out of memory for the activations of %d sequences\n", B);
        ts_state_free(s);
        return -1;
    }
    return 0;
}

void ts_state_free(ts_state *s)
{
    free(s->x);
    free(s->xb);
    free(s->xb2);
    free(s->hb);
    free(s->hb2);
    free(s->k);
    free(s->v);
    free(s->logits);
    free(s->row);
    memset(s, 0, sizeof *s);
}

/* Outputs per task: small enough to stay in L1 and to split a layer among threads. */
#define TS_MM_CHUNK 64

/* out[r, :rows] = W . in[r, :cols] for each listed row r, where wt = W transposed ([cols,
 * rows]). Every output adds its terms in input order from 0.0f, as llama2.c's dot product
 * does, so the result is the same whatever the batch, the tokens run with it or the thread
 * count; the inner loop runs over contiguous outputs and vectorizes without reassociating any
 * sum. */
static void matmul(float *restrict out, const float *restrict wt, const float *restrict in,
                   int rows, int cols, const int *active, int n_active, int threads)
{
    const int chunks = (rows + TS_MM_CHUNK - 1) / TS_MM_CHUNK;
    const int tasks = chunks * n_active;
    const int nt = threads > 0 ? threads : omp_get_max_threads();
    /* below this many multiply-adds a parallel region costs more than it saves */
    const int big = (long)rows * cols * n_active >= 65536;
#pragma omp parallel for num_threads(nt) if (big) schedule(static)
    for (int task = 0; task < tasks; task++) {
        const int b = active[task / chunks];
        const int i0 = (task % chunks) * TS_MM_CHUNK;
        const int n = rows - i0 < TS_MM_CHUNK ? rows - i0 : TS_MM_CHUNK;
        float *restrict o = out + (size_t)b * rows + i0;
        const float *restrict x = in + (size_t)b * cols;
        for (int i = 0; i < n; i++)
            o[i] = 0.0f;
        for (int j = 0; j < cols; j++) {
            const float xj = x[j];
            const float *restrict w = wt + (size_t)j * rows + i0;
            for (int i = 0; i < n; i++)
                o[i] += w[i] * xj;
        }
    }
}

static void rmsnorm(float *out, const float *x, const float *w, int n)
{
    float ss = 0.0f;
    for (int j = 0; j < n; j++)
        ss += x[j] * x[j];
    ss = 1.0f / sqrtf(ss / n + 1e-5f);
    for (int j = 0; j < n; j++)
        out[j] = w[j] * (ss * x[j]);
}

/* Rotates each pair (2i, 2i+1) of every head by pos * 10000^(-2i/head_size). */
static void rope(float *vec, int width, int head_size, int pos)
{
    for (int i = 0; i < width; i += 2) {
        const float freq = 1.0f / powf(10000.0f, (float)(i % head_size) / (float)head_size);
        const float angle = (float)pos * freq;
        const float c = cosf(angle), s = sinf(angle);
        const float a = vec[i], b = vec[i + 1];
        vec[i] = a * c - b * s;
        vec[i + 1] = a * s + b * c;
    }
}

/* Lists the rows of the step's tokens in s->row, sequence by sequence; returns how many. */
static int list_rows(ts_state *s, const ts_step *st)
{
    int n = 0;
    for (int i = 0; i < st->n_active; i++) {
        const int b = st->active[i];
        for (int j = 0; j < st->n[b]; j++)
            s->row[n++] = b * st->T + j;
    }
    return n;
}

int ts_forward(const ts_model *m, ts_state *s, ts_attn *a, const ts_step *st)
{
    const ts_config *c = &m->cfg;
    const ts_weights *w = &m->w;
    const int dim = c->dim, kv = c->kv_dim, hid = c->hidden_dim, nt = s->threads, T = st->T;
    const size_t dd = (size_t)dim * dim, kd = (size_t)kv * dim, hd = (size_t)hid * dim;
    const int n_rows = list_rows(s, st), *rows = s->row;

    for (int i = 0; i < n_rows; i++) {
        const int r = rows[i];
        memcpy(s->x + (size_t)r * dim, w->tok_emb + (size_t)st->token[r] * dim,
               (size_t)dim * sizeof(float));
    }
    for (int l = 0; l < c->n_layers; l++) {
        for (int i = 0; i < n_rows; i++) {
            const int r = rows[i];
            rmsnorm(s->xb + (size_t)r * dim, s->x + (size_t)r * dim, w->rms_att + (size_t)l * dim,
                    dim);
        }
        /* q goes straight into the attention's [B,T,Hq,D] query buffer */
        matmul(a->q, w->wq + l * dd, s->xb, dim, dim, rows, n_rows, nt);
        matmul(s->k, w->wk + l * kd, s->xb, kv, dim, rows, n_rows, nt);
        matmul(s->v, w->wv + l * kd, s->xb, kv, dim, rows, n_rows, nt);
        for (int i = 0; i < n_rows; i++) {
            const int r = rows[i], b = r / T, p = st->pos[b] + r % T;
            rope(a->q + (size_t)r * dim, dim, c->head_size, p);
            rope(s->k + (size_t)r * kv, kv, c->head_size, p);
            if (ts_attn_store(a, l, b, p, s->k + (size_t)r * kv, s->v + (size_t)r * kv))
                return -1;
        }
        if (ts_attn_run(a, l) != 0)
            return -1;
        matmul(s->xb2, w->wo + l * dd, a->out, dim, dim, rows, n_rows, nt);
        for (int i = 0; i < n_rows; i++) {
            const int r = rows[i];
            float *x = s->x + (size_t)r * dim;
            for (int j = 0; j < dim; j++)
                x[j] += s->xb2[(size_t)r * dim + j];
            rmsnorm(s->xb + (size_t)r * dim, x, w->rms_ffn + (size_t)l * dim, dim);
        }
        matmul(s->hb, w->w1 + l * hd, s->xb, hid, dim, rows, n_rows, nt);
        matmul(s->hb2, w->w3 + l * hd, s->xb, hid, dim, rows, n_rows, nt);
        for (int i = 0; i < n_rows; i++) {
            const int r = rows[i];
            float *h1 = s->hb + (size_t)r * hid;
            const float *h3 = s->hb2 + (size_t)r * hid;
            for (int j = 0; j < hid; j++) {
                const float g = h1[j];
                h1[j] = g * (1.0f / (1.0f + expf(-g))) * h3[j]; /* SiLU(w1 x) * (w3 x) */
            }
        }
        matmul(s->xb2, w->w2 + l * hd, s->hb, dim, hid, rows, n_rows, nt);
        for (int i = 0; i < n_rows; i++) {
            const int r = rows[i];
            for (int j = 0; j < dim; j++)
                s->x[(size_t)r * dim + j] += s->xb2[(size_t)r * dim + j];
        }
    }
    for (int i = 0; i < n_rows; i++) {
        const int r = rows[i];
        rmsnorm(s->x + (size_t)r * dim, s->x + (size_t)r * dim, w->rms_final, dim);
    }
    matmul(s->logits, w->wcls, s->x, c->vocab_size, dim, rows, n_rows, nt);
    return 0;
}
