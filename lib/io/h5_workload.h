/* h5_workload.h - the workload file (workloads.md) in HDF5, with the rules of outputs.md:
 * dimension scales naming the axes, variable-length UTF-8 strings, no object time stamps,
 * one head per chunk with shuffle + deflate, write to NAME.tmp then rename(), HDF5's own error
 * printing off and one-line errors instead. All calls from the main thread. */
#ifndef AB_IO_H5_WORKLOAD_H
#define AB_IO_H5_WORKLOAD_H

#include "core/workload.h"

/* Writes w to path (atomically: path.tmp, then rename). Fills created_utc and version attributes
 * from the current time and build when w's are NULL. Returns AB_OK, AB_E_CREATE (cannot create
 * the file), AB_E_IO, or AB_E_DATA if w is inconsistent; on failure nothing is left at path or
 * path.tmp. */
int ab_h5_workload_write(const char *path, const struct ab_workload *w);

/* Reads the workload at path into *out (caller frees with ab_workload_free). Validates before
 * reading bulk data: schema attribute, dataset ranks, shapes agreeing with each other, dtypes,
 * sizes against memory; then values (finite, positions sorted, task rows in range).
 * AB_E_NOFILE (missing), AB_E_DATA (not HDF5, wrong schema, bad shapes or values, truncated),
 * AB_E_TOOBIG, AB_E_IO. The message names the file and the problem. */
int ab_h5_workload_read(const char *path, struct ab_workload *out);

/* Reads the shapes, attributes and the small datasets (positions, tokens, text, profiles,
 * tasks) but not the bulk ones: q, k, v and hidden are left NULL, d_model is set from /hidden's
 * shape when the file has one (so d_model > 0 with hidden NULL means "present, not loaded").
 * For `info` and `render` on large files. Same checks and errors as ab_h5_workload_read, values
 * of the bulk datasets excepted. Free with ab_workload_free. */
int ab_h5_workload_read_meta(const char *path, struct ab_workload *out);

/* Reads one head instance's inputs from the workload at path, for commands that need one head
 * of a file too large to load (render): q (n_seq, d) of query head `head`, k (n_seq, d) and
 * v (n_seq, d_v) of the kv head serving it, in layer `layer`. meta is the file's metadata from
 * ab_h5_workload_read_meta (shapes; layer and head must be in range). The buffers are allocated
 * with ab_alloc (free with ab_free). AB_E_DATA if the file is damaged or a value is not finite. */
int ab_h5_workload_read_head(const char *path, const struct ab_workload *meta, int64_t layer,
                             int64_t head, float **q, float **k, float **v);

/* Storage facts of any HDF5 file: its size on disk, the bytes all its datasets hold in memory
 * (data_bytes) and the bytes their storage takes in the file (stored_bytes; data / stored is
 * the compression ratio). */
struct ab_h5_storage {
    int64_t file_bytes, data_bytes, stored_bytes;
};
int ab_h5_file_storage(const char *path, struct ab_h5_storage *out);

#endif
