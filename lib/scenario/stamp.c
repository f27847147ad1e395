/* stamp.c - up-to-date scenario steps (see stamp.h). */
#include "scenario/stamp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/sha256.h"
#include "io/results_io.h"

/* Adds "PATH SHA256\n" of one input file to s. */
static int add_file(struct ab_sha256 *s, const char *path)
{
    char hex[65];
    int rc = ab_results_sha256_file(path, hex);
    if (rc) return rc;
    ab_sha256_update(s, path, strlen(path));
    ab_sha256_update(s, " ", 1);
    ab_sha256_update(s, hex, 64);
    ab_sha256_update(s, "\n", 1);
    return AB_OK;
}

int ab_step_key(const char *cmd, const struct ab_decl *t, const void *o, const char *const *pos,
                int n_pos, unsigned long long seed, char hex[65])
{
    char tail[64];
    snprintf(tail, sizeof tail, "--seed %llu", seed);
    char *line = ab_decl_command(cmd, t, o, pos, n_pos, tail);
    if (!line) return ab_fail(AB_E_NOMEM, "out of memory");
    struct ab_sha256 s;
    ab_sha256_init(&s);
    const char *v = ab_version();
    ab_sha256_update(&s, v, strlen(v));
    ab_sha256_update(&s, "\n", 1);
    /* the program itself: a rebuild that changes any code changes every key (the version
     * string alone does not move between commits) */
    static char exe[65];
    if (!exe[0] && ab_results_sha256_file("/proc/self/exe", exe)) snprintf(exe, sizeof exe, "-");
    ab_sha256_update(&s, exe, strlen(exe));
    ab_sha256_update(&s, "\n", 1);
    ab_sha256_update(&s, line, strlen(line));
    ab_sha256_update(&s, "\n", 1);
    free(line);
    int rc = AB_OK;
    for (int i = 0; i < n_pos && !rc; i++) rc = add_file(&s, pos[i]);
    for (const struct ab_decl *d = t; d->name && !rc; d++) {
        if (!(d->flags & AB_DECL_INPUT) || (d->type != AB_DECL_STR && d->type != AB_DECL_LIST))
            continue;
        const char *path = *(char *const *)((const char *)o + d->offset);
        if (path && d->type == AB_DECL_STR) rc = add_file(&s, path);
        for (const char *p = path; p && *p && d->type == AB_DECL_LIST && !rc;) { /* each file */
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char one[4096];
            snprintf(one, sizeof one, "%.*s", (int)len, p);
            rc = add_file(&s, one);
            p = comma ? comma + 1 : p + len;
        }
    }
    unsigned char digest[32];
    ab_sha256_final(&s, digest);
    ab_sha256_to_hex(digest, hex);
    return rc;
}

void ab_step_stamp_path(const char *out, char *buf, size_t cap)
{
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/') len--;
    size_t base = len;
    while (base > 0 && out[base - 1] != '/') base--;
    snprintf(buf, cap, "%.*s.%.*s.stamp", (int)base, out, (int)(len - base), out + base);
}

/* out's own digest: its bytes for a file, "folder" for a folder; "" when missing. */
static void out_digest(const char *out, char hex[65])
{
    struct stat st;
    hex[0] = 0;
    if (stat(out, &st)) return;
    if (S_ISDIR(st.st_mode)) {
        snprintf(hex, 65, "folder");
        return;
    }
    if (ab_results_sha256_file(out, hex)) hex[0] = 0;
}

int ab_step_fresh(const char *out, const char *key)
{
    char path[4200], text[256], want[256], hex[65];
    ab_step_stamp_path(out, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[got] = 0;
    out_digest(out, hex);
    if (!hex[0]) return 0;
    snprintf(want, sizeof want, "%s %s\n", key, hex);
    return !strcmp(text, want);
}

int ab_step_stamp(const char *out, const char *key)
{
    char path[4200], text[256], hex[65];
    ab_step_stamp_path(out, path, sizeof path);
    out_digest(out, hex);
    if (!hex[0]) return ab_fail(AB_E_IO, "'%s': the step wrote no output", out);
    int n = snprintf(text, sizeof text, "%s %s\n", key, hex);
    struct ab_outfile f;
    int rc = ab_outfile_open(&f, path);
    if (rc) return rc;
    fwrite(text, 1, (size_t)n, f.f); /* an error shows on commit */
    return ab_outfile_commit(&f);
}

void ab_step_unstamp(const char *out)
{
    char path[4200];
    ab_step_stamp_path(out, path, sizeof path);
    unlink(path);
}
