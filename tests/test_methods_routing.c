/* test_methods_routing.c - defining properties of the dynamic prefill methods that route query
 * blocks to key units found at run time: permuted-block, biformer, dhsa and sale, on hand-built
 * heads with planted structure; each method's ledger against the formula its file states; and
 * tied positions and short sequences. The generic battery (test_methods.c) runs the properties
 * every method shares. */
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

static const char *const routing_methods[] = {"permuted-block", "biformer", "dhsa", "sale"};
enum { N_ROUTING = sizeof routing_methods / sizeof routing_methods[0] };

/* ---- biformer ---- */

/* Query region b and key region partner(b) share a direction u_b of their own: routing with
 * k = 2 (the forced diagonal region plus one) sends every query region to its partner. */
Test(biformer, routes_query_region_to_planted_partner)
{
    enum { N = 1024, D = 64, NB = N / BS };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.3, 31);
    struct ab_rng r;
    ab_rng_init(&r, 31, 1);
    int64_t partner[NB];
    float u[D];
    for (int64_t b = 2; b < NB; b++) {
        partner[b] = (b * 5 + 3) % (b - 1); /* a region before b - 1 */
        fx_unit(u, D, &r);
        fx_add_dir(L.q, D, b * BS, (b + 1) * BS, u, 4.0f);
        fx_add_dir(L.k, D, partner[b] * BS, (partner[b] + 1) * BS, u, 4.0f);
    }
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    fx_run_checked(fx_method("biformer"), &p, 2, &led, &keep);
    for (int64_t i = 2 * BS; i < N; i++) {
        int64_t b = i / BS;
        for (int64_t j = 0; j <= i; j++) {
            int want = j / BS == partner[b] || j / BS == b;
            cr_assert_eq(ab_keep_has(&keep, i, j), want, "row %ld key %ld (partner %ld)", (long)i,
                         (long)j, (long)partner[b]);
        }
    }
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* The non-causal variant: no forced region, and a query region may be routed to a region after
 * it; k = 1 keeps exactly the partner's 64 keys. */
Test(biformer, full_mask_routes_to_a_later_region)
{
    enum { N = 512, D = 64, NB = N / BS };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.3, 32);
    L.heads[0].mask = AB_MASK_FULL;
    struct ab_rng r;
    ab_rng_init(&r, 32, 1);
    float u[D];
    for (int64_t b = 0; b < NB; b++) {
        fx_unit(u, D, &r);
        fx_add_dir(L.q, D, b * BS, (b + 1) * BS, u, 4.0f);
        fx_add_dir(L.k, D, ((b + 3) % NB) * BS, ((b + 3) % NB + 1) * BS, u, 4.0f);
    }
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    fx_run_checked(fx_method("biformer"), &p, 1, &led, &keep);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++)
            cr_assert_eq(ab_keep_has(&keep, i, j), j / BS == (i / BS + 3) % NB, "row %ld key %ld",
                         (long)i, (long)j);
    cr_expect_eq(led.cells, (double)N * BS);
    /* at the largest knob it is dense attention under the full mask */
    ab_keep_free(&keep);
    double err = fx_run_checked(fx_method("biformer"), &p, N, &led, &keep);
    cr_expect_leq(err, 1e-5, "rel_l2 %g", err);
    cr_expect_eq(led.cells, (double)N * N);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* Causal: region b keeps m_b = min(b + 1, k) regions; selection 2nd + 2 nb^2 d; a short last
 * region under the full mask is counted from the selection and still agrees with cost(). */
Test(biformer, ledger_follows_formula)
{
    enum { N = 1000, D = 32 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 33);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("biformer");
    cr_assert(m->flags & AB_METHOD_ANALYTIC && m->masks & AB_MASKS_FULL);
    int64_t nb = (N + BS - 1) / BS;
    for (int64_t k = 1; k <= nb + 1; k += 3) {
        struct ab_ledger led;
        struct ab_keep keep;
        fx_run_checked(m, &p, (double)k, &led, &keep);
        double cells = 0;
        for (int64_t i = 0; i < N; i++) {
            int64_t b = i / BS, mb = b + 1 < k ? b + 1 : k;
            cells += (double)((mb - 1) * BS + (i - b * BS + 1));
        }
        cr_expect_eq(led.cells, cells, "k %ld", (long)k);
        cr_expect_eq(led.flops_select, 2.0 * N * D + 2.0 * (double)(nb * nb) * D);
        ab_keep_free(&keep);
    }
    L.heads[0].mask = AB_MASK_FULL;
    for (int64_t k = 1; k <= nb; k += 5) {
        struct ab_ledger led;
        struct ab_keep keep;
        fx_run_checked(m, &p, (double)k, &led, &keep); /* cost() == run() == keep counts */
        cr_expect_leq(led.cells, (double)N * k * BS);
        cr_expect_geq(led.cells, (double)N * ((k - 1) * BS + N % BS));
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

/* ---- permuted-block ---- */

/* 64 hot keys, one every 8 keys across segment 1 (keys [576, 1088)), that every query leans
 * towards: in the original order they sit in 8 blocks, so block-topk with one free block
 * (k = 4) keeps 8 of them; sorting the segment puts all 64 into one permuted block, which
 * permuted-block keeps whole at the same cost. */
Test(permuted_block, gathers_scattered_hot_keys_into_one_block)
{
    enum { N = 2048, D = 64, SEG0 = 64 + 512 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.2, 34);
    struct ab_rng r;
    ab_rng_init(&r, 34, 1);
    float u[D];
    fx_unit(u, D, &r);
    for (int64_t t = 0; t < 64; t++) fx_add_dir(L.k, D, SEG0 + 8 * t, SEG0 + 8 * t + 1, u, 4.0f);
    fx_add_dir(L.q, D, 0, N, u, 8.0f);
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep kp, kt;
    struct ab_ledger lp, lt;
    fx_run_checked(fx_method("permuted-block"), &p, 4, &lp, &kp);
    fx_run_checked(fx_method("block-topk"), &p, 4, &lt, &kt);
    /* rows whose candidates include the whole segment: (nvb - 2) 64 >= 1088 */
    int64_t rows = 0;
    for (int64_t i = 19 * BS; i < N; i++, rows++) {
        int64_t hot = 0;
        for (int64_t t = 0; t < 64; t++) hot += ab_keep_has(&kp, i, SEG0 + 8 * t);
        cr_assert_eq(hot, 64, "row %ld keeps %ld of the 64 hot keys", (long)i, (long)hot);
        cr_assert_eq(ab_keep_count(&kp, i), ab_keep_count(&kt, i), "row %ld", (long)i);
    }
    cr_assert_gt(rows, 0);
    cr_expect_eq(lp.cells, lt.cells, "same cells as block-topk at the same k");
    ab_keep_free(&kp);
    ab_keep_free(&kt);
    /* attention recall of those rows: most of their mass is on the hot keys */
    struct ab_problem late = p;
    late.rows = p.rows + 19 * BS, late.n_rows = N - 19 * BS;
    fx_rel_l2(fx_method("permuted-block"), &late, 4, &lp, &kp);
    fx_rel_l2(fx_method("block-topk"), &late, 4, &lt, &kt);
    double rp = fx_recall(&late, &kp), rt = fx_recall(&late, &kt);
    cr_log_info("late rows: permuted-block recall %.4f, block-topk %.4f", rp, rt);
    cr_expect_gt(rp, 0.5);
    cr_expect_gt(rp, rt + 0.3);
    ab_keep_free(&kp);
    ab_keep_free(&kt);
    fx_layer_free(&L);
}

/* Cells equal block-topk's closed form; selection is block-topk's plus the permutation's. */
Test(permuted_block, ledger_follows_formula)
{
    enum { N = 1700, D = 32 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 35);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("permuted-block"), *top = fx_method("block-topk");
    int64_t nb = (N + BS - 1) / BS, ns = (N - BS) / 512 * 512;
    for (int64_t k = 1; k <= nb + 1; k += 4) {
        struct ab_ledger led, lt = {0};
        struct ab_keep keep;
        fx_run_checked(m, &p, (double)k, &led, &keep);
        cr_assert_eq(top->cost(&p, (double)k, &lt), AB_OK);
        cr_expect_eq(led.cells, lt.cells, "k %ld", (long)k);
        double extra = 64.0 * D + 3.0 * ns * D + 2.0 * nb * (ns / 64) * D;
        cr_expect_eq(led.flops_select, lt.flops_select + extra, "k %ld", (long)k);
        cr_expect_eq(led.ops_other, lt.ops_other + (double)(ns / 512) * 512 * 9, "k %ld", (long)k);
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

/* ---- dhsa ---- */

/* Sixteen planted topic segments of uneven length (each its own key direction) give 15 clear
 * similarity drops, so the chunks are the segments. Queries of the last segment ask for the
 * topic of segment 3: at f = 0.06 (58 .. 62 keys per row) they keep their own key, all of
 * segment 3, and the most recent tokens of one more chunk, which end on a planted boundary. */
Test(dhsa, keeps_the_planted_chunk_whole)
{
    enum { N = 1024, D = 64, NSEG = 16 };
    static const int64_t len[NSEG] = {40, 90, 64, 50, 78, 64, 33, 95,
                                      70, 60, 44, 80, 66, 56, 72, 62};
    int64_t start[NSEG + 1] = {0};
    for (int s = 0; s < NSEG; s++) start[s + 1] = start[s] + len[s];
    cr_assert_eq(start[NSEG], N);
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.2, 38);
    struct ab_rng r;
    ab_rng_init(&r, 38, 1);
    float topic[NSEG][D];
    for (int s = 0; s < NSEG; s++) {
        fx_unit(topic[s], D, &r);
        fx_add_dir(L.k, D, start[s], start[s + 1], topic[s], 8.0f);
    }
    fx_add_dir(L.q, D, start[NSEG - 1], N, topic[3], 4.0f);
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    const double f = 0.06;
    fx_run_checked(fx_method("dhsa"), &p, f, &led, &keep);
    for (int64_t i = start[NSEG - 1]; i < N; i++) {
        cr_assert(ab_keep_has(&keep, i, i));
        for (int64_t j = start[3]; j < start[4]; j++)
            cr_assert(ab_keep_has(&keep, i, j), "row %ld lost key %ld of the planted chunk",
                      (long)i, (long)j);
        cr_assert_eq(ab_keep_count(&keep, i), (int64_t)ceil(f * (double)(i + 1)), "row %ld",
                     (long)i);
        /* the rest is one run [lo, e) ending on a planted boundary (or at the row itself) */
        int64_t lo = -1, e = -1;
        for (int64_t j = 0; j < i; j++) {
            if ((j >= start[3] && j < start[4]) || !ab_keep_has(&keep, i, j)) continue;
            if (lo < 0) lo = j;
            cr_assert(e < 0 || e == j, "row %ld: a second run at key %ld", (long)i, (long)j);
            e = j + 1;
        }
        int on_boundary = e == i;
        for (int s = 1; s <= NSEG; s++) on_boundary |= e == start[s];
        cr_assert(on_boundary, "row %ld: run [%ld, %ld) does not end on a chunk boundary", (long)i,
                  (long)lo, (long)e);
    }
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* Row i keeps min(vis, max(1, ceil(f vis))) cells; selection 2(n-1)d + 4nd + 2 nc d + 2 nc^2 d
 * with nc = ceil(n / 64) chunks on random keys. */
Test(dhsa, ledger_follows_formula)
{
    enum { N = 1000, D = 32 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 39);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("dhsa");
    cr_assert(m->flags & AB_METHOD_ANALYTIC);
    double nc = (N + 63) / 64, prev = 0;
    const double fs[] = {0.001, 0.01, 0.05, 0.1, 0.3, 0.77, 1.0};
    for (size_t t = 0; t < sizeof fs / sizeof fs[0]; t++) {
        struct ab_ledger led;
        struct ab_keep keep;
        fx_run_checked(m, &p, fs[t], &led, &keep);
        double cells = 0;
        for (int64_t i = 0; i < N; i++) {
            double k = ceil(fs[t] * (double)(i + 1));
            cells += k < 1 ? 1 : k > i + 1 ? (double)(i + 1) : k;
        }
        cr_expect_eq(led.cells, cells, "f %g", fs[t]);
        cr_expect_eq(led.flops_select,
                     2.0 * (N - 1) * D + 4.0 * N * D + 2.0 * nc * D + 2.0 * nc * nc * D, "f %g",
                     fs[t]);
        cr_expect_gt(led.cells, prev);
        prev = led.cells;
        ab_keep_free(&keep);
    }
    cr_expect_eq(prev, (double)N * (N + 1) / 2);
    fx_layer_free(&L);
}

/* ---- sale ---- */

/* Queries of block QB and keys of block KB share a direction: in the 4-bit estimate the row
 * maxima of QB sit in KB, and at e = 0.5 (theta ~ 0.32) QB keeps exactly blocks 0, KB and its
 * diagonal. */
static void plant_needle_block(struct fx_layer *L, int64_t qb, int64_t kb, const float *u, float a)
{
    fx_add_dir(L->q, L->d, qb * BS, (qb + 1) * BS, u, a);
    fx_add_dir(L->k, L->d, kb * BS, (kb + 1) * BS, u, a);
}

static void expect_blocks(const struct ab_keep *keep, int64_t qb, int64_t kb)
{
    for (int64_t i = qb * BS; i < (qb + 1) * BS; i++)
        for (int64_t j = 0; j <= i; j++) {
            int want = j / BS == 0 || j / BS == kb || j / BS == qb;
            cr_assert_eq(ab_keep_has(keep, i, j), want, "row %ld key %ld (planted block %ld)",
                         (long)i, (long)j, (long)kb);
        }
}

Test(sale, keeps_the_planted_far_block)
{
    enum { N = 1024, D = 64, QB = 12, KB = 3 };
    struct fx_layer L;
    fx_layer_make(&L, 2, 1, N, D, 0.3, 40);
    struct ab_rng r;
    ab_rng_init(&r, 40, 1);
    float u[D];
    fx_unit(u, D, &r);
    plant_needle_block(&L, QB, KB, u, 6.0f);
    const struct ab_method *m = fx_method("sale");
    struct ab_problem p = fx_problem(&L, 0, 0), other = fx_problem(&L, 1, 0);
    struct ab_keep k1, k2, k3;
    struct ab_ledger l1, l2, l3;
    fx_run_checked(m, &p, 0.5, &l1, &k1);
    expect_blocks(&k1, QB, KB);
    /* another head in between, then the first again: the same selection bit for bit */
    fx_run_checked(m, &other, 0.5, &l2, &k2);
    ab_keep_free(&k2);
    fx_run_checked(m, &p, 0.5, &l3, &k3);
    cr_expect(!memcmp(&l1, &l3, sizeof l1));
    cr_expect(!memcmp(k1.bits, k3.bits, sizeof(uint64_t) * (size_t)(k1.n_rows * k1.words)));
    ab_keep_free(&k1);
    ab_keep_free(&k3);
    /* the same arrays changed in place: the needle moves to block 7 and so does the selection */
    plant_needle_block(&L, QB, KB, u, -6.0f);
    plant_needle_block(&L, QB, 7, u, 6.0f);
    fx_run_checked(m, &p, 0.5, &l1, &k1);
    expect_blocks(&k1, QB, 7);
    ab_keep_free(&k1);
    fx_layer_free(&L);
}

/* Selection E d / 4 with E = sum_b rows_b vis(last row of b): about 1/16 of dense. */
Test(sale, ledger_follows_formula)
{
    enum { N = 1000, D = 32 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 41);
    struct ab_problem p = fx_problem(&L, 0, 0);
    const struct ab_method *m = fx_method("sale");
    cr_assert(!(m->flags & AB_METHOD_ANALYTIC) && m->flags & AB_METHOD_SELECTS);
    double E = 0;
    for (int64_t b = 0; b * BS < N; b++) {
        int64_t i1 = (b + 1) * BS < N ? (b + 1) * BS : N;
        E += (double)(i1 - b * BS) * (double)i1;
    }
    double prev = 0;
    const double es[] = {0.01, 0.2, 0.5, 1, 2, 4, 8, 16};
    for (size_t t = 0; t < sizeof es / sizeof es[0]; t++) {
        struct ab_ledger led;
        struct ab_keep keep;
        fx_run_checked(m, &p, es[t], &led, &keep);
        cr_expect_eq(led.flops_select, E * D / 4, "e %g", es[t]);
        cr_expect_eq(led.flops_attend, 4.0 * D * led.cells);
        cr_expect_geq(led.cells, prev, "cells grow with e");
        prev = led.cells;
        ab_keep_free(&keep);
    }
    cr_expect_eq(prev, (double)N * (N + 1) / 2, "e = 16 is dense");
    double sel = E * D / 4 / ab_problem_dense_flops(&p);
    cr_log_info("sale: selection is %.4f of dense", sel);
    cr_expect(sel > 1.0 / 17 && sel < 1.0 / 14, "selection %g of dense", sel);
    fx_layer_free(&L);
}

/* ---- all four ---- */

/* Tied positions (two tokens per position) let rows see keys past their own index: costs are
 * counted from the selection, keep sets stay inside the mask, the largest knob is dense. */
Test(routing, tied_positions)
{
    enum { N = 1300, D = 32 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 36);
    for (int64_t i = 0; i < N; i++) L.pos[i] = (int32_t)(i / 2);
    struct ab_problem p = fx_problem(&L, 0, 0);
    for (int t = 0; t < N_ROUTING; t++) {
        const struct ab_method *m = fx_method(routing_methods[t]);
        double lo, hi;
        ab_method_knob_range(m, &p, &lo, &hi);
        double third = lo + (hi - lo) / 3;
        const double knobs[] = {lo, m->knob.integer ? floor(third) : third, hi};
        for (int s = 0; s < 3; s++) {
            struct ab_keep keep;
            struct ab_ledger led;
            double err = fx_run_checked(m, &p, knobs[s], &led, &keep);
            for (int64_t r = 0; r < N; r++)
                for (int64_t j = ab_head_visible(p.h, r); j < N; j++)
                    cr_assert(!ab_keep_has(&keep, r, j), "%s keeps a masked key", m->name);
            if (s == 2) cr_expect_leq(err, 1e-5, "%s: rel_l2 %g at the largest knob", m->name, err);
            ab_keep_free(&keep);
        }
    }
    fx_layer_free(&L);
}

/* Short sequences: fewer rows than a block, a block and one row, a few blocks. */
Test(routing, short_sequences)
{
    const int64_t ns[] = {1, 7, 64, 65, 130, 700};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        struct fx_layer L;
        fx_layer_make(&L, 1, 1, ns[a], 16, 1.0, 37);
        struct ab_problem p = fx_problem(&L, 0, 0);
        for (int t = 0; t < N_ROUTING; t++) {
            const struct ab_method *m = fx_method(routing_methods[t]);
            double lo, hi;
            ab_method_knob_range(m, &p, &lo, &hi);
            struct ab_keep keep;
            struct ab_ledger led;
            fx_run_checked(m, &p, lo, &led, &keep);
            cr_expect_geq(led.cells, (double)ns[a], "%s: every row keeps its own key", m->name);
            for (int64_t i = 0; i < ns[a]; i++)
                cr_expect(ab_keep_has(&keep, i, i), "%s, n %ld: row %ld lost its own key", m->name,
                          (long)ns[a], (long)i);
            ab_keep_free(&keep);
            double err = fx_run_checked(m, &p, hi, &led, &keep);
            cr_expect_leq(err, 1e-5, "%s, n %ld: rel_l2 %g", m->name, (long)ns[a], err);
            cr_expect_eq(led.cells, ab_problem_allowed_cells(&p), "%s, n %ld", m->name,
                         (long)ns[a]);
            ab_keep_free(&keep);
        }
        fx_layer_free(&L);
    }
}
