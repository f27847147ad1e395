/* duo.c - `duo`: DuoAttention, Xiao et al., "DuoAttention: Efficient Long-Context LLM Inference
 * with Retrieval and Streaming Heads", arXiv 2410.10819 (sections 3.1-3.3): only some heads
 * ("retrieval heads") need the whole KV cache; the others ("streaming heads") do as well with
 * the attention sinks and a window of recent tokens. Per kv head, a retrieval head keeps the
 * full cache and a streaming head keeps the first 64 keys (sinks) plus the keys within 256
 * positions of the query.
 *
 * Which heads are retrieval heads: the paper learns a gate per head offline on synthetic
 * passkey data; attnbench uses the training-free proxy of metrics.md ("streaming-vs-retrieval
 * classification"): the output deviation of a query head when restricted to its streaming set,
 *     dev_e = sqrt(sum_t ||O_stream,t - O_t||^2) / sqrt(sum_t ||O_t||^2)
 * over the probe rows t = the last W context rows (W = 16; file hook: any W, W >= q0 = every
 * context row, metrics.md's definition), where O_t is exact attention of row t over the keys it
 * sees and O_stream,t exact attention renormalised over its streaming set S_t = {j < 64 or
 * pos_t - pos_j < 256}. A kv head's score is the largest dev_e of the query heads of its group;
 * the kv heads of the whole model are ranked by score (descending; ties to the lower layer,
 * then the lower kv head), and the top floor(f N + 1e-9) of the N = n_layer x n_kv_head kv
 * heads are retrieval heads. Context rows only: the decision is made before any decode query.
 *
 * Model level (AB_METHOD_MODEL): the plan (plan(), once per (workload, phase, f)) holds every
 * kv head's score, the ranking and the number of retrieval heads. Scores do not depend on f:
 * prepare() computes each query head's dev_e (method.h: the engine prepares every head of the
 * view before plan()), so the solver's bisection scores once. With plan == NULL (a head run
 * alone, as the battery does) the head's layer is the whole model: the ranking is over the kv
 * heads of its layer, scored in every run.
 *
 * Knob: f, the fraction of retrieval heads, real in [0.001, 1]; f = 1 is dense, f below 1 / N
 * makes every head a streaming head.
 * Cost (data-dependent: which heads are retrieval heads depends on the proxy), per query head:
 *     cells        = sum over decode rows i of v_i (retrieval) or |S_i| (streaming), where S_i
 *                    = {j < 64 or pos_i - pos_j < 256} among the v_i keys row i sees
 *     flops_once   = one-off (at the end of prefill, amortised over the decode horizon G;
 *                    architecture.md): the proxy of this query head, its share of the ranking's
 *                    work (every
 *                    query head's proxy is counted on that head): per probe row t,
 *                    (2d + 2d_v) v_t (O_t) + 2 d_v |S_t| (O_stream,t from the same logits);
 *                    counted at every f so the cost stays monotone
 *     ops_other    = v_t exps per probe row + N / group compares (the ranking compares
 *                    each kv head with the N ranked, spread over its group's query heads)
 *                    + one exp per cell; N is the layer's kv heads when plan == NULL.
 * Deviations from the paper:
 * - the ranking is the training-free output-deviation proxy of metrics.md on the workload's own
 *   context (the paper optimises gates on synthetic data, once per model); it is computed on
 *   the last W = 16 context rows so that its cost, which the ledger charges, stays below dense
 *   decode of m = 64 queries;
 * - the streaming window is measured from the query's own position (a rolling cache), so with
 *   m <= 256 decode queries a streaming head reads every decode token;
 * - the paper's budget is a ratio of retrieval heads per model, as here; its chunked prefill
 *   and per-layer deployment details are not modelled. */
#include <assert.h>
#include <stdlib.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/method.h"

enum { DUO_SINK = 64, DUO_RECENT = 256, DUO_PROBE = 16 };

/* 1 when key j is in the streaming set of query row i. */
static int duo_streams(const struct ab_head *h, int64_t i, int64_t j)
{
    return j < DUO_SINK || (int64_t)h->q_pos[i] - (int64_t)h->k_pos[j] < DUO_RECENT;
}

/* Number of keys of the streaming set among the v keys row i sees. */
static int64_t duo_stream_count(const struct ab_head *h, int64_t i, int64_t v)
{
    int64_t c = 0;
    for (int64_t j = 0; j < v; j++) c += duo_streams(h, i, j);
    return c;
}

/* The probe rows [t0, q0): the last w context rows. */
static int64_t duo_probe_start(const struct ab_problem *p, int64_t w)
{
    return AB_MAX(0, p->q0 - AB_MAX(w, 1));
}

/* dev_e of query head h over the probe rows [t0, q0) (file comment). s (q0 - t0, n_k) scratch,
 * acc (2 d_v) scratch. Returns 0 when the rows have no output mass. */
static double duo_deviation(const struct ab_head *h, int64_t t0, int64_t q0, float *s, double *acc)
{
    int64_t n = h->n_k, dv = h->d_v;
    if (q0 <= t0) return 0;
    kv_logits(h, t0, q0 - t0, n, s, n);
    double dev2 = 0, out2 = 0, *full = acc, *str = acc + dv; /* (d_v) O_t, (d_v) sum over S_t */
    for (int64_t t = t0; t < q0; t++) {
        float *a = s + (t - t0) * n; /* (n) probabilities of row t */
        int64_t v = ab_head_visible(h, t);
        kv_softmax(a, v);
        double zs = 0;
        for (int64_t c = 0; c < 2 * dv; c++) acc[c] = 0;
        for (int64_t j = 0; j < v; j++) {
            const float *vj = h->v + j * dv;
            int in = duo_streams(h, t, j);
            zs += in ? a[j] : 0;
            for (int64_t c = 0; c < dv; c++) full[c] += (double)a[j] * vj[c];
            if (in)
                for (int64_t c = 0; c < dv; c++) str[c] += (double)a[j] * vj[c];
        }
        /* O_stream,t = sum_{j in S_t} a_j v_j / sum_{j in S_t} a_j */
        for (int64_t c = 0; c < dv; c++) {
            double o_s = zs > 0 ? str[c] / zs : 0;
            dev2 += (o_s - full[c]) * (o_s - full[c]);
            out2 += full[c] * full[c];
        }
    }
    return out2 > 0 ? sqrt(dev2 / out2) : 0;
}

/* Scores of the kv heads of one layer: score[u] = max over u's group of dev_e. */
static int duo_layer_scores(const struct ab_head *heads, int64_t n_head, int64_t group, int64_t t0,
                            int64_t q0, double *score)
{
    int64_t n = heads[0].n_k;
    float *s = ab_alloc(ab_size_mul(ab_size_mul((size_t)AB_MAX(q0 - t0, 1), (size_t)n),
                                    sizeof(float))); /* (q0 - t0, n) */
    double *acc = ab_alloc(ab_size_mul((size_t)(2 * heads[0].d_v), sizeof(double))); /* (2 d_v) */
    if (!s || !acc) {
        ab_free(s), ab_free(acc);
        return ab_fail(AB_E_NOMEM, "duo: cannot allocate probe scores for %lld keys", (long long)n);
    }
    for (int64_t u = 0; u < n_head / group; u++) {
        score[u] = 0;
        for (int64_t e = 0; e < group; e++)
            score[u] = fmax(score[u], duo_deviation(&heads[u * group + e], t0, q0, s, acc));
    }
    ab_free(s), ab_free(acc);
    return AB_OK;
}

/* rank[x] = place of unit x in the descending order of score (0 = highest; ties: lower x). */
static void duo_rank(const double *score, int64_t n, int64_t *rank)
{
    for (int64_t x = 0; x < n; x++) {
        int64_t r = 0;
        for (int64_t y = 0; y < n; y++) r += score[y] > score[x] || (score[y] == score[x] && y < x);
        rank[x] = r;
    }
}

static int64_t duo_count(double f, int64_t n_units)
{
    int64_t r = (int64_t)floor(f * (double)n_units + 1e-9);
    return AB_MAX(0, AB_MIN(r, n_units));
}

/* ---- the plan -------------------------------------------------------------------------- */

struct duo_plan {
    int64_t n_layer, n_kv, probe, n_retrieval;
    double *score; /* (n_layer, n_kv) proxy of each kv head */
    int64_t *rank; /* (n_layer, n_kv) its place in the ranking, 0 = most retrieval-like */
};

/* prepare()'s state: dev_e of the problem's query head at DUO_PROBE probe rows (decode; 0 in
 * another phase). */
struct duo_prep {
    double dev;
};

static void duo_prepare_free(void *state)
{
    free(state);
}

/* dev_e of p's head: O(W n (d + d_v)) for the W = DUO_PROBE probe rows. */
static int duo_prepare(const struct ab_problem *p, void **state)
{
    const struct ab_head *h = p->h;
    struct duo_prep *st = calloc(1, sizeof *st);
    if (!st) return ab_fail(AB_E_NOMEM, "duo: cannot allocate its state");
    if (p->phase == AB_PHASE_DECODE) {
        int64_t t0 = duo_probe_start(p, DUO_PROBE);
        float *s = ab_alloc(ab_size_mul(ab_size_mul((size_t)AB_MAX(p->q0 - t0, 1), (size_t)h->n_k),
                                        sizeof(float))); /* (q0 - t0, n) */
        double *acc = ab_alloc(ab_size_mul((size_t)(2 * h->d_v), sizeof(double))); /* (2 d_v) */
        if (!s || !acc) {
            ab_free(s), ab_free(acc), free(st);
            return ab_fail(AB_E_NOMEM, "duo: cannot allocate probe scores for %lld keys",
                           (long long)h->n_k);
        }
        st->dev = duo_deviation(h, t0, p->q0, s, acc);
        ab_free(s), ab_free(acc);
    }
    *state = st;
    return AB_OK;
}

static void duo_plan_free(void *plan)
{
    struct duo_plan *t = plan;
    if (!t) return;
    free(t->score), free(t->rank), free(t);
}

/* The plan at fraction knob with `probe` probe rows: each kv head's score from its query heads'
 * prepared dev_e (prepared: the row's plan, at DUO_PROBE rows) or computed here (the test
 * hook, at any probe). */
static int duo_plan_at(const struct ab_model_view *mv, double knob, int64_t probe, int prepared,
                       void **plan)
{
    *plan = NULL;
    int64_t nl = mv->n_layer, nh = mv->n_head, n = nl * nh;
    if (n < 1) return ab_fail(AB_E_USAGE, "duo: the model has no heads");
    const struct ab_problem *p0 = &mv->problems[0];
    if (p0->phase != AB_PHASE_DECODE)
        return ab_fail(AB_E_USAGE, "duo: supports the decode phase only");
    int64_t group = AB_MAX(1, AB_MIN(p0->group, nh)), n_kv = nh / group;
    struct duo_plan *t = calloc(1, sizeof *t);
    if (t) {
        t->score = malloc(sizeof(double) * (size_t)(nl * n_kv));
        t->rank = malloc(sizeof(int64_t) * (size_t)(nl * n_kv));
    }
    if (!t || !t->score || !t->rank) {
        duo_plan_free(t);
        return ab_fail(AB_E_NOMEM, "duo: cannot allocate the plan");
    }
    int rc = AB_OK;
    for (int64_t l = 0; l < nl && !rc; l++) {
        const struct ab_problem *pl = &mv->problems[l * nh];
        if (!prepared) {
            rc = duo_layer_scores(pl->layer ? pl->layer : pl->h, nh, group,
                                  duo_probe_start(pl, probe), pl->q0, t->score + l * n_kv);
            continue;
        }
        for (int64_t u = 0; u < n_kv; u++) { /* duo_layer_scores from the prepared dev_e */
            double *su = &t->score[l * n_kv + u];
            *su = 0;
            for (int64_t e = 0; e < group; e++) {
                const struct duo_prep *st = pl[u * group + e].prep;
                assert(st); /* the engine prepared every head of the view */
                *su = fmax(*su, st->dev);
            }
        }
    }
    if (rc) {
        duo_plan_free(t);
        return rc;
    }
    t->n_layer = nl, t->n_kv = n_kv, t->probe = probe;
    duo_rank(t->score, nl * n_kv, t->rank);
    t->n_retrieval = duo_count(knob, nl * n_kv);
    *plan = t;
    return AB_OK;
}

/* Test hook (kv.h): the plan with `probe` probe rows, every score computed here. */
int ab_duo_plan_probe(const struct ab_model_view *mv, double knob, int64_t probe, void **plan)
{
    return duo_plan_at(mv, knob, probe, 0, plan);
}

static int duo_plan(const struct ab_model_view *mv, double knob, void **plan)
{
    return duo_plan_at(mv, knob, DUO_PROBE, 1, plan);
}

/* ---- run ------------------------------------------------------------------------------- */

/* Whether p's kv head is a retrieval head at f: from the plan, or (plan == NULL) by ranking
 * the kv heads of p's layer with `probe` probe rows. *n_units: kv heads ranked. */
static int duo_is_retrieval(const struct ab_problem *p, double f, int64_t probe, int *retrieval,
                            int64_t *n_units)
{
    const struct duo_plan *t = p->plan;
    int64_t nh = p->layer ? p->n_layer_heads : 1, self = p->layer ? p->self : 0;
    int64_t group = AB_MAX(1, AB_MIN(p->group, nh)), n_kv = nh / group;
    int64_t u = AB_MIN(self / group, n_kv - 1);
    if (t) {
        if (p->layer_index < 0 || p->layer_index >= t->n_layer || u >= t->n_kv)
            return ab_fail(AB_E_USAGE, "duo: the plan has no kv head %lld in layer %lld",
                           (long long)u, (long long)p->layer_index);
        *retrieval = t->rank[p->layer_index * t->n_kv + u] < t->n_retrieval;
        *n_units = t->n_layer * t->n_kv;
        return AB_OK;
    }
    *n_units = n_kv;
    int64_t count = duo_count(f, n_kv);
    if (count == 0 || count == n_kv) { /* no ranking needed */
        *retrieval = count == n_kv;
        return AB_OK;
    }
    double *score = malloc(sizeof(double) * (size_t)n_kv);
    int64_t *rank = malloc(sizeof(int64_t) * (size_t)n_kv);
    int rc = score && rank ? AB_OK : ab_fail(AB_E_NOMEM, "duo: cannot allocate the ranking");
    if (!rc)
        rc = duo_layer_scores(p->layer ? p->layer : p->h, nh, group, duo_probe_start(p, probe),
                              p->q0, score);
    if (!rc) {
        duo_rank(score, n_kv, rank);
        *retrieval = rank[u] < count;
    }
    free(score), free(rank);
    return rc;
}

/* The ledger of p as a retrieval (or streaming) head: file comment. */
static void duo_ledger(const struct ab_problem *p, int retrieval, int64_t probe, int64_t n_units,
                       struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    double cells = 0, d = (double)h->d, dv = (double)h->d_v;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i);
        cells += (double)(retrieval ? v : duo_stream_count(h, i, v));
    }
    ab_ledger_attend(led, h, cells);
    led->ops_other += cells;
    for (int64_t t = duo_probe_start(p, probe); t < p->q0; t++) {
        int64_t v = ab_head_visible(h, t);
        led->flops_once +=
            (2 * d + 2 * dv) * (double)v + 2 * dv * (double)duo_stream_count(h, t, v);
        led->ops_other += (double)v;
    }
    led->ops_other += (double)n_units / (double)AB_MAX(1, p->group);
}

/* Test hook (kv.h): run() with `probe` probe rows when p->plan is NULL. */
int ab_duo_run(const struct ab_problem *p, double knob, int64_t probe, float *o,
               struct ab_keep *keep, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "duo");
    if (rc) return rc;
    const struct duo_plan *t = p->plan;
    if (t) probe = t->probe;
    int retrieval = 0;
    int64_t n_units = 0;
    if ((rc = duo_is_retrieval(p, knob, probe, &retrieval, &n_units))) return rc;
    duo_ledger(p, retrieval, probe, n_units, led);
    const struct ab_head *h = p->h;
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], v = ab_head_visible(h, i);
        if (retrieval) {
            ab_keep_range(keep, r, 0, v);
        } else {
            for (int64_t j = 0; j < v; j++)
                if (duo_streams(h, i, j)) ab_keep_set(keep, r, j);
        }
    }
    return o ? ab_attend_kept(p, keep, o, NULL) : AB_OK;
}

static int duo_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                   struct ab_ledger *led)
{
    return ab_duo_run(p, knob, DUO_PROBE, o, keep, led);
}

const struct ab_method ab_method_duo = {
    .name = "duo",
    .family = AB_FAMILY_KV,
    .summary = "retrieval kv heads keep the full cache, streaming ones sink 64 + recent 256; "
               "heads ranked by output deviation",
    .citation = "DuoAttention, Xiao et al. 2024, arXiv 2410.10819",
    .cost_words = "4d per kept cell: v (retrieval heads) or sink 64 + recent 256 (streaming); "
                  "one-off: the proxy, (4d v + 2d |S|) per probe row (16 context rows); fraction "
                  "f of retrieval kv heads fitted on the whole workload (model-level budget)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "f", .lo = 0.001, .hi = 1, .integer = 0, .def = 0.5, .unit = "fraction"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_LAYER | AB_METHOD_MODEL,
    .cost = NULL,
    .run = duo_run,
    .plan = duo_plan,
    .plan_free = duo_plan_free,
    .prepare = duo_prepare,
    .prepare_free = duo_prepare_free,
};
