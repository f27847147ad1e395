/* shard.h - the units of a long `run` (issue 17): one unit is one (workload, layer, head), the
 * sweep's natural grain. Units are numbered in the run's order (workload, then layer, then
 * head), which is the order of the results table, so a results file assembled from units
 * computed anywhere (a journal, shard pieces, MPI ranks) has the single-process row order.
 *
 * Shards split the units by estimated cost, not by count (ab_units_assign); the run digest
 * (ab_run_digest) names what a run computes, so pieces and journals of another run are
 * refused. */
#ifndef AB_RUN_SHARD_H
#define AB_RUN_SHARD_H

#include <stdint.h>

#include "core/workload.h"
#include "eval/eval.h"

/* The units of a run over workloads w[0..n_w): unit u is (workload wi[u], local index
 * j[u] = layer * n_head + head of that workload). */
struct ab_units {
    int64_t n;          /* units in all */
    int *wi;            /* (n) workload index */
    int64_t *j;         /* (n) layer * n_head + head */
    int64_t *first;     /* (n_w + 1) the first unit of each workload; first[n_w] = n */
    uint64_t *cost;     /* (n) estimated cost (ab_unit_cost) */
    int64_t *cells;     /* (n) cells of the unit (ab_sweep_count_head) */
};

/* Fills u for the workloads under sweep options so. AB_OK or AB_E_NOMEM (free u either way). */
int ab_units_init(struct ab_units *u, const struct ab_workload *w, int n_w,
                  const struct ab_sweep_opts *so);
void ab_units_free(struct ab_units *u);

/* The estimated cost of one head of w under so, in multiply-adds: for each phase run, the
 * dense attention of the evaluated rows against their visible keys, (n_rows x mean visible
 * keys x (d + d_v)), times (1 + the head's cells of that phase): the exact side plus one
 * method run per cell. Prefill with more rows than --rows evaluates a sample (plus task rows)
 * seeing n / 2 keys on average; decode rows see n keys. All heads of one workload cost the
 * same; what differs is the workloads' lengths (a head at n = 131072 costs 4096 times one at
 * n = 2048 when every row is evaluated, 64 times with the default row sample). */
uint64_t ab_unit_cost(const struct ab_workload *w, const struct ab_sweep_opts *so);

/* Which of n_parts parts each unit goes to: part[u] in [0, n_parts), a pure function of the
 * units' costs and n_parts. The rule, greedy longest-processing-time: units sorted by cost,
 * largest first, ties by unit index (smallest first); each in turn goes to the part with the
 * smallest load so far (the sum of its units' costs), ties to the smallest part index. */
int ab_units_assign(const struct ab_units *u, int64_t n_parts, int64_t *part);

/* "I/N" of --shard into *index (1-based, 1 <= I <= N) and *count (1 <= N <= 65536). AB_OK or
 * AB_E_USAGE with a message saying what is wrong ("--shard 3/2: shard 3 of 2 does not
 * exist (I must be in 1..N)"). */
int ab_shard_parse(const char *text, int64_t *index, int64_t *count);

/* The run digest: SHA-256, as 64 hex digits, of what the run computes: the tool version, the
 * options as recorded (options_json, without --shard and --resume, which only say how it is
 * carried out), the seed, and each workload's path and SHA-256. The thread count is not in it
 * (results do not depend on it). */
void ab_run_digest(const char *version, const char *options_json, uint64_t seed,
                   char *const *workloads, char *const *sha256, int64_t n_w, char hex[65]);

#endif
