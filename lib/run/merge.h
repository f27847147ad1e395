/* merge.h - `attnbench merge` as a library call (issue 17 item 2): the pieces written by
 * `run --shard I/N` for I = 1..N in, one results file out, equal to the one a single process
 * writes: the cells in the single-process order, the summary recomputed from them, the
 * provenance (command line without --shard, options, workloads) of the run. */
#ifndef AB_RUN_MERGE_H
#define AB_RUN_MERGE_H

#include <stdint.h>

#include "core/decl.h"
#include "eval/results.h"

enum { AB_MERGE_MAX_PIECES = 4096 };

struct ab_merge_run_opts {
    const char *const *pieces; /* (n_pieces) piece files, in any order */
    int n_pieces;
    char *out;                 /* the results file (.h5; CSV tables go next to it) */
};

extern const struct ab_decl ab_merge_run_decl[];

struct ab_merge_run_out {
    struct ab_results res;                   /* the merged results (free with ..._out_free) */
    char csv_cells[4096], csv_summary[4096]; /* the CSV tables written beside out */
    int64_t shards, units;                   /* N, and the heads of the run */
};

/* Reads every piece, checks that they are the N pieces of one run, each once (the same run
 * digest, tool version and N; every I in 1..N present; their units covering the run's exactly
 * once; each piece's cells grouped by its units), and writes o->out and its CSV tables (to
 * temporary names renamed on success: a refusal or failure writes nothing). AB_OK; AB_E_USAGE
 * (no piece, no -o); AB_E_NOFILE (a piece missing on disk); AB_E_DATA naming the piece and the
 * problem: not a piece, of another run or version, a duplicate or missing shard, damaged; or
 * the error of reading or writing. Free *out in every case. */
int ab_merge_run(const struct ab_merge_run_opts *o, struct ab_merge_run_out *out);
void ab_merge_run_out_free(struct ab_merge_run_out *out);

#endif
