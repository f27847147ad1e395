/* test_compose.c - two rows as one (lib/methods/compose.c): snapkv+quest selects per step from
 * what snapkv kept, counts both rows' work, follows its recorded knob rule and passes the
 * battery; vertical-slash+quest is each row in its phase; what cannot be composed is refused
 * with its reason; eval-model runs a pair end to end on the real model. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "eval/battery.h"
#include "eval/eval.h"
#include "helpers.h"
#include "methods_fixtures.h"

enum { N = 320, D = 32, M = 32 };

Test(compose, snapkv_quest_is_one_row_that_passes_the_battery)
{
    const struct ab_method *m = ab_method_find("snapkv+quest");
    cr_assert_not_null(m, "%s", ab_errmsg());
    cr_expect_eq(ab_method_find("snapkv+quest"), m, "built once");
    cr_expect_str_eq(m->name, "snapkv+quest");
    cr_expect_eq(m->phases, (unsigned)AB_PHASE_DECODE);
    cr_expect(m->flags & AB_METHOD_SELECTS);
    cr_expect(strstr(m->convention, "K = C (0.25 + 0.75 C / n)"), "%s", m->convention);
    for (int p = 0; p < AB_PROP_COUNT; p++) {
        char why[512];
        int v = ab_battery_check(m, p, why, sizeof why);
        cr_expect(v != AB_VERDICT_FAIL, "%s: %s: %s", m->name, ab_prop_name(p), why);
    }
    const struct ab_method *pair = ab_method_find("vertical-slash+quest");
    cr_assert_not_null(pair, "%s", ab_errmsg());
    for (int p = 0; p < AB_PROP_COUNT; p++) {
        char why[512];
        int v = ab_battery_check(pair, p, why, sizeof why);
        cr_expect(v != AB_VERDICT_FAIL, "%s: %s: %s", pair->name, ab_prop_name(p), why);
    }
}

/* The chain's definition on a seeded layer: each row keeps a subset of what snapkv kept (and
 * the decode keys), quest's share follows K = C (1/4 + 3/4 C / n), the one-off work is
 * snapkv's, the per-step selection quest's over the smaller cache, and when K covers snapkv's
 * whole cache the output is snapkv's. */
Test(compose, the_chain_selects_within_the_cache_and_counts_both)
{
    struct fx_layer L;
    fx_layer_make(&L, 4, 2, N, D, 4.0, 31);
    const struct ab_method *ch = ab_method_find("snapkv+quest"), *snap = fx_method("snapkv"),
                           *quest = fx_method("quest");
    struct ab_problem p = fx_problem(&L, 1, M);
    for (double c = 16; c <= 256; c *= 2) {
        struct ab_keep kc, ks, kq;
        struct ab_ledger lc, ls, lq;
        fx_rel_l2(ch, &p, c, &lc, &kc);
        fx_rel_l2(snap, &p, c, &ls, &ks);
        for (int64_t r = 0; r < p.n_rows; r++)
            for (int64_t j = 0; j < N; j++)
                if (ab_keep_has(&kc, r, j))
                    cr_assert(ab_keep_has(&ks, r, j) || j >= p.q0,
                              "C %g: row %ld reads key %ld snapkv dropped", c, (long)p.rows[r], (long)j);
        double k = c * (0.25 + 0.75 * c / N);
        /* quest reads ceil(K / 16) pages of the gathered cache per step, the current one included */
        double per_row = fx_keep_cells(&kc) / (double)p.n_rows;
        cr_expect(per_row <= ceil(floor(k) / 16) * 16 + 1e-9, "C %g: %g keys per step for K %g", c, per_row, k);
        cr_expect(fx_keep_cells(&kc) <= fx_keep_cells(&ks));
        cr_expect_eq(lc.flops_once, ls.flops_once, "the one-off work is snapkv's");
        cr_expect_gt(lc.flops_select, 0, "quest's per-step selection is counted");
        /* quest alone over the whole cache selects more than quest over snapkv's */
        fx_rel_l2(quest, &p, floor(k), &lq, &kq);
        cr_expect_leq(lc.flops_select, lq.flops_select);
        ab_keep_free(&kc), ab_keep_free(&ks), ab_keep_free(&kq);
    }
    /* at C = n snapkv keeps all and quest reads all: dense */
    struct ab_ledger led;
    cr_expect_leq(fx_rel_l2(ch, &p, N, &led, NULL), 1e-6);
    fx_layer_free(&L);
}

/* The pair is each row in its phase, at the same fraction of its knob range. */
Test(compose, the_pair_is_each_row_in_its_phase)
{
    struct fx_layer L;
    fx_layer_make(&L, 4, 2, N, D, 4.0, 32);
    const struct ab_method *pair = ab_method_find("vertical-slash+quest");
    cr_assert_not_null(pair);
    cr_expect_eq(pair->phases, (unsigned)(AB_PHASE_PREFILL | AB_PHASE_DECODE));
    const struct ab_method *vs = fx_method("vertical-slash"), *quest = fx_method("quest");
    for (int phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE; phase <<= 1) {
        struct ab_problem p = fx_problem(&L, 2, phase == AB_PHASE_DECODE ? M : 0);
        const struct ab_method *one = phase == AB_PHASE_PREFILL ? vs : quest;
        double lo, hi, f = 0.3;
        ab_method_knob_range(one, &p, &lo, &hi);
        double k = floor(lo + f * (hi - lo) + 1e-9);
        struct ab_keep ka, kb;
        struct ab_ledger la, lb;
        double ea = fx_rel_l2(pair, &p, f, &la, &ka), eb = fx_rel_l2(one, &p, k, &lb, &kb);
        cr_expect_eq(ea, eb, "%s: rel_l2 %g vs %s alone %g", phase == AB_PHASE_PREFILL ? "prefill" : "decode", ea, one->name, eb);
        cr_expect(!memcmp(&la, &lb, sizeof la));
        cr_expect(!memcmp(ka.bits, kb.bits, sizeof(uint64_t) * (size_t)(ka.n_rows * ka.words)));
        ab_keep_free(&ka), ab_keep_free(&kb);
    }
    fx_layer_free(&L);
}

Test(compose, what_cannot_be_composed_says_why)
{
    const struct {
        const char *name, *says;
    } bad[] = {
        {"snapkv+tokenselect", "reads the other heads of its layer"},
        {"pyramidkv+quest", "plans across layers"},
        {"snapkv+nosuch", "unknown method 'nosuch'"},
        {"snapkv+quest+h2o", "two rows, A+B"},
        {"think+quest", "keeps no key set"},
        {"quest+vertical-slash", "compose a decode row after a decode row"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_null(ab_method_find(bad[i].name), "%s", bad[i].name);
        cr_expect(strstr(ab_errmsg(), bad[i].says), "%s: %s", bad[i].name, ab_errmsg());
    }
    char *out = NULL, *err = NULL;
    const char *w = t_path("cw.h5"), *r = t_path("cr.h5");
    cr_assert_eq(t_run(&out, &err, "gen --preset model --layers 1 --heads 2 --kv-heads 1 --n 128 --d 32 -o %s", w), 0, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "run %s --methods snapkv+tokenselect --phase decode -o %s", w, r), 64);
    cr_expect(strstr(err, "snapkv+tokenselect") && strstr(err, "reads the other heads") && t_count_lines(err) == 1, "%s", err);
    cr_expect(!t_exists(r));
    free(out), free(err);
    /* and what can, runs from the command line and is listed in the results by its name */
    cr_expect_eq(t_run(&out, &err, "run %s --methods snapkv+quest,snapkv --phase decode --budgets 0.5 -o %s", w, r), 0, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "methods snapkv+quest"), 0);
    cr_expect(strstr(out, "convention") && strstr(out, "snapkv keeps C tokens"), "%s", out);
    free(out), free(err);
}

/* eval-model: a prefill row with a decode row, end to end in the real model. */
Test(compose, eval_model_runs_a_prefill_and_decode_pair)
{
    const char *model = t_debdoc("debdoc-f16.gguf");
    char *out = NULL, *err = NULL;
    const char *r = t_path("ce.h5");
    int st = t_run(&out, &err, "eval-model --model %s --copy-task 60 --methods vertical-slash+quest "
                               "--budgets 0.5 --phase both -o %s", model, r);
    cr_assert_eq(st, 0, "%s", err);
    cr_expect(strstr(out, "vertical-slash+quest"), "%s", out);
    free(out), free(err);
}
