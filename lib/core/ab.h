/* ab.h - the core contract of libattnbench: status codes, error detail, logging, allocation,
 * threads and build facts.
 *
 * Every library function that can fail returns int: AB_OK (0) or a negative AB_E* code. The code
 * says what kind of failure it was (the CLI maps it to an exit status); ab_errmsg() says what went
 * wrong in one line, naming the file or value ("'x.h5': truncated file"). The library never prints
 * and never exits: diagnostics go through the log callback. Our own contract violations are
 * assert()s; bad user data is an error code. */
#ifndef AB_CORE_AB_H
#define AB_CORE_AB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "attnbench/method.h" /* enum ab_status, ab_fail, ab_errmsg */

/* Logging. The library calls ab_log(); the application installs a sink (default: none). */
enum ab_log_level { AB_LOG_ERROR = 0, AB_LOG_WARN = 1, AB_LOG_INFO = 2, AB_LOG_DEBUG = 3 };
typedef void (*ab_log_fn)(int level, const char *msg, void *user);
void ab_log_set(ab_log_fn fn, void *user, int max_level);
void ab_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Aligned allocation (64 bytes) of n bytes, zeroed. Returns NULL on failure or n == 0.
 * Free with ab_free. */
void *ab_alloc(size_t n);
void ab_free(void *p);

/* The temporary name a writer of path uses before rename(): "path.<pid>.<k>.tmp", unique per
 * process and call, so two processes writing the same output never share one (the last rename
 * wins and the file is whole either way). malloc'd; NULL when out of memory. */
char *ab_tmp_path(const char *path);

/* Renames tmp, a name from ab_tmp_path(path), to path: rename()'s result (0, or -1 with errno).
 * Within ab_outputs_begin / _end the file is remembered as written. */
int ab_tmp_commit(const char *tmp, const char *path);

/* The one way a file is written: to a temporary beside it (ab_tmp_path) and renamed into
 * place on commit (ab_tmp_commit), so a reader never sees half a file and a failure leaves
 * nothing behind. Text or binary (the stream is opened "wb"). */
struct ab_outfile {
    FILE *f;
    char *path, *tmp; /* malloc'd */
};

/* Opens path.tmp for writing. AB_OK, AB_E_CREATE (with the system's reason) or AB_E_NOMEM. */
int ab_outfile_open(struct ab_outfile *o, const char *path);
/* Flushes and closes the file and renames it into place. AB_E_IO "'path': cannot write:
 * <reason>" when a write failed (the stream's error flag or the flush), AB_E_CREATE when the
 * rename fails; on failure the temporary file is removed. Always releases o. */
int ab_outfile_commit(struct ab_outfile *o);
/* Closes and removes the temporary file. Safe on a zeroed or released struct. */
void ab_outfile_abort(struct ab_outfile *o);

/* Outputs as one unit (a report's folder): between mark = ab_outputs_begin() and
 * ab_outputs_end(mark, remove_them), every file put in place by ab_tmp_commit is remembered,
 * and remove_them = 1 takes them back, so a command that fails after writing some of its files
 * leaves the folder as it found it: a new file is deleted, a file it replaced is restored (kept
 * meanwhile as a hard link "path.<pid>.<k>.old"; where hard links are not possible, deleted).
 * Units nest: an inner unit kept stays part of the outer one. Costs one small allocation per
 * ab_tmp_path while open (its failure is ab_tmp_path's). */
size_t ab_outputs_begin(void);
void ab_outputs_end(size_t mark, int remove_them);

/* Size in bytes of n_items items of size `size`, or 0 if the product overflows size_t. */
size_t ab_size_mul(size_t n_items, size_t size);

/* Bytes of physical memory on this machine (0 if unknown). */
uint64_t ab_phys_mem(void);

/* Fails with AB_E_TOOBIG (naming `what` and the limit) when `bytes` cannot fit in the memory
 * this process can still take: the least of 80% of physical memory, the memory available now
 * (MemAvailable), the cgroup's limit less its use, and ulimit -v / -d less what is mapped; or
 * when bytes is negative or NaN (an overflowed size). Under 64 MB always fits. */
int ab_check_fits(const char *what, double bytes);

/* Threads. ab_threads_set(n) sets the OpenMP team size and OpenBLAS's thread count (n <= 0:
 * the number of cores). ab_threads_get() returns the current setting. Around a parallel region
 * over heads, hold BLAS serial with ab_blas_serial_begin / _end so threads never oversubscribe.
 * Holds nest (each begin needs its end; BLAS gets its threads back at the outermost end, and
 * ab_threads_set during a hold takes effect then); call them outside parallel regions. */
void ab_threads_set(int n);
int ab_threads_get(void);
void ab_blas_serial_begin(void);
void ab_blas_serial_end(void);

/* Build facts: version and library configuration, one line each. */
const char *ab_version(void);
const char *ab_blas_config(void);
int ab_openmp_version(void); /* _OPENMP, e.g. 201511 */

/* Seconds on a monotonic clock. */
double ab_now(void);

/* An engine's progress over one part of a longer job (one workload of several) passed on as
 * progress over the whole: fn(user, base + done, total). Set base before each part; give
 * ab_progress_relay and the relay as the engine's progress callback and user. */
struct ab_progress_relay {
    void (*fn)(void *user, int64_t done, int64_t total);
    void *user;
    int64_t base, total;
};
void ab_progress_relay(void *relay, int64_t done, int64_t total);

/* A function compiled for each listed target ("avx2", "default") and picked at load time (GCC's
 * target_clones). clang 14 emits broken dispatchers for it (an undefined symbol for an external
 * function, a resolver defined in every unit for a static one in a header), so a clang build
 * (`make fuzz`) compiles the one baseline version. */
#ifdef __clang__
#define AB_CLONES(...)
#else
#define AB_CLONES(...) __attribute__((target_clones(__VA_ARGS__)))
#endif

#define AB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define AB_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
