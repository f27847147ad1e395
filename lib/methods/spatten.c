/* spatten.c - `spatten`: SpAtten's cascade token pruning applied to the KV cache, after Wang et
 * al., "SpAtten: Efficient Sparse Attention Architecture with Cascade Token and Head Pruning",
 * HPCA 2021, arXiv 2012.09852.
 *
 * Rule. A token's importance is its cumulative attention probability: summed over the heads of
 * the layer and accumulated over every query that has attended to it,
 *     s_j = sum_e sum_{t read j} A^e_tj.
 * Tokens with the lowest s_j are pruned and stay pruned ("cascade": what a step removes, no later
 * step reads again). One cache per layer, shared by its heads. Protocol (method.h, decode):
 * - end of context: s_j = sum_e sum_{t < q0} A^e_tj over the exact causal attention of the
 *   context rows (the probabilities the model computed in prefill);
 * - decode step i (in order): the new keys [v_{i-1}, v_i) enter; if the cache would then hold
 *   more than C keys, the cached keys with the lowest s are pruned first (at the first step this
 *   trims the context to its top C - 1); every head of the layer reads the same min(C, v_i) keys
 *   (softmax renormalised over them) and their probabilities are added to s.
 * So the cache only loses keys, never regains one: a pruned key is never read again.
 *
 * "Cascade across layers" in the paper means a token pruned in layer l is absent from every
 * later layer. A method here sees one (layer, head) problem and its layer (p->layer): the
 * cascade becomes one across decode steps (the set only shrinks, apart from new tokens), with
 * the importance summed over the layer's heads (AB_METHOD_LAYER), not accumulated over the
 * earlier layers' probabilities (which a problem cannot see).
 *
 * Knob: C, the cache size in tokens (kept tokens), integer in [1, n]. C >= v for every decode
 * query keeps everything: dense.
 * Cost (analytic: the cache is always full once it has filled, as tova's):
 *     cells        = sum over decode queries of min(C, v_i) (the same on every head)
 *     flops_select = 0. Convention (h2o's, tova's): the scores are the attention probabilities
 *                    the model computes anyway, so the pruning's extra work is additions and
 *                    comparisons: ops_other
 *     ops_other    = one add per context cell (this head's share of s) + per decode cell one
 *                    add (s update) and one compare (the pruning pass) + one exp per cell.
 * Run time: each head's run recomputes the layer's decode schedule (every head's logits for
 * the decode queries); the layer's context sums s (O(heads q0 n_ctx d)) are kept per thread for
 * the last layer seen (memo.h), since every head and budget of a layer ask for the same.
 * Deviations:
 * - the pruning ratio is the knob's fixed cache size instead of the paper's per-layer ratios;
 * - SpAtten also prunes heads (cascade head pruning) and uses progressive quantisation: not
 *   modelled (heads are the engine's unit here);
 * - under GQA the sum runs over all the layer's query heads and the positions are shared;
 * - ties go to the earlier key. */
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/memo.h"
#include "methods/method.h"

enum { SP_CHUNK_MAX = 64, SP_CHUNK_FLOATS = 1 << 21 };

static int64_t sp_budget(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

static double sp_ledger(const struct ab_problem *p, int64_t C, struct ab_ledger *led)
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
    led->ops_other += ab_kv_ctx_cells(p) + 2.0 * cells;
    return cells;
}

static int spatten_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "spatten");
    if (rc) return rc;
    sp_ledger(p, sp_budget(knob), led);
    return AB_OK;
}

/* The layer's context sums s (n_ctx) per thread for the last layer (file comment). */
static _Thread_local struct {
    struct ab_memo_key key;
    int64_t n_ctx, n_heads;
    double *s;
} sp_memo;

/* s[j] = sum_e sum_{t < q0} A^e_tj of p's layer (n_ctx). buf is (chunk, n_ctx) scratch. */
static void sp_context(const struct ab_problem *p, int64_t n_ctx, int64_t chunk, float *buf,
                       double *s)
{
    const struct ab_head *layer = p->layer ? p->layer : p->h;
    int64_t n_heads = p->layer ? p->n_layer_heads : 1;
    struct ab_memo_key key = ab_memo_layer_key_of(p);
    if (sp_memo.s && ab_memo_key_eq(&key, &sp_memo.key) && sp_memo.n_ctx == n_ctx &&
        sp_memo.n_heads == n_heads) {
        memcpy(s, sp_memo.s, sizeof(double) * (size_t)n_ctx);
        return;
    }
    for (int64_t j = 0; j < n_ctx; j++) s[j] = 0;
    for (int64_t e = 0; e < n_heads; e++)
        for (int64_t t0 = 0; t0 < p->q0; t0 += chunk) {
            int64_t nr = AB_MIN(chunk, p->q0 - t0);
            int64_t nk = AB_MIN(ab_head_visible(&layer[e], t0 + nr - 1), n_ctx);
            kv_logits(&layer[e], t0, nr, nk, buf, nk);
            for (int64_t t = 0; t < nr; t++) {
                float *row = buf + t * nk;
                int64_t nv = AB_MIN(ab_head_visible(&layer[e], t0 + t), nk);
                kv_softmax(row, nv);
                for (int64_t j = 0; j < nv; j++) s[j] += row[j];
            }
        }
    double *keep = realloc(sp_memo.s, sizeof(double) * (size_t)AB_MAX(n_ctx, 1));
    if (keep) {
        memcpy(keep, s, sizeof(double) * (size_t)n_ctx);
        sp_memo.s = keep, sp_memo.key = key, sp_memo.n_ctx = n_ctx, sp_memo.n_heads = n_heads;
    }
}

/* The layer's pruning schedule at cache size C (file comment); sets what each evaluated row read
 * in keep, adds the cells read to *cells. Scratch O(n) plus heads x chunk x n logits. */
static int sp_schedule(const struct ab_problem *p, int64_t C, const void *arg, struct ab_keep *keep,
                       double *cells)
{
    (void)arg;
    const struct ab_head *h = p->h;
    const struct ab_head *layer = p->layer ? p->layer : p->h;
    int64_t n_heads = p->layer ? p->n_layer_heads : 1, n = AB_MAX(h->n_k, 1), n_ctx = kv_n_ctx(p);
    int64_t chunk = AB_MAX(1, AB_MIN(SP_CHUNK_MAX, SP_CHUNK_FLOATS / (n_heads * n)));
    int rc = AB_OK;
    double *s = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));     /* (n) cumulative scores */
    int64_t *set = ab_alloc(ab_size_mul((size_t)n, sizeof(int64_t))); /* (n) cache, ascending */
    float *pr = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));
    float *sc = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));
    float *tmp = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));
    uint8_t *mark = ab_alloc((size_t)n);
    float *buf = ab_alloc(ab_size_mul((size_t)(n_heads * chunk), (size_t)n * sizeof(float)));
    /* buf: (n_heads, chunk, nk) logits of a block of queries for every head (and the context's
     * (chunk, n_ctx) blocks) */
    if (!s || !set || !pr || !sc || !tmp || !mark || !buf) {
        rc = ab_fail(AB_E_NOMEM, "spatten: cannot allocate scratch for %lld heads x %lld keys",
                     (long long)n_heads, (long long)n);
        goto done;
    }
    sp_context(p, n_ctx, chunk, buf, s);
    int64_t n_set = n_ctx, prev = n_ctx, r = 0;
    for (int64_t j = 0; j < n_ctx; j++) set[j] = j;
    for (int64_t i0 = p->q0; i0 < h->n_q; i0 += chunk) {
        int64_t nr = AB_MIN(chunk, h->n_q - i0), nk = ab_head_visible(h, i0 + nr - 1);
        for (int64_t e = 0; e < n_heads; e++)
            kv_logits(&layer[e], i0, nr, nk, buf + e * nr * nk, nk);
        for (int64_t i = i0; i < i0 + nr; i++) {
            int64_t v = ab_head_visible(h, i), n_new = v - prev;
            if (n_new >= C) {
                n_set = 0;
                for (int64_t j = v - C; j < v; j++) set[n_set++] = j;
            } else {
                if (n_set > C - n_new) { /* prune the lowest cumulative scores */
                    for (int64_t t = 0; t < n_set; t++) sc[t] = (float)s[set[t]];
                    memset(mark, 0, (size_t)n_set);
                    kv_top_k(sc, n_set, C - n_new, mark, tmp);
                    int64_t kept = 0;
                    for (int64_t t = 0; t < n_set; t++)
                        if (mark[t]) set[kept++] = set[t];
                    n_set = kept;
                }
                for (int64_t j = prev; j < v; j++) set[n_set++] = j;
            }
            for (int64_t e = 0; e < n_heads; e++) {
                const float *row = buf + e * nr * nk + (i - i0) * nk;
                for (int64_t t = 0; t < n_set; t++) pr[t] = row[set[t]];
                kv_softmax(pr, n_set);
                for (int64_t t = 0; t < n_set; t++) s[set[t]] += pr[t];
            }
            *cells += (double)n_set;
            if (r < p->n_rows && p->rows[r] == i) kv_keep_list(keep, r++, set, n_set);
            prev = v;
        }
    }
done:
    ab_free(s);
    ab_free(set);
    ab_free(pr);
    ab_free(sc);
    ab_free(tmp);
    ab_free(mark);
    ab_free(buf);
    return rc;
}

static int spatten_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                       struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "spatten");
    if (rc) return rc;
    int64_t C = sp_budget(knob);
    double expected = sp_ledger(p, C, led);
    return kv_run_schedule(p, C, expected, sp_schedule, NULL, o, keep);
}

const struct ab_method ab_method_spatten = {
    .name = "spatten",
    .family = AB_FAMILY_KV,
    .summary = "one cache per layer: prune the lowest cumulative attention (summed over heads "
               "and queries); pruned tokens stay pruned",
    .citation = "SpAtten, Wang et al. 2021, arXiv 2012.09852",
    .cost_words = "4d per kept cell: min(C, v) per decode query; scores are the model's own "
                  "probabilities (sums and pruning in ops_other)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_LAYER,
    .cost = spatten_cost,
    .run = spatten_run,
};
