/* test_methods.c - the generic battery (ggml's test-backend-ops idea): every registry row, in
 * every phase it supports, is run through the same checks, so a new method is tested by writing
 * its file and its registry row:
 * - the registry row is well formed (name, family, phases, knob range, functions);
 * - cost is pure (same answer twice) and monotone (non-decreasing) in the knob;
 * - at its largest knob a method that selects equals dense (rel_l2 <= 1e-5);
 * - no attention outside the mask: huge values on keys a row must not see change nothing (and,
 *   for static and kv methods, which must not even read them, huge keys too);
 * - constant V is a fixed point (normalised methods);
 * - the ledger's cells equal the cells actually computed and the cells of the keep sets.
 * Method-specific properties live in test_methods_dynamic.c and test_methods_kv.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "eval/eval.h"
#include "methods_fixtures.h"

enum { N = 320, D = 32, M = 32, HEADS = 4, KV = 2 };

/* Every (method, phase) pair the registry offers, as problems on a fresh random layer. */
#define FOR_EACH_METHOD_PHASE(m, phase)                                                            \
    for (int mi_ = 0; mi_ < ab_n_methods; mi_++)                                                   \
        for (int phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE; phase <<= 1)                  \
            for (const struct ab_method *m = ab_methods[mi_]; m && (m->phases & (unsigned)phase);  \
                 m = NULL)

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
    cr_assert(ab_n_methods >= 12);
    for (int i = 0; i < ab_n_methods; i++) {
        const struct ab_method *m = ab_methods[i];
        cr_assert_not_null(m->name);
        for (const char *c = m->name; *c; c++)
            cr_expect((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-', "%s", m->name);
        for (int j = 0; j < i; j++) cr_expect(strcmp(m->name, ab_methods[j]->name), "duplicate %s", m->name);
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
