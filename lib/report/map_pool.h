/* map_pool.h - attention maps as data for pictures: the pooled map of one head (exact
 * attention, max-pooled when the map is larger than the picture so sinks and needles stay
 * visible) and the kept mask of a method over that map, both drawn by gnuplot (gnuplot.h,
 * ab_gp_map_write). */
#ifndef AB_REPORT_MAP_POOL_H
#define AB_REPORT_MAP_POOL_H

#include <stdint.h>

#include "attn/attn.h"
#include "methods/method.h"

/* A pooled attention map, the data of a map figure (gnuplot.h, ab_gp_map_write): v holds one
 * value per pixel, (height, width) row-major; column x is centred on key position x0 + x dx,
 * row y on query position y0 + y dy (token units, so axes read in positions, not pixels). The
 * figure's axes span keys [-0.5, n_k - 0.5] and queries [ymin, ymax]. */
struct ab_map_grid {
    double *v; /* (height, width), malloc'd; see the producers for what a value means */
    int64_t width, height;
    double x0, dx, y0, dy;
    int64_t n_k;
    double ymin, ymax;
};
void ab_map_grid_free(struct ab_map_grid *g);

/* Smallest magnitude of a kept-mask value: keeps the sign (kept or dropped) readable when a
 * probability underflows to 0; far below any floor a figure draws. */
#define AB_MAP_TINY 1e-30

/* The exact map of h max-pooled to at most max_size pixels per axis (size = min(n, max_size)):
 * pixel (y, x) holds the largest A[i, j] over the query rows i and keys j it covers, NaN when
 * none of them is visible (masked). Max-pooling keeps a sink column or a single needle cell
 * visible at any size, where averaging would wash it out. Row y covers queries
 * [y n_q / h, (y + 1) n_q / h), column x keys [x n_k / w, (x + 1) n_k / w); the axes span every
 * query. Streams the map row by row: memory is the grid. AB_OK, AB_E_USAGE (size), AB_E_DATA
 * (empty head), AB_E_NOMEM, AB_E_TOOBIG, or an error of the reference attention. */
int ab_map_pool(const struct ab_head *h, int64_t max_size, struct ab_map_grid *g);

/* The kept mask of a method over the exact map of h, for query rows rows[0..n_rows)
 * (ascending, each < h->n_q) and keep (n_rows rows over h->n_k keys; row r of keep is query
 * rows[r]): one grid row per query row, min(n_k, max_width) columns pooled as ab_map_pool. A
 * pixel with a kept visible key holds +p, p the largest probability among its kept keys; one
 * with visible keys and none kept -p, p the largest among them (so a dropped needle still
 * shows); one with no visible key NaN. |v| >= AB_MAP_TINY. Grid rows are placed on an even
 * grid from rows[0] to rows[n_rows - 1] (the axes span just those). *recall (may be NULL) is the
 * attention mass kept, mean_r sum_{j kept} A[rows[r], j] (metrics.md, recall). AB_OK,
 * AB_E_USAGE (sizes, rows, a kept set of another shape), AB_E_NOMEM, or an error of the
 * reference attention. */
int ab_mask_pool(const struct ab_head *h, const int64_t *rows, int64_t n_rows,
                 const struct ab_keep *keep, int64_t max_width, struct ab_map_grid *g,
                 double *recall);

#endif
