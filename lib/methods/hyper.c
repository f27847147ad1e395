/* hyper.c - `hyper`: HyperAttention (Han et al. 2024, "HyperAttention: Long-context Attention
 * in Near-Linear Time", arXiv 2310.05869, Algorithms 2-4: sortLSH, block-diagonal plus sampled
 * columns, causal by recursive halving).
 *
 * Rule, for a knob x = b + m (b = ceil(x / 2) block size, m = x - b samples):
 * - causal attention on a segment [s, e) of rows: if it holds at most x rows, exact causal
 *   attention inside it; else split at mid = s + (e - s) / 2 into the causal halves [s, mid),
 *   [mid, e) (recursively) and the rectangle queries [mid, e) x keys [s, mid), which every
 *   query sees whole; a query's parts are merged by log-sum-exp (one softmax over the union);
 * - a rectangle of n_q queries and n_k keys is exact when n_k <= x + 2r (approximating it would
 *   cost more than the exact product); else: angular LSH of its queries and keys with r = 7
 *   Gaussian projections (seeded, one set per head), codes ordered along a Gray code so that
 *   neighbouring buckets differ by one bit; queries and keys sorted by (code, index); sorted
 *   query t falls in block beta = floor(t nblk / n_q) of the nblk = ceil(n_k / b) blocks of b
 *   sorted keys and reads that block exactly, plus x - |block| keys drawn uniformly without
 *   replacement from the other keys of the rectangle (seeded per rectangle and block), each
 *   weighted by (n_k - |block|) / (x - |block|), the unbiased estimate of the rest's mass.
 * x >= n is exact everywhere: dense.
 *
 * Cost (analytic, from the shapes alone): 4d per kept cell: x per query of an approximate
 * rectangle, n_k per query of an exact one, and the causal cells of the leaves; selection FLOPs
 * 2 r d per hashed row (each approximate rectangle hashes its n_q + n_k rows: in all about
 * 4 n r d per level); ops: sorting the rows of each approximate rectangle
 * (c ceil(log2 c) for its queries and for its keys). Cost never falls as x grows.
 *
 * Deviations from the paper: leaves below x rows instead of the paper's fixed 4096 (which
 * would make every sequence we sweep dense); the sample is drawn per query block from the keys
 * outside the block and sized to fill x (the paper draws one shared sample of m columns and
 * masks those in the block), so every query reads exactly x keys; rectangles small enough to
 * be cheaper exact are done exactly; causal prefill only, and queries must see their own index
 * (vis(i) >= i + 1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { R = 7 /* LSH projections */ };

static int64_t knob_x(double knob, int64_t n)
{
    if (!(knob >= 1)) return 1;
    return knob >= (double)n ? n : (int64_t)knob;
}

/* 1 when the rectangle with n_k keys is done exactly at x. */
static int rect_exact(int64_t n_k, int64_t x)
{
    return n_k <= x + 2 * R;
}

/* The ledger of the causal segment [s, e) at x (recursive; depth log2 n). */
static void hy_ledger(const struct ab_head *h, int64_t s, int64_t e, int64_t x,
                      struct ab_ledger *led)
{
    if (e - s <= x) {
        double cells = 0;
        for (int64_t i = s; i < e; i++) cells += (double)(AB_MIN(e, ab_head_visible(h, i)) - s);
        ab_ledger_attend(led, h, cells);
        return;
    }
    int64_t mid = s + (e - s) / 2, nq = e - mid, nk = mid - s;
    hy_ledger(h, s, mid, x, led);
    hy_ledger(h, mid, e, x, led);
    if (rect_exact(nk, x)) {
        ab_ledger_attend(led, h, (double)nq * (double)nk);
    } else {
        ab_ledger_attend(led, h, (double)nq * (double)x);
        led->flops_select += 2.0 * R * (double)h->d * (double)(nq + nk);
        led->ops_other += ab_dyn_sort_ops(nq) + ab_dyn_sort_ops(nk);
    }
}

/* Requires vis(i) >= i + 1 for every row (rectangles are whole). */
static int hy_check(const struct ab_problem *p)
{
    ab_dyn_check(p);
    for (int64_t i = 0; i < p->h->n_q; i++)
        if (ab_head_visible(p->h, i) < i + 1)
            return ab_fail(AB_E_DATA, "hyper: query %ld does not see its own key", (long)i);
    return AB_OK;
}

static int hy_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = hy_check(p);
    if (!rc) hy_ledger(p->h, 0, p->h->n_q, knob_x(knob, p->h->n_k), led);
    return rc;
}

/* ---- the run: online softmax state of each evaluated row ---- */

struct hy_run {
    const struct ab_problem *p;
    int64_t x;
    const float *proj; /* (R, d) */
    int64_t *row_of;   /* (n) evaluated index of each row, or -1 */
    double *mx, *z;    /* (n_rows) running max and normaliser */
    double *acc;       /* (n_rows, d_v) */
    struct ab_keep *keep;
    double cells; /* computed */
    /* scratch for rectangles */
    int64_t *qs, *ks, *pos; /* (n) sorted queries, sorted keys, sorted position of a query */
    int32_t *code;          /* (n) */
    uint8_t *mark;          /* (n) */
};

/* Adds key j with weight w to evaluated row r (query i). */
static void hy_add(struct hy_run *st, int64_t r, int64_t i, int64_t j, double w)
{
    const struct ab_head *h = st->p->h;
    int64_t d = h->d, dv = h->d_v;
    double dot = 0;
    for (int64_t c = 0; c < d; c++) dot += (double)h->q[i * d + c] * h->k[j * d + c];
    double s = h->scale * dot;
    double *acc = st->acc + r * dv;
    if (s > st->mx[r]) {
        double f = exp(st->mx[r] - s); /* 0 when the row was empty (mx = -inf) */
        st->z[r] *= f;
        for (int64_t c = 0; c < dv; c++) acc[c] *= f;
        st->mx[r] = s;
    }
    double e = w * exp(s - st->mx[r]);
    st->z[r] += e;
    for (int64_t c = 0; c < dv; c++) acc[c] += e * h->v[j * dv + c];
    ab_keep_set(st->keep, r, j);
    st->cells += 1;
}

/* Gray-code rank of the LSH code of row x (d): neighbouring ranks differ by one sign. */
static int32_t hy_code(const float *x, const float *proj, int64_t d)
{
    int32_t g = 0;
    for (int t = 0; t < R; t++) {
        double dot = 0;
        for (int64_t c = 0; c < d; c++) dot += (double)proj[t * d + c] * x[c];
        g |= (dot > 0) << t;
    }
    for (int shift = 1; shift < R; shift <<= 1) g ^= g >> shift;
    return g;
}

static _Thread_local const int32_t *sort_code; /* the codes the comparison reads */

static int by_code(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (sort_code[x] != sort_code[y]) return sort_code[x] < sort_code[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* Sorts rows [a, b) of x (n, d) by (code, index) into out. */
static void hy_sort(struct hy_run *st, const float *x, int64_t a, int64_t b, int64_t *out)
{
    int64_t d = st->p->h->d;
    for (int64_t i = a; i < b; i++) {
        st->code[i] = hy_code(x + i * d, st->proj, d);
        out[i - a] = i;
    }
    sort_code = st->code;
    qsort(out, (size_t)(b - a), sizeof(int64_t), by_code);
}

/* The approximate rectangle queries [mid, e) x keys [s, mid), for its evaluated rows. */
static void hy_rect(struct hy_run *st, int64_t s, int64_t mid, int64_t e)
{
    const struct ab_head *h = st->p->h;
    int64_t nq = e - mid, nk = mid - s, x = st->x, b = (x + 1) / 2, nblk = (nk + b - 1) / b;
    hy_sort(st, h->k, s, mid, st->ks);
    hy_sort(st, h->q, mid, e, st->qs);
    for (int64_t t = 0; t < nq; t++) st->pos[st->qs[t]] = t;
    /* each evaluated query: its block exactly, then its block's sample (drawn per block) */
    for (int64_t i = mid; i < e; i++) {
        int64_t r = st->row_of[i];
        if (r < 0) continue;
        int64_t beta = st->pos[i] * nblk / nq, k0 = beta * b, k1 = AB_MIN(nk, k0 + b);
        int64_t in = k1 - k0, rest = nk - in, m = x - in;
        double w = m > 0 ? (double)rest / (double)m : 0;
        for (int64_t u = k0; u < k1; u++) hy_add(st, r, i, st->ks[u], 1.0);
        /* m of the rest, Floyd's sampling in [0, rest) with marks; stream per block */
        struct ab_rng rng;
        ab_rng_init(&rng, st->p->seed,
                    ab_stream(0x68797072 /* "hypr" */, (uint64_t)st->p->self,
                              (uint64_t)(s * 1000003 + e), (uint64_t)beta));
        for (int64_t t = rest - m; t < rest; t++) {
            int64_t v = ab_rng_below(&rng, t + 1);
            if (st->mark[v]) v = t;
            st->mark[v] = 1;
            hy_add(st, r, i, st->ks[v < k0 ? v : v + in], w);
        }
        /* clear the marks: replay the draws */
        ab_rng_init(&rng, st->p->seed,
                    ab_stream(0x68797072, (uint64_t)st->p->self, (uint64_t)(s * 1000003 + e),
                              (uint64_t)beta));
        for (int64_t t = rest - m; t < rest; t++) {
            int64_t v = ab_rng_below(&rng, t + 1);
            st->mark[v] = 0;
            st->mark[t] = 0;
        }
    }
}

static void hy_segment(struct hy_run *st, int64_t s, int64_t e)
{
    const struct ab_head *h = st->p->h;
    if (e - s <= st->x) {
        for (int64_t i = s; i < e; i++) {
            int64_t r = st->row_of[i];
            if (r < 0) continue;
            for (int64_t j = s; j < AB_MIN(e, ab_head_visible(h, i)); j++) hy_add(st, r, i, j, 1.0);
        }
        return;
    }
    int64_t mid = s + (e - s) / 2;
    hy_segment(st, s, mid);
    hy_segment(st, mid, e);
    if (rect_exact(mid - s, st->x)) {
        for (int64_t i = mid; i < e; i++) {
            int64_t r = st->row_of[i];
            if (r < 0) continue;
            for (int64_t j = s; j < mid; j++) hy_add(st, r, i, j, 1.0);
        }
    } else {
        hy_rect(st, s, mid, e);
    }
}

static int hy_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    int rc = hy_check(p);
    if (rc) return rc;
    const struct ab_head *h = p->h;
    int64_t n = h->n_q, d = h->d, dv = h->d_v, x = knob_x(knob, h->n_k);
    hy_ledger(h, 0, n, x, led);
    ab_keep_clear(keep);
    struct hy_run st = {.p = p, .x = x, .keep = keep};
    float *proj = ab_alloc(ab_size_mul((size_t)(R * d), sizeof(float)));
    st.row_of = ab_alloc(ab_size_mul((size_t)(4 * n), sizeof(int64_t)));
    st.mx = ab_alloc(ab_size_mul((size_t)(p->n_rows * (2 + dv)), sizeof(double)));
    st.code = ab_alloc(ab_size_mul((size_t)n, sizeof(int32_t)));
    st.mark = ab_alloc((size_t)n + 1);
    if (!proj || !st.row_of || !st.mx || !st.code || !st.mark) {
        rc = ab_fail(AB_E_NOMEM, "hyper: cannot allocate its state");
        goto done;
    }
    st.qs = st.row_of + n, st.ks = st.qs + n, st.pos = st.ks + n;
    st.z = st.mx + p->n_rows, st.acc = st.z + p->n_rows;
    /* the head's projections: R Gaussian rows, seeded per head */
    uint64_t stream = ab_stream(0x6c7368 /* "lsh" */, (uint64_t)p->self, 0, 0);
    for (int64_t t = 0; t < R * d; t++)
        proj[t] = (float)ab_rng_normal_at(p->seed, stream, (uint64_t)t);
    st.proj = proj;
    for (int64_t i = 0; i < n; i++) st.row_of[i] = -1;
    for (int64_t r = 0; r < p->n_rows; r++) {
        st.row_of[p->rows[r]] = r;
        st.mx[r] = -INFINITY;
    }
    hy_segment(&st, 0, n);
    if (o)
        for (int64_t r = 0; r < p->n_rows; r++)
            for (int64_t c = 0; c < dv; c++)
                o[r * dv + c] = st.z[r] > 0 ? (float)(st.acc[r * dv + c] / st.z[r]) : 0.0f;
    ab_attend_counter_add(st.cells);
done:
    ab_free(proj);
    ab_free(st.row_of);
    ab_free(st.mx);
    ab_free(st.code);
    ab_free(st.mark);
    return rc;
}

const struct ab_method ab_method_hyper = {
    .name = "hyper",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "causal recursive halving; each off-diagonal rectangle: angular LSH (7 "
               "projections) sorted blocks of b plus m reweighted uniform samples, x = b + m "
               "keys per query",
    .citation = "HyperAttention, Han et al. 2024, arXiv 2310.05869",
    .cost_words = "4d per kept cell: x per query of each approximate rectangle, exact leaves of "
                  "at most x rows; selection 2 r d per hashed row (r = 7, about 4 n r d per "
                  "level) + sorts",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "x", .lo = 1, .hi = 0, .integer = 1, .def = 512, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = hy_cost,
    .run = hy_run,
};
