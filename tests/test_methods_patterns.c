/* test_methods_patterns.c - the defining property of each pattern row of static_shapes.c
 * (a-shape, tri-shape, strided, s2, s2-sink), moba.c, sampleattention.c and cca.c, on seeded
 * or hand-built heads: static patterns cell by cell against an independent formula of their
 * rule, the dynamic ones on heads where the rule's choice is known, cca against a
 * double-precision re-implementation of its rule. The generic battery (test_methods.c) runs
 * the properties every row shares. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/dynamic.h"
#include "methods/method.h"
#include "methods_fixtures.h"

enum { BS = 64 };

/* A rule: 1 when row i keeps key j (j <= i, standard positions). */
typedef int (*rule_fn)(const void *ctx, int64_t n, int64_t i, int64_t j);

/* Runs `name` at knob on head `head` of L (prefill, every row evaluated; fx_run_checked checks
 * the ledger against the keep set and cost()) and compares its keep set with `rule` cell by
 * cell. Returns the ledger's cells. */
static double check_rule(struct fx_layer *L, int64_t head, const char *name, double knob,
                         rule_fn rule, const void *ctx)
{
    struct ab_problem p = fx_problem(L, head, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    fx_run_checked(fx_method(name), &p, knob, &led, &keep);
    int64_t n = L->n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            int want = j <= i && rule(ctx, n, i, j);
            cr_assert_eq(ab_keep_has(&keep, i, j), want, "%s (head %ld, knob %g): row %ld key %ld",
                         name, (long)head, knob, (long)i, (long)j);
        }
    ab_keep_free(&keep);
    return led.cells;
}

/* ---- a-shape and tri-shape ---- */

struct shape_ctx {
    int64_t init_blocks, local_blocks, dense_from; /* dense_from: first dense row (n: none) */
};

static int shape_rule(const void *c, int64_t n, int64_t i, int64_t j)
{
    const struct shape_ctx *x = c;
    (void)n;
    if (i >= x->dense_from) return 1;
    return j / BS < x->init_blocks || j / BS > i / BS - x->local_blocks;
}

/* n = 700: I = ceil(round(128 * 700 / 32768) / 64) = 1 initial block; w = 150 rounds up to
 * L = 3 local blocks (the diagonal one and two before it); w = 129 and w = 192 keep the same
 * blocks, w = 128 one block fewer. */
Test(a_shape, keeps_initial_and_local_blocks_rounded_up)
{
    enum { N = 700, D = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 41);
    struct shape_ctx c3 = {1, 3, N}, c2 = {1, 2, N}, c_all = {1, (N + BS - 1) / BS, N};
    double cells150 = check_rule(&L, 0, "a-shape", 150, shape_rule, &c3);
    cr_expect_eq(check_rule(&L, 0, "a-shape", 129, shape_rule, &c3), cells150);
    cr_expect_eq(check_rule(&L, 0, "a-shape", 192, shape_rule, &c3), cells150);
    cr_expect_lt(check_rule(&L, 0, "a-shape", 128, shape_rule, &c2), cells150);
    check_rule(&L, 0, "a-shape", N, shape_rule, &c_all);
    /* streaming at the same w is token-granular with 4 sinks: fewer cells */
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_ledger st = {0};
    cr_assert_eq(fx_method("streaming")->cost(&p, 150, &st), AB_OK);
    cr_expect_lt(st.cells, cells150);
    fx_layer_free(&L);
}

/* tri-shape: the a-shape above, except rows of the last query block (T = 1 at n = 700: rows
 * 640 .. 699), which keep every key. */
Test(tri_shape, last_query_block_is_dense)
{
    enum { N = 700, D = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 42);
    struct shape_ctx c = {1, 3, (N / BS) * BS};
    double tri = check_rule(&L, 0, "tri-shape", 150, shape_rule, &c);
    struct shape_ctx a = {1, 3, N};
    double ash = check_rule(&L, 0, "a-shape", 150, shape_rule, &a);
    /* the difference is the dense tail's cells beyond a-shape's */
    double extra = 0;
    for (int64_t i = c.dense_from; i < N; i++) {
        int64_t kept = 0;
        for (int64_t j = 0; j <= i; j++) kept += shape_rule(&a, N, i, j);
        extra += (double)(i + 1 - kept);
    }
    cr_expect_gt(extra, 0);
    cr_expect_eq(tri, ash + extra);
    fx_layer_free(&L);
}

/* ---- strided ---- */

static int strided_rule(const void *c, int64_t n, int64_t i, int64_t j)
{
    int64_t l = *(const int64_t *)c;
    (void)n;
    return i - j < l || (i - j) % l == 0;
}

/* n = 400 (sqrt 20): stride 37 keeps the last 37 keys and distances 74, 111, ...; a stride
 * below 20 acts as 20. Unlike dilated (4 sinks, taps spread over the row's whole context), no
 * sinks and the same stride in every row. */
Test(strided, keeps_window_and_multiples_of_the_stride)
{
    enum { N = 400, D = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 43);
    int64_t l37 = 37, l20 = 20;
    check_rule(&L, 0, "strided", 37, strided_rule, &l37);
    double c20 = check_rule(&L, 0, "strided", 20, strided_rule, &l20);
    cr_expect_eq(check_rule(&L, 0, "strided", 5, strided_rule, &l20), c20);
    /* closed form of the ledger: min(i + 1, l) + floor(i / l) */
    double cells = 0;
    for (int64_t i = 0; i < N; i++) cells += (double)(AB_MIN(i + 1, 37) + i / 37);
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_ledger led = {0};
    cr_assert_eq(fx_method("strided")->cost(&p, 37, &led), AB_OK);
    cr_expect_eq(led.cells, cells);
    /* dilated differs: at about the same cells per row it keeps the sinks and other taps */
    struct ab_keep ks, kd;
    struct ab_ledger ls, ld;
    fx_run_checked(fx_method("strided"), &p, 37, &ls, &ks);
    fx_run_checked(fx_method("dilated"), &p, 47, &ld, &kd);
    cr_expect(ab_keep_has(&kd, N - 1, 1) && !ab_keep_has(&ks, N - 1, 1));
    int64_t differ = 0;
    for (int64_t j = 0; j < N; j++)
        differ += ab_keep_has(&ks, N - 1, j) != ab_keep_has(&kd, N - 1, j);
    cr_expect_gt(differ, 10);
    ab_keep_free(&ks);
    ab_keep_free(&kd);
    fx_layer_free(&L);
}

/* ---- s2 and s2-sink ---- */

struct s2_ctx {
    int64_t G, shift, sinks;
};

/* Key j's group: LongLoRA's roll by -shift over the keys past the sinks, cut into groups. */
static int64_t s2_group(const struct s2_ctx *x, int64_t n, int64_t j)
{
    int64_t m = n - x->sinks, t = j - x->sinks;
    return ((t - x->shift) % m + m) % m / x->G;
}

static int s2_rule(const void *c, int64_t n, int64_t i, int64_t j)
{
    const struct s2_ctx *x = c;
    if (j < x->sinks || i < x->sinks) return 1;
    return s2_group(x, n, i) == s2_group(x, n, j);
}

/* 4 heads: heads 0 and 1 use groups [64g, 64g + 64), heads 2 and 3 the groups shifted by 32
 * (the last rolled group wraps to keys 0..31 with causality in the original order); both cost
 * sum over groups of L (L + 1) / 2. n = 300 is not a multiple of G: a short last group. */
Test(s2, groups_shift_by_half_on_the_upper_half_of_heads)
{
    enum { N = 300, D = 16, G = 64 };
    struct fx_layer L;
    fx_layer_make(&L, 4, 2, N, D, 2.0, 44);
    struct s2_ctx plain = {G, 0, 0}, shifted = {G, G / 2, 0};
    double want = 4 * (G * (G + 1) / 2) + (N % G) * (N % G + 1) / 2;
    for (int64_t h = 0; h < 4; h++) {
        double cells = check_rule(&L, h, "s2", G, s2_rule, h < 2 ? &plain : &shifted);
        cr_expect_eq(cells, want, "head %ld: %g cells", (long)h, cells);
    }
    /* by hand: on a shifted head row 40 keeps 32..40 and not 31; on a plain one it keeps 0..40 */
    struct ab_problem p = fx_problem(&L, 2, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    fx_run_checked(fx_method("s2"), &p, G, &led, &keep);
    cr_expect(ab_keep_has(&keep, 40, 32) && !ab_keep_has(&keep, 40, 31));
    /* the wrapped group: rolled keys 256..299 hold original 288..299 and 0..31 */
    cr_expect(ab_keep_has(&keep, 295, 5) && ab_keep_has(&keep, 295, 288) &&
              !ab_keep_has(&keep, 295, 287));
    ab_keep_free(&keep);
    /* G = n: one group on every head, dense */
    struct s2_ctx all = {N, 0, 0}, all_shift = {N, N / 2, 0};
    check_rule(&L, 0, "s2", N, s2_rule, &all);
    check_rule(&L, 3, "s2", N, s2_rule, &all_shift);
    fx_layer_free(&L);
}

/* s2-sink: the first 4 keys kept by every row, groups cut over keys 4..n-1. */
Test(s2, sink_variant_keeps_the_first_four_keys)
{
    enum { N = 300, D = 16, G = 50 };
    struct fx_layer L;
    fx_layer_make(&L, 4, 2, N, D, 2.0, 45);
    struct s2_ctx plain = {G, 0, 4}, shifted = {G, G / 2, 4};
    check_rule(&L, 1, "s2-sink", G, s2_rule, &plain);
    check_rule(&L, 2, "s2-sink", G, s2_rule, &shifted);
    fx_layer_free(&L);
}

/* ---- moba ---- */

/* Key block HOT shares a direction u every query leans towards: with k = 2 (one past block and
 * the current one) every row past it keeps HOT whole and its own block up to itself, nothing
 * else; with k = 1 only its own block. B = round(512 * 1024 / 32768) = 16. */
Test(moba, keeps_the_planted_block_and_the_current_block)
{
    enum { N = 1024, D = 32, B = 16, HOT = 10 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.5, 46);
    struct ab_rng r;
    ab_rng_init(&r, 7, 0);
    float u[D];
    fx_unit(u, D, &r);
    fx_add_dir(L.k, D, HOT * B, (HOT + 1) * B, u, 3.0f);
    fx_add_dir(L.q, D, 0, N, u, 3.0f);
    struct ab_problem p = fx_problem(&L, 0, 0);
    for (int k = 1; k <= 2; k++) {
        struct ab_keep keep;
        struct ab_ledger led;
        fx_run_checked(fx_method("moba"), &p, k, &led, &keep);
        for (int64_t i = 0; i < N; i++) {
            int64_t cb = i / B;
            for (int64_t j = 0; j <= i; j++) {
                int want = j >= cb * B || (k == 2 && cb > HOT && j / B == HOT);
                if (k == 2 && cb <= HOT && cb > 0 && j < cb * B) continue; /* some other block */
                cr_assert_eq(ab_keep_has(&keep, i, j), want, "k %d row %ld key %ld", k, (long)i,
                             (long)j);
            }
            cr_assert_eq(ab_keep_count(&keep, i), AB_MIN(k - 1, cb) * B + (i - cb * B + 1),
                         "k %d row %ld", k, (long)i);
        }
        ab_keep_free(&keep);
    }
    fx_layer_free(&L);
}

/* ---- sampleattention ---- */

/* Key J is a vertical stripe: every query leans towards it, so each sampled row that sees J
 * puts nearly all its mass there, and at alpha = 0.5 the cover is J alone: every row keeps its
 * window of round(0.08 n) = 80 keys and J, nothing else. */
Test(sampleattention, keeps_a_planted_vertical_stripe)
{
    enum { N = 1000, D = 32, J = 137, W = 80 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 47);
    struct ab_rng r;
    ab_rng_init(&r, 9, 0);
    float u[D];
    fx_unit(u, D, &r);
    fx_add_dir(L.k, D, J, J + 1, u, 6.0f);
    fx_add_dir(L.q, D, 0, N, u, 6.0f);
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_keep keep;
    struct ab_ledger led;
    fx_run_checked(fx_method("sampleattention"), &p, 0.5, &led, &keep);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j <= i; j++) {
            int want = i - j < W || j == J;
            cr_assert_eq(ab_keep_has(&keep, i, j), want, "row %ld key %ld", (long)i, (long)j);
        }
    /* alpha = 1 keeps every column: dense */
    ab_keep_free(&keep);
    double e = fx_run_checked(fx_method("sampleattention"), &p, 1.0, &led, &keep);
    cr_expect_lt(e, 1e-5);
    cr_expect_eq(led.cells, (double)N * (N + 1) / 2);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- cca ---- */

/* cca's rule in double precision, straight from its definition: groups of 16, core token
 * weights softmax(s q_last . k_j) over the group, one softmax over the core tokens below the
 * window (rounded down to a group boundary) and the local keys. */
static void cca_reference(const struct ab_head *h, int64_t w, double *o /* (n, d_v) */)
{
    enum { G = 16 };
    int64_t n = h->n_k, d = h->d, dv = h->d_v;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = i + 1, lo = v - w > 0 ? v - w : 0, ng = lo / G;
        double mx = -INFINITY, z = 0;
        double *lg = calloc((size_t)(ng + v), sizeof(double));
        double *val = calloc((size_t)((ng + v) * dv), sizeof(double));
        int64_t m = 0;
        for (int64_t c = 0; c < ng; c++, m++) {
            int64_t last = c * G + G - 1;
            double wt[G], wz = 0, wm = -INFINITY;
            for (int64_t t = 0; t < G; t++) {
                double s = 0;
                for (int64_t x = 0; x < d; x++)
                    s += (double)h->q[last * d + x] * h->k[(c * G + t) * d + x];
                wt[t] = h->scale * s;
                wm = fmax(wm, wt[t]);
            }
            for (int64_t t = 0; t < G; t++) wz += wt[t] = exp(wt[t] - wm);
            double s = 0;
            for (int64_t x = 0; x < d; x++) {
                double ck = 0;
                for (int64_t t = 0; t < G; t++) ck += wt[t] / wz * h->k[(c * G + t) * d + x];
                s += (double)h->q[i * d + x] * ck;
            }
            lg[m] = h->scale * s;
            for (int64_t x = 0; x < dv; x++)
                for (int64_t t = 0; t < G; t++)
                    val[m * dv + x] += wt[t] / wz * h->v[(c * G + t) * dv + x];
        }
        for (int64_t j = ng * G; j < v; j++, m++) {
            double s = 0;
            for (int64_t x = 0; x < d; x++) s += (double)h->q[i * d + x] * h->k[j * d + x];
            lg[m] = h->scale * s;
            for (int64_t x = 0; x < dv; x++) val[m * dv + x] = h->v[j * dv + x];
        }
        for (int64_t t = 0; t < m; t++) mx = fmax(mx, lg[t]);
        for (int64_t x = 0; x < dv; x++) o[i * dv + x] = 0;
        for (int64_t t = 0; t < m; t++) {
            double e = exp(lg[t] - mx);
            z += e;
            for (int64_t x = 0; x < dv; x++) o[i * dv + x] += e * val[t * dv + x];
        }
        for (int64_t x = 0; x < dv; x++) o[i * dv + x] /= z;
        free(lg);
        free(val);
    }
}

Test(cca, equals_a_double_reimplementation_of_its_rule)
{
    enum { N = 203, D = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 2, 1, N, D, 3.0, 48);
    const struct ab_method *m = fx_method("cca");
    double *ref = malloc(sizeof(double) * N * D);
    float *o = malloc(sizeof(float) * N * D);
    int64_t knobs[] = {1, 20, 37, 100, N};
    for (int h = 0; h < 2; h++)
        for (size_t t = 0; t < sizeof knobs / sizeof knobs[0]; t++) {
            int64_t w = knobs[t];
            struct ab_problem p = fx_problem(&L, h, 0);
            struct ab_ledger led = {0};
            ab_attend_counter_take();
            cr_assert_eq(fx_method_run(m, &p, (double)w, o, NULL, &led), AB_OK);
            double computed = ab_attend_counter_take();
            cca_reference(p.h, w, ref);
            double err = 0;
            for (int64_t x = 0; x < N * D; x++)
                err = fmax(err, fabs(o[x] - ref[x]) / (1 + fabs(ref[x])));
            cr_expect_lt(err, 2e-6, "head %d w %ld: max error %g", h, (long)w, err);
            /* ledger: G_i + (v - 16 G_i) cells per row, and the core tokens of 12 whole groups */
            double cells = 0;
            for (int64_t i = 0; i < N; i++) {
                int64_t v = i + 1, g = (v - w > 0 ? v - w : 0) / 16;
                cells += (double)(g + v - 16 * g);
            }
            cr_expect_eq(led.cells, cells);
            cr_expect_eq(computed, cells);
            cr_expect_eq(led.flops_attend, cells * 4 * D + 12.0 * 16 * 6 * D);
            cr_expect_eq(led.flops_select, 0);
        }
    /* w = n: exact attention, and below that the core tokens make a difference */
    struct ab_problem p = fx_problem(&L, 0, 0);
    struct ab_ledger led;
    cr_expect_lt(fx_rel_l2(m, &p, N, &led, NULL), 1e-6);
    cr_expect_gt(fx_rel_l2(m, &p, 20, &led, NULL), 1e-3);
    free(ref);
    free(o);
    fx_layer_free(&L);
}
