/* gen.h - `attnbench gen` as a library call: options in, a synthetic workload file out (the
 * generator itself is lib/gen). The command line (cmd/gen.c) and the scenario runner fill
 * struct ab_gen_run_opts from the same table, ab_gen_run_decl, and call ab_gen_run. */
#ifndef AB_RUN_GEN_H
#define AB_RUN_GEN_H

#include <stdint.h>

#include "core/decl.h"
#include "core/workload.h"

/* The options of `gen` (rows of ab_gen_run_decl, defaults there), plus the seed. */
struct ab_gen_run_opts {
    uint64_t seed;
    char *preset, *profile, *mix; /* profile assignment: at most one (none: preset model) */
    int64_t layers, heads, kv_heads, n, d, dv; /* dv 0: d */
    double theta;                              /* RoPE base */
    char *strength;                            /* "sink=8,local=12" or NULL */
    int64_t slash_period;                      /* 0: the generator's default */
    char *tasks;                               /* "retrieve,aggregate" or NULL */
    int64_t n_tasks, task_rows;
    double depth_min, depth_max;
    int64_t codes;
    int full;  /* full attention mask instead of causal */
    int probe; /* index into the probes: 0 none, 1 repeat */
    char *out; /* the workload file */
};

extern const struct ab_decl ab_gen_run_decl[];

/* Checks the options, generates the workload (and its probe), and writes o->out (a temporary
 * name renamed on success). *w (free with ab_workload_free, also after a failure) is the
 * workload written, for the caller's summary; *seconds the generation's time. AB_OK, or
 * AB_E_USAGE naming the bad option, AB_E_TOOBIG, or the write's error. */
int ab_gen_run(const struct ab_gen_run_opts *o, struct ab_workload *w, double *seconds);

#endif
