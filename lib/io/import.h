/* import.h - Q, K and V dumped from any framework, read into a workload (workloads.md,
 * "Import"): NumPy .npy and .npz, safetensors, HDF5 datasets; float32, float16, bfloat16 (and
 * float64, narrowed to float32).
 *
 * Inputs are either one container (.npz, .safetensors or .h5) holding tensors named q, k and v
 * (or other names), or three files, one per tensor (any of the formats; a container is read at
 * the tensor's name). Arrays are rank 4 in the axis order `layout` names (default
 * layer,head,seq,dim), or rank 3 for a single layer (the same order with layer left out). Every
 * array's header is checked, then shapes are checked against each other (same layers and
 * sequence; query heads a multiple of kv heads; q and k of the same head dimension; v may have
 * another), then values (NaN and infinities refused, naming the file, the tensor and the first
 * bad index in the file's own axis order). Failures are AB_E_DATA (AB_E_NOFILE for a missing
 * file, AB_E_USAGE for a bad layout) with a one-line message naming the file. */
#ifndef AB_IO_IMPORT_H
#define AB_IO_IMPORT_H

#include <stdint.h>

#include "core/workload.h"
#include "io/npy.h"

enum ab_rope_style { AB_ROPE_INTERLEAVED = 0, AB_ROPE_HALF = 1 };

struct ab_import_opts {
    const char *files[3]; /* one container (n_files 1) or the q, k, v files (n_files 3) */
    int n_files;
    const char *names[3];   /* tensor names of q, k, v inside containers: a .npz member is
                               name + ".npy" (or name itself), an HDF5 dataset /name */
    const char *tokens;     /* name of an optional token-id tensor (I32 / I64, safetensors
                               only) in the q file, or NULL */
    const char *layout;     /* axis order of the arrays, a permutation of layer,head,seq,dim */
    int void2;              /* AB_DT_BF16: .npy arrays of 2-byte void ('<V2') are bfloat16 */
    int causal;             /* mask of the workload (default 1) */
    double scale;           /* logit scale; 0: 1/sqrt(d) */
    int rope_applied;       /* 1 (default): Q and K were dumped after RoPE */
    double rope_theta;      /* RoPE base; with rope_applied 0 and theta > 0 Q and K are
                               rotated here, at the positions, in rope_style's convention */
    int rope_style;         /* enum ab_rope_style: interleaved pairs (lib/attn/rope.c, default)
                               or Hugging Face rotate_half */
    int64_t first_position; /* positions are first_position + 0 .. n-1 (default 0) */
};

/* What was read, for the command to print. */
struct ab_import_tensor {
    char source[512]; /* "dump.npz:q.npy", "w.safetensors:q", "q.npy" */
    int dtype;        /* enum ab_dtype in the file */
    int rank;
    int64_t shape[AB_ARRAY_MAX_RANK];
};
struct ab_import_info {
    struct ab_import_tensor t[3]; /* q, k, v */
    int has_tokens;
};

/* Defaults: names q, k, v; layout layer,head,seq,dim; causal; rope applied; positions 0.. */
void ab_import_defaults(struct ab_import_opts *o);

/* Reads the inputs o names into *w (source "import", a description naming the files, the mask,
 * scale, RoPE facts and positions of o), rotating Q and K when o asks. The caller frees w with
 * ab_workload_free (also zeroed after a failure); info (may be NULL) says what was read.
 * Errors: AB_E_NOFILE, AB_E_DATA, AB_E_USAGE (bad layout, rotation with an odd head dim or a
 * non-positive theta), AB_E_TOOBIG, AB_E_NOMEM, AB_E_IO. */
int ab_import(const struct ab_import_opts *o, struct ab_workload *w, struct ab_import_info *info);

/* Reads tensor `name` of the container at path (a .npz member name.npy or name, a safetensors
 * tensor, an HDF5 dataset /name), or the one array of a .npy file, converted to `as` (npy.h:
 * AB_DT_F32, AB_DT_F64, or AB_DT_U8 for a mask); void2 as in ab_import_opts. source gets a
 * label naming the file and member ("dump.npz:o.npy"). The caller frees a (also after a
 * failure). AB_E_DATA (no such tensor: the message lists what the file holds; a bad file),
 * AB_E_NOFILE, AB_E_TOOBIG, AB_E_NOMEM, AB_E_IO. `import` and `ingest` read through here. */
int ab_import_read_tensor(const char *path, const char *name, int void2, int as,
                          struct ab_array *a, char *source, size_t cap);

/* *has = 1 when the container at path holds tensor `name` (as ab_import_read_tensor finds it),
 * 0 when not. AB_E_DATA for a .npy file (one unnamed array) or a damaged container, AB_E_NOFILE,
 * AB_E_IO. */
int ab_import_has_tensor(const char *path, const char *name, int *has);

#endif
