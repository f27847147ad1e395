/* method.h - the method interface (architecture.md, "The method interface" and "Cost model").
 *
 * A method is one row of the static table in registry.c: its name, family, phases, masks, knob,
 * cost and run functions. Methods never see the engine: they get a problem (one head instance
 * plus the phase, the evaluated rows and the other heads of its layer), a knob value, and return
 * O for the evaluated rows, what they kept (selection methods), and a ledger of what they
 * computed. The engine owns budgets, reference attention and metrics.
 *
 * Conventions for every method:
 * - the phase's queries are rows q0 .. n-1 of the head (prefill: q0 = 0; decode: q0 = n - m);
 *   every query may see keys with k_pos <= q_pos (causal) or all keys (full mask);
 * - decode: a method that compresses or selects the cache decides from the context only
 *   (rows < q0: their queries, keys and values), never from the decode queries; the decode
 *   queries then read what was kept plus the decode tokens' own keys; stateful policies (h2o,
 *   tova) step through the decode queries in order;
 * - the ledger counts the whole phase (every query row q0..n-1), not only the evaluated rows;
 *   O is written only for the evaluated rows;
 * - selection methods renormalise softmax over what they kept (exact attention restricted to the
 *   kept set); forced tokens (sinks, window, diagonal block) count against the budget;
 * - Q and K are post-RoPE: problems have h->rope_theta == 0 (workload files store rotated Q and
 *   K, and the engine asserts it), so methods and ab_attend_kept never rotate.
 *
 * What the engine does for every method (the sweep, the budget solver, the end-to-end engine,
 * kept maps, the benchmarks; tests do the same):
 * - prepare: a row with a prepare() has it called once per (head instance, phase), through
 *   ab_problem_prepare, before any cost / run / dist call on that problem; the state is the
 *   work on the problem that does not depend on the knob (block scores, clusters, a probe, an
 *   index), the engine owns it (cost, run and dist read it from p->prep, never change it) and
 *   frees it with prepare_free (ab_problem_unprepare) after the last call. The solver's
 *   bisection and the sweep's budgets then reuse it at every knob; the ledger still counts
 *   that work in every run (prepare saves wall time only, never a FLOP);
 * - keep: run() always gets a keep set of (n_rows, n_k) bits, cleared by the engine before the
 *   call, also when the caller wants no selection back (the solver's o == NULL runs): methods
 *   never allocate one of their own. o == NULL still asks for the selection and the ledger
 *   only. */
#ifndef AB_METHODS_METHOD_H
#define AB_METHODS_METHOD_H

#include <stdint.h>

#include "attn/attn.h"

enum ab_phase { AB_PHASE_PREFILL = 1, AB_PHASE_DECODE = 2 };
enum ab_mask_bit { AB_MASKS_CAUSAL = 1 << AB_MASK_CAUSAL, AB_MASKS_FULL = 1 << AB_MASK_FULL };

/* The cost ledger (FFTW's operation counter): separate counts, never folded together. */
struct ab_ledger {
    double flops_attend; /* 2 per multiply-add of attention actually computed: (2d + 2d_v) per
                            kept cell, plus feature-map / state matmuls of linear methods */
    double flops_select; /* the same for work deciding what to keep, done per query (prefill:
                            the whole phase's; decode: per step, e.g. Quest's page scores) */
    double flops_once;   /* decode only: work done once on the context at the end of prefill
                            (SnapKV's window logits, a k-means index, a calibration probe):
                            amortised over the decode horizon G, not over the m evaluated
                            queries (architecture.md, "Phases and the decode protocol") */
    double ops_other;    /* exp, compare, sort / top-k element operations (counted, not FLOPs) */
    double bytes_kv;     /* bytes of K and V read */
    double cells;        /* kept (query, key) cells */
};

void ab_ledger_add(struct ab_ledger *to, const struct ab_ledger *x);
/* Adds `cells` kept cells of attention on head h: cells, (2d + 2d_v) FLOPs and 4(d + d_v) bytes
 * each (float K and V rows read once per cell: the no-reuse upper bound decode is bound by). */
void ab_ledger_attend(struct ab_ledger *l, const struct ab_head *h, double cells);

/* What a selection method kept: one bit per (evaluated row, key). */
struct ab_keep {
    int64_t n_rows, n_k, words; /* words = 64-bit words per row */
    uint64_t *bits;             /* (n_rows, words) */
};

int ab_keep_alloc(struct ab_keep *k, int64_t n_rows, int64_t n_k);
void ab_keep_free(struct ab_keep *k);
void ab_keep_clear(struct ab_keep *k);
static inline void ab_keep_set(struct ab_keep *k, int64_t r, int64_t j)
{
    k->bits[r * k->words + (j >> 6)] |= (uint64_t)1 << (j & 63);
}
static inline int ab_keep_has(const struct ab_keep *k, int64_t r, int64_t j)
{
    return (int)(k->bits[r * k->words + (j >> 6)] >> (j & 63) & 1);
}
/* Sets keys [j0, j1) of row r (clipped to [0, n_k)). */
void ab_keep_range(struct ab_keep *k, int64_t r, int64_t j0, int64_t j1);
/* Number of keys kept in row r. */
int64_t ab_keep_count(const struct ab_keep *k, int64_t r);

/* One head instance in one phase, as a method sees it. */
struct ab_problem {
    const struct ab_head *h; /* this head: all n rows of the sequence (n_q == n_k == n) */
    int phase;               /* AB_PHASE_PREFILL or AB_PHASE_DECODE */
    int64_t q0;              /* first query row of the phase: 0, or n - m in decode */
    const int64_t *rows;     /* (n_rows) evaluated query rows, ascending, all >= q0 */
    int64_t n_rows;
    const struct ab_head *layer; /* (n_layer_heads) every query head of this layer, same shapes */
    int64_t n_layer_heads, self; /* h == &layer[self] */
    int64_t group;               /* query heads per kv head (GQA): heads g*group .. share K, V */
    uint64_t seed;               /* for seeded methods */
    /* where this head sits in the workload, and (AB_METHOD_MODEL methods) the plan the method
     * made over every head for this phase and knob (NULL when it has no plan function) */
    int64_t layer_index, n_layer;
    const void *plan;
    /* decode: the horizon G, generated tokens the one-off work (flops_once) is spread over; the
     * m = n - q0 phase queries stand for those G steps. <= 0 means AB_DECODE_HORIZON. */
    int64_t horizon;
    /* the state the method's prepare() made for this problem (ab_problem_prepare), read-only
     * to the method; NULL when the row has no prepare */
    const void *prep;
};

/* The default decode horizon G: a generation of 1024 tokens from one compressed cache. */
#define AB_DECODE_HORIZON 1024

/* Every head instance of a workload in one phase: what a method flagged AB_METHOD_MODEL plans
 * over. problems[l * n_head + h] is head h of layer l, each with its layer array, rows and
 * layer_index set (plan NULL); all share the phase, q0 and rows. */
struct ab_model_view {
    const struct ab_problem *problems; /* (n_layer * n_head) */
    int64_t n_layer, n_head;
    uint64_t seed;
};

/* The decode horizon of p (p->horizon, or AB_DECODE_HORIZON when unset). */
int64_t ab_problem_horizon(const struct ab_problem *p);

/* Dense FLOPs of the phase: (2d + 2d_v) per allowed cell over the query rows q0..n-1. */
double ab_problem_dense_flops(const struct ab_problem *p);
/* Allowed cells of the phase. */
double ab_problem_allowed_cells(const struct ab_problem *p);

/* Exact attention of each evaluated row restricted to its kept keys (and to the mask), in float
 * with a double accumulator: o is (n_rows, d_v). Rows with nothing kept get O = 0. Adds the
 * number of cells it computed to *computed (the test battery checks the ledger against it).
 * Does not touch the ledger: methods count the whole phase themselves. AB_OK, or AB_E_NOMEM
 * when one row's scratch (O(n_k)) cannot be allocated (o is then left unwritten). */
int ab_attend_kept(const struct ab_problem *p, const struct ab_keep *keep, float *o,
                   double *computed);

/* Cells of attention actually computed by the calling thread since the last take: added by
 * ab_attend_kept and by methods that compute attention their own way (dense's fast path), so
 * the test battery can check every ledger against the work really done. */
void ab_attend_counter_add(double cells);
double ab_attend_counter_take(void);

/* Families, phase and mask sets, knob. */
enum ab_family {
    AB_FAMILY_DENSE,
    AB_FAMILY_STATIC,
    AB_FAMILY_DYNAMIC,
    AB_FAMILY_KV,
    AB_FAMILY_LINEAR,
    AB_FAMILY_CALIBRATION,
};
const char *ab_family_name(int family);

struct ab_knob {
    const char *name; /* NULL: the method has no knob (fixed cost) */
    double lo, hi;    /* range; hi <= 0 means "the number of keys n" */
    int integer;      /* 1: integer values */
    double def;       /* default value (for --knob-less runs of a single method) */
    const char *unit; /* "tokens", "blocks", "fraction", ... */
};

enum ab_method_flags {
    AB_METHOD_SELECTS = 1,  /* fills struct ab_keep: recall and masks are defined */
    AB_METHOD_ORACLE = 2,   /* reads the exact map; its selection cost is not counted */
    AB_METHOD_ANALYTIC = 4, /* cost() is exact and cheap: the solver bisects on it alone */
    AB_METHOD_LAYER = 8,    /* reads other heads of the layer (p->layer) */
    AB_METHOD_FIXED = 16,   /* the knob shapes the result, not the cost (calibration: cost ratio
                               1 at every knob): the engine runs it once per cell at knob.def
                               (or --knob) instead of solving budgets */
    AB_METHOD_UNNORMALISED = 32, /* rows of its distribution may sum to less than 1 (a sink
                                    logit): constant V is not a fixed point */
    AB_METHOD_MODEL = 64, /* decides across heads and layers (per-layer budgets, positions shared
                             across layers, head assignment): its knob is a workload-level
                             budget, fitted on the sum of every head's cost; plan() (optional)
                             runs once per (workload, phase, knob) over every head, and each
                             head's cost() / run() reads it from p->plan */
    AB_METHOD_OPERATOR = 128, /* a different attention operator, not an approximation of softmax
                                 attention (decayed linear attention, sigmoid, softplus, delta
                                 rule): its accuracy against dense measures how far the operator
                                 is from softmax, and `methods` and the report say so; its
                                 convention (decay, bias, temperature) is in `convention` and
                                 recorded with the results */
    AB_METHOD_PREP_FREE = 256, /* prepare()'s work is what the model computes anyway (H2O's
                                  context scores are prefill's own probabilities): `bench
                                  methods` prepares once and times run() alone; without this
                                  flag each timed selection includes a fresh prepare() */
};

struct ab_method {
    const char *name;     /* [a-z0-9-]+, unique */
    int family;           /* enum ab_family */
    const char *summary;  /* one line */
    const char *citation; /* paper and arXiv id */
    const char *cost_words; /* the FLOP formula in words */
    const char *convention; /* parameters fixed by convention that a reader needs to interpret
                               the numbers (decay per head, bias, temperature), or NULL */
    unsigned phases;      /* AB_PHASE_* bits */
    unsigned masks;       /* AB_MASKS_* bits */
    struct ab_knob knob;
    unsigned flags;       /* enum ab_method_flags */
    /* Ledger of the phase at this knob without running (AB_METHOD_ANALYTIC only; else NULL). */
    int (*cost)(const struct ab_problem *p, double knob, struct ab_ledger *led);
    /* Runs the method: O of the evaluated rows into o (n_rows, d_v), what it kept into keep
     * (never NULL: the engine's (n_rows, n_k) set, cleared; methods that select nothing leave
     * it alone), the ledger of the whole phase into led. o == NULL asks for the selection and
     * the ledger only (the solver's data-dependent bisection). AB_OK or an AB_E_* code. */
    int (*run)(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
               struct ab_ledger *led);
    /* Optional: the method's attention distribution Ã of each evaluated row over the keys,
     * a (n_rows, n_k) row-major, zero past each row's visible keys (a row may sum to less than
     * 1 when the method parks mass outside the keys, as a sink logit does). Methods that change
     * the distribution rather than select (calibration) provide it; the engine then reports
     * kl = mean_i KL(A_i || Ã_i). NULL otherwise. */
    int (*dist)(const struct ab_problem *p, double knob, float *a);
    /* AB_METHOD_MODEL only (may be NULL when the layer index is all it needs): the decisions
     * across heads at this knob, into *plan (owned by the method; freed with plan_free). */
    int (*plan)(const struct ab_model_view *mv, double knob, void **plan);
    void (*plan_free)(void *plan);
    /* Optional: the knob-independent work on problem p (the header comment's "prepare"),
     * called once per (head instance, phase) before any cost / run / dist call on p, and for
     * AB_METHOD_MODEL rows on every problem of the view before plan(), which may read them.
     * Its state into *state: never NULL on AB_OK (an empty state is a state), owned by the
     * engine from then on and freed with prepare_free after the last call on p. It depends on
     * the problem alone (not on the knob, the plan or the call order), so rows with the same
     * prepare (and prepare_free) may share one state per problem, as the sweep does for act and
     * redistribute; memory O(what the method would recompute per call). AB_OK or an AB_E_*
     * code (*state NULL then). Both NULL when the method has nothing to prepare. */
    int (*prepare)(const struct ab_problem *p, void **state);
    void (*prepare_free)(void *state);
};

/* The registry (registry.c): every method, in catalogue order; every reader goes through these
 * two, so rows that are not compiled in (plugins, issue 18) can join the built-in table.
 * ab_method_at(i) for i in [0, ab_method_count()), NULL outside. */
int ab_method_count(void);
const struct ab_method *ab_method_at(int i);
const struct ab_method *ab_method_find(const char *name); /* NULL if unknown */

/* The rows named by the comma list (registry names, each once), each checked to have one of
 * the phases (and, with causal, the causal mask), into out[0..*n); list NULL means every row
 * with one of the phases (and the mask). AB_OK, or AB_E_USAGE naming the first bad name (with
 * a did-you-mean for a typo). */
int ab_methods_resolve(const char *list, unsigned phases, int causal,
                       const struct ab_method **out, int cap, int *n);

/* AB_PHASE_* bits of a checked phase list ("prefill", "decode", "prefill,decode"; a declared
 * option's value); 0 for NULL or "". */
unsigned ab_phases_parse(const char *list);

/* --knob NAME=V for methods m[0..n): *value, after checking that every row with a knob calls
 * it NAME. AB_OK, or AB_E_USAGE naming the problem. */
int ab_methods_knob(const char *knob, const struct ab_method *const *m, int n, double *value);

/* The engine's side of prepare (the header comment): m->prepare's state of p into p->prep,
 * NULL when m has no prepare. Once per (head instance, phase), before any cost / run / dist call
 * on p; ab_problem_unprepare after the last. AB_OK or the prepare's error (p->prep NULL then). */
int ab_problem_prepare(const struct ab_method *m, struct ab_problem *p);
/* Frees p->prep with m->prepare_free and sets it to NULL (nothing when it is NULL). */
void ab_problem_unprepare(const struct ab_method *m, struct ab_problem *p);

/* The knob range on problem p (resolving hi <= 0 to n). */
void ab_method_knob_range(const struct ab_method *m, const struct ab_problem *p, double *lo,
                          double *hi);

#endif
