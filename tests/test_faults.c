/* test_faults.c - fault injection (issue 15): gen, run, report and capture under an allocation
 * that fails and under a write that fails, on small inputs.
 *
 * Allocation: the LD_PRELOAD shim tests/fault/fault_inject.c ($AB_FAULT_LIB) fails the Nth
 * allocation made by attnbench's own code. A first run counts them (C); then N sweeps every
 * allocation up to SWEEP_ALL and a stride beyond, so the whole of [1, C] is sampled. Writes:
 * RLIMIT_FSIZE (SIGXFSZ ignored) makes the kernel fail every write past the limit with EFBIG,
 * exactly where a full disk fails with ENOSPC; gnuplot, run by report, inherits it.
 *
 * Each faulted run must either recover for real (exit 0 with outputs identical to an unfaulted
 * run's) or fail cleanly: exit 65 (allocation) or 74 (write), exactly one line on stderr
 * starting "error:" (naming the output for a write), no output and no temporary left, and every
 * input byte for byte as it was. Never a signal, never exit 70. The shim and AddressSanitizer
 * do not mix: a sanitizer build skips these tests. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

enum { SWEEP_ALL = 128, SWEEP_TAIL = 24, MAX_FILES = 256, MAX_REPORTED = 8 };

/* ---------------------------------------------------------------- running a faulted command */

/* Appends what fd gives to *buf (malloc'd, NUL-terminated). 0 at end of file. */
static int drain(int fd, char **buf, size_t *len)
{
    char chunk[4096];
    ssize_t got = read(fd, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) return 1;
    if (got <= 0) return 0;
    char *grown = realloc(*buf, *len + (size_t)got + 1);
    cr_assert(grown != NULL);
    memcpy(grown + *len, chunk, (size_t)got);
    *len += (size_t)got;
    grown[*len] = 0;
    *buf = grown;
    return 1;
}

/* Runs the shell command cmd with a file size limit of fsize bytes (none when negative; SIGXFSZ
 * ignored, so writes past it fail with EFBIG), stdout and stderr through pipes (a file would be
 * under the limit too) into *out and *err (malloc'd). Returns the exit status, or 128 + the
 * signal that ended the command. */
static int run_sh(long fsize, char **out, char **err, const char *cmd)
{
    int po[2], pe[2];
    cr_assert(pipe(po) == 0 && pipe(pe) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        if (fsize >= 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {(rlim_t)fsize, (rlim_t)fsize};
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(125);
        }
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0) _exit(125);
        close(po[0]), close(pe[0]), close(po[1]), close(pe[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(po[1]), close(pe[1]);
    *out = calloc(1, 1), *err = calloc(1, 1);
    size_t n_out = 0, n_err = 0;
    struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    for (int open_fds = 2; open_fds > 0;) {
        if (poll(fds, 2, -1) < 0) {
            cr_assert(errno == EINTR);
            continue;
        }
        for (int i = 0; i < 2; i++)
            if (fds[i].fd >= 0 && fds[i].revents &&
                !drain(fds[i].fd, i ? err : out, i ? &n_err : &n_out)) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) cr_assert(errno == EINTR);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* `attnbench args` under the shim failing allocation n (0: none) and counting into count_file
 * (NULL: not), or under a file size limit (fsize >= 0). */
static int run_faulted(int n, const char *count_file, long fsize, char **out, char **err,
                       const char *args)
{
    const char *lib = getenv("AB_FAULT_LIB"), *bin = getenv("AB_BIN");
    cr_assert(lib && bin, "AB_FAULT_LIB and AB_BIN must be set");
    char cmd[8192];
    if (n > 0 || count_file)
        snprintf(cmd, sizeof cmd, "LD_PRELOAD='%s' AB_FAULT_ALLOC=%d%s%s%s exec '%s' %s", lib, n,
                 count_file ? " AB_FAULT_COUNT='" : "", count_file ? count_file : "",
                 count_file ? "'" : "", bin, args);
    else
        snprintf(cmd, sizeof cmd, "exec '%s' %s", bin, args);
    return run_sh(fsize, out, err, cmd);
}

/* 1 when this build cannot take the shim: a sanitizer build (its runtime must come first and
 * reserves terabytes of shadow memory, so it cannot start under ulimit -v either). */
static int sanitizer_build(void)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "ulimit -v 1500000; '%s' --version >/dev/null 2>&1",
             getenv("AB_BIN"));
    int st = system(cmd);
    return !(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---------------------------------------------------------------- what a command leaves */

/* The files of an output: the file itself, or every file of a folder (a report). */
struct snap {
    int n;
    char name[MAX_FILES][512];
    unsigned char *data[MAX_FILES];
    size_t len[MAX_FILES];
};

static void snap_add(struct snap *s, const char *path)
{
    cr_assert(s->n < MAX_FILES);
    snprintf(s->name[s->n], sizeof s->name[0], "%s", path);
    s->data[s->n] = t_slurp(path, &s->len[s->n]);
    cr_assert(s->data[s->n] != NULL, "cannot read '%s'", path);
    s->n++;
}

/* Adds path (a file, or a folder's files in name order) to s. */
static void snap_take(struct snap *s, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        snap_add(s, path);
        return;
    }
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    cr_assert(n >= 0);
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, names[i]->d_name);
            snap_add(s, p);
        }
        free(names[i]);
    }
    free(names);
}

static void snap_free(struct snap *s)
{
    for (int i = 0; i < s->n; i++) free(s->data[i]);
    s->n = 0;
}

/* Takes out of b (n bytes, in place; returns the new length) what differs between two runs of
 * one command: time stamps "YYYY-MM-DDTHH:MM:SSZ" become X's, and in a CSV table the time_s
 * column (measured time) is emptied. */
static size_t normalise(const char *name, unsigned char *b, size_t n)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";
    for (size_t i = 0; i + 20 <= n; i++) {
        size_t k = 0;
        while (k < 20 && (pat[k] == 'd' ? b[i + k] >= '0' && b[i + k] <= '9' : b[i + k] == pat[k]))
            k++;
        if (k == 20) memset(b + i, 'X', 20);
    }
    size_t len = strlen(name);
    if (len < 4 || strcmp(name + len - 4, ".csv")) return n;
    int col = -1, c = 0;
    for (size_t i = 0, f0 = 0; i <= n && col < 0; i++)
        if (i == n || b[i] == ',' || b[i] == '\n') {
            if (i - f0 == 6 && !memcmp(b + f0, "time_s", 6)) col = c;
            c++, f0 = i + 1;
            if (i < n && b[i] == '\n') break;
        }
    if (col < 0) return n;
    size_t m = 0;
    c = 0;
    for (size_t i = 0; i < n; i++) { /* every line's field col dropped (header included) */
        if (b[i] == '\n') c = 0;
        if (c != col || b[i] == ',' || b[i] == '\n') b[m++] = b[i];
        if (b[i] == ',') c++;
    }
    return m;
}

/* NULL when got holds the same files as ref (up to normalise() with `loose`), else what
 * differs (static). */
static const char *snap_diff(struct snap *ref, struct snap *got, int loose)
{
    static char why[600];
    if (ref->n != got->n) {
        snprintf(why, sizeof why, "%d files instead of %d", got->n, ref->n);
        return why;
    }
    for (int i = 0; i < ref->n; i++) {
        size_t a = loose ? normalise(ref->name[i], ref->data[i], ref->len[i]) : ref->len[i];
        size_t b = loose ? normalise(got->name[i], got->data[i], got->len[i]) : got->len[i];
        ref->len[i] = a, got->len[i] = b;
        if (strcmp(ref->name[i], got->name[i]) || a != b || memcmp(ref->data[i], got->data[i], a)) {
            snprintf(why, sizeof why, "'%s' differs from the unfaulted run's '%s'", got->name[i],
                     ref->name[i]);
            return why;
        }
    }
    return NULL;
}

/* A temporary ("*.tmp") anywhere in dir or its sub-folders (a writer's, or a report's). */
static int tmp_left_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' && (n == 1 || (n == 2 && e->d_name[1] == '.'))) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        found = (n > 4 && !strcmp(e->d_name + n - 4, ".tmp")) || tmp_left_in(p);
    }
    closedir(d);
    return found;
}

static void remove_tree(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    cr_assert_eq(system(cmd), 0);
}

/* ---------------------------------------------------------------- one command under faults */

struct target {
    const char *dir;     /* its scratch folder */
    char args[4096];     /* attnbench's arguments */
    const char *outs[3]; /* its outputs: files, or a report's folder */
    int n_outs;
    const char *ins[3]; /* its inputs: never to change */
    int n_ins;
    const char *results; /* an output that is a results file: compared by `check` (time_s) */
    const char *journal; /* run's journal: a failed run keeps it when it holds finished heads
                            (README "Long sweeps"); removed before each run like the outputs */
};

struct state {
    const struct target *t;
    struct snap ref, ins;
    char ref_results[1024];
    int n_bad;
};

static void outs_remove(const struct target *t)
{
    for (int i = 0; i < t->n_outs; i++) remove_tree(t->outs[i]);
    if (t->journal) remove_tree(t->journal);
}

/* The unfaulted run: its outputs as the reference, the inputs as they are. */
static void state_init(struct state *s, const struct target *t)
{
    *s = (struct state){.t = t};
    outs_remove(t);
    char *out, *err;
    int st = run_faulted(0, NULL, -1, &out, &err, t->args);
    cr_assert_eq(st, 0, "the unfaulted run failed: %s", err);
    free(out), free(err);
    for (int i = 0; i < t->n_outs; i++)
        if (t->outs[i] != t->results) snap_take(&s->ref, t->outs[i]);
    if (t->results) {
        snprintf(s->ref_results, sizeof s->ref_results, "%s/reference-results.h5", t->dir);
        cr_assert_eq(rename(t->results, s->ref_results), 0);
    }
    for (int i = 0; i < t->n_ins; i++) snap_take(&s->ins, t->ins[i]);
    cr_assert_eq(s->ins.n, t->n_ins, "an input is missing");
}

static void state_free(struct state *s)
{
    snap_free(&s->ref);
    snap_free(&s->ins);
}

/* Checks what one faulted run (exit status st, stderr err) left; `failed` is the exit status a
 * clean failure has, `names` what its message must contain (NULL: anything). Reports at most
 * MAX_REPORTED problems per sweep; *s->n_bad counts them all. */
static void check_run(struct state *s, const char *what, int st, const char *err, int failed,
                      const char *names)
{
    const struct target *t = s->t;
    char why[1000] = "";
    if (st == 0) {
        struct snap got = {0};
        for (int i = 0; i < t->n_outs; i++)
            if (t->outs[i] != t->results) snap_take(&got, t->outs[i]);
        const char *d = snap_diff(&s->ref, &got, 1);
        if (d) snprintf(why, sizeof why, "exit 0 but %s", d);
        snap_free(&got);
        if (!why[0] && t->results) {
            char *o, *e, args[3000];
            snprintf(args, sizeof args, "check '%s' --baseline '%s' --any-change --rtol 0 --atol 0",
                     t->results, s->ref_results);
            if (run_faulted(0, NULL, -1, &o, &e, args) != 0)
                snprintf(why, sizeof why, "exit 0 but other results: %s", o);
            free(o), free(e);
        }
    } else {
        if (st != failed)
            snprintf(why, sizeof why, "exit %d%s (want %d)", st, st > 128 ? " (a signal)" : "",
                     failed);
        else if (t_count_lines(err) != 1 || strncmp(err, "error: ", 7))
            snprintf(why, sizeof why, "%d lines on stderr", t_count_lines(err));
        else if (names && !strstr(err, names))
            snprintf(why, sizeof why, "the message does not name '%s'", names);
        for (int i = 0; !why[0] && i < t->n_outs; i++)
            if (t_exists(t->outs[i])) snprintf(why, sizeof why, "'%s' left", t->outs[i]);
    }
    if (!why[0] && tmp_left_in(t->dir)) snprintf(why, sizeof why, "a temporary left");
    if (!why[0]) {
        struct snap now = {0};
        for (int i = 0; i < t->n_ins; i++) snap_take(&now, t->ins[i]);
        const char *d = snap_diff(&s->ins, &now, 0);
        if (d) snprintf(why, sizeof why, "an input changed: %s", d);
        snap_free(&now);
    }
    if (why[0] && s->n_bad++ < MAX_REPORTED) cr_expect_fail("%s: %s; stderr: %s", what, why, err);
}

/* The allocation swept after n of c: every one up to SWEEP_ALL, then about SWEEP_TAIL more
 * spread evenly up to c itself; past c when done. */
static int next_n(int n, int c)
{
    if (n < SWEEP_ALL || n >= c) return n + 1;
    int stride = (c - SWEEP_ALL + SWEEP_TAIL - 1) / SWEEP_TAIL;
    return n + stride < c ? n + stride : c;
}

/* (a) Allocation failures: counts the allocations, then fails the Nth for N from next_n. The
 * scratch folder goes when all went well. Returns the count. */
static int sweep_alloc(const struct target *t)
{
    struct state s;
    state_init(&s, t);
    char count_file[1024], *out, *err;
    snprintf(count_file, sizeof count_file, "%s/allocations", t->dir);
    outs_remove(t);
    cr_assert_eq(run_faulted(0, count_file, -1, &out, &err, t->args), 0, "%s", err);
    free(out), free(err);
    char *text = (char *)t_slurp(count_file, NULL);
    int c = text ? atoi(text) : 0;
    free(text);
    remove(count_file);
    cr_assert(c > 0, "the shim counted no allocation");
    int swept = 0;
    for (int n = 1; n <= c; n = next_n(n, c), swept++) {
        outs_remove(t);
        int st = run_faulted(n, NULL, -1, &out, &err, t->args);
        char what[64];
        snprintf(what, sizeof what, "allocation %d of %d", n, c);
        check_run(&s, what, st, err, 65, NULL);
        free(out), free(err);
    }
    cr_expect_eq(s.n_bad, 0, "%d of %d faulted runs went wrong", s.n_bad, swept);
    cr_log_info("%s: %d allocations counted, %d swept", t->args, c, swept);
    state_free(&s);
    if (!s.n_bad) remove_tree(t->dir);
    return c;
}

/* (b) Write failures: file size limits from 0 to just below the largest output file. The
 * scratch folder goes when all went well. */
static void sweep_fsize(const struct target *t, const char *names)
{
    struct state s;
    state_init(&s, t);
    size_t largest = 0;
    for (int i = 0; i < s.ref.n; i++) largest = s.ref.len[i] > largest ? s.ref.len[i] : largest;
    struct stat rs;
    if (t->results && stat(s.ref_results, &rs) == 0 && (size_t)rs.st_size > largest)
        largest = (size_t)rs.st_size;
    cr_assert(largest > 4096);
    const long limits[] = {0, 1, 4096, (long)largest / 2, (long)largest - 1};
    for (int i = 0; i < 5; i++) {
        outs_remove(t);
        char *out, *err, what[64];
        int st = run_faulted(0, NULL, limits[i], &out, &err, t->args);
        snprintf(what, sizeof what, "file size limit %ld (largest output %zu)", limits[i], largest);
        check_run(&s, what, st, err, 74, names);
        free(out), free(err);
    }
    cr_expect_eq(s.n_bad, 0, "%d runs under a file size limit went wrong", s.n_bad);
    state_free(&s);
    if (!s.n_bad) remove_tree(t->dir);
}

/* ---------------------------------------------------------------- fixtures */

/* A fresh scratch folder for one test. */
static const char *scratch(const char *name)
{
    const char *d = t_path(name);
    remove_tree(d);
    cr_assert_eq(mkdir(d, 0777), 0);
    return d;
}

static char path_buf[16][1024];
static int path_next;

/* dir/name in a ring of buffers. */
static const char *in_dir(const char *dir, const char *name)
{
    char *p = path_buf[path_next++ % 16];
    snprintf(p, sizeof path_buf[0], "%s/%s", dir, name);
    return p;
}

/* A small workload with a retrieve task (every generator component of the induction profile,
 * the task planting) at dir/w.h5, made without faults. */
static const char *small_workload(const char *dir)
{
    const char *w = in_dir(dir, "w.h5");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err,
                       "gen --layers 1 --heads 2 --kv-heads 1 --n 128 --d 32 "
                       "--tasks retrieve --threads 1 -o '%s'",
                       w),
                 0, "%s", err);
    free(out), free(err);
    return w;
}

static void gen_target(struct target *t, const char *dir)
{
    *t = (struct target){.dir = dir, .n_outs = 1};
    t->outs[0] = in_dir(dir, "out.h5");
    snprintf(t->args, sizeof t->args,
             "gen --layers 1 --heads 2 --kv-heads 1 --n 128 --d 32 "
             "--tasks retrieve --threads 1 -o '%s'",
             t->outs[0]);
}

/* run on the small workload: dense, a static window and quest's pages (kept-key attention) */
static void run_target(struct target *t, const char *dir)
{
    *t = (struct target){.dir = dir, .n_outs = 3, .n_ins = 1};
    t->ins[0] = small_workload(dir);
    t->outs[0] = t->results = in_dir(dir, "r.h5");
    t->outs[1] = in_dir(dir, "r.csv");
    t->outs[2] = in_dir(dir, "r-summary.csv");
    t->journal = in_dir(dir, "r.h5.journal");
    snprintf(t->args, sizeof t->args,
             "run '%s' --methods dense,window,quest --budgets 0.5 "
             "--threads 1 --no-progress -o '%s'",
             t->ins[0], t->outs[0]);
}

/* report of that run's results, maps drawn from the workload; gnuplot given (NULL: on PATH) */
static void report_target(struct target *t, const char *dir, const char *gnuplot)
{
    *t = (struct target){.dir = dir, .n_outs = 1, .n_ins = 2};
    t->ins[0] = small_workload(dir);
    t->ins[1] = in_dir(dir, "res.h5");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err,
                       "run '%s' --methods dense,window,quest --budgets 0.5 "
                       "--threads 1 --no-progress -o '%s'",
                       t->ins[0], t->ins[1]),
                 0, "%s", err);
    free(out), free(err);
    t->outs[0] = in_dir(dir, "rep");
    char gp[1100] = "";
    if (gnuplot) snprintf(gp, sizeof gp, "--gnuplot '%s' ", gnuplot);
    snprintf(t->args, sizeof t->args, "report '%s' --threads 1 %s-o '%s'", t->ins[1], gp,
             t->outs[0]);
}

/* capture with the real stories260K model: the tokenizer, a greedy continuation, the writer */
static void capture_target(struct target *t, const char *dir)
{
    const char *shared = getenv("AB_SHARED");
    cr_assert(shared != NULL, "AB_SHARED is not set");
    *t = (struct target){.dir = dir, .n_outs = 1, .n_ins = 2};
    char *model = path_buf[path_next++ % 16], *tok = path_buf[path_next++ % 16];
    snprintf(model, sizeof path_buf[0], "%s/models/stories260K/stories260K.bin", shared);
    snprintf(tok, sizeof path_buf[0], "%s/models/stories260K/tok512.bin", shared);
    t->ins[0] = model, t->ins[1] = tok;
    t->outs[0] = in_dir(dir, "cap.h5");
    snprintf(t->args, sizeof t->args,
             "capture --model '%s' --prompt 'Once upon' --generate 4 "
             "--threads 1 -o '%s'",
             model, t->outs[0]);
}

/* A stand-in for gnuplot for the allocation sweeps (gnuplot runs without the shim, so the real
 * one only costs time): the picture is the script followed by a PNG's closing IEND chunk. */
static const char *fake_gnuplot(const char *dir)
{
    const char *p = in_dir(dir, "fake-gnuplot");
    FILE *f = fopen(p, "w");
    cr_assert(f != NULL);
    fputs("#!/bin/sh\ncat \"$3\" > \"$4\" && printf '\\0\\0\\0\\0IEND\\256B`\\202' >> \"$4\"\n", f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(chmod(p, 0755), 0);
    return p;
}

/* ---------------------------------------------------------------- tests */

Test(faults, gen_allocation_failures)
{
    if (sanitizer_build()) cr_skip_test("the allocation shim and a sanitizer runtime do not mix");
    struct target t;
    gen_target(&t, scratch("faults-gen"));
    sweep_alloc(&t);
}

Test(faults, run_allocation_failures)
{
    if (sanitizer_build()) cr_skip_test("the allocation shim and a sanitizer runtime do not mix");
    struct target t;
    run_target(&t, scratch("faults-run"));
    sweep_alloc(&t);
}

Test(faults, report_allocation_failures)
{
    if (sanitizer_build()) cr_skip_test("the allocation shim and a sanitizer runtime do not mix");
    struct target t;
    const char *dir = scratch("faults-report");
    report_target(&t, dir, fake_gnuplot(dir));
    sweep_alloc(&t);
}

Test(faults, capture_allocation_failures)
{
    if (sanitizer_build()) cr_skip_test("the allocation shim and a sanitizer runtime do not mix");
    struct target t;
    capture_target(&t, scratch("faults-capture"));
    sweep_alloc(&t);
}

Test(faults, gen_write_failures)
{
    struct target t;
    gen_target(&t, scratch("faults-gen-fsize"));
    sweep_fsize(&t, t.outs[0]);
}

Test(faults, run_write_failures)
{
    struct target t;
    run_target(&t, scratch("faults-run-fsize"));
    sweep_fsize(&t, in_dir(t.dir, "r"));
}

/* gnuplot writes the pictures, under the same limit: a picture it cuts short is caught */
Test(faults, report_write_failures)
{
    struct target t;
    report_target(&t, scratch("faults-report-fsize"), NULL);
    sweep_fsize(&t, in_dir(t.dir, "rep/"));
}

/* A report that fails over an earlier report leaves that report as it was: the files it had
 * already replaced come back (ab_outputs_end), nothing new stays, no ".old" or ".tmp". */
Test(faults, a_failed_report_restores_the_report_it_replaced)
{
    struct target t;
    report_target(&t, scratch("faults-report-replace"), NULL);
    char *out, *err;
    int st = run_faulted(0, NULL, -1, &out, &err, t.args);
    cr_assert_eq(st, 0, "%s", err);
    free(out), free(err);
    FILE *f = fopen(in_dir(t.outs[0], "report.md"), "a"); /* the old report, told apart */
    cr_assert(f && fputs("an earlier report\n", f) >= 0 && fclose(f) == 0);
    struct snap before = {0}, after = {0};
    snap_take(&before, t.outs[0]);
    struct stat rs;
    cr_assert_eq(stat(in_dir(t.outs[0], "report.md"), &rs), 0);
    long limits[] = {(long)rs.st_size + 64, 40000}; /* after report.md; among the pictures */
    for (int i = 0; i < 2; i++) {
        st = run_faulted(0, NULL, limits[i], &out, &err, t.args);
        cr_expect_eq(st, 74, "limit %ld: exit %d: %s", limits[i], st, err);
        snap_take(&after, t.outs[0]);
        const char *why = snap_diff(&before, &after, 0);
        cr_expect(why == NULL, "limit %ld: %s", limits[i], why ? why : "");
        for (int k = 0; k < after.n; k++) {
            size_t n = strlen(after.name[k]);
            cr_expect(n < 4 || strcmp(after.name[k] + n - 4, ".old"), "%s left", after.name[k]);
        }
        cr_expect(!tmp_left_in(t.dir), "limit %ld: a temporary was left", limits[i]);
        snap_free(&after);
        free(out), free(err);
    }
    snap_free(&before);
    remove_tree(t.dir);
}

Test(faults, capture_write_failures)
{
    struct target t;
    capture_target(&t, scratch("faults-capture-fsize"));
    sweep_fsize(&t, t.outs[0]);
}

/* A command whose product is stdout: stdout on a full disk is exit 74 and one line. */
Test(faults, stdout_on_a_full_disk)
{
    const char *bin = getenv("AB_BIN");
    cr_assert(bin != NULL);
    const char *dir = scratch("faults-stdout");
    const char *w = small_workload(dir);
    const char *cmds[] = {"methods", "methods window", "info '%s'", "--version"};
    for (int i = 0; i < 4; i++) {
        char args[1200], cmd[2400], *out, *err;
        snprintf(args, sizeof args, cmds[i], w);
        snprintf(cmd, sizeof cmd, "'%s' %s >/dev/full", bin, args);
        int st = run_sh(-1, &out, &err, cmd);
        cr_expect_eq(st, 74, "%s: exit %d: %s", args, st, err);
        cr_expect(t_count_lines(err) == 1 && strstr(err, "error: cannot write to standard output"),
                  "%s: %s", args, err);
        free(out), free(err);
    }
}
