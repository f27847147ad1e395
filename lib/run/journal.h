/* journal.h - the journal of a long `run` (issue 17) and the encoding of one unit's cells that
 * it shares with the MPI gather.
 *
 * A unit (shard.h: one workload, layer, head) travels as a blob: u64 unit index, u64 cell
 * count, then each cell column by column in the order of ab_results_cell_columns (strings as
 * u32 length + bytes, numbers as their 8 bytes), host byte order (a journal stays on its
 * machine; MPI ranks share one architecture). Numbers keep every bit, so cells decoded from a
 * blob equal the cells computed.
 *
 * The journal, RESULTS.h5.journal beside the output, is append-only: records
 *     "ABJ1" | u32 kind | u64 length | payload | u32 CRC-32 (zlib) of kind, length and payload
 * The first (kind 1) is the header: lines "key<TAB>value" naming the run (the tool version,
 * the recorded options as JSON, the seed, each workload with its SHA-256, the shard); every
 * other (kind 2) is one finished unit's blob, written and flushed to the disk (fdatasync) as
 * the unit finishes. On reading, a record cut short or failing its CRC (a write torn by power
 * loss) ends the journal: it and anything after it are dropped and the file is cut back to the
 * last good record. */
#ifndef AB_RUN_JOURNAL_H
#define AB_RUN_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eval/results.h"

/* A unit's cells cells[0..n) as a malloc'd blob (*data, *len). AB_OK or AB_E_NOMEM. */
int ab_unit_encode(int64_t unit, const struct ab_cell *cells, int64_t n, unsigned char **data,
                   size_t *len);

/* The unit index of a blob (checked by ab_unit_decode; -1 when the blob is too short). */
int64_t ab_unit_of(const unsigned char *data, size_t len);

/* Appends the cells of a blob to res (strings copied). AB_OK; AB_E_DATA "'where': damaged
 * unit record" when the blob does not hold what it says; AB_E_NOMEM. */
int ab_unit_decode(const unsigned char *data, size_t len, const char *where,
                   struct ab_results *res);

struct ab_journal {
    FILE *f;
    char *path;
    int64_t records; /* unit records in the file */
};

/* Called by ab_journal_open for each unit record found on --resume, in file order; a non-zero
 * return (an AB_E_* code with its message) stops the opening with that status. */
typedef int (*ab_journal_found_fn)(void *user, const unsigned char *blob, size_t len);

/* Opens the journal of a run at path with header text `header`. When path does not exist: a
 * new journal holding the header. When it exists: without resume (0), AB_E_USAGE saying to add
 * --resume or delete it; with resume 1, its header must equal `header` (AB_E_USAGE naming the
 * first field that differs: options, workloads, seed, version or shard); with resume 2, a
 * journal of another header is replaced by a new one. Then each unit
 * record is passed to found, a torn tail is cut off, and the journal is reopened for
 * appending. Refusals change nothing on disk. The file is locked (flock) while open: another
 * run on the same output is refused (AB_E_CREATE). AB_E_CREATE / AB_E_IO for the system's
 * failures. *j is usable with ab_journal_close in every case. */
int ab_journal_open(struct ab_journal *j, const char *path, const char *header, int resume,
                    ab_journal_found_fn found, void *user);

/* Appends one unit record and flushes it to the disk. AB_OK or AB_E_IO naming the file. */
int ab_journal_append(struct ab_journal *j, const unsigned char *blob, size_t len);

/* Closes the journal; remove = 1 also deletes the file (after the results are in place). */
void ab_journal_close(struct ab_journal *j, int remove);

#endif
