/* test_ingest.c - `attnbench ingest`: a method computed outside attnbench enters the results
 * table with the metrics of a built-in row.
 *
 * The external method is tests/fixtures/external_window.py (numpy only): it reads a workload's
 * Q, K, V (exported here as .npy) and the knobs a built-in `run` chose for `window` (prefill)
 * and `streaming` (decode) at each budget, computes the outputs, kept masks and declared FLOPs
 * of the rule, and writes OUTPUTS. Ingested as window-ext / streaming-ext, every row must equal
 * the built-in row of the same (layer, head, phase, budget): the cost columns, recall,
 * topk_recall, kl, density and task accuracy exactly (the same kept cells, FLOP counts and
 * exact side; task answers far from a tie), rel_l2, cos_mean, cos_min and max_abs within 1e-5
 * (numpy's float64 softmax rounded to float32 against the engine's float32 attention: outputs
 * differ in the last bits of float32, about 1e-7 of |O|). Then the bad inputs: one line, the
 * documented exit status, no output file, the inputs unchanged. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/metric.h"
#include "eval/results.h"
#include "helpers.h"
#include "io/h5_workload.h"
#include "io/npy.h"
#include "io/results_io.h"

/* The shared fixture: a workload with tasks, a built-in run of window and streaming, and the
 * exported Q, K, V. Made once per process (the tests of a suite run in one process with
 * --jobs 1). */
static char dir[512], wl[600], run_h5[600], run_csv[600];
static double scale;
static int ready;

static void export(const char *name, const float *x, int64_t a, int64_t b, int64_t c, int64_t d)
{
    char p[700];
    int64_t shape[4] = {a, b, c, d};
    snprintf(p, sizeof p, "%s/%s", dir, name);
    cr_assert_eq(ab_npy_write(p, AB_DT_F32, 4, shape, AB_DT_F32, x), 0, "%s", p);
}

static void setup(void)
{
    if (ready) return;
    snprintf(dir, sizeof dir, "%s", t_path("ingest"));
    cr_assert_eq(system(NULL) != 0, 1);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(wl, sizeof wl, "%s/w.h5", dir);
    snprintf(run_h5, sizeof run_h5, "%s/r.h5", dir);
    snprintf(run_csv, sizeof run_csv, "%s/r.csv", dir);
    char *err = NULL;
    cr_assert_eq(t_run(NULL, &err, "gen --preset model --layers 2 --heads 4 --kv-heads 2 --n 384 "
                       "--d 32 --tasks retrieve,aggregate --quiet -o '%s'", wl), 0, "%s", err);
    free(err);
    err = NULL;
    /* 64 sampled prefill rows plus the task rows: the evaluated rows must be the same */
    cr_assert_eq(t_run(NULL, &err, "run '%s' --methods window,streaming --rows 64 "
                       "--decode-queries 32 --quiet -o '%s'", wl, run_h5), 0, "%s", err);
    free(err);
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(wl, &w), 0);
    cr_assert_eq(w.rope_theta == 0 || w.rope_applied, 1);
    export("q.npy", w.q, w.n_layer, w.n_head, w.n_seq, w.d);
    export("k.npy", w.k, w.n_layer, w.n_kv_head, w.n_seq, w.d);
    export("v.npy", w.v, w.n_layer, w.n_kv_head, w.n_seq, w.d_v);
    for (int64_t i = 0; i < w.n_seq; i++) cr_assert_eq(w.positions[i], i); /* the script's */
    scale = w.scale;
    ab_workload_free(&w);
    ready = 1;
}

/* Runs the numpy fixture into out: 0 on success. */
static int external(const char *method, const char *phase, const char *extra, const char *out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 '%s/tests/fixtures/external_window.py' --dir '%s' --csv '%s' "
             "--method %s --phase %s --m 32 --scale %.17g %s -o '%s'",
             getenv("AB_SRC") ? getenv("AB_SRC") : ".", dir, run_csv, method, phase, scale,
             extra, out);
    return system(cmd);
}

/* 1 when x and y are equal, both NaN, or within tol. */
static int close_to(double x, double y, double tol)
{
    if (isnan(x) || isnan(y)) return isnan(x) && isnan(y);
    return fabs(x - y) <= tol;
}

/* Ingests the fixture's outputs of method in phase as NAME-ext and compares every row with the
 * built-in run's. */
static void same_rows(const char *method, const char *phase)
{
    setup();
    char npz[700], res[700], name[64];
    snprintf(npz, sizeof npz, "%s/%s-%s.npz", dir, method, phase);
    snprintf(res, sizeof res, "%s/%s-%s-ext.h5", dir, method, phase);
    snprintf(name, sizeof name, "%s-ext", method);
    cr_assert_eq(external(method, phase, "", npz), 0, "the numpy fixture failed");
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(&out, &err, "ingest '%s' '%s' --name %s --family static --provenance 'numpy, "
                       "tests/fixtures/external_window.py' --knob-name w --rows 64 "
                       "--decode-queries 32 -o '%s'", wl, npz, name, res),
                 0, "%s", err);
    free(out), free(err);

    struct ab_results a, b;
    cr_assert_eq(ab_results_read_h5(run_h5, &a), 0);
    cr_assert_eq(ab_results_read_h5(res, &b), 0);
    cr_assert_not_null(b.external);
    cr_expect(strstr(b.external, "\"provenance\":\"numpy, tests/fixtures") != NULL, "%s",
              b.external);
    /* the columns: exact, or within 1e-5 for the four computed from O */
    static const char *const loose[] = {"rel_l2", "cos_mean", "cos_min", "max_abs", NULL};
    double worst[AB_N_METRIC] = {0};
    int64_t matched = 0, n_builtin = 0;
    for (int64_t i = 0; i < a.n_cells; i++) {
        const struct ab_cell *x = &a.cells[i];
        if (strcmp(x->method, method) || strcmp(x->phase, phase)) continue;
        n_builtin++;
        for (int64_t j = 0; j < b.n_cells; j++) {
            const struct ab_cell *y = &b.cells[j];
            if (y->layer != x->layer || y->head != x->head || y->target_ratio != x->target_ratio)
                continue;
            matched++;
            cr_expect_str_eq(y->method, name);
            cr_expect_str_eq(y->family, x->family);
            cr_expect_str_eq(y->phase, phase);
            cr_expect_str_eq(y->task_kind, x->task_kind);
            cr_expect_eq(y->feasible, x->feasible);
            cr_expect_eq(y->knob, x->knob);
            for (int k = 0; k < AB_N_METRIC; k++) {
                const struct ab_metric *m = &ab_metrics[k];
                /* time_s is not measured for an external row; ops_other is not declared */
                if (!strcmp(m->name, "time_s") || !strcmp(m->name, "ops_other")) continue;
                int is_loose = 0;
                for (int l = 0; loose[l]; l++) is_loose |= !strcmp(loose[l], m->name);
                double vx = ab_metric_get(x, m), vy = ab_metric_get(y, m);
                cr_expect(close_to(vx, vy, is_loose ? 1e-5 : 0), "%s %s L%lld H%lld target %g: "
                          "%s built-in %.17g, external %.17g", method, phase, (long long)x->layer,
                          (long long)x->head, x->target_ratio, m->name, vx, vy);
                if (!isnan(vx) && !isnan(vy) && fabs(vx - vy) > worst[k]) worst[k] = fabs(vx - vy);
            }
        }
    }
    cr_expect_gt(n_builtin, 0);
    cr_expect_eq(matched, n_builtin, "%lld of %lld built-in rows matched", (long long)matched,
                 (long long)n_builtin);
    cr_expect_eq(b.n_cells, n_builtin);
    /* the largest differences, for the record (tests/test_ingest.c header) */
    fprintf(stderr, "ingest %s %s: %lld rows; largest |built-in - external|:", method, phase,
            (long long)matched);
    for (int k = 0; k < AB_N_METRIC; k++)
        if (worst[k] > 0) fprintf(stderr, " %s %.3g", ab_metrics[k].name, worst[k]);
    fprintf(stderr, " (every other column equal)\n");
    ab_results_free(&a);
    ab_results_free(&b);
}

Test(ingest, window_prefill_rows_equal_builtin, .timeout = 600)
{
    same_rows("window", "prefill");
}

Test(ingest, streaming_decode_rows_equal_builtin, .timeout = 600)
{
    same_rows("streaming", "decode");
}

/* Without masks the selection columns are NaN and the rest is as with them. */
Test(ingest, without_keep_recall_is_nan, .timeout = 600)
{
    setup();
    char npz[700], res[700];
    snprintf(npz, sizeof npz, "%s/nokeep.npz", dir);
    snprintf(res, sizeof res, "%s/nokeep.h5", dir);
    cr_assert_eq(external("window", "prefill", "--no-keep", npz), 0);
    char *err = NULL;
    cr_assert_eq(t_run(NULL, &err, "ingest '%s' '%s' --name win-nokeep --knob-name w --rows 64 "
                       "--quiet -o '%s'", wl, npz, res), 0, "%s", err);
    free(err);
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(res, &r), 0);
    cr_assert_gt(r.n_cells, 0);
    for (int64_t c = 0; c < r.n_cells; c++) {
        cr_expect(isnan(r.cells[c].recall) && isnan(r.cells[c].density));
        cr_expect(isfinite(r.cells[c].rel_l2) && isfinite(r.cells[c].flop_ratio));
        cr_expect_str_eq(r.cells[c].family, "dynamic"); /* the prefill default */
    }
    ab_results_free(&r);
}

/* report on the ingest file alone and with the run's; check and info on it. */
Test(ingest, report_check_and_info_take_external_rows, .timeout = 600)
{
    same_rows("window", "prefill");
    char res[700], rep1[700], rep2[700], md[800];
    snprintf(res, sizeof res, "%s/window-prefill-ext.h5", dir);
    snprintf(rep1, sizeof rep1, "%s/rep-alone", dir);
    snprintf(rep2, sizeof rep2, "%s/rep-both", dir);
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(&out, &err, "report '%s' --quiet -o '%s'", res, rep1), 0, "%s", err);
    free(out), free(err), out = err = NULL;
    cr_assert_eq(t_run(&out, &err, "report '%s' '%s' --methods window,window-ext --quiet -o '%s'",
                       run_h5, res, rep2), 0, "%s", err);
    free(out), free(err), out = err = NULL;
    for (int i = 0; i < 2; i++) {
        snprintf(md, sizeof md, "%s/report.md", i ? rep2 : rep1);
        char *text = (char *)t_slurp(md, NULL);
        cr_assert_not_null(text, "%s", md);
        cr_expect(strstr(text, "window-ext (external: numpy, tests/fixtures/external_window.py)"),
                  "%s names the external method with its provenance", md);
        free(text);
    }
    /* an unknown name is still refused */
    cr_expect_eq(t_run(NULL, NULL, "report '%s' --methods window-ex --quiet -o '%s/rep-x'", res,
                       dir), 64);
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s'", res, res), 0, "%s", err);
    free(out), free(err), out = err = NULL;
    cr_expect_eq(t_run(&out, &err, "info '%s'", res), 0, "%s", err);
    cr_expect(out && strstr(out, "external") && strstr(out, "window-ext"), "%s", out);
    free(out), free(err);
}

/* One bad input: status, one line naming the file, no output, the input unchanged. */
static void refused(const char *outputs, const char *args, int status, const char *words)
{
    char res[700];
    snprintf(res, sizeof res, "%s/refused.h5", dir);
    size_t len0 = 0, len1 = 0;
    unsigned char *before = t_slurp(outputs, &len0);
    char *out = NULL, *err = NULL;
    int st = t_run(&out, &err, "ingest '%s' '%s' %s --rows 64 --decode-queries 32 -o '%s'", wl,
                   outputs, args, res);
    cr_expect_eq(st, status, "%s %s: status %d, stderr: %s", outputs, args, st, err);
    cr_expect_eq(t_count_lines(err), 1, "one line: %s", err);
    cr_expect(err && strstr(err, words), "'%s' in: %s", words, err);
    cr_expect(!t_exists(res) && !t_tmp_left(res), "no output file");
    char csv[700];
    snprintf(csv, sizeof csv, "%s/refused.csv", dir);
    cr_expect(!t_exists(csv));
    unsigned char *after = t_slurp(outputs, &len1);
    cr_expect(len0 == len1 && (!before || !memcmp(before, after, len0)), "input unchanged");
    fprintf(stderr, "refused (%d): %s", st, err ? err : "(nothing)\n");
    free(before), free(after), free(out), free(err);
}

Test(ingest, bad_inputs_one_line_nothing_written, .timeout = 600)
{
    setup();
    static const struct {
        const char *corrupt, *phase, *args;
        int status;
        const char *words;
    } cases[] = {
        {"nan", "prefill", "--name x-ext --knob-name w", 65, "o holds NaN at index (0, 0, 0, "},
        {"shape", "prefill", "--name x-ext --knob-name w", 65, "o has shape (5, 2, 3, 384, 32)"},
        {"noflops", "prefill", "--name x-ext --knob-name w", 65, "no array 'flops'"},
        {"negflops", "decode", "--name x-ext --knob-name w", 65, "flops holds a negative value"},
        {"keepfuture", "decode", "--name x-ext --knob-name w", 65, "outside the causal mask"},
        {"", "prefill", "--name window --knob-name w", 64, "'window' is a registry row"},
        {"", "prefill", "--name x-ext", 64, "name it with --knob-name"},
        {"", "prefill", "--name x-ext --knob-name w --phase decode", 65, "384 rows per head"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char npz[700], extra[64];
        snprintf(npz, sizeof npz, "%s/bad-%zu.npz", dir, i);
        snprintf(extra, sizeof extra, "%s%s", cases[i].corrupt[0] ? "--corrupt " : "",
                 cases[i].corrupt);
        cr_assert_eq(external(cases[i].phase[0] == 'p' ? "window" : "streaming", cases[i].phase,
                              extra, npz), 0);
        refused(npz, cases[i].args, cases[i].status, cases[i].words);
    }
    /* a truncated file (a lying size): cut a good one in half */
    char npz[700], cut[700], cmd[2400];
    snprintf(npz, sizeof npz, "%s/bad-0.npz", dir);
    snprintf(cut, sizeof cut, "%s/cut.npz", dir);
    cr_assert_eq(external("window", "prefill", "", npz), 0);
    snprintf(cmd, sizeof cmd, "head -c $(( $(stat -c %%s '%s') / 2 )) '%s' > '%s'", npz, npz, cut);
    cr_assert_eq(system(cmd), 0);
    refused(cut, "--name x-ext --knob-name w", 65, cut);
    /* a missing file */
    snprintf(cut, sizeof cut, "%s/missing.npz", dir);
    refused(cut, "--name x-ext --knob-name w", 66, "missing.npz");
}
