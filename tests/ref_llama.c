/* ref_llama.c - the independent double-precision Llama forward pass (ref_llama.h). */
#include "ref_llama.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void rms(double *out, const double *x, const double *g, int D)
{
    double ss = 0;
    for (int j = 0; j < D; j++) ss += x[j] * x[j];
    double s = 1 / sqrt(ss / D + 1e-5);
    for (int j = 0; j < D; j++) out[j] = x[j] * s * g[j];
}

/* y (rows) = W (rows, cols) x (cols) */
static void mv(double *y, const double *w, const double *x, int rows, int cols)
{
    for (int i = 0; i < rows; i++) {
        double s = 0;
        for (int j = 0; j < cols; j++) s += w[(long)i * cols + j] * x[j];
        y[i] = s;
    }
}

/* RoPE on one head row at position i: pair (2p, 2p+1) turns by i * 10000^(-2p / hd). */
static void rope(double *row, int i, int hd)
{
    for (int pr = 0; pr < hd / 2; pr++) {
        double a = i * pow(10000.0, -2.0 * pr / hd), c = cos(a), s = sin(a);
        double x0 = row[2 * pr], x1 = row[2 * pr + 1];
        row[2 * pr] = x0 * c - x1 * s;
        row[2 * pr + 1] = x0 * s + x1 * c;
    }
}

/* Causal softmax attention of query head h over kv head g: att (n, H hd) columns of head h. */
static void attend(const double *Q, const double *K, const double *V, int n, int hd, int qd,
                   int h, double *p, double *att)
{
    for (int i = 0; i < n; i++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int e = 0; e < hd; e++) s += Q[(long)i * hd + e] * K[(long)j * hd + e];
            p[j] = s / sqrt((double)hd);
            mx = p[j] > mx ? p[j] : mx;
        }
        for (int j = 0; j <= i; j++) sum += p[j] = exp(p[j] - mx);
        for (int e = 0; e < hd; e++) {
            double o = 0;
            for (int j = 0; j <= i; j++) o += p[j] * V[(long)j * hd + e];
            att[(long)i * qd + h * hd + e] = o / sum;
        }
    }
}

void t_llama_forward(const struct t_llama *w, const int32_t *tok, int n, struct t_llama_out *o)
{
    int D = w->D, F = w->F, L = w->L, H = w->H, G = w->G, hd = w->hd, V = w->V;
    int qd = H * hd, kvd = G * hd;
    o->q = calloc((size_t)L * qd * n, sizeof(double));
    o->k = calloc((size_t)L * kvd * n, sizeof(double));
    o->k_raw = calloc((size_t)L * kvd * n, sizeof(double));
    o->v = calloc((size_t)L * kvd * n, sizeof(double));
    o->hidden = calloc((size_t)(L + 1) * n * D, sizeof(double));
    o->logits = calloc((size_t)n * V, sizeof(double));
    double *x = calloc((size_t)n * D, sizeof(double)), *xb = calloc((size_t)D, sizeof(double));
    double *tmp = calloc((size_t)(qd > F ? qd : F) + (size_t)D, sizeof(double));
    double *h1 = calloc((size_t)F, sizeof(double)), *h3 = calloc((size_t)F, sizeof(double));
    double *att = calloc((size_t)n * qd, sizeof(double)), *p = calloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < D; j++) x[i * D + j] = w->emb[(long)tok[i] * D + j];
    for (int l = 0; l < L; l++) {
        memcpy(o->hidden + (long)l * n * D, x, sizeof(double) * n * D);
        double *Q = o->q + (long)l * H * n * hd, *K = o->k + (long)l * G * n * hd;
        double *Kr = o->k_raw + (long)l * G * n * hd, *Vv = o->v + (long)l * G * n * hd;
        for (int i = 0; i < n; i++) { /* heads are (head, n, hd) */
            rms(xb, x + i * D, w->rms_att[l], D);
            mv(tmp, w->wq[l], xb, qd, D);
            for (int h = 0; h < H; h++)
                memcpy(Q + ((long)h * n + i) * hd, tmp + h * hd, sizeof(double) * hd);
            mv(tmp, w->wk[l], xb, kvd, D);
            for (int g = 0; g < G; g++) {
                memcpy(K + ((long)g * n + i) * hd, tmp + g * hd, sizeof(double) * hd);
                memcpy(Kr + ((long)g * n + i) * hd, tmp + g * hd, sizeof(double) * hd);
            }
            mv(tmp, w->wv[l], xb, kvd, D);
            for (int g = 0; g < G; g++)
                memcpy(Vv + ((long)g * n + i) * hd, tmp + g * hd, sizeof(double) * hd);
            for (int h = 0; h < H; h++) rope(Q + ((long)h * n + i) * hd, i, hd);
            for (int g = 0; g < G; g++) rope(K + ((long)g * n + i) * hd, i, hd);
        }
        for (int h = 0; h < H; h++) {
            int g = h / (H / G);
            attend(Q + (long)h * n * hd, K + (long)g * n * hd, Vv + (long)g * n * hd, n, hd, qd,
                   h, p, att);
        }
        for (int i = 0; i < n; i++) {
            mv(tmp, w->wo[l], att + (long)i * qd, D, qd);
            for (int j = 0; j < D; j++) x[i * D + j] += tmp[j];
            rms(xb, x + i * D, w->rms_ffn[l], D);
            mv(h1, w->w1[l], xb, F, D);
            mv(h3, w->w3[l], xb, F, D);
            for (int j = 0; j < F; j++) h1[j] = h1[j] / (1 + exp(-h1[j])) * h3[j];
            mv(tmp, w->w2[l], h1, D, F);
            for (int j = 0; j < D; j++) x[i * D + j] += tmp[j];
        }
    }
    memcpy(o->hidden + (long)L * n * D, x, sizeof(double) * n * D);
    for (int i = 0; i < n; i++) {
        rms(xb, x + i * D, w->rms_final, D);
        mv(o->logits + (long)i * V, w->cls, xb, V, D);
    }
    free(x), free(xb), free(tmp), free(h1), free(h3), free(att), free(p);
}

void t_llama_out_free(struct t_llama_out *o)
{
    free(o->q), free(o->k), free(o->k_raw), free(o->v), free(o->hidden), free(o->logits);
    memset(o, 0, sizeof *o);
}

double t_rel_l2(const float *a, const double *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}
