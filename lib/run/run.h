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

enum {
    AB_RUN_MAX_WORKLOADS = 64,
    AB_RUN_MAX_TARGETS = 64,
    AB_RUN_MAX_METHODS = 256,
    AB_RUN_MAX_LAYERS = 4096
};

/* The options of `run` (rows of ab_run_decl, defaults there), plus the positional workloads and
 * the common options, which the caller sets. */
struct ab_run_opts {
    const char *const *workloads; /* (n_workloads) workload files, read in this order */
    int n_workloads;
    uint64_t seed;
    char *plugins;          /* plugin files "a.so,b.so" loaded before the methods are named, or NULL */
    char *methods;          /* registry names "a,b" or NULL: every method of the phases */
    char *budgets;          /* target FLOP ratios "0.5,0.25" in (0, 1], or NULL: the default
                               grid when no kv / bytes budget is given either, else none */
    char *kv_budget;        /* decode budgets: tokens read per step "128,512" (integers >= 1) */
    char *bytes_budget;     /* decode budgets: K/V bytes ratios to dense "0.5,0.25" in (0, 1] */
    char *layer_budget;     /* "uniform", "pyramid" or per-layer weights "W0,W1,..." */
    char *knob;             /* "NAME=V": every method at this knob instead of budgets, or NULL */
    char *phases;           /* "prefill", "decode" or "prefill,decode" */
    int64_t decode_queries; /* m: decode queries at the end of the sequence */
    int64_t rows;           /* prefill rows evaluated */
    int64_t decode_horizon; /* G >= m */
    int64_t topk;           /* k of topk_recall */
    char *scenario;         /* a scenario file whose text is recorded with the results, or NULL */
    char *out;              /* the results file (.h5) */
    int json;               /* the command prints its answer as JSON (not used by ab_run) */
    int resume;             /* --resume (1): take the finished heads of OUT.journal, compute
                               the rest (README "Long sweeps"); 2 (a scenario step, not
                               declared): the same when the journal is of this run, and a
                               journal of another run is replaced */
    char *shard;            /* --shard I/N: compute part I of N and write it as a piece for
                               `merge`, or NULL */
    /* not declared (the caller sets them) */
    int mpi_rank, mpi_size; /* under mpirun with more than one rank: this rank and their count
                               (0, 0 otherwise); needs a build with MPI (run_mpi.c) */
    /* testing hook: called after each unit record is on the disk with the count written by
       this process (cmd/run.c's AB_TEST_KILL_AFTER_HEADS kills the process there), or NULL */
    void (*journaled)(void *user, int64_t records);
    void *journaled_user;
    /* the progress as estimated work (shard.h's unit costs): called after each progress call
       with the work of the units done and of all the part's units, or NULL. Heads of different
       lengths cost differently, so the time left is better carried over work than cells */
    void (*work)(void *user, double done, double total);
    void *work_user;
};

/* The table: argv, --help, scenario keys, --set, the JSON echo. */
extern const struct ab_decl ab_run_decl[];

/* What ab_run did, for the caller to print. */
struct ab_run_out {
    struct ab_results res;      /* every cell and the summary (free with ab_run_out_free) */
    struct ab_sweep_opts sweep; /* the resolved sweep: methods, targets, phases, horizon */
    const struct ab_method *methods[AB_RUN_MAX_METHODS];
    double targets[AB_RUN_MAX_TARGETS];
    double kv_tokens[AB_RUN_MAX_TARGETS], kv_bytes[AB_RUN_MAX_TARGETS];
    double layer_given[AB_RUN_MAX_LAYERS]; /* --layer-budget's weights as given */
    const char *res_path;                    /* o->out */
    char csv_cells[4096], csv_summary[4096]; /* the CSV tables written beside out */
    double seconds;                          /* of the sweep */
    int64_t infeasible;                      /* cells without a feasible knob */
    int64_t units, units_resumed, units_computed; /* heads of the run (of the shard), taken
                                                     from the journal, computed here */
    int64_t shard_index, shard_count;        /* --shard I/N (0, 0 without) */
    int wrote;                               /* 0 on an MPI rank other than 0: nothing written */
};

/* Checks every option and reads every workload before any work starts, runs the sweep,
 * summarises, and writes o->out and its two CSV tables (each to a temporary name renamed on
 * success: a failure leaves nothing behind). Each finished head's cells are journaled in
 * o->out + ".journal" (journal.h) as the sweep goes, and the journal is removed once the
 * results are in place; an existing journal is refused without o->resume (AB_E_USAGE: say
 * --resume or delete it), and with it its heads are taken and only the missing ones computed
 * (a journal of other options, workloads, seed or version: AB_E_USAGE naming what differs).
 * The final table has the single-process row order whatever was resumed. With o->shard "I/N"
 * only part I of the heads (ab_units_assign) is computed, and o->out is a piece
 * (ab_results_write_piece) for `merge`. With o->mpi_size > 1 every rank computes its part and
 * rank 0 gathers the cells and writes the one file (--resume and --shard are refused there).
 * The recorded options and command line leave out --resume and --shard. progress (may be NULL) is called from the calling
 * thread with cells done and the total over every workload. The results record the options as
 * the command line that gives them (ab_decl_command) and as JSON. Returns AB_OK; AB_E_USAGE for
 * a bad option (the message names it), or the error of reading, sweeping or writing. *out is
 * filled as far as it got; free it with ab_run_out_free in every case. */
int ab_run(const struct ab_run_opts *o, void (*progress)(void *user, int64_t done, int64_t total),
           void *progress_user, struct ab_run_out *out);

void ab_run_out_free(struct ab_run_out *out);

/* Sets the declared fields of o (holding its defaults) from the options recorded with a
 * results file (ab_decl_json's object): how `merge` gives the merged file the options and
 * command line of the unsharded run. AB_OK or AB_E_DATA (not such an object, a value its row
 * refuses), AB_E_NOMEM. */
int ab_run_opts_from_json(const char *json, struct ab_run_opts *o);

/* results.h5 -> results.csv and results-summary.csv beside it */
void ab_run_csv_paths(const char *out, char *cells, char *summary, size_t cap);

#endif
