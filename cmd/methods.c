/* methods.c - `attnbench methods [NAME]`: the registry as a table, or one method in full; with
 * --crossover, the decode context length where exact decode becomes more expensive than each
 * linear-family row (issue 8), computed from the rows' own ledgers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"
#include "eval/eval.h"
#include "methods/method.h"
#include "opts.h"

static const char *usage_text = "attnbench methods [NAME] [--crossover [--d D] [--dv DV]]";

/* A decode problem of one head with n_ctx context keys and m decode queries, seeded Gaussian
 * Q, K, V: what --crossover costs each method on. Buffers in *buf (free them). */
struct xo_head {
    struct ab_head h;
    struct ab_problem p;
    float *q, *k, *v;
    int32_t *pos;
    int64_t *rows;
};

static int xo_make(struct xo_head *x, int64_t n_ctx, int64_t m, int64_t d, int64_t dv)
{
    int64_t n = n_ctx + m;
    memset(x, 0, sizeof *x);
    x->q = ab_alloc(ab_size_mul((size_t)(n * d), sizeof(float)));
    x->k = ab_alloc(ab_size_mul((size_t)(n * d), sizeof(float)));
    x->v = ab_alloc(ab_size_mul((size_t)(n * dv), sizeof(float)));
    x->pos = malloc(sizeof(int32_t) * (size_t)n);
    x->rows = malloc(sizeof(int64_t) * (size_t)m);
    if (!x->q || !x->k || !x->v || !x->pos || !x->rows) return ab_fail(AB_E_NOMEM, "out of memory");
    struct ab_rng r;
    ab_rng_init(&r, 1, 0x78);
    for (int64_t i = 0; i < n * d; i++) x->q[i] = (float)ab_rng_normal(&r), x->k[i] = (float)ab_rng_normal(&r);
    for (int64_t i = 0; i < n * dv; i++) x->v[i] = (float)ab_rng_normal(&r);
    for (int64_t i = 0; i < n; i++) x->pos[i] = (int32_t)i;
    for (int64_t i = 0; i < m; i++) x->rows[i] = n_ctx + i;
    x->h = (struct ab_head){.n_q = n, .n_k = n, .d = d, .d_v = dv, .q = x->q, .k = x->k, .v = x->v,
                            .q_pos = x->pos, .k_pos = x->pos, .mask = AB_MASK_CAUSAL,
                            .scale = 1.0 / sqrt((double)d)};
    x->p = (struct ab_problem){.h = &x->h, .phase = AB_PHASE_DECODE, .q0 = n_ctx, .rows = x->rows,
                               .n_rows = m, .layer = &x->h, .n_layer_heads = 1, .self = 0,
                               .group = 1, .seed = 1, .layer_index = 0, .n_layer = 1};
    return AB_OK;
}

static void xo_free(struct xo_head *x)
{
    ab_free(x->q), ab_free(x->k), ab_free(x->v);
    free(x->pos), free(x->rows);
}

/* Per decode query: the method's FLOPs and bytes at its default knob on n_ctx context keys. */
static int xo_cost(const struct ab_method *me, int64_t n_ctx, int64_t d, int64_t dv, double *flops,
                   double *bytes)
{
    enum { M = 16 };
    struct xo_head x;
    int rc = xo_make(&x, n_ctx, M, d, dv);
    struct ab_ledger led;
    if (!rc) rc = ab_problem_prepare(me, &x.p);
    if (!rc) rc = ab_method_cost(me, &x.p, me->knob.name ? me->knob.def : 0, &led);
    if (!rc) *flops = (led.flops_attend + led.flops_select) / M, *bytes = led.bytes_kv / M;
    ab_problem_unprepare(me, &x.p);
    xo_free(&x);
    return rc;
}

/* The decode cost split of m, measured on one seeded head of n = 4096 (64 decode queries,
 * d = d_v = 64) at its default knob: the per-step ratio and the one-off work, spread over the
 * evaluated queries and over the default horizon. Prints the `decode` line of `methods NAME`. */
static int print_decode_split(const struct ab_method *m)
{
    enum { N = 4096, M = 64, D = 64 };
    struct xo_head x;
    int rc = xo_make(&x, N - M, M, D, D);
    struct ab_ledger led;
    double knob = m->knob.name ? m->knob.def : 0;
    if (!rc) rc = ab_problem_prepare(m, &x.p);
    if (!rc) rc = ab_method_cost(m, &x.p, knob, &led);
    if (!rc) {
        double dense = ab_problem_dense_flops(&x.p);
        printf("decode     on one head of n = %d (%d decode queries, d = %d)", N, M, D);
        if (m->knob.name) printf(" at %s = %g", m->knob.name, knob);
        printf(": per step %.3g of dense", ab_ledger_ratio_step(&led, &x.p));
        if (led.flops_once > 0)
            printf("; one-off %.3g FLOPs at the end of prefill (%.3g of dense if spread over the "
                   "%d queries, %.3g over the default horizon G = %d)",
                   led.flops_once, led.flops_once / dense, M,
                   ab_once_weight(&x.p) * led.flops_once / dense, AB_DECODE_HORIZON);
        else
            printf("; no one-off work");
        printf("\n");
    }
    ab_problem_unprepare(m, &x.p);
    xo_free(&x);
    return rc;
}

/* The linear rows with a decode form: their per-token decode cost (at the default knob, on
 * contexts of 1024 and 4096 keys, which must agree for a fixed-size state) against exact
 * decode's (2d + 2dv) FLOPs and 4 (d + dv) bytes per cached key. */
static int crossover(int64_t d, int64_t dv)
{
    printf("decode crossover, head dim d = %lld, dv = %lld: exact decode costs (2d + 2dv) = %lld "
           "FLOPs and 4 (d + dv) = %lld bytes per cached key and query\n",
           (long long)d, (long long)dv, (long long)(2 * d + 2 * dv), (long long)(4 * (d + dv)));
    printf("%-14s %-14s %14s %14s %12s %12s\n", "method", "knob", "FLOPs/query", "bytes/query",
           "n* (FLOPs)", "n* (bytes)");
    for (int i = 0; i < ab_n_methods; i++) {
        const struct ab_method *me = ab_methods[i];
        if (me->family != AB_FAMILY_LINEAR || !(me->phases & AB_PHASE_DECODE) ||
            !(me->masks & AB_MASKS_CAUSAL))
            continue;
        double f1, b1, f2, b2;
        int rc = xo_cost(me, 1024, d, dv, &f1, &b1);
        if (!rc) rc = xo_cost(me, 4096, d, dv, &f2, &b2);
        if (rc) return rc;
        char knob[48] = "-";
        if (me->knob.name) snprintf(knob, sizeof knob, "%s = %g", me->knob.name, me->knob.def);
        if (fabs(f2 - f1) > 1e-9 * f1 || fabs(b2 - b1) > 1e-9 * b1) {
            /* not a fixed-size state: its cost grows with the context, no single crossover */
            printf("%-14s %-14s %14.4g %14.4g %12s %12s\n", me->name, knob, f2, b2,
                   "grows with n", "grows with n");
            continue;
        }
        double nf = ceil(f1 / (double)(2 * d + 2 * dv)), nb = ceil(b1 / (double)(4 * (d + dv)));
        printf("%-14s %-14s %14.4g %14.4g %12.0f %12.0f\n", me->name, knob, f1, b1, nf, nb);
    }
    printf("n*: the context length beyond which exact decode costs more than the row per query "
           "(its per-query cost / exact decode's per key)\n");
    return AB_OK;
}

static void phases_text(unsigned phases, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s", phases & AB_PHASE_PREFILL ? "prefill" : "",
             phases == (AB_PHASE_PREFILL | AB_PHASE_DECODE) ? "," : "",
             phases & AB_PHASE_DECODE ? "decode" : "");
}

static void masks_text(unsigned masks, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s", masks & AB_MASKS_CAUSAL ? "causal" : "",
             masks == (AB_MASKS_CAUSAL | AB_MASKS_FULL) ? "," : "",
             masks & AB_MASKS_FULL ? "full" : "");
}

static void knob_text(const struct ab_method *m, char *buf, size_t cap)
{
    if (!m->knob.name) {
        snprintf(buf, cap, "-");
        return;
    }
    char hi[32];
    if (m->knob.hi > 0) snprintf(hi, sizeof hi, "%g", m->knob.hi);
    else snprintf(hi, sizeof hi, "n");
    snprintf(buf, cap, "%s in [%g, %s]%s", m->knob.name, m->knob.lo, hi,
             m->knob.integer ? "" : " (real)");
}

int cmd_methods(int argc, char **argv)
{
    int xo = 0;
    int64_t d = 64, dv = 0;
    const struct ab_opt opts[] = {
        {"crossover", AB_OPT_FLAG, &xo, NULL, "the decode context length where exact decode costs more than each linear row"},
        {"d", AB_OPT_INT, &d, "D", "--crossover: head dimension (default 64)"},
        {"dv", AB_OPT_INT, &dv, "DV", "--crossover: value dimension (default d)"},
        {NULL, AB_OPT_END, NULL, NULL, NULL}};
    char *pos[1];
    int n_pos, st = ab_opts_parse("methods", usage_text, opts, argc, argv, pos, 1, &n_pos);
    if (st >= 0) return st;
    if (xo) {
        if (d < 2 || d > 4096 || dv < 0 || dv > 4096)
            return ab_cmd_error(EX_AB_USAGE, "methods: --d must be in [2, 4096] and --dv in [1, 4096]");
        int rc = crossover(d, dv ? dv : d);
        return rc ? ab_cmd_fail(rc) : EX_AB_OK;
    }
    char ph[32], mk[32], kn[64];
    if (n_pos == 1) {
        const struct ab_method *m = ab_method_find(pos[0]);
        if (!m)
            return ab_cmd_error(EX_AB_USAGE, "unknown method '%s' (see 'attnbench methods')", pos[0]);
        phases_text(m->phases, ph, sizeof ph);
        masks_text(m->masks, mk, sizeof mk);
        knob_text(m, kn, sizeof kn);
        printf("name       %s\n", m->name);
        printf("family     %s\n", ab_family_name(m->family));
        printf("summary    %s\n", m->summary);
        printf("phases     %s\n", ph);
        printf("masks      %s\n", mk);
        printf("knob       %s", kn);
        if (m->knob.name) printf(", default %g %s", m->knob.def, m->knob.unit ? m->knob.unit : "");
        printf("\ncost       %s\n", m->cost_words);
        printf("solver     %s\n", m->flags & AB_METHOD_ANALYTIC
                                      ? "bisection on the analytic cost"
                                      : "bisection on selection-only runs (data-dependent cost)");
        printf("selection  %s%s%s\n", m->flags & AB_METHOD_SELECTS ? "exported (recall, masks)" : "none",
               m->flags & AB_METHOD_ORACLE ? "; oracle: reads the exact map, selection not counted" : "",
               m->flags & AB_METHOD_LAYER ? "; reads every head of the layer" : "");
        if (m->flags & AB_METHOD_OPERATOR)
            printf("operator   a different attention operator, not an approximation of softmax: "
                   "its error against dense measures the operator's distance from softmax\n");
        if (m->convention) printf("convention %s\n", m->convention);
        if (m->flags & AB_METHOD_MODEL)
            printf("budget     model level: one knob per phase and target for the whole workload\n");
        if ((m->phases & AB_PHASE_DECODE) && (m->masks & AB_MASKS_CAUSAL) &&
            !(m->flags & AB_METHOD_MODEL)) {
            int rc = print_decode_split(m);
            if (rc) return ab_cmd_fail(rc);
        }
        printf("citation   %s\n", m->citation);
        return EX_AB_OK;
    }
    printf("%-16s %-8s %-15s %-13s %-22s %s\n", "name", "family", "phases", "masks", "knob",
           "cost");
    for (int i = 0; i < ab_n_methods; i++) {
        const struct ab_method *m = ab_methods[i];
        phases_text(m->phases, ph, sizeof ph);
        masks_text(m->masks, mk, sizeof mk);
        knob_text(m, kn, sizeof kn);
        printf("%-16s %-8s %-15s %-13s %-22s %s%s\n", m->name, ab_family_name(m->family), ph, mk,
               kn, m->flags & AB_METHOD_OPERATOR ? "[operator, not softmax] " : "",
               m->cost_words ? m->cost_words : "");
    }
    printf("\n%d methods; 'attnbench methods NAME' shows one with its citation.\n", ab_n_methods);
    return EX_AB_OK;
}
