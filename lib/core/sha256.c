/* sha256.c - SHA-256 as specified in FIPS 180-4, section 6.2 (see sha256.h). Messages are
 * processed in 64-byte blocks read big-endian; the final block carries the 0x80 marker, zero
 * padding and the message length in bits as a 64-bit big-endian number. */
#include "core/sha256.h"

#include <string.h>

/* FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube roots of the first
 * 64 primes. */
static const uint32_t ab_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ab_rotr(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

/* One compression of a 64-byte block into the state (FIPS 180-4 6.2.2). */
static void ab_sha256_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        /* sigma0 and sigma1 of the message schedule */
        uint32_t s0 = ab_rotr(w[t - 15], 7) ^ ab_rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = ab_rotr(w[t - 2], 17) ^ ab_rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int t = 0; t < 64; t++) {
        /* T1 = h + Sigma1(e) + Ch(e,f,g) + K_t + W_t;  T2 = Sigma0(a) + Maj(a,b,c) */
        uint32_t t1 = k + (ab_rotr(e, 6) ^ ab_rotr(e, 11) ^ ab_rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                      ab_sha256_k[t] + w[t];
        uint32_t t2 =
            (ab_rotr(a, 2) ^ ab_rotr(a, 13) ^ ab_rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void ab_sha256_init(struct ab_sha256 *s)
{
    /* FIPS 180-4 5.3.3: square roots of the first 8 primes */
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->n_bytes = 0;
    s->n_buf = 0;
}

void ab_sha256_update(struct ab_sha256 *s, const void *data, size_t n)
{
    if (n == 0) return;
    const unsigned char *p = data;
    s->n_bytes += n;
    if (s->n_buf > 0) {
        size_t take = 64 - s->n_buf < n ? 64 - s->n_buf : n;
        memcpy(s->buf + s->n_buf, p, take);
        s->n_buf += take;
        p += take;
        n -= take;
        if (s->n_buf < 64) return;
        ab_sha256_block(s->h, s->buf);
        s->n_buf = 0;
    }
    for (; n >= 64; p += 64, n -= 64) ab_sha256_block(s->h, p);
    if (n > 0) memcpy(s->buf, p, n);
    s->n_buf = n;
}

void ab_sha256_final(struct ab_sha256 *s, unsigned char out[32])
{
    uint64_t bits = s->n_bytes * 8;
    /* 0x80, zeros up to 56 mod 64, then the bit length big-endian */
    s->buf[s->n_buf++] = 0x80;
    if (s->n_buf > 56) {
        memset(s->buf + s->n_buf, 0, 64 - s->n_buf);
        ab_sha256_block(s->h, s->buf);
        s->n_buf = 0;
    }
    memset(s->buf + s->n_buf, 0, 56 - s->n_buf);
    for (int i = 0; i < 8; i++) s->buf[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    ab_sha256_block(s->h, s->buf);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (unsigned char)(s->h[i] >> (24 - 8 * j));
}

void ab_sha256_to_hex(const unsigned char digest[32], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

void ab_sha256_hex(const void *data, size_t n, char hex[65])
{
    struct ab_sha256 s;
    unsigned char d[32];
    ab_sha256_init(&s);
    ab_sha256_update(&s, data, n);
    ab_sha256_final(&s, d);
    ab_sha256_to_hex(d, hex);
}
