/* delta_rule.c - `delta-const`: delta-rule fast weights with a constant write strength beta,
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
 * gating (model components, not the operator). */
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "methods/method.h"

static void delta_ledger(const struct ab_problem *p, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    double d = (double)h->d, dv = (double)h->d_v, tokens = (double)(h->n_q - p->q0);
    led->flops_attend += tokens * (6 * d * dv + 4 * d);
    led->ops_other += tokens * 2;
    led->bytes_kv += tokens * 4 * (p->phase == AB_PHASE_DECODE ? d * dv : d + dv);
}

static int delta_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    (void)knob;
    delta_ledger(p, led);
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

/* Writes key j into S (d_v, d): S += beta (v_j - S k^) k^^T. */
static void delta_write(const struct ab_head *h, int64_t j, double beta, double *s, double *k,
                        double *err)
{
    int64_t d = h->d, dv = h->d_v;
    unit(h->k + j * d, d, k);
    for (int64_t r = 0; r < dv; r++) {
        double sk = 0; /* (S k^)_r */
        for (int64_t c = 0; c < d; c++) sk += s[r * d + c] * k[c];
        err[r] = beta * ((double)h->v[j * dv + r] - sk);
    }
    for (int64_t r = 0; r < dv; r++)
        for (int64_t c = 0; c < d; c++) s[r * d + c] += err[r] * k[c];
}

static int delta_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    (void)keep;
    const struct ab_head *h = p->h;
    if (h->mask != AB_MASK_CAUSAL)
        return ab_fail(AB_E_USAGE, "delta-const: the full mask is not supported (causal only)");
    if (!(knob >= 0) || !isfinite(knob))
        return ab_fail(AB_E_USAGE, "delta-const: beta must be >= 0, not %g", knob);
    delta_ledger(p, led);
    if (!o) return AB_OK;
    int64_t d = h->d, dv = h->d_v;
    double *s = ab_alloc(ab_size_mul((size_t)(d * dv), sizeof(double))); /* (d_v, d), zeroed */
    double *u = ab_alloc(ab_size_mul((size_t)(d + dv), sizeof(double))); /* (d) k^ or q^, (d_v) */
    if (!s || !u) {
        ab_free(s), ab_free(u);
        return ab_fail(AB_E_NOMEM, "delta-const: cannot allocate the state");
    }
    int64_t ks = 0; /* keys written into S */
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], vis = ab_head_visible(h, i);
        for (; ks < vis; ks++) delta_write(h, ks, knob, s, u, u + d);
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
