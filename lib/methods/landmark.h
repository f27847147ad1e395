/* landmark.h - internals of the landmark (segment-mean) methods of landmark.c: nystrom,
 * key-pooling and agent. Not part of the method interface (method.h); the tests read it to
 * check the pieces those methods are built from. */
#ifndef AB_METHODS_LANDMARK_H
#define AB_METHODS_LANDMARK_H

#include <stdint.h>

/* Segment s of m over n rows is rows [s n / m, (s + 1) n / m) (integer division): m segments
 * of floor(n / m) or ceil(n / m) rows, none empty when 1 <= m <= n. */
static inline int64_t ab_lm_seg_lo(int64_t s, int64_t n, int64_t m)
{
    return s * n / m;
}

/* Mean of each of the m segments of x (n, dim) into out (m, dim), summed in double.
 * 1 <= m <= n. n * dim additions. */
void ab_lm_pool(const float *x, int64_t n, int64_t dim, int64_t m, float *out);

/* The iterative Moore-Penrose pseudo-inverse of Nystromformer (Xiong et al. 2021, arXiv
 * 2102.03902, eq. 13, after Razavi et al. 2014): Z_0 = A^T / (||A||_1 ||A||_inf),
 * Z <- Z (13 I - A Z (15 I - A Z (7 I - A Z))) / 4, `iters` times. a and z are (m, m),
 * row-major; z is written. Four m x m products per iteration (8 m^3 FLOPs), through sgemm.
 * AB_OK or AB_E_NOMEM. */
int ab_lm_pinv(const float *a, int64_t m, int iters, float *z);

#endif
