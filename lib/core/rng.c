/* rng.c - Philox4x32-10 counter-based generator (Salmon, Moraes, Dror, Shaw: "Parallel random
 * numbers: as easy as 1, 2, 3", SC 2011), with stream hashing and normal / bounded draws. */
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* Ten rounds of the Philox S-P network on counter c with key k. */
void ab_philox(uint64_t seed, uint64_t stream, uint64_t counter, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32);
    uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += PHILOX_W0, k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* splitmix64 finaliser: a bijective mix of 64 bits. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t ab_stream(uint64_t parent, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = mix64(parent);
    h = mix64(h ^ a);
    h = mix64(h ^ (b + 0x632BE59BD9B4E019ull));
    return mix64(h ^ (c + 0x8CB92BA72F3D8DD7ull));
}

void ab_rng_init(struct ab_rng *r, uint64_t seed, uint64_t stream)
{
    r->seed = seed;
    r->stream = stream;
    r->counter = 0;
    r->used = 4;
    r->has_spare = 0;
    r->spare = 0;
}

uint32_t ab_rng_u32(struct ab_rng *r)
{
    if (r->used == 4) {
        ab_philox(r->seed, r->stream, r->counter++, r->buf);
        r->used = 0;
    }
    return r->buf[r->used++];
}

uint64_t ab_rng_u64(struct ab_rng *r)
{
    uint64_t hi = ab_rng_u32(r);
    return hi << 32 | ab_rng_u32(r);
}

static double u53(uint64_t x) { return (double)(x >> 11) * 0x1.0p-53; }

double ab_rng_uniform(struct ab_rng *r) { return u53(ab_rng_u64(r)); }

/* Box-Muller on two uniforms; 1 - u keeps the log argument in (0, 1]. */
static void box_muller(double u1, double u2, double *z0, double *z1)
{
    double rad = sqrt(-2.0 * log(1.0 - u1)), th = 2.0 * M_PI * u2;
    *z0 = rad * cos(th);
    *z1 = rad * sin(th);
}

double ab_rng_normal(struct ab_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double z0, z1;
    box_muller(ab_rng_uniform(r), ab_rng_uniform(r), &z0, &z1);
    r->spare = z1;
    r->has_spare = 1;
    return z0;
}

int64_t ab_rng_below(struct ab_rng *r, int64_t n)
{
    /* rejection sampling on 64 bits: unbiased */
    uint64_t un = (uint64_t)n, limit = UINT64_MAX - UINT64_MAX % un;
    uint64_t x;
    do x = ab_rng_u64(r);
    while (x >= limit);
    return (int64_t)(x % un);
}

double ab_rng_uniform_at(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint32_t w[4];
    ab_philox(seed, stream, index, w);
    return u53((uint64_t)w[0] << 32 | w[1]);
}

double ab_rng_normal_at(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint32_t w[4];
    ab_philox(seed, stream, index, w);
    double z0, z1;
    box_muller(u53((uint64_t)w[0] << 32 | w[1]), u53((uint64_t)w[2] << 32 | w[3]), &z0, &z1);
    return z0;
}
