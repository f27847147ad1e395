/* linear_more.h - test hooks of based.c (`based`) and delta_rule.c (`gated-delta`). Not part of
 * the method interface (method.h): tests/test_methods_linear_more.c reads them to check the
 * Taylor feature map against 1 + x + x^2 / 2 and the gated delta rule at other gates. */
#ifndef AB_METHODS_LINEAR_MORE_H
#define AB_METHODS_LINEAR_MORE_H

#include <stdint.h>

#include "methods/method.h"

enum { AB_BASED_DP = 16 }; /* Based's reduced feature dimension d' (min(16, d) is used) */

#define AB_BASED_STREAM 0x42415345ULL /* rng stream parent of the projection ("BASE") */

/* The projection P (dp, d) of a head: dp orthonormal rows (Gram-Schmidt, twice, of seeded
 * Gaussian rows drawn from (seed, stream)); dp <= d. A pure function of its arguments. AB_OK or
 * AB_E_NOMEM. */
int ab_based_projection(uint64_t seed, uint64_t stream, int64_t d, int64_t dp, double *proj);

/* Features of rows x (rows, d): x' = sqrt(scale d / dp) P x (dp), then
 * phi(x) = [1, x', vec(x' x'^T) / sqrt 2], 1 + dp + dp^2 floats per row into phi, so that
 * phi(q) . phi(k) = 1 + a + a^2 / 2 with a = q' . k' (an unbiased estimate of scale q.k over
 * the random P; a = scale q.k exactly when dp = d). */
void ab_based_features(const float *x, int64_t rows, int64_t d, const double *proj, int64_t dp,
                       double scale, float *phi);

/* gated-delta's run() at gate alpha (alpha <= 0: the row's convention, lightning's per-head
 * decay) and write strength beta; same contract as a method's run(). */
int ab_gated_delta_run(const struct ab_problem *p, double beta, double alpha, float *o,
                       struct ab_ledger *led);

#endif
