/* fuzz_npy.c - the .npy reader (lib/io/npy.c): from memory (a .npz member) with the bfloat16
 * hint, from a file without it, and the format sniffer. */
#include "fuzz.h"
#include "io/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ab_array a = {0};
    ab_npy_read_mem(data, size, "fuzz.npy", AB_DT_BF16, AB_DT_F32, &a);
    ab_array_free(&a);
    const char *path = fz_file(data, size, ".npy");
    int format;
    ab_array_sniff(path, &format);
    ab_npy_read_hint(path, 0, AB_DT_F64, &a);
    ab_array_free(&a);
    return 0;
}
