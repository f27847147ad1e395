/* gen.c - `attnbench gen`: writes a synthetic workload with planted head profiles and task
 * ground truth (workloads.md, "Synthetic generator"; outputs.md, command synopsis).
 *
 * stdout: one line, "gen: PATH (shape, seed, profile counts, tasks)". Errors go to
 * stderr with the exit statuses of outputs.md (64 for bad options, 73 / 74 for output trouble).
 * The work is ab_gen_run (lib/run/gen.c), declared by ab_gen_run_decl: argv -> struct -> call
 * -> print. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/decl.h"
#include "gen/gen.h"
#include "opts.h"
#include "run/gen.h"

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

int cmd_gen_opts(const struct ab_gen_run_opts *o)
{
    struct ab_workload w;
    double t_gen;
    int rc = ab_gen_run(o, &w, &t_gen);
    if (rc) {
        ab_workload_free(&w);
        return ab_cmd_error(ab_exit_status(rc), "gen: %s", ab_errmsg());
    }
    char counts[512];
    profile_counts(&w, counts, sizeof counts);
    int64_t planted = 0;
    for (int64_t s = 0; w.tasks.n && s < w.n_layer * w.n_kv_head; s++)
        planted += w.tasks.planted[s] != 0;
    ab_out_file(o->out);
    ab_out_main("gen", o->out,
                "%lld layers x %lld heads (%lld kv) x n %lld x d %lld (dv %lld), seed %llu: %s; "
                "%lld task queries in %lld kv heads",
                (long long)w.n_layer, (long long)w.n_head, (long long)w.n_kv_head,
                (long long)w.n_seq, (long long)w.d, (long long)w.d_v, (unsigned long long)w.seed,
                counts, (long long)w.tasks.n, (long long)planted);
    if (ab_common.verbose) fprintf(stderr, "gen: generated in %.3f s\n", t_gen);
    ab_workload_free(&w);
    return EX_AB_OK;
}

int cmd_gen(int argc, char **argv)
{
    struct ab_gen_run_opts o = {0};
    if (ab_decl_defaults(ab_gen_run_decl, &o)) return ab_cmd_fail(AB_E_NOMEM);
    char *pos[1];
    int n_pos, st = ab_opts_parse_decl("gen", usage_text, ab_gen_run_decl, &o, argc, argv, pos, 0,
                                       &n_pos);
    if (st < 0) {
        o.seed = ab_common.seed;
        st = cmd_gen_opts(&o);
    }
    ab_decl_free(ab_gen_run_decl, &o);
    return st;
}
