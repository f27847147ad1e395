/* sampleattention.c - `sampleattention`: SampleAttention (Zhu et al. 2024, "SampleAttention:
 * Near-Lossless Acceleration of Long Context LLM Inference with Adaptive Structured Sparse
 * Attention", arXiv 2406.15486, section 4: a local window of a fixed fraction of the sequence
 * plus column stripes chosen by two-stage query-guided key filtering), causal prefill.
 *
 * Rule: (1) a local window of w = max(1, round(r_w n)) keys, r_w = 0.08: row i keeps
 * keys [v - w, v) (v = vis(i)); (2) column stripes: s = max(1, ceil(r_row m)) query rows of the
 * phase, r_row = 0.05, m = n - q0 the phase's rows, evenly spaced (row q0 + floor((t + 1) m / s)
 * - 1 for t = 0 .. s - 1, so the last row is always sampled), attend exactly (causal softmax
 * over the keys each sees); their probabilities are summed per key into a column score
 * col[j]; the kept columns are the fewest highest-scoring keys whose scores reach a share alpha
 * of the sampled rows' total mass (s) - the cumulative residual attention (CRA) threshold,
 * ties to the lower key. Every row keeps its window and the kept columns it can see. Exact
 * softmax over the kept keys. Knob: alpha (0.01..1; the paper's default 0.95); alpha = 1 keeps
 * every column: dense.
 *
 * Cost (data-dependent: counted from the selection): 4d per kept cell, row i keeping
 * (v - lo) + #{kept columns j < lo}, lo = max(0, v - w). Selection: the sampled rows' logits,
 * 2 d per visible cell of a sampled row (E_s cells), plus 3 E_s (the softmax sum, the
 * normalisation, the column addition) and 2 n for the cover (the total and the running sum);
 * ops: an exp and a max comparison per sampled cell, n ceil(log2 n) to rank the columns. The
 * column scores do not depend on alpha: prepare() computes and ranks them once per problem
 * (method.h); every run counts them again.
 *
 * Deviations from the paper: the sampled rows are evenly spaced and deterministic (the
 * authors sample a ratio of rows in their kernel); the CRA cover is taken over the column
 * scores alone, and the window is added on top of it (the window's mass is not subtracted
 * first); the two stages are one here (stage 1 samples rows, stage 2 filters columns by the
 * cover: both in one pass over the sampled rows); r_w and r_row as the paper's default
 * setting as we read it (window 8%, rows 5%); logits by sgemm in float, softmax and sums in
 * double. Prefill only. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

#define SA_WINDOW 0.08 /* r_w: window as a fraction of n */
#define SA_ROWS   0.05 /* r_row: sampled query rows as a fraction of the phase */

/* The ranked column scores of one problem (prepare()'s state). */
struct sa_cols {
    int64_t n;
    double *val;      /* (n) column scores in selection order */
    int64_t *idx;     /* (n) keys in selection order */
    double e_s, sort; /* visible cells of the sampled rows; the ranking's sort operations */
};

/* Window of p. */
static int64_t sa_window(const struct ab_problem *p)
{
    return AB_MAX(1, (int64_t)llround(SA_WINDOW * (double)p->h->n_k));
}

static void sa_prepare_free(void *state)
{
    struct sa_cols *sc = state;
    if (!sc) return;
    ab_free(sc->val);
    ab_free(sc->idx);
    free(sc);
}

/* The sampled rows' column scores, ranked. O(s n d) time, O(s n) memory. */
static int sa_prepare(const struct ab_problem *p, void **state)
{
    ab_dyn_check(p);
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, m = h->n_q - p->q0;
    int64_t s = AB_MAX(1, (int64_t)ceil(SA_ROWS * (double)m));
    if (m == 0) s = 0;
    struct sa_cols *sc = calloc(1, sizeof *sc);
    double *col = ab_alloc(ab_size_mul((size_t)n, sizeof(double))); /* (n) */
    float *qs = ab_alloc(ab_size_mul((size_t)(s * d + s * n + 1), sizeof(float)));
    if (sc) {
        sc->n = n;
        sc->val = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));
        sc->idx = ab_alloc(ab_size_mul((size_t)n, sizeof(int64_t)));
    }
    if (!sc || !col || !qs || !sc->val || !sc->idx) {
        sa_prepare_free(sc);
        ab_free(col);
        ab_free(qs);
        return ab_fail(AB_E_NOMEM, "sampleattention: cannot allocate the column scores");
    }
    float *lg = qs + s * d; /* (s, d) sampled queries, (s, n) their logits */
    for (int64_t t = 0; t < s; t++) {
        int64_t i = p->q0 + (t + 1) * m / s - 1;
        memcpy(qs + t * d, h->q + i * d, (size_t)d * sizeof(float));
    }
    if (s > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)s, (int)n, (int)d,
                    (float)h->scale, qs, (int)d, h->k, (int)d, 0.0f, lg, (int)n);
    memset(col, 0, (size_t)n * sizeof(double));
    for (int64_t t = 0; t < s; t++) {
        int64_t i = p->q0 + (t + 1) * m / s - 1, v = ab_head_visible(h, i);
        const float *row = lg + t * n;
        double mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < v; j++) mx = row[j] > mx ? row[j] : mx;
        for (int64_t j = 0; j < v; j++) z += exp((double)row[j] - mx);
        for (int64_t j = 0; j < v; j++) col[j] += exp((double)row[j] - mx) / z;
        sc->e_s += (double)v;
    }
    sc->sort = ab_dyn_rank(col, n, 0, sc->idx);
    for (int64_t t = 0; t < n; t++) sc->val[t] = col[sc->idx[t]];
    ab_free(col);
    ab_free(qs);
    *state = sc;
    return AB_OK;
}

static int sa_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    ab_dyn_check(p);
    const struct ab_head *h = p->h;
    const struct sa_cols *sc = p->prep;
    assert(sc); /* the engine prepared p */
    int64_t n = h->n_k, w = sa_window(p), m_cols = ab_dyn_cover(sc->val, n, knob);
    uint8_t *on = ab_alloc(ab_size_mul((size_t)n, 1));                    /* (n) */
    int64_t *pre = ab_alloc(ab_size_mul((size_t)n + 1, sizeof(int64_t))); /* (n + 1) */
    if (!on || !pre) {
        ab_free(on);
        ab_free(pre);
        return ab_fail(AB_E_NOMEM, "sampleattention: cannot allocate the kept columns");
    }
    memset(on, 0, (size_t)n);
    for (int64_t t = 0; t < m_cols; t++) on[sc->idx[t]] = 1;
    pre[0] = 0; /* pre[x] = kept columns below x */
    for (int64_t j = 0; j < n; j++) pre[j + 1] = pre[j] + on[j];
    double cells = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i), lo = AB_MAX(0, v - w);
        cells += (double)(v - lo + pre[lo]);
    }
    ab_ledger_attend(led, h, cells);
    led->flops_select += (2.0 * (double)h->d + 3.0) * sc->e_s + 2.0 * (double)n;
    led->ops_other += 2.0 * sc->e_s + sc->sort;
    ab_keep_clear(keep);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t v = ab_head_visible(h, p->rows[r]), lo = AB_MAX(0, v - w);
        ab_keep_range(keep, r, lo, v);
        for (int64_t j = 0; j < lo; j++)
            if (on[j]) ab_keep_set(keep, r, j);
    }
    ab_free(on);
    ab_free(pre);
    return o ? ab_attend_kept(p, keep, o, NULL) : AB_OK;
}

const struct ab_method ab_method_sampleattention = {
    .name = "sampleattention",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "local window of 8% of n plus the fewest column stripes covering a share alpha "
               "of the attention mass of 5% sampled query rows",
    .citation = "SampleAttention, Zhu et al. 2024, arXiv 2406.15486",
    .cost_words = "4d per kept cell (counted from the selection): (v - lo) + kept columns below "
                  "lo per query, lo = v - 0.08 n; selection (2d + 3) E_s + 2n (E_s visible "
                  "cells of the 0.05 m sampled rows); sort n log2 n",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "alpha", .lo = 0.01, .hi = 1, .integer = 0, .def = 0.95, .unit = "fraction"},
    .flags = AB_METHOD_SELECTS,
    .cost = NULL,
    .run = sa_run,
    .prepare = sa_prepare,
    .prepare_free = sa_prepare_free,
};
