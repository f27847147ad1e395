/* test_methods_headwise.c - the defining properties of the head-wise KV rows (razor.c, moa.c),
 * on seeded heads with planted structure:
 * - razor: the compensation token is the mean of the dropped keys and values (O of a head
 *   against a hand computation, with and without the ln c logit); with identical dropped keys
 *   the raised token is exact; the plan gives the full cache to the planted slash head only;
 * - moa: the plan's windows sum to knob x heads, only grow with the knob, and a head whose
 *   attention lies further back gets a longer window;
 * - both fitted at the workload level through ab_sweep_workload. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "eval/eval.h"
#include "gen/gen.h"
#include "methods/kv_headwise.h"
#include "methods_fixtures.h"

/* O of row i of p under razor's rule at window w, by hand in double: kept keys [0, min(4, lo))
 * and [lo, v), plus the mean of the dropped keys and values with logit scale q.k_c (+ ln c). */
static void hand_razor(const struct ab_problem *p, int64_t i, int64_t w, int raise, double *o)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, v = i + 1, lo = v - w > 0 ? v - w : 0, ns = lo < 4 ? lo : 4, c = lo - ns;
    double logit[1024], vals[1024][64];
    int64_t m = 0;
    for (int64_t j = 0; j < v; j++) {
        if (j >= ns && j < lo) continue;
        double dot = 0;
        for (int64_t x = 0; x < d; x++) dot += (double)h->q[i * d + x] * h->k[j * d + x];
        logit[m] = h->scale * dot;
        for (int64_t x = 0; x < d; x++) vals[m][x] = h->v[j * d + x];
        m++;
    }
    if (c > 0) {
        double kc[64] = {0}, dot = 0;
        for (int64_t x = 0; x < d; x++) vals[m][x] = 0;
        for (int64_t j = ns; j < lo; j++)
            for (int64_t x = 0; x < d; x++) {
                kc[x] += h->k[j * d + x] / (double)c;
                vals[m][x] += h->v[j * d + x] / (double)c;
            }
        for (int64_t x = 0; x < d; x++) dot += (double)h->q[i * d + x] * kc[x];
        logit[m++] = h->scale * dot + (raise ? log((double)c) : 0);
    }
    double mx = -INFINITY, z = 0;
    for (int64_t t = 0; t < m; t++) mx = logit[t] > mx ? logit[t] : mx;
    for (int64_t x = 0; x < d; x++) o[x] = 0;
    for (int64_t t = 0; t < m; t++) {
        double e = exp(logit[t] - mx);
        z += e;
        for (int64_t x = 0; x < d; x++) o[x] += e * vals[t][x];
    }
    for (int64_t x = 0; x < d; x++) o[x] /= z;
}

Test(razor, compensation_token_is_the_mean_of_the_dropped_keys_and_values)
{
    enum { N = 200, D = 16, M = 24, W = 40 };
    struct fx_layer L;
    fx_layer_make(&L, 2, 1, N, D, 4.0, 71);
    struct ab_problem p = fx_problem(&L, 1, M); /* plan NULL: a compressed head */
    float o[M * D], os[M * D];
    struct ab_keep keep;
    cr_assert_eq(ab_keep_alloc(&keep, p.n_rows, N), AB_OK);
    for (int raise = 0; raise <= 1; raise++) {
        struct ab_ledger led = {0};
        ab_keep_clear(&keep);
        cr_assert_eq(ab_razor_run(&p, W, raise, o, &keep, &led), AB_OK, "%s", ab_errmsg());
        double worst = 0;
        for (int64_t r = 0; r < p.n_rows; r++) {
            double want[D];
            hand_razor(&p, p.rows[r], W, raise, want);
            for (int64_t x = 0; x < D; x++)
                worst = fmax(worst, fabs(o[r * D + x] - want[x]) / (1 + fabs(want[x])));
        }
        cr_expect(worst < 2e-6, "raise %d: O differs from the hand computation by %g", raise, worst);
        /* the token is read: every decode row reads N - M + 1 - 4 - W .. keys' mean */
        cr_expect_eq(led.cells, (double)M * (4 + W));
        cr_expect(fabs(led.flops_attend - (double)M * (4 + W + 1) * 4 * D) < 0.5, "%g", led.flops_attend);
    }
    /* the token matters: the same cache without it (streaming) gives another output */
    struct ab_ledger led = {0};
    cr_assert_eq(fx_method_run(fx_method("streaming"), &p, W, os, NULL, &led), AB_OK);
    double diff = 0;
    for (int64_t x = 0; x < M * D; x++) diff = fmax(diff, fabs(os[x] - o[x]));
    cr_expect(diff > 1e-3, "razor equals streaming (max diff %g)", diff);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* c identical dropped keys read as one token with logit + ln c are exactly those c keys: razor
 * (default, raised logit) equals dense; the plain mean does not. */
Test(razor, raised_token_is_exact_when_the_dropped_keys_are_identical)
{
    enum { N = 160, D = 16, M = 16, W = 30 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 4.0, 72);
    /* every key outside the sinks and the windows of the decode rows: one key, one value */
    for (int64_t j = 5; j < N - W; j++)
        for (int64_t x = 0; x < D; x++) L.k[j * D + x] = L.k[4 * D + x], L.v[j * D + x] = L.v[4 * D + x];
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    double e = fx_rel_l2(fx_method("razor"), &p, W, &led, NULL);
    cr_expect(e < 1e-5, "raised token: rel_l2 %g against dense", e);
    float o[M * D];
    double *ref = malloc(sizeof(double) * M * D), num = 0, den = 0;
    cr_assert_eq(ab_attn_ref(p.h, p.rows, p.n_rows, ref, NULL), AB_OK);
    led = (struct ab_ledger){0};
    struct ab_keep keep;
    cr_assert_eq(ab_keep_alloc(&keep, p.n_rows, N), AB_OK);
    cr_assert_eq(ab_razor_run(&p, W, 0, o, &keep, &led), AB_OK);
    ab_keep_free(&keep);
    for (int64_t x = 0; x < M * D; x++) num += (o[x] - ref[x]) * (o[x] - ref[x]), den += ref[x] * ref[x];
    cr_expect(sqrt(num / den) > 1e-3, "plain mean is exact too (%g): the test cannot tell them apart",
              sqrt(num / den));
    free(ref);
    fx_layer_free(&L);
}

/* A model of n_layer x n_head heads, kv heads own their keys (group 1); plant(L, l) edits layer
 * l's inputs. The view's problems are decode problems with m queries. */
struct fx_model {
    struct fx_layer L[4];
    struct ab_problem prob[16];
    struct ab_model_view mv;
};

static void model_make(struct fx_model *fm, int64_t n_layer, int64_t n_head, int64_t n, int64_t d,
                       int64_t m, uint64_t seed)
{
    for (int64_t l = 0; l < n_layer; l++) fx_layer_make(&fm->L[l], n_head, n_head, n, d, 1.0, seed + (uint64_t)l);
    fm->mv = (struct ab_model_view){.problems = fm->prob, .n_layer = n_layer, .n_head = n_head, .seed = 1};
    for (int64_t l = 0; l < n_layer; l++)
        for (int64_t h = 0; h < n_head; h++) {
            struct ab_problem p = fx_problem(&fm->L[l], h, m);
            p.layer_index = l, p.n_layer = n_layer;
            fm->prob[l * n_head + h] = p;
        }
}

static void model_free(struct fx_model *fm)
{
    for (int64_t l = 0; l < fm->mv.n_layer; l++) fx_layer_free(&fm->L[l]);
}

/* Query t of head h in layer L looks back `dist` keys: q_t and k_{t - dist} share a seeded
 * random direction of strength a (logit about a^2 scale). */
static void plant_lookback(struct fx_layer *L, int64_t h, int64_t dist, float a, uint64_t seed)
{
    struct ab_rng r;
    ab_rng_init(&r, seed, 5);
    int64_t d = L->d, n = L->n;
    float *u = malloc(sizeof(float) * d);
    for (int64_t j = 0; j + dist < n; j++) {
        fx_unit(u, d, &r);
        fx_add_dir(L->k + h * n * d, d, j, j + 1, u, a);
        fx_add_dir(L->q + h * n * d, d, j + dist, j + dist + 1, u, a);
    }
    free(u);
}

Test(razor, plan_keeps_the_full_cache_of_the_slash_head)
{
    enum { N = 256, D = 32, M = 16 };
    struct fx_model fm;
    model_make(&fm, 2, 4, N, D, M, 81); /* U = 8 kv heads: round(0.08) + round(1.12) = 1 full */
    plant_lookback(&fm.L[1], 2, 32, 7.0f, 3); /* a slash 32 back in layer 1, head 2 */
    plant_lookback(&fm.L[0], 1, 0, 7.0f, 4);  /* a strongly local head: not a slash */
    const struct ab_method *m = fx_method("razor");
    double s_slash, s_local, s_plain;
    cr_assert_eq(ab_razor_score(&fm.prob[4 + 2], &s_slash), AB_OK);
    cr_assert_eq(ab_razor_score(&fm.prob[1], &s_local), AB_OK);
    cr_assert_eq(ab_razor_score(&fm.prob[3], &s_plain), AB_OK);
    cr_expect(s_slash > 0.5 && s_slash > 5 * s_local && s_slash > 5 * s_plain,
              "slash %g, local %g, plain %g", s_slash, s_local, s_plain);
    void *plan = NULL;
    cr_assert_eq(m->plan(&fm.mv, 64, &plan), AB_OK, "%s", ab_errmsg());
    for (int64_t x = 0; x < 8; x++)
        cr_expect_eq(ab_razor_plan_full(plan, x / 4, x % 4), x == 6, "head %ld", (long)x);
    /* the full head is dense at any window; the others are not */
    struct ab_problem p = fm.prob[6];
    p.plan = plan;
    struct ab_ledger led;
    cr_expect(fx_rel_l2(m, &p, 8, &led, NULL) < 1e-5);
    cr_expect_eq(led.cells, ab_problem_allowed_cells(&p));
    p = fm.prob[5], p.plan = plan;
    cr_expect(fx_rel_l2(m, &p, 8, &led, NULL) > 1e-3);
    cr_expect_eq(led.cells, (double)M * 12);
    m->plan_free(plan);
    model_free(&fm);
}

Test(moa, windows_sum_to_the_total_and_follow_the_distant_mass)
{
    enum { N = 320, D = 32, M = 16, H = 4 };
    struct fx_model fm;
    model_make(&fm, 1, H, N, D, M, 91);
    plant_lookback(&fm.L[0], 0, 0, 8.0f, 6);   /* head 0: looks at itself: local */
    plant_lookback(&fm.L[0], 1, 150, 8.0f, 7); /* head 1: looks 150 keys back */
    plant_lookback(&fm.L[0], 2, 20, 8.0f, 8);  /* head 2: 20 keys back; head 3: diffuse */
    const struct ab_method *m = fx_method("moa");
    int64_t prev[H] = {0};
    for (int64_t knob = 1; knob <= N; knob += 17) {
        void *plan = NULL;
        cr_assert_eq(m->plan(&fm.mv, (double)knob, &plan), AB_OK, "%s", ab_errmsg());
        int64_t sum = 0, w[H];
        for (int64_t h = 0; h < H; h++) {
            w[h] = ab_moa_plan_window(plan, 0, h);
            sum += w[h];
            cr_expect(w[h] >= 1 && w[h] <= N && w[h] >= prev[h], "knob %ld head %ld: %ld (was %ld)",
                      (long)knob, (long)h, (long)w[h], (long)prev[h]);
            prev[h] = w[h];
            /* the head runs at its window: its cells are a streaming cache of that window */
            struct ab_problem p = fm.prob[h];
            p.plan = plan;
            struct ab_ledger a = {0}, b = {0};
            cr_assert_eq(m->cost(&p, (double)knob, &a), AB_OK);
            cr_assert_eq(fx_method("streaming")->cost(&p, (double)w[h], &b), AB_OK);
            cr_expect_eq(a.cells, b.cells, "knob %ld head %ld", (long)knob, (long)h);
        }
        cr_expect_eq(sum, knob * H, "knob %ld: windows sum to %ld", (long)knob, (long)sum);
        /* heads 0..2 reach recall ~0.99 at windows 1, 21 and 151; the diffuse head 3 takes
         * the rest and stays below it up to a total of ~400 */
        if (knob >= 60 && knob <= 103)
            cr_expect(w[1] > 150 && w[1] > w[2] && w[2] > w[0],
                      "knob %ld: windows %ld %ld %ld %ld", (long)knob, (long)w[0], (long)w[1],
                      (long)w[2], (long)w[3]);
        m->plan_free(plan);
    }
    model_free(&fm);
}

/* Both rows through the sweep: the knob is fitted on the whole workload's cost, which meets
 * the target within the tolerance, and every cell carries the workload's feasibility. */
Test(headwise, sweep_fits_razor_and_moa_on_the_whole_workload)
{
    struct ab_workload w;
    struct ab_gen_opts g;
    ab_gen_defaults(&g);
    g.n_layer = 2, g.n_head = 4, g.n_kv_head = 2, g.n_seq = 1024, g.d = 32, g.d_v = 32;
    cr_assert_eq(ab_gen_workload(&g, &w), AB_OK, "%s", ab_errmsg());
    const struct ab_method *ms[] = {ab_method_find("razor"), ab_method_find("moa")};
    double targets[] = {0.5};
    struct ab_sweep_opts o;
    ab_sweep_defaults(&o);
    o.methods = ms, o.n_methods = 2, o.phases = AB_PHASE_DECODE, o.decode_m = 128;
    o.targets = targets, o.n_targets = 1;
    struct ab_results r;
    ab_results_init(&r);
    cr_assert_eq(ab_sweep_workload(&w, "w.h5", &o, &r), AB_OK, "%s", ab_errmsg());
    double fl[2] = {0, 0}, dense[2] = {0, 0}, lo[2] = {1e9, 1e9}, hi[2] = {0, 0};
    cr_assert_eq(r.n_cells, 16);
    for (int64_t c = 0; c < r.n_cells; c++) {
        const struct ab_cell *x = &r.cells[c];
        int k = strcmp(x->method, "razor") != 0;
        /* the amortised cost: one-off work spread over the default horizon */
        double cost = x->flops_attend + x->flops_select +
                      x->flops_once * (double)o.decode_m / (double)AB_DECODE_HORIZON;
        fl[k] += cost;
        dense[k] += cost / x->flop_ratio;
        lo[k] = fmin(lo[k], x->flop_ratio), hi[k] = fmax(hi[k], x->flop_ratio);
        cr_expect_eq(x->feasible, 1, "%s L%lld H%lld", x->method, (long long)x->layer, (long long)x->head);
    }
    for (int k = 0; k < 2; k++) {
        cr_expect(fl[k] / dense[k] <= 0.5 + 1e-9 && fl[k] / dense[k] >= 0.5 * 0.95,
                  "%s workload ratio %g", ms[k]->name, fl[k] / dense[k]);
        /* heterogeneous heads: some above the target, some below */
        cr_expect(hi[k] > 0.5 && lo[k] < 0.5, "%s: head ratios %g .. %g", ms[k]->name, lo[k], hi[k]);
    }
    ab_results_free(&r);
    ab_workload_free(&w);
}
