/* calibration.c - the calibration family: methods that change the attention distribution, not
 * its cost (methods.md, "calibration"; transforms in metrics.md, "Calibration transforms"). Each
 * row computes the exact attention row A_i of every evaluated query (double, through the
 * reference row visitor), rewrites it with its transform into A'_i and returns O_i = A'_i V and,
 * through dist(), A'_i itself, so the engine reports kl, rel_l2 and task accuracy at cost ratio 1.
 * - `act`: Attention Calibration Technique, Yu et al. 2024, "Unveiling and Harnessing Hidden
 *   Attention Sinks", arXiv 2406.15765: sinks = {k : alpha(k) > 0.1} minus the first,
 *   their attention scaled by beta and the removed mass given to the other keys in proportion;
 * - `zerotuning`: Han et al. 2025, "ZeroTuning", arXiv 2505.11739: the initial token's
 *   attention scaled by gamma and the row renormalised;
 * - `redistribute`: VAR, "See What You Are Told: Visual Attention Sink in Large Multimodal
 *   Models", arXiv 2503.03321: keep p of the sink attention and move the rest onto the non-sink
 *   keys of a target span in proportion to their attention;
 * - `sink-logit`: an explicit sink logit in the softmax denominator (gpt-oss's learned per-head
 *   sink; StreamingLLM's learnable sink token, arXiv 2309.17453); `off-by-one`:
 *   its b = 0 case, Miller 2023, "Attention Is Off By One" (blog), softmax_1;
 * - `uniform-head`: uniform attention over the visible keys, the retrieval-head ablation of Wu
 *   et al. 2024, "Retrieval Head Mechanistically Explains Long-Context Factuality", arXiv
 *   2404.15574.
 * Cost: every row is dense attention (the ledger of the phase's allowed cells, AB_METHOD_FIXED:
 * ratio 1 at every knob). ACT and redistribute also read the column means of the map; dense
 * attention has computed that map already, so the pass is one add per cell, counted in
 * ops_other (not as FLOPs, keeping the ratio 1).
 * Deviations:
 * - the column means alpha(k) are over the queries that see k: in prefill every query of the
 *   head (as ACT computes them on the whole input), in decode the context rows (rows < q0) only,
 *   and only for context keys (decode keys are never sinks);
 * - ACT applies to every head here; the authors' head selection by calibration-task accuracy
 *   (and VAR's image-centric head selection) is not implemented: these rows are "all heads";
 * - redistribute's sinks are all keys with alpha(k) > 0.1 (the first included; VAR finds visual
 *   sinks by massive hidden-state dimensions, which a head instance does not carry) and its
 *   target span is every visible non-sink key;
 * - sink-logit's knob is the sink weight w = exp(b_h) (so its range is positive; default 1,
 *   i.e. b_h = 0, which is off-by-one);
 * - ZeroTuning's gamma is task dependent in the paper (> 1 for classification, < 1 for QA); the
 *   default here is 0.5 (the QA direction, our tasks being retrieval-like), knob range
 *   [0.01, 10]; token 0 is key 0 of the head. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/calibration.h"
#include "methods/method.h"

static const double SINK_THR = 0.1; /* alpha(k) above which k is a sink (ACT, metrics.md) */

void ab_calib_scale_sinks(double *a, int64_t n_vis, const unsigned char *in_s, double keep)
{
    double s = 0, r = 0; /* mass on the sink set and on the rest */
    for (int64_t j = 0; j < n_vis; j++) {
        if (in_s[j])
            s += a[j];
        else
            r += a[j];
    }
    if (s <= 0 || r <= 0) return; /* nothing to move, or nowhere to move it */
    double m = (1 - keep) * s;    /* removed mass */
    double grow = 1 + m / r;      /* the rest, scaled in proportion: r (1 + m / r) = r + m */
    for (int64_t j = 0; j < n_vis; j++) a[j] *= in_s[j] ? keep : grow;
}

void ab_calib_zerotuning(double *a, int64_t n_vis, double gamma)
{
    if (n_vis <= 0) return;
    double den = 1 + (gamma - 1) * a[0]; /* > 0 for gamma > 0, a0 in [0, 1] */
    a[0] *= gamma;
    for (int64_t j = 0; j < n_vis; j++) a[j] /= den;
}

double ab_calib_sink_logit(double *a, int64_t n_vis, double lse, double b)
{
    if (n_vis <= 0) return 1;
    /* p_j = a_j Z / (e^b + Z) = a_j / (1 + e^(b - lse)); sink = 1 / (1 + e^(lse - b)) */
    double keep = 1 / (1 + exp(b - lse));
    for (int64_t j = 0; j < n_vis; j++) a[j] *= keep;
    return 1 / (1 + exp(lse - b));
}

void ab_calib_uniform(double *a, int64_t n_vis)
{
    for (int64_t j = 0; j < n_vis; j++) a[j] = 1.0 / (double)n_vis;
}

struct colmean {
    double *sum;  /* (n_k) sum of A[i,k] over visited rows */
    int64_t *cnt; /* (n_k) rows that saw k */
    int64_t k_end;
};

static int colmean_row(int64_t i, const double *p, int64_t n_vis, double lse, void *user)
{
    (void)i, (void)lse;
    struct colmean *c = user;
    int64_t n = AB_MIN(n_vis, c->k_end);
    for (int64_t j = 0; j < n; j++) {
        c->sum[j] += p[j];
        c->cnt[j]++;
    }
    return 0;
}

int ab_calib_column_means(const struct ab_head *h, int64_t q_end, int64_t k_end, double *alpha)
{
    memset(alpha, 0, (size_t)h->n_k * sizeof(double));
    int64_t *cnt = ab_alloc(ab_size_mul((size_t)h->n_k, sizeof(int64_t))); /* (n_k) */
    if (!cnt) return ab_fail(AB_E_NOMEM, "calibration: cannot allocate column counts");
    memset(cnt, 0, (size_t)h->n_k * sizeof(int64_t));
    struct ab_head sub = *h; /* query rows 0..q_end-1 */
    sub.n_q = q_end;
    struct colmean c = {.sum = alpha, .cnt = cnt, .k_end = AB_MIN(k_end, h->n_k)};
    int rc = q_end > 0 ? ab_attn_ref_visit(&sub, NULL, 0, colmean_row, &c) : AB_OK;
    for (int64_t k = 0; k < h->n_k; k++) alpha[k] = cnt[k] ? alpha[k] / (double)cnt[k] : 0;
    ab_free(cnt);
    return rc;
}

int64_t ab_calib_sink_set(const double *alpha, int64_t n, double thr, int drop_first,
                          unsigned char *in_s)
{
    int64_t count = 0;
    for (int64_t k = 0; k < n; k++) {
        in_s[k] = alpha[k] > thr;
        if (in_s[k] && drop_first) {
            in_s[k] = 0; /* the primary sink keeps its share */
            drop_first = 0;
        }
        count += in_s[k];
    }
    return count;
}

/* ---- the rows: one driver, a transform per kind ---- */

enum calib_kind { CAL_ACT, CAL_ZERO, CAL_REDIST, CAL_SINK, CAL_UNIFORM };

static int needs_sinks(int kind)
{
    return kind == CAL_ACT || kind == CAL_REDIST;
}

/* Column-mean rows and keys of the phase: every query and key in prefill, the context in
 * decode. */
static void colmean_span(const struct ab_problem *p, int64_t *q_end, int64_t *k_end)
{
    int prefill = p->phase == AB_PHASE_PREFILL;
    *q_end = prefill ? p->h->n_q : p->q0;
    *k_end = prefill ? p->h->n_k : p->q0;
}

/* prepare() of the sink-finding rows (act, redistribute): the column means of the problem's
 * phase (n_k doubles), an O(q_end n_k d) pass in double that run(), dist() and the solver all
 * read, so each (head, phase) computes it once. The ledger still counts the pass in every run
 * (calib_ledger): prepare saves wall time only. */
static void colmean_free(void *state)
{
    ab_free(state);
}

static int colmean_prepare(const struct ab_problem *p, void **state)
{
    double *alpha = ab_alloc(ab_size_mul((size_t)AB_MAX(p->h->n_k, 1), sizeof(double)));
    if (!alpha) return ab_fail(AB_E_NOMEM, "calibration: cannot allocate column means");
    int64_t q_end, k_end;
    colmean_span(p, &q_end, &k_end);
    int rc = ab_calib_column_means(p->h, q_end, k_end, alpha);
    if (rc) {
        ab_free(alpha);
        return rc;
    }
    *state = alpha;
    return AB_OK;
}

/* The ledger of a phase: dense attention over its allowed cells, plus one add per cell of the
 * column-mean pass (ops_other) for the kinds that find sinks. Pure and independent of knob. */
static void calib_ledger(const struct ab_problem *p, int kind, struct ab_ledger *led)
{
    ab_ledger_attend(led, p->h, ab_problem_allowed_cells(p));
    if (!needs_sinks(kind)) return;
    int64_t q_end, k_end;
    colmean_span(p, &q_end, &k_end);
    double cells = 0;
    for (int64_t i = 0; i < q_end; i++) cells += (double)AB_MIN(ab_head_visible(p->h, i), k_end);
    led->ops_other += cells;
}

struct calib_pass {
    const struct ab_problem *p;
    int kind;
    double knob;
    const unsigned char *in_s; /* (n_k) sink set, or NULL */
    double *row;               /* (n_k) scratch: A'_i */
    double *acc;               /* (d_v) scratch: O_i */
    float *o;                  /* (n_rows, d_v) or NULL */
    float *a;                  /* (n_rows, n_k) or NULL */
    int64_t r;                 /* evaluated row being visited */
};

static int calib_row(int64_t i, const double *pr, int64_t n_vis, double lse, void *user)
{
    (void)i;
    struct calib_pass *c = user;
    const struct ab_head *h = c->p->h;
    double *a = c->row;
    memcpy(a, pr, (size_t)n_vis * sizeof(double));
    switch (c->kind) {
    case CAL_ACT: ab_calib_scale_sinks(a, n_vis, c->in_s, c->knob); break;
    case CAL_REDIST: ab_calib_scale_sinks(a, n_vis, c->in_s, c->knob); break;
    case CAL_ZERO: ab_calib_zerotuning(a, n_vis, c->knob); break;
    case CAL_SINK: ab_calib_sink_logit(a, n_vis, lse, log(c->knob)); break;
    case CAL_UNIFORM: ab_calib_uniform(a, n_vis); break;
    default: break;
    }
    int64_t r = c->r++, dv = h->d_v;
    if (c->o) {
        /* O_i = A'_i V, accumulated in double */
        double *acc = c->acc;
        memset(acc, 0, (size_t)dv * sizeof(double));
        for (int64_t j = 0; j < n_vis; j++) ab_axpy_df(acc, a[j], h->v + j * dv, dv);
        for (int64_t t = 0; t < dv; t++) c->o[r * dv + t] = (float)acc[t];
    }
    if (c->a) {
        float *out = c->a + r * h->n_k;
        for (int64_t j = 0; j < n_vis; j++) out[j] = (float)a[j];
        for (int64_t j = n_vis; j < h->n_k; j++) out[j] = 0;
    }
    return 0;
}

/* Writes O (o) and / or A' (a) of the evaluated rows for one kind at knob. */
static int calib_apply(const struct ab_problem *p, int kind, double knob, float *o, float *a)
{
    const struct ab_head *h = p->h;
    int rc = AB_OK;
    unsigned char *in_s = NULL;
    double *row = ab_alloc(ab_size_mul((size_t)h->n_k, sizeof(double)));     /* (n_k) */
    double *acc = ab_alloc(ab_size_mul((size_t)h->d_v + 1, sizeof(double))); /* (d_v) */
    if (!row || !acc) {
        rc = ab_fail(AB_E_NOMEM, "calibration: cannot allocate a row");
        goto done;
    }
    if (needs_sinks(kind)) {
        const double *alpha = p->prep; /* (n_k) column means */
        assert(alpha);                 /* the engine prepared p */
        in_s = ab_alloc((size_t)h->n_k); /* (n_k) */
        if (!in_s) {
            rc = ab_fail(AB_E_NOMEM, "calibration: cannot allocate the sink set");
            goto done;
        }
        ab_calib_sink_set(alpha, h->n_k, SINK_THR, kind == CAL_ACT, in_s);
    }
    struct calib_pass c = {
        .p = p, .kind = kind, .knob = knob, .in_s = in_s, .row = row, .acc = acc, .o = o, .a = a};
    rc = ab_attn_ref_visit(h, p->rows, p->n_rows, calib_row, &c);
done:
    ab_free(in_s);
    ab_free(row);
    ab_free(acc);
    return rc;
}

static int calib_run(const struct ab_problem *p, int kind, double knob, float *o,
                     struct ab_ledger *led)
{
    calib_ledger(p, kind, led);
    if (!o) return AB_OK;
    /* the attention computed for O: every visible cell of each evaluated row */
    for (int64_t r = 0; r < p->n_rows; r++)
        ab_attend_counter_add((double)ab_head_visible(p->h, p->rows[r]));
    return calib_apply(p, kind, knob, o, NULL);
}

#define CALIB_FNS(fn, kind, knob_expr)                                                             \
    static int fn##_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)           \
    {                                                                                              \
        (void)knob;                                                                                \
        calib_ledger(p, kind, led);                                                                \
        return AB_OK;                                                                              \
    }                                                                                              \
    static int fn##_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,   \
                        struct ab_ledger *led)                                                     \
    {                                                                                              \
        (void)keep;                                                                                \
        (void)knob;                                                                                \
        return calib_run(p, kind, knob_expr, o, led);                                              \
    }                                                                                              \
    static int fn##_dist(const struct ab_problem *p, double knob, float *a)                        \
    {                                                                                              \
        (void)knob;                                                                                \
        return calib_apply(p, kind, knob_expr, NULL, a);                                           \
    }

CALIB_FNS(act, CAL_ACT, knob)
CALIB_FNS(zerotuning, CAL_ZERO, knob)
CALIB_FNS(redistribute, CAL_REDIST, knob)
CALIB_FNS(sink_logit, CAL_SINK, knob)
CALIB_FNS(off_by_one, CAL_SINK, 1.0) /* sink weight exp(0) */
CALIB_FNS(uniform_head, CAL_UNIFORM, 0.0)

#define CALIB_ROW(fn, fl)                                                                          \
    .family = AB_FAMILY_CALIBRATION, .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,                 \
    .masks = AB_MASKS_CAUSAL | AB_MASKS_FULL,                                                      \
    .flags = AB_METHOD_FIXED | AB_METHOD_ANALYTIC | (fl), .cost = fn##_cost, .run = fn##_run,      \
    .dist = fn##_dist

const struct ab_method ab_method_act = {
    .name = "act",
    .summary = "ACT: shrink hidden sinks (alpha > 0.1, not the first) by beta, mass to the rest",
    .citation = "Yu et al. 2024, Unveiling and Harnessing Hidden Attention Sinks, arXiv 2406.15765",
    .cost_words = "dense: 4d per allowed cell; plus one add per cell of the column-mean pass "
                  "(ops_other; prefill all rows, decode the context rows)",
    .knob = {.name = "beta", .lo = 0.01, .hi = 1, .def = 0.4, .unit = "fraction"},
    CALIB_ROW(act, 0),
    .prepare = colmean_prepare,
    .prepare_free = colmean_free,
};

const struct ab_method ab_method_zerotuning = {
    .name = "zerotuning",
    .summary = "ZeroTuning: scale attention to token 0 by gamma and renormalise",
    .citation = "Han et al. 2025, ZeroTuning, arXiv 2505.11739",
    .cost_words = "dense: 4d per allowed cell",
    .knob = {.name = "gamma", .lo = 0.01, .hi = 10, .def = 0.5, .unit = "factor"},
    CALIB_ROW(zerotuning, 0),
};

const struct ab_method ab_method_redistribute = {
    .name = "redistribute",
    .summary = "VAR-style: keep p of the sink attention (alpha > 0.1), the rest to non-sink keys",
    .citation = "VAR, See What You Are Told: Visual Attention Sink in Large Multimodal Models, "
                "arXiv 2503.03321",
    .cost_words = "dense: 4d per allowed cell; plus one add per cell of the column-mean pass "
                  "(ops_other)",
    .knob = {.name = "p", .lo = 0.01, .hi = 1, .def = 0.5, .unit = "fraction"},
    CALIB_ROW(redistribute, 0),
    .prepare = colmean_prepare,
    .prepare_free = colmean_free,
};

const struct ab_method ab_method_sink_logit = {
    .name = "sink-logit",
    .summary = "explicit sink logit b_h in the softmax denominator (knob: sink weight exp(b_h))",
    .citation = "gpt-oss learned attention sinks; StreamingLLM learnable sink, arXiv 2309.17453",
    .cost_words = "dense: 4d per allowed cell",
    .knob = {.name = "sink-weight", .lo = 0.01, .hi = 100, .def = 1, .unit = "exp(logit)"},
    CALIB_ROW(sink_logit, AB_METHOD_UNNORMALISED),
};

const struct ab_method ab_method_off_by_one = {
    .name = "off-by-one",
    .summary = "softmax_1: a zero sink logit in the denominator (sink-logit at b_h = 0)",
    .citation = "Miller 2023, Attention Is Off By One (blog)",
    .cost_words = "dense: 4d per allowed cell",
    .knob = {.name = NULL},
    CALIB_ROW(off_by_one, AB_METHOD_UNNORMALISED),
};

const struct ab_method ab_method_uniform_head = {
    .name = "uniform-head",
    .summary = "uniform attention over the visible keys (retrieval-head ablation)",
    .citation = "Wu et al. 2024, Retrieval Head Mechanistically Explains Long-Context "
                "Factuality, arXiv 2404.15574",
    .cost_words = "dense: 4d per allowed cell",
    .knob = {.name = NULL},
    CALIB_ROW(uniform_head, 0),
};
