/* model.h - a Llama-family decoder on the CPU: weights, loaders, and the forward pass with
 * capture hooks (architecture.md "lib/model", workloads.md "Real inputs").
 *
 * The architecture (llama2.c's, Meta's Llama): token embedding; per layer
 *   x += Wo · attn(RoPE(Wq · rms(x)), RoPE(Wk · rms(x)), Wv · rms(x))
 *   x += W2 · (silu(W1 · rms(x)) * (W3 · rms(x)))
 * then rms(x) and the classifier. rms(x) = x / sqrt(mean(x²) + eps) * g (per-layer gain g).
 * RoPE rotates interleaved pairs (2i, 2i+1) of each head by pos * theta^(-2i / head_dim)
 * (llama2.c's and GGUF-llama's convention, lib/attn/rope.c). Attention is causal softmax with
 * scale 1/sqrt(head_dim); query head h reads kv head h / (n_head / n_kv_head).
 *
 * Weights are held as float32 whatever the file stores (F16 and Q8_0 tensors are dequantised
 * at load, exactly: every quantised value times its block scale). Every linear map is stored
 * row-major as (out, in), so y = W x is one GEMV and Y = X Wᵀ one GEMM over the rows of X
 * (llama2.c's layout, and GGUF's: its ne[0] is the `in` dimension).
 *
 * Ownership: a model owns every buffer it points to; ab_model_free releases them. */
#ifndef AB_MODEL_MODEL_H
#define AB_MODEL_MODEL_H

#include <stdint.h>

struct ab_model_config {
    int64_t dim;        /* model width (d_model) */
    int64_t hidden_dim; /* MLP width */
    int64_t n_layer;
    int64_t n_head;     /* query heads */
    int64_t n_kv_head;  /* key / value heads (n_head is a multiple) */
    int64_t head_dim;   /* dim / n_head */
    int64_t vocab;      /* vocabulary size */
    int64_t seq_len;    /* context the model was trained for (longer inputs are refused) */
    double rope_theta;  /* 10000 for llama2.c checkpoints */
    double norm_eps;    /* RMSNorm epsilon: 1e-5 for llama2.c checkpoints */
};

struct ab_model {
    struct ab_model_config c;
    char *path;        /* the file it was loaded from (strdup) */
    const char *format; /* "llama2.c" or "gguf" (a static string) */
    char *description; /* one line: file name, format, dims, tensor types (malloc'd) */
    float *tok_emb;    /* (vocab, dim) */
    float *rms_att;    /* (n_layer, dim) */
    float *wq;         /* (n_layer, n_head * head_dim, dim) */
    float *wk;         /* (n_layer, n_kv_head * head_dim, dim) */
    float *wv;         /* (n_layer, n_kv_head * head_dim, dim) */
    float *wo;         /* (n_layer, dim, n_head * head_dim) */
    float *rms_ffn;    /* (n_layer, dim) */
    float *w1;         /* (n_layer, hidden_dim, dim) gate */
    float *w2;         /* (n_layer, dim, hidden_dim) down */
    float *w3;         /* (n_layer, hidden_dim, dim) up */
    float *rms_final;  /* (dim) */
    float *wcls;       /* (vocab, dim); points at tok_emb when shared_cls */
    int shared_cls;    /* 1: the classifier is the token embedding (not freed twice) */
};

/* Checks a configuration: every size > 0, dim == n_head * head_dim, n_head a multiple of
 * n_kv_head, head_dim even, rope_theta > 0, norm_eps > 0, and that the weights fit in memory.
 * AB_E_DATA (or AB_E_TOOBIG) with a message naming `path`. */
int ab_model_config_check(const struct ab_model_config *c, const char *path);

/* Allocates every weight buffer of config c (zeroed; wcls separate unless shared). */
int ab_model_alloc(struct ab_model *m, const struct ab_model_config *c, int shared_cls);
void ab_model_free(struct ab_model *m);

/* Loads a model file, telling the format from its first bytes ("GGUF" magic, else a llama2.c
 * checkpoint). Validates the header and every size against the file length before reading
 * weights. AB_E_NOFILE, AB_E_IO, AB_E_DATA (with the file and the problem), AB_E_TOOBIG,
 * AB_E_NOMEM. */
int ab_model_load(const char *path, struct ab_model *m);

/* *is_gguf = 1 when the file at path starts with the GGUF magic. AB_E_NOFILE / AB_E_IO when it
 * cannot be read. */
int ab_model_file_is_gguf(const char *path, int *is_gguf);

/* llama2.c checkpoint, legacy version-0 layout: 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; vocab_size < 0 means a separate classifier of |vocab_size|
 * rows at the end), then float32 tensors in the order token_embedding, rms_att, wq, wk, wv, wo,
 * rms_ffn, w1, w2, w3, rms_final, freq_cis_real and freq_cis_imag (seq_len * head_dim / 2
 * each, skipped), [wcls]. theta 10000, eps 1e-5. The file must be exactly that long. */
int ab_model_load_llama2c(const char *path, struct ab_model *m);

/* Hooks into the forward pass. Every pointer may be NULL. */
struct ab_forward_hooks {
    /* Called in each layer once Q, K (both after RoPE) and V of all n rows are known:
     * q (n_head, n, head_dim), k and v (n_kv_head, n, head_dim), head-major. The hook may
     * compute the attention itself, writing out (n_head, n, head_dim) and setting *done = 1
     * (eval-model puts a method there); with *done left 0 the model computes exact causal
     * softmax attention. Returns AB_OK or an AB_E_* code, which stops the pass. */
    int (*attend)(void *user, int64_t layer, const float *q, const float *k, const float *v,
                  int64_t n, float *out, int *done);
    /* Called with the residual stream x (n, dim) entering layer `layer` (0 .. n_layer - 1) and,
     * with layer == n_layer, leaving the last layer (before the final norm). */
    void (*hidden)(void *user, int64_t layer, const float *x, int64_t n);
    void *user;
};

/* Runs the whole sequence tokens[0 .. n) at positions 0 .. n-1 in one batched pass (GEMMs
 * through OpenBLAS over all rows; attention through lib/attn's fast path unless a hook takes
 * it). logits (n, vocab) may be NULL (then the classifier is skipped). Tokens must lie in
 * [0, vocab) and 1 <= n <= seq_len (AB_E_DATA otherwise). Threads: OpenBLAS runs single-threaded
 * for the pass while the OpenMP team (ab_threads_set) splits each product's output features and
 * the attention heads, so the two pools never compete; inside an enclosing parallel region the
 * pass runs on the calling thread. Working memory O(n (dim + hidden_dim)) beyond the weights. */
int ab_model_forward(const struct ab_model *m, const int32_t *tokens, int64_t n,
                     const struct ab_forward_hooks *hooks, float *logits);

/* Incremental decoding with a KV cache, one token at a time (generation). */
struct ab_model_state {
    int64_t pos;        /* tokens consumed so far */
    float *k_cache;     /* (n_layer, seq_len, n_kv_head * head_dim) */
    float *v_cache;     /* same */
    float *scratch;     /* work buffers */
};
int ab_model_state_init(const struct ab_model *m, struct ab_model_state *s);
void ab_model_state_free(struct ab_model_state *s);
/* Consumes token at position s->pos, writes logits (vocab), advances s->pos. AB_E_DATA when
 * the context is full or the token is out of range. */
int ab_model_step(const struct ab_model *m, struct ab_model_state *s, int32_t token,
                  float *logits);

/* Greedy continuation: feeds prompt[0 .. n_prompt) then appends up to n_gen argmax tokens
 * (ties to the lowest id), stopping early after `stop` (>= 0; -1: never) or at seq_len.
 * *out (malloc'd) gets prompt + generated, *n_out its length. The prompt must hold 1 .. seq_len
 * valid tokens (AB_E_DATA); n_gen < 0 is AB_E_USAGE. */
int ab_model_generate(const struct ab_model *m, const int32_t *prompt, int64_t n_prompt,
                      int64_t n_gen, int32_t stop, int32_t **out, int64_t *n_out);

#endif
