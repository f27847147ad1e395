/* npy.h - dense floating-point arrays read from and written to files other tools make: NumPy
 * .npy (our own reader and writer, no Python needed; also from memory, for the members of a
 * .npz, see zip.h) and one dataset of an HDF5 file. `verify` reads a kernel's outputs through
 * here and writes the reference's; `import` reuses it (with safetensors.h and zip.h).
 *
 * The .npy format (numpy.lib.format): the magic "\x93NUMPY", a version byte pair (1.0, 2.0 or
 * 3.0), the header length (uint16 little-endian for 1.0, uint32 for 2.0 and 3.0), then a Python
 * dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces
 * and a newline, then the raw elements in C order. Supported: little-endian float16, float32 and
 * float64, and bfloat16, C order.
 *
 * bfloat16: NumPy has no such type. Arrays of ml_dtypes.bfloat16 saved with np.save carry the
 * descr '<V2' (2-byte void: np.save writes dtype.str, and user dtypes report kind 'V'), which
 * says nothing about the contents, so '<V2' and '|V2' are read as bfloat16 only when the caller
 * says so (void2 == AB_DT_BF16, `import --dtype bf16`) and are refused otherwise with a message
 * saying how. The descr "bfloat16" (str(dtype), what the usual workaround that writes the
 * header by hand stores, and what np.load understands once ml_dtypes is imported) is
 * unambiguous and always accepted. Either way the bytes are taken as little-endian, which is
 * what every little-endian machine writes. The reader validates every header field, the shape and
 * the data size against the file length before reading any data, and answers a bad file with
 * AB_E_DATA and a one-line message naming the file and the problem (truncated, oversized or
 * malformed header, big-endian or unsupported dtype, Fortran order, size mismatch). Values are not
 * checked (NaN and infinities are read as they are). No HDF5 types in this header. */
#ifndef AB_IO_NPY_H
#define AB_IO_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "core/half.h" /* ab_f16_*, ab_bf16_* */

/* Element types; the value is the item size in bytes, except AB_DT_BF16 (2 bytes; use
 * ab_dtype_size). AB_DT_U8 is uint8 or bool (.npy '|u1' / '|b1', safetensors U8 / BOOL, HDF5
 * 1-byte integers): masks such as `ingest`'s kept sets. `as` (the in-memory type) is
 * AB_DT_F32 or AB_DT_F64, or AB_DT_U8 for masks: then every value becomes 0 (zero), 1 (one)
 * or 2 (anything else, for the caller to refuse), whatever the type in the file. */
enum ab_dtype { AB_DT_U8 = 1, AB_DT_F16 = 2, AB_DT_BF16 = 3, AB_DT_F32 = 4, AB_DT_F64 = 8 };

/* Bytes per element of dtype. */
int ab_dtype_size(int dtype);

enum { AB_ARRAY_MAX_RANK = 8 };

/* An n-dimensional array in C (row-major) order. */
struct ab_array {
    int dtype; /* element type in the file (enum ab_dtype) */
    int as;    /* element type of data in memory: AB_DT_F32 or AB_DT_F64 */
    int rank;  /* 0 .. AB_ARRAY_MAX_RANK (0: a scalar, one element) */
    int64_t shape[AB_ARRAY_MAX_RANK];
    int64_t n;  /* number of elements, the product of shape */
    void *data; /* (shape) float or double per `as`, from ab_alloc; NULL when n == 0 or only
                   the header was read */
};

/* Frees a's data and zeroes it. Safe on a zeroed struct and twice. */
void ab_array_free(struct ab_array *a);

/* "float16", "bfloat16", "float32", "float64" ("?" otherwise). */
const char *ab_dtype_name(int dtype);

/* Converts n elements of dtype stored little-endian at src to `as` (AB_DT_F32 or AB_DT_F64)
 * at dst (any host byte order). */
void ab_array_convert(const unsigned char *src, int dtype, int64_t n, int as, void *dst);

/* Reads the header of the .npy file at path into out (data NULL, as 0) and sets *data_offset to
 * the byte where the elements start; checks that the file holds exactly n * itemsize bytes
 * after it ('<V2' refused: no bfloat16 hint). AB_E_NOFILE (missing), AB_E_IO (unreadable),
 * AB_E_DATA (anything wrong with the file, as above). */
int ab_npy_read_header(const char *path, struct ab_array *out, int64_t *data_offset);

/* Reads the .npy file at path, converting the elements to `as` (AB_DT_F32 or AB_DT_F64) into
 * out->data (the caller frees it with ab_array_free, also after a failure). Errors as
 * ab_npy_read_header, plus AB_E_TOOBIG when the data cannot fit in memory and AB_E_NOMEM. */
int ab_npy_read(const char *path, int as, struct ab_array *out);

/* ab_npy_read with a hint for 2-byte void descrs: void2 == AB_DT_BF16 reads '<V2' / '|V2' as
 * bfloat16; 0 refuses them (AB_E_DATA). */
int ab_npy_read_hint(const char *path, int void2, int as, struct ab_array *out);

/* The same from memory: buf[0..len) holds a whole .npy file (a .npz member). name is used in
 * messages in place of a path ("'name': truncated .npy file ..."). Same checks and errors. */
int ab_npy_read_mem(const unsigned char *buf, size_t len, const char *name, int void2, int as,
                    struct ab_array *out);

/* Writes a .npy file (version 1.0: a header of rank <= 8 always fits; C order, little-endian) of
 * element type dtype (AB_DT_F16 / F32 / F64) and the given shape (rank 0 .. AB_ARRAY_MAX_RANK,
 * dims >= 0) from data, n elements of type `as` (AB_DT_F32 or AB_DT_F64) in C order. Written
 * to path.tmp then renamed: on failure nothing is left at path or path.tmp. AB_OK, AB_E_CREATE
 * (cannot create the file), AB_E_IO (a write failed). */
int ab_npy_write(const char *path, int dtype, int rank, const int64_t *shape, int as,
                 const void *data);

/* File formats ab_array_sniff recognises. */
enum ab_array_format { AB_FMT_NPY = 1, AB_FMT_H5 = 2, AB_FMT_SAFETENSORS = 3, AB_FMT_NPZ = 4 };

/* Tells the format of the file at path from its first bytes (.npy magic, HDF5 signature, ZIP
 * signature for .npz), or for safetensors (no magic) from the ".safetensors" suffix or a
 * header length below 2^32 followed by '{'. AB_E_NOFILE, AB_E_IO, or AB_E_DATA ("not a .npy,
 * .npz, safetensors or HDF5 file"). */
int ab_array_sniff(const char *path, int *format);

/* Reads one floating-point dataset of the HDF5 file at path into out, converted to `as`.
 * dataset names it ("/o" or "o"); NULL picks "/o" when the file has it, else the only float
 * dataset of rank want_rank anywhere in the file (AB_E_DATA naming the candidates when there
 * is none or several). The dataset must hold IEEE floats of 2, 4 or 8 bytes (HDF5 converts the
 * byte order), or, with as == AB_DT_U8 (a mask), 1-byte integers. Errors: AB_E_NOFILE, AB_E_DATA (not HDF5, no such dataset, not float, rank above
 * AB_ARRAY_MAX_RANK), AB_E_TOOBIG, AB_E_NOMEM. */
int ab_h5_array_read(const char *path, const char *dataset, int want_rank, int as,
                     struct ab_array *out);

/* *has = 1 when the HDF5 file at path holds an object named dataset ("/o"). AB_E_NOFILE,
 * AB_E_DATA (not HDF5). */
int ab_h5_array_exists(const char *path, const char *dataset, int *has);

#endif
