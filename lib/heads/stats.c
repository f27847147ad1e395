/* stats.c - the per-head statistics of `attnbench heads` (stats.h, metrics.md "Head and sink
 * statistics"). The column, diagonal, entropy and locality statistics come from mapstats (one
 * streaming pass); a second pass over the same rows accumulates what needs the values: the head
 * output O_i = sum_j A[i,j] v_j, the output of the head restricted to sink + recent keys
 * (softmax renormalised over that set, i.e. O_stream_i = sum_{j in S} A[i,j] v_j / sum_{j in S}
 * A[i,j]), the distant mass, the top-1 key of the task rows and, with tokens, the echo and
 * induction masses, and on real text the top-1 key of the copy rows. Deviations from metrics.md:
 * the output deviation is a Frobenius ratio over all rows; a sink also needs at least
 * sink_min_rows (16) query rows that see it, otherwise the last keys of a causal head (alpha
 * over a handful of rows; a local head's last 9 keys) would all qualify. On real text the
 * retrieval score uses one copy (the copy task, or the longest repeated span of >= 16 tokens)
 * as its one test. */
#include "heads/stats.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "heads/hidden.h"
#include "heads/mapstats.h"

void ab_heads_defaults(struct ab_heads_opts *o)
{
    o->window = 64;
    o->sink_threshold = 0.1;
    o->sink_min_rows = 16;
    o->stream_sink = 64;
    o->stream_recent = 256;
    o->distant_first = 4;
    o->distant_last = 64;
    o->copy_min_len = 16;
    o->massive_abs = 100;
    o->massive_ratio = 1000;
    o->sink_norm_ratio = 2;
    o->sink_cos = 0.9;
    o->progress = NULL;
    o->progress_user = NULL;
}

struct pass2 {
    const struct ab_head *h;
    const struct ab_tasks *tasks;
    const int32_t *tokens;           /* (n_k) or NULL */
    const struct ab_copy_span *copy; /* with tokens, or NULL */
    int64_t copy_hits; /* copy rows whose top-1 key holds the next token in the first copy */
    const struct ab_heads_opts *o;
    double *out, *out_s; /* (d_v) O_i and the restricted sum */
    double distant, norm_sum, dev2, out2, rows;
    int64_t hits, n_tasks;
    double echo, induction;
    int64_t n_copy_rows; /* rows with an earlier copy of their token */
};

/* 1 when key row j is in the needle span of task t. */
static int in_needle(const struct ab_tasks *t, int64_t task, int64_t j)
{
    int64_t lo = t->key_off[task], hi = t->key_off[task + 1];
    if (t->kind[task] == AB_TASK_MULTI_RETRIEVE) hi = lo + 1; /* the asked needle only */
    for (int64_t x = lo; x < hi; x++)
        if (t->key_pos[x] == j) return 1;
    return 0;
}

static int is_scored(const struct ab_tasks *t, int64_t task)
{
    return t->kind[task] == AB_TASK_RETRIEVE || t->kind[task] == AB_TASK_MULTI_RETRIEVE;
}

static int visit2(int64_t i, const double *p, int64_t n_vis, double lse, void *user)
{
    (void)lse;
    struct pass2 *a = user;
    const struct ab_head *h = a->h;
    const struct ab_heads_opts *o = a->o;
    int64_t dv = h->d_v, qp = h->q_pos[i];
    memset(a->out, 0, sizeof(double) * (size_t)dv);
    memset(a->out_s, 0, sizeof(double) * (size_t)dv);
    double dist = 0, mass_s = 0;
    int64_t top = -1;
    for (int64_t j = 0; j < n_vis; j++) {
        double pj = p[j];
        int64_t back = qp - h->k_pos[j]; /* how far behind the query key j is */
        if (j >= o->distant_first && back >= o->distant_last) dist += pj;
        int keep = j < o->stream_sink || back < o->stream_recent;
        const float *v = h->v + j * dv;
        for (int64_t c = 0; c < dv; c++) a->out[c] += pj * v[c];
        if (keep) {
            mass_s += pj;
            for (int64_t c = 0; c < dv; c++) a->out_s[c] += pj * v[c];
        }
        if (top < 0 || pj > p[top]) top = j;
    }
    double on2 = 0, d2 = 0;
    for (int64_t c = 0; c < dv; c++) {
        double os = mass_s > 0 ? a->out_s[c] / mass_s : 0;
        on2 += a->out[c] * a->out[c];
        d2 += (os - a->out[c]) * (os - a->out[c]);
    }
    a->distant += dist;
    a->norm_sum += sqrt(on2);
    a->out2 += on2;
    a->dev2 += d2;
    a->rows += 1;
    if (a->tokens && n_vis > 0 && n_vis <= h->n_k) {
        /* the query's own token: key n_vis - 1 sits at the query's position (square heads) */
        int32_t tok = a->tokens[i];
        double echo = 0, ind = 0;
        int copies = 0;
        for (int64_t j = 0; j < n_vis && j < i; j++) {
            if (a->tokens[j] != tok) continue;
            copies = 1;
            echo += p[j];
            if (j + 1 < i && j + 1 < n_vis) ind += p[j + 1];
        }
        if (copies) a->echo += echo, a->induction += ind, a->n_copy_rows++;
    }
    for (int64_t t = 0; a->tasks && t < a->tasks->n; t++)
        if (a->tasks->row[t] == i && is_scored(a->tasks, t))
            a->hits += top >= 0 && in_needle(a->tasks, t, top);
    /* real text: row i of the second copy produces w = tokens[i + 1]; a hit when the top-1 key
     * lies in the first copy and holds w */
    const struct ab_copy_span *c = a->copy;
    if (c && a->tokens && i >= c->b && i < c->b + c->len - 1 && top >= c->a &&
        top < c->a + c->len && a->tokens[top] == a->tokens[i + 1])
        a->copy_hits++;
    return 0;
}

int ab_heads_copy_span(const int32_t *tokens, int64_t n, int64_t min_len, struct ab_copy_span *out)
{
    /* the copy task exactly: [BOS] X X */
    for (int64_t first = 0; first <= 1; first++) {
        int64_t r = (n - first) / 2;
        if (r < 2 || first + 2 * r != n) continue;
        int64_t x = 0;
        while (x < r && tokens[first + x] == tokens[first + r + x]) x++;
        if (x == r) {
            *out = (struct ab_copy_span){.a = first, .b = first + r, .len = r};
            return 1;
        }
    }
    /* the longest non-overlapping repeat: along each diagonal (distance dist = b - a) a run of
     * equal tokens ending at i gives a copy of min(run, dist) tokens ending at i */
    struct ab_copy_span best = {0, 0, 0};
    for (int64_t dist = 1; dist < n; dist++) {
        int64_t run = 0;
        for (int64_t i = 0; i + dist < n; i++) {
            run = tokens[i] == tokens[i + dist] ? run + 1 : 0;
            int64_t len = run < dist ? run : dist;
            if (len > best.len) best = (struct ab_copy_span){i - len + 1, i - len + 1 + dist, len};
        }
    }
    if (best.len < min_len || best.len < 2) return 0;
    *out = best;
    return 1;
}

/* ||x_0|| over the mean of ||x_j||, j > 0, for rows x (n, d); NaN when undefined. */
static double norm_ratio(const float *x, int64_t n, int64_t d)
{
    double x0 = 0, rest = 0;
    for (int64_t j = 0; j < n; j++) {
        double s2 = 0;
        for (int64_t c = 0; c < d; c++) s2 += (double)x[j * d + c] * x[j * d + c];
        if (j == 0) x0 = sqrt(s2);
        else rest += sqrt(s2);
    }
    return n > 1 && rest > 0 ? x0 / (rest / (double)(n - 1)) : NAN;
}

int ab_heads_stats(const struct ab_head *h, const struct ab_tasks *tasks, const int32_t *tokens,
                   const struct ab_copy_span *copy, const struct ab_heads_opts *o,
                   struct ab_head_row *out)
{
    struct ab_map_stats ms;
    int rc = ab_map_stats_compute(h, o->window, &ms);
    if (rc) return rc;
    int64_t n = ms.n;
    double *alpha_out[AB_HEAD_N_ALPHA] = {&out->alpha0, &out->alpha1, &out->alpha2, &out->alpha3,
                                          &out->alpha4, &out->alpha5, &out->alpha6, &out->alpha7,
                                          &out->alpha8, &out->alpha9};
    for (int k = 0; k < AB_HEAD_N_ALPHA; k++) *alpha_out[k] = k < n ? ms.alpha[k] : NAN;
    out->sink_score = n > 0 ? ms.alpha[0] : NAN;

    /* sinks: keys with alpha above the threshold, by position; the first is the primary */
    int64_t *sec_pos[AB_HEAD_N_SEC] = {&out->sec_pos1, &out->sec_pos2, &out->sec_pos3,
                                       &out->sec_pos4};
    double *sec_alpha[AB_HEAD_N_SEC] = {&out->sec_alpha1, &out->sec_alpha2, &out->sec_alpha3,
                                        &out->sec_alpha4};
    out->n_sinks = 0;
    out->sink_pos = -1;
    for (int s = 0; s < AB_HEAD_N_SEC; s++) *sec_pos[s] = -1, *sec_alpha[s] = NAN;
    for (int64_t k = 0; k < n; k++) {
        if (!(ms.alpha[k] > o->sink_threshold) || ms.seen[k] < o->sink_min_rows) continue;
        if (out->n_sinks == 0)
            out->sink_pos = k;
        else if (out->n_sinks <= AB_HEAD_N_SEC) {
            *sec_pos[out->n_sinks - 1] = k;
            *sec_alpha[out->n_sinks - 1] = ms.alpha[k];
        }
        out->n_sinks++;
    }
    out->first_weight = ms.first_weight;
    out->entropy = ms.entropy;
    out->entropy_norm = ms.entropy_norm;
    out->locality = ms.locality;
    int64_t top = n / 100 > 1 ? n / 100 : 1; /* 1% of n */
    out->vertical_mass = ab_map_stats_vertical_mass(&ms, top);
    out->slash_mass = ab_map_stats_slash_mass(&ms, top);
    ab_map_stats_free(&ms);

    /* value drain and key ratio: ||v_0||, ||k_0|| over the mean norm of the other rows (Gu et
     * al.: the sink token's value is small; its key is what every query matches) */
    out->value_drain = norm_ratio(h->v, h->n_k, h->d_v);
    out->key_ratio = norm_ratio(h->k, h->n_k, h->d);

    /* tokens index query and key rows alike: only for square heads */
    struct pass2 a = {.h = h, .tasks = tasks, .tokens = h->n_q == h->n_k ? tokens : NULL, .o = o};
    int copy_ok = copy && a.tokens && copy->len >= 2 && copy->a >= 0 &&
                  copy->a + copy->len <= copy->b && copy->b + copy->len <= h->n_k;
    a.copy = copy_ok ? copy : NULL;
    a.out = malloc(sizeof(double) * (size_t)(h->d_v > 0 ? h->d_v : 1));
    a.out_s = malloc(sizeof(double) * (size_t)(h->d_v > 0 ? h->d_v : 1));
    if (!a.out || !a.out_s) {
        free(a.out), free(a.out_s);
        return ab_fail(AB_E_NOMEM, "cannot allocate head statistics (d_v %lld)", (long long)h->d_v);
    }
    rc = ab_attn_ref_visit(h, NULL, 0, visit2, &a);
    free(a.out), free(a.out_s);
    if (rc) return rc;
    double rows = a.rows > 0 ? a.rows : 1;
    out->out_norm = a.norm_sum / rows;
    out->distant_mass = a.distant / rows;
    out->out_dev = a.out2 > 0 ? sqrt(a.dev2 / a.out2) : 0;
    int64_t n_scored = 0;
    for (int64_t t = 0; tasks && t < tasks->n; t++) n_scored += is_scored(tasks, t);
    if (n_scored)
        out->retrieval_score = (double)a.hits / (double)n_scored;
    else if (a.copy)
        out->retrieval_score = (double)a.copy_hits / (double)(a.copy->len - 1);
    else
        out->retrieval_score = NAN;
    out->retrieval_head = out->retrieval_score > 0.1;
    out->echo_score = a.n_copy_rows ? a.echo / (double)a.n_copy_rows : NAN;
    out->induction_score = a.n_copy_rows ? a.induction / (double)a.n_copy_rows : NAN;
    out->first_weight_norm = NAN;
    out->out_norm_norm = NAN;
    out->retrieval_like = 0;
    out->sec_lifetime = out->sec_lifetime_pos = out->sec_secondary = -1;
    return AB_OK;
}

/* Sets each row's lifetime fields from the per-token lifetimes of hs: the secondary sink with
 * the largest alpha among the stored ones (the earlier on ties). */
static void set_lifetimes(struct ab_head_row *r, int64_t n, const struct ab_hidden_stats *hs)
{
    for (int64_t x = 0; x < n; x++) {
        const int64_t pos[AB_HEAD_N_SEC] = {r[x].sec_pos1, r[x].sec_pos2, r[x].sec_pos3,
                                            r[x].sec_pos4};
        const double alpha[AB_HEAD_N_SEC] = {r[x].sec_alpha1, r[x].sec_alpha2, r[x].sec_alpha3,
                                             r[x].sec_alpha4};
        int best = -1;
        for (int s = 0; s < AB_HEAD_N_SEC; s++)
            if (pos[s] >= 0 && pos[s] < hs->n_seq && (best < 0 || alpha[s] > alpha[best])) best = s;
        r[x].sec_lifetime = r[x].sec_lifetime_pos = r[x].sec_secondary = -1;
        if (best < 0) continue;
        int64_t life = hs->lifetime[pos[best]];
        r[x].sec_lifetime = life;
        r[x].sec_lifetime_pos = pos[best];
        r[x].sec_secondary = life > hs->life_lo && life < hs->life_hi;
    }
}

int ab_heads_workload(const struct ab_workload *w, const char *name, const struct ab_heads_opts *o,
                      struct ab_head_row **rows, int64_t *n, struct ab_hidden_stats *hid)
{
    int64_t nh = w->n_layer * w->n_head;
    if (hid) memset(hid, 0, sizeof *hid);
    struct ab_copy_span copy_span;
    const struct ab_copy_span *copy = NULL;
    if (w->tokens && w->tasks.n == 0 &&
        ab_heads_copy_span(w->tokens, w->n_seq, o->copy_min_len, &copy_span))
        copy = &copy_span;
    struct ab_head_row *r = calloc((size_t)(nh > 0 ? nh : 1), sizeof *r);
    if (!r) return ab_fail(AB_E_NOMEM, "cannot allocate %lld head rows", (long long)nh);
    int failed = 0;
    int64_t done = 0;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t x = 0; x < nh; x++) {
        struct ab_head h;
        int64_t layer = x / w->n_head, head = x % w->n_head;
        ab_workload_head(w, layer, head, &h);
        r[x].layer = layer, r[x].head = head, r[x].kv_head = ab_workload_kv_of(w, head);
        if (ab_heads_stats(&h, w->tasks.n ? &w->tasks : NULL, w->tokens, copy, o, &r[x]) != AB_OK) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp atomic update
        done++;
        if (o->progress && omp_get_thread_num() == 0) {
            int64_t d;
#pragma omp atomic read
            d = done;
            o->progress(o->progress_user, d, nh);
        }
    }
    if (o->progress) o->progress(o->progress_user, nh, nh);
    /* strings and layer normalisation on the calling thread */
    for (int64_t x = 0; !failed && x < nh; x++) {
        const char *prof = w->profile ? w->profile[r[x].layer * w->n_kv_head + r[x].kv_head] : "";
        r[x].workload = strdup(name ? name : "");
        r[x].profile = strdup(prof ? prof : "");
        if (!r[x].workload || !r[x].profile) failed = 1;
    }
    for (int64_t l = 0; !failed && l < w->n_layer; l++) {
        struct ab_head_row *lr = r + l * w->n_head;
        double fw = 0, on = 0;
        for (int64_t h = 0; h < w->n_head; h++) fw += lr[h].first_weight, on += lr[h].out_norm;
        fw /= (double)w->n_head, on /= (double)w->n_head;
        for (int64_t h = 0; h < w->n_head; h++) {
            lr[h].first_weight_norm = fw > 0 ? lr[h].first_weight / fw : NAN;
            lr[h].out_norm_norm = on > 0 ? lr[h].out_norm / on : NAN;
        }
    }
    /* grouped heads: echo and induction as the max over the query heads of one kv head */
    for (int64_t x = 0; !failed && x < nh; x++) {
        r[x].echo_group = r[x].induction_group = NAN;
        for (int64_t y = x - r[x].head; y < x - r[x].head + w->n_head; y++) {
            if (r[y].kv_head != r[x].kv_head) continue;
            double e = r[y].echo_score, i = r[y].induction_score;
            if (!isnan(e) && (isnan(r[x].echo_group) || e > r[x].echo_group)) r[x].echo_group = e;
            if (!isnan(i) && (isnan(r[x].induction_group) || i > r[x].induction_group))
                r[x].induction_group = i;
        }
    }
    if (failed) {
        for (int64_t x = 0; x < nh; x++) free(r[x].workload), free(r[x].profile);
        free(r);
        return ab_fail(AB_E_NOMEM, "cannot allocate head statistics (%lld heads, n %lld)",
                       (long long)nh, (long long)w->n_seq);
    }
    /* hidden states: massive activations and secondary-sink lifetimes */
    if (w->hidden) {
        struct ab_hidden_stats hs;
        int rc = ab_hidden_stats_compute(w, name, 0, o, &hs);
        if (rc) {
            for (int64_t x = 0; x < nh; x++) free(r[x].workload), free(r[x].profile);
            free(r);
            return rc;
        }
        set_lifetimes(r, nh, &hs);
        if (hid)
            *hid = hs;
        else
            ab_hidden_stats_free(&hs);
    }
    *rows = r;
    *n = nh;
    return AB_OK;
}

static const struct ab_head_row *sort_base; /* qsort has no user pointer: main thread only */

static int by_dev_desc(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    double da = sort_base[a].out_dev, db = sort_base[b].out_dev;
    if (da > db) return -1;
    if (da < db) return 1;
    return (a > b) - (a < b);
}

void ab_heads_label(struct ab_head_row *rows, int64_t n, double top_fraction)
{
    for (int64_t i = 0; i < n; i++) rows[i].retrieval_like = 0;
    int64_t k = (int64_t)ceil(top_fraction * (double)n - 1e-9);
    if (k <= 0 || n <= 0) return;
    if (k > n) k = n;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    if (idx) {
        for (int64_t i = 0; i < n; i++) idx[i] = i;
        sort_base = rows;
        qsort(idx, (size_t)n, sizeof *idx, by_dev_desc);
        for (int64_t i = 0; i < k; i++) rows[idx[i]].retrieval_like = 1;
        free(idx);
        return;
    }
    /* no memory for the index: k selection passes */
    for (int64_t s = 0; s < k; s++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++)
            if (!rows[i].retrieval_like && (best < 0 || rows[i].out_dev > rows[best].out_dev))
                best = i;
        rows[best].retrieval_like = 1;
    }
}

double ab_heads_sink_ratio(const struct ab_head_row *rows, int64_t n, double epsilon)
{
    if (n <= 0) return NAN;
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += rows[i].sink_score > epsilon;
    return 100.0 * (double)c / (double)n;
}
