/* retrieval_attn.c - `retrieval-attn`: approximate top-K attention through a vector index over
 * the context keys, after Liu et al., "RetrievalAttention: Accelerating Long-Context LLM
 * Inference via Vector Retrieval", arXiv 2409.10516. methods.md fixes the index: an inverted
 * file (IVF) of k-means cells, probed per query.
 *
 * Index (once per phase, from the context keys alone: decode protocol, method.h): c cells,
 * c = ceil(sqrt(n_ctx) / 4); k-means by 4 Lloyd steps on a seeded sample of min(n_ctx, 32 c)
 * keys (faiss-style training on a sample; the first c sampled keys start the centroids, a cell
 * left empty keeps its centroid), then every context key goes to its nearest centroid
 * (argmax k.c - |c|^2 / 2). Query (every decode query): rank the cells by q.centroid (inner
 * product: attention is maximum inner product search), scan whole cells in that order until at
 * least L = min(n_ctx, 2 K) keys are scanned (faiss's max_codes), score the scanned keys by
 * q.k and read their top K, plus every decode key up to the query (new tokens are not in the
 * index). Outputs: exact attention over what was read, softmax renormalised over it. When the
 * scan covers every cell (L = n_ctx, i.e. K >= n_ctx / 2, or the hook ab_retrieval_run with
 * max_scan = n_ctx) the kept set is the exact top K.
 *
 * Knob: K, context keys read per decode query, integer in [1, n]. K >= n_ctx reads everything:
 * dense.
 * Cost (data-dependent: the scanned count follows the cells' sizes; the solver bisects on
 * selection-only runs, which build the index and rank the cells without scanning keys):
 *     cells        = sum over decode queries of min(K, n_ctx) + (v_i - n_ctx)
 *     flops_once   = 2 d c (4 s + n_ctx), one-off: the Lloyd steps' and the final
 *                    assignment's products (s = the sample), built once at the end of prefill
 *                    and amortised over the decode horizon G (architecture.md)
 *     flops_select = per decode query 2 c d (cell ranking) + 2 d scanned_i (scanned keys)
 *     ops_other    = (4 s + n_ctx) c compares + 4 s d adds (the index) + per query c log2 c
 *                    (cell sort) + scanned_i compares (top K) + one exp per cell.
 * Over a horizon of G decode steps the index costs about c (4 s + n_ctx) / (2 n_ctx G) of dense
 * decode (0.19 at n = 4096 if G were 64; 0.012 at the default G = 1024): an IVF pays off over
 * long generations, which the paper targets.
 * Deviations:
 * - the paper's index is an attention-aware graph index built on CPU with a static GPU part
 *   (initial and recent tokens); methods.md's row is the IVF baseline it compares with, and
 *   keeps no static tokens: only the decode keys are read outside the index;
 * - the scan stops after the cell that reaches L (whole cells), so it scans at least L keys;
 * - one index per query head (seeded by the head), even under GQA; ties go to the earlier key
 *   (and the lower cell). */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/kv.h"
#include "methods/method.h"

enum { IVF_LLOYD = 4, IVF_SAMPLE_PER_CELL = 32 };

/* The index's shape: c cells trained on s sampled keys of n_ctx. */
struct ivf_geom {
    int64_t n_ctx, c, s;
};

static struct ivf_geom ivf_geom_of(const struct ab_problem *p)
{
    struct ivf_geom g = {.n_ctx = kv_n_ctx(p)};
    if (g.n_ctx > 0) {
        g.c = AB_MIN(g.n_ctx, AB_MAX(1, (int64_t)ceil(sqrt((double)g.n_ctx) / 4.0)));
        g.s = AB_MIN(g.n_ctx, IVF_SAMPLE_PER_CELL * g.c);
    }
    return g;
}

/* Nearest centroid of x (d) among cent (c, d) with half squared norms hn (c). */
static int64_t ivf_nearest(const float *x, const float *cent, const float *hn, int64_t c, int64_t d)
{
    int64_t best = 0;
    float bs = -INFINITY;
    for (int64_t t = 0; t < c; t++) {
        float dot = 0;
        for (int64_t e = 0; e < d; e++) dot += x[e] * cent[t * d + e];
        if (dot - hn[t] > bs) bs = dot - hn[t], best = t;
    }
    return best;
}

/* The index over keys k (n_ctx, d) (file comment): cell of each key into cell (n_ctx),
 * centroids into cent (c, d), keys grouped by cell (ascending within) into list (n_ctx) with
 * offsets off (c + 1). Scratch: hn (c), sum (c, d) doubles, cnt (c), samp (n_ctx). */
static void ivf_build(const struct ivf_geom *g, const float *k, int64_t d, uint64_t seed,
                      float *cent, int64_t *cell, int64_t *list, int64_t *off, float *hn,
                      double *sum, int64_t *cnt, int64_t *samp)
{
    int64_t n = g->n_ctx, c = g->c, s = g->s;
    struct ab_rng r;
    ab_rng_init(&r, seed, ab_stream(0x697666 /* "ivf" */, 0, 0, 0));
    for (int64_t j = 0; j < n; j++) samp[j] = j;
    for (int64_t t = 0; t < s; t++) { /* partial Fisher-Yates: samp[0..s) a uniform sample */
        int64_t u = t + ab_rng_below(&r, n - t), x = samp[t];
        samp[t] = samp[u], samp[u] = x;
    }
    for (int64_t t = 0; t < c; t++) memcpy(cent + t * d, k + samp[t] * d, sizeof(float) * d);
    for (int64_t it = 0; it <= IVF_LLOYD; it++) {
        for (int64_t t = 0; t < c; t++) {
            double nn = 0;
            for (int64_t e = 0; e < d; e++) nn += (double)cent[t * d + e] * cent[t * d + e];
            hn[t] = (float)(0.5 * nn);
        }
        if (it == IVF_LLOYD) break; /* the last centroids assign every key below */
        memset(sum, 0, sizeof(double) * (size_t)(c * d));
        memset(cnt, 0, sizeof(int64_t) * (size_t)c);
        for (int64_t t = 0; t < s; t++) {
            const float *x = k + samp[t] * d;
            int64_t b = ivf_nearest(x, cent, hn, c, d);
            cnt[b]++;
            for (int64_t e = 0; e < d; e++) sum[b * d + e] += x[e];
        }
        for (int64_t t = 0; t < c; t++)
            if (cnt[t] > 0)
                for (int64_t e = 0; e < d; e++) cent[t * d + e] = (float)(sum[t * d + e] / cnt[t]);
    }
    memset(off, 0, sizeof(int64_t) * (size_t)(c + 1));
    for (int64_t j = 0; j < n; j++) off[(cell[j] = ivf_nearest(k + j * d, cent, hn, c, d)) + 1]++;
    for (int64_t t = 0; t < c; t++) off[t + 1] += off[t];
    memcpy(cnt, off, sizeof(int64_t) * (size_t)c);
    for (int64_t j = 0; j < n; j++) list[cnt[cell[j]]++] = j;
}

/* prepare()'s state: the index of the problem's context keys (ivf_build). It does not depend on
 * K, and every budget and every step of the solver's bisection (the scanned count makes the
 * cost data-dependent) read the same one. The ledger counts the build in every run
 * (flops_once): prepare saves wall time only. */
struct ivf_index {
    float *cent, *hn;     /* (c, d), (c) */
    int64_t *cell, *list; /* (n_ctx), (n_ctx) */
    int64_t *off;         /* (c + 1) */
};

static void ivf_prepare_free(void *state)
{
    struct ivf_index *x = state;
    if (!x) return;
    ab_free(x->cent), ab_free(x->hn), ab_free(x->cell), ab_free(x->list), ab_free(x->off);
    free(x);
}

/* The index of p (empty without context keys): O(d c (IVF_LLOYD s + n_ctx)). */
static int ivf_prepare(const struct ab_problem *p, void **state)
{
    struct ivf_geom g = ivf_geom_of(p);
    int64_t d = p->h->d;
    size_t nc = (size_t)AB_MAX(g.n_ctx, 1), cc = (size_t)AB_MAX(g.c, 1);
    struct ivf_index *x = calloc(1, sizeof *x);
    double *sum = ab_alloc(ab_size_mul(cc * (size_t)d, sizeof(double))); /* (c, d) */
    int64_t *cnt = ab_alloc(ab_size_mul(cc, sizeof(int64_t)));           /* (c) */
    int64_t *samp = ab_alloc(ab_size_mul(nc, sizeof(int64_t)));          /* (n_ctx) */
    if (x) {
        x->cent = ab_alloc(ab_size_mul(cc * (size_t)d, sizeof(float)));
        x->hn = ab_alloc(ab_size_mul(cc, sizeof(float)));
        x->cell = ab_alloc(ab_size_mul(nc, sizeof(int64_t)));
        x->list = ab_alloc(ab_size_mul(nc, sizeof(int64_t)));
        x->off = ab_alloc(ab_size_mul(cc + 1, sizeof(int64_t)));
    }
    int rc = AB_OK;
    if (!x || !x->cent || !x->hn || !x->cell || !x->list || !x->off || !sum || !cnt || !samp) {
        ivf_prepare_free(x);
        rc = ab_fail(AB_E_NOMEM, "retrieval-attn: cannot allocate an index of %lld keys",
                     (long long)g.n_ctx);
    } else {
        if (g.n_ctx > 0)
            ivf_build(&g, p->h->k, d, p->seed, x->cent, x->cell, x->list, x->off, x->hn, sum,
                      cnt, samp);
        *state = x;
    }
    ab_free(sum), ab_free(cnt), ab_free(samp);
    return rc;
}

/* order (c): the cells by q.centroid, descending (ties: lower cell first). sc (c) scratch. */
static void ivf_rank(const float *q, const float *cent, int64_t c, int64_t d, float *sc,
                     int64_t *order)
{
    for (int64_t t = 0; t < c; t++) {
        float dot = 0;
        for (int64_t e = 0; e < d; e++) dot += q[e] * cent[t * d + e];
        sc[t] = dot;
        int64_t u = t; /* insertion sort */
        while (u > 0 && sc[order[u - 1]] < dot) order[u] = order[u - 1], u--;
        order[u] = t;
    }
}

static int64_t ivf_budget(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

int ab_retrieval_run(const struct ab_problem *p, double knob, int64_t max_scan, float *o,
                     struct ab_keep *keep, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "retrieval-attn");
    if (rc) return rc;
    const struct ab_head *h = p->h;
    const struct ivf_index *ix = p->prep;
    assert(ix); /* the engine prepared p */
    const float *cent = ix->cent;
    const int64_t *off = ix->off, *list = ix->list;
    struct ivf_geom g = ivf_geom_of(p);
    int64_t K = ivf_budget(knob), d = h->d, n_ctx = g.n_ctx, c = g.c;
    int64_t L = AB_MIN(n_ctx, AB_MAX(max_scan > 0 ? max_scan : 2 * K, K));
    size_t nc = (size_t)AB_MAX(n_ctx, 1), cc = (size_t)AB_MAX(c, 1);
    float *csc = ab_alloc(ab_size_mul(cc, sizeof(float)));       /* (c) cell scores */
    int64_t *order = ab_alloc(ab_size_mul(cc, sizeof(int64_t))); /* (c) probe order */
    float *ks = ab_alloc(ab_size_mul(nc, sizeof(float)));        /* (n_ctx) scanned */
    float *tmp = ab_alloc(ab_size_mul(nc, sizeof(float)));       /* (n_ctx) */
    uint8_t *mark = ab_alloc(nc);                                /* (n_ctx) */
    if (!csc || !order || !ks || !tmp || !mark) {
        rc = ab_fail(AB_E_NOMEM, "retrieval-attn: cannot allocate scan scratch for %lld keys",
                     (long long)n_ctx);
        goto done;
    }
    double cells = 0, scanned = 0;
    int64_t r = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i), n_scan = 0, n_cells = 0;
        cells += (double)(AB_MIN(K, n_ctx) + AB_MAX(0, v - n_ctx));
        if (n_ctx > 0) {
            ivf_rank(h->q + i * d, cent, c, d, csc, order);
            while (n_scan < L) n_scan += off[order[n_cells] + 1] - off[order[n_cells]], n_cells++;
        }
        scanned += (double)n_scan;
        if (!(r < p->n_rows && p->rows[r] == i)) continue;
        /* score the scanned cells' keys, read their top K and the decode keys */
        const float *q = h->q + i * d;
        for (int64_t j = 0; j < n_ctx; j++) ks[j] = -INFINITY;
        for (int64_t t = 0; t < n_cells; t++)
            for (int64_t u = off[order[t]]; u < off[order[t] + 1]; u++) {
                const float *kj = h->k + list[u] * d;
                float dot = 0;
                for (int64_t e = 0; e < d; e++) dot += q[e] * kj[e];
                ks[list[u]] = dot;
            }
        memset(mark, 0, nc);
        kv_top_k(ks, n_ctx, K, mark, tmp);
        for (int64_t j = 0; j < n_ctx; j++)
            if (mark[j]) ab_keep_set(keep, r, j);
        ab_keep_range(keep, r, n_ctx, v);
        r++;
    }
    double s = (double)g.s, nx = (double)n_ctx, cd = (double)c, m = (double)(h->n_q - p->q0);
    ab_ledger_attend(led, h, cells);
    led->flops_once += 2.0 * d * cd * (IVF_LLOYD * s + nx);
    led->flops_select += m * 2.0 * cd * d + 2.0 * d * scanned;
    led->ops_other += (IVF_LLOYD * s + nx) * cd + IVF_LLOYD * s * d +
                      m * cd * ceil(log2(cd > 1 ? cd : 1)) + scanned;
    if (o) rc = ab_attend_kept(p, keep, o, NULL);
done:
    ab_free(csc);
    ab_free(order);
    ab_free(ks);
    ab_free(tmp);
    ab_free(mark);
    return rc;
}

static int retrieval_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                         struct ab_ledger *led)
{
    return ab_retrieval_run(p, knob, 0, o, keep, led);
}

const struct ab_method ab_method_retrieval_attn = {
    .name = "retrieval-attn",
    .family = AB_FAMILY_KV,
    .summary = "approximate top K per decode query from an IVF index (k-means cells) over the "
               "context keys",
    .citation = "RetrievalAttention, Liu et al. 2024, arXiv 2409.10516",
    .cost_words = "4d per kept cell: min(K, n_ctx) + decode keys per query; one-off: the k-means "
                  "index; per step: 2cd centroid products + 2d per scanned key (>= 2K)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "K", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS,
    .cost = NULL,
    .run = retrieval_run,
    .prepare = ivf_prepare,
    .prepare_free = ivf_prepare_free,
};
