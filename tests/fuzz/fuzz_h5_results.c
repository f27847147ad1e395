/* fuzz_h5_results.c - the results reader (lib/io/results_io.c, and results_heads.c's /heads
 * by column name, and a shard piece's attributes) over libhdf5, and the cell check `report` runs before it writes anything.
 * libhdf5's own crashes are contained and counted as in fuzz_h5_workload.c. */
#include "core/ab.h"
#include "eval/results.h"
#include "fuzz.h"
#include "io/results_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_h5_input();
    const char *path = fz_file(data, size, ".h5");
    struct ab_results r;
    ab_results_init(&r);
    if (ab_results_read_h5(path, &r) == AB_OK && ab_results_check_cells(path, &r) == AB_OK) {
        struct ab_heads_table t; /* then the report's read of /heads, by column name */
        if (ab_results_read_heads(path, NULL, 0, NULL, &t) == AB_OK) ab_heads_table_free(&t);
        struct ab_piece p; /* and merge's read of a shard piece's attributes and /piece */
        int is_piece;
        if (ab_results_read_piece(path, &p, &is_piece) == AB_OK) ab_piece_free(&p);
    }
    ab_results_free(&r);
    return 0;
}
