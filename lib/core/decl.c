/* decl.c - parsing, printing and JSON of declared options (see decl.h). */
#include "core/decl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/list.h"

#define FIELD(o, d, T) ((T *)(void *)((char *)(o) + (d)->offset))
#define CFIELD(o, d, T) ((const T *)(const void *)((const char *)(o) + (d)->offset))

const char *ab_decl_key(const struct ab_decl *d, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", d->key ? d->key : d->name);
    for (char *p = buf; *p; p++)
        if (*p == '-') *p = '_';
    return buf;
}

/* a and b equal with '-' and '_' alike */
static int same_word(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (*a != *b && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_'))) return 0;
    return *a == *b;
}

const struct ab_decl *ab_decl_find(const struct ab_decl *t, const char *name)
{
    char key[64];
    for (; t->name; t++)
        if (same_word(t->name, name) || same_word(ab_decl_key(t, key, sizeof key), name))
            return t;
    return NULL;
}

/* "an integer in [1, 64]" for messages */
static const char *range_words(const struct ab_decl *d, char *buf, size_t cap)
{
    const char *what = d->type == AB_DECL_INT ? "an integer" : "a number";
    if (d->lo == -INFINITY && d->hi == INFINITY)
        snprintf(buf, cap, "%s", what);
    else if (d->hi == INFINITY && d->lo == 0)
        snprintf(buf, cap, d->lo_open ? "a positive %s" : "a non-negative %s",
                 d->type == AB_DECL_INT ? "integer" : "number");
    else if (d->hi == INFINITY)
        snprintf(buf, cap, "%s %s %.17g", what, d->lo_open ? ">" : ">=", d->lo);
    else
        snprintf(buf, cap, "%s in %c%.17g, %.17g%c", what, d->lo_open ? '(' : '[', d->lo, d->hi,
                 d->hi_open ? ')' : ']');
    return buf;
}

static int parse_int(const struct ab_decl *d, const char *text, int64_t *out)
{
    char *end, w[96];
    errno = 0;
    long long x = strtoll(text, &end, 10);
    if (errno || end == text || *end || (double)x < d->lo || (double)x > d->hi)
        return ab_fail(AB_E_USAGE, "wants %s, got '%s'", range_words(d, w, sizeof w), text);
    *out = x;
    return AB_OK;
}

static int parse_real(const struct ab_decl *d, double lo, double hi, const char *text,
                      double *out)
{
    char *end, w[96];
    errno = 0;
    double x = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(x) || x < lo || x > hi ||
        (d->lo_open && x == lo) || (d->hi_open && x == hi)) {
        struct ab_decl r = *d;
        r.type = AB_DECL_REAL, r.lo = lo, r.hi = hi;
        return ab_fail(AB_E_USAGE, "wants %s, got '%s'", range_words(&r, w, sizeof w), text);
    }
    *out = x;
    return AB_OK;
}

/* index of word in choices, or -1 */
static int choice(const char *const *choices, const char *word)
{
    for (int i = 0; choices && choices[i]; i++)
        if (!strcmp(choices[i], word)) return i;
    return -1;
}

/* "prefill, decode or both" */
static const char *choice_words(const char *const *choices, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; choices[i] && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s",
                                 i == 0 ? "" : choices[i + 1] ? ", " : " or ", choices[i]);
    return buf;
}

/* Checks a comma list against row d: items non-empty, typed, distinct. */
static int check_list(const struct ab_decl *d, const char *text)
{
    char item[256];
    int n = 0;
    const char *s = text;
    if (!*text) return ab_fail(AB_E_USAGE, "wants a list, got an empty one");
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (len == 0 || len >= sizeof item)
            return ab_fail(AB_E_USAGE, "has %s item in '%s'", len ? "a too long" : "an empty",
                           text);
        memcpy(item, s, len);
        item[len] = 0;
        if (d->item_real) {
            double x;
            int rc = parse_real(d, d->lo, d->hi, item, &x);
            if (rc) return rc;
        } else if (d->choices && choice(d->choices, item) < 0) {
            /* the words and the aliases a typo may have meant */
            const char *words[64];
            char all[512];
            int n_w = 0;
            for (int i = 0; d->choices[i] && n_w < 32; i++) words[n_w++] = d->choices[i];
            for (int i = 0; d->aliases && d->aliases[i] && n_w < 63; i += 2)
                words[n_w++] = d->aliases[i];
            words[n_w] = NULL;
            const char *near = ab_word_closest(item, words, n_w);
            if (near)
                return ab_fail(AB_E_USAGE, "has an unknown item '%s' (did you mean '%s'?)", item,
                               near);
            return ab_fail(AB_E_USAGE, "has an unknown item '%s' (%s)", item,
                           choice_words(words, all, sizeof all));
        }
        const char *want = d->item_check ? d->item_check(item) : NULL;
        if (want) return ab_fail(AB_E_USAGE, "has an item '%s' that is not %s", item, want);
        /* distinct */
        for (const char *p = text; p < s;) {
            const char *pc = strchr(p, ',');
            size_t pl = (size_t)(pc - p);
            if (pl == len && !memcmp(p, item, len))
                return ab_fail(AB_E_USAGE, "lists '%s' twice", item);
            p = pc + 1;
        }
        n++;
        if (!comma) break;
        s = comma + 1;
    }
    if (!d->item_real && d->hi > 0 && n > (int)d->hi)
        return ab_fail(AB_E_USAGE, "wants at most %d items, got %d", (int)d->hi, n);
    return AB_OK;
}

/* The STR or LIST field of row d in o becomes a copy of text. */
static int set_str(const struct ab_decl *d, void *o, const char *text)
{
    char *copy = strdup(text);
    if (!copy) return ab_fail(AB_E_NOMEM, "out of memory");
    free(*FIELD(o, d, char *));
    *FIELD(o, d, char *) = copy;
    return AB_OK;
}

int ab_decl_set(const struct ab_decl *d, void *o, const char *text)
{
    char buf[512];
    for (int i = 0; d->aliases && d->aliases[i]; i += 2)
        if (!strcmp(d->aliases[i], text)) {
            if (d->aliases[i + 1]) {
                text = d->aliases[i + 1];
                break;
            }
            if (d->type != AB_DECL_STR && d->type != AB_DECL_LIST) break;
            free(*FIELD(o, d, char *));
            *FIELD(o, d, char *) = NULL;
            return AB_OK;
        }
    switch (d->type) {
    case AB_DECL_FLAG: {
        static const char *const yes[] = {"true", "yes", "1", "on", NULL};
        static const char *const no[] = {"false", "no", "0", "off", NULL};
        if (choice(yes, text) >= 0) *FIELD(o, d, int) = 1;
        else if (choice(no, text) >= 0) *FIELD(o, d, int) = 0;
        else return ab_fail(AB_E_USAGE, "wants true or false, got '%s'", text);
        return AB_OK;
    }
    case AB_DECL_INT: return parse_int(d, text, FIELD(o, d, int64_t));
    case AB_DECL_REAL: return parse_real(d, d->lo, d->hi, text, FIELD(o, d, double));
    case AB_DECL_WORD:
    case AB_DECL_STR: {
        int k = choice(d->choices, text);
        if (d->type == AB_DECL_STR && (!d->choices || k >= 0)) return set_str(d, o, text);
        if (k < 0) {
            const char *near = ab_word_closest(text, d->choices, -1);
            if (near) return ab_fail(AB_E_USAGE, "wants %s, got '%s' (did you mean '%s'?)",
                                     choice_words(d->choices, buf, sizeof buf), text, near);
            return ab_fail(AB_E_USAGE, "wants %s, got '%s'",
                           choice_words(d->choices, buf, sizeof buf), text);
        }
        *FIELD(o, d, int) = k;
        return AB_OK;
    }
    case AB_DECL_LIST: {
        int rc = check_list(d, text);
        return rc ? rc : set_str(d, o, text);
    }
    default: break;
    }
    return ab_fail(AB_E_INTERNAL, "option row '%s' has no type", d->name);
}

/* A field of its own for row d (offset 0), to parse into without touching the caller's. */
union scratch {
    int i;
    int64_t l;
    double x;
    char *s;
};

int ab_decl_check(const struct ab_decl *d, const char *text)
{
    union scratch f = {0};
    struct ab_decl at0 = *d;
    at0.offset = 0;
    int rc = ab_decl_set(&at0, &f, text);
    if ((d->type == AB_DECL_STR || d->type == AB_DECL_LIST)) free(f.s);
    return rc;
}

int ab_decl_copy(const struct ab_decl *t, void *dst, const void *src)
{
    for (; t->name; t++) {
        if (t->type != AB_DECL_STR && t->type != AB_DECL_LIST) {
            size_t size = t->type == AB_DECL_INT    ? sizeof(int64_t)
                          : t->type == AB_DECL_REAL ? sizeof(double)
                                                    : sizeof(int);
            memcpy((char *)dst + t->offset, (const char *)src + t->offset, size);
            continue;
        }
        const char *from = *CFIELD(src, t, char *);
        char *copy = from ? strdup(from) : NULL;
        if (from && !copy) return ab_fail(AB_E_NOMEM, "out of memory");
        free(*FIELD(dst, t, char *));
        *FIELD(dst, t, char *) = copy;
    }
    return AB_OK;
}

int ab_decl_defaults(const struct ab_decl *t, void *o)
{
    for (; t->name; t++) {
        switch (t->type) {
        case AB_DECL_FLAG:
        case AB_DECL_WORD: *FIELD(o, t, int) = 0; break;
        case AB_DECL_INT: *FIELD(o, t, int64_t) = 0; break;
        case AB_DECL_REAL: *FIELD(o, t, double) = 0; break;
        default: *FIELD(o, t, char *) = NULL; break;
        }
        if (!t->def) continue;
        int rc = ab_decl_set(t, o, t->def);
        if (rc == AB_E_NOMEM) return rc;
        if (rc) return ab_fail(AB_E_INTERNAL, "option '%s': default '%s' %s", t->name, t->def,
                               ab_errmsg());
    }
    return AB_OK;
}

/* shortest %g form that reads back as x */
static void fmt_real(char *buf, size_t cap, double x)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

const char *ab_decl_format(const struct ab_decl *d, const void *o, char *buf, size_t cap)
{
    buf[0] = 0;
    switch (d->type) {
    case AB_DECL_FLAG: snprintf(buf, cap, "%s", *CFIELD(o, d, int) ? "true" : "false"); break;
    case AB_DECL_INT: snprintf(buf, cap, "%lld", (long long)*CFIELD(o, d, int64_t)); break;
    case AB_DECL_REAL: fmt_real(buf, cap, *CFIELD(o, d, double)); break;
    case AB_DECL_WORD: snprintf(buf, cap, "%s", d->choices[*CFIELD(o, d, int)]); break;
    default: {
        const char *s = *CFIELD(o, d, char *);
        snprintf(buf, cap, "%s", s ? s : "");
        if (!s)
            for (int i = 0; d->aliases && d->aliases[i]; i += 2)
                if (!d->aliases[i + 1]) return snprintf(buf, cap, "%s", d->aliases[i]), buf;
    }
    }
    for (int i = 0; d->aliases && d->aliases[i]; i += 2)
        if (d->aliases[i + 1] && !strcmp(d->aliases[i + 1], buf)) {
            snprintf(buf, cap, "%s", d->aliases[i]);
            break;
        }
    return buf;
}

int ab_decl_is_default(const struct ab_decl *d, const void *o)
{
    /* the default parsed into a field of its own, then both printed */
    union scratch def = {0};
    struct ab_decl at0 = *d;
    at0.offset = 0;
    if (d->def && ab_decl_set(&at0, &def, d->def)) return 0;
    char a[4096], b[4096];
    int same = !strcmp(ab_decl_format(d, o, a, sizeof a), ab_decl_format(&at0, &def, b, sizeof b));
    if ((d->type == AB_DECL_STR || d->type == AB_DECL_LIST)) {
        same = same && (*CFIELD(o, d, char *) == NULL) == (def.s == NULL);
        free(def.s);
    }
    return same;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

struct text {
    char *s;
    size_t len, cap;
    int failed;
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->failed) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        char *g = realloc(t->s, cap);
        if (!g) {
            t->failed = 1;
            return;
        }
        t->s = g, t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = 0;
}

static void puts_(struct text *t, const char *s) { put(t, s, strlen(s)); }

/* s as a JSON string, quoted and escaped */
static void put_string(struct text *t, const char *s, size_t n)
{
    puts_(t, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\', esc[1] = (char)ch;
            put(t, esc, 2);
        } else if (ch < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            puts_(t, esc);
        } else {
            put(t, (const char *)&s[i], 1);
        }
    }
    puts_(t, "\"");
}

char *ab_decl_json(const struct ab_decl *t, const void *o)
{
    struct text j = {0};
    char buf[4096], key[64];
    puts_(&j, "{");
    int first = 1;
    for (const struct ab_decl *d = t; d->name; d++) {
        if (d->flags & AB_DECL_SHOW) continue;
        if (!first) puts_(&j, ", ");
        first = 0;
        ab_decl_key(d, key, sizeof key);
        put_string(&j, key, strlen(key));
        puts_(&j, ": ");
        ab_decl_format(d, o, buf, sizeof buf);
        switch (d->type) {
        case AB_DECL_FLAG:
        case AB_DECL_INT:
        case AB_DECL_REAL: puts_(&j, buf); break;
        case AB_DECL_WORD: put_string(&j, buf, strlen(buf)); break;
        case AB_DECL_STR:
            if (*CFIELD(o, d, char *))
                put_string(&j, buf, strlen(buf));
            else
                puts_(&j, "null");
            break;
        case AB_DECL_LIST: {
            const char *s = *CFIELD(o, d, char *);
            if (!s) {
                puts_(&j, "null");
                break;
            }
            puts_(&j, "[");
            for (const char *p = s;;) {
                const char *c = strchr(p, ',');
                size_t n = c ? (size_t)(c - p) : strlen(p);
                if (d->item_real) {
                    char x[64];
                    fmt_real(x, sizeof x, strtod(p, NULL));
                    puts_(&j, x);
                } else
                    put_string(&j, p, n);
                if (!c) break;
                puts_(&j, ", ");
                p = c + 1;
            }
            puts_(&j, "]");
            break;
        }
        default: puts_(&j, "null");
        }
    }
    puts_(&j, "}");
    if (j.failed) {
        free(j.s);
        return NULL;
    }
    return j.s;
}

/* one word of a command line, quoted when a shell would not take it as it is */
static void put_word(struct text *t, const char *w)
{
    int plain = *w != 0;
    for (const char *p = w; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,:/+",
                       *p) != NULL;
    puts_(t, " ");
    if (plain) {
        puts_(t, w);
        return;
    }
    puts_(t, "'");
    for (const char *p = w; *p; p++) puts_(t, *p == '\'' ? "'\\''" : (char[]){*p, 0});
    puts_(t, "'");
}

/* " --name value" of row d (" -o value" for o, " --name" for a set flag) */
static void put_option(struct text *t, const struct ab_decl *d, const void *o)
{
    char buf[8192], opt[80];
    snprintf(opt, sizeof opt, "%s%s", strcmp(d->name, "o") ? "--" : "-", d->name);
    put_word(t, opt);
    if (d->type != AB_DECL_FLAG) put_word(t, ab_decl_format(d, o, buf, sizeof buf));
}

char *ab_decl_command(const char *cmd, const struct ab_decl *t, const void *o,
                      const char *const *pos, int n_pos, const char *tail)
{
    struct text c = {0};
    puts_(&c, "attnbench");
    put_word(&c, cmd);
    for (int i = 0; i < n_pos; i++) put_word(&c, pos[i]);
    const struct ab_decl *out = NULL;
    for (const struct ab_decl *d = t; d->name; d++) {
        if (d->flags & AB_DECL_OUTPUT) {
            out = d;
            continue;
        }
        if (ab_decl_is_default(d, o) || (d->type == AB_DECL_FLAG && !*CFIELD(o, d, int)) ||
            (d->flags & AB_DECL_SHOW))
            continue;
        put_option(&c, d, o);
    }
    if (tail && *tail) {
        puts_(&c, " ");
        puts_(&c, tail);
    }
    if (out && *CFIELD(o, out, char *)) put_option(&c, out, o);
    if (c.failed) {
        free(c.s);
        return NULL;
    }
    return c.s;
}

void ab_decl_free(const struct ab_decl *t, void *o)
{
    for (; t->name; t++)
        if (t->type == AB_DECL_STR || t->type == AB_DECL_LIST) {
            free(*FIELD(o, t, char *));
            *FIELD(o, t, char *) = NULL;
        }
}
