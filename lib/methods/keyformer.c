/* keyformer.c - `keyformer`: Adnan et al., "Keyformer: KV Cache Reduction through Key Tokens
 * Selection for Efficient Generative Inference", MLSys 2024, arXiv 2403.09054: H2O-like
 * accumulation of a regularised score (Gumbel noise on the logits, softmax with a temperature
 * that rises during generation) with a window of recent tokens.
 *
 * Discarding tokens shifts the softmax mass onto the ones left; Keyformer argues a score with
 * noise and a temperature ranks "key tokens" more robustly than the raw attention. For a query
 * with logits l_j = scale q.k_j over the keys it reads:
 *     f_j   = softmax_j((l_j + g_j) / tau),   g_j = -ln(-ln u_j) Gumbel noise, u_j uniform
 *     acc_j = acc_j + f_j
 * Context rows use tau = tau_init; decode query i (of m) uses
 * tau = tau_init + (tau_end - tau_init) (i - q0) / (m - 1), tau_init = 1, tau_end = 2 (the
 * paper's linear schedule over the generation). The noise is seeded: u_j is a pure function of
 * (problem seed, query row, key), so a run replays. The cache and its schedule are h2o's (h2o.c,
 * shared through kv.h): C / 2 key tokens by acc plus C - C / 2 recent keys, one eviction per
 * step; the outputs are exact attention over the cache (plain softmax: the regularised score
 * only ranks). With no noise and tau = 1 it is H2O exactly (tests/test_methods_kv.c checks kept
 * sets and outputs through the hook ab_keyformer_run).
 *
 * Knob: C, the cache size in tokens, integer in [1, n] (k = floor(C / 2) key tokens, w = C - k
 * recent).
 * Cost (analytic, h2o's: the cells do not depend on the data):
 *     cells        = sum over decode queries of min(C, v_i) (under the usual positions)
 *     flops_select = 0 (the logits are the ones the model computes anyway, h2o's convention)
 *     ops_other    = h2o's (one add per context cell, n_ctx compares, per decode cell one add,
 *                    one compare, one exp)
 *                  + 4 per scored cell, context and decode alike: one uniform draw and two logs
 *                    (the noise), one multiply (1 / tau), one exp (the score's own softmax, which
 *                    differs from the attention's). Monotone in C through the cells.
 * Deviations:
 * - the paper keeps a recent window of a tuned share of the cache; here the split is h2o's
 *   (w = C - floor(C / 2)) so the rows compare at the same cache;
 * - the context's key tokens are chosen once at the end of the context from all its rows'
 *   scores (h2o's deviation), not by evicting during prefill;
 * - the noise is fresh for every (query, key) cell; per query head, even under GQA; ties go to
 *   the earlier key. */
#include "core/ab.h"
#include "methods/kv.h"
#include "methods/method.h"

static const double KF_TAU_INIT = 1.0, KF_TAU_END = 2.0;

static int64_t kf_budget(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

/* h2o's ledger plus the work of the regularised score; returns the cells. */
static double kf_ledger(const struct ab_problem *p, int64_t C, struct ab_ledger *led)
{
    double cells = ab_kv_accum_ledger(p, C, led);
    led->ops_other += 4.0 * (ab_kv_ctx_cells(p) + cells);
    return cells;
}

static int kf_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "keyformer");
    if (rc) return rc;
    kf_ledger(p, kf_budget(knob), led);
    return AB_OK;
}

int ab_keyformer_run(const struct ab_problem *p, double knob, int gumbel, double tau0, double tau1,
                     float *o, struct ab_keep *keep, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "keyformer");
    if (rc) return rc;
    if (!(tau0 > 0 && tau1 > 0))
        return ab_fail(AB_E_USAGE, "keyformer: temperatures %g, %g must be positive", tau0, tau1);
    const struct kv_accum rule = {.lambda = 1,
                                  .gumbel = gumbel,
                                  .tau_ctx = tau0,
                                  .tau0 = tau0,
                                  .tau1 = tau1,
                                  .seed = p->seed};
    int64_t C = kf_budget(knob);
    double expected = kf_ledger(p, C, led);
    return kv_run_schedule(p, C, expected, ab_kv_accum_schedule, &rule, o, keep);
}

static int kf_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    return ab_keyformer_run(p, knob, 1, KF_TAU_INIT, KF_TAU_END, o, keep, led);
}

/* The context's scores under the row's rule (h2o.c). */
static int kf_prepare(const struct ab_problem *p, void **state)
{
    const struct kv_accum rule = {.lambda = 1,
                                  .gumbel = 1,
                                  .tau_ctx = KF_TAU_INIT,
                                  .tau0 = KF_TAU_INIT,
                                  .tau1 = KF_TAU_END,
                                  .seed = p->seed};
    return ab_kv_accum_prepare(p, &rule, state);
}

const struct ab_method ab_method_keyformer = {
    .name = "keyformer",
    .family = AB_FAMILY_KV,
    .summary = "h2o-like accumulation of Gumbel-softmax scores (tau 1 -> 2); C/2 key tokens + "
               "C/2 recent",
    .citation = "Keyformer, Adnan et al. 2024, arXiv 2403.09054",
    .cost_words = "4d per kept cell: min(C, v) per decode query; noise, temperature and the "
                  "score softmax in ops_other",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_PREP_FREE,
    .cost = kf_cost,
    .run = kf_run,
    .prepare = kf_prepare,
    .prepare_free = ab_kv_accum_prepare_free,
};
