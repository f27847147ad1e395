/* safetensors.h - reading tensors from a safetensors file (the format of Hugging Face's
 * safetensors library), for `import`.
 *
 * The format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data.
 * The JSON is an object mapping each tensor name to {"dtype": "F32", "shape": [2, 3],
 * "data_offsets": [begin, end]} (byte offsets relative to the first byte after the header),
 * plus an optional "__metadata__" object of string values. The reader checks, before reading
 * any tensor: N against the file length and a cap (100 MB), the JSON well formed (jansson, no
 * duplicate keys), every entry's fields, its dtype one of the format's names, its shape
 * non-negative, end - begin == product(shape) * itemsize, offsets ordered and inside the data
 * section, and the tensors tiling the data section exactly (no overlaps, no holes, no bytes
 * after the last one: the format's own rules, so a file that lies about its size is caught).
 * Any failure is AB_E_DATA with a message naming the file and the tensor. */
#ifndef AB_IO_SAFETENSORS_H
#define AB_IO_SAFETENSORS_H

#include <stdint.h>

#include "io/npy.h"

/* Largest JSON header accepted (the safetensors library's own limit). */
#define AB_ST_MAX_HEADER (100 * 1000 * 1000)

struct ab_st_tensor {
    char *name;
    char dtype[8]; /* as in the file: "F32", "BF16", "I64", ... */
    int rank;
    int64_t shape[AB_ARRAY_MAX_RANK];
    int64_t begin, end; /* byte range in the data section */
};

/* An opened file: its validated header. Owns path and the tensors. */
struct ab_safetensors {
    char *path;
    int64_t size;       /* file length */
    int64_t data_start; /* 8 + N */
    int n;
    struct ab_st_tensor *t; /* (n), in the order of data_offsets */
};

/* Reads and validates the header of the safetensors file at path (see above). On failure st is
 * left empty (safe to ab_safetensors_close). AB_E_NOFILE, AB_E_IO, AB_E_NOMEM, AB_E_DATA. */
int ab_safetensors_open(struct ab_safetensors *st, const char *path);

/* The tensor called name, or NULL. */
const struct ab_st_tensor *ab_safetensors_find(const struct ab_safetensors *st, const char *name);

/* Reads tensor t of st as floats of type `as` (AB_DT_F32 or AB_DT_F64) into out (dtype set to
 * AB_DT_F32 / F16 / BF16 / F64; the caller frees with ab_array_free, also after a failure).
 * AB_E_DATA if the tensor is not F16, BF16, F32 or F64; AB_E_TOOBIG, AB_E_NOMEM, AB_E_IO. */
int ab_safetensors_read(const struct ab_safetensors *st, const struct ab_st_tensor *t, int as,
                        struct ab_array *out);

/* Reads an integer tensor (I32 or I64) of st as int64 values into *x (ab_alloc'd, caller
 * frees with ab_free) and its element count into *n. AB_E_DATA for other dtypes. */
int ab_safetensors_read_int(const struct ab_safetensors *st, const struct ab_st_tensor *t,
                            int64_t **x, int64_t *n);

void ab_safetensors_close(struct ab_safetensors *st);

#endif
