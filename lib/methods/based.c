/* based.c - `based`: Based (Arora et al., "Simple linear attention language models balance the
 * recall-throughput tradeoff", arXiv 2402.18668, section 4): linear attention with the
 * second-order Taylor feature map of exp on a reduced feature dimension, next to an exact
 * softmax sliding window, their outputs summed.
 *
 * Rule (causal). Reduced features: x' = sqrt(s d / d') P x, with s the head's logit scale
 * (1/sqrt d) and P (d', d) a seeded random projection with orthonormal rows (drawn per (seed,
 * layer, head), d' = min(16, d), the paper's 16), so that E_P[q' . k'] = s q.k (and q'.k' = s q.k
 * exactly when d' = d). Taylor features phi(x) = [1, x', vec(x' x'^T) / sqrt 2] (1 + d' + d'^2 =
 * 273 of them), for which phi(q) . phi(k) = 1 + a + a^2 / 2, a = q' . k' (> 0 for every a).
 *   linear part  o_lin,i = sum_{j <= i} (phi(q_i).phi(k_j)) v_j / sum_{j <= i} phi(q_i).phi(k_j)
 *   window part  o_win,i = exact softmax attention of q_i over keys i - w < j <= i
 *   output       o_i = (o_lin,i + o_win,i) / 2
 * Knob: the window w, integer in [1, n] (tokens, default 64, the paper's window); the cost grows
 * with w (the window's cells), the linear part's cost is the same at every w. Causal only (Based
 * is a causal model; a full-mask request is refused); prefill and decode (the context's state is
 * the cache, built in prefill).
 * FLOPs (methods.md's conventions; f = 1 + d' + d'^2, C = 64): the linear part is the shared
 * kernel engine's count (kernel_linear.h: prefill 2 n_k f d_v + 2 n_q f d_v + 2 n_q C (f + d_v);
 * decode 4 f d_v per decode query), plus the feature map per mapped row (2 d d' for the
 * projection, d'^2 for the outer product: prefill every query and key row, decode 2 per decode
 * query); the window 4d per window cell (ab_ledger_attend: cells, one exp each, K and V bytes);
 * the mix 2 d_v per query. bytes_kv: the window's K and V rows, plus the engine's (prefill K and V
 * once, decode the f x (d_v + 1) state per decode query). cells = the window cells.
 * It is an operator row (AB_METHOD_OPERATOR): at w >= n the window part is exact attention and
 * the linear part is still half of the output, so its rel_l2 against dense says how far Based's
 * operator is from softmax, not how well a budget approximates it.
 * Deviations from the paper:
 * - Based learns the projection to d' = 16 (its feature dimension) with the model; with no
 *   trained weights it is a seeded random orthogonal projection here, scaled to keep q.k unbiased;
 * - in the Based architecture the Taylor linear attention and the sliding-window attention are
 *   separate layers whose outputs add up in the residual stream; one head here must produce one
 *   output comparable to softmax attention's, so the two outputs are summed with weight 1/2 each
 *   (a constant V stays a fixed point);
 * - no short convolutions, no feature-map normalisation layers, single precision (sgemm through
 *   the shared engine of kernel_linear.c). */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/kernel_linear.h"
#include "methods/linear_more.h"

enum { BASED_CHUNK = 64 };

extern const struct ab_method ab_method_based;

int ab_based_projection(uint64_t seed, uint64_t stream, int64_t d, int64_t dp, double *proj)
{
    struct ab_rng r;
    ab_rng_init(&r, seed, stream);
    for (int64_t e = 0; e < dp * d; e++) proj[e] = ab_rng_normal(&r);
    for (int64_t a = 0; a < dp; a++) {
        double *x = proj + a * d;
        for (int pass = 0; pass < 2; pass++)
            for (int64_t b = 0; b < a; b++) {
                double dot = 0, *y = proj + b * d;
                for (int64_t c = 0; c < d; c++) dot += x[c] * y[c];
                for (int64_t c = 0; c < d; c++) x[c] -= dot * y[c];
            }
        double nn = 0;
        for (int64_t c = 0; c < d; c++) nn += x[c] * x[c];
        if (!(nn > 0)) return ab_fail(AB_E_DATA, "based: degenerate random projection");
        for (int64_t c = 0; c < d; c++) x[c] /= sqrt(nn);
    }
    return AB_OK;
}

void ab_based_features(const float *x, int64_t rows, int64_t d, const double *proj, int64_t dp,
                       double scale, float *phi)
{
    int64_t f = 1 + dp + dp * dp;
    double c = sqrt(scale * (double)d / (double)dp), r2 = pow(2.0, -0.25);
    double xp[AB_BASED_DP];
    for (int64_t i = 0; i < rows; i++) {
        const float *xi = x + i * d;
        float *fi = phi + i * f;
        for (int64_t a = 0; a < dp; a++) {
            double acc = 0;
            for (int64_t e = 0; e < d; e++) acc += proj[a * d + e] * xi[e];
            xp[a] = c * acc;
        }
        fi[0] = 1.0f;
        for (int64_t a = 0; a < dp; a++) fi[1 + a] = (float)xp[a];
        /* (x'_a 2^-1/4)(x'_b 2^-1/4) = x'_a x'_b / sqrt 2 */
        for (int64_t a = 0; a < dp; a++)
            for (int64_t b = 0; b < dp; b++)
                fi[1 + dp + a * dp + b] = (float)((xp[a] * r2) * (xp[b] * r2));
    }
}

static int64_t based_dp(const struct ab_head *h)
{
    return AB_MIN((int64_t)AB_BASED_DP, h->d);
}

static int64_t based_window_size(const struct ab_problem *p, double knob)
{
    return AB_MAX(1, AB_MIN((int64_t)knob, p->h->n_k));
}

static int based_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t w = based_window_size(p, knob), dp = based_dp(h), f = 1 + dp + dp * dp;
    double cells = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) cells += (double)AB_MIN(w, ab_head_visible(h, i));
    ab_klin_ledger(p, f, BASED_CHUNK, 1, (double)(2 * h->d * dp + dp * dp), 0.0, led);
    ab_ledger_attend(led, h, cells);
    led->flops_attend += (double)(h->n_q - p->q0) * 2 * (double)h->d_v;
    return AB_OK;
}

/* The window part of phase rows q0..n-1 into ow (n - q0, d_v): softmax of row i over keys
 * i - w < j <= i, 64 rows at a time (logits and the weighted sum through sgemm, masked weights
 * zeroed before the product). Adds the cells computed to *cells. */
static int based_window(const struct ab_head *h, int64_t q0, int64_t w, float *ow, double *cells)
{
    int64_t n = h->n_k, d = h->d, dv = h->d_v;
    int64_t span_max = AB_MIN(n, BASED_CHUNK + w - 1);
    float *s = ab_alloc(ab_size_mul((size_t)(BASED_CHUNK * span_max), sizeof(float)));
    if (!s) return ab_fail(AB_E_NOMEM, "based: cannot allocate a window block");
    for (int64_t c0 = q0; c0 < n; c0 += BASED_CHUNK) {
        int64_t c1 = AB_MIN(n, c0 + BASED_CHUNK), cn = c1 - c0;
        int64_t a = AB_MAX(0, c0 - w + 1), ns = c1 - a; /* keys [a, c1) */
        double z[BASED_CHUNK];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)cn, (int)ns, (int)d,
                    (float)h->scale, h->q + c0 * d, (int)d, h->k + a * d, (int)d, 0.0f, s, (int)ns);
        for (int64_t t = 0; t < cn; t++) {
            int64_t i = c0 + t, lo = AB_MAX(0, i - w + 1), hi = i + 1;
            float *row = s + t * ns, mx = -INFINITY;
            for (int64_t j = lo; j < hi; j++) mx = row[j - a] > mx ? row[j - a] : mx;
            z[t] = 0;
            for (int64_t j = a; j < c1; j++) {
                row[j - a] = j >= lo && j < hi ? expf(row[j - a] - mx) : 0.0f;
                z[t] += row[j - a];
            }
            *cells += (double)(hi - lo);
        }
        float *oc = ow + (c0 - q0) * dv;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cn, (int)dv, (int)ns, 1.0f, s,
                    (int)ns, h->v + a * dv, (int)dv, 0.0f, oc, (int)dv);
        for (int64_t t = 0; t < cn; t++)
            for (int64_t c = 0; c < dv; c++) oc[t * dv + c] = (float)(oc[t * dv + c] / z[t]);
    }
    ab_free(s);
    return AB_OK;
}

static int based_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    (void)keep;
    int rc = ab_klin_check_mask(&ab_method_based, p);
    if (rc) return rc;
    based_cost(p, knob, led);
    if (!o) return AB_OK;
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, dv = h->d_v, dp = based_dp(h), f = 1 + dp + dp * dp;
    int64_t np = n - p->q0, w = based_window_size(p, knob);
    double *proj = ab_alloc(ab_size_mul((size_t)(dp * d), sizeof(double))); /* (d', d) */
    float *qf = ab_alloc(ab_size_mul((size_t)(n * f), sizeof(float)));      /* (n, f) */
    float *kf = ab_alloc(ab_size_mul((size_t)(n * f), sizeof(float)));      /* (n, f) */
    float *ow = ab_alloc(ab_size_mul((size_t)(np * dv), sizeof(float)));    /* (np, d_v) window */
    float *ol = ab_alloc(ab_size_mul((size_t)(p->n_rows * dv), sizeof(float))); /* linear */
    if (!proj || !qf || !kf || !ow || (!ol && p->n_rows)) {
        rc = ab_fail(AB_E_NOMEM, "based: cannot allocate features for n = %lld", (long long)n);
        goto done;
    }
    rc = ab_based_projection(
        p->seed, ab_stream(AB_BASED_STREAM, (uint64_t)p->layer_index, (uint64_t)p->self, 0), d, dp,
        proj);
    if (rc) goto done;
    /* the engine reads query features of the phase rows only (decode: rows >= q0) */
    memset(qf, 0, (size_t)(p->q0 * f) * sizeof(float));
    ab_based_features(h->q + p->q0 * d, np, d, proj, dp, h->scale, qf + p->q0 * f);
    ab_based_features(h->k, n, d, proj, dp, h->scale, kf);
    struct ab_klin k = {
        .qf = qf, .kf = kf, .g = NULL, .f = f, .chunk = BASED_CHUNK, .normalise = 1, .rate = 0};
    rc = ab_klin_run(p, &k, ol);
    double cells = 0;
    if (!rc) rc = based_window(h, p->q0, w, ow, &cells);
    ab_attend_counter_add(cells);
    for (int64_t r = 0; !rc && r < p->n_rows; r++) {
        const float *xw = ow + (p->rows[r] - p->q0) * dv;
        for (int64_t c = 0; c < dv; c++) o[r * dv + c] = 0.5f * (ol[r * dv + c] + xw[c]);
    }
done:
    ab_free(proj), ab_free(qf), ab_free(kf), ab_free(ow), ab_free(ol);
    return rc;
}

const struct ab_method ab_method_based = {
    .name = "based",
    .family = AB_FAMILY_LINEAR,
    .summary = "Based: 2nd-order Taylor linear attention (d' = 16) plus an exact softmax window, "
               "outputs mixed 1/2 each",
    .citation = "Arora et al. 2024, Based, arXiv 2402.18668",
    .cost_words = "Taylor part 4fd_v + 2C(f + d_v) per query, f = 1 + d' + d'^2 = 273, C = 64 "
                  "(decode 4fd_v) + features 2dd' + d'^2 per row; 4d per window cell",
    .convention =
        "o = (o_lin + o_win) / 2: o_lin normalised linear attention with phi(x) = [1, x', "
        "x' (x) x' / sqrt 2], x' = sqrt(s d / d') P x (s = the logit scale, d' = 16), P a "
        "seeded random d' x d orthonormal projection per head; o_win exact softmax "
        "over the last w keys",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 64, .unit = "tokens"},
    .flags = AB_METHOD_ANALYTIC | AB_METHOD_OPERATOR,
    .cost = based_cost,
    .run = based_run,
};
