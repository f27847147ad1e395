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
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/results.h"
#include "helpers.h"
#include "io/png_map.h"
#include "io/results_io.h"

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
    cr_assert_geq(n, 4 + 3 + 1, "%d scripts", n); /* 4 frontiers, 3 isoflops, 1 heads figure */
    for (int i = 0; i < n; i++) {
        char stem[256], png[1300], mine[1300], cmd[3000];
        snprintf(stem, sizeof stem, "%.*s", (int)strlen(gps[i]) - 3, gps[i]);
        snprintf(png, sizeof png, "%s/%s.png", dir, stem);
        cr_expect(exists_in(dir, "report.md"));
        char tsv[300];
        snprintf(tsv, sizeof tsv, "%s.tsv", stem);
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
        if (!strncmp(stem, "frontier-", 9))
            cr_expect(w == 1200 && h == 500, "%s %ux%u", stem, w, h);
        if (!strncmp(stem, "isoflops-", 9))
            cr_expect(w == 1200 && h == 560, "%s %ux%u", stem, w, h);
        if (!strncmp(stem, "heads-", 6)) cr_expect(w == 1200 && h > 100, "%s %ux%u", stem, w, h);
        size_t a = 0, b = 0;
        unsigned char *x = t_slurp(png, &a), *y = t_slurp(mine, &b);
        cr_expect(x && y && a == b && !memcmp(x, y, a), "%s: re-running the script changed it",
                  stem);
        free(x), free(y);
    }
    const char *expect[] = {"frontier-rel_l2.png", "frontier-recall.png", "frontier-task_acc.png",
                            "frontier-cos_min.png", "isoflops-0.5.png", "isoflops-0.25.png",
                            "isoflops-0.125.png", "heads-rel_l2-0.125.png", "cells.csv",
                            "summary.csv", "report.md"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        cr_expect(exists_in(dir, expect[i]), "%s missing", expect[i]);
    static char tmps[8][256];
    cr_expect_eq(list_dir(dir, ".tmp", tmps, 8), 0, "temporary files left");
}

Test(report, heatmaps_are_viridis_pngs_of_the_grid)
{
    fixture();
    const char *dir = report_dir("rep-heat");
    char *out, *err;
    int st = t_run(&out, &err, "report '%s' -o '%s' --cell 24", fx_res, dir);
    cr_assert(st == 0 || st == 69, "%d %s", st, err);
    free(out), free(err);
    static char pngs[64][256];
    int n = list_dir(dir, "-0.125.png", pngs, 64), n_lib = 0;
    for (int i = 0; i < n; i++) {
        if (strncmp(pngs[i], "heads-", 6) || !strncmp(pngs[i], "heads-rel_l2", 12))
            continue; /* the gnuplot figures */
        char p[2048];
        snprintf(p, sizeof p, "%.1000s/%.255s", dir, pngs[i]);
        uint8_t *px = NULL, pal[256][3];
        int64_t w, h;
        int n_col;
        cr_assert_eq(ab_png_read_indexed(p, &px, &w, &h, pal, &n_col), 0, "%s", p);
        cr_expect_eq(n_col, 256);
        cr_expect(pal[0][0] == 0x44 && pal[0][1] == 0x01 && pal[0][2] == 0x54, "%s first", p);
        cr_expect(pal[255][0] == 0xfd && pal[255][1] == 0xe7 && pal[255][2] == 0x25, "%s last", p);
        cr_expect(w == 4 * 24 && h == 2 * 24, "%s: %lldx%lld for 2 layers x 4 heads", p,
                  (long long)w, (long long)h);
        free(px);
        n_lib++;
        /* its grid, one line per layer and one value per head */
        char tsv[300];
        snprintf(tsv, sizeof tsv, "%.*s.tsv", (int)strlen(pngs[i]) - 4, pngs[i]);
        char *t = slurp_in(dir, tsv);
        cr_assert(t, "%s missing", tsv);
        int rows = 0;
        for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"))
            if (line[0] != '#') rows++;
        cr_expect_eq(rows, 2, "%s", tsv);
        free(t);
    }
    cr_expect_geq(n_lib, 4, "only %d heatmaps", n_lib);
    /* the gnuplot figure uses the same table */
    char *gp = slurp_in(dir, "heads-rel_l2-0.125.gp");
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
    /* the summary line of the headline budget, the failing heads, the infeasible counts, the
     * sink ratio (not computed here), links to figures and tables, the inputs */
    char best[64], line[160];
    expected_best(&r, "prefill", 0.125, best, sizeof best);
    snprintf(line, sizeof line, "- prefill at 1/8: **%s**", best);
    cr_expect(strstr(md, line) != NULL, "missing '%s'", line);
    cr_expect(strstr(md, "## Heads that break each method") && strstr(md, "L1 H") != NULL);
    cr_expect(strstr(md, "## Infeasible cells") != NULL);
    cr_expect(strstr(md, "Not computed: the results have no /heads table") != NULL);
    cr_expect(strstr(md, "(frontier-rel_l2.png)") && strstr(md, "(isoflops-0.125.png)") &&
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
    const char *expect[] = {"frontier-rel_l2.gp", "frontier-rel_l2.tsv", "isoflops-0.125.gp",
                            "isoflops-0.125.tsv", "report.md", "cells.csv", "summary.csv"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        cr_expect(exists_in(dir, expect[i]), "%s missing", expect[i]);
    cr_expect(!exists_in(dir, "frontier-rel_l2.png"));
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
        cr_expect(strncmp(names[i], "frontier", 8) && strncmp(names[i], "isoflops", 8),
                  "%s left by a failed gnuplot", names[i]);
    cr_expect(exists_in(dir, "report.md") && exists_in(dir, "frontier-rel_l2.gp"));
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
    const char *expect[] = {"map-L1-H2.png", "map-L1-H2-window.png", "map-L1-H2-quest.png",
                            "map-L0-H3.png", "map-L0-H3-window.png", "map-L0-H3-quest.png"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, expect[i]);
        uint32_t w, h;
        png_size(p, &w, &h);
        cr_expect(w == 128 && h > 0, "%s: %ux%u", expect[i], w, h);
    }
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
    cr_expect(strstr(md, "(heads-sink.png)") && strstr(md, "(heads-entropy.png)"));
    free(md);
    char p[2048];
    snprintf(p, sizeof p, "%s/heads-sink.png", dir);
    uint8_t *px = NULL, pal[256][3];
    int64_t w, h;
    int n_col;
    cr_assert_eq(ab_png_read_indexed(p, &px, &w, &h, pal, &n_col), 0);
    cr_expect(w == 4 * 24 && h == 2 * 24);
    /* the largest sink is the brightest cell, the smallest the darkest non-missing one */
    cr_expect_eq(px[0], 255, "head 0 (sink 0.6) should be brightest, got %d", px[0]);
    cr_expect_eq(px[24], 1, "head 1 (sink 0.1) should be darkest, got %d", px[24]);
    free(px);
}

/* ---------------------------------------------------------------- render --method */

Test(render, kept_mask_of_a_method)
{
    fixture();
    char *out, *err;
    const char *png = t_path("mask-window.png");
    cr_assert_eq(t_run(&out, &err, "render '%s' --layer 1 --head 2 --method window --budget "
                                   "0.125 -o '%s'", fx_work, png), 0, "%s", err);
    cr_expect(strstr(out, png) != NULL);
    free(out), free(err);
    uint8_t *px = NULL, pal[256][3];
    int64_t w, h;
    int n_col;
    cr_assert_eq(ab_png_read_indexed(png, &px, &w, &h, pal, &n_col), 0);
    cr_expect(w == 256 && h == 256, "%lldx%lld", (long long)w, (long long)h);
    /* the window keeps the diagonal: the last row's last key is kept, its first key dropped */
    cr_expect(px[(h - 1) * w + (w - 1)] >= 1 && px[(h - 1) * w + (w - 1)] <= 127);
    cr_expect(px[(h - 1) * w] >= 128 && px[(h - 1) * w] <= 254);
    cr_expect_eq(px[w - 1], 0, "the first row cannot see the last key");
    free(px);
    /* the plain map is unchanged */
    const char *plain = t_path("plain.png");
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0 -o '%s'", fx_work, plain), 0);
    free(out), free(err);
    cr_assert_eq(ab_png_read_indexed(plain, &px, &w, &h, pal, &n_col), 0);
    cr_expect(pal[0][0] == 0x44 && pal[255][0] == 0xfd);
    free(px);
    /* a decode-only method draws its decode strip */
    const char *q = t_path("mask-quest.png");
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 1 --method quest --budget 0.25 "
                                   "-o '%s'", fx_work, q), 0, "%s", err);
    free(out), free(err);
    uint32_t qw, qh;
    png_size(q, &qw, &qh);
    cr_expect(qw == 256 && qh >= 64, "%ux%u", qw, qh);
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
    cr_expect(!t_exists(png));
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp", png);
    cr_expect(!t_exists(tmp));
}
