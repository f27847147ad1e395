/* report_md.c - report.md, the page of `attnbench report` (report.h) that links everything. It
 * opens with the study's answers computed from the data (report_answers.c), the decode
 * accounting rule and the infeasible methods with their reasons; then every figure by section
 * with one line on what it shows, the values left outside the plotted ranges, what the inputs
 * hold, the best method per phase and budget, the heads that break each method, the
 * end-to-end rows, the head statistics, the tables, and the provenance of every input. It is
 * written last, from the index, figures and notes report.c built (report_internal.h), so it
 * says which figures gnuplot rendered; every number in it comes from the kept cells. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/method.h"
#include "report/gnuplot.h"
#include "report/report_internal.h"

/* 1 when file is a table (.tsv): linked, not shown. */
static int is_table(const char *file)
{
    size_t n = strlen(file);
    return n > 4 && !strcmp(file + n - 4, ".tsv");
}

static void md_figs(const struct rep *R, FILE *f, int section)
{
    for (int i = 0; i < R->n_fig; i++) {
        const struct fig *g = &R->fig[i];
        if (g->section != section || is_table(g->file)) continue;
        if (g->rendered)
            fprintf(f, "![%s](%s)\n\n", g->file, g->file);
        else
            fprintf(f, "`%s` (not rendered: %s)\n\n", g->file,
                    R->gnuplot ? "gnuplot failed on its script"
                               : "gnuplot was not found; run the .gp script of the same name");
        fprintf(f, "*%s*", g->file);
        fputs(" - ", f);
        fputs(g->caption, f);
        fputs("\n\n", f);
    }
    int n = 0;
    for (int i = 0; i < R->n_fig; i++) {
        const struct fig *g = &R->fig[i];
        if (g->section == section && is_table(g->file))
            fprintf(f, "%s[%s](%s)", n++ ? ", " : "Tables: ", g->caption, g->file);
    }
    if (n) fputs(".\n\n", f);
    for (int i = 0; i < R->notes[section].n; i++) fprintf(f, "%s\n\n", R->notes[section].s[i]);
}

/* A cell as "L1 H5" plus workload and profile when known. */
static void head_words(const struct rep *R, int64_t c, char *buf, size_t cap)
{
    const struct ab_cell *cell = &R->r->cells[c];
    const char *prof = ab_rep_profile_of(R, R->cw[c], cell->layer, cell->head);
    size_t n = 0;
    if (R->n_w > 1) {
        const char *w = R->wname[R->cw[c]], *slash = strrchr(w, '/');
        n += (size_t)snprintf(buf + n, cap - n, "%s ", slash ? slash + 1 : w);
    }
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "L%lld H%lld", (long long)cell->layer,
                              (long long)cell->head);
    if (prof && n < cap) n += (size_t)snprintf(buf + n, cap - n, " (%s)", prof);
    else if (!isnan(cell->task_acc) && n < cap)
        n += (size_t)snprintf(buf + n, cap - n, " (tasks)");
    if (n < cap) snprintf(buf + n, cap - n, " %.3g", cell->rel_l2);
}

static void md_best(const struct rep *R, FILE *f)
{
    fputs("## Best method per phase and budget\n\n", f);
    if (!R->n_b && R->kvb.n_cells) {
        fputs("No FLOP-ratio budgets in these results (tokens and bytes budgets only: see "
              "\"Decode budgets in tokens and bytes\").\n\n", f);
        return;
    }
    if (!R->n_b) {
        fputs("No budgets in these results (a run at fixed knobs): nothing to rank.\n\n", f);
        return;
    }
    fputs("Among the methods feasible on every head of the phase at that budget (means over "
          "heads; a method with no knob competes where its fixed cost fits). Budgets here are "
          "FLOP ratios (budget_kind flops); tokens and bytes budgets have their own section.\n\n",
          f);
    fputs("| phase | budget (FLOP ratio) | best by rel_l2 | rel_l2 mean | rel_l2 p90 | best by task_acc | "
          "task_acc mean | feasible methods | note |\n|---|---|---|---|---|---|---|---|---|\n",
          f);
    for (int pi = 0; pi < R->n_p; pi++)
        for (int bi = 0; bi < R->n_b; bi++) {
            double t = R->b[bi];
            char rl[32];
            ab_ratio_label(t, rl, sizeof rl);
            int part_r, part_t, ti;
            int br = ab_rep_best_at(R, pi, t, M_REL_L2, &part_r),
                bt = ab_rep_best_at(R, pi, t, M_TASK_ACC, &part_t);
            int n_feas = 0, n_run = 0;
            for (int mi = 0; mi < R->n_m; mi++) {
                int s = ab_rep_group_at(R, mi, pi, t, &ti);
                if (ti < 0) continue;
                n_run++;
                n_feas += s >= 0 &&
                          R->r->summary[s].n_heads == R->grp_cells[ab_rep_gidx(R, mi, pi, ti)];
            }
            if (!n_run) continue;
            fprintf(f, "| %s | %s | ", R->phase[pi], rl);
            if (br >= 0) {
                int s = ab_rep_group_at(R, br, pi, t, &ti);
                fprintf(f, "%s | %.4g | %.4g | ", R->m[br].name, R->r->summary[s].rel_l2_mean,
                        R->r->summary[s].rel_l2_p90);
            } else {
                fputs("none | | | ", f);
            }
            if (bt >= 0 && R->r->summary[ab_rep_group_at(R, bt, pi, t, &ti)].task_acc_mean > 0) {
                int s = ab_rep_group_at(R, bt, pi, t, &ti);
                fprintf(f, "%s | %.3g | ", R->m[bt].name, R->r->summary[s].task_acc_mean);
            } else if (bt >= 0) {
                fputs("none solves a task | 0 | ", f);
            } else {
                fputs("n/a | | ", f);
            }
            fprintf(f, "%d of %d | ", n_feas, n_run);
            if (part_r >= 0) {
                int s = ab_rep_group_at(R, part_r, pi, t, &ti);
                fprintf(f, "%s has rel_l2 %.3g on the %lld of %lld heads it reaches",
                        R->m[part_r].name, R->r->summary[s].rel_l2_mean,
                        (long long)R->r->summary[s].n_heads,
                        (long long)R->grp_cells[ab_rep_gidx(R, part_r, pi, ti)]);
            }
            fputs(" |\n", f);
        }
    fputs("\n", f);
}

/* qsort_r order of cell indices: rel_l2 descending, then index. */
static int cmp_rel_desc(const void *a, const void *b, void *ctx)
{
    const struct ab_results *r = ctx;
    double x = r->cells[*(const int64_t *)a].rel_l2, y = r->cells[*(const int64_t *)b].rel_l2;
    if (x != y) return x > y ? -1 : 1;
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    return (i > j) - (i < j);
}

static int md_failing(const struct rep *R, FILE *f)
{
    if (isnan(R->B)) return AB_OK;
    char rl[32];
    ab_ratio_label(R->B, rl, sizeof rl);
    fprintf(f, "## Heads that break each method (rel_l2 at %s)\n\n", rl);
    fprintf(f, "The three feasible heads with the largest rel_l2 of each method at FLOP ratio %s "
               "(layer, head%s, rel_l2), and the heads where it could not meet the budget.\n\n",
            rl, R->have_wl && R->wl.profile ? ", planted profile" : "");
    fputs("| method | phase | mean rel_l2 | worst heads | infeasible heads |\n"
          "|---|---|---|---|---|\n",
          f);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)(R->r->n_cells + 1));
    if (!idx) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int pi = 0; pi < R->n_p; pi++)
        for (int mi = 0; mi < R->n_m; mi++) {
            int ti, s = ab_rep_group_at(R, mi, pi, R->B, &ti);
            if (ti < 0) continue;
            int64_t n = 0, n_inf = 0, all = 0;
            for (int64_t c = 0; c < R->r->n_cells; c++) {
                if (R->cm[c] != mi || R->cp[c] != pi || R->ct[c] != ti) continue;
                all++;
                if (!R->r->cells[c].feasible) n_inf++;
                else if (isfinite(R->r->cells[c].rel_l2)) idx[n++] = c;
            }
            qsort_r(idx, (size_t)n, sizeof(int64_t), cmp_rel_desc, (void *)R->r);
            fprintf(f, "| %s | %s | ", R->m[mi].name, R->phase[pi]);
            if (s >= 0 && R->r->summary[s].n_heads > 0)
                fprintf(f, "%.3g | ", R->r->summary[s].rel_l2_mean);
            else
                fputs("- | ", f);
            for (int64_t i = 0; i < AB_MIN(n, 3); i++) {
                char buf[200];
                head_words(R, idx[i], buf, sizeof buf);
                fprintf(f, "%s%s", i ? "; " : "", buf);
            }
            if (!n) fputs("-", f);
            fprintf(f, " | %lld of %lld |\n", (long long)n_inf, (long long)all);
        }
    free(idx);
    fputs("\n", f);
    return AB_OK;
}

static void md_inputs(const struct rep *R, FILE *f)
{
    fputs("## Inputs\n\n", f);
    for (int i = 0; i < R->d->n_inputs; i++) {
        const struct ab_results *in = &R->d->inputs[i];
        fprintf(f, "- results `%s`: written by attnbench %s at %s, seed %llu, %lld threads\n",
                R->d->paths[i], in->attnbench_version ? in->attnbench_version : "?",
                in->created_utc ? in->created_utc : "?", (unsigned long long)in->seed,
                (long long)in->threads);
        fprintf(f, "  - command: `%s`\n", in->command_line && in->command_line[0]
                                               ? in->command_line : "(not recorded)");
        for (int64_t k = 0; k < in->n_workloads; k++)
            fprintf(f, "  - workload `%s`, sha256 `%s`\n", in->workloads[k],
                    in->workload_sha256 && in->workload_sha256[k] ? in->workload_sha256[k] : "?");
        if (in->scenario && in->scenario[0])
            fputs("  - from a scenario (its text is in the results file)\n", f);
    }
    if (R->have_wl)
        fprintf(f, "- maps drawn from `%s` (sha256 `%s`%s)\n", R->wl_path, R->wl_digest,
                R->wl_digest_ok ? ", as recorded" : ", NOT the recorded digest");
    fputs("\n", f);
}

/* The rows that are different attention operators, not approximations of softmax: their
 * distance from dense is a property of the operator, and their conventions matter. */
static void md_operators(const struct rep *R, FILE *f)
{
    int any = 0;
    for (int mi = 0; mi < R->n_m; mi++) {
        const struct ab_method *m = ab_method_find(R->m[mi].name);
        if (!m || !(m->flags & AB_METHOD_OPERATOR)) continue;
        if (!any++)
            fputs("Operators, not approximations of softmax (their error against dense measures "
                  "how far the operator is from softmax attention, not a loss of fidelity):\n", f);
        fprintf(f, "- **%s**: %s%s%s\n", m->name, m->summary, m->convention ? "; convention: " : "",
                m->convention ? m->convention : "");
    }
    if (any) fputs("\n", f);
}

/* The methods computed elsewhere (`attnbench ingest`): not registry rows, so their rule and
 * cost are what their provenance declares. One line each, from the root attribute `external`
 * of the results file that holds them: NAME (external: provenance), the outputs file and its
 * sha256. */
static void md_external(const struct rep *R, FILE *f)
{
    int any = 0;
    for (int i = 0; i < R->d->n_inputs; i++) {
        const char *text = R->d->inputs[i].external;
        json_t *root = text ? json_loads(text, 0, NULL) : NULL;
        json_t *all = root ? json_object_get(root, "external") : NULL;
        const char *name;
        json_t *e;
        json_object_foreach(all, name, e)
        {
            int shown = 0;
            for (int mi = 0; mi < R->n_m; mi++) shown |= !strcmp(R->m[mi].name, name);
            if (!shown) continue;
            const char *prov = json_string_value(json_object_get(e, "provenance"));
            const char *src = json_string_value(json_object_get(e, "source"));
            const char *sha = json_string_value(json_object_get(e, "sha256"));
            if (!any++)
                fputs("Methods computed elsewhere (`attnbench ingest`: their outputs were "
                      "measured here, their cost is the one they declared):\n", f);
            fprintf(f, "- **%s (external: %s)**: outputs `%s` (sha256 `%.16s`), in `%s`\n", name,
                    prov && prov[0] ? prov : "no provenance declared", src ? src : "?",
                    sha ? sha : "?", R->d->paths[i]);
        }
        json_decref(root);
    }
    if (any) fputs("\n", f);
}

/* The "Values outside the plotted ranges" section: the outliers of every figure, one row per
 * (metric, method, phase, length) with each budget's value. */
static void md_outliers(const struct rep *R, FILE *f)
{
    fputs("## Values outside the plotted ranges\n\n", f);
    if (!R->n_out) {
        fputs("None: every plotted value lies within its axis.\n\n", f);
        return;
    }
    fprintf(f, "Axes are robust (rel_l2 within the 2nd to 98th percentile of all plotted means "
               "and at most 2; bars and points beyond are drawn at the edge). These values lie "
               "outside (%d):\n\n| metric | method | phase | length | budget: value |\n"
               "|---|---|---|---|---|\n",
            R->n_out);
    char *done = calloc((size_t)R->n_out, 1);
    if (!done) return;
    for (int k = 0; k < AB_N_METRIC; k++)
        for (int mi = 0; mi < R->n_m && ab_metrics[k].plot; mi++)
            for (int pi = 0; pi < R->n_p; pi++)
                for (int v = 0; v < R->n_v; v++) {
                    int n = 0;
                    for (int i = 0; i < R->n_out; i++) {
                        const struct outlier *o = &R->out[i];
                        if (done[i] || o->metric != k || o->mi != mi || o->pi != pi ||
                            o->view != v)
                            continue;
                        if (!n++) {
                            char len[32] = "all";
                            if (v) snprintf(len, sizeof len, "%lld", (long long)R->v[v].n);
                            fprintf(f, "| %s | %s | %s | %s | ", ab_metrics[k].name, R->m[mi].name,
                                    R->phase[pi], len);
                        }
                        /* this row's budgets, descending */
                        done[i] = 1;
                    }
                    if (!n) continue;
                    int first = 1;
                    for (int ti = 0; ti < R->n_t; ti++)
                        for (int i = 0; i < R->n_out; i++) {
                            const struct outlier *o = &R->out[i];
                            if (o->metric != k || o->mi != mi || o->pi != pi || o->view != v ||
                                !(o->target == R->t[ti] || (isnan(o->target) && isnan(R->t[ti]))))
                                continue;
                            char rl[16];
                            ab_ratio_label(o->target, rl, sizeof rl);
                            fprintf(f, "%s%s: %.3g", first ? "" : ", ", rl, o->value);
                            first = 0;
                        }
                    fputs(" |\n", f);
                }
    free(done);
    fputs("\n", f);
}

/* The "Data" section: what the kept cells hold. */
static void md_data(const struct rep *R, FILE *f)
{
    const struct ab_results *r = R->r;
    int64_t n_inf = 0;
    for (int64_t c = 0; c < r->n_cells; c++) n_inf += !r->cells[c].feasible;
    fputs("## Data\n\n", f);
    if (R->o->command_line) fprintf(f, "Built by `%s`.\n\n", R->o->command_line);
    if (R->kvb.n_cells) {
        int64_t kv_inf = 0;
        for (int64_t c = 0; c < R->kvb.n_cells; c++) kv_inf += !R->kvb.cells[c].feasible;
        fprintf(f, "%lld cells at tokens and bytes budgets (%lld infeasible; their own section "
                "below). At FLOP-ratio budgets: ", (long long)R->kvb.n_cells, (long long)kv_inf);
    }
    fprintf(f, "%lld cells (%lld infeasible) from %d results file%s: %d method%s", (long long)r->n_cells,
            (long long)n_inf, R->d->n_inputs, R->d->n_inputs == 1 ? "" : "s", R->n_m,
            R->n_m == 1 ? "" : "s");
    if (R->n_fam) {
        fputs(" (families ", f);
        for (int k = 0; k < R->n_fam; k++) {
            int n = 0;
            for (int mi = 0; mi < R->n_m; mi++) n += R->m[mi].fam == k;
            fprintf(f, "%s%s %d", k ? ", " : "", R->fam[k], n);
        }
        fputs(")", f);
    }
    fprintf(f, ", phase%s ", R->n_p == 1 ? "" : "s");
    for (int pi = 0; pi < R->n_p; pi++)
        fprintf(f, "%s%s", pi ? (pi + 1 == R->n_p ? " and " : ", ") : "", R->phase[pi]);
    fprintf(f, ", %lld layer%s x %lld head%s of %d workload%s, length%s ", (long long)R->n_layer,
            R->n_layer == 1 ? "" : "s", (long long)R->n_head, R->n_head == 1 ? "" : "s", R->n_w,
            R->n_w == 1 ? "" : "s", R->n_len == 1 ? "" : "s");
    for (int k = 0; k < R->n_len; k++)
        fprintf(f, "%s%lld", k ? ", " : "n = ", (long long)R->len[k]);
    if (R->n_b) {
        fputs("; budgets (target FLOP ratios) ", f);
        for (int i = 0; i < R->n_b; i++) {
            char rl[32];
            ab_ratio_label(R->b[i], rl, sizeof rl);
            fprintf(f, "%s%s", i ? ", " : "", rl);
        }
    }
    fputs(".", f);
    if (R->o->n_methods || R->o->n_families) {
        fputs(" Kept by the filter:", f);
        if (R->o->n_families) {
            fputs(" families ", f);
            for (int i = 0; i < R->o->n_families; i++)
                fprintf(f, "%s%s", i ? ", " : "", R->o->families[i]);
        }
        if (R->o->n_methods) {
            fprintf(f, "%s methods ", R->o->n_families ? " and" : "");
            for (int i = 0; i < R->o->n_methods; i++)
                fprintf(f, "%s%s", i ? ", " : "", R->o->methods[i]);
        }
        fputs(", with dense as the reference.", f);
    }
    fputs("\n\n", f);
    md_operators(R, f);
    md_external(R, f);
}

int ab_rep_write_md(struct rep *R, double sink_ratio, int64_t sink_heads, int64_t n_sh)
{
    (void)sink_heads;
    char *path = ab_path_join(R->o->dir, "report", ".md");
    if (!path) return ab_fail(AB_E_NOMEM, "out of memory");
    struct ab_outfile out;
    int rc = ab_outfile_open(&out, path);
    free(path);
    if (rc != AB_OK) return rc;
    FILE *f = out.f;

    fputs("# attnbench report\n\n", f);
    if (R->study_md) {
        fputs(R->study_md, f);
        md_figs(R, f, SEC_STUDY);
    }
    if (R->r->n_cells) {
        ab_rep_answers_md(R, f);
        ab_rep_accounting_md(R, f);
        ab_rep_infeasible_md(R, f);
    } else if (R->kvb.n_cells) {
        fputs("## Answers\n\nThe results hold no cells at FLOP-ratio budgets, only tokens and "
              "bytes budgets: see \"Decode budgets in tokens and bytes\" below; the questions of "
              "the sparse-attention study and its frontier figures are asked at FLOP "
              "budgets.\n\n", f);
    } else {
        fputs("## Answers\n\nThe results hold no attention-level cells (no `attnbench run` among "
              "them): the questions of the sparse-attention study, its accounting and its "
              "frontier figures need them.\n\n", f);
    }

    fputs("## Figures\n\n### Frontiers by family\n\n", f);
    md_figs(R, f, SEC_FRONTIER);
    fputs("### Sequence length\n\n", f);
    md_figs(R, f, SEC_LENGTH);
    fputs("### Retrieve and aggregate tasks\n\n", f);
    md_figs(R, f, SEC_TASKS);
    fputs("### Accuracy against the KV cache\n\n", f);
    md_figs(R, f, SEC_KV);
    fputs("### Methods at equal FLOPs\n\n", f);
    md_figs(R, f, SEC_ISO);
    fputs("### Error per head\n\n", f);
    md_figs(R, f, SEC_HEADS);
    fputs("### Attention maps and kept masks\n\n", f);
    md_figs(R, f, SEC_MAPS);
    md_outliers(R, f);
    md_data(R, f);
    md_best(R, f);
    if ((rc = md_failing(R, f)) != AB_OK) {
        ab_outfile_abort(&out);
        return rc;
    }
    if (R->kvb.n_cells) {
        fputs("## Decode budgets in tokens and bytes\n\n", f);
        ab_rep_kv_budgets_md(R, f);
        md_figs(R, f, SEC_BUDGETS);
    }
    if (R->n_e2e) {
        fputs("## End to end (eval-model)\n\n", f);
        ab_rep_e2e_md(R, f);
        md_figs(R, f, SEC_E2E);
    }

    if (R->o->bench) {
        fputs("## Measured speed (bench methods)\n\n", f);
        md_figs(R, f, SEC_SPEED);
    }

    fputs("## Head statistics and the sink ratio\n\n", f);
    if (!R->d->heads.n)
        fputs("Not computed: the results have no /heads table (run `attnbench heads` on the "
              "workload and report its results with these).\n\n",
              f);
    else if (isnan(sink_ratio))
        fputs("The /heads table has no sink column (sink_score or alpha0): sink ratio not "
              "computed.\n\n",
              f);
    else
        fprintf(f, "Sink ratio (metrics.md, epsilon 0.3): **%.1f%%** of %lld heads.\n\n",
                sink_ratio, (long long)n_sh);
    md_figs(R, f, SEC_STATS);

    fputs("## Tables and figure sources\n\n", f);
    if (R->n_e2e)
        fputs("- [model.csv](model.csv): every /model row (eval-model) of every results file\n", f);
    fputs("- [cells.csv](cells.csv): every kept cell of every results file (the /cells table)\n"
          "- [summary.csv](summary.csv): per workload, method, phase and target, mean and weak "
          "tail over heads (the /summary table, recomputed over the kept cells)\n"
          "- every figure drawn by gnuplot has its data (`NAME.tsv`) and script (`NAME.gp`) "
          "here; re-render one with `gnuplot -c NAME.gp` from this folder\n",
          f);
    if (!R->gnuplot)
        fputs("- gnuplot was not found when this report was built: no figure of a .gp script "
              "was rendered\n",
              f);
    fputs("\n", f);
    for (int i = 0; i < R->notes[N_SEC].n; i++) fprintf(f, "%s\n\n", R->notes[N_SEC].s[i]);
    md_inputs(R, f);
    if ((rc = ab_outfile_commit(&out)) == AB_OK) ab_rep_announce(R, "report.md");
    return rc;
}
