/* tova.c - `tova`: Token Omission Via Attention, Oren et al., "Transformers are Multi-State
 * RNNs", arXiv 2401.06104: keep the tokens with the highest attention of the current query,
 * averaged over the heads of the layer; one cache per layer.
 *
 * The cache of a layer is one set of keys shared by all its heads. Protocol (method.h, decode):
 * - end of context: the last context query (row q0 - 1, which sees the whole context) gives
 *   a_j = (1 / n_heads) sum_heads A_j, its exact attention averaged over the layer's heads;
 * - decode step i (in order): the new keys [v_{i-1}, v_i) (the new token) enter the cache; if
 *   the cache would then exceed C, the lowest keys by the latest a are evicted first (at the
 *   first step this trims the context to its top C - 1). Every head's query reads the same
 *   min(C, v_i) keys (softmax renormalised over them) and their head-averaged probabilities
 *   become the new a for the next eviction.
 * The scores a of a step are known only after the query read its cache: evicting at the start
 * of the next step with them is TOVA's "attend, then drop the lowest", with the budget counted
 * when a query reads (the new token inside it).
 *
 * Knob: C, the cache size in tokens, integer in [1, n]. C >= v for every decode query keeps
 * everything: dense.
 * Cost (analytic: the cache is always full once it has filled):
 *     cells        = sum over decode queries of min(C, v_i) (the same for every head)
 *     flops_select = 0. Convention: the scores are the attention probabilities the model
 *                    computes anyway (the last context query's in prefill, each decode query's
 *                    own), so TOVA's extra work is the head average and the eviction: ops_other
 *     ops_other    = n_ctx adds (this head's share of the context average) + per decode cell
 *                    one add (this head's share of the average) and one compare (the eviction
 *                    scan) + one exp per cell. Monotone in C through the cells.
 * Run time: each head's call recomputes the layer's schedule (every head's logits for the last
 * context query and for the decode queries, sgemms over blocks of decode queries), O(n_heads
 * (n_ctx + m n) d) and O(n_heads m C) exps; the set it derives is identical on every head.
 * Deviations:
 * - the average is over the layer's query heads (under GQA too: the set is the layer's, each
 *   query head reads those positions of its kv head's keys);
 * - the budget counts the new token when the query reads (TOVA reads C + 1 and then drops one);
 * - ties go to the earlier key. */

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/method.h"

enum { TOVA_CHUNK_MAX = 64, TOVA_CHUNK_FLOATS = 1 << 21 }; /* decode logits block: <= 8 MB */

/* The ledger of the phase at cache size C by counting the schedule's cache sizes; returns the
 * cells. O(m log n). */
static double tova_ledger(const struct ab_problem *p, int64_t C, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t n_ctx = kv_n_ctx(p), kept = n_ctx, prev = n_ctx;
    double cells = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i), n_new = v - prev;
        kept = n_new >= C ? C : AB_MIN(kept, C - n_new) + n_new;
        cells += (double)kept;
        prev = v;
    }
    ab_ledger_attend(led, h, cells);
    led->ops_other += (double)n_ctx + 2.0 * cells;
    return cells;
}

static int64_t tova_budget(double knob) { return knob < 1 ? 1 : (int64_t)knob; }

static int tova_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "tova");
    if (rc) return rc;
    tova_ledger(p, tova_budget(knob), led);
    return AB_OK;
}

/* The layer's schedule at cache size C (file comment); sets what each evaluated row read in
 * keep and returns the cells read over all decode queries in *cells. Scratch: O(n) per set and
 * n_heads x chunk x n logits (chunk chosen to stay under TOVA_CHUNK_FLOATS). */
static int tova_schedule(const struct ab_problem *p, int64_t C, const void *arg,
                         struct ab_keep *keep, double *cells)
{
    (void)arg;
    const struct ab_head *h = p->h;
    const struct ab_head *layer = p->layer ? p->layer : p->h;
    int64_t n_heads = p->layer ? p->n_layer_heads : 1, n = h->n_k, n_ctx = kv_n_ctx(p);
    int64_t chunk = AB_MAX(1, AB_MIN(TOVA_CHUNK_MAX, TOVA_CHUNK_FLOATS / (n_heads * n)));
    int rc = AB_OK;
    float *a = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));   /* (n) latest averaged scores */
    int64_t *set = ab_alloc(ab_size_mul((size_t)n, sizeof(int64_t))); /* (n) cache, ascending */
    float *pr = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));  /* (n) one head's probs */
    float *avg = ab_alloc(ab_size_mul((size_t)n, sizeof(float))); /* (n) head average */
    float *tmp = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));
    uint8_t *mark = ab_alloc((size_t)n);
    float *s = ab_alloc(ab_size_mul((size_t)(n_heads * chunk), (size_t)n * sizeof(float)));
    /* s: (n_heads, chunk, nk) decode logits of a block of queries for every head */
    if (!a || !set || !pr || !avg || !tmp || !mark || !s) {
        rc = ab_fail(AB_E_NOMEM, "tova: cannot allocate scratch for %lld heads x %lld keys",
                     (long long)n_heads, (long long)n);
        goto done;
    }
    /* end of context: a = the last context query's attention, averaged over the heads */
    for (int64_t e = 0; p->q0 > 0 && e < n_heads; e++) {
        kv_logits(&layer[e], p->q0 - 1, 1, n_ctx, pr, n_ctx);
        kv_softmax(pr, n_ctx);
        for (int64_t j = 0; j < n_ctx; j++) a[j] += pr[j] / (float)n_heads;
    }
    int64_t n_set = n_ctx, prev = n_ctx, r = 0;
    for (int64_t j = 0; j < n_ctx; j++) set[j] = j;
    for (int64_t i0 = p->q0; i0 < h->n_q; i0 += chunk) {
        int64_t nr = AB_MIN(chunk, h->n_q - i0), nk = ab_head_visible(h, i0 + nr - 1);
        for (int64_t e = 0; e < n_heads; e++)
            kv_logits(&layer[e], i0, nr, nk, s + e * nr * nk, nk);
        for (int64_t i = i0; i < i0 + nr; i++) {
            int64_t v = ab_head_visible(h, i), n_new = v - prev;
            if (n_new >= C) { /* the new keys alone fill the cache: keep the last C */
                n_set = 0;
                for (int64_t j = v - C; j < v; j++) set[n_set++] = j;
            } else {
                if (n_set > C - n_new) { /* evict the lowest by the latest scores */
                    for (int64_t t = 0; t < n_set; t++) avg[t] = a[set[t]];
                    for (int64_t t = 0; t < n_set; t++) mark[t] = 0;
                    kv_top_k(avg, n_set, C - n_new, mark, tmp);
                    int64_t kept = 0;
                    for (int64_t t = 0; t < n_set; t++)
                        if (mark[t]) set[kept++] = set[t];
                    n_set = kept;
                }
                for (int64_t j = prev; j < v; j++) set[n_set++] = j;
            }
            /* every head reads the set; a = their averaged probabilities over it */
            for (int64_t t = 0; t < n_set; t++) avg[t] = 0;
            for (int64_t e = 0; e < n_heads; e++) {
                const float *row = s + e * nr * nk + (i - i0) * nk;
                for (int64_t t = 0; t < n_set; t++) pr[t] = row[set[t]];
                kv_softmax(pr, n_set);
                for (int64_t t = 0; t < n_set; t++) avg[t] += pr[t];
            }
            for (int64_t t = 0; t < n_set; t++) a[set[t]] = avg[t] / (float)n_heads;
            *cells += (double)n_set;
            if (r < p->n_rows && p->rows[r] == i) kv_keep_list(keep, r++, set, n_set);
            prev = v;
        }
    }
done:
    ab_free(a);
    ab_free(set);
    ab_free(pr);
    ab_free(avg);
    ab_free(tmp);
    ab_free(mark);
    ab_free(s);
    return rc;
}

/* The ledger (analytic); with o or keep, the layer's schedule and this head's attention over
 * the shared set. */
static int tova_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                    struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "tova");
    if (rc) return rc;
    int64_t C = tova_budget(knob);
    double expected = tova_ledger(p, C, led);
    return kv_run_schedule(p, C, expected, tova_schedule, NULL, o, keep);
}

const struct ab_method ab_method_tova = {
    .name = "tova",
    .family = AB_FAMILY_KV,
    .summary = "one cache per layer: keep the C keys the current query's head-averaged "
               "attention ranks highest",
    .citation = "TOVA, Oren et al. 2024, arXiv 2401.06104",
    .cost_words = "4d per kept cell: min(C, v) per decode query; scores are the model's own "
                  "probabilities (head average and eviction in ops_other)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 512, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_LAYER,
    .cost = tova_cost,
    .run = tova_run,
};
