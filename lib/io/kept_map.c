/* kept_map.c - the kept-mask picture (kept_map.h): the mask one selecting method keeps on one
 * head of a workload at a FLOP budget, drawn over that head's exact attention map. Used by
 * `attnbench render --method` and by the maps of `attnbench report`. It rebuilds the problem
 * `run` builds for that head (rows, decode queries, the layer's heads for layer-wide methods,
 * the seed stream), fits the knob to the budget as `run` does, runs the method once and draws
 * what it kept; only the heads the method reads are loaded from the file. */
#include "io/kept_map.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "core/rng.h"
#include "eval/eval.h"
#include "io/h5_workload.h"
#include "io/png_map.h"
#include "report/report_internal.h"
#include "methods/method.h"

void ab_kept_map_defaults(struct ab_kept_map_opts *o)
{
    *o = (struct ab_kept_map_opts){.budget = 0.125, .decode_m = 64, .seed = 1,
                                   .size = 512, .floor = 1e-6};
}

int ab_kept_map_write(const char *path, const struct ab_workload *meta, int64_t layer,
                      int64_t head, const struct ab_kept_map_opts *o, const char *png,
                      struct ab_kept_map_info *info)
{
    const struct ab_method *m = ab_method_find(o->method);
    if (!m) return ab_fail(AB_E_USAGE, "unknown method '%s' (see 'attnbench methods')", o->method);
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
    uint8_t *pixels = NULL;
    struct ab_keep keep = {0};
    int rc = AB_OK;
    if (!heads || !bufs) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n_heads; i++) {
        int64_t h = whole ? i : head;
        rc = ab_h5_workload_read_head(path, meta, layer, h, &bufs[3 * i], &bufs[3 * i + 1],
                                      &bufs[3 * i + 2]);
        if (rc != AB_OK) goto done;
        heads[i] = ab_rep_make_head(meta, bufs[3 * i], bufs[3 * i + 1], bufs[3 * i + 2]);
        if ((rc = ab_head_validate(&heads[i])) != AB_OK) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s", ab_errmsg());
            rc = ab_fail(rc, "'%s': layer %lld head %lld: %s", path, (long long)layer,
                         (long long)h, msg);
            goto done;
        }
    }

    /* rows: prefill, the last row of each of H bands (H = image height); decode, every one */
    int64_t side = AB_MIN(n, o->size), q0 = phase == AB_PHASE_DECODE ? n - o->decode_m : 0;
    int64_t n_rows = phase == AB_PHASE_DECODE ? o->decode_m : side, rep = 1;
    if (phase == AB_PHASE_DECODE) rep = AB_MAX(1, AB_MIN(8, side / 4 / n_rows));
    rows = malloc(sizeof(int64_t) * (size_t)n_rows);
    out = ab_alloc(ab_size_mul((size_t)(n_rows * meta->d_v), sizeof(float)));
    if (!rows || !out || (rc = ab_keep_alloc(&keep, n_rows, n)) != AB_OK) {
        rc = rc ? rc : ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t r = 0; r < n_rows; r++)
        rows[r] = phase == AB_PHASE_DECODE ? q0 + r : ((r + 1) * n) / n_rows - 1;
    struct ab_problem p = {.h = &heads[self], .phase = phase, .q0 = q0, .rows = rows,
                           .n_rows = n_rows, .layer = heads, .n_layer_heads = n_heads,
                           .self = self,
                           .group = whole ? meta->n_head / meta->n_kv_head : 1,
                           .seed = ab_stream(o->seed, (uint64_t)layer, (uint64_t)head, 7)};

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
    if ((rc = m->run(&p, knob, out, &keep, &led)) != AB_OK) goto done;
    double kept = 0, visible = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        int64_t vis = ab_head_visible(&heads[self], rows[r]);
        visible += (double)vis;
        kept += (double)AB_MIN(vis, ab_keep_count(&keep, r));
    }
    int64_t w = 0, h = 0;
    if ((rc = ab_mask_image(&heads[self], rows, n_rows, &keep, o->size, rep, o->floor, &pixels,
                            &w, &h)) != AB_OK)
        goto done;
    uint8_t pal[256][3];
    ab_mask_palette(pal);
    if ((rc = ab_png_write_indexed(png, pixels, w, h, (const uint8_t(*)[3])pal, 256)) != AB_OK)
        goto done;
    if (info)
        *info = (struct ab_kept_map_info){.phase = phase, .knob = knob,
                                          .ratio = ab_ledger_ratio(&led, &p),
                                          .feasible = feasible,
                                          .kept_share = visible > 0 ? kept / visible : NAN,
                                          .n_rows = n_rows};
done:
    for (int64_t i = 0; bufs && i < 3 * n_heads; i++) ab_free(bufs[i]);
    free(bufs), free(heads), free(rows), free(pixels);
    ab_free(out);
    ab_keep_free(&keep);
    return rc;
}
