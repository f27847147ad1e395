/* test_methods.c - the generic battery (ggml's test-backend-ops idea): every registry row, in
 * every phase it supports, is run through the same checks, so a new method is tested by writing
 * its file and its registry row:
 * - the registry row is well formed (name, family, phases, knob range, functions);
 * - cost is pure (same answer twice) and monotone (non-decreasing) in the knob;
 * - at its largest knob a method that selects equals dense (rel_l2 <= 1e-5);
 * - no attention outside the mask: huge values on keys a row must not see change nothing (and,
 *   for static and kv methods, which must not even read them, huge keys too);
 * - constant V is a fixed point (normalised methods);
 * - the ledger's cells equal the cells actually computed and the cells of the keep sets;
 * - prepare (method.h): a prepared state belongs to its problem (A, B, A interleaved gives A
 *   alone), the engine prepares each (head, phase) once and gives run() a keep set always, and
 *   rows swept together (sharing a prepare) give the cells they give swept alone.
 * Method-specific properties live in test_methods_dynamic.c and test_methods_kv.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "eval/eval.h"
#include "gen/gen.h"
#include "methods_fixtures.h"

enum { N = 320, D = 32, M = 32, HEADS = 4, KV = 2 };

/* Every (method, phase) pair the registry offers, as problems on a fresh random layer. */
#define FOR_EACH_METHOD_PHASE(m, phase)                                                            \
    for (int mi_ = 0; mi_ < ab_method_count(); mi_++)                                              \
        for (int phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE; phase <<= 1)                  \
            for (const struct ab_method *m = ab_method_at(mi_);                                    \
                 m && (m->phases & (unsigned)phase); m = NULL)

/* The problem of head `head` in a phase, under the causal mask, or under the full mask when m
 * supports only that one (full-mask-only rows refuse causal problems). */
static struct ab_problem problem(struct fx_layer *L, const struct ab_method *m, int phase,
                                 int64_t head)
{
    int mask = (m->masks & AB_MASKS_CAUSAL) ? AB_MASK_CAUSAL : AB_MASK_FULL;
    for (int64_t h = 0; h < L->n_head; h++) L->heads[h].mask = mask;
    return fx_problem(L, head, phase == AB_PHASE_DECODE ? M : 0);
}

static double knob_max(const struct ab_method *m, const struct ab_problem *p)
{
    double lo, hi;
    ab_method_knob_range(m, p, &lo, &hi);
    return m->knob.name ? hi : 0;
}

Test(battery, registry_rows_are_well_formed)
{
    cr_assert(ab_method_count() >= 12);
    for (int i = 0; i < ab_method_count(); i++) {
        const struct ab_method *m = ab_method_at(i);
        cr_assert_not_null(m->name);
        for (const char *c = m->name; *c; c++)
            cr_expect((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-', "%s", m->name);
        for (int j = 0; j < i; j++)
            cr_expect(strcmp(m->name, ab_method_at(j)->name), "duplicate %s", m->name);
        cr_expect_eq(ab_method_find(m->name), m);
        cr_expect_not_null(m->run, "%s has no run", m->name);
        cr_expect_not_null(m->summary, "%s", m->name);
        cr_expect_not_null(m->citation, "%s", m->name);
        cr_expect_not_null(m->cost_words, "%s", m->name);
        cr_expect(m->phases != 0 && m->masks != 0, "%s", m->name);
        cr_expect(strcmp(ab_family_name(m->family), "unknown"), "%s", m->name);
        cr_expect(!(m->flags & AB_METHOD_ANALYTIC) || m->cost, "%s: analytic without cost()", m->name);
        if (m->knob.name) cr_expect(m->knob.lo > 0 && (m->knob.hi <= 0 || m->knob.hi > m->knob.lo), "%s", m->name);
    }
    cr_expect_null(ab_method_find("no-such-method"));
}

Test(battery, cost_is_pure_and_monotone)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, N, D, 4.0, 11);
    FOR_EACH_METHOD_PHASE(m, phase)
    {
        if (!m->knob.name) continue;
        struct ab_problem p = problem(&L, m, phase, 1);
        fx_prepare(m, &p); /* as the solver's caller does: once for every knob */
        double lo, hi, prev = -1;
        ab_method_knob_range(m, &p, &lo, &hi);
        for (int s = 0; s <= 12; s++) {
            double x = lo + (hi - lo) * s / 12.0;
            if (m->knob.integer) x = floor(x);
            struct ab_ledger a, b;
            cr_assert_eq(ab_method_cost(m, &p, x, &a), AB_OK, "%s: %s", m->name, ab_errmsg());
            cr_assert_eq(ab_method_cost(m, &p, x, &b), AB_OK);
            cr_expect(memcmp(&a, &b, sizeof a) == 0, "%s: cost at %g is not pure", m->name, x);
            double r = ab_ledger_ratio(&a, &p);
            cr_expect(r >= prev - 1e-12, "%s (%s): cost falls from %g to %g at knob %g", m->name,
                      phase == AB_PHASE_PREFILL ? "prefill" : "decode", prev, r, x);
            prev = r;
            if (m->cost && (m->flags & AB_METHOD_ANALYTIC)) {
                /* the analytic cost is the ledger a real run fills */
                struct ab_ledger c = {0};
                cr_assert_eq(fx_method_run(m, &p, x, NULL, NULL, &c), AB_OK);
                cr_expect(fabs(c.cells - a.cells) <= 1e-9 * (1 + a.cells) &&
                              fabs(c.flops_select - a.flops_select) <= 1e-9 * (1 + a.flops_select),
                          "%s: cost() and run() disagree at knob %g (%g vs %g cells)", m->name, x,
                          a.cells, c.cells);
            }
        }
        fx_unprepare(m, &p);
    }
    fx_layer_free(&L);
}

Test(battery, largest_knob_equals_dense)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, N, D, 4.0, 12);
    FOR_EACH_METHOD_PHASE(m, phase)
    {
        if (!(m->flags & AB_METHOD_SELECTS)) continue;
        for (int64_t head = 0; head < HEADS; head += 3) {
            struct ab_problem p = problem(&L, m, phase, head);
            struct ab_ledger led;
            double e = fx_rel_l2(m, &p, knob_max(m, &p), &led, NULL);
            cr_expect(e <= 1e-5, "%s (%s, head %ld): rel_l2 %g at the largest knob", m->name,
                      phase == AB_PHASE_PREFILL ? "prefill" : "decode", (long)head, e);
            cr_expect(fabs(ab_ledger_ratio(&led, &p) - 1) < 0.5 || (m->flags & AB_METHOD_ORACLE) ||
                          led.flops_select > 0,
                      "%s: ratio %g at the largest knob", m->name, ab_ledger_ratio(&led, &p));
        }
    }
    fx_layer_free(&L);
}

/* Runs m at knob on p into a fresh output (n_rows, D). */
static float *run_out(const struct ab_method *m, const struct ab_problem *p, double knob)
{
    float *o = malloc(sizeof(float) * p->n_rows * D);
    struct ab_ledger led = {0};
    cr_assert_eq(fx_method_run(m, p, knob, o, NULL, &led), AB_OK, "%s: %s", m->name, ab_errmsg());
    return o;
}

Test(battery, no_attention_outside_the_mask)
{
    FOR_EACH_METHOD_PHASE(m, phase)
    {
        struct fx_layer L;
        fx_layer_make(&L, HEADS, KV, N, D, 4.0, 13);
        struct ab_problem p = problem(&L, m, phase, 2);
        if (p.h->mask == AB_MASK_FULL) { /* every key is visible: nothing lies outside */
            fx_layer_free(&L);
            continue;
        }
        double lo, hi;
        ab_method_knob_range(m, &p, &lo, &hi);
        double knob = m->knob.name ? (m->knob.integer ? floor((lo + hi) / 3) : lo + (hi - lo) / 3) : 0;
        if (m->knob.name && knob < lo) knob = lo;
        float *before = run_out(m, &p, knob);
        /* rows up to `cut` must not see keys after it: poison those keys' values (and keys,
         * for methods whose rules say they never read them) */
        int64_t cut = phase == AB_PHASE_DECODE ? N - M / 2 : N / 2;
        int poison_k = m->family == AB_FAMILY_STATIC || m->family == AB_FAMILY_KV ||
                       m->family == AB_FAMILY_DENSE;
        for (int64_t kv = 0; kv < KV; kv++)
            for (int64_t j = cut + 1; j < N; j++)
                for (int64_t c = 0; c < D; c++) {
                    L.v[(kv * N + j) * D + c] = 1e6f;
                    if (poison_k) L.k[(kv * N + j) * D + c] = (c % 2 ? 50.0f : -50.0f);
                }
        float *after = run_out(m, &p, knob);
        for (int64_t r = 0; r < p.n_rows && p.rows[r] <= cut; r++)
            for (int64_t c = 0; c < D; c++)
                cr_assert(before[r * D + c] == after[r * D + c], "%s (%s): row %ld changed when keys after %ld changed",
                          m->name, phase == AB_PHASE_PREFILL ? "prefill" : "decode", (long)p.rows[r], (long)cut);
        free(before), free(after);
        fx_layer_free(&L);
    }
}

Test(battery, constant_values_are_a_fixed_point)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, N, D, 4.0, 14);
    for (int64_t i = 0; i < KV * N; i++)
        for (int64_t c = 0; c < D; c++) L.v[i * D + c] = (float)(0.5 + 0.25 * c);
    FOR_EACH_METHOD_PHASE(m, phase)
    {
        if (m->flags & AB_METHOD_UNNORMALISED) continue; /* rows sum below 1 by design */
        struct ab_problem p = problem(&L, m, phase, 1);
        double lo, hi;
        ab_method_knob_range(m, &p, &lo, &hi);
        double knob = m->knob.name ? (m->knob.integer ? floor(lo + (hi - lo) / 4) : lo + (hi - lo) / 4) : 0;
        float *o = run_out(m, &p, knob < lo ? lo : knob);
        for (int64_t r = 0; r < p.n_rows; r++)
            for (int64_t c = 0; c < D; c++)
                cr_assert(fabsf(o[r * D + c] - (float)(0.5 + 0.25 * c)) <= 1e-5f * (1 + 0.25f * c),
                          "%s (%s): row %ld col %ld = %g", m->name, phase == AB_PHASE_PREFILL ? "prefill" : "decode",
                          (long)p.rows[r], (long)c, o[r * D + c]);
        free(o);
    }
    fx_layer_free(&L);
}

Test(battery, ledger_cells_are_the_cells_computed)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, N, D, 4.0, 15);
    FOR_EACH_METHOD_PHASE(m, phase)
    {
        struct ab_problem p = problem(&L, m, phase, 3); /* every row of the phase is evaluated */
        double lo, hi;
        ab_method_knob_range(m, &p, &lo, &hi);
        for (int s = 0; s < 3; s++) {
            double knob = m->knob.name ? lo + (hi - lo) * s / 4.0 : 0;
            if (m->knob.name && m->knob.integer) knob = floor(knob);
            struct ab_keep keep;
            struct ab_ledger led;
            ab_attend_counter_take();
            fx_rel_l2(m, &p, knob, &led, (m->flags & AB_METHOD_SELECTS) ? &keep : NULL);
            double computed = ab_attend_counter_take();
            cr_expect(fabs(computed - led.cells) < 0.5, "%s (%s, knob %g): ledger %g cells, computed %g",
                      m->name, phase == AB_PHASE_PREFILL ? "prefill" : "decode", knob, led.cells, computed);
            if (m->flags & AB_METHOD_SELECTS) {
                double kept = 0;
                for (int64_t r = 0; r < p.n_rows; r++) kept += (double)ab_keep_count(&keep, r);
                cr_expect(fabs(kept - led.cells) < 0.5, "%s (knob %g): keep sets hold %g cells, ledger %g",
                          m->name, knob, kept, led.cells);
                /* kept keys are visible keys */
                for (int64_t r = 0; r < p.n_rows; r++)
                    for (int64_t j = ab_head_visible(p.h, p.rows[r]); j < N; j++)
                        cr_assert(!ab_keep_has(&keep, r, j), "%s keeps a masked key", m->name);
                ab_keep_free(&keep);
            }
        }
    }
    fx_layer_free(&L);
}

/* window keeps exactly the last w keys of each row; streaming keeps those and the first four */
Test(static_methods, window_keeps_the_last_w_and_streaming_the_sinks_too)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, N, D, 4.0, 16);
    for (int phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE; phase <<= 1) {
        struct ab_problem p = problem(&L, fx_method("window"), phase, 0);
        for (int64_t w = 1; w <= 40; w += 13) {
            struct ab_keep kw, ks;
            struct ab_ledger led;
            fx_rel_l2(fx_method("window"), &p, (double)w, &led, &kw);
            fx_rel_l2(fx_method("streaming"), &p, (double)w, &led, &ks);
            for (int64_t r = 0; r < p.n_rows; r++) {
                int64_t i = p.rows[r];
                for (int64_t j = 0; j < N; j++) {
                    int in_window = j <= i && i - j < w, sink = j < 4 && j <= i;
                    cr_assert_eq(ab_keep_has(&kw, r, j), in_window, "window w %ld row %ld key %ld", (long)w, (long)i, (long)j);
                    cr_assert_eq(ab_keep_has(&ks, r, j), in_window || sink, "streaming w %ld row %ld key %ld", (long)w, (long)i, (long)j);
                }
            }
            ab_keep_free(&kw), ab_keep_free(&ks);
        }
    }
    fx_layer_free(&L);
}

/* A method that exports its distribution: rows are distributions over visible keys (summing to
 * 1, or at most 1 for unnormalised ones) and the output is that distribution times V. */
Test(battery, exported_distribution_is_the_one_used)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, N, D, 4.0, 17);
    FOR_EACH_METHOD_PHASE(m, phase)
    {
        if (!m->dist) continue;
        struct ab_problem p = problem(&L, m, phase, 1);
        double knob = m->knob.name ? m->knob.def : 0;
        float *o = run_out(m, &p, knob), *a = calloc((size_t)(p.n_rows * N), sizeof(float));
        cr_assert_eq(fx_method_dist(m, &p, knob, a), AB_OK, "%s: %s", m->name, ab_errmsg());
        for (int64_t r = 0; r < p.n_rows; r++) {
            int64_t vis = ab_head_visible(p.h, p.rows[r]);
            double sum = 0, av[D] = {0};
            for (int64_t j = 0; j < N; j++) {
                cr_assert(a[r * N + j] >= 0 && (j < vis || a[r * N + j] == 0), "%s: row %ld key %ld", m->name, (long)r, (long)j);
                sum += a[r * N + j];
                for (int64_t c = 0; c < D; c++) av[c] += a[r * N + j] * p.h->v[j * D + c];
            }
            if (m->flags & AB_METHOD_UNNORMALISED) cr_assert(sum <= 1 + 1e-5, "%s: row sums to %g", m->name, sum);
            else cr_assert(fabs(sum - 1) < 1e-5, "%s: row %ld sums to %g", m->name, (long)r, sum);
            for (int64_t c = 0; c < D; c++)
                cr_assert(fabs(av[c] - o[r * D + c]) <= 1e-4 * (1 + fabs(av[c])), "%s: O != A V at row %ld", m->name, (long)r);
        }
        free(o), free(a);
    }
    fx_layer_free(&L);
}

/* Evaluating a subset of the phase's rows changes nothing but which rows are written: the ledger
 * (it counts the whole phase), each evaluated row's keep set and its output are bit for bit those
 * of the run on every row. The engine samples prefill rows, so every method must hold this. */
Test(battery, evaluated_subset_matches_full)
{
    struct fx_layer L;
    fx_layer_make(&L, HEADS, KV, N, D, 4.0, 18);
    FOR_EACH_METHOD_PHASE(m, phase)
    {
        struct ab_problem full = problem(&L, m, phase, 1);
        int64_t sub_rows[N], n_sub = 0;
        for (int64_t r = 1; r < full.n_rows; r += 3) sub_rows[n_sub++] = full.rows[r];
        struct ab_problem sub = full;
        sub.rows = sub_rows, sub.n_rows = n_sub;
        double lo, hi;
        ab_method_knob_range(m, &full, &lo, &hi);
        double knob = m->knob.name ? (m->knob.integer ? floor((lo + hi) / 3) : lo + (hi - lo) / 3) : 0;
        if (m->knob.name && knob < lo) knob = lo;
        float *o_full = malloc(sizeof(float) * full.n_rows * D), *o_sub = malloc(sizeof(float) * n_sub * D);
        struct ab_keep k_full, k_sub;
        struct ab_ledger l_full = {0}, l_sub = {0};
        cr_assert_eq(ab_keep_alloc(&k_full, full.n_rows, N), AB_OK);
        cr_assert_eq(ab_keep_alloc(&k_sub, n_sub, N), AB_OK);
        int sel = (m->flags & AB_METHOD_SELECTS) != 0;
        cr_assert_eq(fx_method_run(m, &full, knob, o_full, sel ? &k_full : NULL, &l_full), AB_OK,
                     "%s", m->name);
        cr_assert_eq(fx_method_run(m, &sub, knob, o_sub, sel ? &k_sub : NULL, &l_sub), AB_OK,
                     "%s", m->name);
        const char *ph = phase == AB_PHASE_PREFILL ? "prefill" : "decode";
        cr_expect(!memcmp(&l_full, &l_sub, sizeof l_full), "%s (%s): the ledger depends on the rows", m->name, ph);
        for (int64_t s = 0; s < n_sub; s++) {
            int64_t r = sub_rows[s] - full.q0;
            cr_expect(!memcmp(k_sub.bits + s * k_sub.words, k_full.bits + r * k_full.words,
                              sizeof(uint64_t) * (size_t)k_full.words),
                      "%s (%s): row %ld keeps other keys", m->name, ph, (long)sub_rows[s]);
            cr_expect(!memcmp(o_sub + s * D, o_full + r * D, sizeof(float) * D),
                      "%s (%s): row %ld output differs", m->name, ph, (long)sub_rows[s]);
        }
        ab_keep_free(&k_full), ab_keep_free(&k_sub);
        free(o_full), free(o_sub);
    }
    fx_layer_free(&L);
}

/* ---- the prepare step (method.h) ---- */

/* Every row with a prepare keeps its state per problem: runs on two different problems A and B
 * interleaved in one thread (A, B, A, each prepared once) give A's result alone (A prepared and
 * run by itself), bit for bit: O, keep set and ledger. */
Test(battery, prepared_state_belongs_to_its_problem)
{
    struct fx_layer LA, LB;
    fx_layer_make(&LA, HEADS, KV, N, D, 4.0, 19);
    fx_layer_make(&LB, HEADS, KV, N, D, 2.0, 20);
    int rows_with_prepare = 0;
    FOR_EACH_METHOD_PHASE(m, phase)
    {
        if (!m->prepare) continue;
        rows_with_prepare++;
        cr_expect_not_null(m->prepare_free, "%s: prepare without prepare_free", m->name);
        struct ab_problem a = problem(&LA, m, phase, 1), b = problem(&LB, m, phase, 2);
        double lo, hi;
        ab_method_knob_range(m, &a, &lo, &hi);
        double knob =
            m->knob.name ? (m->knob.integer ? floor((lo + hi) / 3) : lo + (hi - lo) / 3) : 0;
        if (m->knob.name && knob < lo) knob = lo;
        size_t bo = sizeof(float) * (size_t)(a.n_rows * D);
        float *o_alone = malloc(bo), *o_a = malloc(bo), *o_b = malloc(bo);
        struct ab_keep k_alone, k_a, k_b;
        cr_assert_eq(ab_keep_alloc(&k_alone, a.n_rows, N), AB_OK);
        cr_assert_eq(ab_keep_alloc(&k_a, a.n_rows, N), AB_OK);
        cr_assert_eq(ab_keep_alloc(&k_b, b.n_rows, N), AB_OK);
        struct ab_ledger l_alone = {0}, l_a = {0}, l_b = {0};
        /* A alone */
        struct ab_problem alone = a;
        fx_prepare(m, &alone);
        cr_assert_eq(m->run(&alone, knob, o_alone, &k_alone, &l_alone), AB_OK, "%s", m->name);
        fx_unprepare(m, &alone);
        /* A and B prepared side by side, run A, B, A */
        fx_prepare(m, &a), fx_prepare(m, &b);
        cr_assert_eq(m->run(&a, knob, o_a, &k_a, &l_a), AB_OK, "%s", m->name);
        cr_assert_eq(m->run(&b, knob, o_b, &k_b, &l_b), AB_OK, "%s", m->name);
        const char *ph = phase == AB_PHASE_PREFILL ? "prefill" : "decode";
        for (int pass = 0; pass < 2; pass++) {
            if (pass) { /* A again after B */
                ab_keep_clear(&k_a), l_a = (struct ab_ledger){0};
                cr_assert_eq(m->run(&a, knob, o_a, &k_a, &l_a), AB_OK, "%s", m->name);
            }
            cr_expect(!memcmp(o_alone, o_a, bo), "%s (%s, pass %d): O of A differs", m->name, ph,
                      pass);
            cr_expect(!memcmp(k_alone.bits, k_a.bits,
                              sizeof(uint64_t) * (size_t)(k_a.n_rows * k_a.words)),
                      "%s (%s, pass %d): A keeps other keys", m->name, ph, pass);
            cr_expect(!memcmp(&l_alone, &l_a, sizeof l_a), "%s (%s, pass %d): A's ledger differs",
                      m->name, ph, pass);
        }
        cr_expect(memcmp(o_a, o_b, bo), "%s (%s): A and B are not different problems", m->name, ph);
        fx_unprepare(m, &a), fx_unprepare(m, &b);
        ab_keep_free(&k_alone), ab_keep_free(&k_a), ab_keep_free(&k_b);
        free(o_alone), free(o_a), free(o_b);
    }
    cr_expect_geq(rows_with_prepare, 10, "only %d rows have a prepare", rows_with_prepare);
    fx_layer_free(&LA), fx_layer_free(&LB);
}

/* What the engine does to one row, seen from inside: the row is wrapped (prepare counts each
 * problem it prepares and tags its state; run, cost, dist and plan check they get the state of
 * their own problem, and run that it gets a keep set of the problem's shape) and swept over a
 * small workload of 4 layers, both phases and two budgets. Counters are updated from the
 * sweep's threads. */
enum { W_LAYERS = 4, W_HEADS = 4 };
static const struct ab_method *wrapped; /* the registry row the trampolines forward to */
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

static void count(int *x)
{
    __atomic_fetch_add(x, 1, __ATOMIC_RELAXED);
}

/* p as the row sees it: its own state in prep, after checking the tag. */
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
    struct ab_model_view v = *mv;
    v.problems = ps;
    int rc = wrapped->plan(&v, knob, plan);
    free(ps);
    return rc;
}

Test(battery, the_engine_prepares_each_problem_once_and_always_passes_a_keep_set)
{
    for (int full = 0; full <= 1; full++) {
        struct ab_workload w;
        struct ab_gen_opts g;
        ab_gen_defaults(&g);
        g.n_layer = W_LAYERS, g.n_head = W_HEADS, g.n_kv_head = 2, g.n_seq = 256, g.d = 32;
        g.d_v = 32, g.full_mask = full;
        cr_assert_eq(ab_gen_workload(&g, &w), AB_OK, "%s", ab_errmsg());
        const double targets[] = {0.5, 0.125};
        for (int i = 0; i < ab_method_count(); i++) {
            const struct ab_method *m = ab_method_at(i);
            if (!(m->masks & (full ? AB_MASKS_FULL : AB_MASKS_CAUSAL))) continue;
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
            int rc = ab_sweep_workload(&w, "w.h5", &o, &r);
            cr_expect_eq(rc, AB_OK, "%s: %s", m->name, ab_errmsg());
            ab_results_free(&r);
            cr_expect_eq(seen.no_keep, 0, "%s: %d runs without a keep set", m->name, seen.no_keep);
            cr_expect_eq(seen.wrong_state, 0, "%s: %d calls with another problem's state",
                         m->name, seen.wrong_state);
            cr_expect_eq(seen.live, 0, "%s: %d prepared states not freed", m->name, seen.live);
            cr_expect_gt(seen.calls, 0, "%s was never called", m->name);
            for (int phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE; phase <<= 1)
                for (int64_t l = 0; l < W_LAYERS; l++)
                    for (int64_t h = 0; h < W_HEADS; h++) {
                        int want = m->prepare && (m->phases & (unsigned)phase) ? 1 : 0;
                        cr_expect_eq(seen.prepares[phase - 1][l][h], want,
                                     "%s (%s): layer %ld head %ld prepared %d times", m->name,
                                     phase == AB_PHASE_PREFILL ? "prefill" : "decode", (long)l,
                                     (long)h, seen.prepares[phase - 1][l][h]);
                    }
        }
        ab_workload_free(&w);
    }
}

/* The numbers of a cell that a method decides (not its timing). */
static int cells_equal(const struct ab_cell *a, const struct ab_cell *b)
{
    static const size_t at[] = {
        offsetof(struct ab_cell, knob),         offsetof(struct ab_cell, flop_ratio),
        offsetof(struct ab_cell, flops_attend), offsetof(struct ab_cell, flops_select),
        offsetof(struct ab_cell, flops_once),   offsetof(struct ab_cell, ops_other),
        offsetof(struct ab_cell, bytes_kv),     offsetof(struct ab_cell, density),
        offsetof(struct ab_cell, rel_l2),       offsetof(struct ab_cell, cos_min),
        offsetof(struct ab_cell, max_abs),      offsetof(struct ab_cell, recall),
        offsetof(struct ab_cell, topk_recall),  offsetof(struct ab_cell, kl),
        offsetof(struct ab_cell, task_acc)};
    for (size_t f = 0; f < sizeof at / sizeof at[0]; f++)
        if (memcmp((const char *)a + at[f], (const char *)b + at[f], sizeof(double))) return 0;
    return a->feasible == b->feasible;
}

/* A sweep of every row that has a prepare, together (rows of one prepare function share its
 * state: act and redistribute), gives each row's cells as a sweep of that row alone does. */
Test(battery, rows_swept_together_equal_rows_swept_alone)
{
    struct ab_workload w;
    struct ab_gen_opts g;
    ab_gen_defaults(&g);
    g.n_layer = W_LAYERS, g.n_head = W_HEADS, g.n_kv_head = 2, g.n_seq = 256, g.d = 32;
    g.d_v = 32;
    cr_assert_eq(ab_gen_workload(&g, &w), AB_OK, "%s", ab_errmsg());
    const struct ab_method *ms[64];
    int n_ms = 0;
    for (int i = 0; i < ab_method_count() && n_ms < 64; i++)
        if (ab_method_at(i)->prepare && (ab_method_at(i)->masks & AB_MASKS_CAUSAL))
            ms[n_ms++] = ab_method_at(i);
    const double targets[] = {0.25};
    struct ab_sweep_opts o;
    ab_sweep_defaults(&o);
    o.decode_m = 32, o.max_rows = 64, o.targets = targets, o.n_targets = 1;
    o.methods = ms, o.n_methods = n_ms;
    struct ab_results all;
    ab_results_init(&all);
    cr_assert_eq(ab_sweep_workload(&w, "w.h5", &o, &all), AB_OK, "%s", ab_errmsg());
    int64_t matched = 0;
    for (int k = 0; k < n_ms; k++) {
        struct ab_results one;
        ab_results_init(&one);
        o.methods = &ms[k], o.n_methods = 1;
        cr_assert_eq(ab_sweep_workload(&w, "w.h5", &o, &one), AB_OK, "%s", ab_errmsg());
        for (int64_t c = 0; c < one.n_cells; c++) {
            const struct ab_cell *x = &one.cells[c];
            int64_t y = 0;
            while (y < all.n_cells &&
                   (strcmp(all.cells[y].method, x->method) || all.cells[y].layer != x->layer ||
                    all.cells[y].head != x->head || strcmp(all.cells[y].phase, x->phase)))
                y++;
            cr_assert_lt(y, all.n_cells, "%s: no cell in the joint sweep", x->method);
            cr_expect(cells_equal(x, &all.cells[y]), "%s (%s, layer %ld head %ld): cells differ",
                      x->method, x->phase, (long)x->layer, (long)x->head);
            matched++;
        }
        ab_results_free(&one);
    }
    cr_expect_gt(matched, 0);
    ab_results_free(&all);
    ab_workload_free(&w);
}
