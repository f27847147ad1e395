/* fuzz_h5_workload.c - the workload reader (lib/io/h5_workload.c) over libhdf5: the metadata,
 * one head, the whole file, and the HDF5 array reader of import. libhdf5 1.10 itself crashes on
 * some damaged files; the readers contain that (ab_h5_open's probe in a child process, then a
 * crash guard), so a crash inside the library shows here as an AB_E_DATA return, counted by
 * ab_h5_contained(), and the harness fails only on a crash the containment missed or one in
 * our own code. */
#include "core/ab.h"
#include "core/workload.h"
#include "fuzz.h"
#include "io/h5_workload.h"
#include "io/npy.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_h5_input();
    const char *path = fz_file(data, size, ".h5");
    struct ab_workload meta = {0}, w = {0};
    if (ab_h5_workload_read_meta(path, &meta) == AB_OK) {
        float *q = NULL, *k = NULL, *v = NULL;
        if (ab_h5_workload_read_head(path, &meta, meta.n_layer - 1, meta.n_head - 1, &q, &k,
                                     &v) == AB_OK)
            ab_h5_workload_read(path, &w);
        ab_free(q), ab_free(k), ab_free(v);
    }
    ab_workload_free(&meta), ab_workload_free(&w);
    struct ab_array a = {0};
    ab_h5_array_read(path, NULL, 0, AB_DT_F32, &a);
    ab_array_free(&a);
    return 0;
}
