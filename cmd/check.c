/* check.c - `attnbench check NEW.h5 --baseline OLD.h5`: the regression gate (outputs.md,
 * "Regression gate"). Reads two results files, compares their /cells tables with
 * lib/eval/check.c and prints the offending rows as a table on stdout, then a one-line summary:
 *
 *   check: 2144 rows matched, 3 regressions, 0 missing, 1 added
 *
 * --json prints one JSON document instead (attnbench/check/1: the inputs, the tolerances, the
 * status and every finding); --junit FILE writes a JUnit XML report with one test case per
 * baseline row, for CI dashboards. Neither changes the exit status.
 *
 * Exit 0 when clean, 1 when an accuracy column got worse beyond tolerance, a cost column,
 * feasibility or NaN-ness changed, or a baseline row is missing (with --any-change also when
 * anything moved beyond tolerance, either way); 64 / 65 / 66 for usage, bad and missing files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "eval/check.h"
#include "eval/results.h"
#include "io/json_out.h"
#include "io/junit.h"
#include "io/results_io.h"
#include "opts.h"

static const char *usage_text =
    "attnbench check NEW.h5 --baseline OLD.h5 [--rtol R] [--atol A] [--metric m1,m2,...]\n"
    "                [--any-change] [--json] [--junit FILE]\n"
    "  R and A are a number for every column, or a list mixing numbers and NAME=NUMBER items\n"
    "  applied in order (\"--rtol 1e-3,kl=1e-2\"); defaults rtol 1e-3, atol 1e-6. A value moved\n"
    "  when |new - baseline| > atol + rtol * |baseline|.";

/* Informational rows (added, improved) listed before "... and N more" unless --verbose. */
enum { MAX_INFO_LINES = 20 };

/* Applies a tolerance list ("1e-3", "rel_l2=1e-2", "1e-3,kl=0.1") to tol[]. Returns -1 when
 * fine, else the exit status (message printed). */
static int parse_tolerances(const char *list, const char *opt, double *tol)
{
    int n_col;
    ab_check_columns(&n_col);
    const char *s = list;
    if (!*s) return ab_cmd_error(EX_AB_USAGE, "check: --%s is empty", opt);
    while (*s) {
        char item[128];
        size_t len = strcspn(s, ",");
        if (len == 0 || len >= sizeof item)
            return ab_cmd_error(EX_AB_USAGE, "check: --%s: bad item in '%s'", opt, list);
        memcpy(item, s, len);
        item[len] = '\0';
        s += len + (s[len] == ',');
        char *eq = strchr(item, '='), *num = eq ? eq + 1 : item, *end;
        double v = strtod(num, &end);
        if (end == num || *end || !(v >= 0) || !isfinite(v))
            return ab_cmd_error(EX_AB_USAGE, "check: --%s: '%s' is not a tolerance >= 0", opt,
                                item);
        if (!eq) {
            for (int c = 0; c < n_col; c++) tol[c] = v;
            continue;
        }
        *eq = '\0';
        int c = ab_check_column_find(item);
        if (c < 0)
            return ab_cmd_error(EX_AB_USAGE, "check: --%s: unknown column '%s'", opt, item);
        tol[c] = v;
    }
    return -1;
}

static int is_accuracy(const struct ab_check_column *c)
{
    return c->sense == AB_SENSE_HIGH_WORSE || c->sense == AB_SENSE_LOW_WORSE;
}

/* Restricts the accuracy columns checked to the list. -1 when fine, else the exit status. */
static int parse_metrics(const char *list, struct ab_check_opts *o)
{
    int n_col;
    const struct ab_check_column *cols = ab_check_columns(&n_col);
    for (int c = 0; c < n_col; c++) o->use[c] = 0;
    const char *s = list;
    int any = 0;
    while (*s) {
        char item[64];
        size_t len = strcspn(s, ",");
        if (len == 0 || len >= sizeof item)
            return ab_cmd_error(EX_AB_USAGE, "check: --metric: bad item in '%s'", list);
        memcpy(item, s, len);
        item[len] = '\0';
        s += len + (s[len] == ',');
        int c = ab_check_column_find(item);
        if (c < 0 || !is_accuracy(&cols[c])) {
            char names[512] = "";
            for (int k = 0; k < n_col; k++)
                if (is_accuracy(&cols[k]))
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                             *names ? ", " : "", cols[k].name);
            return ab_cmd_error(EX_AB_USAGE,
                                "check: --metric: '%s' is not an accuracy column (one of %s; "
                                "cost columns are always checked)", item, names);
        }
        o->use[c] = 1;
        any = 1;
    }
    if (!any) return ab_cmd_error(EX_AB_USAGE, "check: --metric is empty");
    return -1;
}

/* The target column's text: the budget, or "name=knob" for a direct knob run. */
static void target_text(const struct ab_cell *c, char *buf, size_t cap)
{
    const char *kind = c->budget_kind ? c->budget_kind : "";
    if (!strcmp(kind, "tokens")) snprintf(buf, cap, "T=%.6g", c->target_tokens);
    else if (!strcmp(kind, "bytes")) snprintf(buf, cap, "B=%.6g", c->target_ratio);
    else if (!isnan(c->target_ratio)) snprintf(buf, cap, "%.6g", c->target_ratio);
    else if (c->knob_name && *c->knob_name) snprintf(buf, cap, "%s=%.6g", c->knob_name, c->knob);
    else snprintf(buf, cap, "knob=%.6g", c->knob);
}

struct widths {
    int workload, method, phase, target, metric;
};

static const struct ab_cell *finding_row(const struct ab_check_finding *f,
                                         const struct ab_results *base,
                                         const struct ab_results *now)
{
    return f->base_row >= 0 ? &base->cells[f->base_row] : &now->cells[f->new_row];
}

static void widen(struct widths *w, const struct ab_check_finding *f, const struct ab_cell *c,
                  const struct ab_check_column *cols)
{
    char t[64];
    target_text(c, t, sizeof t);
    int lw = (int)strlen(ab_check_basename(c->workload));
    int lm = c->method ? (int)strlen(c->method) : 1;
    int lp = c->phase ? (int)strlen(c->phase) : 1, lt = (int)strlen(t);
    int lc = f->column >= 0 ? (int)strlen(cols[f->column].name) : (int)strlen("feasible");
    w->workload = AB_MAX(w->workload, lw);
    w->method = AB_MAX(w->method, lm);
    w->phase = AB_MAX(w->phase, lp);
    w->target = AB_MAX(w->target, lt);
    w->metric = AB_MAX(w->metric, lc);
}

static void print_header(const struct widths *w)
{
    printf("%-8s  %-*s %5s %4s  %-*s %-*s %-*s  %-*s %14s %14s %11s\n", "result", w->workload,
           "workload", "layer", "head", w->method, "method", w->phase, "phase", w->target,
           "target", w->metric, "metric", "baseline", "new", "delta");
}

static void print_finding(const struct widths *w, const struct ab_check_finding *f,
                          const struct ab_cell *c, const struct ab_check_column *cols)
{
    char t[64], vb[32] = "-", vn[32] = "-", d[32] = "-";
    target_text(c, t, sizeof t);
    const char *metric = f->kind == AB_FIND_FEASIBLE ? "feasible"
                         : f->column >= 0            ? cols[f->column].name
                                                     : "-";
    if (f->kind != AB_FIND_MISSING && f->kind != AB_FIND_ADDED) {
        snprintf(vb, sizeof vb, "%.8g", f->base_value);
        snprintf(vn, sizeof vn, "%.8g", f->new_value);
        if (!isnan(f->base_value) && !isnan(f->new_value))
            snprintf(d, sizeof d, "%+.3g", f->new_value - f->base_value);
    }
    printf("%-8s  %-*s %5lld %4lld  %-*s %-*s %-*s  %-*s %14s %14s %11s\n",
           ab_check_kind_name(f->kind), w->workload, ab_check_basename(c->workload),
           (long long)c->layer, (long long)c->head, w->method, c->method ? c->method : "-",
           w->phase, c->phase ? c->phase : "-", w->target, t, w->metric, metric, vb, vn, d);
}

/* Why a row's feasibility changed, under its finding: the new row's reason when it became
 * infeasible, its ratio against the target when it became feasible. */
static void print_feasibility_why(const struct ab_check_finding *f, const struct ab_results *now)
{
    if (f->kind != AB_FIND_FEASIBLE || f->new_row < 0) return;
    const struct ab_cell *c = &now->cells[f->new_row];
    if (!c->feasible)
        printf("          now infeasible: %s\n", c->reason && c->reason[0] ? c->reason : "?");
    else if (c->budget_kind && !strcmp(c->budget_kind, "tokens"))
        printf("          now feasible: tokens_step %.4g <= target %.4g\n", c->tokens_step,
               c->layer_target);
    else if (c->budget_kind && !strcmp(c->budget_kind, "bytes"))
        printf("          now feasible: bytes_ratio %.4g <= target %.4g\n", c->bytes_ratio,
               c->layer_target);
    else
        printf("          now feasible: flop_ratio %.4g <= target %.4g\n", c->flop_ratio,
               c->target_ratio);
}

/* Prints the failing findings, then up to MAX_INFO_LINES informational ones (all with
 * --verbose), under one header; nothing when there is nothing to show. */
static void print_table(const struct ab_check_report *rep, const struct ab_results *base,
                        const struct ab_results *now)
{
    int n_col;
    const struct ab_check_column *cols = ab_check_columns(&n_col);
    int64_t info_cap = ab_common.verbose ? INT64_MAX : MAX_INFO_LINES, n_info = 0, shown = 0;
    struct widths w = {8, 6, 5, 6, 6};
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i < rep->n_findings; i++) {
            const struct ab_check_finding *f = &rep->findings[i];
            if (f->fails != (pass == 0)) continue;
            if (!f->fails && n_info++ >= info_cap) continue;
            widen(&w, f, finding_row(f, base, now), cols);
            shown++;
        }
    if (!shown) return;
    print_header(&w);
    n_info = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i < rep->n_findings; i++) {
            const struct ab_check_finding *f = &rep->findings[i];
            if (f->fails != (pass == 0)) continue;
            if (!f->fails && n_info++ >= info_cap) continue;
            print_finding(&w, f, finding_row(f, base, now), cols);
            print_feasibility_why(f, now);
        }
    if (n_info > info_cap)
        printf("... and %lld more added or improved rows (--verbose lists them)\n",
               (long long)(n_info - info_cap));
}

/* The human output: the decode-horizon note, the table, the summary line. */
static void print_text(const struct ab_check_report *rep, const struct ab_results *base,
                       const struct ab_results *now)
{
    if (base->decode_horizon != now->decode_horizon && base->decode_horizon > 0 &&
        now->decode_horizon > 0)
        printf("note: decode horizon G differs (baseline %lld, new %lld): decode flop ratios of "
               "methods with one-off work (flops_once) move with it\n",
               (long long)base->decode_horizon, (long long)now->decode_horizon);
    print_table(rep, base, now);
    printf("check: %lld rows matched, %lld regressions, %lld missing, %lld added",
           (long long)rep->n_matched, (long long)rep->n_regressions, (long long)rep->n_missing,
           (long long)rep->n_added);
    if (rep->n_improved) printf(", %lld improved", (long long)rep->n_improved);
    printf("\n");
}

/* ---- --json and --junit (README, "Machine-readable output") */

/* The metric a finding names: its column, "feasible", or NULL for a whole row. */
static const char *finding_metric(const struct ab_check_finding *f,
                                  const struct ab_check_column *cols)
{
    return f->kind == AB_FIND_FEASIBLE ? "feasible" : f->column >= 0 ? cols[f->column].name : NULL;
}

static const char *sense_name(int sense)
{
    switch (sense) {
    case AB_SENSE_HIGH_WORSE: return "higher-is-worse";
    case AB_SENSE_LOW_WORSE: return "lower-is-worse";
    case AB_SENSE_COST: return "cost";
    default: return "setting";
    }
}

/* Whether column c is compared at all under o (accuracy columns left out by --metric are not;
 * the knob only with --any-change). */
static int column_checked(const struct ab_check_column *c, int i, const struct ab_check_opts *o)
{
    return is_accuracy(c) ? o->use[i] : c->sense == AB_SENSE_COST ? 1 : o->any_change;
}

/* --json: {schema, new, baseline, any_change, tolerances {column: {rtol, atol, sense,
 * checked}}, decode_horizon {baseline, new}, status pass|regression, compared, rows {baseline,
 * new, matched, regressions, missing, added, improved}, moved: [{kind, fails, workload, layer,
 * head, method, phase, target, knob_name, knob, metric, baseline, new, delta, direction,
 * reason}]}. Every finding is listed, the informational ones (better, added) too. */
static int print_json(const char *new_path, const char *base_path, const struct ab_check_opts *o,
                      const struct ab_check_report *rep, const struct ab_results *base,
                      const struct ab_results *now)
{
    int n_col;
    const struct ab_check_column *cols = ab_check_columns(&n_col);
    struct ab_json_doc d;
    ab_json_begin(&d);
    struct ab_json *r = d.root, *x;
    ab_json_str(&d, r, "schema", "attnbench/check/1");
    ab_json_str(&d, r, "new", new_path);
    ab_json_str(&d, r, "baseline", base_path);
    ab_json_bool(&d, r, "any_change", o->any_change);
    x = ab_json_obj(&d, r, "tolerances");
    for (int c = 0; c < n_col; c++) {
        struct ab_json *t = ab_json_obj(&d, x, cols[c].name);
        ab_json_num(&d, t, "rtol", o->rtol[c]);
        ab_json_num(&d, t, "atol", o->atol[c]);
        ab_json_str(&d, t, "sense", sense_name(cols[c].sense));
        ab_json_bool(&d, t, "checked", column_checked(&cols[c], c, o));
    }
    x = ab_json_obj(&d, r, "decode_horizon");
    if (base->decode_horizon > 0) ab_json_int(&d, x, "baseline", base->decode_horizon);
    else ab_json_null(&d, x, "baseline");
    if (now->decode_horizon > 0) ab_json_int(&d, x, "new", now->decode_horizon);
    else ab_json_null(&d, x, "new");
    ab_json_str(&d, r, "status", ab_check_failed(rep) ? "regression" : "pass");
    ab_json_int(&d, r, "compared", rep->n_matched);
    x = ab_json_obj(&d, r, "rows");
    ab_json_int(&d, x, "baseline", rep->n_base);
    ab_json_int(&d, x, "new", rep->n_new);
    ab_json_int(&d, x, "matched", rep->n_matched);
    ab_json_int(&d, x, "regressions", rep->n_regressions);
    ab_json_int(&d, x, "missing", rep->n_missing);
    ab_json_int(&d, x, "added", rep->n_added);
    ab_json_int(&d, x, "improved", rep->n_improved);
    x = ab_json_arr(&d, r, "moved");
    for (int64_t i = 0; i < rep->n_findings; i++) {
        const struct ab_check_finding *f = &rep->findings[i];
        const struct ab_cell *c = finding_row(f, base, now);
        struct ab_json *m = ab_json_obj(&d, x, NULL);
        int valued = f->kind != AB_FIND_MISSING && f->kind != AB_FIND_ADDED;
        double delta = f->new_value - f->base_value;
        ab_json_str(&d, m, "kind", ab_check_kind_name(f->kind));
        ab_json_bool(&d, m, "fails", f->fails);
        ab_json_str(&d, m, "workload", ab_check_basename(c->workload));
        ab_json_int(&d, m, "layer", c->layer);
        ab_json_int(&d, m, "head", c->head);
        ab_json_str(&d, m, "method", c->method);
        ab_json_str(&d, m, "phase", c->phase);
        ab_json_str(&d, m, "budget_kind", c->budget_kind ? c->budget_kind : "");
        ab_json_num(&d, m, "target", /* null: a direct --knob run */
                    c->budget_kind && !strcmp(c->budget_kind, "tokens") ? c->target_tokens
                                                                        : c->target_ratio);
        ab_json_str(&d, m, "knob_name", c->knob_name && *c->knob_name ? c->knob_name : NULL);
        ab_json_num(&d, m, "knob", c->knob);
        ab_json_str(&d, m, "metric", finding_metric(f, cols));
        ab_json_num(&d, m, "baseline", valued ? f->base_value : NAN);
        ab_json_num(&d, m, "new", valued ? f->new_value : NAN);
        ab_json_num(&d, m, "delta", valued ? delta : NAN);
        ab_json_str(&d, m, "direction", !valued || isnan(delta) || delta == 0 ? NULL
                                        : delta > 0                           ? "up"
                                                                              : "down");
        const struct ab_cell *nc = f->new_row >= 0 ? &now->cells[f->new_row] : NULL;
        ab_json_str(&d, m, "reason",
                    f->kind == AB_FIND_FEASIBLE && nc && !nc->feasible && nc->reason ? nc->reason
                                                                                     : NULL);
    }
    int rc = ab_json_print(&d, stdout);
    return rc ? ab_cmd_fail(rc) : -1;
}

/* One finding as a line of a JUnit failure ("worse rel_l2: baseline 0.1, new 0.15"). */
static void finding_text(const struct ab_check_finding *f, const struct ab_check_column *cols,
                         const struct ab_results *now, char *buf, size_t cap)
{
    const char *metric = finding_metric(f, cols);
    if (f->kind == AB_FIND_MISSING) {
        snprintf(buf, cap, "missing: the row is not in the new results");
        return;
    }
    snprintf(buf, cap, "%s %s: baseline %.8g, new %.8g", ab_check_kind_name(f->kind),
             metric ? metric : "-", f->base_value, f->new_value);
    if (f->kind == AB_FIND_FEASIBLE && f->new_row >= 0 && !now->cells[f->new_row].feasible) {
        const char *why = now->cells[f->new_row].reason;
        snprintf(buf + strlen(buf), cap - strlen(buf), " (now infeasible: %s)",
                 why && *why ? why : "?");
    }
}

/* --junit FILE: one test case per baseline row (class attnbench.check.METHOD, name "PHASE
 * TARGET WORKLOAD layer L head H"), failing when the row has a failing finding: the message
 * lists the failing findings, the text every finding of the row. Exit status, or -1. */
static int write_junit(const char *path, const char *new_path, const char *base_path,
                       const struct ab_check_report *rep, const struct ab_results *base,
                       const struct ab_results *now)
{
    int n_col;
    const struct ab_check_column *cols = ab_check_columns(&n_col);
    /* the findings of each baseline row: at[first[i] .. first[i + 1]) */
    int64_t nb = base->n_cells, *first = calloc((size_t)nb + 2, sizeof *first), *at = NULL;
    char *msg = NULL, *details = NULL;
    size_t msg_len, details_len;
    FILE *fm = NULL, *fd = NULL;
    int st = -1, rc;
    if (first) at = malloc((size_t)(rep->n_findings ? rep->n_findings : 1) * sizeof *at);
    if (!first || !at) {
        st = ab_cmd_fail(ab_fail(AB_E_NOMEM, "out of memory"));
        goto done;
    }
    for (int64_t i = 0; i < rep->n_findings; i++)
        if (rep->findings[i].base_row >= 0) first[rep->findings[i].base_row + 2]++;
    for (int64_t i = 0; i < nb; i++) first[i + 2] += first[i + 1];
    for (int64_t i = 0; i < rep->n_findings; i++)
        if (rep->findings[i].base_row >= 0) at[first[rep->findings[i].base_row + 1]++] = i;
    /* now first[i] .. first[i + 1] */
    int64_t n_failing = 0;
    for (int64_t i = 0; i < nb; i++) {
        int fails = 0;
        for (int64_t k = first[i]; k < first[i + 1]; k++) fails |= rep->findings[at[k]].fails;
        n_failing += fails;
    }
    struct ab_junit j;
    if ((rc = ab_junit_begin(&j, path, "attnbench check", nb, n_failing))) {
        st = ab_cmd_fail(rc);
        goto done;
    }
    ab_junit_property(&j, "new", new_path);
    ab_junit_property(&j, "baseline", base_path);
    for (int64_t i = 0; i < nb; i++) {
        const struct ab_cell *c = &base->cells[i];
        char cls[160], name[512], t[64], line[512];
        target_text(c, t, sizeof t);
        snprintf(cls, sizeof cls, "attnbench.check.%s", c->method ? c->method : "-");
        snprintf(name, sizeof name, "%s %s %s layer %lld head %lld", c->phase ? c->phase : "-", t,
                 ab_check_basename(c->workload), (long long)c->layer, (long long)c->head);
        const char *type = NULL;
        fm = open_memstream(&msg, &msg_len);
        fd = open_memstream(&details, &details_len);
        if (!fm || !fd) {
            ab_junit_abort(&j);
            st = ab_cmd_fail(ab_fail(AB_E_NOMEM, "out of memory"));
            goto done;
        }
        for (int64_t k = first[i]; k < first[i + 1]; k++) {
            const struct ab_check_finding *f = &rep->findings[at[k]];
            finding_text(f, cols, now, line, sizeof line);
            fprintf(fd, "%s\n", line);
            if (!f->fails) continue;
            if (!type) type = ab_check_kind_name(f->kind);
            else fputs("; ", fm);
            fputs(line, fm);
        }
        int bad = fclose(fm) != 0;
        bad |= fclose(fd) != 0;
        fm = fd = NULL;
        if (bad) {
            ab_junit_abort(&j);
            st = ab_cmd_fail(ab_fail(AB_E_NOMEM, "out of memory"));
            goto done;
        }
        ab_junit_case(&j, cls, name, type, msg, details);
        free(msg), free(details);
        msg = details = NULL;
    }
    if ((rc = ab_junit_commit(&j))) st = ab_cmd_fail(rc);
done:
    free(msg), free(details);
    free(first), free(at);
    return st;
}

int cmd_check(int argc, char **argv)
{
    const char *baseline = NULL, *rtol = NULL, *atol = NULL, *metric = NULL;
    const char *junit = NULL;
    int any_change = 0, json = 0;
    const struct ab_opt opts[] = {
        {"baseline", AB_OPT_STRING, &baseline, "OLD.h5", "the baseline results file (required)"},
        {"rtol", AB_OPT_STRING, &rtol, "R", "relative tolerance: a number, or NAME=R items (default 1e-3)"},
        {"atol", AB_OPT_STRING, &atol, "A", "absolute tolerance: a number, or NAME=A items (default 1e-6)"},
        {"metric", AB_OPT_STRING, &metric, "LIST", "accuracy columns to check (default: all of them)"},
        {"any-change", AB_OPT_FLAG, &any_change, NULL, "fail on a move beyond tolerance in either direction"},
        {"json", AB_OPT_FLAG, &json, NULL, "print one JSON document instead of the table (README, \"Machine-readable output\")"},
        {"junit", AB_OPT_STRING, &junit, "FILE", "also write a JUnit XML report, one test case per baseline row"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[2];
    int n_pos, st = ab_opts_parse("check", usage_text, opts, argc, argv, pos, 1, &n_pos);
    if (st >= 0) return st;
    if (n_pos != 1) return ab_cmd_error(EX_AB_USAGE, "check: name the new results file");
    if (!baseline) return ab_cmd_error(EX_AB_USAGE, "check: name the baseline with --baseline");

    struct ab_check_opts co;
    ab_check_defaults(&co);
    co.any_change = any_change;
    if (rtol && (st = parse_tolerances(rtol, "rtol", co.rtol)) >= 0) return st;
    if (atol && (st = parse_tolerances(atol, "atol", co.atol)) >= 0) return st;
    if (metric && (st = parse_metrics(metric, &co)) >= 0) return st;

    struct ab_results now, base;
    struct ab_check_report rep = {0};
    int rc;
    ab_results_init(&now);
    ab_results_init(&base);
    st = EX_AB_OK;
    if ((rc = ab_results_read_h5(pos[0], &now)) || (rc = ab_results_read_h5(baseline, &base))) {
        st = ab_cmd_fail(rc);
        goto done;
    }
    if ((rc = ab_check_compare(&base, &now, &co, &rep))) {
        st = ab_cmd_fail(rc);
        goto done;
    }
    if (junit && (st = write_junit(junit, pos[0], baseline, &rep, &base, &now)) >= 0) goto done;
    if (json) {
        if ((st = print_json(pos[0], baseline, &co, &rep, &base, &now)) >= 0) goto done;
    } else {
        print_text(&rep, &base, &now);
    }
    st = EX_AB_OK;
    fflush(stdout);
    if (rep.n_matched == 0 && base.n_cells > 0 && now.n_cells > 0)
        fprintf(stderr, "warning: check: no row of '%s' matches a row of '%s' (other workloads "
                "or methods?)\n", pos[0], baseline);
    if (ab_check_failed(&rep)) st = EX_AB_REGRESSION;
done:
    ab_check_report_free(&rep);
    ab_results_free(&now);
    ab_results_free(&base);
    return st;
}
