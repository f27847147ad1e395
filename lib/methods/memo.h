/* memo.h - fingerprints of a problem's selection inputs, so that a data-dependent method can
 * keep the expensive, knob-independent part of its selection (block scores, clusters) in a
 * per-thread cache and reuse it across the solver's bisection, which runs the same head at many
 * knobs. The ledger still counts that work in every run: the cache saves wall time only. */
#ifndef AB_METHODS_MEMO_H
#define AB_METHODS_MEMO_H

#include <stdint.h>

#include "methods/method.h"

/* What a cached result was computed from: the head's arrays and shapes, the phase, the seed,
 * the head's place in its layer, and a 64-bit hash of the contents of Q and K (so arrays changed
 * in place are noticed). O(n d). */
struct ab_memo_key {
    const float *q, *k;
    int64_t n_q, n_k, d, q0, self;
    uint64_t seed, hash;
    double scale;
};

/* The key of problem p. */
struct ab_memo_key ab_memo_key_of(const struct ab_problem *p);

/* The key of p's whole layer (p->layer's n_layer_heads heads, or p->h alone): what a selection
 * shared by the heads of a layer (Ada-KV's budget split) was computed from, the same for every
 * head of it. O(heads n d). */
struct ab_memo_key ab_memo_layer_key_of(const struct ab_problem *p);

/* Turns every memo off (on != 0) or back on: while off, ab_memo_key_eq answers 0, so each
 * selection is computed in full. For benchmarks that time a selection (`bench methods`):
 * the memo would otherwise answer every repetition after the first. Not thread-safe to flip
 * while selections run. */
void ab_memo_bypass(int on);

/* 1 when two keys are equal (always 0 while the memos are bypassed). */
int ab_memo_key_eq(const struct ab_memo_key *a, const struct ab_memo_key *b);

/* 1 when two keys are equal, bypass or not: for a memo of work the ledger counts as free, a
 * by-product the model has anyway (H2O's context scores are prefill's own probabilities), so a
 * benchmark of decode steps finds it done as a model would. */
int ab_memo_key_eq_free(const struct ab_memo_key *a, const struct ab_memo_key *b);

#endif
