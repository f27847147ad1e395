/* eval_model.h - `attnbench eval-model` as a library call: a model and its inputs in, a
 * results file with the /model table and RESULTS-model.csv out. The engine is lib/eval's
 * (ab_eval_model, eval/e2e.h); this room declares the command's options once
 * (ab_eval_run_decl), checks them, resolves methods and budgets, reads the /heads table a head
 * ranking asks for, and writes the outputs. cmd/eval_model.c and the scenario runner fill the
 * same struct and call ab_eval_run. */
#ifndef AB_RUN_EVAL_MODEL_H
#define AB_RUN_EVAL_MODEL_H

#include <stdint.h>

#include "core/decl.h"
#include "eval/results.h"

struct ab_eval_run_opts {
    uint64_t seed;
    char *model, *tokenizer, *text;
    int64_t copy_task;          /* R, 0: none */
    char *plugins;              /* plugin files loaded first, or NULL */
    char *methods, *budgets, *knob, *phases;
    char *kv_budget, *bytes_budget; /* decode budgets: tokens per step, bytes ratios (lists) */
    char *layer_budget;             /* uniform | pyramid | W0,W1,... (per-layer targets) */
    int64_t decode_queries, decode_horizon, stride;
    int window_bos;
    char *heads, *heads_top, *heads_bottom, *heads_random, *heads_score, *heads_file;
    int heads_select;
    char *calibrate;
    int64_t calibrate_copy;     /* R, 0: none */
    double select_min;
    char *out;
};

extern const struct ab_decl ab_eval_run_decl[];

/* What the caller hears while the engine runs (each may be NULL; user is passed back). */
struct ab_eval_run_hooks {
    void (*begin)(void *user, int64_t total); /* checks passed, total passes to come */
    void (*progress)(void *user, int64_t done, int64_t total);
    void (*row)(void *user, const struct ab_model_row *row);
    void (*note)(void *user, const char *msg);
    void *user;
};

/* Checks the options (AB_E_USAGE naming the option), runs the engine, and writes o->out and
 * RESULTS-model.csv beside it (all or nothing) into *res (initialised here; free with
 * ab_results_free in every case). csv (cap bytes) gets the CSV's path. The results record the
 * options as a command line and as JSON, with the model, text and calibration text digests. */
int ab_eval_run(const struct ab_eval_run_opts *o, const struct ab_eval_run_hooks *hooks,
                struct ab_results *res, char *csv, size_t cap);

#endif
