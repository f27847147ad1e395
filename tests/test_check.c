/* test_check.c - the regression gate (`check`) and the kernel checker (`verify`), and the .npy
 * reader and writer under verify.
 *
 * check: a small real results file is made with the CLI (gen n=256, run dense, window,
 * streaming, block-topk, h2o at two budgets, both phases), then doctored through
 * ab_results_read_h5 / ab_results_write_h5: one accuracy value worsened or improved, a row
 * deleted, a cost changed, feasibility or NaN-ness flipped, a value moved below tolerance. Each
 * copy is checked against the original through the CLI, reading the exit status and the row
 * named in the table. The comparison itself is also tested on hand-built tables (key matching
 * with NaN targets, knob keys, repeated keys, infinities).
 * verify: the reference's own dump passes; a copy with one head perturbed fails naming that
 * head; permuted layouts, HDF5 outputs and float16 outputs are read; wrong shapes and damaged
 * .npy files (truncated, big-endian, Fortran order, bad headers) give exit 65 with a message.
 * For machines: check --json and verify --json parsed back (the moved cell, the failing head,
 * each value against the table), their --junit reports (a case per row or head, one failure,
 * escaping of a hostile path) and the XML escaping itself.
 * npy: round trips in f16 / f32 / f64 and binary16 conversions on known values (subnormals,
 * infinities, ties) and on all 65536 bit patterns. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#include "core/ab.h"
#include "eval/check.h"
#include "eval/metric.h"
#include "eval/results.h"
#include "helpers.h"
#include "io/junit.h"
#include "io/npy.h"
#include "io/results_io.h"

/* ---------------------------------------------------------------- helpers */

enum { N_LAYER = 2, N_HEAD = 4, N_SEQ = 256, D_V = 32 };

struct files {
    char w[1024], r[1024];
};

/* Generates a workload and runs five methods on it (about 0.3 s). */
static void make_files(struct files *f)
{
    char *err = NULL;
    snprintf(f->w, sizeof f->w, "%s", t_path("w.h5"));
    snprintf(f->r, sizeof f->r, "%s", t_path("r.h5"));
    int st = t_run(NULL, &err,
                   "gen --n %d --layers %d --heads %d --kv-heads 2 --d 32 --tasks retrieve "
                   "--seed 3 -o '%s'", N_SEQ, N_LAYER, N_HEAD, f->w);
    cr_assert_eq(st, 0, "gen failed: %s", err);
    free(err);
    st = t_run(NULL, &err,
               "run '%s' --methods dense,window,streaming,block-topk,h2o --budgets 0.5,0.25 "
               "-o '%s'", f->w, f->r);
    cr_assert_eq(st, 0, "run failed: %s", err);
    free(err);
}

static void read_results(const char *path, struct ab_results *r)
{
    int rc = ab_results_read_h5(path, r);
    cr_assert_eq(rc, AB_OK, "%s", ab_errmsg());
}

static void write_results(const char *path, const struct ab_results *r)
{
    int rc = ab_results_write_h5(path, r);
    cr_assert_eq(rc, AB_OK, "%s", ab_errmsg());
}

/* The first feasible row of (method, phase) whose column at offset is finite and inside
 * (lo, hi), so it can be moved either way. */
static int64_t find_row(const struct ab_results *r, const char *method, const char *phase,
                        size_t offset, double lo, double hi)
{
    for (int64_t i = 0; i < r->n_cells; i++) {
        const struct ab_cell *c = &r->cells[i];
        double v;
        memcpy(&v, (const char *)c + offset, sizeof v);
        if (!strcmp(c->method, method) && !strcmp(c->phase, phase) && c->feasible &&
            isfinite(v) && v > lo && v < hi)
            return i;
    }
    cr_assert_fail("no usable %s %s row", method, phase);
    return -1;
}

/* 1 when out has a table line of the given result kind naming the row of c and the metric
 * (NULL: any). */
static int names_row(const char *out, const char *kind, const struct ab_cell *c,
                     const char *metric)
{
    char target[64];
    snprintf(target, sizeof target, "%.6g", c->target_ratio);
    for (const char *s = out; s && *s;) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        char line[512], k[32], wl[256], m[64], ph[32], t[64], col[64];
        long long layer, head;
        snprintf(line, sizeof line, "%.*s", (int)AB_MIN(len, sizeof line - 1), s);
        if (sscanf(line, "%31s %255s %lld %lld %63s %31s %63s %63s", k, wl, &layer, &head, m, ph,
                   t, col) == 8 &&
            !strcmp(k, kind) && !strcmp(wl, ab_check_basename(c->workload)) &&
            layer == c->layer && head == c->head && !strcmp(m, c->method) &&
            !strcmp(ph, c->phase) && !strcmp(t, target) && (!metric || !strcmp(col, metric)))
            return 1;
        s = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* Runs check NEW --baseline OLD plus extra options; returns the status, *out stdout. */
static int check(char **out, const char *now, const char *base, const char *extra)
{
    char *err = NULL;
    int st = t_run(out, &err, "check '%s' --baseline '%s' %s", now, base, extra);
    if (st != 0 && st != 1) cr_log_info("check stderr: %s", err);
    free(err);
    return st;
}

/* ---------------------------------------------------------------- check, through the CLI */

Test(check, identical_copy_passes)
{
    struct files f;
    make_files(&f);
    size_t n;
    unsigned char *b = t_slurp(f.r, &n);
    cr_assert(b);
    const char *copy = t_path("copy.h5");
    FILE *fp = fopen(copy, "wb");
    cr_assert(fp && fwrite(b, 1, n, fp) == n && fclose(fp) == 0);
    free(b);
    char *out = NULL;
    cr_expect_eq(check(&out, copy, f.r, "--any-change"), 0, "%s", out);
    struct ab_results r;
    read_results(f.r, &r);
    char want[128];
    snprintf(want, sizeof want, "check: %lld rows matched, 0 regressions, 0 missing, 0 added\n",
             (long long)r.n_cells);
    cr_expect_str_eq(out, want);
    ab_results_free(&r);
    free(out);
}

Test(check, rows_match_across_folders_and_thread_counts)
{
    struct files f;
    make_files(&f);
    /* the same workload from another folder, run on one thread: keys match on the base name */
    char dir[1024], w2[2100], r2[1100];
    snprintf(dir, sizeof dir, "%s", t_path("sub"));
    snprintf(w2, sizeof w2, "%s/%s", dir, ab_check_basename(f.w));
    snprintf(r2, sizeof r2, "%s/r.h5", dir);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s'", dir, f.w, w2);
    cr_assert_eq(system(cmd), 0);
    char *err = NULL;
    int st = t_run(NULL, &err, "run '%s' --methods dense,window,streaming,block-topk,h2o "
                   "--budgets 0.5,0.25 --threads 1 -o '%s'", w2, r2);
    cr_assert_eq(st, 0, "%s", err);
    free(err);
    char *out = NULL;
    cr_expect_eq(check(&out, r2, f.r, "--any-change"), 0, "%s", out);
    cr_expect(strstr(out, " 0 missing, 0 added"), "%s", out);
    free(out);
}

Test(check, worse_rel_l2_fails_and_names_the_row)
{
    struct files f;
    make_files(&f);
    struct ab_results r;
    read_results(f.r, &r);
    int64_t i = find_row(&r, "window", "prefill", offsetof(struct ab_cell, rel_l2), 1e-4, 1);
    r.cells[i].rel_l2 *= 1.5;
    const char *bad = t_path("worse.h5");
    write_results(bad, &r);
    char *out = NULL;
    cr_expect_eq(check(&out, bad, f.r, ""), 1);
    cr_expect(names_row(out, "worse", &r.cells[i], "rel_l2"), "row %lld not named:\n%s",
              (long long)i, out);
    cr_expect(strstr(out, ", 1 regressions, 0 missing, 0 added\n"), "%s", out);
    /* only that row */
    cr_expect_eq(t_count_lines(out), 3, "%s", out);
    ab_results_free(&r);
    free(out);
}

Test(check, worse_recall_fails_and_names_the_row)
{
    struct files f;
    make_files(&f);
    struct ab_results r;
    read_results(f.r, &r);
    int64_t i = find_row(&r, "h2o", "decode", offsetof(struct ab_cell, recall), 0.05, 1);
    r.cells[i].recall -= 0.01;
    const char *bad = t_path("recall.h5");
    write_results(bad, &r);
    char *out = NULL;
    cr_expect_eq(check(&out, bad, f.r, ""), 1);
    cr_expect(names_row(out, "worse", &r.cells[i], "recall"), "%s", out);
    free(out);
    /* --metric without recall ignores it */
    cr_expect_eq(check(&out, bad, f.r, "--metric rel_l2,kl"), 0, "%s", out);
    ab_results_free(&r);
    free(out);
}

Test(check, improvement_passes_by_default_and_fails_with_any_change)
{
    struct files f;
    make_files(&f);
    struct ab_results r;
    read_results(f.r, &r);
    int64_t i = find_row(&r, "streaming", "prefill", offsetof(struct ab_cell, rel_l2), 1e-3, 1);
    r.cells[i].rel_l2 *= 0.5;
    const char *good = t_path("better.h5");
    write_results(good, &r);
    char *out = NULL;
    cr_expect_eq(check(&out, good, f.r, ""), 0, "%s", out);
    cr_expect(strstr(out, "0 regressions, 0 missing, 0 added, 1 improved\n"), "%s", out);
    cr_expect(names_row(out, "better", &r.cells[i], "rel_l2"), "%s", out);
    free(out);
    cr_expect_eq(check(&out, good, f.r, "--any-change"), 1, "%s", out);
    cr_expect(names_row(out, "better", &r.cells[i], "rel_l2"), "%s", out);
    cr_expect(strstr(out, "1 regressions"), "%s", out);
    ab_results_free(&r);
    free(out);
}

Test(check, deleted_row_fails_as_missing_and_extra_row_is_added)
{
    struct files f;
    make_files(&f);
    struct ab_results r;
    read_results(f.r, &r);
    int64_t i = 0;
    while (i < r.n_cells && strcmp(r.cells[i].method, "block-topk")) i++;
    cr_assert(i < r.n_cells - 1);
    struct ab_cell gone = r.cells[i];
    char *keep_method = strdup(gone.method), *keep_phase = strdup(gone.phase);
    gone.method = keep_method, gone.phase = keep_phase;
    /* delete row i (free its strings, shift the rest down) */
    ab_cell_free_strings(&r.cells[i]);
    memmove(&r.cells[i], &r.cells[i + 1], (size_t)(r.n_cells - i - 1) * sizeof r.cells[0]);
    r.n_cells--;
    char shorter[1024];
    snprintf(shorter, sizeof shorter, "%s", t_path("shorter.h5"));
    write_results(shorter, &r);
    char *out = NULL;
    cr_expect_eq(check(&out, shorter, f.r, ""), 1);
    cr_expect(strstr(out, "0 regressions, 1 missing, 0 added\n"), "%s", out);
    gone.workload = r.cells[0].workload;
    cr_expect(names_row(out, "missing", &gone, NULL), "%s", out);
    free(out);
    /* the other way round the row is new: reported, not a failure */
    cr_expect_eq(check(&out, f.r, shorter, "--any-change"), 0, "%s", out);
    cr_expect(strstr(out, "0 regressions, 0 missing, 1 added\n"), "%s", out);
    cr_expect(names_row(out, "added", &gone, NULL), "%s", out);
    free(keep_method), free(keep_phase);
    ab_results_free(&r);
    free(out);
}

Test(check, cost_feasible_and_nan_changes_fail)
{
    struct files f;
    make_files(&f);
    struct ab_results r;
    char *out = NULL;
    const char *bad = t_path("cost.h5");

    read_results(f.r, &r);
    int64_t i = find_row(&r, "window", "decode", offsetof(struct ab_cell, flop_ratio), 0, 1);
    r.cells[i].flop_ratio *= 0.99; /* cheaper is a change too */
    write_results(bad, &r);
    cr_expect_eq(check(&out, bad, f.r, ""), 1);
    cr_expect(names_row(out, "cost", &r.cells[i], "flop_ratio"), "%s", out);
    ab_results_free(&r);
    free(out);

    read_results(f.r, &r);
    r.cells[i].feasible = 0;
    free(r.cells[i].reason);
    r.cells[i].reason = strdup("smallest knob (w = 1) 0.2");
    write_results(bad, &r);
    cr_expect_eq(check(&out, bad, f.r, ""), 1);
    cr_expect(names_row(out, "feasible", &r.cells[i], "feasible"), "%s", out);
    cr_expect(strstr(out, "1 regressions"), "one finding for the row: %s", out);
    /* and says why: the new row's reason, or its ratio against the target */
    cr_expect(strstr(out, "now infeasible: smallest knob (w = 1) 0.2"), "%s", out);
    free(out);
    cr_expect_eq(check(&out, f.r, bad, ""), 1);
    cr_expect(strstr(out, "now feasible: flop_ratio"), "%s", out);
    ab_results_free(&r);
    free(out);

    /* a different decode horizon is named */
    read_results(f.r, &r);
    cr_assert(r.decode_horizon > 0);
    r.decode_horizon *= 2;
    write_results(bad, &r);
    check(&out, bad, f.r, "");
    cr_expect(strstr(out, "decode horizon G differs"), "%s", out);
    ab_results_free(&r);
    free(out);

    read_results(f.r, &r);
    r.cells[i].kl = NAN;
    r.cells[i].rel_l2 = NAN;
    write_results(bad, &r);
    cr_expect_eq(check(&out, bad, f.r, ""), 1);
    cr_expect(names_row(out, "nan", &r.cells[i], "rel_l2"), "%s", out);
    ab_results_free(&r);
    free(out);

    /* time_s is never compared */
    read_results(f.r, &r);
    for (int64_t k = 0; k < r.n_cells; k++) r.cells[k].time_s += 100;
    write_results(bad, &r);
    cr_expect_eq(check(&out, bad, f.r, "--any-change"), 0, "%s", out);
    ab_results_free(&r);
    free(out);
}

Test(check, tolerances_are_respected)
{
    struct files f;
    make_files(&f);
    struct ab_results r;
    read_results(f.r, &r);
    int64_t i = find_row(&r, "window", "prefill", offsetof(struct ab_cell, rel_l2), 1e-2, 1);
    r.cells[i].rel_l2 *= 1 + 5e-4; /* below the default rtol 1e-3 */
    const char *bad = t_path("tol.h5");
    write_results(bad, &r);
    char *out = NULL;
    cr_expect_eq(check(&out, bad, f.r, "--any-change"), 0, "%s", out);
    free(out);
    cr_expect_eq(check(&out, bad, f.r, "--rtol 1e-4"), 1, "%s", out);
    free(out);
    cr_expect_eq(check(&out, bad, f.r, "--rtol 1e-4,rel_l2=1e-3"), 0, "%s", out);
    free(out);
    cr_expect_eq(check(&out, bad, f.r, "--rtol 0 --atol 1"), 0, "%s", out);
    free(out);
    ab_results_free(&r);
}

Test(check, bad_files_and_usage)
{
    struct files f;
    make_files(&f);
    char *out = NULL, *err = NULL;
    /* missing */
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline /nonexistent/x.h5", f.r), 66);
    cr_expect(strstr(err, "/nonexistent/x.h5"), "%s", err);
    free(out), free(err);
    /* a workload file is not a results file */
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s'", f.w, f.r), 65);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    /* truncated */
    size_t n;
    unsigned char *b = t_slurp(f.r, &n);
    const char *cut = t_path("cut.h5");
    FILE *fp = fopen(cut, "wb");
    cr_assert(fp && fwrite(b, 1, n / 2, fp) == n / 2 && fclose(fp) == 0);
    free(b);
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s'", cut, f.r), 65);
    cr_expect(strstr(err, "cut.h5"), "%s", err);
    free(out), free(err);
    /* a schema-1 file (the accounting before issue 12) is refused with the reason */
    const char *old = t_path("schema1.h5");
    struct ab_results r;
    read_results(f.r, &r);
    write_results(old, &r);
    ab_results_free(&r);
    hid_t h5 = H5Fopen(old, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(h5 >= 0);
    cr_assert(H5Adelete(h5, "schema") >= 0);
    cr_assert(H5LTset_attribute_string(h5, "/", "schema", "attnbench/results/1") >= 0);
    H5Fclose(h5);
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s'", f.r, old), 65);
    cr_expect(strstr(err, "schema1.h5") && strstr(err, "results schema 1") &&
                  strstr(err, "decode horizon"),
              "%s", err);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    /* usage */
    cr_expect_eq(t_run(&out, &err, "check '%s'", f.r), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s' --metric flop_ratio", f.r, f.r),
                 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s' --rtol x=1", f.r, f.r), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s' --atol -1", f.r, f.r), 64);
    free(out), free(err);
}

/* ---------------------------------------------------------------- check, the comparison */

static struct ab_cell cell(const char *wl, const char *method, double target, double knob)
{
    struct ab_cell c = {0};
    c.workload = (char *)wl;
    c.method = (char *)method;
    c.family = "f";
    c.phase = "prefill";
    c.knob_name = "k";
    c.task_kind = "";
    c.knob = knob;
    c.target_ratio = target;
    c.flop_ratio = 0.5, c.density = 0.5, c.flops_attend = 1e6, c.flops_select = 0;
    c.ops_other = 0, c.bytes_kv = 1e3, c.sparsity = 0.5, c.compression = 2;
    c.rel_l2 = 0.1, c.cos_mean = 0.99, c.cos_min = 0.9, c.max_abs = INFINITY;
    c.recall = NAN, c.topk_recall = 0.8, c.kl = 0.01;
    c.task_acc = c.task_acc_retrieve = c.task_acc_multi_retrieve = c.task_acc_aggregate = NAN;
    c.n_eval_rows = 10;
    c.feasible = 1;
    return c;
}

Test(check_compare, keys_nan_targets_knobs_and_repeats)
{
    struct ab_results a, b;
    ab_results_init(&a);
    ab_results_init(&b);
    /* baseline: a NaN-target row keyed by its knob (two knobs), a budget row, and one key twice
       (two folders holding w.h5) */
    struct ab_cell rows[] = {
        cell("x/w.h5", "m", NAN, 4), cell("x/w.h5", "m", NAN, 8), cell("x/w.h5", "m", 0.5, 3),
        cell("y/w.h5", "m", 0.25, 3), cell("z/w.h5", "m", 0.25, 3),
    };
    rows[4].rel_l2 = 0.2;
    for (int i = 0; i < 5; i++) cr_assert_eq(ab_results_add(&a, &rows[i]), AB_OK);
    /* new: reversed order, other folders, the budget row's solved knob moved */
    for (int i = 4; i >= 0; i--) {
        struct ab_cell c = rows[i];
        c.workload = i == 4 ? "q/w.h5" : "w.h5";
        if (i == 2) c.knob = 5;
        cr_assert_eq(ab_results_add(&b, &c), AB_OK);
    }
    struct ab_check_opts o;
    ab_check_defaults(&o);
    struct ab_check_report rep;
    cr_assert_eq(ab_check_compare(&a, &b, &o, &rep), AB_OK);
    cr_expect_eq(rep.n_matched, 5);
    cr_expect_eq(rep.n_missing + rep.n_added, 0);
    /* repeated keys pair in table order: baseline row 3 (0.1) with new row 0 (0.2) */
    cr_expect_eq(rep.n_regressions, 1);
    cr_expect_eq(rep.n_improved, 1);
    cr_assert_eq(rep.n_findings, 2);
    cr_expect_eq(rep.findings[0].kind, AB_FIND_WORSE);
    cr_expect_eq(rep.findings[0].base_row, 3);
    cr_expect_eq(rep.findings[0].new_row, 0);
    cr_expect_eq(rep.findings[1].kind, AB_FIND_BETTER);
    cr_expect(ab_check_failed(&rep));
    ab_check_report_free(&rep);

    /* with any_change the solved knob counts, and the improvement fails */
    o.any_change = 1;
    cr_assert_eq(ab_check_compare(&a, &b, &o, &rep), AB_OK);
    int changed = 0, better_fails = 0;
    for (int64_t k = 0; k < rep.n_findings; k++) {
        changed += rep.findings[k].kind == AB_FIND_CHANGED;
        better_fails += rep.findings[k].kind == AB_FIND_BETTER && rep.findings[k].fails;
    }
    cr_expect_eq(changed, 1);
    cr_expect_eq(better_fails, 1);
    ab_check_report_free(&rep);

    /* a knob run with another knob is another row */
    b.cells[4].knob = 16; /* was rows[0], knob 4 */
    o.any_change = 0;
    cr_assert_eq(ab_check_compare(&a, &b, &o, &rep), AB_OK);
    cr_expect_eq(rep.n_missing, 1);
    cr_expect_eq(rep.n_added, 1);
    cr_expect(ab_check_failed(&rep));
    ab_check_report_free(&rep);
    ab_results_free(&a);
    ab_results_free(&b);
}

Test(check_compare, directions_infinities_and_restrictions)
{
    struct ab_results a, b;
    ab_results_init(&a);
    ab_results_init(&b);
    struct ab_cell c = cell("w.h5", "m", 0.5, 1);
    cr_assert_eq(ab_results_add(&a, &c), AB_OK);
    c.cos_min = 0.8;       /* lower: worse */
    c.kl = 0.001;          /* lower: better */
    c.max_abs = 1e300;     /* inf -> finite: a move (down: better) */
    c.bytes_kv = 1e3 + 1e-4; /* within tolerance */
    cr_assert_eq(ab_results_add(&b, &c), AB_OK);
    struct ab_check_opts o;
    ab_check_defaults(&o);
    struct ab_check_report rep;
    cr_assert_eq(ab_check_compare(&a, &b, &o, &rep), AB_OK);
    cr_assert_eq(rep.n_findings, 3);
    int n_col;
    const struct ab_check_column *cols = ab_check_columns(&n_col);
    cr_expect_str_eq(cols[rep.findings[0].column].name, "cos_min");
    cr_expect_eq(rep.findings[0].kind, AB_FIND_WORSE);
    cr_expect_str_eq(cols[rep.findings[1].column].name, "max_abs");
    cr_expect_eq(rep.findings[1].kind, AB_FIND_BETTER);
    cr_expect_str_eq(cols[rep.findings[2].column].name, "kl");
    cr_expect_eq(rep.findings[2].kind, AB_FIND_BETTER);
    ab_check_report_free(&rep);
    /* restricted to kl: nothing fails; cost columns stay checked */
    for (int k = 0; k < n_col; k++) o.use[k] = 0;
    o.use[ab_check_column_find("kl")] = 1;
    b.cells[0].density = 0.6;
    cr_assert_eq(ab_check_compare(&a, &b, &o, &rep), AB_OK);
    cr_expect_eq(rep.n_regressions, 1);
    cr_expect_eq(rep.findings[rep.n_findings - 1].kind, AB_FIND_COST);
    ab_check_report_free(&rep);
    cr_expect_eq(ab_check_column_find("time_s"), -1);
    ab_results_free(&a);
    ab_results_free(&b);
}

/* check's columns are the metric table's checked rows, each judged by the table's direction:
 * accuracy first, then cost, then the knob, each group in table order; the rows not checked
 * (flop_ratio_step, flops_once, time_s) are unknown to it. */
Test(check, columns_are_the_checked_rows_of_the_metric_table)
{
    int n_col, n_checked = 0;
    const struct ab_check_column *cols = ab_check_columns(&n_col);
    for (int k = 0; k < AB_N_METRIC; k++) {
        const struct ab_metric *m = &ab_metrics[k];
        int c = ab_check_column_find(m->name);
        if (!m->checked) {
            cr_expect_eq(c, -1, "%s is not checked but check compares it", m->name);
            continue;
        }
        n_checked++;
        cr_assert_geq(c, 0, "%s is checked but unknown to check", m->name);
        cr_expect_eq(cols[c].sense, m->sense, "%s", m->name);
        cr_expect_eq(cols[c].offset, m->offset, "%s", m->name);
        cr_expect_eq(cols[c].is_int, m->is_int, "%s", m->name);
    }
    cr_expect_eq(n_col, n_checked);
    cr_expect_eq(n_checked, 21); /* as before the table: 11 accuracy, 9 cost, the knob */
    static const char *const unchecked[] = {"flop_ratio_step", "flops_once", "time_s"};
    for (int i = 0; i < 3; i++) cr_expect_eq(ab_check_column_find(unchecked[i]), -1);
    /* groups in order, each in table order */
    int group = 0;
    size_t prev = 0;
    for (int c = 0; c < n_col; c++) {
        int g = cols[c].sense == AB_SENSE_COST ? 1 : cols[c].sense == AB_SENSE_SETTING ? 2 : 0;
        cr_expect_geq(g, group, "%s out of its group", cols[c].name);
        if (g == group && c > 0) cr_expect_gt(cols[c].offset, prev, "%s", cols[c].name);
        group = g;
        prev = cols[c].offset;
    }
    cr_expect_eq(cols[ab_check_column_find("rel_l2")].sense, AB_SENSE_HIGH_WORSE);
    cr_expect_eq(cols[ab_check_column_find("recall")].sense, AB_SENSE_LOW_WORSE);
    cr_expect_eq(cols[ab_check_column_find("n_eval_rows")].is_int, 1);
}

/* ---------------------------------------------------------------- verify */

/* Dumps the reference of f->w to path (dtype "f32", "f64", "f16"). */
static void dump(const struct files *f, const char *path, const char *dtype)
{
    char *err = NULL;
    int st = t_run(NULL, &err, "verify '%s' --dump-reference '%s' --dtype %s", f->w, path, dtype);
    cr_assert_eq(st, 0, "%s", err);
    free(err);
}

/* Lines of out that end with result (" ok" / " FAIL"). */
static int count_results(const char *out, const char *result)
{
    int n = 0;
    size_t len = strlen(result);
    for (const char *s = out; s && *s;) {
        const char *nl = strchr(s, '\n');
        size_t l = nl ? (size_t)(nl - s) : strlen(s);
        if (l >= len && !memcmp(s + l - len, result, len)) n++;
        s = nl ? nl + 1 : NULL;
    }
    return n;
}

Test(verify, reference_dump_passes)
{
    struct files f;
    make_files(&f);
    const char *ref = t_path("ref.npy");
    dump(&f, ref, "f32");
    char *out = NULL, *err = NULL;
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s'", f.w, ref), 0, "%s%s", out, err);
    cr_expect_eq(count_results(out, " ok"), N_LAYER * N_HEAD, "%s", out);
    cr_expect(strstr(out, "verify: 8 heads, 0 failed"), "%s", out);
    free(out), free(err);
    /* float64 and float16 dumps pass too (float16 under its own default tolerance) */
    const char *r64 = t_path("ref64.npy"), *r16 = t_path("ref16.npy");
    dump(&f, r64, "f64");
    dump(&f, r16, "f16");
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s' --rtol 1e-12", f.w, r64), 0, "%s", out);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s'", f.w, r16), 0, "%s", out);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s' --rtol 1e-5", f.w, r16), 1, "%s", out);
    free(out), free(err);
}

Test(verify, perturbed_head_fails_and_is_named)
{
    struct files f;
    make_files(&f);
    const char *ref = t_path("ref.npy"), *bad = t_path("bad.npy");
    dump(&f, ref, "f32");
    struct ab_array a;
    cr_assert_eq(ab_npy_read(ref, AB_DT_F32, &a), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(a.rank, 4);
    float *x = a.data;
    int64_t per = N_SEQ * D_V;
    for (int64_t k = 0; k < per; k++) x[(1 * N_HEAD + 2) * per + k] += 1e-2f;
    cr_assert_eq(ab_npy_write(bad, AB_DT_F32, 4, a.shape, AB_DT_F32, a.data), AB_OK);
    ab_array_free(&a);
    char *out = NULL, *err = NULL;
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s'", f.w, bad), 1, "%s%s", out, err);
    cr_expect_eq(count_results(out, " FAIL"), 1, "%s", out);
    cr_expect_eq(count_results(out, " ok"), N_LAYER * N_HEAD - 1, "%s", out);
    int found = 0;
    for (const char *s = out; s && *s;) {
        long long l, h;
        double rel;
        char res[16];
        if (sscanf(s, "%lld %lld %lf %*s %*s %15s", &l, &h, &rel, res) == 4 && !strcmp(res, "FAIL"))
            found = l == 1 && h == 2 && rel > 1e-4;
        s = strchr(s, '\n');
        if (s) s++;
    }
    cr_expect(found, "layer 1 head 2 not named:\n%s", out);
    cr_expect(strstr(out, "worst rel_l2"), "%s", out);
    free(out), free(err);
}

Test(verify, layouts_and_hdf5_outputs)
{
    struct files f;
    make_files(&f);
    const char *ref = t_path("ref.npy"), *perm = t_path("perm.npy"), *h5 = t_path("o.h5");
    dump(&f, ref, "f64");
    struct ab_array a;
    cr_assert_eq(ab_npy_read(ref, AB_DT_F64, &a), AB_OK);
    /* (seq, dim, head, layer) */
    double *p = malloc((size_t)a.n * sizeof *p), *x = a.data;
    for (int l = 0; l < N_LAYER; l++)
        for (int h = 0; h < N_HEAD; h++)
            for (int s = 0; s < N_SEQ; s++)
                for (int c = 0; c < D_V; c++)
                    p[((s * D_V + c) * N_HEAD + h) * N_LAYER + l] =
                        x[((l * N_HEAD + h) * N_SEQ + s) * D_V + c];
    int64_t shape[4] = {N_SEQ, D_V, N_HEAD, N_LAYER};
    cr_assert_eq(ab_npy_write(perm, AB_DT_F64, 4, shape, AB_DT_F64, p), AB_OK);
    char *out = NULL, *err = NULL;
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s' --layout seq,dim,head,layer", f.w, perm), 0,
                 "%s%s", out, err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s'", f.w, perm), 65);
    cr_expect(strstr(err, "does not match") && strstr(err, "perm.npy"), "%s", err);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s' --layout seq,dim,head", f.w, perm), 64);
    free(out), free(err);

    /* HDF5: the only float dataset of rank 4, in a group, stored as float32 */
    hid_t file = H5Fcreate(h5, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(file, "/kernel", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[4] = {N_LAYER, N_HEAD, N_SEQ, D_V}, one = 3;
    hid_t sp = H5Screate_simple(4, dims, NULL);
    hid_t d = H5Dcreate2(g, "out", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(d >= 0 && H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    sp = H5Screate_simple(1, &one, NULL); /* a rank-1 float dataset does not compete */
    d = H5Dcreate2(file, "/scales", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(sp);
    H5Gclose(g);
    H5Fclose(file);
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s'", f.w, h5), 0, "%s%s", out, err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s' --dataset kernel/out", f.w, h5), 0);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s' --dataset nope", f.w, h5), 65);
    cr_expect(strstr(err, "nope"), "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s' --dataset scales", f.w, h5), 65);
    free(out), free(err);
    free(p);
    ab_array_free(&a);
}

/* Writes a .npy file by hand: the preamble of version major.0, the header text padded with
 * spaces and a newline (pad = 0: exactly as given), then n data bytes. */
static void raw_npy(const char *path, int major, const char *header, int pad, const void *data,
                    size_t n)
{
    FILE *fp = fopen(path, "wb");
    cr_assert(fp);
    size_t pre = major == 1 ? 10 : 12, hl = strlen(header);
    size_t total = pad ? (pre + hl + 1 + 63) / 64 * 64 : pre + hl;
    size_t hlen = total - pre;
    unsigned char b[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)major, 0};
    for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (unsigned char)(hlen >> (8 * i));
    fwrite(b, 1, pre, fp);
    fwrite(header, 1, hl, fp);
    for (size_t i = hl; i < hlen; i++) fputc(i + 1 == hlen && pad ? '\n' : ' ', fp);
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

Test(verify, damaged_npy_files_exit_65)
{
    struct files f;
    make_files(&f);
    const char *ref = t_path("ref.npy"), *bad = t_path("bad.npy");
    dump(&f, ref, "f32");
    size_t n;
    unsigned char *b = t_slurp(ref, &n);
    cr_assert(b);
    const unsigned char *data = b + 128; /* the dump's header is 118 + 10 bytes */
    cr_assert_eq(b[8] + 10, 128);
    size_t nd = n - 128;
    char *out = NULL, *err = NULL;
    struct {
        const char *name, *header, *message;
        size_t bytes;
    } cases[] = {
        {"truncated", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 256, 32), }",
         "truncated", nd - 4},
        {"big-endian", "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 4, 256, 32), }",
         "big-endian", nd},
        {"fortran", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 4, 256, 32), }",
         "Fortran", nd},
        {"int", "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 4, 256, 32), }",
         "not supported", nd},
        {"shape", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 256, 16), }",
         "after the data", nd},
        {"wrong shape", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 512, 16), }",
         "does not match", nd},
        {"missing key", "{'descr': '<f4', 'shape': (2, 4, 256, 32), }", "fortran_order", nd},
        {"extra key", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 256, 32), "
         "'x': 1}", "unexpected key", nd},
        {"not a dict", "[1, 2]", "not a dict", nd},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        raw_npy(bad, 1, cases[c].header, 1, data, cases[c].bytes);
        cr_expect_eq(t_run(&out, &err, "verify '%s' '%s'", f.w, bad), 65, "%s", cases[c].name);
        cr_expect(strstr(err, cases[c].message) && strstr(err, "bad.npy"), "%s: %s",
                  cases[c].name, err);
        cr_expect_eq(t_count_lines(err), 1, "%s: %s", cases[c].name, err);
        free(out), free(err);
    }
    /* a file cut inside its header */
    FILE *fp = fopen(bad, "wb");
    cr_assert(fp && fwrite(b, 1, 40, fp) == 40 && fclose(fp) == 0);
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s'", f.w, bad), 65);
    cr_expect(strstr(err, "truncated"), "%s", err);
    free(out), free(err);
    /* a missing outputs file */
    cr_expect_eq(t_run(&out, &err, "verify '%s' /nonexistent/o.npy", f.w), 66);
    free(out), free(err);
    /* not npy and not HDF5 */
    fp = fopen(bad, "wb");
    cr_assert(fp && fputs("hello, world\n", fp) >= 0 && fclose(fp) == 0);
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s'", f.w, bad), 65);
    free(out), free(err);
    free(b);
}

/* ---------------------------------------------------------------- --json and --junit */

/* stdout of a --json run parsed strictly (one document, valid UTF-8), or a failed test. */
static json_t *parse_json(const char *out)
{
    json_error_t e;
    json_t *j = json_loads(out ? out : "", JSON_REJECT_DUPLICATES, &e);
    cr_assert(j, "not JSON (%s at line %d): %s", e.text, e.line, out ? out : "");
    return j;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    cr_assert(s, "no string '%s'", key);
    return s;
}

static double jnum(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    cr_assert(json_is_number(v), "no number '%s'", key);
    return json_number_value(v);
}

/* Occurrences of needle in s. */
static int count_of(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* 1 when every '&' of xml starts an entity or a character reference. */
static int ampersands_escaped(const char *xml)
{
    for (const char *p = strchr(xml, '&'); p; p = strchr(p + 1, '&'))
        if (strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) &&
            strncmp(p, "&quot;", 6) && strncmp(p, "&apos;", 6) && strncmp(p, "&#", 2))
            return 0;
    return 1;
}

/* The test case element of the JUnit report xml named name: from its start to the next case
 * (malloc'd), or NULL. */
static char *junit_case(const char *xml, const char *classname, const char *name)
{
    char head[1024];
    snprintf(head, sizeof head, "<testcase classname=\"%s\" name=\"%s\"", classname, name);
    const char *a = strstr(xml, head);
    if (!a) return NULL;
    const char *b = strstr(a + 1, "<testcase ");
    return b ? strndup(a, (size_t)(b - a)) : strdup(a);
}

Test(check, json_lists_the_moved_cell_and_exits_as_the_table_does)
{
    struct files f;
    make_files(&f);
    struct ab_results r;
    read_results(f.r, &r);
    int64_t i = find_row(&r, "window", "prefill", offsetof(struct ab_cell, rel_l2), 1e-4, 1);
    const struct ab_cell *c = &r.cells[i];
    double was = c->rel_l2;
    r.cells[i].rel_l2 *= 1.5;
    const char *bad = t_path("worse.h5");
    write_results(bad, &r);
    char *txt = NULL, *out = NULL, *err = NULL;
    cr_expect_eq(check(&txt, bad, f.r, ""), 1);
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s' --json", bad, f.r), 1, "%s", err);
    cr_expect_str_eq(err, "");
    json_t *j = parse_json(out);
    cr_expect_str_eq(jstr(j, "schema"), "attnbench/check/1");
    cr_expect_str_eq(jstr(j, "status"), "regression");
    cr_expect_str_eq(jstr(j, "new"), bad);
    cr_expect_str_eq(jstr(j, "baseline"), f.r);
    cr_expect_eq(jnum(j, "compared"), r.n_cells);
    const json_t *rows = json_object_get(j, "rows"), *tol = json_object_get(j, "tolerances");
    cr_expect(jnum(rows, "regressions") == 1 && jnum(rows, "missing") == 0 &&
              jnum(rows, "added") == 0 && jnum(rows, "matched") == r.n_cells);
    cr_expect(strstr(txt, ", 1 regressions, 0 missing, 0 added\n"), "%s", txt);
    const json_t *t = json_object_get(tol, "rel_l2");
    cr_expect(jnum(t, "rtol") == 1e-3 && jnum(t, "atol") == 1e-6 &&
              json_is_true(json_object_get(t, "checked")));
    cr_expect_str_eq(jstr(t, "sense"), "higher-is-worse");
    cr_expect(json_is_false(json_object_get(json_object_get(tol, "knob"), "checked")));
    /* the one failing finding is the doctored cell, with its exact values */
    const json_t *moved = json_object_get(j, "moved"), *m = NULL;
    int n_fail = 0;
    for (size_t k = 0; k < json_array_size(moved); k++)
        if (json_is_true(json_object_get(json_array_get(moved, k), "fails")))
            n_fail++, m = json_array_get(moved, k);
    cr_assert_eq(n_fail, 1, "%s", out);
    cr_expect_str_eq(jstr(m, "kind"), "worse");
    cr_expect_str_eq(jstr(m, "workload"), ab_check_basename(c->workload));
    cr_expect_str_eq(jstr(m, "method"), "window");
    cr_expect_str_eq(jstr(m, "phase"), "prefill");
    cr_expect_str_eq(jstr(m, "metric"), "rel_l2");
    cr_expect_str_eq(jstr(m, "direction"), "up");
    cr_expect(jnum(m, "layer") == c->layer && jnum(m, "head") == c->head);
    cr_expect_eq(jnum(m, "target"), c->target_ratio);
    cr_expect_eq(jnum(m, "knob"), c->knob);
    cr_expect_eq(jnum(m, "baseline"), was, "%.17g", jnum(m, "baseline"));
    cr_expect_eq(jnum(m, "new"), c->rel_l2, "%.17g", jnum(m, "new"));
    cr_expect(names_row(txt, "worse", c, "rel_l2"), "%s", txt);
    json_decref(j);
    free(txt), free(out), free(err);

    /* a tolerance that covers it: pass, exit 0, the tolerance reported */
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s' --rtol 1e-3,rel_l2=0.6 --json",
                       bad, f.r), 0, "%s", err);
    j = parse_json(out);
    cr_expect_str_eq(jstr(j, "status"), "pass");
    cr_expect_eq(jnum(json_object_get(json_object_get(j, "tolerances"), "rel_l2"), "rtol"), 0.6);
    json_decref(j);
    free(out), free(err);

    /* the file against itself: nothing moved */
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s' --any-change --json", f.r, f.r), 0);
    j = parse_json(out);
    cr_expect_str_eq(jstr(j, "status"), "pass");
    cr_expect_eq(json_array_size(json_object_get(j, "moved")), 0);
    cr_expect_eq(jnum(j, "compared"), r.n_cells);
    json_decref(j);
    free(out), free(err);

    /* NaN is null in JSON: the value that became NaN, its delta and direction */
    r.cells[i].rel_l2 = NAN;
    write_results(bad, &r);
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s' --metric rel_l2 --json", bad, f.r),
                 1, "%s", err);
    j = parse_json(out);
    moved = json_object_get(j, "moved");
    cr_assert_eq(json_array_size(moved), 1, "%s", out);
    m = json_array_get(moved, 0);
    cr_expect_str_eq(jstr(m, "kind"), "nan");
    cr_expect_eq(jnum(m, "baseline"), was);
    cr_expect(json_is_null(json_object_get(m, "new")) &&
              json_is_null(json_object_get(m, "delta")) &&
              json_is_null(json_object_get(m, "direction")), "%s", out);
    json_decref(j);
    free(out), free(err);

    /* errors: one line on stderr, nothing on stdout */
    cr_expect_eq(t_run(&out, &err, "check /nonexistent/r.h5 --baseline '%s' --json", f.r), 66);
    cr_expect_str_eq(out, "");
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    ab_results_free(&r);
}

Test(check, junit_has_a_case_per_row_and_one_failure)
{
    struct files f;
    make_files(&f);
    struct ab_results r;
    read_results(f.r, &r);
    int64_t i = find_row(&r, "h2o", "decode", offsetof(struct ab_cell, recall), 0.05, 1);
    r.cells[i].recall -= 0.01;
    /* the new file in a folder whose name XML must escape */
    char dir[1024], bad[1200], cmd[2600];
    snprintf(dir, sizeof dir, "%s", t_path("x&<y>\"z"));
    snprintf(bad, sizeof bad, "%s/recall.h5", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    write_results(bad, &r);
    const char *xml_path = t_path("check.xml");
    char *txt = NULL, *out = NULL, *err = NULL;
    cr_expect_eq(check(&txt, bad, f.r, ""), 1);
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s' --junit '%s'", bad, f.r, xml_path),
                 1, "%s", err);
    cr_expect_str_eq(out, txt); /* the text is the same with --junit */
    cr_expect(!t_tmp_left(xml_path));
    char *xml = (char *)t_slurp(xml_path, NULL);
    cr_assert(xml, "no report");
    char want[256];
    snprintf(want, sizeof want, "<testsuite name=\"attnbench check\" tests=\"%lld\" failures=\"1\"",
             (long long)r.n_cells);
    cr_expect(strstr(xml, want), "%s", xml);
    cr_expect_eq(count_of(xml, "<testcase "), r.n_cells);
    cr_expect_eq(count_of(xml, "<failure "), 1);
    cr_expect(!strncmp(xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites ", 50));
    cr_expect(strstr(xml, "</testsuite>\n</testsuites>\n"));
    /* the failure is in the doctored row's case and names the metric */
    const struct ab_cell *c = &r.cells[i];
    char name[256];
    snprintf(name, sizeof name, "decode %.6g %s layer %lld head %lld", c->target_ratio,
             ab_check_basename(c->workload), (long long)c->layer, (long long)c->head);
    char *el = junit_case(xml, "attnbench.check.h2o", name);
    cr_assert(el, "no case '%s':\n%s", name, xml);
    cr_expect(strstr(el, "<failure type=\"worse\" message=\"worse recall: baseline "), "%s", el);
    free(el);
    /* the hostile path is escaped, every '&' starts an entity */
    cr_expect(strstr(xml, "x&amp;&lt;y&gt;&quot;z/recall.h5\"/>"), "%s", xml);
    cr_expect(!strstr(xml, "x&<y>"));
    cr_expect(ampersands_escaped(xml));
    free(xml), free(txt), free(out), free(err);

    /* a clean check: every case passes */
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s' --junit '%s' --json", f.r, f.r,
                       xml_path), 0, "%s", err);
    xml = (char *)t_slurp(xml_path, NULL);
    cr_assert(xml);
    cr_expect_eq(count_of(xml, "<testcase "), r.n_cells);
    cr_expect_eq(count_of(xml, "<failure "), 0);
    json_decref(parse_json(out)); /* --json and --junit together */
    free(xml), free(out), free(err);

    /* a report that cannot be written: exit 73, one line, nothing on stdout */
    cr_expect_eq(t_run(&out, &err, "check '%s' --baseline '%s' --junit /nonexistent/j.xml", bad,
                       f.r), 73);
    cr_expect_str_eq(out, "");
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    ab_results_free(&r);
}

Test(verify, json_and_junit_name_the_perturbed_head)
{
    struct files f;
    make_files(&f);
    const char *ref = t_path("ref.npy"), *bad = t_path("bad.npy"), *xml_path = t_path("v.xml");
    dump(&f, ref, "f32");
    struct ab_array a;
    cr_assert_eq(ab_npy_read(ref, AB_DT_F32, &a), AB_OK, "%s", ab_errmsg());
    float *x = a.data;
    int64_t per = N_SEQ * D_V;
    for (int64_t k = 0; k < per; k++) x[(1 * N_HEAD + 2) * per + k] += 1e-2f;
    cr_assert_eq(ab_npy_write(bad, AB_DT_F32, 4, a.shape, AB_DT_F32, a.data), AB_OK);
    ab_array_free(&a);
    char *txt = NULL, *out = NULL, *err = NULL;
    cr_expect_eq(t_run(&txt, &err, "verify '%s' '%s'", f.w, bad), 1, "%s", err);
    free(err);
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s' --json --junit '%s'", f.w, bad, xml_path), 1,
                 "%s", err);
    json_t *j = parse_json(out);
    cr_expect_str_eq(jstr(j, "schema"), "attnbench/verify/1");
    cr_expect_str_eq(jstr(j, "status"), "fail");
    cr_expect_str_eq(jstr(j, "dtype"), "float32");
    cr_expect(jnum(j, "heads") == N_LAYER * N_HEAD && jnum(j, "failed") == 1);
    const json_t *tol = json_object_get(j, "tolerances"), *worst = json_object_get(j, "worst");
    cr_expect(jnum(tol, "rtol") == 1e-4 && json_is_null(json_object_get(tol, "atol")));
    cr_expect(jnum(worst, "layer") == 1 && jnum(worst, "head") == 2);
    /* each case is the table's line, value for value */
    const json_t *cases = json_object_get(j, "cases");
    cr_assert_eq(json_array_size(cases), N_LAYER * N_HEAD);
    for (size_t k = 0; k < json_array_size(cases); k++) {
        const json_t *cs = json_array_get(cases, k);
        int fail = jnum(cs, "layer") == 1 && jnum(cs, "head") == 2;
        cr_expect_eq(json_is_true(json_object_get(cs, "pass")), !fail, "case %zu", k);
        char line[256];
        snprintf(line, sizeof line, "%5lld %4lld %12.4g %12.4g %14.10f  %s\n",
                 (long long)jnum(cs, "layer"), (long long)jnum(cs, "head"), jnum(cs, "rel_l2"),
                 jnum(cs, "max_abs"), jnum(cs, "cos_min"), fail ? "FAIL" : "ok");
        cr_expect(strstr(txt, line), "'%s' not in:\n%s", line, txt);
        if (fail) cr_expect(strstr(jstr(cs, "reason"), "rel_l2 "), "%s", out);
        else cr_expect(json_is_null(json_object_get(cs, "reason")));
    }
    json_decref(j);
    char *xml = (char *)t_slurp(xml_path, NULL);
    cr_assert(xml, "no report");
    cr_expect(strstr(xml, "<testsuite name=\"attnbench verify\" tests=\"8\" failures=\"1\""),
              "%s", xml);
    cr_expect_eq(count_of(xml, "<testcase "), N_LAYER * N_HEAD);
    cr_expect_eq(count_of(xml, "<failure "), 1);
    char *el = junit_case(xml, "attnbench.verify", "layer 1 head 2");
    cr_expect(el && strstr(el, "<failure type=\"tolerance\" message=\"rel_l2 "), "%s", xml);
    free(el), free(xml), free(txt), free(out), free(err);

    /* the reference itself passes; --dump-reference takes neither flag */
    cr_expect_eq(t_run(&out, &err, "verify '%s' '%s' --json", f.w, ref), 0, "%s", err);
    j = parse_json(out);
    cr_expect_str_eq(jstr(j, "status"), "pass");
    cr_expect_eq(jnum(j, "failed"), 0);
    json_decref(j);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "verify '%s' --dump-reference '%s' --json", f.w,
                       t_path("r2.npy")), 64);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
}

/* XML escaping: the five entities, whitespace kept in text and referenced in attributes, what
 * XML 1.0 cannot hold (C0 controls, U+FFFE, bytes outside UTF-8) as U+FFFD, UTF-8 kept. */
Test(junit, xml_escaping)
{
    static const struct {
        const char *in;
        int attr;
        const char *want;
    } cases[] = {
        {"a&b<c>d\"e'f", 1, "a&amp;b&lt;c&gt;d&quot;e&apos;f"},
        {"t\tn\nr\r.", 1, "t&#9;n&#10;r&#13;."},
        {"t\tn\nr\r.", 0, "t\tn\nr&#13;."},
        {"c\001d\037e\x7f", 0, "c\xEF\xBF\xBD" "d\xEF\xBF\xBD" "e\x7f"},
        {"u\xEF\xBF\xBEv", 1, "u\xEF\xBF\xBDv"},                 /* U+FFFE */
        {"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 1, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"},
        {"x\xFFy\xC0\xAFz", 1, "x\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBDz"}, /* overlong '/' */
        {"\xED\xA0\x80", 1, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},      /* a surrogate */
        {"end\xE2\x82", 1, "end\xEF\xBF\xBD\xEF\xBF\xBD"},                /* truncated */
        {"", 1, ""},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&buf, &len);
        cr_assert(fp);
        ab_xml_escape(fp, cases[k].in, cases[k].attr);
        fclose(fp);
        cr_expect_str_eq(buf, cases[k].want, "case %zu", k);
        free(buf);
    }
}

/* ---------------------------------------------------------------- npy */

/* Header checks on hand-made files: each returns AB_E_DATA with a message holding `what`. */
Test(npy, header_validation)
{
    const char *p = t_path("h.npy");
    float v[6] = {1, 2, 3, 4, 5, 6};
    struct ab_array a;
    struct {
        int major, pad;
        const char *header, *what;
        size_t bytes;
    } bad[] = {
        {4, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", "version", 24},
        {1, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'shape': (6,)}", "twice",
         24},
        {1, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,), }", "shape", 24},
        {1, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6 }", "shape", 24},
        {1, 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (6,), }", "fortran_order", 24},
        {1, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", "structured",
         24},
        {1, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,2,3,4,5,6,7,8,9), }",
         "dimensions", 24},
        {1, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, "
         "99999999999), }", "large", 24},
        {1, 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", "not supported", 24},
        {1, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), } x", "after the dict",
         24},
        {1, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }", "truncated", 24},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        raw_npy(p, bad[c].major, bad[c].header, bad[c].pad, v, bad[c].bytes);
        cr_expect_eq(ab_npy_read(p, AB_DT_F32, &a), AB_E_DATA, "case %zu", c);
        cr_expect(strstr(ab_errmsg(), bad[c].what) && strstr(ab_errmsg(), "h.npy"),
                  "case %zu: %s", c, ab_errmsg());
        cr_expect_null(a.data);
    }
    /* a header length beyond the file, and an absurd one */
    raw_npy(p, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", 0, v, 24);
    size_t n;
    unsigned char *b = t_slurp(p, &n);
    b[10] = 0xff; /* hlen += 0xff0000 */
    FILE *fp = fopen(p, "wb");
    cr_assert(fp && fwrite(b, 1, n, fp) == n && fclose(fp) == 0);
    cr_expect_eq(ab_npy_read(p, AB_DT_F32, &a), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "implausible"), "%s", ab_errmsg());
    b[10] = 0x01; /* 64 KiB more header than the file holds */
    fp = fopen(p, "wb");
    cr_assert(fp && fwrite(b, 1, n, fp) == n && fclose(fp) == 0);
    cr_expect_eq(ab_npy_read(p, AB_DT_F32, &a), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "truncated"), "%s", ab_errmsg());
    free(b);
    cr_expect_eq(ab_npy_read("/nonexistent/h.npy", AB_DT_F32, &a), AB_E_NOFILE);

    /* accepted: versions 2.0 and 3.0, keys in any order, double quotes, Python 2 longs,
       an unpadded header, an empty array */
    const char *ok[] = {
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L, 3L)}",
    };
    for (int major = 1; major <= 3; major++)
        for (int c = 0; c < 2; c++) {
            raw_npy(p, major, ok[c], c, v, 24);
            cr_expect_eq(ab_npy_read(p, AB_DT_F64, &a), AB_OK, "v%d.0 case %d: %s", major, c,
                         ab_errmsg());
            cr_expect_eq(a.rank, 2);
            cr_expect_eq(a.shape[0] * 10 + a.shape[1], 23);
            cr_expect_eq(a.dtype, AB_DT_F32);
            if (a.data) cr_expect_eq(((double *)a.data)[5], 6.0);
            ab_array_free(&a);
        }
    raw_npy(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 5), }", 1, v, 0);
    cr_expect_eq(ab_npy_read(p, AB_DT_F32, &a), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(a.n, 0);
    cr_expect_null(a.data);
    ab_array_free(&a);
}

Test(npy, round_trips)
{
    const char *p = t_path("rt.npy");
    enum { N = 2 * 3 * 5 };
    double x[N];
    for (int i = 0; i < N; i++) x[i] = (i - 7) * 0.375 + (i == 3 ? 1e-6 : 0);
    x[4] = INFINITY;
    x[5] = -0.0;
    int64_t shape[3] = {2, 3, 5};
    int dtypes[3] = {AB_DT_F16, AB_DT_F32, AB_DT_F64};
    for (int t = 0; t < 3; t++) {
        struct ab_array a;
        cr_assert_eq(ab_npy_write(p, dtypes[t], 3, shape, AB_DT_F64, x), AB_OK, "%s",
                     ab_errmsg());
        size_t n;
        unsigned char *b = t_slurp(p, &n);
        cr_expect_eq((b[8] + 10) % 64, 0, "data aligned to 64 bytes");
        cr_expect_eq(n, (size_t)(b[8] + 10) + (size_t)N * (size_t)dtypes[t]);
        char want[32];
        snprintf(want, sizeof want, "'descr': '<f%d'", dtypes[t]);
        cr_expect(memmem(b, n, want, strlen(want)), "%s", want);
        cr_expect(memmem(b, n, "'shape': (2, 3, 5)", 18));
        free(b);
        cr_assert_eq(ab_npy_read(p, AB_DT_F64, &a), AB_OK, "%s", ab_errmsg());
        cr_expect_eq(a.dtype, dtypes[t]);
        cr_expect_eq(a.rank, 3);
        cr_expect_eq(a.n, N);
        const double *y = a.data;
        for (int i = 0; i < N; i++) {
            double want_v = dtypes[t] == AB_DT_F64 ? x[i]
                            : dtypes[t] == AB_DT_F32 ? (double)(float)x[i]
                                                     : ab_f16_to_double(ab_f16_from_double(x[i]));
            cr_expect(!memcmp(&y[i], &want_v, sizeof want_v), "dtype %d element %d: %g vs %g",
                      dtypes[t], i, y[i], want_v);
        }
        ab_array_free(&a);
        /* and read as float */
        cr_assert_eq(ab_npy_read(p, AB_DT_F32, &a), AB_OK);
        cr_expect_eq(((float *)a.data)[1], (float)x[1]);
        ab_array_free(&a);
    }
    /* rank 0 and rank 1 headers */
    struct ab_array a;
    cr_assert_eq(ab_npy_write(p, AB_DT_F32, 0, NULL, AB_DT_F64, x), AB_OK);
    cr_assert_eq(ab_npy_read(p, AB_DT_F64, &a), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(a.rank, 0);
    cr_expect_eq(a.n, 1);
    cr_expect_eq(((double *)a.data)[0], x[0]);
    ab_array_free(&a);
    int64_t len = 7;
    cr_assert_eq(ab_npy_write(p, AB_DT_F64, 1, &len, AB_DT_F64, x), AB_OK);
    size_t n;
    unsigned char *b = t_slurp(p, &n);
    cr_expect(memmem(b, n, "'shape': (7,)", 13));
    free(b);
    cr_assert_eq(ab_npy_read(p, AB_DT_F32, &a), AB_OK);
    cr_expect_eq(a.shape[0], 7);
    ab_array_free(&a);
    /* nothing left behind on failure */
    cr_expect_eq(ab_npy_write("/nonexistent/dir/x.npy", AB_DT_F32, 1, &len, AB_DT_F64, x),
                 AB_E_CREATE);
}

Test(npy, float16_known_values)
{
    struct {
        uint16_t h;
        double v;
    } known[] = {
        {0x0000, 0.0},          {0x3c00, 1.0},           {0xc000, -2.0},
        {0x3555, 0.333251953125}, {0x7bff, 65504.0},     {0x0400, 0x1p-14},
        {0x0001, 0x1p-24},      {0x03ff, 1023 * 0x1p-24}, {0x8001, -0x1p-24},
        {0x7c00, INFINITY},     {0xfc00, -INFINITY},     {0x3c01, 1 + 0x1p-10},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        cr_expect_eq(ab_f16_to_double(known[i].h), known[i].v, "0x%04x", known[i].h);
        cr_expect_eq(ab_f16_from_double(known[i].v), known[i].h, "%g", known[i].v);
    }
    cr_expect(signbit(ab_f16_to_double(0x8000)));
    cr_expect_eq(ab_f16_from_double(-0.0), 0x8000);
    cr_expect(isnan(ab_f16_to_double(0x7e00)));
    cr_expect(isnan(ab_f16_to_double(0xfc01)));
    uint16_t qn = ab_f16_from_double(NAN);
    cr_expect((qn & 0x7c00) == 0x7c00 && (qn & 0x3ff));
    /* rounding: to nearest, ties to even, overflow and underflow */
    cr_expect_eq(ab_f16_from_double(65519.0), 0x7bff);
    cr_expect_eq(ab_f16_from_double(65520.0), 0x7c00);
    cr_expect_eq(ab_f16_from_double(1e6), 0x7c00);
    cr_expect_eq(ab_f16_from_double(-1e6), 0xfc00);
    cr_expect_eq(ab_f16_from_double(1 + 0x1p-11), 0x3c00);     /* tie, down to even */
    cr_expect_eq(ab_f16_from_double(1 + 3 * 0x1p-11), 0x3c02); /* tie, up to even */
    cr_expect_eq(ab_f16_from_double(1 + 0x1p-11 + 0x1p-30), 0x3c01);
    cr_expect_eq(ab_f16_from_double(0x1p-25), 0x0000);         /* tie, to even zero */
    cr_expect_eq(ab_f16_from_double(3 * 0x1p-25), 0x0002);     /* tie, to even 2 */
    cr_expect_eq(ab_f16_from_double(0x1p-25 + 0x1p-40), 0x0001);
    cr_expect_eq(ab_f16_from_double(1e-10), 0x0000);
    cr_expect_eq(ab_f16_from_double(-1e-10), 0x8000);
    cr_expect_eq(ab_f16_from_double(0x1p-14 - 0x1p-25), 0x0400); /* rounds up into normals */
    /* every pattern survives a round trip (NaNs stay NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        double v = ab_f16_to_double((uint16_t)h);
        if (isnan(v)) {
            cr_expect(isnan(ab_f16_to_double(ab_f16_from_double(v))));
            continue;
        }
        if (ab_f16_from_double(v) != h) cr_expect_fail("0x%04x -> %g -> 0x%04x", h, v,
                                                       ab_f16_from_double(v));
    }
}
