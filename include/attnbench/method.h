/* attnbench/method.h - the public method ABI of attnbench: everything a method row is and may
 * call, for the rows built into the tool (lib/methods/) and for plugins loaded at run time with
 * `--plugin PATH.so` (plugins/README.md is the one-page guide).
 *
 * Versioned: AB_PLUGIN_ABI changes whenever a struct below changes layout or a function below
 * changes meaning; a plugin records the number it was built against (AB_PLUGIN below) and the
 * tool refuses any other. The functions declared here are exported by the attnbench executable
 * (a plugin leaves them undefined and the loader resolves them); a plugin needs no library.
 * Self-contained: C17, <stddef.h> and <stdint.h> only. */
#ifndef ATTNBENCH_METHOD_H
#define ATTNBENCH_METHOD_H

#include <stddef.h>
#include <stdint.h>

/* The ABI this header describes. 1: attnbench 0.1 (issue 18). */
#define AB_PLUGIN_ABI 1

/* ---- status codes and the error detail ---- */

enum ab_status {
    AB_OK = 0,
    AB_E_USAGE = -1,    /* bad option or argument value (exit 64) */
    AB_E_DATA = -2,     /* bad input data: malformed, wrong schema, wrong shape, NaN (exit 65) */
    AB_E_NOFILE = -3,   /* input file missing (exit 66) */
    AB_E_TOOBIG = -4,   /* the request cannot fit in this machine's memory (exit 65) */
    AB_E_NOMEM = -5,    /* an allocation failed: like TOOBIG, the input asks too much (exit 65) */
    AB_E_INTERNAL = -6, /* a bug or a library failure we cannot attribute to input (exit 70) */
    AB_E_CREATE = -7,   /* cannot create an output file (exit 73) */
    AB_E_IO = -8,       /* read or write failed (exit 74) */
    AB_E_NOTOOL = -9,   /* an external program (gnuplot) is missing (exit 69) */
};

/* Short name of a status code ("bad input data"). Never NULL. */
const char *ab_strerror(int code);

/* Records a one-line, printf-formatted detail for the calling thread and returns code, so a
 * failure reads `return ab_fail(AB_E_DATA, "'%s': truncated", path);`. The arguments may
 * include ab_errmsg() to prefix a detail passed on: ab_fail(rc, "'%s': %s", path, ab_errmsg()). */
int ab_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last detail set by ab_fail ("" if none). Valid until the next ab_fail. */
const char *ab_errmsg(void);

/* ---- a head instance ---- */

/* A head instance is Q (n_q x d), K (n_k x d), V (n_k x d_v) with the absolute position of
 * every query and key row and a mask kind. Under the causal mask query i sees key j iff
 * k_pos[j] <= q_pos[i]; under the full mask it sees every key. Positions are non-decreasing. */
enum ab_mask { AB_MASK_CAUSAL = 0, AB_MASK_FULL = 1 };

struct ab_head {
    int64_t n_q, n_k, d, d_v;
    const float *q;       /* (n_q, d) row-major, row stride d */
    const float *k;       /* (n_k, d) */
    const float *v;       /* (n_k, d_v) */
    const int32_t *q_pos; /* (n_q) absolute position of each query row */
    const int32_t *k_pos; /* (n_k) absolute position of each key row */
    int mask;             /* enum ab_mask */
    double scale;         /* logit scale, usually 1/sqrt(d) */
    double rope_theta;    /* > 0: apply RoPE to q and k at their positions first; 0: inputs are
                             already rotated (workload files store post-RoPE Q and K) */
};

/* Number of keys query row i can see (the keys are 0 .. count-1, positions being sorted). */
int64_t ab_head_visible(const struct ab_head *h, int64_t i);

/* ---- methods ---- */

/* The method interface (architecture.md, "The method interface" and "Cost model").
 *
 * A method is one row: a struct ab_method with its name, family, phases, masks, knob, cost and
 * run functions, built into the registry (lib/methods/registry.c) or loaded from a plugin.
 * Methods never see the engine: they get a problem (one head instance plus the phase, the
 * evaluated rows and the other heads of its layer), a knob value, and return O for the
 * evaluated rows, what they kept (selection methods), and a ledger of what they computed. The
 * engine owns budgets, reference attention and metrics.
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
    AB_METHOD_LOSSY = 512, /* reads K and V through a lossy (quantized) cache: O is exact
                              attention over the dequantized cache, so constant V is a fixed
                              point only to the quantization step (KIVI, int8) */
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

/* ---- plugins ---- */

/* What a plugin exports: one object named `attnbench_plugin` (write it with AB_PLUGIN). `abi`
 * stays the first member in every version, so the tool can read it before trusting the rest.
 * The rows must stay valid while the process runs (static storage); their names must not clash
 * with built-in rows or rows of another loaded plugin. */
struct ab_plugin {
    int abi;                                /* AB_PLUGIN_ABI the plugin was compiled against */
    uint32_t method_size;                   /* sizeof(struct ab_method) then */
    const char *name;                       /* the plugin's name, for messages */
    const struct ab_method *const *methods; /* its rows, NULL-terminated */
};

/* In one file of the plugin: AB_PLUGIN("my-plugin", &my_row, &my_other_row); */
#define AB_PLUGIN(NAME, ...)                                                                       \
    __attribute__((visibility("default"))) const struct ab_plugin attnbench_plugin = {           \
        AB_PLUGIN_ABI, (uint32_t)sizeof(struct ab_method), NAME,                                   \
        (const struct ab_method *const[]){__VA_ARGS__, NULL}}

#endif
