/* moa.c - `moa`: Fu et al., "MoA: Mixture of Sparse Attention for Automatic Large Language
 * Model Compression", arXiv 2406.14909 (sections 3 and 4: heterogeneous elastic windows,
 * profiled on a calibration input, then assigned under a total budget).
 *
 * Rule. Every head reads a streaming cache (the first 4 keys plus its own last w_h keys; query i
 * seeing v_i keys reads [0, min(4, lo)) and [lo, v_i), lo = max(0, v_i - w_h)), but the windows
 * differ per head. They are chosen by a profile-then-assign plan (AB_METHOD_MODEL) over every
 * head of the workload:
 * - profile: the calibration input is the workload's own context (decode protocol: context rows
 *   only): R = 8 context rows spread over its second half (kv_headwise.h). Head h's recall at
 *   window w is the attention mass those rows put on the keys such a cache would keep,
 *       rec_h(w) = (1/R) sum_t [ sum_{j < 4} P_t(j) + sum_{D < w} P_t(v_t - 1 - D) ]
 *   (sinks counted once), a non-decreasing curve for w = 1 .. n;
 * - assign: the total budget T = knob x H tokens (H heads of the workload; the knob is the mean
 *   window) is shared so that every head reaches a common recall target: all windows start at
 *   1, and each of the T - H remaining tokens goes to the head whose recall at its current
 *   window is lowest (ties to the lower head index; a head at w = n takes no more). The windows
 *   sum to T exactly, a head whose attention lies further back gets a longer window, and each
 *   window only grows with T, so the cost is monotone in the knob.
 * plan == NULL (a head run alone): the head is the whole model, so its window is the knob.
 *
 * Knob: the mean window, integer in [1, n]; n gives every head w = n (dense).
 * Cost of head h over the decode rows q0 .. n-1 (n_ctx context keys):
 *     cells        = sum_i min(4, lo_i) + v_i - lo_i at the head's window w_h
 *     flops_once   = 2 R n_ctx d: the head's calibration logits (the plan's one-off work,
 *                    amortised over the decode horizon G; each head counting its own rows, at
 *                    every knob)
 *     ops_other    = 2 R n_ctx (exps and profile sums) + H (knob - 1) compares (the assignment's
 *                    (T - H) H comparisons spread evenly over the H heads) + 1 exp per cell.
 * Given the plan the cost is a closed form: AB_METHOD_ANALYTIC.
 * Deviations from the paper:
 * - the calibration input is the workload's own context (R = 8 rows), profiled per workload,
 *   and its cost is counted; MoA profiles once per model on a long-range calibration set built
 *   from the model's own answers, offline;
 * - MoA's elastic rule w = alpha + beta N per head is fitted over several lengths and the plan
 *   is a mixed-integer search minimising a loss estimated from gradients; here one length, the
 *   window is a plain token count, and the objective is the common recall target above;
 * - windows are per query head (under GQA a shared cache would hold the group's largest);
 * - the sinks are the first 4 keys in every head (MoA's initial tokens).
 * Known behaviour of the common-target rule: heads whose attention is diffuse (recall growing
 * about linearly with w) hold the common recall down, so at small budgets they absorb most of
 * the tokens and local heads are left with windows of a few keys (on the default model
 * workload at 1/8: diffuse and retrieval heads near density 1/3, streaming heads at w = 1). An
 * objective on the sum of recalls (equal marginal recall per token, MoA's sum of per-head
 * losses) would not starve them; it is not what the catalogue row specifies. */
#include <stdlib.h>

#include "core/ab.h"
#include "methods/kv_headwise.h"
#include "methods/method.h"

struct moa_plan {
    int64_t n_layer, n_head;
    int64_t *w; /* (n_layer * n_head) window of each head */
};

int64_t ab_moa_plan_window(const void *plan, int64_t layer, int64_t head)
{
    const struct moa_plan *pl = plan;
    return pl->w[layer * pl->n_head + head];
}

static void moa_plan_free(void *plan)
{
    struct moa_plan *pl = plan;
    if (!pl) return;
    free(pl->w);
    free(pl);
}

static int64_t moa_total(double knob, int64_t n)
{
    return AB_MIN(AB_MAX((int64_t)knob, 1), n);
}

/* The plan (file comment): recall curves of every head, then the greedy assignment. */
static int moa_plan(const struct ab_model_view *mv, double knob, void **out)
{
    int64_t H = mv->n_layer * mv->n_head, n = mv->problems[0].h->n_k;
    struct moa_plan *pl = calloc(1, sizeof *pl);
    double *rec = ab_alloc(ab_size_mul((size_t)(H * (n + 1)), sizeof(double))); /* (H, n + 1) */
    double *mass = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));            /* (n) */
    int rc = AB_OK;
    if (pl) pl->w = calloc((size_t)H, sizeof(int64_t));
    if (!pl || !pl->w || !rec || !mass) {
        rc = ab_fail(AB_E_NOMEM, "moa: cannot allocate the plan of %lld heads x %lld keys",
                     (long long)H, (long long)n);
        goto done;
    }
    pl->n_layer = mv->n_layer, pl->n_head = mv->n_head;
    /* rec_h(w) for w = 0 .. n: sinks plus the mass within distance w - 1 */
    for (int64_t x = 0; x < H; x++) {
        const struct ab_problem *p = &mv->problems[x];
        if (p->h->n_k != n) {
            rc = ab_fail(AB_E_USAGE, "moa: head %lld has %lld keys, head 0 has %lld", (long long)x,
                         (long long)p->h->n_k, (long long)n);
            goto done;
        }
        double sink, nr = (double)hw_n_rows(p), *r = rec + x * (n + 1);
        if ((rc = hw_profile(p, &sink, mass))) goto done;
        r[0] = sink;
        for (int64_t w = 1; w <= n; w++) r[w] = r[w - 1] + mass[w - 1];
        for (int64_t w = 0; w <= n; w++) r[w] = nr > 0 ? r[w] / nr : 1.0;
    }
    /* every head from w = 1; each further token to the head of lowest recall */
    for (int64_t x = 0; x < H; x++) pl->w[x] = 1;
    for (int64_t t = (moa_total(knob, n) - 1) * H; t > 0; t--) {
        int64_t best = -1;
        for (int64_t x = 0; x < H; x++) {
            if (pl->w[x] >= n) continue;
            if (best < 0 || rec[x * (n + 1) + pl->w[x]] < rec[best * (n + 1) + pl->w[best]])
                best = x;
        }
        pl->w[best]++;
    }
done:
    ab_free(rec);
    ab_free(mass);
    if (rc) moa_plan_free(pl), pl = NULL;
    *out = pl;
    return rc;
}

/* The window of p's head, and the number of heads the plan shares the budget over. */
static int moa_window(const struct ab_problem *p, double knob, int64_t *w, double *n_heads)
{
    *w = moa_total(knob, p->h->n_k), *n_heads = 1;
    if (!p->plan) return AB_OK;
    const struct moa_plan *pl = p->plan;
    int64_t slot = hw_slot(p, pl->n_layer, pl->n_head, "moa");
    if (slot < 0) return AB_E_USAGE;
    *w = pl->w[slot], *n_heads = (double)(pl->n_layer * pl->n_head);
    return AB_OK;
}

static int moa_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int64_t w;
    double n_heads, rows_c, c_max;
    int rc = kv_check_phase(p, "moa");
    if (rc || (rc = moa_window(p, knob, &w, &n_heads))) return rc;
    hw_profile_ledger(p, led);
    led->ops_other += n_heads * (double)(moa_total(knob, p->h->n_k) - 1);
    ab_ledger_attend(led, p->h, hw_stream_cells(p, w, &rows_c, &c_max));
    return AB_OK;
}

static int moa_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                   struct ab_ledger *led)
{
    int rc = moa_cost(p, knob, led);
    if (rc) return rc;
    int64_t w;
    double n_heads;
    moa_window(p, knob, &w, &n_heads);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t v = ab_head_visible(p->h, p->rows[r]), lo, ns;
        hw_span(v, w, &lo, &ns);
        ab_keep_range(keep, r, 0, ns);
        ab_keep_range(keep, r, lo, v);
    }
    return o ? ab_attend_kept(p, keep, o, NULL) : AB_OK;
}

const struct ab_method ab_method_moa = {
    .name = "moa",
    .family = AB_FAMILY_KV,
    .summary = "per-head streaming windows reaching a common attention recall on the context, "
               "at an equal total budget",
    .citation = "MoA, Fu et al. 2024, arXiv 2406.14909",
    .cost_words = "4d per kept cell: min(4, lo) + w_h per query at head h's window (mean window = "
                  "knob over the workload); one-off: 2 R n_ctx d (R = 8 calibration rows)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "tokens/head (mean)"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC | AB_METHOD_MODEL,
    .cost = moa_cost,
    .run = moa_run,
    .plan = moa_plan,
    .plan_free = moa_plan_free,
};
