/* chunkkv.c - `chunkkv`: SnapKV's scores pooled over fixed chunks of the context, whole chunks
 * kept: Liu et al., "ChunkKV: Semantic-Preserving KV Cache Compression for Efficient
 * Long-Context LLM Inference", arXiv 2502.00299 (its Algorithm 1; kvpress's ChunkKVPress).
 *
 * Rule, once at the end of the context (decode protocol, method.h), per head, with SnapKV's
 * window scores score_j of the prefix keys (kv_window.h: the last W = 64 context queries,
 * summed softmax, average pool of 5):
 *     chunks of c = 10 consecutive prefix keys, [u c, (u + 1) c) (the last one may be shorter);
 *     chunk score = sum of score_j over the chunk / its length (for whole chunks: the sum / c);
 *     the window's W keys are kept; the chunks, by descending score (ties to the earlier chunk),
 *     are kept whole while they fit in the C - W tokens left: the first chunk that does not fit
 *     ends the selection (so what is kept only grows with C).
 * Knob: C, context keys kept per head at most, integer in [1, n]; C >= n_ctx keeps the whole
 * context (dense); C <= W keeps the last C context keys (the window counts against C).
 * Cost (data-dependent only through where the shorter last chunk ranks), k_ctx = the keys kept
 * (W + c floor((C - W) / c) when every chunk is whole):
 *     cells        = sum over decode queries i of k_ctx + (v_i - n_ctx), 4d per cell
 *     flops_once   = 2 W n_ctx d (the window's logits, one-off), counted at every C as snapkv
 *     flops_select = 0 per step
 *     ops_other    = snapkv's (W n_ctx exps + W n_pre sums + 5 n_pre pooling + n_pre top-k) +
 *                    n_pre chunk sums + n_chunks log2 n_chunks (the sort) + 1 exp per kept cell.
 * The window scores are prepare()'s state (kv_window.h; shared with criticalkv).
 * Deviations:
 * - c = 10 (the paper's choice; kvpress defaults to 20); the paper's layer-wise index reuse
 *   (sharing the kept chunks between adjacent layers) is not modelled: every head selects;
 * - chunks are per query head, even under GQA (the paper and kvpress sum scores over heads and
 *   keep one chunk set per layer), as snapkv here;
 * - the paper keeps the top floor((C - W) / c) chunks; here chunks are added in rank order until
 *   one does not fit, which is the same when every chunk is whole, and keeps at most C keys
 *   when the shorter last chunk ranks among them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/kv_window.h"
#include "methods/method.h"

enum { CHUNK_C = 10 };

static int64_t chunk_budget(double knob)
{
    return knob < 1 ? 1 : (int64_t)knob;
}

struct chunk_rank {
    double score;
    int64_t u;
};

/* Descending score, then ascending chunk index. */
static int chunk_cmp(const void *a, const void *b)
{
    const struct chunk_rank *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->u > y->u) - (x->u < y->u);
}

int ab_chunkkv_run(const struct ab_problem *p, double knob, int64_t chunk, float *o,
                   struct ab_keep *keep, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "chunkkv");
    if (rc) return rc;
    if (chunk < 1) return ab_fail(AB_E_USAGE, "chunkkv: chunk length %lld < 1", (long long)chunk);
    struct kv_win g = kv_win_of(p);
    int64_t C = chunk_budget(knob), n_ctx = g.n_ctx, n_pre = g.n_pre;
    int64_t n_chunks = (n_pre + chunk - 1) / chunk;
    size_t nc = (size_t)AB_MAX(n_ctx, 1);
    const struct kv_win_prep *st = NULL;
    struct kv_win_prep *own = NULL;
    uint8_t *ctx = ab_alloc(nc); /* (n_ctx) kept */
    struct chunk_rank *rank = ab_alloc(ab_size_mul((size_t)AB_MAX(n_chunks, 1), sizeof *rank));
    if (!ctx || !rank) {
        rc =
            ab_fail(AB_E_NOMEM, "chunkkv: cannot allocate scratch for %lld keys", (long long)n_ctx);
        goto done;
    }
    memset(ctx, 0, nc);
    if (C >= n_ctx) {
        memset(ctx, 1, (size_t)n_ctx);
    } else if (C <= g.wk) {
        memset(ctx + n_ctx - C, 1, (size_t)C); /* the most recent C keys of the window */
    } else {
        if ((rc = ab_kv_win_state(p, &st, &own))) goto done;
        memset(ctx + n_pre, 1, (size_t)g.wk);
        for (int64_t u = 0; u < n_chunks; u++) {
            int64_t j0 = u * chunk, j1 = AB_MIN(n_pre, j0 + chunk);
            double sum = 0;
            for (int64_t j = j0; j < j1; j++) sum += st->score[j];
            rank[u] = (struct chunk_rank){.score = sum / (double)(j1 - j0), .u = u};
        }
        qsort(rank, (size_t)n_chunks, sizeof *rank, chunk_cmp);
        int64_t left = C - g.wk;
        for (int64_t t = 0; t < n_chunks; t++) {
            int64_t j0 = rank[t].u * chunk, j1 = AB_MIN(n_pre, j0 + chunk);
            if (j1 - j0 > left) break; /* whole chunks only; keeps grow with C */
            memset(ctx + j0, 1, (size_t)(j1 - j0));
            left -= j1 - j0;
        }
    }
    int64_t k_ctx = 0;
    for (int64_t j = 0; j < n_ctx; j++) k_ctx += ctx[j];
    ab_ledger_attend(led, p->h, ab_kv_ctx_cells_kept(p, n_ctx, (double)k_ctx));
    ab_kv_win_ledger(p, &g, led);
    led->ops_other +=
        (double)n_pre + (n_chunks > 1 ? (double)n_chunks * log2((double)n_chunks) : 0);
    rc = ab_kv_ctx_emit(p, n_ctx, ctx, o, keep);
done:
    ab_kv_win_prepare_free(own);
    ab_free(ctx), ab_free(rank);
    return rc;
}

static int chunkkv_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                       struct ab_ledger *led)
{
    return ab_chunkkv_run(p, knob, CHUNK_C, o, keep, led);
}

const struct ab_method ab_method_chunkkv = {
    .name = "chunkkv",
    .family = AB_FAMILY_KV,
    .summary = "SnapKV scores summed over chunks of 10 keys; keep the best whole chunks within C",
    .citation = "ChunkKV, Liu et al. 2025, Semantic-Preserving KV Cache Compression for Efficient "
                "Long-Context LLM Inference, arXiv 2502.00299",
    .cost_words = "4d per kept cell: at most min(C, n_ctx) + decode keys per decode query (whole "
                  "chunks); window logits 2 W n_ctx d once (amortised over the horizon)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS,
    .run = chunkkv_run,
    .prepare = ab_kv_win_prepare,
    .prepare_free = ab_kv_win_prepare_free,
};
