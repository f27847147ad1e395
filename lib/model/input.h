/* input.h - what a model reads: token sequences built from a text, raw ids or the copy task,
 * and the tokenizer that goes with a model file. `capture` and `eval-model` build their inputs
 * here, so the same options and seed give the same sequence in both (a `heads` table of a
 * captured copy task ranks the heads of the very sequence eval-model scores). */
#ifndef AB_MODEL_INPUT_H
#define AB_MODEL_INPUT_H

#include <stdint.h>

#include "model/model.h"
#include "model/tokenizer.h"

/* The tokenizer of model m: `given` when not NULL (a llama2.c tokenizer file, or a GGUF file's
 * vocabulary, told by its magic); else a GGUF model's own vocabulary; else "tokenizer.bin" or
 * "tok<vocab>.bin" in the model's folder. Its size must match the model's vocabulary
 * (AB_E_DATA). AB_E_NOFILE naming what was looked for when there is none. */
int ab_model_tokenizer_find(const struct ab_model *m, const char *given, struct ab_tokenizer *t);

/* The whole text file at path, NUL-terminated (*text malloc'd). AB_E_NOFILE / AB_E_IO; AB_E_DATA
 * for NUL bytes (not a text) or more than max_bytes bytes. */
int ab_text_read(const char *path, int64_t max_bytes, char **text);

/* "1,403,407" into a malloc'd array (*ids, *n). AB_E_USAGE for a malformed list, AB_E_DATA for
 * a value outside int32 (range against a vocabulary is the model's check). */
int ab_token_ids_parse(const char *s, int32_t **ids, int64_t *n);

/* The retrieval copy task: bos (unless no_bos), R ids uniform over [3, vocab) (ids 0..2 are
 * UNK, BOS and EOS in Llama vocabularies) from the seeded stream, then the same R ids again.
 * *ids malloc'd, *n = (no_bos ? 0 : 1) + 2R. AB_E_DATA when vocab has no id >= 3. */
int ab_copy_task(int64_t r, int64_t vocab, int32_t bos, int no_bos, uint64_t seed, int32_t **ids,
                 int64_t *n);

/* A scored input of eval-model. */
struct ab_model_input {
    int32_t *ids;      /* (n) token ids, BOS first (malloc'd) */
    int64_t n;
    int64_t copy_from; /* copy task: the row where the second copy starts (1 + R); 0 otherwise */
};

void ab_model_input_free(struct ab_model_input *in);

/* The text file at path encoded with BOS. max_tokens <= 0: it must fit the model's context
 * (AB_E_DATA naming the file, its token count and seq_len, otherwise); max_tokens > 0: any
 * length up to max_tokens (a long text for sliding windows, lib/eval/e2e.h). Files larger
 * than AB_TEXT_MAX_BYTES are refused either way. */
#define AB_TEXT_MAX_BYTES ((int64_t)1 << 30)
int ab_model_input_text(const struct ab_model *m, const struct ab_tokenizer *t, const char *path,
                        int64_t max_tokens, struct ab_model_input *in);

/* The copy task with BOS (id 1) and copy_from = 1 + R, as ab_copy_task with this seed (the same
 * sequence `capture --copy-task R --seed S` captures). 2R + 1 must fit the context
 * (AB_E_USAGE otherwise). */
int ab_model_input_copy(const struct ab_model *m, int64_t r, uint64_t seed,
                        struct ab_model_input *in);

#endif
