/* fuzz_file.c - fz_file: a harness's input as a file on a RAM-backed file system. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

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
