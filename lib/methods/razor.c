/* razor.c - `razor`: Tang et al., "RazorAttention: Efficient KV Cache Compression Through
 * Retrieval Heads", arXiv 2407.15891 (section 3, algorithm 1, equations 4 and 5).
 *
 * Rule. A few heads (the echo and induction heads, which copy from anywhere in the context)
 * keep their full cache. Every other head keeps the first 4 keys (sinks), the last w keys, and
 * ONE compensation token standing for the keys it dropped: its key and value are the means of
 * the dropped keys and values,
 *     k_c = (1/c) sum_{j dropped} k_j,   v_c = (1/c) sum_{j dropped} v_j,   c = dropped count,
 * and a query reads it as one more key with logit scale q.k_c + ln c (default: the token stands
 * for c keys, equation 5 as we read it; ab_razor_run(raise = 0) gives the plain mean, logit
 * scale q.k_c). Exact softmax over the kept keys plus that token. The cache keeps evicting as
 * decode goes on: query i (seeing v_i keys) reads [0, 4), [v_i - w, v_i) and the mean of
 * [4, v_i - w), so a key leaving the window joins the running mean (decode protocol: the keys
 * are the model's own; nothing is decided from the decode queries).
 *
 * Which heads keep everything (the plan, AB_METHOD_MODEL): metrics.md scores echo and induction
 * heads on a token probe (BOS + a random block repeated 4 times), but a method sees no tokens,
 * so the plan uses an attention-based proxy on the workload's own context: both kinds of head
 * put their mass on a few diagonals one or more periods back (slash lines), so the score of a
 * query head is its far-slash mass
 *     score = (1/R) sum of the 4 largest mass[D] over distances D >= 16
 * with mass[D] the attention the R = 8 calibration rows (kv_headwise.h) put on the key D back
 * from their newest key (sinks excluded). Without tokens echo and induction cannot be told
 * apart (an echo line is an induction line one key further back), so one score ranks both: a kv
 * head scores the maximum over its query heads, and the top round(0.01 U) + round(0.14 U) of
 * the U kv heads of the model (at least one) keep their full cache: the paper's 1% echo plus
 * 14% induction heads. The plan does not depend on the knob. plan == NULL (a head run alone):
 * the head is a compressed one.
 *
 * Knob: w, the window, integer in [1, n]; w >= n keeps every key (dense).
 * Cost of a head over the decode rows q0 .. n-1 (n_ctx context keys, R calibration rows):
 *     cells        = full head: every visible key; else sum_i min(4, lo_i) + v_i - lo_i,
 *                    lo_i = max(0, v_i - w)
 *     flops_attend = (2d + 2d_v) cells + (2d + 2d_v) per row that reads a compensation token
 *                    (the token is not a key of the workload, so it is not a cell; its key and
 *                    value are read: 4(d + d_v) bytes per such row)
 *     flops_once   = 2 R n_ctx d (the head's calibration logits, every head, full or not: the
 *                    plan's one-off work at the end of prefill, each head counting its own
 *                    rows; amortised over the decode horizon G, architecture.md)
 *     ops_other    = 2 R n_ctx (exps and profile sums) + n_ctx (the top-4 scan) + 1 exp per
 *                    cell + (d + d_v)(c_max + r_c) + 2 r_c, where c_max is the most keys a row
 *                    drops and r_c the rows that read a token: each dropped key is added once
 *                    into the running sums, each read scales them and takes one exp and one log.
 *                    These cache updates are counted like h2o's score additions, not as FLOPs
 *                    (as FLOPs they would fall as w grows and break the cost's monotonicity).
 * The cost is a closed form of the knob and the plan: AB_METHOD_ANALYTIC.
 * Deviations from the paper:
 * - head selection by the attention proxy above on each workload, not by the token probe once
 *   per model; its cost is counted in the ledger (the paper runs its probe offline);
 * - the knob is the window itself (the paper's buffer is max(S0, N/C) for a compression C);
 * - under GQA the decision is per kv head (a cache is per kv head): score max over the group;
 * - the window slides during decode, evicted keys joining the compensation token (the paper
 *   compresses once after prefill). */
#include <math.h>
#include <stdlib.h>

#include "core/ab.h"
#include "methods/kv_headwise.h"
#include "methods/method.h"

enum { RAZOR_FAR = 16, RAZOR_LINES = 4 };
static const double RAZOR_ECHO = 0.01, RAZOR_INDUCTION = 0.14;

struct razor_plan {
    int64_t n_layer, n_head;
    uint8_t *full; /* (n_layer * n_head) 1: this head keeps its full cache */
};

int ab_razor_plan_full(const void *plan, int64_t layer, int64_t head)
{
    const struct razor_plan *pl = plan;
    return pl->full[layer * pl->n_head + head];
}

int ab_razor_score(const struct ab_problem *p, double *score)
{
    int64_t n = p->h->n_k, nr = hw_n_rows(p);
    double sink, *mass = ab_alloc(ab_size_mul((size_t)n, sizeof(double))); /* (n) by distance */
    if (!mass)
        return ab_fail(AB_E_NOMEM, "razor: cannot allocate a profile of %lld keys", (long long)n);
    int rc = hw_profile(p, &sink, mass);
    double top[RAZOR_LINES] = {0}; /* the largest masses, descending */
    for (int64_t D = RAZOR_FAR; !rc && D < n; D++) {
        double x = mass[D];
        for (int t = 0; t < RAZOR_LINES; t++)
            if (x > top[t]) {
                double y = top[t];
                top[t] = x;
                x = y;
            }
    }
    *score = 0;
    for (int t = 0; t < RAZOR_LINES; t++) *score += top[t];
    *score = nr > 0 ? *score / (double)nr : 0;
    ab_free(mass);
    return rc;
}

static void razor_plan_free(void *plan)
{
    struct razor_plan *pl = plan;
    if (!pl) return;
    free(pl->full);
    free(pl);
}

/* The plan (file comment): score every query head, max over groups, keep the top kv heads. */
static int razor_plan(const struct ab_model_view *mv, double knob, void **out)
{
    (void)knob; /* the selection does not depend on the window */
    int64_t H = mv->n_layer * mv->n_head;
    int64_t group = AB_MAX(1, AB_MIN(mv->problems[0].group, mv->n_head));
    int64_t per_layer = mv->n_head / group, U = mv->n_layer * per_layer;
    struct razor_plan *pl = calloc(1, sizeof *pl);
    double *unit = calloc((size_t)U, sizeof(double)); /* (U) kv-head scores */
    uint8_t *chosen = calloc((size_t)U, 1);           /* (U) */
    int rc = AB_OK;
    if (pl) pl->full = calloc((size_t)H, 1);
    if (!pl || !pl->full || !unit || !chosen) {
        rc = ab_fail(AB_E_NOMEM, "razor: cannot allocate the plan of %lld heads", (long long)H);
        goto done;
    }
    pl->n_layer = mv->n_layer, pl->n_head = mv->n_head;
    for (int64_t x = 0; x < H && !rc; x++) {
        double s;
        int64_t u = (x / mv->n_head) * per_layer + AB_MIN((x % mv->n_head) / group, per_layer - 1);
        rc = ab_razor_score(&mv->problems[x], &s);
        if (!rc && s > unit[u]) unit[u] = s;
    }
    if (rc) goto done;
    int64_t n_full =
        (int64_t)llround(RAZOR_ECHO * (double)U) + (int64_t)llround(RAZOR_INDUCTION * (double)U);
    n_full = AB_MIN(AB_MAX(n_full, 1), U);
    for (int64_t t = 0; t < n_full; t++) { /* the highest score left; ties to the lower index */
        int64_t best = -1;
        for (int64_t u = 0; u < U; u++)
            if (!chosen[u] && (best < 0 || unit[u] > unit[best])) best = u;
        if (best >= 0) chosen[best] = 1;
    }
    for (int64_t x = 0; x < H; x++)
        pl->full[x] =
            chosen[(x / mv->n_head) * per_layer + AB_MIN((x % mv->n_head) / group, per_layer - 1)];
done:
    free(unit);
    free(chosen);
    if (rc) razor_plan_free(pl), pl = NULL;
    *out = pl;
    return rc;
}

/* Whether p's head keeps its full cache: from the plan, or 0 without one. */
static int razor_full(const struct ab_problem *p, int *full)
{
    *full = 0;
    if (!p->plan) return AB_OK;
    const struct razor_plan *pl = p->plan;
    int64_t slot = hw_slot(p, pl->n_layer, pl->n_head, "razor");
    if (slot < 0) return AB_E_USAGE;
    *full = pl->full[slot];
    return AB_OK;
}

static int64_t razor_window(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

static int razor_ledger(const struct ab_problem *p, int full, int64_t w, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    hw_profile_ledger(p, led);
    led->ops_other += (double)kv_n_ctx(p);
    if (full) {
        ab_ledger_attend(led, h, ab_problem_allowed_cells(p));
        return AB_OK;
    }
    double rows_c, c_max, cells = hw_stream_cells(p, w, &rows_c, &c_max);
    double dd = (double)(h->d + h->d_v);
    ab_ledger_attend(led, h, cells);
    led->flops_attend += 2.0 * dd * rows_c;
    led->bytes_kv += 4.0 * dd * rows_c;
    /* the running sums (one addition per merged key and channel) and the scaling of each read
     * are cache updates: ops_other, as h2o counts its score additions */
    led->ops_other += dd * (c_max + rows_c) + 2.0 * rows_c; /* + the token's exp and ln c */
    return AB_OK;
}

static int razor_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int full, rc = kv_check_phase(p, "razor");
    if (rc || (rc = razor_full(p, &full))) return rc;
    return razor_ledger(p, full, razor_window(knob), led);
}

/* O of the evaluated rows: exact softmax over the kept keys of each row (keep) plus, for a
 * compressed head, the compensation token of the keys [ns, lo) the row dropped. Prefix sums of
 * K and V in double up to the largest lo make each token's mean O(d). o is (n_rows, d_v). */
static int razor_attend(const struct ab_problem *p, const struct ab_keep *keep, int full, int64_t w,
                        int raise, float *o)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v, lo_max = 0;
    for (int64_t r = 0; r < p->n_rows && !full; r++) {
        int64_t lo, ns;
        hw_span(ab_head_visible(h, p->rows[r]), w, &lo, &ns);
        lo_max = AB_MAX(lo_max, lo);
    }
    double *pk =
        ab_alloc(ab_size_mul((size_t)((lo_max + 1) * d), sizeof(double))); /* (lo_max+1, d) */
    double *pv =
        ab_alloc(ab_size_mul((size_t)((lo_max + 1) * dv), sizeof(double))); /* (lo_max+1, d_v) */
    double *s = ab_alloc(ab_size_mul((size_t)h->n_k + 1, sizeof(double)));  /* (n_k + 1) */
    int64_t *idx = ab_alloc(ab_size_mul((size_t)h->n_k, sizeof(int64_t)));  /* (n_k) */
    double *kc = ab_alloc(ab_size_mul((size_t)d, sizeof(double)));          /* (d) */
    double *vc = ab_alloc(ab_size_mul((size_t)dv, sizeof(double)));         /* (d_v) */
    double *acc = ab_alloc(ab_size_mul((size_t)dv, sizeof(double)));        /* (d_v) */
    double cells = 0;
    int rc = AB_OK;
    if (!pk || !pv || !s || !idx || !kc || !vc || !acc) {
        rc = ab_fail(AB_E_NOMEM, "razor: cannot allocate the attention scratch (%lld keys)",
                     (long long)h->n_k);
        goto done;
    }
    /* pk[x] = sum_{j < x} k_j, pv[x] = sum_{j < x} v_j */
    for (int64_t x = 0; x < lo_max; x++) {
        for (int64_t c = 0; c < d; c++) pk[(x + 1) * d + c] = pk[x * d + c] + h->k[x * d + c];
        for (int64_t c = 0; c < dv; c++) pv[(x + 1) * dv + c] = pv[x * dv + c] + h->v[x * dv + c];
    }
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], v = ab_head_visible(h, i), m = 0, lo = 0, ns = 0;
        const float *q = h->q + i * d;
        double mx = -INFINITY;
        for (int64_t j = 0; j < v; j++) {
            if (!ab_keep_has(keep, r, j)) continue;
            double dot = 0;
            for (int64_t c = 0; c < d; c++) dot += (double)q[c] * h->k[j * d + c];
            s[m] = h->scale * dot;
            mx = s[m] > mx ? s[m] : mx;
            idx[m++] = j;
        }
        cells += (double)m;
        if (!full) hw_span(v, w, &lo, &ns);
        int64_t cnt = lo - ns; /* keys folded into the compensation token */
        double sc = -INFINITY;
        if (cnt > 0) {
            double dot = 0;
            for (int64_t c = 0; c < d; c++) {
                kc[c] = (pk[lo * d + c] - pk[ns * d + c]) / (double)cnt;
                dot += (double)q[c] * kc[c];
            }
            for (int64_t c = 0; c < dv; c++)
                vc[c] = (pv[lo * dv + c] - pv[ns * dv + c]) / (double)cnt;
            sc = h->scale * dot + (raise ? log((double)cnt) : 0.0);
            mx = sc > mx ? sc : mx;
        }
        memset(acc, 0, (size_t)dv * sizeof(double));
        double z = 0;
        for (int64_t t = 0; t < m; t++) {
            double e = exp(s[t] - mx);
            z += e;
            const float *vr = h->v + idx[t] * dv;
            for (int64_t c = 0; c < dv; c++) acc[c] += e * vr[c];
        }
        if (cnt > 0) {
            double e = exp(sc - mx);
            z += e;
            for (int64_t c = 0; c < dv; c++) acc[c] += e * vc[c];
        }
        for (int64_t c = 0; c < dv; c++) o[r * dv + c] = z > 0 ? (float)(acc[c] / z) : 0.0f;
    }
done:
    ab_attend_counter_add(cells);
    ab_free(pk), ab_free(pv), ab_free(s), ab_free(idx), ab_free(kc), ab_free(vc), ab_free(acc);
    return rc;
}

int ab_razor_run(const struct ab_problem *p, double knob, int raise, float *o, struct ab_keep *keep,
                 struct ab_ledger *led)
{
    int full, rc = kv_check_phase(p, "razor");
    if (rc || (rc = razor_full(p, &full))) return rc;
    int64_t w = razor_window(knob);
    razor_ledger(p, full, w, led);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t v = ab_head_visible(p->h, p->rows[r]), lo = 0, ns = 0;
        if (!full) hw_span(v, w, &lo, &ns);
        ab_keep_range(keep, r, 0, ns);
        ab_keep_range(keep, r, lo, v);
    }
    if (o) rc = razor_attend(p, keep, full, w, raise, o);
    return rc;
}

static int razor_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    return ab_razor_run(p, knob, 1, o, keep, led);
}

const struct ab_method ab_method_razor = {
    .name = "razor",
    .family = AB_FAMILY_KV,
    .summary = "full cache for echo/induction heads (proxy); others 4 sinks + window w + one "
               "compensation token (mean of dropped K and V)",
    .citation = "RazorAttention, Tang et al. 2024, arXiv 2407.15891",
    .cost_words = "4d per kept cell (full heads: every key; others min(4, lo) + w per query) + 4d "
                  "per compensation read; one-off: 2 R n_ctx d (R = 8 probe rows)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_MODEL,
    .cost = razor_cost,
    .run = razor_run,
    .plan = razor_plan,
    .plan_free = razor_plan_free,
};
