#include "logline.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

// 9999-12-31T23:59:59Z, the last second a four-digit year can show.
#define LAST_SECOND 253402300799LL

static const char hex[] = "0123456789abcdef";

const char *logline_stream_name(enum logline_stream stream)
{
	return stream == LOGLINE_ERR ? "err" : "out";
}

// The length of the valid UTF-8 sequence at s, of the n bytes there, or 0.
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	// The second byte's range rules out overlong forms, surrogates and past U+10FFFF.
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	return len;
}

/*
 * Appends n bytes: the valid UTF-8 sequences that plain accepts as they are,
 * the others through escape, which gets a byte that is not UTF-8 with len 0.
 * Returns false when some bytes were not UTF-8.
 */
static bool add_escaped(struct protocol_buf *b, const char *s, size_t n,
	bool (*plain)(const unsigned char *p, size_t len),
	void (*escape)(struct protocol_buf *b, const unsigned char *p, size_t len))
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;
	bool valid = true;
	while (i < n) {
		size_t len = utf8_len(p + i, n - i);
		if (len && plain(p + i, len)) {
			i += len;
			continue;
		}
		protocol_buf_add(b, s + run, i - run);
		escape(b, p + i, len);
		valid = valid && len;
		i += len ? len : 1;
		run = i;
	}
	protocol_buf_add(b, s + run, i - run);
	return valid;
}

// What the text form shows as it is: all but control characters and separators.
static bool text_plain(const unsigned char *p, size_t len)
{
	if (len == 1)
		return (p[0] >= 0x20 && p[0] != 0x7f) || p[0] == '\t';
	if (len == 2)
		return !(p[0] == 0xc2 && p[1] < 0xa0);
	if (len == 3)
		return !(p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9));
	return true;
}

static void text_escape(struct protocol_buf *b, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < (len ? len : 1); i++) {
		char esc[4] = {'\\', 'x', hex[p[i] >> 4], hex[p[i] & 15]};
		protocol_buf_add(b, esc, sizeof(esc));
	}
}

// n digits of v, zero-padded, at p.
static char *put_digits(char *p, long long v, int n)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + n;
}

// The time as 2026-12-01T19:45:00.123456Z, in UTC, rounded to the microsecond,
// clamped to the years a four-digit year can show. The date is worked out
// from the days since 1970 (the civil calendar's rules, with years that begin
// in March so that a leap day comes last), not by gmtime and printf: a
// `batonctl logs` formats hundreds of thousands of lines.
static void add_time(struct protocol_buf *b, double time)
{
	long long secs = 0, usec = 0;
	if (time >= (double)LAST_SECOND + 1) {
		secs = LAST_SECOND;
		usec = 999999;
	} else if (time > 0) {
		secs = (long long)time;
		usec = (long long)((time - (double)secs) * 1e6 + 0.5);
	}
	if (usec > 999999) {
		secs++;
		usec -= 1000000;
	}
	if (secs > LAST_SECOND) {
		secs = LAST_SECOND;
		usec = 999999;
	}
	long long days = secs / 86400, sod = secs % 86400;
	long long z = days + 719468; /* days since 0000-03-01 */
	long long era = z / 146097, doe = z % 146097;
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long long mp = (5 * doy + 2) / 153;
	long long day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
	long long year = yoe + era * 400 + (month <= 2);
	char text[27], *p = text;
	p = put_digits(p, year, 4);
	*p++ = '-';
	p = put_digits(p, month, 2);
	*p++ = '-';
	p = put_digits(p, day, 2);
	*p++ = 'T';
	p = put_digits(p, sod / 3600, 2);
	*p++ = ':';
	p = put_digits(p, sod / 60 % 60, 2);
	*p++ = ':';
	p = put_digits(p, sod % 60, 2);
	*p++ = '.';
	p = put_digits(p, usec, 6);
	*p++ = 'Z';
	protocol_buf_add(b, text, (size_t)(p - text));
}

void logline_text(struct protocol_buf *b, const struct logline *l, bool with_time)
{
	size_t len = l->len;
	if (len && l->text[len - 1] == '\r')
		len--;
	if (with_time) {
		add_time(b, l->time);
		protocol_buf_add(b, " ", 1);
	}
	add_escaped(b, l->service, strlen(l->service), text_plain, text_escape);
	protocol_buf_printf(b, "[%ld] gen %u %s: ", (long)l->pid, l->gen,
		logline_stream_name(l->stream));
	add_escaped(b, l->text, len, text_plain, text_escape);
	if (l->cut)
		protocol_buf_add(b, " [cut]", 6);
	protocol_buf_add(b, "\n", 1);
}

static bool json_plain(const unsigned char *p, size_t len)
{
	return len > 1 || (p[0] >= 0x20 && p[0] != '"' && p[0] != '\\' && p[0] != 0x7f);
}

static void json_escape(struct protocol_buf *b, const unsigned char *p, size_t len)
{
	static const char from[] = "\b\f\n\r\t\"\\", to[] = "bfnrt\"\\";
	if (len == 0) {
		protocol_buf_add(b, "\xef\xbf\xbd", 3);
		return;
	}
	const char *at = memchr(from, p[0], sizeof(from) - 1);
	if (at) {
		char esc[2] = {'\\', to[at - from]};
		protocol_buf_add(b, esc, sizeof(esc));
	} else {
		protocol_buf_add(b, "\\u00", 4);
		protocol_buf_add(b, &hex[p[0] >> 4], 1);
		protocol_buf_add(b, &hex[p[0] & 15], 1);
	}
}

// Appends n bytes as a JSON string; returns false when some were not UTF-8.
static bool add_json_string(struct protocol_buf *b, const char *s, size_t n)
{
	protocol_buf_add(b, "\"", 1);
	bool valid = add_escaped(b, s, n, json_plain, json_escape);
	protocol_buf_add(b, "\"", 1);
	return valid;
}

static void add_base64(struct protocol_buf *b, const char *s, size_t n)
{
	static const char digits[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)s;
	protocol_buf_add(b, "\"", 1);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		char out[4] = {digits[v >> 18], digits[(v >> 12) & 63],
			i + 1 < n ? digits[(v >> 6) & 63] : '=', i + 2 < n ? digits[v & 63] : '='};
		protocol_buf_add(b, out, sizeof(out));
	}
	protocol_buf_add(b, "\"", 1);
}

void logline_json(struct protocol_buf *b, const struct logline *l)
{
	protocol_buf_add(b, "{\"time\":\"", 9);
	add_time(b, l->time);
	protocol_buf_add(b, "\",\"service\":", 12);
	add_json_string(b, l->service, strlen(l->service));
	protocol_buf_printf(b, ",\"pid\":%ld,\"gen\":%u,\"stream\":\"%s\",\"line\":", (long)l->pid,
		l->gen, logline_stream_name(l->stream));
	if (!add_json_string(b, l->text, l->len)) {
		protocol_buf_add(b, ",\"line_base64\":", 15);
		add_base64(b, l->text, l->len);
	}
	if (l->cut)
		protocol_buf_add(b, ",\"cut\":true", 11);
	protocol_buf_add(b, "}\n", 2);
}

static bool record_plain(const unsigned char *p, size_t len)
{
	return len > 1 || p[0] != '\0';
}

static void record_escape(struct protocol_buf *b, const unsigned char *p, size_t len)
{
	(void)p;
	(void)len;
	protocol_buf_add(b, "\xef\xbf\xbd", 3);
}

// Whether the n bytes of s are printable ASCII but '"' and '\\', as most
// lines are: such a line's record holds it as it is, in quotes when it has a
// space or an '=' (or is empty), as protocol_record_str would write it.
static bool ascii_text(const char *s, size_t n, bool *quoted)
{
	bool q = n == 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			return false;
		q |= c == ' ' || c == '=';
	}
	*quoted = q;
	return true;
}

// append_record's record of a line whose text is ascii_text, in one pass.
static void append_ascii(struct protocol_buf *b, const struct logline *l, bool quoted)
{
	protocol_record_begin(b, "log");
	protocol_buf_add(b, " time=", 6);
	add_time(b, l->time);
	protocol_record_str(b, "service", l->service);
	protocol_record_int(b, "gen", l->gen);
	protocol_record_int(b, "pid", l->pid);
	protocol_record_str(b, "stream", logline_stream_name(l->stream));
	protocol_buf_add(b, quoted ? " line=\"" : " line=", quoted ? 7 : 6);
	protocol_buf_add(b, l->text, l->len);
	if (quoted)
		protocol_buf_add(b, "\"", 1);
	if (l->cut)
		protocol_record_str(b, "cut", "yes");
	protocol_record_end(b);
}

// Appends the record of l as it is, whatever its length.
static void append_record(struct protocol_buf *b, const struct logline *l)
{
	bool quoted;
	if (ascii_text(l->text, l->len, &quoted)) {
		append_ascii(b, l, quoted);
		return;
	}
	struct protocol_buf text = {0}, when = {0};
	bool exact = add_escaped(&text, l->text, l->len, record_plain, record_escape);
	protocol_buf_add(&text, "", 1);
	add_time(&when, l->time);
	protocol_buf_add(&when, "", 1);
	protocol_record_begin(b, "log");
	protocol_record_str(b, "time", when.failed ? "" : when.data);
	protocol_record_str(b, "service", l->service);
	protocol_record_int(b, "gen", l->gen);
	protocol_record_int(b, "pid", l->pid);
	protocol_record_str(b, "stream", logline_stream_name(l->stream));
	protocol_record_str(b, "line", text.failed ? "" : text.data);
	if (!exact || memchr(l->text, '\0', l->len)) {
		protocol_buf_printf(b, " line_base64=");
		add_base64(b, l->text, l->len);
	}
	if (l->cut)
		protocol_record_str(b, "cut", "yes");
	protocol_record_end(b);
	protocol_buf_finish(&text);
	protocol_buf_finish(&when);
}

// The longest start of a line, at most max bytes, that ends on a character.
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80 && max - n < 3)
		n--;
	return n ? n : max;
}

// Appends the record of l's first n bytes, cut on a character, marked cut,
// when it fits a record; returns whether it did.
static bool append_start(struct protocol_buf *b, const struct logline *l, size_t n)
{
	struct logline cut = *l;
	cut.len = utf8_cut(l->text, l->len, n);
	cut.cut = true;
	size_t start = b->len;
	append_record(b, &cut);
	if (b->failed || b->len - start <= PROTOCOL_RECORD_MAX)
		return true;
	b->len = start;
	return false;
}

void logline_record(struct protocol_buf *b, const struct logline *l)
{
	size_t start = b->len;
	append_record(b, l);
	// A record is one line a client reads whole: a longer one carries the
	// longest start of the line that fits, and says it is cut.
	if (b->failed || b->len - start <= PROTOCOL_RECORD_MAX)
		return;
	b->len = start;
	// Each byte takes at least one in the record: a start that fits is shorter.
	size_t fits = 0, too_long = l->len < PROTOCOL_RECORD_MAX ? l->len : PROTOCOL_RECORD_MAX;
	while (too_long - fits > 1) {
		size_t mid = fits + (too_long - fits) / 2;
		if (append_start(b, l, mid)) {
			b->len = start;
			fits = mid;
		} else {
			too_long = mid;
		}
	}
	append_start(b, l, fits);
}

void logline_clean(const char *text, size_t len, char *out, size_t outlen)
{
	struct protocol_buf b = {0};
	len = utf8_cut(text, len, outlen > 4 ? outlen / 4 : 0);
	add_escaped(&b, text, len, record_plain, record_escape);
	protocol_buf_add(&b, "", 1);
	snprintf(out, outlen, "%s", b.failed ? "" : b.data);
	protocol_buf_finish(&b);
}
