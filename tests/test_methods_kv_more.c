/* test_methods_kv_more.c - the KV-cache rows of issue 18's kv batch (observed-attention,
 * criticalkv, chunkkv, simlayerkv, think) on seeded or hand-built decode problems: each row's
 * defining property, checked key by key against a double-precision re-implementation of its
 * rule or on a head where the rule's choice is known, plus the ledger against the formulas
 * their files state. The generic battery (test_methods.c) runs what every row shares. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/kv.h"
#include "methods/kv_window.h"
#include "methods/method.h"
#include "methods_fixtures.h"

enum { W = 64 };

/* Keys < k_end kept in row r. */
static int64_t kept_below(const struct ab_keep *keep, int64_t r, int64_t k_end)
{
    int64_t c = 0;
    for (int64_t j = 0; j < k_end; j++) c += ab_keep_has(keep, r, j);
    return c;
}

/* softmax(scale q_t.k_j) of row t over its nv visible keys, in double, into a (nv). */
static void softmax_row_d(const struct ab_head *h, int64_t t, int64_t nv, double *a)
{
    double mx = -INFINITY, z = 0;
    for (int64_t j = 0; j < nv; j++) {
        double dot = 0;
        for (int64_t c = 0; c < h->d; c++) dot += (double)h->q[t * h->d + c] * h->k[j * h->d + c];
        a[j] = h->scale * dot;
        mx = fmax(mx, a[j]);
    }
    for (int64_t j = 0; j < nv; j++) z += a[j] = exp(a[j] - mx);
    for (int64_t j = 0; j < nv; j++) a[j] /= z;
}

/* SnapKV's window scores of the prefix [0, n_pre) in double (kv_window.h's rule): summed window
 * softmax, zero-padded average pool of 5. */
static void snap_scores_d(const struct ab_problem *p, int64_t n_pre, double *score)
{
    int64_t q0 = p->q0, n_ctx = q0;
    double *a = malloc(sizeof(double) * (size_t)n_ctx),
           *agg = calloc((size_t)n_pre, sizeof(double));
    for (int64_t t = q0 - W; t < q0; t++) {
        softmax_row_d(p->h, t, t + 1, a);
        for (int64_t j = 0; j < n_pre; j++) agg[j] += a[j];
    }
    for (int64_t j = 0; j < n_pre; j++) {
        double s = 0;
        for (int64_t u = j - 2; u <= j + 2; u++)
            if (u >= 0 && u < n_pre) s += agg[u];
        score[j] = s / 5;
    }
    free(a), free(agg);
}

/* Every evaluated row keeps the context keys marked in ctx (n_ctx) and every decode key it
 * sees, nothing else. */
static void expect_keep_rows(const struct ab_problem *p, const struct ab_keep *keep,
                             const uint8_t *ctx, const char *what)
{
    int64_t n_ctx = p->q0;
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t v = ab_head_visible(p->h, p->rows[r]);
        for (int64_t j = 0; j < p->h->n_k; j++) {
            int want = j < n_ctx ? ctx[j] : j < v;
            cr_assert_eq(ab_keep_has(keep, r, j), want, "%s: row %lld key %lld kept %d, want %d",
                         what, (long long)p->rows[r], (long long)j, ab_keep_has(keep, r, j), want);
        }
    }
}

/* ---- observed-attention ---- */

/* On a seeded head, the kept context keys are exactly the C of largest mean attention received
 * from the context queries that see them, the means computed in double (up to float rounding
 * of the row's own probabilities: a kept key may trail a dropped one by at most 1e-6 of the
 * score). The C-th and (C+1)-th scores of this seed differ by more than that, so the set is the
 * exact top C. Ledger: the cells of k_ctx = C, additions in ops_other, no window logits. */
Test(observed_attention, keeps_the_c_keys_of_largest_mean_attention)
{
    enum { N = 384, D = 32, M = 16, C = 50 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 3.0, 71);
    struct ab_problem p = fx_problem(&L, 0, M);
    int64_t q0 = p.q0;
    double *mean = calloc((size_t)q0, sizeof(double)), *a = malloc(sizeof(double) * q0);
    for (int64_t t = 0; t < q0; t++) {
        softmax_row_d(p.h, t, t + 1, a);
        for (int64_t j = 0; j <= t; j++) mean[j] += a[j];
    }
    for (int64_t j = 0; j < q0; j++) mean[j] /= (double)(q0 - j); /* rows j .. q0-1 see key j */
    /* the C-th largest and the next */
    double *sorted = malloc(sizeof(double) * q0);
    memcpy(sorted, mean, sizeof(double) * q0);
    for (int64_t i = 0; i < q0; i++) /* selection sort, descending, first C + 1 */
        for (int64_t k = i + 1; i <= C && k < q0; k++)
            if (sorted[k] > sorted[i]) {
                double x = sorted[i];
                sorted[i] = sorted[k], sorted[k] = x;
            }
    cr_assert(sorted[C - 1] - sorted[C] > 1e-5 * sorted[C - 1], "seed has a near tie at the cut");
    uint8_t *want = calloc((size_t)q0, 1);
    for (int64_t j = 0; j < q0; j++) want[j] = mean[j] >= sorted[C - 1];
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("observed-attention"), &p, C, &led, &keep);
    expect_keep_rows(&p, &keep, want, "observed-attention");
    /* the score is the mean, not the sum: the sum would favour early keys */
    int64_t early = 0;
    for (int64_t j = 0; j < q0 / 2; j++) early += want[j];
    cr_log_info("observed-attention: %lld of %d kept keys in the first half", (long long)early, C);
    double cells = 0, ctx_cells = 0;
    for (int64_t i = q0; i < N; i++) cells += C + (i + 1 - q0);
    for (int64_t t = 0; t < q0; t++) ctx_cells += t + 1;
    cr_expect_eq(led.cells, cells);
    cr_expect_eq(led.flops_attend, cells * 4 * D);
    cr_expect_eq(led.flops_once, 0);
    cr_expect_eq(led.flops_select, 0);
    cr_expect_eq(led.ops_other, ctx_cells + 2.0 * q0 + cells);
    ab_keep_free(&keep);
    free(mean), free(a), free(sorted), free(want);
    fx_layer_free(&L);
}

/* A key every context query attends to strongly is kept at C = 1, and the mean divides by the
 * number of queries that see a key: a late key that its few queries all attend to beats an
 * early key with a larger sum spread over many queries. */
Test(observed_attention, mean_not_sum)
{
    enum { N = 256, D = 32, M = 8, EARLY = 10, LATE = 230 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.01, 72);
    struct ab_rng r;
    ab_rng_init(&r, 72, 1);
    float u[D], w[D];
    fx_unit(u, D, &r);
    fx_unit(w, D, &r);
    int64_t q0 = N - M;
    /* EARLY: logit 4 from queries 10 .. 199, probability 54.6 / (54.6 + t + 1) at row t: a sum
     * of ~75 over the 238 rows that see it (mean ~0.31); LATE: logit 6.4 from queries
     * 230 .. 247, ~0.7 each: a sum of ~13 over 18 rows (mean ~0.7). A sum would keep EARLY. */
    fx_add_dir(L.k, D, EARLY, EARLY + 1, u, (float)(4.0 * sqrt((double)D)));
    fx_add_dir(L.q, D, EARLY, 200, u, 1.0f);
    fx_add_dir(L.k, D, LATE, LATE + 1, w, 12.0f);
    fx_add_dir(L.q, D, LATE, q0, w, 3.0f);
    struct ab_problem p = fx_problem(&L, 0, M);
    /* the planted head does what the comment says: in double, EARLY has the larger sum and
     * LATE the larger mean, and LATE has the largest mean of all */
    double sum[N] = {0}, *a = malloc(sizeof(double) * N);
    for (int64_t t = 0; t < q0; t++) {
        softmax_row_d(p.h, t, t + 1, a);
        for (int64_t j = 0; j <= t; j++) sum[j] += a[j];
    }
    cr_assert_gt(sum[EARLY], sum[LATE]);
    for (int64_t j = 0; j < q0; j++)
        if (j != LATE)
            cr_assert_gt(sum[LATE] / (double)(q0 - LATE), sum[j] / (double)(q0 - j), "key %lld",
                         (long long)j);
    free(a);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("observed-attention"), &p, 1, &led, &keep);
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        cr_expect(ab_keep_has(&keep, r0, LATE), "row %lld dropped the late key", (long long)r0);
        cr_expect_eq(kept_below(&keep, r0, q0), 1);
    }
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- criticalkv ---- */

/* Window queries of zero: every prefix key receives the same attention, so the pooled SnapKV
 * score is equal on the interior of the prefix (keys 0, 1 and the last two get less from the
 * zero padding). Stage 1 then takes the earliest interior keys (ties to the earlier key), and
 * stage 2 must take the rest by value norm: checked key by key against the rule in double, and
 * a planted late key X of large ||v||_1 is kept where snapkv (attention alone) drops it. */
Test(criticalkv, second_stage_prefers_the_larger_value_norm)
{
    enum { N = 512, D = 32, M = 16, C = 2 * W + 40, X = 400 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 73);
    int64_t q0 = N - M, n_pre = q0 - W;
    memset(L.q + (q0 - W) * D, 0, sizeof(float) * W * D);
    for (int64_t c = 0; c < D; c++) L.v[X * D + c] = 10.0f;
    struct ab_problem p = fx_problem(&L, 0, M);
    double *score = malloc(sizeof(double) * n_pre);
    snap_scores_d(&p, n_pre, score);
    cr_assert(fabs(score[2] - score[X]) < 1e-9 * score[2], "equal attention on the interior");
    /* the rule in double: stage 1 = C/2 - W best scores (ties earlier), stage 2 = the rest by
     * (score + 1e-4) ||v||_1 */
    uint8_t *want = calloc((size_t)q0, 1);
    memset(want + n_pre, 1, W);
    int64_t b1 = C / 2 - W, b2 = C - C / 2;
    for (int64_t t = 0; t < b1; t++) {
        int64_t best = -1;
        for (int64_t j = 0; j < n_pre; j++)
            if (!want[j] && (best < 0 || score[j] > score[best] + 1e-12 * score[j])) best = j;
        want[best] = 1;
    }
    cr_expect(!want[X], "stage 1 alone would drop X");
    double *s2 = malloc(sizeof(double) * n_pre);
    for (int64_t j = 0; j < n_pre; j++) {
        double nv = 0;
        for (int64_t c = 0; c < D; c++) nv += fabs((double)L.v[j * D + c]);
        s2[j] = want[j] ? -INFINITY : (score[j] + 1e-4) * nv;
    }
    for (int64_t t = 0; t < b2; t++) {
        int64_t best = 0;
        for (int64_t j = 1; j < n_pre; j++)
            if (s2[j] > s2[best]) best = j;
        want[best] = 1, s2[best] = -INFINITY;
    }
    cr_expect(want[X]);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("criticalkv"), &p, C, &led, &keep);
    expect_keep_rows(&p, &keep, want, "criticalkv");
    struct ab_keep snap;
    fx_run_checked(fx_method("snapkv"), &p, C, &led, &snap);
    cr_expect(!ab_keep_has(&snap, 0, X), "snapkv keeps X: the test does not separate the rows");
    /* the ledger: snapkv's terms plus the norms, products and second top-k */
    struct ab_ledger sl = {0}, cl = {0};
    fx_method("snapkv")->cost(&p, C, &sl);
    fx_method("criticalkv")->cost(&p, C, &cl);
    cr_expect_eq(cl.cells, sl.cells);
    cr_expect_eq(cl.flops_once, sl.flops_once);
    cr_expect_eq(cl.ops_other, sl.ops_other + (double)n_pre * (D + 2));
    ab_keep_free(&keep), ab_keep_free(&snap);
    free(score), free(want), free(s2);
    fx_layer_free(&L);
}

/* At first-stage share 1 the second stage is empty: criticalkv is snapkv, key for key. */
Test(criticalkv, first_stage_only_equals_snapkv)
{
    enum { N = 512, D = 32, M = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 3.0, 74);
    struct ab_problem p = fx_problem(&L, 0, M);
    const int64_t budgets[] = {8, W, W + 1, 150, 300, N};
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        struct ab_keep a, s;
        struct ab_ledger la = {0}, ls;
        ab_keep_alloc(&a, p.n_rows, N);
        ab_keep_clear(&a);
        cr_assert_eq(ab_criticalkv_run(&p, budgets[b], 1.0, NULL, &a, &la), AB_OK);
        fx_run_checked(fx_method("snapkv"), &p, budgets[b], &ls, &s);
        for (int64_t r = 0; r < p.n_rows; r++)
            for (int64_t w = 0; w < a.words; w++)
                cr_assert_eq(a.bits[r * a.words + w], s.bits[r * s.words + w], "C %lld row %lld",
                             (long long)budgets[b], (long long)r);
        ab_keep_free(&a), ab_keep_free(&s);
    }
    fx_layer_free(&L);
}

/* ---- chunkkv ---- */

/* Keeps whole chunks: on a seeded head (432 prefix keys: 43 chunks of 10 and one of 2), the
 * kept context equals a re-implementation in double (chunk means of SnapKV scores, descending,
 * added until one does not fit) for several budgets, every kept chunk is whole, and the
 * context keeps at most C keys. */
Test(chunkkv, keeps_whole_chunks_as_the_rule_says)
{
    enum { N = 512, D = 32, M = 16, CH = 10 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 3.0, 75);
    struct ab_problem p = fx_problem(&L, 0, M);
    int64_t q0 = p.q0, n_pre = q0 - W, n_chunks = (n_pre + CH - 1) / CH;
    double *score = malloc(sizeof(double) * n_pre), *cs = malloc(sizeof(double) * n_chunks);
    int64_t *order = malloc(sizeof(int64_t) * n_chunks);
    snap_scores_d(&p, n_pre, score);
    for (int64_t u = 0; u < n_chunks; u++) {
        int64_t j0 = u * CH, j1 = j0 + CH < n_pre ? j0 + CH : n_pre;
        cs[u] = 0;
        for (int64_t j = j0; j < j1; j++) cs[u] += score[j];
        cs[u] /= (double)(j1 - j0);
        order[u] = u;
    }
    for (int64_t i = 0; i < n_chunks; i++) /* descending by score, stable on index */
        for (int64_t k = i + 1; k < n_chunks; k++)
            if (cs[order[k]] > cs[order[i]] ||
                (cs[order[k]] == cs[order[i]] && order[k] < order[i])) {
                int64_t x = order[i];
                order[i] = order[k], order[k] = x;
            }
    for (int64_t i = 0; i + 1 < n_chunks; i++)
        cr_assert(cs[order[i]] - cs[order[i + 1]] > 1e-6 * cs[order[i]], "near tie in this seed");
    const int64_t budgets[] = {W + 5, W + 10, W + 57, W + 100, 250, 400};
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        int64_t C = budgets[b], left = C - W;
        uint8_t *want = calloc((size_t)q0, 1);
        memset(want + n_pre, 1, W);
        for (int64_t t = 0; t < n_chunks; t++) {
            int64_t j0 = order[t] * CH, j1 = j0 + CH < n_pre ? j0 + CH : n_pre;
            if (j1 - j0 > left) break;
            memset(want + j0, 1, (size_t)(j1 - j0));
            left -= j1 - j0;
        }
        struct ab_ledger led;
        struct ab_keep keep;
        fx_run_checked(fx_method("chunkkv"), &p, C, &led, &keep);
        expect_keep_rows(&p, &keep, want, "chunkkv");
        cr_expect_leq(kept_below(&keep, 0, q0), C);
        for (int64_t u = 0; u < n_chunks; u++) { /* whole chunks */
            int64_t j0 = u * CH, j1 = j0 + CH < n_pre ? j0 + CH : n_pre;
            int64_t k = 0;
            for (int64_t j = j0; j < j1; j++) k += ab_keep_has(&keep, 0, j);
            cr_expect(k == 0 || k == j1 - j0, "C %lld: chunk %lld kept %lld of %lld", (long long)C,
                      (long long)u, (long long)k, (long long)(j1 - j0));
        }
        ab_keep_free(&keep);
        free(want);
    }
    free(score), free(cs), free(order);
    fx_layer_free(&L);
}

/* Chunks of one key are SnapKV: the hook at chunk length 1 keeps snapkv's set, key for key
 * (same scores, same ties). */
Test(chunkkv, chunks_of_one_equal_snapkv)
{
    enum { N = 512, D = 32, M = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 3.0, 76);
    struct ab_problem p = fx_problem(&L, 0, M);
    const int64_t budgets[] = {8, W + 1, 150, 300, N};
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        struct ab_keep a, s;
        struct ab_ledger la = {0}, ls;
        ab_keep_alloc(&a, p.n_rows, N);
        ab_keep_clear(&a);
        cr_assert_eq(ab_chunkkv_run(&p, budgets[b], 1, NULL, &a, &la), AB_OK);
        fx_run_checked(fx_method("snapkv"), &p, budgets[b], &ls, &s);
        for (int64_t r = 0; r < p.n_rows; r++)
            for (int64_t w = 0; w < a.words; w++)
                cr_assert_eq(a.bits[r * a.words + w], s.bits[r * s.words + w], "C %lld row %lld",
                             (long long)budgets[b], (long long)r);
        cr_expect_eq(la.cells, ls.cells);
        ab_keep_free(&a), ab_keep_free(&s);
    }
    fx_layer_free(&L);
}

/* The shorter last chunk is compared by its mean, not its sum: window queries split their
 * attention evenly between key 105 (inside the whole chunk [100, 110)) and key 431, the last of
 * the 432 prefix keys (the chunk [430, 432) of two). After pooling, chunk [100, 110) holds the
 * whole of key 105's share a (mean a / 10) and [430, 432) two fifths of key 431's (mean a / 5):
 * at C = W + 2 the short chunk ranks first and fits. (By sums, [100, 110) would rank first, not
 * fit, and end the selection with nothing kept.) */
Test(chunkkv, short_last_chunk_ranks_by_its_mean)
{
    enum { N = 512, D = 32, M = 16, A = 105, B = 431 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.25, 81);
    struct ab_rng r;
    ab_rng_init(&r, 81, 1);
    float u[D], w[D];
    fx_unit(u, D, &r);
    fx_unit(w, D, &r);
    double uw = 0, nw = 0; /* w orthogonal to u, unit */
    for (int64_t c = 0; c < D; c++) uw += (double)u[c] * w[c];
    for (int64_t c = 0; c < D; c++) w[c] -= (float)(uw * u[c]), nw += (double)w[c] * w[c];
    for (int64_t c = 0; c < D; c++) w[c] /= (float)sqrt(nw);
    int64_t q0 = N - M;
    float big = (float)(10.0 * sqrt((double)D) / 3.0); /* logit 10 for a window query */
    fx_add_dir(L.k, D, A, A + 1, u, big);
    fx_add_dir(L.k, D, B, B + 1, w, big);
    fx_add_dir(L.q, D, q0 - W, q0, u, 3.0f);
    fx_add_dir(L.q, D, q0 - W, q0, w, 3.0f);
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("chunkkv"), &p, W + 2, &led, &keep);
    uint8_t *want = calloc((size_t)q0, 1);
    memset(want + q0 - W - 2, 1, W + 2);
    expect_keep_rows(&p, &keep, want, "chunkkv");
    ab_keep_free(&keep);
    free(want);
    fx_layer_free(&L);
}

/* ---- simlayerkv ---- */

/* Three layers of two heads (512 rows, 496 context keys, test window R = 62):
 * - lazy: the last 32 context queries of both heads point at the four initial keys: mass ~1 on
 *   S, the layer is lazy, and at w = 20 each head keeps keys 0..3 and the last 20 context keys;
 * - busy: both heads point at key 200 (outside S): mass ~0, every head keeps the whole context;
 * - mixed: head 0 lazy-looking, head 1 on key 200: the layer's mean mass is ~0.5, so even
 *   head 0 keeps the whole context (the decision is the layer's, over every head). */
Test(simlayerkv, lazy_layer_keeps_initial_and_recent_others_keep_all)
{
    enum { N = 512, D = 32, M = 16, WIN = 20, HOT = 200 };
    int64_t q0 = N - M;
    for (int kind = 0; kind < 3; kind++) {
        struct fx_layer L;
        fx_layer_make(&L, 2, 2, N, D, 0.5, 77);
        struct ab_rng r;
        ab_rng_init(&r, 77, 1);
        float u[D];
        fx_unit(u, D, &r);
        for (int64_t h = 0; h < 2; h++) {
            int sink = kind == 0 || (kind == 2 && h == 0);
            float *k = L.k + h * N * D, *q = L.q + h * N * D;
            if (sink)
                fx_add_dir(k, D, 0, 4, u, 8.0f);
            else
                fx_add_dir(k, D, HOT, HOT + 1, u, 8.0f);
            fx_add_dir(q, D, q0 - 32, q0, u, 8.0f);
        }
        struct ab_problem p = fx_problem(&L, 0, M);
        double mass;
        cr_assert_eq(ab_simlayerkv_mass(&p, &mass), AB_OK);
        cr_log_info("simlayerkv: layer kind %d mass %.4f", kind, mass);
        if (kind == 0) cr_expect_gt(mass, 0.99);
        if (kind == 1) cr_expect_lt(mass, 0.05);
        if (kind == 2) cr_expect(mass > 0.4 && mass < 0.6, "mass %g", mass);
        for (int64_t h = 0; h < 2; h++) {
            p = fx_problem(&L, h, M);
            uint8_t *want = calloc((size_t)q0, 1);
            if (kind == 0) {
                memset(want, 1, 4);
                memset(want + q0 - WIN, 1, WIN);
            } else {
                memset(want, 1, (size_t)q0);
            }
            struct ab_ledger led;
            struct ab_keep keep;
            fx_run_checked(fx_method("simlayerkv"), &p, WIN, &led, &keep);
            expect_keep_rows(&p, &keep, want, "simlayerkv");
            double cells = 0;
            for (int64_t i = q0; i < N; i++) cells += (kind == 0 ? 4 + WIN : q0) + (i + 1 - q0);
            cr_expect_eq(led.cells, cells);
            cr_expect_eq(led.flops_once, 2.0 * 32 * q0 * D);
            ab_keep_free(&keep);
            free(want);
        }
        fx_layer_free(&L);
    }
}

/* ---- think ---- */

/* At r = 1 every channel is kept: dense attention (the row selects nothing, so the battery's
 * largest-knob check does not cover it). */
Test(think, full_fraction_is_dense)
{
    enum { N = 384, D = 32, M = 16 };
    struct fx_layer L;
    fx_layer_make(&L, 2, 1, N, D, 3.0, 78);
    for (int64_t h = 0; h < 2; h++) {
        struct ab_problem p = fx_problem(&L, h, M);
        struct ab_ledger led;
        double e = fx_rel_l2(fx_method("think"), &p, 1.0, &led, NULL);
        cr_expect_leq(e, 1e-6, "head %lld: rel_l2 %g", (long long)h, e);
        cr_expect_eq(led.flops_attend, ab_problem_dense_flops(&p));
        cr_expect_eq(led.cells, ab_problem_allowed_cells(&p));
    }
    fx_layer_free(&L);
}

/* A hand-built head where channel c of the window queries has scale a_c and of the keys b_c:
 * channels 0..7 have a = b = 2 (product 4), 8..11 a large query alone (8 x 0.1), 12..15 a
 * large key alone (0.1 x 8), the rest 1 x 1. At r = 0.25 (8 of 32) ThinK keeps 0..7: the
 * product decides, not either norm. The output equals attention with the context logits on
 * those channels (decode keys on all), computed in double here; the ledger counts
 * 2 * 8 + 2 d_v per context cell and 4d per decode-key cell. */
Test(think, keeps_the_channels_the_head_makes_important)
{
    enum { N = 256, D = 32, M = 8, KEEP = 8 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 79);
    int64_t q0 = N - M;
    for (int64_t c = 0; c < D; c++) {
        float a = c < 8 ? 2.0f : c < 12 ? 8.0f : c < 16 ? 0.1f : 1.0f;
        float b = c < 8 ? 2.0f : c < 12 ? 0.1f : c < 16 ? 8.0f : 1.0f;
        for (int64_t i = 0; i < N; i++) {
            L.q[i * D + c] *= a;
            L.k[i * D + c] *= b;
        }
    }
    struct ab_problem p = fx_problem(&L, 0, M);
    uint8_t mark[D];
    int rc;
    cr_assert_eq(ab_think_channels(&p, 0.25, mark, &rc), KEEP);
    cr_assert_eq(rc, AB_OK);
    for (int64_t c = 0; c < D; c++) cr_expect_eq(mark[c], c < KEEP, "channel %lld", (long long)c);
    /* the output against the rule in double */
    float *o = malloc(sizeof(float) * M * D);
    struct ab_ledger led = {0};
    cr_assert_eq(fx_method_run(fx_method("think"), &p, 0.25, o, NULL, &led), AB_OK);
    double num = 0, den = 0, *s = malloc(sizeof(double) * N);
    for (int64_t r = 0; r < M; r++) {
        int64_t i = q0 + r, vis = i + 1;
        double mx = -INFINITY, z = 0, acc[D] = {0};
        for (int64_t j = 0; j < vis; j++) {
            double dot = 0;
            for (int64_t c = 0; c < (j < q0 ? KEEP : D); c++)
                dot += (double)L.q[i * D + c] * L.k[j * D + c];
            s[j] = dot / sqrt((double)D);
            mx = fmax(mx, s[j]);
        }
        for (int64_t j = 0; j < vis; j++) {
            double w = exp(s[j] - mx);
            z += w;
            for (int64_t c = 0; c < D; c++) acc[c] += w * L.v[j * D + c];
        }
        for (int64_t c = 0; c < D; c++) {
            double ref = acc[c] / z;
            num += (o[r * D + c] - ref) * (o[r * D + c] - ref);
            den += ref * ref;
        }
    }
    cr_expect_leq(sqrt(num / den), 1e-6, "rel error %g against the pruned-logit rule",
                  sqrt(num / den));
    /* pruning changes the output: it is not dense */
    struct ab_ledger dl;
    cr_expect_gt(fx_rel_l2(fx_method("think"), &p, 0.25, &dl, NULL), 1e-4);
    double c_ctx = (double)M * q0, c_dec = (double)M * (M + 1) / 2;
    cr_expect_eq(led.cells, c_ctx + c_dec);
    cr_expect_eq(led.flops_attend, c_ctx * (2 * KEEP + 2 * D) + c_dec * 4 * D);
    cr_expect_eq(led.flops_once, 2.0 * (32 + q0) * D);
    free(o), free(s);
    fx_layer_free(&L);
}

/* The kept channel count follows r (kvpress's floor of the pruned count) and the cost falls
 * with it. */
Test(think, cost_falls_with_the_fraction)
{
    enum { N = 256, D = 64, M = 8 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 1.0, 80);
    struct ab_problem p = fx_problem(&L, 0, M);
    const double rs[] = {0.01, 0.1, 0.25, 0.5, 0.6, 0.99, 1.0};
    const int64_t kept[] = {1, 7, 16, 32, 39, 64, 64};
    double prev = 0;
    for (size_t t = 0; t < sizeof rs / sizeof rs[0]; t++) {
        uint8_t mark[D];
        int rc;
        cr_expect_eq(ab_think_channels(&p, rs[t], mark, &rc), kept[t], "r %g", rs[t]);
        struct ab_ledger led = {0};
        cr_assert_eq(fx_method("think")->cost(&p, rs[t], &led), AB_OK);
        cr_expect_geq(led.flops_attend, prev);
        prev = led.flops_attend;
    }
    fx_layer_free(&L);
}
