/* png_map.h - attention maps as pictures: the viridis palette, an 8-bit indexed PNG writer, and
 * the map image of one head (exact attention, log scale, max-pooled when the map is larger than
 * the image so sinks and needles stay visible). */
#ifndef AB_IO_PNG_MAP_H
#define AB_IO_PNG_MAP_H

#include <stdint.h>

#include "attn/attn.h"

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

#endif
