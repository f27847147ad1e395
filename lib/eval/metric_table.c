/* metric_table.c - the one description of the measured columns of a cell (see metric.h): its
 * /cells column (name, units, long name), its direction, whether `check` compares it, its
 * /summary columns and whether the report plots it. The strings are the attributes of the
 * results files: changing one changes every file written after it. */
#include "eval/metric.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "eval/results.h"

#define CELL(f) .name = #f, .offset = offsetof(struct ab_cell, f)
#define SUM(f, long_name) {#f, offsetof(struct ab_summary_row, f), long_name}

/* Units follow UDUNITS: "1" for dimensionless numbers and counts. */
const struct ab_metric ab_metrics[] = {
    [AB_MET_KNOB] = {CELL(knob), .units = "",
                     .long_name = "knob value, in the knob's own unit (NaN when the method has "
                                  "none)",
                     .sense = AB_SENSE_SETTING, .checked = 1},
    [AB_MET_FLOP_RATIO] = {CELL(flop_ratio), .units = "1",
                           .long_name = "(flops_attend + flops_select + w flops_once) / dense "
                                        "FLOPs of the phase, w = 1 in prefill, m / "
                                        "decode_horizon in decode (one-off work amortised over "
                                        "the horizon): the ratio budgets are fitted to",
                           .sense = AB_SENSE_COST, .checked = 1,
                           .mean = SUM(flop_ratio,
                                       "mean over the feasible heads of achieved flop_ratio")},
    /* flop_ratio_step and flops_once are not compared by `check` (as before this table): for a
     * matched row they follow from flops_attend, flops_select and flop_ratio, which are */
    [AB_MET_FLOP_RATIO_STEP] = {CELL(flop_ratio_step), .units = "1",
                                .long_name = "(flops_attend + flops_select) / dense FLOPs: the "
                                             "per-step ratio, without the one-off work",
                                .sense = AB_SENSE_COST,
                                .mean = SUM(flop_ratio_step, "mean over the feasible heads of "
                                                             "the per-step flop_ratio_step")},
    [AB_MET_FLOPS_ATTEND] = {CELL(flops_attend), .units = "1",
                             .long_name = "FLOPs of the attention computed (multiply-add = 2 "
                                          "FLOPs)",
                             .sense = AB_SENSE_COST, .checked = 1},
    [AB_MET_FLOPS_SELECT] = {CELL(flops_select), .units = "1",
                             .long_name = "FLOPs spent deciding what to keep, per query "
                                          "(estimation, pooling, scoring)",
                             .sense = AB_SENSE_COST, .checked = 1},
    [AB_MET_FLOPS_ONCE] = {CELL(flops_once), .units = "1",
                           .long_name = "decode: FLOPs done once on the context at the end of "
                                        "prefill (observation window, index, probe), amortised "
                                        "over decode_horizon in flop_ratio",
                           .sense = AB_SENSE_COST},
    [AB_MET_OPS_OTHER] = {CELL(ops_other), .units = "1",
                          .long_name = "exp, compare and sort/top-k element operations, not "
                                       "folded into FLOPs",
                          .sense = AB_SENSE_COST, .checked = 1},
    [AB_MET_BYTES_KV] = {CELL(bytes_kv), .units = "byte", .long_name = "bytes of K and V read",
                         .sense = AB_SENSE_COST, .checked = 1,
                         .mean = SUM(bytes_kv, "mean over the feasible heads of bytes_kv")},
    /* tokens_step and bytes_ratio are not compared by `check`: they follow from cells
     * (density) and bytes_kv, which are */
    [AB_MET_TOKENS_STEP] = {CELL(tokens_step), .units = "1",
                            .long_name = "decode: kept cells / m, the mean number of keys a "
                                         "decode query reads (the cache size of an eviction "
                                         "method; NaN in prefill): the measure of a tokens "
                                         "budget",
                            .sense = AB_SENSE_COST,
                            .mean = SUM(tokens_step,
                                        "mean over the feasible heads of tokens_step")},
    [AB_MET_BYTES_RATIO] = {CELL(bytes_ratio), .units = "1",
                            .long_name = "bytes_kv / dense bytes_kv of the phase (4 (d + d_v) "
                                         "bytes per allowed cell): the measure of a bytes "
                                         "budget",
                            .sense = AB_SENSE_COST,
                            .mean = SUM(bytes_ratio,
                                        "mean over the feasible heads of bytes_ratio")},
    [AB_MET_DENSITY] = {CELL(density), .units = "1",
                        .long_name = "kept query-key cells / cells the mask allows",
                        .sense = AB_SENSE_COST, .checked = 1},
    [AB_MET_SPARSITY] = {CELL(sparsity), .units = "1", .long_name = "1 - density",
                         .sense = AB_SENSE_COST, .checked = 1},
    [AB_MET_COMPRESSION] = {CELL(compression), .units = "1", .long_name = "1 / flop_ratio",
                            .sense = AB_SENSE_COST, .checked = 1},
    [AB_MET_REL_L2] = {CELL(rel_l2), .units = "1",
                       .long_name = "||O_method - O||_F / ||O||_F over the evaluated rows "
                                    "(higher is worse)",
                       .sense = AB_SENSE_HIGH_WORSE, .checked = 1,
                       .mean = SUM(rel_l2_mean, "mean over the feasible heads of rel_l2"),
                       .tail = SUM(rel_l2_p90, "90th percentile over the feasible heads of "
                                               "rel_l2 (the weak tail: higher is worse)"),
                       .plot = AB_PLOT_LOG},
    [AB_MET_COS_MEAN] = {CELL(cos_mean), .units = "1",
                         .long_name = "mean over evaluated rows of cos(O_method_i, O_i) (higher "
                                      "is better)",
                         .sense = AB_SENSE_LOW_WORSE, .checked = 1,
                         .mean = SUM(cos_mean_mean, "mean over the feasible heads of cos_mean"),
                         .tail = SUM(cos_mean_p10, "10th percentile over the feasible heads of "
                                                   "cos_mean (the weak tail)")},
    [AB_MET_COS_MIN] = {CELL(cos_min), .units = "1",
                        .long_name = "minimum over evaluated rows of cos(O_method_i, O_i) "
                                     "(higher is better)",
                        .sense = AB_SENSE_LOW_WORSE, .checked = 1,
                        .mean = SUM(cos_min_mean, "mean over the feasible heads of cos_min"),
                        .tail = SUM(cos_min_p10, "10th percentile over the feasible heads of "
                                                 "cos_min (the weak tail)"),
                        .plot = AB_PLOT_LINEAR},
    [AB_MET_MAX_ABS] = {CELL(max_abs), .units = "1",
                        .long_name = "max |O_method - O| over the evaluated rows",
                        .sense = AB_SENSE_HIGH_WORSE, .checked = 1},
    [AB_MET_RECALL] = {CELL(recall), .units = "1",
                       .long_name = "mean over rows of the exact attention mass on the kept keys "
                                    "(NaN without a selection)",
                       .sense = AB_SENSE_LOW_WORSE, .checked = 1,
                       .mean = SUM(recall_mean, "mean over the feasible heads of recall"),
                       .tail = SUM(recall_p10, "10th percentile over the feasible heads of "
                                               "recall (the weak tail)"),
                       .plot = AB_PLOT_LINEAR},
    [AB_MET_TOPK_RECALL] = {CELL(topk_recall), .units = "1",
                            .long_name = "mean over rows of |kept keys & exact top-k keys| / k",
                            .sense = AB_SENSE_LOW_WORSE, .checked = 1,
                            .mean = SUM(topk_recall_mean,
                                        "mean over the feasible heads of topk_recall"),
                            .tail = SUM(topk_recall_p10, "10th percentile over the feasible "
                                                         "heads of topk_recall (the weak tail)")},
    [AB_MET_KL] = {CELL(kl), .units = "nat",
                   .long_name = "mean over rows of KL(A_i || A_method_i), natural log (NaN when "
                                "the method has no distribution; higher is worse)",
                   .sense = AB_SENSE_HIGH_WORSE, .checked = 1,
                   .mean = SUM(kl_mean, "mean over the feasible heads of kl"),
                   .tail = SUM(kl_p90, "90th percentile over the feasible heads of kl (the weak "
                                       "tail: higher is worse)")},
    [AB_MET_TASK_ACC] = {CELL(task_acc), .units = "1",
                         .long_name = "fraction of the head's task queries solved, all kinds "
                                      "(NaN without tasks)",
                         .sense = AB_SENSE_LOW_WORSE, .checked = 1,
                         .mean = SUM(task_acc_mean, "mean over the feasible heads of task_acc"),
                         .tail = SUM(task_acc_p10, "10th percentile over the feasible heads of "
                                                   "task_acc (the weak tail)"),
                         .plot = AB_PLOT_LINEAR},
    [AB_MET_TASK_ACC_RETRIEVE] = {CELL(task_acc_retrieve), .units = "1",
                                  .long_name = "fraction of retrieve task queries solved (NaN "
                                               "without such tasks)",
                                  .sense = AB_SENSE_LOW_WORSE, .checked = 1,
                                  .mean = SUM(task_acc_retrieve_mean,
                                              "mean over the feasible heads of task_acc_retrieve "
                                              "(low dispersion)"),
                                  .plot = AB_PLOT_LINEAR},
    [AB_MET_TASK_ACC_MULTI_RETRIEVE] = {CELL(task_acc_multi_retrieve), .units = "1",
                                        .long_name = "fraction of multi-retrieve task queries "
                                                     "solved (NaN without such tasks)",
                                        .sense = AB_SENSE_LOW_WORSE, .checked = 1},
    [AB_MET_TASK_ACC_AGGREGATE] = {CELL(task_acc_aggregate), .units = "1",
                                   .long_name = "fraction of aggregate task queries solved (NaN "
                                                "without such tasks)",
                                   .sense = AB_SENSE_LOW_WORSE, .checked = 1,
                                   .mean = SUM(task_acc_aggregate_mean,
                                               "mean over the feasible heads of "
                                               "task_acc_aggregate (high dispersion)"),
                                   .plot = AB_PLOT_LINEAR},
    [AB_MET_N_EVAL_ROWS] = {CELL(n_eval_rows), .is_int = 1, .units = "1",
                            .long_name = "number of query rows evaluated",
                            .sense = AB_SENSE_COST, .checked = 1},
    [AB_MET_TIME_S] = {CELL(time_s), .units = "s",
                       .long_name = "wall time of the method on this cell (informational)",
                       .sense = AB_SENSE_INFO},
};
_Static_assert(sizeof ab_metrics / sizeof ab_metrics[0] == AB_N_METRIC,
               "one row of ab_metrics per enum ab_metric_id");

int ab_metric_is_accuracy(const struct ab_metric *m)
{
    return m->sense == AB_SENSE_HIGH_WORSE || m->sense == AB_SENSE_LOW_WORSE;
}

double ab_metric_tail_p(const struct ab_metric *m)
{
    assert(ab_metric_is_accuracy(m));
    return m->sense == AB_SENSE_HIGH_WORSE ? 0.9 : 0.1;
}

const struct ab_metric *ab_metric_find(const char *name)
{
    for (int k = 0; k < AB_N_METRIC; k++)
        if (!strcmp(ab_metrics[k].name, name)) return &ab_metrics[k];
    return NULL;
}

double ab_metric_get(const void *cell, const struct ab_metric *m)
{
    const char *p = (const char *)cell + m->offset;
    if (m->is_int) {
        int64_t v;
        memcpy(&v, p, sizeof v);
        return (double)v;
    }
    double v;
    memcpy(&v, p, sizeof v);
    return v;
}
