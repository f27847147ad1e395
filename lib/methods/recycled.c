/* recycled.c - `recycled`: Recycled Attention, Xu et al., "Recycled Attention: Efficient
 * inference for long-context language models", arXiv 2411.05787: full attention every S steps;
 * in between, each query reads only the K keys the last full step attended to most.
 *
 * Neighbouring decode steps attend to much the same tokens, so the attention of one full step
 * is recycled as the selection of the next S - 1 steps. Protocol (method.h, decode):
 * - the last context query (row q0 - 1) attended to the whole context in prefill: it is the
 *   first full step, and its top K keys (by its logits, i.e. by its attention) are the first
 *   recycled set, chosen from the context alone;
 * - decode query i is a full step when i - f = S, f the last full step (with no context, the
 *   first decode query is one): it reads every key it sees, and its top K become the set;
 * - any other decode query reads the set (the top K of the v_f keys row f saw) plus the keys
 *   written since, [v_f, v_i): the new tokens, which no full step has ranked yet.
 * Outputs are exact attention over what each query read (softmax renormalised over it).
 *
 * Knob: K, the recycled set in tokens, integer in [1, n]; S = 4 (fixed, the paper's stride;
 * the hook ab_recycled_run takes others). K >= v for every row keeps everything: dense. With
 * S = 1 every decode step is a full step: dense at every K. The full steps bound the saving:
 * about 1 / S of dense decode is spent on them whatever K.
 * Cost (analytic: what a step reads depends only on the positions):
 *     cells        = sum over full steps of v_i + sum over the others of min(K, v_f) + v_i - v_f
 *     flops_select = 0 (the full step's scores are its own attention, computed anyway)
 *     ops_other    = one compare per key a full step saw (the top-K selection, including the
 *                    last context query's n_ctx) + one exp per cell. Monotone in K.
 * Deviations:
 * - new tokens are read in full between full steps (the paper appends them to the recycled
 *   cache as well); the paper also tries a dynamic stride and query-similarity triggers: here S
 *   is fixed;
 * - per query head, even under GQA (the paper recycles per head); ties go to the earlier key. */
#include "core/ab.h"
#include "methods/kv.h"
#include "methods/method.h"

enum { RECYCLED_S = 4 };

static int64_t recycled_budget(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

/* The last full step before decode: the last context row, or -1 without context. */
static int64_t recycled_first_full(const struct ab_problem *p)
{
    return p->q0 > 0 ? p->q0 - 1 : -1;
}

/* The ledger at (K, S) by walking the schedule's positions; returns the cells. O(m log n). */
static double recycled_ledger(const struct ab_problem *p, int64_t K, int64_t S,
                              struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t f = recycled_first_full(p), vf = f >= 0 ? ab_head_visible(h, f) : 0;
    double cells = 0, ranked = (double)vf;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i);
        if (f < 0 || i - f >= S) { /* full step */
            f = i, vf = v;
            cells += (double)v;
            ranked += (double)v;
        } else {
            cells += (double)(AB_MIN(K, vf) + v - vf);
        }
    }
    ab_ledger_attend(led, h, cells);
    led->ops_other += ranked;
    return cells;
}

/* The schedule (file comment) with the stride *(const int64_t *)arg: sets what each evaluated
 * row read in keep and adds the cells read to *cells. Per full step one (1, d) x (d, v) logits
 * row and an O(v) top-K. */
static int recycled_schedule(const struct ab_problem *p, int64_t K, const void *arg,
                             struct ab_keep *keep, double *cells)
{
    const struct ab_head *h = p->h;
    int64_t S = *(const int64_t *)arg, n = h->n_k;
    int rc = AB_OK;
    float *s = ab_alloc(ab_size_mul((size_t)n, sizeof(float)));   /* (n) logits of row f */
    float *tmp = ab_alloc(ab_size_mul((size_t)n, sizeof(float))); /* (n) */
    uint8_t *mark = ab_alloc((size_t)n);                          /* (n) 1: in the set */
    if (!s || !tmp || !mark) {
        rc = ab_fail(AB_E_NOMEM, "recycled: cannot allocate scratch for %lld keys", (long long)n);
        goto done;
    }
    int64_t f = recycled_first_full(p), vf = 0, r = 0;
    if (f >= 0) { /* the last context query's top K */
        vf = ab_head_visible(h, f);
        kv_logits(h, f, 1, vf, s, vf);
        kv_top_k(s, vf, K, mark, tmp);
    }
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i);
        int full = f < 0 || i - f >= S;
        if (full) { /* read everything; rank it for the next S - 1 steps */
            f = i, vf = v;
            kv_logits(h, f, 1, vf, s, vf);
            memset(mark, 0, (size_t)n);
            kv_top_k(s, vf, K, mark, tmp);
            *cells += (double)v;
        } else {
            *cells += (double)(AB_MIN(K, vf) + v - vf);
        }
        if (r < p->n_rows && p->rows[r] == i) {
            if (full) {
                ab_keep_range(keep, r, 0, v);
            } else {
                for (int64_t j = 0; j < vf; j++)
                    if (mark[j]) ab_keep_set(keep, r, j);
                ab_keep_range(keep, r, vf, v);
            }
            r++;
        }
    }
done:
    ab_free(s);
    ab_free(tmp);
    ab_free(mark);
    return rc;
}

static int recycled_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "recycled");
    if (rc) return rc;
    recycled_ledger(p, recycled_budget(knob), RECYCLED_S, led);
    return AB_OK;
}

int ab_recycled_run(const struct ab_problem *p, double knob, int64_t stride, float *o,
                    struct ab_keep *keep, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "recycled");
    if (rc) return rc;
    if (stride < 1) return ab_fail(AB_E_USAGE, "recycled: stride %lld < 1", (long long)stride);
    int64_t K = recycled_budget(knob);
    double expected = recycled_ledger(p, K, stride, led);
    return kv_run_schedule(p, K, expected, recycled_schedule, &stride, o, keep);
}

static int recycled_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                        struct ab_ledger *led)
{
    return ab_recycled_run(p, knob, RECYCLED_S, o, keep, led);
}

const struct ab_method ab_method_recycled = {
    .name = "recycled",
    .family = AB_FAMILY_KV,
    .summary = "full attention every 4 steps; in between read the last full step's top K keys "
               "+ new tokens",
    .citation = "Recycled Attention, Xu et al. 2024, arXiv 2411.05787",
    .cost_words = "4d per kept cell: v at full steps (every S = 4), min(K, v_f) + new tokens "
                  "between them",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "K", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = recycled_cost,
    .run = recycled_run,
};
