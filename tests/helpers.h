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

/* 1 if path exists. */
int t_exists(const char *path);

/* Whole file into memory (malloc'd, with a NUL after the last byte); *len its size. NULL if
 * unreadable. */
unsigned char *t_slurp(const char *path, size_t *len);

/* Number of lines of s. */
int t_count_lines(const char *s);

#endif
