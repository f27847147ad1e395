/* llama2c.c - the llama2.c checkpoint reader (model.h, ab_model_load_llama2c): the legacy
 * version-0 layout of Karpathy's llama2.c, float32 throughout.
 *
 * The reader trusts nothing in the file: the seven header integers are checked for sense, the
 * exact file length they imply (shared or separate classifier) is computed without overflow and
 * compared with the real length before any weight is read, and every weight read is checked to
 * be finite. A truncated, padded or lying file is one AB_E_DATA line naming the file. The file
 * is little-endian; bytes are swapped on a big-endian host. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ab.h"
#include "model/model.h"

enum { HEADER_BYTES = 7 * 4 };

static int host_is_little(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static int32_t le_i32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

/* Reads n float32 into dst, checking that each is finite. `what` names the tensor. */
static int read_tensor(FILE *f, const char *path, const char *what, float *dst, size_t n)
{
    if (fread(dst, sizeof(float), n, f) != n)
        return ab_fail(AB_E_IO, "'%s': read failed in %s", path, what);
    if (!host_is_little()) {
        unsigned char *b = (unsigned char *)dst;
        for (size_t i = 0; i < n; i++, b += 4) {
            unsigned char t0 = b[0], t1 = b[1];
            b[0] = b[3], b[1] = b[2], b[2] = t1, b[3] = t0;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return ab_fail(AB_E_DATA, "'%s': %s holds a non-finite value at element %zu", path,
                           what, i);
    return AB_OK;
}

/* The number of float32 the header implies, in double (exact below 2^53, and any header whose
 * count is not is far past every real file). */
static double expected_floats(const struct ab_model_config *c, int shared_cls)
{
    double L = (double)c->n_layer, D = (double)c->dim, F = (double)c->hidden_dim;
    double qd = (double)(c->n_head * c->head_dim), kvd = (double)(c->n_kv_head * c->head_dim);
    double V = (double)c->vocab;
    double per_layer = D + qd * D + 2 * kvd * D + D * qd + D + 3 * F * D;
    double freq = 2.0 * (double)c->seq_len * (double)c->head_dim / 2;
    return V * D + L * per_layer + D + freq + (shared_cls ? 0 : V * D);
}

static void describe(struct ab_model *m, const char *path)
{
    const struct ab_model_config *c = &m->c;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char buf[1024];
    snprintf(buf, sizeof buf,
             "%s: llama2.c float32, dim %lld, hidden %lld, %lld layers, %lld heads (%lld kv), "
             "head_dim %lld, vocab %lld, seq_len %lld, %s classifier",
             base, (long long)c->dim, (long long)c->hidden_dim, (long long)c->n_layer,
             (long long)c->n_head, (long long)c->n_kv_head, (long long)c->head_dim,
             (long long)c->vocab, (long long)c->seq_len, m->shared_cls ? "shared" : "separate");
    m->description = strdup(buf);
}

int ab_model_load_llama2c(const char *path, struct ab_model *m)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ab_fail(errno == ENOENT ? AB_E_NOFILE : AB_E_IO, "'%s': cannot open: %s", path,
                       strerror(errno));
    int rc = AB_OK;
    struct stat st;
    unsigned char hdr[HEADER_BYTES];
    if (fstat(fileno(f), &st) != 0) {
        rc = ab_fail(AB_E_IO, "'%s': cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (st.st_size < HEADER_BYTES || fread(hdr, 1, HEADER_BYTES, f) != HEADER_BYTES) {
        rc = ab_fail(AB_E_DATA, "'%s': truncated: %lld bytes, shorter than the 28-byte header",
                     path, (long long)st.st_size);
        goto done;
    }
    int32_t h[7];
    for (int i = 0; i < 7; i++) h[i] = le_i32(hdr + 4 * i);
    /* dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (< 0: separate classifier),
       seq_len */
    struct ab_model_config c = {
        .dim = h[0],
        .hidden_dim = h[1],
        .n_layer = h[2],
        .n_head = h[3],
        .n_kv_head = h[4],
        .vocab = h[5] < 0 ? -(int64_t)h[5] : h[5],
        .seq_len = h[6],
        .rope_theta = 10000.0,
        .norm_eps = 1e-5,
    };
    int shared_cls = h[5] > 0;
    if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_kv_head <= 0 ||
        c.vocab <= 0 || c.seq_len <= 0) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': impossible model dimensions in the header (dim %d, hidden %d, "
                     "layers %d, heads %d, kv heads %d, vocab %d, seq_len %d)",
                     path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
        goto done;
    }
    if (c.dim % c.n_head != 0) {
        rc = ab_fail(AB_E_DATA, "'%s': dim %lld is not a multiple of %lld heads", path,
                     (long long)c.dim, (long long)c.n_head);
        goto done;
    }
    c.head_dim = c.dim / c.n_head;
    if (c.n_head % c.n_kv_head != 0) {
        rc = ab_fail(AB_E_DATA, "'%s': %lld query heads are not a multiple of %lld kv heads", path,
                     (long long)c.n_head, (long long)c.n_kv_head);
        goto done;
    }
    /* the file must hold exactly what the header promises */
    double want = HEADER_BYTES + 4.0 * expected_floats(&c, shared_cls);
    double have = (double)st.st_size;
    if (want > have) {
        rc =
            ab_fail(AB_E_DATA, "'%s': truncated: the header promises %.0f bytes, the file has %lld",
                    path, want, (long long)st.st_size);
        goto done;
    }
    if (want < have) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': too long: the header promises %.0f bytes, the file has %lld (%.0f "
                     "extra; wrong header or not a version-0 llama2.c checkpoint?)",
                     path, want, (long long)st.st_size, have - want);
        goto done;
    }
    if ((rc = ab_model_config_check(&c, path))) goto done;
    if ((rc = ab_model_alloc(m, &c, shared_cls))) goto done;

    size_t L = (size_t)c.n_layer, D = (size_t)c.dim, F = (size_t)c.hidden_dim;
    size_t qd = (size_t)(c.n_head * c.head_dim), kvd = (size_t)(c.n_kv_head * c.head_dim);
    size_t V = (size_t)c.vocab;
    struct {
        const char *name;
        float *dst;
        size_t n;
    } t[] = {
        {"token_embedding", m->tok_emb, V * D},
        {"rms_att", m->rms_att, L * D},
        {"wq", m->wq, L * qd * D},
        {"wk", m->wk, L * kvd * D},
        {"wv", m->wv, L * kvd * D},
        {"wo", m->wo, L * D * qd},
        {"rms_ffn", m->rms_ffn, L * D},
        {"w1", m->w1, L * F * D},
        {"w2", m->w2, L * D * F},
        {"w3", m->w3, L * F * D},
        {"rms_final", m->rms_final, D},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if ((rc = read_tensor(f, path, t[i].name, t[i].dst, t[i].n))) goto done;
    if (!shared_cls) {
        /* skip freq_cis_real and freq_cis_imag (seq_len, head_dim / 2) each: RoPE is computed */
        long skip = (long)(2 * (size_t)c.seq_len * (size_t)c.head_dim / 2 * sizeof(float));
        if (fseek(f, skip, SEEK_CUR) != 0) {
            rc = ab_fail(AB_E_IO, "'%s': seek failed: %s", path, strerror(errno));
            goto done;
        }
        if ((rc = read_tensor(f, path, "wcls", m->wcls, V * D))) goto done;
    }
    m->path = strdup(path);
    m->format = "llama2.c";
    describe(m, path);
    if (!m->path || !m->description) rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);

done:
    fclose(f);
    if (rc) ab_model_free(m);
    return rc;
}
