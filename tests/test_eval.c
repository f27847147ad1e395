/* test_eval.c - the engine: the budget solver, the accuracy metrics on hand-built cases, task
 * accuracy, and `attnbench run` end to end (files, CSV, errors). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "eval/eval.h"
#include "gen/gen.h"
#include "helpers.h"
#include "io/results_io.h"
#include "methods_fixtures.h"

Test(solver, analytic_methods_meet_the_budget_or_say_infeasible)
{
    struct fx_layer L;
    fx_layer_make(&L, 4, 2, 1024, 32, 4.0, 21);
    const double targets[] = {0.5, 0.25, 0.125, 1.0 / 16, 1.0 / 32, 1.0 / 200};
    for (int i = 0; i < ab_method_count(); i++) {
        const struct ab_method *m = ab_method_at(i);
        if (!(m->flags & AB_METHOD_ANALYTIC) || !m->knob.name) continue;
        for (int phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE; phase <<= 1) {
            if (!(m->phases & (unsigned)phase)) continue;
            struct ab_problem p = fx_problem(&L, 0, phase == AB_PHASE_DECODE ? 64 : 0);
            for (int t = 0; t < 6; t++) {
                double knob;
                int feasible;
                struct ab_ledger led;
                cr_assert_eq(ab_budget_fit(m, &p, targets[t], &knob, &led, &feasible), AB_OK);
                double r = ab_ledger_ratio(&led, &p);
                /* met = at most the target (however far below); infeasible = the smallest
                 * knob already costs more */
                cr_expect_eq(feasible, !isnan(knob), "%s at %g", m->name, targets[t]);
                if (feasible)
                    cr_expect(r <= targets[t] * (1 + 1e-12), "%s at %g: ratio %g", m->name,
                              targets[t], r);
                else
                    cr_expect(r > targets[t], "%s at %g: infeasible with ratio %g", m->name,
                              targets[t], r);
                if (!isnan(knob)) { /* the next knob up would cost more than the target */
                    struct ab_ledger up;
                    double lo, hi;
                    ab_method_knob_range(m, &p, &lo, &hi);
                    if (knob + 1 <= hi) {
                        cr_assert_eq(ab_method_cost(m, &p, knob + 1, &up), AB_OK);
                        cr_expect(ab_ledger_ratio(&up, &p) > targets[t], "%s: knob %g is not the largest", m->name, knob);
                    }
                }
            }
        }
    }
    /* window on a 1024-token prefill: w = 1 costs 1/512.5 of dense: 1/1000 is out of reach */
    struct ab_problem p = fx_problem(&L, 0, 0);
    double knob;
    int feasible;
    struct ab_ledger led;
    cr_assert_eq(ab_budget_fit(ab_method_find("window"), &p, 1e-3, &knob, &led, &feasible), AB_OK);
    cr_expect(isnan(knob) && !feasible);
    /* dense has no knob: feasible only at ratio 1 */
    cr_assert_eq(ab_budget_fit(ab_method_find("dense"), &p, 0.5, &knob, &led, &feasible), AB_OK);
    cr_expect(!feasible);
    cr_assert_eq(ab_budget_fit(ab_method_find("dense"), &p, 1.0, &knob, &led, &feasible), AB_OK);
    cr_expect(feasible && fabs(ab_ledger_ratio(&led, &p) - 1) < 1e-12);
    fx_layer_free(&L);
}

Test(metrics, hand_built_rows)
{
    /* two rows over four keys, d_v = 2 */
    double o_exact[4] = {1, 0, 0, 2};
    float a[8] = {0.5f, 0.3f, 0.2f, 0, 0.1f, 0.1f, 0.1f, 0.7f};
    struct ab_exact ex = {.n_rows = 2, .n_k = 4, .d_v = 2, .o = o_exact, .a = a};
    float o[4] = {1, 0, 0, 1};
    struct ab_keep keep;
    cr_assert_eq(ab_keep_alloc(&keep, 2, 4), AB_OK);
    ab_keep_set(&keep, 0, 0), ab_keep_set(&keep, 0, 1); /* row 0 keeps 0.8 of its mass */
    ab_keep_set(&keep, 1, 3);                            /* row 1 keeps 0.7 */
    struct ab_metrics mt;
    ab_metrics_compute(&ex, o, &keep, 1, &mt);
    cr_expect(fabs(mt.rel_l2 - 1 / sqrt(5.0)) < 1e-12, "%g", mt.rel_l2);
    cr_expect(fabs(mt.cos_mean - 1) < 1e-12 && fabs(mt.cos_min - 1) < 1e-12);
    cr_expect(fabs(mt.max_abs - 1) < 1e-12);
    cr_expect(fabs(mt.recall - 0.75) < 1e-6, "%g", mt.recall);
    cr_expect(fabs(mt.topk_recall - 1) < 1e-12); /* both rows keep their top-1 key */
    cr_expect(fabs(mt.kl - 0.5 * (-log(0.8) - log(0.7))) < 1e-6, "%g", mt.kl);
    ab_keep_clear(&keep);
    ab_keep_set(&keep, 0, 2), ab_keep_set(&keep, 1, 0);
    ab_metrics_compute(&ex, o, &keep, 1, &mt);
    cr_expect(fabs(mt.topk_recall) < 1e-12 && fabs(mt.recall - 0.15) < 1e-6);
    ab_metrics_compute(&ex, o, NULL, 1, &mt);
    cr_expect(isnan(mt.recall) && isnan(mt.kl) && isnan(mt.topk_recall));
    ab_keep_free(&keep);
}

/* One rel_l2 (metrics.md): ||O~ - O|| / ||O||; a vanishing reference gives 0 for an exact
 * output and +inf otherwise (it gave the absolute error in run and +inf in verify). */
Test(metrics, rel_l2_with_a_vanishing_reference)
{
    cr_expect_eq(ab_rel_l2(0, 0), 0);
    cr_expect(isinf(ab_rel_l2(1e-12, 0)));
    cr_expect(isnan(ab_rel_l2(NAN, 1)) && isnan(ab_rel_l2(1, NAN)));
    cr_expect(fabs(ab_rel_l2(1, 4) - 0.5) < 1e-15);
    double zero[4] = {0, 0, 0, 0};
    float a[8] = {0.5f, 0.5f, 0, 0, 0.25f, 0.25f, 0.25f, 0.25f};
    struct ab_exact ex = {.n_rows = 2, .n_k = 4, .d_v = 2, .o = zero, .a = a};
    float exact[4] = {0, 0, 0, 0}, off[4] = {0, 0.001f, 0, 0};
    struct ab_metrics mt;
    ab_metrics_compute(&ex, exact, NULL, 1, &mt);
    cr_expect_eq(mt.rel_l2, 0);
    ab_metrics_compute(&ex, off, NULL, 1, &mt);
    cr_expect(isinf(mt.rel_l2), "rel_l2 %g against a zero reference", mt.rel_l2);
}

Test(metrics, task_accuracy_on_a_hand_built_workload)
{
    struct ab_workload w;
    cr_assert_eq(ab_workload_alloc(&w, 1, 2, 1, 10, 2, 2), AB_OK);
    cr_assert_eq(ab_tasks_alloc(&w.tasks, 2, 3, 2, 2, 1, 1), AB_OK);
    w.tasks.planted[0] = 1;
    float code[4] = {1, 0, 0, 1};
    memcpy(w.tasks.codebook, code, sizeof code);
    w.tasks.kind[0] = AB_TASK_RETRIEVE, w.tasks.row[0] = 8, w.tasks.answer[0] = 1;
    w.tasks.key_off[0] = 0, w.tasks.key_pos[0] = 3;
    w.tasks.kind[1] = AB_TASK_AGGREGATE, w.tasks.row[1] = 9, w.tasks.answer[1] = -1;
    w.tasks.key_off[1] = 1, w.tasks.key_pos[1] = 4, w.tasks.key_pos[2] = 5, w.tasks.key_off[2] = 3;
    float *v = ab_workload_v(&w, 0, 0);
    v[4 * 2] = 1, v[4 * 2 + 1] = 0, v[5 * 2] = 0, v[5 * 2 + 1] = 1; /* target (0.5, 0.5) */
    int64_t rows[2] = {8, 9};
    float good[4] = {0.1f, 0.9f, 1, 1.1f}, bad[4] = {0.9f, 0.1f, 1, -1};
    struct ab_task_acc ta;
    ab_task_accuracy(&w, 0, 1, rows, 2, good, &ta);
    cr_expect(ta.n == 2 && ta.all == 1 && ta.by_kind[AB_TASK_RETRIEVE] == 1 && ta.by_kind[AB_TASK_AGGREGATE] == 1);
    cr_expect(isnan(ta.by_kind[AB_TASK_MULTI_RETRIEVE]));
    ab_task_accuracy(&w, 0, 1, rows, 2, bad, &ta);
    cr_expect(ta.all == 0, "%g", ta.all);
    ab_task_accuracy(&w, 0, 1, rows, 1, good, &ta); /* row 9 not evaluated */
    cr_expect(ta.n == 1 && isnan(ta.by_kind[AB_TASK_AGGREGATE]));
    w.tasks.planted[0] = 0;
    ab_task_accuracy(&w, 0, 1, rows, 2, good, &ta);
    cr_expect(ta.n == 0 && isnan(ta.all));
    ab_workload_free(&w);
}

/* A small generated workload with retrieve tasks. */
static void small_workload(struct ab_workload *w, const char *profile, int64_t n, unsigned tasks)
{
    struct ab_gen_opts g;
    ab_gen_defaults(&g);
    g.n_layer = 2, g.n_head = 4, g.n_kv_head = 2, g.n_seq = n, g.d = 32, g.d_v = 32;
    g.profile = profile;
    g.tasks = tasks;
    g.n_tasks = 4;
    g.task_rows = 32;
    cr_assert_eq(ab_gen_workload(&g, w), AB_OK, "%s", ab_errmsg());
}

Test(sweep, cells_in_fixed_order_with_exact_dense_and_thread_independent)
{
    struct ab_workload w;
    small_workload(&w, "streaming", 384, 0);
    const struct ab_method *ms[] = {ab_method_find("dense"), ab_method_find("window"),
                                    ab_method_find("streaming")};
    struct ab_sweep_opts o;
    ab_sweep_defaults(&o);
    o.methods = ms, o.n_methods = 3, o.decode_m = 32, o.max_rows = 100;
    int64_t expect = 2 * 4 * 2 * (1 + 5 + 5);
    cr_expect_eq(ab_sweep_count(&w, &o), expect);
    struct ab_results r1, r2;
    ab_results_init(&r1), ab_results_init(&r2);
    ab_threads_set(2);
    cr_assert_eq(ab_sweep_workload(&w, "w.h5", &o, &r1), AB_OK, "%s", ab_errmsg());
    ab_threads_set(1);
    cr_assert_eq(ab_sweep_workload(&w, "w.h5", &o, &r2), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(r1.n_cells, expect);
    cr_assert_eq(r2.n_cells, expect);
    for (int64_t c = 0; c < expect; c++) {
        const struct ab_cell *a = &r1.cells[c], *b = &r2.cells[c];
        cr_assert_str_eq(a->method, b->method);
        cr_assert(a->layer == b->layer && a->head == b->head && !strcmp(a->phase, b->phase));
        cr_expect(a->flop_ratio == b->flop_ratio && (a->rel_l2 == b->rel_l2 || (isnan(a->rel_l2) && isnan(b->rel_l2))),
                  "cell %ld differs between 1 and 2 threads", (long)c);
        if (!strcmp(a->method, "dense")) {
            cr_expect(a->rel_l2 < 1e-5 && a->recall > 1 - 1e-6 && a->flop_ratio == 1 && a->feasible);
            cr_expect_eq(a->n_eval_rows, strcmp(a->phase, "decode") ? 100 : 32);
        }
        if (a->feasible && !isnan(a->target_ratio))
            cr_expect(a->flop_ratio <= a->target_ratio * (1 + 1e-12) && a->flop_ratio >= 0.95 * a->target_ratio);
        cr_expect(fabs(a->density + a->sparsity - 1) < 1e-12 || isnan(a->density));
    }
    /* cells come in (layer, head, phase, method, target) order */
    cr_expect_str_eq(r1.cells[0].method, "dense");
    cr_expect_str_eq(r1.cells[0].phase, "prefill");
    cr_expect_eq(r1.cells[expect - 1].layer, 1);
    cr_expect_eq(r1.cells[expect - 1].head, 3);
    cr_expect_str_eq(r1.cells[expect - 1].phase, "decode");
    /* on streaming heads, streaming beats window at 1/8 in decode (the sink matters) */
    double win = 0, str = 0;
    for (int64_t c = 0; c < expect; c++) {
        const struct ab_cell *a = &r1.cells[c];
        if (strcmp(a->phase, "decode") || a->target_ratio != 0.125) continue;
        if (!strcmp(a->method, "window")) win += a->rel_l2;
        if (!strcmp(a->method, "streaming")) str += a->rel_l2;
    }
    cr_expect(str < 0.5 * win, "streaming %g vs window %g", str, win);
    ab_results_free(&r1), ab_results_free(&r2);
    ab_workload_free(&w);
}

/* A workload file made by the CLI, shared by the run tests. */
static const char *cli_workload(void)
{
    static char path[1024];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s", t_path("run-w.h5"));
        char *out, *err;
        int st = t_run(&out, &err, "gen --profile streaming --layers 1 --heads 2 --kv-heads 1 --n 256 --d 32 "
                                   "--tasks retrieve --task-rows 16 -o '%s'", path);
        cr_assert_eq(st, 0, "%s", err);
        free(out), free(err);
    }
    return path;
}

/* Off a terminal (stderr is a file here) progress is plain lines over all workloads together,
 * percentages never going back (a job this short prints its 100% line only); stdout names the
 * results file on one line, and --quiet prints that path alone. */
Test(run_cli, progress_lines_over_every_workload_and_one_output_line)
{
    const char *w = cli_workload(), *w2 = t_path("run-w2.h5"), *res = t_path("runp.h5");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "gen --profile retrieval --layers 1 --heads 2 --kv-heads 1 "
                                   "--n 256 --d 32 -o '%s'", w2), 0, "%s", err);
    free(out), free(err);
    int st = t_run(&out, &err, "run '%s' '%s' --methods dense,window --budgets 0.5,0.25 "
                               "--decode-queries 16 --threads 2 -o '%s'", w, w2, res);
    cr_assert_eq(st, 0, "%s", err);
    /* 2 workloads x 2 heads x 2 phases x (dense + 2 budgets) */
    cr_expect(strstr(err, "run: 100% (24/24 cells), ") != NULL, "%s", err);
    cr_expect(strchr(err, '\r') == NULL, "%s", err);
    int last = -1, n = 0;
    for (const char *q = err; (q = strstr(q, "run: ")); q++) {
        int pct = -1;
        cr_expect(sscanf(q, "run: %d%%", &pct) == 1 && pct >= last, "%s", err);
        last = pct, n++;
    }
    cr_expect(n >= 1 && last == 100, "%d lines: %s", n, err);
    char want[3000];
    const char *base = strrchr(res, '/') + 1;
    int stem = (int)strlen(base) - 3; /* without .h5 */
    snprintf(want, sizeof want, "\nrun: %s (24 cells; %.*s.csv and %.*s-summary.csv beside it)\n",
             res, stem, base, stem, base);
    cr_expect(strstr(out, want) != NULL, "%s", out);
    free(out), free(err);
    st = t_run(&out, &err, "run '%s' --methods dense --decode-queries 16 --quiet -o '%s'", w, res);
    cr_assert_eq(st, 0, "%s", err);
    snprintf(want, sizeof want, "%s\n", res);
    cr_expect_str_eq(out, want);
    cr_expect_str_eq(err, "");
    free(out), free(err);
}

Test(run_cli, writes_results_and_csv_that_agree)
{
    const char *w = cli_workload(), *res = t_path("run.h5"), *csv = t_path("run.csv"),
               *sum = t_path("run-summary.csv");
    char *out, *err;
    int st = t_run(&out, &err, "run '%s' --methods dense,window,streaming --budgets 0.5,0.25 "
                               "--decode-queries 16 --threads 2 -o '%s'", w, res);
    cr_assert_eq(st, 0, "%s", err);
    cr_expect(strstr(out, res) && strstr(out, "window"), "%s", out);
    cr_assert(t_exists(res) && t_exists(csv) && t_exists(sum));
    struct ab_results r;
    ab_results_init(&r);
    cr_assert_eq(ab_results_read_h5(res, &r), AB_OK, "%s", ab_errmsg());
    int64_t expect = 2 * 2 * (1 + 2 + 2); /* heads x phases x (dense + 2 budgets x 2 methods) */
    cr_expect_eq(r.n_cells, expect);
    size_t len;
    char *text = (char *)t_slurp(csv, &len);
    cr_expect_eq(t_count_lines(text), expect + 1);
    cr_expect(strncmp(text, "workload,n,layer,head,kv_head,method,", 37) == 0, "%.60s", text);
    cr_expect_eq(r.n_workloads, 1);
    char hex[65];
    cr_assert_eq(ab_results_sha256_file(w, hex), AB_OK);
    cr_expect_str_eq(r.workload_sha256[0], hex);
    cr_expect(r.n_summary == 2 * (1 + 2 + 2), "%ld summary rows", (long)r.n_summary);
    free(text), free(out), free(err);
    ab_results_free(&r);
    /* a direct knob run */
    st = t_run(&out, &err, "run '%s' --methods window,streaming --knob w=32 --phase decode "
                           "--decode-queries 16 -o '%s'", w, res);
    cr_assert_eq(st, 0, "%s", err);
    ab_results_init(&r);
    cr_assert_eq(ab_results_read_h5(res, &r), AB_OK);
    cr_expect_eq(r.n_cells, 2 * 2);
    cr_expect(r.cells[0].knob == 32 && isnan(r.cells[0].target_ratio));
    ab_results_free(&r);
    free(out), free(err);
}

Test(run_cli, bad_requests_fail_cleanly_and_write_nothing)
{
    const char *w = cli_workload(), *res = t_path("bad.h5"), *csv = t_path("bad.csv");
    struct {
        const char *args;
        int status;
        const char *says;
    } cases[] = {
        {"--methods dense,nope", 64, "unknown method 'nope'"},
        {"--budgets 0.5,1.5", 64, "option '--budgets' wants a number in (0, 1], got '1.5'"},
        {"--budgets 0", 64, "wants a number in (0, 1], got '0'"},
        {"--phase sideways", 64, "--phase"},
        {"--methods window --knob k=3", 64, "does not apply"},
        {"--decode-queries 999", 64, "below its length"},
        {"--decode-horizon 0", 64, "option '--decode-horizon' wants an integer in [1, "},
        {"--decode-queries 16 --decode-horizon 8", 64, "--decode-horizon 8 is below"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        int st = t_run(&out, &err, "run '%s' %s -o '%s'", w, cases[i].args, res);
        cr_expect_eq(st, cases[i].status, "%s: exit %d (%s)", cases[i].args, st, err);
        cr_expect(strstr(err, cases[i].says) != NULL, "%s: %s", cases[i].args, err);
        cr_expect_eq(t_count_lines(err), 1, "%s: %s", cases[i].args, err);
        cr_expect(!t_exists(res) && !t_exists(csv), "%s left output", cases[i].args);
        free(out), free(err);
    }
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "run /no/such/file.h5 -o '%s'", res), 66);
    cr_expect(!t_exists(res));
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "run '%s' -o /no/such/dir/r.h5 --methods dense", w), 73, "%s", err);
    free(out), free(err);
}

Test(run_cli, methods_lists_the_registry)
{
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "methods"), 0);
    for (int i = 0; i < ab_method_count(); i++)
        cr_expect(strstr(out, ab_method_at(i)->name) != NULL, "%s missing", ab_method_at(i)->name);
    free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "methods streaming"), 0);
    cr_expect(strstr(out, "2309.17453") && strstr(out, "family     static"), "%s", out);
    cr_expect(strstr(out, "decode     ") && strstr(out, "no one-off work"), "%s", out);
    free(out), free(err);
    /* snapkv's window logits, 2 W n_ctx d = 2 x 64 x 4032 x 64 FLOPs, are its one-off work: 0.031
     * of dense decode over the default horizon */
    cr_assert_eq(t_run(&out, &err, "methods snapkv"), 0);
    cr_expect(strstr(out, "one-off 3.3e+07 FLOPs") && strstr(out, "0.031 over the default horizon"),
              "%s", out);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "methods nope"), 64);
    free(out), free(err);
}

Test(sweep, one_budget_is_a_budget_and_task_kinds_are_recorded)
{
    struct ab_workload w;
    small_workload(&w, "retrieval", 256, 1u << AB_TASK_RETRIEVE);
    const struct ab_method *ms[] = {ab_method_find("dense"), ab_method_find("streaming")};
    const double one[] = {0.25};
    struct ab_sweep_opts o;
    ab_sweep_defaults(&o);
    o.methods = ms, o.n_methods = 2, o.targets = one, o.n_targets = 1, o.decode_m = 32;
    struct ab_results r;
    ab_results_init(&r);
    cr_assert_eq(ab_sweep_workload(&w, "w.h5", &o, &r), AB_OK, "%s", ab_errmsg());
    for (int64_t c = 0; c < r.n_cells; c++) {
        const struct ab_cell *a = &r.cells[c];
        if (!strcmp(a->method, "streaming")) {
            cr_expect_eq(a->target_ratio, 0.25);
            cr_expect(a->flop_ratio <= 0.25 * (1 + 1e-12), "ratio %g", a->flop_ratio);
        } else {
            cr_expect_eq(a->target_ratio, 1.0);
        }
        cr_expect_str_eq(a->task_kind, "retrieve", "cell %ld", (long)c);
    }
    ab_results_free(&r);
    ab_workload_free(&w);
}

/* A model-level method (AB_METHOD_MODEL): pyramidkv's knob is fitted on the whole workload's
 * cost, not per head. The workload ratio meets the target within the tolerance, every cell
 * carries the workload's feasibility, capacities (and so per-head ratios) fall with depth, and
 * on one layer it is snapkv exactly. */
Test(sweep, model_level_budget_is_fitted_on_the_whole_workload)
{
    struct ab_workload w;
    struct ab_gen_opts g;
    ab_gen_defaults(&g);
    g.n_layer = 4, g.n_head = 4, g.n_kv_head = 2, g.n_seq = 1024, g.d = 32, g.d_v = 32;
    g.profile = "retrieval";
    cr_assert_eq(ab_gen_workload(&g, &w), AB_OK, "%s", ab_errmsg());
    const struct ab_method *ms[] = {ab_method_find("pyramidkv"), ab_method_find("snapkv")};
    cr_assert(ms[0] && ms[1]);
    double targets[] = {0.75};
    struct ab_sweep_opts o;
    ab_sweep_defaults(&o);
    o.methods = ms, o.n_methods = 2, o.phases = AB_PHASE_DECODE, o.decode_m = 512;
    o.targets = targets, o.n_targets = 1;
    struct ab_results r;
    ab_results_init(&r);
    cr_assert_eq(ab_sweep_workload(&w, "w.h5", &o, &r), AB_OK, "%s", ab_errmsg());
    double fl[2] = {0, 0}, dense[2] = {0, 0}, layer_ratio[4] = {0};
    for (int64_t c = 0; c < r.n_cells; c++) {
        const struct ab_cell *x = &r.cells[c];
        int k = strcmp(x->method, "pyramidkv") != 0;
        /* the amortised cost: one-off work spread over the default horizon */
        double cost = x->flops_attend + x->flops_select +
                      x->flops_once * (double)o.decode_m / (double)AB_DECODE_HORIZON;
        fl[k] += cost;
        dense[k] += cost / x->flop_ratio;
        cr_expect_eq(x->feasible, 1, "%s L%lld H%lld", x->method, (long long)x->layer, (long long)x->head);
        if (!k) layer_ratio[x->layer] += x->flop_ratio / 4;
    }
    for (int k = 0; k < 2; k++)
        cr_expect(fl[k] / dense[k] <= 0.75 + 1e-9 && fl[k] / dense[k] >= 0.75 * 0.95,
                  "%s workload ratio %g", ms[k]->name, fl[k] / dense[k]);
    for (int l = 1; l < 4; l++)
        cr_expect(layer_ratio[l] < layer_ratio[l - 1], "layer %d ratio %g not below layer %d's %g",
                  l, layer_ratio[l], l - 1, layer_ratio[l - 1]);
    cr_expect(layer_ratio[0] > 0.75 && layer_ratio[3] < 0.75);
    ab_results_free(&r);

    /* one layer: pyramidkv is snapkv */
    struct ab_workload w1;
    g.n_layer = 1;
    cr_assert_eq(ab_gen_workload(&g, &w1), AB_OK, "%s", ab_errmsg());
    ab_results_init(&r);
    cr_assert_eq(ab_sweep_workload(&w1, "w1.h5", &o, &r), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(r.n_cells, 8);
    for (int64_t c = 0; c < 4; c++) {
        const struct ab_cell *a = &r.cells[2 * c], *b = &r.cells[2 * c + 1];
        cr_expect_str_eq(a->method, "pyramidkv");
        cr_expect_eq(a->flop_ratio, b->flop_ratio);
        cr_expect_eq(a->rel_l2, b->rel_l2);
    }
    ab_results_free(&r);
    ab_workload_free(&w1);
    ab_workload_free(&w);
}

/* ---- accounting (issue 12): one-off decode work, budgets, infeasible cells, summary ---- */

Test(accounting, one_off_decode_work_is_amortised_over_the_horizon)
{
    struct fx_layer L;
    fx_layer_make(&L, 2, 1, 2048, 64, 4.0, 5);
    struct ab_problem p = fx_problem(&L, 0, 64); /* decode, m = 64 */
    const struct ab_method *snap = ab_method_find("snapkv");
    struct ab_ledger led;
    cr_assert_eq(ab_method_cost(snap, &p, 256, &led), AB_OK);
    double dense = ab_problem_dense_flops(&p), m = 64;
    /* the observation window's logits, 2 W n_ctx d, are one-off: none per step */
    cr_expect_eq(led.flops_once, 2.0 * 64 * (2048 - 64) * 64);
    cr_expect_eq(led.flops_select, 0);
    cr_expect_float_eq(ab_ledger_ratio_step(&led, &p), led.flops_attend / dense, 1e-12);
    const int64_t horizons[] = {64, 256, 1024, 100000};
    for (int i = 0; i < 4; i++) {
        p.horizon = horizons[i];
        double want = (led.flops_attend + led.flops_once * m / (double)horizons[i]) / dense;
        cr_expect_float_eq(ab_ledger_ratio(&led, &p), want, 1e-12, "G = %lld",
                           (long long)horizons[i]);
    }
    p.horizon = 0; /* unset: the default horizon */
    cr_expect_float_eq(ab_ledger_ratio(&led, &p),
                       (led.flops_attend + led.flops_once * m / AB_DECODE_HORIZON) / dense, 1e-12);
    /* G = m is the old rule (spread over the evaluated queries only): the window alone is half
     * of dense decode, so 1/16 is out of reach and the reason says so; the default G fits it */
    double knob;
    int feasible;
    p.horizon = 64;
    cr_assert_eq(ab_budget_fit(snap, &p, 1.0 / 16, &knob, &led, &feasible), AB_OK);
    cr_expect(!feasible && isnan(knob));
    char why[96];
    ab_budget_reason(snap, &p, 1.0 / 16, &led, why, sizeof why);
    cr_expect(strstr(why, "one-off selection alone 0.49") && strstr(why, "G = 64"), "%s", why);
    p.horizon = 0;
    cr_assert_eq(ab_budget_fit(snap, &p, 1.0 / 16, &knob, &led, &feasible), AB_OK);
    cr_expect(feasible && knob >= 1 && ab_ledger_ratio(&led, &p) <= 1.0 / 16, "knob %g", knob);
    /* prefill has no horizon: one-off work counts in full */
    struct ab_problem pre = fx_problem(&L, 0, 0);
    struct ab_ledger x = {.flops_attend = 10, .flops_select = 5, .flops_once = 20};
    cr_expect_float_eq(ab_ledger_ratio(&x, &pre), 35 / ab_problem_dense_flops(&pre), 1e-12);
    fx_layer_free(&L);
}

Test(accounting, infeasible_cells_carry_no_metrics_and_say_why)
{
    struct ab_workload w;
    small_workload(&w, "retrieval", 512, 1u << AB_TASK_RETRIEVE);
    const struct ab_method *ms[] = {ab_method_find("window"), ab_method_find("block-topk"),
                                    ab_method_find("snapkv"), ab_method_find("quest"),
                                    ab_method_find("linear-elu")};
    double targets[] = {0.5, 0.3, 1.0 / 64};
    struct ab_sweep_opts o;
    ab_sweep_defaults(&o);
    o.methods = ms, o.n_methods = 5, o.targets = targets, o.n_targets = 3, o.decode_m = 32;
    struct ab_results r;
    ab_results_init(&r);
    cr_assert_eq(ab_sweep_workload(&w, "w.h5", &o, &r), AB_OK, "%s", ab_errmsg());
    int64_t n_feasible = 0, n_infeasible = 0;
    for (int64_t c = 0; c < r.n_cells; c++) {
        const struct ab_cell *x = &r.cells[c];
        cr_expect_eq(x->n, 512);
        if (x->feasible) {
            n_feasible++;
            /* met = at most the target, however far below */
            cr_expect(x->flop_ratio <= x->target_ratio * (1 + 1e-12), "%s %s %g: %g", x->method,
                      x->phase, x->target_ratio, x->flop_ratio);
            cr_expect(isfinite(x->rel_l2) && isfinite(x->cos_mean), "%s", x->method);
            cr_expect_str_empty(x->reason);
        } else {
            n_infeasible++;
            cr_expect(x->flop_ratio > x->target_ratio, "%s %s %g", x->method, x->phase,
                      x->target_ratio);
            const double m[] = {x->rel_l2, x->cos_mean, x->cos_min, x->max_abs, x->recall,
                                x->topk_recall, x->kl, x->task_acc, x->task_acc_retrieve};
            for (int k = 0; k < 9; k++)
                cr_expect(isnan(m[k]), "%s %s %g: metric %d = %g on an infeasible cell",
                          x->method, x->phase, x->target_ratio, k, m[k]);
            cr_expect(x->reason && x->reason[0], "%s: no reason", x->method);
        }
    }
    cr_expect(n_feasible > 0 && n_infeasible > 0, "%lld / %lld", (long long)n_feasible,
              (long long)n_infeasible);
    /* the summary names a reason exactly where some head of the group is infeasible */
    cr_assert_eq(ab_results_summarise(&r), AB_OK);
    for (int64_t i = 0; i < r.n_summary; i++) {
        const struct ab_summary_row *x = &r.summary[i];
        cr_expect_eq(x->reason[0] != 0, x->n_heads < x->n_cells, "%s %s %g: '%s' %lld of %lld",
                     x->method, x->phase, x->target_ratio, x->reason, (long long)x->n_heads,
                     (long long)x->n_cells);
    }
    /* window at 1/64 of a 512-token prefill: w = 1 costs 2/513 of dense, it fits; block-topk's
     * three forced blocks of 64 do not, and it says so */
    for (int64_t c = 0; c < r.n_cells; c++) {
        const struct ab_cell *x = &r.cells[c];
        if (!strcmp(x->method, "block-topk") && x->target_ratio == 1.0 / 64)
            cr_expect(!x->feasible && strstr(x->reason, "smallest knob (k = 1)"), "%s", x->reason);
        if (!strcmp(x->method, "window") && !strcmp(x->phase, "prefill"))
            cr_expect(x->feasible, "window %g", x->target_ratio);
    }
    ab_results_free(&r);
    ab_workload_free(&w);
}

Test(accounting, summary_is_per_workload_with_its_length)
{
    struct ab_workload a, b;
    small_workload(&a, "streaming", 256, 0);
    small_workload(&b, "streaming", 512, 0);
    const struct ab_method *ms[] = {ab_method_find("window")};
    double targets[] = {0.25};
    struct ab_sweep_opts o;
    ab_sweep_defaults(&o);
    o.methods = ms, o.n_methods = 1, o.targets = targets, o.n_targets = 1,
    o.phases = AB_PHASE_PREFILL;
    struct ab_results r;
    ab_results_init(&r);
    cr_assert_eq(ab_sweep_workload(&a, "a.h5", &o, &r), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_sweep_workload(&b, "b.h5", &o, &r), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_results_summarise(&r), AB_OK);
    cr_assert_eq(r.n_summary, 2); /* one per workload: lengths are never averaged together */
    for (int i = 0; i < 2; i++) {
        const struct ab_summary_row *s = &r.summary[i];
        cr_expect_str_eq(s->workload, i ? "b.h5" : "a.h5");
        cr_expect_eq(s->n, i ? 512 : 256);
        cr_expect_eq(s->n_cells, 8);
        cr_expect_eq(s->n_heads, 8);
        double sum = 0;
        for (int64_t c = 0; c < r.n_cells; c++)
            if (!strcmp(r.cells[c].workload, s->workload)) sum += r.cells[c].rel_l2;
        cr_expect_float_eq(s->rel_l2_mean, sum / 8, 1e-12);
    }
    ab_results_free(&r);
    ab_workload_free(&a), ab_workload_free(&b);
}

/* `run --json`: one JSON document on stdout that parses, with the cell count of the results
 * file, a best row per (phase, budget) and the options as recorded in the file; the human
 * answer is not printed. An unknown option gets a did-you-mean. */
Test(run_cli, json_answer_and_did_you_mean)
{
    const char *w = cli_workload(), *res = t_path("json.h5");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "run '%s' --methods dense,streaming,quest --budgets 0.5,0.25 "
                       "--json -o '%s'", w, res), 0, "%s", err);
    json_error_t je;
    json_t *doc = json_loads(out, 0, &je);
    cr_assert_not_null(doc, "not JSON (%s): %s", je.text, out);
    cr_expect_str_eq(json_string_value(json_object_get(doc, "schema")), "attnbench/run/1");
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(res, &r), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(json_integer_value(json_object_get(doc, "cells")), r.n_cells);
    json_t *best = json_object_get(doc, "best");
    cr_expect_eq(json_array_size(best), 4, "2 phases x 2 budgets");
    for (size_t i = 0; i < json_array_size(best); i++) {
        json_t *b = json_array_get(best, i);
        const char *m = json_string_value(json_object_get(b, "method"));
        cr_expect(m && (!strcmp(m, "dense") || !strcmp(m, "streaming") || !strcmp(m, "quest")),
                  "best %s", m ? m : "(null)");
        cr_expect(json_real_value(json_object_get(b, "rel_l2")) >= 0);
    }
    json_t *opts = json_object_get(doc, "options");
    cr_expect_eq(json_array_size(json_object_get(opts, "budgets")), 2);
    cr_expect_eq(json_integer_value(json_object_get(opts, "rows")), 256, "the default recorded");
    cr_expect(r.options && strstr(r.options, "\"methods\": [\"dense\", \"streaming\", \"quest\"]"),
              "%s", r.options ? r.options : "(none)");
    cr_expect(!strstr(out, "best per phase"), "no human text on stdout with --json");
    ab_results_free(&r);
    json_decref(doc);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "run '%s' --budget 0.5 -o '%s'", w, res), 64);
    cr_expect(strstr(err, "unknown option '--budget' (did you mean '--budgets'?)"), "%s", err);
    free(out), free(err);
}
