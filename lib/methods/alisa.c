/* alisa.c - `alisa`: ALISA's Sparse Window Attention (SWA), after Zhao et al., "ALISA:
 * Accelerating Large Language Model Inference via Sparsity-Aware KV Caching", ISCA 2024,
 * arXiv 2403.17312.
 *
 * Rule. Each decode step i (v keys visible) reads C keys: the R = C - floor(C / 2) most recent
 * ones (locally static: [v - R, v), the new token's own key included) and the G = floor(C / 2)
 * globally most important keys older than that window (globally dynamic), importance being the
 * attention weight accumulated over the window's queries, the R steps before this one:
 *     acc_j(i) = sum_{t in [i - R, i)} A_tj
 * (context rows: their exact causal attention, the probabilities prefill computed; decode rows:
 * their probabilities over what they read, softmax renormalised over it). The global part is
 * chosen anew at every step among all keys older than the window, from weights that forget
 * queries older than R steps: a key dropped at one step comes back when the recent queries
 * attend to it again (SWA picks what each step attends to; ALISA's system keeps the rest of the
 * KV in the GPU / CPU hierarchy or recomputes it). That is the difference from h2o
 * (arXiv 2306.14048), whose weights never forget and whose eviction is final: with weights
 * summed over every past query a dropped key, its weight frozen, could never overtake the kept
 * ones (their weights only grow), so a re-selection would equal h2o's greedy eviction.
 *
 * Knob: C, keys read per decode step (the KV sparsity's budget), integer in [1, n]; recent
 * R = C - floor(C/2), global G = floor(C/2) (half and half; R >= 1 so the current token is always
 * read). C >= v reads every key: dense.
 * Cost (analytic: min(C, v_i) keys per step whatever the data):
 *     cells        = sum over decode queries of min(C, v_i)
 *     flops_select = 0. Convention (h2o's): the weights are the attention probabilities the model
 *                    computes anyway, so SWA's extra work is additions and comparisons: ops_other
 *     ops_other    = one add per cell of the context rows in the first window (the window sum
 *                    at the end of the context) + per decode step: one compare per key older than
 *                    the window (the top-G pass, max(0, v_i - R)), one add per cell it read (its
 *                    weights join the sum) and one subtraction per cell of the row leaving the
 *                    window (row i - R: its visible keys, or the cells it read if a decode row)
 *                  + one exp per cell.
 * Deviations:
 * - the split between local and global tokens is half and half here, and the window of queries
 *   whose weights are summed is the R recent steps (this file's reading of the paper's SWA);
 *   the knob is the total C;
 * - ALISA's three-phase scheduling, caching versus recomputation and KV compression (INT8) are
 *   system choices that change where the kept KV lives, not what is read: not modelled;
 * - the weights are per query head, even under GQA; ties go to the earlier key;
 * - run() recomputes the probabilities of a context row leaving the window instead of keeping
 *   R rows of them (memory O(n + cells) instead of O(R n)); the ledger counts the subtraction
 *   only (the probabilities are the model's own). */
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/method.h"

enum { AL_CHUNK_MAX = 64, AL_CHUNK_FLOATS = 1 << 21 };

static int64_t al_budget(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}
static int64_t al_chunk(int64_t n)
{
    return AB_MAX(1, AB_MIN(AL_CHUNK_MAX, AL_CHUNK_FLOATS / n));
}

/* Cells read by decode step t at budget C. */
static int64_t al_cells(const struct ab_problem *p, int64_t t, int64_t C)
{
    return AB_MIN(C, ab_head_visible(p->h, t));
}

static double al_ledger(const struct ab_problem *p, int64_t C, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t R = C - C / 2;
    double cells = 0, ops = 0;
    for (int64_t t = AB_MAX(0, p->q0 - R); t < p->q0; t++) ops += (double)ab_head_visible(h, t);
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i), c = al_cells(p, i, C), out = i - R;
        cells += (double)c;
        ops += (double)AB_MAX(0, v - R) + (double)c;
        if (out >= 0) ops += (double)(out < p->q0 ? ab_head_visible(h, out) : al_cells(p, out, C));
    }
    ab_ledger_attend(led, h, cells);
    led->ops_other += ops;
    return cells;
}

static int alisa_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "alisa");
    if (rc) return rc;
    al_ledger(p, al_budget(knob), led);
    return AB_OK;
}

/* acc[j] += sign * A_tj, the exact causal attention of context row t. pr is (n) scratch. */
static void al_context_row(const struct ab_head *h, int64_t t, int64_t n_ctx, double sign,
                           float *pr, double *acc)
{
    int64_t nv = AB_MIN(ab_head_visible(h, t), n_ctx);
    kv_logits(h, t, 1, nv, pr, nv);
    kv_softmax(pr, nv);
    for (int64_t j = 0; j < nv; j++) acc[j] += sign * (double)pr[j];
}

/* The step schedule at budget C (file comment): sets what each evaluated row read in keep, adds
 * the cells read to *cells. Scratch O(n + cells of the phase) plus a block of at most 64 x n
 * logits. */
static int al_schedule(const struct ab_problem *p, int64_t C, const void *arg, struct ab_keep *keep,
                       double *cells)
{
    (void)arg;
    const struct ab_head *h = p->h;
    int64_t n = AB_MAX(h->n_k, 1), chunk = al_chunk(n), G = C / 2, R = C - G, n_ctx = kv_n_ctx(p);
    int64_t m = h->n_q - p->q0, total = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) total += al_cells(p, i, C);
    int rc = AB_OK;
    double *acc = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));         /* (n) window sums */
    float *s = ab_alloc(ab_size_mul((size_t)(chunk * n), sizeof(float)));   /* (chunk, n) */
    int64_t *off = ab_alloc(ab_size_mul((size_t)(m + 1), sizeof(int64_t))); /* (m + 1) */
    int64_t *read = ab_alloc(ab_size_mul((size_t)AB_MAX(total, 1), sizeof(int64_t)));
    float *prob = ab_alloc(ab_size_mul((size_t)AB_MAX(total, 1), sizeof(float)));
    /* read, prob: (total) the keys each decode step read and its probabilities, step t's at
     * [off[t - q0], off[t - q0 + 1]) */
    float *pr = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));
    float *sc = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));
    float *tmp = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));
    uint8_t *mark = ab_alloc((size_t)n);
    if (!acc || !s || !off || !read || !prob || !pr || !sc || !tmp || !mark) {
        rc = ab_fail(AB_E_NOMEM, "alisa: cannot allocate scratch for %lld keys", (long long)n);
        goto done;
    }
    for (int64_t t = AB_MAX(0, p->q0 - R); t < p->q0; t++) al_context_row(h, t, n_ctx, 1, pr, acc);
    int64_t r = 0;
    for (int64_t i0 = p->q0; i0 < h->n_q; i0 += chunk) {
        int64_t nr = AB_MIN(chunk, h->n_q - i0), nk = ab_head_visible(h, i0 + nr - 1);
        kv_logits(h, i0, nr, nk, s, nk);
        for (int64_t i = i0; i < i0 + nr; i++) {
            int64_t v = ab_head_visible(h, i), lo = AB_MAX(0, v - R), a = off[i - p->q0], b = a;
            if (lo > 0) { /* the global part: top G by window weight among the older keys */
                for (int64_t j = 0; j < lo; j++) sc[j] = (float)acc[j];
                memset(mark, 0, (size_t)lo);
                kv_top_k(sc, lo, G, mark, tmp);
                for (int64_t j = 0; j < lo; j++)
                    if (mark[j]) read[b++] = j;
            }
            for (int64_t j = lo; j < v; j++) read[b++] = j;
            off[i - p->q0 + 1] = b;
            const float *row = s + (i - i0) * nk;
            for (int64_t t = a; t < b; t++) prob[t] = row[read[t]];
            kv_softmax(prob + a, b - a);
            /* the window moves: step i joins, row i - R leaves */
            for (int64_t t = a; t < b; t++) acc[read[t]] += (double)prob[t];
            int64_t out = i - R;
            if (out >= p->q0) {
                for (int64_t t = off[out - p->q0]; t < off[out - p->q0 + 1]; t++)
                    acc[read[t]] -= (double)prob[t];
            } else if (out >= 0) {
                al_context_row(h, out, n_ctx, -1, pr, acc);
            }
            *cells += (double)(b - a);
            if (r < p->n_rows && p->rows[r] == i) kv_keep_list(keep, r++, read + a, b - a);
        }
    }
done:
    ab_free(acc);
    ab_free(s);
    ab_free(off);
    ab_free(read);
    ab_free(prob);
    ab_free(pr);
    ab_free(sc);
    ab_free(tmp);
    ab_free(mark);
    return rc;
}

static int alisa_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "alisa");
    if (rc) return rc;
    int64_t C = al_budget(knob);
    double expected = al_ledger(p, C, led);
    return kv_run_schedule(p, C, expected, al_schedule, NULL, o, keep);
}

const struct ab_method ab_method_alisa = {
    .name = "alisa",
    .family = AB_FAMILY_KV,
    .summary = "sparse window attention: C/2 recent + C/2 older keys the last C/2 queries "
               "attended to most, re-chosen each step",
    .citation = "ALISA, Zhao et al. 2024, arXiv 2403.17312",
    .cost_words = "4d per kept cell: min(C, v) per decode query; weights are the model's own "
                  "probabilities (window sums and the per-step top-G pass in ops_other)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = alisa_cost,
    .run = alisa_run,
};
