/* e2e.c - a method inside a model's forward pass, scored end to end (e2e.h). The model calls
 * attend() once per layer with Q, K, V of every row; the replaced heads go through
 * ab_method_apply exactly as `run` applies them, in parallel over heads (BLAS serial inside). */
#include "eval/e2e.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"

struct e2e_ctx {
    const struct ab_model *m;
    const struct ab_e2e_opts *o;
    int32_t *pos;  /* (n) 0 .. n-1 */
    int64_t *rows; /* (n) the phase's query rows q0 .. n-1 */
    int64_t q0;
    /* totals over the replaced heads */
    double flops_method, flops_dense, bytes_kv, rel_sum, tokens_sum, bytes_ratio_sum;
    int64_t n_replaced, n_feasible;
    char reason[96]; /* the first infeasible head's */
};

/* ||a - ref|| / ||ref|| over n values (0 when both vanish). */
static double rel_l2(const float *a, const double *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)a[i] - ref[i];
        num += e * e;
        den += ref[i] * ref[i];
    }
    return ab_rel_l2(num, den);
}

/* One replaced head: the method's output for rows q0..n-1 into o_rows (n_rows, hd). The head
 * is prepared for the method once, for the fit and both runs. */
static int replace_head(struct e2e_ctx *c, const struct ab_problem *head, float *o_rows,
                        struct ab_applied *ap, double *rel)
{
    const struct ab_method *me = c->o->method;
    const struct ab_head *h = head->h;
    struct ab_problem prepared = *head, *p = &prepared;
    struct ab_keep keep = {0};
    float *dist = NULL;
    double *ref = NULL;
    int rc = ab_problem_prepare(me, p);
    if (rc) return rc;
    if ((rc = ab_keep_alloc(&keep, p->n_rows, h->n_k))) goto done;
    if (me->dist && !(dist = ab_alloc(ab_size_mul((size_t)(p->n_rows * h->n_k), sizeof(float)))))
        rc = ab_fail(AB_E_NOMEM, "cannot allocate the method's distribution");
    if (!rc) rc = ab_method_apply(me, p, c->o->target, &c->o->apply, o_rows, &keep, dist, ap);
    if (!rc && !ap->ran) {
        /* not even the smallest knob fits: run it there, and the head stays infeasible */
        double lo, hi;
        ab_method_knob_range(me, p, &lo, &hi);
        struct ab_apply_opts at_lo = c->o->apply;
        at_lo.has_knob = 1, at_lo.knob = lo;
        struct ab_applied ap_lo;
        rc = ab_method_apply(me, p, NAN, &at_lo, o_rows, &keep, dist, &ap_lo);
        ap->led = ap_lo.led, ap->ran = ap_lo.ran, ap->knob = lo, ap->feasible = 0;
    }
    if (!rc) { /* attention-level error on this head's own inputs */
        ref = malloc(sizeof(double) * (size_t)(p->n_rows * h->d_v));
        if (!ref) rc = ab_fail(AB_E_NOMEM, "cannot allocate the reference rows");
        else if (!(rc = ab_attn_ref(h, p->rows, p->n_rows, ref, NULL)))
            *rel = rel_l2(o_rows, ref, p->n_rows * h->d_v);
    }
done:
    free(ref);
    ab_free(dist);
    ab_keep_free(&keep);
    ab_problem_unprepare(me, p);
    return rc;
}

static int attend(void *user, int64_t layer, const float *q, const float *k, const float *v,
                  int64_t n, float *out, int *done)
{
    struct e2e_ctx *c = user;
    const struct ab_e2e_opts *o = c->o;
    if (!o->method) return AB_OK; /* the model's own exact attention */
    const struct ab_model_config *mc = &c->m->c;
    int64_t H = mc->n_head, group = mc->n_head / mc->n_kv_head, hd = mc->head_dim;
    int any = !o->replace;
    for (int64_t h = 0; h < H && !any; h++) any = o->replace[layer * H + h];
    if (!any) return AB_OK; /* nothing replaced in this layer: the model's own attention */
    struct ab_head *heads = malloc(sizeof *heads * (size_t)H);
    if (!heads) return ab_fail(AB_E_NOMEM, "cannot allocate the layer's heads");
    for (int64_t h = 0; h < H; h++)
        heads[h] = (struct ab_head){.n_q = n, .n_k = n, .d = hd, .d_v = hd,
                                    .q = q + h * n * hd,
                                    .k = k + (h / group) * n * hd,
                                    .v = v + (h / group) * n * hd,
                                    .q_pos = c->pos, .k_pos = c->pos,
                                    .mask = AB_MASK_CAUSAL,
                                    .scale = 1.0 / sqrt((double)hd)};
    int64_t n_rows = n - c->q0;
    int rc = AB_OK;
    int64_t err_h = H; /* the failing head reported: the first by index, whatever the threads */
    char msg[512] = "";
    int threads = ab_threads_get();
    /* each replaced head's totals, summed in head order after the loop: the same sums whatever
     * order the threads finish in */
    struct head_total {
        double flops_method, flops_dense, bytes_kv, rel, tokens_step, bytes_ratio;
        int feasible, done;
        char reason[96];
    } *tot = calloc((size_t)H, sizeof *tot);
    if (!tot) {
        free(heads);
        return ab_fail(AB_E_NOMEM, "cannot allocate the layer's totals");
    }
    ab_blas_serial_begin();
#pragma omp parallel num_threads(threads)
    {
        float *o_rows = ab_alloc(ab_size_mul((size_t)(n_rows * hd), sizeof(float)));
#pragma omp for schedule(dynamic, 1)
        for (int64_t h = 0; h < H; h++) {
            int my_rc = o_rows ? AB_OK : ab_fail(AB_E_NOMEM, "cannot allocate head outputs");
            float *o_h = out + h * n * hd; /* (n, hd) */
            int replaced = !o->replace || o->replace[layer * H + h];
            /* exact attention for kept heads, and for the prefix a decode method does not serve */
            if (!my_rc && (!replaced || c->q0 > 0)) my_rc = ab_attn_fast(&heads[h], o_h, NULL);
            if (!my_rc && replaced) {
                struct ab_problem p = {.h = &heads[h], .phase = o->phase, .q0 = c->q0,
                                       .rows = c->rows, .n_rows = n_rows, .layer = heads,
                                       .n_layer_heads = H, .self = h, .group = group,
                                       .seed = ab_stream(o->seed, (uint64_t)layer, (uint64_t)h,
                                                         7),
                                       .layer_index = layer, .n_layer = mc->n_layer,
                                       .horizon = o->horizon};
                struct ab_applied ap;
                double rel = NAN;
                my_rc = replace_head(c, &p, o_rows, &ap, &rel);
                if (!my_rc) {
                    memcpy(o_h + c->q0 * hd, o_rows, sizeof(float) * (size_t)(n_rows * hd));
                    tot[h] = (struct head_total){ab_ledger_flops(&ap.led, ab_once_weight(&p)),
                                                 ab_problem_dense_flops(&p), ap.led.bytes_kv, rel,
                                                 ab_ledger_tokens_step(&ap.led, &p),
                                                 ab_ledger_bytes_ratio(&ap.led, &p),
                                                 ap.feasible, 1, ""};
                    if (!ap.feasible)
                        snprintf(tot[h].reason, sizeof tot[h].reason, "%s", ap.reason);
                }
            }
            if (my_rc) {
#pragma omp critical(e2e_error)
                if (h < err_h) {
                    rc = my_rc, err_h = h;
                    snprintf(msg, sizeof msg, "%s (layer %lld, head %lld): %s", o->method->name,
                             (long long)layer, (long long)h, ab_errmsg());
                }
            }
        }
        ab_free(o_rows);
    }
    ab_blas_serial_end();
    for (int64_t h = 0; h < H && !rc; h++) {
        if (!tot[h].done) continue;
        c->flops_method += tot[h].flops_method;
        c->flops_dense += tot[h].flops_dense;
        c->bytes_kv += tot[h].bytes_kv;
        c->rel_sum += tot[h].rel;
        c->tokens_sum += tot[h].tokens_step;
        c->bytes_ratio_sum += tot[h].bytes_ratio;
        c->n_replaced++;
        c->n_feasible += tot[h].feasible;
        if (!tot[h].feasible && !c->reason[0])
            snprintf(c->reason, sizeof c->reason, "%s", tot[h].reason);
    }
    free(tot);
    free(heads);
    if (rc) return ab_fail(rc, "%s", msg);
    *done = 1;
    return AB_OK;
}

/* Sums of one pass's scored targets: position t predicts token t + 1. */
struct tally {
    double nll;
    int64_t n, hits, copy_hits, copy_n;
};

/* Adds the predictions of logits (n, vocab) at t in [t0, n - 1) to s; copy hits from row
 * copy_from on (copy_from > 0). */
static void score(const float *logits, int64_t vocab, const int32_t *tokens, int64_t n,
                  int64_t t0, int64_t copy_from, struct tally *s)
{
    for (int64_t t = t0; t < n - 1; t++) {
        const float *z = logits + t * vocab;
        int64_t best = 0;
        for (int64_t j = 1; j < vocab; j++)
            if (z[j] > z[best]) best = j;
        double mx = z[best];
        double sum = 0;
        for (int64_t j = 0; j < vocab; j++) sum += exp((double)z[j] - mx);
        s->nll += mx + log(sum) - (double)z[tokens[t + 1]];
        int hit = best == tokens[t + 1];
        s->hits += hit;
        s->n++;
        if (copy_from > 0 && t >= copy_from) s->copy_hits += hit, s->copy_n++;
    }
}

static void tally_finish(const struct tally *s, struct ab_e2e_result *r)
{
    r->n_scored = s->n;
    r->nll = s->n > 0 ? s->nll / (double)s->n : NAN;
    r->ppl = exp(r->nll);
    r->acc = s->n > 0 ? (double)s->hits / (double)s->n : NAN;
    r->copy_acc = s->copy_n > 0 ? (double)s->copy_hits / (double)s->copy_n : NAN;
}

/* Checks o against the model and an input of n tokens; *q0 the first method row. */
static int check_pass(const struct ab_e2e_opts *o, int64_t n, int64_t *q0)
{
    *q0 = 0;
    if (n < 2) return ab_fail(AB_E_USAGE, "the input has %lld tokens: nothing to score", (long long)n);
    if (o->phase == AB_PHASE_DECODE) {
        if (o->decode_m < 1 || o->decode_m >= n)
            return ab_fail(AB_E_USAGE, "decode queries m = %lld must be in [1, %lld]",
                           (long long)o->decode_m, (long long)(n - 1));
        *q0 = n - o->decode_m;
    }
    if (o->method && !(o->method->phases & (unsigned)o->phase))
        return ab_fail(AB_E_USAGE, "method '%s' has no %s phase", o->method->name,
                       o->phase == AB_PHASE_DECODE ? "decode" : "prefill");
    if (o->method && (o->method->flags & AB_METHOD_MODEL))
        return ab_fail(AB_E_USAGE, "method '%s' plans over every layer at once, which a forward "
                       "pass (layer after layer) cannot give it: run it with `attnbench run` on a "
                       "capture of the same input", o->method->name);
    if (o->method && !(o->method->masks & AB_MASKS_CAUSAL))
        return ab_fail(AB_E_USAGE, "method '%s' does not support the causal mask a decoder needs",
                       o->method->name);
    return AB_OK;
}

/* One forward pass over tokens[0 .. n): the method's totals into r (not the scores), the
 * targets of rows t >= max(q0, score_from) added to s. */
static int pass(const struct ab_model *m, const int32_t *tokens, int64_t n, int64_t copy_from,
                const struct ab_e2e_opts *o, int64_t score_from, struct ab_e2e_result *r,
                struct tally *s)
{
    int64_t q0;
    int rc = check_pass(o, n, &q0);
    if (rc) return rc;
    struct e2e_ctx c = {.m = m, .o = o, .q0 = q0};
    c.pos = malloc(sizeof(int32_t) * (size_t)n);
    c.rows = malloc(sizeof(int64_t) * (size_t)n);
    float *logits = ab_alloc(ab_size_mul((size_t)n, (size_t)m->c.vocab * sizeof(float)));
    if (!c.pos || !c.rows || !logits) rc = ab_fail(AB_E_NOMEM, "cannot allocate the evaluation");
    for (int64_t i = 0; !rc && i < n; i++) c.pos[i] = (int32_t)i;
    for (int64_t i = q0; !rc && i < n; i++) c.rows[i - q0] = i;
    if (!rc) {
        struct ab_forward_hooks hooks = {.attend = attend, .user = &c};
        double t0 = ab_now();
        rc = ab_model_forward(m, tokens, n, &hooks, logits);
        r->time_s = ab_now() - t0;
    }
    if (!rc) {
        score(logits, m->c.vocab, tokens, n, AB_MAX(q0, score_from), copy_from, s);
        r->flops_method = c.flops_method, r->flops_dense = c.flops_dense;
        r->bytes_kv = c.bytes_kv;
        r->n_replaced = c.n_replaced, r->n_feasible = c.n_feasible;
        snprintf(r->reason, sizeof r->reason, "%s", c.reason);
        r->rel_l2 = c.n_replaced ? c.rel_sum / (double)c.n_replaced : NAN;
        r->tokens_step = c.n_replaced ? c.tokens_sum / (double)c.n_replaced : NAN;
        r->bytes_ratio = c.n_replaced ? c.bytes_ratio_sum / (double)c.n_replaced : NAN;
    }
    ab_free(logits);
    free(c.pos);
    free(c.rows);
    return rc;
}

int ab_e2e_eval(const struct ab_model *m, const int32_t *tokens, int64_t n, int64_t copy_from,
                const struct ab_e2e_opts *o, struct ab_e2e_result *r)
{
    memset(r, 0, sizeof *r);
    struct tally s = {0};
    int rc = pass(m, tokens, n, copy_from, o, 0, r, &s);
    if (!rc) tally_finish(&s, r);
    return rc;
}

void ab_e2e_windows(int64_t n, int64_t window, int64_t stride, int64_t k, int64_t *begin,
                    int64_t *end, int64_t *score_from)
{
    int64_t e = AB_MIN(n, window + k * stride), prev = k ? AB_MIN(n, window + (k - 1) * stride) : 0;
    *end = e;
    *begin = AB_MAX(0, e - window);
    *score_from = k ? prev - 1 - *begin : 0;
}

int64_t ab_e2e_n_windows(int64_t n, int64_t window, int64_t stride)
{
    if (n <= window) return 1;
    return 1 + (n - window + stride - 1) / stride;
}

int ab_e2e_eval_windows(const struct ab_model *m, const int32_t *tokens, int64_t n,
                        int64_t window, int64_t stride, int32_t bos, const struct ab_e2e_opts *o,
                        struct ab_e2e_result *r)
{
    memset(r, 0, sizeof *r);
    if (window < 2 || window > m->c.seq_len)
        return ab_fail(AB_E_USAGE, "window %lld must be in [2, %lld] (the model's context)",
                       (long long)window, (long long)m->c.seq_len);
    int64_t most = window - (bos >= 0 ? 2 : 1); /* every scored row has a context token */
    if (stride < 1 || stride > most)
        return ab_fail(AB_E_USAGE, "stride %lld must be in [1, %lld] (the window of %lld%s, less "
                       "one token of context)", (long long)stride, (long long)most,
                       (long long)window, bos >= 0 ? " with BOS first" : "");
    if (o->phase == AB_PHASE_DECODE && o->decode_m >= AB_MIN(n, window))
        return ab_fail(AB_E_USAGE, "decode queries m = %lld must be below the window of %lld "
                       "tokens", (long long)o->decode_m, (long long)AB_MIN(n, window));
    struct tally s = {0};
    int64_t nw = ab_e2e_n_windows(n, window, stride), n_feasible = INT64_MAX, n_replaced = 0;
    double rel_sum = 0, tok_sum = 0, br_sum = 0;
    int32_t *buf = bos >= 0 && nw > 1 ? malloc(sizeof(int32_t) * (size_t)window) : NULL;
    if (bos >= 0 && nw > 1 && !buf) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int64_t k = 0; k < nw; k++) {
        int64_t b, e, from;
        struct ab_e2e_result w;
        ab_e2e_windows(n, window, stride, k, &b, &e, &from);
        const int32_t *win = tokens + b;
        if (k && buf) { /* BOS in place of the window's first token (context only) */
            memcpy(buf, tokens + b, sizeof(int32_t) * (size_t)(e - b));
            buf[0] = bos;
            win = buf;
        }
        int rc = pass(m, win, e - b, 0, o, from, &w, &s);
        if (rc) {
            free(buf);
            return rc;
        }
        r->flops_method += w.flops_method, r->flops_dense += w.flops_dense;
        r->bytes_kv = AB_MAX(r->bytes_kv, w.bytes_kv);
        r->time_s += w.time_s;
        n_replaced = AB_MAX(n_replaced, w.n_replaced);
        n_feasible = AB_MIN(n_feasible, w.n_feasible);
        if (!r->reason[0]) snprintf(r->reason, sizeof r->reason, "%s", w.reason);
        rel_sum += isnan(w.rel_l2) ? 0 : w.rel_l2;
        tok_sum += w.tokens_step, br_sum += w.bytes_ratio; /* NaN in prefill: stays NaN */
    }
    free(buf);
    tally_finish(&s, r);
    r->n_replaced = n_replaced;
    r->n_feasible = nw ? n_feasible : 0;
    r->rel_l2 = n_replaced ? rel_sum / (double)nw : NAN;
    r->tokens_step = n_replaced ? tok_sum / (double)nw : NAN;
    r->bytes_ratio = n_replaced ? br_sum / (double)nw : NAN;
    r->n_windows = nw;
    return AB_OK;
}
