/* a2sf.c - `a2sf`: Accumulative Attention Scoring with Forgetting Factor, Jo and Shin, "A2SF:
 * Accumulative Attention Scoring with Forgetting Factor for Token Pruning in Transformer
 * Decoder", arXiv 2407.20485: H2O's heavy hitters, but the accumulated score forgets.
 *
 * H2O sums every query's attention: a key written early has been read by more queries than a
 * young one and wins by seniority. A2SF multiplies the past by a forgetting factor lambda before
 * each query adds its attention,
 *     acc_j <- lambda acc_j + A_ij,
 * so after the context acc_j = sum_{t < q0} lambda^(q0-1-t) A_tj and a key's score weighs
 * recent queries most. Everything else is h2o's schedule (h2o.c, shared through kv.h): the
 * cache holds C / 2 heavy hitters by acc plus C - C / 2 recent keys, evicting one key per step;
 * each decode query reads its cache (softmax renormalised over it) and its probabilities feed
 * acc. lambda = 1 is H2O exactly (tests/test_methods_kv.c checks kept sets and outputs).
 *
 * Knob: C = h + r, the cache size in tokens, integer in [1, n] (h = floor(C / 2) heavy,
 * r = C - h recent), as for h2o; lambda = 0.9 (fixed; the hook ab_a2sf_run takes others).
 * Cost (analytic, h2o's: the cells do not depend on the data):
 *     cells        = sum over decode queries of min(C, v_i) (under the usual positions)
 *     flops_select = 0 (h2o's convention: the scores are the model's own probabilities)
 *     ops_other    = h2o's (one add per context cell, n_ctx compares for the first selection,
 *                    per decode cell one add, one compare, one exp)
 *                  + one multiply per context cell (the weight lambda^(q0-1-t)) and one per
 *                    decode cell (the decay of acc). Monotone in C through the cells.
 * Deviations:
 * - the paper tunes lambda and the recent share per task; here lambda is fixed at 0.9
 *   (methods.md) and the split is h2o's (r = C - floor(C / 2)), so the two rows differ only in
 *   lambda;
 * - the decay is applied to the keys still cached (the evicted ones never return, so decaying
 *   them would change nothing);
 * - per query head, even under GQA; ties go to the earlier key (h2o's). */
#include "core/ab.h"
#include "methods/kv.h"
#include "methods/method.h"

static const double A2SF_LAMBDA = 0.9;

static int64_t a2sf_budget(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

/* h2o's ledger plus the multiplies of the forgetting factor; returns the cells. */
static double a2sf_ledger(const struct ab_problem *p, int64_t C, struct ab_ledger *led)
{
    double cells = ab_kv_accum_ledger(p, C, led);
    led->ops_other += ab_kv_ctx_cells(p) + cells;
    return cells;
}

static int a2sf_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "a2sf");
    if (rc) return rc;
    a2sf_ledger(p, a2sf_budget(knob), led);
    return AB_OK;
}

int ab_a2sf_run(const struct ab_problem *p, double knob, double lambda, float *o,
                struct ab_keep *keep, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "a2sf");
    if (rc) return rc;
    if (!(lambda > 0 && lambda <= 1))
        return ab_fail(AB_E_USAGE, "a2sf: forgetting factor %g is outside (0, 1]", lambda);
    const struct kv_accum rule = {.lambda = lambda, .tau_ctx = 1, .tau0 = 1, .tau1 = 1};
    int64_t C = a2sf_budget(knob);
    double expected = a2sf_ledger(p, C, led);
    return kv_run_schedule(p, C, expected, ab_kv_accum_schedule, &rule, o, keep);
}

static int a2sf_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                    struct ab_ledger *led)
{
    return ab_a2sf_run(p, knob, A2SF_LAMBDA, o, keep, led);
}

/* The context's scores under the row's rule (h2o.c). */
static int a2sf_prepare(const struct ab_problem *p, void **state)
{
    const struct kv_accum rule = {.lambda = A2SF_LAMBDA, .tau_ctx = 1, .tau0 = 1, .tau1 = 1};
    return ab_kv_accum_prepare(p, &rule, state);
}

const struct ab_method ab_method_a2sf = {
    .name = "a2sf",
    .family = AB_FAMILY_KV,
    .summary = "h2o with a forgetting factor: score <- 0.9 score + attention; C/2 heavy + C/2 "
               "recent",
    .citation = "A2SF, Jo and Shin 2024, arXiv 2407.20485",
    .cost_words = "4d per kept cell: min(C, v) per decode query; scores are the model's own "
                  "probabilities (decay and additions in ops_other)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_PREP_FREE,
    .cost = a2sf_cost,
    .run = a2sf_run,
    .prepare = a2sf_prepare,
    .prepare_free = ab_kv_accum_prepare_free,
};
