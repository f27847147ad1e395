/* merge.c - `attnbench merge PIECES... -o RESULTS.h5`: joins the pieces of `run --shard I/N`
 * (I = 1..N) into the results file one process would have written (ab_merge_run,
 * lib/run/merge.c). argv -> struct -> call -> print. */
#include <stdio.h>
#include <stdlib.h>

#include "core/ab.h"
#include "opts.h"
#include "run/merge.h"

static const char *usage_text = "attnbench merge PIECE.h5... -o RESULTS.h5\n"
                                "  (the pieces of `run --shard I/N` for I = 1..N, in any order)";

int cmd_merge(int argc, char **argv)
{
    struct ab_merge_run_opts o = {0};
    if (ab_decl_defaults(ab_merge_run_decl, &o)) return ab_cmd_fail(AB_E_NOMEM);
    char **pos = malloc(sizeof *pos * (AB_MERGE_MAX_PIECES + 1));
    if (!pos) return ab_cmd_fail(AB_E_NOMEM);
    int n_pos, st = ab_opts_parse_decl("merge", usage_text, ab_merge_run_decl, &o, argc, argv, pos,
                                       AB_MERGE_MAX_PIECES, &n_pos);
    if (st < 0) {
        o.pieces = (const char *const *)pos, o.n_pieces = n_pos;
        struct ab_merge_run_out out;
        int rc = ab_merge_run(&o, &out);
        if (rc) {
            st = ab_cmd_error(ab_exit_status(rc), "merge: %s", ab_errmsg());
        } else {
            ab_out_file(o.out), ab_out_file(out.csv_cells), ab_out_file(out.csv_summary);
            ab_out_main("merge", o.out, "%lld cells of %lld heads from %lld pieces; %s and %s "
                        "beside it", (long long)out.res.n_cells, (long long)out.units,
                        (long long)out.shards, ab_path_base(out.csv_cells),
                        ab_path_base(out.csv_summary));
            st = EX_AB_OK;
        }
        ab_merge_run_out_free(&out);
    }
    ab_decl_free(ab_merge_run_decl, &o);
    free(pos);
    return st;
}
