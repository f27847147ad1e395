/* delta_rule.c - the delta rule, two rows on one recurrence.
 *
 * `delta-const`: delta-rule fast weights with a constant write strength beta,
 * Schlag, Irie and Schmidhuber 2021, "Linear Transformers Are Secretly Fast Weight
 * Programmers", arXiv 2102.11174 (section 4.2, the delta update rule); the modern DeltaNet
 * form with L2-normalised q and k: Yang et al. 2024, "Parallelizing Linear Transformers with
 * the Delta Rule over Sequence Length", arXiv 2406.06484 (eq. 1).
 * Rule: a state S (d_v x d), zero before the first key; for each key t in order, with
 * k^ = k_t / |k_t| and q^ = q_t / |q_t|,
 *     S_t = S_{t-1} + beta (v_t - S_{t-1} k^) k^^T     (write v_t at k^, replacing what was there)
 *     o_t = S_t q^                                     (query t reads after its own write)
 * so with beta = 1 a key written twice keeps only its last value, and beta = 0 leaves S = 0.
 * Outputs are not normalised (AB_METHOD_UNNORMALISED): constant V is not a fixed point.
 * Knob: beta in [0.001, 1] (default 0.5); it changes the result, not the cost
 * (AB_METHOD_FIXED): the engine runs it once per cell at the default.
 * Masks and phases: causal only (the recurrence is causal by construction; a full-mask request
 * is refused with AB_E_USAGE); prefill, and decode with the state built from the context then
 * stepped through the decode queries.
 * Cost (exact, flops_attend, no selection): per token 6 d d_v + 4d FLOPs (S k^, the rank-one
 * write and S q^, 2 d d_v each; the two norms, 2d each); ops_other 2 square roots per token.
 * Prefill counts every token; decode counts the m decode tokens only (building the state from
 * the context is the cache fill, done by prefill, as for dense's KV cache). bytes_kv: prefill
 * 4 (d + d_v) per token (k and v read once); decode the state's 4 d d_v bytes per decode query.
 * cells = 0: no query-key cell is computed.
 * It is an operator row, not a softmax approximation (AB_METHOD_OPERATOR): its rel_l2 against
 * dense is reported with that caveat.
 * Computation: the recurrent form in double (a d_v x d state per head; 6 d d_v multiply-adds
 * per token is under a millisecond per thousand tokens at d = 64).
 * Deviations: beta is one constant (the papers learn a per-token beta = sigmoid(w x)); the
 * recurrent form is used instead of the chunkwise WY form of Yang et al. (the same numbers up
 * to rounding, that form is a training-speed device); no short convolutions, output norm or
 * gating (model components, not the operator).
 *
 * `gated-delta`: the gated delta rule of Gated DeltaNet (Yang, Kautz and
 * Hatamizadeh, "Gated Delta Networks: Improving Mamba2 with Delta Rule", arXiv 2412.06464,
 * section 3.1, eq. 10): the delta rule of `delta-const` (above) with a decay gate alpha on
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
 * Computation: the recurrent form in double, the same loop as delta-const (alpha = 1 there:
 * the same numbers bit for bit, 1 * x being x).
 * Deviations from the paper: alpha and beta are constants (the paper computes both per token
 * from the input, alpha_t in (0, 1) through a Mamba2-style parametrisation, beta_t = sigmoid);
 * the recurrent form replaces the chunkwise WY / UT form (the same numbers up to rounding); no
 * short convolutions, output gate or norm (model components, not the operator). */

#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "methods/linear_more.h"
#include "methods/method.h"

extern const struct ab_method ab_method_delta_const, ab_method_gated_delta;

/* The ledger of either row: per token 6 d d_v + 4d FLOPs, 7 d d_v + 4d when gated (the write
 * scales S by alpha). */
static void delta_ledger(const struct ab_problem *p, int gated, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    double d = (double)h->d, dv = (double)h->d_v, tokens = (double)(h->n_q - p->q0);
    led->flops_attend += tokens * ((gated ? 7 : 6) * d * dv + 4 * d);
    led->ops_other += tokens * 2;
    led->bytes_kv += tokens * 4 * (p->phase == AB_PHASE_DECODE ? d * dv : d + dv);
}

static int delta_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    (void)knob;
    delta_ledger(p, 0, led);
    return AB_OK;
}

static int gated_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    (void)knob;
    delta_ledger(p, 1, led);
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
static void delta_write(const struct ab_head *h, int64_t j, double beta, double alpha, double *s,
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

/* The recurrence of row `name` at write strength beta and gate alpha (1: no gate), counted as
 * the gated row when gated. */
static int delta_rule(const struct ab_problem *p, const char *name, int gated, double beta,
                      double alpha, float *o, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    if (h->mask != AB_MASK_CAUSAL)
        return ab_fail(AB_E_USAGE, "%s: the full mask is not supported (causal only)", name);
    if (!(beta >= 0) || !isfinite(beta))
        return ab_fail(AB_E_USAGE, "%s: beta must be >= 0, not %g", name, beta);
    if (!(alpha > 0 && alpha <= 1))
        return ab_fail(AB_E_USAGE, "%s: the gate must be in (0, 1], not %g", name, alpha);
    delta_ledger(p, gated, led);
    if (!o) return AB_OK;
    int64_t d = h->d, dv = h->d_v;
    double *s = ab_alloc(ab_size_mul((size_t)(d * dv), sizeof(double))); /* (d_v, d), zeroed */
    double *u = ab_alloc(ab_size_mul((size_t)(d + dv), sizeof(double))); /* (d) k^ or q^, (d_v) */
    if (!s || !u) {
        ab_free(s), ab_free(u);
        return ab_fail(AB_E_NOMEM, "%s: cannot allocate the state", name);
    }
    int64_t ks = 0; /* keys written into S */
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], vis = ab_head_visible(h, i);
        for (; ks < vis; ks++) delta_write(h, ks, beta, alpha, s, u, u + d);
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

static int delta_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    (void)keep;
    return delta_rule(p, "delta-const", 0, knob, 1, o, led);
}

int ab_gated_delta_run(const struct ab_problem *p, double beta, double alpha, float *o,
                       struct ab_ledger *led)
{
    if (alpha <= 0) /* the convention: lightning's decay of this head */
        alpha = exp(-pow(2.0, -8.0 * (double)(p->self + 1) / (double)AB_MAX(p->n_layer_heads, 1)));
    return delta_rule(p, "gated-delta", 1, beta, alpha, o, led);
}

static int gated_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    (void)keep;
    return ab_gated_delta_run(p, knob, 0, o, led);
}

const struct ab_method ab_method_delta_const = {
    .name = "delta-const",
    .family = AB_FAMILY_LINEAR,
    .summary = "delta-rule fast weights, constant beta, L2-normalised q and k (an operator row)",
    .citation = "Schlag et al. 2021, arXiv 2102.11174; DeltaNet, Yang et al. 2024, arXiv "
                "2406.06484",
    .cost_words = "6 d d_v + 4d per token (recurrent state d_v x d); decode: the m decode tokens",
    .convention = "S_t = S_{t-1} + beta (v_t - S_{t-1} k^_t) k^_t^T, o_t = S_t q^_t with q^, k^ "
                  "unit vectors and S_0 = 0; beta = 0.5 unless set with --knob beta=; outputs "
                  "are not normalised; not a softmax approximation",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "beta", .lo = 0.001, .hi = 1, .integer = 0, .def = 0.5, .unit = "strength"},
    .flags = AB_METHOD_ANALYTIC | AB_METHOD_OPERATOR | AB_METHOD_FIXED | AB_METHOD_UNNORMALISED,
    .cost = delta_cost,
    .run = delta_run,
};

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
    .cost = gated_cost,
    .run = gated_run,
};
