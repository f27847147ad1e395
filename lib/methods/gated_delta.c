/* gated_delta.c - `gated-delta`: the gated delta rule of Gated DeltaNet (Yang, Kautz and
 * Hatamizadeh, "Gated Delta Networks: Improving Mamba2 with Delta Rule", arXiv 2412.06464,
 * section 3.1, eq. 10): the delta rule of `delta-const` (delta_rule.c) with a decay gate alpha on
 * the state, so that old associations fade as well as get overwritten.
 * Rule: a state S (d_v x d), zero before the first key; for each key t in order, with
 * k^ = k_t / |k_t| and q^ = q_t / |q_t|,
 *     S_t = alpha S_{t-1} (I - beta k^ k^^T) + beta v_t k^^T
 *         = alpha S_{t-1} + beta (v_t - alpha S_{t-1} k^) k^^T
 *     o_t = S_t q^                                     (query t reads after its own write)
 * alpha = 1 is delta-const's rule exactly; beta = 0 decays S from 0, i.e. leaves S = 0.
 * Gate convention: one constant alpha per head, lightning's decay (lightning.c):
 * alpha_h = exp(-2^(-8 (h + 1) / H)) for query head h of the H heads of the layer (ALiBi slopes
 * as log-decays, the same in every layer), so `lightning` and `gated-delta` share their decays and
 * differ by the delta rule (and the L2 normalisation) alone.
 * Knob: beta in [0.001, 1] (default 0.5), as delta-const: it changes the result, not the cost
 * (AB_METHOD_FIXED). Outputs are not normalised (AB_METHOD_UNNORMALISED).
 * Masks and phases: causal only (full-mask requests are refused with AB_E_USAGE); prefill, and
 * decode with the state built from the context then stepped through the decode queries.
 * Cost (exact, flops_attend, no selection): per token 7 d d_v + 4d FLOPs (S k^ 2 d d_v; the gated
 * write alpha S + e k^^T, a multiply and a multiply-add per element, 3 d d_v; the read S q^
 * 2 d d_v; the two norms 2d each); ops_other 2 square roots per token. Prefill counts every
 * token; decode the m decode tokens only (building the context's state is the cache fill, done by
 * prefill). bytes_kv: prefill 4 (d + d_v) per token (k and v read once); decode the state's
 * 4 d d_v bytes per decode query. cells = 0.
 * It is an operator row (AB_METHOD_OPERATOR): its rel_l2 against dense measures the operator.
 * Computation: the recurrent form in double, as delta_rule.c.
 * Deviations from the paper: alpha and beta are constants (the paper computes both per token
 * from the input, alpha_t in (0, 1) through a Mamba2-style parametrisation, beta_t = sigmoid);
 * the recurrent form replaces the chunkwise WY / UT form (the same numbers up to rounding); no
 * short convolutions, output gate or norm (model components, not the operator). */
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "methods/linear_more.h"

extern const struct ab_method ab_method_gated_delta;

static void gd_ledger(const struct ab_problem *p, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    double d = (double)h->d, dv = (double)h->d_v, tokens = (double)(h->n_q - p->q0);
    led->flops_attend += tokens * (7 * d * dv + 4 * d);
    led->ops_other += tokens * 2;
    led->bytes_kv += tokens * 4 * (p->phase == AB_PHASE_DECODE ? d * dv : d + dv);
}

static int gd_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    (void)knob;
    gd_ledger(p, led);
    return AB_OK;
}

/* x / |x| into u (d), in double; a zero vector stays zero. */
static void unit(const float *x, int64_t d, double *u)
{
    double ss = 0;
    for (int64_t c = 0; c < d; c++) ss += (double)x[c] * x[c];
    double inv = ss > 0 ? 1 / sqrt(ss) : 0;
    for (int64_t c = 0; c < d; c++) u[c] = x[c] * inv;
}

/* Writes key j into S (d_v, d): S = alpha S + beta (v_j - alpha S k^) k^^T. */
static void gd_write(const struct ab_head *h, int64_t j, double beta, double alpha, double *s,
                     double *k, double *err)
{
    int64_t d = h->d, dv = h->d_v;
    unit(h->k + j * d, d, k);
    for (int64_t r = 0; r < dv; r++) {
        double sk = 0; /* (S k^)_r */
        for (int64_t c = 0; c < d; c++) sk += s[r * d + c] * k[c];
        err[r] = beta * ((double)h->v[j * dv + r] - alpha * sk);
    }
    for (int64_t r = 0; r < dv; r++)
        for (int64_t c = 0; c < d; c++) s[r * d + c] = alpha * s[r * d + c] + err[r] * k[c];
}

int ab_gated_delta_run(const struct ab_problem *p, double beta, double alpha, float *o,
                       struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    if (h->mask != AB_MASK_CAUSAL)
        return ab_fail(AB_E_USAGE, "gated-delta: the full mask is not supported (causal only)");
    if (!(beta >= 0) || !isfinite(beta))
        return ab_fail(AB_E_USAGE, "gated-delta: beta must be >= 0, not %g", beta);
    if (alpha <= 0) /* the convention: lightning's decay of this head */
        alpha = exp(-pow(2.0, -8.0 * (double)(p->self + 1) / (double)AB_MAX(p->n_layer_heads, 1)));
    if (!(alpha <= 1))
        return ab_fail(AB_E_USAGE, "gated-delta: the gate must be in (0, 1], not %g", alpha);
    gd_ledger(p, led);
    if (!o) return AB_OK;
    int64_t d = h->d, dv = h->d_v;
    double *s = ab_alloc(ab_size_mul((size_t)(d * dv), sizeof(double))); /* (d_v, d), zeroed */
    double *u = ab_alloc(ab_size_mul((size_t)(d + dv), sizeof(double))); /* (d) k^ or q^, (d_v) */
    if (!s || !u) {
        ab_free(s), ab_free(u);
        return ab_fail(AB_E_NOMEM, "gated-delta: cannot allocate the state");
    }
    int64_t ks = 0; /* keys written into S */
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], vis = ab_head_visible(h, i);
        for (; ks < vis; ks++) gd_write(h, ks, beta, alpha, s, u, u + d);
        unit(h->q + i * d, d, u); /* o_i = S q^ */
        for (int64_t c = 0; c < dv; c++) {
            double acc = 0;
            for (int64_t e = 0; e < d; e++) acc += s[c * d + e] * u[e];
            o[r * dv + c] = (float)acc;
        }
    }
    ab_free(s), ab_free(u);
    return AB_OK;
}

static int gd_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    (void)keep;
    return ab_gated_delta_run(p, knob, 0, o, led);
}

const struct ab_method ab_method_gated_delta = {
    .name = "gated-delta",
    .family = AB_FAMILY_LINEAR,
    .summary = "gated delta rule (Gated DeltaNet): decayed delta-rule state, constant gate and "
               "beta, L2-normalised q and k (an operator row)",
    .citation = "Yang, Kautz, Hatamizadeh 2024, Gated DeltaNet, arXiv 2412.06464",
    .cost_words = "7 d d_v + 4d per token (recurrent state d_v x d); decode: the m decode tokens",
    .convention =
        "S_t = alpha_h S_{t-1} (I - beta k^_t k^_t^T) + beta v_t k^_t^T, o_t = S_t q^_t "
        "with q^, k^ unit vectors and S_0 = 0; alpha_h = exp(-2^(-8(h+1)/H)) (lightning's "
        "decay), beta = 0.5 unless set with --knob beta=; outputs are not normalised",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "beta", .lo = 0.001, .hi = 1, .integer = 0, .def = 0.5, .unit = "strength"},
    .flags = AB_METHOD_ANALYTIC | AB_METHOD_OPERATOR | AB_METHOD_FIXED | AB_METHOD_UNNORMALISED,
    .cost = gd_cost,
    .run = gd_run,
};
