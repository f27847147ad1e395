/* test_methods_dynamic.c - the dynamic prefill methods (block-topk, block-oracle,
 * vertical-slash, flexprefill) on hand-built heads: each method's defining property, its ledger
 * against the formula its file states (methods.md), and equality with dense at its largest
 * knob. The generic battery (test_methods.c) runs the properties every method shares. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/dynamic.h"
#include "methods/method.h"
#include "methods_fixtures.h"

enum { BS = AB_DYN_B };

/* ---- block-topk ---- */

/* Keys of block HOT share a direction u that every query leans towards: pooled scores put
 * HOT first in every query block that does not force it, so k = 4 (3 forced + 1) keeps it. */
Test(block_topk, keeps_planted_hot_block)
{
    enum { N = 1024, D = 64, HOT = 5 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.5, 11);
    struct ab_rng r;
    ab_rng_init(&r, 5, 0);
    float u[D];
    fx_unit(u, D, &r);
    for (int64_t j = HOT * BS; j < (HOT + 1) * BS; j++)
        for (int64_t c = 0; c < D; c++) L.k[j * D + c] += 3.0f * u[c];
    for (int64_t i = 0; i < N; i++)
        for (int64_t c = 0; c < D; c++) L.q[i * D + c] += 3.0f * u[c];
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    fx_run_checked(fx_method("block-topk"), &p, 4, &led, &keep);
    int64_t rows = 0;
    for (int64_t i = (HOT + 3) * BS; i < N; i++, rows++) {
        /* the hot block whole, the non-forced block next to it not at all */
        for (int64_t j = HOT * BS; j < (HOT + 1) * BS; j++)
            cr_assert(ab_keep_has(&keep, i, j), "row %ld lost hot key %ld", (long)i, (long)j);
        cr_assert(!ab_keep_has(&keep, i, (HOT + 1) * BS), "row %ld", (long)i);
        int64_t b = i / BS;
        cr_assert_eq(ab_keep_count(&keep, i), 3 * BS + (i - b * BS + 1));
    }
    cr_assert_gt(rows, 0);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* Independent closed form of the block ledger: query block b keeps
 * m_b = min(b + 1, max(k, min(b + 1, 3))) blocks, row i of it (m_b - 1) B + i - bB + 1 cells. */
static double block_cells(int64_t n, int64_t k)
{
    double cells = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t b = i / BS, m = b + 1 < 3 ? b + 1 : (k > 3 ? k : 3);
        if (m > b + 1) m = b + 1;
        cells += (double)((m - 1) * BS + (i - b * BS + 1));
    }
    return cells;
}

Test(block_topk, ledger_follows_formula)
{
    enum { N = 1000, D = 32 }; /* a short last block */
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 12);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("block-topk");
    cr_assert(m->flags & AB_METHOD_ANALYTIC && m->cost && m->flags & AB_METHOD_SELECTS);
    int64_t nb = (N + BS - 1) / BS;
    double prev = 0;
    for (int64_t k = 1; k <= nb + 2; k++) {
        struct ab_ledger c = {0}, led;
        struct ab_keep keep;
        cr_assert_eq(m->cost(&p, (double)k, &c), AB_OK);
        fx_run_checked(m, &p, (double)k, &led, &keep);
        cr_expect(!memcmp(&c, &led, sizeof c), "k %ld: cost() differs from run", (long)k);
        cr_expect_eq(c.cells, block_cells(N, k), "k %ld: %.0f cells", (long)k, c.cells);
        cr_expect_eq(c.flops_attend, 4.0 * D * c.cells);
        /* 2nd pooling additions + 2 nb^2 d block scores */
        cr_expect_eq(c.flops_select, 2.0 * N * D + 2.0 * (double)(nb * nb) * D);
        cr_expect_geq(c.cells, prev);
        prev = c.cells;
        ab_keep_free(&keep);
    }
    cr_expect_eq(prev, (double)N * (N + 1) / 2, "the largest k keeps every allowed cell");
    fx_layer_free(&L);
}

Test(block_topk, dense_at_max_knob)
{
    enum { N = 1000, D = 64 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 13);
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    double err = fx_run_checked(fx_method("block-topk"), &p, N, &led, &keep);
    cr_expect_leq(err, 1e-5, "rel_l2 %g", err);
    cr_expect_eq(led.cells, ab_problem_allowed_cells(&p));
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- block-oracle ---- */

Test(block_oracle, recall_at_least_topk)
{
    enum { N = 1024, D = 64 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 3.0, 14);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *top = fx_method("block-topk"), *orc = fx_method("block-oracle");
    cr_assert(orc->flags & AB_METHOD_ORACLE && orc->flags & AB_METHOD_ANALYTIC);
    const int64_t ks[] = {1, 3, 4, 6, 8, 12, 16};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        struct ab_keep kt, ko;
        struct ab_ledger lt, lo;
        fx_run_checked(top, &p, (double)ks[t], &lt, &kt);
        fx_run_checked(orc, &p, (double)ks[t], &lo, &ko);
        double rt = fx_recall(&p, &kt), ro = fx_recall(&p, &ko);
        cr_log_info("block-oracle k %ld: recall oracle %.4f, topk %.4f", (long)ks[t], ro, rt);
        cr_expect_geq(ro, rt - 1e-9, "k %ld: oracle %.6f < topk %.6f", (long)ks[t], ro, rt);
        /* same unit, same forced blocks: same cells; the oracle's selection is not counted */
        cr_expect_eq(lo.cells, lt.cells);
        cr_expect_eq(lo.flops_select, 0.0);
        ab_keep_free(&kt);
        ab_keep_free(&ko);
    }
    fx_layer_free(&L);
}

Test(block_oracle, ledger_and_dense_at_max_knob)
{
    enum { N = 1000, D = 64 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 15);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("block-oracle");
    for (int64_t k = 1; k <= 5; k++) {
        struct ab_ledger c = {0};
        cr_assert_eq(m->cost(&p, (double)k, &c), AB_OK);
        cr_expect_eq(c.cells, block_cells(N, k));
        cr_expect_eq(c.flops_select, 0.0);
        cr_expect_eq(c.ops_other, c.cells, "one exp per kept cell, nothing for selection");
    }
    struct ab_keep keep;
    struct ab_ledger led;
    double err = fx_run_checked(m, &p, N, &led, &keep);
    cr_expect_leq(err, 1e-5, "rel_l2 %g", err);
    cr_expect_eq(led.cells, ab_problem_allowed_cells(&p));
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- vertical-slash ---- */

/* A column COL every query reads (a shared direction u on q and on key COL) and a diagonal at
 * offset DELTA (query i matches key i - DELTA through random vectors r_t). */
static void plant_column_and_diagonal(struct fx_layer *L, int64_t col, int64_t delta, double a_col,
                                      double a_diag)
{
    int64_t n = L->n, d = L->d;
    struct ab_rng r;
    ab_rng_init(&r, 21, 0);
    float *u = malloc(sizeof(float) * d), *rt = malloc(sizeof(float) * n * d); /* (d), (n, d) */
    fx_unit(u, d, &r);
    for (int64_t t = 0; t < n; t++) fx_unit(rt + t * d, d, &r);
    for (int64_t c = 0; c < d; c++) L->k[col * d + c] += (float)a_col * u[c];
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < d; c++) {
            L->q[i * d + c] += (float)a_col * u[c];
            L->k[i * d + c] += (float)a_diag * rt[i * d + c];
            if (i >= delta) L->q[i * d + c] += (float)a_diag * rt[(i - delta) * d + c];
        }
    free(u), free(rt);
}

Test(vertical_slash, finds_planted_column_and_diagonal)
{
    enum { N = 1024, D = 64, COL = 300, DELTA = 200, K = 8 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.3, 16);
    plant_column_and_diagonal(&L, COL, DELTA, 8.0, 8.0);
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    fx_run_checked(fx_method("vertical-slash"), &p, K, &led, &keep);
    for (int64_t i = 0; i < N; i++) {
        if (i >= COL) cr_assert(ab_keep_has(&keep, i, COL), "row %ld lost the column", (long)i);
        if (i >= DELTA)
            cr_assert(ab_keep_has(&keep, i, i - DELTA), "row %ld lost the diagonal", (long)i);
        /* a row keeps at most K columns and K slashes */
        cr_assert_leq(ab_keep_count(&keep, i), 2 * K);
    }
    /* far from the probe too: the lines hold for every row */
    cr_assert(ab_keep_has(&keep, DELTA + 3, 3));
    double density = led.cells / ab_problem_allowed_cells(&p);
    cr_log_info("vertical-slash k %d: density %.4f", K, density);
    cr_expect_lt(density, 0.05);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

Test(vertical_slash, ledger_follows_formula)
{
    enum { N = 1000, D = 64, LP = 64 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 17);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("vertical-slash");
    cr_assert(!(m->flags & AB_METHOD_ANALYTIC) && !m->cost && m->flags & AB_METHOD_SELECTS);
    /* 2 L n d for Q_probe K^T + 4 per probe cell, P = L n - L (L - 1) / 2 */
    double probe = (double)LP * N - (double)LP * (LP - 1) / 2;
    double prev = 0;
    const double ks[] = {1, 4, 16, 64, 200, 500, 999};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        struct ab_keep keep;
        struct ab_ledger led;
        fx_run_checked(m, &p, ks[t], &led, &keep);
        cr_expect_eq(led.flops_select, 2.0 * LP * N * D + 4.0 * probe);
        cr_expect_eq(led.flops_attend, 4.0 * D * led.cells);
        cr_expect_geq(led.cells, prev, "cells must grow with k");
        prev = led.cells;
        /* each row keeps at most k_v columns + k_s slashes (forced lines: 1 and 3 at n = 1000) */
        int64_t kv = ks[t] > 1 ? (int64_t)ks[t] : 1, kk = ks[t] > 3 ? (int64_t)ks[t] : 3;
        for (int64_t i = 0; i < N; i++) cr_assert_leq(ab_keep_count(&keep, i), kv + kk);
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

Test(vertical_slash, dense_at_max_knob)
{
    enum { N = 1000, D = 64 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 18);
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    double err = fx_run_checked(fx_method("vertical-slash"), &p, N, &led, &keep);
    cr_expect_leq(err, 1e-5, "rel_l2 %g", err);
    cr_expect_eq(led.cells, ab_problem_allowed_cells(&p));
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- flexprefill ---- */

/* A peaked head (every query reads one planted column) needs few lines to cover 0.9 of the
 * probe's mass; a diffuse one (logits near zero) needs many. tau = 0 forces the vertical-slash
 * pattern on both so the line counts compare; the method itself (tau 0.1) keeps fewer cells on
 * the peaked head whichever pattern it picks. */
Test(flexprefill, fewer_lines_on_peaked_head)
{
    enum { N = 1024, D = 64 };
    struct fx_layer peak, flat;
    fx_layer_make(&peak, 1, 1, N, D, 0.3, 19);
    fx_layer_make(&flat, 1, 1, N, D, 0.01, 19);
    plant_column_and_diagonal(&peak, 500, 1, 10.0, 0.0);
    struct ab_problem pp = fx_problem(&peak, 0, 0), pf = fx_problem(&flat, 0, 0);
    const struct ab_method *m = fx_method("flexprefill");
    fx_prepare(m, &pp), fx_prepare(m, &pf); /* the probe */
    struct ab_dyn_flex fp, ff;
    struct ab_ledger lp = {0}, lf = {0};
    cr_assert_eq(ab_dyn_flex_select(&pp, 0.9, 0.0, &fp, &lp), AB_OK);
    cr_assert_eq(ab_dyn_flex_select(&pf, 0.9, 0.0, &ff, &lf), AB_OK);
    cr_assert(!fp.query_aware && !ff.query_aware);
    cr_log_info("flexprefill lines: peaked %ld + %ld, diffuse %ld + %ld (js %.3f, %.3f)",
                (long)fp.n_col, (long)fp.n_slash, (long)ff.n_col, (long)ff.n_slash, fp.js, ff.js);
    cr_expect_lt(fp.n_col + fp.n_slash, (ff.n_col + ff.n_slash) / 4);
    cr_expect_lt(lp.cells, lf.cells);
    ab_dyn_flex_free(&fp);
    ab_dyn_flex_free(&ff);

    struct ab_keep kp, kf;
    fx_run_checked(m, &pp, 0.9, &lp, &kp);
    fx_run_checked(m, &pf, 0.9, &lf, &kf);
    cr_log_info("flexprefill density at gamma 0.9: peaked %.4f, diffuse %.4f",
                lp.cells / ab_problem_allowed_cells(&pp), lf.cells / ab_problem_allowed_cells(&pf));
    cr_expect_lt(lp.cells, lf.cells / 4);
    /* the planted column is kept by every row that sees it */
    for (int64_t i = 500; i < N; i++) cr_assert(ab_keep_has(&kp, i, 500));
    ab_keep_free(&kp);
    ab_keep_free(&kf);
    fx_unprepare(m, &pp), fx_unprepare(m, &pf);
    fx_layer_free(&peak);
    fx_layer_free(&flat);
}

/* Selection FLOPs per flexprefill.c: every head 2Bnd + 4P + nd + Bd + 2 nb d + n; vertical-slash
 * heads + 4n; query-aware heads + nd + 2 nb^2 d + 4E, E = nb (nb + 1) / 2. */
static double flex_select_flops(int64_t n, int64_t d, int query_aware)
{
    double nb = (double)((n + BS - 1) / BS), P = (double)BS * n - (double)BS * (BS - 1) / 2;
    double f = 2.0 * BS * n * d + 4 * P + (double)n * d + (double)BS * d + 2 * nb * d + n;
    return f + (query_aware ? (double)n * d + 2 * nb * nb * d + 4 * nb * (nb + 1) / 2 : 4.0 * n);
}

Test(flexprefill, ledger_follows_formula)
{
    enum { N = 1000, D = 64 };
    struct fx_layer peak, flat;
    fx_layer_make(&peak, 1, 1, N, D, 0.3, 20);
    fx_layer_make(&flat, 1, 1, N, D, 0.01, 20);
    plant_column_and_diagonal(&peak, 400, 1, 10.0, 0.0);
    const struct ab_method *m = fx_method("flexprefill");
    cr_assert(!(m->flags & AB_METHOD_ANALYTIC) && !m->cost && m->flags & AB_METHOD_SELECTS);
    struct fx_layer *layers[] = {&peak, &flat};
    int seen[2] = {0, 0};
    for (int t = 0; t < 2; t++) {
        struct ab_problem p = fx_problem(layers[t], 0, 0);
        fx_prepare(m, &p);
        double prev = 0;
        for (double g = 0; g <= 1.0001; g += 0.125) {
            struct ab_dyn_flex f;
            struct ab_ledger sel = {0}, led;
            struct ab_keep keep;
            cr_assert_eq(ab_dyn_flex_select(&p, g, 0.1, &f, &sel), AB_OK);
            fx_run_checked(m, &p, g, &led, &keep);
            cr_expect(!memcmp(&sel, &led, sizeof sel));
            cr_expect_eq(led.flops_select, flex_select_flops(N, D, f.query_aware),
                         "gamma %g, query-aware %d: %.0f", g, f.query_aware, led.flops_select);
            cr_expect_geq(led.cells, prev, "cells must grow with gamma");
            prev = led.cells;
            seen[f.query_aware] = 1;
            ab_dyn_flex_free(&f);
            ab_keep_free(&keep);
        }
        fx_unprepare(m, &p);
    }
    cr_expect(seen[0] && seen[1], "both patterns exercised (peaked: lines, diffuse: blocks)");
    fx_layer_free(&peak);
    fx_layer_free(&flat);
}

Test(flexprefill, dense_at_max_knob)
{
    enum { N = 1000, D = 64 };
    struct fx_layer L, F;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 22);
    fx_layer_make(&F, 1, 1, N, D, 0.01, 22); /* a query-aware head */
    struct fx_layer *layers[] = {&L, &F};
    for (int t = 0; t < 2; t++) {
        struct ab_problem p = fx_problem(layers[t], 0, 0);
        struct ab_keep keep;
        struct ab_ledger led;
        double err = fx_run_checked(fx_method("flexprefill"), &p, 1.0, &led, &keep);
        cr_expect_leq(err, 1e-5, "rel_l2 %g", err);
        cr_expect_eq(led.cells, ab_problem_allowed_cells(&p));
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
    fx_layer_free(&F);
}

/* ---- all four ---- */

static const char *const dynamic_methods[] = {"block-topk", "block-oracle", "vertical-slash",
                                              "flexprefill"};

/* A knob a third of the way up the method's range. */
static double knob_third(const struct ab_method *m, const struct ab_problem *p)
{
    double lo, hi;
    ab_method_knob_range(m, p, &lo, &hi);
    double x = lo + (hi - lo) / 3;
    return m->knob.integer ? floor(x) : x;
}

/* Tied positions (two tokens per position) let rows see keys past their own index: the block
 * methods' closed-form cost no longer holds and cost() must count from the selection. */
Test(dynamic, tied_positions)
{
    enum { N = 300, D = 32 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 23);
    for (int64_t i = 0; i < N; i++) L.pos[i] = (int32_t)(i / 2);
    struct ab_problem p = fx_problem(&L, 0, 0);
    cr_assert(!ab_dyn_standard(p.h));
    for (size_t t = 0; t < 4; t++) {
        const struct ab_method *m = fx_method(dynamic_methods[t]);
        double lo, hi;
        ab_method_knob_range(m, &p, &lo, &hi);
        const double knobs[] = {lo, knob_third(m, &p), hi};
        for (int s = 0; s < 3; s++) {
            struct ab_keep keep;
            struct ab_ledger led;
            double err = fx_run_checked(m, &p, knobs[s], &led, &keep);
            for (int64_t r = 0; r < N; r++)
                for (int64_t j = ab_head_visible(p.h, r); j < N; j++)
                    cr_assert(!ab_keep_has(&keep, r, j), "%s keeps a masked key", m->name);
            if (m->cost) {
                struct ab_ledger c = {0};
                cr_assert_eq(m->cost(&p, knobs[s], &c), AB_OK);
                cr_expect(!memcmp(&c, &led, sizeof c), "%s: cost() differs from run", m->name);
            }
            if (s == 2) cr_expect_leq(err, 1e-5, "%s: rel_l2 %g at the largest knob", m->name, err);
            ab_keep_free(&keep);
        }
    }
    fx_layer_free(&L);
}

/* Short sequences: fewer rows than a block or the probe, a block and one row, a few blocks. */
Test(dynamic, short_sequences)
{
    const int64_t ns[] = {1, 7, 64, 65, 130};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        struct fx_layer L;
        fx_layer_make(&L, 1, 1, ns[a], 16, 1.0, 24);
        struct ab_problem p = fx_problem(&L, 0, 0);
        for (size_t t = 0; t < 4; t++) {
            const struct ab_method *m = fx_method(dynamic_methods[t]);
            double lo, hi;
            ab_method_knob_range(m, &p, &lo, &hi);
            struct ab_keep keep;
            struct ab_ledger led;
            fx_run_checked(m, &p, lo, &led, &keep);
            cr_expect_geq(led.cells, (double)ns[a], "%s: every row keeps its own key", m->name);
            ab_keep_free(&keep);
            double err = fx_run_checked(m, &p, hi, &led, &keep);
            cr_expect_leq(err, 1e-5, "%s, n %ld: rel_l2 %g", m->name, (long)ns[a], err);
            ab_keep_free(&keep);
        }
        fx_layer_free(&L);
    }
}
