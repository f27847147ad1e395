/* bench.h - the table of `attnbench bench methods` (/bench in B.h5, B.csv): its row, its columns
 * (one description for both formats, io/table.h), reading it back, and its figure, measured time
 * ratio against counted FLOP ratio with y = x. `bench methods` writes and draws it; `report
 * --bench B.h5` draws it again and tabulates it in report.md ("Measured speed"). */
#ifndef AB_REPORT_BENCH_H
#define AB_REPORT_BENCH_H

#include <stdint.h>

#include "io/table.h"

/* One row: a method at one budget and phase on one head. */
struct ab_bench_row {
    char *method, *family, *phase, *kernel, *reason;
    double target_ratio, knob, flop_ratio, kept_share;
    double select_s, select_step_s, token_s, block_s, compact_s, attend_s, time_s, dense_time_s;
    double time_ratio;
    int64_t n, rows;
};

extern const struct ab_column ab_bench_cols[];
extern const int ab_bench_n_cols;

/* Reads the /bench table of path into *rows (*n rows; free with ab_bench_rows_free). AB_E_IO /
 * AB_E_DATA naming the file when it is not a bench table. */
int ab_bench_load(const char *path, struct ab_bench_row **rows, int64_t *n);
void ab_bench_rows_free(struct ab_bench_row *rows, int64_t n);

/* dir/stem.gp and .tsv (and .png when gnuplot, a program path, is not NULL): time_ratio against
 * flop_ratio, log-log, one panel per phase that has timed rows, one style per method across
 * panels, y = x. *drawn: panels drawn (0: no timed row, nothing written). */
int ab_bench_figure(const char *dir, const char *stem, const char *gnuplot,
                    const struct ab_bench_row *rows, int64_t n, int *drawn);

#endif
