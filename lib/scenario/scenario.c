/* scenario.c - reading and validating scenario files (see scenario.h; the schema reference is
 * scenarios/README.md).
 *
 * libyaml's document API loads the whole file as a node graph whose nodes carry their line; the
 * reader then walks it section by section. Every map is first checked against the keys its
 * section allows (unknown keys, with a did-you-mean, and duplicates are errors), then each value
 * is read with a typed getter that names the key and the line when the type or range is wrong.
 * `run`, `report` and `quick` share one setting reader, so a quick override is checked exactly
 * like the setting it replaces. After the walk, sweeps are expanded, quick overrides applied,
 * defaults filled in, and the cross-checks run: gen options through the generator's own
 * validation, methods against the phases, decode_queries against every length, maps against
 * the first workload. Nothing here writes outside ab_scenario_save. */
#include "scenario/scenario.h"
#include "scenario/set.h"
#include "run/gen.h"

#include <assert.h>
#include <pthread.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "core/ab.h"
#include "core/decl.h"
#include "core/list.h"
#include "core/sha256.h"
#include "core/workload.h"
#include "gen/gen.h"
#include "io/h5_workload.h"
#include "io/results_io.h"
#include "methods/method.h"

enum { MAX_TEXT = 1 << 20, MAX_SWEEP_VALUES = 64 };

/* ---- keys of each section ------------------------------------------------------------------ */

/* integer options of gen, in the order of gen_int_keys; each may be swept */
enum {
    GI_LAYERS,
    GI_HEADS,
    GI_KV_HEADS,
    GI_N,
    GI_D,
    GI_DV,
    GI_SLASH,
    GI_NTASKS,
    GI_TASKROWS,
    GI_CODES,
    GI_SEED,
    GI_COUNT
};
static const char *const gen_int_keys[GI_COUNT + 1] = {
    "layers",       "heads",   "kv_heads",  "n",     "d",    "dv",
    "slash_period", "n_tasks", "task_rows", "codes", "seed", NULL};
/* The range of integer key k, from gen's own table (ab_gen_run_decl; the seed is a common
 * option: any value), and its default when a workload does not give it: gen's for the shape
 * (layers .. d, known at load for the checks that need it), -1 for the rest (gen's default then
 * applies when it runs). */
static void gen_int_spec(int k, int64_t *lo, int64_t *hi, int64_t *def)
{
    const struct ab_decl *d = k == GI_SEED ? NULL : ab_decl_find(ab_gen_run_decl, gen_int_keys[k]);
    assert(k == GI_SEED || (d && d->type == AB_DECL_INT));
    if (lo) *lo = d ? (int64_t)d->lo : 0;
    if (hi) *hi = d ? (int64_t)d->hi : INT64_MAX;
    if (def) *def = k <= GI_D ? strtoll(d->def, NULL, 10) : -1;
}

enum { GR_THETA, GR_DEPTH_MIN, GR_DEPTH_MAX, GR_COUNT };
static const char *const gen_real_keys[GR_COUNT] = {"theta", "depth_min", "depth_max"};

static const char *const top_keys[] = {"schema", "name",      "description", "seed",  "threads",
                                       "model",  "workloads", "run",         "heads", "eval_model",
                                       "report", "quick",     "plugins",     NULL};
static const char *const workload_keys[] = {"name",    "gen",    "file", "sweep",
                                            "capture", "import", NULL};
static const char *const gen_keys[] = {
    "preset",       "profile", "mix",       "tasks",    "strength", "theta", "depth_min",
    "depth_max",    "layers",  "heads",     "kv_heads", "n",        "d",     "dv",
    "slash_period", "n_tasks", "task_rows", "codes",    "seed",     "probe", "full", NULL};
/* run's, heads' and report's keys are the YAML keys of their declared options (ab_run_decl,
 * ab_heads_run_decl, ab_report_run_decl), the command line's own rows aside: filled once by
 * run_keys_init */
static const char *run_keys[32], *heads_keys[32], *report_keys[32];
static char run_key_text[32][64], heads_key_text[32][64], report_key_text[32][64];
static pthread_once_t run_keys_once = PTHREAD_ONCE_INIT;
/* The YAML keys of table t (the command line's own rows aside) into keys[] (NULL-ended). */
static void keys_of(const struct ab_decl *t, const char **keys, char (*text)[64])
{
    int n = 0;
    for (const struct ab_decl *d = t; d->name && n < 31; d++)
        if (!(d->flags & AB_DECL_CLI)) keys[n] = ab_decl_key(d, text[n], sizeof text[n]), n++;
    keys[n] = NULL;
}
static void run_keys_init(void)
{
    keys_of(ab_run_decl, run_keys, run_key_text);
    keys_of(ab_heads_run_decl, heads_keys, heads_key_text);
    keys_of(ab_report_run_decl, report_keys, report_key_text);
}
/* quick: a few gen sizes for every generated workload, and run / report settings */
static const char *const quick_keys[] = {
    "n",        "layers",    "heads",        "kv_heads",       "d",    "n_tasks", "task_rows",
    "methods",  "budgets",   "phases",       "decode_queries", "rows", "maps",    "map_methods",
    "generate", "copy_task", "eval_methods", "eval_budgets",   NULL};
static const char *const model_keys[] = {"path", "tokenizer", NULL};
static const char *const capture_keys[] = {"text",   "prompt", "tokens", "copy_task", "generate",
                                           "hidden", "seed",   "offset", "length",    "model",
                                           "tokenizer", NULL};
static const char *const import_keys[] = {"files",  "layout", "names", "dtype",
                                          "causal", "scale",  NULL};
static const char *const eval_keys[] = {"text",      "copy_task",      "methods",      "budgets",
                                        "phases",    "decode_queries", "decode_horizon", "heads",
                                        "heads_top", "heads_random",   "heads_select", "stride",
                                        "heads_bottom", "window_bos", "kv_budget", "bytes_budget",
                                        NULL};
static const char *const heads_top_keys[] = {"k", "score", NULL};
static const char *const heads_select_keys[] = {"calibrate", "calibrate_copy", "min", NULL};

/* ---- reading context and messages ---------------------------------------------------------- */

struct ctx {
    const char *path; /* the scenario file as named, for messages */
    char dir[4096];   /* its folder, for workload files named relative to it */
    yaml_document_t doc;
    int has_model; /* the file has a top-level `model:` */
    const char *const *sets; /* the --set overrides applied to doc (set.h) */
    int n_sets;
};

static int line_of(const yaml_node_t *n)
{
    return n ? (int)n->start_mark.line + 1 : 1;
}

/* Sets the one-line message "'<file>' line <n>: <detail>" and returns code. */
static int fail_line(const struct ctx *c, int code, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_line(const struct ctx *c, int code, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > AB_SCENARIO_SET_LINE && line - AB_SCENARIO_SET_LINE <= c->n_sets)
        /* a bad override is a bad command line (64), not a bad file */
        return ab_fail(code == AB_E_DATA ? AB_E_USAGE : code, "'%s' --set %s: %s", c->path,
                       c->sets[line - AB_SCENARIO_SET_LINE - 1], msg);
    return ab_fail(code, "'%s' line %d: %s", c->path, line, msg);
}
#define FAIL(c, node, ...) fail_line((c), AB_E_DATA, line_of(node), __VA_ARGS__)

static yaml_node_t *node_at(struct ctx *c, int index)
{
    return yaml_document_get_node(&c->doc, index);
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A null value: an empty plain scalar, "~" or "null" (YAML's spellings). */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *s = scalar(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* What a node is, for "got ..." in messages. */
static const char *describe(const yaml_node_t *n, char *buf, size_t cap)
{
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (n->type == YAML_MAPPING_NODE) return "a map";
    if (is_null(n)) return "nothing";
    int quoted = n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    snprintf(buf, cap, "%s'%.40s%s'", quoted ? "the string " : "", scalar(n),
             strlen(scalar(n)) > 40 ? "..." : "");
    return buf;
}

static int in_list(const char *w, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (!strcmp(w, words[i])) return 1;
    return 0;
}

/* Checks that map is a map whose keys are distinct words of keys[]; `in` names it ("run").
 * When an unknown key belongs to another section (`other_in`, other_keys), says so. */
static int check_map(struct ctx *c, yaml_node_t *map, const char *in, const char *const *keys,
                     const char *other_in, const char *const *other_keys)
{
    char buf[64];
    if (map->type != YAML_MAPPING_NODE)
        return FAIL(c, map, "%s wants a map of keys, got %s", in, describe(map, buf, sizeof buf));
    yaml_node_pair_t *p0 = map->data.mapping.pairs.start, *p1 = map->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = p0; p < p1; p++) {
        yaml_node_t *k = node_at(c, p->key);
        if (k->type != YAML_SCALAR_NODE || is_null(k))
            return FAIL(c, k, "keys of %s must be words, got %s", in, describe(k, buf, sizeof buf));
        const char *ks = scalar(k);
        if (!in_list(ks, keys)) {
            const char *near = ab_word_closest(ks, keys, -1);
            if (near)
                return FAIL(c, k, "unknown key '%s' in %s (did you mean '%s'?)", ks, in, near);
            if (other_keys && in_list(ks, other_keys))
                return FAIL(c, k, "unknown key '%s' in %s (it belongs in %s)", ks, in, other_in);
            return FAIL(c, k, "unknown key '%s' in %s", ks, in);
        }
        for (yaml_node_pair_t *q = p0; q < p; q++)
            if (!strcmp(scalar(node_at(c, q->key)), ks))
                return FAIL(c, k, "duplicate key '%s' in %s (first on line %d)", ks, in,
                            line_of(node_at(c, q->key)));
    }
    return AB_OK;
}

/* The value of key in a checked map, or NULL. */
static yaml_node_t *lookup(struct ctx *c, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        if (!strcmp(scalar(node_at(c, p->key)), key)) return node_at(c, p->value);
    return NULL;
}

/* ---- typed getters: `what` names the value in messages ("'n' in gen of workload 'x'") ----- */

static int get_str(struct ctx *c, yaml_node_t *n, const char *what, const char **out)
{
    char buf[64];
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return FAIL(c, n, "%s wants a string, got %s", what, describe(n, buf, sizeof buf));
    if (strlen(scalar(n)) != n->data.scalar.length)
        return FAIL(c, n, "%s contains a NUL character", what);
    *out = scalar(n);
    return AB_OK;
}

/* A plain scalar that reads as a number: quoted text is a string, even "4096". */
static int want_plain(struct ctx *c, yaml_node_t *n, const char *what, const char *kind)
{
    char buf[64];
    if (n->type != YAML_SCALAR_NODE || is_null(n) ||
        n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return FAIL(c, n, "%s wants %s, got %s", what, kind, describe(n, buf, sizeof buf));
    return AB_OK;
}

static int get_int(struct ctx *c, yaml_node_t *n, const char *what, int64_t lo, int64_t hi,
                   int64_t *out)
{
    int rc = want_plain(c, n, what, "an integer");
    if (rc) return rc;
    char *end, buf[64];
    errno = 0;
    long long x = strtoll(scalar(n), &end, 10);
    if (errno || end == scalar(n) || *end)
        return FAIL(c, n, "%s wants an integer, got %s", what, describe(n, buf, sizeof buf));
    if (x < lo || x > hi)
        return FAIL(c, n, "%s must be in [%lld, %lld], got %lld", what, (long long)lo,
                    (long long)hi, x);
    *out = x;
    return AB_OK;
}

/* get_int within the range of gen's integer key k (gen_int_spec) */
static int get_gen_int(struct ctx *c, yaml_node_t *n, const char *what, int k, int64_t *out)
{
    int64_t lo, hi;
    gen_int_spec(k, &lo, &hi, NULL);
    return get_int(c, n, what, lo, hi, out);
}

static int get_real(struct ctx *c, yaml_node_t *n, const char *what, double *out)
{
    int rc = want_plain(c, n, what, "a number");
    if (rc) return rc;
    char *end, buf[64];
    errno = 0;
    double x = strtod(scalar(n), &end);
    if (errno || end == scalar(n) || *end || !isfinite(x))
        return FAIL(c, n, "%s wants a number, got %s", what, describe(n, buf, sizeof buf));
    *out = x;
    return AB_OK;
}

static int want_list(struct ctx *c, yaml_node_t *n, const char *what, int allow_empty)
{
    char buf[64];
    if (n->type != YAML_SEQUENCE_NODE)
        return FAIL(c, n, "%s wants a list, got %s", what, describe(n, buf, sizeof buf));
    if (!allow_empty && n->data.sequence.items.start == n->data.sequence.items.top)
        return FAIL(c, n, "%s is an empty list", what);
    return AB_OK;
}

#define FOR_ITEMS(c, list, it)                                                                     \
    for (yaml_node_item_t *it##_i = (list)->data.sequence.items.start;                             \
         it##_i < (list)->data.sequence.items.top; it##_i++)                                       \
        for (yaml_node_t *it = node_at((c), *it##_i); it; it = NULL)

static int n_items(const yaml_node_t *list)
{
    return (int)(list->data.sequence.items.top - list->data.sequence.items.start);
}

/* Names are [A-Za-z0-9._-]+, not starting with '.', shorter than AB_SCENARIO_NAME_CAP. */
static int check_name(struct ctx *c, yaml_node_t *n, const char *what, const char *s)
{
    size_t len = strlen(s);
    int ok = len > 0 && len < AB_SCENARIO_NAME_CAP && s[0] != '.';
    for (size_t i = 0; ok && i < len; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
             (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-';
    if (!ok)
        return FAIL(c, n,
                    "%s '%.80s' must be letters, digits, '.', '_' or '-' (at most %d, not "
                    "starting with '.')",
                    what, s, AB_SCENARIO_NAME_CAP - 1);
    return AB_OK;
}

/* A YAML boolean: plain true / false (also True, False, TRUE, FALSE). */
static int get_bool(struct ctx *c, yaml_node_t *n, const char *what, int *out)
{
    int rc = want_plain(c, n, what, "true or false");
    if (rc) return rc;
    const char *v = scalar(n);
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE")) return *out = 1, AB_OK;
    if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE")) return *out = 0, AB_OK;
    char buf[64];
    return FAIL(c, n, "%s wants true or false, got %s", what, describe(n, buf, sizeof buf));
}

/* The file named by the string node n (relative paths are relative to the scenario's folder),
 * malloc'd into *out; it must exist (AB_E_NOFILE naming the line otherwise). */
/* Collapses "name/../" pairs of a relative or absolute path in place ("scenarios/../../shared/x"
 * -> "../shared/x"), so commands and results name files as a person would write them. */
static void tidy_path(char *p)
{
    for (int changed = 1; changed;) {
        changed = 0;
        for (char *seg = p; *seg;) {
            char *slash = strchr(seg, '/');
            if (!slash) break;
            size_t len = (size_t)(slash - seg);
            int name = len && !(len == 1 && seg[0] == '.') && !(len == 2 && !strncmp(seg, "..", 2));
            if (name && !strncmp(slash, "/../", 4)) {
                memmove(seg, slash + 4, strlen(slash + 4) + 1);
                changed = 1;
                break;
            }
            seg = slash + 1;
        }
    }
}

static int get_file(struct ctx *c, yaml_node_t *n, const char *what, char **out)
{
    const char *rel = NULL;
    int rc = get_str(c, n, what, &rel);
    if (rc) return rc;
    size_t need = strlen(c->dir) + strlen(rel) + 2;
    char *p = malloc(need);
    if (!p) return ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
    if (rel[0] == '/' || !c->dir[0])
        snprintf(p, need, "%s", rel);
    else
        snprintf(p, need, "%s/%s", c->dir, rel);
    struct stat st;
    if (stat(p, &st)) {
        rc = fail_line(c, AB_E_NOFILE, line_of(n), "%s: file '%s' does not exist", what, p);
        free(p);
        return rc;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = FAIL(c, n, "%s: '%s' is a folder, not a file", what, p);
        free(p);
        return rc;
    }
    /* the tidy name when it names the same file (no symbolic link in the collapsed part) */
    char *tidy = strdup(p);
    struct stat st2;
    if (tidy) {
        tidy_path(tidy);
        if (*tidy && !stat(tidy, &st2) && st2.st_ino == st.st_ino && st2.st_dev == st.st_dev)
            strcpy(p, tidy);
        free(tidy);
    }
    *out = p;
    return AB_OK;
}

/* ---- run / report / quick settings ------------------------------------------------------- */

/* A list of registry method names into names[]; `what` names the list. */
static int read_methods(struct ctx *c, yaml_node_t *v, const char *what, const char **names,
                        int *lines, int *n_out)
{
    const char *all_names[AB_SCENARIO_MAX_METHODS];
    int n_all = ab_method_count();
    if (n_all > AB_SCENARIO_MAX_METHODS) n_all = AB_SCENARIO_MAX_METHODS;
    for (int i = 0; i < n_all; i++) all_names[i] = ab_method_at(i)->name;
    int rc = want_list(c, v, what, 0), n = 0;
    if (rc) return rc;
    if (n_items(v) > AB_SCENARIO_MAX_METHODS)
        return FAIL(c, v, "%s names more than %d methods", what, AB_SCENARIO_MAX_METHODS);
    FOR_ITEMS(c, v, it)
    {
        const char *name;
        if ((rc = get_str(c, it, what, &name))) return rc;
        const struct ab_method *m = ab_method_find(name);
        if (!m) {
            const char *near = ab_word_closest(name, all_names, n_all);
            if (near)
                return FAIL(c, it, "unknown method '%s' in %s (did you mean '%s'?)", name, what,
                            near);
            return FAIL(c, it, "unknown method '%s' in %s (see 'attnbench methods')", name, what);
        }
        for (int j = 0; j < n; j++)
            if (names[j] == m->name)
                return FAIL(c, it, "method '%s' is listed twice in %s", name, what);
        if (lines) lines[n] = line_of(it);
        names[n++] = m->name;
    }
    *n_out = n;
    return AB_OK;
}

/* ---- keys read through a command's declared options (core/decl.h) ------------------------ */

/* Reads v, the value of `key` in section `in`, into o through row d of a command's table: a
 * scalar is the value's text and a list its items joined with commas, each item checked on its
 * own first so that a message names the item's line. Numbers must be plain scalars (quoted
 * "4096" is a string). *line (may be NULL) gets v's line. */
static int read_decl(struct ctx *c, const struct ab_decl *d, void *o, const char *key,
                     yaml_node_t *v, const char *in, int *line)
{
    char what[128], buf[64];
    snprintf(what, sizeof what, "'%s' in %s", key, in);
    if (line) *line = line_of(v);
    int number = d->type == AB_DECL_INT || d->type == AB_DECL_REAL ||
                 (d->type == AB_DECL_LIST && d->item_real);
    if (v->type == YAML_MAPPING_NODE || is_null(v))
        return FAIL(c, v, "%s wants %s, got %s", what, d->type == AB_DECL_LIST ? "a list" : "a value",
                    describe(v, buf, sizeof buf));
    if (v->type == YAML_SCALAR_NODE) {
        if (strlen(scalar(v)) != v->data.scalar.length)
            return FAIL(c, v, "%s contains a NUL character", what);
        if (d->type != AB_DECL_LIST && number && v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
            return FAIL(c, v, "%s wants a number, got %s", what, describe(v, buf, sizeof buf));
        if (ab_decl_set(d, o, scalar(v))) return FAIL(c, v, "%s %s", what, ab_errmsg());
        return AB_OK;
    }
    if (d->type != AB_DECL_LIST) return FAIL(c, v, "%s wants one value, got a list", what);
    int rc = want_list(c, v, what, 0);
    if (rc) return rc;
    size_t len = 1;
    FOR_ITEMS(c, v, it)
    {
        if (it->type != YAML_SCALAR_NODE || is_null(it) || strchr(scalar(it), ',') ||
            strlen(scalar(it)) != it->data.scalar.length ||
            (number && it->data.scalar.style != YAML_PLAIN_SCALAR_STYLE))
            return FAIL(c, it, "%s wants a list of %s, got %s", what,
                        number ? "numbers" : "words", describe(it, buf, sizeof buf));
        if (ab_decl_check(d, scalar(it))) return FAIL(c, it, "%s %s", what, ab_errmsg());
        for (yaml_node_item_t *j = v->data.sequence.items.start; j < it_i; j++)
            if (!strcmp(scalar(node_at(c, *j)), scalar(it)))
                return FAIL(c, it, "%s lists '%s' twice", what, scalar(it));
        len += strlen(scalar(it)) + 1;
    }
    char *joined = malloc(len);
    if (!joined) return ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
    joined[0] = 0;
    FOR_ITEMS(c, v, it)
    {
        if (joined[0]) strcat(joined, ",");
        strcat(joined, scalar(it));
    }
    rc = ab_decl_set(d, o, joined);
    free(joined);
    return rc ? FAIL(c, v, "%s %s", what, ab_errmsg()) : AB_OK;
}

/* run's options read from a section (run: or quick:), with the line each came from. */
struct run_read {
    struct ab_run_opts *o;
    unsigned given;           /* rows of ab_run_decl given, bit per row */
    int line[32];             /* their lines */
    int method_line[AB_SCENARIO_MAX_METHODS]; /* the line of each method named */
};

/* Reads run's key `key` (a row of ab_run_decl) into r. Methods are also looked up in the
 * registry here, each with its line, with a did-you-mean for a typo. */
static int read_run_key(struct ctx *c, const char *key, yaml_node_t *v, const char *in,
                        struct run_read *r)
{
    const struct ab_decl *d = ab_decl_find(ab_run_decl, key);
    int row = (int)(d - ab_run_decl), rc;
    if (!strcmp(d->name, "methods") && v->type == YAML_SEQUENCE_NODE) {
        char what[128];
        const char *names[AB_SCENARIO_MAX_METHODS];
        int n;
        snprintf(what, sizeof what, "'%s' in %s", key, in);
        if ((rc = read_methods(c, v, what, names, r->method_line, &n))) return rc;
    }
    if ((rc = read_decl(c, d, r->o, key, v, in, &r->line[row]))) return rc;
    if (!strcmp(d->name, "methods") && v->type == YAML_SCALAR_NODE && r->o->methods) {
        const struct ab_method *m[AB_SCENARIO_MAX_METHODS];
        int n;
        if (ab_methods_resolve(r->o->methods, AB_PHASE_PREFILL | AB_PHASE_DECODE, 0, m,
                               AB_SCENARIO_MAX_METHODS, &n))
            return FAIL(c, v, "'%s' in %s: %s", key, in, ab_errmsg());
        for (int i = 0; i < n; i++) r->method_line[i] = line_of(v);
    }
    r->given |= 1u << row;
    return AB_OK;
}

/* report's options read from a section (report: or quick:), with the line each came from. */
struct report_read {
    struct ab_report_run_opts *o;
    unsigned given; /* rows of ab_report_run_decl given, bit per row */
    int line[32];   /* their lines */
    int maps_line[AB_SCENARIO_MAX_MAPS]; /* the line of each map */
};

/* Reads report's key `key` (a row of ab_report_run_decl) into r. Method names are looked up in
 * the registry item by item first, so that a typo's message names its line. */
static int read_report_key(struct ctx *c, const char *key, yaml_node_t *v, const char *in,
                           struct report_read *r)
{
    const struct ab_decl *d = ab_decl_find(ab_report_run_decl, key);
    int row = (int)(d - ab_report_run_decl), rc, n;
    if ((!strcmp(key, "methods") || !strcmp(key, "map_methods")) &&
        v->type == YAML_SEQUENCE_NODE) {
        char what[128];
        const char *names[AB_SCENARIO_MAX_METHODS];
        snprintf(what, sizeof what, "'%s' in %s", key, in);
        if ((rc = read_methods(c, v, what, names, NULL, &n))) return rc;
    }
    if ((rc = read_decl(c, d, r->o, key, v, in, &r->line[row]))) return rc;
    if (!strcmp(key, "maps")) {
        n = 0;
        if (v->type == YAML_SEQUENCE_NODE) {
            FOR_ITEMS(c, v, it)
            if (n < AB_SCENARIO_MAX_MAPS) r->maps_line[n++] = line_of(it);
        }
        while (n < AB_SCENARIO_MAX_MAPS) r->maps_line[n++] = line_of(v);
    }
    r->given |= 1u << row;
    return AB_OK;
}

/* Every key of map (already checked) that run (run != NULL) or report (rep != NULL) declares:
 * a key both declare ("methods") is run's when run is given. */
static int read_section(struct ctx *c, yaml_node_t *map, const char *in, struct run_read *run,
                        struct report_read *rep)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *key = scalar(node_at(c, p->key));
        yaml_node_t *v = node_at(c, p->value);
        int rc = run && in_list(key, run_keys)      ? read_run_key(c, key, v, in, run)
                 : rep && in_list(key, report_keys) ? read_report_key(c, key, v, in, rep)
                                                    : AB_OK;
        if (rc) return rc;
    }
    return AB_OK;
}

/* The rows of table t given in src (bit per row in given) set into dst, through the rows: a
 * quick: value replaces the file's. AB_OK or AB_E_NOMEM. */
static int overlay(const struct ab_decl *t, void *dst, const void *src, unsigned given)
{
    char text[8192];
    for (const struct ab_decl *d = t; d->name; d++) {
        if (!(given >> (d - t) & 1)) continue;
        int rc = ab_decl_set(d, dst, ab_decl_format(d, src, text, sizeof text));
        if (rc) return rc;
    }
    return AB_OK;
}

/* ---- workloads ----------------------------------------------------------------------------- */

/* One workload entry as written, before sweep expansion. */
struct entry {
    char name[AB_SCENARIO_NAME_CAP];
    int line, source;
    const char *file; /* as written */
    int64_t iv[GI_COUNT];
    int iset[GI_COUNT];
    double rv[GR_COUNT];
    int rset[GR_COUNT];
    const char *preset, *profile, *mix, *probe;
    int full_mask;                  /* gen `full: true` */
    char tasks[256], strength[512]; /* "" when not given */
    /* CAPTURE / IMPORT: owned here until moved into the workload (entry_free frees the rest) */
    struct ab_scenario_capture cap;
    struct ab_scenario_import imp;
    int64_t cap_seed; /* < 0: the scenario's seed */
    int n_sweep;      /* swept keys */
    int sweep_key[GI_COUNT], sweep_n[GI_COUNT];
    int64_t sweep_val[GI_COUNT][MAX_SWEEP_VALUES];
};

static int read_gen(struct ctx *c, yaml_node_t *g, struct entry *e)
{
    char in[160], what[224];
    snprintf(in, sizeof in, "gen of workload '%s'", e->name);
    int rc = check_map(c, g, in, gen_keys, NULL, NULL);
    if (rc) return rc;
    for (yaml_node_pair_t *p = g->data.mapping.pairs.start; p < g->data.mapping.pairs.top; p++) {
        const char *key = scalar(node_at(c, p->key));
        yaml_node_t *v = node_at(c, p->value);
        snprintf(what, sizeof what, "'%s' in %s", key, in);
        int done = 0;
        for (int i = 0; i < GI_COUNT && !done; i++)
            if (!strcmp(key, gen_int_keys[i])) {
                if ((rc = get_gen_int(c, v, what, i, &e->iv[i]))) return rc;
                e->iset[i] = done = 1;
            }
        for (int i = 0; i < GR_COUNT && !done; i++)
            if (!strcmp(key, gen_real_keys[i])) {
                if ((rc = get_real(c, v, what, &e->rv[i]))) return rc;
                e->rset[i] = done = 1;
            }
        if (done) continue;
        if (!strcmp(key, "full")) {
            if ((rc = get_bool(c, v, what, &e->full_mask))) return rc;
        } else if (!strcmp(key, "probe")) {
            if ((rc = get_str(c, v, what, &e->probe))) return rc;
            if (strcmp(e->probe, "repeat"))
                return FAIL(c, v, "unknown probe '%s' in %s (want repeat)", e->probe, in);
        } else if (!strcmp(key, "preset") || !strcmp(key, "profile") || !strcmp(key, "mix")) {
            const char *s;
            if ((rc = get_str(c, v, what, &s))) return rc;
            const char *prev = e->preset    ? "preset"
                               : e->profile ? "profile"
                               : e->mix     ? "mix"
                                            : NULL;
            if (prev) return FAIL(c, v, "%s names both '%s' and '%s': choose one", in, prev, key);
            if (!strcmp(key, "profile") && !ab_profile_find(s)) {
                const char *names[64];
                int np = ab_n_profiles < 64 ? ab_n_profiles : 64;
                for (int i = 0; i < np; i++) names[i] = ab_profiles[i].name;
                const char *near = ab_word_closest(s, names, np);
                return FAIL(c, v, "unknown profile '%s' in %s%s%s%s", s, in,
                            near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
            }
            if (!strcmp(key, "preset"))
                e->preset = s;
            else if (!strcmp(key, "profile"))
                e->profile = s;
            else
                e->mix = s;
        } else if (!strcmp(key, "tasks")) {
            if ((rc = want_list(c, v, what, 0))) return rc;
            size_t used = 0;
            FOR_ITEMS(c, v, it)
            {
                const char *t;
                unsigned bits;
                if ((rc = get_str(c, it, what, &t))) return rc;
                if (ab_gen_parse_tasks(t, &bits) || strchr(t, ','))
                    return FAIL(c, it,
                                "unknown task '%s' in %s (retrieve, multi-retrieve, "
                                "aggregate)",
                                t, in);
                used += (size_t)snprintf(e->tasks + used, sizeof e->tasks - used, "%s%s",
                                         used ? "," : "", t);
                if (used >= sizeof e->tasks) return FAIL(c, v, "%s is too long", what);
            }
        } else if (!strcmp(key, "strength")) {
            const char *comp[AB_COMP_COUNT + 1];
            for (int i = 0; i < AB_COMP_COUNT; i++) comp[i] = ab_component_name(i);
            comp[AB_COMP_COUNT] = NULL;
            char sin[200];
            snprintf(sin, sizeof sin, "strength of workload '%s'", e->name);
            if ((rc = check_map(c, v, sin, comp, NULL, NULL))) return rc;
            size_t used = 0;
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
                 q++) {
                const char *cn = scalar(node_at(c, q->key));
                yaml_node_t *sv = node_at(c, q->value);
                double x;
                snprintf(what, sizeof what, "'%s' in %s", cn, sin);
                if ((rc = get_real(c, sv, what, &x))) return rc;
                if (!(x >= 0 && x <= 100))
                    return FAIL(c, sv, "%s must be in [0, 100] nats, got %s", what, scalar(sv));
                used += (size_t)snprintf(e->strength + used, sizeof e->strength - used,
                                         "%s%s=%.17g", used ? "," : "", cn, x);
                if (used >= sizeof e->strength) return FAIL(c, v, "%s is too long", sin);
            }
        }
    }
    return AB_OK;
}

static int read_sweep(struct ctx *c, yaml_node_t *sw, struct entry *e)
{
    char in[160], what[224];
    snprintf(in, sizeof in, "sweep of workload '%s'", e->name);
    int rc = check_map(c, sw, in, gen_int_keys, NULL, NULL);
    if (rc) return rc;
    if (sw->data.mapping.pairs.start == sw->data.mapping.pairs.top)
        return FAIL(c, sw, "%s is empty", in);
    for (yaml_node_pair_t *p = sw->data.mapping.pairs.start; p < sw->data.mapping.pairs.top; p++) {
        const char *key = scalar(node_at(c, p->key));
        yaml_node_t *v = node_at(c, p->value);
        int k = 0;
        while (strcmp(gen_int_keys[k], key)) k++;
        snprintf(what, sizeof what, "'%s' in %s", key, in);
        if ((rc = want_list(c, v, what, 0))) return rc;
        if (n_items(v) > MAX_SWEEP_VALUES)
            return FAIL(c, v, "%s has more than %d values", what, MAX_SWEEP_VALUES);
        int s = e->n_sweep++, nv = 0;
        e->sweep_key[s] = k;
        FOR_ITEMS(c, v, it)
        {
            int64_t x;
            if ((rc = get_gen_int(c, it, what, k, &x))) return rc;
            for (int j = 0; j < nv; j++)
                if (e->sweep_val[s][j] == x)
                    return FAIL(c, it, "%s lists %lld twice", what, (long long)x);
            e->sweep_val[s][nv++] = x;
        }
        e->sweep_n[s] = nv;
    }
    return AB_OK;
}

static void entry_free(struct entry *e)
{
    free(e->cap.text), free(e->cap.prompt), free(e->cap.tokens), free(e->cap.model),
        free(e->cap.tokenizer);
    for (int i = 0; i < e->imp.n_files; i++) free(e->imp.files[i]);
    free(e->imp.files), free(e->imp.layout), free(e->imp.names), free(e->imp.dtype);
    memset(&e->cap, 0, sizeof e->cap), memset(&e->imp, 0, sizeof e->imp);
}

static char *dup_str(struct ctx *c, const char *s, int *rc)
{
    char *d = strdup(s);
    if (!d) *rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
    return d;
}

/* `capture:` of a workload: one input (text, prompt, tokens, copy_task), generate, hidden,
 * seed; needs the top-level model. */
static int read_capture(struct ctx *c, yaml_node_t *m, struct entry *e)
{
    char in[160], what[224];
    snprintf(in, sizeof in, "capture of workload '%s'", e->name);
    int rc = check_map(c, m, in, capture_keys, NULL, NULL);
    if (rc) return rc;
    e->source = AB_SCENARIO_CAPTURE;
    e->cap.copy_task = e->cap.generate = e->cap_seed = e->cap.offset = e->cap.length = -1;
    yaml_node_t *mv = lookup(c, m, "model");
    if (!c->has_model && !mv)
        return FAIL(c, m, "%s needs a model: the top-level 'model: {path: FILE}' or its own "
                    "'model: FILE'", in);
    if (mv) {
        snprintf(what, sizeof what, "'model' in %s", in);
        if ((rc = get_file(c, mv, what, &e->cap.model))) return rc;
    }
    if ((mv = lookup(c, m, "tokenizer"))) {
        snprintf(what, sizeof what, "'tokenizer' in %s", in);
        if (!lookup(c, m, "model"))
            return FAIL(c, mv, "%s: 'tokenizer' goes with the workload's own 'model'", in);
        if ((rc = get_file(c, mv, what, &e->cap.tokenizer))) return rc;
    }
    static const char *const inputs[] = {"text", "prompt", "tokens", "copy_task"};
    yaml_node_t *given = NULL;
    const char *given_name = NULL;
    for (int i = 0; i < 4; i++) {
        yaml_node_t *v = lookup(c, m, inputs[i]);
        if (!v) continue;
        if (given)
            return FAIL(c, v,
                        "%s has two inputs, '%s' and '%s': give exactly one of text, "
                        "prompt, tokens, copy_task",
                        in, given_name, inputs[i]);
        given = v, given_name = inputs[i];
    }
    if (!given) return FAIL(c, m, "%s needs one input: text, prompt, tokens or copy_task", in);
    yaml_node_t *v;
    const char *str;
    if ((v = lookup(c, m, "text"))) {
        snprintf(what, sizeof what, "'text' in %s", in);
        if ((rc = get_file(c, v, what, &e->cap.text))) return rc;
    }
    if ((v = lookup(c, m, "prompt"))) {
        snprintf(what, sizeof what, "'prompt' in %s", in);
        if ((rc = get_str(c, v, what, &str))) return rc;
        if (!(e->cap.prompt = dup_str(c, str, &rc))) return rc;
    }
    if ((v = lookup(c, m, "tokens"))) {
        /* "1,403,407" or a list of ids */
        char ids[4096];
        size_t used = 0;
        snprintf(what, sizeof what, "'tokens' in %s", in);
        if (v->type == YAML_SEQUENCE_NODE) {
            if ((rc = want_list(c, v, what, 0))) return rc;
            FOR_ITEMS(c, v, it)
            {
                int64_t id;
                if ((rc = get_int(c, it, what, 0, INT32_MAX, &id))) return rc;
                used += (size_t)snprintf(ids + used, sizeof ids - used, "%s%lld", used ? "," : "",
                                         (long long)id);
                if (used >= sizeof ids) return FAIL(c, v, "%s is too long", what);
            }
        } else {
            if ((rc = get_str(c, v, what, &str))) return rc;
            int ok = *str != 0, digit = 0;
            for (const char *p = str; ok && *p; p++) {
                if (*p >= '0' && *p <= '9')
                    digit = 1;
                else if (*p == ',' && digit)
                    digit = 0;
                else
                    ok = 0;
            }
            if (!ok || !digit || strlen(str) >= sizeof ids)
                return FAIL(c, v, "%s wants token ids like \"1,403,407\" or a list, got '%.40s'",
                            what, str);
            snprintf(ids, sizeof ids, "%s", str);
        }
        if (!(e->cap.tokens = dup_str(c, ids, &rc))) return rc;
    }
    if ((v = lookup(c, m, "copy_task"))) {
        snprintf(what, sizeof what, "'copy_task' in %s", in);
        if ((rc = get_int(c, v, what, 1, 1000000, &e->cap.copy_task))) return rc;
    }
    if ((v = lookup(c, m, "generate"))) {
        snprintf(what, sizeof what, "'generate' in %s", in);
        if (e->cap.copy_task > 0)
            return FAIL(c, v, "%s: 'generate' does not go with 'copy_task'", in);
        if ((rc = get_int(c, v, what, 1, 1000000, &e->cap.generate))) return rc;
    }
    if ((v = lookup(c, m, "hidden"))) {
        snprintf(what, sizeof what, "'hidden' in %s", in);
        if ((rc = get_bool(c, v, what, &e->cap.hidden))) return rc;
    }
    if ((v = lookup(c, m, "seed"))) {
        snprintf(what, sizeof what, "'seed' in %s", in);
        if ((rc = get_int(c, v, what, 0, INT64_MAX, &e->cap_seed))) return rc;
    }
    static const char *const win[] = {"offset", "length"};
    for (int i = 0; i < 2; i++) {
        if (!(v = lookup(c, m, win[i]))) continue;
        snprintf(what, sizeof what, "'%s' in %s", win[i], in);
        if (!e->cap.text && !e->cap.tokens)
            return FAIL(c, v, "%s: '%s' takes a window of 'text' or 'tokens'", in, win[i]);
        if ((rc = get_int(c, v, what, i, INT32_MAX, i ? &e->cap.length : &e->cap.offset)))
            return rc;
    }
    return AB_OK;
}

/* `import:` of a workload: the options of `attnbench import`. */
static int read_import(struct ctx *c, yaml_node_t *m, struct entry *e)
{
    char in[160], what[224];
    snprintf(in, sizeof in, "import of workload '%s'", e->name);
    int rc = check_map(c, m, in, import_keys, NULL, NULL);
    if (rc) return rc;
    e->source = AB_SCENARIO_IMPORT;
    e->imp.causal = -1;
    e->imp.scale = NAN;
    yaml_node_t *v = lookup(c, m, "files");
    if (!v) return FAIL(c, m, "%s needs 'files' (the .npy / .npz / .safetensors / .h5 inputs)", in);
    snprintf(what, sizeof what, "'files' in %s", in);
    if ((rc = want_list(c, v, what, 0))) return rc;
    if (n_items(v) > 3) return FAIL(c, v, "%s names more than 3 files (one, or q, k, v)", what);
    if (!(e->imp.files = calloc(3, sizeof(char *))))
        return ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
    FOR_ITEMS(c, v, it)
    {
        if ((rc = get_file(c, it, what, &e->imp.files[e->imp.n_files]))) return rc;
        e->imp.n_files++;
    }
    if ((v = lookup(c, m, "layout"))) {
        /* a permutation of layer, head, seq, dim: a list or "layer,head,seq,dim" */
        static const char *const axes[] = {"layer", "head", "seq", "dim", NULL};
        char buf[64] = "", item[16];
        const char *got[4];
        int n = 0;
        snprintf(what, sizeof what, "'layout' in %s", in);
        if (v->type == YAML_SEQUENCE_NODE) {
            if ((rc = want_list(c, v, what, 0))) return rc;
            FOR_ITEMS(c, v, it)
            {
                const char *a;
                if ((rc = get_str(c, it, what, &a))) return rc;
                if (n == 4 || !in_list(a, axes))
                    return FAIL(c, it,
                                "%s wants the four axes layer, head, seq, dim in some "
                                "order, got '%.20s'",
                                what, a);
                got[n++] = a;
            }
        } else {
            const char *str;
            if ((rc = get_str(c, v, what, &str))) return rc;
            const char *p = str;
            while (*p) {
                size_t len = strcspn(p, ",");
                snprintf(item, sizeof item, "%.*s", (int)(len < 15 ? len : 15), p);
                int k = 0;
                while (axes[k] && strcmp(axes[k], item)) k++;
                if (n == 4 || !axes[k] || len >= 15)
                    return FAIL(c, v,
                                "%s wants the four axes layer, head, seq, dim in some "
                                "order, got '%.40s'",
                                what, str);
                got[n++] = axes[k];
                p += len + (p[len] == ',');
            }
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++)
                if (!strcmp(got[i], got[j]))
                    return FAIL(c, v, "%s names axis '%s' twice", what, got[i]);
        if (n != 4)
            return FAIL(c, v, "%s wants the four axes layer, head, seq, dim, got %d", what, n);
        snprintf(buf, sizeof buf, "%s,%s,%s,%s", got[0], got[1], got[2], got[3]);
        if (!(e->imp.layout = dup_str(c, buf, &rc))) return rc;
    }
    if ((v = lookup(c, m, "names"))) {
        char buf[512];
        size_t used = 0;
        int n = 0;
        snprintf(what, sizeof what, "'names' in %s", in);
        if ((rc = want_list(c, v, what, 0))) return rc;
        if (n_items(v) != 3) return FAIL(c, v, "%s wants three names: [q, k, v]", what);
        FOR_ITEMS(c, v, it)
        {
            const char *a;
            if ((rc = get_str(c, it, what, &a))) return rc;
            if (!*a || strchr(a, ',') || strlen(a) > 150)
                return FAIL(c, it, "%s: '%.40s' is not a tensor name", what, a);
            used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", n++ ? "," : "", a);
        }
        if (!(e->imp.names = dup_str(c, buf, &rc))) return rc;
    }
    if ((v = lookup(c, m, "dtype"))) {
        const char *str;
        snprintf(what, sizeof what, "'dtype' in %s", in);
        if ((rc = get_str(c, v, what, &str))) return rc;
        if (strcmp(str, "bf16") && strcmp(str, "bfloat16"))
            return FAIL(c, v,
                        "%s: only bf16 can be said (other types are read from the files), "
                        "got '%.40s'",
                        what, str);
        if (!(e->imp.dtype = dup_str(c, "bf16", &rc))) return rc;
    }
    if ((v = lookup(c, m, "causal"))) {
        snprintf(what, sizeof what, "'causal' in %s", in);
        if ((rc = get_bool(c, v, what, &e->imp.causal))) return rc;
    }
    if ((v = lookup(c, m, "scale"))) {
        snprintf(what, sizeof what, "'scale' in %s", in);
        if ((rc = get_real(c, v, what, &e->imp.scale))) return rc;
        if (!(e->imp.scale > 0)) return FAIL(c, v, "%s must be above 0", what);
    }
    return AB_OK;
}

static int read_entry(struct ctx *c, yaml_node_t *w, int index, struct entry *e)
{
    char in[160], buf[64];
    memset(e, 0, sizeof *e);
    e->line = line_of(w);
    if (w->type != YAML_MAPPING_NODE)
        return FAIL(c, w, "workloads entry %d wants a map of keys, got %s", index + 1,
                    describe(w, buf, sizeof buf));
    /* the name first, so every later message can use it */
    yaml_node_t *nn = NULL;
    for (yaml_node_pair_t *p = w->data.mapping.pairs.start; p < w->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key);
        if (k->type == YAML_SCALAR_NODE && !strcmp(scalar(k), "name")) nn = node_at(c, p->value);
    }
    if (!nn) return FAIL(c, w, "workloads entry %d has no 'name'", index + 1);
    snprintf(in, sizeof in, "workloads entry %d", index + 1);
    const char *name;
    int rc = get_str(c, nn, "'name' of a workload", &name);
    if (!rc) rc = check_name(c, nn, "workload name", name);
    if (rc) return rc;
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(in, sizeof in, "workload '%s'", name);
    if ((rc = check_map(c, w, in, workload_keys, "gen", gen_keys))) return rc;

    yaml_node_t *gen = lookup(c, w, "gen"), *file = lookup(c, w, "file");
    yaml_node_t *sweep = lookup(c, w, "sweep");
    yaml_node_t *cap = lookup(c, w, "capture"), *imp = lookup(c, w, "import");
    yaml_node_t *src[4] = {gen, file, cap, imp};
    static const char *const src_name[4] = {"gen", "file", "capture", "import"};
    int n_src = 0, first = -1;
    for (int i = 0; i < 4; i++)
        if (src[i]) {
            if (n_src++)
                return FAIL(c, src[i], "%s has both '%s' and '%s': choose one", in, src_name[first],
                            src_name[i]);
            first = i;
        }
    if (!n_src) return FAIL(c, w, "%s needs one of 'gen', 'file', 'capture' or 'import'", in);
    if ((cap || imp) && sweep)
        return FAIL(c, sweep, "%s: 'sweep' applies to gen workloads only", in);
    if (cap) return read_capture(c, cap, e);
    if (imp) return read_import(c, imp, e);
    if (file) {
        e->source = AB_SCENARIO_FILE;
        if (sweep) return FAIL(c, sweep, "%s: 'sweep' applies to gen workloads only", in);
        return get_str(c, file, "'file' of a workload", &e->file);
    }
    e->source = AB_SCENARIO_GEN;
    if ((rc = read_gen(c, gen, e))) return rc;
    if (sweep) {
        if ((rc = read_sweep(c, sweep, e))) return rc;
        for (int s = 0; s < e->n_sweep; s++)
            if (e->iset[e->sweep_key[s]])
                return FAIL(c, sweep, "%s sets '%s' in gen and sweeps it too: choose one", in,
                            gen_int_keys[e->sweep_key[s]]);
    }
    return AB_OK;
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

/* Resolves the entry's gen options (sweep point applied) into w and checks them with the
 * generator's validation (cheap: no Q/K/V). */
static int make_gen(struct ctx *c, const struct entry *e, const int64_t *iv, const int *iset,
                    uint64_t seed, struct ab_scenario_workload *w)
{
    w->source = AB_SCENARIO_GEN;
    w->line = e->line;
    int64_t v[GI_COUNT];
    for (int i = 0; i < GI_COUNT; i++)
        if (iset[i])
            v[i] = iv[i];
        else
            gen_int_spec(i, NULL, NULL, &v[i]);
    w->layers = v[GI_LAYERS], w->heads = v[GI_HEADS], w->kv_heads = v[GI_KV_HEADS];
    w->n = v[GI_N], w->d = v[GI_D], w->dv = v[GI_DV] > 0 ? v[GI_DV] : w->d;
    w->slash_period = v[GI_SLASH], w->n_tasks = v[GI_NTASKS], w->task_rows = v[GI_TASKROWS];
    w->codes = v[GI_CODES];
    w->seed = iset[GI_SEED] ? (uint64_t)iv[GI_SEED] : seed;
    w->theta = e->rset[GR_THETA] ? e->rv[GR_THETA] : NAN;
    w->depth_min = e->rset[GR_DEPTH_MIN] ? e->rv[GR_DEPTH_MIN] : NAN;
    w->depth_max = e->rset[GR_DEPTH_MAX] ? e->rv[GR_DEPTH_MAX] : NAN;
    w->preset = dup_or_null(e->preset), w->profile = dup_or_null(e->profile);
    w->mix = dup_or_null(e->mix), w->tasks = dup_or_null(e->tasks);
    w->strength = dup_or_null(e->strength);
    w->probe = dup_or_null(e->probe);
    w->full_mask = e->full_mask;
    if ((e->preset && !w->preset) || (e->profile && !w->profile) || (e->mix && !w->mix) ||
        (e->tasks[0] && !w->tasks) || (e->strength[0] && !w->strength) || (e->probe && !w->probe))
        return ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);

    /* the options `gen` would build from the command line */
    struct ab_gen_opts g;
    ab_gen_defaults(&g);
    g.n_layer = w->layers, g.n_head = w->heads, g.n_kv_head = w->kv_heads, g.n_seq = w->n;
    g.d = w->d, g.d_v = w->dv, g.seed = w->seed;
    g.preset = w->preset, g.profile = w->profile, g.mix = w->mix;
    if (!isnan(w->theta)) g.rope_theta = w->theta;
    if (w->slash_period > 0) g.slash_period = (int)w->slash_period;
    if (w->n_tasks > 0) g.n_tasks = w->n_tasks;
    if (w->task_rows > 0) g.task_rows = w->task_rows;
    if (w->codes > 0) g.n_code = w->codes;
    if (!isnan(w->depth_min)) g.depth_min = w->depth_min;
    if (!isnan(w->depth_max)) g.depth_max = w->depth_max;
    if (w->probe && ab_gen_repeat_block(w->n) < 2)
        return fail_line(c, AB_E_DATA, e->line,
                         "workload '%s': probe repeat needs n of at least 9, got %lld", w->name,
                         (long long)w->n);
    if (w->probe && w->slash_period <= 0) g.slash_period = (int)ab_gen_repeat_block(w->n);
    int rc = AB_OK;
    if (w->strength) rc = ab_gen_parse_strengths(w->strength, g.strength);
    if (!rc && w->tasks) rc = ab_gen_parse_tasks(w->tasks, &g.tasks);
    struct ab_gen_plan plan;
    if (!rc) {
        rc = ab_gen_plan_make(&g, &plan);
        if (!rc) ab_gen_plan_free(&plan);
    }
    if (rc) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", ab_errmsg());
        return fail_line(c, rc == AB_E_USAGE ? AB_E_DATA : rc, e->line, "workload '%s': %s",
                         w->name, detail);
    }
    return AB_OK;
}

static int make_file(struct ctx *c, const struct entry *e, struct ab_scenario_workload *w)
{
    w->source = AB_SCENARIO_FILE;
    w->line = e->line;
    size_t need = strlen(c->dir) + strlen(e->file) + 2;
    w->path = malloc(need);
    if (!w->path) return ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
    if (e->file[0] == '/' || !c->dir[0])
        snprintf(w->path, need, "%s", e->file);
    else
        snprintf(w->path, need, "%s/%s", c->dir, e->file);
    struct stat st;
    if (stat(w->path, &st))
        return fail_line(c, AB_E_NOFILE, e->line, "workload '%s': file '%s' does not exist",
                         w->name, w->path);
    struct ab_workload meta;
    memset(&meta, 0, sizeof meta);
    int rc = ab_h5_workload_read_meta(w->path, &meta);
    if (rc) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", ab_errmsg());
        ab_workload_free(&meta);
        return fail_line(c, rc, e->line, "workload '%s': %s", w->name, detail);
    }
    w->layers = meta.n_layer, w->heads = meta.n_head, w->kv_heads = meta.n_kv_head;
    w->n = meta.n_seq, w->d = meta.d, w->dv = meta.d_v;
    w->seed = meta.seed;
    w->slash_period = w->n_tasks = w->task_rows = w->codes = -1;
    w->theta = w->depth_min = w->depth_max = NAN;
    ab_workload_free(&meta);
    return AB_OK;
}

/* A capture or import workload: moves the entry's options into w, with the quick sizes. Its
 * shape is known once written (layers, heads, n: -1), except the length of a copy task. */
static void make_real(struct entry *e, int64_t q_generate, int64_t q_copy, uint64_t seed,
                      struct ab_scenario_workload *w)
{
    w->source = e->source;
    w->line = e->line;
    w->capture = e->cap, w->import = e->imp;
    memset(&e->cap, 0, sizeof e->cap), memset(&e->imp, 0, sizeof e->imp);
    if (q_generate > 0 && w->capture.generate > 0) w->capture.generate = q_generate;
    if (q_copy > 0 && w->capture.copy_task > 0) w->capture.copy_task = q_copy;
    w->seed = e->cap_seed >= 0 ? (uint64_t)e->cap_seed : seed;
    w->layers = w->heads = w->kv_heads = w->n = w->d = w->dv = -1;
    if (w->source == AB_SCENARIO_CAPTURE && w->capture.copy_task > 0)
        w->n = 2 * w->capture.copy_task + 1;
    w->slash_period = w->n_tasks = w->task_rows = w->codes = -1;
    w->theta = w->depth_min = w->depth_max = NAN;
}

/* Expands every entry (sweep points, quick overrides) into s->workloads. */
static int expand_workloads(struct ctx *c, struct entry *entries, int n_entries,
                            const int64_t *q_iv, const int *q_iset, int64_t q_generate,
                            int64_t q_copy, struct ab_scenario *s)
{
    int total = 0;
    for (int i = 0; i < n_entries; i++) {
        struct entry *e = &entries[i];
        if (e->source == AB_SCENARIO_GEN)
            for (int k = 0; k < GI_COUNT; k++)
                if (q_iset[k]) {
                    e->iv[k] = q_iv[k], e->iset[k] = 1;
                    /* a quick override replaces a sweep over the same key */
                    for (int t = 0; t < e->n_sweep; t++)
                        if (e->sweep_key[t] == k) {
                            memmove(&e->sweep_key[t], &e->sweep_key[t + 1],
                                    (size_t)(e->n_sweep - t - 1) * sizeof e->sweep_key[0]);
                            memmove(&e->sweep_n[t], &e->sweep_n[t + 1],
                                    (size_t)(e->n_sweep - t - 1) * sizeof e->sweep_n[0]);
                            memmove(&e->sweep_val[t], &e->sweep_val[t + 1],
                                    (size_t)(e->n_sweep - t - 1) * sizeof e->sweep_val[0]);
                            e->n_sweep--;
                        }
                }
        int points = 1;
        for (int t = 0; t < e->n_sweep; t++) {
            points *= e->sweep_n[t];
            if (points > AB_SCENARIO_MAX_WORKLOADS) break;
        }
        total += points;
        if (points > AB_SCENARIO_MAX_WORKLOADS || total > AB_SCENARIO_MAX_WORKLOADS)
            return fail_line(c, AB_E_DATA, e->line, "more than %d workloads after expanding sweeps",
                             AB_SCENARIO_MAX_WORKLOADS);
    }
    s->workloads = calloc((size_t)total, sizeof *s->workloads);
    if (!s->workloads) return ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);

    for (int i = 0; i < n_entries; i++) {
        struct entry *e = &entries[i];
        int points = 1;
        for (int t = 0; t < e->n_sweep; t++) points *= e->sweep_n[t];
        for (int p = 0; p < points; p++) {
            struct ab_scenario_workload *w = &s->workloads[s->n_workloads++];
            int64_t iv[GI_COUNT];
            int iset[GI_COUNT];
            memcpy(iv, e->iv, sizeof iv);
            memcpy(iset, e->iset, sizeof iset);
            /* point p in mixed radix, the first swept key varying slowest */
            size_t used = (size_t)snprintf(w->name, sizeof w->name, "%s", e->name);
            int rest = p, stride = points;
            for (int t = 0; t < e->n_sweep; t++) {
                stride /= e->sweep_n[t];
                int64_t x = e->sweep_val[t][rest / stride];
                rest %= stride;
                iv[e->sweep_key[t]] = x, iset[e->sweep_key[t]] = 1;
                if (used < sizeof w->name)
                    used += (size_t)snprintf(w->name + used, sizeof w->name - used, "-%s%lld",
                                             gen_int_keys[e->sweep_key[t]], (long long)x);
            }
            if (used >= sizeof w->name)
                return fail_line(c, AB_E_DATA, e->line,
                                 "workload name '%s-...' is longer than %d characters after "
                                 "expanding the sweep",
                                 e->name, AB_SCENARIO_NAME_CAP - 1);
            for (int j = 0; j < s->n_workloads - 1; j++)
                if (!strcmp(s->workloads[j].name, w->name))
                    return fail_line(c, AB_E_DATA, e->line,
                                     "two workloads are named '%s' (the other on line %d)", w->name,
                                     s->workloads[j].line);
            if (e->source == AB_SCENARIO_CAPTURE || e->source == AB_SCENARIO_IMPORT) {
                make_real(e, q_generate, q_copy, s->seed, w);
                continue;
            }
            int rc = e->source == AB_SCENARIO_FILE ? make_file(c, e, w)
                                                   : make_gen(c, e, iv, iset, s->seed, w);
            if (rc) return rc;
        }
    }
    return AB_OK;
}

/* ---- the whole file ------------------------------------------------------------------------ */

static int read_text(const char *path, char **text, size_t *len)
{
    struct stat st;
    if (stat(path, &st))
        return errno == ENOENT ? ab_fail(AB_E_NOFILE, "'%s': no such file", path)
                               : ab_fail(AB_E_IO, "'%s': %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return ab_fail(AB_E_DATA, "'%s': is a folder, not a scenario", path);
    FILE *f = fopen(path, "rb");
    if (!f) return ab_fail(AB_E_IO, "cannot open '%s': %s", path, strerror(errno));
    char *buf = malloc(MAX_TEXT + 1);
    if (!buf) {
        fclose(f);
        return ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
    }
    size_t n = fread(buf, 1, MAX_TEXT + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return ab_fail(AB_E_IO, "'%s': read error", path);
    }
    if (n > MAX_TEXT) {
        free(buf);
        return ab_fail(AB_E_DATA, "'%s': larger than %d bytes, not a scenario file", path,
                       MAX_TEXT);
    }
    buf[n] = 0;
    *text = buf, *len = n;
    return AB_OK;
}

/* libyaml's complaint as one line: its problem, where, and what it was parsing. */
static int yaml_problem(const struct ctx *c, const yaml_parser_t *p, const char *text)
{
    int line;
    if (p->error == YAML_READER_ERROR) { /* an offset, not a mark */
        line = 1;
        for (size_t i = 0; i < p->problem_offset && text[i]; i++) line += text[i] == '\n';
    } else {
        line = (int)p->problem_mark.line + 1;
    }
    if (p->error == YAML_MEMORY_ERROR) return ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
    if (p->context)
        return fail_line(c, AB_E_DATA, line, "malformed YAML: %s (%s started on line %d)",
                         p->problem ? p->problem : "syntax error", p->context,
                         (int)p->context_mark.line + 1);
    return fail_line(c, AB_E_DATA, line, "malformed YAML: %s",
                     p->problem ? p->problem : "syntax error");
}

/* Reads the `heads:` section (a map, `heads: {}` for the defaults) into s. */
static int read_heads(struct ctx *c, yaml_node_t *v, struct ab_scenario *s)
{
    char buf[64];
    if (v->type != YAML_MAPPING_NODE)
        return FAIL(c, v, "heads wants a map of keys ('heads: {}' for the defaults), got %s",
                    describe(v, buf, sizeof buf));
    int rc = check_map(c, v, "heads", heads_keys, "run", run_keys);
    if (rc) return rc;
    s->has_heads = 1;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        const char *key = scalar(node_at(c, p->key));
        if ((rc = read_decl(c, ab_decl_find(ab_heads_run_decl, key), &s->heads, key,
                            node_at(c, p->value), "heads", NULL)))
            return rc;
    }
    return AB_OK;
}

/* The top-level `plugins: FILE` or `plugins: [FILE, ...]`: each resolved against the scenario's
 * folder and loaded now (lib/methods/plugin.c), so the keys after it may name the plugins' rows;
 * a plugin that is refused fails at its line. s->plugins gets the comma list. */
static int read_plugins(struct ctx *c, yaml_node_t *v, struct ab_scenario *s)
{
    yaml_node_t *one[1] = {v};
    yaml_node_t **items = one;
    int n = 1, rc = AB_OK;
    if (v->type == YAML_SEQUENCE_NODE) {
        n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
        items = malloc(sizeof *items * (size_t)(n ? n : 1));
        if (!items) return ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
        for (int i = 0; i < n; i++)
            items[i] = node_at(c, v->data.sequence.items.start[i]);
        if (!n) rc = FAIL(c, v, "'plugins' lists no file");
    }
    size_t len = 0;
    for (int i = 0; i < n && !rc; i++) {
        char *path = NULL;
        if ((rc = get_file(c, items[i], "'plugins'", &path))) break;
        if (strchr(path, ',')) {
            rc = FAIL(c, items[i], "'plugins': a file name with a comma ('%s') cannot be listed", path);
        } else if ((rc = ab_plugin_load(path))) {
            rc = fail_line(c, rc, line_of(items[i]), "plugins: %s", ab_errmsg());
        } else {
            char *joined = realloc(s->plugins, len + strlen(path) + 2);
            if (!joined) {
                rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
            } else {
                s->plugins = joined;
                len += (size_t)sprintf(s->plugins + len, "%s%s", len ? "," : "", path);
            }
        }
        free(path);
    }
    if (items != one) free(items);
    return rc;
}

/* The top-level `model: {path: FILE, tokenizer: FILE}`. */
static int read_model(struct ctx *c, yaml_node_t *v, struct ab_scenario *s)
{
    int rc = check_map(c, v, "model", model_keys, NULL, NULL);
    if (rc) return rc;
    yaml_node_t *x = lookup(c, v, "path");
    if (!x) return FAIL(c, v, "model needs 'path' (a llama2.c checkpoint or GGUF file)");
    if ((rc = get_file(c, x, "'path' in model", &s->model))) return rc;
    if ((x = lookup(c, v, "tokenizer")) &&
        (rc = get_file(c, x, "'tokenizer' in model", &s->tokenizer)))
        return rc;
    c->has_model = 1;
    return AB_OK;
}

/* The lines an eval_model entry's keys came from, kept until the quick overrides are applied
 * and checked. */
struct eval_read {
    int line;
    int row_line[32];                         /* of each row of ab_eval_run_decl given */
    int method_line[AB_SCENARIO_MAX_METHODS]; /* of each method named */
};

/* Reads key `key` of section `in` (shown as `shown`) into o through eval-model's row `name`;
 * methods are looked up in the registry item by item first. */
static int read_eval_key(struct ctx *c, const char *name, const char *shown, yaml_node_t *v,
                         const char *in, struct ab_eval_run_opts *o, struct eval_read *er)
{
    const struct ab_decl *d = ab_decl_find(ab_eval_run_decl, name);
    int rc, n;
    if (!strcmp(name, "methods") && v->type == YAML_SEQUENCE_NODE) {
        char what[160];
        const char *names[AB_SCENARIO_MAX_METHODS];
        snprintf(what, sizeof what, "'%s' in %s", shown, in);
        if ((rc = read_methods(c, v, what, names, er->method_line, &n))) return rc;
    } else if (!strcmp(name, "methods")) {
        for (int i = 0; i < AB_SCENARIO_MAX_METHODS; i++) er->method_line[i] = line_of(v);
    }
    return read_decl(c, d, o, shown, v, in, &er->row_line[d - ab_eval_run_decl]);
}

/* Sets eval-model's row `name` of o to text (a value the scenario resolved: a file, a list). */
static int eval_set(struct ctx *c, yaml_node_t *v, struct ab_eval_run_opts *o, const char *name,
                    const char *text, const char *what)
{
    if (ab_decl_set(ab_decl_find(ab_eval_run_decl, name), o, text))
        return FAIL(c, v, "%s %s", what, ab_errmsg());
    return AB_OK;
}

/* A head count or a list of them ("k: 4" or "k: [1, 2, 4, 8]") as "1,2,4,8" (malloc'd). */
static int get_counts(struct ctx *c, yaml_node_t *v, const char *what, char **out)
{
    char list[512];
    size_t used = 0;
    int rc;
    int64_t k;
    if (v->type != YAML_SEQUENCE_NODE) {
        if ((rc = get_int(c, v, what, 1, 100000, &k))) return rc;
        snprintf(list, sizeof list, "%lld", (long long)k);
    } else {
        if ((rc = want_list(c, v, what, 1))) return rc;
        if (n_items(v) > 16) return FAIL(c, v, "%s has more than 16 counts", what);
        FOR_ITEMS(c, v, it)
        {
            if ((rc = get_int(c, it, what, 1, 100000, &k))) return rc;
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%lld", used ? "," : "",
                                     (long long)k);
        }
    }
    *out = dup_str(c, list, &rc);
    return *out ? AB_OK : rc;
}

/* One eval_model entry: inputs, eval-model's options, one head choice. */
static int read_eval(struct ctx *c, yaml_node_t *m, int index, struct ab_scenario *s,
                     struct ab_scenario_eval *ev, struct eval_read *er)
{
    char in[96], what[192], buf[64];
    snprintf(in, sizeof in, "eval_model entry %d", index + 1);
    ev->line = er->line = line_of(m);
    struct ab_eval_run_opts *o = &ev->o;
    int rc = ab_decl_defaults(ab_eval_run_decl, o);
    if (rc) return ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
    if (m->type != YAML_MAPPING_NODE)
        return FAIL(c, m, "%s wants a map of keys, got %s", in, describe(m, buf, sizeof buf));
    if ((rc = check_map(c, m, in, eval_keys, NULL, NULL))) return rc;
    if (!c->has_model)
        return FAIL(c, m, "%s needs the top-level 'model: {path: FILE}' to evaluate", in);
    yaml_node_t *v;
    if ((v = lookup(c, m, "text"))) {
        char *path;
        snprintf(what, sizeof what, "'text' in %s", in);
        if ((rc = get_file(c, v, what, &path))) return rc;
        rc = eval_set(c, v, o, "text", path, what);
        free(path);
        if (rc) return rc;
    }
    /* the keys that are eval-model's options as they are */
    static const char *const plain[] = {"copy_task",      "methods",  "budgets",   "phases",
                                        "decode_queries", "stride",   "window_bos",
                                        "decode_horizon", "kv_budget", "bytes_budget"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if ((v = lookup(c, m, plain[i])) &&
            (rc = read_eval_key(c, plain[i], plain[i], v, in, o, er)))
            return rc;
    if (!o->text && !o->copy_task)
        return FAIL(c, m, "%s needs an input: text and/or copy_task", in);
    /* one head choice: heads, heads_select, or any of heads_top / heads_bottom / heads_random */
    static const char *const choice[] = {"heads", "heads_select", "heads_top", "heads_bottom",
                                         "heads_random"};
    const char *chosen = NULL;
    for (int i = 0; i < 5; i++) {
        if (!(v = lookup(c, m, choice[i]))) continue;
        if (chosen && (i < 2 || strncmp(chosen, "heads_", 6) || !strcmp(chosen, "heads_select")))
            return FAIL(c, v, "%s has both '%s' and '%s': choose one way to pick heads", in, chosen,
                        choice[i]);
        chosen = choice[i];
    }
    if ((v = lookup(c, m, "heads"))) {
        char list[4096];
        size_t used = 0;
        snprintf(what, sizeof what, "'heads' in %s", in);
        if ((rc = want_list(c, v, what, 0))) return rc;
        FOR_ITEMS(c, v, it)
        {
            const char *h;
            int64_t l, hh;
            if ((rc = get_str(c, it, what, &h))) return rc;
            const char *end;
            if (ab_layer_head(h, &l, &hh, &end) || *end)
                return FAIL(c, it, "head '%s' in %s is not LAYER:HEAD (e.g. \"1:2\")", h, in);
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%lld:%lld",
                                     used ? "," : "", (long long)l, (long long)hh);
            if (used >= sizeof list) return FAIL(c, v, "%s is too long", what);
        }
        ev->heads_kind = AB_SCENARIO_HEADS_LIST;
        if ((rc = eval_set(c, v, o, "heads", list, what))) return rc;
    }
    for (int bottom = 0; bottom < 2; bottom++) {
        if (!(v = lookup(c, m, bottom ? "heads_bottom" : "heads_top"))) continue;
        snprintf(what, sizeof what, "%s of %s", bottom ? "heads_bottom" : "heads_top", in);
        if ((rc = check_map(c, v, what, heads_top_keys, NULL, NULL))) return rc;
        if (!s->has_heads)
            return FAIL(c, v,
                        "%s ranks the heads of DIR/heads.h5: the scenario needs a "
                        "'heads:' section (heads: {} for the defaults)",
                        what);
        yaml_node_t *k = lookup(c, v, "k"), *sc = lookup(c, v, "score");
        if (!k || !sc) return FAIL(c, v, "%s needs 'k' and 'score'", what);
        char w2[224], *counts;
        snprintf(w2, sizeof w2, "'k' in %s", what);
        if ((rc = get_counts(c, k, w2, &counts))) return rc;
        rc = eval_set(c, k, o, bottom ? "heads-bottom" : "heads-top", counts, w2);
        free(counts);
        if (rc) return rc;
        snprintf(w2, sizeof w2, "'score' in %s", what);
        const char *col;
        if ((rc = get_str(c, sc, w2, &col))) return rc;
        int n_cols, found = 0, n_num = 0;
        const struct ab_column *cols = ab_results_head_columns(&n_cols);
        const char *num[128];
        for (int i = 0; i < n_cols; i++)
            if (cols[i].type == AB_COL_F64) {
                found |= !strcmp(cols[i].name, col);
                if (n_num < 127) num[n_num++] = cols[i].name;
            }
        num[n_num] = NULL;
        if (!found) {
            const char *near = ab_word_closest(col, num, -1);
            return FAIL(c, sc, "%s: '%s' is not a numeric column of the /heads table%s%s%s", w2,
                        col, near ? " (did you mean '" : " (e.g. induction_score, out_dev)",
                        near ? near : "", near ? "'?)" : "");
        }
        if (o->heads_score && strcmp(o->heads_score, col))
            return FAIL(c, sc, "%s: heads_top and heads_bottom of one entry rank by one score "
                        "('%s' and '%s')", in, o->heads_score, col);
        ev->heads_kind = AB_SCENARIO_HEADS_RANKED;
        if ((rc = eval_set(c, sc, o, "heads-score", col, w2))) return rc;
    }
    if ((v = lookup(c, m, "heads_random"))) {
        char *counts;
        snprintf(what, sizeof what, "'heads_random' in %s", in);
        if ((rc = get_counts(c, v, what, &counts))) return rc;
        rc = eval_set(c, v, o, "heads-random", counts, what);
        free(counts);
        if (rc) return rc;
        ev->heads_kind = AB_SCENARIO_HEADS_RANKED;
    }
    if ((v = lookup(c, m, "heads_select"))) {
        snprintf(what, sizeof what, "heads_select of %s", in);
        if ((rc = check_map(c, v, what, heads_select_keys, NULL, NULL))) return rc;
        yaml_node_t *cf = lookup(c, v, "calibrate"), *cc = lookup(c, v, "calibrate_copy");
        yaml_node_t *mn = lookup(c, v, "min");
        if (!cf == !cc)
            return FAIL(c, v,
                        "%s needs exactly one of 'calibrate: FILE' and "
                        "'calibrate_copy: R'",
                        what);
        char w2[224];
        if (cf) {
            char *path;
            snprintf(w2, sizeof w2, "'calibrate' in %s", what);
            if ((rc = get_file(c, cf, w2, &path))) return rc;
            rc = eval_set(c, cf, o, "calibrate", path, w2);
            free(path);
            if (rc) return rc;
        } else if ((rc = read_eval_key(c, "calibrate-copy", "calibrate_copy", cc, what, o, er))) {
            return rc;
        }
        if (mn && (rc = read_eval_key(c, "select-min", "min", mn, what, o, er))) return rc;
        o->heads_select = 1;
        ev->heads_kind = AB_SCENARIO_HEADS_SELECT;
    }
    return AB_OK;
}

/* Applies quick's overrides to an eval_model entry (copy tasks of q_copy tokens; quick's
 * eval_methods and eval_budgets, read into q, rows given in q_given) and checks that every
 * method supports the causal mask (a model is causal) and each of the entry's phases. */
static int resolve_eval(struct ctx *c, struct ab_scenario_eval *ev, struct eval_read *er,
                        const struct ab_eval_run_opts *q, const struct eval_read *qr,
                        unsigned q_given, int64_t q_copy, int quick)
{
    struct ab_eval_run_opts *o = &ev->o;
    const struct ab_decl *t = ab_eval_run_decl;
    const int row_methods = (int)(ab_decl_find(t, "methods") - t),
              row_dq = (int)(ab_decl_find(t, "decode-queries") - t),
              row_dh = (int)(ab_decl_find(t, "decode-horizon") - t);
    int rc;
    if (quick) {
        if (q_copy > 0 && o->copy_task > 0) o->copy_task = q_copy;
        if (q_copy > 0 && o->calibrate_copy > 0) o->calibrate_copy = q_copy;
        if ((rc = overlay(t, o, q, q_given))) return ab_fail(rc, "'%s': %s", c->path, ab_errmsg());
        if (q_given >> row_methods & 1)
            memcpy(er->method_line, qr->method_line, sizeof er->method_line);
    }
    ev->phases = ab_phases_parse(o->phases);
    const struct ab_method *m[AB_SCENARIO_MAX_METHODS];
    int n = 0;
    if (o->methods && ab_methods_resolve(o->methods, AB_PHASE_PREFILL | AB_PHASE_DECODE, 0, m,
                                         AB_SCENARIO_MAX_METHODS, &n))
        return fail_line(c, AB_E_DATA, er->row_line[row_methods], "%s", ab_errmsg());
    for (int i = 0; i < n; i++) {
        int line = er->method_line[i] ? er->method_line[i] : er->line;
        if (!(m[i]->masks & AB_MASKS_CAUSAL))
            return fail_line(c, AB_E_DATA, line,
                             "method '%s' in eval_model does not support the causal mask of a "
                             "language model",
                             m[i]->name);
        for (unsigned ph = AB_PHASE_PREFILL; ph <= AB_PHASE_DECODE; ph <<= 1)
            if ((ev->phases & ph) && !(m[i]->phases & ph))
                return fail_line(c, AB_E_DATA, line,
                                 "method '%s' in eval_model has no %s phase (split the entry "
                                 "by phase)",
                                 m[i]->name, ph == AB_PHASE_PREFILL ? "prefill" : "decode");
    }
    int64_t dq = o->decode_queries;
    if (o->decode_horizon < dq)
        return fail_line(c, AB_E_DATA, er->row_line[row_dh] ? er->row_line[row_dh] : er->line,
                         "decode_horizon %lld of eval_model is below its %lld decode queries",
                         (long long)o->decode_horizon, (long long)dq);
    if ((ev->phases & AB_PHASE_DECODE) && o->copy_task > 0 && dq >= 2 * o->copy_task + 1)
        return fail_line(c, AB_E_DATA, er->row_line[row_dq] ? er->row_line[row_dq] : er->line,
                         "decode_queries %lld of eval_model must be below the %lld tokens of "
                         "its copy task",
                         (long long)dq, (long long)(2 * o->copy_task + 1));
    return AB_OK;
}

/* Reads the top level of a loaded document into s. */
static int read_document(struct ctx *c, int quick, struct ab_scenario *s)
{
    yaml_node_t *root = yaml_document_get_root_node(&c->doc);
    char buf[64];
    if (!root || is_null(root))
        return ab_fail(AB_E_DATA, "'%s': empty file (want 'schema: %s' and a study)", c->path,
                       AB_SCENARIO_SCHEMA);
    if (root->type != YAML_MAPPING_NODE)
        return FAIL(c, root, "the top level wants a map of keys, got %s",
                    describe(root, buf, sizeof buf));
    /* the schema before anything else: another version may have other keys */
    yaml_node_t *v = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(c, p->key);
        if (k->type == YAML_SCALAR_NODE && !strcmp(scalar(k), "schema")) v = node_at(c, p->value);
    }
    if (!v)
        return FAIL(c, root, "missing key 'schema' (this attnbench reads 'schema: %s')",
                    AB_SCENARIO_SCHEMA);
    if (v->type != YAML_SCALAR_NODE || strcmp(scalar(v), AB_SCENARIO_SCHEMA))
        return FAIL(c, v, "schema %s is not supported (this attnbench reads '%s')",
                    describe(v, buf, sizeof buf), AB_SCENARIO_SCHEMA);
    int rc = check_map(c, root, "the top level", top_keys, "run", run_keys);
    if (rc) return rc;

    const char *str;
    if (!(v = lookup(c, root, "name"))) return FAIL(c, root, "missing key 'name' at the top level");
    if ((rc = get_str(c, v, "'name'", &str)) || (rc = check_name(c, v, "scenario name", str)))
        return rc;
    snprintf(s->name, sizeof s->name, "%s", str);
    if ((v = lookup(c, root, "description"))) {
        if ((rc = get_str(c, v, "'description'", &str))) return rc;
        s->description = strdup(str);
    } else {
        s->description = strdup("");
    }
    if (!s->description) return ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
    int64_t x;
    s->seed = 1;
    if ((v = lookup(c, root, "seed"))) {
        if ((rc = get_int(c, v, "'seed'", 0, INT64_MAX, &x))) return rc;
        s->seed = (uint64_t)x;
    }
    if ((v = lookup(c, root, "threads"))) {
        if ((rc = get_int(c, v, "'threads'", 0, 4096, &x))) return rc;
        s->threads = x;
    }
    if ((v = lookup(c, root, "model")) && (rc = read_model(c, v, s))) return rc;
    if ((v = lookup(c, root, "plugins")) && (rc = read_plugins(c, v, s))) return rc;

    /* run and report, then quick (always checked, applied when asked) */
    struct run_read *rr = calloc(1, sizeof *rr), *qr = calloc(1, sizeof *qr);
    struct report_read *pr = calloc(1, sizeof *pr), *qp = calloc(1, sizeof *qp);
    struct ab_run_opts *qrun = calloc(1, sizeof *qrun);
    struct ab_report_run_opts *qrep = calloc(1, sizeof *qrep);
    struct ab_eval_run_opts *qe = calloc(1, sizeof *qe);
    struct eval_read *qer = calloc(1, sizeof *qer);
    unsigned qe_given = 0;
    struct entry *entries = NULL;
    struct eval_read *ers = NULL;
    int n_entries = 0;
    int64_t q_generate = -1, q_copy = -1;
    if (!rr || !qr || !pr || !qp || !qrun || !qrep || !qe || !qer ||
        ab_decl_defaults(ab_run_decl, qrun) || ab_decl_defaults(ab_report_run_decl, qrep) ||
        ab_decl_defaults(ab_eval_run_decl, qe)) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
        goto done;
    }
    rr->o = &s->run, qr->o = qrun, pr->o = &s->report, qp->o = qrep;
    int64_t q_iv[GI_COUNT] = {0};
    int q_iset[GI_COUNT] = {0};
    if ((v = lookup(c, root, "run")) &&
        ((rc = check_map(c, v, "run", run_keys, "report", report_keys)) ||
         (rc = read_section(c, v, "run", rr, NULL))))
        goto done;
    if ((v = lookup(c, root, "heads")) && (rc = read_heads(c, v, s))) goto done;
    s->has_run = lookup(c, root, "run") != NULL || !s->has_heads;
    if ((v = lookup(c, root, "report")) &&
        ((rc = check_map(c, v, "report", report_keys, "run", run_keys)) ||
         (rc = read_section(c, v, "report", NULL, pr))))
        goto done;
    if ((v = lookup(c, root, "quick"))) {
        if ((rc = check_map(c, v, "quick", quick_keys, NULL, NULL)) ||
            (rc = read_section(c, v, "quick", qr, qp)))
            goto done;
        for (int k = 0; k < GI_COUNT; k++) {
            yaml_node_t *qv = lookup(c, v, gen_int_keys[k]);
            char what[64];
            snprintf(what, sizeof what, "'%s' in quick", gen_int_keys[k]);
            if (qv && (rc = get_gen_int(c, qv, what, k, &q_iv[k]))) goto done;
            q_iset[k] = qv != NULL;
        }
        yaml_node_t *qv;
        if ((qv = lookup(c, v, "generate")) &&
            (rc = get_int(c, qv, "'generate' in quick", 1, 1000000, &q_generate)))
            goto done;
        if ((qv = lookup(c, v, "copy_task")) &&
            (rc = get_int(c, qv, "'copy_task' in quick", 1, 1000000, &q_copy)))
            goto done;
        static const char *const q_eval[2][2] = {{"eval_methods", "methods"},
                                                 {"eval_budgets", "budgets"}};
        for (int k = 0; k < 2; k++) {
            if (!(qv = lookup(c, v, q_eval[k][0]))) continue;
            if ((rc = read_eval_key(c, q_eval[k][1], q_eval[k][0], qv, "quick", qe, qer)))
                goto done;
            qe_given |= 1u << (ab_decl_find(ab_eval_run_decl, q_eval[k][1]) - ab_eval_run_decl);
        }
    }
    s->quick = quick != 0;
    if (!quick) {
        memset(q_iset, 0, sizeof q_iset);
        q_generate = q_copy = -1;
    } else {
        /* quick's run and report keys replace the file's, through the same rows */
        if ((rc = overlay(ab_run_decl, &s->run, qrun, qr->given)) ||
            (rc = overlay(ab_report_run_decl, &s->report, qrep, qp->given)))
            goto done;
        for (int row = 0; row < 32; row++) {
            if (qr->given >> row & 1) rr->line[row] = qr->line[row];
            if (qp->given >> row & 1) pr->line[row] = qp->line[row];
        }
        rr->given |= qr->given, pr->given |= qp->given;
        if (qr->given >> (ab_decl_find(ab_run_decl, "methods") - ab_run_decl) & 1)
            memcpy(rr->method_line, qr->method_line, sizeof rr->method_line);
        if (qp->given >> (ab_decl_find(ab_report_run_decl, "maps") - ab_report_run_decl) & 1)
            memcpy(pr->maps_line, qp->maps_line, sizeof pr->maps_line);
    }

    /* workloads */
    if (!(v = lookup(c, root, "workloads"))) {
        rc = FAIL(c, root, "missing key 'workloads' at the top level");
        goto done;
    }
    if ((rc = want_list(c, v, "'workloads'", 0))) goto done;
    n_entries = n_items(v);
    int i = 0;
    if (n_entries > AB_SCENARIO_MAX_WORKLOADS) {
        rc = FAIL(c, v, "more than %d workloads", AB_SCENARIO_MAX_WORKLOADS);
        goto done;
    }
    entries = calloc((size_t)n_entries, sizeof *entries);
    if (!entries) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
        goto done;
    }
    FOR_ITEMS(c, v, it)
    {
        if ((rc = read_entry(c, it, i, &entries[i]))) goto done;
        i++;
    }
    if ((rc = expand_workloads(c, entries, n_entries, q_iv, q_iset, q_generate, q_copy, s)))
        goto done;

    /* eval_model: a map or a list of maps, after heads (heads_top needs it) */
    if ((v = lookup(c, root, "eval_model"))) {
        char buf2[64];
        int n_ev = v->type == YAML_SEQUENCE_NODE ? n_items(v) : 1;
        if (v->type != YAML_SEQUENCE_NODE && v->type != YAML_MAPPING_NODE) {
            rc = FAIL(c, v, "eval_model wants a map or a list of maps, got %s",
                      describe(v, buf2, sizeof buf2));
            goto done;
        }
        if (v->type == YAML_SEQUENCE_NODE && (rc = want_list(c, v, "'eval_model'", 0))) goto done;
        if (n_ev > AB_SCENARIO_MAX_EVALS) {
            rc = FAIL(c, v, "more than %d eval_model entries", AB_SCENARIO_MAX_EVALS);
            goto done;
        }
        s->evals = calloc((size_t)n_ev, sizeof *s->evals);
        ers = calloc((size_t)n_ev, sizeof *ers);
        if (!s->evals || !ers) {
            rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
            goto done;
        }
        if (v->type == YAML_MAPPING_NODE) {
            s->n_evals = 1;
            if ((rc = read_eval(c, v, 0, s, &s->evals[0], &ers[0]))) goto done;
        } else {
            FOR_ITEMS(c, v, it)
            {
                int k = s->n_evals++;
                if ((rc = read_eval(c, it, k, s, &s->evals[k], &ers[k]))) goto done;
            }
        }
        for (int k = 0; k < s->n_evals; k++)
            if ((rc = resolve_eval(c, &s->evals[k], &ers[k], qe, qer, qe_given, q_copy, quick)))
                goto done;
    }

    /* the plugins reach every step that names methods, so each step's command line and
     * recorded options carry them */
    if (s->plugins) {
        free(s->run.plugins), free(s->report.plugins);
        s->run.plugins = strdup(s->plugins), s->report.plugins = strdup(s->plugins);
        int ok = s->run.plugins && s->report.plugins;
        for (int k = 0; k < s->n_evals; k++) {
            free(s->evals[k].o.plugins);
            ok &= (s->evals[k].o.plugins = strdup(s->plugins)) != NULL;
        }
        if (!ok) {
            rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", c->path);
            goto done;
        }
    }

    /* resolved settings, defaults filled in, and the cross-checks */
    /* run's options: its own checks ran as each key was read; here the ones across keys */
    const int row_methods = (int)(ab_decl_find(ab_run_decl, "methods") - ab_run_decl),
              row_dq = (int)(ab_decl_find(ab_run_decl, "decode-queries") - ab_run_decl),
              row_dh = (int)(ab_decl_find(ab_run_decl, "decode-horizon") - ab_run_decl);
    const struct ab_run_opts *ro = &s->run;
    s->run_phases = ab_phases_parse(ro->phases);
    if (ro->methods) {
        const struct ab_method *all[AB_SCENARIO_MAX_METHODS];
        int n_all = 0;
        if (ab_methods_resolve(ro->methods, AB_PHASE_PREFILL | AB_PHASE_DECODE, 0, all,
                               AB_SCENARIO_MAX_METHODS, &n_all)) {
            rc = fail_line(c, AB_E_DATA, rr->line[row_methods], "%s", ab_errmsg());
            goto done;
        }
        for (int m = 0; m < n_all; m++)
            if (!(all[m]->phases & s->run_phases)) {
                rc = fail_line(c, AB_E_DATA, rr->method_line[m] ? rr->method_line[m] : rr->line[row_methods],
                               "method '%s' has no %s phase", all[m]->name,
                               s->run_phases == AB_PHASE_PREFILL ? "prefill" : "decode");
                goto done;
            }
    }
    if (ro->decode_horizon < ro->decode_queries) {
        rc = fail_line(c, AB_E_DATA, rr->line[row_dh] ? rr->line[row_dh] : rr->line[row_dq],
                       "decode_horizon %lld is below the %lld decode queries it stands for",
                       (long long)ro->decode_horizon, (long long)ro->decode_queries);
        goto done;
    }
    if (s->has_run && (s->run_phases & AB_PHASE_DECODE))
        for (int w = 0; w < s->n_workloads; w++)
            if (s->workloads[w].n > 0 && ro->decode_queries >= s->workloads[w].n) {
                rc = fail_line(c, AB_E_DATA, rr->line[row_dq] ? rr->line[row_dq] : s->workloads[w].line,
                               "decode_queries %lld must be below the length %lld of workload "
                               "'%s'",
                               (long long)ro->decode_queries, (long long)s->workloads[w].n,
                               s->workloads[w].name);
                goto done;
            }
    /* a capture or import's shape is known once written: report checks its maps */
    const struct ab_scenario_workload *w0 = &s->workloads[0];
    int n_map = 0;
    for (const char *m = s->report.maps; m && *m && w0->layers > 0; n_map++) {
        int64_t l, h;
        ab_layer_head(m, &l, &h, &m); /* checked by report's row */
        m += *m == ',';
        if (l >= w0->layers || h >= w0->heads) {
            rc = fail_line(c, AB_E_DATA, pr->maps_line[n_map < AB_SCENARIO_MAX_MAPS ? n_map : 0],
                           "map '%lld:%lld' is outside workload '%s' (%lld layers x %lld heads)",
                           (long long)l, (long long)h, w0->name, (long long)w0->layers,
                           (long long)w0->heads);
            goto done;
        }
    }
    rc = AB_OK;
done:
    free(rr);
    free(qr);
    free(pr);
    free(qp);
    free(qer);
    if (qrun) ab_decl_free(ab_run_decl, qrun);
    if (qrep) ab_decl_free(ab_report_run_decl, qrep);
    if (qe) ab_decl_free(ab_eval_run_decl, qe);
    free(qrun);
    free(qrep);
    free(qe);
    free(ers);
    for (int k = 0; entries && k < n_entries; k++) entry_free(&entries[k]);
    free(entries);
    return rc;
}

/* libyaml's scanner keeps a possible simple key per flow level and revisits them all at every
 * token, so [[[[...]]]] costs time quadratic in its depth (a 100 KB file: 8 s, 200 KB: half a
 * minute) before our schema sees it. A scenario nests a few levels; deeper flow nesting is
 * refused from the raw text first. Returns the line where the depth passes MAX_FLOW_DEPTH, or
 * 0. Quoted scalars and comments are skipped. */
enum { MAX_FLOW_DEPTH = 64 };
static int64_t flow_too_deep(const char *t, size_t n)
{
    int depth = 0;
    int64_t line = 1;
    char quote = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        if (ch == '\n') line++;
        if (quote) { /* inside '...' ('' escapes) or "..." (backslash escapes) */
            if (quote == '"' && ch == '\\') i++;
            else if (ch == quote) quote = 0;
            continue;
        }
        if (ch == '#' && (i == 0 || t[i - 1] == ' ' || t[i - 1] == '\t' || t[i - 1] == '\n')) {
            while (i < n && t[i] != '\n') i++;
            if (i < n) line++;
            continue;
        }
        if ((ch == '"' || ch == '\'') && (i == 0 || strchr(" \t\n[{,:-", t[i - 1]))) quote = ch;
        else if (ch == '[' || ch == '{') {
            if (++depth > MAX_FLOW_DEPTH) return line;
        } else if ((ch == ']' || ch == '}') && depth > 0)
            depth--;
    }
    return 0;
}

int ab_scenario_load(const char *path, int quick, struct ab_scenario *out)
{
    return ab_scenario_load_set(path, quick, NULL, 0, out);
}

/* Appends the overrides to the scenario's text as comments, so the copy saved with the
 * outputs (and recorded in the results) says what was run; the digest follows. */
static int note_sets(struct ab_scenario *s, const char *const *sets, int n_sets)
{
    size_t len = s->text_len + 128;
    for (int i = 0; i < n_sets; i++) len += strlen(sets[i]) + 16;
    char *t = malloc(len);
    if (!t) return ab_fail(AB_E_NOMEM, "out of memory");
    size_t used = (size_t)snprintf(t, len, "%s%s# overridden on the command line (scenario --set):\n",
                                   s->text, s->text_len && s->text[s->text_len - 1] != '\n' ? "\n" : "");
    for (int i = 0; i < n_sets; i++) {
        used += (size_t)snprintf(t + used, len - used, "# --set ");
        for (const char *p = sets[i]; *p; p++) t[used++] = *p == '\n' ? ' ' : *p;
        t[used++] = '\n';
        t[used] = 0;
    }
    free(s->text);
    s->text = t, s->text_len = used;
    ab_sha256_hex(s->text, s->text_len, s->sha256);
    return AB_OK;
}

int ab_scenario_load_set(const char *path, int quick, const char *const *sets, int n_sets,
                         struct ab_scenario *out)
{
    memset(out, 0, sizeof *out);
    pthread_once(&run_keys_once, run_keys_init);
    if (ab_decl_defaults(ab_run_decl, &out->run)) return ab_fail(AB_E_NOMEM, "out of memory");
    if (ab_decl_defaults(ab_heads_run_decl, &out->heads) ||
        ab_decl_defaults(ab_report_run_decl, &out->report))
        return ab_fail(AB_E_NOMEM, "out of memory");
    out->path = strdup(path);
    if (!out->path) return ab_fail(AB_E_NOMEM, "out of memory");
    int rc = read_text(path, &out->text, &out->text_len);
    if (rc) return rc;
    ab_sha256_hex(out->text, out->text_len, out->sha256);

    struct ctx *c = calloc(1, sizeof *c);
    if (!c) return ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
    c->path = path;
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(c->dir, sizeof c->dir, "%.*s", (int)(slash - path + (slash == path)), path);

    int64_t deep_line = flow_too_deep(out->text, out->text_len);
    if (deep_line) {
        free(c);
        return ab_fail(AB_E_DATA, "'%s' line %lld: lists or maps nested more than %d deep in [ ] "
                       "or { }: not a scenario", path, (long long)deep_line, MAX_FLOW_DEPTH);
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        free(c);
        return ab_fail(AB_E_NOMEM, "'%s': cannot start the YAML parser", path);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)out->text, out->text_len);
    if (!yaml_parser_load(&parser, &c->doc)) {
        rc = yaml_problem(c, &parser, out->text);
        yaml_parser_delete(&parser);
        free(c);
        return rc;
    }
    /* one document only: a second one is a mistake, not something to ignore */
    yaml_document_t next;
    if (!yaml_parser_load(&parser, &next)) {
        rc = yaml_problem(c, &parser, out->text);
    } else {
        yaml_node_t *r2 = yaml_document_get_root_node(&next);
        if (r2)
            rc = fail_line(c, AB_E_DATA, line_of(r2),
                           "a second YAML document ('---'): a scenario is one document");
        yaml_document_delete(&next);
    }
    c->sets = sets, c->n_sets = n_sets;
    if (!rc && n_sets) rc = ab_scenario_apply_sets(&c->doc, path, sets, n_sets);
    if (!rc) rc = read_document(c, quick, out);
    if (!rc && n_sets) rc = note_sets(out, sets, n_sets);
    yaml_document_delete(&c->doc);
    yaml_parser_delete(&parser);
    free(c);
    return rc;
}

void ab_scenario_free(struct ab_scenario *s)
{
    ab_decl_free(ab_run_decl, &s->run);
    ab_decl_free(ab_heads_run_decl, &s->heads);
    ab_decl_free(ab_report_run_decl, &s->report);
    for (int i = 0; s->workloads && i < s->n_workloads; i++) {
        struct ab_scenario_workload *w = &s->workloads[i];
        free(w->path);
        free(w->preset);
        free(w->profile);
        free(w->mix);
        free(w->tasks);
        free(w->strength);
        free(w->probe);
        free(w->capture.text), free(w->capture.prompt), free(w->capture.tokens);
        free(w->capture.model), free(w->capture.tokenizer);
        for (int k = 0; k < w->import.n_files; k++) free(w->import.files[k]);
        free(w->import.files), free(w->import.layout), free(w->import.names);
        free(w->import.dtype);
    }
    free(s->workloads);
    for (int i = 0; s->evals && i < s->n_evals; i++) {
        ab_decl_free(ab_eval_run_decl, &s->evals[i].o);
    }
    free(s->evals);
    free(s->plugins);
    free(s->model);
    free(s->tokenizer);
    free(s->path);
    free(s->text);
    free(s->description);
    memset(s, 0, sizeof *s);
}

/* Writes len bytes to path through a temporary beside it (ab_outfile). */
static int write_atomic(const char *path, const void *data, size_t len)
{
    struct ab_outfile out;
    int rc = ab_outfile_open(&out, path);
    if (rc) return rc;
    if (len) fwrite(data, 1, len, out.f); /* a short write leaves the stream's error flag */
    return ab_outfile_commit(&out);
}

int ab_scenario_save(const struct ab_scenario *s, const char *path, const char *sha_path)
{
    int rc = write_atomic(path, s->text, s->text_len);
    if (rc || !sha_path) return rc;
    const char *base = strrchr(path, '/');
    char line[4300];
    int len = snprintf(line, sizeof line, "%s  %s\n", s->sha256, base ? base + 1 : path);
    if ((size_t)len >= sizeof line) {
        unlink(path);
        return ab_fail(AB_E_CREATE, "'%s': path too long", sha_path);
    }
    if ((rc = write_atomic(sha_path, line, (size_t)len))) unlink(path);
    return rc;
}
