/* think.c - `think`: query-driven pruning of key CHANNELS, not tokens: Xu et al., "ThinK:
 * Thinner Key Cache by Query-Driven Pruning", arXiv 2407.21450 (kvpress's ThinKPress).
 *
 * Rule, once at the end of the context (decode protocol, method.h), per head, with the
 * observation window of the last W = 32 context queries (ThinK's and kvpress's window):
 *     importance of channel c = ||Q_win[:, c]||_2 * ||K_ctx[:, c]||_2   (K_ctx: the n_ctx
 *                               context keys; the paper's score of a channel's contribution to
 *                               the window's logits, ||Q_win[:,c] K_ctx[:,c]^T||_F)
 *     keep the top d_r = clamp(d - floor(d (1 - r)), 1, d) channels (ties to the lower channel);
 *     decode query i's logit on a context key j uses the kept channels only,
 *         l_ij = scale sum_{c kept} q_ic k_jc,
 *     and on a decode key (written after the decision, not pruned) all d channels; softmax
 *     over every visible key (no token is dropped), values untouched.
 * Knob: r, the kept fraction of key channels, real in [0.01, 1] (default 0.6: the paper's
 * pruning ratio 0.4); r = 1 is dense attention.
 * Cost (analytic, what run() counts), n_ctx context keys, d_r kept channels, per decode query i
 * with v_i visible keys (cells = every visible cell):
 *     flops_attend = min(v_i, n_ctx) (2 d_r + 2 d_v) + (v_i - n_ctx)^+ (2 d + 2 d_v)
 *     bytes_kv     = the same cells at 4 (d_r + d_v) and 4 (d + d_v) bytes
 *     flops_once   = 2 (W + n_ctx) d: the channel norms (one multiply-add per element), one-off
 *     flops_select = 0 per step
 *     ops_other    = d (the products) + d top-k + 1 exp per cell.
 * No AB_METHOD_SELECTS: every visible key is read (a keep set of every key would make recall 1
 * by construction and say nothing); the loss is in the logits, measured by rel_l2.
 * Deviations:
 * - channels are chosen per query head, even under GQA (kvpress averages the query norms over
 *   the kv head's query heads and prunes the shared key cache once), as snapkv here;
 * - the decode tokens' own keys keep every channel (the cache of the context is what ThinK
 *   prunes at the end of prefill); kvpress zeroes the pruned channels of the context keys,
 *   which gives the same logits as skipping them, as here;
 * - the logit scale stays 1/sqrt(d), as in the paper (no rescaling for the fewer channels). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/kv_window.h"
#include "methods/method.h"

enum { THINK_W = 32 };

static int64_t think_kept(int64_t d, double r)
{
    if (!(r < 1)) return d;
    int64_t k = d - (int64_t)floor((double)d * (1 - r) + 1e-9);
    return AB_MAX(1, AB_MIN(d, k));
}

int64_t ab_think_channels(const struct ab_problem *p, double r, uint8_t *mark, int *rc)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, n_ctx = kv_n_ctx(p), w = AB_MIN(THINK_W, p->q0), kept = think_kept(d, r);
    *rc = AB_OK;
    memset(mark, 0, (size_t)d);
    if (kept >= d) {
        memset(mark, 1, (size_t)d);
        return d;
    }
    double *qn = ab_alloc(ab_size_mul((size_t)d, sizeof(double))); /* (d) sum of q_c^2 */
    double *kn = ab_alloc(ab_size_mul((size_t)d, sizeof(double))); /* (d) sum of k_c^2 */
    float *sc = ab_alloc(ab_size_mul((size_t)d, sizeof(float)));   /* (d) importance */
    float *tmp = ab_alloc(ab_size_mul((size_t)d, sizeof(float)));  /* (d) */
    if (!qn || !kn || !sc || !tmp) {
        *rc = ab_fail(AB_E_NOMEM, "think: cannot allocate %lld channel scores", (long long)d);
        kept = 0;
        goto done;
    }
    memset(qn, 0, (size_t)d * sizeof(double));
    memset(kn, 0, (size_t)d * sizeof(double));
    for (int64_t t = p->q0 - w; t < p->q0; t++)
        for (int64_t c = 0; c < d; c++) qn[c] += (double)h->q[t * d + c] * h->q[t * d + c];
    for (int64_t j = 0; j < n_ctx; j++)
        for (int64_t c = 0; c < d; c++) kn[c] += (double)h->k[j * d + c] * h->k[j * d + c];
    for (int64_t c = 0; c < d; c++) sc[c] = (float)sqrt(qn[c] * kn[c]);
    kept = kv_top_k(sc, d, kept, mark, tmp);
done:
    ab_free(qn), ab_free(kn), ab_free(sc), ab_free(tmp);
    return kept;
}

static int think_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "think");
    if (rc) return rc;
    const struct ab_head *h = p->h;
    int64_t n_ctx = kv_n_ctx(p), d = h->d, dv = h->d_v, dr = think_kept(d, knob);
    double c_ctx = 0, c_dec = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i);
        c_ctx += (double)AB_MIN(v, n_ctx);
        c_dec += (double)AB_MAX(0, v - n_ctx);
    }
    led->cells += c_ctx + c_dec;
    led->flops_attend += c_ctx * (double)(2 * dr + 2 * dv) + c_dec * (double)(2 * d + 2 * dv);
    led->bytes_kv += 4.0 * (c_ctx * (double)(dr + dv) + c_dec * (double)(d + dv));
    led->ops_other += c_ctx + c_dec + 2.0 * (double)d;
    led->flops_once += 2.0 * (double)(AB_MIN(THINK_W, p->q0) + n_ctx) * (double)d;
    return AB_OK;
}

/* The ledger (analytic), the channel choice and, with o, each evaluated row's attention over
 * every visible key with the pruned logits on context keys (double accumulation). Scratch O(n). */
static int think_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    (void)keep; /* nothing is selected: every visible key is read */
    int rc = think_cost(p, knob, led);
    if (rc || !o) return rc;
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v, n = h->n_k, n_ctx = kv_n_ctx(p);
    uint8_t *mark = ab_alloc((size_t)d);                             /* (d) kept channels */
    int64_t *ch = ab_alloc(ab_size_mul((size_t)d, sizeof(int64_t))); /* (d) their indices */
    double *s = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));    /* (n) one row's logits */
    double *acc = ab_alloc(ab_size_mul((size_t)dv, sizeof(double))); /* (d_v) */
    if (!mark || !ch || !s || !acc) {
        rc = ab_fail(AB_E_NOMEM, "think: cannot allocate scratch for %lld keys", (long long)n);
        goto done;
    }
    int64_t dr = ab_think_channels(p, knob, mark, &rc);
    if (rc) goto done;
    for (int64_t c = 0, t = 0; c < d; c++)
        if (mark[c]) ch[t++] = c;
    double cells = 0;
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], vis = ab_head_visible(h, i);
        const float *q = h->q + i * d;
        double mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < vis; j++) {
            const float *k = h->k + j * d;
            double dot = 0;
            if (j < n_ctx)
                for (int64_t t = 0; t < dr; t++) dot += (double)q[ch[t]] * k[ch[t]];
            else
                for (int64_t c = 0; c < d; c++) dot += (double)q[c] * k[c];
            s[j] = h->scale * dot;
            mx = s[j] > mx ? s[j] : mx;
        }
        memset(acc, 0, (size_t)dv * sizeof(double));
        for (int64_t j = 0; j < vis; j++) {
            double wgt = exp(s[j] - mx);
            z += wgt;
            for (int64_t c = 0; c < dv; c++) acc[c] += wgt * h->v[j * dv + c];
        }
        for (int64_t c = 0; c < dv; c++) o[r * dv + c] = vis ? (float)(acc[c] / z) : 0.0f;
        cells += (double)vis;
    }
    ab_attend_counter_add(cells);
done:
    ab_free(mark), ab_free(ch), ab_free(s), ab_free(acc);
    return rc;
}

const struct ab_method ab_method_think = {
    .name = "think",
    .family = AB_FAMILY_KV,
    .summary = "prune key channels: keep the top fraction r by ||Q_win[:,c]|| ||K[:,c]||, logits "
               "on kept channels, every token read",
    .citation = "ThinK, Xu et al. 2024, Thinner Key Cache by Query-Driven Pruning, arXiv "
                "2407.21450",
    .cost_words = "2 d_r + 2 d_v per context cell (d_r = kept channels), 4d per decode-key cell; "
                  "channel norms 2 (32 + n_ctx) d once (amortised over the horizon)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "r", .lo = 0.01, .hi = 1, .integer = 0, .def = 0.6, .unit = "fraction"},
    .flags = AB_METHOD_ANALYTIC,
    .cost = think_cost,
    .run = think_run,
};
