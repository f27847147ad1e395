/* sale.c - `sale`: block-sparse prefill selected from a 4-bit estimate of the whole attention
 * map, after SALE (Ji et al. 2025, "SALE: Low-bit Estimation for Efficient Sparse Attention in
 * Long-context LLM Prefilling", arXiv 2505.24179: 4-bit quantised query-key products, a
 * relative attention score per query-key pair, block-sparse attention on the kept blocks).
 *
 * Rule, per head:
 * 1. quantise Q and K to 4 bits per block of B = 64 rows: sigma = max |x| / 7 over the block,
 *    x_int = round(x / sigma) in [-7, 7] (symmetric signed 4-bit);
 * 2. estimate every visible logit element-wise from the integer products,
 *    s^_ij = scale sigma_q(b) sigma_k(c) (q_int_i . k_int_j);
 * 3. relative score of a cell: its estimated weight relative to its row's largest estimated
 *    weight, exp(s^_ij - max_j' s^_ij') in (0, 1]; a block (query block b, key block c) scores
 *    the largest relative score of its cells, R_bc;
 * 4. keep block (b, c) when R_bc >= theta = 10^-e, e the knob (decades below the row maximum);
 *    the first key block and the diagonal block are always kept; e >= 16 keeps every visible
 *    block (dense). Exact softmax over the kept blocks within the causal mask.
 * Knob e: 0.01 .. 16, cost grows with it. Default 3 (theta = 0.001).
 *
 * Cost (data-dependent, counted from the selection): 4d per kept cell. Selection: the estimate
 * computes E = sum_b rows_b vis(last row of b) cells (whole rectangles up to the diagonal),
 * each a d-term 4-bit dot product; a 4-bit multiply-add is counted at 1/8 of a float one, so
 * flops_select = 2 E d / 8 = E d / 4 (about 1/16 of dense attention on causal prefill: SALE is
 * infeasible at 1/16 and below, as its paper's overhead of about 11% of full attention says).
 * Ops: 2 (n_phase + n) d to quantise Q and K (an abs-max comparison and a rounding per
 * element), and 3 E (the dequantising scale, the row maximum and the block maximum per
 * estimated cell).
 *
 * The estimate does not depend on the knob, and the budget solver bisects the knob with
 * selection-only runs: prepare() computes the block scores R once per problem (method.h) and
 * every run reads them. The ledger still charges the estimate on every run (the method
 * recomputes it in each real prefill).
 *
 * Deviations: the paper calibrates one threshold per head offline and states its relative
 * score against the attention of the sink and local region; ours is relative to the row's
 * estimated maximum, with one knob for all heads; quantisation is per 64-row block with
 * symmetric round-to-nearest (the paper's kernel quantises per block for Int4 tensor cores); the
 * first key block and the diagonal block are forced as in the other block methods here;
 * causal prefill only. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { B = AB_DYN_B, QMAX = 7 };
static const double E_DENSE = 16; /* e >= this keeps every visible block */

/* Per-block 4-bit quantisation of x (n, d) into xi (integer-valued floats) and sigma (nb). */
static void quantise(const float *x, int64_t n, int64_t d, float *xi, float *sigma)
{
    for (int64_t b = 0; b * B < n; b++) {
        int64_t r0 = b * B, r1 = AB_MIN(n, r0 + B);
        float mx = 0;
        for (int64_t t = r0 * d; t < r1 * d; t++) mx = fabsf(x[t]) > mx ? fabsf(x[t]) : mx;
        sigma[b] = mx / QMAX;
        float inv = mx > 0 ? QMAX / mx : 0;
        for (int64_t t = r0 * d; t < r1 * d; t++) {
            float v = nearbyintf(x[t] * inv);
            xi[t] = v > QMAX ? QMAX : v < -QMAX ? -QMAX : v;
        }
    }
}

/* Cells the estimate computes: per query block of the phase, its rows times vis(last row). */
static double estimated_cells(const struct ab_problem *p)
{
    const struct ab_head *h = p->h;
    double e = 0;
    for (int64_t b = ab_dyn_first_qblock(p); b * B < h->n_q; b++) {
        int64_t i0 = AB_MAX(b * B, p->q0), i1 = AB_MIN(h->n_q, (b + 1) * B);
        e += (double)(i1 - i0) * (double)ab_head_visible(h, i1 - 1);
    }
    return e;
}

/* R (nb, nb): log of the block relative scores, max over the block's visible cells of
 * s^_ij - max_j' s^_ij' (<= 0); -inf where a block has no visible cell of the phase. */
static int estimate(const struct ab_problem *p, const struct ab_dyn_qk *x, float *R)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, nb = (n + B - 1) / B;
    float *qi = ab_alloc(ab_size_mul((size_t)(2 * n * d + 2 * nb + B * n), sizeof(float)));
    if (!qi) return ab_fail(AB_E_NOMEM, "sale: cannot allocate the 4-bit estimate");
    float *ki = qi + n * d, *sq = ki + n * d, *sk = sq + nb, *s = sk + nb; /* s: (B, n) */
    quantise(x->q, n, d, qi, sq);
    quantise(x->k, n, d, ki, sk);
    for (int64_t t = 0; t < nb * nb; t++) R[t] = -INFINITY;
    for (int64_t b = ab_dyn_first_qblock(p); b < nb; b++) {
        int64_t i0 = AB_MAX(b * B, p->q0), i1 = AB_MIN(n, (b + 1) * B);
        int64_t kend = ab_head_visible(h, i1 - 1);
        if (kend == 0) continue;
        /* integer products, exact in float (|sum| <= 49 d) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(i1 - i0), (int)kend, (int)d,
                    1.0f, qi + i0 * d, (int)d, ki, (int)d, 0.0f, s, (int)kend);
        float *rb = R + b * nb; /* (nb) */
        for (int64_t i = i0; i < i1; i++) {
            float *row = s + (i - i0) * kend; /* (kend) */
            int64_t v = ab_head_visible(h, i);
            if (v == 0) continue;
            /* s^_ij = scale sigma_q sigma_k (q_int . k_int) */
            float mx = -INFINITY;
            for (int64_t c = 0; c * B < v; c++) {
                float f = (float)(h->scale * sq[b] * sk[c]);
                for (int64_t j = c * B; j < AB_MIN(v, (c + 1) * B); j++) {
                    row[j] *= f;
                    mx = row[j] > mx ? row[j] : mx;
                }
            }
            for (int64_t c = 0; c * B < v; c++) {
                float bm = -INFINITY;
                for (int64_t j = c * B; j < AB_MIN(v, (c + 1) * B); j++)
                    bm = row[j] > bm ? row[j] : bm;
                bm -= mx;
                rb[c] = bm > rb[c] ? bm : rb[c];
            }
        }
    }
    ab_free(qi);
    return AB_OK;
}

/* ---- prepare: the block scores of the head ---- */

/* prepare()'s state: R (nb, nb) of the problem. */
struct sale_prep {
    int64_t nb;
    float *R; /* (nb, nb) */
};

static void sale_prepare_free(void *state)
{
    struct sale_prep *st = state;
    if (!st) return;
    ab_free(st->R);
    free(st);
}

/* R of p: the 4-bit estimate, O(E d) (file comment), O((n / B)^2) memory. */
static int sale_prepare(const struct ab_problem *p, void **state)
{
    ab_dyn_check(p);
    int64_t nb = (p->h->n_k + B - 1) / B;
    struct sale_prep *st = calloc(1, sizeof *st);
    if (st) st->R = ab_alloc(ab_size_mul((size_t)AB_MAX(nb * nb, 1), sizeof(float)));
    if (!st || !st->R) {
        sale_prepare_free(st);
        return ab_fail(AB_E_NOMEM, "sale: cannot allocate block scores");
    }
    st->nb = nb;
    struct ab_dyn_qk x;
    int rc = ab_dyn_qk_get(p->h, &x);
    if (!rc) {
        rc = estimate(p, &x, st->R);
        ab_dyn_qk_free(&x);
    }
    if (rc) {
        sale_prepare_free(st);
        return rc;
    }
    *state = st;
    return AB_OK;
}

/* ---- the method ---- */

static double knob_e(double knob)
{
    return knob > 0 ? knob : 0;
}

/* The block mask at e from R: forced first and diagonal blocks, then R_bc >= -e ln 10. */
static void blocks_at(const struct ab_problem *p, const float *R, double e, struct ab_dyn_blocks *s)
{
    int64_t nb = s->nbk;
    double lim = -e * log(10.0);
    for (int64_t b = ab_dyn_first_qblock(p); b < nb; b++) {
        int64_t nvb = ab_dyn_block_visible(p->h, b);
        uint8_t *on = s->on + b * nb;
        for (int64_t c = 0; c < nvb; c++)
            on[c] = c == 0 || c == nvb - 1 || e >= E_DENSE || (double)R[b * nb + c] >= lim;
    }
}

static void sale_fill(const struct ab_problem *p, const void *sel, struct ab_keep *keep)
{
    ab_dyn_blocks_keep(p, sel, keep);
}

static int sale_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                    struct ab_ledger *led)
{
    ab_dyn_check(p);
    const struct ab_head *h = p->h;
    const struct sale_prep *st = p->prep;
    assert(st); /* the engine prepared p */
    int64_t n = h->n_k;
    struct ab_dyn_blocks s = {0};
    int rc = ab_dyn_blocks_alloc(&s, n);
    double cells = 0;
    if (!rc) {
        blocks_at(p, st->R, knob_e(knob), &s);
        rc = ab_dyn_blocks_cells(p, &s, &cells);
    }
    if (!rc) {
        double E = estimated_cells(p);
        ab_ledger_attend(led, h, cells);
        led->flops_select += E * (double)h->d / 4;
        led->ops_other += 2.0 * (double)(h->n_q - p->q0 + n) * (double)h->d + 3.0 * E;
        rc = ab_dyn_attend(p, sale_fill, &s, o, keep);
    }
    ab_dyn_blocks_free(&s);
    return rc;
}

const struct ab_method ab_method_sale = {
    .name = "sale",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "4-bit per-block quantised Q K^T estimates every logit; keep blocks whose best "
               "cell weighs at least 10^-e of its row's maximum (first and diagonal forced)",
    .citation = "SALE, Ji et al. 2025, arXiv 2505.24179",
    .cost_words = "4d per kept cell (counted from the selection); selection E d / 4: E estimated "
                  "cells (rows x visible keys per query block), each 4-bit multiply-add "
                  "counted at 1/8 of a float one",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "e", .lo = 0.01, .hi = 16, .integer = 0, .def = 3, .unit = "decades"},
    .flags = AB_METHOD_SELECTS,
    .cost = NULL,
    .run = sale_run,
    .prepare = sale_prepare,
    .prepare_free = sale_prepare_free,
};
