/* dynamic.h - internals shared by the dynamic (prefill) selection methods of block.c
 * (block-topk, block-oracle), vertical_slash.c (vertical-slash) and flexprefill.c: the block
 * grid, pooling, ranking with forced entries, the probe of the last queries, and sets of
 * vertical and slash lines. Not part of the method interface (method.h); the tests read it to
 * check the defining properties of those methods.
 *
 * Geometry (prefill, causal, n_q == n_k == n): query row i sees keys [0, vis(i)),
 * vis(i) = ab_head_visible(h, i), which is i + 1 when query and key positions are the same
 * strictly increasing sequence ("standard" positions). Blocks are B = 64 consecutive rows
 * (query block b = rows [bB, bB + B)) or keys (key block c = keys [cB, cB + B)); the last block
 * of each side may be shorter. A column is one key j; a slash (diagonal) is one offset
 * delta = i - j >= 0, both in index space. */
#ifndef AB_METHODS_DYNAMIC_H
#define AB_METHODS_DYNAMIC_H

#include <stdint.h>

#include "methods/method.h"

enum {
    AB_DYN_B = 64,        /* block size B (methods.md) */
    AB_DYN_N_REF = 32768, /* context length for which the authors' forced-line counts and
                             minimum budgets are used as shipped; below it they scale with n */
};

/* Scales an author default `x` (meant for n >= AB_DYN_N_REF keys) to n keys:
 * max(1, round(x * min(1, n / N_REF))). */
int64_t ab_dyn_scaled(int64_t x, int64_t n);

/* ---- inputs (block.c) ---- */

/* Q and K as the attention sees them: the head's arrays, or RoPE-rotated copies when the head
 * asks for rotation (rope_theta > 0). */
struct ab_dyn_qk {
    const float *q, *k; /* (n_q, d), (n_k, d) */
    float *own;         /* rotated copies (n_q + n_k, d) owned here, or NULL */
};
int ab_dyn_qk_get(const struct ab_head *h, struct ab_dyn_qk *x);
void ab_dyn_qk_free(struct ab_dyn_qk *x);

/* Asserts the problem is what the dynamic methods support: prefill, causal, n_q == n_k. */
void ab_dyn_check(const struct ab_problem *p);

/* 1 when vis(i) == i + 1 for every row (standard positions): the closed-form costs hold. O(n). */
int ab_dyn_standard(const struct ab_head *h);

/* Mean of each block of B rows of x (n, d) into out (ceil(n / B), d); n * d additions. */
void ab_dyn_pool(const float *x, int64_t n, int64_t d, float *out);

/* ---- row kernels (block.c): vectorised (AVX2 clones), float in, double sums out ---- */

/* max_j x[j] over n >= 0 entries (-inf when n == 0). */
float ab_dyn_row_max(const float *x, int64_t n);

/* x[j] = exp(x[j] - mx) in place for j < n (mx >= every x[j]); exp by Cody-Waite reduction and
 * a degree-6 polynomial, within 2.5e-7 relative, results below 2^-126 flushed to 0. Writes the
 * sum of each run of B entries into part[c] (ceil(n / B) of them; float lanes within a run) and
 * returns their total in double. n exps. */
double ab_dyn_row_exp(float *x, int64_t n, float mx, double *part);

/* ---- the block grid (block.c) ---- */

/* A block mask: on[b * nbk + c] = 1 when query block b keeps key block c. */
struct ab_dyn_blocks {
    int64_t nbq, nbk; /* query and key blocks: ceil(n / B) each */
    uint8_t *on;      /* (nbq, nbk) */
};
int ab_dyn_blocks_alloc(struct ab_dyn_blocks *s, int64_t n);
void ab_dyn_blocks_free(struct ab_dyn_blocks *s);

/* Key blocks holding a key visible to some row of query block b: ceil(vis(last row) / B). */
int64_t ab_dyn_block_visible(const struct ab_head *h, int64_t b);

/* First query block with a row of the phase (q0 / B). */
static inline int64_t ab_dyn_first_qblock(const struct ab_problem *p)
{
    return p->q0 / AB_DYN_B;
}

/* Adds to *cells the cells of the phase kept by a block mask: over rows i in [q0, n), the kept
 * blocks' keys below vis(i). O(nbq * nbk + n). AB_OK or AB_E_NOMEM. */
int ab_dyn_blocks_cells(const struct ab_problem *p, const struct ab_dyn_blocks *s, double *cells);

/* Writes the evaluated rows of keep (cleared first) from a block mask, within the mask. */
void ab_dyn_blocks_keep(const struct ab_problem *p, const struct ab_dyn_blocks *s,
                        struct ab_keep *keep);

/* ---- ranking (vertical_slash.c) ---- */

/* Indices 0..n-1 ordered by the selection rule: the forced indices [0, n_forced) first in
 * increasing order, then the others by score, highest first, ties to the lower index.
 * Returns the element operations of the sort: ab_dyn_sort_ops(n - n_forced). */
double ab_dyn_rank(const double *score, int64_t n, int64_t n_forced, int64_t *idx);

/* Element operations charged for sorting c candidates: c * ceil(log2 c) (0 when c < 2). */
static inline double ab_dyn_sort_ops(int64_t c)
{
    return c < 2 ? 0.0 : (double)c * (double)(64 - __builtin_clzll((unsigned long long)(c - 1)));
}

/* The shortest prefix of the list v[0..n) (non-negative, in selection order) whose sum reaches
 * gamma times the list's total: the smallest m with v[0] + ... + v[m-1] >= gamma * total;
 * 0 when gamma <= 0, n when gamma >= 1 (full coverage keeps every entry, also those whose mass
 * is lost to rounding). */
int64_t ab_dyn_cover(const double *v, int64_t n, double gamma);

/* ---- the probe (vertical_slash.c) ---- */

/* The last L query rows of the phase, i = n - L .. n - 1, attend exactly (causal softmax) to
 * every key they see; their probabilities a_ij are reduced to column sums col[j] =
 * sum_i a_ij (n_k) and slash sums diag[delta] = sum_i a_{i, i - delta} (n_q). Each probe row sums
 * to 1, so col and diag each sum to L. Adds its cost to led->flops_select:
 * 2 L n_k d (the product Q_probe K^T) + 4 P (per probe cell: the normaliser sum, the
 * normalisation, one column and one slash addition), and to led->ops_other 2 P (an exp and a
 * max comparison per cell), P being the probe's visible cells. Memory O(L n). */
int ab_dyn_probe(const struct ab_problem *p, const struct ab_dyn_qk *x, int64_t L, double *col,
                 double *diag, struct ab_ledger *led);

/* The probe as vertical-slash and flexprefill prepare it (method.h, prepare): col and diag of
 * ab_dyn_probe and the ledger terms it added, which every run adds again. */
struct ab_dyn_probed {
    double *col, *diag;             /* (n_k), (n_q): one allocation */
    double flops_select, ops_other; /* the probe's ledger terms */
};

/* Runs the probe of the last L rows of p into pr (free with ab_dyn_probed_free). AB_OK or
 * AB_E_NOMEM (pr empty then). */
int ab_dyn_probed_make(const struct ab_problem *p, int64_t L, struct ab_dyn_probed *pr);
void ab_dyn_probed_free(struct ab_dyn_probed *pr);

/* Adds the probe's ledger terms to led, as ab_dyn_probe did when it ran. */
static inline void ab_dyn_probed_ledger(const struct ab_dyn_probed *pr, struct ab_ledger *led)
{
    led->flops_select += pr->flops_select;
    led->ops_other += pr->ops_other;
}

/* ---- vertical and slash lines (vertical_slash.c) ---- */

/* A set of columns and slashes. Slashes are stored reversed and zero-padded, so that the keys
 * of row i on kept slashes are the bits of `rs` read from offset n - 1 - i:
 * bit t of rs is set iff delta = n - 1 - t is kept. */
struct ab_dyn_lines {
    int64_t n;           /* n_q == n_k */
    int64_t words;       /* 64-bit words of a column set: ceil(n / 64) */
    uint64_t *col;       /* (words) kept columns */
    uint64_t *rs;        /* (2 words + 1) kept slashes, reversed */
    int64_t n_col, n_rs; /* kept columns and slashes */
};
int ab_dyn_lines_alloc(struct ab_dyn_lines *l, int64_t n);
void ab_dyn_lines_free(struct ab_dyn_lines *l);
void ab_dyn_lines_add_col(struct ab_dyn_lines *l, int64_t j);
void ab_dyn_lines_add_slash(struct ab_dyn_lines *l, int64_t delta);

/* Cells of the phase on kept lines: for each row i in [q0, n) the keys j < vis(i) with j a
 * kept column or i - j a kept slash, each counted once. O(n^2 / 64) word operations. */
double ab_dyn_lines_cells(const struct ab_problem *p, const struct ab_dyn_lines *l);

/* Writes the evaluated rows of keep (every word of each row) from a line set, within the mask. */
void ab_dyn_lines_keep(const struct ab_problem *p, const struct ab_dyn_lines *l,
                       struct ab_keep *keep);

/* ---- flexprefill's selection (flexprefill.c) ---- */

/* What flexprefill chose on one head: its pattern and the kept lines or blocks. */
struct ab_dyn_flex {
    int query_aware;             /* 1: blocks of the pooled map; 0: vertical and slash lines */
    double js;                   /* sqrt Jensen-Shannon divergence, pooled estimate vs probe */
    int64_t n_col, n_slash;      /* kept lines (vertical-slash heads) */
    int64_t n_blocks;            /* kept (query block, key block) pairs (query-aware heads) */
    struct ab_dyn_lines lines;   /* vertical-slash heads */
    struct ab_dyn_blocks blocks; /* query-aware heads */
};

/* Runs flexprefill's selection at coverage gamma and divergence threshold tau (the method
 * uses tau = 0.1; tests pass others to force a pattern) into f (free with ab_dyn_flex_free),
 * adding the phase's ledger (kept cells and selection) to led. p is prepared for flexprefill
 * (method.h): its probe is p->prep. */
int ab_dyn_flex_select(const struct ab_problem *p, double gamma, double tau, struct ab_dyn_flex *f,
                       struct ab_ledger *led);
void ab_dyn_flex_free(struct ab_dyn_flex *f);

/* ---- the common tail (block.c) ---- */

/* Fills keep (run()'s, never NULL: method.h) with `fill`, then, when o != NULL, computes O of
 * the evaluated rows by exact attention restricted to it. */
typedef void (*ab_dyn_fill_fn)(const struct ab_problem *p, const void *sel, struct ab_keep *keep);
int ab_dyn_attend(const struct ab_problem *p, ab_dyn_fill_fn fill, const void *sel, float *o,
                  struct ab_keep *keep);

#endif
