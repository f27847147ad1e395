/* capture.c - `attnbench capture` as a library call (see capture.h): a Llama-family model
 * (llama2.c checkpoint or GGUF) run on a token sequence, its per-layer Q and K (after RoPE), V
 * and optionally the hidden states written as a workload file (workloads.md, "Capture from a
 * model").
 *
 * The sequence is a text file, a prompt continued greedily by the model (--generate N, with the
 * KV-cache decoder), raw token ids, or the retrieval copy task (BOS, R seeded random ids, the
 * same R ids again). A text or token list longer than the model's context is refused unless a
 * window of it is named: --offset T and / or --length N take tokens [T, T + N) of the encoded
 * sequence (BOS counted as token 0; the window is the slice as it is, with no BOS inserted).
 * Capture itself is one batched forward pass over the whole sequence whose attend hook copies
 * Q, K and V of each layer into the workload and lets the model compute attention as usual. */
#include "run/capture.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "io/h5_workload.h"
#include "model/input.h"
#include "model/model.h"
#include "model/tokenizer.h"

#define ROW(f) AB_DECL_ROW(struct ab_capture_run_opts, f)
const struct ab_decl ab_capture_run_decl[] = {
    {"model", AB_DECL_STR, ROW(model), NULL, 0, 0, "FILE", "llama2.c checkpoint or GGUF model",
     .flags = AB_DECL_INPUT},
    {"tokenizer", AB_DECL_STR, ROW(tokenizer), NULL, 0, 0, "FILE",
     "llama2.c tokenizer or GGUF vocabulary (default: the GGUF's own, else tokenizer.bin or "
     "tok<vocab>.bin next to the model)", .flags = AB_DECL_INPUT},
    {"text", AB_DECL_STR, ROW(text), NULL, 0, 0, "FILE", "run on the text of FILE",
     .flags = AB_DECL_INPUT},
    {"prompt", AB_DECL_STR, ROW(prompt), NULL, 0, 0, "TEXT", "run on TEXT (\"\": BOS alone)"},
    {"generate", AB_DECL_INT, ROW(generate), "0", 0, INT32_MAX, "N",
     "append N greedily generated tokens to the input (stops early at EOS)"},
    {"tokens", AB_DECL_STR, ROW(tokens), NULL, 0, 0, "IDS", "run on raw token ids, e.g. 1,403,407"},
    {"copy-task", AB_DECL_INT, ROW(copy_task), NULL, 1, INT32_MAX, "R",
     "the retrieval copy task: BOS, R seeded random ids >= 3, the same R ids again"},
    {"offset", AB_DECL_INT, ROW(offset), NULL, 0, INT32_MAX, "T",
     "--text / --tokens: the window starts at token T (BOS is token 0; default 0)"},
    {"length", AB_DECL_INT, ROW(length), NULL, 1, INT32_MAX, "N",
     "--text / --tokens: the window has N tokens (default: to the end, at most the context)"},
    {"no-bos", AB_DECL_FLAG, ROW(no_bos), NULL, 0, 0, NULL,
     "do not prepend BOS to text, prompt or copy task"},
    {"hidden", AB_DECL_FLAG, ROW(hidden), NULL, 0, 0, NULL,
     "also store the hidden states (/hidden)"},
    {"o", AB_DECL_STR, ROW(out), NULL, 0, 0, "FILE", "workload file to write",
     .flags = AB_DECL_CLI | AB_DECL_OUTPUT},
    {0},
};
#undef ROW

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

int ab_capture_run(const struct ab_capture_run_opts *o, struct ab_capture_run_out *out)
{
    memset(out, 0, sizeof *out);
    if (!o->model) return ab_fail(AB_E_USAGE, "capture: no model (use --model FILE)");
    if (!o->out) return ab_fail(AB_E_USAGE, "capture: no output file (use -o WORKLOAD.h5)");
    int n_inputs = !!o->text + !!o->prompt + !!o->tokens + (o->copy_task > 0);
    if (n_inputs != 1)
        return ab_fail(AB_E_USAGE, "capture: give exactly one input: --text, --prompt, --tokens "
                       "or --copy-task");
    if (o->copy_task > 0 && o->generate)
        return ab_fail(AB_E_USAGE, "capture: --generate does not go with --copy-task");
    if ((o->offset > 0 || o->length > 0) && !o->text && !o->tokens)
        return ab_fail(AB_E_USAGE, "capture: --offset and --length take a window of --text or "
                       "--tokens");
    struct ab_model m;
    struct ab_tokenizer tok;
    struct ab_workload w;
    memset(&tok, 0, sizeof tok);
    memset(&w, 0, sizeof w);
    int32_t *ids = NULL, *seq = NULL;
    char *input_desc = NULL;
    int64_t n_ids = 0, n_seq = 0;
    int rc = ab_model_load(o->model, &m), have_tok = 0;
    if (rc) return rc;
    const struct ab_model_config *c = &m.c;

    /* the tokenizer: required for text, optional (for /text) with raw ids */
    rc = ab_model_tokenizer_find(&m, o->tokenizer, &tok);
    if (!rc) {
        have_tok = 1;
    } else if (o->text || o->prompt || o->tokenizer) {
        goto fail;
    } else {
        ab_log(AB_LOG_INFO, "capture: no tokenizer, /text omitted (%s)", ab_errmsg());
        rc = AB_OK;
    }

    /* the input sequence */
    char desc[1024];
    if (o->text) {
        char *body;
        if ((rc = ab_text_read(o->text, AB_TEXT_MAX_BYTES, &body))) goto fail;
        rc = ab_tokenizer_encode(&tok, body, !o->no_bos, &ids, &n_ids);
        free(body);
        if (rc) goto fail;
        snprintf(desc, sizeof desc, "text '%s'", o->text);
    } else if (o->prompt) {
        if ((rc = ab_tokenizer_encode(&tok, o->prompt, !o->no_bos, &ids, &n_ids))) goto fail;
        snprintf(desc, sizeof desc, "prompt \"%.200s\"", o->prompt);
    } else if (o->tokens) {
        if ((rc = ab_token_ids_parse(o->tokens, &ids, &n_ids))) goto fail;
        snprintf(desc, sizeof desc, "token ids");
    } else {
        if ((rc = ab_copy_task(o->copy_task, c->vocab, have_tok ? tok.bos : 1, o->no_bos, o->seed, &ids,
                               &n_ids))) {
            rc = ab_fail(rc, "'%s': %s", o->model, ab_errmsg());
            goto fail;
        }
        snprintf(desc, sizeof desc,
                 "copy task R=%lld seed %llu: %sR random ids >= 3, then the same R ids again",
                 (long long)o->copy_task, (unsigned long long)o->seed, o->no_bos ? "" : "BOS, ");
    }
    if (n_ids == 0) {
        rc = ab_fail(AB_E_DATA, "capture: the input is empty (nothing to run; drop --no-bos?)");
        goto fail;
    }
    const char *src = o->text ? o->text : "--tokens";
    if (o->offset > 0 || o->length > 0) { /* a window [offset, offset + length) of the sequence */
        int64_t t0 = o->offset;
        int64_t len = o->length > 0 ? o->length : AB_MIN(n_ids - t0, c->seq_len - o->generate);
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
        if (len > c->seq_len - o->generate) {
            rc = ab_fail(AB_E_DATA, "capture: a window of %lld tokens%s is longer than the context "
                         "of '%s' (%lld tokens)", (long long)len, o->generate ? " + the generated ones" : "",
                         o->model, (long long)c->seq_len);
            goto fail;
        }
        memmove(ids, ids + t0, (size_t)len * sizeof *ids);
        size_t dl = strlen(desc);
        snprintf(desc + dl, sizeof desc - dl, ", tokens [%lld, %lld) of %lld", (long long)t0,
                 (long long)(t0 + len), (long long)n_ids);
        n_ids = len;
    } else if (n_ids > c->seq_len && !o->generate && (o->text || o->tokens)) {
        rc = ab_fail(AB_E_DATA, "capture: '%s' has %lld tokens, more than the context of '%s' "
                     "(%lld): take a window with --offset T --length N", src, (long long)n_ids,
                     o->model, (long long)c->seq_len);
        goto fail;
    }
    if (n_ids + o->generate > c->seq_len) {
        rc = ab_fail(AB_E_DATA,
                     "capture: %lld input tokens + %lld generated is longer than the context of "
                     "'%s' (%lld tokens)",
                     (long long)n_ids, (long long)o->generate, o->model, (long long)c->seq_len);
        goto fail;
    }

    /* generation (KV cache, one token per step), then the batched capture pass */
    if (o->generate > 0) {
        double t0 = ab_now();
        rc = ab_model_generate(&m, ids, n_ids, o->generate, have_tok ? tok.eos : -1, &seq, &n_seq);
        if (rc) goto fail;
        out->t_gen = ab_now() - t0;
    } else {
        seq = ids, n_seq = n_ids, ids = NULL;
    }
    if ((rc = ab_workload_alloc(&w, c->n_layer, c->n_head, c->n_kv_head, n_seq, c->head_dim,
                                c->head_dim)))
        goto fail;
    if (o->hidden) {
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
        .attend = on_attend, .hidden = o->hidden ? on_hidden : NULL, .user = &cap};
    double t0 = ab_now();
    if ((rc = ab_model_forward(&m, seq, n_seq, &hooks, NULL))) goto fail;
    out->t_cap = ab_now() - t0;

    /* the workload's facts */
    w.tokens = ab_alloc((size_t)n_seq * sizeof *w.tokens);
    if (!w.tokens) {
        rc = ab_fail(AB_E_NOMEM, "capture: out of memory");
        goto fail;
    }
    memcpy(w.tokens, seq, (size_t)n_seq * sizeof *seq);
    if (have_tok && (rc = ab_tokenizer_decode(&tok, seq, n_seq, &w.text))) goto fail;
    char gen_desc[128] = "";
    if (o->generate > 0)
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
    w.seed = o->seed;
    w.causal = 1;
    w.scale = 1.0 / sqrt((double)c->head_dim);
    w.rope_applied = 1;
    w.rope_theta = c->rope_theta;
    if ((rc = ab_h5_workload_write(o->out, &w))) goto fail;

    out->n_seq = n_seq, out->n_generated = n_seq - n_ids;
    out->n_layer = c->n_layer, out->n_head = c->n_head, out->n_kv_head = c->n_kv_head;
    out->head_dim = c->head_dim;
fail:
    ab_workload_free(&w);
    ab_tokenizer_free(&tok);
    ab_model_free(&m);
    free(ids);
    free(seq);
    free(input_desc);
    return rc;
}
