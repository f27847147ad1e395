/* head.c - which keys each query row sees, the cell count the mask allows, and validation of a
 * head instance (see head.h). */
#include <math.h>

#include "core/ab.h"
#include "core/head.h"

/* Keys are sorted by position, so the visible keys of row i are a prefix: binary search for the
 * first key whose position exceeds q_pos[i]. O(log n_k). */
int64_t ab_head_visible(const struct ab_head *h, int64_t i)
{
    if (h->mask == AB_MASK_FULL) return h->n_k;
    int32_t p = h->q_pos[i];
    /* the common case, positions 0 .. n_k - 1: key p is the last one row i sees (keys sorted) */
    if (p >= 0 && p < h->n_k && h->k_pos[p] == p && (p + 1 == h->n_k || h->k_pos[p + 1] > p))
        return (int64_t)p + 1;
    int64_t lo = 0, hi = h->n_k;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (h->k_pos[mid] <= p) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int64_t ab_head_allowed_cells(const struct ab_head *h)
{
    int64_t cells = 0;
    for (int64_t i = 0; i < h->n_q; i++) cells += ab_head_visible(h, i);
    return cells;
}

int ab_head_validate(const struct ab_head *h)
{
    if (h->n_q <= 0 || h->n_k <= 0 || h->d <= 0 || h->d_v <= 0)
        return ab_fail(AB_E_DATA, "head shapes must be positive (n_q %lld, n_k %lld, d %lld)",
                       (long long)h->n_q, (long long)h->n_k, (long long)h->d);
    if (h->mask != AB_MASK_CAUSAL && h->mask != AB_MASK_FULL)
        return ab_fail(AB_E_DATA, "unknown mask kind %d", h->mask);
    if (!(h->scale > 0) || !(h->scale <= 1e30))
        return ab_fail(AB_E_DATA, "scale must be positive and at most 1e30 (got %g)", h->scale);
    if (h->rope_theta < 0 || (h->rope_theta > 0 && h->d % 2))
        return ab_fail(AB_E_DATA, "RoPE needs an even head dimension (d = %lld)", (long long)h->d);
    for (int64_t i = 1; i < h->n_q; i++)
        if (h->q_pos[i] < h->q_pos[i - 1])
            return ab_fail(AB_E_DATA, "query positions must be non-decreasing (row %lld)",
                           (long long)i);
    for (int64_t j = 1; j < h->n_k; j++)
        if (h->k_pos[j] < h->k_pos[j - 1])
            return ab_fail(AB_E_DATA, "key positions must be non-decreasing (row %lld)",
                           (long long)j);
    const struct { const char *name; const float *x; int64_t n; } arr[] = {
        {"q", h->q, h->n_q * h->d}, {"k", h->k, h->n_k * h->d}, {"v", h->v, h->n_k * h->d_v}};
    for (int a = 0; a < 3; a++)
        for (int64_t i = 0; i < arr[a].n; i++)
            if (!isfinite(arr[a].x[i]))
                return ab_fail(AB_E_DATA, "%s holds a non-finite value (row %lld)", arr[a].name,
                               (long long)(i / (a == 2 ? h->d_v : h->d)));
    return AB_OK;
}
