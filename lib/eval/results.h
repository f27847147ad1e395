/* results.h - the results of a sweep in memory: the tidy /cells table of outputs.md (one row per
 * workload, layer, head, method, phase and target budget), the /summary table (per method,
 * phase and target: mean and 10th percentile over heads), and the file attributes.
 * lib/io/results_io.c writes it as HDF5 (column datasets on a shared "row" dimension scale) and
 * reads it back; lib/io/csv.c writes the same tables as CSV. */
#ifndef AB_EVAL_RESULTS_H
#define AB_EVAL_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#define AB_RESULTS_SCHEMA "attnbench/results/2"
/* Schema 2 (issue 12): a cell meets its budget when its ratio is at most the target; one-off
 * decode work in flops_once, amortised over the decode horizon (root attribute
 * decode_horizon); infeasible cells carry no metrics and a reason; /summary per workload with
 * its length n; weak-tail columns named for their percentile (rel_l2_p90, kl_p90). */

/* One row of /cells. Strings are owned by the results (malloc'd). NaN marks "not defined"
 * (recall of a method without a selection, task_acc without tasks, every accuracy metric of an
 * infeasible cell). Every field is a column: the measured ones (knob, the ledger, the accuracy
 * metrics, n_eval_rows, time_s) are rows of the metric table (eval/metric.h), the others the key
 * and status columns of lib/io/results_io.c; a field that is neither does not compile. */
struct ab_cell {
    char *workload;        /* workload path as given */
    int64_t n;             /* the workload's sequence length */
    int64_t layer, head, kv_head;
    char *method, *family;
    char *phase;           /* "prefill" | "decode" */
    char *knob_name;       /* "" when the method has none */
    double knob;           /* NaN when none */
    double target_ratio;   /* the budget asked for: a FLOP or bytes ratio (NaN for a direct
                              --knob run and for a tokens budget) */
    char *budget_kind;     /* "flops" | "tokens" | "bytes": the measure the cell's knob was
                              fitted to; "" for a direct --knob run */
    double target_tokens;  /* a tokens budget: tokens read per decode step asked for (NaN for
                              the other kinds) */
    double layer_target;   /* the target of this cell's layer under the --layer-budget rule
                              (the budget times the layer's weight, ratios clipped to 1), in
                              the kind's unit; the budget itself under the uniform rule and for
                              model-level rows */
    double flop_ratio;     /* amortised: (attend + select + once x m / G) / dense in decode */
    double flop_ratio_step;/* per step: (attend + select) / dense, without the one-off work */
    double flops_attend, flops_select, flops_once, ops_other, bytes_kv;
    double tokens_step;    /* decode: cells / m, keys read per decode step (NaN in prefill) */
    double bytes_ratio;    /* bytes_kv / dense's bytes_kv of the phase */
    double density, sparsity, compression;
    double rel_l2, cos_mean, cos_min, max_abs, recall, topk_recall, kl;
    char *task_kind;       /* kinds present in this head, "+"-joined, or "" */
    double task_acc;       /* over every task query of the head */
    double task_acc_retrieve, task_acc_multi_retrieve, task_acc_aggregate;
    int64_t n_eval_rows;
    double time_s;
    int64_t feasible;      /* 1 when the achieved ratio is at most the target, 0 when even
                              the smallest knob costs more (metrics then NaN) */
    char *reason;          /* why the cell is infeasible ("smallest knob (k = 1) 0.199"), or "" */
};


/* Frees the strings of one cell (every char * field; a new one is freed here too). */
void ab_cell_free_strings(struct ab_cell *c);
/* One row of /summary: aggregates over the heads of one (workload, method, phase, target), so
 * lengths and workloads are never averaged together. */
struct ab_summary_row {
    char *workload;
    int64_t n;             /* the workload's sequence length */
    char *method, *phase;
    double target_ratio;
    char *budget_kind;     /* the group's budget kind (cells of each kind are grouped apart) */
    double target_tokens;  /* a tokens budget (NaN for the other kinds) */
    int64_t n_cells;       /* cells (heads) of the group */
    int64_t n_heads;       /* of them, feasible cells aggregated */
    double flop_ratio;     /* mean achieved (amortised) */
    double flop_ratio_step;/* mean per-step ratio */
    double bytes_kv;       /* mean K and V bytes read per cell */
    double tokens_step;    /* mean tokens read per decode step */
    double bytes_ratio;    /* mean bytes_kv relative to dense */
    /* mean and weak tail over heads of each accuracy column: the 10th percentile where higher
     * is better, the 90th where higher is worse (rel_l2, kl) */
    double rel_l2_mean, rel_l2_p90, cos_mean_mean, cos_mean_p10, cos_min_mean, cos_min_p10;
    double recall_mean, recall_p10, topk_recall_mean, topk_recall_p10, kl_mean, kl_p90;
    double task_acc_mean, task_acc_p10;
    double task_acc_retrieve_mean, task_acc_aggregate_mean;
    char *reason;          /* the first infeasible cell's reason, or "" when every cell is
                              feasible */
};

/* One row of /heads (metrics.md, "Head and sink statistics"): the statistics of one (workload,
 * layer, query head) from exact attention. Strings owned by the results (malloc'd). Positions
 * are key rows; -1 and NaN mark "none" / "not defined". */
#define AB_HEAD_N_ALPHA 10 /* alpha(k) stored for k < AB_HEAD_N_ALPHA */
#define AB_HEAD_N_SEC   4  /* secondary sinks stored */
struct ab_head_row {
    char *workload;
    int64_t layer, head, kv_head;
    char *profile;              /* planted profile (/truth/profile) or "" */
    double sink_score;          /* alpha(0) */
    double alpha0, alpha1, alpha2, alpha3, alpha4, alpha5, alpha6, alpha7, alpha8, alpha9;
    int64_t n_sinks;            /* keys with alpha(k) > 0.1 */
    int64_t sink_pos;           /* the first of them (primary sink), -1 */
    int64_t sec_pos1, sec_pos2, sec_pos3, sec_pos4;     /* the next ones by position, -1 */
    double sec_alpha1, sec_alpha2, sec_alpha3, sec_alpha4; /* their alpha, NaN */
    double first_weight, first_weight_norm; /* mean_i A[i,0]; divided by the layer mean */
    double entropy, entropy_norm, locality;
    double vertical_mass, slash_mass;
    double value_drain;         /* ||v_0|| / mean_{j>0} ||v_j|| */
    double key_ratio;           /* ||k_0|| / mean_{j>0} ||k_j|| */
    double out_norm, out_norm_norm; /* mean_i ||O_i||; divided by the layer mean */
    double distant_mass;        /* mean_i share outside the first 4 and last 64 keys */
    double out_dev;             /* ||O_stream - O||_F / ||O||_F, sink 64 + recent 256 */
    int64_t retrieval_like;     /* 1 for the top fraction of heads by out_dev */
    double retrieval_score;     /* hits of the needle span / retrieve tasks (NaN: no tasks) */
    int64_t retrieval_head;     /* retrieval_score > 0.1 */
    double echo_score;          /* mean over rows of the mass on earlier copies of the row's
                                   token (NaN: no tokens or no repeated token) */
    double induction_score;     /* ... on the key after each earlier copy */
    double echo_group, induction_group; /* max over the query heads of the same kv head */
    int64_t sec_lifetime;       /* lifetime (layers, lib/heads/hidden.h) of the strongest stored
                                   secondary sink by alpha; -1: no hidden states or no
                                   secondary sink */
    int64_t sec_lifetime_pos;   /* that sink's position, -1 */
    int64_t sec_secondary;      /* 1 when its lifetime is within the secondary bounds, 0 when
                                   not, -1 when undefined */
};

/* One row of /layers (`attnbench heads` on a workload with hidden states; metrics.md "massive
 * activations" and "secondary-sink lifetime"): one hidden state of one workload. Hidden state
 * l is the residual stream entering layer l (l = n_layer: the output of the last layer).
 * Strings owned by the results (malloc'd). */
#define AB_LAYER_MASSIVE_CAP 16 /* entries listed in `massive` */
struct ab_layer_row {
    char *workload;
    int64_t layer;              /* hidden-state index 0..n_layer */
    double top1, top2, top3;    /* the activations with the 3 largest |x| (signed), NaN: none */
    int64_t top1_pos, top1_dim, top2_pos, top2_dim, top3_pos, top3_dim; /* their place, -1 */
    double median_abs;          /* median over (pos, dim) of |x| */
    int64_t n_massive;          /* activations with |x| > massive_abs and > ratio x median */
    int64_t n_massive_dims;     /* distinct dims among them */
    char *massive;              /* "dim@pos:value ..." by |x| descending, at most
                                   AB_LAYER_MASSIVE_CAP, " ..." when more; "" when none */
    int64_t sink_pos;           /* the workload's primary sink position */
    double sink_norm;           /* ||H_l[sink_pos]|| */
    double median_norm;         /* median over positions of ||H_l[t]|| */
    double sink_norm_ratio;     /* sink_norm / median_norm */
    int64_t sink_high;          /* 1 when sink_norm_ratio > the high-norm ratio: the layer
                                   counts for lifetimes */
};

/* One row of /model (`attnbench eval-model`): a method replacing attention inside a model's
 * forward pass on one input, end to end, next to dense on the same input. Strings owned by the
 * results (malloc'd). */
struct ab_model_row {
    char *workload;        /* the input: text file path, or "copy-R" for the copy task */
    char *model;           /* model file path as given */
    char *method, *family, *phase;
    char *knob_name;       /* "" when the method has none */
    double knob;           /* the direct knob, or NaN (fitted per head) */
    double target_ratio;   /* per-head target: a FLOP or bytes ratio (NaN for a direct knob
                              and for a tokens budget) */
    char *budget_kind;     /* "flops" | "tokens" | "bytes": the measure every head's knob was
                              fitted to (as /cells); "" for a direct --knob run */
    double target_tokens;  /* a tokens budget: tokens read per decode step asked for of each
                              head (NaN for the other kinds) */
    double flop_ratio;     /* achieved: sum of the method's attention FLOPs over the heads it
                              ran on / their dense FLOPs, in the phase */
    double bytes_kv;       /* K and V bytes read by the method, summed over those heads */
    double tokens_step;    /* decode: mean over the replaced heads of cells / m, the keys a
                              decode query reads (NaN in prefill) */
    double bytes_ratio;    /* mean over the replaced heads of bytes_kv / dense bytes_kv */
    char *heads;           /* which heads the method replaced: "all", "top K by COL", ... */
    char *head_list;       /* "L:H L:H ..." of those heads ("" when all) */
    int64_t n_heads;       /* heads the method replaced */
    int64_t heads_feasible;/* of them, heads whose knob met the target within tolerance */
    int64_t feasible;      /* 1 when every replaced head was feasible */
    char *reason;          /* why the row has no scores (a replaced head could not reach the
                              target: nll, ppl, acc, copy_acc are then NaN), or "" */
    int64_t n_tokens;      /* tokens of the input (BOS included) */
    int64_t n_scored;      /* positions whose next-token prediction is scored */
    double nll, ppl, acc;  /* mean NLL (nats/token), exp(nll), top-1 next-token accuracy */
    double copy_acc;       /* top-1 accuracy on the second copy (copy task only, NaN otherwise) */
    double dense_nll, dense_ppl, dense_acc, dense_copy_acc; /* the same with exact attention */
    double rel_l2;         /* attention level: mean over replaced heads of ||O_m - O||/||O|| on
                              the head's own inputs inside this pass */
    double time_s;         /* wall time of the pass */
};

struct ab_results {
    int64_t n_cells, cap_cells;
    struct ab_cell *cells;
    int64_t n_summary;
    struct ab_summary_row *summary;
    /* root attributes */
    char *command_line;
    char **workloads;      /* (n_workloads) paths */
    char **workload_sha256;/* (n_workloads) hex digests */
    int64_t n_workloads;
    uint64_t seed;
    int64_t threads;
    char *scenario;        /* scenario text or NULL */
    char *notes;           /* conventions recorded with the results (kl direction, sampling) */
    char *options;         /* the command's options as JSON (ab_decl_json), or NULL */
    char *external;        /* `ingest`: the external methods' provenance as JSON, {"external":
                              {NAME: {"source", "sha256", "provenance"}}}, or NULL */
    int64_t decode_horizon;/* G of the decode cells' amortised ratio (0: no decode cells) */
    int64_t stride;        /* eval-model: stride of the sliding windows over texts longer than
                              the context (0: every input fit in one pass) */
    int64_t window_bos;    /* 1: those windows after the first start with BOS */
    /* root attributes a writer takes from the clock, the machine and the build when NULL (set
     * them for a reproducible file); a reader fills them from the file */
    char *created_utc;     /* "YYYY-MM-DDTHH:MM:SSZ" */
    char *hostname;
    char *attnbench_version;
    char *openblas_config;
    /* the /heads table (`attnbench heads`); freed by ab_results_free */
    struct ab_head_row *heads;
    int64_t n_heads;
    /* the /model table (`attnbench eval-model`); freed by ab_results_free */
    struct ab_model_row *model;
    int64_t n_model;
    /* the /layers table (`attnbench heads` with hidden states); freed by ab_results_free */
    struct ab_layer_row *layers;
    int64_t n_layers;
};

/* Zeroes r: no cells, no summary, every attribute NULL / 0. */
void ab_results_init(struct ab_results *r);
/* Frees everything r owns (cells, summary, the /heads, /model and /layers tables, attribute
 * strings) and leaves it initialised; safe to call twice. */
void ab_results_free(struct ab_results *r);
/* Frees only the /heads table (n_heads becomes 0). */
void ab_results_heads_free(struct ab_results *r);
/* Frees only the /layers table (n_layers becomes 0). */
void ab_results_layers_free(struct ab_results *r);
/* Appends a copy of c (strings duplicated, NULL kept NULL), growing the array geometrically.
 * AB_OK or AB_E_NOMEM (r unchanged). */
int ab_results_add(struct ab_results *r, const struct ab_cell *c);
/* Appends a copy of row (strings duplicated) to r->model. AB_OK or AB_E_NOMEM. */
int ab_results_add_model(struct ab_results *r, const struct ab_model_row *row);
/* Computes r->summary from r->cells (replacing any): one row per (workload, method, phase,
 * budget_kind, target_ratio, target_tokens) in order of first appearance in the cells (a NaN target groups with NaN).
 * n_heads counts the feasible cells; every mean and percentile runs over the feasible cells
 * whose value is not NaN (NaN when there is none). Percentiles by linear interpolation between
 * sorted values (numpy's default). Which columns get a mean and a tail is the metric table's
 * (eval/metric.h): *_p10 the 10th percentile where higher is better (cos_mean, cos_min, recall,
 * topk_recall, task_acc), *_p90 the 90th where higher is worse (rel_l2, kl).
 * AB_OK or AB_E_NOMEM (the old summary is then kept). */
int ab_results_summarise(struct ab_results *r);

/* A target ratio as people write it: "1/8" for an exact reciprocal, "1", "0.3", or "knob" for
 * NaN (a direct --knob run). */
void ab_ratio_label(double t, char *buf, size_t cap);

#endif
