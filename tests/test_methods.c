/* test_methods.c - the generic battery (ggml's test-backend-ops idea) over every registry row:
 * each property of lib/eval/battery.h (the same checks `attnbench selftest` runs on a plugin's
 * rows) must pass or not apply, so a new method is tested by writing its file and its registry
 * row:
 * - the registry row is well formed (name, family, phases, knob range, functions);
 * - cost is pure (same answer twice) and monotone (non-decreasing) in the knob;
 * - at its largest knob a method that selects equals dense (rel_l2 <= 1e-5);
 * - no attention outside the mask: huge values on keys a row must not see change nothing (and,
 *   for static and kv methods, which must not even read them, huge keys too);
 * - constant V is a fixed point (normalised methods);
 * - the ledger's cells equal the cells actually computed and the cells of the keep sets;
 * - an exported distribution is the one used; evaluating a subset of rows changes nothing else;
 * - prepare (method.h): a prepared state belongs to its problem (A, B, A interleaved gives A
 *   alone), the engine prepares each (head, phase) once and gives run() a keep set always.
 * Here too, because they involve several rows at once: rows swept together (sharing a prepare)
 * give the cells they give swept alone. Method-specific properties live in the other
 * test_methods_*.c files. */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "eval/battery.h"
#include "eval/eval.h"
#include "gen/gen.h"
#include "methods_fixtures.h"

enum { N = 320, D = 32, M = 32, HEADS = 4, KV = 2, W_LAYERS = 4, W_HEADS = 4 };

/* Property p over every registry row: pass or does not apply. Returns the rows it applied to. */
static int every_row(int p)
{
    int applied = 0;
    for (int i = 0; i < ab_method_count(); i++) {
        const struct ab_method *m = ab_method_at(i);
        char why[512];
        int v = ab_battery_check(m, p, why, sizeof why);
        cr_expect(v != AB_VERDICT_FAIL, "%s: %s (%s): %s", m->name, ab_prop_name(p), ab_prop_says(p), why);
        applied += v != AB_VERDICT_SKIP;
    }
    return applied;
}

/* The problem of head `head` in a phase, under the causal mask, or under the full mask when m
 * supports only that one (full-mask-only rows refuse causal problems). */
static struct ab_problem problem(struct fx_layer *L, const struct ab_method *m, int phase,
                                 int64_t head)
{
    int mask = (m->masks & AB_MASKS_CAUSAL) ? AB_MASK_CAUSAL : AB_MASK_FULL;
    for (int64_t h = 0; h < L->n_head; h++) L->heads[h].mask = mask;
    return fx_problem(L, head, phase == AB_PHASE_DECODE ? M : 0);
}

Test(battery, registry_rows_are_well_formed)
{
    cr_assert(ab_method_count() >= 12);
    cr_expect_eq(every_row(AB_PROP_ROW), ab_method_count());
    for (int i = 0; i < ab_method_count(); i++) {
        const struct ab_method *m = ab_method_at(i);
        for (int j = 0; j < i; j++)
            cr_expect(strcmp(m->name, ab_method_at(j)->name), "duplicate %s", m->name);
        cr_expect_eq(ab_method_find(m->name), m);
    }
    cr_expect_null(ab_method_find("no-such-method"));
}

/* The check itself must be able to fail: a row whose cost falls with its knob, one that reads
 * past the mask and one whose ledger lies are caught, each by its property, with words. */
static int bad_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                   struct ab_ledger *led)
{
    (void)keep;
    *led = (struct ab_ledger){0};
    ab_ledger_attend(led, p->h, 1e6 / knob); /* a lie, and falling with the knob */
    for (int64_t r = 0; o && r < p->n_rows; r++) /* O = the last key's value: past the mask */
        for (int64_t c = 0; c < p->h->d_v; c++) o[r * p->h->d_v + c] = p->h->v[(p->h->n_k - 1) * p->h->d_v + c];
    return AB_OK;
}

Test(battery, catches_a_bad_row)
{
    const struct ab_method bad = {.name = "bad-row", .family = AB_FAMILY_STATIC, .summary = "s",
                                  .citation = "c", .cost_words = "w", .phases = AB_PHASE_PREFILL,
                                  .masks = AB_MASKS_CAUSAL,
                                  .knob = {"k", 1, 100, 0, 10, "tokens"},
                                  .run = bad_run};
    char why[512];
    cr_expect_eq(ab_battery_check(&bad, AB_PROP_ROW, why, sizeof why), AB_VERDICT_PASS, "%s", why);
    cr_expect_eq(ab_battery_check(&bad, AB_PROP_COST, why, sizeof why), AB_VERDICT_FAIL);
    cr_expect(strstr(why, "falls"), "%s", why);
    cr_expect_eq(ab_battery_check(&bad, AB_PROP_MASK, why, sizeof why), AB_VERDICT_FAIL);
    cr_expect(strstr(why, "changed when"), "%s", why);
    cr_expect_eq(ab_battery_check(&bad, AB_PROP_LEDGER, why, sizeof why), AB_VERDICT_FAIL);
    cr_expect(strstr(why, "were computed"), "%s", why);
    cr_expect_eq(ab_battery_check(&bad, AB_PROP_LARGEST, why, sizeof why), AB_VERDICT_SKIP);
    struct ab_method worse = bad;
    worse.knob.lo = 0;
    cr_expect_eq(ab_battery_check(&worse, AB_PROP_ROW, why, sizeof why), AB_VERDICT_FAIL);
    cr_expect(strstr(why, "knob range"), "%s", why);
}

Test(battery, cost_is_pure_and_monotone) { cr_expect_gt(every_row(AB_PROP_COST), 30); }

Test(battery, largest_knob_equals_dense) { cr_expect_gt(every_row(AB_PROP_LARGEST), 20); }

Test(battery, no_attention_outside_the_mask) { cr_expect_gt(every_row(AB_PROP_MASK), 30); }

Test(battery, constant_values_are_a_fixed_point) { cr_expect_gt(every_row(AB_PROP_CONST_V), 30); }

Test(battery, ledger_cells_are_the_cells_computed) { every_row(AB_PROP_LEDGER); }

Test(battery, exported_distribution_is_the_one_used) { cr_expect_gt(every_row(AB_PROP_DIST), 3); }

/* Evaluating a subset of the phase's rows changes nothing but which rows are written: the engine
 * samples prefill rows, so every method must hold this. */
Test(battery, evaluated_subset_matches_full) { every_row(AB_PROP_SUBSET); }

Test(battery, prepared_state_belongs_to_its_problem)
{
    int rows_with_prepare = every_row(AB_PROP_PREPARE);
    cr_expect_geq(rows_with_prepare, 10, "only %d rows have a prepare", rows_with_prepare);
}

Test(battery, the_engine_prepares_each_problem_once_and_always_passes_a_keep_set)
{
    every_row(AB_PROP_ENGINE);
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
