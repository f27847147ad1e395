/* results_io.c - the results file in HDF5 (layout in results_io.h, outputs.md "Results file"):
 * the column tables of /cells and /summary with their units and long names (the key columns
 * here, the measured ones and their summaries from the metric table), writing struct
 * ab_results through the table writer of h5_util, reading it back with every check done before
 * bulk reads, and the SHA-256 of the workload files a run records. */
#include "io/results_io.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/sha256.h"
#include "eval/metric.h"
#include "io/h5_util.h"

/* ---------------------------------------------------------------- column tables */

#define AB_CELL_COL(field, type, units, long_name)                                                 \
    {                                                                                              \
#field, type, offsetof(struct ab_cell, field), units, long_name                            \
    }
#define AB_SUM_COL(field, type, units, long_name)                                                  \
    {                                                                                              \
#field, type, offsetof(struct ab_summary_row, field), units, long_name                     \
    }

/* Units follow UDUNITS: "1" for dimensionless numbers and counts, "" for labels. */

/* The columns of /cells that name a cell and say whether it ran; its measured columns (knob,
 * cost, accuracy, n_eval_rows, time_s) are the rows of the metric table (eval/metric.h). */
static const struct ab_column ab_cell_keys[] = {
    AB_CELL_COL(workload, AB_COL_STR, "", "workload file path as given"),
    AB_CELL_COL(n, AB_COL_I64, "1", "the workload's sequence length"),
    AB_CELL_COL(layer, AB_COL_I64, "1", "layer index (0-based)"),
    AB_CELL_COL(head, AB_COL_I64, "1", "query head index (0-based)"),
    AB_CELL_COL(kv_head, AB_COL_I64, "1", "key/value head serving this query head (0-based)"),
    AB_CELL_COL(method, AB_COL_STR, "", "method name (registry row)"),
    AB_CELL_COL(family, AB_COL_STR, "", "method family"),
    AB_CELL_COL(phase, AB_COL_STR, "", "phase: prefill or decode"),
    AB_CELL_COL(knob_name, AB_COL_STR, "", "name of the method's knob (empty when it has none)"),
    AB_CELL_COL(target_ratio, AB_COL_F64, "1",
                "target ratio asked for: a FLOP ratio, or a bytes ratio under a bytes budget "
                "(NaN for a direct --knob run and for a tokens budget)"),
    AB_CELL_COL(budget_kind, AB_COL_STR, "",
                "the budget the cell met: flops (target_ratio a FLOP ratio), tokens "
                "(target_tokens read per decode step) or bytes (target_ratio a ratio of "
                "bytes_kv to dense's); empty for a direct --knob run"),
    AB_CELL_COL(target_tokens, AB_COL_F64, "1",
                "tokens budget: keys read per decode step asked for (NaN for the other kinds)"),
    AB_CELL_COL(layer_target, AB_COL_F64, "1",
                "the target of the cell's layer under the --layer-budget rule (budget x layer "
                "weight, ratios clipped to 1), in the budget kind's unit"),
    AB_CELL_COL(task_kind, AB_COL_STR, "",
                "task kinds present in this head, '+'-joined (empty without tasks)"),
    AB_CELL_COL(feasible, AB_COL_I64, "1",
                "1 when the achieved measure of the budget kind (flop_ratio, tokens_step or "
                "bytes_ratio) is at most the layer's target, 0 when even the smallest knob is "
                "above it (every metric then NaN)"),
    AB_CELL_COL(reason, AB_COL_STR, "",
                "why the cell is infeasible: the cost term that exceeds the target (empty when "
                "feasible)"),
};
#define N_CELL_KEYS ((int)(sizeof ab_cell_keys / sizeof ab_cell_keys[0]))
/* every field of struct ab_cell (8 bytes each: double, int64_t, char *) is a column: a key
 * above or a row of the metric table */
_Static_assert(sizeof(struct ab_cell) == 8 * (N_CELL_KEYS + AB_N_METRIC),
               "a field of struct ab_cell is neither a key column here nor a row of ab_metrics");

/* The columns of /summary that name a group and count its heads; the means and tails are the
 * metric table's. */
static const struct ab_column ab_summary_keys[] = {
    AB_SUM_COL(workload, AB_COL_STR, "", "workload file path as given"),
    AB_SUM_COL(n, AB_COL_I64, "1", "the workload's sequence length"),
    AB_SUM_COL(method, AB_COL_STR, "", "method name (registry row)"),
    AB_SUM_COL(phase, AB_COL_STR, "", "phase: prefill or decode"),
    AB_SUM_COL(target_ratio, AB_COL_F64, "1",
               "target ratio asked for: FLOP or bytes ratio by budget_kind (NaN for a direct "
               "--knob run and for a tokens budget)"),
    AB_SUM_COL(budget_kind, AB_COL_STR, "", "the group's budget kind: flops, tokens or bytes"),
    AB_SUM_COL(target_tokens, AB_COL_F64, "1",
               "tokens budget asked for (NaN for the other kinds)"),
    AB_SUM_COL(n_cells, AB_COL_I64, "1", "number of cells (heads) of the group"),
    AB_SUM_COL(n_heads, AB_COL_I64, "1", "number of feasible cells (heads) aggregated"),
    AB_SUM_COL(reason, AB_COL_STR, "",
               "the first infeasible cell's reason (empty when every head is feasible)"),
};
#define N_SUM_KEYS ((int)(sizeof ab_summary_keys / sizeof ab_summary_keys[0]))
enum { N_SUM_MAX = N_SUM_KEYS + 2 * AB_N_METRIC };

/* The full tables, assembled once from the key columns and the metric table (ab_cols_build). */
static struct ab_column ab_cell_cols[N_CELL_KEYS + AB_N_METRIC];
static struct ab_column ab_summary_cols[N_SUM_MAX];
static int ab_n_summary_cols;
static pthread_once_t ab_cols_once = PTHREAD_ONCE_INIT;

/* Inserts col into cols[0..*n) keeping the offsets ascending (declaration order). */
static void ab_cols_insert(struct ab_column *cols, int *n, struct ab_column col)
{
    int i = *n;
    for (; i > 0 && cols[i - 1].offset > col.offset; i--) cols[i] = cols[i - 1];
    cols[i] = col;
    (*n)++;
}

/* A summary column of metric m. */
static struct ab_column ab_sum_col(const struct ab_metric *m, const struct ab_metric_sum *s)
{
    return (struct ab_column){s->name, AB_COL_F64, s->offset, m->units, s->long_name};
}

/* Builds ab_cell_cols and ab_summary_cols: the key columns and the metric table merged in the
 * declaration order of their fields, each field once (asserted: a struct field without a
 * column is our bug). */
static void ab_cols_build(void)
{
    int nc = 0, ns = 0;
    for (int i = 0; i < N_CELL_KEYS; i++) ab_cols_insert(ab_cell_cols, &nc, ab_cell_keys[i]);
    for (int i = 0; i < N_SUM_KEYS; i++) ab_cols_insert(ab_summary_cols, &ns, ab_summary_keys[i]);
    for (int k = 0; k < AB_N_METRIC; k++) {
        const struct ab_metric *m = &ab_metrics[k];
        struct ab_column c = {m->name, m->is_int ? AB_COL_I64 : AB_COL_F64, m->offset, m->units,
                              m->long_name};
        ab_cols_insert(ab_cell_cols, &nc, c);
        if (m->mean.name) ab_cols_insert(ab_summary_cols, &ns, ab_sum_col(m, &m->mean));
        if (m->tail.name) ab_cols_insert(ab_summary_cols, &ns, ab_sum_col(m, &m->tail));
    }
    /* every field of both structs, 8 bytes each, in order and once */
    assert(nc == N_CELL_KEYS + AB_N_METRIC);
    for (int i = 0; i < nc; i++) assert(ab_cell_cols[i].offset == (size_t)i * 8);
    assert((size_t)ns * 8 == sizeof(struct ab_summary_row));
    for (int i = 0; i < ns; i++) assert(ab_summary_cols[i].offset == (size_t)i * 8);
    ab_n_summary_cols = ns;
}

#define AB_HEAD_COL(field, type, units, long_name)                                                 \
    {                                                                                              \
#field, type, offsetof(struct ab_head_row, field), units, long_name                        \
    }
#define AB_ALPHA_COL(k)                                                                            \
    AB_HEAD_COL(alpha##k, AB_COL_F64, "1",                                                         \
                "column mean alpha(" #k "): mean attention key " #k " receives from the queries " \
                "that see it")
#define AB_SEC_COLS(i)                                                                             \
    AB_HEAD_COL(sec_pos##i, AB_COL_I64, "1", "position of secondary sink " #i " (-1: none)"),     \
        AB_HEAD_COL(sec_alpha##i, AB_COL_F64, "1", "alpha of secondary sink " #i " (NaN: none)")

static const struct ab_column ab_head_cols[] = {
    AB_HEAD_COL(workload, AB_COL_STR, "", "workload file path as given"),
    AB_HEAD_COL(layer, AB_COL_I64, "1", "layer index (0-based)"),
    AB_HEAD_COL(head, AB_COL_I64, "1", "query head index (0-based)"),
    AB_HEAD_COL(kv_head, AB_COL_I64, "1", "key/value head serving this query head (0-based)"),
    AB_HEAD_COL(profile, AB_COL_STR, "", "planted profile from /truth/profile (empty: unknown)"),
    AB_HEAD_COL(sink_score, AB_COL_F64, "1", "sink score alpha(0)"),
    AB_ALPHA_COL(0), AB_ALPHA_COL(1), AB_ALPHA_COL(2), AB_ALPHA_COL(3), AB_ALPHA_COL(4),
    AB_ALPHA_COL(5), AB_ALPHA_COL(6), AB_ALPHA_COL(7), AB_ALPHA_COL(8), AB_ALPHA_COL(9),
    AB_HEAD_COL(n_sinks, AB_COL_I64, "1", "number of keys with alpha(k) > 0.1"),
    AB_HEAD_COL(sink_pos, AB_COL_I64, "1", "position of the primary (first) sink (-1: none)"),
    AB_SEC_COLS(1), AB_SEC_COLS(2), AB_SEC_COLS(3), AB_SEC_COLS(4),
    AB_HEAD_COL(first_weight, AB_COL_F64, "1", "first-token weight mean_i A[i,0] (dormancy)"),
    AB_HEAD_COL(first_weight_norm, AB_COL_F64, "1",
                "first-token weight divided by its mean over the layer's heads"),
    AB_HEAD_COL(entropy, AB_COL_F64, "nat", "mean over rows of the attention entropy"),
    AB_HEAD_COL(entropy_norm, AB_COL_F64, "1",
                "mean over rows (more than one visible key) of entropy / ln(visible keys)"),
    AB_HEAD_COL(locality, AB_COL_F64, "1",
                "mean over rows of the mass on the last w positions (w = --window)"),
    AB_HEAD_COL(vertical_mass, AB_COL_F64, "1", "share of the mass on the top 1% of columns"),
    AB_HEAD_COL(slash_mass, AB_COL_F64, "1", "share of the mass on the top 1% of diagonals"),
    AB_HEAD_COL(value_drain, AB_COL_F64, "1", "||v_0|| / mean over j > 0 of ||v_j||"),
    AB_HEAD_COL(key_ratio, AB_COL_F64, "1", "||k_0|| / mean over j > 0 of ||k_j|| (keys after RoPE)"),
    AB_HEAD_COL(out_norm, AB_COL_F64, "1", "head output norm: mean over rows of ||O_i||"),
    AB_HEAD_COL(out_norm_norm, AB_COL_F64, "1",
                "head output norm divided by its mean over the layer's heads"),
    AB_HEAD_COL(distant_mass, AB_COL_F64, "1",
                "mean over rows of the mass outside the first 4 and the last 64 keys"),
    AB_HEAD_COL(out_dev, AB_COL_F64, "1",
                "||O_stream - O||_F / ||O||_F with the head restricted to sink 64 + recent 256"),
    AB_HEAD_COL(retrieval_like, AB_COL_I64, "1",
                "1 for the top --top-fraction of heads by out_dev (DuoAttention proxy)"),
    AB_HEAD_COL(retrieval_score, AB_COL_F64, "1",
                "share of retrieve task rows whose top-1 key lies in the needle span (NaN "
                "without retrieve tasks)"),
    AB_HEAD_COL(retrieval_head, AB_COL_I64, "1", "1 when retrieval_score > 0.1"),
    AB_HEAD_COL(echo_score, AB_COL_F64, "1",
                "mean over rows with an earlier copy of their token of the mass on those copies "
                "(NaN without tokens)"),
    AB_HEAD_COL(induction_score, AB_COL_F64, "1",
                "mean over the same rows of the mass on the key after each earlier copy (NaN "
                "without tokens)"),
    AB_HEAD_COL(echo_group, AB_COL_F64, "1",
                "max of echo_score over the query heads sharing this key/value head"),
    AB_HEAD_COL(induction_group, AB_COL_F64, "1",
                "max of induction_score over the query heads sharing this key/value head"),
    AB_HEAD_COL(sec_lifetime, AB_COL_I64, "1",
                "hidden-state lifetime of the strongest stored secondary sink: high-sink-norm "
                "layers where it is parallel to the primary sink (-1: no hidden states or none)"),
    AB_HEAD_COL(sec_lifetime_pos, AB_COL_I64, "1",
                "position of the secondary sink whose lifetime is given (-1: none)"),
    AB_HEAD_COL(sec_secondary, AB_COL_I64, "1",
                "1 when sec_lifetime is within the secondary bounds of the notes, 0 when not, "
                "-1 undefined"),
};

#define AB_LAYER_COL(field, type, units, long_name)                                                \
    {                                                                                              \
#field, type, offsetof(struct ab_layer_row, field), units, long_name                       \
    }
#define AB_TOP_COLS(i)                                                                             \
    AB_LAYER_COL(top##i, AB_COL_F64, "1",                                                          \
                 "activation with the " #i "-th largest |x| in this hidden state (signed)"),       \
        AB_LAYER_COL(top##i##_pos, AB_COL_I64, "1", "token position of top" #i " (-1: none)"),    \
        AB_LAYER_COL(top##i##_dim, AB_COL_I64, "1", "model dimension of top" #i " (-1: none)")

static const struct ab_column ab_layer_cols[] = {
    AB_LAYER_COL(workload, AB_COL_STR, "", "workload file path as given"),
    AB_LAYER_COL(layer, AB_COL_I64, "1",
                 "hidden-state index: the residual stream entering this layer (n_layer: the "
                 "output of the last layer)"),
    AB_TOP_COLS(1), AB_TOP_COLS(2), AB_TOP_COLS(3),
    AB_LAYER_COL(median_abs, AB_COL_F64, "1", "median over positions and dims of |x|"),
    AB_LAYER_COL(n_massive, AB_COL_I64, "1",
                 "massive activations: |x| > --massive-abs and > --massive-ratio x median_abs"),
    AB_LAYER_COL(n_massive_dims, AB_COL_I64, "1", "distinct dims holding massive activations"),
    AB_LAYER_COL(massive, AB_COL_STR, "",
                 "massive activations as dim@pos:value by |x| descending (capped; ' ...' when "
                 "more)"),
    AB_LAYER_COL(sink_pos, AB_COL_I64, "1", "position of the workload's primary sink"),
    AB_LAYER_COL(sink_norm, AB_COL_F64, "1", "L2 norm of the primary sink's hidden state"),
    AB_LAYER_COL(median_norm, AB_COL_F64, "1", "median over positions of the hidden-state norm"),
    AB_LAYER_COL(sink_norm_ratio, AB_COL_F64, "1", "sink_norm / median_norm"),
    AB_LAYER_COL(sink_high, AB_COL_I64, "1",
                 "1 when sink_norm_ratio is above the high-norm ratio of the notes (the layer "
                 "counts for secondary-sink lifetimes)"),
};

const struct ab_column *ab_results_layer_columns(int *n)
{
    *n = (int)(sizeof ab_layer_cols / sizeof ab_layer_cols[0]);
    return ab_layer_cols;
}

#define AB_MODEL_COL(field, type, units, long_name)                                                \
    {                                                                                              \
#field, type, offsetof(struct ab_model_row, field), units, long_name                       \
    }

static const struct ab_column ab_model_cols[] = {
    AB_MODEL_COL(workload, AB_COL_STR, "", "input: text file path, or copy-R for the copy task"),
    AB_MODEL_COL(model, AB_COL_STR, "", "model file path as given"),
    AB_MODEL_COL(method, AB_COL_STR, "", "method replacing attention (registry name)"),
    AB_MODEL_COL(family, AB_COL_STR, "", "method family"),
    AB_MODEL_COL(phase, AB_COL_STR, "", "prefill (every row) or decode (the last m rows)"),
    AB_MODEL_COL(knob_name, AB_COL_STR, "", "name of the method's knob (empty: none)"),
    AB_MODEL_COL(knob, AB_COL_F64, "1", "direct knob value (NaN: fitted per head to the target)"),
    AB_MODEL_COL(target_ratio, AB_COL_F64, "1",
                 "per-head target: a FLOP ratio, or a bytes ratio when budget_kind is bytes "
                 "(NaN: a direct knob or a tokens budget)"),
    AB_MODEL_COL(budget_kind, AB_COL_STR, "",
                 "flops, tokens or bytes: the measure each head's knob was fitted to (empty: a "
                 "direct knob)"),
    AB_MODEL_COL(target_tokens, AB_COL_F64, "1",
                 "tokens budget: keys read per decode step asked of each head (NaN otherwise)"),
    AB_MODEL_COL(flop_ratio, AB_COL_F64, "1",
                 "achieved attention FLOPs over dense, summed over the replaced heads (decode: "
                 "one-off work amortised over decode_horizon)"),
    AB_MODEL_COL(bytes_kv, AB_COL_F64, "byte", "K and V bytes read, summed over the replaced heads"),
    AB_MODEL_COL(tokens_step, AB_COL_F64, "1",
                 "decode: mean over the replaced heads of kept cells / m, the keys a decode "
                 "query reads (NaN in prefill)"),
    AB_MODEL_COL(bytes_ratio, AB_COL_F64, "1",
                 "mean over the replaced heads of bytes_kv / dense bytes_kv"),
    AB_MODEL_COL(heads, AB_COL_STR, "", "which heads the method replaced"),
    AB_MODEL_COL(head_list, AB_COL_STR, "", "layer:head of the replaced heads (empty: all)"),
    AB_MODEL_COL(n_heads, AB_COL_I64, "1", "number of heads replaced"),
    AB_MODEL_COL(heads_feasible, AB_COL_I64, "1", "replaced heads that met the target"),
    AB_MODEL_COL(feasible, AB_COL_I64, "1", "1 when every replaced head met the target"),
    AB_MODEL_COL(reason, AB_COL_STR, "",
                 "why nll, ppl, acc and copy_acc are NaN: heads that could not reach the target "
                 "(empty when every head did)"),
    AB_MODEL_COL(n_tokens, AB_COL_I64, "1", "tokens of the input, BOS included"),
    AB_MODEL_COL(n_scored, AB_COL_I64, "1", "positions whose next token is scored"),
    AB_MODEL_COL(nll, AB_COL_F64, "nat", "mean negative log-likelihood per scored token"),
    AB_MODEL_COL(ppl, AB_COL_F64, "1", "perplexity, exp(nll)"),
    AB_MODEL_COL(acc, AB_COL_F64, "1", "top-1 next-token accuracy over the scored positions"),
    AB_MODEL_COL(copy_acc, AB_COL_F64, "1",
                 "top-1 next-token accuracy on the second copy (copy task; NaN otherwise)"),
    AB_MODEL_COL(dense_nll, AB_COL_F64, "nat", "nll with exact attention"),
    AB_MODEL_COL(dense_ppl, AB_COL_F64, "1", "ppl with exact attention"),
    AB_MODEL_COL(dense_acc, AB_COL_F64, "1", "acc with exact attention"),
    AB_MODEL_COL(dense_copy_acc, AB_COL_F64, "1", "copy_acc with exact attention"),
    AB_MODEL_COL(rel_l2, AB_COL_F64, "1",
                 "mean over replaced heads of the head output's relative L2 error inside the pass"),
    AB_MODEL_COL(time_s, AB_COL_F64, "s", "wall time of the forward pass"),
};

const struct ab_column *ab_results_model_columns(int *n)
{
    *n = (int)(sizeof ab_model_cols / sizeof ab_model_cols[0]);
    return ab_model_cols;
}

const struct ab_column *ab_results_head_columns(int *n)
{
    *n = (int)(sizeof ab_head_cols / sizeof ab_head_cols[0]);
    return ab_head_cols;
}

const struct ab_column *ab_results_cell_columns(int *n)
{
    pthread_once(&ab_cols_once, ab_cols_build);
    *n = N_CELL_KEYS + AB_N_METRIC;
    return ab_cell_cols;
}

const struct ab_column *ab_results_summary_columns(int *n)
{
    pthread_once(&ab_cols_once, ab_cols_build);
    *n = ab_n_summary_cols;
    return ab_summary_cols;
}

/* ---------------------------------------------------------------- writing */

/* The root attributes, in a fixed order (same input, same bytes); unset facts of the run
 * default to now, this machine and this build. */
static int ab_res_put_root_attrs(struct ab_h5 *f, const struct ab_results *r)
{
    char now[32], host[256] = "";
    const char *created = r->created_utc, *hostname = r->hostname;
    if (!created) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
        created = now;
    }
    if (!hostname) {
        if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
        host[sizeof host - 1] = '\0';
        hostname = host;
    }
    /* digests default to "" so both lists always have one entry per workload */
    const char **sha = calloc((size_t)(r->n_workloads > 0 ? r->n_workloads : 1), sizeof *sha);
    if (!sha) return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
    for (int64_t i = 0; r->workload_sha256 && i < r->n_workloads; i++)
        sha[i] = r->workload_sha256[i];
    const char *version = r->attnbench_version ? r->attnbench_version : ab_version();
    const char *blas = r->openblas_config ? r->openblas_config : ab_blas_config();
    const char *const *wl = (const char *const *)r->workloads;
    int rc = ab_h5_attr_put_str(f, "/", "schema", AB_RESULTS_SCHEMA);
    if (!rc) rc = ab_h5_attr_put_str(f, "/", "attnbench_version", version);
    if (!rc) rc = ab_h5_attr_put_str(f, "/", "created_utc", created);
    if (!rc) rc = ab_h5_attr_put_str(f, "/", "command_line", r->command_line);
    if (!rc) rc = ab_h5_attr_put_strs(f, "/", "workloads", r->n_workloads, wl);
    if (!rc) rc = ab_h5_attr_put_strs(f, "/", "workload_sha256", r->n_workloads, sha);
    if (!rc && r->scenario) rc = ab_h5_attr_put_str(f, "/", "scenario", r->scenario);
    if (!rc) rc = ab_h5_attr_put_u64(f, "/", "seed", r->seed);
    if (!rc) rc = ab_h5_attr_put_int(f, "/", "threads", (int)r->threads);
    if (!rc) rc = ab_h5_attr_put_str(f, "/", "openblas_config", blas);
    if (!rc) rc = ab_h5_attr_put_str(f, "/", "hostname", hostname);
    if (!rc) rc = ab_h5_attr_put_str(f, "/", "notes", r->notes);
    if (!rc && r->options) rc = ab_h5_attr_put_str(f, "/", "options", r->options);
    if (!rc && r->external) rc = ab_h5_attr_put_str(f, "/", "external", r->external);
    if (!rc) rc = ab_h5_attr_put_int(f, "/", "decode_horizon", (int)r->decode_horizon);
    if (!rc && r->stride) rc = ab_h5_attr_put_int(f, "/", "stride", (int)r->stride);
    if (!rc && r->stride) rc = ab_h5_attr_put_int(f, "/", "window_bos", (int)r->window_bos);
    free(sha);
    return rc;
}

/* The /heads table. */
static int ab_res_put_heads(struct ab_h5 *f, const struct ab_results *r)
{
    int n_cols;
    const struct ab_column *cols = ab_results_head_columns(&n_cols);
    return ab_h5_put_table(f, "/heads", r->heads, r->n_heads, sizeof *r->heads, cols, n_cols);
}

/* The /layers table. */
static int ab_res_put_layers(struct ab_h5 *f, const struct ab_results *r)
{
    int n_cols;
    const struct ab_column *cols = ab_results_layer_columns(&n_cols);
    return ab_h5_put_table(f, "/layers", r->layers, r->n_layers, sizeof *r->layers, cols, n_cols);
}

/* The /model table. */
static int ab_res_put_model(struct ab_h5 *f, const struct ab_results *r)
{
    int n_cols;
    const struct ab_column *cols = ab_results_model_columns(&n_cols);
    return ab_h5_put_table(f, "/model", r->model, r->n_model, sizeof *r->model, cols, n_cols);
}

/* A piece's identity: root attributes and the /piece table of its units. */
struct piece_row {
    int64_t unit;
};
static const struct ab_column ab_piece_cols[] = {
    {"unit", AB_COL_I64, offsetof(struct piece_row, unit), "1",
     "a unit (workload, layer, head) of this piece: its index in the run's order"},
};

static int ab_res_put_piece(struct ab_h5 *f, const struct ab_piece *p)
{
    char digest[65];
    memcpy(digest, p->digest, 65);
    digest[64] = 0;
    int rc = ab_h5_attr_put_u64(f, "/", "shard_index", (uint64_t)p->index);
    if (!rc) rc = ab_h5_attr_put_u64(f, "/", "shard_count", (uint64_t)p->count);
    if (!rc) rc = ab_h5_attr_put_u64(f, "/", "units_total", (uint64_t)p->units_total);
    if (!rc) rc = ab_h5_attr_put_str(f, "/", "run_digest", digest);
    if (!rc)
        rc = ab_h5_put_table(f, "/piece", p->units, p->n_units, sizeof *p->units, ab_piece_cols,
                             1);
    return rc;
}

static int write_h5(const char *path, const struct ab_results *r, const struct ab_piece *piece);

int ab_results_write_h5(const char *path, const struct ab_results *r)
{
    return write_h5(path, r, NULL);
}

int ab_results_write_piece(const char *path, const struct ab_results *r,
                           const struct ab_piece *piece)
{
    return write_h5(path, r, piece);
}

void ab_piece_free(struct ab_piece *p)
{
    free(p->units);
    memset(p, 0, sizeof *p);
}

int ab_results_read_piece(const char *path, struct ab_piece *p, int *is_piece)
{
    memset(p, 0, sizeof *p);
    *is_piece = 0;
    struct ab_h5 f = {0};
    int rc = ab_h5_open(&f, path);
    if (rc != AB_OK) return rc;
    uint64_t idx = 0, cnt = 0, tot = 0;
    int f1 = 0, f2 = 0, f3 = 0;
    char *digest = NULL;
    rc = ab_h5_attr_get_u64(&f, "/", "shard_index", &idx, &f1);
    if (!rc) rc = ab_h5_attr_get_u64(&f, "/", "shard_count", &cnt, &f2);
    if (!rc) rc = ab_h5_attr_get_u64(&f, "/", "units_total", &tot, &f3);
    if (!rc) rc = ab_h5_attr_get_str(&f, "/", "run_digest", &digest);
    if (!rc && f1 && f2 && f3 && digest) {
        if (strlen(digest) != 64 || idx < 1 || idx > cnt || cnt > 65536 || tot > INT64_MAX)
            rc = ab_fail(AB_E_DATA, "'%s': damaged shard attributes", path);
        else if (!ab_h5_exists(&f, "/piece"))
            rc = ab_fail(AB_E_DATA, "'%s': a shard piece without its /piece table", path);
        else
            rc = ab_h5_get_table(&f, "/piece", ab_piece_cols, 1, sizeof *p->units,
                                 (void **)&p->units, &p->n_units);
        if (!rc) {
            memcpy(p->digest, digest, 65);
            p->index = (int64_t)idx, p->count = (int64_t)cnt, p->units_total = (int64_t)tot;
            *is_piece = 1;
        }
    }
    free(digest);
    ab_h5_close(&f);
    if (rc) ab_piece_free(p);
    return rc;
}

static int write_h5(const char *path, const struct ab_results *r, const struct ab_piece *piece)
{
    assert(r->n_heads >= 0 && (r->n_heads == 0 || r->heads));
    assert(r->n_layers >= 0 && (r->n_layers == 0 || r->layers));
    assert(r->n_cells >= 0 && (r->n_cells == 0 || r->cells));
    assert(r->n_summary >= 0 && (r->n_summary == 0 || r->summary));
    assert(r->n_workloads >= 0 && (r->n_workloads == 0 || r->workloads));
    if (r->threads < 0 || r->threads > INT32_MAX)
        return ab_fail(AB_E_DATA, "'%s': thread count %lld out of range", path,
                       (long long)r->threads);
    int n_cell_cols, n_sum_cols;
    const struct ab_column *cell_cols = ab_results_cell_columns(&n_cell_cols);
    const struct ab_column *sum_cols = ab_results_summary_columns(&n_sum_cols);

    struct ab_h5 f = {0};
    int rc = ab_h5_create(&f, path);
    if (rc != AB_OK) return rc;
    if ((rc = ab_res_put_root_attrs(&f, r)) ||
        (rc = ab_h5_put_table(&f, "/cells", r->cells, r->n_cells, sizeof *r->cells, cell_cols,
                              n_cell_cols)) ||
        (rc = ab_h5_put_table(&f, "/summary", r->summary, r->n_summary, sizeof *r->summary,
                              sum_cols, n_sum_cols)) ||
        (r->n_heads > 0 && (rc = ab_res_put_heads(&f, r))) ||
        (r->n_layers > 0 && (rc = ab_res_put_layers(&f, r))) ||
        (r->n_model > 0 && (rc = ab_res_put_model(&f, r))) ||
        (piece && (rc = ab_res_put_piece(&f, piece)))) {
        ab_h5_abort(&f);
        return rc;
    }
    return ab_h5_commit(&f);
}

/* ---------------------------------------------------------------- reading */

/* Checks the schema attribute. */
static int ab_res_check_schema(struct ab_h5 *f)
{
    char *schema = NULL;
    int rc = ab_h5_attr_get_str(f, "/", "schema", &schema);
    if (rc == AB_OK && !schema)
        rc = ab_fail(AB_E_DATA, "'%s': not an attnbench results file (no schema attribute)",
                     f->path);
    else if (rc == AB_OK && !strcmp(schema, "attnbench/results/1"))
        rc = ab_fail(AB_E_DATA,
                     "'%s': results schema 1, written before the accounting of schema 2 (a cell "
                     "meets its budget at most at the target; one-off decode work amortised over "
                     "a decode horizon; no metrics on infeasible cells): re-run it",
                     f->path);
    else if (rc == AB_OK && strcmp(schema, AB_RESULTS_SCHEMA) != 0)
        rc = ab_fail(AB_E_DATA, "'%s': not an attnbench results file (schema '%s', expected '%s')",
                     f->path, schema, AB_RESULTS_SCHEMA);
    free(schema);
    return rc;
}

/* Reads the root attributes into r (absent strings stay NULL, absent numbers 0). */
static int ab_res_read_attrs(struct ab_h5 *f, struct ab_results *r)
{
    int rc, found;
    int64_t n_sha = 0;
    if ((rc = ab_h5_attr_get_str(f, "/", "attnbench_version", &r->attnbench_version)) ||
        (rc = ab_h5_attr_get_str(f, "/", "created_utc", &r->created_utc)) ||
        (rc = ab_h5_attr_get_str(f, "/", "command_line", &r->command_line)) ||
        (rc = ab_h5_attr_get_str(f, "/", "scenario", &r->scenario)) ||
        (rc = ab_h5_attr_get_str(f, "/", "openblas_config", &r->openblas_config)) ||
        (rc = ab_h5_attr_get_str(f, "/", "hostname", &r->hostname)) ||
        (rc = ab_h5_attr_get_str(f, "/", "notes", &r->notes)) ||
        (rc = ab_h5_attr_get_str(f, "/", "options", &r->options)) ||
        (rc = ab_h5_attr_get_str(f, "/", "external", &r->external)) ||
        (rc = ab_h5_attr_get_u64(f, "/", "seed", &r->seed, &found)) ||
        (rc = ab_h5_attr_get_i64(f, "/", "threads", &r->threads, &found)) ||
        (rc = ab_h5_attr_get_i64(f, "/", "decode_horizon", &r->decode_horizon, &found)) ||
        (rc = ab_h5_attr_get_i64(f, "/", "stride", &r->stride, &found)) ||
        (rc = ab_h5_attr_get_i64(f, "/", "window_bos", &r->window_bos, &found)) ||
        (rc = ab_h5_attr_get_strs(f, "/", "workloads", &r->n_workloads, &r->workloads, &found)) ||
        (rc = ab_h5_attr_get_strs(f, "/", "workload_sha256", &n_sha, &r->workload_sha256, &found)))
        return rc;
    if (found && n_sha != r->n_workloads) {
        /* ab_results_free frees n_workloads digests: free this list here */
        for (int64_t i = 0; i < n_sha; i++) free(r->workload_sha256[i]);
        free(r->workload_sha256);
        r->workload_sha256 = NULL;
        return ab_fail(AB_E_DATA, "'%s': %lld workloads but %lld workload_sha256 digests", f->path,
                       (long long)r->n_workloads, (long long)n_sha);
    }
    if (!found && r->n_workloads > 0) {
        /* no digests recorded: one "" per workload, as the writer would have stored */
        r->workload_sha256 = calloc((size_t)r->n_workloads, sizeof *r->workload_sha256);
        if (!r->workload_sha256) return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
        for (int64_t i = 0; i < r->n_workloads; i++)
            if (!(r->workload_sha256[i] = strdup("")))
                return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
    }
    return AB_OK;
}

/* Columns added after schema 2 was first written (issue 18: budget kinds): a file without
 * them reads as a FLOP-budget file (budget_kind "flops", "" for a direct --knob run, layer
 * target = target_ratio, the other numbers NaN). */
static const char *const late_cols[] = {"budget_kind", "target_tokens", "layer_target",
                                        "tokens_step", "bytes_ratio", NULL};

static int is_late(const char *name)
{
    for (int k = 0; late_cols[k]; k++)
        if (!strcmp(late_cols[k], name)) return 1;
    return 0;
}

/* The columns of group that f holds into out (those of cols but a missing late one); 1 into
 * *old when a late column is missing. */
static int present_cols(struct ab_h5 *f, const char *group, const struct ab_column *cols, int n,
                        struct ab_column *out, int *old)
{
    int m = 0;
    char obj[256];
    *old = 0;
    for (int c = 0; c < n; c++) {
        snprintf(obj, sizeof obj, "%s/%s", group, cols[c].name);
        if (is_late(cols[c].name) && ab_h5_exists(f, group) && !ab_h5_exists(f, obj)) {
            *old = 1;
            continue;
        }
        out[m++] = cols[c];
    }
    return m;
}

/* The budget_kind of a row of a file without the column. */
static char *old_kind(double target) { return strdup(isnan(target) ? "" : "flops"); }

/* Reads /cells and /summary into r and checks the values read. */

static int ab_res_read_tables(struct ab_h5 *f, struct ab_results *r)
{
    int n_cell_cols, n_sum_cols;
    const struct ab_column *cell_cols = ab_results_cell_columns(&n_cell_cols);
    const struct ab_column *sum_cols = ab_results_summary_columns(&n_sum_cols);
    void *cells = NULL, *summary = NULL;
    int64_t n_cells = 0, n_summary = 0;
    int rc, old_c, old_s;
    struct ab_column cc[N_CELL_KEYS + AB_N_METRIC], sc[N_SUM_MAX];
    int n_cc = present_cols(f, "/cells", cell_cols, n_cell_cols, cc, &old_c);
    int n_sc = present_cols(f, "/summary", sum_cols, n_sum_cols, sc, &old_s);
    if ((rc = ab_h5_get_table(f, "/cells", cc, n_cc, sizeof *r->cells, &cells, &n_cells)))
        return rc;
    r->cells = cells;
    r->n_cells = r->cap_cells = n_cells;
    if ((rc = ab_h5_get_table(f, "/summary", sc, n_sc, sizeof *r->summary, &summary,
                              &n_summary)))
        return rc;
    r->summary = summary;
    r->n_summary = n_summary;
    for (int64_t i = 0; old_c && i < n_cells; i++) { /* written before the budget kinds */
        struct ab_cell *c = &r->cells[i];
        if (!(c->budget_kind = old_kind(c->target_ratio)))
            return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
        c->target_tokens = c->tokens_step = c->bytes_ratio = NAN;
        c->layer_target = c->target_ratio;
    }
    for (int64_t i = 0; old_s && i < n_summary; i++) {
        struct ab_summary_row *s = &r->summary[i];
        if (!(s->budget_kind = old_kind(s->target_ratio)))
            return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
        s->target_tokens = s->tokens_step = s->bytes_ratio = NAN;
    }
    for (int64_t i = 0; i < n_cells; i++) {
        if (r->cells[i].feasible != 0 && r->cells[i].feasible != 1)
            return ab_fail(AB_E_DATA, "'%s': /cells/feasible is %lld at row %lld (0 or 1)", f->path,
                           (long long)r->cells[i].feasible, (long long)i);
        if (r->cells[i].n_eval_rows < 0)
            return ab_fail(AB_E_DATA, "'%s': /cells/n_eval_rows is negative at row %lld", f->path,
                           (long long)i);
    }
    for (int64_t i = 0; i < n_summary; i++)
        if (r->summary[i].n_heads < 0)
            return ab_fail(AB_E_DATA, "'%s': /summary/n_heads is negative at row %lld", f->path,
                           (long long)i);
    /* /heads is read only when it holds every column of struct ab_head_row: other writers'
     * head tables (a subset of columns) are left to the report's own reader */
    int n_head_cols, all = ab_h5_exists(f, "/heads");
    const struct ab_column *head_cols = ab_results_head_columns(&n_head_cols);
    char obj[128];
    for (int c = 0; all && c < n_head_cols; c++) {
        snprintf(obj, sizeof obj, "/heads/%s", head_cols[c].name);
        all = ab_h5_exists(f, obj);
    }
    if (all) {
        void *heads = NULL;
        int64_t n_heads = 0;
        if ((rc = ab_h5_get_table(f, "/heads", head_cols, n_head_cols, sizeof *r->heads, &heads,
                                  &n_heads)))
            return rc;
        r->heads = heads;
        r->n_heads = n_heads;
    }
    /* /model likewise: read when present (`attnbench eval-model`), every column required */
    if (ab_h5_exists(f, "/model")) {
        int n_model_cols;
        const struct ab_column *model_cols = ab_results_model_columns(&n_model_cols);
        void *model = NULL;
        int64_t n_model = 0;
        struct ab_column mc[64];
        int old_m;
        assert(n_model_cols <= 64);
        int n_mc = present_cols(f, "/model", model_cols, n_model_cols, mc, &old_m);
        if ((rc = ab_h5_get_table(f, "/model", mc, n_mc, sizeof *r->model, &model, &n_model)))
            return rc;
        r->model = model;
        r->n_model = n_model;
        for (int64_t i = 0; old_m && i < n_model; i++) { /* written before the budget kinds */
            struct ab_model_row *m = &r->model[i];
            if (!(m->budget_kind = old_kind(m->target_ratio)))
                return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
            m->target_tokens = m->tokens_step = m->bytes_ratio = NAN;
        }
    }
    /* /layers likewise (`attnbench heads` with hidden states), with its indices checked */
    if (ab_h5_exists(f, "/layers")) {
        int n_layer_cols;
        const struct ab_column *layer_cols = ab_results_layer_columns(&n_layer_cols);
        void *layers = NULL;
        int64_t n_layers = 0;
        if ((rc = ab_h5_get_table(f, "/layers", layer_cols, n_layer_cols, sizeof *r->layers,
                                  &layers, &n_layers)))
            return rc;
        r->layers = layers;
        r->n_layers = n_layers;
        for (int64_t i = 0; i < n_layers; i++) {
            const struct ab_layer_row *l = &r->layers[i];
            if (l->layer < 0 || l->n_massive < 0 || l->n_massive_dims < 0 ||
                l->n_massive_dims > l->n_massive || l->top1_pos < -1 || l->top1_dim < -1 ||
                l->top2_pos < -1 || l->top2_dim < -1 || l->top3_pos < -1 || l->top3_dim < -1 ||
                l->sink_pos < 0 || (l->sink_high != 0 && l->sink_high != 1))
                return ab_fail(AB_E_DATA, "'%s': /layers row %lld holds an impossible value",
                               f->path, (long long)i);
        }
    }
    return AB_OK;
}

int ab_results_read_h5(const char *path, struct ab_results *out)
{
    ab_results_init(out);
    struct ab_h5 f = {0};
    int rc = ab_h5_open(&f, path);
    if (rc != AB_OK) return rc;
    if ((rc = ab_res_check_schema(&f)) || (rc = ab_res_read_attrs(&f, out)) ||
        (rc = ab_res_read_tables(&f, out))) {
        ab_results_heads_free(out);
        ab_results_layers_free(out);
        ab_results_free(out);
    }
    ab_h5_close(&f);
    return rc;
}

/* ---------------------------------------------------------------- digests */

int ab_results_sha256_file(const char *path, char hex[65])
{
    hex[0] = '\0';
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ab_fail(AB_E_NOFILE, "'%s': no such file", path);
        return ab_fail(AB_E_IO, "'%s': cannot read: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return ab_fail(AB_E_DATA, "'%s': is a directory", path);
    FILE *fp = fopen(path, "rb");
    if (!fp) return ab_fail(AB_E_IO, "'%s': cannot read: %s", path, strerror(errno));
    int rc = AB_OK;
    unsigned char *buf = malloc(1 << 20), digest[32];
    if (!buf) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
        goto done;
    }
    struct ab_sha256 s;
    ab_sha256_init(&s);
    size_t got;
    while ((got = fread(buf, 1, 1 << 20, fp)) > 0) ab_sha256_update(&s, buf, got);
    if (ferror(fp)) {
        rc = ab_fail(AB_E_IO, "'%s': cannot read: %s", path, strerror(errno));
        goto done;
    }
    ab_sha256_final(&s, digest);
    ab_sha256_to_hex(digest, hex);
done:
    free(buf);
    fclose(fp);
    return rc;
}

int ab_results_provenance(struct ab_results *r, int argc, char *const *argv,
                          char *const *paths, int n, uint64_t seed)
{
    size_t len = sizeof "attnbench";
    for (int a = 0; a < argc; a++) len += strlen(argv[a]) + 1;
    char *line = malloc(len);
    if (!line) return ab_fail(AB_E_NOMEM, "cannot allocate the results attributes");
    strcpy(line, "attnbench");
    for (int a = 0; a < argc; a++) strcat(strcat(line, " "), argv[a]);
    int rc = ab_results_provenance_line(r, line, (const char *const *)paths, n, seed);
    free(line);
    return rc;
}

int ab_results_provenance_line(struct ab_results *r, const char *command_line,
                               const char *const *paths, int n, uint64_t seed)
{
    r->command_line = strdup(command_line);
    r->workloads = calloc((size_t)n + 1, sizeof(char *));
    r->workload_sha256 = calloc((size_t)n + 1, sizeof(char *));
    if (!r->command_line || !r->workloads || !r->workload_sha256)
        return ab_fail(AB_E_NOMEM, "cannot allocate the results attributes");
    r->n_workloads = n;
    r->seed = seed;
    r->threads = ab_threads_get();
    for (int i = 0; i < n; i++) {
        char hex[65];
        int rc = ab_results_sha256_file(paths[i], hex);
        if (rc) return rc;
        r->workloads[i] = strdup(paths[i]);
        r->workload_sha256[i] = strdup(hex);
        if (!r->workloads[i] || !r->workload_sha256[i])
            return ab_fail(AB_E_NOMEM, "cannot allocate the results attributes");
    }
    return AB_OK;
}

static int cell_in_range(const char *path, const struct ab_cell *c, int64_t row)
{
    const int64_t lim = (int64_t)1 << 24;
    if (c->layer < 0 || c->layer >= lim || c->head < 0 || c->head >= lim || c->kv_head < 0 ||
        c->kv_head >= lim)
        return ab_fail(AB_E_DATA, "'%s': /cells row %lld: layer %lld, head %lld, kv head %lld "
                       "out of range", path, (long long)row, (long long)c->layer,
                       (long long)c->head, (long long)c->kv_head);
    if (c->n < 0 || c->n > INT32_MAX)
        return ab_fail(AB_E_DATA, "'%s': /cells row %lld: sequence length %lld out of range",
                       path, (long long)row, (long long)c->n);
    if (!isnan(c->target_ratio) && !(c->target_ratio > 0 && c->target_ratio <= 1))
        return ab_fail(AB_E_DATA, "'%s': /cells row %lld: target ratio %g is not in (0, 1]", path,
                       (long long)row, c->target_ratio);
    const double r[2] = {c->flop_ratio, c->flop_ratio_step};
    for (int k = 0; k < 2; k++)
        if (!isnan(r[k]) && !(isfinite(r[k]) && r[k] >= 0))
            return ab_fail(AB_E_DATA, "'%s': /cells row %lld: %s %g is not a ratio", path,
                           (long long)row, k ? "flop_ratio_step" : "flop_ratio", r[k]);
    return AB_OK;
}

int ab_results_check_cells(const char *path, const struct ab_results *r)
{
    for (int64_t i = 0; i < r->n_cells; i++) {
        int rc = cell_in_range(path, &r->cells[i], i);
        if (rc) return rc;
    }
    return AB_OK;
}
