/* run_mpi.h - `mpirun -np K attnbench run ...` (issue 17 item 3), compiled only in a build
 * with MPI (meson defines AB_HAVE_MPI when it finds Open MPI). The heads are split between
 * ranks by the same cost-balanced rule as --shard (shard.h, ab_units_assign with K parts); each
 * rank sweeps its part and rank 0 gathers the cells and writes the one results file. */
#ifndef AB_RUN_RUN_MPI_H
#define AB_RUN_RUN_MPI_H

#include <stddef.h>
#include <stdint.h>

/* Ranks other than 0 send rank 0 their status rc and, when it is AB_OK, the blobs (journal.h)
 * of their units (part[u] == rank); rank 0 receives them into blob[] / blen[] (indexed by
 * unit). Every rank must call it once, whatever its rc. Returns, on rank 0, rc or the first
 * failure of another rank (its message, prefixed "rank K: "); on other ranks, rc or the
 * failure of sending. */
int ab_run_mpi_gather(int rank, int size, int rc, int64_t n_units, const int64_t *part,
                      unsigned char **blob, size_t *blen);

#endif
