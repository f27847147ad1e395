/* fast.c - dense attention in single precision, blocked with online softmax
 * (FlashAttention's recurrence: Dao et al., arXiv 2205.14135, Algorithm 1), block products
 * through OpenBLAS. Nothing of size n_q x n_k is allocated: per query block of BQ rows the kernel
 * holds S (BQ, BK), the running max m, sum l and output accumulator.
 *
 * For query block Q_b and each key chunk K_c, V_c up to the last key the block can see:
 *     S      = scale * Q_b K_c^T                       (sgemm)
 *     m'     = max(m, rowmax S)   (over visible keys only)
 *     P      = exp(S - m'),  P = 0 on masked keys
 *     l      = l * exp(m - m') + rowsum P
 *     O_acc  = O_acc * exp(m - m') + P V_c             (sgemm)
 * and finally O = O_acc / l, lse = m + ln l. A decode call (at most DECODE_ROWS query rows)
 * instead streams the cache once per row through two matrix-vector products. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/expf.h"
#include "attn/vec.h"
#include "core/ab.h"

#ifndef AB_FAST_BQ
#define AB_FAST_BQ 128 /* rows per query block (tuned with bench dense on Haswell) */
#define AB_FAST_BK 512
#endif
enum { BQ = AB_FAST_BQ, BK = AB_FAST_BK };

/* One row of the online softmax over a chunk: s (BK) holds scaled logits, the first n_vis of
 * them visible. Updates *m and *l, turns s into the chunk's unnormalised probabilities (zero past
 * n_vis, and for the whole chunk when nothing is visible) and returns exp(m_old - m_new), the
 * factor by which the row's accumulator must be rescaled. */
static float softmax_chunk(const struct ab_vec *V, float *s, float *p, int64_t n_vis, int64_t bk,
                           float *m, float *l)
{
    float mx = V->max(s, n_vis, *m);
    if (mx == -INFINITY) { /* nothing visible yet */
        memset(s, 0, (size_t)bk * sizeof(float));
        memset(p, 0, (size_t)bk * sizeof(float));
        return 1.0f;
    }
    float corr = *m == -INFINITY ? 0.0f : ab_expf_nonpos(*m - mx);
    float sum = V->exp_move(s, p, n_vis, mx);
    if (n_vis < bk) memset(s + n_vis, 0, (size_t)(bk - n_vis) * sizeof(float));
    if (n_vis < bk) memset(p + n_vis, 0, (size_t)(bk - n_vis) * sizeof(float));
    *l = *l * corr + sum;
    *m = mx;
    return corr;
}

/* Query block [i0, i0+bq): all of the block's work, using the caller's workspace. */
static void fast_block(const struct ab_head *h, const float *q, const float *k, int64_t i0,
                       int64_t bq, float *s /* (BQ, BK) */, float *acc /* (BQ, d_v) */,
                       float *m /* (BQ) */, float *l /* (BQ) */, int64_t *vis /* (BQ) */,
                       float *o, float *lse)
{
    const struct ab_vec *V = ab_vec();
    int64_t d = h->d, dv = h->d_v, kend = 0;
    for (int64_t r = 0; r < bq; r++) {
        vis[r] = ab_head_visible(h, i0 + r);
        kend = vis[r] > kend ? vis[r] : kend;
        m[r] = -INFINITY;
        l[r] = 0;
    }
    memset(acc, 0, (size_t)(bq * dv) * sizeof(float));
    for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        int64_t bk = AB_MIN(BK, kend - j0);
        /* S = scale * Q_b K_c^T: (bq, d) x (d, bk) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bq, (int)bk, (int)d,
                    (float)h->scale, q + i0 * d, (int)d, k + j0 * d, (int)d, 1.0f, s, BK);
        for (int64_t r = 0; r < bq; r++) {
            int64_t n_vis = AB_MAX(0, AB_MIN(bk, vis[r] - j0));
            float corr =
                softmax_chunk(V, s + r * BK, s + BQ * BK + r * BK, n_vis, bk, &m[r], &l[r]);
            if (corr != 1.0f) V->scale(acc + r * dv, dv, corr);
        }
        /* O_acc += P V_c: (bq, bk) x (bk, dv) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)bq, (int)dv, (int)bk, 1.0f,
                    s + BQ * BK, BK, h->v + j0 * dv, (int)dv, 1.0f, acc, (int)dv);
    }
    for (int64_t r = 0; r < bq; r++) {
        float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        for (int64_t c = 0; c < dv; c++) o[(i0 + r) * dv + c] = acc[r * dv + c] * inv;
        if (lse) lse[i0 + r] = l[r] > 0 ? m[r] + logf(l[r]) : -INFINITY;
    }
}

/* A copy of x (n, d) rotated by RoPE, or NULL when the head needs none. */
static float *rotated_copy(const float *x, int64_t n, int64_t d, const int32_t *pos, double theta,
                           int *fail)
{
    if (theta <= 0) return NULL;
    float *y = ab_alloc(ab_size_mul((size_t)(n * d), sizeof(float)));
    if (!y) {
        *fail = 1;
        return NULL;
    }
    memcpy(y, x, (size_t)(n * d) * sizeof(float));
    ab_rope_apply(y, n, d, pos, theta);
    return y;
}

/* Decode: rows with few queries (n_q <= DECODE_ROWS) stream the cache once per row, as two
 * matrix-vector products (memory-bound, at the speed the cache can be read) and one softmax
 * over the row's scores, instead of BK-wide blocks of one-row GEMMs. */
enum { DECODE_ROWS = 4 };

/* Row i: s (n_k) workspace. */
static void decode_row(const struct ab_head *h, const float *q, const float *k, int64_t i, float *s,
                       float *o, float *lse)
{
    const struct ab_vec *V = ab_vec();
    int64_t nv = ab_head_visible(h, i), d = h->d, dv = h->d_v;
    float *orow = o + i * dv;
    if (nv == 0) {
        memset(orow, 0, sizeof(float) * (size_t)dv);
        if (lse) lse[i] = -INFINITY;
        return;
    }
    /* s = scale * K[0..nv) q_i: (nv, d) x (d) */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nv, (int)d, (float)h->scale, k, (int)d, q + i * d,
                1, 0.0f, s, 1);
    float mx = V->max(s, nv, -INFINITY);
    float sum = V->exp_sum(s, s, nv, mx);
    /* o_i = V[0..nv)^T s / sum: (nv, dv)^T x (nv) */
    cblas_sgemv(CblasRowMajor, CblasTrans, (int)nv, (int)dv, 1.0f / sum, h->v, (int)dv, s, 1,
                0.0f, orow, 1);
    if (lse) lse[i] = mx + logf(sum);
}

int ab_attn_fast(const struct ab_head *h, float *o, float *lse)
{
    int fail = 0;
    float *qr = rotated_copy(h->q, h->n_q, h->d, h->q_pos, h->rope_theta, &fail);
    float *kr = rotated_copy(h->k, h->n_k, h->d, h->k_pos, h->rope_theta, &fail);
    const float *q = qr ? qr : h->q, *k = kr ? kr : h->k;
    int64_t n_blocks = (h->n_q + BQ - 1) / BQ;
    int outer = omp_in_parallel();
    if (h->n_q <= DECODE_ROWS && !fail) { /* decode: stream the cache */
        float *s = ab_alloc(ab_size_mul((size_t)h->n_k, sizeof(float)));
        if (!s) fail = 1;
        if (!outer) ab_blas_serial_begin();
        for (int64_t i = 0; s && i < h->n_q; i++) decode_row(h, q, k, i, s, o, lse);
        if (!outer) ab_blas_serial_end();
        ab_free(s);
        ab_free(qr);
        ab_free(kr);
        return fail ? ab_fail(AB_E_NOMEM, "cannot allocate attention workspace") : AB_OK;
    }
    if (!outer) ab_blas_serial_begin();
#pragma omp parallel if (!outer && n_blocks > 1 && !fail)
    {
        float *s = ab_alloc(sizeof(float) * 2 * BQ * BK);
        if (s) memset(s, 0, sizeof(float) * BQ * BK);
        float *acc = ab_alloc(ab_size_mul((size_t)(BQ * h->d_v), sizeof(float)));
        float *ml = ab_alloc(sizeof(float) * 2 * BQ);
        int64_t *vis = ab_alloc(sizeof(int64_t) * BQ);
        if (!s || !acc || !ml || !vis) {
#pragma omp atomic write
            fail = 1;
        }
        /* causal blocks grow with i: hand out the heaviest (last) blocks first */
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = n_blocks - 1; b >= 0; b--) {
            if (fail) continue;
            int64_t i0 = b * BQ;
            fast_block(h, q, k, i0, AB_MIN(BQ, h->n_q - i0), s, acc, ml, ml + BQ, vis, o, lse);
        }
        ab_free(s);
        ab_free(acc);
        ab_free(ml);
        ab_free(vis);
    }
    if (!outer) ab_blas_serial_end();
    ab_free(qr);
    ab_free(kr);
    return fail ? ab_fail(AB_E_NOMEM, "cannot allocate attention workspace") : AB_OK;
}

double ab_attn_dense_flops(const struct ab_head *h)
{
    return (double)(2 * h->d + 2 * h->d_v) * (double)ab_head_allowed_cells(h);
}
