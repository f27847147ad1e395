/* report_internal.h - what the files of `attnbench report` share, private to lib/report: the
 * state of one report (struct rep: the cells kept by the method and family filters, their
 * index by method, phase, target and workload, the summary views pooled over every length and
 * per length, the families and the style of each method in them, the figures written so far
 * with their captions, the notes per report.md section, the values left outside the plotted
 * ranges, the workload of the maps), and the lookups the files share:
 *   report.c           index, views, heatmaps, head statistics, maps, the whole report;
 *   report_frontier.c  the frontier figures (per family, per length, per task, KV cache) and
 *                      the isoFLOPS bars;
 *   report_answers.c   the study's answers at the top of report.md;
 *   report_md.c        report.md;
 *   report_e2e.c       the end-to-end part (eval-model rows);
 *   report_study.c     --study: the findings of a seed paper's study, one file per study
 *                      (report_study_<name>.c) behind one table.
 * report_load.c does not need it. */
#ifndef AB_REPORT_INTERNAL_H
#define AB_REPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "attn/attn.h"
#include "core/workload.h"
#include "eval/metric.h"
#include "eval/results.h"
#include "report/bench.h"
#include "report/report.h"

/* The accuracy columns the report plots are the rows of the metric table (eval/metric.h) with
 * plot set; a metric k is its enum ab_metric_id. The figures and answers are built around these
 * (each a plotted row, test report metrics_the_report_plots): */
enum {
    M_REL_L2 = AB_MET_REL_L2,
    M_RECALL = AB_MET_RECALL,
    M_TASK_ACC = AB_MET_TASK_ACC,
    M_COS_MIN = AB_MET_COS_MIN,
    M_RETRIEVE = AB_MET_TASK_ACC_RETRIEVE,
    M_AGGREGATE = AB_MET_TASK_ACC_AGGREGATE,
};
/* 1 when higher values of metric k are better (its sense is AB_SENSE_LOW_WORSE). */
int ab_rep_higher_better(int k);
/* 1 when the report draws metric k on a log axis. */
int ab_rep_logy(int k);
/* The double at byte offset off of a summary row or cell. */
double ab_rep_field(const void *row, size_t off);

/* The families of the report, in this order (then any other family the results name). */
enum { AB_REP_MAX_FAMILIES = 12 };

struct meth {
    const char *name, *family;
    int fam;       /* index in R->fam, or -1 for the dense reference */
    int style;     /* registry row, or after the registry for unknown ones (the sort order) */
    int slot;      /* style of its lines: rank among its family's methods in the report */
    int has_knob;  /* some cell has a knob name */
    int oracle;    /* AB_METHOD_ORACLE: reads the exact map, an upper bound */
    int op;        /* AB_METHOD_OPERATOR: another operator, not an approximation */
};

/* A figure for report.md. */
struct fig {
    char *file;    /* PNG name */
    char *caption;
    int section;   /* enum sections */
    int gp;        /* 1: rendered by gnuplot (may have failed) */
    int rendered;
};
/* report.md sections of figures; a .tsv entry (a table without a picture of its own) is
 * listed as a link after the section's pictures */
enum { SEC_FRONTIER, SEC_LENGTH, SEC_TASKS, SEC_KV, SEC_ISO, SEC_HEADS, SEC_STATS, SEC_MAPS,
       SEC_E2E, SEC_STUDY, SEC_SPEED, SEC_BUDGETS, N_SEC };

struct strv {
    char **s;
    int n, cap;
};

/* A chosen map head and why. */
struct map_head {
    int64_t layer, head;
    char why[160];
};

/* A summary view: the cells of one length (n > 0) or of every length pooled (n == 0),
 * summarised per (method, phase, target) over every head of every workload in it. */
struct view {
    int64_t n;
    const struct ab_summary_row *sum; /* its rows */
    int *grp;                         /* (n_m, n_p, n_t): row index or -1 */
    int64_t *cells;                   /* (n_m, n_p, n_t): cells of the group */
};

/* A value drawn at the edge of a figure instead of stretching its axis. */
struct outlier {
    int metric, mi, pi, view;
    double target, value;
};

struct rep {
    const struct ab_report_data *d;
    const char *suffix; /* per-workload figures: "-<workload stem>" appended to names, or NULL */
    const char *subset; /* per-workload figures: the workload they show, or NULL */
    const struct ab_report_opts *o;
    /* the kept cells: all.cells (shallow copies of d->merged's) with the summary pooled over
     * workloads; tab the same cells with the per-workload summary of the results schema (the
     * CSV tables). r points at all. */
    struct ab_results all, tab;
    const struct ab_results *r;
    /* the kept cells of tokens and bytes budgets (budget_kind tokens | bytes): shallow copies
     * with the workload blanked, so their summary (owned) pools every workload; the FLOP-budget
     * machinery (index, views, frontiers) reads all, which holds the FLOP-budget cells only */
    struct ab_results kvb;
    int n_m;
    struct meth *m;
    int n_fam;
    const char *fam[AB_REP_MAX_FAMILIES];
    int n_p;
    const char *phase[8];
    int n_t;
    double *t;     /* every distinct target (NaN included) */
    int n_b;
    double *b;     /* budgets: targets where some method has a knob, descending */
    int n_len;     /* distinct lengths of the cells, ascending */
    int64_t len[16];
    int n_v;       /* views: [0] every length, [1 + k] length len[k] (only when n_len > 1) */
    struct view v[17];
    struct ab_results vres[2]; /* the summaries behind the views (pooled: all; by length) */
    int *grp;      /* = v[0].grp: the pooled summary row of (mi, pi, ti) in r->summary */
    int64_t *grp_cells; /* = v[0].cells */
    int *cm, *cp, *ct, *cw; /* per cell: method, phase, target, workload index */
    int n_w;
    const char **wname;
    int64_t n_layer, n_head;
    double B;      /* budget of heatmaps, maps and failing heads (NaN: none) */
    char *gnuplot; /* NULL: not found */
    char gnuplot_err[300];
    int n_fig, cap_fig;
    struct fig *fig;
    struct strv notes[N_SEC + 1]; /* per section, and general ones at N_SEC */
    int n_out, cap_out;
    struct outlier *out;
    /* the workload of the maps */
    char *wl_path;
    struct ab_workload wl;
    int have_wl, wl_cells;  /* wl_cells: workload index of its cells in wname, or -1 */
    char wl_digest[65];
    int wl_digest_ok;
    int n_maps;
    struct map_head *maps;
    int n_mm;
    const char **mm; /* map methods */
    int plot_failed, first_plot_rc;
    char plot_err[400];
    /* end to end: the /model rows of every input, in input order (report_e2e.c) */
    int64_t n_e2e;
    const struct ab_model_row **e2e;  /* (n_e2e) rows owned by R->d->inputs */
    double *e2e_attn;                 /* (n_e2e) attention-level mean rel_l2 of `run`, or NaN */
    int8_t *e2e_attn_all;             /* (n_e2e) 1: over every run workload (no capture matched) */
    /* --study: the findings' Markdown (malloc'd, NULL without a study), written first */
    char *study_md;
    /* --bench: the /bench table of `bench methods` (report_bench.c), read before anything is
       written */
    struct ab_bench_row *bench;
    int64_t n_bench;
};

/* The group table index of (method mi, phase pi, target ti): view grp and cells arrays. */
static inline size_t ab_rep_gidx(const struct rep *R, int mi, int pi, int ti)
{
    return ((size_t)mi * (size_t)R->n_p + (size_t)pi) * (size_t)R->n_t + (size_t)ti;
}

/* report_bench.c: the /bench table read (--bench), and its section: speed.png and a table */
int ab_rep_bench_load(struct rep *R);
int ab_rep_bench(struct rep *R);

/* report.c (contracts at the definitions) */
int ab_rep_strv_push(struct strv *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ab_rep_add_fig(struct rep *R, int section, int gp, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void ab_rep_compression_label(double t, char *buf, size_t cap);
int ab_rep_group_at(const struct rep *R, int mi, int pi, double t, int *ti);
const struct ab_summary_row *ab_rep_row_at(const struct rep *R, int v, int mi, int pi, double t,
                                           int *full);
int ab_rep_best_at(const struct rep *R, int pi, double t, int k, int *partial);
int ab_rep_best_in(const struct rep *R, int v, int pi, double t, int k, int fam, int oracles,
                   const struct ab_summary_row **row);
int ab_rep_runs_in(const struct rep *R, int mi, int pi);
int ab_rep_find_method(const struct rep *R, const char *name);
int ab_rep_keep(const struct rep *R, const char *method, const char *family);
int ab_rep_add_outlier(struct rep *R, int metric, int mi, int pi, int view, double target,
                       double value);
const char *ab_rep_profile_of(const struct rep *R, int w, int64_t layer, int64_t head);
void ab_rep_announce(const struct rep *R, const char *name);
void ab_rep_announce_pair(const struct rep *R, const char *stem);

/* report_frontier.c: the tokens and bytes budgets (R->kvb): budgets-bytes.png, decode rel_l2
 * against the achieved bytes_ratio at each bytes budget, one line per method (SEC_BUDGETS);
 * nothing without bytes budgets. AB_OK or an error of writing. */
int ab_rep_kv_budgets(struct rep *R);
/* Its section of report.md: the figure and one table row per (method, kind, budget). */
void ab_rep_kv_budgets_md(const struct rep *R, FILE *f);

/* report_frontier.c: every frontier figure (families, lengths, tasks, KV cache; for one
 * workload of several, R->subset, the families and family figures only) and the isoFLOPS
 * bars, each as .tsv + .gp with its figure and caption added to R. AB_OK or the error of
 * writing a file. */
int ab_rep_frontiers(struct rep *R);
int ab_rep_isoflops(struct rep *R, double t);

/* report_answers.c: the "Answers" section of report.md, computed from the views: which family
 * holds accuracy at 10x and 20x, decode against prefill, the effect of length, retrieval
 * against aggregation; each stated with its numbers or as not answerable from the data. */
void ab_rep_answers_md(const struct rep *R, FILE *f);
/* The "Accounting" section: the decode horizon G of the inputs and the rule in one sentence. */
void ab_rep_accounting_md(const struct rep *R, FILE *f);
/* The "Infeasible methods" section: each method with infeasible cells once, with its phases,
 * how many cells, the budgets no head meets, and the reason of its first infeasible cell. */
void ab_rep_infeasible_md(const struct rep *R, FILE *f);

/* report_e2e.c: the end-to-end part of the report, from the /model rows of the inputs. */
/* Collects the rows into R->e2e (those the method and family filters keep), matches each to
 * the attention-level rel_l2 of the run cells, and writes model.csv and the e2e-ppl / e2e-acc
 * figures (.tsv, .gp; rendered with the others). Does nothing when no input has /model rows.
 * AB_OK or the error of writing a file. */
int ab_rep_e2e(struct rep *R);
/* Writes the body of the "End to end (eval-model)" section of report.md: what the columns mean
 * and one table per input (report_md.c writes the heading and the figures). Nothing when there
 * are no rows. */
void ab_rep_e2e_md(const struct rep *R, FILE *f);
void ab_rep_e2e_free(struct rep *R);

/* report_md.c: writes report.md (atomically) from the index, figures and notes of R, with the
 * sink ratio of head_stats (NaN: none) over n_sh heads; announces it. AB_OK or the error of
 * writing it (nothing left behind). */
int ab_rep_write_md(struct rep *R, double sink_ratio, int64_t sink_heads, int64_t n_sh);

/* report_study.c: runs the study of R->o->study (none: nothing): its figures are added to
 * SEC_STUDY and its Markdown (a "## Findings" section with one table and one plain sentence per
 * finding, and the command lines that reproduce it) goes to R->study_md. AB_OK or the error of
 * writing a file. A study function gets the Markdown stream f and returns AB_OK or an error;
 * it writes what it cannot find in the data as such (never a number it did not compute). */
int ab_rep_study(struct rep *R);
typedef int (*ab_rep_study_fn)(struct rep *R, FILE *f);
int ab_rep_study_streaming_llm(struct rep *R, FILE *f);  /* report_study_streaming.c */
int ab_rep_study_sink_emergence(struct rep *R, FILE *f); /* report_study_sinks.c */
int ab_rep_study_retrieval_heads(struct rep *R, FILE *f); /* report_study_retrieval.c */
int ab_rep_study_sparse_frontier(struct rep *R, FILE *f); /* report_study_frontier.c */

#endif
