/* ab.c - status codes, per-thread error detail, logging, aligned allocation, threads and build
 * facts (see ab.h). */
#include "core/ab.h"

#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ab_config.h"

/* OpenBLAS extensions (declared in its cblas.h on Debian, repeated here for other builds). */
void openblas_set_num_threads(int n);
char *openblas_get_config(void);

const char *ab_strerror(int code)
{
    switch (code) {
    case AB_OK: return "success";
    case AB_E_USAGE: return "usage error";
    case AB_E_DATA: return "bad input data";
    case AB_E_NOFILE: return "input file missing";
    case AB_E_TOOBIG: return "too large for memory";
    case AB_E_NOMEM: return "out of memory";
    case AB_E_INTERNAL: return "internal error";
    case AB_E_CREATE: return "cannot create output";
    case AB_E_IO: return "i/o error";
    case AB_E_NOTOOL: return "external tool missing";
    default: return "unknown error";
    }
}

static _Thread_local char errmsg[1024];

int ab_fail(int code, const char *fmt, ...)
{
    /* format into a scratch buffer first: the arguments may include ab_errmsg() itself, so a
     * caller can prefix the detail of a failure it passes on */
    char msg[sizeof errmsg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(errmsg, msg, sizeof msg);
    return code;
}

const char *ab_errmsg(void) { return errmsg; }

static ab_log_fn log_fn;
static void *log_user;
static int log_max = AB_LOG_WARN;

void ab_log_set(ab_log_fn fn, void *user, int max_level)
{
    log_fn = fn;
    log_user = user;
    log_max = max_level;
}

void ab_log(int level, const char *fmt, ...)
{
    if (!log_fn || level > log_max) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_user);
}

void *ab_alloc(size_t n)
{
    if (n == 0) return NULL;
    size_t rounded = (n + 63) / 64 * 64;
    if (rounded < n) return NULL;
    void *p = aligned_alloc(64, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

void ab_free(void *p) { free(p); }

/* The outputs being written as a unit: one entry per temporary named while open (its name, of
 * which the first path_len characters are the final path), marked once committed; a file it
 * replaced is kept under the temporary's name with ".old" for ".tmp" (backed_up) until the
 * unit ends, so taking the unit back puts the old file back. */
struct out_entry {
    size_t path_len;
    int committed, backed_up;
    char tmp[];
};
static struct {
    pthread_mutex_t lock;
    int depth;
    size_t n, cap;
    struct out_entry **e;
} outs = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Remembers tmp (the temporary of a path of path_len characters). 0, or -1 out of memory. */
static int outs_add(const char *tmp, size_t path_len)
{
    int rc = 0;
    pthread_mutex_lock(&outs.lock);
    if (outs.depth > 0) {
        struct out_entry *e = malloc(sizeof *e + strlen(tmp) + 1);
        if (e && outs.n == outs.cap) {
            size_t cap = outs.cap ? 2 * outs.cap : 64;
            struct out_entry **grown = realloc(outs.e, cap * sizeof *grown);
            if (grown) outs.e = grown, outs.cap = cap;
        }
        if (e && outs.n < outs.cap) {
            *e = (struct out_entry){.path_len = path_len};
            strcpy(e->tmp, tmp);
            outs.e[outs.n++] = e;
        } else {
            free(e);
            rc = -1;
        }
    }
    pthread_mutex_unlock(&outs.lock);
    return rc;
}

char *ab_tmp_path(const char *path)
{
    static unsigned long counter;
    unsigned long k = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    size_t len = strlen(path), n = len + 64;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s.%ld.%lu.tmp", path, (long)getpid(), k);
    if (s && outs_add(s, len)) {
        free(s);
        s = NULL;
    }
    return s;
}

/* e's backup name into buf (the temporary's name, ".tmp" -> ".old"); NULL if it has none. */
static const char *backup_name(const struct out_entry *e, char *buf, size_t cap)
{
    size_t n = strlen(e->tmp);
    if (n < 4 || n >= cap || strcmp(e->tmp + n - 4, ".tmp")) return NULL;
    memcpy(buf, e->tmp, n - 4);
    memcpy(buf + n - 4, ".old", 5);
    return buf;
}

int ab_tmp_commit(const char *tmp, const char *path)
{
    pthread_mutex_lock(&outs.lock);
    struct out_entry *e = NULL;
    for (size_t i = outs.n; i-- > 0 && !e;)
        if (!strcmp(outs.e[i]->tmp, tmp)) e = outs.e[i];
    char old[4096];
    const char *bak = e ? backup_name(e, old, sizeof old) : NULL;
    if (bak && link(path, bak) == 0) e->backed_up = 1; /* no file there (or no hard links): none */
    int rc = rename(tmp, path);
    if (e && rc == 0) e->committed = 1;
    if (e && rc != 0 && e->backed_up) unlink(bak), e->backed_up = 0;
    pthread_mutex_unlock(&outs.lock);
    return rc;
}

int ab_outfile_open(struct ab_outfile *o, const char *path)
{
    *o = (struct ab_outfile){0};
    o->path = strdup(path);
    o->tmp = ab_tmp_path(path);
    if (!o->path || !o->tmp) {
        ab_outfile_abort(o);
        return ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
    }
    o->f = fopen(o->tmp, "wb");
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
    errno = 0;
    if (fflush(o->f) != 0 || ferror(o->f)) /* a failed write fails its flush again: the reason */
        rc = ab_fail(AB_E_IO, "'%s': cannot write: %s", o->path,
                     errno ? strerror(errno) : "write error");
    if (fclose(o->f) != 0 && rc == AB_OK)
        rc = ab_fail(AB_E_IO, "'%s': cannot write: %s", o->path, strerror(errno));
    o->f = NULL;
    if (rc == AB_OK && ab_tmp_commit(o->tmp, o->path) != 0)
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

size_t ab_outputs_begin(void)
{
    pthread_mutex_lock(&outs.lock);
    outs.depth++;
    size_t mark = outs.n;
    pthread_mutex_unlock(&outs.lock);
    return mark;
}

void ab_outputs_end(size_t mark, int remove_them)
{
    pthread_mutex_lock(&outs.lock);
    if (--outs.depth > 0 && !remove_them) { /* the outer unit keeps them */
        pthread_mutex_unlock(&outs.lock);
        return;
    }
    for (size_t i = mark; i < outs.n; i++) {
        struct out_entry *e = outs.e[i];
        char old[4096];
        const char *bak = e->backed_up ? backup_name(e, old, sizeof old) : NULL;
        e->tmp[e->path_len] = 0; /* the final path */
        if (remove_them && e->committed && bak)
            rename(bak, e->tmp); /* the file it replaced comes back */
        else if (remove_them && e->committed)
            remove(e->tmp);
        else if (bak)
            unlink(bak);
        free(e);
    }
    outs.n = mark;
    if (outs.depth == 0) {
        free(outs.e);
        outs.e = NULL, outs.cap = 0;
    }
    pthread_mutex_unlock(&outs.lock);
}

size_t ab_size_mul(size_t n_items, size_t size)
{
    if (n_items && size > SIZE_MAX / n_items) return 0;
    return n_items * size;
}

uint64_t ab_phys_mem(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/* The first number after `key` in file path (a /proc or /sys file), or -1. */
static double read_number(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    while (fgets(line, sizeof line, f)) {
        if (key && strncmp(line, key, strlen(key))) continue;
        char *p = line + (key ? strlen(key) : 0), *end;
        double x = strtod(p, &end);
        if (end != p) v = x;
        break;
    }
    fclose(f);
    return v;
}

/* The memory this process can still take, and which limit binds: 80% of physical memory, what
 * the kernel reports available (MemAvailable), the cgroup's limit less its use (v2 memory.max,
 * v1 memory.limit_in_bytes), and the address-space and data limits (ulimit -v, -d) less what
 * the process has mapped. */
static double memory_room(const char **which)
{
    double room = 0.8 * (double)ab_phys_mem();
    *which = "this machine's memory";
    if (room <= 0) room = 1e18;
    double avail = read_number("/proc/meminfo", "MemAvailable:");
    if (avail > 0 && avail * 1024 < room) room = avail * 1024, *which = "the memory free now";
    double cg = read_number("/sys/fs/cgroup/memory.max", NULL); /* "max" reads as none */
    double cg_use = read_number("/sys/fs/cgroup/memory.current", NULL);
    if (cg <= 0) {
        cg = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", NULL);
        cg_use = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", NULL);
    }
    if (cg > 0 && cg < 1e18 && cg - AB_MAX(cg_use, 0) < room)
        room = cg - AB_MAX(cg_use, 0), *which = "the cgroup's memory limit";
    double mapped = read_number("/proc/self/statm", NULL) * (double)sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    int kinds[2] = {RLIMIT_AS, RLIMIT_DATA};
    const char *names[2] = {"the address-space limit (ulimit -v)", "the data limit (ulimit -d)"};
    for (int k = 0; k < 2; k++)
        if (getrlimit(kinds[k], &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            (double)rl.rlim_cur - AB_MAX(mapped, 0) < room)
            room = (double)rl.rlim_cur - AB_MAX(mapped, 0), *which = names[k];
    return room;
}

int ab_check_fits(const char *what, double bytes)
{
    const char *which;
    if (!(bytes >= 0))
        return ab_fail(AB_E_TOOBIG, "%s needs an impossible amount of memory", what);
    if (bytes < (double)(64 << 20)) return AB_OK; /* small: not worth reading /proc */
    double room = memory_room(&which);
    if (bytes > room)
        return ab_fail(AB_E_TOOBIG, "%s needs %.3g GB, more than %s (%.3g GB)", what, bytes / 1e9,
                       which, AB_MAX(room, 0) / 1e9);
    return AB_OK;
}

static int n_threads;
static int serial_holds; /* ab_blas_serial_begin calls not yet ended */

void ab_threads_set(int n)
{
    if (n <= 0) n = omp_get_num_procs();
    n_threads = n;
    omp_set_num_threads(n);
    if (__atomic_load_n(&serial_holds, __ATOMIC_ACQUIRE) == 0) openblas_set_num_threads(n);
}

int ab_threads_get(void) { return n_threads > 0 ? n_threads : omp_get_max_threads(); }

/* OpenBLAS's pthread build keeps one global thread count: parallel regions over heads set it to 1
 * so each OpenMP thread runs its BLAS calls alone, and restore it afterwards. Holds nest: the
 * count comes back when the outermost one ends (eval-model holds across e2e's own hold). */
void ab_blas_serial_begin(void)
{
    if (__atomic_fetch_add(&serial_holds, 1, __ATOMIC_ACQ_REL) == 0) openblas_set_num_threads(1);
}

void ab_blas_serial_end(void)
{
    if (__atomic_sub_fetch(&serial_holds, 1, __ATOMIC_ACQ_REL) == 0)
        openblas_set_num_threads(ab_threads_get());
}

const char *ab_version(void) { return AB_VERSION; }

const char *ab_blas_config(void) { return openblas_get_config(); }

int ab_openmp_version(void) { return _OPENMP; }

double ab_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ab_progress_relay(void *relay, int64_t done, int64_t total)
{
    struct ab_progress_relay *r = relay;
    (void)total;
    r->fn(r->user, r->base + done, r->total);
}
