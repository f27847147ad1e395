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

/* The key of heads h[0 .. n_heads) of problem p, self being the key's place: the first head's
 * arrays and shapes and a hash over every head's Q and K. */
static struct ab_memo_key key_of_heads(const struct ab_problem *p, const struct ab_head *h,
                                       int64_t n_heads, int64_t self)
{
    struct ab_memo_key key = {.q = h->q,
                              .k = h->k,
                              .n_q = h->n_q,
                              .n_k = h->n_k,
                              .d = h->d,
                              .q0 = p->q0,
                              .self = self,
                              .seed = p->seed,
                              .scale = h->scale};
    uint64_t x = 0xcbf29ce484222325ULL;
    for (int64_t e = 0; e < n_heads; e++) {
        x = hash_floats(x, h[e].q, h[e].n_q * h[e].d);
        x = hash_floats(x, h[e].k, h[e].n_k * h[e].d);
    }
    key.hash = x;
    return key;
}

struct ab_memo_key ab_memo_layer_key_of(const struct ab_problem *p)
{
    int64_t n_heads = p->layer ? p->n_layer_heads : 1;
    /* self = -n_heads: never equal to a head key's self */
    return key_of_heads(p, p->layer ? p->layer : p->h, n_heads, -n_heads);
}

static int memo_off;

void ab_memo_bypass(int on) { memo_off = on != 0; }

int ab_memo_key_eq(const struct ab_memo_key *a, const struct ab_memo_key *b)
{
    return !memo_off && a->q == b->q && a->k == b->k && a->n_q == b->n_q && a->n_k == b->n_k &&
           a->d == b->d && a->q0 == b->q0 && a->self == b->self && a->seed == b->seed &&
           a->hash == b->hash && a->scale == b->scale;
}
