/* png_map.h - attention maps as pictures: the viridis palette, an 8-bit indexed PNG writer, the
 * map image of one head (exact attention, log scale, max-pooled when the map is larger than the
 * image so sinks and needles stay visible), the kept mask of a method drawn over that map, and
 * layer x head grids of a statistic as heatmaps. */
#ifndef AB_IO_PNG_MAP_H
#define AB_IO_PNG_MAP_H

#include <stdint.h>

#include "attn/attn.h"
#include "methods/method.h"

/* The 256-entry viridis table (CC0), RGB: first #440154, last #FDE725. */
extern const uint8_t ab_viridis[256][3];

/* Writes a width x height 8-bit indexed PNG with the given palette (n_colors entries) and no
 * time chunk (same pixels, same bytes). pixels is (height, width) row-major. Atomic (path.tmp
 * then rename). AB_OK, AB_E_CREATE, AB_E_IO. */
int ab_png_write_indexed(const char *path, const uint8_t *pixels, int64_t width, int64_t height,
                         const uint8_t (*palette)[3], int n_colors);

/* Reads an 8-bit indexed PNG back (for tests and `report`): *pixels (caller frees with free()),
 * size and palette (up to 256 entries). AB_E_NOFILE, AB_E_DATA. */
int ab_png_read_indexed(const char *path, uint8_t **pixels, int64_t *width, int64_t *height,
                        uint8_t palette[256][3], int *n_colors);

/* The map image of h: pixel (y, x) is the maximum of A[i, j] over the query rows i and keys j
 * that fall in that pixel (size = min(n, max_size) per axis), mapped to a palette index on a log
 * scale from floor (e.g. 1e-6; index 1) to 1 (index 255); index 0 marks masked cells (no visible
 * key in the pixel). *pixels is (*height, *width), allocated with malloc. */
int ab_map_image(const struct ab_head *h, int64_t max_size, double floor, uint8_t **pixels,
                 int64_t *width, int64_t *height);

/* The palette of kept-mask pictures (ab_mask_image): index 0 is a masked cell (light grey),
 * 1 + L for L in 0..126 a kept cell of level L in full viridis colour, 128 + L the same level
 * dropped (the viridis colour dimmed towards dark grey), 255 unused (white). Levels run on the
 * log scale of ab_map_image: level 0 at or below the floor, 126 at probability 1. */
void ab_mask_palette(uint8_t palette[256][3]);

/* The kept mask of a method over the exact map of h, for query rows rows[0..n_rows) (ascending,
 * each < h->n_q) and keep (n_rows rows over h->n_k keys; row r of keep is query rows[r]).
 * Pixel row r * row_rep + t (t < row_rep) shows query rows[r]; its width is min(n_k,
 * max_width) pixels, pixel x covering keys [x n_k / w, (x + 1) n_k / w). A pixel with a kept
 * visible key shows the largest probability among its kept keys (kept colours); one with
 * visible keys and none kept the largest probability among them (dropped colours); one with no
 * visible key is masked. Indices per ab_mask_palette. *pixels is malloc'd, (*height, *width).
 * AB_OK, AB_E_USAGE (sizes, floor), AB_E_NOMEM, or an error of the reference attention. */
int ab_mask_image(const struct ab_head *h, const int64_t *rows, int64_t n_rows,
                  const struct ab_keep *keep, int64_t max_width, int64_t row_rep, double floor,
                  uint8_t **pixels, int64_t *width, int64_t *height);

/* A (rows, cols) grid of values (row-major) as a heatmap picture for the viridis palette: each
 * cell a block of cell x cell pixels, index 1 + round(254 t) where t in [0, 1] is the value's
 * position between lo and hi (clamped; on a log scale when logscale, which needs lo > 0), and
 * index 0 for a value that is NaN (or not positive on a log scale). *pixels is malloc'd,
 * (rows * cell, cols * cell). AB_OK, AB_E_USAGE (empty grid, cell outside 1..256, lo >= hi, a
 * log scale with lo <= 0), AB_E_NOMEM. */
int ab_grid_image(const double *v, int64_t rows, int64_t cols, double lo, double hi,
                  int logscale, int64_t cell, uint8_t **pixels, int64_t *width, int64_t *height);

#endif
