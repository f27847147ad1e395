/* sweep.c - the sweep engine: every (layer, head) x phase x method x budget cell of a workload
 * (architecture.md, "Threads and scale"). Head instances are independent, so OpenMP runs them in
 * parallel (BLAS serial inside) and the cells are appended afterwards in a fixed order: the same
 * seed gives the same table whatever the thread count. */
#include <assert.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "eval/eval.h"
#include "eval/metric.h"

static const double default_targets[] = {1.0 / 2, 1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32};

void ab_sweep_defaults(struct ab_sweep_opts *o)
{
    *o = (struct ab_sweep_opts){.targets = default_targets,
                                .n_targets = 5,
                                .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
                                .decode_m = 64,
                                .horizon = AB_DECODE_HORIZON,
                                .max_rows = 256,
                                .topk = 16,
                                .seed = 1};
}

static int method_applies(const struct ab_method *m, const struct ab_workload *w, int phase)
{
    unsigned mask = w->causal ? AB_MASKS_CAUSAL : AB_MASKS_FULL;
    return (m->phases & (unsigned)phase) && (m->masks & mask);
}

/* One budget a cell meets: its kind (enum ab_budget_kind), its value (a FLOP or bytes ratio,
 * tokens per step; NaN for a direct --knob run) and its index among the run's budgets (the FLOP
 * targets, then the tokens budgets, then the bytes budgets), which indexes the model fits. */
struct budget {
    int kind;
    double value;
    int index;
};

enum { MAX_BUDGETS = 3 * 64 + 1 };

/* Budgets of the run, all kinds (at least 1: the model fits' stride). */
static int n_budgets(const struct ab_sweep_opts *o)
{
    int n = o->n_targets + o->n_kv_tokens + o->n_kv_bytes;
    return n > 0 ? n : 1;
}

/* The budgets m is swept at in a phase, one cell each, into b (MAX_BUDGETS): a direct --knob
 * run, one cell; FLOP targets: one per target, or one at the fixed cost (target 1) for a
 * knob-less method or a FIXED one, whose knob does not move its FLOPs; decode: every tokens and
 * bytes budget too, whatever the method (it meets them or says why not). Prefill has only the
 * FLOP targets: with none given, a method has no prefill cells. */
static int budgets_of(const struct ab_method *m, const struct ab_sweep_opts *o, int phase,
                      struct budget *b)
{
    int n = 0;
    if (o->has_knob) {
        b[0] = (struct budget){AB_BUDGET_FLOPS, m->knob.name ? NAN : 1.0, 0};
        return 1;
    }
    if (m->knob.name && !(m->flags & AB_METHOD_FIXED))
        for (int t = 0; t < o->n_targets; t++)
            b[n++] = (struct budget){AB_BUDGET_FLOPS, o->targets[t], t};
    else if (o->n_targets > 0)
        b[n++] = (struct budget){AB_BUDGET_FLOPS, 1.0, 0};
    if (phase == AB_PHASE_DECODE) {
        for (int t = 0; t < o->n_kv_tokens; t++)
            b[n++] = (struct budget){AB_BUDGET_TOKENS, o->kv_tokens[t], o->n_targets + t};
        for (int t = 0; t < o->n_kv_bytes; t++)
            b[n++] = (struct budget){AB_BUDGET_BYTES, o->kv_bytes[t],
                                     o->n_targets + o->n_kv_tokens + t};
    }
    assert(n <= MAX_BUDGETS);
    return n;
}

/* Cells one method contributes per (head, phase). */
static int cells_of(const struct ab_method *m, const struct ab_sweep_opts *o, int phase)
{
    struct budget b[MAX_BUDGETS];
    return budgets_of(m, o, phase, b);
}

int64_t ab_sweep_count(const struct ab_workload *w, const struct ab_sweep_opts *o)
{
    return ab_sweep_count_head(w, o) * w->n_layer * w->n_head;
}

int64_t ab_sweep_count_head(const struct ab_workload *w, const struct ab_sweep_opts *o)
{
    int64_t per_head = 0;
    for (int phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE; phase <<= 1)
        if (o->phases & (unsigned)phase)
            for (int i = 0; i < o->n_methods; i++)
                if (method_applies(o->methods[i], w, phase))
                    per_head += cells_of(o->methods[i], o, phase);
    return per_head;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The evaluated rows of a phase into rows (capacity n + tasks): decode evaluates every decode
 * query; prefill every row when n <= max_rows, else a seeded sample of max_rows rows (the same
 * for every head, so heads compare on the same queries) plus every task row. Returns the count. */
static int64_t eval_rows(const struct ab_workload *w, int64_t q0, const struct ab_sweep_opts *o,
                         int64_t *rows)
{
    int64_t n = w->n_seq, m = 0;
    if (q0 > 0 || n - q0 <= o->max_rows) {
        for (int64_t i = q0; i < n; i++) rows[m++] = i;
        return m;
    }
    /* partial Fisher-Yates over 0..n-1 */
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n);
    if (!perm) return -1;
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    struct ab_rng r;
    ab_rng_init(&r, o->seed, ab_stream(0x726f7773 /* "rows" */, (uint64_t)n, 0, 0));
    for (int64_t i = 0; i < o->max_rows; i++) {
        int64_t j = i + ab_rng_below(&r, n - i), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
        rows[m++] = perm[i];
    }
    free(perm);
    for (int64_t k = 0; k < w->tasks.n; k++) rows[m++] = w->tasks.row[k];
    qsort(rows, (size_t)m, sizeof(int64_t), cmp_i64);
    int64_t u = 0;
    for (int64_t i = 0; i < m; i++)
        if (u == 0 || rows[i] != rows[u - 1]) rows[u++] = rows[i];
    return u;
}

/* "retrieve+aggregate": the task kinds planted in this head, or "". */
static void task_kinds(const struct ab_workload *w, int64_t layer, int64_t head, char *buf,
                       size_t cap)
{
    int present[3] = {0};
    buf[0] = 0;
    if (!w->tasks.n || !w->tasks.planted[layer * w->n_kv_head + ab_workload_kv_of(w, head)])
        return;
    for (int64_t k = 0; k < w->tasks.n; k++) present[w->tasks.kind[k]] = 1;
    for (int k = 0; k < 3; k++)
        if (present[k]) {
            if (buf[0]) strncat(buf, "+", cap - strlen(buf) - 1);
            strncat(buf, ab_task_kind_name(k), cap - strlen(buf) - 1);
        }
}

/* The cells of one (layer, head), appended to out (*n_out of them). */
struct head_job {
    char kinds[64]; /* the head's task kinds: its cells point here until they are copied */
    struct ab_cell *cells;
    int64_t n;
    int rc;
    char msg[512];
};

/* The problem of (layer, head) in a phase: layer_heads holds the layer's head instances. Every
 * head of every phase gets its own seed stream, the same whatever the thread count. */
static struct ab_problem head_problem(const struct ab_workload *w, const struct ab_sweep_opts *o,
                                      int64_t layer, int64_t head, const struct ab_head *layer_heads,
                                      int phase, int64_t q0, const int64_t *rows, int64_t n_rows)
{
    return (struct ab_problem){.h = &layer_heads[head], .phase = phase, .q0 = q0, .rows = rows,
                               .n_rows = n_rows, .layer = layer_heads,
                               .n_layer_heads = w->n_head, .self = head,
                               .group = w->n_head / w->n_kv_head,
                               .seed = ab_stream(o->seed, (uint64_t)layer, (uint64_t)head, 7),
                               .layer_index = layer, .n_layer = w->n_layer,
                               .horizon = o->horizon};
}

/* The workload-level fit of a method flagged AB_METHOD_MODEL at one (phase, target), made once
 * before the heads run (ab_budget_fit_model) and shared by every head's cell. */
struct model_fit {
    double knob;  /* NaN: not even the smallest knob fits */
    void *plan;
    int feasible; /* a knob fits the workload target */
    double ratio; /* the workload ratio reached (the smallest knob's when none fits) */
};

/* Every accuracy metric of c NaN: not measured (a cell that did not run). */
static void cell_unmeasured(struct ab_cell *c)
{
    for (int k = 0; k < AB_N_METRIC; k++)
        if (ab_metric_is_accuracy(&ab_metrics[k])) {
            assert(!ab_metrics[k].is_int);
            *(double *)((char *)c + ab_metrics[k].offset) = NAN;
        }
}

/* The accuracy columns of c from a method's output out ((p->n_rows, d_v), the evaluated rows
 * of p) against the exact side ex: rel_l2, cos, max_abs, and recall / topk_recall / kl from
 * keep (NULL: no selection, NaN), kl from dist instead when the method has a distribution
 * (NULL: none), task accuracy. Built-in cells (run_cell) and external ones
 * (ab_sweep_external) are measured here alike. */
static void cell_measure(const struct ab_workload *w, const struct ab_problem *p,
                         const struct ab_exact *ex, const float *out, const struct ab_keep *keep,
                         const float *dist, int64_t topk, int64_t layer, int64_t head,
                         struct ab_cell *c)
{
    struct ab_metrics mt;
    ab_metrics_compute(ex, out, keep, topk, &mt);
    c->rel_l2 = mt.rel_l2, c->cos_mean = mt.cos_mean, c->cos_min = mt.cos_min;
    c->max_abs = mt.max_abs, c->recall = mt.recall, c->topk_recall = mt.topk_recall;
    c->kl = mt.kl;
    if (dist) c->kl = ab_metrics_kl(ex, dist);
    struct ab_task_acc ta;
    ab_task_accuracy(w, layer, head, p->rows, p->n_rows, out, &ta);
    c->task_acc = ta.all;
    c->task_acc_retrieve = ta.by_kind[AB_TASK_RETRIEVE];
    c->task_acc_multi_retrieve = ta.by_kind[AB_TASK_MULTI_RETRIEVE];
    c->task_acc_aggregate = ta.by_kind[AB_TASK_AGGREGATE];
}

/* The cost columns of c from the phase's ledger led on p: the ledger, the amortised and
 * per-step ratios, density, sparsity, compression. */
static void cell_cost(const struct ab_ledger *led, const struct ab_problem *p, struct ab_cell *c)
{
    double allowed = ab_problem_allowed_cells(p);
    c->flops_attend = led->flops_attend, c->flops_select = led->flops_select;
    c->flops_once = led->flops_once;
    c->ops_other = led->ops_other, c->bytes_kv = led->bytes_kv;
    c->tokens_step = ab_ledger_tokens_step(led, p);
    c->bytes_ratio = ab_ledger_bytes_ratio(led, p);
    c->flop_ratio = ab_ledger_ratio(led, p);
    c->flop_ratio_step = ab_ledger_ratio_step(led, p);
    c->density = allowed > 0 ? led->cells / allowed : NAN;
    c->sparsity = 1 - c->density;
    c->compression = 1 / c->flop_ratio;
}

/* The cell of m on p at budget b, fitted to target (b's value times the layer's weight; NaN:
 * a direct knob), or at the workload fit `fit` of a model-level method. */
static int run_cell(const struct ab_workload *w, const char *name, const struct ab_method *m,
                    const struct ab_problem *p, const struct ab_exact *ex, const struct budget *b,
                    double target, const struct ab_sweep_opts *o, int64_t layer, int64_t head,
                    const char *kinds, float *out, struct ab_keep *keep, float *dist,
                    const struct model_fit *fit, struct ab_cell *c)
{
    struct ab_apply_opts ao = {.has_knob = o->has_knob, .knob = o->knob_value, .kind = b->kind};
    struct ab_applied ap;
    struct ab_problem planned;
    if (fit) { /* the knob and plan of the whole workload; this head runs at them */
        planned = *p;
        planned.plan = fit->plan;
        p = &planned;
        ao.has_knob = 1, ao.knob = fit->knob;
    }
    int rc = AB_OK;
    if (fit && !fit->feasible) { /* not even the smallest knob fits the workload */
        ap = (struct ab_applied){.knob = NAN, .feasible = 0, .ran = 0};
        double lo = 0, hi;
        if (m->knob.name) ab_method_knob_range(m, p, &lo, &hi);
        rc = ab_method_cost(m, p, lo, &ap.led); /* the smallest knob's cost, as budget_fit */
        const char *what = b->kind == AB_BUDGET_TOKENS  ? "tokens per step"
                           : b->kind == AB_BUDGET_BYTES ? "bytes ratio"
                                                        : "ratio";
        if (m->knob.name)
            snprintf(ap.reason, sizeof ap.reason,
                     "workload %s %.3g at the smallest knob (%s = %g)", what, fit->ratio,
                     m->knob.name, lo);
        else
            snprintf(ap.reason, sizeof ap.reason, "fixed workload %s %.3g", what, fit->ratio);
    } else {
        /* a model-level knob is the workload's: a head may cost more than the target */
        rc = ab_method_apply(m, p, fit ? NAN : target, &ao, out, keep, dist, &ap);
    }
    if (rc) return rc;
    *c = (struct ab_cell){
        .workload = (char *)name,
        .n = w->n_seq,
        .layer = layer,
        .head = head,
        .kv_head = ab_workload_kv_of(w, head),
        .method = (char *)m->name,
        .family = (char *)ab_family_name(m->family),
        .phase = p->phase == AB_PHASE_PREFILL ? "prefill" : "decode",
        .knob_name = (char *)(m->knob.name ? m->knob.name : ""),
        .knob = ap.knob,
        .target_ratio = b->kind == AB_BUDGET_TOKENS ? NAN : b->value,
        .budget_kind = (char *)(isnan(b->value) ? "" : ab_budget_kind_name(b->kind)),
        .target_tokens = b->kind == AB_BUDGET_TOKENS ? b->value : NAN,
        .layer_target = fit ? b->value : target,
        .task_kind = (char *)kinds,
        .n_eval_rows = p->n_rows,
        .feasible = ap.feasible,
        .time_s = ap.time_s,
        .reason = "",
    };
    if (!ap.feasible) { /* freed once the table holds its copy */
        char *why = strdup(ap.reason[0] ? ap.reason : "infeasible");
        if (!why) return ab_fail(AB_E_NOMEM, "cannot record why a cell is infeasible");
        c->reason = why;
    }
    cell_unmeasured(c);
    if (ap.ran)
        cell_measure(w, p, ex, out, (m->flags & AB_METHOD_SELECTS) ? keep : NULL,
                     m->dist ? dist : NULL, o->topk, layer, head, c);
    cell_cost(&ap.led, p, c);
    return AB_OK;
}

/* 1 when a row after row i of the sweep reads the state row i prepared on this phase's problem:
 * a row of the same prepare function (a state depends on the problem alone, method.h, so act
 * and redistribute share their column means). Model-level rows are prepared in prefit. */
static int prep_shared_later(const struct ab_workload *w, const struct ab_sweep_opts *o,
                             int phase, int i)
{
    const struct ab_method *m = o->methods[i];
    for (int k = i + 1; k < o->n_methods; k++) {
        const struct ab_method *x = o->methods[k];
        if (x->prepare == m->prepare && !(x->flags & AB_METHOD_MODEL) &&
            method_applies(x, w, phase))
            return 1;
    }
    return 0;
}

/* The row before row i holding a state of row i's prepare function, or -1. */
static int held_by(const struct ab_sweep_opts *o, void *const *held, int i)
{
    for (int j = i - 1; j >= 0; j--)
        if (held[j] && o->methods[j]->prepare == o->methods[i]->prepare) return j;
    return -1;
}

/* The cells of head (layer, head) in every phase. Each row is prepared once per phase: here,
 * by the first row of its prepare function (the state is kept in held[] until the last such row
 * has run), or, for the AB_METHOD_MODEL rows that have a prepare, by prefit, which made their
 * states for the model-level fit: preps[(phase == decode) * n_methods + i] is (n_layer * n_head)
 * states (head h of layer l at l * n_head + h), or NULL. */
static void run_head(const struct ab_workload *w, const char *name,
                     const struct ab_sweep_opts *o, int64_t layer, int64_t head,
                     struct ab_head *layer_heads, int64_t *rows, const struct model_fit *fits,
                     void **const *preps, const double *lw, struct head_job *job, int64_t *done)
{
    const int nb = n_budgets(o);
    struct budget bs[MAX_BUDGETS];
    char *kinds = job->kinds;
    task_kinds(w, layer, head, kinds, sizeof job->kinds);
    for (int64_t h = 0; h < w->n_head; h++) {
        ab_workload_head(w, layer, h, &layer_heads[h]);
        assert(layer_heads[h].rope_theta == 0); /* methods read post-RoPE Q and K */
    }
    float *out = NULL, *dist = NULL; /* (n_rows, d_v), (n_rows, n_seq) when a method has dist */
    int want_dist = 0;
    for (int i = 0; i < o->n_methods; i++) want_dist |= o->methods[i]->dist != NULL;
    struct ab_keep keep = {0};
    struct ab_exact ex = {0};
    void **held = calloc((size_t)o->n_methods, sizeof *held); /* (n_methods) kept states */
    int rc = held ? AB_OK : ab_fail(AB_E_NOMEM, "cannot allocate the head's states");
    for (int phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE && !rc; phase <<= 1) {
        if (!(o->phases & (unsigned)phase)) continue;
        int64_t q0 = phase == AB_PHASE_DECODE ? w->n_seq - o->decode_m : 0;
        int64_t n_rows = eval_rows(w, q0, o, rows);
        if (n_rows < 0) {
            rc = ab_fail(AB_E_NOMEM, "cannot allocate the row sample");
            break;
        }
        struct ab_problem p = head_problem(w, o, layer, head, layer_heads, phase, q0, rows, n_rows);
        ab_free(out);
        ab_free(dist);
        ab_keep_free(&keep);
        ab_exact_free(&ex);
        out = ab_alloc(ab_size_mul((size_t)(n_rows * w->d_v), sizeof(float)));
        dist = want_dist ? ab_alloc(ab_size_mul((size_t)n_rows * (size_t)w->n_seq, sizeof(float)))
                         : NULL;
        if (!out || (want_dist && !dist) || (rc = ab_keep_alloc(&keep, n_rows, w->n_seq))) {
            rc = rc ? rc : ab_fail(AB_E_NOMEM, "cannot allocate method outputs");
            break;
        }
        if ((rc = ab_exact_compute(&p, o->topk, &ex))) break;
        for (int i = 0; i < o->n_methods && !rc; i++) {
            const struct ab_method *m = o->methods[i];
            if (!method_applies(m, w, phase)) continue;
            /* p prepared for m: in prefit, by an earlier row of the same prepare, or here */
            struct ab_problem pm = p;
            void **mp = preps[(phase == AB_PHASE_DECODE) * o->n_methods + i];
            int j = mp || !m->prepare ? -1 : held_by(o, held, i);
            if (mp)
                pm.prep = mp[layer * w->n_head + head];
            else if (j >= 0)
                pm.prep = held[j], held[j] = NULL; /* now row i's to keep or free */
            else
                rc = ab_problem_prepare(m, &pm);
            int n_t = rc ? 0 : budgets_of(m, o, phase, bs);
            for (int t = 0; t < n_t && !rc; t++) {
                /* a budget per target; knob-less and FIXED methods at their fixed cost under
                 * FLOP budgets (target 1, no layer rule); a direct --knob run has no target;
                 * every other budget times the weight of the head's layer */
                const struct budget *b = &bs[t];
                int nominal = b->kind == AB_BUDGET_FLOPS &&
                              (!m->knob.name || (m->flags & AB_METHOD_FIXED));
                double target = nominal || isnan(b->value)
                                    ? b->value
                                    : ab_layer_target(b->kind, b->value, lw[layer]);
                const struct model_fit *fit =
                    (m->flags & AB_METHOD_MODEL)
                        ? &fits[((phase == AB_PHASE_DECODE) * o->n_methods + i) * nb + b->index]
                        : NULL;
                struct ab_cell c;
                rc = run_cell(w, name, m, &pm, &ex, b, target, o, layer, head, kinds, out, &keep,
                              dist, fit, &c);
                if (rc) break;
                /* strings are copied into the table later, on the main thread */
                struct ab_cell *grown = realloc(job->cells, sizeof *grown * (size_t)(job->n + 1));
                if (!grown) {
                    if (c.reason[0]) free(c.reason);
                    rc = ab_fail(AB_E_NOMEM, "cannot grow the results table");
                    break;
                }
                job->cells = grown;
                job->cells[job->n++] = c;
#pragma omp atomic
                (*done)++;
            }
            if (!mp && pm.prep && !rc && prep_shared_later(w, o, phase, i))
                held[i] = (void *)pm.prep;
            else if (!mp)
                ab_problem_unprepare(m, &pm);
            if (rc) {
                char detail[400];
                snprintf(detail, sizeof detail, "%s", ab_errmsg());
                ab_fail(rc, "%s (layer %lld, head %lld): %s", m->name, (long long)layer,
                        (long long)head, detail);
            }
        }
        for (int i = 0; held && i < o->n_methods; i++) { /* left by a failed row */
            if (held[i]) o->methods[i]->prepare_free(held[i]);
            held[i] = NULL;
        }
    }
    free(held);
    ab_free(out);
    ab_free(dist);
    ab_keep_free(&keep);
    ab_exact_free(&ex);
    job->rc = rc;
    if (rc) snprintf(job->msg, sizeof job->msg, "%s", ab_errmsg());
}

/* The model-level fits of every AB_METHOD_MODEL method, per (phase, method, target), into fits
 * ((2, n_methods, n_targets), zeroed by the caller), and the states of those with a prepare into
 * preps ((2, n_methods), zeroed by the caller): made on the main thread before the heads run,
 * each over every head of the workload (costs in parallel inside). */
static int prefit(const struct ab_workload *w, const struct ab_sweep_opts *o,
                  struct model_fit *fits, void ***preps)
{
    int any = 0;
    for (int i = 0; i < o->n_methods; i++) any |= (o->methods[i]->flags & AB_METHOD_MODEL) != 0;
    if (!any) return AB_OK;
    int64_t n = w->n_layer * w->n_head;
    struct ab_head *heads = malloc(sizeof *heads * (size_t)n);
    struct ab_problem *probs = malloc(sizeof *probs * (size_t)n);
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)(w->n_seq + w->tasks.n + 1));
    int rc = heads && probs && rows ? AB_OK : ab_fail(AB_E_NOMEM, "cannot allocate the model fit");
    for (int64_t j = 0; !rc && j < n; j++) ab_workload_head(w, j / w->n_head, j % w->n_head, &heads[j]);
    for (int phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE && !rc; phase <<= 1) {
        if (!(o->phases & (unsigned)phase)) continue;
        int64_t q0 = phase == AB_PHASE_DECODE ? w->n_seq - o->decode_m : 0;
        int64_t n_rows = eval_rows(w, q0, o, rows);
        if (n_rows < 0) {
            rc = ab_fail(AB_E_NOMEM, "cannot allocate the row sample");
            break;
        }
        for (int64_t j = 0; j < n; j++) {
            int64_t layer = j / w->n_head, head = j % w->n_head;
            probs[j] = head_problem(w, o, layer, head, &heads[layer * w->n_head], phase, q0, rows,
                                    n_rows);
        }
        struct ab_model_view mv = {.problems = probs, .n_layer = w->n_layer, .n_head = w->n_head,
                                   .seed = o->seed};
        for (int i = 0; i < o->n_methods && !rc; i++) {
            const struct ab_method *m = o->methods[i];
            if (!(m->flags & AB_METHOD_MODEL) || !method_applies(m, w, phase)) continue;
            if (m->prepare) { /* every head, once: the fit, plan() and the heads' cells read it */
                void **st = calloc((size_t)n, sizeof *st);
                preps[(phase == AB_PHASE_DECODE) * o->n_methods + i] = st;
                if (!st) rc = ab_fail(AB_E_NOMEM, "cannot allocate the model fit");
                for (int64_t j = 0; j < n && !rc; j++)
                    if (!(rc = ab_problem_prepare(m, &probs[j]))) st[j] = (void *)probs[j].prep;
            }
            struct budget bs[MAX_BUDGETS];
            int n_b = budgets_of(m, o, phase, bs);
            for (int t = 0; t < n_b && !rc; t++) {
                struct model_fit *f = &fits[((phase == AB_PHASE_DECODE) * o->n_methods + i) *
                                                n_budgets(o) + bs[t].index];
                if (o->has_knob) { /* a direct knob: its plan, no budget */
                    f->knob = o->knob_value, f->feasible = 1;
                    rc = m->plan ? m->plan(&mv, f->knob, &f->plan) : AB_OK;
                } else { /* the workload's budget: the layer rule is the method's own plan */
                    rc = ab_budget_fit_model_kind(m, &mv, bs[t].kind, bs[t].value, &f->knob,
                                                  &f->plan, &f->ratio, &f->feasible);
                }
            }
            for (int64_t j = 0; j < n; j++) probs[j].prep = NULL; /* kept in preps */
            if (rc) rc = ab_fail(rc, "%s (model-level fit): %s", m->name, ab_errmsg());
        }
    }
    free(heads), free(probs), free(rows);
    return rc;
}

/* Frees prefit's prepared states (n per (phase, method)) and preps itself. */
static void preps_free(const struct ab_sweep_opts *o, int64_t n, void ***preps)
{
    for (int k = 0; preps && k < 2 * o->n_methods; k++) {
        const struct ab_method *m = o->methods[k % o->n_methods];
        for (int64_t j = 0; preps[k] && j < n; j++)
            if (preps[k][j] && m->prepare_free) m->prepare_free(preps[k][j]);
        free(preps[k]);
    }
    free(preps);
}

static void fits_free(const struct ab_sweep_opts *o, struct model_fit *fits)
{
    for (int k = 0; fits && k < 2 * o->n_methods * n_budgets(o); k++) {
        const struct ab_method *m = o->methods[(k / n_budgets(o)) % o->n_methods];
        if (fits[k].plan && m->plan_free) m->plan_free(fits[k].plan);
    }
    free(fits);
}

int ab_sweep_workload(const struct ab_workload *w, const char *name,
                      const struct ab_sweep_opts *o, struct ab_results *res)
{
    if (o->phases & AB_PHASE_DECODE && (o->decode_m < 1 || o->decode_m >= w->n_seq))
        return ab_fail(AB_E_USAGE, "'%s': decode queries m = %lld must be in [1, n - 1] (n = %lld)",
                       name, (long long)o->decode_m, (long long)w->n_seq);
    if (o->phases & AB_PHASE_DECODE && o->horizon < o->decode_m)
        return ab_fail(AB_E_USAGE,
                       "decode horizon G = %lld is below the %lld evaluated decode queries",
                       (long long)o->horizon, (long long)o->decode_m);
    int64_t n_jobs = w->n_layer * w->n_head, n_sel = 0, done = 0;
    for (int64_t j = 0; j < n_jobs; j++) n_sel += !o->units || o->units[j];
    if (n_sel == 0) return AB_OK; /* nothing of this workload selected: not even the fits */
    int64_t total = ab_sweep_count_head(w, o) * n_sel;
    struct model_fit *fits = calloc((size_t)(2 * o->n_methods * n_budgets(o)), sizeof *fits);
    void ***preps = calloc((size_t)(2 * o->n_methods), sizeof *preps); /* (2, n_methods) */
    double *lw = malloc(sizeof(double) * (size_t)w->n_layer); /* the layers' budget weights */
    if (!fits || !preps || !lw) {
        free(fits), free(preps), free(lw);
        return ab_fail(AB_E_NOMEM, "cannot allocate the sweep");
    }
    int rc = ab_layer_weights(o->layer_rule, o->layer_given, o->n_layer_given, w->n_layer, lw);
    if (rc) {
        rc = ab_fail(rc, "option '--layer-budget': '%s' has %lld layers: %s", name,
                     (long long)w->n_layer, ab_errmsg());
        free(fits), free(preps), free(lw);
        return rc;
    }
    rc = prefit(w, o, fits, preps);
    if (rc) {
        rc = ab_fail(rc, "'%s': %s", name, ab_errmsg()); /* before plan_free can touch it */
        fits_free(o, fits);
        preps_free(o, n_jobs, preps);
        free(lw);
        return rc;
    }
    struct head_job *jobs = calloc((size_t)n_jobs, sizeof *jobs);
    if (!jobs) {
        fits_free(o, fits);
        preps_free(o, n_jobs, preps);
        free(lw);
        return ab_fail(AB_E_NOMEM, "cannot allocate the sweep");
    }
    int threads = ab_threads_get();
    int stop = 0;           /* on_head failed: heads not started are skipped */
    int hook_rc = AB_OK;    /* its status and message, returned as they came */
    char hook_msg[512] = "";
    ab_blas_serial_begin();
#pragma omp parallel num_threads(threads)
    {
        struct ab_head *layer_heads = malloc(sizeof(struct ab_head) * (size_t)w->n_head);
        int64_t *rows = malloc(sizeof(int64_t) * (size_t)(w->n_seq + w->tasks.n + 1));
#pragma omp for schedule(dynamic, 1)
        for (int64_t j = 0; j < n_jobs; j++) {
            if (o->units && !o->units[j]) continue;
            int stopped;
#pragma omp atomic read
            stopped = stop;
            if (stopped) continue;
            if (!layer_heads || !rows) {
                jobs[j].rc = AB_E_NOMEM;
                snprintf(jobs[j].msg, sizeof jobs[j].msg, "cannot allocate head scratch");
                continue;
            }
            run_head(w, name, o, j / w->n_head, j % w->n_head, layer_heads, rows, fits, preps,
                     lw, &jobs[j], &done);
            if (o->on_head && !jobs[j].rc) {
#pragma omp critical(ab_sweep_on_head)
                {
                    int hrc = stop ? AB_OK
                                   : o->on_head(o->on_head_user, j / w->n_head, j % w->n_head,
                                                jobs[j].cells, jobs[j].n);
                    if (hrc) {
                        hook_rc = hrc;
                        snprintf(hook_msg, sizeof hook_msg, "%s", ab_errmsg());
#pragma omp atomic write
                        stop = 1;
                    }
                }
            }
            if (o->progress && omp_get_thread_num() == 0) {
                int64_t d;
#pragma omp atomic read
                d = done;
                o->progress(o->progress_user, d, total);
            }
        }
        free(layer_heads);
        free(rows);
    }
    ab_blas_serial_end();
    fits_free(o, fits);
    preps_free(o, n_jobs, preps);
    free(lw);
    if (hook_rc) rc = ab_fail(hook_rc, "%s", hook_msg);
    for (int64_t j = 0; j < n_jobs; j++) {
        if (!rc && jobs[j].rc) rc = ab_fail(jobs[j].rc, "'%s': %s", name, jobs[j].msg);
        for (int64_t c = 0; c < jobs[j].n; c++) {
            if (!rc && res) rc = ab_results_add(res, &jobs[j].cells[c]);
            if (jobs[j].cells[c].reason[0]) free(jobs[j].cells[c].reason);
        }
        free(jobs[j].cells);
    }
    free(jobs);
    if (!rc && o->progress) o->progress(o->progress_user, total, total);
    return rc;
}

/* ------------------------------------------------------------------ external outputs */

/* The cells of one (layer, head) of an external method: every budget b, measured on the rows
 * the sweep evaluates. */
static void external_head(const struct ab_workload *w, const char *name,
                          const struct ab_sweep_opts *o, const struct ab_external *x,
                          int64_t layer, int64_t head, struct ab_head *layer_heads, int64_t *rows,
                          struct head_job *job)
{
    task_kinds(w, layer, head, job->kinds, sizeof job->kinds);
    for (int64_t h = 0; h < w->n_head; h++) ab_workload_head(w, layer, h, &layer_heads[h]);
    int64_t n = w->n_seq, dv = w->d_v, R = x->n_rows_out;
    int64_t q0 = x->phase == AB_PHASE_DECODE ? n - o->decode_m : 0;
    int64_t n_rows = eval_rows(w, q0, o, rows);
    struct ab_problem p = head_problem(w, o, layer, head, layer_heads, x->phase, q0, rows,
                                       n_rows > 0 ? n_rows : 0);
    struct ab_keep keep = {0};
    struct ab_exact ex = {0};
    float *out = n_rows < 0 ? NULL : ab_alloc(ab_size_mul((size_t)(n_rows * dv), sizeof(float)));
    int rc = out ? AB_OK : ab_fail(AB_E_NOMEM, "cannot allocate the evaluated rows");
    if (!rc && x->keep) rc = ab_keep_alloc(&keep, n_rows, n);
    if (!rc) rc = ab_exact_compute(&p, o->topk, &ex);
    if (!rc && !(job->cells = calloc((size_t)x->n_budget, sizeof *job->cells)))
        rc = ab_fail(AB_E_NOMEM, "cannot allocate the cells");
    for (int64_t b = 0; b < x->n_budget && !rc; b++) {
        int64_t hb = (b * w->n_layer + layer) * w->n_head + head; /* (b, layer, head) */
        const float *ob = x->o + hb * R * dv;                    /* (R, d_v) */
        for (int64_t r = 0; r < n_rows; r++)
            memcpy(out + r * dv, ob + (rows[r] - q0) * dv, sizeof(float) * (size_t)dv);
        /* the declared cost as the phase's ledger; cells from the kept masks of every row */
        struct ab_ledger led = {.flops_attend = x->flops[hb], .ops_other = NAN,
                                .bytes_kv = x->bytes_kv ? x->bytes_kv[hb] : NAN,
                                .cells = x->keep ? 0 : NAN};
        if (x->keep) {
            const unsigned char *kb = x->keep + hb * R * n; /* (R, n) */
            for (int64_t i = 0; i < R * n; i++) led.cells += kb[i] != 0;
            ab_keep_clear(&keep);
            for (int64_t r = 0; r < n_rows; r++) {
                const unsigned char *row = kb + (rows[r] - q0) * n;
                for (int64_t j = 0; j < n; j++)
                    if (row[j]) ab_keep_set(&keep, r, j);
            }
        }
        double ratio = ab_ledger_ratio(&led, &p);
        double target = x->target ? x->target[b] : ratio;
        struct ab_cell *c = &job->cells[job->n++];
        *c = (struct ab_cell){
            .workload = (char *)name,
            .n = n,
            .layer = layer,
            .head = head,
            .kv_head = ab_workload_kv_of(w, head),
            .method = (char *)x->method,
            .family = (char *)x->family,
            .phase = x->phase == AB_PHASE_PREFILL ? "prefill" : "decode",
            .knob_name = (char *)(x->knob_name ? x->knob_name : ""),
            .knob = x->knob ? x->knob[b] : NAN,
            .target_ratio = target,
            .budget_kind = "flops",
            .target_tokens = NAN,
            .layer_target = target,
            .task_kind = job->kinds,
            .n_eval_rows = n_rows,
            .feasible = ratio <= target * (1 + 1e-12), /* as the budget solver decides */
            .time_s = NAN,
            .reason = "",
        };
        cell_unmeasured(c);
        if (c->feasible) {
            cell_measure(w, &p, &ex, out, x->keep ? &keep : NULL, NULL, o->topk, layer, head, c);
        } else {
            char why[96];
            snprintf(why, sizeof why, "declared cost %.3g of dense is above the target", ratio);
            if (!(c->reason = strdup(why))) {
                c->reason = "";
                rc = ab_fail(AB_E_NOMEM, "cannot record why a cell is infeasible");
            }
        }
        cell_cost(&led, &p, c);
    }
    ab_free(out);
    ab_keep_free(&keep);
    ab_exact_free(&ex);
    job->rc = rc;
    if (rc) snprintf(job->msg, sizeof job->msg, "%s", ab_errmsg());
}

int ab_sweep_external(const struct ab_workload *w, const char *name,
                      const struct ab_sweep_opts *o, const struct ab_external *x,
                      struct ab_results *res)
{
    int64_t want = x->phase == AB_PHASE_DECODE ? o->decode_m : w->n_seq;
    assert(x->phase == AB_PHASE_PREFILL || x->phase == AB_PHASE_DECODE);
    if (x->phase == AB_PHASE_DECODE && (o->decode_m < 1 || o->decode_m >= w->n_seq))
        return ab_fail(AB_E_USAGE, "'%s': decode queries m = %lld must be in [1, n - 1] (n = %lld)",
                       name, (long long)o->decode_m, (long long)w->n_seq);
    if (x->n_rows_out != want)
        return ab_fail(AB_E_DATA, "'%s': %lld output rows per head where the phase has %lld",
                       name, (long long)x->n_rows_out, (long long)want);
    int64_t n_jobs = w->n_layer * w->n_head;
    struct head_job *jobs = calloc((size_t)n_jobs, sizeof *jobs);
    if (!jobs) return ab_fail(AB_E_NOMEM, "cannot allocate the sweep");
    int threads = ab_threads_get();
    ab_blas_serial_begin();
#pragma omp parallel num_threads(threads)
    {
        struct ab_head *layer_heads = malloc(sizeof(struct ab_head) * (size_t)w->n_head);
        int64_t *rows = malloc(sizeof(int64_t) * (size_t)(w->n_seq + w->tasks.n + 1));
#pragma omp for schedule(dynamic, 1)
        for (int64_t j = 0; j < n_jobs; j++) {
            if (!layer_heads || !rows) {
                jobs[j].rc = AB_E_NOMEM;
                snprintf(jobs[j].msg, sizeof jobs[j].msg, "cannot allocate head scratch");
                continue;
            }
            external_head(w, name, o, x, j / w->n_head, j % w->n_head, layer_heads, rows,
                          &jobs[j]);
        }
        free(layer_heads);
        free(rows);
    }
    ab_blas_serial_end();
    int rc = AB_OK;
    for (int64_t j = 0; j < n_jobs; j++) {
        if (!rc && jobs[j].rc) rc = ab_fail(jobs[j].rc, "'%s': %s", name, jobs[j].msg);
        for (int64_t c = 0; c < jobs[j].n; c++) {
            if (!rc) rc = ab_results_add(res, &jobs[j].cells[c]);
            if (jobs[j].cells[c].reason[0]) free(jobs[j].cells[c].reason);
        }
        free(jobs[j].cells);
    }
    free(jobs);
    return rc;
}
