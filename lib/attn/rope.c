/* rope.c - rotary position embedding (Su et al., arXiv 2104.09864), in the Llama / llama2.c
 * layout: consecutive dimension pairs (2p, 2p+1) form complex numbers rotated by the angle
 * pos * theta^(-2p/d). Low p rotates fast (high frequency), high p slowly. Also the
 * "rotate_half" layout of Hugging Face models, pairs (p, p + d/2) with the same angles, for
 * importing Q and K dumped before RoPE from such a model. */
#include <math.h>
#include <stdlib.h>

#include "attn/attn.h"

void ab_rope_apply_f64(double *x, int64_t d, int32_t pos, double theta)
{
    for (int64_t p = 0; 2 * p + 1 < d; p++) {
        double freq = pow(theta, -(double)(2 * p) / (double)d);
        double a = (double)pos * freq, c = cos(a), s = sin(a);
        double x0 = x[2 * p], x1 = x[2 * p + 1];
        x[2 * p] = x0 * c - x1 * s;
        x[2 * p + 1] = x0 * s + x1 * c;
    }
}

void ab_rope_apply(float *x, int64_t n, int64_t d, const int32_t *pos, double theta)
{
    /* the frequency table, when there is memory for it (else each pair recomputes its own) */
    double *freq = malloc(sizeof(double) * (size_t)(d / 2 + 1)); /* (d/2) */
    for (int64_t p = 0; freq && 2 * p + 1 < d; p++)
        freq[p] = pow(theta, -(double)(2 * p) / (double)d);
#pragma omp parallel for schedule(static) if (n * d > 65536)
    for (int64_t i = 0; i < n; i++) {
        float *row = x + i * d;
        for (int64_t p = 0; 2 * p + 1 < d; p++) {
            double f = freq ? freq[p] : pow(theta, -(double)(2 * p) / (double)d);
            /* angle in double: positions up to 2^31 times a frequency near 1 */
            double a = (double)pos[i] * f, c = cos(a), s = sin(a);
            double x0 = row[2 * p], x1 = row[2 * p + 1];
            row[2 * p] = (float)(x0 * c - x1 * s);
            row[2 * p + 1] = (float)(x0 * s + x1 * c);
        }
    }
    free(freq);
}

void ab_rope_apply_half(float *x, int64_t n, int64_t d, const int32_t *pos, double theta)
{
    int64_t half = d / 2;
#pragma omp parallel for schedule(static) if (n * d > 65536)
    for (int64_t i = 0; i < n; i++) {
        float *row = x + i * d;
        for (int64_t p = 0; p < half; p++) {
            double a = (double)pos[i] * pow(theta, -(double)(2 * p) / (double)d);
            double c = cos(a), s = sin(a);
            double x0 = row[p], x1 = row[p + half];
            row[p] = (float)(x0 * c - x1 * s);
            row[p + half] = (float)(x1 * c + x0 * s);
        }
    }
}
