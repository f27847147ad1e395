/* report_frontier.c - the frontier figures and isoFLOPS bars of `attnbench report` (report.h):
 * accuracy against the achieved (amortised) FLOP ratio, split so that a slide can be read.
 *
 *   frontier-<family>            rows rel_l2 and task_acc, one column per phase (and per part
 *                                of a phase where the family runs more than 10 methods);
 *   frontier-<family>-recall     the same for recall and cos_min;
 *   frontier-<family>-tasks      the same for the accuracy on retrieve and aggregate queries;
 *   frontier-<family>-n          rel_l2, one row per column above, one column per length;
 *   frontier-families[-tasks]    the best method of each family at each budget;
 *   frontier-length              the best of all methods at each budget, one line per length;
 *   kvcache-<family>[-<k>]       decode: rel_l2 and task_acc against the FLOP ratio and
 *                                against the K/V bytes read relative to dense;
 *   isoflops-<ratio>             per phase, horizontal bars of mean rel_l2 and of task_acc,
 *                                sorted, the best TOP_BARS methods and dense, coloured by family.
 *
 * Every line is a (method, phase) over budgets: the mean over the heads of the view's summary
 * row at each target, at its mean achieved ratio. On every panel the envelope (thick grey) is
 * the best mean of ALL methods (every family, feasible on every head) at each budget, at that
 * method's achieved ratio; on the KV axis, where budgets are not shared, it is the Pareto front
 * (best value at that K/V size or less). Dense is the reference point (black star) where a
 * higher value is better; its rel_l2 is rounding and stays off the log axis.
 *
 * Ranges are robust (robust_range): rel_l2 within the 2nd..98th percentile of every plotted
 * mean, at most REL_L2_CEILING; values outside are drawn on the edge (ab_gp_figure) and
 * recorded with ab_rep_add_outlier for report.md. Each figure's y range is shared by its row,
 * and the families' figures share it, so slides compare. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "report/gnuplot.h"
#include "report/report_internal.h"

#define REL_L2_CEILING 2.0 /* as report.c: above it an output is broken, not a trade-off */
enum { MAX_LINES = 10 };   /* lines of one family in a panel */
enum { TOP_BARS = 12 };    /* bars of one isoFLOPS panel besides dense */
enum { MAX_PANELS = 24, MAX_COLS = 8 };

static const struct ab_metric *const M = ab_metrics;
static double field(const void *row, size_t off)
{
    return ab_rep_field(row, off);
}

/* ================================================================== building a figure */

/* A figure being built: panels with their curves, whose points live in one growing buffer
 * (curves keep offsets until the figure is written). */
struct fb {
    int n_pan;
    struct ab_gp_axes pan[MAX_PANELS];
    int first[MAX_PANELS + 1]; /* first curve of each panel */
    char ptitle[MAX_PANELS][128];
    char ylabel[MAX_PANELS][64];
    int n_tic[MAX_PANELS];
    double tic[MAX_PANELS][32];
    char tic_lab[MAX_PANELS][32][40];
    const char *tic_p[MAX_PANELS][32];
    int n_cu, cap_cu;
    struct ab_gp_curve *cu;
    size_t *off; /* (n_cu) offset of the curve's x in xy; y follows */
    char (*ctitle)[112];
    size_t n_xy, cap_xy;
    double *xy;
    /* what the panels leave out, for the footer */
    char never[1200]; /* methods with no budget met on every head: "a, b" */
    char part[2400];  /* groups met on some heads only: "sale at 1/2 (7/16 heads)" */
    int n_seen;
    int seen[512][2]; /* (method, phase + 8 view) already named */
};

static void fb_free(struct fb *F)
{
    free(F->cu), free(F->off), free(F->ctitle), free(F->xy);
    memset(F, 0, sizeof *F);
}

/* Starts a panel. */
static struct ab_gp_axes *fb_panel(struct fb *F, const char *title, const char *ylabel)
{
    if (F->n_pan == MAX_PANELS) return NULL;
    int p = F->n_pan++;
    snprintf(F->ptitle[p], sizeof F->ptitle[0], "%s", title);
    snprintf(F->ylabel[p], sizeof F->ylabel[0], "%s", ylabel);
    F->pan[p] = (struct ab_gp_axes){.title = F->ptitle[p],
                                    .ylabel = F->ylabel[p],
                                    .xmin = NAN,
                                    .xmax = NAN,
                                    .ymin = NAN,
                                    .ymax = NAN};
    F->first[p] = F->n_cu;
    F->first[p + 1] = F->n_cu;
    return &F->pan[p];
}

/* Adds a curve of n points to the last panel (copies x, y). AB_OK or AB_E_NOMEM. */
static int fb_curve(struct fb *F, const char *title, int style, int64_t n, const double *x,
                    const double *y)
{
    if (F->n_cu == F->cap_cu) {
        int cap = F->cap_cu ? 2 * F->cap_cu : 64;
        struct ab_gp_curve *cu = realloc(F->cu, sizeof *cu * (size_t)cap);
        if (cu) F->cu = cu;
        size_t *off = realloc(F->off, sizeof *off * (size_t)cap);
        if (off) F->off = off;
        char(*ct)[112] = realloc(F->ctitle, sizeof *ct * (size_t)cap);
        if (ct) F->ctitle = ct;
        if (!cu || !off || !ct) return ab_fail(AB_E_NOMEM, "out of memory");
        F->cap_cu = cap;
        /* the titles moved with their buffer: point the curves at them again (a figure of
         * more than 64 curves wrote freed memory as its legend before) */
        for (int i = 0; i < F->n_cu; i++) F->cu[i].title = F->ctitle[i];
    }
    if (F->n_xy + 2 * (size_t)n > F->cap_xy) {
        size_t cap = AB_MAX(2 * F->cap_xy, F->n_xy + 2 * (size_t)n + 256);
        double *xy = realloc(F->xy, sizeof(double) * cap);
        if (!xy) return ab_fail(AB_E_NOMEM, "out of memory");
        F->xy = xy, F->cap_xy = cap;
    }
    int c = F->n_cu++;
    snprintf(F->ctitle[c], sizeof F->ctitle[0], "%s", title);
    F->cu[c] = (struct ab_gp_curve){.title = F->ctitle[c], .style = style, .n = n};
    F->off[c] = F->n_xy;
    memcpy(F->xy + F->n_xy, x, sizeof(double) * (size_t)n);
    memcpy(F->xy + F->n_xy + n, y, sizeof(double) * (size_t)n);
    F->n_xy += 2 * (size_t)n;
    F->first[F->n_pan] = F->n_cu;
    return AB_OK;
}

/* A ratio tic: "0.1\n10x" with the compression under it where that is a whole number from 2
 * up, else the ratio alone ("0.3", "0.7", "1"): neighbouring tics of a log axis stay apart.
 * A ratio longer than 5 characters is written as the fraction ("1/16\n16x", not
 * "0.0625\n16x"): on a narrow panel 0.03125 and 0.0625 ran into each other. */
static void tic_label(double t, char *buf, size_t cap)
{
    double k = 1 / t;
    char dec[32];
    snprintf(dec, sizeof dec, "%g", t);
    if (k >= 2 - 1e-9 && fabs(k - round(k)) < 1e-6 * k) {
        if (strlen(dec) > 5) snprintf(dec, sizeof dec, "1/%.0f", round(k));
        snprintf(buf, cap, "%s\n%.0fx", dec, round(k));
    } else {
        snprintf(buf, cap, "%s", dec);
    }
}

/* x tics at the budgets (and 1) as "0.1\n10x", and the x range of every panel without an x
 * label yet: from the smallest budget or point to the largest, with a margin. */
static void fb_budget_axes(struct fb *F, const struct rep *R)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < R->n_b; i++) lo = fmin(lo, R->b[i]), hi = fmax(hi, R->b[i]);
    for (int p = 0; p < F->n_pan; p++)
        for (int c = F->first[p]; c < F->first[p + 1] && !F->pan[p].xlabel; c++)
            for (int64_t i = 0; i < F->cu[c].n; i++) {
                double x = F->xy[F->off[c] + (size_t)i];
                if (isfinite(x) && x > 0) lo = fmin(lo, x), hi = fmax(hi, x);
            }
    if (!(lo <= hi)) lo = 0.1, hi = 1;
    for (int p = 0; p < F->n_pan; p++) {
        struct ab_gp_axes *a = &F->pan[p];
        if (a->xlabel) continue; /* an axis of its own (the K/V bytes) */
        int n = 0;
        for (int i = 0; i < R->n_b && n < 31; i++) {
            F->tic[p][n] = R->b[i];
            tic_label(R->b[i], F->tic_lab[p][n], sizeof F->tic_lab[0][0]);
            n++;
        }
        int has1 = 0;
        for (int i = 0; i < n; i++) has1 |= F->tic[p][i] == 1;
        if (!has1 && hi > 0.85) {
            F->tic[p][n] = 1;
            tic_label(1, F->tic_lab[p][n], sizeof F->tic_lab[0][0]);
            n++;
        }
        for (int i = 0; i < n; i++) F->tic_p[p][i] = F->tic_lab[p][i];
        F->n_tic[p] = n;
        a->logx = 1;
        a->xlabel = "achieved FLOP ratio, and compression";
        a->n_xtics = n, a->xtics = F->tic[p], a->xtic_labels = F->tic_p[p];
        a->xmin = lo / 1.45, a->xmax = hi * 1.3;
    }
}

/* Writes the figure and announces its .tsv and .gp. */
static int fb_write(struct fb *F, const struct rep *R, const char *name, const char *title,
                    int rows, int cols, int n_footer, const char *const *footer, int width,
                    int height)
{
    for (int p = 0; p < F->n_pan; p++) {
        F->pan[p].curves = F->cu + F->first[p];
        F->pan[p].n_curves = F->first[p + 1] - F->first[p];
    }
    for (int c = 0; c < F->n_cu; c++) {
        F->cu[c].x = F->xy + F->off[c];
        F->cu[c].y = F->xy + F->off[c] + F->cu[c].n;
    }
    /* the footer: the caller's lines, then what the lines leave out, wrapped at commas */
    char text[4000], lines[24][200];
    const char *lp[24];
    int n_lines = 0;
    for (int i = 0; i < n_footer && n_lines < 24; i++) {
        snprintf(lines[n_lines], sizeof lines[0], "%s", footer[i]);
        lp[n_lines] = lines[n_lines], n_lines++;
    }
    snprintf(text, sizeof text, "%s%s%s%s%s%s",
             F->never[0] ? "Not drawn (no budget met on every head): " : "", F->never,
             F->never[0] ? ". " : "",
             F->part[0] ? "Left out (budget met on some heads only): " : "", F->part,
             F->part[0] ? "." : "");
    int max_chars = (int)(width / 7.4) - 4; /* DejaVu Sans 10 on pngcairo: about 7 px */
    for (const char *p = text; *p && n_lines < 24;) {
        int len = (int)strlen(p);
        if (len > max_chars) { /* break after the last ", " or " " that fits */
            len = max_chars;
            while (len > 20 && p[len] != ' ') len--;
        }
        snprintf(lines[n_lines], sizeof lines[0], "%.*s", len, p);
        lp[n_lines] = lines[n_lines], n_lines++;
        p += len;
        while (*p == ' ') p++;
    }
    struct ab_gp_figure fig = {.name = name,
                               .title = title,
                               .n_footer = n_lines,
                               .footer = lp,
                               .rows = rows,
                               .cols = cols,
                               .n_panels = F->n_pan,
                               .panels = F->pan,
                               .width = width,
                               .height = height + 16 * (n_lines - n_footer)};
    int rc = ab_gp_figure_write(R->o->dir, &fig);
    if (rc == AB_OK) ab_rep_announce_pair(R, name);
    return rc;
}

/* Draws a figure of rows x cols budget panels (the FLOP-ratio axis on each, 520 px tall for one
 * row, 860 for more), frees F, and names its picture in png. rc is the error of building F:
 * then nothing is written and rc is returned. */
static int fb_finish_budget(struct fb *F, const struct rep *R, int rc, const char *name,
                            const char *title, int rows, int cols, int width, char *png,
                            size_t cap)
{
    if (!rc) {
        fb_budget_axes(F, R);
        rc = fb_write(F, R, name, title, rows, cols, 0, NULL, width, rows == 1 ? 520 : 860);
    }
    fb_free(F);
    if (!rc) snprintf(png, cap, "%s.png", name);
    return rc;
}

/* ================================================================== ranges */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile_sorted(const double *v, int64_t n, double q)
{
    if (n <= 0) return NAN;
    double at = q * (double)(n - 1);
    int64_t i = (int64_t)floor(at);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (at - (double)i) * (v[i + 1] - v[i]);
}

/* 1, 2 or 5 times a power of ten at or below x (up: at or above). */
static double nice(double x, int up)
{
    double e = pow(10, floor(log10(x))), m = x / e;
    static const double steps[] = {1, 2, 5, 10};
    if (up) {
        for (int i = 0; i < 4; i++)
            if (m <= steps[i] * (1 + 1e-9)) return steps[i] * e;
        return 10 * e;
    }
    for (int i = 3; i >= 0; i--)
        if (m >= steps[i] * (1 - 1e-9)) return steps[i] * e;
    return e;
}

/* The y range of metric k over the means of every (method but dense, phase, target) group of
 * views [v0, v1): rel_l2 (log) from a third of the 2nd percentile to the 98th, widened to 1-2-5
 * steps, at most REL_L2_CEILING; cos_min the 2nd percentile (less a margin) to 1; the other
 * accuracies (in [0, 1]) 0 to 1.05, never clipped. AB_OK or AB_E_NOMEM. */
static int robust_range(const struct rep *R, int k, int v0, int v1, double *lo, double *hi)
{
    if (k != M_REL_L2 && k != M_COS_MIN) {
        *lo = -0.02, *hi = 1.05;
        return AB_OK;
    }
    int64_t n = 0, cap = (int64_t)(v1 - v0) * R->n_m * R->n_p * R->n_t + 1;
    double *v = malloc(sizeof(double) * (size_t)cap);
    *lo = NAN, *hi = NAN;
    if (!v) return ab_fail(AB_E_NOMEM, "out of memory for the axis range of %s", M[k].name);
    for (int vi = v0; vi < v1; vi++)
        for (int mi = 0; mi < R->n_m; mi++) {
            if (R->m[mi].fam < 0) continue;
            for (int pi = 0; pi < R->n_p; pi++)
                for (int ti = 0; ti < R->n_t; ti++) {
                    int s = R->v[vi].grp[ab_rep_gidx(R, mi, pi, ti)];
                    if (s < 0 || R->v[vi].sum[s].n_heads <= 0) continue;
                    double x = field(&R->v[vi].sum[s], M[k].mean.offset);
                    if (isfinite(x) && (k != M_REL_L2 || x > 0)) v[n++] = x;
                }
        }
    qsort(v, (size_t)n, sizeof(double), cmp_dbl);
    if (k == M_REL_L2 && n) {
        /* below: a factor 3 of room under the 2nd percentile, so the best methods show */
        double a = nice(quantile_sorted(v, n, 0.02) / 3, 0);
        double b = fmin(nice(quantile_sorted(v, n, 0.98) * 1.2, 1), REL_L2_CEILING);
        if (!(b > 2 * a)) a = b / 10;
        *lo = a, *hi = b;
    } else if (n) {
        double a = quantile_sorted(v, n, 0.02);
        *lo = fmax(-1.05, floor((a - 0.05) * 10) / 10), *hi = 1.02;
    }
    free(v);
    return AB_OK;
}

static void set_range(struct ab_gp_axes *a, int k, double lo, double hi)
{
    a->logy = ab_rep_logy(k);
    a->ymin = lo, a->ymax = hi;
}

/* ================================================================== lines */

/* The line of method mi in view v, phase pi, metric k: the (achieved ratio, mean) of the groups
 * feasible on every head, by ratio, into x, y (cap points). Returns the number of points. */
static int method_points(const struct rep *R, int v, int mi, int pi, int k, double *x, double *y,
                         double *tgt, int cap)
{
    int n = 0;
    for (int ti = 0; ti < R->n_t && n < cap; ti++) {
        size_t g = ab_rep_gidx(R, mi, pi, ti);
        int s = R->v[v].grp[g];
        if (s < 0 || R->v[v].sum[s].n_heads <= 0 || R->v[v].sum[s].n_heads != R->v[v].cells[g])
            continue;
        double val = field(&R->v[v].sum[s], M[k].mean.offset);
        if (!isfinite(val) || !isfinite(R->v[v].sum[s].flop_ratio)) continue;
        x[n] = R->v[v].sum[s].flop_ratio, y[n] = val, tgt[n] = R->t[ti];
        n++;
    }
    for (int a = 1; a < n; a++) /* insertion sort by ratio */
        for (int b = a; b > 0 && x[b] < x[b - 1]; b--) {
            double t0 = x[b], t1 = y[b], t2 = tgt[b];
            x[b] = x[b - 1], y[b] = y[b - 1], tgt[b] = tgt[b - 1];
            x[b - 1] = t0, y[b - 1] = t1, tgt[b - 1] = t2;
        }
    return n;
}

/* Names in the footer of F what method mi's line in view v, phase pi leaves out: the whole
 * method when no budget is met on every head, else each group met on some heads only. */
static void note_left_out(const struct rep *R, struct fb *F, int v, int mi, int pi, int n_points)
{
    int key = pi + 8 * v; /* once per (method, phase, view): the rows repeat the columns */
    for (int i = 0; i < F->n_seen; i++)
        if (F->seen[i][0] == mi && F->seen[i][1] == key) return;
    if (F->n_seen < 512) F->seen[F->n_seen][0] = mi, F->seen[F->n_seen++][1] = key;
    char len[32] = "";
    if (v) snprintf(len, sizeof len, ", n = %lld", (long long)R->v[v].n);
    size_t l = strlen(F->never);
    if (!n_points) {
        int dup = 0; /* once per method, whatever the phase or length */
        char want[80];
        snprintf(want, sizeof want, "%s%s", l ? ", " : "", R->m[mi].name);
        for (const char *p = strstr(F->never, R->m[mi].name); p; p = strstr(p + 1, R->m[mi].name))
            dup |= (p == F->never || p[-1] == ' ') &&
                   (p[strlen(R->m[mi].name)] == ',' || !p[strlen(R->m[mi].name)]);
        if (!dup && l + strlen(want) < sizeof F->never) strcat(F->never, want);
        return;
    }
    /* one item per method: "sale (prefill, n = 2048) at 1/2, 1/5: 7..9 of 16 heads" */
    char budgets[200] = "";
    int64_t lo = INT64_MAX, hi = 0, all = 0;
    for (int ti = 0; ti < R->n_t; ti++) {
        size_t g = ab_rep_gidx(R, mi, pi, ti);
        int s = R->v[v].grp[g];
        if (s < 0 || R->v[v].sum[s].n_heads <= 0 || R->v[v].sum[s].n_heads == R->v[v].cells[g])
            continue;
        char rl[16];
        ab_ratio_label(R->t[ti], rl, sizeof rl);
        size_t lb = strlen(budgets);
        snprintf(budgets + lb, sizeof budgets - lb, "%s%s", lb ? ", " : "", rl);
        lo = AB_MIN(lo, R->v[v].sum[s].n_heads), hi = AB_MAX(hi, R->v[v].sum[s].n_heads);
        all = AB_MAX(all, R->v[v].cells[g]);
    }
    if (!budgets[0]) return;
    char item[400], heads[64];
    if (lo == hi)
        snprintf(heads, sizeof heads, "%lld of %lld heads", (long long)lo, (long long)all);
    else
        snprintf(heads, sizeof heads, "%lld..%lld of %lld heads", (long long)lo, (long long)hi,
                 (long long)all);
    size_t lp = strlen(F->part);
    snprintf(item, sizeof item, "%s%s (%s%s) at %s: %s", lp ? "; " : "", R->m[mi].name,
             R->phase[pi], len, budgets, heads);
    if (lp + strlen(item) < sizeof F->part) strcat(F->part, item);
}

/* Adds method mi's line to the last panel of F (its slot's style), recording the points
 * outside the panel's range and what the line leaves out. */
static int add_method(struct rep *R, struct fb *F, int v, int mi, int pi, int k, int style)
{
    double x[72], y[72], t[72];
    int n = method_points(R, v, mi, pi, k, x, y, t, 72), rc;
    note_left_out(R, F, v, mi, pi, n);
    if (!n) return AB_OK;
    const struct ab_gp_axes *a = &F->pan[F->n_pan - 1];
    for (int i = 0; i < n; i++)
        if (isfinite(a->ymin) && (y[i] < a->ymin || y[i] > a->ymax) &&
            (rc = ab_rep_add_outlier(R, k, mi, pi, v, t[i], y[i])))
            return rc;
    char title[112];
    snprintf(title, sizeof title, "%s%s", R->m[mi].name, R->m[mi].oracle ? " (oracle)" : "");
    return fb_curve(F, title, style, n, x, y);
}

/* The envelope of view v, phase pi, metric k among the methods of family fam (-1: all, dense
 * included; -2: every family, dense aside; oracles included when `oracles`): at each budget the
 * best mean of a method feasible on every head, at that method's achieved ratio. Into x, y;
 * returns the count. */
static int best_points(const struct rep *R, int v, int pi, int k, int fam, int oracles, double *x,
                       double *y)
{
    int n = 0;
    for (int bi = 0; bi < R->n_b; bi++) {
        const struct ab_summary_row *row;
        if (ab_rep_best_in(R, v, pi, R->b[bi], k, fam, oracles, &row) < 0) continue;
        x[n] = row->flop_ratio, y[n] = field(row, M[k].mean.offset);
        n++;
    }
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && x[b] < x[b - 1]; b--) {
            double t0 = x[b], t1 = y[b];
            x[b] = x[b - 1], y[b] = y[b - 1], x[b - 1] = t0, y[b - 1] = t1;
        }
    return n;
}

/* The envelope of the methods (dense, the reference, aside: on rel_l2 its value is rounding,
 * elsewhere it is drawn as its own point). */
static int add_envelope(struct rep *R, struct fb *F, int v, int pi, int k, const char *title,
                        int style)
{
    double x[72], y[72];
    int n = best_points(R, v, pi, k, -2, 1, x, y);
    return n ? fb_curve(F, title, style, n, x, y) : AB_OK;
}

/* Dense's point(s) in view v, phase pi (a reference where higher is better). */
static int add_dense(struct rep *R, struct fb *F, int v, int pi, int k)
{
    if (!ab_rep_higher_better(k)) return AB_OK;
    for (int mi = 0; mi < R->n_m; mi++) {
        if (strcmp(R->m[mi].family, "dense")) continue;
        double x[72], y[72], t[72];
        int n = method_points(R, v, mi, pi, k, x, y, t, 72);
        if (n) return fb_curve(F, "dense (reference)", AB_GP_REFERENCE, n, x, y);
    }
    return AB_OK;
}

/* ================================================================== a family's columns */

/* A column of a family's figures: the methods of family f running in phase pi, part c of
 * n_parts (at most MAX_LINES each). */
struct col {
    int pi, part, n_parts;
    int n;
    int mi[64];
};

/* The columns of family f: per phase, its methods split into balanced parts of at most
 * MAX_LINES. Returns the count (at most MAX_COLS). */
static int family_cols(const struct rep *R, int f, struct col *cols)
{
    int n_cols = 0;
    for (int pi = 0; pi < R->n_p; pi++) {
        int ms[256], n = 0;
        for (int mi = 0; mi < R->n_m && n < 256; mi++)
            if (R->m[mi].fam == f && ab_rep_runs_in(R, mi, pi)) ms[n++] = mi;
        if (!n) continue;
        int parts = (n + MAX_LINES - 1) / MAX_LINES;
        for (int c = 0, at = 0; c < parts && n_cols < MAX_COLS; c++) {
            int take = (n - at) / (parts - c);
            struct col *C = &cols[n_cols++];
            *C = (struct col){.pi = pi, .part = c, .n_parts = parts};
            for (int i = 0; i < take && C->n < 64; i++) C->mi[C->n++] = ms[at + i];
            at += take;
        }
    }
    return n_cols;
}

static void col_title(const struct rep *R, const struct col *C, const char *extra, char *buf,
                      size_t cap)
{
    if (C->n_parts > 1)
        snprintf(buf, cap, "%s, part %d of %d%s", R->phase[C->pi], C->part + 1, C->n_parts, extra);
    else
        snprintf(buf, cap, "%s%s", R->phase[C->pi], extra);
}

/* Whether metric k has any value in view v. */
static int has_metric(const struct rep *R, int v, int k)
{
    for (int mi = 0; mi < R->n_m; mi++)
        for (int pi = 0; pi < R->n_p; pi++)
            for (int ti = 0; ti < R->n_t; ti++) {
                int s = R->v[v].grp[ab_rep_gidx(R, mi, pi, ti)];
                if (s >= 0 && R->v[v].sum[s].n_heads > 0 &&
                    isfinite(field(&R->v[v].sum[s], M[k].mean.offset)))
                    return 1;
            }
    return 0;
}

static const char *envelope_title = "best of all methods at each budget";

/* The name of a figure with the per-workload suffix. */
static void fig_name(const struct rep *R, char *buf, size_t cap, const char *fmt, const char *a)
{
    char base[200];
    snprintf(base, sizeof base, fmt, a);
    snprintf(buf, cap, "%s%s", base, R->suffix ? R->suffix : "");
}

static void on_subset(const struct rep *R, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", R->subset ? " on " : "", R->subset ? R->subset : "");
}

/* frontier-<family>[-<what>]: rows the metrics ks[0..n_k) (those with values), one column per
 * column of the family. */
static int family_figure(struct rep *R, int f, const int *ks, int n_k, const char *what,
                         const char *about, int section)
{
    struct col cols[MAX_COLS];
    int n_cols = family_cols(R, f, cols), rows = 0, rc = AB_OK, use[8];
    if (!n_cols) return AB_OK;
    for (int i = 0; i < n_k; i++)
        if (has_metric(R, 0, ks[i])) use[rows++] = ks[i];
    if (!rows) return AB_OK;
    struct fb F = {0};
    for (int r = 0; r < rows && !rc; r++) {
        int k = use[r];
        double lo, hi;
        rc = robust_range(R, k, 0, 1, &lo, &hi);
        for (int c = 0; c < n_cols && !rc; c++) {
            const struct col *C = &cols[c];
            char t[128];
            col_title(R, C, "", t, sizeof t);
            char ylab[64];
            snprintf(ylab, sizeof ylab, "%s (mean over heads)", M[k].name);
            struct ab_gp_axes *a = fb_panel(&F, t, ylab);
            if (!a) break;
            set_range(a, k, lo, hi);
            if ((rc = add_envelope(R, &F, 0, C->pi, k, envelope_title, AB_GP_ENVELOPE))) break;
            for (int i = 0; i < C->n && !rc; i++)
                rc = add_method(R, &F, 0, C->mi[i], C->pi, k, R->m[C->mi[i]].slot);
            if (!rc) rc = add_dense(R, &F, 0, C->pi, k);
        }
    }
    char name[200], title[300], sub[160], png[220];
    on_subset(R, sub, sizeof sub);
    fig_name(R, name, sizeof name, what, R->fam[f]);
    snprintf(title, sizeof title, "%s methods%s: %s against the achieved FLOP ratio", R->fam[f],
             sub, about);
    if ((rc = fb_finish_budget(&F, R, rc, name, title, rows, n_cols, n_cols > 2 ? 1500 : 1200,
                               png, sizeof png)))
        return rc;
    char metrics_s[120] = "";
    for (int r = 0; r < rows; r++)
        snprintf(metrics_s + strlen(metrics_s), sizeof metrics_s - strlen(metrics_s), "%s%s",
                 r ? (r + 1 == rows ? " and " : ", ") : "", M[use[r]].name);
    return ab_rep_add_fig(R, section, 1, png,
                          "The %s family%s: %s (means over heads) against the achieved FLOP "
                          "ratio, one line per method; grey: the best of all methods at each "
                          "budget%s.",
                          R->fam[f], sub, metrics_s,
                          ab_rep_higher_better(use[rows - 1]) ? "; star: dense" : "");
}

/* frontier-<family>-n: rel_l2 with one row per column of the family and one column per
 * length, the envelope of each length. */
static int family_by_length(struct rep *R, int f)
{
    if (R->n_len < 2) return AB_OK;
    struct col cols[MAX_COLS];
    int n_rows = family_cols(R, f, cols), rc = AB_OK, n_len = AB_MIN(R->n_len, 4);
    if (!n_rows) return AB_OK;
    n_rows = AB_MIN(n_rows, MAX_PANELS / n_len);
    double lo, hi;
    if ((rc = robust_range(R, M_REL_L2, 1, R->n_v, &lo, &hi))) return rc;
    struct fb F = {0};
    for (int r = 0; r < n_rows && !rc; r++)
        for (int k = 0; k < n_len && !rc; k++) {
            const struct col *C = &cols[r];
            char t[128], extra[48];
            snprintf(extra, sizeof extra, ", n = %lld", (long long)R->len[k]);
            col_title(R, C, extra, t, sizeof t);
            struct ab_gp_axes *a = fb_panel(&F, t, "rel_l2 (mean over heads)");
            if (!a) break;
            set_range(a, M_REL_L2, lo, hi);
            if ((rc = add_envelope(R, &F, 1 + k, C->pi, M_REL_L2, envelope_title, AB_GP_ENVELOPE)))
                break;
            for (int i = 0; i < C->n && !rc; i++)
                rc = add_method(R, &F, 1 + k, C->mi[i], C->pi, M_REL_L2, R->m[C->mi[i]].slot);
        }
    char name[200], title[300], sub[160], png[220];
    on_subset(R, sub, sizeof sub);
    fig_name(R, name, sizeof name, "frontier-%s-n", R->fam[f]);
    snprintf(title, sizeof title, "%s methods%s: rel_l2 against the FLOP ratio at each length",
             R->fam[f], sub);
    if ((rc = fb_finish_budget(&F, R, rc, name, title, n_rows, n_len, 1500, png, sizeof png)))
        return rc;
    return ab_rep_add_fig(R, SEC_LENGTH, 1, png,
                          "The %s family%s at each sequence length (columns): rel_l2 against "
                          "the FLOP ratio; grey: the best of all methods at that length.",
                          R->fam[f], sub);
}

/* frontier-families[-tasks]: one line per family, its best method (feasible on every head,
 * oracles left out) at each budget; grey: the best of all methods, oracles included. */
static int families_figure(struct rep *R, const int *ks, int n_k, const char *name0, int section)
{
    int rows = 0, use[8], rc = AB_OK;
    for (int i = 0; i < n_k; i++)
        if (has_metric(R, 0, ks[i])) use[rows++] = ks[i];
    if (!rows || !R->n_fam) return AB_OK;
    struct fb F = {0};
    for (int r = 0; r < rows && !rc; r++) {
        int k = use[r];
        double lo, hi;
        rc = robust_range(R, k, 0, 1, &lo, &hi);
        for (int pi = 0; pi < R->n_p && !rc; pi++) {
            char ylab[64];
            snprintf(ylab, sizeof ylab, "%s (mean over heads)", M[k].name);
            struct ab_gp_axes *a = fb_panel(&F, R->phase[pi], ylab);
            if (!a) break;
            set_range(a, k, lo, hi);
            if ((rc = add_envelope(R, &F, 0, pi, k, envelope_title, AB_GP_ENVELOPE))) break;
            for (int f = 0; f < R->n_fam && !rc; f++) {
                double x[72], y[72];
                int n = best_points(R, 0, pi, k, f, 0, x, y);
                char t[112];
                snprintf(t, sizeof t, "best %s method", R->fam[f]);
                rc = fb_curve(&F, t, f, n, x, y); /* also when empty: the key keeps its order */
            }
            if (!rc) rc = add_dense(R, &F, 0, pi, k);
        }
    }
    char name[200], title[300], sub[160], png[220];
    on_subset(R, sub, sizeof sub);
    fig_name(R, name, sizeof name, "%s", name0);
    snprintf(title, sizeof title, "The best method of each family%s at each budget", sub);
    if ((rc = fb_finish_budget(&F, R, rc, name, title, rows, R->n_p, 1200, png, sizeof png)))
        return rc;
    char ms[120] = "";
    for (int r = 0; r < rows; r++)
        snprintf(ms + strlen(ms), sizeof ms - strlen(ms), "%s%s", r ? " and " : "", M[use[r]].name);
    return ab_rep_add_fig(R, section, 1, png,
                          "Families side by side%s: at each budget the best %s of a family's "
                          "methods feasible on every head (oracles left out); grey: the best of "
                          "all methods.",
                          sub, ms);
}

/* frontier-length: the envelope of each length, rows rel_l2 and task_acc, one column per
 * phase. */
static int length_figure(struct rep *R)
{
    if (R->n_len < 2) return AB_OK;
    int ks[2] = {M_REL_L2, M_TASK_ACC}, rows = 0, use[2], rc = AB_OK;
    for (int i = 0; i < 2; i++)
        if (has_metric(R, 0, ks[i])) use[rows++] = ks[i];
    if (!rows) return AB_OK;
    struct fb F = {0};
    for (int r = 0; r < rows && !rc; r++) {
        int k = use[r];
        double lo, hi;
        rc = robust_range(R, k, 1, R->n_v, &lo, &hi);
        for (int pi = 0; pi < R->n_p && !rc; pi++) {
            char ylab[64];
            snprintf(ylab, sizeof ylab, "best %s (mean over heads)", M[k].name);
            struct ab_gp_axes *a = fb_panel(&F, R->phase[pi], ylab);
            if (!a) break;
            set_range(a, k, lo, hi);
            for (int l = 0; l < R->n_len && l < AB_GP_N_STYLES && !rc; l++) {
                char t[64];
                snprintf(t, sizeof t, "n = %lld", (long long)R->len[l]);
                rc = add_envelope(R, &F, 1 + l, pi, k, t, l);
            }
        }
    }
    char name[200], sub[160], title[300], png[220];
    on_subset(R, sub, sizeof sub);
    fig_name(R, name, sizeof name, "%s", "frontier-length");
    snprintf(title, sizeof title, "The best of all methods at each budget, per sequence length%s",
             sub);
    if ((rc = fb_finish_budget(&F, R, rc, name, title, rows, R->n_p, 1200, png, sizeof png)))
        return rc;
    return ab_rep_add_fig(R, SEC_LENGTH, 1, png,
                          "Length%s: at each budget the best mean of all methods feasible on "
                          "every head, one line per sequence length.",
                          sub);
}

/* ================================================================== the KV cache */

/* The mean K/V bytes dense reads per head in view v, phase pi (NaN: dense not run). */
static double dense_bytes(const struct rep *R, int v, int pi)
{
    for (int mi = 0; mi < R->n_m; mi++) {
        if (strcmp(R->m[mi].family, "dense")) continue;
        for (int ti = 0; ti < R->n_t; ti++) {
            int s = R->v[v].grp[ab_rep_gidx(R, mi, pi, ti)];
            if (s >= 0 && R->v[v].sum[s].n_heads > 0 && R->v[v].sum[s].bytes_kv > 0)
                return R->v[v].sum[s].bytes_kv;
        }
    }
    return NAN;
}

/* Method mi's (K/V size, mean) points in phase pi where it meets the budget on every head: the
 * size relative to dense, or in MiB. */
static int kv_points(const struct rep *R, int mi, int pi, int k, double dense, double *x, double *y,
                     double *tgt)
{
    int n = 0;
    for (int ti = 0; ti < R->n_t && n < 72; ti++) {
        int s = R->grp[ab_rep_gidx(R, mi, pi, ti)];
        if (s < 0 || R->r->summary[s].n_heads <= 0 ||
            R->r->summary[s].n_heads != R->grp_cells[ab_rep_gidx(R, mi, pi, ti)])
            continue;
        const struct ab_summary_row *row = &R->r->summary[s];
        double val = field(row, M[k].mean.offset);
        if (!isfinite(val) || !(row->bytes_kv > 0)) continue;
        x[n] = isfinite(dense) ? row->bytes_kv / dense : row->bytes_kv / 1048576.0;
        y[n] = val, tgt[n] = R->t[ti];
        n++;
    }
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && x[b] < x[b - 1]; b--) {
            double t0 = x[b], t1 = y[b], t2 = tgt[b];
            x[b] = x[b - 1], y[b] = y[b - 1], tgt[b] = tgt[b - 1];
            x[b - 1] = t0, y[b - 1] = t1, tgt[b - 1] = t2;
        }
    return n;
}

/* The Pareto front of every method's fully feasible points in phase pi on the K/V axis: the
 * points better than every point of smaller or equal size. Their number, or AB_E_NOMEM. */
static int kv_front(const struct rep *R, int pi, int k, double dense, double *x, double *y, int cap)
{
    int n = 0;
    double *px = malloc(sizeof(double) * (size_t)(R->n_m * R->n_t + 1));
    double *py = malloc(sizeof(double) * (size_t)(R->n_m * R->n_t + 1));
    if (!px || !py) {
        free(px), free(py);
        return ab_fail(AB_E_NOMEM, "out of memory for the K/V frontier");
    }
    for (int mi = 0; mi < R->n_m; mi++)
        for (int ti = 0; ti < R->n_t; ti++) {
            int s = R->grp[ab_rep_gidx(R, mi, pi, ti)];
            if (s < 0) continue;
            const struct ab_summary_row *row = &R->r->summary[s];
            double val = field(row, M[k].mean.offset);
            if (row->n_heads != R->grp_cells[ab_rep_gidx(R, mi, pi, ti)] || !isfinite(val) ||
                !(row->bytes_kv > 0))
                continue;
            px[n] = isfinite(dense) ? row->bytes_kv / dense : row->bytes_kv / 1048576.0;
            py[n++] = val;
        }
    for (int a = 1; a < n; a++) /* by size, the better value first on ties */
        for (int b = a;
             b > 0 && (px[b] < px[b - 1] ||
                       (px[b] == px[b - 1] &&
                        (ab_rep_higher_better(k) ? py[b] > py[b - 1] : py[b] < py[b - 1])));
             b--) {
            double t0 = px[b], t1 = py[b];
            px[b] = px[b - 1], py[b] = py[b - 1], px[b - 1] = t0, py[b - 1] = t1;
        }
    int m = 0;
    for (int i = 0; i < n && m < cap; i++)
        if (!m || (ab_rep_higher_better(k) ? py[i] > y[m - 1] : py[i] < y[m - 1]))
            x[m] = px[i], y[m++] = py[i];
    free(px), free(py);
    return m;
}

/* kvcache-<family>[-<k>]: the decode methods of a column of family f: rows rel_l2 and task_acc,
 * columns against the FLOP ratio and against the K/V bytes read. */
static int kv_figure(struct rep *R, int f, const struct col *C)
{
    int ks[2] = {M_REL_L2, M_TASK_ACC}, rows = 0, use[2], rc = AB_OK;
    for (int i = 0; i < 2; i++)
        if (has_metric(R, 0, ks[i])) use[rows++] = ks[i];
    if (!rows) return AB_OK;
    double dense = dense_bytes(R, 0, C->pi);
    const char *kv_label =
        isfinite(dense) ? "K/V bytes read per head, relative to dense" : "K/V MiB read per head";
    struct fb F = {0};
    for (int r = 0; r < rows && !rc; r++) {
        int k = use[r];
        double lo, hi;
        if ((rc = robust_range(R, k, 0, 1, &lo, &hi))) break;
        char ylab[64];
        snprintf(ylab, sizeof ylab, "%s (mean over heads)", M[k].name);
        /* against FLOPs */
        struct ab_gp_axes *a = fb_panel(&F, "against the FLOP ratio", ylab);
        if (!a) break;
        set_range(a, k, lo, hi);
        if ((rc = add_envelope(R, &F, 0, C->pi, k, envelope_title, AB_GP_ENVELOPE))) break;
        for (int i = 0; i < C->n && !rc; i++)
            rc = add_method(R, &F, 0, C->mi[i], C->pi, k, R->m[C->mi[i]].slot);
        if (!rc) rc = add_dense(R, &F, 0, C->pi, k);
        if (rc) break;
        /* against the K/V bytes */
        a = fb_panel(
            &F, isfinite(dense) ? "against the K/V bytes read" : "against the K/V MiB read", ylab);
        if (!a) break;
        set_range(a, k, lo, hi);
        a->logx = 1;
        a->xlabel = kv_label;
        double x[256], y[256], t[72];
        int n = kv_front(R, C->pi, k, dense, x, y, 256);
        if (n < 0) rc = n;
        if (n > 0 && (rc = fb_curve(&F, "best of all methods at that size or less", AB_GP_ENVELOPE,
                                    n, x, y)))
            break;
        for (int i = 0; i < C->n && !rc; i++) {
            int mi = C->mi[i];
            n = kv_points(R, mi, C->pi, k, dense, x, y, t);
            for (int j = 0; j < n && !rc; j++)
                if (isfinite(lo) && (y[j] < lo || y[j] > hi))
                    rc = ab_rep_add_outlier(R, k, mi, C->pi, 0, t[j], y[j]);
            char title[112];
            snprintf(title, sizeof title, "%s%s", R->m[mi].name,
                     R->m[mi].oracle ? " (oracle)" : "");
            if (n && !rc) rc = fb_curve(&F, title, R->m[mi].slot, n, x, y);
        }
        if (!rc && ab_rep_higher_better(k) && isfinite(dense))
            for (int mi = 0; mi < R->n_m && !rc; mi++)
                if (!strcmp(R->m[mi].family, "dense")) {
                    n = kv_points(R, mi, C->pi, k, dense, x, y, t);
                    if (n) rc = fb_curve(&F, "dense (reference)", AB_GP_REFERENCE, n, x, y);
                    break;
                }
    }
    if (!rc) fb_budget_axes(&F, R);
    /* the K/V panels: their own x range, tics at 1, 1/2, 1/5, 1/10, ... */
    double xlo = INFINITY, xhi = -INFINITY;
    for (int p = 1; p < F.n_pan; p += 2)
        for (int c = F.first[p]; c < F.first[p + 1]; c++)
            for (int64_t i = 0; i < F.cu[c].n; i++) {
                double x = F.xy[F.off[c] + (size_t)i];
                if (x > 0) xlo = fmin(xlo, x), xhi = fmax(xhi, x);
            }
    if (!(xlo <= xhi)) xlo = 0.01, xhi = 1;
    for (int p = 1; p < F.n_pan && !rc; p += 2) {
        struct ab_gp_axes *a = &F.pan[p];
        a->xmin = xlo / 1.45, a->xmax = xhi * 1.3;
        int n = 0;
        for (double s = 1; isfinite(dense) && s >= xlo / 20 && n < 28; s /= 10)
            for (int j = 0; j < 3 && n < 28; j++) {
                double x = s * (j == 0 ? 1 : j == 1 ? 0.5 : 0.2);
                if (x < a->xmin || x > a->xmax) continue;
                F.tic[p][n] = x;
                tic_label(x, F.tic_lab[p][n], sizeof F.tic_lab[0][0]);
                F.tic_p[p][n] = F.tic_lab[p][n];
                n++;
            }
        a->n_xtics = n, a->xtics = F.tic[p], a->xtic_labels = F.tic_p[p];
    }
    char name[200], sub[160], title[300], png[220], part[16] = "";
    if (C->n_parts > 1) snprintf(part, sizeof part, "-%d", C->part + 1);
    on_subset(R, sub, sizeof sub);
    char stem[120];
    snprintf(stem, sizeof stem, "kvcache-%s%s", R->fam[f], part);
    fig_name(R, name, sizeof name, "%s", stem);
    if (C->n_parts > 1)
        snprintf(title, sizeof title,
                 "%s methods in %s, part %d of %d%s: accuracy against FLOPs "
                 "and K/V bytes read",
                 R->fam[f], R->phase[C->pi], C->part + 1, C->n_parts, sub);
    else
        snprintf(title, sizeof title,
                 "%s methods in %s%s: accuracy against FLOPs and K/V bytes "
                 "read",
                 R->fam[f], R->phase[C->pi], sub);
    if (!rc) rc = fb_write(&F, R, name, title, rows, 2, 0, NULL, 1200, rows == 1 ? 520 : 860);
    fb_free(&F);
    if (rc) return rc;
    snprintf(png, sizeof png, "%s.png", name);
    char partw[48] = "";
    if (C->n_parts > 1) snprintf(partw, sizeof partw, ", part %d of %d", C->part + 1, C->n_parts);
    return ab_rep_add_fig(R, SEC_KV, 1, png,
                          "The %s family in %s%s: rel_l2 and task_acc against the FLOP ratio "
                          "(left) and against the K/V bytes read per head %s (right, the "
                          "kvpress axis); grey: the best of all methods (left: at each budget; "
                          "right: at that size or less).",
                          R->fam[f], R->phase[C->pi], partw,
                          isfinite(dense) ? "relative to dense" : "in MiB");
}

/* ================================================================== all frontiers */

int ab_rep_frontiers(struct rep *R)
{
    static const int main_k[] = {M_REL_L2, M_TASK_ACC}, more_k[] = {M_RECALL, M_COS_MIN},
                     task_k[] = {M_RETRIEVE, M_AGGREGATE};
    int rc = AB_OK;
    if (!R->n_b && R->kvb.n_cells)
        return ab_rep_strv_push(&R->notes[SEC_FRONTIER],
                                "No FLOP-ratio budgets in these results (tokens and bytes "
                                "budgets only: see \"Decode budgets in tokens and bytes\"): no "
                                "frontier drawn.");
    if (!R->n_b) {
        return ab_rep_strv_push(&R->notes[SEC_FRONTIER], "No budgets in these results (a run "
                                                         "at fixed knobs): no frontier drawn.");
    }
    if ((rc = families_figure(R, main_k, 2, "frontier-families", SEC_FRONTIER))) return rc;
    for (int f = 0; f < R->n_fam && !rc; f++)
        rc =
            family_figure(R, f, main_k, 2, "frontier-%s", "rel_l2 and task accuracy", SEC_FRONTIER);
    if (R->subset) return rc; /* one workload of several: the main figures only */
    for (int f = 0; f < R->n_fam && !rc; f++)
        rc = family_figure(R, f, more_k, 2, "frontier-%s-recall", "recall and worst-row cosine",
                           SEC_FRONTIER);
    if (!rc) rc = length_figure(R);
    for (int f = 0; f < R->n_fam && !rc; f++) rc = family_by_length(R, f);
    if (!rc && R->n_len < 2)
        rc = ab_rep_strv_push(&R->notes[SEC_LENGTH],
                              "One sequence length (n = %lld): no "
                              "figure per length.",
                              R->n_len ? (long long)R->len[0] : 0LL);
    if (!rc && (has_metric(R, 0, M_RETRIEVE) || has_metric(R, 0, M_AGGREGATE))) {
        rc = families_figure(R, task_k, 2, "frontier-families-tasks", SEC_TASKS);
        for (int f = 0; f < R->n_fam && !rc; f++)
            rc = family_figure(R, f, task_k, 2, "frontier-%s-tasks",
                               "accuracy on retrieve and aggregate queries", SEC_TASKS);
    } else if (!rc) {
        rc = ab_rep_strv_push(&R->notes[SEC_TASKS], "The workloads have no retrieve or "
                                                    "aggregate tasks: no per-task frontier.");
    }
    /* the KV cache: every family with decode cells */
    int pd = -1;
    for (int pi = 0; pi < R->n_p; pi++)
        if (!strcmp(R->phase[pi], "decode")) pd = pi;
    for (int f = 0; f < R->n_fam && !rc && pd >= 0; f++) {
        struct col cols[MAX_COLS];
        int n = family_cols(R, f, cols);
        for (int c = 0; c < n && !rc; c++)
            if (cols[c].pi == pd) rc = kv_figure(R, f, &cols[c]);
    }
    if (!rc && pd < 0)
        rc = ab_rep_strv_push(&R->notes[SEC_KV], "No decode cells: no K/V cache figure.");
    return rc;
}

/* ================================================================== isoFLOPS bars */

struct bar_pick {
    int mi;
    double v;
    int full;
    int64_t feas, all;
};

static int cmp_bar(const void *a, const void *b, void *ctx)
{
    const struct bar_pick *x = a, *y = b;
    int hb = *(const int *)ctx;
    if (x->full != y->full) return x->full ? -1 : 1; /* full coverage first */
    if (x->v != y->v) return (hb ? x->v > y->v : x->v < y->v) ? -1 : 1;
    return x->mi - y->mi;
}

int ab_rep_isoflops(struct rep *R, double t)
{
    int second = M_TASK_ACC; /* task accuracy when there is any at t, else recall */
    int any_task = 0, rc = AB_OK;
    for (int pi = 0; pi < R->n_p; pi++)
        for (int mi = 0; mi < R->n_m; mi++) {
            const struct ab_summary_row *s = ab_rep_row_at(R, 0, mi, pi, t, NULL);
            if (s && isfinite(s->task_acc_mean)) any_task = 1;
        }
    if (!any_task) second = M_RECALL;
    int ks[2] = {M_REL_L2, second};
    int n_pan = 0;
    struct ab_gp_hbar_panel panels[16];
    struct ab_gp_hbar *bars = calloc((size_t)(2 * R->n_p * (TOP_BARS + 2) + 1), sizeof *bars);
    char(*text)[48] = calloc((size_t)(2 * R->n_p * (TOP_BARS + 2) + 1), sizeof *text);
    char(*label)[64] = calloc((size_t)(2 * R->n_p * (TOP_BARS + 2) + 1), sizeof *label);
    char(*ptitle)[96] = calloc(16, sizeof *ptitle);
    struct bar_pick *pick = calloc((size_t)R->n_m + 1, sizeof *pick);
    char(*footer)[300] = calloc((size_t)R->n_p + 2, sizeof *footer);
    const char **footp = calloc((size_t)R->n_p + 2, sizeof(char *));
    if (!bars || !text || !label || !ptitle || !pick || !footer || !footp) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    char rl[32], cl[16];
    ab_ratio_label(t, rl, sizeof rl);
    ab_rep_compression_label(t, cl, sizeof cl);
    int nb = 0, n_foot = 0, max_bars = 1;
    for (int pi = 0; pi < R->n_p && n_pan < 16; pi++) {
        int n_run = 0, n_feas = 0, n_inf = 0;
        for (int mi = 0; mi < R->n_m; mi++) {
            if (!ab_rep_runs_in(R, mi, pi) || R->m[mi].fam < 0) continue;
            int ti, s = ab_rep_group_at(R, mi, pi, t, &ti);
            if (ti < 0 && !R->m[mi].has_knob) continue; /* fixed cost above the budget */
            n_run++;
            if (s >= 0 && R->r->summary[s].n_heads > 0)
                n_feas++;
            else
                n_inf++;
        }
        if (!n_run) continue;
        for (int kk = 0; kk < 2; kk++) {
            int k = ks[kk], hb = ab_rep_higher_better(k), n = 0;
            double lo = NAN, hi = NAN;
            if (k == M_REL_L2 && (rc = robust_range(R, k, 0, 1, &lo, &hi))) goto done;
            for (int mi = 0; mi < R->n_m; mi++) {
                if (R->m[mi].fam < 0) continue;
                int full;
                const struct ab_summary_row *s = ab_rep_row_at(R, 0, mi, pi, t, &full);
                if (!s || !isfinite(field(s, M[k].mean.offset))) continue;
                int ti;
                ab_rep_group_at(R, mi, pi, t, &ti);
                pick[n++] = (struct bar_pick){.mi = mi,
                                              .v = field(s, M[k].mean.offset),
                                              .full = full,
                                              .feas = s->n_heads,
                                              .all = R->grp_cells[ab_rep_gidx(R, mi, pi, ti)]};
            }
            qsort_r(pick, (size_t)n, sizeof *pick, cmp_bar, &hb);
            struct ab_gp_hbar_panel *P = &panels[n_pan];
            snprintf(ptitle[n_pan], sizeof ptitle[0], "%s: %s%s", R->phase[pi], M[k].name,
                     hb ? " (higher is better)" : " (lower is better)");
            *P = (struct ab_gp_hbar_panel){.title = ptitle[n_pan],
                                           .bars = &bars[nb],
                                           .logx = ab_rep_logy(k),
                                           .xmin = lo,
                                           .xmax = hi};
            if (k != M_REL_L2) P->xmin = 0, P->xmax = 1;
            P->xlabel = k == M_REL_L2 ? "mean rel_l2 over heads (log)" : "mean over heads";
            /* dense first, as the reference */
            for (int mi = 0; mi < R->n_m; mi++) {
                if (strcmp(R->m[mi].family, "dense")) continue;
                const struct ab_summary_row *s = NULL;
                for (int ti = 0; ti < R->n_t && !s; ti++) {
                    int g = R->grp[ab_rep_gidx(R, mi, pi, ti)];
                    if (g >= 0 && R->r->summary[g].n_heads > 0) s = &R->r->summary[g];
                }
                if (!s || !isfinite(field(s, M[k].mean.offset))) break;
                double v = field(s, M[k].mean.offset);
                if (ab_rep_logy(k) && !(v > 0)) break;
                snprintf(label[nb], sizeof label[0], "dense (ratio %.2g)", s->flop_ratio);
                /* dense's error is rounding: draw its value as text only on the log axis */
                int off_axis = ab_rep_logy(k) && isfinite(lo) && v < lo;
                snprintf(text[nb], sizeof text[0], "%.3g%s", v, off_axis ? " (reference)" : "");
                bars[nb] = (struct ab_gp_hbar){.label = label[nb],
                                               .colour = AB_GP_COLOUR_BLACK,
                                               .value = off_axis ? NAN : v,
                                               .text = text[nb]};
                nb++, P->n_bars++;
                break;
            }
            for (int i = 0; i < n && i < TOP_BARS; i++) {
                const struct bar_pick *b = &pick[i];
                if (b->full)
                    snprintf(label[nb], sizeof label[0], "%s", R->m[b->mi].name);
                else
                    snprintf(label[nb], sizeof label[0], "%s (%lld/%lld heads)", R->m[b->mi].name,
                             (long long)b->feas, (long long)b->all);
                int out = isfinite(hi) && b->v > hi, under = isfinite(lo) && b->v < lo;
                if (out || under) {
                    snprintf(text[nb], sizeof text[0], "%s%.3g", out ? ">" : "<", b->v);
                    if ((rc = ab_rep_add_outlier(R, k, b->mi, pi, 0, t, b->v))) goto done;
                } else {
                    snprintf(text[nb], sizeof text[0], "%.3g", b->v);
                }
                bars[nb] = (struct ab_gp_hbar){.label = label[nb],
                                               .colour = R->m[b->mi].fam,
                                               .value = under ? lo : b->v,
                                               .text = text[nb]};
                nb++, P->n_bars++;
            }
            max_bars = AB_MAX(max_bars, P->n_bars);
            n_pan++;
        }
        snprintf(footer[n_foot], sizeof footer[0],
                 "%s: %d methods run at this budget, %d feasible on some head (best %d shown, "
                 "those feasible on every head first), %d infeasible on every head.",
                 R->phase[pi], n_run, n_feas, AB_MIN(n_feas, TOP_BARS), n_inf);
        footp[n_foot] = footer[n_foot];
        n_foot++;
    }
    if (!n_pan) goto done;
    int keys[AB_REP_MAX_FAMILIES + 1], n_keys = 0;
    const char *key_t[AB_REP_MAX_FAMILIES + 1];
    keys[n_keys] = AB_GP_COLOUR_BLACK, key_t[n_keys++] = "dense";
    for (int f = 0; f < R->n_fam; f++) keys[n_keys] = f, key_t[n_keys++] = R->fam[f];
    char name[160], title[200], rf[32];
    snprintf(rf, sizeof rf, "%g", t);
    snprintf(name, sizeof name, "isoflops-%s", rf);
    snprintf(title, sizeof title, "Methods at FLOP ratio %s (%s compression): means over heads", rl,
             cl);
    int rows = (n_pan + 1) / 2;
    struct ab_gp_hbars pl = {.name = name,
                             .title = title,
                             .n_footer = n_foot,
                             .footer = footp,
                             .rows = rows,
                             .cols = 2,
                             .n_panels = n_pan,
                             .panels = panels,
                             .n_keys = n_keys,
                             .key_colours = keys,
                             .key_titles = key_t,
                             .width = 1200,
                             .height = 60 + 16 * n_foot + rows * (110 + 24 * max_bars)};
    if ((rc = ab_gp_hbars_write(R->o->dir, &pl)) != AB_OK) goto done;
    ab_rep_announce_pair(R, name);
    char png[180];
    snprintf(png, sizeof png, "%s.png", name);
    rc = ab_rep_add_fig(R, SEC_ISO, 1, png,
                        "At FLOP ratio %s (%s): per phase, the best %d methods by mean rel_l2 "
                        "(log, left) and by mean %s (right), sorted, coloured by family, dense on "
                        "top as the reference; values beyond the axis are written with > or <.",
                        rl, cl, TOP_BARS, M[second].name);
done:
    free(bars), free(text), free(label), free(ptitle), free(pick), free(footer), free(footp);
    return rc;
}

/* ================================================================== tokens and bytes budgets */

/* "T=128" for a tokens budget, "B=1/8" for a bytes budget. */
static void kv_budget_label(const struct ab_summary_row *s, char *buf, size_t cap)
{
    char r[24];
    ab_ratio_label(s->target_ratio, r, sizeof r);
    if (s->budget_kind && !strcmp(s->budget_kind, "tokens"))
        snprintf(buf, cap, "T=%.0f", s->target_tokens);
    else
        snprintf(buf, cap, "B=%s", r);
}

/* 1 for a decode summary row of a bytes budget. */
static int bytes_row(const struct ab_summary_row *s)
{
    return s->budget_kind && !strcmp(s->budget_kind, "bytes") && s->phase &&
           !strcmp(s->phase, "decode");
}

/* The family of a method among K's cells ("" when none). */
static const char *kv_family(const struct ab_results *K, const char *method)
{
    for (int64_t c = 0; c < K->n_cells; c++)
        if (K->cells[c].method && !strcmp(K->cells[c].method, method))
            return K->cells[c].family ? K->cells[c].family : "";
    return "";
}

int ab_rep_kv_budgets(struct rep *R)
{
    const struct ab_results *K = &R->kvb;
    /* the families of the decode rows at bytes budgets, in the order of the results: a panel
     * each (up to 9), so eviction, quantization and the other families do not pile up */
    const char *fams[9];
    int n_fam = 0;
    for (int64_t s = 0; s < K->n_summary; s++) {
        if (!bytes_row(&K->summary[s])) continue;
        const char *fa = kv_family(K, K->summary[s].method);
        int seen = 0;
        for (int k = 0; k < n_fam; k++) seen |= !strcmp(fams[k], fa);
        if (!seen && n_fam < 9) fams[n_fam++] = fa;
    }
    if (!n_fam) return AB_OK;
    /* x tics at the bytes budgets asked for, shared by every panel */
    double tics[32];
    int nt = 0;
    double xlo = INFINITY, xhi = -INFINITY;
    for (int64_t s = 0; s < K->n_summary && nt < 32; s++) {
        const struct ab_summary_row *g = &K->summary[s];
        if (!bytes_row(g)) continue;
        int seen = 0;
        for (int k = 0; k < nt; k++) seen |= tics[k] == g->target_ratio;
        if (!seen) tics[nt++] = g->target_ratio;
        xlo = AB_MIN(xlo, g->target_ratio), xhi = AB_MAX(xhi, g->target_ratio);
        if (g->n_heads > 0 && g->bytes_ratio > 0)
            xlo = AB_MIN(xlo, g->bytes_ratio), xhi = AB_MAX(xhi, g->bytes_ratio);
    }
    struct fb F = {0};
    int rc = AB_OK, n_curves = 0, style = 0; /* a style per method: one key for all panels */
    for (int fi = 0; fi < n_fam && !rc; fi++) {
        char title[96];
        snprintf(title, sizeof title, "%s, decode", fams[fi][0] ? fams[fi] : "(no family)");
        struct ab_gp_axes *a = fb_panel(&F, title, "rel_l2 (mean over heads)");
        if (!a) return ab_fail(AB_E_INTERNAL, "no panel for the bytes budgets");
        int p = F.n_pan - 1;
        a->logx = 1, a->logy = 1;
        a->xlabel = "bytes_ratio: K/V bytes read / dense's";
        for (int k = 0; k < nt; k++) {
            F.tic[p][k] = tics[k];
            ab_ratio_label(tics[k], F.tic_lab[p][k], sizeof F.tic_lab[0][0]);
            F.tic_p[p][k] = F.tic_lab[p][k];
        }
        a->n_xtics = nt, a->xtics = F.tic[p], a->xtic_labels = F.tic_p[p];
        if (isfinite(xlo)) a->xmin = xlo / 1.3, a->xmax = xhi * 1.3;
        /* one line per method of the family, in the order of the results (the registry's) */
        for (int64_t s = 0; s < K->n_summary && !rc; s++) {
            const struct ab_summary_row *row = &K->summary[s];
            if (!bytes_row(row) || strcmp(kv_family(K, row->method), fams[fi])) continue;
            int first = 1;
            for (int64_t j = 0; j < s && first; j++)
                first = !(bytes_row(&K->summary[j]) && !strcmp(K->summary[j].method, row->method));
            if (!first) continue;
            double x[72], y[72];
            int n = 0;
            for (int64_t j = s; j < K->n_summary && n < 72; j++) {
                const struct ab_summary_row *g = &K->summary[j];
                if (!bytes_row(g) || strcmp(g->method, row->method)) continue;
                if (g->n_heads < g->n_cells || !isfinite(g->rel_l2_mean) ||
                    !(g->rel_l2_mean > 0) || !(g->bytes_ratio > 0)) {
                    if (g->n_heads > 0) { /* met on some heads: named in the footer */
                        char lab[32];
                        kv_budget_label(g, lab, sizeof lab);
                        size_t lp = strlen(F.part);
                        snprintf(F.part + lp, sizeof F.part - lp, "%s%s at %s (%lld/%lld heads)",
                                 lp ? ", " : "", g->method, lab, (long long)g->n_heads,
                                 (long long)g->n_cells);
                    }
                    continue;
                }
                x[n] = g->bytes_ratio, y[n++] = g->rel_l2_mean;
            }
            for (int i = 1; i < n; i++) /* by size */
                for (int k = i; k > 0 && x[k] < x[k - 1]; k--) {
                    double t0 = x[k], t1 = y[k];
                    x[k] = x[k - 1], y[k] = y[k - 1], x[k - 1] = t0, y[k - 1] = t1;
                }
            if (n) {
                rc = fb_curve(&F, row->method, style++, n, x, y);
                n_curves++;
            } else { /* no bytes budget met on every head */
                size_t ln = strlen(F.never);
                snprintf(F.never + ln, sizeof F.never - ln, "%s%s", ln ? ", " : "", row->method);
            }
        }
        if (F.first[p] == F.n_cu) F.n_pan--; /* nothing of the family drawn: no panel */
    }
    if (!F.n_pan) { /* not one method meets a bytes budget on every head: the table says why */
        fb_free(&F);
        return AB_OK;
    }
    n_fam = F.n_pan;
    const char *foot[2] = {"Each point: one bytes budget met on every head, the means over "
                           "heads of the achieved bytes_ratio and of rel_l2; tics at the budgets.",
                           "A line stops where its method meets no budget on every head "
                           "(report.md's table says why)."};
    int cols = n_fam < 3 ? n_fam : 3, rows = (n_fam + cols - 1) / cols;
    int height = AB_MAX(rows == 1 ? 580 : 430 * rows, 180 + 19 * n_curves) + 48; /* key, footer */
    if (!rc) rc = fb_write(&F, R, "budgets-bytes",
                           "Decode accuracy against the K/V bytes read, at equal bytes budgets",
                           rows, cols, 2, foot, cols == 1 ? 1000 : AB_MIN(1480, 440 * cols + 200),
                           height); /* fb_write wraps footers in 200-char lines */
    fb_free(&F);
    if (rc) return rc;
    return ab_rep_add_fig(R, SEC_BUDGETS, 1, "budgets-bytes.png",
                          "Bytes budgets: decode rel_l2 (mean over heads) against the achieved "
                          "ratio of K/V bytes read to dense's, one line per method over the "
                          "bytes budgets it meets on every head, a panel per family: eviction "
                          "and quantization (family kv) at equal bytes_kv.");
}

void ab_rep_kv_budgets_md(const struct rep *R, FILE *f)
{
    const struct ab_results *K = &R->kvb;
    fputs("Cells fitted to tokens read per decode step (budget_kind tokens: tokens_step = kept "
          "cells / m at most the budget T) or to a ratio of K/V bytes read to dense's "
          "(budget_kind bytes: bytes_ratio at most the budget B), by the same solver as the "
          "FLOP budgets; means over the heads that meet the budget, pooled over workloads.\n\n",
          f);
    fputs("| method | phase | budget kind | budget | heads meeting it | bytes_ratio | tokens_step "
          "| flop_ratio | rel_l2 mean | rel_l2 p90 | why not |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|\n",
          f);
    for (int64_t s = 0; s < K->n_summary; s++) {
        const struct ab_summary_row *g = &K->summary[s];
        char lab[32];
        kv_budget_label(g, lab, sizeof lab);
        char v[5][24];
        const double x[5] = {g->bytes_ratio, g->tokens_step, g->flop_ratio, g->rel_l2_mean,
                             g->rel_l2_p90};
        for (int k = 0; k < 5; k++) {
            if (isnan(x[k])) snprintf(v[k], sizeof v[k], "-");
            else snprintf(v[k], sizeof v[k], k == 1 ? "%.4g" : "%.3g", x[k]);
        }
        fprintf(f, "| %s | %s | %s | %s | %lld/%lld | %s | %s | %s | %s | %s | %s |\n", g->method,
                g->phase, g->budget_kind, lab, (long long)g->n_heads, (long long)g->n_cells, v[0],
                v[1], v[2], v[3], v[4], g->reason && g->reason[0] ? g->reason : "");
    }
    fputs("\n", f);
}
