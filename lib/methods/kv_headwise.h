/* kv_headwise.h - what the head-wise KV rows (razor.c, moa.c) share: the calibration rows of a
 * decode problem, the attention profile of those rows by distance, the cells of a
 * "sinks + last w keys" cache, the slot of a head in a model plan, and the test hooks of both
 * rows. Internal to lib/methods: razor.c, moa.c and tests/test_methods_headwise.c include it.
 *
 * Calibration rows: at most HW_ROWS = 8 context rows spread over the second half of the context,
 * t_k = q0 - 1 - k s with s = max(1, floor(q0 / 16)), k = 0 .. min(8, q0) - 1; context rows only
 * (decode protocol). Their logits against the n_ctx context keys are one sgemm of
 * (rows, d) x (d, n_ctx): 2 rows n_ctx d FLOPs, plus rows n_ctx exps. */
#ifndef AB_METHODS_KV_HEADWISE_H
#define AB_METHODS_KV_HEADWISE_H

#include <stdint.h>

#include "methods/kv.h"
#include "methods/method.h"

enum { HW_ROWS = 8, HW_SINKS = 4 };

/* Number of calibration rows of p (file comment): min(8, q0). */
static inline int64_t hw_n_rows(const struct ab_problem *p)
{
    return AB_MIN(HW_ROWS, p->q0);
}

/* The calibration profile of head h in decode problem p (file comment), from context rows only:
 *     P_t(j)  = softmax_j(scale q_t.k_j) over the keys row t sees
 *     *sink   = sum over rows t of sum_{j < 4} P_t(j)
 *     mass[D] = sum over rows t of P_t(t' - D)       for keys j = v_t - 1 - D >= 4
 * where v_t is the number of keys row t sees and D = v_t - 1 - j is the key's distance from the
 * newest key (0 = the newest). mass is (n_k), zeroed here. The caller divides by hw_n_rows(p).
 * Scratch O(rows n_ctx). AB_OK or AB_E_NOMEM. */
static inline int hw_profile(const struct ab_problem *p, double *sink, double *mass)
{
    const struct ab_head *h = p->h;
    int64_t nr = hw_n_rows(p), n_ctx = kv_n_ctx(p), d = h->d;
    int64_t step = AB_MAX(1, p->q0 / (2 * HW_ROWS));
    *sink = 0;
    for (int64_t j = 0; j < h->n_k; j++) mass[j] = 0;
    if (nr <= 0 || n_ctx <= 0) return AB_OK;
    float *qr = ab_alloc(ab_size_mul((size_t)(nr * d), sizeof(float)));    /* (nr, d) */
    float *s = ab_alloc(ab_size_mul((size_t)(nr * n_ctx), sizeof(float))); /* (nr, n_ctx) */
    if (!qr || !s) {
        ab_free(qr), ab_free(s);
        return ab_fail(AB_E_NOMEM, "cannot allocate the calibration logits (%lld x %lld)",
                       (long long)nr, (long long)n_ctx);
    }
    for (int64_t r = 0; r < nr; r++)
        memcpy(qr + r * d, h->q + (p->q0 - 1 - r * step) * d, (size_t)d * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)n_ctx, (int)d,
                (float)h->scale, qr, (int)d, h->k, (int)d, 0.0f, s, (int)n_ctx);
    for (int64_t r = 0; r < nr; r++) {
        float *a = s + r * n_ctx; /* (n_ctx) row t's logits, then probabilities */
        int64_t v = AB_MIN(ab_head_visible(h, p->q0 - 1 - r * step), n_ctx);
        kv_softmax(a, v);
        for (int64_t j = 0; j < AB_MIN(HW_SINKS, v); j++) *sink += a[j];
        for (int64_t j = HW_SINKS; j < v; j++) mass[v - 1 - j] += a[j];
    }
    ab_free(qr), ab_free(s);
    return AB_OK;
}

/* The ledger of the calibration rows of p: 2 rows n_ctx d FLOPs of logits (flops_once: one-off), and
 * rows n_ctx exps plus rows n_ctx additions into the profile (ops_other). */
static inline void hw_profile_ledger(const struct ab_problem *p, struct ab_ledger *led)
{
    double nr = (double)hw_n_rows(p), n_ctx = (double)kv_n_ctx(p);
    led->flops_once += 2.0 * nr * n_ctx * (double)p->h->d;
    led->ops_other += 2.0 * nr * n_ctx;
}

/* The keys a "4 sinks + last w keys" cache gives a query that sees v keys: [0, *ns) and
 * [*lo, v), with *lo = max(0, v - w) and *ns = min(4, *lo) (sinks inside the window count
 * once). The keys [*ns, *lo) are dropped. */
static inline void hw_span(int64_t v, int64_t w, int64_t *lo, int64_t *ns)
{
    *lo = AB_MAX(0, v - AB_MAX(w, 0));
    *ns = AB_MIN(HW_SINKS, *lo);
}

/* Over the decode rows q0 .. n-1 of p with window w: the kept cells (returned), the rows that
 * drop at least one key (*n_drop_rows) and the most keys any row drops (*max_drop). */
static inline double hw_stream_cells(const struct ab_problem *p, int64_t w, double *n_drop_rows,
                                     double *max_drop)
{
    double cells = 0;
    *n_drop_rows = 0, *max_drop = 0;
    for (int64_t i = p->q0; i < p->h->n_q; i++) {
        int64_t v = ab_head_visible(p->h, i), lo, ns;
        hw_span(v, w, &lo, &ns);
        cells += (double)(ns + v - lo);
        if (lo > ns) *n_drop_rows += 1, *max_drop = AB_MAX(*max_drop, (double)(lo - ns));
    }
    return cells;
}

/* The slot of p's head in a plan over n_layer x n_head heads: layer_index * n_head + self, or
 * -1 (with an AB_E_USAGE message naming `name`) when p does not fit that shape. */
static inline int64_t hw_slot(const struct ab_problem *p, int64_t n_layer, int64_t n_head,
                              const char *name)
{
    if (p->layer_index < 0 || p->layer_index >= n_layer || p->self < 0 || p->self >= n_head) {
        ab_fail(AB_E_USAGE, "%s: head %lld of layer %lld is outside its plan (%lld x %lld)", name,
                (long long)p->self, (long long)p->layer_index, (long long)n_layer,
                (long long)n_head);
        return -1;
    }
    return p->layer_index * n_head + p->self;
}

/* ---- test hooks ---- */

/* razor.c: the row with the compensation token's logit raised by ln(dropped count) (raise = 1,
 * the row's default) or left as the plain mean (raise = 0). Same contract as run(). */
int ab_razor_run(const struct ab_problem *p, double knob, int raise, float *o, struct ab_keep *keep,
                 struct ab_ledger *led);
/* razor.c: the proxy score of head p (file comment of razor.c). AB_OK or AB_E_NOMEM. */
int ab_razor_score(const struct ab_problem *p, double *score);
/* razor.c: 1 when the plan keeps the full cache of head `head` of layer `layer`, else 0. */
int ab_razor_plan_full(const void *plan, int64_t layer, int64_t head);
/* moa.c: the window the plan gives head `head` of layer `layer`. */
int64_t ab_moa_plan_window(const void *plan, int64_t layer, int64_t head);

#endif
