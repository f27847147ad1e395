/* fuzz_main.c - a mutating driver for the harnesses when libFuzzer is not there (gcc builds,
 * `make test`'s smoke run). No coverage feedback: it replays every seed, then mutates seeds
 * at random (bit flips, bytes set to boundary values, 16/32/64-bit fields set to boundary
 * integers, insertions, deletions, duplicated ranges, truncations, splices of two seeds) until
 * the time or the run count is spent. libFuzzer (`make fuzz`) is the real fuzzer; this one
 * keeps every harness built, run and crash-free in every build.
 *
 *   fuzz_NAME [-t SECONDS] [-r RUNS] [-s SEED] [-m MAXLEN] SEED_FILE_OR_DIR...
 *
 * stdout: one line, "fuzz_NAME: R executions in S s (E/s) over K seeds, 0 crashes". A crash or
 * an input that runs longer than 20 s writes the input to crash-NAME-SEED-RUN (or
 * timeout-NAME-SEED-RUN) in the current directory, says so on stderr and ends the process by
 * the signal (or exit status 1 for a timeout), so the test fails. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

#define INPUT_SECONDS 20
#define AB_MIN_(a, b) ((a) < (b) ? (a) : (b))

struct seed {
    uint8_t *p;
    size_t n;
};

static struct seed *seeds;
static size_t n_seeds, cap_seeds, max_len = 1 << 20;
static const char *name = "fuzz";
static unsigned long long rng_seed = 1, run;
static const uint8_t *cur;
static size_t cur_n;

static uint64_t rng_state;
static uint64_t rnd(void) /* xorshift64* */
{
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- what happens when an input crashes or hangs (async-signal-safe) ---------------------- */

/* Appends the decimal digits of v to dst at *k (at most 20). */
static void add_u(char *dst, size_t *k, unsigned long long v)
{
    char b[24];
    int i = (int)sizeof b;
    do b[--i] = (char)('0' + v % 10), v /= 10;
    while (v);
    while (i < (int)sizeof b) dst[(*k)++] = b[i++];
}

/* Appends s to dst at *k, up to 200 characters in all. */
static void add_s(char *dst, size_t *k, const char *s)
{
    while (*s && *k < 200) dst[(*k)++] = *s++;
}

static void save_input(const char *kind)
{
    char file[256], msg[512];
    size_t k = 0, m = 0;
    add_s(file, &k, kind), add_s(file, &k, "-"), add_s(file, &k, name), add_s(file, &k, "-");
    add_u(file, &k, rng_seed), file[k++] = '-', add_u(file, &k, run);
    file[k] = 0;
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        if (cur_n) (void)!write(fd, cur, cur_n);
        close(fd);
    }
    add_s(msg, &m, name), add_s(msg, &m, ": "), add_s(msg, &m, kind);
    add_s(msg, &m, " at run "), add_u(msg, &m, run), add_s(msg, &m, ": the input is in ");
    memcpy(msg + m, file, k), m += k, msg[m++] = '\n';
    (void)!write(2, msg, m);
}

static void on_crash(int sig)
{
    save_input("crash");
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_alarm(int sig)
{
    (void)sig;
    save_input("timeout");
    _exit(1);
}

/* ---- seeds ------------------------------------------------------------------------------ */

static void add_seed(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot read '%s'\n", name, path);
        exit(2);
    }
    uint8_t *p = malloc(max_len ? max_len : 1);
    size_t n = fread(p, 1, max_len, f);
    fclose(f);
    if (n_seeds == cap_seeds) {
        cap_seeds = cap_seeds * 2 + 16;
        seeds = realloc(seeds, cap_seeds * sizeof *seeds);
    }
    seeds[n_seeds].p = p, seeds[n_seeds].n = n, n_seeds++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_path(const char *path)
{
    struct stat st;
    DIR *d = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? opendir(path) : NULL;
    if (!d) {
        add_seed(path);
        return;
    }
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, (n + 1) * sizeof *names);
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        snprintf(names[n++], len, "%s/%s", path, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name); /* replayable: the same order everywhere */
    for (size_t i = 0; i < n; i++) add_seed(names[i]), free(names[i]);
    free(names);
}

/* ---- mutations ---------------------------------------------------------------------------- */

static const int64_t boundary[] = {0,          1,          -1,         0x7f,        0x80,
                                   0xff,       0x7fff,     0x8000,     0xffff,      0x7fffffff,
                                   0x80000000, 0xffffffff, INT64_MAX,  INT64_MIN,   1 << 16,
                                   1 << 20,    1 << 30,    1ll << 31,  1ll << 32,   1ll << 40};

/* One random change of b[0 .. *n) (capacity cap). */
static void mutate_once(uint8_t *b, size_t *n, size_t cap)
{
    size_t len = *n;
    switch (below(len ? 9 : 1) + (len ? 0 : 4)) {
    case 0: b[below(len)] ^= (uint8_t)(1u << below(8)); break;
    case 1: b[below(len)] = (uint8_t)boundary[below(6)]; break;
    case 2: b[below(len)] = (uint8_t)rnd(); break;
    case 3: { /* a little-endian field of 2, 4 or 8 bytes set to a boundary value, or +- small */
        size_t w = (size_t)2 << below(3);
        if (len < w) break;
        size_t at = below(len - w + 1);
        int64_t v = boundary[below(sizeof boundary / sizeof *boundary)];
        if (rnd() & 1) {
            v = 0;
            memcpy(&v, b + at, w);
            v += (int64_t)below(33) - 16;
        }
        memcpy(b + at, &v, w);
        break;
    }
    case 4: { /* insert up to 16 random bytes */
        size_t k = 1 + below(16), at = below(len + 1);
        if (len + k > cap) break;
        memmove(b + at + k, b + at, len - at);
        for (size_t i = 0; i < k; i++) b[at + i] = (uint8_t)rnd();
        *n = len + k;
        break;
    }
    case 5: { /* delete a range */
        if (!len) break;
        size_t at = below(len), k = 1 + below(AB_MIN_(len - at, 64));
        memmove(b + at, b + at + k, len - at - k);
        *n = len - k;
        break;
    }
    case 6: { /* duplicate a range, inserted before another position */
        uint8_t copy[64];
        size_t at = below(len), k = 1 + below(AB_MIN_(len - at, 64)), to = below(len);
        if (!len || k > 64 || to >= len || len + k > cap) break;
        memcpy(copy, b + at, k);
        memmove(b + to + k, b + to, len - to);
        memcpy(b + to, copy, k);
        *n = len + k;
        break;
    }
    case 7: *n = below(len); break; /* truncate */
    case 8: { /* splice: the tail of another seed from the same offset */
        const struct seed *o = &seeds[below(n_seeds)];
        size_t at = below(len);
        if (at < o->n) {
            size_t k = AB_MIN_(o->n - at, cap - at);
            memcpy(b + at, o->p + at, k);
            *n = at + k;
        }
        break;
    }
    }
}

int main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/');
    name = base ? base + 1 : argv[0];
    double seconds = 2;
    unsigned long long max_runs = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i += 2) {
        if (i + 1 >= argc) break;
        if (!strcmp(argv[i], "-t")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) max_runs = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "-s")) rng_seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "-m")) max_len = strtoull(argv[i + 1], NULL, 10);
        else break;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: %s [-t SECONDS] [-r RUNS] [-s SEED] [-m MAXLEN] SEEDS...\n", name);
        return 2;
    }
    for (; i < argc; i++) add_path(argv[i]);
    if (!n_seeds) add_seed("/dev/null");
    rng_state = rng_seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    for (int s = 0, sig[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}; s < 5; s++)
        signal(sig[s], on_crash);
    signal(SIGALRM, on_alarm);

    size_t cap = max_len + 1024;
    uint8_t *b = malloc(cap);
    double t0 = now();
    for (size_t s = 0; s < n_seeds; s++, run++) { /* every seed as it is */
        cur = seeds[s].p, cur_n = seeds[s].n;
        alarm(INPUT_SECONDS);
        LLVMFuzzerTestOneInput(cur, cur_n);
    }
    while ((max_runs ? run < max_runs : 1) && (max_runs || now() - t0 < seconds)) {
        const struct seed *s = &seeds[below(n_seeds)];
        size_t n = AB_MIN_(s->n, max_len);
        memcpy(b, s->p, n);
        for (int k = 1 + (int)below(8); k > 0; k--) mutate_once(b, &n, max_len);
        cur = b, cur_n = n;
        alarm(INPUT_SECONDS);
        LLVMFuzzerTestOneInput(b, n);
        run++;
    }
    alarm(0);
    double dt = now() - t0;
    printf("%s: %llu executions in %.1f s (%.0f/s) over %zu seeds, 0 crashes\n", name, run, dt,
           dt > 0 ? (double)run / dt : 0.0, n_seeds);
    for (size_t s = 0; s < n_seeds; s++) free(seeds[s].p);
    free(seeds), free(b);
    return 0;
}
