/* head.h - a head instance (architecture.md): the unit every attention path, method and
 * statistic works on, and the facts of its mask.
 *
 * A head instance is Q (n_q x d), K (n_k x d), V (n_k x d_v) with the absolute position of
 * every query and key row and a mask kind. Under the causal mask query i sees key j iff
 * k_pos[j] <= q_pos[i]; under the full mask it sees every key. Positions make decode rows (the
 * last m queries of a sequence against its whole cache) the same call as prefill. Positions
 * must be non-decreasing (the attention paths rely on it to skip masked blocks). It lives in
 * core because the workload (core/workload.h) hands out heads; lib/attn computes on them. */
#ifndef AB_CORE_HEAD_H
#define AB_CORE_HEAD_H

#include <stdint.h>

#include "attnbench/method.h" /* enum ab_mask, struct ab_head, ab_head_visible */

/* Number of (query, key) cells the mask allows, summed over all query rows. */
int64_t ab_head_allowed_cells(const struct ab_head *h);

/* Checks shapes, positions (sorted), scale and that inputs are finite. AB_E_DATA with a
 * message naming the problem. O(n d). */
int ab_head_validate(const struct ab_head *h);

#endif
