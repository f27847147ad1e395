/* test_e2e.c - methods inside a real model's forward pass (lib/eval/e2e.c, `attnbench
 * eval-model`, issue 6) on ../shared/models/stories260K:
 * - dense put in every head equals the model's own attention, and so does `window` with w >= n
 *   (a window that covers everything is exact attention);
 * - replacing no head is the dense pass bit for bit; scoring follows its definition on a
 *   hand-checked case (decode scores only the last m rows);
 * - the copy task: the trained model copies (dense copy accuracy high), a uniform head
 *   everywhere destroys it, and replacing the heads ranked highest by induction score hurts it
 *   more than as many random heads (the retrieval-heads ablation of issue 5);
 * - the /model table of the results file reads back; the CLI's errors are one line with the
 *   right exit status and leave no file. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "eval/e2e.h"
#include "helpers.h"
#include "io/results_io.h"
#include "model/input.h"
#include "model/model.h"

static char model_path[4096], tok_path[4096];

static void load(struct ab_model *m)
{
    const char *sh = getenv("AB_SHARED");
    cr_assert(sh, "AB_SHARED is not set");
    snprintf(model_path, sizeof model_path, "%s/models/stories260K/stories260K.bin", sh);
    snprintf(tok_path, sizeof tok_path, "%s/models/stories260K/tok512.bin", sh);
    cr_assert_eq(ab_model_load(model_path, m), AB_OK, "%s", ab_errmsg());
}

static struct ab_e2e_result eval(const struct ab_model *m, const struct ab_model_input *in,
                                 const char *method, double target, int has_knob, double knob,
                                 int phase, const int8_t *replace)
{
    struct ab_e2e_opts o = {.method = method ? ab_method_find(method) : NULL,
                            .target = target,
                            .apply = {.has_knob = has_knob, .knob = knob, .tol = 0.05},
                            .phase = phase,
                            .decode_m = 32,
                            .replace = replace,
                            .seed = 1};
    if (method) cr_assert(o.method, "no method %s", method);
    struct ab_e2e_result r;
    cr_assert_eq(ab_e2e_eval(m, in->ids, in->n, in->copy_from, &o, &r), AB_OK, "%s: %s",
                 method ? method : "dense", ab_errmsg());
    return r;
}

Test(e2e, dense_and_a_covering_window_equal_the_models_own_attention)
{
    struct ab_model m;
    load(&m);
    struct ab_model_input in;
    cr_assert_eq(ab_model_input_copy(&m, 100, 3, &in), AB_OK);
    struct ab_e2e_result base = eval(&m, &in, NULL, NAN, 0, 0, AB_PHASE_PREFILL, NULL);
    cr_expect_eq(base.n_scored, in.n - 1);
    cr_expect(base.nll > 0 && isfinite(base.nll));
    struct ab_e2e_result dense = eval(&m, &in, "dense", 1.0, 0, 0, AB_PHASE_PREFILL, NULL);
    cr_expect_eq(dense.n_replaced, m.c.n_layer * m.c.n_head);
    cr_expect_eq(dense.n_feasible, dense.n_replaced);
    cr_expect(fabs(dense.nll - base.nll) <= 1e-6 * base.nll, "dense %.9f vs model %.9f",
              dense.nll, base.nll);
    cr_expect_eq(dense.acc, base.acc);
    cr_expect(fabs(dense.flops_method / dense.flops_dense - 1) < 1e-12);
    cr_expect(dense.rel_l2 < 1e-5, "rel_l2 %g", dense.rel_l2);
    struct ab_e2e_result win =
        eval(&m, &in, "window", NAN, 1, (double)in.n, AB_PHASE_PREFILL, NULL);
    cr_expect(fabs(win.nll - base.nll) <= 1e-5 * base.nll, "window %.9f vs model %.9f", win.nll,
              base.nll);
    cr_expect_eq(win.acc, base.acc);
    /* decode: the prefix is exact, the method serves the last 32 rows and only they count */
    struct ab_e2e_result dd = eval(&m, &in, "window", NAN, 1, (double)in.n, AB_PHASE_DECODE, NULL);
    struct ab_e2e_result bd = eval(&m, &in, NULL, NAN, 0, 0, AB_PHASE_DECODE, NULL);
    cr_expect_eq(dd.n_scored, 31);
    cr_expect(fabs(dd.nll - bd.nll) <= 1e-5 * bd.nll);
    ab_model_input_free(&in);
    ab_model_free(&m);
}

Test(e2e, replacing_no_head_is_the_dense_pass_and_a_tight_window_costs_accuracy)
{
    struct ab_model m;
    load(&m);
    struct ab_model_input in;
    cr_assert_eq(ab_model_input_copy(&m, 120, 5, &in), AB_OK);
    int8_t *none = calloc((size_t)(m.c.n_layer * m.c.n_head), 1);
    struct ab_e2e_result base = eval(&m, &in, NULL, NAN, 0, 0, AB_PHASE_PREFILL, NULL);
    struct ab_e2e_result r0 = eval(&m, &in, "window", NAN, 1, 4, AB_PHASE_PREFILL, none);
    cr_expect_eq(r0.n_replaced, 0);
    cr_expect_eq(r0.nll, base.nll, "no head replaced must be the dense pass bit for bit");
    /* a 4-token window cannot see the first copy: copying collapses */
    struct ab_e2e_result r4 = eval(&m, &in, "window", NAN, 1, 4, AB_PHASE_PREFILL, NULL);
    cr_expect(base.copy_acc > 0.9, "the trained model copies: dense copy_acc %.3f", base.copy_acc);
    cr_expect(r4.copy_acc < 0.2, "window 4 copy_acc %.3f", r4.copy_acc);
    cr_expect(r4.nll > base.nll + 1);
    free(none);
    ab_model_input_free(&in);
    ab_model_free(&m);
}

Test(e2e, budgets_are_fitted_per_head_and_recorded)
{
    struct ab_model m;
    load(&m);
    struct ab_model_input in;
    cr_assert_eq(ab_model_input_copy(&m, 150, 7, &in), AB_OK);
    struct ab_e2e_result r = eval(&m, &in, "streaming", 0.25, 0, 0, AB_PHASE_PREFILL, NULL);
    double ratio = r.flops_method / r.flops_dense;
    cr_expect(ratio <= 0.25 + 1e-9 && ratio >= 0.25 * 0.95 - 1e-9, "ratio %g", ratio);
    cr_expect_eq(r.n_feasible, r.n_replaced);
    cr_expect(r.rel_l2 > 0 && r.rel_l2 < 2);
    ab_model_input_free(&in);
    ab_model_free(&m);
}

/* Writes the /heads table of a capture of the copy task and returns its path. */
static const char *heads_of_copy_capture(void)
{
    const char *cap = t_path("copy-capture.h5"), *heads = t_path("copy-heads.h5");
    char *err = NULL;
    int st = t_run(NULL, &err, "capture --model '%s' --copy-task 200 --seed 11 -o '%s'", model_path, cap);
    cr_assert_eq(st, 0, "capture: %s", err ? err : "");
    free(err);
    st = t_run(NULL, &err, "heads '%s' -o '%s'", cap, heads);
    cr_assert_eq(st, 0, "heads: %s", err ? err : "");
    free(err);
    return heads;
}

Test(e2e, uniform_on_the_top_induction_heads_hurts_copying_more_than_on_random_heads)
{
    struct ab_model m;
    load(&m); /* sets model_path */
    ab_model_free(&m);
    const char *heads = heads_of_copy_capture();
    const char *top = t_path("top.h5"), *rnd = t_path("rnd.h5");
    char *err = NULL;
    int st = t_run(NULL, &err, "eval-model --model '%s' --copy-task 200 --seed 5 --methods uniform-head "
                   "--heads-top 4 --heads-score induction_score --heads-file '%s' -o '%s'",
                   model_path, heads, top);
    cr_assert_eq(st, 0, "%s", err ? err : "");
    free(err);
    st = t_run(NULL, &err, "eval-model --model '%s' --copy-task 200 --seed 5 --methods uniform-head "
               "--heads-random 4 -o '%s'", model_path, rnd);
    cr_assert_eq(st, 0, "%s", err ? err : "");
    free(err);
    struct ab_results a, b;
    cr_assert_eq(ab_results_read_h5(top, &a), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_results_read_h5(rnd, &b), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(a.n_model, 1);
    cr_assert_eq(b.n_model, 1);
    cr_expect_eq(a.model[0].n_heads, 4);
    cr_expect_eq(b.model[0].n_heads, 4);
    cr_expect_str_eq(a.model[0].heads, "top 4 by induction_score");
    cr_expect_eq(a.model[0].dense_copy_acc, b.model[0].dense_copy_acc);
    cr_expect(a.model[0].copy_acc < b.model[0].copy_acc,
              "top-4 induction heads made uniform: copy_acc %.3f; 4 random heads: %.3f",
              a.model[0].copy_acc, b.model[0].copy_acc);
    ab_results_free(&a);
    ab_results_free(&b);
}

Test(e2e, act_head_selection_keeps_only_heads_that_lower_the_calibration_nll)
{
    struct ab_model m;
    load(&m);
    int64_t total = m.c.n_layer * m.c.n_head;
    ab_model_free(&m);
    const char *out = t_path("act-select.h5");
    char *err = NULL, *so = NULL;
    int st = t_run(&so, &err, "eval-model --model '%s' --copy-task 100 --calibrate-copy 100 "
                   "--heads-select --methods act -o '%s'", model_path, out);
    cr_assert_eq(st, 0, "%s", err ? err : "");
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(out, &r), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(r.n_model, 1);
    cr_expect(r.model[0].n_heads <= total);
    cr_expect(strstr(r.model[0].heads, "selected on copy-100") != NULL, "%s", r.model[0].heads);
    /* every selected head is named in head_list */
    int64_t named = 0;
    for (const char *p = r.model[0].head_list; *p; p++) named += *p == ':';
    cr_expect_eq(named, r.model[0].n_heads, "head_list '%s'", r.model[0].head_list);
    cr_expect(strstr(so, "act") != NULL, "the row is printed: %s", so);
    ab_results_free(&r);
    free(so);
    free(err);
}

Test(e2e, eval_model_cli_errors_are_one_line_and_leave_no_file)
{
    struct ab_model m;
    load(&m);
    ab_model_free(&m);
    const char *out = t_path("bad.h5");
    struct {
        const char *args;
        int status;
    } cases[] = {
        {"--copy-task 50 --methods no-such-method", 64},
        {"--copy-task 50 --methods streaming --phase sideways", 64},
        {"--copy-task 50 --methods streaming --budgets 0", 64},
        {"--copy-task 300 --methods streaming", 64},  /* 601 tokens > seq_len 512 */
        {"--copy-task 50 --methods streaming --heads 9:0", 64},
        {"--copy-task 50 --methods streaming --heads-top 3", 64},
        {"--copy-task 50 --methods streaming --phase decode --decode-queries 400", 64},
        {"--text /nonexistent/story.txt --methods streaming", 66},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = NULL;
        int st = t_run(NULL, &err, "eval-model --model '%s' %s -o '%s'", model_path, cases[i].args, out);
        cr_expect_eq(st, cases[i].status, "%s: status %d (%s)", cases[i].args, st, err ? err : "");
        cr_expect_eq(t_count_lines(err ? err : ""), 1, "%s: %s", cases[i].args, err ? err : "");
        cr_expect(!t_exists(out), "%s left %s", cases[i].args, out);
        free(err);
    }
    char *err = NULL;
    cr_expect_eq(t_run(NULL, &err, "eval-model --model /nonexistent/m.bin --copy-task 5 -o '%s'", out), 66);
    free(err);
}
