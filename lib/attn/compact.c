/* compact.c - cache-compressed decode (issue 14): the keys a KV-cache method keeps are gathered
 * once into contiguous K, V and positions, and decode then reads only them, through the same
 * blocked kernel as dense (fast.c). The output equals the accuracy path's (ab_attend_kept over
 * the same kept set) within float rounding: the same keys, the same softmax. */
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"

int ab_attn_compact(const struct ab_head *h, const int64_t *keep, int64_t n_keep,
                    struct ab_compact *c)
{
    memset(c, 0, sizeof *c);
    if (n_keep < 1 || n_keep > h->n_k)
        return ab_fail(AB_E_USAGE, "compact: %lld kept keys of %lld", (long long)n_keep,
                       (long long)h->n_k);
    for (int64_t j = 0; j < n_keep; j++)
        if (keep[j] < 0 || keep[j] >= h->n_k || (j && keep[j] <= keep[j - 1]))
            return ab_fail(AB_E_USAGE, "compact: kept key %lld is not an increasing index below "
                           "%lld", (long long)keep[j], (long long)h->n_k);
    c->k = ab_alloc(ab_size_mul((size_t)(n_keep * h->d), sizeof(float)));
    c->v = ab_alloc(ab_size_mul((size_t)(n_keep * h->d_v), sizeof(float)));
    c->pos = ab_alloc((size_t)n_keep * sizeof(int32_t));
    if (!c->k || !c->v || !c->pos) {
        ab_attn_compact_free(c);
        return ab_fail(AB_E_NOMEM, "compact: out of memory for %lld keys", (long long)n_keep);
    }
    for (int64_t j = 0; j < n_keep; j++) { /* (n_keep, d), (n_keep, d_v): rows in key order */
        memcpy(c->k + j * h->d, h->k + keep[j] * h->d, sizeof(float) * (size_t)h->d);
        memcpy(c->v + j * h->d_v, h->v + keep[j] * h->d_v, sizeof(float) * (size_t)h->d_v);
        c->pos[j] = h->k_pos[keep[j]];
    }
    c->h = *h;
    c->h.n_k = n_keep, c->h.k = c->k, c->h.v = c->v, c->h.k_pos = c->pos;
    return AB_OK;
}

void ab_attn_compact_free(struct ab_compact *c)
{
    ab_free(c->k), ab_free(c->v), ab_free(c->pos);
    memset(c, 0, sizeof *c);
}
