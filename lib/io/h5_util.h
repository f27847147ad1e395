/* h5_util.h - HDF5 plumbing shared by the workload and results files (lib/io only: this header
 * includes hdf5.h, which nothing outside lib/io may see).
 *
 * It carries the rules of outputs.md once, so each file format only says what goes where:
 * HDF5's own error printing off and one-line errors naming the file, the object and HDF5's
 * innermost reason; the numbered API; the HDF5 1.8 file format or later (checksummed metadata,
 * so damage is mostly caught by HDF5); no object time stamps (same content, same bytes);
 * variable-length UTF-8 strings; dimension scales naming every axis; chunked datasets with
 * shuffle + deflate; writing to NAME.tmp and renaming on success, removing the temporary file
 * on any failure; reading with checks (file present, HDF5 signature, ranks, classes) before
 * anything is read in bulk.
 *
 * Objects are named by absolute paths ("/q", "/truth/tasks/kind"); attributes by the path of
 * the object that holds them and their own name. Every function returns AB_OK or a negative
 * AB_E* code with ab_fail's message set. */
#ifndef AB_IO_H5_UTIL_H
#define AB_IO_H5_UTIL_H

#include <stdint.h>

#include <hdf5.h>

#include "io/table.h"

/* An open file: the HDF5 id, the path the user named (for messages), and while writing the
 * temporary path that becomes `path` on commit. */
struct ab_h5 {
    hid_t id;
    const char *path;
    char *tmp; /* malloc'd "path.tmp" while writing, NULL when reading */
};

/* Turns off HDF5's automatic error printing (idempotent; every entry point calls it). */
void ab_h5_quiet(void);

/* Records "'path': <fmt>" followed by ": <HDF5's innermost reason>" when HDF5 left one on its
 * error stack (which it then clears), and returns code. */
int ab_h5_fail(int code, const struct ab_h5 *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Creates path.tmp for writing (truncating a stale one). f->id is valid on success; the caller
 * ends with ab_h5_commit or ab_h5_abort. AB_E_CREATE (with the system's reason), AB_E_IO (its
 * first bytes cannot be written: a full disk) or AB_E_NOMEM. */
int ab_h5_create(struct ab_h5 *f, const char *path);

/* Flushes and closes the file (closing any object still open in it) and renames path.tmp to
 * path. On failure the temporary file is removed and nothing is left at path. AB_E_IO (flush,
 * close) or AB_E_CREATE (rename). */
int ab_h5_commit(struct ab_h5 *f);

/* Closes the file being written and removes path.tmp. Safe on a zeroed struct. */
void ab_h5_abort(struct ab_h5 *f);

/* Opens path read-only after checking that it exists (AB_E_NOFILE), is a readable regular file
 * (AB_E_IO / AB_E_DATA) and carries the HDF5 signature (AB_E_DATA "not an HDF5 file"); a file
 * HDF5 then refuses (truncated, damaged) is AB_E_DATA. Close with ab_h5_close. */
int ab_h5_open(struct ab_h5 *f, const char *path);

/* Closes a file opened with ab_h5_open (and every object still open in it). Safe twice. */
void ab_h5_close(struct ab_h5 *f);

/* For the fuzz harnesses (tests/fuzz): ab_h5_open probes each file once per process, keyed by
 * device, inode, size and modification time; ab_h5_probe_forget makes it probe every file
 * again (a harness rewrites one path faster than the clock's resolution). ab_h5_contained is
 * the number of probes so far whose reading child crashed, failed or hung. */
void ab_h5_probe_forget(void);
int64_t ab_h5_contained(void);

/* 1 if the link `name` exists (intermediate groups included), 0 if not. */
int ab_h5_exists(const struct ab_h5 *f, const char *name);

/* Creates group `name` (its parent must exist) with time tracking off. */
int ab_h5_group(struct ab_h5 *f, const char *name);

/* Scalar attributes on object `obj`: UTF-8 variable-length string, int32, uint64, float64. */
int ab_h5_attr_put_str(struct ab_h5 *f, const char *obj, const char *name, const char *value);
int ab_h5_attr_put_int(struct ab_h5 *f, const char *obj, const char *name, int value);
int ab_h5_attr_put_u64(struct ab_h5 *f, const char *obj, const char *name, uint64_t value);
int ab_h5_attr_put_f64(struct ab_h5 *f, const char *obj, const char *name, double value);

/* Reads a string attribute (variable or fixed length) into *out (malloc'd; NULL when the
 * attribute is absent). AB_E_DATA if it is not a scalar string. */
int ab_h5_attr_get_str(struct ab_h5 *f, const char *obj, const char *name, char **out);

/* Reads a scalar numeric attribute converted to the given type; *found = 0 (and *out left
 * alone) when absent. AB_E_DATA if it is not one number. */
int ab_h5_attr_get_f64(struct ab_h5 *f, const char *obj, const char *name, double *out, int *found);
int ab_h5_attr_get_i64(struct ab_h5 *f, const char *obj, const char *name, int64_t *out,
                       int *found);
int ab_h5_attr_get_u64(struct ab_h5 *f, const char *obj, const char *name, uint64_t *out,
                       int *found);

/* Creates the dimension scale `name` (a 1-D int32 dataset 0..n-1, n >= 0) whose dimension name
 * is the last component of `name` ("/seq" names the dimension "seq"). */
int ab_h5_scale(struct ab_h5 *f, const char *name, int64_t n);

/* Writes dataset `name` of the given rank (0..4) and dims from data (mem_type, row-major; may
 * be NULL only if the dataset has no elements). file_type is the stored type. chunk_lead < 0
 * stores it contiguous; chunk_lead >= 0 chunks it with chunk_lead leading unit dimensions and
 * the remaining dimensions whole (capped at 1 GiB per chunk), filtered with shuffle + deflate.
 * scales[i] (may be NULL, or hold NULL entries) names the scale attached to dimension i. */
int ab_h5_put(struct ab_h5 *f, const char *name, hid_t file_type, hid_t mem_type, int rank,
              const int64_t *dims, int chunk_lead, const void *data, const char *const *scales);

/* Writes a dataset of variable-length UTF-8 strings (rank 0..2; NULL entries stored as ""). */
int ab_h5_put_strings(struct ab_h5 *f, const char *name, int rank, const int64_t *dims,
                      const char *const *strs, const char *const *scales);

/* Sizes are checked before anyone allocates them: a dataset (d, of path) whose stored bytes could
 * not hold its declared size (elements x element bytes) even under deflate's best ratio (1032:1)
 * lies about its shape (unwritten chunks read back as fill values: a 70 KB file declaring 8 GB).
 * AB_E_DATA naming the dataset, else AB_OK. Datasets under 1 MB are not judged. ab_h5_shape
 * applies it to every dataset it sizes. */
int ab_h5_check_stored(hid_t d, const char *path, const char *name, double declared);

/* The shape of dataset `name`: checks it exists (else *found = 0, or AB_E_DATA "missing
 * dataset" when found is NULL), has the expected rank and type class (H5T_NO_CLASS: any), that
 * its storage can hold what it declares (ab_h5_check_stored), and stores its dims (up to 8). */
int ab_h5_shape(struct ab_h5 *f, const char *name, int rank, H5T_class_t cls, int64_t *dims,
                int *found);

/* Reads all of dataset `name` into buf (converted to mem_type; the caller checked the shape). */
int ab_h5_get(struct ab_h5 *f, const char *name, hid_t mem_type, void *buf);

/* Reads the hyperslab start[0..rank) + count[0..rank) of dataset `name` into buf (dense). */
int ab_h5_get_slab(struct ab_h5 *f, const char *name, hid_t mem_type, int rank,
                   const int64_t *start, const int64_t *count, void *buf);

/* Reads a string dataset of n elements (variable or fixed length) into out[0..n) (each
 * malloc'd; on failure none are left allocated). */
int ab_h5_get_strings(struct ab_h5 *f, const char *name, int64_t n, char **out);

/* A 1-D attribute of n >= 0 variable-length UTF-8 strings on object `obj` (NULL entries
 * stored as ""). */
int ab_h5_attr_put_strs(struct ab_h5 *f, const char *obj, const char *name, int64_t n,
                        const char *const *strs);

/* Reads a string attribute holding any number of strings (scalar or 1-D; variable or fixed
 * length) into *out (a malloc'd array of *n malloc'd strings; NULL when *n == 0). *found = 0
 * (and *n = 0) when the attribute is absent. AB_E_DATA if it does not hold strings. */
int ab_h5_attr_get_strs(struct ab_h5 *f, const char *obj, const char *name, int64_t *n, char ***out,
                        int *found);

/* Writes a table (table.h) as group `group` (its parent must exist; links kept in creation
 * order): the dimension scale group/row (int64 0..n_rows-1) and one 1-D dataset per column,
 * in the order of cols, named by the column, holding the field at cols[c].offset of
 * rows[0..n_rows) (each row_size bytes): strings as variable-length UTF-8, doubles as float64,
 * integers as int64; each attached to the "row" scale as dimension 0 and carrying the
 * attributes units and long_name. n_rows == 0 writes empty datasets (rows may be NULL). */
int ab_h5_put_table(struct ab_h5 *f, const char *group, const void *rows, int64_t n_rows,
                    size_t row_size, const struct ab_column *cols, int n_cols);

/* Reads a table written by ab_h5_put_table into *rows (calloc'd, *n_rows rows of row_size
 * bytes; fields not in cols are zero; strings malloc'd; NULL when *n_rows == 0). Checks before
 * reading: every column present, 1-D, of the right class (string, float, integer), all of the
 * same length (and group/row, when present, too), the whole fitting in memory. AB_E_DATA
 * naming the column otherwise; on failure nothing stays allocated. */
int ab_h5_get_table(struct ab_h5 *f, const char *group, const struct ab_column *cols, int n_cols,
                    size_t row_size, void **rows, int64_t *n_rows);

/* Sums over every dataset in the file: the bytes its elements take in memory (data) and the
 * bytes its storage takes in the file (stored). */
int ab_h5_storage_sum(struct ab_h5 *f, int64_t *data_bytes, int64_t *stored_bytes);

#endif
