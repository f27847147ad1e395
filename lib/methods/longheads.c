/* longheads.c - `longheads`: per-head chunk selection within an in-distribution length, after
 * Lu et al., "LongHeads: Multi-Head Attention is Secretly a Long Context Processor",
 * arXiv 2402.10685.
 *
 * Rule. The keys are cut into chunks of l = 64 consecutive keys, chunk t holding keys
 * [t l, (t+1) l). Each full chunk is represented by one vector built from its keys alone: an
 * attention pooling of the chunk's keys with their mean as the query,
 *     kbar = (1/l) sum_{j in t} k_j,   w_j = softmax_j(scale kbar . k_j),   c_t = sum_j w_j k_j.
 * For each decode query q, each head reads T chunks (its in-distribution length T l): always the
 * first chunk and the current (last, possibly partial) chunk, plus the T - 2 full chunks between
 * them with the largest q . c_t (ties to the earlier chunk), and attends exactly over them
 * (softmax renormalised over what it read). The selection is per head and per decode query, from
 * that query (query-aware, as quest; LongHeads' design): different heads may read different
 * chunks, which is how the heads together cover a context longer than any one of them reads.
 *
 * Knob: K, tokens read per decode query, integer in [1, n]; chunks read T = ceil(K / l), the
 * current chunk and (T >= 2) the first chunk included and counted against K. K >= n: dense.
 * Cost (analytic: every chunk but the current one is full), per decode query i with v_i keys and
 * c = floor((v_i - 1) / l) full chunks before the current one:
 *     cells_i      = v_i                       if T > c
 *                  = (v_i - c l) + (T - 1) l   otherwise
 *     flops_select = 2 d c per query (q . c_t over the full chunks), at every K, plus 4 l d per
 *                    chunk completed during the decode phase (its representation: the l logits
 *                    kbar . k_j and the weighted sum)
 *     flops_once   = 4 l d per chunk already full at the end of the context (one-off,
 *                    amortised over the horizon G)
 *     ops_other    = c per query (top-T pass) + (l d + l) per chunk (the mean's adds, the
 *                    exps) + one exp per cell.
 * Deviations:
 * - sizes scaled: the paper uses chunks of 256 and a 4K window (16 chunks); here l = 64 and the
 *   window is the knob;
 * - the chunk representation is this file's reading of the paper's (an attention pooling of
 *   the chunk's keys; the pooling query here is the chunk's mean key);
 * - LongHeads remaps the positions of the chosen chunks to stay within the trained length;
 *   Q and K here are already rotated, so the chunks keep their positions (accuracy is that of
 *   exact attention over the chosen keys);
 * - the paper encodes the prompt chunk by chunk with the same selection; here the context is the
 *   exact prefill (decode protocol) and only the decode queries select. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/kv_select.h"
#include "methods/method.h"

enum { LH_L = 64 };

static int64_t lh_chunks(double knob)
{
    int64_t k = knob < 1 ? 1 : (int64_t)knob;
    return (k + LH_L - 1) / LH_L;
}

static int64_t lh_row_cells(int64_t v, int64_t T)
{
    if (v <= 0) return 0;
    int64_t c = (v - 1) / LH_L;
    return T > c ? v : (v - c * LH_L) + (T - 1) * LH_L;
}

static int longheads_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "longheads");
    if (rc) return rc;
    const struct ab_head *h = p->h;
    int64_t T = lh_chunks(knob), v_last = 0;
    double cells = 0, scored = 0, d = (double)h->d;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i);
        cells += (double)lh_row_cells(v, T);
        scored += (double)(v > 0 ? (v - 1) / LH_L : 0);
        v_last = AB_MAX(v_last, v);
    }
    int64_t c_last = v_last / LH_L, c_ctx = AB_MIN(kv_n_ctx(p) / LH_L, c_last);
    ab_ledger_attend(led, h, cells);
    led->flops_select += 2.0 * d * scored + 4.0 * LH_L * d * (double)(c_last - c_ctx);
    led->flops_once += 4.0 * LH_L * d * (double)c_ctx;
    led->ops_other += scored + (double)(LH_L * h->d + LH_L) * (double)c_last;
    return AB_OK;
}

void ab_longheads_chunk_rep(const struct ab_head *h, int64_t t, float *c, float *w)
{
    int64_t d = h->d;
    const float *k = h->k + t * LH_L * d; /* (l, d) */
    float kbar[1024];
    float *mean = d <= 1024 ? kbar : c; /* c doubles as scratch for the mean when d is large */
    for (int64_t e = 0; e < d; e++) mean[e] = 0;
    for (int64_t j = 0; j < LH_L; j++)
        for (int64_t e = 0; e < d; e++) mean[e] += k[j * d + e] / (float)LH_L;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, LH_L, (int)d, (float)h->scale, k, (int)d, mean, 1,
                0.0f, w, 1);
    kv_softmax(w, LH_L);
    cblas_sgemv(CblasRowMajor, CblasTrans, LH_L, (int)d, 1.0f, k, (int)d, w, 1, 0.0f, c, 1);
}

/* prepare: the representations of every full chunk the phase can see (knob-independent). */
struct lh_prep {
    int64_t n_chunks;
    float *c; /* (n_chunks, d) */
};

static void longheads_prepare_free(void *state)
{
    struct lh_prep *st = state;
    if (!st) return;
    ab_free(st->c);
    free(st);
}

static int longheads_prepare(const struct ab_problem *p, void **state)
{
    const struct ab_head *h = p->h;
    struct lh_prep *st = calloc(1, sizeof *st);
    if (!st) return ab_fail(AB_E_NOMEM, "longheads: cannot allocate its state");
    st->n_chunks = h->n_q > 0 ? ab_head_visible(h, h->n_q - 1) / LH_L : 0;
    st->c = ab_alloc(ab_size_mul((size_t)AB_MAX(st->n_chunks, 1) * (size_t)h->d, sizeof(float)));
    if (!st->c) {
        long long nc = (long long)st->n_chunks;
        longheads_prepare_free(st);
        return ab_fail(AB_E_NOMEM, "longheads: cannot allocate %lld chunks", nc);
    }
    float w[LH_L];
    for (int64_t t = 0; t < st->n_chunks; t++) ab_longheads_chunk_rep(h, t, st->c + t * h->d, w);
    *state = st;
    return AB_OK;
}

static int longheads_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                         struct ab_ledger *led)
{
    int rc = longheads_cost(p, knob, led);
    if (rc || p->n_rows == 0) return rc;
    const struct ab_head *h = p->h;
    const struct lh_prep *st = p->prep;
    void *own = NULL;
    if (!st) { /* called without the engine's prepare: do it here */
        if ((rc = longheads_prepare(p, &own))) return rc;
        st = own;
    }
    int64_t d = h->d, T = lh_chunks(knob), nc = AB_MAX(st->n_chunks, 1);
    float *score = ab_alloc(ab_size_mul((size_t)nc, sizeof(float)));
    float *tmp = ab_alloc(ab_size_mul((size_t)nc, sizeof(float)));
    uint8_t *mark = ab_alloc((size_t)nc);
    if (!score || !tmp || !mark) {
        rc = ab_fail(AB_E_NOMEM, "longheads: cannot allocate scratch for %lld chunks",
                     (long long)nc);
        goto done;
    }
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], v = ab_head_visible(h, i);
        if (v == 0) continue;
        int64_t c = (v - 1) / LH_L; /* current chunk; chunks 0 .. c-1 are full */
        if (T > c) {
            ab_keep_range(keep, r, 0, v);
            continue;
        }
        ab_keep_range(keep, r, c * LH_L, v);
        if (T >= 2) ab_keep_range(keep, r, 0, LH_L); /* the first chunk (c >= T >= 2 here) */
        if (T <= 2) continue;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(c - 1), (int)d, 1.0f, st->c + d, (int)d,
                    h->q + i * d, 1, 0.0f, score, 1); /* chunks 1 .. c-1 */
        memset(mark, 0, (size_t)c);
        kv_top_k(score, c - 1, T - 2, mark, tmp);
        for (int64_t t = 0; t < c - 1; t++)
            if (mark[t]) ab_keep_range(keep, r, (t + 1) * LH_L, (t + 2) * LH_L);
    }
    if (o) rc = ab_attend_kept(p, keep, o, NULL);
done:
    ab_free(score);
    ab_free(tmp);
    ab_free(mark);
    longheads_prepare_free(own);
    return rc;
}

const struct ab_method ab_method_longheads = {
    .name = "longheads",
    .family = AB_FAMILY_KV,
    .summary = "per head and query: first + current chunk of 64 + top chunks by q . pooled "
               "chunk key, K/64 chunks in all",
    .citation = "LongHeads, Lu et al. 2024, arXiv 2402.10685",
    .cost_words = "4d per kept cell (K per query, first and current chunk included) + chunk "
                  "scoring 2d per full chunk per query; chunk keys 4 l d each (one-off for the "
                  "context's)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "K", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = longheads_cost,
    .run = longheads_run,
    .prepare = longheads_prepare,
    .prepare_free = longheads_prepare_free,
};
