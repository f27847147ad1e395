/* zip.h - a small validating reader of ZIP archives, enough for NumPy's .npz files (np.savez:
 * members stored, written with ZIP64 extra fields since NumPy forces them; np.savez_compressed:
 * members deflated). Used by `import` through lib/io/import.c.
 *
 * What is read (PKWARE APPNOTE 6.3): the end of central directory record (found by scanning
 * back over at most 64 KiB of comment), the ZIP64 end of central directory locator and record
 * when present, every central directory entry (with its ZIP64 extra field: 64-bit sizes and
 * offset), and a member's local header (name and method must agree with the directory) before
 * its data. Every offset and size is checked against the file length and against each other
 * before anything is read in bulk. Refused with AB_E_DATA and a message naming the archive:
 * encrypted members, archives spanning several disks, methods other than stored (0) and
 * deflate (8), a CRC-32 or size that does not match what was read. */
#ifndef AB_IO_ZIP_H
#define AB_IO_ZIP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One member, from the central directory. */
struct ab_zip_entry {
    char *name;        /* NUL-terminated; members with a NUL in their name are refused */
    int method;        /* 0 stored, 8 deflate */
    uint32_t crc;      /* CRC-32 of the uncompressed bytes */
    int64_t csize;     /* bytes stored in the archive */
    int64_t usize;     /* bytes once inflated */
    int64_t local_off; /* offset of its local header */
};

/* An open archive. Owns f, path and the entries. */
struct ab_zip {
    char *path;
    FILE *f;
    int64_t size;           /* file length in bytes */
    int64_t data_end;       /* offset of the central directory: member data ends before it */
    int64_t n;              /* number of entries */
    struct ab_zip_entry *e; /* (n) */
};

/* Opens the archive at path and reads and checks its central directory. On failure z is left
 * closed (safe to ab_zip_close). AB_E_NOFILE, AB_E_IO, AB_E_NOMEM, AB_E_DATA (not a ZIP,
 * truncated, inconsistent offsets, encrypted, multi-disk, unsupported method). */
int ab_zip_open(struct ab_zip *z, const char *path);

/* Index of the member called name, or -1. */
int64_t ab_zip_find(const struct ab_zip *z, const char *name);

/* Reads member i whole (inflating it if deflated) into *data (malloc'd, usize bytes, the
 * caller frees it; NULL when usize is 0) after checking its local header, and checks its
 * CRC-32 and length. AB_E_DATA (bad local header, corrupt deflate stream, CRC or length
 * mismatch), AB_E_TOOBIG, AB_E_NOMEM, AB_E_IO. */
int ab_zip_read(struct ab_zip *z, int64_t i, unsigned char **data, size_t *len);

/* Closes the file and frees everything; z is zeroed. Safe on a zeroed struct and twice. */
void ab_zip_close(struct ab_zip *z);

#endif
