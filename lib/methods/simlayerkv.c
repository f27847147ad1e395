/* simlayerkv.c - `simlayerkv`: layer-level cache trimming of "lazy" layers: Zhang et al.,
 * "SimLayerKV: A Simple Framework for Layer-Level KV Cache Reduction", arXiv 2410.13846
 * (kvpress's SimLayerKVPress).
 *
 * Rule, once at the end of the context (decode protocol, method.h), per layer:
 *     mass = mean over every query head of the layer and over the last L = 32 context queries t
 *            of sum_{j in S} softmax_j(scale q_t.k_j),   S = [0, 4) U [n_ctx - R, n_ctx)
 *            (the initial tokens and a recent window of R = min(1024, max(1, n_ctx / 8)) keys)
 *     the layer is lazy when mass > delta = 0.9 (kvpress's recommended value for Llama-3);
 *     a lazy layer's heads keep the 4 initial and the w most recent context keys; the other
 *     layers keep the whole context. The decode queries read what was kept plus every decode
 *     key up to themselves.
 * The knob is w, the recent window of lazy layers (integer tokens in [1, n], default 1024, the
 * paper's): the laziness test does not depend on it (its window R is fixed), so the cost is
 * monotone in w; w >= n_ctx - 4 keeps everything (dense). A non-lazy layer costs dense at every
 * w: its budgets below 1 are infeasible, which is the method's own answer for that layer. (The
 * threshold delta would also be monotone, but per head it only switches between two costs.)
 * Cost (exact, from the prepared laziness; what run() counts), k_ctx = min(n_ctx, 4 + w) for a
 * lazy layer, n_ctx otherwise:
 *     cells        = sum over decode queries i of k_ctx + (v_i - n_ctx), 4d per cell
 *     flops_once   = 2 L n_ctx d: this head's share of the laziness test (the layer's is the sum
 *                    over its heads), one-off, counted at every w
 *     flops_select = 0 per step
 *     ops_other    = L n_ctx exps + L |S| sums + 1 compare + 1 exp per kept cell.
 * Reads every head of the layer (AB_METHOD_LAYER); the layer's mass is prepare()'s state.
 * Deviations:
 * - the paper measures laziness with the same recent window it keeps (1024 on contexts of
 *   several thousand tokens); here the test's window R scales with the context (n_ctx / 8, at
 *   most 1024) and is separate from the kept window w, so that the cost is monotone in w;
 * - L = 32 last context queries (kvpress's n_last = 1 matches the paper's decode variant; the
 *   prefill variant looks at the last prompt tokens): a less noisy average on one sequence;
 * - kvpress keeps n_recent - n_last recent tokens, and skips compression below
 *   4 + n_recent + n_last tokens; here the window is w and short contexts are tested as well. */
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/kv_window.h"
#include "methods/method.h"

enum { SIM_INIT = 4, SIM_LAST = 32, SIM_RECENT_MAX = 1024 };
static const double SIM_DELTA = 0.9;

struct sim_geom {
    int64_t n_ctx, last, recent; /* context keys, test queries L, test window R */
};

static struct sim_geom sim_geom_of(const struct ab_problem *p)
{
    struct sim_geom g = {.n_ctx = kv_n_ctx(p), .last = AB_MIN(SIM_LAST, p->q0)};
    g.recent = AB_MIN(SIM_RECENT_MAX, AB_MAX(1, g.n_ctx / 8));
    return g;
}

struct sim_prep {
    double mass; /* the layer's mean mass on S */
};

int ab_simlayerkv_mass(const struct ab_problem *p, double *mass)
{
    struct sim_geom g = sim_geom_of(p);
    const struct ab_head *layer = p->layer ? p->layer : p->h;
    int64_t n_heads = p->layer ? p->n_layer_heads : 1, n_ctx = g.n_ctx;
    *mass = 1;
    if (g.last == 0 || n_ctx == 0) return AB_OK;
    float *s = ab_alloc(ab_size_mul((size_t)(g.last * n_ctx), sizeof(float))); /* (L, n_ctx) */
    if (!s)
        return ab_fail(AB_E_NOMEM, "simlayerkv: cannot allocate %lld x %lld logits",
                       (long long)g.last, (long long)n_ctx);
    double total = 0;
    int64_t t0 = p->q0 - g.last;
    for (int64_t e = 0; e < n_heads; e++) {
        const struct ab_head *h = &layer[e];
        kv_logits(h, t0, g.last, n_ctx, s, n_ctx);
        for (int64_t t = 0; t < g.last; t++) {
            float *a = s + t * n_ctx; /* (n_ctx) row t0 + t */
            int64_t nv = AB_MIN(ab_head_visible(h, t0 + t), n_ctx);
            kv_softmax(a, nv);
            int64_t r0 = AB_MAX(SIM_INIT, n_ctx - g.recent); /* S without double counting */
            double m = 0;
            for (int64_t j = 0; j < AB_MIN(SIM_INIT, nv); j++) m += a[j];
            for (int64_t j = r0; j < nv; j++) m += a[j];
            total += m;
        }
    }
    *mass = total / (double)(n_heads * g.last);
    ab_free(s);
    return AB_OK;
}

static void sim_prepare_free(void *state)
{
    free(state);
}

static int sim_prepare(const struct ab_problem *p, void **state)
{
    struct sim_prep *st = calloc(1, sizeof *st);
    if (!st) return ab_fail(AB_E_NOMEM, "simlayerkv: cannot allocate its state");
    int rc = ab_simlayerkv_mass(p, &st->mass);
    if (rc) {
        free(st);
        return rc;
    }
    *state = st;
    return AB_OK;
}

static int64_t sim_window(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

/* Whether p's layer is lazy: from p->prep, or computed here (a problem without its state). */
static int sim_lazy(const struct ab_problem *p, int *lazy)
{
    double mass;
    if (p->prep) {
        mass = ((const struct sim_prep *)p->prep)->mass;
    } else {
        int rc = ab_simlayerkv_mass(p, &mass);
        if (rc) return rc;
    }
    *lazy = mass > SIM_DELTA;
    return AB_OK;
}

/* The ledger at window w given the layer's laziness (file comment). */
static void sim_ledger(const struct ab_problem *p, int lazy, int64_t w, struct ab_ledger *led)
{
    struct sim_geom g = sim_geom_of(p);
    int64_t k_ctx = lazy ? AB_MIN(g.n_ctx, SIM_INIT + w) : g.n_ctx;
    ab_ledger_attend(led, p->h, ab_kv_ctx_cells_kept(p, g.n_ctx, (double)k_ctx));
    double L = (double)g.last, n_ctx = (double)g.n_ctx;
    led->flops_once += 2.0 * L * n_ctx * (double)p->h->d;
    led->ops_other += L * n_ctx + L * (double)AB_MIN(g.n_ctx, SIM_INIT + g.recent) + 1;
}

static int sim_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "simlayerkv"), lazy = 0;
    if (!rc) rc = sim_lazy(p, &lazy);
    if (rc) return rc;
    sim_ledger(p, lazy, sim_window(knob), led);
    return AB_OK;
}

static int sim_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                   struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "simlayerkv"), lazy = 0;
    if (!rc) rc = sim_lazy(p, &lazy);
    if (rc) return rc;
    int64_t w = sim_window(knob), n_ctx = kv_n_ctx(p);
    sim_ledger(p, lazy, w, led);
    uint8_t *ctx = ab_alloc((size_t)AB_MAX(n_ctx, 1)); /* (n_ctx) kept */
    if (!ctx)
        return ab_fail(AB_E_NOMEM, "simlayerkv: cannot allocate %lld marks", (long long)n_ctx);
    if (!lazy || SIM_INIT + w >= n_ctx) {
        memset(ctx, 1, (size_t)n_ctx);
    } else {
        memset(ctx, 0, (size_t)n_ctx);
        memset(ctx, 1, SIM_INIT);
        memset(ctx + n_ctx - w, 1, (size_t)w);
    }
    rc = ab_kv_ctx_emit(p, n_ctx, ctx, o, keep);
    ab_free(ctx);
    return rc;
}

const struct ab_method ab_method_simlayerkv = {
    .name = "simlayerkv",
    .family = AB_FAMILY_KV,
    .summary = "lazy layers (last queries' mass on initial + recent tokens > 0.9) keep 4 initial "
               "+ w recent keys; other layers keep the full cache",
    .citation = "SimLayerKV, Zhang et al. 2024, A Simple Framework for Layer-Level KV Cache "
                "Reduction, arXiv 2410.13846",
    .cost_words = "4d per kept cell: min(n_ctx, 4 + w) (lazy layer) or n_ctx context keys + decode "
                  "keys per decode query; laziness test 2 L n_ctx d once per head (L = 32)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_LAYER,
    .cost = sim_cost,
    .run = sim_run,
    .prepare = sim_prepare,
    .prepare_free = sim_prepare_free,
};
