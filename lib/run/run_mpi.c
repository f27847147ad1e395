/* run_mpi.c - the gather of an MPI run (run_mpi.h): each rank other than 0 sends one message,
 * its status and then either its error message or its units' blobs as (u64 length, bytes)
 * pairs, in pieces of at most 1 GiB; rank 0 receives from rank 1, 2, ... in turn and files
 * every blob under its unit. Blocking point-to-point calls only: the sweep is done when they
 * start. */
#include "run/run_mpi.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "run/journal.h"

enum { TAG_SIZE = 17, TAG_DATA = 18, CHUNK = 1 << 30 };

static int send_bytes(const unsigned char *p, uint64_t n)
{
    if (MPI_Send(&n, 1, MPI_UINT64_T, 0, TAG_SIZE, MPI_COMM_WORLD) != MPI_SUCCESS) return -1;
    for (uint64_t at = 0; at < n; at += CHUNK) {
        int step = (int)(n - at < CHUNK ? n - at : CHUNK);
        if (MPI_Send(p + at, step, MPI_BYTE, 0, TAG_DATA, MPI_COMM_WORLD) != MPI_SUCCESS)
            return -1;
    }
    return 0;
}

static int recv_bytes(int from, unsigned char **p, uint64_t *n)
{
    *p = NULL;
    if (MPI_Recv(n, 1, MPI_UINT64_T, from, TAG_SIZE, MPI_COMM_WORLD, MPI_STATUS_IGNORE) !=
        MPI_SUCCESS)
        return -1;
    if (!(*p = malloc(*n ? (size_t)*n : 1))) return -2;
    for (uint64_t at = 0; at < *n; at += CHUNK) {
        int step = (int)(*n - at < CHUNK ? *n - at : CHUNK);
        if (MPI_Recv(*p + at, step, MPI_BYTE, from, TAG_DATA, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return -1;
    }
    return 0;
}

int ab_run_mpi_gather(int rank, int size, int rc, int64_t n_units, const int64_t *part,
                      unsigned char **blob, size_t *blen)
{
    if (rank != 0) {
        /* status (i32), then the message or the (length, blob) pairs */
        size_t total = 4;
        const char *msg = rc ? ab_errmsg() : "";
        if (rc) total += strlen(msg) + 1;
        for (int64_t k = 0; !rc && k < n_units; k++)
            if (part[k] == rank) total += 8 + blen[k];
        unsigned char *m = malloc(total), *p = m;
        if (!m) { /* still answer rank 0, which waits for this rank */
            int32_t st = AB_E_NOMEM;
            unsigned char tiny[4];
            memcpy(tiny, &st, 4);
            send_bytes(tiny, 4);
            return ab_fail(AB_E_NOMEM, "cannot pack this rank's cells");
        }
        int32_t st = rc;
        memcpy(p, &st, 4), p += 4;
        if (rc) {
            memcpy(p, msg, strlen(msg) + 1);
        } else {
            for (int64_t k = 0; k < n_units; k++) {
                if (part[k] != rank) continue;
                uint64_t l = blen[k];
                memcpy(p, &l, 8), p += 8;
                memcpy(p, blob[k], blen[k]), p += blen[k];
            }
        }
        int sent = send_bytes(m, total);
        free(m);
        if (!rc && sent) rc = ab_fail(AB_E_IO, "cannot send this rank's cells to rank 0");
        return rc;
    }
    int first = rc; /* rank 0's own failure comes first */
    for (int r = 1; r < size; r++) {
        unsigned char *m;
        uint64_t n;
        int got = recv_bytes(r, &m, &n);
        int32_t st = 0;
        if (got || n < 4) {
            if (!first)
                first = ab_fail(got == -2 ? AB_E_NOMEM : AB_E_IO,
                                "cannot receive the cells of rank %d", r);
            free(m);
            continue;
        }
        memcpy(&st, m, 4);
        if (st) {
            if (!first) {
                char msg[512] = "";
                if (n > 4) snprintf(msg, sizeof msg, "%.*s", (int)(n - 4), (const char *)m + 4);
                first = ab_fail(st, "rank %d: %s", r, msg);
            }
            free(m);
            continue;
        }
        for (uint64_t at = 4; !first && at < n;) {
            uint64_t l;
            if (n - at < 8) break;
            memcpy(&l, m + at, 8), at += 8;
            int64_t unit = l <= n - at ? ab_unit_of(m + at, (size_t)l) : -1;
            if (unit < 0 || unit >= n_units || part[unit] != r || blob[unit]) {
                first = ab_fail(AB_E_INTERNAL, "rank %d sent a head that is not its own", r);
                break;
            }
            if (!(blob[unit] = malloc(l ? (size_t)l : 1))) {
                first = ab_fail(AB_E_NOMEM, "cannot keep the cells of rank %d", r);
                break;
            }
            memcpy(blob[unit], m + at, (size_t)l);
            blen[unit] = (size_t)l;
            at += l;
        }
        free(m);
    }
    return first;
}
