/* fuzz_seeds.c - writes the seed corpora of the byte-format harnesses, one folder per harness
 * under OUTDIR: small valid files of every variant the readers accept (so mutations start
 * deep inside the formats), written by the project's own writers where it has them (.npy,
 * GGUF) and by tests/formats.c's independent writers otherwise (.npz, safetensors), plus
 * llama2.c checkpoints and tokenizers built here. The HDF5 and scenario seeds come from the
 * CLI and scenarios/ (tests/fuzz/seeds.sh).
 *
 *   fuzz_seeds OUTDIR [TOKENIZER.bin]   (a real llama2.c tokenizer of 512 pieces, optional) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ab.h"
#include "formats.h"
#include "io/npy.h"
#include "model/gguf.h"
#include "model/model.h"
#include "model/tokenizer.h"

static const char *out_dir;

static const char *seed_path(const char *harness, const char *name)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", out_dir, harness);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", out_dir, harness, name);
    return p;
}

static void check(int rc, const char *what)
{
    if (rc == AB_OK) return;
    fprintf(stderr, "fuzz_seeds: %s: %s\n", what, ab_errmsg());
    exit(1);
}

/* q, k, v of 2 layers, 2 / 1 heads, 3 tokens, head dim 4 (layer,head,seq,dim). */
static float values[3][48];
static struct tensor qkv(int which, int dtype)
{
    static const char *names[] = {"q", "k", "v"};
    struct tensor t = {names[which], dtype, 4, {2, which ? 1 : 2, 3, 4}, values[which], NULL};
    return t;
}

static void npy_seeds(void)
{
    const int64_t shapes[][4] = {{2, 2, 3, 4}, {2, 3, 4, 0}, {48, 0, 0, 0}};
    const int ranks[] = {4, 3, 1}, dtypes[] = {AB_DT_F32, AB_DT_F16, AB_DT_F64};
    char name[64];
    for (int s = 0; s < 3; s++)
        for (int d = 0; d < 3; d++) {
            snprintf(name, sizeof name, "rank%d-%s.npy", ranks[s], ab_dtype_name(dtypes[d]));
            check(ab_npy_write(seed_path("npy", name), dtypes[d], ranks[s], shapes[s], AB_DT_F32,
                               values[0]),
                  "npy");
        }
    const char *descrs[] = {"bfloat16", "<V2"};
    for (int i = 0; i < 2; i++) {
        struct buf b = {0};
        struct tensor t = qkv(0, AB_DT_BF16);
        npy_bytes(&b, &t, descrs[i]);
        snprintf(name, sizeof name, "bf16-%d.npy", i);
        write_file(seed_path("npy", name), b.p, b.n);
        free(b.p);
    }
}

static void npz_seeds(void)
{
    char name[64];
    const int dtypes[] = {AB_DT_F32, AB_DT_F16, AB_DT_BF16};
    for (int deflate = 0; deflate < 2; deflate++)
        for (int z64 = Z64_NONE; z64 <= Z64_CENTRAL; z64++) {
            struct tensor t[3];
            for (int i = 0; i < 3; i++) t[i] = qkv(i, dtypes[(i + z64) % 3]);
            snprintf(name, sizeof name, "qkv-%s-z64_%d.npz", deflate ? "deflated" : "stored", z64);
            npz_write(seed_path("npz", name), t, 3, deflate, z64);
        }
}

static void safetensors_seeds(void)
{
    char name[64];
    const int dtypes[] = {AB_DT_F32, AB_DT_F16, AB_DT_BF16};
    for (int d = 0; d < 3; d++) {
        struct tensor t[3];
        for (int i = 0; i < 3; i++) t[i] = qkv(i, dtypes[d]);
        snprintf(name, sizeof name, "qkv-%s.safetensors", ab_dtype_name(dtypes[d]));
        st_write(seed_path("safetensors", name), t, 3);
    }
    /* with an I64 tokens tensor, as capture-style dumps carry */
    int64_t tok[3] = {1, 403, 407};
    st_raw(seed_path("safetensors", "tokens.safetensors"),
           "{\"tokens\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]}}", tok,
           sizeof tok, 0);
}

/* A tiny model and its tokenizer: vocabulary of bytes <0x00>.. and a few merges. */
enum { VOCAB = 24 };
static void tiny_tokenizer(struct ab_tokenizer *t)
{
    const char *piece[VOCAB] = {"<unk>", "<s>",   "</s>", "<0x41>", "<0xC3>", "<0xA9>",
                                " ",     "a",     "b",    "c",      "d",      "e",
                                "o",     "n",     "u",    "p",      " a",     " o",
                                "on",    " on",   "up",   " up",    "ce",     " once"};
    float score[VOCAB];
    for (int i = 0; i < VOCAB; i++) score[i] = (float)(i % 7) - 3.0f;
    check(ab_tokenizer_from_arrays(t, VOCAB, piece, score, 1, 2), "tokenizer");
}

static void tiny_model(struct ab_model *m, int64_t dim, int shared)
{
    struct ab_model_config c = {dim, 2 * dim, 1, 2, 1, dim / 2, VOCAB, 16, 10000.0, 1e-5};
    check(ab_model_alloc(m, &c, shared), "model");
    float *w[] = {m->tok_emb, m->rms_att, m->wq, m->wk, m->wv, m->wo, m->rms_ffn,
                  m->w1,      m->w2,      m->w3, m->rms_final, m->wcls};
    int64_t kv = c.n_kv_head * c.head_dim, F = c.hidden_dim;
    int64_t n[] = {VOCAB * dim, dim, dim * dim, kv * dim, kv * dim, dim * dim, dim,
                   F * dim,     dim * F, F * dim, dim, VOCAB * dim};
    for (int i = 0; i < 12 - shared; i++) fill(w[i], n[i], (uint64_t)i + 1);
}

/* The llama2.c layout of model.h, by hand. */
static void llama2c_write(const char *path, const struct ab_model *m)
{
    const struct ab_model_config *c = &m->c;
    struct buf b = {0};
    int64_t h[7] = {c->dim, c->hidden_dim, c->n_layer, c->n_head, c->n_kv_head,
                    m->shared_cls ? c->vocab : -c->vocab, c->seq_len};
    for (int i = 0; i < 7; i++) put_le(&b, (uint64_t)(uint32_t)h[i], 4);
    int64_t kv = c->n_kv_head * c->head_dim, F = c->hidden_dim, D = c->dim, L = c->n_layer;
    const float *w[] = {m->tok_emb, m->rms_att, m->wq, m->wk, m->wv, m->wo,
                        m->rms_ffn, m->w1,      m->w2, m->w3, m->rms_final};
    int64_t n[] = {c->vocab * D, L * D, L * D * D, L * kv * D, L * kv * D, L * D * D,
                   L * D,        L * F * D, L * D * F, L * F * D, D};
    for (int i = 0; i < 11; i++) put(&b, w[i], (size_t)n[i] * 4);
    float zero = 0;
    for (int64_t i = 0; i < c->seq_len * c->head_dim; i++) put(&b, &zero, 4); /* freq_cis */
    if (!m->shared_cls) put(&b, m->wcls, (size_t)(c->vocab * D) * 4);
    write_file(path, b.p, b.n);
    free(b.p);
}

/* The llama2.c tokenizer file, prefixed by the harness's two bytes of vocabulary size. */
static void tokenizer_write(const char *path, const struct ab_tokenizer *t)
{
    struct buf b = {0};
    put_le(&b, (uint64_t)(t->n_vocab - 1), 2);
    put_le(&b, (uint64_t)t->max_len, 4);
    for (int64_t i = 0; i < t->n_vocab; i++) {
        put(&b, &t->score[i], 4);
        put_le(&b, strlen(t->piece[i]), 4);
        put(&b, t->piece[i], strlen(t->piece[i]));
    }
    write_file(path, b.p, b.n);
    free(b.p);
}

static void model_seeds(const char *real_tokenizer)
{
    struct ab_tokenizer t;
    tiny_tokenizer(&t);
    struct ab_model m8, m8s, m32;
    tiny_model(&m8, 8, 0);
    tiny_model(&m8s, 8, 1);
    tiny_model(&m32, 32, 1);
    llama2c_write(seed_path("llama2c", "tiny.bin"), &m8);
    llama2c_write(seed_path("llama2c", "tiny-shared.bin"), &m8s);
    check(ab_gguf_write_model(seed_path("gguf", "tiny-f32.gguf"), &m8, &t, AB_GGML_F32), "gguf");
    check(ab_gguf_write_model(seed_path("gguf", "tiny-f16.gguf"), &m8s, &t, AB_GGML_F16), "gguf");
    check(ab_gguf_write_model(seed_path("gguf", "tiny-bf16.gguf"), &m8s, NULL, AB_GGML_BF16),
          "gguf");
    check(ab_gguf_write_model(seed_path("gguf", "tiny-q8_0.gguf"), &m32, &t, AB_GGML_Q8_0), "gguf");
    tokenizer_write(seed_path("tokenizer", "tiny.bin"), &t);
    ab_model_free(&m8), ab_model_free(&m8s), ab_model_free(&m32);
    ab_tokenizer_free(&t);
    if (real_tokenizer) {
        check(ab_tokenizer_load_llama2c(real_tokenizer, 512, &t), real_tokenizer);
        tokenizer_write(seed_path("tokenizer", "tok512.bin"), &t);
        ab_tokenizer_free(&t);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_seeds OUTDIR [TOKENIZER.bin]\n");
        return 2;
    }
    out_dir = argv[1];
    mkdir(out_dir, 0755);
    for (int i = 0; i < 3; i++) fill(values[i], 48, (uint64_t)i + 7);
    npy_seeds();
    npz_seeds();
    safetensors_seeds();
    model_seeds(argc > 2 ? argv[2] : NULL);
    return 0;
}
