/* results.c - the results of a sweep in memory (see results.h): building the /cells table row
 * by row and aggregating it into /summary (per method, phase and target: the feasible heads'
 * mean and weak tail of the columns the metric table of eval/metric.h summarises). No file
 * formats here: lib/io/results_io.c and lib/io/csv.c write and read it. */
#include "eval/results.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "eval/metric.h"

void ab_results_init(struct ab_results *r)
{
    memset(r, 0, sizeof *r);
}

void ab_cell_free_strings(struct ab_cell *c)
{
    free(c->workload);
    free(c->method);
    free(c->family);
    free(c->phase);
    free(c->knob_name);
    free(c->task_kind);
    free(c->reason);
    free(c->budget_kind);
}

/* Frees a summary table of n rows. */
static void ab_summary_free(struct ab_summary_row *s, int64_t n)
{
    for (int64_t i = 0; s && i < n; i++) {
        free(s[i].workload);
        free(s[i].method);
        free(s[i].phase);
        free(s[i].reason);
        free(s[i].budget_kind);
    }
    free(s);
}

/* Frees a string array of n entries. */
static void ab_strv_free(char **v, int64_t n)
{
    for (int64_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

void ab_results_heads_free(struct ab_results *r)
{
    for (int64_t i = 0; r->heads && i < r->n_heads; i++) {
        free(r->heads[i].workload);
        free(r->heads[i].profile);
    }
    free(r->heads);
    r->heads = NULL;
    r->n_heads = 0;
}

void ab_results_layers_free(struct ab_results *r)
{
    for (int64_t i = 0; r->layers && i < r->n_layers; i++) {
        free(r->layers[i].workload);
        free(r->layers[i].massive);
    }
    free(r->layers);
    r->layers = NULL;
    r->n_layers = 0;
}

static void ab_model_row_free_strings(struct ab_model_row *m)
{
    free(m->workload);
    free(m->model);
    free(m->method);
    free(m->family);
    free(m->phase);
    free(m->knob_name);
    free(m->heads);
    free(m->head_list);
    free(m->reason);
    free(m->budget_kind);
}

void ab_results_free(struct ab_results *r)
{
    ab_results_heads_free(r);
    ab_results_layers_free(r);
    for (int64_t i = 0; r->model && i < r->n_model; i++) ab_model_row_free_strings(&r->model[i]);
    free(r->model);
    r->model = NULL;
    r->n_model = 0;
    for (int64_t i = 0; r->cells && i < r->n_cells; i++) ab_cell_free_strings(&r->cells[i]);
    free(r->cells);
    ab_summary_free(r->summary, r->n_summary);
    free(r->command_line);
    ab_strv_free(r->workloads, r->n_workloads);
    ab_strv_free(r->workload_sha256, r->n_workloads);
    free(r->scenario);
    free(r->notes);
    free(r->options);
    free(r->external);
    free(r->created_utc);
    free(r->hostname);
    free(r->attnbench_version);
    free(r->openblas_config);
    ab_results_init(r);
}

/* Duplicates s into *out (NULL stays NULL). 0 or -1 when out of memory. */
static int ab_dup(const char *s, char **out)
{
    *out = NULL;
    if (!s) return 0;
    *out = strdup(s);
    return *out ? 0 : -1;
}

int ab_results_add(struct ab_results *r, const struct ab_cell *c)
{
    if (r->n_cells == r->cap_cells) {
        int64_t cap = r->cap_cells ? 2 * r->cap_cells : 64;
        size_t bytes = ab_size_mul((size_t)cap, sizeof *r->cells);
        struct ab_cell *grown = bytes ? realloc(r->cells, bytes) : NULL;
        if (!grown)
            return ab_fail(AB_E_NOMEM, "out of memory for %lld result rows", (long long)cap);
        r->cells = grown;
        r->cap_cells = cap;
    }
    struct ab_cell copy = *c;
    int bad = ab_dup(c->workload, &copy.workload) | ab_dup(c->method, &copy.method) |
              ab_dup(c->family, &copy.family) | ab_dup(c->phase, &copy.phase) |
              ab_dup(c->knob_name, &copy.knob_name) | ab_dup(c->task_kind, &copy.task_kind) |
              ab_dup(c->reason, &copy.reason) | ab_dup(c->budget_kind, &copy.budget_kind);
    if (bad) {
        ab_cell_free_strings(&copy);
        return ab_fail(AB_E_NOMEM, "out of memory for a result row");
    }
    r->cells[r->n_cells++] = copy;
    return AB_OK;
}

int ab_results_add_model(struct ab_results *r, const struct ab_model_row *row)
{
    struct ab_model_row *grown = realloc(r->model, sizeof *grown * (size_t)(r->n_model + 1));
    if (!grown) return ab_fail(AB_E_NOMEM, "cannot grow the /model table");
    r->model = grown;
    struct ab_model_row copy = *row;
    int bad = ab_dup(row->workload, &copy.workload) | ab_dup(row->model, &copy.model) |
              ab_dup(row->method, &copy.method) | ab_dup(row->family, &copy.family) |
              ab_dup(row->phase, &copy.phase) | ab_dup(row->knob_name, &copy.knob_name) |
              ab_dup(row->heads, &copy.heads) | ab_dup(row->head_list, &copy.head_list) |
              ab_dup(row->reason, &copy.reason) | ab_dup(row->budget_kind, &copy.budget_kind);
    if (bad) {
        ab_model_row_free_strings(&copy);
        return ab_fail(AB_E_NOMEM, "cannot grow the /model table");
    }
    r->model[r->n_model++] = copy;
    return AB_OK;
}

/* ---------------------------------------------------------------- summary */

/* Strings compare equal when both are NULL / "" or have the same bytes. */
static int ab_same_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Targets compare equal when equal as numbers or both NaN (direct --knob runs). */
static int ab_same_target(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

static int ab_cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* The p-quantile (0 <= p <= 1) of sorted x[0..m) by linear interpolation: position
 * h = p (m - 1), x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]). NaN when m == 0. */
static double ab_quantile_sorted(const double *x, int64_t m, double p)
{
    if (m == 0) return NAN;
    double h = p * (double)(m - 1);
    int64_t lo = (int64_t)floor(h);
    if (lo >= m - 1) return x[m - 1];
    double frac = h - (double)lo;
    /* equal neighbours (two infinities included) need no interpolation */
    if (frac == 0 || x[lo] == x[lo + 1]) return x[lo];
    return x[lo] + frac * (x[lo + 1] - x[lo]);
}

/* Mean and p-quantile of the non-NaN values among v[idx[0..n)] (a column of the cells, by
 * byte offset); scratch holds n doubles. */
static void ab_column_stats(const struct ab_cell *cells, const int64_t *idx, int64_t n,
                            size_t offset, double p, double *scratch, double *mean, double *q)
{
    int64_t m = 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double v;
        memcpy(&v, (const char *)&cells[idx[i]] + offset, sizeof v);
        if (isnan(v)) continue;
        scratch[m++] = v;
        sum += v;
    }
    *mean = m ? sum / (double)m : NAN;
    if (!q) return;
    qsort(scratch, (size_t)m, sizeof *scratch, ab_cmp_double);
    *q = ab_quantile_sorted(scratch, m, p);
}

/* Fills the aggregates of summary row s from the feasible cells idx[0..n): the mean of every
 * metric the table summarises, and its weak tail where it has one. */
static void ab_summary_fill(struct ab_summary_row *s, const struct ab_cell *cells,
                            const int64_t *idx, int64_t n, double *scratch)
{
    s->n_heads = n;
    for (int k = 0; k < AB_N_METRIC; k++) {
        const struct ab_metric *m = &ab_metrics[k];
        if (!m->mean.name) continue;
        assert(!m->is_int);
        double *mean = (double *)((char *)s + m->mean.offset);
        double *tail = m->tail.name ? (double *)((char *)s + m->tail.offset) : NULL;
        ab_column_stats(cells, idx, n, m->offset, tail ? ab_metric_tail_p(m) : 0, scratch, mean,
                        tail);
    }
}

int ab_results_summarise(struct ab_results *r)
{
    int64_t n = r->n_cells, n_group = 0;
    int rc = AB_OK;
    int64_t *group = malloc((size_t)(n > 0 ? n : 1) * sizeof *group);    /* (n) group of cell */
    int64_t *first = malloc((size_t)(n > 0 ? n : 1) * sizeof *first);    /* (n_group) first cell */
    int64_t *bad = malloc((size_t)(n > 0 ? n : 1) * sizeof *bad); /* (n_group) first infeasible */
    int64_t *start = calloc((size_t)n + 2, sizeof *start);               /* (n_group + 1) */
    int64_t *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);        /* feasible, by group */
    double *scratch = malloc((size_t)(n > 0 ? n : 1) * sizeof *scratch); /* (n) */
    struct ab_summary_row *sum = NULL;
    if (!group || !first || !bad || !start || !idx || !scratch) goto nomem;

    /* groups in order of first appearance; a linear search over the groups seen so far is
     * cheap next to the sweep that produced the cells */
    for (int64_t i = 0; i < n; i++) {
        const struct ab_cell *c = &r->cells[i];
        int64_t g = 0;
        for (; g < n_group; g++) {
            const struct ab_cell *f = &r->cells[first[g]];
            if (ab_same_str(c->workload, f->workload) && ab_same_str(c->method, f->method) &&
                ab_same_str(c->phase, f->phase) && ab_same_str(c->budget_kind, f->budget_kind) &&
                ab_same_target(c->target_ratio, f->target_ratio) &&
                ab_same_target(c->target_tokens, f->target_tokens))
                break;
        }
        if (g == n_group) bad[n_group] = -1, first[n_group++] = i;
        if (!c->feasible && bad[g] < 0) bad[g] = i;
        group[i] = g;
    }
    /* feasible cells bucketed by group (counting sort keeps cell order inside a group) */
    sum = calloc((size_t)(n_group > 0 ? n_group : 1), sizeof *sum);
    if (!sum) goto nomem;
    for (int64_t i = 0; i < n; i++) {
        sum[group[i]].n_cells++;
        if (r->cells[i].feasible) start[group[i] + 1]++;
    }
    for (int64_t g = 0; g < n_group; g++) start[g + 1] += start[g];
    for (int64_t i = 0; i < n; i++)
        if (r->cells[i].feasible) idx[start[group[i]]++] = i;
    /* the fill above advanced start[g] to the end of group g: shift back */
    for (int64_t g = n_group; g > 0; g--) start[g] = start[g - 1];
    start[0] = 0;

    for (int64_t g = 0; g < n_group; g++) {
        const struct ab_cell *f = &r->cells[first[g]];
        struct ab_summary_row *s = &sum[g];
        const char *why = bad[g] >= 0 ? r->cells[bad[g]].reason : NULL;
        if (ab_dup(f->workload ? f->workload : "", &s->workload) ||
            ab_dup(f->method ? f->method : "", &s->method) ||
            ab_dup(f->phase ? f->phase : "", &s->phase) || ab_dup(why ? why : "", &s->reason) ||
            ab_dup(f->budget_kind ? f->budget_kind : "", &s->budget_kind)) {
            ab_summary_free(sum, n_group);
            sum = NULL;
            goto nomem;
        }
        s->n = f->n;
        s->target_ratio = f->target_ratio;
        s->target_tokens = f->target_tokens;
        ab_summary_fill(s, r->cells, idx + start[g], start[g + 1] - start[g], scratch);
    }
    ab_summary_free(r->summary, r->n_summary);
    r->summary = sum;
    r->n_summary = n_group;
    goto done;
nomem:
    rc = ab_fail(AB_E_NOMEM, "out of memory summarising %lld result rows", (long long)n);
done:
    free(group);
    free(first);
    free(bad);
    free(start);
    free(idx);
    free(scratch);
    return rc;
}

void ab_ratio_label(double t, char *buf, size_t cap)
{
    if (isnan(t)) {
        snprintf(buf, cap, "knob");
        return;
    }
    double k = 1 / t;
    if (t == 1) snprintf(buf, cap, "1");
    else if (t > 0 && fabs(k - round(k)) < 1e-9 * k) snprintf(buf, cap, "1/%.0f", round(k));
    else snprintf(buf, cap, "%.3g", t);
}
