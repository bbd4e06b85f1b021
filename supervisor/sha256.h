#ifndef BATON_SHA256_H
#define BATON_SHA256_H

#include <stddef.h>
#include <stdint.h>

/*
 * SHA-256 of FIPS 180-4, fed in pieces of any size: what batond hashes to
 * name what a generation runs (an executable, an environment).
 */

#define SHA256_DIGEST_SIZE 32
#define SHA256_BLOCK_SIZE 64

struct sha256 {
	uint32_t h[8];                     /* the intermediate hash */
	uint64_t bytes;                    /* fed so far */
	uint8_t block[SHA256_BLOCK_SIZE]; /* the block being filled */
	size_t fill;                       /* bytes in block */
};

/* Starts a hash of nothing yet. */
void sha256_init(struct sha256 *s);

/* Feeds len bytes of data (data may be NULL when len is 0). */
void sha256_update(struct sha256 *s, const void *data, size_t len);

/*
 * Writes the hash of all that was fed into digest; s must be started again
 * (sha256_init) before it is fed anything more.
 */
void sha256_final(struct sha256 *s, uint8_t digest[SHA256_DIGEST_SIZE]);

/*
 * Writes the first digits hex digits of digest, lower case, at most
 * 2 * SHA256_DIGEST_SIZE, and a NUL: out holds digits + 1 bytes.
 */
void sha256_hex(const uint8_t digest[SHA256_DIGEST_SIZE], size_t digits, char *out);

#endif
