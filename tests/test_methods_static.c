/* test_methods_static.c - the static patterns of static_sparse.c (dilated, bigbird, power,
 * shard): each keeps exactly the keys its rule names, checked key by key against an independent
 * statement of the rule, with the ledger equal to the kept cells (fx_run_checked). The generic
 * battery (test_methods.c) runs the properties every method shares. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/method.h"
#include "methods_fixtures.h"

static int is_pow2(int64_t t)
{
    for (int64_t x = 1; x <= t; x *= 2)
        if (x == t) return 1;
    return 0;
}

/* dilated: the 4 sinks and K taps at distances floor(t m / K), m = v - 4: key at distance delta
 * is a tap iff the first t with t m / K >= delta, t* = ceil(delta K / m), lands on it
 * (floor(t* m / K) == delta) and t* < K; every key when K >= m */
static int dilated_tap(int64_t delta, int64_t m, int64_t K)
{
    if (K >= m) return 1;
    int64_t t = (delta * K + m - 1) / m;
    return t < K && t * m / K == delta;
}

Test(dilated, keeps_sinks_and_evenly_spread_taps)
{
    enum { N = 320, D = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 31);
    const int64_t taps[] = {1, 7, 40, 100, 319};
    for (int m = 0; m <= 32; m += 32) {
        struct ab_problem p = fx_problem(&L, 0, m);
        for (size_t t = 0; t < sizeof taps / sizeof taps[0]; t++) {
            struct ab_keep keep;
            struct ab_ledger led;
            fx_run_checked(fx_method("dilated"), &p, (double)taps[t], &led, &keep);
            for (int64_t row = 0; row < p.n_rows; row++) {
                int64_t i = p.rows[row], ctx = i + 1 - 4;
                for (int64_t j = 0; j < N; j++) {
                    int want = j <= i && (j < 4 || dilated_tap(i - j, ctx, taps[t]));
                    cr_assert_eq(ab_keep_has(&keep, row, j), want, "K %ld row %ld key %ld",
                                 (long)taps[t], (long)i, (long)j);
                }
                cr_assert_leq(ab_keep_count(&keep, row), 4 + taps[t]);
            }
            ab_keep_free(&keep);
        }
        /* a whole dilation: m = 316 - 4 = 312 keys past the sinks of row 315, K = 104: r = 3 */
        if (m == 0) {
            struct ab_keep keep;
            struct ab_ledger led;
            fx_run_checked(fx_method("dilated"), &p, 104, &led, &keep);
            for (int64_t j = 4; j <= 315; j++)
                cr_assert_eq(ab_keep_has(&keep, 315, j), (315 - j) % 3 == 0, "key %ld", (long)j);
            ab_keep_free(&keep);
        }
        /* K = n: every allowed cell */
        struct ab_keep keep;
        struct ab_ledger led;
        double err = fx_run_checked(fx_method("dilated"), &p, N, &led, &keep);
        cr_expect_leq(err, 1e-5);
        cr_expect_eq(led.cells, ab_problem_allowed_cells(&p));
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

/* power: exactly the diagonal block, the window, the power-of-two block distances and block 0,
 * with blocks of B = round(64 n / 32768) keys (4 at n = 2048) */
Test(power, keeps_exactly_power_of_two_distances_and_its_window)
{
    enum { N = 2048, D = 16, B = 4 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 32);
    const int64_t windows[] = {1, 3, 10, 100};
    for (int m = 0; m <= 64; m += 64) {
        struct ab_problem p = fx_problem(&L, 0, m);
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
            struct ab_keep keep;
            struct ab_ledger led;
            fx_run_checked(fx_method("power"), &p, (double)windows[w], &led, &keep);
            for (int64_t row = 0; row < p.n_rows; row += 7) {
                int64_t i = p.rows[row], qb = i / B;
                for (int64_t j = 0; j <= i; j++) {
                    int64_t t = qb - j / B;
                    int want = t == 0 || t < windows[w] || is_pow2(t) || j < B;
                    cr_assert_eq(ab_keep_has(&keep, row, j), want, "W %ld row %ld key %ld",
                                 (long)windows[w], (long)i, (long)j);
                }
                for (int64_t j = i + 1; j < N; j++) cr_assert(!ab_keep_has(&keep, row, j));
            }
            if (windows[w] == 1 && m == 0) {
                /* the far end of the last row: blocks at distance 128 and 256 (512 and 1024
                 * keys back) are kept, their neighbours not */
                int64_t i = N - 1, qb = i / B;
                cr_assert(ab_keep_has(&keep, i, (qb - 256) * B));
                cr_assert(!ab_keep_has(&keep, i, (qb - 257) * B));
                cr_assert(ab_keep_has(&keep, i, (qb - 128) * B + 3));
                cr_log_info("power W 1: density %.4f", led.cells / ab_problem_allowed_cells(&p));
            }
            ab_keep_free(&keep);
        }
    }
    fx_layer_free(&L);
}

/* shard: outside the common window every visible key is read by exactly one head of the layer,
 * the one whose index matches it mod S = 4; inside the window by every head */
Test(shard, union_over_heads_covers_every_key_once)
{
    enum { N = 320, D = 16, H = 4, W = 17 };
    struct fx_layer L;
    fx_layer_make(&L, H, 2, N, D, 1.0, 33);
    struct ab_keep keep[H];
    for (int64_t h = 0; h < H; h++) {
        struct ab_problem p = fx_problem(&L, h, 0);
        struct ab_ledger led;
        fx_run_checked(fx_method("shard"), &p, W, &led, &keep[h]);
        cr_log_info("shard head %ld: density %.4f", (long)h,
                    led.cells / ab_problem_allowed_cells(&p));
    }
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) {
            int readers = 0, owner = -1;
            for (int64_t h = 0; h < H; h++)
                if (ab_keep_has(&keep[h], i, j)) readers++, owner = (int)h;
            if (j > i)
                cr_assert_eq(readers, 0);
            else if (i - j < W)
                cr_assert_eq(readers, H, "row %ld key %ld", (long)i, (long)j);
            else {
                cr_assert_eq(readers, 1, "row %ld key %ld read by %d heads", (long)i, (long)j,
                             readers);
                cr_assert_eq(owner, j % H);
            }
        }
    for (int64_t h = 0; h < H; h++) ab_keep_free(&keep[h]);
    fx_layer_free(&L);
}

/* bigbird: window, G global keys, and w random keys per block of 64 rows drawn from the keys
 * outside them that the whole block sees: the same for every row of a block, replayed by the
 * same seed and changed by another */
Test(bigbird, window_globals_and_seeded_random_keys)
{
    enum { N = 1024, D = 16, W = 20, BB = 64 };
    struct fx_layer L;
    fx_layer_make(&L, 2, 1, N, D, 1.0, 34);
    int64_t G = 4; /* round(128 * 1024 / 32768) */
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep keep, again, other;
    struct ab_ledger led;
    fx_run_checked(fx_method("bigbird"), &p, W, &led, &keep);
    fx_run_checked(fx_method("bigbird"), &p, W, &led, &again);
    p.seed = 2;
    fx_run_checked(fx_method("bigbird"), &p, W, &led, &other);
    int64_t differ = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t first = i / BB * BB, hi = first + 1 - W, n_rand = 0;
        for (int64_t j = 0; j <= i; j++) {
            int in_window = i - j < W, global = j < G, cand = j >= G && j < hi;
            int kept = ab_keep_has(&keep, i, j);
            if (in_window || global)
                cr_assert(kept, "row %ld key %ld", (long)i, (long)j);
            else if (!cand)
                cr_assert(!kept, "row %ld key %ld", (long)i, (long)j);
            else {
                n_rand += kept;
                /* shared across the block */
                cr_assert_eq(kept, ab_keep_has(&keep, first, j), "row %ld key %ld", (long)i,
                             (long)j);
                differ += kept != ab_keep_has(&other, i, j);
            }
        }
        int64_t want = hi - G < W ? (hi - G > 0 ? hi - G : 0) : W;
        cr_assert_eq(n_rand, want, "row %ld: %ld random keys", (long)i, (long)n_rand);
        cr_assert(!memcmp(keep.bits + i * keep.words, again.bits + i * again.words,
                          sizeof(uint64_t) * (size_t)keep.words));
    }
    cr_expect_gt(differ, 0, "another seed draws other random keys");
    /* the random keys are spread over the candidates, not bunched at one end */
    int64_t i = N - 1, lo_half = 0, hi_half = 0, hi = (N - BB) + 1 - W;
    for (int64_t j = G; j < hi; j++)
        if (ab_keep_has(&keep, i, j)) *(j < (G + hi) / 2 ? &lo_half : &hi_half) += 1;
    cr_expect(lo_half >= 3 && hi_half >= 3, "%ld / %ld", (long)lo_half, (long)hi_half);
    ab_keep_free(&keep), ab_keep_free(&again), ab_keep_free(&other);
    fx_layer_free(&L);
}
