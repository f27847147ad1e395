/* memo.h - fingerprints of a layer's selection inputs, for the one per-thread memo left:
 * ada-snapkv's layer scores (snapkv.c), which every head of a layer shares, so they cannot be
 * one problem's prepared state (method.h, prepare). The memo reuses them across the heads of a
 * layer, the budgets and the solver's bisection; the ledger still counts that work in every run:
 * the memo saves wall time only. */
#ifndef AB_METHODS_MEMO_H
#define AB_METHODS_MEMO_H

#include <stdint.h>

#include "methods/method.h"

/* What a cached result was computed from: the first head's arrays and shapes, the phase, the
 * seed, and a 64-bit hash of the contents of every head's Q and K (so arrays changed in place
 * are noticed). */
struct ab_memo_key {
    const float *q, *k;
    int64_t n_q, n_k, d, q0, self;
    uint64_t seed, hash;
    double scale;
};

/* The key of p's whole layer (p->layer's n_layer_heads heads, or p->h alone): what a selection
 * shared by the heads of a layer (Ada-KV's budget split) was computed from, the same for every
 * head of it. O(heads n d). */
struct ab_memo_key ab_memo_layer_key_of(const struct ab_problem *p);

/* Turns the memo off (on != 0) or back on: while off, ab_memo_key_eq answers 0, so each
 * selection is computed in full. For benchmarks that time a selection (`bench methods`):
 * the memo would otherwise answer every repetition after the first. Not thread-safe to flip
 * while selections run. */
void ab_memo_bypass(int on);

/* 1 when two keys are equal (always 0 while the memo is bypassed). */
int ab_memo_key_eq(const struct ab_memo_key *a, const struct ab_memo_key *b);

#endif
