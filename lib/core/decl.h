/* decl.h - each command's options declared once (issue 16): a typed options struct and one
 * table of rows {name, type, field, default, range, help}. The same table drives argv parsing
 * and --help (cmd/opts.c), the scenario's YAML keys and their validation (lib/scenario), the
 * `--set` overrides of `scenario`, the command line a scenario step prints, and the JSON echo
 * of the options recorded with every output. A default lives in its row and nowhere else.
 *
 * Values enter as text, whatever their source: an argv word, a YAML scalar, a YAML list joined
 * with commas, the right side of `--set key=value`. ab_decl_set parses and range-checks the text
 * into the field; on failure its message (ab_errmsg) names the expected type and the value but
 * not the key, so each caller prefixes where the value came from ("run: option '--rows'",
 * "'x.yaml' line 12: 'rows' in run", "--set run.rows"). */
#ifndef AB_CORE_DECL_H
#define AB_CORE_DECL_H

#include <stddef.h>
#include <stdint.h>

enum ab_decl_type {
    AB_DECL_FLAG = 1, /* int, 0 or 1; argv --name sets it; text: true/false/yes/no/1/0 */
    AB_DECL_INT,      /* int64_t in [lo, hi] */
    AB_DECL_REAL,     /* double, finite, in [lo, hi] */
    AB_DECL_STR,      /* char * (malloc'd, freed by ab_decl_free); NULL = not given; one of
                         choices[] when given */
    AB_DECL_WORD,     /* int: index into choices[] */
    AB_DECL_LIST,     /* char *, a comma list ("a,b,c"; malloc'd); NULL = not given. Items are
                         reals in [lo, hi] when item_real, else words (choices[] when given);
                         distinct; at most hi items when !item_real and hi > 0 */
};

enum ab_decl_flags {
    AB_DECL_CLI = 1,    /* the command line only: not a scenario key (-o, --scenario) */
    AB_DECL_INPUT = 2,  /* names an input file (the output may not be it) */
    AB_DECL_OUTPUT = 4, /* names the output (-o) */
    AB_DECL_SHOW = 8,   /* how the command shows its answer (--json) or carries out its work
                           (run's --resume, --shard): not recorded with the
                           results, neither in their command line nor in the JSON echo */
    AB_DECL_APPEND = 16, /* LIST: given again on the command line, adds its items (--plugin A
                            --plugin B) instead of replacing them */
};

struct ab_decl {
    const char *name; /* [a-z0-9-]+: --name on the command line ("o": -o) */
    int type;         /* enum ab_decl_type */
    size_t offset;    /* of the field in the options struct */
    const char *def;  /* the default as typed ("64", "both"), or NULL: not given */
    double lo, hi;    /* INT / REAL range, inclusive; LIST: item range (item_real) */
    const char *arg;  /* placeholder in --help ("N"), NULL for flags */
    const char *help; /* one line; --help appends "(default DEF)" */
    const char *key;  /* the scenario's YAML key when not name with '-' -> '_', or NULL */
    const char *const *choices; /* WORD, LIST of words: the accepted words (NULL-terminated) */
    int item_real;              /* LIST: items are reals */
    unsigned flags;             /* enum ab_decl_flags */
    int lo_open;                /* REAL, LIST of reals: lo itself is excluded: (lo, hi] */
    int hi_open;                /* REAL: hi itself is excluded: [lo, hi) */
    /* words standing for a value, pairs {word, value, ..., NULL}: "both" for
     * "prefill,decode", "paper" for a budget grid; a NULL value resets a STR or LIST to not
     * given ("all" methods). ab_decl_format prints the word back for its value. */
    const char *const *aliases;
    /* LIST of words: a check of each item's form beyond choices, NULL when it passes, else
     * what the item should be ("a LAYER:HEAD pair of non-negative integers") */
    const char *(*item_check)(const char *item);
};

/* Declares a row for field f of struct type S (in a table `static const struct ab_decl t[]`). */
#define AB_DECL_ROW(S, f) .offset = offsetof(S, f)

/* The YAML key of row d ("decode_queries" for "decode-queries") into buf. */
const char *ab_decl_key(const struct ab_decl *d, char *buf, size_t cap);

/* The row of table t (ended by a row with name NULL) named `name`, by option name or YAML key,
 * '-' and '_' alike; NULL when none. */
const struct ab_decl *ab_decl_find(const struct ab_decl *t, const char *name);

/* Sets every field of o to its row's default (NULL / 0 / index 0 for rows without one). The
 * defaults are checked by the test suite (core decl_defaults_parse), so this cannot fail but
 * for memory: AB_OK or AB_E_NOMEM. Free with ab_decl_free, also after a failure. */
int ab_decl_defaults(const struct ab_decl *t, void *o);

/* Parses text into the field of row d in o, replacing what was there. AB_OK, or AB_E_USAGE with
 * a message naming the expected type and the text ("wants an integer in [1, 64], got 'x'"),
 * or AB_E_NOMEM. On failure the field is unchanged. */
int ab_decl_set(const struct ab_decl *d, void *o, const char *text);

/* Whether text would set row d (ab_decl_set's checks and message), without touching any
 * struct: one item of a list read item by item, say. AB_OK, AB_E_USAGE or AB_E_NOMEM. */
int ab_decl_check(const struct ab_decl *d, const char *text);

/* Copies every field of table t from src to dst (strings duplicated; dst freed first). AB_OK
 * or AB_E_NOMEM. */
int ab_decl_copy(const struct ab_decl *t, void *dst, const void *src);

/* The field of row d as it would be typed ("64", "prefill", "0.5,0.25") into buf; "" for a NULL
 * string or list. Returns buf. */
const char *ab_decl_format(const struct ab_decl *d, const void *o, char *buf, size_t cap);

/* 1 when the field of row d holds its default. */
int ab_decl_is_default(const struct ab_decl *d, const void *o);

/* The options as one JSON object {"name": value, ...} (malloc'd, NUL-terminated), every row in
 * table order: integers and reals as numbers, flags as true/false, words and strings as
 * strings, lists as arrays, not-given strings as null. NULL when out of memory. */
char *ab_decl_json(const struct ab_decl *t, const void *o);

/* The command line that sets o, as a shell takes it back: "attnbench CMD POS... --name value
 * ..." with every row that differs from its default, in table order, then tail (the common
 * options, "--seed 1 --threads 0"; may be NULL), and the AB_DECL_OUTPUT row (-o FILE) last.
 * Words a shell would split are single-quoted. malloc'd; NULL when out of memory. */
char *ab_decl_command(const char *cmd, const struct ab_decl *t, const void *o,
                      const char *const *pos, int n_pos, const char *tail);

/* Frees the STR and LIST fields of o (and sets them NULL). */
void ab_decl_free(const struct ab_decl *t, void *o);

#endif
