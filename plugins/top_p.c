/* top_p.c - an example plugin (plugins/README.md): the row `top-p`, built outside the tool's
 * tree against the public ABI alone (attnbench/method.h), loaded with `--plugin`.
 *
 * Rule: per decode step and per head, the query reads the fewest cached keys whose exact
 * attention mass reaches p (nucleus / top-p selection of the keys), exact softmax renormalised
 * over them. Top-p adapts the number of keys to how peaked each head's attention is, which a
 * fixed top-k cannot: the idea of Twilight (Lin et al., "Twilight: Adaptive Attention Sparsity
 * with Hierarchical Top-p Pruning", arXiv 2502.02770).
 * Knob: p in [0.01, 1] (real, default 0.9); p = 1 keeps every visible key (dense).
 * Cost per decode step over n_vis visible keys, keeping c of them:
 *     flops_select = 2 d n_vis        (every logit, in full precision)
 *     flops_attend = (2d + 2 d_v) c   (the kept cells; bytes_kv 4 (d + d_v) c)
 *     ops_other    = n_vis (exp) + n_vis log2 n_vis (the sort)
 * so its FLOP ratio never falls below about d / (2d + 2d_v): selection with exact scores costs
 * half of dense. Deviations from Twilight: the scores are exact (Twilight estimates them from
 * 4-bit keys, which cuts the selection cost, and prunes the candidates of a base sparse method
 * first); one head at a time (no hierarchical pruning across heads).
 * Phases and masks: decode, causal and full.
 *
 * It has a prepare(): the sorted probabilities of every decode row depend on the problem, not on
 * p, so the solver's bisection over p reuses them, and cost() is exact and cheap from them
 * (AB_METHOD_ANALYTIC). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attnbench/method.h"

/* The decode rows' keys in decreasing probability and the running mass. */
struct top_p_prep {
    int64_t m, n_k;    /* phase rows q0 .. q0 + m - 1; keys */
    int64_t *n_vis;    /* (m) visible keys of each row */
    int32_t *order;    /* (m, n_k) keys by decreasing probability, first n_vis[r] valid */
    double *cum;       /* (m, n_k) cum[r][c]: mass of the c + 1 most probable keys */
};

static void top_p_prep_free(void *state)
{
    struct top_p_prep *s = state;
    if (!s) return;
    free(s->n_vis), free(s->order), free(s->cum), free(s);
}

/* qsort by decreasing probability, ties by key index (a total order: the result replays) */
struct pk {
    double p;
    int32_t j;
};
static int by_mass(const void *a, const void *b)
{
    const struct pk *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return (x->j > y->j) - (x->j < y->j);
}

static int top_p_prepare(const struct ab_problem *p, void **state)
{
    const struct ab_head *h = p->h;
    int64_t m = h->n_q - p->q0, n = h->n_k, d = h->d;
    struct top_p_prep *s = calloc(1, sizeof *s);
    struct pk *row = malloc(sizeof *row * (size_t)(n ? n : 1));
    double *logit = malloc(sizeof *logit * (size_t)(n ? n : 1));
    if (s) {
        s->m = m, s->n_k = n;
        s->n_vis = malloc(sizeof *s->n_vis * (size_t)m);
        s->order = malloc(sizeof *s->order * (size_t)(m * n));
        s->cum = malloc(sizeof *s->cum * (size_t)(m * n));
    }
    if (!s || !row || !logit || !s->n_vis || !s->order || !s->cum) {
        free(row), free(logit), top_p_prep_free(s);
        return ab_fail(AB_E_NOMEM, "top-p: out of memory for %lld x %lld probabilities",
                       (long long)m, (long long)n);
    }
    for (int64_t r = 0; r < m; r++) {
        int64_t i = p->q0 + r, vis = ab_head_visible(h, i);
        const float *q = h->q + i * d;
        double mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < vis; j++) { /* (vis) logits in double */
            double acc = 0;
            for (int64_t c = 0; c < d; c++) acc += (double)q[c] * h->k[j * d + c];
            logit[j] = acc * h->scale;
            if (logit[j] > mx) mx = logit[j];
        }
        for (int64_t j = 0; j < vis; j++) z += exp(logit[j] - mx);
        for (int64_t j = 0; j < vis; j++) row[j] = (struct pk){exp(logit[j] - mx) / z, (int32_t)j};
        qsort(row, (size_t)vis, sizeof *row, by_mass);
        double run = 0;
        for (int64_t c = 0; c < vis; c++) {
            run += row[c].p;
            s->order[r * n + c] = row[c].j;
            s->cum[r * n + c] = run;
        }
        s->n_vis[r] = vis;
    }
    free(row), free(logit);
    *state = s;
    return AB_OK;
}

/* Keys kept by phase row r at p: the fewest whose mass reaches p (all at p >= 1). */
static int64_t kept(const struct top_p_prep *s, int64_t r, double p)
{
    int64_t vis = s->n_vis[r];
    if (p >= 1 || vis == 0) return vis;
    const double *cum = s->cum + r * s->n_k;
    int64_t lo = 0, hi = vis - 1; /* the first c with cum[c] >= p; the last key if none */
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (cum[mid] >= p) hi = mid;
        else lo = mid + 1;
    }
    return lo + 1;
}

static int top_p_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    const struct top_p_prep *s = p->prep;
    const struct ab_head *h = p->h;
    *led = (struct ab_ledger){0};
    for (int64_t r = 0; r < s->m; r++) { /* every decode step of the phase */
        double vis = (double)s->n_vis[r];
        ab_ledger_attend(led, h, (double)kept(s, r, knob));
        led->flops_select += 2.0 * (double)h->d * vis;
        led->ops_other += vis + (vis > 1 ? vis * log2(vis) : 0);
    }
    return AB_OK;
}

static int top_p_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    const struct top_p_prep *s = p->prep;
    if (p->phase != AB_PHASE_DECODE)
        return ab_fail(AB_E_USAGE, "top-p: decode only");
    for (int64_t e = 0; e < p->n_rows; e++) { /* the evaluated rows' kept keys */
        int64_t r = p->rows[e] - p->q0, c = kept(s, r, knob);
        for (int64_t x = 0; x < c; x++) ab_keep_set(keep, e, s->order[r * s->n_k + x]);
    }
    top_p_cost(p, knob, led);
    if (!o) return AB_OK;
    double computed = 0;
    int rc = ab_attend_kept(p, keep, o, &computed);
    return rc;
}

static const struct ab_method top_p = {
    .name = "top-p",
    .family = AB_FAMILY_KV,
    .summary = "per decode step, the fewest keys whose exact attention mass reaches p (an example plugin)",
    .citation = "Lin et al., Twilight: Adaptive Attention Sparsity with Hierarchical Top-p Pruning, arXiv 2502.02770 (exact-score variant)",
    .cost_words = "per step: 4d per kept cell + 2d per visible key (exact logits) + sort",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL | AB_MASKS_FULL,
    .knob = {.name = "p", .lo = 0.01, .hi = 1, .integer = 0, .def = 0.9, .unit = "mass"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = top_p_cost,
    .run = top_p_run,
    .prepare = top_p_prepare,
    .prepare_free = top_p_prep_free,
};

AB_PLUGIN("top-p example", &top_p);
