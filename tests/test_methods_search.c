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
#include "methods/routing.h"
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

/* ---- hip ---- */

/* A far token T where key similarity to every query peaks, falling off linearly with the
 * distance (the locality HiP's span scores rely on): with k = 1 the tree search of every query
 * block past it keeps exactly T besides the block's own keys. */
Test(hip, finds_planted_far_token_with_k_1)
{
    enum { N = 512, D = 64, T = 37, QB = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1e-6, 43);
    struct ab_rng r;
    ab_rng_init(&r, 9, 0);
    float u[D];
    fx_unit(u, D, &r);
    fx_add_dir(L.q, D, 0, N, u, 3.0f);
    for (int64_t j = 0; j < N; j++) {
        float a = 10.0f * (1.0f - (float)labs((long)(j - T)) / N);
        fx_add_dir(L.k, D, j, j + 1, u, a);
    }
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    fx_run_checked(fx_method("hip"), &p, 1, &led, &keep);
    int64_t rows = 0;
    for (int64_t i = 4 * QB; i < N; i++, rows++) {
        int64_t r0 = i / QB * QB;
        cr_assert(ab_keep_has(&keep, i, T), "row %ld lost the far token", (long)i);
        cr_assert_eq(ab_keep_count(&keep, i), 1 + (i - r0 + 1), "row %ld", (long)i);
    }
    cr_assert_gt(rows, 0);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* Independent statement of hip's ledger: per block of 16 with S0 = 16c searched keys, cells
 * min(k, S0) + (i - S0 + 1) per row; for S0 > k, L0 the smallest power of two with
 * ceil(S0 / L0) <= 2k, selection 2d (ceil(S0 / L0) + 2k log2 L0), plus n d for the block means */
Test(hip, ledger_follows_formula_and_dense_at_max)
{
    enum { N = 1000, D = 32 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 44);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("hip");
    cr_assert(m->flags & AB_METHOD_ANALYTIC && m->flags & AB_METHOD_SELECTS);
    const int64_t ks[] = {1, 5, 64, 300, 999, 1000};
    double prev = 0;
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        int64_t k = ks[t];
        double cells = 0, sel = (double)N * D;
        for (int64_t i = 0; i < N; i++) {
            int64_t S0 = i / 16 * 16;
            cells += (double)((k < S0 ? k : S0) + i - S0 + 1);
        }
        for (int64_t S0 = 0; S0 < N; S0 += 16) {
            if (S0 <= k) continue;
            int64_t L0 = 1, lv = 0;
            while ((S0 + L0 - 1) / L0 > 2 * k) L0 *= 2, lv++;
            sel += 2.0 * D * ((double)((S0 + L0 - 1) / L0) + 2.0 * k * lv);
        }
        struct ab_keep keep;
        struct ab_ledger led;
        double err = fx_run_checked(m, &p, (double)k, &led, &keep);
        cr_expect_eq(led.cells, cells, "k %ld", (long)k);
        cr_expect_eq(led.flops_select, sel, "k %ld", (long)k);
        cr_expect_geq(led.cells, prev);
        prev = led.cells;
        if (k >= N - 1) {
            cr_expect_leq(err, 1e-5, "k %ld: rel_l2 %g", (long)k, err);
            cr_expect_eq(led.cells, ab_problem_allowed_cells(&p));
        }
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

/* ---- routing ---- */

/* Queries i and their partners i - DELTA share a strong direction (4 directions, 6 pairs each;
 * the rest of the head is faint noise): k-means puts each query and its partner key in one
 * cluster, and at w = n / 16 (balanced clusters) the query reads its partner. */
Test(routing, puts_query_and_planted_partner_in_one_cluster)
{
    enum { N = 1024, D = 64, DELTA = 300, PAIRS = 24, GROUPS = 4 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.01, 45);
    struct ab_rng r;
    ab_rng_init(&r, 11, 0);
    int64_t qi[PAIRS];
    float u[GROUPS][D];
    for (int64_t g = 0; g < GROUPS; g++) fx_unit(u[g], D, &r);
    for (int64_t t = 0; t < PAIRS; t++) {
        qi[t] = DELTA + 20 + t * 29;
        fx_add_dir(L.q, D, qi[t], qi[t] + 1, u[t % GROUPS], 8.0f);
        fx_add_dir(L.k, D, qi[t] - DELTA, qi[t] - DELTA + 1, u[t % GROUPS], 8.0f);
    }
    struct ab_problem p = fx_problem(&L, 0, 0);
    int32_t qc[N], kc[N];
    cr_assert_eq(ab_routing_clusters(&p, qc, kc), AB_OK);
    for (int64_t t = 0; t < PAIRS; t++)
        cr_expect_eq(qc[qi[t]], kc[qi[t] - DELTA], "pair %ld: query in %d, partner in %d", (long)t,
                     qc[qi[t]], kc[qi[t] - DELTA]);
    struct ab_keep keep;
    struct ab_ledger led;
    fx_run_checked(fx_method("routing"), &p, N / 16, &led, &keep);
    for (int64_t t = 0; t < PAIRS; t++)
        cr_expect(ab_keep_has(&keep, qi[t], qi[t] - DELTA), "query %ld lost its partner",
                  (long)qi[t]);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* selection 6nd + 3 x 4ncd + 2 (2nd + 3cd) with c = 16 at every w; cells grow with w; each row
 * keeps at most w keys of its cluster and the window of round(256 n / 32768) = 8; w = n is
 * dense */
Test(routing, ledger_follows_formula_and_dense_at_max)
{
    enum { N = 1024, D = 32, C = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 46);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("routing");
    cr_assert(!(m->flags & AB_METHOD_ANALYTIC) && m->flags & AB_METHOD_SELECTS);
    double sel = 6.0 * N * D + 3 * 4.0 * N * C * D + 2 * (2.0 * N * D + 3.0 * C * D), prev = 0;
    int64_t wl = 8; /* round(256 * 1024 / 32768) */
    const int64_t ws[] = {1, 10, 64, 300, N};
    for (size_t t = 0; t < sizeof ws / sizeof ws[0]; t++) {
        struct ab_keep keep;
        struct ab_ledger led;
        double err = fx_run_checked(m, &p, (double)ws[t], &led, &keep);
        cr_expect_eq(led.flops_select, sel, "w %ld", (long)ws[t]);
        cr_expect_geq(led.cells, prev);
        prev = led.cells;
        for (int64_t i = 0; i < N; i++) cr_assert_leq(ab_keep_count(&keep, i), ws[t] + wl);
        if (ws[t] == N) {
            cr_expect_leq(err, 1e-5);
            cr_expect_eq(led.cells, ab_problem_allowed_cells(&p));
        }
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

/* ---- hyper ---- */

/* Independent statement of hyper's cells on standard positions: a segment of at most x rows is
 * exact causal; else its halves plus the rectangle, n_q n_k cells when n_k <= x + 14, else
 * n_q x (and 2 r d (n_q + n_k) selection FLOPs, r = 7). */
static void hyper_expect(int64_t s, int64_t e, int64_t x, int64_t d, double *cells, double *sel)
{
    int64_t len = e - s;
    if (len <= x) {
        *cells += (double)len * (double)(len + 1) / 2;
        return;
    }
    int64_t mid = s + len / 2, nq = e - mid, nk = mid - s;
    hyper_expect(s, mid, x, d, cells, sel);
    hyper_expect(mid, e, x, d, cells, sel);
    if (nk <= x + 14) {
        *cells += (double)nq * (double)nk;
    } else {
        *cells += (double)nq * (double)x;
        *sel += 2.0 * 7 * (double)d * (double)(nq + nk);
    }
}

/* b + m >= n is dense; so is any x at which every rectangle is exact; smaller x keep exactly
 * x keys per query in each approximate rectangle, as the ledger says */
Test(hyper, dense_when_b_plus_m_covers_n_and_ledger_follows_formula)
{
    enum { N = 1000, D = 32 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 47);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("hyper");
    cr_assert(m->flags & AB_METHOD_ANALYTIC && m->flags & AB_METHOD_SELECTS);
    const int64_t xs[] = {1, 16, 40, 100, 486, 500, 999, 1000};
    double prev = 0;
    for (size_t t = 0; t < sizeof xs / sizeof xs[0]; t++) {
        double cells = 0, sel = 0;
        hyper_expect(0, N, xs[t], D, &cells, &sel);
        struct ab_keep keep;
        struct ab_ledger led;
        double err = fx_run_checked(m, &p, (double)xs[t], &led, &keep);
        cr_expect_eq(led.cells, cells, "x %ld: %.0f cells", (long)xs[t], led.cells);
        cr_expect_eq(led.flops_select, sel, "x %ld", (long)xs[t]);
        cr_expect_geq(led.cells, prev);
        prev = led.cells;
        if (xs[t] >= N / 2 - 14) {
            cr_expect_leq(err, 1e-5, "x %ld: rel_l2 %g", (long)xs[t], err);
            cr_expect_eq(led.cells, ab_problem_allowed_cells(&p));
            cr_expect_eq(led.flops_select, 0.0);
        } else {
            cr_expect_gt(err, 1e-4, "x %ld approximates", (long)xs[t]);
        }
        cr_log_info("hyper x %ld: density %.4f, rel_l2 %.4f", (long)xs[t],
                    led.cells / ab_problem_allowed_cells(&p), err);
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

/* Queries and keys in one LSH bucket: a query whose key partner shares its direction (and
 * points away from everything else) is sorted next to it, so the block it reads holds the
 * partner even when x is a small fraction of the rectangle. */
Test(hyper, lsh_blocks_hold_planted_partners)
{
    enum { N = 1024, D = 64, PAIRS = 8, X = 64 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.05, 48);
    struct ab_rng r;
    ab_rng_init(&r, 13, 0);
    float u[D];
    int64_t found = 0;
    for (int64_t t = 0; t < PAIRS; t++) {
        int64_t i = 600 + 50 * t, j = 30 + 40 * t; /* the top rectangle: [512, 1024) x [0, 512) */
        fx_unit(u, D, &r);
        fx_add_dir(L.q, D, i, i + 1, u, 30.0f);
        fx_add_dir(L.k, D, j, j + 1, u, 30.0f);
    }
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    fx_run_checked(fx_method("hyper"), &p, X, &led, &keep);
    for (int64_t t = 0; t < PAIRS; t++) found += ab_keep_has(&keep, 600 + 50 * t, 30 + 40 * t);
    cr_log_info("hyper: %ld of %d planted partners read at x %d", (long)found, PAIRS, X);
    /* by chance alone a query reads x / 512 = 1/8 of the rectangle: one pair of 8; LSH with
     * 7 bits separates a pair at this angle now and then, so most, not all, are asked for */
    cr_expect_geq(found, PAIRS - 2, "%ld of %d partners found", (long)found, PAIRS);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}
