/* render.c - `attnbench render WORKLOAD.h5 --layer L --head H [--method M --budget R] -o
 * MAP.png`: one head's exact attention map as an 8-bit indexed PNG with the viridis palette
 * (outputs.md, "Reports"), or with --method the kept mask of that method at that FLOP budget
 * drawn over the map (the picture of `report`'s maps: ab_kept_map_write, lib/io/kept_map.h).
 *
 * Only the chosen head is read from the file (its query head, and the kv head serving it), and
 * the map is streamed row by row, so the command works on workloads too large to load. The
 * picture is log-scaled from --floor (darkest) to 1 (brightest), max-pooled down to --size
 * pixels per side; masked cells are index 0 (the darkest viridis colour). Prints one line,
 * "render: PATH". */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "core/workload.h"
#include "io/h5_workload.h"
#include "io/kept_map.h"
#include "io/png_map.h"
#include "methods/method.h"
#include "opts.h"

static const char *usage_text =
    "attnbench render WORKLOAD.h5 --layer L --head H [--method M --budget R] [--size N]\n"
    "                 [--floor P] -o MAP.png";

int cmd_render(int argc, char **argv)
{
    int64_t layer = INT64_MIN, head = INT64_MIN, size = 512;
    double floor_p = 1e-6, budget = NAN;
    const char *out = NULL, *method = NULL, *phase = NULL;
    struct ab_kept_map_opts ko;
    ab_kept_map_defaults(&ko);
    int64_t decode_m = ko.decode_m;
    const struct ab_opt opts[] = {
        {"layer", AB_OPT_INT, &layer, "L", "layer to draw (0-based)"},
        {"head", AB_OPT_INT, &head, "H", "query head to draw (0-based)"},
        {"size", AB_OPT_INT, &size, "N", "largest image side in pixels, max-pooled (default 512)"},
        {"floor", AB_OPT_DOUBLE, &floor_p, "P",
         "probability shown darkest; the scale is log from P to 1 (default 1e-6)"},
        {"method", AB_OPT_STRING, &method, "M",
         "draw the kept mask of this method over the map (kept cells bright, dropped dimmed)"},
        {"budget", AB_OPT_DOUBLE, &budget, "R",
         "FLOP ratio the method's knob is fitted to, as in `run` (default 0.125)"},
        {"phase", AB_OPT_STRING, &phase, "P",
         "prefill or decode (default: prefill when the method has it)"},
        {"decode-queries", AB_OPT_INT, &decode_m, "M", "decode queries, as in `run` (default 64)"},
        {"o", AB_OPT_STRING, &out, "MAP.png", "the PNG to write"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[1];
    int n_pos, st = ab_opts_parse("render", usage_text, opts, argc, argv, pos, 1, &n_pos);
    if (st >= 0) return st;
    if (n_pos != 1)
        return ab_cmd_error(EX_AB_USAGE, "render: name one WORKLOAD.h5 (see 'attnbench render "
                                         "--help')");
    if (layer == INT64_MIN || head == INT64_MIN)
        return ab_cmd_error(EX_AB_USAGE, "render: --layer and --head are required");
    if (!out) return ab_cmd_error(EX_AB_USAGE, "render: -o MAP.png is required");
    if (size < 1 || size > 65536)
        return ab_cmd_error(EX_AB_USAGE, "render: --size %lld is outside 1..65536",
                            (long long)size);
    if (!(floor_p > 0 && floor_p < 1))
        return ab_cmd_error(EX_AB_USAGE, "render: --floor %g is not between 0 and 1", floor_p);
    if (!method && (!isnan(budget) || phase))
        return ab_cmd_error(EX_AB_USAGE, "render: --budget and --phase go with --method");
    if (method) {
        const struct ab_method *m = ab_method_find(method);
        if (!m)
            return ab_cmd_error(EX_AB_USAGE, "render: unknown method '%s' (see 'attnbench "
                                             "methods')", method);
        if (!(m->flags & AB_METHOD_SELECTS))
            return ab_cmd_error(EX_AB_USAGE, "render: method '%s' keeps no set of keys, so it "
                                             "has no mask to draw", method);
        if (isnan(budget)) budget = ko.budget;
        if (!(budget > 0 && budget <= 1))
            return ab_cmd_error(EX_AB_USAGE, "render: --budget %g is not a FLOP ratio in (0, 1]",
                                budget);
        if (phase && strcmp(phase, "prefill") && strcmp(phase, "decode"))
            return ab_cmd_error(EX_AB_USAGE, "render: --phase must be prefill or decode, got "
                                             "'%s'", phase);
        if (decode_m < 1)
            return ab_cmd_error(EX_AB_USAGE, "render: --decode-queries must be positive");
        ko.method = method;
        ko.budget = budget;
        ko.phase = !phase ? 0 : phase[0] == 'p' ? AB_PHASE_PREFILL : AB_PHASE_DECODE;
        ko.decode_m = decode_m;
        ko.seed = ab_common.seed;
        ko.size = size;
        ko.floor = floor_p;
    }

    const char *path = pos[0];
    struct ab_workload meta;
    int rc = ab_h5_workload_read_meta(path, &meta);
    if (rc != AB_OK) return ab_cmd_fail(rc);
    if (layer < 0 || layer >= meta.n_layer || head < 0 || head >= meta.n_head) {
        int bad_layer = layer < 0 || layer >= meta.n_layer;
        st = ab_cmd_error(
            EX_AB_USAGE, "render: --%s %lld is out of range: '%s' has %lld %s (0..%lld)",
            bad_layer ? "layer" : "head", (long long)(bad_layer ? layer : head), path,
            (long long)(bad_layer ? meta.n_layer : meta.n_head), bad_layer ? "layers" : "heads",
            (long long)((bad_layer ? meta.n_layer : meta.n_head) - 1));
        ab_workload_free(&meta);
        return st;
    }

    float *q = NULL, *k = NULL, *v = NULL;
    uint8_t *pixels = NULL;
    int64_t width = 0, height = 0;
    if (method) { /* the kept mask over the map */
        struct ab_kept_map_info info;
        if ((rc = ab_kept_map_write(path, &meta, layer, head, &ko, out, &info)) != AB_OK)
            goto done;
        ab_out_file(out);
        ab_out_main("render", out, NULL);
        if (!ab_common.quiet) {
            fprintf(stderr, "%s, %s, layer %lld head %lld: ", method,
                    info.phase == AB_PHASE_PREFILL ? "prefill" : "decode", (long long)layer,
                    (long long)head);
            if (!isnan(info.knob)) fprintf(stderr, "knob %.6g, ", info.knob);
            fprintf(stderr, "FLOP ratio %.4g (budget %g%s), %.1f%% of visible cells kept over "
                            "%lld query rows\n",
                    info.ratio, budget, info.feasible ? "" : ", below the tolerance",
                    100 * info.kept_share, (long long)info.n_rows);
        }
        goto done;
    }
    rc = ab_h5_workload_read_head(path, &meta, layer, head, &q, &k, &v);
    if (rc != AB_OK) goto done;
    struct ab_head h = {
        .n_q = meta.n_seq,
        .n_k = meta.n_seq,
        .d = meta.d,
        .d_v = meta.d_v,
        .q = q,
        .k = k,
        .v = v,
        .q_pos = meta.positions,
        .k_pos = meta.positions,
        .mask = meta.causal ? AB_MASK_CAUSAL : AB_MASK_FULL,
        .scale = meta.scale,
        .rope_theta = 0, /* stored Q and K are already rotated */
    };
    if ((rc = ab_head_validate(&h)) != AB_OK) {
        char msg[512]; /* ab_errmsg() is the buffer ab_fail writes: copy it first */
        snprintf(msg, sizeof msg, "%s", ab_errmsg());
        rc = ab_fail(rc, "'%s': layer %lld head %lld: %s", path, (long long)layer, (long long)head,
                     msg);
        goto done;
    }
    if ((rc = ab_map_image(&h, size, floor_p, &pixels, &width, &height)) != AB_OK) goto done;
    if ((rc = ab_png_write_indexed(out, pixels, width, height, ab_viridis, 256)) != AB_OK)
        goto done;
    ab_out_file(out);
    ab_out_main("render", out, "%lld x %lld", (long long)width, (long long)height);
done:
    free(pixels);
    ab_free(q);
    ab_free(k);
    ab_free(v);
    ab_workload_free(&meta);
    return rc == AB_OK ? EX_AB_OK : ab_cmd_fail(rc);
}
