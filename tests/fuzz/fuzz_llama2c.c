/* fuzz_llama2c.c - the llama2.c checkpoint reader (lib/model/llama2c.c) and the format
 * dispatch of ab_model_load. */
#include "core/ab.h"
#include "fuzz.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_file(data, size, ".bin");
    struct ab_model m;
    if (ab_model_load_llama2c(path, &m) == AB_OK) ab_model_free(&m);
    if (ab_model_load(path, &m) == AB_OK) ab_model_free(&m);
    return 0;
}
