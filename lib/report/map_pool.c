/* map_pool.c - the pooled attention map of one head and a method's kept mask over it
 * (map_pool.h): the data of the map figures gnuplot draws (gnuplot.c, ab_gp_map_write).
 *
 * The map is exact attention streamed one row at a time (ab_attn_ref_visit), so memory is O(n)
 * plus the grid. When the map is larger than the grid, a pixel holds the largest probability
 * among the cells it covers (max-pooling): a sink column or a single needle cell stays visible
 * at any size, where averaging would wash it out. The figure scales colour (log, floor to 1). */
#include "report/map_pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"

void ab_map_grid_free(struct ab_map_grid *g)
{
    free(g->v);
    *g = (struct ab_map_grid){0};
}

/* The map accumulator: the largest probability seen in each pixel (-1: no visible cell). */
struct ab_map_acc {
    double *cell; /* (height, width) */
    int64_t n_q, n_k, width, height;
};

/* Row visitor: pools row i's probabilities into its pixel row. Key j falls in column
 * j * width / n_k, row i in pixel row i * height / n_q (integer floors: each pixel covers a
 * contiguous run of rows and keys, the runs differing in length by at most one). */
static int ab_map_row(int64_t i, const double *p, int64_t n_vis, double lse, void *user)
{
    (void)lse;
    struct ab_map_acc *a = user;
    double *cell = a->cell + (i * a->height / a->n_q) * a->width;
    for (int64_t j = 0; j < n_vis; j++) {
        double *c = cell + j * a->width / a->n_k;
        if (p[j] > *c) *c = p[j];
    }
    return 0;
}

int ab_map_pool(const struct ab_head *h, int64_t max_size, struct ab_map_grid *g)
{
    *g = (struct ab_map_grid){0};
    if (max_size < 1 || max_size > 65536)
        return ab_fail(AB_E_USAGE, "map size %lld is outside 1..65536", (long long)max_size);
    if (h->n_q <= 0 || h->n_k <= 0) return ab_fail(AB_E_DATA, "empty head (no rows or keys)");
    struct ab_map_acc a = {NULL, h->n_q, h->n_k, AB_MIN(h->n_k, max_size),
                           AB_MIN(h->n_q, max_size)};
    int64_t n_px = a.width * a.height;
    int rc = ab_check_fits("map image", 8.0 * (double)n_px);
    if (rc != AB_OK) return rc;
    if (!(a.cell = malloc((size_t)n_px * sizeof *a.cell)))
        return ab_fail(AB_E_NOMEM, "out of memory for a %lld x %lld map", (long long)a.width,
                       (long long)a.height);
    /* -1 marks pixels where every cell is masked; every probability is >= 0 */
    for (int64_t c = 0; c < n_px; c++) a.cell[c] = -1.0;
    if ((rc = ab_attn_ref_visit(h, NULL, 0, ab_map_row, &a)) != AB_OK) {
        free(a.cell);
        return rc;
    }
    for (int64_t c = 0; c < n_px; c++)
        if (a.cell[c] < 0) a.cell[c] = NAN;
    /* pixel x covers keys [x n_k / w, (x + 1) n_k / w): its centre in token units */
    double dx = (double)h->n_k / (double)a.width, dy = (double)h->n_q / (double)a.height;
    *g = (struct ab_map_grid){.v = a.cell,
                              .width = a.width,
                              .height = a.height,
                              .x0 = 0.5 * dx - 0.5,
                              .dx = dx,
                              .y0 = 0.5 * dy - 0.5,
                              .dy = dy,
                              .n_k = h->n_k,
                              .ymin = -0.5,
                              .ymax = (double)h->n_q - 0.5};
    return AB_OK;
}

/* The mask accumulator: per pixel of one row, the largest kept and the largest visible
 * probability (-1: none), and the kept mass summed over the rows. */
struct ab_mask_acc {
    const struct ab_keep *keep;
    double *kept, *all; /* (width) for the current row */
    double *v;          /* (n_rows, width) */
    int64_t n_k, width, r;
    double mass;
};

static int ab_mask_row(int64_t i, const double *p, int64_t n_vis, double lse, void *user)
{
    (void)i, (void)lse;
    struct ab_mask_acc *a = user;
    for (int64_t x = 0; x < a->width; x++) a->kept[x] = a->all[x] = -1;
    double mass = 0;
    for (int64_t j = 0; j < n_vis; j++) {
        int64_t x = j * a->width / a->n_k;
        if (p[j] > a->all[x]) a->all[x] = p[j];
        if (ab_keep_has(a->keep, a->r, j)) {
            mass += p[j];
            if (p[j] > a->kept[x]) a->kept[x] = p[j];
        }
    }
    /* the sign says kept or dropped, so the magnitude is kept away from zero */
    double *line = a->v + a->r * a->width;
    for (int64_t x = 0; x < a->width; x++)
        line[x] = a->kept[x] >= 0  ? fmax(a->kept[x], AB_MAP_TINY)
                  : a->all[x] >= 0 ? -fmax(a->all[x], AB_MAP_TINY)
                                   : NAN;
    a->mass += mass;
    a->r++;
    return 0;
}

int ab_mask_pool(const struct ab_head *h, const int64_t *rows, int64_t n_rows,
                 const struct ab_keep *keep, int64_t max_width, struct ab_map_grid *g,
                 double *recall)
{
    *g = (struct ab_map_grid){0};
    if (recall) *recall = NAN;
    if (max_width < 1 || max_width > 65536 || n_rows < 1 || n_rows > 65536)
        return ab_fail(AB_E_USAGE, "mask of %lld rows x %lld columns is outside 1..65536",
                       (long long)n_rows, (long long)max_width);
    if (keep->n_rows != n_rows || keep->n_k != h->n_k)
        return ab_fail(AB_E_USAGE, "kept set of %lld x %lld does not match %lld rows x %lld keys",
                       (long long)keep->n_rows, (long long)keep->n_k, (long long)n_rows,
                       (long long)h->n_k);
    for (int64_t r = 0; r < n_rows; r++)
        if (rows[r] < 0 || rows[r] >= h->n_q || (r > 0 && rows[r] <= rows[r - 1]))
            return ab_fail(AB_E_USAGE, "mask rows must ascend within 0..%lld",
                           (long long)h->n_q - 1);
    struct ab_mask_acc a = {.keep = keep, .n_k = h->n_k, .width = AB_MIN(h->n_k, max_width)};
    int64_t n_px = a.width * n_rows;
    a.kept = malloc(sizeof(double) * (size_t)a.width);
    a.all = malloc(sizeof(double) * (size_t)a.width);
    a.v = malloc(sizeof(double) * (size_t)n_px);
    int rc = AB_OK;
    if (!a.kept || !a.all || !a.v) {
        rc = ab_fail(AB_E_NOMEM, "out of memory for a %lld-pixel mask", (long long)n_px);
        goto done;
    }
    if ((rc = ab_attn_ref_visit(h, rows, n_rows, ab_mask_row, &a)) != AB_OK) goto done;
    /* rows on an even grid from the first drawn row to the last (the rows of kept_map are
     * evenly spaced to within one); the axis spans every query row */
    double dx = (double)h->n_k / (double)a.width;
    double dy = n_rows > 1 ? (double)(rows[n_rows - 1] - rows[0]) / (double)(n_rows - 1) : 1;
    *g = (struct ab_map_grid){.v = a.v,
                              .width = a.width,
                              .height = n_rows,
                              .x0 = 0.5 * dx - 0.5,
                              .dx = dx,
                              .y0 = (double)rows[0],
                              .dy = dy,
                              .n_k = h->n_k,
                              .ymin = (double)rows[0] - 0.5 * dy,
                              .ymax = (double)rows[n_rows - 1] + 0.5 * dy};
    a.v = NULL;
    if (recall) *recall = a.mass / (double)n_rows;
done:
    free(a.kept);
    free(a.all);
    free(a.v);
    return rc;
}
