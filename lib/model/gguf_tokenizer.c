/* gguf_tokenizer.c - the vocabulary of a GGUF file as a tokenizer (gguf.h). Apart from gguf.c so
 * that the GGUF reader and writer link without tokenizer.c; the only glue is here. */
#include "model/gguf.h"

#include "core/ab.h"

int ab_gguf_load_tokenizer(const char *path, struct ab_tokenizer *t)
{
    struct ab_gguf_vocab v;
    int rc = ab_gguf_read_vocab(path, &v);
    if (!rc)
        rc = ab_tokenizer_from_arrays(t, v.n_vocab, (const char *const *)v.piece, v.score, v.bos,
                                      v.eos);
    ab_gguf_vocab_free(&v);
    return rc;
}
