/* test_methods_linear_kernel.c - the defining properties of the kernelised linear rows
 * (kernel_linear.c and its methods linear-elu, performer, cosformer, lightning), each against an
 * independent double-precision statement of its rule: the chunked causal form equals the
 * token-by-token recurrence, decode (context state plus steps) equals the same rows of prefill,
 * the full-mask form equals its sum over all keys, and no causal form lets a key or value after
 * row i change rows <= i. The generic battery (test_methods.c) runs the shared properties. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/kernel_linear.h"
#include "methods_fixtures.h"

enum { N = 300, D = 16, M = 40 };

/* Runs m at knob on p into a fresh (n_rows, d_v) output. */
static float *run_out(const struct ab_method *m, const struct ab_problem *p, double knob)
{
    float *o = calloc((size_t)(p->n_rows * p->h->d_v), sizeof(float));
    struct ab_ledger led = {0};
    cr_assert_eq(fx_method_run(m, p, knob, o, NULL, &led), AB_OK, "%s: %s", m->name, ab_errmsg());
    return o;
}

/* max |o - ref| / max |ref| over the evaluated rows of p; ref is (n, d_v) over all rows */
static double rel_max(const struct ab_problem *p, const float *o, const double *ref)
{
    double err = 0, mag = 0;
    int64_t dv = p->h->d_v;
    for (int64_t r = 0; r < p->n_rows; r++)
        for (int64_t c = 0; c < dv; c++) {
            double x = ref[p->rows[r] * dv + c];
            err = fmax(err, fabs(o[r * dv + c] - x));
            mag = fmax(mag, fabs(x));
        }
    return err / fmax(mag, 1e-300);
}

/* Causal forms: perturbing keys and values after row `cut` leaves rows <= cut unchanged. */
static void check_no_future_leak(const char *name, double knob, int64_t m_dec)
{
    const struct ab_method *m = fx_method(name);
    for (int64_t cut = m_dec ? N - m_dec + 5 : 0; cut < N; cut += m_dec ? 17 : 61) {
        struct fx_layer L;
        fx_layer_make(&L, 2, 1, N, D, 2.0, 40 + (uint64_t)cut);
        struct ab_problem p = fx_problem(&L, 1, m_dec);
        float *before = run_out(m, &p, knob);
        struct ab_rng r;
        ab_rng_init(&r, 9, (uint64_t)cut);
        for (int64_t j = cut + 1; j < N; j++)
            for (int64_t c = 0; c < D; c++) {
                L.k[j * D + c] = (float)(8 * ab_rng_normal(&r)); /* large keys: a new max */
                L.v[j * D + c] = (float)(1e4 * ab_rng_normal(&r));
            }
        float *after = run_out(m, &p, knob);
        for (int64_t r2 = 0; r2 < p.n_rows && p.rows[r2] <= cut; r2++)
            for (int64_t c = 0; c < D; c++) {
                double a = before[r2 * D + c], b = after[r2 * D + c];
                cr_assert(fabs(a - b) <= 1e-6 * (1 + fabs(a)),
                          "%s: row %ld changed (%g -> %g) when keys after %ld changed", name,
                          (long)p.rows[r2], a, b, (long)cut);
            }
        free(before), free(after);
        fx_layer_free(&L);
    }
}

/* --- linear-elu ------------------------------------------------------------------------- */

static double elu1(double x)
{
    return x > 0 ? x + 1 : exp(x);
}

/* The recurrence S_t = S_{t-1} + phi(k_t) v_t^T, z_t = z_{t-1} + phi(k_t),
 * o_t = phi(q_t)^T S_t / phi(q_t)^T z_t (causal), or the sums over every key (full). */
static double *elu_reference(const struct ab_head *h)
{
    int64_t n = h->n_k, d = h->d, dv = h->d_v;
    double *o = calloc((size_t)(n * dv), sizeof(double)),
           *s = calloc((size_t)(d * dv), sizeof(double)), *z = calloc((size_t)d, sizeof(double));
    int full = h->mask == AB_MASK_FULL;
    for (int64_t pass = full ? 0 : 1; pass < 2; pass++)
        for (int64_t t = 0; t < n; t++) {
            if (!full || pass == 0)
                for (int64_t a = 0; a < d; a++) {
                    double fk = elu1(h->k[t * d + a]);
                    z[a] += fk;
                    for (int64_t c = 0; c < dv; c++) s[a * dv + c] += fk * h->v[t * dv + c];
                }
            if (pass == 0) continue;
            double den = 0;
            for (int64_t a = 0; a < d; a++) den += elu1(h->q[t * d + a]) * z[a];
            for (int64_t c = 0; c < dv; c++) {
                double num = 0;
                for (int64_t a = 0; a < d; a++) num += elu1(h->q[t * d + a]) * s[a * dv + c];
                o[t * dv + c] = num / den;
            }
        }
    free(s), free(z);
    return o;
}

Test(linear_elu, chunked_causal_and_recurrent_forms_agree)
{
    struct fx_layer L;
    fx_layer_make(&L, 2, 1, N, D, 2.0, 21);
    double *ref = elu_reference(&L.heads[0]);
    for (int64_t m_dec = 0; m_dec <= M; m_dec += M) {
        struct ab_problem p = fx_problem(&L, 0, m_dec);
        float *o = run_out(fx_method("linear-elu"), &p, 0);
        double e = rel_max(&p, o, ref);
        cr_expect(e < 2e-5, "linear-elu (%s): chunked vs recurrent %g",
                  m_dec ? "decode" : "prefill", e);
        free(o);
    }
    /* full mask: the same sums over every key */
    L.heads[0].mask = AB_MASK_FULL;
    double *ref_full = elu_reference(&L.heads[0]);
    for (int64_t m_dec = 0; m_dec <= M; m_dec += M) {
        struct ab_problem p = fx_problem(&L, 0, m_dec);
        float *o = run_out(fx_method("linear-elu"), &p, 0);
        cr_expect(rel_max(&p, o, ref_full) < 2e-5, "linear-elu full mask");
        free(o);
    }
    free(ref), free(ref_full);
    fx_layer_free(&L);
}

Test(linear_elu, no_future_leak)
{
    check_no_future_leak("linear-elu", 0, 0);
    check_no_future_leak("linear-elu", 0, M);
}

/* --- performer ---------------------------------------------------------------------------- */

/* sum_r exp(a_q,r + a_k,r): the FAVOR+ estimate of exp(scale q.k) with features from seed */
static double favor_estimate(uint64_t seed, int64_t m, int64_t d, double scale, const float *q,
                             const float *k)
{
    float *omega = malloc(sizeof(float) * (size_t)(m * d)), *aq = malloc(sizeof(float) * (size_t)m),
          *ak = malloc(sizeof(float) * (size_t)m);
    cr_assert_eq(ab_performer_omega(seed, m, d, omega), AB_OK);
    ab_performer_logfeat(omega, m, d, scale, q, 1, aq);
    ab_performer_logfeat(omega, m, d, scale, k, 1, ak);
    double e = 0;
    for (int64_t r = 0; r < m; r++) e += exp((double)aq[r] + ak[r]);
    free(omega), free(aq), free(ak);
    return e;
}

/* Moderate norms: the estimator's relative variance grows like exp(|q^ + k^|^2) / m, so with
 * large norms a sample mean over seeds is dominated by rare draws and looks biased. */
Test(performer, estimate_is_unbiased_and_its_error_falls_with_m)
{
    enum { SEEDS = 600 };
    float q[D], k[D];
    struct ab_rng r;
    ab_rng_init(&r, 5, 1);
    for (int c = 0; c < D; c++)
        q[c] = (float)(0.5 * ab_rng_normal(&r)),
        k[c] = (float)(0.3 * q[c] + 0.4 * ab_rng_normal(&r));
    double scale = 1 / sqrt((double)D), dot = 0;
    for (int c = 0; c < D; c++) dot += (double)q[c] * k[c];
    double truth = exp(scale * dot);
    const int64_t ms[] = {4, 16, 64, 256};
    double prev_mse = INFINITY;
    for (int t = 0; t < 4; t++) {
        double sum = 0, sum2 = 0;
        for (uint64_t s = 0; s < SEEDS; s++) {
            double e = favor_estimate(1000 + s, ms[t], D, scale, q, k);
            sum += e, sum2 += e * e;
        }
        double mean = sum / SEEDS, var = sum2 / SEEDS - mean * mean, se = sqrt(var / SEEDS);
        double mse = sum2 / SEEDS - 2 * mean * truth + truth * truth;
        cr_expect(fabs(mean - truth) <= 3 * se, "m = %ld: mean %g, truth %g, 3 se %g", (long)ms[t],
                  mean, truth, 3 * se);
        cr_expect(mse < 0.6 * prev_mse, "m = %ld: mean squared error %g did not fall from %g",
                  (long)ms[t], mse, prev_mse);
        prev_mse = mse;
    }
    /* the method's output error against exact softmax falls too (mean over heads) */
    struct fx_layer L;
    fx_layer_make(&L, 4, 2, N, D, 0.5, 23);
    double err[2] = {0, 0};
    for (int64_t head = 0; head < 4; head++) {
        struct ab_problem p = fx_problem(&L, head, 0);
        struct ab_ledger led;
        err[0] += fx_rel_l2(fx_method("performer"), &p, 8, &led, NULL);
        err[1] += fx_rel_l2(fx_method("performer"), &p, 256, &led, NULL);
    }
    cr_expect(err[1] < 0.5 * err[0], "rel_l2 at m = 256 (%g) not below half of m = 8 (%g)",
              err[1] / 4, err[0] / 4);
    fx_layer_free(&L);
}

Test(performer, no_future_leak_with_a_running_stabiliser)
{
    check_no_future_leak("performer", 32, 0);
    check_no_future_leak("performer", 32, M);
}

/* The full-mask, causal and decode forms of one draw are the same estimator: each row equals
 * sum_j e_ij v_j / sum_j e_ij with e_ij = sum_r exp(a_i,r + a_j,r) over its visible keys. */
Test(performer, forms_equal_the_estimator_they_state)
{
    enum { MF = 24 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 24);
    for (int mask = AB_MASK_CAUSAL; mask <= AB_MASK_FULL; mask++) {
        L.heads[0].mask = mask;
        for (int64_t m_dec = 0; m_dec <= M; m_dec += M) {
            struct ab_problem p = fx_problem(&L, 0, m_dec);
            const struct ab_head *h = p.h;
            float *omega = malloc(sizeof(float) * MF * D), *aq = malloc(sizeof(float) * N * MF),
                  *ak = malloc(sizeof(float) * N * MF);
            cr_assert_eq(ab_performer_omega(p.seed, MF, D, omega), AB_OK);
            ab_performer_logfeat(omega, MF, D, h->scale, h->q, N, aq);
            ab_performer_logfeat(omega, MF, D, h->scale, h->k, N, ak);
            double *ref = calloc((size_t)(N * D), sizeof(double));
            for (int64_t i = p.q0; i < N; i++) {
                double num[D] = {0}, den = 0;
                for (int64_t j = 0; j < ab_head_visible(h, i); j++) {
                    double e = 0;
                    for (int r = 0; r < MF; r++) e += exp((double)aq[i * MF + r] + ak[j * MF + r]);
                    den += e;
                    for (int c = 0; c < D; c++) num[c] += e * h->v[j * D + c];
                }
                for (int c = 0; c < D; c++) ref[i * D + c] = num[c] / den;
            }
            float *o = run_out(fx_method("performer"), &p, MF);
            double e = rel_max(&p, o, ref);
            cr_expect(e < 1e-4, "performer (%s, %s): %g from its estimator",
                      mask ? "full" : "causal", m_dec ? "decode" : "prefill", e);
            free(o), free(ref), free(omega), free(aq), free(ak);
        }
    }
    fx_layer_free(&L);
}

/* --- cosformer ---------------------------------------------------------------------------- */

/* The rule written directly: w_ij = relu(q_i).relu(k_j) cos(pi/2 (i - j) / n), o_i = sum w v /
 * sum w over the visible keys; n x n in double. */
static double *cosformer_reference(const struct ab_head *h)
{
    int64_t n = h->n_k, d = h->d;
    double *o = calloc((size_t)(n * d), sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        double num[D] = {0}, den = 0;
        for (int64_t j = 0; j < ab_head_visible(h, i); j++) {
            double dot = 0;
            for (int64_t a = 0; a < d; a++)
                dot += fmax(h->q[i * d + a], 0) * fmax(h->k[j * d + a], 0);
            double w = dot * cos(M_PI / 2 * (double)(i - j) / (double)n);
            den += w;
            for (int64_t c = 0; c < d; c++) num[c] += w * h->v[j * d + c];
        }
        for (int64_t c = 0; c < d; c++) o[i * d + c] = den > 0 ? num[c] / den : 0;
    }
    return o;
}

Test(cosformer, every_form_equals_the_cos_reweighted_rule)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 25);
    for (int mask = AB_MASK_CAUSAL; mask <= AB_MASK_FULL; mask++) {
        L.heads[0].mask = mask;
        double *ref = cosformer_reference(&L.heads[0]);
        for (int64_t m_dec = 0; m_dec <= M; m_dec += M) {
            struct ab_problem p = fx_problem(&L, 0, m_dec);
            float *o = run_out(fx_method("cosformer"), &p, 0);
            double e = rel_max(&p, o, ref);
            cr_expect(e < 2e-5, "cosformer (%s, %s): %g from the rule", mask ? "full" : "causal",
                      m_dec ? "decode" : "prefill", e);
            free(o);
        }
        free(ref);
    }
    fx_layer_free(&L);
}

Test(cosformer, no_future_leak)
{
    check_no_future_leak("cosformer", 0, 0);
    check_no_future_leak("cosformer", 0, M);
}

/* --- lightning ---------------------------------------------------------------------------- */

/* The recurrence S_t = lambda S_{t-1} + k_t v_t^T, o_t = scale S_t^T q_t, in double. */
static double *lightning_recurrent(const struct ab_head *h, double lambda)
{
    int64_t n = h->n_k, d = h->d;
    double *o = calloc((size_t)(n * d), sizeof(double)), s[D * D] = {0};
    for (int64_t t = 0; t < n; t++) {
        for (int64_t a = 0; a < d; a++)
            for (int64_t c = 0; c < d; c++)
                s[a * d + c] = lambda * s[a * d + c] + (double)h->k[t * d + a] * h->v[t * d + c];
        for (int64_t c = 0; c < d; c++) {
            double x = 0;
            for (int64_t a = 0; a < d; a++) x += (double)h->q[t * d + a] * s[a * d + c];
            o[t * d + c] = h->scale * x;
        }
    }
    return o;
}

Test(lightning, blockwise_and_recurrent_forms_agree)
{
    enum { HEADS = 4 };
    struct fx_layer L;
    fx_layer_make(&L, HEADS, 2, N, D, 2.0, 26);
    for (int64_t head = 0; head < HEADS; head += 3) {
        /* the convention: lambda_h = exp(-2^(-8 (h + 1) / H)) */
        double lambda = exp(-pow(2.0, -8.0 * (double)(head + 1) / HEADS));
        double *ref = lightning_recurrent(&L.heads[head], lambda);
        const int64_t blocks[] = {1, 7, 64, N};
        for (int b = 0; b < 4; b++)
            for (int64_t m_dec = 0; m_dec <= M; m_dec += M) {
                struct ab_problem p = fx_problem(&L, head, m_dec);
                float *o = run_out(fx_method("lightning"), &p, (double)blocks[b]);
                double e = rel_max(&p, o, ref);
                cr_expect(e < 2e-5, "lightning (head %ld, C %ld, %s): %g from the recurrence",
                          (long)head, (long)blocks[b], m_dec ? "decode" : "prefill", e);
                free(o);
            }
        free(ref);
    }
    fx_layer_free(&L);
}

Test(lightning, no_future_leak_and_full_mask_refused)
{
    check_no_future_leak("lightning", 16, 0);
    check_no_future_leak("lightning", 16, M);
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 27);
    L.heads[0].mask = AB_MASK_FULL;
    struct ab_problem p = fx_problem(&L, 0, 0);
    float *o = calloc(N * D, sizeof(float));
    struct ab_ledger led = {0};
    cr_expect_eq(fx_method_run(fx_method("lightning"), &p, 16, o, NULL, &led), AB_E_USAGE);
    cr_expect(strstr(ab_errmsg(), "full") != NULL, "message: %s", ab_errmsg());
    free(o);
    fx_layer_free(&L);
}
