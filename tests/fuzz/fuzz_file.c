/* fuzz_file.c - what the harnesses share: fz_file (an input as a file on a RAM-backed file
 * system), fz_import, fz_h5_input. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/workload.h"
#include "fuzz.h"
#include "io/h5_util.h"
#include "io/import.h"
#include "io/npy.h"

static char dir[512], path[600];

static void remove_dir(void)
{
    if (path[0]) unlink(path);
    if (dir[0]) rmdir(dir);
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz: %s '%s': %s\n", what, path[0] ? path : dir, strerror(errno));
    abort();
}

const char *fz_file(const uint8_t *data, size_t size, const char *suffix)
{
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        struct stat st;
        if (!base || !*base) base = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof dir, "%s/abfuzz.%ld", base, (long)getpid());
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) die("cannot create");
        atexit(remove_dir);
    }
    char want[600];
    snprintf(want, sizeof want, "%s/input%s", dir, suffix);
    if (strcmp(want, path) != 0) {
        if (path[0]) unlink(path);
        memcpy(path, want, sizeof path);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) die("cannot create");
    for (size_t done = 0; done < size;) {
        ssize_t k = write(fd, data + done, size - done);
        if (k <= 0) die("cannot write");
        done += (size_t)k;
    }
    if (close(fd) != 0) die("cannot write");
    return path;
}

void fz_import(const char *path, int format, const char *tokens)
{
    int found;
    if (ab_array_sniff(path, &found) != AB_OK || found != format) return;
    struct ab_import_opts o;
    ab_import_defaults(&o);
    o.files[0] = path, o.n_files = 1, o.tokens = tokens;
    struct ab_workload w = {0};
    ab_import(&o, &w, NULL);
    ab_workload_free(&w);
}

static void report_contained(void)
{
    fprintf(stderr, "fuzz_h5: crashes of libhdf5 contained by the probe: %lld\n",
            (long long)ab_h5_contained());
}

void fz_h5_input(void)
{
    static int registered;
    if (!registered++) atexit(report_contained);
    ab_h5_probe_forget(); /* the same path holds new bytes */
}
