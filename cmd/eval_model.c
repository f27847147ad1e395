/* eval_model.c - `attnbench eval-model`: registry methods replace attention inside a real
 * model (every layer, or chosen heads), scored end to end on a text (perplexity, next-token
 * accuracy) and on a copy task (a random block repeated: the second copy's next-token accuracy
 * measures retrieval through attention), next to dense on the same input. The engine is
 * lib/eval's (ab_eval_model, lib/eval/e2e.h); this file turns argv into its options, reads the
 * /heads table it ranks heads by, records the provenance and prints the rows as they come.
 *
 * Texts longer than the model's context are scored with sliding windows (lib/eval/e2e.h:
 * windows of the context length every --stride tokens, default half the context, each target
 * scored once with at least context - stride tokens before it); the note on stderr says so.
 *
 * Heads: every head by default; `--heads L:H,...` names them; `--heads-top K,... --heads-score
 * COL --heads-file HEADS.h5` takes the K heads with the largest COL in the /heads table of
 * `attnbench heads` on a capture of the same model (retrieval heads, induction heads),
 * `--heads-bottom K,...` the K with the smallest, `--heads-random K,...` K seeded random heads
 * (the control); the three take lists and combine, one set of rows per (choice, K), so the
 * ablation of the retrieval-head papers is one command. `--heads-select` follows ACT's protocol:
 * on a calibration input (--calibrate FILE or --calibrate-copy R), replace one head at a time
 * and keep the heads where the method lowers the NLL by more than --select-min, then evaluate
 * with that set on the inputs. Rows go to the /model table of RESULTS.h5 and RESULTS-model.csv. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/list.h"
#include "eval/e2e.h"
#include "io/csv.h"
#include "io/results_io.h"
#include "opts.h"

static const char *usage_text =
    "attnbench eval-model --model FILE [--tokenizer FILE] [--text FILE] [--copy-task R]\n"
    "                     [--methods a,b,...] [--budgets 0.5,0.25,...] [--knob k=v]\n"
    "                     [--phase prefill|decode|both] [--decode-queries M]\n"
    "                     [--stride S]\n"
    "                     [--heads L:H,... | [--heads-top K,...] [--heads-bottom K,...]\n"
    "                      [--heads-random K,...] --heads-score COL --heads-file H.h5 |\n"
    "                      --heads-select (--calibrate FILE | --calibrate-copy R)]\n"
    "                     -o RESULTS.h5";

enum { MAX_TARGETS = 32, MAX_METHODS = 256 };

/* Value of a float column of a /heads row, by column name. */
static int head_col(const char *col, size_t *offset)
{
    int n;
    const struct ab_column *cols = ab_results_head_columns(&n);
    for (int i = 0; i < n; i++)
        if (!strcmp(cols[i].name, col) && cols[i].type == AB_COL_F64) {
            *offset = cols[i].offset;
            return AB_OK;
        }
    return ab_fail(AB_E_USAGE, "--heads-score: '%s' is not a numeric column of the /heads table "
                   "(e.g. retrieval_score, induction_score, echo_score, out_dev, first_weight)", col);
}

/* ab_eval_model's heads_read: column col of the /heads rows of file's first workload. */
static int heads_read(void *user, const char *file, const char *col, struct ab_head_scores *out)
{
    (void)user;
    size_t off = 0;
    int rc = head_col(col, &off);
    if (rc) return rc;
    struct ab_results r;
    if ((rc = ab_results_read_h5(file, &r))) {
        ab_results_free(&r);
        return rc;
    }
    if (!r.n_heads) rc = ab_fail(AB_E_DATA, "'%s': no /heads table (write one with attnbench heads)", file);
    size_t n = (size_t)r.n_heads;
    if (!rc && (!(out->layer = malloc(sizeof(int64_t) * n)) || !(out->head = malloc(sizeof(int64_t) * n)) ||
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

static void print_row(const struct ab_model_row *r)
{
    printf("%-14s %-16s %-8s %7.4g %7.4g %5lld/%-5lld ", ab_path_base(r->workload), r->method, r->phase,
           r->target_ratio, r->flop_ratio, (long long)r->heads_feasible, (long long)r->n_heads);
    if (r->reason && r->reason[0])
        printf("%9s %9.4f  %s", "-", r->dense_ppl, r->reason);
    else
        printf("%9.4f %9.4f %7.3f %8.3f %9.3g", r->ppl, r->dense_ppl, r->acc, r->copy_acc,
               r->rel_l2);
    printf(strcmp(r->heads, "all") ? "  heads: %s\n" : "\n", r->heads);
}

/* What the command keeps while the engine runs: the progress it shows once the passes begin,
 * the provenance it records then, and the rows it prints as they come. */
struct run {
    struct ab_progress prog;
    int started;
    struct ab_results *res;
    int argc;
    char **argv;
    char *prov[3];
    int n_prov;
};

static int on_begin(void *user, int64_t total)
{
    struct run *x = user;
    int rc = ab_results_provenance(x->res, x->argc, x->argv, x->prov, x->n_prov, ab_common.seed);
    if (rc) return rc;
    ab_progress_start(&x->prog, "eval-model", "passes", total);
    x->started = 1;
    if (!ab_common.quiet)
        printf("%-14s %-16s %-8s %7s %7s %11s %9s %9s %7s %8s %9s\n", "input", "method", "phase",
               "target", "ratio", "feasible", "ppl", "dense_ppl", "acc", "copy_acc", "rel_l2");
    return AB_OK;
}

static void on_progress(void *user, int64_t done, int64_t total)
{
    struct run *x = user;
    ab_progress_engine(&x->prog, done, total);
}

static void on_row(void *user, const struct ab_model_row *row)
{
    struct run *x = user;
    ab_progress_pause(&x->prog); /* the row takes the bar's place */
    if (!ab_common.quiet) print_row(row);
    fflush(stdout);
}

static void on_note(void *user, const char *msg)
{
    (void)user;
    if (!ab_common.quiet) fprintf(stderr, "%s\n", msg);
}

int cmd_eval_model(int argc, char **argv)
{
    struct ab_eval_model_opts eo = {.decode_m = 64, .horizon = AB_DECODE_HORIZON};
    const char *methods = NULL, *budgets = NULL, *knob = NULL, *phase = "prefill", *out = NULL;
    const struct ab_opt opts[] = {
        {"model", AB_OPT_STRING, &eo.model, "FILE", "llama2.c checkpoint or GGUF file"},
        {"tokenizer", AB_OPT_STRING, &eo.tokenizer, "FILE", "llama2.c tokenizer (default: the GGUF's own, or tok<vocab>.bin / tokenizer.bin beside the model)"},
        {"text", AB_OPT_STRING, &eo.text, "FILE", "a text to score (perplexity, next-token accuracy)"},
        {"copy-task", AB_OPT_INT, &eo.copy_task, "R", "also score BOS + R seeded random tokens + the same R again (copy accuracy)"},
        {"methods", AB_OPT_STRING, &methods, "LIST", "methods to put in the model (default: every causal method of the phase)"},
        {"budgets", AB_OPT_STRING, &budgets, "LIST", "per-head target FLOP ratios (default 0.5,0.25,0.125)"},
        {"knob", AB_OPT_STRING, &knob, "NAME=V", "run every method at this knob instead of fitting budgets"},
        {"phase", AB_OPT_STRING, &phase, "P", "prefill (every row), decode (the last M rows) or both (default prefill)"},
        {"decode-queries", AB_OPT_INT, &eo.decode_m, "M", "decode: rows served by the method at the end of the input (default 64)"},
        {"decode-horizon", AB_OPT_INT, &eo.horizon, "G", "decode: generated tokens one-off work (cache compression, indexes) is amortised over, >= M (default 1024)"},
        {"heads", AB_OPT_STRING, &eo.heads, "L:H,...", "replace only these heads (default: all)"},
        {"stride", AB_OPT_INT, &eo.stride, "S", "texts longer than the context: sliding windows of the context every S tokens (default half the context)"},
        {"window-bos", AB_OPT_FLAG, &eo.window_bos, NULL, "sliding windows after the first start with BOS (in place of their first token), as the model was trained"},
        {"heads-top", AB_OPT_STRING, &eo.heads_top, "K,...", "replace the K heads with the largest --heads-score in --heads-file (a list: one set of rows per K)"},
        {"heads-bottom", AB_OPT_STRING, &eo.heads_bottom, "K,...", "replace the K heads with the smallest --heads-score"},
        {"heads-score", AB_OPT_STRING, &eo.heads_score, "COL", "column of the /heads table ranking heads (retrieval_score, induction_score, ...)"},
        {"heads-file", AB_OPT_STRING, &eo.heads_file, "FILE", "results file of 'attnbench heads' on a capture of this model"},
        {"heads-random", AB_OPT_STRING, &eo.heads_random, "K,...", "replace K seeded random heads (the control for --heads-top)"},
        {"heads-select", AB_OPT_FLAG, &eo.heads_select, NULL, "ACT's protocol: keep the heads where the method alone lowers the calibration NLL"},
        {"calibrate", AB_OPT_STRING, &eo.calibrate, "FILE", "--heads-select: the calibration text"},
        {"calibrate-copy", AB_OPT_INT, &eo.calibrate_copy, "R", "--heads-select: calibrate on a copy task of R tokens (its own seed stream)"},
        {"select-min", AB_OPT_DOUBLE, &eo.select_min, "D", "--heads-select: minimum NLL decrease in nats/token (default 0)"},
        {"o", AB_OPT_STRING, &out, "FILE", "results file to write (.h5; RESULTS-model.csv goes next to it)"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[1];
    int n_pos, st = ab_opts_parse("eval-model", usage_text, opts, argc, argv, pos, 0, &n_pos);
    if (st >= 0) return st;
    st = EX_AB_OK;
    if (!eo.model) return ab_cmd_error(EX_AB_USAGE, "eval-model: name the model with --model");
    if (!out) return ab_cmd_error(EX_AB_USAGE, "eval-model: name the results file with -o");
    if (!eo.text && eo.copy_task <= 0)
        return ab_cmd_error(EX_AB_USAGE, "eval-model: give an input: --text FILE and/or --copy-task R");
    if (eo.copy_task < 0 || eo.decode_m < 1 || eo.calibrate_copy < 0 || eo.stride < 0)
        return ab_cmd_error(EX_AB_USAGE, "eval-model: --copy-task, --decode-queries, --stride "
                            "and --calibrate-copy must be positive");
    if (eo.horizon < eo.decode_m)
        return ab_cmd_error(EX_AB_USAGE, "eval-model: --decode-horizon %lld is below --decode-queries %lld",
                            (long long)eo.horizon, (long long)eo.decode_m);
    int ranked = eo.heads_top || eo.heads_bottom || eo.heads_random;
    int n_sel = (eo.heads != NULL) + ranked + eo.heads_select;
    if (n_sel > 1)
        return ab_cmd_error(EX_AB_USAGE, "eval-model: choose one of --heads, --heads-top/--heads-bottom/--heads-random, --heads-select");
    if ((eo.heads_top || eo.heads_bottom) && (!eo.heads_score || !eo.heads_file))
        return ab_cmd_error(EX_AB_USAGE, "eval-model: --heads-top and --heads-bottom need --heads-score COL and --heads-file FILE");
    if (eo.heads_select && !eo.calibrate == !eo.calibrate_copy)
        return ab_cmd_error(EX_AB_USAGE, "eval-model: --heads-select needs one of --calibrate FILE or --calibrate-copy R");
    if (!strcmp(phase, "prefill")) eo.phases = AB_PHASE_PREFILL;
    else if (!strcmp(phase, "decode")) eo.phases = AB_PHASE_DECODE;
    else if (!strcmp(phase, "both")) eo.phases = AB_PHASE_PREFILL | AB_PHASE_DECODE;
    else return ab_cmd_error(EX_AB_USAGE, "eval-model: --phase must be prefill, decode or both, got '%s'", phase);

    const struct ab_method *list[MAX_METHODS];
    int n_list;
    if ((st = ab_opts_methods("eval-model", methods, eo.phases, 1, list, MAX_METHODS, &n_list)) >= 0) return st;
    double targets[MAX_TARGETS] = {0.5, 0.25, 0.125};
    int n_t = 3;
    if (budgets && (st = ab_opts_budgets("eval-model", budgets, targets, MAX_TARGETS, &n_t)) >= 0) return st;
    char knob_name[64] = "";
    if (knob) {
        const char *s = knob;
        int rc = ab_list_next(&s, '=', knob_name, sizeof knob_name, &eo.apply.knob, "--knob");
        if (rc != 1 || *s) return rc < 0 ? ab_cmd_fail(rc) : ab_cmd_error(EX_AB_USAGE, "eval-model: --knob wants one NAME=VALUE");
        for (int i = 0; i < n_list; i++)
            if (list[i]->knob.name && strcmp(list[i]->knob.name, knob_name))
                return ab_cmd_error(EX_AB_USAGE, "eval-model: --knob %s does not apply to '%s' (its knob is %s)",
                                    knob_name, list[i]->name, list[i]->knob.name);
        eo.apply.has_knob = 1;
    }

    st = EX_AB_OK; /* the option helpers leave -1 in st */
    eo.methods = list, eo.n_methods = n_list, eo.targets = targets, eo.n_targets = n_t;
    eo.seed = ab_common.seed;
    struct ab_results res;
    ab_results_init(&res);
    struct run x = {.res = &res, .argc = argc, .argv = argv};
    x.prov[x.n_prov++] = (char *)eo.model;
    if (eo.text) x.prov[x.n_prov++] = (char *)eo.text;
    if (eo.calibrate) x.prov[x.n_prov++] = (char *)eo.calibrate;
    eo.heads_read = heads_read, eo.begin = on_begin, eo.progress = on_progress, eo.row = on_row;
    eo.note = on_note, eo.user = &x;
    int rc = ab_eval_model(&eo, &res);
    if (x.started && !rc)
        ab_progress_end(&x.prog);
    else if (x.started)
        ab_progress_stop(&x.prog);
    char csv[4096];
    size_t len = strlen(out);
    if (len > 3 && !strcmp(out + len - 3, ".h5")) len -= 3;
    snprintf(csv, sizeof csv, "%.*s-model.csv", (int)len, out);
    if (!rc && !(rc = ab_results_summarise(&res)) && !(rc = ab_results_write_h5(out, &res)) &&
        (rc = ab_results_write_model_csv(csv, &res)))
        remove(out);
    if (rc) st = ab_cmd_fail(rc);
    else {
        ab_out_file(out), ab_out_file(csv);
        ab_out_main("eval-model", out, "%lld rows; %s beside it", (long long)res.n_model,
                    ab_path_base(csv));
    }
    ab_results_free(&res);
    return st;
}
