/* snapkv.c - prompt compression from an observation window, three rows:
 * - `snapkv`: Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation",
 *   arXiv 2404.14469: the last W = 64 context queries (the observation window) vote for the
 *   prefix keys; votes are smoothed by an average pool of kernel 5; each head keeps the top
 *   C - W prefix keys plus the window's own keys (the window counts against C);
 * - `ada-snapkv`: Feng et al., "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget
 *   Allocation for Efficient LLM Inference", arXiv 2407.11550, its adaptive allocation applied
 *   to SnapKV: the same scores, but the layer's budget (n_kv_heads x C) is shared: every kv head
 *   keeps a floor of alpha = 0.2 of its even share, the rest goes to the highest scores of the
 *   whole layer, so heads with flat attention get more and peaked heads less.
 * - `pyramidkv`: Cai et al., "PyramidKV: Dynamic KV Cache Compression based on Pyramidal
 *   Information Funneling", arXiv 2406.02069: SnapKV's selection with a per-layer capacity that
 *   decreases linearly with depth at an equal total. The knob C is the mean capacity per head
 *   over the layers; the part above the window, C - W, is spread as an arithmetic sequence from
 *   (C - W)(2 - 1/beta) at layer 0 down to (C - W)/beta at the last layer (beta = 20), each
 *   layer's capacity floored to an integer. A model-level method (AB_METHOD_MODEL): its budget is
 *   fitted on the whole workload's cost, so early layers may exceed the target and late ones
 *   fall under it, as the method intends.
 *
 * All three decide once, at the end of the context, from context rows only (decode protocol,
 * method.h); the m decode queries then read the kept context keys plus every decode key up to
 * themselves. The scores of head h (window rows t in [q0 - W, q0), prefix keys j < n_ctx - W):
 *     A_tj    = softmax_j(scale q_t.k_j) over the keys row t sees
 *     a_j     = sum_t A_tj (snapkv)          or  max_t A_tj (ada-snapkv, methods.md)
 *     score_j = (a_{j-2} + ... + a_{j+2}) / 5, a = 0 outside the prefix (zero-padded avg pool)
 * ada-snapkv takes the maximum of score_j over the query heads of a kv head (the group).
 *
 * Knob: C, context keys kept per head, integer in [1, n]. C >= n_ctx keeps the whole context:
 * dense. C <= W keeps the last C context keys (the window is forced and counts against C).
 * Cost, with n_ctx context keys, W = min(64, q0), n_pre = n_ctx - W, k_ctx kept context keys:
 *     cells        = sum over decode queries i of k_ctx + (v_i - n_ctx)
 *                    (snapkv: k_ctx = min(C, n_ctx), analytic; ada-snapkv: data-dependent)
 *     flops_once   = 2 W n_ctx d, one-off: the window's logits, computed once at the end of
 *                    prefill and amortised over the decode horizon G (architecture.md), counted
 *                    at every C so the cost stays monotone; ada-snapkv counts this head's own
 *                    window (the layer's total is the sum over its heads)
 *     flops_select = 0 per step: the decode queries read the kept cache, no scoring
 *     ops_other    = W n_ctx exps + W n_pre window sum (or max) + 5 n_pre pool + n_pre top-k
 *                    (+ n_pre for ada-snapkv's share of the layer-wide top-k) + 1 exp per cell.
 * Deviations:
 * - C below W keeps the last C context keys (SnapKV assumes a capacity above its window);
 * - snapkv selects per query head, even under GQA (each query head ranks its kv head's keys
 *   on its own); the group-shared option of methods.md is a TODO. ada-snapkv selects per kv
 *   head (scores maxed over the group), its layer budget is n_kv_heads x C;
 * - ada-snapkv's floor is floor(alpha (C - W)) prefix keys per kv head: alpha applies to the
 *   part of C the forced window does not take; its pool is snapkv's average pool of 5;
 * - ties go to the earlier key (and for ada-snapkv, the lower kv head);
 * - pyramidkv: a workload of one layer gets C; capacities are floored, so the layers' total
 *   can fall a few tokens short of L x C. */
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/memo.h"
#include "methods/method.h"

enum { SNAP_W = 64, SNAP_KERNEL = 5 };
static const double ADA_ALPHA = 0.2;

/* The shape of a decode problem as SnapKV sees it: n_ctx context keys, the observation window
 * of w queries [q0 - w, q0) and of its wk keys (the last context keys), the ranked prefix
 * [0, n_pre). */
struct snap_geom {
    int64_t n_ctx, w, wk, n_pre;
};

static struct snap_geom snap_geom_of(const struct ab_problem *p)
{
    struct snap_geom g = {.n_ctx = kv_n_ctx(p), .w = AB_MIN(SNAP_W, p->q0)};
    g.wk = AB_MIN(g.w, g.n_ctx);
    g.n_pre = g.n_ctx - g.wk;
    return g;
}

/* SnapKV's prefix scores of head h (file comment): score (n_pre). s is (w, n_ctx) scratch,
 * agg (n_pre) scratch. use_max: max over the window instead of the sum. One sgemm of
 * (w, d) x (d, n_ctx), w softmax rows, O(n_pre) pooling. */
static void snap_scores(const struct ab_head *h, int64_t q0, const struct snap_geom *g,
                        int use_max, float *s, float *agg, float *score)
{
    int64_t n_ctx = g->n_ctx, n_pre = g->n_pre, half = SNAP_KERNEL / 2;
    kv_logits(h, q0 - g->w, g->w, n_ctx, s, n_ctx);
    memset(agg, 0, (size_t)n_pre * sizeof(float));
    for (int64_t t = 0; t < g->w; t++) {
        float *a = s + t * n_ctx; /* (n_ctx) row t of the window */
        int64_t nv = AB_MIN(ab_head_visible(h, q0 - g->w + t), n_ctx), np = AB_MIN(nv, n_pre);
        kv_softmax(a, nv);
        if (use_max)
            for (int64_t j = 0; j < np; j++) agg[j] = a[j] > agg[j] ? a[j] : agg[j];
        else
            for (int64_t j = 0; j < np; j++) agg[j] += a[j];
    }
    for (int64_t j = 0; j < n_pre; j++) {
        float sum = 0;
        for (int64_t u = AB_MAX(0, j - half); u <= AB_MIN(n_pre - 1, j + half); u++) sum += agg[u];
        score[j] = sum / (float)SNAP_KERNEL;
    }
}

/* The ledger of the phase when every head keeps k_ctx context keys (file comment). extra_ops:
 * ada-snapkv's share of the layer-wide selection. */
static void snap_ledger(const struct ab_problem *p, const struct snap_geom *g, double k_ctx,
                        double extra_ops, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    double cells = 0;
    for (int64_t i = p->q0; i < h->n_q; i++)
        cells += k_ctx + (double)AB_MAX(0, ab_head_visible(h, i) - g->n_ctx);
    ab_ledger_attend(led, h, cells);
    double w = (double)g->w, n_ctx = (double)g->n_ctx, n_pre = (double)g->n_pre;
    led->flops_once += 2.0 * w * n_ctx * (double)h->d;
    led->ops_other += w * n_ctx + w * n_pre + (double)SNAP_KERNEL * n_pre + n_pre + extra_ops;
}

/* The keep rows of the decode phase: context keys marked in ctx (n_ctx) plus, for each
 * evaluated row, the decode keys [n_ctx, v). Then O if asked. */
static int snap_emit(const struct ab_problem *p, const struct snap_geom *g, const uint8_t *ctx,
                     float *o, struct ab_keep *keep)
{
    const struct ab_head *h = p->h;
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t v = ab_head_visible(h, p->rows[r]);
        for (int64_t j = 0; j < AB_MIN(v, g->n_ctx); j++)
            if (ctx[j]) ab_keep_set(keep, r, j);
        ab_keep_range(keep, r, g->n_ctx, v);
    }
    return o ? ab_attend_kept(p, keep, o, NULL) : AB_OK;
}

static int64_t snap_budget(double knob) { return knob < 0 ? 0 : (int64_t)knob; }

static int snapkv_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "snapkv");
    if (rc) return rc;
    struct snap_geom g = snap_geom_of(p);
    snap_ledger(p, &g, (double)AB_MIN(snap_budget(knob), g.n_ctx), 0, led);
    return AB_OK;
}

/* snapkv: the ledger (analytic), the selection (one window of this head) and, with o, the
 * attention. Scratch O(W n_ctx). */
static int snapkv_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                      struct ab_ledger *led)
{
    int rc = snapkv_cost(p, knob, led);
    if (rc) return rc;
    struct snap_geom g = snap_geom_of(p);
    int64_t C = snap_budget(knob), n_ctx = g.n_ctx;
    size_t nc = (size_t)AB_MAX(n_ctx, 1);
    uint8_t *ctx = ab_alloc(nc);                                              /* (n_ctx) kept */
    float *s = ab_alloc(ab_size_mul((size_t)AB_MAX(g.w, 1) * nc, sizeof(float))); /* (w, n_ctx) */
    float *agg = ab_alloc(ab_size_mul(nc, sizeof(float)));                    /* (n_pre) */
    float *score = ab_alloc(ab_size_mul(nc, sizeof(float)));                  /* (n_pre) */
    float *tmp = ab_alloc(ab_size_mul(nc, sizeof(float)));                    /* (n_pre) */
    if (!ctx || !s || !agg || !score || !tmp) {
        rc = ab_fail(AB_E_NOMEM, "snapkv: cannot allocate scratch for %lld context keys",
                     (long long)n_ctx);
        goto done;
    }
    if (C >= n_ctx) {
        memset(ctx, 1, (size_t)n_ctx);
    } else if (C <= g.wk) {
        memset(ctx + n_ctx - C, 1, (size_t)C); /* the most recent C keys of the window */
    } else {
        snap_scores(p->h, p->q0, &g, 0, s, agg, score);
        memset(ctx + g.n_pre, 1, (size_t)g.wk);
        kv_top_k(score, g.n_pre, C - g.wk, ctx, tmp);
    }
    rc = snap_emit(p, &g, ctx, o, keep);
done:
    ab_free(ctx);
    ab_free(s);
    ab_free(agg);
    ab_free(score);
    ab_free(tmp);
    return rc;
}

/* ada-snapkv: the layer's allocation, then this head's ledger, keep and O. The ledger is
 * data-dependent (how many keys this head's kv head won), so even o == NULL runs the scoring
 * of every head of the layer: (n_layer_heads) sgemms of (W, d) x (d, n_ctx) plus a top-k over
 * n_kv_heads x n_pre scores. Scratch O(n_kv_heads n_pre + W n_ctx). */
/* Per kv head u of the layer: all[u][j] = max over its query heads of score_j (n_units, n_pre).
 * Kept per thread for the last layer: every head of a layer, every budget and every step of
 * the solver's bisection ask for the same scores (the ledger counts them in every run:
 * snap_ledger; the memo saves wall time only). */
static _Thread_local struct {
    struct ab_memo_key key;
    int64_t n_units, group, n_pre, w;
    float *all;
} ada_memo;

static void layer_scores(const struct ab_problem *p, const struct snap_geom *g,
                         const struct ab_head *layer, int64_t n_units, int64_t group, float *s,
                         float *agg, float *score, float *all)
{
    int64_t n_pre = g->n_pre;
    size_t bytes = sizeof(float) * (size_t)(n_units * n_pre);
    struct ab_memo_key key = ab_memo_layer_key_of(p);
    if (ada_memo.all && ab_memo_key_eq(&key, &ada_memo.key) && ada_memo.n_units == n_units &&
        ada_memo.group == group && ada_memo.n_pre == n_pre && ada_memo.w == g->w) {
        memcpy(all, ada_memo.all, bytes);
        return;
    }
    for (int64_t u = 0; u < n_units; u++) {
        float *au = all + u * n_pre;
        for (int64_t j = 0; j < n_pre; j++) au[j] = 0;
        for (int64_t e = 0; e < group; e++) {
            snap_scores(&layer[u * group + e], p->q0, g, 1, s, agg, score);
            for (int64_t j = 0; j < n_pre; j++) au[j] = score[j] > au[j] ? score[j] : au[j];
        }
    }
    float *keep = realloc(ada_memo.all, bytes);
    if (keep) { /* without memory for the memo the scores are simply not kept */
        memcpy(keep, all, bytes);
        ada_memo.all = keep, ada_memo.key = key, ada_memo.n_units = n_units;
        ada_memo.group = group, ada_memo.n_pre = n_pre, ada_memo.w = g->w;
    }
}

static int ada_snapkv_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                          struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "ada-snapkv");
    if (rc) return rc;
    struct snap_geom g = snap_geom_of(p);
    const struct ab_head *layer = p->layer ? p->layer : p->h;
    int64_t n_heads = p->layer ? p->n_layer_heads : 1, self = p->layer ? p->self : 0;
    int64_t group = AB_MAX(1, AB_MIN(p->group, n_heads)), n_units = n_heads / group;
    int64_t unit = AB_MIN(self / group, n_units - 1), C = snap_budget(knob), n_ctx = g.n_ctx;
    int64_t n_pre = g.n_pre;
    size_t nc = (size_t)AB_MAX(n_ctx, 1), nu = (size_t)n_units;
    uint8_t *ctx = ab_alloc(nc);                                     /* (n_ctx) this head keeps */
    uint8_t *mark = ab_alloc(ab_size_mul(nu, nc));                   /* (n_units, n_pre) */
    float *all = ab_alloc(ab_size_mul(nu * nc, sizeof(float)));      /* (n_units, n_pre) scores */
    float *tmp = ab_alloc(ab_size_mul(nu * nc, sizeof(float)));      /* (n_units * n_pre) */
    float *s = ab_alloc(ab_size_mul((size_t)AB_MAX(g.w, 1) * nc, sizeof(float))); /* (w, n_ctx) */
    float *agg = ab_alloc(ab_size_mul(nc, sizeof(float)));           /* (n_pre) */
    float *score = ab_alloc(ab_size_mul(nc, sizeof(float)));         /* (n_pre) */
    if (!ctx || !mark || !all || !tmp || !s || !agg || !score) {
        rc = ab_fail(AB_E_NOMEM, "ada-snapkv: cannot allocate scratch for %lld heads x %lld keys",
                     (long long)n_units, (long long)n_ctx);
        goto done;
    }
    if (C >= n_ctx) {
        memset(ctx, 1, (size_t)n_ctx);
    } else if (C <= g.wk) {
        memset(ctx + n_ctx - C, 1, (size_t)C);
    } else {
        layer_scores(p, &g, layer, n_units, group, s, agg, score, all);
        /* B = C - W prefix keys per kv head on average; each keeps its top floor(alpha B),
         * then the layer's remaining n_units (B - floor) go to the highest scores left */
        int64_t B = C - g.wk, floor_b = (int64_t)(ADA_ALPHA * (double)B);
        for (int64_t u = 0; u < n_units; u++) {
            float *au = all + u * n_pre;
            uint8_t *mu = mark + u * n_pre;
            kv_top_k(au, n_pre, floor_b, mu, tmp);
            for (int64_t j = 0; j < n_pre; j++)
                if (mu[j]) au[j] = -INFINITY; /* already kept: out of the global race */
        }
        kv_top_k(all, n_units * n_pre, n_units * (B - floor_b), mark, tmp);
        memcpy(ctx, mark + unit * n_pre, (size_t)n_pre);
        memset(ctx + n_pre, 1, (size_t)g.wk);
    }
    int64_t k_ctx = 0;
    for (int64_t j = 0; j < n_ctx; j++) k_ctx += ctx[j];
    snap_ledger(p, &g, (double)k_ctx, (double)n_pre, led);
    rc = snap_emit(p, &g, ctx, o, keep);
done:
    ab_free(ctx);
    ab_free(mark);
    ab_free(all);
    ab_free(tmp);
    ab_free(s);
    ab_free(agg);
    ab_free(score);
    return rc;
}

/* pyramidkv: this layer's capacity for mean capacity C (file comment). */
enum { PYRAMID_BETA = 20 };
static double pyramid_capacity(const struct ab_problem *p, double knob)
{
    struct snap_geom g = snap_geom_of(p);
    double C = (double)snap_budget(knob), L = (double)p->n_layer;
    if (p->n_layer <= 1 || C <= (double)g.wk) return C;
    double pre = C - (double)g.wk;
    double top = pre * (2.0 - 1.0 / PYRAMID_BETA), bottom = pre / PYRAMID_BETA;
    double step = (top - bottom) / (L - 1);
    return (double)g.wk + floor(top - step * (double)p->layer_index);
}

static int pyramidkv_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    return snapkv_cost(p, pyramid_capacity(p, knob), led);
}

static int pyramidkv_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                         struct ab_ledger *led)
{
    return snapkv_run(p, pyramid_capacity(p, knob), o, keep, led);
}

const struct ab_method ab_method_snapkv = {
    .name = "snapkv",
    .family = AB_FAMILY_KV,
    .summary = "keep the context keys the last 64 context queries vote for (pooled) + window",
    .citation = "SnapKV, Li et al. 2024, arXiv 2404.14469",
    .cost_words = "4d per kept cell: min(C, n_ctx) + decode keys per query; one-off: 2 W n_ctx d "
                  "(W = 64)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = snapkv_cost,
    .run = snapkv_run,
};

const struct ab_method ab_method_ada_snapkv = {
    .name = "ada-snapkv",
    .family = AB_FAMILY_KV,
    .summary = "SnapKV scores, layer budget shared across heads: floor 0.2 C, rest to top scores",
    .citation = "Ada-KV, Feng et al. 2024, arXiv 2407.11550; SnapKV, arXiv 2404.14469",
    .cost_words = "4d per kept cell: this head's data-dependent share of n_kv_heads x C + decode "
                  "keys; one-off: 2 W n_ctx d per head (W = 64)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens/head"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_LAYER,
    .cost = NULL,
    .run = ada_snapkv_run,
};

const struct ab_method ab_method_pyramidkv = {
    .name = "pyramidkv",
    .family = AB_FAMILY_KV,
    .summary = "SnapKV with per-layer capacities decreasing linearly with depth (beta 20)",
    .citation = "PyramidKV, Cai et al. 2024, arXiv 2406.02069; SnapKV, arXiv 2404.14469",
    .cost_words = "as snapkv at this layer's capacity; the mean capacity C is fitted on the "
                  "whole workload's cost (model-level budget)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens/head (mean)"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_MODEL,
    .cost = pyramidkv_cost,
    .run = pyramidkv_run,
};
