/* test_methods_retrieval.c - the decode rows infllm, tokenselect, spatten, longheads and alisa
 * on hand-built or seeded decode problems: each row's defining property (InfLLM reads a planted
 * unit and always its initial and local tokens, and its units are the top ones by their
 * representatives; TokenSelect's soft vote prefers a key two heads share and equals a double
 * re-implementation; SpAtten never reads a pruned key again and prunes the lowest cumulative
 * scores; LongHeads always reads the first and current chunk and a planted chunk, and ranks the
 * others by its chunk keys; ALISA reads its recent window plus the top accumulated keys). Every
 * run goes through fx_run_checked (ledger = cells computed = keep cells, cost() = run()). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/kv.h"
#include "methods/kv_select.h"
#include "methods/method.h"
#include "methods_fixtures.h"

/* The minimum over kept j and maximum over dropped j (j in cand[0..n)) of score[j]: a selection
 * of the top scores has min_kept >= max_dropped (up to float rounding of the method's scores). */
static void kept_range(const double *score, const int64_t *cand, int64_t n, const uint8_t *kept,
                       double *min_kept, double *max_dropped)
{
    *min_kept = INFINITY, *max_dropped = -INFINITY;
    for (int64_t t = 0; t < n; t++) {
        double s = score[cand ? cand[t] : t];
        if (kept[t])
            *min_kept = fmin(*min_kept, s);
        else
            *max_dropped = fmax(*max_dropped, s);
    }
}

static double dot_d(const float *a, const float *b, int64_t d)
{
    double s = 0;
    for (int64_t c = 0; c < d; c++) s += (double)a[c] * b[c];
    return s;
}

/* ---- infllm (I = 4 initial, L = 64 local, units of B = 32, r = 4) ---- */
enum { INF_I = 4, INF_L = 64, INF_B = 32, INF_R = 4 };

static int64_t inf_units(int64_t v)
{
    return v > INF_I + INF_L ? (v - INF_L - INF_I) / INF_B : 0;
}

/* Unit HOT's keys and every decode query share a strong direction: with room for one unit every
 * decode query reads unit HOT, its 4 initial tokens and its local window, and nothing else. */
Test(infllm, reads_planted_unit_initial_and_local)
{
    enum { N = 1024, D = 64, M = 16, HOT = 11 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.25, 101);
    struct ab_rng r;
    ab_rng_init(&r, 101, 1);
    float u[D];
    fx_unit(u, D, &r);
    int64_t a = INF_I + HOT * INF_B;
    fx_add_dir(L.k, D, a, a + INF_B, u, 16.0f);
    fx_add_dir(L.q, D, N - M, N, u, 16.0f);
    struct ab_problem p = fx_problem(&L, 0, M);
    int64_t v0 = p.rows[0] + 1, local0 = v0 - INF_I - inf_units(v0) * INF_B;
    double K = INF_I + local0 + INF_B; /* one unit for the first row (later rows: local grows) */
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("infllm"), &p, K, &led, &keep);
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        int64_t v = p.rows[r0] + 1, U = inf_units(v), lo = INF_I + U * INF_B;
        int64_t T = AB_MAX(0, AB_MIN(U, ((int64_t)K - INF_I - (v - lo)) / INF_B));
        for (int64_t j = 0; j < INF_I; j++) cr_expect(ab_keep_has(&keep, r0, j));
        for (int64_t j = lo; j < v; j++)
            cr_expect(ab_keep_has(&keep, r0, j), "local %lld", (long long)j);
        if (T >= 1)
            for (int64_t j = a; j < a + INF_B; j++)
                cr_expect(ab_keep_has(&keep, r0, j), "row %lld misses unit key %lld",
                          (long long)p.rows[r0], (long long)j);
        cr_expect_eq(ab_keep_count(&keep, r0), INF_I + (v - lo) + T * INF_B);
    }
    cr_expect_gt(led.flops_select, 0);
    cr_expect_gt(led.flops_once, 0);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* On a seeded head: the representatives are the top 4 keys of each unit by
 * rs_j = sum_{t in unit, t >= j} q_t . k_j (double re-implementation), and at a knob of 5 units
 * each decode query reads the units with the largest sum of q . representative. */
Test(infllm, representatives_and_units_are_the_top_scores)
{
    enum { N = 768, D = 32, M = 24, T = 5 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 4.0, 102);
    const struct ab_head *h = &L.heads[0];
    int64_t U = inf_units(N);
    int64_t *rep = malloc(sizeof(int64_t) * U * INF_R);
    cr_assert_eq(ab_infllm_representatives(h, U, rep), AB_OK);
    for (int64_t u = 0; u < U; u++) {
        int64_t a = INF_I + u * INF_B;
        double rs[INF_B];
        uint8_t kept[INF_B] = {0};
        for (int64_t j = 0; j < INF_B; j++) {
            rs[j] = 0;
            for (int64_t t = j; t < INF_B; t++)
                rs[j] += dot_d(h->q + (a + t) * D, h->k + (a + j) * D, D);
        }
        for (int64_t x = 0; x < INF_R; x++) kept[rep[u * INF_R + x] - a] = 1;
        double mk, md;
        kept_range(rs, NULL, INF_B, kept, &mk, &md);
        cr_expect_geq(mk, md - 1e-3 * (1 + fabs(md)), "unit %lld: representative %g < other %g",
                      (long long)u, mk, md);
    }
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    int64_t v0 = p.rows[0] + 1, local0 = v0 - INF_I - inf_units(v0) * INF_B;
    fx_run_checked(fx_method("infllm"), &p, INF_I + local0 + T * INF_B, &led, &keep);
    double *sim = malloc(sizeof(double) * U);
    uint8_t *kept = malloc(U);
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        int64_t i = p.rows[r0], v = i + 1, Uv = inf_units(v), n_kept = 0;
        for (int64_t u = 0; u < Uv; u++) {
            sim[u] = 0;
            for (int64_t x = 0; x < INF_R; x++)
                sim[u] += dot_d(h->q + i * D, h->k + rep[u * INF_R + x] * D, D);
            int64_t a = INF_I + u * INF_B, c = 0;
            for (int64_t j = a; j < a + INF_B; j++) c += ab_keep_has(&keep, r0, j);
            cr_expect(c == 0 || c == INF_B, "units are read whole");
            kept[u] = c == INF_B;
            n_kept += kept[u];
        }
        double mk, md;
        kept_range(sim, NULL, Uv, kept, &mk, &md);
        cr_expect_geq(mk, md - 1e-4 * (1 + fabs(md)), "row %lld: unit score %g kept below %g",
                      (long long)i, mk, md);
        cr_expect_leq(n_kept, T);
    }
    free(sim), free(kept), free(rep);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- tokenselect ---- */

/* Three heads, each with its own keys, decode queries along e_0 (logit = k[0]). Head 0 rates key
 * X at 10 and Y at 9.5 (softmax 0.62 / 0.38); head 1 rates Y at 5.2 and X at 0 (0.42 on Y);
 * head 2 is uniform. X is the single highest rating of any head (a max vote picks it), but Y is
 * the one two heads share (votes 0.79 against 0.62): at K = 1 every head reads Y; at K = 2
 * both. */
Test(tokenselect, soft_vote_prefers_the_key_two_heads_share)
{
    enum { N = 256, D = 32, M = 4, H = 3, X = 40, Y = 170 };
    struct fx_layer L;
    fx_layer_make(&L, H, H, N, D, 1.0, 111);
    memset(L.q, 0, sizeof(float) * H * N * D);
    memset(L.k, 0, sizeof(float) * H * N * D);
    for (int64_t e = 0; e < 2; e++)
        for (int64_t i = N - M; i < N; i++) L.q[(e * N + i) * D] = (float)sqrt((double)D);
    L.k[(0 * N + X) * D] = 10.0f, L.k[(0 * N + Y) * D] = 9.5f;
    L.k[(1 * N + Y) * D] = 5.2f;
    for (int64_t K = 1; K <= 2; K++) {
        struct ab_keep keep[H];
        for (int64_t e = 0; e < H; e++) {
            struct ab_problem p = fx_problem(&L, e, M);
            struct ab_ledger led;
            fx_run_checked(fx_method("tokenselect"), &p, (double)K, &led, &keep[e]);
            for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
                cr_expect(ab_keep_has(&keep[e], r0, Y), "head %lld K %lld misses Y", (long long)e,
                          (long long)K);
                cr_expect_eq(ab_keep_has(&keep[e], r0, X), K == 2, "head %lld K %lld: X",
                             (long long)e, (long long)K);
                cr_expect_eq(ab_keep_count(&keep[e], r0), K);
            }
        }
        for (int64_t e = 0; e < H; e++) ab_keep_free(&keep[e]);
    }
    fx_layer_free(&L);
}

/* Seeded GQA layer (4 query heads, 2 kv heads): every decode query's kept set is the top K of a
 * double re-implementation of the vote (sum over heads of each head's softmax of scale q . k),
 * and the same on every head of the layer. */
Test(tokenselect, equals_double_reimplementation)
{
    enum { N = 400, D = 32, M = 24, H = 4, KV = 2, K = 37 };
    struct fx_layer L;
    fx_layer_make(&L, H, KV, N, D, 4.0, 112);
    double *vote = malloc(sizeof(double) * N), *lg = malloc(sizeof(double) * N);
    uint8_t *kept = malloc(N);
    struct ab_keep keep[H];
    for (int64_t e = 0; e < H; e++) {
        struct ab_problem p = fx_problem(&L, e, M);
        struct ab_ledger led;
        fx_run_checked(fx_method("tokenselect"), &p, K, &led, &keep[e]);
        cr_expect_float_eq(led.flops_select,
                           0.0 + 2.0 * D * (double)(M * (N - M) + M * (M + 1) / 2), 1e-9);
    }
    for (int64_t r0 = 0; r0 < M; r0++) {
        int64_t i = N - M + r0, v = i + 1;
        for (int64_t j = 0; j < v; j++) vote[j] = 0;
        for (int64_t e = 0; e < H; e++) {
            const struct ab_head *h = &L.heads[e];
            double mx = -INFINITY, z = 0;
            for (int64_t j = 0; j < v; j++)
                mx = fmax(mx, lg[j] = h->scale * dot_d(h->q + i * D, h->k + j * D, D));
            for (int64_t j = 0; j < v; j++) z += lg[j] = exp(lg[j] - mx);
            for (int64_t j = 0; j < v; j++) vote[j] += lg[j] / z;
        }
        for (int64_t j = 0; j < v; j++) kept[j] = (uint8_t)ab_keep_has(&keep[0], r0, j);
        double mk, md;
        kept_range(vote, NULL, v, kept, &mk, &md);
        cr_expect_geq(mk, md - 1e-5, "row %lld: kept vote %g < dropped %g", (long long)i, mk, md);
        cr_expect_eq(ab_keep_count(&keep[0], r0), K);
        for (int64_t e = 1; e < H; e++)
            cr_expect(!memcmp(keep[e].bits + r0 * keep[e].words, keep[0].bits + r0 * keep[0].words,
                              sizeof(uint64_t) * (size_t)keep[0].words),
                      "head %lld reads another set", (long long)e);
    }
    for (int64_t e = 0; e < H; e++) ab_keep_free(&keep[e]);
    free(vote), free(lg), free(kept);
    fx_layer_free(&L);
}

/* ---- spatten ---- */

/* Seeded layer of 4 heads: (1) the first decode query keeps the top C - 1 context keys by the
 * cumulative attention summed over the heads and the context queries (double re-implementation)
 * plus its own key; (2) at every later step the set is the previous one plus the new token minus
 * pruned keys, pruned keys have the lowest cumulative scores of the old set (scores followed in
 * double from what each step actually read), and a pruned key is never read again; (3) every head
 * reads the same set; (4) a decode token every later decode query attends to is kept (its score
 * is the decode queries' own: a rule that forgot to accumulate the decode steps would prune
 * it). */
Test(spatten, prunes_lowest_cumulative_and_never_reads_them_again)
{
    enum { N = 192, D = 32, M = 128, H = 4, KV = 2, C = 32 };
    struct fx_layer L;
    fx_layer_make(&L, H, KV, N, D, 4.0, 121);
    int64_t q0 = N - M, P = q0 + 2; /* a decode token its own and later decode queries attend to */
    struct ab_rng rg;
    ab_rng_init(&rg, 121, 1);
    float u[D];
    fx_unit(u, D, &rg);
    for (int64_t g = 0; g < KV; g++) fx_add_dir(L.k, D, g * N + P, g * N + P + 1, u, 24.0f);
    for (int64_t e = 0; e < H; e++) fx_add_dir(L.q, D, e * N + P, e * N + N, u, 4.0f);
    struct ab_keep keep[H];
    for (int64_t e = 0; e < H; e++) {
        struct ab_problem p = fx_problem(&L, e, M);
        struct ab_ledger led;
        fx_run_checked(fx_method("spatten"), &p, C, &led, &keep[e]);
        cr_expect_eq(led.cells, (double)M * C);
    }
    for (int64_t e = 1; e < H; e++)
        cr_expect(
            !memcmp(keep[e].bits, keep[0].bits, sizeof(uint64_t) * (size_t)(M * keep[0].words)),
            "head %lld reads another set", (long long)e);
    double *s = calloc(N, sizeof(double)), *lg = malloc(sizeof(double) * N);
    uint8_t *kept = malloc(N), *gone = calloc(N, 1);
    int64_t *cand = malloc(sizeof(int64_t) * N);
    /* context sums */
    for (int64_t e = 0; e < H; e++) {
        const struct ab_head *h = &L.heads[e];
        for (int64_t t = 0; t < q0; t++) {
            double mx = -INFINITY, z = 0;
            for (int64_t j = 0; j <= t; j++)
                mx = fmax(mx, lg[j] = h->scale * dot_d(h->q + t * D, h->k + j * D, D));
            for (int64_t j = 0; j <= t; j++) z += lg[j] = exp(lg[j] - mx);
            for (int64_t j = 0; j <= t; j++) s[j] += lg[j] / z;
        }
    }
    int64_t pruned = 0;
    for (int64_t r0 = 0; r0 < M; r0++) {
        int64_t i = q0 + r0, n_cand = 0;
        cr_expect(ab_keep_has(&keep[0], r0, i), "the new token is read");
        cr_expect(i < P || ab_keep_has(&keep[0], r0, P), "row %lld pruned the planted decode key",
                  (long long)i);
        cr_expect_eq(ab_keep_count(&keep[0], r0), C);
        /* candidates: the context (first step) or the previous step's set */
        for (int64_t j = 0; j < i; j++)
            if (r0 == 0 || ab_keep_has(&keep[0], r0 - 1, j)) {
                cand[n_cand] = j;
                kept[n_cand++] = (uint8_t)ab_keep_has(&keep[0], r0, j);
            }
        for (int64_t j = 0; j < i; j++)
            if (ab_keep_has(&keep[0], r0, j)) {
                cr_expect(!gone[j], "row %lld reads pruned key %lld", (long long)i, (long long)j);
                cr_expect(r0 == 0 || ab_keep_has(&keep[0], r0 - 1, j), "key %lld came back",
                          (long long)j);
            }
        double mk, md;
        kept_range(s, cand, n_cand, kept, &mk, &md);
        cr_expect_geq(mk, md - 1e-4 * (1 + md), "row %lld: kept cumulative %g < pruned %g",
                      (long long)i, mk, md);
        for (int64_t t = 0; t < n_cand; t++)
            if (!kept[t]) gone[cand[t]] = 1, pruned++;
        /* this step's probabilities over what it read, every head */
        for (int64_t e = 0; e < H; e++) {
            const struct ab_head *h = &L.heads[e];
            double mx = -INFINITY, z = 0;
            for (int64_t j = 0; j <= i; j++)
                if (ab_keep_has(&keep[0], r0, j))
                    mx = fmax(mx, lg[j] = h->scale * dot_d(h->q + i * D, h->k + j * D, D));
            for (int64_t j = 0; j <= i; j++)
                if (ab_keep_has(&keep[0], r0, j)) z += lg[j] = exp(lg[j] - mx);
            for (int64_t j = 0; j <= i; j++)
                if (ab_keep_has(&keep[0], r0, j)) s[j] += lg[j] / z;
        }
    }
    cr_expect_eq(pruned, (q0 - (C - 1)) + (M - 1), "one prune per step after the first trim");
    for (int64_t e = 0; e < H; e++) ab_keep_free(&keep[e]);
    free(s), free(lg), free(kept), free(gone), free(cand);
    fx_layer_free(&L);
}

/* ---- longheads (chunks of 64) ---- */
enum { LH_L = 64 };

/* Chunk HOT's keys and the decode queries share a strong direction: at K = 3 chunks every decode
 * query reads the first chunk, its current chunk and chunk HOT, and nothing else. */
Test(longheads, keeps_first_last_and_planted_chunk)
{
    enum { N = 1024, D = 64, M = 16, HOT = 7 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 0.25, 131);
    struct ab_rng r;
    ab_rng_init(&r, 131, 1);
    float u[D];
    fx_unit(u, D, &r);
    fx_add_dir(L.k, D, HOT * LH_L, (HOT + 1) * LH_L, u, 12.0f);
    fx_add_dir(L.q, D, N - M, N, u, 12.0f);
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("longheads"), &p, 3 * LH_L, &led, &keep);
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        int64_t v = p.rows[r0] + 1, c = (v - 1) / LH_L;
        for (int64_t j = 0; j < LH_L; j++) cr_expect(ab_keep_has(&keep, r0, j), "first chunk");
        for (int64_t j = c * LH_L; j < v; j++)
            cr_expect(ab_keep_has(&keep, r0, j), "current chunk");
        for (int64_t j = HOT * LH_L; j < (HOT + 1) * LH_L; j++)
            cr_expect(ab_keep_has(&keep, r0, j), "row %lld misses planted key %lld",
                      (long long)p.rows[r0], (long long)j);
        cr_expect_eq(ab_keep_count(&keep, r0), 2 * LH_L + (v - c * LH_L));
    }
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* Seeded head: the chunks read besides the first and current are the top ones by q . c_t, c_t
 * re-implemented in double (softmax(scale kbar . k_j) pooling of the chunk's keys). */
Test(longheads, middle_chunks_are_the_top_by_chunk_key)
{
    enum { N = 1024, D = 32, M = 20, T = 6 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 4.0, 132);
    const struct ab_head *h = &L.heads[0];
    int64_t nc = N / LH_L;
    double *c = calloc((size_t)(nc * D), sizeof(double)), score[N / LH_L];
    for (int64_t t = 0; t < nc; t++) {
        double kbar[D] = {0}, w[LH_L], mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < LH_L; j++)
            for (int64_t e = 0; e < D; e++) kbar[e] += h->k[(t * LH_L + j) * D + e] / (double)LH_L;
        for (int64_t j = 0; j < LH_L; j++) {
            w[j] = 0;
            for (int64_t e = 0; e < D; e++)
                w[j] += h->scale * kbar[e] * h->k[(t * LH_L + j) * D + e];
            mx = fmax(mx, w[j]);
        }
        for (int64_t j = 0; j < LH_L; j++) z += w[j] = exp(w[j] - mx);
        for (int64_t j = 0; j < LH_L; j++)
            for (int64_t e = 0; e < D; e++) c[t * D + e] += w[j] / z * h->k[(t * LH_L + j) * D + e];
        float cf[D], wf[LH_L];
        ab_longheads_chunk_rep(h, t, cf, wf);
        for (int64_t e = 0; e < D; e++)
            cr_expect(fabs(cf[e] - c[t * D + e]) < 1e-4 * (1 + fabs(c[t * D + e])));
    }
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("longheads"), &p, T * LH_L, &led, &keep);
    for (int64_t r0 = 0; r0 < p.n_rows; r0++) {
        int64_t i = p.rows[r0], cur = i / LH_L, n_kept = 0;
        uint8_t kept[N / LH_L];
        for (int64_t t = 1; t < cur; t++) {
            score[t - 1] = 0;
            for (int64_t e = 0; e < D; e++) score[t - 1] += (double)h->q[i * D + e] * c[t * D + e];
            kept[t - 1] = (uint8_t)ab_keep_has(&keep, r0, t * LH_L);
            n_kept += kept[t - 1];
        }
        double mk, md;
        kept_range(score, NULL, cur - 1, kept, &mk, &md);
        cr_expect_geq(mk, md - 1e-4 * (1 + fabs(md)), "row %lld: chunk score %g kept below %g",
                      (long long)i, mk, md);
        cr_expect_eq(n_kept, T - 2);
    }
    free(c);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}

/* ---- alisa ---- */

/* a (t + 1) = the attention of row t of h over the keys row r0 of keep holds (every key 0..t
 * when keep is NULL), softmax renormalised over them, 0 elsewhere; in double. */
static void probs_over(const struct ab_head *h, int64_t t, const struct ab_keep *keep, int64_t r0,
                       double *a)
{
    int64_t D = h->d;
    double mx = -INFINITY, z = 0;
    for (int64_t j = 0; j <= t; j++) {
        a[j] = -INFINITY;
        if (!keep || ab_keep_has(keep, r0, j))
            mx = fmax(mx, a[j] = h->scale * dot_d(h->q + t * D, h->k + j * D, D));
    }
    for (int64_t j = 0; j <= t; j++) z += a[j] = a[j] > -INFINITY ? exp(a[j] - mx) : 0;
    for (int64_t j = 0; j <= t; j++) a[j] /= z;
}

/* Seeded head: every decode query i reads its last R = C - C/2 keys plus C/2 older keys whose
 * weight summed over the R queries before it (context rows: exact attention; decode rows: over
 * what they read; re-implemented in double) is the largest among the keys older than the window.
 * A planted context key every query attends to is always among them, far outside the window,
 * and so is a planted decode key once it has left the window (its weight is the decode queries'
 * own). The weights forget: a rule summing over every past query (h2o's) fails the check. */
Test(alisa, recent_window_plus_top_window_weights)
{
    enum { N = 256, D = 32, M = 128, C = 40, HOT = 77 };
    struct fx_layer L;
    fx_layer_make(&L, 1, 1, N, D, 2.0, 141);
    struct ab_rng rg;
    ab_rng_init(&rg, 141, 1);
    float u[D];
    fx_unit(u, D, &rg);
    fx_add_dir(L.k, D, HOT, HOT + 1, u, 10.0f);
    fx_add_dir(L.q, D, 0, N, u, 2.0f);
    int64_t P = N - M + 2; /* a decode token the later decode queries attend to */
    float w[D];
    fx_unit(w, D, &rg);
    fx_add_dir(L.k, D, P, P + 1, w, 10.0f);
    fx_add_dir(L.q, D, P + 1, N, w, 2.0f);
    const struct ab_head *h = &L.heads[0];
    struct ab_problem p = fx_problem(&L, 0, M);
    struct ab_ledger led;
    struct ab_keep keep;
    fx_run_checked(fx_method("alisa"), &p, C, &led, &keep);
    int64_t q0 = N - M, G = C / 2, R = C - G;
    double *A = calloc((size_t)N * N, sizeof(double)), *acc = malloc(sizeof(double) * N);
    uint8_t *kept = malloc(N);
    for (int64_t t = 0; t < q0; t++) probs_over(h, t, NULL, 0, A + t * N);
    int comeback = 0;
    for (int64_t r0 = 0; r0 < M; r0++) {
        int64_t i = q0 + r0, v = i + 1, lo = v - R, n_glob = 0;
        for (int64_t j = 0; j < N; j++) acc[j] = 0;
        for (int64_t t = AB_MAX(0, i - R); t < i; t++)
            for (int64_t j = 0; j < N; j++) acc[j] += A[t * N + j];
        for (int64_t j = lo; j < v; j++)
            cr_expect(ab_keep_has(&keep, r0, j), "recent %lld", (long long)j);
        cr_expect(ab_keep_has(&keep, r0, HOT), "row %lld drops the planted key", (long long)i);
        cr_expect(i < P || ab_keep_has(&keep, r0, P), "row %lld drops the planted decode key",
                  (long long)i);
        for (int64_t j = 0; j < lo; j++) n_glob += kept[j] = (uint8_t)ab_keep_has(&keep, r0, j);
        for (int64_t j = 0; r0 > 0 && j < lo - 1; j++)
            comeback |= kept[j] && !ab_keep_has(&keep, r0 - 1, j);
        cr_expect_eq(n_glob, G);
        double mk, md;
        kept_range(acc, NULL, lo, kept, &mk, &md);
        cr_expect_geq(mk, md - 1e-4 * (1 + md), "row %lld: kept weight %g < dropped %g",
                      (long long)i, mk, md);
        probs_over(h, i, &keep, r0, A + i * N);
    }
    cr_log_info("alisa: a key left out came back later: %s", comeback ? "yes" : "no");
    cr_expect(comeback, "window weights forget: some dropped key is read again");
    free(A), free(acc), free(kept);
    ab_keep_free(&keep);
    fx_layer_free(&L);
}
