/* cca.c - `cca`: Core Context Aware attention (Chen et al. 2024, "Core Context Aware Attention
 * for Long Context Language Modeling", arXiv 2412.12465, section 3: globality-pooling
 * attention and locality-preserved attention, fused into one softmax), causal prefill.
 *
 * Rule: keys are cut into groups of g = 16 consecutive tokens (group c = keys cg .. cg + g - 1;
 * only whole groups). Each group is compressed into one core token, weighted by the importance
 * of its keys to the group's last query (row cg + g - 1, the one that sees the whole group):
 *   w_cj = softmax_{j in c}(s q_{cg+g-1} . k_j),  ck_c = sum_j w_cj k_j,  cv_c = sum_j w_cj v_j
 * (the paper pools the hidden states and projects them with W_k, W_v; both are linear, so
 * pooling K and V with the same weights is the same core token). Row i (v = vis(i)) attends,
 * in one softmax, to the core tokens of the groups entirely below its local window and to the
 * local tokens themselves: with lo = max(0, v - w) and G_i = floor(lo / g),
 *   o_i = softmax([s q_i . ck_c for c < G_i ; s q_i . k_j for G_i g <= j < v]) [cv ; v_j],
 * the window reaching down to the group boundary G_i g, so every visible key is covered once,
 * by its core token or by itself (the paper aligns the window with the groups the same way).
 * Core tokens of groups the row can see are built from keys and a query at or before its
 * window, never from later rows. Knob: the local window w (1..n); w >= n attends to every key
 * itself: exact dense attention.
 *
 * Not a selection (no keep set: a core token is a weighted mix of keys, not a kept key), and
 * not AB_METHOD_OPERATOR: it approximates softmax attention (the same operator over a
 * compressed context) and is exact at w = n, so its rel_l2 against dense is an approximation
 * error like key-pooling's, not the distance between two operators.
 *
 * Cost (analytic): cells per row G_i + (v - G_i g), 4d each (ab_ledger_attend); building the
 * core tokens of the floor(n / g) whole groups, once per phase whatever the knob: per key a
 * logit (2d), its weight in the two sums (2d + 2d_v), and an exp: n_g g (4d + 2d_v) FLOPs in
 * flops_attend (attention work, as key-pooling counts its pooling), n_g g exps in ops_other,
 * 4 n_g g (d + d_v) bytes. No selection FLOPs. Cells do not fall as w grows (crossing a group
 * boundary trades one core cell for g local ones).
 *
 * Deviations from the paper: no fine-tuning (CCA is trained in; here it runs on the given
 * Q, K, V); g = 16 and the default w = 1024 are our choices, not checked against the
 * authors' code; the two parts are fused in one softmax over the concatenated core and local
 * keys (our reading of the paper's fused attention; any learned part of the authors' fusion is
 * left out: no trained weights); the core token's logit has no correction for the g keys it
 * stands for; only whole groups are compressed (a final partial group is always local); core tokens
 * and attention in double precision. Prefill only. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { CCA_GROUP = 16 };

/* The core tokens of one problem (prepare()'s state). */
struct cca_core {
    int64_t n_g;     /* whole groups */
    double *ck, *cv; /* (n_g, d), (n_g, d_v) */
};

static void cca_prepare_free(void *state)
{
    struct cca_core *cc = state;
    if (!cc) return;
    ab_free(cc->ck);
    free(cc);
}

/* Core keys and values of every whole group: O(n (d + d_v)). */
static int cca_prepare(const struct ab_problem *p, void **state)
{
    ab_dyn_check(p);
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v, g = CCA_GROUP, n_g = h->n_k / g;
    struct cca_core *cc = calloc(1, sizeof *cc);
    double *buf = ab_alloc(ab_size_mul((size_t)(n_g * (d + dv) + g + d), sizeof(double)));
    if (!cc || !buf) {
        free(cc);
        ab_free(buf);
        return ab_fail(AB_E_NOMEM, "cca: cannot allocate the core tokens");
    }
    cc->n_g = n_g;
    cc->ck = buf;
    cc->cv = buf + n_g * d;
    double *wt = cc->cv + n_g * dv, *qd = wt + g; /* (g) weights, (d) the group's last query */
    for (int64_t c = 0; c < n_g; c++) {
        int64_t j0 = c * g, last = j0 + g - 1;
        for (int64_t x = 0; x < d; x++) qd[x] = h->q[last * d + x];
        double mx = -INFINITY, z = 0;
        for (int64_t t = 0; t < g; t++) {
            wt[t] = h->scale * ab_dot_df(qd, h->k + (j0 + t) * d, d);
            mx = wt[t] > mx ? wt[t] : mx;
        }
        for (int64_t t = 0; t < g; t++) z += wt[t] = exp(wt[t] - mx);
        double *ck = cc->ck + c * d, *cv = cc->cv + c * dv;
        memset(ck, 0, (size_t)d * sizeof(double));
        memset(cv, 0, (size_t)dv * sizeof(double));
        for (int64_t t = 0; t < g; t++) {
            ab_axpy_df(ck, wt[t] / z, h->k + (j0 + t) * d, d);
            ab_axpy_df(cv, wt[t] / z, h->v + (j0 + t) * dv, dv);
        }
    }
    *state = cc;
    return AB_OK;
}

/* Core tokens G_i and the first local key G_i g of a row with v visible keys at window w. */
static int64_t cca_groups(int64_t v, int64_t w)
{
    return AB_MAX(0, v - w) / CCA_GROUP;
}

static int64_t knob_int(double knob, int64_t n)
{
    if (!(knob >= 1)) return 1;
    return knob >= (double)n ? n : (int64_t)knob;
}

static int cca_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    ab_dyn_check(p);
    const struct ab_head *h = p->h;
    int64_t w = knob_int(knob, h->n_k), n_g = h->n_k / CCA_GROUP;
    double cells = 0, built = (double)(n_g * CCA_GROUP);
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i), G = cca_groups(v, w);
        cells += (double)(G + v - G * CCA_GROUP);
    }
    ab_ledger_attend(led, h, cells);
    led->flops_attend += built * (double)(4 * h->d + 2 * h->d_v);
    led->ops_other += built;
    led->bytes_kv += built * 4.0 * (double)(h->d + h->d_v);
    return AB_OK;
}

static int cca_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                   struct ab_ledger *led)
{
    (void)keep; /* not a selection: the keep set stays empty */
    int rc = cca_cost(p, knob, led);
    if (rc || !o) return rc;
    const struct ab_head *h = p->h;
    const struct cca_core *cc = p->prep;
    assert(cc); /* the engine prepared p */
    int64_t d = h->d, dv = h->d_v, w = knob_int(knob, h->n_k);
    double *s = ab_alloc(ab_size_mul((size_t)(h->n_k + d + dv), sizeof(double)));
    if (!s) return ab_fail(AB_E_NOMEM, "cca: cannot allocate one row of logits");
    double *qd = s + h->n_k, *acc = qd + d, cells = 0; /* (n) logits, (d), (d_v) */
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], v = ab_head_visible(h, i), G = cca_groups(v, w);
        int64_t j0 = G * CCA_GROUP, m = G + (v - j0);
        for (int64_t x = 0; x < d; x++) qd[x] = h->q[i * d + x];
        double mx = -INFINITY, z = 0;
        for (int64_t c = 0; c < G; c++) { /* core logits, then local ones */
            double t = 0;
            for (int64_t x = 0; x < d; x++) t += qd[x] * cc->ck[c * d + x];
            s[c] = h->scale * t;
        }
        for (int64_t j = j0; j < v; j++) s[G + j - j0] = h->scale * ab_dot_df(qd, h->k + j * d, d);
        for (int64_t t = 0; t < m; t++) mx = s[t] > mx ? s[t] : mx;
        memset(acc, 0, (size_t)dv * sizeof(double));
        for (int64_t c = 0; c < G; c++) {
            double e = exp(s[c] - mx);
            z += e;
            for (int64_t x = 0; x < dv; x++) acc[x] += e * cc->cv[c * dv + x];
        }
        for (int64_t j = j0; j < v; j++) {
            double e = exp(s[G + j - j0] - mx);
            z += e;
            ab_axpy_df(acc, e, h->v + j * dv, dv);
        }
        for (int64_t x = 0; x < dv; x++) o[r * dv + x] = m ? (float)(acc[x] / z) : 0.0f;
        cells += (double)m;
    }
    ab_attend_counter_add(cells);
    ab_free(s);
    return AB_OK;
}

const struct ab_method ab_method_cca = {
    .name = "cca",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "groups of 16 keys compressed to one core token each (weighted by the group's "
               "last query), one softmax over the core tokens below a local window w and the "
               "window's own keys",
    .citation = "Core Context Aware attention, Chen et al. 2024, arXiv 2412.12465",
    .cost_words = "4d per cell: G_i + (v - 16 G_i) per query, G_i = floor(max(0, v - w) / 16) "
                  "core tokens; building the n/16 core tokens n (4d + 2d_v), once per phase",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_ANALYTIC,
    .cost = cca_cost,
    .run = cca_run,
    .prepare = cca_prepare,
    .prepare_free = cca_prepare_free,
};
