#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"

/*
 * The input is a stream, written short: a byte 0x01 followed by n stands
 * for n * 200 bytes of 'x' (n = 0 for a 0x01 itself), so that short inputs
 * hold lines past LINEBUF_MAX. The stream is split into lines by a model
 * here, and by linebuf fed whole, in chunks of sizes drawn from the input,
 * and across a linebuf_pending / linebuf_restore at a point drawn too: all
 * must give the model's lines, and account for every byte.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STREAM_MAX (1 << 16)

static void require(bool ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_linebuf: broken invariant: %s\n", what);
	abort();
}

/* Lines as a run of records: flags, length, bytes. */
struct lines {
	char *data;
	size_t len, cap;
	size_t count, bytes;
};

static void add(struct lines *l, const void *p, size_t n)
{
	if (l->len + n > l->cap) {
		l->cap = (l->len + n) * 2;
		l->data = realloc(l->data, l->cap);
		require(l->data != NULL, "memory for the lines");
	}
	memcpy(l->data + l->len, p, n);
	l->len += n;
}

static void collect(void *data, const char *line, size_t len, unsigned flags)
{
	struct lines *l = data;
	require(len <= LINEBUF_MAX, "a line is at most LINEBUF_MAX bytes");
	require((flags & ~(unsigned)(LINEBUF_CUT | LINEBUF_PARTIAL)) == 0, "flags are known");
	require(!(flags & LINEBUF_CUT) || len == LINEBUF_MAX, "a cut line is LINEBUF_MAX bytes");
	add(l, &flags, sizeof(flags));
	add(l, &len, sizeof(len));
	add(l, line, len);
	l->count++;
	l->bytes += len;
}

// Empties the lines, keeping their memory for the next input.
static void reset(struct lines *l)
{
	l->len = l->count = l->bytes = 0;
}

static void require_same(const struct lines *a, const struct lines *b, const char *what)
{
	require(a->len == b->len && a->count == b->count, what);
	require(a->len == 0 || memcmp(a->data, b->data, a->len) == 0, what);
}

// The lines of the stream, as they must come; returns the bytes dropped.
static size_t model(const char *s, size_t n, struct lines *l)
{
	size_t dropped = 0;
	for (size_t at = 0; at < n;) {
		const char *nl = memchr(s + at, '\n', n - at);
		size_t len = nl ? (size_t)(nl - (s + at)) : n - at;
		if (len > LINEBUF_MAX) {
			collect(l, s + at, LINEBUF_MAX, LINEBUF_CUT);
			dropped += len - LINEBUF_MAX;
		} else {
			collect(l, s + at, len, nl ? 0 : LINEBUF_PARTIAL);
		}
		at += len + (nl != NULL);
	}
	return dropped;
}

static size_t expand(const uint8_t *data, size_t size, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < size && n < STREAM_MAX; i++) {
		size_t run = 1;
		char c = (char)data[i];
		if (c == 0x01 && i + 1 < size) {
			run = data[++i] ? data[i] * (size_t)200 : 1;
			c = data[i] ? 'x' : 0x01;
		}
		if (run > STREAM_MAX - n)
			run = STREAM_MAX - n;
		memset(out + n, c, run);
		n += run;
	}
	return n;
}

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

// Feeds the stream in chunks of random sizes, small and large.
static size_t feed_chunks(const char *s, size_t n, uint64_t seed, struct lines *l)
{
	struct linebuf lb;
	size_t dropped = 0;
	linebuf_init(&lb);
	for (size_t at = 0; at < n;) {
		uint64_t r = next(&seed);
		size_t chunk = 1 + (size_t)(r >> 8) % ((r & 1) ? 17 : 2 * LINEBUF_MAX);
		if (chunk > n - at)
			chunk = n - at;
		dropped += linebuf_feed(&lb, s + at, chunk, collect, l);
		at += chunk;
	}
	linebuf_flush(&lb, collect, l);
	require(lb.buf == NULL && lb.len == 0, "a flushed linebuf holds nothing");
	return dropped;
}

// Feeds the stream up to at into one linebuf, the rest into another.
static size_t feed_restored(const char *s, size_t n, size_t at, struct lines *l)
{
	struct linebuf a, b;
	size_t len;
	bool dropping;
	linebuf_init(&a);
	linebuf_init(&b);
	size_t dropped = linebuf_feed(&a, s, at, collect, l);
	const char *kept = linebuf_pending(&a, &len, &dropping);
	require((kept != NULL) == (len > 0) && len <= LINEBUF_MAX, "pending bytes are kept bytes");
	require(!(dropping && len), "nothing is kept while dropping");
	require(linebuf_restore(&b, kept, len, dropping) == 0, "pending bytes restore");
	linebuf_finish(&a);
	dropped += linebuf_feed(&b, s + at, n - at, collect, l);
	linebuf_flush(&b, collect, l);
	return dropped;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	static char s[STREAM_MAX];
	static struct lines want, whole, chunks, restored;
	size_t n = expand(data + 1, size - 1, s);
	reset(&want);
	reset(&whole);
	reset(&chunks);
	reset(&restored);
	struct linebuf lb;
	size_t dropped = model(s, n, &want), newlines = 0;
	for (const char *p = s; (p = memchr(p, '\n', n - (size_t)(p - s))); p++)
		newlines++;
	require(want.bytes + newlines + dropped == n, "the model accounts for every byte");

	linebuf_init(&lb);
	require(linebuf_feed(&lb, s, n, collect, &whole) == dropped, "fed whole, as much dropped");
	linebuf_flush(&lb, collect, &whole);
	require_same(&want, &whole, "fed whole, the model's lines");
	uint64_t seed = (data[0] + 1) * 0x9E3779B97F4A7C15ull + size;
	require(feed_chunks(s, n, seed, &chunks) == dropped, "fed in chunks, as much dropped");
	require_same(&want, &chunks, "fed in chunks, the model's lines");
	size_t at = (size_t)(next(&seed) % (n + 1));
	require(feed_restored(s, n, at, &restored) == dropped, "restored, as much dropped");
	require_same(&want, &restored, "restored, the model's lines");
	return 0;
}
