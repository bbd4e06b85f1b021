#include "protocol.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct protocol_verb_info verbs[VERB_COUNT] = {
	[VERB_STATUS] = {"status", 0, 1, 0, "status [SERVICE]"},
	[VERB_START] = {"start", 1, 1, 0, "start SERVICE"},
	[VERB_STOP] = {"stop", 1, 1, FLAG_WAIT, "stop [--wait] SERVICE"},
	[VERB_RESTART] = {"restart", 1, 1, 0, "restart SERVICE"},
	[VERB_UPGRADE] = {"upgrade", 1, PROTOCOL_WORDS_MAX - 1,
		FLAG_WAIT | FLAG_CANARY | FLAG_OBSERVE | FLAG_CONTINUE | FLAG_ABORT | FLAG_GATE,
		"upgrade [--wait] [--canary=N [--observe=MS]] [--gate] SERVICE [-- GATE...] | "
		"upgrade [--wait] --continue|--abort SERVICE"},
	[VERB_SIGNAL] = {"signal", 2, 2, 0, "signal SERVICE SIGNAL"},
	[VERB_WATCH] = {"watch", 0, 1, 0, "watch [SERVICE]"},
	[VERB_RELOAD] = {"reload", 0, 0, 0, "reload"},
	[VERB_REEXEC] = {"reexec", 0, 0, 0, "reexec"},
	[VERB_SHUTDOWN] = {"shutdown", 0, 0, 0, "shutdown"},
	[VERB_METRICS] = {"metrics", 0, 0, 0, "metrics"},
	[VERB_VERSION] = {"version", 0, 0, 0, "version"},
	[VERB_LOGS] = {"logs", 0, 1, FLAG_FOLLOW | FLAG_REOPEN | FLAG_LINES | FLAG_GEN | FLAG_PID,
		"logs [--follow] [--lines=N] [--gen=N] [--pid=PID] [SERVICE] | logs --reopen"},
};

struct protocol_flag_name {
	const char *name;
	enum protocol_flag flag;
	int value; /* the enum protocol_value it carries, or -1 */
};

static const struct protocol_flag_name flag_names[] = {
	{"--wait", FLAG_WAIT, -1},
	{"--follow", FLAG_FOLLOW, -1},
	{"--reopen", FLAG_REOPEN, -1},
	{"--lines", FLAG_LINES, VALUE_LINES},
	{"--gen", FLAG_GEN, VALUE_GEN},
	{"--pid", FLAG_PID, VALUE_PID},
	{"--canary", FLAG_CANARY, VALUE_CANARY},
	{"--observe", FLAG_OBSERVE, VALUE_OBSERVE},
	{"--continue", FLAG_CONTINUE, -1},
	{"--abort", FLAG_ABORT, -1},
	{"--gate", FLAG_GATE, -1},
};

const struct protocol_verb_info *protocol_verb_info(enum protocol_verb verb)
{
	if ((unsigned)verb >= VERB_COUNT)
		return NULL;
	return &verbs[verb];
}

static int verb_lookup(const char *name)
{
	for (int i = 0; i < VERB_COUNT; i++) {
		if (strcmp(verbs[i].name, name) == 0)
			return i;
	}
	return -1;
}

// Finds the flag of a word, "--lines=N" included; NULL for none.
static const struct protocol_flag_name *flag_lookup(const char *word, const char **value)
{
	size_t n = strcspn(word, "=");
	*value = word[n] == '=' ? word + n + 1 : NULL;
	for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
		if (strlen(flag_names[i].name) == n && strncmp(flag_names[i].name, word, n) == 0)
			return &flag_names[i];
	}
	return NULL;
}

// A flag's number: decimal digits, at most 2^31 - 1.
static bool parse_value(const char *s, unsigned long *out)
{
	unsigned long v = 0;
	if (!*s || strlen(s) > 10)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	*out = v;
	return v <= 0x7fffffff;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_printable(unsigned char c)
{
	return c >= 0x20 && c < 0x7f;
}

// Splits buf in place at blanks; returns the number of words or -1 past max.
static int split_words(char *buf, char **words, int max)
{
	int n = 0;
	char *p = buf;
	while (*p) {
		while (is_blank(*p))
			*p++ = '\0';
		if (!*p)
			break;
		if (n == max)
			return -1;
		words[n++] = p;
		while (*p && !is_blank(*p))
			p++;
	}
	return n;
}

static int fail(const char **code, const char *c, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int fail(const char **code, const char *c, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	*code = c;
	return -1;
}

static int check_line(const char *line, size_t len, const char **code, char *err, size_t errlen)
{
	if (len >= PROTOCOL_REQUEST_MAX)
		return fail(code, PROTOCOL_E_TOO_LONG, err, errlen,
			"request line longer than %d bytes", PROTOCOL_REQUEST_MAX - 1);
	for (size_t i = 0; i < len; i++) {
		if (!is_printable((unsigned char)line[i]) && line[i] != '\t')
			return fail(code, PROTOCOL_E_USAGE, err, errlen,
				"request has a non-printable byte 0x%02x at offset %zu",
				(unsigned char)line[i], i);
	}
	return 0;
}

// Moves flags out of the word list into req->flags.
static int take_flags(struct protocol_request *req, char **words, int nwords, const char **code,
	char *err, size_t errlen)
{
	const struct protocol_verb_info *info = &verbs[req->verb];
	req->argc = 0;
	bool flags_over = false;
	for (int i = 1; i < nwords; i++) {
		if (flags_over || strncmp(words[i], "--", 2) != 0) {
			req->argv[req->argc++] = words[i];
			continue;
		}
		if (strcmp(words[i], "--") == 0) {
			flags_over = true;
			continue;
		}
		const char *value;
		const struct protocol_flag_name *f = flag_lookup(words[i], &value);
		if (!f || !(info->flags & f->flag))
			return fail(code, PROTOCOL_E_USAGE, err, errlen, "%s: unknown option %.*s",
				info->name, (int)strcspn(words[i], "="), words[i]);
		if ((f->value >= 0) != (value != NULL) ||
			(value && !parse_value(value, &req->values[f->value])))
			return fail(code, PROTOCOL_E_USAGE, err, errlen,
				f->value >= 0 ? "%s: %s takes a number: %s=N" : "%s: %s takes no value",
				info->name, f->name, f->name);
		req->flags |= f->flag;
	}
	return 0;
}

int protocol_parse_request(struct protocol_request *req, const char *line, size_t len,
	const char **code, char *err, size_t errlen)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (check_line(line, len, code, err, errlen) < 0)
		return -1;
	memcpy(req->buf, line, len);
	req->buf[len] = '\0';
	req->flags = 0;
	req->argc = 0;
	memset(req->values, 0, sizeof(req->values));

	char *words[PROTOCOL_WORDS_MAX];
	int nwords = split_words(req->buf, words, PROTOCOL_WORDS_MAX);
	if (nwords < 0)
		return fail(code, PROTOCOL_E_USAGE, err, errlen, "more than %d words in request",
			PROTOCOL_WORDS_MAX);
	if (nwords == 0)
		return fail(code, PROTOCOL_E_USAGE, err, errlen, "empty request");
	int verb = verb_lookup(words[0]);
	if (verb < 0)
		return fail(code, PROTOCOL_E_UNKNOWN_VERB, err, errlen, "unknown verb \"%.*s\"",
			PROTOCOL_NAME_MAX, words[0]);
	req->verb = (enum protocol_verb)verb;
	if (take_flags(req, words, nwords, code, err, errlen) < 0)
		return -1;
	const struct protocol_verb_info *info = &verbs[verb];
	if (req->argc < info->min_args || req->argc > info->max_args)
		return fail(code, PROTOCOL_E_USAGE, err, errlen, "usage: %s", info->usage);
	return 0;
}

char *protocol_default_control(bool root, const char *runtime_dir)
{
	char *path;
	if (root)
		return strdup(PROTOCOL_CONTROL_ROOT);
	if (!runtime_dir || runtime_dir[0] != '/')
		return NULL;
	if (asprintf(&path, "%s/baton/control.sock", runtime_dir) < 0)
		return NULL;
	return path;
}

bool protocol_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > PROTOCOL_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '_' || c == '.' || c == '-' || c == '@';
		if (!ok)
			return false;
	}
	return s[0] != '-' && s[0] != '.';
}

void protocol_buf_finish(struct protocol_buf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = buf->cap = 0;
	buf->failed = false;
}

static bool buf_grow(struct protocol_buf *buf, size_t more)
{
	if (buf->failed)
		return false;
	size_t cap = buf->cap ? buf->cap : 256;
	while (cap < buf->len + more + 1) {
		if (cap > SIZE_MAX / 2)
			goto error;
		cap *= 2;
	}
	char *data = realloc(buf->data, cap);
	if (!data)
		goto error;
	buf->data = data;
	buf->cap = cap;
	return true;
error:
	buf->failed = true;
	return false;
}

// Room for more bytes and a NUL; the common case, room already there, inline.
static inline bool buf_reserve(struct protocol_buf *buf, size_t more)
{
	if (!buf->failed && buf->len + more + 1 <= buf->cap)
		return true;
	return buf_grow(buf, more);
}

bool protocol_buf_reserve(struct protocol_buf *buf, size_t more)
{
	return buf_reserve(buf, more);
}

void protocol_buf_add(struct protocol_buf *buf, const void *data, size_t len)
{
	if (!buf_reserve(buf, len))
		return;
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

void protocol_buf_printf(struct protocol_buf *buf, const char *fmt, ...)
{
	// Formatted once where it is short, as nearly every field is.
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(small)) {
		protocol_buf_add(buf, small, (size_t)n);
		return;
	}
	if (n < 0 || !buf_reserve(buf, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf->len += (size_t)n;
}

void protocol_buf_consume(struct protocol_buf *buf, size_t n)
{
	if (n >= buf->len) {
		buf->len = 0;
		return;
	}
	memmove(buf->data, buf->data + n, buf->len - n);
	buf->len -= n;
}

void protocol_record_begin(struct protocol_buf *buf, const char *type)
{
	protocol_buf_add(buf, type, strlen(type));
}

// The bytes a value cannot hold bare: it is quoted when it has one, or is empty.
static bool needs_quote(unsigned char c)
{
	return c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f;
}

// A quoted value with its escapes, s of n bytes, written in place after one
// reservation for the most it can take: metrics write it fifty thousand times.
static void add_escaped(struct protocol_buf *buf, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (n > (SIZE_MAX - 2) / 4 || !buf_reserve(buf, 4 * n + 2))
		return;
	char *p = buf->data + buf->len;
	*p++ = '"';
	for (const char *end = s + n; s < end; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != 0x7f && c != '"' && c != '\\') {
			*p++ = (char)c;
			continue;
		}
		*p++ = '\\';
		if (c == '\n') {
			*p++ = 'n';
		} else if (c == '\t') {
			*p++ = 't';
		} else if (c < 0x20 || c == 0x7f) {
			*p++ = 'x';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		} else {
			*p++ = (char)c;
		}
	}
	*p++ = '"';
	*p = '\0';
	buf->len = (size_t)(p - buf->data);
}

// " KEY=VALUE", or " KEY="VALUE"" with quoted, written in place after one
// reservation, without printf: records are built by the thousand.
static void add_field(struct protocol_buf *buf, const char *key, size_t k, const char *value,
	size_t n, bool quoted)
{
	if (!buf_reserve(buf, k + n + 4))
		return;
	char *p = buf->data + buf->len;
	*p++ = ' ';
	memcpy(p, key, k);
	p += k;
	*p++ = '=';
	if (quoted)
		*p++ = '"';
	memcpy(p, value, n);
	p += n;
	if (quoted)
		*p++ = '"';
	*p = '\0';
	buf->len = (size_t)(p - buf->data);
}

void protocol_record_strn(struct protocol_buf *buf, const char *key, size_t keylen,
	const char *value)
{
	// One pass finds the length of a value, and whether it must be quoted
	// (a space, '=', or empty) or escaped as well.
	size_t n = 0;
	bool quoted = !value[0];
	for (unsigned char c; (c = (unsigned char)value[n]); n++) {
		if (!needs_quote(c))
			continue;
		if (c < ' ' || c == '"' || c == '\\' || c == 0x7f) {
			add_field(buf, key, keylen, "", 0, false);
			add_escaped(buf, value, n + strlen(value + n));
			return;
		}
		quoted = true;
	}
	add_field(buf, key, keylen, value, n, quoted);
}

void protocol_record_intn(struct protocol_buf *buf, const char *key, size_t keylen,
	long long value)
{
	char digits[24];
	size_t n = sizeof(digits);
	unsigned long long v = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (value < 0)
		digits[--n] = '-';
	add_field(buf, key, keylen, digits + n, sizeof(digits) - n, false);
}

void protocol_record_secs(struct protocol_buf *buf, const char *key, double secs)
{
	if (secs != secs)
		secs = 0;
	protocol_buf_printf(buf, " %s=%.3f", key, secs);
}

void protocol_record_end(struct protocol_buf *buf)
{
	protocol_buf_add(buf, "\n", 1);
}

void protocol_error(struct protocol_buf *buf, const char *code, const char *message)
{
	protocol_buf_printf(buf, "error %s ", code);
	for (const char *p = message; *p; p++) {
		char c = (*p == '\n' || *p == '\r') ? ' ' : *p;
		protocol_buf_add(buf, &c, 1);
	}
	protocol_buf_add(buf, "\n", 1);
}

// What a byte may be in a record, looked up once per byte: a reply of a
// thousand services is parsed byte by byte.
static unsigned char byte_class[256];

const unsigned char *protocol_byte_classes(void)
{
	if (byte_class['a'])
		return byte_class;
	for (int c = 0; c < 256; c++) {
		bool key = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
		bool plain = c != 0 && c != '"' && c != '\\';
		bool bare = plain && c != ' ' && c != '=';
		byte_class[c] = (unsigned char)((key ? PROTOCOL_BYTE_KEY : 0) |
			(bare ? PROTOCOL_BYTE_BARE : 0) | (plain ? PROTOCOL_BYTE_PLAIN : 0));
	}
	return byte_class;
}

static bool is_key_char(char c)
{
	return byte_class[(unsigned char)c] & PROTOCOL_BYTE_KEY;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

// Unescapes a quoted value that starts after the opening quote at *pp, writing
// into the same buffer (the output never outgrows the input). Up to its first
// backslash a value is where it is: most have none, and are only scanned.
static char *parse_quoted(char **pp)
{
	char *in = *pp, *start = in;
	while (byte_class[(unsigned char)*in] & PROTOCOL_BYTE_PLAIN)
		in++;
	char *out = in;
	for (;;) {
		char c = *in++;
		if (c == '\0')
			return NULL;
		if (c == '"')
			break;
		if (c != '\\') {
			*out++ = c;
			continue;
		}
		c = *in++;
		if (c == 'n') {
			*out++ = '\n';
		} else if (c == 't') {
			*out++ = '\t';
		} else if (c == '"' || c == '\\') {
			*out++ = c;
		} else if (c == 'x' && hex_value(in[0]) >= 0 && hex_value(in[1]) >= 0) {
			int v = hex_value(in[0]) * 16 + hex_value(in[1]);
			if (v == 0)
				return NULL;
			*out++ = (char)v;
			in += 2;
		} else {
			return NULL;
		}
	}
	if (*in != '\0' && *in != ' ')
		return NULL;
	*out = '\0';
	*pp = in;
	return start;
}

// The fields of a record, from p to its end, into rec. The count is kept in a
// local: a store through a char pointer would make the compiler load it again
// after every byte written.
static int parse_fields(struct protocol_record *rec, char *p)
{
	int n = 0;
	while (*p) {
		char *key = p;
		while (byte_class[(unsigned char)*p] & PROTOCOL_BYTE_KEY)
			p++;
		if (p == key || *p != '=' || n == PROTOCOL_FIELDS_MAX)
			return -1;
		*p++ = '\0';
		char *value = p;
		if (*p == '"') {
			p++;
			value = parse_quoted(&p);
			if (!value)
				return -1;
		} else {
			// Bare: it ends at a space or the end, and holds no quote, '=' or backslash.
			while (byte_class[(unsigned char)*p] & PROTOCOL_BYTE_BARE)
				p++;
			if (p == value || (*p && *p != ' '))
				return -1;
		}
		if (*p == ' ')
			*p++ = '\0';
		rec->fields[n].key = key;
		rec->fields[n].value = value;
		n++;
	}
	rec->nfields = n;
	return 0;
}

static int parse_error_line(struct protocol_record *rec, char *p)
{
	char *code = p;
	while (*p && *p != ' ')
		p++;
	if (p == code)
		return -1;
	if (*p)
		*p++ = '\0';
	rec->code = code;
	rec->message = p;
	return 0;
}

int protocol_parse_record(struct protocol_record *rec, const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len >= PROTOCOL_RECORD_MAX || memchr(line, '\0', len))
		return -1;
	protocol_byte_classes();
	memcpy(rec->buf, line, len);
	rec->buf[len] = '\0';
	rec->nfields = 0;
	rec->code = rec->message = NULL;

	char *p = rec->buf;
	rec->type = p;
	while (is_key_char(*p))
		p++;
	if (p == rec->type || (*p && *p != ' '))
		return -1;
	if (*p)
		*p++ = '\0';
	if (strcmp(rec->type, "error") == 0)
		return parse_error_line(rec, p);
	return parse_fields(rec, p);
}

const char *protocol_record_get(const struct protocol_record *rec, const char *key)
{
	for (int i = 0; i < rec->nfields; i++) {
		// Keys are a few bytes: compared here rather than by a call.
		const char *k = rec->fields[i].key, *q = key;
		while (*k && *k == *q)
			k++, q++;
		if (*k == *q)
			return rec->fields[i].value;
	}
	return NULL;
}

static const char *const int_keys[] = {
	"backlog", "batch", "clients", "conns", "draining", "exit", "fd", "from", "gen", "instance",
	"inode", "instances", "kills", "mtime", "orphans", "pid", "port", "procs", "protocol", "ready", "restarts", "rollbacks",
	"running", "services", "skipped", "failures", "check_failures", "spawned", "starting", "stopping", "uid", "upgrades",
	"upgrading_to", "memory", "memory_peak", "tasks", "strays", "oom_kills", "count",
	"canary",
};

static const char *const number_keys[] = {
	"age", "checked_ago", "checking_for", "elapsed", "grace", "kill_in", "ready_after",
	"replace_in", "restart_in", "since", "stop_delay",
	"stopped_for",
	"t", "uptime", "cpu",
};

static bool in_table(const char *const *table, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++) {
		const char *k = table[i], *q = key;
		while (*k && *k == *q)
			k++, q++;
		if (*k == *q)
			return true;
	}
	return false;
}

enum protocol_value_type protocol_field_type(const char *key)
{
	if (in_table(int_keys, sizeof(int_keys) / sizeof(int_keys[0]), key))
		return VALUE_INT;
	if (in_table(number_keys, sizeof(number_keys) / sizeof(number_keys[0]), key))
		return VALUE_NUMBER;
	return VALUE_STRING;
}
