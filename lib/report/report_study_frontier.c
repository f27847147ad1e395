/* report_study_frontier.c - `report --study sparse-frontier`: The Sparse Frontier (Nawrot et
 * al., arXiv 2504.17768) on real attention, attention level next to end to end.
 *
 * Attention level: the mean rel_l2 over heads of each method at each target FLOP ratio, from
 * the summary pooled over every workload of the run (R->v[0]; a method counts where it is
 * feasible on every head). End to end: the /model rows of `attnbench eval-model` (R->e2e) with
 * a target below 1: the perplexity on a text input over dense's (dense_ppl of the same row:
 * same input, same phase, same scored positions) and the copy accuracy on a copy-task input
 * (dense_copy_acc beside it). Per phase:
 *   - a table with one row per compression (1 / target), each method's three numbers and the
 *     best method at each level;
 *   - which methods hold perplexity (within PPL_TOL of dense) and copy accuracy (at least
 *     COPY_TOL x dense's) at 10x and 20x (else the two highest compressions of the grid);
 *   - whether the attention-level ranking predicts the end-to-end one: Spearman's rank
 *     correlation across the methods with both numbers at each compression, and whether the
 *     best method is the same;
 *   - how far each phase goes within tolerance, decode against prefill.
 * Rows with no scores (a replaced head could not reach the target) are listed with their
 * reason. Then the calibration rows whose heads were "selected on" another input (ACT,
 * ZeroTuning): perplexity against dense with the heads kept. The figure frontier-e2e.png draws
 * perplexity over dense (log) and copy accuracy against compression, one column per phase.
 * Every number is read from the data; nothing here knows a model. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/method.h"
#include "report/gnuplot.h"
#include "report/report_internal.h"

#define PPL_TOL  1.05 /* holds perplexity: ppl at most this times dense's */
#define COPY_TOL 0.95 /* holds copy accuracy: at least this times dense's */
#define BELOW    0.02 /* a perplexity this far below dense's is named */
#define MAX_M    24   /* methods in one phase */
#define MAX_B    24   /* budgets */

/* One phase of the study: its methods, budgets and, per (budget, method), the numbers. */
struct fphase {
    const char *name;
    int pi; /* index in R->phase, or -1 (no attention-level cells) */
    int n_m;
    const char *m[MAX_M]; /* method names, registry order */
    int n_b;
    double b[MAX_B];            /* target ratios below 1, descending */
    double rel[MAX_B][MAX_M];   /* attention level: pooled mean rel_l2 (NaN: none) */
    int rel_full[MAX_B][MAX_M]; /* 1: feasible on every head */
    int rel_inf[MAX_B][MAX_M];  /* 1: run at this budget, feasible on no head */
    const struct ab_model_row *text[MAX_B][MAX_M], *copy[MAX_B][MAX_M];
    const char *text_input, *copy_input;
    double dense_ppl, dense_copy;
};

struct fstudy {
    int n_p;
    struct fphase p[4];
    int n_all; /* every method of every phase, for one style each */
    const char *all[2 * MAX_M];
};

static int registry_rank(const char *name)
{
    for (int i = 0; i < ab_method_count(); i++)
        if (!strcmp(ab_method_at(i)->name, name)) return i;
    return ab_method_count();
}

static int is_copy_row(const struct ab_model_row *r)
{
    return isfinite(r->copy_acc) || isfinite(r->dense_copy_acc) ||
           (r->workload && !strncmp(r->workload, "copy-", 5));
}

/* A row of the frontier: a method at a budget below 1 on every head it was asked to run on
 * (not a calibration row whose heads were chosen on another input). */
static int frontier_row(const struct ab_model_row *r)
{
    if (!(r->target_ratio > 0 && r->target_ratio < 1)) return 0;
    return !(r->heads && !strncmp(r->heads, "selected on", 11));
}

static int add_method(struct fphase *P, const char *name)
{
    for (int i = 0; i < P->n_m; i++)
        if (!strcmp(P->m[i], name)) return i;
    if (P->n_m == MAX_M) return -1;
    int at = P->n_m++, rank = registry_rank(name);
    while (at > 0 && registry_rank(P->m[at - 1]) > rank) P->m[at] = P->m[at - 1], at--;
    P->m[at] = name;
    return at;
}

static int method_of(const struct fphase *P, const char *name)
{
    for (int i = 0; i < P->n_m; i++)
        if (!strcmp(P->m[i], name)) return i;
    return -1;
}

static void add_budget(struct fphase *P, double t)
{
    for (int i = 0; i < P->n_b; i++)
        if (fabs(P->b[i] - t) < 1e-12) return;
    if (P->n_b == MAX_B) return;
    int at = P->n_b++;
    while (at > 0 && P->b[at - 1] < t) P->b[at] = P->b[at - 1], at--;
    P->b[at] = t;
}

static int budget_of(const struct fphase *P, double t)
{
    for (int i = 0; i < P->n_b; i++)
        if (fabs(P->b[i] - t) < 1e-12) return i;
    return -1;
}

static struct fphase *phase_named(struct fstudy *S, const char *name)
{
    for (int i = 0; i < S->n_p; i++)
        if (!strcmp(S->p[i].name, name)) return &S->p[i];
    if (S->n_p == 4) return NULL;
    struct fphase *P = &S->p[S->n_p++];
    memset(P, 0, sizeof *P);
    P->name = name, P->pi = -1;
    P->dense_ppl = P->dense_copy = NAN;
    return P;
}

static int phase_rank(const char *p)
{
    return !strcmp(p, "prefill") ? 0 : !strcmp(p, "decode") ? 1 : 2;
}

/* Gathers the phases, methods, budgets and numbers. */
static void gather(const struct rep *R, struct fstudy *S)
{
    memset(S, 0, sizeof *S);
    /* end to end first: the methods the finding is about */
    for (int64_t i = 0; i < R->n_e2e; i++) {
        const struct ab_model_row *r = R->e2e[i];
        if (!frontier_row(r) || !r->phase || !r->method) continue;
        struct fphase *P = phase_named(S, r->phase);
        if (!P) continue;
        add_method(P, r->method);
        add_budget(P, r->target_ratio);
    }
    /* attention level: the methods run in the phase (dense and oracles aside) */
    for (int pi = 0; pi < R->n_p; pi++)
        for (int mi = 0; mi < R->n_m; mi++) {
            if (R->m[mi].fam < 0 || R->m[mi].oracle || R->m[mi].op || !ab_rep_runs_in(R, mi, pi))
                continue;
            struct fphase *P = phase_named(S, R->phase[pi]);
            if (!P) continue;
            P->pi = pi;
            add_method(P, R->m[mi].name);
            for (int k = 0; k < R->n_b; k++)
                if (R->b[k] < 1) add_budget(P, R->b[k]);
        }
    /* phases: prefill, decode, then others */
    for (int a = 1; a < S->n_p; a++)
        for (int b = a; b > 0 && phase_rank(S->p[b].name) < phase_rank(S->p[b - 1].name); b--) {
            struct fphase t = S->p[b];
            S->p[b] = S->p[b - 1], S->p[b - 1] = t;
        }
    for (int p = 0; p < S->n_p; p++) {
        struct fphase *P = &S->p[p];
        for (int pi = 0; pi < R->n_p; pi++)
            if (!strcmp(R->phase[pi], P->name)) P->pi = pi;
        for (int bi = 0; bi < P->n_b; bi++)
            for (int k = 0; k < P->n_m; k++) {
                P->rel[bi][k] = NAN;
                int mi = ab_rep_find_method(R, P->m[k]), full = 0;
                if (mi < 0 || P->pi < 0) continue;
                const struct ab_summary_row *s = ab_rep_row_at(R, 0, mi, P->pi, P->b[bi], &full);
                int ti;
                if (s)
                    P->rel[bi][k] = s->rel_l2_mean, P->rel_full[bi][k] = full;
                else
                    P->rel_inf[bi][k] = ab_rep_group_at(R, mi, P->pi, P->b[bi], &ti) >= 0;
            }
        /* the first text and the first copy input of the phase's rows */
        for (int64_t i = 0; i < R->n_e2e; i++) {
            const struct ab_model_row *r = R->e2e[i];
            if (!frontier_row(r) || strcmp(r->phase, P->name)) continue;
            int copy = is_copy_row(r);
            if (copy && !P->copy_input)
                P->copy_input = r->workload, P->dense_copy = r->dense_copy_acc;
            if (!copy && !P->text_input) P->text_input = r->workload, P->dense_ppl = r->dense_ppl;
            const char *in = copy ? P->copy_input : P->text_input;
            if (strcmp(r->workload, in)) continue;
            int bi = budget_of(P, r->target_ratio), k = method_of(P, r->method);
            if (bi < 0 || k < 0) continue;
            if (copy)
                P->copy[bi][k] = r;
            else
                P->text[bi][k] = r;
        }
    }
    for (int p = 0; p < S->n_p; p++)
        for (int k = 0; k < S->p[p].n_m; k++) {
            int seen = 0;
            for (int a = 0; a < S->n_all; a++) seen |= !strcmp(S->all[a], S->p[p].m[k]);
            if (!seen && S->n_all < 2 * MAX_M) S->all[S->n_all++] = S->p[p].m[k];
        }
}

static double ppl_ratio(const struct ab_model_row *r)
{
    return r && r->feasible && isfinite(r->ppl) && r->dense_ppl > 0 ? r->ppl / r->dense_ppl : NAN;
}

static double copy_acc(const struct ab_model_row *r)
{
    return r && r->feasible && isfinite(r->copy_acc) ? r->copy_acc : NAN;
}

static double rel_of(const struct fphase *P, int bi, int k)
{
    return P->rel_full[bi][k] ? P->rel[bi][k] : NAN;
}

static void comp(double t, char *buf, size_t cap)
{
    ab_rep_compression_label(t, buf, cap);
}

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p ? p : "";
}

/* The method with the lowest (low = 1) or highest value of v over the phase's methods at
 * budget bi, or -1. */
static int best_by(const struct fphase *P, int bi, double (*v)(const struct fphase *, int, int),
                   int low)
{
    int best = -1;
    double bv = NAN;
    for (int k = 0; k < P->n_m; k++) {
        double x = v(P, bi, k);
        if (!isfinite(x)) continue;
        if (best < 0 || (low ? x < bv : x > bv)) best = k, bv = x;
    }
    return best;
}

static double v_rel(const struct fphase *P, int bi, int k)
{
    return rel_of(P, bi, k);
}
static double v_ppl(const struct fphase *P, int bi, int k)
{
    return ppl_ratio(P->text[bi][k]);
}
static double v_copy(const struct fphase *P, int bi, int k)
{
    return copy_acc(P->copy[bi][k]);
}

/* ------------------------------------------------------------------ the tables */

static void phase_table(const struct fphase *P, FILE *f)
{
    fprintf(f, "#### %s\n\n", P->name);
    fputs("Each cell: attention-level mean rel_l2 · perplexity over dense", f);
    if (P->text_input)
        fprintf(f, " on %s", base_name(P->text_input));
    else
        fputs(" (no text input here)", f);
    fputs(" · copy accuracy", f);
    if (P->copy_input)
        fprintf(f, " on %s", P->copy_input);
    else
        fputs(" (no copy task here)", f);
    fputs(" (\"-\": not measured; \"inf.\": no knob meets the budget).", f);
    if (isfinite(P->dense_ppl) || isfinite(P->dense_copy)) {
        fputs(" Dense:", f);
        if (isfinite(P->dense_ppl)) fprintf(f, " perplexity %.4g", P->dense_ppl);
        if (isfinite(P->dense_ppl) && isfinite(P->dense_copy)) fputs(",", f);
        if (isfinite(P->dense_copy)) fprintf(f, " copy accuracy %.3f", P->dense_copy);
        fputs(".", f);
    }
    fputs("\n\n| compression |", f);
    for (int k = 0; k < P->n_m; k++) fprintf(f, " %s |", P->m[k]);
    fputs(" best rel_l2 | best perplexity | best copy_acc |\n|---|", f);
    for (int k = 0; k < P->n_m + 3; k++) fputs("---|", f);
    fputc('\n', f);
    for (int bi = 0; bi < P->n_b; bi++) {
        char c[16], rl[16];
        comp(P->b[bi], c, sizeof c);
        ab_ratio_label(P->b[bi], rl, sizeof rl);
        fprintf(f, "| %s (%s) |", c, rl);
        for (int k = 0; k < P->n_m; k++) {
            const struct ab_model_row *t = P->text[bi][k], *cp = P->copy[bi][k];
            double rel = P->rel[bi][k];
            if (isfinite(rel))
                fprintf(f, " %.3g%s", rel, P->rel_full[bi][k] ? "" : "*");
            else
                fputs(P->rel_inf[bi][k] ? " inf." : " -", f);
            if (!t)
                fputs(" · -", f);
            else if (isfinite(ppl_ratio(t)))
                fprintf(f, " · %.2fx", ppl_ratio(t));
            else
                fputs(" · inf.", f);
            if (!cp)
                fputs(" · -", f);
            else if (isfinite(copy_acc(cp)))
                fprintf(f, " · %.2f", copy_acc(cp));
            else
                fputs(" · inf.", f);
            fputs(" |", f);
        }
        int br = best_by(P, bi, v_rel, 1), bp = best_by(P, bi, v_ppl, 1),
            bc = best_by(P, bi, v_copy, 0);
        if (br >= 0)
            fprintf(f, " %s %.3g |", P->m[br], rel_of(P, bi, br));
        else
            fputs(" - |", f);
        if (bp >= 0)
            fprintf(f, " %s %.2fx |", P->m[bp], v_ppl(P, bi, bp));
        else
            fputs(" - |", f);
        if (bc >= 0)
            fprintf(f, " %s %.2f |\n", P->m[bc], v_copy(P, bi, bc));
        else
            fputs(" - |\n", f);
    }
    int partial = 0;
    for (int bi = 0; bi < P->n_b; bi++)
        for (int k = 0; k < P->n_m; k++) partial |= isfinite(P->rel[bi][k]) && !P->rel_full[bi][k];
    if (partial)
        fputs("\n\\* rel_l2 over the heads where the method meets the budget only (not every "
              "head): left out of the rankings.\n",
              f);
    fputc('\n', f);
}

/* ------------------------------------------------------------------ holding accuracy */

/* The budgets the questions call high compression: 0.1 and 0.05 when the phase has them,
 * else its two smallest. Returns the count; *exact 1 for 0.1 and 0.05. */
static int high_budgets(const struct fphase *P, int *bi, int *exact)
{
    int n = 0;
    for (int i = 0; i < P->n_b; i++)
        if (fabs(P->b[i] - 0.1) < 1e-9 || fabs(P->b[i] - 0.05) < 1e-9) bi[n++] = i;
    *exact = n == 2;
    if (n == 2) return 2;
    n = 0;
    for (int i = P->n_b >= 2 ? P->n_b - 2 : 0; i < P->n_b; i++) bi[n++] = i;
    return n;
}

static void list_holders(const struct fphase *P, int bi, int copy, FILE *f)
{
    int n = 0;
    for (int k = 0; k < P->n_m; k++) {
        const struct ab_model_row *r = copy ? P->copy[bi][k] : P->text[bi][k];
        double x = copy ? copy_acc(r) : ppl_ratio(r);
        if (!isfinite(x)) continue;
        int ok = copy ? x >= COPY_TOL * P->dense_copy : x <= PPL_TOL;
        if (!ok) continue;
        if (copy)
            fprintf(f, "%s%s (%.2f)", n++ ? ", " : "", P->m[k], x);
        else
            fprintf(f, "%s%s (%.4g, %.2fx)", n++ ? ", " : "", P->m[k], r->ppl, x);
    }
    if (n) return;
    int b = copy ? best_by(P, bi, v_copy, 0) : best_by(P, bi, v_ppl, 1);
    if (b < 0) {
        fputs("none (no method has a score here)", f);
        return;
    }
    if (copy)
        fprintf(f, "none (best: %s, %.2f)", P->m[b], v_copy(P, bi, b));
    else
        fprintf(f, "none (best: %s, %.4g, %.2fx)", P->m[b], P->text[bi][b]->ppl, v_ppl(P, bi, b));
}

static void holds_md(const struct fstudy *S, FILE *f)
{
    fprintf(f,
            "### Which method holds perplexity and copy accuracy at 10x and 20x?\n\n"
            "Perplexity holds when it is within %.0f%% of dense's, copy accuracy when it is "
            "at least %.0f%% of dense's.\n\n",
            100 * (PPL_TOL - 1), 100 * COPY_TOL);
    for (int p = 0; p < S->n_p; p++) {
        const struct fphase *P = &S->p[p];
        int bi[2], exact, n = high_budgets(P, bi, &exact);
        if (!n) {
            fprintf(f, "- **%s:** no budget below 1 in the data.\n", P->name);
            continue;
        }
        if (!exact)
            fprintf(f,
                    "- **%s:** the grid has no 10x and 20x budgets; its highest "
                    "compressions stand in.\n",
                    P->name);
        for (int i = 0; i < n; i++) {
            char c[16];
            comp(P->b[bi[i]], c, sizeof c);
            fprintf(f, "- **%s, %s:** perplexity ", c, P->name);
            if (P->text_input)
                list_holders(P, bi[i], 0, f);
            else
                fputs("not measured (no text input)", f);
            fputs("; copy accuracy ", f);
            if (P->copy_input && isfinite(P->dense_copy))
                list_holders(P, bi[i], 1, f);
            else
                fputs("not measured (no copy input)", f);
            fputs(".\n", f);
        }
    }
    /* rows better than exact attention: worth a look, they are not a trade-off */
    for (int p = 0; p < S->n_p; p++) {
        const struct fphase *P = &S->p[p];
        int n = 0, bb = -1, bk = -1;
        for (int bi = 0; bi < P->n_b; bi++)
            for (int k = 0; k < P->n_m; k++) {
                double x = v_ppl(P, bi, k);
                if (!(x < 1 - BELOW)) continue;
                n++;
                if (bb < 0 || x < v_ppl(P, bb, bk)) bb = bi, bk = k;
            }
        if (!n) continue;
        char c[16];
        comp(P->b[bb], c, sizeof c);
        fprintf(f,
                "- **%s:** %d row%s score%s a perplexity more than %.0f%% below dense's "
                "(lowest: %s at %s, %.4g against %.4g, %.2fx): sparse attention beating "
                "exact attention on this text.\n",
                P->name, n, n > 1 ? "s" : "", n > 1 ? "" : "s", 100 * BELOW, P->m[bk], c,
                P->text[bb][bk]->ppl, P->dense_ppl, v_ppl(P, bb, bk));
    }
    fputc('\n', f);
}

/* ------------------------------------------------------------------ ranking */

/* Average ranks (1 = smallest) of x[0..n) into r. */
static void ranks(const double *x, int n, double *r)
{
    for (int i = 0; i < n; i++) {
        int below = 0, equal = 0;
        for (int j = 0; j < n; j++) below += x[j] < x[i], equal += x[j] == x[i];
        r[i] = below + (equal + 1) / 2.0;
    }
}

/* Spearman's rho of x and y (n >= 2): Pearson's correlation of their ranks; NaN when either
 * is constant. */
static double spearman(const double *x, const double *y, int n)
{
    double rx[MAX_M], ry[MAX_M], mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    ranks(x, n, rx), ranks(y, n, ry);
    for (int i = 0; i < n; i++) mx += rx[i] / n, my += ry[i] / n;
    for (int i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

/* The rank agreement of rel_l2 with perplexity (copy = 0) or with copy error (copy = 1) in
 * phase P at budget bi: rho (NaN: fewer than 3 methods or constant), the number of methods,
 * and whether the best is the same. */
static double agreement(const struct fphase *P, int bi, int copy, int *n, int *same_best)
{
    double x[MAX_M], y[MAX_M];
    *n = 0;
    for (int k = 0; k < P->n_m; k++) {
        double a = rel_of(P, bi, k), e = copy ? -v_copy(P, bi, k) : v_ppl(P, bi, k);
        if (!isfinite(a) || !isfinite(e)) continue;
        x[*n] = a, y[*n] = e, (*n)++;
    }
    int ba = -1, be = -1;
    for (int i = 0; i < *n; i++) {
        if (ba < 0 || x[i] < x[ba]) ba = i;
        if (be < 0 || y[i] < y[be]) be = i;
    }
    /* the same best: the attention-level best is (one of) the end-to-end best */
    *same_best = *n >= 2 && y[ba] == y[be];
    return *n >= 3 ? spearman(x, y, *n) : NAN;
}

static void ranking_md(const struct fstudy *S, FILE *f)
{
    fputs("### Does the attention-level ranking predict the end-to-end one?\n\n"
          "At each compression, Spearman's rank correlation across the methods with both "
          "numbers between the attention-level mean rel_l2 and the perplexity (and the copy "
          "error, 1 - copy accuracy); 1 is the same order. \"Same best\": the method with the "
          "lowest rel_l2 is also the best end to end.\n\n",
          f);
    int any = 0;
    for (int p = 0; p < S->n_p; p++) {
        const struct fphase *P = &S->p[p];
        for (int copy = 0; copy < 2; copy++) {
            int n_b = 0, n_same = 0, n_rho = 0;
            double sum = 0;
            char cells[1600] = "";
            size_t len = 0;
            for (int bi = 0; bi < P->n_b; bi++) {
                int n, same;
                double rho = agreement(P, bi, copy, &n, &same);
                if (n < 2) continue;
                n_b++, n_same += same;
                char c[16];
                comp(P->b[bi], c, sizeof c);
                if (isfinite(rho)) {
                    n_rho++, sum += rho;
                    len += (size_t)snprintf(cells + len, sizeof cells - AB_MIN(len, sizeof cells),
                                            "%s%s %.2f", len ? ", " : "", c, rho);
                } else if (n >= 3) {
                    len += (size_t)snprintf(cells + len, sizeof cells - AB_MIN(len, sizeof cells),
                                            "%s%s undefined (ties)", len ? ", " : "", c);
                }
            }
            if (!n_b) continue;
            any = 1;
            fprintf(f,
                    "- **%s, %s:** the best method by rel_l2 is the best end to end at %d of "
                    "%d compressions",
                    P->name, copy ? "copy accuracy" : "perplexity", n_same, n_b);
            if (n_rho)
                fprintf(f, "; rank correlation %s (mean %.2f over %d compressions): %s.\n", cells,
                        sum / n_rho, n_rho,
                        sum / n_rho >= 0.7   ? "the attention level predicts the order well"
                        : sum / n_rho >= 0.3 ? "it predicts the order in part"
                        : sum / n_rho > -0.5 ? "it does not predict the order"
                                             : "it does not predict the order: the order is "
                                               "mostly reversed, the methods closer to exact "
                                               "attention doing worse end to end");
            else
                fputs(" (fewer than 3 methods with both numbers: no rank correlation).\n", f);
        }
    }
    if (!any)
        fputs("The data cannot answer: no compression has two methods with both an "
              "attention-level rel_l2 (feasible on every head) and an end-to-end score.\n",
              f);
    fputc('\n', f);
}

/* ------------------------------------------------------------------ decode against prefill */

/* The highest compression (smallest budget) of P at which some method holds perplexity (copy
 * = 0) or copy accuracy (copy = 1), with that method; -1 when none. */
static int reach(const struct fphase *P, int copy, int *method)
{
    int best = -1;
    *method = -1;
    for (int bi = 0; bi < P->n_b; bi++)
        for (int k = 0; k < P->n_m; k++) {
            double x = copy ? v_copy(P, bi, k) : v_ppl(P, bi, k);
            int ok = copy ? x >= COPY_TOL * P->dense_copy : x <= PPL_TOL;
            if (!isfinite(x) || !ok) continue;
            if (best < 0 || P->b[bi] < P->b[best] ||
                (bi == best && (copy ? x > v_copy(P, bi, *method) : x < v_ppl(P, bi, *method))))
                best = bi, *method = k;
        }
    return best;
}

static void tolerance_md(const struct fstudy *S, FILE *f)
{
    fputs("### Does decode tolerate more compression than prefill?\n\n", f);
    const struct fphase *pre = NULL, *dec = NULL;
    for (int p = 0; p < S->n_p; p++) {
        if (!strcmp(S->p[p].name, "prefill")) pre = &S->p[p];
        if (!strcmp(S->p[p].name, "decode")) dec = &S->p[p];
    }
    if (!pre || !dec) {
        fputs("The data cannot answer: it has end-to-end rows of one phase only.\n\n", f);
        return;
    }
    for (int copy = 0; copy < 2; copy++) {
        const char *what = copy ? "copy accuracy" : "perplexity";
        if ((copy && (!pre->copy_input || !dec->copy_input)) ||
            (!copy && (!pre->text_input || !dec->text_input))) {
            fprintf(f, "- **%s:** not measured in both phases.\n", what);
            continue;
        }
        int mp, md, bp = reach(pre, copy, &mp), bd = reach(dec, copy, &md);
        char cp[16] = "", cd[16] = "";
        if (bp >= 0) comp(pre->b[bp], cp, sizeof cp);
        if (bd >= 0) comp(dec->b[bd], cd, sizeof cd);
        fprintf(f, "- **%s:** ", what);
        if (bd >= 0)
            fprintf(f, "holds up to %s in decode (%s)", cd, dec->m[md]);
        else
            fputs("holds at no compression in decode", f);
        if (bp >= 0)
            fprintf(f, ", up to %s in prefill (%s)", cp, pre->m[mp]);
        else
            fputs(", at no compression in prefill", f);
        double kd = bd >= 0 ? 1 / dec->b[bd] : 0, kp = bp >= 0 ? 1 / pre->b[bp] : 0;
        fprintf(f, ": %s.\n",
                kd > kp * (1 + 1e-9)   ? "decode tolerates more compression"
                : kp > kd * (1 + 1e-9) ? "prefill tolerates more compression"
                                       : "the same in both phases");
    }
    fputs("\n(Decode methods score the last rows of the text with a compressed cache; prefill "
          "methods every row with sparse attention. The method sets differ by phase, as in the "
          "paper.)\n\n",
          f);
}

/* ------------------------------------------------------------------ rows without scores */

static void infeasible_md(const struct rep *R, FILE *f)
{
    int n = 0;
    for (int64_t i = 0; i < R->n_e2e; i++) {
        const struct ab_model_row *r = R->e2e[i];
        if (!frontier_row(r) || (r->feasible && isfinite(r->ppl))) continue;
        if (!n++)
            fputs("### End-to-end rows without scores\n\n"
                  "| method | phase | input | compression | heads feasible | reason |\n"
                  "|---|---|---|---|---|---|\n",
                  f);
        char c[16];
        comp(r->target_ratio, c, sizeof c);
        fprintf(f, "| %s | %s | %s | %s | %lld of %lld | %s |\n", r->method, r->phase,
                base_name(r->workload), c, (long long)r->heads_feasible, (long long)r->n_heads,
                r->reason && r->reason[0] ? r->reason : "(no reason recorded)");
    }
    if (n) fputs("\n", f);
}

/* ------------------------------------------------------------------ ACT / ZeroTuning */

/* r->heads with the folders of the calibration file dropped ("selected on heldout-2.txt: ..."). */
static void heads_words(const struct ab_model_row *r, char *buf, size_t cap)
{
    const char *h = r->heads ? r->heads : "", *colon = strchr(h, ':');
    if (strncmp(h, "selected on ", 12) || !colon) {
        snprintf(buf, cap, "%s", h);
        return;
    }
    const char *p = h + 12, *slash = NULL;
    for (const char *q = p; q < colon; q++)
        if (*q == '/') slash = q;
    snprintf(buf, cap, "selected on %s", slash ? slash + 1 : p);
}

static void calibration_md(const struct rep *R, FILE *f)
{
    fputs("### Calibration in the heads chosen on another text (ACT, ZeroTuning)\n\n", f);
    int n = 0;
    for (int64_t i = 0; i < R->n_e2e; i++) {
        const struct ab_model_row *r = R->e2e[i];
        if (!r->heads || strncmp(r->heads, "selected on", 11)) continue;
        if (!n++)
            fputs("| method | phase | input | heads | heads kept | ppl (dense) | ppl / dense "
                  "| acc (dense) |\n|---|---|---|---|---|---|---|---|\n",
                  f);
        char hw[400];
        heads_words(r, hw, sizeof hw);
        fprintf(f, "| %s | %s | %s | %s | %lld | ", r->method, r->phase, base_name(r->workload), hw,
                (long long)r->n_heads);
        if (r->feasible && isfinite(r->ppl))
            fprintf(f, "%.4g (%.4g) | %.4fx | %.3f (%.3f) |\n", r->ppl, r->dense_ppl,
                    r->ppl / r->dense_ppl, r->acc, r->dense_acc);
        else
            fprintf(f, "- (%.4g) | - | - |\n", r->dense_ppl);
    }
    if (!n) {
        fputs("The data has no such rows (eval-model with heads_select: calibrate on one text, "
              "score on another): not measured.\n\n",
              f);
        return;
    }
    fputc('\n', f);
    for (int64_t i = 0; i < R->n_e2e; i++) {
        const struct ab_model_row *r = R->e2e[i];
        if (!r->heads || strncmp(r->heads, "selected on", 11)) continue;
        if (!(r->feasible && isfinite(r->ppl) && r->dense_ppl > 0)) {
            fprintf(f, "- **%s**: no score (%s).\n", r->method,
                    r->reason && r->reason[0] ? r->reason : "no reason recorded");
            continue;
        }
        char hw[400];
        heads_words(r, hw, sizeof hw);
        if (r->n_heads == 0) {
            fprintf(f,
                    "- **%s**: no head passed the selection (%s), so it replaces no head and "
                    "scores as dense (%.4g): calibration cannot help on this model by this "
                    "rule.\n",
                    r->method, hw, r->ppl);
            continue;
        }
        double d = r->ppl / r->dense_ppl - 1;
        fprintf(f,
                "- **%s** in %lld heads (%s): perplexity %.4g against dense %.4g on %s, "
                "%s%.2f%%: %s.\n",
                r->method, (long long)r->n_heads, hw, r->ppl, r->dense_ppl, base_name(r->workload),
                d >= 0 ? "+" : "", 100 * d,
                d < -0.01  ? "calibration helps on this model"
                : d > 0.01 ? "calibration hurts on this model"
                           : "no measurable effect (within 1% of dense): the heads chosen on one "
                             "text do not carry a gain to another, calibration does not help on "
                             "this model");
    }
    fputc('\n', f);
}

/* ------------------------------------------------------------------ the figure */

static int figure(struct rep *R, const struct fstudy *S)
{
    int n_pan = 2 * S->n_p, rc = AB_OK;
    struct ab_gp_axes *ax = calloc((size_t)n_pan + 1, sizeof *ax);
    struct ab_gp_curve *cu = calloc((size_t)(n_pan * (MAX_M + 2)) + 1, sizeof *cu);
    double *xy = calloc((size_t)(n_pan * (MAX_M + 2) * 2 * (MAX_B + 2)) + 1, sizeof(double));
    char(*titles)[160] = calloc((size_t)n_pan + 1, sizeof *titles);
    if (!ax || !cu || !xy || !titles) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    /* x tics: every compression of the data, and dense at 1 */
    double tics[MAX_B + 1];
    char tl[MAX_B + 1][16];
    const char *tlp[MAX_B + 1];
    int n_t = 0;
    tics[n_t] = 1, snprintf(tl[n_t], sizeof tl[0], "dense"), tlp[n_t] = tl[n_t], n_t++;
    double xmax = 1;
    for (int p = 0; p < S->n_p; p++)
        for (int bi = 0; bi < S->p[p].n_b; bi++) {
            double x = 1 / S->p[p].b[bi];
            int seen = 0;
            for (int i = 0; i < n_t; i++) seen |= fabs(tics[i] - x) < 1e-9 * x;
            if (seen || n_t > MAX_B) continue;
            tics[n_t] = x;
            comp(S->p[p].b[bi], tl[n_t], sizeof tl[0]);
            tlp[n_t] = tl[n_t], n_t++;
            xmax = fmax(xmax, x);
        }
    int nc = 0;
    size_t nv = 0;
    double ylo = INFINITY, yhi = -INFINITY;
    char tol_title[96];
    snprintf(tol_title, sizeof tol_title, "tolerance (%.0f%% of dense)", 100 * (PPL_TOL - 1));
    for (int row = 0; row < 2; row++)
        for (int p = 0; p < S->n_p; p++) {
            const struct fphase *P = &S->p[p];
            struct ab_gp_axes *a = &ax[row * S->n_p + p];
            int copy = row == 1;
            const char *in = copy ? P->copy_input : P->text_input;
            snprintf(titles[row * S->n_p + p], sizeof titles[0], "%s: %s on %s", P->name,
                     copy ? "copy accuracy" : "perplexity / dense", in ? base_name(in) : "-");
            *a = (struct ab_gp_axes){.title = titles[row * S->n_p + p],
                                     .xlabel = "compression (1 / target FLOP ratio)",
                                     .ylabel = copy ? "copy accuracy" : "perplexity / dense (log)",
                                     .logx = 1,
                                     .logy = !copy,
                                     .xmin = 0.9,
                                     .xmax = xmax * 1.15,
                                     .ymin = copy ? 0 : NAN,
                                     .ymax = copy ? 1.05 : NAN,
                                     .n_xtics = n_t,
                                     .xtics = tics,
                                     .xtic_labels = tlp,
                                     .curves = &cu[nc]};
            /* the tolerance, a grey band behind the lines; dense */
            double *x = &xy[nv], *y = x + 2;
            x[0] = 0.95, x[1] = xmax * 1.1;
            y[0] = y[1] = copy ? COPY_TOL * P->dense_copy : PPL_TOL;
            nv += 4;
            if (isfinite(y[0])) {
                cu[nc++] = (struct ab_gp_curve){
                    .title = tol_title, .style = AB_GP_ENVELOPE, .n = 2, .x = x, .y = y};
                a->n_curves++;
            }
            x = &xy[nv], y = x + 1;
            x[0] = 1, y[0] = copy ? P->dense_copy : (isfinite(P->dense_ppl) ? 1 : NAN);
            nv += 2;
            cu[nc++] = (struct ab_gp_curve){
                .title = "dense", .style = AB_GP_REFERENCE, .n = 1, .x = x, .y = y};
            a->n_curves++;
            for (int k = 0; k < P->n_m; k++) {
                x = &xy[nv], y = x + P->n_b;
                int any = 0;
                for (int bi = 0; bi < P->n_b; bi++) {
                    /* ascending compression: budgets descend */
                    x[bi] = 1 / P->b[bi];
                    y[bi] = copy ? v_copy(P, bi, k) : v_ppl(P, bi, k);
                    if (isfinite(y[bi])) {
                        any = 1;
                        if (!copy) ylo = fmin(ylo, y[bi]), yhi = fmax(yhi, y[bi]);
                    }
                }
                nv += (size_t)(2 * P->n_b);
                if (!any) continue;
                int style = 0;
                for (int s = 0; s < S->n_all; s++)
                    if (!strcmp(S->all[s], P->m[k])) style = s;
                cu[nc++] = (struct ab_gp_curve){
                    .title = P->m[k], .style = style, .n = P->n_b, .x = x, .y = y};
                a->n_curves++;
            }
        }
    /* one log range for every perplexity panel, with dense (1) and the tolerance inside it,
     * and tics a reader can read off (a log axis within a decade has only one of its own) */
    static const double fine[] = {0.8, 0.9, 1, 1.1, 1.2, 1.5, 2, 3, 4};
    static const double mid[] = {0.5, 1, 1.2, 1.5, 2, 3, 5, 10, 20, 30, 50};
    static const double wide[] = {0.1, 1,   2,   5,   10,  20,  50,  100,
                                  200, 500, 1e3, 2e3, 5e3, 1e4, 1e5, 1e6};
    double yt[16];
    int n_yt = 0;
    if (isfinite(ylo)) {
        double lo = fmin(ylo, 1) / 1.1, hi = fmax(yhi, PPL_TOL * 1.05) * 1.25;
        const double *c = hi / lo <= 4.5 ? fine : hi / lo <= 60 ? mid : wide;
        int nc_t = hi / lo <= 4.5 ? 9 : hi / lo <= 60 ? 11 : 16;
        for (int i = 0; i < nc_t && n_yt < 16; i++)
            if (c[i] >= lo && c[i] <= hi) yt[n_yt++] = c[i];
        for (int p = 0; p < S->n_p; p++)
            ax[p].ymin = lo, ax[p].ymax = hi, ax[p].n_ytics = n_yt, ax[p].ytics = yt;
    }
    struct ab_gp_figure fig = {.name = "frontier-e2e",
                               .title = "End to end against compression (The Sparse Frontier)",
                               .rows = 2,
                               .cols = S->n_p,
                               .n_panels = n_pan,
                               .panels = ax,
                               .width = 520 * S->n_p + 260,
                               .height = 900};
    if ((rc = ab_gp_figure_write(R->o->dir, &fig)) != AB_OK) goto done;
    ab_rep_announce_pair(R, "frontier-e2e");
    rc = ab_rep_add_fig(R, SEC_STUDY, 1, "frontier-e2e.png",
                        "End to end against compression, one column per phase: perplexity over "
                        "dense's (log scale; top) and copy accuracy (bottom), one line per "
                        "method; dense as the black star; the grey line is the tolerance "
                        "(perplexity within %.0f%% of dense's, copy accuracy at least %.0f%% of "
                        "dense's).",
                        100 * (PPL_TOL - 1), 100 * COPY_TOL);
done:
    free(ax), free(cu), free(xy), free(titles);
    return rc;
}

/* ------------------------------------------------------------------ the study */

int ab_rep_study_sparse_frontier(struct rep *R, FILE *f)
{
    fputs("## Findings: The Sparse Frontier\n\n", f);
    fputs("Nawrot et al., \"The Sparse Frontier: Sparse Attention Trade-offs in Transformer "
          "LLMs\" (arXiv 2504.17768), on real attention: each method at the paper's "
          "compressions, at the attention level (`attnbench run`: mean rel_l2 over every head "
          "of the captured workloads, pooled) and end to end (`attnbench eval-model`: the "
          "method replaces attention in every layer and head of the model, perplexity on a "
          "text and copy accuracy on a copy task, next to dense on the same input).\n\n",
          f);
    struct fstudy *S = calloc(1, sizeof *S);
    if (!S) return ab_fail(AB_E_NOMEM, "out of memory");
    gather(R, S);
    int rc = AB_OK, n_e2e = 0;
    for (int64_t i = 0; i < R->n_e2e; i++) n_e2e += frontier_row(R->e2e[i]);
    if (!S->n_p) {
        fputs("The data cannot show it: no method runs at a budget below 1, at the attention "
              "level or end to end.\n\n",
              f);
    } else {
        if (!n_e2e)
            fputs("The results have no end-to-end rows at a budget below 1 (`eval-model`): "
                  "only the attention level is shown, and nothing can be said about "
                  "perplexity or copy accuracy.\n\n",
                  f);
        int any_rel = 0;
        for (int p = 0; p < S->n_p; p++) any_rel |= S->p[p].pi >= 0;
        if (!any_rel)
            fputs("The results have no attention-level cells (`run`): the rel_l2 columns are "
                  "empty and the ranking question cannot be answered.\n\n",
                  f);
        fputs("### Attention level next to end to end\n\n", f);
        for (int p = 0; p < S->n_p; p++) phase_table(&S->p[p], f);
        if (n_e2e) {
            holds_md(S, f);
            ranking_md(S, f);
            tolerance_md(S, f);
            infeasible_md(R, f);
            rc = figure(R, S);
        }
    }
    if (rc == AB_OK) {
        calibration_md(R, f);
        fputs("Reproduce: `attnbench scenario scenarios/real-model.yaml` (captures, `run`, "
              "`heads`, `eval-model`, then this report with `--study sparse-frontier`).\n\n",
              f);
    }
    free(S);
    return rc;
}
