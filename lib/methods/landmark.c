/* landmark.c - linear-cost approximations of full-mask softmax attention through m segment
 * means ("landmarks") of the sequence (methods.md, "linear and approximate kernels"):
 * - `nystrom`: Nystromformer, Xiong et al. 2021, arXiv 2102.03902 (section 3, eq. 14-15):
 *   landmarks Q~, K~ = segment means of Q and K; O = F pinv(A) B V with
 *   F = softmax(s Q K~^T) (n, m), A = softmax(s Q~ K~^T) (m, m), B = softmax(s Q~ K^T) (m, n),
 *   pinv(A) by 6 iterations of the paper's Newton-type scheme (eq. 13);
 * - `key-pooling`: keys and values mean-pooled into m segments, O = softmax(s Q K~^T) V~: exact
 *   softmax over the pooled set, the training-free stand-in for Linformer's learned projection
 *   (Wang et al. 2020, arXiv 2006.04768, section 4: "mean/max pooling" as a choice of E, F);
 * - `agent`: Agent Attention, Han et al. 2023, arXiv 2312.08874 (eq. 3): n_a agent tokens
 *   A = segment means of Q (the paper's pooled agents), V_A = softmax(s A K^T) V (agent
 *   aggregation), O = softmax(s Q A^T) V_A (agent broadcast).
 * The knob is the number of segments m (landmarks, pooled keys or agents), in [1, n].
 * Full mask only (each landmark mixes every position: no causal form here), prefill only; a
 * causal problem is refused with AB_E_USAGE.
 *
 * Cost (analytic; "cells" here are the softmax score entries computed, each 2d + 2d_v FLOPs,
 * one exp and 4 (d + d_v) bytes read, as for a kept cell of exact attention):
 * - nystrom: 2 n m + m^2 cells (F with its product by the m x d_v matrix pinv(A) B V, B with
 *   its product by V, A with the product pinv(A) (B V)) = 8 n m d + 4 m^2 d, plus 48 m^3 for
 *   the pseudo-inverse (6 iterations of 4 m x m products), plus 2 n d additions to pool Q and K
 *   and 4 n d bytes to read K for pooling;
 * - key-pooling: n m cells = 4 n m d, plus n (d + d_v) additions and 4 n (d + d_v) bytes to
 *   pool K and V;
 * - agent: 2 n m cells (aggregation m x n, broadcast n x m) = 8 n m d, plus n d additions to
 *   pool Q.
 * Everything is counted in flops_attend (these methods select nothing); the one-off parts
 * (pooling, landmark products, pinv) are counted once for the phase, which covers every
 * query they serve.
 *
 * Deviations from the papers:
 * - no depthwise convolution on V (Nystromformer's and Agent Attention's skip branch) and no
 *   agent bias: those are trained parts; here the bare approximations run on the given Q, K, V;
 * - segments are rows [s n / m, (s + 1) n / m), so n need not be a multiple of m (the papers
 *   pad); key-pooling and agent do not correct for the one-row differences in segment size;
 * - products and softmax in single precision (sgemm), the pseudo-inverse too;
 * - rows are computed in whole blocks of 64 sequence rows (any block holding an evaluated row),
 *   so a row's output does not depend on which other rows are evaluated. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "methods/landmark.h"
#include "methods/method.h"

enum { RB = 64, NEWTON_ITERS = 6 };

void ab_lm_pool(const float *x, int64_t n, int64_t dim, int64_t m, float *out)
{
    for (int64_t s = 0; s < m; s++) {
        int64_t r0 = ab_lm_seg_lo(s, n, m), r1 = ab_lm_seg_lo(s + 1, n, m);
        for (int64_t c = 0; c < dim; c++) {
            double acc = 0;
            for (int64_t r = r0; r < r1; r++) acc += x[r * dim + c];
            out[s * dim + c] = (float)(acc / (double)(r1 - r0));
        }
    }
}

int ab_lm_pinv(const float *a, int64_t m, int iters, float *z)
{
    float *az = ab_alloc(ab_size_mul((size_t)(3 * m * m), sizeof(float)));
    if (!az) return ab_fail(AB_E_NOMEM, "nystrom: cannot allocate the pseudo-inverse");
    float *t = az + m * m, *u = t + m * m; /* (m, m) each */
    /* Z_0 = A^T / (max column sum |A| * max row sum |A|) */
    double n1 = 0, ninf = 0;
    for (int64_t j = 0; j < m; j++) {
        double col = 0, row = 0;
        for (int64_t i = 0; i < m; i++) col += fabs(a[i * m + j]), row += fabs(a[j * m + i]);
        n1 = col > n1 ? col : n1;
        ninf = row > ninf ? row : ninf;
    }
    double c0 = n1 * ninf > 0 ? 1 / (n1 * ninf) : 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++) z[i * m + j] = (float)(a[j * m + i] * c0);
    const int M = (int)m;
    for (int it = 0; it < iters; it++) {
        /* az = A Z; t = 7I - az; u = az t; t = 15I - u; u = az t; t = 13I - u; Z = Z t / 4 */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, M, M, 1.0f, a, M, z, M, 0.0f, az,
                    M);
        for (int64_t e = 0; e < m * m; e++) t[e] = -az[e];
        for (int64_t i = 0; i < m; i++) t[i * m + i] += 7.0f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, M, M, 1.0f, az, M, t, M, 0.0f, u,
                    M);
        for (int64_t e = 0; e < m * m; e++) t[e] = -u[e];
        for (int64_t i = 0; i < m; i++) t[i * m + i] += 15.0f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, M, M, 1.0f, az, M, t, M, 0.0f, u,
                    M);
        for (int64_t e = 0; e < m * m; e++) t[e] = -u[e];
        for (int64_t i = 0; i < m; i++) t[i * m + i] += 13.0f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, M, M, 0.25f, z, M, t, M, 0.0f, u,
                    M);
        memcpy(z, u, (size_t)(m * m) * sizeof(float));
    }
    ab_free(az);
    return AB_OK;
}

/* Row-wise softmax of s (nr, nc) in place: e^(s - row max) / row sum (the sum in double). */
static void softmax_rows(float *s, int64_t nr, int64_t nc)
{
    for (int64_t r = 0; r < nr; r++) {
        float *row = s + r * nc, mx = -INFINITY;
        for (int64_t j = 0; j < nc; j++) mx = row[j] > mx ? row[j] : mx;
        double z = 0;
        for (int64_t j = 0; j < nc; j++) {
            row[j] = expf(row[j] - mx);
            z += row[j];
        }
        float inv = (float)(1 / z);
        for (int64_t j = 0; j < nc; j++) row[j] *= inv;
    }
}

/* out (nr, dv) = softmax(scale x y_k^T) y_v for query rows x (nr, d) against keys y_k (nk, d)
 * and values y_v (nk, dv), in blocks of RB query rows. AB_OK or AB_E_NOMEM. */
static int softmax_mul(const float *x, int64_t nr, const float *yk, const float *yv, int64_t nk,
                       int64_t d, int64_t dv, double scale, float *out)
{
    float *s = ab_alloc(ab_size_mul((size_t)(RB * nk), sizeof(float))); /* (RB, nk) */
    if (!s) return ab_fail(AB_E_NOMEM, "cannot allocate a block of %lld scores", (long long)nk);
    for (int64_t r0 = 0; r0 < nr; r0 += RB) {
        int64_t rn = AB_MIN(RB, nr - r0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rn, (int)nk, (int)d, (float)scale,
                    x + r0 * d, (int)d, yk, (int)d, 0.0f, s, (int)nk);
        softmax_rows(s, rn, nk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rn, (int)dv, (int)nk, 1.0f, s,
                    (int)nk, yv, (int)dv, 0.0f, out + r0 * dv, (int)dv);
    }
    ab_free(s);
    return AB_OK;
}

/* O of the evaluated rows = softmax(scale Q yk^T) yv over m pooled rows yk (m, d), yv (m, dv):
 * every block of RB sequence rows holding an evaluated row is computed whole. Adds the score
 * entries computed to *cells. */
static int rows_attend(const struct ab_problem *p, const float *yk, const float *yv, int64_t m,
                       float *o, double *cells)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v, n = h->n_q;
    float *blk = ab_alloc(ab_size_mul((size_t)(RB * dv), sizeof(float))); /* (RB, dv) */
    if (!blk) return ab_fail(AB_E_NOMEM, "cannot allocate an output block");
    int rc = AB_OK;
    for (int64_t r = 0; r < p->n_rows && !rc;) {
        int64_t i0 = p->rows[r] / RB * RB, i1 = AB_MIN(n, i0 + RB);
        rc = softmax_mul(h->q + i0 * d, i1 - i0, yk, yv, m, d, dv, h->scale, blk);
        *cells += (double)((i1 - i0) * m);
        for (; r < p->n_rows && p->rows[r] < i1; r++)
            memcpy(o + r * dv, blk + (p->rows[r] - i0) * dv, (size_t)dv * sizeof(float));
    }
    ab_free(blk);
    return rc;
}

/* Refuses what these methods cannot do: a causal mask, decode, n_q != n_k. */
static int lm_check(const struct ab_problem *p, const char *name)
{
    assert(p->h->rope_theta == 0);
    if (p->h->mask != AB_MASK_FULL)
        return ab_fail(AB_E_USAGE, "%s: supports the full mask only, not a causal one", name);
    if (p->phase != AB_PHASE_PREFILL || p->q0 != 0 || p->h->n_q != p->h->n_k)
        return ab_fail(AB_E_USAGE, "%s: supports prefill only", name);
    return AB_OK;
}

/* The knob as a segment count in [1, n]. */
static int64_t lm_segments(const struct ab_problem *p, double knob)
{
    int64_t m = (int64_t)knob;
    return AB_MAX(1, AB_MIN(m, p->h->n_k));
}

/* ---- nystrom ---- */

static int nystrom_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    double n = (double)h->n_k, m = (double)lm_segments(p, knob), d = (double)h->d;
    ab_ledger_attend(led, h, 2 * n * m + m * m);
    led->flops_attend += 8.0 * NEWTON_ITERS * m * m * m + 2 * n * d;
    led->bytes_kv += 4 * n * d;
    return AB_OK;
}

static int nystrom_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                       struct ab_ledger *led)
{
    (void)keep;
    int rc = lm_check(p, "nystrom");
    if (rc) return rc;
    nystrom_cost(p, knob, led);
    if (!o) return AB_OK;
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, dv = h->d_v, m = lm_segments(p, knob);
    float *qt = ab_alloc(ab_size_mul((size_t)(2 * m * d + 2 * m * m + 2 * m * dv), sizeof(float)));
    if (!qt) return ab_fail(AB_E_NOMEM, "nystrom: cannot allocate %lld landmarks", (long long)m);
    float *kt = qt + m * d, *a = kt + m * d, *z = a + m * m; /* (m, d), (m, d), (m, m), (m, m) */
    float *bv = z + m * m, *w = bv + m * dv;                 /* (m, dv), (m, dv) */
    ab_lm_pool(h->q, n, d, m, qt);
    ab_lm_pool(h->k, n, d, m, kt);
    double cells = 0;
    /* A = softmax(s Q~ K~^T) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)m, (int)d, (float)h->scale,
                qt, (int)d, kt, (int)d, 0.0f, a, (int)m);
    softmax_rows(a, m, m);
    rc = ab_lm_pinv(a, m, NEWTON_ITERS, z);
    /* B V = softmax(s Q~ K^T) V (m, dv); W = pinv(A) (B V) */
    if (!rc) rc = softmax_mul(qt, m, h->k, h->v, n, d, dv, h->scale, bv);
    if (!rc) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)dv, (int)m, 1.0f, z,
                    (int)m, bv, (int)dv, 0.0f, w, (int)dv);
        cells += (double)(m * n + m * m);
        /* O = softmax(s Q K~^T) W */
        rc = rows_attend(p, kt, w, m, o, &cells);
    }
    ab_attend_counter_add(cells);
    ab_free(qt);
    return rc;
}

const struct ab_method ab_method_nystrom = {
    .name = "nystrom",
    .family = AB_FAMILY_LINEAR,
    .summary = "Nystrom approximation: m segment-mean landmarks, pinv by 6 Newton iterations",
    .citation = "Nystromformer, Xiong et al. 2021, arXiv 2102.03902",
    .cost_words = "8nmd + 4m^2d + 48m^3, plus 2nd to pool Q and K",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_FULL,
    .knob = {.name = "m", .lo = 1, .hi = 0, .integer = 1, .def = 64, .unit = "landmarks"},
    /* F pinv(A) B 1 = 1 only when pinv(A) is exact: rows need not sum to 1 */
    .flags = AB_METHOD_ANALYTIC | AB_METHOD_UNNORMALISED,
    .cost = nystrom_cost,
    .run = nystrom_run,
};

/* ---- key-pooling ---- */

static int key_pooling_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    double n = (double)h->n_k, m = (double)lm_segments(p, knob);
    ab_ledger_attend(led, h, n * m);
    led->flops_attend += n * (double)(h->d + h->d_v);
    led->bytes_kv += 4 * n * (double)(h->d + h->d_v);
    return AB_OK;
}

static int key_pooling_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                           struct ab_ledger *led)
{
    (void)keep;
    int rc = lm_check(p, "key-pooling");
    if (rc) return rc;
    key_pooling_cost(p, knob, led);
    if (!o) return AB_OK;
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, dv = h->d_v, m = lm_segments(p, knob);
    float *kt = ab_alloc(ab_size_mul((size_t)(m * (d + dv)), sizeof(float)));
    if (!kt)
        return ab_fail(AB_E_NOMEM, "key-pooling: cannot allocate %lld pooled keys", (long long)m);
    float *vt = kt + m * d; /* (m, d), (m, dv) */
    ab_lm_pool(h->k, n, d, m, kt);
    ab_lm_pool(h->v, n, dv, m, vt);
    double cells = 0;
    rc = rows_attend(p, kt, vt, m, o, &cells);
    ab_attend_counter_add(cells);
    ab_free(kt);
    return rc;
}

const struct ab_method ab_method_key_pooling = {
    .name = "key-pooling",
    .family = AB_FAMILY_LINEAR,
    .summary = "exact softmax over K and V mean-pooled into m segments (Linformer stand-in)",
    .citation = "Linformer, Wang et al. 2020, arXiv 2006.04768 (pooling as the projection)",
    .cost_words = "4nmd, plus n(d + d_v) to pool K and V",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_FULL,
    .knob = {.name = "m", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "segments"},
    .flags = AB_METHOD_ANALYTIC,
    .cost = key_pooling_cost,
    .run = key_pooling_run,
};

/* ---- agent ---- */

static int agent_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    double n = (double)h->n_k, m = (double)lm_segments(p, knob);
    ab_ledger_attend(led, h, 2 * n * m);
    led->flops_attend += n * (double)h->d;
    return AB_OK;
}

static int agent_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    (void)keep;
    int rc = lm_check(p, "agent");
    if (rc) return rc;
    agent_cost(p, knob, led);
    if (!o) return AB_OK;
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, dv = h->d_v, m = lm_segments(p, knob);
    float *ag = ab_alloc(ab_size_mul((size_t)(m * (d + dv)), sizeof(float)));
    if (!ag) return ab_fail(AB_E_NOMEM, "agent: cannot allocate %lld agents", (long long)m);
    float *va = ag + m * d; /* (m, d) agents, (m, dv) their values */
    ab_lm_pool(h->q, n, d, m, ag);
    /* aggregation V_A = softmax(s A K^T) V, then broadcast O = softmax(s Q A^T) V_A */
    rc = softmax_mul(ag, m, h->k, h->v, n, d, dv, h->scale, va);
    double cells = (double)(m * n);
    if (!rc) rc = rows_attend(p, ag, va, m, o, &cells);
    ab_attend_counter_add(cells);
    ab_free(ag);
    return rc;
}

const struct ab_method ab_method_agent = {
    .name = "agent",
    .family = AB_FAMILY_LINEAR,
    .summary = "agent attention: m pooled-query agents aggregate K, V and broadcast to queries",
    .citation = "Agent Attention, Han et al. 2023, arXiv 2312.08874",
    .cost_words = "8nmd (m agents), plus nd to pool Q",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_FULL,
    .knob = {.name = "agents", .lo = 1, .hi = 0, .integer = 1, .def = 64, .unit = "agents"},
    .flags = AB_METHOD_ANALYTIC,
    .cost = agent_cost,
    .run = agent_run,
};
