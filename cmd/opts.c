/* opts.c - option parsing, error reporting, exit statuses, progress (a bar on a terminal, plain
 * lines in a log) and the one-line output contract shared by every command (see opts.h). */
#include "opts.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/decl.h"
#include "core/list.h"
#include "methods/method.h"

struct ab_common ab_common = {.seed = 1, .threads = 0, .progress = -1};

static const struct ab_opt common_opts[] = {
    {"seed", AB_OPT_INT, &ab_common.seed, "S", "random seed (default 1)"},
    {"threads", AB_OPT_INT, &ab_common.threads, "N", "threads for OpenMP and OpenBLAS (default: all cores)"},
    {"quiet", AB_OPT_FLAG, &ab_common.quiet, NULL,
     "no progress or chatter; a command that writes files prints only its main output's path"},
    {"verbose", AB_OPT_FLAG, &ab_common.verbose, NULL,
     "list every file written on stdout; more detail on stderr"},
    {"progress", AB_OPT_FLAG, NULL, NULL,
     "show the progress bar even when stderr is not a terminal (default there: a line every 10%)"},
    {"no-progress", AB_OPT_FLAG, NULL, NULL, "show no progress"},
    {NULL, AB_OPT_END, NULL, NULL, NULL},
};

static void print_table(const struct ab_opt *t)
{
    for (; t->name; t++) {
        char lhs[64];
        snprintf(lhs, sizeof lhs, "%s%s%s%s", strcmp(t->name, "o") ? "--" : "-", t->name,
                 t->arg ? " " : "", t->arg ? t->arg : "");
        printf("  %-24s %s\n", lhs, t->help);
    }
}

/* A declared table's rows, each with its default */
static void print_decl(const struct ab_decl *t)
{
    for (; t->name; t++) {
        char lhs[64], def[256] = "";
        snprintf(lhs, sizeof lhs, "%s%s%s%s", strcmp(t->name, "o") ? "--" : "-", t->name,
                 t->arg ? " " : "", t->arg ? t->arg : "");
        const char *shown = t->def;
        for (int i = 0; shown && t->aliases && t->aliases[i]; i += 2)
            if (!strcmp(t->aliases[i], shown) && t->aliases[i + 1] && !strcmp(shown, "default"))
                shown = t->aliases[i + 1]; /* the list a "default" alias stands for */
        if (shown && t->type != AB_DECL_FLAG) snprintf(def, sizeof def, " (default %s)", shown);
        printf("  %-24s %s%s\n", lhs, t->help, def);
    }
}

static void help_any(const char *cmd, const char *usage, const struct ab_opt *table,
                     const struct ab_decl *decl)
{
    printf("usage: %s\n\n", usage);
    printf("options of '%s':\n", cmd);
    if (table) print_table(table);
    if (decl) print_decl(decl);
    printf("  %-24s %s\n", "-h, --help", "show this help");
    printf("\ncommon options:\n");
    print_table(common_opts);
}

void ab_opts_help(const char *cmd, const char *usage, const struct ab_opt *table)
{
    help_any(cmd, usage, table, NULL);
}

void ab_opts_help_decl(const char *cmd, const char *usage, const struct ab_decl *decl)
{
    help_any(cmd, usage, NULL, decl);
}

static const struct ab_opt *find(const struct ab_opt *t, const char *name)
{
    for (; t->name; t++)
        if (!strcmp(t->name, name)) return t;
    return NULL;
}

/* Stores the text val into option o. Returns 0 or -1 (message printed). */
static int store(const char *cmd, const struct ab_opt *o, const char *val)
{
    char *end;
    errno = 0;
    switch (o->kind) {
    case AB_OPT_INT: {
        long long x = strtoll(val, &end, 0);
        if (errno || end == val || *end) break;
        *(int64_t *)o->ptr = x;
        return 0;
    }
    case AB_OPT_DOUBLE: {
        double x = strtod(val, &end);
        if (errno || end == val || *end || !isfinite(x)) break;
        *(double *)o->ptr = x;
        return 0;
    }
    case AB_OPT_STRING: *(const char **)o->ptr = val; return 0;
    case AB_OPT_MANY: {
        struct ab_opt_many *m = o->ptr;
        if (m->n == (int)(sizeof m->v / sizeof m->v[0])) {
            fprintf(stderr, "error: %s: option '--%s' given more than %d times\n", cmd, o->name,
                    m->n);
            return -1;
        }
        m->v[m->n++] = val;
        return 0;
    }
    default: break;
    }
    fprintf(stderr, "error: %s: option '--%s' wants %s, got '%s'\n", cmd, o->name,
            o->kind == AB_OPT_INT ? "an integer" : "a number", val);
    return -1;
}

/* 1 when a and b name the same existing file (same device and inode). */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && S_ISREG(sa.st_mode) &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The output (-o) may not be one of the command's inputs: writing it would replace an input
 * that the command reads (`run x.h5 -o x.h5`, `convert m.bin -o m.bin`). Inputs are the
 * positional arguments and every other file-valued option. Prints the error and returns 64,
 * or -1 when the output is no input. */
static int output_not_input(const char *cmd, const struct ab_opt *table,
                            const struct ab_decl *decl, const void *o, char **pos, int n_pos)
{
    const char *out = NULL;
    for (const struct ab_opt *t = table; t && t->name; t++)
        if (!strcmp(t->name, "o") && t->kind == AB_OPT_STRING) out = *(const char **)t->ptr;
    for (const struct ab_decl *d = decl; d && d->name; d++)
        if (d->flags & AB_DECL_OUTPUT) out = *(char *const *)(const void *)((const char *)o + d->offset);
    if (!out) return -1;
    for (int i = 0; i < n_pos; i++)
        if (same_file(out, pos[i])) {
            fprintf(stderr, "error: %s: the output '%s' is also an input ('%s'): name another "
                    "file with -o\n", cmd, out, pos[i]);
            return EX_AB_USAGE;
        }
    for (const struct ab_opt *t = table; t && t->name; t++) {
        if (t->kind != AB_OPT_STRING || !strcmp(t->name, "o")) continue;
        if (same_file(out, *(const char **)t->ptr)) {
            fprintf(stderr, "error: %s: the output '%s' is also the input of --%s: name another "
                    "file with -o\n", cmd, out, t->name);
            return EX_AB_USAGE;
        }
    }
    for (const struct ab_decl *d = decl; d && d->name; d++) {
        if (d->type != AB_DECL_STR || (d->flags & AB_DECL_OUTPUT)) continue;
        if (same_file(out, *(char *const *)(const void *)((const char *)o + d->offset))) {
            fprintf(stderr, "error: %s: the output '%s' is also the input of --%s: name another "
                    "file with -o\n", cmd, out, d->name);
            return EX_AB_USAGE;
        }
    }
    return -1;
}

/* "error: run: unknown option '--budget' (did you mean '--budgets'?)" */
static int unknown_option(const char *cmd, const char *arg, const char *name,
                          const struct ab_opt *table, const struct ab_decl *decl)
{
    const char *words[256];
    int n = 0;
    for (const struct ab_opt *t = table; t && t->name && n < 255; t++) words[n++] = t->name;
    for (const struct ab_decl *d = decl; d && d->name && n < 255; d++) words[n++] = d->name;
    for (const struct ab_opt *t = common_opts; t->name && n < 255; t++) words[n++] = t->name;
    words[n++] = "help";
    const char *near = ab_word_closest(name, words, n);
    if (near)
        fprintf(stderr, "error: %s: unknown option '%s' (did you mean '%s%s'?)\n", cmd, arg,
                strcmp(near, "o") ? "--" : "-", near);
    else
        fprintf(stderr, "error: %s: unknown option '%s' (see '%s --help')\n", cmd, arg, cmd);
    return EX_AB_USAGE;
}

/* The parser behind ab_opts_parse (table) and ab_opts_parse_decl (decl and its struct o). */
static int parse_any(const char *cmd, const char *usage, const struct ab_opt *table,
                     const struct ab_decl *decl, void *o, int argc, char **argv, char **pos,
                     int max_pos, int *n_pos)
{
    *n_pos = 0;
    int only_pos = 0;
    for (int a = 1; a < argc; a++) {
        char *arg = argv[a];
        if (only_pos || arg[0] != '-' || !arg[1]) {
            if (*n_pos >= max_pos) {
                fprintf(stderr, "error: %s: unexpected argument '%s' (see '%s --help')\n", cmd,
                        arg, cmd);
                return EX_AB_USAGE;
            }
            pos[(*n_pos)++] = arg;
            continue;
        }
        if (!strcmp(arg, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            help_any(cmd, usage, table, decl);
            return EX_AB_OK;
        }
        /* --name, --name=value, -o value */
        char name[64];
        const char *body = arg + (arg[1] == '-' ? 2 : 1), *eq = strchr(body, '=');
        size_t len = eq ? (size_t)(eq - body) : strlen(body);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, body, len);
        name[len] = 0;
        if (arg[1] != '-' && len != 1) return unknown_option(cmd, arg, name, table, decl);
        if (!strcmp(name, "progress") || !strcmp(name, "no-progress")) {
            ab_common.progress = name[0] == 'p' ? AB_PROGRESS_BAR : AB_PROGRESS_OFF;
            continue;
        }
        const struct ab_decl *d = NULL;
        for (d = decl; d && d->name && strcmp(d->name, name); d++) continue;
        if (d && d->name) {
            const char *val = eq ? eq + 1 : NULL;
            if (d->type == AB_DECL_FLAG && val) {
                fprintf(stderr, "error: %s: option '--%s' takes no value\n", cmd, d->name);
                return EX_AB_USAGE;
            }
            if (d->type == AB_DECL_FLAG) val = "true";
            if (!val && a + 1 >= argc) {
                fprintf(stderr, "error: %s: option '%s' needs a value\n", cmd, arg);
                return EX_AB_USAGE;
            }
            if (!val) val = argv[++a];
            char *joined = NULL; /* a repeated AB_DECL_APPEND list: the items so far, then these */
            const char *now = d->type == AB_DECL_LIST && (d->flags & AB_DECL_APPEND)
                                  ? *(char *const *)((const char *)o + d->offset)
                                  : NULL;
            if (now && *val && asprintf(&joined, "%s,%s", now, val) < 0) joined = NULL;
            int rc = ab_decl_set(d, o, joined ? joined : val);
            free(joined);
            if (rc) { /* a bad value (64), or no memory to keep it (65) */
                fprintf(stderr, "error: %s: option '%s%s'%s %s\n", cmd,
                        strcmp(d->name, "o") ? "--" : "-", d->name, rc == AB_E_USAGE ? "" : ":",
                        ab_errmsg());
                return ab_exit_status(rc);
            }
            continue;
        }
        const struct ab_opt *t = table ? find(table, name) : NULL;
        if (!t) t = find(common_opts, name);
        if (!t) return unknown_option(cmd, arg, name, table, decl);
        if (t->kind == AB_OPT_FLAG) {
            if (eq) {
                fprintf(stderr, "error: %s: option '--%s' takes no value\n", cmd, t->name);
                return EX_AB_USAGE;
            }
            *(int *)t->ptr = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (a + 1 >= argc) {
                fprintf(stderr, "error: %s: option '%s' needs a value\n", cmd, arg);
                return EX_AB_USAGE;
            }
            val = argv[++a];
        }
        if (store(cmd, t, val)) return EX_AB_USAGE;
    }
    if (ab_common.threads < 0 || ab_common.threads > 4096) {
        fprintf(stderr, "error: %s: --threads must be between 0 and 4096\n", cmd);
        return EX_AB_USAGE;
    }
    int st = output_not_input(cmd, table, decl, o, pos, *n_pos);
    if (st >= 0) return st;
    ab_threads_set((int)ab_common.threads);
    if (ab_common.progress < 0)
        ab_common.progress = ab_common.quiet ? AB_PROGRESS_OFF
                             : isatty(2)     ? AB_PROGRESS_BAR
                                             : AB_PROGRESS_LINES;
    return -1;
}

int ab_opts_parse(const char *cmd, const char *usage, const struct ab_opt *table, int argc,
                  char **argv, char **pos, int max_pos, int *n_pos)
{
    return parse_any(cmd, usage, table, NULL, NULL, argc, argv, pos, max_pos, n_pos);
}

int ab_opts_parse_decl(const char *cmd, const char *usage, const struct ab_decl *decl, void *o,
                       int argc, char **argv, char **pos, int max_pos, int *n_pos)
{
    return parse_any(cmd, usage, NULL, decl, o, argc, argv, pos, max_pos, n_pos);
}

int ab_exit_status(int code)
{
    switch (code) {
    case AB_OK: return EX_AB_OK;
    case AB_E_USAGE: return EX_AB_USAGE;
    case AB_E_DATA:
    case AB_E_TOOBIG:
    case AB_E_NOMEM: return EX_AB_DATA;
    case AB_E_NOFILE: return EX_AB_NOINPUT;
    case AB_E_CREATE: return EX_AB_CANTCREAT;
    case AB_E_IO: return EX_AB_IOERR;
    case AB_E_NOTOOL: return EX_AB_NOTOOL;
    default: return EX_AB_SOFTWARE;
    }
}

int ab_cmd_fail(int code)
{
    const char *msg = ab_errmsg();
    fprintf(stderr, "error: %s\n", msg && *msg ? msg : ab_strerror(code));
    return ab_exit_status(code);
}

int ab_cmd_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status;
}

void ab_fmt_duration(char *buf, size_t cap, double seconds)
{
    long long s = seconds > 0 ? (long long)(seconds + 0.5) : 0;
    if (s < 60)
        snprintf(buf, cap, "%llds", s);
    else if (s < 3600)
        snprintf(buf, cap, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, cap, "%lldh%02lldm", s / 3600, s % 3600 / 60);
}

/* Seconds left after el seconds: the rate so far carried over the rest, of the estimated work
 * when there is one, else of the count: (total - done) x el / (done - skipped). -1: unknown
 * yet. */
static double time_left(const struct ab_progress *p, double el)
{
    if (p->work_total > 0 && p->work_done > p->work_skipped)
        return el * (p->work_total - p->work_done) / (p->work_done - p->work_skipped);
    if (p->work_total <= 0 && p->done > p->skipped)
        return el * (double)(p->total - p->done) / (double)(p->done - p->skipped);
    return -1;
}

/* One complete line: "run: 40% (1234/3085 cells), 2m10s elapsed, about 3m15s left" (time_left).
 * Called with p->lock held when the ticker runs. */
static void line(struct ab_progress *p, double now)
{
    double f = p->total > 0 ? (double)p->done / (double)p->total : 1, el = now - p->t0;
    if (f > 1) f = 1;
    char e[32], left[64] = "";
    ab_fmt_duration(e, sizeof e, el);
    double t_left = time_left(p, el);
    if (t_left >= 0 && f < 1) {
        char t[32];
        ab_fmt_duration(t, sizeof t, t_left);
        snprintf(left, sizeof left, ", about %s left", t);
    }
    fprintf(stderr, "%s: %d%% (%lld/%lld %s), %s elapsed%s\n", p->label, (int)(100 * f),
            (long long)p->done, (long long)p->total, p->unit, e, left);
    fflush(stderr);
    p->last = now;
    p->line_done = p->done;
}

/* The ticker: wakes every second; a line when AB_PROGRESS_LINE_S seconds passed without one. */
static void *tick(void *arg)
{
    struct ab_progress *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&p->wake, &p->lock, &ts);
        double t = ab_now();
        if (!p->stopping && t - (p->line_done < 0 ? p->t0 : p->last) >= AB_PROGRESS_LINE_S)
            line(p, t);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

void ab_progress_start(struct ab_progress *p, const char *label, const char *unit, int64_t total)
{
    *p = (struct ab_progress){.label = label,
                              .unit = unit,
                              .total = total,
                              .t0 = ab_now(),
                              .mode = ab_common.progress,
                              .line_done = -1};
    if (p->mode != AB_PROGRESS_LINES) return;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->ticking = pthread_create(&p->ticker, NULL, tick, p) == 0; /* else: lines at tenths only */
}

/* Ends the ticker (lines mode). */
static void ticker_end(struct ab_progress *p)
{
    if (p->mode != AB_PROGRESS_LINES) return;
    if (p->ticking) {
        pthread_mutex_lock(&p->lock);
        p->stopping = 1;
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->ticker, NULL);
        p->ticking = 0;
    }
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    p->mode = AB_PROGRESS_OFF;
}

static void draw(struct ab_progress *p)
{
    double f = p->total > 0 ? (double)p->done / (double)p->total : 1, el = ab_now() - p->t0;
    int w = 30, fill = (int)(f * w + 0.5);
    char bar[40];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    double eta = time_left(p, el);
    if (eta < 0) eta = 0;
    int len = fprintf(stderr, "\r%-10s [%s] %3.0f%% %lld/%lld  %.0fs elapsed, %.0fs left ",
                      p->label, bar, 100 * f, (long long)p->done, (long long)p->total, el, eta);
    p->drawn = len > 1 ? len - 1 : 0;
    fflush(stderr);
}

void ab_progress_work(struct ab_progress *p, double done, double total)
{
    if (p->ticking) pthread_mutex_lock(&p->lock); /* the ticker reads it */
    if (p->work_total <= 0) p->work_skipped = done;
    p->work_done = done, p->work_total = total;
    if (p->ticking) pthread_mutex_unlock(&p->lock);
}

void ab_progress_step(struct ab_progress *p, int64_t n)
{
    if (p->mode == AB_PROGRESS_OFF) {
        p->done += n;
        return;
    }
    double t = ab_now();
    if (p->mode == AB_PROGRESS_LINES) {
        /* a line at each tenth of the work (the ticker adds one a minute while a tenth takes
         * longer); none in the first seconds, so a short job prints only its 100% line */
        pthread_mutex_lock(&p->lock);
        p->done += n;
        int tenth =
            p->total > 0 ? (int)(10 * (p->done < p->total ? p->done : p->total) / p->total) : 10;
        if (tenth > p->tenth && (t - p->t0 >= AB_PROGRESS_QUIET_S || p->done >= p->total)) {
            p->tenth = tenth;
            line(p, t);
        }
        pthread_mutex_unlock(&p->lock);
        return;
    }
    p->done += n;
    if (t - p->last < 0.1 && p->done < p->total) return;
    p->last = t;
    draw(p);
}

void ab_progress_pause(struct ab_progress *p)
{
    if (p->mode != AB_PROGRESS_BAR || !p->drawn) return;
    fprintf(stderr, "\r%*s\r", p->drawn, "");
    fflush(stderr);
    p->drawn = 0;
    p->last = 0; /* redrawn at the next step */
}

void ab_progress_end(struct ab_progress *p)
{
    if (p->mode == AB_PROGRESS_LINES) {
        ticker_end(p);
        if (p->total > 0 && p->done >= p->total && p->line_done != p->done) line(p, ab_now());
        return;
    }
    if (p->mode != AB_PROGRESS_BAR) return;
    p->done = p->total;
    draw(p);
    fputc('\n', stderr);
    p->mode = AB_PROGRESS_OFF;
}

void ab_progress_engine(void *user, int64_t done, int64_t total)
{
    struct ab_progress *p = user;
    ab_progress_step(p, p->base + done - p->done);
    (void)total;
}

void ab_progress_engine_total(void *user, int64_t done, int64_t total)
{
    struct ab_progress *p = user;
    if (p->total != total) {
        if (p->ticking) pthread_mutex_lock(&p->lock);
        p->total = total;
        if (p->ticking) pthread_mutex_unlock(&p->lock);
    }
    ab_progress_step(p, done - p->done);
}

void ab_progress_stop(struct ab_progress *p)
{
    ab_progress_pause(p);
    ticker_end(p);
    p->mode = AB_PROGRESS_OFF;
}

const char *ab_path_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

void ab_out_file(const char *path)
{
    if (ab_common.verbose && !ab_common.quiet) printf("%s\n", path);
}

void ab_out_main(const char *cmd, const char *main_path, const char *detail_fmt, ...)
{
    if (ab_common.quiet) {
        if (!ab_common.nested) printf("%s\n", main_path);
    } else {
        printf("%s: %s", cmd, main_path);
        if (detail_fmt) {
            va_list ap;
            va_start(ap, detail_fmt);
            fputs(" (", stdout);
            vprintf(detail_fmt, ap);
            fputc(')', stdout);
            va_end(ap);
        }
        fputc('\n', stdout);
    }
    fflush(stdout);
}

int ab_opts_methods(const char *cmd, const char *list, unsigned phases, int causal,
                    const struct ab_method **out, int cap, int *n)
{
    if (ab_methods_resolve(list, phases, causal, out, cap, n))
        return ab_cmd_error(EX_AB_USAGE, "%s: %s", cmd, ab_errmsg());
    return -1;
}

int ab_opts_budgets(const char *cmd, const char *list, double *out, int cap, int *n)
{
    const char *s = list;
    char item[64];
    int rc;
    *n = 0;
    while ((rc = ab_list_next(&s, 0, item, sizeof item, NULL, "--budgets")) == 1) {
        char *end;
        double t = strtod(item, &end);
        if (*end || !(t > 0 && t <= 1))
            return ab_cmd_error(EX_AB_USAGE, "%s: budget '%s' is not a FLOP ratio in (0, 1]", cmd, item);
        if (*n == cap) return ab_cmd_error(EX_AB_USAGE, "%s: at most %d budgets", cmd, cap);
        out[(*n)++] = t;
    }
    if (rc < 0) return ab_cmd_fail(rc);
    if (!*n) return ab_cmd_error(EX_AB_USAGE, "%s: --budgets is empty", cmd);
    return -1;
}
