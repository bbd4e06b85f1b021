#include "logrecord.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "logline.h"

// A record's line as logline.h takes it; text points into the record or bytes.
struct parsed {
	struct logline line;
	char *bytes; /* line_base64 decoded, to free */
};

static bool parse_number(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	if (!s || !*s || strlen(s) > 10)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	*out = v;
	return v <= max;
}

static int base64_digit(char c)
{
	static const char digits[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *at = c ? strchr(digits, c) : NULL;
	return at ? (int)(at - digits) : -1;
}

// Decodes padded base64 (RFC 4648) into a new buffer; NULL when malformed.
static char *base64_decode(const char *in, size_t *len)
{
	size_t n = strlen(in);
	char *out = n % 4 == 0 ? malloc(n / 4 * 3 + 1) : NULL;
	if (!out)
		return NULL;
	*len = 0;
	for (size_t i = 0; i < n; i += 4) {
		int pad = i + 4 == n && in[i + 3] == '=' ? (in[i + 2] == '=' ? 2 : 1) : 0;
		unsigned long v = 0;
		for (int k = 0; k < 4; k++) {
			int d = k >= 4 - pad ? 0 : base64_digit(in[i + k]);
			if (d < 0)
				goto error;
			v = v << 6 | (unsigned long)d;
		}
		char bytes[3] = {(char)(v >> 16), (char)(v >> 8), (char)v};
		memcpy(out + *len, bytes, (size_t)(3 - pad));
		*len += (size_t)(3 - pad);
	}
	return out;
error:
	free(out);
	return NULL;
}

static int parse(struct parsed *p, const struct protocol_record *rec)
{
	const char *service = protocol_record_get(rec, "service");
	const char *stream = protocol_record_get(rec, "stream");
	const char *line = protocol_record_get(rec, "line");
	const char *base64 = protocol_record_get(rec, "line_base64");
	const char *cut = protocol_record_get(rec, "cut");
	unsigned long gen, pid;
	p->bytes = NULL;
	if (!service || !stream || !line ||
		!parse_number(protocol_record_get(rec, "gen"), UINT_MAX, &gen) ||
		!parse_number(protocol_record_get(rec, "pid"), INT_MAX, &pid) ||
		(strcmp(stream, "out") != 0 && strcmp(stream, "err") != 0))
		return -1;
	p->line = (struct logline){0, service, (pid_t)pid, (unsigned)gen,
		stream[0] == 'e' ? LOGLINE_ERR : LOGLINE_OUT, line, strlen(line),
		cut && strcmp(cut, "yes") == 0};
	if (base64 && !(p->bytes = base64_decode(base64, &p->line.len)))
		return -1;
	if (p->bytes)
		p->line.text = p->bytes;
	return 0;
}

// A time as batond writes it: 2026-12-01T19:45:00.123456Z.
static bool time_valid(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
	if (!s || strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != shape[i])
			return false;
	}
	return true;
}

int logrecord_text(struct protocol_buf *b, const struct protocol_record *rec)
{
	const char *time = protocol_record_get(rec, "time");
	struct parsed p;
	if (!time_valid(time) || parse(&p, rec) < 0)
		return -1;
	protocol_buf_printf(b, "%s ", time);
	logline_text(b, &p.line, false);
	free(p.bytes);
	return 0;
}

int logrecord_json(struct protocol_buf *b, const struct protocol_record *rec)
{
	static const char head[] = "{\"time\":\"";
	const char *time = protocol_record_get(rec, "time");
	struct protocol_buf json = {0};
	struct parsed p;
	if (!time_valid(time) || parse(&p, rec) < 0)
		return -1;
	// The time as the record has it: a double does not keep the microsecond of every date.
	logline_json(&json, &p.line);
	const char *rest = json.failed ? NULL : strchr(json.data + sizeof(head) - 1, '"');
	if (rest) {
		protocol_buf_printf(b, "%s%s", head, time);
		protocol_buf_add(b, rest, json.len - (size_t)(rest - json.data));
	} else {
		b->failed = true;
	}
	protocol_buf_finish(&json);
	free(p.bytes);
	return 0;
}

int logrecord_event(struct protocol_buf *b, const struct protocol_record *rec)
{
	struct parsed p;
	if (parse(&p, rec) < 0)
		return -1;
	logline_text(b, &p.line, false);
	if (!b->failed)
		b->data[--b->len] = '\0';
	free(p.bytes);
	return 0;
}

void logrecord_escape(struct protocol_buf *b, const char *text, size_t len)
{
	// logline_text escapes; of its prefix, for a line of no process, none is kept.
	static const char prefix[] = "[0] gen 0 out: ";
	struct logline l = {0, "", 0, 0, LOGLINE_OUT, text, len, false};
	struct protocol_buf all = {0};
	logline_text(&all, &l, false);
	if (all.failed || all.len < sizeof(prefix))
		b->failed = true;
	else
		protocol_buf_add(b, all.data + sizeof(prefix) - 1, all.len - sizeof(prefix));
	protocol_buf_finish(&all);
}
