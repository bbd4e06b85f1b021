#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logline.h"

/*
 * The input: a byte of flags (cut, stream), eight bytes of time (a double,
 * whatever its bits), four of pid, four of gen, a byte n, n bytes of
 * service's name (up to a NUL), then the line's bytes. For any of them,
 * logline_text must give one line of valid UTF-8 with no control byte but
 * tab and the final '\n', that gives the line's bytes back when it has no
 * backslash; and logline_json one line that a strict JSON reader here takes,
 * whose "line" is the bytes, or, when they are not UTF-8, the bytes with
 * U+FFFD for each byte not part of UTF-8 and "line_base64" the bytes;
 * and logline_record one record within a reply line that the protocol
 * reads, whose bytes are the line's, or, marked cut, the longest start of
 * them that fits one.
 * The UTF-8 rules here are written apart from logline.c's, to check them.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_logline: broken invariant: %s\n", what);
	abort();
}

// Decodes the UTF-8 character at s into *cp; returns its length, or 0 if invalid.
static size_t decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
	size_t len = 1;
	if (s[0] >= 0x80)
		len = s[0] < 0xc0 || s[0] >= 0xf8 ? 0 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
	if (len == 0 || len > n)
		return 0;
	*cp = len == 1 ? s[0] : s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (s[i] & 0x3f);
	}
	if (*cp < least[len] || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return len;
}

static bool valid_utf8(const char *s, size_t n)
{
	uint32_t cp;
	for (size_t i = 0, len; i < n; i += len) {
		len = decode((const unsigned char *)s + i, n - i, &cp);
		if (!len)
			return false;
	}
	return true;
}

/* Bytes read back out of the output. */
struct bytes {
	char data[1 << 17];
	size_t len;
};

static void put(struct bytes *b, const void *p, size_t n)
{
	require(b->len + n <= sizeof(b->data), "room for the bytes read back");
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put_utf8(struct bytes *b, uint32_t cp)
{
	unsigned char u[4];
	size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	static const unsigned char lead[] = {0, 0, 0xc0, 0xe0, 0xf0};
	for (size_t i = n - 1; i > 0; i--, cp >>= 6)
		u[i] = (unsigned char)(0x80 | (cp & 0x3f));
	u[0] = (unsigned char)(lead[n] | cp);
	put(b, u, n);
}

/* A strict reader of what logline_json writes: RFC 8259 without blanks. */
struct reader {
	const char *p, *end;
};

static int hex4(const char *p)
{
	char digits[5] = {0};
	for (int i = 0; i < 4; i++)
		require(isxdigit((unsigned char)p[i]), "a \\u escape has four hex digits");
	memcpy(digits, p, 4);
	return (int)strtol(digits, NULL, 16);
}

// Reads a \uXXXX escape, and the low surrogate that must follow a high one.
static uint32_t read_u(struct reader *r)
{
	require(r->end - r->p >= 4, "a \\u escape has four hex digits");
	uint32_t cp = (uint32_t)hex4(r->p);
	r->p += 4;
	require(cp < 0xdc00 || cp > 0xdfff, "no lone low surrogate");
	if (cp < 0xd800 || cp > 0xdbff)
		return cp;
	require(r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u', "a surrogate pair");
	uint32_t low = (uint32_t)hex4(r->p + 2);
	require(low >= 0xdc00 && low <= 0xdfff, "a high surrogate has a low one");
	r->p += 6;
	return 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
}

static void read_escape(struct reader *r, struct bytes *out)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	require(r->p < r->end, "an escape has a letter");
	char c = *r->p++;
	const char *at = memchr(from, c, sizeof(from) - 1);
	if (at)
		put(out, &to[at - from], 1);
	else if (c == 'u')
		put_utf8(out, read_u(r));
	else
		require(false, "an escape is one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u");
}

static void read_string(struct reader *r, struct bytes *out)
{
	out->len = 0;
	require(r->p < r->end && *r->p == '"', "a string opens with a quote");
	r->p++;
	for (;;) {
		require(r->p < r->end, "a string is closed");
		unsigned char c = (unsigned char)*r->p;
		uint32_t cp;
		if (c == '"')
			break;
		require(c >= 0x20, "no raw control character in a string");
		if (c == '\\') {
			r->p++;
			read_escape(r, out);
			continue;
		}
		size_t len = decode((const unsigned char *)r->p, (size_t)(r->end - r->p), &cp);
		require(len > 0, "a string is UTF-8");
		put(out, r->p, len);
		r->p += len;
	}
	r->p++;
}

static long long read_int(struct reader *r)
{
	const char *start = r->p;
	if (r->p < r->end && *r->p == '-')
		r->p++;
	require(r->p < r->end && *r->p >= '0' && *r->p <= '9', "a number has digits");
	require(*r->p != '0' || r->p + 1 == r->end || r->p[1] < '0' || r->p[1] > '9',
		"a number has no leading zero");
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
		r->p++;
	return strtoll(start, NULL, 10);
}

static void expect(struct reader *r, const char *s)
{
	size_t n = strlen(s);
	require((size_t)(r->end - r->p) >= n && memcmp(r->p, s, n) == 0, s);
	r->p += n;
}

static bool next_is(struct reader *r, const char *s)
{
	size_t n = strlen(s);
	return (size_t)(r->end - r->p) >= n && memcmp(r->p, s, n) == 0;
}

static void base64_decode(const struct bytes *in, struct bytes *out)
{
	static const char digits[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	out->len = 0;
	require(in->len % 4 == 0, "base64 comes in fours");
	for (size_t i = 0; i < in->len; i += 4) {
		uint32_t v = 0;
		int pad = 0;
		for (size_t k = 0; k < 4; k++) {
			const char *at = memchr(digits, in->data[i + k], 64);
			require(at || (in->data[i + k] == '=' && i + 4 == in->len && k >= 2),
				"base64 digits, padded at the end");
			require(!pad || !at, "nothing after padding");
			pad += !at;
			v = v << 6 | (at ? (uint32_t)(at - digits) : 0);
		}
		unsigned char three[3] = {(unsigned char)(v >> 16), (unsigned char)(v >> 8),
			(unsigned char)v};
		put(out, three, 3 - (size_t)pad);
	}
}

// The bytes with U+FFFD for each byte that is not part of valid UTF-8.
static void replaced(const char *s, size_t n, struct bytes *out)
{
	uint32_t cp;
	out->len = 0;
	for (size_t i = 0, len; i < n; i += len ? len : 1) {
		len = decode((const unsigned char *)s + i, n - i, &cp);
		if (len)
			put(out, s + i, len);
		else
			put_utf8(out, 0xfffd);
	}
}

static void require_bytes(const struct bytes *b, const char *s, size_t n, const char *what)
{
	require(b->len == n && (n == 0 || memcmp(b->data, s, n) == 0), what);
}

static void check_json(const struct logline *l, const char *json, size_t n)
{
	static struct bytes s, again;
	struct reader r = {json, json + n};
	require(n > 0 && json[n - 1] == '\n' && memchr(json, '\n', n) == json + n - 1,
		"JSON is one line");
	r.end--;
	expect(&r, "{\"time\":");
	read_string(&r, &s);
	require(s.len == 27 && s.data[26] == 'Z', "a time string");
	expect(&r, ",\"service\":");
	read_string(&r, &s);
	replaced(l->service, strlen(l->service), &again);
	require_bytes(&again, s.data, s.len, "the service's name");
	expect(&r, ",\"pid\":");
	require(read_int(&r) == l->pid, "the pid");
	expect(&r, ",\"gen\":");
	require(read_int(&r) == l->gen, "the gen");
	expect(&r, l->stream == LOGLINE_ERR ? ",\"stream\":\"err\"" : ",\"stream\":\"out\"");
	expect(&r, ",\"line\":");
	read_string(&r, &s);
	replaced(l->text, l->len, &again);
	require_bytes(&again, s.data, s.len, "the line, U+FFFD for bytes not UTF-8");
	if (next_is(&r, ",\"line_base64\":")) {
		require(!valid_utf8(l->text, l->len), "base64 only for a line not UTF-8");
		expect(&r, ",\"line_base64\":");
		read_string(&r, &s);
		base64_decode(&s, &again);
		require_bytes(&again, l->text, l->len, "base64 is the line's bytes");
	} else {
		require(valid_utf8(l->text, l->len), "base64 for a line not UTF-8");
	}
	if (l->cut)
		expect(&r, ",\"cut\":true");
	expect(&r, "}");
	require(r.p == r.end, "nothing after the object");
}

// The bytes a record carries of its line: line_base64's, or line's.
static void carried_bytes(const struct protocol_record *r, struct bytes *out)
{
	static struct bytes in;
	const char *b64 = protocol_record_get(r, "line_base64");
	const char *line = protocol_record_get(r, "line");
	require(line != NULL, "a record has its line");
	in.len = 0;
	put(&in, b64 ? b64 : line, strlen(b64 ? b64 : line));
	if (b64) {
		base64_decode(&in, out);
		return;
	}
	out->len = 0;
	put(out, in.data, in.len);
}

// Parses the one record in b into r, and what it carries of its line into out.
static void read_record(const struct protocol_buf *b, struct protocol_record *r,
	struct bytes *out)
{
	require(b->len > 0 && b->len <= PROTOCOL_RECORD_MAX, "a record within a reply line");
	require(memchr(b->data, '\n', b->len) == b->data + b->len - 1, "a record is one line");
	require(protocol_parse_record(r, b->data, b->len - 1) == 0, "a record the protocol reads");
	require(strcmp(r->type, "log") == 0, "a log record");
	carried_bytes(r, out);
}

static void check_record(const struct logline *l, const struct protocol_buf *rec)
{
	static struct protocol_record r;
	static struct bytes got, want;
	static struct protocol_buf more;
	read_record(rec, &r, &got);
	require(got.len <= l->len && memcmp(got.data, l->text, got.len) == 0,
		"a record carries the line or a start of it");
	const char *cut = protocol_record_get(&r, "cut");
	require((got.len < l->len || l->cut) == (cut && strcmp(cut, "yes") == 0),
		"a record is marked cut when its line was");
	bool exact = valid_utf8(got.data, got.len) && !memchr(got.data, '\0', got.len);
	require(exact == !protocol_record_get(&r, "line_base64"),
		"line_base64 only for a line not UTF-8 or with a NUL");
	replaced(got.data, got.len, &want);
	static struct bytes line;
	line.len = 0;
	for (size_t i = 0; i < want.len; i++)
		put(&line, want.data[i] ? want.data + i : "\xef\xbf\xbd", want.data[i] ? 1 : 3);
	const char *text = protocol_record_get(&r, "line");
	require_bytes(&line, text, strlen(text), "line, with U+FFFD for NUL and bytes not UTF-8");
	if (got.len == l->len)
		return;
	// A character more would not have fitted.
	size_t next = got.len + 1;
	while (next < l->len && ((unsigned char)l->text[next] & 0xc0) == 0x80)
		next++;
	struct logline longer = *l;
	longer.len = next;
	longer.cut = true;
	protocol_buf_finish(&more);
	logline_record(&more, &longer);
	require(!more.failed, "memory for the record");
	read_record(&more, &r, &want);
	require(want.len < next, "the longest start that fits");
}

static bool control(uint32_t cp)
{
	return (cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 ||
		cp == 0x2029;
}

static void check_text_line(const char *text, size_t n)
{
	uint32_t cp = 0;
	require(n > 0 && text[n - 1] == '\n', "text ends with a newline");
	for (size_t i = 0, len; i < n - 1; i += len) {
		len = decode((const unsigned char *)text + i, n - 1 - i, &cp);
		require(len > 0, "text is UTF-8");
		require(!control(cp), "text has no control character but tab and the newline");
	}
}

// Reads \xNN escapes back into bytes.
static void unescape(const char *s, size_t n, struct bytes *out)
{
	out->len = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x') {
			char hex[3] = {s[i + 2], s[i + 3], 0};
			unsigned char c = (unsigned char)strtoul(hex, NULL, 16);
			put(out, &c, 1);
			i += 3;
		} else {
			put(out, &s[i], 1);
		}
	}
}

static void check_text(struct logline *l, const struct protocol_buf *text, bool with_time)
{
	static struct bytes back;
	static struct protocol_buf prefix;
	check_text_line(text->data, text->len);
	struct logline empty = *l;
	empty.len = 0;
	empty.cut = false;
	protocol_buf_finish(&prefix);
	logline_text(&prefix, &empty, with_time);
	require(!prefix.failed, "memory for the prefix");
	require(text->len >= prefix.len + (l->cut ? 6 : 0), "the text is as long as its prefix");
	size_t start = prefix.len - 1, end = text->len - 1 - (l->cut ? 6 : 0);
	require(memcmp(text->data, prefix.data, start) == 0, "the text starts with its prefix");
	require(!l->cut || memcmp(text->data + end, " [cut]", 6) == 0, "a cut line ends [cut]");
	require(!with_time || (text->len > 28 && text->data[10] == 'T' && text->data[26] == 'Z'),
		"the time comes first");
	size_t len = l->len;
	if (len && l->text[len - 1] == '\r')
		len--;
	if (memchr(l->text, '\\', l->len))
		return;
	unescape(text->data + start, end - start, &back);
	require_bytes(&back, l->text, len, "the text gives the line's bytes back");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct protocol_buf text, json;
	char service[256];
	if (size < 18)
		return 0;
	struct logline l = {
		.cut = data[0] & 1,
		.stream = data[0] & 2 ? LOGLINE_ERR : LOGLINE_OUT,
		.service = service,
	};
	bool with_time = data[0] & 4;
	memcpy(&l.time, data + 1, 8);
	memcpy(&l.pid, data + 9, 4);
	memcpy(&l.gen, data + 13, 4);
	size_t n = data[17] < size - 18 ? data[17] : size - 18;
	memcpy(service, data + 18, n);
	service[n] = '\0';
	l.text = (const char *)data + 18 + n;
	l.len = size - 18 - n;

	protocol_buf_finish(&text);
	logline_text(&text, &l, with_time);
	require(!text.failed, "memory for the text");
	check_text(&l, &text, with_time);
	protocol_buf_finish(&json);
	logline_json(&json, &l);
	require(!json.failed, "memory for the JSON");
	check_json(&l, json.data, json.len);
	protocol_buf_finish(&json);
	logline_record(&json, &l);
	require(!json.failed, "memory for the record");
	check_record(&l, &json);
	return 0;
}
