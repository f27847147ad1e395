/* eval_model.c - the engine of `attnbench eval-model` (e2e.h, ab_eval_model): registry methods
 * replace attention inside a real model (every layer, or chosen heads), scored end to end on a
 * text (perplexity, next-token accuracy) and on a copy task (a random block repeated: the second
 * copy's next-token accuracy measures retrieval through attention), next to dense on the same
 * input, one /model row per (input, phase, method, target, head set).
 *
 * Texts longer than the model's context are scored with sliding windows (ab_e2e_eval_windows:
 * windows of the context length every stride tokens, default half the context, each target
 * scored once with at least context - stride tokens before it); the caller's note says so.
 *
 * Heads: every head by default; `heads` names them; `heads_top` / `heads_bottom` take the K
 * heads with the largest / smallest score of a /heads table column (read by the caller:
 * lib/eval reads no results files), `heads_random` K seeded random heads (the control); the
 * three take lists and combine, one set of rows per (choice, K), so the ablation of the
 * retrieval-head papers is one call. `heads_select` follows ACT's protocol: on a calibration
 * input (a text, or a copy task), replace one head at a time and keep the heads where the
 * method lowers the NLL by more than select_min, then evaluate with that set on the inputs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/list.h"
#include "core/rng.h"
#include "eval/e2e.h"
#include "model/input.h"
#include "model/model.h"

enum { MAX_INPUTS = 3, MAX_SETS = 48 };

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

/* --heads-top K --heads-score COL --heads-file FILE: the K heads with the largest COL among the
 * rows of the file's first workload (ties to the lower layer, head; o->heads_read gives those
 * rows); bottom: the K with the smallest (heads whose COL is NaN are never chosen by either). */
static int heads_top(const struct ab_eval_model_opts *o, int64_t k, int bottom,
                     const struct ab_model_config *c, int8_t *replace)
{
    const char *file = o->heads_file, *col = o->heads_score;
    struct ab_head_scores s = {0};
    int rc = o->heads_read(o->user, file, col, &s);
    int64_t total = c->n_layer * c->n_head;
    double *score = malloc(sizeof(double) * (size_t)total);
    int8_t *seen = calloc((size_t)total, 1);
    if (!rc && (!score || !seen)) rc = ab_fail(AB_E_NOMEM, "out of memory");
    for (int64_t i = 0; !rc && i < s.n; i++) {
        if (s.layer[i] < 0 || s.layer[i] >= c->n_layer || s.head[i] < 0 || s.head[i] >= c->n_head)
            rc = ab_fail(AB_E_DATA, "'%s': head %lld:%lld is outside the model's %lld x %lld heads",
                         file, (long long)s.layer[i], (long long)s.head[i], (long long)c->n_layer,
                         (long long)c->n_head);
        else {
            double v = s.score[i];
            score[s.layer[i] * c->n_head + s.head[i]] = isnan(v) ? NAN : bottom ? -v : v;
            seen[s.layer[i] * c->n_head + s.head[i]] = 1;
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
    free(s.layer), free(s.head), free(s.score);
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

/* One budget a (phase, method) pass meets: its kind (enum ab_budget_kind) and value (a FLOP or
 * bytes ratio, tokens per decode step; NaN for a direct knob). */
struct budget {
    int kind;
    double value;
};
enum { MAX_BUDGETS = 3 * 64 + 1 };

/* The budgets of m in phase ph, as the sweep's (sweep.c budgets_of): a direct knob, one pass
 * (no target); FLOP targets, one pass each, or one at the fixed cost (target 1) for a
 * knob-less or FIXED method; decode: every tokens and bytes budget too, whatever the method
 * (each head is fitted by ab_method_apply, which handles FIXED rows whose measure moves).
 * Prefill has only the FLOP targets: with none given, a method has no prefill pass. */
static int budgets_of(const struct ab_eval_model_opts *o, const struct ab_method *me, int ph,
                      struct budget *b)
{
    int n = 0;
    if (o->apply.has_knob) {
        b[0] = (struct budget){AB_BUDGET_FLOPS, NAN};
        return 1;
    }
    if (me->knob.name && !(me->flags & AB_METHOD_FIXED))
        for (int t = 0; t < o->n_targets && n < MAX_BUDGETS; t++)
            b[n++] = (struct budget){AB_BUDGET_FLOPS, o->targets[t]};
    else if (o->n_targets > 0)
        b[n++] = (struct budget){AB_BUDGET_FLOPS, 1.0};
    if (ph == AB_PHASE_DECODE) {
        for (int t = 0; t < o->n_kv_tokens && n < MAX_BUDGETS; t++)
            b[n++] = (struct budget){AB_BUDGET_TOKENS, o->kv_tokens[t]};
        for (int t = 0; t < o->n_kv_bytes && n < MAX_BUDGETS; t++)
            b[n++] = (struct budget){AB_BUDGET_BYTES, o->kv_bytes[t]};
    }
    return n;
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

/* n more passes done: the caller's progress callback hears the running count. */
static void step(const struct ab_eval_model_opts *o, int64_t *done, int64_t total, int64_t n)
{
    *done += n;
    if (o->progress) o->progress(o->user, *done, total);
}

int ab_eval_model(const struct ab_eval_model_opts *o, struct ab_results *res)
{
    const char *model_path = o->model, *text = o->text, *calibrate = o->calibrate;
    int64_t m = o->decode_m, horizon = o->horizon, stride = o->stride;
    int64_t copy_r = o->copy_task, calibrate_copy = o->calibrate_copy;
    int window_bos = o->window_bos, heads_select = o->heads_select;
    unsigned phases = o->phases;
    const struct ab_method *const *list = o->methods;
    int n_list = o->n_methods;
    const struct ab_apply_opts ao = o->apply;
    struct budget bs[MAX_BUDGETS];
    int ranked = o->heads_top || o->heads_bottom || o->heads_random;
    int n_sel = (o->heads != NULL) + ranked + heads_select;

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
    /* every pass runs BLAS single-threaded under OpenMP (forward.c): hold it so for the whole
     * engine instead of waking OpenBLAS's pool between passes */
    ab_blas_serial_begin();
    int rc = ab_model_load(model_path, &model);
    const struct ab_model_config *c = &model.c;
    if (!rc && (text || calibrate)) {
        rc = ab_model_tokenizer_find(&model, o->tokenizer, &tok);
        have_tok = !rc;
    }
    if (!rc && text) {
        snprintf(in[n_in].name, sizeof in[n_in].name, "%s", text);
        rc = ab_model_input_text(&model, &tok, text, MAX_TEXT_TOKENS, &in[n_in++].in);
    }
    if (!rc && copy_r > 0) {
        snprintf(in[n_in].name, sizeof in[n_in].name, "copy-%lld", (long long)copy_r);
        rc = ab_model_input_copy(&model, copy_r, o->seed, &in[n_in++].in);
    }
    if (!rc && calibrate) {
        snprintf(cal.name, sizeof cal.name, "%s", calibrate);
        rc = ab_model_input_text(&model, &tok, calibrate, MAX_TEXT_TOKENS, &cal.in);
    } else if (!rc && calibrate_copy) {
        snprintf(cal.name, sizeof cal.name, "copy-%lld", (long long)calibrate_copy);
        rc = ab_model_input_copy(&model, calibrate_copy, ab_stream(o->seed, 0x63616c /* "cal" */, 0, 0),
                                 &cal.in);
    }
    /* texts longer than the context: sliding windows (said in a note, the default too) */
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
            if (o->note) {
                char msg[2048];
                snprintf(msg, sizeof msg, "eval-model: '%s' has %lld tokens, more than the "
                         "context of %lld: scored in %lld sliding windows of %lld tokens, stride "
                         "%lld%s (each target once, with at least %lld tokens of context after "
                         "the first window%s)",
                         x->name, (long long)x->in.n, (long long)c->seq_len,
                         (long long)ab_e2e_n_windows(x->in.n, c->seq_len, stride_used),
                         (long long)c->seq_len, (long long)stride_used,
                         stride ? "" : " (the default, half the context; --stride S to change)",
                         (long long)(c->seq_len - stride_used - (bos >= 0)),
                         bos >= 0 ? "; each window starts with BOS" : "; windows after the first "
                         "start mid-text, without BOS (--window-bos to put it there)");
                o->note(o->user, msg);
            }
        }
    }
    /* the head sets: one, or one per (choice, K) of --heads-top / --heads-bottom / --heads-random */
    int64_t total_heads = c->n_layer * c->n_head;
    if (!rc && ranked) {
        n_sets = 0;
        const char *spec[3] = {o->heads_top, o->heads_bottom, o->heads_random};
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
                    rc = heads_top(o, ks[j], kind == 1, c, x->replace);
                    snprintf(x->how, sizeof x->how, "%s %lld by %s", kind ? "bottom" : "top",
                             (long long)ks[j], o->heads_score);
                } else {
                    rc = heads_random(ks[j], o->seed, c, x->replace);
                    snprintf(x->how, sizeof x->how, "random %lld (seed %llu)", (long long)ks[j],
                             (unsigned long long)o->seed);
                }
                if (!rc) rc = set_list(x, c->n_layer, c->n_head);
            }
        }
    } else if (!rc) {
        if (n_sel && !(hs->replace = calloc((size_t)total_heads, 1)))
            rc = ab_fail(AB_E_NOMEM, "out of memory");
        if (!rc && o->heads) {
            rc = heads_named(o->heads, c, hs->replace);
            snprintf(hs->how, sizeof hs->how, "named");
        } else if (!rc && !heads_select) {
            snprintf(hs->how, sizeof hs->how, "all");
        }
        if (!rc && !heads_select) rc = set_list(hs, c->n_layer, c->n_head);
    }
    if (rc) goto done;
    res->notes = strdup("eval-model: position t predicts token t + 1; prefill scores every "
                        "position, decode only the last --decode-queries rows (the prefix exact); "
                        "knobs are fitted per head to the target (met when the ratio is at most "
                        "the target) in the measure budget_kind names: flops (flop ratio), tokens "
                        "(decode: kept cells / m, <= target_tokens) or bytes (decode: bytes_kv / "
                        "dense bytes_kv), by run's solver; tokens_step and bytes_ratio are the "
                        "means over the replaced heads; tokens and bytes budgets give no prefill "
                        "passes; a head where no knob fits runs at its smallest knob and is "
                        "infeasible, and a pass with an infeasible head reports no nll, ppl, acc "
                        "or copy_acc (its reason says how many heads met the target); heads not "
                        "replaced are exact; a text longer than the context is scored in sliding "
                        "windows of the context every `stride` tokens, each target once (decode: the "
                        "new targets among each window's last rows); windows after the first start "
                        "mid-text, or with BOS in place of their first token when window_bos is 1");
    if (windowed) res->stride = stride_used, res->window_bos = bos >= 0;
    res->decode_horizon = phases & AB_PHASE_DECODE ? horizon : 0;

    /* passes: per input, dense then every (phase, method, target, head set); --heads-select
     * first runs one pass per head on the calibration input for each (phase, method, target).
     * A method runs in the phases it has (with --phase both, snapkv in decode only). */
    int64_t n_cells = 0; /* (phase, method, target) cells over both phases */
    unsigned busy = 0;   /* the phases with a pass of a method: the others need no dense pass */
    for (int ph = AB_PHASE_PREFILL; ph <= AB_PHASE_DECODE; ph <<= 1)
        for (int i = 0; i < n_list; i++)
            if ((phases & (unsigned)ph) && (list[i]->phases & (unsigned)ph)) {
                int nb = budgets_of(o, list[i], ph, bs);
                n_cells += nb;
                if (nb) busy |= (unsigned)ph;
            }
    int n_phase = (busy & AB_PHASE_PREFILL ? 1 : 0) + (busy & AB_PHASE_DECODE ? 1 : 0);
    int64_t per_sel = heads_select ? total_heads : 0;
    /* model passes (a windowed text counts one per window): per phase the dense pass of each
     * input (and of the calibration input), then per cell the one-head calibration passes and
     * one pass per input and head set */
    int64_t w_in = 0, w_cal = 0;
    for (int i = 0; i < n_in; i++) w_in += ab_e2e_n_windows(in[i].in.n, c->seq_len, stride_used);
    if (heads_select) w_cal = ab_e2e_n_windows(cal.in.n, c->seq_len, stride_used);
    int64_t total = n_cells * (w_in * n_sets + per_sel * w_cal) + (int64_t)n_phase * (w_in + w_cal);
    int64_t done = 0;
    if (o->begin && (rc = o->begin(o->user, total))) goto done;
    for (int ph = AB_PHASE_PREFILL; ph <= AB_PHASE_DECODE && !rc; ph <<= 1) {
        if (!(busy & (unsigned)ph)) continue;
        struct ab_e2e_opts eo = {.phase = ph, .decode_m = m, .horizon = horizon, .apply = ao,
                                 .seed = o->seed};
        struct ab_e2e_result dense[MAX_INPUTS], cal_dense;
        for (int i = 0; i < n_in && !rc; i++) {
            rc = eval_input(&model, &in[i], stride_used, bos, &eo, &dense[i]);
            step(o, &done, total, ab_e2e_n_windows(in[i].in.n, c->seq_len, stride_used));
        }
        if (!rc && heads_select) {
            rc = eval_input(&model, &cal, stride_used, bos, &eo, &cal_dense);
            step(o, &done, total, w_cal);
        }
        for (int mi = 0; mi < n_list && !rc; mi++) {
            const struct ab_method *me = list[mi];
            if (!(me->phases & (unsigned)ph)) continue;
            int n_b = budgets_of(o, me, ph, bs);
            for (int t = 0; t < n_b && !rc; t++) {
                const struct budget *b = &bs[t];
                eo.method = me;
                eo.target = b->value;
                eo.apply.kind = b->kind;
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
                        if (!rc && cal_dense.nll - r1.nll > o->select_min) hs->replace[hh] = 1, n_keep++;
                        step(o, &done, total, w_cal);
                    }
                    free(one);
                    free(hs->list);
                    hs->list = NULL;
                    if (!rc) rc = set_list(hs, c->n_layer, c->n_head);
                    snprintf(hs->how, sizeof hs->how, "selected on %.160s: %lld of %lld lower its nll by > %g",
                             cal.name, (long long)n_keep, (long long)total_heads, o->select_min);
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
                        step(o, &done, total, ab_e2e_n_windows(in[i].in.n, c->seq_len, stride_used));
                        if (rc) break;
                        struct ab_model_row row = {
                            .workload = in[i].name, .model = (char *)model_path,
                            .method = (char *)me->name, .family = (char *)ab_family_name(me->family),
                            .phase = ph == AB_PHASE_PREFILL ? "prefill" : "decode",
                            .knob_name = (char *)(me->knob.name ? me->knob.name : ""),
                            .knob = ao.has_knob                                              ? ao.knob
                                    : (me->flags & AB_METHOD_FIXED) && b->kind == AB_BUDGET_FLOPS ? me->knob.def
                                                                                                  : NAN,
                            .target_ratio = b->kind == AB_BUDGET_TOKENS ? NAN : b->value,
                            .budget_kind = (char *)(ao.has_knob ? "" : ab_budget_kind_name(b->kind)),
                            .target_tokens = b->kind == AB_BUDGET_TOKENS ? b->value : NAN,
                            .flop_ratio = r.flops_dense > 0 ? r.flops_method / r.flops_dense : NAN,
                            .bytes_kv = r.bytes_kv, .tokens_step = r.tokens_step,
                            .bytes_ratio = r.bytes_ratio, .heads = (char *)set->how, .head_list = set->list,
                            .n_heads = r.n_replaced, .heads_feasible = r.n_feasible,
                            .feasible = r.n_feasible == r.n_replaced, .n_tokens = in[i].in.n,
                            .n_scored = r.n_scored, .nll = r.nll, .ppl = r.ppl, .acc = r.acc,
                            .copy_acc = r.copy_acc, .dense_nll = dense[i].nll,
                            .dense_ppl = dense[i].ppl, .dense_acc = dense[i].acc,
                            .dense_copy_acc = dense[i].copy_acc, .rel_l2 = r.rel_l2, .time_s = r.time_s};
                        char why[224] = "";
                        if (r.n_feasible < r.n_replaced) { /* no score for a pass off its budget */
                            if (b->kind == AB_BUDGET_FLOPS)
                                snprintf(why, sizeof why, "target met on %lld of %lld heads (the "
                                         "others ran at their smallest knob, which costs more)",
                                         (long long)r.n_feasible, (long long)r.n_replaced);
                            else /* run's reason of the first head that missed it */
                                snprintf(why, sizeof why, "target met on %lld of %lld heads (the "
                                         "others ran at their smallest knob; first: %s)",
                                         (long long)r.n_feasible, (long long)r.n_replaced, r.reason);
                            row.nll = row.ppl = row.acc = row.copy_acc = NAN;
                        }
                        row.reason = why;
                        if ((rc = ab_results_add_model(res, &row))) break;
                        if (o->row) o->row(o->user, &row);
                    }
                }
            }
        }
    }
done:
    for (int i = 0; i < n_in; i++) ab_model_input_free(&in[i].in);
    ab_model_input_free(&cal.in);
    if (have_tok) ab_tokenizer_free(&tok);
    ab_model_free(&model);
    for (int i = 0; i < MAX_SETS; i++) free(sets[i].replace), free(sets[i].list);
    ab_blas_serial_end();
    return rc;
}
