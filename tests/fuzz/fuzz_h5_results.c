/* fuzz_h5_results.c - the results reader (lib/io/results_io.c) over libhdf5, and the cell
 * check `report` runs before it writes anything. libhdf5's own crashes are contained and
 * counted as in fuzz_h5_workload.c. */
#include "core/ab.h"
#include "eval/results.h"
#include "fuzz.h"
#include "io/h5_util.h"
#include "io/results_io.h"

#include <stdio.h>
#include <stdlib.h>

static void report(void)
{
    fprintf(stderr, "fuzz_h5: crashes of libhdf5 contained by the probe: %lld\n",
            (long long)ab_h5_contained());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once++) atexit(report);
    const char *path = fz_file(data, size, ".h5");
    ab_h5_probe_forget();
    struct ab_results r;
    ab_results_init(&r);
    if (ab_results_read_h5(path, &r) == AB_OK) ab_results_check_cells(path, &r);
    ab_results_free(&r);
    return 0;
}
