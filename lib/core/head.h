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

enum ab_mask { AB_MASK_CAUSAL = 0, AB_MASK_FULL = 1 };

struct ab_head {
    int64_t n_q, n_k, d, d_v;
    const float *q;       /* (n_q, d) row-major, row stride d */
    const float *k;       /* (n_k, d) */
    const float *v;       /* (n_k, d_v) */
    const int32_t *q_pos; /* (n_q) absolute position of each query row */
    const int32_t *k_pos; /* (n_k) absolute position of each key row */
    int mask;             /* enum ab_mask */
    double scale;         /* logit scale, usually 1/sqrt(d) */
    double rope_theta;    /* > 0: apply RoPE to q and k at their positions first; 0: inputs are
                             already rotated (workload files store post-RoPE Q and K) */
};

/* Number of keys query row i can see (the keys are 0 .. count-1, positions being sorted). */
int64_t ab_head_visible(const struct ab_head *h, int64_t i);

/* Number of (query, key) cells the mask allows, summed over all query rows. */
int64_t ab_head_allowed_cells(const struct ab_head *h);

/* Checks shapes, positions (sorted), scale and that inputs are finite. AB_E_DATA with a
 * message naming the problem. O(n d). */
int ab_head_validate(const struct ab_head *h);

#endif
