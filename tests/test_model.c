/* test_model.c - the Llama forward pass, the llama2.c loader, the tokenizer and `capture`,
 * against the real stories260K model in $AB_SHARED/models/stories260K/ (README.md there gives
 * the facts: its greedy text from BOS, its first ids) and against an independent
 * double-precision forward pass written here from the checkpoint's layout facts alone (the
 * file is read with fread, nothing of lib/model is used for it). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "core/workload.h"
#include "helpers.h"
#include "ref_llama.h"
#include "io/h5_workload.h"
#include "model/model.h"
#include "model/tokenizer.h"

/* The README's greedy continuation of BOS, token for token. */
static const char *readme_text =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.";

static const char *shared_file(const char *name)
{
    static char buf[4][1024];
    static int next;
    const char *dir = getenv("AB_SHARED");
    char *p = buf[next++ % 4];
    snprintf(p, 1024, "%s/models/stories260K/%s", dir ? dir : "../shared", name);
    return p;
}
#define MODEL_BIN shared_file("stories260K.bin")
#define TOK_BIN   shared_file("tok512.bin")

static void load_model(struct ab_model *m)
{
    int rc = ab_model_load(MODEL_BIN, m);
    cr_assert_eq(rc, AB_OK, "%s", ab_errmsg());
}

static void load_tok(struct ab_tokenizer *t)
{
    int rc = ab_tokenizer_load_llama2c(TOK_BIN, 512, t);
    cr_assert_eq(rc, AB_OK, "%s", ab_errmsg());
}


static double rel_l2_ff(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* BOS then n - 1 seeded random ids in [3, 512). */
static void random_tokens(int32_t *tok, int64_t n, uint64_t seed)
{
    struct ab_rng r;
    ab_rng_init(&r, seed, 7);
    tok[0] = 1;
    for (int64_t i = 1; i < n; i++) tok[i] = (int32_t)(3 + ab_rng_below(&r, 509));
}

/* ------------------------------------------------------------------ greedy text */

Test(model, greedy_generation_from_bos_reproduces_readme)
{
    struct ab_model m;
    struct ab_tokenizer t;
    load_model(&m);
    load_tok(&t);
    cr_expect_eq(m.c.dim, 64);
    cr_expect_eq(m.c.n_layer, 5);
    cr_expect_eq(m.c.n_kv_head, 4);
    cr_expect_eq(m.shared_cls, 1);
    int32_t *want, *got, bos = 1;
    int64_t n_want, n_got;
    cr_assert_eq(ab_tokenizer_encode(&t, readme_text, 1, &want, &n_want), AB_OK);
    cr_assert_eq(ab_model_generate(&m, &bos, 1, n_want - 1, -1, &got, &n_got), AB_OK, "%s",
                 ab_errmsg());
    cr_assert_eq(n_got, n_want);
    cr_expect_eq(got[0], 1);
    cr_expect_eq(got[1], 403);
    cr_expect_eq(got[2], 407);
    for (int64_t i = 0; i < n_want; i++) cr_expect_eq(got[i], want[i], "token %lld", (long long)i);
    char *text;
    cr_assert_eq(ab_tokenizer_decode(&t, got, n_got, &text), AB_OK);
    cr_expect_str_eq(text, readme_text);
    free(text), free(want), free(got);
    ab_tokenizer_free(&t);
    ab_model_free(&m);
}

Test(model, capture_generate_cli_writes_the_readme_text)
{
    const char *out = t_path("gen.h5");
    char *o, *e;
    /* 61 generated tokens after BOS are the README sentence (62 tokens with BOS) */
    int st = t_run(&o, &e, "capture --model '%s' --prompt '' --generate 61 --threads 2 -o '%s'",
                   MODEL_BIN, out);
    cr_assert_eq(st, 0, "%s", e);
    /* one line on stdout, "capture: PATH (tokens, shape)"; the throughput on stderr */
    cr_expect(strstr(o, "capture: ") == o && strstr(o, out) && t_count_lines(o) == 1, "%s", o);
    cr_expect(strstr(o, "(62 tokens, 5 layers") != NULL, "%s", o);
    cr_expect(strstr(e, "tokens/s") != NULL, "%s", e);
    free(o), free(e);
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(out, &w), AB_OK, "%s", ab_errmsg());
    cr_assert(w.text != NULL);
    cr_expect_str_eq(w.text, readme_text);
    cr_expect_eq(w.n_seq, 62);
    cr_assert(w.tokens != NULL);
    cr_expect_eq(w.tokens[0], 1);
    cr_expect_eq(w.tokens[1], 403);
    cr_expect_eq(w.tokens[2], 407);
    cr_expect_str_eq(w.source, "capture");
    cr_expect(strstr(w.description, "stories260K.bin") != NULL, "%s", w.description);
    cr_expect_eq(w.causal, 1);
    cr_expect_eq(w.rope_applied, 1);
    cr_expect_float_eq(w.scale, 1 / sqrt(8.0), 1e-12);
    cr_expect_float_eq(w.rope_theta, 10000.0, 1e-9);
    cr_expect(w.n_layer == 5 && w.n_head == 8 && w.n_kv_head == 4);
    cr_expect_eq(w.d, 8);
    ab_workload_free(&w);
    /* the rest of the tool reads it */
    cr_expect_eq(t_run(&o, &e, "info '%s'", out), 0, "%s", e);
    cr_expect(strstr(o, "source       capture") != NULL, "%s", o);
    free(o), free(e);
    cr_expect_eq(t_run(&o, &e, "heads '%s' --threads 2 -o '%s'", out, t_path("gen-heads.h5")), 0,
                 "%s", e);
    free(o), free(e);
}

/* ------------------------------------------------------------------ tokenizer */

Test(model, tokenizer_round_trips_and_knows_its_ids)
{
    struct ab_tokenizer t;
    load_tok(&t);
    cr_expect_eq(t.n_vocab, 512);
    cr_expect(t.bos == 1 && t.eos == 2);
    cr_expect_eq(ab_tokenizer_lookup(&t, " Once"), 403);
    cr_expect_eq(ab_tokenizer_lookup(&t, " upon"), 407);
    cr_expect_eq(ab_tokenizer_lookup(&t, "no such piece"), -1);
    int32_t *ids;
    int64_t n;
    char *back;
    /* the dummy prefix makes "Once" the piece " Once"; a leading space of its own stays */
    cr_assert_eq(ab_tokenizer_encode(&t, "Once upon", 0, &ids, &n), AB_OK);
    cr_assert_eq(n, 2);
    cr_expect(ids[0] == 403 && ids[1] == 407, "%d %d", ids[0], ids[1]);
    free(ids);
    cr_assert_eq(ab_tokenizer_encode(&t, " Once upon", 1, &ids, &n), AB_OK);
    cr_assert_eq(n, 4);
    cr_expect(ids[0] == 1 && ids[1] == 410 && ids[2] == 403 && ids[3] == 407, "%d %d %d %d", ids[0],
              ids[1], ids[2], ids[3]);
    free(ids);
    /* the README text round-trips */
    cr_assert_eq(ab_tokenizer_encode(&t, readme_text, 1, &ids, &n), AB_OK);
    cr_expect_eq(n, 62);
    cr_assert_eq(ab_tokenizer_decode(&t, ids, n, &back), AB_OK);
    cr_expect_str_eq(back, readme_text);
    free(ids), free(back);
    /* byte fallback: "日" is not a piece, so it is its three bytes' <0xXX> tokens; newlines
       and tabs are byte tokens too; decoding restores the bytes */
    const char *odd = "日本 €5 naïve\n\tLily's \"go!\"";
    cr_assert_eq(ab_tokenizer_encode(&t, odd, 1, &ids, &n), AB_OK);
    cr_expect(n > 4 && ids[1] == 410 && ids[2] == ab_tokenizer_lookup(&t, "<0xE6>") &&
                  ids[3] == ab_tokenizer_lookup(&t, "<0x97>"),
              "%d %d %d", ids[1], ids[2], ids[3]);
    cr_assert_eq(ab_tokenizer_decode(&t, ids, n, &back), AB_OK);
    cr_expect_str_eq(back, odd);
    free(back);
    /* an id outside the vocabulary is a data error */
    ids[1] = 512;
    cr_expect_eq(ab_tokenizer_decode(&t, ids, n, &back), AB_E_DATA);
    free(ids);
    /* empty text: BOS only */
    cr_assert_eq(ab_tokenizer_encode(&t, "", 1, &ids, &n), AB_OK);
    cr_expect(n == 1 && ids[0] == 1);
    free(ids);
    ab_tokenizer_free(&t);
}

Test(model, tokenizer_merges_by_score_with_leftmost_ties)
{
    /* a hand-built vocabulary: "ab" outscores "bc", so "abc" -> "ab" "c"; with equal scores
       the leftmost pair merges first ("aa" "a" for "aaa") */
    const char *pieces[] = {"<unk>", "<s>", "</s>", " ", "a", "b", "c", "ab", "bc", "aa", " a"};
    const float scores[] = {0, 0, 0, -1, -1, -1, -1, -2, -3, -2, -9};
    struct ab_tokenizer t;
    cr_assert_eq(ab_tokenizer_from_arrays(&t, 11, pieces, scores, 1, 2), AB_OK);
    int32_t *ids;
    int64_t n;
    cr_assert_eq(ab_tokenizer_encode(&t, "abc", 0, &ids, &n), AB_OK);
    /* " " "a" "b" "c": " a" (-9) < "ab" (-2): " " "ab" "c" */
    cr_assert_eq(n, 3);
    cr_expect(ids[0] == 3 && ids[1] == 7 && ids[2] == 6, "%d %d %d", ids[0], ids[1], ids[2]);
    free(ids);
    cr_assert_eq(ab_tokenizer_encode(&t, "aaa", 0, &ids, &n), AB_OK);
    cr_assert_eq(n, 3);
    cr_expect(ids[1] == 9 && ids[2] == 4, "%d %d", ids[1], ids[2]);
    free(ids);
    /* no piece and no byte token: a data error, not a crash */
    cr_expect_eq(ab_tokenizer_encode(&t, "z", 0, &ids, &n), AB_E_DATA);
    ab_tokenizer_free(&t);
}

/* Writes bytes to path. */
static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL, "%s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void put_i32(unsigned char *p, int32_t v)
{
    memcpy(p, &v, 4);
}

Test(model, tokenizer_rejects_truncated_and_lying_files)
{
    size_t len;
    unsigned char *orig = t_slurp(TOK_BIN, &len);
    cr_assert(orig != NULL);
    struct ab_tokenizer t;
    const char *bad = t_path("bad-tok.bin");
    /* truncated in the middle, and just one byte short */
    size_t cuts[] = {len / 2, len - 1, 3};
    for (int i = 0; i < 3; i++) {
        write_file(bad, orig, cuts[i]);
        cr_expect_eq(ab_tokenizer_load_llama2c(bad, 512, &t), AB_E_DATA, "cut at %zu", cuts[i]);
        cr_expect(strstr(ab_errmsg(), bad) != NULL, "%s", ab_errmsg());
    }
    /* one byte too many */
    unsigned char *big = malloc(len + 1);
    memcpy(big, orig, len);
    big[len] = 'x';
    write_file(bad, big, len + 1);
    cr_expect_eq(ab_tokenizer_load_llama2c(bad, 512, &t), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "too long") != NULL, "%s", ab_errmsg());
    free(big);
    /* a model with a larger vocabulary than the file holds */
    cr_expect_eq(ab_tokenizer_load_llama2c(TOK_BIN, 600, &t), AB_E_DATA);
    /* the first token's length lies: longer than max_token_length, and negative */
    unsigned char *lie = malloc(len);
    int32_t lies[] = {1000000, -5, 8};
    for (int i = 0; i < 3; i++) {
        memcpy(lie, orig, len);
        put_i32(lie + 8, lies[i]); /* max_token_length, score, then the first length */
        write_file(bad, lie, len);
        cr_expect_eq(ab_tokenizer_load_llama2c(bad, 512, &t), AB_E_DATA, "length %d", lies[i]);
    }
    /* max_token_length of zero */
    memcpy(lie, orig, len);
    put_i32(lie, 0);
    write_file(bad, lie, len);
    cr_expect_eq(ab_tokenizer_load_llama2c(bad, 512, &t), AB_E_DATA);
    /* a NaN score */
    memcpy(lie, orig, len);
    float nan_score = NAN;
    memcpy(lie + 4, &nan_score, 4);
    write_file(bad, lie, len);
    cr_expect_eq(ab_tokenizer_load_llama2c(bad, 512, &t), AB_E_DATA);
    free(lie);
    cr_expect_eq(ab_tokenizer_load_llama2c(t_path("no-such-tok.bin"), 512, &t), AB_E_NOFILE);
    free(orig);
}

/* ------------------------------------------------------------------ independent reference */

/* The checkpoint read with fread into doubles (its layout facts alone), for the double pass of
 * ref_llama.c. */
struct ref {
    struct t_llama w;
    double *all; /* every float after the header */
    struct t_llama_out o;
};

static void ref_load(struct ref *r, const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL);
    int32_t h[7];
    cr_assert_eq(fread(h, 4, 7, f), 7);
    struct t_llama *w = &r->w;
    memset(r, 0, sizeof *r);
    w->D = h[0], w->F = h[1], w->L = h[2], w->H = h[3], w->G = h[4], w->V = h[5];
    int T = h[6];
    w->hd = w->D / w->H;
    cr_assert(w->L <= T_LLAMA_MAX_LAYERS);
    fseek(f, 0, SEEK_END);
    long floats = (ftell(f) - 28) / 4;
    fseek(f, 28, SEEK_SET);
    float *raw = malloc((size_t)floats * 4);
    cr_assert_eq(fread(raw, 4, (size_t)floats, f), (size_t)floats);
    fclose(f);
    r->all = malloc((size_t)floats * sizeof(double));
    for (long i = 0; i < floats; i++) r->all[i] = raw[i];
    free(raw);
    long D = w->D, F = w->F, L = w->L, qd = w->H * w->hd, kvd = w->G * w->hd, at = 0;
    /* each tensor holds every layer, one after the other */
#define TENSOR(field, per_layer)                                                                       for (long l = 0; l < L; l++) w->field[l] = r->all + at + l * (per_layer);                         at += L * (per_layer)
    w->emb = w->cls = r->all + at, at += w->V * D; /* shared classifier */
    TENSOR(rms_att, D);
    TENSOR(wq, qd * D);
    TENSOR(wk, kvd * D);
    TENSOR(wv, kvd * D);
    TENSOR(wo, D * qd);
    TENSOR(rms_ffn, D);
    TENSOR(w1, F * D);
    TENSOR(w2, D * F);
    TENSOR(w3, F * D);
#undef TENSOR
    w->rms_final = r->all + at, at += D;
    at += (long)T * w->hd; /* freq_cis_real and _imag, (T, hd / 2) each */
    cr_assert_eq(at, floats, "layout facts disagree with the file length");
}

static void ref_forward(struct ref *r, const int32_t *tok, int n)
{
    t_llama_forward(&r->w, tok, n, &r->o);
}

static void ref_free(struct ref *r)
{
    free(r->all);
    t_llama_out_free(&r->o);
}

Test(model, capture_matches_independent_double_forward)
{
    enum { N = 64 };
    int32_t tok[N];
    random_tokens(tok, N, 11);
    struct ref r;
    ref_load(&r, MODEL_BIN);
    ref_forward(&r, tok, N);

    /* capture through the CLI: the workload's q, k, v and hidden */
    char ids[N * 8] = "";
    for (int i = 0; i < N; i++)
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%d", i ? "," : "", tok[i]);
    const char *out = t_path("ref.h5");
    char *o, *e;
    int st = t_run(&o, &e, "capture --model '%s' --tokens %s --hidden --threads 2 -o '%s'",
                   MODEL_BIN, ids, out);
    cr_assert_eq(st, 0, "%s", e);
    free(o), free(e);
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(out, &w), AB_OK, "%s", ab_errmsg());
    cr_assert(w.n_seq == N && w.d == r.w.hd && w.hidden && w.d_model == r.w.D);
    for (int i = 0; i < N; i++) cr_expect_eq(w.tokens[i], tok[i]);
    double worst = 0;
    for (int l = 0; l < r.w.L; l++) {
        for (int h = 0; h < r.w.H; h++) {
            double e_q = t_rel_l2(ab_workload_q(&w, l, h), r.o.q + ((long)l * r.w.H + h) * N * r.w.hd,
                                (int64_t)N * r.w.hd);
            cr_expect(e_q < 1e-4, "q layer %d head %d: rel L2 %g", l, h, e_q);
            worst = fmax(worst, e_q);
        }
        for (int g = 0; g < r.w.G; g++) {
            double e_k = t_rel_l2(ab_workload_k(&w, l, g), r.o.k + ((long)l * r.w.G + g) * N * r.w.hd,
                                (int64_t)N * r.w.hd);
            double e_v = t_rel_l2(ab_workload_v(&w, l, g), r.o.v + ((long)l * r.w.G + g) * N * r.w.hd,
                                (int64_t)N * r.w.hd);
            cr_expect(e_k < 1e-4 && e_v < 1e-4, "k/v layer %d kv %d: %g %g", l, g, e_k, e_v);
            worst = fmax(worst, fmax(e_k, e_v));
        }
    }
    for (int l = 0; l <= r.w.L; l++) {
        double e_h =
            t_rel_l2(w.hidden + (long)l * N * r.w.D, r.o.hidden + (long)l * N * r.w.D, (int64_t)N * r.w.D);
        cr_expect(e_h < 1e-4, "hidden %d: rel L2 %g", l, e_h);
    }
    /* the RoPE matters: an unrotated reference would not match layer 0's keys past row 0 */
    cr_expect(worst < 1e-4, "worst %g", worst);
    ab_workload_free(&w);

    /* the logits of the batched pass */
    struct ab_model m;
    load_model(&m);
    float *logits = malloc(sizeof(float) * N * 512);
    cr_assert_eq(ab_model_forward(&m, tok, N, NULL, logits), AB_OK, "%s", ab_errmsg());
    for (int i = 0; i < N; i++) {
        double e_l = t_rel_l2(logits + i * 512, r.o.logits + (long)i * 512, 512);
        cr_expect(e_l < 1e-4, "logits row %d: rel L2 %g", i, e_l);
    }
    free(logits);
    ab_model_free(&m);
    ref_free(&r);
}

/* ------------------------------------------------------------------ paths agree, hooks */

Test(model, batched_forward_equals_step_by_step)
{
    enum { N = 96 };
    int32_t tok[N];
    random_tokens(tok, N, 23);
    struct ab_model m;
    load_model(&m);
    float *batch = malloc(sizeof(float) * N * 512), *one = malloc(sizeof(float) * 512);
    cr_assert_eq(ab_model_forward(&m, tok, N, NULL, batch), AB_OK, "%s", ab_errmsg());
    struct ab_model_state s;
    cr_assert_eq(ab_model_state_init(&m, &s), AB_OK);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ab_model_step(&m, &s, tok[i], one), AB_OK, "%s", ab_errmsg());
        double e = rel_l2_ff(one, batch + i * 512, 512);
        cr_expect(e < 1e-4, "position %d: rel L2 %g", i, e);
    }
    cr_expect_eq(s.pos, N);
    /* a token outside the vocabulary, and a full context, are data errors */
    cr_expect_eq(ab_model_step(&m, &s, 512, one), AB_E_DATA);
    cr_expect_eq(ab_model_step(&m, &s, -1, one), AB_E_DATA);
    s.pos = m.c.seq_len;
    cr_expect_eq(ab_model_step(&m, &s, 5, one), AB_E_DATA);
    ab_model_state_free(&s);
    free(batch), free(one);
    ab_model_free(&m);
}

struct hook_log {
    int n_hidden, order_ok, n_attend;
    int64_t n_layer;
};

/* Exact causal attention in double, written here, with the model's scale and GQA mapping. */
static int exact_attend(void *user, int64_t layer, const float *q, const float *k, const float *v,
                        int64_t n, float *out, int *done)
{
    struct hook_log *lg = user;
    lg->n_attend++;
    (void)layer;
    const int H = 8, G = 4, hd = 8;
    double *p = malloc(sizeof(double) * (size_t)n);
    for (int h = 0; h < H; h++) {
        int g = h / (H / G);
        for (int64_t i = 0; i < n; i++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j <= i; j++) {
                double s = 0;
                for (int e = 0; e < hd; e++)
                    s += (double)q[(h * n + i) * hd + e] * k[(g * n + j) * hd + e];
                p[j] = s / sqrt(8.0);
                mx = fmax(mx, p[j]);
            }
            for (int64_t j = 0; j <= i; j++) sum += p[j] = exp(p[j] - mx);
            for (int e = 0; e < hd; e++) {
                double o = 0;
                for (int64_t j = 0; j <= i; j++) o += p[j] * v[(g * n + j) * hd + e];
                out[(h * n + i) * hd + e] = (float)(o / sum);
            }
        }
    }
    free(p);
    *done = 1;
    return AB_OK;
}

/* Zero attention output: proves the model uses what the hook wrote. */
static int zero_attend(void *user, int64_t layer, const float *q, const float *k, const float *v,
                       int64_t n, float *out, int *done)
{
    (void)user, (void)layer, (void)q, (void)k, (void)v;
    memset(out, 0, sizeof(float) * (size_t)(n * 64));
    *done = 1;
    return AB_OK;
}

static int failing_attend(void *user, int64_t layer, const float *q, const float *k, const float *v,
                          int64_t n, float *out, int *done)
{
    (void)user, (void)q, (void)k, (void)v, (void)n, (void)out, (void)done;
    return layer == 2 ? ab_fail(AB_E_DATA, "hook refuses layer 2") : AB_OK;
}

static void count_hidden(void *user, int64_t layer, const float *x, int64_t n)
{
    struct hook_log *lg = user;
    (void)x, (void)n;
    if (layer != lg->n_hidden) lg->order_ok = 0;
    lg->n_hidden++;
}

Test(model, attend_hook_with_exact_attention_gives_the_same_logits)
{
    enum { N = 80 };
    int32_t tok[N];
    random_tokens(tok, N, 5);
    struct ab_model m;
    load_model(&m);
    float *base = malloc(sizeof(float) * N * 512), *hooked = malloc(sizeof(float) * N * 512);
    cr_assert_eq(ab_model_forward(&m, tok, N, NULL, base), AB_OK);
    struct hook_log lg = {.order_ok = 1};
    struct ab_forward_hooks hk = {.attend = exact_attend, .hidden = count_hidden, .user = &lg};
    cr_assert_eq(ab_model_forward(&m, tok, N, &hk, hooked), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(lg.n_hidden, m.c.n_layer + 1);
    cr_expect(lg.order_ok, "hidden hook layers out of order");
    cr_expect_eq(lg.n_attend, m.c.n_layer);
    cr_expect(rel_l2_ff(hooked, base, N * 512) < 1e-4, "%g", rel_l2_ff(hooked, base, N * 512));
    /* the hook's output is what the model uses */
    struct ab_forward_hooks hz = {.attend = zero_attend};
    cr_assert_eq(ab_model_forward(&m, tok, N, &hz, hooked), AB_OK);
    cr_expect(rel_l2_ff(hooked, base, N * 512) > 0.05, "zero attention changed nothing");
    /* a hook's error stops the pass */
    struct ab_forward_hooks hf = {.attend = failing_attend};
    cr_expect_eq(ab_model_forward(&m, tok, N, &hf, hooked), AB_E_DATA);
    free(base), free(hooked);
    ab_model_free(&m);
}

Test(model, forward_refuses_bad_sequences)
{
    struct ab_model m;
    load_model(&m);
    int32_t *tok = calloc(600, sizeof *tok);
    float *logits = malloc(sizeof(float) * 600 * 512);
    tok[0] = 1, tok[3] = 512;
    cr_expect_eq(ab_model_forward(&m, tok, 4, NULL, logits), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "outside the vocabulary") != NULL, "%s", ab_errmsg());
    tok[3] = -1;
    cr_expect_eq(ab_model_forward(&m, tok, 4, NULL, logits), AB_E_DATA);
    tok[3] = 5;
    cr_expect_eq(ab_model_forward(&m, tok, 513, NULL, logits), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "longer than") != NULL, "%s", ab_errmsg());
    cr_expect_eq(ab_model_forward(&m, tok, 0, NULL, logits), AB_E_DATA);
    /* the full context is fine */
    cr_expect_eq(ab_model_forward(&m, tok, 512, NULL, NULL), AB_OK, "%s", ab_errmsg());
    int32_t *gen;
    int64_t n_gen;
    cr_expect_eq(ab_model_generate(&m, tok, 4, 10, -1, &gen, &n_gen), AB_OK);
    cr_expect_eq(n_gen, 14);
    free(gen);
    /* generation stops at the context's end */
    cr_expect_eq(ab_model_generate(&m, tok, 510, 10, -1, &gen, &n_gen), AB_OK);
    cr_expect_eq(n_gen, 512);
    free(gen);
    free(tok), free(logits);
    ab_model_free(&m);
}

/* ------------------------------------------------------------------ bad model files */

/* A variant of the real checkpoint: header fields replaced (-999 keeps the original), `cut`
 * bytes removed from the end (negative: appended). Returns the path. */
static const char *model_variant(const char *name, const int32_t hdr[7], long cut)
{
    size_t len;
    unsigned char *b = t_slurp(MODEL_BIN, &len);
    cr_assert(b != NULL);
    for (int i = 0; i < 7; i++)
        if (hdr[i] != -999) put_i32(b + 4 * i, hdr[i]);
    const char *path = t_path(name);
    if (cut >= 0) {
        write_file(path, b, len - (size_t)cut);
    } else {
        unsigned char *big = calloc(len + (size_t)-cut, 1);
        memcpy(big, b, len);
        write_file(path, big, len + (size_t)-cut);
        free(big);
    }
    free(b);
    return path;
}

Test(model, bad_model_files_are_data_errors)
{
    struct {
        const char *name;
        int32_t hdr[7];
        long cut;
        const char *says;
    } cases[] = {
        {"truncated.bin", {-999, -999, -999, -999, -999, -999, -999}, 4, "truncated"},
        {"short-header.bin", {-999, -999, -999, -999, -999, -999, -999}, 1056540 - 20, "header"},
        {"extra.bin", {-999, -999, -999, -999, -999, -999, -999}, -4, "too long"},
        {"neg-dim.bin", {-64, -999, -999, -999, -999, -999, -999}, 0, "impossible"},
        {"zero-layers.bin", {-999, -999, 0, -999, -999, -999, -999}, 0, "impossible"},
        {"zero-seq.bin", {-999, -999, -999, -999, -999, -999, 0}, 0, "impossible"},
        {"kv3.bin", {-999, -999, -999, -999, 3, -999, -999}, 0, "not a multiple"},
        {"kv16.bin", {-999, -999, -999, -999, 16, -999, -999}, 0, "not a multiple"},
        {"dim-heads.bin", {-999, -999, -999, 7, 7, -999, -999}, 0, "multiple"},
        {"huge.bin", {1 << 30, 1 << 30, 1 << 30, 1, 1, -999, -999}, 0, "truncated"},
        /* vocab < 0 asks for a separate classifier the file does not have */
        {"sep-missing.bin", {-999, -999, -999, -999, -999, -512, -999}, 0, "truncated"},
    };
    struct ab_model m;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = model_variant(cases[i].name, cases[i].hdr, cases[i].cut);
        cr_expect_eq(ab_model_load(p, &m), AB_E_DATA, "%s", cases[i].name);
        cr_expect(strstr(ab_errmsg(), p) != NULL && strstr(ab_errmsg(), cases[i].says) != NULL,
                  "%s: %s", cases[i].name, ab_errmsg());
        /* and through the CLI: exit 65, one line, no output file */
        const char *out = t_path("bad-out.h5");
        char *o, *e;
        cr_expect_eq(t_run(&o, &e, "capture --model '%s' --tokens 1,2,3 -o '%s'", p, out), 65,
                     "%s: %s", cases[i].name, e);
        cr_expect_eq(t_count_lines(e), 1, "%s", e);
        cr_expect(!t_exists(out), "%s left an output file", cases[i].name);
        free(o), free(e);
    }
    /* a NaN weight */
    size_t len;
    unsigned char *b = t_slurp(MODEL_BIN, &len);
    float nan_w = NAN;
    memcpy(b + 28 + 4 * 1000, &nan_w, 4);
    write_file(t_path("nan.bin"), b, len);
    cr_expect_eq(ab_model_load(t_path("nan.bin"), &m), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "non-finite") != NULL, "%s", ab_errmsg());
    free(b);
    cr_expect_eq(ab_model_load(t_path("no-such-model.bin"), &m), AB_E_NOFILE);
}

Test(model, separate_classifier_checkpoint_loads)
{
    /* vocab < 0: the same weights with the classifier stored separately after freq_cis, equal
       to the embedding: the logits must not change */
    size_t len;
    unsigned char *b = t_slurp(MODEL_BIN, &len);
    cr_assert(b != NULL);
    size_t emb = 512 * 64 * 4;
    unsigned char *sep = malloc(len + emb);
    memcpy(sep, b, len);
    memcpy(sep + len, b + 28, emb);
    put_i32(sep + 20, -512);
    const char *path = t_path("separate.bin");
    write_file(path, sep, len + emb);
    struct ab_model a, s;
    load_model(&a);
    cr_assert_eq(ab_model_load(path, &s), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(s.shared_cls, 0);
    cr_expect(s.wcls != s.tok_emb);
    cr_expect_eq(s.c.vocab, 512);
    int32_t tok[16];
    random_tokens(tok, 16, 3);
    float *la = malloc(sizeof(float) * 16 * 512), *ls = malloc(sizeof(float) * 16 * 512);
    cr_assert_eq(ab_model_forward(&a, tok, 16, NULL, la), AB_OK);
    cr_assert_eq(ab_model_forward(&s, tok, 16, NULL, ls), AB_OK);
    cr_expect_eq(memcmp(la, ls, sizeof(float) * 16 * 512), 0);
    /* a separate classifier that differs changes the logits (the file's wcls is used) */
    for (size_t i = 0; i < emb; i += 4) memset(sep + len + i, 0, 4);
    write_file(path, sep, len + emb);
    ab_model_free(&s);
    cr_assert_eq(ab_model_load(path, &s), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_model_forward(&s, tok, 16, NULL, ls), AB_OK);
    cr_expect_eq(ls[100], 0.0f);
    free(la), free(ls), free(sep), free(b);
    ab_model_free(&a);
    ab_model_free(&s);
}

/* ------------------------------------------------------------------ capture CLI */

Test(model, capture_cli_refuses_bad_input_without_output)
{
    const char *out = t_path("refused.h5");
    char *o, *e;
    struct {
        const char *args;
        int status;
        const char *says;
    } cases[] = {
        {"--tokens 1,403,512", 65, "outside the vocabulary"},
        {"--tokens 1,-3", 65, "outside the vocabulary"},
        {"--tokens 1,99999999999", 65, "outside"},
        {"--tokens 1,abc", 64, "comma-separated"},
        {"--copy-task 256", 65, "longer than the context"},
        {"--prompt '' --generate 512", 65, "longer than the context"},
        {"--copy-task 0", 64, "--copy-task"},
        {"--prompt hi --tokens 1", 64, "exactly one input"},
        {"--prompt '' --no-bos", 65, "empty"},
        {"--copy-task 3 --generate 2", 64, "--generate"},
        {"--text /nonexistent/story.txt", 66, "cannot open"},
        {"--tokens 1,403,407 --offset 3", 65, "past the end"},
        {"--tokens 1,403,407 --offset 1 --length 5", 65, "runs past the end"},
        {"--copy-task 3 --offset 1", 64, "--offset"},
        {"--tokens 1,403,407 --length 0", 64, "--length"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = t_run(&o, &e, "capture --model '%s' %s -o '%s'", MODEL_BIN, cases[i].args, out);
        cr_expect_eq(st, cases[i].status, "%s: %d %s", cases[i].args, st, e);
        cr_expect(strstr(e, cases[i].says) != NULL, "%s: %s", cases[i].args, e);
        cr_expect_eq(t_count_lines(e), 1, "%s", e);
        cr_expect(!t_exists(out), "%s left an output file", cases[i].args);
        free(o), free(e);
    }
    cr_expect_eq(
        t_run(&o, &e, "capture --model '%s' --tokens 1 -o '%s'", t_path("no-such-model.bin"), out),
        66);
    free(o), free(e);
}

Test(model, capture_copy_task_is_seeded_and_repeats)
{
    const char *a = t_path("copy-a.h5"), *b = t_path("copy-b.h5"), *c = t_path("copy-c.h5");
    char *o, *e;
    cr_assert_eq(
        t_run(&o, &e, "capture --model '%s' --copy-task 40 --seed 9 -o '%s'", MODEL_BIN, a), 0,
        "%s", e);
    free(o), free(e);
    cr_assert_eq(
        t_run(&o, &e, "capture --model '%s' --copy-task 40 --seed 9 -o '%s'", MODEL_BIN, b), 0,
        "%s", e);
    free(o), free(e);
    cr_assert_eq(
        t_run(&o, &e, "capture --model '%s' --copy-task 40 --seed 10 -o '%s'", MODEL_BIN, c), 0,
        "%s", e);
    free(o), free(e);
    struct ab_workload wa, wb, wc;
    cr_assert_eq(ab_h5_workload_read(a, &wa), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_h5_workload_read(b, &wb), AB_OK);
    cr_assert_eq(ab_h5_workload_read(c, &wc), AB_OK);
    cr_assert_eq(wa.n_seq, 81);
    cr_expect_eq(wa.tokens[0], 1);
    int differ = 0, distinct_first = 0;
    for (int i = 1; i <= 40; i++) {
        cr_expect(wa.tokens[i] >= 3 && wa.tokens[i] < 512, "%d", wa.tokens[i]);
        cr_expect_eq(wa.tokens[i], wa.tokens[i + 40], "copy at %d", i);
        differ += wa.tokens[i] != wc.tokens[i];
        distinct_first += wa.tokens[i] != wa.tokens[1];
    }
    cr_expect(differ > 30, "seeds 9 and 10 agree on %d of 40 ids", 40 - differ);
    cr_expect(distinct_first > 30, "the ids are not random");
    cr_expect_eq(memcmp(wa.tokens, wb.tokens, 81 * sizeof(int32_t)), 0);
    cr_expect_eq(memcmp(wa.q, wb.q, (size_t)(5 * 8 * 81 * 8) * sizeof(float)), 0);
    cr_expect(strstr(wa.description, "copy task R=40") != NULL, "%s", wa.description);
    cr_expect(wa.text != NULL); /* the tokenizer next to the model decodes the ids */
    cr_expect_eq(wa.seed, 9);
    ab_workload_free(&wa), ab_workload_free(&wb), ab_workload_free(&wc);
}

Test(model, capture_finds_or_asks_for_the_tokenizer)
{
    /* a copy of the model in a folder without a tokenizer: text input asks for --tokenizer,
       raw ids still work (without /text) */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", t_path("lonely"));
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/m.bin'", dir, MODEL_BIN, dir);
    cr_assert_eq(system(cmd), 0);
    const char *out = t_path("lonely.h5");
    char *o, *e;
    int st = t_run(&o, &e, "capture --model '%s/m.bin' --prompt hello -o '%s'", dir, out);
    cr_expect_eq(st, 66, "%s", e);
    cr_expect(strstr(e, "--tokenizer") != NULL, "%s", e);
    cr_expect(!t_exists(out));
    free(o), free(e);
    cr_assert_eq(t_run(&o, &e, "capture --model '%s/m.bin' --tokens 1,403,407 -o '%s'", dir, out),
                 0, "%s", e);
    free(o), free(e);
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(out, &w), AB_OK, "%s", ab_errmsg());
    cr_expect(w.text == NULL);
    ab_workload_free(&w);
    /* --tokenizer given: the prompt encodes and /text decodes */
    cr_assert_eq(t_run(&o, &e,
                       "capture --model '%s/m.bin' --tokenizer '%s' --prompt 'Once upon' -o '%s'",
                       dir, TOK_BIN, out),
                 0, "%s", e);
    free(o), free(e);
    cr_assert_eq(ab_h5_workload_read(out, &w), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(w.n_seq, 3);
    cr_expect(w.tokens[1] == 403 && w.tokens[2] == 407);
    cr_expect_str_eq(w.text, "Once upon");
    ab_workload_free(&w);
    /* a text file gives the same tokens as the same prompt */
    const char *txt = t_path("story.txt");
    write_file(txt, readme_text, strlen(readme_text));
    cr_assert_eq(t_run(&o, &e, "capture --model '%s' --text '%s' -o '%s'", MODEL_BIN, txt, out), 0,
                 "%s", e);
    free(o), free(e);
    cr_assert_eq(ab_h5_workload_read(out, &w), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(w.n_seq, 62);
    cr_expect_str_eq(w.text, readme_text);
    ab_workload_free(&w);
    /* a wrong tokenizer file is refused */
    cr_expect_eq(t_run(&o, &e, "capture --model '%s' --tokenizer '%s' --prompt hi -o '%s'",
                       MODEL_BIN, MODEL_BIN, out),
                 65, "%s", e);
    free(o), free(e);
}

Test(model, capture_takes_a_window_of_the_sequence)
{
    const char *out = t_path("window.h5");
    char *o = NULL, *e = NULL;
    cr_assert_eq(t_run(&o, &e, "capture --model '%s' --tokens 1,403,407,300,12 --offset 1 "
                       "--length 3 -o '%s'", MODEL_BIN, out), 0, "%s", e);
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(out, &w), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(w.n_seq, 3);
    cr_expect(w.tokens[0] == 403 && w.tokens[1] == 407 && w.tokens[2] == 300);
    cr_expect(strstr(w.description, "tokens [1, 4) of 5"), "%s", w.description);
    ab_workload_free(&w);
    free(o), free(e);
}
