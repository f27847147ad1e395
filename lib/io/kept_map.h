/* kept_map.h - the kept-mask picture: the keys one selecting method keeps on one head of a
 * workload at a FLOP budget, drawn over that head's exact attention map as an 8-bit indexed PNG.
 * The picture of `attnbench render --method` and of the maps of `attnbench report` (report.h).
 * The problem is built as `run` builds it, so the picture shows what the sweep measured. */
#ifndef AB_IO_KEPT_MAP_H
#define AB_IO_KEPT_MAP_H

#include <stdint.h>

#include "core/workload.h"

struct ab_kept_map_opts {
    const char *method;   /* registry name; the method must select (AB_METHOD_SELECTS) */
    int phase;            /* AB_PHASE_PREFILL or AB_PHASE_DECODE; 0: prefill when supported */
    double budget;        /* target FLOP ratio in (0, 1] */
    int64_t decode_m;     /* decode queries (64, as `run`) */
    uint64_t seed;        /* the sweep's seed (1), so seeded methods choose as `run` did */
    int64_t size;         /* largest image side (512) */
    double floor;         /* probability drawn darkest (1e-6) */
};
void ab_kept_map_defaults(struct ab_kept_map_opts *o);

/* What the picture shows. */
struct ab_kept_map_info {
    int phase;
    double knob;       /* NaN for a method without a knob */
    double ratio;      /* achieved FLOP ratio */
    int feasible;      /* the achieved ratio is at most the budget */
    double kept_share; /* kept cells / visible cells over the drawn rows */
    int64_t n_rows;    /* query rows drawn */
};

/* Draws the kept mask of o->method at o->budget over the exact map of (layer, head) of the
 * workload at path (meta: its metadata from ab_h5_workload_read_meta) and writes it to png as
 * an 8-bit indexed PNG with ab_mask_palette. The problem is the one `run` builds: prefill
 * evaluates query rows subsampled to the image height (the last row of each band of rows), decode
 * the last decode_m rows (each drawn as several pixel rows so the strip is visible); the knob
 * is fitted with ab_budget_fit on the seed `run` uses for that head; methods reading the whole
 * layer get every head of it. AB_E_USAGE (unknown method, no selection, phase not supported,
 * budget not reachable on this head: the message says which), AB_E_DATA, AB_E_NOMEM, or an
 * error writing png (nothing left behind). info may be NULL. */
int ab_kept_map_write(const char *path, const struct ab_workload *meta, int64_t layer,
                      int64_t head, const struct ab_kept_map_opts *o, const char *png,
                      struct ab_kept_map_info *info);

#endif
