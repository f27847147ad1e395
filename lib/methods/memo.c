/* memo.c - see memo.h. */
#include <string.h>

#include "methods/memo.h"

/* FNV-1a over 64-bit words of the raw float bits (two floats a word, the tail alone). */
static uint64_t hash_floats(uint64_t h, const float *x, int64_t n)
{
    const uint64_t prime = 0x100000001b3ULL;
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
        uint64_t w;
        memcpy(&w, x + i, sizeof w);
        h = (h ^ w) * prime;
    }
    if (i < n) {
        uint32_t w;
        memcpy(&w, x + i, sizeof w);
        h = (h ^ w) * prime;
    }
    return h;
}

struct ab_memo_key ab_memo_key_of(const struct ab_problem *p)
{
    const struct ab_head *h = p->h;
    struct ab_memo_key key = {.q = h->q,
                              .k = h->k,
                              .n_q = h->n_q,
                              .n_k = h->n_k,
                              .d = h->d,
                              .q0 = p->q0,
                              .self = p->self,
                              .seed = p->seed,
                              .scale = h->scale};
    uint64_t x = hash_floats(0xcbf29ce484222325ULL, h->q, h->n_q * h->d);
    key.hash = hash_floats(x, h->k, h->n_k * h->d);
    return key;
}

int ab_memo_key_eq(const struct ab_memo_key *a, const struct ab_memo_key *b)
{
    return a->q == b->q && a->k == b->k && a->n_q == b->n_q && a->n_k == b->n_k && a->d == b->d &&
           a->q0 == b->q0 && a->self == b->self && a->seed == b->seed && a->hash == b->hash &&
           a->scale == b->scale;
}
