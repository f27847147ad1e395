/* report.c - `attnbench report`: results files in, a folder of figures, tables and report.md
 * out (see report.h). This file keeps the cells the method and family filters select, indexes
 * them, builds the summary views (every length pooled, and each length), draws the heatmaps,
 * head statistics and maps and runs the whole report; the inputs are loaded by report_load.c,
 * the frontier figures and isoFLOPS bars drawn by report_frontier.c, the kept masks of the maps
 * by kept_map.c, the answers of the study written by report_answers.c and report.md
 * by report_md.c.
 *
 * The report reads everything it says from the data. Methods are ordered by their row in the
 * registry and grouped by family; a method's lines keep one style (colour and marker) in every
 * figure of a report. Means and tails over heads are summary rows recomputed over the kept
 * cells of every workload of a view (ab_results_summarise): a /summary row of the results is
 * per workload, and the report pools the workloads of one length (a view per length) or of
 * every length (the pooled view). "Best" at a budget is chosen only among methods feasible on
 * every head of the view there, because a mean over the heads a method happens to reach is not
 * comparable with a mean over all of them (a better-looking method with partial coverage is
 * named beside it). A method without a knob (fixed cost) competes at every budget its cost
 * fits under.
 *
 * Order of work: index the cells, write every .tsv/.gp, the libpng heatmaps, the maps' .bin/.gp
 * and the CSV tables, then run gnuplot on the scripts, then write report.md (which says what was rendered).
 * A failure to write (or to allocate) stops the report at once and takes back every file it
 * wrote (ab_outputs_begin / _end), so nothing partial is left; gnuplot missing, or failing on a
 * script, is remembered and returned after report.md is written, and the report stays. */
#include "report/report.h"
#include "core/list.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ab.h"
#include "io/csv.h"
#include "io/h5_workload.h"
#include "io/results_io.h"
#include "methods/method.h"
#include "report/gnuplot.h"
#include "report/kept_map.h"
#include "report/report_internal.h"

/* ================================================================== indexing the results */

/* The metrics are the rows of the metric table (eval/metric.h); the report reads the plotted
 * ones (asserted where a metric enters a figure). */
static const struct ab_metric *const metrics = ab_metrics;

int ab_rep_higher_better(int k)
{
    assert(k >= 0 && k < AB_N_METRIC && ab_metrics[k].plot);
    return ab_metrics[k].sense == AB_SENSE_LOW_WORSE;
}

int ab_rep_logy(int k)
{
    assert(k >= 0 && k < AB_N_METRIC && ab_metrics[k].plot);
    return ab_metrics[k].plot == AB_PLOT_LOG;
}

double ab_rep_field(const void *row, size_t off)
{
    return *(const double *)((const char *)row + off);
}
static double field(const void *row, size_t off) { return ab_rep_field(row, off); }

const char *const ab_report_families[] = {"static", "dynamic", "kv", "linear", "calibration",
                                          NULL};

int ab_report_check_filter(const struct ab_report_opts *o, const struct ab_report_data *d)
{
    for (int i = 0; i < o->n_families; i++) {
        int ok = 0;
        for (int k = 0; ab_report_families[k]; k++)
            ok |= !strcmp(o->families[i], ab_report_families[k]);
        if (!ok)
            return ab_fail(AB_E_USAGE, "report: unknown family '%s' (static, dynamic, kv, "
                           "linear, calibration)", o->families[i]);
    }
    for (int i = 0; i < o->n_methods; i++) {
        int ok = ab_method_find(o->methods[i]) != NULL; /* or an external method of the cells */
        for (int64_t c = 0; !ok && d && c < d->merged.n_cells; c++)
            ok = d->merged.cells[c].method && !strcmp(d->merged.cells[c].method, o->methods[i]);
        if (ok) continue;
        const char *all[512], *near;
        int n_all = 0;
        for (int k = 0; k < ab_method_count() && n_all < 512; k++)
            all[n_all++] = ab_method_at(k)->name;
        if ((near = ab_word_closest(o->methods[i], all, n_all)))
            return ab_fail(AB_E_USAGE, "report: option '--methods': unknown method '%s' (did you "
                           "mean '%s'?)", o->methods[i], near);
        return ab_fail(AB_E_USAGE, "report: option '--methods': unknown method '%s' (see "
                       "'attnbench methods')", o->methods[i]);
    }
    return AB_OK;
}

/* Whether the filter of o keeps the cells of a method (dense, the reference, always). */
static int keeps(const struct ab_report_opts *o, const char *method, const char *family)
{
    if (!o->n_methods && !o->n_families) return 1;
    if (family && !strcmp(family, "dense")) return 1;
    for (int i = 0; i < o->n_methods; i++)
        if (method && !strcmp(o->methods[i], method)) return 1;
    for (int i = 0; i < o->n_families; i++)
        if (family && !strcmp(o->families[i], family)) return 1;
    return 0;
}

int ab_rep_keep(const struct rep *R, const char *method, const char *family)
{
    return keeps(R->o, method, family);
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

/* The compression 1/t as "10x", "3.33x", "1.43x". */
void ab_rep_compression_label(double t, char *buf, size_t cap)
{
    if (!(t > 0)) {
        snprintf(buf, cap, "?");
        return;
    }
    double k = 1 / t;
    if (fabs(k - round(k)) < 1e-6 * k) snprintf(buf, cap, "%.0fx", round(k));
    else snprintf(buf, cap, "%.3gx", k);
}

/* The ratio as it appears in file names: %g (0.125, 0.03125). */
static void ratio_file(double t, char *buf, size_t cap) { snprintf(buf, cap, "%g", t); }

static int find_method(const struct rep *R, const char *name)
{
    for (int i = 0; i < R->n_m; i++)
        if (!strcmp(R->m[i].name, name)) return i;
    return -1;
}

int ab_rep_find_method(const struct rep *R, const char *name) { return find_method(R, name); }

static int find_target(const struct rep *R, double t)
{
    for (int i = 0; i < R->n_t; i++)
        if (same(R->t[i], t)) return i;
    return -1;
}

static int find_phase(const struct rep *R, const char *p)
{
    for (int i = 0; i < R->n_p; i++)
        if (!strcmp(R->phase[i], p ? p : "")) return i;
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

/* The families of the methods: the known ones in their order, then others as they come; each
 * method's slot is its rank among its family's methods (registry order), so the lines of a
 * family's panels differ in colour and marker. */
static void index_families(struct rep *R)
{
    R->n_fam = 0;
    for (int k = 0; ab_report_families[k]; k++)
        for (int mi = 0; mi < R->n_m; mi++)
            if (!strcmp(R->m[mi].family, ab_report_families[k])) {
                R->fam[R->n_fam++] = ab_report_families[k];
                break;
            }
    for (int mi = 0; mi < R->n_m; mi++) {
        const char *f = R->m[mi].family;
        if (!strcmp(f, "dense")) continue;
        int found = 0;
        for (int k = 0; k < R->n_fam; k++) found |= !strcmp(R->fam[k], f);
        if (!found && R->n_fam < AB_REP_MAX_FAMILIES) R->fam[R->n_fam++] = f;
    }
    int rank[AB_REP_MAX_FAMILIES] = {0};
    for (int mi = 0; mi < R->n_m; mi++) {
        R->m[mi].fam = -1;
        for (int k = 0; k < R->n_fam; k++)
            if (!strcmp(R->fam[k], R->m[mi].family)) R->m[mi].fam = k;
        R->m[mi].slot = R->m[mi].fam >= 0 ? rank[R->m[mi].fam]++ : 0;
        const struct ab_method *m = ab_method_find(R->m[mi].name);
        R->m[mi].oracle = m && (m->flags & AB_METHOD_ORACLE);
        R->m[mi].op = m && (m->flags & AB_METHOD_OPERATOR);
    }
}

/* The summary view of the cells with length n (0: every length): its rows in res, summarised
 * over copies of the cells whose workload is replaced by one label per length (so workloads of
 * one length are pooled), and the group table. */
static int build_view(struct rep *R, int vi, int64_t n, struct ab_results *res)
{
    struct view *V = &R->v[vi];
    V->n = n;
    size_t n_grp = (size_t)R->n_m * (size_t)R->n_p * (size_t)(R->n_t ? R->n_t : 1);
    V->grp = malloc(sizeof(int) * n_grp);
    V->cells = calloc(n_grp, sizeof(int64_t));
    if (!V->grp || !V->cells) return ab_fail(AB_E_NOMEM, "out of memory");
    for (size_t g = 0; g < n_grp; g++) V->grp[g] = -1;
    for (int64_t c = 0; c < R->r->n_cells; c++)
        if (!n || R->r->cells[c].n == n)
            V->cells[ab_rep_gidx(R, R->cm[c], R->cp[c], R->ct[c])]++;
    for (int64_t s = 0; s < res->n_summary; s++) {
        const struct ab_summary_row *row = &res->summary[s];
        if (n && row->n != n) continue;
        int mi = find_method(R, row->method), pi = find_phase(R, row->phase);
        int ti = find_target(R, row->target_ratio);
        if (mi >= 0 && pi >= 0 && ti >= 0) V->grp[ab_rep_gidx(R, mi, pi, ti)] = (int)s;
    }
    V->sum = res->summary;
    return AB_OK;
}

/* The pooled summary (by_length 0) or the summary per length (1) of R->r's cells into res:
 * shallow copies of the cells with the workload replaced by "" or "n=<n>". */
static int summarise_pooled(const struct rep *R, int by_length, struct ab_results *res)
{
    ab_results_init(res);
    int64_t nc = R->r->n_cells;
    char (*labels)[32] = calloc((size_t)R->n_len + 1, sizeof *labels);
    res->cells = malloc(sizeof *res->cells * (size_t)(nc + 1));
    if (!labels || !res->cells) {
        free(labels), free(res->cells);
        res->cells = NULL;
        return ab_fail(AB_E_NOMEM, "out of memory");
    }
    for (int k = 0; k < R->n_len; k++) snprintf(labels[k], sizeof labels[0], "n=%lld",
                                                (long long)R->len[k]);
    for (int64_t c = 0; c < nc; c++) {
        res->cells[c] = R->r->cells[c];
        res->cells[c].workload = "";
        for (int k = 0; by_length && k < R->n_len; k++)
            if (R->r->cells[c].n == R->len[k]) res->cells[c].workload = labels[k];
    }
    res->n_cells = res->cap_cells = nc;
    int rc = ab_results_summarise(res);
    free(res->cells); /* shallow copies: the strings belong to d->merged */
    res->cells = NULL, res->n_cells = res->cap_cells = 0;
    free(labels);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Builds the method, family, phase, target, length and workload indexes, the views and the
 * budgets, from the cells of R->r. */
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
            for (int i = 0; i < ab_method_count(); i++)
                if (!strcmp(ab_method_at(i)->name, mn)) R->m[last_m].style = i;
        }
        if (cell->knob_name && cell->knob_name[0]) R->m[last_m].has_knob = 1;
        if (find_phase(R, pn) < 0) {
            if (R->n_p == 8) return ab_fail(AB_E_DATA, "more than 8 phases in the results");
            R->phase[R->n_p++] = pn;
        }
        if (find_target(R, cell->target_ratio) < 0) R->t[R->n_t++] = cell->target_ratio;
        if (last_w < 0 || strcmp(R->wname[last_w], wn)) {
            last_w = -1;
            for (int i = 0; i < R->n_w; i++)
                if (!strcmp(R->wname[i], wn)) last_w = i;
            if (last_w < 0) R->wname[last_w = R->n_w++] = wn;
        }
        R->cw[c] = last_w;
        int have_len = 0;
        for (int k = 0; k < R->n_len; k++) have_len |= R->len[k] == cell->n;
        if (!have_len && R->n_len < 16) R->len[R->n_len++] = cell->n;
        R->n_layer = AB_MAX(R->n_layer, cell->layer + 1);
        R->n_head = AB_MAX(R->n_head, cell->head + 1);
    }
    qsort(R->len, (size_t)R->n_len, sizeof(int64_t), cmp_i64);
    /* catalogue order: a method keeps its place whatever the results hold */
    qsort(R->m, (size_t)R->n_m, sizeof *R->m, cmp_meth);
    for (int i = 0; i < R->n_m; i++)
        if (R->m[i].style >= 1000) R->m[i].style = ab_method_count() + i;
    index_families(R);
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

    for (int64_t c = 0; c < nc; c++) {
        const struct ab_cell *cell = &r->cells[c];
        R->cm[c] = find_method(R, cell->method ? cell->method : "");
        R->cp[c] = AB_MAX(0, find_phase(R, cell->phase));
        R->ct[c] = find_target(R, cell->target_ratio);
    }
    /* the views: every length pooled, then each length when there are several */
    int rc;
    if ((rc = summarise_pooled(R, 0, &R->vres[0])) || (rc = build_view(R, 0, 0, &R->vres[0])))
        return rc;
    R->n_v = 1;
    if (R->n_len > 1) {
        if ((rc = summarise_pooled(R, 1, &R->vres[1]))) return rc;
        for (int k = 0; k < R->n_len; k++, R->n_v++)
            if ((rc = build_view(R, 1 + k, R->len[k], &R->vres[1]))) return rc;
    }
    R->grp = R->v[0].grp, R->grp_cells = R->v[0].cells;
    R->all.summary = R->vres[0].summary, R->all.n_summary = R->vres[0].n_summary;
    /* budgets */
    R->b = malloc(sizeof(double) * (size_t)(R->n_t + 1));
    if (!R->b) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int ti = 0; ti < R->n_t; ti++) {
        if (isnan(R->t[ti])) continue;
        int knobbed = 0;
        for (int mi = 0; mi < R->n_m && !knobbed; mi++)
            for (int pi = 0; pi < R->n_p; pi++)
                if (R->m[mi].has_knob && R->grp_cells[ab_rep_gidx(R, mi, pi, ti)]) knobbed = 1;
        if (knobbed) R->b[R->n_b++] = R->t[ti];
    }
    /* B: the budget nearest to the one asked for, on a log scale */
    R->B = NAN;
    for (int i = 0; i < R->n_b; i++)
        if (isnan(R->B) || fabs(log(R->b[i] / R->o->budget)) < fabs(log(R->B / R->o->budget)))
            R->B = R->b[i];
    return AB_OK;
}

/* The group of method mi in phase pi at budget t in view v: its cells at target t, or for a
 * method without a knob its fixed-cost cells when their mean achieved ratio fits under t (t
 * NaN: the NaN-target group). *ti receives the target index; -1 when the method has none
 * there. Returns the row index in the view's summary, or -1. */
static int view_group_at(const struct rep *R, int v, int mi, int pi, double t, int *ti)
{
    const struct view *V = &R->v[v];
    int k = find_target(R, t);
    *ti = -1;
    if (k >= 0 && V->cells[ab_rep_gidx(R, mi, pi, k)]) {
        *ti = k;
        return V->grp[ab_rep_gidx(R, mi, pi, k)];
    }
    if (R->m[mi].has_knob || isnan(t)) return -1;
    for (int j = 0; j < R->n_t; j++) {
        int s = V->grp[ab_rep_gidx(R, mi, pi, j)];
        if (s >= 0 && V->sum[s].n_heads > 0 && V->sum[s].flop_ratio <= t * (1 + 1e-9)) {
            *ti = j;
            return s;
        }
    }
    return -1;
}

/* The group of method mi in phase pi at budget t in the pooled view (view_group_at): its row
 * index in R->r->summary or -1, *ti the target index or -1. */
int ab_rep_group_at(const struct rep *R, int mi, int pi, double t, int *ti)
{
    return view_group_at(R, 0, mi, pi, t, ti);
}

/* The summary row of method mi in phase pi at budget t in view v when some head of it is
 * feasible (NULL otherwise); *full (may be NULL) is 1 when every head of the group is. */
const struct ab_summary_row *ab_rep_row_at(const struct rep *R, int v, int mi, int pi, double t,
                                           int *full)
{
    int ti, s = view_group_at(R, v, mi, pi, t, &ti);
    if (full) *full = 0;
    if (s < 0 || R->v[v].sum[s].n_heads <= 0) return NULL;
    if (full) *full = R->v[v].sum[s].n_heads == R->v[v].cells[ab_rep_gidx(R, mi, pi, ti)];
    return &R->v[v].sum[s];
}

/* Whether method mi runs in phase pi at all. */
static int runs_in(const struct rep *R, int mi, int pi)
{
    for (int j = 0; j < R->n_t; j++)
        if (R->grp_cells[ab_rep_gidx(R, mi, pi, j)]) return 1;
    return 0;
}

int ab_rep_runs_in(const struct rep *R, int mi, int pi) { return runs_in(R, mi, pi); }

/* Whether value a of metric k is better than b. */
static int better(int k, double a, double b)
{
    return ab_rep_higher_better(k) ? a > b : a < b;
}

/* The best method of view v in phase pi at budget t by metric k among methods feasible on every
 * head of the group, of family fam (-1: every method, dense included; -2: every family, dense
 * aside), oracles included when
 * `oracles` (ties: the lower rel_l2). Returns the method index or -1; *row (may be NULL) its
 * summary row. */
int ab_rep_best_in(const struct rep *R, int v, int pi, double t, int k, int fam, int oracles,
                   const struct ab_summary_row **row)
{
    int best = -1;
    const struct ab_summary_row *br = NULL;
    for (int mi = 0; mi < R->n_m; mi++) {
        if ((fam >= 0 && R->m[mi].fam != fam) || (fam == -2 && R->m[mi].fam < 0) ||
            (!oracles && R->m[mi].oracle))
            continue;
        int full;
        const struct ab_summary_row *s = ab_rep_row_at(R, v, mi, pi, t, &full);
        if (!s || !full) continue;
        double x = field(s, metrics[k].mean.offset);
        if (!isfinite(x)) continue;
        double bx = br ? field(br, metrics[k].mean.offset) : NAN;
        if (!br || better(k, x, bx) || (x == bx && s->rel_l2_mean < br->rel_l2_mean))
            best = mi, br = s;
    }
    if (row) *row = br;
    return best;
}

/* Best method in phase pi at budget t by metric k in the pooled view among methods feasible on
 * every head of the group (ties: the lower rel_l2). Returns the method index or -1; *partial
 * receives a method with partial coverage whose mean is better still (or -1). */
int ab_rep_best_at(const struct rep *R, int pi, double t, int k, int *partial)
{
    const struct ab_summary_row *br;
    int best = ab_rep_best_in(R, 0, pi, t, k, -1, 1, &br), part = -1;
    double pv = NAN;
    for (int mi = 0; mi < R->n_m && partial; mi++) {
        int full;
        const struct ab_summary_row *s = ab_rep_row_at(R, 0, mi, pi, t, &full);
        if (!s || full) continue;
        double x = field(s, metrics[k].mean.offset);
        if (isfinite(x) && (part < 0 || better(k, x, pv))) part = mi, pv = x;
    }
    if (partial)
        *partial =
            part >= 0 && (best < 0 || better(k, pv, field(br, metrics[k].mean.offset))) ? part : -1;
    return best;
}

/* Records a value drawn at the edge of a figure (once per metric, method, phase, view and
 * target). AB_OK or AB_E_NOMEM. */
int ab_rep_add_outlier(struct rep *R, int metric, int mi, int pi, int view, double target,
                       double value)
{
    assert(metric >= 0 && metric < AB_N_METRIC && ab_metrics[metric].plot);
    for (int i = 0; i < R->n_out; i++) {
        const struct outlier *o = &R->out[i];
        if (o->metric == metric && o->mi == mi && o->pi == pi && o->view == view &&
            same(o->target, target))
            return AB_OK;
    }
    if (R->n_out == R->cap_out) {
        int cap = R->cap_out ? 2 * R->cap_out : 32;
        struct outlier *grown = realloc(R->out, sizeof *grown * (size_t)cap);
        if (!grown) return ab_fail(AB_E_NOMEM, "out of memory");
        R->out = grown, R->cap_out = cap;
    }
    R->out[R->n_out++] = (struct outlier){metric, mi, pi, view, target, value};
    return AB_OK;
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
    char cap_buf[1200];
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
void ab_rep_announce_pair(const struct rep *R, const char *stem)
{
    char buf[300];
    snprintf(buf, sizeof buf, "%s.tsv", stem);
    ab_rep_announce(R, buf);
    snprintf(buf, sizeof buf, "%s.gp", stem);
    ab_rep_announce(R, buf);
}
static void announce_pair(const struct rep *R, const char *stem) { ab_rep_announce_pair(R, stem); }

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
        double x = field(cell, metrics[k].offset);
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

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of v[0..n) by linear interpolation (sorts v). */
static double quantile(double *v, int64_t n, double q)
{
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof(double), cmp_dbl);
    double at = q * (double)(n - 1);
    int64_t i = (int64_t)floor(at);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (at - (double)i) * (v[i + 1] - v[i]);
}

/* The largest rel_l2 any figure or colour scale shows: an output further from the exact one
 * than twice its norm is broken, not a trade-off. */
#define REL_L2_CEILING 2.0

/* heads-rel_l2-<B>-<family> (gnuplot, the methods of one family) and
 * heads-<method>-<phase>-<B> (libpng, each), on one log colour scale for every method: the 2nd
 * to 98th percentile of the values, at most REL_L2_CEILING; cells outside it are crossed. */
static int heatmaps(struct rep *R)
{
    if (isnan(R->B) || R->n_layer < 1 || R->n_head < 1) return AB_OK;
    int64_t n = R->n_layer * R->n_head;
    int n_g = 0, rc = AB_OK;
    struct ab_gp_grid *grids = calloc((size_t)(R->n_m * R->n_p + 1), sizeof *grids);
    double *vals = malloc(sizeof(double) * (size_t)(n * (R->n_m * R->n_p + 1)));
    double *all = malloc(sizeof(double) * (size_t)(n * (R->n_m * R->n_p + 1)));
    char (*titles)[96] = calloc((size_t)(R->n_m * R->n_p + 1), sizeof *titles);
    int *gm = calloc((size_t)(R->n_m * R->n_p + 1), sizeof(int) * 2);
    if (!grids || !vals || !all || !titles || !gm) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    int64_t n_all = 0;
    for (int f = -1; f < R->n_fam; f++) /* dense first, then family by family */
        for (int pi = 0; pi < R->n_p; pi++)
            for (int mi = 0; mi < R->n_m; mi++) {
                if (R->m[mi].fam != f) continue;
                int ti, s = ab_rep_group_at(R, mi, pi, R->B, &ti);
                if (s < 0 || R->r->summary[s].n_heads <= 0) continue;
                double *v = &vals[n_g * n];
                if ((rc = metric_grid(R, mi, pi, ti, M_REL_L2, v)) != AB_OK) goto done;
                int finite = 0;
                for (int64_t i = 0; i < n; i++)
                    if (isfinite(v[i]) && v[i] > 0) all[n_all++] = log(v[i]), finite = 1;
                if (!finite) continue;
                snprintf(titles[n_g], sizeof titles[0], "%s (%s)", R->m[mi].name, R->phase[pi]);
                grids[n_g] = (struct ab_gp_grid){.title = titles[n_g], .rows = R->n_layer,
                                                 .cols = R->n_head, .v = v};
                gm[2 * n_g] = mi, gm[2 * n_g + 1] = pi;
                n_g++;
            }
    if (!n_g) goto done;
    /* one robust log scale for every method: colours compare across panels and figures */
    double lo = exp(quantile(all, n_all, 0.02)), hi = exp(quantile(all, n_all, 0.98));
    lo = pow(10, floor(log10(lo) * 4) / 4), hi = pow(10, ceil(log10(hi) * 4) / 4);
    hi = fmin(hi, REL_L2_CEILING);
    if (!(hi > lo)) lo = hi / 10;
    int64_t n_above = 0, n_below = 0;
    for (int g = 0; g < n_g; g++)
        for (int64_t i = 0; i < n; i++) {
            n_above += grids[g].v[i] > hi;
            n_below += grids[g].v[i] < lo;
        }
    char rl[32], rf[32], name[160], title[240], what[240], png[200];
    ab_ratio_label(R->B, rl, sizeof rl);
    ratio_file(R->B, rf, sizeof rf);
    /* one gnuplot figure per family (dense goes with the first) */
    for (int f = 0; f < R->n_fam; f++) {
        int g0 = -1, g1 = 0;
        for (int g = 0; g < n_g; g++)
            if (R->m[gm[2 * g]].fam == f || (R->m[gm[2 * g]].fam < 0 && f == 0)) {
                if (g0 < 0) g0 = g;
                g1 = g + 1;
            }
        if (g0 < 0) continue;
        /* the grids of family f are contiguous, after dense's */
        if (f == 0) g0 = 0;
        snprintf(name, sizeof name, "heads-rel_l2-%s-%s", rf, R->fam[f]);
        snprintf(title, sizeof title, "rel_l2 per head at FLOP ratio %s, %s methods (layers "
                 "down, heads across)", rl, R->fam[f]);
        struct ab_gp_heatmaps pl = {.name = name, .title = title, .xlabel = "head",
                                    .ylabel = "layer", .cblabel = "rel_l2", .shared_scale = 1,
                                    .lo = lo, .hi = hi, .logcb = 1, .n_grids = g1 - g0,
                                    .grids = grids + g0, .width = 1200};
        if ((rc = ab_gp_heatmaps_write(R->o->dir, &pl)) != AB_OK) goto done;
        announce_pair(R, name);
        snprintf(png, sizeof png, "%s.png", name);
        if ((rc = ab_rep_add_fig(R, SEC_HEADS, 1, png,
                          "rel_l2 of every head of the %s methods at FLOP ratio %s%s, one panel "
                          "per method and phase, on the log colour scale shared by every "
                          "family: %.3g (dark) to %.3g (bright), the 2nd to 98th percentile "
                          "of all heads (at most %g); crossed: outside it (black: above, white: "
                          "below); white: infeasible or not run.",
                          R->fam[f], rl, R->n_w > 1 ? " (mean over the workloads)" : "", lo, hi,
                          REL_L2_CEILING)))
            goto done;
    }
    if (n_above || n_below)
        if ((rc = ab_rep_strv_push(&R->notes[SEC_HEADS],
                            "Outside the colour scale at %s: %lld head cells above %.3g and %lld "
                            "below %.3g (crossed in the pictures; their values are in the .tsv "
                            "files).",
                            rl, (long long)n_above, hi, (long long)n_below, lo)))
            goto done;
    for (int g = 0; g < n_g; g++) {
        int mi = gm[2 * g], pi = gm[2 * g + 1];
        snprintf(name, sizeof name, "heads-%s-%s-%s", R->m[mi].name, R->phase[pi], rf);
        snprintf(what, sizeof what, "rel_l2 of %s (%s) at FLOP ratio %s, mean over workloads",
                 R->m[mi].name, R->phase[pi], rl);
        /* the panel figures above draw every method with axes; each method's numbers go
         * to a .tsv of its own (a picture per method would be a thumbnail without axes) */
        if ((rc = write_grid_tsv(R, name, what, grids[g].v, R->n_layer, R->n_head)) != AB_OK)
            goto done;
        snprintf(png, sizeof png, "%s.tsv", name);
        if ((rc = ab_rep_add_fig(R, SEC_HEADS, 0, png, "%s (%s)", R->m[mi].name,
                                 R->phase[pi])))
            goto done;
    }
    rc = ab_rep_strv_push(&R->notes[SEC_HEADS],
                   "Each .tsv holds one method's rel_l2 per head (layer 0 in the first row, head 0 "
                   "in the first column; NaN: infeasible or not run), the numbers behind its panel "
                   "above.");
done:
    free(grids), free(vals), free(all), free(titles), free(gm);
    return rc;
}

/* The /heads column standing for statistic `stat` (sink, entropy, locality), or -1. */
static int stat_column(const struct ab_heads_table *h, const char *stat)
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
    const struct ab_heads_table *h = &R->d->heads;
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
        if ((rc = write_grid_tsv(R, name, what, v, L, H)) != AB_OK) break;
        char tsv[80];
        snprintf(tsv, sizeof tsv, "%s.tsv", name);
        if ((rc = ab_rep_add_fig(R, SEC_STATS, 0, tsv, "%s (column %s)", stats[s],
                                 h->col_name[c])))
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
        if (given || rc == AB_E_NOMEM) return rc; /* else: no maps, and a note says why */
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
        ab_ratio_label(budget, rl, sizeof rl);
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

/* Announces name.bin and name.gp (the picture is announced when gnuplot renders it). */
static void map_announce(const struct rep *R, const char *stem)
{
    char buf[300];
    snprintf(buf, sizeof buf, "%s.bin", stem);
    ab_rep_announce(R, buf);
    snprintf(buf, sizeof buf, "%s.gp", stem);
    ab_rep_announce(R, buf);
}

/* map-L<l>-H<h>.png and map-L<l>-H<h>-<method>.png for every chosen head: gnuplot figures of
 * the pooled map (.bin) and their scripts (.gp), rendered with the other figures. */
static int maps(struct rep *R)
{
    if (!R->have_wl) return AB_OK;
    int rc = choose_maps(R);
    if (rc != AB_OK) return rc;
    const struct ab_report_opts *o = R->o;
    double budget = isnan(R->B) ? o->budget : R->B;
    char rl[32];
    ab_ratio_label(budget, rl, sizeof rl);
    uint64_t seed = R->d->n_inputs ? R->d->inputs[0].seed : 1;
    for (int i = 0; i < R->n_maps; i++) {
        int64_t L = R->maps[i].layer, H = R->maps[i].head;
        if (L < 0 || L >= R->wl.n_layer || H < 0 || H >= R->wl.n_head) continue; /* checked */
        /* the exact map */
        char name[128];
        snprintf(name, sizeof name, "map-L%lld-H%lld", (long long)L, (long long)H);
        if ((rc = ab_map_figure_write(R->wl_path, &R->wl, L, H, o->map_size, o->map_floor,
                                      o->dir, name)) != AB_OK)
            return rc;
        map_announce(R, name);
        char file[160];
        snprintf(file, sizeof file, "%s.png", name);
        const char *prof = ab_rep_profile_of(R, R->wl_cells, L, H);
        if ((rc = ab_rep_add_fig(R, SEC_MAPS, 1, file,
                          "Layer %lld head %lld%s%s%s: exact attention (log scale from %g to 1; "
                          "max-pooled to at most %lld px per side, so sinks and needles stay "
                          "visible; grey: masked), %s.",
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
            struct ab_kept_map_info info;
            rc = ab_kept_map_write(R->wl_path, &R->wl, L, H, &ko, o->dir, name, &info);
            if (rc == AB_E_USAGE) { /* cannot draw it here (budget out of reach, phase): say so */
                char msg[400];
                snprintf(msg, sizeof msg, "%s", ab_errmsg());
                if ((rc = ab_rep_strv_push(&R->notes[SEC_MAPS], "No mask of %s on layer %lld head "
                                    "%lld: %s.", R->mm[j], (long long)L, (long long)H, msg)))
                    return rc;
                continue;
            }
            if (rc != AB_OK) return rc;
            map_announce(R, name);
            snprintf(file, sizeof file, "%s.png", name);
            char knob[48] = "";
            const struct ab_method *m = ab_method_find(R->mm[j]);
            if (m && m->knob.name)
                snprintf(knob, sizeof knob, ", %s = %.4g", m->knob.name, info.knob);
            if ((rc = ab_rep_add_fig(R, SEC_MAPS, 1, file,
                              "%s on layer %lld head %lld (%s, budget %s%s, achieved ratio "
                              "%.3g%s, recall %.3g): kept cells in viridis, dropped cells in "
                              "red by their probability; %.1f%% of the visible cells of the "
                              "%lld drawn %s kept.",
                              R->mm[j], (long long)L, (long long)H,
                              info.phase == AB_PHASE_PREFILL ? "prefill" : "decode", rl, knob,
                              info.ratio, info.feasible ? "" : ", below the tolerance",
                              info.recall, 100 * info.kept_share, (long long)info.n_rows,
                              info.phase == AB_PHASE_PREFILL ? "query rows (evenly spaced) were"
                                                             : "decode queries were")))
                return rc;
        }
    }
    return AB_OK;
}

/* ================================================================== the whole report */

/* mkdir -p; *made = 1 when dir itself did not exist. AB_E_CREATE naming dir. */
static int make_dir(const char *dir, int *made)
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
                *made = !c;
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
    for (int v = 0; v < R->n_v; v++) free(R->v[v].grp), free(R->v[v].cells);
    for (int i = 0; i < 2; i++) ab_results_free(&R->vres[i]);
    free(R->gnuplot);
    for (int i = 0; i < R->n_fig; i++) free(R->fig[i].file), free(R->fig[i].caption);
    free(R->fig);
    free(R->out);
    for (int i = 0; i <= N_SEC; i++) strv_free(&R->notes[i]);
    if (R->have_wl) ab_workload_free(&R->wl);
    free(R->wl_path);
    free(R->maps), free(R->mm);
    free(R->study_md);
    ab_bench_rows_free(R->bench, R->n_bench);
    ab_rep_e2e_free(R);
    /* the kept cells are shallow copies (the strings belong to d->merged); the pooled summary
     * belongs to vres[0] */
    free(R->all.cells);
    free(R->tab.cells); /* its own array when there are tokens or bytes cells */
    R->tab.cells = NULL, R->tab.n_cells = 0;
    ab_results_free(&R->tab);
    memset(&R->all, 0, sizeof R->all);
    free(R->kvb.cells);
    R->kvb.cells = NULL, R->kvb.n_cells = 0;
    ab_results_free(&R->kvb);
}

/* 1 for a cell of a tokens or bytes budget (the FLOP machinery leaves it to R->kvb). */
static int kv_budget_cell(const struct ab_cell *c)
{
    return c->budget_kind && (!strcmp(c->budget_kind, "tokens") || !strcmp(c->budget_kind, "bytes"));
}

/* The cells of src that the filter of R->o keeps (of one workload when `workload` is not
 * NULL), as shallow copies into R->all (R->r points at it). */
static int keep_cells(struct rep *R, const struct ab_results *src, const char *workload)
{
    ab_results_init(&R->all);
    R->all.cells = malloc(sizeof *R->all.cells * (size_t)(src->n_cells + 1));
    if (!R->all.cells) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int64_t c = 0; c < src->n_cells; c++) {
        const struct ab_cell *cell = &src->cells[c];
        if (!keeps(R->o, cell->method, cell->family)) continue;
        if (workload && strcmp(cell->workload ? cell->workload : "", workload)) continue;
        if (kv_budget_cell(cell)) continue; /* R->kvb's (keep_kv_cells) */
        R->all.cells[R->all.n_cells++] = *cell;
    }
    R->all.cap_cells = R->all.n_cells;
    R->r = &R->all;
    return AB_OK;
}

/* The kept cells of tokens and bytes budgets into R->kvb, pooled over workloads, with their
 * summary; and the CSV table R->tab of every kept cell (FLOP cells first, as the results order
 * them within a kind). */
static int keep_kv_cells(struct rep *R, const struct ab_results *src)
{
    ab_results_init(&R->kvb);
    R->kvb.cells = malloc(sizeof *R->kvb.cells * (size_t)(src->n_cells + 1));
    R->tab.cells = malloc(sizeof *R->tab.cells * (size_t)(src->n_cells + 1));
    if (!R->kvb.cells || !R->tab.cells) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int64_t c = 0; c < src->n_cells; c++) {
        const struct ab_cell *cell = &src->cells[c];
        if (!kv_budget_cell(cell) || !keeps(R->o, cell->method, cell->family)) continue;
        R->kvb.cells[R->kvb.n_cells] = *cell;
        R->kvb.cells[R->kvb.n_cells++].workload = "";
    }
    R->kvb.cap_cells = R->kvb.n_cells;
    memcpy(R->tab.cells, R->all.cells, sizeof *R->tab.cells * (size_t)R->all.n_cells);
    R->tab.n_cells = R->all.n_cells;
    for (int64_t c = 0; c < src->n_cells; c++) {
        const struct ab_cell *cell = &src->cells[c];
        if (kv_budget_cell(cell) && keeps(R->o, cell->method, cell->family))
            R->tab.cells[R->tab.n_cells++] = *cell;
    }
    R->tab.cap_cells = R->tab.n_cells;
    return ab_results_summarise(&R->kvb);
}

/* The frontiers of each workload alone (opts.by_workload): the cells of one workload, their own
 * views and index, the same figures named <figure>-<stem>; figures and notes go to R. */
static int frontiers_by_workload(struct rep *R)
{
    int rc = AB_OK;
    for (int w = 0; w < R->n_w && !rc; w++) {
        /* "-<file name without .h5>", reduced to file-name-safe characters */
        const char *base = strrchr(R->wname[w], '/');
        base = base ? base + 1 : R->wname[w];
        size_t len = strlen(base);
        if (len > 3 && !strcmp(base + len - 3, ".h5")) len -= 3;
        char suffix[128];
        snprintf(suffix, sizeof suffix, "-%.*s", (int)len, base);
        for (char *q = suffix; *q; q++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", *q)) *q = '_';
        struct rep S = {.d = R->d, .o = R->o, .wl_cells = -1, .suffix = suffix, .subset = base};
        rc = keep_cells(&S, R->r, R->wname[w]);
        if (!rc) rc = build_index(&S);
        if (!rc) rc = ab_rep_frontiers(&S);
        for (int i = 0; i < S.n_fig && !rc; i++) /* the figures join the report's */
            rc = ab_rep_add_fig(R, S.fig[i].section, S.fig[i].gp, S.fig[i].file, "%s",
                                S.fig[i].caption);
        for (int i = 0; i < S.n_out && !rc; i++) { /* outliers: under their method names */
            const struct outlier *o = &S.out[i];
            int mi = find_method(R, S.m[o->mi].name), pi = find_phase(R, S.phase[o->pi]);
            if (mi >= 0 && pi >= 0)
                rc = ab_rep_add_outlier(R, o->metric, mi, pi, 0, o->target, o->value);
        }
        rep_free(&S);
    }
    return rc;
}

void ab_report_defaults(struct ab_report_opts *o)
{
    *o = (struct ab_report_opts){.budget = 0.125, .map_size = 512, .map_floor = 1e-6,
                                 .gnuplot = "gnuplot"};
}

int ab_report_write(const struct ab_report_data *d, const struct ab_report_opts *o)
{
    struct rep R = {.d = d, .o = o, .wl_cells = -1};
    double sink_ratio = NAN;
    int64_t sink_heads = 0, n_sh = 0;
    int rc, made = 0, writing = 0, keep = 0;
    size_t mark = 0;
    if ((rc = ab_report_check_filter(o, d)) != AB_OK) return rc;
    if ((rc = ab_gnuplot_find(o->gnuplot ? o->gnuplot : "gnuplot", &R.gnuplot)) != AB_OK) {
        if (rc != AB_E_NOTOOL) goto done; /* out of memory */
        snprintf(R.gnuplot_err, sizeof R.gnuplot_err, "%s", ab_errmsg());
        R.gnuplot = NULL;
    }
    if ((rc = keep_cells(&R, &d->merged, NULL)) != AB_OK) goto done;
    if ((rc = keep_kv_cells(&R, &d->merged)) != AB_OK) goto done;
    if ((o->n_methods || o->n_families) && d->merged.n_cells) {
        int64_t kept = 0;
        for (int64_t c = 0; c < R.tab.n_cells; c++)
            kept += !R.tab.cells[c].family || strcmp(R.tab.cells[c].family, "dense");
        if (!kept) {
            rc = ab_fail(AB_E_USAGE, "report: the results hold no cell of the methods and "
                         "families asked for");
            goto done;
        }
    }
    if ((rc = build_index(&R)) != AB_OK) goto done;
    /* the per-workload summary of the kept cells (every kind), for the CSV tables */
    if ((rc = ab_results_summarise(&R.tab)) != AB_OK) goto done;

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
    if ((rc = ab_rep_bench_load(&R)) != AB_OK) goto done;
    if ((rc = make_dir(o->dir, &made)) != AB_OK) goto done;
    mark = ab_outputs_begin();
    writing = 1;

    if ((rc = ab_rep_frontiers(&R)) != AB_OK) goto done;
    if (o->by_workload && R.n_w > 1 && (rc = frontiers_by_workload(&R)) != AB_OK) goto done;
    for (int i = 0; i < R.n_b; i++)
        if ((rc = ab_rep_isoflops(&R, R.b[i])) != AB_OK) goto done;
    if ((rc = heatmaps(&R)) != AB_OK) goto done;
    if ((rc = head_stats(&R, &sink_ratio, &sink_heads, &n_sh)) != AB_OK) goto done;
    if ((rc = maps(&R)) != AB_OK) goto done;
    if ((rc = ab_rep_e2e(&R)) != AB_OK) goto done;
    if ((rc = ab_rep_study(&R)) != AB_OK) goto done;
    if ((rc = ab_rep_bench(&R)) != AB_OK) goto done;
    if ((rc = ab_rep_kv_budgets(&R)) != AB_OK) goto done;
    {
        char *cells = ab_path_join(o->dir, "cells", ".csv"),
             *summary = ab_path_join(o->dir, "summary", ".csv");
        rc = cells && summary ? ab_results_write_csv(cells, summary, &R.tab)
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
        } else if (r2 != AB_E_INTERNAL && r2 != AB_E_NOTOOL) { /* out of memory, a full disk */
            rc = r2;
            goto done;
        } else if (!R.plot_failed++) {
            R.first_plot_rc = r2;
            snprintf(R.plot_err, sizeof R.plot_err, "%s", ab_errmsg());
        }
    }
    if ((rc = ab_rep_write_md(&R, sink_ratio, sink_heads, n_sh)) != AB_OK) goto done;
    /* without gnuplot, or with a script it fails on, the report stays: its .gp and .tsv are to
     * be rendered (or mended) by hand */
    keep = 1;
    if (!R.gnuplot)
        rc = ab_fail(AB_E_NOTOOL, "%s: wrote the .gp and .tsv files but no plot (render them "
                     "with 'gnuplot -c NAME.gp' in '%s')", R.gnuplot_err, o->dir);
    else if (R.plot_failed)
        rc = ab_fail(R.first_plot_rc, "%s%s", R.plot_err,
                     R.plot_failed > 1 ? " (and other plots)" : "");
done:
    if (writing) { /* nothing partial: a failed report takes back the files it wrote */
        ab_outputs_end(mark, rc != AB_OK && !keep);
        if (rc != AB_OK && !keep && made) rmdir(o->dir);
    }
    rep_free(&R);
    return rc;
}
