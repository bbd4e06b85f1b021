#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "sha256.h"

// The hex of the hash of len bytes of data, fed chunk bytes at a time.
static void hash_in_chunks(const void *data, size_t len, size_t chunk, char hex[65])
{
	struct sha256 s;
	uint8_t digest[SHA256_DIGEST_SIZE];
	const uint8_t *p = data;
	sha256_init(&s);
	for (size_t off = 0; off < len; off += chunk)
		sha256_update(&s, p + off, len - off < chunk ? len - off : chunk);
	sha256_final(&s, digest);
	sha256_hex(digest, 64, hex);
}

static void assert_hash(const char *data, const char *expected)
{
	char hex[65];
	size_t len = strlen(data);
	hash_in_chunks(data, len, len ? len : 1, hex);
	assert_string_equal(hex, expected);
	// Fed a byte at a time, or in uneven pieces, the hash is the same.
	hash_in_chunks(data, len, 1, hex);
	assert_string_equal(hex, expected);
	hash_in_chunks(data, len, 7, hex);
	assert_string_equal(hex, expected);
}

// The examples of FIPS 180-4 (NIST's "SHA256.pdf" and the SHAVS vectors).
static void the_empty_message(void **state)
{
	(void)state;
	assert_hash("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void abc(void **state)
{
	(void)state;
	assert_hash("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// 448 bits: the padding needs a second block.
static void the_448_bit_message(void **state)
{
	(void)state;
	assert_hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void the_896_bit_message(void **state)
{
	(void)state;
	assert_hash("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
		    "klmnopqrlmnopqrsmnopqrstnopqrstu",
		"cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void a_million_a(void **state)
{
	(void)state;
	static char a[1000000];
	char hex[65];
	static const char expected[] =
		"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	memset(a, 'a', sizeof(a));
	hash_in_chunks(a, sizeof(a), sizeof(a), hex);
	assert_string_equal(hex, expected);
	hash_in_chunks(a, sizeof(a), 1000, hex);
	assert_string_equal(hex, expected);
	hash_in_chunks(a, sizeof(a), 63, hex);
	assert_string_equal(hex, expected);
}

// Messages of 55, 56 and 64 bytes end right where the padding changes.
static void lengths_at_the_padding_edges(void **state)
{
	(void)state;
	static const struct {
		size_t len;
		const char *hex;
	} cases[] = {
		{55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
		{56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
		{64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
	};
	char a[64], hex[65];
	memset(a, 'a', sizeof(a));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hash_in_chunks(a, cases[i].len, cases[i].len, hex);
		assert_string_equal(hex, cases[i].hex);
	}
}

static void hex_writes_the_first_digits(void **state)
{
	(void)state;
	struct sha256 s;
	uint8_t digest[SHA256_DIGEST_SIZE];
	char out[80];
	sha256_init(&s);
	sha256_update(&s, "abc", 3);
	sha256_final(&s, digest);
	sha256_hex(digest, 12, out);
	assert_string_equal(out, "ba7816bf8f01");
	sha256_hex(digest, 7, out);
	assert_string_equal(out, "ba7816b");
	sha256_hex(digest, 0, out);
	assert_string_equal(out, "");
	sha256_hex(digest, 100, out);
	assert_int_equal(strlen(out), 64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_empty_message),
		cmocka_unit_test(abc),
		cmocka_unit_test(the_448_bit_message),
		cmocka_unit_test(the_896_bit_message),
		cmocka_unit_test(a_million_a),
		cmocka_unit_test(lengths_at_the_padding_edges),
		cmocka_unit_test(hex_writes_the_first_digits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
