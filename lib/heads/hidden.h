/* hidden.h - statistics of a workload's hidden states for `attnbench heads` (metrics.md,
 * "massive activations" and "secondary-sink lifetime"): per hidden state, the largest
 * activations, the median |activation|, the massive ones, and the primary sink's norm; per
 * token, how many high-norm layers its hidden state spends parallel to the primary sink's.
 *
 * Definitions (the hidden state H_l, l = 0..n_layer, is the residual stream entering layer l;
 * H_{n_layer} is the output of the last layer; all n_layer + 1 of them are analysed):
 * - massive activation: an entry H_l[t, c] with |x| > massive_abs (100) and |x| > massive_ratio
 *   (1000) x the median of |H_l| over every (t, c) of that hidden state (Sun et al., "Massive
 *   Activations in Large Language Models", arXiv:2402.17762, section 2). The median of an even
 *   count is the mean of the two middle values (numpy's).
 * - primary sink s: the first token, position 0 (metrics.md's sink0, the key of the sink score
 *   alpha(0)). Not the most common per-head sink_pos: on real text local heads make late keys
 *   (seen by a few dozen rows) their first alpha > 0.1 key, and on stories260K that mode is a
 *   key near the end of the sequence, not a sink of the model.
 * - high-norm layer: ||H_l[s]|| > sink_norm_ratio (2) x the median over t of ||H_l[t]||. This is
 *   our reading of "the layers where the primary sink's hidden-state norm is high": the sink's
 *   state has to stand out from the typical token's, by a factor fixed in the options.
 * - token t is a sink in layer l when l is high-norm and |cos(H_l[t], H_l[s])| > sink_cos (0.9)
 *   (a zero vector is never parallel); lifetime(t) = the number of such layers. The primary
 *   sink itself gets n_high.
 * - secondary: life_lo < lifetime < life_hi, with the bounds of ab_hidden_secondary_bounds. */
#ifndef AB_HEADS_HIDDEN_H
#define AB_HEADS_HIDDEN_H

#include <stdint.h>

#include "core/workload.h"
#include "eval/results.h"
#include "heads/stats.h"

struct ab_hidden_stats {
    int64_t sink_pos;         /* the primary sink s used */
    int64_t n_states;         /* hidden states analysed: n_layer + 1 */
    int64_t n_high;           /* of them, high-norm layers */
    int64_t life_lo, life_hi; /* secondary when life_lo < lifetime < life_hi */
    int64_t n_seq;
    int64_t *lifetime;           /* (n_seq) malloc'd */
    struct ab_layer_row *layers; /* (n_states) malloc'd, strings malloc'd */
};

/* The secondary-sink bounds for a model of n_layer layers: lifetime L is secondary when
 * *lo < L < *hi. metrics.md states 4 < L < n_layer - 15 for large (32-layer) models; we scale
 * both with depth so that 32 layers give exactly those numbers: *lo = max(1, n_layer / 8) and
 * *hi = n_layer - max(1, 15 n_layer / 32) (integer division). A short-lived parallel token (L
 * at or below a eighth of the depth) is a coincidence of a few layers, and one that stays
 * parallel through most of the depth (the last 15/32 of it) behaves like a second primary sink,
 * as in the large models; max(1, .) keeps one layer of margin on each side. stories260K
 * (5 layers): 1 < L < 3, only L = 2 is secondary. Below 5 layers the range is empty. */
void ab_hidden_secondary_bounds(int64_t n_layer, int64_t *lo, int64_t *hi);

/* Computes the statistics above for workload w (w->hidden must not be NULL) with primary sink
 * sink_pos (0 <= sink_pos < n_seq) and the thresholds of o (massive_abs, massive_ratio,
 * sink_norm_ratio, sink_cos). out->layers[l].workload is a copy of name. Memory: one copy of a
 * hidden state as float and O(n_seq) doubles. AB_OK; AB_E_DATA (a non-finite hidden state,
 * naming name); AB_E_NOMEM. On failure nothing stays allocated. Free with
 * ab_hidden_stats_free. */
int ab_hidden_stats_compute(const struct ab_workload *w, const char *name, int64_t sink_pos,
                            const struct ab_heads_opts *o, struct ab_hidden_stats *out);

/* Frees what out owns (layers may have been taken: set it NULL first) and zeroes it. */
void ab_hidden_stats_free(struct ab_hidden_stats *s);

#endif
