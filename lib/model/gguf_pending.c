/* gguf_pending.c - replaced when the GGUF reader merges: placeholders for ab_gguf_load_model and
 * ab_gguf_load_tokenizer (gguf.h) so this branch links before it, each refusing the file with
 * a one-line AB_E_DATA error. */
#include "core/ab.h"
#include "model/gguf.h"

int ab_gguf_load_model(const char *path, struct ab_model *m)
{
    (void)m;
    return ab_fail(AB_E_DATA, "'%s': GGUF support is not in this build", path);
}

int ab_gguf_load_tokenizer(const char *path, struct ab_tokenizer *t)
{
    (void)t;
    return ab_fail(AB_E_DATA, "'%s': GGUF support is not in this build", path);
}
