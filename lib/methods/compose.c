/* compose.c - two rows as one: `A+B` (issue 18, "Composition"). Named anywhere a method is
 * named (run --methods snapkv+quest, eval-model, scenarios); ab_method_find builds the row the
 * first time and returns the same row after.
 *
 * Two kinds, by the phases of A and B:
 *
 * - A chain in decode (both rows have a decode phase, e.g. snapkv+quest): A compresses the
 *   cache, B selects per step from what A kept. A runs on every decode row of the problem; the
 *   cache B sees is the union of A's kept keys over those rows plus every decode token's key
 *   (for a compressor such as snapkv exactly its compressed cache), gathered into a smaller head
 *   in position order, with the queries of those positions (so B's own context rules, a
 *   window of context queries, read the kept tokens' queries). B runs on that head; its kept
 *   keys map back to the original keys, its O is the output.
 *   Knob: A's (C, its unit); B's knob is fitted from it by one rule, recorded with the row
 *   (`convention`, shown by `methods A+B` and kept in the results' options): when both knobs
 *   count tokens, B reads
 *       K = C (rho + (1 - rho) C / n),   rho = 1/4,
 *   tokens of A's cache per step: a quarter of a small cache, all of it when C reaches the
 *   whole sequence (so the largest knob is dense); K never falls as C grows. Otherwise B runs
 *   at the same fraction of its range as C of A's.
 *   Ledger: B's whole ledger (the attention it computes, its per-step selection over the
 *   smaller cache, its one-off work) plus A's selection work (flops_select, flops_once,
 *   ops_other); A's own attention is not computed, so it is not counted.
 *   B must not read other heads (AB_METHOD_LAYER) or plan across heads (AB_METHOD_MODEL):
 *   the gathered cache is one head's. A must select (AB_METHOD_SELECTS) and not be MODEL.
 *
 * - A pair across phases (A has prefill, B has decode, and not both decode: e.g.
 *   vertical-slash+quest for eval-model end to end): prefill runs A, decode runs B.
 *   Knob: a fraction f in [0.001, 1] of each row's knob range (integer knobs rounded down):
 *   prefill runs A at lo + f (hi - lo), decode B at lo + f (hi - lo); each phase solves its own
 *   budget, so f is per phase and f = 1 is dense in both. Ledger: the phase's row's.
 *
 * A row's name is [a-z0-9-]+, so `+` names compositions only; at most AB_COMPOSE_MAX of them in
 * one process (each is a row whose functions are one of the slots below: a method's functions
 * get no user pointer, so each slot's trampolines know their slot). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/method.h"

enum { AB_COMPOSE_MAX = 16, CHAIN = 1, PAIR = 2 };

/* rho of the chain rule: B reads this fraction of a small cache of A's */
#define CHAIN_RHO 0.25

struct slot {
    struct ab_method row;
    const struct ab_method *a, *b;
    int kind;
    char name[160], summary[400], cost_words[600], convention[400], citation[600];
};
static struct slot slots[AB_COMPOSE_MAX];
static int n_slots;

static int tokens(const struct ab_method *m)
{
    return m->knob.name && m->knob.unit && !strcmp(m->knob.unit, "tokens");
}

/* B's knob on problem pb for A's knob x on p (the chain rule above). */
static double chain_knob_b(const struct slot *s, const struct ab_problem *p,
                           const struct ab_problem *pb, double x)
{
    const struct ab_method *a = s->a, *b = s->b;
    if (!b->knob.name) return 0;
    double alo, ahi, blo, bhi, k;
    ab_method_knob_range(a, p, &alo, &ahi);
    ab_method_knob_range(b, pb, &blo, &bhi);
    if (tokens(a) && tokens(b)) {
        double n = (double)p->h->n_k;
        k = x * (CHAIN_RHO + (1 - CHAIN_RHO) * (x < n ? x : n) / n);
    } else {
        double f = ahi > alo ? (x - alo) / (ahi - alo) : 1;
        k = blo + f * (bhi - blo);
    }
    if (b->knob.integer) k = floor(k + 1e-9);
    return k < blo ? blo : k > bhi ? bhi : k;
}

/* The knob of row m for the pair's fraction f on p. */
static double pair_knob(const struct ab_method *m, const struct ab_problem *p, double f)
{
    if (!m->knob.name) return 0;
    double lo, hi;
    ab_method_knob_range(m, p, &lo, &hi);
    double k = lo + f * (hi - lo);
    if (m->knob.integer) k = floor(k + 1e-9);
    return k < lo ? lo : k > hi ? hi : k;
}

/* A's kept cache of p, gathered: the head B sees and how its keys map back. */
struct gathered {
    struct ab_head h;
    float *q, *k, *v;
    int32_t *pos;
    int64_t *idx;  /* (n) original key of each gathered key */
    int64_t *rows; /* (n_rows) p's evaluated rows in the gathered head */
    int64_t n, q0;
};

static void gathered_free(struct gathered *g)
{
    free(g->q), free(g->k), free(g->v), free(g->pos), free(g->idx), free(g->rows);
    memset(g, 0, sizeof *g);
}

/* Runs A on every decode row of p (knob x; A's prepared state in p->prep) and gathers the
 * union of what it kept plus the decode keys. A's ledger into *la. */
static int gather(const struct slot *s, const struct ab_problem *p, double x, struct gathered *g,
                  struct ab_ledger *la)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, m = n - p->q0, d = h->d, dv = h->d_v;
    int64_t *all = malloc(sizeof *all * (size_t)(m ? m : 1));
    char *in = calloc((size_t)n, 1);
    struct ab_keep ka = {0};
    int rc = AB_E_NOMEM;
    memset(g, 0, sizeof *g);
    if (!all || !in || ab_keep_alloc(&ka, m, n)) goto out;
    for (int64_t r = 0; r < m; r++) all[r] = p->q0 + r;
    struct ab_problem pa = *p;
    pa.rows = all, pa.n_rows = m;
    *la = (struct ab_ledger){0};
    if ((rc = s->a->run(&pa, x, NULL, &ka, la))) goto out;
    for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < n; j++)
            if (ab_keep_has(&ka, r, j)) in[j] = 1;
    for (int64_t j = p->q0; j < n; j++) in[j] = 1; /* the decode tokens' own keys */
    int64_t c = 0, ng = 0;
    for (int64_t j = 0; j < n; j++) ng += in[j], c += in[j] && j < p->q0;
    rc = AB_E_NOMEM;
    g->q = malloc(sizeof(float) * (size_t)(ng * d));
    g->k = malloc(sizeof(float) * (size_t)(ng * d));
    g->v = malloc(sizeof(float) * (size_t)(ng * dv));
    g->pos = malloc(sizeof(int32_t) * (size_t)ng);
    g->idx = malloc(sizeof(int64_t) * (size_t)ng);
    g->rows = malloc(sizeof(int64_t) * (size_t)(p->n_rows ? p->n_rows : 1));
    if (!g->q || !g->k || !g->v || !g->pos || !g->idx || !g->rows) goto out;
    for (int64_t j = 0, t = 0; j < n; j++) {
        if (!in[j]) continue;
        memcpy(g->q + t * d, h->q + j * d, sizeof(float) * (size_t)d); /* (n_q == n_k == n) */
        memcpy(g->k + t * d, h->k + j * d, sizeof(float) * (size_t)d);
        memcpy(g->v + t * dv, h->v + j * dv, sizeof(float) * (size_t)dv);
        g->pos[t] = h->k_pos[j], g->idx[t] = j;
        t++;
    }
    for (int64_t r = 0; r < p->n_rows; r++) g->rows[r] = c + (p->rows[r] - p->q0);
    g->n = ng, g->q0 = c;
    g->h = *h;
    g->h.n_q = g->h.n_k = ng;
    g->h.q = g->q, g->h.k = g->k, g->h.v = g->v, g->h.q_pos = g->h.k_pos = g->pos;
    rc = AB_OK;
out:
    ab_keep_free(&ka);
    free(all), free(in);
    if (rc) gathered_free(g);
    return rc;
}

static int chain_run(const struct slot *s, const struct ab_problem *p, double x, float *o,
                     struct ab_keep *keep, struct ab_ledger *led)
{
    if (p->phase != AB_PHASE_DECODE) return ab_fail(AB_E_USAGE, "%s: decode only", s->name);
    struct gathered g;
    struct ab_ledger la, lb = {0};
    int rc = gather(s, p, x, &g, &la);
    if (rc) return rc;
    struct ab_problem pb = *p;
    pb.h = &g.h, pb.q0 = g.q0, pb.rows = g.rows, pb.layer = &g.h, pb.n_layer_heads = 1;
    pb.self = 0, pb.group = 1, pb.plan = NULL, pb.prep = NULL;
    struct ab_keep kb = {0};
    double kx = chain_knob_b(s, p, &pb, x);
    if ((rc = ab_keep_alloc(&kb, p->n_rows, g.n))) goto out;
    if ((rc = ab_problem_prepare(s->b, &pb))) goto out;
    rc = s->b->run(&pb, kx, o, &kb, &lb);
    ab_problem_unprepare(s->b, &pb);
    if (rc) goto out;
    for (int64_t r = 0; r < p->n_rows; r++)
        for (int64_t t = 0; t < g.n; t++)
            if (ab_keep_has(&kb, r, t)) ab_keep_set(keep, r, g.idx[t]);
    *led = lb;
    led->flops_select += la.flops_select;
    led->flops_once += la.flops_once;
    led->ops_other += la.ops_other;
out:
    ab_keep_free(&kb);
    gathered_free(&g);
    return rc;
}

/* ---- the slots' functions ---- */

/* A pair's prepared state: which row made it. */
struct pair_state {
    const struct ab_method *m;
    void *inner;
};

static int s_prepare(const struct slot *s, const struct ab_problem *p, void **state)
{
    const struct ab_method *m = s->kind == CHAIN ? s->a : p->phase == AB_PHASE_PREFILL ? s->a : s->b;
    struct pair_state *ps = calloc(1, sizeof *ps);
    if (!ps) return ab_fail(AB_E_NOMEM, "%s: out of memory", s->name);
    ps->m = m;
    if (m->prepare) {
        int rc = m->prepare(p, &ps->inner);
        if (rc) {
            free(ps);
            return rc;
        }
    }
    *state = ps;
    return AB_OK;
}

static void s_prepare_free(void *state)
{
    struct pair_state *ps = state;
    if (!ps) return;
    if (ps->m->prepare_free && ps->inner) ps->m->prepare_free(ps->inner);
    free(ps);
}

/* p as row m sees it: its own prepared state. */
static struct ab_problem inner(const struct ab_problem *p)
{
    struct ab_problem q = *p;
    const struct pair_state *ps = p->prep;
    q.prep = ps ? ps->inner : NULL;
    return q;
}

static int s_run(const struct slot *s, const struct ab_problem *p, double x, float *o,
                 struct ab_keep *keep, struct ab_ledger *led)
{
    struct ab_problem q = inner(p);
    if (s->kind == CHAIN) return chain_run(s, &q, x, o, keep, led);
    const struct ab_method *m = p->phase == AB_PHASE_PREFILL ? s->a : s->b;
    return m->run(&q, pair_knob(m, &q, x), o, keep, led);
}

static int s_cost(const struct slot *s, const struct ab_problem *p, double x, struct ab_ledger *led)
{
    struct ab_problem q = inner(p); /* pairs of analytic rows only */
    const struct ab_method *m = p->phase == AB_PHASE_PREFILL ? s->a : s->b;
    return m->cost(&q, pair_knob(m, &q, x), led);
}

#define SLOT(i)                                                                                    \
    static int run_##i(const struct ab_problem *p, double x, float *o, struct ab_keep *k,          \
                       struct ab_ledger *l)                                                        \
    {                                                                                              \
        return s_run(&slots[i], p, x, o, k, l);                                                    \
    }                                                                                              \
    static int cost_##i(const struct ab_problem *p, double x, struct ab_ledger *l)                 \
    {                                                                                              \
        return s_cost(&slots[i], p, x, l);                                                         \
    }                                                                                              \
    static int prepare_##i(const struct ab_problem *p, void **st)                                  \
    {                                                                                              \
        return s_prepare(&slots[i], p, st);                                                        \
    }
SLOT(0) SLOT(1) SLOT(2) SLOT(3) SLOT(4) SLOT(5) SLOT(6) SLOT(7)
SLOT(8) SLOT(9) SLOT(10) SLOT(11) SLOT(12) SLOT(13) SLOT(14) SLOT(15)
#undef SLOT
#define FNS(i) {run_##i, cost_##i, prepare_##i}
static const struct {
    int (*run)(const struct ab_problem *, double, float *, struct ab_keep *, struct ab_ledger *);
    int (*cost)(const struct ab_problem *, double, struct ab_ledger *);
    int (*prepare)(const struct ab_problem *, void **);
} fns[AB_COMPOSE_MAX] = {FNS(0), FNS(1), FNS(2),  FNS(3),  FNS(4),  FNS(5),  FNS(6),  FNS(7),
                         FNS(8), FNS(9), FNS(10), FNS(11), FNS(12), FNS(13), FNS(14), FNS(15)};
#undef FNS

/* ---- building a row ---- */

const struct ab_method *ab_method_compose(const char *name)
{
    for (int i = 0; i < n_slots; i++)
        if (!strcmp(slots[i].name, name)) return &slots[i].row;
    const char *plus = strchr(name, '+');
    if (!plus || strchr(plus + 1, '+'))
        return ab_fail(AB_E_USAGE, "'%s': a composition names two rows, A+B", name), NULL;
    char an[80], bn[80];
    if ((size_t)(plus - name) >= sizeof an || strlen(plus + 1) >= sizeof bn)
        return ab_fail(AB_E_USAGE, "'%s': a name too long", name), NULL;
    snprintf(an, sizeof an, "%.*s", (int)(plus - name), name);
    snprintf(bn, sizeof bn, "%s", plus + 1);
    const struct ab_method *a = ab_method_find(an), *b = ab_method_find(bn);
    if (!a || !b)
        return ab_fail(AB_E_USAGE, "'%s': unknown method '%s' (see 'attnbench methods')", name,
                       a ? bn : an), NULL;
    if ((a->flags | b->flags) & AB_METHOD_MODEL)
        return ab_fail(AB_E_USAGE, "'%s': '%s' plans across layers (model level): it cannot be composed",
                       name, (a->flags & AB_METHOD_MODEL) ? an : bn), NULL;
    int kind;
    if ((a->phases & AB_PHASE_DECODE) && (b->phases & AB_PHASE_DECODE)) {
        kind = CHAIN;
        if (!(a->flags & AB_METHOD_SELECTS))
            return ab_fail(AB_E_USAGE, "'%s': '%s' keeps no key set, so there is no cache for '%s' to select from",
                           name, an, bn), NULL;
        if (b->flags & AB_METHOD_LAYER)
            return ab_fail(AB_E_USAGE, "'%s': '%s' reads the other heads of its layer; after '%s' it sees one head's cache",
                           name, bn, an), NULL;
        if (!(a->masks & b->masks & AB_MASKS_CAUSAL))
            return ab_fail(AB_E_USAGE, "'%s': a decode chain needs the causal mask in both rows", name), NULL;
    } else if ((a->phases & AB_PHASE_PREFILL) && (b->phases & AB_PHASE_DECODE)) {
        kind = PAIR;
        if (!(a->masks & b->masks))
            return ab_fail(AB_E_USAGE, "'%s': the two rows share no mask", name), NULL;
    } else {
        return ab_fail(AB_E_USAGE, "'%s': compose a decode row after a decode row (cache then selection, "
                                   "snapkv+quest) or a prefill row with a decode row (vertical-slash+quest)",
                       name), NULL;
    }
    if (n_slots == AB_COMPOSE_MAX)
        return ab_fail(AB_E_USAGE, "'%s': at most %d compositions in one run", name, AB_COMPOSE_MAX), NULL;
    struct slot *s = &slots[n_slots];
    memset(s, 0, sizeof *s);
    s->a = a, s->b = b, s->kind = kind;
    snprintf(s->name, sizeof s->name, "%s", name);
    struct ab_method *r = &s->row;
    r->name = s->name;
    r->family = a->family; /* a pair: the prefill row's (the battery then reads its keys as such) */
    r->citation = s->citation;
    snprintf(s->citation, sizeof s->citation, "%s; %s", a->citation, b->citation);
    r->summary = s->summary, r->cost_words = s->cost_words, r->convention = s->convention;
    unsigned carry = AB_METHOD_ORACLE | AB_METHOD_UNNORMALISED | AB_METHOD_OPERATOR | AB_METHOD_LOSSY;
    if (kind == CHAIN) {
        snprintf(s->summary, sizeof s->summary, "%s compresses the cache, then %s selects from it per decode step", an, bn);
        snprintf(s->cost_words, sizeof s->cost_words, "%s's attention and selection over %s's cache, plus %s's selection work", bn, an, an);
        if (tokens(a) && tokens(b))
            snprintf(s->convention, sizeof s->convention,
                     "%s keeps C tokens; %s reads K = C (%g + %g C / n) of them per step", an, bn,
                     CHAIN_RHO, 1 - CHAIN_RHO);
        else
            snprintf(s->convention, sizeof s->convention,
                     "%s at knob x; %s at the same fraction of its knob range", an, bn);
        r->phases = AB_PHASE_DECODE;
        r->masks = AB_MASKS_CAUSAL;
        r->knob = a->knob;
        r->flags = (b->flags & AB_METHOD_SELECTS) | (a->flags & AB_METHOD_LAYER) |
                   ((a->flags | b->flags) & carry);
        if (!a->knob.name && !b->knob.name) r->flags |= AB_METHOD_FIXED;
    } else {
        snprintf(s->summary, sizeof s->summary, "%s in prefill, %s in decode", an, bn);
        snprintf(s->cost_words, sizeof s->cost_words, "prefill: %s; decode: %s", a->cost_words, b->cost_words);
        snprintf(s->convention, sizeof s->convention,
                 "knob f: %s at lo + f (hi - lo) of its knob in prefill, %s the same in decode", an, bn);
        r->phases = (a->phases & AB_PHASE_PREFILL) | (b->phases & AB_PHASE_DECODE);
        r->masks = a->masks & b->masks;
        r->knob = (struct ab_knob){.name = "f", .lo = 0.001, .hi = 1, .integer = 0, .def = 0.5,
                                   .unit = "fraction of each row's knob range"};
        r->flags = (a->flags & b->flags & AB_METHOD_SELECTS) | ((a->flags | b->flags) & (carry | AB_METHOD_LAYER));
        if ((a->flags & b->flags & AB_METHOD_ANALYTIC) && a->cost && b->cost) {
            r->flags |= AB_METHOD_ANALYTIC;
            r->cost = fns[n_slots].cost;
        }
        if ((a->flags & AB_METHOD_FIXED) && (b->flags & AB_METHOD_FIXED)) r->flags |= AB_METHOD_FIXED;
    }
    r->run = fns[n_slots].run;
    r->prepare = fns[n_slots].prepare;
    r->prepare_free = s_prepare_free;
    n_slots++;
    return r;
}
