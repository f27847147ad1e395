/* test_heads.c - `attnbench heads` and lib/heads/stats.c (metrics.md, "Head and sink
 * statistics").
 *
 * Each statistic is checked on hand-built heads whose maps have known answers: all mass on
 * token 0 (a huge logit on k_0), a pure diagonal (one-hot keys, a huge logit on j == i), a
 * uniform map (q = 0: A[i,j] = 1/(i+1), closed forms below) and a planted secondary sink at
 * position 7 (checked against a dense brute force of the definitions), and two copies of a
 * token block for echo and induction. On the synthetic `model` preset the planted profiles must
 * be recovered; on `gen --probe repeat` slash heads must score as echo heads. The /heads table must
 * survive the results file bit for bit; the CLI must fail with the documented statuses.
 *
 * Hidden states (lib/heads/hidden.h): a planted 500 among small activations is a massive
 * activation found at its place, a planted 50 is not, and the ratio rule matters; a token
 * parallel to the first token's state in exactly 3 high-norm layers has lifetime 3, also as a
 * head's secondary sink through Q/K; the real-text retrieval score is 1 for a head pointing at
 * the next token of the previous copy and 0 for a sink head; /layers survives the file; the CLI
 * on a stories260K capture with hidden states writes /layers matching a brute force. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "eval/results.h"
#include "heads/hidden.h"
#include "heads/stats.h"
#include "helpers.h"
#include "io/csv.h"
#include "io/h5_workload.h"
#include "io/results_io.h"

enum { N = 128 }; /* keys and queries of the hand-built heads; d = N (one-hot keys) */

struct built {
    float q[N * N], k[N * N], v[N * 2];
    int32_t pos[N];
    struct ab_head h;
};

/* A causal head with d = N, d_v = 2, scale 1, zero Q and K, v_j = (1, j). */
static void built_init(struct built *b)
{
    memset(b, 0, sizeof *b);
    for (int i = 0; i < N; i++) b->pos[i] = i, b->v[2 * i] = 1, b->v[2 * i + 1] = (float)i;
    b->h = (struct ab_head){.n_q = N,
                            .n_k = N,
                            .d = N,
                            .d_v = 2,
                            .q = b->q,
                            .k = b->k,
                            .v = b->v,
                            .q_pos = b->pos,
                            .k_pos = b->pos,
                            .mask = AB_MASK_CAUSAL,
                            .scale = 1.0,
                            .rope_theta = 0};
}

/* The statistics of b with window w, sinks seen by >= min_rows rows, tokens and copy span
 * (both may be NULL). */
static void stats_full(struct built *b, int64_t window, int64_t min_rows, const int32_t *tokens,
                       const struct ab_copy_span *copy, struct ab_head_row *r)
{
    struct ab_heads_opts o;
    ab_heads_defaults(&o);
    o.window = window;
    o.sink_min_rows = min_rows;
    memset(r, 0, sizeof *r);
    cr_assert_eq(ab_heads_stats(&b->h, NULL, tokens, copy, &o, r), AB_OK);
}

static void stats_of(struct built *b, int64_t window, const int32_t *tokens, struct ab_head_row *r)
{
    stats_full(b, window, 16, tokens, NULL, r);
}

#define NEAR(x, y, tol)                                                                            \
    cr_expect(fabs((x) - (y)) <= (tol), "%s = %.12g, expected %.12g", #x, (double)(x), (double)(y))

Test(heads, all_mass_on_token_0)
{
    static struct built b;
    built_init(&b);
    b.k[0] = 1; /* k_0 = e_0, q_i = 100 e_0: logit 100 on key 0, 0 elsewhere */
    for (int i = 0; i < N; i++) b.q[i * N] = 100;
    struct ab_head_row r;
    stats_of(&b, 8, NULL, &r);
    NEAR(r.sink_score, 1, 1e-12);
    NEAR(r.alpha0, 1, 1e-12);
    NEAR(r.alpha1, 0, 1e-12);
    NEAR(r.alpha9, 0, 1e-12);
    NEAR(r.first_weight, 1, 1e-12);
    NEAR(r.entropy, 0, 1e-9);
    NEAR(r.entropy_norm, 0, 1e-9);
    NEAR(r.locality, 8.0 / N, 1e-12); /* only rows 0..7 have key 0 in their window */
    cr_expect_eq(r.n_sinks, 1);
    cr_expect_eq(r.sink_pos, 0);
    cr_expect_eq(r.sec_pos1, -1);
    cr_expect(isnan(r.sec_alpha1));
    NEAR(r.vertical_mass, 1, 1e-12);
    NEAR(r.out_norm, 1, 1e-12); /* O_i = v_0 = (1, 0) */
    NEAR(r.distant_mass, 0, 1e-12);
    NEAR(r.out_dev, 0, 1e-12);
    cr_expect(isnan(r.retrieval_score));
}

Test(heads, pure_diagonal)
{
    static struct built b;
    built_init(&b);
    for (int i = 0; i < N; i++) b.k[i * N + i] = 1, b.q[i * N + i] = 100; /* A[i,i] = 1 */
    struct ab_head_row r;
    stats_of(&b, 8, NULL, &r);
    /* alpha(k) = 1 / (N - k): only row k attends key k */
    NEAR(r.alpha0, 1.0 / N, 1e-12);
    NEAR(r.alpha5, 1.0 / (N - 5), 1e-12);
    NEAR(r.first_weight, 1.0 / N, 1e-12);
    NEAR(r.entropy, 0, 1e-9);
    NEAR(r.locality, 1, 1e-12);
    NEAR(r.slash_mass, 1, 1e-12);
    NEAR(r.vertical_mass, 1.0 / N, 1e-12); /* k = 1: one column of N equal ones */
    NEAR(r.distant_mass, 0, 1e-12);
    /* alpha > 0.1 <=> N - k < 10: the last 9 keys, but each is seen by at most 9 rows, fewer
     * than the 16 a sink needs: no sink */
    cr_expect_eq(r.n_sinks, 0);
    cr_expect_eq(r.sink_pos, -1);
    cr_expect_eq(r.sec_pos1, -1);
    /* without the row minimum (1 row) the last 9 keys are sinks, by definition; with 9 rows
     * only key N - 9 (seen by 9 rows) remains */
    stats_full(&b, 8, 1, NULL, NULL, &r);
    cr_expect_eq(r.n_sinks, 9);
    cr_expect_eq(r.sink_pos, N - 9);
    cr_expect_eq(r.sec_pos1, N - 8);
    cr_expect_eq(r.sec_pos4, N - 5);
    NEAR(r.sec_alpha4, 1.0 / 5, 1e-12);
    stats_full(&b, 8, 9, NULL, NULL, &r);
    cr_expect_eq(r.n_sinks, 1);
    cr_expect_eq(r.sink_pos, N - 9);
}

Test(heads, uniform_map)
{
    static struct built b;
    built_init(&b); /* q = 0: A[i,j] = 1/(i+1) */
    for (int j = 0; j < N; j++) b.k[j * N] = (float)(j + 1); /* |k_j| = j + 1; q = 0 ignores it */
    struct ab_head_row r;
    const int w = 16;
    stats_of(&b, w, NULL, &r);
    double first = 0, ent = 0, loc = 0, alpha3 = 0, dist = 0, onorm = 0;
    for (int i = 0; i < N; i++) {
        first += 1.0 / (i + 1);
        ent += log(i + 1.0);
        loc += (i + 1 < w ? i + 1 : w) / (i + 1.0);
        if (i >= 3) alpha3 += 1.0 / (i + 1);
        /* keys j >= 4 with i - j >= 64 */
        int far = i - 64 - 4 + 1;
        dist += far > 0 ? far / (i + 1.0) : 0;
        /* O_i = (1, mean of 0..i) = (1, i/2) */
        onorm += sqrt(1 + (i / 2.0) * (i / 2.0));
    }
    NEAR(r.first_weight, first / N, 1e-12);
    NEAR(r.sink_score, first / N, 1e-12); /* alpha(0): every row sees key 0 */
    NEAR(r.alpha3, alpha3 / (N - 3), 1e-12);
    NEAR(r.entropy, ent / N, 1e-9);
    NEAR(r.entropy_norm, 1, 1e-12);
    NEAR(r.locality, loc / N, 1e-12);
    NEAR(r.distant_mass, dist / N, 1e-12);
    NEAR(r.out_norm, onorm / N, 1e-9);
    /* value drain: |v_0| = 1, mean_{j>0} sqrt(1 + j^2) */
    double vm = 0;
    for (int j = 1; j < N; j++) vm += sqrt(1.0 + (double)j * j);
    NEAR(r.value_drain, 1 / (vm / (N - 1)), 1e-9);
    /* key ratio: |k_0| = 1 over the mean of j + 1, j = 1 .. N-1, which is (N + 2) / 2 */
    NEAR(r.key_ratio, 2.0 / (N + 2), 1e-12);
    NEAR(r.out_dev, 0, 1e-12); /* N <= 64 + 256: the streaming head keeps every key */
    /* alpha(k) <= alpha(0) = H_N / N = 0.042 for every k: no sink */
    cr_expect_eq(r.n_sinks, 0);
    cr_expect_eq(r.sink_pos, -1);
}

/* BOS (token 0), a block of 63 distinct tokens, the same block again, a fresh token: rows
 * 64..126 have one earlier copy, at i - 63, followed by key i - 62. */
static void two_copies(int32_t *tok)
{
    tok[0] = 0;
    for (int j = 1; j < 64; j++) tok[j] = tok[j + 63] = 1 + (j * 37) % 63;
    tok[127] = 1000;
}

/* A head attending (logit 100) from row i to key target(i), from rows without a copy to
 * themselves. */
static void point_head(struct built *b, const int32_t *tok, int shift)
{
    built_init(b);
    for (int j = 0; j < N; j++) b->k[j * N + j] = 1;
    for (int i = 0; i < N; i++) {
        int t = i;
        for (int j = 0; j < i; j++)
            if (tok[j] == tok[i]) t = j + shift;
        b->q[i * N + t] = 100;
    }
}

Test(heads, echo_and_induction_on_two_copies)
{
    static struct built b;
    int32_t tok[N];
    two_copies(tok);
    cr_assert_eq(tok[1], tok[64]);
    cr_assert_eq(tok[63], tok[126]);
    struct ab_head_row r;
    point_head(&b, tok, 0); /* echo head: attends the earlier copy */
    stats_of(&b, 64, tok, &r);
    NEAR(r.echo_score, 1, 1e-12);
    NEAR(r.induction_score, 0, 1e-12);
    point_head(&b, tok, 1); /* induction head: attends the token after it */
    stats_of(&b, 64, tok, &r);
    NEAR(r.echo_score, 0, 1e-12);
    NEAR(r.induction_score, 1, 1e-12);
    built_init(&b); /* uniform: row i puts 1/(i+1) on its one copy and on the key after it */
    stats_of(&b, 64, tok, &r);
    double u = 0;
    for (int i = 64; i < 127; i++) u += 1.0 / (i + 1);
    NEAR(r.echo_score, u / 63, 1e-12);
    NEAR(r.induction_score, u / 63, 1e-12);
    stats_of(&b, 64, NULL, &r); /* no tokens */
    cr_expect(isnan(r.echo_score) && isnan(r.induction_score));
}

/* Dense brute force of alpha(k) for a head (test only: N x N). */
static void brute_alpha(const struct built *b, double *alpha)
{
    static double a[N][N];
    for (int i = 0; i < N; i++) {
        double mx = -INFINITY, z = 0;
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int c = 0; c < N; c++) s += (double)b->q[i * N + c] * b->k[j * N + c];
            a[i][j] = s, mx = s > mx ? s : mx;
        }
        for (int j = 0; j <= i; j++) z += (a[i][j] = exp(a[i][j] - mx));
        for (int j = 0; j <= i; j++) a[i][j] /= z;
    }
    for (int k = 0; k < N; k++) {
        alpha[k] = 0;
        for (int i = k; i < N; i++) alpha[k] += a[i][k];
        alpha[k] /= N - k;
    }
}

Test(heads, planted_secondary_sink_at_7)
{
    static struct built b;
    built_init(&b);
    /* logits 6 on key 0 and 5 on key 7, 0 elsewhere; a wide window keeps late keys light */
    b.k[0] = 1.5f, b.k[7 * N] = 1.25f;
    for (int i = 0; i < N; i++) b.q[i * N] = 4;
    struct ab_head_row r;
    stats_of(&b, 64, NULL, &r);
    double alpha[N];
    brute_alpha(&b, alpha);
    int64_t n_sinks = 0;
    for (int k = 0; k < N; k++) n_sinks += alpha[k] > 0.1;
    cr_expect_eq(r.n_sinks, n_sinks);
    cr_expect_eq(r.sink_pos, 0);
    cr_expect_eq(r.sec_pos1, 7, "secondary sink at %lld", (long long)r.sec_pos1);
    NEAR(r.sec_alpha1, alpha[7], 1e-12);
    NEAR(r.alpha7, alpha[7], 1e-12);
    NEAR(r.alpha0, alpha[0], 1e-12);
    NEAR(r.alpha2, alpha[2], 1e-12);
    cr_expect(r.alpha7 > 0.1 && r.alpha6 < 0.1 && r.alpha8 < 0.1);
}

Test(heads, label_and_sink_ratio)
{
    struct ab_head_row rows[10];
    memset(rows, 0, sizeof rows);
    for (int i = 0; i < 10; i++) rows[i].out_dev = (i * 7) % 10, rows[i].sink_score = i / 10.0;
    ab_heads_label(rows, 10, 0.25); /* ceil(2.5) = 3 heads: out_dev 9, 8, 7 */
    int64_t n = 0;
    for (int i = 0; i < 10; i++) {
        n += rows[i].retrieval_like;
        cr_expect_eq(rows[i].retrieval_like, rows[i].out_dev >= 7, "row %d", i);
    }
    cr_expect_eq(n, 3);
    ab_heads_label(rows, 10, 0);
    for (int i = 0; i < 10; i++) cr_expect_eq(rows[i].retrieval_like, 0);
    /* strict: 0.3 itself is not above 0.3; 0.4 .. 0.9 are */
    NEAR(ab_heads_sink_ratio(rows, 10, 0.3), 60, 1e-12);
    cr_expect(isnan(ab_heads_sink_ratio(rows, 0, 0.3)));
}

/* ---------------------------------------------------------------- the model preset */

static const char *model_path(void)
{
    static char path[1024];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s", t_path("model.h5"));
        char *err = NULL;
        int st = t_run(NULL, &err,
                       "gen --preset model --layers 4 --heads 8 --kv-heads 4 --n 2048 --d 64 "
                       "--tasks retrieve -o %s",
                       path);
        cr_assert_eq(st, 0, "gen failed: %s", err ? err : "");
        free(err);
    }
    return path;
}

/* Mean of field f over the rows planted with profile p (NaN if none); max/min into *mx, *mn. */
static double profile_stat(const struct ab_results *r, const char *p, size_t off, double *mx,
                           double *mn)
{
    double s = 0;
    int64_t n = 0;
    *mx = -INFINITY, *mn = INFINITY;
    for (int64_t i = 0; i < r->n_heads; i++) {
        if (strcmp(r->heads[i].profile, p)) continue;
        double v = *(const double *)((const char *)&r->heads[i] + off);
        s += v, n++;
        *mx = v > *mx ? v : *mx, *mn = v < *mn ? v : *mn;
    }
    return n ? s / (double)n : NAN;
}

Test(heads, model_preset_recovers_planted_profiles, .timeout = 300)
{
    const char *wl = model_path();
    const char *out = t_path("model-heads.h5");
    char *so = NULL, *se = NULL;
    cr_assert_eq(t_run(&so, &se, "heads %s -o %s", wl, out), 0, "%s", se ? se : "");
    cr_expect(strstr(so, "sink ratio at epsilon 0.3") != NULL);
    printf("%s", so); /* the confusion table, for the log */
    free(so), free(se);
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(out, &r), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(r.n_heads, 32);
    const char *others[] = {"streaming", "dormant",        "diffuse",
                            "induction", "vertical-slash", "block"};
    double rmx, rmn, mx, mn;
    /* retrieval heads: the highest retrieval scores, every one above every other head */
    profile_stat(&r, "retrieval", offsetof(struct ab_head_row, retrieval_score), &rmx, &rmn);
    cr_assert(rmn > 0.1, "retrieval heads score %g", rmn);
    for (int k = 0; k < 6; k++) {
        profile_stat(&r, others[k], offsetof(struct ab_head_row, retrieval_score), &mx, &mn);
        cr_expect(!(mx >= rmn), "%s head scores %g >= retrieval %g", others[k], mx, rmn);
    }
    /* dormant heads: the highest first-token weight */
    double dmx, dmn;
    profile_stat(&r, "dormant", offsetof(struct ab_head_row, first_weight), &dmx, &dmn);
    const char *not_dormant[] = {"streaming", "retrieval",      "diffuse",
                                 "induction", "vertical-slash", "block"};
    for (int k = 0; k < 6; k++) {
        profile_stat(&r, not_dormant[k], offsetof(struct ab_head_row, first_weight), &mx, &mn);
        cr_expect(!(mx >= dmn), "%s first weight %g >= dormant %g", not_dormant[k], mx, dmn);
    }
    /* streaming heads: the highest mean locality among the profiles without a local component
     * of their own (vertical-slash plants the same local strength, 12 nats, and a weaker
     * sink share, so it is more local than streaming: not compared) */
    double smean = profile_stat(&r, "streaming", offsetof(struct ab_head_row, locality), &mx, &mn);
    const char *less_local[] = {"retrieval", "dormant", "diffuse", "induction"};
    for (int k = 0; k < 4; k++) {
        double m =
            profile_stat(&r, less_local[k], offsetof(struct ab_head_row, locality), &mx, &mn);
        cr_expect(isnan(m) || m < smean, "%s locality %g >= streaming %g", less_local[k], m, smean);
    }
    ab_results_heads_free(&r);
    ab_results_free(&r);
}

/* ---------------------------------------------------------------- results file */

Test(heads, heads_table_round_trip)
{
    struct ab_results r;
    ab_results_init(&r);
    r.n_heads = 3;
    r.heads = calloc(3, sizeof *r.heads);
    for (int i = 0; i < 3; i++) {
        struct ab_head_row *h = &r.heads[i];
        h->workload = strdup(i == 2 ? "a,\"b\"\nc.h5" : "w.h5");
        h->profile = strdup(i ? "streaming" : "");
        h->layer = i, h->head = 2 * i + 1, h->kv_head = i;
        h->sink_score = h->alpha0 = 0.25 * i, h->alpha9 = NAN, h->alpha3 = -0.0;
        h->n_sinks = i, h->sink_pos = i ? 0 : -1, h->sec_pos4 = -1, h->sec_alpha2 = NAN;
        h->first_weight = 1.0 / 3, h->entropy = INFINITY, h->locality = 1e-310;
        h->out_dev = i, h->retrieval_like = i == 2, h->retrieval_score = NAN;
        h->retrieval_head = 0;
    }
    const char *path = t_path("round.h5");
    cr_assert_eq(ab_results_write_h5(path, &r), AB_OK, "%s", ab_errmsg());
    struct ab_results back;
    cr_assert_eq(ab_results_read_h5(path, &back), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(back.n_heads, 3);
    int n_cols;
    const struct ab_column *cols = ab_results_head_columns(&n_cols);
    cr_expect_geq(n_cols, 40);
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < n_cols; c++) {
            const char *a = (const char *)&r.heads[i] + cols[c].offset;
            const char *b = (const char *)&back.heads[i] + cols[c].offset;
            if (cols[c].type == AB_COL_STR)
                cr_expect_str_eq(*(char *const *)a, *(char *const *)b, "%s", cols[c].name);
            else
                cr_expect(!memcmp(a, b, 8), "row %d column %s differs", i, cols[c].name);
        }
    /* the report's names: layer and head integers, sink_score, entropy, locality floats */
    const char *csv = t_path("round-heads.csv");
    cr_assert_eq(ab_results_write_heads_csv(csv, &r), AB_OK);
    size_t len;
    char *text = (char *)t_slurp(csv, &len);
    cr_assert(text);
    cr_expect(!strncmp(text, "workload,layer,head,kv_head,profile,sink_score,alpha0,", 54));
    cr_expect_eq(t_count_lines(text), 1 + 3 + 1); /* header, rows, one embedded newline */
    free(text);
    /* a file without /heads reads with n_heads 0 */
    ab_results_heads_free(&back);
    ab_results_free(&back);
    ab_results_heads_free(&r);
    cr_assert_eq(ab_results_write_h5(path, &r), AB_OK);
    cr_assert_eq(ab_results_read_h5(path, &back), AB_OK);
    cr_expect_eq(back.n_heads, 0);
    cr_expect_null(back.heads);
    ab_results_heads_free(&back);
    ab_results_free(&back);
    ab_results_free(&r);
}

/* ab_results_read_heads: every numeric column by name (integers as doubles, layer and head
 * aside), or the columns asked for with NaN for one the table lacks */
Test(heads, heads_table_read_by_column_name)
{
    struct ab_results r;
    ab_results_init(&r);
    r.n_heads = 2;
    r.heads = calloc(2, sizeof *r.heads);
    for (int i = 0; i < 2; i++) {
        struct ab_head_row *h = &r.heads[i];
        h->workload = strdup(i ? "b.h5" : "a.h5");
        h->profile = strdup("");
        h->layer = i, h->head = 3 - i, h->sink_score = 0.5 + i, h->sec_pos1 = 7 * i - 1;
    }
    const char *path = t_path("by-name.h5");
    cr_assert_eq(ab_results_write_h5(path, &r), AB_OK, "%s", ab_errmsg());
    struct ab_heads_table t;
    cr_assert_eq(ab_results_read_heads(path, NULL, 0, NULL, &t), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(t.n, 2);
    cr_expect_str_eq(t.workload[1], "b.h5");
    cr_expect(t.layer[1] == 1 && t.head[1] == 2);
    int n_num = 0, n_cols, sink = -1, sec = -1;
    const struct ab_column *cols = ab_results_head_columns(&n_cols);
    for (int c = 0; c < n_cols; c++)
        n_num += cols[c].type != AB_COL_STR && strcmp(cols[c].name, "layer") &&
                 strcmp(cols[c].name, "head");
    cr_expect_eq(t.n_cols, n_num + 1, "%d columns", t.n_cols); /* and the row scale */
    for (int c = 0; c < t.n_cols; c++) {
        if (!strcmp(t.col_name[c], "sink_score")) sink = c;
        if (!strcmp(t.col_name[c], "sec_pos1")) sec = c;
        cr_expect(strcmp(t.col_name[c], "layer") && strcmp(t.col_name[c], "workload"));
    }
    cr_assert(sink >= 0 && sec >= 0);
    cr_expect(t.col[sink][0] == 0.5 && t.col[sink][1] == 1.5);
    cr_expect(t.col[sec][0] == -1 && t.col[sec][1] == 6);
    ab_heads_table_free(&t);
    cr_expect(t.n == 0 && !t.col);
    const char *names[] = {"nope", "sink_score", "profile"};
    cr_assert_eq(ab_results_read_heads(path, names, 3, NULL, &t), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(t.n_cols, 3);
    cr_expect_str_eq(t.col_name[0], "nope");
    cr_expect(isnan(t.col[0][0]) && isnan(t.col[0][1]) && t.col[1][1] == 1.5);
    cr_expect(isnan(t.col[2][0]), "a string column is not a number");
    ab_heads_table_free(&t);
    /* no /heads: no rows, and the workload defaults to the one given */
    ab_results_heads_free(&r);
    cr_assert_eq(ab_results_write_h5(path, &r), AB_OK);
    cr_assert_eq(ab_results_read_heads(path, NULL, 0, "w.h5", &t), AB_OK, "%s", ab_errmsg());
    cr_expect(t.n == 0 && !t.layer);
    cr_expect_eq(ab_results_read_heads(t_path("absent.h5"), NULL, 0, NULL, &t), AB_E_NOFILE);
    ab_results_free(&r);
}

/* ---------------------------------------------------------------- command line */

Test(heads, cli_errors)
{
    char *err = NULL;
    cr_expect_eq(t_run(NULL, &err, "heads %s -o %s", t_path("missing.h5"), t_path("x.h5")), 66);
    cr_expect(err && strstr(err, "missing.h5"), "%s", err ? err : "");
    free(err);
    const char *wl = model_path();
    cr_expect_eq(t_run(NULL, NULL, "heads %s --epsilon 1.5 -o %s", wl, t_path("x.h5")), 64);
    cr_expect_eq(t_run(NULL, NULL, "heads %s --epsilon -0.1 -o %s", wl, t_path("x.h5")), 64);
    cr_expect_eq(t_run(NULL, NULL, "heads %s --top-fraction 2 -o %s", wl, t_path("x.h5")), 64);
    cr_expect_eq(t_run(NULL, NULL, "heads %s --window 0 -o %s", wl, t_path("x.h5")), 64);
    cr_expect_eq(t_run(NULL, NULL, "heads %s", wl), 64); /* no -o */
    cr_expect_eq(t_run(NULL, NULL, "heads -o %s", t_path("x.h5")), 64);
    cr_expect(!t_exists(t_path("x.h5")));
}

Test(heads, cli_writes_table_and_csv, .timeout = 300)
{
    const char *wl = model_path();
    const char *out = t_path("cli.h5");
    char *so = NULL;
    cr_assert_eq(t_run(&so, NULL, "heads %s --epsilon 0.5 --top-fraction 0.25 -o %s", wl, out), 0);
    cr_expect(strstr(so, "sink ratio at epsilon 0.5") != NULL, "%s", so);
    cr_expect(strstr(so, "retrieval-like heads (top fraction by output deviation): 8") != NULL,
              "%s", so);
    free(so);
    char csv[1200];
    snprintf(csv, sizeof csv, "%.*s-heads.csv", (int)(strlen(out) - 3), out);
    cr_expect(t_exists(csv));
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(out, &r), AB_OK);
    cr_assert_eq(r.n_heads, 32);
    int64_t like = 0;
    for (int64_t i = 0; i < r.n_heads; i++) {
        like += r.heads[i].retrieval_like;
        cr_expect_eq(r.heads[i].layer, i / 8);
        cr_expect_eq(r.heads[i].head, i % 8);
        cr_expect_eq(r.heads[i].kv_head, (i % 8) / 2);
        cr_expect(r.heads[i].profile[0] != '\0');
    }
    cr_expect_eq(like, 8);
    for (int64_t i = 0; i < r.n_heads; i++) /* no tokens: no echo, no group maximum */
        cr_expect(isnan(r.heads[i].echo_score) && isnan(r.heads[i].echo_group));
    /* layer-normalised first weight averages to 1 over each layer */
    for (int l = 0; l < 4; l++) {
        double s = 0;
        for (int h = 0; h < 8; h++) s += r.heads[l * 8 + h].first_weight_norm;
        NEAR(s / 8, 1, 1e-12);
    }
    ab_results_heads_free(&r);
    ab_results_free(&r);
}

Test(heads, repeat_probe_echo_on_slash_heads, .timeout = 300)
{
    const char *wl = t_path("repeat.h5"), *out = t_path("repeat-heads.h5");
    char *err = NULL;
    cr_assert_eq(t_run(NULL, &err,
                       "gen --mix induction:0.5,streaming:0.5 --layers 4 --heads 4 --kv-heads 2 "
                       "--n 513 --d 64 --probe repeat -o %s",
                       wl),
                 0, "%s", err ? err : "");
    free(err);
    /* tokens: BOS then block ids 1..128 four times */
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(wl, &w), AB_OK, "%s", ab_errmsg());
    cr_assert_not_null(w.tokens);
    cr_expect_eq(w.tokens[0], 0);
    for (int64_t x = 0; x < 512; x++) cr_expect_eq(w.tokens[1 + x], 1 + x % 128);
    ab_workload_free(&w);
    cr_assert_eq(t_run(NULL, NULL, "heads %s -o %s", wl, out), 0);
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(out, &r), AB_OK);
    double min_slash = INFINITY, max_stream = -INFINITY;
    for (int64_t i = 0; i < r.n_heads; i++) {
        const struct ab_head_row *h = &r.heads[i];
        /* query heads 2k and 2k+1 share kv head k: the group value is the larger */
        const struct ab_head_row *pair = &r.heads[i ^ 1];
        cr_expect_eq(h->echo_group, fmax(h->echo_score, pair->echo_score));
        cr_expect_eq(h->induction_group, fmax(h->induction_score, pair->induction_score));
        cr_expect(!isnan(h->echo_score) && !isnan(h->induction_score));
        if (!strcmp(h->profile, "induction"))
            min_slash = h->echo_score < min_slash ? h->echo_score : min_slash;
        else if (!strcmp(h->profile, "streaming"))
            max_stream = h->echo_score > max_stream ? h->echo_score : max_stream;
    }
    cr_assert(isfinite(min_slash) && isfinite(max_stream), "both profiles must be drawn");
    /* the slash look-back (period = block length) lands on the earlier copy */
    cr_expect(min_slash > 0.1 && max_stream < 0.01, "echo: slash heads >= %g, streaming <= %g",
              min_slash, max_stream);
    ab_results_heads_free(&r);
    ab_results_free(&r);
    cr_expect_eq(t_run(NULL, NULL, "gen --probe bogus -o %s", t_path("bogus.h5")), 64);
    cr_expect_eq(t_run(NULL, NULL, "gen --probe repeat --n 8 -o %s", t_path("short.h5")), 64);
}

/* ---------------------------------------------------------------- real-text retrieval score */

Test(heads, copy_span_detection)
{
    int32_t tok[N];
    struct ab_copy_span c;
    /* BOS + X + X exactly (R = 20, tokens repeat inside X too) */
    tok[0] = 1;
    for (int x = 0; x < 20; x++) tok[1 + x] = tok[21 + x] = 3 + x % 7;
    cr_assert(ab_heads_copy_span(tok, 41, 16, &c));
    cr_expect(c.a == 1 && c.b == 21 && c.len == 20, "%lld %lld %lld", (long long)c.a,
              (long long)c.b, (long long)c.len);
    /* X + X without BOS, R = 3: the exact form needs no minimum length */
    int32_t small[6] = {5, 6, 7, 5, 6, 7};
    cr_assert(ab_heads_copy_span(small, 6, 16, &c));
    cr_expect(c.a == 0 && c.b == 3 && c.len == 3);
    /* the two-copies block (63 tokens then a fresh one): the longest repeat */
    two_copies(tok);
    cr_assert(ab_heads_copy_span(tok, N, 16, &c));
    cr_expect(c.a == 1 && c.b == 64 && c.len == 63, "%lld %lld %lld", (long long)c.a,
              (long long)c.b, (long long)c.len);
    /* distinct tokens except one repeated span of 15 (< 16): none; of 16: found */
    for (int j = 0; j < N; j++) tok[j] = 1000 + j;
    for (int x = 0; x < 15; x++) tok[90 + x] = tok[10 + x];
    cr_expect(!ab_heads_copy_span(tok, N, 16, &c));
    tok[105] = tok[25];
    cr_assert(ab_heads_copy_span(tok, N, 16, &c));
    cr_expect(c.a == 10 && c.b == 90 && c.len == 16);
}

/* A head whose every row i puts logit 100 on key target[i] (one-hot keys, as point_head). */
static void target_head(struct built *b, const int *target)
{
    built_init(b);
    for (int j = 0; j < N; j++) b->k[j * N + j] = 1;
    for (int i = 0; i < N; i++) b->q[i * N + target[i]] = 100;
}

Test(heads, real_text_retrieval_score)
{
    static struct built b;
    int32_t tok[N];
    two_copies(tok); /* BOS, X (rows 1..63), X again (rows 64..126), a fresh token */
    struct ab_copy_span c;
    cr_assert(ab_heads_copy_span(tok, N, 16, &c));
    struct ab_head_row r;
    /* row t of the second copy attends the previous copy's next token, t - 63 + 1, which holds
     * tokens[t + 1]: every one of the 62 tests scores */
    int target[N];
    for (int i = 0; i < N; i++) target[i] = i >= 64 && i < 127 ? i - 62 : i;
    target_head(&b, target);
    stats_full(&b, 64, 16, tok, &c, &r);
    NEAR(r.retrieval_score, 1, 1e-12);
    cr_expect_eq(r.retrieval_head, 1);
    /* the same head with half of the second copy pointed at BOS instead: 31 of 62 */
    for (int i = 64; i < 95; i++) target[i] = 0;
    target_head(&b, target);
    stats_full(&b, 64, 16, tok, &c, &r);
    NEAR(r.retrieval_score, 31.0 / 62, 1e-12);
    /* an echo head (the same token in the first copy, not the next one) scores 0 */
    point_head(&b, tok, 0);
    stats_full(&b, 64, 16, tok, &c, &r);
    NEAR(r.retrieval_score, 0, 1e-12);
    cr_expect_eq(r.retrieval_head, 0);
    /* a sink head (all mass on token 0, outside the first copy) scores 0 */
    built_init(&b);
    b.k[0] = 1;
    for (int i = 0; i < N; i++) b.q[i * N] = 100;
    stats_full(&b, 64, 16, tok, &c, &r);
    NEAR(r.retrieval_score, 0, 1e-12);
    /* no copy span: NaN, as before */
    stats_full(&b, 64, 16, tok, NULL, &r);
    cr_expect(isnan(r.retrieval_score));
}

/* ---------------------------------------------------------------- hidden states */

/* A workload of n_layer layers, one head, n_seq rows, d = n_seq (one-hot keys), with hidden
 * states (n_layer + 1, n_seq, dm) zeroed. */
static void hidden_workload(struct ab_workload *w, int64_t n_layer, int64_t n_seq, int64_t dm)
{
    memset(w, 0, sizeof *w);
    cr_assert_eq(ab_workload_alloc(w, n_layer, 1, 1, n_seq, n_seq, 2), AB_OK);
    w->causal = 1, w->scale = 1.0;
    w->d_model = dm;
    w->hidden = ab_alloc(sizeof(float) * (size_t)((n_layer + 1) * n_seq * dm));
    cr_assert_not_null(w->hidden);
}

static float *hid_at(struct ab_workload *w, int64_t l, int64_t t)
{
    return w->hidden + (l * w->n_seq + t) * w->d_model;
}

/* Fills every hidden state with seeded values of magnitude in [lo, hi), random signs. */
static void hidden_fill(struct ab_workload *w, double lo, double hi, uint64_t seed)
{
    struct ab_rng g;
    ab_rng_init(&g, seed, 1);
    int64_t count = (w->n_layer + 1) * w->n_seq * w->d_model;
    for (int64_t e = 0; e < count; e++) {
        double m = lo + (hi - lo) * ab_rng_uniform(&g);
        w->hidden[e] = (float)(ab_rng_uniform(&g) < 0.5 ? -m : m);
    }
}

static int cmp_f(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

/* Median of |hidden state l| by a full sort (the definition). */
static double brute_median(const struct ab_workload *w, int64_t l)
{
    int64_t count = w->n_seq * w->d_model;
    float *a = malloc(sizeof(float) * (size_t)count);
    cr_assert_not_null(a);
    for (int64_t e = 0; e < count; e++) a[e] = fabsf(w->hidden[l * count + e]);
    qsort(a, (size_t)count, sizeof(float), cmp_f);
    double m = count % 2 ? a[count / 2] : 0.5 * ((double)a[count / 2 - 1] + a[count / 2]);
    free(a);
    return m;
}

Test(heads, massive_activation_planted)
{
    struct ab_workload w;
    hidden_workload(&w, 2, 64, 8);
    struct ab_heads_opts o;
    ab_heads_defaults(&o);
    /* background |x| ~ 0.1 (median ~0.1): 500 is > 100 and > 1000 x median; 50 is not > 100 */
    hidden_fill(&w, 0.05, 0.15, 7);
    hid_at(&w, 1, 0)[3] = 500;
    hid_at(&w, 1, 5)[6] = 50;
    struct ab_hidden_stats hs;
    cr_assert_eq(ab_hidden_stats_compute(&w, "w.h5", 0, &o, &hs), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(hs.n_states, 3);
    const struct ab_layer_row *L = hs.layers;
    cr_expect_eq(L[1].layer, 1);
    cr_expect_eq(L[1].top1, 500);
    cr_expect(L[1].top1_pos == 0 && L[1].top1_dim == 3);
    cr_expect_eq(L[1].top2, 50);
    cr_expect(L[1].top2_pos == 5 && L[1].top2_dim == 6);
    cr_expect(fabs(L[1].top3) < 0.15);
    cr_expect_eq(L[1].n_massive, 1);
    cr_expect_eq(L[1].n_massive_dims, 1);
    cr_expect_str_eq(L[1].massive, "3@0:500");
    for (int l = 0; l < 3; l++) {
        cr_expect_eq(L[l].median_abs, brute_median(&w, l), "layer %d", l);
        cr_expect_str_eq(L[l].workload, "w.h5");
    }
    cr_expect(L[0].n_massive == 0 && L[2].n_massive == 0 && !strcmp(L[0].massive, ""));
    cr_expect(L[0].top1_pos >= 0 && fabs(L[0].top1) < 0.15);
    ab_hidden_stats_free(&hs);

    /* background ~1 (median ~1): 500 fails the ratio rule (< 1000 x median) at the defaults,
     * and is massive with --massive-ratio 100; 50 never passes |x| > 100 */
    hidden_fill(&w, 0.5, 1.5, 8);
    hid_at(&w, 1, 0)[3] = 500;
    hid_at(&w, 1, 5)[6] = -50;
    cr_assert_eq(ab_hidden_stats_compute(&w, "w.h5", 0, &o, &hs), AB_OK);
    cr_expect_eq(hs.layers[1].n_massive, 0);
    cr_expect(hs.layers[1].top1 == 500 && hs.layers[1].top2 == -50);
    ab_hidden_stats_free(&hs);
    o.massive_ratio = 100;
    cr_assert_eq(ab_hidden_stats_compute(&w, "w.h5", 0, &o, &hs), AB_OK);
    cr_expect_eq(hs.layers[1].n_massive, 1);
    cr_expect_str_eq(hs.layers[1].massive, "3@0:500");
    ab_hidden_stats_free(&hs);
    /* a NaN in the hidden states is bad data naming the workload */
    hid_at(&w, 2, 1)[0] = NAN;
    cr_expect_eq(ab_hidden_stats_compute(&w, "w.h5", 0, &o, &hs), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "w.h5") != NULL, "%s", ab_errmsg());
    ab_workload_free(&w);
}

Test(heads, secondary_bounds)
{
    int64_t lo, hi;
    ab_hidden_secondary_bounds(32, &lo, &hi); /* metrics.md's 4 < L < n_layer - 15 */
    cr_expect(lo == 4 && hi == 17);
    ab_hidden_secondary_bounds(5, &lo, &hi); /* stories260K */
    cr_expect(lo == 1 && hi == 3);
    ab_hidden_secondary_bounds(6, &lo, &hi);
    cr_expect(lo == 1 && hi == 4);
}

/* 6 layers (7 hidden states), 32 rows, d_model 8: token 0 is the sink, its state 10 e_0 in
 * states 1..5 (high: the others have norm ~1) and e_0 in states 0 and 6 (not high); the other
 * tokens live in dims 1..7 (orthogonal to it) except token 9, parallel (1.5 e_0) in states
 * 1, 2, 3 and 6, and token 12, antiparallel (-e_0) in state 2 only. */
static void lifetime_workload(struct ab_workload *w)
{
    hidden_workload(w, 6, 32, 8);
    struct ab_rng g;
    ab_rng_init(&g, 11, 2);
    for (int64_t l = 0; l <= 6; l++)
        for (int64_t t = 0; t < 32; t++) {
            float *x = hid_at(w, l, t);
            for (int c = 1; c < 8; c++) x[c] = (float)(0.4 * ab_rng_normal(&g));
        }
    for (int64_t l = 0; l <= 6; l++) {
        float *s = hid_at(w, l, 0);
        memset(s, 0, 8 * sizeof *s);
        s[0] = l >= 1 && l <= 5 ? 10 : 1;
    }
    const int par[4] = {1, 2, 3, 6};
    for (int k = 0; k < 4; k++) {
        float *x = hid_at(w, par[k], 9);
        memset(x, 0, 8 * sizeof *x);
        x[0] = 1.5f;
    }
    hid_at(w, 4, 9)[0] = 0.3f; /* cos well below 0.9 */
    float *y = hid_at(w, 2, 12);
    memset(y, 0, 8 * sizeof *y);
    y[0] = -1;
}

Test(heads, secondary_sink_lifetime)
{
    struct ab_workload w;
    lifetime_workload(&w);
    struct ab_heads_opts o;
    ab_heads_defaults(&o);
    struct ab_hidden_stats hs;
    cr_assert_eq(ab_hidden_stats_compute(&w, "life.h5", 0, &o, &hs), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(hs.n_high, 5);
    for (int l = 0; l <= 6; l++)
        cr_expect_eq(hs.layers[l].sink_high, l >= 1 && l <= 5, "state %d ratio %g", l,
                     hs.layers[l].sink_norm_ratio);
    cr_expect_eq(hs.lifetime[9], 3); /* state 6 is parallel too, but not high-norm */
    cr_expect_eq(hs.lifetime[12], 1);
    cr_expect_eq(hs.lifetime[0], 5);
    for (int t = 1; t < 32; t++)
        if (t != 9 && t != 12) cr_expect_eq(hs.lifetime[t], 0, "token %d", t);
    cr_expect(hs.life_lo == 1 && hs.life_hi == 4);
    NEAR(hs.layers[3].sink_norm, 10, 1e-6);
    ab_hidden_stats_free(&hs);

    /* through the head table: every head attends key 0 (logit 6) and key 9 (logit 5), so key 9
     * is its secondary sink, and its lifetime 3 is within 1 < L < 4 */
    for (int64_t l = 0; l < 6; l++) {
        float *q = ab_workload_q(&w, l, 0), *k = ab_workload_k(&w, l, 0);
        k[0] = 1.5f, k[9 * 32] = 1.25f;
        for (int i = 0; i < 32; i++) q[i * 32] = 4;
    }
    struct ab_head_row *rows = NULL;
    int64_t n = 0;
    cr_assert_eq(ab_heads_workload(&w, "life.h5", &o, &rows, &n, &hs), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(n, 6);
    for (int64_t x = 0; x < n; x++) {
        cr_expect(rows[x].sink_pos == 0 && rows[x].sec_pos1 == 9, "sinks %lld %lld",
                  (long long)rows[x].sink_pos, (long long)rows[x].sec_pos1);
        cr_expect_eq(rows[x].sec_lifetime, 3);
        cr_expect_eq(rows[x].sec_lifetime_pos, 9);
        cr_expect_eq(rows[x].sec_secondary, 1);
        free(rows[x].workload), free(rows[x].profile);
    }
    free(rows);
    cr_expect_eq(hs.n_states, 7);
    ab_hidden_stats_free(&hs);
    /* without hidden states: -1 everywhere, no statistics */
    ab_free(w.hidden);
    w.hidden = NULL, w.d_model = 0;
    cr_assert_eq(ab_heads_workload(&w, "life.h5", &o, &rows, &n, &hs), AB_OK);
    for (int64_t x = 0; x < n; x++) {
        cr_expect(rows[x].sec_lifetime == -1 && rows[x].sec_secondary == -1);
        free(rows[x].workload), free(rows[x].profile);
    }
    free(rows);
    cr_expect_null(hs.layers);
    ab_workload_free(&w);
}

Test(heads, layers_table_round_trip)
{
    struct ab_results r;
    ab_results_init(&r);
    r.n_layers = 2;
    r.layers = calloc(2, sizeof *r.layers);
    for (int i = 0; i < 2; i++) {
        struct ab_layer_row *l = &r.layers[i];
        l->workload = strdup(i ? "a,\"b\".h5" : "w.h5");
        l->layer = i;
        l->top1 = i ? NAN : 512.25, l->top2 = -3.5, l->top3 = 1e-310;
        l->top1_pos = i ? -1 : 0, l->top1_dim = 3, l->top2_pos = 7, l->top2_dim = 1;
        l->top3_pos = 2, l->top3_dim = 0;
        l->median_abs = 0.1, l->n_massive = 20 * i, l->n_massive_dims = i;
        l->massive = strdup(i ? "3@0:500 3@9:-400 ..." : "");
        l->sink_pos = 0, l->sink_norm = 10, l->median_norm = 3, l->sink_norm_ratio = 10 / 3.0;
        l->sink_high = i;
    }
    const char *path = t_path("layers.h5");
    cr_assert_eq(ab_results_write_h5(path, &r), AB_OK, "%s", ab_errmsg());
    struct ab_results back;
    cr_assert_eq(ab_results_read_h5(path, &back), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(back.n_layers, 2);
    int n_cols;
    const struct ab_column *cols = ab_results_layer_columns(&n_cols);
    cr_expect_eq(n_cols, 20);
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < n_cols; c++) {
            const char *a = (const char *)&r.layers[i] + cols[c].offset;
            const char *b = (const char *)&back.layers[i] + cols[c].offset;
            if (cols[c].type == AB_COL_STR)
                cr_expect_str_eq(*(char *const *)a, *(char *const *)b, "%s", cols[c].name);
            else
                cr_expect(!memcmp(a, b, 8), "row %d column %s differs", i, cols[c].name);
        }
    ab_results_free(&back);
    const char *csv = t_path("layers-layers.csv");
    cr_assert_eq(ab_results_write_layers_csv(csv, &r), AB_OK);
    size_t len;
    char *text = (char *)t_slurp(csv, &len);
    cr_assert(text);
    cr_expect(!strncmp(text, "workload,layer,top1,top1_pos,top1_dim,top2,", 43), "%s", text);
    cr_expect_eq(t_count_lines(text), 3);
    free(text);
    /* an impossible value is bad data on reading */
    r.layers[1].n_massive = -1;
    cr_assert_eq(ab_results_write_h5(path, &r), AB_OK);
    cr_expect_eq(ab_results_read_h5(path, &back), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "/layers") != NULL, "%s", ab_errmsg());
    ab_results_free(&back);
    /* without layers: no /layers group, n_layers 0 on reading */
    ab_results_layers_free(&r);
    cr_assert_eq(ab_results_write_h5(path, &r), AB_OK);
    cr_assert_eq(ab_results_read_h5(path, &back), AB_OK);
    cr_expect_eq(back.n_layers, 0);
    cr_expect_null(back.layers);
    ab_results_free(&back);
    ab_results_free(&r);
}

/* ---------------------------------------------------------------- stories260K, real captures */

static const char *stories_model(void)
{
    static char p[1024];
    const char *sh = getenv("AB_SHARED");
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.bin", sh ? sh : "../shared");
    return p;
}

Test(heads, cli_real_capture_hidden_layers, .timeout = 300)
{
    const char *wl = t_path("story-hidden.h5"), *out = t_path("story-heads.h5");
    char *so = NULL, *se = NULL;
    cr_assert_eq(t_run(NULL, &se, "capture --model %s --prompt \"\" --generate 511 --hidden -o %s",
                       stories_model(), wl),
                 0, "%s", se ? se : "");
    free(se), se = NULL;
    cr_assert_eq(t_run(&so, &se, "heads %s -o %s", wl, out), 0, "%s", se ? se : "");
    char want[1200];
    snprintf(want, sizeof want, "massive activations (|x| > 100 and > 1000 x median) in %s: ", wl);
    cr_expect(strstr(so, want) != NULL, "%s", so);
    snprintf(want, sizeof want, "longest secondary-sink lifetimes in %s (sink 0,", wl);
    cr_expect(strstr(so, want) != NULL, "%s", so);
    cr_expect(strstr(so, "entropy over heads: mean ") && strstr(so, "locality over heads: mean "));
    char csv[1200];
    snprintf(csv, sizeof csv, "%.*s-layers.csv", (int)(strlen(out) - 3), out);
    /* the one line names the results file and the CSV tables beside it */
    cr_expect(strstr(so, strrchr(csv, '/') + 1) != NULL && t_exists(csv), "%s", so);
    free(so), free(se);
    cr_assert_eq(t_run(&so, &se, "heads %s -o %s --verbose", wl, out), 0, "%s", se ? se : "");
    char line[1300];
    snprintf(line, sizeof line, "\n%s\n", csv);
    cr_expect(strstr(so, line) != NULL, "--verbose lists every file: %s", so);
    free(so), free(se);

    /* /layers against a brute force over the workload's hidden states */
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(wl, &w), AB_OK, "%s", ab_errmsg());
    cr_assert_not_null(w.hidden);
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(out, &r), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(r.n_layers, w.n_layer + 1);
    for (int64_t l = 0; l <= w.n_layer; l++) {
        const struct ab_layer_row *L = &r.layers[l];
        int64_t count = w.n_seq * w.d_model, arg = 0;
        const float *H = w.hidden + l * count;
        for (int64_t e = 1; e < count; e++)
            if (fabsf(H[e]) > fabsf(H[arg])) arg = e;
        cr_expect_eq(L->layer, l);
        cr_expect_eq(L->top1, H[arg], "layer %lld", (long long)l);
        cr_expect_eq(fabs(L->top1), fabs((double)H[L->top1_pos * w.d_model + L->top1_dim]));
        cr_expect_eq(L->median_abs, brute_median(&w, l), "layer %lld", (long long)l);
        cr_expect(fabs(L->top1) >= fabs(L->top2) && fabs(L->top2) >= fabs(L->top3));
        double s2 = 0;
        for (int64_t c = 0; c < w.d_model; c++) s2 += (double)H[c] * H[c];
        NEAR(L->sink_norm, sqrt(s2), 1e-9);
        cr_expect_eq(L->sink_pos, 0);
        cr_expect_eq(L->sink_high, L->sink_norm_ratio > 2);
        /* a 260K-parameter model has no activation near 100 */
        cr_expect_eq(L->n_massive, 0);
    }
    /* with hidden states every head with a secondary sink has a lifetime >= 0 */
    for (int64_t i = 0; i < r.n_heads; i++) {
        const struct ab_head_row *h = &r.heads[i];
        cr_expect_eq(h->sec_lifetime >= 0, h->sec_pos1 >= 0, "head %lld", (long long)i);
    }
    ab_results_free(&r);
    ab_workload_free(&w);

    /* a capture without --hidden: no /layers, no layers CSV, lifetimes -1; the copy task gives
     * every head a real-text retrieval score in [0, 1] */
    const char *cw = t_path("copy.h5"), *co = t_path("copy-heads.h5");
    cr_assert_eq(t_run(NULL, NULL, "capture --model %s --copy-task 100 -o %s", stories_model(), cw),
                 0);
    cr_assert_eq(t_run(&so, NULL, "heads %s -o %s", cw, co), 0);
    cr_expect(strstr(so, "massive activations") == NULL, "%s", so);
    free(so);
    snprintf(csv, sizeof csv, "%.*s-layers.csv", (int)(strlen(co) - 3), co);
    cr_expect(!t_exists(csv));
    cr_assert_eq(ab_results_read_h5(co, &r), AB_OK);
    cr_expect_eq(r.n_layers, 0);
    for (int64_t i = 0; i < r.n_heads; i++) {
        cr_expect_eq(r.heads[i].sec_lifetime, -1);
        double s = r.heads[i].retrieval_score;
        cr_expect(s >= 0 && s <= 1, "head %lld retrieval %g", (long long)i, s);
    }
    ab_results_free(&r);
    /* bad thresholds are usage errors and leave nothing */
    const char *bad = t_path("bad.h5");
    cr_expect_eq(t_run(NULL, NULL, "heads %s --massive-abs -1 -o %s", cw, bad), 64);
    cr_expect_eq(t_run(NULL, NULL, "heads %s --massive-ratio nan -o %s", cw, bad), 64);
    cr_expect_eq(t_run(NULL, NULL, "heads %s --sink-min-rows 0 -o %s", cw, bad), 64);
    cr_expect(!t_exists(bad));
}

/* `heads --json`: one document that parses, a row per head of the results file, the summary
 * counts agreeing with the rows, the options as recorded (a non-default epsilon). */
Test(heads, json_summary_matches_the_file, .timeout = 300)
{
    const char *wl = model_path(), *out = t_path("json-heads.h5");
    char *so = NULL, *se = NULL;
    cr_assert_eq(t_run(&so, &se, "heads %s --epsilon 0.25 --json -o %s", wl, out), 0, "%s", se);
    json_error_t je;
    json_t *doc = json_loads(so, 0, &je);
    cr_assert_not_null(doc, "not JSON (%s): %s", je.text, so);
    struct ab_results r;
    cr_assert_eq(ab_results_read_h5(out, &r), AB_OK, "%s", ab_errmsg());
    json_t *rows = json_object_get(doc, "rows");
    cr_expect_eq((int64_t)json_array_size(rows), r.n_heads);
    cr_expect_eq(json_integer_value(json_object_get(doc, "heads")), r.n_heads);
    int64_t like = 0, sinks = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *h = json_array_get(rows, i);
        like += json_is_true(json_object_get(h, "retrieval_like"));
        sinks += json_real_value(json_object_get(h, "sink_score")) > 0.25;
        cr_expect_eq(json_integer_value(json_object_get(h, "layer")), r.heads[i].layer);
    }
    cr_expect_eq(json_integer_value(json_object_get(doc, "retrieval_like_heads")), like);
    cr_expect_eq(json_integer_value(json_object_get(doc, "sink_heads")), sinks);
    cr_expect_eq(json_real_value(json_object_get(json_object_get(doc, "options"), "epsilon")), 0.25);
    cr_expect(!strstr(so, "sink ratio at epsilon"), "no human text with --json");
    ab_results_free(&r);
    json_decref(doc);
    free(so), free(se);
}
