/* helpers.c - see helpers.h. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *t_path(const char *name)
{
    static char ring[16][1024];
    static int next;
    const char *tmp = getenv("AB_TMP");
    if (!tmp || !*tmp) tmp = "/tmp";
    mkdir(tmp, 0777);
    char *p = ring[next++ % 16];
    snprintf(p, 1024, "%s/%ld-%s", tmp, (long)getpid(), name);
    return p;
}

static char *read_all(FILE *f)
{
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    rewind(f);
    size_t got;
    while ((got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            char *t = realloc(s, cap *= 2);
            if (!t) break;
            s = t;
        }
    }
    s[n] = 0;
    return s;
}

int t_run(char **out, char **err, const char *fmt, ...)
{
    char args[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *bin = getenv("AB_BIN");
    if (!bin) bin = "attnbench";
    FILE *fo = tmpfile(), *fe = tmpfile();
    if (!fo || !fe) return -1;
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/fd/%d 2>/dev/fd/%d </dev/null", bin, args,
             fileno(fo), fileno(fe));
    int st = system(cmd);
    if (out) *out = read_all(fo);
    if (err) *err = read_all(fe);
    fclose(fo);
    fclose(fe);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

int t_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int t_tmp_left(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    const char *base = slash ? slash + 1 : path;
    size_t nb = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        found = n > nb + 4 && !strncmp(e->d_name, base, nb) && e->d_name[nb] == '.' &&
                !strcmp(e->d_name + n - 4, ".tmp");
    }
    closedir(d);
    return found;
}

unsigned char *t_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)(n > 0 ? n : 0) + 1); /* NUL-terminated for text use */
    if (b) b[n > 0 ? n : 0] = 0;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b && len) *len = (size_t)n;
    return b;
}

int t_count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

int t_matrix_read(const char *path, struct t_matrix *m)
{
    *m = (struct t_matrix){0};
    size_t len = 0;
    unsigned char *b = t_slurp(path, &len);
    if (!b || len < sizeof(float) || len % sizeof(float)) {
        free(b);
        return -1;
    }
    size_t n = len / sizeof(float);
    float *f = malloc(n * sizeof(float));
    if (!f) {
        free(b);
        return -1;
    }
    memcpy(f, b, n * sizeof(float));
    free(b);
    int64_t w = (int64_t)f[0];
    if (w < 1 || (size_t)w + 1 > n || (n - 1 - (size_t)w) % (size_t)(w + 1)) {
        free(f);
        return -1;
    }
    int64_t h = (int64_t)((n - 1 - (size_t)w) / (size_t)(w + 1));
    m->width = w, m->height = h;
    m->x = malloc(sizeof(float) * (size_t)w);
    m->y = malloc(sizeof(float) * (size_t)(h + 1));
    m->v = malloc(sizeof(float) * (size_t)(w * h + 1));
    if (!m->x || !m->y || !m->v) {
        free(f);
        t_matrix_free(m);
        return -1;
    }
    memcpy(m->x, f + 1, sizeof(float) * (size_t)w);
    for (int64_t r = 0; r < h; r++) {
        const float *row = f + 1 + w + r * (w + 1);
        m->y[r] = row[0];
        memcpy(m->v + r * w, row + 1, sizeof(float) * (size_t)w);
    }
    free(f);
    return 0;
}

void t_matrix_free(struct t_matrix *m)
{
    free(m->x), free(m->y), free(m->v);
    *m = (struct t_matrix){0};
}

void t_png_size(const char *path, uint32_t *w, uint32_t *h)
{
    size_t n = 0;
    unsigned char *b = t_slurp(path, &n);
    *w = *h = 0;
    if (b && n >= 24 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8) && !memcmp(b + 12, "IHDR", 4)) {
        *w = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
        *h = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
    }
    free(b);
}

const char *t_debdoc(const char *name)
{
    static char buf[4][1024];
    static int next;
    const char *dir = getenv("AB_SHARED");
    cr_assert(dir && *dir, "AB_SHARED is not set (tests/meson.build sets it to ../shared)");
    char *p = buf[next++ % 4];
    snprintf(p, 1024, "%s/models/debdoc/%s", dir, name);
    cr_assert(t_exists(p), "%s is missing: the debdoc model lives in ../shared/models/debdoc", p);
    return p;
}
