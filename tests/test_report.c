/* test_report.c - `attnbench report` and `render --method` through the command line
 * (outputs.md, "Reports"): every .gp renders under gnuplot to a PNG of the size it declares, the
 * heatmaps carry the viridis palette, report.md names the best method the data gives, the same
 * inputs give the same bytes, a missing gnuplot still leaves the scripts (exit 69), bad inputs
 * give the documented statuses and leave no partial picture, and render draws a kept mask.
 *
 * The inputs are made once per run with the CLI (a 2-layer, 4-head workload of 256 tokens and a
 * sweep of six methods at three budgets: a second or so) and shared by the tests. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/workload.h"
#include "eval/results.h"
#include "helpers.h"
#include "io/h5_workload.h"
#include "io/results_io.h"
#include "report/report_internal.h"

/* ---------------------------------------------------------------- shared inputs */

static char fx_dir[1024], fx_work[1100], fx_res[1100];

/* Makes (once per test run: the directory is named after the runner's pid) the workload and the
 * results file every test reads. */
static void fixture(void)
{
    const char *tmp = getenv("AB_TMP");
    if (!tmp || !*tmp) tmp = "/tmp";
    mkdir(tmp, 0777);
    snprintf(fx_dir, sizeof fx_dir, "%s/report-fx-%ld", tmp, (long)getppid());
    snprintf(fx_work, sizeof fx_work, "%s/w.h5", fx_dir);
    snprintf(fx_res, sizeof fx_res, "%s/results.h5", fx_dir);
    if (t_exists(fx_res)) return;
    char build[1100], w[1200], r[1200];
    snprintf(build, sizeof build, "%s.%ld", fx_dir, (long)getpid());
    mkdir(build, 0777);
    snprintf(w, sizeof w, "%s/w.h5", build);
    snprintf(r, sizeof r, "%s/results.h5", build);
    char *out, *err;
    int st = t_run(&out, &err, "gen --preset model --layers 2 --heads 4 --kv-heads 2 --n 256 "
                               "--d 32 --tasks retrieve -o '%s'", w);
    cr_assert_eq(st, 0, "gen: %s", err);
    free(out), free(err);
    /* one process wins the rename; the others wait for its results */
    if (rename(build, fx_dir) != 0) {
        char cmd[1300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", build);
        cr_assert_eq(system(cmd), 0);
        for (int i = 0; i < 600 && !t_exists(fx_res); i++) usleep(100000);
        cr_assert(t_exists(fx_res), "no shared results at '%s'", fx_res);
        return;
    }
    /* the results record the workload by its final path, so report finds it */
    st = t_run(&out, &err, "run '%s' --methods dense,window,streaming,vertical-slash,quest,h2o "
                           "--budgets 0.5,0.25,0.125 --no-progress --quiet -o '%s.tmp.h5'",
               fx_work, fx_res);
    cr_assert_eq(st, 0, "run: %s", err);
    free(out), free(err);
    char tmp_res[1200];
    snprintf(tmp_res, sizeof tmp_res, "%s.tmp.h5", fx_res);
    rename(tmp_res, fx_res);
}

/* A fresh folder name for a report. */
static const char *report_dir(const char *name)
{
    const char *d = t_path(name);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    cr_assert_eq(system(cmd), 0);
    return d;
}

/* Width and height from a PNG's IHDR; 0 when the file is not a PNG. */
static void png_size(const char *path, uint32_t *w, uint32_t *h)
{
    size_t n = 0;
    unsigned char *b = t_slurp(path, &n);
    *w = *h = 0;
    if (b && n >= 24 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8) && !memcmp(b + 12, "IHDR", 4)) {
        *w = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
        *h = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
    }
    free(b);
}

/* Names in dir ending with suffix, into names (up to cap); returns the count. */
static int list_dir(const char *dir, const char *suffix, char names[][256], int cap)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d)) && n < cap) {
        size_t l = strlen(e->d_name);
        if (l >= sl && !strcmp(e->d_name + l - sl, suffix))
            snprintf(names[n++], 256, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

static int have_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

static char *slurp_in(const char *dir, const char *name)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return (char *)t_slurp(p, NULL);
}

static int exists_in(const char *dir, const char *name)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return t_exists(p);
}

/* ---------------------------------------------------------------- report */

/* The report plots the rows of the metric table with plot set and no others: the metrics its
 * figures and answers are built around (report_internal.h) are exactly those rows, read with the
 * table's direction and axis. */
Test(report, metrics_the_report_plots)
{
    static const int used[] = {M_REL_L2, M_RECALL, M_TASK_ACC, M_COS_MIN, M_RETRIEVE, M_AGGREGATE};
    enum { N_USED = sizeof used / sizeof used[0] };
    int n_plot = 0;
    for (int k = 0; k < AB_N_METRIC; k++) {
        const struct ab_metric *m = &ab_metrics[k];
        int in_use = 0;
        for (int i = 0; i < N_USED; i++) in_use |= used[i] == k;
        cr_expect_eq(!!m->plot, in_use, "%s: plotted %d, used by the report %d", m->name, m->plot,
                     in_use);
        if (!m->plot) continue;
        n_plot++;
        cr_expect(ab_metric_is_accuracy(m) && m->mean.name, "%s", m->name);
        cr_expect_eq(ab_rep_higher_better(k), m->sense == AB_SENSE_LOW_WORSE, "%s", m->name);
        cr_expect_eq(ab_rep_logy(k), m->plot == AB_PLOT_LOG, "%s", m->name);
    }
    cr_expect_eq(n_plot, N_USED);
    /* as the report drew them before the table: rel_l2 on a log axis, lower better; the
     * others linear, higher better */
    cr_expect(ab_rep_logy(M_REL_L2) && !ab_rep_higher_better(M_REL_L2));
    for (int i = 1; i < N_USED; i++)
        cr_expect(!ab_rep_logy(used[i]) && ab_rep_higher_better(used[i]), "%s",
                  ab_metrics[used[i]].name);
}

Test(report, every_script_renders_to_its_declared_size)
{
    if (!have_gnuplot()) cr_skip_test("gnuplot is not installed");
    fixture();
    const char *dir = report_dir("rep-all");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "report '%s' -o '%s/'", fx_res, dir), 0, "%s", err);
    /* one line on stdout, naming report.md (no "//" from the trailing slash) and the figures */
    static char pngs[128][256];
    char want[1400];
    snprintf(want, sizeof want, "report: %s/report.md (%d figures, ", dir,
             list_dir(dir, ".png", pngs, 128));
    cr_expect(strstr(out, want) == out && t_count_lines(out) == 1, "want %s: %s", want, out);
    free(out), free(err);
    static char gps[64][256];
    int n = list_dir(dir, ".gp", gps, 64);
    int n_maps = 0;
    for (int i = 0; i < n; i++) n_maps += !strncmp(gps[i], "map-", 4);
    cr_expect_geq(n_maps, 1, "no map figure (the workload is recorded)");
    /* frontiers: families, 3 families x (main, recall, tasks: no tasks of a kind here, none),
     * kvcache of static and kv; 3 isoflops; 3 heads figures (one per family) */
    cr_assert_geq(n, 1 + 3 * 2 + 2 + 3 + 3, "%d scripts", n);
    for (int i = 0; i < n; i++) {
        char stem[256], png[1300], mine[1300], cmd[3000];
        snprintf(stem, sizeof stem, "%.*s", (int)strlen(gps[i]) - 3, gps[i]);
        snprintf(png, sizeof png, "%s/%s.png", dir, stem);
        cr_expect(exists_in(dir, "report.md"));
        char tsv[300]; /* the maps' data is a binary matrix */
        snprintf(tsv, sizeof tsv, "%s.%s", stem, strncmp(stem, "map-", 4) ? "tsv" : "bin");
        cr_expect(exists_in(dir, tsv), "%s without its data", gps[i]);
        /* by hand, as report.md says: from inside the folder, with a relative path */
        snprintf(mine, sizeof mine, "%s/again-%s.png", dir, stem);
        snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot -c '%s' 'again-%s.png' 2>/dev/null", dir,
                 gps[i], stem);
        cr_expect_eq(system(cmd), 0, "%s does not run", gps[i]);
        uint32_t w, h, w2, h2;
        png_size(png, &w, &h);
        png_size(mine, &w2, &h2);
        cr_expect(w > 0 && h > 0, "%s: no PNG", png);
        cr_expect(w == w2 && h == h2, "%s: %ux%u by hand, %ux%u in the report", stem, w2, h2, w, h);
        if (!strncmp(stem, "frontier-", 9) || !strncmp(stem, "kvcache-", 8))
            cr_expect(w == 1200 && (h == 860 || h == 520), "%s %ux%u", stem, w, h);
        if (!strncmp(stem, "isoflops-", 9))
            cr_expect(w == 1200 && h > 300, "%s %ux%u", stem, w, h);
        if (!strncmp(stem, "heads-", 6)) cr_expect(w == 1200 && h > 100, "%s %ux%u", stem, w, h);
        if (!strncmp(stem, "map-", 4)) cr_expect(w == 900 && h == 800, "%s %ux%u", stem, w, h);
        size_t a = 0, b = 0;
        unsigned char *x = t_slurp(png, &a), *y = t_slurp(mine, &b);
        cr_expect(x && y && a == b && !memcmp(x, y, a), "%s: re-running the script changed it",
                  stem);
        free(x), free(y);
    }
    const char *expect[] = {"frontier-families.png", "frontier-static.png",
                            "frontier-dynamic.png", "frontier-kv.png", "frontier-kv-recall.png",
                            "kvcache-kv.png", "kvcache-static.png", "isoflops-0.5.png",
                            "isoflops-0.25.png", "isoflops-0.125.png",
                            "heads-rel_l2-0.125-static.png", "heads-rel_l2-0.125-kv.png",
                            "cells.csv", "summary.csv", "report.md"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        cr_expect(exists_in(dir, expect[i]), "%s missing", expect[i]);
    static char tmps[8][256];
    cr_expect_eq(list_dir(dir, ".tmp", tmps, 8), 0, "temporary files left");
}

Test(report, per_head_grids_are_tables_and_the_panels_draw_them)
{
    fixture();
    const char *dir = report_dir("rep-heat");
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s'", fx_res, dir);
    cr_assert(st == 0 || st == 69, "%d %s", st, err);
    free(out), free(err);
    static char tsvs[64][256];
    int n = list_dir(dir, "-0.125.tsv", tsvs, 64), n_lib = 0;
    for (int i = 0; i < n; i++) {
        if (strncmp(tsvs[i], "heads-", 6) || !strncmp(tsvs[i], "heads-rel_l2", 12))
            continue; /* the gnuplot figures' tables */
        /* one method's grid: one line per layer, one value per head, and no thumbnail */
        char png[300];
        snprintf(png, sizeof png, "%.*s.png", (int)strlen(tsvs[i]) - 4, tsvs[i]);
        cr_expect(!exists_in(dir, png), "%s: a picture without axes", png);
        char *t = slurp_in(dir, tsvs[i]);
        cr_assert(t, "%s missing", tsvs[i]);
        int rows = 0;
        for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"))
            if (line[0] != '#') {
                rows++;
                int cols = 1;
                for (char *c = line; *c; c++) cols += *c == '\t';
                cr_expect_eq(cols, 4, "%s: %s", tsvs[i], line);
            }
        cr_expect_eq(rows, 2, "%s", tsvs[i]);
        free(t);
        n_lib++;
    }
    cr_expect_geq(n_lib, 4, "only %d per-method grids", n_lib);
    /* the gnuplot figure uses the same table */
    char *gp = slurp_in(dir, "heads-rel_l2-0.125-static.gp");
    cr_assert(gp);
    cr_expect(strstr(gp, "0 \"#440154\"") && strstr(gp, "255 \"#fde725\""));
    free(gp);
}

/* The best method by mean rel_l2 in phase at target among methods feasible on every head. */
static void expected_best(const struct ab_results *r, const char *phase, double target,
                          char *name, size_t cap)
{
    double best = INFINITY;
    name[0] = 0;
    for (int64_t s = 0; s < r->n_summary; s++) {
        const struct ab_summary_row *row = &r->summary[s];
        if (strcmp(row->phase, phase) || row->target_ratio != target) continue;
        int64_t cells = 0;
        for (int64_t c = 0; c < r->n_cells; c++)
            cells += !strcmp(r->cells[c].method, row->method) &&
                     !strcmp(r->cells[c].phase, phase) && r->cells[c].target_ratio == target;
        if (row->n_heads != cells || !(row->rel_l2_mean < best)) continue;
        best = row->rel_l2_mean;
        snprintf(name, cap, "%s", row->method);
    }
}

Test(report, report_md_names_the_best_method_of_the_data)
{
    fixture();
    const char *dir = report_dir("rep-md");
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s'", fx_res, dir);
    cr_assert(st == 0 || st == 69, "%d %s", st, err);
    free(out), free(err);
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(fx_res, &r), 0);
    char *md = slurp_in(dir, "report.md");
    cr_assert(md);
    const char *phases[] = {"prefill", "decode"};
    const double targets[] = {0.5, 0.25, 0.125};
    const char *labels[] = {"1/2", "1/4", "1/8"};
    for (int p = 0; p < 2; p++)
        for (int t = 0; t < 3; t++) {
            char best[64], row[160];
            expected_best(&r, phases[p], targets[t], best, sizeof best);
            cr_assert(best[0], "no feasible method in %s at %g", phases[p], targets[t]);
            snprintf(row, sizeof row, "| %s | %s | %s |", phases[p], labels[t], best);
            cr_expect(strstr(md, row) != NULL, "report.md lacks '%s'", row);
        }
    /* it opens with the answers; the failing heads, the infeasible methods, the sink ratio
     * (not computed here), links to figures and tables, the inputs */
    const char *opening = "# attnbench report\n\n## Answers\n";
    cr_expect(!strncmp(md, opening, strlen(opening)), "%.200s", md);
    cr_expect(strstr(md, "one length only (n = 256)") != NULL, "the length question");
    cr_expect(strstr(md, "## Heads that break each method") && strstr(md, "L1 H") != NULL);
    cr_expect(strstr(md, "## Infeasible methods") != NULL);
    cr_expect(strstr(md, "G = 1024") != NULL, "the decode horizon");
    cr_expect(strstr(md, "Not computed: the results have no /heads table") != NULL);
    cr_expect(strstr(md, "(frontier-static.png)") && strstr(md, "(isoflops-0.125.png)") &&
              strstr(md, "(cells.csv)") && strstr(md, "(summary.csv)"));
    cr_expect(strstr(md, r.workload_sha256[0]) != NULL, "workload digest missing");
    cr_expect(strstr(md, "attnbench run ") != NULL, "the run's command line is missing");
    cr_expect(strstr(md, "![map-L") != NULL, "no attention map (the workload is recorded)");
    free(md);
    ab_results_free(&r);
}

Test(report, same_inputs_give_identical_pictures)
{
    fixture();
    const char *a = report_dir("rep-a"), *b = report_dir("rep-b");
    char *out, *err;
    int s1 = t_run(&out, &err, "report '%s' -o '%s'", fx_res, a);
    free(out), free(err);
    int s2 = t_run(&out, &err, "report '%s' -o '%s'", fx_res, b);
    free(out), free(err);
    cr_assert(s1 == s2 && (s1 == 0 || s1 == 69), "%d %d", s1, s2);
    static char pngs[128][256];
    int n = list_dir(a, ".png", pngs, 128);
    cr_expect_geq(n, 10);
    for (int i = 0; i < n; i++) {
        char pa[2048], pb[2048];
        snprintf(pa, sizeof pa, "%.1000s/%.255s", a, pngs[i]);
        snprintf(pb, sizeof pb, "%.1000s/%.255s", b, pngs[i]);
        size_t la = 0, lb = 0;
        unsigned char *x = t_slurp(pa, &la), *y = t_slurp(pb, &lb);
        cr_expect(x && y && la == lb && !memcmp(x, y, la), "%s differs", pngs[i]);
        free(x), free(y);
    }
}

/* A results file with hand-built /model rows (as eval-model writes them): two inputs (a text
 * and a copy task), streaming at two targets in prefill and decode, uniform-head on two head
 * choices. Values are chosen so their formatted forms are known. */
static void write_model_rows(const char *path)
{
    struct ab_results r;
    ab_results_init(&r);
    r.created_utc = strdup("2000-01-01T00:00:00Z");
    r.hostname = strdup("h");
    r.attnbench_version = strdup("0");
    r.openblas_config = strdup("b");
    const char *inputs[] = {"data/story.txt", "copy-50"};
    for (int in = 0; in < 2; in++)
        for (int ph = 0; ph < 2; ph++)
            for (int t = 0; t < 2; t++) {
                double target = t ? 0.25 : 0.5, k = (double)(1 + t + 2 * ph);
                struct ab_model_row row = {
                    .workload = (char *)inputs[in], .model = "m.bin", .method = "streaming",
                    .family = "static", .phase = ph ? "decode" : "prefill", .knob_name = "w",
                    .knob = NAN, .target_ratio = target, .flop_ratio = target - 0.002,
                    .bytes_kv = 1, .heads = "all", .head_list = "", .n_heads = 40,
                    .heads_feasible = 40, .feasible = 1, .n_tokens = 101, .n_scored = 100,
                    .nll = log(10 + k), .ppl = 10 + k + 0.3456, .acc = 0.6 - 0.01 * k,
                    .copy_acc = in ? 0.5 - 0.1 * k : NAN, .dense_nll = log(10), .dense_ppl = 10,
                    .dense_acc = 0.65, .dense_copy_acc = in ? 0.75 : NAN,
                    .rel_l2 = 0.0457 * k, .time_s = 0};
                cr_assert_eq(ab_results_add_model(&r, &row), 0);
            }
    const char *how[] = {"top 4 by induction_score", "random 4 (seed 1)"};
    for (int h = 0; h < 2; h++) {
        struct ab_model_row row = {
            .workload = "data/story.txt", .model = "m.bin", .method = "uniform-head",
            .family = "calibration", .phase = "prefill", .knob_name = "", .knob = NAN,
            .target_ratio = 1, .flop_ratio = 1, .heads = (char *)how[h], .head_list = "0:1",
            .n_heads = 4, .heads_feasible = 4, .feasible = 1, .n_tokens = 101, .n_scored = 100,
            .nll = 3, .ppl = h ? 21.5 : 55.25, .acc = h ? 0.5 : 0.25, .copy_acc = NAN,
            .dense_nll = log(10), .dense_ppl = 10, .dense_acc = 0.65, .dense_copy_acc = NAN,
            .rel_l2 = 0.9, .time_s = 0};
        cr_assert_eq(ab_results_add_model(&r, &row), 0);
    }
    cr_assert_eq(ab_results_write_h5(path, &r), 0);
    ab_results_free(&r);
}

Test(report, end_to_end_section_from_model_rows)
{
    fixture();
    char model[1200];
    snprintf(model, sizeof model, "%s", t_path("model-rows.h5"));
    write_model_rows(model);
    const char *a = report_dir("rep-e2e-a"), *b = report_dir("rep-e2e-b");
    char *out, *err;
    int s1 = t_run(&out, &err, "report '%s' '%s' -o '%s'", fx_res, model, a);
    cr_assert(s1 == 0 || s1 == 69, "exit %d: %s", s1, err);
    free(out), free(err);
    int s2 = t_run(&out, &err, "report '%s' '%s' -o '%s'", fx_res, model, b);
    cr_assert_eq(s1, s2, "%s", err);
    free(out), free(err);

    /* model.csv: the header and the 10 rows */
    char *csv = slurp_in(a, "model.csv");
    cr_assert(csv, "no model.csv");
    cr_expect_eq(t_count_lines(csv), 11, "%s", csv);
    cr_expect(strncmp(csv, "workload,", 9) == 0, "%.200s", csv);
    free(csv);
    /* the figures' data and scripts (and pictures when gnuplot is there) */
    const char *fig[] = {"e2e-ppl.tsv", "e2e-ppl.gp", "e2e-acc.tsv", "e2e-acc.gp"};
    for (int i = 0; i < 4; i++) cr_expect(exists_in(a, fig[i]), "%s missing", fig[i]);
    if (s1 == 0) cr_expect(exists_in(a, "e2e-ppl.png") && exists_in(a, "e2e-acc.png"));
    /* e2e-acc plots copy_acc for the copy task: its prefill streaming points are 0.4, 0.3 */
    char *tsv = slurp_in(a, "e2e-acc.tsv");
    cr_assert(tsv);
    cr_expect(strstr(tsv, "0.498\t0.4\t0.5") && strstr(tsv, "0.248\t0.3\t0.25"), "%s", tsv);
    free(tsv);

    char *md = slurp_in(a, "report.md");
    cr_assert(md);
    const char *e2e = strstr(md, "## End to end (eval-model)");
    cr_assert(e2e, "no End to end section:\n%s", md);
    cr_expect(strstr(e2e, "### data/story.txt\n") && strstr(e2e, "### copy-50\n"), "%s", e2e);
    /* the run's attention-level rel_l2 of streaming, prefill, 1/2: no capture matches, so the
     * mean over every workload of the run, marked * */
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(fx_res, &r), 0);
    double attn = NAN;
    for (int64_t i = 0; i < r.n_summary; i++)
        if (!strcmp(r.summary[i].method, "streaming") && !strcmp(r.summary[i].phase, "prefill") &&
            r.summary[i].target_ratio == 0.5)
            attn = r.summary[i].rel_l2_mean;
    ab_results_free(&r);
    cr_assert(isfinite(attn));
    char want[512];
    snprintf(want, sizeof want,
             "| streaming | prefill | 1/2 | 0.498 | all | 11.35 (10) | 0.590 (0.650) | - | "
             "0.0457 | %.3g* |\n",
             attn);
    cr_expect(strstr(e2e, want) != NULL, "want '%s' in:\n%s", want, e2e);
    /* the copy task's copy_acc with dense beside it; 1/2 before 1/4 */
    const char *copy = strstr(e2e, "### copy-50\n");
    cr_assert(copy);
    const char *c1 = strstr(copy, "| streaming | decode | 1/2 | 0.498 | all | 13.35 (10) | 0.570 "
                                  "(0.650) | 0.200 (0.750) | 0.137 | ");
    const char *c2 = strstr(copy, "| streaming | decode | 1/4 | 0.248 | all | 14.35 (10) | 0.560 "
                                  "(0.650) | 0.100 (0.750) | 0.183 | ");
    cr_expect(c1 && c2 && c1 < c2, "%s", copy);
    /* two head choices of one method stay apart */
    cr_expect(strstr(e2e, "| uniform-head | prefill | 1 | 1.000 | top 4 by induction_score | "
                          "55.25 (10) | 0.250 (0.650) | - | 0.9 | ") &&
                  strstr(e2e, "| uniform-head | prefill | 1 | 1.000 | random 4 (seed 1) | 21.5 "
                              "(10) | 0.500 (0.650) | - | 0.9 | "),
              "%s", e2e);
    char *gp = slurp_in(a, "e2e-ppl.gp");
    cr_assert(gp);
    cr_expect(strstr(gp, "uniform-head (top 4 by induction_score)") &&
                  strstr(gp, "uniform-head (random 4 (seed 1))"),
              "%s", gp);
    free(gp);
    free(md);

    /* byte-identical when run twice */
    const char *same[] = {"report.md",   "model.csv",  "e2e-ppl.tsv", "e2e-ppl.gp",
                          "e2e-acc.tsv", "e2e-acc.gp", "e2e-ppl.png", "e2e-acc.png"};
    for (int i = 0; i < 8; i++) {
        if (s1 != 0 && i >= 6) break;
        char pa[2048], pb[2048];
        snprintf(pa, sizeof pa, "%s/%s", a, same[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, same[i]);
        size_t la = 0, lb = 0;
        unsigned char *x = t_slurp(pa, &la), *y = t_slurp(pb, &lb);
        int eq = x && y && la == lb && !memcmp(x, y, la);
        if (!eq && i == 0 && x && y) {
            /* report.md names its own folder in its command line: compare what follows */
            char *xa = strstr((char *)x, "Built by "), *ya = strstr((char *)y, "Built by ");
            xa = xa ? strchr(xa, '\n') : NULL, ya = ya ? strchr(ya, '\n') : NULL;
            eq = xa && ya && !strcmp(xa, ya);
        }
        cr_expect(eq, "%s differs between two runs", same[i]);
        free(x), free(y);
    }
}

Test(report, without_gnuplot_writes_scripts_and_exits_69)
{
    fixture();
    const char *dir = report_dir("rep-nognuplot");
    setenv("PATH", "/nonexistent", 1);
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s'", fx_res, dir);
    cr_expect_eq(st, 69, "%s", err);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    cr_expect(strstr(err, "gnuplot") != NULL, "%s", err);
    free(out), free(err);
    const char *expect[] = {"frontier-static.gp", "frontier-static.tsv", "isoflops-0.125.gp",
                            "isoflops-0.125.tsv", "report.md", "cells.csv", "summary.csv"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        cr_expect(exists_in(dir, expect[i]), "%s missing", expect[i]);
    cr_expect(!exists_in(dir, "frontier-static.png"));
    /* the maps' scripts and data, and no picture of them */
    static char gps[64][256];
    int n = list_dir(dir, ".gp", gps, 64), n_maps = 0;
    for (int i = 0; i < n; i++) {
        if (strncmp(gps[i], "map-", 4)) continue;
        char name[300];
        snprintf(name, sizeof name, "%.*s.bin", (int)strlen(gps[i]) - 3, gps[i]);
        cr_expect(exists_in(dir, name), "%s missing", name);
        snprintf(name, sizeof name, "%.*s.png", (int)strlen(gps[i]) - 3, gps[i]);
        cr_expect(!exists_in(dir, name), "%s drawn without gnuplot", name);
        n_maps++;
    }
    cr_expect_geq(n_maps, 1);
    char *md = slurp_in(dir, "report.md");
    cr_expect(md && strstr(md, "not rendered") != NULL);
    free(md);
}

Test(report, failed_gnuplot_leaves_no_picture)
{
    fixture();
    /* a gnuplot that writes half a picture and fails */
    const char *bin = t_path("fake-gnuplot");
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && printf '#!/bin/sh\\necho half > \"$4\"\\necho "
             "\"line 1: boom\" >&2\\nexit 1\\n' > '%s/gnuplot' && chmod +x '%s/gnuplot'",
             bin, bin, bin);
    cr_assert_eq(system(cmd), 0);
    const char *dir = report_dir("rep-badgnuplot");
    setenv("PATH", bin, 1);
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s'", fx_res, dir);
    cr_expect_eq(st, 70, "%s", err);
    cr_expect(strstr(err, "boom") != NULL, "%s", err);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    static char names[128][256];
    cr_expect_eq(list_dir(dir, ".tmp", names, 128), 0, "temporary files left");
    int n = list_dir(dir, ".png", names, 128);
    for (int i = 0; i < n; i++)
        cr_expect(strncmp(names[i], "frontier", 8) && strncmp(names[i], "isoflops", 8) &&
                      strncmp(names[i], "map-", 4),
                  "%s left by a failed gnuplot", names[i]);
    cr_expect(exists_in(dir, "report.md") && exists_in(dir, "frontier-static.gp"));
}

Test(report, bad_inputs_have_their_exit_statuses)
{
    fixture();
    char *out, *err;
    const char *dir = report_dir("rep-bad");
    cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s'", t_path("missing.h5"), dir), 66, "%s",
                 err);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    const char *text = t_path("not-hdf5.h5");
    FILE *f = fopen(text, "w");
    cr_assert(f);
    fputs("hello\n", f);
    fclose(f);
    cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s'", text, dir), 65, "%s", err);
    cr_expect(strstr(err, "not-hdf5.h5") != NULL, "%s", err);
    free(out), free(err);
    /* a folder under a regular file cannot be made */
    char under[1300];
    snprintf(under, sizeof under, "%s/sub", text);
    cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s'", fx_res, under), 73, "%s", err);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    /* nothing written where the inputs failed */
    static char names[16][256];
    cr_expect_eq(list_dir(dir, ".png", names, 16), 0);
    cr_expect_eq(list_dir(dir, ".tmp", names, 16), 0);
    /* usage */
    cr_expect_eq(t_run(&out, &err, "report '%s'", fx_res), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "report -o '%s'", dir), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s' --maps 1", fx_res, dir), 64, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s' --map-methods nope", fx_res, dir), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s' --budget 0", fx_res, dir), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s' --workload '%s'", fx_res, dir,
                       t_path("nowork.h5")), 66);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s' --maps 7:0", fx_res, dir), 64, "%s", err);
    cr_expect(strstr(err, "7:0") != NULL, "%s", err);
    free(out), free(err);
    cr_expect(!t_exists(dir), "a failed report left its folder behind");
}

Test(report, chosen_maps_and_masks)
{
    fixture();
    const char *dir = report_dir("rep-maps");
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s' --workload '%s' --maps 1:2,0:3 "
                               "--map-methods window,quest --map-size 128",
                   fx_res, dir, fx_work);
    cr_assert(st == 0 || st == 69, "%d %s", st, err);
    free(out), free(err);
    const char *expect[] = {"map-L1-H2", "map-L1-H2-window", "map-L1-H2-quest",
                            "map-L0-H3", "map-L0-H3-window", "map-L0-H3-quest"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        char p[2048];
        /* the data: 256 keys pooled to 128 columns; prefill 128 rows, quest decodes 64 */
        snprintf(p, sizeof p, "%s/%s.bin", dir, expect[i]);
        struct t_matrix m;
        cr_assert_eq(t_matrix_read(p, &m), 0, "%s", p);
        int decode = strstr(expect[i], "quest") != NULL;
        cr_expect(m.width == 128 && m.height == (decode ? 64 : 128), "%s: %lld x %lld", expect[i],
                  (long long)m.width, (long long)m.height);
        if (decode)
            cr_expect(m.y[0] == 192 && m.y[63] == 255, "%s: rows %g..%g", expect[i], m.y[0],
                      m.y[63]);
        t_matrix_free(&m);
        snprintf(p, sizeof p, "%s/%s.png", dir, expect[i]);
        uint32_t w, h;
        png_size(p, &w, &h);
        if (st == 0) cr_expect(w == 900 && h == 800, "%s: %ux%u", expect[i], w, h);
    }
    /* the kept-mask script's title names method, phase, budget, ratio and recall */
    char *gp = slurp_in(dir, "map-L1-H2-quest.gp");
    cr_assert(gp);
    cr_expect(strstr(gp, "\"quest, decode, budget 1/8: FLOP ratio ") && strstr(gp, ", recall "),
              "%.600s", gp);
    cr_expect(strstr(gp, "layer 1, head 2") && strstr(gp, "\"kept\"") &&
                  strstr(gp, "\"dropped\"") && strstr(gp, "\"masked\""),
              "%.600s", gp);
    free(gp);
    char *md = slurp_in(dir, "report.md");
    cr_assert(md);
    cr_expect(strstr(md, "(map-L1-H2-quest.png)") && strstr(md, "decode"), "quest maps decode");
    free(md);
}

Test(report, two_results_files_merge)
{
    fixture();
    const char *dir = report_dir("rep-two");
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' '%s' -o '%s'", fx_res, fx_res, dir);
    cr_assert(st == 0 || st == 69, "%d %s", st, err);
    free(out), free(err);
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(fx_res, &r), 0);
    char *csv = slurp_in(dir, "cells.csv");
    cr_assert(csv);
    cr_expect_eq(t_count_lines(csv), 1 + 2 * r.n_cells);
    free(csv);
    ab_results_free(&r);
}

/* Adds a /heads table (layer, head, sink_score, entropy) to a copy of the results. */
static void add_heads(const char *path, int64_t n_layer, int64_t n_head, double *sink)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t g = H5Gcreate2(f, "/heads", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(g >= 0);
    int64_t n = n_layer * n_head, layer[64], head[64];
    double ent[64];
    for (int64_t i = 0; i < n; i++) {
        layer[i] = i / n_head, head[i] = i % n_head;
        sink[i] = i % 3 == 0 ? 0.6 : 0.1;
        ent[i] = 1 + 0.1 * (double)i;
    }
    hsize_t dim = (hsize_t)n;
    hid_t s = H5Screate_simple(1, &dim, NULL);
    const char *names[] = {"layer", "head", "sink_score", "entropy"};
    const void *data[] = {layer, head, sink, ent};
    for (int c = 0; c < 4; c++) {
        hid_t t = c < 2 ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
        hid_t d = H5Dcreate2(g, names[c], t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        cr_assert(d >= 0 && H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, data[c]) >= 0);
        H5Dclose(d);
    }
    H5Sclose(s);
    H5Gclose(g);
    H5Fclose(f);
}

Test(report, head_statistics_and_sink_ratio)
{
    fixture();
    const char *copy = t_path("with-heads.h5");
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", fx_res, copy);
    cr_assert_eq(system(cmd), 0);
    double sink[64];
    add_heads(copy, 2, 4, sink);
    const char *dir = report_dir("rep-heads");
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s'", copy, dir);
    cr_assert(st == 0 || st == 69, "%d %s", st, err);
    free(out), free(err);
    int over = 0;
    for (int i = 0; i < 8; i++) over += sink[i] > 0.3;
    char want[80];
    snprintf(want, sizeof want, "**%.1f%%** of 8 heads", 100.0 * over / 8);
    char *md = slurp_in(dir, "report.md");
    cr_assert(md);
    cr_expect(strstr(md, want) != NULL, "report.md lacks '%s'", want);
    cr_expect(strstr(md, "(heads-sink.tsv)") && strstr(md, "(heads-entropy.tsv)"), "%s", md);
    cr_expect(strstr(md, "(heads-stats.png)") != NULL);
    free(md);
    /* the numbers behind the panels: the sink score of every head, layer by layer */
    cr_expect(!exists_in(dir, "heads-sink.png"), "a picture without axes");
    char *t = slurp_in(dir, "heads-sink.tsv");
    cr_assert(t);
    char *line = t;
    for (int l = 0; l < 2; l++) {
        while (*line == '#') line = strchr(line, '\n') + 1;
        for (int h = 0; h < 4; h++) {
            char *end;
            double x = strtod(line, &end);
            cr_expect_float_eq(x, sink[l * 4 + h], 1e-12, "layer %d head %d", l, h);
            line = end + 1;
        }
    }
    free(t);
}

/* Pixels of a PNG (any colour type, through libpng's simplified API) within 6 of rgb. */
static int64_t count_rgb(const char *path, int r, int g, int b)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) return -1;
    img.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&img);
        return -1;
    }
    int64_t n = 0;
    for (size_t i = 0; i < (size_t)img.width * img.height; i++)
        n += abs(buf[3 * i] - r) <= 6 && abs(buf[3 * i + 1] - g) <= 6 &&
             abs(buf[3 * i + 2] - b) <= 6;
    free(buf);
    return n;
}

Test(report, head_statistics_of_one_layer_are_drawn)
{
    if (!have_gnuplot()) cr_skip_test("gnuplot is not installed");
    fixture();
    const char *copy = t_path("one-layer-heads.h5");
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", fx_res, copy);
    cr_assert_eq(system(cmd), 0);
    double sink[64];
    add_heads(copy, 1, 4, sink);
    const char *dir = report_dir("rep-heads-one");
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s'", copy, dir);
    cr_assert_eq(st, 0, "%d %s", st, err);
    free(out), free(err);
    /* each panel scales to its own range: the largest value's cell is the last viridis colour,
     * a whole cell of it (the colour box alone holds a sliver) */
    char p[2048];
    snprintf(p, sizeof p, "%s/heads-stats.png", dir);
    int64_t bright = count_rgb(p, 0xfd, 0xe7, 0x25);
    cr_expect_gt(bright, 400, "%lld bright pixels: the one-layer grids are blank",
                 (long long)bright);
}

/* ---------------------------------------------------------------- render --method */

/* The number after `key` in s (e.g. "recall 0.319"), NaN when absent. */
static double number_after(const char *s, const char *key)
{
    const char *p = s ? strstr(s, key) : NULL;
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

Test(render, kept_mask_of_a_method)
{
    if (!have_gnuplot()) cr_skip_test("gnuplot is not installed");
    fixture();
    char *out, *err;
    const char *png = t_path("mask-window.png"), *bin = t_path("mask-window.bin"),
               *gpp = t_path("mask-window.gp");
    cr_assert_eq(t_run(&out, &err, "render '%s' --layer 1 --head 2 --method window --budget "
                                   "0.125 -o '%s'", fx_work, png), 0, "%s", err);
    cr_expect(strstr(out, png) != NULL);
    double recall_said = number_after(err, "recall ");
    free(out), free(err);
    uint32_t pw, ph;
    png_size(png, &pw, &ph);
    cr_expect(pw == 900 && ph == 800, "%ux%u", pw, ph);
    /* no pooling (256 tokens, --size 512): one pixel per (query row, key) */
    struct t_matrix m;
    cr_assert_eq(t_matrix_read(bin, &m), 0);
    cr_assert(m.width == 256 && m.height == 256, "%lldx%lld", (long long)m.width,
              (long long)m.height);
    /* the window keeps the diagonal: the last row's last key is kept, its first key dropped;
     * the first row cannot see the last key */
    const float *last = m.v + 255 * 256;
    cr_expect(last[255] > 0 && last[0] < 0, "%g %g", last[255], last[0]);
    cr_expect(isnan(m.v[255]));
    /* every row: kept keys form one run ending at the diagonal (a window), masked past it */
    double mass = 0;
    for (int64_t r = 0; r < 256; r++) {
        const float *row = m.v + r * 256;
        int64_t first_kept = -1;
        for (int64_t j = 0; j < 256; j++) {
            if (j > r) {
                cr_assert(isnan(row[j]), "row %lld key %lld", (long long)r, (long long)j);
                continue;
            }
            if (row[j] > 0 && first_kept < 0) first_kept = j;
            if (first_kept >= 0)
                cr_assert_gt(row[j], 0, "row %lld key %lld", (long long)r, (long long)j);
            if (row[j] > 0) mass += row[j];
        }
        cr_assert_geq(first_kept, 0, "row %lld keeps nothing", (long long)r);
    }
    /* the recall the title and stderr state is the mass of the kept cells of the data */
    mass /= 256;
    char *gp = (char *)t_slurp(gpp, NULL);
    cr_assert(gp);
    cr_expect(strstr(gp, "\"window, prefill, budget 1/8: FLOP ratio ") != NULL, "%.400s", gp);
    double recall_title = number_after(gp, ", recall ");
    cr_expect(fabs(recall_title - mass) < 5e-3 * mass, "title %g, data %g", recall_title,
              mass); /* 3 digits in the title, 4 on stderr */
    cr_expect(fabs(recall_said - mass) < 5e-4 * mass, "stderr %g, data %g", recall_said, mass);
    free(gp);
    t_matrix_free(&m);

    /* a decode-only method draws its decode rows: 64 of them, positions 192..255 */
    const char *q = t_path("mask-quest.png");
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 1 --method quest --budget 0.25 "
                                   "-o '%s'", fx_work, q), 0, "%s", err);
    free(out), free(err);
    png_size(q, &pw, &ph);
    cr_expect(pw == 900 && ph == 800, "%ux%u", pw, ph);
    cr_assert_eq(t_matrix_read(t_path("mask-quest.bin"), &m), 0);
    cr_expect(m.width == 256 && m.height == 64 && m.y[0] == 192 && m.y[63] == 255,
              "%lld x %lld, rows %g..%g", (long long)m.width, (long long)m.height, m.y[0], m.y[63]);
    int kept = 0, dropped = 0;
    for (int64_t i = 0; i < m.width * m.height; i++) kept += m.v[i] > 0, dropped += m.v[i] < 0;
    cr_expect(kept > 0 && dropped > 0, "quest at 1/4 keeps some keys and drops others");
    t_matrix_free(&m);
}

/* The column of the largest value of row r of m (NaN cells skipped). */
static int64_t argmax_col(const struct t_matrix *m, int64_t r)
{
    int64_t best = -1;
    for (int64_t x = 0; x < m->width; x++) {
        float v = m->v[r * m->width + x];
        if (!isnan(v) && (best < 0 || v > m->v[r * m->width + best])) best = x;
    }
    return best;
}

Test(render, pooled_maximum_sits_at_the_planted_needle_and_sink)
{
    if (!have_gnuplot()) cr_skip_test("gnuplot is not installed");
    fixture();
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(fx_work, &w), 0, "%s", ab_errmsg());
    /* a retrieve task and a query head of the kv head it is planted in */
    int64_t t = -1, layer = -1, head = -1;
    for (int64_t i = 0; i < w.tasks.n && t < 0; i++)
        if (w.tasks.kind[i] == AB_TASK_RETRIEVE) t = i;
    cr_assert_geq(t, 0, "the fixture has no retrieve task");
    for (int64_t l = 0; l < w.n_layer && layer < 0; l++)
        for (int64_t h = 0; h < w.n_head && layer < 0; h++)
            if (w.tasks.planted[l * w.n_kv_head + ab_workload_kv_of(&w, h)]) layer = l, head = h;
    cr_assert_geq(layer, 0, "no planted head");
    int64_t row = w.tasks.row[t], key = w.tasks.key_pos[w.tasks.key_off[t]];
    cr_assert_eq(w.n_seq, 256);
    ab_workload_free(&w);
    /* unpooled, then pooled 4 x 4 */
    struct t_matrix m[2];
    const int64_t sizes[] = {256, 64};
    for (int s = 0; s < 2; s++) {
        const char *png = t_path("needle.png");
        char *out, *err;
        cr_assert_eq(t_run(&out, &err, "render '%s' --layer %lld --head %lld --size %lld -o '%s'",
                           fx_work, (long long)layer, (long long)head, (long long)sizes[s], png),
                     0, "%s", err);
        free(out), free(err);
        cr_assert_eq(t_matrix_read(t_path("needle.bin"), &m[s]), 0);
        cr_assert(m[s].width == sizes[s] && m[s].height == sizes[s]);
    }
    /* the task row peaks at its needle */
    cr_expect_eq(argmax_col(&m[0], row), key, "query %lld peaks at key %lld, the needle is %lld",
                 (long long)row, (long long)argmax_col(&m[0], row), (long long)key);
    /* every pooled pixel is the largest cell of its 4 x 4 block, so the needle's pixel holds
     * at least the needle's weight */
    for (int64_t y = 0; y < 64; y++)
        for (int64_t x = 0; x < 64; x++) {
            float mx = NAN;
            for (int64_t i = 4 * y; i < 4 * y + 4; i++)
                for (int64_t j = 4 * x; j < 4 * x + 4; j++) {
                    float v = m[0].v[i * 256 + j];
                    if (!isnan(v) && !(v <= mx)) mx = v;
                }
            float got = m[1].v[y * 64 + x];
            cr_assert(isnan(mx) ? isnan(got) : got == mx, "pixel (%lld, %lld): %g, block max %g",
                      (long long)y, (long long)x, got, mx);
        }
    cr_expect_geq(m[1].v[(row / 4) * 64 + key / 4], m[0].v[row * 256 + key]);
    cr_expect_gt(m[0].v[row * 256 + key], 0.5, "a needle takes most of its row");
    t_matrix_free(&m[0]), t_matrix_free(&m[1]);
    /* a dormant head parks almost everything on token 0: every pooled row peaks in column 0 */
    const char *dw = t_path("dormant.h5"), *png = t_path("sink.png");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err,
                       "gen --profile dormant --layers 1 --heads 1 --kv-heads 1 "
                       "--n 300 --d 16 -o '%s'",
                       dw),
                 0, "%s", err);
    free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0 --size 64 -o '%s'", dw, png), 0,
                 "%s", err);
    free(out), free(err);
    struct t_matrix d;
    cr_assert_eq(t_matrix_read(t_path("sink.bin"), &d), 0);
    cr_expect(d.width == 64 && d.height == 64);
    for (int64_t r = 0; r < d.height; r++)
        cr_expect_eq(argmax_col(&d, r), 0, "row %lld peaks at column %lld", (long long)r,
                     (long long)argmax_col(&d, r));
    t_matrix_free(&d);
}

Test(render, method_errors)
{
    fixture();
    char *out, *err;
    const char *png = t_path("bad.png");
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0 --method nope -o '%s'",
                       fx_work, png), 64);
    cr_expect(strstr(err, "nope") != NULL && t_count_lines(err) == 1, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0 --method window --budget 0 "
                                   "-o '%s'", fx_work, png), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0 --budget 0.5 -o '%s'",
                       fx_work, png), 64);
    free(out), free(err);
    /* dense costs the whole map: it cannot fit under the default budget of 1/8 */
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0 --method dense -o '%s'",
                       fx_work, png), 64);
    cr_expect(strstr(err, "cannot reach") != NULL, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0 --method quest --phase "
                                   "prefill -o '%s'", fx_work, png), 64);
    free(out), free(err);
    /* a budget the method cannot reach on this head */
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0 --method vertical-slash "
                                   "--budget 0.001 -o '%s'", fx_work, png), 64);
    cr_expect(strstr(err, "cannot reach") != NULL, "%s", err);
    free(out), free(err);
    cr_expect(!t_exists(png) && !t_tmp_left(png));
}

/* ---------------------------------------------------------------- hand-built results */

/* A results table built cell by cell: reproducible root attributes, G = 1024. */
static void hb_init(struct ab_results *r)
{
    ab_results_init(r);
    r->created_utc = strdup("2000-01-01T00:00:00Z");
    r->hostname = strdup("h");
    r->attnbench_version = strdup("0");
    r->openblas_config = strdup("b");
    r->decode_horizon = 1024;
}

/* `heads` cells (layer 0, heads 0..) of one group, every head with the same values: task_acc
 * the mean of the retrieve and aggregate accuracies; infeasible cells (reason != NULL) carry
 * no metrics. */
static void hb_cells(struct ab_results *r, const char *workload, int64_t n, int heads,
                     const char *method, const char *family, const char *phase, double target,
                     double rel, double retrieve, double aggregate, const char *reason)
{
    int dense = !strcmp(family, "dense"), ok = reason == NULL;
    double ratio = dense ? 1 : 0.95 * target;
    for (int h = 0; h < heads; h++) {
        struct ab_cell c = {
            .workload = (char *)workload, .n = n, .layer = 0, .head = h, .kv_head = h,
            .method = (char *)method, .family = (char *)family, .phase = (char *)phase,
            .knob_name = dense ? "" : "k", .knob = dense ? NAN : 1, .target_ratio = target,
            .flop_ratio = ratio, .flop_ratio_step = ratio, .flops_attend = 1e6 * ratio,
            .bytes_kv = 1e6 * ratio, .density = ratio, .sparsity = 1 - ratio,
            .compression = 1 / ratio, .rel_l2 = ok ? rel : NAN, .cos_mean = ok ? 1 - rel : NAN,
            .cos_min = ok ? 1 - 2 * rel : NAN, .max_abs = ok ? rel : NAN,
            .recall = ok ? 1 - rel : NAN, .topk_recall = ok ? 1 - rel : NAN,
            .kl = ok ? rel : NAN, .task_kind = "retrieve+aggregate",
            .task_acc = ok ? (retrieve + aggregate) / 2 : NAN,
            .task_acc_retrieve = ok ? retrieve : NAN, .task_acc_multi_retrieve = NAN,
            .task_acc_aggregate = ok ? aggregate : NAN, .n_eval_rows = 64, .time_s = 0,
            .feasible = ok, .reason = ok ? "" : (char *)reason};
        cr_assert_eq(ab_results_add(r, &c), 0);
    }
}

static void hb_write(struct ab_results *r, const char *path)
{
    cr_assert_eq(ab_results_summarise(r), 0);
    cr_assert_eq(ab_results_write_h5(path, r), 0);
    ab_results_free(r);
}

/* The study the answers are checked on: static (window, streaming; prefill and decode) and kv
 * (quest, snapkv; decode) at budgets 1/2 .. 1/20, two lengths (n = 1024 in a.h5, 2048 in
 * b.h5), two heads each, dense at 1. rel_l2 per budget 0.5, 0.2, 0.1, 0.05; task accuracy
 * 1 - rel_l2 for the static methods. */
static void write_study(const char *path)
{
    struct ab_results r;
    hb_init(&r);
    const double b[4] = {0.5, 0.2, 0.1, 0.05};
    const char *wl[2] = {"a.h5", "b.h5"};
    const int64_t n[2] = {1024, 2048};
    for (int w = 0; w < 2; w++) {
        for (int p = 0; p < 2; p++)
            hb_cells(&r, wl[w], n[w], 2, "dense", "dense", p ? "decode" : "prefill", 1, 1e-7, 1,
                     1, NULL);
        const double win_p[4] = {0.05, 0.08, 0.3, 0.6}, win_d[4] = {0.07, 0.2, 0.4, 0.8};
        const double str_p[2][4] = {{0.06, 0.12, 0.2, 0.5}, {0.06, 0.12, 0.08, 0.3}};
        const double str_d[4] = {0.08, 0.25, 0.5, 0.9};
        const double quest[2][4] = {{0.01, 0.02, 0.04, 0.08}, {0.01, 0.02, 0.04, 0.04}};
        const double quest_agg[4] = {1, 1, 0.9, 0.84}, snap[4] = {0.03, 0.06, 0.15, 0.3};
        for (int i = 0; i < 4; i++) {
            hb_cells(&r, wl[w], n[w], 2, "window", "static", "prefill", b[i], win_p[i],
                     1 - win_p[i], 1 - win_p[i], NULL);
            hb_cells(&r, wl[w], n[w], 2, "streaming", "static", "prefill", b[i], str_p[w][i],
                     1 - str_p[w][i], 1 - str_p[w][i], NULL);
            hb_cells(&r, wl[w], n[w], 2, "window", "static", "decode", b[i], win_d[i],
                     1 - win_d[i], 1 - win_d[i], NULL);
            hb_cells(&r, wl[w], n[w], 2, "streaming", "static", "decode", b[i], str_d[i],
                     1 - str_d[i], 1 - str_d[i], NULL);
            hb_cells(&r, wl[w], n[w], 2, "quest", "kv", "decode", b[i], quest[w][i], 1,
                     quest_agg[i], NULL);
            hb_cells(&r, wl[w], n[w], 2, "snapkv", "kv", "decode", b[i], snap[i], 0.9, 0.4,
                     w == 0 && i == 3 ? "smallest knob (C = 1) 0.06" : NULL);
        }
    }
    hb_write(&r, path);
}

/* The text of report.md for the results at path, with the given extra options. */
static char *report_md_of(const char *path, const char *dir_name, const char *extra)
{
    const char *dir = report_dir(dir_name);
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s' %s", path, dir, extra);
    cr_assert(st == 0 || st == 69, "exit %d: %s", st, err);
    free(out), free(err);
    char *md = slurp_in(dir, "report.md");
    cr_assert(md, "no report.md in %s", dir);
    return md;
}

static void expect_in(const char *md, const char *want)
{
    cr_expect(strstr(md, want) != NULL, "report.md lacks\n  %s\nin:\n%.6000s", want, md);
}

Test(report, answers_follow_from_a_hand_built_study)
{
    char res[1200];
    snprintf(res, sizeof res, "%s", t_path("study.h5"));
    write_study(res);
    char *md = report_md_of(res, "rep-study", "");
    /* report.md opens with them */
    const char *opening = "# attnbench report\n\n## Answers\n\n### Which family holds accuracy "
                          "at 10x and 20x?\n";
    cr_expect(!strncmp(md, opening, strlen(opening)), "%.300s", md);
    /* 1. 10x and 20x: pooled over both lengths, only methods feasible on every head */
    expect_in(md, "- **10x (budget 1/10), prefill:** no family holds accuracy. Closest of each: "
                  "static (best rel_l2 0.14, streaming; best task_acc 0.86, streaming). Dense "
                  "task_acc 1.00.\n");
    expect_in(md, "- **10x (budget 1/10), decode:** one family holds accuracy: kv (quest: "
                  "rel_l2 0.04, task_acc 0.95). Not within tolerance: static (best rel_l2 0.4, "
                  "window; best task_acc 0.60, window). Dense task_acc 1.00.\n");
    expect_in(md, "- **20x (budget 1/20), decode:** one family holds accuracy: kv (quest: "
                  "rel_l2 0.06, task_acc 0.92).");
    /* 2. decode against prefill */
    expect_in(md, "Yes: decode tolerates more compression than prefill. Mean rel_l2 <= 0.1 "
                  "holds up to 20x (quest, 0.06) in decode and up to 5x (window, 0.08) in "
                  "prefill; task accuracy >= 90% of dense holds up to 20x (quest, 0.92) in "
                  "decode and up to 5x (window, 0.92) in prefill");
    /* 3. length: streaming reaches 10x at n = 2048 only; the best at 20x falls with n */
    expect_in(md, "- **prefill:** mean rel_l2 <= 0.1 holds up to 5x (window, 0.08) at n = 1024, "
                  "up to 10x (streaming, 0.08) at n = 2048: more compression with length. Task "
                  "accuracy >= 90% of dense holds up to 5x (window, 0.92) at n = 1024, up to 10x "
                  "(streaming, 0.92) at n = 2048: more compression with length. At 20x the best "
                  "mean rel_l2 is 0.5 (streaming, n = 1024), 0.3 (streaming, n = 2048): better "
                  "with length; the best task accuracy 0.50 (streaming, n = 1024), 0.70 "
                  "(streaming, n = 2048): better with length.\n");
    /* decode: quest reaches 20x at both lengths; its error halves, its accuracy does not move */
    expect_in(md, "- **decode:** mean rel_l2 <= 0.1 holds up to 20x (quest, 0.08) at n = 1024, up "
                  "to 20x (quest, 0.04) at n = 2048: the same at every length.");
    expect_in(md, "At 20x the best mean rel_l2 is 0.08 (quest, n = 1024), 0.04 (quest, n = 2048): "
                  "better with length; the best task accuracy 0.92 (quest, n = 1024), 0.92 "
                  "(quest, n = 2048): about the same (within 0.05).\n");
    /* 4. retrieval against aggregation at 10x in decode: snapkv, window, streaming, quest */
    expect_in(md, "- **10x, decode:** retrieval holds up better than aggregation: the best "
                  "method reaches 1.00 on retrieve queries (quest) and 0.90 on aggregate ones "
                  "(quest); over the 4 methods feasible on every head the means are 0.75 and "
                  "0.60.\n");
    /* then G and the rule, the infeasible method with its reason, the figures */
    const char *acc = strstr(md, "## Accounting\n\nDecode costs are amortised over a decode "
                                 "horizon of G = 1024 generated tokens");
    const char *inf = strstr(md, "## Infeasible methods\n\n- **snapkv** (kv; decode): 2 of 16 "
                                 "cells infeasible. Reason: smallest knob (C = 1) 0.06.\n\n");
    const char *figs = strstr(md, "## Figures");
    cr_expect(acc && inf && figs && acc < inf && inf < figs, "order or text of the sections");
    free(md);

    /* one length: the length question cannot be answered, and says so */
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(res, &r), 0);
    struct ab_results one;
    hb_init(&one);
    for (int64_t c = 0; c < r.n_cells; c++)
        if (r.cells[c].n == 2048) cr_assert_eq(ab_results_add(&one, &r.cells[c]), 0);
    ab_results_free(&r);
    snprintf(res, sizeof res, "%s", t_path("study-one.h5"));
    hb_write(&one, res);
    md = report_md_of(res, "rep-study-one", "");
    expect_in(md, "### How does sequence length change it?\n\nThe data cannot answer: one "
                  "length only (n = 2048).\n");
    free(md);
}

/* ---------------------------------------------------------------- --study sink-emergence */

/* A workload as capture writes one (2 layers x 3 heads, 1 kv head, 256 tokens, head dim 8;
 * q, k and v zero: uniform attention), with its description and token 0. */
static void write_capture(const char *path, const char *desc, int32_t tok0)
{
    struct ab_workload w;
    cr_assert_eq(ab_workload_alloc(&w, 2, 3, 1, 256, 8, 8), 0);
    w.tokens = ab_alloc(sizeof(int32_t) * 256);
    cr_assert(w.tokens);
    for (int i = 0; i < 256; i++) w.tokens[i] = i ? 100 + i % 50 : tok0;
    w.source = strdup("capture");
    w.description = strdup(desc);
    w.created_utc = strdup("2000-01-01T00:00:00Z");
    w.version = strdup("0");
    w.causal = 1;
    w.scale = 1 / sqrt(8.0);
    w.seed = 1;
    cr_assert_eq(ab_h5_workload_write(path, &w), 0, "%s", ab_errmsg());
    ab_workload_free(&w);
}

/* One /heads row with sink score and first-token weight `sink`; key and value ratios given;
 * no secondary sink. */
static struct ab_head_row head_row(const char *wl, int64_t l, int64_t h, double sink, double key,
                                   double value)
{
    return (struct ab_head_row){
        .workload = strdup(wl), .layer = l, .head = h, .kv_head = 0, .profile = strdup(""),
        .sink_score = sink, .alpha0 = sink, .alpha1 = 0.01, .alpha2 = 0.01, .alpha3 = 0.01,
        .alpha4 = 0.01, .alpha5 = 0.01, .alpha6 = 0.01, .alpha7 = 0.01, .alpha8 = 0.01,
        .alpha9 = 0.01, .n_sinks = sink > 0.1, .sink_pos = sink > 0.1 ? 0 : -1, .sec_pos1 = -1,
        .sec_pos2 = -1, .sec_pos3 = -1, .sec_pos4 = -1, .sec_alpha1 = NAN, .sec_alpha2 = NAN,
        .sec_alpha3 = NAN, .sec_alpha4 = NAN, .first_weight = sink, .first_weight_norm = 1,
        .entropy = 2, .entropy_norm = 0.5, .locality = 0.5, .vertical_mass = 0.1,
        .slash_mass = 0.1, .value_drain = value, .key_ratio = key, .out_norm = 1,
        .out_norm_norm = 1, .distant_mass = 0.1, .out_dev = 0.1, .retrieval_like = 0,
        .retrieval_score = NAN, .retrieval_head = 0, .echo_score = NAN, .induction_score = NAN,
        .echo_group = NAN, .induction_group = NAN, .sec_lifetime = -1, .sec_lifetime_pos = -1,
        .sec_secondary = -1};
}

/* The sink study's inputs in dir: three captures (start.h5 and late.h5 of one text of model
 * toy, the second a window from token 128 without BOS; other.h5 of model flat) and heads.h5
 * with their /heads rows (sink scores of start: L0 0.45 0.1 0.25, L1 0.35 0.05 0.85; late:
 * 0.01 everywhere; other, 1 x 2 heads: 0.02 0.04), two secondary sinks in start (L0.H2 at
 * 10, L1.H1 at 250) and /layers rows of start. With `sinks` 0 the toy heads are low too. */
static void write_sink_study(const char *dir, int sinks)
{
    char start[1200], late[1200], other[1200], res[1200];
    snprintf(start, sizeof start, "%s/start.h5", dir);
    snprintf(late, sizeof late, "%s/late.h5", dir);
    snprintf(other, sizeof other, "%s/other.h5", dir);
    snprintf(res, sizeof res, "%s/heads.h5", dir);
    write_capture(start, "toy.bin: test model; input: text 'doc.txt', tokens [0, 256) of 384", 1);
    write_capture(late, "toy.bin: test model; input: text 'doc.txt', tokens [128, 384) of 384",
                  77);
    write_capture(other, "flat.gguf: contrast; input: text 'x.txt', 256 tokens", 1);
    struct ab_results r;
    hb_init(&r);
    r.decode_horizon = 0;
    const double s[6] = {0.45, 0.1, 0.25, 0.35, 0.05, 0.85};
    r.heads = calloc(14, sizeof *r.heads);
    cr_assert(r.heads);
    for (int i = 0; i < 6; i++) {
        double x = sinks ? s[i] : 0.01 * (i + 1);
        r.heads[r.n_heads++] = head_row(start, i / 3, i % 3, x, x > 0.3 ? 0.2 : 1.0,
                                        x > 0.3 ? 0.1 : 0.5);
    }
    r.heads[2].sec_pos1 = 10, r.heads[2].sec_alpha1 = 0.15;
    r.heads[4].sec_pos1 = 250, r.heads[4].sec_alpha1 = 0.2;
    r.heads[4].sink_pos = 240, r.heads[4].n_sinks = 2;
    for (int i = 0; i < 6; i++) r.heads[r.n_heads++] = head_row(late, i / 3, i % 3, 0.01, 1, 0.9);
    r.heads[r.n_heads++] = head_row(other, 0, 0, 0.02, 1, 1);
    r.heads[r.n_heads++] = head_row(other, 0, 1, 0.04, 1, 1);
    r.layers = calloc(3, sizeof *r.layers);
    cr_assert(r.layers);
    const double top[3] = {0.5, 40, 500};
    for (int l = 0; l < 3; l++)
        r.layers[r.n_layers++] = (struct ab_layer_row){
            .workload = strdup(start), .layer = l, .top1 = -top[l], .top2 = 0.1, .top3 = 0.1,
            .top1_pos = l ? 0 : 9, .top1_dim = 3, .top2_pos = 1, .top2_dim = 1, .top3_pos = 2,
            .top3_dim = 2, .median_abs = 0.5, .n_massive = 0, .n_massive_dims = 0,
            .massive = strdup(""), .sink_pos = 0, .sink_norm = 1, .median_norm = 1,
            .sink_norm_ratio = l ? 6 : 1, .sink_high = l > 0};
    cr_assert_eq(ab_results_write_h5(res, &r), 0);
    ab_results_free(&r);
}

Test(report, sink_emergence_study_from_hand_built_heads)
{
    const char *dir = report_dir("sinks-in");
    mkdir(dir, 0777);
    char in[1200];
    snprintf(in, sizeof in, "%s", dir);
    write_sink_study(in, 1);
    char res[1300], wl[1300];
    snprintf(res, sizeof res, "%s/heads.h5", in);
    snprintf(wl, sizeof wl, "--study sink-emergence --workload '%s/start.h5'", in);
    char *md = report_md_of(res, "rep-sinks", wl);
    expect_in(md, "# attnbench report\n\n## Findings: When Attention Sink Emerges\n\n");
    expect_in(md, "3 workloads of 2 models: toy (start, late); flat (other).");
    /* per layer at 0.3: L0 1 of 3, L1 2 of 3 */
    expect_in(md, "| start | toy | 256 | 33% | 67% | 50.0% (3/6) |\n");
    expect_in(md, "| late | toy | 256 (from 128, no BOS) | 0% | 0% | 0.0% (0/6) |\n");
    expect_in(md, "| other | flat | 256 | 0% | | 0.0% (0/2) |\n");
    expect_in(md, "- **toy**: 50.0% of the heads are sinks at epsilon 0.3 (3 of 6 heads over its "
                  "1 workload from the start of a text), in layers 0 and 1 only (sink heads in "
                  "some workload: L0.H0, L1.H0, L1.H2).");
    /* the sweep: > 0.1 and > 0.2: 4 heads; 0.4: 2; 0.5 .. 0.8: 1; 0.9: none */
    expect_in(md, "| start | 66.7% | 66.7% | 50.0% | 33.3% | 16.7% | 16.7% | 16.7% | 16.7% | "
                  "0.0% |\n");
    expect_in(md, "the last sink heads go above epsilon 0.8 (the strongest: alpha(0) 0.850, "
                  "L1.H2 on start)");
    /* first-token weight: the sink heads' mean from the start and in the late window */
    expect_in(md, "| start | toy | 50.0% | 0.342 | 0.550 | L1.H2 0.850, L0.H0 0.450, L1.H0 "
                  "0.350 |\n");
    expect_in(md, "position 0 holds token id 77 where start has token id 1 (its first token)");
    expect_in(md, "put a mean first-token weight of 0.010 on position 0 there against 0.550 "
                  "from the start (2% of it): **the sink does not follow position 0**");
    /* norms: medians of the hand-set ratios */
    expect_in(md, "| start | 3 | 0.200 | 1.000 | 0.100 | 0.500 |\n");
    expect_in(md, "in the sink heads the sink token's value norm is 0.100 of the other tokens' "
                  "mean (median value_drain), smaller than the other heads' 0.500: a small "
                  "value, as Gu et al. find");
    /* secondary sinks: the later one is seen by 6 rows */
    expect_in(md, "| start | L1.H1 | 240 | 250 | 0.200 | 6 of 256 |\n");
    expect_in(md, "| start | L0.H2 | 0 | 10 | 0.150 | 246 of 256 |\n");
    expect_in(md, "1 of the 2 whose workload length is known lie in the last 64 positions");
    /* the contrast and the hidden states */
    expect_in(md, "No sink on flat: its largest first-token weight is 0.040 (L0.H1 on other), "
                  "and the sink ratio at epsilon 0.3 is 0.0% (0 of 2 heads).");
    expect_in(md, "- **start**: the largest activation is 500 (hidden state 2, dim 3, position "
                  "0), 1000x the median |x| of that state; the largest |x| sits at the sink "
                  "position (0) in 2 of 3 hidden states.");
    expect_in(md, "The strongest sink head of start (the report's workload, on toy) is L1.H2 "
                  "with alpha(0) 0.850");
    expect_in(md, "Reproduce: `attnbench scenario scenarios/sinks.yaml`");
    /* the figures follow the findings, before the Answers */
    const char *fig = strstr(md, "](sinks-epsilon.png)"), *ans = strstr(md, "## Answers");
    cr_expect(fig && ans && fig < ans, "sinks-epsilon.png not between the findings and Answers");
    free(md);
    const char *out = t_path("rep-sinks");
    char *tsv = slurp_in(out, "sinks-first-weight.tsv");
    cr_assert(tsv, "no sinks-first-weight.tsv");
    cr_expect(strstr(tsv, "0.45\t0.1\t0.25\n0.35\t0.05\t0.85\n") != NULL, "%s", tsv);
    free(tsv);
    char *gp = slurp_in(out, "sinks-first-weight.gp");
    cr_assert(gp);
    cr_expect(strstr(gp, "set xlabel \"head\"") && strstr(gp, "set ylabel \"layer\"") &&
                  strstr(gp, "set cbrange [0:0.9]") && strstr(gp, "set xtics 0,1,2"),
              "%.2000s", gp);
    free(gp);
    cr_expect(exists_in(out, "sinks-epsilon.gp") && exists_in(out, "sinks-map-L1-H2.gp"));

    /* no sink anywhere: the study says so instead of inventing one */
    const char *dir2 = report_dir("sinks-none-in");
    mkdir(dir2, 0777);
    snprintf(in, sizeof in, "%s", dir2);
    write_sink_study(in, 0);
    snprintf(res, sizeof res, "%s/heads.h5", in);
    md = report_md_of(res, "rep-sinks-none", "--study sink-emergence");
    expect_in(md, "- toy has no sink head (no alpha(0) above 0.3 in a workload from the start "
                  "of a text).");
    expect_in(md, "No sink on toy: its largest first-token weight is 0.060 (L1.H2 on start)");
    expect_in(md, "- **toy**: no sink heads, so no sink token to measure.");
    expect_in(md, "The model has no sink heads to follow.");
    free(md);
}

/* ---------------------------------------------------------------- --study sparse-frontier */

/* One /model row of the frontier: ppl (NaN: infeasible) on `input` next to dense's. */
static void fr_row(struct ab_results *r, const char *input, const char *method,
                   const char *family, const char *phase, double target, double ppl,
                   double dense_ppl, double copy, double dense_copy, const char *heads)
{
    int ok = isfinite(ppl);
    struct ab_model_row row = {
        .workload = (char *)input, .model = "m.gguf", .method = (char *)method,
        .family = (char *)family, .phase = (char *)phase, .knob_name = "", .knob = NAN,
        .target_ratio = target, .flop_ratio = target * 0.98, .bytes_kv = 1,
        .heads = (char *)heads, .head_list = "", .n_heads = 48, .heads_feasible = ok ? 48 : 40,
        .feasible = ok, .reason = ok ? "" : "smallest knob (C = 1) 0.06", .n_tokens = 101,
        .n_scored = 100, .nll = ok ? log(ppl) : NAN, .ppl = ppl, .acc = ok ? 0.5 : NAN,
        .copy_acc = ok ? copy : NAN, .dense_nll = log(dense_ppl), .dense_ppl = dense_ppl,
        .dense_acc = 0.6, .dense_copy_acc = dense_copy, .rel_l2 = 0.1, .time_s = 0};
    cr_assert_eq(ab_results_add_model(r, &row), 0);
}

/* The frontier study: attention-level cells (prefill: streaming, block-topk, vertical-slash;
 * decode: streaming, quest) at 1/2, 1/10, 1/20 and /model rows of the same methods on a text
 * (dense ppl 10 in prefill, 8 in decode) and a copy task (dense 1), an infeasible snapkv row,
 * and act / zerotuning in heads selected on another text. */
static void write_frontier_study(const char *path, int with_model)
{
    struct ab_results r;
    hb_init(&r);
    const double b[3] = {0.5, 0.1, 0.05};
    const char *pm[3] = {"streaming", "block-topk", "vertical-slash"};
    const char *pf[3] = {"static", "dynamic", "dynamic"};
    const double rel_p[3][3] = {{0.05, 0.2, 0.4}, {0.03, 0.1, 0.3}, {0.02, 0.08, 0.15}};
    const double ppl_p[3][3] = {{10.2, 12, 15}, {10.15, 11, 10.9}, {10.1, 10.4, 11}};
    const double copy_p[3][3] = {{0.9, 0.3, 0.1}, {0.99, 0.9, 0.85}, {1.0, 0.97, 0.8}};
    const char *dm[2] = {"streaming", "quest"};
    const char *df[2] = {"static", "kv"};
    const double rel_d[2][3] = {{0.1, 0.4, 0.6}, {0.01, 0.03, 0.05}};
    const double ppl_d[2][3] = {{7.6, 12, 16}, {8.0, 8.1, 8.3}};
    const double copy_d[2][3] = {{0.5, 0.1, 0.05}, {1, 0.98, 0.96}};
    for (int p = 0; p < 2; p++)
        hb_cells(&r, "a.h5", 1024, 2, "dense", "dense", p ? "decode" : "prefill", 1, 1e-7, 1, 1,
                 NULL);
    for (int i = 0; i < 3; i++) {
        for (int m = 0; m < 3; m++)
            hb_cells(&r, "a.h5", 1024, 2, pm[m], pf[m], "prefill", b[i], rel_p[m][i], 1, 1, NULL);
        for (int m = 0; m < 2; m++)
            hb_cells(&r, "a.h5", 1024, 2, dm[m], df[m], "decode", b[i], rel_d[m][i], 1, 1, NULL);
    }
    if (with_model) {
        for (int i = 0; i < 3; i++) {
            for (int m = 0; m < 3; m++) {
                fr_row(&r, "doc.txt", pm[m], pf[m], "prefill", b[i], ppl_p[m][i], 10, NAN, NAN,
                       "all");
                fr_row(&r, "copy-50", pm[m], pf[m], "prefill", b[i], 20, 19, copy_p[m][i], 1,
                       "all");
            }
            for (int m = 0; m < 2; m++) {
                fr_row(&r, "doc.txt", dm[m], df[m], "decode", b[i], ppl_d[m][i], 8, NAN, NAN,
                       "all");
                fr_row(&r, "copy-50", dm[m], df[m], "decode", b[i], 20, 19, copy_d[m][i], 1,
                       "all");
            }
        }
        fr_row(&r, "doc.txt", "snapkv", "kv", "decode", 0.05, NAN, 8, NAN, NAN, "all");
        fr_row(&r, "doc.txt", "act", "calibration", "prefill", 1, 10.05, 10, NAN, NAN,
               "selected on some/dir/cal.txt: 6 heads");
        fr_row(&r, "doc.txt", "zerotuning", "calibration", "prefill", 1, 9.8, 10, NAN, NAN,
               "selected on cal.txt: 6 heads");
    }
    hb_write(&r, path);
}

Test(report, sparse_frontier_study_from_hand_built_rows)
{
    char res[1200];
    snprintf(res, sizeof res, "%s", t_path("frontier-study.h5"));
    write_frontier_study(res, 1);
    char *md = report_md_of(res, "rep-frontier", "--study sparse-frontier");
    expect_in(md, "# attnbench report\n\n## Findings: The Sparse Frontier\n\n");
    /* the prefill table: every method's three numbers, the best at each level */
    expect_in(md, "| compression | streaming | block-topk | vertical-slash | best rel_l2 | best "
                  "perplexity | best copy_acc |\n");
    expect_in(md, "| 10x (1/10) | 0.2 · 1.20x · 0.30 | 0.1 · 1.10x · 0.90 | 0.08 · 1.04x · 0.97 | "
                  "vertical-slash 0.08 | vertical-slash 1.04x | vertical-slash 0.97 |\n");
    expect_in(md, "| 20x (1/20) | 0.4 · 1.50x · 0.10 | 0.3 · 1.09x · 0.85 | 0.15 · 1.10x · 0.80 | "
                  "vertical-slash 0.15 | block-topk 1.09x | block-topk 0.85 |\n");
    /* decode: snapkv has an end-to-end row only, without a score */
    expect_in(md, "| 20x (1/20) | 0.6 · 2.00x · 0.05 | 0.05 · 1.04x · 0.96 | - · inf. · - | quest "
                  "0.05 | quest 1.04x | quest 0.96 |\n");
    /* who holds at 10x and 20x */
    expect_in(md, "- **10x, prefill:** perplexity vertical-slash (10.4, 1.04x); copy accuracy "
                  "vertical-slash (0.97).\n");
    expect_in(md, "- **20x, prefill:** perplexity none (best: block-topk, 10.9, 1.09x); copy "
                  "accuracy none (best: block-topk, 0.85).\n");
    expect_in(md, "- **20x, decode:** perplexity quest (8.3, 1.04x); copy accuracy quest "
                  "(0.96).\n");
    /* rankings: the same order at 2x and 10x, two methods swapped at 20x */
    expect_in(md, "- **prefill, perplexity:** the best method by rel_l2 is the best end to end "
                  "at 2 of 3 compressions; rank correlation 2x 1.00, 10x 1.00, 20x 0.50 (mean "
                  "0.83 over 3 compressions): the attention level predicts the order well.\n");
    expect_in(md, "- **decode, perplexity:** the best method by rel_l2 is the best end to end "
                  "at 2 of 3 compressions (fewer than 3 methods with both numbers: no rank "
                  "correlation).\n");
    /* a perplexity below dense's is named */
    expect_in(md, "- **decode:** 1 row scores a perplexity more than 2% below dense's (lowest: "
                  "streaming at 2x, 7.6 against 8, 0.95x)");
    /* decode against prefill */
    expect_in(md, "- **perplexity:** holds up to 20x in decode (quest), up to 10x in prefill "
                  "(vertical-slash): decode tolerates more compression.\n");
    /* the row without a score, and the calibration rows */
    expect_in(md, "| snapkv | decode | doc.txt | 20x | 40 of 48 | smallest knob (C = 1) 0.06 |\n");
    /* the calibration text by its file name */
    expect_in(md, "- **act** in 48 heads (selected on cal.txt: 6 heads): perplexity 10.05 "
                  "against dense 10 on doc.txt, +0.50%: no measurable effect (within 1% of "
                  "dense): the heads chosen on one text do not carry a gain to another, "
                  "calibration does not help on this model.\n");
    expect_in(md, "- **zerotuning** in 48 heads (selected on cal.txt: 6 heads): perplexity 9.8 "
                  "against dense 10 on doc.txt, -2.00%: calibration helps on this model.\n");
    expect_in(md, "Reproduce: `attnbench scenario scenarios/real-model.yaml`");
    free(md);
    const char *out = t_path("rep-frontier");
    char *gp = slurp_in(out, "frontier-e2e.gp");
    cr_assert(gp, "no frontier-e2e.gp");
    cr_expect(strstr(gp, "set logscale y") && strstr(gp, "\"20x\" 20"), "%.3000s", gp);
    free(gp);

    /* attention level only: the end-to-end questions are not answered, and it says so */
    snprintf(res, sizeof res, "%s", t_path("frontier-attn.h5"));
    write_frontier_study(res, 0);
    md = report_md_of(res, "rep-frontier-attn", "--study sparse-frontier");
    expect_in(md, "The results have no end-to-end rows at a budget below 1 (`eval-model`)");
    expect_in(md, "| 10x (1/10) | 0.2 · - · - | 0.1 · - · - | 0.08 · - · - | vertical-slash "
                  "0.08 | - | - |\n");
    expect_in(md, "The data has no such rows (eval-model with heads_select");
    free(md);
}

/* The 12 dynamic methods of the registry in prefill at three budgets, dense at 1: rel_l2 of
 * method m at budget i is rel_of(m, i), so the best method changes with the budget. */
static const char *const dynamic12[12] = {
    "block-topk", "block-oracle", "vertical-slash", "flexprefill", "xattention", "hip",
    "routing",    "hyper",        "sale",           "permuted-block", "biformer", "dhsa"};
static double rel_of(int m, int i) { return 0.05 + 0.01 * ((m * 7 + i * 5) % 12); }
static double ratio_of(int m, double t) { return t * (0.9 + 0.005 * m); }

static void write_dynamic12(const char *path, double outlier)
{
    struct ab_results r;
    hb_init(&r);
    const double b[3] = {0.5, 0.25, 0.125};
    hb_cells(&r, "w.h5", 512, 2, "dense", "dense", "prefill", 1, 1e-7, 1, 1, NULL);
    for (int m = 0; m < 12; m++)
        for (int i = 0; i < 3; i++) {
            hb_cells(&r, "w.h5", 512, 2, dynamic12[m], "dynamic", "prefill", b[i], rel_of(m, i),
                     1 - rel_of(m, i), 1 - rel_of(m, i), NULL);
            for (int64_t c = r.n_cells - 2; c < r.n_cells; c++) {
                r.cells[c].flop_ratio = r.cells[c].flop_ratio_step = ratio_of(m, b[i]);
                /* one head of one method far off: an outlier */
                if (isfinite(outlier) && m == 11 && i == 0 && c == r.n_cells - 1)
                    r.cells[c].rel_l2 = outlier;
            }
        }
    hb_write(&r, path);
}

/* The plot commands of a script (each with its continuation lines), into cmds (cap). */
static int plot_commands(char *gp, char **cmds, int cap)
{
    int n = 0;
    for (char *p = strstr(gp, "\nplot "); p && n < cap; p = strstr(p + 1, "\nplot ")) {
        char *end = p + 1;
        while ((end = strchr(end, '\n')) && end[-1] == '\\') end++;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        cmds[n] = strndup(p + 1, len);
        n++;
    }
    return n;
}

static int count_of(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

Test(report, a_family_panel_has_at_most_ten_distinct_lines)
{
    char res[1200];
    snprintf(res, sizeof res, "%s", t_path("dynamic12.h5"));
    write_dynamic12(res, NAN);
    const char *dir = report_dir("rep-dyn12");
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s'", res, dir);
    cr_assert(st == 0 || st == 69, "exit %d: %s", st, err);
    free(out), free(err);
    char *gp = slurp_in(dir, "frontier-dynamic.gp");
    cr_assert(gp);
    char *cmds[32];
    int n = plot_commands(gp, cmds, 32), panels = 0, lines = 0;
    for (int i = 0; i < n; i++) {
        if (!strstr(cmds[i], ".tsv\" index")) { /* the key: every method once */
            cr_expect_eq(count_of(cmds[i], "with linespoints"), 12, "%s", cmds[i]);
            free(cmds[i]);
            continue;
        }
        panels++;
        int k = count_of(cmds[i], "with linespoints");
        cr_expect(k >= 1 && k <= 10, "a panel with %d lines:\n%s", k, cmds[i]);
        if (panels <= 2) lines += k; /* the rel_l2 row */
        /* each line its own colour and marker */
        char col[16][16], pt[16][8];
        int m = 0;
        for (char *p = strstr(cmds[i], "with linespoints lc rgb \""); p && m < 16;
             p = strstr(p + 1, "with linespoints lc rgb \"")) {
            sscanf(p, "with linespoints lc rgb \"%15[^\"]\" lw 2 pt %7s", col[m], pt[m]);
            for (int j = 0; j < m; j++) {
                cr_expect(strcmp(col[j], col[m]), "colour %s twice in a panel", col[m]);
                cr_expect(strcmp(pt[j], pt[m]), "marker %s twice in a panel", pt[m]);
            }
            m++;
        }
        free(cmds[i]);
    }
    cr_expect_eq(panels, 4, "2 parts x (rel_l2, task_acc)");
    cr_expect_eq(lines, 12, "the 12 methods, split over the two parts");
    free(gp);
}

Test(report, the_envelope_is_the_best_method_at_each_budget)
{
    char res[1200];
    snprintf(res, sizeof res, "%s", t_path("dynamic12-env.h5"));
    write_dynamic12(res, NAN);
    const char *dir = report_dir("rep-dyn12-env");
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s'", res, dir);
    cr_assert(st == 0 || st == 69, "exit %d: %s", st, err);
    free(out), free(err);
    char *tsv = slurp_in(dir, "frontier-dynamic.tsv");
    cr_assert(tsv);
    /* the first block is the envelope of the first panel (rel_l2, part 1): ascending ratio */
    const char *blk = strstr(tsv, "# block 0: prefill, part 1 of 2 / best of all methods");
    cr_assert(blk, "%.500s", tsv);
    blk = strstr(blk, "# x\ty\n");
    cr_assert(blk);
    blk += 6;
    const double b[3] = {0.125, 0.25, 0.5};
    for (int i = 0; i < 3; i++) {
        int bi = 2 - i; /* rel_of's budget index: 0 is 0.5 */
        double best = INFINITY, x = NAN;
        for (int m = 0; m < 12; m++)
            if (rel_of(m, bi) < best) best = rel_of(m, bi), x = ratio_of(m, b[i]);
        double gx, gy;
        cr_assert_eq(sscanf(blk, "%lf\t%lf", &gx, &gy), 2, "%.200s", blk);
        cr_expect(fabs(gx - x) < 1e-12 && fabs(gy - best) < 1e-12,
                  "budget %g: envelope (%g, %g), the best method (%g, %g)", b[i], gx, gy, x,
                  best);
        blk = strchr(blk, '\n') + 1;
    }
    free(tsv);
}

Test(report, an_outlier_is_listed_not_stretching_the_axis)
{
    char res[1200];
    snprintf(res, sizeof res, "%s", t_path("dynamic12-out.h5"));
    write_dynamic12(res, 1e4); /* dhsa at 1/2: heads 0.07 and 1e4, mean 5000.035 */
    char *md = report_md_of(res, "rep-dyn12-out", "--budget 0.5");
    expect_in(md, "| rel_l2 | dhsa | prefill | all | 1/2: 5e+03 |");
    free(md);
    const char *dir = t_path("rep-dyn12-out");
    char *gp = slurp_in(dir, "frontier-dynamic.gp");
    cr_assert(gp);
    /* every y range of the rel_l2 panels ends at 2 at most */
    for (const char *p = strstr(gp, "\nset logscale y\n"); p;
         p = strstr(p + 1, "\nset logscale y\n")) {
        const char *yr = strstr(p, "set yrange [");
        double lo, hi;
        cr_assert(yr && sscanf(yr, "set yrange [%lf:%lf]", &lo, &hi) == 2);
        cr_expect(hi <= 2 && lo > 0 && lo < hi, "rel_l2 range [%g, %g]", lo, hi);
    }
    free(gp);
    /* dhsa's heads at 1/2 in its own table; the panel crosses the far head (above its scale,
     * which ends at 2), and no axis-less thumbnail is written */
    char *t = slurp_in(dir, "heads-dhsa-prefill-0.5.tsv");
    cr_assert(t);
    cr_expect(strstr(t, "\t10000\n") != NULL, "%s", t);
    free(t);
    cr_expect(!exists_in(dir, "heads-dhsa-prefill-0.5.png"));
    char *hp = slurp_in(dir, "heads-rel_l2-0.5-dynamic.gp");
    cr_assert(hp);
    const char *q = strstr(hp, "; hi = ");
    double hi = NAN;
    cr_expect(q && sscanf(q, "; hi = %lf", &hi) == 1 && hi <= 2, "scale ends at %g", hi);
    cr_expect(strstr(hp, "($3 > hi ? $2 : NaN) with points") != NULL, "no cross for outliers");
    free(hp);
}

Test(report, filters_keep_only_the_named_methods)
{
    fixture();
    const char *dir = report_dir("rep-filter");
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s' --methods window,quest", fx_res, dir);
    cr_assert(st == 0 || st == 69, "exit %d: %s", st, err);
    free(out), free(err);
    char *csv = slurp_in(dir, "cells.csv");
    cr_assert(csv);
    int seen[3] = {0};
    const char *keep[3] = {"dense", "window", "quest"};
    for (char *line = strchr(csv, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        /* the method is the fifth column (workload,n,layer,head,kv_head,method,...) */
        char *f = line + 1;
        for (int k = 0; k < 5 && f; k++) f = strchr(f, ',') ? strchr(f, ',') + 1 : NULL;
        cr_assert(f);
        int which = -1;
        for (int k = 0; k < 3; k++)
            if (!strncmp(f, keep[k], strlen(keep[k])) && f[strlen(keep[k])] == ',') which = k;
        cr_expect(which >= 0, "a cell of another method: %.80s", f);
        if (which >= 0) seen[which]++;
    }
    cr_expect(seen[0] && seen[1] && seen[2], "%d %d %d", seen[0], seen[1], seen[2]);
    free(csv);
    cr_expect(exists_in(dir, "frontier-static.gp") && exists_in(dir, "frontier-kv.gp"));
    cr_expect(!exists_in(dir, "frontier-dynamic.gp"), "vertical-slash was not asked for");
    char *md = slurp_in(dir, "report.md");
    cr_assert(md);
    expect_in(md, "Kept by the filter: methods window, quest, with dense as the reference.");
    free(md);
    /* a family: its methods and dense */
    dir = report_dir("rep-filter-fam");
    st = t_run(&out, &err, "report '%s' -o '%s' --family kv", fx_res, dir);
    cr_assert(st == 0 || st == 69, "exit %d: %s", st, err);
    free(out), free(err);
    csv = slurp_in(dir, "cells.csv");
    cr_assert(csv);
    cr_expect(strstr(csv, ",h2o,") && strstr(csv, ",quest,") && strstr(csv, ",dense,"));
    cr_expect(!strstr(csv, ",window,") && !strstr(csv, ",streaming,") &&
              !strstr(csv, ",vertical-slash,"));
    free(csv);
}

Test(report, unknown_family_or_method_is_a_usage_error_writing_nothing)
{
    fixture();
    const char *dir = report_dir("rep-badfilter");
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s' --family static,foo", fx_res, dir), 64);
    cr_expect_str_eq(err, "error: report: option '--family' has an unknown item 'foo' (static, "
                          "dynamic, kv, linear or calibration)\n");
    cr_expect_str_eq(out, "");
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s' --methods window,nope", fx_res, dir), 64);
    cr_expect_str_eq(err, "error: report: option '--methods': unknown method 'nope' (see "
                          "'attnbench methods')\n");
    free(out), free(err);
    /* known, but not in the results: nothing to report */
    cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s' --family linear", fx_res, dir), 64);
    cr_expect(strstr(err, "no cell of the methods and families asked for") &&
                  t_count_lines(err) == 1,
              "%s", err);
    free(out), free(err);
    cr_expect(!t_exists(dir), "a refused report wrote its folder");
}

Test(report, isoflops_bars_are_sorted_and_few)
{
    char res[1200];
    snprintf(res, sizeof res, "%s", t_path("dynamic12-iso.h5"));
    write_dynamic12(res, NAN);
    const char *dir = report_dir("rep-dyn12-iso");
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s'", res, dir);
    cr_assert(st == 0 || st == 69, "exit %d: %s", st, err);
    free(out), free(err);
    char *tsv = slurp_in(dir, "isoflops-0.25.tsv");
    cr_assert(tsv);
    /* block 0: prefill rel_l2, ascending after dense; block 1: task_acc, descending */
    for (int b = 0; b < 2; b++) {
        char head[32];
        snprintf(head, sizeof head, "# block %d: ", b);
        const char *p = strstr(tsv, head);
        cr_assert(p, "%s", tsv);
        p = strchr(strstr(p, "# y\t"), '\n') + 1;
        double last = b ? INFINITY : -INFINITY;
        int n = 0;
        while (*p && *p != '\n' && *p != '#') {
            double y, v;
            char label[64];
            cr_assert_eq(sscanf(p, "%lf\t%lf\t%*d\t%63[^\t]", &y, &v, label), 3, "%.80s", p);
            if (strncmp(label, "dense", 5)) {
                cr_expect(b ? v <= last : v >= last, "%s (%g) out of order after %g", label, v,
                          last);
                last = v;
            }
            n++;
            p = strchr(p, '\n') + 1;
        }
        cr_expect(n == 13, "12 best methods and dense, got %d bars", n);
    }
    free(tsv);
}

/* ---------------------------------------------------------------- --study */

/* A /model row as eval-model writes it, for the studies: ppl (and copy_acc when the input is a
 * copy task, copy_acc finite); an infeasible row when reason is not NULL (no scores). */
static struct ab_model_row study_row(const char *input, const char *method, const char *phase,
                                     double target, const char *heads, const char *head_list,
                                     double ppl, double dense_ppl, double copy_acc,
                                     double dense_copy_acc, const char *reason)
{
    int ok = reason == NULL;
    return (struct ab_model_row){
        .workload = (char *)input, .model = "m/tiny.gguf", .method = (char *)method,
        .family = !strcmp(method, "uniform-head") ? "calibration" : "static",
        .phase = (char *)phase, .knob_name = "", .knob = NAN, .target_ratio = target,
        .flop_ratio = target * 0.99, .bytes_kv = 1, .heads = (char *)heads,
        .head_list = (char *)head_list, .n_heads = 8, .heads_feasible = ok ? 8 : 0,
        .feasible = ok, .reason = ok ? "" : (char *)reason, .n_tokens = 101, .n_scored = 100,
        .nll = ok ? log(ppl) : NAN, .ppl = ok ? ppl : NAN, .acc = ok ? 0.5 : NAN,
        .copy_acc = ok ? copy_acc : NAN, .dense_nll = log(dense_ppl), .dense_ppl = dense_ppl,
        .dense_acc = 0.6, .dense_copy_acc = dense_copy_acc, .rel_l2 = 0.1, .time_s = 0};
}

/* A /heads row with the columns the studies read (every other statistic 0 or NaN). */
static struct ab_head_row study_head(const char *workload, int64_t layer, int64_t head,
                                     double first_weight, double score, double induction,
                                     int64_t like)
{
    return (struct ab_head_row){
        .workload = (char *)workload, .layer = layer, .head = head, .kv_head = head / 2,
        .profile = "", .sink_score = first_weight, .alpha0 = first_weight, .n_sinks = 0,
        .sink_pos = -1, .sec_pos1 = -1, .sec_pos2 = -1, .sec_pos3 = -1, .sec_pos4 = -1,
        .sec_alpha1 = NAN, .sec_alpha2 = NAN, .sec_alpha3 = NAN, .sec_alpha4 = NAN,
        .first_weight = first_weight, .first_weight_norm = 1, .entropy = 1, .out_dev = 0.1,
        .retrieval_like = like, .retrieval_score = score, .retrieval_head = score > 0.1,
        .echo_score = 0, .induction_score = induction, .echo_group = 0,
        .induction_group = induction, .sec_lifetime = -1, .sec_lifetime_pos = -1,
        .sec_secondary = -1};
}

static void study_add_heads(struct ab_results *r, struct ab_head_row *rows, int n)
{
    r->heads = calloc((size_t)n, sizeof *r->heads);
    cr_assert(r->heads);
    for (int i = 0; i < n; i++) {
        r->heads[i] = rows[i];
        r->heads[i].workload = strdup(rows[i].workload);
        r->heads[i].profile = strdup("");
    }
    r->n_heads = n;
}

/* The streaming-llm inputs: a.h5 (a.txt in one pass: streaming beats the window at both
 * budgets, 16 sinks infeasible at 1/2, best at 1/8; a /heads table with two sinking heads) and
 * b.h5 (b.txt in sliding windows of stride 1024: the window alone is better). Dense 10. */
static void write_streaming_study(const char *a, const char *b)
{
    static const char *const arms[4] = {"window", "streaming-1", "streaming", "streaming-16"};
    const double pa[2][4] = {{12, 11, 10.5, NAN}, {20, 14, 12, 11.5}};
    const double pb[2][4] = {{10.2, 10.3, 10.4, 10.5}, {13, 13.2, 13.5, 14}};
    const double t[2] = {0.5, 0.125};
    for (int f = 0; f < 2; f++) {
        struct ab_results r;
        hb_init(&r);
        r.stride = f ? 1024 : 0;
        for (int i = 0; i < 2; i++)
            for (int m = 0; m < 4; m++) {
                double ppl = f ? pb[i][m] : pa[i][m];
                struct ab_model_row row =
                    study_row(f ? "data/b.txt" : "data/a.txt", arms[m], "decode", t[i], "all", "",
                              ppl, 10, NAN, NAN, isnan(ppl) ? "smallest knob (w = 1) 0.6" : NULL);
                cr_assert_eq(ab_results_add_model(&r, &row), 0);
            }
        if (!f) {
            struct ab_head_row h[4] = {study_head("w.h5", 0, 0, 0.5, NAN, NAN, 0),
                                       study_head("w.h5", 0, 1, 0.1, NAN, NAN, 0),
                                       study_head("w.h5", 1, 0, 0.05, NAN, NAN, 0),
                                       study_head("w.h5", 1, 1, 0.35, NAN, NAN, 0)};
            study_add_heads(&r, h, 4);
        }
        cr_assert_eq(ab_results_write_h5(f ? b : a, &r), 0);
        ab_results_free(&r);
    }
}

Test(report, streaming_llm_study_states_its_finding_from_the_rows)
{
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s", t_path("sl-a.h5"));
    snprintf(b, sizeof b, "%s", t_path("sl-b.h5"));
    write_streaming_study(a, b);
    char paths[2500];
    snprintf(paths, sizeof paths, "'%s' '%s'", a, b);
    const char *dir = report_dir("rep-sl");
    char *out, *err;
    int st = t_run(&out, &err, "report %s -o '%s' --study streaming-llm", paths, dir);
    cr_assert(st == 0 || st == 69, "exit %d: %s", st, err);
    free(out), free(err);
    char *md = slurp_in(dir, "report.md");
    cr_assert(md);
    const char *open = "# attnbench report\n\n## Findings: StreamingLLM (attention sinks)\n\n";
    cr_expect(!strncmp(md, open, strlen(open)), "%.200s", md);
    expect_in(md, "arXiv 2309.17453");
    /* the tables: hand-set perplexities, the best in bold, an infeasible row footnoted */
    expect_in(md, "| 1/2 (2x) | 10 | 12 | 11 | **10.5** | - (a) |\n");
    expect_in(md, "| 1/8 (8x) | 10 | 20 | 14 | 12 | **11.5** |\n");
    expect_in(md, "(a) infeasible: smallest knob (w = 1) 0.6.");
    /* streaming beats the window on a.txt, as ratios to dense */
    expect_in(md, "- **a.txt, decode:** sink + window (streaming, 4 sinks) keeps perplexity lower "
                  "than the window alone (dense 10) at every budget scored (2): 1/2 streaming "
                  "1.05x dense, window 1.2x (ppl 10.5, 12); 1/8 streaming 1.2x dense, window 2x "
                  "(ppl 12, 20).\n");
    expect_in(md, "  - Best sink count: 4 at 1/2 (streaming, 10.5); 16 at 1/8 (streaming-16, "
                  "11.5).\n");
    /* and does not on b.txt, which says so with its numbers and the sliding windows */
    expect_in(md, "- **b.txt, decode:** the finding does not hold: sink + window (streaming, 4 "
                  "sinks) keeps perplexity no lower than the window alone (dense 10) at any of 2 "
                  "budgets. It does not hold where the window alone is lower: 1/2 streaming 1.04x "
                  "dense, window 1.02x (ppl 10.4, 10.2); 1/8 streaming 1.35x dense, window 1.3x "
                  "(ppl 13.5, 13). This input was scored in sliding windows (stride 1024");
    expect_in(md, "  - Best sink count: 0 (window) at every budget scored: 1/2 10.2, 1/8 13.\n");
    expect_in(md, "Over 4 (input, phase, budget) points, sink + window beats the window alone at "
                  "2, is the same (within 1% of dense) at 0 and is worse at 2.");
    cr_expect(!strstr(md, "Below dense"), "no row is below dense");
    /* the heads that sink, from /heads first_weight */
    expect_in(md, "On w.h5, 2 of 4 heads sink (mean first-token weight, /heads column "
                  "first_weight, above 0.3): L0.H0 (0.500), L1.H1 (0.350).");
    expect_in(md, "Reproduce: `attnbench scenario scenarios/streaming-llm.yaml`");
    /* the figure: a panel per input, a line per sink count, dense dashed */
    char *gp = slurp_in(dir, "streaming-llm-ppl.gp");
    cr_assert(gp, "no streaming-llm-ppl.gp");
    cr_expect(strstr(gp, "a.txt - decode") && strstr(gp, "b.txt - decode (windows, no BOS)") &&
                  strstr(gp, "\"streaming-16 (16 sinks)\"") && strstr(gp, "dt 2 title \"dense\""),
              "%s", gp);
    free(gp);
    if (st == 0) cr_expect(exists_in(dir, "streaming-llm-ppl.png"));
    cr_expect(strstr(md, "(streaming-llm-ppl.png)") != NULL);
    free(md);

    /* without /model rows: one sentence saying so, not an error */
    char heads_only[1200];
    snprintf(heads_only, sizeof heads_only, "%s", t_path("sl-heads.h5"));
    struct ab_results r;
    hb_init(&r);
    struct ab_head_row h = study_head("w.h5", 0, 0, 0.5, NAN, NAN, 0);
    study_add_heads(&r, &h, 1);
    cr_assert_eq(ab_results_write_h5(heads_only, &r), 0);
    ab_results_free(&r);
    md = report_md_of(heads_only, "rep-sl-none", "--study streaming-llm");
    expect_in(md, "The inputs have no /model rows (`attnbench eval-model` writes them), so the "
                  "perplexity findings cannot be stated.");
    free(md);
}

/* The same text in sliding windows with and without BOS first (results attribute window_bos):
 * two tables, and the sentence comparing them at the lowest budget both scored. */
Test(report, streaming_llm_study_compares_windows_with_and_without_bos)
{
    static const char *const arms[4] = {"window", "streaming-1", "streaming", "streaming-16"};
    /* window alone the same in both (its rows never reach the first token); with BOS dense 9
       instead of 10 and streaming 11 instead of 12 at 1/8 */
    const double ppl[2][2][4] = {{{10.2, 10.3, 10.4, 10.5}, {13, 12.5, 12, 12.2}},
                                 {{10.2, 9.6, 9.7, 9.9}, {13, 10.8, 11, 11.5}}};
    const double t[2] = {0.5, 0.125};
    char files[2][1200];
    for (int f = 0; f < 2; f++) {
        snprintf(files[f], sizeof files[f], "%s", t_path(f ? "sl-bos.h5" : "sl-nobos.h5"));
        struct ab_results r;
        hb_init(&r);
        r.stride = 1024, r.window_bos = f;
        for (int i = 0; i < 2; i++)
            for (int m = 0; m < 4; m++) {
                struct ab_model_row row = study_row("data/b.txt", arms[m], "decode", t[i], "all",
                                                    "", ppl[f][i][m], f ? 9 : 10, NAN, NAN, NULL);
                cr_assert_eq(ab_results_add_model(&r, &row), 0);
            }
        cr_assert_eq(ab_results_write_h5(files[f], &r), 0);
        ab_results_free(&r);
    }
    char args[2600];
    snprintf(args, sizeof args, "'%s' '%s'", files[0], files[1]);
    const char *dir = report_dir("rep-sl-bos");
    char *out, *err;
    int st = t_run(&out, &err, "report %s -o '%s' --study streaming-llm", args, dir);
    cr_assert(st == 0 || st == 69, "exit %d: %s", st, err);
    free(out), free(err);
    char *md = slurp_in(dir, "report.md");
    cr_assert(md);
    expect_in(md, "**b.txt, decode** (sliding windows)\n");
    expect_in(md, "**b.txt, decode** (sliding windows, BOS first)\n");
    expect_in(md, "### Windows with and without BOS first\n\n- **b.txt, decode:** with BOS in "
                  "place of each later window's first token, dense goes from 10 to 9 and sink + "
                  "window (4 sinks) at 1/8 (8x) from 12 to 11, 0.85x the window alone's "
                  "perplexity where it was 0.92x; the window alone does not change: its scored "
                  "rows never reach the first token (13, 13). The sinks help most when the first "
                  "token is the one the model sinks on.");
    free(md);
}

/* The retrieval-heads inputs in one file: /heads of the ranked workload `w` (2 layers x 4
 * heads: L1.H2 0.9 and L1.H0 0.5 retrieve, L0.H3 sinks most; a second workload that must not
 * count), uniform-head rows on copy-100 and t.txt for K = 1, 2, 4, and duo's decode cells on
 * w: at 1/2 the kv group of layer 1 heads 0-1 and head 2 whole, at 1/4 and 1/8 infeasible. */
static void write_retrieval_study(const char *path, const char *w)
{
    struct ab_results r;
    hb_init(&r);
    const double score[8] = {0, 0.05, 0, 0, 0.5, 0, 0.9, 0};
    const double fw[8] = {0.2, 0.1, 0.1, 0.6, 0.1, 0.1, 0.1, 0.1};
    struct ab_head_row h[16];
    for (int i = 0; i < 8; i++) {
        h[i] = study_head(w, i / 4, i % 4, fw[i], score[i], score[i] * 8 / 9, score[i] > 0.01);
        h[8 + i] = study_head("other.h5", i / 4, i % 4, 0.1, i == 0 ? 0.99 : 0, 0, 0);
    }
    study_add_heads(&r, h, 16);
    static const char *const ks[3] = {"1", "2", "4"};
    static const char *const top_l[3] = {"1:2", "1:2 1:0", "1:2 1:0 0:1 0:0"};
    static const char *const low_l[3] = {"0:0", "0:0 0:2", "0:0 0:2 0:3 1:1"};
    const double acc[3][3] = {{0.5, 0.98, 0.99}, {0.02, 0.97, 0.99}, {0.97, 0.96, 0.99}};
    const double ppl[3][3] = {{9, 8.5, 8.1}, {12, 8.6, 7.5}, {14, 8.7, 8.2}};
    for (int k = 0; k < 3; k++)
        for (int c = 0; c < 3; c++) {
            char heads[64];
            if (c == 0) snprintf(heads, sizeof heads, "top %s by retrieval_score", ks[k]);
            if (c == 1) snprintf(heads, sizeof heads, "random %s (seed 7)", ks[k]);
            if (c == 2) snprintf(heads, sizeof heads, "bottom %s by retrieval_score", ks[k]);
            const char *list = c == 0 ? top_l[k] : c == 2 ? low_l[k] : "0:1";
            struct ab_model_row t = study_row("copy-100", "uniform-head", "prefill", 1, heads,
                                              list, 1000, 900, acc[k][c], 0.99, NULL);
            struct ab_model_row x = study_row("data/t.txt", "uniform-head", "prefill", 1, heads,
                                              list, ppl[k][c], 8, NAN, NAN, NULL);
            cr_assert_eq(ab_results_add_model(&r, &t), 0);
            cr_assert_eq(ab_results_add_model(&r, &x), 0);
        }
    const double t[3] = {0.5, 0.25, 0.125};
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 8; i++) {
            int whole = b == 0 && i >= 4 && i <= 6, ok = b == 0;
            double ratio = whole ? 1.0 : 0.3;
            struct ab_cell c = {
                .workload = (char *)w, .n = 256, .layer = i / 4, .head = i % 4, .kv_head = i / 2,
                .method = "duo", .family = "kv", .phase = "decode", .knob_name = "f",
                .knob = ok ? 0.25 : NAN, .target_ratio = t[b], .flop_ratio = ratio,
                .flop_ratio_step = ratio, .flops_attend = 1e6 * ratio, .bytes_kv = 1,
                .density = ratio, .sparsity = 1 - ratio, .compression = 1 / ratio,
                .rel_l2 = ok ? 0.05 : NAN, .cos_mean = NAN, .cos_min = NAN, .max_abs = NAN,
                .recall = NAN, .topk_recall = NAN, .kl = NAN, .task_kind = "", .task_acc = NAN,
                .task_acc_retrieve = NAN, .task_acc_multi_retrieve = NAN,
                .task_acc_aggregate = NAN, .n_eval_rows = 64, .time_s = 0, .feasible = ok,
                .reason = ok ? "" : "workload ratio 0.3 at the smallest knob (f = 0.001)"};
            cr_assert_eq(ab_results_add(&r, &c), 0);
        }
    hb_write(&r, path);
}

Test(report, retrieval_heads_study_states_its_finding_from_the_rows)
{
    fixture(); /* its workload (2 layers x 4 heads) is the ranked one: the maps draw on it */
    char res[1200];
    snprintf(res, sizeof res, "%s", t_path("rh.h5"));
    write_retrieval_study(res, fx_work);
    char extra[1300];
    snprintf(extra, sizeof extra, "--study retrieval-heads --workload '%s'", fx_work);
    char *md = report_md_of(res, "rep-rh", extra);
    const char *open = "# attnbench report\n\n## Findings: retrieval heads and DuoAttention's "
                       "split\n\n";
    cr_expect(!strncmp(md, open, strlen(open)), "%.200s", md);
    expect_in(md, "arXiv 2404.15574");
    expect_in(md, "arXiv 2410.10819");
    /* the heads of the first workload, by score */
    expect_in(md, "On w.h5 (the first workload of the /heads table, the one the ablation ranks), "
                  "2 of 8 heads have a retrieval score above 0.1");
    expect_in(md, ": L1.H2 (0.900, induction 0.800), L1.H0 (0.500, induction 0.444).\n");
    expect_in(md, "| 1 | L1.H2 | 0.900 | 0.800 | 0.100 | yes |\n| 2 | L1.H0 | 0.500 | 0.444 | "
                  "0.100 | yes |\n| 3 | L0.H1 | 0.050 | 0.044 | 0.100 | yes |\n");
    /* the ablation table shows the hand-set values */
    expect_in(md, "| none (dense) | 0.990 | | | 8 | | |\n| 1 | 0.500 | 0.980 | 0.990 | 9 | 8.5 | "
                  "8.1 |\n| 2 | 0.020 | 0.970 | 0.990 | 12 | 8.6 | 7.5 |\n| 4 | 0.970 | 0.960 | "
                  "0.990 | 14 | 8.7 | 8.2 |\n");
    expect_in(md, "- K = 1: masking the top-1 retrieval head drops copy accuracy from 0.990 to "
                  "0.500 while 1 random head leaves 0.980 (the 1 lowest: 0.990).\n");
    expect_in(md, "- K = 2: masking the top-2 retrieval heads drops copy accuracy from 0.990 to "
                  "0.020 while 2 random heads leave 0.970 (the 2 lowest: 0.990).\n");
    expect_in(md, "- K = 4: masking the top-4 retrieval heads changes copy accuracy from 0.990 to "
                  "0.970 while 4 random heads leave 0.960 (the 4 lowest: 0.990): no drop of more "
                  "than 0.05 below dense and random, so the finding does not hold at K = 4.\n");
    expect_in(md, "The finding holds at 2 of 3 K.");
    expect_in(md, "On t.txt perplexity (dense 8) is 9, 12, 14 with the top K masked; with K "
                  "random heads masked 8.5, 8.6, 8.7; with the K lowest 8.1, 7.5, 8.2 (K = 1, 2, "
                  "4). Masking lowers perplexity below dense at lowest 2 (7.5).");
    expect_in(md, "The lowest retrieval scores tie: 5 of 8 heads score 0.000 on w.h5, so the K "
                  "lowest are a pick among equals (for K = 4 the rows mask L0.H0, L0.H2, L0.H3, "
                  "L1.H1).");
    /* DuoAttention: the proxy label and the heads duo keeps whole */
    expect_in(md, "marks 3 heads on w.h5 (L0.H1, L1.H0, L1.H2): 2 of the 2 retrieval heads.");
    expect_in(md, "- **w.h5, decode:** at 1/2 it keeps 3 of 8 heads whole (L1.H0, L1.H1, L1.H2): "
                  "2 of the 2 retrieval heads; at 1/4 and 1/8 duo is infeasible (workload ratio "
                  "0.3 at the smallest knob (f = 0.001)).\n");
    /* the maps of the strongest retrieval and sink heads of the ranked workload */
    expect_in(md, "The exact attention of the strongest retrieval head, L1.H2, on w.h5, and of "
                  "the strongest sink head, L0.H3 (first-token weight 0.600), are drawn after the "
                  "findings.");
    const char *dir = t_path("rep-rh");
    cr_expect(exists_in(dir, "retrieval-map-L1-H2.gp") && exists_in(dir, "sink-map-L0-H3.gp"));
    /* the figures' data */
    char *tsv = slurp_in(dir, "retrieval-ablation.tsv");
    cr_assert(tsv, "no retrieval-ablation.tsv");
    cr_expect(strstr(tsv, "0\tK = 1\t0.5\t0.98\t0.99\n") && strstr(tsv, "2\tK = 4\t14\t8.7\t8.2\n"),
              "%s", tsv);
    free(tsv);
    char *gp = slurp_in(dir, "retrieval-heads.gp");
    cr_assert(gp, "no retrieval-heads.gp");
    cr_expect(strstr(gp, "set xlabel \"head\"") && strstr(gp, "set ylabel \"layer\""), "%s", gp);
    free(gp);
    if (have_gnuplot())
        cr_expect(exists_in(dir, "retrieval-ablation.png") &&
                  exists_in(dir, "retrieval-heads.png") &&
                  exists_in(dir, "retrieval-map-L1-H2.png"));
    free(md);

    /* another workload given: no map of the wrong one, and the report says so */
    snprintf(extra, sizeof extra, "--study retrieval-heads --workload '%s'", fx_work);
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(res, &r), 0);
    for (int64_t i = 0; i < r.n_heads; i++)
        if (!strcmp(r.heads[i].workload, fx_work)) {
            free(r.heads[i].workload);
            r.heads[i].workload = strdup("elsewhere/copy.h5");
        }
    char res2[1200];
    snprintf(res2, sizeof res2, "%s", t_path("rh-other.h5"));
    cr_assert_eq(ab_results_write_h5(res2, &r), 0);
    ab_results_free(&r);
    md = report_md_of(res2, "rep-rh-other", extra);
    expect_in(md, "No map: the report's workload (w.h5) is not elsewhere/copy.h5, whose heads "
                  "are ranked here; give that one with --workload.");
    free(md);
}

/* report --bench: the table of `bench methods` becomes report.md's "Measured speed" section,
 * its figure speed.png (script and data beside it) and one table line per row, timed or not;
 * a file without /bench is refused before anything is written. */
Test(report, measured_speed_section_from_a_bench_table)
{
    fixture();
    const char *bench = t_path("speed-bench.h5"), *dir = report_dir("rep-speed");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err,
                       "bench methods --n 1024 --d 32 --methods streaming,quest,"
                       "linear-elu --budgets 0.25 --phase both --reps 1 -o '%s'",
                       bench),
                 0, "%s", err);
    free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "report '%s' --bench '%s' -o '%s'", fx_res, bench, dir), 0, "%s",
                 err);
    free(out), free(err);
    char md[1300], gp[1300];
    snprintf(md, sizeof md, "%s/report.md", dir);
    snprintf(gp, sizeof gp, "%s/speed.gp", dir);
    char *text = (char *)t_slurp(md, NULL);
    cr_assert(text);
    const char *sec = strstr(text, "## Measured speed (bench methods)");
    cr_assert(sec, "no speed section");
    cr_expect(strstr(sec, "![speed.png](speed.png)") != NULL);
    /* streaming in both phases, quest in decode, linear-elu untimed in both */
    cr_expect(strstr(sec, "| streaming | prefill | 0.25 |") &&
                  strstr(sec, "| streaming | decode | 0.25 |"),
              "%.2000s", sec);
    cr_expect(strstr(sec, "| quest | decode | 0.25 |") != NULL);
    cr_expect(strstr(sec, "| linear-elu | prefill | 1 | nan | - |") != NULL, "%.3000s", sec);
    cr_expect(strstr(sec, "of the 3 timed rows realise their counted saving") != NULL, "%.600s",
              sec);
    free(text);
    char *script = (char *)t_slurp(gp, NULL);
    cr_expect(script && strstr(script, "y = x") && strstr(script, "\"quest\""));
    free(script);
    /* a results file is not a bench table: exit 65 naming it, no folder */
    const char *dir2 = report_dir("rep-speed-bad");
    cr_expect_eq(t_run(&out, &err, "report '%s' --bench '%s' -o '%s'", fx_res, fx_res, dir2), 65,
                 "%s", err);
    cr_expect(strstr(err, "no /bench table") && t_count_lines(err) == 1, "%s", err);
    free(out), free(err);
    cr_expect(!t_exists(dir2), "a refused --bench left a folder behind");
}

/* Results no writer produces (an infinite flop ratio, a zero target, a layer index of 2^40) are
 * refused when read: report exits 65 naming the file and the row, and writes nothing (issue 15:
 * it left report.md and PNGs and exited 70 with "out of memory"). */
Test(report, impossible_cells_are_refused_before_anything_is_written)
{
    for (int k = 0; k < 3; k++) {
        struct ab_results r;
        hb_init(&r);
        hb_cells(&r, "w.h5", 1024, 2, "dense", "dense", "prefill", 1, 1e-7, 1, 1, NULL);
        hb_cells(&r, "w.h5", 1024, 2, "window", "static", "prefill", 0.25, 0.1, 1, 1, NULL);
        struct ab_cell *c = &r.cells[r.n_cells - 1];
        if (k == 0) c->flop_ratio = INFINITY;
        if (k == 1) c->target_ratio = 0;
        if (k == 2) c->layer = (int64_t)1 << 40;
        const char *path = t_path("impossible.h5"), *dir = report_dir("rep-impossible");
        cr_assert_eq(ab_results_write_h5(path, &r), AB_OK, "%s", ab_errmsg());
        ab_results_free(&r);
        char *out, *err;
        cr_expect_eq(t_run(&out, &err, "report '%s' -o '%s'", path, dir), 65, "case %d: %s", k, err);
        cr_expect(strstr(err, "impossible.h5") && strstr(err, "row 3") && t_count_lines(err) == 1,
                  "case %d: %s", k, err);
        cr_expect(!t_exists(dir), "case %d: the report folder was made", k);
        free(out), free(err);
    }
}
