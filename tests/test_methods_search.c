/* test_methods_search.c - the dynamic prefill methods that search for their keys with an
 * estimate (xattention, hip, routing, hyper): each method's defining property on a hand-built
 * head, its ledger against the formula its file states, and equality with dense at its largest
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

/* ---- xattention ---- */

/* Keys of block HOT share a direction every query leans towards: the antidiagonal scores rank
 * it first, so as tau grows from 0 the first block a query block adds beyond its two forced
 * ones (block 0, the diagonal) is HOT. */
Test(xattention, ranks_planted_hot_block_first)
{
    enum { N = 1024, D = 64, HOT = 5 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.5, 41);
    struct ab_rng r;
    ab_rng_init(&r, 7, 0);
    float u[D];
    fx_unit(u, D, &r);
    fx_add_dir(L.k, D, HOT * BS, (HOT + 1) * BS, u, 3.0f);
    fx_add_dir(L.q, D, 0, N, u, 3.0f);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("xattention");
    int64_t nb = N / BS, first[N / BS];
    for (int64_t b = 0; b < nb; b++) first[b] = -1;
    for (double tau = 0.02; tau < 0.99; tau += 0.02) {
        struct ab_keep keep;
        struct ab_ledger led;
        fx_run_checked(m, &p, tau, &led, &keep);
        for (int64_t b = HOT + 2; b < nb; b++) {
            if (first[b] >= 0) continue;
            int64_t i = b * BS; /* the block's first row: only whole blocks below it */
            for (int64_t c = 1; c < b; c++)
                if (ab_keep_has(&keep, i, c * BS)) first[b] = c;
        }
        ab_keep_free(&keep);
    }
    for (int64_t b = HOT + 2; b < nb; b++)
        cr_expect_eq(first[b], HOT, "query block %ld adds block %ld first", (long)b,
                     (long)first[b]);
    fx_layer_free(&L);
}

/* selection 2 S d E_r + 3 E_r + 2 E_b, E_r = nr (nr + 1) / 2 reduced cells (nr = n / 8) and
 * E_b = nb (nb + 1) / 2 block pairs on standard positions; cells grow with tau; tau = 1 is
 * dense */
Test(xattention, ledger_follows_formula_and_dense_at_one)
{
    enum { N = 1024, D = 32, S = 8 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 42);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("xattention");
    cr_assert(!(m->flags & AB_METHOD_ANALYTIC) && m->flags & AB_METHOD_SELECTS);
    double nr = N / S, nb = N / BS, er = nr * (nr + 1) / 2, eb = nb * (nb + 1) / 2, prev = 0;
    for (double tau = 0.1; tau <= 1.0001; tau += 0.15) {
        struct ab_keep keep;
        struct ab_ledger led;
        double err = fx_run_checked(m, &p, tau > 1 ? 1 : tau, &led, &keep);
        cr_expect_eq(led.flops_select, 2.0 * S * D * er + 3 * er + 2 * eb, "tau %g", tau);
        cr_expect_eq(led.flops_attend, 4.0 * D * led.cells);
        cr_expect_geq(led.cells, prev);
        prev = led.cells;
        if (tau > 0.99) {
            cr_expect_leq(err, 1e-5);
            cr_expect_eq(led.cells, ab_problem_allowed_cells(&p));
        }
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}
