/* fuzz_npz.c - the ZIP reader (lib/io/zip.c) and what import does with a .npz: every member
 * read (inflated, CRC checked) and parsed as .npy, then the archive imported as q, k, v. */
#include <stdlib.h>

#include "core/ab.h"
#include "fuzz.h"
#include "io/npy.h"
#include "io/zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_file(data, size, ".npz");
    struct ab_zip z = {0};
    if (ab_zip_open(&z, path) == AB_OK) {
        ab_zip_find(&z, "q.npy");
        for (int64_t i = 0; i < z.n && i < 16; i++) {
            unsigned char *m = NULL;
            size_t len = 0;
            if (ab_zip_read(&z, i, &m, &len) == AB_OK) {
                struct ab_array a = {0};
                ab_npy_read_mem(m, len, z.e[i].name, AB_DT_BF16, AB_DT_F32, &a);
                ab_array_free(&a);
            }
            free(m);
        }
    }
    ab_zip_close(&z);
    fz_import(path, AB_FMT_NPZ, NULL);
    return 0;
}
