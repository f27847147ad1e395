/* json_out.c - the --json documents (json_out.h): jansson values with NaN as null, strings made
 * valid UTF-8, and allocation failures remembered by the document. */
#include "io/json_out.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
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

int ab_json_print(struct ab_json_doc *d, FILE *f)
{
    int rc = AB_OK;
    if (d->failed) rc = ab_fail(AB_E_NOMEM, "out of memory");
    else if ((errno = 0, json_dumpf(J(d->root), f, JSON_INDENT(2)) != 0) || fputc('\n', f) == EOF)
        rc = ab_fail(AB_E_IO, "cannot write the JSON document: %s",
                     errno ? strerror(errno) : "write error");
    ab_json_end(d);
    return rc;
}

void ab_json_end(struct ab_json_doc *d)
{
    json_decref(J(d->root));
    d->root = NULL;
}
