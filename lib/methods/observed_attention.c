/* observed_attention.c - `observed-attention`: keep the C context keys that received the most
 * attention, on average, from the context's own queries (kvpress's ObservedAttentionPress, the
 * one-shot form of H2O's accumulated score: Zhang et al., "H2O: Heavy-Hitter Oracle for
 * Efficient Generative Inference of Large Language Models", arXiv 2306.14048).
 *
 * Rule, once at the end of the context (decode protocol, method.h), per head:
 *     A_tj    = softmax_j(scale q_t.k_j) over the keys context row t sees (the full prefill
 *               attention matrix, as eager attention returns it)
 *     score_j = (sum_{t < q0 sees j} A_tj) / #{t < q0 : t sees j}   (mean over the queries that
 *               can attend to j: under the causal mask q0 - j of them)
 * keep the top min(C, n_ctx) context keys by score (ties to the earlier key); the m decode
 * queries read them plus every decode key up to themselves. Nothing is forced (no sinks, no
 * window): the score alone decides.
 * Knob: C, context keys kept per head, integer in [1, n]; C >= n_ctx keeps the whole context
 * (dense).
 * Cost (analytic, what run() counts), k_ctx = min(C, n_ctx):
 *     cells        = sum over decode queries i of k_ctx + (v_i - n_ctx), 4d per cell
 *     flops_once   = 0: the scores are the model's own prefill probabilities (eager attention
 *                    computes them anyway), as h2o counts its accumulated scores
 *     flops_select = 0 per step
 *     ops_other    = one addition per context cell (the column sums) + n_ctx divisions +
 *                    n_ctx top-k + 1 exp per kept cell.
 * The scores are prepare()'s state (the column means do not depend on C) and are the model's
 * own probabilities: the row is flagged AB_METHOD_PREP_FREE, as h2o.
 * Deviations from kvpress:
 * - scores are per query head, even under GQA (kvpress averages them over the query heads of a
 *   kv head and keeps one set per kv head), as snapkv here;
 * - probabilities come from kv_softmax in float, summed in double (ranking only); ties go to
 *   the earlier key. */
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/kv_window.h"
#include "methods/method.h"

/* Rows per block of context logits: a block of at most 2^20 floats. */
static int64_t obs_chunk(int64_t n)
{
    return AB_MAX(1, AB_MIN(64, ((int64_t)1 << 20) / AB_MAX(n, 1)));
}

struct obs_prep {
    int64_t n_ctx;
    float *score; /* (n_ctx) mean attention each context key received */
};

static void obs_prepare_free(void *state)
{
    struct obs_prep *st = state;
    if (!st) return;
    ab_free(st->score);
    free(st);
}

/* The column means of the context's attention matrix (file comment): blocks of rows by sgemm,
 * each row's softmax, sums and counts in double. O(q0 n_ctx d). */
static int obs_prepare(const struct ab_problem *p, void **state)
{
    const struct ab_head *h = p->h;
    int64_t n_ctx = kv_n_ctx(p), chunk = obs_chunk(n_ctx);
    size_t nc = (size_t)AB_MAX(n_ctx, 1);
    struct obs_prep *st = calloc(1, sizeof *st);
    float *s = ab_alloc(ab_size_mul((size_t)chunk * nc, sizeof(float))); /* (chunk, n_ctx) */
    double *sum = ab_alloc(ab_size_mul(nc, sizeof(double)));             /* (n_ctx) */
    double *cnt = ab_alloc(ab_size_mul(nc + 1, sizeof(double)));         /* (n_ctx + 1) */
    if (st) st->score = ab_alloc(ab_size_mul(nc, sizeof(float)));
    int rc = AB_OK;
    if (!st || !st->score || !s || !sum || !cnt) {
        obs_prepare_free(st);
        rc = ab_fail(AB_E_NOMEM, "observed-attention: cannot allocate scores for %lld keys",
                     (long long)n_ctx);
        goto done;
    }
    st->n_ctx = n_ctx;
    memset(sum, 0, nc * sizeof(double));
    memset(cnt, 0, (nc + 1) * sizeof(double));
    for (int64_t t0 = 0; t0 < p->q0; t0 += chunk) {
        int64_t nr = AB_MIN(chunk, p->q0 - t0);
        int64_t nk = AB_MIN(ab_head_visible(h, t0 + nr - 1), n_ctx);
        kv_logits(h, t0, nr, nk, s, nk);
        for (int64_t t = 0; t < nr; t++) {
            float *a = s + t * nk; /* (nk) row t0 + t */
            int64_t nv = AB_MIN(ab_head_visible(h, t0 + t), nk);
            kv_softmax(a, nv);
            for (int64_t j = 0; j < nv; j++) sum[j] += a[j];
            cnt[nv] += 1; /* row t0 + t sees keys [0, nv): a difference array */
        }
    }
    /* #rows that see key j = number of rows with nv > j: suffix sums of cnt */
    double seen = 0;
    for (int64_t j = n_ctx - 1; j >= 0; j--) {
        seen += cnt[j + 1];
        st->score[j] = seen > 0 ? (float)(sum[j] / seen) : 0.0f;
    }
    *state = st;
done:
    ab_free(s), ab_free(sum), ab_free(cnt);
    return rc;
}

static int64_t obs_budget(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

static int obs_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "observed-attention");
    if (rc) return rc;
    int64_t n_ctx = kv_n_ctx(p), k_ctx = AB_MIN(obs_budget(knob), n_ctx);
    ab_ledger_attend(led, p->h, ab_kv_ctx_cells_kept(p, n_ctx, (double)k_ctx));
    led->ops_other += ab_kv_ctx_cells(p) + 2.0 * (double)n_ctx;
    return AB_OK;
}

/* The ledger (analytic), the top C of the prepared scores (computed here when p has no prepared
 * state), the keep rows and, with o, the attention. Scratch O(n_ctx). */
static int obs_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                   struct ab_ledger *led)
{
    int rc = obs_cost(p, knob, led);
    if (rc) return rc;
    int64_t n_ctx = kv_n_ctx(p), C = obs_budget(knob);
    size_t nc = (size_t)AB_MAX(n_ctx, 1);
    void *own = NULL;
    const struct obs_prep *st = p->prep;
    if (!st && C < n_ctx) {
        if ((rc = obs_prepare(p, &own))) return rc;
        st = own;
    }
    uint8_t *ctx = ab_alloc(nc);                           /* (n_ctx) kept */
    float *tmp = ab_alloc(ab_size_mul(nc, sizeof(float))); /* (n_ctx) */
    if (!ctx || !tmp) {
        rc = ab_fail(AB_E_NOMEM, "observed-attention: cannot allocate scratch for %lld keys",
                     (long long)n_ctx);
        goto done;
    }
    memset(ctx, 0, nc);
    if (C >= n_ctx)
        memset(ctx, 1, (size_t)n_ctx);
    else
        kv_top_k(st->score, n_ctx, C, ctx, tmp);
    rc = ab_kv_ctx_emit(p, n_ctx, ctx, o, keep);
done:
    obs_prepare_free(own);
    ab_free(ctx), ab_free(tmp);
    return rc;
}

const struct ab_method ab_method_observed_attention = {
    .name = "observed-attention",
    .family = AB_FAMILY_KV,
    .summary = "keep the top C context keys by mean attention received from the context queries",
    .citation = "kvpress ObservedAttentionPress; H2O, Zhang et al. 2023, arXiv 2306.14048",
    .cost_words = "4d per kept cell: min(C, n_ctx) + decode keys per decode query; scores are the "
                  "model's own prefill probabilities (additions only, in ops_other)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_PREP_FREE,
    .cost = obs_cost,
    .run = obs_run,
    .prepare = obs_prepare,
    .prepare_free = obs_prepare_free,
};
