/* model.c - model configuration checks, weight buffers, and loading a model file of either
 * format (model.h). */
#include "model/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "model/gguf.h"

int ab_model_config_check(const struct ab_model_config *c, const char *path)
{
    if (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layer <= 0 || c->n_head <= 0 ||
        c->n_kv_head <= 0 || c->vocab <= 0 || c->seq_len <= 0 || c->head_dim <= 0)
        return ab_fail(AB_E_DATA,
                       "'%s': impossible model dimensions (dim %lld, hidden %lld, layers %lld, "
                       "heads %lld, kv heads %lld, vocab %lld, seq_len %lld)",
                       path, (long long)c->dim, (long long)c->hidden_dim, (long long)c->n_layer,
                       (long long)c->n_head, (long long)c->n_kv_head, (long long)c->vocab,
                       (long long)c->seq_len);
    if (c->dim != c->n_head * c->head_dim)
        return ab_fail(AB_E_DATA, "'%s': dim %lld is not n_head %lld x head_dim %lld", path,
                       (long long)c->dim, (long long)c->n_head, (long long)c->head_dim);
    if (c->n_head % c->n_kv_head != 0)
        return ab_fail(AB_E_DATA, "'%s': %lld query heads are not a multiple of %lld kv heads",
                       path, (long long)c->n_head, (long long)c->n_kv_head);
    if (c->head_dim % 2 != 0)
        return ab_fail(AB_E_DATA, "'%s': head_dim %lld is odd (RoPE rotates pairs)", path,
                       (long long)c->head_dim);
    if (!(c->rope_theta > 0) || !(c->norm_eps > 0))
        return ab_fail(AB_E_DATA, "'%s': rope theta %g and norm epsilon %g must be positive", path,
                       c->rope_theta, c->norm_eps);
    double L = (double)c->n_layer, D = (double)c->dim, F = (double)c->hidden_dim;
    double kvd = (double)(c->n_kv_head * c->head_dim);
    double floats =
        2.0 * (double)c->vocab * D + L * (2 * D + 2 * D * D + 2 * D * kvd + 3 * D * F) + D;
    return ab_check_fits(path, 4.0 * floats);
}

/* Every weight buffer: pointer, elements. Order and sizes in one place for alloc and free. */
static int buffers(struct ab_model *m, float ***p, size_t *sz, int shared_cls)
{
    const struct ab_model_config *c = &m->c;
    size_t L = (size_t)c->n_layer, D = (size_t)c->dim, F = (size_t)c->hidden_dim;
    size_t qd = (size_t)(c->n_head * c->head_dim), kvd = (size_t)(c->n_kv_head * c->head_dim);
    size_t V = (size_t)c->vocab;
    int i = 0;
#define BUF(field, n) (p[i] = &m->field, sz[i] = (n), i++)
    BUF(tok_emb, V * D);
    BUF(rms_att, L * D);
    BUF(wq, L * qd * D);
    BUF(wk, L * kvd * D);
    BUF(wv, L * kvd * D);
    BUF(wo, L * D * qd);
    BUF(rms_ffn, L * D);
    BUF(w1, L * F * D);
    BUF(w2, L * D * F);
    BUF(w3, L * F * D);
    BUF(rms_final, D);
    if (!shared_cls) BUF(wcls, V * D);
#undef BUF
    return i;
}

int ab_model_alloc(struct ab_model *m, const struct ab_model_config *c, int shared_cls)
{
    memset(m, 0, sizeof *m);
    m->c = *c;
    int rc = ab_model_config_check(c, "model");
    if (rc) return rc;
    float **p[12];
    size_t sz[12];
    int nb = buffers(m, p, sz, shared_cls);
    for (int i = 0; i < nb; i++) {
        *p[i] = ab_alloc(ab_size_mul(sz[i], sizeof(float)));
        if (!*p[i]) {
            ab_model_free(m);
            return ab_fail(AB_E_NOMEM, "model weights: out of memory");
        }
    }
    m->shared_cls = shared_cls;
    if (shared_cls) m->wcls = m->tok_emb;
    return AB_OK;
}

void ab_model_free(struct ab_model *m)
{
    if (!m) return;
    if (m->shared_cls) m->wcls = NULL;
    float **p[12];
    size_t sz[12];
    int nb = buffers(m, p, sz, 0);
    for (int i = 0; i < nb; i++) ab_free(*p[i]);
    free(m->path);
    free(m->description);
    memset(m, 0, sizeof *m);
}

int ab_model_file_is_gguf(const char *path, int *is_gguf)
{
    *is_gguf = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ab_fail(errno == ENOENT ? AB_E_NOFILE : AB_E_IO, "'%s': cannot open: %s", path,
                       strerror(errno));
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    *is_gguf = got == 4 && !memcmp(magic, "GGUF", 4);
    return AB_OK;
}

int ab_model_load(const char *path, struct ab_model *m)
{
    memset(m, 0, sizeof *m);
    int gguf, rc = ab_model_file_is_gguf(path, &gguf);
    if (rc) return rc;
    /* everything but GGUF is tried as llama2.c, whose reader checks the header against the
       file length */
    return gguf ? ab_gguf_load_model(path, m) : ab_model_load_llama2c(path, m);
}
