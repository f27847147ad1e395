/* ingest.c - `attnbench ingest`: the outputs of a method computed elsewhere (PyTorch, JAX, a
 * GPU kernel) enter the results table with the metrics of a built-in row (README, "Outputs from
 * any framework"; lib/run/ingest.h describes OUTPUTS).
 *
 * stdout: one line per budget (budget, mean flop_ratio, mean rel_l2 and recall over heads),
 * then "ingest: RESULTS.h5 (...)". Exit statuses of outputs.md: 64 bad options (a missing
 * --name, a name of the registry), 65 bad input data (a wrong shape, NaN, a missing array, a
 * truncated file), 66 a missing input, 73 / 74 output trouble; on failure no output file is
 * left. The work is ab_ingest_run (lib/run/ingest.c), declared by ab_ingest_run_decl: argv ->
 * struct -> call -> print. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/ab.h"
#include "core/decl.h"
#include "methods/method.h"
#include "opts.h"
#include "run/ingest.h"

static const char *usage_text =
    "attnbench ingest WORKLOAD.h5 OUTPUTS --name NAME [--phase prefill|decode] [--family F]\n"
    "                 [--provenance TEXT] [--knob-name K] [--decode-queries M] [--rows N]\n"
    "                 [-o RESULTS.h5]\n"
    "  OUTPUTS (.npz, .safetensors or .h5) holds o (B, L, H, R, d_v), flops (B, L, H) and\n"
    "  optionally bytes_kv (B, L, H), keep (B, L, H, R, n), budget (B), knob (B)";

int cmd_ingest_opts(const struct ab_ingest_run_opts *o)
{
    struct ab_ingest_out out;
    int rc = ab_ingest_run(o, &out);
    if (rc) {
        ab_ingest_out_free(&out);
        return ab_cmd_error(ab_exit_status(rc), "ingest: %s", ab_errmsg());
    }
    const struct ab_results *r = &out.res;
    for (int64_t s = 0; s < r->n_summary && !ab_common.quiet; s++) {
        const struct ab_summary_row *row = &r->summary[s];
        char tl[32];
        ab_ratio_label(row->target_ratio, tl, sizeof tl);
        printf("%s %s target %s: %lld heads, flop_ratio %.4g, rel_l2 %.4g, recall %.4g%s\n",
               row->method, row->phase, tl, (long long)row->n_cells, row->flop_ratio,
               row->rel_l2_mean, row->recall_mean,
               row->n_heads < row->n_cells ? " (some heads above the budget)" : "");
    }
    ab_out_file(out.res_path), ab_out_file(out.csv_cells), ab_out_file(out.csv_summary);
    ab_out_main("ingest", out.res_path,
                "%lld cells of external method %s (%s, %lld budget%s%s%s); %s and %s beside it",
                (long long)r->n_cells, o->name,
                out.phase == AB_PHASE_DECODE ? "decode" : "prefill", (long long)out.n_budget,
                out.n_budget == 1 ? "" : "s", out.has_keep ? ", kept masks" : "",
                out.infeasible ? ", some cells above their budget" : "",
                ab_path_base(out.csv_cells), ab_path_base(out.csv_summary));
    ab_ingest_out_free(&out);
    return EX_AB_OK;
}

int cmd_ingest(int argc, char **argv)
{
    struct ab_ingest_run_opts o = {0};
    if (ab_decl_defaults(ab_ingest_run_decl, &o)) return ab_cmd_fail(AB_E_NOMEM);
    char *pos[3];
    int n_pos, st = ab_opts_parse_decl("ingest", usage_text, ab_ingest_run_decl, &o, argc, argv,
                                       pos, 2, &n_pos);
    if (st < 0) {
        if (n_pos != 2) {
            st = ab_cmd_error(EX_AB_USAGE, "ingest: give the workload and the outputs (got %d "
                                           "file%s): ingest WORKLOAD.h5 OUTPUTS --name NAME",
                              n_pos, n_pos == 1 ? "" : "s");
        } else {
            o.workload = pos[0], o.outputs = pos[1];
            o.seed = ab_common.seed;
            st = cmd_ingest_opts(&o);
        }
    }
    ab_decl_free(ab_ingest_run_decl, &o);
    return st;
}
