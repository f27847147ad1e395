/* metric.h - the measured columns of a sweep cell, described once (issue 16): one row per
 * number of struct ab_cell that a method's run produces (the solved knob, the cost ledger, the
 * accuracy of metrics.md, the rows evaluated, the time), with its /cells name, units and long
 * name, its direction, how /summary aggregates it over heads and whether the report plots it.
 * The results writer and reader (lib/io/results_io.c, the CSV writer through it), the summary
 * (results.c), the sweep (which metrics an infeasible cell leaves NaN), the regression gate
 * (check.c) and the report read this table; none keeps a list of its own.
 *
 * Adding a metric: compute it (metrics.c), give struct ab_cell its field (and struct
 * ab_summary_row its mean and tail when it is summarised), store it in the sweep's cell, then
 * one id below and one row in metric_table.c. A field of struct ab_cell that is neither a row
 * here nor one of the cell's key or status columns (results_io.c) fails to compile. */
#ifndef AB_EVAL_METRIC_H
#define AB_EVAL_METRIC_H

#include <stddef.h>

/* The rows of ab_metrics[], in the declaration order of their fields in struct ab_cell. */
enum ab_metric_id {
    AB_MET_KNOB,
    AB_MET_FLOP_RATIO,
    AB_MET_FLOP_RATIO_STEP,
    AB_MET_FLOPS_ATTEND,
    AB_MET_FLOPS_SELECT,
    AB_MET_FLOPS_ONCE,
    AB_MET_OPS_OTHER,
    AB_MET_BYTES_KV,
    AB_MET_TOKENS_STEP,
    AB_MET_BYTES_RATIO,
    AB_MET_DENSITY,
    AB_MET_SPARSITY,
    AB_MET_COMPRESSION,
    AB_MET_REL_L2,
    AB_MET_COS_MEAN,
    AB_MET_COS_MIN,
    AB_MET_MAX_ABS,
    AB_MET_RECALL,
    AB_MET_TOPK_RECALL,
    AB_MET_KL,
    AB_MET_TASK_ACC,
    AB_MET_TASK_ACC_RETRIEVE,
    AB_MET_TASK_ACC_MULTI_RETRIEVE,
    AB_MET_TASK_ACC_AGGREGATE,
    AB_MET_N_EVAL_ROWS,
    AB_MET_TIME_S,
    AB_N_METRIC
};

/* What a metric is and which way it goes. The regression gate judges a compared metric by it
 * (check.h); accuracy metrics are NaN on a cell that did not run (an infeasible cell). */
enum ab_sense {
    AB_SENSE_HIGH_WORSE, /* accuracy, larger is worse: rel_l2, max_abs, kl */
    AB_SENSE_LOW_WORSE,  /* accuracy, smaller is worse: cos_*, recall, topk_recall, task_acc* */
    AB_SENSE_COST,       /* cost: any move is a change of accounting (flop_ratio, density, ...) */
    AB_SENSE_SETTING,    /* the solved knob */
    AB_SENSE_INFO,       /* informational, never compared: time_s */
};

/* How the report draws a metric. */
enum ab_plot {
    AB_PLOT_NONE,   /* not plotted */
    AB_PLOT_LINEAR, /* plotted on a linear axis */
    AB_PLOT_LOG,    /* plotted on a log axis */
};

/* A /summary column of a metric (struct ab_summary_row, a double): name NULL when there is
 * none. Its units are the metric's. */
struct ab_metric_sum {
    const char *name;
    size_t offset;          /* offsetof(struct ab_summary_row, field) */
    const char *long_name;
};

/* One measured column of /cells. */
struct ab_metric {
    const char *name;       /* the /cells column, named as its field of struct ab_cell */
    size_t offset;          /* offsetof(struct ab_cell, field) */
    int is_int;             /* 1: an int64_t field; 0: a double */
    const char *units;      /* UDUNITS: "1" dimensionless and counts, "byte", "nat", "s"; "" in
                               the knob's own unit */
    const char *long_name;  /* one line saying what the value is (the long_name attribute) */
    int sense;              /* enum ab_sense */
    int checked;            /* 1: `check` compares it (enum ab_sense says how) */
    /* /summary, over the feasible heads whose value is not NaN: the mean, and for accuracy the
     * weak tail: the 90th percentile where higher is worse, the 10th where lower is worse,
     * named for it (_p90, _p10) */
    struct ab_metric_sum mean, tail;
    int plot;               /* enum ab_plot: the report's frontiers draw it */
};

/* The table, indexed by enum ab_metric_id. Static, never freed. */
extern const struct ab_metric ab_metrics[AB_N_METRIC];

/* 1 for the accuracy metrics (AB_SENSE_HIGH_WORSE or AB_SENSE_LOW_WORSE). */
int ab_metric_is_accuracy(const struct ab_metric *m);

/* The percentile of the weak tail as a fraction: 0.9 where higher is worse, 0.1 where lower is
 * worse. Only for accuracy metrics (an assert). */
double ab_metric_tail_p(const struct ab_metric *m);

/* The row called name (its /cells column), or NULL. */
const struct ab_metric *ab_metric_find(const char *name);

/* The value of m in a cell (an int64_t field converted to double). */
double ab_metric_get(const void *cell, const struct ab_metric *m);

#endif
