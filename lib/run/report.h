/* report.h - `attnbench report` as a library call: results files in, a report folder out
 * (figures, attention maps, CSV tables, report.md; lib/report/report.h lists the contents).
 * The command line (cmd/report.c) and the scenario runner fill struct ab_report_run_opts from
 * the same table, ab_report_run_decl, and call ab_report_run. */
#ifndef AB_RUN_REPORT_H
#define AB_RUN_REPORT_H

#include <stdint.h>

#include "core/decl.h"

/* The options of `report` (rows of ab_report_run_decl, defaults there), plus the positional
 * results files, which the caller sets. */
struct ab_report_run_opts {
    const char *const *results; /* (n_results) results files (run, heads, eval-model) */
    int n_results;
    char *plugins;     /* plugin files whose rows the results name, or NULL */
    char *methods;     /* "a,b": report only these methods (and dense), or NULL */
    char *family;      /* "static,kv": report only these families, or NULL */
    char *workload;    /* workload of the maps, or NULL: the first the results record */
    char *maps;        /* "L:H,L:H": heads to draw, or NULL: chosen from the data */
    int by_workload;   /* also the frontiers of each workload alone */
    char *map_methods; /* "a,b": methods whose kept mask is drawn, or NULL: chosen */
    double budget;     /* FLOP ratio of heatmaps, maps and failing heads, (0, 1] */
    int64_t map_size;  /* largest map side in pixels */
    double floor;      /* probability drawn darkest in maps, (0, 1) */
    char *study;       /* one of ab_report_studies, or NULL */
    char *bench;       /* a table of `bench methods` (B.h5), or NULL */
    char *gnuplot;     /* gnuplot program */
    char *out;         /* the report folder */
};

extern const struct ab_decl ab_report_run_decl[];

/* Checks every option, reads every results file, and writes the report into o->out (created
 * with its parents; a trailing '/' is ignored). report.md records the command line that gives
 * o (ab_decl_command, then tail: the common options; tail may be NULL). on_file (may be NULL)
 * is called with the path of every file written, in order. Returns AB_OK; AB_E_USAGE for a bad
 * option (the message names it); AB_E_NOTOOL when gnuplot is missing (every other file
 * written); or ab_report_load's and ab_report_write's errors (report.h). */
int ab_report_run(const struct ab_report_run_opts *o, const char *tail,
                  void (*on_file)(void *user, const char *path), void *user);

#endif
