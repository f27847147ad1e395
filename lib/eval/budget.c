/* budget.c - the isoFLOPS budget solver (architecture.md, "Budgets and the solver"): for a
 * target FLOP ratio, the knob with the largest cost not above it. Cost grows with every knob of
 * the registry, so the feasible knobs form a prefix of the range and bisection finds its end:
 * on cost() alone for analytic methods, on selection-only runs otherwise. A cell meets its
 * budget when its achieved ratio is at most the target (The Sparse Frontier's rule); it is
 * infeasible only when the smallest knob already costs more, and then says why. */
#include <assert.h>
#include <math.h>
#include <stdio.h>

#include "core/ab.h"
#include "eval/eval.h"

double ab_once_weight(const struct ab_problem *p)
{
    if (p->phase != AB_PHASE_DECODE) return 1;
    return (double)(p->h->n_q - p->q0) / (double)ab_problem_horizon(p);
}

double ab_ledger_flops(const struct ab_ledger *l, double once_weight)
{
    return l->flops_attend + l->flops_select + once_weight * l->flops_once;
}

double ab_ledger_ratio(const struct ab_ledger *l, const struct ab_problem *p)
{
    double dense = ab_problem_dense_flops(p);
    return dense > 0 ? ab_ledger_flops(l, ab_once_weight(p)) / dense : NAN;
}

double ab_ledger_ratio_step(const struct ab_ledger *l, const struct ab_problem *p)
{
    double dense = ab_problem_dense_flops(p);
    return dense > 0 ? (l->flops_attend + l->flops_select) / dense : NAN;
}

const char *ab_budget_kind_name(int kind)
{
    return kind == AB_BUDGET_TOKENS ? "tokens" : kind == AB_BUDGET_BYTES ? "bytes" : "flops";
}

double ab_problem_dense_bytes(const struct ab_problem *p)
{
    return 4.0 * (double)(p->h->d + p->h->d_v) * ab_problem_allowed_cells(p);
}

double ab_ledger_tokens_step(const struct ab_ledger *l, const struct ab_problem *p)
{
    double m = (double)(p->h->n_q - p->q0);
    return p->phase == AB_PHASE_DECODE && m > 0 ? l->cells / m : NAN;
}

double ab_ledger_bytes_ratio(const struct ab_ledger *l, const struct ab_problem *p)
{
    double dense = ab_problem_dense_bytes(p);
    return dense > 0 ? l->bytes_kv / dense : NAN;
}

double ab_ledger_measure(int kind, const struct ab_ledger *l, const struct ab_problem *p)
{
    switch (kind) {
    case AB_BUDGET_TOKENS: return ab_ledger_tokens_step(l, p);
    case AB_BUDGET_BYTES: return ab_ledger_bytes_ratio(l, p);
    default: return ab_ledger_ratio(l, p);
    }
}

int ab_layer_weights(int rule, const double *given, int64_t n_given, int64_t n_layer, double *w)
{
    if (rule == AB_LAYER_GIVEN) {
        if (n_given != n_layer)
            return ab_fail(AB_E_USAGE, "%lld layer weights for %lld layers", (long long)n_given,
                           (long long)n_layer);
        double sum = 0;
        for (int64_t l = 0; l < n_layer; l++) sum += given[l];
        for (int64_t l = 0; l < n_layer; l++) w[l] = given[l] * (double)n_layer / sum;
        return AB_OK;
    }
    for (int64_t l = 0; l < n_layer; l++)
        w[l] = rule == AB_LAYER_PYRAMID && n_layer > 1 ? 1.5 - (double)l / (double)(n_layer - 1)
                                                       : 1.0;
    return AB_OK;
}

double ab_layer_target(int kind, double b, double wl)
{
    double t = b * wl;
    return kind == AB_BUDGET_TOKENS || isnan(t) ? t : AB_MIN(1.0, t);
}

void ab_budget_reason_kind(const struct ab_method *m, const struct ab_problem *p, int kind,
                           double target, const struct ab_ledger *led, char *buf, size_t cap)
{
    double lo = 0, hi;
    if (kind == AB_BUDGET_FLOPS) {
        ab_budget_reason(m, p, target, led, buf, cap);
        return;
    }
    if (m->knob.name) ab_method_knob_range(m, p, &lo, &hi);
    double x = ab_ledger_measure(kind, led, p);
    if (kind == AB_BUDGET_TOKENS) {
        double every = ab_problem_allowed_cells(p) / (double)(p->h->n_q - p->q0);
        if (x >= every * (1 - 1e-12))
            snprintf(buf, cap, "keeps every token (%.4g per step)", x);
        else if (m->knob.name)
            snprintf(buf, cap, "smallest knob (%s = %g) %.4g tokens per step", m->knob.name, lo, x);
        else
            snprintf(buf, cap, "fixed %.4g tokens per step", x);
    } else if (m->knob.name) {
        snprintf(buf, cap, "smallest knob (%s = %g) bytes ratio %.3g", m->knob.name, lo, x);
    } else {
        snprintf(buf, cap, "fixed bytes ratio %.3g", x);
    }
}

void ab_budget_reason(const struct ab_method *m, const struct ab_problem *p, double target,
                      const struct ab_ledger *led, char *buf, size_t cap)
{
    double dense = ab_problem_dense_flops(p);
    double once = ab_once_weight(p) * led->flops_once / dense, sel = led->flops_select / dense;
    double r = ab_ledger_ratio(led, p);
    double lo = 0, hi;
    if (m->knob.name) ab_method_knob_range(m, p, &lo, &hi);
    if (once > target)
        snprintf(buf, cap, "one-off selection alone %.3g of dense (over G = %lld)", once,
                 (long long)ab_problem_horizon(p));
    else if (sel + once > target)
        snprintf(buf, cap, "selection alone %.3g of dense", sel + once);
    else if (m->knob.name)
        snprintf(buf, cap, "smallest knob (%s = %g) %.3g", m->knob.name, lo, r);
    else
        snprintf(buf, cap, "fixed cost %.3g of dense", r);
}

/* 1 when the cost of m is a selection-only run (it needs a keep set), 0 when it is cost(). */
static int cost_runs(const struct ab_method *m)
{
    return !(m->cost && (m->flags & AB_METHOD_ANALYTIC));
}

/* The cost of m at knob on p; keep: the (n_rows, n_k) set a selection-only run writes (cleared
 * here), unused when m is analytic. */
static int cost_with(const struct ab_method *m, const struct ab_problem *p, double knob,
                     struct ab_keep *keep, struct ab_ledger *led)
{
    *led = (struct ab_ledger){0};
    if (!cost_runs(m)) return m->cost(p, knob, led);
    ab_keep_clear(keep);
    return m->run(p, knob, NULL, keep, led);
}

/* A keep set of p's shape into keep when m's cost runs it, else an empty one. */
static int cost_keep(const struct ab_method *m, const struct ab_problem *p, struct ab_keep *keep)
{
    *keep = (struct ab_keep){0};
    return cost_runs(m) ? ab_keep_alloc(keep, p->n_rows, p->h->n_k) : AB_OK;
}

int ab_method_cost(const struct ab_method *m, const struct ab_problem *p, double knob,
                   struct ab_ledger *led)
{
    struct ab_keep keep;
    *led = (struct ab_ledger){0};
    int rc = cost_keep(m, p, &keep);
    if (!rc) rc = cost_with(m, p, knob, &keep, led);
    ab_keep_free(&keep);
    return rc;
}

/* The measure of kind at knob x (into *led), or an error. */
static int ratio_at(const struct ab_method *m, const struct ab_problem *p, int kind, double x,
                    struct ab_keep *keep, struct ab_ledger *led, double *ratio)
{
    int rc = cost_with(m, p, x, keep, led);
    *ratio = rc ? NAN : ab_ledger_measure(kind, led, p);
    return rc;
}

/* What the bisection evaluates: the ledger and measure at knob x (a FLOP ratio, tokens per
 * step or a bytes ratio: the bisection reads only that it grows with the knob). */
struct fit_eval {
    int (*at)(void *ctx, double x, struct ab_ledger *led, double *ratio);
    void *ctx;
};

/* The largest integer knob x in (a, b) with ratio(x) <= target, given ratio(a) = ra <= target <
 * ratio(b) = rb: *x and its ledger into *best (left as they are when x = a). The cost grows with
 * the knob, so that knob is unique and any search that keeps the bracket finds the one
 * bisection finds. Most costs are close to linear in the knob (kept cells), so each step guesses
 * by linear interpolation and probes the guess's neighbour across the target, which closes the
 * bracket in one or two steps; a guess that does not halve the bracket is followed by a
 * bisection step, so a curved cost costs at most three evaluations per halving. Each
 * evaluation of a data-dependent method runs its selection: this is where fitting spends. */
static int integer_search(const struct fit_eval *e, int64_t a, int64_t b, double ra, double rb,
                          double target, struct ab_ledger *best, double *x)
{
    const double tol = target * (1 + 1e-12);
    struct ab_ledger cur;
    double r;
    int rc, bisect_next = 0;
    *x = (double)a;
    while (b - a > 1) {
        int64_t width = b - a, mid = a + width / 2;
        int guessed = !bisect_next && isfinite(ra) && isfinite(rb) && rb > ra;
        if (guessed) mid = a + (int64_t)floor((target - ra) / (rb - ra) * (double)width);
        mid = AB_MAX(a + 1, AB_MIN(b - 1, mid));
        if ((rc = e->at(e->ctx, (double)mid, &cur, &r))) return rc;
        if (r <= tol) {
            a = mid, ra = r, *best = cur, *x = (double)a;
            if (guessed && b - a > 1) { /* the neighbour above: does the bracket close? */
                if ((rc = e->at(e->ctx, (double)(a + 1), &cur, &r))) return rc;
                if (r <= tol)
                    a++, ra = r, *best = cur, *x = (double)a;
                else
                    b = a + 1, rb = r;
            }
        } else {
            b = mid, rb = r;
            if (guessed && b - a > 1) { /* the neighbour below */
                if ((rc = e->at(e->ctx, (double)(b - 1), &cur, &r))) return rc;
                if (r <= tol)
                    a = b - 1, ra = r, *best = cur, *x = (double)a;
                else
                    b--, rb = r;
            }
        }
        bisect_next = guessed && 2 * (b - a) > width;
    }
    return AB_OK;
}

/* The largest knob in [lo, hi] whose ratio is not above target, by bisection (cost grows with
 * the knob): *x and its ledger *led, or *x = NaN with the smallest knob's ledger. */
static int bisect(const struct ab_method *m, double lo, double hi, double target,
                  const struct fit_eval *e, double *x, struct ab_ledger *led)
{
    double r_lo, r_hi, r;
    int rc;
    *x = NAN;
    if ((rc = e->at(e->ctx, lo, led, &r_lo))) return rc;
    if (r_lo > target * (1 + 1e-12)) return AB_OK; /* even the smallest knob costs too much */
    struct ab_ledger best = *led, cur;
    double best_x = lo;
    if ((rc = e->at(e->ctx, hi, &cur, &r_hi))) return rc;
    if (r_hi <= target * (1 + 1e-12)) {
        best = cur, best_x = hi;
    } else if (m->knob.integer) {
        rc = integer_search(e, (int64_t)lo, (int64_t)hi, r_lo, r_hi, target, &best, &best_x);
        if (rc) return rc;
    } else {
        double a = lo, b = hi;
        int steps = (m->flags & AB_METHOD_ANALYTIC) ? 40 : 24;
        while (b - a > 1e-4 * (hi - lo) && steps-- > 0) {
            double mid = 0.5 * (a + b);
            if ((rc = e->at(e->ctx, mid, &cur, &r))) return rc;
            if (r <= target * (1 + 1e-12)) a = mid, best = cur;
            else b = mid;
        }
        best_x = a;
    }
    *led = best;
    *x = best_x;
    return AB_OK;
}

struct head_ctx {
    const struct ab_method *m;
    const struct ab_problem *p;
    struct ab_keep *keep; /* the fit's one keep set, cleared before each run */
    int kind;             /* enum ab_budget_kind: the measure fitted */
};

static int head_at(void *ctx, double x, struct ab_ledger *led, double *ratio)
{
    struct head_ctx *c = ctx;
    return ratio_at(c->m, c->p, c->kind, x, c->keep, led, ratio);
}

int ab_budget_fit(const struct ab_method *m, const struct ab_problem *p, double target,
                  double *knob, struct ab_ledger *led, int *feasible)
{
    return ab_budget_fit_kind(m, p, AB_BUDGET_FLOPS, target, knob, led, feasible);
}

int ab_budget_fit_kind(const struct ab_method *m, const struct ab_problem *p, int kind,
                       double target, double *knob, struct ab_ledger *led, int *feasible)
{
    double r;
    struct ab_keep keep;
    *feasible = 0;
    *knob = NAN;
    int rc = cost_keep(m, p, &keep);
    if (rc) return rc;
    if (!m->knob.name) {
        rc = ratio_at(m, p, kind, 0, &keep, led, &r);
        *feasible = !rc && r <= target * (1 + 1e-12);
    } else {
        double lo, hi;
        ab_method_knob_range(m, p, &lo, &hi);
        struct head_ctx c = {m, p, &keep, kind};
        struct fit_eval e = {head_at, &c};
        if (!(rc = bisect(m, lo, hi, target, &e, knob, led))) *feasible = !isnan(*knob);
    }
    ab_keep_free(&keep);
    return rc;
}

/* ---- model level ---------------------------------------------------------------------- */

struct model_ctx {
    const struct ab_method *m;
    const struct ab_model_view *mv;
    struct ab_problem *work; /* (n) copies of mv's problems with plan set */
    double dense;            /* sum of the heads' dense FLOPs */
    double dense_bytes;      /* sum of the heads' dense K/V bytes */
    double steps;            /* heads x decode queries: the divisor of tokens per step */
    double once_weight;      /* ab_once_weight of the phase (every head shares it) */
    int kind;                /* enum ab_budget_kind: the workload measure fitted */
};

static double model_ratio(const struct model_ctx *c, const struct ab_ledger *total)
{
    if (c->kind == AB_BUDGET_TOKENS) return c->steps > 0 ? total->cells / c->steps : NAN;
    if (c->kind == AB_BUDGET_BYTES) return c->dense_bytes > 0 ? total->bytes_kv / c->dense_bytes : NAN;
    return c->dense > 0 ? ab_ledger_flops(total, c->once_weight) / c->dense : NAN;
}

static int model_at(void *ctx, double x, struct ab_ledger *led, double *ratio)
{
    struct model_ctx *c = ctx;
    const struct ab_model_view *mv = c->mv;
    int64_t n = mv->n_layer * mv->n_head;
    void *plan = NULL;
    int rc = c->m->plan ? c->m->plan(mv, x, &plan) : AB_OK;
    if (rc) return rc;
    struct ab_ledger total = {0};
    int threads = ab_threads_get();
    ab_blas_serial_begin();
#pragma omp parallel num_threads(threads)
    {
        struct ab_ledger mine = {0};
        struct ab_keep keep; /* this thread's, for every head it costs (all share one shape) */
        int krc = cost_keep(c->m, &mv->problems[0], &keep);
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < n; i++) {
            struct ab_problem p = mv->problems[i];
            p.plan = plan;
            struct ab_ledger l;
            assert(!keep.bits || (keep.n_rows == p.n_rows && keep.n_k == p.h->n_k));
            int r = krc ? krc : cost_with(c->m, &p, x, &keep, &l);
            if (r) {
#pragma omp critical(model_fit_error)
                if (!rc) rc = r;
            } else {
                ab_ledger_add(&mine, &l);
            }
        }
        ab_keep_free(&keep);
#pragma omp critical(model_fit_sum)
        ab_ledger_add(&total, &mine);
    }
    ab_blas_serial_end();
    if (c->m->plan_free) c->m->plan_free(plan);
    *led = total;
    *ratio = rc ? NAN : model_ratio(c, &total);
    return rc;
}

int ab_budget_fit_model(const struct ab_method *m, const struct ab_model_view *mv,
                        double target, double *knob, void **plan, double *ratio, int *feasible)
{
    return ab_budget_fit_model_kind(m, mv, AB_BUDGET_FLOPS, target, knob, plan, ratio, feasible);
}

int ab_budget_fit_model_kind(const struct ab_method *m, const struct ab_model_view *mv, int kind,
                             double target, double *knob, void **plan, double *ratio,
                             int *feasible)
{
    *knob = NAN, *plan = NULL, *ratio = NAN, *feasible = 0;
    int64_t n = mv->n_layer * mv->n_head;
    struct model_ctx c = {.m = m, .mv = mv, .once_weight = ab_once_weight(&mv->problems[0]),
                          .kind = kind};
    for (int64_t i = 0; i < n; i++) {
        const struct ab_problem *pi = &mv->problems[i];
        c.dense += ab_problem_dense_flops(pi);
        c.dense_bytes += ab_problem_dense_bytes(pi);
        c.steps += (double)(pi->h->n_q - pi->q0);
    }
    struct fit_eval e = {model_at, &c};
    struct ab_ledger led;
    int rc;
    if (!m->knob.name) { /* a fixed workload cost */
        if ((rc = model_at(&c, 0, &led, ratio))) return rc;
        *feasible = *ratio <= target * (1 + 1e-12);
        return m->plan ? m->plan(mv, 0, plan) : AB_OK;
    }
    double lo, hi;
    ab_method_knob_range(m, &mv->problems[0], &lo, &hi);
    if ((rc = bisect(m, lo, hi, target, &e, knob, &led))) return rc;
    *ratio = model_ratio(&c, &led); /* the smallest knob's when none fits */
    if (isnan(*knob)) return AB_OK;
    *feasible = 1;
    return m->plan ? m->plan(mv, *knob, plan) : AB_OK;
}
