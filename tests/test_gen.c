/* test_gen.c - the synthetic generator and the map statistics: every component and profile shows
 * its signature on exact attention (metrics.md statistics via ab_map_stats_compute / ab_attn_ref),
 * tasks are solved by exact attention and not by uniform attention, generation is a pure
 * function of the options and the seed, profiles are assigned as asked, and bad options are
 * usage errors. Sizes are modest (n 512..2048, d 64) so the file runs in seconds. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "gen/gen.h"
#include "heads/mapstats.h"
#include "helpers.h"

/* ---- helpers ------------------------------------------------------------------------------- */

/* Options of a one-head workload of one profile, with optional strength overrides. */
static struct ab_gen_opts one_head(const char *profile, int64_t n, const char *strengths)
{
    struct ab_gen_opts o;
    ab_gen_defaults(&o);
    o.n_layer = 1, o.n_head = 1, o.n_kv_head = 1, o.n_seq = n, o.d = 64;
    o.profile = profile;
    if (strengths) cr_assert_eq(ab_gen_parse_strengths(strengths, o.strength), AB_OK);
    return o;
}

static void gen(const struct ab_gen_opts *o, struct ab_workload *w)
{
    int rc = ab_gen_workload(o, w);
    cr_assert_eq(rc, AB_OK, "generation failed: %s", ab_errmsg());
}

/* Statistics of (layer, head), locality window 64. */
static void stats(const struct ab_workload *w, int64_t l, int64_t h, struct ab_map_stats *s)
{
    struct ab_head hd;
    ab_workload_head(w, l, h, &hd);
    cr_assert_eq(ab_map_stats_compute(&hd, 64, s), AB_OK);
}

/* Statistics of a fresh one-head workload. */
static void one_head_stats(const char *profile, int64_t n, const char *strengths,
                           struct ab_map_stats *s)
{
    struct ab_gen_opts o = one_head(profile, n, strengths);
    struct ab_workload w;
    gen(&o, &w);
    stats(&w, 0, 0, s);
    ab_workload_free(&w);
}

/* ---- map statistics on a hand-built head ------------------------------------------------- */

Test(mapstats, uniform_head)
{
    /* all-zero queries: uniform causal attention, A[i,j] = 1/(i+1) */
    enum { N = 100, D = 4 };
    static float q[N * D], k[N * D], v[N * D];
    int32_t pos[N];
    for (int i = 0; i < N; i++) pos[i] = i;
    struct ab_head h = {.n_q = N,
                        .n_k = N,
                        .d = D,
                        .d_v = D,
                        .q = q,
                        .k = k,
                        .v = v,
                        .q_pos = pos,
                        .k_pos = pos,
                        .mask = AB_MASK_CAUSAL,
                        .scale = 0.5};
    struct ab_map_stats s;
    cr_assert_eq(ab_map_stats_compute(&h, 10, &s), AB_OK);
    double h1 = 0, a0 = 0, loc = 0;
    for (int i = 0; i < N; i++) {
        a0 += 1.0 / (i + 1);
        h1 += log(i + 1.0);
        loc += AB_MIN(i + 1, 10) / (i + 1.0);
    }
    cr_expect_float_eq(s.alpha[0], a0 / N, 1e-12);
    cr_expect_float_eq(s.first_weight, a0 / N, 1e-12);
    cr_expect_float_eq(s.alpha[N - 1], 1.0 / N, 1e-12);
    cr_expect_float_eq(s.entropy, h1 / N, 1e-9);
    cr_expect_float_eq(s.entropy_norm, 1.0, 1e-9);
    cr_expect_float_eq(s.locality, loc / N, 1e-12);
    cr_expect_float_eq(s.diag_mass[0], a0, 1e-9); /* sum_i 1/(i+1) */
    cr_expect_float_eq(s.rows, N, 0);
    /* the k largest columns are the first k */
    double top = 0;
    for (int j = 0; j < 2; j++) top += s.col_mass[j];
    cr_expect_float_eq(ab_map_stats_vertical_mass(&s, 2), top / N, 1e-12);
    cr_expect_float_eq(ab_map_stats_slash_mass(&s, N), 1.0, 1e-12);
    ab_map_stats_free(&s);
}

/* ---- components and profiles ----------------------------------------------------------------- */

Test(gen, sink_strength_raises_alpha0)
{
    /* streaming heads with the sink strength swept: alpha(0) rises monotonically */
    const double sink[] = {4, 8, 11, 13, 15};
    double prev = -1;
    for (int k = 0; k < 5; k++) {
        char spec[32];
        snprintf(spec, sizeof spec, "sink=%g", sink[k]);
        struct ab_map_stats s;
        one_head_stats("streaming", 1024, spec, &s);
        cr_log_info("sink %g: alpha(0) %.4f", sink[k], s.alpha[0]);
        cr_expect_gt(s.alpha[0], prev + 0.01, "sink %g: alpha(0) %.4f not above %.4f", sink[k],
                     s.alpha[0], prev);
        prev = s.alpha[0];
        ab_map_stats_free(&s);
    }
    cr_expect_gt(prev, 0.7);
}

Test(gen, dormant_parks_on_token0)
{
    struct ab_map_stats s;
    one_head_stats("dormant", 2048, NULL, &s);
    cr_log_info("dormant alpha(0) %.4f", s.alpha[0]);
    cr_expect_gt(s.alpha[0], 0.9, "alpha(0) %.4f", s.alpha[0]);
    ab_map_stats_free(&s);
}

Test(gen, local_is_a_recency_band)
{
    struct ab_map_stats s;
    one_head_stats("streaming", 2048, "sink=0", &s); /* local alone */
    cr_log_info("local locality(64) %.4f", s.locality);
    cr_expect_gt(s.locality, 0.9, "locality(64) %.4f", s.locality);
    /* a band, not only the diagonal: the first offsets fall off monotonically */
    cr_expect_lt(s.diag_mass[0] / s.rows, 0.5);
    for (int o = 1; o < 6; o++) cr_expect_lt(s.diag_mass[o], s.diag_mass[o - 1]);
    ab_map_stats_free(&s);
}

/* Share of each row's mass on key 0 and the last w keys, averaged over rows. */
struct sink_window {
    int64_t w;
    double mass, rows;
};
static int sink_window_row(int64_t i, const double *p, int64_t n_vis, double lse, void *user)
{
    (void)lse;
    struct sink_window *a = user;
    double m = 0;
    for (int64_t j = 0; j < n_vis; j++)
        if (j == 0 || j > i - a->w) m += p[j];
    a->mass += m;
    a->rows += 1;
    return 0;
}

Test(gen, streaming_is_sink_plus_window)
{
    struct ab_gen_opts o = one_head("streaming", 2048, NULL);
    struct ab_workload w;
    gen(&o, &w);
    struct ab_head h;
    ab_workload_head(&w, 0, 0, &h);
    struct sink_window a = {.w = 64};
    cr_assert_eq(ab_attn_ref_visit(&h, NULL, 0, sink_window_row, &a), AB_OK);
    struct ab_map_stats s;
    stats(&w, 0, 0, &s);
    cr_log_info("streaming: sink + window(64) mass %.4f, alpha(0) %.3f", a.mass / a.rows,
                s.alpha[0]);
    cr_expect_gt(a.mass / a.rows, 0.95);
    cr_expect_gt(s.alpha[0], 0.2);
    ab_map_stats_free(&s);
    ab_workload_free(&w);
}

Test(gen, diffuse_has_high_entropy)
{
    struct ab_map_stats s;
    one_head_stats("diffuse", 1024, NULL, &s);
    cr_log_info("diffuse normalised entropy %.4f", s.entropy_norm);
    cr_expect_gt(s.entropy_norm, 0.9, "entropy_norm %.4f", s.entropy_norm);
    ab_map_stats_free(&s);
}

/* The offset in [1, n) with the largest diagonal mass. */
static int64_t diag_peak(const struct ab_map_stats *s)
{
    int64_t best = 1;
    for (int64_t o = 1; o < s->n; o++)
        if (s->diag_mass[o] > s->diag_mass[best]) best = o;
    return best;
}

Test(gen, slash_peaks_one_period_back)
{
    const int periods[] = {32, 24};
    for (int k = 0; k < 2; k++) {
        struct ab_gen_opts o = one_head("induction", 1024, NULL);
        o.slash_period = periods[k];
        struct ab_workload w;
        gen(&o, &w);
        struct ab_map_stats s;
        stats(&w, 0, 0, &s);
        int64_t p = periods[k];
        double nb = AB_MAX(s.diag_mass[p - 1], s.diag_mass[p + 1]);
        cr_log_info("slash p %lld: diag %.1f, neighbours %.2f, self %.2f, 2p %.2f", (long long)p,
                    s.diag_mass[p], nb, s.diag_mass[0], s.diag_mass[2 * p]);
        cr_expect_eq(diag_peak(&s), p);
        cr_expect_gt(s.diag_mass[p], 20 * nb);
        cr_expect_gt(s.diag_mass[p], 10 * s.diag_mass[0]); /* the copy, not the token itself */
        ab_map_stats_free(&s);
        ab_workload_free(&w);
    }
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

Test(gen, vertical_heavy_hitters_carry_the_mass)
{
    /* vertical alone (with a little diffuse texture) */
    struct ab_gen_opts o = one_head("streaming", 2048, "sink=0,local=0,vertical=11,diffuse=0.5");
    struct ab_workload w;
    gen(&o, &w);
    struct ab_gen_plan plan;
    cr_assert_eq(ab_gen_plan_make(&o, &plan), AB_OK);
    struct ab_map_stats s;
    stats(&w, 0, 0, &s);
    double vm = ab_map_stats_vertical_mass(&s, s.n / 100);
    /* the planted heavy hitters stand far above the median column */
    double *a = malloc((size_t)s.n * sizeof(double)), heavy = 0;
    memcpy(a, s.alpha, (size_t)s.n * sizeof(double));
    qsort(a, (size_t)s.n, sizeof(double), cmp_dbl);
    const struct ab_gen_head *hd = &plan.head[0];
    cr_assert_gt(hd->n_heavy, 0);
    for (int64_t k = 0; k < hd->n_heavy; k++) heavy += s.alpha[hd->heavy[k]];
    heavy /= (double)hd->n_heavy;
    cr_log_info("vertical: top-1%% column mass %.3f, heavy alpha %.4f, median %.6f", vm, heavy,
                a[s.n / 2]);
    cr_expect_gt(vm, 0.6);
    cr_expect_gt(heavy, 100 * a[s.n / 2]);
    free(a);
    ab_map_stats_free(&s);
    ab_gen_plan_free(&plan);
    ab_workload_free(&w);
}

Test(gen, vertical_slash_profile_shows_both)
{
    struct ab_map_stats s, base;
    one_head_stats("vertical-slash", 2048, NULL, &s);
    one_head_stats("diffuse", 2048, NULL, &base);
    int64_t k = s.n / 100;
    double vm = ab_map_stats_vertical_mass(&s, k), sm = ab_map_stats_slash_mass(&s, k);
    double vb = ab_map_stats_vertical_mass(&base, k), sb = ab_map_stats_slash_mass(&base, k);
    cr_log_info("vertical-slash: vertical %.3f (diffuse %.3f), slash %.3f (diffuse %.3f), "
                "alpha(0) %.3f, locality %.3f",
                vm, vb, sm, sb, s.alpha[0], s.locality);
    cr_expect_gt(vm, 3 * vb);
    cr_expect_gt(sm, 3 * sb);
    cr_expect_eq(diag_peak(&s), 32);
    cr_expect_gt(s.alpha[0], 0.05);
    ab_map_stats_free(&s);
    ab_map_stats_free(&base);
}

/* Mass on same-topic keys vs the share of same-topic keys among the visible ones. */
struct topic_acc {
    const int32_t *topic;
    double same, chance, rows;
};
static int topic_row(int64_t i, const double *p, int64_t n_vis, double lse, void *user)
{
    (void)lse;
    struct topic_acc *a = user;
    double m = 0, c = 0;
    for (int64_t j = 0; j < n_vis; j++)
        if (a->topic[j] == a->topic[i]) m += p[j], c += 1;
    a->same += m;
    a->chance += c / (double)n_vis;
    a->rows += 1;
    return 0;
}

Test(gen, topic_blocks)
{
    struct ab_gen_opts o = one_head("block", 2048, NULL);
    struct ab_workload w;
    gen(&o, &w);
    struct ab_gen_plan plan;
    cr_assert_eq(ab_gen_plan_make(&o, &plan), AB_OK);
    cr_assert_not_null(plan.head[0].topic);
    struct ab_head h;
    ab_workload_head(&w, 0, 0, &h);
    struct topic_acc a = {.topic = plan.head[0].topic};
    cr_assert_eq(ab_attn_ref_visit(&h, NULL, 0, topic_row, &a), AB_OK);
    /* past the first segment (where every key is same-topic) */
    cr_log_info("block: same-topic mass %.3f, same-topic key share %.3f (%lld topics)",
                a.same / a.rows, a.chance / a.rows, (long long)plan.head[0].n_topic);
    cr_expect_gt(a.same / a.rows, 0.95);
    cr_expect_lt(a.chance / a.rows, 0.5);
    /* not just the local band: plenty of mass beyond 64 tokens */
    struct ab_map_stats s;
    stats(&w, 0, 0, &s);
    cr_expect_lt(s.locality, 0.9);
    ab_map_stats_free(&s);
    ab_gen_plan_free(&plan);
    ab_workload_free(&w);
}

Test(gen, secondary_sinks_are_bright_columns)
{
    struct ab_gen_opts o = one_head("streaming", 2048, "secondary-sink=12");
    struct ab_workload w;
    gen(&o, &w);
    struct ab_gen_plan plan;
    cr_assert_eq(ab_gen_plan_make(&o, &plan), AB_OK);
    const struct ab_gen_head *hd = &plan.head[0];
    cr_assert_gt(hd->n_sec, 0);
    struct ab_map_stats s;
    stats(&w, 0, 0, &s);
    for (int64_t k = 0; k < hd->n_sec; k++) {
        int64_t t = hd->sec[k];
        double nb = AB_MAX(s.alpha[t - 1], s.alpha[t + 1]);
        cr_log_info("secondary sink at %lld: alpha %.3f, neighbours %.4f, primary %.3f",
                    (long long)t, s.alpha[t], nb, s.alpha[0]);
        cr_expect_gt(s.alpha[t], 0.1);
        cr_expect_gt(s.alpha[t], 5 * nb);
        cr_expect_lt(s.alpha[t], s.alpha[0]);
        cr_expect(t >= 2048 / 8 && t < 2048 / 2);
    }
    ab_map_stats_free(&s);
    ab_gen_plan_free(&plan);
    ab_workload_free(&w);
}

/* ---- tasks ----------------------------------------------------------------------------------- */

struct task_score {
    int64_t n, exact, uniform;
    double cos_exact_min, cos_uniform_max;
};

/* Scores the tasks of kind `kind` in (layer, query head) by exact and by uniform attention. */
static void score_tasks(const struct ab_workload *w, int64_t l, int64_t h, int kind,
                        struct task_score *sc)
{
    const struct ab_tasks *t = &w->tasks;
    int64_t d_v = w->d_v, n_rows = 0;
    int64_t *rows = malloc((size_t)t->n * sizeof(int64_t)), *ids = malloc((size_t)t->n * 8);
    for (int64_t i = 0; i < t->n; i++)
        if (t->kind[i] == kind) ids[n_rows] = i, rows[n_rows++] = t->row[i];
    double *o = malloc((size_t)(n_rows * d_v) * sizeof(double));
    double *u = malloc((size_t)d_v * sizeof(double)), *tg = malloc((size_t)d_v * sizeof(double));
    struct ab_head hd;
    ab_workload_head(w, l, h, &hd);
    cr_assert_eq(ab_attn_ref(&hd, rows, n_rows, o, NULL), AB_OK);
    memset(sc, 0, sizeof *sc);
    sc->cos_exact_min = 1;
    for (int64_t r = 0; r < n_rows; r++) {
        int64_t ti = ids[r], row = rows[r];
        /* uniform attention: the mean of the visible values */
        for (int64_t e = 0; e < d_v; e++) u[e] = 0;
        for (int64_t j = 0; j <= row; j++)
            for (int64_t e = 0; e < d_v; e++) u[e] += hd.v[j * d_v + e] / (double)(row + 1);
        const double *oe = o + r * d_v;
        sc->n++;
        if (kind == AB_TASK_AGGREGATE) {
            int64_t k0 = t->key_off[ti], nk = t->key_off[ti + 1] - k0;
            for (int64_t e = 0; e < d_v; e++) tg[e] = 0;
            for (int64_t k = 0; k < nk; k++)
                for (int64_t e = 0; e < d_v; e++)
                    tg[e] += hd.v[t->key_pos[k0 + k] * d_v + e] / (double)nk;
            double ce, cu;
            {
                double a = 0, b = 0, c = 0, a2 = 0, b2 = 0;
                for (int64_t e = 0; e < d_v; e++) {
                    a += oe[e] * tg[e], b += oe[e] * oe[e], c += tg[e] * tg[e];
                    a2 += u[e] * tg[e], b2 += u[e] * u[e];
                }
                ce = a / sqrt(b * c), cu = a2 / sqrt(b2 * c);
            }
            sc->exact += ce >= t->agg_threshold;
            sc->uniform += cu >= t->agg_threshold;
            sc->cos_exact_min = AB_MIN(sc->cos_exact_min, ce);
            sc->cos_uniform_max = AB_MAX(sc->cos_uniform_max, cu);
        } else {
            int64_t be = 0, bu = 0;
            double ve = -INFINITY, vu = -INFINITY;
            for (int64_t p = 0; p < t->n_code; p++) {
                double de = 0, du = 0;
                for (int64_t e = 0; e < d_v; e++) {
                    de += oe[e] * t->codebook[p * d_v + e];
                    du += u[e] * t->codebook[p * d_v + e];
                }
                if (de > ve) ve = de, be = p;
                if (du > vu) vu = du, bu = p;
            }
            sc->exact += be == t->answer[ti];
            sc->uniform += bu == t->answer[ti];
        }
    }
    free(rows);
    free(ids);
    free(o);
    free(u);
    free(tg);
}

/* Scores every planted (layer, query head) of w; returns the number of planted query heads. */
static int64_t score_planted(const struct ab_workload *w, int kind, struct task_score *all)
{
    int64_t heads = 0;
    memset(all, 0, sizeof *all);
    all->cos_exact_min = 1;
    for (int64_t l = 0; l < w->n_layer; l++)
        for (int64_t h = 0; h < w->n_head; h++) {
            if (!w->tasks.planted[l * w->n_kv_head + ab_workload_kv_of(w, h)]) continue;
            struct task_score sc;
            score_tasks(w, l, h, kind, &sc);
            all->n += sc.n, all->exact += sc.exact, all->uniform += sc.uniform;
            all->cos_exact_min = AB_MIN(all->cos_exact_min, sc.cos_exact_min);
            all->cos_uniform_max = AB_MAX(all->cos_uniform_max, sc.cos_uniform_max);
            heads++;
        }
    return heads;
}

static struct ab_gen_opts task_opts(const char *profile, int64_t n)
{
    struct ab_gen_opts o;
    ab_gen_defaults(&o);
    o.n_layer = 2, o.n_head = 4, o.n_kv_head = 2, o.n_seq = n, o.d = 64;
    o.profile = profile;
    o.tasks = 7;
    o.n_tasks = 16;
    return o;
}

Test(gen, tasks_layout)
{
    struct ab_gen_opts o = task_opts("retrieval", 1024);
    struct ab_workload w;
    gen(&o, &w);
    const struct ab_tasks *t = &w.tasks;
    cr_assert_eq(t->n, 48);
    cr_expect_eq(t->n_code, 64);
    cr_expect_float_eq(t->agg_threshold, 0.9, 0);
    cr_expect_eq(ab_workload_validate(&w), AB_OK, "%s", ab_errmsg());
    uint8_t *seen = calloc((size_t)w.n_seq, 1);
    for (int64_t i = 0; i < t->n; i++) {
        int64_t row = t->row[i], nk = t->key_off[i + 1] - t->key_off[i];
        cr_expect(row >= w.n_seq - o.task_rows && row < w.n_seq, "row %lld", (long long)row);
        cr_expect(!seen[row]);
        seen[row] = 1;
        cr_expect_eq(nk, t->kind[i] == AB_TASK_RETRIEVE         ? 1
                         : t->kind[i] == AB_TASK_MULTI_RETRIEVE ? 8
                                                                : AB_GEN_AGG_KEYS);
        cr_expect_eq(t->answer[i] < 0, t->kind[i] == AB_TASK_AGGREGATE);
        for (int64_t k = t->key_off[i]; k < t->key_off[i + 1]; k++) {
            int64_t p = t->key_pos[k];
            double depth = (double)p / (double)row;
            cr_expect(p > 0 && p < row && !seen[p], "key %lld of task %lld", (long long)p,
                      (long long)i);
            cr_expect(depth > 0.09 && depth < 0.91, "depth %.3f", depth);
            seen[p] = 1;
        }
        /* the needle holds its codeword, scaled to the norm of a Gaussian value */
        if (t->kind[i] != AB_TASK_AGGREGATE) {
            const float *v = ab_workload_v(&w, 0, 0) + t->key_pos[t->key_off[i]] * w.d_v;
            double dot = 0;
            for (int64_t e = 0; e < w.d_v; e++) dot += v[e] * t->codebook[t->answer[i] * w.d_v + e];
            cr_expect_float_eq(dot, sqrt((double)w.d_v), 1e-3);
        }
    }
    for (int64_t s = 0; s < 4; s++) cr_expect_eq(t->planted[s], 1); /* all retrieval heads */
    free(seen);
    ab_workload_free(&w);
}

Test(gen, retrieve_solved_by_exact_not_uniform)
{
    struct ab_gen_opts o = task_opts("retrieval", 2048);
    struct ab_workload w;
    gen(&o, &w);
    struct task_score sc;
    int64_t heads = score_planted(&w, AB_TASK_RETRIEVE, &sc);
    double chance = 1.0 / 64;
    cr_log_info("retrieve: %lld heads, exact %lld/%lld, uniform %lld/%lld (chance %.3f)",
                (long long)heads, (long long)sc.exact, (long long)sc.n, (long long)sc.uniform,
                (long long)sc.n, chance);
    cr_expect_eq(heads, 8); /* every query head of the 2 x 2 retrieval kv heads */
    cr_expect_eq(sc.exact, sc.n);
    /* uniform attention: near chance, below 3/P + 0.1 */
    cr_expect_lt((double)sc.uniform / (double)sc.n, 3 * chance + 0.1);
    ab_workload_free(&w);
}

Test(gen, multi_retrieve_and_aggregate_solved_by_exact)
{
    struct ab_gen_opts o = task_opts("retrieval", 2048);
    struct ab_workload w;
    gen(&o, &w);
    struct task_score m, a;
    score_planted(&w, AB_TASK_MULTI_RETRIEVE, &m);
    score_planted(&w, AB_TASK_AGGREGATE, &a);
    cr_log_info("multi-retrieve: exact %lld/%lld, uniform %lld; aggregate: exact %lld/%lld "
                "(min cos %.3f), uniform %lld (max cos %.3f)",
                (long long)m.exact, (long long)m.n, (long long)m.uniform, (long long)a.exact,
                (long long)a.n, a.cos_exact_min, (long long)a.uniform, a.cos_uniform_max);
    cr_expect_eq(m.exact, m.n);
    cr_expect_lt((double)m.uniform / (double)m.n, 3.0 / 64 + 0.1);
    cr_expect_eq(a.exact, a.n);
    cr_expect_eq(a.uniform, 0);
    ab_workload_free(&w);
}

Test(gen, tasks_in_every_head_without_retrieval_heads)
{
    /* no profile has the needle: tasks go to every head, and are still solved there */
    const char *profiles[] = {"streaming", "vertical-slash", "dormant"};
    for (int k = 0; k < 3; k++) {
        struct ab_gen_opts o = task_opts(profiles[k], 1024);
        struct ab_workload w;
        gen(&o, &w);
        for (int64_t s = 0; s < 4; s++) cr_expect_eq(w.tasks.planted[s], 1);
        for (int kind = 0; kind < 3; kind++) {
            struct task_score sc;
            cr_expect_eq(score_planted(&w, kind, &sc), 8);
            cr_expect_eq(sc.exact, sc.n, "%s, %s: exact %lld/%lld", profiles[k],
                         ab_task_kind_name(kind), (long long)sc.exact, (long long)sc.n);
        }
        ab_workload_free(&w);
    }
}

Test(gen, model_preset_plants_in_retrieval_heads)
{
    struct ab_gen_opts o;
    ab_gen_defaults(&o);
    o.n_layer = 4, o.n_head = 8, o.n_kv_head = 4, o.n_seq = 1024, o.d = 64;
    o.tasks = 7;
    struct ab_workload w;
    gen(&o, &w);
    int64_t n_ret = 0;
    for (int64_t s = 0; s < 16; s++) {
        int ret = !strcmp(w.profile[s], "retrieval");
        n_ret += ret;
        cr_expect_eq(w.tasks.planted[s], ret, "slot %lld (%s)", (long long)s, w.profile[s]);
    }
    cr_expect_geq(n_ret, 1);
    for (int kind = 0; kind < 3; kind++) {
        struct task_score sc;
        score_planted(&w, kind, &sc);
        cr_expect_eq(sc.exact, sc.n);
    }
    ab_workload_free(&w);
}

/* ---- determinism --------------------------------------------------------------------------- */

static int same_bytes(const struct ab_workload *a, const struct ab_workload *b)
{
    size_t nq = (size_t)(a->n_layer * a->n_head * a->n_seq * a->d) * sizeof(float);
    size_t nk = (size_t)(a->n_layer * a->n_kv_head * a->n_seq * a->d) * sizeof(float);
    size_t nv = (size_t)(a->n_layer * a->n_kv_head * a->n_seq * a->d_v) * sizeof(float);
    return !memcmp(a->q, b->q, nq) && !memcmp(a->k, b->k, nk) && !memcmp(a->v, b->v, nv);
}

Test(gen, same_seed_same_bytes)
{
    struct ab_gen_opts o;
    ab_gen_defaults(&o);
    o.n_layer = 3, o.n_head = 4, o.n_kv_head = 2, o.n_seq = 512, o.d = 64;
    o.tasks = 7;
    o.seed = 7;
    struct ab_workload a, b, c;
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    gen(&o, &a);
    omp_set_num_threads(AB_MAX(2, threads));
    gen(&o, &b);
    omp_set_num_threads(threads);
    cr_expect(same_bytes(&a, &b), "same options, different bytes (1 vs %d threads)",
              AB_MAX(2, threads));
    cr_expect_eq(memcmp(a.tasks.row, b.tasks.row, (size_t)a.tasks.n * sizeof(int32_t)), 0);
    o.seed = 8;
    gen(&o, &c);
    cr_expect(!same_bytes(&a, &c), "different seeds, same bytes");
    ab_workload_free(&a);
    ab_workload_free(&b);
    ab_workload_free(&c);
}

/* ---- profile assignment ------------------------------------------------------------------- */

static int64_t count_profile(const struct ab_gen_plan *p, const char *name)
{
    int64_t c = 0;
    for (int64_t s = 0; s < p->n_layer * p->n_kv_head; s++)
        c += !strcmp(ab_profiles[p->head[s].profile].name, name);
    return c;
}

Test(gen, profile_and_mix_assignment)
{
    struct ab_gen_opts o;
    ab_gen_defaults(&o);
    o.n_layer = 8, o.n_head = 16, o.n_kv_head = 8, o.n_seq = 256, o.d = 64;
    struct ab_gen_plan p;
    o.profile = "block";
    cr_assert_eq(ab_gen_plan_make(&o, &p), AB_OK);
    cr_expect_eq(count_profile(&p, "block"), 64);
    ab_gen_plan_free(&p);
    o.profile = NULL;
    o.mix = "streaming:1";
    cr_assert_eq(ab_gen_plan_make(&o, &p), AB_OK);
    cr_expect_eq(count_profile(&p, "streaming"), 64);
    ab_gen_plan_free(&p);
    o.mix = "streaming:3,dormant:1"; /* normalised: 75% / 25% */
    cr_assert_eq(ab_gen_plan_make(&o, &p), AB_OK);
    int64_t ns = count_profile(&p, "streaming"), nd = count_profile(&p, "dormant");
    cr_log_info("mix 3:1 over 64 heads: streaming %lld, dormant %lld", (long long)ns,
                (long long)nd);
    cr_expect_eq(ns + nd, 64);
    cr_expect(nd >= 6 && nd <= 28, "dormant %lld of 64 at rate 0.25", (long long)nd);
    ab_gen_plan_free(&p);
}

Test(gen, model_preset_looks_like_a_model)
{
    struct ab_gen_opts o;
    ab_gen_defaults(&o);
    o.n_layer = 8, o.n_head = 16, o.n_kv_head = 8, o.n_seq = 256, o.d = 64;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        o.seed = seed;
        struct ab_gen_plan p;
        cr_assert_eq(ab_gen_plan_make(&o, &p), AB_OK);
        int64_t n = 64, st = count_profile(&p, "streaming"), ret = count_profile(&p, "retrieval");
        int64_t dorm01 = 0, dorm_late = 0, ind_mid = 0, ret_mid = 0;
        for (int64_t s = 0; s < n; s++) {
            int64_t l = s / 8;
            const char *name = ab_profiles[p.head[s].profile].name;
            if (!strcmp(name, "dormant")) *(l < 2 ? &dorm01 : &dorm_late) += 1;
            if (!strcmp(name, "induction") && l >= 2 && l < 6) ind_mid++;
            if (!strcmp(name, "retrieval") && l >= 2 && l < 6) ret_mid++;
        }
        cr_log_info("model seed %llu: streaming %lld, retrieval %lld, dormant in 0-1 %lld, "
                    "induction in the middle %lld",
                    (unsigned long long)seed, (long long)st, (long long)ret, (long long)dorm01,
                    (long long)ind_mid);
        cr_expect_gt(st, n / 3);
        cr_expect(ret >= 1 && ret <= n / 10, "retrieval heads %lld", (long long)ret);
        cr_expect_eq(ret_mid, ret);
        cr_expect_geq(dorm01, 1);
        cr_expect_eq(dorm_late, 0);
        cr_expect_geq(ind_mid, 1);
        ab_gen_plan_free(&p);
    }
}

/* ---- bad options ---------------------------------------------------------------------------- */

static int plan_rc(const struct ab_gen_opts *o)
{
    struct ab_gen_plan p;
    int rc = ab_gen_plan_make(o, &p);
    if (rc == AB_OK) ab_gen_plan_free(&p);
    return rc;
}

Test(gen, bad_options_are_usage_errors)
{
    struct ab_gen_opts base;
    ab_gen_defaults(&base);
    base.n_layer = 2, base.n_head = 4, base.n_kv_head = 2, base.n_seq = 512, base.d = 64;
    cr_assert_eq(plan_rc(&base), AB_OK);
    struct {
        const char *what;
        struct ab_gen_opts o;
    } bad[16];
    int nb = 0;
#define BAD(label, field, value)                                                                   \
    do {                                                                                           \
        bad[nb].what = label;                                                                      \
        bad[nb].o = base;                                                                          \
        bad[nb].o.field = value;                                                                   \
        nb++;                                                                                      \
    } while (0)
    BAD("unknown profile", profile, "sparkly");
    BAD("unknown preset", preset, "toy");
    BAD("mix without rate", mix, "streaming");
    BAD("mix with bad rate", mix, "streaming:x");
    BAD("mix unknown name", mix, "foo:1");
    BAD("mix negative", mix, "streaming:-1");
    BAD("mix all zero", mix, "streaming:0");
    BAD("odd d", d, 63);
    BAD("zero n", n_seq, 0);
    BAD("heads not a multiple", n_head, 5);
    BAD("zero layers", n_layer, 0);
    BAD("slash period too long", slash_period, 600);
#undef BAD
    bad[nb].what = "d too small";
    bad[nb].o = base;
    bad[nb].o.d = 8;
    bad[nb].o.profile = "vertical-slash";
    nb++;
    bad[nb].what = "profile and mix";
    bad[nb].o = base;
    bad[nb].o.profile = "streaming";
    bad[nb].o.mix = "streaming:1";
    nb++;
    bad[nb].what = "tasks beyond task rows";
    bad[nb].o = base;
    bad[nb].o.tasks = 7;
    bad[nb].o.task_rows = 10;
    nb++;
    for (int k = 0; k < nb; k++) {
        int rc = plan_rc(&bad[k].o);
        cr_log_info("%s: %s", bad[k].what, ab_errmsg());
        cr_expect_eq(rc, AB_E_USAGE, "%s: got %d", bad[k].what, rc);
        cr_expect_neq(ab_errmsg()[0], 0, "%s: no message", bad[k].what);
    }
    double s[AB_COMP_COUNT];
    cr_expect_eq(ab_gen_parse_strengths("shiny=3", s), AB_E_USAGE);
    cr_expect_eq(ab_gen_parse_strengths("sink=", s), AB_E_USAGE);
    cr_expect_eq(ab_gen_parse_strengths("sink=-1", s), AB_E_USAGE);
    cr_expect_eq(ab_gen_parse_strengths("sink=3,local=2", s), AB_OK);
    cr_expect_float_eq(s[AB_COMP_SINK], 3, 0);
    unsigned tasks;
    cr_expect_eq(ab_gen_parse_tasks("retrieve,nope", &tasks), AB_E_USAGE);
    cr_expect_eq(ab_gen_parse_tasks("aggregate,retrieve", &tasks), AB_OK);
    cr_expect_eq(tasks, 5u);
}

/* ---- the command --------------------------------------------------------------------------- */

Test(gen_cli, writes_a_workload)
{
    const char *path = t_path("gen.h5");
    char *out = NULL, *err = NULL;
    int st = t_run(&out, &err,
                   "gen --layers 2 --heads 4 --kv-heads 2 --n 256 --d 32 --tasks retrieve "
                   "--seed 3 -o %s",
                   path);
    cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err ? err : "");
    cr_expect(t_exists(path));
    cr_expect(out && strstr(out, path), "stdout: %s", out ? out : "");
    free(out);
    free(err);
    remove(path);
    st = t_run(&out, &err, "gen --profile sparkly -o %s", path);
    cr_expect_eq(st, 64);
    cr_expect(err && strstr(err, "sparkly"), "stderr: %s", err ? err : "");
    cr_expect(!t_exists(path));
    free(out);
    free(err);
    st = t_run(&out, &err, "gen --d 63 -o %s", path);
    cr_expect_eq(st, 64);
    free(out);
    free(err);
}
