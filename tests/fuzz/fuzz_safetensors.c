/* fuzz_safetensors.c - the safetensors reader (lib/io/safetensors.c): the header, every tensor
 * read as floats and as integers, then the file imported as q, k, v with a tokens tensor. */
#include "core/ab.h"
#include "fuzz.h"
#include "io/npy.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_file(data, size, ".safetensors");
    struct ab_safetensors st = {0};
    if (ab_safetensors_open(&st, path) == AB_OK) {
        ab_safetensors_find(&st, "q");
        for (int i = 0; i < st.n && i < 16; i++) {
            struct ab_array a = {0};
            ab_safetensors_read(&st, &st.t[i], i % 2 ? AB_DT_F64 : AB_DT_F32, &a);
            ab_array_free(&a);
            int64_t *x = NULL, n = 0;
            ab_safetensors_read_int(&st, &st.t[i], &x, &n);
            ab_free(x);
        }
    }
    ab_safetensors_close(&st);
    fz_import(path, AB_FMT_SAFETENSORS, "tokens");
    return 0;
}
