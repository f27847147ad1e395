/* test_budgets.c - budgets as kvpress states them (issue 18): the one solver fitted to tokens
 * read per decode step and to a ratio of K/V bytes read, beside FLOP ratios; FIXED rows under
 * them (kivi's residual window is fitted, int8 has fixed bytes, quantization keeps every
 * token); the per-layer rules; and `run --kv-budget / --bytes-budget / --layer-budget` end to
 * end with its columns and its refusals. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "eval/eval.h"
#include "helpers.h"
#include "io/results_io.h"
#include "methods_fixtures.h"

/* Fits m on p (prepared here) to a budget of kind; checks the feasibility rule and that the
 * next integer knob would exceed the target. Returns the achieved measure (NaN: infeasible). */
static double fit_checked(const struct ab_method *m, struct ab_problem *p, int kind,
                          double target, double *knob_out)
{
    cr_assert_eq(ab_problem_prepare(m, p), AB_OK, "%s", ab_errmsg());
    double knob;
    int feasible;
    struct ab_ledger led;
    cr_assert_eq(ab_budget_fit_kind(m, p, kind, target, &knob, &led, &feasible), AB_OK, "%s",
                 ab_errmsg());
    double x = ab_ledger_measure(kind, &led, p);
    cr_expect_eq(feasible, !isnan(knob), "%s at %g", m->name, target);
    if (feasible) {
        cr_expect(x <= target * (1 + 1e-12), "%s at %g: achieved %g", m->name, target, x);
        double lo, hi;
        ab_method_knob_range(m, p, &lo, &hi);
        cr_expect(m->knob.integer, "%s: an integer knob", m->name);
        if (knob + 1 <= hi) { /* the largest such knob: the next one is above the target */
            struct ab_ledger up;
            cr_assert_eq(ab_method_cost(m, p, knob + 1, &up), AB_OK);
            cr_expect(ab_ledger_measure(kind, &up, p) > target, "%s at %g: knob %g + 1 gives %g",
                      m->name, target, knob, ab_ledger_measure(kind, &up, p));
        }
    }
    ab_problem_unprepare(m, p);
    *knob_out = knob;
    return feasible ? x : NAN;
}

Test(solver, tokens_budget_keeps_at_most_T_per_step_and_the_next_knob_exceeds)
{
    struct fx_layer L;
    fx_layer_make(&L, 4, 2, 1024, 32, 4.0, 31);
    const char *names[] = {"snapkv", "quest", "h2o"};
    const double T[] = {64, 200, 500};
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < 3; t++) {
            struct ab_problem p = fx_problem(&L, 1, 64);
            double knob, x = fit_checked(fx_method(names[i]), &p, AB_BUDGET_TOKENS, T[t], &knob);
            cr_expect(isfinite(x) && x <= T[t] && x > 0.5 * T[t], "%s at T = %g: %g tokens",
                      names[i], T[t], x);
        }
    /* the measure: cells / m, the mean keys a decode query reads; NaN in prefill */
    struct ab_problem p = fx_problem(&L, 0, 64), pre = fx_problem(&L, 0, 0);
    struct ab_ledger led = {.cells = 64 * 100.0};
    cr_expect_float_eq(ab_ledger_tokens_step(&led, &p), 100, 1e-12);
    cr_expect(isnan(ab_ledger_tokens_step(&led, &pre)));
    fx_layer_free(&L);
}

Test(solver, bytes_budget_fits_kivi_residual_window)
{
    struct fx_layer L;
    fx_layer_make(&L, 4, 2, 1024, 32, 4.0, 32);
    const struct ab_method *k4 = fx_method("kivi-4");
    cr_expect(k4->flags & AB_METHOD_FIXED);
    const double B[] = {0.3, 0.5, 0.9};
    double prev = 0;
    for (int t = 0; t < 3; t++) {
        struct ab_problem p = fx_problem(&L, 0, 64);
        double knob, x = fit_checked(k4, &p, AB_BUDGET_BYTES, B[t], &knob);
        cr_expect(isfinite(x) && knob >= 1 && knob > prev, "kivi-4 at %g: R = %g, ratio %g",
                  B[t], knob, x);
        prev = knob;
    }
    /* through ab_method_apply, as the sweep calls it: FIXED, but its bytes move with R, so it
     * is fitted (not run at R = 128) */
    struct ab_problem p = fx_problem(&L, 0, 64);
    cr_assert_eq(ab_problem_prepare(k4, &p), AB_OK);
    struct ab_keep keep;
    cr_assert_eq(ab_keep_alloc(&keep, p.n_rows, p.h->n_k), AB_OK);
    float *out = malloc(sizeof(float) * (size_t)(p.n_rows * p.h->d_v));
    struct ab_apply_opts ao = {.kind = AB_BUDGET_BYTES};
    struct ab_applied ap;
    cr_assert_eq(ab_method_apply(k4, &p, 0.5, &ao, out, &keep, NULL, &ap), AB_OK, "%s",
                 ab_errmsg());
    cr_expect(ap.ran && ap.feasible && ap.knob != k4->knob.def, "R = %g", ap.knob);
    cr_expect(ab_ledger_bytes_ratio(&ap.led, &p) <= 0.5);
    /* a tokens budget below the context: quantization keeps every token */
    ao.kind = AB_BUDGET_TOKENS;
    cr_assert_eq(ab_method_apply(k4, &p, 256, &ao, out, &keep, NULL, &ap), AB_OK);
    cr_expect(!ap.ran && !ap.feasible, "ran %d", ap.ran);
    cr_expect(strstr(ap.reason, "keeps every token") != NULL, "%s", ap.reason);
    /* under a FLOP budget it runs at its default knob, as before */
    ao.kind = AB_BUDGET_FLOPS;
    cr_assert_eq(ab_method_apply(k4, &p, 1.0, &ao, out, &keep, NULL, &ap), AB_OK);
    cr_expect(ap.ran && ap.knob == k4->knob.def);
    ab_problem_unprepare(k4, &p);
    free(out);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

Test(solver, int8_is_infeasible_below_its_fixed_bytes_and_feasible_above)
{
    struct fx_layer L;
    fx_layer_make(&L, 4, 2, 1024, 32, 4.0, 33);
    const struct ab_method *i8 = fx_method("int8");
    cr_expect(i8->knob.name == NULL);
    struct ab_problem p = fx_problem(&L, 0, 64);
    struct ab_ledger led;
    cr_assert_eq(ab_method_cost(i8, &p, 0, &led), AB_OK);
    double r0 = ab_ledger_bytes_ratio(&led, &p);
    cr_expect(r0 > 0.25 && r0 < 0.35, "int8 bytes ratio %g", r0); /* 1 byte of 4, plus scales */
    double knob;
    int feasible;
    cr_assert_eq(ab_budget_fit_kind(i8, &p, AB_BUDGET_BYTES, 0.9 * r0, &knob, &led, &feasible),
                 AB_OK);
    cr_expect(!feasible);
    char why[96];
    ab_budget_reason_kind(i8, &p, AB_BUDGET_BYTES, 0.9 * r0, &led, why, sizeof why);
    cr_expect(strstr(why, "fixed bytes ratio") != NULL, "%s", why);
    cr_assert_eq(ab_budget_fit_kind(i8, &p, AB_BUDGET_BYTES, 1.1 * r0, &knob, &led, &feasible),
                 AB_OK);
    cr_expect(feasible && fabs(ab_ledger_bytes_ratio(&led, &p) - r0) < 1e-12);
    /* dense reads every byte: a bytes ratio of exactly 1 */
    cr_assert_eq(ab_method_cost(fx_method("dense"), &p, 0, &led), AB_OK);
    cr_expect_float_eq(ab_ledger_bytes_ratio(&led, &p), 1.0, 1e-12);
    fx_layer_free(&L);
}

Test(layers, pyramid_weights_are_linear_mean_one_and_clipped)
{
    double w[5];
    cr_assert_eq(ab_layer_weights(AB_LAYER_PYRAMID, NULL, 0, 5, w), AB_OK);
    const double want[5] = {1.5, 1.25, 1.0, 0.75, 0.5};
    double sum = 0;
    for (int l = 0; l < 5; l++) {
        cr_expect_float_eq(w[l], want[l], 1e-12, "layer %d", l);
        sum += w[l];
    }
    cr_expect_float_eq(sum / 5, 1.0, 1e-12);
    cr_assert_eq(ab_layer_weights(AB_LAYER_PYRAMID, NULL, 0, 1, w), AB_OK);
    cr_expect_eq(w[0], 1.0);
    cr_assert_eq(ab_layer_weights(AB_LAYER_UNIFORM, NULL, 0, 3, w), AB_OK);
    cr_expect(w[0] == 1 && w[1] == 1 && w[2] == 1);
    /* ratios clipped to 1, tokens not */
    cr_expect_eq(ab_layer_target(AB_BUDGET_FLOPS, 0.8, 1.5), 1.0);
    cr_expect_eq(ab_layer_target(AB_BUDGET_BYTES, 0.8, 1.5), 1.0);
    cr_expect_float_eq(ab_layer_target(AB_BUDGET_BYTES, 0.5, 1.5), 0.75, 1e-12);
    cr_expect_float_eq(ab_layer_target(AB_BUDGET_TOKENS, 128, 1.5), 192, 1e-12);
    /* given weights are normalised to mean 1; a wrong count is refused in one line */
    const double g[2] = {1, 3};
    cr_assert_eq(ab_layer_weights(AB_LAYER_GIVEN, g, 2, 2, w), AB_OK);
    cr_expect_float_eq(w[0], 0.5, 1e-12);
    cr_expect_float_eq(w[1], 1.5, 1e-12);
    cr_expect_eq(ab_layer_weights(AB_LAYER_GIVEN, g, 2, 3, w), AB_E_USAGE);
    cr_expect(strstr(ab_errmsg(), "2 layer weights for 3 layers") && !strchr(ab_errmsg(), '\n'),
              "%s", ab_errmsg());
}

/* A small causal workload (2 layers) for the command line. */
static const char *cli_workload(void)
{
    static char path[4096];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s", t_path("budgets-w.h5"));
        char *out, *err;
        int st = t_run(&out, &err, "gen --preset model --layers 2 --heads 2 --kv-heads 1 "
                                   "--n 384 --d 32 -o '%s'", path);
        cr_assert_eq(st, 0, "%s", err);
        free(out), free(err);
    }
    return path;
}

Test(run_cli, kv_and_bytes_budgets_write_their_columns)
{
    const char *w = cli_workload(), *res = t_path("budgets-r.h5");
    char *out, *err;
    int st = t_run(&out, &err, "run '%s' --methods snapkv,kivi-4,int8 --kv-budget 64,128 "
                               "--bytes-budget 0.25 --decode-queries 32 -o '%s'", w, res);
    cr_assert_eq(st, 0, "%s", err);
    free(out), free(err);
    struct ab_results r;
    ab_results_init(&r);
    cr_assert_eq(ab_results_read_h5(res, &r), AB_OK, "%s", ab_errmsg());
    /* decode only (tokens and bytes budgets have no prefill cells): 3 budgets x 3 methods x 4
     * heads */
    cr_expect_eq(r.n_cells, 3 * 3 * 4);
    int n_tok = 0, n_bytes = 0;
    for (int64_t i = 0; i < r.n_cells; i++) {
        const struct ab_cell *c = &r.cells[i];
        cr_expect_str_eq(c->phase, "decode");
        cr_expect(isfinite(c->tokens_step) || !c->feasible);
        cr_expect(isfinite(c->bytes_ratio) && c->bytes_ratio > 0, "%s", c->method);
        if (!strcmp(c->budget_kind, "tokens")) {
            n_tok++;
            cr_expect(isnan(c->target_ratio) && (c->target_tokens == 64 || c->target_tokens == 128));
            cr_expect_eq(c->layer_target, c->target_tokens);
            if (c->feasible) cr_expect(c->tokens_step <= c->target_tokens, "%s", c->method);
            if (strcmp(c->method, "snapkv")) /* quantization keeps every token */
                cr_expect(!c->feasible && strstr(c->reason, "keeps every token"), "%s", c->reason);
        } else {
            cr_expect_str_eq(c->budget_kind, "bytes");
            n_bytes++;
            cr_expect(c->target_ratio == 0.25 && isnan(c->target_tokens));
            if (c->feasible) cr_expect(c->bytes_ratio <= 0.25, "%s", c->method);
            if (!strcmp(c->method, "int8"))
                cr_expect(!c->feasible && strstr(c->reason, "fixed bytes ratio"), "%s", c->reason);
        }
    }
    cr_expect_eq(n_tok, 2 * 3 * 4);
    cr_expect_eq(n_bytes, 3 * 4);
    /* the summary groups by kind: (3 methods) x (T=64, T=128, B=1/4) */
    cr_expect_eq(r.n_summary, 9);
    cr_expect(strstr(r.options, "\"kv_budget\"") && strstr(r.options, "\"layer_budget\""), "%s",
              r.options);
    ab_results_free(&r);
    /* the CSV carries the columns */
    char cells[4200], summary[4200];
    snprintf(cells, sizeof cells, "%.*s.csv", (int)strlen(res) - 3, res);
    snprintf(summary, sizeof summary, "%.*s-summary.csv", (int)strlen(res) - 3, res);
    size_t len;
    char *csv = (char *)t_slurp(cells, &len), *sum = (char *)t_slurp(summary, &len);
    cr_assert(csv && sum);
    char *nl = strchr(csv, '\n');
    *nl = 0;
    const char *cols[] = {"budget_kind", "target_tokens", "layer_target", "tokens_step",
                          "bytes_ratio"};
    for (int k = 0; k < 5; k++) cr_expect(strstr(csv, cols[k]) != NULL, "%s: %s", cols[k], csv);
    cr_expect(strstr(sum, "budget_kind") && strstr(sum, "target_tokens"));
    free(csv), free(sum);
    /* the report: its table of tokens and bytes budgets, and rel_l2 against bytes_ratio */
    const char *dir = t_path("budgets-report");
    st = t_run(&out, &err, "report '%s' -o '%s'", res, dir);
    cr_expect(st == 0 || st == 69, "%s", err); /* 69: no gnuplot here, the .gp stays */
    free(out), free(err);
    char md_path[4200], gp_path[4200];
    snprintf(md_path, sizeof md_path, "%s/report.md", dir);
    snprintf(gp_path, sizeof gp_path, "%s/budgets-bytes.gp", dir);
    char *md = (char *)t_slurp(md_path, &len);
    cr_assert(md, "no report.md");
    cr_expect(strstr(md, "## Decode budgets in tokens and bytes") &&
                  strstr(md, "| snapkv | decode | tokens | T=64 | 4/4 |") &&
                  strstr(md, "| int8 | decode | bytes | B=1/4 | 0/4 |") &&
                  strstr(md, "fixed bytes ratio"),
              "%s", md);
    cr_expect(t_exists(gp_path));
    free(md);
}

Test(run_cli, layer_rules_set_each_layer_target)
{
    const char *w = cli_workload(), *res = t_path("budgets-l.h5");
    char *out, *err;
    int st = t_run(&out, &err, "run '%s' --methods snapkv --kv-budget 100 --bytes-budget 0.8 "
                               "--layer-budget pyramid --decode-queries 32 -o '%s'", w, res);
    cr_assert_eq(st, 0, "%s", err);
    free(out), free(err);
    struct ab_results r;
    ab_results_init(&r);
    cr_assert_eq(ab_results_read_h5(res, &r), AB_OK, "%s", ab_errmsg());
    for (int64_t i = 0; i < r.n_cells; i++) {
        const struct ab_cell *c = &r.cells[i];
        double wl = c->layer == 0 ? 1.5 : 0.5; /* two layers: 1.5, 0.5 */
        if (!strcmp(c->budget_kind, "tokens"))
            cr_expect_float_eq(c->layer_target, 100 * wl, 1e-9);
        else /* 0.8 x 1.5 clipped to 1 */
            cr_expect_float_eq(c->layer_target, fmin(1.0, 0.8 * wl), 1e-9);
        if (c->feasible)
            cr_expect((!strcmp(c->budget_kind, "tokens") ? c->tokens_step : c->bytes_ratio) <=
                          c->layer_target * (1 + 1e-12),
                      "layer %lld", (long long)c->layer);
    }
    ab_results_free(&r);
    /* given weights: normalised; 3 weights for 2 layers refused naming the workload */
    st = t_run(&out, &err, "run '%s' --methods snapkv --kv-budget 100 --layer-budget 1,3 "
                           "--decode-queries 32 -o '%s'", w, res);
    cr_expect_eq(st, 0, "%s", err);
    free(out), free(err);
    const char *res2 = t_path("budgets-l2.h5");
    st = t_run(&out, &err, "run '%s' --methods snapkv --kv-budget 100 --layer-budget 1,2,3 "
                           "--decode-queries 32 -o '%s'", w, res2);
    cr_expect_eq(st, 64, "%s", err);
    cr_expect(strstr(err, "--layer-budget") && strstr(err, "budgets-w.h5") &&
                  strstr(err, "2 layers") && t_count_lines(err) == 1,
              "%s", err);
    cr_expect(!t_exists(res2));
    free(out), free(err);
}

Test(run_cli, bad_budget_values_are_refused_in_one_line)
{
    const char *w = cli_workload(), *res = t_path("budgets-bad.h5");
    const char *bad[] = {"--kv-budget 0",      "--kv-budget -5",       "--kv-budget nan",
                         "--kv-budget 1.5",    "--kv-budget 64,64",    "--bytes-budget 0",
                         "--bytes-budget -0.5", "--bytes-budget nan",  "--bytes-budget 1.5",
                         "--layer-budget steep", "--layer-budget 1,-1", "--layer-budget 1,0",
                         "--phase prefill --kv-budget 64", "--knob C=8 --bytes-budget 0.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out, *err;
        int st = t_run(&out, &err, "run '%s' --methods snapkv %s -o '%s'", w, bad[i], res);
        cr_expect_eq(st, 64, "%s: exit %d: %s", bad[i], st, err);
        cr_expect(t_count_lines(err) == 1 && strstr(err, "error"), "%s: %s", bad[i], err);
        /* the message names the option: the last one of the case but for --knob's */
        const char *opt = strstr(bad[i], "--knob") ? "knob" : strrchr(bad[i], '-') ? NULL : NULL;
        char name[32];
        if (!opt) {
            const char *o = strstr(bad[i], "-budget");
            size_t k = (size_t)(o - bad[i]);
            while (k > 0 && bad[i][k - 1] != '-') k--;
            snprintf(name, sizeof name, "%.*s-budget", (int)(o - bad[i] - (long)k), bad[i] + k);
            opt = name;
        }
        cr_expect(strstr(err, opt) != NULL, "%s: names %s? %s", bad[i], opt, err);
        cr_expect(!t_exists(res), "%s: a results file was written", bad[i]);
        free(out), free(err);
    }
}
