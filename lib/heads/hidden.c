/* hidden.c - massive activations, the primary sink's hidden-state norm and secondary-sink
 * lifetimes from a workload's hidden states (definitions in hidden.h, metrics.md "Head and sink
 * statistics"). One hidden state is processed at a time: a float copy of |H_l| for the median
 * (selection, no full sort), one scan for the top 3 and the massive entries, one for the token
 * norms, and one for the cosines to the sink when the layer is high-norm. */
#include "heads/hidden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"

void ab_hidden_secondary_bounds(int64_t n_layer, int64_t *lo, int64_t *hi)
{
    *lo = AB_MAX(1, n_layer / 8);
    *hi = n_layer - AB_MAX(1, 15 * n_layer / 32);
}

void ab_hidden_stats_free(struct ab_hidden_stats *s)
{
    for (int64_t l = 0; s->layers && l < s->n_states; l++) {
        free(s->layers[l].workload);
        free(s->layers[l].massive);
    }
    free(s->layers);
    free(s->lifetime);
    memset(s, 0, sizeof *s);
}

/* The k-th smallest (0-based) of a[0..n), reordering a so that a[0..k) <= a[k] (Hoare's
 * selection). a holds no NaN. */
static float select_kth(float *a, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j], a[j] = t;
                i++, j--;
            }
        }
        /* now a[lo..j] <= pivot <= a[i..hi], and a(j..i) == pivot */
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

/* Median of a[0..n) (n > 0; reorders a): the middle value, or the mean of the two middle ones. */
static double median_f(float *a, int64_t n)
{
    double upper = select_kth(a, n, n / 2);
    if (n % 2) return upper;
    float lower = a[0]; /* the largest of a[0..n/2), all <= upper after the selection */
    for (int64_t i = 1; i < n / 2; i++) lower = a[i] > lower ? a[i] : lower;
    return 0.5 * ((double)lower + upper);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* An entry of a hidden state. */
struct entry {
    double x;
    int64_t pos, dim;
};

/* Inserts e into best[0..*n) kept sorted by |x| descending (earlier entries win ties), keeping
 * at most cap. */
static void keep_top(struct entry *best, int *n, int cap, struct entry e)
{
    int at = *n;
    while (at > 0 && fabs(e.x) > fabs(best[at - 1].x)) at--;
    if (at >= cap) return;
    int last = *n < cap ? *n : cap - 1;
    for (int i = last; i > at; i--) best[i] = best[i - 1];
    best[at] = e;
    if (*n < cap) (*n)++;
}

/* The statistics of hidden state l into row (workload string set by the caller) and its
 * token norms into norm (n_seq). buf: (n_seq * d_model) scratch. */
static int layer_stats(const struct ab_workload *w, int64_t l, int64_t sink_pos,
                       const struct ab_heads_opts *o, float *buf, double *norm,
                       unsigned char *dim_seen, struct ab_layer_row *row)
{
    int64_t n = w->n_seq, dm = w->d_model, count = n * dm;
    const float *H = w->hidden + l * count; /* (n_seq, d_model) */
    for (int64_t e = 0; e < count; e++) buf[e] = fabsf(H[e]);
    double median = median_f(buf, count);

    /* top 3 and the massive entries in one scan */
    struct entry top[3], massive[AB_LAYER_MASSIVE_CAP];
    int n_top = 0, n_listed = 0;
    int64_t n_massive = 0, n_dims = 0;
    memset(dim_seen, 0, (size_t)dm);
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < dm; c++) {
            struct entry e = {H[t * dm + c], t, c};
            keep_top(top, &n_top, 3, e);
            double a = fabs(e.x);
            if (a > o->massive_abs && a > o->massive_ratio * median) {
                n_massive++;
                if (!dim_seen[c]) dim_seen[c] = 1, n_dims++;
                keep_top(massive, &n_listed, AB_LAYER_MASSIVE_CAP, e);
            }
        }
    row->layer = l;
    double *tv[3] = {&row->top1, &row->top2, &row->top3};
    int64_t *tp[3] = {&row->top1_pos, &row->top2_pos, &row->top3_pos};
    int64_t *td[3] = {&row->top1_dim, &row->top2_dim, &row->top3_dim};
    for (int k = 0; k < 3; k++) {
        *tv[k] = k < n_top ? top[k].x : NAN;
        *tp[k] = k < n_top ? top[k].pos : -1;
        *td[k] = k < n_top ? top[k].dim : -1;
    }
    row->median_abs = median;
    row->n_massive = n_massive;
    row->n_massive_dims = n_dims;
    char list[AB_LAYER_MASSIVE_CAP * 64 + 8];
    size_t len = 0;
    list[0] = '\0';
    for (int k = 0; k < n_listed; k++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%lld@%lld:%.6g", k ? " " : "",
                                (long long)massive[k].dim, (long long)massive[k].pos, massive[k].x);
    if (n_massive > n_listed) snprintf(list + len, sizeof list - len, " ...");
    row->massive = strdup(list);
    if (!row->massive) return ab_fail(AB_E_NOMEM, "cannot allocate the /layers table");

    /* the sink's norm against the median token norm */
    for (int64_t t = 0; t < n; t++) {
        double s2 = 0;
        for (int64_t c = 0; c < dm; c++) s2 += (double)H[t * dm + c] * H[t * dm + c];
        norm[t] = sqrt(s2);
    }
    double *sorted = malloc(sizeof(double) * (size_t)n);
    if (!sorted) return ab_fail(AB_E_NOMEM, "cannot allocate the /layers table");
    memcpy(sorted, norm, sizeof(double) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(double), cmp_double);
    double med_norm = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    free(sorted);
    row->sink_pos = sink_pos;
    row->sink_norm = norm[sink_pos];
    row->median_norm = med_norm;
    row->sink_norm_ratio = med_norm > 0 ? norm[sink_pos] / med_norm : NAN;
    /* NaN (every norm zero) is not high */
    row->sink_high = row->sink_norm_ratio > o->sink_norm_ratio;
    return AB_OK;
}

int ab_hidden_stats_compute(const struct ab_workload *w, const char *name, int64_t sink_pos,
                            const struct ab_heads_opts *o, struct ab_hidden_stats *out)
{
    memset(out, 0, sizeof *out);
    int64_t n = w->n_seq, dm = w->d_model, states = w->n_layer + 1;
    if (!w->hidden || n <= 0 || dm <= 0 || sink_pos < 0 || sink_pos >= n)
        return ab_fail(AB_E_INTERNAL, "hidden-state statistics: no hidden states or bad sink");
    for (int64_t e = 0; e < states * n * dm; e++)
        if (!isfinite(w->hidden[e]))
            return ab_fail(AB_E_DATA, "'%s': non-finite hidden state at layer %lld", name,
                           (long long)(e / (n * dm)));
    int rc = ab_check_fits("hidden-state statistics", (double)n * (double)dm * sizeof(float));
    if (rc) return rc;
    float *buf = malloc(sizeof(float) * (size_t)(n * dm));
    double *norm = malloc(sizeof(double) * (size_t)n);
    unsigned char *dim_seen = malloc((size_t)dm);
    out->n_states = states;
    out->n_seq = n;
    out->sink_pos = sink_pos;
    out->lifetime = calloc((size_t)n, sizeof(int64_t));
    out->layers = calloc((size_t)states, sizeof *out->layers);
    if (!buf || !norm || !dim_seen || !out->lifetime || !out->layers) {
        rc = ab_fail(AB_E_NOMEM, "cannot allocate hidden-state statistics (n %lld, d_model %lld)",
                     (long long)n, (long long)dm);
        goto done;
    }
    ab_hidden_secondary_bounds(w->n_layer, &out->life_lo, &out->life_hi);
    for (int64_t l = 0; l < states; l++) {
        struct ab_layer_row *row = &out->layers[l];
        if (!(row->workload = strdup(name ? name : ""))) {
            rc = ab_fail(AB_E_NOMEM, "cannot allocate the /layers table");
            goto done;
        }
        if ((rc = layer_stats(w, l, sink_pos, o, buf, norm, dim_seen, row))) goto done;
        if (!row->sink_high) continue;
        /* lifetime: tokens parallel (|cos| > sink_cos) to the sink in this high-norm layer */
        out->n_high++;
        const float *H = w->hidden + l * n * dm, *s = H + sink_pos * dm;
        for (int64_t t = 0; t < n; t++) {
            if (t == sink_pos || norm[t] == 0) continue;
            double dot = 0;
            for (int64_t c = 0; c < dm; c++) dot += (double)H[t * dm + c] * s[c];
            if (fabs(dot) / (norm[t] * norm[sink_pos]) > o->sink_cos) out->lifetime[t]++;
        }
    }
    out->lifetime[sink_pos] = out->n_high;
done:
    free(buf);
    free(norm);
    free(dim_seen);
    if (rc) ab_hidden_stats_free(out);
    return rc;
}
