/* fuzz_gguf.c - the GGUF reader (lib/model/gguf.c, gguf_tokenizer.c): the model (header,
 * metadata, tensor table, dequantisation) and the vocabulary, whose tokenizer then encodes and
 * decodes a text. */
#include <stdlib.h>

#include "core/ab.h"
#include "fuzz.h"
#include "model/gguf.h"
#include "model/model.h"
#include "model/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_file(data, size, ".gguf");
    struct ab_model m;
    if (ab_gguf_load_model(path, &m) == AB_OK) ab_model_free(&m);
    struct ab_gguf_vocab v;
    ab_gguf_read_vocab(path, &v);
    ab_gguf_vocab_free(&v);
    struct ab_tokenizer t;
    if (ab_gguf_load_tokenizer(path, &t) == AB_OK) {
        int32_t *ids = NULL;
        int64_t n = 0;
        char *text = NULL;
        if (ab_tokenizer_encode(&t, "Once upon a time, \xc3\xa9t\xc3\xa9 \xf0\x9f\x99\x82", 1, &ids,
                                &n) == AB_OK)
            ab_tokenizer_decode(&t, ids, n, &text);
        free(ids), free(text);
        ab_tokenizer_free(&t);
    }
    return 0;
}
