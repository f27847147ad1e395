/* png_io.h - 8-bit indexed PNG files (no time chunk: the same pixels give the same bytes),
 * written and read back with libpng. The palette is the caller's (the figures' viridis table:
 * report/gnuplot.h, ab_viridis). */
#ifndef AB_IO_PNG_IO_H
#define AB_IO_PNG_IO_H

#include <stdint.h>

/* Writes a width x height 8-bit indexed PNG with the given palette (n_colors entries) and no
 * time chunk (same pixels, same bytes). pixels is (height, width) row-major. Atomic (path.tmp
 * then rename). AB_OK, AB_E_CREATE, AB_E_IO. */
int ab_png_write_indexed(const char *path, const uint8_t *pixels, int64_t width, int64_t height,
                         const uint8_t (*palette)[3], int n_colors);

/* Reads an 8-bit indexed PNG back (for tests and `report`): *pixels (caller frees with free()),
 * size and palette (up to 256 entries). AB_E_NOFILE, AB_E_DATA. */
int ab_png_read_indexed(const char *path, uint8_t **pixels, int64_t *width, int64_t *height,
                        uint8_t palette[256][3], int *n_colors);

#endif
