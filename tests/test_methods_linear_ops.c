/* test_methods_linear_ops.c - defining properties of mala, sigmoid, softplus and delta-const
 * (issue 8): each row's output equals an independent double-precision statement of its rule
 * (both masks where supported, prefill and decode); softplus rows are distributions and p = 1 is
 * plain L1-normalised softplus; mala's weights sum to 1, a hand-built two-key case has the
 * weights -2/3 and 5/3, repeating every key leaves the full-mask output unchanged (issue 12: the
 * kernel is s phi(q).phi(k) / n, the authors' scale) and its extra terms vanish as the query
 * features shrink (queries shifted to -inf), leaving elu+1 linear attention; delta-const with
 * beta = 0 stays at zero, with one key stores beta v k^T, and with beta = 1 overwrites a key
 * written twice; no causal form reads a key or value after its row. The generic battery
 * (test_methods.c) runs the properties every row shares. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/method.h"
#include "methods_fixtures.h"

enum { N = 200, D = 32, M = 32 };

/* A weight function of one cell: (scaled score x, keys seen n, knob). */
typedef double (*cell_fn)(double x, int64_t n, double knob);

static double sigmoid_w(double x, int64_t n, double knob)
{
    (void)knob;
    return 1 / (1 + exp(-(x - log((double)n))));
}

static double softplus_w(double x, int64_t n, double knob)
{
    return pow(log1p(exp(log((double)n) * x)), knob);
}

/* The reference: o_i = sum_j w_ij v_j over visible keys, divided by sum_j w_ij if normalise. */
static double *ref_scored(const struct ab_problem *p, cell_fn f, double knob, int normalise)
{
    const struct ab_head *h = p->h;
    double *ref = calloc((size_t)(p->n_rows * h->d_v), sizeof(double));
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], vis = ab_head_visible(h, i);
        double sum = 0;
        for (int64_t j = 0; j < vis; j++) {
            double w = f(h->scale * fx_dot(h->q + i * h->d, h->k + j * h->d, h->d), vis, knob);
            sum += w;
            for (int64_t c = 0; c < h->d_v; c++) ref[r * h->d_v + c] += w * h->v[j * h->d_v + c];
        }
        if (normalise)
            for (int64_t c = 0; c < h->d_v; c++) ref[r * h->d_v + c] /= sum;
    }
    return ref;
}

static const char *phase_name(int m)
{
    return m ? "decode" : "prefill";
}

Test(sigmoid, equals_the_length_biased_sigmoid_in_double)
{
    struct fx_layer L;
    fx_layer_make(&L, 2, 1, N, D, 4.0, 71);
    for (int full = 0; full <= 1; full++)
        for (int m = 0; m <= M; m += M) {
            L.heads[1].mask = full ? AB_MASK_FULL : AB_MASK_CAUSAL;
            struct ab_problem p = fx_problem(&L, 1, m);
            float *o = fx_run_out(fx_method("sigmoid"), &p, 0);
            double *ref = ref_scored(&p, sigmoid_w, 0, 0);
            double e = fx_max_row_err(o, ref, p.n_rows, D);
            cr_expect(e < 1e-5, "sigmoid (%s, %s mask): row error %g", phase_name(m),
                      full ? "full" : "causal", e);
            free(o), free(ref);
        }
    fx_layer_free(&L);
}

/* With V = I (n = d_v) the output rows are the weights themselves. */
Test(softplus, rows_are_distributions_and_p1_is_plain_softplus)
{
    enum { n = D };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, n, D, 4.0, 72);
    for (int64_t j = 0; j < n; j++)
        for (int64_t c = 0; c < D; c++) L.v[j * D + c] = j == c ? 1.0f : 0.0f;
    const double powers[] = {1, 2.5};
    for (int full = 0; full <= 1; full++)
        for (size_t k = 0; k < 2; k++) {
            L.heads[0].mask = full ? AB_MASK_FULL : AB_MASK_CAUSAL;
            struct ab_problem p = fx_problem(&L, 0, 0);
            float *o = fx_run_out(fx_method("softplus"), &p, powers[k]);
            double *ref = ref_scored(&p, softplus_w, powers[k], 1);
            for (int64_t r = 0; r < p.n_rows; r++) {
                double sum = 0;
                for (int64_t j = 0; j < n; j++) {
                    cr_assert(o[r * D + j] >= 0, "negative weight");
                    cr_assert(fabs(o[r * D + j] - ref[r * D + j]) < 1e-6,
                              "p %g row %ld key %ld: %g vs %g", powers[k], (long)r, (long)j,
                              o[r * D + j], ref[r * D + j]);
                    sum += o[r * D + j];
                }
                cr_assert(fabs(sum - 1) < 1e-5, "row %ld sums to %g", (long)r, sum);
            }
            free(o), free(ref);
        }
    fx_layer_free(&L);
}

Test(softplus, equals_the_reweighted_softplus_in_double)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 4.0, 73);
    for (int m = 0; m <= M; m += M)
        for (double pw = 1; pw <= 4; pw += 3) {
            struct ab_problem p = fx_problem(&L, 0, m);
            float *o = fx_run_out(fx_method("softplus"), &p, pw);
            double *ref = ref_scored(&p, softplus_w, pw, 1);
            double e = fx_max_row_err(o, ref, p.n_rows, D);
            cr_expect(e < 1e-5, "softplus p %g (%s): row error %g", pw, phase_name(m), e);
            free(o), free(ref);
        }
    fx_layer_free(&L);
}

static double elu1(double x)
{
    return x > 0 ? x + 1 : exp(x);
}

/* MALA in double from its definition: kernel a_ij = s phi(q_i).phi(k_j) / n_i (the authors'
 * scale, s = 1/sqrt(d)), z_i = sum_j a_ij, weights beta a_ij - gamma with beta = 1 + 1/z_i and
 * gamma = z_i / n_i; or (linear != 0) the elu+1 linear attention a_ij / z_i. */
static double *ref_mala(const struct ab_problem *p, int linear)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v;
    double *ref = calloc((size_t)(p->n_rows * dv), sizeof(double));
    double *a = malloc(sizeof(double) * (size_t)h->n_k);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], vis = ab_head_visible(h, i);
        double z = 0;
        for (int64_t j = 0; j < vis; j++) {
            a[j] = 0;
            for (int64_t c = 0; c < d; c++) a[j] += elu1(h->q[i * d + c]) * elu1(h->k[j * d + c]);
            a[j] *= h->scale / (double)vis;
            z += a[j];
        }
        double beta = 1 + 1 / z, gamma = z / (double)vis;
        for (int64_t j = 0; j < vis; j++) {
            double w = linear ? a[j] / z : beta * a[j] - gamma;
            for (int64_t c = 0; c < dv; c++) ref[r * dv + c] += w * h->v[j * dv + c];
        }
    }
    free(a);
    return ref;
}

Test(mala, equals_its_definition_in_double_causal_and_full)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 74);
    for (int full = 0; full <= 1; full++)
        for (int m = 0; m <= M; m += M) {
            L.heads[0].mask = full ? AB_MASK_FULL : AB_MASK_CAUSAL;
            struct ab_problem p = fx_problem(&L, 0, m);
            float *o = fx_run_out(fx_method("mala"), &p, 0);
            double *ref = ref_mala(&p, 0);
            double e = fx_max_row_err(o, ref, p.n_rows, D);
            cr_expect(e < 1e-5, "mala (%s, %s mask): row error %g", phase_name(m),
                      full ? "full" : "causal", e);
            free(o), free(ref);
        }
    fx_layer_free(&L);
}

/* With V = I the rows are the weights: they sum to 1 (beta z - n gamma = 1) and, unlike linear
 * attention's, some are negative (the offset gamma). */
Test(mala, weights_sum_to_one_and_go_negative)
{
    enum { n = D };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, n, D, 1.0, 75);
    for (int64_t j = 0; j < n; j++)
        for (int64_t c = 0; c < D; c++) L.v[j * D + c] = j == c ? 1.0f : 0.0f;
    struct ab_problem p = fx_problem(&L, 0, 0);
    float *o = fx_run_out(fx_method("mala"), &p, 0);
    int negative = 0;
    for (int64_t r = 0; r < p.n_rows; r++) {
        double sum = 0;
        for (int64_t j = 0; j < n; j++) sum += o[r * D + j], negative += o[r * D + j] < -1e-3;
        cr_assert(fabs(sum - 1) < 1e-5, "row %ld sums to %g", (long)r, sum);
    }
    cr_expect(negative > 0, "no negative weight: the offset gamma is missing");
    free(o);
    fx_layer_free(&L);
}

/* Issue 12, by hand: d = 16 (s = 1/4), two keys, full mask, q = 0 so phi(q) = 1: k_0 = 0 and
 * k_1 = 1 give phi(q).phi(k) = 16 and 32, a = s (16, 32) / 2 = (2, 4), z = 6, beta = 7/6,
 * gamma = 3: the weights are 7/3 - 3 = -2/3 and 14/3 - 3 = 5/3 (sum 1). The bare kernel of the
 * old code (a = (16, 32), z = 48) gave -23/3 and 26/3. */
Test(mala, two_keys_by_hand_have_weights_minus_two_thirds_and_five_thirds)
{
    enum { d = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, 2, d, 1.0, 83);
    L.heads[0].mask = AB_MASK_FULL;
    for (int64_t c = 0; c < d; c++) L.q[c] = L.q[d + c] = 0, L.k[c] = 0, L.k[d + c] = 1;
    struct ab_problem p = fx_problem(&L, 0, 0);
    float *o = fx_run_out(fx_method("mala"), &p, 0);
    for (int64_t r = 0; r < 2; r++)
        for (int64_t c = 0; c < d; c++) {
            double want = -2.0 / 3 * L.v[c] + 5.0 / 3 * L.v[d + c];
            cr_assert(fabs(o[r * d + c] - want) < 1e-6 * (1 + fabs(want)),
                      "row %ld col %ld: %g, want -2/3 v_0 + 5/3 v_1 = %g", (long)r, (long)c,
                      o[r * d + c], want);
        }
    free(o);
    fx_layer_free(&L);
}

/* Issue 12: with the kernel s phi(q).phi(k) / n, z is a mean over the keys, so listing every
 * (key, value) pair twice (n -> 2n) leaves the full-mask output unchanged, as it does for
 * softmax and linear attention. The bare kernel doubled z and moved every row by
 * z (l - vbar), the 5e3 rel_l2 of the report at n = 1024. */
Test(mala, repeating_every_key_changes_nothing_on_the_full_mask)
{
    enum { n = 100 };
    struct fx_layer A, B;
    fx_layer_make(&A, 1, 1, n, D, 1.0, 84);
    fx_layer_make(&B, 1, 1, 2 * n, D, 1.0, 85);
    memcpy(B.q, A.q, sizeof(float) * n * D);
    for (int half = 0; half < 2; half++) {
        memcpy(B.k + half * n * D, A.k, sizeof(float) * n * D);
        memcpy(B.v + half * n * D, A.v, sizeof(float) * n * D);
    }
    A.heads[0].mask = B.heads[0].mask = AB_MASK_FULL;
    struct ab_problem pa = fx_problem(&A, 0, 0), pb = fx_problem(&B, 0, 0);
    float *oa = fx_run_out(fx_method("mala"), &pa, 0), *ob = fx_run_out(fx_method("mala"), &pb, 0);
    double *ref = ref_mala(&pa, 0);
    cr_expect(fx_max_row_err(oa, ref, n, D) < 1e-5, "n keys: row error %g",
              fx_max_row_err(oa, ref, n, D));
    cr_expect(fx_max_row_err(ob, ref, n, D) < 1e-5, "every key twice: row error %g",
              fx_max_row_err(ob, ref, n, D));
    free(oa), free(ob), free(ref);
    fx_layer_free(&A), fx_layer_free(&B);
}

/* Shifting every query coordinate by -s scales phi(q) = exp(q) by e^-s (all coordinates
 * negative): linear attention is unchanged, while MALA's extra term z_i (l_i - vbar_i) shrinks
 * by e^-s: MALA tends to elu+1 linear attention as |phi(q)| -> 0. (z_i is a mean times s, about
 * 9 e^-s here, so the term is 4.5e-3 at s = 6.) */
Test(mala, extra_terms_vanish_as_query_features_shrink)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 76);
    float *q0 = malloc(sizeof(float) * N * D);
    memcpy(q0, L.q, sizeof(float) * N * D);
    double dev[3];
    const double shifts[3] = {6, 9, 30};
    for (int s = 0; s < 3; s++) {
        for (int64_t i = 0; i < N * D; i++) L.q[i] = q0[i] - (float)shifts[s];
        struct ab_problem p = fx_problem(&L, 0, 0);
        float *o = fx_run_out(fx_method("mala"), &p, 0);
        double *lin = ref_mala(&p, 1), num = 0, den = 0;
        for (int64_t i = 0; i < p.n_rows * D; i++) {
            double x = o[i] - lin[i];
            num += x * x, den += lin[i] * lin[i];
        }
        dev[s] = sqrt(num / den);
        free(o), free(lin);
    }
    /* e^-3 = 0.0498 per 3 units of shift, then gone to float rounding */
    cr_expect(dev[0] > 1e-3, "no magnitude term at shift 6: %g", dev[0]);
    cr_expect(fabs(dev[1] / dev[0] / exp(-3.0) - 1) < 0.05, "deviation %g -> %g, not e^-3", dev[0],
              dev[1]);
    cr_expect(dev[2] < 1e-6, "deviation %g at shift 30", dev[2]);
    free(q0);
    fx_layer_free(&L);
}

/* The delta rule in double from its definition (causal: S written with key j before row j). */
static double *ref_delta(const struct ab_problem *p, double beta)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v;
    double *ref = calloc((size_t)(p->n_rows * dv), sizeof(double));
    double *s = calloc((size_t)(d * dv), sizeof(double)), *k = malloc(sizeof(double) * (size_t)d),
           *q = malloc(sizeof(double) * (size_t)d), *sk = malloc(sizeof(double) * (size_t)dv);
    int64_t r = 0;
    for (int64_t t = 0; t < h->n_q && r < p->n_rows; t++) {
        double nk = sqrt(fx_dot(h->k + t * d, h->k + t * d, d)),
               nq = sqrt(fx_dot(h->q + t * d, h->q + t * d, d));
        for (int64_t c = 0; c < d; c++) k[c] = h->k[t * d + c] / nk, q[c] = h->q[t * d + c] / nq;
        for (int64_t a = 0; a < dv; a++) {
            sk[a] = 0;
            for (int64_t c = 0; c < d; c++) sk[a] += s[a * d + c] * k[c];
        }
        for (int64_t a = 0; a < dv; a++)
            for (int64_t c = 0; c < d; c++)
                s[a * d + c] += beta * (h->v[t * dv + a] - sk[a]) * k[c];
        if (p->rows[r] != t) continue;
        for (int64_t a = 0; a < dv; a++)
            for (int64_t c = 0; c < d; c++) ref[r * dv + a] += s[a * d + c] * q[c];
        r++;
    }
    free(s), free(k), free(q), free(sk);
    return ref;
}

Test(delta_const, equals_the_delta_rule_in_double)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 77);
    for (int m = 0; m <= M; m += M)
        for (double beta = 0.25; beta <= 1; beta += 0.75) {
            struct ab_problem p = fx_problem(&L, 0, m);
            float *o = fx_run_out(fx_method("delta-const"), &p, beta);
            double *ref = ref_delta(&p, beta);
            double e = fx_max_row_err(o, ref, p.n_rows, D);
            cr_expect(e < 1e-5, "delta-const beta %g (%s): row error %g", beta, phase_name(m), e);
            free(o), free(ref);
        }
    fx_layer_free(&L);
}

Test(delta_const, beta_zero_stays_zero_and_one_key_stores_beta_v_kT)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 78);
    for (int m = 0; m <= M; m += M) { /* beta = 0: S stays 0, every output is exactly 0 */
        struct ab_problem p = fx_problem(&L, 0, m);
        float *o = fx_run_out(fx_method("delta-const"), &p, 0);
        for (int64_t i = 0; i < p.n_rows * D; i++) cr_assert(o[i] == 0, "beta 0 wrote %g", o[i]);
        free(o);
    }
    /* one key: S_0 = beta v_0 k^_0^T, so o_0 = beta (k^_0.q^_0) v_0 */
    struct ab_problem p = fx_problem(&L, 0, 0);
    const float *q = L.q, *k = L.k, *v = L.v;
    double cosine = fx_dot(q, k, D) / sqrt(fx_dot(q, q, D) * fx_dot(k, k, D));
    for (double beta = 0.3; beta <= 1; beta += 0.7) {
        float *o = fx_run_out(fx_method("delta-const"), &p, beta);
        for (int64_t c = 0; c < D; c++)
            cr_assert(fabs(o[c] - beta * cosine * v[c]) < 1e-6 * (1 + fabs(v[c])),
                      "beta %g col %ld: %g vs %g", beta, (long)c, o[c], beta * cosine * v[c]);
        free(o);
    }
    fx_layer_free(&L);
}

/* The delta rule writes, where linear attention adds: a key written twice with beta = 1 reads
 * back only its second value; with beta = 1/2 it reads 1/4 a + 1/2 b. */
Test(delta_const, a_key_written_twice_keeps_the_last_value)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, 8, D, 1.0, 79);
    for (int64_t c = 0; c < D; c++) {
        L.k[0 * D + c] = L.k[1 * D + c] = c == 3 ? 2.0f : 0.0f; /* the same direction e_3 */
        L.q[1 * D + c] = c == 3 ? 0.5f : 0.0f;
    }
    struct ab_problem p = fx_problem(&L, 0, 0);
    const float *a = L.v, *b = L.v + D;
    float *o1 = fx_run_out(fx_method("delta-const"), &p, 1.0);
    float *oh = fx_run_out(fx_method("delta-const"), &p, 0.5);
    for (int64_t c = 0; c < D; c++) {
        cr_assert(fabs(o1[1 * D + c] - b[c]) < 1e-6, "beta 1: col %ld %g, want %g", (long)c,
                  o1[D + c], b[c]);
        double want = 0.25 * a[c] + 0.5 * b[c];
        cr_assert(fabs(oh[1 * D + c] - want) < 1e-6, "beta 1/2: col %ld %g, want %g", (long)c,
                  oh[D + c], want);
    }
    free(o1), free(oh);
    fx_layer_free(&L);
}

Test(delta_const, full_mask_is_refused)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, 16, D, 1.0, 80);
    L.heads[0].mask = AB_MASK_FULL;
    struct ab_problem p = fx_problem(&L, 0, 0);
    float o[16 * D];
    struct ab_ledger led = {0};
    cr_expect_eq(fx_method_run(fx_method("delta-const"), &p, 0.5, o, NULL, &led), AB_E_USAGE);
    cr_expect(strstr(ab_errmsg(), "full") != NULL, "message: %s", ab_errmsg());
    fx_layer_free(&L);
}

/* No causal form reads the future: replacing every key and value after row `cut` with other
 * seeded values leaves rows <= cut unchanged bit for bit (prefill and decode). */
Test(linear_ops, no_causal_form_reads_keys_or_values_after_its_row)
{
    const char *names[] = {"mala", "sigmoid", "softplus", "delta-const"};
    for (size_t mi = 0; mi < 4; mi++)
        for (int m = 0; m <= M; m += M) {
            const struct ab_method *me = fx_method(names[mi]);
            struct fx_layer L;
            fx_layer_make(&L, 1, 1, N, D, 4.0, 81);
            struct ab_problem p = fx_problem(&L, 0, m);
            double knob = me->knob.name ? me->knob.def : 0;
            float *before = fx_run_out(me, &p, knob);
            int64_t cut = m ? N - M / 2 : 77; /* inside a 64-row chunk of mala */
            struct ab_rng rng;
            ab_rng_init(&rng, 82, 1);
            for (int64_t j = cut + 1; j < N; j++)
                for (int64_t c = 0; c < D; c++) {
                    L.k[j * D + c] = (float)(5 * ab_rng_normal(&rng));
                    L.v[j * D + c] = (float)(100 * ab_rng_normal(&rng));
                }
            float *after = fx_run_out(me, &p, knob);
            for (int64_t r = 0; r < p.n_rows && p.rows[r] <= cut; r++)
                for (int64_t c = 0; c < D; c++)
                    cr_assert(before[r * D + c] == after[r * D + c],
                              "%s (%s): row %ld changed when keys after %ld changed", names[mi],
                              phase_name(m), (long)p.rows[r], (long)cut);
            free(before), free(after);
            fx_layer_free(&L);
        }
}
