/* shard.c - the units of a long run (shard.h): their list and estimated costs, the
 * cost-balanced split into parts (--shard I/N, MPI ranks), --shard's parsing, and the run
 * digest that pieces and journals carry. */
#include "run/shard.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/sha256.h"

uint64_t ab_unit_cost(const struct ab_workload *w, const struct ab_sweep_opts *so)
{
    uint64_t n = (uint64_t)w->n_seq, dd = (uint64_t)(w->d + w->d_v), cost = 0;
    for (unsigned phase = AB_PHASE_PREFILL; phase <= AB_PHASE_DECODE; phase <<= 1) {
        if (!(so->phases & phase)) continue;
        struct ab_sweep_opts one = *so;
        one.phases = phase;
        uint64_t cells = (uint64_t)ab_sweep_count_head(w, &one), rows, keys;
        if (phase == AB_PHASE_DECODE) {
            rows = (uint64_t)so->decode_m, keys = n;
        } else if (w->n_seq <= so->max_rows) {
            rows = n, keys = w->causal ? (n + 1) / 2 : n;
        } else {
            rows = (uint64_t)(so->max_rows + w->tasks.n), keys = w->causal ? n / 2 : n;
        }
        cost += (1 + cells) * rows * keys * dd;
    }
    return cost;
}

void ab_units_free(struct ab_units *u)
{
    free(u->wi), free(u->j), free(u->first), free(u->cost), free(u->cells);
    memset(u, 0, sizeof *u);
}

int ab_units_init(struct ab_units *u, const struct ab_workload *w, int n_w,
                  const struct ab_sweep_opts *so)
{
    memset(u, 0, sizeof *u);
    int64_t n = 0;
    for (int i = 0; i < n_w; i++) n += w[i].n_layer * w[i].n_head;
    u->n = n;
    u->wi = malloc(sizeof *u->wi * (size_t)(n + 1));
    u->j = malloc(sizeof *u->j * (size_t)(n + 1));
    u->first = malloc(sizeof *u->first * (size_t)(n_w + 1));
    u->cost = malloc(sizeof *u->cost * (size_t)(n + 1));
    u->cells = malloc(sizeof *u->cells * (size_t)(n + 1));
    if (!u->wi || !u->j || !u->first || !u->cost || !u->cells) {
        ab_units_free(u);
        return ab_fail(AB_E_NOMEM, "cannot allocate the run's units");
    }
    int64_t k = 0;
    for (int i = 0; i < n_w; i++) {
        uint64_t c = ab_unit_cost(&w[i], so);
        int64_t cells = ab_sweep_count_head(&w[i], so);
        u->first[i] = k;
        for (int64_t j = 0; j < w[i].n_layer * w[i].n_head; j++, k++)
            u->wi[k] = i, u->j[k] = j, u->cost[k] = c, u->cells[k] = cells;
    }
    u->first[n_w] = k;
    return AB_OK;
}

/* Units by cost, largest first, ties by index. */
static const uint64_t *sort_cost;
static int by_cost(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (sort_cost[x] != sort_cost[y]) return sort_cost[x] > sort_cost[y] ? -1 : 1;
    return (x > y) - (x < y);
}

int ab_units_assign(const struct ab_units *u, int64_t n_parts, int64_t *part)
{
    int64_t *order = malloc(sizeof *order * (size_t)(u->n + 1));
    uint64_t *load = calloc((size_t)n_parts, sizeof *load);
    if (!order || !load) {
        free(order), free(load);
        return ab_fail(AB_E_NOMEM, "cannot allocate the shard assignment");
    }
    for (int64_t k = 0; k < u->n; k++) order[k] = k;
    /* qsort is not stable, but the comparison is a total order (ties by index): one result.
     * Called from the main thread only (the static holds the costs for the comparison). */
    sort_cost = u->cost;
    qsort(order, (size_t)u->n, sizeof *order, by_cost);
    sort_cost = NULL;
    for (int64_t k = 0; k < u->n; k++) {
        int64_t best = 0;
        for (int64_t p = 1; p < n_parts; p++)
            if (load[p] < load[best]) best = p;
        part[order[k]] = best;
        load[best] += u->cost[order[k]];
    }
    free(order), free(load);
    return AB_OK;
}

int ab_shard_parse(const char *text, int64_t *index, int64_t *count)
{
    const char *slash = text ? strchr(text, '/') : NULL;
    char *end;
    if (!slash)
        return ab_fail(AB_E_USAGE, "--shard '%s': wants I/N (this process computes part I of N, "
                       "1 <= I <= N)", text ? text : "");
    errno = 0;
    long long i = strtoll(text, &end, 10);
    int bad = end != slash || end == text || errno;
    long long n = bad ? 0 : strtoll(slash + 1, &end, 10);
    bad = bad || *end || end == slash + 1 || errno || text[0] == '+' || text[0] == '-' ||
          slash[1] == '+' || slash[1] == '-';
    if (bad)
        return ab_fail(AB_E_USAGE, "--shard '%s': wants I/N with whole numbers (this process "
                       "computes part I of N, 1 <= I <= N)", text);
    if (n < 1 || n > 65536)
        return ab_fail(AB_E_USAGE, "--shard %s: N must be in 1..65536", text);
    if (i < 1 || i > n)
        return ab_fail(AB_E_USAGE, "--shard %s: shard %lld of %lld does not exist (I must be in "
                       "1..N)", text, i, n);
    *index = i, *count = n;
    return AB_OK;
}

void ab_run_digest(const char *version, const char *options_json, uint64_t seed,
                   char *const *workloads, char *const *sha256, int64_t n_w, char hex[65])
{
    struct ab_sha256 s;
    ab_sha256_init(&s);
    char num[64];
    /* each field NUL-terminated, so no two different runs hash the same bytes */
    ab_sha256_update(&s, "attnbench-run-digest-1", 23);
    ab_sha256_update(&s, version, strlen(version) + 1);
    ab_sha256_update(&s, options_json ? options_json : "", strlen(options_json ? options_json : "") + 1);
    snprintf(num, sizeof num, "%" PRIu64, seed);
    ab_sha256_update(&s, num, strlen(num) + 1);
    for (int64_t i = 0; i < n_w; i++) {
        ab_sha256_update(&s, workloads[i], strlen(workloads[i]) + 1);
        ab_sha256_update(&s, sha256[i], strlen(sha256[i]) + 1);
    }
    unsigned char d[32];
    ab_sha256_final(&s, d);
    ab_sha256_to_hex(d, hex);
}
