/* heads.h - `attnbench heads` as a library call: workload files in, a results file with the
 * /heads table (and /layers for workloads with hidden states) and its CSV tables out. The
 * command line (cmd/heads.c) and the scenario runner fill struct ab_heads_run_opts from the
 * same table, ab_heads_run_decl, and call ab_heads_run. The statistics themselves are
 * lib/heads (stats.h, hidden.h). */
#ifndef AB_RUN_HEADS_H
#define AB_RUN_HEADS_H

#include <stdint.h>

#include "core/decl.h"
#include "core/workload.h"
#include "eval/results.h"
#include "heads/hidden.h"
#include "heads/stats.h"

/* The options of `heads` (rows of ab_heads_run_decl, defaults there), plus the positional
 * workloads and the seed, which the caller sets. */
struct ab_heads_run_opts {
    const char *const *workloads; /* (n_workloads) workload files, read one at a time */
    int n_workloads;
    uint64_t seed;
    double epsilon;        /* sink ratio threshold on alpha(0), [0, 1) */
    int64_t window;        /* locality window w */
    double top_fraction;   /* share of heads labelled retrieval-like */
    int64_t sink_min_rows; /* a sink key is seen by at least this many query rows */
    double massive_abs;    /* massive activation: |x| above this ... */
    double massive_ratio;  /* ... and above this x the layer's median |x| */
    char *out;             /* the results file (.h5) */
    int json;              /* the command prints its summary as JSON (not used here) */
};

extern const struct ab_decl ab_heads_run_decl[];

/* What ab_heads_run did, for the caller to print. */
struct ab_heads_run_out {
    struct ab_results res;   /* /heads and /layers (free with ab_heads_run_out_free) */
    struct ab_heads_opts ho; /* the statistics' options as run */
    const char *res_path;    /* o->out */
    char csv[4096], layers_csv[4096]; /* RESULTS-heads.csv, RESULTS-layers.csv (when /layers) */
    double seconds;
};

/* Called once per workload with hidden states, after its statistics (for a summary). */
typedef void (*ab_heads_hidden_fn)(void *user, const char *name, const struct ab_workload *w,
                                   const struct ab_hidden_stats *hs,
                                   const struct ab_heads_opts *ho);

/* Checks every option and every workload's metadata before any work starts, computes every
 * head's statistics one workload at a time, labels the retrieval-like heads, and writes o->out
 * and its CSV tables (temporary names renamed on success: a failure leaves nothing). progress
 * (may be NULL) gets heads done and the total over every workload; hidden (may be NULL) each
 * workload's hidden-state statistics. The results record the options as a command line and as
 * JSON. Returns AB_OK or the error (AB_E_USAGE names the option). Free *out in every case. */
int ab_heads_run(const struct ab_heads_run_opts *o,
                 void (*progress)(void *user, int64_t done, int64_t total), void *progress_user,
                 ab_heads_hidden_fn hidden, void *hidden_user, struct ab_heads_run_out *out);

void ab_heads_run_out_free(struct ab_heads_run_out *out);

#endif
