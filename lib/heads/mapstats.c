/* mapstats.c - statistics of one head's exact attention map (metrics.md, "Head and sink
 * statistics") in one streaming pass: ab_attn_ref_visit hands over one row's distribution at a
 * time and the column, diagonal and row statistics are accumulated, so memory is O(n).
 *
 * alpha(k) divides the column mass by the number of rows that see key k: with sorted positions
 * those are the rows whose visible prefix is longer than k, counted by a histogram of prefix
 * lengths. Diagonal offsets are q_pos - k_pos; under the full mask keys after the query (negative
 * offsets) are left out of diag_mass. */
#include "heads/mapstats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"

struct acc {
    const struct ab_head *h;
    struct ab_map_stats *s;
    int64_t *n_vis_hist; /* (n_k + 1) rows by visible prefix length */
    double ent, ent_norm, loc, first;
    int64_t n_norm;
};

/* One row: p[0..n_vis) over keys 0..n_vis-1. */
static int visit(int64_t i, const double *p, int64_t n_vis, double lse, void *user)
{
    (void)lse;
    struct acc *a = user;
    struct ab_map_stats *s = a->s;
    const struct ab_head *h = a->h;
    int64_t qp = h->q_pos[i], w = s->locality_w;
    double ent = 0, loc = 0;
    a->n_vis_hist[n_vis]++;
    for (int64_t j = 0; j < n_vis; j++) {
        double pj = p[j];
        s->col_mass[j] += pj;
        int64_t off = qp - h->k_pos[j];
        if (off >= 0 && off < s->n) s->diag_mass[off] += pj;
        if (off >= 0 && off < w) loc += pj; /* q_pos - w < k_pos <= q_pos */
        if (pj > 0) ent -= pj * log(pj);
    }
    if (n_vis > 0) a->first += p[0];
    a->ent += ent;
    a->loc += loc;
    if (n_vis > 1) {
        a->ent_norm += ent / log((double)n_vis);
        a->n_norm++;
    }
    s->rows += 1;
    return 0;
}

void ab_map_stats_free(struct ab_map_stats *s)
{
    free(s->alpha);
    free(s->col_mass);
    free(s->seen);
    free(s->diag_mass);
    memset(s, 0, sizeof *s);
}

int ab_map_stats_compute(const struct ab_head *h, int64_t w, struct ab_map_stats *out)
{
    memset(out, 0, sizeof *out);
    int64_t n = h->n_k;
    out->n = n;
    out->locality_w = w > 0 ? w : 64;
    out->alpha = calloc((size_t)n + 1, sizeof(double));
    out->col_mass = calloc((size_t)n + 1, sizeof(double));
    out->diag_mass = calloc((size_t)n + 1, sizeof(double));
    out->seen = calloc((size_t)n + 1, sizeof(int64_t));
    struct acc a = {.h = h, .s = out, .n_vis_hist = calloc((size_t)n + 2, sizeof(int64_t))};
    if (!out->alpha || !out->col_mass || !out->diag_mass || !out->seen || !a.n_vis_hist) {
        free(a.n_vis_hist);
        ab_map_stats_free(out);
        return ab_fail(AB_E_NOMEM, "cannot allocate map statistics (n %lld)", (long long)n);
    }
    int rc = ab_attn_ref_visit(h, NULL, 0, visit, &a);
    if (rc) {
        free(a.n_vis_hist);
        ab_map_stats_free(out);
        return rc;
    }
    /* rows seeing key k: those with a prefix longer than k (suffix sums of the histogram) */
    int64_t seen = 0;
    for (int64_t k = n - 1; k >= 0; k--) {
        seen += a.n_vis_hist[k + 1];
        out->seen[k] = seen;
        out->alpha[k] = seen ? out->col_mass[k] / (double)seen : 0;
    }
    double rows = out->rows > 0 ? out->rows : 1;
    out->first_weight = a.first / rows;
    out->entropy = a.ent / rows;
    out->entropy_norm = a.n_norm ? a.ent_norm / (double)a.n_norm : 0;
    out->locality = a.loc / rows;
    free(a.n_vis_hist);
    return AB_OK;
}

static int cmp_desc(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a < b) - (a > b);
}

/* Share of sum(v) held by its k largest entries. */
static double top_share(const double *v, int64_t n, int64_t k)
{
    if (n <= 0) return 0;
    double *tmp = malloc((size_t)n * sizeof(double)), total = 0, top = 0;
    if (!tmp) return NAN;
    memcpy(tmp, v, (size_t)n * sizeof(double));
    for (int64_t j = 0; j < n; j++) total += tmp[j];
    qsort(tmp, (size_t)n, sizeof(double), cmp_desc);
    k = k < 1 ? 1 : k > n ? n : k;
    for (int64_t j = 0; j < k; j++) top += tmp[j];
    free(tmp);
    return total > 0 ? top / total : 0;
}

double ab_map_stats_vertical_mass(const struct ab_map_stats *s, int64_t k)
{
    return top_share(s->col_mass, s->n, k);
}

double ab_map_stats_slash_mass(const struct ab_map_stats *s, int64_t k)
{
    return top_share(s->diag_mass, s->n, k);
}
