/* formats.c - the writers of formats.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/ab.h"
#include "core/half.h"
#include "formats.h"
#include "io/npy.h"

static void need(int ok, const char *what)
{
    if (ok) return;
    fprintf(stderr, "formats: %s failed\n", what);
    abort();
}

/* ---------------------------------------------------------------- byte buffers */


void put(struct buf *b, const void *x, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        need(b->p != NULL, "out of memory");
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}

void put_le(struct buf *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        unsigned char c = (unsigned char)(v >> (8 * i));
        put(b, &c, 1);
    }
}

void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    need(f && (n == 0 || fwrite(p, 1, n, f) == n) && fclose(f) == 0, path);
}

/* ---------------------------------------------------------------- values and dtypes */

/* Seeded values in about [-3, 3] (xorshift). */
void fill(float *x, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 6 - 3);
    }
}

/* Our own decoders (independent of lib/io/npy.c). */
float dec_f16(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m + 1024), e - 25);
    return (h & 0x8000) ? -v : v; /* no infinities or NaN among our values */
}

float dec_bf16(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float x;
    memcpy(&x, &bits, 4);
    return x;
}

/* Encodes x as dtype (little-endian) into b; returns the value a reader must give back. */
float enc(struct buf *b, int dtype, float x)
{
    if (dtype == AB_DT_F32) {
        put(b, &x, 4); /* the test hosts are little-endian */
        return x;
    }
    uint16_t h = dtype == AB_DT_F16 ? ab_f16_from_double(x) : ab_bf16_from_float(x);
    put_le(b, h, 2);
    return dtype == AB_DT_F16 ? dec_f16(h) : dec_bf16(h);
}


int64_t count(const struct tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

/* A whole .npy file for t; descr NULL: the natural one ('bfloat16' for bf16). */
void npy_bytes(struct buf *b, const struct tensor *t, const char *descr)
{
    char head[256], shape[96] = "";
    size_t len = 0;
    for (int i = 0; i < t->rank; i++)
        len += (size_t)snprintf(shape + len, sizeof shape - len, "%lld%s", (long long)t->shape[i],
                                t->rank == 1 ? "," : ", ");
    if (!descr) descr = t->dtype == AB_DT_F32 ? "<f4" : t->dtype == AB_DT_F16 ? "<f2" : "bfloat16";
    int hl = snprintf(head, sizeof head, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                      descr, shape);
    int total = (10 + hl + 1 + 63) / 64 * 64;
    while (10 + hl + 1 < total) head[hl++] = ' ';
    head[hl++] = '\n';
    put(b, "\x93NUMPY\x01\x00", 8);
    put_le(b, (uint64_t)hl, 2);
    put(b, head, (size_t)hl);
    for (int64_t i = 0; i < count(t); i++) {
        float w = enc(b, t->dtype, t->x[i]);
        if (t->want) t->want[i] = w;
    }
}

/* ---------------------------------------------------------------- ZIP writer */



void zip_write(const char *path, struct member *m, int n, int deflated, int z64)
{
    struct buf z = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        struct buf packed = {0};
        if (deflated) {
            z_stream s;
            memset(&s, 0, sizeof s);
            need(deflateInit2(&s, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
            packed.cap = deflateBound(&s, m[i].data.n) + 16;
            packed.p = malloc(packed.cap);
            s.next_in = m[i].data.p, s.avail_in = (uInt)m[i].data.n;
            s.next_out = packed.p, s.avail_out = (uInt)packed.cap;
            need(deflate(&s, Z_FINISH) == Z_STREAM_END, "deflate");
            packed.n = s.total_out;
            deflateEnd(&s);
        } else {
            put(&packed, m[i].data.p, m[i].data.n);
        }
        uint32_t crc = (uint32_t)crc32(crc32(0, Z_NULL, 0), m[i].data.p, (uInt)m[i].data.n);
        uint64_t off = z.n, nl = strlen(m[i].name);
        /* local header */
        put_le(&z, 0x04034b50, 4);
        put_le(&z, z64 ? 45 : 20, 2);
        put_le(&z, 0, 2);
        put_le(&z, deflated ? 8 : 0, 2);
        put_le(&z, 0, 2), put_le(&z, 0x21, 2); /* 1980-01-01 */
        put_le(&z, crc, 4);
        put_le(&z, z64 == Z64_CENTRAL ? 0xffffffffu : packed.n, 4);
        put_le(&z, z64 == Z64_CENTRAL ? 0xffffffffu : m[i].data.n, 4);
        put_le(&z, nl, 2);
        put_le(&z, z64 ? 20 : 0, 2);
        put(&z, m[i].name, nl);
        if (z64) {
            put_le(&z, 1, 2), put_le(&z, 16, 2);
            put_le(&z, m[i].data.n, 8), put_le(&z, packed.n, 8);
        }
        put(&z, packed.p, packed.n);
        /* central directory entry */
        put_le(&cd, 0x02014b50, 4);
        put_le(&cd, 0x031e, 2), put_le(&cd, z64 ? 45 : 20, 2);
        put_le(&cd, 0, 2), put_le(&cd, deflated ? 8 : 0, 2);
        put_le(&cd, 0, 2), put_le(&cd, 0x21, 2);
        put_le(&cd, crc, 4);
        int big = z64 == Z64_CENTRAL;
        put_le(&cd, big ? 0xffffffffu : packed.n, 4);
        put_le(&cd, big ? 0xffffffffu : m[i].data.n, 4);
        put_le(&cd, nl, 2), put_le(&cd, big ? 28 : 0, 2), put_le(&cd, 0, 2);
        put_le(&cd, 0, 2), put_le(&cd, 0, 2), put_le(&cd, 0, 4);
        put_le(&cd, big ? 0xffffffffu : off, 4);
        put(&cd, m[i].name, nl);
        if (big) {
            put_le(&cd, 1, 2), put_le(&cd, 24, 2);
            put_le(&cd, m[i].data.n, 8), put_le(&cd, packed.n, 8), put_le(&cd, off, 8);
        }
        free(packed.p);
    }
    uint64_t cd_off = z.n;
    put(&z, cd.p, cd.n);
    if (z64 == Z64_CENTRAL) {
        uint64_t rec = z.n;
        put_le(&z, 0x06064b50, 4), put_le(&z, 44, 8), put_le(&z, 45, 2), put_le(&z, 45, 2);
        put_le(&z, 0, 4), put_le(&z, 0, 4), put_le(&z, (uint64_t)n, 8), put_le(&z, (uint64_t)n, 8);
        put_le(&z, cd.n, 8), put_le(&z, cd_off, 8);
        put_le(&z, 0x07064b50, 4), put_le(&z, 0, 4), put_le(&z, rec, 8), put_le(&z, 1, 4);
    }
    int big = z64 == Z64_CENTRAL;
    put_le(&z, 0x06054b50, 4), put_le(&z, 0, 2), put_le(&z, 0, 2);
    put_le(&z, big ? 0xffff : (uint64_t)n, 2), put_le(&z, big ? 0xffff : (uint64_t)n, 2);
    put_le(&z, big ? 0xffffffffu : cd.n, 4), put_le(&z, big ? 0xffffffffu : cd_off, 4);
    put_le(&z, 0, 2);
    write_file(path, z.p, z.n);
    free(z.p), free(cd.p);
}

/* An .npz of tensors t[0..n). */
void npz_write(const char *path, const struct tensor *t, int n, int deflate, int z64)
{
    struct member m[4];
    char names[4][64];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%s.npy", t[i].name);
        m[i].name = names[i];
        memset(&m[i].data, 0, sizeof m[i].data);
        npy_bytes(&m[i].data, &t[i], NULL);
    }
    zip_write(path, m, n, deflate, z64);
    for (int i = 0; i < n; i++) free(m[i].data.p);
}

/* ---------------------------------------------------------------- safetensors writer */

static const char *st_dtype(int dtype)
{
    return dtype == AB_DT_F32 ? "F32" : dtype == AB_DT_F16 ? "F16" : "BF16";
}

void st_write(const char *path, const struct tensor *t, int n)
{
    struct buf data = {0}, file = {0};
    char header[4096];
    size_t hl = (size_t)snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        size_t begin = data.n;
        for (int64_t j = 0; j < count(&t[i]); j++) {
            float w = enc(&data, t[i].dtype, t[i].x[j]);
            if (t[i].want) t[i].want[j] = w;
        }
        hl += (size_t)snprintf(header + hl, sizeof header - hl,
                               ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name,
                               st_dtype(t[i].dtype));
        for (int d = 0; d < t[i].rank; d++)
            hl += (size_t)snprintf(header + hl, sizeof header - hl, "%s%lld", d ? "," : "",
                                   (long long)t[i].shape[d]);
        hl += (size_t)snprintf(header + hl, sizeof header - hl, "],\"data_offsets\":[%zu,%zu]}",
                               begin, data.n);
    }
    header[hl++] = '}';
    while (hl % 8) header[hl++] = ' '; /* the padding writers add */
    put_le(&file, hl, 8);
    put(&file, header, hl);
    put(&file, data.p, data.n);
    write_file(path, file.p, file.n);
    free(data.p), free(file.p);
}

/* A safetensors file from a raw header text and data_len bytes of data (zeros when data is
 * NULL); hlen_field overrides the length. */
void st_raw(const char *path, const char *header, const void *data, size_t data_len,
                   uint64_t hlen_field)
{
    struct buf file = {0};
    put_le(&file, hlen_field ? hlen_field : strlen(header), 8);
    put(&file, header, strlen(header));
    unsigned char zero[64] = {0};
    if (data) put(&file, data, data_len);
    for (size_t i = 0; !data && i < data_len; i += 64)
        put(&file, zero, AB_MIN((size_t)64, data_len - i));
    write_file(path, file.p, file.n);
    free(file.p);
}
