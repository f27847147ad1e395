/* kv_select.h - test hooks of the per-step selection rows added with infllm.c, tokenselect.c
 * and longheads.c (their defining tests in tests/test_methods_retrieval.c call them). Internal
 * to lib/methods and the tests. */
#ifndef AB_METHODS_KV_SELECT_H
#define AB_METHODS_KV_SELECT_H

#include <stdint.h>

#include "methods/method.h"

/* infllm.c: the representative keys of the first U memory units of h (units of 32 keys from
 * key 4 on), 4 per unit, ascending, into rep (U, 4). AB_OK or AB_E_NOMEM. */
int ab_infllm_representatives(const struct ab_head *h, int64_t U, int64_t *rep);

/* tokenselect.c: the layer's soft vote of query row i over its v keys into vote (v); pr is (v)
 * scratch. */
void ab_tokenselect_vote(const struct ab_problem *p, int64_t i, int64_t v, float *vote, float *pr);

/* longheads.c: the representation c (d) of full chunk t of h (keys [64 t, 64 t + 64)); w is
 * (64) scratch. */
void ab_longheads_chunk_rep(const struct ab_head *h, int64_t t, float *c, float *w);

#endif
