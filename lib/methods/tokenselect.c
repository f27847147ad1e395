/* tokenselect.c - `tokenselect`: dynamic token-level KV selection with head soft voting, after
 * Wu et al., "TokenSelect: Efficient Long-Context Inference and Length Extrapolation for LLMs
 * via Dynamic Token-Level KV Cache Selection", arXiv 2411.02886.
 *
 * Rule. At each decode step every query head e of the layer rates the keys it sees by its own
 * per-head criticality, normalised per head so that no head dominates the vote:
 *     a^e_j = softmax_j(scale q^e . k^e_j)       over the v keys the step sees
 *     vote_j = sum_e a^e_j                       (soft vote of all the layer's query heads)
 * and every head of the layer reads the same top K keys by vote (ties to the earlier key),
 * attending exactly over them (softmax renormalised over what it read). A key two heads both
 * rate well beats one a single head rates highest: that is the point of the soft vote against a
 * max or a hard (top-k per head) vote. The step selects from its own queries, as quest does
 * (query-aware selection is the method's design); nothing is evicted, the cache stays resident.
 *
 * Knob: K, tokens read per decode query, integer in [1, n]. K >= v reads everything: dense.
 * Cost (analytic: cells do not depend on the data), per decode query i with v_i keys:
 *     cells_i      = min(K, v_i)
 *     flops_select = 2 d v_i per query: this head's criticality logits q . k_j (its share of the
 *                    layer's vote; the layer's total is the sum over its heads), at every K
 *     ops_other    = 3 v_i per query (an exp and a vote add per key, a top-K pass) + one exp per
 *                    cell.
 * Deviations:
 * - the vote runs over all query heads of the layer (p->layer): under GQA each head's logits use
 *   its kv head's keys, and the selected positions are shared by the layer;
 * - no initial or local tokens are forced: the K keys are the top K of the vote alone; the paper's
 *   Selection Cache (reusing the last selection when consecutive queries are similar) and its
 *   paged kernels are efficiency devices, not modelled: every step selects anew;
 * - the selection is exact (every key scored), as in the paper. */
#include <cblas.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/kv_select.h"
#include "methods/method.h"

static int64_t ts_budget(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

static int tokenselect_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "tokenselect");
    if (rc) return rc;
    const struct ab_head *h = p->h;
    int64_t K = ts_budget(knob);
    double cells = 0, seen = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i);
        cells += (double)AB_MIN(K, v);
        seen += (double)v;
    }
    ab_ledger_attend(led, h, cells);
    led->flops_select += 2.0 * (double)h->d * seen;
    led->ops_other += 3.0 * seen;
    return AB_OK;
}

/* vote (v) of query row i over its v keys, summed over the layer's heads (file comment). pr is
 * (v) scratch. One sgemv per head. */
void ab_tokenselect_vote(const struct ab_problem *p, int64_t i, int64_t v, float *vote, float *pr)
{
    const struct ab_head *layer = p->layer ? p->layer : p->h;
    int64_t n_heads = p->layer ? p->n_layer_heads : 1;
    for (int64_t j = 0; j < v; j++) vote[j] = 0;
    for (int64_t e = 0; e < n_heads; e++) {
        const struct ab_head *he = &layer[e];
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)v, (int)he->d, (float)he->scale, he->k,
                    (int)he->d, he->q + i * he->d, 1, 0.0f, pr, 1);
        kv_softmax(pr, v);
        for (int64_t j = 0; j < v; j++) vote[j] += pr[j];
    }
}

/* The ledger, then per evaluated row the layer's vote and its top K, and with o the attention.
 * Work beyond the ledger: O(n_heads v d) per evaluated row. */
static int tokenselect_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                           struct ab_ledger *led)
{
    int rc = tokenselect_cost(p, knob, led);
    if (rc || p->n_rows == 0) return rc;
    const struct ab_head *h = p->h;
    int64_t K = ts_budget(knob), n = AB_MAX(h->n_k, 1);
    float *vote = ab_alloc(ab_size_mul((size_t)n, sizeof(float))); /* (n) */
    float *pr = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));   /* (n) */
    uint8_t *mark = ab_alloc((size_t)n);                           /* (n) */
    if (!vote || !pr || !mark) {
        rc =
            ab_fail(AB_E_NOMEM, "tokenselect: cannot allocate scratch for %lld keys", (long long)n);
        goto done;
    }
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], v = ab_head_visible(h, i);
        if (K >= v) {
            ab_keep_range(keep, r, 0, v);
            continue;
        }
        ab_tokenselect_vote(p, i, v, vote, pr);
        memset(mark, 0, (size_t)v);
        kv_top_k(vote, v, K, mark, pr);
        for (int64_t j = 0; j < v; j++)
            if (mark[j]) ab_keep_set(keep, r, j);
    }
    if (o) rc = ab_attend_kept(p, keep, o, NULL);
done:
    ab_free(vote);
    ab_free(pr);
    ab_free(mark);
    return rc;
}

const struct ab_method ab_method_tokenselect = {
    .name = "tokenselect",
    .family = AB_FAMILY_KV,
    .summary = "per step: per-head softmax of q . k, soft vote summed over the layer's heads, "
               "every head reads the top K",
    .citation = "TokenSelect, Wu et al. 2024, arXiv 2411.02886",
    .cost_words = "4d per kept cell: min(K, v) per decode query + criticality 2 d v per query "
                  "(this head's share of the layer vote)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "K", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_LAYER,
    .cost = tokenselect_cost,
    .run = tokenselect_run,
};
