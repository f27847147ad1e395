/* npy.c - NumPy .npy arrays read and written with our own code (binary16 through
 * core/half.h), and format sniffing (see npy.h).
 *
 * The .npy reader trusts nothing in the file: the preamble, the header length, every header
 * field and the data size are checked against the file's length before a single element is
 * read, and elements are read in fixed-size blocks so a wrong size can never overrun a buffer.
 * Byte order is handled explicitly, so the code is right on big-endian hosts too. */
#include "io/npy.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ab.h"

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* Headers longer than this are refused as damaged (numpy itself refuses 10000 bytes unless
 * told otherwise; ours leaves room for very high ranks and long shapes). */
#define NPY_MAX_HEADER (1 << 20)

void ab_array_free(struct ab_array *a)
{
    ab_free(a->data);
    memset(a, 0, sizeof *a);
}

const char *ab_dtype_name(int dtype)
{
    switch (dtype) {
    case AB_DT_F16: return "float16";
    case AB_DT_BF16: return "bfloat16";
    case AB_DT_F32: return "float32";
    case AB_DT_F64: return "float64";
    case AB_DT_U8: return "uint8";
    default: return "?";
    }
}

int ab_dtype_size(int dtype)
{
    return dtype == AB_DT_BF16 ? 2 : dtype;
}

/* ------------------------------------------------------------------ byte order */

static int host_is_little(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap_bytes(unsigned char *p, int64_t n, int size)
{
    for (int64_t i = 0; i < n; i++, p += size)
        for (int a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* ------------------------------------------------------------------ header parsing */

struct cursor {
    const char *s, *end;
};

static void skip_space(struct cursor *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
        c->s++;
}

/* A quoted Python string ('...' or "...", no escapes needed for our keys and dtypes) into buf.
 * 0 or -1. */
static int parse_string(struct cursor *c, char *buf, size_t cap)
{
    if (c->s >= c->end || (*c->s != '\'' && *c->s != '"')) return -1;
    char q = *c->s++;
    size_t n = 0;
    while (c->s < c->end && *c->s != q) {
        if (*c->s == '\\' || n + 1 >= cap) return -1;
        buf[n++] = *c->s++;
    }
    if (c->s >= c->end) return -1;
    c->s++;
    buf[n] = '\0';
    return 0;
}

static int parse_word(struct cursor *c, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(c->end - c->s) < n || memcmp(c->s, w, n)) return 0;
    c->s += n;
    return 1;
}

/* The shape tuple "()", "(3,)", "(2, 3)" (Python 2's "3L" accepted). 0 or an error code. */
static int parse_shape(struct cursor *c, const char *path, struct ab_array *a)
{
    if (c->s >= c->end || *c->s != '(')
        return ab_fail(AB_E_DATA, "'%s': .npy header: 'shape' is not a tuple", path);
    c->s++;
    a->rank = 0;
    for (;;) {
        skip_space(c);
        if (c->s < c->end && *c->s == ')') break;
        if (c->s >= c->end || *c->s < '0' || *c->s > '9')
            return ab_fail(AB_E_DATA,
                           "'%s': .npy header: 'shape' holds something other than "
                           "non-negative integers",
                           path);
        int64_t v = 0;
        while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
            int digit = *c->s++ - '0';
            if (v > (INT64_MAX - digit) / 10)
                return ab_fail(AB_E_DATA,
                               "'%s': .npy header: a dimension of 'shape' is too "
                               "large",
                               path);
            v = v * 10 + digit;
        }
        if (c->s < c->end && *c->s == 'L') c->s++;
        if (a->rank == AB_ARRAY_MAX_RANK)
            return ab_fail(AB_E_DATA, "'%s': .npy header: more than %d dimensions", path,
                           AB_ARRAY_MAX_RANK);
        a->shape[a->rank++] = v;
        skip_space(c);
        if (c->s < c->end && *c->s == ',') {
            c->s++;
            continue;
        }
        if (c->s < c->end && *c->s == ')') break;
        return ab_fail(AB_E_DATA, "'%s': .npy header: malformed 'shape' tuple", path);
    }
    c->s++;
    return AB_OK;
}

/* The dtype of a descr string; AB_E_DATA with a message for anything but little-endian
 * float16/32/64 and the two bfloat16 spellings (see npy.h): "bfloat16", always, and '<V2' /
 * '|V2' only when void2 says 2-byte void data is bfloat16. */
static int parse_descr(const char *descr, const char *path, int void2, int *dtype)
{
    if (!strcmp(descr, "bfloat16")) return *dtype = AB_DT_BF16, AB_OK;
    /* '<' little-endian, '>' big-endian, '=' native, '|' not applicable */
    char order = descr[0], kind = order ? descr[1] : 0;
    const char *size = kind ? descr + 2 : "";
    if (kind == 'V' && !strcmp(size, "2") && (order == '<' || order == '|' || order == '=')) {
        if (void2 == AB_DT_BF16) return *dtype = AB_DT_BF16, AB_OK;
        return ab_fail(AB_E_DATA,
                       "'%s': dtype '%s' is raw 2-byte data (how np.save stores an "
                       "ml_dtypes bfloat16 array); if it is bfloat16, say so (--dtype bf16)",
                       path, descr);
    }
    /* bool and uint8 (one byte: no byte order) */
    if ((kind == 'b' || kind == 'u') && !strcmp(size, "1") &&
        (order == '|' || order == '<' || order == '=' || order == '>'))
        return *dtype = AB_DT_U8, AB_OK;
    int bytes = !strcmp(size, "2") ? 2 : !strcmp(size, "4") ? 4 : !strcmp(size, "8") ? 8 : 0;
    if (kind == 'f' && bytes && (order == '>' || (order == '=' && !host_is_little())))
        return ab_fail(AB_E_DATA,
                       "'%s': big-endian data ('%s') is not supported; save it "
                       "little-endian (astype('<f%d'))",
                       path, descr, bytes);
    if (kind == 'f' && bytes && (order == '<' || order == '=')) return *dtype = bytes, AB_OK;
    return ab_fail(AB_E_DATA,
                   "'%s': dtype '%s' is not supported (float16, float32, float64 or "
                   "bfloat16, little-endian; bool or uint8 for masks)",
                   path, descr);
}

/* Parses the header dict text[0..len) into a (dtype, rank, shape, n). */
static int parse_header(const char *text, size_t len, const char *path, int void2,
                        struct ab_array *a)
{
    struct cursor c = {text, text + len};
    int have_descr = 0, have_fortran = 0, have_shape = 0, rc;
    skip_space(&c);
    if (c.s >= c.end || *c.s != '{')
        return ab_fail(AB_E_DATA, "'%s': .npy header is not a dict", path);
    c.s++;
    for (;;) {
        skip_space(&c);
        if (c.s < c.end && *c.s == '}') break;
        char key[32];
        if (parse_string(&c, key, sizeof key))
            return ab_fail(AB_E_DATA, "'%s': .npy header: malformed key", path);
        skip_space(&c);
        if (c.s >= c.end || *c.s != ':')
            return ab_fail(AB_E_DATA, "'%s': .npy header: ':' missing after '%s'", path, key);
        c.s++;
        skip_space(&c);
        if (!strcmp(key, "descr")) {
            char descr[32];
            if (have_descr++)
                return ab_fail(AB_E_DATA, "'%s': .npy header: 'descr' given twice", path);
            if (c.s < c.end && *c.s == '[')
                return ab_fail(AB_E_DATA,
                               "'%s': structured dtype is not supported (float16, "
                               "float32, float64 or bfloat16 only)",
                               path);
            if (parse_string(&c, descr, sizeof descr))
                return ab_fail(AB_E_DATA, "'%s': .npy header: 'descr' is not a dtype string", path);
            if ((rc = parse_descr(descr, path, void2, &a->dtype))) return rc;
        } else if (!strcmp(key, "fortran_order")) {
            if (have_fortran++)
                return ab_fail(AB_E_DATA, "'%s': .npy header: 'fortran_order' given twice", path);
            if (parse_word(&c, "True"))
                return ab_fail(AB_E_DATA,
                               "'%s': Fortran-ordered data is not supported; save "
                               "it in C order (np.ascontiguousarray)",
                               path);
            if (!parse_word(&c, "False"))
                return ab_fail(AB_E_DATA,
                               "'%s': .npy header: 'fortran_order' is not True or "
                               "False",
                               path);
        } else if (!strcmp(key, "shape")) {
            if (have_shape++)
                return ab_fail(AB_E_DATA, "'%s': .npy header: 'shape' given twice", path);
            if ((rc = parse_shape(&c, path, a))) return rc;
        } else {
            return ab_fail(AB_E_DATA, "'%s': .npy header: unexpected key '%s'", path, key);
        }
        skip_space(&c);
        if (c.s < c.end && *c.s == ',') {
            c.s++;
            continue;
        }
        if (c.s < c.end && *c.s == '}') break;
        return ab_fail(AB_E_DATA, "'%s': .npy header: malformed dict", path);
    }
    c.s++;
    skip_space(&c);
    if (c.s != c.end) return ab_fail(AB_E_DATA, "'%s': .npy header: text after the dict", path);
    if (!have_descr || !have_fortran || !have_shape)
        return ab_fail(AB_E_DATA, "'%s': .npy header: '%s' missing", path,
                       !have_descr     ? "descr"
                       : !have_fortran ? "fortran_order"
                                       : "shape");
    a->n = 1;
    for (int i = 0; i < a->rank; i++) {
        if (a->shape[i] && a->n > INT64_MAX / 8 / a->shape[i])
            return ab_fail(AB_E_DATA, "'%s': .npy shape is impossibly large", path);
        a->n *= a->shape[i];
    }
    return AB_OK;
}

/* ------------------------------------------------------------------ reading */

/* Opens path for reading with the usual error codes; *size gets its length. */
static int open_regular(const char *path, FILE **f, int64_t *size)
{
    struct stat st;
    *f = NULL;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ab_fail(AB_E_NOFILE, "'%s': no such file", path);
        return ab_fail(AB_E_IO, "'%s': cannot read: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return ab_fail(AB_E_DATA, "'%s': is a directory", path);
    *f = fopen(path, "rb");
    if (!*f) return ab_fail(AB_E_IO, "'%s': cannot open: %s", path, strerror(errno));
    *size = (int64_t)st.st_size;
    return AB_OK;
}

/* "(2, 3)" */
static void shape_text(const struct ab_array *a, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < a->rank && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%lld%s", (long long)a->shape[i],
                                a->rank == 1      ? ","
                                : i + 1 < a->rank ? ", "
                                                  : "");
    if (len < cap) snprintf(buf + len, cap - len, ")");
}

/* Checks the preamble pre[0..got) of a .npy of size bytes; sets *start (where the header text
 * begins) and *hlen (its length). *start is 0 when got is too short to know the version's
 * preamble length and more bytes are needed (never when got >= 12). */
static int parse_preamble(const unsigned char *pre, size_t got, int64_t size, const char *path,
                          int64_t *start, int64_t *hlen)
{
    if (got >= sizeof npy_magic && memcmp(pre, npy_magic, sizeof npy_magic))
        return ab_fail(AB_E_DATA, "'%s': not a .npy file (bad magic)", path);
    if (got < 10 || size < 10)
        return ab_fail(AB_E_DATA,
                       "'%s': truncated .npy file (%lld bytes, shorter than the "
                       "preamble)",
                       path, (long long)size);
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return ab_fail(AB_E_DATA, "'%s': unsupported .npy version %d.%d (1.0, 2.0, 3.0 known)",
                       path, major, minor);
    if (major == 1) {
        *hlen = pre[8] | (int64_t)pre[9] << 8;
        *start = 10;
    } else {
        if (size < 12 || got < 12)
            return ab_fail(AB_E_DATA,
                           "'%s': truncated .npy file (%lld bytes, shorter than the "
                           "preamble)",
                           path, (long long)size);
        *hlen = pre[8] | (int64_t)pre[9] << 8 | (int64_t)pre[10] << 16 | (int64_t)pre[11] << 24;
        *start = 12;
    }
    if (*hlen > NPY_MAX_HEADER)
        return ab_fail(AB_E_DATA,
                       "'%s': .npy header length %lld is implausible (limit %d "
                       "bytes)",
                       path, (long long)*hlen, NPY_MAX_HEADER);
    if (*start + *hlen > size)
        return ab_fail(AB_E_DATA,
                       "'%s': truncated .npy file (header of %lld bytes, file of "
                       "%lld)",
                       path, (long long)*hlen, (long long)size);
    return AB_OK;
}

/* Parses the header text[0..hlen) (text[hlen] == '\0') into a and checks that `have` bytes of
 * data follow it, exactly what the header declares. */
static int parse_text(const char *text, int64_t hlen, int64_t have, const char *path, int void2,
                      struct ab_array *a)
{
    int rc;
    if (memchr(text, '\0', (size_t)hlen))
        return ab_fail(AB_E_DATA, "'%s': .npy header holds a NUL byte", path);
    if ((rc = parse_header(text, (size_t)hlen, path, void2, a))) return rc;
    int64_t want = a->n * ab_dtype_size(a->dtype);
    if (have < want) {
        char shape[32 * AB_ARRAY_MAX_RANK];
        shape_text(a, shape, sizeof shape);
        return ab_fail(AB_E_DATA,
                       "'%s': truncated .npy file (%s %s needs %lld data bytes, the "
                       "file has %lld)",
                       path, ab_dtype_name(a->dtype), shape, (long long)want, (long long)have);
    }
    if (have > want)
        return ab_fail(AB_E_DATA,
                       "'%s': %lld bytes after the data the .npy header declares "
                       "(shape mismatch?)",
                       path, (long long)(have - want));
    return AB_OK;
}

/* Reads and checks the preamble and header of the open file f (size bytes). */
static int read_header(FILE *f, int64_t size, const char *path, int void2, struct ab_array *a,
                       int64_t *data_offset)
{
    unsigned char pre[12];
    char *text = NULL;
    int64_t start = 0, hlen = 0;
    memset(a, 0, sizeof *a);
    size_t got = fread(pre, 1, sizeof pre, f);
    int rc = parse_preamble(pre, got, size, path, &start, &hlen);
    if (rc) return rc;
    text = malloc((size_t)hlen + 1);
    if (!text) return ab_fail(AB_E_NOMEM, "'%s': cannot allocate the .npy header", path);
    if (fseek(f, (long)start, SEEK_SET) != 0 ||
        (hlen && fread(text, 1, (size_t)hlen, f) != (size_t)hlen)) {
        rc = ab_fail(AB_E_IO, "'%s': read failed", path);
        goto done;
    }
    text[hlen] = '\0';
    if ((rc = parse_text(text, hlen, size - start - hlen, path, void2, a))) goto done;
    *data_offset = start + hlen;
    rc = AB_OK;
done:
    free(text);
    if (rc) memset(a, 0, sizeof *a);
    return rc;
}

int ab_npy_read_header(const char *path, struct ab_array *out, int64_t *data_offset)
{
    FILE *f;
    int64_t size = 0;
    memset(out, 0, sizeof *out);
    int rc = open_regular(path, &f, &size);
    if (rc) return rc;
    rc = read_header(f, size, path, 0, out, data_offset);
    fclose(f);
    return rc;
}

/* Converts n elements of dtype (little-endian bytes at src) to `as` at dst. */
static void convert_in(const unsigned char *src, int dtype, int64_t n, int as, void *dst)
{
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (dtype == AB_DT_U8) {
            v = src[i];
        } else if (dtype == AB_DT_F16) {
            uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
            v = ab_f16_to_double(h);
        } else if (dtype == AB_DT_BF16) {
            uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
            v = (double)ab_bf16_to_float(h);
        } else if (dtype == AB_DT_F32) {
            float x;
            memcpy(&x, src + 4 * i, 4);
            v = x;
        } else {
            memcpy(&v, src + 8 * i, 8);
        }
        if (as == AB_DT_U8) /* a mask: 0, 1, or 2 for anything else */
            ((unsigned char *)dst)[i] = v == 0 ? 0 : v == 1 ? 1 : 2;
        else if (as == AB_DT_F32)
            ((float *)dst)[i] = (float)v;
        else
            ((double *)dst)[i] = v;
    }
}

void ab_array_convert(const unsigned char *src, int dtype, int64_t n, int as, void *dst)
{
    enum { BLOCK = 1 << 12 }; /* elements per byte-swapped block on big-endian hosts */
    unsigned char tmp[BLOCK * 8];
    int size = ab_dtype_size(dtype);
    if (host_is_little() || size <= 2) {
        convert_in(src, dtype, n, as, dst); /* 2-byte types are assembled from bytes */
        return;
    }
    for (int64_t i = 0; i < n; i += BLOCK) {
        int64_t k = AB_MIN((int64_t)BLOCK, n - i);
        memcpy(tmp, src + i * size, (size_t)(k * size));
        swap_bytes(tmp, k, size);
        convert_in(tmp, dtype, k, as, (char *)dst + i * as);
    }
}

/* Allocates out->data for out->n elements of `as`. */
static int alloc_data(const char *path, int as, struct ab_array *out)
{
    out->as = as;
    if (out->n == 0) return AB_OK;
    int rc = ab_check_fits(path, (double)out->n * as);
    if (rc) return rc;
    out->data = ab_alloc(ab_size_mul((size_t)out->n, (size_t)as));
    if (!out->data)
        return ab_fail(AB_E_NOMEM, "'%s': cannot allocate %lld elements", path, (long long)out->n);
    return AB_OK;
}

int ab_npy_read_hint(const char *path, int void2, int as, struct ab_array *out)
{
    enum { BLOCK = 1 << 16 }; /* elements per read */
    FILE *f = NULL;
    unsigned char *buf = NULL;
    int64_t size = 0, off = 0;
    memset(out, 0, sizeof *out);
    assert(as == AB_DT_F32 || as == AB_DT_F64 || as == AB_DT_U8);
    int rc = open_regular(path, &f, &size);
    if (rc) return rc;
    if ((rc = read_header(f, size, path, void2, out, &off))) goto fail;
    if ((rc = alloc_data(path, as, out)) || out->n == 0) goto done;
    buf = malloc((size_t)BLOCK * 8);
    if (!buf) {
        rc = ab_fail(AB_E_NOMEM, "'%s': cannot allocate %lld elements", path, (long long)out->n);
        goto done;
    }
    int size_of = ab_dtype_size(out->dtype);
    for (int64_t i = 0; i < out->n; i += BLOCK) {
        int64_t k = AB_MIN((int64_t)BLOCK, out->n - i);
        if (fread(buf, (size_t)size_of, (size_t)k, f) != (size_t)k) {
            rc = ab_fail(ferror(f) ? AB_E_IO : AB_E_DATA, "'%s': %s", path,
                         ferror(f) ? "read failed" : "truncated .npy file (shrank while read)");
            goto done;
        }
        ab_array_convert(buf, out->dtype, k, as, (char *)out->data + i * as);
    }
done:
    free(buf);
    fclose(f);
    if (rc) ab_array_free(out);
    return rc;
fail:
    fclose(f);
    ab_array_free(out);
    return rc;
}

int ab_npy_read(const char *path, int as, struct ab_array *out)
{
    return ab_npy_read_hint(path, 0, as, out);
}

int ab_npy_read_mem(const unsigned char *buf, size_t len, const char *name, int void2, int as,
                    struct ab_array *out)
{
    int64_t start = 0, hlen = 0;
    char *text = NULL;
    memset(out, 0, sizeof *out);
    assert(as == AB_DT_F32 || as == AB_DT_F64 || as == AB_DT_U8);
    int rc = parse_preamble(buf, AB_MIN(len, (size_t)12), (int64_t)len, name, &start, &hlen);
    if (rc) return rc;
    text = malloc((size_t)hlen + 1);
    if (!text) return ab_fail(AB_E_NOMEM, "'%s': cannot allocate the .npy header", name);
    memcpy(text, buf + start, (size_t)hlen);
    text[hlen] = '\0';
    rc = parse_text(text, hlen, (int64_t)len - start - hlen, name, void2, out);
    free(text);
    if (!rc) rc = alloc_data(name, as, out);
    if (!rc && out->n) ab_array_convert(buf + start + hlen, out->dtype, out->n, as, out->data);
    if (rc) ab_array_free(out);
    return rc;
}

/* ------------------------------------------------------------------ writing */

/* Converts n elements of `as` at src to little-endian dtype bytes at dst. */
static void convert_out(const void *src, int as, int64_t n, int dtype, unsigned char *dst,
                        int little)
{
    for (int64_t i = 0; i < n; i++) {
        double v = as == AB_DT_F32 ? (double)((const float *)src)[i] : ((const double *)src)[i];
        if (dtype == AB_DT_F16) {
            uint16_t h = ab_f16_from_double(v);
            dst[2 * i] = (unsigned char)(h & 0xff);
            dst[2 * i + 1] = (unsigned char)(h >> 8);
        } else if (dtype == AB_DT_F32) {
            float x = (float)v;
            memcpy(dst + 4 * i, &x, 4);
        } else {
            memcpy(dst + 8 * i, &v, 8);
        }
    }
    if (!little && dtype != AB_DT_F16) swap_bytes(dst, n, dtype);
}

int ab_npy_write(const char *path, int dtype, int rank, const int64_t *shape, int as,
                 const void *data)
{
    enum { BLOCK = 1 << 16 };
    assert(dtype == AB_DT_F16 || dtype == AB_DT_F32 || dtype == AB_DT_F64);
    assert(as == AB_DT_F32 || as == AB_DT_F64);
    assert(rank >= 0 && rank <= AB_ARRAY_MAX_RANK);
    /* the dict, then spaces and a newline so the data starts on a multiple of 64 */
    char head[64 + 24 * AB_ARRAY_MAX_RANK + 128];
    int len =
        snprintf(head, sizeof head, "{'descr': '<f%d', 'fortran_order': False, 'shape': (", dtype);
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        n *= shape[i];
        len += snprintf(head + len, sizeof head - (size_t)len, "%lld%s", (long long)shape[i],
                        rank == 1      ? ","
                        : i + 1 < rank ? ", "
                                       : "");
    }
    len += snprintf(head + len, sizeof head - (size_t)len, "), }");
    int pre = 10, total = pre + len + 1;
    total = (total + 63) / 64 * 64;
    int hlen = total - pre; /* always < 65536 here: version 1.0 */
    memset(head + len, ' ', (size_t)(hlen - len));
    head[hlen - 1] = '\n';

    unsigned char *buf = malloc((size_t)BLOCK * 8);
    if (!buf) return ab_fail(AB_E_NOMEM, "'%s': cannot allocate write buffers", path);
    struct ab_outfile out;
    int rc = ab_outfile_open(&out, path);
    if (rc) {
        free(buf);
        return rc;
    }
    unsigned char preamble[10];
    memcpy(preamble, npy_magic, 6);
    preamble[6] = 1, preamble[7] = 0;
    preamble[8] = (unsigned char)(hlen & 0xff), preamble[9] = (unsigned char)(hlen >> 8);
    int ok = fwrite(preamble, 1, 10, out.f) == 10 &&
             fwrite(head, 1, (size_t)hlen, out.f) == (size_t)hlen;
    int little = host_is_little();
    for (int64_t i = 0; ok && i < n; i += BLOCK) {
        int64_t k = AB_MIN((int64_t)BLOCK, n - i);
        convert_out((const char *)data + i * as, as, k, dtype, buf, little);
        ok = fwrite(buf, (size_t)dtype, (size_t)k, out.f) == (size_t)k;
    }
    free(buf);
    return ab_outfile_commit(&out); /* a failed fwrite left the stream's error flag */
}

/* ------------------------------------------------------------------ sniffing */

int ab_array_sniff(const char *path, int *format)
{
    static const unsigned char h5_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    FILE *f;
    int64_t size = 0;
    *format = 0;
    int rc = open_regular(path, &f, &size);
    if (rc) return rc;
    unsigned char b[9] = {0};
    size_t got = fread(b, 1, sizeof b, f);
    fclose(f);
    size_t len = strlen(path);
    if (got >= 6 && !memcmp(b, npy_magic, 6))
        *format = AB_FMT_NPY;
    else if (got >= 8 && !memcmp(b, h5_sig, 8))
        *format = AB_FMT_H5;
    /* a ZIP archive starts with a local file header, or (empty) with the end record */
    else if (got >= 4 && (!memcmp(b, "PK\3\4", 4) || !memcmp(b, "PK\5\6", 4)))
        *format = AB_FMT_NPZ;
    else if (len > 12 && !strcmp(path + len - 12, ".safetensors"))
        *format = AB_FMT_SAFETENSORS;
    /* safetensors has no magic: an 8-byte header length below 2^32, then the JSON's '{' */
    else if (got == 9 && b[8] == '{' && !b[4] && !b[5] && !b[6] && !b[7])
        *format = AB_FMT_SAFETENSORS;
    else if (len > 4 && !strcmp(path + len - 4, ".npy"))
        return ab_fail(AB_E_DATA, "'%s': not a .npy file (bad magic)", path);
    else if (len > 4 && !strcmp(path + len - 4, ".npz"))
        return ab_fail(AB_E_DATA, "'%s': not a .npz file (no ZIP signature)", path);
    else
        return ab_fail(AB_E_DATA, "'%s': not a .npy, .npz, safetensors or HDF5 file", path);
    return AB_OK;
}
