/* report.c - `attnbench report RESULTS.h5... -o DIR`: a self-contained report folder (figures
 * and attention maps through gnuplot, viridis heatmaps through libpng, CSV tables, report.md)
 * from one or more results files (outputs.md, "Reports"; the contents are listed in
 * lib/report/report.h). Prints one line, "report: DIR/report.md (N figures, M files)"; --verbose
 * lists the path of every file written. Exit 69 when gnuplot is missing: the
 * .gp/.tsv (.bin) files, heatmaps, tables and report.md are written all the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/list.h"
#include "report/gnuplot.h"
#include "report/report.h"
#include "methods/method.h"
#include "opts.h"

static const char *usage_text =
    "attnbench report RESULTS.h5... -o DIR [--methods a,b,...] [--family static,kv,...]\n"
    "                 [--workload W.h5] [--maps L:H,L:H] [--map-methods a,b] [--budget R]\n"
    "                 [--map-size N] [--study NAME] [--bench B.h5] [--gnuplot PROG]";

enum { MAX_INPUTS = 256, MAX_MAPS = 64, MAX_MAP_METHODS = 32, MAX_FILTER = 128 };

/* A comma list into names[0..*n) (at most MAX_FILTER). Returns 0 or an exit status (message
 * printed). */
static int parse_names(const char *s, const char *opt, char (*names)[64], const char **ptrs,
                       int *n)
{
    int rc;
    *n = 0;
    while ((rc = ab_list_next(&s, 0, names[*n], sizeof names[0], NULL, opt)) == 1) {
        if (*n == MAX_FILTER - 1)
            return ab_cmd_error(EX_AB_USAGE, "report: at most %d names in %s", MAX_FILTER - 1,
                                opt);
        ptrs[*n] = names[*n];
        (*n)++;
    }
    if (rc < 0) return ab_cmd_fail(rc);
    if (!*n) return ab_cmd_error(EX_AB_USAGE, "report: %s is empty", opt);
    return 0;
}

/* The files the report wrote: listed under --verbose, counted for the one-line summary. */
struct written {
    int64_t files, figures;
    int md; /* report.md was written */
};

static void on_file(void *user, const char *path)
{
    struct written *w = user;
    size_t len = strlen(path);
    w->files++;
    w->figures += len > 4 && !strcmp(path + len - 4, ".png");
    w->md |= !strcmp(ab_path_base(path), "report.md");
    ab_out_file(path);
}

/* "L:H,L:H" into pairs. Returns 0 or an exit status (message printed). */
static int parse_maps(const char *s, int64_t *pairs, int *n)
{
    char name[32];
    double head;
    int rc;
    *n = 0;
    while ((rc = ab_list_next(&s, ':', name, sizeof name, &head, "--maps")) == 1) {
        char *end;
        long long layer = strtoll(name, &end, 10);
        if (*end || end == name || layer < 0 || head < 0 || head != (double)(int64_t)head)
            return ab_cmd_error(EX_AB_USAGE, "report: --maps wants LAYER:HEAD pairs of "
                                             "non-negative integers, got '%s:%g'", name, head);
        if (*n == MAX_MAPS) return ab_cmd_error(EX_AB_USAGE, "report: at most %d --maps", MAX_MAPS);
        pairs[2 * *n] = layer, pairs[2 * *n + 1] = (int64_t)head;
        (*n)++;
    }
    if (rc < 0) return ab_cmd_fail(rc);
    if (!*n) return ab_cmd_error(EX_AB_USAGE, "report: --maps is empty");
    return 0;
}

int cmd_report(int argc, char **argv)
{
    struct ab_report_opts ro;
    ab_report_defaults(&ro);
    const char *maps = NULL, *map_methods = NULL, *methods = NULL, *families = NULL;
    int64_t map_size = ro.map_size;
    const struct ab_opt opts[] = {
        {"o", AB_OPT_STRING, &ro.dir, "DIR", "report folder to write (created when missing)"},
        {"methods", AB_OPT_STRING, &methods, "LIST",
         "report only these methods (and dense, the reference); with --family: either"},
        {"family", AB_OPT_STRING, &families, "LIST",
         "report only these families: static, dynamic, kv, linear, calibration"},
        {"workload", AB_OPT_STRING, &ro.workload, "W.h5",
         "workload of the attention maps (default: the first one the results record, if found)"},
        {"maps", AB_OPT_STRING, &maps, "L:H,...",
         "heads to draw (default: where the best methods fail worst, and a task head)"},
        {"by-workload", AB_OPT_FLAG, &ro.by_workload, NULL,
         "also draw the frontiers of each workload alone (frontier-<family>-<workload>.png)"},
        {"map-methods", AB_OPT_STRING, &map_methods, "LIST",
         "methods whose kept mask is drawn on the maps (default: the best of each phase)"},
        {"budget", AB_OPT_DOUBLE, &ro.budget, "R",
         "FLOP ratio of heatmaps, maps and failing heads (default 0.125; the nearest run one)"},
        {"map-size", AB_OPT_INT, &map_size, "N", "largest map side in pixels (default 512)"},
        {"floor", AB_OPT_DOUBLE, &ro.map_floor, "P", "probability drawn darkest in maps (1e-6)"},
        {"study", AB_OPT_STRING, &ro.study, "NAME",
         "open report.md with the findings of a study: streaming-llm, sink-emergence, "
         "retrieval-heads, sparse-frontier"},
        {"bench", AB_OPT_STRING, &ro.bench, "B.h5",
         "a table of `bench methods`: its measured speed against FLOPs in report.md (speed.png)"},
        {"gnuplot", AB_OPT_STRING, &ro.gnuplot, "PROG",
         "gnuplot program (default: gnuplot on PATH)"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[MAX_INPUTS];
    int n_pos, st = ab_opts_parse("report", usage_text, opts, argc, argv, pos, MAX_INPUTS, &n_pos);
    if (st >= 0) return st;
    if (!n_pos) return ab_cmd_error(EX_AB_USAGE, "report: name at least one results file");
    if (!ro.dir || !*ro.dir)
        return ab_cmd_error(EX_AB_USAGE, "report: name the folder with -o DIR");
    char dir[4096]; /* without trailing slashes: "-o report/" names report/report.md */
    if (snprintf(dir, sizeof dir, "%s", ro.dir) >= (int)sizeof dir)
        return ab_cmd_error(EX_AB_USAGE, "report: the folder name is too long");
    for (size_t dl = strlen(dir); dl > 1 && dir[dl - 1] == '/';) dir[--dl] = 0;
    ro.dir = dir;
    if (!(ro.budget > 0 && ro.budget <= 1))
        return ab_cmd_error(EX_AB_USAGE, "report: --budget %g is not a FLOP ratio in (0, 1]",
                            ro.budget);
    if (map_size < 8 || map_size > 8192)
        return ab_cmd_error(EX_AB_USAGE, "report: --map-size %lld is outside 8..8192",
                            (long long)map_size);
    if (!(ro.map_floor > 0 && ro.map_floor < 1))
        return ab_cmd_error(EX_AB_USAGE, "report: --floor %g is not between 0 and 1", ro.map_floor);
    ro.map_size = map_size;
    if (ro.study) {
        int k = 0;
        while (ab_report_studies[k] && strcmp(ab_report_studies[k], ro.study)) k++;
        if (!ab_report_studies[k])
            return ab_cmd_error(EX_AB_USAGE, "report: unknown study '%s' (streaming-llm, "
                                "sink-emergence, retrieval-heads, sparse-frontier)", ro.study);
    }

    static char method_names[MAX_FILTER][64], family_names[MAX_FILTER][64];
    static const char *method_p[MAX_FILTER], *family_p[MAX_FILTER];
    if (methods && (st = parse_names(methods, "--methods", method_names, method_p,
                                     &ro.n_methods)))
        return st;
    if (families && (st = parse_names(families, "--family", family_names, family_p,
                                      &ro.n_families)))
        return st;
    ro.methods = method_p, ro.families = family_p;
    if (ab_report_check_filter(&ro) != AB_OK) return ab_cmd_fail(AB_E_USAGE);

    int64_t pairs[2 * MAX_MAPS];
    if (maps && (st = parse_maps(maps, pairs, &ro.n_maps))) return st;
    ro.maps = pairs;
    char names[MAX_MAP_METHODS][64];
    const char *mm[MAX_MAP_METHODS];
    if (map_methods) {
        const char *s = map_methods;
        int rc;
        while ((rc = ab_list_next(&s, 0, names[ro.n_map_methods], sizeof names[0], NULL,
                                  "--map-methods")) == 1) {
            if (ro.n_map_methods == MAX_MAP_METHODS - 1)
                return ab_cmd_error(EX_AB_USAGE, "report: at most %d --map-methods",
                                    MAX_MAP_METHODS - 1);
            const struct ab_method *m = ab_method_find(names[ro.n_map_methods]);
            if (!m)
                return ab_cmd_error(EX_AB_USAGE, "report: unknown method '%s' in --map-methods "
                                    "(see 'attnbench methods')", names[ro.n_map_methods]);
            if (!(m->flags & AB_METHOD_SELECTS))
                return ab_cmd_error(EX_AB_USAGE, "report: method '%s' keeps no set of keys, so "
                                    "it has no mask to draw", m->name);
            mm[ro.n_map_methods] = names[ro.n_map_methods];
            ro.n_map_methods++;
        }
        if (rc < 0) return ab_cmd_fail(rc);
        if (!ro.n_map_methods) return ab_cmd_error(EX_AB_USAGE, "report: --map-methods is empty");
        ro.map_methods = mm;
    }

    /* the report's own command line, for report.md */
    size_t len = 16;
    for (int a = 0; a < argc; a++) len += strlen(argv[a]) + 1;
    char *cl = malloc(len);
    if (!cl) return ab_cmd_error(EX_AB_DATA, "report: out of memory");
    strcpy(cl, "attnbench");
    for (int a = 0; a < argc; a++) strcat(strcat(cl, " "), argv[a]);
    ro.command_line = cl;
    struct written wr = {0};
    ro.on_file = on_file, ro.user = &wr;

    struct ab_report_data d;
    int rc = ab_report_load((const char *const *)pos, n_pos, &d);
    if (rc == AB_OK) rc = ab_report_write(&d, &ro);
    if (wr.md) { /* also after exit 69 or a failed plot: report.md is written (and kept) */
        char *md = ab_path_join(ro.dir, "report.md", "");
        if (md && access(md, F_OK) == 0)
            ab_out_main("report", md, "%lld figures, %lld files", (long long)wr.figures,
                        (long long)wr.files);
        free(md);
    }
    fflush(stdout);
    ab_report_data_free(&d);
    free(cl);
    return rc == AB_OK ? EX_AB_OK : ab_cmd_fail(rc);
}
