/* kvpress.c - six "score the context once, keep the top C" KV-cache rows, the scorer presses
 * of NVIDIA kvpress (github.com/NVIDIA/kvpress, one file per press in kvpress/presses; read,
 * not copied):
 * - `knorm`: Devoto et al., "A Simple and Effective L2 Norm-Based Strategy for KV Cache
 *   Compression", arXiv 2406.11430: keys with a LOW L2 norm draw attention; score_j = -||k_j||;
 * - `random`: kvpress RandomPress, the baseline every press must beat: C context keys drawn
 *   uniformly without replacement (a seeded Fisher-Yates shuffle of the context, its first C);
 * - `keydiff`: Park et al., "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context
 *   LLM Inference in Resource-Constrained Environments", arXiv 2504.15364: keep the keys least
 *   similar to the anchor a = mean_j k_j / ||k_j||: score_j = -cos(k_j, a);
 * - `lagkv`: Liang et al., "LagKV: Lag-Relative Information of the KV Cache Tells Which Tokens
 *   Are Important", arXiv 2504.04704 (kvpress LagKVPress): after S = 4 sinks the context is cut
 *   into partitions of L = 128 keys; the keys (and values) of partition p are min-max normalised
 *   per channel by the min and max of partition p + 1 (the lag reference): x'_jc = (x_jc -
 *   min_c) / (max_c - min_c); s_K(j) = std_c k'_jc, s_V(j) = std_c v'_jc (unbiased, over the
 *   channels); a_j = (softmax_P(s_K)_j + softmax_P(s_V)_j) / 2 with both softmaxes over the L
 *   keys of the partition; score_j = rank of a_j inside its partition / L (kvpress's default
 *   without cross scoring: every partition offers the same number of keys). The sinks and the
 *   last partition (the last full one plus the remainder: L .. 2L - 1 keys, which have no lag
 *   reference) rank above every scored key: sinks first, then the tail newest first. A context
 *   shorter than S + 2L is not scored: sinks, then the newest keys;
 * - `expected-attention`: Devoto et al., "Expected Attention: KV Cache Compression by
 *   Estimating Attention from Future Queries Distribution", arXiv 2510.00636 (kvpress
 *   ExpectedAttentionPress): future queries are modelled as Gaussian, q ~ N(mu, Sigma), with mu
 *   and Sigma (biased) the mean and covariance of the last W = min(512, q0 - S) context queries
 *   (S = 4 sink rows excluded); the expected unnormalised attention of key j is
 *   E exp(s q.k_j) = exp(s mu.k_j + s^2 k_j^T Sigma k_j / 2), times ||v_j|| as kvpress does by
 *   default; score_j = its log, s mu.k_j + s^2 k_j^T Sigma k_j / 2 + ln ||v_j||. The S = 4
 *   sink keys rank above every other key;
 * - `q-filters`: Godey et al., "Q-Filters: Leveraging Query-Key Geometry for Efficient
 *   Key-Value Cache Compression", arXiv 2503.02812: E_q <q, k_j> ~ kappa <k_j, u> (kappa > 0),
 *   u the principal right singular vector of the queries oriented so that E <q, u> > 0; here u
 *   is found by T = 64 power iterations on the Gram Q_ctx^T Q_ctx of this head's context queries
 *   (started from, and oriented by, their mean); score_j = <k_j, u>, the estimated logit.
 *
 * Every row decides once, at the end of the context, from context rows only (decode protocol,
 * method.h): its scores of the n_ctx context keys (prepare(): they do not depend on C), the top
 * C of them (kv_top_k, ties to the lower index); the m decode queries read the kept context
 * keys plus every decode key up to themselves, exact softmax renormalised over what they read
 * (ab_attend_kept), as snapkv does.
 *
 * Knob: C, context keys kept per head, integer in [1, n] (tokens, like snapkv's). C >= n_ctx
 * keeps the whole context: dense. Forced keys (lagkv, expected-attention) count against C; with
 * C below them the order above decides (lagkv: sinks, then the newest tail keys).
 * Cost (analytic: the cells do not depend on the scores), k_ctx = min(C, n_ctx), v_i the keys
 * decode query i sees, n_sc the keys a row actually scores:
 *     cells        = sum over decode queries i of k_ctx + (v_i - n_ctx), 4d per cell (2d + 2d_v)
 *     flops_select = 0: the decode queries read the kept cache, no per-step scoring
 *     flops_once   = the scoring, one-off at the end of prefill (amortised over the decode
 *                    horizon G), counted at every C so that the cost stays monotone:
 *       knorm               2 d n_ctx (d multiply-adds per key: its squared norm)
 *       random              0
 *       keydiff             6 d n_ctx (norms, the anchor's sum of k_j / ||k_j||, the dots)
 *       lagkv               6 (d + d_v) n_sc, n_sc = (partitions - 1) L (normalise: 2 per value,
 *                           mean: 1, deviation and its square: 3)
 *       expected-attention  2 W d (mean, centring) + W d (d + 1) (covariance, symmetric rank-W
 *                           update) + n_sc (2 d^2 + 4 d + 2 d_v) (k^T Sigma k, mu.k, ||v||),
 *                           n_sc = n_ctx - 4
 *       q-filters           q0 d (mean) + q0 d (d + 1) (Gram) + 2 T d^2 (power iteration)
 *                           + 2 n_ctx d (projections)
 *     ops_other    = 1 exp per cell + n_ctx top-k + the scoring's (random: n_ctx draws; keydiff:
 *                    2 n_ctx roots and divisions; lagkv: 2 (d + d_v) n_sc min / max compares,
 *                    4 n_sc roots and exps, n_sc log2 L sort, (d + d_v) divisions per
 *                    reference; expected-attention: 2 n_sc roots and logs; q-filters: 2 T).
 * Deviations (all rows):
 * - each query head ranks its kv head's keys on its own, even under GQA (as snapkv does here);
 *   kvpress scores per kv head (expected-attention averages the group's scores, q-filters has
 *   one filter per kv head);
 * - kvpress compresses by a ratio; the knob here is the kept count C (the budget solver's unit);
 * - random: seeded from the problem's seed and the head's (layer, head) place, so a run is
 *   replayable; a kvpress RandomPress run without a seed is not;
 * - keydiff: the paper's block-wise iterative eviction (kvpress BlockPress) is not modelled: one
 *   pass over the whole context, as kvpress's KeyDiffPress alone does;
 * - lagkv: a channel whose reference partition is constant (max = min) is divided by 1 instead
 *   of 0; ties of a_j rank the earlier key lower; the sinks and tail outrank the scored keys
 *   with a fixed order (kvpress leaves the order among them to torch.topk);
 * - expected-attention: workloads store post-RoPE queries and not the rotary base, so the
 *   queries cannot be un-rotated and re-rotated to future positions as kvpress does (mean and
 *   covariance of pre-RoPE queries of the whole prompt, then the rotation averaged over the
 *   next 512 positions). Instead mu and Sigma are those of the post-RoPE queries of the last
 *   W = 512 context positions: their rotations are averaged over a 512-position span as
 *   kvpress averages over the 512 future ones, but over the span just before the decode
 *   instead of the one after it, and over the queries' content of that span only; epsilon = 0
 *   (kvpress's default); the score is ranked in log form (the same order as kvpress's
 *   softmax(...) ||v_j||, without overflow);
 * - q-filters: the paper computes u offline per head from calibration queries (the filters
 *   shipped on the Hugging Face hub); here u comes from this head's own context queries
 *   (post-RoPE, uncentred, as a Gram-matrix power iteration): a context-dependent filter,
 *   which is favourable to the method. kvpress's code scores -<q_filter, k_j> with its stored
 *   filters; here the sign is fixed by the paper's theorem (u agrees with the mean query, the
 *   estimated logit kappa <k_j, u> is kept highest). */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/kv.h"
#include "methods/kvpress.h"
#include "methods/method.h"

enum { KP_SINKS = 4, LAG_L = 128, EA_W = 512, QF_ITERS = 64 };

enum kp_rule { KP_KNORM, KP_RANDOM, KP_KEYDIFF, KP_LAGKV, KP_EXPECTED, KP_QFILTERS, KP_N };

/* ---- the scorers: score (n_ctx) of the context keys of p, higher = kept first ---- */

/* knorm: -||k_j||^2 (the square ranks as the norm does). */
static int score_knorm(const struct ab_problem *p, int64_t n_ctx, float *score)
{
    const struct ab_head *h = p->h;
    for (int64_t j = 0; j < n_ctx; j++) {
        const float *k = h->k + j * h->d;
        double s = 0;
        for (int64_t c = 0; c < h->d; c++) s += (double)k[c] * k[c];
        score[j] = (float)-s;
    }
    return AB_OK;
}

static void once_knorm(const struct ab_problem *p, int64_t n_ctx, struct ab_ledger *led)
{
    led->flops_once += 2.0 * (double)p->h->d * (double)n_ctx;
}

/* random: a Fisher-Yates shuffle of the context from the stream of (seed, layer, head); key
 * perm[t] scores n_ctx - t, so the top C are the shuffle's first C (the kept sets are nested
 * in C). Scratch (n_ctx) indices. */
static int score_random(const struct ab_problem *p, int64_t n_ctx, float *score)
{
    int64_t *perm = ab_alloc(ab_size_mul((size_t)AB_MAX(n_ctx, 1), sizeof(int64_t)));
    if (!perm) return ab_fail(AB_E_NOMEM, "random: cannot allocate %lld indices", (long long)n_ctx);
    struct ab_rng r;
    ab_rng_init(&r, p->seed,
                ab_stream(0x72616e64 /* "rand" */, (uint64_t)p->layer_index, (uint64_t)p->self, 0));
    for (int64_t j = 0; j < n_ctx; j++) perm[j] = j;
    for (int64_t t = 0; t < n_ctx; t++) {
        int64_t u = t + ab_rng_below(&r, n_ctx - t), x = perm[t];
        perm[t] = perm[u], perm[u] = x;
        score[perm[t]] = (float)(n_ctx - t);
    }
    ab_free(perm);
    return AB_OK;
}

static void once_random(const struct ab_problem *p, int64_t n_ctx, struct ab_ledger *led)
{
    (void)p;
    led->ops_other += (double)n_ctx; /* the draws */
}

/* keydiff: -cos(k_j, a), a = mean_j k_j / ||k_j|| (zero keys: cos 0). Scratch (n_ctx). */
static int score_keydiff(const struct ab_problem *p, int64_t n_ctx, float *score)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d;
    double *a = calloc((size_t)d, sizeof(double));                          /* (d) anchor */
    double *norm = ab_alloc(ab_size_mul((size_t)AB_MAX(n_ctx, 1), sizeof(double))); /* (n_ctx) */
    if (!a || !norm) {
        free(a), ab_free(norm);
        return ab_fail(AB_E_NOMEM, "keydiff: cannot allocate %lld norms", (long long)n_ctx);
    }
    for (int64_t j = 0; j < n_ctx; j++) {
        const float *k = h->k + j * d;
        double s = 0;
        for (int64_t c = 0; c < d; c++) s += (double)k[c] * k[c];
        norm[j] = sqrt(s);
        if (norm[j] > 0)
            for (int64_t c = 0; c < d; c++) a[c] += (double)k[c] / norm[j];
    }
    double an = 0;
    for (int64_t c = 0; c < d; c++) an += a[c] * a[c];
    an = sqrt(an); /* the 1/n_ctx of the mean cancels in the cosine */
    for (int64_t j = 0; j < n_ctx; j++) {
        const float *k = h->k + j * d;
        double dot = 0;
        for (int64_t c = 0; c < d; c++) dot += (double)k[c] * a[c];
        score[j] = norm[j] > 0 && an > 0 ? (float)(-dot / (norm[j] * an)) : 0.0f;
    }
    free(a), ab_free(norm);
    return AB_OK;
}

static void once_keydiff(const struct ab_problem *p, int64_t n_ctx, struct ab_ledger *led)
{
    led->flops_once += 6.0 * (double)p->h->d * (double)n_ctx;
    led->ops_other += 2.0 * (double)n_ctx;
}

/* lagkv's partitions of a context of n_ctx keys (file comment): n_parts partitions of L keys
 * after the sinks, the first n_parts - 1 scored (n_sc keys), the tail [tail, n_ctx) forced.
 * n_parts < 2: nothing scored (tail = sinks). */
struct lag_geom {
    int64_t sinks, n_parts, n_sc, tail;
};

static struct lag_geom lag_geom_of(int64_t n_ctx)
{
    struct lag_geom g = {.sinks = AB_MIN(KP_SINKS, n_ctx)};
    g.n_parts = n_ctx < KP_SINKS + 2 * LAG_L ? 0 : (n_ctx - KP_SINKS) / LAG_L;
    g.n_sc = g.n_parts > 1 ? (g.n_parts - 1) * LAG_L : 0;
    g.tail = g.sinks + g.n_sc;
    return g;
}

/* s (L) = unbiased std over the dim channels of x (L rows, stride dim) min-max normalised by
 * the reference rows ref (L rows): x' = (x - min_c) / (max_c - min_c), a constant channel
 * divided by 1. Then s = softmax over the L rows. lo, inv are (dim) scratch. */
static void lag_state_score(const float *x, const float *ref, int64_t dim, double *lo,
                            double *inv, double *s)
{
    for (int64_t c = 0; c < dim; c++) {
        double mn = ref[c], mx = ref[c];
        for (int64_t t = 1; t < LAG_L; t++) {
            double y = ref[t * dim + c];
            mn = y < mn ? y : mn, mx = y > mx ? y : mx;
        }
        lo[c] = mn, inv[c] = mx > mn ? 1.0 / (mx - mn) : 1.0;
    }
    double smax = -INFINITY;
    for (int64_t t = 0; t < LAG_L; t++) {
        const float *r = x + t * dim;
        double mean = 0, var = 0;
        for (int64_t c = 0; c < dim; c++) mean += ((double)r[c] - lo[c]) * inv[c];
        mean /= (double)dim;
        for (int64_t c = 0; c < dim; c++) {
            double e = ((double)r[c] - lo[c]) * inv[c] - mean;
            var += e * e;
        }
        s[t] = dim > 1 ? sqrt(var / (double)(dim - 1)) : 0.0;
        smax = s[t] > smax ? s[t] : smax;
    }
    double z = 0;
    for (int64_t t = 0; t < LAG_L; t++) z += s[t] = exp(s[t] - smax);
    for (int64_t t = 0; t < LAG_L; t++) s[t] /= z;
}

/* Rank order inside a partition: by a, ties to the earlier key. */
struct lag_item {
    double a;
    int64_t t;
};
static int lag_cmp(const void *x, const void *y)
{
    const struct lag_item *u = x, *w = y;
    if (u->a != w->a) return u->a < w->a ? -1 : 1;
    return u->t < w->t ? -1 : (u->t > w->t);
}

static int score_lagkv(const struct ab_problem *p, int64_t n_ctx, float *score)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v, dm = AB_MAX(d, dv);
    struct lag_geom g = lag_geom_of(n_ctx);
    /* forced: sinks score 3, the tail 2 + (newer is higher) in [2, 3) */
    for (int64_t j = 0; j < g.sinks; j++) score[j] = 3.0f;
    for (int64_t j = g.tail; j < n_ctx; j++)
        score[j] = (float)(2.0 + (double)(j - g.tail) / (double)n_ctx);
    if (g.n_sc == 0) return AB_OK;
    double *lo = ab_alloc(ab_size_mul((size_t)dm, sizeof(double)));  /* (max(d, d_v)) */
    double *inv = ab_alloc(ab_size_mul((size_t)dm, sizeof(double))); /* (max(d, d_v)) */
    double *sk = ab_alloc(sizeof(double) * LAG_L), *sv = ab_alloc(sizeof(double) * LAG_L);
    struct lag_item *it = ab_alloc(sizeof(struct lag_item) * LAG_L); /* (L) */
    if (!lo || !inv || !sk || !sv || !it) {
        ab_free(lo), ab_free(inv), ab_free(sk), ab_free(sv), ab_free(it);
        return ab_fail(AB_E_NOMEM, "lagkv: cannot allocate its partition scratch");
    }
    for (int64_t part = 0; part + 1 < g.n_parts; part++) {
        int64_t j0 = g.sinks + part * LAG_L, r0 = j0 + LAG_L; /* the partition and its reference */
        lag_state_score(h->k + j0 * d, h->k + r0 * d, d, lo, inv, sk);
        lag_state_score(h->v + j0 * dv, h->v + r0 * dv, dv, lo, inv, sv);
        for (int64_t t = 0; t < LAG_L; t++) it[t] = (struct lag_item){(sk[t] + sv[t]) / 2, t};
        qsort(it, LAG_L, sizeof *it, lag_cmp);
        for (int64_t rank = 0; rank < LAG_L; rank++)
            score[j0 + it[rank].t] = (float)rank / (float)LAG_L;
    }
    ab_free(lo), ab_free(inv), ab_free(sk), ab_free(sv), ab_free(it);
    return AB_OK;
}

static void once_lagkv(const struct ab_problem *p, int64_t n_ctx, struct ab_ledger *led)
{
    struct lag_geom g = lag_geom_of(n_ctx);
    double dd = (double)(p->h->d + p->h->d_v), n_sc = (double)g.n_sc;
    double refs = g.n_parts > 1 ? (double)(g.n_parts - 1) : 0;
    led->flops_once += 6.0 * dd * n_sc;
    led->ops_other += 2.0 * dd * n_sc + 4.0 * n_sc + n_sc * log2((double)LAG_L) + dd * refs;
}

/* expected-attention's geometry: sinks forced, the query window [q0 - w, q0). */
static int64_t ea_sinks(int64_t n_ctx) { return AB_MIN(KP_SINKS, n_ctx); }
static int64_t ea_window(const struct ab_problem *p)
{
    return AB_MAX(0, AB_MIN(EA_W, p->q0 - KP_SINKS));
}

/* score_j = s mu.k_j + s^2 k_j^T Sigma k_j / 2 + ln ||v_j|| (file comment); sinks +inf.
 * Scratch: (w, d) centred queries, (d, d) Sigma, (n_ctx, d) K Sigma. */
static int score_expected(const struct ab_problem *p, int64_t n_ctx, float *score)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v, w = ea_window(p), ns = ea_sinks(n_ctx), n_sc = n_ctx - ns;
    double s = h->scale;
    for (int64_t j = 0; j < ns; j++) score[j] = INFINITY;
    if (n_sc <= 0) return AB_OK;
    double *mu = calloc((size_t)d, sizeof(double));                               /* (d) */
    float *qc = ab_alloc(ab_size_mul((size_t)AB_MAX(w, 1) * (size_t)d, sizeof(float))); /* (w, d) */
    float *sig = calloc((size_t)(d * d), sizeof(float));                          /* (d, d) */
    float *ks = ab_alloc(ab_size_mul((size_t)n_sc * (size_t)d, sizeof(float)));   /* (n_sc, d) */
    if (!mu || !qc || !sig || !ks) {
        free(mu), ab_free(qc), free(sig), ab_free(ks);
        return ab_fail(AB_E_NOMEM, "expected-attention: cannot allocate %lld x %lld scratch",
                       (long long)n_sc, (long long)d);
    }
    const float *q = h->q + (p->q0 - w) * d; /* (w, d) the window's queries */
    for (int64_t t = 0; t < w; t++)
        for (int64_t c = 0; c < d; c++) mu[c] += q[t * d + c];
    for (int64_t c = 0; c < d && w > 0; c++) mu[c] /= (double)w;
    if (w > 0) {
        for (int64_t t = 0; t < w; t++)
            for (int64_t c = 0; c < d; c++) qc[t * d + c] = (float)((double)q[t * d + c] - mu[c]);
        /* Sigma = qc^T qc / w, upper triangle, then mirrored */
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)w, 1.0f / (float)w, qc,
                    (int)d, 0.0f, sig, (int)d);
        for (int64_t a = 0; a < d; a++)
            for (int64_t b = 0; b < a; b++) sig[a * d + b] = sig[b * d + a];
    }
    /* ks = K_sc Sigma: (n_sc, d) x (d, d) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n_sc, (int)d, (int)d, 1.0f,
                h->k + ns * d, (int)d, sig, (int)d, 0.0f, ks, (int)d);
    for (int64_t j = ns; j < n_ctx; j++) {
        const float *k = h->k + j * d, *kr = ks + (j - ns) * d, *v = h->v + j * dv;
        double m = 0, quad = 0, vn = 0;
        for (int64_t c = 0; c < d; c++) m += mu[c] * k[c], quad += (double)kr[c] * k[c];
        for (int64_t c = 0; c < dv; c++) vn += (double)v[c] * v[c];
        score[j] = (float)(s * m + s * s * quad / 2 + 0.5 * log(vn));
    }
    free(mu), ab_free(qc), free(sig), ab_free(ks);
    return AB_OK;
}

static void once_expected(const struct ab_problem *p, int64_t n_ctx, struct ab_ledger *led)
{
    double d = (double)p->h->d, dv = (double)p->h->d_v, w = (double)ea_window(p);
    double n_sc = (double)(n_ctx - ea_sinks(n_ctx));
    led->flops_once += 2.0 * w * d + w * d * (d + 1) + n_sc * (2 * d * d + 4 * d + 2 * dv);
    led->ops_other += 2.0 * n_sc;
}

int ab_qfilters_direction(const struct ab_problem *p, double *u)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, nq = p->q0;
    float *gf = calloc((size_t)(d * d), sizeof(float)); /* (d, d) Gram, upper triangle */
    double *x = calloc((size_t)d, sizeof(double));      /* (d) mean query, then iterate */
    if (!gf || !x) {
        free(gf), free(x);
        return ab_fail(AB_E_NOMEM, "q-filters: cannot allocate a %lld x %lld Gram matrix",
                       (long long)d, (long long)d);
    }
    if (nq > 0)
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)nq, 1.0f, h->q, (int)d,
                    0.0f, gf, (int)d);
    for (int64_t t = 0; t < nq; t++)
        for (int64_t c = 0; c < d; c++) x[c] += h->q[t * d + c];
    double mn = 0;
    for (int64_t c = 0; c < d; c++) mn += x[c] * x[c];
    /* start from the mean query (its direction also orients u); a zero mean starts from 1 */
    for (int64_t c = 0; c < d; c++) u[c] = mn > 0 ? x[c] / sqrt(mn) : 1.0 / sqrt((double)d);
    for (int it = 0; it < QF_ITERS; it++) {
        double nn = 0;
        for (int64_t a = 0; a < d; a++) {
            double y = 0; /* (G u)_a, G symmetric from its upper triangle */
            for (int64_t b = 0; b < d; b++)
                y += (double)(a <= b ? gf[a * d + b] : gf[b * d + a]) * u[b];
            x[a] = y, nn += y * y;
        }
        if (!(nn > 0)) break; /* no context queries (or all zero): keep the start */
        for (int64_t c = 0; c < d; c++) u[c] = x[c] / sqrt(nn);
    }
    double dot = 0; /* orient: u . mean(q) >= 0 */
    for (int64_t t = 0; t < nq; t++)
        for (int64_t c = 0; c < d; c++) dot += (double)h->q[t * d + c] * u[c];
    if (dot < 0)
        for (int64_t c = 0; c < d; c++) u[c] = -u[c];
    free(gf), free(x);
    return AB_OK;
}

/* q-filters: score_j = <k_j, u>. */
static int score_qfilters(const struct ab_problem *p, int64_t n_ctx, float *score)
{
    const struct ab_head *h = p->h;
    double *u = calloc((size_t)h->d, sizeof(double)); /* (d) */
    if (!u) return ab_fail(AB_E_NOMEM, "q-filters: cannot allocate its direction");
    int rc = ab_qfilters_direction(p, u);
    for (int64_t j = 0; !rc && j < n_ctx; j++) {
        const float *k = h->k + j * h->d;
        double s = 0;
        for (int64_t c = 0; c < h->d; c++) s += (double)k[c] * u[c];
        score[j] = (float)s;
    }
    free(u);
    return rc;
}

static void once_qfilters(const struct ab_problem *p, int64_t n_ctx, struct ab_ledger *led)
{
    double d = (double)p->h->d, nq = (double)p->q0;
    led->flops_once += nq * d + nq * d * (d + 1) + 2.0 * QF_ITERS * d * d + 2.0 * (double)n_ctx * d;
    led->ops_other += 2.0 * QF_ITERS;
}

static const struct {
    const char *name;
    int (*score)(const struct ab_problem *p, int64_t n_ctx, float *score);
    void (*once)(const struct ab_problem *p, int64_t n_ctx, struct ab_ledger *led);
} rules[KP_N] = {
    [KP_KNORM] = {"knorm", score_knorm, once_knorm},
    [KP_RANDOM] = {"random", score_random, once_random},
    [KP_KEYDIFF] = {"keydiff", score_keydiff, once_keydiff},
    [KP_LAGKV] = {"lagkv", score_lagkv, once_lagkv},
    [KP_EXPECTED] = {"expected-attention", score_expected, once_expected},
    [KP_QFILTERS] = {"q-filters", score_qfilters, once_qfilters},
};

/* ---- score once, keep the top C ---- */

/* The scores of rule on p (n_ctx) with non-finite lows (NaN, -inf) lowered to -FLT_MAX, so that
 * kv_top_k always finds C candidates. */
static int kp_scores(const struct ab_problem *p, int rule, int64_t n_ctx, float *score)
{
    int rc = rules[rule].score(p, n_ctx, score);
    for (int64_t j = 0; !rc && j < n_ctx; j++)
        if (!(score[j] > -INFINITY)) score[j] = -FLT_MAX;
    return rc;
}

/* prepare()'s state: the context scores of one rule. */
struct kp_prep {
    int rule;
    int64_t n_ctx;
    float *score; /* (n_ctx) */
};

static void kp_prepare_free(void *state)
{
    struct kp_prep *st = state;
    if (!st) return;
    ab_free(st->score);
    free(st);
}

static int kp_prepare(const struct ab_problem *p, int rule, void **state)
{
    *state = NULL;
    int rc = kv_check_phase(p, rules[rule].name);
    if (rc) return rc;
    struct kp_prep *st = calloc(1, sizeof *st);
    int64_t n_ctx = kv_n_ctx(p);
    if (st) st->score = ab_alloc(ab_size_mul((size_t)AB_MAX(n_ctx, 1), sizeof(float)));
    if (!st || !st->score) {
        kp_prepare_free(st);
        return ab_fail(AB_E_NOMEM, "%s: cannot allocate %lld scores", rules[rule].name,
                       (long long)n_ctx);
    }
    st->rule = rule, st->n_ctx = n_ctx;
    rc = kp_scores(p, rule, n_ctx, st->score);
    if (rc) {
        kp_prepare_free(st);
        return rc;
    }
    *state = st;
    return AB_OK;
}

static int64_t kp_budget(double knob) { return knob < 0 ? 0 : (int64_t)knob; }

/* The ledger of the phase at knob C (file comment). */
static int kp_cost(const struct ab_problem *p, int rule, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, rules[rule].name);
    if (rc) return rc;
    const struct ab_head *h = p->h;
    int64_t n_ctx = kv_n_ctx(p);
    double k_ctx = (double)AB_MIN(kp_budget(knob), n_ctx), cells = 0;
    for (int64_t i = p->q0; i < h->n_q; i++)
        cells += k_ctx + (double)AB_MAX(0, ab_head_visible(h, i) - n_ctx);
    ab_ledger_attend(led, h, cells);
    rules[rule].once(p, n_ctx, led);
    led->ops_other += (double)n_ctx; /* the top-k */
    return AB_OK;
}

/* The run: the ledger, the top C context keys by the prepared scores (computed here when p has
 * none of this rule), the keep rows (kept context keys plus the decode keys each row sees),
 * then O if asked. Scratch O(n_ctx). */
static int kp_run(const struct ab_problem *p, int rule, double knob, float *o,
                  struct ab_keep *keep, struct ab_ledger *led)
{
    int rc = kp_cost(p, rule, knob, led);
    if (rc) return rc;
    const struct ab_head *h = p->h;
    const struct kp_prep *st = p->prep;
    int64_t n_ctx = kv_n_ctx(p), C = AB_MIN(kp_budget(knob), n_ctx);
    size_t nc = (size_t)AB_MAX(n_ctx, 1);
    int own = !(st && st->rule == rule && st->n_ctx == n_ctx);
    uint8_t *ctx = calloc(nc, 1);                                       /* (n_ctx) kept */
    float *tmp = ab_alloc(ab_size_mul(nc, sizeof(float)));              /* (n_ctx) */
    float *score = own ? ab_alloc(ab_size_mul(nc, sizeof(float))) : st->score; /* (n_ctx) */
    if (!ctx || !tmp || !score) {
        rc = ab_fail(AB_E_NOMEM, "%s: cannot allocate scratch for %lld context keys",
                     rules[rule].name, (long long)n_ctx);
        goto done;
    }
    if (C >= n_ctx) {
        memset(ctx, 1, (size_t)n_ctx);
    } else {
        if (own && (rc = kp_scores(p, rule, n_ctx, score))) goto done;
        int64_t got = kv_top_k(score, n_ctx, C, ctx, tmp);
        assert(got == C); /* every score is above -inf: the ledger's k_ctx is exact */
        (void)got;
    }
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t v = ab_head_visible(h, p->rows[r]);
        for (int64_t j = 0; j < AB_MIN(v, n_ctx); j++)
            if (ctx[j]) ab_keep_set(keep, r, j);
        ab_keep_range(keep, r, n_ctx, v);
    }
    if (o) rc = ab_attend_kept(p, keep, o, NULL);
done:
    free(ctx);
    ab_free(tmp);
    if (own) ab_free(score);
    return rc;
}

int ab_kvpress_scores(const struct ab_problem *p, const char *name, float *score)
{
    for (int rule = 0; rule < KP_N; rule++)
        if (!strcmp(rules[rule].name, name)) return kp_scores(p, rule, kv_n_ctx(p), score);
    return ab_fail(AB_E_USAGE, "kvpress: no scorer called '%s'", name);
}

/* The registry's functions of each row. */
#define KP_ROW_FNS(id, RULE)                                                                  \
    static int id##_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)      \
    {                                                                                          \
        return kp_cost(p, RULE, knob, led);                                                    \
    }                                                                                          \
    static int id##_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep, \
                        struct ab_ledger *led)                                                 \
    {                                                                                          \
        return kp_run(p, RULE, knob, o, keep, led);                                            \
    }                                                                                          \
    static int id##_prepare(const struct ab_problem *p, void **state)                         \
    {                                                                                          \
        return kp_prepare(p, RULE, state);                                                     \
    }

KP_ROW_FNS(knorm, KP_KNORM)
KP_ROW_FNS(random, KP_RANDOM)
KP_ROW_FNS(keydiff, KP_KEYDIFF)
KP_ROW_FNS(lagkv, KP_LAGKV)
KP_ROW_FNS(expected, KP_EXPECTED)
KP_ROW_FNS(qfilters, KP_QFILTERS)

#define KP_KNOB {.name = "C", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"}

const struct ab_method ab_method_knorm = {
    .name = "knorm",
    .family = AB_FAMILY_KV,
    .summary = "keep the C context keys of lowest L2 norm (scored once after the context)",
    .citation = "Devoto et al. 2024, A Simple and Effective L2 Norm-Based Strategy for KV Cache "
                "Compression, arXiv 2406.11430 (kvpress KnormPress)",
    .cost_words = "4d per kept cell: min(C, n_ctx) + decode keys per query; one-off: 2 d n_ctx",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = KP_KNOB,
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = knorm_cost,
    .run = knorm_run,
    .prepare = knorm_prepare,
    .prepare_free = kp_prepare_free,
};

const struct ab_method ab_method_random = {
    .name = "random",
    .family = AB_FAMILY_KV,
    .summary = "keep C context keys drawn uniformly at random (seeded per head): the baseline",
    .citation = "kvpress RandomPress (NVIDIA kvpress, github.com/NVIDIA/kvpress)",
    .cost_words = "4d per kept cell: min(C, n_ctx) + decode keys per query; no selection FLOPs "
                  "(n_ctx draws)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = KP_KNOB,
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = random_cost,
    .run = random_run,
    .prepare = random_prepare,
    .prepare_free = kp_prepare_free,
};

const struct ab_method ab_method_keydiff = {
    .name = "keydiff",
    .family = AB_FAMILY_KV,
    .summary = "keep the C context keys least cosine-similar to the mean normalised key",
    .citation = "KeyDiff, Park et al. 2025, arXiv 2504.15364 (kvpress KeyDiffPress)",
    .cost_words = "4d per kept cell: min(C, n_ctx) + decode keys per query; one-off: 6 d n_ctx",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = KP_KNOB,
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = keydiff_cost,
    .run = keydiff_run,
    .prepare = keydiff_prepare,
    .prepare_free = kp_prepare_free,
};

const struct ab_method ab_method_lagkv = {
    .name = "lagkv",
    .family = AB_FAMILY_KV,
    .summary = "rank keys per 128-key partition by K and V spread normalised by the next "
               "partition; sinks and last partition kept",
    .citation = "LagKV, Liang et al. 2025, arXiv 2504.04704 (kvpress LagKVPress)",
    .cost_words = "4d per kept cell: min(C, n_ctx) + decode keys per query; one-off: "
                  "6 (d + d_v) per scored key",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = KP_KNOB,
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = lagkv_cost,
    .run = lagkv_run,
    .prepare = lagkv_prepare,
    .prepare_free = kp_prepare_free,
};

const struct ab_method ab_method_expected_attention = {
    .name = "expected-attention",
    .family = AB_FAMILY_KV,
    .summary = "keep the C keys of highest expected attention under a Gaussian fit of the last "
               "512 context queries, times ||v||",
    .citation = "Expected Attention, Devoto et al. 2025, arXiv 2510.00636 (kvpress "
                "ExpectedAttentionPress)",
    .cost_words = "4d per kept cell: min(C, n_ctx) + decode keys per query; one-off: "
                  "W d (d + 3) + (2 d^2 + 4 d + 2 d_v) per key (W = 512)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = KP_KNOB,
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = expected_cost,
    .run = expected_run,
    .prepare = expected_prepare,
    .prepare_free = kp_prepare_free,
};

const struct ab_method ab_method_q_filters = {
    .name = "q-filters",
    .family = AB_FAMILY_KV,
    .summary = "keep the C keys with the largest projection on the context queries' principal "
               "direction",
    .citation = "Q-Filters, Godey et al. 2025, arXiv 2503.02812 (kvpress QFilterPress)",
    .cost_words = "4d per kept cell: min(C, n_ctx) + decode keys per query; one-off: "
                  "q0 d (d + 2) + 2 T d^2 + 2 n_ctx d (T = 64)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = KP_KNOB,
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = qfilters_cost,
    .run = qfilters_run,
    .prepare = qfilters_prepare,
    .prepare_free = kp_prepare_free,
};
