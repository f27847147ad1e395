/* test_gguf.c - GGUF model files (lib/model/gguf.c) and the 16-bit float helpers (core/half.c).
 *
 * Round trips through ab_gguf_write_model and ab_gguf_load_model of a small seeded model
 * (dim 64, hidden 128, 2 layers, 4 heads, 2 kv heads, vocab 40 with byte pieces and pieces with
 * spaces): F32 bitwise; F16 and BF16 within their rounding and equal to the rounded value;
 * Q8_0 every value within d/2 of the original and exactly d * q of a quantisation recomputed
 * here; a shared and a separate classifier. A file built byte by byte here (GGUF v2, every
 * metadata value type, nested arrays, alignment 64, BF16 tensors in shuffled order) checks the
 * reader against a writer that is not ours. Malformed files (bad magic, version 1, truncations,
 * tensors past the end, absurd counts and lengths under an address-space limit, a missing key,
 * a wrong shape, Q4_K) are each refused with AB_E_DATA and a message naming the file; every
 * truncation and a seeded run of byte flips are refused or read without a crash. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/half.h"
#include "core/rng.h"
#include "helpers.h"
#include "model/gguf.h"
#include "model/input.h"

enum { SEED = 20240611, N_VOCAB = 40 };

/* ------------------------------------------------------------------ fixtures */

static struct ab_model_config tiny_config(void)
{
    struct ab_model_config c = {
        .dim = 64,
        .hidden_dim = 128,
        .n_layer = 2,
        .n_head = 4,
        .n_kv_head = 2,
        .head_dim = 16,
        .vocab = N_VOCAB,
        .seq_len = 256,
        .rope_theta = 10000,
        .norm_eps = 1e-5,
    };
    return c;
}

/* The weight buffers of m with their element counts (the classifier last, when separate). */
static int weights(const struct ab_model *m, float **p, size_t *n)
{
    const struct ab_model_config *c = &m->c;
    size_t L = (size_t)c->n_layer, D = (size_t)c->dim, F = (size_t)c->hidden_dim;
    size_t qd = (size_t)(c->n_head * c->head_dim), kvd = (size_t)(c->n_kv_head * c->head_dim);
    size_t V = (size_t)c->vocab;
    int k = 0;
    p[k] = m->tok_emb, n[k++] = V * D;
    p[k] = m->rms_att, n[k++] = L * D;
    p[k] = m->wq, n[k++] = L * qd * D;
    p[k] = m->wk, n[k++] = L * kvd * D;
    p[k] = m->wv, n[k++] = L * kvd * D;
    p[k] = m->wo, n[k++] = L * D * qd;
    p[k] = m->rms_ffn, n[k++] = L * D;
    p[k] = m->w1, n[k++] = L * F * D;
    p[k] = m->w2, n[k++] = L * D * F;
    p[k] = m->w3, n[k++] = L * F * D;
    p[k] = m->rms_final, n[k++] = D;
    if (!m->shared_cls) p[k] = m->wcls, n[k++] = V * D;
    return k;
}

/* 1-D gains: buffers 1, 6 and 10 of weights() */
static int is_gain(int k)
{
    return k == 1 || k == 6 || k == 10;
}

/* A seeded model: gains near 1, matrices with a magnitude that varies by row (so Q8_0 blocks
 * get different scales), and one all-zero block (wq, layer 0, row 0, values 0..31). */
static void make_model(struct ab_model *m, const struct ab_model_config *c, int shared,
                       uint64_t seed)
{
    cr_assert_eq(ab_model_alloc(m, c, shared), AB_OK, "%s", ab_errmsg());
    float *p[12];
    size_t n[12];
    int nb = weights(m, p, n);
    for (int k = 0; k < nb; k++) {
        struct ab_rng r;
        ab_rng_init(&r, seed, (uint64_t)k);
        double row_scale = 0.02;
        for (size_t i = 0; i < n[k]; i++) {
            if (i % 32 == 0) row_scale = 0.02 * exp(ab_rng_normal(&r));
            p[k][i] = is_gain(k) ? (float)(1 + 0.1 * ab_rng_normal(&r))
                                 : (float)(row_scale * ab_rng_normal(&r));
        }
    }
    for (int i = 0; i < 32; i++) m->wq[i] = 0;
    m->path = strdup("/somewhere/tiny-model.bin");
}

/* Pieces in llama2.c form: specials, byte tokens, pieces with spaces, UTF-8, filler. */
static const char *tiny_pieces[N_VOCAB] = {
    "<unk>",  "<s>",    "</s>",     "<0x00>",
    "<0x0A>", "<0x20>", "<0xE2>",   "<0xFF>",
    " ",      " the",   " a",       "hello world",
    "  two",  "end ",   "\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
    "e",      "t",      "s",        " of",
};

static void make_tokenizer(struct ab_tokenizer *t, float *score, char **owned)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < N_VOCAB; i++) {
        owned[i] = malloc(16);
        if (tiny_pieces[i])
            snprintf(owned[i], 16, "%s", tiny_pieces[i]);
        else
            snprintf(owned[i], 16, "tok%d", i);
        score[i] = (float)(-0.5 * i + 0.25 * ab_rng_normal_at(SEED, 99, (uint64_t)i));
    }
    t->n_vocab = N_VOCAB;
    t->piece = owned;
    t->score = score;
    t->bos = 1, t->eos = 2;
}

static void free_owned(char **owned)
{
    for (int i = 0; i < N_VOCAB; i++) free(owned[i]);
}

static void expect_same_config(const struct ab_model_config *a, const struct ab_model_config *b)
{
    cr_expect_eq(a->dim, b->dim);
    cr_expect_eq(a->hidden_dim, b->hidden_dim);
    cr_expect_eq(a->n_layer, b->n_layer);
    cr_expect_eq(a->n_head, b->n_head);
    cr_expect_eq(a->n_kv_head, b->n_kv_head);
    cr_expect_eq(a->head_dim, b->head_dim);
    cr_expect_eq(a->vocab, b->vocab);
    cr_expect_eq(a->seq_len, b->seq_len);
    cr_expect_eq(a->rope_theta, b->rope_theta, "theta %.17g vs %.17g", a->rope_theta,
                 b->rope_theta);
    cr_expect_eq(a->norm_eps, b->norm_eps, "eps %.17g vs %.17g", a->norm_eps, b->norm_eps);
}

/* Writes src as type to a fresh path and loads it back into *dst; returns the path. */
static const char *round_trip(const struct ab_model *src, const struct ab_tokenizer *t, int type,
                              const char *name, struct ab_model *dst)
{
    const char *path = t_path(name);
    cr_assert_eq(ab_gguf_write_model(path, src, t, type), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_gguf_load_model(path, dst), AB_OK, "%s", ab_errmsg());
    expect_same_config(&src->c, &dst->c);
    cr_expect_eq(dst->shared_cls, src->shared_cls);
    cr_expect_str_eq(dst->format, "gguf");
    cr_expect_str_eq(dst->path, path);
    cr_assert_not_null(dst->description);
    return path;
}

/* ------------------------------------------------------------------ round trips */

Test(gguf, f32_round_trip_is_bitwise_with_its_vocabulary)
{
    struct ab_model_config c = tiny_config();
    struct ab_model a, b;
    struct ab_tokenizer t;
    float score[N_VOCAB];
    char *owned[N_VOCAB];
    make_model(&a, &c, 1, SEED);
    make_tokenizer(&t, score, owned);
    const char *path = round_trip(&a, &t, AB_GGML_F32, "f32.gguf", &b);
    cr_expect(b.wcls == b.tok_emb, "a shared classifier is the embedding");
    float *pa[12], *pb[12];
    size_t na[12], nb[12];
    int k = weights(&a, pa, na);
    cr_assert_eq(weights(&b, pb, nb), k);
    for (int i = 0; i < k; i++) {
        cr_assert_eq(na[i], nb[i]);
        cr_expect(!memcmp(pa[i], pb[i], na[i] * sizeof(float)), "buffer %d differs", i);
    }
    cr_expect(strstr(b.description, "F32 x20"), "%s", b.description);
    cr_expect(!t_tmp_left(t_path("f32.gguf")));

    /* the vocabulary: pieces, scores, ids and token types */
    struct ab_gguf_vocab v;
    cr_assert_eq(ab_gguf_read_vocab(path, &v), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(v.n_vocab, N_VOCAB);
    cr_expect_eq(v.bos, 1);
    cr_expect_eq(v.eos, 2);
    for (int i = 0; i < N_VOCAB; i++) {
        cr_expect_str_eq(v.piece[i], owned[i], "piece %d", i);
        cr_expect(!memcmp(&v.score[i], &score[i], 4), "score %d", i);
        int want = i == 0 ? 2 : i <= 2 ? 3 : i <= 7 ? 6 : 1;
        cr_expect_eq(v.type[i], want, "token type of %d ('%s')", i, owned[i]);
    }
    ab_gguf_vocab_free(&v);
    /* on disk, spaces are SentencePiece's U+2581 */
    size_t len;
    unsigned char *raw = t_slurp(path, &len);
    cr_assert_not_null(raw);
    cr_expect_not_null(memmem(raw, len, "\xe2\x96\x81the", 6));
    cr_expect_not_null(memmem(raw, len, "hello\xe2\x96\x81world", 13));
    cr_expect_not_null(memmem(raw, len, "\x0d\0\0\0\0\0\0\0hello", 13),
                       "U+2581 counted as 3 bytes");
    cr_expect_null(memmem(raw, len, "hello world", 11));
    free(raw);
    free_owned(owned);
    ab_model_free(&a);
    ab_model_free(&b);
}

Test(gguf, separate_classifier_round_trip)
{
    struct ab_model_config c = tiny_config();
    struct ab_model a, b;
    make_model(&a, &c, 0, SEED + 1);
    round_trip(&a, NULL, AB_GGML_F32, "sep.gguf", &b);
    cr_assert_eq(b.shared_cls, 0);
    cr_expect(b.wcls != b.tok_emb);
    cr_expect(!memcmp(a.wcls, b.wcls, (size_t)(c.vocab * c.dim) * sizeof(float)));
    cr_expect(memcmp(b.wcls, b.tok_emb, (size_t)(c.vocab * c.dim) * sizeof(float)));
    /* without a tokenizer the vocabulary size comes from llama.vocab_size */
    struct ab_gguf_vocab v;
    cr_expect_eq(ab_gguf_read_vocab(t_path("sep.gguf"), &v), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "tokenizer.ggml.tokens is missing"), "%s", ab_errmsg());
    ab_model_free(&a);
    ab_model_free(&b);
}

Test(gguf, f16_within_fp16_rounding)
{
    struct ab_model_config c = tiny_config();
    struct ab_model a, b;
    make_model(&a, &c, 0, SEED + 2);
    round_trip(&a, NULL, AB_GGML_F16, "f16.gguf", &b);
    float *pa[12], *pb[12];
    size_t na[12], nb[12];
    int k = weights(&a, pa, na);
    weights(&b, pb, nb);
    for (int i = 0; i < k; i++)
        for (size_t j = 0; j < na[i]; j++) {
            double x = pa[i][j], y = pb[i][j];
            if (is_gain(i)) {
                cr_assert_eq(x, y, "gains stay F32");
                continue;
            }
            /* relative 2^-11 in the normal range, absolute 2^-25 among the subnormals */
            double tol = fmax(0x1p-11 * fabs(x), 0x1p-25);
            cr_assert(fabs(x - y) <= tol, "buffer %d [%zu]: %.9g read back as %.9g", i, j, x, y);
            cr_assert_eq(y, ab_f16_to_double(ab_f16_from_double(x)));
        }
    cr_expect(strstr(b.description, "F16 x16") && strstr(b.description, "F32 x5"), "%s",
              b.description);
    ab_model_free(&a);
    ab_model_free(&b);
}

Test(gguf, bf16_within_bf16_rounding)
{
    struct ab_model_config c = tiny_config();
    struct ab_model a, b;
    make_model(&a, &c, 1, SEED + 3);
    round_trip(&a, NULL, AB_GGML_BF16, "bf16.gguf", &b);
    float *pa[12], *pb[12];
    size_t na[12], nb[12];
    int k = weights(&a, pa, na);
    weights(&b, pb, nb);
    for (int i = 0; i < k; i++)
        for (size_t j = 0; j < na[i]; j++) {
            double x = pa[i][j], y = pb[i][j];
            cr_assert(fabs(x - y) <= (is_gain(i) ? 0 : 0x1p-8 * fabs(x)), "%.9g -> %.9g", x, y);
            if (!is_gain(i)) cr_assert_eq(pb[i][j], ab_bf16_to_float(ab_bf16_from_float(pa[i][j])));
        }
    ab_model_free(&a);
    ab_model_free(&b);
}

/* Q8_0 of one block, recomputed here: the fp16 scale d of max|x| / 127, then q = round(x / d). */
static double q8_scale(const float *x)
{
    double amax = 0;
    for (int j = 0; j < 32; j++) amax = fmax(amax, fabs((double)x[j]));
    return ab_f16_to_double(ab_f16_from_double(amax / 127));
}

/* Checks every 32-block of rows of ne0 values: within d/2 and exactly d * q. */
static void expect_q8_0(const float *x, const float *y, size_t n, const char *what)
{
    for (size_t b = 0; b < n / 32; b++) {
        double d = q8_scale(x + 32 * b);
        for (int j = 0; j < 32; j++) {
            size_t i = 32 * b + (size_t)j;
            double q = d > 0 ? round(x[i] / d) : 0;
            cr_assert(fabs(q) <= 127);
            cr_assert_eq(y[i], (float)(d * q), "%s [%zu]: %.9g read as %.9g, want %.9g", what, i,
                         x[i], y[i], d * q);
            cr_assert(fabs((double)x[i] - y[i]) <= d / 2 * (1 + 1e-12), "%s [%zu]", what, i);
        }
    }
}

Test(gguf, q8_0_within_half_a_step_and_exactly_dequant_of_quant)
{
    struct ab_model_config c = tiny_config();
    struct ab_model a, b;
    make_model(&a, &c, 0, SEED + 4);
    round_trip(&a, NULL, AB_GGML_Q8_0, "q8.gguf", &b);
    float *pa[12], *pb[12];
    size_t na[12], nb[12];
    int k = weights(&a, pa, na);
    weights(&b, pb, nb);
    for (int i = 0; i < k; i++) {
        char what[32];
        snprintf(what, sizeof what, "buffer %d", i);
        if (is_gain(i))
            cr_expect(!memcmp(pa[i], pb[i], na[i] * 4), "gains stay F32");
        else
            expect_q8_0(pa[i], pb[i], na[i], what);
    }
    for (int j = 0; j < 32; j++) cr_expect_eq(b.wq[j], 0.0f, "the zero block stays zero");
    cr_expect(strstr(b.description, "Q8_0 x16"), "%s", b.description);
    /* 34 bytes per 32 values: the file is about 34/128 of the F32 one */
    size_t n8, n32;
    free(t_slurp(t_path("q8.gguf"), &n8));
    ab_gguf_write_model(t_path("q8-f32.gguf"), &a, NULL, AB_GGML_F32);
    free(t_slurp(t_path("q8-f32.gguf"), &n32));
    cr_expect(n8 < n32 * 0.3, "%zu vs %zu bytes", n8, n32);
    ab_model_free(&a);
    ab_model_free(&b);
}

Test(gguf, q8_0_keeps_rows_that_are_not_whole_blocks_in_f32)
{
    struct ab_model_config c = tiny_config();
    c.dim = 48, c.n_head = 3, c.n_kv_head = 1; /* head_dim 16; rows of 48 except w2's 128 */
    struct ab_model a, b;
    make_model(&a, &c, 1, SEED + 5);
    round_trip(&a, NULL, AB_GGML_Q8_0, "q8-48.gguf", &b);
    size_t w2 = (size_t)(c.n_layer * c.dim * c.hidden_dim);
    expect_q8_0(a.w2, b.w2, w2, "w2");
    cr_expect(!memcmp(a.wq, b.wq, (size_t)(c.n_layer * c.dim * c.dim) * 4));
    cr_expect(!memcmp(a.tok_emb, b.tok_emb, (size_t)(c.vocab * c.dim) * 4));
    cr_expect(strstr(b.description, "Q8_0 x2"), "%s", b.description);
    ab_model_free(&a);
    ab_model_free(&b);
}

Test(gguf, writer_refuses_what_it_cannot_store_and_leaves_nothing)
{
    struct ab_model_config c = tiny_config();
    struct ab_model a;
    make_model(&a, &c, 1, SEED + 6);
    const char *path = t_path("nan.gguf");
    a.w3[100] = NAN;
    cr_expect_eq(ab_gguf_write_model(path, &a, NULL, AB_GGML_Q8_0), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "blk.0.ffn_up.weight"), "%s", ab_errmsg());
    cr_expect(!t_exists(path));
    cr_expect(!t_tmp_left(t_path("nan.gguf")));
    a.w3[100] = 0;
    cr_expect_eq(ab_gguf_write_model(t_path("no/such/dir.gguf"), &a, NULL, AB_GGML_F32),
                 AB_E_CREATE);
    struct ab_tokenizer t;
    float score[N_VOCAB];
    char *owned[N_VOCAB];
    make_tokenizer(&t, score, owned);
    t.n_vocab = N_VOCAB - 1;
    cr_expect_eq(ab_gguf_write_model(path, &a, &t, AB_GGML_F32), AB_E_DATA);
    cr_expect(!t_exists(path));
    free_owned(owned);
    ab_model_free(&a);
}

/* ------------------------------------------------------------------ a file built by hand */

struct hb {
    unsigned char *p;
    size_t n, cap;
};

static void hb_put(struct hb *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void hb_le(struct hb *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        unsigned char c = (unsigned char)(v >> (8 * i));
        hb_put(b, &c, 1);
    }
}

static void hb_str(struct hb *b, const char *s)
{
    hb_le(b, strlen(s), 8);
    hb_put(b, s, strlen(s));
}

static void hb_key(struct hb *b, const char *key, uint32_t type)
{
    hb_str(b, key);
    hb_le(b, type, 4);
}

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* One tensor of the hand-built file: name stem, buffer of weights(), first element, shape. */
struct hand_row {
    const char *name;
    int buf;
    int64_t at, ne0, ne1;
};

/* dst[0 .. n) must be src truncated to bfloat16 (matrices) or src itself (vectors, F32).
 * Compared as bit patterns: Debian's GCC 12.2 at -O2 miscompiles the float form
 * `dst[j] != (bf16 ? float_of(bits_of(src[j]) & 0xffff0000u) : src[j])` (it drops the mask). */
static void expect_hand_tensor(const char *name, const float *src, const float *dst, int64_t n,
                               int bf16)
{
    uint32_t mask = bf16 ? 0xffff0000u : 0xffffffffu;
    for (int64_t j = 0; j < n; j++)
        cr_assert_eq(bits_of(dst[j]), bits_of(src[j]) & mask, "%s [%lld]: %.9g from %.9g", name,
                     (long long)j, dst[j], src[j]);
}

Test(gguf, reads_a_file_built_by_hand)
{
    struct ab_model_config c = tiny_config();
    struct ab_model a, b;
    make_model(&a, &c, 0, SEED + 7);
    struct hb h = {0};
    /* tensors: name, buffer of weights() and first element there, ne0, ne1 (0 for a
       vector); llama.cpp's names */
    struct {
        char name[48];
        int buf;
        size_t at;
        const float *src;
        int64_t ne0, ne1;
    } t[32];
    float *pa[12], *pb[12];
    size_t na[12];
    weights(&a, pa, na);
    int nt = 0;
    int64_t D = c.dim, F = c.hidden_dim, kvd = c.n_kv_head * c.head_dim;
    for (int i = -1; i < c.n_layer; i++) { /* -1: the tensors outside the blocks */
        struct hand_row rows[9] = {
            {"token_embd", 0, 0, D, c.vocab},
            {"output_norm", 10, 0, D, 0},
            {"output", 11, 0, D, c.vocab},
        };
        int nr = 3;
        if (i >= 0) {
            int64_t l = i;
            nr = 0;
            rows[nr++] = (struct hand_row){"attn_norm", 1, l * D, D, 0};
            rows[nr++] = (struct hand_row){"ffn_norm", 6, l * D, D, 0};
            rows[nr++] = (struct hand_row){"attn_q", 2, l * D * D, D, D};
            rows[nr++] = (struct hand_row){"attn_k", 3, l * kvd * D, D, kvd};
            rows[nr++] = (struct hand_row){"attn_v", 4, l * kvd * D, D, kvd};
            rows[nr++] = (struct hand_row){"attn_output", 5, l * D * D, D, D};
            rows[nr++] = (struct hand_row){"ffn_gate", 7, l * F * D, D, F};
            rows[nr++] = (struct hand_row){"ffn_up", 9, l * F * D, D, F};
            rows[nr++] = (struct hand_row){"ffn_down", 8, l * D * F, F, D};
        }
        for (int r = 0; r < nr; r++) {
            if (i >= 0)
                snprintf(t[nt].name, 48, "blk.%d.%s.weight", i, rows[r].name);
            else
                snprintf(t[nt].name, 48, "%s.weight", rows[r].name);
            t[nt].buf = rows[r].buf, t[nt].at = (size_t)rows[r].at;
            t[nt].src = pa[rows[r].buf] + rows[r].at;
            t[nt].ne0 = rows[r].ne0, t[nt].ne1 = rows[r].ne1;
            nt++;
        }
    }
    hb_put(&h, "GGUF", 4);
    hb_le(&h, 2, 4); /* version 2: the same layout as 3 */
    hb_le(&h, (uint64_t)nt, 8);
    size_t n_kv_at = h.n;
    hb_le(&h, 0, 8);
    int n_kv = 0;
    hb_key(&h, "general.architecture", 8), hb_str(&h, "llama"), n_kv++;
    hb_key(&h, "general.alignment", 4), hb_le(&h, 64, 4), n_kv++;
    hb_key(&h, "llama.embedding_length", 2), hb_le(&h, 64, 2), n_kv++;       /* uint16 */
    hb_key(&h, "llama.feed_forward_length", 11), hb_le(&h, 128, 8), n_kv++;  /* int64 */
    hb_key(&h, "llama.block_count", 10), hb_le(&h, 2, 8), n_kv++;            /* uint64 */
    hb_key(&h, "llama.attention.head_count", 5), hb_le(&h, 4, 4), n_kv++;    /* int32 */
    hb_key(&h, "llama.attention.head_count_kv", 0), hb_le(&h, 2, 1), n_kv++; /* uint8 */
    hb_key(&h, "llama.context_length", 4), hb_le(&h, 256, 4), n_kv++;
    double theta = 500000;
    uint64_t tb;
    memcpy(&tb, &theta, 8);
    hb_key(&h, "llama.rope.freq_base", 12), hb_le(&h, tb, 8), n_kv++; /* float64 */
    hb_key(&h, "llama.attention.layer_norm_rms_epsilon", 6), hb_le(&h, bits_of(1e-6f), 4), n_kv++;
    hb_key(&h, "llama.vocab_size", 3), hb_le(&h, N_VOCAB, 2), n_kv++; /* int16; no tokens */
    /* every other value type, to be skipped */
    hb_key(&h, "x.i8", 1), hb_le(&h, 0xfb, 1), n_kv++;
    hb_key(&h, "x.bool", 7), hb_le(&h, 1, 1), n_kv++;
    hb_key(&h, "x.f32s", 9), hb_le(&h, 6, 4), hb_le(&h, 0, 8), n_kv++; /* empty array */
    char long_text[3000];
    memset(long_text, 'z', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = 0;
    hb_key(&h, "x.text", 8), hb_str(&h, long_text), n_kv++;
    hb_key(&h, "x.nested", 9), hb_le(&h, 9, 4), hb_le(&h, 3, 8), n_kv++; /* array of 3 arrays */
    hb_le(&h, 8, 4), hb_le(&h, 2, 8), hb_str(&h, "a"), hb_str(&h, "bc"); /* of strings */
    hb_le(&h, 10, 4), hb_le(&h, 3, 8), hb_le(&h, 1, 8), hb_le(&h, 2, 8), hb_le(&h, 3, 8);
    hb_le(&h, 9, 4), hb_le(&h, 1, 8), hb_le(&h, 7, 4), hb_le(&h, 2, 8), hb_le(&h, 0, 1),
        hb_le(&h, 1, 1); /* an array holding an array of two bools */
    for (int i = 0; i < 8; i++) h.p[n_kv_at + i] = (unsigned char)((uint64_t)n_kv >> (8 * i));
    /* tensor infos in reverse order, data in forward order, 64-byte aligned; matrices BF16 by
       truncation (the reader must give back exactly those floats), vectors F32 */
    uint64_t off[32], data = 0;
    for (int i = 0; i < nt; i++) {
        int64_t n = t[i].ne0 * (t[i].ne1 ? t[i].ne1 : 1);
        off[i] = data;
        data += (uint64_t)((n * (t[i].ne1 ? 2 : 4) + 63) / 64 * 64);
    }
    for (int i = nt - 1; i >= 0; i--) {
        hb_str(&h, t[i].name);
        hb_le(&h, t[i].ne1 ? 2 : 1, 4);
        hb_le(&h, (uint64_t)t[i].ne0, 8);
        if (t[i].ne1) hb_le(&h, (uint64_t)t[i].ne1, 8);
        hb_le(&h, t[i].ne1 ? 30 : 0, 4);
        hb_le(&h, off[i], 8);
    }
    while (h.n % 64) hb_le(&h, 0, 1);
    size_t data_start = h.n;
    for (int i = 0; i < nt; i++) {
        while (h.n < data_start + off[i]) hb_le(&h, 0, 1);
        int64_t n = t[i].ne0 * (t[i].ne1 ? t[i].ne1 : 1);
        for (int64_t j = 0; j < n; j++) {
            uint32_t u = bits_of(t[i].src[j]);
            if (t[i].ne1)
                hb_le(&h, u >> 16, 2);
            else
                hb_le(&h, u, 4);
        }
    }
    const char *path = t_path("hand.gguf");
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(h.p, 1, h.n, f), h.n);
    fclose(f);
    free(h.p);

    cr_assert_eq(ab_gguf_load_model(path, &b), AB_OK, "%s", ab_errmsg());
    c.rope_theta = 500000, c.norm_eps = 1e-6;
    expect_same_config(&c, &b.c);
    cr_expect_eq(b.shared_cls, 0);
    weights(&b, pb, na);
    for (int i = 0; i < nt; i++)
        expect_hand_tensor(t[i].name, t[i].src, pb[t[i].buf] + t[i].at,
                           t[i].ne0 * (t[i].ne1 ? t[i].ne1 : 1), t[i].ne1 != 0);
    cr_expect(strstr(b.description, "gguf v2") && strstr(b.description, "BF16 x16"), "%s",
              b.description);
    ab_model_free(&a);
    ab_model_free(&b);
}

/* ------------------------------------------------------------------ malformed files */

/* A valid Q8_0 file with a vocabulary, as bytes (*len); the path it was written to. */
static unsigned char *good_file(size_t *len)
{
    struct ab_model_config c = tiny_config();
    struct ab_model a;
    struct ab_tokenizer t;
    float score[N_VOCAB];
    char *owned[N_VOCAB];
    make_model(&a, &c, 1, SEED + 8);
    make_tokenizer(&t, score, owned);
    const char *path = t_path("good.gguf");
    cr_assert_eq(ab_gguf_write_model(path, &a, &t, AB_GGML_Q8_0), AB_OK, "%s", ab_errmsg());
    free_owned(owned);
    ab_model_free(&a);
    unsigned char *raw = t_slurp(path, len);
    cr_assert_not_null(raw);
    return raw;
}

static void spit(const char *path, const unsigned char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Offset of the byte after tensor `name`'s name in its tensor info (found by its length
 * prefix, so "output.weight" does not match "attn_output.weight"). */
static size_t tensor_info(const unsigned char *raw, size_t len, const char *name)
{
    unsigned char key[80];
    size_t n = strlen(name);
    put_le(key, n, 8);
    memcpy(key + 8, name, n);
    const unsigned char *at = memmem(raw, len, key, n + 8);
    cr_assert_not_null(at, "%s", name);
    return (size_t)(at - raw) + 8 + n;
}

/* Lowers the address-space limit to what is mapped now plus 256 MiB, so an allocation sized
 * by a lying count fails (and the test with it) instead of succeeding lazily. */
static void limit_memory(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f) return;
    if (fscanf(f, "%lu", &pages) != 1) pages = 0;
    fclose(f);
    if (!pages) return;
    rlim_t lim = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)256 << 20);
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < lim) return;
    rl.rlim_cur = lim;
    setrlimit(RLIMIT_AS, &rl);
}

enum { MODEL = 1, VOCAB = 2 }; /* which loaders must refuse a file */

/* Loads bytes p[0..n) as a model (MODEL) and / or as a vocabulary (VOCAB): each must fail with
 * AB_E_DATA naming the file, and the message must hold `needle`. */
static void expect_refused(const char *name, const unsigned char *p, size_t n, int which,
                           const char *needle)
{
    const char *path = t_path(name);
    spit(path, p, n);
    for (int w = MODEL; w <= VOCAB; w++) {
        if (!(which & w)) continue;
        struct ab_model m;
        struct ab_gguf_vocab v;
        int rc = w == MODEL ? ab_gguf_load_model(path, &m) : ab_gguf_read_vocab(path, &v);
        const char *what = w == MODEL ? "model" : "vocabulary";
        cr_expect_eq(rc, AB_E_DATA, "%s: %s: %d %s", name, what, rc, ab_errmsg());
        cr_expect(strstr(ab_errmsg(), path), "%s: names the file: %s", name, ab_errmsg());
        cr_expect(strstr(ab_errmsg(), needle), "%s: %s: '%s' not in: %s", name, what, needle,
                  ab_errmsg());
        if (w == MODEL)
            cr_expect_null(m.wq, "nothing left allocated");
        else
            cr_expect_null(v.piece, "nothing left allocated");
    }
}

Test(gguf, malformed_headers_are_refused)
{
    size_t len;
    unsigned char *raw = good_file(&len), *p = malloc(len);
    memcpy(p, raw, len), p[0] = 'X';
    expect_refused("magic.gguf", p, len, MODEL | VOCAB, "bad magic");
    memcpy(p, raw, len), put_le(p + 4, 1, 4);
    expect_refused("v1.gguf", p, len, MODEL | VOCAB, "version 1");
    memcpy(p, raw, len), put_le(p + 4, 4, 4);
    expect_refused("v4.gguf", p, len, MODEL | VOCAB, "version 4");
    expect_refused("cut-header.gguf", raw, 20, MODEL | VOCAB, "truncated");
    /* inside the first key ("general.architecture", whose bytes start at 32) */
    expect_refused("cut-string.gguf", raw, 37, MODEL | VOCAB, "truncated");
    /* inside a token piece */
    size_t at = (size_t)((unsigned char *)memmem(raw, len, "hello", 5) - raw);
    expect_refused("cut-token.gguf", raw, at + 2, MODEL | VOCAB, "truncated");
    free(p);
    free(raw);
}

Test(gguf, lying_counts_fail_fast_without_allocating)
{
    limit_memory();
    size_t len;
    unsigned char *raw = good_file(&len), *p = malloc(len);
    memcpy(p, raw, len), put_le(p + 16, (uint64_t)1 << 40, 8); /* metadata count */
    expect_refused("n-kv.gguf", p, len, MODEL | VOCAB,
                   "metadata count 1099511627776 is implausible");
    memcpy(p, raw, len), put_le(p + 8, (uint64_t)1 << 40, 8); /* tensor count */
    expect_refused("n-tensor.gguf", p, len, MODEL | VOCAB,
                   "tensor count 1099511627776 is implausible");
    memcpy(p, raw, len), put_le(p + 24, (uint64_t)1 << 62, 8); /* first key's length */
    expect_refused("key-len.gguf", p, len, MODEL | VOCAB,
                   "string length 4611686018427387904 is implausible");
    /* the token array's count: its key, the value type (4), the element type (4), the count */
    size_t at = (size_t)((unsigned char *)memmem(p, len, "tokenizer.ggml.tokens", 21) - p) + 29;
    memcpy(p, raw, len), put_le(p + at, (uint64_t)1 << 40, 8);
    expect_refused("array-count.gguf", p, len, MODEL | VOCAB, "cannot fit");
    /* one token's length */
    at = (size_t)((unsigned char *)memmem(raw, len, "hello", 5) - raw) - 8;
    memcpy(p, raw, len), put_le(p + at, (uint64_t)1 << 50, 8);
    expect_refused("token-len.gguf", p, len, MODEL | VOCAB, "implausible");
    memcpy(p, raw, len), put_le(p + at, 1000000, 8);
    expect_refused("token-len2.gguf", p, len, MODEL | VOCAB, "truncated");
    free(p);
    free(raw);
}

Test(gguf, bad_metadata_and_tensors_are_refused)
{
    size_t len;
    unsigned char *raw = good_file(&len), *p = malloc(len);
    size_t at = (size_t)((unsigned char *)memmem(raw, len, "llama.block_count", 17) - raw);
    memcpy(p, raw, len), p[at + 12] = 'X'; /* llama.block_Xount */
    expect_refused("no-blocks.gguf", p, len, MODEL, "'llama.block_count' is missing");
    /* block_count 1 of the file's 2 layers: blk.1 would be dropped in silence (issue 15) */
    memcpy(p, raw, len), put_le(p + at + 17 + 4, 1, 4); /* written as uint32 */
    expect_refused("few-blocks.gguf", p, len, MODEL,
                   "tensor 'blk.1.attn_norm.weight' belongs to no layer: llama.block_count is 1");
    at = (size_t)((unsigned char *)memmem(raw, len, "general.architecture", 20) - raw) + 32;
    memcpy(p, raw, len), memcpy(p + at, "gpt2x", 5);
    expect_refused("arch.gguf", p, len, MODEL, "architecture 'gpt2x'");
    at = (size_t)((unsigned char *)memmem(raw, len, "tokenizer.ggml.model", 20) - raw) + 32;
    memcpy(p, raw, len), memcpy(p + at, "gpt2x", 5);
    expect_refused("tok-model.gguf", p, len, VOCAB, "tokenizer 'gpt2x'");
    memcpy(p, raw, len), memcpy(p + tensor_info(raw, len, "output_norm.weight") - 11, "X", 1);
    expect_refused("no-tensor.gguf", p, len, MODEL, "tensor 'output_norm.weight' is missing");

    /* tensor info: uint32 n_dims, uint64 ne[n_dims], uint32 type, uint64 offset */
    at = tensor_info(raw, len, "blk.0.attn_k.weight");
    memcpy(p, raw, len), put_le(p + at + 4, 32, 8);
    expect_refused("shape.gguf", p, len, MODEL,
                   "tensor 'blk.0.attn_k.weight' has shape [32, 32], the metadata says [64, 32]");
    at = tensor_info(raw, len, "blk.0.ffn_down.weight");
    memcpy(p, raw, len), put_le(p + at + 20, 12, 4);
    expect_refused("q4k.gguf", p, len, MODEL,
                   "tensor 'blk.0.ffn_down.weight' has type Q4_K (12), which is not supported");
    memcpy(p, raw, len), put_le(p + at + 24, (uint64_t)1 << 40, 8);
    expect_refused("offset.gguf", p, len, MODEL, "runs past the end");
    memcpy(p, raw, len), put_le(p + at + 24, 48, 8);
    expect_refused("unaligned.gguf", p, len, MODEL | VOCAB, "not a multiple of the alignment 32");
    expect_refused("cut-data.gguf", raw, len - 100, MODEL, "runs past the end");
    free(p);
    free(raw);
}

Test(gguf, every_truncation_and_byte_flips_are_handled)
{
    limit_memory();
    size_t len;
    unsigned char *raw = good_file(&len), *p = malloc(len);
    const char *path = t_path("fuzz.gguf");
    /* every cut through metadata and tensor infos, then every 97th through the data */
    size_t header = tensor_info(raw, len, "output_norm.weight") + 40;
    for (size_t n = 0; n < len; n += n < header ? 1 : 97) {
        spit(path, raw, n);
        struct ab_model m;
        int rc = ab_gguf_load_model(path, &m);
        cr_assert_eq(rc, AB_E_DATA, "cut at %zu of %zu: %d %s", n, len, rc, ab_errmsg());
    }
    /* byte flips in the header: refused with AB_E_DATA or AB_E_TOOBIG, or read */
    struct ab_rng r;
    ab_rng_init(&r, SEED, 1);
    int refused = 0;
    for (int i = 0; i < 300; i++) {
        memcpy(p, raw, len);
        for (int k = 0; k < 3; k++)
            p[ab_rng_below(&r, (int64_t)header)] ^= (unsigned char)(1 + ab_rng_below(&r, 255));
        spit(path, p, len);
        struct ab_model m;
        int rc = ab_gguf_load_model(path, &m);
        cr_assert(rc == AB_OK || rc == AB_E_DATA || rc == AB_E_TOOBIG, "flip %d: %d %s", i, rc,
                  ab_errmsg());
        refused += rc != AB_OK;
        ab_model_free(&m);
        struct ab_gguf_vocab v;
        rc = ab_gguf_read_vocab(path, &v);
        cr_assert(rc == AB_OK || rc == AB_E_DATA, "flip %d: vocab %d %s", i, rc, ab_errmsg());
        ab_gguf_vocab_free(&v);
    }
    cr_expect(refused > 100, "%d of 300 refused", refused);
    free(p);
    free(raw);
}

Test(gguf, missing_file)
{
    struct ab_model m;
    cr_expect_eq(ab_gguf_load_model(t_path("nothing-here.gguf"), &m), AB_E_NOFILE);
}

/* ------------------------------------------------------------------ 16-bit floats */

Test(gguf, bf16_conversions)
{
    cr_expect_eq(ab_bf16_from_float(1.0f), 0x3f80);
    cr_expect_eq(ab_bf16_from_float(-2.0f), 0xc000);
    cr_expect_eq(ab_bf16_from_float(1.0f + 0x1p-8f), 0x3f80);     /* tie, down to even */
    cr_expect_eq(ab_bf16_from_float(1.0f + 3 * 0x1p-8f), 0x3f82); /* tie, up to even */
    cr_expect_eq(ab_bf16_from_float(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    cr_expect_eq(ab_bf16_from_float(INFINITY), 0x7f80);
    cr_expect_eq(ab_bf16_from_float(3.4e38f), 0x7f80); /* rounds past the largest finite */
    cr_expect_eq(ab_bf16_from_float(-0.0f), 0x8000);
    cr_expect(isnan(ab_bf16_to_float(ab_bf16_from_float(NAN))));
    cr_expect(isnan(ab_bf16_to_float(ab_bf16_from_float(float_of(0x7f800001u)))),
              "a NaN whose payload is in the dropped bits stays NaN");
    cr_expect_eq(ab_bf16_to_float(0x3f80), 1.0f);
    cr_expect_eq(ab_bf16_to_float(0x0001), 0x1p-133f); /* subnormal */
    for (uint32_t h = 0; h < 65536; h++) {
        float x = ab_bf16_to_float((uint16_t)h);
        if (!isnan(x)) cr_assert_eq(ab_bf16_from_float(x), h, "0x%04x", h);
    }
}

/* ------------------------------------------------------------------ attnbench convert */

Test(gguf, convert_command_rewrites_gguf_as_q8_0)
{
    struct ab_model_config c = tiny_config();
    struct ab_model a, b;
    struct ab_tokenizer t;
    float score[N_VOCAB];
    char *owned[N_VOCAB];
    make_model(&a, &c, 1, SEED + 9);
    make_tokenizer(&t, score, owned);
    const char *in = t_path("conv-in.gguf"), *out = t_path("conv-out.gguf");
    cr_assert_eq(ab_gguf_write_model(in, &a, &t, AB_GGML_F32), AB_OK, "%s", ab_errmsg());
    char *so = NULL, *se = NULL;
    int st = t_run(&so, &se, "convert '%s' --type q8_0 -o '%s'", in, out);
    cr_assert_eq(st, 0, "%s", se);
    cr_expect(strstr(so, out), "%s", so);
    cr_assert_eq(ab_gguf_load_model(out, &b), AB_OK, "%s", ab_errmsg());
    expect_q8_0(a.wq, b.wq, (size_t)(c.n_layer * c.dim * c.dim), "wq");
    struct ab_gguf_vocab v;
    cr_assert_eq(ab_gguf_read_vocab(out, &v), AB_OK, "%s", ab_errmsg());
    for (int i = 0; i < N_VOCAB; i++) cr_expect_str_eq(v.piece[i], owned[i]);
    ab_gguf_vocab_free(&v);
    free(so), free(se);
    /* usage errors and bad input: exit 64 / 65, nothing written */
    const char *none = t_path("conv-none.gguf");
    cr_expect_eq(t_run(NULL, NULL, "convert '%s' --type q4 -o '%s'", in, none), 64);
    cr_expect_eq(t_run(NULL, NULL, "convert '%s' -o '%s'", in, none), 64);
    size_t len;
    unsigned char *raw = t_slurp(in, &len);
    const char *bad = t_path("conv-bad.gguf");
    spit(bad, raw, len / 2);
    cr_expect_eq(t_run(NULL, &se, "convert '%s' --type f16 -o '%s'", bad, none), 65);
    cr_expect(strstr(se, bad), "%s", se);
    cr_expect(!t_exists(none) && !t_tmp_left(t_path("conv-none.gguf")));
    free(se);
    free(raw);
    free_owned(owned);
    ab_model_free(&a);
    ab_model_free(&b);
}

/* ---- the real model through GGUF: same logits (F32 bitwise, Q8_0 close) ------------------ */

static void real_model(struct ab_model *m, struct ab_tokenizer *t, char *path, size_t cap)
{
    const char *sh = getenv("AB_SHARED");
    cr_assert(sh, "AB_SHARED is not set");
    snprintf(path, cap, "%s/models/stories260K/stories260K.bin", sh);
    cr_assert_eq(ab_model_load(path, m), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_model_tokenizer_find(m, NULL, t), AB_OK, "%s", ab_errmsg());
}

/* Logits (n, vocab) of a seeded 64-token input, malloc'd. */
static float *logits_of(const struct ab_model *m, int32_t *ids, int64_t n)
{
    float *lg = malloc(sizeof(float) * (size_t)(n * m->c.vocab));
    cr_assert(lg);
    cr_assert_eq(ab_model_forward(m, ids, n, NULL, lg), AB_OK, "%s", ab_errmsg());
    return lg;
}

Test(gguf, stories260k_as_gguf_gives_the_same_logits_f32_exactly_q8_0_closely)
{
    struct ab_model m;
    struct ab_tokenizer t;
    char src[4096];
    real_model(&m, &t, src, sizeof src);
    int64_t n = 64;
    int32_t ids[64];
    struct ab_rng g;
    ab_rng_init(&g, 9, 0);
    ids[0] = 1;
    for (int64_t i = 1; i < n; i++) ids[i] = (int32_t)(3 + ab_rng_below(&g, m.c.vocab - 3));
    float *ref = logits_of(&m, ids, n);
    int32_t *greedy_ref = NULL, *greedy = NULL;
    int64_t n_ref = 0, n_g = 0;
    int32_t bos = 1;
    cr_assert_eq(ab_model_generate(&m, &bos, 1, 20, -1, &greedy_ref, &n_ref), AB_OK);
    const int types[] = {AB_GGML_F32, AB_GGML_Q8_0};
    for (int k = 0; k < 2; k++) {
        const char *path = t_path(k ? "s260k-q8.gguf" : "s260k-f32.gguf");
        cr_assert_eq(ab_gguf_write_model(path, &m, &t, types[k]), AB_OK, "%s", ab_errmsg());
        struct ab_model g2;
        cr_assert_eq(ab_model_load(path, &g2), AB_OK, "%s", ab_errmsg());
        cr_expect_str_eq(g2.format, "gguf");
        cr_expect_eq(g2.c.n_kv_head, 4);
        struct ab_tokenizer t2;
        cr_assert_eq(ab_model_tokenizer_find(&g2, NULL, &t2), AB_OK, "%s", ab_errmsg());
        for (int64_t i = 0; i < t.n_vocab; i++)
            cr_expect_str_eq(t2.piece[i], t.piece[i], "piece %lld", (long long)i);
        float *lg = logits_of(&g2, ids, n);
        double num = 0, den = 0, max_abs = 0;
        for (int64_t i = 0; i < n * m.c.vocab; i++) {
            double e = (double)lg[i] - ref[i];
            num += e * e, den += (double)ref[i] * ref[i];
            max_abs = fmax(max_abs, fabs(e));
        }
        double rel = sqrt(num / den);
        if (types[k] == AB_GGML_F32) {
            cr_expect_eq(memcmp(lg, ref, sizeof(float) * (size_t)(n * m.c.vocab)), 0,
                         "F32 GGUF logits must be bitwise those of the llama2.c file");
        } else {
            /* Q8_0 moves each weight by at most half a step (amax/254 of its block of 32) */
            cr_expect(rel < 3e-2, "Q8_0 logits rel L2 %g (max |d| %g)", rel, max_abs);
            cr_expect(rel > 0, "Q8_0 must change something");
        }
        cr_assert_eq(ab_model_generate(&g2, &bos, 1, 20, -1, &greedy, &n_g), AB_OK);
        cr_expect_eq(n_g, n_ref);
        cr_expect_eq(memcmp(greedy, greedy_ref, sizeof(int32_t) * (size_t)n_ref), 0,
                     "greedy continuation from BOS differs for type %d", types[k]);
        free(greedy);
        free(lg);
        ab_tokenizer_free(&t2);
        ab_model_free(&g2);
    }
    free(greedy_ref);
    free(ref);
    ab_tokenizer_free(&t);
    ab_model_free(&m);
}

Test(gguf, convert_reads_the_llama2c_checkpoint_and_its_tokenizer)
{
    struct ab_model m;
    struct ab_tokenizer t;
    char src[4096];
    real_model(&m, &t, src, sizeof src);
    const char *out = t_path("conv-q8.gguf");
    char *so = NULL, *err = NULL;
    int st = t_run(&so, &err, "convert '%s' --type q8_0 -o '%s'", src, out);
    cr_assert_eq(st, 0, "%s", err ? err : "");
    cr_expect(strstr(so, "no vocabulary") == NULL, "%s", so);
    struct ab_tokenizer t2;
    struct ab_model g2;
    cr_assert_eq(ab_model_load(out, &g2), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_model_tokenizer_find(&g2, NULL, &t2), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(t2.n_vocab, 512);
    cr_expect_eq(t2.bos, 1);
    free(so), free(err);
    ab_tokenizer_free(&t2);
    ab_model_free(&g2);
    ab_tokenizer_free(&t);
    ab_model_free(&m);
}
