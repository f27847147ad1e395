/* safetensors.c - the validating safetensors reader of safetensors.h. The JSON header is
 * parsed with jansson; everything it says is checked against the file before data is read. */
#include "io/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ab.h"

/* The format's dtype names and their item sizes in bytes. */
static const struct {
    const char *name;
    int size;
} st_dtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
    {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8},
};
enum { N_ST_DTYPES = sizeof st_dtypes / sizeof st_dtypes[0] };

/* Item size of a dtype name, 0 if unknown. */
static int st_dtype_size(const char *name)
{
    for (int i = 0; i < N_ST_DTYPES; i++)
        if (!strcmp(st_dtypes[i].name, name)) return st_dtypes[i].size;
    return 0;
}

void ab_safetensors_close(struct ab_safetensors *st)
{
    for (int i = 0; st->t && i < st->n; i++) free(st->t[i].name);
    free(st->t);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const struct ab_st_tensor *ab_safetensors_find(const struct ab_safetensors *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

/* A JSON integer in [0, 2^53] (what a JSON number can hold exactly), or -1. */
static int64_t json_count(const json_t *v)
{
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    return x < 0 || x > ((json_int_t)1 << 53) ? -1 : (int64_t)x;
}

/* Checks one header entry {"dtype", "shape", "data_offsets"} and fills t (name excepted). */
static int parse_entry(const char *path, const char *name, const json_t *v, int64_t data_len,
                       struct ab_st_tensor *t)
{
    if (!json_is_object(v))
        return ab_fail(AB_E_DATA, "'%s': tensor '%s': header entry is not an object", path, name);
    const json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape");
    const json_t *off = json_object_get(v, "data_offsets");
    if (!dt || !sh || !off || json_object_size(v) != 3)
        return ab_fail(AB_E_DATA,
                       "'%s': tensor '%s': entry must hold exactly dtype, shape and "
                       "data_offsets",
                       path, name);
    const char *dts = json_string_value(dt);
    int item = dts ? st_dtype_size(dts) : 0;
    if (!item)
        return ab_fail(AB_E_DATA, "'%s': tensor '%s': unknown dtype %s%s%s", path, name,
                       dts ? "'" : "", dts ? dts : "(not a string)", dts ? "'" : "");
    snprintf(t->dtype, sizeof t->dtype, "%s", dts);
    if (!json_is_array(sh) || json_array_size(sh) > AB_ARRAY_MAX_RANK)
        return ab_fail(AB_E_DATA,
                       "'%s': tensor '%s': shape must be a list of at most %d "
                       "dimensions",
                       path, name, AB_ARRAY_MAX_RANK);
    t->rank = (int)json_array_size(sh);
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        int64_t dim = json_count(json_array_get(sh, (size_t)i));
        if (dim < 0)
            return ab_fail(AB_E_DATA,
                           "'%s': tensor '%s': shape holds something other than a "
                           "non-negative integer",
                           path, name);
        t->shape[i] = dim;
        /* products past the data section are wrong whatever the offsets say */
        if (dim && n > data_len / dim + 1)
            n = data_len + 1;
        else
            n *= dim;
    }
    if (!json_is_array(off) || json_array_size(off) != 2)
        return ab_fail(AB_E_DATA, "'%s': tensor '%s': data_offsets must be [begin, end]", path,
                       name);
    t->begin = json_count(json_array_get(off, 0));
    t->end = json_count(json_array_get(off, 1));
    if (t->begin < 0 || t->end < t->begin)
        return ab_fail(AB_E_DATA,
                       "'%s': tensor '%s': data_offsets [%lld, %lld] are not ordered "
                       "non-negative offsets",
                       path, name, (long long)t->begin, (long long)t->end);
    if (t->end > data_len)
        return ab_fail(AB_E_DATA,
                       "'%s': tensor '%s': data_offsets end %lld lies past the data "
                       "section (%lld bytes): truncated file?",
                       path, name, (long long)t->end, (long long)data_len);
    if (n > data_len || t->end - t->begin != n * item)
        return ab_fail(AB_E_DATA,
                       "'%s': tensor '%s': data_offsets span %lld bytes, shape and "
                       "dtype %s need %s%lld",
                       path, name, (long long)(t->end - t->begin), dts,
                       n > data_len ? "more than " : "",
                       (long long)(n > data_len ? data_len : n * item));
    return AB_OK;
}

static int by_begin(const void *a, const void *b)
{
    const struct ab_st_tensor *x = a, *y = b;
    return x->begin < y->begin   ? -1
           : x->begin > y->begin ? 1
                                 : (x->end > y->end) - (x->end < y->end);
}

int ab_safetensors_open(struct ab_safetensors *st, const char *path)
{
    struct stat sb;
    FILE *f = NULL;
    char *text = NULL;
    json_t *root = NULL;
    int rc;
    memset(st, 0, sizeof *st);
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ab_fail(AB_E_NOFILE, "'%s': no such file", path);
        return ab_fail(AB_E_IO, "'%s': cannot read: %s", path, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode)) return ab_fail(AB_E_DATA, "'%s': is a directory", path);
    st->size = (int64_t)sb.st_size;
    st->path = strdup(path);
    f = fopen(path, "rb");
    if (!st->path || !f) {
        rc = !st->path ? ab_fail(AB_E_NOMEM, "'%s': out of memory", path)
                       : ab_fail(AB_E_IO, "'%s': cannot open: %s", path, strerror(errno));
        goto done;
    }
    unsigned char b[8];
    if (st->size < 8 || fread(b, 1, 8, f) != 8) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': truncated safetensors file (%lld bytes, shorter than "
                     "the header length)",
                     path, (long long)st->size);
        goto done;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    if (hlen > AB_ST_MAX_HEADER) {
        rc = ab_fail(AB_E_DATA, "'%s': safetensors header length %llu is over the %d byte limit",
                     path, (unsigned long long)hlen, AB_ST_MAX_HEADER);
        goto done;
    }
    if ((int64_t)hlen > st->size - 8) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': truncated safetensors file (header of %llu bytes, file "
                     "of %lld)",
                     path, (unsigned long long)hlen, (long long)st->size);
        goto done;
    }
    st->data_start = 8 + (int64_t)hlen;
    text = malloc((size_t)hlen + 1);
    if (!text) {
        rc = ab_fail(AB_E_NOMEM, "'%s': cannot allocate the safetensors header", path);
        goto done;
    }
    if (hlen && fread(text, 1, (size_t)hlen, f) != (size_t)hlen) {
        rc = ab_fail(AB_E_IO, "'%s': read failed", path);
        goto done;
    }
    json_error_t err;
    root = json_loadb(text, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        rc = ab_fail(AB_E_DATA, "'%s': safetensors header is not valid JSON (byte %d: %s)", path,
                     err.position, err.text);
        goto done;
    }
    if (!json_is_object(root)) {
        rc = ab_fail(AB_E_DATA, "'%s': safetensors header is not a JSON object", path);
        goto done;
    }
    st->t = calloc(json_object_size(root) + 1, sizeof *st->t);
    if (!st->t) {
        rc = ab_fail(AB_E_NOMEM, "'%s': cannot allocate the tensor table", path);
        goto done;
    }
    int64_t data_len = st->size - st->data_start;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (!strcmp(key, "__metadata__")) {
            const char *mk;
            json_t *mv;
            int ok = json_is_object(v);
            json_object_foreach(v, mk, mv) ok = ok && json_is_string(mv);
            if (!ok) {
                rc = ab_fail(AB_E_DATA, "'%s': __metadata__ must map names to strings", path);
                goto done;
            }
            continue;
        }
        struct ab_st_tensor *t = &st->t[st->n];
        if ((rc = parse_entry(path, key, v, data_len, t))) goto done;
        if (!(t->name = strdup(key))) {
            rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
            goto done;
        }
        st->n++;
    }
    /* the tensors must tile the data section: sorted by begin, each starts where the last
       ended (a smaller start is an overlap, a larger one a hole), the last ends the file */
    qsort(st->t, (size_t)st->n, sizeof *st->t, by_begin);
    int64_t at = 0;
    for (int i = 0; i < st->n; i++) {
        if (st->t[i].begin < at) {
            rc = ab_fail(AB_E_DATA, "'%s': tensors '%s' and '%s' overlap", path, st->t[i - 1].name,
                         st->t[i].name);
            goto done;
        }
        if (st->t[i].begin > at) {
            rc = ab_fail(AB_E_DATA,
                         "'%s': %lld unaccounted bytes before tensor '%s' (a hole in "
                         "the data section)",
                         path, (long long)(st->t[i].begin - at), st->t[i].name);
            goto done;
        }
        at = st->t[i].end;
    }
    if (at != data_len) {
        rc = ab_fail(AB_E_DATA, "'%s': the data section holds %lld bytes, the tensors %lld", path,
                     (long long)data_len, (long long)at);
        goto done;
    }
    rc = AB_OK;
done:
    if (root) json_decref(root);
    free(text);
    if (f) fclose(f);
    if (rc) ab_safetensors_close(st);
    return rc;
}

/* Reads the bytes of t into a fresh buffer. */
static int read_bytes(const struct ab_safetensors *st, const struct ab_st_tensor *t,
                      unsigned char **buf)
{
    int64_t len = t->end - t->begin;
    *buf = NULL;
    int rc = ab_check_fits(st->path, (double)len);
    if (rc) return rc;
    *buf = malloc((size_t)len + 1);
    if (!*buf) return ab_fail(AB_E_NOMEM, "'%s': cannot allocate tensor '%s'", st->path, t->name);
    FILE *f = fopen(st->path, "rb");
    int ok = f && fseeko(f, (off_t)(st->data_start + t->begin), SEEK_SET) == 0 &&
             fread(*buf, 1, (size_t)len, f) == (size_t)len;
    if (f) fclose(f);
    if (!ok) {
        free(*buf);
        *buf = NULL;
        return ab_fail(AB_E_IO, "'%s': cannot read tensor '%s'", st->path, t->name);
    }
    return AB_OK;
}

int ab_safetensors_read(const struct ab_safetensors *st, const struct ab_st_tensor *t, int as,
                        struct ab_array *out)
{
    unsigned char *buf = NULL;
    memset(out, 0, sizeof *out);
    int dtype = !strcmp(t->dtype, "F32")    ? AB_DT_F32
                : !strcmp(t->dtype, "F16")  ? AB_DT_F16
                : !strcmp(t->dtype, "BF16") ? AB_DT_BF16
                : !strcmp(t->dtype, "F64")  ? AB_DT_F64
                : !strcmp(t->dtype, "U8") || !strcmp(t->dtype, "BOOL") ? AB_DT_U8
                                            : 0;
    if (!dtype)
        return ab_fail(AB_E_DATA, "'%s': tensor '%s' holds %s (F32, F16, BF16 or F64 wanted; U8 or BOOL for masks)",
                       st->path, t->name, t->dtype);
    out->dtype = dtype, out->as = as, out->rank = t->rank, out->n = 1;
    for (int i = 0; i < t->rank; i++) out->shape[i] = t->shape[i], out->n *= t->shape[i];
    if (out->n == 0) return AB_OK;
    int rc = ab_check_fits(st->path, (double)out->n * as);
    if (!rc) rc = read_bytes(st, t, &buf);
    if (!rc && !(out->data = ab_alloc(ab_size_mul((size_t)out->n, (size_t)as))))
        rc = ab_fail(AB_E_NOMEM, "'%s': cannot allocate tensor '%s'", st->path, t->name);
    if (!rc) ab_array_convert(buf, dtype, out->n, as, out->data);
    free(buf);
    if (rc) ab_array_free(out);
    return rc;
}

int ab_safetensors_read_int(const struct ab_safetensors *st, const struct ab_st_tensor *t,
                            int64_t **x, int64_t *n)
{
    unsigned char *buf = NULL;
    int size = !strcmp(t->dtype, "I32") ? 4 : !strcmp(t->dtype, "I64") ? 8 : 0;
    *x = NULL, *n = 1;
    if (!size)
        return ab_fail(AB_E_DATA, "'%s': tensor '%s' holds %s (I32 or I64 wanted)", st->path,
                       t->name, t->dtype);
    for (int i = 0; i < t->rank; i++) *n *= t->shape[i];
    int rc = read_bytes(st, t, &buf);
    if (!rc && !(*x = ab_alloc(ab_size_mul((size_t)*n + 1, 8))))
        rc = ab_fail(AB_E_NOMEM, "'%s': cannot allocate tensor '%s'", st->path, t->name);
    for (int64_t i = 0; !rc && i < *n; i++) {
        /* little-endian two's complement, assembled from bytes */
        uint64_t u = 0;
        for (int k = size - 1; k >= 0; k--) u = u << 8 | buf[i * size + k];
        if (size == 4)
            (*x)[i] = (int32_t)(uint32_t)u;
        else
            memcpy(&(*x)[i], &u, 8);
    }
    free(buf);
    if (rc) ab_free(*x), *x = NULL;
    return rc;
}
