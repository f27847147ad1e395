/* dense.c - `dense`: exact softmax attention through the fast blocked float path (lib/attn).
 * The baseline every budget is measured against: it keeps every allowed cell, so its
 * flop_ratio is 1 and its recall 1. */
#include <string.h>

#include "core/ab.h"
#include "methods/method.h"

static int dense_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    (void)knob;
    ab_ledger_attend(led, p->h, ab_problem_allowed_cells(p));
    return AB_OK;
}

static int dense_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    dense_cost(p, knob, led);
    for (int64_t r = 0; r < p->n_rows; r++)
        ab_keep_range(keep, r, 0, ab_head_visible(h, p->rows[r]));
    if (!o) return AB_OK;
    /* the phase's query rows q0..n-1 as one head instance */
    struct ab_head sub = *h;
    sub.n_q = h->n_q - p->q0;
    sub.q = h->q + p->q0 * h->d;
    sub.q_pos = h->q_pos + p->q0;
    float *all = ab_alloc(ab_size_mul((size_t)(sub.n_q * h->d_v), sizeof(float))); /* (n_q, d_v) */
    if (!all) return ab_fail(AB_E_NOMEM, "dense: cannot allocate the output");
    int rc = ab_attn_fast(&sub, all, NULL);
    /* the fast path computes every allowed cell; the evaluated rows' share is what O holds */
    for (int64_t r = 0; r < p->n_rows; r++)
        ab_attend_counter_add((double)ab_head_visible(h, p->rows[r]));
    for (int64_t r = 0; !rc && r < p->n_rows; r++)
        memcpy(o + r * h->d_v, all + (p->rows[r] - p->q0) * h->d_v, (size_t)h->d_v * sizeof(float));
    ab_free(all);
    return rc;
}

const struct ab_method ab_method_dense = {
    .name = "dense",
    .family = AB_FAMILY_DENSE,
    .summary = "exact softmax attention, fast blocked float path",
    .citation = "Vaswani et al. 2017, arXiv 1706.03762; blocked online softmax: Dao et al. 2022, "
                "arXiv 2205.14135",
    .cost_words = "4d per allowed cell",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL | AB_MASKS_FULL,
    .knob = {.name = NULL},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = dense_cost,
    .run = dense_run,
};
