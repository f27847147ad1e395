/* test_methods_kv.c - the KV-cache (decode) methods (quest, snapkv, ada-snapkv, h2o, tova, a2sf,
 * keyformer, recycled, retrieval-attn) on hand-built decode problems: each method's defining
 * property (Quest's page bound, the planted token SnapKV and H2O keep, TOVA's layer-shared cache,
 * Ada-KV's budget moving to the flatter head, one eviction per step, a2sf and keyformer reducing
 * to H2O, recycled reading the top K of its last full step, retrieval-attn's exact top K when
 * every cell is scanned), the ledger against the formulas their files state
 * (methods.md), equality with dense at the largest knob, the decode protocol (the decode
 * queries never change what was kept from the context before they ran) and evaluated-row
 * subsets. The generic battery (test_methods.c) runs the properties every method shares. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/kv.h"
#include "methods/method.h"
#include "methods_fixtures.h"

enum { P = 16, W = 64 };

static const char *const kv_names[] = {"quest",     "snapkv",   "ada-snapkv",
                                       "h2o",       "tova",     "a2sf",
                                       "keyformer", "recycled", "retrieval-attn"};
enum { N_KV = sizeof kv_names / sizeof kv_names[0] };

/* Keys < k_end kept in row r. */
static int64_t keep_count_below(const struct ab_keep *keep, int64_t r, int64_t k_end)
{
    int64_t c = 0;
    for (int64_t j = 0; j < k_end; j++) c += ab_keep_has(keep, r, j);
    return c;
}

/* ---- quest ---- */

/* For every query row and every full page of a random head, U = sum_c max(q_c m_c, q_c M_c)
 * is at least max_{k in page} q.k; with one key per page it is exactly q.k. */
Test(quest, page_bound_is_upper_bound)
{
    enum { N = 512, D = 64 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 4.0, 21);
    float *kmin = malloc(sizeof(float) * N * D), *kmax = malloc(sizeof(float) * N * D);
    ab_quest_page_minmax(L.k, N, D, P, kmin, kmax);
    double min_slack = INFINITY;
    int64_t checked = 0;
    for (int64_t i = 0; i < N; i++) {
        const float *q = L.q + i * D;
        for (int64_t t = 0; t < N / P; t++) {
            double best = -INFINITY;
            for (int64_t j = t * P; j < (t + 1) * P; j++) {
                double dot = 0;
                for (int64_t c = 0; c < D; c++) dot += (double)q[c] * L.k[j * D + c];
                best = fmax(best, dot);
            }
            double u = ab_quest_page_bound(q, kmin + t * D, kmax + t * D, D);
            cr_assert_geq(u, best - 1e-9, "row %lld page %lld: bound %g < max score %g",
                          (long long)i, (long long)t, u, best);
            min_slack = fmin(min_slack, u - best);
            checked++;
        }
    }
    cr_log_info("quest bound: %lld (query, page) pairs, min slack %.3g", (long long)checked,
                min_slack);
    /* pages of one key: the bound is the score itself */
    ab_quest_page_minmax(L.k, N, D, 1, kmin, kmax);
    for (int64_t j = 0; j < N; j += 37) {
        double dot = 0;
        for (int64_t c = 0; c < D; c++) dot += (double)L.q[c] * L.k[j * D + c];
        cr_expect_float_eq(ab_quest_page_bound(L.q, kmin + j * D, kmax + j * D, D), dot, 1e-12);
    }
    free(kmin), free(kmax);
    fx_layer_free(&L);
}

/* Page HOT's keys and every decode query share a strong direction: at K = 2P (one ranked page
 * plus the current one) every decode query reads page HOT. */
Test(quest, reads_planted_page)
{
    enum { N = 1024, D = 64, M = 16, HOT = 12 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.25, 22);
    struct ab_rng r;
    ab_rng_init(&r, 22, 1);
    float u[D];
    fx_unit(u, D, &r);
    fx_add_dir(L.k, D, HOT * P, (HOT + 1) * P, u, 16.0f);
    fx_add_dir(L.q, D, N - M, N, u, 16.0f);
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("quest"), &p, 2 * P, &led, &keep);
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        int64_t v = p.rows[r0] + 1, cur = (v - 1) / P;
        for (int64_t j = HOT * P; j < (HOT + 1) * P; j++)
            cr_expect(ab_keep_has(&keep, r0, j), "row %lld does not read key %lld",
                      (long long)p.rows[r0], (long long)j);
        cr_expect_eq(ab_keep_count(&keep, r0), P + (v - cur * P));
    }
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- snapkv ---- */

/* Key HOT, far behind the window, is what the observation window's queries look for: with
 * C = W + 8 (window plus 8 prefix keys) every decode query reads it, and the window. */
Test(snapkv, keeps_planted_token)
{
    enum { N = 1024, D = 64, M = 32, HOT = 300, C = W + 8 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.25, 31);
    struct ab_rng r;
    ab_rng_init(&r, 31, 1);
    float u[D];
    fx_unit(u, D, &r);
    fx_add_dir(L.k, D, HOT, HOT + 1, u, 12.0f);
    fx_add_dir(L.q, D, N - M - W, N - M, u, 3.0f); /* the observation window */
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("snapkv"), &p, C, &led, &keep);
    int64_t q0 = p.q0;
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        cr_expect(ab_keep_has(&keep, r0, HOT), "row %lld dropped the planted key",
                  (long long)p.rows[r0]);
        for (int64_t j = q0 - W; j < q0; j++) cr_expect(ab_keep_has(&keep, r0, j));
        cr_expect_eq(keep_count_below(&keep, r0, q0), C);
    }
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- ada-snapkv ---- */

/* Two heads with their own keys. Head 0's window queries all point at four identical planted
 * keys (peaked scores: after pooling 20 keys carry its mass, the rest ~e^-30); head 1's
 * window queries are zero (uniform attention: flat scores 1/v). At C = W + 64 each head keeps
 * its floor of 12 prefix keys and the layer's remaining 104 go to the highest scores left:
 * head 0's ~8 pooled neighbours, then head 1's flat scores. So head 1 gets more, and the
 * layer's total is exactly 2 C. */
Test(ada_snapkv, flatter_head_gets_more_budget)
{
    enum { N = 512, D = 64, M = 16, C = W + 64 };
    struct fx_layer L;
    fx_layer_make(&L, 2, 2, N, D, 0.25, 41);
    struct ab_rng r;
    ab_rng_init(&r, 41, 1);
    float u[D];
    fx_unit(u, D, &r);
    int64_t q0 = N - M;
    const int64_t hot[] = {50, 120, 200, 333};
    for (int t = 0; t < 4; t++) /* head 0's keys: four copies of 16 u */
        for (int64_t c = 0; c < D; c++) L.k[hot[t] * D + c] = 16.0f * u[c];
    for (int64_t i = q0 - W; i < q0; i++)
        for (int64_t c = 0; c < D; c++) {
            L.q[i * D + c] = 16.0f * u[c];       /* head 0: peaked on the planted keys */
            L.q[(N + i) * D + c] = 0.0f;         /* head 1: uniform */
        }
    int64_t kept[2];
    for (int64_t h = 0; h < 2; h++) {
        struct ab_problem p = fx_problem(&L, h, M);
        struct ab_ledger led;
        struct ab_keep keep;
        fx_run_checked(fx_method("ada-snapkv"), &p, C, &led, &keep);
        kept[h] = keep_count_below(&keep, 0, q0);
        for (int64_t r0 = 1; r0 < p.n_rows; r0++)
            cr_expect_eq(keep_count_below(&keep, r0, q0), kept[h], "one set for the phase");
        for (int t = 0; h == 0 && t < 4; t++) cr_expect(ab_keep_has(&keep, 0, hot[t]));
        ab_keep_free(&keep);
    }
    cr_log_info("ada-snapkv kept context keys: peaked head %lld, flat head %lld (C = %d)",
                (long long)kept[0], (long long)kept[1], C);
    cr_expect_gt(kept[1], kept[0], "flat head %lld, peaked head %lld", (long long)kept[1],
                 (long long)kept[0]);
    cr_expect_eq(kept[0] + kept[1], 2 * C, "the layer's budget is 2 C");
    int64_t floor_b = (int64_t)(0.2 * (C - W));
    cr_expect_geq(kept[0], W + floor_b);
    cr_expect_geq(kept[1], W + floor_b);
    fx_layer_free(&L);
}

/* ---- h2o ---- */

/* Key HOT gets a large share of every later query's attention: it is the heavy hitter, kept
 * by every decode query at C = 32 (16 heavy + 16 recent) although it is far outside the recent
 * window; each decode query reads min(C, v) keys including its recent 16. */
Test(h2o, keeps_planted_heavy_hitter)
{
    enum { N = 1024, D = 64, M = 32, HOT = 100, C = 32 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.25, 51);
    struct ab_rng r;
    ab_rng_init(&r, 51, 1);
    float u[D];
    fx_unit(u, D, &r);
    fx_add_dir(L.k, D, HOT, HOT + 1, u, 12.0f);
    fx_add_dir(L.q, D, 0, N, u, 2.0f);
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("h2o"), &p, C, &led, &keep);
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        int64_t v = p.rows[r0] + 1;
        cr_expect(ab_keep_has(&keep, r0, HOT), "row %lld evicted the heavy hitter",
                  (long long)p.rows[r0]);
        for (int64_t j = v - C / 2; j < v; j++) cr_expect(ab_keep_has(&keep, r0, j));
        cr_expect_eq(ab_keep_count(&keep, r0), C);
    }
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* Greedy eviction, one token at a time: from one decode query to the next the cache gains only
 * the new token and loses at most one key, and an evicted key never comes back. */
static void check_one_eviction_per_step(const char *name)
{
    enum { N = 512, D = 32, M = 48, C = 40 };
    struct fx_layer L;
    fx_layer_make(&L, 2, 2, N, D, 2.0, 61);
    struct ab_problem p = fx_problem(&L, 1, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method(name), &p, C, &led, &keep);
    uint8_t *gone = calloc(N, 1);
    int64_t evictions = 0;
    for (int64_t r0 = 1; r0 < p.n_rows; r0++) {
        int64_t i = p.rows[r0], added = 0, lost = 0;
        for (int64_t j = 0; j <= i; j++) {
            int now = ab_keep_has(&keep, r0, j), before = ab_keep_has(&keep, r0 - 1, j);
            if (now && !before) {
                added++;
                cr_expect_eq(j, i, "%s: row %lld read key %lld it did not read before", name,
                             (long long)i, (long long)j);
                cr_expect(!gone[j], "%s: key %lld came back", name, (long long)j);
            }
            if (!now && before) lost++, gone[j] = 1;
        }
        cr_expect_eq(added, 1, "%s: the new token enters the cache", name);
        cr_expect_leq(lost, 1, "%s: at most one eviction per step", name);
        evictions += lost;
    }
    cr_expect_eq(evictions, p.n_rows - 1, "%s: a full cache evicts once per step", name);
    free(gone);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

Test(h2o, evicts_one_key_per_step) { check_one_eviction_per_step("h2o"); }

/* ---- tova ---- */

/* One cache per layer: every head of the layer reads the same keys at every decode step
 * (while their outputs differ, being different heads). */
Test(tova, kept_set_shared_across_heads)
{
    enum { N = 512, D = 32, M = 32, H = 4, C = 48 };
    struct fx_layer L;
    fx_layer_make(&L, H, H, N, D, 2.0, 71);
    struct ab_keep keep[H];
    struct ab_ledger led;
    double err[H];
    for (int64_t h = 0; h < H; h++) {
        struct ab_problem p = fx_problem(&L, h, M);
        err[h] = fx_run_checked(fx_method("tova"), &p, C, &led, &keep[h]);
    }
    for (int64_t h = 1; h < H; h++)
        cr_expect(!memcmp(keep[h].bits, keep[0].bits,
                          sizeof(uint64_t) * (size_t)(keep[0].n_rows * keep[0].words)),
                  "head %lld reads another cache than head 0", (long long)h);
    cr_expect_neq(err[0], err[1]);
    cr_log_info("tova rel_l2 per head at C = %d: %.3f %.3f %.3f %.3f", C, err[0], err[1], err[2],
                err[3]);
    for (int64_t h = 0; h < H; h++) ab_keep_free(&keep[h]);
    fx_layer_free(&L);
}

Test(tova, evicts_one_key_per_step) { check_one_eviction_per_step("tova"); }

/* ---- a2sf ---- */

/* Runs two rows' runs (through their hooks or registry rows) on p at C and expects the same
 * keep sets and bit-identical outputs. */
typedef int (*kv_run_fn)(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                         struct ab_ledger *led, const void *arg);

static void expect_same_run(const struct ab_problem *p, int64_t C, const char *what,
                            kv_run_fn f, const void *arg)
{
    int64_t D = p->h->d;
    float *o1 = malloc(sizeof(float) * p->n_rows * D), *o2 = malloc(sizeof(float) * p->n_rows * D);
    struct ab_keep k1, k2;
    struct ab_ledger l1 = {0}, l2 = {0};
    cr_assert_eq(ab_keep_alloc(&k1, p->n_rows, p->h->n_k), AB_OK);
    cr_assert_eq(ab_keep_alloc(&k2, p->n_rows, p->h->n_k), AB_OK);
    cr_assert_eq(fx_method_run(fx_method("h2o"), p, (double)C, o1, &k1, &l1), AB_OK);
    cr_assert_eq(f(p, (double)C, o2, &k2, &l2, arg), AB_OK, "%s", ab_errmsg());
    cr_expect(!memcmp(k1.bits, k2.bits, sizeof(uint64_t) * (size_t)(k1.n_rows * k1.words)),
              "%s at C = %lld keeps other keys than h2o", what, (long long)C);
    cr_expect(!memcmp(o1, o2, sizeof(float) * p->n_rows * D), "%s at C = %lld: outputs differ",
              what, (long long)C);
    cr_expect_eq(l1.cells, l2.cells);
    ab_keep_free(&k1), ab_keep_free(&k2);
    free(o1), free(o2);
}

static int a2sf_at(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                   struct ab_ledger *led, const void *arg)
{
    return ab_a2sf_run(p, knob, *(const double *)arg, o, keep, led);
}

/* lambda = 1 (no forgetting) is H2O: the same cache at every step and the same outputs, bit
 * for bit, on a random layer at small, middle and large caches. */
Test(a2sf, lambda_one_equals_h2o)
{
    enum { N = 640, D = 32, M = 48, H = 2 };
    struct fx_layer L;
    fx_layer_make(&L, H, H, N, D, 3.0, 101);
    const double one = 1.0;
    const int64_t Cs[] = {2, 9, 40, 101, 300};
    for (int64_t h = 0; h < H; h++) {
        struct ab_problem p = fx_problem(&L, h, M);
        for (size_t t = 0; t < sizeof Cs / sizeof Cs[0]; t++)
            expect_same_run(&p, Cs[t], "a2sf (lambda 1)", a2sf_at, &one);
    }
    fx_layer_free(&L);
}

/* Forgetting is what a2sf adds. Sixteen OLD keys are what context queries 0..599 look at (each
 * collects ~30 of accumulated attention); YOUNG, outside the recent window, is what only the
 * last 22 context queries look at (~20). With 16 heavy slots (C = 32), h2o keeps the old keys
 * by seniority and evicts YOUNG at the first decode step; a2sf (lambda 0.9) has forgotten the
 * old keys' attention and keeps YOUNG at every decode step. */
Test(a2sf, forgetting_keeps_the_young_key)
{
    enum { N = 1024, D = 64, M = 32, C = 32, YOUNG = 940 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.25, 102);
    struct ab_rng r;
    ab_rng_init(&r, 102, 1);
    float u[D], u2[D];
    fx_unit(u, D, &r);
    fx_unit(u2, D, &r);
    int64_t q0 = N - M;
    for (int64_t t = 0; t < 16; t++) fx_add_dir(L.k, D, 50 + 10 * t, 51 + 10 * t, u, 16.0f);
    fx_add_dir(L.q, D, 0, 600, u, 4.0f);
    fx_add_dir(L.k, D, YOUNG, YOUNG + 1, u2, 16.0f);
    fx_add_dir(L.q, D, q0 - 22, q0, u2, 4.0f);
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep kh, ka;
    fx_run_checked(fx_method("h2o"), &p, C, &led, &kh);
    fx_run_checked(fx_method("a2sf"), &p, C, &led, &ka);
    cr_expect(!ab_keep_has(&kh, 0, YOUNG), "h2o kept the young key: the case does not separate");
    int64_t old_h2o = 0;
    for (int64_t t = 0; t < 16; t++) old_h2o += ab_keep_has(&kh, 0, 50 + 10 * t);
    cr_expect_eq(old_h2o, 16, "h2o keeps the 16 old keys (%lld)", (long long)old_h2o);
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        cr_expect(ab_keep_has(&ka, r0, YOUNG), "a2sf row %lld evicted the young key",
                  (long long)p.rows[r0]);
        cr_expect_eq(ab_keep_count(&ka, r0), C);
    }
    ab_keep_free(&kh), ab_keep_free(&ka);
    fx_layer_free(&L);
}

/* ---- keyformer ---- */

static int keyformer_plain(const struct ab_problem *p, double knob, float *o,
                           struct ab_keep *keep, struct ab_ledger *led, const void *arg)
{
    (void)arg;
    return ab_keyformer_run(p, knob, 0, 1.0, 1.0, o, keep, led);
}

/* Keyformer is h2o's accumulation of a regularised score: without the Gumbel noise and at
 * temperature 1 the score is the plain attention and keyformer is H2O bit for bit. */
Test(keyformer, no_noise_unit_temperature_equals_h2o)
{
    enum { N = 640, D = 32, M = 48, H = 2 };
    struct fx_layer L;
    fx_layer_make(&L, H, H, N, D, 3.0, 111);
    const int64_t Cs[] = {2, 9, 40, 101, 300};
    for (int64_t h = 0; h < H; h++) {
        struct ab_problem p = fx_problem(&L, h, M);
        for (size_t t = 0; t < sizeof Cs / sizeof Cs[0]; t++)
            expect_same_run(&p, Cs[t], "keyformer (no noise, tau 1)", keyformer_plain, NULL);
    }
    fx_layer_free(&L);
}

/* The noise is seeded: the same problem seed replays the same caches, another seed gives other
 * caches, and the regularised score (noise, tau 1 -> 2) moves the cache away from H2O's. Its
 * defining property still holds under the noise: the recent half is always kept. */
Test(keyformer, seeded_noise_replays_and_changes_the_cache)
{
    enum { N = 640, D = 32, M = 48, C = 60 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 3.0, 112);
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep a, b, c, hk;
    p.seed = 7;
    fx_run_checked(fx_method("keyformer"), &p, C, &led, &a);
    fx_run_checked(fx_method("keyformer"), &p, C, &led, &b);
    fx_run_checked(fx_method("h2o"), &p, C, &led, &hk);
    p.seed = 8;
    fx_run_checked(fx_method("keyformer"), &p, C, &led, &c);
    size_t bytes = sizeof(uint64_t) * (size_t)(a.n_rows * a.words);
    cr_expect(!memcmp(a.bits, b.bits, bytes), "same seed, other caches");
    cr_expect(memcmp(a.bits, c.bits, bytes), "another seed, the same caches");
    cr_expect(memcmp(a.bits, hk.bits, bytes), "keyformer's cache is h2o's");
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        int64_t v = p.rows[r0] + 1;
        for (int64_t j = v - (C - C / 2); j < v; j++) cr_expect(ab_keep_has(&a, r0, j));
        cr_expect_eq(ab_keep_count(&a, r0), C);
    }
    ab_keep_free(&a), ab_keep_free(&b), ab_keep_free(&c), ab_keep_free(&hk);
    fx_layer_free(&L);
}

/* ---- recycled ---- */

/* The exact top K of row f's scores over keys [0, vf), in double (ties to the earlier key):
 * top[j] = 1 for the chosen keys. */
static void exact_top_k(const struct ab_head *h, int64_t f, int64_t vf, int64_t K, uint8_t *top)
{
    double *sc = malloc(sizeof(double) * (size_t)vf);
    for (int64_t j = 0; j < vf; j++) {
        double dot = 0;
        for (int64_t c = 0; c < h->d; c++) dot += (double)h->q[f * h->d + c] * h->k[j * h->d + c];
        sc[j] = dot;
        top[j] = 0;
    }
    for (int64_t t = 0; t < AB_MIN(K, vf); t++) {
        int64_t best = -1;
        for (int64_t j = 0; j < vf; j++)
            if (!top[j] && (best < 0 || sc[j] > sc[best])) best = j;
        top[best] = 1;
    }
    free(sc);
}

/* Recycled attention's definition, checked against an independent walk: the last context row
 * and every S-th decode query after it are full steps (they read every key they see); any
 * other query reads exactly the top K keys of the last full step f (its exact scores over the
 * v_f keys it saw) plus the keys written since f. Full-step outputs equal dense rows. */
Test(recycled, reads_the_top_k_of_the_last_full_step)
{
    enum { N = 512, D = 32, M = 23, S = 4 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 3.0, 121);
    struct ab_problem p = fx_problem(&L, 0, M);
    uint8_t top[N];
    const int64_t Ks[] = {1, 5, 37, 200};
    for (size_t t = 0; t < sizeof Ks / sizeof Ks[0]; t++) {
        int64_t K = Ks[t];
        struct ab_ledger led;
        struct ab_keep keep;
        fx_run_checked(fx_method("recycled"), &p, (double)K, &led, &keep);
        int64_t full = 0;
        for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
            int64_t i = p.rows[r0], f = (p.q0 - 1) + S * ((i - (p.q0 - 1)) / S), vf = f + 1;
            if (f == i) {
                full++;
                cr_expect_eq(ab_keep_count(&keep, r0), i + 1, "full step %lld", (long long)i);
                continue;
            }
            exact_top_k(p.h, f, vf, K, top);
            for (int64_t j = 0; j <= i; j++)
                cr_expect_eq(ab_keep_has(&keep, r0, j), j >= vf || top[j],
                             "K %lld row %lld (last full step %lld) key %lld", (long long)K,
                             (long long)i, (long long)f, (long long)j);
        }
        cr_expect_eq(full, M / S, "full steps");
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

/* S = 1: every decode step is a full step, so recycled is dense at any K; at S = 4 and small K
 * it is not. */
Test(recycled, stride_one_is_dense)
{
    enum { N = 384, D = 32, M = 24 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 3.0, 122);
    struct ab_problem p = fx_problem(&L, 0, M);
    float *o = malloc(sizeof(float) * M * D), *o4 = malloc(sizeof(float) * M * D);
    struct ab_ledger led = {0}, led4 = {0}, dl = {0};
    struct ab_keep keep;
    cr_assert_eq(ab_keep_alloc(&keep, p.n_rows, N), AB_OK);
    cr_assert_eq(ab_recycled_run(&p, 4, 1, o, &keep, &led), AB_OK);
    ab_keep_clear(&keep);
    cr_assert_eq(ab_recycled_run(&p, 4, 4, o4, &keep, &led4), AB_OK);
    ab_keep_free(&keep);
    float *od = malloc(sizeof(float) * M * D);
    cr_assert_eq(fx_method_run(fx_method("dense"), &p, 0, od, NULL, &dl), AB_OK);
    double e = 0, e4 = 0, z = 0;
    for (int64_t x = 0; x < M * D; x++) {
        e += ((double)o[x] - od[x]) * ((double)o[x] - od[x]);
        e4 += ((double)o4[x] - od[x]) * ((double)o4[x] - od[x]);
        z += (double)od[x] * od[x];
    }
    cr_expect_leq(sqrt(e / z), 1e-5, "S = 1: rel_l2 %g", sqrt(e / z));
    cr_expect_gt(sqrt(e4 / z), 1e-3, "S = 4, K = 4 should not be dense");
    cr_expect_eq(led.cells, dl.cells);
    free(o), free(o4), free(od);
    fx_layer_free(&L);
}

/* ---- retrieval-attn ---- */

/* With every cell scanned (max_scan = n_ctx) the IVF search is exhaustive: each decode query
 * reads exactly the top K context keys by exact q.k (independent double computation) plus the
 * decode keys up to itself. */
Test(retrieval_attn, all_cells_probed_is_exact_top_k)
{
    enum { N = 600, D = 32, M = 20 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 3.0, 131);
    struct ab_problem p = fx_problem(&L, 0, M);
    fx_prepare(fx_method("retrieval-attn"), &p); /* the index, once for every K */
    int64_t q0 = p.q0;
    uint8_t top[N];
    const int64_t Ks[] = {1, 9, 60, 250};
    for (size_t t = 0; t < sizeof Ks / sizeof Ks[0]; t++) {
        struct ab_keep keep;
        struct ab_ledger led = {0};
        cr_assert_eq(ab_keep_alloc(&keep, p.n_rows, N), AB_OK);
        cr_assert_eq(ab_retrieval_run(&p, (double)Ks[t], q0, NULL, &keep, &led), AB_OK);
        for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
            int64_t i = p.rows[r0];
            exact_top_k(p.h, i, q0, Ks[t], top);
            for (int64_t j = 0; j <= i; j++)
                cr_expect_eq(ab_keep_has(&keep, r0, j), j >= q0 || top[j],
                             "K %lld row %lld key %lld", (long long)Ks[t], (long long)i,
                             (long long)j);
        }
        /* the scan covered every context key at every query */
        double c = ceil(sqrt((double)q0) / 4), s = AB_MIN(q0, 32 * c);
        double once = 2.0 * D * c * (4 * s + q0); /* the index: one-off */
        double sel = M * 2.0 * c * D + 2.0 * D * q0 * M;
        cr_expect_float_eq(led.flops_once, once, 1e-12, "once %g, formula %g", led.flops_once,
                           once);
        cr_expect_float_eq(led.flops_select, sel, 1e-12, "select %g, formula %g",
                           led.flops_select, sel);
        ab_keep_free(&keep);
    }
    fx_unprepare(fx_method("retrieval-attn"), &p);
    fx_layer_free(&L);
}

/* The default scan (at least 2 K keys, whole cells) finds a planted span far back in the
 * context: 16 keys along one direction that every decode query looks for. Their cell's centroid
 * leans that way, the cell ranking sends the scan there, and at K = 16 every decode query reads
 * all 16 (a lone planted key would not move its centroid enough: IVF's weakness with queries
 * unlike the keys, which motivates the paper's attention-aware index). */
Test(retrieval_attn, finds_planted_far_span)
{
    enum { N = 2048, D = 64, M = 16, HOT = 70, K = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.25, 132);
    struct ab_rng r;
    ab_rng_init(&r, 132, 1);
    float u[D];
    fx_unit(u, D, &r);
    fx_add_dir(L.k, D, HOT, HOT + K, u, 16.0f);
    fx_add_dir(L.q, D, N - M, N, u, 8.0f);
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("retrieval-attn"), &p, K, &led, &keep);
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        for (int64_t j = HOT; j < HOT + K; j++)
            cr_expect(ab_keep_has(&keep, r0, j), "row %lld missed planted key %lld",
                      (long long)p.rows[r0], (long long)j);
        cr_expect_eq(ab_keep_count(&keep, r0), K + (p.rows[r0] + 1 - p.q0));
    }
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- all kv rows ---- */

/* cells = the formula of each file (methods.md), flops_attend = 4d per cell, bytes 8d per
 * cell, flops_select as stated; ada-snapkv's layer total is n_heads x C. */
Test(kv, ledger_formulas)
{
    enum { N = 512, D = 32, M = 32, H = 2 };
    struct fx_layer L;
    fx_layer_make(&L, H, H, N, D, 2.0, 81);
    int64_t q0 = N - M;
    const double knobs[] = {1, 16, 40, 64, 100, 300, q0 - 1, q0, N};
    for (size_t t = 0; t < sizeof knobs / sizeof knobs[0]; t++) {
        int64_t K = (int64_t)knobs[t], ada_total = 0;
        for (int k = 0; k < N_KV; k++) {
            const struct ab_method *m = fx_method(kv_names[k]);
            for (int64_t h = 0; h < H; h++) {
                struct ab_problem p = fx_problem(&L, h, M);
                struct ab_ledger led;
                struct ab_keep keep;
                fx_run_checked(m, &p, knobs[t], &led, &keep);
                double cells = 0, select = 0, k_ctx = (double)keep_count_below(&keep, 0, q0);
                for (int64_t i = q0; i < N; i++) {
                    int64_t v = i + 1, pages = (v + P - 1) / P, T = (K + P - 1) / P;
                    if (!strcmp(m->name, "quest")) {
                        cells += pages <= T ? v : (v - P * (pages - 1)) + P * (T - 1);
                        select += 4.0 * D * (double)(pages - 1);
                    } else if (!strcmp(m->name, "snapkv")) {
                        cells += (double)(AB_MIN(K, q0) + v - q0);
                    } else if (!strcmp(m->name, "ada-snapkv")) {
                        cells += k_ctx + (double)(v - q0);
                    } else if (!strcmp(m->name, "retrieval-attn")) {
                        cells += (double)(AB_MIN(K, q0) + v - q0);
                    } else if (!strcmp(m->name, "recycled")) {
                        int64_t f = (q0 - 1) + 4 * ((i - (q0 - 1)) / 4), vf = f + 1;
                        cells += f == i ? (double)v : (double)(AB_MIN(K, vf) + v - vf);
                    } else {
                        cells += (double)AB_MIN(K, v);
                    }
                }
                if (strstr(m->name, "snapkv")) select = 2.0 * W * (double)q0 * D;
                if (!strcmp(m->name, "ada-snapkv") && h == 0) ada_total = 0;
                if (!strcmp(m->name, "ada-snapkv")) ada_total += (int64_t)k_ctx;
                cr_expect_eq(led.cells, cells, "%s at %lld: cells %.0f, formula %.0f", m->name,
                             (long long)K, led.cells, cells);
                cr_expect_eq(led.flops_attend, 4.0 * D * cells);
                cr_expect_eq(led.bytes_kv, 8.0 * D * cells);
                if (!strcmp(m->name, "retrieval-attn")) /* data-dependent: >= L per query */
                    cr_expect_geq(led.flops_select, 2.0 * D * (double)(AB_MIN(q0, 2 * K) * M));
                else /* snapkv's window logits are one-off work, not per step */
                    cr_expect_eq(led.flops_select + led.flops_once, select,
                                 "%s at %lld: select %g + once %g, formula %g", m->name,
                                 (long long)K, led.flops_select, led.flops_once, select);
                if (strstr(m->name, "snapkv")) cr_expect_eq(led.flops_select, 0);
                cr_expect_geq(led.ops_other, cells);
                ab_keep_free(&keep);
            }
        }
        cr_expect_eq(ada_total, H * AB_MIN(K, q0), "ada-snapkv at %lld: layer keeps %lld",
                     (long long)K, (long long)ada_total);
    }
    fx_layer_free(&L);
}

/* At the largest knob (n) every kv row keeps every visible key and equals dense. */
Test(kv, max_knob_equals_dense)
{
    enum { N = 384, D = 32, M = 24, H = 2 };
    struct fx_layer L;
    fx_layer_make(&L, H, H, N, D, 4.0, 91);
    struct ab_problem p = fx_problem(&L, 1, M);
    for (int k = 0; k < N_KV; k++) {
        const struct ab_method *m = fx_method(kv_names[k]);
        double lo, hi;
        ab_method_knob_range(m, &p, &lo, &hi);
        cr_expect_eq(lo, 1);
        cr_expect_eq(hi, N);
        struct ab_ledger led;
        struct ab_keep keep;
        double err = fx_run_checked(m, &p, hi, &led, &keep);
        cr_expect_leq(err, 1e-5, "%s at n: rel_l2 %g", m->name, err);
        for (int64_t r0 = 0; r0 < p.n_rows; r0++)
            cr_expect_eq(ab_keep_count(&keep, r0), p.rows[r0] + 1);
        cr_log_info("%s at knob n: rel_l2 %.2g", m->name, err);
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

/* flop_ratio is non-decreasing in the knob over its whole range, and so is every ledger
 * count (ada-snapkv: on its run, the others on cost()). */
Test(kv, cost_monotone_in_knob)
{
    enum { N = 384, D = 32, M = 24, H = 2 };
    struct fx_layer L;
    fx_layer_make(&L, H, H, N, D, 2.0, 92);
    struct ab_problem p = fx_problem(&L, 0, M);
    for (int k = 0; k < N_KV; k++) {
        const struct ab_method *m = fx_method(kv_names[k]);
        struct ab_ledger prev = {0};
        for (int64_t K = 1; K <= N; K += (K < 80 ? 1 : 7)) {
            struct ab_ledger led = {0};
            cr_assert_eq(m->cost ? m->cost(&p, (double)K, &led)
                                 : fx_method_run(m, &p, (double)K, NULL, NULL, &led),
                         AB_OK);
            cr_expect_geq(led.flops_attend + led.flops_select,
                          prev.flops_attend + prev.flops_select, "%s at %lld", m->name,
                          (long long)K);
            cr_expect_geq(led.cells, prev.cells, "%s at %lld", m->name, (long long)K);
            cr_expect_geq(led.ops_other, prev.ops_other, "%s at %lld", m->name, (long long)K);
            cr_expect_geq(led.bytes_kv, prev.bytes_kv, "%s at %lld", m->name, (long long)K);
            prev = led;
        }
    }
    fx_layer_free(&L);
}

/* The decode protocol: compression decisions use the context only. Rewriting every decode
 * query (all heads) changes nothing snapkv and ada-snapkv keep from the context, nor what h2o
 * and tova hold when the first decode query reads (their later evictions may follow the
 * decode queries, as designed). quest, query-aware by design, is exempt. */
Test(kv, decode_queries_do_not_change_context_selection)
{
    enum { N = 512, D = 32, M = 32, H = 2, C = 100 };
    struct fx_layer L;
    fx_layer_make(&L, H, H, N, D, 2.0, 93);
    int64_t q0 = N - M;
    const char *names[] = {"snapkv", "ada-snapkv", "h2o", "tova"};
    struct ab_keep before[4][H], after[4][H];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) { /* new decode queries for every head */
            struct ab_rng r;
            ab_rng_init(&r, 93, 2);
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = q0; i < N; i++)
                    for (int64_t c = 0; c < D; c++)
                        L.q[(h * N + i) * D + c] = (float)(3.0 * ab_rng_normal(&r));
        }
        for (int k = 0; k < 4; k++)
            for (int64_t h = 0; h < H; h++) {
                struct ab_problem p = fx_problem(&L, h, M);
                struct ab_ledger led;
                fx_run_checked(fx_method(names[k]), &p, C, &led, pass ? &after[k][h] : &before[k][h]);
            }
    }
    for (int k = 0; k < 4; k++)
        for (int64_t h = 0; h < H; h++) {
            int64_t rows = k < 2 ? M : 1, changed_later = 0;
            for (int64_t r0 = 0; r0 < M; r0++)
                for (int64_t j = 0; j < (r0 < rows ? q0 : N); j++) {
                    int a = ab_keep_has(&before[k][h], r0, j), b = ab_keep_has(&after[k][h], r0, j);
                    if (r0 < rows)
                        cr_expect_eq(a, b, "%s head %lld row %lld key %lld changed", names[k],
                                     (long long)h, (long long)r0, (long long)j);
                    else
                        changed_later += a != b;
                }
            if (k >= 2)
                cr_log_info("%s head %lld: %lld (row, key) bits changed after the first step",
                            names[k], (long long)h, (long long)changed_later);
            ab_keep_free(&before[k][h]);
            ab_keep_free(&after[k][h]);
        }
    fx_layer_free(&L);
}
/* The kv rows support the decode phase only, and say so when asked for prefill. */
Test(kv, prefill_is_refused)
{
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, 64, 16, 1.0, 95);
    struct ab_problem p = fx_problem(&L, 0, 0);
    for (int k = 0; k < N_KV; k++) {
        const struct ab_method *m = fx_method(kv_names[k]);
        cr_expect_eq(m->phases, (unsigned)AB_PHASE_DECODE);
        cr_expect_eq(m->masks, (unsigned)AB_MASKS_CAUSAL);
        struct ab_ledger led = {0};
        cr_expect_eq(fx_method_run(m, &p, 8, NULL, NULL, &led), AB_E_USAGE, "%s", m->name);
    }
    fx_layer_free(&L);
}

/* GQA: ada-snapkv selects per kv head (scores maxed over the group), so the query heads of a
 * group read one set, and the layer's kv heads keep n_kv x C context keys in all. */
Test(ada_snapkv, gqa_group_reads_one_set)
{
    enum { N = 512, D = 32, M = 16, H = 4, KV = 2, C = 150 };
    struct fx_layer L;
    fx_layer_make(&L, H, KV, N, D, 3.0, 42);
    int64_t q0 = N - M, total = 0;
    struct ab_keep keep[H];
    for (int64_t h = 0; h < H; h++) {
        struct ab_problem p = fx_problem(&L, h, M);
        struct ab_ledger led;
        fx_run_checked(fx_method("ada-snapkv"), &p, C, &led, &keep[h]);
        if (h % (H / KV) == 0) total += keep_count_below(&keep[h], 0, q0);
    }
    for (int64_t h = 0; h < H; h++) {
        int64_t first = h - h % (H / KV);
        cr_expect(!memcmp(keep[h].bits, keep[first].bits,
                          sizeof(uint64_t) * (size_t)(keep[h].n_rows * keep[h].words)),
                  "head %lld and head %lld share a kv head", (long long)h, (long long)first);
    }
    cr_expect_eq(total, KV * C);
    for (int64_t h = 0; h < H; h++) ab_keep_free(&keep[h]);
    fx_layer_free(&L);
}

/* Edge problems: one decode query, a context shorter than the window, no context at all
 * (m = n), each at small, middle and largest knobs: the ledger checks of run_checked hold and
 * the o-only path (keep == NULL) gives the same O. */
Test(kv, edge_problems)
{
    enum { N = 96, D = 16, H = 2 };
    struct fx_layer L;
    fx_layer_make(&L, H, H, N, D, 2.0, 96);
    const int64_t ms[] = {1, 40, N};
    const double knobs[] = {1, 5, 33, N};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof knobs / sizeof knobs[0]; b++)
            for (int k = 0; k < N_KV; k++) {
                const struct ab_method *m = fx_method(kv_names[k]);
                struct ab_problem p = fx_problem(&L, 1, ms[a]);
                struct ab_ledger led, led2 = {0};
                struct ab_keep keep;
                double err = fx_run_checked(m, &p, knobs[b], &led, &keep);
                cr_expect(isfinite(err), "%s m %lld knob %g", m->name, (long long)ms[a],
                          knobs[b]);
                if (knobs[b] == N) cr_expect_leq(err, 1e-5, "%s m %lld", m->name, (long long)ms[a]);
                float *o1 = malloc(sizeof(float) * p.n_rows * D);
                float *o2 = malloc(sizeof(float) * p.n_rows * D);
                ab_attend_kept(&p, &keep, o1, NULL);
                cr_assert_eq(fx_method_run(m, &p, knobs[b], o2, NULL, &led2), AB_OK);
                cr_expect(!memcmp(o1, o2, sizeof(float) * p.n_rows * D), "%s m %lld knob %g",
                          m->name, (long long)ms[a], knobs[b]);
                free(o1), free(o2);
                ab_keep_free(&keep);
            }
    fx_layer_free(&L);
}

/* ---- cache-compressed decode (lib/attn/compact.c) ---- */

/* SnapKV's kept cache compacted once and read by the blocked dense kernel gives the accuracy
 * path's output (ab_attend_kept over the same kept sets): the fast decode kernel realises the
 * selection it is charged for. The kept set of every decode row is the compacted cache cut at
 * the row's position (the prefix compressed once, the decode keys up to the row). */
Test(snapkv, compacted_cache_decode_equals_the_accuracy_path)
{
    enum { N = 2048, D = 64, M = 16, C = 256 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 47);
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("snapkv"), &p, C, &led, &keep);
    /* the cache: every key the last decode row keeps */
    int64_t *idx = malloc(sizeof(int64_t) * N), n_keep = 0, last = p.n_rows - 1;
    for (int64_t j = 0; j < N; j++)
        if (ab_keep_has(&keep, last, j)) idx[n_keep++] = j;
    cr_assert(n_keep > C && n_keep < N / 2, "%lld kept", (long long)n_keep);
    for (int64_t r = 0; r < p.n_rows; r++)
        for (int64_t t = 0; t < n_keep; t++)
            cr_assert_eq(ab_keep_has(&keep, r, idx[t]), idx[t] <= p.rows[r],
                         "row %lld, key %lld", (long long)p.rows[r], (long long)idx[t]);
    /* the accuracy path */
    float *o_ref = calloc((size_t)(M * D), sizeof(float)), *o = calloc((size_t)(M * D), sizeof(float));
    ab_attend_kept(&p, &keep, o_ref, NULL);
    /* the fast path: compact once, then the decode rows against the compacted cache */
    struct ab_compact cc;
    cr_assert_eq(ab_attn_compact(p.h, idx, n_keep, &cc), AB_OK, "%s", ab_errmsg());
    struct ab_head dec = cc.h;
    dec.n_q = M, dec.q = p.h->q + p.q0 * D, dec.q_pos = p.h->q_pos + p.q0;
    cr_assert_eq(ab_attn_fast(&dec, o, NULL), AB_OK);
    double num = 0, den = 0;
    for (int64_t i = 0; i < M * D; i++)
        num += (o[i] - o_ref[i]) * (o[i] - o_ref[i]), den += o_ref[i] * o_ref[i];
    cr_expect(sqrt(num / den) < 1e-5, "compacted decode vs accuracy path: rel L2 %g",
              sqrt(num / den));
    /* bad indices are refused */
    int64_t bad[2] = {5, 5};
    struct ab_compact cb;
    cr_expect_eq(ab_attn_compact(p.h, bad, 2, &cb), AB_E_USAGE);
    ab_attn_compact_free(&cc);
    free(idx), free(o_ref), free(o);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- token-sparse attention (lib/attn/sparse.c) ---- */

/* The token-sparse kernel over a method's kept sets equals the accuracy path (ab_attend_kept)
 * on the same sets: vertical-slash and block-topk in prefill, quest and h2o in decode; so does
 * the block-sparse kernel in prefill (tiles skipped or masked, never approximated); with and
 * without a partial last tile. */
Test(sparse_kernel, equals_the_accuracy_path_on_real_selections)
{
    enum { D = 64, M = 32 };
    for (int64_t N = 1000; N <= 1536; N += 536) { /* a partial last tile, then whole tiles */
        struct fx_layer L;
        fx_layer_make(&L, 1, 1, N, D, 1.5, 53 + (int)N);
        const char *names[4] = {"vertical-slash", "block-topk", "quest", "h2o"};
        const double knobs[4] = {64, 4, 8, 200};
        for (int t = 0; t < 4; t++) {
            const struct ab_method *me = fx_method(names[t]);
            struct ab_problem p = fx_problem(&L, 0, (me->phases & AB_PHASE_PREFILL) ? 0 : M);
            struct ab_ledger led;
            struct ab_keep keep;
            fx_run_checked(me, &p, knobs[t], &led, &keep);
            float *o_ref = calloc((size_t)(p.n_rows * D), sizeof(float));
            float *o = calloc((size_t)(p.n_rows * D), sizeof(float));
            ab_attend_kept(&p, &keep, o_ref, NULL);
            cr_assert_eq(ab_attn_sparse(p.h, p.rows, p.n_rows, keep.bits, keep.words, o), AB_OK);
            double num = 0, den = 0, kept = 0;
            for (int64_t i = 0; i < p.n_rows * D; i++)
                num += (o[i] - o_ref[i]) * (o[i] - o_ref[i]), den += o_ref[i] * o_ref[i];
            for (int64_t r = 0; r < p.n_rows; r++) kept += (double)ab_keep_count(&keep, r);
            cr_expect(sqrt(num / den) < 1e-5, "%s: token-sparse vs accuracy path rel L2 %g",
                      names[t], sqrt(num / den));
            cr_expect(kept < 0.5 * (double)p.n_rows * (double)N, "%s keeps %g cells", names[t],
                      kept);
            if (p.q0 == 0) { /* prefill: the block-sparse kernel over every row, too */
                memset(o, 0, sizeof(float) * (size_t)(p.n_rows * D));
                cr_assert_eq(ab_attn_block_sparse(p.h, keep.bits, keep.words, o), AB_OK);
                num = den = 0;
                for (int64_t i = 0; i < p.n_rows * D; i++)
                    num += (o[i] - o_ref[i]) * (o[i] - o_ref[i]), den += o_ref[i] * o_ref[i];
                cr_expect(sqrt(num / den) < 1e-5, "%s: block-sparse vs accuracy path rel L2 %g",
                          names[t], sqrt(num / den));
            }
            free(o_ref), free(o);
            ab_keep_free(&keep);
        }
        fx_layer_free(&L);
    }
}
