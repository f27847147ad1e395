/* calibration.h - the row transforms of the calibration family (calibration.c), exposed so
 * tests can check each one on a hand-built row. Every transform takes one exact attention row
 * a[0..n_vis) (a distribution over the visible keys) and rewrites it in place in double; the
 * metrics.md definitions ("Calibration transforms") are quoted above each. */
#ifndef AB_METHODS_CALIBRATION_H
#define AB_METHODS_CALIBRATION_H

#include <stdint.h>

#include "attn/attn.h"

/* Sink scaling (ACT, VAR-style redistribution): keys with in_s[j] != 0 keep `keep` of their
 * attention; the removed mass m = (1 - keep) sum_S a goes to the other visible keys in
 * proportion to a. The row sum is unchanged. If the other keys hold no mass (r = 0) the row is
 * left as it is (nowhere to move the mass). in_s is (n_vis). */
void ab_calib_scale_sinks(double *a, int64_t n_vis, const unsigned char *in_s, double keep);

/* ZeroTuning: a0' = gamma a0 / D, aj' = aj / D, D = 1 + (gamma - 1) a0. */
void ab_calib_zerotuning(double *a, int64_t n_vis, double gamma);

/* Sink logit: p_j = exp(z_j) / (exp(b) + sum exp(z)), from the normalised row a and its
 * lse = log sum exp(z). Returns the sink mass exp(b) / (exp(b) + sum exp(z)); the row then
 * sums to 1 minus it. */
double ab_calib_sink_logit(double *a, int64_t n_vis, double lse, double b);

/* Uniform head: a_j' = 1 / n_vis. */
void ab_calib_uniform(double *a, int64_t n_vis);

/* Column means alpha(k) (n_k) over query rows 0..q_end-1 of h: alpha(k) = the mean of A[i,k]
 * over those rows that see k (0 where none does); only keys k < k_end are accumulated (the
 * rest get 0). One streaming pass of the reference visitor: O(q_end n_k d) time, O(n_k)
 * memory. AB_OK or AB_E_NOMEM. */
int ab_calib_column_means(const struct ab_head *h, int64_t q_end, int64_t k_end, double *alpha);

/* The sink set of alpha (n): in_s[k] = alpha(k) > thr, and when drop_first the first such key
 * is left out (ACT keeps the primary sink). Returns the number of keys in the set. */
int64_t ab_calib_sink_set(const double *alpha, int64_t n, double thr, int drop_first,
                          unsigned char *in_s);

#endif
