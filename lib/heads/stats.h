/* stats.h - the per-head statistics of `attnbench heads` (metrics.md, "Head and sink
 * statistics"): one struct ab_head_row per (layer, query head) of a workload, computed from
 * exact attention in two streaming passes over rows (mapstats for the column, diagonal and
 * entropy statistics; one more pass for outputs, distant mass and task hits), so no n x n
 * matrix is ever held. Also the whole-table steps: layer normalisation, the retrieval-like
 * label (DuoAttention proxy), the sink ratio, and (heads/hidden.h) the hidden-state lifetime of
 * each head's secondary sink. */
#ifndef AB_HEADS_STATS_H
#define AB_HEADS_STATS_H

#include <stdint.h>

#include "attn/attn.h"
#include "core/workload.h"
#include "eval/results.h"

struct ab_heads_opts {
    int64_t window;        /* locality(w), default 64 */
    double sink_threshold; /* a key is a sink when alpha(k) > this, default 0.1 ... */
    int64_t sink_min_rows; /* ... and at least this many query rows see it, default 16 */
    int64_t stream_sink;   /* O_stream keeps the first stream_sink keys (64) ... */
    int64_t stream_recent; /* ... and the keys within stream_recent positions (256) */
    int64_t distant_first; /* distant mass: outside the first distant_first keys (4) ... */
    int64_t distant_last;  /* ... and the last distant_last positions (64) */
    int64_t copy_min_len;  /* shortest repeated token span scored as a copy task (16) */
    /* hidden states (heads/hidden.h) */
    double massive_abs;     /* a massive activation has |x| > massive_abs (100) ... */
    double massive_ratio;   /* ... and |x| > massive_ratio x the median |x| (1000) */
    double sink_norm_ratio; /* high-norm layer: sink norm > this x median token norm (2) */
    double sink_cos;        /* a token is a sink in a layer when |cos| to the sink > this (0.9) */
    /* ab_heads_workload's progress (may be NULL, the default): called on the calling thread
     * with the heads of the workload done so far and their total */
    void (*progress)(void *user, int64_t done, int64_t total);
    void *progress_user;
};

/* A copy inside a token sequence: tokens[a + x] == tokens[b + x] for 0 <= x < len, and
 * a + len <= b (the copies do not overlap). */
struct ab_copy_span {
    int64_t a, b, len;
};

struct ab_hidden_stats; /* heads/hidden.h */

/* Fills o with the defaults above. */
void ab_heads_defaults(struct ab_heads_opts *o);

/* Finds the copy a real-text retrieval score is measured on in tokens[0..n): the copy task
 * exactly (BOS + X + X: n = 1 + 2R, tokens[1..R] == tokens[R+1..2R], R >= 2, giving a = 1,
 * b = 1 + R, len = R; or X + X without BOS, a = 0), else the longest non-overlapping repeated
 * span of at least min_len tokens (ties: the smaller distance b - a, then the earlier a;
 * O(n^2) time, O(1) memory). Returns 1 and fills *out when there is one, 0 otherwise. */
int ab_heads_copy_span(const int32_t *tokens, int64_t n, int64_t min_len, struct ab_copy_span *out);

/* Computes the statistics of one head instance h into out: every numeric field except the
 * identity (workload, layer, head, kv_head, profile: left as they are), the layer-normalised
 * forms (set equal to NaN; see ab_heads_workload), retrieval_like (0) and the lifetime fields
 * (-1; see ab_heads_workload). Sinks are keys with alpha(k) > o->sink_threshold seen by at
 * least o->sink_min_rows query rows. tasks may be NULL;
 * retrieval_score counts the retrieve (whole needle span) and multi-retrieve (the asked needle,
 * the first key) tasks: 1 per row whose top-1 key (lowest index on ties) is in the span,
 * averaged over those tasks. Without such tasks and with tokens and copy (may be NULL; real
 * text, metrics.md "token identity in a copy task"), it is the Retrieval Head score of the one
 * test the copy makes: each row t of the second copy whose next token w = tokens[t + 1] is
 * still in it (b <= t < b + len - 1, |needle| = len - 1 rows) adds 1/|needle| when its top-1
 * key j lies in the first copy [a, a + len) and tokens[j] == w. NaN otherwise. retrieval_head
 * is retrieval_score > 0.1. tokens (n_q == n_k entries, token of row
 * j, rows being sequence positions) may be NULL; with them echo and induction scores
 * (RazorAttention probe) are the mean over the query rows i that have an earlier copy
 * (j < i, tokens[j] == tokens[i]) of the mass on those copies, and on the keys j + 1 < i after
 * them (the query itself excluded); NaN without tokens or such rows. Memory O(n_k + d_v); runs
 * in the calling thread. AB_OK or AB_E_NOMEM. */
int ab_heads_stats(const struct ab_head *h, const struct ab_tasks *tasks, const int32_t *tokens,
                   const struct ab_copy_span *copy, const struct ab_heads_opts *o,
                   struct ab_head_row *out);

/* All heads of workload w: *rows (malloc'd, *n = n_layer * n_head rows in (layer, head) order,
 * strings duplicated: workload = name, profile from w->profile or "") with the layer-normalised
 * forms and the group maxima of echo and induction filled. With tokens and no tasks the copy
 * span (ab_heads_copy_span, o->copy_min_len) is found once and scored in every head. With
 * hidden states, the hidden-state statistics (heads/hidden.h, primary sink at position 0) are
 * computed and each row's sec_lifetime, sec_lifetime_pos and sec_secondary are set from the
 * strongest (largest alpha) of its stored secondary sinks; they stay -1 without hidden states.
 * hid (may be NULL) receives those statistics (zeroed without hidden states; the caller frees
 * it with ab_hidden_stats_free). OpenMP over heads. The caller frees the rows and their strings
 * (e.g. by handing them to a struct ab_results and calling ab_results_free or
 * ab_results_heads_free). AB_OK, AB_E_NOMEM or AB_E_DATA (non-finite hidden states); on failure
 * nothing is allocated. */
int ab_heads_workload(const struct ab_workload *w, const char *name, const struct ab_heads_opts *o,
                      struct ab_head_row **rows, int64_t *n, struct ab_hidden_stats *hid);

/* Sets retrieval_like = 1 on the ceil(top_fraction * n) rows with the largest out_dev (ties by
 * row order), 0 elsewhere. top_fraction in [0, 1]. */
void ab_heads_label(struct ab_head_row *rows, int64_t n, double top_fraction);

/* Percentage of rows with sink_score > epsilon (strict); NaN when n == 0. */
double ab_heads_sink_ratio(const struct ab_head_row *rows, int64_t n, double epsilon);

#endif
