/* reference.c - exact attention in double precision: the yardstick every method and fast path is
 * measured against (architecture.md, "Numerics").
 *
 * One query row at a time: scores s_j = scale * q_i.k_j over the visible keys (a prefix, as
 * positions are sorted), m = max_j s_j, p_j = exp(s_j - m) / Z, lse_i = m + ln Z,
 * o_i = sum_j p_j v_j. All arithmetic in double from float inputs; memory O(n_k) per thread
 * (plus an O(n_k d) double copy of the rotated keys when the head asks for RoPE). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"

/* q (double, d) . k (d), four partial sums so the loop vectorises without reassociating one
 * chain; k is float (stored keys) or double (keys rotated here). */
#define AB_DEFINE_DOT(name, T)                                                                   \
    static double name(const double *q, const T *k, int64_t d)                                   \
    {                                                                                            \
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                   \
        int64_t c = 0;                                                                           \
        for (; c + 4 <= d; c += 4) {                                                             \
            s0 += q[c] * k[c];                                                                   \
            s1 += q[c + 1] * k[c + 1];                                                           \
            s2 += q[c + 2] * k[c + 2];                                                           \
            s3 += q[c + 3] * k[c + 3];                                                           \
        }                                                                                        \
        for (; c < d; c++) s0 += q[c] * k[c];                                                    \
        return (s0 + s1) + (s2 + s3);                                                            \
    }
AB_DEFINE_DOT(dot_df, float)
AB_DEFINE_DOT(dot_dd, double)

/* Keys rotated by RoPE in double, (n_k, d); NULL when the head needs no rotation. */
static int rotated_keys(const struct ab_head *h, double **out)
{
    *out = NULL;
    if (h->rope_theta <= 0) return AB_OK;
    double *kr = malloc(ab_size_mul((size_t)(h->n_k * h->d), sizeof(double)));
    if (!kr) return ab_fail(AB_E_NOMEM, "cannot allocate rotated keys (n_k %lld)",
                            (long long)h->n_k);
    for (int64_t j = 0; j < h->n_k; j++) {
        for (int64_t c = 0; c < h->d; c++) kr[j * h->d + c] = h->k[j * h->d + c];
        ab_rope_apply_f64(kr + j * h->d, h->d, h->k_pos[j], h->rope_theta);
    }
    *out = kr;
    return AB_OK;
}

/* The attention distribution of row i into p[0..n_vis) (qd is a (d) scratch row). Returns n_vis
 * and sets *lse; n_vis == 0 gives lse = -inf. */
static int64_t ref_row(const struct ab_head *h, const double *kr, int64_t i, double *qd,
                       double *p, double *lse)
{
    int64_t d = h->d, n_vis = ab_head_visible(h, i);
    for (int64_t c = 0; c < d; c++) qd[c] = h->q[i * d + c];
    if (kr) ab_rope_apply_f64(qd, d, h->q_pos[i], h->rope_theta);
    double m = -INFINITY;
    for (int64_t j = 0; j < n_vis; j++) {
        double s = h->scale * (kr ? dot_dd(qd, kr + j * d, d) : dot_df(qd, h->k + j * d, d));
        p[j] = s;
        if (s > m) m = s;
    }
    double z = 0;
    for (int64_t j = 0; j < n_vis; j++) z += p[j] = exp(p[j] - m);
    for (int64_t j = 0; j < n_vis; j++) p[j] /= z;
    *lse = n_vis ? m + log(z) : -INFINITY;
    return n_vis;
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
    double *kr;
    int rc = rotated_keys(h, &kr);
    if (rc) return rc;
    int failed = 0;
#pragma omp parallel
    {
        double *p = malloc(ab_size_mul((size_t)h->n_k + 1, sizeof(double)));
        double *qd = malloc(ab_size_mul((size_t)h->d, sizeof(double)));
        if (!p || !qd) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 8)
        for (int64_t r = 0; r < n_rows; r++) {
            if (!p || !qd) continue;
            int64_t i = rows ? rows[r] : r;
            double l;
            int64_t n_vis = ref_row(h, kr, i, qd, p, &l);
            if (lse) lse[r] = l;
            if (dist) { /* (n_k) row of the map */
                float *a = dist + r * h->n_k;
                for (int64_t j = 0; j < n_vis; j++) a[j] = (float)p[j];
                memset(a + n_vis, 0, sizeof(float) * (size_t)(h->n_k - n_vis));
            }
            if (!o) continue;
            double *orow = o + r * h->d_v; /* (d_v) */
            memset(orow, 0, (size_t)h->d_v * sizeof(double));
            for (int64_t j = 0; j < n_vis; j++) {
                const float *vj = h->v + j * h->d_v;
                double pj = p[j];
                for (int64_t c = 0; c < h->d_v; c++) orow[c] += pj * vj[c];
            }
        }
        free(p);
        free(qd);
    }
    free(kr);
    return failed ? ab_fail(AB_E_NOMEM, "cannot allocate reference row buffers") : AB_OK;
}

int ab_attn_ref_visit(const struct ab_head *h, const int64_t *rows, int64_t n_rows, ab_row_fn fn,
                      void *user)
{
    if (!rows) n_rows = h->n_q;
    double *kr;
    int rc = rotated_keys(h, &kr);
    if (rc) return rc;
    double *p = malloc(ab_size_mul((size_t)h->n_k + 1, sizeof(double)));
    double *qd = malloc(ab_size_mul((size_t)h->d, sizeof(double)));
    if (!p || !qd) {
        rc = ab_fail(AB_E_NOMEM, "cannot allocate reference row buffers");
        goto done;
    }
    for (int64_t r = 0; r < n_rows && !rc; r++) {
        int64_t i = rows ? rows[r] : r;
        double l;
        int64_t n_vis = ref_row(h, kr, i, qd, p, &l);
        rc = fn(i, p, n_vis, l, user);
    }
done:
    free(p);
    free(qd);
    free(kr);
    return rc;
}
