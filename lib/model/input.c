/* input.c - what a model reads (input.h): a model's tokenizer, texts, raw ids and the copy
 * task, shared by `capture` and `eval-model` so both build the same sequence from the same
 * options and seed. */
#include "model/input.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ab.h"
#include "core/rng.h"
#include "model/gguf.h"

/* Random stream of the copy task's token ids: ab_stream(TAG_COPY, 0, 0, 0). */
enum { TAG_COPY = 0x636f7079 };

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A tokenizer file of either format: GGUF (by its magic) or llama2.c. */
static int load_tokenizer_file(const char *path, int64_t vocab, struct ab_tokenizer *t)
{
    int gguf, rc = ab_model_file_is_gguf(path, &gguf);
    if (rc) return rc;
    if (gguf) {
        rc = ab_gguf_load_tokenizer(path, t);
        if (!rc && t->n_vocab != vocab) {
            ab_tokenizer_free(t);
            return ab_fail(AB_E_DATA, "'%s': vocabulary of %lld tokens, the model has %lld", path,
                           (long long)t->n_vocab, (long long)vocab);
        }
        return rc;
    }
    return ab_tokenizer_load_llama2c(path, vocab, t);
}

/* The tokenizer to use: --tokenizer, else the GGUF's own vocabulary, else tokenizer.bin or
 * tok<vocab>.bin next to the model. AB_E_NOFILE with advice when none is found. */
int ab_model_tokenizer_find(const struct ab_model *m, const char *given, struct ab_tokenizer *t)
{
    if (given) return load_tokenizer_file(given, m->c.vocab, t);
    if (!strcmp(m->format, "gguf")) return ab_gguf_load_tokenizer(m->path, t);
    const char *slash = strrchr(m->path, '/');
    int dir_len = slash ? (int)(slash - m->path) : 1;
    const char *dir = slash ? m->path : ".";
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%.*s/tokenizer.bin", dir_len, dir);
    snprintf(b, sizeof b, "%.*s/tok%lld.bin", dir_len, dir, (long long)m->c.vocab);
    if (file_exists(a)) return load_tokenizer_file(a, m->c.vocab, t);
    if (file_exists(b)) return load_tokenizer_file(b, m->c.vocab, t);
    return ab_fail(AB_E_NOFILE,
                   "no tokenizer for '%s' (looked for '%s' and '%s'): pass --tokenizer "
                   "FILE",
                   m->path, a, b);
}

/* "1,403,407" into a malloc'd array. A malformed list is a usage error; a value outside
 * int32 is a data error (it is outside every vocabulary). */
int ab_token_ids_parse(const char *s, int32_t **ids, int64_t *n)
{
    int64_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *v = malloc((size_t)cap * sizeof *v);
    if (!v) return ab_fail(AB_E_NOMEM, "out of memory");
    int64_t k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        while (*end == ' ') end++;
        if (end == p || (*end != ',' && *end != 0)) {
            free(v);
            return ab_fail(AB_E_USAGE, "--tokens wants comma-separated integers, got '%s'",
                           s);
        }
        if (errno == ERANGE || x < INT32_MIN || x > INT32_MAX) {
            free(v);
            return ab_fail(AB_E_DATA, "token id %.*s is outside every vocabulary",
                           (int)(end - p), p);
        }
        v[k++] = (int32_t)x;
        if (!*end) break;
        p = end + 1;
    }
    *ids = v;
    *n = k;
    return AB_OK;
}

/* The whole of a text file, NUL-terminated. Refuses NUL bytes (not text) and files that
 * cannot encode to at most max_tokens tokens even if every token covered max_len bytes. */
int ab_text_read(const char *path, int64_t max_bytes, char **text)
{
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ab_fail(errno == ENOENT ? AB_E_NOFILE : AB_E_IO, "'%s': cannot open: %s", path,
                       strerror(errno));
    struct stat st;
    int rc = AB_OK;
    char *buf = NULL;
    if (fstat(fileno(f), &st) != 0) {
        rc = ab_fail(AB_E_IO, "'%s': cannot stat: %s", path, strerror(errno));
    } else if ((int64_t)st.st_size > max_bytes) {
        rc = ab_fail(AB_E_DATA, "'%s': %lld bytes of text cannot fit the model's context", path,
                     (long long)st.st_size);
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
    } else if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        rc = ab_fail(AB_E_IO, "'%s': read failed", path);
    } else {
        buf[st.st_size] = 0;
        if (memchr(buf, 0, (size_t)st.st_size))
            rc = ab_fail(AB_E_DATA, "'%s': holds NUL bytes (not a text file)", path);
    }
    fclose(f);
    if (rc)
        free(buf);
    else
        *text = buf;
    return rc;
}

/* The retrieval copy task: BOS (unless no_bos), R ids uniform over [3, vocab) from the seeded
 * stream, then the same R ids again. */
int ab_copy_task(int64_t r, int64_t vocab, int32_t bos, int no_bos, uint64_t seed,
                     int32_t **ids, int64_t *n)
{
    if (vocab <= 3)
        return ab_fail(AB_E_DATA, "a vocabulary of %lld has no ids >= 3 for the copy task",
                       (long long)vocab);
    int64_t len = (no_bos ? 0 : 1) + 2 * r;
    int32_t *v = malloc((size_t)len * sizeof *v);
    if (!v) return ab_fail(AB_E_NOMEM, "out of memory");
    struct ab_rng g;
    ab_rng_init(&g, seed, ab_stream(TAG_COPY, 0, 0, 0));
    int64_t at = 0;
    if (!no_bos) v[at++] = bos;
    for (int64_t i = 0; i < r; i++) v[at + i] = (int32_t)(3 + ab_rng_below(&g, vocab - 3));
    memcpy(v + at + r, v + at, (size_t)r * sizeof *v);
    *ids = v;
    *n = len;
    return AB_OK;
}

void ab_model_input_free(struct ab_model_input *in)
{
    free(in->ids);
    memset(in, 0, sizeof *in);
}

static int fits_context(const struct ab_model *m, const char *what, int64_t n)
{
    if (n > m->c.seq_len)
        return ab_fail(AB_E_DATA, "'%s': %lld tokens do not fit the model's context of %lld",
                       what, (long long)n, (long long)m->c.seq_len);
    return AB_OK;
}

int ab_model_input_text(const struct ab_model *m, const struct ab_tokenizer *t, const char *path,
                        int64_t max_tokens, struct ab_model_input *in)
{
    memset(in, 0, sizeof *in);
    char *body;
    int64_t limit = max_tokens > 0 ? max_tokens : m->c.seq_len;
    int rc = ab_text_read(path, AB_MIN(limit * (int64_t)(t->max_len + 1) + 1, AB_TEXT_MAX_BYTES),
                          &body);
    if (rc) return rc;
    rc = ab_tokenizer_encode(t, body, 1, &in->ids, &in->n);
    free(body);
    if (!rc && in->n < 2) rc = ab_fail(AB_E_DATA, "'%s': empty text", path);
    if (!rc && max_tokens <= 0) rc = fits_context(m, path, in->n);
    if (!rc && max_tokens > 0 && in->n > max_tokens)
        rc = ab_fail(AB_E_DATA, "'%s': %lld tokens, more than the %lld this reads", path,
                     (long long)in->n, (long long)max_tokens);
    if (rc) ab_model_input_free(in);
    return rc;
}

int ab_model_input_copy(const struct ab_model *m, int64_t r, uint64_t seed,
                        struct ab_model_input *in)
{
    memset(in, 0, sizeof *in);
    if (r < 1 || 2 * r + 1 > m->c.seq_len)
        return ab_fail(AB_E_USAGE, "copy task of R = %lld: 2R + 1 tokens must fit the model's "
                       "context of %lld", (long long)r, (long long)m->c.seq_len);
    int rc = ab_copy_task(r, m->c.vocab, 1, 0, seed, &in->ids, &in->n);
    if (rc) return ab_fail(rc, "'%s': %s", m->path, ab_errmsg());
    in->copy_from = 1 + r;
    return AB_OK;
}
