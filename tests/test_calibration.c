/* test_calibration.c - the calibration family (act, zerotuning, redistribute, sink-logit,
 * off-by-one, uniform-head; lib/methods/calibration.c) on hand-built cases: each transform
 * against its metrics.md definition in double, and each registry row's dist() and O against
 * the transform applied to the exact map. The hand-built head has d = 2, every query (1, 0) and
 * scale 1, so the logit of key j is k_j[0]: the map is known in closed form, with a primary
 * sink at key 0 and a planted secondary sink at key 7. The generic battery (test_methods.c)
 * runs what every row shares (cost, mask, ledger, O = dist V). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/calibration.h"
#include "methods/method.h"
#include "methods_fixtures.h"

enum { N = 12, SINK2 = 7 };
static const double W0 = 8, W7 = 3; /* exp(logit) of key 0 and of key 7; the others 1 */

/* The weight the head really carries for key j: exp of the float-rounded logit. */
static double hand_w(int64_t j)
{
    return j == 0 ? exp((double)(float)log(W0)) : j == SINK2 ? exp((double)(float)log(W7)) : 1;
}

struct hand {
    float q[N * 2], k[N * 2], v[N * 2]; /* (N, 2) each */
    int32_t pos[N];
    int64_t rows[N];
    struct ab_head h;
};

static void hand_make(struct hand *t)
{
    for (int64_t j = 0; j < N; j++) {
        t->q[j * 2] = 1, t->q[j * 2 + 1] = 0;
        t->k[j * 2] = j == 0 ? (float)log(W0) : j == SINK2 ? (float)log(W7) : 0.0f;
        t->k[j * 2 + 1] = 0;
        t->v[j * 2] = (float)j, t->v[j * 2 + 1] = 1;
        t->pos[j] = (int32_t)j;
        t->rows[j] = j;
    }
    t->h = (struct ab_head){.n_q = N,
                            .n_k = N,
                            .d = 2,
                            .d_v = 2,
                            .q = t->q,
                            .k = t->k,
                            .v = t->v,
                            .q_pos = t->pos,
                            .k_pos = t->pos,
                            .mask = AB_MASK_CAUSAL,
                            .scale = 1.0,
                            .rope_theta = 0};
}

/* The prefill problem of the hand head, every row evaluated. */
static struct ab_problem hand_problem(struct hand *t)
{
    return (struct ab_problem){.h = &t->h,
                               .phase = AB_PHASE_PREFILL,
                               .q0 = 0,
                               .rows = t->rows,
                               .n_rows = N,
                               .layer = &t->h,
                               .n_layer_heads = 1,
                               .group = 1};
}

/* Exact row i of the hand map (a: N, zero past i). */
static void hand_row(int64_t i, double *a)
{
    double z = 0;
    for (int64_t j = 0; j < N; j++) {
        a[j] = j > i ? 0 : hand_w(j);
        z += a[j];
    }
    for (int64_t j = 0; j < N; j++) a[j] /= z;
}

/* dist() of row `name` at knob on the hand head: (N, N). */
static float *hand_dist(struct hand *t, const char *name, double knob, float *o)
{
    struct ab_problem p = hand_problem(t);
    const struct ab_method *m = fx_method(name);
    float *a = malloc(sizeof(float) * N * N);
    cr_assert_eq(fx_method_dist(m, &p, knob, a), AB_OK, "%s: %s", name, ab_errmsg());
    struct ab_ledger led = {0};
    if (o) cr_assert_eq(fx_method_run(m, &p, knob, o, NULL, &led), AB_OK);
    return a;
}

/* ACT: the column means find the planted secondary sink (not the primary); the transform keeps
 * rows summing to 1, shrinks the secondary sink by beta and scales every other key (the first
 * sink included) by one factor; the registry row exports exactly that. */
Test(calibration, act_shrinks_the_hidden_sink_and_keeps_rows_normalised)
{
    struct hand t;
    hand_make(&t);
    double alpha[N], brute[N] = {0}, a[N];
    cr_assert_eq(ab_calib_column_means(&t.h, N, N, alpha), AB_OK);
    for (int64_t i = 0; i < N; i++) {
        hand_row(i, a);
        for (int64_t j = 0; j <= i; j++) brute[j] += a[j] / (double)(N - j);
    }
    for (int64_t k = 0; k < N; k++)
        cr_assert(fabs(alpha[k] - brute[k]) < 1e-12, "alpha(%ld) %g vs %g", (long)k, alpha[k],
                  brute[k]);
    cr_assert(alpha[SINK2] > 0.1 && alpha[0] > 0.1, "alpha0 %g alpha7 %g", alpha[0], alpha[SINK2]);
    unsigned char in_s[N];
    cr_assert_eq(ab_calib_sink_set(alpha, N, 0.1, 1, in_s), 1);
    for (int64_t k = 0; k < N; k++) cr_assert_eq(in_s[k], k == SINK2, "key %ld", (long)k);

    const double beta = 0.4;
    float *d = hand_dist(&t, "act", beta, NULL);
    double worst_sum = 0;
    for (int64_t i = 0; i < N; i++) {
        double b[N];
        hand_row(i, a);
        memcpy(b, a, sizeof b);
        ab_calib_scale_sinks(b, i + 1, in_s, beta);
        double sum = 0;
        for (int64_t j = 0; j <= i; j++) sum += b[j];
        worst_sum = fmax(worst_sum, fabs(sum - 1));
        cr_assert(fabs(sum - 1) < 1e-12, "row %ld sums to %.17g", (long)i, sum);
        if (i >= SINK2) {
            cr_assert(fabs(b[SINK2] - beta * a[SINK2]) < 1e-15, "row %ld", (long)i);
            double f = b[0] / a[0], m = (1 - beta) * a[SINK2];
            cr_assert(fabs(f - (1 + m / (1 - a[SINK2]))) < 1e-12, "row %ld: factor %g", (long)i, f);
            for (int64_t j = 1; j <= i; j++)
                if (j != SINK2)
                    cr_assert(fabs(b[j] / a[j] - f) < 1e-12, "row %ld key %ld", (long)i, (long)j);
        } else {
            for (int64_t j = 0; j <= i; j++) cr_assert(b[j] == a[j], "row %ld changed", (long)i);
        }
        for (int64_t j = 0; j < N; j++)
            cr_assert(fabs(d[i * N + j] - (j <= i ? b[j] : 0)) < 1e-6, "dist row %ld key %ld",
                      (long)i, (long)j);
    }
    cr_log_info("act: worst |row sum - 1| = %.3g", worst_sum);
    free(d);
}

/* ACT with no hidden sink (only the primary is above 0.1) changes nothing; beta = 1 is the
 * identity. */
Test(calibration, act_without_hidden_sinks_is_the_identity)
{
    double a[5] = {0.6, 0.1, 0.1, 0.1, 0.1}, b[5];
    unsigned char in_s[5];
    double alpha[5] = {0.6, 0.05, 0.05, 0.05, 0.05};
    cr_assert_eq(ab_calib_sink_set(alpha, 5, 0.1, 1, in_s), 0);
    memcpy(b, a, sizeof a);
    ab_calib_scale_sinks(b, 5, in_s, 0.4);
    for (int j = 0; j < 5; j++) cr_assert(b[j] == a[j]);
    in_s[1] = 1;
    ab_calib_scale_sinks(b, 5, in_s, 1.0);
    for (int j = 0; j < 5; j++) cr_assert(fabs(b[j] - a[j]) < 1e-15);
}

/* ZeroTuning against its closed form, on random rows and through the registry row. */
Test(calibration, zerotuning_matches_its_closed_form)
{
    struct ab_rng r;
    ab_rng_init(&r, 5, 0);
    const double gammas[] = {0.3, 2.5};
    for (int g = 0; g < 2; g++) {
        double a[40], b[40], z = 0, gm = gammas[g];
        for (int j = 0; j < 40; j++) z += a[j] = exp(2 * ab_rng_normal(&r));
        for (int j = 0; j < 40; j++) a[j] /= z;
        memcpy(b, a, sizeof a);
        ab_calib_zerotuning(b, 40, gm);
        double den = 1 + (gm - 1) * a[0], sum = 0;
        cr_assert(fabs(b[0] - gm * a[0] / den) < 1e-15);
        for (int j = 1; j < 40; j++) cr_assert(fabs(b[j] - a[j] / den) < 1e-15);
        for (int j = 0; j < 40; j++) sum += b[j];
        cr_assert(fabs(sum - 1) < 1e-12, "sums to %.17g", sum);
    }
    struct hand t;
    hand_make(&t);
    float *d = hand_dist(&t, "zerotuning", 2.0, NULL);
    for (int64_t i = 0; i < N; i++) {
        double a[N];
        hand_row(i, a);
        double den = 1 + a[0];
        cr_assert(fabs(d[i * N] - 2 * a[0] / den) < 1e-6);
        for (int64_t j = 1; j <= i; j++) cr_assert(fabs(d[i * N + j] - a[j] / den) < 1e-6);
    }
    free(d);
}

/* Sink logit: the row is exp(z_j) / (exp(b) + sum exp(z)) and its mass plus the sink mass is
 * 1; the registry row exports the same (knob = exp(b)). */
Test(calibration, sink_logit_row_mass_plus_sink_mass_is_one)
{
    struct ab_rng r;
    ab_rng_init(&r, 6, 0);
    double zl[30], a[30], lse, mx = -INFINITY, s = 0;
    for (int j = 0; j < 30; j++) mx = fmax(mx, zl[j] = 3 * ab_rng_normal(&r));
    for (int j = 0; j < 30; j++) s += exp(zl[j] - mx);
    lse = mx + log(s);
    const double bs[] = {-2.0, 0.0, 0.7, 6.0};
    for (int t = 0; t < 4; t++) {
        double b = bs[t], sum = 0;
        for (int j = 0; j < 30; j++) a[j] = exp(zl[j] - lse);
        double sink = ab_calib_sink_logit(a, 30, lse, b);
        for (int j = 0; j < 30; j++) {
            sum += a[j];
            cr_assert(fabs(a[j] - exp(zl[j]) / (exp(b) + exp(lse))) < 1e-12 * (1 + a[j]));
        }
        cr_assert(fabs(sum + sink - 1) < 1e-12, "b %g: row %.17g + sink %.17g", b, sum, sink);
        cr_assert(fabs(sink - exp(b) / (exp(b) + exp(lse))) < 1e-12);
    }
    struct hand t;
    hand_make(&t);
    float *d = hand_dist(&t, "sink-logit", exp(0.7), NULL);
    for (int64_t i = 0; i < N; i++) {
        double z = W0 + (i >= SINK2 ? W7 : 0) + (double)(i - (i >= SINK2 ? 1 : 0)), sum = 0;
        for (int64_t j = 0; j <= i; j++) sum += d[i * N + j];
        cr_assert(fabs(sum + exp(0.7) / (exp(0.7) + z) - 1) < 1e-6, "row %ld", (long)i);
    }
    free(d);
}

/* off-by-one is sink-logit at b = 0 (sink weight 1): the same distribution and output. */
Test(calibration, off_by_one_equals_sink_logit_at_zero)
{
    struct fx_layer L;
    fx_layer_make(&L, 2, 1, 96, 16, 3.0, 21);
    for (int64_t m = 0; m <= 16; m += 16) {
        struct ab_problem p = fx_problem(&L, 1, m);
        int64_t n = L.n, nr = p.n_rows;
        float *a1 = malloc(sizeof(float) * nr * n), *a2 = malloc(sizeof(float) * nr * n);
        float *o1 = malloc(sizeof(float) * nr * 16), *o2 = malloc(sizeof(float) * nr * 16);
        struct ab_ledger l1 = {0}, l2 = {0};
        cr_assert_eq(fx_method_dist(fx_method("off-by-one"), &p, 0, a1), AB_OK);
        cr_assert_eq(fx_method_dist(fx_method("sink-logit"), &p, 1.0, a2), AB_OK);
        cr_assert_eq(fx_method_run(fx_method("off-by-one"), &p, 0, o1, NULL, &l1), AB_OK);
        cr_assert_eq(fx_method_run(fx_method("sink-logit"), &p, 1.0, o2, NULL, &l2), AB_OK);
        cr_assert(!memcmp(a1, a2, sizeof(float) * nr * n));
        cr_assert(!memcmp(o1, o2, sizeof(float) * nr * 16));
        cr_assert(!memcmp(&l1, &l2, sizeof l1));
        free(a1), free(a2), free(o1), free(o2);
    }
    fx_layer_free(&L);
}

/* uniform-head: O_i is the mean of the visible values; v_j = (j, 1) gives (i / 2, 1). */
Test(calibration, uniform_head_gives_the_mean_of_visible_values)
{
    struct hand t;
    hand_make(&t);
    float o[N * 2];
    float *d = hand_dist(&t, "uniform-head", 0, o);
    for (int64_t i = 0; i < N; i++) {
        cr_assert(fabsf(o[i * 2] - (float)i / 2) < 1e-6f && fabsf(o[i * 2 + 1] - 1) < 1e-6f,
                  "row %ld: (%g, %g)", (long)i, o[i * 2], o[i * 2 + 1]);
        for (int64_t j = 0; j < N; j++)
            cr_assert(fabsf(d[i * N + j] - (j <= i ? 1.0f / (float)(i + 1) : 0)) < 1e-7f);
    }
    free(d);
}

/* redistribute: both sinks (0 and the planted 7, alpha > 0.1) keep p of their attention and
 * the removed mass goes to the other keys in proportion; rows still sum to 1. */
Test(calibration, redistribute_keeps_p_of_the_sink_mass)
{
    struct hand t;
    hand_make(&t);
    const double p = 0.5;
    float o[N * 2];
    float *d = hand_dist(&t, "redistribute", p, o);
    for (int64_t i = 1; i < N; i++) {
        double a[N], sink = 0, sum = 0, sink2 = 0;
        hand_row(i, a);
        for (int64_t j = 0; j <= i; j++) {
            int s = j == 0 || j == SINK2;
            sink += s ? a[j] : 0;
            sink2 += s ? d[i * N + j] : 0;
            sum += d[i * N + j];
        }
        cr_assert(fabs(sink2 - p * sink) < 1e-6, "row %ld: sink mass %g of %g", (long)i, sink2,
                  sink);
        cr_assert(fabs(sum - 1) < 1e-6, "row %ld sums to %g", (long)i, sum);
        double f = 1 + (1 - p) * sink / (1 - sink), ov = 0;
        for (int64_t j = 0; j <= i; j++) {
            double want = (j == 0 || j == SINK2) ? p * a[j] : f * a[j];
            cr_assert(fabs(d[i * N + j] - want) < 1e-6, "row %ld key %ld", (long)i, (long)j);
            ov += want * (double)j;
        }
        cr_assert(fabs(o[i * 2] - ov) < 1e-5, "row %ld: O %g vs %g", (long)i, o[i * 2], ov);
    }
    free(d);
}

/* Decode: ACT's column means come from the context rows only, so changing the decode queries
 * changes only their own rows' maps, never which keys are sinks: check by comparing dist()
 * with the transform built from context-only column means. */
Test(calibration, act_decode_reads_sinks_from_the_context)
{
    struct fx_layer L;
    fx_layer_make(&L, 2, 1, 128, 16, 1.0, 22);
    /* plant two sinks in the context: keys 5 and 40 aligned with every query of head 0 */
    struct ab_rng rng;
    ab_rng_init(&rng, 23, 0);
    float u[16];
    fx_unit(u, 16, &rng);
    fx_add_dir(L.q, 16, 0, 128, u, 4);
    fx_add_dir(L.k, 16, 5, 6, u, 6);
    fx_add_dir(L.k, 16, 40, 41, u, 6);
    struct ab_problem p = fx_problem(&L, 0, 32);
    int64_t n = L.n;
    double *alpha = malloc(sizeof(double) * n), *row = malloc(sizeof(double) * n);
    unsigned char *in_s = malloc((size_t)n);
    cr_assert_eq(ab_calib_column_means(p.h, p.q0, p.q0, alpha), AB_OK);
    int64_t ns = ab_calib_sink_set(alpha, n, 0.1, 1, in_s);
    for (int64_t k = p.q0; k < n; k++) cr_assert_eq(in_s[k], 0);
    cr_assert(ns >= 1 && in_s[40] && !in_s[5], "%ld hidden sinks", (long)ns);
    float *a = malloc(sizeof(float) * p.n_rows * n);
    cr_assert_eq(fx_method_dist(fx_method("act"), &p, 0.4, a), AB_OK);
    double *o = malloc(sizeof(double) * p.n_rows * 16), *lse = malloc(sizeof(double) * p.n_rows);
    cr_assert_eq(ab_attn_ref(p.h, p.rows, p.n_rows, o, lse), AB_OK);
    double worst = 0, moved = 0;
    for (int64_t r = 0; r < p.n_rows; r++) {
        int64_t i = p.rows[r], vis = ab_head_visible(p.h, i);
        /* the exact row from its logits and lse */
        for (int64_t j = 0; j < vis; j++) {
            double dot = 0;
            for (int64_t t = 0; t < 16; t++) dot += (double)p.h->q[i * 16 + t] * p.h->k[j * 16 + t];
            row[j] = exp(p.h->scale * dot - lse[r]);
        }
        moved = fmax(moved, row[40] - a[r * n + 40]);
        ab_calib_scale_sinks(row, vis, in_s, 0.4);
        for (int64_t j = 0; j < vis; j++) worst = fmax(worst, fabs(row[j] - a[r * n + j]));
    }
    cr_assert(worst < 1e-6, "dist differs from the context-sink transform by %g", worst);
    cr_assert(moved > 0.05, "the hidden sink lost only %g", moved);
    cr_log_info("act decode: %ld hidden sinks in the context (alpha(40) %.3f), largest drop %.3f, "
                "worst |diff| %g",
                (long)ns, alpha[40], moved, worst);
    free(alpha), free(row), free(in_s), free(a), free(o), free(lse);
    fx_layer_free(&L);
}
