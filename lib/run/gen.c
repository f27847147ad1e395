/* gen.c - `attnbench gen` as a library call (see gen.h): the options table and the path from
 * options to a workload file. */
#include "run/gen.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/ab.h"
#include "gen/gen.h"
#include "io/h5_workload.h"

static const char *const task_words[] = {"retrieve", "multi-retrieve", "aggregate", NULL};
static const char *const probe_words[] = {"none", "repeat", NULL};

#define ROW(f) AB_DECL_ROW(struct ab_gen_run_opts, f)
const struct ab_decl ab_gen_run_decl[] = {
    {"preset", AB_DECL_STR, ROW(preset), NULL, 0, 0, "NAME",
     "profile preset per layer: model (the default when no profile or mix is given)"},
    {"profile", AB_DECL_STR, ROW(profile), NULL, 0, 0, "NAME",
     "every head one profile: streaming, retrieval, induction, vertical-slash, block, diffuse, "
     "dormant"},
    {"mix", AB_DECL_STR, ROW(mix), NULL, 0, 0, "LIST",
     "draw profiles at rates, e.g. streaming:0.7,retrieval:0.1"},
    {"layers", AB_DECL_INT, ROW(layers), "4", 1, 4096, "L", "layers"},
    {"heads", AB_DECL_INT, ROW(heads), "8", 1, 65536, "H", "query heads per layer"},
    {"kv-heads", AB_DECL_INT, ROW(kv_heads), "4", 1, 65536, "G", "key/value heads per layer"},
    {"n", AB_DECL_INT, ROW(n), "2048", 2, INT32_MAX, "N", "sequence length"},
    {"d", AB_DECL_INT, ROW(d), "64", 2, 4096, "D", "head dimension, even"},
    {"dv", AB_DECL_INT, ROW(dv), "0", 0, 4096, "DV", "value dimension (0: d)"},
    {"theta", AB_DECL_REAL, ROW(theta), "10000", 0, INFINITY, "T", "RoPE base", .lo_open = 1},
    {"strength", AB_DECL_STR, ROW(strength), NULL, 0, 0, "LIST",
     "override component strengths in nats for every head, e.g. sink=8,local=12"},
    {"slash-period", AB_DECL_INT, ROW(slash_period), "0", 0, INT32_MAX, "P",
     "period of the slash component (0: 32, or the probe's block)"},
    {"tasks", AB_DECL_LIST, ROW(tasks), NULL, 0, 3, "LIST",
     "tasks to plant: retrieve,multi-retrieve,aggregate", .choices = task_words},
    {"n-tasks", AB_DECL_INT, ROW(n_tasks), "8", 1, 1000000, "K", "task queries per kind"},
    {"task-rows", AB_DECL_INT, ROW(task_rows), "64", 1, INT32_MAX, "M",
     "task queries go among the last M rows"},
    {"depth-min", AB_DECL_REAL, ROW(depth_min), "0.1", 0, 1, "F",
     "smallest needle depth, fraction of the context"},
    {"depth-max", AB_DECL_REAL, ROW(depth_max), "0.9", 0, 1, "F", "largest needle depth"},
    {"codes", AB_DECL_INT, ROW(codes), "64", 2, 1000000, "P",
     "codebook size for the needle payloads"},
    {"full", AB_DECL_FLAG, ROW(full), NULL, 0, 0, NULL,
     "full attention mask (every query sees every key) instead of causal, for full-mask-only "
     "methods"},
    {"probe", AB_DECL_WORD, ROW(probe), "none", 0, 0, "NAME",
     "token probe: repeat (BOS + a block repeated 4 times; slash period = block length)",
     .choices = probe_words},
    {"o", AB_DECL_STR, ROW(out), NULL, 0, 0, "FILE", "workload file to write",
     .flags = AB_DECL_CLI | AB_DECL_OUTPUT},
    {0},
};
#undef ROW

int ab_gen_run(const struct ab_gen_run_opts *o, struct ab_workload *w, double *seconds)
{
    memset(w, 0, sizeof *w);
    *seconds = 0;
    if (!o->out) return ab_fail(AB_E_USAGE, "no output file (use -o WORKLOAD.h5)");
    struct ab_gen_opts g;
    ab_gen_defaults(&g);
    g.n_layer = o->layers, g.n_head = o->heads, g.n_kv_head = o->kv_heads, g.n_seq = o->n;
    g.d = o->d, g.d_v = o->dv, g.seed = o->seed, g.full_mask = o->full;
    g.preset = o->preset, g.profile = o->profile, g.mix = o->mix;
    g.rope_theta = o->theta;
    g.slash_period = (int)o->slash_period;
    if (o->probe && ab_gen_repeat_block(o->n) < 2)
        return ab_fail(AB_E_USAGE, "--probe repeat needs --n of at least 9");
    if (o->probe && !o->slash_period) g.slash_period = (int)ab_gen_repeat_block(o->n);
    g.n_tasks = o->n_tasks, g.task_rows = o->task_rows, g.n_code = o->codes;
    g.depth_min = o->depth_min, g.depth_max = o->depth_max;
    int rc = AB_OK;
    if (o->strength) rc = ab_gen_parse_strengths(o->strength, g.strength);
    if (!rc && o->tasks) rc = ab_gen_parse_tasks(o->tasks, &g.tasks);
    if (rc) return rc;
    double t0 = ab_now();
    if ((rc = ab_gen_workload(&g, w))) return rc;
    if (o->probe && (rc = ab_gen_probe_repeat(w))) return rc;
    *seconds = ab_now() - t0;
    return ab_h5_workload_write(o->out, w);
}
