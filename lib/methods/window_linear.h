/* window_linear.h - internals of window_linear.c (`window-linear`): FAVOR+ positive random
 * features and the chunked causal pass over them. Not part of the method interface (method.h);
 * the tests read it to check the estimate and the agreement of the chunked and recurrent forms. */
#ifndef AB_METHODS_WINDOW_LINEAR_H
#define AB_METHODS_WINDOW_LINEAR_H

#include <stdint.h>

enum { AB_WL_M = 64 }; /* random features m */

#define AB_WL_STREAM 0x57494e4cULL /* rng stream parent of the features ("WINL") */

/* omega (m, d): blocks of d orthonormal rows (Gram-Schmidt of Gaussian rows), each row scaled
 * by the norm of an independent Gaussian d-vector (chi(d)), drawn from (seed, stream).
 * AB_OK or AB_E_NOMEM. */
int ab_wl_omega(uint64_t seed, uint64_t stream, int64_t m, int64_t d, float *omega);

/* FAVOR+ features of rows x (rows, d) at logit scale `scale` (x^ = x sqrt(scale)): raw_r =
 * omega_r . x^ - |x^|^2 / 2, lg_i = max_r raw_r, f_ir = exp(raw_r - lg_i) / sqrt(m), so that
 * phi(x) = f_i e^lg_i and E[phi(q) . phi(k)] = exp(scale q.k). f (rows, m), lg (rows). */
void ab_wl_features(const float *x, int64_t rows, int64_t d, const float *omega, int64_t m,
                    double scale, float *f, double *lg);

/* The remote part of queries i = q0 .. q0 + nq - 1 over keys j <= i - w of n keys: for each
 * query row t with need[t] (whole chunks of `chunk` rows are computed when one row needs it),
 * r[t] (dv1) = sum_{j <= i - w} (fq_t . fk_j) e^(bk_j - b_t) v1_j and lg[t] = aq[t] + b_t, so
 * that the estimate of sum_j e^(s q_i.k_j) v1_j is r[t] e^lg[t]; b_t is the largest bk over
 * those keys (lg = -inf and r = 0 when there are none). The state carries the keys remote to a
 * whole chunk; chunk = 1 is the recurrent form. fq (nq, m), aq (nq), fk (n, m), bk (n),
 * v1 (n, dv1), r (nq, dv1), lg (nq). 1 <= chunk <= 64. AB_OK or AB_E_NOMEM. */
int ab_wl_pass(const float *fq, const double *aq, int64_t q0, int64_t nq, const float *fk,
               const double *bk, const float *v1, int64_t n, int64_t dv1, int64_t m, int64_t w,
               int64_t chunk, const uint8_t *need, float *r, double *lg);

#endif
