/* routing.c - `routing`: content-based sparse attention by online k-means clustering, the
 * Routing Transformer (Roy et al. 2021, "Efficient Content-Based Sparse Attention with Routing
 * Transformers", arXiv 2003.05997, section 4: routing attention, balanced clusters of equal
 * size by top-k per centroid), made training-free.
 *
 * Rule: the rows of Q and of K are scaled to unit length and pooled (2n points); spherical
 * k-means with c = 16 centroids, seeded by c distinct points drawn with p->seed, runs 2 Lloyd
 * steps (assign each point to the centroid of largest dot product; centroid = normalised mean
 * of its points, unchanged when empty); then each query is routed to its nearest centroid, and
 * each cluster holds the w keys nearest to its centroid (balanced clusters: the same w for all,
 * ties to the lower index; a key may sit in several clusters). Query row i keeps the keys of its
 * cluster it may see, plus a local window of the last w_loc keys it sees (w_loc = 256 for
 * n >= 32768, scaled below: 32 at n = 4096). Exact softmax over the kept keys within the
 * causal mask. Knob: w, the keys per cluster (1..n); w = n is dense.
 *
 * Cost (data-dependent: counted from the selection): 4d per kept cell; selection FLOPs
 * 6 n d (unit scaling of 2n points: norm and scale) + (S + 1) 4 n c d (S = 2 Lloyd
 * assignments and the final one, 2d per point and centroid over 2n points) + S (2 n d + 3 c d)
 * (centroid sums and normalisation); ops: (S + 1) 2 n c (argmax comparisons) and
 * c n ceil(log2 n) (ordering the keys of each cluster). The clustering does not depend on w:
 * prepare() computes it once per problem (method.h), so the solver's bisection and every budget
 * of a head reuse it; the ledger counts it in every run.
 *
 * Deviations from the paper: a few Lloyd steps on the head itself instead of centroids learned
 * by exponential moving averages during training; Q and K are clustered together but kept
 * separate (the paper shares them); c fixed at 16 (the paper uses about sqrt(n)) and the knob is
 * the cluster size w, so that cost grows with it (a larger c costs less attention and more
 * clustering); every query is routed (the balanced paper version also caps queries per
 * cluster); the local window stands in for the paper's local attention heads; prefill only. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/dynamic.h"
#include "methods/method.h"
#include "methods/routing.h"

enum { C = AB_ROUTING_C, STEPS = 2, W_LOCAL = 256 };

/* The knob-independent clustering of one head (prepare()'s state). */
struct rt_clusters {
    int64_t n;
    int32_t *qc;  /* (n) cluster of each query */
    int32_t *kc;  /* (n) nearest cluster of each key */
    int32_t *ord; /* (C, n) keys of each cluster, nearest first */
};

static void rt_free(struct rt_clusters *x)
{
    ab_free(x->qc); /* qc, kc and ord share one allocation */
    *x = (struct rt_clusters){0};
}

struct scored {
    float s;
    int32_t j;
};

static int scored_cmp(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

/* Index of the largest of c values. */
static int32_t argmax(const float *x, int64_t c)
{
    int32_t best = 0;
    for (int64_t a = 1; a < c; a++)
        if (x[a] > x[best]) best = (int32_t)a;
    return best;
}

static int rt_compute(const struct ab_problem *p, struct rt_clusters *out)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_q, d = h->d, np = 2 * n, c = AB_MIN(C, np);
    struct ab_dyn_qk x;
    int rc = ab_dyn_qk_get(h, &x);
    if (rc) return rc;
    float *pt = ab_alloc(ab_size_mul((size_t)(np * d + C * d + np * C), sizeof(float)));
    float *mu = pt ? pt + np * d : NULL, *sim = pt ? mu + C * d : NULL; /* (np,d) (C,d) (np,C) */
    int32_t *as = ab_alloc(ab_size_mul((size_t)np, sizeof(int32_t)));   /* (np) assignment */
    double *sum = ab_alloc(ab_size_mul((size_t)(C * d), sizeof(double)));
    struct scored *tmp = ab_alloc(ab_size_mul((size_t)n, sizeof(struct scored)));
    out->qc = ab_alloc(ab_size_mul((size_t)(2 * n + C * n), sizeof(int32_t)));
    if (!pt || !as || !sum || !tmp || !out->qc) {
        rc = ab_fail(AB_E_NOMEM, "routing: cannot allocate the clustering");
        goto done;
    }
    out->n = n;
    out->kc = out->qc + n;
    out->ord = out->kc + n;
    /* points: unit Q rows then unit K rows */
    for (int64_t t = 0; t < np; t++) {
        const float *src = t < n ? x.q + t * d : x.k + (t - n) * d;
        double nn = 0;
        for (int64_t e = 0; e < d; e++) nn += (double)src[e] * src[e];
        float inv = nn > 0 ? (float)(1 / sqrt(nn)) : 0.0f;
        for (int64_t e = 0; e < d; e++) pt[t * d + e] = src[e] * inv;
    }
    /* seeds: c distinct points (Floyd's sampling, the assignment array as the taken set) */
    struct ab_rng rng;
    ab_rng_init(&rng, p->seed, ab_stream(0x726f7574 /* "rout" */, (uint64_t)p->self, 0, 0));
    int64_t got = 0;
    for (int64_t t = np - c; t < np; t++) {
        int64_t v = ab_rng_below(&rng, t + 1);
        if (as[v]) v = t;
        as[v] = 1;
        memcpy(mu + got++ * d, pt + v * d, (size_t)d * sizeof(float));
    }
    for (int step = 0; step <= STEPS; step++) {
        /* sim = points . centroids^T, then each point's nearest centroid */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)np, (int)c, (int)d, 1.0f, pt,
                    (int)d, mu, (int)d, 0.0f, sim, (int)C);
        for (int64_t t = 0; t < np; t++) as[t] = argmax(sim + t * C, c);
        if (step == STEPS) break;
        /* centroid = normalised mean of its points */
        memset(sum, 0, (size_t)(C * d) * sizeof(double));
        for (int64_t t = 0; t < np; t++)
            for (int64_t e = 0; e < d; e++) sum[as[t] * d + e] += pt[t * d + e];
        for (int64_t a = 0; a < c; a++) {
            double nn = 0;
            for (int64_t e = 0; e < d; e++) nn += sum[a * d + e] * sum[a * d + e];
            if (nn > 0)
                for (int64_t e = 0; e < d; e++) mu[a * d + e] = (float)(sum[a * d + e] / sqrt(nn));
        }
    }
    for (int64_t i = 0; i < n; i++) out->qc[i] = as[i], out->kc[i] = as[n + i];
    /* each cluster's keys, nearest first */
    for (int64_t a = 0; a < C; a++) {
        for (int64_t j = 0; j < n; j++)
            tmp[j] = (struct scored){a < c ? sim[(n + j) * C + a] : 0.0f, (int32_t)j};
        qsort(tmp, (size_t)n, sizeof *tmp, scored_cmp);
        for (int64_t j = 0; j < n; j++) out->ord[a * n + j] = tmp[j].j;
    }
done:
    if (rc) rt_free(out);
    ab_free(pt);
    ab_free(as);
    ab_free(sum);
    ab_free(tmp);
    ab_dyn_qk_free(&x);
    return rc;
}

static void rt_prepare_free(void *state)
{
    if (!state) return;
    rt_free(state);
    free(state);
}

/* The clustering of p: O(n c d) for the Lloyd steps, O(c n log n) to order the clusters. */
static int rt_prepare(const struct ab_problem *p, void **state)
{
    ab_dyn_check(p);
    struct rt_clusters *cl = calloc(1, sizeof *cl);
    if (!cl) return ab_fail(AB_E_NOMEM, "routing: cannot allocate the clustering");
    int rc = rt_compute(p, cl);
    if (rc) {
        free(cl);
        return rc;
    }
    *state = cl;
    return AB_OK;
}

int ab_routing_clusters(const struct ab_problem *p, int32_t *q_cluster, int32_t *k_cluster)
{
    ab_dyn_check(p);
    struct rt_clusters cl = {0};
    int rc = rt_compute(p, &cl);
    if (rc) return rc;
    memcpy(q_cluster, cl.qc, (size_t)cl.n * sizeof(int32_t));
    memcpy(k_cluster, cl.kc, (size_t)cl.n * sizeof(int32_t));
    rt_free(&cl);
    return AB_OK;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* How many of a sorted list of w keys are below j: binary search. */
static int64_t count_below(const int32_t *list, int64_t w, int64_t j)
{
    int64_t a = 0, b = w;
    while (a < b) {
        int64_t mid = a + (b - a) / 2;
        if (list[mid] < j)
            a = mid + 1;
        else
            b = mid;
    }
    return a;
}

static int rt_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    ab_dyn_check(p);
    const struct ab_head *h = p->h;
    int64_t n = h->n_q, d = h->d, c = AB_MIN(C, 2 * n);
    int64_t w = !(knob >= 1) ? 1 : knob >= (double)n ? n : (int64_t)knob;
    int64_t wl = AB_MIN(n, ab_dyn_scaled(W_LOCAL, n));
    const struct rt_clusters *cl = p->prep;
    assert(cl); /* the engine prepared p */
    int rc = AB_OK;
    /* each cluster's w keys in index order */
    int32_t *top = ab_alloc(ab_size_mul((size_t)(C * w), sizeof(int32_t))); /* (C, w) */
    if (!top) return ab_fail(AB_E_NOMEM, "routing: cannot allocate the clusters' keys");
    for (int64_t a = 0; a < C; a++) {
        memcpy(top + a * w, cl->ord + a * n, (size_t)w * sizeof(int32_t));
        qsort(top + a * w, (size_t)w, sizeof(int32_t), cmp_i32);
    }
    /* row i: its cluster's keys below the window, then the window [lo, v) */
    double cells = 0;
    for (int64_t i = p->q0; i < n; i++) {
        int64_t v = ab_head_visible(h, i), lo = AB_MAX(0, v - wl);
        cells += (double)(count_below(top + cl->qc[i] * w, w, lo) + v - lo);
    }
    ab_ledger_attend(led, h, cells);
    double np = 2.0 * (double)n;
    led->flops_select += 3.0 * np * (double)d + (STEPS + 1) * 2.0 * np * (double)c * (double)d +
                         STEPS * (np * (double)d + 3.0 * (double)c * (double)d);
    led->ops_other += (STEPS + 1) * np * (double)c + (double)C * ab_dyn_sort_ops(n);
    ab_keep_clear(keep);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], v = ab_head_visible(h, i), lo = AB_MAX(0, v - wl);
        const int32_t *list = top + cl->qc[i] * w;
        for (int64_t t = 0; t < w && list[t] < lo; t++) ab_keep_set(keep, r, list[t]);
        ab_keep_range(keep, r, lo, v);
    }
    if (o) rc = ab_attend_kept(p, keep, o, NULL);
    ab_free(top);
    return rc;
}

const struct ab_method ab_method_routing = {
    .name = "routing",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "spherical k-means (16 centroids, 2 seeded Lloyd steps) on unit Q and K rows; a "
               "query reads the w keys nearest its centroid plus a local window",
    .citation = "Routing Transformer, Roy et al. 2021, arXiv 2003.05997",
    .cost_words = "4d per kept cell (counted from the selection); selection 6nd + 3 x 4ncd "
                  "(2 Lloyd assignments and the final one over the 2n points) + 2 (2nd + 3cd); "
                  "c = 16",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS,
    .cost = NULL,
    .run = rt_run,
    .prepare = rt_prepare,
    .prepare_free = rt_prepare_free,
};
