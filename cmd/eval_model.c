/* eval_model.c - `attnbench eval-model`: registry methods replace attention inside a real
 * model (every layer, or chosen heads), scored end to end on a text (perplexity, next-token
 * accuracy) and on a copy task (a random block repeated: the second copy's next-token accuracy
 * measures retrieval through attention), next to dense on the same input. The engine is
 * lib/eval's (ab_eval_model, lib/eval/e2e.h), called through ab_eval_run (lib/run/
 * eval_model.c, the options declared once in ab_eval_run_decl); this file turns argv into
 * those options and prints the rows as they come.
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
#include "core/decl.h"
#include "opts.h"
#include "run/eval_model.h"

static const char *usage_text =
    "attnbench eval-model --model FILE [--tokenizer FILE] [--text FILE] [--copy-task R]\n"
    "                     [--methods a,b,...] [--budgets 0.5,0.25,...] [--knob k=v]\n"
    "                     [--kv-budget T,...] [--bytes-budget R,...]\n"
    "                     [--phase prefill|decode|both] [--decode-queries M]\n"
    "                     [--stride S]\n"
    "                     [--heads L:H,... | [--heads-top K,...] [--heads-bottom K,...]\n"
    "                      [--heads-random K,...] --heads-score COL --heads-file H.h5 |\n"
    "                      --heads-select (--calibrate FILE | --calibrate-copy R)]\n"
    "                     -o RESULTS.h5";

/* The row's budget as run labels it ("0.25", "T=64", "B=0.5") and its achieved measure: the
 * flop ratio, the mean tokens per step or the mean bytes ratio over the replaced heads. */
static void print_row(const struct ab_model_row *r)
{
    const char *kind = r->budget_kind ? r->budget_kind : "";
    char lab[24];
    double got = r->flop_ratio;
    if (!strcmp(kind, "tokens"))
        snprintf(lab, sizeof lab, "T=%.0f", r->target_tokens), got = r->tokens_step;
    else if (!strcmp(kind, "bytes"))
        snprintf(lab, sizeof lab, "B=%.4g", r->target_ratio), got = r->bytes_ratio;
    else
        snprintf(lab, sizeof lab, "%.4g", r->target_ratio);
    printf("%-14s %-16s %-8s %7s %7.4g %5lld/%-5lld ", ab_path_base(r->workload), r->method,
           r->phase, lab, got, (long long)r->heads_feasible, (long long)r->n_heads);
    if (r->reason && r->reason[0])
        printf("%9s %9.4f  %s", "-", r->dense_ppl, r->reason);
    else
        printf("%9.4f %9.4f %7.3f %8.3f %9.3g", r->ppl, r->dense_ppl, r->acc, r->copy_acc,
               r->rel_l2);
    printf(strcmp(r->heads, "all") ? "  heads: %s\n" : "\n", r->heads);
}

/* The progress the command shows once the passes begin. */
struct run {
    struct ab_progress prog;
    int started;
};

static void on_begin(void *user, int64_t total)
{
    struct run *x = user;
    ab_progress_start(&x->prog, "eval-model", "passes", total);
    x->started = 1;
    if (!ab_common.quiet)
        printf("%-14s %-16s %-8s %7s %7s %11s %9s %9s %7s %8s %9s\n", "input", "method", "phase",
               "target", "reached", "feasible", "ppl", "dense_ppl", "acc", "copy_acc", "rel_l2");
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

int cmd_eval_model_opts(const struct ab_eval_run_opts *o)
{
    struct run x = {0};
    struct ab_eval_run_hooks hooks = {on_begin, on_progress, on_row, on_note, &x};
    struct ab_results res;
    char csv[4096];
    int rc = ab_eval_run(o, &hooks, &res, csv, sizeof csv), st = EX_AB_OK;
    if (x.started && !rc)
        ab_progress_end(&x.prog);
    else if (x.started)
        ab_progress_stop(&x.prog);
    if (rc) {
        st = ab_cmd_error(ab_exit_status(rc), "eval-model: %s", ab_errmsg());
    } else {
        ab_out_file(o->out), ab_out_file(csv);
        ab_out_main("eval-model", o->out, "%lld rows; %s beside it", (long long)res.n_model,
                    ab_path_base(csv));
    }
    ab_results_free(&res);
    return st;
}

int cmd_eval_model(int argc, char **argv)
{
    struct ab_eval_run_opts o = {0};
    if (ab_decl_defaults(ab_eval_run_decl, &o)) return ab_cmd_fail(AB_E_NOMEM);
    char *pos[1];
    int n_pos, st = ab_opts_parse_decl("eval-model", usage_text, ab_eval_run_decl, &o, argc, argv,
                                       pos, 0, &n_pos);
    if (st < 0) {
        o.seed = ab_common.seed;
        st = cmd_eval_model_opts(&o);
    }
    ab_decl_free(ab_eval_run_decl, &o);
    return st;
}
