/* test_methods_linear_window.c - defining properties of `window-linear` (window_linear.c): its
 * FAVOR+ estimate is unbiased, its chunked and recurrent passes agree, w >= n is dense under
 * both masks, no key or value after row i changes rows <= i (prefill and decode), the remote
 * estimate beats dropping the remote keys on a diffuse head, and the ledger is its formula. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/method.h"
#include "methods/window_linear.h"
#include "methods_fixtures.h"

enum { N = 300, D = 32, M = 24 };

/* The mean over 400 seeds of phi(q).phi(k) lies within 3 standard errors of exp(s q.k) (moderate
 * norms: for large ones the estimate is so heavy-tailed that a sample standard error means little).
 */
Test(window_linear, favor_estimate_is_unbiased)
{
    enum { SEEDS = 400, MF = AB_WL_M };
    struct ab_rng r;
    ab_rng_init(&r, 51, 0);
    float x[2 * D], omega[MF * D], f[2 * MF];
    for (int64_t c = 0; c < 2 * D; c++) x[c] = (float)(0.4 * ab_rng_normal(&r));
    double s = 1 / sqrt((double)D), dot = 0;
    for (int64_t c = 0; c < D; c++) dot += (double)x[c] * x[D + c];
    double want = exp(s * dot), sum = 0, sum2 = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        double lg[2];
        cr_assert_eq(ab_wl_omega(seed, 7, MF, D, omega), AB_OK);
        ab_wl_features(x, 2, D, omega, MF, s, f, lg);
        double e = 0;
        for (int64_t t = 0; t < MF; t++) e += (double)f[t] * f[MF + t];
        e *= exp(lg[0] + lg[1]);
        sum += e, sum2 += e * e;
    }
    double mean = sum / SEEDS, se = sqrt((sum2 / SEEDS - mean * mean) / (SEEDS - 1));
    cr_expect(fabs(mean - want) <= 3 * se, "mean %g, exp(s q.k) %g, se %g", mean, want, se);
    cr_expect(se < 0.1 * want, "se %g of %g: the estimate is too noisy to test", se, want);
}

/* The chunked pass (C = 64, masked partial blocks) and the recurrent one (C = 1) agree. */
Test(window_linear, chunked_and_recurrent_passes_agree)
{
    enum { NN = 400, MF = AB_WL_M, DV1 = D + 1 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, NN, D, 2.0, 52);
    float *omega = malloc(sizeof(float) * MF * D), *fk = malloc(sizeof(float) * NN * MF);
    float *v1 = malloc(sizeof(float) * NN * DV1), *r1 = calloc(NN * DV1, sizeof(float));
    float *r64 = calloc(NN * DV1, sizeof(float));
    double *bk = malloc(sizeof(double) * NN), *aq = malloc(sizeof(double) * NN);
    double *l1 = malloc(sizeof(double) * NN), *l64 = malloc(sizeof(double) * NN);
    float *fq = malloc(sizeof(float) * NN * MF);
    uint8_t need[NN];
    memset(need, 1, sizeof need);
    double s = 1 / sqrt((double)D);
    cr_assert_eq(ab_wl_omega(3, 5, MF, D, omega), AB_OK);
    ab_wl_features(L.q, NN, D, omega, MF, s, fq, aq);
    ab_wl_features(L.k, NN, D, omega, MF, s, fk, bk);
    for (int64_t j = 0; j < NN; j++) {
        memcpy(v1 + j * DV1, L.v + j * D, sizeof(float) * D);
        v1[j * DV1 + D] = 1;
    }
    for (int64_t w = 1; w <= 150; w += 37) {
        cr_assert_eq(ab_wl_pass(fq, aq, 0, NN, fk, bk, v1, NN, DV1, MF, w, 64, need, r64, l64),
                     AB_OK);
        cr_assert_eq(ab_wl_pass(fq, aq, 0, NN, fk, bk, v1, NN, DV1, MF, w, 1, need, r1, l1), AB_OK);
        for (int64_t i = 0; i < NN; i++) {
            cr_assert_eq(isinf(l1[i]) != 0, isinf(l64[i]) != 0, "w %ld row %ld", (long)w, (long)i);
            cr_assert_eq(isinf(l1[i]) != 0, i < w, "w %ld row %ld: remote keys exist iff i >= w",
                         (long)w, (long)i);
            if (isinf(l1[i])) continue;
            /* the same sums, possibly at different stabilisers */
            for (int64_t c = 0; c < DV1; c++) {
                double a = r1[i * DV1 + c] * exp(l1[i] - l64[i]), b = r64[i * DV1 + c];
                cr_assert(fabs(a - b) <= 1e-4 * (fabs(b) + r64[i * DV1 + D]),
                          "w %ld row %ld col %ld: %g vs %g", (long)w, (long)i, (long)c, a, b);
            }
        }
    }
    free(omega), free(fk), free(v1), free(r1), free(r64), free(bk), free(aq), free(l1), free(l64),
        free(fq);
    fx_layer_free(&L);
}

Test(window_linear, w_at_least_n_is_dense)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 4.0, 53);
    const struct ab_method *m = fx_method("window-linear");
    for (int mask = AB_MASK_CAUSAL; mask <= AB_MASK_FULL; mask++)
        for (int64_t dec = 0; dec <= M; dec += M) {
            L.heads[0].mask = mask;
            struct ab_problem p = fx_problem(&L, 0, dec);
            struct ab_ledger led;
            double e = fx_rel_l2(m, &p, N, &led, NULL);
            cr_expect(e <= 1e-5, "mask %d decode %ld: rel_l2 %g at w = n", mask, (long)dec, e);
            double e8 = fx_rel_l2(m, &p, 8, &led, NULL);
            cr_expect(e8 > 1e-3, "mask %d decode %ld: rel_l2 %g at w = 8", mask, (long)dec, e8);
        }
    fx_layer_free(&L);
}

/* Keys and values after row `cut` replaced by large ones: rows <= cut unchanged, bit for bit. */
Test(window_linear, no_future_leak)
{
    const struct ab_method *m = fx_method("window-linear");
    for (int64_t dec = 0; dec <= M; dec += M)
        for (int64_t w = 5; w <= 200; w += 65) {
            struct fx_layer L;
            fx_layer_make(&L, 1, 1, N, D, 4.0, 54);
            struct ab_problem p = fx_problem(&L, 0, dec);
            float *a = malloc(sizeof(float) * p.n_rows * D),
                  *b = malloc(sizeof(float) * p.n_rows * D);
            struct ab_ledger led = {0};
            cr_assert_eq(fx_method_run(m, &p, (double)w, a, NULL, &led), AB_OK, "%s", ab_errmsg());
            int64_t cut = dec ? N - M / 2 : N / 2 + 7;
            for (int64_t j = cut + 1; j < N; j++)
                for (int64_t c = 0; c < D; c++) {
                    L.k[j * D + c] = c % 2 ? 30.0f : -30.0f;
                    L.v[j * D + c] = 1e6f;
                }
            cr_assert_eq(fx_method_run(m, &p, (double)w, b, NULL, &led), AB_OK);
            int64_t changed = 0;
            for (int64_t r = 0; r < p.n_rows; r++)
                for (int64_t c = 0; c < D; c++) {
                    if (p.rows[r] <= cut)
                        cr_assert(a[r * D + c] == b[r * D + c], "w %ld decode %ld: row %ld changed",
                                  (long)w, (long)dec, (long)p.rows[r]);
                    else
                        changed += a[r * D + c] != b[r * D + c];
                }
            cr_expect(changed > 0, "the perturbation reached no later row"); /* the test can fail */
            free(a), free(b);
            fx_layer_free(&L);
        }
}

/* On a diffuse head most mass lies outside a small window: estimating it beats dropping it
 * (`window` renormalises over the window alone). */
Test(window_linear, remote_estimate_beats_the_bare_window)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, 512, D, 0.3, 55);
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_ledger led;
    double e_lin = fx_rel_l2(fx_method("window-linear"), &p, 32, &led, NULL);
    double e_win = fx_rel_l2(fx_method("window"), &p, 32, &led, NULL);
    cr_expect(e_lin < 0.5 * e_win, "window-linear %g, window %g", e_lin, e_win);
    fx_layer_free(&L);
}

/* The ledger is the formula of the file header. */
Test(window_linear, ledger_formula)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 56);
    const struct ab_method *m = fx_method("window-linear");
    double mf = AB_WL_M, d = D, dv1 = D + 1, w = 40;
    for (int64_t dec = 0; dec <= M; dec += M) {
        struct ab_problem p = fx_problem(&L, 0, dec);
        struct ab_ledger led = {0};
        cr_assert_eq(m->cost(&p, w, &led), AB_OK);
        double cells = 0, np = (double)(N - p.q0), C = dec ? 1 : 64, nk = dec ? np : N;
        for (int64_t i = p.q0; i < N; i++) cells += fmin(w, (double)i + 1);
        double want = 4 * d * cells + (np + nk) * 2 * mf * d +
                      np * (2 * mf * dv1 + 2 * (C - 1) * (mf + dv1)) + nk * 2 * mf * dv1;
        cr_expect_float_eq(led.cells, cells, 1e-9);
        cr_expect_float_eq(led.flops_attend, want, 1e-9, "decode %ld: %g vs %g", (long)dec,
                           led.flops_attend, want);
        cr_expect_float_eq(led.bytes_kv, cells * 8 * d + np * 4 * mf * dv1, 1e-9);
    }
    fx_layer_free(&L);
}
