/* methods_fixtures.h - problems for method tests: seeded random heads, hand-built heads with
 * planted structure, and the evaluation of a method against exact attention. */
#ifndef AB_TESTS_METHODS_FIXTURES_H
#define AB_TESTS_METHODS_FIXTURES_H

#include <stdint.h>

#include "attn/attn.h"
#include "methods/method.h"

/* One layer of n_head query heads over n_kv kv heads, n rows, d = d_v, with its problems. */
struct fx_layer {
    int64_t n, d, n_head, n_kv;
    float *q, *k, *v;  /* (n_head, n, d), (n_kv, n, d), (n_kv, n, d) */
    int32_t *pos;      /* (n) 0..n-1 */
    struct ab_head *heads; /* (n_head) */
    int64_t *rows;     /* (n) evaluated rows of the current phase */
    int64_t n_rows;
};

/* Seeded Gaussian inputs; logits scale*q.k have standard deviation `spread`. */
void fx_layer_make(struct fx_layer *L, int64_t n_head, int64_t n_kv, int64_t n, int64_t d,
                   double spread, uint64_t seed);
void fx_layer_free(struct fx_layer *L);

/* The problem of head `head` in a phase: prefill (m == 0) or decode with the last m rows as
 * queries; evaluated rows: all rows of the phase. */
struct ab_problem fx_problem(struct fx_layer *L, int64_t head, int64_t m);

/* m->run as the engine calls it (method.h): on p prepared for m (a prepared copy when p->prep is
 * NULL and m has a prepare, freed after the call) with a keep set (keep, cleared here, or one
 * allocated for the call when keep is NULL). Returns run()'s code. */
int fx_method_run(const struct ab_method *m, const struct ab_problem *p, double knob, float *o,
                  struct ab_keep *keep, struct ab_ledger *led);

/* m->dist on p prepared for m, as fx_method_run. */
int fx_method_dist(const struct ab_method *m, const struct ab_problem *p, double knob, float *a);

/* Prepares p for m (asserts it succeeds); fx_unprepare frees it. */
void fx_prepare(const struct ab_method *m, struct ab_problem *p);
void fx_unprepare(const struct ab_method *m, struct ab_problem *p);

/* Runs m at knob on p and returns rel_l2 of its output against the double reference over the
 * evaluated rows; fills *led and, when keep != NULL, the keep set (allocated here; free with
 * ab_keep_free). Asserts the run succeeded. */
double fx_rel_l2(const struct ab_method *m, const struct ab_problem *p, double knob,
                 struct ab_ledger *led, struct ab_keep *keep);

/* Attention recall of a keep set: mean over evaluated rows of the exact mass on kept keys. */
double fx_recall(const struct ab_problem *p, const struct ab_keep *keep);

/* fx_rel_l2 plus the ledger checks every method test wants: its cells equal what
 * ab_attend_kept computes on the keep set and the keep counts, the o == NULL path fills the
 * same ledger, and (analytic rows) so does cost(). Every row of p must be evaluated (fx_problem)
 * so the keep set covers the whole phase. Returns rel_l2 against the exact reference. */
double fx_run_checked(const struct ab_method *m, const struct ab_problem *p, double knob,
                      struct ab_ledger *led, struct ab_keep *keep);

/* The registry row called name (asserts it exists). */
const struct ab_method *fx_method(const char *name);

/* Kept cells of a keep set over all its rows. */
double fx_keep_cells(const struct ab_keep *keep);

/* u (d): a unit vector along a seeded random direction. */
struct ab_rng;
void fx_unit(float *u, int64_t d, struct ab_rng *r);

/* Rows i0..i1 of x (n, d) += a u: plants a direction in a span of queries or keys. */
void fx_add_dir(float *x, int64_t d, int64_t i0, int64_t i1, const float *u, float a);

/* m at knob on p into a fresh (n_rows, d_v) output (malloc'd); asserts success. */
float *fx_run_out(const struct ab_method *m, const struct ab_problem *p, double knob);

/* max over rows of |o_r - ref_r| / (|ref_r| + 1e-3), Euclidean norms, o and ref (n_rows, dv). */
double fx_max_row_err(const float *o, const double *ref, int64_t n_rows, int64_t dv);

/* a . b in double (d). */
double fx_dot(const float *a, const float *b, int64_t d);

#endif
