/* fuzz_tokenizer.c - the llama2.c tokenizer reader (lib/model/tokenizer.c) and the encoder and
 * decoder over what it read. The first two bytes choose the vocabulary size the model would
 * declare (1 .. 1024); the text encoded is the input's own tail, then a fixed one. */
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "fuzz.h"
#include "model/tokenizer.h"

static void round_trip(const struct ab_tokenizer *t, const char *text)
{
    int32_t *ids = NULL;
    int64_t n = 0;
    char *back = NULL;
    if (ab_tokenizer_encode(t, text, 1, &ids, &n) == AB_OK) ab_tokenizer_decode(t, ids, n, &back);
    free(ids), free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int64_t n_vocab = 1 + ((data[0] | data[1] << 8) & 1023);
    const char *path = fz_file(data + 2, size - 2, ".bin");
    struct ab_tokenizer t;
    if (ab_tokenizer_load_llama2c(path, n_vocab, &t) != AB_OK) return 0;
    size_t tail = size - 2 > 64 ? 64 : size - 2;
    char text[65];
    memcpy(text, data + size - tail, tail);
    text[tail] = 0; /* the text stops at its first NUL */
    round_trip(&t, text);
    round_trip(&t, "Lily saw a big dog. \xe2\x96\x81<0x41> \xff\xfe");
    ab_tokenizer_lookup(&t, "<unk>");
    ab_tokenizer_free(&t);
    return 0;
}
