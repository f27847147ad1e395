/* h2o.c - `h2o`: Heavy-Hitter Oracle, Zhang et al., "H2O: Heavy-Hitter Oracle for Efficient
 * Generative Inference of Large Language Models", NeurIPS 2023, arXiv 2306.14048: greedy
 * eviction by accumulated attention scores, with heavy hitters plus a recent window.
 *
 * Each head scores every key by the attention it has accumulated, acc_j = sum over the queries
 * that read j of their softmax probability on j, and keeps the h keys with the highest acc (the
 * heavy hitters) plus the r most recent keys. Protocol (method.h, decode):
 * - context: acc_j = sum_{t < q0} A_tj, the exact causal attention of the context queries (the
 *   probabilities the model computed anyway during prefill);
 * - decode step i (in order): the keys [lo, v_i), lo = v_i - r, are the recent window, which
 *   includes the new token's own key. The heavy set before step i is chosen from the heavy set
 *   of step i-1 plus the keys that just left the recent window: the top h by acc (eviction of
 *   the lowest; at the first step the candidates are every context key below the window). The
 *   query reads heavy + recent, i.e. min(h + r, v_i) keys: the new token enters, the budget
 *   holds. Its probabilities over what it read (softmax renormalised over the cache) are added
 *   to acc, so the next eviction also knows this query.
 *
 * Knob: h + r, the cache size C in tokens, integer in [1, n]; h = floor(C / 2), r = C - h
 * (r = h by default, the odd token going to the recent side, so r >= 1 and the current token is
 * always in the cache). C >= v for every decode query keeps everything: dense.
 * Cost (analytic: the cache is always full once it has filled, cells do not depend on the data):
 *     cells        = sum over decode queries of |heavy_i| + |recent_i| (= min(C, v_i) under the
 *                    usual positions)
 *     flops_select = 0. Convention: the scores are the attention probabilities the model
 *                    computes anyway (prefill's and each decode query's own), so H2O's extra
 *                    work is additions and comparisons only (methods.md): they are ops_other
 *     ops_other    = one add per context cell (acc over the prefill map) + n_ctx compares (the
 *                    first heavy-hitter selection) + per decode cell one add (acc update) and
 *                    one compare (the eviction scan over the cache) + one exp per cell.
 *     The counts depend on C only through the cells, so the cost is monotone in C.
 * The schedule and ledger are exported (kv.h: ab_kv_accum_schedule, ab_kv_accum_ledger) with
 * the scoring rule as a parameter: a2sf (forgetting factor) and keyformer (Gumbel-softmax scores
 * with a temperature schedule) are this schedule under other rules; h2o's rule is the plain
 * softmax with lambda = 1.
 * Deviations:
 * - at the end of the context the heavy hitters are chosen once from the whole prefill map, not
 *   by evicting token by token during prefill (the greedy algorithm run over the prompt would);
 * - the accumulation is per query head, even under GQA;
 * - ties go to the earlier key. */

#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/kv.h"
#include "methods/method.h"

/* Query rows per logits block (context and decode): 64, fewer when a block of 64 x n floats
 * would pass 8 MB. */
enum { H2O_CHUNK_MAX = 64, H2O_CHUNK_FLOATS = 1 << 21 };

static int64_t h2o_chunk(int64_t n)
{
    return AB_MAX(1, AB_MIN(H2O_CHUNK_MAX, H2O_CHUNK_FLOATS / n));
}

double ab_kv_ctx_cells(const struct ab_problem *p)
{
    double c = 0;
    for (int64_t t = 0; t < p->q0; t++) c += (double)ab_head_visible(p->h, t);
    return c;
}

/* The ledger of the phase at cache size C by counting what the schedule reads; returns the
 * cells. O((q0 + m) log n), no data read. */
double ab_kv_accum_ledger(const struct ab_problem *p, int64_t C, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t hh = C / 2, r = C - hh, n_heavy = 0, lo_prev = 0;
    double cells = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i), lo = AB_MAX(lo_prev, v - r);
        n_heavy = AB_MIN(hh, n_heavy + (lo - lo_prev));
        cells += (double)(n_heavy + v - lo);
        lo_prev = lo;
    }
    ab_ledger_attend(led, h, cells);
    led->ops_other += ab_kv_ctx_cells(p) + (double)kv_n_ctx(p) + 2.0 * cells;
    return cells;
}

static int64_t h2o_budget(double knob) { return knob < 1 ? 1 : (int64_t)knob; }

static int h2o_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "h2o");
    if (rc) return rc;
    ab_kv_accum_ledger(p, h2o_budget(knob), led);
    return AB_OK;
}

/* e_j = -ln u_j, u_j in (0, 1) uniform, for keys idx[j] (or j when idx is NULL) of query row
 * `base` (a row's 32 random bits from Philox): u_j is a 32-bit integer hash of (base, key)
 * (lowbias32), the logarithm a fast one (ln m = 2 atanh((m-1)/(m+1)), 4 odd terms, absolute
 * error < 1.3e-5 over the mantissa). Vectorises: the context's noise is q0^2/2 draws. */
AB_CLONES("avx2", "default")
static void accum_exp_noise(uint32_t base, const int64_t *idx, float *e, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        uint32_t x = base ^ ((uint32_t)(idx ? idx[j] : j) * 0x9e3779b9u);
        x ^= x >> 16;
        x *= 0x7feb352du;
        x ^= x >> 15;
        x *= 0x846ca68bu;
        x ^= x >> 16;
        float u = ((float)(x >> 8) + 0.5f) * 0x1.0p-24f;
        uint32_t bits;
        memcpy(&bits, &u, sizeof bits);
        float ex = (float)((int32_t)(bits >> 23) - 127), m;
        bits = (bits & 0x007fffffu) | 0x3f800000u; /* mantissa in [1, 2) */
        memcpy(&m, &bits, sizeof m);
        float t = (m - 1.0f) / (m + 1.0f), t2 = t * t;
        float lnm = 2.0f * t * (1.0f + t2 * (1.0f / 3 + t2 * (1.0f / 5 + t2 * (1.0f / 7))));
        e[j] = -(ex * 0.69314718f + lnm);
    }
}

/* In place: logits l[0..n) of query row `row` -> the scores of the rule a (kv.h). With noise,
 * e^(l_j + g_j) = e^(l_j) / e_j for g_j = -ln e_j, e_j = -ln u_j (Gumbel): at tau = 1 the
 * score is the softmax times 1 / e_j, renormalised (one logarithm per cell); otherwise
 * softmax((l_j - ln e_j) / tau). e is (n) scratch. h2o's rule is a plain softmax. */
static void accum_scores(const struct kv_accum *a, double tau, int64_t row, const int64_t *idx,
                         float *l, float *e, int64_t n)
{
    if (a->gumbel && n > 0) {
        uint32_t w[4];
        ab_philox(a->seed, 0x6b66 /* "kf" */, (uint64_t)row, w);
        accum_exp_noise(w[0], idx, e, n);
        if (tau == 1.0) {
            kv_softmax(l, n);
            float z = 0;
            for (int64_t j = 0; j < n; j++) z += l[j] /= e[j];
            for (int64_t j = 0; j < n; j++) l[j] /= z;
            return;
        }
        for (int64_t j = 0; j < n; j++) l[j] -= logf(e[j]);
    }
    if (tau != 1.0) {
        float inv = (float)(1.0 / tau);
        for (int64_t j = 0; j < n; j++) l[j] *= inv;
    }
    kv_softmax(l, n);
}

/* acc[j] += sum_{t < q0} lambda^(q0-1-t) a_tj: the scores of the context rows, in blocks of
 * `chunk` rows (one sgemm and `chunk` score rows each). s is (chunk, n_ctx) scratch, e (n_ctx). */
static void accum_context(const struct ab_problem *p, const struct kv_accum *a, int64_t n_ctx,
                          int64_t chunk, float *s, float *e, double *acc)
{
    const struct ab_head *h = p->h;
    int64_t q0 = p->q0;
    for (int64_t t0 = 0; t0 < q0; t0 += chunk) {
        int64_t nr = AB_MIN(chunk, q0 - t0);
        int64_t nk = AB_MIN(ab_head_visible(h, t0 + nr - 1), n_ctx);
        kv_logits(h, t0, nr, nk, s, nk);
        for (int64_t t = 0; t < nr; t++) {
            float *row = s + t * nk; /* (nk) row t0 + t */
            int64_t nv = AB_MIN(ab_head_visible(h, t0 + t), nk);
            accum_scores(a, a->tau_ctx, t0 + t, NULL, row, e, nv);
            if (a->lambda == 1.0) {
                for (int64_t j = 0; j < nv; j++) acc[j] += row[j];
            } else {
                double w = pow(a->lambda, (double)(q0 - 1 - (t0 + t)));
                for (int64_t j = 0; j < nv; j++) acc[j] += w * row[j];
            }
        }
    }
}

/* The context's accumulated scores of a problem under a rule (they depend on lambda, the noise
 * and its seed, and tau_ctx: the decode temperatures come later) are prepare()'s state: they do
 * not depend on C, and the sweep runs each rule at every budget of a head (five context passes
 * of O(q0 n_ctx d) became one). The ledger counts these scores as prefill's own probabilities,
 * additions only (ab_kv_accum_ledger), so the rows are flagged AB_METHOD_PREP_FREE: `bench
 * methods` does not time them, a model has them from its prefill. */
struct kv_accum_prep {
    struct kv_accum rule;
    double *acc; /* (n) */
};

/* 1 when the context scores of rules a and b are the same. */
static int accum_ctx_eq(const struct kv_accum *a, const struct kv_accum *b)
{
    return a->lambda == b->lambda && a->gumbel == b->gumbel && a->tau_ctx == b->tau_ctx &&
           a->seed == b->seed;
}

void ab_kv_accum_prepare_free(void *state)
{
    struct kv_accum_prep *st = state;
    if (!st) return;
    ab_free(st->acc);
    free(st);
}

int ab_kv_accum_prepare(const struct ab_problem *p, const struct kv_accum *a, void **state)
{
    int64_t n = p->h->n_k, chunk = h2o_chunk(n);
    struct kv_accum_prep *st = calloc(1, sizeof *st);
    float *s = ab_alloc(ab_size_mul((size_t)(chunk * n), sizeof(float))); /* (chunk, n) */
    float *e = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));          /* (n) */
    if (st) st->acc = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));  /* (n) */
    int rc = AB_OK;
    if (!st || !st->acc || !s || !e) {
        ab_kv_accum_prepare_free(st);
        rc = ab_fail(AB_E_NOMEM, "h2o: cannot allocate scratch for %lld keys", (long long)n);
    } else {
        st->rule = *a;
        accum_context(p, a, kv_n_ctx(p), chunk, s, e, st->acc);
        *state = st;
    }
    ab_free(s), ab_free(e);
    return rc;
}

/* The step-by-step schedule at cache size C (file comment): the context scores (O(q0 n_ctx d)
 * in sgemms), then per decode query a gather and score over its cache and a top-k over the
 * heavy candidates (O(C)). */
int ab_kv_accum_schedule(const struct ab_problem *p, int64_t C, const void *arg,
                         struct ab_keep *keep, double *cells)
{
    const struct kv_accum *a = arg;
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, hh = C / 2, rec = C - hh, chunk = h2o_chunk(n), m = h->n_q - p->q0;
    int rc = AB_OK;
    double *acc = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));      /* (n) */
    float *s = ab_alloc(ab_size_mul((size_t)(chunk * n), sizeof(float))); /* (chunk, n) */
    int64_t *heavy = ab_alloc(ab_size_mul((size_t)n, sizeof(int64_t))); /* (n) ascending keys */
    int64_t *cache = ab_alloc(ab_size_mul((size_t)n, sizeof(int64_t))); /* (n) keys read */
    float *pr = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));        /* (n) scores */
    float *sc = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));        /* (n) candidate acc */
    float *tmp = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));       /* (n) */
    uint8_t *mark = ab_alloc((size_t)n);                                /* (n) */
    if (!acc || !s || !heavy || !cache || !pr || !sc || !tmp || !mark) {
        rc = ab_fail(AB_E_NOMEM, "h2o: cannot allocate scratch for %lld keys", (long long)n);
        goto done;
    }
    const struct kv_accum_prep *st = p->prep;
    if (st && accum_ctx_eq(&st->rule, a)) /* the row's own rule: prepared */
        memcpy(acc, st->acc, sizeof(double) * (size_t)n);
    else /* a test hook at other parameters */
        accum_context(p, a, kv_n_ctx(p), chunk, s, tmp, acc);
    int64_t n_heavy = 0, lo_prev = 0, r = 0;
    for (int64_t i0 = p->q0; i0 < h->n_q; i0 += chunk) {
        int64_t nr = AB_MIN(chunk, h->n_q - i0), nk = ab_head_visible(h, i0 + nr - 1);
        kv_logits(h, i0, nr, nk, s, nk); /* (nr, nk) decode logits of this block */
        for (int64_t i = i0; i < i0 + nr; i++) {
            int64_t v = ab_head_visible(h, i), lo = AB_MAX(lo_prev, v - rec);
            /* candidates: the heavy set plus the keys that just left the recent window */
            for (int64_t j = lo_prev; j < lo; j++) heavy[n_heavy++] = j;
            if (n_heavy > hh) { /* evict: keep the top hh by accumulated score */
                for (int64_t t = 0; t < n_heavy; t++) sc[t] = (float)acc[heavy[t]];
                for (int64_t t = 0; t < n_heavy; t++) mark[t] = 0;
                kv_top_k(sc, n_heavy, hh, mark, tmp);
                int64_t kept = 0;
                for (int64_t t = 0; t < n_heavy; t++)
                    if (mark[t]) heavy[kept++] = heavy[t];
                n_heavy = kept;
            }
            /* read heavy + recent; acc_j <- lambda acc_j + the query's score of j */
            int64_t n_read = 0;
            for (int64_t t = 0; t < n_heavy; t++) cache[n_read++] = heavy[t];
            for (int64_t j = lo; j < v; j++) cache[n_read++] = j;
            const float *row = s + (i - i0) * nk;
            for (int64_t t = 0; t < n_read; t++) pr[t] = row[cache[t]];
            double tau = m > 1 ? a->tau0 + (a->tau1 - a->tau0) * (double)(i - p->q0) /
                                               (double)(m - 1)
                               : a->tau0;
            accum_scores(a, tau, i, cache, pr, tmp, n_read);
            if (a->lambda == 1.0) {
                for (int64_t t = 0; t < n_read; t++) acc[cache[t]] += pr[t];
            } else {
                for (int64_t t = 0; t < n_read; t++)
                    acc[cache[t]] = a->lambda * acc[cache[t]] + pr[t];
            }
            *cells += (double)n_read;
            if (r < p->n_rows && p->rows[r] == i) kv_keep_list(keep, r++, cache, n_read);
            lo_prev = lo;
        }
    }
done:
    ab_free(acc);
    ab_free(s);
    ab_free(heavy);
    ab_free(cache);
    ab_free(pr);
    ab_free(sc);
    ab_free(tmp);
    ab_free(mark);
    return rc;
}

/* The ledger (analytic), the schedule, and with o the attention over what each evaluated row
 * read. */
static const struct kv_accum h2o_rule = {.lambda = 1, .tau_ctx = 1, .tau0 = 1, .tau1 = 1};

static int h2o_prepare(const struct ab_problem *p, void **state)
{
    return ab_kv_accum_prepare(p, &h2o_rule, state);
}

static int h2o_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                   struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "h2o");
    if (rc) return rc;
    int64_t C = h2o_budget(knob);
    double expected = ab_kv_accum_ledger(p, C, led);
    return kv_run_schedule(p, C, expected, ab_kv_accum_schedule, &h2o_rule, o, keep);
}

const struct ab_method ab_method_h2o = {
    .name = "h2o",
    .family = AB_FAMILY_KV,
    .summary = "keep C/2 heavy hitters by accumulated attention + C/2 recent, evict per step",
    .citation = "H2O, Zhang et al. 2023, arXiv 2306.14048",
    .cost_words = "4d per kept cell: min(C, v) per decode query; scores are the model's own "
                  "probabilities (additions only, in ops_other)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_PREP_FREE,
    .cost = h2o_cost,
    .run = h2o_run,
    .prepare = h2o_prepare,
    .prepare_free = ab_kv_accum_prepare_free,
};
