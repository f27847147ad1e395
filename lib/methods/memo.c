/* memo.c - see memo.h. */
#include <string.h>

#include "methods/memo.h"

/* FNV-1a over 64-bit words of the raw float bits (two floats a word, the tail alone), in four
 * interleaved lanes folded at the end: four independent multiply chains instead of one, so the
 * hash runs at the speed memory is read rather than at one multiply's latency per word. */
static uint64_t hash_floats(uint64_t h, const float *x, int64_t n)
{
    const uint64_t prime = 0x100000001b3ULL;
    uint64_t l[4] = {h, h ^ 1, h ^ 2, h ^ 3};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w[4];
        memcpy(w, x + i, sizeof w);
        for (int t = 0; t < 4; t++) l[t] = (l[t] ^ w[t]) * prime;
    }
    for (; i + 2 <= n; i += 2) {
        uint64_t w;
        memcpy(&w, x + i, sizeof w);
        l[0] = (l[0] ^ w) * prime;
    }
    if (i < n) {
        uint32_t w;
        memcpy(&w, x + i, sizeof w);
        l[0] = (l[0] ^ w) * prime;
    }
    for (int t = 1; t < 4; t++) l[0] = (l[0] ^ l[t]) * prime;
    return l[0];
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

struct ab_memo_key ab_memo_layer_key_of(const struct ab_problem *p)
{
    const struct ab_head *L = p->layer ? p->layer : p->h;
    int64_t n_heads = p->layer ? p->n_layer_heads : 1;
    struct ab_memo_key key = {.q = L->q,
                              .k = L->k,
                              .n_q = L->n_q,
                              .n_k = L->n_k,
                              .d = L->d,
                              .q0 = p->q0,
                              .self = -n_heads, /* never equal to a head key's self */
                              .seed = p->seed,
                              .scale = L->scale};
    uint64_t x = 0xcbf29ce484222325ULL;
    for (int64_t e = 0; e < n_heads; e++) {
        x = hash_floats(x, L[e].q, L[e].n_q * L[e].d);
        x = hash_floats(x, L[e].k, L[e].n_k * L[e].d);
    }
    key.hash = x;
    return key;
}

static int memo_off;

void ab_memo_bypass(int on) { memo_off = on != 0; }

int ab_memo_key_eq(const struct ab_memo_key *a, const struct ab_memo_key *b)
{
    return !memo_off && ab_memo_key_eq_free(a, b);
}

int ab_memo_key_eq_free(const struct ab_memo_key *a, const struct ab_memo_key *b)
{
    return a->q == b->q && a->k == b->k && a->n_q == b->n_q && a->n_k == b->n_k && a->d == b->d &&
           a->q0 == b->q0 && a->self == b->self && a->seed == b->seed && a->hash == b->hash &&
           a->scale == b->scale;
}
