/* ref_llama.h - an independent double-precision Llama forward pass for the model tests
 * (test_model.c on stories260K's llama2.c checkpoint, test_debdoc.c on debdoc's GGUF): plain
 * loops over every row, written from the architecture's facts alone (RMSNorm with eps 1e-5,
 * RoPE theta 10000 on interleaved pairs (2p, 2p+1), grouped-query attention with query head h
 * on kv head h / (H / G), scale 1/sqrt(hd), SwiGLU), nothing of lib/model. Each test reads the
 * weights its own way into struct t_llama. */
#ifndef AB_TESTS_REF_LLAMA_H
#define AB_TESTS_REF_LLAMA_H

#include <stdint.h>

enum { T_LLAMA_MAX_LAYERS = 64 };

/* Weights as doubles, row-major (out, in) like llama2.c and GGUF. */
struct t_llama {
    int D, F, L, H, G, V, hd; /* dim, hidden, layers, heads, kv heads, vocab, head dim */
    const double *emb;        /* (V, D) */
    const double *rms_final;  /* (D) */
    const double *cls;        /* (V, D); the embedding when shared */
    const double *rms_att[T_LLAMA_MAX_LAYERS], *wq[T_LLAMA_MAX_LAYERS], *wk[T_LLAMA_MAX_LAYERS],
        *wv[T_LLAMA_MAX_LAYERS], *wo[T_LLAMA_MAX_LAYERS], *rms_ffn[T_LLAMA_MAX_LAYERS],
        *w1[T_LLAMA_MAX_LAYERS], *w2[T_LLAMA_MAX_LAYERS], *w3[T_LLAMA_MAX_LAYERS];
};

/* What a pass over n rows gives (calloc'd; free with t_llama_out_free). */
struct t_llama_out {
    double *q;      /* (L, H, n, hd) after RoPE */
    double *k;      /* (L, G, n, hd) after RoPE */
    double *k_raw;  /* (L, G, n, hd) before RoPE */
    double *v;      /* (L, G, n, hd) */
    double *hidden; /* (L + 1, n, D): the residual stream entering each layer, then the last */
    double *logits; /* (n, V) */
};

void t_llama_forward(const struct t_llama *w, const int32_t *tok, int n, struct t_llama_out *o);
void t_llama_out_free(struct t_llama_out *o);

/* ||a - b|| / ||b|| of a float result against its double reference (b = 0: ||a||). */
double t_rel_l2(const float *a, const double *b, int64_t n);

#endif
