/* tokenizer.h - the SentencePiece-style BPE vocabulary of Llama-family models: the llama2.c
 * tokenizer file, or the vocabulary inside a GGUF file (gguf.h fills the same struct).
 *
 * Pieces are stored the llama2.c way: spaces as ' ' (GGUF's U+2581 "▁" is mapped to ' ' on
 * load and back on write), byte-fallback tokens as the literal text "<0xXX>".
 *
 * Encoding (SentencePiece BPE with scores, as llama2.c does it): an optional BOS; a dummy
 * prefix " " when the text is not empty; each UTF-8 code point becomes its piece, or its bytes'
 * <0xXX> tokens when the vocabulary lacks it; then, repeatedly, the adjacent pair whose
 * concatenation is a piece with the highest score is merged (leftmost on ties) until no pair
 * merges. Decoding: a piece is appended as its text, <0xXX> as that byte, and the leading space
 * of the first piece after BOS is dropped.
 *
 * Ownership: the tokenizer owns its pieces, scores and index. */
#ifndef AB_MODEL_TOKENIZER_H
#define AB_MODEL_TOKENIZER_H

#include <stdint.h>

struct ab_tokenizer {
    int64_t n_vocab;
    char **piece;        /* (n_vocab) NUL-terminated UTF-8 (malloc'd each) */
    float *score;        /* (n_vocab) merge priority */
    int32_t bos, eos;    /* 1 and 2 for llama2.c tokenizers; from the GGUF metadata otherwise */
    int32_t max_len;     /* longest piece in bytes */
    int32_t *sorted;     /* (n_vocab) ids sorted by piece, for lookup */
};

/* Reads a llama2.c tokenizer file for a model of n_vocab tokens: int32 max_token_length, then
 * per token float32 score, int32 length, that many bytes. Every length is checked against
 * max_token_length and the file's end. AB_E_NOFILE, AB_E_DATA (naming the file), AB_E_NOMEM. */
int ab_tokenizer_load_llama2c(const char *path, int64_t n_vocab, struct ab_tokenizer *t);

/* Builds a tokenizer from arrays (copied): pieces in llama2.c form, scores, bos, eos. Builds the
 * lookup index. */
int ab_tokenizer_from_arrays(struct ab_tokenizer *t, int64_t n_vocab, const char *const *piece,
                             const float *score, int32_t bos, int32_t eos);

void ab_tokenizer_free(struct ab_tokenizer *t);

/* Id of a piece, or -1. */
int32_t ab_tokenizer_lookup(const struct ab_tokenizer *t, const char *piece);

/* Encodes text (UTF-8, NUL-terminated) as above; bos = 1 prepends BOS. *ids malloc'd, *n its
 * length. */
int ab_tokenizer_encode(const struct ab_tokenizer *t, const char *text, int bos, int32_t **ids,
                        int64_t *n);

/* Decodes ids[0 .. n) to a malloc'd NUL-terminated string (BOS and EOS are not printed).
 * AB_E_DATA for an id out of range. */
int ab_tokenizer_decode(const struct ab_tokenizer *t, const int32_t *ids, int64_t n, char **text);

#endif
