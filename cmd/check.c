/* check.c - `attnbench check NEW.h5 --baseline OLD.h5`: the regression gate (outputs.md,
 * "Regression gate"). Reads two results files, compares their /cells tables with
 * lib/eval/check.c and prints the offending rows as a table on stdout, then a one-line summary:
 *
 *   check: 2144 rows matched, 3 regressions, 0 missing, 1 added
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
#include "io/results_io.h"
#include "opts.h"

static const char *usage_text =
    "attnbench check NEW.h5 --baseline OLD.h5 [--rtol R] [--atol A] [--metric m1,m2,...]\n"
    "                [--any-change]\n"
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
    if (!isnan(c->target_ratio)) snprintf(buf, cap, "%.6g", c->target_ratio);
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

int cmd_check(int argc, char **argv)
{
    const char *baseline = NULL, *rtol = NULL, *atol = NULL, *metric = NULL;
    int any_change = 0;
    const struct ab_opt opts[] = {
        {"baseline", AB_OPT_STRING, &baseline, "OLD.h5", "the baseline results file (required)"},
        {"rtol", AB_OPT_STRING, &rtol, "R", "relative tolerance: a number, or NAME=R items (default 1e-3)"},
        {"atol", AB_OPT_STRING, &atol, "A", "absolute tolerance: a number, or NAME=A items (default 1e-6)"},
        {"metric", AB_OPT_STRING, &metric, "LIST", "accuracy columns to check (default: all of them)"},
        {"any-change", AB_OPT_FLAG, &any_change, NULL, "fail on a move beyond tolerance in either direction"},
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
    if (base.decode_horizon != now.decode_horizon && base.decode_horizon > 0 &&
        now.decode_horizon > 0)
        printf("note: decode horizon G differs (baseline %lld, new %lld): decode flop ratios of "
               "methods with one-off work (flops_once) move with it\n",
               (long long)base.decode_horizon, (long long)now.decode_horizon);
    print_table(&rep, &base, &now);
    printf("check: %lld rows matched, %lld regressions, %lld missing, %lld added",
           (long long)rep.n_matched, (long long)rep.n_regressions, (long long)rep.n_missing,
           (long long)rep.n_added);
    if (rep.n_improved) printf(", %lld improved", (long long)rep.n_improved);
    printf("\n");
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
