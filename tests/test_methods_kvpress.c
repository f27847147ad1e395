/* test_methods_kvpress.c - the kvpress scorer rows of lib/methods/kvpress.c (knorm, random,
 * keydiff, lagkv, expected-attention, q-filters) on hand-built or seeded decode problems: each
 * row's defining property (knorm keeps exactly the lowest-norm keys, random is replayable and
 * seed-dependent, keydiff keeps planted outliers, lagkv and expected-attention agree with
 * straightforward double-precision re-implementations, expected-attention and q-filters keep
 * the keys aligned with the queries' mean / principal direction, which q-filters recovers), the
 * ledger against the formulas of the file comment, and the decode protocol (the decode queries
 * never change what was kept). The generic battery (test_methods.c) runs the properties every
 * row shares. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/kvpress.h"
#include "methods/method.h"
#include "methods_fixtures.h"

static const char *const press_names[] = {"knorm",   "random",             "keydiff",
                                          "lagkv",   "expected-attention", "q-filters"};
enum { N_PRESS = sizeof press_names / sizeof press_names[0] };

/* 1 when row r of keep holds exactly the context keys marked in want (n_ctx) and every decode
 * key the row sees; reports the first difference. */
static int keep_row_is(const struct ab_problem *p, const struct ab_keep *keep, int64_t r,
                       const uint8_t *want, int64_t n_ctx)
{
    int64_t v = ab_head_visible(p->h, p->rows[r]);
    for (int64_t j = 0; j < v; j++) {
        int w = j < n_ctx ? want[j] : 1;
        if (ab_keep_has(keep, r, j) != w) {
            cr_log_error("row %lld key %lld: kept %d, expected %d", (long long)p->rows[r],
                         (long long)j, ab_keep_has(keep, r, j), w);
            return 0;
        }
    }
    return 1;
}

/* want = the top c of score (n) in double, ties to the lower index (a plain O(n^2) rank). */
static void top_c_ref(const double *score, int64_t n, int64_t c, uint8_t *want)
{
    for (int64_t j = 0; j < n; j++) {
        int64_t above = 0;
        for (int64_t u = 0; u < n; u++)
            above += score[u] > score[j] || (score[u] == score[j] && u < j);
        want[j] = above < c;
    }
}

/* ---- knorm ---- */

/* Keys of a seeded random direction each, with norms 1 + 0.01 perm(j) for a seeded permutation
 * of the context: at every C the kept context keys are exactly those with perm(j) < C. */
Test(knorm, keeps_exactly_the_lowest_norm_keys)
{
    enum { N = 600, D = 16, M = 8 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 41);
    struct ab_rng r;
    ab_rng_init(&r, 41, 2);
    int64_t perm[N];
    for (int64_t j = 0; j < N; j++) perm[j] = j;
    for (int64_t j = N - M - 1; j > 0; j--) { /* the context keys; decode keys: perm(j) = j */
        int64_t u = ab_rng_below(&r, j + 1), x = perm[j];
        perm[j] = perm[u], perm[u] = x;
    }
    for (int64_t j = 0; j < N; j++) {
        float u[D];
        fx_unit(u, D, &r);
        for (int64_t c = 0; c < D; c++) L.k[j * D + c] = (float)(1.0 + 0.01 * perm[j]) * u[c];
    }
    struct ab_problem p = fx_problem(&L, 0, M);
    int64_t n_ctx = p.q0;
    const int64_t Cs[] = {1, 7, 100, 333, n_ctx - 1};
    uint8_t want[N];
    for (size_t t = 0; t < sizeof Cs / sizeof Cs[0]; t++) {
        struct ab_ledger led;
        struct ab_keep keep;
        fx_run_checked(fx_method("knorm"), &p, (double)Cs[t], &led, &keep);
        for (int64_t j = 0; j < n_ctx; j++) want[j] = perm[j] < Cs[t];
        for (int64_t r0 = 0; r0 < p.n_rows; r0++)
            cr_expect(keep_row_is(&p, &keep, r0, want, n_ctx), "C = %lld", (long long)Cs[t]);
        /* the ledger: k_ctx + decode keys per query, 2 d n_ctx one-off */
        double cells = 0;
        for (int64_t i = p.q0; i < N; i++) cells += (double)Cs[t] + (double)(i + 1 - n_ctx);
        cr_expect_eq(led.cells, cells);
        cr_expect_eq(led.flops_once, 2.0 * D * (double)n_ctx);
        cr_expect_eq(led.flops_select, 0);
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

/* ---- random ---- */

/* The same seed keeps the same keys, another seed or another head other keys; exactly C context
 * keys per row; the kept sets are nested in C; over 64 seeds every key is kept about C / n_ctx
 * of the time (binomial: mean inclusion within 5 sigma for each key would be too loose per key,
 * so the test bounds the spread of the positions: kept keys are spread over the whole context). */
Test(random, replayable_seeded_and_exactly_c)
{
    enum { N = 528, D = 16, M = 16, C = 100 };
    struct fx_layer L;
    fx_layer_make(&L, 2, 1, N, D, 1.0, 51);
    const struct ab_method *m = fx_method("random");
    struct ab_problem p = fx_problem(&L, 0, M);
    int64_t n_ctx = p.q0, q0 = p.q0;
    struct ab_keep a, b, c, e, small;
    struct ab_ledger led;
    fx_run_checked(m, &p, C, &led, &a);
    fx_run_checked(m, &p, C, &led, &b);
    cr_expect(!memcmp(a.bits, b.bits, sizeof(uint64_t) * (size_t)(a.n_rows * a.words)),
              "the same seed kept other keys");
    struct ab_problem p2 = p;
    p2.seed = 2;
    fx_run_checked(m, &p2, C, &led, &c);
    struct ab_problem ph = fx_problem(&L, 1, M);
    fx_run_checked(m, &ph, C, &led, &e);
    int64_t diff_seed = 0, diff_head = 0;
    for (int64_t j = 0; j < n_ctx; j++) {
        diff_seed += ab_keep_has(&a, 0, j) != ab_keep_has(&c, 0, j);
        diff_head += ab_keep_has(&a, 0, j) != ab_keep_has(&e, 0, j);
    }
    cr_expect_gt(diff_seed, 20, "seed 2 kept nearly the same keys (%lld differ)",
                 (long long)diff_seed);
    cr_expect_gt(diff_head, 20, "head 1 kept nearly the same keys (%lld differ)",
                 (long long)diff_head);
    fx_run_checked(m, &p, C / 2, &led, &small);
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        int64_t cnt = 0;
        for (int64_t j = 0; j < q0; j++) {
            cnt += ab_keep_has(&a, r0, j);
            if (ab_keep_has(&small, r0, j))
                cr_expect(ab_keep_has(&a, r0, j), "C/2 keeps key %lld, C does not", (long long)j);
            /* every row of the phase reads the same context keys */
            cr_expect_eq(ab_keep_has(&a, r0, j), ab_keep_has(&a, 0, j));
        }
        cr_expect_eq(cnt, C);
        for (int64_t j = q0; j <= p.rows[r0]; j++) cr_expect(ab_keep_has(&a, r0, j));
    }
    /* uniform: over 64 seeds, the kept keys' mean position is (n_ctx - 1) / 2 and each quarter
     * of the context holds a quarter of them (within 5 binomial sigmas) */
    double quarter[4] = {0}, total = 0;
    for (uint64_t s = 10; s < 74; s++) {
        struct ab_problem ps = p;
        struct ab_keep k;
        ps.seed = s;
        fx_rel_l2(m, &ps, C, &led, &k);
        for (int64_t j = 0; j < n_ctx; j++)
            if (ab_keep_has(&k, 0, j)) quarter[j * 4 / n_ctx] += 1, total += 1;
        ab_keep_free(&k);
    }
    cr_expect_eq(total, 64.0 * C);
    for (int t = 0; t < 4; t++)
        cr_expect_lt(fabs(quarter[t] - total / 4), 5 * sqrt(total * 0.25 * 0.75),
                     "quarter %d holds %g of %g kept keys", t, quarter[t], total);
    cr_expect_eq(led.flops_once, 0);
    ab_keep_free(&a), ab_keep_free(&b), ab_keep_free(&c), ab_keep_free(&e), ab_keep_free(&small);
    fx_layer_free(&L);
}

/* ---- keydiff ---- */

/* Keys cluster around one direction u (k_j = 4 u + noise); eight planted keys point elsewhere
 * (their own random directions, opposite to u half of the time). At C = 8 keydiff keeps exactly
 * those eight; its scores equal -cos(k_j, mean_j k_j / ||k_j||) computed in double. */
Test(keydiff, keeps_planted_outliers)
{
    enum { N = 520, D = 32, M = 8, NOUT = 8 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.04, 61);
    struct ab_rng r;
    ab_rng_init(&r, 61, 3);
    float u[D];
    fx_unit(u, D, &r);
    fx_add_dir(L.k, D, 0, N, u, 4.0f);
    const int64_t out[NOUT] = {3, 50, 77, 200, 201, 333, 460, 511};
    for (int64_t t = 0; t < NOUT; t++) {
        float w[D];
        fx_unit(w, D, &r);
        for (int64_t c = 0; c < D; c++) L.k[out[t] * D + c] = (t % 2 ? -4.0f : 4.0f) * w[c];
    }
    struct ab_problem p = fx_problem(&L, 0, M);
    int64_t n_ctx = p.q0;
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("keydiff"), &p, NOUT, &led, &keep);
    uint8_t want[N] = {0};
    for (int64_t t = 0; t < NOUT; t++) want[out[t]] = 1;
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) cr_expect(keep_row_is(&p, &keep, r0, want, n_ctx));
    /* the scores against a double re-implementation */
    double a[D] = {0};
    for (int64_t j = 0; j < n_ctx; j++) {
        double nn = 0;
        for (int64_t c = 0; c < D; c++) nn += (double)L.k[j * D + c] * L.k[j * D + c];
        for (int64_t c = 0; c < D; c++) a[c] += L.k[j * D + c] / sqrt(nn) / (double)n_ctx;
    }
    float score[N];
    cr_assert_eq(ab_kvpress_scores(&p, "keydiff", score), AB_OK);
    double an = 0;
    for (int64_t c = 0; c < D; c++) an += a[c] * a[c];
    for (int64_t j = 0; j < n_ctx; j++) {
        double dot = 0, nn = 0;
        for (int64_t c = 0; c < D; c++)
            dot += L.k[j * D + c] * a[c], nn += (double)L.k[j * D + c] * L.k[j * D + c];
        cr_expect_float_eq(score[j], -dot / sqrt(nn * an), 1e-5, "key %lld", (long long)j);
    }
    cr_expect_eq(led.flops_once, 6.0 * D * (double)n_ctx);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- lagkv ---- */

enum { LAG_SINKS = 4, LAG = 128 };

/* The double re-implementation of lagkv's order (kvpress LagKVPress, no cross scoring): key ->
 * (class, value): sinks (2, 0), tail (1, j), scored keys (0, rank in partition / L); order by
 * class, then value, then the lower index. want = the top c. */
static void lag_ref(const struct ab_head *h, int64_t n_ctx, int64_t c, uint8_t *want)
{
    int64_t d = h->d, dv = h->d_v;
    double *key = malloc(sizeof(double) * (size_t)n_ctx); /* class * 4 + value in [0, 2) */
    int64_t parts = n_ctx < LAG_SINKS + 2 * LAG ? 0 : (n_ctx - LAG_SINKS) / LAG;
    int64_t tail = parts >= 2 ? LAG_SINKS + (parts - 1) * LAG : LAG_SINKS;
    for (int64_t j = 0; j < n_ctx; j++)
        key[j] = j < LAG_SINKS ? 8.0 : j >= tail ? 4.0 + (double)j / (double)n_ctx : -1;
    for (int64_t part = 0; part + 1 < parts; part++) {
        int64_t j0 = LAG_SINKS + part * LAG;
        double sc[LAG] = {0};
        for (int which = 0; which < 2; which++) {
            const float *x = which ? h->v : h->k;
            int64_t dim = which ? dv : d;
            double sd[LAG], z = 0;
            for (int64_t t = 0; t < LAG; t++) {
                double xs[256], mean = 0, var = 0;
                for (int64_t ch = 0; ch < dim; ch++) {
                    double mn = INFINITY, mx = -INFINITY;
                    for (int64_t s = 0; s < LAG; s++) {
                        double y = x[(j0 + LAG + s) * dim + ch];
                        mn = fmin(mn, y), mx = fmax(mx, y);
                    }
                    xs[ch] = (x[(j0 + t) * dim + ch] - mn) / (mx - mn);
                    mean += xs[ch] / (double)dim;
                }
                for (int64_t ch = 0; ch < dim; ch++) var += (xs[ch] - mean) * (xs[ch] - mean);
                sd[t] = sqrt(var / (double)(dim - 1));
            }
            for (int64_t t = 0; t < LAG; t++) z += exp(sd[t]);
            for (int64_t t = 0; t < LAG; t++) sc[t] += exp(sd[t]) / z / 2;
        }
        for (int64_t t = 0; t < LAG; t++) {
            int64_t rank = 0;
            for (int64_t s = 0; s < LAG; s++) rank += sc[s] < sc[t] || (sc[s] == sc[t] && s < t);
            key[j0 + t] = (double)rank / LAG;
        }
    }
    top_c_ref(key, n_ctx, c, want);
    free(key);
}

/* A seeded head with 5 partitions and a remainder: at every C the kept context keys equal the
 * re-implementation's; sinks and the last partition are kept once C covers them. */
Test(lagkv, matches_reimplementation)
{
    enum { D = 16, M = 8, N_CTX = LAG_SINKS + 5 * LAG + 37, N = N_CTX + M };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 71);
    /* partitions of different spreads, so that the lag normalisation matters */
    for (int64_t j = 0; j < N; j++) {
        float f = (float)(1 + (j / LAG) % 3);
        for (int64_t c = 0; c < D; c++) L.k[j * D + c] *= f, L.v[j * D + c] *= 2.0f / f;
    }
    struct ab_problem p = fx_problem(&L, 0, M);
    cr_assert_eq(p.q0, N_CTX);
    const int64_t Cs[] = {2, LAG_SINKS + 100, LAG_SINKS + LAG + 37, 300, 451, 600, N_CTX - 1};
    uint8_t want[N_CTX];
    for (size_t t = 0; t < sizeof Cs / sizeof Cs[0]; t++) {
        struct ab_ledger led;
        struct ab_keep keep;
        fx_run_checked(fx_method("lagkv"), &p, (double)Cs[t], &led, &keep);
        lag_ref(p.h, N_CTX, Cs[t], want);
        for (int64_t r0 = 0; r0 < p.n_rows; r0++)
            cr_expect(keep_row_is(&p, &keep, r0, want, N_CTX), "C = %lld", (long long)Cs[t]);
        if (Cs[t] >= LAG_SINKS + LAG + 37) /* sinks and tail (last partition + remainder) */
            for (int64_t j = 0; j < N_CTX; j++)
                if (j < LAG_SINKS || j >= LAG_SINKS + 4 * LAG) cr_expect(ab_keep_has(&keep, 0, j));
        ab_keep_free(&keep);
    }
    /* a context shorter than sinks + 2 L: sinks, then the newest keys */
    struct fx_layer S;
    fx_layer_make(&S, 1, 1, 200 + M, D, 1.0, 72);
    struct ab_problem ps = fx_problem(&S, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("lagkv"), &ps, 50, &led, &keep);
    for (int64_t j = 0; j < ps.q0; j++)
        cr_expect_eq(ab_keep_has(&keep, 0, j), j < LAG_SINKS || j >= ps.q0 - 46, "key %lld",
                     (long long)j);
    ab_keep_free(&keep);
    fx_layer_free(&S);
    fx_layer_free(&L);
}

/* ---- expected-attention ---- */

enum { EA_SINKS = 4, EA_WIN = 512 };

/* score_j in double (file comment of kvpress.c): mu, Sigma of the last 512 context queries. */
static void ea_ref(const struct ab_problem *p, double *score)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, q0 = p->q0, w = q0 - EA_SINKS < EA_WIN ? q0 - EA_SINKS : EA_WIN;
    double *mu = calloc((size_t)d, sizeof(double)), *sig = calloc((size_t)(d * d), sizeof(double));
    for (int64_t t = q0 - w; t < q0; t++)
        for (int64_t a = 0; a < d; a++) mu[a] += h->q[t * d + a] / (double)w;
    for (int64_t t = q0 - w; t < q0; t++)
        for (int64_t a = 0; a < d; a++)
            for (int64_t b = 0; b < d; b++)
                sig[a * d + b] += (h->q[t * d + a] - mu[a]) * (h->q[t * d + b] - mu[b]) / (double)w;
    for (int64_t j = 0; j < q0; j++) {
        if (j < EA_SINKS) {
            score[j] = INFINITY;
            continue;
        }
        const float *k = h->k + j * d, *v = h->v + j * h->d_v;
        double m = 0, quad = 0, vn = 0;
        for (int64_t a = 0; a < d; a++) {
            m += mu[a] * k[a];
            for (int64_t b = 0; b < d; b++) quad += k[a] * sig[a * d + b] * k[b];
        }
        for (int64_t c = 0; c < h->d_v; c++) vn += (double)v[c] * v[c];
        score[j] = log(exp(h->scale * m + h->scale * h->scale * quad / 2) * sqrt(vn));
    }
    free(mu), free(sig);
}

/* A seeded head whose window queries share a mean direction and have an anisotropic spread:
 * the row's scores agree with the double ones (1e-4 relative) and at every C it keeps the
 * double top C (up to a swap of scores closer than that). */
Test(expected_attention, ranks_as_double_reimplementation)
{
    enum { N = 1100, D = 32, M = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 81);
    struct ab_rng r;
    ab_rng_init(&r, 81, 4);
    float u[D], w[D];
    fx_unit(u, D, &r);
    fx_unit(w, D, &r);
    fx_add_dir(L.q, D, 0, N, u, 3.0f);
    for (int64_t i = 0; i < N; i++) fx_add_dir(L.q, D, i, i + 1, w, (float)(2 * ab_rng_normal(&r)));
    struct ab_problem p = fx_problem(&L, 0, M);
    int64_t n_ctx = p.q0;
    double ref[N];
    float score[N];
    ea_ref(&p, ref);
    cr_assert_eq(ab_kvpress_scores(&p, "expected-attention", score), AB_OK);
    for (int64_t j = 0; j < n_ctx; j++) {
        if (j < EA_SINKS) {
            cr_expect(isinf(score[j]) && score[j] > 0);
            continue;
        }
        cr_expect_lt(fabs(score[j] - ref[j]), 1e-4 * fmax(1, fabs(ref[j])), "key %lld: %g vs %g",
                     (long long)j, score[j], ref[j]);
    }
    uint8_t want[N];
    const int64_t Cs[] = {3, 20, 200, 700};
    for (size_t t = 0; t < sizeof Cs / sizeof Cs[0]; t++) {
        struct ab_ledger led;
        struct ab_keep keep;
        fx_run_checked(fx_method("expected-attention"), &p, (double)Cs[t], &led, &keep);
        top_c_ref(ref, n_ctx, Cs[t], want);
        double th = INFINITY; /* the double score of the last key kept */
        for (int64_t j = 0; j < n_ctx; j++)
            if (want[j]) th = fmin(th, ref[j]);
        int64_t cnt = 0;
        for (int64_t j = 0; j < n_ctx; j++) {
            int kept = ab_keep_has(&keep, 0, j);
            cnt += kept;
            if (kept != want[j])
                cr_expect_lt(fabs(ref[j] - th), 2e-4 * fmax(1, fabs(th)),
                             "C = %lld key %lld: kept %d, double score %g, threshold %g",
                             (long long)Cs[t], (long long)j, kept, ref[j], th);
        }
        cr_expect_eq(cnt, Cs[t]);
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

/* Key HOT points along the mean direction of the last context queries; the decode queries do
 * not: at C = 5 (four sinks and one key) expected-attention keeps HOT. */
Test(expected_attention, keeps_key_aligned_with_mean_query)
{
    enum { N = 1024, D = 32, M = 16, HOT = 357 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.25, 82);
    struct ab_rng r;
    ab_rng_init(&r, 82, 5);
    float u[D];
    fx_unit(u, D, &r);
    fx_add_dir(L.q, D, N - M - EA_WIN, N - M, u, 4.0f);
    fx_add_dir(L.k, D, HOT, HOT + 1, u, 3.0f);
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("expected-attention"), &p, EA_SINKS + 1, &led, &keep);
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        cr_expect(ab_keep_has(&keep, r0, HOT), "row %lld dropped the aligned key",
                  (long long)p.rows[r0]);
        for (int64_t j = 0; j < EA_SINKS; j++) cr_expect(ab_keep_has(&keep, r0, j));
    }
    double d = D, w = EA_WIN, n_sc = (double)(p.q0 - EA_SINKS);
    cr_expect_eq(led.flops_once, 2 * w * d + w * d * (d + 1) + n_sc * (2 * d * d + 4 * d + 2 * d));
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- q-filters ---- */

/* Context queries q_t = a_t u + noise with a_t > 0 mostly (mean along +u): the direction hook
 * recovers u (|cos| > 0.99, oriented to +u); the row keeps the keys with the largest <k, u>, so
 * planted keys along +u are kept and keys along -u are not. With the queries' mean along -u the
 * orientation flips and the planted -u keys are kept. */
Test(q_filters, recovers_planted_principal_direction)
{
    enum { N = 800, D = 32, M = 16, NP = 6 };
    const int64_t plus[NP] = {10, 99, 250, 251, 600, 700};
    const int64_t minus[NP] = {20, 120, 300, 420, 501, 777};
    for (int sign = 1; sign >= -1; sign -= 2) {
        struct fx_layer L;
        fx_layer_make(&L, 1, 1, N, D, 0.5, 91);
        struct ab_rng r;
        ab_rng_init(&r, 91, 6);
        float u[D];
        fx_unit(u, D, &r);
        for (int64_t i = 0; i < N; i++)
            fx_add_dir(L.q, D, i, i + 1, u, (float)(sign * (3.0 + ab_rng_normal(&r))));
        for (int64_t t = 0; t < NP; t++) {
            fx_add_dir(L.k, D, plus[t], plus[t] + 1, u, 6.0f);
            fx_add_dir(L.k, D, minus[t], minus[t] + 1, u, -6.0f);
        }
        struct ab_problem p = fx_problem(&L, 0, M);
        double dir[D], dot = 0;
        cr_assert_eq(ab_qfilters_direction(&p, dir), AB_OK);
        for (int64_t c = 0; c < D; c++) dot += dir[c] * u[c];
        cr_expect_gt(dot * sign, 0.99, "sign %d: u'.u = %g", sign, dot);
        struct ab_ledger led;
        struct ab_keep keep;
        fx_run_checked(fx_method("q-filters"), &p, NP, &led, &keep);
        for (int64_t t = 0; t < NP; t++) {
            cr_expect_eq(ab_keep_has(&keep, 0, sign > 0 ? plus[t] : minus[t]), 1, "sign %d", sign);
            cr_expect_eq(ab_keep_has(&keep, 0, sign > 0 ? minus[t] : plus[t]), 0, "sign %d", sign);
        }
        double d = D, q0 = (double)p.q0;
        cr_expect_eq(led.flops_once, q0 * d + q0 * d * (d + 1) + 2.0 * 64 * d * d + 2 * q0 * d);
        ab_keep_free(&keep);
        fx_layer_free(&L);
    }
}

/* ---- all six ---- */

/* Decode protocol: changing the decode queries changes nothing that was kept (the scores come
 * from context rows only), at a C well below the context. */
Test(kvpress, decode_queries_do_not_change_the_selection)
{
    enum { N = 700, D = 16, M = 24, C = 120 };
    for (int t = 0; t < N_PRESS; t++) {
        struct fx_layer L;
        fx_layer_make(&L, 1, 1, N, D, 1.0, 101);
        const struct ab_method *m = fx_method(press_names[t]);
        struct ab_problem p = fx_problem(&L, 0, M);
        struct ab_ledger led;
        struct ab_keep a, b;
        fx_run_checked(m, &p, C, &led, &a);
        struct ab_rng r;
        ab_rng_init(&r, 101, 7);
        for (int64_t i = (N - M) * D; i < N * D; i++) L.q[i] = (float)(5 * ab_rng_normal(&r));
        fx_run_checked(m, &p, C, &led, &b);
        cr_expect(!memcmp(a.bits, b.bits, sizeof(uint64_t) * (size_t)(a.n_rows * a.words)),
                  "%s: the decode queries changed the kept keys", m->name);
        for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
            int64_t cnt = 0;
            for (int64_t j = 0; j < p.q0; j++) cnt += ab_keep_has(&a, r0, j);
            cr_expect_eq(cnt, C, "%s row %lld", m->name, (long long)r0);
        }
        ab_keep_free(&a), ab_keep_free(&b);
        fx_layer_free(&L);
    }
}
