/* retnet.c - `retnet`: the retention operator of RetNet (Sun et al., "Retentive Network: A
 * Successor to Transformer for Large Language Models", arXiv 2307.08621, section 2.1-2.2, with
 * the retention score normalisation of section 3.3 (eq. 8 and the two lines after it)).
 * Rule, causal, per query row n over keys m <= n (positions aligned: row = position):
 *     R_nm  = s (q_n . k_m) D~_nm,   D~_nm = gamma^(n - m) / sqrt(sum_{i <= n} gamma^(n - i))
 *     o_n   = sum_{m <= n} R_nm v_m / max(|sum_{m <= n} R_nm|, 1)
 * with s the head's logit scale (1/sqrt d, the paper's QK^T / sqrt d) and the paper's decays
 * gamma_h = 1 - 2^(-5 - h) for query head h = 0 .. H-1 of the layer (the same in every layer).
 * The sum of R over a row is one more column of the same linear operator (V with a ones column
 * appended), so the chunkwise form (kernel_linear.c's engine: a masked, decayed C x C block inside
 * a chunk of C rows, earlier chunks through the decayed d x (d_v + 1) state) gives numerator and
 * denominator together; the D~ row factor and the division are per row.
 * Knob: chunk C, integer in [1, n] (default 64), as `lightning`: the cost grows with C, the
 * result does not depend on it (up to rounding). Causal only (retention is causal; a full-mask
 * request is refused); prefill and decode (the recurrent form: the context's state is the cache,
 * each decode query adds its own key and reads the state).
 * FLOPs (methods.md, as lightning): prefill 2 n_k d d_v (state) + 2 n_q d d_v (read) +
 * 2 n_q C (d + d_v) (intra-chunk blocks), i.e. 4nd^2 + 4nCd at d_v = d; decode 4 d d_v per decode
 * query (the ones column of the denominator is not counted, as for the normalised kernel rows).
 * ops_other: C decay weights per prefill row (1 per decode row) plus 2 per row (the D~ factor and
 * the max). bytes_kv: prefill K and V read once; decode the state, 4 d (d_v + 1) bytes per decode
 * query. cells = 0: no softmax cell is formed.
 * It is an operator row (AB_METHOD_OPERATOR, AB_METHOD_UNNORMALISED: rows of R need not sum to
 * 1, so a constant V is not a fixed point): its rel_l2 against dense says how far retention is
 * from softmax attention.
 * Deviations from the paper: no learned projections, no xPos rotation of its own (the head's
 * post-RoPE Q and K as given), no swish gate and no GroupNorm after retention (model components:
 * the GroupNorm would make the output scale-invariant, the normalisation above is what the paper
 * gives for the retention scores themselves); torchscale's parallel code divides by the sum of
 * |R| rather than |sum R|: the paper's formula is used here, which the recurrent and chunkwise
 * forms can carry; single precision (sgemm), the row factors in double. */
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kernel_linear.h"

extern const struct ab_method ab_method_retnet;

static int retnet_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int64_t c = (int64_t)knob;
    double nq = (double)(p->h->n_q - p->q0);
    ab_klin_ledger(p, p->h->d, c, 1, 0.0, 0.0, led);
    led->ops_other += nq * (p->phase == AB_PHASE_PREFILL ? (double)c : 1.0) + 2 * nq;
    return AB_OK;
}

/* ln(gamma_h) = ln(1 - 2^(-5 - h)) for query head h of the layer (p->self) */
static double retnet_log_gamma(const struct ab_problem *p)
{
    return log1p(-pow(2.0, -5.0 - (double)p->self));
}

static int retnet_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                      struct ab_ledger *led)
{
    (void)keep;
    int rc = ab_klin_check_mask(&ab_method_retnet, p);
    if (rc) return rc;
    int64_t c = (int64_t)knob;
    if (c < 1) return ab_fail(AB_E_USAGE, "retnet: chunk C = %lld (at least 1)", (long long)c);
    retnet_cost(p, knob, led);
    if (!o) return AB_OK;
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, dv = h->d_v, dv1 = dv + 1;
    float *qs = ab_alloc(ab_size_mul((size_t)(n * d), sizeof(float)));   /* (n, d) s q */
    float *v1 = ab_alloc(ab_size_mul((size_t)(n * dv1), sizeof(float))); /* (n, d_v + 1) [v, 1] */
    double *g = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));        /* (n) -t ln gamma */
    float *o1 = ab_alloc(ab_size_mul((size_t)(p->n_rows * dv1), sizeof(float))); /* (rows, dv1) */
    if (!qs || !v1 || !g || (!o1 && p->n_rows)) {
        rc = ab_fail(AB_E_NOMEM, "retnet: cannot allocate scratch");
        goto done;
    }
    double lg = retnet_log_gamma(p); /* < 0 */
    for (int64_t t = 0; t < n; t++) g[t] = -(double)t * lg;
    for (int64_t x = 0; x < n * d; x++) qs[x] = (float)(h->scale * h->q[x]);
    for (int64_t j = 0; j < n; j++) {
        memcpy(v1 + j * dv1, h->v + j * dv, (size_t)dv * sizeof(float));
        v1[j * dv1 + dv] = 1.0f;
    }
    /* the engine on the same rows with V widened by the ones column: numerator and sum of R */
    struct ab_head h1 = *h;
    h1.v = v1, h1.d_v = dv1;
    struct ab_problem p1 = *p;
    p1.h = &h1;
    struct ab_klin k = {
        .qf = qs, .kf = h->k, .g = g, .f = d, .chunk = c, .normalise = 0, .rate = -lg};
    rc = ab_klin_run(&p1, &k, o1);
    for (int64_t r = 0; !rc && r < p->n_rows; r++) {
        int64_t i = p->rows[r];
        /* 1 / sqrt(sum_{m <= i} gamma^(i - m)) = sqrt((1 - gamma) / (1 - gamma^(i + 1))) */
        double dn = sqrt(expm1(lg) / expm1((double)(i + 1) * lg));
        double z = fmax(fabs(dn * o1[r * dv1 + dv]), 1.0);
        for (int64_t x = 0; x < dv; x++) o[r * dv + x] = (float)(dn * o1[r * dv1 + x] / z);
    }
done:
    ab_free(qs), ab_free(v1), ab_free(g), ab_free(o1);
    return rc;
}

const struct ab_method ab_method_retnet = {
    .name = "retnet",
    .family = AB_FAMILY_LINEAR,
    .summary = "RetNet retention: decayed linear attention with the paper's score normalisation, "
               "chunkwise",
    .citation = "Sun et al. 2023, RetNet, arXiv 2307.08621",
    .cost_words = "4nCd + 4nd^2 (chunk C); decode 4d^2 per query",
    .convention = "R_nm = (q_n.k_m / sqrt d) gamma_h^(n-m) / sqrt(sum_{i<=n} gamma_h^(n-i)), "
                  "o_n = sum_m R_nm v_m / max(|sum_m R_nm|, 1); gamma_h = 1 - 2^(-5-h), query "
                  "head h = 0..H-1 of the layer, every layer",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 64, .unit = "tokens"},
    .flags = AB_METHOD_ANALYTIC | AB_METHOD_OPERATOR | AB_METHOD_UNNORMALISED,
    .cost = retnet_cost,
    .run = retnet_run,
};
