/* mapstats.h - statistics of one head's exact attention map (metrics.md, "Head and sink
 * statistics"), computed in one streaming pass over rows with ab_attn_ref_visit: memory O(n),
 * never an n x n matrix. The `heads` command and the generator's tests both read these.
 *
 * Conventions: A[i,j] is exact causal attention; rows are all query rows of the head; n = n_k. */
#ifndef AB_HEADS_MAPSTATS_H
#define AB_HEADS_MAPSTATS_H

#include <stdint.h>

#include "attn/attn.h"

struct ab_map_stats {
    int64_t n;           /* keys (length of the vectors below) */
    double *alpha;       /* (n) column mean alpha(k) = sum_{i sees k} A[i,k] / #{i sees k} */
    double *col_mass;    /* (n) sum_i A[i,k] */
    int64_t *seen;       /* (n) number of rows that see key k */
    double *diag_mass;   /* (n) sum_i A[i, i-off] by offset off = q_pos - k_pos (causal) */
    double first_weight; /* mean_i A[i,0] */
    double entropy;      /* mean_i of -sum_j A ln A */
    double entropy_norm; /* mean over rows with >1 visible key of entropy / ln(n_vis) */
    double locality;     /* mean_i sum_{q_pos-w < k_pos <= q_pos} A[i,j] */
    int64_t locality_w;  /* w used (64 by default) */
    double rows;         /* number of rows visited */
};

/* Computes the statistics of head h over all its rows, locality with window w. Allocates the
 * vectors (free with ab_map_stats_free). AB_OK or AB_E_NOMEM. */
int ab_map_stats_compute(const struct ab_head *h, int64_t w, struct ab_map_stats *out);
void ab_map_stats_free(struct ab_map_stats *s);

/* Share of the total mass carried by the k largest columns / diagonals (vertical and slash
 * mass, metrics.md). */
double ab_map_stats_vertical_mass(const struct ab_map_stats *s, int64_t k);
double ab_map_stats_slash_mass(const struct ab_map_stats *s, int64_t k);

#endif
