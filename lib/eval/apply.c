/* apply.c - one method on one problem at one budget: fit the knob, run, and hand back O, the
 * kept set, the distribution and the ledger. The sweep (sweep.c) and the end-to-end model
 * evaluation (e2e.c) both go through here, so a method is applied the same way in both. */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "eval/eval.h"

/* O = Ã V for the evaluated rows: dist (n_rows, n_k), out (n_rows, d_v); accumulated in
 * double. The battery checks that every method's dist and run agree on this. AB_OK or
 * AB_E_NOMEM. */
static int apply_dist(const struct ab_problem *p, const float *dist, float *out)
{
    const struct ab_head *h = p->h;
    double *acc = malloc(sizeof(double) * (size_t)h->d_v);
    if (!acc)
        return ab_fail(AB_E_NOMEM, "out of memory for one output row (d_v %lld)",
                       (long long)h->d_v);
    for (int64_t r = 0; r < p->n_rows; r++) {
        const float *a = dist + r * h->n_k;
        for (int64_t c = 0; c < h->d_v; c++) acc[c] = 0;
        for (int64_t j = 0; j < h->n_k; j++) {
            if (a[j] != 0) ab_axpy_df(acc, (double)a[j], h->v + j * h->d_v, h->d_v);
        }
        for (int64_t c = 0; c < h->d_v; c++) out[r * h->d_v + c] = (float)acc[c];
    }
    free(acc);
    return AB_OK;
}

int ab_method_apply(const struct ab_method *m, const struct ab_problem *p, double target,
                    const struct ab_apply_opts *o, float *out, struct ab_keep *keep, float *dist,
                    struct ab_applied *res)
{
    assert(keep && keep->n_rows == p->n_rows && keep->n_k == p->h->n_k); /* eval.h */
    *res = (struct ab_applied){.knob = NAN, .feasible = 1};
    struct ab_ledger led = {0};
    double knob = NAN;
    int feasible = 1, rc;
    int kind = o->kind;
    double goal = isnan(target) ? (kind == AB_BUDGET_TOKENS ? INFINITY : 1.0) : target;
    /* a FIXED row keeps knob.def unless the budget's measure moves with its knob (kivi's bytes
       with its residual window R): then it is fitted like any other row */
    int fixed = m->knob.name && (m->flags & AB_METHOD_FIXED) && !o->has_knob;
    if (fixed && kind != AB_BUDGET_FLOPS) {
        double lo, hi;
        struct ab_ledger l_lo, l_hi;
        ab_method_knob_range(m, p, &lo, &hi);
        if ((rc = ab_method_cost(m, p, lo, &l_lo)) || (rc = ab_method_cost(m, p, hi, &l_hi)))
            return rc;
        fixed = ab_ledger_measure(kind, &l_lo, p) == ab_ledger_measure(kind, &l_hi, p);
    }
    if (m->knob.name && (o->has_knob || fixed)) {
        /* a direct knob, or a method whose knob does not move the budget's measure */
        knob = o->has_knob ? o->knob : m->knob.def;
        if ((rc = ab_method_cost(m, p, knob, &led))) return rc;
        feasible = isnan(target) || ab_ledger_measure(kind, &led, p) <= target * (1 + 1e-12);
    } else {
        rc = ab_budget_fit_kind(m, p, kind, goal, &knob, &led, &feasible);
        if (rc) return rc;
        if (!m->knob.name && isnan(target)) feasible = 1;
    }
    res->knob = knob;
    res->feasible = feasible;
    res->led = led;
    if (!feasible) { /* even the smallest knob costs too much: nothing runs */
        if (m->knob.name && !isnan(knob) && kind == AB_BUDGET_FLOPS)
            snprintf(res->reason, sizeof res->reason, "knob %s = %g costs %.3g", m->knob.name,
                     knob, ab_ledger_ratio(&led, p));
        else if (m->knob.name && !isnan(knob) &&
                 (ab_budget_reason_kind(m, p, kind, goal, &led, res->reason, sizeof res->reason),
                  strncmp(res->reason, "keeps every", 11)))
            snprintf(res->reason, sizeof res->reason, "knob %s = %g: %s %.4g", m->knob.name,
                     knob, kind == AB_BUDGET_TOKENS ? "tokens per step" : "bytes ratio",
                     ab_ledger_measure(kind, &led, p));
        else
            ab_budget_reason_kind(m, p, kind, goal, &led, res->reason, sizeof res->reason);
        return AB_OK;
    }
    led = (struct ab_ledger){0};
    ab_keep_clear(keep);
    double t0 = ab_now();
    if (m->dist && m->cost && (m->flags & AB_METHOD_ANALYTIC)) {
        /* its distribution is its definition: O = Ã V, the ledger from cost() */
        if (!(rc = m->cost(p, knob, &led)) && !(rc = m->dist(p, knob, dist)))
            rc = apply_dist(p, dist, out);
    } else {
        rc = m->run(p, knob, out, keep, &led);
        if (!rc && m->dist && dist) rc = m->dist(p, knob, dist);
    }
    res->time_s = ab_now() - t0;
    if (rc) return rc;
    res->led = led;
    res->ran = 1;
    return AB_OK;
}
