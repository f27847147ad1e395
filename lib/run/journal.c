/* journal.c - the journal of a long run and the unit blobs (format in journal.h): encoding a
 * unit's cells column by column, decoding with every length checked, and the append-only file
 * with CRC-framed records that `run --resume` reads back. */
#include "run/journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/ab.h"
#include "io/results_io.h"

/* ---------------------------------------------------------------- unit blobs */

struct buf {
    unsigned char *p;
    size_t n, cap;
    int failed;
};

static void put(struct buf *b, const void *src, size_t n)
{
    if (b->failed) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

int ab_unit_encode(int64_t unit, const struct ab_cell *cells, int64_t n, unsigned char **data,
                   size_t *len)
{
    int n_cols;
    const struct ab_column *cols = ab_results_cell_columns(&n_cols);
    struct buf b = {0};
    uint64_t u = (uint64_t)unit, nc = (uint64_t)n;
    put(&b, &u, 8);
    put(&b, &nc, 8);
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < n_cols; c++) {
            const char *field = (const char *)&cells[i] + cols[c].offset;
            if (cols[c].type == AB_COL_STR) {
                const char *s = *(char *const *)(const void *)field;
                uint32_t l = s ? (uint32_t)strlen(s) : 0;
                put(&b, &l, 4);
                put(&b, s ? s : "", l);
            } else {
                put(&b, field, 8);
            }
        }
    if (b.failed) {
        free(b.p);
        return ab_fail(AB_E_NOMEM, "cannot encode a finished head's cells");
    }
    *data = b.p, *len = b.n;
    return AB_OK;
}

int64_t ab_unit_of(const unsigned char *data, size_t len)
{
    uint64_t u;
    if (len < 16) return -1;
    memcpy(&u, data, 8);
    return u > INT64_MAX ? -1 : (int64_t)u;
}

int ab_unit_decode(const unsigned char *data, size_t len, const char *where,
                   struct ab_results *res)
{
    int n_cols;
    const struct ab_column *cols = ab_results_cell_columns(&n_cols);
    uint64_t nc;
    if (len < 16) return ab_fail(AB_E_DATA, "'%s': damaged unit record", where);
    memcpy(&nc, data + 8, 8);
    size_t at = 16;
    int rc = AB_OK;
    for (uint64_t i = 0; i < nc && !rc; i++) {
        struct ab_cell c;
        memset(&c, 0, sizeof c);
        char *strs[64];
        int ns = 0, k = 0;
        for (; k < n_cols; k++) {
            char *field = (char *)&c + cols[k].offset;
            if (cols[k].type == AB_COL_STR) {
                uint32_t l;
                if (len - at < 4) break;
                memcpy(&l, data + at, 4), at += 4;
                if (len - at < l || ns >= 64) break;
                char *s = malloc((size_t)l + 1);
                if (!s) {
                    rc = ab_fail(AB_E_NOMEM, "cannot decode a unit record");
                    break;
                }
                memcpy(s, data + at, l), s[l] = 0, at += l;
                strs[ns++] = s;
                *(char **)(void *)field = s;
            } else {
                if (len - at < 8) break;
                memcpy(field, data + at, 8), at += 8;
            }
        }
        if (!rc && k < n_cols) rc = ab_fail(AB_E_DATA, "'%s': damaged unit record", where);
        if (!rc) rc = ab_results_add(res, &c);
        for (int q = 0; q < ns; q++) free(strs[q]);
    }
    if (!rc && at != len) rc = ab_fail(AB_E_DATA, "'%s': damaged unit record", where);
    return rc;
}

/* ---------------------------------------------------------------- the journal file */

enum { KIND_HEADER = 1, KIND_UNIT = 2, FRAME = 16 /* magic, kind, length */ };
static const char magic[4] = {'A', 'B', 'J', '1'};

static uint32_t frame_crc(const unsigned char *head, const unsigned char *payload, size_t len)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, head + 4, 12);
    for (size_t at = 0; at < len;) { /* zlib takes uInt lengths */
        uInt step = len - at > (1u << 30) ? (1u << 30) : (uInt)(len - at);
        crc = crc32(crc, payload + at, step);
        at += step;
    }
    return (uint32_t)crc;
}

/* Writes one record and flushes it to the disk. */
static int put_record(struct ab_journal *j, uint32_t kind, const void *payload, size_t len)
{
    unsigned char head[FRAME];
    uint64_t l = len;
    memcpy(head, magic, 4), memcpy(head + 4, &kind, 4), memcpy(head + 8, &l, 8);
    uint32_t crc = frame_crc(head, payload, len);
    if (fwrite(head, 1, FRAME, j->f) != FRAME || fwrite(payload, 1, len, j->f) != len ||
        fwrite(&crc, 1, 4, j->f) != 4 || fflush(j->f) != 0 || fdatasync(fileno(j->f)) != 0)
        return ab_fail(AB_E_IO, "'%s': cannot write: %s", j->path, strerror(errno));
    return AB_OK;
}

/* Reads the record at the file position: AB_OK with *payload (malloc'd) and *kind, or 1 when
 * there is no whole, valid record there (end of file, torn or damaged). */
static int get_record(FILE *f, uint32_t *kind, unsigned char **payload, size_t *len)
{
    unsigned char head[FRAME];
    uint64_t l;
    uint32_t crc;
    *payload = NULL;
    if (fread(head, 1, FRAME, f) != FRAME || memcmp(head, magic, 4)) return 1;
    memcpy(kind, head + 4, 4), memcpy(&l, head + 8, 8);
    long at = ftell(f);
    struct stat st;
    if (at < 0 || fstat(fileno(f), &st) || l > (uint64_t)st.st_size - (uint64_t)at) return 1;
    unsigned char *p = malloc(l ? (size_t)l : 1);
    if (!p) return 1;
    if (fread(p, 1, (size_t)l, f) != l || fread(&crc, 1, 4, f) != 4 ||
        crc != frame_crc(head, p, (size_t)l)) {
        free(p);
        return 1;
    }
    *payload = p, *len = (size_t)l;
    return AB_OK;
}

/* What the first line where two headers differ names, said for a person. */
static const char *header_diff(const char *a, const char *b)
{
    static const char *const names[][2] = {
        {"version\t", "attnbench version"}, {"options\t", "options"}, {"seed\t", "seed"},
        {"workload\t", "workloads (paths or contents)"}, {"shard\t", "--shard"}};
    while (*a || *b) {
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        if (la != lb || memcmp(a, b, la)) {
            const char *line = *a ? a : b;
            for (int i = 0; i < 5; i++)
                if (!strncmp(line, names[i][0], strlen(names[i][0]))) return names[i][1];
            return "options or workloads";
        }
        a += la + (a[la] == '\n'), b += lb + (b[lb] == '\n');
    }
    return "options or workloads";
}

int ab_journal_open(struct ab_journal *j, const char *path, const char *header, int resume,
                    ab_journal_found_fn found, void *user)
{
    memset(j, 0, sizeof *j);
    if (!(j->path = strdup(path))) return ab_fail(AB_E_NOMEM, "out of memory");
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (exists && !resume)
        return ab_fail(AB_E_USAGE, "'%s' holds the finished heads of an interrupted run: add "
                       "--resume to compute only the missing ones, or delete it to start over",
                       path);
    j->f = fopen(path, exists ? "r+b" : "w+b");
    if (!j->f)
        return ab_fail(AB_E_CREATE, "cannot %s journal '%s': %s", exists ? "open" : "create",
                       path, strerror(errno));
    if (flock(fileno(j->f), LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        fclose(j->f), j->f = NULL;
        if (!exists) unlink(path); /* ours: nothing else has it (flock failed otherwise) */
        return ab_fail(AB_E_CREATE, "'%s': %s", path,
                       busy ? "another run of this output is writing its journal"
                            : "cannot lock the journal");
    }
    long good = 0; /* the end of the last whole record */
    int rc = AB_OK, fresh = 1;
    if (exists) {
        uint32_t kind;
        unsigned char *p;
        size_t len;
        if (get_record(j->f, &kind, &p, &len) == AB_OK && kind == KIND_HEADER) {
            fresh = 0;
            char *text = malloc(len + 1);
            if (text) memcpy(text, p, len), text[len] = 0;
            free(p);
            if (!text) return ab_fail(AB_E_NOMEM, "out of memory");
            int other = strcmp(text, header) != 0;
            if (other && resume == 2) /* another run's journal: replaced */
                fresh = 1;
            else if (other)
                rc = ab_fail(AB_E_USAGE, "--resume: '%s' was written by a run with other %s: "
                             "resume with the same ones, or delete it to start over", path,
                             header_diff(text, header));
            free(text);
            if (rc) {
                fclose(j->f), j->f = NULL; /* unchanged on disk */
                return rc;
            }
            good = ftell(j->f);
            while (!rc && !fresh && get_record(j->f, &kind, &p, &len) == AB_OK) {
                if (kind == KIND_UNIT) {
                    rc = found ? found(user, p, len) : AB_OK;
                    j->records++;
                }
                free(p);
                if (!rc) good = ftell(j->f);
            }
            if (rc) {
                fclose(j->f), j->f = NULL;
                return rc;
            }
        } else {
            free(p); /* a header torn on its first write: nothing was journaled */
        }
        if (fflush(j->f) || ftruncate(fileno(j->f), fresh ? 0 : good) ||
            fseek(j->f, fresh ? 0 : good, SEEK_SET))
            rc = ab_fail(AB_E_IO, "'%s': cannot cut its torn tail: %s", path, strerror(errno));
    }
    if (!rc && fresh) rc = put_record(j, KIND_HEADER, header, strlen(header));
    if (rc) {
        fclose(j->f), j->f = NULL;
        if (!exists) unlink(path);
    }
    return rc;
}

int ab_journal_append(struct ab_journal *j, const unsigned char *blob, size_t len)
{
    int rc = put_record(j, KIND_UNIT, blob, len);
    if (!rc) j->records++;
    return rc;
}

void ab_journal_close(struct ab_journal *j, int remove)
{
    if (j->f) fclose(j->f);
    if (remove && j->path) unlink(j->path);
    free(j->path);
    memset(j, 0, sizeof *j);
}
