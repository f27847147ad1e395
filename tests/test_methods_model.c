/* test_methods_model.c - the model-level KV methods (tidal, duo) on hand-built models of several
 * layers, planned over the whole model as the sweep plans them (AB_METHOD_MODEL):
 * - tidal: a reuse layer reads exactly the positions its selection layer chose (the same set
 *   in every reuse layer of a kv head, equal to the top K of the selection layer's group
 *   attention computed here in double), layers 0, 1 and the selection layers read everything,
 *   and layers after the correction layer switch to its selection;
 * - duo: the kv heads keeping the full cache are exactly the top floor(f N) of the output-
 *   deviation proxy (metrics.md) computed here independently in double, on planted heads;
 * - both through ab_sweep_workload: the knob is fitted on the whole workload's cost.
 * The generic battery (test_methods.c) runs both rows per head without a plan. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "eval/eval.h"
#include "gen/gen.h"
#include "methods/kv.h"
#include "methods/method.h"
#include "methods_fixtures.h"

enum { HEADS = 4, KV = 2, GROUP = HEADS / KV, D = 32 };

/* A model of nl layers (each an fx_layer of n rows) and its decode view with m queries. */
struct model {
    int64_t nl, n, m;
    struct fx_layer *layers;     /* (nl) */
    struct ab_problem *problems; /* (nl * HEADS) */
    struct ab_model_view mv;
};

static void model_make(struct model *M, int64_t nl, int64_t n, int64_t m, uint64_t seed)
{
    *M = (struct model){.nl = nl, .n = n, .m = m};
    M->layers = calloc((size_t)nl, sizeof *M->layers);
    M->problems = calloc((size_t)(nl * HEADS), sizeof *M->problems);
    for (int64_t l = 0; l < nl; l++)
        fx_layer_make(&M->layers[l], HEADS, KV, n, D, 4.0, seed + (uint64_t)l);
}

/* (Re)builds the problems after the inputs were changed. */
static void model_view(struct model *M)
{
    for (int64_t l = 0; l < M->nl; l++)
        for (int64_t h = 0; h < HEADS; h++) {
            struct ab_problem p = fx_problem(&M->layers[l], h, M->m);
            p.layer_index = l, p.n_layer = M->nl;
            M->problems[l * HEADS + h] = p;
        }
    M->mv = (struct ab_model_view){
        .problems = M->problems, .n_layer = M->nl, .n_head = HEADS, .seed = 1};
}

/* Prepares every problem of the view for m, as the sweep does before the model-level fit
 * (plan() reads the states); model_unprepare frees them. */
static void model_prepare(struct model *M, const struct ab_method *m)
{
    for (int64_t x = 0; x < M->nl * HEADS; x++) fx_prepare(m, &M->problems[x]);
}

static void model_unprepare(struct model *M, const struct ab_method *m)
{
    for (int64_t x = 0; x < M->nl * HEADS; x++) fx_unprepare(m, &M->problems[x]);
}

static void model_free(struct model *M)
{
    for (int64_t l = 0; l < M->nl; l++) fx_layer_free(&M->layers[l]);
    free(M->layers), free(M->problems);
}

/* Runs m on problem x of the model with plan, into keep (allocated here). */
static void run_planned(const struct ab_method *m, struct model *M, int64_t x, const void *plan,
                        double knob, struct ab_keep *keep, struct ab_ledger *led)
{
    struct ab_problem p = M->problems[x];
    p.plan = plan;
    cr_assert_eq(ab_keep_alloc(keep, p.n_rows, M->n), AB_OK);
    float *o = malloc(sizeof(float) * (size_t)(p.n_rows * D));
    *led = (struct ab_ledger){0};
    cr_assert_eq(fx_method_run(m, &p, knob, o, keep, led), AB_OK, "%s: %s", m->name, ab_errmsg());
    double kept = 0;
    for (int64_t r = 0; r < p.n_rows; r++) kept += (double)ab_keep_count(keep, r);
    cr_expect(fabs(kept - led->cells) < 0.5, "%s: keep sets hold %g cells, ledger %g", m->name,
              kept, led->cells);
    free(o);
}

static int keep_rows_equal(const struct ab_keep *a, const struct ab_keep *b)
{
    return a->n_rows == b->n_rows && a->words == b->words &&
           !memcmp(a->bits, b->bits, sizeof(uint64_t) * (size_t)(a->n_rows * a->words));
}

/* ---- tidal ---- */

/* Checks that keep row r of a reuse layer is the top K of the group attention of kv head u at
 * layer `sel` of row i, computed in double; near-ties at the K-th place (relative gap < 1e-5,
 * where float ranking may differ) are tolerated. Returns 1 when it matches exactly. */
static int tidal_matches_top_k(struct model *M, int64_t sel, int64_t u, int64_t i, int64_t K,
                               const struct ab_keep *keep, int64_t r)
{
    struct fx_layer *L = &M->layers[sel];
    int64_t v = i + 1;
    double *score = calloc((size_t)v, sizeof(double)), *lg = malloc(sizeof(double) * (size_t)v);
    for (int64_t e = 0; e < GROUP; e++) {
        const struct ab_head *h = &L->heads[u * GROUP + e];
        double mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < v; j++) {
            double dot = 0;
            for (int64_t c = 0; c < D; c++) dot += (double)h->q[i * D + c] * h->k[j * D + c];
            lg[j] = dot * h->scale;
            mx = fmax(mx, lg[j]);
        }
        for (int64_t j = 0; j < v; j++) z += exp(lg[j] - mx);
        for (int64_t j = 0; j < v; j++) score[j] += exp(lg[j] - mx) / z;
    }
    /* the K-th largest score and the next */
    double *sorted = malloc(sizeof(double) * (size_t)v);
    memcpy(sorted, score, sizeof(double) * (size_t)v);
    for (int64_t a = 0; a < v; a++)
        for (int64_t b = a + 1; b < v; b++)
            if (sorted[b] > sorted[a]) {
                double t = sorted[a];
                sorted[a] = sorted[b], sorted[b] = t;
            }
    int64_t kk = K < v ? K : v;
    int exact = 1;
    for (int64_t j = 0; j < v; j++) {
        int want = kk == v || score[j] > sorted[kk - 1] || (score[j] == sorted[kk - 1]);
        if (ab_keep_has(keep, r, j) != want) {
            exact = 0;
            double gap = kk < v ? sorted[kk - 1] - sorted[kk] : 1;
            cr_assert(gap < 1e-5 * sorted[kk - 1],
                      "tidal: layer-%ld selection, row %ld key %ld: "
                      "kept %d, top-%ld says %d",
                      (long)sel, (long)i, (long)j, ab_keep_has(keep, r, j), (long)K, want);
        }
    }
    free(score), free(lg), free(sorted);
    return exact;
}

Test(tidal, reuse_layers_read_the_selection_layers_positions)
{
    enum { NL = 12, N = 320, M = 24, K = 40 };
    const struct ab_method *m = fx_method("tidal");
    struct model Mo;
    model_make(&Mo, NL, N, M, 300);
    model_view(&Mo);
    model_prepare(&Mo, m);
    void *plan = NULL;
    cr_assert_eq(m->plan(&Mo.mv, K, &plan), AB_OK, "%s", ab_errmsg());
    /* roles at 12 layers: full 0, 1; selection 2 and round(13 * 12 / 32) = 5; reuse 3, 4 (of 2)
     * and 6..11 (of 5) */
    const int64_t source[NL] = {-1, -1, -1, 2, 2, -1, 5, 5, 5, 5, 5, 5};
    struct ab_keep first[KV][NL];
    int64_t exact = 0, checked = 0;
    for (int64_t l = 0; l < NL; l++)
        for (int64_t h = 0; h < HEADS; h++) {
            struct ab_keep keep;
            struct ab_ledger led;
            run_planned(m, &Mo, l * HEADS + h, plan, K, &keep, &led);
            const struct ab_problem *p = &Mo.problems[l * HEADS + h];
            for (int64_t r = 0; r < p->n_rows; r++) {
                int64_t v = p->rows[r] + 1;
                int64_t want = source[l] < 0 ? v : (K < v ? K : v);
                cr_assert_eq(ab_keep_count(&keep, r), want, "layer %ld head %ld row %ld", (long)l,
                             (long)h, (long)r);
            }
            int64_t u = h / GROUP;
            if (source[l] >= 0 && h % GROUP == 0) {
                /* every reuse layer of kv head u reads the same positions */
                if (l == source[l] + 1) {
                    first[u][source[l]] = keep;
                    for (int64_t r = 0; r < p->n_rows; r += 5, checked++)
                        exact += tidal_matches_top_k(&Mo, source[l], u, p->rows[r], K, &keep, r);
                    continue;
                }
                cr_assert(keep_rows_equal(&keep, &first[u][source[l]]),
                          "layer %ld kv head %ld does not read layer %ld's selection", (long)l,
                          (long)u, (long)source[l]);
            }
            if (source[l] >= 0 && h % GROUP == 1) {
                struct ab_keep other; /* the same kv head's other query head: the same set */
                run_planned(m, &Mo, l * HEADS + h - 1, plan, K, &other, &led);
                cr_assert(keep_rows_equal(&keep, &other),
                          "layer %ld: query heads of kv head %ld differ", (long)l, (long)u);
                ab_keep_free(&other);
            }
            ab_keep_free(&keep);
        }
    cr_expect(exact >= checked - 1, "only %ld of %ld rows match the top K exactly", (long)exact,
              (long)checked);
    for (int64_t u = 0; u < KV; u++) {
        /* the correction layer re-selects: its positions differ from layer 2's */
        cr_expect(!keep_rows_equal(&first[u][2], &first[u][5]),
                  "kv head %ld: layer 5 kept layer 2's set", (long)u);
        ab_keep_free(&first[u][2]), ab_keep_free(&first[u][5]);
    }
    m->plan_free(plan);
    model_unprepare(&Mo, m);
    model_free(&Mo);
}

/* ---- duo ---- */

/* The proxy of metrics.md for query head h over the probe rows [t0, q0), in double. */
static double proxy_dev(const struct ab_head *h, int64_t t0, int64_t q0)
{
    double dev2 = 0, out2 = 0;
    double *a = malloc(sizeof(double) * (size_t)h->n_k);
    for (int64_t t = t0; t < q0; t++) {
        int64_t v = t + 1;
        double mx = -INFINITY, z = 0, zs = 0;
        for (int64_t j = 0; j < v; j++) {
            double dot = 0;
            for (int64_t c = 0; c < D; c++) dot += (double)h->q[t * D + c] * h->k[j * D + c];
            a[j] = dot * h->scale;
            mx = fmax(mx, a[j]);
        }
        for (int64_t j = 0; j < v; j++) z += (a[j] = exp(a[j] - mx));
        for (int64_t j = 0; j < v; j++)
            if (j < 64 || t - j < 256) zs += a[j];
        for (int64_t c = 0; c < D; c++) {
            double o = 0, os = 0;
            for (int64_t j = 0; j < v; j++) {
                o += a[j] / z * h->v[j * D + c];
                if (j < 64 || t - j < 256) os += a[j] / zs * h->v[j * D + c];
            }
            dev2 += (os - o) * (os - o);
            out2 += o * o;
        }
    }
    free(a);
    return sqrt(dev2 / out2);
}

Test(duo, full_cache_goes_to_the_heads_the_proxy_ranks_highest)
{
    enum { NL = 3, N = 1024, M = 32, UNITS = NL * KV };
    const struct ab_method *m = fx_method("duo");
    struct model Mo;
    model_make(&Mo, NL, N, M, 400);
    /* plant a far span [100, 140) that kv head x's queries seek with strength amp[x]: the
     * streaming window misses it, so the deviation grows with amp */
    const float amp[UNITS] = {2.0f, 0.0f, 5.0f, 1.0f, 3.0f, 4.0f};
    struct ab_rng rng;
    ab_rng_init(&rng, 401, 1);
    for (int64_t x = 0; x < UNITS; x++) {
        struct fx_layer *L = &Mo.layers[x / KV];
        int64_t u = x % KV;
        float dir[D];
        fx_unit(dir, D, &rng);
        fx_add_dir(L->k + u * N * D, D, 100, 140, dir, amp[x]);
        for (int64_t e = 0; e < GROUP; e++)
            fx_add_dir(L->q + (u * GROUP + e) * N * D, D, 0, N, dir, amp[x]);
    }
    model_view(&Mo);
    model_prepare(&Mo, m);
    int64_t q0 = N - M;
    for (int pass = 0; pass < 2; pass++) {
        int64_t probe = pass == 0 ? q0 : 16; /* metrics.md's proxy, then the row's default */
        double score[UNITS];
        for (int64_t x = 0; x < UNITS; x++) {
            score[x] = 0;
            for (int64_t e = 0; e < GROUP; e++)
                score[x] = fmax(score[x], proxy_dev(&Mo.layers[x / KV].heads[(x % KV) * GROUP + e],
                                                    q0 - probe, q0));
        }
        /* the planted order is the proxy's order, well separated */
        int64_t order[UNITS];
        for (int64_t x = 0; x < UNITS; x++) {
            order[x] = 0;
            for (int64_t y = 0; y < UNITS; y++) order[x] += score[y] > score[x];
            for (int64_t y = 0; y < UNITS; y++)
                if (y != x)
                    cr_assert(fabs(score[x] - score[y]) > 1e-3 * score[x],
                              "proxies %g and %g too close", score[x], score[y]);
        }
        for (int64_t R = 0; R <= UNITS; R++) {
            double f = R == 0 ? 0.001 : (double)R / UNITS;
            void *plan = NULL;
            int rc =
                pass == 0 ? ab_duo_plan_probe(&Mo.mv, f, probe, &plan) : m->plan(&Mo.mv, f, &plan);
            cr_assert_eq(rc, AB_OK, "%s", ab_errmsg());
            for (int64_t x = 0; x < UNITS; x++)
                for (int64_t e = 0; e < GROUP; e++) {
                    struct ab_keep keep;
                    struct ab_ledger led;
                    int64_t l = x / KV, h = (x % KV) * GROUP + e;
                    run_planned(m, &Mo, l * HEADS + h, plan, f, &keep, &led);
                    int full = order[x] < R;
                    for (int64_t r = 0; r < M; r++) {
                        int64_t i = q0 + r, want = full ? i + 1 : 64 + 256;
                        cr_assert_eq(ab_keep_count(&keep, r), want,
                                     "probe %ld f %g: kv head %ld (rank %ld) row %ld", (long)probe,
                                     f, (long)x, (long)order[x], (long)i);
                    }
                    if (!full)
                        for (int64_t j = 0; j < N; j++)
                            cr_assert_eq(ab_keep_has(&keep, M - 1, j), j < 64 || (N - 1) - j < 256);
                    ab_keep_free(&keep);
                }
            m->plan_free(plan);
        }
        /* without a plan the head's layer is the model: its kv heads ranked among themselves */
        for (int64_t l = 0; l < NL; l++) {
            struct ab_problem p = Mo.problems[l * HEADS];
            struct ab_keep keep;
            struct ab_ledger led = {0};
            cr_assert_eq(ab_keep_alloc(&keep, p.n_rows, N), AB_OK);
            cr_assert_eq(ab_duo_run(&p, 0.5, probe, NULL, &keep, &led), AB_OK, "%s", ab_errmsg());
            int top = score[l * KV] > score[l * KV + 1];
            cr_expect_eq(ab_keep_count(&keep, 0) == q0 + 1, top, "layer %ld alone", (long)l);
            ab_keep_free(&keep);
        }
    }
    model_unprepare(&Mo, m);
    model_free(&Mo);
}

/* ---- through the sweep ---- */

Test(model_kv, budget_is_fitted_on_the_whole_workload)
{
    struct ab_workload w;
    struct ab_gen_opts g;
    ab_gen_defaults(&g);
    g.n_layer = 12, g.n_head = 4, g.n_kv_head = 2, g.n_seq = 1024, g.d = 32, g.d_v = 32;
    g.profile = "retrieval";
    cr_assert_eq(ab_gen_workload(&g, &w), AB_OK, "%s", ab_errmsg());
    const struct ab_method *ms[] = {ab_method_find("tidal"), ab_method_find("duo")};
    cr_assert(ms[0] && ms[1]);
    double targets[] = {0.75};
    struct ab_sweep_opts o;
    ab_sweep_defaults(&o);
    o.methods = ms, o.n_methods = 2, o.phases = AB_PHASE_DECODE, o.decode_m = 64;
    o.targets = targets, o.n_targets = 1;
    struct ab_results r;
    ab_results_init(&r);
    cr_assert_eq(ab_sweep_workload(&w, "w.h5", &o, &r), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(r.n_cells, 2 * 12 * 4);
    double fl[2] = {0, 0}, dense[2] = {0, 0}, knob[2] = {NAN, NAN};
    for (int64_t c = 0; c < r.n_cells; c++) {
        const struct ab_cell *x = &r.cells[c];
        int k = strcmp(x->method, "tidal") != 0;
        /* the amortised cost: one-off work spread over the default horizon */
        double cost = x->flops_attend + x->flops_select +
                      x->flops_once * (double)o.decode_m / (double)AB_DECODE_HORIZON;
        fl[k] += cost;
        dense[k] += cost / x->flop_ratio;
        if (isnan(knob[k])) knob[k] = x->knob;
        cr_expect_eq(x->knob, knob[k], "%s: one knob for the whole workload", x->method);
        cr_expect(isfinite(x->rel_l2), "%s L%lld H%lld did not run", x->method, (long long)x->layer,
                  (long long)x->head);
        if (k == 0 && (x->layer < 3 || x->layer == 5))
            cr_expect(x->rel_l2 < 1e-5, "tidal full layer %lld", (long long)x->layer);
    }
    for (int k = 0; k < 2; k++)
        cr_expect(fl[k] / dense[k] <= 0.75 + 1e-9 && fl[k] / dense[k] > 0.6, "%s workload ratio %g",
                  ms[k]->name, fl[k] / dense[k]);
    ab_results_free(&r);
    ab_workload_free(&w);
}
