/* window_linear.c - `window-linear`: exact softmax attention inside a sliding window of w keys
 * plus a positive-random-feature (FAVOR+) estimate of the remote keys, both parts sharing one
 * softmax normaliser (methods.md, "linear and approximate kernels"). The mix of a local exact
 * window with a linear global part follows Zhang et al. 2024, "LoLCATs" (arXiv 2410.10254,
 * section 3.2, sliding window plus linear attention under one normaliser) and Arora et al. 2024,
 * "Based" (arXiv 2402.18668, Taylor features plus a small exact window); the remote estimate here
 * is Performer's FAVOR+ (Choromanski et al. 2021, arXiv 2009.14794, section 2.3-2.4, Lemma 1).
 *
 * Rule. Query i sees keys j <= i (causal) or all keys (full mask). Window keys: i - w < j <= i
 * (causal), |i - j| < w (full). Remote keys: the other visible ones. With x^ = x sqrt(s)
 * (s the head's logit scale, d^-1/2 by default, so x^ = x d^-1/4 as in FAVOR+) and
 * phi(x) = m^-1/2 exp(W x^ - |x^|^2 / 2), W (m, d) blocks of d orthogonal Gaussian rows with
 * chi(d)-distributed norms, E[phi(q) . phi(k)] = exp(s q.k). Then
 *   o_i = (sum_window e^(s q.k_j) v_j + sum_remote phi(q_i).phi(k_j) v_j)
 *       / (sum_window e^(s q.k_j)     + sum_remote phi(q_i).phi(k_j)).
 * The FAVOR+ definition (features, orthogonal blocks, chi norms) is the one `performer` uses;
 * this file has its own implementation of it (the two rows were written in parallel), with
 * m = 64 features fixed. Knob: w in [1, n] (tokens); w >= n is exact dense attention.
 *
 * Causal form: the remote sum of query i covers keys j <= i - w, a prefix: a state
 * S = sum_j phi(k_j) [v_j, 1]^T (m, d_v + 1), the last column being the normaliser z. Queries go
 * in chunks of C = 64 (prefill): the state holds the keys remote to the whole chunk, the C - 1
 * keys remote to only part of it are a masked (C, C - 1) block of feature products, and the
 * chunk's remote keys then enter the state, all through sgemm. Decode is the recurrent form
 * (C = 1): the state of the context is part of the cache; each decode step reads it and adds one
 * key (the one leaving the window). Stabilisers: each query's features carry their own
 * max-log a_i, each key's its own beta_j, and the state a running key stabiliser b (the largest
 * beta absorbed so far; the state is rescaled when it grows), so no key influences an earlier
 * query, not even through rounding of a shift; the window's own row maximum and the remote
 * scale a_i + b_i are merged by log-sum-exp. Full mask: the same pass runs forwards (keys left
 * of the window) and backwards over the reversed sequence (keys right of it).
 *
 * Cost (analytic; m = 64 features, d_v + 1 value columns with the normaliser, n_p queries in the
 * phase, D = 1 causal or 2 full-mask passes):
 * - window: 4d per window cell (ab_ledger_attend), sum_i of the window's size;
 * - features: 2md per query of the phase and per key of the phase's pass (prefill: all n keys;
 *   decode: one key per step), an exp per feature (ops_other);
 * - per pass and query: state read 2m(d_v + 1), and in prefill the partial block
 *   2(C - 1)(m + d_v + 1); per pass and key: state update 2m(d_v + 1);
 *   i.e. about 8md + 2C(m + d) per query (prefill) and 8md + 4m per decode step, as Performer.
 * - bytes_kv: the window cells' K and V, plus the state (4 m (d_v + 1) bytes) read per query
 *   and pass.
 * The linear part is counted at this size for every w (also where the window already covers
 * a query's whole past and the pass has nothing remote to add), which keeps the cost monotone in
 * w; so at w >= n the ratio is above 1. The decode ledger does not count building the context's
 * state (it is part of the cache, built in prefill as K and V are).
 *
 * Deviations from the papers:
 * - no training: LoLCATs and Based learn their feature maps; here the features are FAVOR+'s
 *   random ones (training-free), with m = 64 fixed;
 * - random features are drawn once per (seed, layer, head), not redrawn;
 * - a key's feature stabiliser is its own maximum and the state's is the running maximum of
 *   those (Performer's code uses one global key maximum, which leaks the future under a causal
 *   mask);
 * - needs one key per position (standard positions): other heads are refused with AB_E_USAGE;
 * - single precision throughout (sgemm), shifts and merges in double. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "methods/method.h"
#include "methods/window_linear.h"

enum { M_FEAT = AB_WL_M, CHUNK = 64 };

int ab_wl_omega(uint64_t seed, uint64_t stream, int64_t m, int64_t d, float *omega)
{
    double *blk = ab_alloc(ab_size_mul((size_t)(d * d), sizeof(double))); /* (d, d) */
    if (!blk) return ab_fail(AB_E_NOMEM, "window-linear: cannot allocate random features");
    struct ab_rng r;
    ab_rng_init(&r, seed, stream);
    for (int64_t r0 = 0; r0 < m; r0 += d) {
        /* d Gaussian rows, orthonormalised by Gram-Schmidt (twice, for float-level accuracy) */
        for (int64_t e = 0; e < d * d; e++) blk[e] = ab_rng_normal(&r);
        for (int64_t a = 0; a < d; a++) {
            double *x = blk + a * d;
            for (int pass = 0; pass < 2; pass++)
                for (int64_t b = 0; b < a; b++) {
                    double dot = 0, *y = blk + b * d;
                    for (int64_t c = 0; c < d; c++) dot += x[c] * y[c];
                    for (int64_t c = 0; c < d; c++) x[c] -= dot * y[c];
                }
            double nn = 0;
            for (int64_t c = 0; c < d; c++) nn += x[c] * x[c];
            for (int64_t c = 0; c < d; c++) x[c] /= sqrt(nn);
        }
        /* each row gets the norm of an independent Gaussian vector: chi(d) */
        for (int64_t a = 0; a < d && r0 + a < m; a++) {
            double nn = 0;
            for (int64_t c = 0; c < d; c++) {
                double g = ab_rng_normal(&r);
                nn += g * g;
            }
            for (int64_t c = 0; c < d; c++)
                omega[(r0 + a) * d + c] = (float)(blk[a * d + c] * sqrt(nn));
        }
    }
    ab_free(blk);
    return AB_OK;
}

void ab_wl_features(const float *x, int64_t rows, int64_t d, const float *omega, int64_t m,
                    double scale, float *f, double *lg)
{
    double sq = sqrt(scale), inv_sqrt_m = 1 / sqrt((double)m);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)m, (int)d, (float)sq, x,
                (int)d, omega, (int)d, 0.0f, f, (int)m);
    for (int64_t i = 0; i < rows; i++) {
        double nn = 0;
        for (int64_t c = 0; c < d; c++) nn += (double)x[i * d + c] * x[i * d + c];
        float *fi = f + i * m, mx = -INFINITY;
        /* raw_r = w_r . x^ - |x^|^2 / 2; the row keeps exp(raw_r - max_r raw_r) / sqrt(m) */
        for (int64_t r = 0; r < m; r++) mx = fi[r] > mx ? fi[r] : mx;
        lg[i] = (double)mx - scale * nn / 2;
        for (int64_t r = 0; r < m; r++) fi[r] = (float)(exp((double)fi[r] - mx) * inv_sqrt_m);
    }
}

/* The state of one pass: S (m, dv1) holding sum_j e^(beta_j - b) phi^_j [v_j, 1]^T over the
 * absorbed keys, b their largest beta (-inf when empty). */
struct wl_state {
    float *s; /* (m, dv1) */
    double b;
    float *tmp; /* (CHUNK, m) scaled key features */
};

/* Adds keys [j0, j1) (features fk (n, m) with log scales bk, values v1 (n, dv1)). */
static void state_absorb(struct wl_state *st, int64_t j0, int64_t j1, const float *fk,
                         const double *bk, const float *v1, int64_t m, int64_t dv1)
{
    if (j1 <= j0) return;
    double nb = st->b;
    for (int64_t j = j0; j < j1; j++) nb = bk[j] > nb ? bk[j] : nb;
    if (nb > st->b && st->b > -INFINITY) {
        float f = (float)exp(st->b - nb); /* the running stabiliser grew: rescale */
        for (int64_t e = 0; e < m * dv1; e++) st->s[e] *= f;
    }
    st->b = nb;
    for (int64_t a = j0; a < j1; a += CHUNK) {
        int64_t cn = AB_MIN(CHUNK, j1 - a);
        for (int64_t t = 0; t < cn; t++) {
            float f = (float)exp(bk[a + t] - nb);
            for (int64_t r = 0; r < m; r++) st->tmp[t * m + r] = fk[(a + t) * m + r] * f;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)dv1, (int)cn, 1.0f,
                    st->tmp, (int)m, v1 + a * dv1, (int)dv1, 1.0f, st->s, (int)dv1);
    }
}

int ab_wl_pass(const float *fq, const double *aq, int64_t q0, int64_t nq, const float *fk,
               const double *bk, const float *v1, int64_t n, int64_t dv1, int64_t m, int64_t w,
               int64_t chunk, const uint8_t *need, float *r, double *lg)
{
    assert(chunk >= 1 && chunk <= CHUNK && w >= 1);
    struct wl_state st = {.b = -INFINITY};
    st.s = ab_alloc(ab_size_mul((size_t)(m * dv1 + 2 * CHUNK * m), sizeof(float)));
    if (!st.s) return ab_fail(AB_E_NOMEM, "window-linear: cannot allocate the state");
    st.tmp = st.s + m * dv1;
    float *g = st.tmp + CHUNK * m; /* (chunk, chunk - 1) band feature products */
    /* keys remote to the first query: j <= q0 - w */
    state_absorb(&st, 0, AB_MIN(n, AB_MAX(0, q0 - w + 1)), fk, bk, v1, m, dv1);
    for (int64_t c0 = q0; c0 < q0 + nq; c0 += chunk) {
        int64_t c1 = AB_MIN(c0 + chunk, q0 + nq), cn = c1 - c0;
        int any = 0;
        for (int64_t t = c0 - q0; t < c1 - q0; t++) any |= need[t];
        /* keys remote to part of the chunk: [jb0, jb1), j <= c1 - 1 - w */
        int64_t jb0 = AB_MIN(n, AB_MAX(0, c0 - w + 1)), jb1 = AB_MIN(n, AB_MAX(0, c1 - w));
        if (any) {
            float *rc = r + (c0 - q0) * dv1; /* (cn, dv1) */
            const float *fc = fq + (c0 - q0) * m;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cn, (int)dv1, (int)m, 1.0f,
                        fc, (int)m, st.s, (int)dv1, 0.0f, rc, (int)dv1);
            int64_t nb = jb1 - jb0;
            if (nb > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)cn, (int)nb, (int)m, 1.0f,
                            fc, (int)m, fk + jb0 * m, (int)m, 0.0f, g, (int)nb);
            double bi = st.b;
            int64_t j = jb0;
            for (int64_t t = 0; t < cn; t++) {
                int64_t i = c0 + t, jend = AB_MIN(jb1, AB_MAX(jb0, i - w + 1)); /* j <= i - w */
                for (; j < jend; j++) bi = bk[j] > bi ? bk[j] : bi;
                /* the state's part, brought to this query's stabiliser b_i >= b */
                float f = bi > -INFINITY && st.b > -INFINITY ? (float)exp(st.b - bi) : 0.0f;
                for (int64_t c = 0; c < dv1; c++) rc[t * dv1 + c] *= f;
                /* the band's part: weights on keys j <= i - w, zero beyond */
                for (int64_t jj = jb0; jj < jb1; jj++) {
                    float *x = g + t * nb + (jj - jb0);
                    *x = jj < jend ? *x * (float)exp(bk[jj] - bi) : 0.0f;
                }
                lg[c0 - q0 + t] = aq[c0 - q0 + t] + bi;
            }
            if (nb > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cn, (int)dv1, (int)nb,
                            1.0f, g, (int)nb, v1 + jb0 * dv1, (int)dv1, 1.0f, rc, (int)dv1);
        }
        /* the chunk's remote keys enter the state: afterwards it holds j <= c1 - w */
        state_absorb(&st, jb0, AB_MIN(n, AB_MAX(0, c1 - w + 1)), fk, bk, v1, m, dv1);
    }
    ab_free(st.s);
    return AB_OK;
}

/* Keys of row i in the window: [lo, hi). */
static void window_span(int64_t i, int64_t n, int64_t w, int full, int64_t *lo, int64_t *hi)
{
    *lo = AB_MAX(0, i - w + 1);
    *hi = full ? AB_MIN(n, i + w) : i + 1;
}

/* Exact part: for each chunk of CHUNK phase rows holding a needed row, e^(s q.k - M_i) [v, 1]
 * summed over the window into r (n_p, dv1), M_i into lg. Adds window cells computed to *cells. */
static int window_exact(const struct ab_problem *p, int64_t w, int full, const float *v1,
                        int64_t dv1, const uint8_t *need, float *r, double *lg, double *cells)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d;
    int64_t span_max = AB_MIN(n, CHUNK + 2 * w);
    float *s = ab_alloc(ab_size_mul((size_t)(CHUNK * span_max), sizeof(float)));
    if (!s) return ab_fail(AB_E_NOMEM, "window-linear: cannot allocate a window block");
    for (int64_t c0 = p->q0; c0 < n; c0 += CHUNK) {
        int64_t c1 = AB_MIN(n, c0 + CHUNK), cn = c1 - c0, a, b, lo, hi;
        int any = 0;
        for (int64_t t = c0 - p->q0; t < c1 - p->q0; t++) any |= need[t];
        if (!any) continue;
        window_span(c0, n, w, full, &a, &hi);
        window_span(c1 - 1, n, w, full, &lo, &b);
        int64_t ns = b - a; /* keys [a, b) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)cn, (int)ns, (int)d,
                    (float)h->scale, h->q + c0 * d, (int)d, h->k + a * d, (int)d, 0.0f, s, (int)ns);
        for (int64_t t = 0; t < cn; t++) {
            window_span(c0 + t, n, w, full, &lo, &hi);
            float *row = s + t * ns, mx = -INFINITY;
            for (int64_t j = lo; j < hi; j++) mx = row[j - a] > mx ? row[j - a] : mx;
            for (int64_t j = a; j < b; j++)
                row[j - a] = j >= lo && j < hi ? expf(row[j - a] - mx) : 0.0f;
            lg[c0 - p->q0 + t] = mx;
            *cells += (double)(hi - lo);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cn, (int)dv1, (int)ns, 1.0f, s,
                    (int)ns, v1 + a * dv1, (int)dv1, 0.0f, r + (c0 - p->q0) * dv1, (int)dv1);
    }
    ab_free(s);
    return AB_OK;
}

static int64_t wl_window(const struct ab_problem *p, double knob)
{
    return AB_MAX(1, AB_MIN((int64_t)knob, p->h->n_k));
}

static int wl_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, w = wl_window(p, knob);
    int full = h->mask == AB_MASK_FULL, decode = p->phase == AB_PHASE_DECODE;
    double cells = 0, np = (double)(n - p->q0), m = M_FEAT, d = (double)h->d;
    double dv1 = (double)h->d_v + 1, C = decode ? 1 : CHUNK, passes = full ? 2 : 1;
    for (int64_t i = p->q0; i < n; i++) {
        int64_t lo, hi;
        window_span(i, n, w, full, &lo, &hi);
        cells += (double)(hi - lo);
    }
    ab_ledger_attend(led, h, cells);
    double nk = decode ? np : (double)n; /* keys through the feature map and into the state */
    led->flops_attend += (np + nk) * 2 * m * d;
    led->flops_attend += passes * np * (2 * m * dv1 + 2 * (C - 1) * (m + dv1));
    led->flops_attend += passes * nk * 2 * m * dv1;
    led->ops_other += (np + nk) * m;
    led->bytes_kv += passes * np * 4 * m * dv1;
    return AB_OK;
}

/* One key per position: vis(i) = i + 1 and window offsets are index offsets. */
static int wl_standard(const struct ab_head *h)
{
    if (h->n_q != h->n_k) return 0;
    for (int64_t i = 0; i < h->n_q; i++)
        if (h->q_pos[i] != h->k_pos[i] || (i > 0 && h->k_pos[i] <= h->k_pos[i - 1])) return 0;
    return 1;
}

/* Rows [0, rows) of x (rows, cols) into y in reverse order. */
static void reverse_rows(const void *x, int64_t rows, size_t row_bytes, void *y)
{
    for (int64_t i = 0; i < rows; i++)
        memcpy((char *)y + (size_t)i * row_bytes,
               (const char *)x + (size_t)(rows - 1 - i) * row_bytes, row_bytes);
}

static int wl_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    (void)keep;
    const struct ab_head *h = p->h;
    assert(h->rope_theta == 0);
    if (!wl_standard(h))
        return ab_fail(AB_E_USAGE, "window-linear: needs one key per query position");
    wl_cost(p, knob, led);
    if (!o) return AB_OK;
    int64_t n = h->n_k, d = h->d, dv = h->d_v, dv1 = dv + 1, m = M_FEAT, np = n - p->q0;
    int64_t w = wl_window(p, knob), chunk = p->phase == AB_PHASE_DECODE ? 1 : CHUNK;
    int full = h->mask == AB_MASK_FULL;
    /* per phase row: (m) features, (dv1) sums of three parts, their log scales; per key:
     * features, values with a ones column; the reversed copies for the full mask's second pass */
    size_t fl = (size_t)(m * d + n * dv1 + np * m + n * m + 3 * np * dv1);
    if (full) fl += (size_t)(np * m + n * m + n * dv1);
    size_t db = (size_t)(np + n + 3 * np);
    if (full) db += (size_t)(np + n);
    float *omega = ab_alloc(ab_size_mul(fl, sizeof(float)));
    double *aq = ab_alloc(ab_size_mul(db, sizeof(double)));
    uint8_t *need = ab_alloc((size_t)(2 * np));
    if (!omega || !aq || !need) {
        ab_free(omega), ab_free(aq), ab_free(need);
        return ab_fail(AB_E_NOMEM, "window-linear: cannot allocate features for n = %lld",
                       (long long)n);
    }
    float *v1 = omega + m * d, *fq = v1 + n * dv1, *fk = fq + np * m; /* (n, dv1) (np, m) (n, m) */
    float *rw = fk + n * m, *rf = rw + np * dv1, *rb = rf + np * dv1; /* (np, dv1) each */
    double *bk = aq + np, *lw = bk + n, *lf = lw + np, *lb = lf + np;
    for (int64_t j = 0; j < n; j++) {
        memcpy(v1 + j * dv1, h->v + j * dv, (size_t)dv * sizeof(float));
        v1[j * dv1 + dv] = 1.0f;
    }
    for (int64_t r = 0; r < p->n_rows; r++) need[p->rows[r] - p->q0] = 1;
    double cells = 0;
    int rc = ab_wl_omega(p->seed,
                         ab_stream(AB_WL_STREAM, (uint64_t)p->layer_index, (uint64_t)p->self, 0), m,
                         d, omega);
    if (!rc) {
        ab_wl_features(h->q + p->q0 * d, np, d, omega, m, h->scale, fq, aq);
        ab_wl_features(h->k, n, d, omega, m, h->scale, fk, bk);
        rc = window_exact(p, w, full, v1, dv1, need, rw, lw, &cells);
    }
    if (!rc) rc = ab_wl_pass(fq, aq, p->q0, np, fk, bk, v1, n, dv1, m, w, chunk, need, rf, lf);
    if (!rc && full) {
        /* keys right of the window: the same pass over the reversed sequence */
        float *fq2 = rb + np * dv1, *fk2 = fq2 + np * m, *v2 = fk2 + n * m;
        double *aq2 = lb + np, *bk2 = aq2 + np;
        uint8_t *need2 = need + np;
        reverse_rows(fq, np, (size_t)m * sizeof(float), fq2);
        reverse_rows(fk, n, (size_t)m * sizeof(float), fk2);
        reverse_rows(v1, n, (size_t)dv1 * sizeof(float), v2);
        reverse_rows(aq, np, sizeof(double), aq2);
        reverse_rows(bk, n, sizeof(double), bk2);
        reverse_rows(need, np, 1, need2);
        /* rb, lb: in the reversed order, phase row t at np - 1 - t */
        rc = ab_wl_pass(fq2, aq2, 0, np, fk2, bk2, v2, n, dv1, m, w, chunk, need2, rb, lb);
    }
    for (int64_t r = 0; !rc && r < p->n_rows; r++) {
        int64_t t = p->rows[r] - p->q0, tb = np - 1 - t;
        /* the parts' sums [num, den] at scales e^lw, e^lf (and e^lb), merged at their maximum */
        double L = fmax(lw[t], lf[t]);
        if (full) L = fmax(L, lb[tb]);
        double ew = exp(lw[t] - L), ef = exp(lf[t] - L), eb = full ? exp(lb[tb] - L) : 0;
        const float *xw = rw + t * dv1, *xf = rf + t * dv1, *xb = rb + tb * dv1;
        double den = ew * xw[dv] + ef * xf[dv] + (full ? eb * xb[dv] : 0);
        for (int64_t c = 0; c < dv; c++) {
            double num = ew * xw[c] + ef * xf[c] + (full ? eb * xb[c] : 0);
            o[r * dv + c] = (float)(num / den);
        }
    }
    ab_attend_counter_add(cells);
    ab_free(omega), ab_free(aq), ab_free(need);
    return rc;
}

const struct ab_method ab_method_window_linear = {
    .name = "window-linear",
    .family = AB_FAMILY_LINEAR,
    .summary = "exact softmax in a window of w plus FAVOR+ (m = 64) for the remote keys, one "
               "normaliser",
    .citation = "LoLCATs, Zhang et al. 2024, arXiv 2410.10254; FAVOR+, Choromanski et al. 2021, "
                "arXiv 2009.14794",
    .cost_words = "4d per window cell + features 2md per query and key + state 4m(d_v+1) "
                  "+ partial chunk 2(C-1)(m+d_v+1) per query (C = 64; decode C = 1)",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL | AB_MASKS_FULL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "tokens"},
    .flags = AB_METHOD_ANALYTIC,
    .cost = wl_cost,
    .run = wl_run,
};
