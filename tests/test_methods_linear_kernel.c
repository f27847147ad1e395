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
    cr_assert_eq(m->run(p, knob, o, NULL, &led), AB_OK, "%s: %s", m->name, ab_errmsg());
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
