/* png_map.c - attention maps as 8-bit indexed PNG pictures (outputs.md, "Reports"): the writer
 * and reader over libpng, and the map image of one head.
 *
 * The map is exact attention streamed one row at a time (ab_attn_ref_visit), so memory is O(n)
 * plus the image. When the map is larger than the image, a pixel shows the largest probability
 * among the cells it covers (max-pooling): a sink column or a single needle cell stays visible
 * at any size, where averaging would wash it out. Colour is log-scaled from `floor` to 1.
 *
 * libpng reports errors by longjmp; each libpng call sequence lives in one function with the
 * setjmp, and errors and warnings are captured (the library never prints). Files carry no tIME
 * or text chunks, so the same pixels give the same bytes. */
#include "io/png_map.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <png.h>

#include "core/ab.h"

/* libpng's error context: the message of the first error. */
struct ab_png_err {
    char msg[200];
};

static void ab_png_error(png_structp png, png_const_charp msg)
{
    struct ab_png_err *e = png_get_error_ptr(png);
    if (e && !e->msg[0]) snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void ab_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings are not failures, and the library does not print */
}

/* Writes the image to an open stream. 0 on success, -1 with e->msg set on a libpng error. */
static int ab_png_encode(FILE *fp, const uint8_t *pixels, int64_t width, int64_t height,
                         const uint8_t (*palette)[3], int n_colors, struct ab_png_err *e)
{
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, e, ab_png_error, ab_png_warning);
    if (!png) {
        snprintf(e->msg, sizeof e->msg, "cannot start libpng");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        if (!e->msg[0]) snprintf(e->msg, sizeof e->msg, "libpng failed");
        png_destroy_write_struct(&png, info ? &info : NULL);
        return -1;
    }
    png_color pal[256];
    for (int i = 0; i < n_colors; i++) {
        pal[i].red = palette[i][0];
        pal[i].green = palette[i][1];
        pal[i].blue = palette[i][2];
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_PALETTE,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_PLTE(png, info, pal, n_colors);
    png_write_info(png, info);
    for (int64_t y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + y * width));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int ab_png_write_indexed(const char *path, const uint8_t *pixels, int64_t width, int64_t height,
                         const uint8_t (*palette)[3], int n_colors)
{
    if (width <= 0 || height <= 0 || width > INT32_MAX || height > INT32_MAX)
        return ab_fail(AB_E_USAGE, "'%s': bad image size %lld x %lld", path, (long long)width,
                       (long long)height);
    if (n_colors < 1 || n_colors > 256)
        return ab_fail(AB_E_USAGE, "'%s': a palette has 1 to 256 colours, not %d", path, n_colors);
    size_t len = strlen(path);
    char *tmp = malloc(len + 5);
    if (!tmp) return ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp", 5);

    int rc = AB_OK;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        rc = ab_fail(AB_E_CREATE, "'%s': cannot create: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    struct ab_png_err e = {""};
    if (ab_png_encode(fp, pixels, width, height, palette, n_colors, &e) != 0)
        rc = ab_fail(AB_E_IO, "'%s': cannot write PNG: %s", path, e.msg);
    if (fflush(fp) != 0 && rc == AB_OK)
        rc = ab_fail(AB_E_IO, "'%s': cannot write: %s", path, strerror(errno));
    if (fclose(fp) != 0 && rc == AB_OK)
        rc = ab_fail(AB_E_IO, "'%s': cannot write: %s", path, strerror(errno));
    if (rc == AB_OK && rename(tmp, path) != 0)
        rc = ab_fail(AB_E_CREATE, "'%s': cannot create: %s", path, strerror(errno));
    if (rc != AB_OK) remove(tmp);
    free(tmp);
    return rc;
}

/* Decodes an 8-bit (or packed 1/2/4-bit) palette PNG from an open stream into *pixels. 0 on
 * success, -1 with e->msg set. */
static int ab_png_decode(FILE *fp, uint8_t **pixels, int64_t *width, int64_t *height,
                         uint8_t palette[256][3], int *n_colors, struct ab_png_err *e)
{
    uint8_t *volatile img = NULL;
    png_bytep *volatile rows = NULL;
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, e, ab_png_error, ab_png_warning);
    if (!png) {
        snprintf(e->msg, sizeof e->msg, "cannot start libpng");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        if (!e->msg[0]) snprintf(e->msg, sizeof e->msg, "libpng failed");
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        free(img);
        free(rows);
        return -1;
    }
    png_init_io(png, fp);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    png_colorp pal = NULL;
    int n_pal = 0;
    if (type != PNG_COLOR_TYPE_PALETTE || depth > 8 ||
        png_get_PLTE(png, info, &pal, &n_pal) != PNG_INFO_PLTE) {
        snprintf(e->msg, sizeof e->msg, "not an indexed-colour PNG");
        png_longjmp(png, 1);
    }
    if (png_get_interlace_type(png, info) != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    if (depth < 8) png_set_packing(png);
    png_read_update_info(png, info);
    img = malloc((size_t)w * h);
    rows = malloc((size_t)h * sizeof *rows);
    if (!img || !rows) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = img + (size_t)y * w;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    for (int i = 0; i < n_pal && i < 256; i++) {
        palette[i][0] = pal[i].red;
        palette[i][1] = pal[i].green;
        palette[i][2] = pal[i].blue;
    }
    *n_colors = n_pal;
    *width = w;
    *height = h;
    *pixels = img;
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

int ab_png_read_indexed(const char *path, uint8_t **pixels, int64_t *width, int64_t *height,
                        uint8_t palette[256][3], int *n_colors)
{
    *pixels = NULL;
    *width = *height = 0;
    *n_colors = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT) return ab_fail(AB_E_NOFILE, "'%s': no such file", path);
        return ab_fail(AB_E_IO, "'%s': cannot read: %s", path, strerror(errno));
    }
    unsigned char sig[8];
    int rc = AB_OK;
    if (fread(sig, 1, 8, fp) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        rc = ab_fail(AB_E_DATA, "'%s': not a PNG file", path);
    } else {
        rewind(fp);
        struct ab_png_err e = {""};
        if (ab_png_decode(fp, pixels, width, height, palette, n_colors, &e) != 0)
            rc = ab_fail(AB_E_DATA, "'%s': bad PNG: %s", path, e.msg);
    }
    fclose(fp);
    return rc;
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

int ab_map_image(const struct ab_head *h, int64_t max_size, double floor, uint8_t **pixels,
                 int64_t *width, int64_t *height)
{
    *pixels = NULL;
    *width = *height = 0;
    if (max_size < 1 || max_size > 65536)
        return ab_fail(AB_E_USAGE, "image size %lld is outside 1..65536", (long long)max_size);
    if (!(floor > 0 && floor < 1))
        return ab_fail(AB_E_USAGE, "floor %g is not between 0 and 1", floor);
    if (h->n_q <= 0 || h->n_k <= 0) return ab_fail(AB_E_DATA, "empty head (no rows or keys)");
    struct ab_map_acc a = {NULL, h->n_q, h->n_k, AB_MIN(h->n_k, max_size),
                           AB_MIN(h->n_q, max_size)};
    int64_t n_px = a.width * a.height;
    int rc = ab_check_fits("map image", 9.0 * (double)n_px);
    if (rc != AB_OK) return rc;
    a.cell = malloc((size_t)n_px * sizeof *a.cell);
    uint8_t *img = malloc((size_t)n_px);
    if (!a.cell || !img) {
        rc = ab_fail(AB_E_NOMEM, "out of memory for a %lld x %lld map", (long long)a.width,
                     (long long)a.height);
        goto done;
    }
    /* -1 marks pixels where every cell is masked; every probability is >= 0 */
    for (int64_t c = 0; c < n_px; c++) a.cell[c] = -1.0;
    rc = ab_attn_ref_visit(h, NULL, 0, ab_map_row, &a);
    if (rc != AB_OK) goto done;

    /* index 1 + 254 * log(p / floor) / log(1 / floor), so floor (and below) -> 1, 1 -> 255 */
    double inv_span = 254.0 / -log(floor);
    for (int64_t c = 0; c < n_px; c++) {
        double p = a.cell[c];
        if (p < 0)
            img[c] = 0;
        else if (p <= floor)
            img[c] = 1;
        else {
            double idx = 1.0 + log(p / floor) * inv_span;
            img[c] = (uint8_t)(idx >= 255.0 ? 255 : lround(idx));
        }
    }
    *pixels = img;
    img = NULL;
    *width = a.width;
    *height = a.height;
done:
    free(a.cell);
    free(img);
    return rc;
}

/* ------------------------------------------------------------------ kept-mask pictures */

void ab_mask_palette(uint8_t palette[256][3])
{
    /* masked: light grey, so the causal upper triangle reads as "not part of the map" */
    palette[0][0] = palette[0][1] = palette[0][2] = 0xd8;
    for (int l = 0; l < 127; l++) {
        const uint8_t *c = ab_viridis[(l * 255 + 63) / 126];
        for (int ch = 0; ch < 3; ch++) {
            palette[1 + l][ch] = c[ch];
            /* dropped: a third of the colour over a dark grey, so a dropped needle still shows
             * but nothing dropped competes with what was kept */
            palette[128 + l][ch] = (uint8_t)lround(0.33 * c[ch] + 0.67 * 0x1c);
        }
    }
    palette[255][0] = palette[255][1] = palette[255][2] = 0xff;
}

/* The mask accumulator: per pixel of one row, the largest kept and the largest visible
 * probability (-1: none). */
struct ab_mask_acc {
    const struct ab_keep *keep;
    double *kept, *all; /* (width) for the current row */
    uint8_t *img;       /* (n_rows * row_rep, width) */
    int64_t n_k, width, row_rep, r;
    double floor, inv_span;
};

static uint8_t ab_mask_level(const struct ab_mask_acc *a, double p)
{
    if (p <= a->floor) return 0;
    double l = log(p / a->floor) * a->inv_span;
    return (uint8_t)(l >= 126.0 ? 126 : lround(l));
}

static int ab_mask_row(int64_t i, const double *p, int64_t n_vis, double lse, void *user)
{
    (void)i, (void)lse;
    struct ab_mask_acc *a = user;
    for (int64_t x = 0; x < a->width; x++) a->kept[x] = a->all[x] = -1;
    for (int64_t j = 0; j < n_vis; j++) {
        int64_t x = j * a->width / a->n_k;
        if (p[j] > a->all[x]) a->all[x] = p[j];
        if (ab_keep_has(a->keep, a->r, j) && p[j] > a->kept[x]) a->kept[x] = p[j];
    }
    uint8_t *line = a->img + a->r * a->row_rep * a->width;
    for (int64_t x = 0; x < a->width; x++)
        line[x] = a->kept[x] >= 0   ? (uint8_t)(1 + ab_mask_level(a, a->kept[x]))
                  : a->all[x] >= 0 ? (uint8_t)(128 + ab_mask_level(a, a->all[x]))
                                   : 0;
    for (int64_t t = 1; t < a->row_rep; t++) memcpy(line + t * a->width, line, (size_t)a->width);
    a->r++;
    return 0;
}

int ab_mask_image(const struct ab_head *h, const int64_t *rows, int64_t n_rows,
                  const struct ab_keep *keep, int64_t max_width, int64_t row_rep, double floor,
                  uint8_t **pixels, int64_t *width, int64_t *height)
{
    *pixels = NULL;
    *width = *height = 0;
    if (max_width < 1 || max_width > 65536 || row_rep < 1 || row_rep > 256 || n_rows < 1 ||
        n_rows * row_rep > 65536)
        return ab_fail(AB_E_USAGE, "mask image of %lld rows x %lld is outside 1..65536 pixels",
                       (long long)n_rows, (long long)row_rep);
    if (!(floor > 0 && floor < 1))
        return ab_fail(AB_E_USAGE, "floor %g is not between 0 and 1", floor);
    if (keep->n_rows != n_rows || keep->n_k != h->n_k)
        return ab_fail(AB_E_USAGE, "kept set of %lld x %lld does not match %lld rows x %lld keys",
                       (long long)keep->n_rows, (long long)keep->n_k, (long long)n_rows,
                       (long long)h->n_k);
    struct ab_mask_acc a = {.keep = keep,
                            .n_k = h->n_k,
                            .width = AB_MIN(h->n_k, max_width),
                            .row_rep = row_rep,
                            .floor = floor,
                            .inv_span = 126.0 / -log(floor)};
    int64_t n_px = a.width * n_rows * row_rep;
    a.kept = malloc(sizeof(double) * (size_t)a.width);
    a.all = malloc(sizeof(double) * (size_t)a.width);
    a.img = malloc((size_t)n_px);
    int rc = AB_OK;
    if (!a.kept || !a.all || !a.img) {
        rc = ab_fail(AB_E_NOMEM, "out of memory for a %lld-pixel mask image", (long long)n_px);
        goto done;
    }
    if ((rc = ab_attn_ref_visit(h, rows, n_rows, ab_mask_row, &a)) != AB_OK) goto done;
    *pixels = a.img;
    a.img = NULL;
    *width = a.width;
    *height = n_rows * row_rep;
done:
    free(a.kept);
    free(a.all);
    free(a.img);
    return rc;
}

/* ------------------------------------------------------------------ grid heatmaps */

int ab_grid_image(const double *v, int64_t rows, int64_t cols, double lo, double hi,
                  int logscale, int64_t cell, uint8_t **pixels, int64_t *width, int64_t *height)
{
    *pixels = NULL;
    *width = *height = 0;
    if (rows < 1 || cols < 1 || cell < 1 || cell > 256 || rows * cell > 65536 ||
        cols * cell > 65536)
        return ab_fail(AB_E_USAGE, "heatmap of %lld x %lld cells of %lld pixels is out of range",
                       (long long)rows, (long long)cols, (long long)cell);
    if (!(lo < hi) || (logscale && !(lo > 0)))
        return ab_fail(AB_E_USAGE, "heatmap scale [%g, %g] is empty%s", lo, hi,
                       logscale ? " or not positive" : "");
    int64_t w = cols * cell, ht = rows * cell;
    uint8_t *img = malloc((size_t)(w * ht));
    if (!img) return ab_fail(AB_E_NOMEM, "out of memory for a %lld x %lld heatmap",
                             (long long)w, (long long)ht);
    double a = logscale ? log(lo) : lo, span = (logscale ? log(hi) : hi) - a;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double x = v[r * cols + c];
            uint8_t idx = 0;
            if (!isnan(x) && (!logscale || x > 0)) {
                double t = ((logscale ? log(x) : x) - a) / span;
                t = t < 0 ? 0 : t > 1 ? 1 : t;
                idx = (uint8_t)(1 + lround(254 * t));
            }
            for (int64_t y = 0; y < cell; y++)
                memset(img + (r * cell + y) * w + c * cell, idx, (size_t)cell);
        }
    *pixels = img;
    *width = w;
    *height = ht;
    return AB_OK;
}
