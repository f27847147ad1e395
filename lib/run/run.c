/* run.c - `attnbench run` as a library call (see run.h): the options table, the checks that
 * come before any work, the sweep over every workload, and the results file with its CSV
 * tables. */
#include "run/run.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/list.h"
#include "io/csv.h"
#include "io/h5_workload.h"
#include "io/results_io.h"
#include "methods/method.h"

static const char *const phase_words[] = {"prefill", "decode", NULL};
static const char *const phase_aliases[] = {"both", "prefill,decode", NULL};
static const char *const budget_aliases[] = {"default", "0.5,0.25,0.125,0.0625,0.03125",
                                             "paper", "0.7,0.5,0.3,0.2,0.1,0.05", NULL};
static const char *const method_aliases[] = {"all", NULL, NULL};

#define ROW(f) AB_DECL_ROW(struct ab_run_opts, f)
const struct ab_decl ab_run_decl[] = {
    {"methods", AB_DECL_LIST, ROW(methods), NULL, 0, 0, "LIST",
     "methods to run, or all (default: every method of the phases)", .aliases = method_aliases},
    {"budgets", AB_DECL_LIST, ROW(budgets), "default", 0, 1, "LIST",
     "target FLOP ratios in (0, 1], or paper (the Sparse Frontier's grid 0.7 .. 0.05)",
     .item_real = 1, .lo_open = 1, .aliases = budget_aliases},
    {"knob", AB_DECL_STR, ROW(knob), NULL, 0, 0, "NAME=V",
     "run every method at this knob instead of solving budgets"},
    {"phase", AB_DECL_LIST, ROW(phases), "both", 0, 2, "P", "prefill, decode or both",
     .key = "phases", .choices = phase_words, .aliases = phase_aliases},
    {"decode-queries", AB_DECL_INT, ROW(decode_queries), "64", 1, INT32_MAX, "M",
     "decode queries at the end of the sequence"},
    {"rows", AB_DECL_INT, ROW(rows), "256", 1, INT32_MAX, "N",
     "prefill rows evaluated: all up to N, else a seeded sample of N plus task rows"},
    {"decode-horizon", AB_DECL_INT, ROW(decode_horizon), "1024", 1, INT32_MAX, "G",
     "decode: generated tokens that one-off work on the context (cache compression, indexes) "
     "is amortised over, >= M"},
    {"topk", AB_DECL_INT, ROW(topk), "16", 1, 64, "K", "k of topk_recall"},
    {"scenario", AB_DECL_STR, ROW(scenario), NULL, 0, 0, "FILE",
     "record this scenario file's text with the results", .flags = AB_DECL_CLI | AB_DECL_INPUT},
    {"o", AB_DECL_STR, ROW(out), NULL, 0, 0, "FILE",
     "results file to write (.h5; CSV tables go next to it)",
     .flags = AB_DECL_CLI | AB_DECL_OUTPUT},
    {"json", AB_DECL_FLAG, ROW(json), NULL, 0, 0, NULL,
     "print the answer as one JSON document on stdout (schema attnbench/run/1)",
     .flags = AB_DECL_CLI | AB_DECL_SHOW},
    {0},
};
#undef ROW

void ab_run_csv_paths(const char *out, char *cells, char *summary, size_t cap)
{
    size_t len = strlen(out);
    if (len > 3 && !strcmp(out + len - 3, ".h5")) len -= 3;
    snprintf(cells, cap, "%.*s.csv", (int)len, out);
    snprintf(summary, cap, "%.*s-summary.csv", (int)len, out);
}

/* The whole text of a small file (malloc'd, NUL-terminated), or NULL. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && n < (1 << 24) && fseek(f, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)n + 1))) {
            size_t got = fread(buf, 1, (size_t)n, f);
            buf[got] = 0;
        }
    }
    fclose(f);
    return buf;
}

/* The conventions recorded with the results, then those of the operators run (decay, bias,
 * temperature), so a reader of the file can interpret their numbers. */
static char *run_notes(const struct ab_sweep_opts *so)
{
    char *notes = strdup(
        "kl = KL(renormalised kept distribution || exact) = -ln(recall) per row, "
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
    for (int i = 0; notes && i < so->n_methods; i++) {
        const struct ab_method *mm = so->methods[i];
        if (!mm->convention) continue;
        size_t len = strlen(notes) + strlen(mm->name) + strlen(mm->convention) + 8;
        char *grown = realloc(notes, len);
        if (!grown) {
            free(notes);
            return NULL;
        }
        notes = grown;
        strcat(strcat(strcat(strcat(notes, "; "), mm->name), ": "), mm->convention);
    }
    return notes;
}

/* The options into the sweep's: phases, methods, targets, knob. AB_E_USAGE naming the option. */
static int resolve(const struct ab_run_opts *o, struct ab_run_out *out)
{
    struct ab_sweep_opts *so = &out->sweep;
    ab_sweep_defaults(so);
    so->phases = ab_phases_parse(o->phases);
    if (!so->phases) return ab_fail(AB_E_USAGE, "option '--phase': no phase given");
    if (o->decode_horizon < o->decode_queries)
        return ab_fail(AB_E_USAGE, "--decode-horizon %lld is below --decode-queries %lld: the "
                       "evaluated decode queries stand for a generation at least as long",
                       (long long)o->decode_horizon, (long long)o->decode_queries);
    so->decode_m = o->decode_queries, so->max_rows = o->rows, so->topk = o->topk;
    so->horizon = o->decode_horizon, so->seed = o->seed;
    int n = 0, rc;
    if ((rc = ab_methods_resolve(o->methods, so->phases, 0, out->methods, AB_RUN_MAX_METHODS, &n)))
        return ab_fail(rc, "option '--methods': %s", ab_errmsg());
    so->methods = out->methods, so->n_methods = n;
    so->n_targets = ab_list_reals(o->budgets, out->targets, AB_RUN_MAX_TARGETS);
    so->targets = out->targets;
    if (o->knob && (rc = ab_methods_knob(o->knob, out->methods, n, &so->knob_value))) return rc;
    so->has_knob = o->knob != NULL;
    return AB_OK;
}

int ab_run(const struct ab_run_opts *o, void (*progress)(void *user, int64_t done, int64_t total),
           void *progress_user, struct ab_run_out *out)
{
    memset(out, 0, sizeof *out);
    ab_results_init(&out->res);
    if (o->n_workloads < 1) return ab_fail(AB_E_USAGE, "name at least one workload file");
    if (o->n_workloads > AB_RUN_MAX_WORKLOADS)
        return ab_fail(AB_E_USAGE, "at most %d workload files", AB_RUN_MAX_WORKLOADS);
    if (!o->out) return ab_fail(AB_E_USAGE, "name the results file with -o");
    int rc = resolve(o, out);
    if (rc) return rc;
    struct ab_sweep_opts *so = &out->sweep;
    struct ab_results *res = &out->res;
    out->res_path = o->out;
    ab_run_csv_paths(o->out, out->csv_cells, out->csv_summary, sizeof out->csv_cells);

    /* every workload must read before any work starts */
    struct ab_workload *w = calloc((size_t)o->n_workloads, sizeof *w);
    if (!w) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int i = 0; i < o->n_workloads && !rc; i++)
        rc = ab_h5_workload_read(o->workloads[i], &w[i]);
    for (int i = 0; i < o->n_workloads && !rc; i++)
        if ((so->phases & AB_PHASE_DECODE) && o->decode_queries >= w[i].n_seq)
            rc = ab_fail(AB_E_USAGE, "'%s': --decode-queries %lld must be below its length %lld",
                         o->workloads[i], (long long)o->decode_queries, (long long)w[i].n_seq);

    /* provenance: the options as the command line that gives them, and as JSON */
    char tail[96];
    snprintf(tail, sizeof tail, "--seed %llu --threads %d", (unsigned long long)o->seed,
             ab_threads_get());
    char *line = rc ? NULL : ab_decl_command("run", ab_run_decl, o, o->workloads,
                                             o->n_workloads, tail);
    if (!rc && !line) rc = ab_fail(AB_E_NOMEM, "out of memory");
    if (!rc)
        rc = ab_results_provenance_line(res, line, o->workloads, o->n_workloads, o->seed);
    free(line);
    if (!rc && !(res->options = ab_decl_json(ab_run_decl, o)))
        rc = ab_fail(AB_E_NOMEM, "out of memory");
    if (!rc && !(res->notes = run_notes(so))) rc = ab_fail(AB_E_NOMEM, "out of memory");
    res->decode_horizon = so->phases & AB_PHASE_DECODE ? o->decode_horizon : 0;
    if (!rc && o->scenario && !(res->scenario = read_text(o->scenario)))
        rc = ab_fail(AB_E_NOFILE, "cannot read scenario '%s'", o->scenario);

    struct ab_progress_relay pr = {progress, progress_user, 0, 0};
    for (int i = 0; i < o->n_workloads && !rc; i++) pr.total += ab_sweep_count(&w[i], so);
    if (progress) so->progress = ab_progress_relay, so->progress_user = &pr;
    double t0 = ab_now();
    for (int i = 0; i < o->n_workloads && !rc; i++) {
        rc = ab_sweep_workload(&w[i], o->workloads[i], so, res);
        pr.base += ab_sweep_count(&w[i], so);
        if (!rc && progress) progress(progress_user, pr.base, pr.total);
    }
    out->seconds = ab_now() - t0;
    if (!rc) rc = ab_results_summarise(res);
    if (!rc) rc = ab_results_write_h5(o->out, res);
    if (!rc && (rc = ab_results_write_csv(out->csv_cells, out->csv_summary, res)))
        unlink(o->out); /* all or nothing */
    for (int64_t c = 0; c < res->n_cells; c++) out->infeasible += !res->cells[c].feasible;
    for (int i = 0; i < o->n_workloads; i++) ab_workload_free(&w[i]);
    free(w);
    return rc;
}

void ab_run_out_free(struct ab_run_out *out) { ab_results_free(&out->res); }
