/* csv.h - tables as CSV (outputs.md: "every table is also written as CSV next to it"): the
 * same column description as the HDF5 tables (io/table.h), so both formats carry the same
 * columns in the same order.
 *
 * Format: a header row of column names, then one line per row, fields separated by ',' and
 * lines ended by '\n' (LF, not RFC 4180's CRLF). Strings are written as they are, or quoted
 * with '"' (inner quotes doubled, RFC 4180) when they contain a comma, a quote, CR or LF; NULL
 * strings are empty fields. Integers in decimal. Doubles in the shortest of %.15g / %.16g /
 * %.17g that reads back to the same double, always with '.' as the decimal point whatever the
 * locale; NaN is written "nan" (any sign or payload), infinities "inf" and "-inf" (what
 * strtod, pandas and numpy read back). Files go to PATH.tmp and are renamed when complete;
 * the same table gives the same bytes. */
#ifndef AB_IO_CSV_H
#define AB_IO_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "eval/results.h"
#include "io/table.h"

/* Bytes ab_csv_format_f64 may write, NUL included. */
#define AB_CSV_F64_MAX 32

/* Formats x as described above into buf (at least AB_CSV_F64_MAX bytes). */
void ab_csv_format_f64(double x, char *buf);

/* Writes rows[0..n_rows) (each row_size bytes) as the columns cols[0..n_cols) to path.
 * AB_OK; AB_E_CREATE (cannot create path.tmp or rename it), AB_E_IO (a write failed) or
 * AB_E_NOMEM, with a one-line message naming path; on failure path.tmp is removed and an
 * existing path is left as it was. */
int ab_csv_write_table(const char *path, const void *rows, int64_t n_rows, size_t row_size,
                       const struct ab_column *cols, int n_cols);

/* Writes the /cells table of r to cells_path and the /summary table to summary_path (either
 * may be NULL to skip it), with the columns of results_io.h. Both or neither: when the second
 * fails the first is taken back (a unit of outputs, core/ab.h), a file it replaced restored.
 * Errors as ab_csv_write_table. */
int ab_results_write_csv(const char *cells_path, const char *summary_path,
                         const struct ab_results *r);

/* Writes the /heads table of r (columns of ab_results_head_columns) to path, e.g.
 * RESULTS-heads.csv. Errors as ab_csv_write_table. */
int ab_results_write_heads_csv(const char *path, const struct ab_results *r);

/* Writes the /layers table of r (columns of ab_results_layer_columns) to path, e.g.
 * RESULTS-layers.csv. Errors as ab_csv_write_table. */
int ab_results_write_layers_csv(const char *path, const struct ab_results *r);

/* Writes the /model table of r (columns of ab_results_model_columns) to path, e.g.
 * RESULTS-model.csv. Errors as ab_csv_write_table. */
int ab_results_write_model_csv(const char *path, const struct ab_results *r);

#endif
