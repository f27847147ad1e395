/* stats.h - the per-head statistics of `attnbench heads` (metrics.md, "Head and sink
 * statistics"): one struct ab_head_row per (layer, query head) of a workload, computed from
 * exact attention in two streaming passes over rows (mapstats for the column, diagonal and
 * entropy statistics; one more pass for outputs, distant mass and task hits), so no n x n
 * matrix is ever held. Also the whole-table steps: layer normalisation, the retrieval-like
 * label (DuoAttention proxy) and the sink ratio. */
#ifndef AB_HEADS_STATS_H
#define AB_HEADS_STATS_H

#include <stdint.h>

#include "attn/attn.h"
#include "core/workload.h"
#include "eval/results.h"

struct ab_heads_opts {
    int64_t window;        /* locality(w), default 64 */
    double sink_threshold; /* a key is a sink when alpha(k) > this, default 0.1 */
    int64_t stream_sink;   /* O_stream keeps the first stream_sink keys (64) ... */
    int64_t stream_recent; /* ... and the keys within stream_recent positions (256) */
    int64_t distant_first; /* distant mass: outside the first distant_first keys (4) ... */
    int64_t distant_last;  /* ... and the last distant_last positions (64) */
};

/* Fills o with the defaults above. */
void ab_heads_defaults(struct ab_heads_opts *o);

/* Computes the statistics of one head instance h into out: every numeric field except the
 * identity (workload, layer, head, kv_head, profile: left as they are), the layer-normalised
 * forms (set equal to NaN; see ab_heads_workload) and retrieval_like (0). tasks may be NULL;
 * retrieval_score counts the retrieve (whole needle span) and multi-retrieve (the asked needle,
 * the first key) tasks: 1 per row whose top-1 key (lowest index on ties) is in the span,
 * averaged over those tasks; NaN without such tasks. tokens (n_q == n_k entries, token of row
 * j, rows being sequence positions) may be NULL; with them echo and induction scores
 * (RazorAttention probe) are the mean over the query rows i that have an earlier copy
 * (j < i, tokens[j] == tokens[i]) of the mass on those copies, and on the keys j + 1 < i after
 * them (the query itself excluded); NaN without tokens or such rows. Memory O(n_k + d_v); runs
 * in the calling thread. AB_OK or AB_E_NOMEM. */
int ab_heads_stats(const struct ab_head *h, const struct ab_tasks *tasks, const int32_t *tokens,
                   const struct ab_heads_opts *o, struct ab_head_row *out);

/* All heads of workload w: *rows (malloc'd, *n = n_layer * n_head rows in (layer, head) order,
 * strings duplicated: workload = name, profile from w->profile or "") with the layer-normalised
 * forms and the group maxima of echo and induction filled. OpenMP over heads. The caller frees the
 * rows and their strings (e.g. by handing them to a struct ab_results and calling
 * ab_results_free or ab_results_heads_free). AB_OK or AB_E_NOMEM (nothing allocated). */
int ab_heads_workload(const struct ab_workload *w, const char *name, const struct ab_heads_opts *o,
                      struct ab_head_row **rows, int64_t *n);

/* Sets retrieval_like = 1 on the ceil(top_fraction * n) rows with the largest out_dev (ties by
 * row order), 0 elsewhere. top_fraction in [0, 1]. */
void ab_heads_label(struct ab_head_row *rows, int64_t n, double top_fraction);

/* Percentage of rows with sink_score > epsilon (strict); NaN when n == 0. */
double ab_heads_sink_ratio(const struct ab_head_row *rows, int64_t n, double epsilon);

#endif
