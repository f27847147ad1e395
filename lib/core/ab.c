/* ab.c - status codes, per-thread error detail, logging, aligned allocation, threads and build
 * facts (see ab.h). */
#include "core/ab.h"

#include <cblas.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

char *ab_tmp_path(const char *path)
{
    static unsigned long counter;
    unsigned long k = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    size_t n = strlen(path) + 64;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s.%ld.%lu.tmp", path, (long)getpid(), k);
    return s;
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

int ab_check_fits(const char *what, double bytes)
{
    double limit = 0.8 * (double)ab_phys_mem();
    if (limit <= 0) limit = 1e18;
    if (!(bytes >= 0) || bytes > limit)
        return ab_fail(AB_E_TOOBIG, "%s needs %.3g GB, more than this machine's memory (%.3g GB)",
                       what, bytes / 1e9, limit / 0.8 / 1e9);
    return AB_OK;
}

static int n_threads;

void ab_threads_set(int n)
{
    if (n <= 0) n = omp_get_num_procs();
    n_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int ab_threads_get(void) { return n_threads > 0 ? n_threads : omp_get_max_threads(); }

/* OpenBLAS's pthread build keeps one global thread count: parallel regions over heads set it to 1
 * so each OpenMP thread runs its BLAS calls alone, and restore it afterwards. */
void ab_blas_serial_begin(void) { openblas_set_num_threads(1); }
void ab_blas_serial_end(void) { openblas_set_num_threads(ab_threads_get()); }

const char *ab_version(void) { return AB_VERSION; }

const char *ab_blas_config(void) { return openblas_get_config(); }

int ab_openmp_version(void) { return _OPENMP; }

double ab_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
