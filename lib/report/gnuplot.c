/* gnuplot.c - plot descriptions to .tsv + .gp, and running gnuplot on them (see gnuplot.h).
 *
 * The writers only format: every number the figure shows is in the .tsv, every decision about
 * layout is in the .gp, and both are plain text a person can edit and re-run. Numbers go to the
 * .tsv as the shortest decimal that reads back to the same double (io/csv.h), non-finite ones as
 * NaN (which gnuplot skips). gnuplot runs in a child process (fork, chdir into the figure's
 * folder, exec; only async-signal-safe calls between fork and exec, since OpenMP threads may
 * exist); its diagnostics come back through a pipe and the last line of them becomes the error
 * message when it fails. */
#include "report/gnuplot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/ab.h"
#include "io/csv.h"
#include "report/map_pool.h"

char *ab_path_join(const char *dir, const char *name, const char *ext)
{
    size_t n = strlen(dir) + strlen(name) + strlen(ext) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s%s", dir, name, ext);
    return s;
}

/* ------------------------------------------------------------------ running gnuplot */

int ab_gnuplot_find(const char *prog, char **path)
{
    *path = NULL;
    if (strchr(prog, '/')) {
        if (access(prog, X_OK) != 0)
            return ab_fail(AB_E_NOTOOL, "gnuplot not found at '%s'", prog);
        *path = strdup(prog);
        return *path ? AB_OK : ab_fail(AB_E_NOMEM, "out of memory");
    }
    const char *env = getenv("PATH");
    if (!env || !*env) env = "/usr/local/bin:/usr/bin:/bin";
    for (const char *s = env; *s;) {
        const char *colon = strchr(s, ':');
        size_t len = colon ? (size_t)(colon - s) : strlen(s);
        size_t cap = len + strlen(prog) + 3;
        char *cand = malloc(cap);
        if (!cand) return ab_fail(AB_E_NOMEM, "out of memory");
        if (len) /* an empty PATH entry means the current directory */
            snprintf(cand, cap, "%.*s/%s", (int)len, s, prog);
        else
            snprintf(cand, cap, "./%s", prog);
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) {
            *path = cand;
            return AB_OK;
        }
        free(cand);
        s += len;
        if (*s == ':') s++;
    }
    return ab_fail(AB_E_NOTOOL, "%s not found on PATH (install gnuplot-nox)", prog);
}

/* The last non-blank line of gnuplot's diagnostics, trimmed, into out. */
static void last_line(const char *text, char *out, size_t cap)
{
    out[0] = 0;
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\r')) end--;
    const char *start = end;
    while (start > text && start[-1] != '\n') start--;
    while (start < end && *start == ' ') start++;
    snprintf(out, cap, "%.*s", (int)(end - start), start);
}

/* 1 when the PNG at path ends with its IEND chunk. gnuplot exits 0 when its writes fail (a
 * full disk), leaving the picture cut short or empty. */
static int png_complete(const char *path)
{
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    unsigned char tail[12];
    FILE *f = fopen(path, "rb");
    int ok =
        f && fseek(f, -12, SEEK_END) == 0 && fread(tail, 1, 12, f) == 12 && !memcmp(tail, iend, 12);
    if (f) fclose(f);
    return ok;
}

int ab_gnuplot_render(const char *gnuplot, const char *dir, const char *name)
{
    int rc = AB_OK;
    char *script = ab_path_join(".", name, ".gp"), *png = ab_path_join(dir, name, ".png");
    char *tmp = png ? ab_tmp_path(png) : NULL;
    /* the temporary's name in dir, where gnuplot runs: "name.png.<pid>.<k>.tmp" */
    const char *tmp_rel = tmp ? tmp + strlen(dir) + 1 : NULL;
    char diag[8192];
    size_t n_diag = 0;
    int fd[2] = {-1, -1};
    diag[0] = 0;
    if (!script || !tmp || !png) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    if (pipe2(fd, O_CLOEXEC) != 0) {
        rc = ab_fail(AB_E_INTERNAL, "cannot start gnuplot: %s", strerror(errno));
        goto done;
    }
    /* argv: script and output relative to dir ("./name.gp"), so the script reads its data by
     * relative path exactly as it does when a person runs it there */
    char *argv[] = {(char *)gnuplot, "-d", "-c", script + 2, (char *)tmp_rel, NULL};
    pid_t pid = fork();
    if (pid < 0) {
        rc = ab_fail(AB_E_INTERNAL, "cannot start gnuplot: %s", strerror(errno));
        goto done;
    }
    if (pid == 0) { /* child: async-signal-safe calls only */
        if (chdir(dir) != 0) _exit(126);
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(fd[1], 2) < 0) _exit(126);
        execv(gnuplot, argv);
        _exit(127);
    }
    close(fd[1]);
    fd[1] = -1;
    for (;;) { /* keep the last part of the diagnostics */
        char buf[4096];
        ssize_t got = read(fd[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        if (n_diag + (size_t)got >= sizeof diag) {
            size_t drop = n_diag + (size_t)got - (sizeof diag - 1);
            if (drop > n_diag) drop = n_diag;
            memmove(diag, diag + drop, n_diag - drop);
            n_diag -= drop;
        }
        size_t take = AB_MIN((size_t)got, sizeof diag - 1 - n_diag);
        memcpy(diag + n_diag, buf + (size_t)got - take, take);
        n_diag += take;
        diag[n_diag] = 0;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    struct stat st;
    int wrote = stat(tmp, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        rc = ab_fail(AB_E_NOTOOL, "cannot run '%s'", gnuplot);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 126) {
        rc = ab_fail(AB_E_CREATE, "'%s': cannot enter the folder to run gnuplot", dir);
    } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ) {
        rc = ab_fail(AB_E_IO, "'%s': cannot write: %s", png, strerror(EFBIG));
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char line[400];
        last_line(diag, line, sizeof line);
        rc = ab_fail(AB_E_INTERNAL, "'%s/%s.gp': gnuplot failed%s%s", dir, name,
                     line[0] ? ": " : (wrote ? "" : ": it wrote no picture"), line);
    } else if (!wrote || !png_complete(tmp)) {
        rc = ab_fail(AB_E_IO, "'%s': cannot write: gnuplot left the picture incomplete (%lld "
                     "bytes; is the disk full?)", png, wrote ? (long long)st.st_size : 0LL);
    } else if (ab_tmp_commit(tmp, png) != 0) {
        rc = ab_fail(AB_E_CREATE, "'%s': cannot create: %s", png, strerror(errno));
    }
    if (rc != AB_OK && tmp) remove(tmp);
done:
    if (fd[0] >= 0) close(fd[0]);
    if (fd[1] >= 0) close(fd[1]);
    free(script), free(tmp), free(png);
    return rc;
}

/* ------------------------------------------------------------------ styles, palette, text */

static const char *const colours[] = {
    "#000000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79",
};
enum { N_COLOURS = sizeof colours / sizeof colours[0] };
static const int point_types[] = {7, 5, 9, 11, 13, 15, 6, 4, 8, 10, 12};
enum { N_POINTS = sizeof point_types / sizeof point_types[0] };

/* `set linetype` for style s as gnuplot linetype s + 1. */
static void put_style(FILE *f, int s)
{
    fprintf(f, "set linetype %d lc rgb \"%s\" lw 2 dt %d pt %d ps 1.1\n", s + 1,
            colours[s % N_COLOURS], 1 + (s / N_COLOURS) % 5, point_types[s % N_POINTS]);
}

void ab_gnuplot_palette(FILE *f)
{
    fputs("set palette defined ( \\\n", f);
    for (int i = 0; i < 256; i++)
        fprintf(f, "  %d \"#%02x%02x%02x\"%s", i, ab_viridis[i][0], ab_viridis[i][1],
                ab_viridis[i][2], i == 255 ? " )\n" : (i % 4 == 3 ? ", \\\n" : ","));
    fputs("set palette maxcolors 256\n", f);
}

/* A gnuplot double-quoted string literal. */
static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s == '\n' || *s == '\t' ? ' ' : *s, f);
    }
    fputc('"', f);
}

/* A .tsv field: text with tabs and newlines flattened. */
static void put_field(FILE *f, const char *s)
{
    for (; s && *s; s++) fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

static void put_num(FILE *f, double x)
{
    if (!isfinite(x)) {
        fputs("NaN", f);
        return;
    }
    char buf[AB_CSV_F64_MAX];
    ab_csv_format_f64(x, buf);
    fputs(buf, f);
}

/* A number for the script (ranges, positions): %.10g is plenty and reads the same everywhere. */
static void put_g(FILE *f, double x) { fprintf(f, "%.10g", x); }

/* The common head of every script. */
static void put_head(FILE *f, const char *name, const char *title, int width, int height)
{
    fprintf(f, "# %s.gp - %s\n", name, title ? title : name);
    fprintf(f, "# Written by attnbench report; data in %s.tsv. Run from this folder:\n", name);
    fprintf(f, "#   gnuplot -c %s.gp            (writes %s.png)\n", name, name);
    fprintf(f, "#   gnuplot -c %s.gp OUT.png    (writes OUT.png)\n", name);
    fprintf(f, "out = (ARGC >= 1) ? ARG1 : \"%s.png\"\n", name);
    fprintf(f, "set terminal pngcairo size %d,%d font \"DejaVu Sans,10\" noenhanced\n", width,
            height);
    fputs("set output out\nset datafile separator \"\\t\"\n", f);
}

/* Opens name.tsv and name.gp in dir. */
static int open_pair(const char *dir, const char *name, struct ab_outfile *tsv,
                     struct ab_outfile *gp)
{
    char *a = ab_path_join(dir, name, ".tsv"), *b = ab_path_join(dir, name, ".gp");
    int rc = !a || !b ? ab_fail(AB_E_NOMEM, "out of memory") : ab_outfile_open(tsv, a);
    if (rc == AB_OK && (rc = ab_outfile_open(gp, b)) != AB_OK) ab_outfile_abort(tsv);
    free(a), free(b);
    return rc;
}

/* Commits both, or neither. */
static int commit_pair(struct ab_outfile *tsv, struct ab_outfile *gp)
{
    int rc = ab_outfile_commit(tsv);
    if (rc != AB_OK) {
        ab_outfile_abort(gp);
        return rc;
    }
    return ab_outfile_commit(gp);
}

/* ------------------------------------------------------------------ line plots */

static void put_lines_panel(FILE *gp, const struct ab_gp_lines *p, const struct ab_gp_panel *pan,
                            int *block)
{
    fputs("set title ", gp);
    put_str(gp, pan->title);
    fputc('\n', gp);
    int n_plotted = 0;
    for (int s = 0; s < pan->n_series; s++) n_plotted += pan->series[s].n > 0;
    if (!n_plotted) { /* gnuplot refuses an empty plot: draw the frame and say so */
        fputs("set label 1 \"no data\" at graph 0.5, graph 0.5 center\n"
              "plot [1:2] [1:2] 0 notitle\nunset label 1\n",
              gp);
        return;
    }
    fputs("plot ", gp);
    int first = 1;
    for (int s = 0; s < pan->n_series; s++) {
        const struct ab_gp_series *se = &pan->series[s];
        if (se->n <= 0) continue;
        fprintf(gp, "%s\"%s.tsv\" index %d using 1:2 with linespoints lt %d title ",
                first ? "" : ", \\\n     ", p->name, *block, se->style + 1);
        put_str(gp, se->title);
        if (p->tail_col >= 2)
            fprintf(gp, ", \\\n     \"%s.tsv\" index %d using 1:%d with lines lt %d dt 3 lw 1 "
                        "notitle",
                    p->name, *block, p->tail_col + 1, se->style + 1);
        first = 0;
        (*block)++;
    }
    if (p->tail_col >= 2 && p->tail_title) {
        fputs(", \\\n     NaN with lines lc rgb \"#555555\" dt 3 lw 1 title ", gp);
        put_str(gp, p->tail_title);
    }
    fputc('\n', gp);
}

int ab_gp_lines_write(const char *dir, const struct ab_gp_lines *p)
{
    struct ab_outfile tsv, gp;
    int rc = open_pair(dir, p->name, &tsv, &gp);
    if (rc != AB_OK) return rc;
    FILE *t = tsv.f, *g = gp.f;

    /* data: one block per plotted series */
    fprintf(t, "# %s\n", p->title ? p->title : p->name);
    int block = 0;
    for (int k = 0; k < p->n_panels; k++)
        for (int s = 0; s < p->panels[k].n_series; s++) {
            const struct ab_gp_series *se = &p->panels[k].series[s];
            if (se->n <= 0) continue;
            fprintf(t, "%s# block %d: ", block ? "\n\n" : "", block);
            put_field(t, p->panels[k].title);
            fputs(" / ", t);
            put_field(t, se->title);
            fputs("\n# ", t);
            for (int c = 0; c < p->n_cols; c++) {
                put_field(t, p->col_names[c]);
                fputc(c + 1 < p->n_cols ? '\t' : '\n', t);
            }
            for (int64_t i = 0; i < se->n; i++)
                for (int c = 0; c < p->n_cols; c++) {
                    put_num(t, se->cols[c][i]);
                    fputc(c + 1 < p->n_cols ? '\t' : '\n', t);
                }
            block++;
        }

    /* script */
    put_head(g, p->name, p->title, p->width, p->height);
    int max_style = 0;
    for (int k = 0; k < p->n_panels; k++)
        for (int s = 0; s < p->panels[k].n_series; s++)
            max_style = AB_MAX(max_style, p->panels[k].series[s].style);
    for (int s = 0; s <= max_style; s++) put_style(g, s);
    fprintf(g, "set multiplot layout 1,%d title ", AB_MAX(1, p->n_panels));
    put_str(g, p->title);
    fputs(" font \",12\"\n", g);
    fputs("set grid lc rgb \"#dddddd\"\n"
          "set key outside right top vertical Left reverse samplen 2.5 spacing 1.05 font \",9\"\n",
          g);
    fputs("set xlabel ", g);
    put_str(g, p->xlabel);
    fputs("\nset ylabel ", g);
    put_str(g, p->ylabel);
    fputc('\n', g);
    if (p->logx) fputs("set logscale x 2\n", g);
    if (p->logy) fputs("set logscale y\nset format y \"%g\"\n", g);
    if (p->n_xtics > 0) {
        double lo = p->xtics[0], hi = p->xtics[0];
        fputs("set xtics (", g);
        for (int i = 0; i < p->n_xtics; i++) {
            put_str(g, p->xtic_labels[i]);
            fputc(' ', g);
            put_g(g, p->xtics[i]);
            fputs(i + 1 < p->n_xtics ? ", " : ")\n", g);
            lo = fmin(lo, p->xtics[i]), hi = fmax(hi, p->xtics[i]);
        }
        fputs("set xrange [", g);
        put_g(g, p->logx ? lo / 1.35 : lo - 0.05 * (hi - lo));
        fputc(':', g);
        put_g(g, p->logx ? hi * 1.35 : hi + 0.05 * (hi - lo));
        fputs("]\n", g);
    }
    if (isfinite(p->ymin) || isfinite(p->ymax)) {
        fputs("set yrange [", g);
        if (isfinite(p->ymin)) put_g(g, p->ymin);
        fputc(':', g);
        if (isfinite(p->ymax)) put_g(g, p->ymax);
        fputs("]\n", g);
    }
    block = 0;
    for (int k = 0; k < p->n_panels; k++) put_lines_panel(g, p, &p->panels[k], &block);
    fputs("unset multiplot\n", g);
    return commit_pair(&tsv, &gp);
}

/* ------------------------------------------------------------------ figures of panels */

/* The style table of figures (gnuplot.h): ten colours that stay apart on a slide, and ten
 * markers; the markers of styles 10.. are shifted so a colour never comes back with its
 * marker. */
static const char *const fig_colours[AB_GP_N_STYLES] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#000080",
};
static const int fig_points[AB_GP_N_STYLES] = {7, 5, 9, 11, 13, 15, 4, 8, 10, 12};
#define ENVELOPE_RGB "#c4c4c4"

static const char *fig_colour(int s)
{
    return s < 0 ? "#000000" : fig_colours[s % AB_GP_N_STYLES];
}

/* `lc rgb ... pt ...` etc. of a curve's style, for `with linespoints` (or points). */
static void put_curve_style(FILE *f, int style)
{
    if (style == AB_GP_ENVELOPE)
        fputs("lc rgb \"" ENVELOPE_RGB "\" lw 7", f);
    else if (style == AB_GP_REFERENCE)
        fputs("lc rgb \"#000000\" pt 3 ps 2.2 lw 1.5", f);
    else if (style == AB_GP_REFLINE)
        fputs("lc rgb \"#000000\" lw 2 dt 2", f);
    else
        fprintf(f, "lc rgb \"%s\" lw 2 pt %d ps 1.3", fig_colour(style),
                fig_points[(style + 3 * (style / AB_GP_N_STYLES)) % AB_GP_N_STYLES]);
}

static const char *curve_with(int style)
{
    return style == AB_GP_ENVELOPE || style == AB_GP_REFLINE ? "lines"
           : style == AB_GP_REFERENCE                        ? "points"
                                                             : "linespoints";
}

/* A double-quoted string in which "\n" stays a line break (tic labels on two lines). */
static void put_str_nl(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '\n') {
            fputs("\\n", f);
            continue;
        }
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s == '\t' ? ' ' : *s, f);
    }
    fputc('"', f);
}

/* Screen fractions of a panel cell: x0, x1 (left, right), y0, y1 (bottom, top). */
struct box {
    double x0, x1, y0, y1;
};

static void put_margins(FILE *g, struct box b)
{
    fprintf(g, "set lmargin at screen %.4f\nset rmargin at screen %.4f\n"
               "set bmargin at screen %.4f\nset tmargin at screen %.4f\n",
            b.x0, b.x1, b.y0, b.y1);
}

/* The width in pixels of a key entry's text at font size 10 (DejaVu Sans: about 6.6 px per
 * character), with its sample. */
static double key_px(const char *s) { return 62 + 6.6 * (double)(s ? strlen(s) : 0); }

static int clipped(const struct ab_gp_axes *a)
{
    return isfinite(a->ymin) && isfinite(a->ymax) && a->ymin < a->ymax;
}

static int outside(const struct ab_gp_axes *a, double y)
{
    return clipped(a) && isfinite(y) && (y < a->ymin || y > a->ymax);
}

/* `set multiplot` with the figure's title. */
static void put_fig_frame(FILE *g, const char *title)
{
    fputs("set multiplot title ", g);
    put_str(g, title);
    fputs(" font \",13\"\n", g);
}

/* The footer lines, as labels set just before the last plot of the figure (a label stays set
 * for every later plot of a multiplot, and text drawn twice turns bold). */
static void put_footer(FILE *g, int n_footer, const char *const *footer, int height)
{
    for (int i = 0; i < n_footer; i++) {
        fprintf(g, "set label %d ", 900 + i);
        put_str(g, footer[i]);
        fprintf(g, " at screen 0.012, screen %.4f left font \",10\"\n",
                (8.0 + 16.0 * (n_footer - 1 - i) + 4) / height);
    }
}

/* The place of a curve's style in the key: the envelope first, the table's styles in order,
 * the reference line, the reference last. */
enum { KEY_LAST = 4 * AB_GP_N_STYLES + 2 };
static int key_rank(int style)
{
    return style == AB_GP_ENVELOPE    ? -1
           : style == AB_GP_REFERENCE ? KEY_LAST
           : style == AB_GP_REFLINE   ? KEY_LAST - 1
                                      : AB_MIN(style, KEY_LAST - 2);
}

/* Whether curve c of panel k has the title and style of an earlier curve of the figure. */
static int key_seen(const struct ab_gp_figure *p, int k, int c)
{
    const struct ab_gp_curve *cu = &p->panels[k].curves[c];
    for (int k2 = 0; k2 <= k; k2++)
        for (int c2 = 0; c2 < (k2 == k ? c : p->panels[k2].n_curves); c2++) {
            const struct ab_gp_curve *o = &p->panels[k2].curves[c2];
            if (o->style == cu->style && o->title && !strcmp(o->title, cu->title)) return 1;
        }
    return 0;
}

int ab_gp_figure_write(const char *dir, const struct ab_gp_figure *p)
{
    struct ab_outfile tsv, gp;
    int rc = open_pair(dir, p->name, &tsv, &gp);
    if (rc != AB_OK) return rc;
    FILE *t = tsv.f, *g = gp.f;

    /* data: one block per curve with points */
    fprintf(t, "# %s\n", p->title ? p->title : p->name);
    int block = 0, any_out = 0;
    for (int k = 0; k < p->n_panels; k++)
        for (int c = 0; c < p->panels[k].n_curves; c++) {
            const struct ab_gp_curve *cu = &p->panels[k].curves[c];
            if (cu->n <= 0) continue;
            fprintf(t, "%s# block %d: ", block ? "\n\n" : "", block);
            put_field(t, p->panels[k].title);
            fputs(" / ", t);
            put_field(t, cu->title);
            fputs("\n# x\ty\n", t);
            for (int64_t i = 0; i < cu->n; i++) {
                put_num(t, cu->x[i]);
                fputc('\t', t);
                put_num(t, cu->y[i]);
                fputc('\n', t);
                any_out |= cu->style != AB_GP_ENVELOPE && outside(&p->panels[k], cu->y[i]);
            }
            block++;
        }

    /* layout in pixels: title band, footer band, the key at the right, the panel grid */
    double W = p->width, H = p->height, key_w = 0;
    for (int k = 0; k < p->n_panels; k++)
        for (int c = 0; c < p->panels[k].n_curves; c++)
            key_w = fmax(key_w, key_px(p->panels[k].curves[c].title));
    if (any_out) key_w = fmax(key_w, key_px("outside the range, drawn at the edge"));
    key_w = fmin(key_w + 16, 0.34 * W);
    double top = H - 44, bottom = 16.0 * p->n_footer + (p->n_footer ? 12 : 4);
    int rows = AB_MAX(1, p->rows), cols = AB_MAX(1, p->cols);
    double cell_w = (W - key_w) / cols, cell_h = (top - bottom) / rows;

    put_head(g, p->name, p->title, p->width, p->height);
    fputs("set grid lc rgb \"#dddddd\"\nunset key\nset tics font \",10\"\n", g);
    put_fig_frame(g, p->title);
    block = 0;
    int ytics_set = 0;
    for (int k = 0; k < p->n_panels; k++) {
        const struct ab_gp_axes *a = &p->panels[k];
        int r = k / cols, c = k % cols;
        /* two-line x tic labels need room: 74 px under the plot for them and the label */
        int two_lines = 0;
        for (int i = 0; i < a->n_xtics; i++) two_lines |= strchr(a->xtic_labels[i], '\n') != NULL;
        struct box b = {(c * cell_w + 80) / W, ((c + 1) * cell_w - 16) / W,
                        (top - (r + 1) * cell_h + (two_lines ? 76 : 58)) / H,
                        (top - r * cell_h - 30) / H};
        put_margins(g, b);
        fputs("set title ", g);
        put_str(g, a->title);
        fputs(" font \",11\"\nset xlabel ", g);
        put_str(g, a->xlabel);
        fputs(two_lines ? " offset 0,-0.3\nset ylabel " : " offset 0,0.3\nset ylabel ", g);
        put_str(g, a->ylabel);
        fputc('\n', g);
        fputs(a->logx ? "set logscale x\n" : "unset logscale x\n", g);
        fputs(a->logy ? "set logscale y\nset format y \"%g\"\n" : "unset logscale y\n"
                                                                  "set format y \"%g\"\n", g);
        if (a->n_xtics > 0) {
            fputs("set xtics font \",9\" (", g);
            for (int i = 0; i < a->n_xtics; i++) {
                put_str_nl(g, a->xtic_labels[i]);
                fputc(' ', g);
                put_g(g, a->xtics[i]);
                fputs(i + 1 < a->n_xtics ? ", " : ")\n", g);
            }
        } else {
            fputs("set xtics autofreq font \",10\"\n", g);
        }
        if (a->n_ytics > 0) {
            fputs("set ytics (", g);
            for (int i = 0; i < a->n_ytics; i++) {
                fprintf(g, "\"%g\" ", a->ytics[i]);
                put_g(g, a->ytics[i]);
                fputs(i + 1 < a->n_ytics ? ", " : ")\n", g);
            }
            ytics_set = 1;
        } else if (ytics_set) { /* an earlier panel's tics stay set otherwise */
            fputs("set ytics autofreq\n", g);
            ytics_set = 0;
        }
        fputs("set xrange [", g);
        if (isfinite(a->xmin)) put_g(g, a->xmin);
        fputc(':', g);
        if (isfinite(a->xmax)) put_g(g, a->xmax);
        fputs("]\nset yrange [", g);
        if (isfinite(a->ymin)) put_g(g, a->ymin);
        fputc(':', g);
        if (isfinite(a->ymax)) put_g(g, a->ymax);
        fputs("]\n", g);
        int clip = clipped(a);
        if (clip) {
            fputs("lo = ", g);
            put_g(g, a->ymin);
            fputs("; hi = ", g);
            put_g(g, a->ymax);
            fputs("\n", g);
        }
        int n_plotted = 0;
        for (int i = 0; i < a->n_curves; i++) n_plotted += a->curves[i].n > 0;
        if (!n_plotted) {
            fputs("set label 1 \"no data\" at graph 0.5, graph 0.5 center\n"
                  "plot NaN notitle\nunset label 1\n",
                  g);
            continue;
        }
        fputs("plot ", g);
        int first = 1;
        /* the envelope first, so the methods are drawn over it */
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0, b0 = block; i < a->n_curves; i++) {
                const struct ab_gp_curve *cu = &a->curves[i];
                if (cu->n <= 0) continue;
                int bi = b0++;
                if ((pass == 0) != (cu->style == AB_GP_ENVELOPE)) continue;
                /* the envelope runs along the edge where it leaves the range */
                const char *y = !clip ? "2"
                                : cu->style == AB_GP_ENVELOPE ? "($2 < lo ? lo : ($2 > hi ? hi : $2))"
                                                              : "($2 >= lo && $2 <= hi ? $2 : NaN)";
                fprintf(g, "%s\"%s.tsv\" index %d using 1:%s with %s ", first ? "" : ", \\\n     ",
                        p->name, bi, y, curve_with(cu->style));
                put_curve_style(g, cu->style);
                fputs(" notitle", g);
                first = 0;
                int outs = 0;
                for (int64_t j = 0; j < cu->n && cu->style != AB_GP_ENVELOPE; j++)
                    outs |= outside(a, cu->y[j]);
                if (outs)
                    fprintf(g, ", \\\n     \"%s.tsv\" index %d using 1:($2 < lo ? lo : ($2 > hi ? "
                               "hi : NaN)) with points lc rgb \"%s\" pt 6 ps 2.4 lw 2 notitle",
                            p->name, bi,
                            cu->style == AB_GP_ENVELOPE ? "#888888" : fig_colour(cu->style));
            }
        for (int i = 0; i < a->n_curves; i++) block += a->curves[i].n > 0;
        fputc('\n', g);
    }

    /* the key: an empty plot in the band at the right, one entry per (title, style) */
    put_margins(g, (struct box){(W - key_w) / W, 0.995, bottom / H, (top - 30) / H});
    fputs("unset border\nunset tics\nunset grid\nunset title\nunset xlabel\nunset ylabel\n"
          "unset logscale\nset xrange [0:1]\nset yrange [0:1]\n",
          g);
    fprintf(g, "set key at screen %.4f, screen %.4f top left Left reverse samplen 2.2 "
               "spacing 1.25 font \",10\" noautotitle\n",
            (W - key_w + 6) / W, (top - 30) / H);
    put_footer(g, p->n_footer, p->footer, p->height);
    fputs("plot NaN notitle", g);
    /* entries: the envelope, the styles of the table in order, the reference */
    for (int rank = -1; rank <= KEY_LAST; rank++)
        for (int k = 0; k < p->n_panels; k++)
            for (int c = 0; c < p->panels[k].n_curves; c++) {
                const struct ab_gp_curve *cu = &p->panels[k].curves[c];
                if (!cu->title || !cu->title[0] || key_rank(cu->style) != rank ||
                    key_seen(p, k, c))
                    continue;
                fprintf(g, ", \\\n     NaN with %s ", curve_with(cu->style));
                put_curve_style(g, cu->style);
                fputs(" title ", g);
                put_str(g, cu->title);
            }
    if (any_out)
        fputs(", \\\n     NaN with points lc rgb \"#555555\" pt 6 ps 2.4 lw 2 title "
              "\"outside the range, drawn at the edge\"",
              g);
    fputs("\nunset multiplot\n", g);
    return commit_pair(&tsv, &gp);
}

/* ------------------------------------------------------------------ horizontal bars */

static long rgb_int(int colour)
{
    const char *hex = colour < 0 ? "#000000" : fig_colours[colour % AB_GP_N_STYLES];
    return strtol(hex + 1, NULL, 16);
}

/* The x range of a bar panel: its own, or from its values (0 or half the smallest on a log
 * axis, to the largest). */
static void hbar_range(const struct ab_gp_hbar_panel *pan, double *lo, double *hi)
{
    double vmax = -INFINITY, vmin = INFINITY;
    for (int b = 0; b < pan->n_bars; b++)
        if (isfinite(pan->bars[b].value) && (!pan->logx || pan->bars[b].value > 0))
            vmax = fmax(vmax, pan->bars[b].value), vmin = fmin(vmin, pan->bars[b].value);
    *lo = pan->xmin, *hi = pan->xmax;
    if (!isfinite(*hi)) *hi = isfinite(vmax) ? vmax : 1;
    if (!isfinite(*lo)) *lo = pan->logx ? (isfinite(vmin) ? vmin / 2 : *hi / 10) : 0;
    if (!(*hi > *lo)) *hi = pan->logx ? *lo * 10 : *lo + 1;
}

int ab_gp_hbars_write(const char *dir, const struct ab_gp_hbars *p)
{
    struct ab_outfile tsv, gp;
    int rc = open_pair(dir, p->name, &tsv, &gp);
    if (rc != AB_OK) return rc;
    FILE *t = tsv.f, *g = gp.f;

    fprintf(t, "# %s\n", p->title ? p->title : p->name);
    for (int k = 0; k < p->n_panels; k++) {
        const struct ab_gp_hbar_panel *pan = &p->panels[k];
        fprintf(t, "%s# block %d: ", k ? "\n\n" : "", k);
        put_field(t, pan->title);
        fputs("\n# y\tvalue\trgb\tlabel\ttext\ttext_x\n", t);
        for (int b = 0; b < pan->n_bars; b++) {
            const struct ab_gp_hbar *bar = &pan->bars[b];
            fprintf(t, "%d\t", pan->n_bars - 1 - b);
            put_num(t, bar->value);
            fprintf(t, "\t%ld\t", rgb_int(bar->colour));
            put_field(t, bar->label);
            fputc('\t', t);
            char buf[40];
            const char *text = bar->text;
            if (!text) {
                snprintf(buf, sizeof buf, "%s%.3g",
                         isfinite(pan->xmax) && bar->value > pan->xmax ? ">" : "", bar->value);
                text = isfinite(bar->value) ? buf : "";
            }
            put_field(t, text[0] ? text : " ");
            fputc('\t', t);
            /* the text starts where the bar ends (at the axis start without a bar) */
            double lo, hi, tx = bar->value;
            hbar_range(pan, &lo, &hi);
            tx = !isfinite(tx) || tx < lo ? lo : tx > hi ? hi : tx;
            put_num(t, tx);
            fputc('\n', t);
        }
    }

    double W = p->width, H = p->height, key_w = 0;
    for (int i = 0; i < p->n_keys; i++) key_w = fmax(key_w, key_px(p->key_titles[i]));
    key_w = p->n_keys ? fmin(key_w + 10, 0.3 * W) : 8;
    double top = H - 44, bottom = 16.0 * p->n_footer + (p->n_footer ? 12 : 4);
    int rows = AB_MAX(1, p->rows), cols = AB_MAX(1, p->cols);
    double cell_w = (W - key_w) / cols, cell_h = (top - bottom) / rows;
    int label_chars = 4;
    for (int k = 0; k < p->n_panels; k++)
        for (int b = 0; b < p->panels[k].n_bars; b++)
            label_chars = AB_MAX(label_chars, (int)strlen(p->panels[k].bars[b].label));
    double left_px = 16 + 7.0 * label_chars; /* DejaVu Sans 10: up to 7 px a character */

    put_head(g, p->name, p->title, p->width, p->height);
    fputs("unset key\nset grid xtics lc rgb \"#dddddd\"\nset tics font \",10\"\n"
          "set style fill solid 0.85 border rgb \"#333333\"\nset ytics scale 0\n",
          g);
    put_fig_frame(g, p->title);
    for (int k = 0; k < p->n_panels; k++) {
        const struct ab_gp_hbar_panel *pan = &p->panels[k];
        int r = k / cols, c = k % cols;
        put_margins(g, (struct box){(c * cell_w + left_px) / W, ((c + 1) * cell_w - 14) / W,
                                    (top - (r + 1) * cell_h + 52) / H,
                                    (top - r * cell_h - 38) / H});
        fputs("set title ", g);
        put_str(g, pan->title);
        fputs(" font \",11\"\nset xlabel ", g);
        put_str(g, pan->xlabel);
        fputs(" offset 0,0.3\n", g);
        double lo, hi;
        hbar_range(pan, &lo, &hi);
        /* room right of the longest bar for its text */
        double x_end = pan->logx ? hi * pow(hi / lo, 0.28) : hi + 0.28 * (hi - lo);
        fputs(pan->logx ? "set logscale x\n" : "unset logscale x\n", g);
        fputs("set format x \"%g\"\nset xrange [", g);
        put_g(g, lo);
        fputc(':', g);
        put_g(g, x_end);
        fprintf(g, "]\nset yrange [-0.7:%d.7]\n", AB_MAX(0, pan->n_bars - 1));
        fputs("lo = ", g);
        put_g(g, lo);
        fputs("; hi = ", g);
        put_g(g, hi);
        fputs("\nclip(v) = v > hi ? hi : (v < lo ? lo : v)\n", g);
        if (pan->n_bars == 0) {
            fputs("set ytics ()\nset label 1 \"no data\" at graph 0.5, graph 0.5 center\n"
                  "plot NaN notitle\nunset label 1\n",
                  g);
            continue;
        }
        fputs("set ytics (", g);
        for (int b = 0; b < pan->n_bars; b++) {
            put_str(g, pan->bars[b].label);
            fprintf(g, " %d%s", pan->n_bars - 1 - b, b + 1 < pan->n_bars ? ", " : ")\n");
        }
        fprintf(g,
                "plot \"%s.tsv\" index %d using (lo):1:(lo):(clip($2)):($1 - 0.36):($1 + 0.36):3 "
                "with boxxyerror lc rgb variable notitle, \\\n"
                "     \"\" index %d using 6:1:5 with labels left offset 0.5,0 font \",9\" "
                "notitle\n",
                p->name, k, k);
    }
    /* the key (possibly empty) and the footer: one last plot in the band at the right */
    put_margins(g, (struct box){(W - key_w) / W, 0.995, bottom / H, (top - 30) / H});
    fputs("unset border\nunset tics\nunset grid\nunset title\nunset xlabel\nunset ylabel\n"
          "unset logscale\nunset label\nset xrange [0:1]\nset yrange [0:1]\n",
          g);
    fprintf(g, "set key at screen %.4f, screen %.4f top left Left reverse samplen 1.5 "
               "spacing 1.3 font \",10\" noautotitle\n",
            (W - key_w + 4) / W, (top - 30) / H);
    put_footer(g, p->n_footer, p->footer, p->height);
    fputs("plot NaN notitle", g);
    for (int i = 0; i < p->n_keys; i++) {
        fprintf(g, ", \\\n     NaN with boxes lc rgb \"%s\" title ",
                fig_colour(p->key_colours[i]));
        put_str(g, p->key_titles[i]);
    }
    fputc('\n', g);
    fputs("unset multiplot\n", g);
    return commit_pair(&tsv, &gp);
}

/* ------------------------------------------------------------------ grouped vertical bars */

/* The y range of a bar panel: its own, or from its values and reference (gnuplot.h). */
static void vbar_range(const struct ab_gp_bar_panel *pan, int n_series, double *lo, double *hi)
{
    double vmax = -INFINITY, vmin = INFINITY;
    for (int i = 0; i < pan->n_groups * n_series; i++)
        if (isfinite(pan->v[i]) && (!pan->logy || pan->v[i] > 0))
            vmax = fmax(vmax, pan->v[i]), vmin = fmin(vmin, pan->v[i]);
    if (isfinite(pan->ref) && (!pan->logy || pan->ref > 0))
        vmax = fmax(vmax, pan->ref), vmin = fmin(vmin, pan->ref);
    if (!isfinite(vmax)) vmax = 1, vmin = pan->logy ? 0.1 : 0;
    *lo = isfinite(pan->ymin) ? pan->ymin : pan->logy ? vmin / 2 : fmin(0, vmin);
    if (pan->logy && !(*lo > 0)) *lo = vmax / 10;
    /* room above the tallest bar for its value */
    *hi = isfinite(pan->ymax) ? pan->ymax
          : pan->logy         ? vmax * pow(vmax / *lo, 0.2)
                              : vmax + 0.2 * (vmax - *lo);
    if (!(*hi > *lo)) *hi = pan->logy ? *lo * 10 : *lo + 1;
}

int ab_gp_bars_write(const char *dir, const struct ab_gp_bars *p)
{
    struct ab_outfile tsv, gp;
    int rc = open_pair(dir, p->name, &tsv, &gp);
    if (rc != AB_OK) return rc;
    FILE *t = tsv.f, *g = gp.f;
    int S = AB_MAX(1, p->n_series);

    fprintf(t, "# %s\n", p->title ? p->title : p->name);
    for (int k = 0; k < p->n_panels; k++) {
        const struct ab_gp_bar_panel *pan = &p->panels[k];
        fprintf(t, "%s# block %d: ", k ? "\n\n" : "", k);
        put_field(t, pan->title);
        fputs("\n# x\tgroup", t);
        for (int s = 0; s < p->n_series; s++) {
            fputc('\t', t);
            put_field(t, p->series_titles[s]);
        }
        fputc('\n', t);
        for (int gi = 0; gi < pan->n_groups; gi++) {
            fprintf(t, "%d\t", gi);
            put_field(t, pan->group_labels[gi]);
            for (int s = 0; s < p->n_series; s++) {
                fputc('\t', t);
                put_num(t, pan->v[gi * p->n_series + s]);
            }
            fputc('\n', t);
        }
    }

    double W = p->width, H = p->height, key_w = 0;
    int any_ref = 0;
    for (int k = 0; k < p->n_panels; k++) any_ref |= isfinite(p->panels[k].ref);
    for (int s = 0; s < p->n_series; s++) key_w = fmax(key_w, key_px(p->series_titles[s]));
    if (any_ref) key_w = fmax(key_w, key_px(p->ref_title ? p->ref_title : "reference"));
    key_w = fmin(key_w + 10, 0.3 * W);
    double top = H - 44, bottom = 4;
    int rows = AB_MAX(1, p->rows), cols = AB_MAX(1, p->cols);
    double cell_w = (W - key_w) / cols, cell_h = (top - bottom) / rows;
    double bw = 0.8 / S; /* a group is 0.8 wide; its bars touch */

    put_head(g, p->name, p->title, p->width, p->height);
    fputs("unset key\nset grid ytics lc rgb \"#dddddd\"\nset tics font \",10\"\n"
          "set style fill solid 0.85 border rgb \"#333333\"\nset xtics scale 0\n",
          g);
    put_fig_frame(g, p->title);
    for (int k = 0; k < p->n_panels; k++) {
        const struct ab_gp_bar_panel *pan = &p->panels[k];
        int r = k / cols, c = k % cols;
        put_margins(g, (struct box){(c * cell_w + 80) / W, ((c + 1) * cell_w - 16) / W,
                                    (top - (r + 1) * cell_h + 58) / H,
                                    (top - r * cell_h - 30) / H});
        fputs("set title ", g);
        put_str(g, pan->title);
        fputs(" font \",11\"\nset xlabel ", g);
        put_str(g, pan->xlabel);
        fputs(" offset 0,0.3\nset ylabel ", g);
        put_str(g, pan->ylabel);
        fputc('\n', g);
        fputs(pan->logy ? "set logscale y\n" : "unset logscale y\n", g);
        double lo, hi;
        vbar_range(pan, p->n_series, &lo, &hi);
        fputs("set format y \"%g\"\nset yrange [", g);
        put_g(g, lo);
        fputc(':', g);
        put_g(g, hi);
        fprintf(g, "]\nset xrange [-0.6:%.1f]\nbase = ", pan->n_groups - 0.4);
        put_g(g, pan->logy ? lo : fmax(lo, 0));
        fputc('\n', g);
        if (pan->n_groups == 0) {
            fputs("set xtics ()\nset label 1 \"no data\" at graph 0.5, graph 0.5 center\n"
                  "plot NaN notitle\nunset label 1\n",
                  g);
            continue;
        }
        fputs("set xtics (", g);
        for (int gi = 0; gi < pan->n_groups; gi++) {
            put_str(g, pan->group_labels[gi]);
            fprintf(g, " %d%s", gi, gi + 1 < pan->n_groups ? ", " : ")\n");
        }
        fputs("plot ", g);
        for (int s = 0; s < p->n_series; s++) {
            double off = (s - (S - 1) / 2.0) * bw;
            int col = 3 + s;
            fprintf(g, "%s\"%s.tsv\" index %d using ($1 + %.4f):%d:($1 + %.4f):($1 + %.4f):"
                       "(base):%d with boxxyerror lc rgb \"%s\" notitle, \\\n",
                    s ? ", \\\n     " : "", p->name, k, off, col, off - bw / 2, off + bw / 2, col,
                    fig_colour(p->series_colours[s]));
            fprintf(g, "     \"\" index %d using ($1 + %.4f):%d:(sprintf(", k, off, col);
            put_str(g, pan->fmt ? pan->fmt : "%.3g");
            fprintf(g, ", $%d)) with labels center offset 0,0.7 font \",8\" notitle, \\\n", col);
            fprintf(g, "     \"\" index %d using ($1 + %.4f):($%d == $%d ? NaN : base):(\"-\") "
                       "with labels center offset 0,0.7 font \",9\" notitle",
                    k, off, col, col);
        }
        if (isfinite(pan->ref)) {
            fputs(", \\\n     ", g);
            put_g(g, pan->ref);
            fputs(" with lines lc rgb \"#000000\" lw 2 dt 2 notitle", g);
        }
        fputc('\n', g);
    }
    put_margins(g, (struct box){(W - key_w) / W, 0.995, bottom / H, (top - 30) / H});
    fputs("unset border\nunset tics\nunset grid\nunset title\nunset xlabel\nunset ylabel\n"
          "unset logscale\nunset label\nset xrange [0:1]\nset yrange [0:1]\n",
          g);
    fprintf(g, "set key at screen %.4f, screen %.4f top left Left reverse samplen 1.5 "
               "spacing 1.3 font \",10\" noautotitle\n",
            (W - key_w + 4) / W, (top - 30) / H);
    fputs("plot NaN notitle", g);
    for (int s = 0; s < p->n_series; s++) {
        fprintf(g, ", \\\n     NaN with boxes lc rgb \"%s\" title ",
                fig_colour(p->series_colours[s]));
        put_str(g, p->series_titles[s]);
    }
    if (any_ref) {
        fputs(", \\\n     NaN with lines lc rgb \"#000000\" lw 2 dt 2 title ", g);
        put_str(g, p->ref_title ? p->ref_title : "reference");
    }
    fputs("\nunset multiplot\n", g);
    return commit_pair(&tsv, &gp);
}

/* ------------------------------------------------------------------ heatmaps */

/* A tic step that keeps about 16 labels on an axis of n cells. */
static int64_t tic_step(int64_t n) { return n <= 16 ? 1 : (n + 15) / 16; }

int ab_gp_heatmaps_write(const char *dir, const struct ab_gp_heatmaps *p)
{
    struct ab_outfile tsv, gp;
    int rc = open_pair(dir, p->name, &tsv, &gp);
    if (rc != AB_OK) return rc;
    FILE *t = tsv.f, *g = gp.f;

    fprintf(t, "# %s\n", p->title ? p->title : p->name);
    for (int k = 0; k < p->n_grids; k++) {
        const struct ab_gp_grid *gr = &p->grids[k];
        fprintf(t, "%s# block %d: ", k ? "\n\n" : "", k);
        put_field(t, gr->title);
        fprintf(t, " (%lld rows x %lld columns; row 0 first)\n", (long long)gr->rows,
                (long long)gr->cols);
        for (int64_t r = 0; r < gr->rows; r++)
            for (int64_t c = 0; c < gr->cols; c++) {
                put_num(t, gr->v[r * gr->cols + c]);
                fputc(c + 1 < gr->cols ? '\t' : '\n', t);
            }
    }

    /* layout: up to four panels per row (or per_row), each as wide as the row allows (less
     * the room of a colour box when every panel has its own), as tall as its grid's aspect
     * wants (clamped), plus room for its title and axis labels; the figure's height follows */
    int n = AB_MAX(1, p->n_grids), per_row = AB_MIN(n, p->per_row > 0 ? p->per_row : 4);
    int n_rows = (n + per_row - 1) / per_row;
    int64_t gr_rows = p->n_grids ? p->grids[0].rows : 1;
    int64_t gr_cols = p->n_grids ? p->grids[0].cols : 1;
    double left = 0.05, right = p->shared_scale ? 0.90 : 0.94, sx = p->shared_scale ? 0.04 : 0.11;
    double panel_w = p->width * ((right - left - (per_row - 1) * sx) / per_row) -
                     (p->shared_scale ? 0 : 60);
    double plot_h = fmin(fmax(panel_w * (double)gr_rows / (double)gr_cols, 60), 420);
    double head = 45, row_extra = 80, foot = 10;
    int height = (int)ceil(head + n_rows * (plot_h + row_extra) + foot);
    put_head(g, p->name, p->title, p->width, height);
    ab_gnuplot_palette(g);
    fprintf(g, "set multiplot layout %d,%d title ", n_rows, per_row);
    put_str(g, p->title);
    fprintf(g, " font \",12\" margins %.3f,%.3f,%.4f,%.4f spacing %.3f,%.4f\n", left, right,
            (foot + 45) / height, 1 - (head + 30) / height, sx, (row_extra) / height);
    fputs("unset key\nset tics scale 0 font \",8\"\nset size ratio -1\n", g);
    fputs("set xlabel ", g);
    put_str(g, p->xlabel);
    fputs(" offset 0,0.5\nset ylabel ", g);
    put_str(g, p->ylabel);
    fputs(" offset 1,0\nset cblabel ", g);
    put_str(g, p->cblabel);
    fputc('\n', g);
    fputs("set style fill solid 1.0 noborder\n", g);
    if (p->shared_scale) {
        if (p->logcb) fputs("set logscale cb\nset format cb \"%g\"\n", g);
        fputs("set cbrange [", g);
        put_g(g, p->lo);
        fputc(':', g);
        put_g(g, p->hi);
        fputs("]\nlo = ", g);
        put_g(g, p->lo);
        fputs("; hi = ", g);
        put_g(g, p->hi);
        fputs("\ncb(v) = v < lo ? lo : (v > hi ? hi : v)\n", g);
    }
    for (int k = 0; k < p->n_grids; k++) {
        const struct ab_gp_grid *gr = &p->grids[k];
        fputs("set title ", g);
        put_str(g, gr->title);
        fputs(" font \",10\"\n", g);
        fprintf(g, "set xrange [-0.5:%lld.5]\nset yrange [%lld.5:-0.5]\n",
                (long long)gr->cols - 1, (long long)gr->rows - 1);
        fprintf(g, "set xtics 0,%lld,%lld\nset ytics 0,%lld,%lld\n", (long long)tic_step(gr->cols),
                (long long)gr->cols - 1, (long long)tic_step(gr->rows), (long long)gr->rows - 1);
        if (p->shared_scale && k == 0)
            fputs("set colorbox user origin screen 0.925, screen 0.15 size screen 0.015, "
                  "screen 0.7\n",
                  g);
        else if (p->shared_scale)
            fputs("unset colorbox\n", g);
        else { /* its own scale, labelled at its two ends only: a one-row grid's colour box
                * is as short as the row, too short for more labels */
            double vlo = INFINITY, vhi = -INFINITY;
            for (int64_t i = 0; i < gr->rows * gr->cols; i++)
                if (isfinite(gr->v[i])) vlo = fmin(vlo, gr->v[i]), vhi = fmax(vhi, gr->v[i]);
            if (!(vhi > vlo)) vlo = isfinite(vlo) ? vlo - 0.5 : 0, vhi = vlo + 1;
            fprintf(g, "set cbrange [%.6g:%.6g]\nset cbtics (\"%.3g\" %.6g, \"%.3g\" %.6g)\n"
                       "set colorbox default\n",
                    vlo, vhi, vlo, vlo, vhi, vhi);
        }
        /* filled boxes, not `with image`: gnuplot draws no image of a single row */
        if (p->shared_scale)
            fprintf(g, "plot \"%s.tsv\" index %d matrix using 1:2:(0.5):(0.5):(cb($3)) with "
                       "boxxyerror fc palette notitle, \\\n"
                       "     \"\" index %d matrix using 1:($3 > hi ? $2 : NaN) with points pt 2 "
                       "ps 1.4 lw 2 lc rgb \"#000000\" notitle, \\\n"
                       "     \"\" index %d matrix using 1:($3 < lo ? $2 : NaN) with points pt 2 "
                       "ps 1.4 lw 2 lc rgb \"#ffffff\" notitle\n",
                    p->name, k, k, k);
        else
            fprintf(g, "plot \"%s.tsv\" index %d matrix using 1:2:(0.5):(0.5):3 with boxxyerror "
                       "fc palette notitle\n",
                    p->name, k);
    }
    fputs("unset multiplot\n", g);
    return commit_pair(&tsv, &gp);
}

/* ------------------------------------------------------------------ attention maps */

/* "10⁻⁶" for 10^e (e <= 0), "1" for e = 0: UTF-8 superscripts, which read at slide size where
 * "1e-06" does not. */
static void pow10_label(int e, char *buf, size_t cap)
{
    static const char *const sup[] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
    if (e == 0) {
        snprintf(buf, cap, "1");
        return;
    }
    char digits[16];
    snprintf(digits, sizeof digits, "%d", e < 0 ? -e : e);
    size_t n = (size_t)snprintf(buf, cap, "10%s", e < 0 ? "⁻" : "");
    for (const char *d = digits; *d && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s", sup[*d - '0']);
}

/* `set cbtics (...)`: each power of ten from floor to 1 (every second or third when there are
 * many), so both colour bars of a kept mask carry the same labels. */
static void put_prob_tics(FILE *g, double floor)
{
    int lo = (int)ceil(log10(floor) - 1e-9), step = lo >= -8 ? 1 : lo >= -16 ? 2 : 3;
    fputs("set cbtics (", g);
    for (int e = 0; e >= lo; e -= step) {
        char lab[48];
        pow10_label(e, lab, sizeof lab);
        fprintf(g, "%s\"%s\" 1e%d", e ? ", " : "", lab, e);
    }
    fputs(") scale 0.8 out\n", g);
}

/* One float32 of a binary matrix, in this machine's byte order (gnuplot reads it so). */
static void put_f32(FILE *f, double x)
{
    float v = (float)x;
    fwrite(&v, sizeof v, 1, f);
}

/* The grid as a gnuplot general binary matrix: the column count and each column's x, then per
 * row its y and its values. */
static void put_matrix(FILE *f, const struct ab_map_grid *gr)
{
    put_f32(f, (double)gr->width);
    for (int64_t x = 0; x < gr->width; x++) put_f32(f, gr->x0 + (double)x * gr->dx);
    for (int64_t y = 0; y < gr->height; y++) {
        put_f32(f, gr->y0 + (double)y * gr->dy);
        for (int64_t x = 0; x < gr->width; x++) put_f32(f, gr->v[y * gr->width + x]);
    }
}

int ab_gp_map_write(const char *dir, const struct ab_gp_map *p)
{
    const struct ab_map_grid *gr = p->grid;
    if (!gr || !gr->v || gr->width < 1 || gr->height < 1)
        return ab_fail(AB_E_USAGE, "'%s': empty map", p->name);
    if (!(p->floor > 0 && p->floor < 1))
        return ab_fail(AB_E_USAGE, "'%s': floor %g is not between 0 and 1", p->name, p->floor);
    struct ab_outfile bin, gp;
    char *a = ab_path_join(dir, p->name, ".bin"), *b = ab_path_join(dir, p->name, ".gp");
    int rc = !a || !b ? ab_fail(AB_E_NOMEM, "out of memory") : ab_outfile_open(&bin, a);
    if (rc == AB_OK && (rc = ab_outfile_open(&gp, b)) != AB_OK) ab_outfile_abort(&bin);
    free(a), free(b);
    if (rc != AB_OK) return rc;
    put_matrix(bin.f, gr);
    FILE *g = gp.f;

    /* head: how to re-run it, what the data holds */
    fprintf(g, "# %s.gp - %s\n", p->name, p->title ? p->title : p->name);
    if (p->subtitle) fprintf(g, "#   %s\n", p->subtitle);
    fprintf(g,
            "# Written by attnbench. Run from this folder:\n"
            "#   gnuplot -c %s.gp            (writes %s.png)\n"
            "#   gnuplot -c %s.gp OUT.png    (writes OUT.png)\n"
            "# Data: %s.bin, a gnuplot binary matrix of float32 in this machine's byte order:\n"
            "# the column count and each column's key position, then per row its query\n"
            "# position and %lld values: %s.\n",
            p->name, p->name, p->name, p->name, (long long)gr->width,
            p->kept ? "+p for a pixel with a kept key (p: the largest kept probability), -p\n"
                      "# for one whose keys were all dropped (p: the largest probability), NaN "
                      "where no key\n# is visible"
                    : "the largest attention probability among the cells of the pixel\n"
                      "# (max-pooled), NaN where no key is visible");
    fprintf(g, "out = (ARGC >= 1) ? ARG1 : \"%s.png\"\n", p->name);
    fprintf(g, "set terminal pngcairo size %d,%d font \"DejaVu Sans,14\" noenhanced\n", p->width,
            p->height);
    fputs("set encoding utf8\nset output out\n", g);
    fputs("floor = ", g);
    put_g(g, p->floor);
    fputs("\nclamp(p) = p < floor ? floor : p\n", g);

    /* layout: the image on the left, the colour bars (and key) on the right; the border
     * behind the image, so the first and last columns (a sink) are not hidden under it */
    const double l = 0.12, r = 0.78, bot = 0.11, top = 0.84, bx = r + 0.045, bw = 0.03;
    fprintf(g,
            "set lmargin at screen %.3f\nset rmargin at screen %.3f\n"
            "set bmargin at screen %.3f\nset tmargin at screen %.3f\n",
            l, r, bot, top);
    fputs("set border back\n", g);
    fputs("set label 101 ", g);
    put_str(g, p->title);
    fputs(" at screen 0.5, screen 0.955 center font \"DejaVu Sans:Bold,17\"\n", g);
    if (p->subtitle) {
        fputs("set label 102 ", g);
        put_str(g, p->subtitle);
        fputs(" at screen 0.5, screen 0.905 center\n", g);
    }
    fputs("set xlabel \"key position\"\nset ylabel \"query position\"\n"
          "set xtics out nomirror scale 0.8\nset ytics out nomirror scale 0.8\n"
          "set format x \"%.0f\"\nset format y \"%.0f\"\nunset key\n",
          g);
    fputs("set xrange [", g);
    put_g(g, -0.5);
    fputc(':', g);
    put_g(g, (double)gr->n_k - 0.5);
    fputs("]\nset yrange [", g); /* reversed: queries increase downward */
    put_g(g, gr->ymax);
    fputc(':', g);
    put_g(g, gr->ymin);
    fputs("]\n", g);
    /* masked cells: the image is transparent where NaN, over a neutral light grey */
    fputs("grey = \"#c8c8c8\"\n"
          "set object 1 rectangle from graph 0, graph 0 to graph 1, graph 1 behind "
          "fillcolor rgb grey fillstyle solid 1.0 noborder\n",
          g);
    /* the masked triangle of a causal map that shows every query: say what it is */
    if (p->causal && gr->ymin <= 0 && gr->ymax >= (double)gr->n_k - 1)
        fputs("set label 103 \"masked (causal)\" at graph 0.72, graph 0.72 center "
              "textcolor rgb \"#505050\" font \",16\"\n",
              g);
    fputs("set logscale cb\nset cbrange [floor:1]\n", g);
    put_prob_tics(g, p->floor);
    if (!p->kept) {
        ab_gnuplot_palette(g);
        fprintf(g,
                "set colorbox user origin screen %.3f, screen %.3f size screen %.3f, "
                "screen %.3f\n",
                bx, bot, bw, top - bot);
        fputs("set cblabel \"attention probability\" offset 1,0\n", g);
        fprintf(g, "plot \"%s.bin\" binary matrix using 1:2:(clamp($3)) with image notitle\n",
                p->name);
        return commit_pair(&bin, &gp);
    }

    /* a kept mask: two layers of one picture, each with its palette and colour bar, and a
     * key: the bars say what kept and dropped cells look like, a swatch what masked ones do */
    const double d0 = 0.22, d1 = 0.46, k0 = 0.56, k1 = top;
    fputs("set multiplot\n", g);
    fprintf(g, "set label 104 \"kept\" at screen %.3f, screen %.3f center font \",15\"\n",
            bx + bw / 2, k1 + 0.022);
    fprintf(g, "set label 105 \"dropped\" at screen %.3f, screen %.3f center font \",15\"\n",
            bx + bw / 2, d1 + 0.022);
    fprintf(g,
            "set object 2 rectangle from screen %.3f, screen %.3f to screen %.3f, "
            "screen %.3f front fillcolor rgb grey fillstyle solid 1.0 border lc rgb "
            "\"#000000\"\n",
            bx, bot, bx + bw, bot + 0.04);
    fprintf(g, "set label 106 \"masked\" at screen %.3f, screen %.3f left\n", bx + bw + 0.012,
            bot + 0.02);
    fprintf(g,
            "set label 107 \"attention probability\" at screen %.3f, screen %.3f center "
            "rotate by 90\n",
            0.975, (d0 + k1) / 2);
    fputs("# layer 1: dropped cells, near white where they carried little attention, dark red\n"
          "# where they carried much (a dropped sink or needle stands out)\n"
          "set palette defined (0 \"#fff8f5\", 0.5 \"#fee6dc\", 0.68 \"#fcbba1\", "
          "0.8 \"#fb6a4a\", 0.9 \"#de2d26\", 1 \"#99000d\")\n",
          g);
    fprintf(g,
            "set colorbox user origin screen %.3f, screen %.3f size screen %.3f, "
            "screen %.3f\n",
            bx, d0, bw, d1 - d0);
    fprintf(g,
            "plot \"%s.bin\" binary matrix using 1:2:($3 < 0 ? clamp(-$3) : NaN) with image "
            "notitle\n",
            p->name);
    fputs("# layer 2: kept cells in viridis, over the same axes\n"
          "unset object\nunset label\nunset xlabel\nunset ylabel\n"
          "set format x \"\"\nset format y \"\"\n",
          g);
    ab_gnuplot_palette(g);
    fprintf(g,
            "set colorbox user origin screen %.3f, screen %.3f size screen %.3f, "
            "screen %.3f\n",
            bx, k0, bw, k1 - k0);
    fprintf(g,
            "plot \"%s.bin\" binary matrix using 1:2:($3 > 0 ? clamp($3) : NaN) with image "
            "notitle\n",
            p->name);
    fputs("unset multiplot\n", g);
    return commit_pair(&bin, &gp);
}
