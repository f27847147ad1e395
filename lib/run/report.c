/* report.c - `attnbench report` as a library call (see report.h): the options table, the checks
 * before any file is read, and the report itself (lib/report). */
#include "run/report.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/list.h"
#include "methods/method.h"
#include "report/report.h"

/* NULL when item reads LAYER:HEAD, else what it should be. */
static const char *map_item(const char *item)
{
    int64_t l, h;
    const char *end;
    return ab_layer_head(item, &l, &h, &end) || *end ? "a LAYER:HEAD pair of non-negative integers"
                                                      : NULL;
}

#define ROW(f) AB_DECL_ROW(struct ab_report_run_opts, f)
const struct ab_decl ab_report_run_decl[] = {
    {"plugin", AB_DECL_LIST, ROW(plugins), NULL, 0, 0, "SO",
     "the plugin whose rows the results name (repeatable; plugins/README.md)",
     .flags = AB_DECL_CLI | AB_DECL_INPUT | AB_DECL_APPEND},
    {"methods", AB_DECL_LIST, ROW(methods), NULL, 0, 0, "LIST",
     "report only these methods (and dense, the reference); with --family: either"},
    {"family", AB_DECL_LIST, ROW(family), NULL, 0, 0, "LIST",
     "report only these families: static, dynamic, kv, linear, calibration",
     .choices = ab_report_families},
    {"workload", AB_DECL_STR, ROW(workload), NULL, 0, 0, "W.h5",
     "workload of the attention maps (default: the first one the results record, if found)",
     .flags = AB_DECL_CLI | AB_DECL_INPUT},
    {"maps", AB_DECL_LIST, ROW(maps), NULL, 0, 0, "L:H,...",
     "heads to draw (default: where the best methods fail worst, and a task head)",
     .item_check = map_item},
    {"by-workload", AB_DECL_FLAG, ROW(by_workload), NULL, 0, 0, NULL,
     "also draw the frontiers of each workload alone (frontier-<family>-<workload>.png)"},
    {"map-methods", AB_DECL_LIST, ROW(map_methods), NULL, 0, 0, "LIST",
     "methods whose kept mask is drawn on the maps (default: the best of each phase)"},
    {"budget", AB_DECL_REAL, ROW(budget), "0.125", 0, 1, "R",
     "FLOP ratio of heatmaps, maps and failing heads (the nearest run one)", .lo_open = 1},
    {"map-size", AB_DECL_INT, ROW(map_size), "512", 8, 8192, "N", "largest map side in pixels"},
    {"floor", AB_DECL_REAL, ROW(floor), "1e-6", 0, 1, "P", "probability drawn darkest in maps",
     .lo_open = 1, .hi_open = 1},
    {"study", AB_DECL_STR, ROW(study), NULL, 0, 0, "NAME",
     "open report.md with the findings of a study: streaming-llm, sink-emergence, "
     "retrieval-heads, sparse-frontier", .choices = ab_report_studies},
    {"bench", AB_DECL_STR, ROW(bench), NULL, 0, 0, "B.h5",
     "a table of `bench methods`: its measured speed against FLOPs in report.md (speed.png)",
     .flags = AB_DECL_CLI | AB_DECL_INPUT},
    {"gnuplot", AB_DECL_STR, ROW(gnuplot), "gnuplot", 0, 0, "PROG",
     "gnuplot program (a name on PATH or a path)", .flags = AB_DECL_CLI},
    {"o", AB_DECL_STR, ROW(out), NULL, 0, 0, "DIR", "report folder to write (created when missing)",
     .flags = AB_DECL_CLI | AB_DECL_OUTPUT},
    {0},
};
#undef ROW

enum { MAX_MAPS = 64, MAX_NAMES = 256 };

/* The registry rows of a checked comma list into names[0..*n) (the rows' own names). */
static int names_of(const char *list, const char *opt, int selects, const char **names, int *n,
                    char **own)
{
    const struct ab_method *m[MAX_NAMES];
    if (!selects && strcmp(list, "all")) { /* --methods: external methods of the results too */
        int unknown = 0;
        *n = 0;
        for (const char *s = list; *s && *n < MAX_NAMES;) {
            size_t len = strcspn(s, ",");
            char item[128];
            snprintf(item, sizeof item, "%.*s", (int)AB_MIN(len, sizeof item - 1), s);
            unknown |= !ab_method_find(item);
            s += len + (s[len] == ',');
        }
        if (unknown) { /* names in a copy (*own, the caller frees it), checked later against the
                          cells (ab_report_check_filter) */
            char *buf = *own = strdup(list);
            if (!buf) return ab_fail(AB_E_NOMEM, "out of memory");
            for (char *s = buf, *save = NULL; *n < MAX_NAMES && (s = strtok_r(s, ",", &save));
                 s = NULL)
                names[(*n)++] = s;
            return AB_OK;
        }
    }
    int rc = ab_methods_resolve(list, AB_PHASE_PREFILL | AB_PHASE_DECODE, 0, m, MAX_NAMES, n);
    if (rc) return ab_fail(rc, "report: option '--%s': %s", opt, ab_errmsg());
    for (int i = 0; i < *n; i++) {
        if (selects && !(m[i]->flags & AB_METHOD_SELECTS))
            return ab_fail(AB_E_USAGE, "report: method '%s' keeps no set of keys, so it has no "
                           "mask to draw", m[i]->name);
        names[i] = m[i]->name;
    }
    return AB_OK;
}

/* The comma list of `family` (checked by its row) into names[0..*n), pointers into list. */
static int split(char *list, const char **names, int cap)
{
    int n = 0;
    for (char *s = list, *save = NULL; n < cap && (s = strtok_r(s, ",", &save)); s = NULL)
        names[n++] = s;
    return n;
}

int ab_report_run(const struct ab_report_run_opts *o, const char *tail,
                  void (*on_file)(void *user, const char *path), void *user)
{
    if (o->n_results < 1) return ab_fail(AB_E_USAGE, "report: name at least one results file");
    int prc = ab_plugins_load(o->plugins);
    if (prc) return prc;
    if (!o->out || !*o->out) return ab_fail(AB_E_USAGE, "report: name the folder with -o DIR");
    char dir[4096]; /* without trailing slashes: "-o report/" names report/report.md */
    if (snprintf(dir, sizeof dir, "%s", o->out) >= (int)sizeof dir)
        return ab_fail(AB_E_USAGE, "report: the folder name is too long");
    for (size_t dl = strlen(dir); dl > 1 && dir[dl - 1] == '/';) dir[--dl] = 0;

    struct ab_report_opts ro;
    ab_report_defaults(&ro);
    ro.dir = dir, ro.by_workload = o->by_workload, ro.workload = o->workload;
    ro.budget = o->budget, ro.map_size = o->map_size, ro.map_floor = o->floor;
    ro.study = o->study, ro.bench = o->bench, ro.gnuplot = o->gnuplot;
    ro.on_file = on_file, ro.user = user;

    const char *methods[MAX_NAMES], *map_methods[MAX_NAMES], *families[8];
    char *own = NULL; /* --methods naming external methods: the names' storage */
    char *fam = o->family ? strdup(o->family) : NULL;
    int64_t pairs[2 * MAX_MAPS];
    int rc = o->family && !fam ? ab_fail(AB_E_NOMEM, "out of memory") : AB_OK;
    if (!rc && o->methods) rc = names_of(o->methods, "methods", 0, methods, &ro.n_methods, &own);
    if (!rc && o->map_methods)
        rc = names_of(o->map_methods, "map-methods", 1, map_methods, &ro.n_map_methods, NULL);
    ro.methods = methods, ro.map_methods = map_methods;
    ro.n_families = fam ? split(fam, families, 8) : 0, ro.families = families;
    for (const char *s = o->maps; !rc && s && *s; ro.n_maps++) {
        if (ro.n_maps == MAX_MAPS) rc = ab_fail(AB_E_USAGE, "report: at most %d --maps", MAX_MAPS);
        ab_layer_head(s, &pairs[2 * ro.n_maps], &pairs[2 * ro.n_maps + 1], &s); /* checked */
        s += *s == ',';
    }
    ro.maps = pairs;

    /* report.md records the command line that gives these options */
    char *line = rc ? NULL : ab_decl_command("report", ab_report_run_decl, o, o->results,
                                             o->n_results, tail);
    if (!rc && !line) rc = ab_fail(AB_E_NOMEM, "out of memory");
    ro.command_line = line;
    struct ab_report_data d;
    memset(&d, 0, sizeof d);
    if (!rc) rc = ab_report_load(o->results, o->n_results, &d);
    if (!rc) rc = ab_report_write(&d, &ro);
    ab_report_data_free(&d);
    free(line);
    free(fam);
    free(own);
    return rc;
}
