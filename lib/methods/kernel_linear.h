/* kernel_linear.h - the shared engine of the kernelised linear-attention rows (linear-elu,
 * performer, cosformer, lightning): given feature maps of every query and key row of a head,
 * it evaluates
 *     o_i = sum_{j visible} w_ij (qf_i . kf_j) v_j  /  sum_{j visible} w_ij (qf_i . kf_j)
 * (the division only when normalised), with w_ij = exp(g_j - g_i) for a non-decreasing per-row
 * log-scale g (NULL: w = 1). g carries Performer's running key stabiliser and Lightning's decay
 * lambda^(i-j) = exp(g_j - g_i) with g_t = -t ln(lambda): both rescale the state when g grows.
 *
 * Forms: full mask (one state over every key), causal prefill (chunks of C rows: the block
 * inside a chunk by a masked C x C matmul, the earlier chunks through the state, all through
 * cblas_sgemm), causal decode (the state of the context rows 0..q0-1 by one matmul, then one
 * step per decode query: add its own key, read the state). */
#ifndef AB_METHODS_KERNEL_LINEAR_H
#define AB_METHODS_KERNEL_LINEAR_H

#include <stdint.h>

#include "methods/method.h"

/* The inputs of one evaluation. qf and kf cover every row 0..n-1 of the head (n = p->h->n_k). */
struct ab_klin {
    const float *qf; /* (n, f) query features */
    const float *kf; /* (n, f) key features; with g, row j is already divided by exp(g_j) */
    const double *g; /* (n) non-decreasing log-scale of each row, or NULL */
    int64_t f;       /* features per row */
    int64_t chunk;   /* C: rows per chunk of the causal prefill form */
    int normalise;   /* 1: divide by the same sum without v (a ones column appended to V) */
    double rate;     /* > 0: g_t = t rate (a constant decay), so the intra-chunk factors
                        e^(g_j - g_i) come from one table of e^(-rate t) */
};

/* Evaluates the engine on p's phase and mask and writes the evaluated rows p->rows into o
 * (n_rows, d_v). Every row of the phase is computed (the output of a row does not depend on
 * which rows are evaluated). Causal problems must have aligned rows (query i sees keys 0..i);
 * AB_E_DATA otherwise, AB_E_NOMEM when scratch cannot be allocated. A normalised row whose
 * denominator is 0 gets O = 0. */
int ab_klin_run(const struct ab_problem *p, const struct ab_klin *k, float *o);

/* Refuses a mask the method does not support: AB_E_USAGE naming the method, else AB_OK. */
int ab_klin_check_mask(const struct ab_method *m, const struct ab_problem *p);

/* The ledger of one evaluation (added to led), with nq = n - q0 query rows of the phase, n_k
 * keys, f features and d_v value columns:
 * - flops_attend: prefill 2 n_k f d_v (state) + 2 nq f d_v (read) + 2 nq C (f + d_v) (causal
 *   intra-chunk blocks); decode 4 f d_v per decode row (one state update, one read); plus
 *   feat_flops per feature-mapped row (prefill: nq query and n_k key rows; decode: 2 per row);
 * - ops_other: feat_ops per feature-mapped row (exp, compare, cos);
 * - bytes_kv: prefill the K and V rows read once, 4 n_k (d + d_v); decode the state read by each
 *   decode row, 4 f (d_v + normalise) bytes each;
 * - cells: 0 (no (query, key) softmax cell is formed). Pure in (p, chunk). */
void ab_klin_ledger(const struct ab_problem *p, int64_t f, int64_t chunk, int normalise,
                    double feat_flops, double feat_ops, struct ab_ledger *led);

/* Performer (FAVOR+) random features, exported for the unbiasedness test.
 * ab_performer_omega: omega (m, d) = blocks of d orthogonal Gaussian directions, each row scaled
 * by an independent chi(d) norm (so each row is marginally N(0, I)); a pure function of seed.
 * ab_performer_logfeat: a (n, m) = omega x^ - |x^|^2 / 2 - ln(m) / 2 with x^ = x sqrt(scale), so
 * sum_r exp(a_q,r + a_k,r) is an unbiased estimate of exp(scale q.k). AB_E_NOMEM on failure. */
int ab_performer_omega(uint64_t seed, int64_t m, int64_t d, float *omega);
int ab_performer_logfeat(const float *omega, int64_t m, int64_t d, double scale, const float *x,
                         int64_t n, float *a);

#endif
