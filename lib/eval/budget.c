/* budget.c - the isoFLOPS budget solver (architecture.md, "Budgets and the solver"): for a
 * target FLOP ratio, the knob with the largest cost not above it. Cost grows with every knob of
 * the registry, so the feasible knobs form a prefix of the range and bisection finds its end:
 * on cost() alone for analytic methods, on selection-only runs otherwise. */
#include <math.h>

#include "core/ab.h"
#include "eval/eval.h"

double ab_ledger_ratio(const struct ab_ledger *l, const struct ab_problem *p)
{
    double dense = ab_problem_dense_flops(p);
    return dense > 0 ? (l->flops_attend + l->flops_select) / dense : NAN;
}

int ab_method_cost(const struct ab_method *m, const struct ab_problem *p, double knob,
                   struct ab_ledger *led)
{
    *led = (struct ab_ledger){0};
    if (m->cost && (m->flags & AB_METHOD_ANALYTIC)) return m->cost(p, knob, led);
    return m->run(p, knob, NULL, NULL, led);
}

/* The ratio at knob x (into *led), or an error. */
static int ratio_at(const struct ab_method *m, const struct ab_problem *p, double x,
                    struct ab_ledger *led, double *ratio)
{
    int rc = ab_method_cost(m, p, x, led);
    *ratio = rc ? NAN : ab_ledger_ratio(led, p);
    return rc;
}

int ab_budget_fit(const struct ab_method *m, const struct ab_problem *p, double target,
                  double tol, double *knob, struct ab_ledger *led, int *feasible)
{
    double r_lo, r_hi, r;
    int rc;
    *feasible = 0;
    *knob = NAN;
    if (!m->knob.name) {
        rc = ratio_at(m, p, 0, led, &r);
        *feasible = !rc && r <= target * (1 + 1e-12);
        return rc;
    }
    double lo, hi;
    ab_method_knob_range(m, p, &lo, &hi);
    if ((rc = ratio_at(m, p, lo, led, &r_lo))) return rc;
    if (r_lo > target * (1 + 1e-12)) return AB_OK; /* even the smallest knob costs too much */
    struct ab_ledger best = *led, cur;
    double best_x = lo;
    if ((rc = ratio_at(m, p, hi, &cur, &r_hi))) return rc;
    if (r_hi <= target * (1 + 1e-12)) {
        best = cur, best_x = hi;
    } else if (m->knob.integer) {
        /* invariant: cost(a) <= target < cost(b) */
        int64_t a = (int64_t)lo, b = (int64_t)hi;
        int steps = (m->flags & AB_METHOD_ANALYTIC) ? 64 : 24;
        while (b - a > 1 && steps-- > 0) {
            int64_t mid = a + (b - a) / 2;
            if ((rc = ratio_at(m, p, (double)mid, &cur, &r))) return rc;
            if (r <= target * (1 + 1e-12)) a = mid, best = cur;
            else b = mid;
        }
        best_x = (double)a;
    } else {
        double a = lo, b = hi;
        int steps = (m->flags & AB_METHOD_ANALYTIC) ? 40 : 24;
        while (b - a > 1e-4 * (hi - lo) && steps-- > 0) {
            double mid = 0.5 * (a + b);
            if ((rc = ratio_at(m, p, mid, &cur, &r))) return rc;
            if (r <= target * (1 + 1e-12)) a = mid, best = cur;
            else b = mid;
        }
        best_x = a;
    }
    *led = best;
    *knob = best_x;
    *feasible = ab_ledger_ratio(&best, p) >= target * (1 - tol);
    return AB_OK;
}
