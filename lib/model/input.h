/* input.h - what a model reads: token sequences built from a text, a copy task or raw ids, and
 * the tokenizer that goes with a model file. `capture` and `eval-model` build their inputs here,
 * so both read a text and draw a copy task the same way. */
#ifndef AB_MODEL_INPUT_H
#define AB_MODEL_INPUT_H

#include <stdint.h>

#include "model/model.h"
#include "model/tokenizer.h"

struct ab_model_input {
    int32_t *ids;      /* (n) token ids, BOS first (malloc'd) */
    int64_t n;
    int64_t copy_from; /* copy task: the row where the second copy starts (1 + R); 0 otherwise */
};

void ab_model_input_free(struct ab_model_input *in);

/* The tokenizer of model m: tok_path when given (a llama2.c tokenizer file); else a GGUF
 * model's own vocabulary; else "tokenizer.bin" or "tok<vocab>.bin" in the model's folder.
 * Its size must match the model's vocabulary. AB_E_USAGE when none is found (naming what was
 * tried), or the loader's error. */
int ab_model_input_tokenizer(const struct ab_model *m, const char *tok_path,
                             struct ab_tokenizer *t);

/* Reads the text file at path (at most 16 MiB, no NUL bytes) and encodes it with BOS. The
 * sequence must fit the model's context (AB_E_DATA naming the file, its token count and
 * seq_len, otherwise). */
int ab_model_input_text(const struct ab_model *m, const struct ab_tokenizer *t, const char *path,
                        struct ab_model_input *in);

/* Encodes text (a string) with BOS, same checks; `what` names it in errors. */
int ab_model_input_string(const struct ab_model *m, const struct ab_tokenizer *t,
                          const char *text, const char *what, struct ab_model_input *in);

/* The copy task: BOS, then R ids drawn uniformly from [3, vocab) (ids 0..2 are UNK, BOS, EOS in
 * Llama vocabularies) with the given seed, then the same R ids again; copy_from = 1 + R. 2R + 1
 * must fit the context (AB_E_USAGE otherwise). */
int ab_model_input_copy(const struct ab_model *m, int64_t r, uint64_t seed,
                        struct ab_model_input *in);

/* Raw ids from a comma list ("1,403,407"), each in [0, vocab). */
int ab_model_input_ids(const struct ab_model *m, const char *list, struct ab_model_input *in);

#endif
