/* report.c - `attnbench report`: results files in, a folder of figures, tables and report.md
 * out (see report.h). This file indexes the merged cells, draws the figures and maps and runs
 * the whole report; the inputs are loaded by report_load.c, the kept masks of the maps drawn by
 * kept_map.c, and report.md written by report_md.c.
 *
 * The report reads everything it says from the data. Methods are ordered (and coloured) by their
 * row in the registry, so a method looks the same in every report. Means and tails over heads
 * are the /summary rows recomputed over the merged cells (ab_results_summarise); "best" at a
 * budget is chosen only among methods feasible on every head of the phase there, because a mean
 * over the heads a method happens to reach is not comparable with a mean over all of them (a
 * better-looking method with partial coverage is named beside it). A method without a knob
 * (fixed cost) competes at every budget its cost fits under.
 *
 * Order of work: index the cells, write every .tsv/.gp, the libpng heatmaps and maps and the CSV
 * tables, then run gnuplot on the scripts, then write report.md (which says what was rendered).
 * A failure to write stops the report at once; a gnuplot failure is remembered and returned
 * after report.md is written. */
#include "report/report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ab.h"
#include "io/csv.h"
#include "io/gnuplot.h"
#include "io/h5_workload.h"
#include "io/kept_map.h"
#include "io/png_map.h"
#include "report/report_internal.h"
#include "io/results_io.h"
#include "methods/method.h"

/* ================================================================== indexing the results */

/* Accuracy columns the report plots: the summary's mean and weak tail, and the cell's value. */
struct metric {
    const char *name, *what;
    int logy, higher_better;
    size_t mean, tail, cell;
    const char *tail_name;
};
#define SUMF(f) offsetof(struct ab_summary_row, f)
#define CELLF(f) offsetof(struct ab_cell, f)
static const struct metric metrics[] = {
    {"rel_l2", "relative L2 error of the output", 1, 0, SUMF(rel_l2_mean), SUMF(rel_l2_p90),
     CELLF(rel_l2), "p90"},
    {"recall", "attention mass kept (recall)", 0, 1, SUMF(recall_mean), SUMF(recall_p10),
     CELLF(recall), "p10"},
    {"task_acc", "task accuracy", 0, 1, SUMF(task_acc_mean), SUMF(task_acc_p10), CELLF(task_acc),
     "p10"},
    {"cos_min", "worst-row cosine similarity", 0, 1, SUMF(cos_min_mean), SUMF(cos_min_p10),
     CELLF(cos_min), "p10"},
};
_Static_assert(sizeof metrics / sizeof metrics[0] == N_METRICS, "metrics[] and M_*");

static double field(const void *row, size_t off)
{
    return *(const double *)((const char *)row + off);
}

int ab_rep_strv_push(struct strv *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ab_rep_strv_push(struct strv *v, const char *fmt, ...)
{
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 8;
        char **grown = realloc(v->s, sizeof(char *) * (size_t)cap);
        if (!grown) return ab_fail(AB_E_NOMEM, "out of memory");
        v->s = grown, v->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = malloc((size_t)len + 1);
    if (!s) return ab_fail(AB_E_NOMEM, "out of memory");
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
    v->s[v->n++] = s;
    return AB_OK;
}

static void strv_free(struct strv *v)
{
    for (int i = 0; i < v->n; i++) free(v->s[i]);
    free(v->s);
    memset(v, 0, sizeof *v);
}

static int same(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* "1/8" for reciprocals of integers, "1" for 1, else %.3g. */
void ab_rep_ratio_label(double t, char *buf, size_t cap)
{
    if (isnan(t)) {
        snprintf(buf, cap, "knob");
        return;
    }
    double k = 1 / t;
    if (t == 1) snprintf(buf, cap, "1");
    else if (t > 0 && fabs(k - round(k)) < 1e-9 * k) snprintf(buf, cap, "1/%.0f", round(k));
    else snprintf(buf, cap, "%.3g", t);
}

/* The ratio as it appears in file names: %g (0.125, 0.03125). */
static void ratio_file(double t, char *buf, size_t cap) { snprintf(buf, cap, "%g", t); }

static int find_method(const struct rep *R, const char *name)
{
    for (int i = 0; i < R->n_m; i++)
        if (!strcmp(R->m[i].name, name)) return i;
    return -1;
}

static int find_target(const struct rep *R, double t)
{
    for (int i = 0; i < R->n_t; i++)
        if (same(R->t[i], t)) return i;
    return -1;
}

static int cmp_meth(const void *a, const void *b)
{
    const struct meth *x = a, *y = b;
    if (x->style != y->style) return x->style < y->style ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Builds the method, phase, target and workload indexes and the group table. */
static int build_index(struct rep *R)
{
    const struct ab_results *r = R->r;
    int64_t nc = r->n_cells;
    R->m = calloc((size_t)(nc + 1), sizeof *R->m); /* at most one per cell; trimmed below */
    R->t = malloc(sizeof(double) * (size_t)(nc + 1));
    R->wname = malloc(sizeof(char *) * (size_t)(nc + 1));
    R->cm = malloc(sizeof(int) * (size_t)(nc + 1));
    R->cp = malloc(sizeof(int) * (size_t)(nc + 1));
    R->ct = malloc(sizeof(int) * (size_t)(nc + 1));
    R->cw = malloc(sizeof(int) * (size_t)(nc + 1));
    if (!R->m || !R->t || !R->wname || !R->cm || !R->cp || !R->ct || !R->cw)
        return ab_fail(AB_E_NOMEM, "out of memory indexing %lld cells", (long long)nc);
    /* methods, in registry order; phases prefill, decode, then others; targets; workloads */
    int last_m = -1, last_w = -1;
    for (int64_t c = 0; c < nc; c++) {
        const struct ab_cell *cell = &r->cells[c];
        const char *mn = cell->method ? cell->method : "", *pn = cell->phase ? cell->phase : "";
        const char *wn = cell->workload ? cell->workload : "";
        if (last_m < 0 || strcmp(R->m[last_m].name, mn)) last_m = find_method(R, mn);
        if (last_m < 0) {
            last_m = R->n_m++;
            R->m[last_m].name = mn;
            R->m[last_m].family = cell->family ? cell->family : "";
            R->m[last_m].style = 1000 + last_m;
            for (int i = 0; i < ab_n_methods; i++)
                if (!strcmp(ab_methods[i]->name, mn)) R->m[last_m].style = i;
        }
        if (cell->knob_name && cell->knob_name[0]) R->m[last_m].has_knob = 1;
        int p = -1;
        for (int i = 0; i < R->n_p; i++)
            if (!strcmp(R->phase[i], pn)) p = i;
        if (p < 0) {
            if (R->n_p == 8) return ab_fail(AB_E_DATA, "more than 8 phases in the results");
            R->phase[p = R->n_p++] = pn;
        }
        if (find_target(R, cell->target_ratio) < 0) R->t[R->n_t++] = cell->target_ratio;
        if (last_w < 0 || strcmp(R->wname[last_w], wn)) {
            last_w = -1;
            for (int i = 0; i < R->n_w; i++)
                if (!strcmp(R->wname[i], wn)) last_w = i;
            if (last_w < 0) R->wname[last_w = R->n_w++] = wn;
        }
        R->cw[c] = last_w;
        R->n_layer = AB_MAX(R->n_layer, cell->layer + 1);
        R->n_head = AB_MAX(R->n_head, cell->head + 1);
    }
    /* catalogue order: a method keeps its place (and colour) whatever the results hold */
    qsort(R->m, (size_t)R->n_m, sizeof *R->m, cmp_meth);
    for (int i = 0; i < R->n_m; i++)
        if (R->m[i].style >= 1000) R->m[i].style = ab_n_methods + i;
    /* prefill first, decode second, any other phase after them */
    const char *order[8];
    int n_o = 0;
    static const char *const known[] = {"prefill", "decode"};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < R->n_p; i++)
            if (!strcmp(R->phase[i], known[k])) order[n_o++] = R->phase[i];
    for (int i = 0; i < R->n_p; i++)
        if (strcmp(R->phase[i], known[0]) && strcmp(R->phase[i], known[1]))
            order[n_o++] = R->phase[i];
    memcpy(R->phase, order, sizeof(char *) * (size_t)R->n_p);
    /* targets: descending, NaN last */
    int n_fin = 0;
    for (int i = 0; i < R->n_t; i++)
        if (!isnan(R->t[i])) R->t[n_fin++] = R->t[i];
    int has_nan = n_fin < R->n_t;
    qsort(R->t, (size_t)n_fin, sizeof(double), cmp_desc);
    if (has_nan) R->t[n_fin] = NAN;

    size_t n_grp = (size_t)R->n_m * (size_t)R->n_p * (size_t)(R->n_t ? R->n_t : 1);
    R->grp = malloc(sizeof(int) * n_grp);
    R->grp_cells = calloc(n_grp, sizeof(int64_t));
    if (!R->grp || !R->grp_cells) return ab_fail(AB_E_NOMEM, "out of memory");
    for (size_t g = 0; g < n_grp; g++) R->grp[g] = -1;
    for (int64_t c = 0; c < nc; c++) {
        const struct ab_cell *cell = &r->cells[c];
        R->cm[c] = find_method(R, cell->method ? cell->method : "");
        R->cp[c] = 0;
        for (int i = 0; i < R->n_p; i++)
            if (!strcmp(R->phase[i], cell->phase ? cell->phase : "")) R->cp[c] = i;
        R->ct[c] = find_target(R, cell->target_ratio);
        R->grp_cells[((size_t)R->cm[c] * (size_t)R->n_p + (size_t)R->cp[c]) * (size_t)R->n_t +
                     (size_t)R->ct[c]]++;
    }
    for (int64_t s = 0; s < r->n_summary; s++) {
        const struct ab_summary_row *row = &r->summary[s];
        int mi = find_method(R, row->method ? row->method : ""), pi = -1;
        for (int i = 0; i < R->n_p; i++)
            if (!strcmp(R->phase[i], row->phase ? row->phase : "")) pi = i;
        int ti = find_target(R, row->target_ratio);
        if (mi >= 0 && pi >= 0 && ti >= 0)
            R->grp[((size_t)mi * (size_t)R->n_p + (size_t)pi) * (size_t)R->n_t + (size_t)ti] =
                (int)s;
    }
    /* budgets */
    R->b = malloc(sizeof(double) * (size_t)(R->n_t + 1));
    if (!R->b) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int ti = 0; ti < R->n_t; ti++) {
        if (isnan(R->t[ti])) continue;
        int knobbed = 0;
        for (int mi = 0; mi < R->n_m && !knobbed; mi++)
            for (int pi = 0; pi < R->n_p; pi++)
                if (R->m[mi].has_knob &&
                    R->grp_cells[((size_t)mi * (size_t)R->n_p + (size_t)pi) * (size_t)R->n_t +
                                 (size_t)ti])
                    knobbed = 1;
        if (knobbed) R->b[R->n_b++] = R->t[ti];
    }
    /* B: the budget nearest to the one asked for, on a log scale */
    R->B = NAN;
    for (int i = 0; i < R->n_b; i++)
        if (isnan(R->B) || fabs(log(R->b[i] / R->o->budget)) < fabs(log(R->B / R->o->budget)))
            R->B = R->b[i];
    return AB_OK;
}

/* The group of method mi in phase pi at budget t: its cells at target t, or for a method
 * without a knob its fixed-cost cells when their mean achieved ratio fits under t (t NaN: the
 * NaN-target group). *ti receives the target index; -1 when the method has none there. */
int ab_rep_group_at(const struct rep *R, int mi, int pi, double t, int *ti)
{
    int k = find_target(R, t);
    *ti = -1;
    if (k >= 0 && R->grp_cells[ab_rep_gidx(R, mi, pi, k)]) {
        *ti = k;
        return R->grp[ab_rep_gidx(R, mi, pi, k)];
    }
    if (R->m[mi].has_knob || isnan(t)) return -1;
    for (int j = 0; j < R->n_t; j++) {
        int s = R->grp[ab_rep_gidx(R, mi, pi, j)];
        if (s >= 0 && R->r->summary[s].n_heads > 0 &&
            R->r->summary[s].flop_ratio <= t * (1 + 1e-9)) {
            *ti = j;
            return s;
        }
    }
    return -1;
}

/* Whether method mi runs in phase pi at all. */
static int runs_in(const struct rep *R, int mi, int pi)
{
    for (int j = 0; j < R->n_t; j++)
        if (R->grp_cells[ab_rep_gidx(R, mi, pi, j)]) return 1;
    return 0;
}

/* Best method in phase pi at budget t by metric k among methods feasible on every head of the
 * group (ties: the lower rel_l2). Returns the method index or -1; *partial receives a method
 * with partial coverage whose mean is better still (or -1). */
int ab_rep_best_at(const struct rep *R, int pi, double t, int k, int *partial)
{
    const struct metric *mt = &metrics[k];
    int best = -1, part = -1;
    double bv = NAN, br = NAN, pv = NAN;
    for (int mi = 0; mi < R->n_m; mi++) {
        int ti, s = ab_rep_group_at(R, mi, pi, t, &ti);
        if (s < 0 || R->r->summary[s].n_heads <= 0) continue;
        const struct ab_summary_row *row = &R->r->summary[s];
        double v = field(row, mt->mean), rl = row->rel_l2_mean;
        if (!isfinite(v)) continue;
        int full = row->n_heads == R->grp_cells[ab_rep_gidx(R, mi, pi, ti)];
        int better_than_best = best < 0 ||
                               (mt->higher_better ? v > bv : v < bv) ||
                               (v == bv && rl < br);
        if (full && better_than_best) best = mi, bv = v, br = rl;
        if (!full && (part < 0 || (mt->higher_better ? v > pv : v < pv))) part = mi, pv = v;
    }
    if (partial) *partial = -1;
    if (partial && part >= 0 && (best < 0 || (mt->higher_better ? pv > bv : pv < bv)))
        *partial = part;
    return best;
}

/* ================================================================== figures */

int ab_rep_add_fig(struct rep *R, int section, int gp, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int ab_rep_add_fig(struct rep *R, int section, int gp, const char *file, const char *fmt, ...)
{
    if (R->n_fig == R->cap_fig) {
        int cap = R->cap_fig ? 2 * R->cap_fig : 16;
        struct fig *grown = realloc(R->fig, sizeof *grown * (size_t)cap);
        if (!grown) return ab_fail(AB_E_NOMEM, "out of memory");
        R->fig = grown, R->cap_fig = cap;
    }
    char cap_buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cap_buf, sizeof cap_buf, fmt, ap);
    va_end(ap);
    struct fig *f = &R->fig[R->n_fig];
    *f = (struct fig){.file = strdup(file), .caption = strdup(cap_buf), .section = section,
                      .gp = gp, .rendered = !gp};
    if (!f->file || !f->caption) {
        free(f->file), free(f->caption);
        return ab_fail(AB_E_NOMEM, "out of memory");
    }
    R->n_fig++;
    return AB_OK;
}

void ab_rep_announce(const struct rep *R, const char *name)
{
    if (!R->o->on_file) return;
    char *p = ab_path_join(R->o->dir, name, "");
    if (p) R->o->on_file(R->o->user, p);
    free(p);
}

/* Announces name.tsv and name.gp. */
static void announce_pair(const struct rep *R, const char *stem)
{
    char buf[300];
    snprintf(buf, sizeof buf, "%s.tsv", stem);
    ab_rep_announce(R, buf);
    snprintf(buf, sizeof buf, "%s.gp", stem);
    ab_rep_announce(R, buf);
}

/* The explicit x tics of frontier plots: every budget, and 1. */
struct tics {
    int n;
    double x[72];
    char lab[72][16];
    const char *labp[72];
};

static void make_tics(const struct rep *R, struct tics *t, int with_one)
{
    t->n = 0;
    for (int i = 0; i < R->n_t && t->n < 71; i++)
        if (!isnan(R->t[i])) {
            t->x[t->n] = R->t[i];
            ab_rep_ratio_label(R->t[i], t->lab[t->n], sizeof t->lab[0]);
            t->n++;
        }
    int has1 = 0;
    for (int i = 0; i < t->n; i++) has1 |= t->x[i] == 1;
    if (has1 && !with_one) { /* 1 is only there for fixed-cost methods: drop it when unplotted */
        int k = 0;
        for (int i = 0; i < t->n; i++)
            if (t->x[i] != 1) t->x[k] = t->x[i], memcpy(t->lab[k++], t->lab[i], sizeof t->lab[0]);
        t->n = k;
    }
    if (!has1 && with_one) {
        t->x[t->n] = 1;
        snprintf(t->lab[t->n], sizeof t->lab[0], "1");
        t->n++;
    }
    for (int i = 0; i < t->n; i++) t->labp[i] = t->lab[i];
}

/* frontier-<metric>: mean and tail over heads against the mean achieved ratio. */
static int frontier(struct rep *R, int k)
{
    const struct metric *mt = &metrics[k];
    int n_cols = 6, rc = AB_OK, any = 0;
    static const char *const col_names[] = {"flop_ratio", "mean", "tail", "target_ratio",
                                            "feasible_heads", "cells"};
    struct ab_gp_panel *panels = calloc((size_t)R->n_p, sizeof *panels);
    struct ab_gp_series *series = calloc((size_t)(R->n_p * R->n_m + 1), sizeof *series);
    const double **colp = calloc((size_t)(R->n_p * R->n_m * n_cols + 1), sizeof(double *));
    double *vals = calloc((size_t)(R->n_p * R->n_m * n_cols * (R->n_t + 1) + 1), sizeof(double));
    char (*titles)[80] = calloc((size_t)(R->n_p * R->n_m + 1), sizeof *titles);
    if (!panels || !series || !colp || !vals || !titles) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    int n_series = 0;
    size_t nv = 0;
    int omitted_dense = 0;
    for (int pi = 0; pi < R->n_p; pi++) {
        panels[pi].title = R->phase[pi];
        panels[pi].series = &series[n_series];
        for (int mi = 0; mi < R->n_m; mi++) {
            /* the reference is exact up to rounding: it would only stretch a log error axis */
            if (mt->logy && !strcmp(R->m[mi].family, "dense")) {
                omitted_dense |= runs_in(R, mi, pi);
                continue;
            }
            /* points: the method's summary rows in this phase, by achieved ratio */
            int idx[72], n = 0;
            for (int ti = 0; ti < R->n_t && n < 72; ti++) {
                int s = R->grp[ab_rep_gidx(R, mi, pi, ti)];
                if (s < 0 || R->r->summary[s].n_heads <= 0) continue;
                if (!isfinite(field(&R->r->summary[s], mt->mean))) continue;
                idx[n++] = s;
            }
            if (!n) continue;
            for (int a = 1; a < n; a++) /* insertion sort by ratio */
                for (int b = a; b > 0 && R->r->summary[idx[b]].flop_ratio <
                                             R->r->summary[idx[b - 1]].flop_ratio; b--) {
                    int tmp = idx[b];
                    idx[b] = idx[b - 1], idx[b - 1] = tmp;
                }
            struct ab_gp_series *se = &series[n_series];
            const double **cols = &colp[n_series * n_cols];
            for (int c = 0; c < n_cols; c++) cols[c] = &vals[nv + (size_t)c * (size_t)n];
            for (int i = 0; i < n; i++) {
                const struct ab_summary_row *row = &R->r->summary[idx[i]];
                int ti = find_target(R, row->target_ratio);
                double *v = &vals[nv];
                v[0 * n + i] = row->flop_ratio;
                v[1 * n + i] = field(row, mt->mean);
                v[2 * n + i] = field(row, mt->tail);
                v[3 * n + i] = row->target_ratio;
                v[4 * n + i] = (double)row->n_heads;
                v[5 * n + i] = (double)R->grp_cells[ab_rep_gidx(R, mi, pi, ti)];
            }
            nv += (size_t)(n_cols * n);
            snprintf(titles[n_series], sizeof titles[0], "%s", R->m[mi].name);
            *se = (struct ab_gp_series){.title = titles[n_series], .style = R->m[mi].style,
                                        .n = n, .cols = cols};
            panels[pi].n_series++;
            n_series++;
            any = 1;
        }
    }
    if (!any) {
        rc = ab_rep_strv_push(&R->notes[SEC_FRONTIER], "No %s values in these results: frontier-%s "
                       "not drawn.", mt->name, mt->name);
        goto done;
    }
    double x_max = 0;
    for (size_t i = 0; i < (size_t)n_series; i++)
        for (int64_t j = 0; j < series[i].n; j++) x_max = fmax(x_max, series[i].cols[0][j]);
    struct tics tics;
    make_tics(R, &tics, x_max > 0.7);
    char name[160], title[400], ylabel[120], tail_title[80];
    snprintf(name, sizeof name, "frontier-%s%s", mt->name, R->suffix ? R->suffix : "");
    if (R->subset)
        snprintf(title, sizeof title, "%s against FLOP ratio on %s (mean over heads)", mt->name,
                 R->subset);
    else
        snprintf(title, sizeof title, "%s against FLOP ratio (mean over heads)", mt->name);
    snprintf(ylabel, sizeof ylabel, "%s%s", mt->name, mt->logy ? " (log)" : "");
    snprintf(tail_title, sizeof tail_title, "%s over heads", mt->tail_name);
    struct ab_gp_lines pl = {.name = name, .title = title,
                             .xlabel = "achieved FLOP ratio (log)", .ylabel = ylabel,
                             .logx = 1, .logy = mt->logy, .n_cols = n_cols,
                             .col_names = col_names, .tail_col = 2, .tail_title = tail_title,
                             .n_xtics = tics.n, .xtics = tics.x, .xtic_labels = tics.labp,
                             .ymin = mt->logy ? NAN : (k == M_COS_MIN ? NAN : 0),
                             .ymax = mt->logy ? NAN : (k == M_COS_MIN ? 1.02 : 1.05),
                             .n_panels = R->n_p, .panels = panels, .width = 1200,
                             .height = 500};
    if ((rc = ab_gp_lines_write(R->o->dir, &pl)) != AB_OK) goto done;
    announce_pair(R, name);
    char png[200];
    snprintf(png, sizeof png, "%s.png", name);
    rc = ab_rep_add_fig(R, SEC_FRONTIER, 1, png,
                 "%s (%s) against achieved FLOP ratio%s%s: mean over the feasible heads of each "
                 "(method, budget), dotted line the %s over heads%s.",
                 mt->name, mt->what, R->subset ? " on " : "", R->subset ? R->subset : "",
                 mt->tail_name,
                 omitted_dense ? "; dense, the reference, is left out (its error is rounding)"
                               : "");
done:
    free(panels), free(series), free(colp), free(vals), free(titles);
    return rc;
}

/* Cells of a (method, phase) group at budget t, counted feasible / all. */
static void coverage(const struct rep *R, int mi, int pi, int ti, int s, int64_t *feas,
                     int64_t *all)
{
    *all = ti >= 0 ? R->grp_cells[ab_rep_gidx(R, mi, pi, ti)] : 0;
    *feas = s >= 0 ? R->r->summary[s].n_heads : 0;
}

/* isoflops-<ratio>: every method of each phase at budget t. */
static int isoflops(struct rep *R, double t)
{
    int rc = AB_OK;
    int second = M_TASK_ACC; /* task accuracy when there is any at t, else recall */
    int any_task = 0;
    for (int pi = 0; pi < R->n_p; pi++)
        for (int mi = 0; mi < R->n_m; mi++) {
            int ti, s = ab_rep_group_at(R, mi, pi, t, &ti);
            if (s >= 0 && isfinite(R->r->summary[s].task_acc_mean)) any_task = 1;
        }
    if (!any_task) second = M_RECALL;
    int ks[2] = {M_REL_L2, second};
    struct ab_gp_bar *bars = calloc((size_t)(2 * R->n_p * R->n_m + 1), sizeof *bars);
    struct ab_gp_bar_group *groups = calloc((size_t)(2 * R->n_p + 1), sizeof *groups);
    char (*labels)[64] = calloc((size_t)(R->n_p * R->n_m + 1), sizeof *labels);
    char (*gtitles)[64] = calloc((size_t)(R->n_p + 1), sizeof *gtitles);
    char footer[1200] = "";
    size_t fl = 0;
    if (!bars || !groups || !labels || !gtitles) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    struct ab_gp_bar_panel panels[2];
    int nb = 0, n_lab = 0;
    for (int k = 0; k < 2; k++) {
        const struct metric *mt = &metrics[ks[k]];
        panels[k] = (struct ab_gp_bar_panel){.title = mt->name, .ylabel = mt->name,
                                             .logy = mt->logy, .ymin = NAN,
                                             .ymax = mt->logy ? NAN : 1.1,
                                             .groups = &groups[k * R->n_p]};
        for (int pi = 0; pi < R->n_p; pi++) {
            struct ab_gp_bar_group *g = &groups[k * R->n_p + pi];
            snprintf(gtitles[pi], sizeof gtitles[0], "%s", R->phase[pi]);
            *g = (struct ab_gp_bar_group){.title = gtitles[pi], .bars = &bars[nb]};
            for (int mi = 0; mi < R->n_m; mi++) {
                if (!runs_in(R, mi, pi)) continue;
                int ti, s = ab_rep_group_at(R, mi, pi, t, &ti);
                if (ti < 0 && !R->m[mi].has_knob) continue; /* fixed cost above the budget */
                int64_t feas, all;
                coverage(R, mi, pi, ti, s, &feas, &all);
                double v = s >= 0 && feas > 0 ? field(&R->r->summary[s], mt->mean) : NAN;
                const char *lab = R->m[mi].name;
                if (k == 0) {
                    if (feas > 0 && feas < all)
                        snprintf(labels[n_lab], sizeof labels[0], "%s (%lld/%lld)",
                                 R->m[mi].name, (long long)feas, (long long)all);
                    else
                        snprintf(labels[n_lab], sizeof labels[0], "%s", R->m[mi].name);
                    lab = labels[n_lab++];
                    if (ti >= 0 && feas == 0 && fl < sizeof footer - 80)
                        fl += (size_t)snprintf(footer + fl, sizeof footer - fl, "%s%s (%s)",
                                               fl ? ", " : "infeasible at this budget: ",
                                               R->m[mi].name, R->phase[pi]);
                } else {
                    /* the same labels as the first panel, in the same order */
                    lab = groups[pi].bars[g->n_bars].label;
                }
                bars[nb++] = (struct ab_gp_bar){
                    .label = lab, .style = R->m[mi].style, .value = v,
                    .missing = ti < 0 ? "not run" : feas == 0 ? "infeasible" : "no value"};
                g->n_bars++;
            }
            panels[k].n_groups++;
        }
    }
    if (fl && fl < sizeof footer - 60)
        snprintf(footer + fl, sizeof footer - fl, ". (k/n): feasible on k of n heads.");
    else if (!fl)
        snprintf(footer, sizeof footer, "Means over feasible heads; (k/n): feasible on k of n "
                                        "heads.");
    char rl[32], rf[32], name[64], title[200];
    ab_rep_ratio_label(t, rl, sizeof rl);
    ratio_file(t, rf, sizeof rf);
    snprintf(name, sizeof name, "isoflops-%s", rf);
    snprintf(title, sizeof title, "Methods at FLOP ratio %s (%g): mean over heads", rl, t);
    struct ab_gp_bars pl = {.name = name, .title = title, .footer = footer, .n_panels = 2,
                            .panels = panels, .width = 1200, .height = 560};
    if ((rc = ab_gp_bars_write(R->o->dir, &pl)) != AB_OK) goto done;
    announce_pair(R, name);
    char png[80];
    snprintf(png, sizeof png, "%s.png", name);
    rc = ab_rep_add_fig(R, SEC_ISO, 1, png,
                 "At FLOP ratio %s: mean rel_l2 (log scale) and mean %s of every method, one "
                 "cluster per phase; infeasible methods are marked, not drawn.",
                 rl, metrics[second].name);
done:
    free(bars), free(groups), free(labels), free(gtitles);
    return rc;
}

/* The (n_layer, n_head) grid of metric k of method mi in phase pi at budget t: the mean over
 * workloads of the feasible cells' values (NaN where there is none). */
static int metric_grid(const struct rep *R, int mi, int pi, int ti, int k, double *v)
{
    int64_t n = R->n_layer * R->n_head;
    int *cnt = calloc((size_t)n, sizeof(int));
    if (!cnt) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) v[i] = 0;
    for (int64_t c = 0; c < R->r->n_cells; c++) {
        const struct ab_cell *cell = &R->r->cells[c];
        if (R->cm[c] != mi || R->cp[c] != pi || R->ct[c] != ti || !cell->feasible) continue;
        double x = field(cell, metrics[k].cell);
        if (isnan(x) || cell->layer < 0 || cell->head < 0) continue;
        int64_t at = cell->layer * R->n_head + cell->head;
        v[at] += x;
        cnt[at]++;
    }
    for (int64_t i = 0; i < n; i++) v[i] = cnt[i] ? v[i] / cnt[i] : NAN;
    free(cnt);
    return AB_OK;
}

/* Writes a grid as a matrix .tsv with a comment header (atomic). */
static int write_grid_tsv(const struct rep *R, const char *name, const char *what,
                          const double *v, int64_t rows, int64_t cols)
{
    char *path = ab_path_join(R->o->dir, name, ".tsv");
    if (!path) return ab_fail(AB_E_NOMEM, "out of memory");
    struct ab_outfile f;
    int rc = ab_outfile_open(&f, path);
    free(path);
    if (rc != AB_OK) return rc;
    fprintf(f.f, "# %s\n# rows: layers 0..%lld (top to bottom); columns: heads 0..%lld; NaN: no "
                 "value\n",
            what, (long long)rows - 1, (long long)cols - 1);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double x = v[r * cols + c];
            char buf[AB_CSV_F64_MAX];
            if (isfinite(x)) ab_csv_format_f64(x, buf);
            else snprintf(buf, sizeof buf, "NaN");
            fprintf(f.f, "%s%c", buf, c + 1 < cols ? '\t' : '\n');
        }
    if ((rc = ab_outfile_commit(&f)) == AB_OK) {
        char buf[300];
        snprintf(buf, sizeof buf, "%s.tsv", name);
        ab_rep_announce(R, buf);
    }
    return rc;
}

/* Writes a grid as an indexed viridis PNG (and its .tsv). */
static int write_grid_png(const struct rep *R, const char *name, const char *what,
                          const double *v, int64_t rows, int64_t cols, double lo, double hi,
                          int logscale)
{
    int rc = write_grid_tsv(R, name, what, v, rows, cols);
    if (rc != AB_OK) return rc;
    uint8_t *px = NULL;
    int64_t w, h;
    if ((rc = ab_grid_image(v, rows, cols, lo, hi, logscale, R->o->cell_px, &px, &w, &h)) !=
        AB_OK)
        return rc;
    char *path = ab_path_join(R->o->dir, name, ".png");
    rc = path ? ab_png_write_indexed(path, px, w, h, ab_viridis, 256)
              : ab_fail(AB_E_NOMEM, "out of memory");
    free(path), free(px);
    if (rc == AB_OK) {
        char buf[300];
        snprintf(buf, sizeof buf, "%s.png", name);
        ab_rep_announce(R, buf);
    }
    return rc;
}

/* heads-rel_l2-<B> (gnuplot, every method) and heads-<method>-<phase>-<B> (libpng, each). */
static int heatmaps(struct rep *R)
{
    if (isnan(R->B) || R->n_layer < 1 || R->n_head < 1) return AB_OK;
    int64_t n = R->n_layer * R->n_head;
    int n_g = 0, rc = AB_OK;
    struct ab_gp_grid *grids = calloc((size_t)(R->n_m * R->n_p + 1), sizeof *grids);
    double *vals = malloc(sizeof(double) * (size_t)(n * (R->n_m * R->n_p + 1)));
    char (*titles)[96] = calloc((size_t)(R->n_m * R->n_p + 1), sizeof *titles);
    int *gm = calloc((size_t)(R->n_m * R->n_p + 1), sizeof(int) * 2);
    if (!grids || !vals || !titles || !gm) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    double lo = INFINITY, hi = -INFINITY;
    for (int pi = 0; pi < R->n_p; pi++)
        for (int mi = 0; mi < R->n_m; mi++) {
            int ti, s = ab_rep_group_at(R, mi, pi, R->B, &ti);
            if (s < 0 || R->r->summary[s].n_heads <= 0) continue;
            double *v = &vals[n_g * n];
            if ((rc = metric_grid(R, mi, pi, ti, M_REL_L2, v)) != AB_OK) goto done;
            int finite = 0;
            for (int64_t i = 0; i < n; i++)
                if (isfinite(v[i]) && v[i] > 0)
                    lo = fmin(lo, v[i]), hi = fmax(hi, v[i]), finite = 1;
            if (!finite) continue;
            snprintf(titles[n_g], sizeof titles[0], "%s (%s)", R->m[mi].name, R->phase[pi]);
            grids[n_g] = (struct ab_gp_grid){.title = titles[n_g], .rows = R->n_layer,
                                             .cols = R->n_head, .v = v};
            gm[2 * n_g] = mi, gm[2 * n_g + 1] = pi;
            n_g++;
        }
    if (!n_g) goto done;
    /* one log scale for every method: colours compare across panels */
    lo = pow(10, floor(log10(lo) * 4) / 4), hi = pow(10, ceil(log10(hi) * 4) / 4);
    if (!(hi > lo)) hi = lo * 10;
    char rl[32], rf[32], name[96], title[200], what[240];
    ab_rep_ratio_label(R->B, rl, sizeof rl);
    ratio_file(R->B, rf, sizeof rf);
    snprintf(name, sizeof name, "heads-rel_l2-%s", rf);
    snprintf(title, sizeof title, "rel_l2 per head at FLOP ratio %s (layers down, heads across)",
             rl);
    struct ab_gp_heatmaps pl = {.name = name, .title = title, .xlabel = "head", .ylabel = "layer",
                                .cblabel = "rel_l2", .shared_scale = 1, .lo = lo, .hi = hi,
                                .logcb = 1, .n_grids = n_g, .grids = grids, .width = 1200};
    if ((rc = ab_gp_heatmaps_write(R->o->dir, &pl)) != AB_OK) goto done;
    announce_pair(R, name);
    char png[128];
    snprintf(png, sizeof png, "%s.png", name);
    if ((rc = ab_rep_add_fig(R, SEC_HEADS, 1, png,
                      "rel_l2 of every head at FLOP ratio %s%s, one panel per method and phase, "
                      "one log colour scale from %.3g (dark) to %.3g (bright); white: infeasible "
                      "or not run.",
                      rl, R->n_w > 1 ? " (mean over the workloads)" : "", lo, hi)))
        goto done;
    for (int g = 0; g < n_g; g++) {
        int mi = gm[2 * g], pi = gm[2 * g + 1];
        snprintf(name, sizeof name, "heads-%s-%s-%s", R->m[mi].name, R->phase[pi], rf);
        snprintf(what, sizeof what, "rel_l2 of %s (%s) at FLOP ratio %s, mean over workloads",
                 R->m[mi].name, R->phase[pi], rl);
        if ((rc = write_grid_png(R, name, what, grids[g].v, R->n_layer, R->n_head, lo, hi, 1)) !=
            AB_OK)
            goto done;
        snprintf(png, sizeof png, "%s.png", name);
        if ((rc = ab_rep_add_fig(R, SEC_HEADS, 0, png, "%s (%s)", R->m[mi].name, R->phase[pi])))
            goto done;
    }
    rc = ab_rep_strv_push(&R->notes[SEC_HEADS],
                   "Per-method pictures (8-bit viridis PNG, %lld px per head, layer 0 at the top, "
                   "head 0 at the left) share the scale of the panel figure; the darkest colour "
                   "also marks heads without a value. Their numbers are in the .tsv of the same "
                   "name.",
                   (long long)R->o->cell_px);
done:
    free(grids), free(vals), free(titles), free(gm);
    return rc;
}

/* The /heads column standing for statistic `stat` (sink, entropy, locality), or -1. */
static int stat_column(const struct ab_report_heads *h, const char *stat)
{
    static const char *const sink_names[] = {"sink_score", "alpha0", "sink"};
    if (!strcmp(stat, "sink"))
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < h->n_cols; c++)
                if (!strcmp(h->col_name[c], sink_names[i])) return c;
    for (int c = 0; c < h->n_cols; c++)
        if (!strncmp(h->col_name[c], stat, strlen(stat))) return c;
    return -1;
}

/* heads-sink / heads-entropy / heads-locality from a /heads table, and the sink ratio. */
static int head_stats(struct rep *R, double *sink_ratio, int64_t *sink_heads, int64_t *n_heads)
{
    const struct ab_report_heads *h = &R->d->heads;
    *sink_ratio = NAN, *sink_heads = *n_heads = 0;
    if (!h->n) return AB_OK;
    static const char *const stats[] = {"sink", "entropy", "locality"};
    int64_t L = 0, H = 0;
    for (int64_t i = 0; i < h->n; i++)
        L = AB_MAX(L, h->layer[i] + 1), H = AB_MAX(H, h->head[i] + 1);
    if (L < 1 || H < 1 || L * H > 1 << 24) return AB_OK;
    struct ab_gp_grid grids[3];
    char titles[3][64];
    int n_g = 0, rc = AB_OK;
    double *vals = calloc((size_t)(3 * L * H), sizeof(double));
    int *cnt = calloc((size_t)(L * H), sizeof(int));
    if (!vals || !cnt) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    for (int s = 0; s < 3; s++) {
        int c = stat_column(h, stats[s]);
        if (c < 0) continue;
        double *v = &vals[n_g * L * H], lo = INFINITY, hi = -INFINITY;
        memset(cnt, 0, sizeof(int) * (size_t)(L * H));
        for (int64_t i = 0; i < L * H; i++) v[i] = 0;
        for (int64_t i = 0; i < h->n; i++) {
            double x = h->col[c][i];
            if (isnan(x) || h->layer[i] < 0 || h->head[i] < 0) continue;
            v[h->layer[i] * H + h->head[i]] += x;
            cnt[h->layer[i] * H + h->head[i]]++;
        }
        for (int64_t i = 0; i < L * H; i++) {
            v[i] = cnt[i] ? v[i] / cnt[i] : NAN;
            if (isfinite(v[i])) lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
        }
        if (!(hi >= lo)) continue;
        if (!(hi > lo)) hi = lo + 1e-9 + fabs(lo) * 1e-6;
        if (s == 0) { /* the sink ratio of metrics.md: share of heads with alpha(0) > 0.3 */
            for (int64_t i = 0; i < h->n; i++)
                if (!isnan(h->col[c][i])) {
                    (*n_heads)++;
                    *sink_heads += h->col[c][i] > 0.3;
                }
            *sink_ratio = *n_heads ? 100.0 * (double)*sink_heads / (double)*n_heads : NAN;
        }
        char name[64], what[160];
        snprintf(name, sizeof name, "heads-%s", stats[s]);
        snprintf(what, sizeof what, "%s (/heads column %s), mean over workloads", stats[s],
                 h->col_name[c]);
        if ((rc = write_grid_png(R, name, what, v, L, H, lo, hi, 0)) != AB_OK) break;
        char png[80];
        snprintf(png, sizeof png, "%s.png", name);
        if ((rc = ab_rep_add_fig(R, SEC_STATS, 0, png, "%s per head (column %s), linear scale %.3g "
                          "(dark) to %.3g (bright)", stats[s], h->col_name[c], lo, hi)))
            break;
        snprintf(titles[n_g], sizeof titles[0], "%s (%s)", stats[s], h->col_name[c]);
        grids[n_g] = (struct ab_gp_grid){.title = titles[n_g], .rows = L, .cols = H, .v = v};
        n_g++;
    }
    if (rc == AB_OK && n_g) {
        struct ab_gp_heatmaps pl = {.name = "heads-stats", .title = "Head statistics "
                                    "(layers down, heads across)", .xlabel = "head",
                                    .ylabel = "layer", .cblabel = "", .shared_scale = 0,
                                    .n_grids = n_g, .grids = grids, .width = 1200};
        if ((rc = ab_gp_heatmaps_write(R->o->dir, &pl)) == AB_OK) {
            announce_pair(R, "heads-stats");
            rc = ab_rep_add_fig(R, SEC_STATS, 1, "heads-stats.png",
                         "The head statistics side by side, each with its own colour scale.");
        }
    }
done:
    free(vals), free(cnt);
    return rc;
}

/* ================================================================== maps */

/* Finds the workload of the maps: the one named, else the first recorded one that exists
 * (as recorded, or for a relative path, next to the results file that records it). */
static int open_workload(struct rep *R)
{
    const char *given = R->o->workload;
    const char *cand = given;
    char found[4096];
    for (int i = 0; !cand && i < R->d->n_inputs; i++)
        for (int64_t k = 0; !cand && k < R->d->inputs[i].n_workloads; k++) {
            struct stat st;
            const char *w = R->d->inputs[i].workloads[k], *res = R->d->paths[i];
            const char *slash = strrchr(res, '/');
            if (!w || !*w) continue;
            if (stat(w, &st) == 0 && S_ISREG(st.st_mode)) {
                cand = w;
            } else if (w[0] != '/' && slash) {
                snprintf(found, sizeof found, "%.*s/%s", (int)(slash - res), res, w);
                if (stat(found, &st) == 0 && S_ISREG(st.st_mode)) cand = found;
            }
        }
    if (!cand) {
        return ab_rep_strv_push(&R->notes[SEC_MAPS],
                         "No attention maps: the workload recorded in the results is not "
                         "readable from here (give it with --workload).");
    }
    int rc = ab_h5_workload_read_meta(cand, &R->wl);
    if (rc != AB_OK) {
        ab_workload_free(&R->wl);
        if (given) return rc;
        char msg[400];
        snprintf(msg, sizeof msg, "%s", ab_errmsg());
        return ab_rep_strv_push(&R->notes[SEC_MAPS], "No attention maps: %s.", msg);
    }
    if (!(R->wl_path = strdup(cand))) return ab_fail(AB_E_NOMEM, "out of memory");
    cand = R->wl_path;
    R->have_wl = 1;
    /* which cells are its own: by digest, else by path */
    R->wl_cells = -1;
    if ((rc = ab_results_sha256_file(cand, R->wl_digest)) != AB_OK) return rc;
    const char *recorded = NULL;
    for (int i = 0; i < R->d->n_inputs && !recorded; i++)
        for (int64_t k = 0; k < R->d->inputs[i].n_workloads && !recorded; k++)
            if (R->d->inputs[i].workload_sha256 && R->d->inputs[i].workload_sha256[k] &&
                !strcmp(R->d->inputs[i].workload_sha256[k], R->wl_digest))
                recorded = R->d->inputs[i].workloads[k];
    R->wl_digest_ok = recorded != NULL;
    for (int w = 0; w < R->n_w; w++)
        if (!strcmp(R->wname[w], recorded ? recorded : cand)) R->wl_cells = w;
    if (!R->wl_digest_ok)
        return ab_rep_strv_push(&R->notes[SEC_MAPS],
                         "Warning: the digest of '%s' matches no workload recorded in the "
                         "results; maps show this file, the tables the recorded ones.",
                         cand);
    return AB_OK;
}

/* The profile planted in (layer, head) of the map workload, or NULL. */
const char *ab_rep_profile_of(const struct rep *R, int w, int64_t layer, int64_t head)
{
    if (!R->have_wl || w != R->wl_cells || !R->wl.profile) return NULL;
    if (layer < 0 || layer >= R->wl.n_layer || head < 0 || head >= R->wl.n_head) return NULL;
    return R->wl.profile[layer * R->wl.n_kv_head + ab_workload_kv_of(&R->wl, head)];
}

/* The cell of (method, phase, target group, workload, layer, head) with the largest rel_l2
 * among feasible ones, skipping heads already chosen. -1 if none. */
static int64_t worst_cell(const struct rep *R, int mi, int pi, int ti, int w,
                          const struct map_head *skip, int n_skip)
{
    int64_t best = -1;
    for (int64_t c = 0; c < R->r->n_cells; c++) {
        const struct ab_cell *cell = &R->r->cells[c];
        if (R->cm[c] != mi || R->cp[c] != pi || R->ct[c] != ti || !cell->feasible) continue;
        if (w >= 0 && R->cw[c] != w) continue;
        if (!isfinite(cell->rel_l2)) continue;
        int dup = 0;
        for (int i = 0; i < n_skip; i++)
            dup |= skip[i].layer == cell->layer && skip[i].head == cell->head;
        if (dup) continue;
        if (best < 0 || cell->rel_l2 > R->r->cells[best].rel_l2) best = c;
    }
    return best;
}

/* Chooses the map heads (when not given) and the map methods (when not given). */
static int choose_maps(struct rep *R)
{
    const struct ab_report_opts *o = R->o;
    R->maps = calloc((size_t)(o->n_maps + 4), sizeof *R->maps);
    R->mm = calloc((size_t)(o->n_map_methods + R->n_p + 1), sizeof(char *));
    if (!R->maps || !R->mm) return ab_fail(AB_E_NOMEM, "out of memory");
    double budget = isnan(R->B) ? o->budget : R->B;
    int w = R->wl_cells;
    if (o->n_map_methods) {
        for (int i = 0; i < o->n_map_methods; i++) R->mm[R->n_mm++] = o->map_methods[i];
    } else { /* the best selecting method of each phase at the budget */
        for (int pi = 0; pi < R->n_p; pi++) {
            int best = -1; /* among the methods that select: only they have a mask */
            double bv = INFINITY;
            for (int mi = 0; mi < R->n_m; mi++) {
                const struct ab_method *m = ab_method_find(R->m[mi].name);
                if (!m || !(m->flags & AB_METHOD_SELECTS)) continue;
                int ti, s = ab_rep_group_at(R, mi, pi, budget, &ti);
                if (s < 0 || R->r->summary[s].n_heads != R->grp_cells[ab_rep_gidx(R, mi, pi, ti)])
                    continue;
                if (R->r->summary[s].rel_l2_mean < bv) bv = R->r->summary[s].rel_l2_mean, best = mi;
            }
            int dup = 0;
            for (int i = 0; best >= 0 && i < R->n_mm; i++)
                dup |= !strcmp(R->mm[i], R->m[best].name);
            if (best >= 0 && !dup) R->mm[R->n_mm++] = R->m[best].name;
        }
    }
    if (o->n_maps) {
        for (int i = 0; i < o->n_maps; i++) {
            R->maps[i] = (struct map_head){.layer = o->maps[2 * i], .head = o->maps[2 * i + 1]};
            snprintf(R->maps[i].why, sizeof R->maps[i].why, "asked for");
        }
        R->n_maps = o->n_maps;
        return AB_OK;
    }
    /* where the best method of each phase fails worst, then a head with planted tasks */
    for (int pi = 0; pi < R->n_p && R->n_maps < 3; pi++) {
        int best = ab_rep_best_at(R, pi, budget, M_REL_L2, NULL), ti;
        if (best < 0 || ab_rep_group_at(R, best, pi, budget, &ti) < 0) continue;
        int64_t c = worst_cell(R, best, pi, ti, w, R->maps, R->n_maps);
        if (c < 0) continue;
        const struct ab_cell *cell = &R->r->cells[c];
        char rl[32];
        ab_rep_ratio_label(budget, rl, sizeof rl);
        struct map_head *mh = &R->maps[R->n_maps++];
        *mh = (struct map_head){.layer = cell->layer, .head = cell->head};
        snprintf(mh->why, sizeof mh->why, "where %s, the best %s method at %s, fails worst "
                 "(rel_l2 %.3g)", R->m[best].name, R->phase[pi], rl, cell->rel_l2);
    }
    for (int64_t c = 0; c < R->r->n_cells && R->n_maps < 3; c++) {
        const struct ab_cell *cell = &R->r->cells[c];
        if (isnan(cell->task_acc) || (w >= 0 && R->cw[c] != w)) continue;
        int dup = 0;
        for (int i = 0; i < R->n_maps; i++)
            dup |= R->maps[i].layer == cell->layer && R->maps[i].head == cell->head;
        if (dup) continue;
        struct map_head *mh = &R->maps[R->n_maps++];
        *mh = (struct map_head){.layer = cell->layer, .head = cell->head};
        snprintf(mh->why, sizeof mh->why, "a head with planted task queries");
    }
    return AB_OK;
}

/* map-L<l>-H<h>.png and map-L<l>-H<h>-<method>.png for every chosen head. */
static int maps(struct rep *R)
{
    if (!R->have_wl) return AB_OK;
    int rc = choose_maps(R);
    if (rc != AB_OK) return rc;
    const struct ab_report_opts *o = R->o;
    double budget = isnan(R->B) ? o->budget : R->B;
    char rl[32];
    ab_rep_ratio_label(budget, rl, sizeof rl);
    uint64_t seed = R->d->n_inputs ? R->d->inputs[0].seed : 1;
    for (int i = 0; i < R->n_maps; i++) {
        int64_t L = R->maps[i].layer, H = R->maps[i].head;
        if (L < 0 || L >= R->wl.n_layer || H < 0 || H >= R->wl.n_head) continue; /* checked */
        /* the exact map */
        float *q = NULL, *k = NULL, *v = NULL;
        uint8_t *px = NULL;
        int64_t w = 0, h = 0;
        char name[128];
        snprintf(name, sizeof name, "map-L%lld-H%lld", (long long)L, (long long)H);
        char *png = ab_path_join(o->dir, name, ".png");
        rc = png ? ab_h5_workload_read_head(R->wl_path, &R->wl, L, H, &q, &k, &v)
                 : ab_fail(AB_E_NOMEM, "out of memory");
        if (rc == AB_OK) {
            struct ab_head hd = ab_rep_make_head(&R->wl, q, k, v);
            if ((rc = ab_head_validate(&hd)) == AB_OK &&
                (rc = ab_map_image(&hd, o->map_size, o->map_floor, &px, &w, &h)) == AB_OK)
                rc = ab_png_write_indexed(png, px, w, h, ab_viridis, 256);
        }
        ab_free(q), ab_free(k), ab_free(v);
        free(px), free(png);
        if (rc != AB_OK) return rc;
        char file[160];
        snprintf(file, sizeof file, "%s.png", name);
        ab_rep_announce(R, file);
        const char *prof = ab_rep_profile_of(R, R->wl_cells, L, H);
        if ((rc = ab_rep_add_fig(R, SEC_MAPS, 0, file,
                          "Layer %lld head %lld%s%s%s: exact attention (log scale from %g, dark, "
                          "to 1, bright; max-pooled to %lld px), %s.",
                          (long long)L, (long long)H, prof ? " (profile " : "", prof ? prof : "",
                          prof ? ")" : "", o->map_floor,
                          (long long)AB_MIN(o->map_size, R->wl.n_seq), R->maps[i].why)))
            return rc;
        /* the kept masks */
        for (int j = 0; j < R->n_mm; j++) {
            struct ab_kept_map_opts ko;
            ab_kept_map_defaults(&ko);
            ko.method = R->mm[j];
            ko.budget = budget;
            ko.seed = seed;
            ko.size = o->map_size;
            ko.floor = o->map_floor;
            /* the decode queries of the run, when its cells say */
            int mi = find_method(R, R->mm[j]);
            for (int64_t c = 0; mi >= 0 && c < R->r->n_cells; c++)
                if (R->cm[c] == mi && !strcmp(R->phase[R->cp[c]], "decode")) {
                    ko.decode_m = AB_MAX(1, R->r->cells[c].n_eval_rows);
                    break;
                }
            snprintf(name, sizeof name, "map-L%lld-H%lld-%s", (long long)L, (long long)H,
                     R->mm[j]);
            png = ab_path_join(o->dir, name, ".png");
            if (!png) return ab_fail(AB_E_NOMEM, "out of memory");
            struct ab_kept_map_info info;
            rc = ab_kept_map_write(R->wl_path, &R->wl, L, H, &ko, png, &info);
            free(png);
            if (rc == AB_E_USAGE) { /* cannot draw it here (budget out of reach, phase): say so */
                char msg[400];
                snprintf(msg, sizeof msg, "%s", ab_errmsg());
                if ((rc = ab_rep_strv_push(&R->notes[SEC_MAPS], "No mask of %s on layer %lld head "
                                    "%lld: %s.", R->mm[j], (long long)L, (long long)H, msg)))
                    return rc;
                continue;
            }
            if (rc != AB_OK) return rc;
            snprintf(file, sizeof file, "%s.png", name);
            ab_rep_announce(R, file);
            char knob[48] = "";
            const struct ab_method *m = ab_method_find(R->mm[j]);
            if (m && m->knob.name)
                snprintf(knob, sizeof knob, ", %s = %.4g", m->knob.name, info.knob);
            if ((rc = ab_rep_add_fig(R, SEC_MAPS, 0, file,
                              "%s on layer %lld head %lld (%s, budget %s%s, achieved ratio "
                              "%.3g%s): kept cells in full colour, dropped cells dimmed; "
                              "%.1f%% of the visible cells of the %lld drawn %s kept.",
                              R->mm[j], (long long)L, (long long)H,
                              info.phase == AB_PHASE_PREFILL ? "prefill" : "decode", rl, knob,
                              info.ratio, info.feasible ? "" : ", below the tolerance",
                              100 * info.kept_share, (long long)info.n_rows,
                              info.phase == AB_PHASE_PREFILL ? "query rows (evenly spaced) were"
                                                             : "decode queries were")))
                return rc;
        }
    }
    return AB_OK;
}

/* ================================================================== the whole report */

/* mkdir -p. AB_E_CREATE naming dir. */
static int make_dir(const char *dir)
{
    char *p = strdup(dir);
    if (!p) return ab_fail(AB_E_NOMEM, "out of memory");
    int rc = AB_OK;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = 0;
            struct stat st;
            if (stat(p, &st) != 0) {
                if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                    rc = ab_fail(AB_E_CREATE, "'%s': cannot create: %s", dir, strerror(errno));
                    break;
                }
            } else if (!S_ISDIR(st.st_mode)) {
                rc = ab_fail(AB_E_CREATE, "'%s': cannot create: '%s' is not a folder", dir, p);
                break;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    if (rc == AB_OK && access(dir, W_OK) != 0)
        rc = ab_fail(AB_E_CREATE, "'%s': cannot write there: %s", dir, strerror(errno));
    return rc;
}

static void rep_free(struct rep *R)
{
    free(R->m), free(R->t), free(R->b), free(R->wname);
    free(R->cm), free(R->cp), free(R->ct), free(R->cw);
    free(R->grp), free(R->grp_cells);
    free(R->gnuplot);
    for (int i = 0; i < R->n_fig; i++) free(R->fig[i].file), free(R->fig[i].caption);
    free(R->fig);
    for (int i = 0; i <= N_SEC; i++) strv_free(&R->notes[i]);
    if (R->have_wl) ab_workload_free(&R->wl);
    free(R->wl_path);
    free(R->maps), free(R->mm);
    ab_rep_e2e_free(R);
}

/* The frontiers of each workload alone (opts.by_workload): the cells of one workload, their own
 * summary and index, the same plots named frontier-<metric>-<stem>; figures and notes go to R. */
static int frontiers_by_workload(struct rep *R)
{
    int rc = AB_OK;
    for (int w = 0; w < R->n_w && !rc; w++) {
        struct ab_results sub;
        ab_results_init(&sub);
        sub.cells = malloc(sizeof *sub.cells * (size_t)(R->r->n_cells + 1));
        if (!sub.cells) return ab_fail(AB_E_NOMEM, "out of memory");
        for (int64_t c = 0; c < R->r->n_cells; c++)
            if (!strcmp(R->r->cells[c].workload, R->wname[w])) sub.cells[sub.n_cells++] = R->r->cells[c];
        sub.cap_cells = sub.n_cells;
        /* "-<file name without .h5>", reduced to file-name-safe characters */
        const char *base = strrchr(R->wname[w], '/');
        base = base ? base + 1 : R->wname[w];
        size_t len = strlen(base);
        if (len > 3 && !strcmp(base + len - 3, ".h5")) len -= 3;
        char suffix[128];
        snprintf(suffix, sizeof suffix, "-%.*s", (int)len, base);
        for (char *q = suffix; *q; q++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", *q)) *q = '_';
        struct rep S = {.d = R->d, .o = R->o, .r = &sub, .wl_cells = -1, .suffix = suffix,
                        .subset = base};
        rc = ab_results_summarise(&sub);
        if (!rc) rc = build_index(&S);
        for (int k = 0; k < N_METRICS && !rc; k++) rc = frontier(&S, k);
        for (int i = 0; i < S.n_fig && !rc; i++) /* the figures join the report's */
            rc = ab_rep_add_fig(R, S.fig[i].section, S.fig[i].gp, S.fig[i].file, "%s", S.fig[i].caption);
        rep_free(&S);
        free(sub.cells); /* shallow copies: the strings belong to R->r */
        sub.cells = NULL, sub.n_cells = 0;
        ab_results_free(&sub);
    }
    return rc;
}

void ab_report_defaults(struct ab_report_opts *o)
{
    *o = (struct ab_report_opts){.budget = 0.125, .map_size = 512, .map_floor = 1e-6,
                                 .cell_px = 24, .gnuplot = "gnuplot"};
}

int ab_report_write(const struct ab_report_data *d, const struct ab_report_opts *o)
{
    struct rep R = {.d = d, .o = o, .r = &d->merged, .wl_cells = -1};
    double sink_ratio = NAN;
    int64_t sink_heads = 0, n_sh = 0;
    int rc;
    if (ab_gnuplot_find(o->gnuplot ? o->gnuplot : "gnuplot", &R.gnuplot) != AB_OK) {
        snprintf(R.gnuplot_err, sizeof R.gnuplot_err, "%s", ab_errmsg());
        R.gnuplot = NULL;
    }
    if ((rc = build_index(&R)) != AB_OK) goto done;

    /* the workload and the heads asked for first: bad ones fail before anything is written */
    if ((rc = open_workload(&R)) != AB_OK) goto done;
    if (o->n_maps && !R.have_wl) {
        rc = ab_fail(AB_E_NOFILE, "--maps needs the workload: none recorded in the results is "
                     "readable from here (give it with --workload)");
        goto done;
    }
    for (int i = 0; i < o->n_maps; i++) {
        int64_t L = o->maps[2 * i], H = o->maps[2 * i + 1];
        if (L < 0 || L >= R.wl.n_layer || H < 0 || H >= R.wl.n_head) {
            rc = ab_fail(AB_E_USAGE, "--maps %lld:%lld is outside '%s' (%lld layers, %lld heads)",
                         (long long)L, (long long)H, R.wl_path, (long long)R.wl.n_layer,
                         (long long)R.wl.n_head);
            goto done;
        }
    }
    if ((rc = make_dir(o->dir)) != AB_OK) goto done;

    for (int k = 0; k < N_METRICS; k++)
        if ((rc = frontier(&R, k)) != AB_OK) goto done;
    if (o->by_workload && R.n_w > 1 && (rc = frontiers_by_workload(&R)) != AB_OK) goto done;
    for (int i = 0; i < R.n_b; i++)
        if ((rc = isoflops(&R, R.b[i])) != AB_OK) goto done;
    if ((rc = heatmaps(&R)) != AB_OK) goto done;
    if ((rc = head_stats(&R, &sink_ratio, &sink_heads, &n_sh)) != AB_OK) goto done;
    if ((rc = maps(&R)) != AB_OK) goto done;
    if ((rc = ab_rep_e2e(&R)) != AB_OK) goto done;
    {
        char *cells = ab_path_join(o->dir, "cells", ".csv"),
             *summary = ab_path_join(o->dir, "summary", ".csv");
        rc = cells && summary ? ab_results_write_csv(cells, summary, R.r)
                              : ab_fail(AB_E_NOMEM, "out of memory");
        free(cells), free(summary);
        if (rc != AB_OK) goto done;
        ab_rep_announce(&R, "cells.csv");
        ab_rep_announce(&R, "summary.csv");
    }

    /* render the scripts */
    for (int i = 0; R.gnuplot && i < R.n_fig; i++) {
        struct fig *g = &R.fig[i];
        if (!g->gp) continue;
        char stem[256];
        snprintf(stem, sizeof stem, "%.*s", (int)(strlen(g->file) - 4), g->file);
        int r2 = ab_gnuplot_render(R.gnuplot, o->dir, stem);
        if (r2 == AB_OK) {
            g->rendered = 1;
            ab_rep_announce(&R, g->file);
        } else if (!R.plot_failed++) {
            R.first_plot_rc = r2;
            snprintf(R.plot_err, sizeof R.plot_err, "%s", ab_errmsg());
        }
    }
    if ((rc = ab_rep_write_md(&R, sink_ratio, sink_heads, n_sh)) != AB_OK) goto done;
    if (!R.gnuplot)
        rc = ab_fail(AB_E_NOTOOL, "%s: wrote the .gp and .tsv files but no plot (render them "
                     "with 'gnuplot -c NAME.gp' in '%s')", R.gnuplot_err, o->dir);
    else if (R.plot_failed)
        rc = ab_fail(R.first_plot_rc, "%s%s", R.plot_err,
                     R.plot_failed > 1 ? " (and other plots)" : "");
done:
    rep_free(&R);
    return rc;
}
