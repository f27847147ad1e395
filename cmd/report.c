/* report.c - `attnbench report RESULTS.h5... -o DIR`: a self-contained report folder (figures
 * and attention maps through gnuplot, viridis heatmaps through libpng, CSV tables, report.md)
 * from one or more results files (outputs.md, "Reports"; the contents are listed in
 * lib/report/report.h). Prints one line, "report: DIR/report.md (N figures, M files)"; --verbose
 * lists the path of every file written. Exit 69 when gnuplot is missing: the
 * .gp/.tsv (.bin) files, heatmaps, tables and report.md are written all the same.
 * The work is ab_report_run (lib/run/report.c), declared by ab_report_run_decl: argv -> struct
 * -> call -> print. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/decl.h"
#include "opts.h"
#include "report/gnuplot.h"
#include "run/report.h"

static const char *usage_text =
    "attnbench report RESULTS.h5... -o DIR [--methods a,b,...] [--family static,kv,...]\n"
    "                 [--workload W.h5] [--maps L:H,L:H] [--map-methods a,b] [--budget R]\n"
    "                 [--map-size N] [--study NAME] [--bench B.h5] [--gnuplot PROG]";

/* The files the report wrote: listed under --verbose, counted for the one-line summary. */
struct written {
    int64_t files, figures;
    char md[4096]; /* report.md as written ("" until it is) */
};

static void on_file(void *user, const char *path)
{
    struct written *w = user;
    size_t len = strlen(path);
    w->files++;
    w->figures += len > 4 && !strcmp(path + len - 4, ".png");
    if (!strcmp(ab_path_base(path), "report.md")) snprintf(w->md, sizeof w->md, "%s", path);
    ab_out_file(path);
}

int cmd_report_opts(const struct ab_report_run_opts *o)
{
    struct written wr = {0};
    int rc = ab_report_run(o, NULL, on_file, &wr);
    /* also after exit 69 or a failed plot: report.md is written (and kept) */
    if (wr.md[0] && access(wr.md, F_OK) == 0)
        ab_out_main("report", wr.md, "%lld figures, %lld files", (long long)wr.figures,
                    (long long)wr.files);
    fflush(stdout);
    return rc == AB_OK ? EX_AB_OK : ab_cmd_fail(rc);
}

int cmd_report(int argc, char **argv)
{
    enum { MAX_INPUTS = 256 };
    struct ab_report_run_opts o = {0};
    if (ab_decl_defaults(ab_report_run_decl, &o)) return ab_cmd_fail(AB_E_NOMEM);
    char *pos[MAX_INPUTS];
    int n_pos, st = ab_opts_parse_decl("report", usage_text, ab_report_run_decl, &o, argc, argv,
                                       pos, MAX_INPUTS, &n_pos);
    if (st < 0) {
        o.results = (const char *const *)pos, o.n_results = n_pos;
        st = cmd_report_opts(&o);
    }
    ab_decl_free(ab_report_run_decl, &o);
    return st;
}
