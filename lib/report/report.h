/* report.h - `attnbench report` (outputs.md, "Reports"): from one or more results files, a
 * self-contained folder of figures, tables and a Markdown summary computed from the data. Its
 * kept-mask maps are the picture of kept_map.h, shared with `attnbench render`.
 *
 * The folder holds, for a budget B (the target FLOP ratio nearest to opts.budget):
 *   frontier-<family>.{png,gp,tsv}   rel_l2 and task_acc (mean over heads) against the
 *                                    achieved (amortised) FLOP ratio, one column of panels per
 *                                    phase (two when the family runs more than 10 methods in
 *                                    it: at most 10 lines a panel), every method its own
 *                                    colour and marker, the best of all methods at each budget
 *                                    as a grey envelope, dense as the reference point;
 *   frontier-families.{png,gp,tsv}   the best method of each family at each budget;
 *   frontier-<family>-recall         recall and cos_min in the same layout;
 *   frontier-<family>-n              rel_l2, one panel per sequence length (several n);
 *   frontier-length                  the envelope of each length (several n);
 *   frontier-families-tasks, frontier-<family>-tasks  accuracy on retrieve and on aggregate
 *                                    queries;
 *   kvcache-<family>[-<k>]           decode: rel_l2 and task_acc against the FLOP ratio and
 *                                    against the K/V bytes read relative to dense (part k of a
 *                                    family with more than 10 decode methods);
 *   isoflops-<ratio>.{png,gp,tsv}    methods at each target ratio: horizontal bars, sorted,
 *                                    the best ones of each phase and dense;
 *   heads-rel_l2-<B>-<family>.{png,gp,tsv}  layer x head rel_l2 at B (gnuplot), one figure
 *                                    per family on one clipped colour scale;
 *   heads-<method>-<phase>-<B>.tsv   the same grid per method, as numbers;
 *   heads-<stat>.tsv, heads-stats.{png,gp,tsv}  head statistics when the results carry
 *                                    a /heads table (sink, entropy, locality);
 *   map-L<l>-H<h>.{png,gp,bin}       the exact attention map of selected heads (gnuplot; .bin
 *                                    the max-pooled map), and
 *   map-L<l>-H<h>-<method>.{png,gp,bin}  each chosen method's kept mask over it at B;
 *   e2e-ppl.{png,gp,tsv}, e2e-acc.{png,gp,tsv}, model.csv  when an input has /model rows
 *                                    (eval-model): perplexity and accuracy inside the model
 *                                    against FLOP ratio per (input, phase), and the rows merged;
 *   cells.csv, summary.csv           the kept cells and their per-workload summary;
 *   report.md                        the study's answers computed from the data, then
 *                                    everything else (report_md.c).
 * Axes and colour scales are robust: rel_l2 is drawn up to 2 at most (an output further from
 * the exact one than twice its norm is broken, not a trade-off) and within the 2nd..98th
 * percentile of the values (a factor 3 of room below); values outside are drawn at the edge
 * and listed in report.md.
 * Every file is written to a temporary name and renamed when complete. gnuplot renders the
 * .gp scripts last; when it is missing everything else is still written and the call returns
 * AB_E_NOTOOL. No time stamps anywhere: the same inputs give the same bytes. */
#ifndef AB_REPORT_REPORT_H
#define AB_REPORT_REPORT_H

#include <stdint.h>

#include "eval/results.h"
#include "io/results_io.h"

/* The inputs of a report: every results file, merged. */
struct ab_report_data {
    int n_inputs;
    char **paths;                 /* (n_inputs) results files as named */
    struct ab_results *inputs;    /* (n_inputs) each file's attributes (no cells, no summary) */
    struct ab_results merged;     /* every cell of every file; summary recomputed */
    struct ab_heads_table heads; /* n == 0 when no input has a /heads table */
};

/* Reads the results files paths[0..n) (ab_results_read_h5, plus /heads when present) and merges
 * their cells into d->merged with a summary recomputed over all of them. The caller frees d with
 * ab_report_data_free, also after a failure. AB_E_NOFILE, AB_E_DATA, AB_E_NOMEM, AB_E_TOOBIG, as
 * ab_results_read_h5, naming the file. */
int ab_report_load(const char *const *paths, int n, struct ab_report_data *d);
void ab_report_data_free(struct ab_report_data *d);

struct ab_report_opts {
    const char *dir;              /* output folder (created with its parents when missing) */
    int by_workload;              /* 1: also frontier-families-<workload>.png and
                                     frontier-<family>-<workload>.png per workload (the
                                     per-profile pictures of a study with one workload per
                                     profile), when the results hold more than one */
    const char *workload;         /* workload for the maps; NULL: the first workload the
                                     results record, when that file exists */
    const int64_t *maps;          /* (2 n_maps) layer, head pairs; n_maps == 0: chosen */
    int n_maps;
    const char *const *map_methods; /* (n_map_methods); 0: chosen from the data */
    int n_map_methods;
    double budget;                /* target ratio of heatmaps, maps and failing heads (0.125) */
    int64_t map_size;             /* largest map side in pixels (512) */
    double map_floor;             /* probability drawn darkest in maps (1e-6) */
    const char *gnuplot;          /* program name or path ("gnuplot") */
    const char *command_line;     /* the report's own command line, for report.md (or NULL) */
    /* which methods to report: a cell is kept when its method is one of methods[] or its
     * family one of families[] (both empty: every method); dense, the reference, always */
    const char *const *methods;
    int n_methods;
    const char *const *families;
    int n_families;
    /* a study whose findings open report.md (one of ab_report_studies), or NULL */
    const char *study;
    /* a table of `attnbench bench methods` (B.h5) drawn and tabulated in report.md's
       "Measured speed" section, or NULL */
    const char *bench;
    /* called with the path of every file written, in order (may be NULL) */
    void (*on_file)(void *user, const char *path);
    void *user;
};
void ab_report_defaults(struct ab_report_opts *o);

/* The studies --study knows, NULL-terminated: "streaming-llm" (StreamingLLM: perplexity of
 * dense, window and sink + window against budget, the sink-count ablation), "sink-emergence"
 * (Gu et al.: sink ratio per layer and epsilon, first-token weight per head, key and value
 * norms of the sink token, secondary sinks, per model), "retrieval-heads" (retrieval scores,
 * the top / random / bottom-K ablation, DuoAttention's split), "sparse-frontier" (The Sparse
 * Frontier on real attention: attention level against end to end). Each states its finding
 * with its numbers, computed from the data, or says plainly that it does not hold. */
extern const char *const ab_report_studies[];

/* The families a report knows, as --family takes them (NULL-terminated): static, dynamic, kv,
 * linear, calibration. */
extern const char *const ab_report_families[];
/* Checks the filter of o: every family one of ab_report_families, every method a registry row
 * or a method of the cells of d (an external method, `ingest`; d may be NULL: registry rows
 * only). AB_OK, or AB_E_USAGE with "report: unknown family 'x' (static, dynamic, kv, linear,
 * calibration)" or "report: option '--methods': unknown method 'x' (see 'attnbench methods')"
 * (or did you mean a registry row). */
struct ab_report_data;
int ab_report_check_filter(const struct ab_report_opts *o, const struct ab_report_data *d);

/* Writes the report of d into o->dir. AB_OK; AB_E_NOTOOL when gnuplot was not found (every
 * other file written); AB_E_INTERNAL when gnuplot failed on a script (the other figures and
 * report.md written, no PNG of the failed script left); AB_E_CREATE / AB_E_IO when the folder or
 * a file cannot be written (no temporary file left); AB_E_NOFILE / AB_E_DATA for a missing or
 * bad workload named in opts; AB_E_USAGE for a map head or method that does not apply, for a
 * filter that does not pass ab_report_check_filter, or one that keeps no cell of d (nothing is
 * written then). */
int ab_report_write(const struct ab_report_data *d, const struct ab_report_opts *o);

#endif
