/* json_out.c - the --json documents (json_out.h): jansson values with NaN as null, strings made
 * valid UTF-8, allocation failures remembered by the document, and a printer of our own, so
 * reals are written as the CSV files write them (the shortest of %.15g / %.16g / %.17g that
 * reads back to the same double: jansson's fixed precision prints 0.9 as 0.90000000000000002)
 * and arrays of plain values stay on one line. */
#include "io/json_out.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "io/csv.h"
#include "io/utf8.h"

/* struct ab_json is never defined: a pointer to one is a json_t. */
static json_t *J(struct ab_json *v) { return (json_t *)(void *)v; }

void ab_json_begin(struct ab_json_doc *d)
{
    d->root = (struct ab_json *)(void *)json_object();
    d->failed = d->root == NULL;
}

/* Puts v (a new reference, NULL when its creation failed) into parent; the document fails
 * when v is NULL or the insertion fails. Returns v while parent holds it, else NULL. */
static json_t *put(struct ab_json_doc *d, struct ab_json *parent, const char *key, json_t *v)
{
    json_t *p = J(parent);
    int rc = -1;
    if (v && p) {
        if (json_is_array(p) && !key) rc = json_array_append_new(p, v);
        else if (json_is_object(p) && key) rc = json_object_set_new(p, key, v);
        else assert(!"an object member needs a key, an array element none");
        /* the _new setters release v when they fail */
    } else if (v) {
        json_decref(v);
    }
    if (rc != 0) d->failed = 1;
    return rc == 0 ? v : NULL;
}

struct ab_json *ab_json_obj(struct ab_json_doc *d, struct ab_json *parent, const char *key)
{
    return (struct ab_json *)(void *)put(d, parent, key, json_object());
}

struct ab_json *ab_json_arr(struct ab_json_doc *d, struct ab_json *parent, const char *key)
{
    return (struct ab_json *)(void *)put(d, parent, key, json_array());
}

/* A JSON string of s with every byte outside a well-formed UTF-8 character replaced by U+FFFD
 * (3 bytes, so the copy is at most 3 times as long). */
static json_t *utf8_string(const char *s)
{
    uint32_t cp;
    const char *p = s;
    int n;
    while ((n = ab_utf8_char(p, &cp)) > 0) p += n;
    if (!*p) return json_string(s); /* the common case: valid as it is */
    size_t len = strlen(s);
    char *t = malloc(ab_size_mul(len, 3) + 1), *q = t;
    if (!t) return NULL;
    for (p = s; *p;) {
        if ((n = ab_utf8_char(p, &cp)) > 0) {
            memcpy(q, p, (size_t)n);
            q += n, p += n;
        } else {
            memcpy(q, "\xEF\xBF\xBD", 3);
            q += 3, p++;
        }
    }
    *q = '\0';
    json_t *v = json_string(t);
    free(t);
    return v;
}

void ab_json_str(struct ab_json_doc *d, struct ab_json *parent, const char *key, const char *s)
{
    put(d, parent, key, s ? utf8_string(s) : json_null());
}

void ab_json_num(struct ab_json_doc *d, struct ab_json *parent, const char *key, double x)
{
    put(d, parent, key, isfinite(x) ? json_real(x) : json_null());
}

void ab_json_int(struct ab_json_doc *d, struct ab_json *parent, const char *key, int64_t x)
{
    put(d, parent, key, json_integer((json_int_t)x));
}

void ab_json_bool(struct ab_json_doc *d, struct ab_json *parent, const char *key, int x)
{
    put(d, parent, key, json_boolean(x));
}

void ab_json_null(struct ab_json_doc *d, struct ab_json *parent, const char *key)
{
    put(d, parent, key, json_null());
}

void ab_json_text(struct ab_json_doc *d, struct ab_json *parent, const char *key,
                  const char *text)
{
    if (!text) {
        put(d, parent, key, json_null());
        return;
    }
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    put(d, parent, key, v ? v : json_string("(not JSON)"));
}

/* A JSON string: quote, backslash and the C0 controls escaped, the rest (valid UTF-8, as
 * utf8_string made it) as it is. */
static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        if (*u == '"' || *u == '\\') fprintf(f, "\\%c", *u);
        else if (*u == '\n') fputs("\\n", f);
        else if (*u == '\t') fputs("\\t", f);
        else if (*u == '\r') fputs("\\r", f);
        else if (*u < 0x20) fprintf(f, "\\u%04x", *u);
        else fputc(*u, f);
    }
    fputc('"', f);
}

static int is_container(const json_t *v) { return json_is_object(v) || json_is_array(v); }

/* Writes v at nesting depth (indentation 2 per level). */
static void put_value(FILE *f, const json_t *v, int depth)
{
    char num[AB_CSV_F64_MAX + 2];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *m;
        size_t i = 0;
        if (json_object_size(v) == 0) {
            fputs("{}", f);
            break;
        }
        fputs("{\n", f);
        json_object_foreach((json_t *)v, key, m)
        {
            fprintf(f, "%s%*s", i++ ? ",\n" : "", 2 * (depth + 1), "");
            put_string(f, key);
            fputs(": ", f);
            put_value(f, m, depth + 1);
        }
        fprintf(f, "\n%*s}", 2 * depth, "");
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v), flat = 1;
        for (size_t i = 0; i < n; i++) flat &= !is_container(json_array_get(v, i));
        if (n == 0 || flat) { /* plain values on one line */
            fputc('[', f);
            for (size_t i = 0; i < n; i++) {
                if (i) fputs(", ", f);
                put_value(f, json_array_get(v, i), depth + 1);
            }
            fputc(']', f);
            break;
        }
        fputs("[\n", f);
        for (size_t i = 0; i < n; i++) {
            fprintf(f, "%s%*s", i ? ",\n" : "", 2 * (depth + 1), "");
            put_value(f, json_array_get(v, i), depth + 1);
        }
        fprintf(f, "\n%*s]", 2 * depth, "");
        break;
    }
    case JSON_STRING: put_string(f, json_string_value(v)); break;
    case JSON_INTEGER: fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL:
        /* finite (ab_json_num made the others null); a real keeps a fraction or an exponent */
        ab_csv_format_f64(json_real_value(v), num);
        if (!strpbrk(num, ".e")) strcat(num, ".0");
        fputs(num, f);
        break;
    case JSON_TRUE: fputs("true", f); break;
    case JSON_FALSE: fputs("false", f); break;
    case JSON_NULL: fputs("null", f); break;
    }
}

int ab_json_print(struct ab_json_doc *d, FILE *f)
{
    int rc = AB_OK;
    if (d->failed) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
    } else {
        put_value(f, J(d->root), 0);
        fputc('\n', f);
    }
    ab_json_end(d);
    return rc;
}

void ab_json_end(struct ab_json_doc *d)
{
    json_decref(J(d->root));
    d->root = NULL;
}
