/* scenario.c - `attnbench scenario FILE.yaml [-o DIR] [--quick] [--dry-run]`: runs a declared
 * study end to end (issue 4; the file format is scenarios/README.md, its reader
 * lib/scenario/scenario.c).
 *
 * The whole file is read and validated first (keys, types, values, methods, budgets, gen
 * options, workload files); a bad scenario writes nothing. Then the runner makes DIR (default
 * reports/<name>/, or reports/<name>-quick/ with --quick), copies the scenario there
 * (scenario.yaml and its scenario.sha256), and runs the same commands a person would type, by
 * calling them in-process with a built argv: `gen`, `capture` or `import` once per workload the
 * scenario makes (DIR/<name>.h5), one `run` over every workload (DIR/results.h5 and its CSV; when
 * the file has `run:` or no `heads:`), one `heads` over every workload (DIR/heads.h5 and
 * DIR/heads-heads.csv; when the file has `heads:`), `eval-model` once per eval_model entry
 * (DIR/model.h5, DIR/model-2.h5, ...) and `report` over all those results files (DIR/report/). Each
 * step's command line is printed on stderr as it starts, so any step can be re-run by hand, and
 * one line with its time when it ends; on stdout each step prints its one line (the commands'
 * output contract, opts.h) and the scenario ends with "scenario: DIR/report/report.md (...)".
 * A failing step stops the scenario with that step's exit status and one line naming the
 * step. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ab.h"
#include "core/decl.h"
#include "scenario/scenario.h"
#include "scenario/stamp.h"
#include "methods/method.h"
#include "opts.h"
#include "run/capture.h"
#include "run/eval_model.h"
#include "run/gen.h"
#include "run/heads.h"
#include "run/import.h"
#include "run/report.h"
#include "run/run.h"

static const char *usage_text =
    "attnbench scenario FILE.yaml [-o DIR] [--quick] [--dry-run] [--force] [--set KEY.PATH=V]...\n"
    "       runs gen / capture / import for each workload, run and/or heads over all of them,\n"
    "       eval-model for each eval_model entry, and report, into DIR\n"
    "       (default reports/NAME/, reports/NAME-quick/ with --quick)";

/* The shortest %g form that reads back as x. */
static void fmt_real(char *buf, size_t cap, double x)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* Sets option `name` of a declared command's struct o from text, through its row. */
static int put(const struct ab_decl *t, void *o, const char *cmd, const char *name,
               const char *text)
{
    int rc = ab_decl_set(ab_decl_find(t, name), o, text);
    return rc ? ab_fail(rc, "%s: option '--%s': %s", cmd, name, ab_errmsg()) : AB_OK;
}

/* put for an integer / a real */
static int put_int(struct ab_gen_run_opts *o, const char *name, int64_t x)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)x);
    return put(ab_gen_run_decl, o, "gen", name, buf);
}
static int put_real(struct ab_gen_run_opts *o, const char *name, double x)
{
    char buf[64];
    fmt_real(buf, sizeof buf, x);
    return put(ab_gen_run_decl, o, "gen", name, buf);
}

/* A gen step's options from a generated workload of the scenario (the given values; gen's own
 * defaults for the rest), set through gen's rows. AB_OK, AB_E_NOMEM, or a value's error. */
static int fill_gen(struct ab_gen_run_opts *o, const struct ab_scenario_workload *w,
                    const char *dir, uint64_t seed)
{
    int rc = ab_decl_defaults(ab_gen_run_decl, o);
    char buf[4200];
    o->seed = seed;
    if (!rc && w->preset) rc = put(ab_gen_run_decl, o, "gen", "preset", w->preset);
    if (!rc && w->profile) rc = put(ab_gen_run_decl, o, "gen", "profile", w->profile);
    if (!rc && w->mix) rc = put(ab_gen_run_decl, o, "gen", "mix", w->mix);
    if (!rc) rc = put_int(o, "layers", w->layers);
    if (!rc) rc = put_int(o, "heads", w->heads);
    if (!rc) rc = put_int(o, "kv-heads", w->kv_heads);
    if (!rc) rc = put_int(o, "n", w->n);
    if (!rc) rc = put_int(o, "d", w->d);
    if (!rc && w->dv != w->d) rc = put_int(o, "dv", w->dv);
    if (!rc && w->tasks) rc = put(ab_gen_run_decl, o, "gen", "tasks", w->tasks);
    if (!rc && w->strength) rc = put(ab_gen_run_decl, o, "gen", "strength", w->strength);
    if (!rc && w->slash_period > 0) rc = put_int(o, "slash-period", w->slash_period);
    if (!rc && w->n_tasks > 0) rc = put_int(o, "n-tasks", w->n_tasks);
    if (!rc && w->task_rows > 0) rc = put_int(o, "task-rows", w->task_rows);
    if (!rc && w->codes > 0) rc = put_int(o, "codes", w->codes);
    if (!rc && !isnan(w->theta)) rc = put_real(o, "theta", w->theta);
    if (!rc && !isnan(w->depth_min)) rc = put_real(o, "depth-min", w->depth_min);
    if (!rc && !isnan(w->depth_max)) rc = put_real(o, "depth-max", w->depth_max);
    if (!rc && w->probe) rc = put(ab_gen_run_decl, o, "gen", "probe", w->probe);
    if (!rc && w->full_mask) rc = put(ab_gen_run_decl, o, "gen", "full", "true");
    snprintf(buf, sizeof buf, "%s/%s.h5", dir, w->name);
    if (!rc) rc = put(ab_gen_run_decl, o, "gen", "o", buf);
    return rc;
}

/* A capture workload's options (its own model or the scenario's), set through capture's rows.
 * AB_OK, AB_E_NOMEM, or a value's error. */
static int fill_capture(struct ab_capture_run_opts *o, const struct ab_scenario *s,
                        const struct ab_scenario_workload *w, const char *dir, uint64_t seed)
{
    const struct ab_scenario_capture *k = &w->capture;
    const struct ab_decl *t = ab_capture_run_decl;
    char buf[4200];
    int rc = ab_decl_defaults(t, o);
    o->seed = seed;
#define PUT(name, text) (rc = rc ? rc : put(t, o, "capture", (name), (text)))
#define PUT_INT(name, x) (snprintf(buf, sizeof buf, "%lld", (long long)(x)), PUT((name), buf))
    PUT("model", k->model ? k->model : s->model);
    if (k->model ? k->tokenizer != NULL : s->tokenizer != NULL)
        PUT("tokenizer", k->model ? k->tokenizer : s->tokenizer);
    if (k->text) PUT("text", k->text);
    if (k->prompt) PUT("prompt", k->prompt);
    if (k->tokens) PUT("tokens", k->tokens);
    if (k->copy_task > 0) PUT_INT("copy-task", k->copy_task);
    if (k->generate > 0) PUT_INT("generate", k->generate);
    if (k->hidden) PUT("hidden", "true");
    if (k->offset >= 0) PUT_INT("offset", k->offset);
    if (k->length > 0) PUT_INT("length", k->length);
    snprintf(buf, sizeof buf, "%s/%s.h5", dir, w->name);
    PUT("o", buf);
#undef PUT_INT
#undef PUT
    return rc;
}

/* An import workload's options, set through import's rows; its files are the positional
 * inputs. AB_OK, AB_E_NOMEM, or a value's error. */
static int fill_import(struct ab_import_run_opts *o, const struct ab_scenario_workload *w,
                       const char *dir)
{
    const struct ab_scenario_import *k = &w->import;
    const struct ab_decl *t = ab_import_run_decl;
    char buf[4200];
    int rc = ab_decl_defaults(t, o);
    o->files = (const char *const *)k->files, o->n_files = k->n_files;
    if (!rc && k->layout) rc = put(t, o, "import", "layout", k->layout);
    if (!rc && k->names) rc = put(t, o, "import", "names", k->names);
    if (!rc && k->dtype) rc = put(t, o, "import", "dtype", k->dtype);
    if (!rc && k->causal == 1) rc = put(t, o, "import", "causal", "true");
    if (!rc && k->causal == 0) rc = put(t, o, "import", "full", "true");
    if (!rc && !isnan(k->scale))
        fmt_real(buf, sizeof buf, k->scale), rc = put(t, o, "import", "scale", buf);
    snprintf(buf, sizeof buf, "%s/%s.h5", dir, w->name);
    if (!rc) rc = put(t, o, "import", "o", buf);
    return rc;
}

/* The results file of eval_model entry i: DIR/model.h5, then DIR/model-2.h5, ... */
static void eval_path(char *buf, size_t cap, const char *dir, int i)
{
    if (i == 0)
        snprintf(buf, cap, "%s/model.h5", dir);
    else
        snprintf(buf, cap, "%s/model-%d.h5", dir, i + 1);
}

/* An eval_model entry's options: the entry's (read through eval-model's own table), then the
 * scenario's model and tokenizer, the heads file, the seed and the output, set through the
 * same rows. AB_OK, AB_E_NOMEM, or a value's error. */
static int fill_eval(struct ab_eval_run_opts *o, const struct ab_scenario *s, int i,
                     const char *dir, uint64_t seed)
{
    const struct ab_decl *t = ab_eval_run_decl;
    char buf[4200];
    int rc = ab_decl_defaults(t, o);
    if (!rc) rc = ab_decl_copy(t, o, &s->evals[i].o);
    o->seed = seed;
    if (!rc) rc = put(t, o, "eval-model", "model", s->model);
    if (!rc && s->tokenizer) rc = put(t, o, "eval-model", "tokenizer", s->tokenizer);
    snprintf(buf, sizeof buf, "%s/heads.h5", dir);
    if (!rc && o->heads_score) rc = put(t, o, "eval-model", "heads-file", buf);
    eval_path(buf, sizeof buf, dir, i);
    if (!rc) rc = put(t, o, "eval-model", "o", buf);
    return rc;
}

/* The file a workload is read from by run and report. */
static void workload_path(char *buf, size_t cap, const struct ab_scenario_workload *w,
                          const char *dir)
{
    if (w->source == AB_SCENARIO_FILE)
        snprintf(buf, cap, "%s", w->path);
    else
        snprintf(buf, cap, "%s/%s.h5", dir, w->name);
}


/* A step: its command, called with its declared options struct o (table t), and the command
 * line that gives the same options (printed as the step starts, so it can be re-run by hand). */
struct call {
    const char *cmd;
    const struct ab_decl *t;
    void *o;
    char *line;
    int (*fn)(const void *o);
    const char *const *pos; /* the positional files, read by the step */
    int n_pos;
    uint64_t seed;
};

/* The output a step writes: its AB_DECL_OUTPUT row's value. */
static const char *step_out(const struct call *c)
{
    const struct ab_decl *d = c->t;
    while (d->name && !(d->flags & AB_DECL_OUTPUT)) d++;
    return *(char *const *)((const char *)c->o + d->offset);
}

static int call_gen(const void *o) { return cmd_gen_opts(o); }
static int call_run(const void *o) { return cmd_run_opts(o); }
static int call_heads(const void *o) { return cmd_heads_opts(o); }
static int call_eval(const void *o) { return cmd_eval_model_opts(o); }
static int call_import(const void *o) { return cmd_import_opts(o); }
static int call_capture(const void *o) { return cmd_capture_opts(o); }
static int call_report(const void *o) { return cmd_report_opts(o); }

/* c->line from c's options. AB_OK or AB_E_NOMEM. */
static int call_line(struct call *c, const char *const *pos, int n_pos, uint64_t seed,
                     const char *tail)
{
    c->pos = pos, c->n_pos = n_pos, c->seed = seed;
    c->line = ab_decl_command(c->cmd, c->t, c->o, pos, n_pos, tail);
    return c->line ? AB_OK : ab_fail(AB_E_NOMEM, "scenario: out of memory");
}

/* The run step's options: the scenario's (read through run's own table), then the runner's
 * workloads, seed, scenario copy and output, set through the same rows. paths holds the
 * workload files. AB_OK or AB_E_NOMEM. */
static int fill_run(struct ab_run_opts *o, const struct ab_scenario *s, const char *dir,
                    uint64_t seed, const char **path_ptrs)
{
    int rc = ab_decl_defaults(ab_run_decl, o);
    if (!rc) rc = ab_decl_copy(ab_run_decl, o, &s->run);
    o->workloads = path_ptrs, o->n_workloads = s->n_workloads, o->seed = seed;
    char buf[4200];
    snprintf(buf, sizeof buf, "%s/scenario.yaml", dir);
    if (!rc) rc = put(ab_run_decl, o, "run", "scenario", buf);
    snprintf(buf, sizeof buf, "%s/results.h5", dir);
    if (!rc) rc = put(ab_run_decl, o, "run", "o", buf);
    return rc;
}

/* The heads step's options: the scenario's (read through heads' own table), then the
 * workloads, seed and output. AB_OK or AB_E_NOMEM. */
static int fill_heads(struct ab_heads_run_opts *o, const struct ab_scenario *s, const char *dir,
                      uint64_t seed, const char **path_ptrs)
{
    int rc = ab_decl_defaults(ab_heads_run_decl, o);
    if (!rc) rc = ab_decl_copy(ab_heads_run_decl, o, &s->heads);
    o->workloads = path_ptrs, o->n_workloads = s->n_workloads, o->seed = seed;
    char buf[4200];
    snprintf(buf, sizeof buf, "%s/heads.h5", dir);
    if (!rc) rc = put(ab_heads_run_decl, o, "heads", "o", buf);
    return rc;
}

/* The report step's options: the scenario's (read through report's own table), then every
 * results file of the scenario, the first workload (of the maps) and the folder. pos holds the
 * results files. AB_OK or AB_E_NOMEM. */
static int fill_report(struct ab_report_run_opts *o, const struct ab_scenario *s, const char *dir,
                       char (*pos)[4200], const char **pos_ptrs)
{
    int rc = ab_decl_defaults(ab_report_run_decl, o), n = 0;
    if (!rc) rc = ab_decl_copy(ab_report_run_decl, o, &s->report);
    if (s->has_run) snprintf(pos[n++], sizeof pos[0], "%s/results.h5", dir);
    if (s->has_heads) snprintf(pos[n++], sizeof pos[0], "%s/heads.h5", dir);
    for (int i = 0; i < s->n_evals; i++) eval_path(pos[n++], sizeof pos[0], dir, i);
    for (int i = 0; i < n; i++) pos_ptrs[i] = pos[i];
    o->results = pos_ptrs, o->n_results = n;
    char buf[4200];
    workload_path(buf, sizeof buf, &s->workloads[0], dir);
    if (!rc) rc = put(ab_report_run_decl, o, "report", "workload", buf);
    snprintf(buf, sizeof buf, "%s/report", dir);
    if (!rc) rc = put(ab_report_run_decl, o, "report", "o", buf);
    return rc;
}

/* mkdir -p. Returns 0 or -1 with errno. */
static int make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char keep = *p;
            *p = 0;
            struct stat st;
            if (mkdir(buf, 0777) && errno != EEXIST) return -1;
            if (stat(buf, &st) || !S_ISDIR(st.st_mode)) {
                errno = ENOTDIR;
                return -1;
            }
            *p = keep;
            if (!keep) return 0;
        }
    }
}

/* Was option --name given on the command line (as --name V or --name=V)? */
static int given(int argc, char **argv, const char *name)
{
    size_t len = strlen(name);
    for (int a = 1; a < argc; a++)
        if (!strncmp(argv[a], "--", 2) && !strncmp(argv[a] + 2, name, len) &&
            (argv[a][2 + len] == 0 || argv[a][2 + len] == '='))
            return 1;
    return 0;
}

int cmd_scenario(int argc, char **argv)
{
    const char *out = NULL;
    int quick = 0, dry = 0, force = 0;
    struct ab_opt_many sets = {0};
    const struct ab_opt opts[] = {
        {"set", AB_OPT_MANY, &sets, "KEY=V",
         "override a key of the file (repeatable): run.budgets=0.5,0.1, workloads.NAME.gen.n=8192"},
        {"o", AB_OPT_STRING, &out, "DIR", "output folder (default reports/NAME/)"},
        {"quick", AB_OPT_FLAG, &quick, NULL,
         "apply the scenario's quick: overrides (small sizes for CI and make test)"},
        {"force", AB_OPT_FLAG, &force, NULL,
         "run every step, also those whose outputs are up to date (same options, inputs and "
         "attnbench as when they were written)"},
        {"dry-run", AB_OPT_FLAG, &dry, NULL,
         "validate the scenario and print the commands it would run; write nothing"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[1];
    int n_pos, st = ab_opts_parse("scenario", usage_text, opts, argc, argv, pos, 1, &n_pos);
    if (st >= 0) return st;
    if (n_pos != 1)
        return ab_cmd_error(EX_AB_USAGE, "scenario: name one scenario file (FILE.yaml)");
    const char *file = pos[0];

    struct ab_scenario s;
    int rc = ab_scenario_load_set(file, quick, sets.v, sets.n, &s);
    if (rc) {
        ab_scenario_free(&s);
        return ab_cmd_fail(rc);
    }
    /* the command line's --seed and --threads win over the file's */
    uint64_t seed = given(argc, argv, "seed") ? ab_common.seed : s.seed;
    int64_t threads = given(argc, argv, "threads") ? ab_common.threads : s.threads;

    char dir[4096];
    if (out)
        snprintf(dir, sizeof dir, "%s", out);
    else
        snprintf(dir, sizeof dir, "reports/%s%s", s.name, quick ? "-quick" : "");
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dir[--dl] = 0;

    /* every step, built before anything runs: each command's options struct, called with it */
    int n_steps = 0, n_gen = 0;
    for (int i = 0; i < s.n_workloads; i++) n_gen += s.workloads[i].source != AB_SCENARIO_FILE;
    size_t cap = (size_t)(n_gen + s.n_evals) + 3;
    struct call *calls = calloc(cap, sizeof *calls);
    struct ab_gen_run_opts *gens = calloc((size_t)n_gen + 1, sizeof *gens);
    struct ab_eval_run_opts *evals = calloc((size_t)s.n_evals + 1, sizeof *evals);
    struct ab_import_run_opts *imports = calloc((size_t)n_gen + 1, sizeof *imports);
    struct ab_capture_run_opts *captures = calloc((size_t)n_gen + 1, sizeof *captures);
    const char **labels = calloc(cap, sizeof *labels);
    char(*eval_labels)[32] = calloc((size_t)s.n_evals + 1, sizeof *eval_labels);
    struct ab_run_opts run = {0};
    struct ab_heads_run_opts heads = {0};
    struct ab_report_run_opts report = {0};
    char report_pos[AB_SCENARIO_MAX_EVALS + 2][4200];
    const char *report_ptrs[AB_SCENARIO_MAX_EVALS + 2];
    char(*paths)[4200] = calloc(AB_SCENARIO_MAX_WORKLOADS, sizeof *paths);
    const char *path_ptrs[AB_SCENARIO_MAX_WORKLOADS];
    char tail[96];
    snprintf(tail, sizeof tail, "--seed %llu --threads %lld", (unsigned long long)seed,
             (long long)threads);
    if (!calls || !gens || !evals || !imports || !captures || !labels || !eval_labels || !paths) {
        st = ab_cmd_error(EX_AB_DATA, "scenario: out of memory");
        goto done;
    }
    for (int i = 0, g = 0, m = 0, cp = 0; i < s.n_workloads && !rc; i++) {
        const struct ab_scenario_workload *w = &s.workloads[i];
        workload_path(paths[i], sizeof paths[i], w, dir);
        path_ptrs[i] = paths[i];
        if (w->source == AB_SCENARIO_FILE) continue;
        labels[n_steps] = w->name;
        uint64_t ws = w->seed == s.seed ? seed : w->seed;
        char wtail[96];
        snprintf(wtail, sizeof wtail, "--seed %llu --threads %lld", (unsigned long long)ws,
                 (long long)threads);
        if (w->source == AB_SCENARIO_GEN) {
            struct ab_gen_run_opts *o = &gens[g++];
            calls[n_steps] = (struct call){.cmd = "gen", .t = ab_gen_run_decl,
                                            .o = o, .fn = call_gen};
            if (!(rc = fill_gen(o, w, dir, ws)))
                rc = call_line(&calls[n_steps], NULL, 0, ws, wtail);
            n_steps++;
        } else if (w->source == AB_SCENARIO_CAPTURE) {
            struct ab_capture_run_opts *o = &captures[cp++];
            calls[n_steps] = (struct call){.cmd = "capture", .t = ab_capture_run_decl,
                                            .o = o, .fn = call_capture};
            if (!(rc = fill_capture(o, &s, w, dir, ws)))
                rc = call_line(&calls[n_steps], NULL, 0, ws, wtail);
            n_steps++;
        } else {
            struct ab_import_run_opts *o = &imports[m++];
            calls[n_steps] = (struct call){.cmd = "import", .t = ab_import_run_decl,
                                            .o = o, .fn = call_import};
            if (!(rc = fill_import(o, w, dir)))
                rc = call_line(&calls[n_steps], o->files, o->n_files, ws, wtail);
            n_steps++;
        }
    }
    if (!rc && s.has_run) {
        labels[n_steps] = "run";
        calls[n_steps] = (struct call){.cmd = "run", .t = ab_run_decl, .o = &run, .fn = call_run};
        if (!(rc = fill_run(&run, &s, dir, seed, path_ptrs)))
            rc = call_line(&calls[n_steps], run.workloads, run.n_workloads, seed, tail);
        n_steps++;
    }
    if (!rc && s.has_heads) {
        labels[n_steps] = "heads";
        calls[n_steps] = (struct call){.cmd = "heads", .t = ab_heads_run_decl,
                                        .o = &heads, .fn = call_heads};
        if (!(rc = fill_heads(&heads, &s, dir, seed, path_ptrs)))
            rc = call_line(&calls[n_steps], heads.workloads, heads.n_workloads, seed, tail);
        n_steps++;
    }
    if (rc) {
        st = ab_cmd_fail(rc);
        goto done;
    }
    for (int i = 0; i < s.n_evals; i++) {
        if (i)
            snprintf(eval_labels[i], sizeof eval_labels[i], "model-%d", i + 1);
        else
            snprintf(eval_labels[i], sizeof eval_labels[i], "model");
        labels[n_steps] = eval_labels[i];
        calls[n_steps] = (struct call){.cmd = "eval-model", .t = ab_eval_run_decl,
                                        .o = &evals[i], .fn = call_eval};
        if (!(rc = fill_eval(&evals[i], &s, i, dir, seed)))
            rc = call_line(&calls[n_steps], NULL, 0, seed, tail);
        n_steps++;
        if (rc) {
            st = ab_cmd_fail(rc);
            goto done;
        }
    }
    labels[n_steps] = "report";
    calls[n_steps] = (struct call){.cmd = "report", .t = ab_report_run_decl,
                                    .o = &report, .fn = call_report};
    if (!(rc = fill_report(&report, &s, dir, report_pos, report_ptrs)))
        rc = call_line(&calls[n_steps], report.results, report.n_results, seed, NULL);
    n_steps++;
    if (rc) {
        st = ab_cmd_fail(rc);
        goto done;
    }

    if (dry) {
        printf("# scenario '%s' (%s), sha256 %s%s\n", s.name, file, s.sha256,
               quick ? ", quick" : "");
        for (int i = 0; i < n_steps; i++) printf("%s\n", calls[i].line);
        st = EX_AB_OK;
        goto done;
    }

    char copy[4200], sha[4200];
    snprintf(copy, sizeof copy, "%s/scenario.yaml", dir);
    snprintf(sha, sizeof sha, "%s/scenario.sha256", dir);
    if (make_dirs(dir)) {
        st =
            ab_cmd_error(EX_AB_CANTCREAT, "scenario: cannot create '%s': %s", dir, strerror(errno));
    } else if ((rc = ab_scenario_save(&s, copy, sha))) {
        st = ab_cmd_fail(rc);
    } else {
        ab_out_file(copy), ab_out_file(sha);
        fflush(stdout);
        st = EX_AB_OK;
    }
    double t0 = ab_now();
    for (int i = 0; i < n_steps && st == EX_AB_OK; i++) {
        const struct call *c = &calls[i];
        char name[128], key[65];
        snprintf(name, sizeof name, "step %d/%d (%s%s%s)", i + 1, n_steps, c->cmd,
                 strcmp(c->cmd, labels[i]) ? " " : "", strcmp(c->cmd, labels[i]) ? labels[i] : "");
        /* up to date: the same key (options, inputs, version) as when it wrote its output */
        const char *out = step_out(c);
        int keyed = ab_step_key(c->cmd, c->t, c->o, c->pos, c->n_pos, c->seed, key) == AB_OK;
        if (keyed && !force && ab_step_fresh(out, key)) {
            if (!ab_common.quiet)
                fprintf(stderr, "scenario: %s: up to date (%s), skipped; --force runs it\n", name,
                        out);
            continue;
        }
        ab_step_unstamp(out);
        if (!ab_common.quiet) fprintf(stderr, "scenario: %s: %s\n", name, c->line);
        double ts = ab_now();
        ab_common.nested = 1; /* under --quiet the steps print no path: the scenario prints one */
        ab_threads_set((int)threads);
        int step_st = c->fn(c->o);
        ab_common.nested = 0;
        fflush(stdout);
        if (step_st != EX_AB_OK) {
            st = ab_cmd_error(step_st, "scenario '%s': %s failed with exit status %d", file, name,
                              step_st);
            break;
        }
        if (keyed) ab_step_stamp(out, key); /* without it the step simply runs again */
        if (!ab_common.quiet) {
            char took[32];
            ab_fmt_duration(took, sizeof took, ab_now() - ts);
            fprintf(stderr, "scenario: %s done in %s\n", name, took);
        }
    }
    if (st == EX_AB_OK) {
        char took[32], md[4200];
        ab_fmt_duration(took, sizeof took, ab_now() - t0);
        snprintf(md, sizeof md, "%s/report/report.md", dir);
        ab_out_main("scenario", md, "'%s' done in %s; outputs in %s/", s.name, took, dir);
    }
done:
    for (int i = 0; calls && i < n_steps; i++)
        ab_decl_free(calls[i].t, calls[i].o), free(calls[i].line);
    free(calls);
    free(gens);
    free(evals);
    free(imports);
    free(captures);
    free(paths);
    free(labels);
    free(eval_labels);
    ab_scenario_free(&s);
    return st;
}
