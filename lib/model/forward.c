/* forward.c - the Llama forward pass of model.h: one batched pass over a whole sequence (the
 * capture path: every linear map is one OpenBLAS GEMM over all rows, attention goes through
 * lib/attn's fast path or the caller's hook), and incremental decoding with a KV cache (one
 * token per step: GEMVs and a direct softmax over the cache) for greedy generation.
 *
 * Both paths share the layer's math (model.h): RMSNorm with the sum of squares accumulated in
 * double, RoPE through lib/attn/rope.c (interleaved pairs, angle pos * theta^(-2i/head_dim)),
 * causal softmax attention with scale 1/sqrt(head_dim) and grouped-query heads, Wo, and the
 * SwiGLU MLP W2 (silu(W1 x) * W3 x). They agree to float rounding, which the tests check. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "model/model.h"

/* Whether this pass should make BLAS single-threaded (ab_blas_serial_begin) for its duration:
 * not inside an enclosing parallel region (whose owner did it), nor when it already is. */
static int take_blas_serial(void)
{
    return !omp_in_parallel() && openblas_get_num_threads() > 1;
}

static const char *model_name(const struct ab_model *m)
{
    return m->path ? m->path : "model";
}

/* out = x / sqrt(mean(x^2) + eps) * g, row by row over n rows of width dim. */
static void rmsnorm_rows(float *out, const float *x, const float *g, int64_t n, int64_t dim,
                         double eps)
{
#pragma omp parallel for schedule(static) if (n * dim > 65536)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        float *oi = out + i * dim;
        double ss = 0;
        for (int64_t j = 0; j < dim; j++) ss += (double)xi[j] * xi[j];
        double r = 1.0 / sqrt(ss / (double)dim + eps);
        for (int64_t j = 0; j < dim; j++) oi[j] = (float)(xi[j] * r * g[j]);
    }
}

/* Threads for a product of `work` multiply-adds: all of them when it is worth a parallel
 * region, one otherwise (and one inside an enclosing parallel region). */
static int threads_for(double work)
{
    if (omp_in_parallel() || work < 262144.0) return 1;
    return ab_threads_get();
}

/* Y (n, n_out) = X (n, n_in) · Wᵀ, W (n_out, n_in); beta 1 adds into Y (residual updates).
 * BLAS runs single-threaded here (the pass holds ab_blas_serial): the OpenMP threads split the
 * output features, so OpenBLAS's and OpenMP's thread pools never compete for the cores. */
static void matmul_t(float *y, const float *x, const float *w, int64_t n, int64_t n_out,
                     int64_t n_in, float beta)
{
    int nt = threads_for((double)n * (double)n_out * (double)n_in);
    int64_t chunk = ((n_out + nt - 1) / nt + 15) / 16 * 16; /* output features per thread */
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t j0 = 0; j0 < n_out; j0 += chunk) {
        int64_t nj = AB_MIN(chunk, n_out - j0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nj, (int)n_in, 1.0f, x,
                    (int)n_in, w + j0 * n_in, (int)n_in, beta, y + j0, (int)n_out);
    }
}

/* silu(a) * b in place into a: the SwiGLU gate. */
static void swiglu(float *a, const float *b, int64_t count)
{
#pragma omp parallel for schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; i++) {
        float g = a[i];
        a[i] = g / (1.0f + expf(-g)) * b[i];
    }
}

/* (n, n_h * hd) token-major to (n_h, n, hd) head-major, and back. */
static void to_heads(float *dst, const float *src, int64_t n, int64_t n_h, int64_t hd)
{
    for (int64_t h = 0; h < n_h; h++)
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + (h * n + i) * hd, src + i * n_h * hd + h * hd, (size_t)hd * sizeof(float));
}

static void from_heads(float *dst, const float *src, int64_t n, int64_t n_h, int64_t hd)
{
    for (int64_t h = 0; h < n_h; h++)
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + i * n_h * hd + h * hd, src + (h * n + i) * hd, (size_t)hd * sizeof(float));
}

/* Checks that tokens[0 .. n) is a sequence the model can run. */
static int check_tokens(const struct ab_model *m, const int32_t *tokens, int64_t n)
{
    if (n < 1) return ab_fail(AB_E_DATA, "'%s': empty token sequence", model_name(m));
    if (n > m->c.seq_len)
        return ab_fail(AB_E_DATA, "'%s': %lld tokens is longer than the model's context of %lld",
                       model_name(m), (long long)n, (long long)m->c.seq_len);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->c.vocab)
            return ab_fail(AB_E_DATA,
                           "'%s': token %d at position %lld is outside the vocabulary [0, %lld)",
                           model_name(m), tokens[i], (long long)i, (long long)m->c.vocab);
    return AB_OK;
}

int ab_model_forward(const struct ab_model *m, const int32_t *tokens, int64_t n,
                     const struct ab_forward_hooks *hooks, float *logits)
{
    int rc = check_tokens(m, tokens, n);
    if (rc) return rc;
    const struct ab_model_config *c = &m->c;
    const int64_t D = c->dim, F = c->hidden_dim, hd = c->head_dim;
    const int64_t n_h = c->n_head, n_kv = c->n_kv_head;
    const int64_t qd = n_h * hd, kvd = n_kv * hd;
    double floats = (double)n * (2.0 * D + 3.0 * qd + 4.0 * kvd + 2.0 * F);
    if ((rc = ab_check_fits("forward pass buffers", 4.0 * floats))) return rc;
    int blas_serial = 0;

    float *x = ab_alloc((size_t)(n * D) * sizeof(float));    /* (n, D) residual stream */
    float *xb = ab_alloc((size_t)(n * D) * sizeof(float));   /* (n, D) normed input */
    float *q = ab_alloc((size_t)(n * qd) * sizeof(float));   /* (n, qd); later attn out (n, qd) */
    float *k = ab_alloc((size_t)(n * kvd) * sizeof(float));  /* (n, kvd) */
    float *v = ab_alloc((size_t)(n * kvd) * sizeof(float));  /* (n, kvd) */
    float *qh = ab_alloc((size_t)(n * qd) * sizeof(float));  /* (n_h, n, hd) */
    float *kh = ab_alloc((size_t)(n * kvd) * sizeof(float)); /* (n_kv, n, hd) */
    float *vh = ab_alloc((size_t)(n * kvd) * sizeof(float)); /* (n_kv, n, hd) */
    float *att = ab_alloc((size_t)(n * qd) * sizeof(float)); /* (n_h, n, hd) */
    float *hb = ab_alloc((size_t)(n * F) * sizeof(float));   /* (n, F) */
    float *hb2 = ab_alloc((size_t)(n * F) * sizeof(float));  /* (n, F) */
    int32_t *pos = ab_alloc((size_t)n * sizeof(int32_t));    /* (n) 0 .. n-1 */
    if (!x || !xb || !q || !k || !v || !qh || !kh || !vh || !att || !hb || !hb2 || !pos) {
        rc = ab_fail(AB_E_NOMEM, "forward pass: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) pos[i] = (int32_t)i;
    blas_serial = take_blas_serial();
    if (blas_serial) ab_blas_serial_begin();
    for (int64_t i = 0; i < n; i++)
        memcpy(x + i * D, m->tok_emb + (int64_t)tokens[i] * D, (size_t)D * sizeof(float));

    const double scale = 1.0 / sqrt((double)hd);
    for (int64_t l = 0; l < c->n_layer; l++) {
        if (hooks && hooks->hidden) hooks->hidden(hooks->user, l, x, n);

        /* attention block: x += Wo · attn(RoPE(Wq xb), RoPE(Wk xb), Wv xb), xb = rms(x) */
        rmsnorm_rows(xb, x, m->rms_att + l * D, n, D, c->norm_eps);
        matmul_t(q, xb, m->wq + l * qd * D, n, qd, D, 0.0f);
        matmul_t(k, xb, m->wk + l * kvd * D, n, kvd, D, 0.0f);
        matmul_t(v, xb, m->wv + l * kvd * D, n, kvd, D, 0.0f);
        to_heads(qh, q, n, n_h, hd);
        to_heads(kh, k, n, n_kv, hd);
        to_heads(vh, v, n, n_kv, hd);
        for (int64_t h = 0; h < n_h; h++) ab_rope_apply(qh + h * n * hd, n, hd, pos, c->rope_theta);
        for (int64_t h = 0; h < n_kv; h++)
            ab_rope_apply(kh + h * n * hd, n, hd, pos, c->rope_theta);

        int done = 0;
        if (hooks && hooks->attend &&
            (rc = hooks->attend(hooks->user, l, qh, kh, vh, n, att, &done)))
            goto done;
        /* exact causal attention, one query head per task (lib/attn's fast path runs
           serially inside a parallel region) */
        int fail = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_for(2.0 * n * n * qd)) if (!done)
        for (int64_t h = 0; h < n_h; h++) {
            int64_t kv = h / (n_h / n_kv);
            struct ab_head head = {
                .n_q = n,
                .n_k = n,
                .d = hd,
                .d_v = hd,
                .q = qh + h * n * hd,
                .k = kh + kv * n * hd,
                .v = vh + kv * n * hd,
                .q_pos = pos,
                .k_pos = pos,
                .mask = AB_MASK_CAUSAL,
                .scale = scale,
                .rope_theta = 0,
            };
            if (!done && ab_attn_fast(&head, att + h * n * hd, NULL)) {
#pragma omp atomic write
                fail = 1;
            }
        }
        if (fail) {
            rc = ab_fail(AB_E_NOMEM, "forward pass: cannot allocate attention workspace");
            goto done;
        }
        from_heads(q, att, n, n_h, hd);
        matmul_t(x, q, m->wo + l * D * qd, n, D, qd, 1.0f);

        /* MLP block: x += W2 · (silu(W1 xb) * W3 xb), xb = rms(x) */
        rmsnorm_rows(xb, x, m->rms_ffn + l * D, n, D, c->norm_eps);
        matmul_t(hb, xb, m->w1 + l * F * D, n, F, D, 0.0f);
        matmul_t(hb2, xb, m->w3 + l * F * D, n, F, D, 0.0f);
        swiglu(hb, hb2, n * F);
        matmul_t(x, hb, m->w2 + l * D * F, n, D, F, 1.0f);
    }
    if (hooks && hooks->hidden) hooks->hidden(hooks->user, c->n_layer, x, n);
    if (logits) {
        rmsnorm_rows(xb, x, m->rms_final, n, D, c->norm_eps);
        matmul_t(logits, xb, m->wcls, n, c->vocab, D, 0.0f);
    }

done:
    if (blas_serial) ab_blas_serial_end();
    ab_free(x), ab_free(xb), ab_free(q), ab_free(k), ab_free(v);
    ab_free(qh), ab_free(kh), ab_free(vh), ab_free(att), ab_free(hb), ab_free(hb2), ab_free(pos);
    return rc;
}

/* ------------------------------------------------------------------ one token at a time */

/* Scratch of one step: offsets into s->scratch, in floats, each 16-float (64-byte) aligned. */
struct step_bufs {
    float *x, *xb, *q, *att, *hb, *hb2, *score;
};

static int64_t round16(int64_t n)
{
    return (n + 15) / 16 * 16;
}

static int64_t step_scratch(const struct ab_model *m, float *base, struct step_bufs *b)
{
    const struct ab_model_config *c = &m->c;
    int64_t qd = c->n_head * c->head_dim, at = 0;
    float *dummy = NULL;
#define TAKE(field, count) (b->field = base ? base + at : dummy, at += round16(count))
    TAKE(x, c->dim);
    TAKE(xb, c->dim);
    TAKE(q, qd);
    TAKE(att, qd);
    TAKE(hb, c->hidden_dim);
    TAKE(hb2, c->hidden_dim);
    TAKE(score, c->n_head * c->seq_len); /* (n_head, seq_len) */
#undef TAKE
    return at;
}

int ab_model_state_init(const struct ab_model *m, struct ab_model_state *s)
{
    memset(s, 0, sizeof *s);
    const struct ab_model_config *c = &m->c;
    struct step_bufs b;
    double cache = (double)c->n_layer * (double)c->seq_len * (double)(c->n_kv_head * c->head_dim);
    int64_t scratch = step_scratch(m, NULL, &b);
    int rc = ab_check_fits("KV cache", 4.0 * (2 * cache + (double)scratch));
    if (rc) return rc;
    s->k_cache = ab_alloc((size_t)cache * sizeof(float));
    s->v_cache = ab_alloc((size_t)cache * sizeof(float));
    s->scratch = ab_alloc((size_t)scratch * sizeof(float));
    if (!s->k_cache || !s->v_cache || !s->scratch) {
        ab_model_state_free(s);
        return ab_fail(AB_E_NOMEM, "KV cache: out of memory");
    }
    return AB_OK;
}

void ab_model_state_free(struct ab_model_state *s)
{
    if (!s) return;
    ab_free(s->k_cache);
    ab_free(s->v_cache);
    ab_free(s->scratch);
    memset(s, 0, sizeof *s);
}

/* y (n_out) = W (n_out, n_in) · x (n_in), the threads splitting the rows of W as in matmul_t */
static void matvec(float *y, const float *w, const float *x, int64_t n_out, int64_t n_in)
{
    int nt = threads_for((double)n_out * (double)n_in);
    int64_t chunk = ((n_out + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t j0 = 0; j0 < n_out; j0 += chunk) {
        int64_t nj = AB_MIN(chunk, n_out - j0);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nj, (int)n_in, 1.0f, w + j0 * n_in, (int)n_in,
                    x, 1, 0.0f, y + j0, 1);
    }
}

int ab_model_step(const struct ab_model *m, struct ab_model_state *s, int32_t token, float *logits)
{
    const struct ab_model_config *c = &m->c;
    if (s->pos >= c->seq_len)
        return ab_fail(AB_E_DATA, "'%s': the context of %lld tokens is full", model_name(m),
                       (long long)c->seq_len);
    if (token < 0 || token >= c->vocab)
        return ab_fail(AB_E_DATA,
                       "'%s': token %d at position %lld is outside the vocabulary "
                       "[0, %lld)",
                       model_name(m), token, (long long)s->pos, (long long)c->vocab);
    const int64_t D = c->dim, F = c->hidden_dim, hd = c->head_dim, T = c->seq_len;
    const int64_t n_h = c->n_head, n_kv = c->n_kv_head, qd = n_h * hd, kvd = n_kv * hd;
    const int64_t group = n_h / n_kv;
    const int32_t pos = (int32_t)s->pos;
    const double scale = 1.0 / sqrt((double)hd);
    struct step_bufs b;
    step_scratch(m, s->scratch, &b);
    const int blas_serial = take_blas_serial();
    if (blas_serial) ab_blas_serial_begin();

    memcpy(b.x, m->tok_emb + (int64_t)token * D, (size_t)D * sizeof(float));
    for (int64_t l = 0; l < c->n_layer; l++) {
        float *kc = s->k_cache + l * T * kvd; /* (seq_len, kvd) of this layer */
        float *vc = s->v_cache + l * T * kvd;
        rmsnorm_rows(b.xb, b.x, m->rms_att + l * D, 1, D, c->norm_eps);
        matvec(b.q, m->wq + l * qd * D, b.xb, qd, D);
        matvec(kc + pos * kvd, m->wk + l * kvd * D, b.xb, kvd, D);
        matvec(vc + pos * kvd, m->wv + l * kvd * D, b.xb, kvd, D);
        for (int64_t h = 0; h < n_h; h++) ab_rope_apply(b.q + h * hd, 1, hd, &pos, c->rope_theta);
        for (int64_t h = 0; h < n_kv; h++)
            ab_rope_apply(kc + pos * kvd + h * hd, 1, hd, &pos, c->rope_theta);

            /* causal softmax over the cache rows 0 .. pos, one query head at a time */
#pragma omp parallel for schedule(static) if ((int64_t)pos * qd > 65536)
        for (int64_t h = 0; h < n_h; h++) {
            const float *qh = b.q + h * hd;
            const int64_t kv = h / group;
            float *p = b.score + h * T; /* (pos + 1) */
            float mx = -INFINITY;
            for (int64_t t = 0; t <= pos; t++) {
                const float *kt = kc + t * kvd + kv * hd;
                float dot = 0;
                for (int64_t e = 0; e < hd; e++) dot += qh[e] * kt[e];
                p[t] = dot * (float)scale;
                mx = p[t] > mx ? p[t] : mx;
            }
            double sum = 0;
            for (int64_t t = 0; t <= pos; t++) {
                p[t] = expf(p[t] - mx);
                sum += p[t];
            }
            /* out = sum_t p_t v_t / sum, accumulated row by row of the cache */
            float *out = b.att + h * hd;
            for (int64_t e = 0; e < hd; e++) out[e] = 0;
            for (int64_t t = 0; t <= pos; t++) {
                const float *vt = vc + t * kvd + kv * hd;
                for (int64_t e = 0; e < hd; e++) out[e] += p[t] * vt[e];
            }
            for (int64_t e = 0; e < hd; e++) out[e] = (float)(out[e] / sum);
        }
        /* x += Wo att (b.xb holds the product) */
        matvec(b.xb, m->wo + l * D * qd, b.att, D, qd);
        for (int64_t j = 0; j < D; j++) b.x[j] += b.xb[j];

        rmsnorm_rows(b.xb, b.x, m->rms_ffn + l * D, 1, D, c->norm_eps);
        matvec(b.hb, m->w1 + l * F * D, b.xb, F, D);
        matvec(b.hb2, m->w3 + l * F * D, b.xb, F, D);
        swiglu(b.hb, b.hb2, F);
        matvec(b.xb, m->w2 + l * D * F, b.hb, D, F);
        for (int64_t j = 0; j < D; j++) b.x[j] += b.xb[j];
    }
    rmsnorm_rows(b.xb, b.x, m->rms_final, 1, D, c->norm_eps);
    if (logits) matvec(logits, m->wcls, b.xb, c->vocab, D);
    if (blas_serial) ab_blas_serial_end();
    s->pos++;
    return AB_OK;
}

int ab_model_generate(const struct ab_model *m, const int32_t *prompt, int64_t n_prompt,
                      int64_t n_gen, int32_t stop, int32_t **out, int64_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (n_gen < 0)
        return ab_fail(AB_E_USAGE, "generate: negative token count %lld", (long long)n_gen);
    int rc = check_tokens(m, prompt, n_prompt);
    if (rc) return rc;
    const int64_t cap = AB_MIN(n_prompt + n_gen, m->c.seq_len);
    int32_t *seq = malloc((size_t)cap * sizeof *seq);
    float *logits = ab_alloc((size_t)m->c.vocab * sizeof(float)); /* (vocab) */
    struct ab_model_state s;
    memset(&s, 0, sizeof s);
    int blas_serial = 0;
    if (!seq || !logits) {
        rc = ab_fail(AB_E_NOMEM, "generate: out of memory");
        goto fail;
    }
    if ((rc = ab_model_state_init(m, &s))) goto fail;
    blas_serial = take_blas_serial(); /* once for every step */
    if (blas_serial) ab_blas_serial_begin();
    memcpy(seq, prompt, (size_t)n_prompt * sizeof *seq);
    for (int64_t i = 0; i < n_prompt; i++)
        if ((rc = ab_model_step(m, &s, prompt[i], logits))) goto fail;
    int64_t n = n_prompt;
    while (n < cap) {
        /* greedy: the most likely token, the lowest id on ties */
        int32_t next = 0;
        for (int64_t t = 1; t < m->c.vocab; t++)
            if (logits[t] > logits[next]) next = (int32_t)t;
        seq[n++] = next;
        if (next == stop || n == cap) break;
        if ((rc = ab_model_step(m, &s, next, logits))) goto fail;
    }
    if (blas_serial) ab_blas_serial_end();
    ab_model_state_free(&s);
    ab_free(logits);
    *out = seq;
    *n_out = n;
    return AB_OK;
fail:
    if (blas_serial) ab_blas_serial_end();
    ab_model_state_free(&s);
    ab_free(logits);
    free(seq);
    return rc;
}
