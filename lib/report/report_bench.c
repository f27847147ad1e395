/* report_bench.c - the /bench table (bench.h) and the report's "Measured speed" section. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "io/h5_util.h"
#include "report/bench.h"
#include "report/gnuplot.h"
#include "report/report_internal.h"

#define COL(f, t, u, l)                                                                            \
    {                                                                                              \
#f, t, offsetof(struct ab_bench_row, f), u, l                                              \
    }
const struct ab_column ab_bench_cols[] = {
    COL(method, AB_COL_STR, "", "registry method"),
    COL(family, AB_COL_STR, "", "method family"),
    COL(phase, AB_COL_STR, "", "prefill (every row) or decode (the last rows)"),
    COL(target_ratio, AB_COL_F64, "1", "target FLOP ratio the knob was fitted to"),
    COL(knob, AB_COL_F64, "1", "the fitted knob (NaN: none fits)"),
    COL(flop_ratio, AB_COL_F64, "1", "counted FLOPs over dense (amortised as in run)"),
    COL(kept_share, AB_COL_F64, "1", "kept (row, key) cells over the visible ones"),
    COL(select_s, AB_COL_F64, "s",
        "median time of the selection (the kept set; one-off work "
        "such as SnapKV's window scores counted in full, not amortised)"),
    COL(select_step_s, AB_COL_F64, "s",
        "select_s with its one-off part spread over the decode "
        "horizon G as flop_ratio spreads it (the part split by the ledger's FLOP shares); = "
        "select_s in prefill"),
    COL(token_s, AB_COL_F64, "s", "median time of token-sparse attention over the kept set"),
    COL(block_s, AB_COL_F64, "s", "prefill: median time of block-sparse attention (64 x 64 tiles)"),
    COL(compact_s, AB_COL_F64, "s",
        "decode, when every row keeps one cache: median time of "
        "compacting it and reading it with the dense kernel"),
    COL(kernel, AB_COL_STR, "", "the fastest kernel: token, block or compact"),
    COL(attend_s, AB_COL_F64, "s", "the faster kernel's time"),
    COL(time_s, AB_COL_F64, "s", "select_step_s + attend_s"),
    COL(dense_time_s, AB_COL_F64, "s",
        "median time of the dense kernel on the same rows, same run"),
    COL(time_ratio, AB_COL_F64, "1", "time_s / dense_time_s"),
    COL(n, AB_COL_I64, "1", "keys of the head"),
    COL(rows, AB_COL_I64, "1", "query rows timed"),
    COL(reason, AB_COL_STR, "", "why the row has no time (empty when it has)"),
};
#undef COL
const int ab_bench_n_cols = (int)(sizeof ab_bench_cols / sizeof ab_bench_cols[0]);

void ab_bench_rows_free(struct ab_bench_row *rows, int64_t n)
{
    for (int64_t i = 0; rows && i < n; i++) {
        free(rows[i].method), free(rows[i].family), free(rows[i].phase);
        free(rows[i].kernel), free(rows[i].reason);
    }
    free(rows);
}

int ab_bench_load(const char *path, struct ab_bench_row **rows, int64_t *n)
{
    struct ab_h5 f;
    *rows = NULL, *n = 0;
    int rc = ab_h5_open(&f, path);
    if (rc) return rc;
    if (!ab_h5_exists(&f, "/bench")) {
        ab_h5_close(&f);
        return ab_fail(AB_E_DATA,
                       "'%s': no /bench table (not written by `attnbench bench "
                       "methods`)",
                       path);
    }
    void *r = NULL;
    rc = ab_h5_get_table(&f, "/bench", ab_bench_cols, ab_bench_n_cols, sizeof **rows, &r, n);
    ab_h5_close(&f);
    if (rc) return ab_fail(rc, "'%s': %s", path, ab_errmsg());
    *rows = r;
    return AB_OK;
}

int ab_bench_figure(const char *dir, const char *stem, const char *gnuplot,
                    const struct ab_bench_row *rows, int64_t n, int *drawn)
{
    enum { MAXC = 64 };
    struct ab_gp_axes pan[2];
    struct ab_gp_curve cur[2][MAXC];
    double *x = malloc(sizeof(double) * (size_t)(2 * n + 8)), *y = x ? x + n + 4 : NULL;
    static const double ref[2] = {1e-3, 1};
    int *style = malloc(sizeof(int) * (size_t)(n + 1)), n_styles = 0;
    *drawn = 0;
    if (!x || !style) {
        free(x), free(style);
        return ab_fail(AB_E_NOMEM, "out of memory");
    }
    int n_pan = 0, at = 0;
    double lo = 1;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(rows[i].time_ratio) && rows[i].time_ratio > 0 && rows[i].flop_ratio > 0)
            lo = fmin(lo, fmin(rows[i].time_ratio, rows[i].flop_ratio));
    /* one style per method across both panels: its rank of first appearance */
    for (int64_t i = 0; i < n; i++) {
        int64_t j = 0;
        while (j < i && strcmp(rows[j].method, rows[i].method)) j++;
        style[i] = j < i ? style[j] : n_styles++;
    }
    for (int ph = 0; ph < 2; ph++) {
        const char *phase = ph ? "decode" : "prefill";
        int nc = 0;
        for (int64_t i = 0; i < n && nc < MAXC - 1; i++) {
            if (strcmp(rows[i].phase, phase) || !isfinite(rows[i].time_ratio) ||
                !(rows[i].time_ratio > 0) || !(rows[i].flop_ratio > 0))
                continue;
            int c = 0; /* the method's curve: its rows are consecutive */
            while (c < nc && strcmp(cur[ph][c].title, rows[i].method)) c++;
            if (c == nc)
                cur[ph][nc++] = (struct ab_gp_curve){
                    .title = rows[i].method, .style = style[i], .n = 0, .x = x + at, .y = y + at};
            if (cur[ph][c].x + cur[ph][c].n != x + at) continue; /* not consecutive: skipped */
            x[at] = rows[i].flop_ratio, y[at] = rows[i].time_ratio, at++;
            cur[ph][c].n++;
        }
        if (!nc) continue;
        cur[ph][nc++] = (struct ab_gp_curve){.title = "y = x (time saved = FLOPs saved)",
                                             .style = AB_GP_REFLINE,
                                             .n = 2,
                                             .x = ref,
                                             .y = ref};
        pan[n_pan++] = (struct ab_gp_axes){.title = phase,
                                           .xlabel = "counted FLOP ratio (log)",
                                           .ylabel = "measured time ratio to dense, same run (log)",
                                           .logx = 1,
                                           .logy = 1,
                                           .xmin = lo / 1.5,
                                           .xmax = 1.2,
                                           .ymin = NAN,
                                           .ymax = NAN,
                                           .n_curves = nc,
                                           .curves = cur[ph]};
    }
    int rc = AB_OK;
    if (n_pan) {
        struct ab_gp_figure fig = {.name = stem,
                                   .title = "Measured speed against counted FLOPs "
                                            "(selection + sparse attention over dense)",
                                   .rows = 1,
                                   .cols = n_pan,
                                   .n_panels = n_pan,
                                   .panels = pan,
                                   .width = 560 * n_pan + 260,
                                   .height = 520};
        rc = ab_gp_figure_write(dir, &fig);
        if (!rc && gnuplot) rc = ab_gnuplot_render(gnuplot, dir, stem);
        if (!rc) *drawn = n_pan;
    }
    free(x), free(style);
    return rc;
}

/* ---- the report's section ---------------------------------------------------------------- */

int ab_rep_bench_load(struct rep *R)
{
    if (!R->o->bench) return AB_OK;
    return ab_bench_load(R->o->bench, &R->bench, &R->n_bench);
}

/* Whether a timed row realises its counted saving: time within 1.2 flop + 0.05 of dense (the
 * block-sparse target of issue 14, with the same slack for selection and kernel overheads). */
static int realised(const struct ab_bench_row *b)
{
    return b->time_ratio <= 1.2 * b->flop_ratio + 0.05;
}

int ab_rep_bench(struct rep *R)
{
    if (!R->o->bench) return AB_OK;
    int drawn = 0;
    int rc = ab_bench_figure(R->o->dir, "speed", NULL, R->bench, R->n_bench, &drawn);
    if (rc) return rc;
    struct strv *notes = &R->notes[SEC_SPEED];
    int64_t timed = 0, ok = 0;
    for (int64_t i = 0; i < R->n_bench; i++)
        if (isfinite(R->bench[i].time_ratio)) timed++, ok += realised(&R->bench[i]);
    const struct ab_bench_row *b0 = R->n_bench ? &R->bench[0] : NULL;
    rc = ab_rep_strv_push(notes,
                          "From `%s` (`attnbench bench methods`): %lld rows, %lld timed "
                          "on one head of %lld keys; times are medians measured in one run, "
                          "dense on the same rows in the same run. %lld of the %lld timed rows "
                          "realise their counted saving (time ratio <= 1.2 x FLOP ratio + 0.05).",
                          R->o->bench, (long long)R->n_bench, (long long)timed,
                          (long long)(b0 ? b0->n : 0), (long long)ok, (long long)timed);
    if (!rc && drawn)
        rc = ab_rep_add_fig(R, SEC_SPEED, 1, "speed.png",
                            "Measured time ratio (selection + sparse attention, over dense) "
                            "against the counted FLOP ratio: below y = x the method saves more "
                            "time than FLOPs, above it the kernel does not realise its saving");
    /* the table, one line per row */
    size_t cap = 256, len = 0; /* enough for every line: the table is never cut */
    for (int64_t i = 0; i < R->n_bench; i++)
        cap += 320 + strlen(R->bench[i].method) + strlen(R->bench[i].phase) +
               strlen(R->bench[i].kernel) + strlen(R->bench[i].reason);
    char *t = malloc(cap);
    if (!rc && !t) rc = ab_fail(AB_E_NOMEM, "out of memory");
    if (!rc) {
        len += (size_t)snprintf(t + len, cap - len,
                                "| method | phase | target | FLOP ratio | time ratio | kernel | "
                                "selection s | attention s | dense s | note |\n"
                                "|---|---|---:|---:|---:|---|---:|---:|---:|---|\n");
        for (int64_t i = 0; i < R->n_bench && len < cap; i++) {
            const struct ab_bench_row *b = &R->bench[i];
            if (isfinite(b->time_ratio))
                len += (size_t)snprintf(t + len, cap - len,
                                        "| %s | %s | %.4g | %.3f | %.3f | %s | %.3g | %.3g | "
                                        "%.3g | %s |\n",
                                        b->method, b->phase, b->target_ratio, b->flop_ratio,
                                        b->time_ratio, b->kernel, b->select_step_s, b->attend_s,
                                        b->dense_time_s, realised(b) ? "" : "saving not realised");
            else
                len += (size_t)snprintf(t + len, cap - len,
                                        "| %s | %s | %.4g | %.3f | - | - | "
                                        "- | - | - | not timed: %s |\n",
                                        b->method, b->phase, b->target_ratio, b->flop_ratio,
                                        b->reason);
        }
        rc = ab_rep_strv_push(notes, "%s", t);
    }
    free(t);
    return rc;
}
