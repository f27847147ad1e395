/* eval_model.c - `attnbench eval-model` as a library call (see eval_model.h). */
#include "run/eval_model.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/list.h"
#include "eval/e2e.h"
#include "io/csv.h"
#include "io/results_io.h"
#include "methods/method.h"

static const char *const phase_words[] = {"prefill", "decode", NULL};
static const char *const phase_aliases[] = {"both", "prefill,decode", NULL};
static const char *const method_aliases[] = {"all", NULL, NULL};

#define ROW(f) AB_DECL_ROW(struct ab_eval_run_opts, f)
static const char *const budget_aliases[] = {"default", "0.5,0.25,0.125",
                                             "paper", "0.7,0.5,0.3,0.2,0.1,0.05", NULL};
const struct ab_decl ab_eval_run_decl[] = {
    {"plugin", AB_DECL_LIST, ROW(plugins), NULL, 0, 0, "SO",
     "load method rows from this plugin first (repeatable; plugins/README.md)",
     .flags = AB_DECL_CLI | AB_DECL_INPUT | AB_DECL_APPEND},
    {"model", AB_DECL_STR, ROW(model), NULL, 0, 0, "FILE", "llama2.c checkpoint or GGUF file",
     .flags = AB_DECL_INPUT},
    {"tokenizer", AB_DECL_STR, ROW(tokenizer), NULL, 0, 0, "FILE",
     "llama2.c tokenizer (default: the GGUF's own, or tok<vocab>.bin / tokenizer.bin beside the "
     "model)", .flags = AB_DECL_INPUT},
    {"text", AB_DECL_STR, ROW(text), NULL, 0, 0, "FILE",
     "a text to score (perplexity, next-token accuracy)", .flags = AB_DECL_INPUT},
    {"copy-task", AB_DECL_INT, ROW(copy_task), "0", 0, 1000000, "R",
     "also score BOS + R seeded random tokens + the same R again (copy accuracy; 0: none)"},
    {"methods", AB_DECL_LIST, ROW(methods), NULL, 0, 0, "LIST",
     "methods to put in the model, or all (default: every causal method of the phase)",
     .aliases = method_aliases},
    {"budgets", AB_DECL_LIST, ROW(budgets), NULL, 0, 1, "LIST",
     "per-head target FLOP ratios in (0, 1], default (0.5,0.25,0.125: the default when no "
     "--kv-budget or --bytes-budget is given either) or paper (the Sparse Frontier's grid "
     "0.7 .. 0.05)", .item_real = 1, .lo_open = 1, .aliases = budget_aliases},
    {"kv-budget", AB_DECL_LIST, ROW(kv_budget), NULL, 1, INFINITY, "T,...",
     "decode budgets as tokens read per step (cells / m: the cache size of an eviction "
     "method), integers >= 1", .item_real = 1},
    {"bytes-budget", AB_DECL_LIST, ROW(bytes_budget), NULL, 0, 1, "R,...",
     "decode budgets as the ratio of K/V bytes read to dense's, in (0, 1]", .item_real = 1,
     .lo_open = 1},
    {"layer-budget", AB_DECL_STR, ROW(layer_budget), NULL, 0, 0, "RULE",
     "per-layer targets (run's option): eval-model takes only uniform, every head fitted to "
     "the budget itself"},
    {"knob", AB_DECL_STR, ROW(knob), NULL, 0, 0, "NAME=V",
     "run every method at this knob instead of fitting budgets"},
    {"phase", AB_DECL_LIST, ROW(phases), "prefill", 0, 2, "P",
     "prefill (every row), decode (the last M rows) or both", .key = "phases",
     .choices = phase_words, .aliases = phase_aliases},
    {"decode-queries", AB_DECL_INT, ROW(decode_queries), "64", 1, INT32_MAX, "M",
     "decode: rows served by the method at the end of the input"},
    {"decode-horizon", AB_DECL_INT, ROW(decode_horizon), "1024", 1, INT32_MAX, "G",
     "decode: generated tokens one-off work (cache compression, indexes) is amortised over, >= M"},
    {"heads", AB_DECL_STR, ROW(heads), NULL, 0, 0, "L:H,...",
     "replace only these heads (default: all)"},
    {"stride", AB_DECL_INT, ROW(stride), "0", 0, INT32_MAX, "S",
     "texts longer than the context: sliding windows of the context every S tokens (0: half the "
     "context)"},
    {"window-bos", AB_DECL_FLAG, ROW(window_bos), NULL, 0, 0, NULL,
     "sliding windows after the first start with BOS (in place of their first token), as the "
     "model was trained"},
    {"heads-top", AB_DECL_STR, ROW(heads_top), NULL, 0, 0, "K,...",
     "replace the K heads with the largest --heads-score in --heads-file (a list: one set of "
     "rows per K)"},
    {"heads-bottom", AB_DECL_STR, ROW(heads_bottom), NULL, 0, 0, "K,...",
     "replace the K heads with the smallest --heads-score"},
    {"heads-score", AB_DECL_STR, ROW(heads_score), NULL, 0, 0, "COL",
     "column of the /heads table ranking heads (retrieval_score, induction_score, ...)"},
    {"heads-file", AB_DECL_STR, ROW(heads_file), NULL, 0, 0, "FILE",
     "results file of 'attnbench heads' on a capture of this model", .flags = AB_DECL_INPUT},
    {"heads-random", AB_DECL_STR, ROW(heads_random), NULL, 0, 0, "K,...",
     "replace K seeded random heads (the control for --heads-top)"},
    {"heads-select", AB_DECL_FLAG, ROW(heads_select), NULL, 0, 0, NULL,
     "ACT's protocol: keep the heads where the method alone lowers the calibration NLL"},
    {"calibrate", AB_DECL_STR, ROW(calibrate), NULL, 0, 0, "FILE",
     "--heads-select: the calibration text", .flags = AB_DECL_INPUT},
    {"calibrate-copy", AB_DECL_INT, ROW(calibrate_copy), "0", 0, 1000000, "R",
     "--heads-select: calibrate on a copy task of R tokens (its own seed stream; 0: none)"},
    {"select-min", AB_DECL_REAL, ROW(select_min), "0", -INFINITY, INFINITY, "D",
     "--heads-select: minimum NLL decrease in nats/token"},
    {"o", AB_DECL_STR, ROW(out), NULL, 0, 0, "FILE",
     "results file to write (.h5; RESULTS-model.csv goes next to it)",
     .flags = AB_DECL_CLI | AB_DECL_OUTPUT},
    {0},
};
#undef ROW

/* ab_eval_model's heads_read: column col of the /heads rows of file's first workload. */
static int heads_read(void *user, const char *file, const char *col, struct ab_head_scores *out)
{
    (void)user;
    int n_cols;
    const struct ab_column *cols = ab_results_head_columns(&n_cols);
    size_t off = 0;
    int found = 0;
    for (int i = 0; i < n_cols && !found; i++)
        if (!strcmp(cols[i].name, col) && cols[i].type == AB_COL_F64)
            off = cols[i].offset, found = 1;
    if (!found)
        return ab_fail(AB_E_USAGE, "--heads-score: '%s' is not a numeric column of the /heads "
                       "table (e.g. retrieval_score, induction_score, echo_score, out_dev, "
                       "first_weight)", col);
    struct ab_results r;
    int rc = ab_results_read_h5(file, &r);
    if (!rc && !r.n_heads)
        rc = ab_fail(AB_E_DATA, "'%s': no /heads table (write one with attnbench heads)", file);
    size_t n = (size_t)r.n_heads;
    if (!rc && (!(out->layer = malloc(sizeof(int64_t) * n)) ||
                !(out->head = malloc(sizeof(int64_t) * n)) ||
                !(out->score = malloc(sizeof(double) * n))))
        rc = ab_fail(AB_E_NOMEM, "out of memory");
    for (int64_t i = 0; !rc && i < r.n_heads; i++) {
        const struct ab_head_row *h = &r.heads[i];
        if (strcmp(h->workload, r.heads[0].workload)) continue;
        out->layer[out->n] = h->layer, out->head[out->n] = h->head;
        out->score[out->n++] = *(const double *)((const char *)h + off);
    }
    ab_results_free(&r);
    return rc;
}

/* What the engine's callbacks need: the caller's hooks, and what begin records. */
struct relay {
    const struct ab_eval_run_opts *o;
    const struct ab_eval_run_hooks *h;
    struct ab_results *res;
};

/* The engine's begin: every check passed; record the provenance, then tell the caller. */
static int on_begin(void *user, int64_t total)
{
    struct relay *x = user;
    const struct ab_eval_run_opts *o = x->o;
    const char *prov[3];
    int n_prov = 0;
    prov[n_prov++] = o->model;
    if (o->text) prov[n_prov++] = o->text;
    if (o->calibrate) prov[n_prov++] = o->calibrate;
    char tail[96];
    snprintf(tail, sizeof tail, "--seed %llu --threads %d", (unsigned long long)o->seed,
             ab_threads_get());
    char *line = ab_decl_command("eval-model", ab_eval_run_decl, o, NULL, 0, tail);
    if (!line) return ab_fail(AB_E_NOMEM, "out of memory");
    int rc = ab_results_provenance_line(x->res, line, prov, n_prov, o->seed);
    free(line);
    if (!rc && !(x->res->options = ab_decl_json(ab_eval_run_decl, o)))
        rc = ab_fail(AB_E_NOMEM, "out of memory");
    if (!rc && x->h->begin) x->h->begin(x->h->user, total);
    return rc;
}
static void on_progress(void *user, int64_t done, int64_t total)
{
    struct relay *x = user;
    if (x->h->progress) x->h->progress(x->h->user, done, total);
}
static void on_row(void *user, const struct ab_model_row *row)
{
    struct relay *x = user;
    if (x->h->row) x->h->row(x->h->user, row);
}
static void on_note(void *user, const char *msg)
{
    struct relay *x = user;
    if (x->h->note) x->h->note(x->h->user, msg);
}

/* The checks across options, then the engine's options from o. */
static int resolve(const struct ab_eval_run_opts *o, struct ab_eval_model_opts *eo,
                   const struct ab_method **list, double *targets, double *kv_tokens,
                   double *kv_bytes, int cap_targets)
{
    if (!o->model) return ab_fail(AB_E_USAGE, "name the model with --model");
    if (!o->out) return ab_fail(AB_E_USAGE, "name the results file with -o");
    if (!o->text && o->copy_task <= 0)
        return ab_fail(AB_E_USAGE, "give an input: --text FILE and/or --copy-task R");
    if (o->decode_horizon < o->decode_queries)
        return ab_fail(AB_E_USAGE, "--decode-horizon %lld is below --decode-queries %lld",
                       (long long)o->decode_horizon, (long long)o->decode_queries);
    int ranked = o->heads_top || o->heads_bottom || o->heads_random;
    if ((o->heads != NULL) + ranked + o->heads_select > 1)
        return ab_fail(AB_E_USAGE, "choose one of --heads, --heads-top/--heads-bottom/"
                       "--heads-random, --heads-select");
    if ((o->heads_top || o->heads_bottom) && (!o->heads_score || !o->heads_file))
        return ab_fail(AB_E_USAGE, "--heads-top and --heads-bottom need --heads-score COL and "
                       "--heads-file FILE");
    if (o->heads_select && !o->calibrate == !o->calibrate_copy)
        return ab_fail(AB_E_USAGE, "--heads-select needs one of --calibrate FILE or "
                       "--calibrate-copy R");
    if ((o->kv_budget || o->bytes_budget) && !(ab_phases_parse(o->phases) & AB_PHASE_DECODE))
        return ab_fail(AB_E_USAGE, "option '--%s': tokens and bytes budgets are decode budgets, "
                       "and --phase is prefill", o->kv_budget ? "kv-budget" : "bytes-budget");
    if (o->layer_budget && strcmp(o->layer_budget, "uniform"))
        return ab_fail(AB_E_USAGE, "option '--layer-budget': eval-model fits every head to the "
                       "budget itself (uniform); per-layer rules such as '%s' are run's only",
                       o->layer_budget);
    *eo = (struct ab_eval_model_opts){.model = o->model, .tokenizer = o->tokenizer,
                                      .text = o->text, .copy_task = o->copy_task,
                                      .decode_m = o->decode_queries, .horizon = o->decode_horizon,
                                      .stride = o->stride, .window_bos = o->window_bos,
                                      .heads = o->heads, .heads_top = o->heads_top,
                                      .heads_bottom = o->heads_bottom,
                                      .heads_random = o->heads_random,
                                      .heads_score = o->heads_score, .heads_file = o->heads_file,
                                      .heads_select = o->heads_select, .calibrate = o->calibrate,
                                      .calibrate_copy = o->calibrate_copy,
                                      .select_min = o->select_min, .seed = o->seed};
    eo->phases = ab_phases_parse(o->phases);
    int n = 0, rc;
    if ((rc = ab_methods_resolve(o->methods, eo->phases, 1, list, 256, &n)))
        return ab_fail(rc, "option '--methods': %s", ab_errmsg());
    eo->methods = list, eo->n_methods = n;
    int n_kv = ab_list_reals(o->kv_budget, kv_tokens, cap_targets);
    int n_by = ab_list_reals(o->bytes_budget, kv_bytes, cap_targets);
    for (int i = 0; i < n_kv; i++)
        if (kv_tokens[i] != floor(kv_tokens[i]))
            return ab_fail(AB_E_USAGE, "option '--kv-budget': %g is not a whole number of tokens",
                           kv_tokens[i]);
    if (o->knob && (n_kv || n_by))
        return ab_fail(AB_E_USAGE, "option '--knob' runs every method at a knob instead of "
                       "budgets: drop --%s", n_kv ? "kv-budget" : "bytes-budget");
    /* the FLOP grid: as given, or the default one when no budget of any kind is */
    const char *flops = o->budgets ? o->budgets : n_kv || n_by ? NULL : budget_aliases[1];
    eo->n_targets = ab_list_reals(flops, targets, cap_targets);
    eo->targets = targets;
    eo->kv_tokens = kv_tokens, eo->n_kv_tokens = n_kv;
    eo->kv_bytes = kv_bytes, eo->n_kv_bytes = n_by;
    if (o->knob && (rc = ab_methods_knob(o->knob, list, n, &eo->apply.knob))) return rc;
    eo->apply.has_knob = o->knob != NULL;
    return AB_OK;
}

int ab_eval_run(const struct ab_eval_run_opts *o, const struct ab_eval_run_hooks *hooks,
                struct ab_results *res, char *csv, size_t cap)
{
    ab_results_init(res);
    csv[0] = 0;
    const struct ab_method *list[256];
    double targets[64], kv_tokens[64], kv_bytes[64];
    struct ab_eval_model_opts eo;
    int rc = ab_plugins_load(o->plugins);
    if (rc) return rc;
    rc = resolve(o, &eo, list, targets, kv_tokens, kv_bytes, 64);
    if (rc) return rc;
    size_t len = strlen(o->out);
    if (len > 3 && !strcmp(o->out + len - 3, ".h5")) len -= 3;
    snprintf(csv, cap, "%.*s-model.csv", (int)len, o->out);
    struct relay x = {o, hooks, res};
    eo.heads_read = heads_read, eo.begin = on_begin, eo.progress = on_progress;
    eo.row = on_row, eo.note = on_note, eo.user = &x;
    if (!(rc = ab_eval_model(&eo, res)) && !(rc = ab_results_summarise(res)) &&
        !(rc = ab_results_write_h5(o->out, res)) && (rc = ab_results_write_model_csv(csv, res)))
        remove(o->out); /* all or nothing */
    return rc;
}
