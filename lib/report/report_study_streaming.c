/* report_study_streaming.c - `report --study streaming-llm`: the findings of StreamingLLM (Xiao
 * et al., "Efficient Streaming Language Models with Attention Sinks", arXiv 2309.17453, section
 * 3.2 and Table 2) from the /model rows of `attnbench eval-model`: perplexity inside a real
 * model with a sliding window alone (`window`, 0 sinks) and with the first 1, 4 or 16 tokens
 * kept beside it (`streaming-1`, `streaming`, `streaming-16`) at equal FLOP budgets, dense as
 * the reference. Per (input, phase):
 *   - a table: one row per budget, dense and the four arms' perplexity ("-" and a footnote
 *     with the reason for an infeasible row);
 *   - the finding: at each budget whether sink + window (`streaming`, 4 sinks) keeps
 *     perplexity lower than the window alone (closer to dense, or below it), as ratios to dense
 *     (a difference within TIE_REL of dense counts as the same), which sink count is best, and
 *     the rows that score below dense; where it does not
 *     hold, said so with the numbers, with the sliding-window protocol named when the results
 *     file scored its text in windows (root attribute stride > 0: windows after the first
 *     start mid-text, so the tokens kept as sinks there are ordinary ones);
 * and the figure streaming-llm-ppl.png (perplexity against achieved FLOP ratio, one panel per
 * (input, phase), one line per sink count, dense dashed), then which heads sink (first_weight >
 * SINK_MIN in the /heads table, per workload). Nothing here knows the model: every head and
 * number comes from the inputs. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "report/gnuplot.h"
#include "report/report_internal.h"

#define TIE_REL  0.01 /* |ppl_streaming - ppl_window| below this x dense: the same */
#define SINK_MIN 0.3  /* a head sinks when its mean first-token weight exceeds this (metrics.md) */

/* The arms of the sink-count ablation, in the order of the table. */
static const struct {
    const char *method;
    int sinks;
} arms[] = {{"window", 0}, {"streaming-1", 1}, {"streaming", 4}, {"streaming-16", 16}};
enum { N_ARMS = 4, ARM_WINDOW = 0, ARM_STREAMING = 2, MAX_BUDGETS = 16, MAX_PANELS = 16 };

/* One (input, phase): its rows by budget and arm. */
struct sl_panel {
    const char *input, *phase;
    int file; /* the results file of its first row (R->d->inputs) */
    int64_t stride, bos; /* that file's sliding-window protocol (results attributes stride,
                            window_bos): one panel per protocol */
    double dense_ppl;
    int n_b;
    double b[MAX_BUDGETS];                               /* target ratios, descending */
    const struct ab_model_row *row[MAX_BUDGETS][N_ARMS]; /* NULL: not run */
};

struct sl {
    int n_panels, dropped; /* dropped: rows beyond MAX_PANELS or MAX_BUDGETS */
    struct sl_panel p[MAX_PANELS];
    const char *model;
};

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p ? p : "";
}

static int arm_of(const char *method)
{
    for (int a = 0; a < N_ARMS; a++)
        if (!strcmp(arms[a].method, method)) return a;
    return -1;
}

static int phase_rank(const char *p)
{
    return !strcmp(p, "prefill") ? 0 : !strcmp(p, "decode") ? 1 : 2;
}

/* The panel of (input, phase), created in S when new (NULL when S is full). */
static struct sl_panel *panel_of(struct sl *S, const struct ab_model_row *r, int file,
                                 int64_t stride, int64_t bos)
{
    for (int i = 0; i < S->n_panels; i++)
        if (!strcmp(S->p[i].input, r->workload) && !strcmp(S->p[i].phase, r->phase) &&
            S->p[i].stride == stride && S->p[i].bos == bos)
            return &S->p[i];
    if (S->n_panels == MAX_PANELS) return NULL;
    struct sl_panel *P = &S->p[S->n_panels++];
    memset(P, 0, sizeof *P);
    *P = (struct sl_panel){.input = r->workload, .phase = r->phase, .file = file,
                           .stride = stride, .bos = bos, .dense_ppl = NAN};
    return P;
}

/* Files row r of results file `file` under its panel and budget. */
static void add_row(struct sl *S, const struct ab_model_row *r, int file, int64_t stride,
                    int64_t bos)
{
    int a = arm_of(r->method);
    if (a < 0 || !isfinite(r->target_ratio)) return;
    struct sl_panel *P = panel_of(S, r, file, stride, bos);
    if (!P) {
        S->dropped++;
        return;
    }
    if (!isfinite(P->dense_ppl)) P->dense_ppl = r->dense_ppl;
    if (!S->model) S->model = r->model;
    int bi = 0;
    while (bi < P->n_b && P->b[bi] != r->target_ratio) bi++;
    if (bi == P->n_b) {
        if (P->n_b == MAX_BUDGETS) {
            S->dropped++;
            return;
        }
        /* keep b descending: insert in place */
        while (bi > 0 && P->b[bi - 1] < r->target_ratio) {
            P->b[bi] = P->b[bi - 1];
            memcpy(P->row[bi], P->row[bi - 1], sizeof P->row[bi]);
            bi--;
        }
        P->b[bi] = r->target_ratio;
        memset(P->row[bi], 0, sizeof P->row[bi]);
        P->n_b++;
    }
    if (!P->row[bi][a]) P->row[bi][a] = r;
}

/* Collects the arms' rows of every input (those the report's filters keep) into panels
 * ordered by input (first appearance), then prefill, decode, other phases. */
static void collect(const struct rep *R, struct sl *S)
{
    memset(S, 0, sizeof *S);
    for (int i = 0; i < R->d->n_inputs; i++)
        for (int64_t k = 0; k < R->d->inputs[i].n_model; k++) {
            const struct ab_model_row *r = &R->d->inputs[i].model[k];
            if (ab_rep_keep(R, r->method, r->family))
                add_row(S, r, i, R->d->inputs[i].stride, R->d->inputs[i].stride ? R->d->inputs[i].window_bos : 0);
        }
    /* stable insertion sort: input order of first appearance, then phase */
    int order[MAX_PANELS];
    for (int i = 0; i < S->n_panels; i++) {
        order[i] = i;
        for (int j = 0; j < i; j++)
            if (!strcmp(S->p[j].input, S->p[i].input) && S->p[j].stride == S->p[i].stride &&
                S->p[j].bos == S->p[i].bos) {
                order[i] = order[j];
                break;
            }
    }
    for (int a = 1; a < S->n_panels; a++)
        for (int b = a; b > 0; b--) {
            int kb = order[b] * 4 + phase_rank(S->p[b].phase);
            int ka = order[b - 1] * 4 + phase_rank(S->p[b - 1].phase);
            if (kb >= ka) break;
            struct sl_panel t = S->p[b];
            S->p[b] = S->p[b - 1], S->p[b - 1] = t;
            int o = order[b];
            order[b] = order[b - 1], order[b - 1] = o;
        }
}

/* The perplexity of arm a at budget bi (NaN: not run or infeasible). */
static double ppl_at(const struct sl_panel *P, int bi, int a)
{
    const struct ab_model_row *r = P->row[bi][a];
    return r && r->feasible ? r->ppl : NAN;
}

static void budget_words(double t, char *buf, size_t cap)
{
    char rl[24], c[24];
    ab_ratio_label(t, rl, sizeof rl);
    ab_rep_compression_label(t, c, sizeof c);
    snprintf(buf, cap, "%s (%s)", rl, c);
}

/* ------------------------------------------------------------------ the table */

/* The table of panel P: a row per budget, "-" and a footnote letter for infeasible rows (one
 * letter per distinct reason), the lowest perplexity of a row in bold. */
static void panel_table(const struct sl_panel *P, FILE *f)
{
    const char *notes[26];
    int n_notes = 0;
    char dense[32];
    if (isfinite(P->dense_ppl))
        snprintf(dense, sizeof dense, "%.4g", P->dense_ppl);
    else
        snprintf(dense, sizeof dense, "-");
    fprintf(f, "**%s, %s**%s\n\n", base_name(P->input), P->phase,
            P->stride > 0 ? P->bos ? " (sliding windows, BOS first)" : " (sliding windows)" : "");
    fputs("| budget (FLOP ratio) | dense |", f);
    for (int a = 0; a < N_ARMS; a++)
        fprintf(f, " %s (%d sink%s) |", arms[a].method, arms[a].sinks,
                arms[a].sinks == 1 ? "" : "s");
    fputs("\n|---|---|---|---|---|---|\n", f);
    for (int bi = 0; bi < P->n_b; bi++) {
        char bw[80];
        budget_words(P->b[bi], bw, sizeof bw);
        int best = -1;
        for (int a = 0; a < N_ARMS; a++)
            if (isfinite(ppl_at(P, bi, a)) && (best < 0 || ppl_at(P, bi, a) < ppl_at(P, bi, best)))
                best = a;
        fprintf(f, "| %s | %s |", bw, dense);
        for (int a = 0; a < N_ARMS; a++) {
            const struct ab_model_row *r = P->row[bi][a];
            if (!r) {
                fputs(" not run |", f);
            } else if (r->feasible && isfinite(r->ppl)) {
                fprintf(f, a == best ? " **%.4g** |" : " %.4g |", r->ppl);
            } else {
                const char *why = r->reason && *r->reason ? r->reason : "no score";
                int k = 0;
                while (k < n_notes && strcmp(notes[k], why)) k++;
                if (k == n_notes && n_notes < 26) notes[n_notes++] = why;
                fprintf(f, " - (%c) |", 'a' + AB_MIN(k, 25));
            }
        }
        fputc('\n', f);
    }
    fputc('\n', f);
    for (int k = 0; k < n_notes; k++) fprintf(f, "(%c) infeasible: %s.  \n", 'a' + k, notes[k]);
    if (n_notes) fputc('\n', f);
}

/* ------------------------------------------------------------------ the findings */

/* The comparison of streaming and window at budget bi: 1 streaming lower (closer to dense, or
 * below it), 0 the same within TIE_REL of dense, -1 higher, 2 not comparable (either not
 * scored, or no dense). Lower is better: a perplexity below dense is not a miss. */
static int verdict_at(const struct sl_panel *P, int bi)
{
    double s = ppl_at(P, bi, ARM_STREAMING), w = ppl_at(P, bi, ARM_WINDOW), d = P->dense_ppl;
    if (!isfinite(s) || !isfinite(w) || !(d > 0)) return 2;
    if (fabs(s - w) <= TIE_REL * d) return 0;
    return s < w ? 1 : -1;
}

/* "1/8 streaming 1.28x dense, window 1.79x (ppl 6.1, 8.47)" for the budgets of P with verdict v
 * (all when v == 3). */
static void ratio_list(const struct sl_panel *P, int v, FILE *f)
{
    int n = 0;
    for (int bi = 0; bi < P->n_b; bi++) {
        int vb = verdict_at(P, bi);
        if (vb == 2 || (v != 3 && vb != v)) continue;
        char rl[32];
        ab_ratio_label(P->b[bi], rl, sizeof rl);
        fprintf(f, "%s%s streaming %.3gx dense, window %.3gx (ppl %.4g, %.4g)", n++ ? "; " : "", rl,
                ppl_at(P, bi, ARM_STREAMING) / P->dense_ppl,
                ppl_at(P, bi, ARM_WINDOW) / P->dense_ppl, ppl_at(P, bi, ARM_STREAMING),
                ppl_at(P, bi, ARM_WINDOW));
    }
}

static int count_verdict(const struct sl_panel *P, int v)
{
    int n = 0;
    for (int bi = 0; bi < P->n_b; bi++) n += verdict_at(P, bi) == v;
    return n;
}

/* Streaming against window in panel P, one sentence (two where it does not hold). */
static void finding_window(const struct sl_panel *P, FILE *f)
{
    int n_win = count_verdict(P, 1), n_tie = count_verdict(P, 0), n_lose = count_verdict(P, -1);
    int n_cmp = n_win + n_tie + n_lose;
    fprintf(f, "- **%s, %s:** ", base_name(P->input), P->phase);
    if (!(P->dense_ppl > 0)) {
        fputs("no dense perplexity in the rows: nothing to compare against.\n", f);
        return;
    }
    if (!n_cmp) {
        fputs("streaming and window are not both scored at any budget here, so the finding "
              "cannot be checked.\n",
              f);
        return;
    }
    if (n_win == n_cmp)
        fprintf(f,
                "sink + window (streaming, 4 sinks) keeps perplexity lower than the window "
                "alone (dense %.4g) at every budget scored (%d): ",
                P->dense_ppl, n_cmp);
    else if (n_win)
        fprintf(f,
                "sink + window (streaming, 4 sinks) keeps perplexity lower than the window "
                "alone (dense %.4g) at %d of %d budgets: ",
                P->dense_ppl, n_win, n_cmp);
    else
        fprintf(f,
                "the finding does not hold: sink + window (streaming, 4 sinks) keeps "
                "perplexity no lower than the window alone (dense %.4g) at any of %d "
                "budgets",
                P->dense_ppl, n_cmp);
    if (n_win) ratio_list(P, 1, f);
    fputc('.', f);
    if (n_tie) {
        fprintf(f, " The two are the same within %.0f%% of dense at ", 100 * TIE_REL);
        ratio_list(P, 0, f);
        fputc('.', f);
    }
    if (n_lose) {
        fputs(" It does not hold where the window alone is lower: ", f);
        ratio_list(P, -1, f);
        fputc('.', f);
    }
    if (P->stride > 0 && !P->bos)
        fprintf(f,
                " This input was scored in sliding windows (stride %lld, the results "
                "attribute `stride`): every window after the first starts mid-text without "
                "BOS, so the first tokens kept as sinks there are ordinary tokens%s.",
                (long long)P->stride, n_win < n_cmp ? ", and the sinks do not help everywhere" : "");
    else if (P->stride > 0)
        fprintf(f,
                " This input was scored in sliding windows (stride %lld) with BOS in place of "
                "the first token of every window after the first (results attribute "
                "`window_bos`), so the first token kept as a sink is BOS in every window.",
                (long long)P->stride);
    fputc('\n', f);
}

/* Which sink count gives the lowest perplexity at each budget of P, one sentence. */
static void finding_best(const struct sl_panel *P, FILE *f)
{
    int best[MAX_BUDGETS], n = 0, first = -1, same = 1;
    for (int bi = 0; bi < P->n_b; bi++) {
        best[bi] = -1;
        for (int a = 0; a < N_ARMS; a++)
            if (isfinite(ppl_at(P, bi, a)) &&
                (best[bi] < 0 || ppl_at(P, bi, a) < ppl_at(P, bi, best[bi])))
                best[bi] = a;
        if (best[bi] < 0) continue;
        n++;
        if (first < 0) first = best[bi];
        same &= best[bi] == first;
    }
    fprintf(f, "  - Best sink count: ");
    if (!n) {
        fputs("none scored.\n", f);
        return;
    }
    if (same) fprintf(f, "%d (%s) at every budget scored: ", arms[first].sinks, arms[first].method);
    int k = 0;
    for (int bi = 0; bi < P->n_b; bi++) {
        if (best[bi] < 0) continue;
        char rl[32];
        ab_ratio_label(P->b[bi], rl, sizeof rl);
        if (same)
            fprintf(f, "%s%s %.4g", k++ ? ", " : "", rl, ppl_at(P, bi, best[bi]));
        else
            fprintf(f, "%s%d at %s (%s, %.4g)", k++ ? "; " : "", arms[best[bi]].sinks, rl,
                    arms[best[bi]].method, ppl_at(P, bi, best[bi]));
    }
    fputs(".\n", f);
}

/* Whether arm a at budget bi of P scores below dense by more than TIE_REL. */
static int below_dense(const struct sl_panel *P, int bi, int a)
{
    return ppl_at(P, bi, a) < P->dense_ppl * (1 - TIE_REL);
}

/* The rows of P scoring below dense, one sentence (nothing when none). */
static void finding_below(const struct sl_panel *P, FILE *f)
{
    int n = 0;
    for (int bi = 0; bi < P->n_b; bi++)
        for (int a = 0; a < N_ARMS; a++) {
            if (!below_dense(P, bi, a)) continue;
            char rl[32];
            ab_ratio_label(P->b[bi], rl, sizeof rl);
            if (!n++)
                fprintf(f, "  - Below dense (%.4g) with fewer keys: ", P->dense_ppl);
            else
                fputs(", ", f);
            fprintf(f, "%s at %s (%.4g)", arms[a].method, rl, ppl_at(P, bi, a));
        }
    if (n) fputs(".\n", f);
}

/* One sentence over every panel: where streaming wins, ties, loses, and its largest gain. */
static void finding_overall(const struct sl *S, FILE *f)
{
    int win = 0, tie = 0, lose = 0, gp = -1, gb = -1;
    double gain = 0;
    for (int p = 0; p < S->n_panels; p++)
        for (int bi = 0; bi < S->p[p].n_b; bi++) {
            int v = verdict_at(&S->p[p], bi);
            win += v == 1, tie += v == 0, lose += v == -1;
            if (v != 1) continue;
            const struct sl_panel *P = &S->p[p];
            double g = (ppl_at(P, bi, ARM_WINDOW) - ppl_at(P, bi, ARM_STREAMING)) / P->dense_ppl;
            if (g > gain) gain = g, gp = p, gb = bi;
        }
    int n = win + tie + lose;
    if (!n) return;
    fprintf(f,
            "Over %d (input, phase, budget) points, sink + window beats the window alone at "
            "%d, is the same (within %.0f%% of dense) at %d and is worse at %d.",
            n, win, 100 * TIE_REL, tie, lose);
    if (gp >= 0) {
        const struct sl_panel *P = &S->p[gp];
        char rl[32];
        ab_ratio_label(P->b[gb], rl, sizeof rl);
        fprintf(f,
                " The largest gain is on %s in %s at %s: perplexity %.4g with 4 sinks against "
                "%.4g with the window alone (dense %.4g).",
                base_name(P->input), P->phase, rl, ppl_at(P, gb, ARM_STREAMING),
                ppl_at(P, gb, ARM_WINDOW), P->dense_ppl);
    }
    fputs("\n\n", f);
}

/* ------------------------------------------------------------------ sink heads */

/* One sentence per workload of the /heads table: the heads whose first_weight exceeds
 * SINK_MIN, with their weights. */
static void sink_heads(const struct rep *R, FILE *f)
{
    const struct ab_heads_table *h = &R->d->heads;
    fputs("### Which heads sink\n\n", f);
    if (!h->n) {
        fputs("Not known: no input has a /heads table (`attnbench heads` writes it).\n\n", f);
        return;
    }
    int c = -1;
    for (int k = 0; k < h->n_cols; k++)
        if (!strcmp(h->col_name[k], "first_weight")) c = k;
    if (c < 0) {
        fputs("Not known: the /heads table has no first_weight column.\n\n", f);
        return;
    }
    for (int64_t i = 0; i < h->n; i++) {
        const char *w = h->workload ? h->workload[i] : "";
        int seen = 0;
        for (int64_t j = 0; j < i && !seen; j++)
            seen = !strcmp(h->workload ? h->workload[j] : "", w);
        if (seen) continue;
        int64_t n = 0, n_sink = 0;
        for (int64_t j = i; j < h->n; j++)
            if (!strcmp(h->workload ? h->workload[j] : "", w) && isfinite(h->col[c][j]))
                n++, n_sink += h->col[c][j] > SINK_MIN;
        fprintf(f,
                "On %s, %lld of %lld heads sink (mean first-token weight, /heads column "
                "first_weight, above %g)%s",
                base_name(w), (long long)n_sink, (long long)n, SINK_MIN, n_sink ? ": " : ".");
        int64_t k = 0;
        for (int64_t j = i; j < h->n; j++)
            if (!strcmp(h->workload ? h->workload[j] : "", w) && h->col[c][j] > SINK_MIN)
                fprintf(f, "%sL%lld.H%lld (%.3f)", k++ ? ", " : "", (long long)h->layer[j],
                        (long long)h->head[j], h->col[c][j]);
        fputs(k ? ".\n\n" : "\n\n", f);
    }
}

/* ------------------------------------------------------------------ the figure */

/* Tics 1, 2, 5 x 10^e within [lo, hi] (at most cap) for a log axis; their count. */
static int log_tics(double lo, double hi, double *t, int cap)
{
    static const double m[3] = {1, 2, 5};
    int n = 0;
    if (!(lo > 0) || !(hi > lo)) return 0;
    for (double e = pow(10, floor(log10(lo))); e <= hi && n < cap; e *= 10)
        for (int i = 0; i < 3 && n < cap; i++)
            if (m[i] * e >= lo && m[i] * e <= hi) t[n++] = m[i] * e;
    return n;
}

/* streaming-llm-ppl.{tsv,gp}: a panel per (input, phase), perplexity against the achieved FLOP
 * ratio of each arm, dense dashed across; added to SEC_STUDY. */
static int ppl_figure(struct rep *R, const struct sl *S)
{
    int n = S->n_panels, rc = AB_OK;
    struct ab_gp_axes *ax = calloc((size_t)n, sizeof *ax);
    struct ab_gp_curve *cu = calloc((size_t)n * (N_ARMS + 1), sizeof *cu);
    double *vals = calloc((size_t)n * (N_ARMS + 1) * 2 * MAX_BUDGETS, sizeof(double));
    double *tics = calloc((size_t)n * MAX_BUDGETS, sizeof(double));
    double *yt = calloc((size_t)n * MAX_BUDGETS, sizeof(double)); /* log y tics */
    char(*labels)[32] = calloc((size_t)n * MAX_BUDGETS, sizeof *labels);
    const char **tlab = calloc((size_t)n * MAX_BUDGETS, sizeof(char *));
    char(*titles)[160] = calloc((size_t)n, sizeof *titles);
    static char arm_titles[N_ARMS][48];
    if (!ax || !cu || !vals || !tics || !yt || !labels || !tlab || !titles) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    for (int a = 0; a < N_ARMS; a++)
        snprintf(arm_titles[a], sizeof arm_titles[a], "%s (%d sink%s)", arms[a].method,
                 arms[a].sinks, arms[a].sinks == 1 ? "" : "s");
    for (int p = 0; p < n; p++) {
        const struct sl_panel *P = &S->p[p];
        double *tc = &tics[p * MAX_BUDGETS], lo = INFINITY, hi = -INFINITY;
        double ylo = P->dense_ppl, yhi = P->dense_ppl;
        for (int bi = 0; bi < P->n_b; bi++) {
            char rl[12], c[16];
            ab_ratio_label(P->b[bi], rl, sizeof rl);
            ab_rep_compression_label(P->b[bi], c, sizeof c);
            snprintf(labels[p * MAX_BUDGETS + bi], sizeof labels[0], "%s\n%s", rl, c);
            tlab[p * MAX_BUDGETS + bi] = labels[p * MAX_BUDGETS + bi];
            tc[bi] = P->b[bi];
            lo = fmin(lo, P->b[bi]), hi = fmax(hi, P->b[bi]);
        }
        struct ab_gp_curve *pc = &cu[p * (N_ARMS + 1)];
        int nc = 0;
        for (int a = 0; a < N_ARMS; a++) {
            double *x = &vals[((size_t)p * (N_ARMS + 1) + (size_t)a) * 2 * MAX_BUDGETS];
            double *y = x + MAX_BUDGETS;
            int64_t m = 0;
            for (int bi = P->n_b - 1; bi >= 0; bi--) { /* ascending x */
                const struct ab_model_row *r = P->row[bi][a];
                if (!r) continue;
                x[m] = r->flop_ratio > 0 ? r->flop_ratio : P->b[bi];
                y[m] = ppl_at(P, bi, a);
                if (isfinite(y[m])) {
                    ylo = isfinite(ylo) ? fmin(ylo, y[m]) : y[m];
                    yhi = isfinite(yhi) ? fmax(yhi, y[m]) : y[m];
                    lo = fmin(lo, x[m]), hi = fmax(hi, x[m]);
                }
                m++;
            }
            if (m)
                pc[nc++] = (struct ab_gp_curve){
                    .title = arm_titles[a], .style = a, .n = m, .x = x, .y = y};
        }
        if (!isfinite(lo)) lo = 0.5, hi = 1;
        double xmin = lo / 1.35, xmax = hi * 1.35;
        if (isfinite(P->dense_ppl)) {
            double *x = &vals[((size_t)p * (N_ARMS + 1) + N_ARMS) * 2 * MAX_BUDGETS];
            double *y = x + MAX_BUDGETS;
            x[0] = xmin, x[1] = xmax, y[0] = y[1] = P->dense_ppl;
            pc[nc++] = (struct ab_gp_curve){
                .title = "dense", .style = AB_GP_REFLINE, .n = 2, .x = x, .y = y};
        }
        snprintf(titles[p], sizeof titles[0], "%.80s - %s%s", base_name(P->input), P->phase,
                 P->stride > 0 ? P->bos ? " (windows, BOS first)" : " (windows, no BOS)" : "");
        /* a wide range reads better on a log axis */
        int logy = ylo > 0 && yhi / ylo > 5;
        double pad = 0.08 * (yhi - ylo) + 1e-9 * fabs(yhi); /* room around the lines */
        double ymin = logy ? ylo / 1.25 : ylo - pad, ymax = logy ? yhi * 1.25 : yhi + pad;
        ax[p] = (struct ab_gp_axes){
            .title = titles[p],
            .xlabel = "achieved FLOP ratio of attention (log)",
            .ylabel = logy ? "perplexity (log)" : "perplexity",
            .logx = 1,
            .logy = logy,
            .xmin = xmin,
            .xmax = xmax,
            .ymin = ymin,
            .ymax = ymax,
            .n_xtics = P->n_b,
            .xtics = tc,
            .xtic_labels = &tlab[p * MAX_BUDGETS],
            .n_ytics = logy ? log_tics(ymin, ymax, &yt[p * MAX_BUDGETS], MAX_BUDGETS) : 0,
            .ytics = &yt[p * MAX_BUDGETS],
            .n_curves = nc,
            .curves = pc};
    }
    int cols = n > 1 ? 2 : 1, rows = (n + cols - 1) / cols;
    char ftitle[200];
    snprintf(ftitle, sizeof ftitle,
             "StreamingLLM on %.60s: perplexity against FLOP ratio, "
             "window vs sinks + window",
             S->model ? base_name(S->model) : "the model");
    struct ab_gp_figure fig = {.name = "streaming-llm-ppl",
                               .title = ftitle,
                               .rows = rows,
                               .cols = cols,
                               .n_panels = n,
                               .panels = ax,
                               .width = 1300,
                               .height = 60 + 420 * rows};
    if ((rc = ab_gp_figure_write(R->o->dir, &fig)) != AB_OK) goto done;
    ab_rep_announce_pair(R, "streaming-llm-ppl");
    rc = ab_rep_add_fig(R, SEC_STUDY, 1, "streaming-llm-ppl.png",
                        "Perplexity inside the model against the achieved FLOP ratio of "
                        "attention, one panel per input and phase: the sliding window alone (0 "
                        "sinks) and sink + window with 1, 4 and 16 sinks at the same budgets; "
                        "the dashed line is dense. Infeasible points are left out.");
done:
    free(ax), free(cu), free(vals), free(tics), free(yt), free(labels), free(tlab), free(titles);
    return rc;
}

/* ------------------------------------------------------------------ the section */

static void intro(const struct sl *S, FILE *f)
{
    fputs("## Findings: StreamingLLM (attention sinks)\n\n"
          "StreamingLLM (Xiao et al., \"Efficient Streaming Language Models with Attention "
          "Sinks\", arXiv 2309.17453) keeps the first tokens (the attention sinks) beside a "
          "sliding window: with them perplexity stays near dense where the window alone "
          "breaks, and its Table 2 varies the number of sinks at an equal cache size. Here: "
          "perplexity inside ",
          f);
    fprintf(f, "%s", S->model ? base_name(S->model) : "the model");
    fputs(" (`attnbench eval-model`) with every head replaced by the window alone (`window`, 0 "
          "sinks) or by 1, 4 or 16 sinks + window (`streaming-1`, `streaming`, "
          "`streaming-16`) at the same target FLOP ratio (more sinks, a shorter window).\n\n",
          f);
}

/* The panel of the same input and phase as P scored in sliding windows with BOS first (P
 * without), or NULL. */
static const struct sl_panel *bos_twin(const struct sl *S, const struct sl_panel *P)
{
    if (P->stride <= 0 || P->bos) return NULL;
    for (int i = 0; i < S->n_panels; i++) {
        const struct sl_panel *Q = &S->p[i];
        if (Q->bos && Q->stride > 0 && !strcmp(Q->input, P->input) && !strcmp(Q->phase, P->phase))
            return Q;
    }
    return NULL;
}

/* Where one input was scored in sliding windows with and without BOS first: what the BOS
 * token does to dense, to the window alone and to sink + window, one sentence per phase at
 * the lowest budget both scored. */
static void finding_bos(const struct sl *S, FILE *f)
{
    int any = 0;
    for (int p = 0; p < S->n_panels; p++) {
        const struct sl_panel *P = &S->p[p], *Q = bos_twin(S, P);
        if (!Q) continue;
        int bp = -1, bq = -1; /* the lowest budget with both arms in both panels */
        for (int i = 0; i < P->n_b; i++)
            for (int j = 0; j < Q->n_b; j++)
                if (P->b[i] == Q->b[j] && isfinite(ppl_at(P, i, ARM_WINDOW)) &&
                    isfinite(ppl_at(P, i, ARM_STREAMING)) && isfinite(ppl_at(Q, j, ARM_WINDOW)) &&
                    isfinite(ppl_at(Q, j, ARM_STREAMING)))
                    bp = i, bq = j;
        if (bp < 0) continue;
        if (!any++) fputs("### Windows with and without BOS first\n\n", f);
        char bw[80];
        budget_words(P->b[bp], bw, sizeof bw);
        double sp = ppl_at(P, bp, ARM_STREAMING), sq = ppl_at(Q, bq, ARM_STREAMING);
        double wp = ppl_at(P, bp, ARM_WINDOW), wq = ppl_at(Q, bq, ARM_WINDOW);
        fprintf(f, "- **%s, %s:** with BOS in place of each later window's first token, dense "
                "goes from %.4g to %.4g and sink + window (4 sinks) at %s from %.4g to %.4g, "
                "%.2fx the window alone's perplexity where it was %.2fx; the window alone %s "
                "(%.4g, %.4g). ",
                base_name(P->input), P->phase, P->dense_ppl, Q->dense_ppl, bw, sp, sq, sq / wq,
                sp / wp, fabs(wq - wp) <= 1e-3 * wp ? "does not change: its scored rows never "
                "reach the first token" : "changes little", wp, wq);
        fprintf(f, "%s\n", sq < sp && Q->dense_ppl <= P->dense_ppl
                               ? "The sinks help most when the first token is the one the model "
                                 "sinks on."
                               : "BOS first does not make the sinks more useful here.");
    }
    if (any) fputc('\n', f);
}

int ab_rep_study_streaming_llm(struct rep *R, FILE *f)
{
    struct sl *S = malloc(sizeof *S);
    if (!S) return ab_fail(AB_E_NOMEM, "out of memory");
    collect(R, S);
    intro(S, f);
    int rc = AB_OK, n_rows = 0;
    for (int i = 0; i < R->d->n_inputs; i++) n_rows += (int)R->d->inputs[i].n_model;
    if (!n_rows)
        fputs("The inputs have no /model rows (`attnbench eval-model` writes them), so the "
              "perplexity findings cannot be stated.\n\n",
              f);
    else if (!S->n_panels)
        fputs("The /model rows hold none of window, streaming-1, streaming and streaming-16 "
              "with a target budget, so the perplexity findings cannot be stated.\n\n",
              f);
    else {
        fputs("### Sink + window against the window alone\n\n", f);
        finding_overall(S, f);
        for (int p = 0; p < S->n_panels; p++) {
            finding_window(&S->p[p], f);
            finding_best(&S->p[p], f);
            finding_below(&S->p[p], f);
        }
        fputc('\n', f);
        finding_bos(S, f);
        if (S->dropped)
            fprintf(f, "(%d rows beyond %d inputs x phases or %d budgets are left out.)\n\n",
                    S->dropped, MAX_PANELS, MAX_BUDGETS);
        fputs("### Perplexity by budget\n\n", f);
        for (int p = 0; p < S->n_panels; p++) panel_table(&S->p[p], f);
        rc = ppl_figure(R, S);
    }
    sink_heads(R, f);
    fputs("Reproduce: `attnbench scenario scenarios/streaming-llm.yaml`", f);
    if (R->o->command_line) fprintf(f, "; this report: `%s`", R->o->command_line);
    fputs(".\n\n", f);
    free(S);
    return rc;
}
