#include "config_read.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"
#include "parse.h"
#include "protocol.h"

struct section {
	enum section_type type;
	unsigned line;
	unsigned key_lines[KEY_COUNT]; /* where each key was set, 0 if not */
	char *values[KEY_COUNT];       /* multi-line values, joined */
	struct socket_conf *socket;
	struct service_conf *service;
};

struct parser {
	const char *path;
	FILE *file;
	char *linebuf;
	size_t linecap;
	unsigned line;
	bool continuation;   /* the line being parsed continues the previous key */
	bool prev_key;       /* a key was set since the last section header */
	bool seen_header;    /* a section header was seen */
	struct section *section; /* NULL before the first section or after a bad one */
	struct section **sections;
	size_t nsections;
	struct config *config;
	struct config_error *errors;
	unsigned nerrors; /* found, even beyond those kept */
};

#define MAX_ERRORS 20

struct config_error {
	unsigned line;
	char *text;
};

static void add_error(struct parser *p, unsigned line, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_error(struct parser *p, unsigned line, const char *key, const char *fmt, ...)
{
	if (p->nerrors >= MAX_ERRORS) {
		p->nerrors++;
		return;
	}
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!p->errors && !(p->errors = calloc(MAX_ERRORS, sizeof(*p->errors))))
		return;
	struct config_error *e = &p->errors[p->nerrors++];
	e->line = line;
	int n;
	if (key)
		n = asprintf(&e->text, "%s:%u: %s: %s\n", p->path, line, key, msg);
	else
		n = asprintf(&e->text, "%s:%u: %s\n", p->path, line, msg);
	if (n < 0)
		e->text = NULL;
}

static const char *const section_names[] = {
	[SECTION_BATON] = "[baton]",
	[SECTION_SOCKET] = "[socket:NAME]",
	[SECTION_SERVICE] = "[service:NAME]",
};

static struct section *find_section(struct parser *p, enum section_type type, const char *name)
{
	for (size_t i = 0; i < p->nsections; i++) {
		struct section *s = p->sections[i];
		if (s->type != type)
			continue;
		if (type == SECTION_BATON ||
			(type == SECTION_SOCKET && strcmp(s->socket->name, name) == 0) ||
			(type == SECTION_SERVICE && strcmp(s->service->name, name) == 0))
			return s;
	}
	return NULL;
}

static int section_type_of(const char *header, enum section_type *type, const char **name)
{
	if (strcmp(header, "baton") == 0) {
		*type = SECTION_BATON;
		*name = "";
		return 0;
	}
	if (strncmp(header, "socket:", 7) == 0) {
		*type = SECTION_SOCKET;
		*name = header + 7;
		return 0;
	}
	if (strncmp(header, "service:", 8) == 0) {
		*type = SECTION_SERVICE;
		*name = header + 8;
		return 0;
	}
	return -1;
}

static int add_section_objects(struct parser *p, struct section *s, const char *name)
{
	struct config *c = p->config;
	if (s->type == SECTION_SOCKET) {
		s->socket = socket_conf_create(name, s->line);
		return s->socket ? config_append((void ***)&c->sockets, &c->nsockets, s->socket)
				 : -1;
	}
	if (s->type == SECTION_SERVICE) {
		s->service = service_conf_create(name, s->line);
		return s->service ? config_append((void ***)&c->services, &c->nservices, s->service)
				  : -1;
	}
	return 0;
}

// Starts a new section from a header line such as "[service:web]".
static void begin_section(struct parser *p, const char *header)
{
	enum section_type type;
	const char *name;
	p->section = NULL;
	if (section_type_of(header, &type, &name) < 0) {
		add_error(p, p->line, NULL,
			"unknown section [%s]; expected [baton], [socket:NAME] or [service:NAME]",
			header);
		return;
	}
	if (type != SECTION_BATON && !protocol_name_valid(name)) {
		add_error(p, p->line, NULL,
			"[%s]: a name is 1 to %d of A-Z a-z 0-9 _ . - @, not starting with - or .",
			header, PROTOCOL_NAME_MAX);
		return;
	}
	struct section *old = find_section(p, type, name);
	if (old) {
		add_error(p, p->line, NULL, "duplicate section [%s] (first at line %u)", header,
			old->line);
		return;
	}
	struct section *s = calloc(1, sizeof(*s));
	if (!s || config_append((void ***)&p->sections, &p->nsections, s) < 0) {
		free(s);
		add_error(p, p->line, NULL, "out of memory");
		return;
	}
	s->type = type;
	s->line = p->line;
	if (add_section_objects(p, s, name) < 0) {
		add_error(p, p->line, NULL, "out of memory");
		return;
	}
	p->section = s;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

// Looks at a raw line before inih does: notes section headers and continuations.
static void inspect_line(struct parser *p, char *line)
{
	bool indented = line[0] == ' ' || line[0] == '\t';
	char *t = trim(line);
	p->continuation = false;
	if (*t == '\0' || *t == ';' || *t == '#')
		return;
	if (indented && p->prev_key) {
		p->continuation = true;
		return;
	}
	if (*t != '[') {
		if (!strpbrk(t, "=:"))
			add_error(p, p->line, NULL, "expected KEY = VALUE or [SECTION], got \"%s\"", t);
		else
			p->prev_key = true;
		return;
	}
	p->prev_key = false;
	p->seen_header = true;
	char *end = strchr(t, ']');
	if (!end) {
		add_error(p, p->line, NULL, "section header without a closing ]");
		p->section = NULL;
		return;
	}
	*end = '\0';
	begin_section(p, t + 1);
}

static char *reader(char *str, int num, void *stream)
{
	struct parser *p = stream;
	ssize_t n = getline(&p->linebuf, &p->linecap, p->file);
	if (n < 0)
		return NULL;
	p->line++;
	size_t len = (size_t)n;
	if (len > 0 && p->linebuf[len - 1] == '\n')
		len--;
	if (len > 0 && p->linebuf[len - 1] == '\r')
		len--;
	p->linebuf[len] = '\0';
	size_t max = (size_t)num - 3;
	if (strlen(p->linebuf) != len) {
		add_error(p, p->line, NULL, "line contains a NUL byte");
		str[0] = '\0';
	} else if (len > max) {
		add_error(p, p->line, NULL,
			"line longer than %zu characters; continue a long value on indented lines",
			max);
		str[0] = '\0';
	} else {
		memcpy(str, p->linebuf, len);
		str[len] = '\n';
		str[len + 1] = '\0';
		// inih skips a UTF-8 byte order mark on the first line: so must we.
		bool bom = p->line == 1 && len >= 3 && memcmp(p->linebuf, "\xef\xbb\xbf", 3) == 0;
		char *copy = strdup(p->linebuf + (bom ? 3 : 0));
		if (copy)
			inspect_line(p, copy);
		free(copy);
		return str;
	}
	p->continuation = false;
	return str;
}

// Joins a continuation line onto a multi-line value and returns the whole.
static const char *join_value(struct parser *p, struct section *s, int k, const char *value)
{
	char *joined;
	if (!s->values[k])
		return NULL;
	if (asprintf(&joined, "%s %s", s->values[k], value) < 0) {
		add_error(p, p->line, config_keys[k].name, "out of memory");
		return NULL;
	}
	free(s->values[k]);
	s->values[k] = joined;
	return joined;
}

static void apply(struct parser *p, struct section *s, int k, const char *value, unsigned line)
{
	char err[384] = "";
	struct key_target t = {p->config, s->socket, s->service, line};
	if (config_keys[k].set(&t, value, err, sizeof(err)) < 0)
		add_error(p, line, config_keys[k].name, "%s", err);
}

static int handler(void *user, const char *section_name, const char *name, const char *value)
{
	(void)section_name;
	struct parser *p = user;
	struct section *s = p->section;
	if (!s) {
		if (!p->seen_header)
			add_error(p, p->line, name, "key outside of a section");
		return 1;
	}
	int k = config_keys_lookup(s->type, name);
	if (k < 0) {
		add_error(p, p->line, name, "unknown key in %s", section_names[s->type]);
		return 1;
	}
	if (p->continuation) {
		if (!config_keys[k].multiline)
			add_error(p, p->line, name,
				"only command, sockets, environment, environment_file and "
				"upgrade_gate continue on indented lines");
		else
			join_value(p, s, k, value);
		return 1;
	}
	if (s->key_lines[k]) {
		add_error(p, p->line, name, "set twice (first at line %u)", s->key_lines[k]);
		return 1;
	}
	s->key_lines[k] = p->line;
	free(s->values[k]);
	s->values[k] = strdup(value);
	// A multi-line value is read once whole, after the file (apply_multiline).
	if (!config_keys[k].multiline)
		apply(p, s, k, value, p->line);
	return 1;
}

// Sets the values that may continue on indented lines, now that they are whole.
static void apply_multiline(struct parser *p)
{
	for (size_t i = 0; i < p->nsections; i++) {
		struct section *s = p->sections[i];
		for (int k = 0; k < KEY_COUNT; k++) {
			if (config_keys[k].multiline && s->key_lines[k] && s->values[k])
				apply(p, s, k, s->values[k], s->key_lines[k]);
		}
	}
}

static const char *key_name(int k)
{
	return config_keys[k].name;
}

static unsigned key_line(const struct section *s, int k)
{
	return s->key_lines[k] ? s->key_lines[k] : s->line;
}

static bool addresses_clash(const struct address *a, const struct address *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == ADDRESS_UNIX)
		return strcmp(a->path, b->path) == 0;
	return a->port != 0 && a->port == b->port && strcmp(a->host, b->host) == 0;
}

static void check_socket(struct parser *p, struct section *s)
{
	struct socket_conf *sock = s->socket;
	if (!sock->listen) {
		// A listen with a bad value has its own error already.
		if (!s->key_lines[KEY_LISTEN])
			add_error(p, s->line, key_name(KEY_LISTEN),
				"missing in [socket:%s]; expected tcp:HOST:PORT, udp:HOST:PORT or "
				"unix:/PATH",
				sock->name);
		return;
	}
	static const int unix_only[] = {KEY_MODE, KEY_OWNER, KEY_SOCKET_GROUP};
	for (size_t i = 0; i < sizeof(unix_only) / sizeof(unix_only[0]); i++) {
		int k = unix_only[i];
		if (s->key_lines[k] && sock->addr.family != ADDRESS_UNIX)
			add_error(p, s->key_lines[k], key_name(k), "applies only to unix sockets");
	}
	for (size_t i = 0; i < p->config->nsockets; i++) {
		struct socket_conf *other = p->config->sockets[i];
		if (other == sock)
			break;
		if (other->listen && addresses_clash(&other->addr, &sock->addr))
			add_error(p, key_line(s, KEY_LISTEN), key_name(KEY_LISTEN),
				"%s is also the address of socket %s", sock->listen, other->name);
	}
}

static void check_service_sockets(struct parser *p, struct section *s)
{
	struct service_conf *c = s->service;
	if (c->nsockets > CONFIG_SOCKETS_MAX)
		add_error(p, key_line(s, KEY_SOCKETS), key_name(KEY_SOCKETS),
			"more than %d sockets", CONFIG_SOCKETS_MAX);
	for (size_t i = 0; i < c->nsockets; i++) {
		if (!config_socket(p->config, c->sockets[i]))
			add_error(p, key_line(s, KEY_SOCKETS), key_name(KEY_SOCKETS),
				"no [socket:%s] in this file", c->sockets[i]);
	}
	if (c->ready.mode == READY_FD && (size_t)c->ready.fd < 3 + c->nsockets)
		add_error(p, key_line(s, KEY_READY), key_name(KEY_READY),
			"fd %d is taken by socket %s; use fd:%zu or higher", c->ready.fd,
			c->sockets[c->ready.fd - 3], 3 + c->nsockets);
}

// With [baton] cgroup = none, there is no cgroup to write a limit to.
static void check_cgroup_limits(struct parser *p, const struct service_conf *c)
{
	const char *cgroup = p->config->cgroup;
	if (!cgroup || strcmp(cgroup, "none") != 0)
		return;
	for (int i = 0; i < CGROUP_LIMIT_COUNT; i++) {
		if (c->cgroup_limits[i].set)
			add_error(p, c->cgroup_limits[i].line, config_cgroup_limits[i].key,
				"needs a cgroup, but [baton] cgroup = none (line %u)",
				p->config->cgroup_line);
	}
}

static void check_service(struct parser *p, struct section *s)
{
	struct service_conf *c = s->service;
	if (!c->argv) {
		if (!s->key_lines[KEY_COMMAND])
			add_error(p, s->line, key_name(KEY_COMMAND),
				"missing in [service:%s]; expected the program to run and its "
				"arguments",
				c->name);
		return;
	}
	check_service_sockets(p, s);
	check_cgroup_limits(p, c);
	if (c->restart_delay_max < c->restart_delay)
		add_error(p, key_line(s, KEY_RESTART_DELAY_MAX), key_name(KEY_RESTART_DELAY_MAX),
			"shorter than restart_delay");
}

static void check_config(struct parser *p)
{
	for (size_t i = 0; i < p->nsections; i++) {
		struct section *s = p->sections[i];
		if (s->type == SECTION_SOCKET)
			check_socket(p, s);
		else if (s->type == SECTION_SERVICE)
			check_service(p, s);
	}
}

static void parser_finish(struct parser *p)
{
	for (size_t i = 0; i < p->nsections; i++) {
		for (int k = 0; k < KEY_COUNT; k++)
			free(p->sections[i]->values[k]);
		free(p->sections[i]);
	}
	free(p->sections);
	for (unsigned i = 0; p->errors && i < p->nerrors && i < MAX_ERRORS; i++)
		free(p->errors[i].text);
	free(p->errors);
	free(p->linebuf);
	if (p->file)
		fclose(p->file);
}

// Joins the errors, in the order of their lines, into one string.
static char *join_errors(struct parser *p)
{
	unsigned kept = p->nerrors < MAX_ERRORS ? p->nerrors : MAX_ERRORS;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	// A stable sort: errors of one line keep the order they were found in.
	for (unsigned i = 1; i < kept; i++) {
		for (unsigned j = i; j > 0 && p->errors[j - 1].line > p->errors[j].line; j--) {
			struct config_error t = p->errors[j];
			p->errors[j] = p->errors[j - 1];
			p->errors[j - 1] = t;
		}
	}
	for (unsigned i = 0; i < kept; i++)
		fputs(p->errors[i].text ? p->errors[i].text : "out of memory\n", f);
	if (p->nerrors > MAX_ERRORS)
		fprintf(f, "%s: %u more errors not shown\n", p->path, p->nerrors - MAX_ERRORS);
	fclose(f);
	return out;
}

// Reads a configuration from file, which it closes; name is what errors cite.
static struct config *load(const char *name, FILE *file, char **errors)
{
	struct parser p = {.path = name, .file = file};
	*errors = NULL;
	p.config = calloc(1, sizeof(*p.config));
	if (!p.config || !(p.config->path = strdup(name))) {
		free(p.config);
		fclose(file);
		*errors = strdup("out of memory\n");
		return NULL;
	}
	int rc = ini_parse_stream(reader, &p, handler, &p);
	if (rc == -2)
		add_error(&p, p.line, NULL, "out of memory");
	else if (ferror(p.file))
		add_error(&p, p.line, NULL, "read error: %s", strerror(errno));
	apply_multiline(&p);
	check_config(&p);
	if (p.nerrors > 0) {
		*errors = join_errors(&p);
		goto error;
	}
	parser_finish(&p);
	return p.config;
error:
	parser_finish(&p);
	config_destroy(p.config);
	return NULL;
}

struct config *config_load(const char *path, char **errors)
{
	FILE *file = fopen(path, "re");
	if (!file) {
		if (asprintf(errors, "%s: cannot open: %s\n", path, strerror(errno)) < 0)
			*errors = NULL;
		return NULL;
	}
	return load(path, file, errors);
}

struct config *config_load_text(const char *name, const char *text, char **errors)
{
	FILE *file = fmemopen((void *)text, strlen(text), "r");
	if (!file) {
		*errors = strdup("out of memory\n");
		return NULL;
	}
	return load(name, file, errors);
}
