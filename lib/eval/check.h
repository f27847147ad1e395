/* check.h - the regression gate of outputs.md: compares a results table with a baseline table,
 * row by row, and lists what moved.
 *
 * Rows are matched on their key columns: the workload's base name (so runs from different
 * folders match), layer, head, method, phase, target_ratio (NaN matches NaN), knob_name, and
 * the knob when target_ratio is NaN (a direct --knob run). When a key occurs several times in a
 * table (two workloads with one base name) its rows are paired in table order. The accuracy
 * and cost columns (ab_check_columns, from the metric table; never time_s) are compared under a
 * tolerance: a value moved beyond tolerance when |new - baseline| > atol + rtol * |baseline|.
 * Accuracy columns have a bad direction (rel_l2 up, recall down); cost columns fail on a move
 * either way; a change of NaN-ness, of feasibility, or a baseline row that disappears fails too.
 * Pure: no I/O, no printing; cmd/check.c reads the files and prints the findings. */
#ifndef AB_EVAL_CHECK_H
#define AB_EVAL_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "eval/metric.h"
#include "eval/results.h"

/* A compared column of /cells: a double field, or an int64_t field when is_int. Judged by its
 * sense (eval/metric.h): an accuracy column fails when it moves its bad way (AB_SENSE_HIGH_WORSE,
 * AB_SENSE_LOW_WORSE), a cost column when it moves either way (AB_SENSE_COST), the solved knob
 * (AB_SENSE_SETTING) only with any_change, and not when it is part of the key. */
struct ab_check_column {
    const char *name;
    int sense; /* enum ab_sense */
    size_t offset;
    int is_int;
};

enum { AB_CHECK_MAX_COLUMNS = 32 };

/* The compared columns: the rows of the metric table (eval/metric.h) marked checked, accuracy
 * first, then cost, then the knob, each group in table (/cells) order; *n gets the count.
 * Static table, never freed. time_s is not among them. */
const struct ab_check_column *ab_check_columns(int *n);

/* Index of the column called name in ab_check_columns(), or -1. */
int ab_check_column_find(const char *name);

struct ab_check_opts {
    double rtol[AB_CHECK_MAX_COLUMNS]; /* per column, >= 0 */
    double atol[AB_CHECK_MAX_COLUMNS]; /* per column, >= 0 */
    unsigned char use[AB_CHECK_MAX_COLUMNS]; /* accuracy columns: 0 skips the column entirely
                                                (cost and setting columns ignore this) */
    int any_change; /* 1: a move beyond tolerance in either direction fails, in every column */
};

/* Defaults: rtol 1e-3 and atol 1e-6 for every column, every accuracy column used, any_change
 * off. */
#define AB_CHECK_RTOL 1e-3
#define AB_CHECK_ATOL 1e-6
void ab_check_defaults(struct ab_check_opts *o);

enum ab_finding_kind {
    AB_FIND_WORSE,    /* accuracy moved the bad way beyond tolerance (fails) */
    AB_FIND_BETTER,   /* accuracy moved the good way beyond tolerance (fails with any_change) */
    AB_FIND_COST,     /* a cost column moved beyond tolerance (fails) */
    AB_FIND_CHANGED,  /* the solved knob moved (only looked at, and failing, with any_change) */
    AB_FIND_NAN,      /* a value became NaN or stopped being NaN (fails) */
    AB_FIND_FEASIBLE, /* feasible changed (fails; the row's columns are then not compared) */
    AB_FIND_MISSING,  /* a baseline row has no match in the new table (fails) */
    AB_FIND_ADDED,    /* a new row has no match in the baseline (never fails) */
};

/* One thing that moved. Rows index the tables given to ab_check_compare (-1: absent). */
struct ab_check_finding {
    int kind;        /* enum ab_finding_kind */
    int fails;       /* 1 when it makes the check fail */
    int64_t base_row, new_row;
    int column;      /* index into ab_check_columns(); -1 for row-level findings */
    double base_value, new_value; /* the column's values (feasible: 0 / 1; else NaN) */
};

struct ab_check_report {
    int64_t n_base, n_new;  /* rows of each table */
    int64_t n_matched;      /* baseline rows with a partner */
    int64_t n_regressions;  /* failing findings other than missing rows */
    int64_t n_missing, n_added;
    int64_t n_improved;     /* AB_FIND_BETTER findings that do not fail */
    int64_t n_findings, cap_findings;
    struct ab_check_finding *findings; /* baseline row order (columns in table order), then
                                          the added rows in new-table order */
};

/* Compares now with base under o and fills *out (initialised here; free it with
 * ab_check_report_free, also after a failure). Work O((n_base + n_new) log(n_base + n_new) +
 * n_matched * columns). AB_OK or AB_E_NOMEM. */
int ab_check_compare(const struct ab_results *base, const struct ab_results *now,
                     const struct ab_check_opts *o, struct ab_check_report *out);

/* 1 when the report holds a failing finding (a regression or a missing row), else 0. */
int ab_check_failed(const struct ab_check_report *r);

void ab_check_report_free(struct ab_check_report *r);

/* Short name of a finding kind: "worse", "better", "cost", "changed", "nan", "feasible",
 * "missing", "added". */
const char *ab_check_kind_name(int kind);

/* The base name of a workload path (the part after the last '/'; "" for NULL), pointing into
 * path. */
const char *ab_check_basename(const char *path);

#endif
