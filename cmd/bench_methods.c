/* bench_methods.c - `attnbench bench methods`: does a method's FLOP saving become wall time? For
 * each selection method at the knob fitted to each budget on one head, the time of its
 * selection (the kept set) and of its attention are measured separately, through both kernels
 * of lib/attn/sparse.c (token-sparse: work proportional to the kept cells; block-sparse, in
 * prefill: proportional to the kept 64 x 64 tiles, at GEMM speed) and, in decode when every
 * row keeps one cache, the compacted cache read by the dense kernel (lib/attn/compact.c,
 * compaction timed with it), the fastest counted, next
 * to the dense blocked kernel on the same rows in the same run; time_ratio = (select + attend)
 * / dense sits beside flop_ratio. Medians of --reps runs after a warm-up. Rows go to B.h5 (/bench) and
 * B.csv. Methods without a kept set (linear operators, calibration) and those that plan over a
 * whole model have no sparse kernel here: their row says so and the table goes on. The figure
 * B.png (gnuplot; B.gp and B.tsv beside it) plots time_ratio against flop_ratio, log-log, one
 * panel per phase, one line per method, with y = x: a point below the line saves more time
 * than FLOPs, above it the kernel does not realise its counted saving. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "core/machine.h"
#include "core/workload.h"
#include "eval/eval.h"
#include "io/csv.h"
#include "io/h5_util.h"
#include "io/h5_workload.h"
#include "methods/memo.h"
#include "methods/method.h"
#include "report/bench.h"
#include "report/gnuplot.h"
#include "opts.h"

static const char *usage_text =
    "attnbench bench methods --methods LIST (--workload W.h5 [--head L:H] | --n N --d D)\n"
    "                        [--budgets 0.5,0.25,...] [--phase prefill|decode|both]\n"
    "                        [--decode-queries M] [--reps R] [--plugin SO]... -o B.h5";

enum { MAX_METHODS = 256, MAX_TARGETS = 32 };


/* The kept cache of a decode problem when every row keeps the same one (the last row's kept
 * keys cut at the row's position, as a compressed KV cache is): its key indices into idx
 * (malloc'd), their count returned; 0 when the rows keep different sets. */
static int64_t shared_cache(const struct ab_problem *p, const struct ab_keep *keep, int64_t **idx)
{
    int64_t n = p->h->n_k, last = p->n_rows - 1, c = 0;
    int64_t *x = malloc(sizeof(int64_t) * (size_t)n);
    if (!x) return 0;
    for (int64_t j = 0; j < n; j++)
        if (ab_keep_has(keep, last, j)) x[c++] = j;
    for (int64_t r = 0; r < last && c; r++) {
        int64_t want = 0;
        for (int64_t t = 0; t < c && x[t] <= p->h->q_pos[p->rows[r]]; t++) {
            if (!ab_keep_has(keep, r, x[t])) c = 0;
            want++;
        }
        if (c && ab_keep_count(keep, r) != want) c = 0;
    }
    if (!c) free(x), x = NULL;
    *idx = x;
    return c;
}

/* Times one (method, phase, target) on problem p into row. */
static int time_cell(const struct ab_method *me, const struct ab_problem *head, double target,
                     int reps, double dense_s, struct ab_bench_row *row)
{
    struct ab_apply_opts ao = {0};
    struct ab_applied ap;
    struct ab_keep keep = {0};
    struct ab_problem prepared = *head, *p = &prepared;
    int rc = ab_problem_prepare(me, p);
    if (rc) return rc;
    /* prepare()'s work is part of each timed selection, unless it is the model's own (method.h) */
    int timed_prep = me->prepare && !(me->flags & AB_METHOD_PREP_FREE);
    rc = ab_keep_alloc(&keep, p->n_rows, p->h->n_k);
    float *o = ab_alloc(ab_size_mul((size_t)(p->n_rows * p->h->d_v), sizeof(float)));
    if (!rc && !o) rc = ab_fail(AB_E_NOMEM, "out of memory");
    if (!rc) rc = ab_method_apply(me, p, target, &ao, NULL, &keep, NULL, &ap);
    row->knob = ap.knob;
    if (!rc && !ap.ran) {
        row->reason = strdup(ap.reason[0] ? ap.reason : "no knob meets the budget");
        row->flop_ratio = ab_ledger_ratio(&ap.led, p);
    } else if (!rc) {
        row->flop_ratio = ab_ledger_ratio(&ap.led, p);
        double t_sel[64], t_tok[64], t_blk[64], kept = 0, vis = 0;
        int prefill = p->q0 == 0;
        ab_memo_bypass(1); /* every repetition computes the selection in full */
        for (int r = -1; r < reps && !rc; r++) {
            struct ab_ledger led;
            struct ab_problem fresh = *p;
            ab_keep_clear(&keep);
            double t0 = ab_now();
            if (timed_prep) rc = ab_problem_prepare(me, &fresh);
            if (!rc) rc = me->run(&fresh, ap.knob, NULL, &keep, &led);
            double t1 = ab_now();
            if (timed_prep) ab_problem_unprepare(me, &fresh);
            if (!rc) rc = ab_attn_sparse(p->h, p->rows, p->n_rows, keep.bits, keep.words, o);
            double t2 = ab_now();
            if (!rc && prefill) rc = ab_attn_block_sparse(p->h, keep.bits, keep.words, o);
            double t3 = ab_now();
            if (r >= 0) t_sel[r] = t1 - t0, t_tok[r] = t2 - t1, t_blk[r] = t3 - t2;
        }
        ab_memo_bypass(0);
        for (int64_t r = 0; r < p->n_rows; r++)
            kept += (double)ab_keep_count(&keep, r), vis += (double)ab_head_visible(p->h, p->rows[r]);
        row->kept_share = vis > 0 ? kept / vis : NAN;
        row->select_s = ab_median(t_sel, reps), row->token_s = ab_median(t_tok, reps);
        row->block_s = prefill ? ab_median(t_blk, reps) : NAN;
        row->compact_s = NAN;
        int64_t *idx = NULL, n_idx = prefill || rc ? 0 : shared_cache(p, &keep, &idx);
        double t_cmp[64];
        for (int r = -1; n_idx && r < reps && !rc; r++) { /* compaction counted in every step */
            struct ab_compact cc;
            double t0 = ab_now();
            rc = ab_attn_compact(p->h, idx, n_idx, &cc);
            if (!rc) {
                struct ab_head dec = cc.h;
                dec.n_q = p->n_rows, dec.q = p->h->q + p->q0 * p->h->d;
                dec.q_pos = p->h->q_pos + p->q0;
                rc = ab_attn_fast(&dec, o, NULL);
                ab_attn_compact_free(&cc);
            }
            if (r >= 0) t_cmp[r] = ab_now() - t0;
        }
        if (n_idx && !rc) row->compact_s = ab_median(t_cmp, reps);
        free(idx);
        const char *kern = "token";
        row->attend_s = row->token_s;
        if (prefill && row->block_s < row->attend_s) row->attend_s = row->block_s, kern = "block";
        if (row->compact_s < row->attend_s) row->attend_s = row->compact_s, kern = "compact";
        row->kernel = strdup(kern);
        /* one-off selection work counts as the FLOP ratio counts it: weight m / G (budget.c) */
        double once = ap.led.flops_once, step = ap.led.flops_select, w = ab_once_weight(p);
        double share = once + step > 0 ? (step + w * once) / (step + once) : 1.0;
        row->select_step_s = row->select_s * share;
        row->time_s = row->select_step_s + row->attend_s;
        row->time_ratio = row->time_s / dense_s;
    }
    ab_free(o);
    ab_keep_free(&keep);
    ab_problem_unprepare(me, p);
    return rc;
}

/* B.gp / B.tsv (and B.png when gnuplot is there): measured time ratio against FLOP ratio. */
static int speed_figure(const char *out, const struct ab_bench_row *rows, int n_rows)
{
    char dir[4096], stem[1024];
    const char *slash = strrchr(out, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - out) : 1, slash ? out : ".");
    const char *base = slash ? slash + 1 : out;
    size_t len = strlen(base);
    if (len > 3 && !strcmp(base + len - 3, ".h5")) len -= 3;
    snprintf(stem, sizeof stem, "%.*s", (int)len, base);
    char *gp = NULL;
    if (ab_gnuplot_find("gnuplot", &gp) != AB_OK) gp = NULL;
    int drawn, rc = ab_bench_figure(dir, stem, gp, rows, n_rows, &drawn);
    free(gp);
    return rc;
}

int cmd_bench_methods(int argc, char **argv)
{
    const char *methods = NULL, *workload = NULL, *head = "0:0", *budgets = NULL,
               *phase = "prefill", *out = NULL;
    int64_t n = 0, d = 64, m = 64, reps = 5;
    struct ab_opt_many plugins = {0};
    const struct ab_opt opts[] = {
        {"plugin", AB_OPT_MANY, &plugins, "SO", "load method rows from this plugin first (repeatable; plugins/README.md)"},
        {"methods", AB_OPT_STRING, &methods, "LIST", "methods to time (default: every selection method of the phase)"},
        {"workload", AB_OPT_STRING, &workload, "W.h5", "a workload file: time one of its heads"},
        {"head", AB_OPT_STRING, &head, "L:H", "--workload: the head (default 0:0)"},
        {"n", AB_OPT_INT, &n, "N", "without --workload: a seeded Gaussian head of N keys"},
        {"d", AB_OPT_INT, &d, "D", "without --workload: its head dimension (default 64)"},
        {"budgets", AB_OPT_STRING, &budgets, "LIST", "target FLOP ratios (default 0.25,0.125,0.0625)"},
        {"phase", AB_OPT_STRING, &phase, "P", "prefill, decode or both (default prefill)"},
        {"decode-queries", AB_OPT_INT, &m, "M", "decode: the last M rows (default 64)"},
        {"reps", AB_OPT_INT, &reps, "R", "timed runs per cell after a warm-up, median kept (default 5, at most 64)"},
        {"o", AB_OPT_STRING, &out, "B.h5", "table to write (B.csv beside it)"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[1];
    int n_pos, st = ab_opts_parse("bench methods", usage_text, opts, argc, argv, pos, 0, &n_pos);
    if (st >= 0) return st;
    for (int i = 0; i < plugins.n; i++) {
        int rc = ab_plugin_load(plugins.v[i]);
        if (rc) return ab_cmd_fail(rc);
    }
    if (!out) return ab_cmd_error(EX_AB_USAGE, "bench methods: name the table with -o B.h5");
    if (!workload == !n)
        return ab_cmd_error(EX_AB_USAGE, "bench methods: give --workload W.h5 or --n N (one of them)");
    if (n < 0 || d < 1 || m < 1 || reps < 1 || reps > 64)
        return ab_cmd_error(EX_AB_USAGE, "bench methods: --n, --d, --decode-queries must be "
                            "positive and --reps in 1..64");
    unsigned phases = !strcmp(phase, "prefill") ? AB_PHASE_PREFILL
                      : !strcmp(phase, "decode") ? AB_PHASE_DECODE
                      : !strcmp(phase, "both")   ? AB_PHASE_PREFILL | AB_PHASE_DECODE : 0;
    if (!phases)
        return ab_cmd_error(EX_AB_USAGE, "bench methods: --phase must be prefill, decode or both, "
                            "got '%s'", phase);
    const struct ab_method *list[MAX_METHODS];
    int n_list;
    if ((st = ab_opts_methods("bench methods", methods, phases, 1, list, MAX_METHODS, &n_list)) >= 0)
        return st;
    double targets[MAX_TARGETS] = {0.25, 0.125, 0.0625};
    int n_t = 3;
    if (budgets && (st = ab_opts_budgets("bench methods", budgets, targets, MAX_TARGETS, &n_t)) >= 0)
        return st;

    /* the head: one of a workload's, or seeded Gaussian rows (logits of unit variance) */
    struct ab_workload w = {0};
    float *q = NULL, *k = NULL, *v = NULL;
    int32_t *ps = NULL;
    struct ab_head h;
    int64_t L = 0, H = 0;
    int rc;
    if (workload) {
        char tail;
        long long l, hh;
        if (sscanf(head, "%lld:%lld%c", &l, &hh, &tail) != 2)
            return ab_cmd_error(EX_AB_USAGE, "bench methods: --head wants LAYER:HEAD, got '%s'", head);
        if ((rc = ab_h5_workload_read(workload, &w))) return ab_cmd_fail(rc);
        if (l < 0 || l >= w.n_layer || hh < 0 || hh >= w.n_head) {
            ab_workload_free(&w);
            return ab_cmd_error(EX_AB_USAGE, "bench methods: --head %s is outside '%s' (%lld layers "
                                "x %lld heads)", head, workload, (long long)w.n_layer,
                                (long long)w.n_head);
        }
        L = l, H = hh;
        ab_workload_head(&w, L, H, &h);
    } else {
        if ((rc = ab_check_fits("the benchmark head", 12.0 * (double)n * (double)d))) return ab_cmd_fail(rc);
        q = ab_alloc((size_t)(n * d) * sizeof(float)), k = ab_alloc((size_t)(n * d) * sizeof(float));
        v = ab_alloc((size_t)(n * d) * sizeof(float)), ps = ab_alloc((size_t)n * sizeof(int32_t));
        if (!q || !k || !v || !ps) {
            ab_free(q), ab_free(k), ab_free(v), ab_free(ps);
            return ab_cmd_error(EX_AB_DATA, "bench methods: out of memory");
        }
        ab_bench_fill(q, n, d, 31), ab_bench_fill(k, n, d, 32), ab_bench_fill(v, n, d, 33);
        for (int64_t i = 0; i < n; i++) ps[i] = (int32_t)i;
        h = (struct ab_head){.n_q = n, .n_k = n, .d = d, .d_v = d, .q = q, .k = k, .v = v,
                             .q_pos = ps, .k_pos = ps, .mask = AB_MASK_CAUSAL,
                             .scale = 1.0 / sqrt((double)d)};
    }
    int64_t N = h.n_k;
    if ((phases & AB_PHASE_DECODE) && m >= N) {
        st = ab_cmd_error(EX_AB_USAGE, "bench methods: --decode-queries %lld must be below the %lld "
                          "keys", (long long)m, (long long)N);
        goto done;
    }
    struct ab_bench_row *rows = calloc((size_t)(2 * n_list * n_t), sizeof *rows);
    int64_t *all_rows = malloc(sizeof(int64_t) * (size_t)N);
    float *o = ab_alloc(ab_size_mul((size_t)(N * h.d_v), sizeof(float)));
    int n_rows = 0;
    rc = rows && all_rows && o ? AB_OK : ab_fail(AB_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < N && all_rows; i++) all_rows[i] = i;
    printf("%-16s %-8s %7s %8s %8s %8s %10s %10s %6s %10s %9s\n", "method", "phase", "target",
           "flops", "kept", "knob", "sel_step_s", "attend_s", "kernel", "dense_s", "time_ratio");
    for (int ph = AB_PHASE_PREFILL; ph <= AB_PHASE_DECODE && !rc; ph <<= 1) {
        if (!(phases & (unsigned)ph)) continue;
        int64_t q0 = ph == AB_PHASE_DECODE ? N - m : 0;
        struct ab_problem p = {.h = &h, .phase = ph, .q0 = q0, .rows = all_rows + q0,
                               .n_rows = N - q0, .layer = &h, .n_layer_heads = 1, .self = 0,
                               .group = 1, .seed = ab_common.seed, .layer_index = L, .n_layer = 1};
        /* dense on the same rows: the blocked kernel over the phase's query rows */
        struct ab_head dh = h;
        dh.n_q = N - q0, dh.q = h.q + q0 * h.d, dh.q_pos = h.q_pos + q0;
        double t_dense[64];
        for (int r = -1; r < reps && !rc; r++) {
            double t0 = ab_now();
            rc = ab_attn_fast(&dh, o, NULL);
            if (r >= 0) t_dense[r] = ab_now() - t0;
        }
        double dense_s = rc ? NAN : ab_median(t_dense, (int)reps);
        for (int mi = 0; mi < n_list && !rc; mi++) {
            const struct ab_method *me = list[mi];
            if (!(me->phases & (unsigned)ph)) continue;
            int fixed = !me->knob.name || (me->flags & AB_METHOD_FIXED);
            for (int t = 0; t < (fixed ? 1 : n_t) && !rc; t++) {
                struct ab_bench_row *row = &rows[n_rows++];
                *row = (struct ab_bench_row){.method = strdup(me->name),
                                          .family = strdup(ab_family_name(me->family)),
                                          .phase = strdup(ph == AB_PHASE_PREFILL ? "prefill" : "decode"),
                                          .target_ratio = fixed ? 1.0 : targets[t], .knob = NAN,
                                          .flop_ratio = NAN, .kept_share = NAN, .select_s = NAN,
                                          .select_step_s = NAN,
                                          .token_s = NAN, .block_s = NAN, .compact_s = NAN,
                                          .attend_s = NAN, .time_s = NAN, .dense_time_s = dense_s,
                                          .time_ratio = NAN, .n = N, .rows = N - q0};
                if (!(me->flags & AB_METHOD_SELECTS) || (me->flags & AB_METHOD_MODEL) ||
                    (me->flags & AB_METHOD_OPERATOR))
                    row->reason = strdup((me->flags & AB_METHOD_MODEL)
                                             ? "plans over a whole model: not timed on one head"
                                             : "no kept set: computes attention its own way (an "
                                               "operator or a calibration), no sparse kernel");
                else
                    rc = time_cell(me, &p, row->target_ratio, (int)reps, dense_s, row);
                if (rc) break;
                printf("%-16s %-8s %7.4g %8.4f %8.4f %8.4g %10.3g %10.3g %6s %10.3g %9.3f%s%s\n",
                       row->method, row->phase, row->target_ratio, row->flop_ratio,
                       row->kept_share, row->knob, row->select_step_s, row->attend_s,
                       row->kernel ? row->kernel : "-", row->dense_time_s, row->time_ratio,
                       row->reason ? "  " : "", row->reason ? row->reason : "");
                if (!row->reason) row->reason = strdup("");
                if (!row->kernel) row->kernel = strdup("");
            }
        }
    }
    if (!rc) { /* the table: HDF5 then CSV, both or neither */
        char csv[4096];
        size_t len = strlen(out);
        if (len > 3 && !strcmp(out + len - 3, ".h5")) len -= 3;
        snprintf(csv, sizeof csv, "%.*s.csv", (int)len, out);
        struct ab_h5 f = {0};
        int nc = ab_bench_n_cols;
        if (!(rc = ab_h5_create(&f, out))) {
            if ((rc = ab_h5_attr_put_str(&f, "/", "isa", ab_machine_isa())) ||
                (rc = ab_h5_attr_put_str(&f, "/", "blas_core", ab_machine_blas_core())) ||
                (rc = ab_h5_attr_put_int(&f, "/", "threads", ab_threads_get())) ||
                (rc = ab_h5_put_table(&f, "/bench", rows, n_rows, sizeof *rows, ab_bench_cols, nc)))
                ab_h5_abort(&f);
            else
                rc = ab_h5_commit(&f);
        }
        if (!rc && (rc = ab_csv_write_table(csv, rows, n_rows, sizeof *rows, ab_bench_cols, nc))) remove(out);
        if (!rc && (rc = speed_figure(out, rows, n_rows))) remove(out), remove(csv);
        if (!rc) {
            ab_out_file(out), ab_out_file(csv);
            ab_out_main("bench", out, "%d rows; %s beside it", n_rows, ab_path_base(csv));
        }
    }
    if (rc) st = ab_cmd_fail(rc);
    else st = EX_AB_OK;
    for (int i = 0; rows && i < n_rows; i++)
        free(rows[i].method), free(rows[i].family), free(rows[i].phase), free(rows[i].reason),
            free(rows[i].kernel);
    free(rows), free(all_rows);
    ab_free(o);
done:
    ab_workload_free(&w);
    ab_free(q), ab_free(k), ab_free(v), ab_free(ps);
    return st;
}
