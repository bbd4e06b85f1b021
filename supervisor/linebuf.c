#include "linebuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(LINEBUF_MAX <= UINT16_MAX, "a kept line's length fits in a uint16_t");

// The first allocation for an unfinished line; it doubles up to LINEBUF_MAX.
#define LINEBUF_FIRST 64

void linebuf_init(struct linebuf *lb)
{
	memset(lb, 0, sizeof(*lb));
}

void linebuf_finish(struct linebuf *lb)
{
	free(lb->buf);
	linebuf_init(lb);
}

// Appends n bytes to the unfinished line, within LINEBUF_MAX; -1 on ENOMEM.
static int keep(struct linebuf *lb, const char *bytes, size_t n)
{
	size_t need = lb->len + n;
	if (need > lb->cap) {
		size_t cap = lb->cap ? lb->cap : LINEBUF_FIRST;
		while (cap < need)
			cap *= 2;
		if (cap > LINEBUF_MAX)
			cap = LINEBUF_MAX;
		char *buf = realloc(lb->buf, cap);
		if (!buf)
			return -1;
		lb->buf = buf;
		lb->cap = (uint16_t)cap;
	}
	if (n)
		memcpy(lb->buf + lb->len, bytes, n);
	lb->len = (uint16_t)need;
	return 0;
}

// Hands out the unfinished line and frees its buffer.
static void deliver_kept(struct linebuf *lb, unsigned flags, linebuf_fn fn, void *data)
{
	char *buf = lb->buf;
	size_t len = lb->len;
	lb->buf = NULL;
	lb->len = lb->cap = 0;
	fn(data, buf, len, flags);
	free(buf);
}

// The line outgrows LINEBUF_MAX with the n bytes at p: its first LINEBUF_MAX
// bytes go out, and room bytes of p are what they take. Returns the bytes dropped.
static size_t cut(struct linebuf *lb, const char *p, size_t n, size_t room, bool ended,
	linebuf_fn fn, void *data)
{
	if (lb->len == 0) {
		fn(data, p, room, LINEBUF_CUT);
	} else if (keep(lb, p, room) == 0) {
		deliver_kept(lb, LINEBUF_CUT, fn, data);
	} else {
		deliver_kept(lb, LINEBUF_PARTIAL, fn, data);
		fn(data, p, room, LINEBUF_CUT);
	}
	lb->dropping = !ended;
	return n - room;
}

// Takes the n bytes at p, which a '\n' follows when ended. Returns the bytes dropped.
static size_t segment(struct linebuf *lb, const char *p, size_t n, bool ended, linebuf_fn fn,
	void *data)
{
	if (lb->dropping) {
		lb->dropping = !ended;
		return n;
	}
	size_t room = LINEBUF_MAX - lb->len;
	if (n > room)
		return cut(lb, p, n, room, ended, fn, data);
	if (ended && lb->len == 0) {
		fn(data, p, n, 0);
		return 0;
	}
	if (keep(lb, p, n) < 0) {
		// Without memory to join the parts, each goes out alone: none is lost.
		if (lb->len)
			deliver_kept(lb, LINEBUF_PARTIAL, fn, data);
		fn(data, p, n, ended ? 0 : LINEBUF_PARTIAL);
		return 0;
	}
	if (ended)
		deliver_kept(lb, 0, fn, data);
	return 0;
}

size_t linebuf_feed(struct linebuf *lb, const char *bytes, size_t n, linebuf_fn fn, void *data)
{
	size_t dropped = 0;
	if (n == 0)
		return 0;
	const char *p = bytes, *end = bytes + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		dropped += segment(lb, p, len, nl != NULL, fn, data);
		p += len + (nl != NULL);
	}
	return dropped;
}

void linebuf_flush(struct linebuf *lb, linebuf_fn fn, void *data)
{
	if (lb->len)
		deliver_kept(lb, LINEBUF_PARTIAL, fn, data);
	linebuf_finish(lb);
}

const char *linebuf_pending(const struct linebuf *lb, size_t *len, bool *dropping)
{
	*len = lb->len;
	*dropping = lb->dropping;
	return lb->len ? lb->buf : NULL;
}

int linebuf_restore(struct linebuf *lb, const char *bytes, size_t len, bool dropping)
{
	if (len > LINEBUF_MAX || (dropping && len)) {
		errno = EINVAL;
		return -1;
	}
	if (keep(lb, bytes, len) < 0) {
		errno = ENOMEM;
		return -1;
	}
	lb->dropping = dropping;
	return 0;
}
