/* The llama2.c tokenizer.bin format and its SentencePiece-style BPE encoding. */
#ifndef TS_TOKENIZER_H
#define TS_TOKENIZER_H

#include <stddef.h>

#define TS_TOKEN_BOS 1

struct ts_token_ref {
    const unsigned char *s;
    int len;
    int id;
};

typedef struct ts_tokenizer {
    int vocab_size;
    int max_token_length;
    unsigned char **str; /* str[i]: token i's bytes (NUL-terminated copy) */
    int *len;            /* len[i]: its length in bytes */
    float *score;        /* merge priority: higher merges first */
    struct ts_token_ref *sorted; /* all tokens sorted by bytes, for binary search */
    unsigned char bytes[256];    /* bytes[i] == i: storage for "<0xHH>" pieces */
} ts_tokenizer;

/* Loads the file at path, which must hold exactly vocab_size tokens. Returns 0, or -1 after
 * printing the reason to stderr. */
int ts_tokenizer_load(ts_tokenizer *t, const char *path, int vocab_size);
void ts_tokenizer_free(ts_tokenizer *t);

/* Encodes text: BOS, the dummy-prefix " " token (for non-empty text), one token per UTF-8
 * character (or byte-fallback tokens), then greedy highest-score pair merges. Writes at most
 * strlen(text) + 2 ids to out (a buffer of that size always suffices) and returns the count,
 * or -1 after printing the reason to stderr. */
int ts_encode(const ts_tokenizer *t, const char *text, int *out);

/* The bytes token `token` prints when it follows `prev`: the leading space is dropped after
 * BOS, and "<0xHH>" pieces become that raw byte. Sets *n to the length. */
const unsigned char *ts_decode(const ts_tokenizer *t, int prev, int token, size_t *n);

/* llama2.c's "safe printing": a lone byte that is neither printable ASCII nor whitespace is
 * dropped (it would be a stray part of a multi-byte character or a control code). */
int ts_piece_is_printable(const unsigned char *piece, size_t n);

#endif
