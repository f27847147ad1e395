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
#include "io/json_out.h"
#include "methods/method.h"
#include "opts.h"

static const char *usage_text =
    "attnbench methods [NAME] [--plugin SO]... [--crossover [--d D] [--dv DV]] [--json]";

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

/* The decode cost split of a method, measured on one seeded head of n = 4096 (64 decode
 * queries, d = d_v = 64) at its default knob. */
enum { SPLIT_N = 4096, SPLIT_M = 64, SPLIT_D = 64 };
struct decode_split {
    double knob;       /* the default knob (0 without one) */
    double ratio_step; /* per-step FLOP ratio against dense */
    double flops_once; /* one-off FLOPs at the end of prefill */
    double once_m;     /* flops_once / dense FLOPs of the SPLIT_M queries */
    double once_g;     /* the same spread over the default horizon G */
    double bytes;      /* K/V bytes read over dense's (4 (d + d_v) per visible cell) */
};

static int decode_split(const struct ab_method *m, struct decode_split *s)
{
    struct xo_head x;
    int rc = xo_make(&x, SPLIT_N - SPLIT_M, SPLIT_M, SPLIT_D, SPLIT_D);
    struct ab_ledger led;
    *s = (struct decode_split){.knob = m->knob.name ? m->knob.def : 0};
    if (!rc) rc = ab_problem_prepare(m, &x.p);
    if (!rc) rc = ab_method_cost(m, &x.p, s->knob, &led);
    if (!rc) {
        double dense = ab_problem_dense_flops(&x.p);
        s->ratio_step = ab_ledger_ratio_step(&led, &x.p);
        s->flops_once = led.flops_once;
        s->once_m = led.flops_once / dense;
        s->once_g = ab_once_weight(&x.p) * led.flops_once / dense;
        s->bytes = led.bytes_kv / (4.0 * (SPLIT_D + SPLIT_D) * ab_problem_allowed_cells(&x.p));
    }
    ab_problem_unprepare(m, &x.p);
    xo_free(&x);
    return rc;
}

/* 1 when `methods NAME` shows the decode split of m: causal decode rows decided per head. */
static int has_decode_split(const struct ab_method *m)
{
    return (m->phases & AB_PHASE_DECODE) && (m->masks & AB_MASKS_CAUSAL) &&
           !(m->flags & AB_METHOD_MODEL);
}

/* Prints the `decode` line of `methods NAME`: the per-step ratio and the one-off work, spread
 * over the evaluated queries and over the default horizon. */
static int print_decode_split(const struct ab_method *m)
{
    struct decode_split s;
    int rc = decode_split(m, &s);
    if (rc) return rc;
    printf("decode     on one head of n = %d (%d decode queries, d = %d)", SPLIT_N, SPLIT_M,
           SPLIT_D);
    if (m->knob.name) printf(" at %s = %g", m->knob.name, s.knob);
    printf(": per step %.3g of dense (K/V bytes read %.3g of dense's)", s.ratio_step, s.bytes);
    if (s.flops_once > 0)
        printf("; one-off %.3g FLOPs at the end of prefill (%.3g of dense if spread over the "
               "%d queries, %.3g over the default horizon G = %d)",
               s.flops_once, s.once_m, SPLIT_M, s.once_g, AB_DECODE_HORIZON);
    else
        printf("; no one-off work");
    printf("\n");
    return AB_OK;
}

/* One linear row with a decode form in the crossover table: its per-token decode cost at the
 * default knob, on contexts of 1024 and 4096 keys (which must agree for a fixed-size state),
 * and n*, the context length beyond which exact decode ((2d + 2dv) FLOPs and 4 (d + dv) bytes
 * per cached key) costs more (NaN when its cost grows with the context). */
struct xo_row {
    const struct ab_method *m;
    double flops, bytes; /* per query, at 4096 context keys */
    double n_flops, n_bytes;
    int grows; /* not a fixed-size state: no single crossover */
};

static int is_crossover_row(const struct ab_method *me)
{
    return me->family == AB_FAMILY_LINEAR && (me->phases & AB_PHASE_DECODE) &&
           (me->masks & AB_MASKS_CAUSAL);
}

static int crossover_row(const struct ab_method *me, int64_t d, int64_t dv, struct xo_row *r)
{
    double f1, b1, f2, b2;
    int rc = xo_cost(me, 1024, d, dv, &f1, &b1);
    if (!rc) rc = xo_cost(me, 4096, d, dv, &f2, &b2);
    if (rc) return rc;
    *r = (struct xo_row){.m = me, .flops = f2, .bytes = b2, .n_flops = NAN, .n_bytes = NAN};
    r->grows = fabs(f2 - f1) > 1e-9 * f1 || fabs(b2 - b1) > 1e-9 * b1;
    if (!r->grows) {
        r->flops = f1, r->bytes = b1;
        r->n_flops = ceil(f1 / (double)(2 * d + 2 * dv));
        r->n_bytes = ceil(b1 / (double)(4 * (d + dv)));
    }
    return AB_OK;
}

/* The crossover table of the linear rows with a decode form (struct xo_row). */
static int crossover(int64_t d, int64_t dv)
{
    printf("decode crossover, head dim d = %lld, dv = %lld: exact decode costs (2d + 2dv) = %lld "
           "FLOPs and 4 (d + dv) = %lld bytes per cached key and query\n",
           (long long)d, (long long)dv, (long long)(2 * d + 2 * dv), (long long)(4 * (d + dv)));
    printf("%-14s %-14s %14s %14s %12s %12s\n", "method", "knob", "FLOPs/query", "bytes/query",
           "n* (FLOPs)", "n* (bytes)");
    for (int i = 0; i < ab_method_count(); i++) {
        const struct ab_method *me = ab_method_at(i);
        if (!is_crossover_row(me)) continue;
        struct xo_row r;
        int rc = crossover_row(me, d, dv, &r);
        if (rc) return rc;
        char knob[48] = "-";
        if (me->knob.name) snprintf(knob, sizeof knob, "%s = %g", me->knob.name, me->knob.def);
        if (r.grows)
            printf("%-14s %-14s %14.4g %14.4g %12s %12s\n", me->name, knob, r.flops, r.bytes,
                   "grows with n", "grows with n");
        else
            printf("%-14s %-14s %14.4g %14.4g %12.0f %12.0f\n", me->name, knob, r.flops, r.bytes,
                   r.n_flops, r.n_bytes);
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

/* ---- --json: the same facts as one JSON document (README, "Machine-readable output") */

static void json_phases(struct ab_json_doc *d, struct ab_json *o, unsigned phases)
{
    struct ab_json *a = ab_json_arr(d, o, "phases");
    if (phases & AB_PHASE_PREFILL) ab_json_str(d, a, NULL, "prefill");
    if (phases & AB_PHASE_DECODE) ab_json_str(d, a, NULL, "decode");
}

static void json_masks(struct ab_json_doc *d, struct ab_json *o, unsigned masks)
{
    struct ab_json *a = ab_json_arr(d, o, "masks");
    if (masks & AB_MASKS_CAUSAL) ab_json_str(d, a, NULL, "causal");
    if (masks & AB_MASKS_FULL) ab_json_str(d, a, NULL, "full");
}

/* The flag names of enum ab_method_flags, in bit order. */
static const struct {
    unsigned bit;
    const char *name;
} flag_names[] = {
    {AB_METHOD_SELECTS, "selects"}, {AB_METHOD_ORACLE, "oracle"},
    {AB_METHOD_ANALYTIC, "analytic"}, {AB_METHOD_LAYER, "layer"},
    {AB_METHOD_FIXED, "fixed"}, {AB_METHOD_UNNORMALISED, "unnormalised"},
    {AB_METHOD_MODEL, "model"}, {AB_METHOD_OPERATOR, "operator"},
    {AB_METHOD_PREP_FREE, "prep-free"}, {AB_METHOD_LOSSY, "lossy"},
};

/* One registry row: {name, family, summary, phases, masks, knob {name, lo, hi, hi_is_n,
 * integer, def, unit} or null, flags, cost, convention, citation}. */
static struct ab_json *json_method(struct ab_json_doc *d, struct ab_json *parent,
                                   const char *key, const struct ab_method *m)
{
    struct ab_json *o = ab_json_obj(d, parent, key);
    ab_json_str(d, o, "name", m->name);
    ab_json_str(d, o, "family", ab_family_name(m->family));
    ab_json_str(d, o, "summary", m->summary);
    json_phases(d, o, m->phases);
    json_masks(d, o, m->masks);
    if (m->knob.name) {
        struct ab_json *k = ab_json_obj(d, o, "knob");
        ab_json_str(d, k, "name", m->knob.name);
        ab_json_num(d, k, "lo", m->knob.lo);
        if (m->knob.hi > 0) ab_json_num(d, k, "hi", m->knob.hi);
        else ab_json_null(d, k, "hi"); /* the number of keys n */
        ab_json_bool(d, k, "hi_is_n", !(m->knob.hi > 0));
        ab_json_bool(d, k, "integer", m->knob.integer);
        ab_json_num(d, k, "def", m->knob.def);
        ab_json_str(d, k, "unit", m->knob.unit);
    } else {
        ab_json_null(d, o, "knob");
    }
    struct ab_json *fl = ab_json_arr(d, o, "flags");
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
        if (m->flags & flag_names[i].bit) ab_json_str(d, fl, NULL, flag_names[i].name);
    ab_json_str(d, o, "cost", m->cost_words);
    ab_json_str(d, o, "convention", m->convention);
    ab_json_str(d, o, "citation", m->citation);
    ab_json_str(d, o, "plugin", ab_method_origin(m)); /* the file it came from, or null */
    return o;
}

/* `methods --json`: {schema, count, methods: [row...]}. */
static int json_methods(void)
{
    struct ab_json_doc d;
    ab_json_begin(&d);
    ab_json_str(&d, d.root, "schema", "attnbench/methods/1");
    ab_json_int(&d, d.root, "count", ab_method_count());
    struct ab_json *a = ab_json_arr(&d, d.root, "methods");
    for (int i = 0; i < ab_method_count(); i++) json_method(&d, a, NULL, ab_method_at(i));
    int rc = ab_json_print(&d, stdout);
    return rc ? ab_cmd_fail(rc) : EX_AB_OK;
}

/* `methods NAME --json`: {schema, method: row + {solver, decode: {...} or null}}. */
static int json_one(const struct ab_method *m)
{
    struct ab_json_doc d;
    ab_json_begin(&d);
    ab_json_str(&d, d.root, "schema", "attnbench/method/1");
    struct ab_json *o = json_method(&d, d.root, "method", m);
    ab_json_str(&d, o, "solver", m->flags & AB_METHOD_ANALYTIC ? "analytic" : "data-dependent");
    if (has_decode_split(m)) {
        struct decode_split s;
        int rc = decode_split(m, &s);
        if (rc) {
            ab_json_end(&d);
            return ab_cmd_fail(rc);
        }
        struct ab_json *dc = ab_json_obj(&d, o, "decode");
        ab_json_int(&d, dc, "n", SPLIT_N);
        ab_json_int(&d, dc, "decode_queries", SPLIT_M);
        ab_json_int(&d, dc, "d", SPLIT_D);
        if (m->knob.name) ab_json_num(&d, dc, "knob", s.knob);
        else ab_json_null(&d, dc, "knob");
        ab_json_num(&d, dc, "ratio_step", s.ratio_step);
        ab_json_num(&d, dc, "bytes_ratio", s.bytes);
        ab_json_num(&d, dc, "flops_once", s.flops_once);
        ab_json_num(&d, dc, "once_ratio_queries", s.once_m);
        ab_json_num(&d, dc, "once_ratio_horizon", s.once_g);
        ab_json_int(&d, dc, "horizon", AB_DECODE_HORIZON);
    } else {
        ab_json_null(&d, o, "decode");
    }
    int rc = ab_json_print(&d, stdout);
    return rc ? ab_cmd_fail(rc) : EX_AB_OK;
}

/* `methods --crossover --json`: {schema, d, dv, exact {flops_per_key, bytes_per_key}, rows:
 * [{method, knob_name, knob, flops_per_query, bytes_per_query, grows, n_flops, n_bytes}]}. */
static int json_crossover(int64_t d_, int64_t dv)
{
    struct ab_json_doc d;
    ab_json_begin(&d);
    ab_json_str(&d, d.root, "schema", "attnbench/crossover/1");
    ab_json_int(&d, d.root, "d", d_);
    ab_json_int(&d, d.root, "dv", dv);
    struct ab_json *ex = ab_json_obj(&d, d.root, "exact");
    ab_json_int(&d, ex, "flops_per_key", 2 * d_ + 2 * dv);
    ab_json_int(&d, ex, "bytes_per_key", 4 * (d_ + dv));
    struct ab_json *a = ab_json_arr(&d, d.root, "rows");
    for (int i = 0; i < ab_method_count(); i++) {
        const struct ab_method *me = ab_method_at(i);
        if (!is_crossover_row(me)) continue;
        struct xo_row r;
        int rc = crossover_row(me, d_, dv, &r);
        if (rc) {
            ab_json_end(&d);
            return ab_cmd_fail(rc);
        }
        struct ab_json *o = ab_json_obj(&d, a, NULL);
        ab_json_str(&d, o, "method", me->name);
        ab_json_str(&d, o, "knob_name", me->knob.name);
        if (me->knob.name) ab_json_num(&d, o, "knob", me->knob.def);
        else ab_json_null(&d, o, "knob");
        ab_json_num(&d, o, "flops_per_query", r.flops);
        ab_json_num(&d, o, "bytes_per_query", r.bytes);
        ab_json_bool(&d, o, "grows", r.grows);
        ab_json_num(&d, o, "n_flops", r.n_flops);
        ab_json_num(&d, o, "n_bytes", r.n_bytes);
    }
    int rc = ab_json_print(&d, stdout);
    return rc ? ab_cmd_fail(rc) : EX_AB_OK;
}

int cmd_methods(int argc, char **argv)
{
    int xo = 0, json = 0;
    int64_t d = 64, dv = 0;
    struct ab_opt_many plugins = {0};
    const struct ab_opt opts[] = {
        {"plugin", AB_OPT_MANY, &plugins, "SO", "load method rows from this plugin first (repeatable; plugins/README.md)"},
        {"crossover", AB_OPT_FLAG, &xo, NULL, "the decode context length where exact decode costs more than each linear row"},
        {"d", AB_OPT_INT, &d, "D", "--crossover: head dimension (default 64)"},
        {"dv", AB_OPT_INT, &dv, "DV", "--crossover: value dimension (default d)"},
        {"json", AB_OPT_FLAG, &json, NULL, "print one JSON document instead of the table (README, \"Machine-readable output\")"},
        {NULL, AB_OPT_END, NULL, NULL, NULL}};
    char *pos[1];
    int n_pos, st = ab_opts_parse("methods", usage_text, opts, argc, argv, pos, 1, &n_pos);
    if (st >= 0) return st;
    for (int i = 0; i < plugins.n; i++) {
        int rc = ab_plugin_load(plugins.v[i]);
        if (rc) return ab_cmd_fail(rc);
    }
    if (xo) {
        if (d < 2 || d > 4096 || dv < 0 || dv > 4096)
            return ab_cmd_error(EX_AB_USAGE, "methods: --d must be in [2, 4096] and --dv in [1, 4096]");
        if (json) return json_crossover(d, dv ? dv : d);
        int rc = crossover(d, dv ? dv : d);
        return rc ? ab_cmd_fail(rc) : EX_AB_OK;
    }
    char ph[32], mk[32], kn[64];
    if (n_pos == 1) {
        const struct ab_method *m = ab_method_find(pos[0]);
        if (!m)
            return ab_cmd_error(EX_AB_USAGE, "unknown method '%s' (see 'attnbench methods')", pos[0]);
        if (json) return json_one(m);
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
        if (has_decode_split(m)) {
            int rc = print_decode_split(m);
            if (rc) return ab_cmd_fail(rc);
        }
        printf("citation   %s\n", m->citation);
        if (ab_method_origin(m)) printf("plugin     %s\n", ab_method_origin(m));
        return EX_AB_OK;
    }
    if (json) return json_methods();
    printf("%-16s %-8s %-15s %-13s %-22s %s\n", "name", "family", "phases", "masks", "knob",
           "cost");
    for (int i = 0; i < ab_method_count(); i++) {
        const struct ab_method *m = ab_method_at(i);
        phases_text(m->phases, ph, sizeof ph);
        masks_text(m->masks, mk, sizeof mk);
        knob_text(m, kn, sizeof kn);
        printf("%-16s %-8s %-15s %-13s %-22s %s%s%s\n", m->name, ab_family_name(m->family), ph, mk,
               kn, ab_method_origin(m) ? "[plugin] " : "",
               m->flags & AB_METHOD_OPERATOR ? "[operator, not softmax] " : "",
               m->cost_words ? m->cost_words : "");
    }
    int from_plugins = 0;
    for (int i = 0; i < ab_method_count(); i++) from_plugins += ab_method_origin(ab_method_at(i)) != NULL;
    printf("\n%d methods", ab_method_count());
    if (from_plugins) printf(" (%d from plugins)", from_plugins);
    printf("; 'attnbench methods NAME' shows one with its citation.\n");
    return EX_AB_OK;
}
