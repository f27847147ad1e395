/* formats.h - small writers of the array and archive formats import reads (.npy bytes, ZIP
 * archives stored or deflated with and without ZIP64 fields, .npz, safetensors), from seeded
 * values, independent of lib/io: test_import checks the readers against them and fuzz_seeds
 * writes the fuzzers' seed corpora with them. A failure (out of memory, an unwritable file)
 * aborts with a message: the test cannot go on. */
#ifndef AB_TESTS_FORMATS_H
#define AB_TESTS_FORMATS_H

#include <stddef.h>
#include <stdint.h>

/* A growing byte buffer. */
struct buf {
    unsigned char *p;
    size_t n, cap;
};

void put(struct buf *b, const void *x, size_t n);
void put_le(struct buf *b, uint64_t v, int bytes);
void write_file(const char *path, const void *p, size_t n);

/* Seeded values in about [-3, 3] (xorshift). */
void fill(float *x, int64_t n, uint64_t seed);
/* Our own decoders of float16 and bfloat16 (independent of lib/io/npy.c). */
float dec_f16(uint16_t h);
float dec_bf16(uint16_t b);
/* Encodes x as dtype (AB_DT_F32 / F16 / BF16, little-endian) into b; returns the value a
 * reader must give back. */
float enc(struct buf *b, int dtype, float x);

/* A tensor to write: name, dtype, shape, values; want[] gets what must be read back. */
struct tensor {
    const char *name;
    int dtype;
    int rank;
    int64_t shape[4];
    const float *x;
    float *want;
};
int64_t count(const struct tensor *t);

/* A whole .npy file for t; descr NULL: the natural one ('bfloat16' for bf16). */
void npy_bytes(struct buf *b, const struct tensor *t, const char *descr);

enum {
    Z64_NONE,
    Z64_LOCAL,
    Z64_CENTRAL
}; /* ZIP64 extras in local headers (NumPy's way), or
      everything deferred to ZIP64 fields and records */

/* A ZIP member: its name and bytes. */
struct member {
    const char *name;
    struct buf data;
};

/* A ZIP archive of members m[0..n), stored or deflated, with the ZIP64 style z64. */
void zip_write(const char *path, struct member *m, int n, int deflated, int z64);
/* An .npz of tensors t[0..n) (members NAME.npy). */
void npz_write(const char *path, const struct tensor *t, int n, int deflate, int z64);

/* A safetensors file of tensors t[0..n) (F32, F16 or BF16), header padded to 8 bytes. */
void st_write(const char *path, const struct tensor *t, int n);
/* A safetensors file from a raw header text and data_len bytes of data (zeros when data is
 * NULL); hlen_field overrides the length field. */
void st_raw(const char *path, const char *header, const void *data, size_t data_len,
            uint64_t hlen_field);

#endif
