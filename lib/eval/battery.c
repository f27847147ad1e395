/* battery.c - the generic battery: see battery.h. Each property is one function on one row,
 * returning a verdict and the first violation in words; the problems are built here from a seed
 * (the same seeds the suite has always used), so a verdict replays. */
#include "eval/battery.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "core/rng.h"
#include "core/workload.h"
#include "eval/eval.h"
#include "eval/results.h"
#include "gen/gen.h"

enum { N = 320, D = 32, M = 32, HEADS = 4, KV = 2 };

/* The row's function being called, for a crash report (ab_battery_where). */
static const char *volatile where = "";
const char *ab_battery_where(void) { return where; }

static const struct {
    const char *name, *says;
} props[AB_PROP_COUNT] = {
    [AB_PROP_ROW] = {"row", "the registry row is well formed"},
    [AB_PROP_COST] = {"cost", "cost is pure and monotone in the knob; an analytic cost() is what run() counts"},
    [AB_PROP_LARGEST] = {"largest", "at its largest knob a selecting row equals dense (rel_l2 <= 1e-5)"},
    [AB_PROP_MASK] = {"mask", "no attention outside the causal mask"},
    [AB_PROP_CONST_V] = {"const-v", "constant V is a fixed point"},
    [AB_PROP_LEDGER] = {"ledger", "the ledger's cells are the cells computed and kept"},
    [AB_PROP_DIST] = {"dist", "an exported distribution is the one used (O = A V)"},
    [AB_PROP_SUBSET] = {"subset", "evaluating a subset of rows changes nothing else"},
    [AB_PROP_PREPARE] = {"prepare", "a prepared state belongs to its problem"},
    [AB_PROP_ENGINE] = {"engine", "the engine prepares each problem once and always passes a keep set"},
};

const char *ab_prop_name(int p) { return p >= 0 && p < AB_PROP_COUNT ? props[p].name : "?"; }
const char *ab_prop_says(int p) { return p >= 0 && p < AB_PROP_COUNT ? props[p].says : "?"; }

int ab_prop_find(const char *name)
{
    for (int p = 0; p < AB_PROP_COUNT; p++)
        if (!strcmp(props[p].name, name)) return p;
    return -1;
}

/* ---- problems ---- */

/* One layer: HEADS query heads over KV kv heads, N rows, D = d_v. */
struct layer {
    float q[HEADS * N * D], k[KV * N * D], v[KV * N * D];
    int32_t pos[N];
    struct ab_head heads[HEADS];
    int64_t rows[N];
};

/* Seeded Gaussian inputs; logits scale q.k have standard deviation `spread`. */
static struct layer *layer_make(double spread, uint64_t seed)
{
    struct layer *L = calloc(1, sizeof *L);
    if (!L) return NULL;
    struct ab_rng r;
    ab_rng_init(&r, seed, 99);
    double a = sqrt(spread);
    for (int64_t i = 0; i < HEADS * N * D; i++) L->q[i] = (float)(a * ab_rng_normal(&r));
    for (int64_t i = 0; i < KV * N * D; i++) L->k[i] = (float)(a * ab_rng_normal(&r));
    for (int64_t i = 0; i < KV * N * D; i++) L->v[i] = (float)ab_rng_normal(&r);
    for (int64_t i = 0; i < N; i++) L->pos[i] = (int32_t)i;
    for (int64_t h = 0; h < HEADS; h++) {
        int64_t kv = h / (HEADS / KV);
        L->heads[h] = (struct ab_head){.n_q = N, .n_k = N, .d = D, .d_v = D,
                                       .q = L->q + h * N * D, .k = L->k + kv * N * D,
                                       .v = L->v + kv * N * D, .q_pos = L->pos, .k_pos = L->pos,
                                       .mask = AB_MASK_CAUSAL, .scale = 1.0 / sqrt((double)D)};
    }
    return L;
}

/* The problem of head `head` in a phase (every row of the phase evaluated), under the causal
 * mask, or the full mask when m supports only that one. */
static struct ab_problem problem(struct layer *L, const struct ab_method *m, int phase,
                                 int64_t head)
{
    int mask = (m->masks & AB_MASKS_CAUSAL) ? AB_MASK_CAUSAL : AB_MASK_FULL;
    for (int64_t h = 0; h < HEADS; h++) L->heads[h].mask = mask;
    int64_t q0 = phase == AB_PHASE_DECODE ? N - M : 0;
    for (int64_t r = 0; r < N - q0; r++) L->rows[r] = q0 + r;
    return (struct ab_problem){.h = &L->heads[head], .phase = phase, .q0 = q0, .rows = L->rows,
                               .n_rows = N - q0, .layer = L->heads, .n_layer_heads = HEADS,
                               .self = head, .group = HEADS / KV, .seed = 1};
}

static const char *phase_word(int phase) { return phase == AB_PHASE_PREFILL ? "prefill" : "decode"; }

/* A knob a fraction f into m's range on p (the range's low end for knob-less rows: unused). */
static double knob_at(const struct ab_method *m, const struct ab_problem *p, double f)
{
    if (!m->knob.name) return 0;
    double lo, hi;
    ab_method_knob_range(m, p, &lo, &hi);
    double x = lo + (hi - lo) * f;
    if (m->knob.integer) x = floor(x);
    return x < lo ? lo : x;
}

/* m->run as the engine calls it: on p prepared (a prepared copy when p->prep is NULL), with a
 * keep set (keep cleared, or a local one when NULL). */
static int run_as_engine(const struct ab_method *m, const struct ab_problem *p, double knob,
                         float *o, struct ab_keep *keep, struct ab_ledger *led)
{
    struct ab_problem q = *p;
    int own = m->prepare && !q.prep, rc;
    where = "prepare()";
    if (own && (rc = ab_problem_prepare(m, &q))) return rc;
    struct ab_keep local = {0};
    if (keep)
        ab_keep_clear(keep);
    else if ((rc = ab_keep_alloc(keep = &local, p->n_rows, p->h->n_k)))
        goto out;
    *led = (struct ab_ledger){0};
    where = "run()";
    rc = m->run(&q, knob, o, keep, led);
out:
    ab_keep_free(&local);
    if (own) ab_problem_unprepare(m, &q);
    return rc;
}

/* The verdict state of one check: the first failure's words. */
struct verdict {
    const struct ab_method *m;
    char *why;
    size_t cap;
};

static int fail(struct verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct verdict *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, v->cap, fmt, ap);
    va_end(ap);
    return AB_VERDICT_FAIL;
}

static int skip(struct verdict *v, const char *why)
{
    snprintf(v->why, v->cap, "%s", why);
    return AB_VERDICT_SKIP;
}

/* A run that failed: its code and message. */
static int run_failed(struct verdict *v, const char *what, int phase, double knob, int rc)
{
    return fail(v, "%s (%s, knob %g) failed: %s: %s", what, phase_word(phase), knob,
                ab_strerror(rc), ab_errmsg());
}

/* rel_l2 of m's O on p against the double reference; the ledger into *led, the keep set into
 * keep when given (allocated here). -1 on failure (*rc set). */
static double rel_l2(const struct ab_method *m, const struct ab_problem *p, double knob,
                     struct ab_ledger *led, struct ab_keep *keep, int *rc)
{
    int64_t dv = p->h->d_v;
    float *o = malloc(sizeof(float) * (size_t)(p->n_rows * dv));
    double *ref = malloc(sizeof(double) * (size_t)(p->n_rows * dv));
    double e = -1;
    *rc = AB_E_NOMEM;
    if (!o || !ref) goto out;
    if (keep && (*rc = ab_keep_alloc(keep, p->n_rows, p->h->n_k))) goto out;
    if ((*rc = run_as_engine(m, p, knob, o, keep, led))) goto out;
    if ((*rc = ab_attn_ref(p->h, p->rows, p->n_rows, ref, NULL))) goto out;
    double num = 0, den = 0;
    for (int64_t i = 0; i < p->n_rows * dv; i++) {
        double x = o[i] - ref[i];
        num += x * x, den += ref[i] * ref[i];
    }
    e = sqrt(num / den);
    if (!(e == e)) e = INFINITY; /* a NaN output fails every bound */
out:
    if (*rc && keep && keep->bits) ab_keep_free(keep);
    free(o), free(ref);
    return e;
}

#define PHASES(m, phase)                                                                           \
    for (int phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE; phase <<= 1)                      \
        if ((m)->phases & (unsigned)phase)

/* ---- the properties ---- */

static int prop_row(struct verdict *v)
{
    if (ab_method_check_row(v->m)) return fail(v, "%s", ab_errmsg());
    const struct ab_method *r = ab_method_find(v->m->name);
    if (r && r != v->m) return fail(v, "another registry row is named '%s'", v->m->name);
    return AB_VERDICT_PASS;
}

static int prop_cost(struct verdict *v)
{
    const struct ab_method *m = v->m;
    if (!m->knob.name) return skip(v, "no knob: the cost is fixed");
    struct layer *L = layer_make(4.0, 11);
    if (!L) return fail(v, "out of memory");
    int verdict = AB_VERDICT_PASS, rc;
    PHASES(m, phase)
    {
        struct ab_problem p = problem(L, m, phase, 1);
        where = "prepare()";
        if ((rc = ab_problem_prepare(m, &p))) { /* once for every knob, as the solver's caller */
            verdict = run_failed(v, "prepare", phase, 0, rc);
            break;
        }
        double lo, hi, prev = -1;
        ab_method_knob_range(m, &p, &lo, &hi);
        for (int s = 0; s <= 12 && verdict == AB_VERDICT_PASS; s++) {
            double x = lo + (hi - lo) * s / 12.0;
            if (m->knob.integer) x = floor(x);
            struct ab_ledger a, b;
            where = m->cost && (m->flags & AB_METHOD_ANALYTIC) ? "cost()" : "run() for its cost";
            if ((rc = ab_method_cost(m, &p, x, &a)) || (rc = ab_method_cost(m, &p, x, &b))) {
                verdict = run_failed(v, "cost", phase, x, rc);
                break;
            }
            if (memcmp(&a, &b, sizeof a)) {
                verdict = fail(v, "%s: cost at knob %g is not pure (two calls differ)", phase_word(phase), x);
                break;
            }
            double r = ab_ledger_ratio(&a, &p);
            if (!(r >= prev - 1e-12)) {
                verdict = fail(v, "%s: the cost ratio falls from %g to %g at knob %g", phase_word(phase), prev, r, x);
                break;
            }
            prev = r;
            if (m->cost && (m->flags & AB_METHOD_ANALYTIC)) { /* the analytic cost is the ledger a run fills */
                struct ab_ledger c;
                if ((rc = run_as_engine(m, &p, x, NULL, NULL, &c))) {
                    verdict = run_failed(v, "run", phase, x, rc);
                    break;
                }
                if (!(fabs(c.cells - a.cells) <= 1e-9 * (1 + a.cells)) ||
                    !(fabs(c.flops_select - a.flops_select) <= 1e-9 * (1 + a.flops_select)))
                    verdict = fail(v, "%s: cost() and run() disagree at knob %g (%g vs %g cells, %g vs %g selection FLOPs)",
                                   phase_word(phase), x, a.cells, c.cells, a.flops_select, c.flops_select);
            }
        }
        ab_problem_unprepare(m, &p);
        if (verdict != AB_VERDICT_PASS) break;
    }
    free(L);
    return verdict;
}

static int prop_largest(struct verdict *v)
{
    const struct ab_method *m = v->m;
    if (!(m->flags & AB_METHOD_SELECTS)) return skip(v, "selects nothing (not AB_METHOD_SELECTS)");
    struct layer *L = layer_make(4.0, 12);
    if (!L) return fail(v, "out of memory");
    int verdict = AB_VERDICT_PASS, rc;
    PHASES(m, phase)
    for (int64_t head = 0; head < HEADS && verdict == AB_VERDICT_PASS; head += 3) {
        struct ab_problem p = problem(L, m, phase, head);
        double knob = m->knob.name ? knob_at(m, &p, 1) : 0;
        struct ab_ledger led;
        double e = rel_l2(m, &p, knob, &led, NULL, &rc);
        if (rc)
            verdict = run_failed(v, "run", phase, knob, rc);
        else if (!(e <= 1e-5))
            verdict = fail(v, "%s, head %ld: rel_l2 %g at the largest knob %g", phase_word(phase), (long)head, e, knob);
        else if (!(fabs(ab_ledger_ratio(&led, &p) - 1) < 0.5 || (m->flags & AB_METHOD_ORACLE) || led.flops_select > 0))
            verdict = fail(v, "%s: cost ratio %g at the largest knob (dense is 1)", phase_word(phase), ab_ledger_ratio(&led, &p));
    }
    free(L);
    return verdict;
}

/* m's O on p at knob into a new buffer (n_rows, d_v); NULL and *rc on failure. */
static float *run_out(const struct ab_method *m, const struct ab_problem *p, double knob, int *rc)
{
    float *o = malloc(sizeof(float) * (size_t)(p->n_rows * p->h->d_v));
    struct ab_ledger led;
    if (!o) {
        *rc = AB_E_NOMEM;
        return NULL;
    }
    if ((*rc = run_as_engine(m, p, knob, o, NULL, &led))) {
        free(o);
        return NULL;
    }
    return o;
}

static int prop_mask(struct verdict *v)
{
    const struct ab_method *m = v->m;
    if (!(m->masks & AB_MASKS_CAUSAL)) return skip(v, "full mask only: every key is visible");
    int verdict = AB_VERDICT_PASS, rc;
    PHASES(m, phase)
    {
        struct layer *L = layer_make(4.0, 13);
        if (!L) return fail(v, "out of memory");
        struct ab_problem p = problem(L, m, phase, 2);
        double knob = knob_at(m, &p, 1.0 / 3);
        float *before = run_out(m, &p, knob, &rc), *after = NULL;
        if (!before) {
            verdict = run_failed(v, "run", phase, knob, rc);
            goto next;
        }
        /* rows up to `cut` must not see keys after it: poison those keys' values (and keys, for
         * rows whose rules say they never read them) */
        int64_t cut = phase == AB_PHASE_DECODE ? N - M / 2 : N / 2;
        int poison_k = m->family == AB_FAMILY_STATIC || m->family == AB_FAMILY_KV ||
                       m->family == AB_FAMILY_DENSE;
        for (int64_t kv = 0; kv < KV; kv++)
            for (int64_t j = cut + 1; j < N; j++)
                for (int64_t c = 0; c < D; c++) {
                    L->v[(kv * N + j) * D + c] = 1e6f;
                    if (poison_k) L->k[(kv * N + j) * D + c] = (c % 2 ? 50.0f : -50.0f);
                }
        if (!(after = run_out(m, &p, knob, &rc))) {
            verdict = run_failed(v, "run", phase, knob, rc);
            goto next;
        }
        for (int64_t r = 0; r < p.n_rows && p.rows[r] <= cut && verdict == AB_VERDICT_PASS; r++)
            for (int64_t c = 0; c < D; c++)
                if (!(before[r * D + c] == after[r * D + c])) {
                    verdict = fail(v, "%s: row %ld changed when %s after %ld changed (knob %g)",
                                   phase_word(phase), (long)p.rows[r], poison_k ? "keys and values" : "values",
                                   (long)cut, knob);
                    break;
                }
    next:
        free(before), free(after), free(L);
        if (verdict != AB_VERDICT_PASS) break;
    }
    return verdict;
}

static int prop_const_v(struct verdict *v)
{
    const struct ab_method *m = v->m;
    if (m->flags & AB_METHOD_UNNORMALISED) return skip(v, "unnormalised rows (AB_METHOD_UNNORMALISED)");
    if (m->flags & AB_METHOD_LOSSY) return skip(v, "V is read through a lossy cache (AB_METHOD_LOSSY)");
    struct layer *L = layer_make(4.0, 14);
    if (!L) return fail(v, "out of memory");
    for (int64_t i = 0; i < KV * N; i++)
        for (int64_t c = 0; c < D; c++) L->v[i * D + c] = (float)(0.5 + 0.25 * c);
    int verdict = AB_VERDICT_PASS, rc;
    PHASES(m, phase)
    {
        struct ab_problem p = problem(L, m, phase, 1);
        double knob = knob_at(m, &p, 0.25);
        float *o = run_out(m, &p, knob, &rc);
        if (!o) {
            verdict = run_failed(v, "run", phase, knob, rc);
            break;
        }
        for (int64_t r = 0; r < p.n_rows && verdict == AB_VERDICT_PASS; r++)
            for (int64_t c = 0; c < D; c++)
                if (!(fabsf(o[r * D + c] - (float)(0.5 + 0.25 * c)) <= 1e-5f * (1 + 0.25f * c))) {
                    verdict = fail(v, "%s: row %ld column %ld is %g, V is %g there (knob %g)", phase_word(phase),
                                   (long)p.rows[r], (long)c, o[r * D + c], 0.5 + 0.25 * c, knob);
                    break;
                }
        free(o);
        if (verdict != AB_VERDICT_PASS) break;
    }
    free(L);
    return verdict;
}

static int prop_ledger(struct verdict *v)
{
    const struct ab_method *m = v->m;
    struct layer *L = layer_make(4.0, 15);
    if (!L) return fail(v, "out of memory");
    int verdict = AB_VERDICT_PASS, rc;
    int sel = (m->flags & AB_METHOD_SELECTS) != 0;
    PHASES(m, phase)
    for (int s = 0; s < 3 && verdict == AB_VERDICT_PASS; s++) {
        struct ab_problem p = problem(L, m, phase, 3);
        double knob = knob_at(m, &p, s / 4.0);
        struct ab_keep keep = {0};
        struct ab_ledger led;
        ab_attend_counter_take();
        rel_l2(m, &p, knob, &led, sel ? &keep : NULL, &rc);
        double computed = ab_attend_counter_take();
        if (rc) {
            verdict = run_failed(v, "run", phase, knob, rc);
            break;
        }
        if (!(fabs(computed - led.cells) < 0.5))
            verdict = fail(v, "%s, knob %g: the ledger counts %.0f cells, %.0f were computed", phase_word(phase),
                           knob, led.cells, computed);
        if (sel && verdict == AB_VERDICT_PASS) {
            double kept = 0;
            for (int64_t r = 0; r < p.n_rows; r++) kept += (double)ab_keep_count(&keep, r);
            if (!(fabs(kept - led.cells) < 0.5))
                verdict = fail(v, "%s, knob %g: the keep sets hold %.0f cells, the ledger %.0f", phase_word(phase),
                               knob, kept, led.cells);
            for (int64_t r = 0; r < p.n_rows && verdict == AB_VERDICT_PASS; r++)
                for (int64_t j = ab_head_visible(p.h, p.rows[r]); j < N; j++)
                    if (ab_keep_has(&keep, r, j)) {
                        verdict = fail(v, "%s, knob %g: row %ld keeps key %ld, which it cannot see",
                                       phase_word(phase), knob, (long)p.rows[r], (long)j);
                        break;
                    }
        }
        if (sel) ab_keep_free(&keep);
    }
    free(L);
    return verdict;
}

static int prop_dist(struct verdict *v)
{
    const struct ab_method *m = v->m;
    if (!m->dist) return skip(v, "exports no distribution (no dist())");
    struct layer *L = layer_make(4.0, 17);
    if (!L) return fail(v, "out of memory");
    int verdict = AB_VERDICT_PASS, rc;
    PHASES(m, phase)
    {
        struct ab_problem p = problem(L, m, phase, 1);
        double knob = m->knob.name ? m->knob.def : 0;
        float *o = run_out(m, &p, knob, &rc), *a = calloc((size_t)(p.n_rows * N), sizeof(float));
        struct ab_problem q = p;
        if (!o || !a) {
            verdict = o ? fail(v, "out of memory") : run_failed(v, "run", phase, knob, rc);
        } else if ((where = "prepare() or dist()", rc = ab_problem_prepare(m, &q)) ||
                   (rc = m->dist(&q, knob, a))) {
            verdict = run_failed(v, "dist", phase, knob, rc);
        }
        ab_problem_unprepare(m, &q);
        for (int64_t r = 0; r < p.n_rows && verdict == AB_VERDICT_PASS; r++) {
            int64_t vis = ab_head_visible(p.h, p.rows[r]);
            double sum = 0, av[D] = {0};
            for (int64_t j = 0; j < N && verdict == AB_VERDICT_PASS; j++) {
                if (!(a[r * N + j] >= 0 && (j < vis || a[r * N + j] == 0)))
                    verdict = fail(v, "%s: row %ld key %ld has weight %g (negative, or past the visible keys)",
                                   phase_word(phase), (long)p.rows[r], (long)j, a[r * N + j]);
                sum += a[r * N + j];
                for (int64_t c = 0; c < D; c++) av[c] += a[r * N + j] * p.h->v[j * D + c];
            }
            if (verdict != AB_VERDICT_PASS) break;
            if ((m->flags & AB_METHOD_UNNORMALISED) ? !(sum <= 1 + 1e-5) : !(fabs(sum - 1) < 1e-5)) {
                verdict = fail(v, "%s: row %ld of the distribution sums to %g", phase_word(phase), (long)p.rows[r], sum);
                break;
            }
            for (int64_t c = 0; c < D; c++)
                if (!(fabs(av[c] - o[r * D + c]) <= 1e-4 * (1 + fabs(av[c])))) {
                    verdict = fail(v, "%s: row %ld: O is not A V (column %ld: %g vs %g)", phase_word(phase),
                                   (long)p.rows[r], (long)c, o[r * D + c], av[c]);
                    break;
                }
        }
        free(o), free(a);
        if (verdict != AB_VERDICT_PASS) break;
    }
    free(L);
    return verdict;
}

static int prop_subset(struct verdict *v)
{
    const struct ab_method *m = v->m;
    struct layer *L = layer_make(4.0, 18);
    if (!L) return fail(v, "out of memory");
    int verdict = AB_VERDICT_PASS, rc;
    PHASES(m, phase)
    {
        struct ab_problem full = problem(L, m, phase, 1);
        int64_t sub_rows[N], n_sub = 0;
        for (int64_t r = 1; r < full.n_rows; r += 3) sub_rows[n_sub++] = full.rows[r];
        struct ab_problem sub = full;
        sub.rows = sub_rows, sub.n_rows = n_sub;
        double knob = knob_at(m, &full, 1.0 / 3);
        float *o_full = malloc(sizeof(float) * (size_t)(full.n_rows * D));
        float *o_sub = malloc(sizeof(float) * (size_t)(n_sub * D));
        struct ab_keep k_full = {0}, k_sub = {0};
        struct ab_ledger l_full, l_sub;
        if (!o_full || !o_sub || ab_keep_alloc(&k_full, full.n_rows, N) ||
            ab_keep_alloc(&k_sub, n_sub, N))
            verdict = fail(v, "out of memory");
        else if ((rc = run_as_engine(m, &full, knob, o_full, &k_full, &l_full)) ||
                 (rc = run_as_engine(m, &sub, knob, o_sub, &k_sub, &l_sub)))
            verdict = run_failed(v, "run", phase, knob, rc);
        else if (memcmp(&l_full, &l_sub, sizeof l_full))
            verdict = fail(v, "%s, knob %g: the ledger depends on which rows are evaluated", phase_word(phase), knob);
        for (int64_t s = 0; s < n_sub && verdict == AB_VERDICT_PASS; s++) {
            int64_t r = sub_rows[s] - full.q0;
            if (memcmp(k_sub.bits + s * k_sub.words, k_full.bits + r * k_full.words,
                       sizeof(uint64_t) * (size_t)k_full.words))
                verdict = fail(v, "%s, knob %g: row %ld keeps other keys when evaluated in a subset",
                               phase_word(phase), knob, (long)sub_rows[s]);
            else if (memcmp(o_sub + s * D, o_full + r * D, sizeof(float) * D))
                verdict = fail(v, "%s, knob %g: row %ld's output differs when evaluated in a subset",
                               phase_word(phase), knob, (long)sub_rows[s]);
        }
        ab_keep_free(&k_full), ab_keep_free(&k_sub);
        free(o_full), free(o_sub);
        if (verdict != AB_VERDICT_PASS) break;
    }
    free(L);
    return verdict;
}

static int prop_prepare(struct verdict *v)
{
    const struct ab_method *m = v->m;
    if (!m->prepare) return skip(v, "nothing to prepare (no prepare())");
    struct layer *LA = layer_make(4.0, 19), *LB = layer_make(2.0, 20);
    if (!LA || !LB) {
        free(LA), free(LB);
        return fail(v, "out of memory");
    }
    int verdict = AB_VERDICT_PASS, rc;
    PHASES(m, phase)
    {
        struct ab_problem a = problem(LA, m, phase, 1), b = problem(LB, m, phase, 2);
        double knob = knob_at(m, &a, 1.0 / 3);
        size_t bo = sizeof(float) * (size_t)(a.n_rows * D);
        float *o_alone = malloc(bo), *o_a = malloc(bo), *o_b = malloc(bo);
        struct ab_keep k_alone = {0}, k_a = {0}, k_b = {0};
        struct ab_ledger l_alone, l_a, l_b;
        struct ab_problem alone = a;
        const char *ph = phase_word(phase);
        if (!o_alone || !o_a || !o_b || ab_keep_alloc(&k_alone, a.n_rows, N) ||
            ab_keep_alloc(&k_a, a.n_rows, N) || ab_keep_alloc(&k_b, b.n_rows, N)) {
            verdict = fail(v, "out of memory");
            goto next;
        }
        /* A alone */
        where = "prepare() or run()";
        if ((rc = ab_problem_prepare(m, &alone)) ||
            (rc = run_as_engine(m, &alone, knob, o_alone, &k_alone, &l_alone))) {
            verdict = run_failed(v, "prepare and run", phase, knob, rc);
            ab_problem_unprepare(m, &alone);
            goto next;
        }
        ab_problem_unprepare(m, &alone);
        /* A and B prepared side by side, run A, B, A */
        where = "prepare() or run()";
        if ((rc = ab_problem_prepare(m, &a)) || (rc = ab_problem_prepare(m, &b)) ||
            (rc = run_as_engine(m, &a, knob, o_a, &k_a, &l_a)) ||
            (rc = run_as_engine(m, &b, knob, o_b, &k_b, &l_b))) {
            verdict = run_failed(v, "prepare and run", phase, knob, rc);
            goto unprep;
        }
        for (int pass = 0; pass < 2 && verdict == AB_VERDICT_PASS; pass++) {
            if (pass && (rc = run_as_engine(m, &a, knob, o_a, &k_a, &l_a))) { /* A again after B */
                verdict = run_failed(v, "run", phase, knob, rc);
                break;
            }
            const char *when = pass ? "after B ran" : "prepared beside B";
            if (memcmp(o_alone, o_a, bo))
                verdict = fail(v, "%s: A's output differs %s", ph, when);
            else if (memcmp(k_alone.bits, k_a.bits, sizeof(uint64_t) * (size_t)(k_a.n_rows * k_a.words)))
                verdict = fail(v, "%s: A keeps other keys %s", ph, when);
            else if (memcmp(&l_alone, &l_a, sizeof l_a))
                verdict = fail(v, "%s: A's ledger differs %s", ph, when);
        }
        if (verdict == AB_VERDICT_PASS && !memcmp(o_a, o_b, bo))
            verdict = fail(v, "%s: A and B, two different problems, give the same output", ph);
    unprep:
        ab_problem_unprepare(m, &a), ab_problem_unprepare(m, &b);
    next:
        ab_keep_free(&k_alone), ab_keep_free(&k_a), ab_keep_free(&k_b);
        free(o_alone), free(o_a), free(o_b);
        if (verdict != AB_VERDICT_PASS) break;
    }
    free(LA), free(LB);
    return verdict;
}

/* ---- the engine's side: the row wrapped and swept ---- */

/* The row is wrapped: prepare counts each problem it prepares and tags its state; run, cost,
 * dist and plan check they get the state of their own problem, and run that it gets a keep set
 * of the problem's shape. Counters are updated from the sweep's threads. One check at a time. */
enum { W_LAYERS = 4, W_HEADS = 4 };
static const struct ab_method *wrapped;
static struct {
    int prepares[2][W_LAYERS][W_HEADS]; /* prepare() calls per (phase, layer, head) */
    int live;                           /* states prepared and not yet freed */
    int wrong_state;                    /* calls whose p->prep was not their problem's */
    int no_keep;                        /* run() calls without a keep set of p's shape */
    int calls;                          /* cost, run, dist and plan calls */
} seen;

struct tagged { /* a prepared state and the problem it was made for */
    void *inner;
    int phase;
    int64_t layer, self;
};

static void count(int *x) { __atomic_fetch_add(x, 1, __ATOMIC_RELAXED); }

static struct ab_problem untag(const struct ab_problem *p)
{
    struct ab_problem q = *p;
    count(&seen.calls);
    if (!wrapped->prepare) return q;
    const struct tagged *t = p->prep;
    if (!t || t->phase != p->phase || t->layer != p->layer_index || t->self != p->self)
        count(&seen.wrong_state);
    q.prep = t ? t->inner : NULL;
    return q;
}

static int w_prepare(const struct ab_problem *p, void **state)
{
    struct tagged *t = malloc(sizeof *t);
    if (!t) return AB_E_NOMEM;
    int rc = wrapped->prepare(p, &t->inner);
    if (rc) {
        free(t);
        return rc;
    }
    t->phase = p->phase, t->layer = p->layer_index, t->self = p->self;
    if (p->phase >= 1 && p->phase <= 2 && p->layer_index >= 0 && p->layer_index < W_LAYERS &&
        p->self >= 0 && p->self < W_HEADS)
        count(&seen.prepares[p->phase - 1][p->layer_index][p->self]);
    count(&seen.live);
    *state = t;
    return AB_OK;
}

static void w_prepare_free(void *state)
{
    struct tagged *t = state;
    wrapped->prepare_free(t->inner);
    free(t);
    __atomic_fetch_sub(&seen.live, 1, __ATOMIC_RELAXED);
}

static int w_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    struct ab_problem q = untag(p);
    return wrapped->cost(&q, knob, led);
}

static int w_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                 struct ab_ledger *led)
{
    if (!keep || !keep->bits || keep->n_rows != p->n_rows || keep->n_k != p->h->n_k) {
        count(&seen.no_keep);
        return ab_fail(AB_E_USAGE, "%s: run() without a keep set", wrapped->name);
    }
    struct ab_problem q = untag(p);
    return wrapped->run(&q, knob, o, keep, led);
}

static int w_dist(const struct ab_problem *p, double knob, float *a)
{
    struct ab_problem q = untag(p);
    return wrapped->dist(&q, knob, a);
}

static int w_plan(const struct ab_model_view *mv, double knob, void **plan)
{
    int64_t n = mv->n_layer * mv->n_head;
    struct ab_problem *ps = malloc(sizeof *ps * (size_t)n);
    if (!ps) return AB_E_NOMEM;
    for (int64_t x = 0; x < n; x++) ps[x] = untag(&mv->problems[x]);
    struct ab_model_view w = *mv;
    w.problems = ps;
    int rc = wrapped->plan(&w, knob, plan);
    free(ps);
    return rc;
}

static int prop_engine(struct verdict *v)
{
    const struct ab_method *m = v->m;
    for (int full = 0; full <= 1; full++) {
        if (!(m->masks & (full ? AB_MASKS_FULL : AB_MASKS_CAUSAL))) continue;
        struct ab_workload w;
        struct ab_gen_opts g;
        ab_gen_defaults(&g);
        g.n_layer = W_LAYERS, g.n_head = W_HEADS, g.n_kv_head = 2, g.n_seq = 256, g.d = 32;
        g.d_v = 32, g.full_mask = full;
        if (ab_gen_workload(&g, &w)) return fail(v, "cannot make the workload: %s", ab_errmsg());
        const double targets[] = {0.5, 0.125};
        struct ab_method wm = *m;
        wrapped = m;
        wm.run = w_run;
        if (m->prepare) wm.prepare = w_prepare, wm.prepare_free = w_prepare_free;
        if (m->cost) wm.cost = w_cost;
        if (m->dist) wm.dist = w_dist;
        if (m->plan) wm.plan = w_plan;
        memset(&seen, 0, sizeof seen);
        const struct ab_method *ms[] = {&wm};
        struct ab_sweep_opts o;
        ab_sweep_defaults(&o);
        o.methods = ms, o.n_methods = 1, o.decode_m = 32, o.max_rows = 64;
        o.targets = targets, o.n_targets = 2;
        struct ab_results r;
        ab_results_init(&r);
        where = "a function called by the engine's sweep";
        int rc = ab_sweep_workload(&w, "w.h5", &o, &r);
        ab_results_free(&r);
        ab_workload_free(&w);
        const char *mask = full ? "full mask" : "causal mask";
        if (rc) return fail(v, "%s: the sweep failed: %s", mask, ab_errmsg());
        if (seen.no_keep) return fail(v, "%s: %d runs without a keep set", mask, seen.no_keep);
        if (seen.wrong_state) return fail(v, "%s: %d calls got another problem's state", mask, seen.wrong_state);
        if (seen.live) return fail(v, "%s: %d prepared states not freed", mask, seen.live);
        if (!seen.calls) return fail(v, "%s: the sweep never called the row", mask);
        for (int phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE; phase <<= 1)
            for (int64_t l = 0; l < W_LAYERS; l++)
                for (int64_t h = 0; h < W_HEADS; h++) {
                    int want = m->prepare && (m->phases & (unsigned)phase) ? 1 : 0;
                    if (seen.prepares[phase - 1][l][h] != want)
                        return fail(v, "%s, %s: layer %ld head %ld prepared %d times (want %d)", mask,
                                    phase_word(phase), (long)l, (long)h, seen.prepares[phase - 1][l][h], want);
                }
    }
    return AB_VERDICT_PASS;
}

int ab_battery_check(const struct ab_method *m, int p, char *why, size_t cap)
{
    static int (*const fn[AB_PROP_COUNT])(struct verdict *) = {
        [AB_PROP_ROW] = prop_row,         [AB_PROP_COST] = prop_cost,
        [AB_PROP_LARGEST] = prop_largest, [AB_PROP_MASK] = prop_mask,
        [AB_PROP_CONST_V] = prop_const_v, [AB_PROP_LEDGER] = prop_ledger,
        [AB_PROP_DIST] = prop_dist,       [AB_PROP_SUBSET] = prop_subset,
        [AB_PROP_PREPARE] = prop_prepare, [AB_PROP_ENGINE] = prop_engine,
    };
    struct verdict v = {.m = m, .why = why, .cap = cap};
    if (cap) why[0] = 0;
    if (p < 0 || p >= AB_PROP_COUNT) return fail(&v, "no property %d", p);
    /* every other property calls the row's functions: an ill-formed row fails them all here */
    if (p != AB_PROP_ROW && ab_method_check_row(m)) return fail(&v, "ill-formed row: %s", ab_errmsg());
    return fn[p](&v);
}
