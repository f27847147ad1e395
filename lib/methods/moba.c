/* moba.c - `moba`: Mixture of Block Attention, MoBA (Lu et al. 2025, "MoBA: Mixture of Block
 * Attention for Long-Context LLMs", arXiv 2502.13189, section 2.2-2.3), causal prefill.
 *
 * Rule: keys are cut into blocks of B consecutive keys. Query row i (t = v - 1 its own key
 * index, v = vis(i)) sits in key block cb = t / B, its current block. Its gate scores every
 * past block c < cb by s_c = q_i . mean(K_c) (the mean of the block's B keys: a block affinity,
 * MoBA's mean-pooled gate), keeps the k - 1 highest-scoring past blocks (ties to the lower
 * block) and always its current block, causal inside it (keys cb B .. t). k counts the current
 * block, as MoBA's top-k does (its gate forces the current block before top-k); future blocks
 * are never scored. Exact softmax over the kept keys. Knob: k blocks (1..n); k >= ceil(n / B)
 * keeps every past block: dense.
 *
 * B = 512 (MoBA's block size in its 8K-32K experiments) at n >= 32768 keys, scaled linearly
 * below like the other author defaults here: B = max(1, round(512 n / 32768)) (64 at n = 4096).
 *
 * Cost (analytic: the kept count does not depend on the scores): row i keeps
 * min(k - 1, cb) B + (v - cb B) cells, 4d each. Selection: n d additions to mean-pool the key
 * blocks, 2d per (query, past block) for the gate (sum over rows of 2 d cb), and
 * c ceil(log2 c) sort operations for each row's c = cb candidates (ops_other; charged at every
 * k, the ranking does not depend on it).
 *
 * Deviations from the paper: MoBA is trained (or continually trained) with this gate; here it
 * runs on the given Q, K without training. The block size is scaled to our lengths (MoBA uses
 * 512 with top-k 3 at 8K-32K and 4096 with top-k 12 for 1M contexts). The gate and the pooling
 * run in double precision. Each query head selects for itself (no sharing across a GQA
 * group). Prefill only. */
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { MOBA_BLOCK = 512 };

/* MoBA's block size on p. */
static int64_t moba_block(const struct ab_problem *p)
{
    return ab_dyn_scaled(MOBA_BLOCK, p->h->n_k);
}

/* The knob as a block count in [1, n]. */
static int64_t knob_blocks(double knob, int64_t n)
{
    if (!(knob >= 1)) return 1;
    return knob >= (double)n ? n : (int64_t)knob;
}

static int moba_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    ab_dyn_check(p);
    const struct ab_head *h = p->h;
    int64_t k = knob_blocks(knob, h->n_k), B = moba_block(p);
    double cells = 0, gate = 0, sort = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i);
        if (v == 0) continue;
        int64_t cb = (v - 1) / B;
        cells += (double)(AB_MIN(k - 1, cb) * B + (v - cb * B));
        gate += (double)cb;
        sort += ab_dyn_sort_ops(cb);
    }
    ab_ledger_attend(led, h, cells);
    led->flops_select += (double)h->n_k * (double)h->d + 2.0 * (double)h->d * gate;
    led->ops_other += sort;
    return AB_OK;
}

static int moba_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                    struct ab_ledger *led)
{
    int rc = moba_cost(p, knob, led);
    if (rc) return rc;
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, k = knob_blocks(knob, n), B = moba_block(p), nb = n / B;
    /* nb whole key blocks: only those can be past blocks of a row */
    double *kmean = ab_alloc(ab_size_mul((size_t)(nb * d + d + nb), sizeof(double)));
    int64_t *idx = ab_alloc(ab_size_mul((size_t)nb + 1, sizeof(int64_t))); /* (nb) */
    if (!kmean || !idx) {
        ab_free(kmean);
        ab_free(idx);
        return ab_fail(AB_E_NOMEM, "moba: cannot allocate the block gate");
    }
    double *qd = kmean + nb * d, *score = qd + d; /* (nb, d), (d), (nb) */
    for (int64_t c = 0; c < nb; c++) {
        double *m = kmean + c * d;
        memset(m, 0, (size_t)d * sizeof(double));
        for (int64_t j = c * B; j < (c + 1) * B; j++)
            for (int64_t x = 0; x < d; x++) m[x] += h->k[j * d + x];
        for (int64_t x = 0; x < d; x++) m[x] /= (double)B;
    }
    ab_keep_clear(keep);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], v = ab_head_visible(h, i);
        if (v == 0) continue;
        int64_t cb = (v - 1) / B;
        for (int64_t x = 0; x < d; x++) qd[x] = h->q[i * d + x];
        for (int64_t c = 0; c < cb; c++) {
            double s = 0;
            for (int64_t x = 0; x < d; x++) s += qd[x] * kmean[c * d + x];
            score[c] = s;
        }
        ab_dyn_rank(score, cb, 0, idx);
        for (int64_t t = 0; t < AB_MIN(k - 1, cb); t++)
            ab_keep_range(keep, r, idx[t] * B, (idx[t] + 1) * B);
        ab_keep_range(keep, r, cb * B, v); /* the current block, causal */
    }
    ab_free(kmean);
    ab_free(idx);
    return o ? ab_attend_kept(p, keep, o, NULL) : AB_OK;
}

const struct ab_method ab_method_moba = {
    .name = "moba",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "per query, gate q . mean(K_block) over past key blocks of B (512 n / 32768); "
               "keep the top k - 1 plus the current block (causal)",
    .citation = "MoBA, Lu et al. 2025, arXiv 2502.13189",
    .cost_words = "4d per kept cell: min(k - 1, cb) B + (v - cb B) per query (cb = (v-1)/B); "
                  "selection n d (pooling adds) + 2 d cb per query; sort cb log2 cb per query",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "k", .lo = 1, .hi = 0, .integer = 1, .def = 3, .unit = "blocks"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = moba_cost,
    .run = moba_run,
};
