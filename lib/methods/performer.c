/* performer.c - `performer`: FAVOR+ positive random features (Choromanski et al., "Rethinking
 * Attention with Performers", arXiv 2009.14794, section 2.3 and lemma 1, orthogonal features
 * section 2.4). With x^ = x sqrt(scale) (scale = 1/sqrt d: x d^-1/4),
 *     phi(x) = m^-1/2 exp(Omega x^ - |x^|^2 / 2),   E[phi(q) . phi(k)] = exp(scale q.k),
 * where Omega (m, d) stacks blocks of d orthogonal Gaussian directions, each row scaled by an
 * independent chi(d) norm (seeded by the problem's seed). Output: the normalised linear
 * attention of phi(q), phi(k) (kernel_linear.c). Knob: m features, integer in [1, n] (default
 * 256, the Performer default); cost grows with m.
 * Stabilisers (they cancel in the normalised ratio, they only keep exp in range): each query row
 * subtracts its own max over features; keys subtract a log-scale g: the global max over every
 * key and feature under the full mask, and under the causal mask the running max over keys
 * 0..j, so no key influences an earlier query; the state is rescaled by e^(g_old - g_new) when
 * the running max grows (between chunks, and inside a chunk by e^(g_j - g_i) on the block).
 * FLOPs (methods.md): full 8nmd (feature maps 2md per query and key row, state and read
 * 2 n m d_v each); causal the same + 2nC(m + d) (C = 64 intra-chunk blocks); decode 8md per
 * decode query. ops_other counts m exps per mapped row. Decode counts the per-query feature
 * maps, state update and read; the context's state is the prefill's work; bytes_kv in decode is
 * the state (m x (d_v + 1) floats) read per decode query.
 * Deviations from the paper: features are redrawn per head (seeded) rather than per layer and
 * never resampled; Omega is orthogonalised by Gram-Schmidt in double precision; no learned
 * projections; the running stabiliser of the causal form is ours (the paper's code uses a
 * global key max, which leaks the future under the causal mask). */
#include <cblas.h>
#include <math.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/kernel_linear.h"

enum { PERF_CHUNK = 64 };

extern const struct ab_method ab_method_performer;

int ab_performer_omega(uint64_t seed, int64_t m, int64_t d, float *omega)
{
    double *b = ab_alloc(ab_size_mul((size_t)(d * d), sizeof(double))); /* (d, d) one block */
    if (!b) return ab_fail(AB_E_NOMEM, "performer: cannot allocate the feature draw");
    struct ab_rng r;
    ab_rng_init(&r, seed, ab_stream(0x70657266 /* "perf" */, (uint64_t)m, (uint64_t)d, 0));
    for (int64_t r0 = 0; r0 < m; r0 += d) {
        /* a Gaussian d x d block, rows orthonormalised by Gram-Schmidt */
        for (int64_t x = 0; x < d * d; x++) b[x] = ab_rng_normal(&r);
        for (int64_t i = 0; i < d; i++) {
            double *bi = b + i * d;
            for (int64_t j = 0; j < i; j++) {
                double dot = 0, *bj = b + j * d;
                for (int64_t c = 0; c < d; c++) dot += bi[c] * bj[c];
                for (int64_t c = 0; c < d; c++) bi[c] -= dot * bj[c];
            }
            double nn = 0;
            for (int64_t c = 0; c < d; c++) nn += bi[c] * bi[c];
            nn = sqrt(nn);
            for (int64_t c = 0; c < d; c++) bi[c] /= nn;
        }
        /* each row gets the norm of an independent Gaussian d-vector (chi(d)) */
        for (int64_t i = 0; i < d && r0 + i < m; i++) {
            double chi2 = 0;
            for (int64_t c = 0; c < d; c++) {
                double g = ab_rng_normal(&r);
                chi2 += g * g;
            }
            for (int64_t c = 0; c < d; c++)
                omega[(r0 + i) * d + c] = (float)(sqrt(chi2) * b[i * d + c]);
        }
    }
    ab_free(b);
    return AB_OK;
}

int ab_performer_logfeat(const float *omega, int64_t m, int64_t d, double scale, const float *x,
                         int64_t n, float *a)
{
    double rs = sqrt(scale);
    /* a = (x Omega^T) sqrt(scale) - |x^|^2 / 2 - ln(m) / 2 */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)m, (int)d, (float)rs, x,
                (int)d, omega, (int)d, 0.0f, a, (int)m);
    for (int64_t i = 0; i < n; i++) {
        double nn = 0;
        for (int64_t c = 0; c < d; c++) nn += (double)x[i * d + c] * x[i * d + c];
        float off = (float)(nn * scale / 2 + log((double)m) / 2);
        for (int64_t r = 0; r < m; r++) a[i * m + r] -= off;
    }
    return AB_OK;
}

static int performer_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int64_t m = (int64_t)knob;
    ab_klin_ledger(p, m, PERF_CHUNK, 1, 2.0 * (double)m * (double)p->h->d, (double)m, led);
    return AB_OK;
}

static int performer_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                         struct ab_ledger *led)
{
    (void)keep;
    int rc = ab_klin_check_mask(&ab_method_performer, p);
    if (rc) return rc;
    int64_t m = (int64_t)knob;
    if (m < 1)
        return ab_fail(AB_E_USAGE, "performer: m = %lld features (at least 1)", (long long)m);
    performer_cost(p, knob, led);
    if (!o) return AB_OK;
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d;
    float *omega = ab_alloc(ab_size_mul((size_t)(m * d), sizeof(float))); /* (m, d) */
    float *qf = ab_alloc(ab_size_mul((size_t)(n * m), sizeof(float)));    /* (n, m) */
    float *kf = ab_alloc(ab_size_mul((size_t)(n * m), sizeof(float)));    /* (n, m) */
    double *g = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));         /* (n) key log-scale */
    if (!omega || !qf || !kf || !g) {
        rc = ab_fail(AB_E_NOMEM, "performer: cannot allocate %lld features for n = %lld",
                     (long long)m, (long long)n);
        goto done;
    }
    if ((rc = ab_performer_omega(p->seed, m, d, omega))) goto done;
    ab_performer_logfeat(omega, m, d, h->scale, h->q, n, qf);
    ab_performer_logfeat(omega, m, d, h->scale, h->k, n, kf);
    /* queries: each row's own max; keys: the running (causal) or global (full) max */
    for (int64_t i = 0; i < n; i++) {
        float mx = -INFINITY;
        for (int64_t r = 0; r < m; r++) mx = qf[i * m + r] > mx ? qf[i * m + r] : mx;
        for (int64_t r = 0; r < m; r++) qf[i * m + r] = expf(qf[i * m + r] - mx);
    }
    double run = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        for (int64_t r = 0; r < m; r++) run = kf[j * m + r] > run ? kf[j * m + r] : run;
        g[j] = run;
    }
    int causal = h->mask == AB_MASK_CAUSAL;
    for (int64_t j = 0; j < n; j++) {
        double gj = causal ? g[j] : g[n - 1];
        for (int64_t r = 0; r < m; r++) kf[j * m + r] = expf((float)(kf[j * m + r] - gj));
    }
    struct ab_klin k = {
        .qf = qf, .kf = kf, .g = causal ? g : NULL, .f = m, .chunk = PERF_CHUNK, .normalise = 1};
    rc = ab_klin_run(p, &k, o);
done:
    ab_free(omega), ab_free(qf), ab_free(kf), ab_free(g);
    return rc;
}

const struct ab_method ab_method_performer = {
    .name = "performer",
    .family = AB_FAMILY_LINEAR,
    .summary = "FAVOR+ positive orthogonal random features, m of them (running key stabiliser)",
    .citation = "Choromanski et al. 2020, Rethinking Attention with Performers, arXiv 2009.14794",
    .cost_words = "full 8nmd; causal 8nmd + 2nC(m+d) (C = 64); decode 8md per query",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL | AB_MASKS_FULL,
    .knob = {.name = "m", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "features"},
    .flags = AB_METHOD_ANALYTIC,
    .cost = performer_cost,
    .run = performer_run,
};
