/* kvpress.h - test hooks of kvpress.c (the "score the context once, keep the top C" rows from
 * NVIDIA kvpress: knorm, random, keydiff, lagkv, expected-attention, q-filters). Internal to
 * lib/methods: kvpress.c and tests/test_methods_kvpress.c include it. */
#ifndef AB_METHODS_KVPRESS_H
#define AB_METHODS_KVPRESS_H

#include <stdint.h>

#include "methods/method.h"

/* The context scores of the row called `name` on decode problem p, as its run ranks them:
 * score (n_ctx), n_ctx = the keys the last context row sees; the row keeps the top C (ties to
 * the lower index). Forced keys (lagkv's sinks and last partition, expected-attention's sinks)
 * score above every other key. AB_OK, AB_E_USAGE for an unknown name, or AB_E_NOMEM. */
int ab_kvpress_scores(const struct ab_problem *p, const char *name, float *score);

/* q-filters: the unit direction u (d) of p's head, the principal right singular vector of the
 * context queries (power iteration), oriented so that u . mean(q) >= 0. AB_OK or AB_E_NOMEM. */
int ab_qfilters_direction(const struct ab_problem *p, double *u);

#endif
