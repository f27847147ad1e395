/* cosformer.c - `cosformer`: ReLU linear attention with cos re-weighting (Qin et al., "cosFormer:
 * Rethinking Softmax in Attention", arXiv 2202.08791, section 3.3, eq. 9-11). The rule:
 *     w_ij = relu(q_i) . relu(k_j) cos(pi/2 (p_i - p_j) / M),  o_i = sum_j w_ij v_j / sum_j w_ij
 * over the visible keys, computed linearly through cos(a - b) = cos a cos b + sin a sin b: the
 * features are [relu(x) cos(pi p / 2M), relu(x) sin(pi p / 2M)] (2d of them). The horizon M is
 * fixed in advance as the sequence length (last position + 1, so every |p_i - p_j| < M and
 * w >= 0); under the causal mask it depends on the length only, never on later keys' contents.
 * No knob. A row whose weights are all 0 gets O = 0.
 * FLOPs (methods.md: 8nd^2): full 8 n d d_v (2d features, state and read); causal the same plus
 * 2nC(2d + d_v) for the intra-chunk blocks (C = 64, our extension: the catalogue gives the
 * full-mask count); decode 8 d d_v per decode query (update and read of a 2d x d_v state, whose
 * bytes each decode query reads). ops_other: 2d relu compares and 2 cos/sin per mapped row.
 * Deviations from the paper: no learned projections, the head's Q, K, V as given; M is the
 * workload's length rather than a training-time maximum; single precision. */
#include <math.h>

#include "core/ab.h"
#include "methods/kernel_linear.h"

enum { COS_CHUNK = 64 };

extern const struct ab_method ab_method_cosformer;

static int cosformer_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    (void)knob;
    ab_klin_ledger(p, 2 * p->h->d, COS_CHUNK, 1, 0.0, (double)(2 * p->h->d + 2), led);
    return AB_OK;
}

/* phi (n, 2d): [relu(x) cos(theta), relu(x) sin(theta)], theta = pi/2 pos / horizon */
static void cos_features(const float *x, const int32_t *pos, int64_t n, int64_t d, double horizon,
                         float *phi)
{
    for (int64_t i = 0; i < n; i++) {
        double th = M_PI / 2 * (double)pos[i] / horizon;
        float c = (float)cos(th), s = (float)sin(th);
        for (int64_t a = 0; a < d; a++) {
            float r = x[i * d + a] > 0 ? x[i * d + a] : 0.0f;
            phi[i * 2 * d + a] = r * c;
            phi[i * 2 * d + d + a] = r * s;
        }
    }
}

static int cosformer_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                         struct ab_ledger *led)
{
    (void)keep;
    int rc = ab_klin_check_mask(&ab_method_cosformer, p);
    if (rc) return rc;
    cosformer_cost(p, knob, led);
    if (!o) return AB_OK;
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d;
    double horizon = (double)AB_MAX(h->q_pos[h->n_q - 1], h->k_pos[n - 1]) + 1;
    if (horizon < 1 || h->q_pos[0] < 0 || h->k_pos[0] < 0)
        return ab_fail(AB_E_DATA, "cosformer: negative positions");
    float *qf = ab_alloc(ab_size_mul((size_t)(n * 2 * d), sizeof(float))); /* (n, 2d) */
    float *kf = ab_alloc(ab_size_mul((size_t)(n * 2 * d), sizeof(float))); /* (n, 2d) */
    if (!qf || !kf) {
        rc = ab_fail(AB_E_NOMEM, "cosformer: cannot allocate the feature maps");
    } else {
        cos_features(h->q, h->q_pos, h->n_q, d, horizon, qf);
        cos_features(h->k, h->k_pos, n, d, horizon, kf);
        struct ab_klin k = {.qf = qf, .kf = kf, .f = 2 * d, .chunk = COS_CHUNK, .normalise = 1};
        rc = ab_klin_run(p, &k, o);
    }
    ab_free(qf), ab_free(kf);
    return rc;
}

const struct ab_method ab_method_cosformer = {
    .name = "cosformer",
    .family = AB_FAMILY_LINEAR,
    .summary = "ReLU features with cos re-weighting of (i-j)/2M, horizon M = sequence length",
    .citation = "Qin et al. 2022, cosFormer: Rethinking Softmax in Attention, arXiv 2202.08791",
    .cost_words = "full 8nd^2; causal 8nd^2 + 2nC(2d+d) (C = 64); decode 8d^2 per query",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL | AB_MASKS_FULL,
    .knob = {.name = NULL},
    .flags = AB_METHOD_ANALYTIC,
    .cost = cosformer_cost,
    .run = cosformer_run,
};
