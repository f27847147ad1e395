/* eval.h - the evaluation engine: the isoFLOPS budget solver, the accuracy metrics of
 * metrics.md against the double-precision reference, and the sweep over heads x methods x
 * budgets x phases that fills struct ab_results (architecture.md, "Budgets and the solver",
 * "Phases and the decode protocol"). */
#ifndef AB_EVAL_EVAL_H
#define AB_EVAL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/workload.h"
#include "eval/results.h"
#include "methods/method.h"

/* The weight of one-off work in the phase's ratio: 1 in prefill (it is part of the phase), m / G
 * in decode (m = n - q0 evaluated decode queries standing for a generation of G tokens, G =
 * ab_problem_horizon(p); architecture.md, "Phases and the decode protocol"). */
double ab_once_weight(const struct ab_problem *p);

/* The FLOPs a ledger counts, one-off work weighted: flops_attend + flops_select +
 * once_weight flops_once (once_weight from ab_once_weight). */
double ab_ledger_flops(const struct ab_ledger *l, double once_weight);

/* flop_ratio of a ledger on problem p, the headline ratio budgets are fitted to:
 * (flops_attend + flops_select + ab_once_weight(p) flops_once) / dense FLOPs of the phase. */
double ab_ledger_ratio(const struct ab_ledger *l, const struct ab_problem *p);

/* The per-step ratio: (flops_attend + flops_select) / dense, without the one-off work (in
 * decode: the cost of one generated token once the cache is built). */
double ab_ledger_ratio_step(const struct ab_ledger *l, const struct ab_problem *p);

/* The kinds of budget a cell meets (the brief of issue 18): a FLOP ratio (both phases), tokens
 * read per decode step, or a ratio of K/V bytes read (decode). Each kind has its measure of a
 * ledger, and the solver fits a knob to whichever the cell asks for. */
enum ab_budget_kind { AB_BUDGET_FLOPS = 0, AB_BUDGET_TOKENS = 1, AB_BUDGET_BYTES = 2 };

/* "flops", "tokens", "bytes". */
const char *ab_budget_kind_name(int kind);

/* Dense K/V bytes of the phase: 4 (d + d_v) per allowed cell (ab_ledger_attend's convention of
 * float K and V rows read once per cell). */
double ab_problem_dense_bytes(const struct ab_problem *p);

/* Tokens read per decode step: cells / m, m = n - q0 the decode queries of the phase (the mean
 * number of keys a decode query attends to: the cache size of an eviction method). NaN in
 * prefill. */
double ab_ledger_tokens_step(const struct ab_ledger *l, const struct ab_problem *p);

/* bytes_kv / the dense bytes of the phase (ab_problem_dense_bytes). */
double ab_ledger_bytes_ratio(const struct ab_ledger *l, const struct ab_problem *p);

/* The measure of kind on a ledger: ab_ledger_ratio, ab_ledger_tokens_step or
 * ab_ledger_bytes_ratio. */
double ab_ledger_measure(int kind, const struct ab_ledger *l, const struct ab_problem *p);

/* The per-layer budget rules (--layer-budget): the target of layer l is the budget times w_l,
 * weights of mean 1 over the layers. */
enum ab_layer_rule { AB_LAYER_UNIFORM = 0, AB_LAYER_PYRAMID = 1, AB_LAYER_GIVEN = 2 };

/* The weights of a rule for n_layer layers into w (n_layer): uniform 1; pyramid PyramidKV's
 * linear decrease with depth, w_l = 1.5 - l / (n_layer - 1) (1.5 at layer 0 down to 0.5 at the
 * last; 1 for a single layer); given: the n_given weights (positive) normalised to mean 1.
 * AB_OK, or AB_E_USAGE when n_given != n_layer (the message says both counts; the caller
 * names the workload). */
int ab_layer_weights(int rule, const double *given, int64_t n_given, int64_t n_layer, double *w);

/* The target of a layer of weight wl under a budget of kind and value b: b wl, clipped to 1 for
 * a FLOP or bytes ratio (a ratio above 1 would ask for more than dense). */
double ab_layer_target(int kind, double b, double wl);

/* Why m cannot reach target on p, in a few words, from led, the smallest knob's ledger (its
 * ratio is above target): the term that alone exceeds the target ("one-off selection alone
 * 0.504 of dense (over G = 64)", "selection alone 0.3 of dense"), else "smallest knob (k = 1)
 * 0.199", or "fixed cost 1.2 of dense" for a method without a knob. */
void ab_budget_reason(const struct ab_method *m, const struct ab_problem *p, double target,
                      const struct ab_ledger *led, char *buf, size_t cap);

/* The cost of m at knob on p: cost() when the method is analytic, else a selection-only run
 * (run with o == NULL, into a keep set allocated for the call). Here and below p is prepared
 * for m (ab_problem_prepare, method.h) by the caller, once for all its calls on p. */
int ab_method_cost(const struct ab_method *m, const struct ab_problem *p, double knob,
                   struct ab_ledger *led);

/* Fits the knob of m on p to a target FLOP ratio: the knob with the largest cost not above
 * target (bisection on the knob; integer knobs exactly, real knobs to 1e-4 of their range;
 * data-dependent methods with at most 24 selection-only runs). The cell meets its budget
 * (*feasible = 1) when that knob exists: the achieved ratio is at most the target, however far
 * below (an integer knob may land well under it); *knob is NaN and *feasible 0 when even the
 * smallest knob costs more (then *led holds that smallest cost). Methods without a knob:
 * *knob = NaN, feasible when their fixed cost is not above target. The runs share one keep set
 * allocated for the fit. AB_OK or an error from the method. */
int ab_budget_fit(const struct ab_method *m, const struct ab_problem *p, double target,
                  double *knob, struct ab_ledger *led, int *feasible);

/* The same fit to a budget of any kind: the largest knob whose measure of kind
 * (ab_ledger_measure) is not above target, by the same bisection (every measure grows with the
 * knob). ab_budget_fit is the kind AB_BUDGET_FLOPS. */
int ab_budget_fit_kind(const struct ab_method *m, const struct ab_problem *p, int kind,
                       double target, double *knob, struct ab_ledger *led, int *feasible);

/* Why m cannot reach a target of kind on p (the tokens and bytes counterpart of
 * ab_budget_reason, which it calls for FLOPs), from led, the smallest knob's ledger: "keeps
 * every token (1000 per step)", "smallest knob (R = 1) bytes ratio 0.27", "fixed bytes ratio
 * 0.53". */
void ab_budget_reason_kind(const struct ab_method *m, const struct ab_problem *p, int kind,
                           double target, const struct ab_ledger *led, char *buf, size_t cap);

/* How ab_method_apply picks the knob: a direct knob, or the budget solver. */
struct ab_apply_opts {
    int has_knob;  /* 1: run at `knob` instead of fitting a budget */
    double knob;
    int kind;      /* enum ab_budget_kind of the target (0: a FLOP ratio) */
};

/* What ab_method_apply did. */
struct ab_applied {
    double knob;          /* the knob used; NaN when the method has none or none fits */
    int feasible;         /* achieved ratio at most the target (see budget_fit) */
    int ran;              /* 1 exactly when feasible: infeasible cells are not run */
    struct ab_ledger led; /* the phase's ledger (of the smallest knob when ran == 0) */
    char reason[96];      /* why the cell is infeasible (ab_budget_reason), "" when it is not */
    double time_s;        /* wall time of the run */
};

/* Applies m to p at a target (a FLOP ratio, or the measure o->kind says; NaN: no budget, as a
 * direct --knob run): fits the knob with ab_budget_fit_kind (direct knobs run at their knob;
 * methods flagged AB_METHOD_FIXED run at knob.def under FLOP budgets, and under a tokens or
 * bytes budget too when the measure does not move between their smallest and largest knob,
 * else they are fitted like any other row), then runs it when the cell is feasible (an infeasible cell runs nothing and
 * carries no output: res->ran = 0 and res->reason says why), writing O of the evaluated rows to out (n_rows, d_v), the
 * kept set to keep (the caller's (n_rows, n_k) set for p, never NULL: run() always gets one,
 * meaningful for selection methods) and, when m has a
 * distribution, that distribution to dist (n_rows, n_k), which must then be non-NULL. A method
 * that exports its distribution and an analytic cost is evaluated as O = Ã V. The sweep and
 * eval-model both apply methods through here. AB_OK or the method's error. */
int ab_method_apply(const struct ab_method *m, const struct ab_problem *p, double target,
                    const struct ab_apply_opts *o, float *out, struct ab_keep *keep, float *dist,
                    struct ab_applied *res);

/* The model-level fit of a method flagged AB_METHOD_MODEL: the knob whose workload cost (the
 * sum over every head of mv of the amortised cost of ab_ledger_ratio, over the sum of their
 * dense FLOPs) is the largest not above target, by the same bisection as ab_budget_fit; *plan
 * is the method's plan at that knob (NULL without a plan function; free it with the method's
 * plan_free), *ratio the workload ratio reached, *feasible 1 when a knob fits. *knob is NaN
 * (and *plan NULL) when even the smallest knob costs too much; *ratio is then the smallest
 * knob's. Every problem of mv is prepared for m (plan() may read their states). Heads are
 * costed in parallel (OpenMP, BLAS serial inside). */
int ab_budget_fit_model(const struct ab_method *m, const struct ab_model_view *mv,
                        double target, double *knob, void **plan, double *ratio, int *feasible);
/* The same fit to a workload budget of any kind: FLOPs as above; tokens: the sum of every
 * head's cells over (heads x m); bytes: the sum of bytes_kv over the sum of dense bytes.
 * *ratio is the workload's measure of that kind. */
int ab_budget_fit_model_kind(const struct ab_method *m, const struct ab_model_view *mv, int kind,
                             double target, double *knob, void **plan, double *ratio,
                             int *feasible);

/* The exact side of one (head, phase): evaluated rows, their reference outputs and their exact
 * attention rows, computed once and shared by every method and budget. */
struct ab_exact {
    int64_t n_rows, n_k, d_v;
    double *o;   /* (n_rows, d_v) exact outputs */
    float *a;    /* (n_rows, n_k) exact attention rows (zero past each row's visible keys) */
    /* the top_k largest entries of each row, largest first (n_top[r] <= top_k of them), found
     * once for every method's topk_recall; NULL in a hand-built ab_exact: found per call */
    int64_t top_k, *top, *n_top; /* (n_rows, top_k), (n_rows) */
};
/* The exact side of problem p: O, the attention rows and their topk largest entries (topk <=
 * 64; 0: none kept). */
int ab_exact_compute(const struct ab_problem *p, int64_t topk, struct ab_exact *ex);
void ab_exact_free(struct ab_exact *ex);

/* Accuracy of one method output against the exact side (metrics.md). */
struct ab_metrics {
    double rel_l2, cos_mean, cos_min, max_abs;
    double recall, topk_recall, kl; /* NaN without a keep set */
};

/* rel_l2 = ||O~ - O||_F / ||O||_F from its two sums, err2 = sum (o~ - o)^2 and ref2 = sum o^2
 * (metrics.md). When the reference vanishes: 0 if the error does too, +inf otherwise; NaN in
 * either sum gives NaN. The one definition `run`, `eval-model` and `verify` report. */
double ab_rel_l2(double err2, double ref2);

/* o is the method's (n_rows, d_v) output; keep may be NULL (no selection). kl is KL(Ã ‖ A) =
 * -ln(recall) per row for a renormalised selection (KL(A ‖ Ã) is infinite whenever a key with
 * mass is dropped), averaged over rows. topk: k of topk_recall (16). */
void ab_metrics_compute(const struct ab_exact *ex, const float *o, const struct ab_keep *keep,
                        int64_t topk, struct ab_metrics *out);

/* mean_i KL(A_i || Ã_i) (natural log) of a method's distribution dist (n_rows, n_k) against
 * the exact rows: +inf when Ã drops a key with exact mass. */
double ab_metrics_kl(const struct ab_exact *ex, const float *dist);

/* Task accuracy of an output on the tasks of one head: fractions solved overall and per kind
 * (NaN where the head has no task query of that kind among rows). */
struct ab_task_acc {
    double all, by_kind[3];
    int64_t n, n_kind[3];
};
void ab_task_accuracy(const struct ab_workload *w, int64_t layer, int64_t head,
                      const int64_t *rows, int64_t n_rows, const float *o, struct ab_task_acc *out);

struct ab_sweep_opts {
    const struct ab_method **methods; /* (n_methods) */
    int n_methods;
    const double *targets;  /* (n_targets) target FLOP ratios in (0, 1] (may be none) */
    int n_targets;
    const double *kv_tokens;   /* (n_kv_tokens) decode budgets: tokens per step, >= 1 */
    int n_kv_tokens;
    const double *kv_bytes;    /* (n_kv_bytes) decode budgets: bytes ratios in (0, 1] */
    int n_kv_bytes;
    int layer_rule;            /* enum ab_layer_rule (0: uniform) */
    const double *layer_given; /* (n_layer_given) AB_LAYER_GIVEN's weights as given */
    int64_t n_layer_given;
    unsigned phases;        /* AB_PHASE_* bits */
    int64_t decode_m;       /* decode queries m (default 64) */
    int64_t horizon;        /* decode horizon G >= m: one-off work is amortised over G steps
                               (default AB_DECODE_HORIZON) */
    int64_t max_rows;       /* prefill: evaluate all rows up to this many, else a seeded sample
                               of this many plus every task row (default 256) */
    int64_t topk;           /* k of topk_recall (16) */
    int has_knob;           /* 1: run every method at knob_value instead of solving budgets */
    double knob_value;
    uint64_t seed;
    /* progress: called from the calling thread with cells done / total (of the selected
       heads) */
    void (*progress)(void *user, int64_t done, int64_t total);
    void *progress_user;
    /* Unit selection (resume, shards, MPI ranks; lib/run/shard.h): units[layer * n_head + head]
       non-zero marks a head to compute, NULL every head. A head not selected produces no cells
       and no progress; a workload with no selected head is skipped whole (no model-level fit).
       The model-level fits (prefit) always run over every head of the workload, so a selected
       head's cells are the ones a full sweep gives it. */
    const unsigned char *units;
    /* Called once per computed head with its cells in the table's order (phase, method,
       target), as heads finish (not in head order), one call at a time (serialised by the
       sweep), from whichever thread ran the head: no HDF5 in it. The cells and their strings
       are valid only during the call. A non-zero return (an AB_E_* code, message set with
       ab_fail) stops the sweep: heads not started are skipped and the sweep returns it. NULL:
       none. */
    int (*on_head)(void *user, int64_t layer, int64_t head, const struct ab_cell *cells,
                   int64_t n);
    void *on_head_user;
};
void ab_sweep_defaults(struct ab_sweep_opts *o);

/* Number of (layer, head, phase, method, target) cells the sweep of w will produce. */
int64_t ab_sweep_count(const struct ab_workload *w, const struct ab_sweep_opts *o);

/* Cells of one (layer, head) of w: ab_sweep_count(w, o) / (n_layer * n_head). */
int64_t ab_sweep_count_head(const struct ab_workload *w, const struct ab_sweep_opts *o);

/* Runs the sweep on workload w (named `name` in the table) and appends its cells to res (NULL:
 * the cells go to o->on_head only), in a fixed order (layer, head, phase, method, target)
 * whatever the thread count, over the heads o->units selects (every head when NULL). Parallel
 * over heads with OpenMP (BLAS serial inside). AB_OK or the first error (by head index; an
 * error of on_head is returned as it came). */
int ab_sweep_workload(const struct ab_workload *w, const char *name,
                      const struct ab_sweep_opts *o, struct ab_results *res);

/* The outputs of a method computed elsewhere (`attnbench ingest`, lib/run/ingest.h) for every
 * (layer, query head) of a workload in one phase, at n_budget budgets: the rows of the phase
 * (R = n in prefill, m = decode_m in decode), the declared cost of the phase per head and,
 * optionally, the kept masks. Arrays are C order; (b, l, h) indexes (n_budget, n_layer, n_head). */
struct ab_external {
    const char *method, *family; /* the cells' method and family columns */
    const char *knob_name;       /* "" or NULL: none */
    int phase;                   /* AB_PHASE_PREFILL or AB_PHASE_DECODE */
    int64_t n_budget, n_rows_out;
    const float *o;              /* (n_budget, n_layer, n_head, R, d_v) outputs */
    const unsigned char *keep;   /* (n_budget, n_layer, n_head, R, n) 0 / 1, or NULL */
    const double *flops;         /* (n_budget, n_layer, n_head) FLOPs of the whole phase */
    const double *bytes_kv;      /* (n_budget, n_layer, n_head), or NULL (NaN) */
    const double *target;        /* (n_budget) the target each budget aimed at, or NULL: a
                                    cell's target is its achieved ratio */
    const double *knob;          /* (n_budget), or NULL (NaN) */
};

/* Appends to res the cells of an external method on workload w (named `name`), one per
 * (layer, head, budget) in that order, measured exactly as the sweep measures a built-in
 * cell: the same evaluated rows (o's decode_m, max_rows, seed), the same exact side and
 * metrics (topk), the same task accuracy, and the cost columns from the ledger {flops_attend =
 * the declared FLOPs (flops_select = flops_once = 0), bytes_kv, cells = kept cells of every
 * row of the phase (NaN without masks), ops_other NaN}. A cell whose declared ratio is above
 * its target is infeasible (no metrics, a reason), as the budget solver decides it; time_s is
 * NaN. The caller has checked the shapes and values of x against w. AB_OK, AB_E_DATA (R is
 * not the phase's row count), AB_E_USAGE (decode_m out of range), AB_E_NOMEM. */
int ab_sweep_external(const struct ab_workload *w, const char *name,
                      const struct ab_sweep_opts *o, const struct ab_external *x,
                      struct ab_results *res);

#endif
