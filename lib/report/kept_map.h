/* kept_map.h - the map figures of one head of a workload, drawn by gnuplot (gnuplot.h,
 * ab_gp_map_write): the exact attention map, and the keys one selecting method keeps on that
 * head at a FLOP budget drawn over it. The pictures of `attnbench render` and of the maps of
 * `attnbench report` (report.h). Each writes NAME.bin (the pooled map) and NAME.gp beside
 * where NAME.png goes; the caller renders the script (ab_gnuplot_render). The kept mask's
 * problem is built as `run` builds it, so the picture shows what the sweep measured. */
#ifndef AB_REPORT_KEPT_MAP_H
#define AB_REPORT_KEPT_MAP_H

#include <stdint.h>

#include "core/workload.h"

/* Figure size in pixels: a square-ish map with its colour bars, readable on a slide. */
enum { AB_MAP_FIG_W = 900, AB_MAP_FIG_H = 800 };

/* Writes dir/name.bin and dir/name.gp: the exact map of (layer, head) of the workload at path
 * (meta: its metadata from ab_h5_workload_read_meta), max-pooled to at most size pixels per
 * axis (ab_map_pool), log colour scale from floor to 1, titled with the workload's file name,
 * layer, head and the head's planted profile when the workload records one. AB_E_DATA,
 * AB_E_NOMEM, AB_E_USAGE (size, floor), or an error writing the files (nothing left behind). */
int ab_map_figure_write(const char *path, const struct ab_workload *meta, int64_t layer,
                        int64_t head, int64_t size, double floor, const char *dir,
                        const char *name);

struct ab_kept_map_opts {
    const char *method;   /* registry name; the method must select (AB_METHOD_SELECTS) */
    int phase;            /* AB_PHASE_PREFILL or AB_PHASE_DECODE; 0: prefill when supported */
    double budget;        /* target FLOP ratio in (0, 1] */
    int64_t decode_m;     /* decode queries (64, as `run`) */
    uint64_t seed;        /* the sweep's seed (1), so seeded methods choose as `run` did */
    int64_t size;         /* largest side of the pooled map (512) */
    double floor;         /* bottom of the colour scale (1e-6) */
};
void ab_kept_map_defaults(struct ab_kept_map_opts *o);

/* What the picture shows. */
struct ab_kept_map_info {
    int phase;
    double knob;       /* NaN for a method without a knob */
    double ratio;      /* achieved FLOP ratio */
    int feasible;      /* the achieved ratio is at most the budget */
    double kept_share; /* kept cells / visible cells over the drawn rows */
    double recall;     /* attention mass kept, mean over the drawn rows (metrics.md) */
    int64_t n_rows;    /* query rows drawn */
};

/* Draws the kept mask of o->method at o->budget over the exact map of (layer, head) of the
 * workload at path and writes dir/name.bin and dir/name.gp (ab_gp_map_write with kept = 1),
 * titled with the method, phase, budget, achieved FLOP ratio and recall, the workload, layer,
 * head and planted profile. The problem is the one `run` builds: prefill evaluates query rows
 * subsampled to the map height (the last row of each band of rows), decode the last decode_m
 * rows (one grid row each; the figure's query axis spans just them, so they read as bands);
 * the knob is fitted with ab_budget_fit on the seed `run` uses for that head; methods reading
 * the whole layer get every head of it. AB_E_USAGE (unknown method, no selection, phase not
 * supported, budget not reachable on this head: the message says which), AB_E_DATA,
 * AB_E_NOMEM, or an error writing the files (nothing left behind). info may be NULL. */
int ab_kept_map_write(const char *path, const struct ab_workload *meta, int64_t layer, int64_t head,
                      const struct ab_kept_map_opts *o, const char *dir, const char *name,
                      struct ab_kept_map_info *info);

#endif
