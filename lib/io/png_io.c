/* png_io.c - 8-bit indexed PNG files over libpng (png_io.h).
 *
 * libpng reports errors by longjmp; each libpng call sequence lives in one function with the
 * setjmp, and errors and warnings are captured (the library never prints). Files carry no tIME
 * or text chunks, so the same pixels give the same bytes. */
#include "io/png_io.h"

#include <errno.h>
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
    struct ab_outfile out;
    int rc = ab_outfile_open(&out, path);
    if (rc) return rc;
    struct ab_png_err e = {""};
    if (ab_png_encode(out.f, pixels, width, height, palette, n_colors, &e) != 0) {
        ab_outfile_abort(&out);
        return ab_fail(AB_E_IO, "'%s': cannot write PNG: %s", path, e.msg);
    }
    return ab_outfile_commit(&out);
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
