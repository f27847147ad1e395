/* helpers.h - shared test helpers: scratch paths, running the CLI, reading files. */
#ifndef AB_TESTS_HELPERS_H
#define AB_TESTS_HELPERS_H

#include <stdint.h>
#include <stdio.h>

/* A fresh path under $AB_TMP (or /tmp) unique to this process: "<tmp>/<pid>-<name>". Returns a
 * static buffer from a small ring (valid for the next 15 calls). */
const char *t_path(const char *name);

/* Runs `$AB_BIN <args>` through /bin/sh; stdout and stderr are captured into *out / *err
 * (malloc'd, NUL-terminated, may be NULL if not wanted). Returns the exit status (or -1). */
int t_run(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* $AB_SHARED/models/debdoc/NAME (the real model the tests check facts of), asserted to exist;
 * a static buffer from a ring of 4. */
const char *t_debdoc(const char *name);

/* 1 if path exists. */
int t_exists(const char *path);
/* 1 when a writer of path left a temporary beside it ("path.<...>.tmp", ab_tmp_path). */
int t_tmp_left(const char *path);

/* Whole file into memory (malloc'd, with a NUL after the last byte); *len its size. NULL if
 * unreadable. */
unsigned char *t_slurp(const char *path, size_t *len);

/* Number of lines of s. */
int t_count_lines(const char *s);

/* A map figure's data file (gnuplot binary matrix of float32, as ab_gp_map_write writes it):
 * width columns at key positions x[0..width), height rows at query positions y[0..height),
 * values v (height, width) row-major. */
struct t_matrix {
    int64_t width, height;
    float *x, *y, *v;
};

/* Reads path into m (free with t_matrix_free). 0, or -1 when the file is missing or its size
 * does not match the column count it declares. */
int t_matrix_read(const char *path, struct t_matrix *m);
void t_matrix_free(struct t_matrix *m);

/* Width and height from a PNG's IHDR; 0 x 0 when the file is not a PNG. */
void t_png_size(const char *path, uint32_t *w, uint32_t *h);

#endif
