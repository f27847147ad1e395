/* tidal.c - `tidal`: TidalDecode, Yang et al., "TidalDecode: Fast and Accurate LLM Decoding with
 * Position Persistent Sparse Attention", arXiv 2410.05076 (section 3, figure 3): the tokens a
 * query attends to most are much the same from one layer to the next, so a few "token selection"
 * layers run full attention and pick the top K positions, and every other layer of the same
 * decode step reads only those positions.
 *
 * Roles of the layers of an L-layer model (model level, AB_METHOD_MODEL), for each decode query:
 * - layers 0 and 1: full attention (before any selection, as in the paper);
 * - selection layers: layer 2 (the first after the two full layers) and one correction
 *   (re-selection) layer c = round(13 L / 32), the paper's layer 13 of 32, when 4 <= c < L
 *   (otherwise there is none): full attention; kv head u's attention, summed over the query
 *   heads of its group, ranks the keys the query sees, and the top K positions are kept;
 * - every other layer: kv head u reads, for this decode step, exactly the K positions (min(K,
 *   v_i), v_i the keys row i sees) the latest selection layer below it chose for kv head u.
 * Models of at most 2 layers have no selection layer: every layer is full attention.
 * Selection is per decode step and reads that step's query at the selection layer (the full
 * cache is kept; as in Quest, the query picks what it reads, nothing is evicted), so no layer
 * ever reads a key its row cannot see.
 *
 * The plan (plan(), one per (workload, phase, K)) holds, for each selection layer, kv head and
 * decode row q0..n-1, the mark of the K kept positions. Its scores (the selection layers'
 * group-summed attention of every decode row) do not depend on K: prepare() computes them on
 * the first query head of each kv head's group at a selection layer (method.h: the engine
 * prepares every head of the view before plan()), so the solver's bisection over K scores once.
 * With plan == NULL (a head run on its own, as the battery does) the head is a reuse layer of a
 * selection made at its own layer: it scores its own layer's group at each decode step (the
 * prepared scores when it has them) and charges its own logits to flops_select.
 *
 * Knob: K, positions read at the reuse layers, integer in [1, n]; K >= v reads everything.
 * Cost (analytic: a closed form of K and the layer's role), per decode row i with v_i keys:
 *     full / selection layer: cells v_i; flops_select 0 (the selection reuses the attention
 *                   the layer computes anyway); ops_other: one exp per cell, plus on selection
 *                   layers v_i adds (this head's term of the group sum) + v_i compares (the
 *                   top-K, counted on every head of the group)
 *     reuse layer:  cells min(K, v_i); ops_other one exp per cell
 *     plan == NULL: cells min(K, v_i); flops_select 2 d v_i (its own logits); ops_other v_i
 *                   exps + 2 v_i (sum, top-K) + one exp per cell.
 * Deviations from the paper:
 * - the paper selects from the query-key products of the selection layer (one set for all
 *   heads in its GQA implementation); here the selection is per kv head, by the group's summed
 *   softmax probabilities, and layer l's kv head u reuses the selection of kv head u (the
 *   workload's heads of different layers have no other correspondence);
 * - the correction layer is placed at round(13 L / 32) for every model (the paper tunes it per
 *   model: 13 for Llama-3-8B); layers 0 and 1 are always full;
 * - decode tokens are ranked with the context: a reuse layer reads K positions in all, new
 *   tokens included only when the selection layer ranked them into the top K;
 * - ties go to the earlier key. */
#include <assert.h>
#include <stdlib.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/method.h"

enum { TIDAL_FULL = 2, TIDAL_SELECT = 2 };

static int64_t tidal_budget(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

/* The correction layer of an n_layer model, or -1 when it has none. */
static int64_t tidal_correction(int64_t n_layer)
{
    int64_t c = (int64_t)floor(13.0 * (double)n_layer / 32.0 + 0.5);
    return c >= TIDAL_SELECT + 2 && c < n_layer ? c : -1;
}

enum tidal_role { TIDAL_ROLE_FULL, TIDAL_ROLE_SELECT, TIDAL_ROLE_REUSE };

/* The role of layer l of an n_layer model; *source: the selection layer a reuse layer reads. */
static int tidal_role(int64_t l, int64_t n_layer, int64_t *source)
{
    int64_t c = tidal_correction(n_layer);
    *source = -1;
    if (n_layer <= TIDAL_SELECT || l < TIDAL_FULL) return TIDAL_ROLE_FULL;
    if (l == TIDAL_SELECT || l == c) return TIDAL_ROLE_SELECT;
    *source = c >= 0 && l > c ? c : TIDAL_SELECT;
    return TIDAL_ROLE_REUSE;
}

/* The role of problem p: reuse (of its own layer) without a plan. */
static int tidal_role_of(const struct ab_problem *p, int64_t *source)
{
    if (!p->plan) {
        *source = p->layer_index;
        return TIDAL_ROLE_REUSE;
    }
    return tidal_role(p->layer_index, p->n_layer, source);
}

static void tidal_ledger(const struct ab_problem *p, int64_t K, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t source;
    int role = tidal_role_of(p, &source);
    double cells = 0, seen = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i);
        cells += (double)(role == TIDAL_ROLE_REUSE ? AB_MIN(K, v) : v);
        seen += (double)v;
    }
    ab_ledger_attend(led, h, cells);
    led->ops_other += cells;
    if (role == TIDAL_ROLE_SELECT) led->ops_other += 2 * seen;
    if (!p->plan) {
        led->flops_select += 2.0 * (double)h->d * seen;
        led->ops_other += 3 * seen;
    }
}

/* score (m, n_k): for each decode row i = q0 + t, score[t][j] = sum over the query heads e of
 * kv head u's group of softmax_j(scale q_e,i . k_j) over the v_i keys row i sees; 0 past v_i.
 * heads: the layer's query heads; s (m, n_k) scratch. One sgemm (m, d) x (d, n_k) per head. */
static void tidal_group_scores(const struct ab_head *heads, int64_t u, int64_t group, int64_t q0,
                               float *score, float *s)
{
    const struct ab_head *h0 = &heads[u * group];
    int64_t n = h0->n_k, m = h0->n_q - q0;
    memset(score, 0, ab_size_mul((size_t)(m * n), sizeof(float)));
    for (int64_t e = 0; e < group; e++) {
        const struct ab_head *h = &heads[u * group + e];
        kv_logits(h, q0, m, n, s, n);
        for (int64_t t = 0; t < m; t++) {
            int64_t v = ab_head_visible(h, q0 + t);
            kv_softmax(s + t * n, v);
            for (int64_t j = 0; j < v; j++) score[t * n + j] += s[t * n + j];
        }
    }
}

/* ---- prepare and the plan --------------------------------------------------------------- */

/* prepare()'s state: on the first query head of a kv head's group at a selection layer (by
 * p->layer_index of p->n_layer) in decode, the group scores of its decode rows over its layer
 * (tidal_group_scores), which plan() reads; empty (score NULL) on every other head. */
struct tidal_prep {
    int64_t m, n_k;
    float *score; /* (m, n_k) or NULL */
};

struct tidal_plan {
    int64_t n_sel, n_kv, m, n_k, q0, K;
    int64_t sel[2];
    uint8_t *mark; /* (n_sel, n_kv, m, n_k) 1: position kept for that decode row */
};

static void tidal_prepare_free(void *state)
{
    struct tidal_prep *t = state;
    if (!t) return;
    ab_free(t->score);
    free(t);
}

/* The group scores when p leads its group at a selection layer: O(group m n_k d). */
static int tidal_prepare(const struct ab_problem *p, void **state)
{
    struct tidal_prep *t = calloc(1, sizeof *t);
    if (!t) return ab_fail(AB_E_NOMEM, "tidal: cannot allocate its state");
    int64_t nh = p->layer ? p->n_layer_heads : 1, self = p->layer ? p->self : 0, source;
    int64_t group = AB_MAX(1, AB_MIN(p->group, nh));
    if (p->phase == AB_PHASE_DECODE && self % group == 0 && self / group < nh / group &&
        tidal_role(p->layer_index, p->n_layer, &source) == TIDAL_ROLE_SELECT) {
        int64_t n = p->h->n_k, m = p->h->n_q - p->q0;
        size_t per = ab_size_mul((size_t)AB_MAX(m, 1), (size_t)n);
        float *s = ab_alloc(ab_size_mul(per, sizeof(float))); /* (m, n) logits */
        t->score = ab_alloc(ab_size_mul(per, sizeof(float)));
        if (!s || !t->score) {
            ab_free(s), tidal_prepare_free(t);
            return ab_fail(AB_E_NOMEM,
                           "tidal: cannot allocate scores for %lld decode rows x %lld keys",
                           (long long)m, (long long)n);
        }
        tidal_group_scores(p->layer ? p->layer : p->h, self / group, group, p->q0, t->score, s);
        ab_free(s);
        t->m = m, t->n_k = n;
    }
    *state = t;
    return AB_OK;
}

/* The selection layers of the view and their number. */
static int64_t tidal_sel_layers(int64_t n_layer, int64_t sel[2])
{
    int64_t n = 0;
    if (n_layer > TIDAL_SELECT) sel[n++] = TIDAL_SELECT;
    int64_t c = tidal_correction(n_layer);
    if (c >= 0) sel[n++] = c;
    return n;
}

static void tidal_plan_free(void *plan)
{
    struct tidal_plan *t = plan;
    if (!t) return;
    ab_free(t->mark);
    free(t);
}

/* The plan at K: the top min(K, v_i) positions of every scored row, from the group scores the
 * leading heads of the selection layers prepared. O(n_sel n_kv m n_k) for the top-K. */
static int tidal_plan(const struct ab_model_view *mv, double knob, void **plan)
{
    *plan = NULL;
    if (mv->n_layer * mv->n_head < 1) return ab_fail(AB_E_USAGE, "tidal: the model has no heads");
    const struct ab_problem *p0 = &mv->problems[0];
    if (p0->phase != AB_PHASE_DECODE)
        return ab_fail(AB_E_USAGE, "tidal: supports the decode phase only");
    int64_t sel[2], n_sel = tidal_sel_layers(mv->n_layer, sel), nh = mv->n_head;
    int64_t group = AB_MAX(1, AB_MIN(p0->group, nh)), n_kv = nh / group;
    int64_t n = p0->h->n_k, m = p0->h->n_q - p0->q0;
    for (int64_t x = 0; x < n_sel * n_kv; x++) {
        const struct tidal_prep *tp = mv->problems[sel[x / n_kv] * nh + x % n_kv * group].prep;
        assert(tp); /* the engine prepared every head of the view */
        if (!tp->score || tp->m != m || tp->n_k != n)
            return ab_fail(AB_E_USAGE, "tidal: selection layer %lld kv head %lld has no scores",
                           (long long)sel[x / n_kv], (long long)(x % n_kv));
    }
    struct tidal_plan *t = calloc(1, sizeof *t);
    size_t per = (size_t)(m * n), total = per * (size_t)AB_MAX(1, n_sel * n_kv);
    float *tmp = ab_alloc(ab_size_mul((size_t)AB_MAX(n, 1), sizeof(float)));
    if (t) t->mark = ab_alloc(total);
    if (!t || !t->mark || !tmp) {
        tidal_plan_free(t), ab_free(tmp);
        return ab_fail(AB_E_NOMEM, "tidal: cannot allocate the plan");
    }
    t->n_sel = n_sel, t->n_kv = n_kv, t->m = m, t->n_k = n, t->q0 = p0->q0;
    t->K = tidal_budget(knob), t->sel[0] = sel[0], t->sel[1] = sel[1];
    const struct ab_head *h0 = p0->h;
    for (int64_t x = 0; x < n_sel * n_kv; x++) {
        const struct tidal_prep *tp = mv->problems[sel[x / n_kv] * nh + x % n_kv * group].prep;
        for (int64_t r = 0; r < m; r++) {
            size_t at = (size_t)x * per + (size_t)(r * n);
            kv_top_k(tp->score + r * n, ab_head_visible(h0, t->q0 + r), t->K, t->mark + at, tmp);
        }
    }
    ab_free(tmp);
    *plan = t;
    return AB_OK;
}

/* ---- cost and run ---------------------------------------------------------------------- */

static int tidal_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "tidal");
    if (rc) return rc;
    tidal_ledger(p, tidal_budget(knob), led);
    return AB_OK;
}

/* The keep sets of a reuse layer without a plan: its own layer's group selection per row. */
static int tidal_local(const struct ab_problem *p, int64_t K, struct ab_keep *keep)
{
    const struct ab_head *h = p->h;
    const struct ab_head *heads = p->layer ? p->layer : p->h;
    int64_t nh = p->layer ? p->n_layer_heads : 1, self = p->layer ? p->self : 0;
    int64_t group = AB_MAX(1, AB_MIN(p->group, nh)), n = h->n_k, m = h->n_q - p->q0;
    size_t per = ab_size_mul((size_t)AB_MAX(m, 1), (size_t)n);
    const struct tidal_prep *tp = p->prep;
    const float *prepared = tp && tp->score ? tp->score : NULL; /* this group's, (m, n) */
    float *score = prepared ? NULL : ab_alloc(ab_size_mul(per, sizeof(float))); /* (m, n) */
    float *s = ab_alloc(ab_size_mul(per, sizeof(float)));                        /* (m, n) */
    uint8_t *mark = ab_alloc((size_t)AB_MAX(n, 1));                              /* (n) */
    int rc = AB_OK;
    if ((!prepared && !score) || !s || !mark) {
        rc = ab_fail(AB_E_NOMEM, "tidal: cannot allocate scores for %lld keys", (long long)n);
        goto done;
    }
    if (!prepared)
        tidal_group_scores(heads, AB_MIN(self / group, nh / group - 1), group, p->q0, score, s);
    const float *sc = prepared ? prepared : score;
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], v = ab_head_visible(h, i);
        memset(mark, 0, (size_t)n);
        kv_top_k(sc + (i - p->q0) * n, v, K, mark, s);
        for (int64_t j = 0; j < v; j++)
            if (mark[j]) ab_keep_set(keep, r, j);
    }
done:
    ab_free(score), ab_free(s), ab_free(mark);
    return rc;
}

static int tidal_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    int rc = tidal_cost(p, knob, led);
    if (rc) return rc;
    const struct ab_head *h = p->h;
    const struct tidal_plan *t = p->plan;
    int64_t K = tidal_budget(knob), source;
    int role = tidal_role_of(p, &source);
    if (t && (t->q0 != p->q0 || t->n_k != h->n_k || t->K != K))
        return ab_fail(AB_E_USAGE, "tidal: the plan was made for another problem or knob");
    if (role != TIDAL_ROLE_REUSE) {
        for (int64_t r = 0; r < p->n_rows; r++)
            ab_keep_range(keep, r, 0, ab_head_visible(h, p->rows[r]));
    } else if (!t) {
        rc = tidal_local(p, K, keep);
    } else {
        int64_t x = source == t->sel[0] ? 0 : 1;
        int64_t group = AB_MAX(1, p->group), u = p->self / group;
        if (x >= t->n_sel || u >= t->n_kv) {
            rc = ab_fail(AB_E_USAGE, "tidal: the plan has no selection for layer %lld head %lld",
                         (long long)p->layer_index, (long long)p->self);
        } else {
            const uint8_t *mk = t->mark + (size_t)(x * t->n_kv + u) * (size_t)(t->m * t->n_k);
            for (int64_t r = 0; r < p->n_rows; r++) {
                int64_t i = p->rows[r], v = ab_head_visible(h, i);
                const uint8_t *row = mk + (i - t->q0) * t->n_k;
                for (int64_t j = 0; j < v; j++)
                    if (row[j]) ab_keep_set(keep, r, j);
            }
        }
    }
    if (!rc && o) rc = ab_attend_kept(p, keep, o, NULL);
    return rc;
}

const struct ab_method ab_method_tidal = {
    .name = "tidal",
    .family = AB_FAMILY_KV,
    .summary = "full attention at layers 0, 1 and two selection layers; the others read the "
               "selection layer's top K positions",
    .citation = "TidalDecode, Yang et al. 2024, arXiv 2410.05076",
    .cost_words = "4d per kept cell: v at layers 0, 1 and selection layers (2, round(13L/32)), "
                  "min(K, v) elsewhere; fitted on the whole workload (model-level budget)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "K", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_LAYER | AB_METHOD_MODEL,
    .cost = tidal_cost,
    .run = tidal_run,
    .plan = tidal_plan,
    .plan_free = tidal_plan_free,
    .prepare = tidal_prepare,
    .prepare_free = tidal_prepare_free,
};
