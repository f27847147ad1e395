/* lightning.c - `lightning`: decayed linear attention computed blockwise, the operator of
 * Lightning Attention-2 (Qin et al., "Lightning Attention-2: A Free Lunch for Handling Unlimited
 * Sequence Lengths in Large Language Models", arXiv 2401.04658, section 3, algorithm 1; decay as
 * in TransNormerLLM, arXiv 2307.14995). The rule, causal, with no softmax and no normaliser:
 *     o_t = sum_{s <= t} lambda_h^(t - s) scale (q_t . k_s) v_s
 * blockwise: inside a block of C rows a masked, decayed C x C product (intra), earlier blocks
 * through the state S = sum_s lambda^(c0 - 1 - s) k_s v_s^T (inter), decayed by lambda^C per
 * block. Decay convention: lambda_h = exp(-2^(-8 (h + 1) / H)) for query head h of the H heads
 * of the layer (ALiBi slopes used as log-decays; the same in every layer); scale = the head's
 * logit scale (1/sqrt d). Knob: block C, integer in [1, n] (default 64); cost grows with C.
 * FLOPs (methods.md): 4nCd + 4nd^2 (intra C x C blocks, state update and read; with d_v:
 * 2nC(d + d_v) + 4n d d_v); decode 4 d d_v per decode query (update and read of the d x d_v
 * state, whose bytes each decode query reads; C plays no part). ops_other: C decay weights per
 * row. It is an operator, not a softmax approximation: its rel_l2 against dense says how far
 * the operator is from softmax attention.
 * Deviations from the paper: no learned projections, no SiLU / normalisation on q, k (the
 * head's post-RoPE Q, K as given), no output normalisation; the decay is fixed by the convention
 * above, not learned; single precision. */
#include <math.h>

#include "core/ab.h"
#include "methods/kernel_linear.h"

extern const struct ab_method ab_method_lightning;

static int lightning_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int64_t c = (int64_t)knob;
    ab_klin_ledger(p, p->h->d, c, 0, 0.0, 0.0, led);
    if (p->phase == AB_PHASE_PREFILL)
        led->ops_other += (double)(p->h->n_q - p->q0) * (double)c;
    else
        led->ops_other += (double)(p->h->n_q - p->q0);
    return AB_OK;
}

/* -ln(lambda_h) = 2^(-8 (h + 1) / H) */
static double lightning_log_decay(const struct ab_problem *p)
{
    double hh = (double)AB_MAX(p->n_layer_heads, 1);
    return pow(2.0, -8.0 * (double)(p->self + 1) / hh);
}

static int lightning_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                         struct ab_ledger *led)
{
    (void)keep;
    int rc = ab_klin_check_mask(&ab_method_lightning, p);
    if (rc) return rc;
    int64_t c = (int64_t)knob;
    if (c < 1) return ab_fail(AB_E_USAGE, "lightning: block C = %lld (at least 1)", (long long)c);
    lightning_cost(p, knob, led);
    if (!o) return AB_OK;
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d;
    float *qs = ab_alloc(ab_size_mul((size_t)(n * d), sizeof(float))); /* (n, d) scale q */
    float *kd = ab_alloc(ab_size_mul((size_t)(n * d), sizeof(float))); /* (n, d) k / e^(g) */
    double *g = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));      /* (n) t (-ln lambda) */
    if (!qs || !kd || !g) {
        rc = ab_fail(AB_E_NOMEM, "lightning: cannot allocate scratch");
    } else {
        /* lambda^(t - s) = e^(g_s - g_t), g_t = t (-ln lambda); the engine takes k_s as given
         * (its own e^(g_s - g_t) factors carry the decay) */
        double ld = lightning_log_decay(p);
        for (int64_t t = 0; t < n; t++) g[t] = (double)t * ld;
        for (int64_t x = 0; x < n * d; x++) qs[x] = (float)(h->scale * h->q[x]), kd[x] = h->k[x];
        struct ab_klin k = {
            .qf = qs, .kf = kd, .g = g, .f = d, .chunk = c, .normalise = 0, .rate = ld};
        rc = ab_klin_run(p, &k, o);
    }
    ab_free(qs), ab_free(kd), ab_free(g);
    return rc;
}

const struct ab_method ab_method_lightning = {
    .name = "lightning",
    .family = AB_FAMILY_LINEAR,
    .summary = "decayed linear attention, blockwise intra (dense) / inter (state), no normaliser",
    .citation = "Qin et al. 2024, Lightning Attention-2, arXiv 2401.04658",
    .cost_words = "4nCd + 4nd^2 (block C); decode 4d^2 per query",
    .convention = "o_t = sum_{s<=t} lambda_h^(t-s) (q_t.k_s / sqrt d) v_s, no normaliser; "
                  "lambda_h = exp(-2^(-8(h+1)/H)), query head h of H in the layer, every layer",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 64, .unit = "tokens"},
    .flags = AB_METHOD_ANALYTIC | AB_METHOD_OPERATOR | AB_METHOD_UNNORMALISED,
    .cost = lightning_cost,
    .run = lightning_run,
};
