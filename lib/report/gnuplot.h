/* gnuplot.h - figures through gnuplot (outputs.md, "Reports"): text outputs written atomically,
 * plot descriptions turned into a data file (NAME.tsv; NAME.bin, a binary matrix, for attention
 * maps) and a script (NAME.gp), and running gnuplot on a script to render NAME.png.
 *
 * Every script is self-contained and re-runnable by hand from its folder: `gnuplot -c NAME.gp`
 * writes NAME.png, `gnuplot -c NAME.gp OTHER.png` writes OTHER.png (the report renders to a
 * temporary name this way and renames it on success). Scripts read their data by relative path,
 * use the pngcairo terminal with font "DejaVu Sans,10" (14 for the maps, which go on slides) and
 * no enhanced-text markup (method and metric names print as they are), and define the colour of
 * every series through a fixed style table, so a method keeps its colour in every figure of
 * every report. Heatmap and map scripts carry the viridis table (ab_viridis) as a gnuplot
 * palette, so their colours match the PNG pictures written with it (io/png_io.h).
 *
 * Only this file starts gnuplot (the one external program the library starts; it is figure
 * rendering, so it lives with the report, over lib/io's CSV number format). It runs
 * `gnuplot -d -c NAME.gp TMP` (-d: no initialisation files, so a user's ~/.gnuplot cannot change
 * the pictures) in the figure's folder with fork and exec, no shell. pngcairo writes no time
 * stamp, so the same script gives the same bytes on the same machine. */
#ifndef AB_REPORT_GNUPLOT_H
#define AB_REPORT_GNUPLOT_H

#include <stdint.h>
#include <stdio.h>

#include "report/map_pool.h"

/* dir + "/" + name + ext into a malloc'd string (NULL when out of memory). */
char *ab_path_join(const char *dir, const char *name, const char *ext);

/* Finds the gnuplot program: prog itself when it contains a '/', else the first executable
 * regular file named prog in the directories of $PATH. *path is malloc'd. AB_OK, AB_E_NOTOOL
 * ("gnuplot not found on PATH"), AB_E_NOMEM. */
int ab_gnuplot_find(const char *prog, char **path);

/* Renders dir/name.gp: runs `gnuplot -d -c name.gp name.png.tmp` in dir, then renames
 * name.png.tmp to name.png. AB_OK; AB_E_NOTOOL when gnuplot cannot be started; AB_E_INTERNAL
 * when it fails or writes nothing (the message quotes its last line of diagnostics), after
 * which no name.png.tmp is left and an existing name.png is untouched; AB_E_CREATE when the
 * rename fails. */
int ab_gnuplot_render(const char *gnuplot, const char *dir, const char *name);

/* The 256-entry viridis table (CC0), RGB: first #440154, last #FDE725 (viridis.c). */
extern const uint8_t ab_viridis[256][3];

/* Writes `set palette defined (...)` with the 256 viridis entries of ab_viridis (index i at
 * position i / 255), then `set palette maxcolors 256`. */
void ab_gnuplot_palette(FILE *f);

/* --- line plots: one panel per group (multiplot), one line + points per series --------- */

/* Series styles: style i >= 0 is gnuplot linetype i + 1 with a fixed colour (12 of them, style
 * 0 black), point type and dash type (a new dash type each time the colours come round again),
 * so callers give a method the same style in every figure. */

/* One series: n points of n_cols columns, cols[c][i]; column 0 is x, column 1 is y, the plot
 * says which column (if any) is the tail drawn as a thin dotted line of the same style. */
struct ab_gp_series {
    const char *title;
    int style;
    int64_t n;
    const double *const *cols; /* (n_cols) arrays of n values; NaN rows are skipped by gnuplot */
};

struct ab_gp_panel {
    const char *title;
    int n_series;
    const struct ab_gp_series *series;
};

struct ab_gp_lines {
    const char *name;              /* file stem: name.tsv, name.gp, name.png */
    const char *title, *xlabel, *ylabel;
    int logx, logy;
    int n_cols;                    /* columns of every series (>= 2) */
    const char *const *col_names;  /* (n_cols) header names for the .tsv */
    int tail_col;                  /* column drawn dotted (>= 2), or -1 */
    const char *tail_title;        /* key text for the dotted lines, or NULL */
    int n_xtics;                   /* explicit x tics (0: gnuplot's) */
    const double *xtics;
    const char *const *xtic_labels;
    double ymin, ymax;             /* NaN: automatic */
    int n_panels;
    const struct ab_gp_panel *panels;
    int width, height;             /* pixels */
};

/* Writes dir/name.tsv (one block per (panel, series), headed by comments naming them, blocks
 * separated by two blank lines for gnuplot's `index`) and dir/name.gp. AB_OK or the error of
 * ab_outfile_*; nothing is left on failure. */
int ab_gp_lines_write(const char *dir, const struct ab_gp_lines *p);

/* --- figures of panels with one shared key (the report's frontiers) ------------------------ */

/* The fixed style table of these figures: AB_GP_N_STYLES colours, each with its own marker, so
 * the lines of a panel that uses styles 0 .. AB_GP_N_STYLES-1 differ in colour AND marker.
 * Style s >= AB_GP_N_STYLES takes colour s % AB_GP_N_STYLES and another marker. Three special
 * styles: the envelope (a thick light-grey line drawn behind the others), the reference
 * (black star markers, no line) and the reference line (a black dashed line, no markers: a
 * level such as dense's across the x range). AB_GP_COLOUR_BLACK is black for bars. */
enum { AB_GP_N_STYLES = 10, AB_GP_ENVELOPE = -1, AB_GP_REFERENCE = -2, AB_GP_REFLINE = -3,
       AB_GP_COLOUR_BLACK = -1 };

/* One line of a panel: n points (x[i], y[i]) joined in order; NaN points are skipped and break
 * the line. */
struct ab_gp_curve {
    const char *title; /* key text; curves of the figure with the same title and style share
                          one key entry */
    int style;         /* 0.. (the table), AB_GP_ENVELOPE or AB_GP_REFERENCE */
    int64_t n;
    const double *x, *y;
};

/* One panel: its axes and curves. With a finite ymin < ymax, the y range is clipped there:
 * points outside it are not joined but drawn on the nearest edge as a large open circle of the
 * curve's colour (the caller lists them in words). */
struct ab_gp_axes {
    const char *title, *xlabel, *ylabel;
    int logx, logy;
    double xmin, xmax, ymin, ymax; /* NaN: automatic */
    int n_xtics;                   /* explicit x tics (0: gnuplot's); labels may hold "\n" */
    const double *xtics;
    const char *const *xtic_labels;
    int n_ytics;                   /* explicit y tics, labelled %g (0: gnuplot's): a log axis
                                      within a decade or two gets more than one label */
    const double *ytics;
    int n_curves;
    const struct ab_gp_curve *curves;
};

/* A figure: panels on a rows x cols grid (filled row by row), one key for the whole figure at
 * its right (outside every plot area; the envelope first, then the curves by style, then the
 * reference; curves of one title and style share an entry), a title and footer lines under the
 * panels. */
struct ab_gp_figure {
    const char *name, *title;
    int n_footer;                  /* lines of text under the panels */
    const char *const *footer;
    int rows, cols;
    int n_panels;
    const struct ab_gp_axes *panels;
    int width, height;             /* pixels */
};

/* Writes dir/name.tsv (one block per (panel, curve) with columns x and y, headed by a comment
 * naming them) and dir/name.gp. AB_OK or the error of ab_outfile_*; nothing left on failure. */
int ab_gp_figure_write(const char *dir, const struct ab_gp_figure *p);

/* --- horizontal bars: one panel per (phase, measure), method names on the y axis ---------- */

struct ab_gp_hbar {
    const char *label;  /* y tic text */
    int colour;         /* style-table colour (0..AB_GP_N_STYLES-1) or AB_GP_COLOUR_BLACK */
    double value;       /* NaN: no bar, `text` alone */
    const char *text;   /* written right of the bar (or NULL: the value, %.3g) */
};

/* Bars top to bottom in the given order. With a finite xmax, a longer bar stops at the edge
 * and its text starts with ">" (the caller lists the value). Log x: bars start at xmin. */
struct ab_gp_hbar_panel {
    const char *title, *xlabel;
    int logx;
    double xmin, xmax;  /* NaN: automatic (xmin must be finite and > 0 on a log axis) */
    int n_bars;
    const struct ab_gp_hbar *bars;
};

struct ab_gp_hbars {
    const char *name, *title;
    int n_footer;
    const char *const *footer;
    int rows, cols;
    int n_panels;
    const struct ab_gp_hbar_panel *panels;
    int n_keys;                   /* colour key at the right: swatch and text */
    const int *key_colours;
    const char *const *key_titles;
    int width, height;
};

/* Writes dir/name.tsv (one block per panel: y, value, rgb, label, text, text_x) and
 * dir/name.gp. Errors as ab_gp_figure_write. */
int ab_gp_hbars_write(const char *dir, const struct ab_gp_hbars *p);

/* --- grouped vertical bars: groups along x, one bar per series in each, a reference level - */

/* One panel: n_groups groups (x tic labels), each with one bar per series of the figure, v
 * (n_groups, n_series) row-major (NaN: no bar, "-" written where it would stand); the value is
 * written above each bar (in fmt). A finite ref draws a black dashed line across the panel (the
 * figure's ref_title in the key). The y range is [ymin, ymax] when finite, else from 0 (a log
 * axis: from half the smallest value) to a fifth above the largest value or ref. */
struct ab_gp_bar_panel {
    const char *title, *xlabel, *ylabel;
    int logy;
    double ymin, ymax;
    int n_groups;
    const char *const *group_labels; /* (n_groups) */
    const double *v;                 /* (n_groups, n_series) */
    double ref;                      /* NaN: none */
    const char *fmt;                 /* printf format of the values above the bars (NULL:
                                        "%.3g") */
};

struct ab_gp_bars {
    const char *name, *title;
    int n_series;
    const char *const *series_titles; /* (n_series) key text */
    const int *series_colours;        /* (n_series) style-table colours or AB_GP_COLOUR_BLACK */
    const char *ref_title;            /* key text of the reference lines (NULL: "reference") */
    int rows, cols;
    int n_panels;
    const struct ab_gp_bar_panel *panels;
    int width, height;
};

/* Writes dir/name.tsv (one block per panel: x, group label, then one value column per series)
 * and dir/name.gp: the panels on a rows x cols grid, one key for the figure at its right.
 * Errors as ab_gp_figure_write. */
int ab_gp_bars_write(const char *dir, const struct ab_gp_bars *p);

/* --- heatmaps: small multiples of (rows x cols) grids with the viridis palette ------------ */

struct ab_gp_grid {
    const char *title;
    int64_t rows, cols;
    const double *v; /* (rows, cols) row-major; NaN: no value (drawn white) */
};
/* Cells are drawn as filled boxes (any grid, one row included). With a shared scale, values
 * outside [lo, hi] take the end colour and are marked with a cross (black above the range,
 * white below it). */

struct ab_gp_heatmaps {
    const char *name, *title;
    const char *xlabel, *ylabel, *cblabel;
    int shared_scale;  /* 1: one colour scale [lo, hi] for every panel; 0: each its own range */
    double lo, hi;     /* the shared range (lo < hi) */
    int logcb;         /* log colour scale (shared scale only; lo > 0) */
    int n_grids;
    const struct ab_gp_grid *grids;
    int width;         /* pixels; the height follows from the layout */
    int per_row;       /* panels per row (0: up to four) */
};

/* Writes dir/name.tsv (one matrix block per grid, row 0 first) and dir/name.gp: up to four
 * panels per row (per_row when set), row 0 drawn at the top, one colour box for a shared
 * scale. Errors as ab_gp_lines_write. */
int ab_gp_heatmaps_write(const char *dir, const struct ab_gp_heatmaps *p);

/* --- attention maps: one head's pooled map, or a method's kept mask over it --------------- */

/* The figure of a pooled map (map_pool.h): the image in token coordinates (x "key position",
 * y "query position" increasing downward), colour on a log scale from floor to 1 with viridis
 * ("attention probability"), cells with no visible key in neutral light grey. A kept mask
 * (kept = 1, values +p kept, -p dropped) draws kept cells in viridis and dropped ones in a red
 * scale of their own probability, with a colour bar for each and a key naming kept, dropped
 * and masked. */
struct ab_gp_map {
    const char *name;     /* file stem: name.bin, name.gp, name.png */
    const char *title;    /* first title line */
    const char *subtitle; /* second line, or NULL */
    const struct ab_map_grid *grid;
    int kept;          /* 0: exact map (v = probability or NaN); 1: kept mask */
    int causal;        /* say so where the masked triangle is */
    double floor;      /* bottom of the colour scale, in (0, 1) */
    int width, height; /* pixels */
};

/* Writes dir/name.bin, the grid as a gnuplot `binary matrix` (float32 in this machine's byte
 * order: the column count, then each column's key position; then per grid row its query
 * position and its values; NaN where masked), and dir/name.gp. Errors as ab_gp_lines_write
 * (AB_E_USAGE for an empty grid or a floor outside (0, 1)); nothing is left on failure. */
int ab_gp_map_write(const char *dir, const struct ab_gp_map *p);

#endif
