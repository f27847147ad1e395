/* report_internal.h - what the files of `attnbench report` share, private to lib/io: the state
 * of one report (struct rep: the index of the merged cells by method, phase, target and
 * workload, the figures written so far with their captions, the notes per report.md section,
 * the workload of the maps), and the few lookups that report.c (index, figures, maps, the whole
 * report) and report_md.c (report.md) both use. report_load.c and kept_map.c do not need it,
 * except kept_map.c for ab_rep_make_head. */
#ifndef AB_IO_REPORT_INTERNAL_H
#define AB_IO_REPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "attn/attn.h"
#include "core/workload.h"
#include "eval/results.h"
#include "report/report.h"

/* The accuracy columns the report plots: rows of metrics[] in report.c. */
enum { M_REL_L2, M_RECALL, M_TASK_ACC, M_COS_MIN, N_METRICS };

struct meth {
    const char *name, *family;
    int style;     /* registry row (catalogue colour), or after the registry for unknown ones */
    int has_knob;  /* some cell has a knob name */
};

/* A figure for report.md. */
struct fig {
    char *file;    /* PNG name */
    char *caption;
    int section;   /* enum sections */
    int gp;        /* 1: rendered by gnuplot (may have failed) */
    int rendered;
};
enum { SEC_FRONTIER, SEC_ISO, SEC_HEADS, SEC_STATS, SEC_MAPS, SEC_E2E, N_SEC };

struct strv {
    char **s;
    int n, cap;
};

/* A chosen map head and why. */
struct map_head {
    int64_t layer, head;
    char why[160];
};

struct rep {
    const struct ab_report_data *d;
    const char *suffix; /* per-workload figures: "-<workload stem>" appended to names, or NULL */
    const char *subset; /* per-workload figures: the workload they show, or NULL */
    const struct ab_report_opts *o;
    const struct ab_results *r;
    int n_m;
    struct meth *m;
    int n_p;
    const char *phase[8];
    int n_t;
    double *t;     /* every distinct target (NaN included) */
    int n_b;
    double *b;     /* budgets: targets where some method has a knob, descending */
    int *grp;      /* (n_m, n_p, n_t): summary row index or -1 */
    int64_t *grp_cells;
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
};

/* The group table index of (method mi, phase pi, target ti): R->grp and R->grp_cells. */
static inline size_t ab_rep_gidx(const struct rep *R, int mi, int pi, int ti)
{
    return ((size_t)mi * (size_t)R->n_p + (size_t)pi) * (size_t)R->n_t + (size_t)ti;
}

/* The head instance of (layer, query head) over buffers read from the file. */
static inline struct ab_head ab_rep_make_head(const struct ab_workload *meta, const float *q,
                                              const float *k, const float *v)
{
    return (struct ab_head){.n_q = meta->n_seq, .n_k = meta->n_seq, .d = meta->d,
                            .d_v = meta->d_v, .q = q, .k = k, .v = v,
                            .q_pos = meta->positions, .k_pos = meta->positions,
                            .mask = meta->causal ? AB_MASK_CAUSAL : AB_MASK_FULL,
                            .scale = meta->scale, .rope_theta = 0};
}

/* report.c (contracts at the definitions) */
int ab_rep_strv_push(struct strv *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ab_rep_add_fig(struct rep *R, int section, int gp, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void ab_rep_ratio_label(double t, char *buf, size_t cap);
int ab_rep_group_at(const struct rep *R, int mi, int pi, double t, int *ti);
int ab_rep_best_at(const struct rep *R, int pi, double t, int k, int *partial);
const char *ab_rep_profile_of(const struct rep *R, int w, int64_t layer, int64_t head);
void ab_rep_announce(const struct rep *R, const char *name);

/* report_e2e.c: the end-to-end part of the report, from the /model rows of the inputs. */
/* Collects the rows into R->e2e, matches each to the attention-level rel_l2 of the run cells,
 * and writes model.csv and the e2e-ppl / e2e-acc figures (.tsv, .gp; rendered with the others).
 * Does nothing when no input has /model rows. AB_OK or the error of writing a file. */
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

#endif
