/* h5_util.c - HDF5 plumbing shared by the workload and results files; see h5_util.h for the
 * rules it carries (quiet errors, no time stamps, tmp + rename, checks before bulk reads). */
#include "io/h5_util.h"
#include "io/io.h"

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hdf5_hl.h>

#include "core/ab.h"

#define AB_H5_DEFLATE         4
#define AB_H5_MAX_CHUNK_BYTES ((int64_t)1 << 30)

#if H5_VERSION_GE(1, 12, 0)
#define AB_H5_RECLAIM(type, space, buf) H5Treclaim(type, space, H5P_DEFAULT, buf)
#else
#define AB_H5_RECLAIM(type, space, buf) H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf)
#endif

void ab_h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void ab_io_start(void)
{
    H5dont_atexit(); /* before the library starts: that is when it installs the handler */
    ab_h5_quiet();
}

const char *ab_io_hdf5_version(void)
{
    static char v[48];
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    snprintf(v, sizeof v, "%u.%u.%u", maj, min, rel);
    return v;
}

/* H5Ewalk2 callback: keeps the description of the innermost error (the first one walking
 * upward), which says what actually went wrong ("truncated file: eof = ..."). */
static herr_t ab_h5_walk_first(unsigned n, const H5E_error2_t *err, void *user)
{
    char *detail = user;
    if (n == 0 && err->desc && err->desc[0]) snprintf(detail, 256, "%s", err->desc);
    return 0;
}

int ab_h5_fail(int code, const struct ab_h5 *f, const char *fmt, ...)
{
    char what[512], detail[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, ab_h5_walk_first, detail);
    H5Eclear2(H5E_DEFAULT);
    /* a failed system call: HDF5's description lists the call's arguments, buffer addresses
     * and a time stamp around "errno = N"; the system's reason alone says what happened */
    const char *en = strstr(detail, "errno = ");
    if (en && atoi(en + 8) > 0) snprintf(detail, sizeof detail, "%s", strerror(atoi(en + 8)));
    for (char *c = detail; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    return ab_fail(code, "'%s': %s%s%s", f->path, what, detail[0] ? ": " : "", detail);
}

/* A property list of class cls with object time tracking off (file, group, dataset creation). */
static hid_t ab_h5_untimed(hid_t cls)
{
    hid_t p = H5Pcreate(cls);
    if (p >= 0 && H5Pset_obj_track_times(p, 0) < 0) {
        H5Pclose(p);
        return H5I_INVALID_HID;
    }
    return p;
}

/* File access: closing the file closes every object still open in it, so error paths cannot
 * leave the file half open; file locking is best effort (some file systems lack it). */
static hid_t ab_h5_fapl(void)
{
    hid_t p = H5Pcreate(H5P_FILE_ACCESS);
    if (p < 0) return p;
    if (H5Pset_fclose_degree(p, H5F_CLOSE_STRONG) < 0) {
        H5Pclose(p);
        return H5I_INVALID_HID;
    }
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(p, 1, 1);
#endif
    return p;
}

int ab_h5_create(struct ab_h5 *f, const char *path)
{
    ab_h5_quiet();
    f->id = H5I_INVALID_HID;
    f->path = path;
    f->tmp = ab_tmp_path(path);
    if (!f->tmp) return ab_fail(AB_E_NOMEM, "'%s': out of memory", path);

    /* Ask the system first: its errno names the reason (no directory, no permission). */
    int fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        int e = errno;
        free(f->tmp);
        f->tmp = NULL;
        return ab_fail(AB_E_CREATE, "'%s': cannot create: %s", path, strerror(e));
    }
    close(fd);

    int rc = AB_OK;
    hid_t fcpl = ab_h5_untimed(H5P_FILE_CREATE), fapl = ab_h5_fapl();
    if (fcpl < 0 || fapl < 0) {
        rc = ab_h5_fail(AB_E_INTERNAL, f, "cannot set up HDF5 properties");
        goto done;
    }
    /* the 1.8+ file format: checksummed superblock, object headers and indexes, so most
     * damage is detected by HDF5 rather than read as data */
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0) {
        rc = ab_h5_fail(AB_E_INTERNAL, f, "cannot set up HDF5 properties");
        goto done;
    }
    f->id = H5Fcreate(f->tmp, H5F_ACC_TRUNC, fcpl, fapl);
    /* the file exists (open above): what fails is writing its superblock (a full disk) */
    if (f->id < 0) rc = ab_h5_fail(AB_E_IO, f, "cannot write");
done:
    if (fcpl >= 0) H5Pclose(fcpl);
    if (fapl >= 0) H5Pclose(fapl);
    if (rc != AB_OK) ab_h5_abort(f);
    return rc;
}

int ab_h5_commit(struct ab_h5 *f)
{
    int rc = AB_OK;
    if (H5Fflush(f->id, H5F_SCOPE_GLOBAL) < 0) rc = ab_h5_fail(AB_E_IO, f, "cannot write");
    herr_t closed = H5Fclose(f->id);
    f->id = H5I_INVALID_HID;
    if (rc == AB_OK && closed < 0) rc = ab_h5_fail(AB_E_IO, f, "cannot write");
    if (rc == AB_OK && ab_tmp_commit(f->tmp, f->path) != 0)
        rc = ab_fail(AB_E_CREATE, "'%s': cannot create: %s", f->path, strerror(errno));
    if (rc != AB_OK) remove(f->tmp);
    free(f->tmp);
    f->tmp = NULL;
    return rc;
}

void ab_h5_abort(struct ab_h5 *f)
{
    if (f->id > 0) H5Fclose(f->id);
    f->id = H5I_INVALID_HID;
    H5Eclear2(H5E_DEFAULT);
    if (f->tmp) {
        remove(f->tmp);
        free(f->tmp);
        f->tmp = NULL;
    }
}

/* 1 if the HDF5 signature is at offset 0 or a power of two from 512 on (where the superblock
 * may sit when a user block precedes it), 0 if not, -1 (errno set) if the file is unreadable. */
static int ab_h5_has_signature(const char *path, int64_t size)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    int found = 0;
    for (int64_t off = 0; off + 8 <= size && !found; off = off ? off * 2 : 512) {
        unsigned char buf[8];
        if (fseeko(fp, (off_t)off, SEEK_SET) != 0 || fread(buf, 1, 8, fp) != 8) break;
        found = memcmp(buf, sig, 8) == 0;
    }
    fclose(fp);
    return found;
}


/* ---- containment: libhdf5 1.10 can crash or hang on damaged files ----------------------------
 * Bit-flipped workload and results files make the library read variable-length strings out of a
 * damaged global heap: segfaults, aborts, double frees, endless loops (issue 15). The library
 * cannot be changed here, so before a file is read in process a forked child opens it and reads
 * what the readers will touch through those paths: every attribute and every string dataset. A
 * child killed by a signal, failing, or still busy after the time limit marks the file damaged,
 * and the command refuses it (exit 65) instead of dying. The same reads then run in process. */

static int ab_h5_storage_walk(hid_t g, int depth, int64_t *data, int64_t *stored);

/* Reads an attribute whole (strings included), then frees what HDF5 allocated. */
static herr_t probe_attr(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    (void)info, (void)op;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t t = H5Aget_type(a), s = H5Aget_space(a), mt = H5I_INVALID_HID;
    hssize_t n = s < 0 ? -1 : H5Sget_simple_extent_npoints(s);
    if (t >= 0 && n > 0 && n <= (1 << 24)) {
        int vlen = H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0;
        if (vlen) {
            mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
        } else {
            mt = H5Tget_native_type(t, H5T_DIR_DEFAULT);
        }
        size_t sz = mt < 0 ? 0 : H5Tget_size(mt);
        void *buf = sz ? calloc((size_t)n, sz) : NULL;
        if (buf && H5Aread(a, mt, buf) >= 0 && vlen) H5Dvlen_reclaim(mt, s, H5P_DEFAULT, buf);
        free(buf);
    }
    if (mt >= 0) H5Tclose(mt);
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    H5Aclose(a);
    return 0;
}

/* An object's attributes, and a string dataset's strings. */
static herr_t probe_object(hid_t root, const char *name, const H5O_info_t *info, void *op)
{
    (void)op;
    hid_t o = H5Oopen(root, name, H5P_DEFAULT);
    if (o < 0) return 0;
    H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, probe_attr, NULL);
    if (info->type == H5O_TYPE_DATASET) {
        hid_t t = H5Dget_type(o), s = H5Dget_space(o);
        hssize_t n = s < 0 ? -1 : H5Sget_simple_extent_npoints(s);
        if (t >= 0 && H5Tget_class(t) == H5T_STRING && n > 0 && n <= (1 << 24)) {
            int vlen = H5Tis_variable_str(t) > 0;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, vlen ? H5T_VARIABLE : H5Tget_size(t));
            void *buf = calloc((size_t)n, H5Tget_size(mt));
            if (buf && H5Dread(o, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 && vlen)
                H5Dvlen_reclaim(mt, s, H5P_DEFAULT, buf);
            free(buf);
            H5Tclose(mt);
        }
        if (t >= 0) H5Tclose(t);
        if (s >= 0) H5Sclose(s);
    }
    H5Oclose(o);
    return 0;
}

/* The files probed so far in this process (commands open the same input several times). */
enum { SEEN_MAX = 32 };
static struct { dev_t dev; ino_t ino; off_t size; struct timespec mtime; } seen[SEEN_MAX];
static int n_seen;
static int64_t n_contained; /* probes whose child crashed, failed or hung */

void ab_h5_probe_forget(void) { n_seen = 0; }
int64_t ab_h5_contained(void) { return n_contained; }

/* AB_OK when a child process read the file's attributes and strings and exited cleanly within
 * the time limit; AB_E_DATA naming what happened otherwise. A file (device, inode, size and
 * modification time) is probed once per process. */
static int ab_h5_probe(const char *path, hid_t fapl, const struct stat *st)
{
    for (int i = 0; i < n_seen; i++)
        if (seen[i].dev == st->st_dev && seen[i].ino == st->st_ino &&
            seen[i].size == st->st_size && seen[i].mtime.tv_sec == st->st_mtim.tv_sec &&
            seen[i].mtime.tv_nsec == st->st_mtim.tv_nsec)
            return AB_OK;
    int64_t size = (int64_t)st->st_size;
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid < 0) return AB_OK; /* cannot contain: read as before */
    if (pid == 0) { /* silent: the parent says what happened, in one line */
        /* a crash ends the child by its signal, whatever handlers it inherited (a sanitizer's,
         * a fuzzer's: they would report it, or save the input as their own crash) */
        for (int k = 0, sig[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}; k < 5; k++)
            signal(sig[k], SIG_DFL);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 2), dup2(null, 1);
        mallopt(M_PERTURB, 0xa5); /* freed and new blocks filled: a stale pointer shows here */
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        if (f < 0) _exit(0); /* the parent's own open reports why */
        H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_NATIVE, probe_object, NULL, H5O_INFO_BASIC);
        /* and the links by index, as `info` walks them for the storage figures */
        hid_t g = H5Gopen2(f, "/", H5P_DEFAULT);
        int64_t data = 0, stored = 0;
        if (g >= 0) ab_h5_storage_walk(g, 0, &data, &stored);
        _exit(0);
    }
    double limit = 10.0 + (double)size / 50e6, t0 = ab_now();
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) return AB_OK;
        if (ab_now() - t0 > limit) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            n_contained++;
            return ab_fail(AB_E_DATA, "'%s': damaged HDF5 file: reading it did not finish in %.0f "
                           "s", path, limit);
        }
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0)) n_contained++;
    if (WIFSIGNALED(status))
        return ab_fail(AB_E_DATA, "'%s': damaged HDF5 file: the HDF5 library crashed reading it "
                       "(signal %d)", path, WTERMSIG(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) /* a sanitizer's report, for one */
        return ab_fail(AB_E_DATA, "'%s': damaged HDF5 file: reading it failed (exit %d of the "
                       "reading process)", path, WEXITSTATUS(status));
    if (n_seen < SEEN_MAX) {
        seen[n_seen].dev = st->st_dev, seen[n_seen].ino = st->st_ino;
        seen[n_seen].size = st->st_size, seen[n_seen].mtime = st->st_mtim;
        n_seen++;
    }
    return AB_OK;
}


/* The second line of defence: a crash inside the library while a file is open for reading
 * (memory corruption that the probe's child happened to survive) ends the process with the
 * one-line error and exit 65 instead of a signal. The handler uses async-signal-safe calls only
 * and, with no file open, hands the signal to the action that was there before. */
enum { OPEN_MAX = 16 };
static const char *volatile open_paths[OPEN_MAX];
static volatile sig_atomic_t n_open;
static struct sigaction old_action[32];

static void put_str(const char *t)
{
    size_t n = 0;
    while (t[n]) n++;
    ssize_t w = write(2, t, n);
    (void)w;
}

static void crash_handler(int sig)
{
    int k = n_open;
    if (k > 0 && k <= OPEN_MAX && open_paths[k - 1]) {
        char num[4] = {(char)('0' + sig / 10 % 10), (char)('0' + sig % 10), 0, 0};
        put_str("error: '");
        put_str(open_paths[k - 1]);
        put_str("': damaged HDF5 file: the HDF5 library crashed reading it (signal ");
        put_str(num[0] == '0' ? num + 1 : num);
        put_str(")\n");
        _exit(65);
    }
    sigaction(sig, &old_action[sig], NULL);
    raise(sig);
}

static void crash_guard_push(const char *path)
{
    static int installed;
    if (!installed) {
        installed = 1;
        const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = crash_handler;
        sigemptyset(&sa.sa_mask);
        for (int i = 0; i < 5; i++) sigaction(sigs[i], &sa, &old_action[sigs[i]]);
    }
    if (n_open < OPEN_MAX) open_paths[n_open] = path;
    n_open++;
}

static void crash_guard_pop(void)
{
    if (n_open > 0) n_open--;
}

int ab_h5_open(struct ab_h5 *f, const char *path)
{
    ab_h5_quiet();
    f->id = H5I_INVALID_HID;
    f->path = path;
    f->tmp = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ab_fail(AB_E_NOFILE, "'%s': no such file", path);
        return ab_fail(AB_E_IO, "'%s': cannot read: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return ab_fail(AB_E_DATA, "'%s': is a directory", path);
    int sig = ab_h5_has_signature(path, (int64_t)st.st_size);
    if (sig < 0) return ab_fail(AB_E_IO, "'%s': cannot read: %s", path, strerror(errno));
    if (sig == 0) return ab_fail(AB_E_DATA, "'%s': not an HDF5 file", path);

    hid_t fapl = ab_h5_fapl();
    if (fapl < 0) return ab_h5_fail(AB_E_INTERNAL, f, "cannot set up HDF5 properties");
    int rc0 = ab_h5_probe(path, fapl, &st);
    if (rc0 != AB_OK) {
        H5Pclose(fapl);
        return rc0;
    }
    crash_guard_push(path);
    f->id = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    /* any HDF5 call clears the error stack: take the reason before closing anything */
    int rc = f->id < 0 ? ab_h5_fail(AB_E_DATA, f, "damaged HDF5 file") : AB_OK;
    if (rc != AB_OK) crash_guard_pop();
    H5Pclose(fapl);
    return rc;
}

void ab_h5_close(struct ab_h5 *f)
{
    if (f->id > 0) H5Fclose(f->id);
    if (f->id > 0 && !f->tmp) crash_guard_pop(); /* a file opened for reading */
    f->id = H5I_INVALID_HID;
    H5Eclear2(H5E_DEFAULT);
}

int ab_h5_exists(const struct ab_h5 *f, const char *name)
{
    /* H5Lexists wants every intermediate group to exist: check the prefixes in turn. */
    char buf[512];
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, name, n + 1);
    if (strcmp(buf, "/") == 0) return 1;
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        htri_t e = H5Lexists(f->id, buf, H5P_DEFAULT);
        buf[i] = c;
        if (e <= 0) {
            H5Eclear2(H5E_DEFAULT);
            return 0;
        }
    }
    return 1;
}

int ab_h5_group(struct ab_h5 *f, const char *name)
{
    hid_t gcpl = ab_h5_untimed(H5P_GROUP_CREATE);
    hid_t g = gcpl < 0 ? gcpl : H5Gcreate2(f->id, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    int rc = g < 0 ? ab_h5_fail(AB_E_IO, f, "cannot create group %s", name) : AB_OK;
    if (g >= 0) H5Gclose(g);
    if (gcpl >= 0) H5Pclose(gcpl);
    return rc;
}

/* A variable-length UTF-8 string type (caller closes). */
static hid_t ab_h5_vlen_str(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* Writes one scalar attribute of file type ftype from value (memory type mtype). */
static int ab_h5_attr_put(struct ab_h5 *f, const char *obj, const char *name, hid_t ftype,
                          hid_t mtype, const void *value)
{
    int rc = AB_OK;
    hid_t space = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    if (space < 0) goto fail;
    a = H5Acreate_by_name(f->id, obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, mtype, value) < 0) goto fail;
    goto done;
fail:
    rc = ab_h5_fail(AB_E_IO, f, "cannot write attribute %s of %s", name, obj);
done:
    if (a >= 0) H5Aclose(a);
    if (space >= 0) H5Sclose(space);
    return rc;
}

int ab_h5_attr_put_str(struct ab_h5 *f, const char *obj, const char *name, const char *value)
{
    hid_t t = ab_h5_vlen_str();
    if (t < 0) return ab_h5_fail(AB_E_INTERNAL, f, "cannot make a string type");
    const char *v = value ? value : "";
    int rc = ab_h5_attr_put(f, obj, name, t, t, &v);
    H5Tclose(t);
    return rc;
}

int ab_h5_attr_put_int(struct ab_h5 *f, const char *obj, const char *name, int value)
{
    int32_t v = value;
    return ab_h5_attr_put(f, obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &v);
}

int ab_h5_attr_put_u64(struct ab_h5 *f, const char *obj, const char *name, uint64_t value)
{
    return ab_h5_attr_put(f, obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
}

int ab_h5_attr_put_f64(struct ab_h5 *f, const char *obj, const char *name, double value)
{
    return ab_h5_attr_put(f, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

/* Opens attribute name of obj if it exists: AB_OK with *a >= 0, AB_OK with *a < 0 if absent. */
static int ab_h5_attr_open(struct ab_h5 *f, const char *obj, const char *name, hid_t *a)
{
    *a = H5I_INVALID_HID;
    if (!ab_h5_exists(f, obj)) return AB_OK;
    htri_t e = H5Aexists_by_name(f->id, obj, name, H5P_DEFAULT);
    if (e < 0) return ab_h5_fail(AB_E_DATA, f, "cannot read attribute %s of %s", name, obj);
    if (e == 0) return AB_OK;
    *a = H5Aopen_by_name(f->id, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (*a < 0) return ab_h5_fail(AB_E_DATA, f, "cannot read attribute %s of %s", name, obj);
    return AB_OK;
}

/* Number of elements of an attribute's dataspace, or -1. */
static int64_t ab_h5_attr_npoints(hid_t a)
{
    hid_t s = H5Aget_space(a);
    if (s < 0) return -1;
    hssize_t n = H5Sget_simple_extent_npoints(s);
    H5Sclose(s);
    return (int64_t)n;
}

int ab_h5_attr_get_str(struct ab_h5 *f, const char *obj, const char *name, char **out)
{
    *out = NULL;
    hid_t a, t = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    int rc = ab_h5_attr_open(f, obj, name, &a);
    if (rc != AB_OK || a < 0) return rc;
    t = H5Aget_type(a);
    if (t < 0 || H5Tget_class(t) != H5T_STRING || ab_h5_attr_npoints(a) != 1) {
        rc = ab_h5_fail(AB_E_DATA, f, "attribute %s of %s is not a string", name, obj);
        goto done;
    }
    htri_t vlen = H5Tis_variable_str(t);
    mt = H5Tcopy(H5T_C_S1);
    if (vlen > 0) {
        char *s = NULL;
        if (mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0 ||
            H5Aread(a, mt, &s) < 0) {
            rc = ab_h5_fail(AB_E_DATA, f, "cannot read attribute %s of %s", name, obj);
            goto done;
        }
        *out = strdup(s ? s : "");
        if (s) H5free_memory(s);
    } else {
        /* fixed length: one more byte than stored so a full-width string keeps its last char */
        size_t size = H5Tget_size(t);
        char *s = calloc(size + 1, 1);
        if (!s) {
            rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
            goto done;
        }
        if (mt < 0 || H5Tset_size(mt, size + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
            H5Tset_cset(mt, H5Tget_cset(t)) < 0 || H5Aread(a, mt, s) < 0) {
            free(s);
            rc = ab_h5_fail(AB_E_DATA, f, "cannot read attribute %s of %s", name, obj);
            goto done;
        }
        *out = s;
    }
    if (!*out) rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
done:
    if (mt >= 0) H5Tclose(mt);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

/* Reads a numeric scalar attribute converted to mtype into out (*found = 0 when absent). */
static int ab_h5_attr_get_num(struct ab_h5 *f, const char *obj, const char *name, hid_t mtype,
                              void *out, int *found)
{
    *found = 0;
    hid_t a;
    int rc = ab_h5_attr_open(f, obj, name, &a);
    if (rc != AB_OK || a < 0) return rc;
    hid_t t = H5Aget_type(a);
    H5T_class_t cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    if ((cls != H5T_INTEGER && cls != H5T_FLOAT) || ab_h5_attr_npoints(a) != 1)
        rc = ab_h5_fail(AB_E_DATA, f, "attribute %s of %s is not a number", name, obj);
    else if (H5Aread(a, mtype, out) < 0)
        rc = ab_h5_fail(AB_E_DATA, f, "cannot read attribute %s of %s", name, obj);
    else
        *found = 1;
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

int ab_h5_attr_get_f64(struct ab_h5 *f, const char *obj, const char *name, double *out, int *found)
{
    return ab_h5_attr_get_num(f, obj, name, H5T_NATIVE_DOUBLE, out, found);
}

int ab_h5_attr_get_i64(struct ab_h5 *f, const char *obj, const char *name, int64_t *out, int *found)
{
    return ab_h5_attr_get_num(f, obj, name, H5T_NATIVE_INT64, out, found);
}

int ab_h5_attr_get_u64(struct ab_h5 *f, const char *obj, const char *name, uint64_t *out,
                       int *found)
{
    return ab_h5_attr_get_num(f, obj, name, H5T_NATIVE_UINT64, out, found);
}

/* A simple dataspace of rank 0..8 (rank 0: scalar). */
static hid_t ab_h5_space(int rank, const int64_t *dims)
{
    if (rank == 0) return H5Screate(H5S_SCALAR);
    hsize_t h[8];
    for (int i = 0; i < rank; i++) h[i] = (hsize_t)dims[i];
    return H5Screate_simple(rank, h, NULL);
}

/* Attaches scales[i] to dimension i of dataset d. */
static int ab_h5_attach(struct ab_h5 *f, const char *name, hid_t d, int rank,
                        const char *const *scales)
{
    for (int i = 0; scales && i < rank; i++) {
        if (!scales[i]) continue;
        hid_t s = H5Dopen2(f->id, scales[i], H5P_DEFAULT);
        herr_t e = s < 0 ? -1 : H5DSattach_scale(d, s, (unsigned)i);
        int rc =
            e < 0 ? ab_h5_fail(AB_E_IO, f, "cannot attach scale %s to %s", scales[i], name) : AB_OK;
        if (s >= 0) H5Dclose(s);
        if (rc != AB_OK) return rc;
    }
    return AB_OK;
}

int ab_h5_put(struct ab_h5 *f, const char *name, hid_t file_type, hid_t mem_type, int rank,
              const int64_t *dims, int chunk_lead, const void *data, const char *const *scales)
{
    if (rank < 0 || rank > 8) return ab_fail(AB_E_INTERNAL, "'%s': %s: bad rank", f->path, name);
    int rc = AB_OK;
    hid_t space = ab_h5_space(rank, dims), dcpl = ab_h5_untimed(H5P_DATASET_CREATE);
    hid_t d = H5I_INVALID_HID;
    if (space < 0 || dcpl < 0) goto fail;
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    if (chunk_lead >= 0 && rank > 0 && n > 0) {
        /* one chunk per leading index (one head), the trailing dims whole; halve the first
         * splittable dim until a chunk fits the cap (HDF5 chunks must stay below 4 GiB) */
        hsize_t chunk[8];
        int64_t bytes = (int64_t)H5Tget_size(file_type);
        for (int i = 0; i < rank; i++) {
            chunk[i] = i < chunk_lead ? 1 : (hsize_t)dims[i];
            bytes *= (int64_t)chunk[i];
        }
        while (bytes > AB_H5_MAX_CHUNK_BYTES) {
            int i = 0;
            while (i < rank && chunk[i] <= 1) i++;
            if (i == rank) break;
            bytes = bytes / (int64_t)chunk[i] * (int64_t)((chunk[i] + 1) / 2);
            chunk[i] = (chunk[i] + 1) / 2;
        }
        if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_shuffle(dcpl) < 0 ||
            H5Pset_deflate(dcpl, AB_H5_DEFLATE) < 0)
            goto fail;
    }
    d = H5Dcreate2(f->id, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0) goto fail;
    if (n > 0 && H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) goto fail;
    rc = ab_h5_attach(f, name, d, rank, scales);
    goto done;
fail:
    rc = ab_h5_fail(AB_E_IO, f, "cannot write %s", name);
done:
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return rc;
}

int ab_h5_put_strings(struct ab_h5 *f, const char *name, int rank, const int64_t *dims,
                      const char *const *strs, const char *const *scales)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    const char **s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    if (!s) return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
    for (int64_t i = 0; i < n; i++) s[i] = strs[i] ? strs[i] : "";
    hid_t t = ab_h5_vlen_str();
    int rc = t < 0 ? ab_h5_fail(AB_E_INTERNAL, f, "cannot make a string type")
                   : ab_h5_put(f, name, t, t, rank, dims, -1, s, scales);
    if (t >= 0) H5Tclose(t);
    free(s);
    return rc;
}

/* Makes dataset `name` a dimension scale named by the last component of `name`. */
static int ab_h5_set_scale(struct ab_h5 *f, const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    hid_t d = H5Dopen2(f->id, name, H5P_DEFAULT);
    herr_t e = d < 0 ? -1 : H5DSset_scale(d, base);
    int rc = e < 0 ? ab_h5_fail(AB_E_IO, f, "cannot make %s a dimension scale", name) : AB_OK;
    if (d >= 0) H5Dclose(d);
    return rc;
}

int ab_h5_scale(struct ab_h5 *f, const char *name, int64_t n)
{
    int32_t *iota = malloc((size_t)(n > 0 ? n : 1) * sizeof *iota);
    if (!iota) return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
    for (int64_t i = 0; i < n; i++) iota[i] = (int32_t)i;
    int rc =
        ab_h5_put(f, name, H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &n, n > 4096 ? 0 : -1, iota, NULL);
    free(iota);
    return rc != AB_OK ? rc : ab_h5_set_scale(f, name);
}

static const char *ab_h5_class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "floating point";
    case H5T_STRING: return "string";
    default: return "other";
    }
}

int ab_h5_check_stored(hid_t d, const char *path, const char *name, double declared)
{
    /* deflate's largest ratio is 1032:1; HDF5's chunk and shuffle overheads add a little */
    const double max_ratio = 1100.0;
    double stored = (double)H5Dget_storage_size(d);
    if (declared > (double)(1 << 20) && stored * max_ratio < declared)
        return ab_fail(AB_E_DATA, "'%s': %s declares %.3g MB but stores %.3g KB: its shape is "
                       "not its data", path, name, declared / 1e6, stored / 1e3);
    return AB_OK;
}

int ab_h5_shape(struct ab_h5 *f, const char *name, int rank, H5T_class_t cls, int64_t *dims,
                int *found)
{
    if (found) *found = 0;
    if (!ab_h5_exists(f, name)) {
        if (found) return AB_OK;
        return ab_fail(AB_E_DATA, "'%s': missing dataset %s", f->path, name);
    }
    int rc = AB_OK;
    hid_t d = H5Dopen2(f->id, name, H5P_DEFAULT), s = H5I_INVALID_HID, t = H5I_INVALID_HID;
    if (d < 0) {
        rc = ab_h5_fail(AB_E_DATA, f, "%s is not a readable dataset", name);
        goto done;
    }
    s = H5Dget_space(d);
    t = H5Dget_type(d);
    if (s < 0 || t < 0) {
        rc = ab_h5_fail(AB_E_DATA, f, "cannot read the shape of %s", name);
        goto done;
    }
    H5S_class_t sc = H5Sget_simple_extent_type(s);
    int r = H5Sget_simple_extent_ndims(s);
    if ((sc != H5S_SIMPLE && sc != H5S_SCALAR) || r != rank) {
        rc = ab_fail(AB_E_DATA, "'%s': %s has rank %d, expected %d", f->path, name,
                     sc == H5S_NULL ? -1 : r, rank);
        goto done;
    }
    H5T_class_t c = H5Tget_class(t);
    if (cls != H5T_NO_CLASS && c != cls) {
        rc = ab_fail(AB_E_DATA, "'%s': %s holds %s values, expected %s", f->path, name,
                     ab_h5_class_name(c), ab_h5_class_name(cls));
        goto done;
    }
    hsize_t h[8];
    if (rank > 0 && H5Sget_simple_extent_dims(s, h, NULL) < 0) {
        rc = ab_h5_fail(AB_E_DATA, f, "cannot read the shape of %s", name);
        goto done;
    }
    double declared = (double)H5Tget_size(t);
    for (int i = 0; i < rank; i++) {
        if (h[i] > (hsize_t)INT64_MAX / 2) {
            rc = ab_fail(AB_E_DATA, "'%s': %s has an impossible size", f->path, name);
            goto done;
        }
        dims[i] = (int64_t)h[i];
        declared *= (double)h[i];
    }
    if ((rc = ab_h5_check_stored(d, f->path, name, declared))) goto done;
    if (found) *found = 1;
done:
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    return rc;
}

int ab_h5_get(struct ab_h5 *f, const char *name, hid_t mem_type, void *buf)
{
    hid_t d = H5Dopen2(f->id, name, H5P_DEFAULT);
    herr_t e = d < 0 ? -1 : H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    int rc = e < 0 ? ab_h5_fail(AB_E_DATA, f, "cannot read %s", name) : AB_OK;
    if (d >= 0) H5Dclose(d);
    return rc;
}

int ab_h5_get_slab(struct ab_h5 *f, const char *name, hid_t mem_type, int rank,
                   const int64_t *start, const int64_t *count, void *buf)
{
    hsize_t h0[8], hn[8];
    for (int i = 0; i < rank; i++) {
        h0[i] = (hsize_t)start[i];
        hn[i] = (hsize_t)count[i];
    }
    herr_t e = -1;
    hid_t d = H5Dopen2(f->id, name, H5P_DEFAULT), fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    if (d < 0) goto done;
    fs = H5Dget_space(d);
    ms = H5Screate_simple(rank, hn, NULL);
    if (fs < 0 || ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, h0, NULL, hn, NULL) < 0)
        goto done;
    e = H5Dread(d, mem_type, ms, fs, H5P_DEFAULT, buf);
done:;
    int rc = e < 0 ? ab_h5_fail(AB_E_DATA, f, "cannot read %s", name) : AB_OK;
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    return rc;
}

int ab_h5_get_strings(struct ab_h5 *f, const char *name, int64_t n, char **out)
{
    int rc = AB_OK;
    hid_t d = H5Dopen2(f->id, name, H5P_DEFAULT), t = H5I_INVALID_HID, s = H5I_INVALID_HID;
    hid_t mt = H5I_INVALID_HID;
    char **vl = NULL, *fixed = NULL;
    int64_t done_n = 0;
    for (int64_t i = 0; i < n; i++) out[i] = NULL;
    if (d < 0) goto fail;
    t = H5Dget_type(d);
    s = H5Dget_space(d);
    if (t < 0 || s < 0) goto fail;
    if (H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(s) != n) {
        rc = ab_fail(AB_E_DATA, "'%s': %s does not hold %lld strings", f->path, name, (long long)n);
        goto done;
    }
    if (n == 0) goto done;
    mt = H5Tcopy(H5T_C_S1);
    if (mt < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0) goto fail;
    if (H5Tis_variable_str(t) > 0) {
        vl = calloc((size_t)n, sizeof *vl);
        if (!vl) goto nomem;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 ||
            H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, vl) < 0)
            goto fail;
        for (; done_n < n; done_n++)
            if (!(out[done_n] = strdup(vl[done_n] ? vl[done_n] : ""))) break;
        AB_H5_RECLAIM(mt, s, vl);
        if (done_n < n) goto nomem;
    } else {
        size_t size = H5Tget_size(t) + 1;
        fixed = calloc((size_t)n, size);
        if (!fixed) goto nomem;
        if (H5Tset_size(mt, size) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
            H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, fixed) < 0)
            goto fail;
        for (; done_n < n; done_n++)
            if (!(out[done_n] = strdup(fixed + (size_t)done_n * size))) goto nomem;
    }
    goto done;
nomem:
    rc = ab_fail(AB_E_NOMEM, "'%s': out of memory reading %s", f->path, name);
    goto done;
fail:
    rc = ab_h5_fail(AB_E_DATA, f, "cannot read %s", name);
done:
    if (rc != AB_OK)
        for (int64_t i = 0; i < n; i++) {
            free(out[i]);
            out[i] = NULL;
        }
    free(vl);
    free(fixed);
    if (mt >= 0) H5Tclose(mt);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    return rc;
}

/* ---------------------------------------------------------------- string-array attributes */

int ab_h5_attr_put_strs(struct ab_h5 *f, const char *obj, const char *name, int64_t n,
                        const char *const *strs)
{
    int rc = AB_OK;
    hsize_t dim = (hsize_t)n;
    const char **v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    hid_t t = ab_h5_vlen_str(), space = H5Screate_simple(1, &dim, NULL), a = H5I_INVALID_HID;
    if (!v) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) v[i] = strs[i] ? strs[i] : "";
    if (t < 0 || space < 0) goto fail;
    a = H5Acreate_by_name(f->id, obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || (n > 0 && H5Awrite(a, t, v) < 0)) goto fail;
    goto done;
fail:
    rc = ab_h5_fail(AB_E_IO, f, "cannot write attribute %s of %s", name, obj);
done:
    if (a >= 0) H5Aclose(a);
    if (space >= 0) H5Sclose(space);
    if (t >= 0) H5Tclose(t);
    free(v);
    return rc;
}

/* Reads the m strings of attribute `name` of `obj` (open as a, type t, space s) into
 * out[0..m) (each malloc'd; the caller frees them on failure too). */
static int ab_h5_attr_read_strs(struct ab_h5 *f, const char *obj, const char *name, hid_t a,
                                hid_t t, hid_t s, int64_t m, char **out)
{
    int rc = AB_OK;
    hid_t mt = H5Tcopy(H5T_C_S1);
    char **vl = NULL, *fixed = NULL;
    if (mt < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0) goto fail;
    if (H5Tis_variable_str(t) > 0) {
        vl = calloc((size_t)m, sizeof *vl);
        if (!vl) goto nomem;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, vl) < 0) goto fail;
        int64_t i = 0;
        while (i < m && (out[i] = strdup(vl[i] ? vl[i] : ""))) i++;
        AB_H5_RECLAIM(mt, s, vl);
        if (i < m) goto nomem;
    } else {
        /* fixed length: one more byte than stored so a full-width string keeps its last char */
        size_t size = H5Tget_size(t) + 1;
        fixed = calloc((size_t)m, size);
        if (!fixed) goto nomem;
        if (H5Tset_size(mt, size) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
            H5Aread(a, mt, fixed) < 0)
            goto fail;
        for (int64_t i = 0; i < m; i++)
            if (!(out[i] = strdup(fixed + (size_t)i * size))) goto nomem;
    }
    goto done;
nomem:
    rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
    goto done;
fail:
    rc = ab_h5_fail(AB_E_DATA, f, "cannot read attribute %s of %s", name, obj);
done:
    free(vl);
    free(fixed);
    if (mt >= 0) H5Tclose(mt);
    return rc;
}

int ab_h5_attr_get_strs(struct ab_h5 *f, const char *obj, const char *name, int64_t *n, char ***out,
                        int *found)
{
    *n = 0;
    *out = NULL;
    *found = 0;
    hid_t a, t = H5I_INVALID_HID, s = H5I_INVALID_HID;
    char **v = NULL;
    int64_t m = 0;
    int rc = ab_h5_attr_open(f, obj, name, &a);
    if (rc != AB_OK || a < 0) return rc;
    t = H5Aget_type(a);
    s = H5Aget_space(a);
    if (t < 0 || s < 0 || H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_ndims(s) > 1) {
        rc = ab_h5_fail(AB_E_DATA, f, "attribute %s of %s is not a list of strings", name, obj);
        goto done;
    }
    m = (int64_t)H5Sget_simple_extent_npoints(s);
    if (m < 0 || m > (int64_t)1 << 24) {
        rc = ab_h5_fail(AB_E_DATA, f, "attribute %s of %s has an impossible size", name, obj);
        goto done;
    }
    v = calloc((size_t)(m > 0 ? m : 1), sizeof *v);
    if (!v) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
        goto done;
    }
    if (m > 0 && (rc = ab_h5_attr_read_strs(f, obj, name, a, t, s, m, v)) != AB_OK) goto done;
    *found = 1;
    *n = m;
    if (m > 0) *out = v;
    if (m > 0) v = NULL;
done:
    for (int64_t i = 0; v && i < m; i++) free(v[i]);
    free(v);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

/* ---------------------------------------------------------------- tables */

/* Writes "group/name" into buf (AB_E_INTERNAL when it does not fit). */
static int ab_h5_join(char *buf, size_t size, const char *group, const char *name,
                      const struct ab_h5 *f)
{
    int len = snprintf(buf, size, "%s/%s", strcmp(group, "/") == 0 ? "" : group, name);
    if (len < 0 || (size_t)len >= size)
        return ab_fail(AB_E_INTERNAL, "'%s': object name %s/%s too long", f->path, group, name);
    return AB_OK;
}

/* Creates a table's group with time tracking off and links kept in creation order, so h5py,
 * xarray and h5dump list the columns in the order of the table rather than by name. */
static int ab_h5_table_group(struct ab_h5 *f, const char *name)
{
    hid_t gcpl = ab_h5_untimed(H5P_GROUP_CREATE), g = H5I_INVALID_HID;
    if (gcpl >= 0 &&
        H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) >= 0)
        g = H5Gcreate2(f->id, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    int rc = g < 0 ? ab_h5_fail(AB_E_IO, f, "cannot create group %s", name) : AB_OK;
    if (g >= 0) H5Gclose(g);
    if (gcpl >= 0) H5Pclose(gcpl);
    return rc;
}

/* The table's "row" scale: int64 0..n-1, a dimension scale named "row". */
static int ab_h5_row_scale(struct ab_h5 *f, const char *name, int64_t n)
{
    int64_t *iota = malloc((size_t)(n > 0 ? n : 1) * sizeof *iota);
    if (!iota) return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
    for (int64_t i = 0; i < n; i++) iota[i] = i;
    int rc = ab_h5_put(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &n, -1, iota, NULL);
    free(iota);
    if (rc == AB_OK) rc = ab_h5_set_scale(f, name);
    if (rc == AB_OK) rc = ab_h5_attr_put_str(f, name, "units", "1");
    if (rc == AB_OK) rc = ab_h5_attr_put_str(f, name, "long_name", "row index of the table");
    return rc;
}

int ab_h5_put_table(struct ab_h5 *f, const char *group, const void *rows, int64_t n_rows,
                    size_t row_size, const struct ab_column *cols, int n_cols)
{
    char scale[512], name[512];
    const char *scales[1] = {scale};
    int rc;
    if ((rc = ab_h5_join(scale, sizeof scale, group, "row", f)) ||
        (rc = ab_h5_table_group(f, group)) || (rc = ab_h5_row_scale(f, scale, n_rows)))
        return rc;
    /* one gathered column at a time: doubles, int64s and pointers all take 8 bytes here */
    _Static_assert(sizeof(double) == 8 && sizeof(int64_t) == 8, "8-byte columns");
    size_t cell = sizeof(char *) > 8 ? sizeof(char *) : 8;
    unsigned char *buf = malloc((size_t)(n_rows > 0 ? n_rows : 1) * cell);
    if (!buf) return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
    for (int c = 0; c < n_cols && rc == AB_OK; c++) {
        const struct ab_column *col = &cols[c];
        size_t width = col->type == AB_COL_STR ? sizeof(char *) : 8;
        for (int64_t i = 0; i < n_rows; i++)
            memcpy(buf + (size_t)i * width,
                   (const unsigned char *)rows + (size_t)i * row_size + col->offset, width);
        if ((rc = ab_h5_join(name, sizeof name, group, col->name, f))) break;
        if (col->type == AB_COL_STR)
            rc = ab_h5_put_strings(f, name, 1, &n_rows, (const char *const *)(void *)buf, scales);
        else if (col->type == AB_COL_F64)
            rc = ab_h5_put(f, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &n_rows, -1, buf, scales);
        else
            rc = ab_h5_put(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &n_rows, -1, buf, scales);
        if (rc == AB_OK) rc = ab_h5_attr_put_str(f, name, "units", col->units);
        if (rc == AB_OK) rc = ab_h5_attr_put_str(f, name, "long_name", col->long_name);
    }
    free(buf);
    return rc;
}

/* Frees the string fields of rows[0..n) and the rows. */
static void ab_h5_table_free(void *rows, int64_t n, size_t row_size, const struct ab_column *cols,
                             int n_cols)
{
    for (int c = 0; rows && c < n_cols; c++) {
        if (cols[c].type != AB_COL_STR) continue;
        for (int64_t i = 0; i < n; i++) {
            char *s;
            unsigned char *field = (unsigned char *)rows + (size_t)i * row_size + cols[c].offset;
            memcpy(&s, field, sizeof s);
            free(s);
        }
    }
    free(rows);
}

/* The common length of the table's columns (checked present, 1-D, of the right class). */
static int ab_h5_table_length(struct ab_h5 *f, const char *group, const struct ab_column *cols,
                              int n_cols, int64_t *n_rows)
{
    char name[512], first[512] = "";
    int64_t n = 0;
    int rc;
    for (int c = 0; c < n_cols; c++) {
        H5T_class_t cls = cols[c].type == AB_COL_STR   ? H5T_STRING
                          : cols[c].type == AB_COL_F64 ? H5T_FLOAT
                                                       : H5T_INTEGER;
        int64_t len;
        if ((rc = ab_h5_join(name, sizeof name, group, cols[c].name, f)) ||
            (rc = ab_h5_shape(f, name, 1, cls, &len, NULL)))
            return rc;
        if (c == 0) {
            n = len;
            snprintf(first, sizeof first, "%s", name);
        } else if (len != n) {
            return ab_fail(AB_E_DATA, "'%s': %s has %lld rows but %s has %lld", f->path, name,
                           (long long)len, first, (long long)n);
        }
    }
    int found;
    int64_t len;
    if ((rc = ab_h5_join(name, sizeof name, group, "row", f)) ||
        (rc = ab_h5_shape(f, name, 1, H5T_NO_CLASS, &len, &found)))
        return rc;
    if (found && n_cols > 0 && len != n)
        return ab_fail(AB_E_DATA, "'%s': %s has %lld rows but %s has %lld", f->path, name,
                       (long long)len, first, (long long)n);
    *n_rows = n;
    return AB_OK;
}

int ab_h5_get_table(struct ab_h5 *f, const char *group, const struct ab_column *cols, int n_cols,
                    size_t row_size, void **rows, int64_t *n_rows)
{
    *rows = NULL;
    *n_rows = 0;
    if (!ab_h5_exists(f, group))
        return ab_fail(AB_E_DATA, "'%s': missing table %s", f->path, group);
    int64_t n = 0;
    int rc = ab_h5_table_length(f, group, cols, n_cols, &n);
    if (rc != AB_OK || n == 0) return rc;
    char what[600], name[512];
    snprintf(what, sizeof what, "'%s' %s", f->path, group);
    if ((rc = ab_check_fits(what, (double)n * ((double)row_size + 16.0)))) return rc;

    size_t cell = sizeof(char *) > 8 ? sizeof(char *) : 8;
    unsigned char *data = calloc((size_t)n, row_size), *buf = malloc((size_t)n * cell);
    if (!data || !buf) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory reading %s", f->path, group);
        goto done;
    }
    for (int c = 0; c < n_cols; c++) {
        const struct ab_column *col = &cols[c];
        size_t width = col->type == AB_COL_STR ? sizeof(char *) : 8;
        if ((rc = ab_h5_join(name, sizeof name, group, col->name, f))) goto done;
        if (col->type == AB_COL_STR)
            rc = ab_h5_get_strings(f, name, n, (char **)(void *)buf);
        else
            rc = ab_h5_get(f, name, col->type == AB_COL_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64,
                           buf);
        if (rc != AB_OK) goto done;
        for (int64_t i = 0; i < n; i++)
            memcpy(data + (size_t)i * row_size + col->offset, buf + (size_t)i * width, width);
    }
    *rows = data;
    *n_rows = n;
    data = NULL;
done:
    ab_h5_table_free(data, n, row_size, cols, n_cols);
    free(buf);
    return rc;
}

/* Adds the sizes of every dataset under group g (recursively, depth-bounded). Uses only
 * unversioned calls (H5Gget_info, H5Lget_name_by_idx, H5Oopen) so it reads the same on
 * HDF5 1.10 and 1.12+. */
static int ab_h5_storage_walk(hid_t g, int depth, int64_t *data, int64_t *stored)
{
    H5G_info_t gi;
    if (depth > 32 || H5Gget_info(g, &gi) < 0) return -1;
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[256];
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                         H5P_DEFAULT);
        if (len < 0 || (size_t)len >= sizeof name) return -1;
        hid_t o = H5Oopen(g, name, H5P_DEFAULT);
        if (o < 0) return -1;
        int rc = 0;
        H5I_type_t type = H5Iget_type(o);
        if (type == H5I_GROUP) {
            rc = ab_h5_storage_walk(o, depth + 1, data, stored);
        } else if (type == H5I_DATASET) {
            hid_t s = H5Dget_space(o), t = H5Dget_type(o);
            hssize_t np = s < 0 ? -1 : H5Sget_simple_extent_npoints(s);
            size_t es = t < 0 ? 0 : H5Tget_size(t);
            if (np < 0 || es == 0)
                rc = -1;
            else {
                *data += (int64_t)np * (int64_t)es;
                *stored += (int64_t)H5Dget_storage_size(o);
            }
            if (s >= 0) H5Sclose(s);
            if (t >= 0) H5Tclose(t);
        }
        H5Oclose(o);
        if (rc < 0) return -1;
    }
    return 0;
}

int ab_h5_storage_sum(struct ab_h5 *f, int64_t *data_bytes, int64_t *stored_bytes)
{
    *data_bytes = *stored_bytes = 0;
    hid_t g = H5Gopen2(f->id, "/", H5P_DEFAULT);
    int e = g < 0 ? -1 : ab_h5_storage_walk(g, 0, data_bytes, stored_bytes);
    int rc = e < 0 ? ab_h5_fail(AB_E_DATA, f, "cannot list the datasets") : AB_OK;
    if (g >= 0) H5Gclose(g);
    return rc;
}
