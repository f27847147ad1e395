/* json_out.h - the JSON documents commands print with --json (README, "Machine-readable
 * output"): a small builder over jansson, so cmd/ includes no format library's header and
 * every document follows the same rules:
 * - numbers are JSON numbers: integers as integers, reals as the CSV files write them (the
 *   shortest of %.15g / %.16g / %.17g that reads back to the same double, '.' whatever the
 *   locale) and always with a fraction or an exponent ("256.0"); NaN and the infinities, which
 *   JSON cannot hold, are null;
 * - strings are valid UTF-8 whatever their source: a byte that is not part of a well-formed
 *   UTF-8 character (a path, an attribute of a foreign file) becomes U+FFFD; NULL is null;
 * - members keep the order they were added in; the document is indented by 2, an array of
 *   plain values (no object or array inside) on one line, and ends with a newline;
 * - a failed allocation anywhere while building is remembered by the document and reported by
 *   ab_json_print, so building needs no checks: every adder accepts a NULL parent (a container
 *   whose creation failed) and then does nothing. */
#ifndef AB_IO_JSON_OUT_H
#define AB_IO_JSON_OUT_H

#include <stdint.h>
#include <stdio.h>

/* A value inside a document (a jansson json_t). */
struct ab_json;

struct ab_json_doc {
    struct ab_json *root; /* an object */
    int failed;           /* 1 once an allocation failed */
};

/* Starts a document whose root is an empty object. */
void ab_json_begin(struct ab_json_doc *d);

/* Adders: each puts a value into parent, under key when parent is an object, appended when
 * parent is an array (key NULL). ab_json_obj and ab_json_arr return the new container (NULL
 * when it could not be made: the document is then failed). */
struct ab_json *ab_json_obj(struct ab_json_doc *d, struct ab_json *parent, const char *key);
struct ab_json *ab_json_arr(struct ab_json_doc *d, struct ab_json *parent, const char *key);
void ab_json_str(struct ab_json_doc *d, struct ab_json *parent, const char *key, const char *s);
void ab_json_num(struct ab_json_doc *d, struct ab_json *parent, const char *key, double x);
void ab_json_int(struct ab_json_doc *d, struct ab_json *parent, const char *key, int64_t x);
void ab_json_bool(struct ab_json_doc *d, struct ab_json *parent, const char *key, int x);
void ab_json_null(struct ab_json_doc *d, struct ab_json *parent, const char *key);
/* A value given as JSON text (the options a results file records), parsed and put as it is;
 * NULL text is null, text that does not parse the string "(not JSON)". */
void ab_json_text(struct ab_json_doc *d, struct ab_json *parent, const char *key,
                  const char *text);

/* Writes the document to f and releases it. AB_OK, or AB_E_NOMEM "out of memory" when building
 * failed (nothing is written). A failed write is left in f's error flag, as printf leaves it:
 * the caller sees it when it flushes (main does for stdout, so a command's exit status is the
 * same with --json as without). */
int ab_json_print(struct ab_json_doc *d, FILE *f);

/* Releases the document without writing it. Safe after ab_json_print. */
void ab_json_end(struct ab_json_doc *d);

#endif
