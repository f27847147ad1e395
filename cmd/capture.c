/* capture.c - `attnbench capture`: runs a Llama-family model (llama2.c checkpoint or GGUF) on a
 * token sequence and writes its per-layer Q and K (after RoPE), V and optionally the hidden
 * states as a workload file (workloads.md, "Capture from a model").
 *
 * The sequence is a text file, a prompt continued greedily by the model (--generate N, with
 * the KV-cache decoder), raw token ids, or the retrieval copy task (BOS, R seeded random ids,
 * the same R ids again). A text or token list longer than the model's context is refused
 * unless a window of it is named: --offset T --length N take tokens [T, T + N) of the encoded
 * sequence (BOS counted as token 0; the window is the slice as it is, with no BOS inserted).
 * Capture itself is one batched forward pass over the whole sequence
 * whose attend hook copies Q, K and V of each layer into the workload and lets the model
 * compute attention as usual.
 *
 * stdout: one line, "capture: PATH (tokens, shape)"; the throughput of the capture pass (and of
 * generation when there was any) goes to stderr. Bad models, tokenizers, token ids or sequences
 * longer than the model's context exit 65 and leave no output file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/workload.h"
#include "io/h5_workload.h"
#include "model/input.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "opts.h"

static const char *usage_text =
    "attnbench capture --model FILE [--tokenizer FILE]\n"
    "                         (--text FILE | --prompt TEXT --generate N | --tokens 1,403,... |\n"
    "                          --copy-task R) [--offset T] [--length N] [--no-bos] [--hidden]\n"
    "                         [--seed S] -o WORKLOAD.h5";

/* What the attend and hidden hooks copy into. */
struct capture {
    struct ab_workload *w;
};

static int on_attend(void *user, int64_t layer, const float *q, const float *k, const float *v,
                     int64_t n, float *out, int *done)
{
    (void)out;
    struct ab_workload *w = ((struct capture *)user)->w;
    /* the hook's head-major (head, n, head_dim) is the workload's layout within a layer */
    size_t qn = (size_t)(w->n_head * n * w->d), kn = (size_t)(w->n_kv_head * n * w->d);
    memcpy(w->q + (size_t)layer * qn, q, qn * sizeof(float));
    memcpy(w->k + (size_t)layer * kn, k, kn * sizeof(float));
    memcpy(w->v + (size_t)layer * kn, v, kn * sizeof(float));
    *done = 0; /* the model computes exact attention itself */
    return AB_OK;
}

static void on_hidden(void *user, int64_t layer, const float *x, int64_t n)
{
    struct ab_workload *w = ((struct capture *)user)->w;
    size_t hn = (size_t)(n * w->d_model);
    memcpy(w->hidden + (size_t)layer * hn, x, hn * sizeof(float));
}

int cmd_capture(int argc, char **argv)
{
    const char *model_path = NULL, *tok_path = NULL, *text_path = NULL, *prompt = NULL;
    const char *tokens_arg = NULL, *out = NULL;
    int64_t n_gen = 0, copy_r = -1; /* -1: no copy task */
    int64_t offset = -1, length = -1; /* -1: not given */
    int no_bos = 0, hidden = 0;
    const struct ab_opt opts[] = {
        {"model", AB_OPT_STRING, &model_path, "FILE", "llama2.c checkpoint or GGUF model"},
        {"tokenizer", AB_OPT_STRING, &tok_path, "FILE",
         "llama2.c tokenizer or GGUF vocabulary (default: the GGUF's own, else tokenizer.bin or "
         "tok<vocab>.bin next to the model)"},
        {"text", AB_OPT_STRING, &text_path, "FILE", "run on the text of FILE"},
        {"prompt", AB_OPT_STRING, &prompt, "TEXT", "run on TEXT (\"\": BOS alone)"},
        {"generate", AB_OPT_INT, &n_gen, "N",
         "append N greedily generated tokens to the input (stops early at EOS)"},
        {"tokens", AB_OPT_STRING, &tokens_arg, "IDS", "run on raw token ids, e.g. 1,403,407"},
        {"copy-task", AB_OPT_INT, &copy_r, "R",
         "the retrieval copy task: BOS, R seeded random ids >= 3, the same R ids again"},
        {"offset", AB_OPT_INT, &offset, "T", "--text / --tokens: the window starts at token T (BOS is token 0; default 0)"},
        {"length", AB_OPT_INT, &length, "N", "--text / --tokens: the window has N tokens (default: to the end, at most the context)"},
        {"no-bos", AB_OPT_FLAG, &no_bos, NULL, "do not prepend BOS to text, prompt or copy task"},
        {"hidden", AB_OPT_FLAG, &hidden, NULL, "also store the hidden states (/hidden)"},
        {"o", AB_OPT_STRING, &out, "FILE", "workload file to write"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[1];
    int n_pos, st = ab_opts_parse("capture", usage_text, opts, argc, argv, pos, 0, &n_pos);
    if (st >= 0) return st;
    if (!model_path) return ab_cmd_error(EX_AB_USAGE, "capture: no model (use --model FILE)");
    if (!out) return ab_cmd_error(EX_AB_USAGE, "capture: no output file (use -o WORKLOAD.h5)");
    int n_inputs = !!text_path + !!prompt + !!tokens_arg + (copy_r != -1);
    if (n_inputs != 1)
        return ab_cmd_error(EX_AB_USAGE, "capture: give exactly one input: --text, --prompt, "
                                         "--tokens or --copy-task");
    if (n_gen < 0) return ab_cmd_error(EX_AB_USAGE, "capture: --generate must be >= 0");
    if (copy_r != -1 && copy_r < 1)
        return ab_cmd_error(EX_AB_USAGE, "capture: --copy-task must be >= 1");
    if (copy_r != -1 && n_gen)
        return ab_cmd_error(EX_AB_USAGE, "capture: --generate does not go with --copy-task");
    if ((offset != -1 || length != -1) && !text_path && !tokens_arg)
        return ab_cmd_error(EX_AB_USAGE, "capture: --offset and --length take a window of --text "
                                         "or --tokens");
    if (offset < -1 || length == 0 || length < -1)
        return ab_cmd_error(EX_AB_USAGE, "capture: --offset must be >= 0 and --length >= 1");

    struct ab_model m;
    struct ab_tokenizer tok;
    struct ab_workload w;
    memset(&tok, 0, sizeof tok);
    memset(&w, 0, sizeof w);
    int32_t *ids = NULL, *seq = NULL;
    char *input_desc = NULL;
    int64_t n_ids = 0, n_seq = 0;
    int rc = ab_model_load(model_path, &m), have_tok = 0;
    if (rc) return ab_cmd_fail(rc);
    const struct ab_model_config *c = &m.c;

    /* the tokenizer: required for text, optional (for /text) with raw ids */
    rc = ab_model_tokenizer_find(&m, tok_path, &tok);
    if (!rc) {
        have_tok = 1;
    } else if (text_path || prompt || tok_path) {
        goto fail;
    } else {
        ab_log(AB_LOG_INFO, "capture: no tokenizer, /text omitted (%s)", ab_errmsg());
        rc = AB_OK;
    }

    /* the input sequence */
    char desc[1024];
    if (text_path) {
        char *body;
        if ((rc = ab_text_read(text_path, AB_TEXT_MAX_BYTES, &body))) goto fail;
        rc = ab_tokenizer_encode(&tok, body, !no_bos, &ids, &n_ids);
        free(body);
        if (rc) goto fail;
        snprintf(desc, sizeof desc, "text '%s'", text_path);
    } else if (prompt) {
        if ((rc = ab_tokenizer_encode(&tok, prompt, !no_bos, &ids, &n_ids))) goto fail;
        snprintf(desc, sizeof desc, "prompt \"%.200s\"", prompt);
    } else if (tokens_arg) {
        if ((rc = ab_token_ids_parse(tokens_arg, &ids, &n_ids))) goto fail;
        snprintf(desc, sizeof desc, "token ids");
    } else {
        if ((rc = ab_copy_task(copy_r, c->vocab, have_tok ? tok.bos : 1, no_bos, ab_common.seed, &ids,
                               &n_ids))) {
            rc = ab_fail(rc, "'%s': %s", model_path, ab_errmsg());
            goto fail;
        }
        snprintf(desc, sizeof desc,
                 "copy task R=%lld seed %llu: %sR random ids >= 3, then the same R ids again",
                 (long long)copy_r, (unsigned long long)ab_common.seed, no_bos ? "" : "BOS, ");
    }
    if (n_ids == 0) {
        rc = ab_fail(AB_E_DATA, "capture: the input is empty (nothing to run; drop --no-bos?)");
        goto fail;
    }
    const char *src = text_path ? text_path : "--tokens";
    if (offset >= 0 || length > 0) { /* a window [offset, offset + length) of the sequence */
        int64_t t0 = offset >= 0 ? offset : 0;
        int64_t len = length > 0 ? length : AB_MIN(n_ids - t0, c->seq_len - n_gen);
        if (t0 >= n_ids) {
            rc = ab_fail(AB_E_DATA, "capture: --offset %lld is past the end of '%s' (%lld tokens)",
                         (long long)t0, src, (long long)n_ids);
            goto fail;
        }
        if (len > n_ids - t0) {
            rc = ab_fail(AB_E_DATA, "capture: the window [%lld, %lld) runs past the end of '%s' "
                         "(%lld tokens)", (long long)t0, (long long)(t0 + len), src, (long long)n_ids);
            goto fail;
        }
        if (len > c->seq_len - n_gen) {
            rc = ab_fail(AB_E_DATA, "capture: a window of %lld tokens%s is longer than the context "
                         "of '%s' (%lld tokens)", (long long)len, n_gen ? " + the generated ones" : "",
                         model_path, (long long)c->seq_len);
            goto fail;
        }
        memmove(ids, ids + t0, (size_t)len * sizeof *ids);
        size_t dl = strlen(desc);
        snprintf(desc + dl, sizeof desc - dl, ", tokens [%lld, %lld) of %lld", (long long)t0,
                 (long long)(t0 + len), (long long)n_ids);
        n_ids = len;
    } else if (n_ids > c->seq_len && !n_gen && (text_path || tokens_arg)) {
        rc = ab_fail(AB_E_DATA, "capture: '%s' has %lld tokens, more than the context of '%s' "
                     "(%lld): take a window with --offset T --length N", src, (long long)n_ids,
                     model_path, (long long)c->seq_len);
        goto fail;
    }
    if (n_ids + n_gen > c->seq_len) {
        rc = ab_fail(AB_E_DATA,
                     "capture: %lld input tokens + %lld generated is longer than the context of "
                     "'%s' (%lld tokens)",
                     (long long)n_ids, (long long)n_gen, model_path, (long long)c->seq_len);
        goto fail;
    }

    /* generation (KV cache, one token per step), then the batched capture pass */
    double t_gen = 0;
    if (n_gen > 0) {
        double t0 = ab_now();
        rc = ab_model_generate(&m, ids, n_ids, n_gen, have_tok ? tok.eos : -1, &seq, &n_seq);
        if (rc) goto fail;
        t_gen = ab_now() - t0;
    } else {
        seq = ids, n_seq = n_ids, ids = NULL;
    }
    if ((rc = ab_workload_alloc(&w, c->n_layer, c->n_head, c->n_kv_head, n_seq, c->head_dim,
                                c->head_dim)))
        goto fail;
    if (hidden) {
        double bytes = 4.0 * (double)(c->n_layer + 1) * (double)n_seq * (double)c->dim;
        if ((rc = ab_check_fits("hidden states", bytes))) goto fail;
        w.d_model = c->dim;
        w.hidden = ab_alloc((size_t)bytes);
        if (!w.hidden) {
            rc = ab_fail(AB_E_NOMEM, "capture: out of memory for the hidden states");
            goto fail;
        }
    }
    struct capture cap = {.w = &w};
    struct ab_forward_hooks hooks = {
        .attend = on_attend, .hidden = hidden ? on_hidden : NULL, .user = &cap};
    double t0 = ab_now();
    if ((rc = ab_model_forward(&m, seq, n_seq, &hooks, NULL))) goto fail;
    double t_cap = ab_now() - t0;

    /* the workload's facts */
    w.tokens = ab_alloc((size_t)n_seq * sizeof *w.tokens);
    if (!w.tokens) {
        rc = ab_fail(AB_E_NOMEM, "capture: out of memory");
        goto fail;
    }
    memcpy(w.tokens, seq, (size_t)n_seq * sizeof *seq);
    if (have_tok && (rc = ab_tokenizer_decode(&tok, seq, n_seq, &w.text))) goto fail;
    char gen_desc[128] = "";
    if (n_gen > 0)
        snprintf(gen_desc, sizeof gen_desc, " + %lld tokens generated greedily",
                 (long long)(n_seq - n_ids));
    size_t dl = strlen(m.description) + strlen(desc) + strlen(gen_desc) + 64;
    if (!(input_desc = malloc(dl)) || !(w.source = strdup("capture"))) {
        rc = ab_fail(AB_E_NOMEM, "capture: out of memory");
        goto fail;
    }
    snprintf(input_desc, dl, "%s; input: %s%s, %lld tokens", m.description, desc, gen_desc,
             (long long)n_seq);
    w.description = input_desc, input_desc = NULL;
    w.seed = ab_common.seed;
    w.causal = 1;
    w.scale = 1.0 / sqrt((double)c->head_dim);
    w.rope_applied = 1;
    w.rope_theta = c->rope_theta;
    if ((rc = ab_h5_workload_write(out, &w))) goto fail;

    if (n_gen > 0 && !ab_common.quiet)
        fprintf(stderr, "capture: generated %lld tokens in %.3f s (%.1f tokens/s)\n",
                (long long)(n_seq - n_ids), t_gen, (double)(n_seq - n_ids) / t_gen);
    if (!ab_common.quiet)
        fprintf(stderr, "capture: %lld tokens captured in %.3f s (%.1f tokens/s)\n",
                (long long)n_seq, t_cap, (double)n_seq / t_cap);
    ab_out_file(out);
    ab_out_main("capture", out, "%lld tokens, %lld layers x %lld heads (%lld kv) x head_dim %lld%s",
                (long long)n_seq, (long long)c->n_layer, (long long)c->n_head,
                (long long)c->n_kv_head, (long long)c->head_dim,
                hidden ? ", with hidden states" : "");

fail:
    ab_workload_free(&w);
    ab_tokenizer_free(&tok);
    ab_model_free(&m);
    free(ids);
    free(seq);
    free(input_desc);
    return rc ? ab_cmd_fail(rc) : EX_AB_OK;
}
