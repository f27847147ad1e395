/* test_methods_linear_more.c - defining properties of based, retnet and gated-delta (issue 18):
 * - based: the Taylor features give phi(q).phi(k) = 1 + a + a^2 / 2 for a = q'.k' computed
 *   independently in double (and a = scale q.k when d' = d), the projection is orthonormal, and
 *   the output equals a double statement of the rule, (Taylor linear attention + softmax over the
 *   last w keys) / 2, at several windows including w = n, in prefill and decode;
 * - retnet: equals a double-precision quadratic statement (QK^T (.) D~, rows divided by
 *   max(|row sum|, 1)) at several chunk sizes, prefill and decode, on data where both branches
 *   of the max occur;
 * - gated-delta: with alpha = 1 it is delta-const; on a hand-built sequence of orthogonal keys
 *   with beta = 1 a stored value is read back decayed by alpha per later write; and it equals a
 *   double statement of S_t = alpha S (I - beta k k^T) + beta v k^T (matrix form) at the row's
 *   own gate convention, prefill and decode.
 * The generic battery (test_methods.c) runs the properties every row shares. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/linear_more.h"
#include "methods/method.h"
#include "methods_fixtures.h"

enum { N = 160, D = 32, M = 24, HEADS = 4, KV = 2 };

static const char *phase_name(int64_t m)
{
    return m ? "decode" : "prefill";
}

/* ---- based ---- */

/* x' (dp) = sqrt(scale d / dp) P x in double */
static void reduce(const double *proj, int64_t dp, int64_t d, double scale, const float *x,
                   double *xp)
{
    for (int64_t a = 0; a < dp; a++) {
        double acc = 0;
        for (int64_t e = 0; e < d; e++) acc += proj[a * d + e] * x[e];
        xp[a] = sqrt(scale * (double)d / (double)dp) * acc;
    }
}

Test(based, taylor_features_give_one_plus_x_plus_half_x_squared)
{
    for (int64_t d = 16; d <= 64; d += 48) { /* d' = d (a rotation) and d' = 16 < d */
        int64_t dp = 16, f = 1 + dp + dp * dp, rows = 12;
        double scale = 1 / sqrt((double)d), *proj = malloc(sizeof(double) * (size_t)(dp * d));
        float *x = malloc(sizeof(float) * (size_t)(rows * d));
        float *phi = malloc(sizeof(float) * (size_t)(rows * f));
        struct ab_rng r;
        ab_rng_init(&r, 5, 77);
        for (int64_t e = 0; e < rows * d; e++) x[e] = (float)(1.5 * ab_rng_normal(&r));
        cr_assert_eq(ab_based_projection(9, 3, d, dp, proj), AB_OK);
        for (int64_t a = 0; a < dp; a++) /* orthonormal rows */
            for (int64_t b = 0; b < dp; b++) {
                double dot = 0;
                for (int64_t e = 0; e < d; e++) dot += proj[a * d + e] * proj[b * d + e];
                cr_assert(fabs(dot - (a == b)) < 1e-12, "P P^T [%ld][%ld] = %g", (long)a, (long)b,
                          dot);
            }
        ab_based_features(x, rows, d, proj, dp, scale, phi);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < rows; j++) {
                double xi[16], xj[16], a = 0, got = 0;
                reduce(proj, dp, d, scale, x + i * d, xi);
                reduce(proj, dp, d, scale, x + j * d, xj);
                for (int64_t c = 0; c < dp; c++) a += xi[c] * xj[c];
                for (int64_t c = 0; c < f; c++) got += (double)phi[i * f + c] * phi[j * f + c];
                double want = 1 + a + a * a / 2;
                cr_assert(fabs(got - want) <= 1e-5 * (1 + fabs(want)),
                          "d %ld rows %ld %ld: phi.phi = %.9g, 1 + a + a^2/2 = %.9g (a = %g)",
                          (long)d, (long)i, (long)j, got, want, a);
                if (d == dp) { /* a rotation: a is the scaled logit itself */
                    double s = scale * fx_dot(x + i * d, x + j * d, d);
                    cr_assert(fabs(a - s) <= 1e-9 * (1 + fabs(s)), "a %g vs s q.k %g", a, s);
                }
            }
        free(proj), free(x), free(phi);
    }
}

/* Based in double from its definition: (Taylor linear attention over keys j <= i + softmax over
 * keys i - w < j <= i) / 2, a = q'.k' through the row's own projection. */
static double *ref_based(const struct ab_problem *p, int64_t w)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v, dp = d < 16 ? d : 16;
    double *proj = malloc(sizeof(double) * (size_t)(dp * d));
    cr_assert_eq(ab_based_projection(
                     p->seed,
                     ab_stream(AB_BASED_STREAM, (uint64_t)p->layer_index, (uint64_t)p->self, 0), d,
                     dp, proj),
                 AB_OK);
    double *ref = calloc((size_t)(p->n_rows * dv), sizeof(double)),
           *num = malloc(sizeof(double) * (size_t)dv);
    double *num2 = malloc(sizeof(double) * (size_t)dv);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r];
        double qp[16], kp[16], z = 0, z2 = 0, mx = -INFINITY;
        reduce(proj, dp, d, h->scale, h->q + i * d, qp);
        memset(num, 0, sizeof(double) * (size_t)dv), memset(num2, 0, sizeof(double) * (size_t)dv);
        for (int64_t j = 0; j <= i; j++) {
            reduce(proj, dp, d, h->scale, h->k + j * d, kp);
            double a = 0;
            for (int64_t c = 0; c < dp; c++) a += qp[c] * kp[c];
            double wt = 1 + a + a * a / 2;
            z += wt;
            for (int64_t c = 0; c < dv; c++) num[c] += wt * h->v[j * dv + c];
        }
        int64_t lo = i - w + 1 > 0 ? i - w + 1 : 0;
        for (int64_t j = lo; j <= i; j++)
            mx = fmax(mx, h->scale * fx_dot(h->q + i * d, h->k + j * d, d));
        for (int64_t j = lo; j <= i; j++) {
            double e = exp(h->scale * fx_dot(h->q + i * d, h->k + j * d, d) - mx);
            z2 += e;
            for (int64_t c = 0; c < dv; c++) num2[c] += e * h->v[j * dv + c];
        }
        for (int64_t c = 0; c < dv; c++) ref[r * dv + c] = 0.5 * (num[c] / z + num2[c] / z2);
    }
    free(proj), free(num), free(num2);
    return ref;
}

Test(based, equals_taylor_linear_plus_window_softmax_in_double)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, N, D, 2.0, 41);
    const struct ab_method *m = fx_method("based");
    for (int64_t mm = 0; mm <= M; mm += M)
        for (int64_t head = 0; head < HEADS; head += 3) {
            int64_t ws[] = {1, 5, 64, N};
            for (int s = 0; s < 4; s++) {
                struct ab_problem p = fx_problem(&L, head, mm);
                float *o = fx_run_out(m, &p, (double)ws[s]);
                double *ref = ref_based(&p, ws[s]);
                double e = fx_max_row_err(o, ref, p.n_rows, D);
                cr_expect(e < 2e-5, "based w %ld head %ld (%s): row error %g", (long)ws[s],
                          (long)head, phase_name(mm), e);
                free(o), free(ref);
            }
        }
    fx_layer_free(&L);
}

/* The projection is drawn from the problem's seed: another seed gives another output (at w = n
 * the window half is the same exact attention, so the difference is the linear half's). */
Test(based, the_projection_follows_the_seed)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, N, D, 2.0, 42);
    const struct ab_method *m = fx_method("based");
    struct ab_problem p = fx_problem(&L, 1, 0), p2 = p;
    p2.seed = 2;
    float *o = fx_run_out(m, &p, N), *o2 = fx_run_out(m, &p2, N);
    double diff = 0;
    for (int64_t x = 0; x < p.n_rows * D; x++) diff = fmax(diff, fabs(o[x] - o2[x]));
    cr_expect(diff > 1e-3, "based: the seed of the projection changes nothing (%g)", diff);
    free(o), free(o2);
    fx_layer_free(&L);
}

/* ---- retnet ---- */

/* Retention in double, quadratic: R_nm = s q.k gamma^(n-m) / sqrt(sum_{i<=n} gamma^(n-i)),
 * o = R V / max(|sum R|, 1); *small / *large count rows with |sum R| below / above 1. */
static double *ref_retnet(const struct ab_problem *p, int *small, int *large)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v;
    double gamma = 1 - pow(2.0, -5.0 - (double)p->self);
    double *ref = calloc((size_t)(p->n_rows * dv), sizeof(double));
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t n = p->rows[r];
        double dsum = 0, rsum = 0;
        for (int64_t i = 0; i <= n; i++) dsum += pow(gamma, (double)(n - i));
        for (int64_t j = 0; j <= n; j++) {
            double rr = h->scale * fx_dot(h->q + n * d, h->k + j * d, d) *
                        pow(gamma, (double)(n - j)) / sqrt(dsum);
            rsum += rr;
            for (int64_t c = 0; c < dv; c++) ref[r * dv + c] += rr * h->v[j * dv + c];
        }
        double z = fabs(rsum) > 1 ? fabs(rsum) : 1;
        *small += fabs(rsum)<1, *large += fabs(rsum)> 1;
        for (int64_t c = 0; c < dv; c++) ref[r * dv + c] /= z;
    }
    return ref;
}

Test(retnet, equals_the_quadratic_form_in_double)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, N, D, 2.0, 43);
    const struct ab_method *m = fx_method("retnet");
    int small = 0, large = 0;
    for (int64_t mm = 0; mm <= M; mm += M)
        for (int64_t head = 0; head < HEADS; head++) {
            struct ab_problem p = fx_problem(&L, head, mm);
            double *ref = ref_retnet(&p, &small, &large);
            int64_t cs[] = {1, 7, 64, N};
            for (int s = 0; s < 4; s++) {
                float *o = fx_run_out(m, &p, (double)cs[s]);
                double e = fx_max_row_err(o, ref, p.n_rows, D);
                cr_expect(e < 1e-4, "retnet C %ld head %ld (%s): row error %g", (long)cs[s],
                          (long)head, phase_name(mm), e);
                free(o);
            }
            free(ref);
        }
    /* both branches of max(|sum R|, 1) were exercised */
    cr_expect(small > 0 && large > 0, "rows with |sum R| < 1: %d, > 1: %d", small, large);
    fx_layer_free(&L);
}

/* ---- gated-delta ---- */

Test(gated_delta, alpha_one_is_delta_const)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, N, D, 2.0, 44);
    for (int64_t mm = 0; mm <= M; mm += M) {
        struct ab_problem p = fx_problem(&L, 2, mm);
        for (double beta = 0.25; beta <= 1; beta += 0.75) {
            float *dc = fx_run_out(fx_method("delta-const"), &p, beta);
            float *o = malloc(sizeof(float) * (size_t)(p.n_rows * D));
            struct ab_ledger led = {0};
            cr_assert_eq(ab_gated_delta_run(&p, beta, 1.0, o, &led), AB_OK, "%s", ab_errmsg());
            for (int64_t x = 0; x < p.n_rows * D; x++)
                cr_assert(fabsf(o[x] - dc[x]) <= 1e-6f * (1 + fabsf(dc[x])),
                          "beta %g (%s) element %ld: %g vs delta-const %g", beta, phase_name(mm),
                          (long)x, o[x], dc[x]);
            free(dc), free(o);
        }
    }
    fx_layer_free(&L);
}

/* Keys e_0, e_1, .., e_{d-1} (orthogonal unit vectors) written with beta = 1: S_t =
 * sum_{s <= t} alpha^(t - s) v_s e_s^T, so query e_0 at step t reads alpha^t v_0 and query e_t
 * reads v_t. */
Test(gated_delta, orthogonal_keys_are_read_back_decayed_by_alpha_per_step)
{
    enum { T = 6, DD = 8 };
    float q[T * DD] = {0}, k[T * DD] = {0}, v[T * DD];
    int32_t pos[T];
    struct ab_rng r;
    ab_rng_init(&r, 3, 4);
    for (int64_t t = 0; t < T; t++) {
        pos[t] = (int32_t)t;
        k[t * DD + t] = 2.0f; /* norms are divided out */
        q[t * DD + (t % 2 ? t : 0)] = 0.5f;
        for (int64_t c = 0; c < DD; c++) v[t * DD + c] = (float)ab_rng_normal(&r);
    }
    struct ab_head h = {.n_q = T,
                        .n_k = T,
                        .d = DD,
                        .d_v = DD,
                        .q = q,
                        .k = k,
                        .v = v,
                        .q_pos = pos,
                        .k_pos = pos,
                        .mask = AB_MASK_CAUSAL,
                        .scale = 1};
    int64_t rows[T] = {0, 1, 2, 3, 4, 5};
    struct ab_problem p = {.h = &h,
                           .phase = AB_PHASE_PREFILL,
                           .rows = rows,
                           .n_rows = T,
                           .layer = &h,
                           .n_layer_heads = 1,
                           .group = 1,
                           .seed = 1};
    float o[T * DD];
    struct ab_ledger led = {0};
    double alpha = 0.7;
    cr_assert_eq(ab_gated_delta_run(&p, 1.0, alpha, o, &led), AB_OK);
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < DD; c++) {
            /* odd rows query their own key (just written), even rows query e_0 */
            double want = t % 2 ? v[t * DD + c] : pow(alpha, (double)t) * v[c];
            cr_assert(fabs(o[t * DD + c] - want) < 1e-6, "row %ld col %ld: %g, want %g", (long)t,
                      (long)c, o[t * DD + c], want);
        }
    /* the row's own gate: lightning's decay of head 0 of 1, exp(-2^-8) */
    cr_assert_eq(fx_method_run(fx_method("gated-delta"), &p, 1.0, o, NULL, &led), AB_OK);
    for (int64_t c = 0; c < DD; c++)
        cr_assert(fabs(o[4 * DD + c] - pow(exp(-pow(2.0, -8.0)), 4) * v[c]) < 1e-6);
}

/* The gated delta rule in double, matrix form: S = alpha S (I - beta k^ k^^T) + beta v k^^T,
 * with the gate of the row's convention, alpha_h = exp(-2^(-8 (h + 1) / H)). */
static double *ref_gated(const struct ab_problem *p, double beta)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v;
    double alpha = exp(-pow(2.0, -8.0 * (double)(p->self + 1) / (double)p->n_layer_heads));
    double *s = calloc((size_t)(dv * d), sizeof(double)),
           *t = malloc(sizeof(double) * (size_t)(dv * d));
    double *a = malloc(sizeof(double) * (size_t)(d * d)), *kh = malloc(sizeof(double) * (size_t)d);
    double *ref = calloc((size_t)(p->n_rows * dv), sizeof(double));
    int64_t r = 0;
    for (int64_t j = 0; j < h->n_k && r < p->n_rows; j++) {
        double nk = sqrt(fx_dot(h->k + j * d, h->k + j * d, d));
        for (int64_t c = 0; c < d; c++) kh[c] = h->k[j * d + c] / nk;
        for (int64_t x = 0; x < d; x++) /* A = I - beta k^ k^^T */
            for (int64_t y = 0; y < d; y++) a[x * d + y] = (x == y) - beta * kh[x] * kh[y];
        for (int64_t x = 0; x < dv; x++)
            for (int64_t y = 0; y < d; y++) {
                double acc = 0;
                for (int64_t z = 0; z < d; z++) acc += s[x * d + z] * a[z * d + y];
                t[x * d + y] = alpha * acc + beta * h->v[j * dv + x] * kh[y];
            }
        memcpy(s, t, sizeof(double) * (size_t)(dv * d));
        if (p->rows[r] == j) {
            double nq = sqrt(fx_dot(h->q + j * d, h->q + j * d, d));
            for (int64_t x = 0; x < dv; x++) {
                double acc = 0;
                for (int64_t y = 0; y < d; y++) acc += s[x * d + y] * h->q[j * d + y] / nq;
                ref[r * dv + x] = acc;
            }
            r++;
        }
    }
    free(s), free(t), free(a), free(kh);
    return ref;
}

Test(gated_delta, equals_the_gated_delta_rule_in_double)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, 96, 16, 2.0, 45);
    for (int64_t mm = 0; mm <= 16; mm += 16)
        for (int64_t head = 0; head < HEADS; head += 3)
            for (double beta = 0.1; beta <= 1; beta += 0.45) {
                struct ab_problem p = fx_problem(&L, head, mm);
                float *o = fx_run_out(fx_method("gated-delta"), &p, beta);
                double *ref = ref_gated(&p, beta);
                double e = fx_max_row_err(o, ref, p.n_rows, 16);
                cr_expect(e < 1e-5, "gated-delta beta %g head %ld (%s): row error %g", beta,
                          (long)head, phase_name(mm), e);
                free(o), free(ref);
            }
    fx_layer_free(&L);
}
