/* gnuplot.c - plot descriptions to .tsv + .gp, and running gnuplot on them (see gnuplot.h).
 *
 * The writers only format: every number the figure shows is in the .tsv, every decision about
 * layout is in the .gp, and both are plain text a person can edit and re-run. Numbers go to the
 * .tsv as the shortest decimal that reads back to the same double (io/csv.h), non-finite ones as
 * NaN (which gnuplot skips). gnuplot runs in a child process (fork, chdir into the figure's
 * folder, exec; only async-signal-safe calls between fork and exec, since OpenMP threads may
 * exist); its diagnostics come back through a pipe and the last line of them becomes the error
 * message when it fails. */
#include "io/gnuplot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/ab.h"
#include "io/csv.h"
#include "io/png_map.h"

/* ------------------------------------------------------------------ atomic text output */

int ab_outfile_open(struct ab_outfile *o, const char *path)
{
    *o = (struct ab_outfile){0};
    size_t len = strlen(path);
    o->path = strdup(path);
    o->tmp = malloc(len + 5);
    if (!o->path || !o->tmp) {
        ab_outfile_abort(o);
        return ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
    }
    memcpy(o->tmp, path, len);
    memcpy(o->tmp + len, ".tmp", 5);
    o->f = fopen(o->tmp, "w");
    if (!o->f) {
        int rc = ab_fail(AB_E_CREATE, "'%s': cannot create: %s", path, strerror(errno));
        free(o->path), free(o->tmp);
        *o = (struct ab_outfile){0};
        return rc;
    }
    return AB_OK;
}

int ab_outfile_commit(struct ab_outfile *o)
{
    int rc = AB_OK;
    if (ferror(o->f)) rc = ab_fail(AB_E_IO, "'%s': cannot write", o->path);
    if (fclose(o->f) != 0 && rc == AB_OK)
        rc = ab_fail(AB_E_IO, "'%s': cannot write: %s", o->path, strerror(errno));
    o->f = NULL;
    if (rc == AB_OK && rename(o->tmp, o->path) != 0)
        rc = ab_fail(AB_E_CREATE, "'%s': cannot create: %s", o->path, strerror(errno));
    if (rc != AB_OK) remove(o->tmp);
    free(o->path), free(o->tmp);
    *o = (struct ab_outfile){0};
    return rc;
}

void ab_outfile_abort(struct ab_outfile *o)
{
    if (o->f) {
        fclose(o->f);
        remove(o->tmp);
    }
    free(o->path), free(o->tmp);
    *o = (struct ab_outfile){0};
}

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

int ab_gnuplot_render(const char *gnuplot, const char *dir, const char *name)
{
    int rc = AB_OK;
    char *script = ab_path_join(".", name, ".gp"), *tmp_rel = ab_path_join(".", name, ".png.tmp");
    char *tmp = ab_path_join(dir, name, ".png.tmp"), *png = ab_path_join(dir, name, ".png");
    char diag[8192];
    size_t n_diag = 0;
    int fd[2] = {-1, -1};
    diag[0] = 0;
    if (!script || !tmp_rel || !tmp || !png) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    if (pipe2(fd, O_CLOEXEC) != 0) {
        rc = ab_fail(AB_E_INTERNAL, "cannot start gnuplot: %s", strerror(errno));
        goto done;
    }
    /* argv: script and output relative to dir ("./name.gp"), so the script reads its data by
     * relative path exactly as it does when a person runs it there */
    char *argv[] = {(char *)gnuplot, "-d", "-c", script + 2, tmp_rel + 2, NULL};
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
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !wrote) {
        char line[400];
        last_line(diag, line, sizeof line);
        rc = ab_fail(AB_E_INTERNAL, "'%s/%s.gp': gnuplot failed%s%s", dir, name,
                     line[0] ? ": " : (wrote ? "" : ": it wrote no picture"), line);
    } else if (rename(tmp, png) != 0) {
        rc = ab_fail(AB_E_CREATE, "'%s': cannot create: %s", png, strerror(errno));
    }
    if (rc != AB_OK && tmp) remove(tmp);
done:
    if (fd[0] >= 0) close(fd[0]);
    if (fd[1] >= 0) close(fd[1]);
    free(script), free(tmp_rel), free(tmp), free(png);
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

/* ------------------------------------------------------------------ bar charts */

/* x position of bar b of group gi: bars one unit apart, 1.5 units between groups. */
static double bar_x(const struct ab_gp_bar_panel *pan, int gi, int b)
{
    double x = 0;
    for (int i = 0; i < gi; i++) x += pan->groups[i].n_bars + 1.5;
    return x + b;
}

int ab_gp_bars_write(const char *dir, const struct ab_gp_bars *p)
{
    struct ab_outfile tsv, gp;
    int rc = open_pair(dir, p->name, &tsv, &gp);
    if (rc != AB_OK) return rc;
    FILE *t = tsv.f, *g = gp.f;

    fprintf(t, "# %s\n", p->title ? p->title : p->name);
    int max_style = 0;
    for (int k = 0; k < p->n_panels; k++) {
        const struct ab_gp_bar_panel *pan = &p->panels[k];
        fprintf(t, "%s# block %d: ", k ? "\n\n" : "", k);
        put_field(t, pan->title);
        fputs("\n# x\tvalue\tstyle\tlabel\tgroup\n", t);
        for (int gi = 0; gi < pan->n_groups; gi++)
            for (int b = 0; b < pan->groups[gi].n_bars; b++) {
                const struct ab_gp_bar *bar = &pan->groups[gi].bars[b];
                put_num(t, bar_x(pan, gi, b));
                fputc('\t', t);
                put_num(t, pan->logy && bar->value <= 0 ? NAN : bar->value);
                fprintf(t, "\t%d\t", bar->style + 1);
                put_field(t, bar->label);
                fputc('\t', t);
                put_field(t, pan->groups[gi].title);
                fputc('\n', t);
                max_style = AB_MAX(max_style, bar->style);
            }
    }

    put_head(g, p->name, p->title, p->width, p->height);
    for (int s = 0; s <= max_style; s++) put_style(g, s);
    fprintf(g, "set multiplot layout 1,%d title ", AB_MAX(1, p->n_panels));
    put_str(g, p->title);
    fprintf(g, " font \",12\" margins 0.06,0.99,%s,0.86 spacing 0.07\n",
            p->footer ? "0.26" : "0.22");
    fputs("unset key\nset grid ytics lc rgb \"#dddddd\"\n"
          "set style fill solid 0.85 border rgb \"#333333\"\nset boxwidth 0.8\n"
          "set xtics rotate by 45 right scale 0 font \",9\"\nset format y \"%g\"\n",
          g);
    for (int k = 0; k < p->n_panels; k++) {
        const struct ab_gp_bar_panel *pan = &p->panels[k];
        double lo = INFINITY, hi = -INFINITY, xmax = 0;
        for (int gi = 0; gi < pan->n_groups; gi++)
            for (int b = 0; b < pan->groups[gi].n_bars; b++) {
                double v = pan->groups[gi].bars[b].value;
                xmax = bar_x(pan, gi, b);
                if (isfinite(v) && (!pan->logy || v > 0)) lo = fmin(lo, v), hi = fmax(hi, v);
            }
        fputs("set title ", g);
        put_str(g, pan->title);
        fputs("\nset ylabel ", g);
        put_str(g, pan->ylabel);
        fputs("\nset xrange [", g);
        put_g(g, -1);
        fputc(':', g);
        put_g(g, xmax + 1);
        fputs("]\n", g);
        /* ranges with room for the value written over each bar */
        double y0 = pan->ymin, y1 = pan->ymax;
        if (!(hi >= lo)) { /* nothing to draw */
            fputs("unset logscale y\n", g);
            y0 = 0, y1 = 1;
        } else if (pan->logy) {
            fputs("set logscale y\n", g);
            if (!isfinite(y0))
                y0 = pow(10, floor(log10(lo)) - (lo / pow(10, floor(log10(lo))) < 2));
            if (!isfinite(y1)) y1 = hi * 3;
        } else {
            fputs("unset logscale y\n", g);
            if (!isfinite(y0)) y0 = fmin(0, lo);
            if (!isfinite(y1)) y1 = hi > 0 ? hi * 1.15 : 1;
        }
        fputs("set yrange [", g);
        put_g(g, y0);
        fputc(':', g);
        put_g(g, y1);
        fputs("]\n", g);
        int n_label = 0, n_arrow = 0;
        for (int gi = 0; gi < pan->n_groups; gi++) {
            const struct ab_gp_bar_group *gr = &pan->groups[gi];
            if (gr->n_bars <= 0) continue;
            double x0 = bar_x(pan, gi, 0), x1 = bar_x(pan, gi, gr->n_bars - 1);
            fprintf(g, "set label %d ", ++n_label);
            put_str(g, gr->title);
            fputs(" at first ", g);
            put_g(g, (x0 + x1) / 2);
            fputs(", graph 0.95 center font \",10\" front\n", g);
            if (gi > 0) {
                fprintf(g, "set arrow %d from first ", ++n_arrow);
                put_g(g, x0 - 1.25);
                fputs(", graph 0 to first ", g);
                put_g(g, x0 - 1.25);
                fputs(", graph 1 nohead dt 2 lc rgb \"#999999\"\n", g);
            }
            for (int b = 0; b < gr->n_bars; b++)
                if (!(isfinite(gr->bars[b].value) && (!pan->logy || gr->bars[b].value > 0))) {
                    fprintf(g, "set label %d ", ++n_label);
                    put_str(g, gr->bars[b].missing ? gr->bars[b].missing : "n/a");
                    fputs(" at first ", g);
                    put_g(g, bar_x(pan, gi, b));
                    fputs(", graph 0.03 rotate by 90 left tc rgb \"#777777\" font \",8\"\n", g);
                }
        }
        if (k == 0 && p->footer) {
            fprintf(g, "set label %d ", ++n_label);
            put_str(g, p->footer);
            fputs(" at screen 0.01, screen 0.025 left font \",9\"\n", g);
        }
        fprintf(g,
                "plot \"%s.tsv\" index %d using 1:2:3:xtic(4) with boxes lc variable notitle, \\\n"
                "     \"\" index %d using 1:2:(sprintf(\"%%.3g\", $2)) with labels offset 0,0.7 "
                "font \",8\" notitle\n",
                p->name, k, k);
        fputs("unset label\nunset arrow\n", g);
    }
    fputs("unset multiplot\n", g);
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

    /* layout: up to four panels per row, each as wide as the row allows (less the room of a
     * colour box when every panel has its own), as tall as its grid's aspect wants (clamped),
     * plus room for its title and axis labels; the figure's height follows */
    int n = AB_MAX(1, p->n_grids), per_row = AB_MIN(n, 4), n_rows = (n + per_row - 1) / per_row;
    int64_t gr_rows = p->n_grids ? p->grids[0].rows : 1;
    int64_t gr_cols = p->n_grids ? p->grids[0].cols : 1;
    double left = 0.05, right = p->shared_scale ? 0.90 : 0.97, sx = p->shared_scale ? 0.04 : 0.11;
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
    if (p->shared_scale) {
        if (p->logcb) fputs("set logscale cb\nset format cb \"%g\"\n", g);
        fputs("set cbrange [", g);
        put_g(g, p->lo);
        fputc(':', g);
        put_g(g, p->hi);
        fputs("]\n", g);
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
        else
            fputs("set autoscale cb\nset colorbox default\n", g);
        fprintf(g, "plot \"%s.tsv\" index %d matrix with image pixels notitle\n", p->name, k);
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
