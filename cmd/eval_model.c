/* eval_model.c - `attnbench eval-model`: registry methods replace attention inside a real
 * model (every layer, or chosen heads), scored end to end on a text (perplexity, next-token
 * accuracy) and on a copy task (a random block repeated: the second copy's next-token accuracy
 * measures retrieval through attention), next to dense on the same input (lib/eval/e2e.h).
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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/list.h"
#include "core/rng.h"
#include "eval/e2e.h"
#include "io/csv.h"
#include "io/results_io.h"
#include "model/input.h"
#include "model/model.h"
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

enum { MAX_INPUTS = 3, MAX_TARGETS = 32, MAX_METHODS = 256, MAX_SETS = 48 };

/* Longest text eval-model reads (tokens), scored in windows of the context. */
#define MAX_TEXT_TOKENS ((int64_t)1 << 24)

/* Which heads a method replaces. */
struct head_set {
    int8_t *replace;  /* (n_layer * n_head), NULL: every head */
    char how[256];    /* the /model `heads` column */
    char *list;       /* "L:H L:H ..." ("" for all), malloc'd */
};

static int set_list(struct head_set *hs, int64_t n_layer, int64_t n_head)
{
    size_t cap = (size_t)(n_layer * n_head) * 24 + 1, len = 0;
    hs->list = malloc(cap);
    if (!hs->list) return ab_fail(AB_E_NOMEM, "out of memory");
    hs->list[0] = 0;
    for (int64_t i = 0; hs->replace && i < n_layer * n_head; i++)
        if (hs->replace[i])
            len += (size_t)snprintf(hs->list + len, cap - len, "%s%lld:%lld", len ? " " : "",
                                    (long long)(i / n_head), (long long)(i % n_head));
    return AB_OK;
}

/* --heads L:H,L:H */
static int heads_named(const char *spec, const struct ab_model_config *c, int8_t *replace)
{
    const char *s = spec;
    char item[64];
    int rc, n = 0;
    while ((rc = ab_list_next(&s, 0, item, sizeof item, NULL, "--heads")) == 1) {
        long long l, h;
        char tail;
        if (sscanf(item, "%lld:%lld%c", &l, &h, &tail) != 2 || l < 0 || l >= c->n_layer || h < 0 ||
            h >= c->n_head)
            return ab_fail(AB_E_USAGE, "--heads: '%s' is not LAYER:HEAD within %lld layers x %lld heads",
                           item, (long long)c->n_layer, (long long)c->n_head);
        replace[l * c->n_head + h] = 1;
        n++;
    }
    if (rc < 0) return rc;
    return n ? AB_OK : ab_fail(AB_E_USAGE, "--heads is empty");
}

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

/* --heads-top K --heads-score COL --heads-file FILE: the K heads with the largest COL among the
 * rows of the file's first workload (ties to the lower layer, head); bottom: the K with the
 * smallest (heads whose COL is NaN are never chosen by either). */
static int heads_top(const char *file, const char *col, int64_t k, int bottom,
                     const struct ab_model_config *c, int8_t *replace)
{
    size_t off = 0;
    int rc = head_col(col, &off);
    if (rc) return rc;
    struct ab_results r;
    if ((rc = ab_results_read_h5(file, &r))) return rc;
    if (!r.n_heads) rc = ab_fail(AB_E_DATA, "'%s': no /heads table (write one with attnbench heads)", file);
    int64_t total = c->n_layer * c->n_head;
    double *score = malloc(sizeof(double) * (size_t)total);
    int8_t *seen = calloc((size_t)total, 1);
    if (!rc && (!score || !seen)) rc = ab_fail(AB_E_NOMEM, "out of memory");
    for (int64_t i = 0; !rc && i < r.n_heads; i++) {
        const struct ab_head_row *h = &r.heads[i];
        if (strcmp(h->workload, r.heads[0].workload)) continue;
        if (h->layer < 0 || h->layer >= c->n_layer || h->head < 0 || h->head >= c->n_head)
            rc = ab_fail(AB_E_DATA, "'%s': head %lld:%lld is outside the model's %lld x %lld heads",
                         file, (long long)h->layer, (long long)h->head, (long long)c->n_layer,
                         (long long)c->n_head);
        else {
            double v = *(const double *)((const char *)h + off);
            score[h->layer * c->n_head + h->head] = isnan(v) ? NAN : bottom ? -v : v;
            seen[h->layer * c->n_head + h->head] = 1;
        }
    }
    for (int64_t i = 0; !rc && i < total; i++)
        if (!seen[i])
            rc = ab_fail(AB_E_DATA, "'%s': no row for head %lld:%lld of the model", file,
                         (long long)(i / c->n_head), (long long)(i % c->n_head));
    int64_t n_num = 0;
    for (int64_t i = 0; !rc && i < total; i++) n_num += !isnan(score[i]);
    if (!rc && (k < 1 || k > n_num))
        rc = ab_fail(AB_E_USAGE, "--heads-%s %lld: '%s' has %lld heads with a %s", bottom ? "bottom" : "top",
                     (long long)k, file, (long long)n_num, col);
    for (int64_t t = 0; !rc && t < k; t++) {
        int64_t best = -1;
        for (int64_t i = 0; i < total; i++)
            if (!replace[i] && !isnan(score[i]) && (best < 0 || score[i] > score[best])) best = i;
        replace[best] = 1;
    }
    free(score);
    free(seen);
    ab_results_free(&r);
    return rc;
}

/* --heads-random K: a seeded uniform choice of K heads. */
static int heads_random(int64_t k, uint64_t seed, const struct ab_model_config *c, int8_t *replace)
{
    int64_t total = c->n_layer * c->n_head;
    if (k < 1 || k > total)
        return ab_fail(AB_E_USAGE, "--heads-random %lld: the model has %lld heads", (long long)k,
                       (long long)total);
    struct ab_rng r;
    ab_rng_init(&r, seed, ab_stream(0x68656164 /* "head" */, (uint64_t)k, 0, 0));
    for (int64_t t = 0; t < k;) {
        int64_t i = ab_rng_below(&r, total);
        if (!replace[i]) replace[i] = 1, t++;
    }
    return AB_OK;
}

/* "1,2,4,8" of --heads-top / --heads-bottom / --heads-random into ks (at most cap). */
static int k_list(const char *opt, const char *spec, int64_t *ks, int cap, int *n)
{
    const char *s = spec;
    char item[32];
    int rc;
    *n = 0;
    while ((rc = ab_list_next(&s, 0, item, sizeof item, NULL, opt)) == 1) {
        char *end;
        long long k = strtoll(item, &end, 10);
        if (*end || k < 1) return ab_fail(AB_E_USAGE, "%s: '%s' is not a head count >= 1", opt, item);
        if (*n == cap) return ab_fail(AB_E_USAGE, "%s: more than %d counts", opt, cap);
        ks[(*n)++] = k;
    }
    return rc < 0 ? rc : AB_OK;
}

struct input {
    char name[512];
    struct ab_model_input in;
};

/* One scored input of a pass: in windows of the context when it is longer (a text). */
static int eval_input(const struct ab_model *mo, const struct input *in, int64_t stride,
                      int32_t bos, const struct ab_e2e_opts *eo, struct ab_e2e_result *r)
{
    if (in->in.n <= mo->c.seq_len)
        return ab_e2e_eval(mo, in->in.ids, in->in.n, in->in.copy_from, eo, r);
    return ab_e2e_eval_windows(mo, in->in.ids, in->in.n, mo->c.seq_len, stride, bos, eo, r);
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

int cmd_eval_model(int argc, char **argv)
{
    const char *model_path = NULL, *tok_path = NULL, *text = NULL, *methods = NULL,
               *budgets = NULL, *knob = NULL, *phase = "prefill", *out = NULL, *heads = NULL,
               *heads_score = NULL, *heads_file = NULL, *calibrate = NULL, *heads_topk = NULL,
               *heads_bottomk = NULL, *heads_rand = NULL;
    int64_t copy_r = 0, m = 64, calibrate_copy = 0, stride = 0;
    int window_bos = 0;
    int64_t horizon = AB_DECODE_HORIZON;
    int heads_select = 0;
    double select_min = 0;
    const struct ab_opt opts[] = {
        {"model", AB_OPT_STRING, &model_path, "FILE", "llama2.c checkpoint or GGUF file"},
        {"tokenizer", AB_OPT_STRING, &tok_path, "FILE", "llama2.c tokenizer (default: the GGUF's own, or tok<vocab>.bin / tokenizer.bin beside the model)"},
        {"text", AB_OPT_STRING, &text, "FILE", "a text to score (perplexity, next-token accuracy)"},
        {"copy-task", AB_OPT_INT, &copy_r, "R", "also score BOS + R seeded random tokens + the same R again (copy accuracy)"},
        {"methods", AB_OPT_STRING, &methods, "LIST", "methods to put in the model (default: every causal method of the phase)"},
        {"budgets", AB_OPT_STRING, &budgets, "LIST", "per-head target FLOP ratios (default 0.5,0.25,0.125)"},
        {"knob", AB_OPT_STRING, &knob, "NAME=V", "run every method at this knob instead of fitting budgets"},
        {"phase", AB_OPT_STRING, &phase, "P", "prefill (every row), decode (the last M rows) or both (default prefill)"},
        {"decode-queries", AB_OPT_INT, &m, "M", "decode: rows served by the method at the end of the input (default 64)"},
        {"decode-horizon", AB_OPT_INT, &horizon, "G", "decode: generated tokens one-off work (cache compression, indexes) is amortised over, >= M (default 1024)"},
        {"heads", AB_OPT_STRING, &heads, "L:H,...", "replace only these heads (default: all)"},
        {"stride", AB_OPT_INT, &stride, "S", "texts longer than the context: sliding windows of the context every S tokens (default half the context)"},
        {"window-bos", AB_OPT_FLAG, &window_bos, NULL, "sliding windows after the first start with BOS (in place of their first token), as the model was trained"},
        {"heads-top", AB_OPT_STRING, &heads_topk, "K,...", "replace the K heads with the largest --heads-score in --heads-file (a list: one set of rows per K)"},
        {"heads-bottom", AB_OPT_STRING, &heads_bottomk, "K,...", "replace the K heads with the smallest --heads-score"},
        {"heads-score", AB_OPT_STRING, &heads_score, "COL", "column of the /heads table ranking heads (retrieval_score, induction_score, ...)"},
        {"heads-file", AB_OPT_STRING, &heads_file, "FILE", "results file of 'attnbench heads' on a capture of this model"},
        {"heads-random", AB_OPT_STRING, &heads_rand, "K,...", "replace K seeded random heads (the control for --heads-top)"},
        {"heads-select", AB_OPT_FLAG, &heads_select, NULL, "ACT's protocol: keep the heads where the method alone lowers the calibration NLL"},
        {"calibrate", AB_OPT_STRING, &calibrate, "FILE", "--heads-select: the calibration text"},
        {"calibrate-copy", AB_OPT_INT, &calibrate_copy, "R", "--heads-select: calibrate on a copy task of R tokens (its own seed stream)"},
        {"select-min", AB_OPT_DOUBLE, &select_min, "D", "--heads-select: minimum NLL decrease in nats/token (default 0)"},
        {"o", AB_OPT_STRING, &out, "FILE", "results file to write (.h5; RESULTS-model.csv goes next to it)"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[1];
    int n_pos, st = ab_opts_parse("eval-model", usage_text, opts, argc, argv, pos, 0, &n_pos);
    if (st >= 0) return st;
    st = EX_AB_OK;
    if (!model_path) return ab_cmd_error(EX_AB_USAGE, "eval-model: name the model with --model");
    if (!out) return ab_cmd_error(EX_AB_USAGE, "eval-model: name the results file with -o");
    if (!text && copy_r <= 0)
        return ab_cmd_error(EX_AB_USAGE, "eval-model: give an input: --text FILE and/or --copy-task R");
    if (copy_r < 0 || m < 1 || calibrate_copy < 0 || stride < 0)
        return ab_cmd_error(EX_AB_USAGE, "eval-model: --copy-task, --decode-queries, --stride "
                            "and --calibrate-copy must be positive");
    if (horizon < m)
        return ab_cmd_error(EX_AB_USAGE, "eval-model: --decode-horizon %lld is below --decode-queries %lld",
                            (long long)horizon, (long long)m);
    int ranked = heads_topk || heads_bottomk || heads_rand;
    int n_sel = (heads != NULL) + ranked + heads_select;
    if (n_sel > 1)
        return ab_cmd_error(EX_AB_USAGE, "eval-model: choose one of --heads, --heads-top/--heads-bottom/--heads-random, --heads-select");
    if ((heads_topk || heads_bottomk) && (!heads_score || !heads_file))
        return ab_cmd_error(EX_AB_USAGE, "eval-model: --heads-top and --heads-bottom need --heads-score COL and --heads-file FILE");
    if (heads_select && !calibrate == !calibrate_copy)
        return ab_cmd_error(EX_AB_USAGE, "eval-model: --heads-select needs one of --calibrate FILE or --calibrate-copy R");
    unsigned phases;
    if (!strcmp(phase, "prefill")) phases = AB_PHASE_PREFILL;
    else if (!strcmp(phase, "decode")) phases = AB_PHASE_DECODE;
    else if (!strcmp(phase, "both")) phases = AB_PHASE_PREFILL | AB_PHASE_DECODE;
    else return ab_cmd_error(EX_AB_USAGE, "eval-model: --phase must be prefill, decode or both, got '%s'", phase);

    const struct ab_method *list[MAX_METHODS];
    int n_list;
    if ((st = ab_opts_methods("eval-model", methods, phases, 1, list, MAX_METHODS, &n_list)) >= 0) return st;
    double targets[MAX_TARGETS] = {0.5, 0.25, 0.125};
    int n_t = 3;
    if (budgets && (st = ab_opts_budgets("eval-model", budgets, targets, MAX_TARGETS, &n_t)) >= 0) return st;
    struct ab_apply_opts ao = {0};
    char knob_name[64] = "";
    if (knob) {
        const char *s = knob;
        int rc = ab_list_next(&s, '=', knob_name, sizeof knob_name, &ao.knob, "--knob");
        if (rc != 1 || *s) return rc < 0 ? ab_cmd_fail(rc) : ab_cmd_error(EX_AB_USAGE, "eval-model: --knob wants one NAME=VALUE");
        for (int i = 0; i < n_list; i++)
            if (list[i]->knob.name && strcmp(list[i]->knob.name, knob_name))
                return ab_cmd_error(EX_AB_USAGE, "eval-model: --knob %s does not apply to '%s' (its knob is %s)",
                                    knob_name, list[i]->name, list[i]->knob.name);
        ao.has_knob = 1;
    }

    st = EX_AB_OK; /* the option helpers leave -1 in st */

    /* the model, the inputs and the head set, all checked before any pass */
    struct ab_model model = {0};
    struct ab_tokenizer tok = {0};
    int have_tok = 0;
    struct input in[MAX_INPUTS], cal;
    int n_in = 0;
    memset(in, 0, sizeof in);
    memset(&cal, 0, sizeof cal);
    struct head_set sets[MAX_SETS];
    int n_sets = 1;
    memset(sets, 0, sizeof sets);
    struct head_set *hs = &sets[0];
    struct ab_results res;
    ab_results_init(&res);
    /* every pass runs BLAS single-threaded under OpenMP (forward.c): hold it so for the whole
     * command instead of waking OpenBLAS's pool between passes */
    ab_blas_serial_begin();
    int rc = ab_model_load(model_path, &model);
    const struct ab_model_config *c = &model.c;
    if (!rc && (text || calibrate)) {
        rc = ab_model_tokenizer_find(&model, tok_path, &tok);
        have_tok = !rc;
    }
    if (!rc && text) {
        snprintf(in[n_in].name, sizeof in[n_in].name, "%s", text);
        rc = ab_model_input_text(&model, &tok, text, MAX_TEXT_TOKENS, &in[n_in++].in);
    }
    if (!rc && copy_r > 0) {
        snprintf(in[n_in].name, sizeof in[n_in].name, "copy-%lld", (long long)copy_r);
        rc = ab_model_input_copy(&model, copy_r, ab_common.seed, &in[n_in++].in);
    }
    if (!rc && calibrate) {
        snprintf(cal.name, sizeof cal.name, "%s", calibrate);
        rc = ab_model_input_text(&model, &tok, calibrate, MAX_TEXT_TOKENS, &cal.in);
    } else if (!rc && calibrate_copy) {
        snprintf(cal.name, sizeof cal.name, "copy-%lld", (long long)calibrate_copy);
        rc = ab_model_input_copy(&model, calibrate_copy, ab_stream(ab_common.seed, 0x63616c /* "cal" */, 0, 0),
                                 &cal.in);
    }
    /* texts longer than the context: sliding windows (said on stderr, the default too) */
    if (!rc && stride > c->seq_len - (window_bos ? 2 : 1))
        rc = ab_fail(AB_E_USAGE, "eval-model: --stride %lld must be below the context of '%s' "
                     "(%lld tokens%s)", (long long)stride, model_path, (long long)c->seq_len,
                     window_bos ? "; with --window-bos at most the context - 2" : "");
    int64_t stride_used = stride ? stride : c->seq_len / 2;
    int32_t bos = window_bos ? (have_tok ? tok.bos : 1) : -1;
    const struct input *all_in[MAX_INPUTS + 1];
    int n_all = 0;
    for (int i = 0; i < n_in; i++) all_in[n_all++] = &in[i];
    if (calibrate) all_in[n_all++] = &cal;
    int windowed = 0;
    for (int i = 0; !rc && i < n_all; i++) {
        const struct input *x = all_in[i];
        int64_t len = AB_MIN(x->in.n, c->seq_len);
        if ((phases & AB_PHASE_DECODE) && m >= len)
            rc = ab_fail(AB_E_USAGE, "'%s': --decode-queries %lld must be below its %lld tokens%s",
                         x->name, (long long)m, (long long)len,
                         x->in.n > len ? " (a window of the context)" : "");
        else if (x->in.n > c->seq_len) {
            windowed = 1;
            if (!ab_common.quiet)
                fprintf(stderr, "eval-model: '%s' has %lld tokens, more than the context of %lld: "
                        "scored in %lld sliding windows of %lld tokens, stride %lld%s (each target "
                        "once, with at least %lld tokens of context after the first window%s)\n",
                        x->name, (long long)x->in.n, (long long)c->seq_len,
                        (long long)ab_e2e_n_windows(x->in.n, c->seq_len, stride_used),
                        (long long)c->seq_len, (long long)stride_used,
                        stride ? "" : " (the default, half the context; --stride S to change)",
                        (long long)(c->seq_len - stride_used - (bos >= 0)),
                        bos >= 0 ? "; each window starts with BOS" : "; windows after the first "
                        "start mid-text, without BOS (--window-bos to put it there)");
        }
    }
    /* the head sets: one, or one per (choice, K) of --heads-top / --heads-bottom / --heads-random */
    int64_t total_heads = c->n_layer * c->n_head;
    if (!rc && ranked) {
        n_sets = 0;
        const char *spec[3] = {heads_topk, heads_bottomk, heads_rand};
        const char *optn[3] = {"--heads-top", "--heads-bottom", "--heads-random"};
        for (int kind = 0; kind < 3 && !rc; kind++) {
            int64_t ks[16];
            int nk = 0;
            if (!spec[kind]) continue;
            if ((rc = k_list(optn[kind], spec[kind], ks, 16, &nk))) break;
            for (int j = 0; j < nk && !rc; j++) {
                if (n_sets == MAX_SETS) {
                    rc = ab_fail(AB_E_USAGE, "eval-model: more than %d head sets", MAX_SETS);
                    break;
                }
                struct head_set *x = &sets[n_sets++];
                if (!(x->replace = calloc((size_t)total_heads, 1))) {
                    rc = ab_fail(AB_E_NOMEM, "out of memory");
                    break;
                }
                if (kind < 2) {
                    rc = heads_top(heads_file, heads_score, ks[j], kind == 1, c, x->replace);
                    snprintf(x->how, sizeof x->how, "%s %lld by %s", kind ? "bottom" : "top",
                             (long long)ks[j], heads_score);
                } else {
                    rc = heads_random(ks[j], ab_common.seed, c, x->replace);
                    snprintf(x->how, sizeof x->how, "random %lld (seed %llu)", (long long)ks[j],
                             (unsigned long long)ab_common.seed);
                }
                if (!rc) rc = set_list(x, c->n_layer, c->n_head);
            }
        }
    } else if (!rc) {
        if (n_sel && !(hs->replace = calloc((size_t)total_heads, 1)))
            rc = ab_fail(AB_E_NOMEM, "out of memory");
        if (!rc && heads) {
            rc = heads_named(heads, c, hs->replace);
            snprintf(hs->how, sizeof hs->how, "named");
        } else if (!rc && !heads_select) {
            snprintf(hs->how, sizeof hs->how, "all");
        }
        if (!rc && !heads_select) rc = set_list(hs, c->n_layer, c->n_head);
    }
    char *prov[MAX_INPUTS + 1];
    int n_prov = 0;
    prov[n_prov++] = (char *)model_path;
    if (text) prov[n_prov++] = (char *)text;
    if (calibrate) prov[n_prov++] = (char *)calibrate;
    if (!rc) rc = ab_results_provenance(&res, argc, argv, prov, n_prov, ab_common.seed);
    if (rc) {
        st = ab_cmd_fail(rc);
        goto done;
    }
    res.notes = strdup("eval-model: position t predicts token t + 1; prefill scores every "
                       "position, decode only the last --decode-queries rows (the prefix exact); "
                       "knobs are fitted per head to the target (met when the ratio is at most "
                       "the target); a head where no knob fits runs at its smallest knob and is "
                       "infeasible, and a pass with an infeasible head reports no nll, ppl, acc "
                       "or copy_acc (its reason says how many heads met the target); heads not "
                       "replaced are exact; a text longer than the context is scored in sliding "
                       "windows of the context every `stride` tokens, each target once (decode: the "
                       "new targets among each window's last rows); windows after the first start "
                       "mid-text, or with BOS in place of their first token when window_bos is 1");
    if (windowed) res.stride = stride_used, res.window_bos = bos >= 0;
    res.decode_horizon = phases & AB_PHASE_DECODE ? horizon : 0;

    /* passes: per input, dense then every (phase, method, target, head set); --heads-select
     * first runs one pass per head on the calibration input for each (phase, method, target).
     * A method runs in the phases it has (with --phase both, snapkv in decode only). */
    int64_t n_cells = 0; /* (phase, method, target) cells over both phases */
    for (int ph = AB_PHASE_PREFILL; ph <= AB_PHASE_DECODE; ph <<= 1)
        for (int i = 0; i < n_list; i++)
            if ((phases & (unsigned)ph) && (list[i]->phases & (unsigned)ph))
                n_cells += list[i]->knob.name && !ao.has_knob && !(list[i]->flags & AB_METHOD_FIXED) ? n_t : 1;
    int n_phase = (phases & AB_PHASE_PREFILL ? 1 : 0) + (phases & AB_PHASE_DECODE ? 1 : 0);
    int64_t per_sel = heads_select ? total_heads : 0;
    struct ab_progress prog;
    /* model passes (a windowed text counts one per window): per phase the dense pass of each
     * input (and of the calibration input), then per cell the one-head calibration passes and
     * one pass per input and head set */
    int64_t w_in = 0, w_cal = 0;
    for (int i = 0; i < n_in; i++) w_in += ab_e2e_n_windows(in[i].in.n, c->seq_len, stride_used);
    if (heads_select) w_cal = ab_e2e_n_windows(cal.in.n, c->seq_len, stride_used);
    ab_progress_start(&prog, "eval-model", "passes",
                      n_cells * (w_in * n_sets + per_sel * w_cal) + (int64_t)n_phase * (w_in + w_cal));
    if (!ab_common.quiet)
        printf("%-14s %-16s %-8s %7s %7s %11s %9s %9s %7s %8s %9s\n", "input", "method", "phase",
               "target", "ratio", "feasible", "ppl", "dense_ppl", "acc", "copy_acc", "rel_l2");
    for (int ph = AB_PHASE_PREFILL; ph <= AB_PHASE_DECODE && !rc; ph <<= 1) {
        if (!(phases & (unsigned)ph)) continue;
        struct ab_e2e_opts eo = {.phase = ph, .decode_m = m, .horizon = horizon, .apply = ao,
                                 .seed = ab_common.seed};
        struct ab_e2e_result dense[MAX_INPUTS], cal_dense;
        for (int i = 0; i < n_in && !rc; i++) {
            rc = eval_input(&model, &in[i], stride_used, bos, &eo, &dense[i]);
            ab_progress_step(&prog, ab_e2e_n_windows(in[i].in.n, c->seq_len, stride_used));
        }
        if (!rc && heads_select) {
            rc = eval_input(&model, &cal, stride_used, bos, &eo, &cal_dense);
            ab_progress_step(&prog, w_cal);
        }
        for (int mi = 0; mi < n_list && !rc; mi++) {
            const struct ab_method *me = list[mi];
            if (!(me->phases & (unsigned)ph)) continue;
            int fixed = !me->knob.name || ao.has_knob || (me->flags & AB_METHOD_FIXED);
            for (int t = 0; t < (fixed ? 1 : n_t) && !rc; t++) {
                eo.method = me;
                eo.target = ao.has_knob ? NAN : !me->knob.name || (me->flags & AB_METHOD_FIXED) ? 1.0 : targets[t];
                if (heads_select) { /* ACT: one head at a time on the calibration input */
                    int64_t n_keep = 0;
                    int8_t *one = calloc((size_t)total_heads, 1);
                    if (!one) rc = ab_fail(AB_E_NOMEM, "out of memory");
                    memset(hs->replace, 0, (size_t)total_heads);
                    for (int64_t hh = 0; hh < total_heads && !rc; hh++) {
                        struct ab_e2e_result r1;
                        one[hh] = 1;
                        eo.replace = one;
                        rc = eval_input(&model, &cal, stride_used, bos, &eo, &r1);
                        one[hh] = 0;
                        if (!rc && cal_dense.nll - r1.nll > select_min) hs->replace[hh] = 1, n_keep++;
                        ab_progress_step(&prog, w_cal);
                    }
                    free(one);
                    free(hs->list);
                    hs->list = NULL;
                    if (!rc) rc = set_list(hs, c->n_layer, c->n_head);
                    snprintf(hs->how, sizeof hs->how, "selected on %.160s: %lld of %lld lower its nll by > %g",
                             cal.name, (long long)n_keep, (long long)total_heads, select_min);
                    if (!rc && n_keep == 0) /* the rows below then replace no head: dense */
                        ab_log(AB_LOG_WARN, "eval-model: %s at %g lowers the calibration nll on no head",
                               me->name, eo.target);
                }
                for (int si = 0; si < n_sets && !rc; si++) {
                    const struct head_set *set = &sets[si];
                    eo.replace = set->replace;
                    for (int i = 0; i < n_in && !rc; i++) {
                        struct ab_e2e_result r;
                        rc = eval_input(&model, &in[i], stride_used, bos, &eo, &r);
                        ab_progress_step(&prog, ab_e2e_n_windows(in[i].in.n, c->seq_len, stride_used));
                        if (rc) break;
                        struct ab_model_row row = {
                            .workload = in[i].name, .model = (char *)model_path,
                            .method = (char *)me->name, .family = (char *)ab_family_name(me->family),
                            .phase = ph == AB_PHASE_PREFILL ? "prefill" : "decode",
                            .knob_name = (char *)(me->knob.name ? me->knob.name : ""),
                            .knob = ao.has_knob ? ao.knob : (me->flags & AB_METHOD_FIXED) ? me->knob.def : NAN,
                            .target_ratio = eo.target,
                            .flop_ratio = r.flops_dense > 0 ? r.flops_method / r.flops_dense : NAN,
                            .bytes_kv = r.bytes_kv, .heads = (char *)set->how, .head_list = set->list,
                            .n_heads = r.n_replaced, .heads_feasible = r.n_feasible,
                            .feasible = r.n_feasible == r.n_replaced, .n_tokens = in[i].in.n,
                            .n_scored = r.n_scored, .nll = r.nll, .ppl = r.ppl, .acc = r.acc,
                            .copy_acc = r.copy_acc, .dense_nll = dense[i].nll,
                            .dense_ppl = dense[i].ppl, .dense_acc = dense[i].acc,
                            .dense_copy_acc = dense[i].copy_acc, .rel_l2 = r.rel_l2, .time_s = r.time_s};
                        char why[128] = "";
                        if (r.n_feasible < r.n_replaced) { /* no score for a pass off its budget */
                            snprintf(why, sizeof why, "target met on %lld of %lld heads (the others "
                                     "ran at their smallest knob, which costs more)", (long long)r.n_feasible,
                                     (long long)r.n_replaced);
                            row.nll = row.ppl = row.acc = row.copy_acc = NAN;
                        }
                        row.reason = why;
                        if ((rc = ab_results_add_model(&res, &row))) break;
                        ab_progress_pause(&prog); /* the row takes the bar's place */
                        if (!ab_common.quiet) print_row(&row);
                        fflush(stdout);
                    }
                }
            }
        }
    }
    if (!rc)
        ab_progress_end(&prog);
    else
        ab_progress_stop(&prog);
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
done:
    for (int i = 0; i < n_in; i++) ab_model_input_free(&in[i].in);
    ab_model_input_free(&cal.in);
    if (have_tok) ab_tokenizer_free(&tok);
    ab_model_free(&model);
    for (int i = 0; i < MAX_SETS; i++) free(sets[i].replace), free(sets[i].list);
    ab_results_free(&res);
    ab_blas_serial_end();
    return st;
}
