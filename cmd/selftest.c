/* selftest.c - `attnbench selftest`: the generic battery (lib/eval/battery.h) on method rows,
 * above all a plugin's: every property on every row, each check in a child process (fork), so a
 * row that crashes or hangs is reported by row and property and the others still run.
 *
 * Exit status: 0 when every check passed or does not apply, 1 (EX_AB_REGRESSION, as `check`)
 * when one failed, crashed or timed out, 64 / 65 / 66 for bad options and plugins. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/list.h"
#include "eval/battery.h"
#include "io/json_out.h"
#include "methods/method.h"
#include "opts.h"

static const char *usage_text =
    "attnbench selftest [NAME...] [--plugin SO]... [--property LIST] [--timeout S] [--no-fork] [--json]\n"
    "  (rows: the NAMEs; else the plugins' rows; else every row)";

/* What one check ended as. */
struct outcome {
    int verdict;     /* enum ab_verdict, or CRASHED / TIMEOUT */
    char why[512];
};
enum { CRASHED = 10, TIMEOUT = 11 };

/* In the child: a fatal signal writes where it happened (the crash record: byte CRASHED, then
 * the function) to the pipe before the default action ends the process. */
static int crash_fd = -1;
static void on_crash(int sig)
{
    const char *w = ab_battery_where();
    char rec[128];
    size_t n = 0;
    rec[n++] = (char)CRASHED;
    while (*w && n < sizeof rec - 1) rec[n++] = *w++;
    rec[n++] = 0;
    ssize_t ignored = write(crash_fd, rec, n);
    (void)ignored;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Runs the check in a child: its verdict byte and words come back through a pipe; a signal (with
 * the function it hit, from the crash record), an exit without a verdict or the timeout is the
 * outcome instead. */
static void check_forked(const struct ab_method *m, int p, double timeout, struct outcome *out)
{
    int fd[2];
    fflush(stdout), fflush(stderr);
    if (pipe(fd)) {
        out->verdict = CRASHED;
        snprintf(out->why, sizeof out->why, "cannot make a pipe: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]);
        out->verdict = CRASHED;
        snprintf(out->why, sizeof out->why, "cannot fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        close(fd[0]);
        crash_fd = fd[1];
        const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
        for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) signal(fatal[i], on_crash);
        char buf[1 + sizeof out->why];
        buf[0] = (char)ab_battery_check(m, p, buf + 1, sizeof out->why);
        size_t len = 1 + strlen(buf + 1), off = 0;
        while (off < len) {
            ssize_t w = write(fd[1], buf + off, len - off);
            if (w <= 0) break;
            off += (size_t)w;
        }
        _exit(0);
    }
    close(fd[1]);
    char buf[1 + sizeof out->why];
    size_t got = 0;
    double t0 = ab_now();
    int timed_out = 0;
    for (;;) {
        int left_ms = (int)((timeout - (ab_now() - t0)) * 1000);
        if (left_ms <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pf = {.fd = fd[0], .events = POLLIN};
        int r = poll(&pf, 1, left_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue; /* timeout: the loop's head decides */
        ssize_t n = read(fd[0], buf + got, sizeof buf - 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* the child closed its end: done or dead */
        got += (size_t)n;
        if (got == sizeof buf - 1) break;
    }
    close(fd[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
    if (timed_out) {
        out->verdict = TIMEOUT;
        snprintf(out->why, sizeof out->why, "no verdict after %g s (killed)", timeout);
    } else if (WIFSIGNALED(status)) {
        out->verdict = CRASHED;
        buf[got < sizeof buf ? got : sizeof buf - 1] = 0;
        if (got > 1 && (unsigned char)buf[0] == CRASHED && buf[1])
            snprintf(out->why, sizeof out->why, "crashed in %.100s: signal %d (%s)", buf + 1,
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            snprintf(out->why, sizeof out->why, "crashed: signal %d (%s)", WTERMSIG(status),
                     strsignal(WTERMSIG(status)));
    } else if (got == 0 || (unsigned char)buf[0] > AB_VERDICT_FAIL) {
        out->verdict = CRASHED;
        snprintf(out->why, sizeof out->why, "ended without a verdict (exit status %d)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    } else {
        buf[got] = 0;
        out->verdict = buf[0];
        snprintf(out->why, sizeof out->why, "%s", buf + 1);
    }
}

static const char *verdict_word(int v)
{
    switch (v) {
    case AB_VERDICT_PASS: return "pass";
    case AB_VERDICT_SKIP: return "n/a";
    case AB_VERDICT_FAIL: return "FAIL";
    case CRASHED: return "CRASH";
    default: return "TIMEOUT";
    }
}

int cmd_selftest(int argc, char **argv)
{
    struct ab_opt_many plugins = {0};
    const char *props = NULL;
    double timeout = 300;
    int no_fork = 0, json = 0;
    const struct ab_opt opts[] = {
        {"plugin", AB_OPT_MANY, &plugins, "SO", "load method rows from this plugin and check them (repeatable)"},
        {"property", AB_OPT_STRING, &props, "LIST", "check only these properties (row, cost, largest, mask, const-v, ledger, dist, subset, prepare, engine)"},
        {"timeout", AB_OPT_DOUBLE, &timeout, "S", "a check still running after S seconds fails as a timeout (default 300)"},
        {"no-fork", AB_OPT_FLAG, &no_fork, NULL, "run the checks in this process (for a debugger; a crash ends the command)"},
        {"json", AB_OPT_FLAG, &json, NULL, "print one JSON document (schema attnbench/selftest/1) instead of the table"},
        {NULL, AB_OPT_END, NULL, NULL, NULL}};
    char *pos[256];
    int n_pos, st = ab_opts_parse("selftest", usage_text, opts, argc, argv, pos, 256, &n_pos);
    if (st >= 0) return st;
    if (!(timeout > 0 && timeout <= 86400))
        return ab_cmd_error(EX_AB_USAGE, "selftest: --timeout wants seconds in (0, 86400], got %g", timeout);
    int builtin = ab_method_count();
    for (int i = 0; i < plugins.n; i++) {
        int rc = ab_plugin_load(plugins.v[i]);
        if (rc) return ab_cmd_fail(rc);
    }
    /* the properties */
    int want[AB_PROP_COUNT], n_props = 0;
    if (props) {
        const char *names[AB_PROP_COUNT + 1];
        for (int p = 0; p < AB_PROP_COUNT; p++) names[p] = ab_prop_name(p);
        names[AB_PROP_COUNT] = NULL;
        char item[64];
        const char *s = props;
        for (int r; (r = ab_list_next(&s, 0, item, sizeof item, NULL, "--property")) != 0;) {
            if (r < 0) return ab_cmd_fail(r);
            int p = ab_prop_find(item);
            if (p < 0) {
                const char *near = ab_word_closest(item, names, AB_PROP_COUNT);
                return ab_cmd_error(EX_AB_USAGE, "selftest: unknown property '%s'%s%s%s", item,
                                    near ? " (did you mean '" : " (see --help)", near ? near : "", near ? "'?)" : "");
            }
            want[n_props++] = p;
        }
        if (!n_props) return ab_cmd_error(EX_AB_USAGE, "selftest: --property names no property");
    } else {
        for (int p = 0; p < AB_PROP_COUNT; p++) want[n_props++] = p;
    }
    /* the rows */
    const struct ab_method *rows[1024];
    int n_rows = 0;
    if (n_pos) {
        for (int i = 0; i < n_pos; i++) {
            const struct ab_method *m = ab_method_find(pos[i]);
            if (!m) {
                int rc = ab_methods_resolve(pos[i], AB_PHASE_PREFILL | AB_PHASE_DECODE, 0, rows, 1, &n_rows);
                return ab_cmd_fail(rc ? rc : AB_E_USAGE);
            }
            rows[n_rows++] = m;
        }
    } else {
        for (int i = plugins.n ? builtin : 0; i < ab_method_count() && n_rows < 1024; i++)
            rows[n_rows++] = ab_method_at(i);
    }
    int failed_rows = 0, failed_checks = 0, checks = 0;
    struct ab_json_doc d;
    struct ab_json *jrows = NULL;
    if (json) {
        ab_json_begin(&d);
        ab_json_str(&d, d.root, "schema", "attnbench/selftest/1");
        jrows = ab_json_arr(&d, d.root, "rows");
    } else {
        printf("selftest: %d row%s x %d propert%s, %s\n", n_rows, n_rows == 1 ? "" : "s", n_props,
               n_props == 1 ? "y" : "ies", no_fork ? "in this process" : "each check in a child process");
    }
    for (int i = 0; i < n_rows; i++) {
        const struct ab_method *m = rows[i];
        const char *from = ab_method_origin(m);
        struct ab_json *jr = NULL, *jc = NULL;
        if (json) {
            jr = ab_json_obj(&d, jrows, NULL);
            ab_json_str(&d, jr, "name", m->name);
            if (from) ab_json_str(&d, jr, "plugin", from);
            else ab_json_null(&d, jr, "plugin");
            jc = ab_json_arr(&d, jr, "checks");
        } else {
            printf("%s%s%s%s\n", m->name, from ? " (plugin " : "", from ? from : "", from ? ")" : "");
        }
        int row_failed = 0;
        for (int k = 0; k < n_props; k++) {
            int p = want[k];
            struct outcome o = {0};
            double t0 = ab_now();
            if (no_fork)
                o.verdict = ab_battery_check(m, p, o.why, sizeof o.why);
            else
                check_forked(m, p, timeout, &o);
            double dt = ab_now() - t0;
            checks++;
            int bad = o.verdict != AB_VERDICT_PASS && o.verdict != AB_VERDICT_SKIP;
            failed_checks += bad, row_failed |= bad;
            if (json) {
                struct ab_json *c = ab_json_obj(&d, jc, NULL);
                ab_json_str(&d, c, "property", ab_prop_name(p));
                ab_json_str(&d, c, "verdict", o.verdict == AB_VERDICT_SKIP ? "n/a" : verdict_word(o.verdict));
                ab_json_str(&d, c, "detail", o.why);
                ab_json_num(&d, c, "seconds", dt);
            } else {
                printf("  %-7s %-8s %s%s\n", verdict_word(o.verdict), ab_prop_name(p),
                       o.verdict == AB_VERDICT_PASS ? ab_prop_says(p) : o.why,
                       dt >= 10 ? "  (slow)" : "");
            }
            fflush(stdout);
        }
        failed_rows += row_failed;
    }
    if (json) {
        ab_json_int(&d, d.root, "checks", checks);
        ab_json_int(&d, d.root, "failed_checks", failed_checks);
        ab_json_int(&d, d.root, "failed_rows", failed_rows);
        int rc = ab_json_print(&d, stdout);
        if (rc) return ab_cmd_fail(rc);
    } else {
        printf("\n%d row%s: %d passed every property that applies, %d failed (%d of %d checks)\n",
               n_rows, n_rows == 1 ? "" : "s", n_rows - failed_rows, failed_rows, failed_checks, checks);
    }
    return failed_rows ? EX_AB_REGRESSION : EX_AB_OK;
}
