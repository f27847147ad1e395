/* sparse.c - token-sparse attention over a kept set (issue 14): each query row reads only the
 * keys its selection kept (a bitset row, as lib/methods' struct ab_keep holds it), gathered by
 * index, with a one-pass online softmax, so the work is proportional to the kept cells. The
 * output equals the accuracy path's (ab_attend_kept) within float rounding. */
#include <math.h>
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
