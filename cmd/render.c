/* render.c - `attnbench render WORKLOAD.h5 --layer L --head H [--method M --budget R] -o
 * MAP.png`: one head's exact attention map as a gnuplot figure (outputs.md, "Reports"): axes in
 * token positions, a title naming the workload, layer, head and planted profile, a log colour
 * bar from --floor to 1; or with --method the kept mask of that method at that FLOP budget
 * drawn over the map (the pictures of `report`'s maps: lib/report/kept_map.h).
 *
 * Only the chosen head is read from the file (its query head, and the kv head serving it), and
 * the map is streamed row by row, so the command works on workloads too large to load. The map
 * is max-pooled down to --size pixels per side so sinks and needles stay visible. MAP.gp and
 * MAP.bin (the pooled map) go beside MAP.png, so `gnuplot -c MAP.gp` draws it again. gnuplot
 * is needed: without it the script and data are written and the exit status is 69, as for
 * `report`. Prints one line, "render: MAP.png" (every path written with --verbose). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "core/workload.h"
#include "io/h5_workload.h"
#include "methods/method.h"
#include "report/gnuplot.h"
#include "report/kept_map.h"
#include "opts.h"

static const char *usage_text =
    "attnbench render WORKLOAD.h5 --layer L --head H [--method M --budget R] [--size N]\n"
    "                 [--floor P] [--gnuplot PROG] -o MAP.png   (also writes MAP.gp, MAP.bin)";

int cmd_render(int argc, char **argv)
{
    int64_t layer = INT64_MIN, head = INT64_MIN, size = 512;
    double floor_p = 1e-6, budget = NAN;
    const char *out = NULL, *method = NULL, *phase = NULL, *gnuplot = "gnuplot";
    struct ab_kept_map_opts ko;
    ab_kept_map_defaults(&ko);
    int64_t decode_m = ko.decode_m;
    const struct ab_opt opts[] = {
        {"layer", AB_OPT_INT, &layer, "L", "layer to draw (0-based)"},
        {"head", AB_OPT_INT, &head, "H", "query head to draw (0-based)"},
        {"size", AB_OPT_INT, &size, "N",
         "largest side of the max-pooled map in pixels (default 512; the figure is 900 x 800)"},
        {"floor", AB_OPT_DOUBLE, &floor_p, "P",
         "bottom of the colour bar; the scale is log from P to 1 (default 1e-6)"},
        {"method", AB_OPT_STRING, &method, "M",
         "draw the kept mask of this method over the map (kept cells in viridis, dropped red)"},
        {"budget", AB_OPT_DOUBLE, &budget, "R",
         "FLOP ratio the method's knob is fitted to, as in `run` (default 0.125)"},
        {"phase", AB_OPT_STRING, &phase, "P",
         "prefill or decode (default: prefill when the method has it)"},
        {"decode-queries", AB_OPT_INT, &decode_m, "M", "decode queries, as in `run` (default 64)"},
        {"gnuplot", AB_OPT_STRING, &gnuplot, "PROG", "gnuplot program (default: gnuplot on PATH)"},
        {"o", AB_OPT_STRING, &out, "MAP.png", "the PNG to write (MAP.gp and MAP.bin beside it)"},
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
    size_t out_len = strlen(out);
    const char *slash = strrchr(out, '/'), *base = slash ? slash + 1 : out;
    if (out_len < 4 || strcmp(out + out_len - 4, ".png") || strlen(base) <= 4)
        return ab_cmd_error(EX_AB_USAGE,
                            "render: -o '%s' must name a .png file (its .gp and "
                            ".bin go beside it)",
                            out);
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

    /* dir/name.png: the figure's folder and stem */
    char *dir = slash ? strndup(out, (size_t)(slash - out) + (slash == out)) : strdup(".");
    char *name = strndup(base, strlen(base) - 4), *gp = NULL, *bin = NULL, *prog = NULL;
    if (!dir || !name || !(gp = ab_path_join(dir, name, ".gp")) ||
        !(bin = ab_path_join(dir, name, ".bin"))) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    int notool = ab_gnuplot_find(gnuplot, &prog) != AB_OK;
    char why[300] = "";
    if (notool) snprintf(why, sizeof why, "%s", ab_errmsg());

    struct ab_kept_map_info info;
    if (method)
        rc = ab_kept_map_write(path, &meta, layer, head, &ko, dir, name, &info);
    else
        rc = ab_map_figure_write(path, &meta, layer, head, size, floor_p, dir, name);
    if (rc != AB_OK) goto done;
    ab_out_file(bin);
    ab_out_file(gp);
    if (notool) {
        rc = ab_fail(AB_E_NOTOOL,
                     "%s: wrote '%s' and '%s' but no picture (render it with "
                     "'gnuplot -c %s.gp' in '%s')",
                     why, gp, bin, name, dir);
        goto done;
    }
    if ((rc = ab_gnuplot_render(prog, dir, name)) != AB_OK) goto done;
    ab_out_file(out);
    ab_out_main("render", out, NULL);
    if (method && !ab_common.quiet) {
        fprintf(stderr, "%s, %s, layer %lld head %lld: ", method,
                info.phase == AB_PHASE_PREFILL ? "prefill" : "decode", (long long)layer,
                (long long)head);
        if (!isnan(info.knob)) fprintf(stderr, "knob %.6g, ", info.knob);
        fprintf(stderr,
                "FLOP ratio %.4g (budget %g), recall %.4g, %.1f%% of visible cells "
                "kept over %lld query rows\n",
                info.ratio, budget, info.recall,
                100 * info.kept_share, (long long)info.n_rows);
    }
done:
    free(dir), free(name), free(gp), free(bin), free(prog);
    ab_workload_free(&meta);
    return rc == AB_OK ? EX_AB_OK : ab_cmd_fail(rc);
}
