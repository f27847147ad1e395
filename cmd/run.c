/* run.c - `attnbench run`: evaluates methods x budgets x phases on workloads against exact
 * attention and writes the results file (HDF5) with its CSV tables next to it (outputs.md).
 * Everything is validated before any work starts; outputs are written at the end, each to a
 * temporary name renamed on success, so a failure leaves nothing behind. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/list.h"
#include "eval/eval.h"
#include "io/csv.h"
#include "io/h5_workload.h"
#include "io/results_io.h"
#include "opts.h"

static const char *usage_text =
    "attnbench run WORKLOAD.h5... [--methods a,b,...] [--budgets 0.5,0.25,...] [--knob k=v]\n"
    "              [--phase prefill|decode|both] [--decode-queries M] [--rows N] -o RESULTS.h5";

enum { MAX_WORKLOADS = 64, MAX_TARGETS = 64 };

/* The whole text of a small file (malloc'd, NUL-terminated), or NULL. */
static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && n < (1 << 24) && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
            *len = fread(buf, 1, (size_t)n, f);
            buf[*len] = 0;
        }
    }
    fclose(f);
    return buf;
}

/* results.h5 -> results.csv and results-summary.csv */
static void csv_paths(const char *out, char *cells, char *summary, size_t cap)
{
    size_t len = strlen(out);
    if (len > 3 && !strcmp(out + len - 3, ".h5")) len -= 3;
    snprintf(cells, cap, "%.*s.csv", (int)len, out);
    snprintf(summary, cap, "%.*s-summary.csv", (int)len, out);
}

/* One (method, phase, target) over every workload of the run: feasible cells, all cells, and
 * the sums of their mean metrics weighted by feasible heads. */
struct pooled {
    const char *method, *phase, *reason;
    double target, rel_l2, task_acc, n_task;
    int64_t n_heads, n_cells;
};

/* The mean rel_l2 over the feasible heads of a pooled group. */
static double pooled_rel_l2(const struct pooled *p) { return p->rel_l2 / (double)p->n_heads; }

/* The answer of the run, not its table (the table is RESULTS-summary.csv): per phase and
 * budget the method with the lowest mean rel_l2 among those feasible on every head (oracles
 * and operators aside: they answer other questions), the runner-up, and then each method with
 * infeasible cells, once, with its reason. */
static void print_answer(const struct ab_results *r, const struct ab_sweep_opts *so)
{
    struct pooled *g = calloc((size_t)(r->n_summary + 1), sizeof *g);
    int64_t n_g = 0;
    if (!g) return;
    for (int64_t i = 0; i < r->n_summary; i++) {
        const struct ab_summary_row *s = &r->summary[i];
        int64_t k = 0;
        for (; k < n_g; k++)
            if (!strcmp(g[k].method, s->method) && !strcmp(g[k].phase, s->phase) &&
                (g[k].target == s->target_ratio || (isnan(g[k].target) && isnan(s->target_ratio))))
                break;
        if (k == n_g) g[n_g++] = (struct pooled){.method = s->method, .phase = s->phase,
                                                 .target = s->target_ratio};
        struct pooled *p = &g[k];
        p->n_cells += s->n_cells, p->n_heads += s->n_heads;
        if (s->n_heads) p->rel_l2 += s->rel_l2_mean * (double)s->n_heads;
        if (s->n_heads && !isnan(s->task_acc_mean))
            p->task_acc += s->task_acc_mean * (double)s->n_heads, p->n_task += (double)s->n_heads;
        if (!p->reason && s->reason && s->reason[0]) p->reason = s->reason;
    }
    printf("best per phase and budget (mean rel_l2 over every head; oracles and operators aside");
    if (so->phases & AB_PHASE_DECODE)
        printf("; decode one-off work spread over G = %lld generated tokens", (long long)so->horizon);
    printf("):\n");
    printf("  %-8s %-7s %-16s %9s %8s   %-16s %9s\n", "phase", "budget", "best", "rel_l2",
           "task_acc", "runner-up", "rel_l2");
    static const char *const phases[] = {"prefill", "decode"};
    for (int ph = 0; ph < 2; ph++) {
        if (!(so->phases & (1u << ph))) continue;
        for (int t = 0; t < (so->has_knob ? 0 : so->n_targets); t++) {
            int64_t best = -1, second = -1;
            for (int64_t k = 0; k < n_g; k++) {
                const struct ab_method *m = ab_method_find(g[k].method);
                if (strcmp(g[k].phase, phases[ph]) || g[k].target != so->targets[t] || !m ||
                    (m->flags & (AB_METHOD_ORACLE | AB_METHOD_OPERATOR)) ||
                    g[k].n_heads == 0 || g[k].n_heads < g[k].n_cells)
                    continue;
                double v = pooled_rel_l2(&g[k]);
                if (best < 0 || v < pooled_rel_l2(&g[best])) second = best, best = k;
                else if (second < 0 || v < pooled_rel_l2(&g[second])) second = k;
            }
            char lab[32];
            ab_ratio_label(so->targets[t], lab, sizeof lab);
            if (best < 0) {
                printf("  %-8s %-7s %s\n", phases[ph], lab, "(no method feasible on every head)");
                continue;
            }
            printf("  %-8s %-7s %-16s %9.3g %8.3f   %-16s %9.3g\n", phases[ph], lab,
                   g[best].method, pooled_rel_l2(&g[best]),
                   g[best].n_task ? g[best].task_acc / g[best].n_task : NAN,
                   second < 0 ? "-" : g[second].method,
                   second < 0 ? NAN : pooled_rel_l2(&g[second]));
        }
    }
    /* infeasible: once per method, its (phase, budget) list and the first reason */
    int header = 0;
    for (int64_t k = 0; k < n_g; k++) {
        int first = 1;
        for (int64_t j = 0; j < k && first; j++)
            first = strcmp(g[j].method, g[k].method) != 0 || g[j].n_heads == g[j].n_cells;
        if (g[k].n_heads == g[k].n_cells || !first) continue;
        if (!header++) printf("infeasible (the smallest knob costs more than the budget):\n");
        printf("  %-16s", g[k].method);
        const char *sep = " ";
        for (int64_t j = k; j < n_g; j++) {
            if (strcmp(g[j].method, g[k].method) || g[j].n_heads == g[j].n_cells) continue;
            char lab[32];
            ab_ratio_label(g[j].target, lab, sizeof lab);
            printf("%s%s %s", sep, g[j].phase, lab);
            if (g[j].n_heads) printf(" (%lld of %lld heads)", (long long)(g[j].n_cells - g[j].n_heads),
                                     (long long)g[j].n_cells);
            sep = ", ";
        }
        printf(": %s\n", g[k].reason ? g[k].reason : "");
    }
    free(g);
}

int cmd_run(int argc, char **argv)
{
    const char *methods = NULL, *budgets = NULL, *knob = NULL, *phase = "both", *out = NULL;
    const char *scenario = NULL;
    struct ab_sweep_opts so;
    ab_sweep_defaults(&so);
    int64_t m = so.decode_m, rows = so.max_rows, topk = so.topk, horizon = so.horizon;
    const struct ab_opt opts[] = {
        {"methods", AB_OPT_STRING, &methods, "LIST", "methods to run (default: every method of the phase)"},
        {"budgets", AB_OPT_STRING, &budgets, "LIST", "target FLOP ratios in (0, 1] (default 0.5,0.25,0.125,0.0625,0.03125)"},
        {"knob", AB_OPT_STRING, &knob, "NAME=V", "run every method at this knob instead of solving budgets"},
        {"phase", AB_OPT_STRING, &phase, "P", "prefill, decode or both (default both)"},
        {"decode-queries", AB_OPT_INT, &m, "M", "decode queries at the end of the sequence (default 64)"},
        {"rows", AB_OPT_INT, &rows, "N", "prefill rows evaluated: all up to N, else a seeded sample of N plus task rows (default 256)"},
        {"decode-horizon", AB_OPT_INT, &horizon, "G", "decode: generated tokens that one-off work on the context (cache compression, indexes) is amortised over, >= M (default 1024)"},
        {"topk", AB_OPT_INT, &topk, "K", "k of topk_recall (default 16)"},
        {"scenario", AB_OPT_STRING, &scenario, "FILE", "record this scenario file's text with the results"},
        {"o", AB_OPT_STRING, &out, "FILE", "results file to write (.h5; CSV tables go next to it)"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[MAX_WORKLOADS];
    int n_pos, st = ab_opts_parse("run", usage_text, opts, argc, argv, pos, MAX_WORKLOADS, &n_pos);
    if (st >= 0) return st;
    if (n_pos == 0) return ab_cmd_error(EX_AB_USAGE, "run: name at least one workload file");
    if (!out) return ab_cmd_error(EX_AB_USAGE, "run: name the results file with -o");
    if (!strcmp(phase, "prefill")) so.phases = AB_PHASE_PREFILL;
    else if (!strcmp(phase, "decode")) so.phases = AB_PHASE_DECODE;
    else if (strcmp(phase, "both"))
        return ab_cmd_error(EX_AB_USAGE, "run: --phase must be prefill, decode or both, got '%s'", phase);
    if (m < 1 || rows < 1 || topk < 1 || topk > 64)
        return ab_cmd_error(EX_AB_USAGE, "run: --decode-queries and --rows must be positive, --topk in [1, 64]");
    if (horizon < m)
        return ab_cmd_error(EX_AB_USAGE, "run: --decode-horizon %lld is below --decode-queries %lld: the "
                            "evaluated decode queries stand for a generation at least as long",
                            (long long)horizon, (long long)m);
    so.decode_m = m, so.max_rows = rows, so.topk = topk, so.horizon = horizon, so.seed = ab_common.seed;

    /* methods: named, or every row of the registry that has one of the phases */
    const struct ab_method *list[256];
    int n_list = 0, rc;
    char name[64];
    if ((st = ab_opts_methods("run", methods, so.phases, 0, list, 256, &n_list)) >= 0) return st;
    so.methods = list, so.n_methods = n_list;

    double targets[MAX_TARGETS];
    if (budgets) {
        if ((st = ab_opts_budgets("run", budgets, targets, MAX_TARGETS, &so.n_targets)) >= 0) return st;
        so.targets = targets;
    }
    if (knob) {
        const char *s = knob;
        if ((rc = ab_list_next(&s, '=', name, sizeof name, &so.knob_value, "--knob")) != 1 || *s)
            return rc < 0 ? ab_cmd_fail(rc) : ab_cmd_error(EX_AB_USAGE, "run: --knob wants one NAME=VALUE");
        for (int i = 0; i < n_list; i++)
            if (list[i]->knob.name && strcmp(list[i]->knob.name, name))
                return ab_cmd_error(EX_AB_USAGE, "run: --knob %s does not apply to '%s' (its knob is %s)",
                                    name, list[i]->name, list[i]->knob.name);
        so.has_knob = 1;
    }

    /* every workload must read before any work starts */
    struct ab_results res;
    ab_results_init(&res);
    struct ab_workload *w = calloc((size_t)n_pos, sizeof *w);
    char csv_cells[4096], csv_summary[4096];
    csv_paths(out, csv_cells, csv_summary, sizeof csv_cells);
    if (!w) return ab_cmd_error(EX_AB_DATA, "run: out of memory");
    st = EX_AB_OK;
    for (int i = 0; i < n_pos && st == EX_AB_OK; i++)
        if ((rc = ab_h5_workload_read(pos[i], &w[i]))) st = ab_cmd_fail(rc);
    for (int i = 0; i < n_pos && st == EX_AB_OK; i++)
        if ((so.phases & AB_PHASE_DECODE) && m >= w[i].n_seq)
            st = ab_cmd_error(EX_AB_USAGE, "run: '%s': --decode-queries %lld must be below its length %lld",
                              pos[i], (long long)m, (long long)w[i].n_seq);

    /* attributes */
    if (st == EX_AB_OK && (rc = ab_results_provenance(&res, argc, argv, pos, n_pos, ab_common.seed)))
        st = ab_cmd_fail(rc);
    res.decode_horizon = so.phases & AB_PHASE_DECODE ? horizon : 0;
    if (st == EX_AB_OK) {
        res.notes = strdup("kl = KL(renormalised kept distribution || exact) = -ln(recall) per row, "
                           "mean over rows; prefill rows: all up to --rows, else a seeded sample "
                           "plus task rows; decode: the last --decode-queries rows, methods decide "
                           "from the context only; knob-less methods run once at their fixed cost "
                           "(target_ratio 1); a cell meets its budget when flop_ratio is at most "
                           "target_ratio, and an infeasible cell (even the smallest knob costs "
                           "more) carries no metrics and a reason; prefill selection work (probe "
                           "passes, pooling, clustering, hashing) is counted in flops_select of "
                           "the head it serves; decode work done once on the context (observation "
                           "windows, indexes, calibration probes) is in flops_once and amortised "
                           "over the decode horizon G = decode_horizon generated tokens, for which "
                           "the evaluated decode queries stand: flop_ratio = (flops_attend + "
                           "flops_select + flops_once m / G) / dense, flop_ratio_step the same "
                           "without flops_once; model-level methods (pyramidkv, tidal, duo, razor, moa) fit "
                           "one knob per phase and target on the whole workload's cost, each head "
                           "charging the plan work it uses (its method's header says how), and "
                           "their cells carry the workload's feasibility");
        /* the conventions of the operators run (decay, bias, temperature), so a reader of the
         * file can interpret their numbers */
        for (int i = 0; res.notes && i < so.n_methods; i++) {
            const struct ab_method *mm = so.methods[i];
            if (!mm->convention) continue;
            size_t len = strlen(res.notes) + strlen(mm->name) + strlen(mm->convention) + 8;
            char *grown = realloc(res.notes, len);
            if (!grown) break;
            res.notes = grown;
            strcat(strcat(strcat(strcat(res.notes, "; "), mm->name), ": "), mm->convention);
        }
        if (scenario) {
            size_t len;
            res.scenario = read_text(scenario, &len);
            if (!res.scenario) st = ab_cmd_error(EX_AB_NOINPUT, "run: cannot read scenario '%s'", scenario);
        }
    }

    int64_t total = 0;
    for (int i = 0; i < n_pos && st == EX_AB_OK; i++) total += ab_sweep_count(&w[i], &so);
    struct ab_progress prog;
    ab_progress_start(&prog, "run", "cells", total);
    so.progress = ab_progress_engine, so.progress_user = &prog;
    double t0 = ab_now();
    for (int i = 0; i < n_pos && st == EX_AB_OK; i++) {
        prog.base = prog.done;
        if ((rc = ab_sweep_workload(&w[i], pos[i], &so, &res))) st = ab_cmd_fail(rc);
        if (st == EX_AB_OK) /* the sweep reports its last cells: make sure of it */
            ab_progress_step(&prog, prog.base + ab_sweep_count(&w[i], &so) - prog.done);
    }
    if (st == EX_AB_OK)
        ab_progress_end(&prog);
    else
        ab_progress_stop(&prog);
    if (st == EX_AB_OK && (rc = ab_results_summarise(&res))) st = ab_cmd_fail(rc);
    if (st == EX_AB_OK && (rc = ab_results_write_h5(out, &res))) st = ab_cmd_fail(rc);
    if (st == EX_AB_OK && (rc = ab_results_write_csv(csv_cells, csv_summary, &res))) {
        st = ab_cmd_fail(rc);
        unlink(out); /* all or nothing */
    }
    if (st == EX_AB_OK) {
        if (!ab_common.quiet) print_answer(&res, &so);
        fflush(stdout);
        int64_t infeasible = 0;
        for (int64_t c = 0; c < res.n_cells; c++) infeasible += !res.cells[c].feasible;
        if (!ab_common.quiet)
            fprintf(stderr, "%lld cells in %.1f s (%lld infeasible)\n", (long long)res.n_cells,
                    ab_now() - t0, (long long)infeasible);
        ab_out_file(out), ab_out_file(csv_cells), ab_out_file(csv_summary);
        ab_out_main("run", out, "%lld cells; %s and %s beside it", (long long)res.n_cells,
                    ab_path_base(csv_cells), ab_path_base(csv_summary));
    }
    for (int i = 0; i < n_pos; i++) ab_workload_free(&w[i]);
    free(w);
    ab_results_free(&res);
    return st;
}
