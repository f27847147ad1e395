/* rng.h - a seeded counter-based random number generator (Philox4x32-10, Salmon et al. 2011).
 *
 * A value is a pure function of (seed, stream, index): any draw of any stream can be replayed
 * without generating the ones before it, and parallel loops draw without sharing state. Streams
 * name independent uses (one per component and head, say); index counts draws within a stream.
 * struct ab_rng is a cursor over one stream for sequential draws. */
#ifndef AB_CORE_RNG_H
#define AB_CORE_RNG_H

#include <stdint.h>

/* The 128 random bits for (seed, stream, counter), as four 32-bit words. */
void ab_philox(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4]);

/* Derives a stream id from a parent stream and up to three small integers (layer, head, part):
 * a hash, so distinct arguments give independent streams. */
uint64_t ab_stream(uint64_t parent, uint64_t a, uint64_t b, uint64_t c);

struct ab_rng {
    uint64_t seed, stream;
    uint64_t counter; /* next block of 128 bits */
    uint32_t buf[4];
    int used;         /* words of buf already returned (4 = empty) */
    int has_spare;    /* Box-Muller spare */
    double spare;
};

void ab_rng_init(struct ab_rng *r, uint64_t seed, uint64_t stream);
uint32_t ab_rng_u32(struct ab_rng *r);
uint64_t ab_rng_u64(struct ab_rng *r);
double ab_rng_uniform(struct ab_rng *r);         /* in [0, 1), 53 random bits */
double ab_rng_normal(struct ab_rng *r);          /* standard normal */
int64_t ab_rng_below(struct ab_rng *r, int64_t n); /* uniform in [0, n), n > 0, unbiased */

/* Random-access draws: the index-th value of stream (seed, stream). */
double ab_rng_uniform_at(uint64_t seed, uint64_t stream, uint64_t index);
double ab_rng_normal_at(uint64_t seed, uint64_t stream, uint64_t index);

#endif
