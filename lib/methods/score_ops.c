/* score_ops.c - alternative attention operators that score every allowed cell like dense
 * attention but replace softmax with another elementwise map (methods.md, "linear and
 * approximate kernels"). They are operators, not approximations of softmax
 * (AB_METHOD_OPERATOR): their distance from dense measures how different the operator is.
 * - `sigmoid`: Ramapuram et al. 2024, "Theory, Analysis, and Best Practices for Sigmoid
 *   Self-Attention", arXiv 2409.04431 (section 3, the bias b = -ln n):
 *   o_i = sum_{j visible} sigma(s q_i.k_j - ln n_i) v_j, no normalisation;
 * - `softplus`: Gao and Spratling 2025, "Softplus Attention with Re-weighting Boosts Length
 *   Extrapolation in Large Language Models", arXiv 2501.13428 (LSSA, and its re-weighting):
 *   a_ij = softplus(ln(n_i) s q_i.k_j)^p, o_i = sum_j a_ij v_j / sum_j a_ij.
 * Here s = 1/sqrt(d) (the head's scale) and n_i = number of keys query i sees (prefill: i + 1
 * under the causal mask; decode: the cache length; full mask: n).
 * Knob: sigmoid has none; softplus's power p in [1, 16] (default 1, plain L1-normalised
 * softplus) changes the distribution, not the cost (AB_METHOD_FIXED).
 * Cost (exact, what the ledger holds): the same as dense, (2d + 2d_v) FLOPs per allowed cell
 * over the phase's query rows; ops_other: one exp per cell (both), one log per cell (softplus),
 * one pow per cell when p != 1. Both masks, both phases; keeps every allowed cell (cells = the
 * allowed cells, so density 1), but does not select (no AB_METHOD_SELECTS: recall is NaN).
 * Computation: per evaluated row, scores by one sgemv against the visible keys, the map in
 * double, then one sgemv with V (rows independent: evaluating a subset gives the same rows
 * bit for bit); memory O(n) per call.
 * Deviations from the papers:
 * - sigmoid's n is the number of keys each query sees (the catalogue's n), where the paper
 *   uses the training sequence length; the paper's hybrid-norm and ALiBi / RoPE choices belong
 *   to training and are not modelled;
 * - softplus: the re-weighting is the catalogue's power form (a^p then L1 normalisation); the
 *   paper's learned / tuned re-weighting details are not modelled, and p = 1 (LSSA without
 *   re-weighting) is the default;
 * - neither operator was trained into the model that produced Q, K, V: its accuracy against
 *   dense is the operator's distance from softmax on softmax-trained inputs. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "methods/method.h"

/* An elementwise operator on one row: x[0..n_vis) holds the scaled scores s q_i.k_j on entry
 * and the weights on return; n_vis >= 1. */
typedef void (*row_map)(float *x, int64_t n_vis, double knob);

static void sigmoid_row(float *x, int64_t n_vis, double knob)
{
    (void)knob;
    double b = -log((double)n_vis); /* the length bias */
    for (int64_t j = 0; j < n_vis; j++) x[j] = (float)(1.0 / (1.0 + exp(-((double)x[j] + b))));
}

/* softplus(y) = ln(1 + e^y), written so that neither branch overflows */
static double softplus(double y)
{
    return y > 0 ? y + log1p(exp(-y)) : log1p(exp(y));
}

static void softplus_row(float *x, int64_t n_vis, double knob)
{
    double t = log((double)n_vis), amax = 0, sum = 0; /* the length-scaled temperature */
    for (int64_t j = 0; j < n_vis; j++) amax = fmax(amax, softplus(t * x[j]));
    if (amax <= 0) { /* every weight underflowed: the limit of equal weights */
        for (int64_t j = 0; j < n_vis; j++) x[j] = (float)(1.0 / (double)n_vis);
        return;
    }
    /* a^p relative to the largest weight (the normalisation removes the scale) */
    for (int64_t j = 0; j < n_vis; j++) {
        double a = softplus(t * x[j]) / amax, w = knob == 1 ? a : pow(a, knob);
        x[j] = (float)w;
        sum += w;
    }
    for (int64_t j = 0; j < n_vis; j++) x[j] = (float)((double)x[j] / sum);
}

static int score_cost(const struct ab_problem *p, double knob, int logs, struct ab_ledger *led)
{
    double cells = ab_problem_allowed_cells(p);
    ab_ledger_attend(led, p->h, cells); /* (2d + 2d_v) FLOPs and one exp per cell */
    if (logs) led->ops_other += cells * (knob != 1 ? 2 : 1);
    return AB_OK;
}

/* Runs one operator: o (n_rows, d_v) for the evaluated rows. Each row is computed alone (two
 * sgemv), so a row's output does not depend on which other rows are evaluated. */
static int score_run(const struct ab_problem *p, double knob, row_map map, const char *name,
                     float *o)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v;
    float *x = ab_alloc(ab_size_mul((size_t)h->n_k, sizeof(float))); /* (n_k) one row's weights */
    if (!x) return ab_fail(AB_E_NOMEM, "%s: cannot allocate the score row", name);
    double cells = 0;
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t vis = ab_head_visible(h, p->rows[r]);
        float *orow = o + r * dv;
        if (vis == 0) {
            memset(orow, 0, sizeof(float) * (size_t)dv);
            continue;
        }
        /* x = s K q_i over the visible keys, then the operator's weights */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)vis, (int)d, (float)h->scale, h->k, (int)d,
                    h->q + p->rows[r] * d, 1, 0.0f, x, 1);
        map(x, vis, knob);
        /* o_i = V^T x */
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)vis, (int)dv, 1.0f, h->v, (int)dv, x, 1, 0.0f,
                    orow, 1);
        cells += (double)vis;
    }
    ab_attend_counter_add(cells);
    ab_free(x);
    return AB_OK;
}

static int mask_ok(const struct ab_problem *p, unsigned masks, const char *name)
{
    if (masks & (1u << p->h->mask)) return AB_OK;
    return ab_fail(AB_E_USAGE, "%s: the %s mask is not supported", name,
                   p->h->mask == AB_MASK_FULL ? "full" : "causal");
}

static int sigmoid_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    return score_cost(p, knob, 0, led);
}

static int sigmoid_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                       struct ab_ledger *led)
{
    (void)keep;
    int rc = mask_ok(p, AB_MASKS_CAUSAL | AB_MASKS_FULL, "sigmoid");
    if (rc) return rc;
    score_cost(p, knob, 0, led);
    return o ? score_run(p, knob, sigmoid_row, "sigmoid", o) : AB_OK;
}

static int softplus_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    return score_cost(p, knob, 1, led);
}

static int softplus_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                        struct ab_ledger *led)
{
    (void)keep;
    int rc = mask_ok(p, AB_MASKS_CAUSAL | AB_MASKS_FULL, "softplus");
    if (rc) return rc;
    if (!(knob > 0) || !isfinite(knob))
        return ab_fail(AB_E_USAGE, "softplus: power p must be positive, not %g", knob);
    score_cost(p, knob, 1, led);
    return o ? score_run(p, knob, softplus_row, "softplus", o) : AB_OK;
}

const struct ab_method ab_method_sigmoid = {
    .name = "sigmoid",
    .family = AB_FAMILY_LINEAR,
    .summary = "sigmoid attention: sigma(s q.k - ln n) per allowed cell, no normalisation",
    .citation = "Ramapuram et al. 2024, Theory, Analysis, and Best Practices for Sigmoid "
                "Self-Attention, arXiv 2409.04431",
    .cost_words = "4d per allowed cell, as dense (a cost-neutral operator row)",
    .convention = "weights sigma(q.k/sqrt(d) + b_i), bias b_i = -ln n_i with n_i the keys query "
                  "i sees (prefill i+1, decode the cache length); rows are not normalised",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL | AB_MASKS_FULL,
    .knob = {.name = NULL},
    .flags = AB_METHOD_ANALYTIC | AB_METHOD_OPERATOR | AB_METHOD_UNNORMALISED,
    .cost = sigmoid_cost,
    .run = sigmoid_run,
};

const struct ab_method ab_method_softplus = {
    .name = "softplus",
    .family = AB_FAMILY_LINEAR,
    .summary = "L1-normalised softplus scores with a log n temperature, power re-weighting p",
    .citation = "Gao and Spratling 2025, Softplus Attention with Re-weighting Boosts Length "
                "Extrapolation in Large Language Models, arXiv 2501.13428",
    .cost_words = "4d per allowed cell, as dense (a cost-neutral operator row)",
    .convention = "weights softplus(ln(n_i) q.k/sqrt(d))^p normalised to sum 1 per row, n_i the "
                  "keys query i sees; p = 1 (no re-weighting) unless set with --knob p=",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL | AB_MASKS_FULL,
    .knob = {.name = "p", .lo = 1, .hi = 16, .integer = 0, .def = 1, .unit = "power"},
    .flags = AB_METHOD_ANALYTIC | AB_METHOD_OPERATOR | AB_METHOD_FIXED,
    .cost = softplus_cost,
    .run = softplus_run,
};
