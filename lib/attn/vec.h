/* vec.h - the loops of attention that BLAS does not reach: a row's maximum, its exponentials and
 * their sum, scaling, and the dot products and updates of gathered keys. Two versions of each:
 * portable C (any x86-64 or other CPU, what the tests take as the reference) and AVX2 + FMA
 * intrinsics, the version chosen at run time when the CPU has them (issue 14: the online softmax
 * was compiled for baseline SSE2 and its row maximum ran one float at a time).
 *
 * Results of the two versions agree within float rounding, not bit for bit: the vector version
 * sums in a different order and fuses multiply-adds (tests/test_attn.c compares them). An
 * AVX-512 CPU runs the AVX2 version: there is no AVX-512 path, because this project's machines
 * cannot execute (so cannot test) one.
 *
 * Contract of every function: n >= 0; pointers valid for n floats; inputs finite or -inf. */
#ifndef AB_ATTN_VEC_H
#define AB_ATTN_VEC_H

#include <stdint.h>

struct ab_vec {
    const char *isa; /* "avx2+fma" or "portable" */
    /* max(m, x[0..n)) */
    float (*max)(const float *x, int64_t n, float m);
    /* p[j] = exp(s[j] - mx) for j < n (exactly 0 where s[j] = -inf; mx finite, >= every s[j]);
     * returns sum_j p[j]. p may equal s. */
    float (*exp_sum)(const float *s, float *p, int64_t n, float mx);
    /* exp_sum from s into p (p != s), then s[0..n) = 0: the logit buffer left zeroed for the
     * next product, which then accumulates into it (beta = 1) instead of clearing it first */
    float (*exp_move)(float *s, float *p, int64_t n, float mx);
    /* x[0..n) *= f */
    void (*scale)(float *x, int64_t n, float f);
    /* sum_j a[j] b[j] */
    float (*dot)(const float *a, const float *b, int64_t n);
    /* y[0..n) = f y + w x */
    void (*axpby)(float *y, float f, float w, const float *x, int64_t n);
};

/* The fastest version this CPU runs (chosen once; thread-safe). */
const struct ab_vec *ab_vec(void);

/* A given version by name ("portable", "avx2+fma"), NULL when unknown or when this CPU cannot
 * run it: for tests and benchmarks that compare them. */
const struct ab_vec *ab_vec_named(const char *isa);

#endif
