/* scenario.h - scenario files (scenarios/NAME.yaml, schema "attnbench/scenario/1"): a declared
 * study read with libyaml and checked in full before anything runs (scenarios/README.md is the
 * schema reference).
 *
 * ab_scenario_load reads the file, checks every key, type and value, expands sweeps into one
 * workload each, applies the `quick:` overrides when asked, checks the gen options with the
 * generator's own validation, looks up every method in the registry, and reads the metadata of
 * every workload file it references, and checks that every file a real-model key names exists
 * (model, tokenizer, capture and eval_model texts, import inputs). The result is a plain struct
 * with every value resolved (defaults filled in), from which the CLI builds the gen / capture /
 * import / run / heads / eval-model / report command lines.
 * Errors are one line naming the file and the line: "'x.yaml' line 12: unknown key 'budget' in
 * run (did you mean 'budgets'?)". */
#ifndef AB_SCENARIO_SCENARIO_H
#define AB_SCENARIO_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "run/eval_model.h"
#include "run/heads.h"
#include "run/report.h"
#include "run/run.h"

#define AB_SCENARIO_SCHEMA "attnbench/scenario/1"

enum {
    AB_SCENARIO_MAX_WORKLOADS = 64,
    AB_SCENARIO_MAX_METHODS = 256,
    AB_SCENARIO_MAX_MAPS = 64, /* report: maps */
    AB_SCENARIO_MAX_EVALS = 64,
    AB_SCENARIO_NAME_CAP = 64, /* names are [A-Za-z0-9._-]+, at most 63 characters */
};

enum ab_scenario_source {
    AB_SCENARIO_GEN = 1, /* a synthetic workload written by `gen` */
    AB_SCENARIO_FILE,    /* an existing workload file, used as it is */
    AB_SCENARIO_CAPTURE, /* a real workload written by `capture` from the scenario's model */
    AB_SCENARIO_IMPORT,  /* Q/K/V files brought in by `import` */
};

/* `capture:` of a workload: exactly one input among text, prompt, tokens and copy_task. */
struct ab_scenario_capture {
    char *text;        /* text file, resolved against the scenario's folder (exists), or NULL */
    char *prompt;      /* prompt text ("" allowed: BOS alone), or NULL */
    char *tokens;      /* raw ids "1,403,407", or NULL */
    int64_t copy_task; /* R of the copy task, or < 0 */
    int64_t generate;  /* tokens to generate greedily after the input, or < 0 */
    int hidden;        /* also store the hidden states */
    int64_t offset, length; /* a window [offset, offset + length) of text / tokens, or < 0 */
    char *model;       /* this workload's own model (resolved, exists), or NULL: the scenario's */
    char *tokenizer;   /* its tokenizer, or NULL */
};

/* `import:` of a workload: the options of `attnbench import`. */
struct ab_scenario_import {
    char **files; /* (n_files) resolved against the scenario's folder (each exists) */
    int n_files;
    char *layout; /* "layer,head,seq,dim" (a permutation) or NULL: import's default */
    char *names;  /* "q,k,v" or NULL */
    char *dtype;  /* "bf16" or NULL */
    int causal;   /* 1 causal, 0 full, < 0: import's default (causal) */
    double scale; /* NaN: import's default 1/sqrt(d) */
};

/* How an eval_model entry chooses the heads a method replaces (eval-model's --heads options). */
enum ab_scenario_heads_kind {
    AB_SCENARIO_HEADS_ALL = 0, /* every head (eval-model's default) */
    AB_SCENARIO_HEADS_LIST,    /* heads: [L:H, ...] */
    AB_SCENARIO_HEADS_RANKED,  /* heads_top / heads_bottom: {k, score} over DIR/heads.h5 and / or
                                  heads_random: K (each K a count or a list of counts) */
    AB_SCENARIO_HEADS_SELECT,  /* heads_select: {calibrate | calibrate_copy, min} */
};

/* One `eval_model:` entry: an `attnbench eval-model` run on the scenario's model, its keys read
 * through eval-model's own table (lib/run/eval_model.h) into o, files resolved against the
 * scenario's folder. The model, tokenizer, heads file, seed and output are the runner's. */
struct ab_scenario_eval {
    int line;
    int heads_kind;  /* enum ab_scenario_heads_kind */
    unsigned phases; /* AB_PHASE_* bits of o.phases */
    struct ab_eval_run_opts o;
};

/* One workload after sweep expansion. Gen fields hold the value passed to `gen`; the optional
 * ones are "not given" when negative (integers), NaN (reals) or NULL (strings), and then gen's
 * own default applies. */
struct ab_scenario_workload {
    char name[AB_SCENARIO_NAME_CAP]; /* unique; the output file is <dir>/<name>.h5 */
    int line;                        /* line of the entry in the scenario file */
    int source;                      /* enum ab_scenario_source */
    char *path;                      /* FILE: the workload file, resolved against the scenario's
                                        folder (exists, and its metadata read) */
    /* shape: given or defaulted for GEN; read from the file for FILE */
    int64_t layers, heads, kv_heads, n, d, dv;
    /* GEN only */
    char *preset, *profile, *mix; /* at most one */
    char *tasks;                  /* "retrieve,aggregate" or NULL */
    char *strength;               /* "sink=8,local=12" or NULL */
    uint64_t seed;
    int64_t slash_period, n_tasks, task_rows, codes; /* < 0: not given */
    double theta, depth_min, depth_max;              /* NaN: not given */
    char *probe;                                     /* "repeat" or NULL */
    int full_mask;                                   /* gen --full */
    /* CAPTURE and IMPORT (their shape is known once written: layers, heads, n are -1 then,
     * except n = 2R + 1 for a copy task) */
    struct ab_scenario_capture capture;
    struct ab_scenario_import import;
};

struct ab_scenario {
    char *path; /* the scenario file as named */
    char *text; /* its bytes, NUL-terminated */
    size_t text_len;
    char sha256[65]; /* of text */
    char name[AB_SCENARIO_NAME_CAP];
    char *description; /* "" when not given */
    uint64_t seed;     /* default 1 */
    int64_t threads;   /* 0 = every core (default) */
    int quick;         /* the quick overrides were applied */
    struct ab_scenario_workload *workloads;
    int n_workloads;
    /* run: its options as `attnbench run` declares them (lib/run/run.h), read from the file's
     * run: keys (and quick:'s) through run's own table, so defaults and checks are run's;
     * workloads, scenario and output are the runner's to set */
    struct ab_run_opts run;
    unsigned run_phases; /* AB_PHASE_* bits of run.phases */
    /* report: its options as `attnbench report` declares them (lib/run/report.h), read from the
     * file's report: keys (and quick's maps and map_methods) through report's own table; the
     * results files, the maps' workload and the folder are the runner's to set */
    struct ab_report_run_opts report;
    /* steps: run when `run:` is given or `heads:` is not (a file with neither runs with run's
     * defaults, as before `heads:` existed); heads when `heads:` is given */
    int has_run, has_heads;
    /* heads: the options of `attnbench heads`, read through its table (lib/run/heads.h) */
    struct ab_heads_run_opts heads;
    /* model: the model of capture workloads and eval_model steps */
    char *model;     /* resolved against the scenario's folder (exists), or NULL */
    char *tokenizer; /* the same, or NULL: capture / eval-model find it beside the model */
    /* plugins: their files (resolved against the scenario's folder, comma-joined), loaded while
     * the file was read; run, report and each eval_model step get them too; or NULL */
    char *plugins;
    /* eval_model: each entry one `attnbench eval-model`, after the heads step */
    struct ab_scenario_eval *evals;
    int n_evals;
};

/* Reads and validates the scenario at path into *out (free with ab_scenario_free, also after a
 * failure). quick != 0 applies the file's `quick:` overrides. Nothing is written anywhere.
 * Returns AB_OK; AB_E_NOFILE when the scenario or a file it names is missing (workload, model,
 * tokenizer, text, import input); AB_E_DATA for everything else wrong in the file (malformed
 * YAML, wrong schema, unknown or missing key, wrong type, bad value, unknown method, a method
 * without the causal mask or the phase of an eval_model entry), with a message naming the file
 * and the line. */
int ab_scenario_load(const char *path, int quick, struct ab_scenario *out);

/* The same with overrides: sets[0..n_sets) ("run.budgets=0.5,0.1", scenario/set.h) applied
 * to the file's keys before they are checked, each checked like the key it sets, its messages
 * naming the override ("'x.yaml' --set run.budgt=0.5: unknown key 'budgt' in run (did you
 * mean 'budgets'?)"). The overrides are appended to s->text as comments (and its digest
 * follows), so the saved copy records them. AB_E_USAGE for an override that names no place in
 * the file; otherwise as ab_scenario_load. */
int ab_scenario_load_set(const char *path, int quick, const char *const *sets, int n_sets,
                         struct ab_scenario *out);

void ab_scenario_free(struct ab_scenario *s);

/* Writes the scenario's text to path (path.tmp, then rename) and, when sha_path is not NULL,
 * "<sha256>  <basename of path>\n" to sha_path the same way (sha256sum -c reads it). AB_OK or
 * AB_E_CREATE / AB_E_IO with nothing left behind. */
int ab_scenario_save(const struct ab_scenario *s, const char *path, const char *sha_path);

#endif
