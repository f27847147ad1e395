/* kept_map.c - the map figures of one head (kept_map.h): its exact attention map, and the mask
 * one selecting method keeps on it at a FLOP budget drawn over that map. Used by `attnbench
 * render` and by the maps of `attnbench report`. For the mask it rebuilds the problem `run`
 * builds for that head (rows, decode queries, the layer's heads for layer-wide methods, the
 * seed stream), fits the knob to the budget as `run` does, runs the method once and draws what
 * it kept; only the heads a figure needs are loaded from the file. Both pool the map here
 * (map_pool.h) and leave the drawing to gnuplot (gnuplot.h, ab_gp_map_write). */
#include "report/kept_map.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "core/rng.h"
#include "eval/eval.h"
#include "eval/results.h"
#include "io/h5_workload.h"
#include "methods/method.h"
#include "report/gnuplot.h"
#include "report/map_pool.h"

void ab_kept_map_defaults(struct ab_kept_map_opts *o)
{
    *o = (struct ab_kept_map_opts){.budget = 0.125, .decode_m = 64, .seed = 1,
                                   .size = 512, .floor = 1e-6};
}

/* The head instance of (layer, query head) over buffers read from the file. */
static struct ab_head make_head(const struct ab_workload *meta, const float *q, const float *k,
                                const float *v)
{
    return (struct ab_head){.n_q = meta->n_seq, .n_k = meta->n_seq, .d = meta->d,
                            .d_v = meta->d_v, .q = q, .k = k, .v = v,
                            .q_pos = meta->positions, .k_pos = meta->positions,
                            .mask = meta->causal ? AB_MASK_CAUSAL : AB_MASK_FULL,
                            .scale = meta->scale, .rope_theta = 0};
}

/* "w.h5, layer 2, head 5 (planted profile: retrieval)": the file name, and the profile when the
 * workload records one. */
static void head_label(const char *path, const struct ab_workload *meta, int64_t layer,
                       int64_t head, char *buf, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *prof = meta->profile && layer >= 0 && layer < meta->n_layer
                           ? meta->profile[layer * meta->n_kv_head + ab_workload_kv_of(meta, head)]
                           : NULL;
    snprintf(buf, cap, "%s, layer %lld, head %lld%s%s%s", base, (long long)layer, (long long)head,
             prof && *prof ? " (planted profile: " : "", prof && *prof ? prof : "",
             prof && *prof ? ")" : "");
}

/* Reads (layer, head) into a head over buffers the caller frees; validates it, naming it. */
static int read_head(const char *path, const struct ab_workload *meta, int64_t layer, int64_t head,
                     float **q, float **k, float **v, struct ab_head *h)
{
    int rc = ab_h5_workload_read_head(path, meta, layer, head, q, k, v);
    if (rc != AB_OK) return rc;
    *h = make_head(meta, *q, *k, *v);
    if ((rc = ab_head_validate(h)) != AB_OK) {
        char msg[400]; /* ab_errmsg() is the buffer ab_fail writes: copy it first */
        snprintf(msg, sizeof msg, "%s", ab_errmsg());
        rc = ab_fail(rc, "'%s': layer %lld head %lld: %s", path, (long long)layer, (long long)head,
                     msg);
    }
    return rc;
}

int ab_map_figure_write(const char *path, const struct ab_workload *meta, int64_t layer,
                        int64_t head, int64_t size, double floor, const char *dir, const char *name)
{
    float *q = NULL, *k = NULL, *v = NULL;
    struct ab_head h;
    struct ab_map_grid g = {0};
    int rc = read_head(path, meta, layer, head, &q, &k, &v, &h);
    if (rc == AB_OK) rc = ab_map_pool(&h, size, &g);
    if (rc == AB_OK) {
        char title[400], sub[200];
        head_label(path, meta, layer, head, title, sizeof title);
        double py = (double)h.n_q / (double)g.height, px = (double)h.n_k / (double)g.width;
        if (py == 1 && px == 1)
            snprintf(sub, sizeof sub, "exact attention, one pixel per cell");
        else
            snprintf(sub, sizeof sub,
                     "exact attention, each pixel the largest of %.3g × %.3g cells", py, px);
        struct ab_gp_map fig = {.name = name,
                                .title = title,
                                .subtitle = sub,
                                .grid = &g,
                                .kept = 0,
                                .causal = meta->causal,
                                .floor = floor,
                                .width = AB_MAP_FIG_W,
                                .height = AB_MAP_FIG_H};
        rc = ab_gp_map_write(dir, &fig);
    }
    ab_map_grid_free(&g);
    ab_free(q), ab_free(k), ab_free(v);
    return rc;
}

int ab_kept_map_write(const char *path, const struct ab_workload *meta, int64_t layer, int64_t head,
                      const struct ab_kept_map_opts *o, const char *dir, const char *name,
                      struct ab_kept_map_info *info)
{
    const struct ab_method *m = ab_method_find(o->method);
    if (!m) /* an external method (`ingest`) has cells but no rule to re-run here */
        return ab_fail(AB_E_USAGE, "'%s' is not a registry row (see 'attnbench methods'): an "
                       "external method's masks are not stored with its cells, so none can be "
                       "drawn", o->method);
    if (!(m->flags & AB_METHOD_SELECTS))
        return ab_fail(AB_E_USAGE, "method '%s' keeps no set of keys, so it has no mask to draw",
                       m->name);
    int phase = o->phase ? o->phase
                         : (m->phases & AB_PHASE_PREFILL) ? AB_PHASE_PREFILL : AB_PHASE_DECODE;
    if (!(m->phases & (unsigned)phase))
        return ab_fail(AB_E_USAGE, "method '%s' has no %s phase", m->name,
                       phase == AB_PHASE_PREFILL ? "prefill" : "decode");
    if (!(m->masks & (meta->causal ? AB_MASKS_CAUSAL : AB_MASKS_FULL)))
        return ab_fail(AB_E_USAGE, "method '%s' does not support the %s mask of '%s'", m->name,
                       meta->causal ? "causal" : "full", path);
    if (!(o->budget > 0 && o->budget <= 1))
        return ab_fail(AB_E_USAGE, "budget %g is not a FLOP ratio in (0, 1]", o->budget);
    int64_t n = meta->n_seq;
    if (phase == AB_PHASE_DECODE && (o->decode_m < 1 || o->decode_m >= n))
        return ab_fail(AB_E_USAGE, "decode queries %lld must be in [1, %lld]",
                       (long long)o->decode_m, (long long)n - 1);

    /* the heads the method reads: the whole layer, or this head alone */
    int whole = (m->flags & AB_METHOD_LAYER) != 0;
    int64_t n_heads = whole ? meta->n_head : 1, self = whole ? head : 0;
    struct ab_head *heads = calloc((size_t)n_heads, sizeof *heads);
    float **bufs = calloc((size_t)(3 * n_heads), sizeof(float *));
    int64_t *rows = NULL;
    float *out = NULL;
    struct ab_map_grid g = {0};
    struct ab_keep keep = {0};
    struct ab_problem p = {0};
    int rc = AB_OK;
    if (!heads || !bufs) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n_heads; i++)
        if ((rc = read_head(path, meta, layer, whole ? i : head, &bufs[3 * i], &bufs[3 * i + 1],
                            &bufs[3 * i + 2], &heads[i])) != AB_OK)
            goto done;

    /* rows: prefill, the last row of each of H bands (H = image height); decode, every one */
    int64_t side = AB_MIN(n, o->size), q0 = phase == AB_PHASE_DECODE ? n - o->decode_m : 0;
    int64_t n_rows = phase == AB_PHASE_DECODE ? o->decode_m : side;
    rows = malloc(sizeof(int64_t) * (size_t)n_rows);
    out = ab_alloc(ab_size_mul((size_t)(n_rows * meta->d_v), sizeof(float)));
    if (!rows || !out || (rc = ab_keep_alloc(&keep, n_rows, n)) != AB_OK) {
        rc = rc ? rc : ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t r = 0; r < n_rows; r++)
        rows[r] = phase == AB_PHASE_DECODE ? q0 + r : ((r + 1) * n) / n_rows - 1;
    p = (struct ab_problem){.h = &heads[self], .phase = phase, .q0 = q0, .rows = rows,
                            .n_rows = n_rows, .layer = heads, .n_layer_heads = n_heads,
                            .self = self,
                            .group = whole ? meta->n_head / meta->n_kv_head : 1,
                            .seed = ab_stream(o->seed, (uint64_t)layer, (uint64_t)head, 7)};
    if ((rc = ab_problem_prepare(m, &p)) != AB_OK) goto done; /* once: the fit and the run */

    double knob = NAN;
    int feasible = 0;
    struct ab_ledger led = {0};
    if ((rc = ab_budget_fit(m, &p, o->budget, &knob, &led, &feasible)) != AB_OK) goto done;
    if ((m->knob.name && isnan(knob)) || (!m->knob.name && !feasible)) {
        rc = ab_fail(AB_E_USAGE,
                     "'%s' cannot reach FLOP ratio %g on layer %lld head %lld (%s): its "
                     "smallest cost is %.3g",
                     m->name, o->budget, (long long)layer, (long long)head,
                     phase == AB_PHASE_PREFILL ? "prefill" : "decode", ab_ledger_ratio(&led, &p));
        goto done;
    }
    led = (struct ab_ledger){0};
    ab_keep_clear(&keep);
    if ((rc = m->run(&p, knob, out, &keep, &led)) != AB_OK) goto done;
    double kept = 0, visible = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        int64_t vis = ab_head_visible(&heads[self], rows[r]);
        visible += (double)vis;
        kept += (double)AB_MIN(vis, ab_keep_count(&keep, r));
    }
    double recall = NAN;
    if ((rc = ab_mask_pool(&heads[self], rows, n_rows, &keep, o->size, &g, &recall)) != AB_OK)
        goto done;
    if (phase == AB_PHASE_PREFILL) g.ymin = -0.5, g.ymax = (double)n - 0.5; /* every query */
    struct ab_kept_map_info in = {.phase = phase,
                                  .knob = knob,
                                  .ratio = ab_ledger_ratio(&led, &p),
                                  .feasible = feasible,
                                  .kept_share = visible > 0 ? kept / visible : NAN,
                                  .recall = recall,
                                  .n_rows = n_rows};
    char title[400], sub[400], budget[32];
    ab_ratio_label(o->budget, budget, sizeof budget);
    snprintf(title, sizeof title, "%s, %s, budget %s: FLOP ratio %.3g, recall %.3g", m->name,
             phase == AB_PHASE_PREFILL ? "prefill" : "decode", budget, in.ratio, in.recall);
    head_label(path, meta, layer, head, sub, sizeof sub);
    if (m->knob.name && !isnan(knob)) {
        size_t len = strlen(sub);
        snprintf(sub + len, sizeof sub - len, "; %s = %.4g", m->knob.name, knob);
    }
    struct ab_gp_map fig = {.name = name,
                            .title = title,
                            .subtitle = sub,
                            .grid = &g,
                            .kept = 1,
                            .causal = meta->causal,
                            .floor = o->floor,
                            .width = AB_MAP_FIG_W,
                            .height = AB_MAP_FIG_H};
    if ((rc = ab_gp_map_write(dir, &fig)) != AB_OK) goto done;
    if (info) *info = in;
done:
    ab_problem_unprepare(m, &p);
    for (int64_t i = 0; bufs && i < 3 * n_heads; i++) ab_free(bufs[i]);
    free(bufs), free(heads), free(rows);
    ab_map_grid_free(&g);
    ab_free(out);
    ab_keep_free(&keep);
    return rc;
}
