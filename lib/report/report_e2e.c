/* report_e2e.c - the end-to-end part of `attnbench report` (report.h): when an input carries
 * /model rows (`attnbench eval-model`: a method replacing attention inside a real model), the
 * report gets model.csv (every row of every input, merged), two figures and a report.md section
 * "End to end (eval-model)".
 *
 *   e2e-ppl.{png,gp,tsv}  perplexity against the achieved FLOP ratio (log x), one line per
 *                         method (per method and head choice when an input has several), dense
 *                         as a horizontal reference line, one panel per (input, phase);
 *   e2e-acc.{png,gp,tsv}  next-token top-1 accuracy in the same layout, or the copy accuracy
 *                         (the second copy of the copy task) for copy-task inputs.
 *
 * The section has one table per input, rows in the order of the figures, and beside each row's
 * rel_l2 inside the model the attention-level mean rel_l2 that `run` measured for the same
 * method, phase and target FLOP ratio: over the feasible heads of the run's captured workload of
 * the same input (a capture records its input in its description: "input: text 'PATH'" or
 * "input: copy task R=N ..."), or, when no captured workload matches, over every workload of the
 * run (marked with *, as the /summary row). Numbers: ratios with %.3f, ppl with %.4g, accuracies
 * with
 * %.3f, rel_l2 with %.3g, "-" for not defined. Nothing here reads a clock. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "io/csv.h"
#include "io/h5_workload.h"
#include "methods/method.h"
#include "report/gnuplot.h"
#include "report/report_internal.h"

/* A panel: one (input, phase); its series: one (method, heads) each. */
struct e2e_series {
    const char *method, *heads;
    const char *kind; /* the rows' budget_kind: a series per kind (flops, tokens, bytes) */
    int style;
    int64_t *rows; /* indices into R->e2e, sorted by achieved ratio */
    int64_t n;
};

struct e2e_panel {
    const char *input, *phase;
    int copy; /* the input is a copy task: accuracy is copy_acc */
    double dense_ppl, dense_acc;
    int n_series;
    struct e2e_series *series;
};

struct e2e {
    int n_panels;
    struct e2e_panel *panels;
};

static int same(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

static const char *kind_of(const struct ab_model_row *r)
{
    return r->budget_kind ? r->budget_kind : "";
}

/* "tokens" and "bytes" rows are told apart from the FLOP ones (flops and direct knobs). */
static int kv_kind(const char *kind)
{
    return !strcmp(kind, "tokens") || !strcmp(kind, "bytes");
}

static int method_style(const char *name)
{
    for (int i = 0; i < ab_method_count(); i++)
        if (!strcmp(ab_method_at(i)->name, name)) return i;
    return ab_method_count();
}

static int phase_rank(const char *p)
{
    return !strcmp(p, "prefill") ? 0 : !strcmp(p, "decode") ? 1 : 2;
}

static void e2e_free(struct e2e *E)
{
    for (int p = 0; p < E->n_panels; p++) {
        for (int s = 0; s < E->panels[p].n_series; s++) free(E->panels[p].series[s].rows);
        free(E->panels[p].series);
    }
    free(E->panels);
    memset(E, 0, sizeof *E);
}

static int cmp_ratio(const void *a, const void *b, void *ctx)
{
    const struct rep *R = ctx;
    double x = R->e2e[*(const int64_t *)a]->flop_ratio, y = R->e2e[*(const int64_t *)b]->flop_ratio;
    if (x != y && !(isnan(x) && isnan(y))) return isnan(x) ? 1 : isnan(y) ? -1 : x < y ? -1 : 1;
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    return (i > j) - (i < j);
}

/* Groups R->e2e into panels (input order of first appearance; prefill, decode, others) and
 * series (registry order, then head choice in order of first appearance). */
static int e2e_group(const struct rep *R, struct e2e *E)
{
    int64_t n = R->n_e2e;
    E->panels = calloc((size_t)n + 1, sizeof *E->panels);
    if (!E->panels) return ab_fail(AB_E_NOMEM, "out of memory");
    /* panels: inputs in order of first appearance, then prefill, decode, other phases */
    int *order = malloc(sizeof(int) * ((size_t)n + 1));
    if (!order) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        const struct ab_model_row *r = R->e2e[i];
        int found = 0, input = -1;
        for (int p = 0; p < E->n_panels && !found; p++) {
            if (strcmp(E->panels[p].input, r->workload)) continue;
            if (input < 0) input = order[p];
            found = !strcmp(E->panels[p].phase, r->phase);
        }
        if (found) continue;
        if (input < 0) {
            input = 0;
            for (int p = 0; p < E->n_panels; p++) input = AB_MAX(input, order[p] + 1);
        }
        order[E->n_panels] = input;
        E->panels[E->n_panels++] = (struct e2e_panel){
            .input = r->workload, .phase = r->phase, .dense_ppl = r->dense_ppl, .dense_acc = NAN};
    }
    for (int a = 1; a < E->n_panels; a++) /* insertion sort: stable */
        for (int b = a; b > 0; b--) {
            int kb = order[b] * 4 + phase_rank(E->panels[b].phase);
            int ka = order[b - 1] * 4 + phase_rank(E->panels[b - 1].phase);
            if (kb >= ka) break;
            struct e2e_panel t = E->panels[b];
            E->panels[b] = E->panels[b - 1], E->panels[b - 1] = t;
            int o = order[b];
            order[b] = order[b - 1], order[b - 1] = o;
        }
    free(order);
    for (int p = 0; p < E->n_panels; p++) {
        struct e2e_panel *P = &E->panels[p];
        P->series = calloc((size_t)n + 1, sizeof *P->series);
        if (!P->series) return ab_fail(AB_E_NOMEM, "out of memory");
        for (int64_t i = 0; i < n; i++) {
            const struct ab_model_row *r = R->e2e[i];
            if (strcmp(r->workload, P->input) || strcmp(r->phase, P->phase)) continue;
            P->copy |= isfinite(r->copy_acc) || isfinite(r->dense_copy_acc);
            const char *heads = r->heads ? r->heads : "";
            int s = -1;
            const char *kind = kv_kind(kind_of(r)) ? kind_of(r) : "";
            for (int k = 0; k < P->n_series && s < 0; k++)
                if (!strcmp(P->series[k].method, r->method) && !strcmp(P->series[k].heads, heads) &&
                    !strcmp(P->series[k].kind, kind))
                    s = k;
            if (s < 0) {
                s = P->n_series++;
                P->series[s] = (struct e2e_series){.method = r->method, .heads = heads,
                                                   .kind = kind,
                                                   .style = method_style(r->method)};
                if (!(P->series[s].rows = malloc(sizeof(int64_t) * (size_t)n)))
                    return ab_fail(AB_E_NOMEM, "out of memory");
            }
            P->series[s].rows[P->series[s].n++] = i;
        }
        /* registry order; a method's head choices keep their order of appearance */
        for (int a = 1; a < P->n_series; a++)
            for (int b = a; b > 0 && P->series[b].style < P->series[b - 1].style; b--) {
                struct e2e_series t = P->series[b];
                P->series[b] = P->series[b - 1], P->series[b - 1] = t;
            }
        /* same method, another head choice: same colour, another dash (12 colours per round) */
        for (int a = 1; a < P->n_series; a++) {
            int k = 0;
            for (int b = 0; b < a; b++) k += !strcmp(P->series[b].method, P->series[a].method);
            P->series[a].style += 12 * k;
        }
        for (int s = 0; s < P->n_series; s++)
            qsort_r(P->series[s].rows, (size_t)P->series[s].n, sizeof(int64_t), cmp_ratio,
                    (void *)R);
        const struct ab_model_row *r0 = R->e2e[P->series[0].rows[0]];
        P->dense_acc = P->copy ? r0->dense_copy_acc : r0->dense_acc;
    }
    return AB_OK;
}

/* Whether the captured workload described by desc was captured from eval-model input `input`
 * (a text path, or "copy-R"). */
static int capture_of(const char *desc, const char *input)
{
    if (!desc) return 0;
    char want[4200];
    long long r;
    char tail;
    if (sscanf(input, "copy-%lld%c", &r, &tail) == 1)
        snprintf(want, sizeof want, "input: copy task R=%lld seed ", r);
    else
        snprintf(want, sizeof want, "input: text '%s'", input);
    return strstr(desc, want) != NULL;
}

/* Fills R->e2e_attn: the attention-level mean rel_l2 of the run cells of each row's method,
 * phase and target, on the matching captured workload when there is one. */
static int e2e_attention(struct rep *R)
{
    char **desc = calloc((size_t)R->n_w + 1, sizeof(char *));
    if (!desc) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int w = 0; w < R->n_w; w++) {
        struct ab_workload meta;
        memset(&meta, 0, sizeof meta);
        if (ab_h5_workload_read_meta(R->wname[w], &meta) == AB_OK && meta.source &&
            !strcmp(meta.source, "capture") && meta.description)
            desc[w] = strdup(meta.description);
        ab_workload_free(&meta);
    }
    for (int64_t i = 0; i < R->n_e2e; i++) {
        const struct ab_model_row *row = R->e2e[i];
        int match = -1;
        for (int w = 0; w < R->n_w && match < 0; w++)
            if (capture_of(desc[w], row->workload)) match = w;
        double sum = 0;
        int64_t cnt = 0;
        for (int64_t c = 0; c < R->r->n_cells; c++) {
            const struct ab_cell *cell = &R->r->cells[c];
            if (match >= 0 && R->cw[c] != match) continue;
            if (!cell->feasible || !isfinite(cell->rel_l2)) continue;
            if (strcmp(cell->method, row->method) || strcmp(cell->phase, row->phase) ||
                !same(cell->target_ratio, row->target_ratio) ||
                kv_kind(kind_of(row)) != kv_kind(cell->budget_kind ? cell->budget_kind : "") ||
                (kv_kind(kind_of(row)) && (strcmp(kind_of(row), cell->budget_kind) ||
                                           !same(cell->target_tokens, row->target_tokens))))
                continue;
            sum += cell->rel_l2, cnt++;
        }
        R->e2e_attn[i] = cnt ? sum / (double)cnt : NAN;
        R->e2e_attn_all[i] = match < 0;
    }
    for (int w = 0; w < R->n_w; w++) free(desc[w]);
    free(desc);
    return AB_OK;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* e2e-ppl (acc == 0) or e2e-acc (acc == 1). */
static int e2e_figure(struct rep *R, const struct e2e *E, int acc)
{
    static const char *const col_names[] = {"flop_ratio", "value", "target_ratio"};
    int n_series = 0;
    for (int p = 0; p < E->n_panels; p++) n_series += E->panels[p].n_series + 1;
    struct ab_gp_panel *panels = calloc((size_t)E->n_panels, sizeof *panels);
    struct ab_gp_series *series = calloc((size_t)n_series, sizeof *series);
    const double **colp = calloc((size_t)n_series * 3, sizeof(double *));
    double *vals = calloc((size_t)(R->n_e2e + 2 * E->n_panels) * 3, sizeof(double));
    char(*titles)[96] = calloc((size_t)(n_series + E->n_panels), sizeof *titles);
    int rc = AB_OK;
    if (!panels || !series || !colp || !vals || !titles) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    double x_min = 1;
    for (int64_t i = 0; i < R->n_e2e; i++)
        if (R->e2e[i]->flop_ratio > 0) x_min = fmin(x_min, R->e2e[i]->flop_ratio);
    int ns = 0, nt = 0;
    size_t nv = 0;
    for (int p = 0; p < E->n_panels; p++) {
        const struct e2e_panel *P = &E->panels[p];
        snprintf(titles[nt], sizeof titles[0], "%.60s - %s%s", base_name(P->input), P->phase,
                 acc ? (P->copy ? " (copy_acc)" : " (acc)") : "");
        panels[p] = (struct ab_gp_panel){.title = titles[nt++], .series = &series[ns]};
        /* dense: a horizontal line across the ratios drawn */
        double *v = &vals[nv];
        v[0] = x_min, v[1] = 1;
        v[2] = v[3] = acc ? P->dense_acc : P->dense_ppl;
        v[4] = v[5] = 1;
        colp[3 * ns] = v, colp[3 * ns + 1] = v + 2, colp[3 * ns + 2] = v + 4;
        nv += 6;
        series[ns] = (struct ab_gp_series){
            .title = "dense", .style = method_style("dense"), .n = 2, .cols = &colp[3 * ns]};
        ns++, panels[p].n_series++;
        for (int s = 0; s < P->n_series; s++) {
            const struct e2e_series *S = &P->series[s];
            double *x = &vals[nv], *y = x + S->n, *t = y + S->n;
            for (int64_t k = 0; k < S->n; k++) {
                const struct ab_model_row *r = R->e2e[S->rows[k]];
                x[k] = r->flop_ratio;
                y[k] = !acc ? r->ppl : P->copy ? r->copy_acc : r->acc;
                t[k] = r->target_ratio;
            }
            nv += (size_t)(3 * S->n);
            colp[3 * ns] = x, colp[3 * ns + 1] = y, colp[3 * ns + 2] = t;
            int several = 0;
            for (int o = 0; o < P->n_series; o++)
                several |= o != s && !strcmp(P->series[o].method, S->method);
            if (several)
                snprintf(titles[nt], sizeof titles[0], "%s%s%s (%.60s)", S->method,
                         S->kind[0] ? " at " : "", S->kind, S->heads);
            else
                snprintf(titles[nt], sizeof titles[0], "%s%s%s", S->method,
                         S->kind[0] ? " at " : "", S->kind);
            series[ns] = (struct ab_gp_series){
                .title = titles[nt++], .style = S->style, .n = S->n, .cols = &colp[3 * ns]};
            ns++, panels[p].n_series++;
        }
    }
    const char *name = acc ? "e2e-acc" : "e2e-ppl";
    struct ab_gp_lines pl = {
        .name = name,
        .title = acc ? "next-token accuracy inside the model against FLOP ratio (eval-model)"
                     : "perplexity inside the model against FLOP ratio (eval-model)",
        .xlabel = "achieved FLOP ratio of the replaced heads (log)",
        .ylabel = acc ? "top-1 accuracy (copy_acc on copy tasks)" : "perplexity",
        .logx = 1,
        .logy = 0,
        .n_cols = 3,
        .col_names = col_names,
        .tail_col = -1,
        .ymin = acc ? 0 : NAN,
        .ymax = acc ? 1.05 : NAN,
        .n_panels = E->n_panels,
        .panels = panels,
        .width = 450 * E->n_panels + 250,
        .height = 500};
    if ((rc = ab_gp_lines_write(R->o->dir, &pl)) != AB_OK) goto done;
    char buf[64];
    snprintf(buf, sizeof buf, "%s.tsv", name);
    ab_rep_announce(R, buf);
    snprintf(buf, sizeof buf, "%s.gp", name);
    ab_rep_announce(R, buf);
    snprintf(buf, sizeof buf, "%s.png", name);
    rc = acc ? ab_rep_add_fig(R, SEC_E2E, 1, buf,
                              "Top-1 next-token accuracy with the method inside the model "
                              "against its achieved FLOP ratio, one panel per input and phase; "
                              "for a copy task the accuracy on the second copy (copy_acc); the "
                              "black line is dense.")
             : ab_rep_add_fig(R, SEC_E2E, 1, buf,
                              "Perplexity with the method inside the model (every replaced "
                              "head at the target) against its achieved FLOP ratio, one panel "
                              "per input and phase; the black line is dense.");
done:
    free(panels), free(series), free(colp), free(vals), free(titles);
    return rc;
}

int ab_rep_e2e(struct rep *R)
{
    int64_t n = 0;
    for (int i = 0; i < R->d->n_inputs; i++) n += R->d->inputs[i].n_model;
    if (!n) return AB_OK;
    R->e2e = malloc(sizeof *R->e2e * (size_t)n);
    R->e2e_attn = malloc(sizeof(double) * (size_t)n);
    R->e2e_attn_all = malloc((size_t)n);
    struct ab_model_row *flat = malloc(sizeof *flat * (size_t)n);
    if (!R->e2e || !R->e2e_attn || !R->e2e_attn_all || !flat) {
        free(flat);
        return ab_fail(AB_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < R->d->n_inputs; i++)
        for (int64_t k = 0; k < R->d->inputs[i].n_model; k++) {
            const struct ab_model_row *row = &R->d->inputs[i].model[k];
            if (!ab_rep_keep(R, row->method, row->family)) continue;
            flat[R->n_e2e] = R->d->inputs[i].model[k];
            R->e2e[R->n_e2e++] = &R->d->inputs[i].model[k];
        }
    if (!R->n_e2e) { /* the filter kept none */
        free(flat);
        return AB_OK;
    }
    /* model.csv: the merged rows (a view of them: the strings stay the inputs') */
    struct ab_results view;
    ab_results_init(&view);
    view.model = flat, view.n_model = R->n_e2e;
    char *path = ab_path_join(R->o->dir, "model", ".csv");
    int rc = path ? ab_results_write_model_csv(path, &view) : ab_fail(AB_E_NOMEM, "out of memory");
    free(path);
    free(flat);
    if (rc != AB_OK) return rc;
    ab_rep_announce(R, "model.csv");
    if ((rc = e2e_attention(R)) != AB_OK) return rc;
    struct e2e E = {0};
    if (!(rc = e2e_group(R, &E)) && !(rc = e2e_figure(R, &E, 0))) rc = e2e_figure(R, &E, 1);
    e2e_free(&E);
    return rc;
}

/* qsort_r order of row indices for the tables: target descending (NaN last), then ratio. */
static int cmp_target_desc(const void *a, const void *b, void *ctx)
{
    const struct rep *R = ctx;
    double x = R->e2e[*(const int64_t *)a]->target_ratio,
           y = R->e2e[*(const int64_t *)b]->target_ratio;
    if (x != y && !(isnan(x) && isnan(y))) return isnan(x) ? 1 : isnan(y) ? -1 : x > y ? -1 : 1;
    return -cmp_ratio(a, b, ctx);
}

static void fmt_num(char *buf, size_t cap, const char *fmt, double x)
{
    if (isfinite(x))
        snprintf(buf, cap, fmt, x);
    else
        snprintf(buf, cap, "-");
}

void ab_rep_e2e_md(const struct rep *R, FILE *f)
{
    if (!R->n_e2e) return;
    struct e2e E = {0};
    if (e2e_group(R, &E) != AB_OK) { /* out of memory: say so rather than half a table */
        fputs("(out of memory while tabulating the rows)\n\n", f);
        e2e_free(&E);
        return;
    }
    fprintf(f,
            "%lld rows of `attnbench eval-model`: each method replaces attention in the "
            "listed heads of the model (every layer and head when `all`), fitted per head to "
            "the target FLOP ratio (or, B=R and T=N, to a decode bytes ratio or tokens per step: "
            "the ratio column then adds the mean bytes ratio or tokens per step over the "
            "heads), and the model is scored end to end next to dense on the same input. ppl is the perplexity (dense in brackets), acc the top-1 next-token "
            "accuracy, copy_acc the accuracy on the second copy of a copy task; rel_l2 (model) "
            "is the attention-level error of the replaced heads inside that pass, and "
            "rel_l2 (run) the mean over heads that `run` measured for the same method, phase "
            "and target on the captured workload of the same input (* over every workload of "
            "the run when no capture of that input is among them; - when the run has no such "
            "cell). The merged rows are in [model.csv](model.csv).\n\n",
            (long long)R->n_e2e);
    for (int p = 0; p < E.n_panels; p++) {
        const struct e2e_panel *P = &E.panels[p];
        int first = p == 0 || strcmp(E.panels[p - 1].input, P->input);
        if (first) {
            fprintf(f, "### %s\n\n", P->input);
            fputs("| method | phase | target | ratio | heads | ppl (dense) | acc (dense) | "
                  "copy_acc (dense) | rel_l2 (model) | rel_l2 (run) |\n"
                  "|---|---|---|---|---|---|---|---|---|---|\n",
                  f);
        }
        for (int s = 0; s < P->n_series; s++) {
            struct e2e_series *S = &P->series[s];
            qsort_r(S->rows, (size_t)S->n, sizeof(int64_t), cmp_target_desc, (void *)R);
            for (int64_t k = 0; k < S->n; k++) {
                const struct ab_model_row *r = R->e2e[S->rows[k]];
                int64_t i = S->rows[k];
                char tl[32], ratio[64], ppl[64], dppl[32], acc[32], dacc[32], cacc[32], dcacc[32],
                    rl[32], ra[40];
                ab_ratio_label(r->target_ratio, tl, sizeof tl);
                if (!strcmp(kind_of(r), "tokens"))
                    snprintf(tl, sizeof tl, "T=%.0f", r->target_tokens);
                else if (!strcmp(kind_of(r), "bytes")) {
                    char b[24];
                    ab_ratio_label(r->target_ratio, b, sizeof b);
                    snprintf(tl, sizeof tl, "B=%s", b);
                }
                fmt_num(ratio, sizeof ratio, "%.3f", r->flop_ratio);
                if (kv_kind(kind_of(r))) { /* and the measure the heads were fitted to */
                    size_t len = strlen(ratio);
                    int tok = !strcmp(kind_of(r), "tokens");
                    snprintf(ratio + len, sizeof ratio - len, tok ? " (%.1f tokens/step)" : " (bytes %.3f)",
                             tok ? r->tokens_step : r->bytes_ratio);
                }
                if (!r->feasible) {
                    size_t len = strlen(ratio);
                    snprintf(ratio + len, sizeof ratio - len, " (%lld/%lld heads feasible)",
                             (long long)r->heads_feasible, (long long)r->n_heads);
                }
                fmt_num(ppl, sizeof ppl, "%.4g", r->ppl);
                fmt_num(dppl, sizeof dppl, "%.4g", r->dense_ppl);
                fmt_num(acc, sizeof acc, "%.3f", r->acc);
                fmt_num(dacc, sizeof dacc, "%.3f", r->dense_acc);
                fmt_num(cacc, sizeof cacc, "%.3f", r->copy_acc);
                fmt_num(dcacc, sizeof dcacc, "%.3f", r->dense_copy_acc);
                fmt_num(rl, sizeof rl, "%.3g", r->rel_l2);
                fmt_num(ra, sizeof ra, "%.3g", R->e2e_attn[i]);
                if (isfinite(R->e2e_attn[i]) && R->e2e_attn_all[i]) strcat(ra, "*");
                fprintf(f, "| %s | %s | %s | %s | %s | %s (%s) | %s (%s) | ", r->method, r->phase,
                        tl, ratio, r->heads ? r->heads : "", ppl, dppl, acc, dacc);
                if (isfinite(r->copy_acc) || isfinite(r->dense_copy_acc))
                    fprintf(f, "%s (%s) | ", cacc, dcacc);
                else
                    fputs("- | ", f);
                fprintf(f, "%s | %s |\n", rl, ra);
            }
        }
        int last = p + 1 == E.n_panels || strcmp(E.panels[p + 1].input, P->input);
        if (last) fputs("\n", f);
    }
    e2e_free(&E);
}

void ab_rep_e2e_free(struct rep *R)
{
    free(R->e2e), free(R->e2e_attn), free(R->e2e_attn_all);
    R->e2e = NULL, R->e2e_attn = NULL, R->e2e_attn_all = NULL;
    R->n_e2e = 0;
}
