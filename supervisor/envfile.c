#include "envfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parse.h"

struct parser {
	const char *p, *end;
	const char *name;
	unsigned line;
	char *err;
	size_t errlen;
	char *value; /* the value being read */
	size_t len, cap;
	struct envfile *out;
	size_t room;   /* entries out->env has room for, its NULL included */
	size_t *slots; /* a hash of the names: 1 + an index into out->env, or 0 */
	size_t nslots; /* a power of two */
};

static int fail(struct parser *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, unsigned line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "%s:%u: %s", p->name, line, msg);
	errno = EINVAL;
	return -1;
}

static int out_of_memory(struct parser *p)
{
	snprintf(p->err, p->errlen, "%s: out of memory", p->name);
	errno = ENOMEM;
	return -1;
}

static bool at_line_end(const struct parser *p)
{
	// A carriage return ends a line outside quotes, as for systemd.
	return p->p == p->end || *p->p == '\n' || *p->p == '\r';
}

static char next(struct parser *p)
{
	char c = *p->p++;
	if (c == '\n')
		p->line++;
	return c;
}

static int push(struct parser *p, char c)
{
	if (p->len + 1 >= p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 64;
		char *v = realloc(p->value, cap);
		if (!v)
			return out_of_memory(p);
		p->value = v;
		p->cap = cap;
	}
	p->value[p->len++] = c;
	return 0;
}

// Blanks, blank lines and comment lines, up to the next name.
static void skip_to_name(struct parser *p)
{
	while (p->p < p->end) {
		char c = *p->p;
		if (c == '#' || c == ';') {
			while (!at_line_end(p))
				p->p++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			next(p);
		} else {
			return;
		}
	}
}

// Writes the n bytes at s into out (outlen bytes), escaping all but printable ASCII.
static void show(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

static int check_name(struct parser *p, const char *s, size_t n, unsigned line)
{
	char shown[96];
	if (env_name_valid(s, n))
		return 0;
	show(s, n < 64 ? n : 64, shown, sizeof(shown));
	// systemd skips "export NAME=..." with a warning: say why it is refused.
	if (n > 7 && strncmp(s, "export", 6) == 0 && (s[6] == ' ' || s[6] == '\t'))
		return fail(p, line, "\"%s\" is not a variable name: write NAME=VALUE without export",
			shown);
	return fail(p, line,
		"\"%s\" is not a variable name: expected letters, digits and _, not starting "
		"with a digit",
		shown);
}

// A quoted part of a value, from its opening quote.
static int read_quoted(struct parser *p, const char *name)
{
	unsigned line = p->line;
	char quote = next(p);
	while (p->p < p->end) {
		char c = next(p);
		if (c == quote)
			return 0;
		if (quote == '"' && c == '\\' && p->p < p->end) {
			char e = next(p);
			if (e == '\n')
				continue;
			if (!strchr("\"\\$`", e) && push(p, '\\') < 0)
				return -1;
			c = e;
		}
		if (push(p, c) < 0)
			return -1;
	}
	return fail(p, line, "%s: unterminated %s quote", name, quote == '"' ? "double" : "single");
}

// The unquoted part of a value, to the end of its line, without its last blanks.
static int read_bare(struct parser *p)
{
	size_t keep = p->len;
	while (!at_line_end(p)) {
		char c = next(p);
		if (c == '\\') {
			// A backslash keeps the blanks before it, and a line end after
			// it is dropped.
			keep = p->len;
			if (p->p == p->end)
				break;
			c = next(p);
			if (c == '\n' || c == '\r')
				continue;
		} else if (c == ' ' || c == '\t') {
			if (push(p, c) < 0)
				return -1;
			continue;
		}
		if (push(p, c) < 0)
			return -1;
		keep = p->len;
	}
	p->len = keep;
	return 0;
}

// The value after the '=': quoted parts and blanks between them, then the rest.
static int read_value(struct parser *p, const char *name)
{
	p->len = 0;
	while (!at_line_end(p)) {
		char c = *p->p;
		if (c == ' ' || c == '\t') {
			p->p++;
			continue;
		}
		if (c != '\'' && c != '"')
			return read_bare(p);
		if (read_quoted(p, name) < 0)
			return -1;
	}
	return 0;
}

// The length of a UTF-8 sequence at s (n bytes left) of a character systemd
// accepts (no surrogate, no noncharacter), or 0.
static size_t utf8_char(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80 ? 1
		: s[0] >= 0xc2 && s[0] < 0xe0 ? 2
		: s[0] >= 0xe0 && s[0] < 0xf0 ? 3
		: s[0] >= 0xf0 && s[0] < 0xf5 ? 4
		: 0;
	if (len == 0 || len > n)
		return 0;
	uint32_t ch = len == 1 ? s[0] : s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		ch = ch << 6 | (s[i] & 0x3f);
	}
	static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
	if (ch < least[len] || ch > 0x10ffff || (ch >= 0xd800 && ch <= 0xdfff) ||
		(ch >= 0xfdd0 && ch <= 0xfdef) || (ch & 0xfffe) == 0xfffe)
		return 0;
	return len;
}

static bool utf8_valid(const char *s, size_t n)
{
	for (size_t i = 0, len; i < n; i += len) {
		if (!(len = utf8_char((const unsigned char *)s + i, n - i)))
			return false;
	}
	return true;
}

static size_t hash_name(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
	return (size_t)h;
}

// The slot of the name of n bytes at s: where it is, or the empty one it would take.
static size_t *slot_of(struct parser *p, const char *s, size_t n)
{
	for (size_t i = hash_name(s, n);; i++) {
		size_t *slot = &p->slots[i & (p->nslots - 1)];
		const char *e = *slot ? p->out->env[*slot - 1] : NULL;
		if (!e || (strncmp(e, s, n) == 0 && e[n] == '='))
			return slot;
	}
}

// Makes room for one more variable: in the list and, below half full, in the hash.
static int grow(struct parser *p)
{
	struct envfile *out = p->out;
	if (out->n + 2 > p->room) {
		size_t room = p->room ? 2 * p->room : 16;
		char **env = realloc(out->env, room * sizeof(char *));
		if (!env)
			return out_of_memory(p);
		out->env = env;
		p->room = room;
	}
	if (2 * (out->n + 1) <= p->nslots)
		return 0;
	size_t nslots = p->nslots ? 2 * p->nslots : 32;
	size_t *slots = calloc(nslots, sizeof(size_t));
	if (!slots)
		return out_of_memory(p);
	free(p->slots);
	p->slots = slots;
	p->nslots = nslots;
	for (size_t i = 0; i < out->n; i++)
		*slot_of(p, out->env[i], strcspn(out->env[i], "=")) = i + 1;
	return 0;
}

// Sets the variable: in place of an earlier one of the same name, else at the end.
static int set(struct parser *p, const char *name, size_t n)
{
	char *var = malloc(n + 1 + p->len + 1);
	if (!var || grow(p) < 0) {
		free(var);
		return out_of_memory(p);
	}
	memcpy(var, name, n);
	var[n] = '=';
	if (p->len > 0)
		memcpy(var + n + 1, p->value, p->len);
	var[n + 1 + p->len] = '\0';
	struct envfile *out = p->out;
	size_t *slot = slot_of(p, name, n);
	if (*slot) {
		free(out->env[*slot - 1]);
		out->env[*slot - 1] = var;
		return 0;
	}
	out->env[out->n++] = var;
	out->env[out->n] = NULL;
	*slot = out->n;
	return 0;
}

// One line that starts with a name: NAME=VALUE, or a line without '=', skipped.
static int read_assignment(struct parser *p)
{
	const char *name = p->p;
	unsigned line = p->line;
	while (!at_line_end(p) && *p->p != '=')
		p->p++;
	if (at_line_end(p))
		return 0;
	size_t n = (size_t)(p->p - name);
	while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		n--;
	p->p++;
	if (check_name(p, name, n, line) < 0)
		return -1;
	char shown[72];
	snprintf(shown, sizeof(shown), "%.*s", n < 64 ? (int)n : 64, name);
	if (read_value(p, shown) < 0)
		return -1;
	if (!utf8_valid(p->value, p->len))
		return fail(p, line, "%s: the value is not valid UTF-8", shown);
	return set(p, name, n);
}

// The line of the first NUL byte of text, or 0.
static unsigned nul_line(const char *text, size_t len)
{
	const char *nul = memchr(text, '\0', len);
	unsigned line = 1;
	for (const char *s = text; nul && s < nul; s++)
		line += *s == '\n';
	return nul ? line : 0;
}

int envfile_parse(const char *text, size_t len, const char *name, struct envfile *out, char *err,
	size_t errlen)
{
	struct parser p = {.p = text, .end = text + len, .name = name, .line = 1, .err = err,
		.errlen = errlen, .out = out};
	unsigned nul = nul_line(text, len);
	int rc = 0;
	out->env = NULL;
	out->n = 0;
	if (nul)
		rc = fail(&p, nul, "a NUL byte");
	else if (grow(&p) < 0)
		rc = -1;
	else
		out->env[0] = NULL;
	for (skip_to_name(&p); rc == 0 && p.p < p.end; skip_to_name(&p))
		rc = read_assignment(&p);
	free(p.value);
	free(p.slots);
	if (rc < 0) {
		int saved = errno;
		envfile_finish(out);
		errno = saved;
	}
	return rc;
}

static int read_failed(const char *path, char *err, size_t errlen)
{
	int saved = errno;
	snprintf(err, errlen, "%s: %s", path, strerror(saved));
	errno = saved;
	return -1;
}

// Reads all of fd, up to one byte past ENVFILE_MAX, into *text (allocated).
static ssize_t read_all(int fd, char **text)
{
	size_t len = 0, cap = 0;
	*text = NULL;
	for (;;) {
		if (len == cap) {
			cap = cap ? 2 * cap : 4096;
			cap = cap > ENVFILE_MAX + 1 ? ENVFILE_MAX + 1 : cap;
			char *t = realloc(*text, cap);
			if (!t)
				return -1;
			*text = t;
		}
		if (len == ENVFILE_MAX + 1)
			return (ssize_t)len;
		ssize_t n = read(fd, *text + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : (ssize_t)len;
		len += (size_t)n;
	}
}

int envfile_read(const char *path, struct envfile *out, char *err, size_t errlen)
{
	char *text;
	out->env = NULL;
	out->n = 0;
	// O_NONBLOCK: a FIFO or a device must not stall batond.
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return read_failed(path, err, errlen);
	ssize_t len = read_all(fd, &text);
	int saved = errno;
	close(fd);
	errno = saved;
	if (len < 0) {
		free(text);
		return read_failed(path, err, errlen);
	}
	if ((size_t)len > ENVFILE_MAX) {
		free(text);
		snprintf(err, errlen, "%s: larger than %uMiB", path, ENVFILE_MAX >> 20);
		errno = EFBIG;
		return -1;
	}
	int rc = envfile_parse(text, (size_t)len, path, out, err, errlen);
	saved = errno;
	free(text);
	errno = saved;
	return rc;
}

// Whether a value reads back the same without quotes.
static bool plain(const char *v)
{
	if (!*v)
		return false;
	for (; *v; v++) {
		char c = *v;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    strchr("_-.,/:@%+=", c)))
			return false;
	}
	return true;
}

int envfile_print(const struct envfile *e, FILE *out)
{
	for (size_t i = 0; i < e->n; i++) {
		const char *eq = strchr(e->env[i], '='), *v = eq + 1;
		fwrite(e->env[i], 1, (size_t)(v - e->env[i]), out);
		if (plain(v)) {
			fputs(v, out);
		} else {
			fputc('"', out);
			for (; *v; v++) {
				if (strchr("\"\\$`", *v))
					fputc('\\', out);
				fputc(*v, out);
			}
			fputc('"', out);
		}
		fputc('\n', out);
	}
	return ferror(out) ? -1 : 0;
}

void envfile_finish(struct envfile *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->env[i]);
	free(e->env);
	e->env = NULL;
	e->n = 0;
}
