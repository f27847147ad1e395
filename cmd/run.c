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

/* Progress over every workload: the sweep counts cells done within its own workload. */
struct run_progress {
    struct ab_progress bar;
    int64_t base; /* cells of the workloads before this one */
};

static void on_progress(void *user, int64_t done, int64_t total)
{
    struct run_progress *p = user;
    ab_progress_step(&p->bar, p->base + done - p->bar.done);
    (void)total;
}

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

/* Prints the summary table: one line per (method, phase, target). */
static void print_summary(const struct ab_results *r)
{
    printf("%-16s %-8s %8s %8s %5s %10s %10s %8s %8s\n", "method", "phase", "target", "ratio",
           "heads", "rel_l2", "rel_l2_p90", "recall", "task_acc");
    for (int64_t i = 0; i < r->n_summary; i++) {
        const struct ab_summary_row *s = &r->summary[i];
        printf("%-16s %-8s %8.4g %8.4g %5lld %10.3g %10.3g %8.3f %8.3f\n", s->method, s->phase,
               s->target_ratio, s->flop_ratio, (long long)s->n_heads, s->rel_l2_mean,
               s->rel_l2_p10, s->recall_mean, s->task_acc_mean);
    }
}

int cmd_run(int argc, char **argv)
{
    const char *methods = NULL, *budgets = NULL, *knob = NULL, *phase = "both", *out = NULL;
    const char *scenario = NULL;
    struct ab_sweep_opts so;
    ab_sweep_defaults(&so);
    int64_t m = so.decode_m, rows = so.max_rows, topk = so.topk;
    double tol = so.tol;
    const struct ab_opt opts[] = {
        {"methods", AB_OPT_STRING, &methods, "LIST", "methods to run (default: every method of the phase)"},
        {"budgets", AB_OPT_STRING, &budgets, "LIST", "target FLOP ratios in (0, 1] (default 0.5,0.25,0.125,0.0625,0.03125)"},
        {"knob", AB_OPT_STRING, &knob, "NAME=V", "run every method at this knob instead of solving budgets"},
        {"phase", AB_OPT_STRING, &phase, "P", "prefill, decode or both (default both)"},
        {"decode-queries", AB_OPT_INT, &m, "M", "decode queries at the end of the sequence (default 64)"},
        {"rows", AB_OPT_INT, &rows, "N", "prefill rows evaluated: all up to N, else a seeded sample of N plus task rows (default 256)"},
        {"tol", AB_OPT_DOUBLE, &tol, "T", "a cell is feasible when its ratio is within T below the target (default 0.05)"},
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
    if (m < 1 || rows < 1 || topk < 1 || topk > 64 || !(tol >= 0 && tol < 1))
        return ab_cmd_error(EX_AB_USAGE, "run: --decode-queries and --rows must be positive, --topk in [1, 64], --tol in [0, 1)");
    so.decode_m = m, so.max_rows = rows, so.topk = topk, so.tol = tol, so.seed = ab_common.seed;

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
    if (!w) return ab_cmd_error(EX_AB_SOFTWARE, "run: out of memory");
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
    if (st == EX_AB_OK) {
        res.notes = strdup("kl = KL(renormalised kept distribution || exact) = -ln(recall) per row, "
                           "mean over rows; prefill rows: all up to --rows, else a seeded sample "
                           "plus task rows; decode: the last --decode-queries rows, methods decide "
                           "from the context only; knob-less methods run once at their fixed cost "
                           "(target_ratio 1); one-off selection work (probe passes, pooling, "
                           "clustering, index building, hashing) is counted once per phase in the "
                           "ledger of the head it serves, i.e. spread over that head's queries of "
                           "the phase; model-level methods (pyramidkv, tidal, duo, razor, moa) fit "
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
    struct run_progress prog = {.base = 0};
    ab_progress_start(&prog.bar, "run", "cells", total);
    so.progress = on_progress, so.progress_user = &prog;
    double t0 = ab_now();
    for (int i = 0; i < n_pos && st == EX_AB_OK; i++) {
        prog.base = prog.bar.done;
        if ((rc = ab_sweep_workload(&w[i], pos[i], &so, &res))) st = ab_cmd_fail(rc);
        if (st == EX_AB_OK) /* the sweep reports its last cells: make sure of it */
            ab_progress_step(&prog.bar, prog.base + ab_sweep_count(&w[i], &so) - prog.bar.done);
    }
    if (st == EX_AB_OK)
        ab_progress_end(&prog.bar);
    else
        ab_progress_stop(&prog.bar);
    if (st == EX_AB_OK && (rc = ab_results_summarise(&res))) st = ab_cmd_fail(rc);
    if (st == EX_AB_OK && (rc = ab_results_write_h5(out, &res))) st = ab_cmd_fail(rc);
    if (st == EX_AB_OK && (rc = ab_results_write_csv(csv_cells, csv_summary, &res))) {
        st = ab_cmd_fail(rc);
        unlink(out); /* all or nothing */
    }
    if (st == EX_AB_OK) {
        if (!ab_common.quiet) print_summary(&res);
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
