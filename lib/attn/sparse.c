/* sparse.c - attention over a kept set (issue 14), two kernels whose work follows the kept set:
 * - token-sparse: each query row reads only the keys its selection kept (a bitset row, as
 *   lib/methods' struct ab_keep holds it), gathered by index: their scores, one softmax, the
 *   weighted sum of their values: work proportional to the kept cells, at the speed of gathered
 *   dot products;
 * - block-sparse (prefill): 64-row query blocks over 64-key tiles, a tile skipped when no row
 *   of the block keeps a key of it, runs of up to 8 consecutive kept tiles through one sgemm and
 *   the online softmax as in dense (fast.c), the cells a row does not keep masked: work
 *   proportional to the kept tiles, at GEMM speed.
 * Both equal the accuracy path's output (ab_attend_kept) within float rounding. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/expf.h"
#include "attn/vec.h"
#include "core/ab.h"

/* One row: the kept visible keys of bitset row `bits` (words 64-bit words), in two passes over
 * the row's workspace: the scores of the kept keys (gathered dot products), their softmax, then
 * o = sum_c p_c v_{j_c} / sum_c p_c. idx and s hold up to n_k entries. */
static void sparse_row(const struct ab_vec *V, const struct ab_head *h, int64_t i,
                       const uint64_t *bits, int64_t words, int32_t *idx, float *s, float *o)
{
    int64_t nv = ab_head_visible(h, i), d = h->d, dv = h->d_v, c = 0;
    const float *qi = h->q + i * d;
    float scale = (float)h->scale;
    memset(o, 0, sizeof(float) * (size_t)dv);
    for (int64_t w = 0; w < words && w * 64 < nv; w++)
        for (uint64_t x = bits[w]; x; x &= x - 1) {
            int64_t j = w * 64 + __builtin_ctzll(x);
            if (j >= nv) break;
            idx[c] = (int32_t)j;
            s[c++] = scale * V->dot(qi, h->k + j * d, d);
        }
    if (c == 0) return;
    float mx = V->max(s, c, -INFINITY), sum = V->exp_sum(s, s, c, mx);
    for (int64_t t = 0; t < c; t++) V->axpby(o, 1.0f, s[t], h->v + (int64_t)idx[t] * dv, dv);
    V->scale(o, dv, 1.0f / sum);
}

int ab_attn_sparse(const struct ab_head *h, const int64_t *rows, int64_t n_rows,
                   const uint64_t *bits, int64_t words, float *o)
{
    const struct ab_vec *V = ab_vec();
    int fail = 0;
#pragma omp parallel if (n_rows > 16 && !omp_in_parallel())
    {
        int32_t *idx = ab_alloc(ab_size_mul((size_t)h->n_k, sizeof(int32_t)));
        float *s = ab_alloc(ab_size_mul((size_t)h->n_k, sizeof(float)));
        if (!idx || !s) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = 0; r < n_rows; r++)
            if (!fail) sparse_row(V, h, rows[r], bits + r * words, words, idx, s, o + r * h->d_v);
        ab_free(idx), ab_free(s);
    }
    return fail ? ab_fail(AB_E_NOMEM, "cannot allocate the token-sparse workspace") : AB_OK;
}

/* ------------------------------------------------------------------ block-sparse */

enum {
    SB = 64,
    SQ = 64,
    RUN = 8
}; /* 64-key tiles (one bitset word), 64-row query blocks, runs
       of up to 8 consecutive kept tiles (512 keys) per product */

/* Row r's logits over a run of tiles [t0, t0 + nt) starting at key j0: the cells it does not keep,
 * or cannot see (key >= nv), set to -inf. A tile kept whole costs one word test. */
static void mask_run(float *sr, const uint64_t *row, int64_t nt, int64_t bk, int64_t nv)
{
    for (int64_t t = 0; t < nt; t++) {
        float *st = sr + t * SB;
        int64_t lim = AB_MIN(SB, bk - t * SB), vis = AB_MAX(0, AB_MIN(lim, nv - t * SB));
        uint64_t w = row[t];
        if (vis < SB) w &= vis == 0 ? 0 : ~0ULL >> (SB - vis);
        if (lim < SB) w |= ~0ULL << lim; /* past the run: never read */
        for (uint64_t x = ~w; x; x &= x - 1) st[__builtin_ctzll(x)] = -INFINITY;
    }
}

/* Query block [i0, i0 + bq) (rows of the head in order): the key tiles any of its rows keeps are
 * grouped in runs of consecutive tiles; per run, S = scale Q_b K_run^T through sgemm, the kept
 * cells of each row in the online softmax (the others -inf), then O_acc += P V_run. S stays
 * zero between runs (exp_move clears it), so the first product accumulates into it (beta 1)
 * instead of clearing it. */
static void block_rows(const struct ab_vec *V, const struct ab_head *h, int64_t i0, int64_t bq,
                       const uint64_t *bits, int64_t words, float *s /* (SQ, RUN SB), zero */,
                       float *p /* (SQ, RUN SB) */, float *acc /* (SQ, d_v) */, float *m, float *l,
                       float *o)
{
    int64_t d = h->d, dv = h->d_v, kend = 0, ld = RUN * SB;
    for (int64_t r = 0; r < bq; r++) {
        m[r] = -INFINITY, l[r] = 0;
        int64_t v = ab_head_visible(h, i0 + r);
        kend = v > kend ? v : kend;
    }
    memset(acc, 0, sizeof(float) * (size_t)(bq * dv));
    int64_t n_tiles = (kend + SB - 1) / SB;
    for (int64_t t0 = 0; t0 < n_tiles;) {
        /* the next run of kept tiles */
        int64_t t1 = t0;
        uint64_t any = 0;
        while (t0 < n_tiles) {
            any = 0;
            for (int64_t r = 0; r < bq && !any; r++) any |= bits[(i0 + r) * words + t0];
            if (any) break;
            t0++;
        }
        if (t0 >= n_tiles) break;
        for (t1 = t0 + 1; t1 < n_tiles && t1 - t0 < RUN; t1++) {
            any = 0;
            for (int64_t r = 0; r < bq && !any; r++) any |= bits[(i0 + r) * words + t1];
            if (!any) break;
        }
        int64_t j0 = t0 * SB, bk = AB_MIN(t1 * SB, kend) - j0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bq, (int)bk, (int)d,
                    (float)h->scale, h->q + i0 * d, (int)d, h->k + j0 * d, (int)d, 1.0f, s,
                    (int)ld);
        for (int64_t r = 0; r < bq; r++) {
            int64_t nv = ab_head_visible(h, i0 + r) - j0;
            float *sr = s + r * ld, *pr = p + r * ld;
            mask_run(sr, bits + (i0 + r) * words + t0, t1 - t0, bk, nv);
            float mx = V->max(sr, bk, m[r]);
            if (mx == -INFINITY) { /* nothing kept in this run or before */
                memset(sr, 0, sizeof(float) * (size_t)bk);
                memset(pr, 0, sizeof(float) * (size_t)bk);
                continue;
            }
            float corr = m[r] == -INFINITY ? 0.0f : ab_expf_nonpos(m[r] - mx);
            l[r] = l[r] * corr + V->exp_move(sr, pr, bk, mx);
            m[r] = mx;
            if (corr != 1.0f) V->scale(acc + r * dv, dv, corr);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)bq, (int)dv, (int)bk, 1.0f, p,
                    (int)ld, h->v + j0 * dv, (int)dv, 1.0f, acc, (int)dv);
        t0 = t1;
    }
    for (int64_t r = 0; r < bq; r++) {
        float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        for (int64_t c = 0; c < dv; c++) o[(i0 + r) * dv + c] = acc[r * dv + c] * inv;
    }
}

int ab_attn_block_sparse(const struct ab_head *h, const uint64_t *bits, int64_t words, float *o)
{
    const struct ab_vec *V = ab_vec();
    int64_t n_blocks = (h->n_q + SQ - 1) / SQ;
    int fail = 0, outer = omp_in_parallel();
    if (!outer) ab_blas_serial_begin();
#pragma omp parallel if (!outer && n_blocks > 1)
    {
        float *s = ab_alloc(sizeof(float) * 2 * SQ * RUN * SB); /* S (kept zero), then P */
        if (s) memset(s, 0, sizeof(float) * SQ * RUN * SB);
        float *acc = ab_alloc(ab_size_mul((size_t)(SQ * h->d_v), sizeof(float)));
        float *ml = ab_alloc(sizeof(float) * 2 * SQ);
        if (!s || !acc || !ml) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = n_blocks - 1; b >= 0; b--) {
            if (fail) continue;
            block_rows(V, h, b * SQ, AB_MIN(SQ, h->n_q - b * SQ), bits, words, s, s + SQ * RUN * SB,
                       acc, ml, ml + SQ, o);
        }
        ab_free(s), ab_free(acc), ab_free(ml);
    }
    if (!outer) ab_blas_serial_end();
    return fail ? ab_fail(AB_E_NOMEM, "cannot allocate the block-sparse workspace") : AB_OK;
}
