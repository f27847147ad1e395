/* criticalkv.c - `criticalkv`: SnapKV's selection refined by the output-perturbation view of
 * Feng et al., "Identify Critical KV Cache in LLM Inference from an Output Perturbation
 * Perspective", arXiv 2502.03805 (CriticalKV; kvpress's CriticalKVPress).
 *
 * The perturbation of a head's output when key j is dropped is bounded by its attention times
 * the norm of its projected value, A_j ||v_j W_o||_1 (the paper's section 3). The rule, once at
 * the end of the context (decode protocol, method.h), per head, with SnapKV's window scores
 * (kv_window.h: the last W = 64 context queries, summed softmax, average pool of 5):
 *     stage 1: the window's W keys plus the prefix keys of highest score_j, floor(C/2) keys in
 *              all (half the budget by attention alone);
 *     stage 2: the remaining C - floor(C/2) from the other prefix keys of highest
 *              (score_j + eps) ||v_j||_1, eps = 1e-4 (kvpress's).
 * Knob: C, context keys kept per head, integer in [1, n]; C >= n_ctx keeps the whole context
 * (dense); C <= W keeps the last C context keys (the window is forced and counts against C).
 * Cost (analytic, what run() counts), k_ctx = min(C, n_ctx), n_pre = n_ctx - W:
 *     cells        = sum over decode queries i of k_ctx + (v_i - n_ctx), 4d per cell
 *     flops_once   = 2 W n_ctx d (the window's logits, one-off), counted at every C as snapkv
 *     flops_select = 0 per step
 *     ops_other    = snapkv's (W n_ctx exps + W n_pre sums + 5 n_pre pooling + n_pre top-k)
 *                    + n_pre d_v (the L1 norms: additions) + n_pre products + n_pre (the second
 *                    top-k) + 1 exp per kept cell.
 * The scores and norms are prepare()'s state (kv_window.h; chunkkv shares it).
 * Deviations:
 * - the value norm is ||v_j||_1, not ||v_j W_o||_1: a workload holds no output projection W_o
 *   (for W_o proportional to an orthogonal matrix the two rank alike; in general they do not);
 * - the first stage's half of the budget includes SnapKV's forced window, as kvpress's merge of
 *   the two stages on top of SnapKV does (the window holds the largest scores there);
 * - scores are per query head, even under GQA (kvpress averages the norms over a kv head's
 *   query heads), as snapkv here; ties go to the earlier key. */
#include <string.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/kv_window.h"
#include "methods/method.h"

static const double CRIT_FIRST = 0.5, CRIT_EPS = 1e-4;

static int64_t crit_budget(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

static int crit_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "criticalkv");
    if (rc) return rc;
    struct kv_win g = kv_win_of(p);
    int64_t k_ctx = AB_MIN(crit_budget(knob), g.n_ctx);
    ab_ledger_attend(led, p->h, ab_kv_ctx_cells_kept(p, g.n_ctx, (double)k_ctx));
    ab_kv_win_ledger(p, &g, led);
    led->ops_other += (double)g.n_pre * (double)(p->h->d_v + 2);
    return AB_OK;
}

int ab_criticalkv_run(const struct ab_problem *p, double knob, double first_ratio, float *o,
                      struct ab_keep *keep, struct ab_ledger *led)
{
    int rc = crit_cost(p, knob, led);
    if (rc) return rc;
    struct kv_win g = kv_win_of(p);
    int64_t C = crit_budget(knob), n_ctx = g.n_ctx, n_pre = g.n_pre;
    size_t nc = (size_t)AB_MAX(n_ctx, 1);
    const struct kv_win_prep *st = NULL;
    struct kv_win_prep *own = NULL;
    uint8_t *ctx = ab_alloc(nc);                           /* (n_ctx) kept */
    float *s2 = ab_alloc(ab_size_mul(nc, sizeof(float)));  /* (n_pre) stage-2 scores */
    float *tmp = ab_alloc(ab_size_mul(nc, sizeof(float))); /* (n_pre) */
    if (!ctx || !s2 || !tmp) {
        rc = ab_fail(AB_E_NOMEM, "criticalkv: cannot allocate scratch for %lld keys",
                     (long long)n_ctx);
        goto done;
    }
    memset(ctx, 0, nc);
    if (C >= n_ctx) {
        memset(ctx, 1, (size_t)n_ctx);
    } else if (C <= g.wk) {
        memset(ctx + n_ctx - C, 1, (size_t)C); /* the most recent C keys of the window */
    } else {
        if ((rc = ab_kv_win_state(p, &st, &own))) goto done;
        memset(ctx + n_pre, 1, (size_t)g.wk);
        /* stage 1: the window and the best prefix keys by attention, floor(r C) in all */
        int64_t b1 = AB_MAX(0, AB_MIN((int64_t)(first_ratio * (double)C), C) - g.wk);
        kv_top_k(st->score, n_pre, b1, ctx, tmp);
        /* stage 2: the rest of the budget by the perturbation bound, among keys not yet kept */
        for (int64_t j = 0; j < n_pre; j++)
            s2[j] = ctx[j] ? -INFINITY : (st->score[j] + (float)CRIT_EPS) * st->vnorm[j];
        int64_t kept = 0;
        for (int64_t j = 0; j < n_pre; j++) kept += ctx[j];
        kv_top_k(s2, n_pre, C - g.wk - kept, ctx, tmp);
    }
    rc = ab_kv_ctx_emit(p, n_ctx, ctx, o, keep);
done:
    ab_kv_win_prepare_free(own);
    ab_free(ctx), ab_free(s2), ab_free(tmp);
    return rc;
}

static int crit_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                    struct ab_ledger *led)
{
    return ab_criticalkv_run(p, knob, CRIT_FIRST, o, keep, led);
}

const struct ab_method ab_method_criticalkv = {
    .name = "criticalkv",
    .family = AB_FAMILY_KV,
    .summary = "SnapKV scores, half of C by attention, the rest by attention x ||v||_1 "
               "(output-perturbation bound)",
    .citation = "CriticalKV, Feng et al. 2025, Identify Critical KV Cache in LLM Inference from "
                "an Output Perturbation Perspective, arXiv 2502.03805",
    .cost_words = "4d per kept cell: min(C, n_ctx) + decode keys per decode query; window logits "
                  "2 W n_ctx d once (amortised over the horizon); value norms n d_v additions",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = crit_cost,
    .run = crit_run,
    .prepare = ab_kv_win_prepare,
    .prepare_free = ab_kv_win_prepare_free,
};
