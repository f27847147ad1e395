/* input.c - model inputs: texts, copy tasks, raw ids, and finding a model's tokenizer
 * (input.h). */
#include "model/input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ab.h"
#include "core/list.h"
#include "core/rng.h"
#include "model/gguf.h"

void ab_model_input_free(struct ab_model_input *in)
{
    free(in->ids);
    memset(in, 0, sizeof *in);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int ab_model_input_tokenizer(const struct ab_model *m, const char *tok_path,
                             struct ab_tokenizer *t)
{
    memset(t, 0, sizeof *t);
    int rc;
    if (tok_path) {
        rc = ab_tokenizer_load_llama2c(tok_path, m->c.vocab, t);
    } else if (m->format && !strcmp(m->format, "gguf")) {
        rc = ab_gguf_load_tokenizer(m->path, t);
        if (!rc && t->n_vocab != m->c.vocab) {
            ab_tokenizer_free(t);
            rc = ab_fail(AB_E_DATA, "'%s': the vocabulary has %lld tokens, the model %lld",
                         m->path, (long long)t->n_vocab, (long long)m->c.vocab);
        }
    } else {
        /* beside the model: tokenizer.bin, then tok<vocab>.bin (llama2.c's names) */
        const char *slash = strrchr(m->path, '/');
        int dir_len = slash ? (int)(slash - m->path + 1) : 0;
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%.*stokenizer.bin", dir_len, m->path);
        snprintf(b, sizeof b, "%.*stok%lld.bin", dir_len, m->path, (long long)m->c.vocab);
        const char *found = is_file(a) ? a : is_file(b) ? b : NULL;
        if (!found)
            return ab_fail(AB_E_USAGE, "'%s': no tokenizer found (tried '%s' and '%s'); pass "
                           "--tokenizer FILE", m->path, a, b);
        rc = ab_tokenizer_load_llama2c(found, m->c.vocab, t);
    }
    return rc;
}

static int fits_context(const struct ab_model *m, const char *what, int64_t n)
{
    if (n > m->c.seq_len)
        return ab_fail(AB_E_DATA, "'%s': %lld tokens do not fit the model's context of %lld",
                       what, (long long)n, (long long)m->c.seq_len);
    return AB_OK;
}

int ab_model_input_string(const struct ab_model *m, const struct ab_tokenizer *t,
                          const char *text, const char *what, struct ab_model_input *in)
{
    memset(in, 0, sizeof *in);
    int rc = ab_tokenizer_encode(t, text, 1, &in->ids, &in->n);
    if (!rc && in->n < 2) rc = ab_fail(AB_E_DATA, "'%s': empty text", what);
    if (!rc) rc = fits_context(m, what, in->n);
    if (rc) ab_model_input_free(in);
    return rc;
}

int ab_model_input_text(const struct ab_model *m, const struct ab_tokenizer *t, const char *path,
                        struct ab_model_input *in)
{
    memset(in, 0, sizeof *in);
    FILE *f = fopen(path, "rb");
    if (!f) return ab_fail(AB_E_NOFILE, "'%s': cannot open the text", path);
    enum { CAP = 16 << 20 };
    char *buf = malloc(CAP + 1);
    size_t len = buf ? fread(buf, 1, CAP + 1, f) : 0;
    int err = ferror(f);
    fclose(f);
    int rc = AB_OK;
    if (!buf) rc = ab_fail(AB_E_NOMEM, "out of memory");
    else if (err) rc = ab_fail(AB_E_IO, "'%s': read error", path);
    else if (len > CAP) rc = ab_fail(AB_E_DATA, "'%s': longer than 16 MiB", path);
    else if (memchr(buf, 0, len)) rc = ab_fail(AB_E_DATA, "'%s': a NUL byte: not a text file", path);
    if (!rc) {
        buf[len] = 0;
        rc = ab_model_input_string(m, t, buf, path, in);
    }
    free(buf);
    return rc;
}

int ab_model_input_copy(const struct ab_model *m, int64_t r, uint64_t seed,
                        struct ab_model_input *in)
{
    memset(in, 0, sizeof *in);
    if (r < 1 || 2 * r + 1 > m->c.seq_len)
        return ab_fail(AB_E_USAGE, "copy task of %lld tokens: 2R + 1 must fit the model's context "
                       "of %lld", (long long)r, (long long)m->c.seq_len);
    if (m->c.vocab <= 3)
        return ab_fail(AB_E_DATA, "'%s': a vocabulary of %lld has no ordinary tokens", m->path,
                       (long long)m->c.vocab);
    in->n = 2 * r + 1;
    in->ids = malloc(sizeof(int32_t) * (size_t)in->n);
    if (!in->ids) return ab_fail(AB_E_NOMEM, "out of memory");
    struct ab_rng g;
    ab_rng_init(&g, seed, ab_stream(0x636f7079 /* "copy" */, (uint64_t)r, 0, 0));
    in->ids[0] = 1; /* BOS */
    for (int64_t i = 0; i < r; i++) {
        in->ids[1 + i] = (int32_t)(3 + ab_rng_below(&g, m->c.vocab - 3));
        in->ids[1 + r + i] = in->ids[1 + i];
    }
    in->copy_from = 1 + r;
    return AB_OK;
}

int ab_model_input_ids(const struct ab_model *m, const char *list, struct ab_model_input *in)
{
    memset(in, 0, sizeof *in);
    size_t cap = 1;
    for (const char *s = list; *s; s++) cap += *s == ',';
    in->ids = malloc(sizeof(int32_t) * cap);
    if (!in->ids) return ab_fail(AB_E_NOMEM, "out of memory");
    const char *s = list;
    char item[32];
    int rc;
    while ((rc = ab_list_next(&s, 0, item, sizeof item, NULL, "--tokens")) == 1) {
        char *end;
        long long v = strtoll(item, &end, 10);
        if (*end || v < 0 || v >= m->c.vocab) {
            rc = ab_fail(AB_E_DATA, "--tokens: '%s' is not a token id in [0, %lld)", item,
                         (long long)m->c.vocab);
            break;
        }
        in->ids[in->n++] = (int32_t)v;
    }
    if (rc == 0 && in->n == 0) rc = ab_fail(AB_E_USAGE, "--tokens is empty");
    if (rc > 0) rc = AB_OK;
    if (!rc) rc = fits_context(m, "--tokens", in->n);
    if (rc) ab_model_input_free(in);
    return rc;
}
