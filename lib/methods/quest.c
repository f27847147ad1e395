/* quest.c - `quest`: query-aware page selection over the KV cache. Tang et al., "Quest:
 * Query-Aware Sparsity for Efficient Long-Context LLM Inference", ICML 2024, arXiv 2406.10774:
 * page criticality estimated from per-page min / max keys, then the top-K pages are read.
 *
 * The cache (context and decode keys alike) is cut into pages of P = 16 consecutive keys, page t
 * holding keys [tP, tP + P). Each page stores the per-channel minimum m_c and maximum M_c of its
 * keys. For a decode query q the page's criticality
 *     U = sum_c max(q_c m_c, q_c M_c)   >=   max_{k in page} q.k
 * (channel by channel q_c k_c lies between q_c m_c and q_c M_c). Each decode query reads the top
 * T - 1 full pages by U plus its current page (the last, possibly partial one, always read) and
 * attends exactly over them, softmax renormalised over what it read. Quest selects per query
 * from that query: this query-aware selection is its design, so it is the one kv row that looks
 * at the decode queries (architecture.md allows it as a labelled variant; it compresses nothing,
 * the whole cache stays resident).
 *
 * Knob: K, tokens read per decode query, integer in [1, n]; pages read T = ceil(K / P), the
 * current page included (forced, counted against K). K >= n reads everything: dense.
 * Cost (analytic: every page but the current one is full, so cells do not depend on the data),
 * over the decode queries i with v visible keys, c = floor((v - 1) / P) full pages before the
 * current one:
 *     cells_i      = v                          if T > c
 *                  = (v - cP) + (T - 1) P       otherwise
 *     flops_select = 4 d c per query (the two products q_c m_c, q_c M_c per channel, counted as
 *                    multiply-adds: methods.md's 4 (n/P) d per step), at every K
 *     ops_other    = (d + 1) c per query (a max per channel, one top-k pass over the pages)
 *                  + 2 d per cached key (the min / max update when the key is written)
 *                  + one exp per cell (ab_ledger_attend).
 * Deviations:
 * - pages are scored at every K, also when all pages would fit in T (Quest would skip the
 *   ranking): the cost then stays monotone in K;
 * - T is rounded up so that K = n is dense whatever n mod P;
 * - the paper leaves the first two layers dense; which layers run a method is the engine's
 *   choice, not the method's;
 * - page ties go to the earlier page. */
#include "core/ab.h"
#include "methods/kv.h"
#include "methods/method.h"

enum { QUEST_P = 16 };

void ab_quest_page_minmax(const float *k, int64_t n_keys, int64_t d, int64_t page, float *kmin,
                          float *kmax)
{
    for (int64_t t = 0; t < n_keys / page; t++) {
        float *mn = kmin + t * d, *mx = kmax + t * d;
        const float *kt = k + t * page * d; /* (page, d) */
        for (int64_t c = 0; c < d; c++) mn[c] = mx[c] = kt[c];
        for (int64_t j = 1; j < page; j++)
            for (int64_t c = 0; c < d; c++) {
                float x = kt[j * d + c];
                mn[c] = x < mn[c] ? x : mn[c];
                mx[c] = x > mx[c] ? x : mx[c];
            }
    }
}

double ab_quest_page_bound(const float *q, const float *kmin, const float *kmax, int64_t d)
{
    double u = 0;
    for (int64_t c = 0; c < d; c++) {
        double a = (double)q[c] * kmin[c], b = (double)q[c] * kmax[c];
        u += a > b ? a : b;
    }
    return u;
}

/* Pages read per query at knob K: ceil(K / P), at least the current page. */
static int64_t quest_pages(double knob)
{
    int64_t k = knob < 1 ? 1 : (int64_t)knob;
    return (k + QUEST_P - 1) / QUEST_P;
}

/* Keys read by a query that sees v keys and reads T pages (the current page included). */
static int64_t quest_row_cells(int64_t v, int64_t T)
{
    if (v <= 0) return 0;
    int64_t c = (v - 1) / QUEST_P; /* full pages before the current one */
    return T > c ? v : (v - c * QUEST_P) + (T - 1) * QUEST_P;
}

/* Ledger of the decode phase at knob K (see the file comment). Pure: O(m log n). */
static int quest_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "quest");
    if (rc) return rc;
    const struct ab_head *h = p->h;
    int64_t T = quest_pages(knob), d = h->d, v = 0;
    double cells = 0, scored = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        v = ab_head_visible(h, i);
        cells += (double)quest_row_cells(v, T);
        scored += (double)(v > 0 ? (v - 1) / QUEST_P : 0);
    }
    ab_ledger_attend(led, h, cells);
    led->flops_select += 4.0 * (double)d * scored;
    led->ops_other += (double)(d + 1) * scored + 2.0 * (double)d * (double)v;
    return AB_OK;
}

/* Fills the ledger, then selects pages for each evaluated row and (with o) attends over them.
 * Work beyond the ledger: O(n d) for the page metadata, O((v/P) d) per evaluated row for the
 * bounds, plus the attention over the kept keys. */
static int quest_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    int rc = quest_cost(p, knob, led);
    if (rc || p->n_rows == 0) return rc;
    const struct ab_head *h = p->h;
    int64_t d = h->d, T = quest_pages(knob);
    int64_t n_full = ab_head_visible(h, p->rows[p->n_rows - 1]) / QUEST_P; /* rows ascend */
    size_t np = (size_t)AB_MAX(n_full, 1);
    float *kmin = ab_alloc(ab_size_mul(np * (size_t)d, sizeof(float))); /* (n_full, d) */
    float *kmax = ab_alloc(ab_size_mul(np * (size_t)d, sizeof(float))); /* (n_full, d) */
    float *score = ab_alloc(ab_size_mul(np, sizeof(float)));            /* (n_full) bounds */
    float *tmp = ab_alloc(ab_size_mul(np, sizeof(float)));              /* (n_full) */
    uint8_t *mark = ab_alloc(np);                                       /* (n_full) chosen */
    if (!kmin || !kmax || !score || !tmp || !mark) {
        rc = ab_fail(AB_E_NOMEM, "quest: cannot allocate page metadata for %lld pages",
                     (long long)n_full);
        goto done;
    }
    ab_quest_page_minmax(h->k, n_full * QUEST_P, d, QUEST_P, kmin, kmax);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], v = ab_head_visible(h, i);
        if (v == 0) continue;
        int64_t c = (v - 1) / QUEST_P; /* current page; pages 0 .. c-1 are full */
        if (T > c) {
            ab_keep_range(keep, r, 0, v);
            continue;
        }
        for (int64_t t = 0; t < c; t++)
            score[t] = (float)ab_quest_page_bound(h->q + i * d, kmin + t * d, kmax + t * d, d);
        memset(mark, 0, (size_t)c);
        kv_top_k(score, c, T - 1, mark, tmp);
        for (int64_t t = 0; t < c; t++)
            if (mark[t]) ab_keep_range(keep, r, t * QUEST_P, (t + 1) * QUEST_P);
        ab_keep_range(keep, r, c * QUEST_P, v);
    }
    if (o) rc = ab_attend_kept(p, keep, o, NULL);
done:
    ab_free(kmin);
    ab_free(kmax);
    ab_free(score);
    ab_free(tmp);
    ab_free(mark);
    return rc;
}

const struct ab_method ab_method_quest = {
    .name = "quest",
    .family = AB_FAMILY_KV,
    .summary = "query-aware pages of 16: read the top K/P pages by min/max key bound + current",
    .citation = "Quest, Tang et al. 2024, arXiv 2406.10774",
    .cost_words = "4d per kept cell (K per query, current page included) + page scoring 4d per "
                  "full page per query",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "K", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = quest_cost,
    .run = quest_run,
};
