/* attn.h - dense attention on one head instance (core/head.h): the double-precision
 * reference, the fast single-precision blocked path, and RoPE.
 *
 * Both paths return O and the per-row natural log-sum-exp of the scaled logits,
 * lse_i = log sum_{j visible} exp(scale * q_i.k_j), so outputs of disjoint key sets can be
 * merged exactly later. A row that sees no key gets O = 0 and lse = -inf. */
#ifndef AB_ATTN_ATTN_H
#define AB_ATTN_ATTN_H

#include <stdint.h>

#include "core/head.h"

/* RoPE, Llama / llama2.c convention: dimension pairs (2p, 2p+1) rotate by angle
 * pos * theta^(-2p/d). x is (n, d) rotated in place; d must be even. */
void ab_rope_apply(float *x, int64_t n, int64_t d, const int32_t *pos, double theta);
void ab_rope_apply_f64(double *x, int64_t d, int32_t pos, double theta); /* one row */

/* RoPE, Hugging Face "rotate_half" convention (GPT-NeoX, HF Llama): dimension p pairs with
 * p + d/2 (p < d/2), rotated by the same angle pos * theta^(-2p/d):
 * x'[p] = x[p] cos - x[p + d/2] sin, x'[p + d/2] = x[p + d/2] cos + x[p] sin. x is (n, d)
 * rotated in place; d must be even. */
void ab_rope_apply_half(float *x, int64_t n, int64_t d, const int32_t *pos, double theta);

/* Reference attention, double precision, exact. Computes rows rows[0..n_rows) of the head
 * (rows == NULL: all n_q rows, n_rows ignored). o is (n_rows, d_v), lse is (n_rows); either may
 * be NULL. Blocks of 32 rows, their scores through one dgemm against a double copy of the
 * keys: memory O(n_k d) for the copy plus O(32 n_k) per thread, never n_q x n_k. OpenMP over
 * row blocks (BLAS serial inside). Returns AB_OK or AB_E_NOMEM. */
int ab_attn_ref(const struct ab_head *h, const int64_t *rows, int64_t n_rows, double *o,
                double *lse);

/* ab_attn_ref that also writes each row's distribution, in float, into dist (n_rows, n_k): the
 * row's probabilities on its visible keys, 0 past them (dist may be NULL). One pass: the sweep
 * needs O and the map of the same rows (lib/eval/metrics.c). */
int ab_attn_ref_dist(const struct ab_head *h, const int64_t *rows, int64_t n_rows, double *o,
                     double *lse, float *dist);

/* The reference's arithmetic, for other exact paths (lib/methods' ab_attend_kept): the double
 * dot product of q (double, d) with k (float, d) in four interleaved partial sums, and
 * y[0..n) += a x[0..n) in double. */
double ab_dot_df(const double *q, const float *k, int64_t d);
void ab_axpy_df(double *y, double a, const float *x, int64_t n);

/* Visits the exact attention distribution of each listed row in order (rows == NULL: all rows).
 * fn receives the row index, the probabilities p[0..n_vis) over the visible keys (double, sums
 * to 1) and the row's lse; it returns 0 to go on or nonzero to stop (returned as is). Runs in
 * the calling thread, 32 rows' scores at a time (O(n_k d + 32 n_k) memory): this is how
 * statistics and renderers read an n x n map without holding it. */
typedef int (*ab_row_fn)(int64_t i, const double *p, int64_t n_vis, double lse, void *user);
int ab_attn_ref_visit(const struct ab_head *h, const int64_t *rows, int64_t n_rows, ab_row_fn fn,
                      void *user);

/* Fast attention, single precision: blocked with online softmax, block products through
 * OpenBLAS, never allocating anything of size n_q x n_k. All n_q rows. o is (n_q, d_v), lse
 * (n_q) or NULL. Parallel over query blocks with OpenMP (BLAS serial inside); call from a
 * serial region, or from a parallel region over heads with threads = 1 (see ab_attn_fast_ws).
 * Returns AB_OK or AB_E_NOMEM. */
int ab_attn_fast(const struct ab_head *h, float *o, float *lse);

/* A head whose cache holds only kept keys, compacted (compact.c): h is the original head with
 * n_k, k, v and k_pos pointing at the owned copies. */
struct ab_compact {
    struct ab_head h;
    float *k, *v;  /* (n_keep, d), (n_keep, d_v) */
    int32_t *pos;  /* (n_keep) */
};

/* Gathers keys keep[0 .. n_keep) (strictly increasing indices of h's keys) of h into c once;
 * attention over c->h (ab_attn_fast) then reads them contiguously: cache-compressed decode. Its
 * output equals the accuracy path over the same kept set. AB_OK, AB_E_USAGE (bad indices),
 * AB_E_NOMEM. Free with ab_attn_compact_free. */
int ab_attn_compact(const struct ab_head *h, const int64_t *keep, int64_t n_keep,
                    struct ab_compact *c);
void ab_attn_compact_free(struct ab_compact *c);

/* Token-sparse attention (sparse.c): row r of o (n_rows, d_v) is query rows[r] of h attending
 * only to the keys set in bitset row r (bits + r * words, bit j of word j / 64 for key j) that
 * it can see, by gathered index (their scores, one softmax, the weighted sum of their values):
 * work proportional to the kept cells. Rows keeping no visible key are 0. OpenMP over rows
 * (serial inside a parallel region); O(n_k) workspace per thread. The output equals the
 * accuracy path's over the same kept set. AB_OK or AB_E_NOMEM. */
int ab_attn_sparse(const struct ab_head *h, const int64_t *rows, int64_t n_rows,
                    const uint64_t *bits, int64_t words, float *o);

/* Block-sparse attention over every query row of h (sparse.c): row i of the bitset (bits +
 * i * words) keeps keys; 64-key tiles no row of a 64-row query block keeps are skipped, runs
 * of kept tiles computed through sgemm with the cells a row does not keep masked. o is
 * (n_q, d_v).
 * OpenMP over query blocks (BLAS serial inside). AB_OK or AB_E_NOMEM. */
int ab_attn_block_sparse(const struct ab_head *h, const uint64_t *bits, int64_t words, float *o);

/* The FLOPs of dense attention on h: (2d + 2d_v) per allowed cell (architecture.md). */
double ab_attn_dense_flops(const struct ab_head *h);

#endif
