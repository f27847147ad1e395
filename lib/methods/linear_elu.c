/* linear_elu.c - `linear-elu`: linear attention with the feature map phi(x) = elu(x) + 1
 * (Katharopoulos et al., "Transformers are RNNs: Fast Autoregressive Transformers with Linear
 * Attention", arXiv 2006.16236, section 3.2, eq. 7). The rule:
 *     o_i = phi(q_i)^T S_i / phi(q_i)^T z_i,  S_i = sum_{j visible} phi(k_j) v_j^T,
 *     z_i = sum_{j visible} phi(k_j),
 * with phi > 0, so every row is a convex combination of the visible values. No knob (m = d
 * features). Forms (kernel_linear.c): full mask, one state; causal prefill, chunks of C = 64
 * rows (masked intra-chunk matmul plus the state of earlier chunks); decode, the state of the
 * context rows, then one update and one read per decode query.
 * FLOPs (methods.md): full 4 n d^2; causal 4 n d^2 + 4 n C d; decode 4 d^2 per decode query
 * (written with d_v: 4 n d d_v and 2 n C (d + d_v)). ops_other counts one elu per feature of each
 * mapped row. Building the decode state from the context is the prefill's work (as writing the
 * KV cache is for dense), so decode counts only the per-query update and read; bytes_kv in
 * decode is the state (d x (d_v + 1) floats) read by each decode query.
 * Deviations from the paper: no learned projections (the head's Q, K, V are used as given); the
 * logit scale plays no part (phi is applied to q and k as they are); the normaliser is carried
 * as an extra value column of ones; single precision throughout. */
#include <math.h>

#include "core/ab.h"
#include "methods/kernel_linear.h"

enum { ELU_CHUNK = 64 };

extern const struct ab_method ab_method_linear_elu;

static int elu_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    (void)knob;
    ab_klin_ledger(p, p->h->d, ELU_CHUNK, 1, 0.0, (double)p->h->d, led);
    return AB_OK;
}

/* phi(x) = elu(x) + 1: x + 1 for x > 0, e^x otherwise */
static void elu_features(const float *x, int64_t n, int64_t d, float *phi)
{
    for (int64_t i = 0; i < n * d; i++) phi[i] = x[i] > 0 ? x[i] + 1.0f : expf(x[i]);
}

static int elu_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                   struct ab_ledger *led)
{
    (void)keep;
    int rc = ab_klin_check_mask(&ab_method_linear_elu, p);
    if (rc) return rc;
    elu_cost(p, knob, led);
    if (!o) return AB_OK;
    const struct ab_head *h = p->h;
    float *qf = ab_alloc(ab_size_mul((size_t)(h->n_q * h->d), sizeof(float))); /* (n, d) */
    float *kf = ab_alloc(ab_size_mul((size_t)(h->n_k * h->d), sizeof(float))); /* (n, d) */
    if (!qf || !kf) {
        rc = ab_fail(AB_E_NOMEM, "linear-elu: cannot allocate the feature maps");
    } else {
        elu_features(h->q, h->n_q, h->d, qf);
        elu_features(h->k, h->n_k, h->d, kf);
        struct ab_klin k = {.qf = qf, .kf = kf, .f = h->d, .chunk = ELU_CHUNK, .normalise = 1};
        rc = ab_klin_run(p, &k, o);
    }
    ab_free(qf), ab_free(kf);
    return rc;
}

const struct ab_method ab_method_linear_elu = {
    .name = "linear-elu",
    .family = AB_FAMILY_LINEAR,
    .summary = "linear attention with phi(x) = elu(x) + 1 (causal by chunks of 64)",
    .citation = "Katharopoulos et al. 2020, Transformers are RNNs, arXiv 2006.16236",
    .cost_words = "full 4nd^2; causal 4nd^2 + 4nCd (C = 64); decode 4d^2 per query",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL | AB_MASKS_FULL,
    .knob = {.name = NULL},
    .flags = AB_METHOD_ANALYTIC,
    .cost = elu_cost,
    .run = elu_run,
};
