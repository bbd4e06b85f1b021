#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

/*
 * SHA-256 fed in pieces (sha256.h): the first byte of the input picks the
 * sizes of the pieces the rest is fed in, and how many hex digits to write;
 * the hash must be the one of the rest fed at once, and the digits the first
 * of the whole hex.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_sha256: broken invariant: %s\n", what);
	abort();
}

static void hash(const uint8_t *data, size_t size, size_t first, size_t step,
	uint8_t digest[SHA256_DIGEST_SIZE])
{
	struct sha256 s;
	sha256_init(&s);
	// Pieces of first, first + step, first + 2 * step... bytes.
	for (size_t off = 0, n = first; off < size; off += n, n += step)
		sha256_update(&s, data + off, n < size - off ? n : size - off);
	sha256_final(&s, digest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint8_t whole[SHA256_DIGEST_SIZE], pieces[SHA256_DIGEST_SIZE];
	char hex[2 * SHA256_DIGEST_SIZE + 1], some[2 * SHA256_DIGEST_SIZE + 1];
	size_t first = data[0] & 0x7f, step = data[0] >> 7;
	hash(data + 1, size - 1, size - 1, 0, whole);
	hash(data + 1, size - 1, first ? first : 1, step, pieces);
	require(memcmp(whole, pieces, sizeof(whole)) == 0, "pieces hash as the whole");
	sha256_hex(whole, 2 * SHA256_DIGEST_SIZE, hex);
	require(strlen(hex) == 2 * SHA256_DIGEST_SIZE &&
			strspn(hex, "0123456789abcdef") == 2 * SHA256_DIGEST_SIZE,
		"the hex is 64 lower-case digits");
	size_t digits = data[0] % (2 * SHA256_DIGEST_SIZE + 1);
	sha256_hex(whole, digits, some);
	require(strlen(some) == digits && strncmp(some, hex, digits) == 0,
		"fewer digits are the first ones");
	return 0;
}
