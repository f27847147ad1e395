/* hip.c - `hip`: hierarchical top-k key pruning of HiP attention (Lee et al. 2024, "A
 * Training-Free Sub-quadratic Cost Transformer Model Serving Framework With Hierarchically
 * Pruned Attention", arXiv 2406.09827, section 3: the tree search of Algorithm 1).
 *
 * Rule: queries go in blocks of 16 rows (the block's rows [r0, r1) share one mask); the block's
 * representative query is the mean of its rows. The block searches the keys every one of its
 * rows sees, [0, S0) with S0 = min(r0, vis(r0)); the block's own keys [S0, vis(i)) are always
 * kept (the diagonal). When S0 <= k every searched key is kept. Otherwise:
 * 1. cut [0, S0) into s0 = ceil(S0 / L0) spans of equal length L0, the smallest power of two
 *    with s0 <= 2k (the last span ends at S0 and may overlap the one before it);
 * 2. score each span by q . k_c, k_c its representative (centre) key, c = start + L / 2;
 * 3. keep the k best distinct spans (ties to the lower start); if they are single tokens,
 *    stop: they are the k kept keys; else halve each (2k spans of length L / 2) and go to 2.
 * Exact softmax over the kept keys within the causal mask. k >= n keeps every key: dense.
 *
 * Cost (analytic: the tree's shape depends only on S0 and k): 4d per kept cell, row i keeps
 * min(k, S0) + vis(i) - S0 keys; selection FLOPs per query block with S0 > k:
 * 2d (s0 + 2k log2 L0) (every span scored at each of the log2 L0 + 1 levels; about
 * 4 k d log2(n / k)), plus d additions per query row (the block means); ops: ranking the
 * spans of each level, s ceil(log2 s) for s spans.
 *
 * Deviations from the paper: the representative query is the block mean (HiP scores each
 * span with every query of the block and takes the max); spans are powers of two long with an
 * overlapping last span so that every level has the same shape whatever is kept (the paper
 * splits ranges in halves of any length); queries in blocks of 16 and single-token leaves (HiP's
 * kernels use key blocks of 2 to 8 tokens and 32 to 64 queries); no sink or window beyond the
 * block's own keys; causal prefill only; ties go to the lower index. */
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { QB = 16 };

/* The search range of query block c: [0, S0). */
static int64_t hip_range(const struct ab_head *h, int64_t c)
{
    int64_t r0 = c * QB;
    return AB_MIN(r0, ab_head_visible(h, r0));
}

/* The first span length L0 and span count s0 of a range of S0 > k keys. */
static void hip_shape(int64_t S0, int64_t k, int64_t *L0, int64_t *s0)
{
    int64_t L = 1;
    while ((S0 + L - 1) / L > 2 * k) L *= 2;
    *L0 = L;
    *s0 = (S0 + L - 1) / L;
}

static int64_t knob_tokens(double knob, int64_t n)
{
    if (!(knob >= 1)) return 1;
    return knob >= (double)n ? n : (int64_t)knob;
}

/* The phase's ledger at k tokens. */
static void hip_ledger(const struct ab_problem *p, int64_t k, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    double cells = 0, flops = 0, ops = 0;
    for (int64_t c = p->q0 / QB; c * QB < h->n_q; c++) {
        int64_t S0 = hip_range(h, c), r1 = AB_MIN(h->n_q, (c + 1) * QB);
        for (int64_t i = AB_MAX(p->q0, c * QB); i < r1; i++)
            cells += (double)(AB_MIN(k, S0) + ab_head_visible(h, i) - S0);
        if (S0 <= k) continue;
        int64_t L0, s0;
        hip_shape(S0, k, &L0, &s0);
        int levels = 0;
        for (int64_t L = L0; L > 1; L /= 2) levels++;
        flops += 2.0 * (double)h->d * ((double)s0 + 2.0 * (double)k * levels);
        ops += ab_dyn_sort_ops(s0) + levels * ab_dyn_sort_ops(2 * k);
    }
    ab_ledger_attend(led, h, cells);
    led->flops_select += flops + (double)(h->n_q - p->q0) * (double)h->d;
    led->ops_other += ops;
}

static int hip_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    ab_dyn_check(p);
    hip_ledger(p, knob_tokens(knob, p->h->n_k), led);
    return AB_OK;
}

struct span {
    double s;
    int64_t a;
};

/* Higher score first, then lower start; equal starts end up adjacent. */
static int span_cmp(const void *x, const void *y)
{
    const struct span *u = x, *v = y;
    if (u->s != v->s) return u->s > v->s ? -1 : 1;
    return (u->a > v->a) - (u->a < v->a);
}

/* The k keys query block c keeps in [0, S0) (S0 > k) into out (k), by the tree search with
 * representative query qm (d). sp is scratch for max(s0, 2k) spans. */
static void hip_search(const struct ab_head *h, const float *qm, int64_t S0, int64_t k,
                       struct span *sp, int64_t *out)
{
    int64_t d = h->d, L, s;
    hip_shape(S0, k, &L, &s);
    for (int64_t t = 0; t < s; t++) sp[t].a = AB_MIN(t * L, S0 - L);
    for (;;) {
        for (int64_t t = 0; t < s; t++) {
            const float *kc = h->k + (sp[t].a + L / 2) * d;
            double dot = 0;
            for (int64_t x = 0; x < d; x++) dot += (double)qm[x] * kc[x];
            sp[t].s = dot;
        }
        qsort(sp, (size_t)s, sizeof *sp, span_cmp);
        /* the k best distinct spans, moved to the front */
        int64_t m = 0;
        for (int64_t t = 0; t < s && m < k; t++)
            if (m == 0 || sp[t].a != sp[m - 1].a) sp[m++] = sp[t];
        if (L == 1) {
            for (int64_t t = 0; t < k; t++) out[t] = sp[t].a;
            return;
        }
        L /= 2;
        for (int64_t t = k - 1; t >= 0; t--) {
            sp[2 * t + 1].a = sp[t].a + L;
            sp[2 * t].a = sp[t].a;
        }
        s = 2 * k;
    }
}

/* The kept keys of the evaluated rows into keep (cleared first). */
static int hip_keep(const struct ab_problem *p, int64_t k, struct ab_keep *keep)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d;
    float *qm = ab_alloc(ab_size_mul((size_t)d, sizeof(float)));                       /* (d) */
    struct span *sp = ab_alloc(ab_size_mul((size_t)(2 * k + 2), sizeof(struct span))); /* (2k) */
    int64_t *kept = ab_alloc(ab_size_mul((size_t)k, sizeof(int64_t)));                 /* (k) */
    if (!qm || !sp || !kept) {
        ab_free(qm), ab_free(sp), ab_free(kept);
        return ab_fail(AB_E_NOMEM, "hip: cannot allocate the search");
    }
    ab_keep_clear(keep);
    for (int64_t r = 0; r < p->n_rows;) {
        /* the evaluated rows of one query block: rows [r, re) */
        int64_t c = p->rows[r] / QB, re = r;
        while (re < p->n_rows && p->rows[re] / QB == c) re++;
        int64_t S0 = hip_range(h, c), r0 = AB_MAX(p->q0, c * QB);
        int64_t r1 = AB_MIN(h->n_q, (c + 1) * QB), n_kept = AB_MIN(k, S0);
        if (S0 > k) {
            memset(qm, 0, (size_t)d * sizeof(float));
            for (int64_t i = r0; i < r1; i++)
                for (int64_t x = 0; x < d; x++) qm[x] += h->q[i * d + x];
            for (int64_t x = 0; x < d; x++) qm[x] /= (float)(r1 - r0);
            hip_search(h, qm, S0, k, sp, kept);
        }
        for (; r < re; r++) {
            if (S0 > k)
                for (int64_t t = 0; t < n_kept; t++) ab_keep_set(keep, r, kept[t]);
            else
                ab_keep_range(keep, r, 0, S0);
            ab_keep_range(keep, r, S0, ab_head_visible(h, p->rows[r]));
        }
    }
    ab_free(qm), ab_free(sp), ab_free(kept);
    return AB_OK;
}

static int hip_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                   struct ab_ledger *led)
{
    ab_dyn_check(p);
    int64_t k = knob_tokens(knob, p->h->n_k);
    hip_ledger(p, k, led);
    int rc = hip_keep(p, k, keep);
    if (!rc && o) rc = ab_attend_kept(p, keep, o, NULL);
    return rc;
}

const struct ab_method ab_method_hip = {
    .name = "hip",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "per block of 16 queries, a tree search over halving key spans scored by their "
               "centre key keeps the top k keys (plus the block's own keys)",
    .citation = "HiP attention, Lee et al. 2024, arXiv 2406.09827",
    .cost_words = "4d per kept cell: min(k, S0) + vis(i) - S0 per query (S0 keys before its "
                  "block of 16); selection 2d (s0 + 2k log2 L0) per block (about 4 k d log2(n/k)) "
                  "+ n d (block means)",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "k", .lo = 1, .hi = 0, .integer = 1, .def = 512, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = hip_cost,
    .run = hip_run,
};
