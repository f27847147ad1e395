/* sparse.c - attention over a kept set (issue 14), two kernels whose work follows the kept set:
 * - token-sparse: each query row reads only the keys its selection kept (a bitset row, as
 *   lib/methods' struct ab_keep holds it), gathered by index, with a one-pass online softmax:
 *   work proportional to the kept cells, at the speed of gathered dot products;
 * - block-sparse (prefill): 128-row query blocks over 64-key tiles, a tile skipped when no row
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
#include "core/ab.h"

/* q . k over d floats, eight partial sums (a fixed order the compiler keeps in vector lanes) */
__attribute__((target_clones("avx2", "default")))
static float dot(const float *a, const float *b, int64_t d)
{
    float part[8] = {0}, s = 0;
    int64_t d8 = d / 8 * 8;
    for (int64_t c = 0; c < d8; c += 8)
        for (int t = 0; t < 8; t++) part[t] += a[c + t] * b[c + t];
    for (int64_t c = d8; c < d; c++) part[0] += a[c] * b[c];
    for (int t = 0; t < 8; t++) s += part[t];
    return s;
}

/* acc = acc * f + w v over dv floats */
__attribute__((target_clones("avx2", "default")))
static void axpby(float *acc, float f, float w, const float *v, int64_t dv)
{
    for (int64_t c = 0; c < dv; c++) acc[c] = acc[c] * f + w * v[c];
}

/* One row: the kept visible keys of bitset row `bits` (words 64-bit words). */
static void sparse_row(const struct ab_head *h, int64_t i, const uint64_t *bits, int64_t words,
                       float *o)
{
    int64_t nv = ab_head_visible(h, i), d = h->d, dv = h->d_v;
    const float *qi = h->q + i * d;
    float m = -INFINITY, l = 0, scale = (float)h->scale;
    memset(o, 0, sizeof(float) * (size_t)dv);
    for (int64_t w = 0; w < words && w * 64 < nv; w++)
        for (uint64_t x = bits[w]; x; x &= x - 1) {
            int64_t j = w * 64 + __builtin_ctzll(x);
            if (j >= nv) break;
            float s = scale * dot(qi, h->k + j * d, d);
            if (s > m) { /* a new maximum rescales what was accumulated */
                float f = m == -INFINITY ? 0.0f : ab_expf_nonpos(m - s);
                l = l * f + 1.0f;
                axpby(o, f, 1.0f, h->v + j * dv, dv);
                m = s;
            } else {
                float p = ab_expf_nonpos(s - m);
                l += p;
                axpby(o, 1.0f, p, h->v + j * dv, dv);
            }
        }
    float inv = l > 0 ? 1.0f / l : 0.0f;
    for (int64_t c = 0; c < dv; c++) o[c] *= inv;
}

void ab_attn_sparse(const struct ab_head *h, const int64_t *rows, int64_t n_rows,
                    const uint64_t *bits, int64_t words, float *o)
{
#pragma omp parallel for schedule(dynamic, 16) if (n_rows > 16)
    for (int64_t r = 0; r < n_rows; r++)
        sparse_row(h, rows[r], bits + r * words, words, o + r * h->d_v);
}

/* ------------------------------------------------------------------ block-sparse */

enum { SB = 64, SQ = 64, RUN = 8 }; /* 64-key tiles, 64-row query blocks, runs of up to 8
                                        consecutive kept tiles (512 keys) per product */

/* Query block [i0, i0 + bq) (rows of the head in order): the key tiles any of its rows keeps are
 * grouped in runs of consecutive tiles; per run, S = scale Q_b K_run^T through sgemm, the kept
 * cells of each row in the online softmax (the others -inf), then O_acc += P V_run. */
static void block_rows(const struct ab_head *h, int64_t i0, int64_t bq, const uint64_t *bits,
                       int64_t words, float *s /* (SQ, RUN SB) */, float *acc /* (SQ, d_v) */,
                       float *m, float *l, float *o)
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
                    (float)h->scale, h->q + i0 * d, (int)d, h->k + j0 * d, (int)d, 0.0f, s, (int)ld);
        for (int64_t r = 0; r < bq; r++) {
            const uint64_t *row = bits + (i0 + r) * words + t0;
            int64_t nv = AB_MAX(0, AB_MIN(bk, ab_head_visible(h, i0 + r) - j0));
            float *sr = s + r * ld, mx = m[r];
            for (int64_t j = 0; j < bk; j++) {
                int keep = j < nv && (row[j >> 6] >> (j & 63) & 1);
                sr[j] = keep ? sr[j] : -INFINITY;
                mx = sr[j] > mx ? sr[j] : mx;
            }
            if (mx == -INFINITY) { /* nothing kept in this run or before */
                memset(sr, 0, sizeof(float) * (size_t)bk);
                continue;
            }
            float corr = m[r] == -INFINITY ? 0.0f : ab_expf_nonpos(m[r] - mx), sum = 0;
            for (int64_t j = 0; j < bk; j++) {
                sr[j] = sr[j] == -INFINITY ? 0.0f : ab_expf_nonpos(sr[j] - mx);
                sum += sr[j];
            }
            l[r] = l[r] * corr + sum;
            m[r] = mx;
            if (corr != 1.0f)
                for (int64_t c = 0; c < dv; c++) acc[r * dv + c] *= corr;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)bq, (int)dv, (int)bk, 1.0f, s,
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
    int64_t n_blocks = (h->n_q + SQ - 1) / SQ;
    int fail = 0, outer = omp_in_parallel();
    if (!outer) ab_blas_serial_begin();
#pragma omp parallel if (!outer && n_blocks > 1)
    {
        float *s = ab_alloc(sizeof(float) * SQ * RUN * SB);
        float *acc = ab_alloc(ab_size_mul((size_t)(SQ * h->d_v), sizeof(float)));
        float *ml = ab_alloc(sizeof(float) * 2 * SQ);
        if (!s || !acc || !ml) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = n_blocks - 1; b >= 0; b--) {
            if (fail) continue;
            block_rows(h, b * SQ, AB_MIN(SQ, h->n_q - b * SQ), bits, words, s, acc, ml, ml + SQ, o);
        }
        ab_free(s), ab_free(acc), ab_free(ml);
    }
    if (!outer) ab_blas_serial_end();
    return fail ? ab_fail(AB_E_NOMEM, "cannot allocate the block-sparse workspace") : AB_OK;
}
