/* reference.c - exact attention in double precision: the yardstick every method and fast path is
 * measured against (architecture.md, "Numerics").
 *
 * Per query row: scores s_j = scale * q_i.k_j over the visible keys (a prefix, as positions are
 * sorted), m = max_j s_j, p_j = exp(s_j - m) / Z, lse_i = m + ln Z, o_i = sum_j p_j v_j. All
 * arithmetic in double from float inputs: the scores of 32 rows at a time through one dgemm
 * against a double copy of the keys (rotated by RoPE when the head asks for it); memory
 * O(n_k d) for that copy plus O(32 n_k) per thread. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"

/* q (double, d) . k (float, d), four partial sums so the loop vectorises without reassociating
 * one chain (the AVX2 clone keeps the four sums in the four lanes of one register: the same
 * additions in the same order, so both clones give the same bits). */
AB_CLONES("avx2", "default") double ab_dot_df(const double *q, const float *k, int64_t d)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t c = 0;
    for (; c + 4 <= d; c += 4) {
        s0 += q[c] * k[c];
        s1 += q[c + 1] * k[c + 1];
        s2 += q[c + 2] * k[c + 2];
        s3 += q[c + 3] * k[c + 3];
    }
    for (; c < d; c++) s0 += q[c] * k[c];
    return (s0 + s1) + (s2 + s3);
}

AB_CLONES("avx2", "default") void ab_axpy_df(double *y, double a, const float *x, int64_t n)
{
    for (int64_t c = 0; c < n; c++) y[c] += a * x[c];
}

/* The keys in double, (n_k, d): rotated by RoPE when the head asks for it, else converted. */
static int double_keys(const struct ab_head *h, double **out)
{
    double *kd = malloc(ab_size_mul((size_t)(h->n_k * h->d), sizeof(double)));
    *out = kd;
    if (!kd)
        return ab_fail(AB_E_NOMEM, "cannot allocate the keys in double (n_k %lld)",
                       (long long)h->n_k);
    for (int64_t j = 0; j < h->n_k; j++) {
        for (int64_t c = 0; c < h->d; c++) kd[j * h->d + c] = h->k[j * h->d + c];
        if (h->rope_theta > 0) ab_rope_apply_f64(kd + j * h->d, h->d, h->k_pos[j], h->rope_theta);
    }
    return AB_OK;
}

enum { RB = 32 }; /* query rows per block: one product (RB, d) x (d, n_vis) per block */

/* Rows rows[r0 .. r0 + nb) (NULL rows: r0 ..): their scores scale * q_i.k_j over the block's
 * visible keys into s (nb, ld) through one dgemm, qd (RB, d) scratch. Returns the block's
 * largest visible count. */
static int64_t ref_scores(const struct ab_head *h, const double *kd, const int64_t *rows,
                          int64_t r0, int64_t nb, double *qd, double *s, int64_t ld)
{
    int64_t d = h->d, kmax = 0;
    for (int64_t b = 0; b < nb; b++) {
        int64_t i = rows ? rows[r0 + b] : r0 + b;
        for (int64_t c = 0; c < d; c++) qd[b * d + c] = h->q[i * d + c];
        if (h->rope_theta > 0) ab_rope_apply_f64(qd + b * d, d, h->q_pos[i], h->rope_theta);
        kmax = AB_MAX(kmax, ab_head_visible(h, i));
    }
    /* s = scale * Q_b K^T: (nb, d) x (d, kmax) */
    if (kmax > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)kmax, (int)d, h->scale,
                    qd, (int)d, kd, (int)d, 0.0, s, (int)ld);
    return kmax;
}

/* Row scores p[0..n_vis) -> the row's distribution in place; returns lse (-inf: no key). */
static double ref_softmax(double *p, int64_t n_vis)
{
    double m = -INFINITY, z = 0;
    for (int64_t j = 0; j < n_vis; j++) m = p[j] > m ? p[j] : m;
    for (int64_t j = 0; j < n_vis; j++) z += p[j] = exp(p[j] - m);
    for (int64_t j = 0; j < n_vis; j++) p[j] /= z;
    return n_vis ? m + log(z) : -INFINITY;
}

int ab_attn_ref(const struct ab_head *h, const int64_t *rows, int64_t n_rows, double *o,
                double *lse)
{
    return ab_attn_ref_dist(h, rows, n_rows, o, lse, NULL);
}

int ab_attn_ref_dist(const struct ab_head *h, const int64_t *rows, int64_t n_rows, double *o,
                     double *lse, float *dist)
{
    if (!rows) n_rows = h->n_q;
    double *kd;
    int rc = double_keys(h, &kd);
    if (rc) return rc;
    int failed = 0, outer = omp_in_parallel();
    int64_t n_blocks = (n_rows + RB - 1) / RB, ld = AB_MAX(h->n_k, 1);
    if (!outer) ab_blas_serial_begin();
#pragma omp parallel if (!outer && n_blocks > 1)
    {
        double *s = malloc(ab_size_mul((size_t)(RB * ld), sizeof(double)));
        double *qd = malloc(ab_size_mul((size_t)(RB * h->d), sizeof(double)));
        if (!s || !qd) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t bl = 0; bl < n_blocks; bl++) {
            if (!s || !qd) continue;
            int64_t r0 = bl * RB, nb = AB_MIN(RB, n_rows - r0);
            ref_scores(h, kd, rows, r0, nb, qd, s, ld);
            for (int64_t b = 0; b < nb; b++) {
                int64_t r = r0 + b, i = rows ? rows[r] : r, n_vis = ab_head_visible(h, i);
                double *p = s + b * ld, l = ref_softmax(p, n_vis);
                if (lse) lse[r] = l;
                if (dist) { /* (n_k) row of the map */
                    float *a = dist + r * h->n_k;
                    for (int64_t j = 0; j < n_vis; j++) a[j] = (float)p[j];
                    memset(a + n_vis, 0, sizeof(float) * (size_t)(h->n_k - n_vis));
                }
                if (!o) continue;
                double *orow = o + r * h->d_v; /* (d_v) */
                memset(orow, 0, (size_t)h->d_v * sizeof(double));
                for (int64_t j = 0; j < n_vis; j++)
                    ab_axpy_df(orow, p[j], h->v + j * h->d_v, h->d_v);
            }
        }
        free(s);
        free(qd);
    }
    if (!outer) ab_blas_serial_end();
    free(kd);
    return failed ? ab_fail(AB_E_NOMEM, "cannot allocate reference row buffers") : AB_OK;
}

int ab_attn_ref_visit(const struct ab_head *h, const int64_t *rows, int64_t n_rows, ab_row_fn fn,
                      void *user)
{
    if (!rows) n_rows = h->n_q;
    double *kd;
    int rc = double_keys(h, &kd);
    if (rc) return rc;
    int64_t ld = AB_MAX(h->n_k, 1);
    double *s = malloc(ab_size_mul((size_t)(RB * ld), sizeof(double)));
    double *qd = malloc(ab_size_mul((size_t)(RB * h->d), sizeof(double)));
    if (!s || !qd) rc = ab_fail(AB_E_NOMEM, "cannot allocate reference row buffers");
    for (int64_t r0 = 0; r0 < n_rows && !rc; r0 += RB) {
        int64_t nb = AB_MIN(RB, n_rows - r0);
        ref_scores(h, kd, rows, r0, nb, qd, s, ld);
        for (int64_t b = 0; b < nb && !rc; b++) {
            int64_t i = rows ? rows[r0 + b] : r0 + b, n_vis = ab_head_visible(h, i);
            double l = ref_softmax(s + b * ld, n_vis);
            rc = fn(i, s + b * ld, n_vis, l, user);
        }
    }
    free(s);
    free(qd);
    free(kd);
    return rc;
}
