#include "tokenizer.h"

#include "fileio.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ref_cmp(const void *a, const void *b)
{
    const struct ts_token_ref *x = a, *y = b;
    int n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, (size_t)n);
    if (c != 0)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* The id of the token whose bytes are exactly s[0..n), or -1. */
static int lookup(const ts_tokenizer *t, const unsigned char *s, int n)
{
    struct ts_token_ref key = {s, n, -1};
    const struct ts_token_ref *hit =
        bsearch(&key, t->sorted, (size_t)t->vocab_size, sizeof key, ref_cmp);
    return hit ? hit->id : -1;
}

static int load_fail(ts_tokenizer *t, unsigned char *raw, const char *path, const char *why,
                     long at)
{
    fprintf(stderr, "tinystories: tokenizer '%s': %s (at byte %ld)\n", path, why, at);
    free(raw);
    ts_tokenizer_free(t);
    return -1;
}

int ts_tokenizer_load(ts_tokenizer *t, const char *path, int vocab_size)
{
    memset(t, 0, sizeof *t);
    unsigned char *raw;
    size_t size;
    if (ts_read_file(path, "tokenizer", &raw, &size) != 0)
        return -1;
    size_t at = 0;
    int32_t max_len;
    if (size < sizeof max_len)
        return load_fail(t, raw, path, "file too short for max_token_length", 0);
    memcpy(&max_len, raw, sizeof max_len);
    at += sizeof max_len;
    if (max_len < 1 || max_len > (1 << 16))
        return load_fail(t, raw, path, "max_token_length out of range", 0);

    t->vocab_size = vocab_size;
    t->max_token_length = max_len;
    t->str = calloc((size_t)vocab_size, sizeof *t->str);
    t->len = calloc((size_t)vocab_size, sizeof *t->len);
    t->score = calloc((size_t)vocab_size, sizeof *t->score);
    t->sorted = calloc((size_t)vocab_size, sizeof *t->sorted);
    if (!t->str || !t->len || !t->score || !t->sorted)
        return load_fail(t, raw, path, "out of memory", 0);
    for (int i = 0; i < vocab_size; i++) {
        int32_t n;
        if (size - at < sizeof(float) + sizeof n)
            return load_fail(t, raw, path, "ends before all vocab_size tokens were read",
                             (long)at);
        memcpy(&t->score[i], raw + at, sizeof(float));
        memcpy(&n, raw + at + sizeof(float), sizeof n);
        at += sizeof(float) + sizeof n;
        if (n < 0 || n > max_len || (size_t)n > size - at)
            return load_fail(t, raw, path, "token length out of range", (long)at);
        t->str[i] = malloc((size_t)n + 1);
        if (!t->str[i])
            return load_fail(t, raw, path, "out of memory", (long)at);
        memcpy(t->str[i], raw + at, (size_t)n);
        t->str[i][n] = '\0';
        t->len[i] = n;
        at += (size_t)n;
        t->sorted[i] = (struct ts_token_ref){t->str[i], n, i};
    }
    if (at != size)
        return load_fail(t, raw, path,
                         "extra bytes after vocab_size tokens (does it match the model?)",
                         (long)at);
    free(raw);
    qsort(t->sorted, (size_t)vocab_size, sizeof *t->sorted, ref_cmp);
    for (int i = 0; i < 256; i++)
        t->bytes[i] = (unsigned char)i;
    return 0;
}

void ts_tokenizer_free(ts_tokenizer *t)
{
    if (t->str)
        for (int i = 0; i < t->vocab_size; i++)
            free(t->str[i]);
    free(t->str);
    free(t->len);
    free(t->score);
    free(t->sorted);
    memset(t, 0, sizeof *t);
}

/* Merges the adjacent pair whose concatenation is the highest-scoring token (the first such
 * pair on ties) until no pair forms a token. Returns the new count, or -1 on out of memory. */
static int merge_pairs(const ts_tokenizer *t, int *ids, int n)
{
    unsigned char *buf = malloc(2 * (size_t)t->max_token_length);
    if (!buf)
        return -1;
    for (;;) {
        int best_at = -1, best_id = -1;
        float best_score = 0.0f;
        for (int i = 0; i + 1 < n; i++) {
            int a = ids[i], b = ids[i + 1];
            memcpy(buf, t->str[a], (size_t)t->len[a]);
            memcpy(buf + t->len[a], t->str[b], (size_t)t->len[b]);
            int id = lookup(t, buf, t->len[a] + t->len[b]);
            if (id >= 0 && (best_at < 0 || t->score[id] > best_score)) {
                best_at = i;
                best_id = id;
                best_score = t->score[id];
            }
        }
        if (best_at < 0)
            break;
        ids[best_at] = best_id;
        memmove(&ids[best_at + 1], &ids[best_at + 2], (size_t)(n - best_at - 2) * sizeof *ids);
        n--;
    }
    free(buf);
    return n;
}

int ts_encode(const ts_tokenizer *t, const char *text, int *out)
{
    const unsigned char *s = (const unsigned char *)text;
    int n = 0;
    out[n++] = TS_TOKEN_BOS;
    if (s[0] != '\0') {
        int space = lookup(t, (const unsigned char *)" ", 1);
        if (space < 0) {
            fprintf(stderr, "tinystories: the tokenizer has no \" \" token for the dummy prefix\n");
            return -1;
        }
        out[n++] = space;
    }
    size_t i = 0;
    while (s[i] != '\0') {
        /* one UTF-8 character: a lead byte plus up to three continuation bytes 10xxxxxx */
        size_t c = 1;
        while (c < 4 && (s[i + c] & 0xC0) == 0x80)
            c++;
        int id = lookup(t, s + i, (int)c);
        if (id >= 0) {
            out[n++] = id;
        } else {
            for (size_t k = 0; k < c; k++) /* byte fallback: <0x00> is token 3 */
                out[n++] = s[i + k] + 3;
        }
        i += c;
    }
    n = merge_pairs(t, out, n);
    if (n < 0)
        fprintf(stderr, "tinystories: out of memory while encoding the prompt\n");
    return n;
}

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

const unsigned char *ts_decode(const ts_tokenizer *t, int prev, int token, size_t *n)
{
    const unsigned char *p = t->str[token];
    size_t len = (size_t)t->len[token];
    if (prev == TS_TOKEN_BOS && len > 0 && p[0] == ' ') {
        p++;
        len--;
    }
    if (len == 6 && memcmp(p, "<0x", 3) == 0 && p[5] == '>') {
        int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
        if (hi >= 0 && lo >= 0) {
            *n = 1;
            return &t->bytes[hi * 16 + lo];
        }
    }
    *n = len;
    return p;
}

int ts_piece_is_printable(const unsigned char *piece, size_t n)
{
    if (n != 1)
        return n > 0;
    unsigned char b = piece[0];
    /* isprint/isspace of the "C" locale, spelled out so the locale cannot change it */
    return (b >= 0x20 && b < 0x7F) || b == '\t' || b == '\n' || b == '\v' || b == '\f' ||
           b == '\r';
}
