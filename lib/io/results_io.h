/* results_io.h - the results file (outputs.md, "Results file"): struct ab_results written as
 * HDF5 and read back, a /heads table read by column name (results_heads.c), the column tables
 * shared with the CSV writer, and the SHA-256 of input files recorded with the results. No HDF5
 * types here: cmd/ includes this header.
 *
 * Layout (schema "attnbench/results/1"):
 *   /           attributes: schema, attnbench_version, created_utc, command_line, workloads
 *               (1-D string array), workload_sha256 (1-D string array, same length), scenario
 *               (only when there is one), seed (uint64), threads (int32), openblas_config,
 *               hostname, notes, options (JSON), external (JSON, `ingest` only); strings
 *               variable-length UTF-8
 *   /cells/     row (int64 dimension scale 0..n-1) and one dataset per field of struct ab_cell,
 *               named as the field, attached to "row", with attributes units and long_name
 *   /summary/   the same for struct ab_summary_row
 *   /heads/     the same for struct ab_head_row, only when n_heads > 0 (`attnbench heads`)
 *   /model/     the same for struct ab_model_row, only when n_model > 0 (`attnbench eval-model`)
 *   /layers/    the same for struct ab_layer_row, only when n_layers > 0 (`attnbench heads` on
 *               workloads with hidden states)
 * No object time stamps, written to PATH.tmp and renamed: the same results give the same
 * bytes (set created_utc, hostname, attnbench_version and openblas_config to pin them). */
#ifndef AB_IO_RESULTS_IO_H
#define AB_IO_RESULTS_IO_H

#include "eval/results.h"
#include "io/table.h"

/* The columns of /cells (every field of struct ab_cell, in declaration order) and of /summary
 * (every field of struct ab_summary_row, likewise), with units and long names: the key columns
 * of results_io.c merged with the rows of the metric table (eval/metric.h) and their summary
 * columns, assembled once on the first call (thread-safe). *n receives the count. Static
 * tables: never freed. */
const struct ab_column *ab_results_cell_columns(int *n);
const struct ab_column *ab_results_summary_columns(int *n);
const struct ab_column *ab_results_head_columns(int *n); /* /heads: struct ab_head_row */
const struct ab_column *ab_results_model_columns(int *n); /* /model: struct ab_model_row */
const struct ab_column *ab_results_layer_columns(int *n); /* /layers: struct ab_layer_row */

/* Frees r->heads and its strings and sets n_heads to 0. ab_results_free does not free the heads
 * table (it predates it): call this first on results that may hold one (read_h5 fills it when
 * the file has /heads). */

/* Writes r to path as above. created_utc, hostname, attnbench_version and openblas_config
 * default to now (UTC), this machine, ab_version() and ab_blas_config() when NULL; notes and
 * command_line to "". Writes r->summary as it stands (call ab_results_summarise first). Zero
 * cells write a valid file with empty tables. AB_OK, or AB_E_CREATE / AB_E_IO / AB_E_NOMEM
 * with a one-line message naming the file; on failure nothing is left at path or path.tmp. */
int ab_results_write_h5(const char *path, const struct ab_results *r);

/* A shard piece (`run --shard I/N`, README "Long sweeps"): a results file whose cells are
 * those of its units only, with root attributes shard_index (I, 1-based), shard_count (N),
 * units_total (units of the whole run) and run_digest (64 hex digits, lib/run/shard.h), and the
 * table /piece with one int64 column `unit`: the piece's units, ascending, in the run's unit
 * numbering (workload, layer, head). Every other reader ignores /piece. */
struct ab_piece {
    int64_t index, count, units_total;
    char digest[65];
    int64_t *units; /* (n_units) */
    int64_t n_units;
};

/* Writes r as ab_results_write_h5 does, plus the piece's attributes and /piece. */
int ab_results_write_piece(const char *path, const struct ab_results *r,
                           const struct ab_piece *piece);

/* Reads the piece attributes of a results file: *is_piece = 0 (and p empty) when it has none.
 * AB_OK; AB_E_NOFILE; AB_E_DATA for a file that is not HDF5 or damaged piece attributes;
 * AB_E_NOMEM. Free with ab_piece_free. */
int ab_results_read_piece(const char *path, struct ab_piece *p, int *is_piece);
void ab_piece_free(struct ab_piece *p);

/* Refuses cells no writer produces, before a report lays out figures by them (AB_E_DATA naming
 * path and the row): layer, head and kv head in [0, 2^24), n in [0, 2^31) (0: unrecorded),
 * target NaN (a direct knob) or in (0, 1], flop ratios NaN (infeasible) or finite and >= 0.
 * The reader itself keeps any value, so files round-trip exactly. */
int ab_results_check_cells(const char *path, const struct ab_results *r);

/* Reads a results file into out (initialised here; the caller frees it with ab_results_free,
 * also after a failure). Checks the schema attribute, that every column of both tables is
 * present, 1-D, of the right class (string / float / integer) and of one common length, and
 * that feasible is 0 or 1. AB_E_NOFILE when path does not exist; AB_E_DATA (not HDF5, wrong
 * schema, missing or malformed column, lengths that disagree); AB_E_TOOBIG; AB_E_NOMEM.
 * /heads is optional: read into r->heads when it has every column of ab_results_head_columns
 * (ab_results_free frees it); a /heads table with fewer columns is skipped. /model and /layers
 * are optional too, but when present every column is required (AB_E_DATA otherwise); /layers
 * rows with negative indices or counts are rejected. */
int ab_results_read_h5(const char *path, struct ab_results *out);

/* A /heads table read by column name (ab_results_read_heads): the rows' workload, layer and
 * head, and numeric columns as doubles. Every array is malloc'd; ab_heads_table_free frees
 * them and zeroes the table. */
struct ab_heads_table {
    int64_t n;             /* rows */
    char **workload;       /* (n) */
    int64_t *layer, *head; /* (n) */
    int n_cols;
    char **col_name;       /* (n_cols) */
    double **col;          /* (n_cols) arrays of n values */
};
void ab_heads_table_free(struct ab_heads_table *t);

/* Reads the /heads table of path by column name, whatever columns it holds (where
 * ab_results_read_h5 wants every column of struct ab_head_row). names NULL: every numeric
 * column of the table (float ones, and integer ones such as sec_pos1 and the `row` scale as
 * doubles; layer and head are out->layer and out->head), in name order; else the columns names[0..n_names), in that
 * order, a column the table lacks (or that is not a numeric 1-D column of n values) as NaN.
 * A table of no rows has no columns. workload is the table's string column of that name, else
 * default_workload ("" when NULL) on every row. A file without /heads gives n = 0. AB_OK,
 * AB_E_NOFILE, AB_E_DATA (not HDF5; layer or head missing, not integers, or of different
 * lengths; a column that cannot be read), AB_E_NOMEM; out is empty after a failure. */
int ab_results_read_heads(const char *path, const char *const *names, int n_names,
                          const char *default_workload, struct ab_heads_table *out);

/* The SHA-256 of the bytes of the file at path as 64 lowercase hex digits (hex[0] = '\0' on
 * failure). AB_E_NOFILE (missing), AB_E_DATA (a directory), AB_E_IO (unreadable). */
int ab_results_sha256_file(const char *path, char hex[65]);

/* Fills r's provenance attributes: command_line ("attnbench" and argv joined by spaces), the
 * workload paths with their sha256, seed, and the thread count. AB_OK, AB_E_NOMEM, or the error
 * of hashing a workload (AB_E_NOFILE, AB_E_IO); the caller frees r as usual either way. */
int ab_results_provenance(struct ab_results *r, int argc, char *const *argv,
                          char *const *paths, int n, uint64_t seed);
/* The same with the command line given whole (a command called as a library, whose line is
 * rendered from its options: ab_decl_command). */
int ab_results_provenance_line(struct ab_results *r, const char *command_line,
                               const char *const *paths, int n, uint64_t seed);

#endif
