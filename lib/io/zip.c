/* zip.c - the validating ZIP reader of zip.h: end records, central directory, local headers,
 * ZIP64 extra fields, stored and deflated members (zlib), CRC-32 checks.
 *
 * Numbers in the archive are little-endian and read byte by byte. Every 64-bit value from the
 * file is compared with the file's length before it is used in arithmetic, so no sum below can
 * overflow, and every read is of a range already known to lie inside the file. */
#include "io/zip.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/ab.h"

enum {
    SIG_LOCAL = 0x04034b50,
    SIG_CENTRAL = 0x02014b50,
    SIG_END = 0x06054b50,
    SIG_END64 = 0x06064b50,
    SIG_LOCATOR64 = 0x07064b50,
    END_LEN = 22,       /* end of central directory record without its comment */
    LOCATOR64_LEN = 20, /* ZIP64 end of central directory locator */
    END64_LEN = 56,     /* ZIP64 end of central directory record, fixed part */
    CENTRAL_LEN = 46,   /* central directory entry, fixed part */
    LOCAL_LEN = 30,     /* local file header, fixed part */
    MAX_COMMENT = 65535,
};

#define U32_MAX_FIELD 0xffffffffu /* "see the ZIP64 extra field" */
#define U16_MAX_FIELD 0xffffu

static uint32_t rd16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* Reads n bytes at offset off (off + n <= z->size already checked). */
static int read_at(struct ab_zip *z, int64_t off, void *buf, size_t n)
{
    if (fseeko(z->f, (off_t)off, SEEK_SET) != 0 || fread(buf, 1, n, z->f) != n)
        return ab_fail(ferror(z->f) ? AB_E_IO : AB_E_DATA, "'%s': %s", z->path,
                       ferror(z->f) ? "read failed" : "truncated ZIP archive (shrank while read)");
    return AB_OK;
}

void ab_zip_close(struct ab_zip *z)
{
    if (z->f) fclose(z->f);
    for (int64_t i = 0; z->e && i < z->n; i++) free(z->e[i].name);
    free(z->e);
    free(z->path);
    memset(z, 0, sizeof *z);
}

int64_t ab_zip_find(const struct ab_zip *z, const char *name)
{
    for (int64_t i = 0; i < z->n; i++)
        if (!strcmp(z->e[i].name, name)) return i;
    return -1;
}

/* Where the central directory is, from the end records. */
struct zip_dir {
    uint64_t n, cd_off, cd_size;
    int64_t limit; /* the central directory must end at or before this offset */
};

/* Finds and checks the end of central directory record, and the ZIP64 ones if present. */
static int read_end(struct ab_zip *z, struct zip_dir *dir)
{
    int64_t tail = AB_MIN(z->size, (int64_t)(END_LEN + MAX_COMMENT));
    unsigned char *buf = malloc((size_t)tail), b[END64_LEN];
    if (!buf) return ab_fail(AB_E_NOMEM, "'%s': cannot allocate the ZIP end records", z->path);
    int rc = read_at(z, z->size - tail, buf, (size_t)tail);
    if (rc) goto done;
    /* the record ends the file: its comment length must reach exactly the last byte */
    int64_t pos = -1;
    for (int64_t p = tail - END_LEN; p >= 0; p--)
        if (rd32(buf + p) == SIG_END && p + END_LEN + rd16(buf + p + 20) == tail) {
            pos = p;
            break;
        }
    if (pos < 0) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': no ZIP end of central directory record (not a .npz, or "
                     "truncated)",
                     z->path);
        goto done;
    }
    const unsigned char *e = buf + pos;
    int64_t end_off = z->size - tail + pos;
    uint32_t disk = rd16(e + 4), cd_disk = rd16(e + 6);
    uint64_t n_disk = rd16(e + 8), n = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    dir->limit = end_off;
    int64_t loc = end_off - LOCATOR64_LEN;
    if (loc >= 0 && (rc = read_at(z, loc, b, LOCATOR64_LEN))) goto done;
    if (loc >= 0 && rd32(b) == SIG_LOCATOR64) {
        uint32_t end64_disk = rd32(b + 4), n_disks = rd32(b + 16);
        uint64_t end64 = rd64(b + 8);
        if (end64_disk != 0 || n_disks > 1) {
            rc = ab_fail(AB_E_DATA,
                         "'%s': ZIP archives spanning several disks are not "
                         "supported",
                         z->path);
            goto done;
        }
        if (end64 > (uint64_t)loc || (uint64_t)loc - end64 < END64_LEN) {
            rc = ab_fail(AB_E_DATA,
                         "'%s': the ZIP64 end record offset %llu lies outside the "
                         "file",
                         z->path, (unsigned long long)end64);
            goto done;
        }
        if ((rc = read_at(z, (int64_t)end64, b, END64_LEN))) goto done;
        uint64_t rec = rd64(b + 4); /* size of the record after this field */
        if (rd32(b) != SIG_END64 || rec < END64_LEN - 12 || rec > (uint64_t)loc - end64 - 12) {
            rc = ab_fail(AB_E_DATA, "'%s': damaged ZIP64 end of central directory record", z->path);
            goto done;
        }
        disk = rd32(b + 16), cd_disk = rd32(b + 20);
        n_disk = rd64(b + 24), n = rd64(b + 32), cd_size = rd64(b + 40), cd_off = rd64(b + 48);
        dir->limit = (int64_t)end64;
    } else if (cd_off == U32_MAX_FIELD || cd_size == U32_MAX_FIELD) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': the ZIP end record defers to a ZIP64 record that is "
                     "missing",
                     z->path);
        goto done;
    }
    if (disk != 0 || cd_disk != 0 || n_disk != n) {
        rc = ab_fail(AB_E_DATA, "'%s': ZIP archives spanning several disks are not supported",
                     z->path);
        goto done;
    }
    if (cd_off > (uint64_t)dir->limit || cd_size > (uint64_t)dir->limit - cd_off) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': the ZIP central directory (offset %llu, %llu bytes) lies "
                     "outside the file",
                     z->path, (unsigned long long)cd_off, (unsigned long long)cd_size);
        goto done;
    }
    if (n > cd_size / CENTRAL_LEN) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': %llu ZIP entries cannot fit in a central directory of "
                     "%llu bytes",
                     z->path, (unsigned long long)n, (unsigned long long)cd_size);
        goto done;
    }
    dir->n = n, dir->cd_off = cd_off, dir->cd_size = cd_size;
    rc = AB_OK;
done:
    free(buf);
    return rc;
}

/* Applies the ZIP64 extra field (id 1) among the extras x[0..len) of entry e: it holds, in
 * this order, the uncompressed size, the compressed size, the local header offset and the disk
 * number, each present only when the 32-bit (16-bit) field is all ones. */
static int apply_zip64(const char *path, const unsigned char *x, uint32_t len, uint64_t *usize,
                       uint64_t *csize, uint64_t *local, uint32_t *disk)
{
    int need = *usize == U32_MAX_FIELD || *csize == U32_MAX_FIELD || *local == U32_MAX_FIELD ||
               *disk == U16_MAX_FIELD;
    uint32_t p = 0;
    while (p + 4 <= len) {
        uint32_t id = rd16(x + p), size = rd16(x + p + 2);
        if (size > len - p - 4)
            return ab_fail(AB_E_DATA, "'%s': a ZIP extra field overruns its entry", path);
        const unsigned char *f = x + p + 4;
        if (id == 1) {
            uint32_t q = 0;
            uint64_t *wide[3] = {usize, csize, local};
            for (int k = 0; k < 3; k++) {
                if (*wide[k] != U32_MAX_FIELD) continue;
                if (q + 8 > size)
                    return ab_fail(AB_E_DATA, "'%s': ZIP64 extra field too short", path);
                *wide[k] = rd64(f + q);
                q += 8;
            }
            if (*disk == U16_MAX_FIELD) {
                if (q + 4 > size)
                    return ab_fail(AB_E_DATA, "'%s': ZIP64 extra field too short", path);
                *disk = rd32(f + q);
            }
            need = 0;
        }
        p += 4 + size;
    }
    if (need)
        return ab_fail(AB_E_DATA, "'%s': a ZIP entry defers to a ZIP64 extra field it lacks", path);
    return AB_OK;
}

/* Parses the central directory cd[0..dir->cd_size) into z->e. */
static int read_central(struct ab_zip *z, const struct zip_dir *dir, const unsigned char *cd)
{
    uint64_t p = 0;
    for (int64_t i = 0; i < z->n; i++) {
        if (dir->cd_size - p < CENTRAL_LEN || rd32(cd + p) != SIG_CENTRAL)
            return ab_fail(AB_E_DATA, "'%s': ZIP central directory entry %lld is damaged", z->path,
                           (long long)i);
        const unsigned char *c = cd + p;
        uint32_t flags = rd16(c + 8), method = rd16(c + 10), nlen = rd16(c + 28);
        uint32_t xlen = rd16(c + 30), clen = rd16(c + 32), disk = rd16(c + 34);
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24), local = rd32(c + 42);
        if (dir->cd_size - p - CENTRAL_LEN < (uint64_t)nlen + xlen + clen)
            return ab_fail(AB_E_DATA,
                           "'%s': ZIP central directory entry %lld overruns the "
                           "directory",
                           z->path, (long long)i);
        const unsigned char *name = c + CENTRAL_LEN;
        if (memchr(name, '\0', nlen))
            return ab_fail(AB_E_DATA, "'%s': a ZIP member name holds a NUL byte", z->path);
        struct ab_zip_entry *e = &z->e[i];
        e->name = malloc(nlen + 1);
        if (!e->name) return ab_fail(AB_E_NOMEM, "'%s': cannot allocate a name", z->path);
        memcpy(e->name, name, nlen);
        e->name[nlen] = '\0';
        int rc = apply_zip64(z->path, name + nlen, xlen, &usize, &csize, &local, &disk);
        if (rc) return rc;
        if (flags & 0x41)
            return ab_fail(AB_E_DATA, "'%s': member '%s' is encrypted", z->path, e->name);
        if (method != 0 && method != 8)
            return ab_fail(AB_E_DATA,
                           "'%s': member '%s' uses compression method %u (stored and "
                           "deflate only)",
                           z->path, e->name, method);
        if (disk != 0)
            return ab_fail(AB_E_DATA,
                           "'%s': ZIP archives spanning several disks are not "
                           "supported",
                           z->path);
        /* the member (local header, name, data) lies before the central directory */
        if (local > dir->cd_off || csize > dir->cd_off - local ||
            dir->cd_off - local - csize < LOCAL_LEN + (uint64_t)nlen)
            return ab_fail(AB_E_DATA,
                           "'%s': member '%s' (offset %llu, %llu bytes) lies outside "
                           "the file's data",
                           z->path, e->name, (unsigned long long)local, (unsigned long long)csize);
        if (method == 0 && csize != usize)
            return ab_fail(AB_E_DATA, "'%s': stored member '%s' has sizes %llu and %llu", z->path,
                           e->name, (unsigned long long)csize, (unsigned long long)usize);
        /* deflate turns a byte into at most 1032 (258 per 2-bit code, rounded up), so a
         * larger claim is a lie, refused before anything is allocated for it */
        if (usize > (uint64_t)INT64_MAX / 2 || (double)usize > 1032.0 * (double)csize + 64)
            return ab_fail(AB_E_DATA, "'%s': member '%s' claims %llu bytes from %llu stored: more "
                           "than deflate can produce", z->path, e->name,
                           (unsigned long long)usize, (unsigned long long)csize);
        e->method = (int)method;
        e->crc = rd32(c + 16);
        e->csize = (int64_t)csize, e->usize = (int64_t)usize, e->local_off = (int64_t)local;
        p += CENTRAL_LEN + (uint64_t)nlen + xlen + clen;
    }
    if (p != dir->cd_size)
        return ab_fail(AB_E_DATA,
                       "'%s': the ZIP central directory holds %llu bytes more than "
                       "its %lld entries",
                       z->path, (unsigned long long)(dir->cd_size - p), (long long)z->n);
    return AB_OK;
}

int ab_zip_open(struct ab_zip *z, const char *path)
{
    struct stat st;
    struct zip_dir dir = {0};
    unsigned char *cd = NULL;
    memset(z, 0, sizeof *z);
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ab_fail(AB_E_NOFILE, "'%s': no such file", path);
        return ab_fail(AB_E_IO, "'%s': cannot read: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return ab_fail(AB_E_DATA, "'%s': is a directory", path);
    z->path = strdup(path);
    z->f = fopen(path, "rb");
    if (!z->path || !z->f) {
        int rc = !z->path ? ab_fail(AB_E_NOMEM, "'%s': out of memory", path)
                          : ab_fail(AB_E_IO, "'%s': cannot open: %s", path, strerror(errno));
        ab_zip_close(z);
        return rc;
    }
    z->size = (int64_t)st.st_size;
    int rc = AB_OK;
    if (z->size < END_LEN) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': truncated ZIP archive (%lld bytes, shorter than the end "
                     "record)",
                     path, (long long)z->size);
        goto done;
    }
    if ((rc = read_end(z, &dir))) goto done;
    z->n = (int64_t)dir.n;
    z->e = calloc(dir.n + 1, sizeof *z->e);
    cd = malloc(dir.cd_size + 1);
    if (!z->e || !cd) {
        rc = ab_fail(AB_E_NOMEM, "'%s': cannot allocate the ZIP directory", path);
        goto done;
    }
    if ((rc = read_at(z, (int64_t)dir.cd_off, cd, dir.cd_size))) goto done;
    rc = read_central(z, &dir, cd);
    z->data_end = (int64_t)dir.cd_off;
done:
    free(cd);
    if (rc) ab_zip_close(z);
    return rc;
}

/* Inflates the raw deflate stream in[0..n_in) into out[0..n_out), which it must fill exactly. */
static int inflate_all(const struct ab_zip *z, const struct ab_zip_entry *e,
                       const unsigned char *in, size_t n_in, unsigned char *out, size_t n_out)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK)
        return ab_fail(AB_E_NOMEM, "'%s': cannot start zlib", z->path);
    size_t done_in = 0, done_out = 0;
    int ret = Z_OK, overflow = 0;
    unsigned char spare; /* room past the end, to notice a stream that inflates to more */
    while (ret == Z_OK) {
        size_t chunk_in = AB_MIN(n_in - done_in, (size_t)1 << 30);
        size_t chunk_out = AB_MIN(n_out - done_out, (size_t)1 << 30);
        s.next_in = (unsigned char *)in + done_in;
        s.avail_in = (uInt)chunk_in;
        s.next_out = chunk_out ? out + done_out : &spare;
        s.avail_out = chunk_out ? (uInt)chunk_out : 1;
        ret = inflate(&s, Z_NO_FLUSH);
        done_in += chunk_in - s.avail_in;
        if (chunk_out)
            done_out += chunk_out - s.avail_out;
        else if (s.avail_out == 0)
            overflow = 1;
        if (overflow) break;
    }
    const char *msg = s.msg;
    inflateEnd(&s);
    if (ret == Z_STREAM_END && done_out == n_out && done_in == n_in) return AB_OK;
    if (ret == Z_DATA_ERROR)
        return ab_fail(AB_E_DATA, "'%s': member '%s': corrupt deflate data (%s)", z->path, e->name,
                       msg ? msg : "zlib");
    if (ret == Z_MEM_ERROR) return ab_fail(AB_E_NOMEM, "'%s': zlib out of memory", z->path);
    if (overflow)
        return ab_fail(AB_E_DATA,
                       "'%s': member '%s': deflate data inflates to more than the "
                       "%zu bytes the directory declares",
                       z->path, e->name, n_out);
    if (ret == Z_STREAM_END)
        return ab_fail(AB_E_DATA,
                       "'%s': member '%s': deflate stream ends after %zu of %zu "
                       "bytes, %zu stored bytes unread",
                       z->path, e->name, done_out, n_out, n_in - done_in);
    return ab_fail(AB_E_DATA,
                   "'%s': member '%s': truncated deflate data (%zu of %zu bytes "
                   "inflated)",
                   z->path, e->name, done_out, n_out);
}

int ab_zip_read(struct ab_zip *z, int64_t i, unsigned char **data, size_t *len)
{
    const struct ab_zip_entry *e = &z->e[i];
    unsigned char h[LOCAL_LEN], *packed = NULL, *out = NULL;
    *data = NULL, *len = 0;
    int rc = read_at(z, e->local_off, h, LOCAL_LEN);
    if (rc) return rc;
    size_t nlen = strlen(e->name);
    uint32_t flags = rd16(h + 6), method = rd16(h + 8), lcrc = rd32(h + 14);
    uint64_t lcsize = rd32(h + 18), lusize = rd32(h + 22);
    uint32_t lnlen = rd16(h + 26), lxlen = rd16(h + 28);
    if (rd32(h) != SIG_LOCAL || lnlen != nlen || method != (uint32_t)e->method)
        return ab_fail(AB_E_DATA,
                       "'%s': member '%s': the local header does not match the "
                       "central directory",
                       z->path, e->name);
    /* name and extras, then the data, all before the central directory */
    int64_t data_off = e->local_off + LOCAL_LEN + (int64_t)nlen + lxlen;
    if (data_off > z->data_end || e->csize > z->data_end - data_off)
        return ab_fail(AB_E_DATA, "'%s': member '%s': data runs past the central directory",
                       z->path, e->name);
    char *lname = malloc(nlen + 1);
    if (!lname) return ab_fail(AB_E_NOMEM, "'%s': out of memory", z->path);
    rc = read_at(z, e->local_off + LOCAL_LEN, lname, nlen);
    int same = !rc && !memcmp(lname, e->name, nlen);
    free(lname);
    if (rc) return rc;
    if (!same)
        return ab_fail(AB_E_DATA, "'%s': member '%s': the local header names another file", z->path,
                       e->name);
    /* without a data descriptor (flag bit 3) the local header repeats CRC and sizes: all ones
     * in a 32-bit field sends to the local ZIP64 extra field, which must agree as well */
    if (!(flags & 8) && (lcsize == U32_MAX_FIELD || lusize == U32_MAX_FIELD)) {
        unsigned char *x = malloc((size_t)lxlen + 1);
        if (!x) return ab_fail(AB_E_NOMEM, "'%s': out of memory", z->path);
        uint64_t lo = 0;
        uint32_t ld = 0;
        rc = read_at(z, e->local_off + LOCAL_LEN + (int64_t)nlen, x, lxlen);
        if (!rc) rc = apply_zip64(z->path, x, lxlen, &lusize, &lcsize, &lo, &ld);
        free(x);
        if (rc) return rc;
        if (lcsize == U32_MAX_FIELD || lusize == U32_MAX_FIELD)
            return ab_fail(AB_E_DATA, "'%s': member '%s': the local header defers its sizes to a "
                           "ZIP64 field it does not have", z->path, e->name);
    }
    if (!(flags & 8) &&
        (lcrc != e->crc || lcsize != (uint64_t)e->csize || lusize != (uint64_t)e->usize))
        return ab_fail(AB_E_DATA,
                       "'%s': member '%s': the local header's CRC or sizes differ "
                       "from the central directory's",
                       z->path, e->name);
    if ((rc = ab_check_fits(z->path, (double)e->usize + (double)e->csize))) return rc;
    if (e->usize == 0 && e->csize == 0) return AB_OK;
    packed = malloc((size_t)e->csize + 1);
    if (!packed) return ab_fail(AB_E_NOMEM, "'%s': cannot allocate member '%s'", z->path, e->name);
    if ((rc = read_at(z, data_off, packed, (size_t)e->csize))) goto fail;
    if (e->method == 0) {
        out = packed, packed = NULL;
    } else {
        out = malloc((size_t)e->usize + 1);
        if (!out) {
            rc = ab_fail(AB_E_NOMEM, "'%s': cannot allocate member '%s'", z->path, e->name);
            goto fail;
        }
        if ((rc = inflate_all(z, e, packed, (size_t)e->csize, out, (size_t)e->usize))) goto fail;
    }
    /* CRC-32 of what was read, in pieces zlib's uInt lengths can take */
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int64_t at = 0; at < e->usize; at += (int64_t)1 << 30)
        crc = crc32(crc, out + at, (uInt)AB_MIN(e->usize - at, (int64_t)1 << 30));
    if ((uint32_t)crc != e->crc) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': member '%s': CRC-32 mismatch (%08x read, %08x declared): "
                     "the archive is damaged",
                     z->path, e->name, (unsigned)crc, e->crc);
        goto fail;
    }
    free(packed);
    *data = out, *len = (size_t)e->usize;
    return AB_OK;
fail:
    free(packed);
    free(out);
    return rc;
}
