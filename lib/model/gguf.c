/* gguf.c - GGUF model files read and written (gguf.h): a bounds-checked parser over the
 * mapped file, the llama tensor map, dequantisation of F32 / F16 / BF16 / Q8_0, the vocabulary
 * as arrays, and the writer.
 *
 * Reading trusts no count in the file. It is mapped read-only and every field goes through a
 * cursor that checks it against the file's length first; counts and string lengths also have
 * caps, and an array's count is checked against the bytes left before it is walked, so a lying
 * header fails with AB_E_DATA before anything is allocated for it. Metadata is indexed, not
 * copied: keys and values stay in the map, and arrays are read when asked for. Every tensor the
 * model needs is checked (type, shape, byte range) before the model is allocated.
 *
 * Numbers in the file are little-endian and are assembled byte by byte, so the code is right on
 * any host. */
#include "model/gguf.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/half.h"

enum {
    GGUF_ALIGNMENT = 32, /* default, and what we write */
    GGUF_MAX_ALIGNMENT = 1 << 20,
    GGUF_MAX_KV = 1 << 14,      /* real files hold tens of keys */
    GGUF_MAX_TENSORS = 1 << 14, /* a 128-layer llama holds about 1200 */
    GGUF_MAX_KEY = 1 << 16,     /* bytes */
    GGUF_MAX_STRING = 1 << 24,  /* bytes: chat templates run to tens of kilobytes */
    GGUF_MAX_TOKEN = 1 << 16,   /* bytes of one vocabulary piece */
    GGUF_MAX_NAME = 256,        /* bytes of a tensor name (ggml's own limit is 64) */
    GGUF_MAX_DIMS = 4,
    GGUF_MAX_DEPTH = 8, /* arrays of arrays of ... */
    Q8_0_BLOCK = 32,    /* values per block */
    Q8_0_BYTES = 34,    /* fp16 scale + 32 int8 */
};

/* Metadata value types (GGUF's numbering). */
enum gv {
    GV_U8,
    GV_I8,
    GV_U16,
    GV_I16,
    GV_U32,
    GV_I32,
    GV_F32,
    GV_BOOL,
    GV_STR,
    GV_ARR,
    GV_U64,
    GV_I64,
    GV_F64,
    GV_COUNT
};
/* bytes of each scalar type; 0 for string and array */
static const uint8_t gv_size[GV_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const gv_name[GV_COUNT] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64",
};

/* ggml type names, for messages about tensors we cannot read. */
static const char *ggml_type_name(uint32_t t)
{
    static const char *const names[] = {
        [0] = "F32",     [1] = "F16",      [2] = "Q4_0",   [3] = "Q4_1",    [6] = "Q5_0",
        [7] = "Q5_1",    [8] = "Q8_0",     [9] = "Q8_1",   [10] = "Q2_K",   [11] = "Q3_K",
        [12] = "Q4_K",   [13] = "Q5_K",    [14] = "Q6_K",  [15] = "Q8_K",   [16] = "IQ2_XXS",
        [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S", [20] = "IQ4_NL", [21] = "IQ3_S",
        [22] = "IQ2_S",  [23] = "IQ4_XS",  [24] = "I8",    [25] = "I16",    [26] = "I32",
        [27] = "I64",    [28] = "F64",     [29] = "IQ1_M", [30] = "BF16",   [34] = "TQ1_0",
        [35] = "TQ2_0",  [39] = "MXFP4",
    };
    if (t < sizeof names / sizeof names[0] && names[t]) return names[t];
    return "unknown";
}

/* ------------------------------------------------------------------ the parsed file */

/* One metadata entry: key and value stay in the map. */
struct kv {
    const unsigned char *key;
    uint64_t key_len;
    uint32_t type;
    uint64_t off; /* where the value starts (for an array: its element type) */
};

/* One tensor info. */
struct tinfo {
    char name[GGUF_MAX_NAME + 1];
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] innermost */
    uint32_t type;
    uint64_t off; /* relative to the data section */
};

struct gguf {
    const char *path;
    const unsigned char *base; /* (size) the file, mapped read-only */
    uint64_t size;
    uint32_t version;
    uint64_t n_kv, n_tensor;
    struct kv *kv;        /* (n_kv) */
    struct tinfo *tensor; /* (n_tensor) */
    uint64_t alignment;
    uint64_t data_start; /* first byte of the data section */
};

/* A read position in the file. */
struct cur {
    const struct gguf *g;
    uint64_t pos;
};

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static float f32_of_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* Fails unless n more bytes follow the cursor; `what` names the field for the message. */
static int need(const struct cur *c, uint64_t n, const char *what)
{
    uint64_t left = c->g->size - c->pos;
    if (n <= left) return AB_OK;
    return ab_fail(AB_E_DATA,
                   "'%s': truncated GGUF file (%s at byte %llu needs %llu bytes, %llu "
                   "left)",
                   c->g->path, what, (unsigned long long)c->pos, (unsigned long long)n,
                   (unsigned long long)left);
}

static int rd_u32(struct cur *c, uint32_t *v, const char *what)
{
    int rc = need(c, 4, what);
    if (rc) return rc;
    *v = (uint32_t)get_le(c->g->base + c->pos, 4);
    c->pos += 4;
    return AB_OK;
}

static int rd_u64(struct cur *c, uint64_t *v, const char *what)
{
    int rc = need(c, 8, what);
    if (rc) return rc;
    *v = get_le(c->g->base + c->pos, 8);
    c->pos += 8;
    return AB_OK;
}

/* A gguf string (uint64 length, bytes) of at most cap bytes; *s points into the map (may be
 * NULL when not wanted). */
static int rd_str(struct cur *c, uint64_t cap, const unsigned char **s, uint64_t *len,
                  const char *what)
{
    uint64_t n;
    int rc = rd_u64(c, &n, what);
    if (rc) return rc;
    if (n > cap)
        return ab_fail(AB_E_DATA, "'%s': %s: string length %llu is implausible (limit %llu)",
                       c->g->path, what, (unsigned long long)n, (unsigned long long)cap);
    if ((rc = need(c, n, what))) return rc;
    if (s) *s = c->g->base + c->pos;
    *len = n;
    c->pos += n;
    return AB_OK;
}

/* Array header: element type and count, the count checked against the bytes left (every
 * element takes at least min_bytes) before anyone walks it. */
static int rd_array_head(struct cur *c, uint32_t *type, uint64_t *n, const char *what)
{
    int rc = rd_u32(c, type, what);
    if (!rc) rc = rd_u64(c, n, what);
    if (rc) return rc;
    if (*type >= GV_COUNT)
        return ab_fail(AB_E_DATA, "'%s': %s: array of unknown value type %u", c->g->path, what,
                       *type);
    uint64_t min_bytes = gv_size[*type] ? gv_size[*type] : *type == GV_STR ? 8 : 12;
    uint64_t left = c->g->size - c->pos;
    if (*n > left / min_bytes)
        return ab_fail(AB_E_DATA,
                       "'%s': %s: an array of %llu %s values cannot fit in the %llu "
                       "bytes left (truncated file or a corrupt count)",
                       c->g->path, what, (unsigned long long)*n, gv_name[*type],
                       (unsigned long long)left);
    return AB_OK;
}

/* Skips one value of the given type, checking every length on the way. */
static int skip_value(struct cur *c, uint32_t type, int depth, const char *what)
{
    if (type >= GV_COUNT)
        return ab_fail(AB_E_DATA, "'%s': %s has unknown value type %u", c->g->path, what, type);
    if (gv_size[type]) {
        int rc = need(c, gv_size[type], what);
        if (!rc) c->pos += gv_size[type];
        return rc;
    }
    uint64_t len;
    if (type == GV_STR) return rd_str(c, GGUF_MAX_STRING, NULL, &len, what);
    if (depth >= GGUF_MAX_DEPTH)
        return ab_fail(AB_E_DATA, "'%s': %s: arrays nested deeper than %d", c->g->path, what,
                       GGUF_MAX_DEPTH);
    uint32_t et;
    uint64_t n;
    int rc = rd_array_head(c, &et, &n, what);
    if (rc) return rc;
    if (gv_size[et]) {
        c->pos += n * gv_size[et]; /* fits: checked by rd_array_head */
        return AB_OK;
    }
    for (uint64_t i = 0; i < n; i++)
        if ((rc = skip_value(c, et, depth + 1, what))) return rc;
    return AB_OK;
}

static void gguf_close(struct gguf *g)
{
    if (g->base) munmap((void *)g->base, (size_t)g->size);
    free(g->kv);
    free(g->tensor);
    memset(g, 0, sizeof *g);
}

static const struct kv *find_kv(const struct gguf *g, const char *key)
{
    size_t n = strlen(key);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key_len == n && !memcmp(g->kv[i].key, key, n)) return &g->kv[i];
    return NULL;
}

static const struct tinfo *find_tensor(const struct gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensor; i++)
        if (!strcmp(g->tensor[i].name, name)) return &g->tensor[i];
    return NULL;
}

/* An integer-valued key (any integer type) in [lo, hi]; absent: def, or an error when
 * required. */
static int get_int(const struct gguf *g, const char *key, int64_t lo, int64_t hi, int64_t def,
                   int required, int64_t *v)
{
    const struct kv *kv = find_kv(g, key);
    if (!kv) {
        if (required) return ab_fail(AB_E_DATA, "'%s': metadata '%s' is missing", g->path, key);
        *v = def;
        return AB_OK;
    }
    const unsigned char *p = g->base + kv->off;
    uint64_t u;
    int neg = 0;
    switch (kv->type) {
    case GV_U8:
    case GV_U16:
    case GV_U32:
    case GV_U64: u = get_le(p, gv_size[kv->type]); break;
    case GV_I8:
    case GV_I16:
    case GV_I32:
    case GV_I64: {
        int bits = 8 * gv_size[kv->type];
        u = get_le(p, gv_size[kv->type]);
        if (u >> (bits - 1) & 1) { /* negative: magnitude of the two's complement */
            neg = 1;
            u = bits == 64 ? ~u + 1 : (((uint64_t)1 << bits) - u);
        }
        break;
    }
    default:
        return ab_fail(AB_E_DATA, "'%s': metadata '%s' is a %s, not an integer", g->path, key,
                       gv_name[kv->type]);
    }
    if (neg || u > (uint64_t)hi || (int64_t)u < lo)
        return ab_fail(AB_E_DATA, "'%s': metadata '%s' = %s%llu is out of range [%lld, %lld]",
                       g->path, key, neg ? "-" : "", (unsigned long long)u, (long long)lo,
                       (long long)hi);
    *v = (int64_t)u;
    return AB_OK;
}

/* The shortest decimal (as a double) that rounds to float x: a float32 key written from 1e-5
 * reads back as 1e-5, not 9.99999974738e-06, so configurations survive a round trip. */
static double f32_decimal(float x)
{
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)x);
        double d = strtod(buf, NULL);
        if ((float)d == x) return d;
    }
    return x;
}

/* A float32 or float64 key, finite and > 0; absent: def. Float32 values are read as
 * f32_decimal gives them. */
static int get_positive(const struct gguf *g, const char *key, double def, double *v)
{
    const struct kv *kv = find_kv(g, key);
    if (!kv) {
        *v = def;
        return AB_OK;
    }
    const unsigned char *p = g->base + kv->off;
    if (kv->type == GV_F32) {
        *v = f32_decimal(f32_of_bits((uint32_t)get_le(p, 4)));
    } else if (kv->type == GV_F64) {
        uint64_t u = get_le(p, 8);
        memcpy(v, &u, 8);
    } else {
        return ab_fail(AB_E_DATA, "'%s': metadata '%s' is a %s, not a float", g->path, key,
                       gv_name[kv->type]);
    }
    if (!isfinite(*v) || *v <= 0)
        return ab_fail(AB_E_DATA, "'%s': metadata '%s' = %g must be positive", g->path, key, *v);
    return AB_OK;
}

/* A string key: *s (into the map) and *len, or *s = NULL when absent. */
static int get_string(const struct gguf *g, const char *key, const unsigned char **s, uint64_t *len)
{
    const struct kv *kv = find_kv(g, key);
    *s = NULL, *len = 0;
    if (!kv) return AB_OK;
    if (kv->type != GV_STR)
        return ab_fail(AB_E_DATA, "'%s': metadata '%s' is a %s, not a string", g->path, key,
                       gv_name[kv->type]);
    *len = get_le(g->base + kv->off, 8);
    *s = g->base + kv->off + 8; /* in the file: checked by the parse */
    return AB_OK;
}

/* An array key of element type want: a cursor on its first element and the count; *n = -1
 * when absent. */
static int get_array(const struct gguf *g, const char *key, uint32_t want, struct cur *c,
                     int64_t *n)
{
    const struct kv *kv = find_kv(g, key);
    *n = -1;
    if (!kv) return AB_OK;
    if (kv->type != GV_ARR)
        return ab_fail(AB_E_DATA, "'%s': metadata '%s' is a %s, not an array", g->path, key,
                       gv_name[kv->type]);
    uint32_t et = (uint32_t)get_le(g->base + kv->off, 4);
    if (et != want)
        return ab_fail(AB_E_DATA, "'%s': metadata '%s' is an array of %s, not of %s", g->path, key,
                       et < GV_COUNT ? gv_name[et] : "?", gv_name[want]);
    uint64_t count = get_le(g->base + kv->off + 4, 8);
    if (count > INT32_MAX)
        return ab_fail(AB_E_DATA, "'%s': metadata '%s' holds %llu values (limit %d)", g->path, key,
                       (unsigned long long)count, INT32_MAX);
    c->g = g;
    c->pos = kv->off + 12;
    *n = (int64_t)count;
    return AB_OK;
}

/* Maps the file and parses header, metadata and tensor infos. On failure g is closed. */
static int gguf_open(const char *path, struct gguf *g)
{
    struct stat st;
    char what[GGUF_MAX_NAME + 64];
    int rc = AB_OK;
    memset(g, 0, sizeof *g);
    g->path = path;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ab_fail(AB_E_NOFILE, "'%s': no such file", path);
        return ab_fail(AB_E_IO, "'%s': cannot read: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return ab_fail(AB_E_DATA, "'%s': is a directory", path);
    if (st.st_size < 4)
        return ab_fail(AB_E_DATA, "'%s': not a GGUF file (%lld bytes)", path,
                       (long long)st.st_size);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ab_fail(AB_E_IO, "'%s': cannot open: %s", path, strerror(errno));
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return ab_fail(AB_E_IO, "'%s': cannot map: %s", path, strerror(errno));
    g->base = map;
    g->size = (uint64_t)st.st_size;

    struct cur c = {g, 0};
    if (memcmp(g->base, "GGUF", 4)) {
        rc = ab_fail(AB_E_DATA, "'%s': not a GGUF file (bad magic)", path);
        goto fail;
    }
    c.pos = 4;
    if ((rc = rd_u32(&c, &g->version, "the version"))) goto fail;
    if (g->version == 1) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': GGUF version 1 (32-bit counts) is not supported; "
                     "convert the model again with a current llama.cpp",
                     path);
        goto fail;
    }
    if (g->version != 2 && g->version != 3) {
        uint32_t sw = __builtin_bswap32(g->version);
        rc = sw == 2 || sw == 3
                 ? ab_fail(AB_E_DATA, "'%s': big-endian GGUF files are not supported", path)
                 : ab_fail(AB_E_DATA, "'%s': unsupported GGUF version %u (2 and 3 known)", path,
                           g->version);
        goto fail;
    }
    if ((rc = rd_u64(&c, &g->n_tensor, "the tensor count"))) goto fail;
    if ((rc = rd_u64(&c, &g->n_kv, "the metadata count"))) goto fail;
    if (g->n_tensor > GGUF_MAX_TENSORS || g->n_kv > GGUF_MAX_KV) {
        rc = ab_fail(AB_E_DATA, "'%s': %s count %llu is implausible (limit %d)", path,
                     g->n_kv > GGUF_MAX_KV ? "metadata" : "tensor",
                     (unsigned long long)(g->n_kv > GGUF_MAX_KV ? g->n_kv : g->n_tensor),
                     g->n_kv > GGUF_MAX_KV ? GGUF_MAX_KV : GGUF_MAX_TENSORS);
        goto fail;
    }
    g->kv = calloc(g->n_kv + 1, sizeof *g->kv);
    g->tensor = calloc(g->n_tensor + 1, sizeof *g->tensor);
    if (!g->kv || !g->tensor) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
        goto fail;
    }

    for (uint64_t i = 0; i < g->n_kv; i++) {
        struct kv *kv = &g->kv[i];
        snprintf(what, sizeof what, "the key of metadata entry %llu", (unsigned long long)i);
        if ((rc = rd_str(&c, GGUF_MAX_KEY, &kv->key, &kv->key_len, what))) goto fail;
        snprintf(what, sizeof what, "metadata '%.*s'", (int)AB_MIN(kv->key_len, 80),
                 (const char *)kv->key);
        for (uint64_t j = 0; j < i; j++)
            if (g->kv[j].key_len == kv->key_len && !memcmp(g->kv[j].key, kv->key, kv->key_len)) {
                rc = ab_fail(AB_E_DATA, "'%s': %s is given twice", path, what);
                goto fail;
            }
        if ((rc = rd_u32(&c, &kv->type, what))) goto fail;
        kv->off = c.pos;
        if ((rc = skip_value(&c, kv->type, 0, what))) goto fail;
    }

    for (uint64_t i = 0; i < g->n_tensor; i++) {
        struct tinfo *t = &g->tensor[i];
        const unsigned char *name;
        uint64_t len;
        snprintf(what, sizeof what, "the name of tensor %llu", (unsigned long long)i);
        if ((rc = rd_str(&c, GGUF_MAX_NAME, &name, &len, what))) goto fail;
        if (memchr(name, 0, (size_t)len)) {
            rc = ab_fail(AB_E_DATA, "'%s': %s holds a NUL byte", path, what);
            goto fail;
        }
        memcpy(t->name, name, (size_t)len);
        snprintf(what, sizeof what, "tensor '%s'", t->name);
        if ((rc = rd_u32(&c, &t->n_dims, what))) goto fail;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS) {
            rc = ab_fail(AB_E_DATA, "'%s': %s has %u dimensions (1 to %d supported)", path, what,
                         t->n_dims, GGUF_MAX_DIMS);
            goto fail;
        }
        uint64_t count = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if ((rc = rd_u64(&c, &t->ne[d], what))) goto fail;
            if (t->ne[d] == 0 || t->ne[d] > ((uint64_t)1 << 62) / count) {
                rc = ab_fail(AB_E_DATA, "'%s': %s has an impossible dimension %llu", path, what,
                             (unsigned long long)t->ne[d]);
                goto fail;
            }
            count *= t->ne[d];
        }
        if ((rc = rd_u32(&c, &t->type, what)) || (rc = rd_u64(&c, &t->off, what))) goto fail;
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->tensor[j].name, t->name)) {
                rc = ab_fail(AB_E_DATA, "'%s': %s is given twice", path, what);
                goto fail;
            }
    }

    int64_t align;
    if ((rc = get_int(g, "general.alignment", 1, GGUF_MAX_ALIGNMENT, GGUF_ALIGNMENT, 0, &align)))
        goto fail;
    if (align & (align - 1)) {
        rc = ab_fail(AB_E_DATA, "'%s': general.alignment %lld is not a power of two", path,
                     (long long)align);
        goto fail;
    }
    g->alignment = (uint64_t)align;
    g->data_start = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    for (uint64_t i = 0; i < g->n_tensor; i++)
        if (g->tensor[i].off % g->alignment) {
            rc = ab_fail(AB_E_DATA,
                         "'%s': tensor '%s' starts at offset %llu, not a multiple of "
                         "the alignment %llu",
                         path, g->tensor[i].name, (unsigned long long)g->tensor[i].off,
                         (unsigned long long)g->alignment);
            goto fail;
        }
    return AB_OK;
fail:
    gguf_close(g);
    return rc;
}

/* ------------------------------------------------------------------ the llama tensor map */

/* Weight buffers of struct ab_model, by index. */
enum wbuf {
    W_TOK,
    W_RMS_ATT,
    W_WQ,
    W_WK,
    W_WV,
    W_WO,
    W_RMS_FFN,
    W_W1,
    W_W2,
    W_W3,
    W_RMS_FINAL,
    W_CLS
};

static float *wbuf_ptr(const struct ab_model *m, int b)
{
    float *const p[] = {m->tok_emb, m->rms_att, m->wq, m->wk, m->wv,        m->wo,
                        m->rms_ffn, m->w1,      m->w2, m->w3, m->rms_final, m->wcls};
    return p[b];
}

/* One GGUF tensor of a llama model and where it lives in struct ab_model. */
struct llama_tensor {
    char name[48];
    int buf;     /* enum wbuf */
    size_t at;   /* first element in that buffer */
    int64_t ne0; /* innermost dimension (`in` of a linear map) */
    int64_t ne1; /* rows (`out`); 0 for a vector */
};

static int64_t llama_n_tensors(const struct ab_model_config *c, int separate_cls)
{
    return 2 + 9 * c->n_layer + (separate_cls ? 1 : 0);
}

static void lt_set(struct llama_tensor *t, const char *name, int buf, size_t at, int64_t ne0,
                   int64_t ne1)
{
    snprintf(t->name, sizeof t->name, "%s", name);
    t->buf = buf, t->at = at, t->ne0 = ne0, t->ne1 = ne1;
}

/* Fills t (room for llama_n_tensors) with the tensors of config c in file order (llama.cpp's
 * names); returns their count. */
static int64_t llama_tensors(const struct ab_model_config *c, int separate_cls,
                             struct llama_tensor *t)
{
    int64_t D = c->dim, F = c->hidden_dim, V = c->vocab;
    int64_t qd = c->n_head * c->head_dim, kvd = c->n_kv_head * c->head_dim;
    int64_t i = 0;
    char name[48];
    lt_set(&t[i++], "token_embd.weight", W_TOK, 0, D, V);
    for (int64_t l = 0; l < c->n_layer; l++) {
        size_t L = (size_t)l;
#define BLK(suffix, buf, at, ne0, ne1)                                                             \
    (snprintf(name, sizeof name, "blk.%lld." suffix ".weight", (long long)l),                      \
     lt_set(&t[i++], name, buf, at, ne0, ne1))
        BLK("attn_norm", W_RMS_ATT, L * (size_t)D, D, 0);
        BLK("attn_q", W_WQ, L * (size_t)(qd * D), D, qd);
        BLK("attn_k", W_WK, L * (size_t)(kvd * D), D, kvd);
        BLK("attn_v", W_WV, L * (size_t)(kvd * D), D, kvd);
        BLK("attn_output", W_WO, L * (size_t)(D * qd), qd, D);
        BLK("ffn_norm", W_RMS_FFN, L * (size_t)D, D, 0);
        BLK("ffn_gate", W_W1, L * (size_t)(F * D), D, F);
        BLK("ffn_down", W_W2, L * (size_t)(D * F), F, D);
        BLK("ffn_up", W_W3, L * (size_t)(F * D), D, F);
#undef BLK
    }
    lt_set(&t[i++], "output_norm.weight", W_RMS_FINAL, 0, D, 0);
    if (separate_cls) lt_set(&t[i++], "output.weight", W_CLS, 0, D, V);
    return i;
}

/* Bytes of a tensor of type `type` with n values in rows of ne0; 0 for a type we cannot read
 * (or Q8_0 rows that are not whole blocks). */
static uint64_t tensor_bytes(uint32_t type, uint64_t ne0, uint64_t n)
{
    switch (type) {
    case AB_GGML_F32: return 4 * n;
    case AB_GGML_F16:
    case AB_GGML_BF16: return 2 * n;
    case AB_GGML_Q8_0: return ne0 % Q8_0_BLOCK ? 0 : n / Q8_0_BLOCK * Q8_0_BYTES;
    default: return 0;
    }
}

/* "[64, 40]" */
static void shape_text(const uint64_t *ne, uint32_t n_dims, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < n_dims && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%llu", d ? ", " : "",
                                (unsigned long long)ne[d]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* Checks the file's tensor for lt: present, shape [ne0] or [ne0, ne1] (trailing 1s allowed),
 * a type we read, its bytes inside the file. *ti gets it. */
static int check_tensor(const struct gguf *g, const struct llama_tensor *lt,
                        const struct tinfo **ti)
{
    const struct tinfo *t = find_tensor(g, lt->name);
    if (!t) return ab_fail(AB_E_DATA, "'%s': tensor '%s' is missing", g->path, lt->name);
    uint64_t want[GGUF_MAX_DIMS] = {(uint64_t)lt->ne0, (uint64_t)lt->ne1, 1, 1};
    uint32_t want_dims = lt->ne1 ? 2 : 1;
    int ok = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t have = d < t->n_dims ? t->ne[d] : 1;
        if (have != (d < want_dims ? want[d] : 1)) ok = 0;
    }
    if (!ok) {
        char have_s[128], want_s[128];
        shape_text(t->ne, t->n_dims, have_s, sizeof have_s);
        shape_text(want, want_dims, want_s, sizeof want_s);
        return ab_fail(AB_E_DATA, "'%s': tensor '%s' has shape %s, the metadata says %s", g->path,
                       lt->name, have_s, want_s);
    }
    uint64_t n = (uint64_t)lt->ne0 * (uint64_t)(lt->ne1 ? lt->ne1 : 1);
    uint64_t bytes = tensor_bytes(t->type, (uint64_t)lt->ne0, n);
    if (!bytes && t->type == AB_GGML_Q8_0)
        return ab_fail(AB_E_DATA,
                       "'%s': tensor '%s' is Q8_0 with rows of %lld values, not a "
                       "multiple of %d",
                       g->path, lt->name, (long long)lt->ne0, Q8_0_BLOCK);
    if (!bytes)
        return ab_fail(AB_E_DATA,
                       "'%s': tensor '%s' has type %s (%u), which is not supported "
                       "(F32, F16, BF16 and Q8_0 are)",
                       g->path, lt->name, ggml_type_name(t->type), t->type);
    if (g->data_start > g->size || t->off > g->size - g->data_start ||
        bytes > g->size - g->data_start - t->off)
        return ab_fail(AB_E_DATA,
                       "'%s': tensor '%s' (%llu bytes at data offset %llu) runs past "
                       "the end of the file (%llu bytes)",
                       g->path, lt->name, (unsigned long long)bytes, (unsigned long long)t->off,
                       (unsigned long long)g->size);
    *ti = t;
    return AB_OK;
}

/* Dequantises n values of tensor t to dst. f16 is the binary16 table (65536). */
static void dequantise(const struct gguf *g, const struct tinfo *t, uint64_t n, const float *f16,
                       float *dst)
{
    const unsigned char *p = g->base + g->data_start + t->off;
    switch (t->type) {
    case AB_GGML_F32:
        for (uint64_t i = 0; i < n; i++) dst[i] = f32_of_bits((uint32_t)get_le(p + 4 * i, 4));
        break;
    case AB_GGML_F16:
        for (uint64_t i = 0; i < n; i++) dst[i] = f16[get_le(p + 2 * i, 2)];
        break;
    case AB_GGML_BF16:
        for (uint64_t i = 0; i < n; i++) dst[i] = ab_bf16_to_float((uint16_t)get_le(p + 2 * i, 2));
        break;
    case AB_GGML_Q8_0:
        /* x = d * q: d has 11 significant bits and q 8, so the float product is exact */
        for (uint64_t b = 0; b < n / Q8_0_BLOCK; b++) {
            const unsigned char *blk = p + b * Q8_0_BYTES;
            float d = f16[get_le(blk, 2)];
            for (int j = 0; j < Q8_0_BLOCK; j++)
                dst[b * Q8_0_BLOCK + j] = d * (float)(int8_t)blk[2 + j];
        }
        break;
    default: assert(!"checked by check_tensor");
    }
}

/* The model configuration from the llama.* metadata. */
static int read_config(const struct gguf *g, struct ab_model_config *c)
{
    const unsigned char *arch;
    uint64_t len;
    int64_t v;
    int rc = get_string(g, "general.architecture", &arch, &len);
    if (rc) return rc;
    if (!arch)
        return ab_fail(AB_E_DATA, "'%s': metadata 'general.architecture' is missing", g->path);
    if (len != 5 || memcmp(arch, "llama", 5))
        return ab_fail(AB_E_DATA, "'%s': architecture '%.*s' is not supported (llama only)",
                       g->path, (int)AB_MIN(len, 64), (const char *)arch);
    memset(c, 0, sizeof *c);
    const int64_t big = INT32_MAX;
    if ((rc = get_int(g, "llama.embedding_length", 1, big, 0, 1, &c->dim)) ||
        (rc = get_int(g, "llama.feed_forward_length", 1, big, 0, 1, &c->hidden_dim)) ||
        (rc = get_int(g, "llama.block_count", 1, big, 0, 1, &c->n_layer)) ||
        (rc = get_int(g, "llama.attention.head_count", 1, big, 0, 1, &c->n_head)) ||
        (rc = get_int(g, "llama.attention.head_count_kv", 1, big, c->n_head, 0, &c->n_kv_head)) ||
        (rc = get_int(g, "llama.context_length", 1, big, 0, 1, &c->seq_len)) ||
        (rc = get_positive(g, "llama.rope.freq_base", 10000, &c->rope_theta)) ||
        (rc = get_positive(g, "llama.attention.layer_norm_rms_epsilon", 1e-5, &c->norm_eps)))
        return rc;
    if (c->dim % c->n_head)
        return ab_fail(AB_E_DATA, "'%s': embedding length %lld is not a multiple of %lld heads",
                       g->path, (long long)c->dim, (long long)c->n_head);
    c->head_dim = c->dim / c->n_head;
    /* keys that, when present, must agree with head_dim: we rotate and attend over all of it */
    static const char *const per_head[] = {
        "llama.rope.dimension_count", "llama.attention.key_length", "llama.attention.value_length"};
    for (int i = 0; i < 3; i++) {
        if ((rc = get_int(g, per_head[i], 1, big, c->head_dim, 0, &v))) return rc;
        if (v != c->head_dim)
            return ab_fail(AB_E_DATA,
                           "'%s': metadata '%s' = %lld differs from the head size "
                           "%lld (not supported)",
                           g->path, per_head[i], (long long)v, (long long)c->head_dim);
    }
    /* vocabulary: the token list, else llama.vocab_size */
    struct cur tc;
    int64_t n_tok;
    if ((rc = get_array(g, "tokenizer.ggml.tokens", GV_STR, &tc, &n_tok))) return rc;
    if (n_tok < 0 && (rc = get_int(g, "llama.vocab_size", 1, big, -1, 0, &n_tok))) return rc;
    if (n_tok <= 0)
        return ab_fail(AB_E_DATA,
                       "'%s': no vocabulary (neither tokenizer.ggml.tokens nor "
                       "llama.vocab_size)",
                       g->path);
    c->vocab = n_tok;
    return ab_model_config_check(c, g->path);
}

int ab_gguf_load_model(const char *path, struct ab_model *m)
{
    struct gguf g;
    struct ab_model_config c;
    struct llama_tensor *lt = NULL;
    const struct tinfo **ti = NULL;
    float *f16 = NULL;
    memset(m, 0, sizeof *m);
    int rc = gguf_open(path, &g);
    if (rc) return rc;
    if ((rc = read_config(&g, &c))) goto done;
    /* 2 + 9 L tensors at least: bounds what we allocate by what the file holds */
    if (c.n_layer > ((int64_t)g.n_tensor - 2) / 9) {
        rc = ab_fail(AB_E_DATA, "'%s': %lld layers need %lld tensors, the file has %llu", path,
                     (long long)c.n_layer, (long long)(2 + 9 * c.n_layer),
                     (unsigned long long)g.n_tensor);
        goto done;
    }
    int separate = find_tensor(&g, "output.weight") != NULL;
    int64_t n_lt = llama_n_tensors(&c, separate);
    lt = calloc((size_t)n_lt, sizeof *lt);
    ti = calloc((size_t)n_lt, sizeof *ti);
    f16 = malloc(65536 * sizeof *f16);
    if (!lt || !ti || !f16) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
        goto done;
    }
    llama_tensors(&c, separate, lt);
    for (int64_t i = 0; i < n_lt; i++)
        if ((rc = check_tensor(&g, &lt[i], &ti[i]))) goto done;
    /* a layer's tensors past llama.block_count: the count lies, and the model would silently
     * lose layers (other extra tensors, such as rope_freqs, are llama.cpp's and left alone) */
    for (uint64_t j = 0; j < g.n_tensor; j++) {
        long long blk;
        if (sscanf(g.tensor[j].name, "blk.%lld.", &blk) == 1 && (blk < 0 || blk >= c.n_layer)) {
            rc = ab_fail(AB_E_DATA, "'%s': tensor '%s' belongs to no layer: llama.block_count "
                         "is %lld", path, g.tensor[j].name, (long long)c.n_layer);
            goto done;
        }
    }

    if ((rc = ab_model_alloc(m, &c, !separate))) goto done;
    for (uint32_t h = 0; h < 65536; h++) f16[h] = (float)ab_f16_to_double((uint16_t)h);
    int64_t n_of_type[4] = {0}; /* F32, F16, BF16, Q8_0 */
    for (int64_t i = 0; i < n_lt; i++) {
        uint64_t n = (uint64_t)lt[i].ne0 * (uint64_t)(lt[i].ne1 ? lt[i].ne1 : 1);
        dequantise(&g, ti[i], n, f16, wbuf_ptr(m, lt[i].buf) + lt[i].at);
        uint32_t t = ti[i]->type;
        n_of_type[t == AB_GGML_F32 ? 0 : t == AB_GGML_F16 ? 1 : t == AB_GGML_BF16 ? 2 : 3]++;
    }

    /* description: "name.gguf: gguf v3 llama, dim .., tensors F32 x5, Q8_0 x20" */
    static const char *const tname[4] = {"F32", "F16", "BF16", "Q8_0"};
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char types[128];
    size_t used = 0;
    types[0] = 0;
    for (int k = 0; k < 4; k++)
        if (n_of_type[k])
            used += (size_t)snprintf(types + used, sizeof types - used, "%s%s x%lld",
                                     used ? ", " : "", tname[k], (long long)n_of_type[k]);
    size_t dlen = strlen(base) + 400;
    m->description = malloc(dlen);
    m->path = strdup(path);
    if (!m->description || !m->path) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
        goto done;
    }
    snprintf(m->description, dlen,
             "%s: gguf v%u llama, dim %lld, hidden %lld, %lld layers, %lld heads (%lld kv) of "
             "%lld, vocab %lld, context %lld, %s classifier; tensors %s",
             base, g.version, (long long)c.dim, (long long)c.hidden_dim, (long long)c.n_layer,
             (long long)c.n_head, (long long)c.n_kv_head, (long long)c.head_dim, (long long)c.vocab,
             (long long)c.seq_len, separate ? "separate" : "shared", types);
    m->format = "gguf";
done:
    if (rc) ab_model_free(m);
    free(lt);
    free(ti);
    free(f16);
    gguf_close(&g);
    return rc;
}

/* ------------------------------------------------------------------ the vocabulary */

void ab_gguf_vocab_free(struct ab_gguf_vocab *v)
{
    if (!v) return;
    for (int64_t i = 0; v->piece && i < v->n_vocab; i++) free(v->piece[i]);
    free(v->piece);
    free(v->score);
    free(v->type);
    memset(v, 0, sizeof *v);
}

/* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space */
static const char sp_space[] = "\xe2\x96\x81";

int ab_gguf_read_vocab(const char *path, struct ab_gguf_vocab *v)
{
    struct gguf g;
    struct cur tc, sc, yc;
    int64_t n, n_score, n_type, bos, eos;
    const unsigned char *model;
    uint64_t len;
    memset(v, 0, sizeof *v);
    int rc = gguf_open(path, &g);
    if (rc) return rc;
    if ((rc = get_string(&g, "tokenizer.ggml.model", &model, &len))) goto done;
    if (model && (len != 5 || memcmp(model, "llama", 5))) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': tokenizer '%.*s' is not supported (llama, SentencePiece "
                     "BPE, only)",
                     path, (int)AB_MIN(len, 64), (const char *)model);
        goto done;
    }
    if ((rc = get_array(&g, "tokenizer.ggml.tokens", GV_STR, &tc, &n))) goto done;
    if (n <= 0) {
        rc = ab_fail(AB_E_DATA, "'%s': no vocabulary (tokenizer.ggml.tokens is %s)", path,
                     n < 0 ? "missing" : "empty");
        goto done;
    }
    if ((rc = get_array(&g, "tokenizer.ggml.scores", GV_F32, &sc, &n_score)) ||
        (rc = get_array(&g, "tokenizer.ggml.token_type", GV_I32, &yc, &n_type)))
        goto done;
    if ((n_score >= 0 && n_score != n) || (n_type >= 0 && n_type != n)) {
        rc = ab_fail(AB_E_DATA, "'%s': %lld tokens but %lld %s", path, (long long)n,
                     (long long)(n_score >= 0 && n_score != n ? n_score : n_type),
                     n_score >= 0 && n_score != n ? "scores" : "token types");
        goto done;
    }
    if ((rc = get_int(&g, "tokenizer.ggml.bos_token_id", 0, n - 1, AB_MIN(1, n - 1), 0, &bos)) ||
        (rc = get_int(&g, "tokenizer.ggml.eos_token_id", 0, n - 1, AB_MIN(2, n - 1), 0, &eos)))
        goto done;
    v->piece = calloc((size_t)n, sizeof *v->piece);
    v->score = calloc((size_t)n, sizeof *v->score);
    v->type = calloc((size_t)n, sizeof *v->type);
    if (!v->piece || !v->score || !v->type) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory for %lld tokens", path, (long long)n);
        goto done;
    }
    v->n_vocab = n;
    v->bos = (int32_t)bos, v->eos = (int32_t)eos;
    char what[64];
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *s;
        snprintf(what, sizeof what, "token %lld", (long long)i);
        if ((rc = rd_str(&tc, GGUF_MAX_TOKEN, &s, &len, what))) goto done;
        if (memchr(s, 0, (size_t)len)) {
            rc = ab_fail(AB_E_DATA, "'%s': token %lld holds a NUL byte", path, (long long)i);
            goto done;
        }
        /* "▁" (3 bytes) -> ' ' (1 byte): never longer than the original */
        char *p = malloc((size_t)len + 1);
        if (!p) {
            rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
            goto done;
        }
        size_t o = 0;
        for (uint64_t k = 0; k < len;) {
            if (len - k >= 3 && !memcmp(s + k, sp_space, 3)) {
                p[o++] = ' ';
                k += 3;
            } else {
                p[o++] = (char)s[k++];
            }
        }
        p[o] = 0;
        v->piece[i] = p;
        v->score[i] =
            n_score < 0 ? 0.0f : f32_of_bits((uint32_t)get_le(g.base + sc.pos + 4 * i, 4));
        v->type[i] = n_type < 0 ? 1 : (int32_t)(uint32_t)get_le(g.base + yc.pos + 4 * i, 4);
    }
done:
    if (rc) ab_gguf_vocab_free(v);
    gguf_close(&g);
    return rc;
}

/* ------------------------------------------------------------------ writing */

/* Output with a byte count; in counting mode (f NULL) nothing is written. */
struct out {
    FILE *f;
    uint64_t pos;
    int err;
    int64_t n_kv; /* key/value pairs emitted */
};

static void put(struct out *o, const void *p, size_t n)
{
    if (o->f && !o->err && fwrite(p, 1, n, o->f) != n) o->err = 1;
    o->pos += n;
}

static void put_le(struct out *o, uint64_t v, int n)
{
    unsigned char b[8];
    for (int i = 0; i < n; i++) b[i] = (unsigned char)(v >> (8 * i));
    put(o, b, (size_t)n);
}

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static void put_str(struct out *o, const char *s, size_t len)
{
    put_le(o, len, 8);
    put(o, s, len);
}

static void put_pad(struct out *o, uint64_t to)
{
    static const unsigned char zero[64];
    while (o->pos < to) put(o, zero, (size_t)AB_MIN(to - o->pos, (uint64_t)sizeof zero));
}

static void kv_head(struct out *o, const char *key, uint32_t type)
{
    put_str(o, key, strlen(key));
    put_le(o, type, 4);
    o->n_kv++;
}

static void kv_u32(struct out *o, const char *key, uint64_t v)
{
    assert(v <= UINT32_MAX);
    kv_head(o, key, GV_U32);
    put_le(o, v, 4);
}

static void kv_f32(struct out *o, const char *key, double v)
{
    kv_head(o, key, GV_F32);
    put_le(o, f32_bits((float)v), 4);
}

static void kv_string(struct out *o, const char *key, const char *s)
{
    kv_head(o, key, GV_STR);
    put_str(o, s, strlen(s));
}

/* "<0xXX>" with two hex digits: a byte-fallback piece */
static int is_byte_piece(const char *s)
{
    return strlen(s) == 6 && !strncmp(s, "<0x", 3) && isxdigit((unsigned char)s[3]) &&
           isxdigit((unsigned char)s[4]) && s[5] == '>';
}

/* llama.cpp token types */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_BYTE = 6 };

static int32_t token_type(const struct ab_tokenizer *t, int64_t i)
{
    if (i == t->bos || i == t->eos) return TOK_CONTROL;
    if (i == 0 && !strcmp(t->piece[0], "<unk>")) return TOK_UNKNOWN;
    if (is_byte_piece(t->piece[i])) return TOK_BYTE;
    return TOK_NORMAL;
}

/* The metadata section; returns nothing, counts pairs in o->n_kv. */
static void write_meta(struct out *o, const struct ab_model *m, const struct ab_tokenizer *t,
                       const char *name, int type)
{
    const struct ab_model_config *c = &m->c;
    /* llama.cpp's file types: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7, MOSTLY_BF16 32 */
    uint32_t ftype = type == AB_GGML_F16    ? 1
                     : type == AB_GGML_Q8_0 ? 7
                     : type == AB_GGML_BF16 ? 32
                                            : 0;
    kv_string(o, "general.architecture", "llama");
    kv_string(o, "general.name", name);
    kv_u32(o, "general.alignment", GGUF_ALIGNMENT);
    kv_u32(o, "general.file_type", ftype);
    kv_u32(o, "llama.context_length", (uint64_t)c->seq_len);
    kv_u32(o, "llama.embedding_length", (uint64_t)c->dim);
    kv_u32(o, "llama.feed_forward_length", (uint64_t)c->hidden_dim);
    kv_u32(o, "llama.block_count", (uint64_t)c->n_layer);
    kv_u32(o, "llama.attention.head_count", (uint64_t)c->n_head);
    kv_u32(o, "llama.attention.head_count_kv", (uint64_t)c->n_kv_head);
    kv_u32(o, "llama.rope.dimension_count", (uint64_t)c->head_dim);
    kv_f32(o, "llama.rope.freq_base", c->rope_theta);
    kv_f32(o, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    kv_u32(o, "llama.vocab_size", (uint64_t)c->vocab);
    if (!t) return;
    kv_string(o, "tokenizer.ggml.model", "llama");
    kv_head(o, "tokenizer.ggml.tokens", GV_ARR);
    put_le(o, GV_STR, 4);
    put_le(o, (uint64_t)t->n_vocab, 8);
    for (int64_t i = 0; i < t->n_vocab; i++) {
        const char *s = t->piece[i];
        size_t len = strlen(s), spaces = 0;
        for (size_t k = 0; k < len; k++) spaces += s[k] == ' ';
        put_le(o, len + 2 * spaces, 8); /* ' ' -> "▁": 3 bytes for 1 */
        for (size_t k = 0; k < len; k++) {
            if (s[k] == ' ')
                put(o, sp_space, 3);
            else
                put(o, &s[k], 1);
        }
    }
    kv_head(o, "tokenizer.ggml.scores", GV_ARR);
    put_le(o, GV_F32, 4);
    put_le(o, (uint64_t)t->n_vocab, 8);
    for (int64_t i = 0; i < t->n_vocab; i++) put_le(o, f32_bits(t->score[i]), 4);
    kv_head(o, "tokenizer.ggml.token_type", GV_ARR);
    put_le(o, GV_I32, 4);
    put_le(o, (uint64_t)t->n_vocab, 8);
    for (int64_t i = 0; i < t->n_vocab; i++) put_le(o, (uint32_t)token_type(t, i), 4);
    kv_u32(o, "tokenizer.ggml.bos_token_id", (uint64_t)t->bos);
    kv_u32(o, "tokenizer.ggml.eos_token_id", (uint64_t)t->eos);
    if (!strcmp(t->piece[0], "<unk>") && t->bos != 0 && t->eos != 0)
        kv_u32(o, "tokenizer.ggml.unknown_token_id", 0);
}

/* Quantises one Q8_0 block of 32 values into 34 bytes. -1 for a non-finite value or a scale
 * past fp16's range. */
static int q8_0_block(const float *x, unsigned char *out)
{
    double amax = 0;
    for (int j = 0; j < Q8_0_BLOCK; j++) {
        if (!isfinite(x[j])) return -1;
        amax = fmax(amax, fabs((double)x[j]));
    }
    uint16_t dh = ab_f16_from_double(amax / 127);
    double d = ab_f16_to_double(dh); /* the scale the reader will use */
    if (isinf(d)) return -1;
    out[0] = (unsigned char)(dh & 0xff), out[1] = (unsigned char)(dh >> 8);
    for (int j = 0; j < Q8_0_BLOCK; j++) {
        double q = d > 0 ? round((double)x[j] / d) : 0;
        q = fmin(127, fmax(-127, q)); /* only bites when d underflowed to a subnormal */
        out[2 + j] = (unsigned char)(int8_t)q;
    }
    return 0;
}

/* Encodes one row of n values as `type` into buf; AB_E_DATA for a bad Q8_0 block. */
static int encode_row(const float *x, int64_t n, int type, unsigned char *buf, const char *path,
                      const char *name)
{
    for (int64_t i = 0; type == AB_GGML_F32 && i < n; i++) {
        uint32_t u = f32_bits(x[i]);
        for (int k = 0; k < 4; k++) buf[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
    for (int64_t i = 0; type == AB_GGML_F16 && i < n; i++) {
        uint16_t h = ab_f16_from_double(x[i]);
        buf[2 * i] = (unsigned char)(h & 0xff), buf[2 * i + 1] = (unsigned char)(h >> 8);
    }
    for (int64_t i = 0; type == AB_GGML_BF16 && i < n; i++) {
        uint16_t h = ab_bf16_from_float(x[i]);
        buf[2 * i] = (unsigned char)(h & 0xff), buf[2 * i + 1] = (unsigned char)(h >> 8);
    }
    for (int64_t b = 0; type == AB_GGML_Q8_0 && b < n / Q8_0_BLOCK; b++)
        if (q8_0_block(x + b * Q8_0_BLOCK, buf + b * Q8_0_BYTES))
            return ab_fail(AB_E_DATA,
                           "'%s': tensor '%s' holds a value that Q8_0 cannot store "
                           "(not finite, or above 127 x 65504)",
                           path, name);
    return AB_OK;
}

int ab_gguf_write_model(const char *path, const struct ab_model *m, const struct ab_tokenizer *t,
                        int type)
{
    assert(type == AB_GGML_F32 || type == AB_GGML_F16 || type == AB_GGML_BF16 ||
           type == AB_GGML_Q8_0);
    const struct ab_model_config *c = &m->c;
    if (t && t->n_vocab != c->vocab)
        return ab_fail(AB_E_DATA, "'%s': the tokenizer has %lld tokens, the model %lld", path,
                       (long long)t->n_vocab, (long long)c->vocab);
    int separate = !m->shared_cls;
    int64_t n_lt = llama_n_tensors(c, separate);
    struct llama_tensor *lt = calloc((size_t)n_lt, sizeof *lt);
    int *ttype = calloc((size_t)n_lt, sizeof *ttype);
    uint64_t *toff = calloc((size_t)n_lt, sizeof *toff);
    unsigned char *row = malloc((size_t)AB_MAX(c->dim, c->hidden_dim) * 4 + 64);
    struct ab_outfile out = {0};
    int rc = AB_OK;
    if (!lt || !ttype || !toff || !row) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
        goto done;
    }
    llama_tensors(c, separate, lt);

    /* general.name: the source file's name without folders and extension */
    char name[128] = "model";
    if (m->path) {
        const char *b = strrchr(m->path, '/') ? strrchr(m->path, '/') + 1 : m->path;
        snprintf(name, sizeof name, "%s", b);
        char *dot = strrchr(name, '.');
        if (dot && dot != name) *dot = 0;
    }

    /* the plan: tensor types and data offsets */
    uint64_t data_bytes = 0;
    for (int64_t i = 0; i < n_lt; i++) {
        int64_t rows = lt[i].ne1 ? lt[i].ne1 : 1;
        ttype[i] = lt[i].ne1 ? type : AB_GGML_F32;
        if (ttype[i] == AB_GGML_Q8_0 && lt[i].ne0 % Q8_0_BLOCK) ttype[i] = AB_GGML_F32;
        toff[i] = data_bytes;
        uint64_t bytes =
            tensor_bytes((uint32_t)ttype[i], (uint64_t)lt[i].ne0, (uint64_t)(lt[i].ne0 * rows));
        data_bytes += (bytes + GGUF_ALIGNMENT - 1) / GGUF_ALIGNMENT * GGUF_ALIGNMENT;
    }
    struct out count = {0};
    write_meta(&count, m, t, name, type);

    if ((rc = ab_outfile_open(&out, path))) goto done;
    struct out o = {out.f, 0, 0, 0};
    put(&o, "GGUF", 4);
    put_le(&o, 3, 4);
    put_le(&o, (uint64_t)n_lt, 8);
    put_le(&o, (uint64_t)count.n_kv, 8);
    write_meta(&o, m, t, name, type);
    for (int64_t i = 0; i < n_lt; i++) {
        put_str(&o, lt[i].name, strlen(lt[i].name));
        put_le(&o, lt[i].ne1 ? 2 : 1, 4);
        put_le(&o, (uint64_t)lt[i].ne0, 8);
        if (lt[i].ne1) put_le(&o, (uint64_t)lt[i].ne1, 8);
        put_le(&o, (uint32_t)ttype[i], 4);
        put_le(&o, toff[i], 8);
    }
    uint64_t data_start = (o.pos + GGUF_ALIGNMENT - 1) / GGUF_ALIGNMENT * GGUF_ALIGNMENT;
    for (int64_t i = 0; i < n_lt && !o.err; i++) {
        put_pad(&o, data_start + toff[i]);
        int64_t rows = lt[i].ne1 ? lt[i].ne1 : 1, ne0 = lt[i].ne0;
        const float *src = wbuf_ptr(m, lt[i].buf) + lt[i].at; /* (rows, ne0) */
        size_t row_bytes = (size_t)tensor_bytes((uint32_t)ttype[i], (uint64_t)ne0, (uint64_t)ne0);
        for (int64_t r = 0; r < rows; r++) {
            if ((rc = encode_row(src + r * ne0, ne0, ttype[i], row, path, lt[i].name))) goto done;
            put(&o, row, row_bytes);
        }
    }
    put_pad(&o, data_start + data_bytes);
    rc = ab_outfile_commit(&out); /* a failed write left the stream's error flag */
done:
    ab_outfile_abort(&out); /* after a failure; nothing after the commit */
    free(row);
    free(toff);
    free(ttype);
    free(lt);
    return rc;
}
