/* kernel_linear.c - the shared engine of the kernelised linear-attention rows (see
 * kernel_linear.h): full-mask, chunked causal and recurrent decode forms over precomputed
 * feature maps, all single precision through OpenBLAS. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kernel_linear.h"

int ab_klin_check_mask(const struct ab_method *m, const struct ab_problem *p)
{
    if (!(m->masks & (1u << p->h->mask)))
        return ab_fail(AB_E_USAGE, "%s: the %s mask is not supported", m->name,
                       p->h->mask == AB_MASK_CAUSAL ? "causal" : "full");
    return AB_OK;
}

void ab_klin_ledger(const struct ab_problem *p, int64_t f, int64_t chunk, int normalise,
                    double feat_flops, double feat_ops, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    double nq = (double)(h->n_q - p->q0), nk = (double)h->n_k, fd = (double)f, dv = (double)h->d_v;
    if (p->phase == AB_PHASE_DECODE) {
        led->flops_attend += nq * (4 * fd * dv + 2 * feat_flops);
        led->ops_other += nq * 2 * feat_ops;
        led->bytes_kv += nq * 4 * fd * (dv + (normalise ? 1 : 0));
        return;
    }
    led->flops_attend += 2 * nk * fd * dv + 2 * nq * fd * dv + (nq + nk) * feat_flops;
    if (h->mask == AB_MASK_CAUSAL) led->flops_attend += 2 * nq * (double)chunk * (fd + dv);
    led->ops_other += (nq + nk) * feat_ops;
    led->bytes_kv += 4 * nk * (double)(h->d + h->d_v);
}

/* o_i = t_i[0..dv) / t_i[dv] (normalised) or t_i (not): one output row from its accumulator */
static void finish_row(const float *t, int64_t dv, int normalise, float *o)
{
    if (!normalise) {
        memcpy(o, t, (size_t)dv * sizeof(float));
        return;
    }
    float z = t[dv];
    for (int64_t c = 0; c < dv; c++) o[c] = z > 0 ? t[c] / z : 0.0f;
}

/* Full mask: s = sum_j kf_j v'_j (one matmul), then every row reads it. */
static void form_full(const struct ab_klin *k, int64_t n, int64_t q0, const float *vp, int64_t dv1,
                      float *s, float *t, float *all, int64_t dv)
{
    int64_t f = k->f, nq = n - q0;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)f, (int)dv1, (int)n, 1.0f, k->kf,
                (int)f, vp, (int)dv1, 0.0f, s, (int)dv1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)dv1, (int)f, 1.0f,
                k->qf + q0 * f, (int)f, s, (int)dv1, 0.0f, t, (int)dv1);
    for (int64_t i = 0; i < nq; i++) finish_row(t + i * dv1, dv, k->normalise, all + i * dv);
}

/* Causal prefill by chunks of C rows. State s (f, dv1) holds sum_{j < c0} kf_j e^(g_j - gs) v'_j
 * with gs the log-scale of the last row folded in. Row i of chunk [c0, c1):
 *   t_i = e^(gs - g_i) qf_i s  +  sum_{c0 <= j <= i} (qf_i . kf_j) e^(g_j - g_i) v'_j. */
static void form_chunked(const struct ab_klin *k, int64_t n, const float *vp, int64_t dv1, float *s,
                         float *t, float *a, float *ks, float *all, int64_t dv)
{
    int64_t f = k->f, cmax = k->chunk;
    double gs = 0;
    memset(s, 0, (size_t)(f * dv1) * sizeof(float));
    /* constant decay: e^(g_j - g_i) = e^(-rate (i - j)), one table for every chunk */
    if (k->rate > 0)
        for (int64_t x = 0; x < cmax; x++) ks[x] = (float)exp(-k->rate * (double)x);
    for (int64_t c0 = 0; c0 < n; c0 += cmax) {
        int64_t c = AB_MIN(cmax, n - c0);
        const float *qb = k->qf + c0 * f, *kb = k->kf + c0 * f, *vb = vp + c0 * dv1;
        /* inter-chunk: what the earlier chunks left in the state */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c, (int)dv1, (int)f, 1.0f, qb,
                    (int)f, s, (int)dv1, 0.0f, t, (int)dv1);
        if (k->g)
            for (int64_t i = 0; i < c; i++) {
                float e = (float)exp(gs - k->g[c0 + i]);
                for (int64_t x = 0; x < dv1; x++) t[i * dv1 + x] *= e;
            }
        /* intra-chunk: the masked c x c block of feature products */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c, (int)c, (int)f, 1.0f, qb,
                    (int)f, kb, (int)f, 0.0f, a, (int)c);
        for (int64_t i = 0; i < c; i++)
            for (int64_t j = 0; j < c; j++) {
                if (j > i)
                    a[i * c + j] = 0.0f;
                else if (k->g)
                    a[i * c + j] *= (float)exp(k->g[c0 + j] - k->g[c0 + i]);
            }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c, (int)dv1, (int)c, 1.0f, a,
                    (int)c, vb, (int)dv1, 1.0f, t, (int)dv1);
        for (int64_t i = 0; i < c; i++)
            finish_row(t + i * dv1, dv, k->normalise, all + (c0 + i) * dv);
        /* fold the chunk into the state, rescaled to the chunk's last log-scale */
        const float *kadd = kb;
        if (k->g) {
            double gn = k->g[c0 + c - 1];
            float e = (float)exp(gs - gn);
            for (int64_t x = 0; x < f * dv1; x++) s[x] *= e;
            float *kt = ks + cmax; /* after the decay table */
            for (int64_t j = 0; j < c; j++) {
                float ej = (float)exp(k->g[c0 + j] - gn);
                for (int64_t r = 0; r < f; r++) kt[j * f + r] = kb[j * f + r] * ej;
            }
            kadd = kt;
            gs = gn;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)f, (int)dv1, (int)c, 1.0f, kadd,
                    (int)f, vb, (int)dv1, 1.0f, s, (int)dv1);
    }
}

/* Causal decode: the state of rows 0..q0-1 in one matmul, then per decode row i: add key i
 * (rescaling the state to g_i), read t_i = qf_i s. */
static void form_decode(const struct ab_klin *k, int64_t n, int64_t q0, const float *vp,
                        int64_t dv1, float *s, float *t, float *ks, float *all, int64_t dv)
{
    int64_t f = k->f;
    double gs = q0 > 0 && k->g ? k->g[q0 - 1] : 0;
    const float *kadd = k->kf;
    if (k->g)
        for (int64_t j = 0; j < q0; j++) {
            float ej = (float)exp(k->g[j] - gs);
            for (int64_t r = 0; r < f; r++) ks[j * f + r] = k->kf[j * f + r] * ej;
        }
    if (k->g) kadd = ks;
    memset(s, 0, (size_t)(f * dv1) * sizeof(float));
    if (q0 > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)f, (int)dv1, (int)q0, 1.0f, kadd,
                    (int)f, vp, (int)dv1, 0.0f, s, (int)dv1);
    for (int64_t i = q0; i < n; i++) {
        if (k->g) {
            float e = (float)exp(gs - k->g[i]);
            for (int64_t x = 0; x < f * dv1; x++) s[x] *= e;
            gs = k->g[i];
        }
        cblas_sger(CblasRowMajor, (int)f, (int)dv1, 1.0f, k->kf + i * f, 1, vp + i * dv1, 1, s,
                   (int)dv1);
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)f, (int)dv1, 1.0f, s, (int)dv1, k->qf + i * f,
                    1, 0.0f, t, 1);
        finish_row(t, dv, k->normalise, all + (i - q0) * dv);
    }
}

int ab_klin_run(const struct ab_problem *p, const struct ab_klin *k, float *o)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, dv = h->d_v, dv1 = dv + (k->normalise ? 1 : 0), f = k->f;
    int causal = h->mask == AB_MASK_CAUSAL;
    if (h->n_q != n)
        return ab_fail(AB_E_DATA, "linear attention: %lld queries over %lld keys",
                       (long long)h->n_q, (long long)n);
    if (causal)
        for (int64_t i = 0; i < n; i++)
            if (ab_head_visible(h, i) != i + 1)
                return ab_fail(AB_E_DATA,
                               "linear attention: query row %lld does not see keys "
                               "0..%lld exactly (positions not aligned)",
                               (long long)i, (long long)i);
    int64_t cmax = AB_MAX(k->chunk, 1);
    float *vp = ab_alloc(ab_size_mul((size_t)(n * dv1), sizeof(float)));    /* (n, dv1) V | 1 */
    float *s = ab_alloc(ab_size_mul((size_t)(f * dv1), sizeof(float)));     /* (f, dv1) state */
    float *t = ab_alloc(ab_size_mul((size_t)(n * dv1), sizeof(float)));     /* (n, dv1) rows */
    float *a = ab_alloc(ab_size_mul((size_t)(cmax * cmax), sizeof(float))); /* (C, C) */
    /* (C + n f): the decay table, then the scaled key features */
    float *ks = ab_alloc(ab_size_mul((size_t)(cmax + n * f), sizeof(float)));
    float *all = ab_alloc(ab_size_mul((size_t)(n * dv), sizeof(float))); /* (n, dv) outputs */
    int rc = AB_OK;
    if (!vp || !s || !t || !a || !ks || !all) {
        rc = ab_fail(AB_E_NOMEM, "linear attention: cannot allocate scratch for n = %lld",
                     (long long)n);
        goto done;
    }
    for (int64_t j = 0; j < n; j++) {
        memcpy(vp + j * dv1, h->v + j * dv, (size_t)dv * sizeof(float));
        if (k->normalise) vp[j * dv1 + dv] = 1.0f;
    }
    struct ab_klin kk = *k;
    kk.chunk = cmax;
    int64_t q0 = p->q0;
    /* all holds rows q0..n-1 (full and decode forms) or 0..n-1 (chunked prefill, q0 = 0) */
    if (!causal)
        form_full(&kk, n, q0, vp, dv1, s, t, all, dv);
    else if (p->phase == AB_PHASE_DECODE)
        form_decode(&kk, n, q0, vp, dv1, s, t, ks, all, dv);
    else
        form_chunked(&kk, n, vp, dv1, s, t, a, ks, all + 0, dv);
    int64_t base = (causal && p->phase != AB_PHASE_DECODE) ? 0 : q0;
    for (int64_t r = 0; r < p->n_rows; r++)
        memcpy(o + r * dv, all + (p->rows[r] - base) * dv, (size_t)dv * sizeof(float));
done:
    ab_free(vp), ab_free(s), ab_free(t), ab_free(a), ab_free(ks), ab_free(all);
    return rc;
}
