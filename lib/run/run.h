/* run.h - `attnbench run` as a library call: workload files in, a results file (HDF5) and its
 * CSV tables out (outputs.md). The command line (cmd/run.c) and the scenario runner
 * (cmd/scenario.c) fill the same struct ab_run_opts from the same table, ab_run_decl, and call
 * ab_run; neither parses the other's text. */
#ifndef AB_RUN_RUN_H
#define AB_RUN_RUN_H

#include <stdint.h>

#include "core/decl.h"
#include "eval/eval.h"
#include "eval/results.h"

enum { AB_RUN_MAX_WORKLOADS = 64, AB_RUN_MAX_TARGETS = 64, AB_RUN_MAX_METHODS = 256 };

/* The options of `run` (rows of ab_run_decl, defaults there), plus the positional workloads and
 * the common options, which the caller sets. */
struct ab_run_opts {
    const char *const *workloads; /* (n_workloads) workload files, read in this order */
    int n_workloads;
    uint64_t seed;
    char *methods;          /* registry names "a,b" or NULL: every method of the phases */
    char *budgets;          /* target FLOP ratios "0.5,0.25" in (0, 1] */
    char *knob;             /* "NAME=V": every method at this knob instead of budgets, or NULL */
    char *phases;           /* "prefill", "decode" or "prefill,decode" */
    int64_t decode_queries; /* m: decode queries at the end of the sequence */
    int64_t rows;           /* prefill rows evaluated */
    int64_t decode_horizon; /* G >= m */
    int64_t topk;           /* k of topk_recall */
    char *scenario;         /* a scenario file whose text is recorded with the results, or NULL */
    char *out;              /* the results file (.h5) */
    int json;               /* the command prints its answer as JSON (not used by ab_run) */
};

/* The table: argv, --help, scenario keys, --set, the JSON echo. */
extern const struct ab_decl ab_run_decl[];

/* What ab_run did, for the caller to print. */
struct ab_run_out {
    struct ab_results res;      /* every cell and the summary (free with ab_run_out_free) */
    struct ab_sweep_opts sweep; /* the resolved sweep: methods, targets, phases, horizon */
    const struct ab_method *methods[AB_RUN_MAX_METHODS];
    double targets[AB_RUN_MAX_TARGETS];
    const char *res_path;                    /* o->out */
    char csv_cells[4096], csv_summary[4096]; /* the CSV tables written beside out */
    double seconds;                          /* of the sweep */
    int64_t infeasible;                      /* cells without a feasible knob */
};

/* Checks every option and reads every workload before any work starts, runs the sweep,
 * summarises, and writes o->out and its two CSV tables (each to a temporary name renamed on
 * success: a failure leaves nothing behind). progress (may be NULL) is called from the calling
 * thread with cells done and the total over every workload. The results record the options as
 * the command line that gives them (ab_decl_command) and as JSON. Returns AB_OK; AB_E_USAGE for
 * a bad option (the message names it), or the error of reading, sweeping or writing. *out is
 * filled as far as it got; free it with ab_run_out_free in every case. */
int ab_run(const struct ab_run_opts *o, void (*progress)(void *user, int64_t done, int64_t total),
           void *progress_user, struct ab_run_out *out);

void ab_run_out_free(struct ab_run_out *out);

/* results.h5 -> results.csv and results-summary.csv beside it */
void ab_run_csv_paths(const char *out, char *cells, char *summary, size_t cap);

#endif
