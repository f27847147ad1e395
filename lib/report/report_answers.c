/* report_answers.c - the opening of report.md (report.h): the answers to the questions of The
 * Sparse Frontier (arXiv 2504.17768) as the data give them, each sentence with its numbers,
 * or a plain statement that the data cannot answer; then the decode accounting rule and the
 * infeasible methods with their reasons.
 *
 *   1. Which family holds accuracy at 10x and 20x (budgets 0.1 and 0.05; else the two highest
 *      compressions of the grid)? A method holds accuracy when, over every head of the pooled
 *      view, its mean rel_l2 is at most TOL_REL_L2 and its mean task accuracy at least
 *      TOL_ACC times dense's (when the workloads have tasks).
 *   2. Does decode tolerate more compression than prefill? Per phase, the largest compression
 *      1/budget at which some method keeps mean rel_l2 <= TOL_REL_L2, and the same for task
 *      accuracy >= TOL_ACC x dense.
 *   3. How does length change it? The same reach per length, and the best mean rel_l2 and task
 *      accuracy at the highest compression of the grid per length ("about the same" within 10%
 *      of rel_l2 or 0.05 of accuracy).
 *   4. How does retrieval differ from aggregation? At the two highest compressions, the best
 *      method's accuracy on retrieve and on aggregate queries, and their means over every
 *      method feasible on every head.
 * Only methods feasible on every head of the view count (a mean over the heads a method
 * happens to reach is not comparable), dense and oracles (which read the exact map) aside;
 * an oracle that would change an answer is named beside it. Every number is read from the
 * views of report.c; nothing here is written for a particular study. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/ab.h"
#include "report/report_internal.h"

#define TOL_REL_L2 0.1 /* mean rel_l2 at most this: the output keeps its fidelity */
#define TOL_ACC    0.9 /* mean task accuracy at least this times dense's */

static const struct ab_metric *const M = ab_metrics;

/* Dense's mean of metric k in view v, phase pi (NaN: dense not run or no value). */
static double dense_mean(const struct rep *R, int v, int pi, int k)
{
    for (int mi = 0; mi < R->n_m; mi++) {
        if (strcmp(R->m[mi].family, "dense")) continue;
        for (int ti = 0; ti < R->n_t; ti++) {
            int s = R->v[v].grp[ab_rep_gidx(R, mi, pi, ti)];
            if (s >= 0 && R->v[v].sum[s].n_heads > 0)
                return ab_rep_field(&R->v[v].sum[s], M[k].mean.offset);
        }
    }
    return NAN;
}

/* The task-accuracy bar of view v, phase pi: TOL_ACC x dense (x 1 without dense). NaN when
 * the workloads have no tasks. */
static double acc_bar(const struct rep *R, int v, int pi)
{
    double d = dense_mean(R, v, pi, M_TASK_ACC);
    int any = 0;
    for (int mi = 0; mi < R->n_m && !any; mi++)
        for (int ti = 0; ti < R->n_t && !any; ti++) {
            int s = R->v[v].grp[ab_rep_gidx(R, mi, pi, ti)];
            any = s >= 0 && isfinite(R->v[v].sum[s].task_acc_mean);
        }
    if (!any) return NAN;
    return TOL_ACC * (isfinite(d) ? d : 1);
}

/* Whether a row holds accuracy: rel_l2 within TOL_REL_L2, task accuracy at the bar (when
 * there is one). */
static int holds(const struct ab_summary_row *s, double bar)
{
    return s->rel_l2_mean <= TOL_REL_L2 && (isnan(bar) || s->task_acc_mean >= bar);
}

/* The method of family fam (-1: every family but dense) in view v, phase pi at budget t
 * feasible on every head that holds accuracy with the lowest rel_l2 (oracles when `oracles`),
 * or -1. */
static int holding(const struct rep *R, int v, int pi, double t, int fam, int oracles, double bar,
                   const struct ab_summary_row **row)
{
    int best = -1;
    *row = NULL;
    for (int mi = 0; mi < R->n_m; mi++) {
        if (R->m[mi].fam < 0 || (fam >= 0 && R->m[mi].fam != fam)) continue;
        if (R->m[mi].oracle != oracles) continue;
        int full;
        const struct ab_summary_row *s = ab_rep_row_at(R, v, mi, pi, t, &full);
        if (!s || !full || !holds(s, bar)) continue;
        if (!*row || s->rel_l2_mean < (*row)->rel_l2_mean) best = mi, *row = s;
    }
    return best;
}

/* The best non-dense, non-oracle method by metric k (as ab_rep_best_in over families). */
static int best_method(const struct rep *R, int v, int pi, double t, int k, int fam,
                       const struct ab_summary_row **row)
{
    int best = -1;
    *row = NULL;
    for (int f = 0; f < R->n_fam; f++) {
        if (fam >= 0 && f != fam) continue;
        const struct ab_summary_row *s;
        int mi = ab_rep_best_in(R, v, pi, t, k, f, 0, &s);
        if (mi < 0) continue;
        double x = ab_rep_field(s, M[k].mean.offset);
        double bx = *row ? ab_rep_field(*row, M[k].mean.offset) : NAN;
        if (!*row || (ab_rep_higher_better(k) ? x > bx : x < bx)) best = mi, *row = s;
    }
    return best;
}

/* The budgets the questions call high compression: 0.1 and 0.05 when the grid has them, else
 * its two smallest. Returns the count (0..2); *exact 1 when they are 0.1 and 0.05. */
static int high_budgets(const struct rep *R, double *b, int *exact)
{
    int n = 0;
    for (int i = 0; i < R->n_b; i++)
        if (fabs(R->b[i] - 0.1) < 1e-9 || fabs(R->b[i] - 0.05) < 1e-9) b[n++] = R->b[i];
    *exact = n == 2;
    if (n == 2) return 2;
    n = 0;
    for (int i = R->n_b - 1; i >= 0 && n < 2; i--) /* R->b descends: the smallest last */
        if (R->b[i] < 1) b[n++] = R->b[i];
    if (n == 2 && b[0] < b[1]) {
        double t = b[0];
        b[0] = b[1], b[1] = t;
    }
    return n;
}

static int phase_index(const struct rep *R, const char *name)
{
    for (int pi = 0; pi < R->n_p; pi++)
        if (!strcmp(R->phase[pi], name)) return pi;
    return -1;
}

static void comp(double t, char *buf, size_t cap)
{
    ab_rep_compression_label(t, buf, cap);
}

/* ------------------------------------------------------------------ 1. families */

static void answer_families(const struct rep *R, FILE *f)
{
    double hb[2];
    int exact, n_hb = high_budgets(R, hb, &exact);
    fputs("### Which family holds accuracy at 10x and 20x?\n\n", f);
    if (!n_hb || !R->n_fam) {
        fputs("The data cannot answer: no budget below 1 was run.\n\n", f);
        return;
    }
    if (!exact) {
        char c0[16], c1[16] = "";
        comp(hb[0], c0, sizeof c0);
        if (n_hb > 1) comp(hb[1], c1, sizeof c1);
        fprintf(f,
                "The grid has no 10x and 20x budgets (0.1, 0.05); the highest compressions "
                "it has stand in: %s%s%s.\n\n",
                c0, n_hb > 1 ? " and " : "", c1);
    }
    fprintf(f,
            "A method holds accuracy when its mean rel_l2 over heads is at most %g and its "
            "mean task accuracy at least %g%% of dense's, over every head of every workload "
            "(methods feasible on every head only; dense and oracles aside).\n\n",
            TOL_REL_L2, 100 * TOL_ACC);
    for (int i = 0; i < n_hb; i++)
        for (int pi = 0; pi < R->n_p; pi++) {
            double t = hb[i], bar = acc_bar(R, 0, pi), dacc = dense_mean(R, 0, pi, M_TASK_ACC);
            char c[16], rl[16];
            comp(t, c, sizeof c);
            ab_ratio_label(t, rl, sizeof rl);
            fprintf(f, "- **%s (budget %s), %s:** ", c, rl, R->phase[pi]);
            char hold[600] = "", nohold[1600] = "";
            size_t lh = 0, ln = 0;
            int n_hold = 0;
            for (int fam = 0; fam < R->n_fam; fam++) {
                const struct ab_summary_row *s, *sr, *sa;
                int mi = holding(R, 0, pi, t, fam, 0, bar, &s);
                int br = best_method(R, 0, pi, t, M_REL_L2, fam, &sr);
                int ba = isnan(bar) ? -1 : best_method(R, 0, pi, t, M_TASK_ACC, fam, &sa);
                int ran = 0;
                for (int m2 = 0; m2 < R->n_m; m2++)
                    ran |= R->m[m2].fam == fam && ab_rep_runs_in(R, m2, pi);
                if (!ran) continue;
                if (mi >= 0) {
                    n_hold++;
                    lh += (size_t)snprintf(hold + lh, sizeof hold - AB_MIN(lh, sizeof hold),
                                           "%s%s (%s: rel_l2 %.3g", lh ? "; " : "", R->fam[fam],
                                           R->m[mi].name, s->rel_l2_mean);
                    if (!isnan(bar))
                        lh += (size_t)snprintf(hold + lh, sizeof hold - AB_MIN(lh, sizeof hold),
                                               ", task_acc %.2f", s->task_acc_mean);
                    lh += (size_t)snprintf(hold + lh, sizeof hold - AB_MIN(lh, sizeof hold), ")");
                } else if (br < 0) {
                    ln += (size_t)snprintf(nohold + ln, sizeof nohold - AB_MIN(ln, sizeof nohold),
                                           "%s%s (no method meets this budget on every head)",
                                           ln ? "; " : "", R->fam[fam]);
                } else {
                    ln += (size_t)snprintf(nohold + ln, sizeof nohold - AB_MIN(ln, sizeof nohold),
                                           "%s%s (best rel_l2 %.3g, %s", ln ? "; " : "",
                                           R->fam[fam], sr->rel_l2_mean, R->m[br].name);
                    if (ba >= 0)
                        ln += (size_t)snprintf(
                            nohold + ln, sizeof nohold - AB_MIN(ln, sizeof nohold),
                            "; best task_acc %.2f, %s", sa->task_acc_mean, R->m[ba].name);
                    ln += (size_t)snprintf(nohold + ln, sizeof nohold - AB_MIN(ln, sizeof nohold),
                                           ")");
                }
            }
            if (n_hold)
                fprintf(f, "%s hold%s accuracy: %s.", n_hold == 1 ? "one family" : "these families",
                        n_hold == 1 ? "s" : "", hold);
            else
                fputs("no family holds accuracy.", f);
            if (ln)
                fprintf(f, " %s: %s.", n_hold ? "Not within tolerance" : "Closest of each", nohold);
            const struct ab_summary_row *so;
            int om = holding(R, 0, pi, t, -1, 1, bar, &so);
            if (om >= 0)
                fprintf(f, " The oracle %s would (rel_l2 %.3g): an upper bound, not a method.",
                        R->m[om].name, so->rel_l2_mean);
            if (!isnan(bar) && isfinite(dacc)) fprintf(f, " Dense task_acc %.2f.", dacc);
            fputc('\n', f);
        }
    fputc('\n', f);
}

/* ------------------------------------------------------------------ 2, 3. reach */

/* The smallest budget (largest compression) of view v in phase pi at which some method
 * (feasible on every head, dense and oracles aside) keeps rel_l2 <= TOL_REL_L2 (acc == 0) or
 * task accuracy at the bar (acc == 1). Returns the budget or NaN; *mi and *val the method. */
static double reach(const struct rep *R, int v, int pi, int acc, int *mi, double *val)
{
    double bar = acc_bar(R, v, pi), found = NAN;
    *mi = -1, *val = NAN;
    if (acc && isnan(bar)) return NAN;
    for (int bi = 0; bi < R->n_b; bi++) {
        double t = R->b[bi];
        if (t >= 1) continue;
        const struct ab_summary_row *s;
        int m = best_method(R, v, pi, t, acc ? M_TASK_ACC : M_REL_L2, -1, &s);
        if (m < 0) continue;
        int ok = acc ? s->task_acc_mean >= bar : s->rel_l2_mean <= TOL_REL_L2;
        if (ok && (isnan(found) || t < found)) {
            found = t, *mi = m;
            *val = acc ? s->task_acc_mean : s->rel_l2_mean;
        }
    }
    return found;
}

/* "up to 10x (quest, 0.074)" (an accuracy with two decimals) or "at no budget below 1". */
static void reach_words(const struct rep *R, double t, int mi, double val, int acc, char *buf,
                        size_t cap)
{
    if (isnan(t)) {
        snprintf(buf, cap, "at no budget below 1");
        return;
    }
    char c[16];
    comp(t, c, sizeof c);
    snprintf(buf, cap, acc ? "up to %s (%s, %.2f)" : "up to %s (%s, %.3g)", c, R->m[mi].name, val);
}

/* Compares compressions a and b (NaN: none): 1 when a > b (a = budget smaller), 0 equal. */
static int cmp_reach(double a, double b)
{
    if (isnan(a) && isnan(b)) return 0;
    if (isnan(a)) return -1;
    if (isnan(b)) return 1;
    return a < b ? 1 : a > b ? -1 : 0;
}

static void answer_phases(const struct rep *R, FILE *f)
{
    fputs("### Does decode tolerate more compression than prefill?\n\n", f);
    int pp = phase_index(R, "prefill"), pd = phase_index(R, "decode");
    if (pp < 0 || pd < 0) {
        fprintf(f, "The data cannot answer: only %s was run.\n\n",
                pp >= 0   ? "prefill"
                : pd >= 0 ? "decode"
                          : "other phases");
        return;
    }
    int mp, md, ap, ad;
    double vp, vd, wp, wd;
    double rp = reach(R, 0, pp, 0, &mp, &vp), rd = reach(R, 0, pd, 0, &md, &vd);
    double qp = reach(R, 0, pp, 1, &ap, &wp), qd = reach(R, 0, pd, 1, &ad, &wd);
    int c1 = cmp_reach(rd, rp), has_acc = !isnan(acc_bar(R, 0, pp));
    int c2 = has_acc ? cmp_reach(qd, qp) : 0;
    const char *verdict;
    if (c1 > 0 && c2 >= 0)
        verdict = "Yes: decode tolerates more compression than prefill";
    else if (c1 < 0 && c2 <= 0)
        verdict = "No: decode tolerates less compression than prefill";
    else if (c1 == 0 && c2 > 0)
        verdict = "Yes, on task accuracy: decode keeps it to a higher "
                  "compression, with the same rel_l2 reach";
    else if (c1 == 0 && c2 < 0)
        verdict = "No, on task accuracy: prefill keeps it to a higher "
                  "compression, with the same rel_l2 reach";
    else if (c1 == 0)
        verdict = "Neither: both phases reach the same compression";
    else
        verdict = "The two measures disagree";
    char a[120], b[120];
    reach_words(R, rd, md, vd, 0, a, sizeof a);
    reach_words(R, rp, mp, vp, 0, b, sizeof b);
    fprintf(f, "%s. Mean rel_l2 <= %g holds %s in decode and %s in prefill", verdict, TOL_REL_L2, a,
            b);
    if (has_acc) {
        reach_words(R, qd, ad, wd, 1, a, sizeof a);
        reach_words(R, qp, ap, wp, 1, b, sizeof b);
        fprintf(f, "; task accuracy >= %g%% of dense holds %s in decode and %s in prefill",
                100 * TOL_ACC, a, b);
    }
    fputs(" (the largest compression at which some method feasible on every head meets the "
          "bar).\n\n",
          f);
}

/* The trend of the compressions c[0..n) reached at increasing lengths (0: none). */
static const char *reach_trend(const double *c, int n)
{
    int up = 1, down = 1, same = 1;
    for (int k = 1; k < n; k++) {
        up &= c[k] >= c[k - 1], down &= c[k] <= c[k - 1], same &= c[k] == c[k - 1];
    }
    return same   ? "the same at every length"
           : up   ? "more compression with length"
           : down ? "less compression with length"
                  : "no monotone trend with length";
}

/* The trend of the best values v[0..n) at increasing lengths: "about the same" when they stay
 * within tol (relative when `relative`), else better or worse with length when monotone. */
static void value_trend(const double *v, int n, int higher_better, double tol, int relative,
                        char *buf, size_t cap)
{
    double lo = INFINITY, hi = -INFINITY;
    int up = 1, down = 1;
    for (int k = 0; k < n; k++) {
        if (isnan(v[k])) {
            snprintf(buf, cap, "not every length has a method feasible on every head there");
            return;
        }
        lo = fmin(lo, v[k]), hi = fmax(hi, v[k]);
        if (k) up &= v[k] >= v[k - 1], down &= v[k] <= v[k - 1];
    }
    if (hi - lo <= (relative ? tol * lo : tol)) {
        if (relative)
            snprintf(buf, cap, "about the same (within %g%%)", 100 * tol);
        else
            snprintf(buf, cap, "about the same (within %g)", tol);
    } else if (up || down) {
        snprintf(buf, cap, "%s with length", (up == higher_better) ? "better" : "worse");
    } else {
        snprintf(buf, cap, "no monotone trend with length");
    }
}

static void answer_length(const struct rep *R, FILE *f)
{
    fputs("### How does sequence length change it?\n\n", f);
    if (R->n_len < 2) {
        fprintf(f, "The data cannot answer: one length only (n = %lld).\n\n",
                R->n_len ? (long long)R->len[0] : 0LL);
        return;
    }
    double hb[2];
    int exact, n_hb = high_budgets(R, hb, &exact);
    double t_hi = n_hb ? hb[n_hb - 1] : NAN;
    char chi[16] = "", trend[120];
    if (n_hb) comp(t_hi, chi, sizeof chi);
    for (int pi = 0; pi < R->n_p; pi++) {
        fprintf(f, "- **%s:** ", R->phase[pi]);
        int has_acc = !isnan(acc_bar(R, 0, pi));
        for (int acc = 0; acc <= has_acc; acc++) {
            double c[16];
            if (acc)
                fprintf(f, " Task accuracy >= %g%% of dense holds", 100 * TOL_ACC);
            else
                fprintf(f, "mean rel_l2 <= %g holds", TOL_REL_L2);
            for (int k = 0; k < R->n_len; k++) {
                int mi;
                double val, r = reach(R, 1 + k, pi, acc, &mi, &val);
                char w[120];
                reach_words(R, r, mi, val, acc, w, sizeof w);
                fprintf(f, "%s %s at n = %lld", k ? "," : "", w, (long long)R->len[k]);
                c[k] = isnan(r) ? 0 : 1 / r;
            }
            fprintf(f, ": %s.", reach_trend(c, R->n_len));
        }
        if (n_hb) {
            for (int acc = 0; acc <= has_acc; acc++) {
                int k_m = acc ? M_TASK_ACC : M_REL_L2;
                double best[16];
                if (acc)
                    fputs("; the best task accuracy", f);
                else
                    fprintf(f, " At %s the best mean rel_l2 is", chi);
                for (int k = 0; k < R->n_len; k++) {
                    const struct ab_summary_row *s;
                    int mi = best_method(R, 1 + k, pi, t_hi, k_m, -1, &s);
                    best[k] = mi >= 0 ? ab_rep_field(s, M[k_m].mean.offset) : NAN;
                    if (mi >= 0)
                        fprintf(f, acc ? "%s %.2f (%s, n = %lld)" : "%s %.3g (%s, n = %lld)",
                                k ? "," : "", best[k], R->m[mi].name, (long long)R->len[k]);
                    else
                        fprintf(f, "%s none (n = %lld)", k ? "," : "", (long long)R->len[k]);
                }
                value_trend(best, R->n_len, acc, acc ? 0.05 : 0.1, !acc, trend, sizeof trend);
                fprintf(f, ": %s", trend);
            }
            fputc('.', f);
        }
        fputc('\n', f);
    }
    fputc('\n', f);
}

/* ------------------------------------------------------------------ 4. tasks */

static void answer_tasks(const struct rep *R, FILE *f)
{
    fputs("### How does retrieval differ from aggregation?\n\n", f);
    int has_r = 0, has_a = 0;
    for (int s = 0; s < R->vres[0].n_summary; s++) {
        has_r |= isfinite(R->vres[0].summary[s].task_acc_retrieve_mean);
        has_a |= isfinite(R->vres[0].summary[s].task_acc_aggregate_mean);
    }
    if (!has_r || !has_a) {
        fprintf(f, "The data cannot answer: the workloads have no %s tasks.\n\n",
                !has_r && !has_a ? "retrieve or aggregate"
                : !has_r         ? "retrieve"
                                 : "aggregate");
        return;
    }
    double hb[2];
    int exact, n_hb = high_budgets(R, hb, &exact);
    if (!n_hb) {
        fputs("The data cannot answer: no budget below 1 was run.\n\n", f);
        return;
    }
    for (int i = 0; i < n_hb; i++)
        for (int pi = 0; pi < R->n_p; pi++) {
            double t = hb[i];
            char c[16];
            comp(t, c, sizeof c);
            const struct ab_summary_row *sr, *sa;
            int br = best_method(R, 0, pi, t, M_RETRIEVE, -1, &sr);
            int ba = best_method(R, 0, pi, t, M_AGGREGATE, -1, &sa);
            double sum_r = 0, sum_a = 0;
            int n_m = 0;
            for (int mi = 0; mi < R->n_m; mi++) {
                if (R->m[mi].fam < 0 || R->m[mi].oracle) continue;
                int full;
                const struct ab_summary_row *s = ab_rep_row_at(R, 0, mi, pi, t, &full);
                if (!s || !full || !isfinite(s->task_acc_retrieve_mean) ||
                    !isfinite(s->task_acc_aggregate_mean))
                    continue;
                sum_r += s->task_acc_retrieve_mean, sum_a += s->task_acc_aggregate_mean, n_m++;
            }
            fprintf(f, "- **%s, %s:** ", c, R->phase[pi]);
            if (br < 0 || ba < 0 || !n_m) {
                fputs("no method is feasible on every head here.\n", f);
                continue;
            }
            double xr = sr->task_acc_retrieve_mean, xa = sa->task_acc_aggregate_mean;
            double mr = sum_r / n_m, ma = sum_a / n_m;
            const char *v = xr > xa + 1e-9   ? "retrieval holds up better than aggregation"
                            : xa > xr + 1e-9 ? "aggregation holds up better than retrieval"
                                             : "the best method is as good on both";
            fprintf(f,
                    "%s: the best method reaches %.2f on retrieve queries (%s) and %.2f on "
                    "aggregate ones (%s); over the %d methods feasible on every head the "
                    "means are %.2f and %.2f",
                    v, xr, R->m[br].name, xa, R->m[ba].name, n_m, mr, ma);
            if ((xr > xa + 1e-9 && mr < ma - 1e-9) || (xa > xr + 1e-9 && ma < mr - 1e-9))
                fputs(" (the average method shows the opposite)", f);
            fputs(".\n", f);
        }
    fputc('\n', f);
}

void ab_rep_answers_md(const struct rep *R, FILE *f)
{
    fputs("## Answers\n\n", f);
    answer_families(R, f);
    answer_phases(R, f);
    answer_length(R, f);
    answer_tasks(R, f);
}

/* ------------------------------------------------------------------ accounting, infeasible */

void ab_rep_accounting_md(const struct rep *R, FILE *f)
{
    int64_t g = 0, other = 0;
    for (int i = 0; i < R->d->n_inputs; i++) {
        int64_t h = R->d->inputs[i].decode_horizon;
        if (h <= 0) continue;
        if (!g)
            g = h;
        else if (h != g)
            other = h;
    }
    int pd = phase_index(R, "decode");
    fputs("## Accounting\n\n", f);
    if (pd < 0 || !g) {
        fputs("Costs are counted FLOPs (attention, selection and other operations) relative to "
              "dense on the same rows; a cell meets its budget when its ratio is at most the "
              "target. No decode cells, so no amortisation.\n\n",
              f);
        return;
    }
    fprintf(f,
            "Decode costs are amortised over a decode horizon of G = %lld generated tokens%s: "
            "a method's one-off work (flops_once, such as scoring the context or building an "
            "index) adds flops_once x m / G to the per-step FLOPs (attend + select) of the m "
            "decode queries, flop_ratio = (attend + select + once x m / G) / dense, and a "
            "cell meets its budget when that ratio is at most the target (flop_ratio_step "
            "leaves the one-off work out).\n\n",
            (long long)g, other ? " (another input used a different G)" : "");
}

void ab_rep_infeasible_md(const struct rep *R, FILE *f)
{
    fputs("## Infeasible methods\n\n", f);
    int any = 0;
    for (int mi = 0; mi < R->n_m; mi++) {
        int64_t all = 0, inf = 0, first = -1;
        unsigned phases = 0;
        char never[300] = "";
        size_t nl = 0;
        int n_never = 0, n_budgets = 0;
        for (int ti = 0; ti < R->n_t; ti++) {
            int64_t at_all = 0, at_inf = 0;
            for (int pi = 0; pi < R->n_p; pi++) {
                int64_t g = R->grp_cells[ab_rep_gidx(R, mi, pi, ti)];
                int s = R->grp[ab_rep_gidx(R, mi, pi, ti)];
                int64_t feas = s >= 0 ? R->r->summary[s].n_heads : 0;
                at_all += g, at_inf += g - feas;
                if (g - feas > 0) phases |= 1u << pi;
            }
            all += at_all, inf += at_inf;
            if (at_all) n_budgets++;
            if (at_all && at_inf == at_all) {
                char rl[16];
                ab_ratio_label(R->t[ti], rl, sizeof rl);
                if (nl < sizeof never - 20)
                    nl +=
                        (size_t)snprintf(never + nl, sizeof never - nl, "%s%s", nl ? ", " : "", rl);
                n_never++;
            }
        }
        if (!inf) continue;
        for (int64_t c = 0; c < R->r->n_cells && first < 0; c++)
            if (R->cm[c] == mi && !R->r->cells[c].feasible) first = c;
        char ph[80] = "";
        size_t pl = 0;
        for (int pi = 0; pi < R->n_p; pi++)
            if (phases & (1u << pi))
                pl += (size_t)snprintf(ph + pl, sizeof ph - AB_MIN(pl, sizeof ph), "%s%s",
                                       pl ? ", " : "", R->phase[pi]);
        const char *reason = first >= 0 && R->r->cells[first].reason && R->r->cells[first].reason[0]
                                 ? R->r->cells[first].reason
                                 : "no reason recorded";
        fprintf(f, "- **%s** (%s; %s): %lld of %lld cells infeasible", R->m[mi].name,
                R->m[mi].family, ph, (long long)inf, (long long)all);
        if (n_never == n_budgets)
            fputs(", at every budget", f);
        else if (n_never)
            fprintf(f, "; no head meets %s", never);
        fprintf(f, ". Reason: %s.\n", reason);
        any = 1;
    }
    if (!any) fputs("None: every method met every budget on every head.\n", f);
    fputc('\n', f);
}
