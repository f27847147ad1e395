/* test_methods_linear_landmark.c - defining properties of the landmark methods of landmark.c
 * (nystrom, key-pooling, agent) on hand-built full-mask heads: each equals dense where its
 * approximation is exact, matches its own formula computed independently in double, refuses
 * the causal mask and decode, and fills the ledger its file states. The generic battery
 * (test_methods.c) runs the properties every method shares. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/landmark.h"
#include "methods/method.h"
#include "methods_fixtures.h"

/* A seeded layer whose heads all use the full mask. */
static void full_layer(struct fx_layer *L, int64_t n, int64_t d, double spread, uint64_t seed)
{
    fx_layer_make(L, 1, 1, n, d, spread, seed);
    L->heads[0].mask = AB_MASK_FULL;
}

/* Row-wise softmax(scale x y^T) z in double: x (nx, d), y (ny, d), z (ny, dz) -> out (nx, dz). */
static void ref_softmax_mul(const double *x, int64_t nx, const double *y, int64_t ny,
                            const double *z, int64_t d, int64_t dz, double scale, double *out)
{
    double *s = malloc(sizeof(double) * (size_t)ny);
    for (int64_t i = 0; i < nx; i++) {
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < ny; j++) {
            double dot = 0;
            for (int64_t c = 0; c < d; c++) dot += x[i * d + c] * y[j * d + c];
            s[j] = scale * dot;
            mx = s[j] > mx ? s[j] : mx;
        }
        for (int64_t j = 0; j < ny; j++) sum += (s[j] = exp(s[j] - mx));
        for (int64_t c = 0; c < dz; c++) {
            double acc = 0;
            for (int64_t j = 0; j < ny; j++) acc += s[j] * z[j * dz + c];
            out[i * dz + c] = acc / sum;
        }
    }
    free(s);
}

/* Segment means in double, segments as landmark.h defines them. */
static double *ref_pool(const float *x, int64_t n, int64_t d, int64_t m)
{
    double *out = calloc((size_t)(m * d), sizeof(double));
    for (int64_t s = 0; s < m; s++) {
        int64_t r0 = s * n / m, r1 = (s + 1) * n / m;
        for (int64_t r = r0; r < r1; r++)
            for (int64_t c = 0; c < d; c++) out[s * d + c] += x[r * d + c] / (double)(r1 - r0);
    }
    return out;
}

static double *to_double(const float *x, int64_t count)
{
    double *y = malloc(sizeof(double) * (size_t)count);
    for (int64_t i = 0; i < count; i++) y[i] = x[i];
    return y;
}

/* rel_l2 of a method's output against a double reference over every row. */
static double rel_to(const struct ab_method *m, const struct ab_problem *p, double knob,
                     const double *ref)
{
    int64_t len = p->n_rows * p->h->d_v;
    float *o = malloc(sizeof(float) * (size_t)len);
    struct ab_ledger led = {0};
    cr_assert_eq(fx_method_run(m, p, knob, o, NULL, &led), AB_OK, "%s: %s", m->name, ab_errmsg());
    double num = 0, den = 0;
    for (int64_t i = 0; i < len; i++)
        num += (o[i] - ref[i]) * (o[i] - ref[i]), den += ref[i] * ref[i];
    free(o);
    return sqrt(num / den);
}

Test(key_pooling, m_equal_n_is_dense)
{
    struct fx_layer L;
    full_layer(&L, 200, 32, 4.0, 41);
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_ledger led;
    double e = fx_rel_l2(fx_method("key-pooling"), &p, 200, &led, NULL);
    cr_expect(e <= 1e-5, "rel_l2 %g at m = n", e);
    /* and far from dense with few segments on this unstructured head */
    double e4 = fx_rel_l2(fx_method("key-pooling"), &p, 4, &led, NULL);
    cr_expect(e4 > 0.1, "rel_l2 %g at m = 4", e4);
    fx_layer_free(&L);
}

/* Keys and values constant over each of m equal segments: the pooled set holds every distinct
 * key once with equal multiplicity, so softmax over it is exact attention. */
Test(key_pooling, piecewise_constant_keys_are_exact)
{
    enum { N = 320, D = 32, MS = 32 };
    struct fx_layer L;
    full_layer(&L, N, D, 4.0, 42);
    for (int64_t i = 0; i < N; i++) {
        int64_t first = i / (N / MS) * (N / MS);
        memcpy(L.k + i * D, L.k + first * D, sizeof(float) * D);
        memcpy(L.v + i * D, L.v + first * D, sizeof(float) * D);
    }
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_ledger led;
    double e = fx_rel_l2(fx_method("key-pooling"), &p, MS, &led, NULL);
    cr_expect(e <= 1e-5, "rel_l2 %g with %d constant segments", e, MS);
    /* one segment fewer mixes distinct keys: no longer exact */
    double e2 = fx_rel_l2(fx_method("key-pooling"), &p, MS - 1, &led, NULL);
    cr_expect(e2 > 1e-3, "rel_l2 %g with %d segments", e2, MS - 1);
    fx_layer_free(&L);
}

/* The pseudo-inverse iteration converges to the inverse of an invertible row-stochastic
 * matrix: A Z = I. */
Test(nystrom, newton_pinv_inverts)
{
    enum { MM = 24 };
    struct ab_rng r;
    ab_rng_init(&r, 43, 0);
    float a[MM * MM], z[MM * MM];
    for (int64_t i = 0; i < MM; i++) {
        double sum = 0;
        for (int64_t j = 0; j < MM; j++)
            sum += (a[i * MM + j] = (float)(exp(ab_rng_normal(&r)) + (i == j ? 8 : 0)));
        for (int64_t j = 0; j < MM; j++) a[i * MM + j] /= (float)sum;
    }
    cr_assert_eq(ab_lm_pinv(a, MM, 30, z), AB_OK);
    double worst = 0;
    for (int64_t i = 0; i < MM; i++)
        for (int64_t j = 0; j < MM; j++) {
            double s = 0;
            for (int64_t t = 0; t < MM; t++) s += (double)a[i * MM + t] * z[t * MM + j];
            worst = fmax(worst, fabs(s - (i == j)));
        }
    cr_expect(worst < 1e-4, "|A Z - I| = %g", worst);
}

/* With m = n every landmark is one row (Q~ = Q, K~ = K), so F pinv(A) B V = A pinv(A) A V =
 * A V: dense, once the 6 iterations have converged, which they do when the kernel is well
 * conditioned: keys equal to the queries with a large spread make A diagonally dominant. */
Test(nystrom, m_equal_n_is_dense)
{
    enum { N = 96, D = 32 };
    struct fx_layer L;
    full_layer(&L, N, D, 6.0, 44);
    memcpy(L.k, L.q, sizeof(float) * N * D);
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_ledger led;
    double e = fx_rel_l2(fx_method("nystrom"), &p, N, &led, NULL);
    cr_expect(e <= 1e-4, "rel_l2 %g at m = n", e);
    /* few landmarks: an approximation, not dense */
    double e4 = fx_rel_l2(fx_method("nystrom"), &p, 4, &led, NULL);
    cr_expect(e4 > 0.05, "rel_l2 %g at m = 4", e4);
    fx_layer_free(&L);
}

/* Agent attention is its two softmax stages over the pooled queries, computed here in double. */
Test(agent, matches_the_two_stage_formula)
{
    enum { N = 250, D = 32, A = 17 };
    struct fx_layer L;
    full_layer(&L, N, D, 2.0, 45);
    struct ab_problem p = fx_problem(&L, 0, 0);
    double *q = to_double(L.q, N * D), *k = to_double(L.k, N * D), *v = to_double(L.v, N * D);
    double *ag = ref_pool(L.q, N, D, A), *va = malloc(sizeof(double) * A * D),
           *o = malloc(sizeof(double) * N * D);
    ref_softmax_mul(ag, A, k, N, v, D, D, p.h->scale, va);
    ref_softmax_mul(q, N, ag, A, va, D, D, p.h->scale, o);
    double e = rel_to(fx_method("agent"), &p, A, o);
    cr_expect(e <= 1e-5, "rel_l2 %g against the formula", e);
    free(q), free(k), free(v), free(ag), free(va), free(o);
    fx_layer_free(&L);
}

/* One agent per query and queries that attend only to themselves (large orthogonal queries):
 * the broadcast is the identity and agent attention is dense attention. */
Test(agent, self_peaked_queries_with_n_agents_are_dense)
{
    enum { N = 32, D = 32 };
    struct fx_layer L;
    full_layer(&L, N, D, 1.0, 46);
    memset(L.q, 0, sizeof(float) * N * D);
    for (int64_t i = 0; i < N; i++) L.q[i * D + i] = 20.0f; /* s q.q = 70, s q_i.q_j = 0 */
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_ledger led;
    double e = fx_rel_l2(fx_method("agent"), &p, N, &led, NULL);
    cr_expect(e <= 1e-5, "rel_l2 %g with n agents", e);
    fx_layer_free(&L);
}

/* Nystrom in double with the same 6 iterations: the float run follows its formula. */
Test(nystrom, matches_the_formula)
{
    enum { N = 200, D = 16, MM = 10 };
    struct fx_layer L;
    full_layer(&L, N, D, 1.0, 47);
    struct ab_problem p = fx_problem(&L, 0, 0);
    double s = p.h->scale;
    double *k = to_double(L.k, N * D), *v = to_double(L.v, N * D), *q = to_double(L.q, N * D);
    double *qt = ref_pool(L.q, N, D, MM), *kt = ref_pool(L.k, N, D, MM);
    double id[MM * MM] = {0}, a[MM * MM], bv[MM * D], w[MM * D],
                   *o = malloc(sizeof(double) * N * D);
    for (int64_t i = 0; i < MM; i++) id[i * MM + i] = 1;
    ref_softmax_mul(qt, MM, kt, MM, id, D, MM, s, a);
    ref_softmax_mul(qt, MM, k, N, v, D, D, s, bv);
    /* pinv(A) by the 6 iterations of landmark.h, in double */
    double n1 = 0, ni = 0, z[MM * MM], az[MM * MM], t[MM * MM], u[MM * MM];
    for (int64_t j = 0; j < MM; j++) {
        double c = 0, rr = 0;
        for (int64_t i = 0; i < MM; i++) c += fabs(a[i * MM + j]), rr += fabs(a[j * MM + i]);
        n1 = fmax(n1, c), ni = fmax(ni, rr);
    }
    for (int64_t i = 0; i < MM; i++)
        for (int64_t j = 0; j < MM; j++) z[i * MM + j] = a[j * MM + i] / (n1 * ni);
#define MUL(x, y, out)                                                                             \
    for (int64_t i = 0; i < MM; i++)                                                               \
        for (int64_t j = 0; j < MM; j++) {                                                         \
            double acc = 0;                                                                        \
            for (int64_t c = 0; c < MM; c++) acc += (x)[i * MM + c] * (y)[c * MM + j];             \
            (out)[i * MM + j] = acc;                                                               \
        }
    for (int it = 0; it < 6; it++) {
        MUL(a, z, az);
        for (int64_t e = 0; e < MM * MM; e++) t[e] = 7 * id[e] - az[e];
        MUL(az, t, u);
        for (int64_t e = 0; e < MM * MM; e++) t[e] = 15 * id[e] - u[e];
        MUL(az, t, u);
        for (int64_t e = 0; e < MM * MM; e++) t[e] = 13 * id[e] - u[e];
        MUL(z, t, u);
        for (int64_t e = 0; e < MM * MM; e++) z[e] = u[e] / 4;
    }
#undef MUL
    for (int64_t i = 0; i < MM; i++)
        for (int64_t c = 0; c < D; c++) {
            double acc = 0;
            for (int64_t j = 0; j < MM; j++) acc += z[i * MM + j] * bv[j * D + c];
            w[i * D + c] = acc;
        }
    ref_softmax_mul(q, N, kt, MM, w, D, D, s, o);
    double e = rel_to(fx_method("nystrom"), &p, MM, o);
    cr_expect(e <= 1e-4, "rel_l2 %g against the formula", e);
    free(k), free(v), free(q), free(qt), free(kt), free(o);
    fx_layer_free(&L);
}

/* The three refuse the causal mask (they would leak the future) and decode. */
Test(landmark, refuse_causal_and_decode)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, 64, 16, 1.0, 48);
    const char *names[] = {"nystrom", "key-pooling", "agent"};
    float o[64 * 16];
    for (int t = 0; t < 3; t++) {
        const struct ab_method *m = fx_method(names[t]);
        cr_expect_eq(m->masks, (unsigned)AB_MASKS_FULL, "%s", names[t]);
        struct ab_problem p = fx_problem(&L, 0, 0); /* causal */
        struct ab_ledger led = {0};
        cr_expect_eq(fx_method_run(m, &p, 8, o, NULL, &led), AB_E_USAGE,
                     "%s ran on a causal head", names[t]);
        cr_expect(strstr(ab_errmsg(), names[t]) && strstr(ab_errmsg(), "full mask"), "%s",
                  ab_errmsg());
        L.heads[0].mask = AB_MASK_FULL;
        p = fx_problem(&L, 0, 16);
        cr_expect_eq(fx_method_run(m, &p, 8, o, NULL, &led), AB_E_USAGE, "%s ran in decode",
                     names[t]);
        L.heads[0].mask = AB_MASK_CAUSAL;
    }
    fx_layer_free(&L);
}

/* The ledgers are the formulas the file states. */
Test(landmark, ledger_formulas)
{
    enum { N = 300, D = 32 };
    struct fx_layer L;
    full_layer(&L, N, D, 1.0, 49);
    struct ab_problem p = fx_problem(&L, 0, 0);
    double n = N, d = D, m = 20;
    struct ab_ledger a = {0}, b = {0}, c = {0};
    cr_assert_eq(fx_method("nystrom")->cost(&p, m, &a), AB_OK);
    cr_assert_eq(fx_method("key-pooling")->cost(&p, m, &b), AB_OK);
    cr_assert_eq(fx_method("agent")->cost(&p, m, &c), AB_OK);
    cr_expect_float_eq(a.flops_attend, 8 * n * m * d + 4 * m * m * d + 48 * m * m * m + 2 * n * d,
                       1e-9);
    cr_expect_float_eq(b.flops_attend, 4 * n * m * d + 2 * n * d, 1e-9);
    cr_expect_float_eq(c.flops_attend, 8 * n * m * d + n * d, 1e-9);
    cr_expect(a.flops_select == 0 && b.flops_select == 0 && c.flops_select == 0);
    cr_expect_float_eq(a.cells, 2 * n * m + m * m, 1e-9);
    cr_expect_float_eq(b.cells, n * m, 1e-9);
    cr_expect_float_eq(c.cells, 2 * n * m, 1e-9);
    fx_layer_free(&L);
}
