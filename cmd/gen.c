/* gen.c - `attnbench gen`: writes a synthetic workload with planted head profiles and task
 * ground truth (workloads.md, "Synthetic generator"; outputs.md, command synopsis).
 *
 * stdout: one line, "gen: PATH (shape, seed, profile counts, tasks)". Errors go to
 * stderr with the exit statuses of outputs.md (64 for bad options, 73 / 74 for output trouble). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "gen/gen.h"
#include "io/h5_workload.h"
#include "opts.h"

static const char *usage_text =
    "attnbench gen [--preset model | --profile NAME | --mix \"name:rate,...\"] [--layers L]\n"
    "                     [--heads H] [--kv-heads G] [--n N] [--d D] [--dv DV]\n"
    "                     [--tasks retrieve,multi-retrieve,aggregate] [--probe repeat] [--full] [--seed S]\n"
    "                     -o WORKLOAD.h5";

/* "streaming 10, retrieval 1, ..." in profile table order. */
static void profile_counts(const struct ab_workload *w, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    for (int p = 0; p < ab_n_profiles; p++) {
        int64_t c = 0;
        for (int64_t s = 0; s < w->n_layer * w->n_kv_head; s++)
            c += !strcmp(w->profile[s], ab_profiles[p].name);
        if (!c || used >= size) continue;
        used += (size_t)snprintf(buf + used, size - used, "%s%s %lld", used ? ", " : "",
                                 ab_profiles[p].name, (long long)c);
    }
}

int cmd_gen(int argc, char **argv)
{
    const char *preset = NULL, *profile = NULL, *mix = NULL, *tasks = NULL, *strengths = NULL;
    const char *out = NULL, *probe = NULL;
    int full = 0;
    int64_t layers = 4, heads = 8, kv_heads = 4, n = 2048, d = 64, dv = 0, task_rows = 64;
    int64_t n_tasks = 8, n_code = 64, slash_period = 0;
    double theta = 10000, depth_min = 0.1, depth_max = 0.9;
    const struct ab_opt opts[] = {
        {"preset", AB_OPT_STRING, &preset, "NAME", "profile preset per layer: model (default)"},
        {"profile", AB_OPT_STRING, &profile, "NAME",
         "every head one profile: streaming, retrieval, induction, vertical-slash, block, "
         "diffuse, dormant"},
        {"mix", AB_OPT_STRING, &mix, "LIST",
         "draw profiles at rates, e.g. streaming:0.7,retrieval:0.1"},
        {"layers", AB_OPT_INT, &layers, "L", "layers (default 4)"},
        {"heads", AB_OPT_INT, &heads, "H", "query heads per layer (default 8)"},
        {"kv-heads", AB_OPT_INT, &kv_heads, "G", "key/value heads per layer (default 4)"},
        {"n", AB_OPT_INT, &n, "N", "sequence length (default 2048)"},
        {"d", AB_OPT_INT, &d, "D", "head dimension, even (default 64)"},
        {"dv", AB_OPT_INT, &dv, "DV", "value dimension (default d)"},
        {"theta", AB_OPT_DOUBLE, &theta, "T", "RoPE base (default 10000)"},
        {"strength", AB_OPT_STRING, &strengths, "LIST",
         "override component strengths in nats for every head, e.g. sink=8,local=12"},
        {"slash-period", AB_OPT_INT, &slash_period, "P",
         "period of the slash component (default 32)"},
        {"tasks", AB_OPT_STRING, &tasks, "LIST",
         "tasks to plant: retrieve,multi-retrieve,aggregate"},
        {"n-tasks", AB_OPT_INT, &n_tasks, "K", "task queries per kind (default 8)"},
        {"task-rows", AB_OPT_INT, &task_rows, "M",
         "task queries go among the last M rows (default 64)"},
        {"depth-min", AB_OPT_DOUBLE, &depth_min, "F",
         "smallest needle depth, fraction of the context (0.1)"},
        {"depth-max", AB_OPT_DOUBLE, &depth_max, "F", "largest needle depth (0.9)"},
        {"codes", AB_OPT_INT, &n_code, "P", "codebook size for the needle payloads (default 64)"},
        {"full", AB_OPT_FLAG, &full, NULL,
         "full attention mask (every query sees every key) instead of causal, for full-mask-only methods"},
        {"probe", AB_OPT_STRING, &probe, "NAME",
         "token probe: repeat (BOS + a block repeated 4 times; slash period = block length)"},
        {"o", AB_OPT_STRING, &out, "FILE", "workload file to write"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[1];
    int n_pos, st = ab_opts_parse("gen", usage_text, opts, argc, argv, pos, 0, &n_pos);
    if (st >= 0) return st;
    if (!out) return ab_cmd_error(EX_AB_USAGE, "gen: no output file (use -o WORKLOAD.h5)");

    struct ab_gen_opts g;
    ab_gen_defaults(&g);
    g.n_layer = layers, g.n_head = heads, g.n_kv_head = kv_heads, g.n_seq = n, g.d = d;
    g.d_v = dv;
    g.seed = ab_common.seed;
    g.full_mask = full;
    g.preset = preset, g.profile = profile, g.mix = mix;
    g.rope_theta = theta;
    if (slash_period < 0 || slash_period > INT32_MAX)
        return ab_cmd_error(EX_AB_USAGE, "gen: --slash-period must be in [1, n)");
    g.slash_period = (int)slash_period;
    if (probe && strcmp(probe, "repeat"))
        return ab_cmd_error(EX_AB_USAGE, "gen: unknown --probe '%s' (want repeat)", probe);
    if (probe && ab_gen_repeat_block(n) < 2)
        return ab_cmd_error(EX_AB_USAGE, "gen: --probe repeat needs --n of at least 9");
    if (probe && !slash_period) g.slash_period = (int)ab_gen_repeat_block(n);
    g.n_tasks = n_tasks, g.task_rows = task_rows, g.n_code = n_code;
    g.depth_min = depth_min, g.depth_max = depth_max;
    int rc = AB_OK;
    if (strengths) rc = ab_gen_parse_strengths(strengths, g.strength);
    if (!rc && tasks) rc = ab_gen_parse_tasks(tasks, &g.tasks);
    if (rc) return ab_cmd_fail(rc);

    struct ab_workload w;
    double t0 = ab_now();
    rc = ab_gen_workload(&g, &w);
    if (rc) return ab_cmd_fail(rc);
    if (probe && (rc = ab_gen_probe_repeat(&w))) {
        ab_workload_free(&w);
        return ab_cmd_fail(rc);
    }
    double t_gen = ab_now() - t0;
    rc = ab_h5_workload_write(out, &w);
    if (rc) {
        ab_workload_free(&w);
        return ab_cmd_fail(rc);
    }
    char counts[512];
    profile_counts(&w, counts, sizeof counts);
    int64_t planted = 0;
    for (int64_t s = 0; w.tasks.n && s < w.n_layer * w.n_kv_head; s++)
        planted += w.tasks.planted[s] != 0;
    ab_out_file(out);
    ab_out_main("gen", out,
                "%lld layers x %lld heads (%lld kv) x n %lld x d %lld (dv %lld), seed %llu: %s; "
                "%lld task queries in %lld kv heads",
                (long long)w.n_layer, (long long)w.n_head, (long long)w.n_kv_head,
                (long long)w.n_seq, (long long)w.d, (long long)w.d_v, (unsigned long long)w.seed,
                counts, (long long)w.tasks.n, (long long)planted);
    if (ab_common.verbose) fprintf(stderr, "gen: generated in %.3f s\n", t_gen);
    ab_workload_free(&w);
    return EX_AB_OK;
}
