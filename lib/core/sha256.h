/* sha256.h - SHA-256 (FIPS 180-4) for content digests: the results file records the digest of
 * every workload it was computed from, so a result can be matched to its exact input. A plain,
 * portable implementation; speed is a few hundred MB/s, which is far below the cost of a sweep.
 * Streaming: init, update any number of times with any lengths, final. */
#ifndef AB_CORE_SHA256_H
#define AB_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct ab_sha256 {
    uint32_t h[8];         /* chaining state */
    uint64_t n_bytes;      /* message length so far */
    unsigned char buf[64]; /* pending partial block */
    size_t n_buf;          /* bytes in buf, < 64 */
};

/* Starts a digest. */
void ab_sha256_init(struct ab_sha256 *s);

/* Feeds n bytes of data (data may be NULL when n == 0). */
void ab_sha256_update(struct ab_sha256 *s, const void *data, size_t n);

/* Finishes the digest into out (32 bytes). s must be re-initialised before reuse. */
void ab_sha256_final(struct ab_sha256 *s, unsigned char out[32]);

/* One-shot digest of a buffer as 64 lowercase hex digits and a NUL. */
void ab_sha256_hex(const void *data, size_t n, char hex[65]);

/* Formats a 32-byte digest as 64 lowercase hex digits and a NUL. */
void ab_sha256_to_hex(const unsigned char digest[32], char hex[65]);

#endif
