#include "config.h"

#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"

enum section_type {
	SECTION_BATON,
	SECTION_SOCKET,
	SECTION_SERVICE,
};

enum key_id {
	KEY_CONTROL,
	KEY_CONTROL_GROUP,
	KEY_LISTEN,
	KEY_BACKLOG,
	KEY_MODE,
	KEY_COMMAND,
	KEY_SOCKETS,
	KEY_INSTANCES,
	KEY_READY,
	KEY_READY_TIMEOUT,
	KEY_STOP_SIGNAL,
	KEY_STOP_GRACE,
	KEY_STOP_DELAY,
	KEY_RESTART,
	KEY_RESTART_DELAY,
	KEY_RESTART_DELAY_MAX,
	KEY_START_LIMIT,
	KEY_UPGRADE,
	KEY_MAX_DRAINING,
	KEY_USER,
	KEY_GROUP,
	KEY_DIRECTORY,
	KEY_ENVIRONMENT,
	KEY_FORWARD_SIGNALS,
	KEY_COUNT,
};

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

struct key {
	const char *name;
	enum section_type type;
	bool multiline;
	int (*set)(struct parser *p, struct section *s, const char *value, char *err, size_t errlen);
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

static int set_string(char **field, const char *value)
{
	char *copy = strdup(value);
	if (!copy)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

static int set_control(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)s;
	if (value[0] != '/' || strlen(value) >= 108) {
		snprintf(err, errlen, "expected an absolute path shorter than 108 bytes, got \"%s\"",
			value);
		return -1;
	}
	return set_string(&p->config->control, value);
}

static int set_control_group(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)s;
	struct group *gr = getgrnam(value);
	if (!gr) {
		snprintf(err, errlen, "no such group \"%s\"", value);
		return -1;
	}
	p->config->has_control_group = true;
	p->config->control_gid = gr->gr_gid;
	return set_string(&p->config->control_group, value);
}

static int set_listen(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	if (parse_address(value, &s->socket->addr, err, errlen) < 0)
		return -1;
	return set_string(&s->socket->listen, value);
}

static int set_backlog(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	unsigned long n;
	if (parse_uint(value, 1, 65535, &n, err, errlen) < 0)
		return -1;
	s->socket->backlog = (unsigned)n;
	return 0;
}

static int set_mode(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	return parse_mode(value, &s->socket->mode, err, errlen);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

// Frees a definition's command words: one block (parse_words), or copies
// (config_set_words).
static void free_argv(struct service_conf *c)
{
	if (c->argv_owned)
		free_names(c->argv, c->argc);
	else
		free(c->argv);
}

static int set_command(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	struct service_conf *c = s->service;
	if (strlen(value) > CONFIG_COMMAND_MAX) {
		snprintf(err, errlen, "longer than %d characters", CONFIG_COMMAND_MAX);
		return -1;
	}
	size_t argc;
	char **argv = parse_words(value, &argc, err, errlen);
	if (!argv)
		return -1;
	free_argv(c);
	c->argv = argv;
	c->argc = argc;
	c->argv_owned = false;
	return set_string(&c->command, value);
}


static int set_sockets(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	struct service_conf *c = s->service;
	size_t n = 0;
	char **names = calloc(strlen(value) / 2 + 2, sizeof(char *));
	char *copy = strdup(value);
	if (!names || !copy)
		goto nomem;
	for (char *save, *tok = strtok_r(copy, " \t,", &save); tok;
		tok = strtok_r(NULL, " \t,", &save)) {
		if (!protocol_name_valid(tok)) {
			snprintf(err, errlen, "\"%s\" is not a socket name", tok);
			goto error;
		}
		for (size_t i = 0; i < n; i++) {
			if (strcmp(names[i], tok) == 0) {
				snprintf(err, errlen, "socket \"%s\" named twice", tok);
				goto error;
			}
		}
		if (!(names[n++] = strdup(tok)))
			goto nomem;
	}
	free(copy);
	free_names(c->sockets, c->nsockets);
	c->sockets = names;
	c->nsockets = n;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
error:
	free(copy);
	free_names(names, n);
	return -1;
}

static int set_instances(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	unsigned long n;
	if (parse_uint(value, 1, CONFIG_MAX_INSTANCES, &n, err, errlen) < 0)
		return -1;
	s->service->instances = (unsigned)n;
	return 0;
}

static int set_ready(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	return parse_ready(value, &s->service->ready, err, errlen);
}

static int set_duration(double *field, const char *value, char *err, size_t errlen)
{
	return parse_duration(value, field, err, errlen);
}

static int set_ready_timeout(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	if (set_duration(&s->service->ready_timeout, value, err, errlen) < 0)
		return -1;
	if (s->service->ready_timeout <= 0) {
		snprintf(err, errlen, "must be longer than 0s");
		return -1;
	}
	return 0;
}

static int set_stop_signal(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	return parse_signal(value, &s->service->stop_signal, err, errlen);
}

static int set_stop_grace(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	return set_duration(&s->service->stop_grace, value, err, errlen);
}

static int set_stop_delay(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	return set_duration(&s->service->stop_delay, value, err, errlen);
}

static int set_restart(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	return parse_restart(value, &s->service->restart, err, errlen);
}

static int set_restart_delay(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	return set_duration(&s->service->restart_delay, value, err, errlen);
}

static int set_restart_delay_max(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	return set_duration(&s->service->restart_delay_max, value, err, errlen);
}

static int set_start_limit(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	struct service_conf *c = s->service;
	return parse_start_limit(value, &c->start_limit_burst, &c->start_limit_interval, err,
		errlen);
}

static int set_upgrade(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	return parse_upgrade(value, &s->service->upgrade_batch, err, errlen);
}

static int set_max_draining(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	unsigned long n;
	if (parse_uint(value, 1, 1000, &n, err, errlen) < 0)
		return -1;
	s->service->max_draining = (unsigned)n;
	return 0;
}

static int user_from_number(const char *value, uid_t *uid)
{
	unsigned long n;
	char tmp[1];
	if (parse_uint(value, 0, 0x7fffffff, &n, tmp, sizeof(tmp)) < 0)
		return -1;
	*uid = (uid_t)n;
	return 0;
}

static int set_user(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	struct service_conf *c = s->service;
	struct passwd *pw = getpwnam(value);
	uid_t uid;
	if (!pw && user_from_number(value, &uid) == 0)
		pw = getpwuid(uid);
	if (!pw) {
		snprintf(err, errlen, "no such user \"%s\"", value);
		return -1;
	}
	c->has_user = true;
	c->uid = pw->pw_uid;
	c->gid = pw->pw_gid;
	int ngroups = 64;
	gid_t *groups = NULL;
	for (int tries = 0; tries < 4; tries++) {
		gid_t *g = realloc(groups, (size_t)ngroups * sizeof(gid_t));
		if (!g)
			break;
		groups = g;
		int n = ngroups;
		if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) >= 0) {
			free(c->groups);
			c->groups = groups;
			c->ngroups = n;
			return set_string(&c->user, value);
		}
		ngroups = n > ngroups ? n : ngroups * 2;
	}
	free(groups);
	snprintf(err, errlen, "cannot list the groups of user \"%s\"", value);
	return -1;
}

static int set_group(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	struct group *gr = getgrnam(value);
	uid_t gid;
	if (!gr && user_from_number(value, &gid) == 0)
		gr = getgrgid((gid_t)gid);
	if (!gr) {
		snprintf(err, errlen, "no such group \"%s\"", value);
		return -1;
	}
	s->service->has_group = true;
	s->service->group_gid = gr->gr_gid;
	return set_string(&s->service->group, value);
}

static int set_directory(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	if (value[0] != '/') {
		snprintf(err, errlen, "expected an absolute path, got \"%s\"", value);
		return -1;
	}
	return set_string(&s->service->directory, value);
}

static bool env_name_valid(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '_'))
			return false;
	}
	return true;
}

static int set_environment(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	struct service_conf *c = s->service;
	size_t n;
	char **words = parse_words(value, &n, err, errlen);
	if (!words)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(words[i], '=');
		if (!eq || !env_name_valid(words[i], (size_t)(eq - words[i]))) {
			snprintf(err, errlen, "expected NAME=VALUE, got \"%s\"", words[i]);
			free(words);
			return -1;
		}
		if (env_name_reserved(words[i])) {
			snprintf(err, errlen, "%.*s is set by batond for every process", (int)(eq - words[i]),
				words[i]);
			free(words);
			return -1;
		}
	}
	char **env = calloc(n + 1, sizeof(char *));
	if (!env)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		if (!(env[i] = strdup(words[i]))) {
			free_names(env, i);
			goto nomem;
		}
	}
	free(words);
	free_names(c->env, c->nenv);
	c->env = env;
	c->nenv = n;
	return 0;
nomem:
	free(words);
	snprintf(err, errlen, "out of memory");
	return -1;
}

static int set_forward_signals(struct parser *p, struct section *s, const char *value, char *err,
	size_t errlen)
{
	(void)p;
	uint64_t set = 0;
	if (strcmp(value, "none") != 0 && parse_signal_set(value, &set, err, errlen) < 0)
		return -1;
	s->service->forward_signals = set;
	return 0;
}

static const struct key keys[KEY_COUNT] = {
	[KEY_CONTROL] = {"control", SECTION_BATON, false, set_control},
	[KEY_CONTROL_GROUP] = {"control_group", SECTION_BATON, false, set_control_group},
	[KEY_LISTEN] = {"listen", SECTION_SOCKET, false, set_listen},
	[KEY_BACKLOG] = {"backlog", SECTION_SOCKET, false, set_backlog},
	[KEY_MODE] = {"mode", SECTION_SOCKET, false, set_mode},
	[KEY_COMMAND] = {"command", SECTION_SERVICE, true, set_command},
	[KEY_SOCKETS] = {"sockets", SECTION_SERVICE, true, set_sockets},
	[KEY_INSTANCES] = {"instances", SECTION_SERVICE, false, set_instances},
	[KEY_READY] = {"ready", SECTION_SERVICE, false, set_ready},
	[KEY_READY_TIMEOUT] = {"ready_timeout", SECTION_SERVICE, false, set_ready_timeout},
	[KEY_STOP_SIGNAL] = {"stop_signal", SECTION_SERVICE, false, set_stop_signal},
	[KEY_STOP_GRACE] = {"stop_grace", SECTION_SERVICE, false, set_stop_grace},
	[KEY_STOP_DELAY] = {"stop_delay", SECTION_SERVICE, false, set_stop_delay},
	[KEY_RESTART] = {"restart", SECTION_SERVICE, false, set_restart},
	[KEY_RESTART_DELAY] = {"restart_delay", SECTION_SERVICE, false, set_restart_delay},
	[KEY_RESTART_DELAY_MAX] = {"restart_delay_max", SECTION_SERVICE, false,
		set_restart_delay_max},
	[KEY_START_LIMIT] = {"start_limit", SECTION_SERVICE, false, set_start_limit},
	[KEY_UPGRADE] = {"upgrade", SECTION_SERVICE, false, set_upgrade},
	[KEY_MAX_DRAINING] = {"max_draining", SECTION_SERVICE, false, set_max_draining},
	[KEY_USER] = {"user", SECTION_SERVICE, false, set_user},
	[KEY_GROUP] = {"group", SECTION_SERVICE, false, set_group},
	[KEY_DIRECTORY] = {"directory", SECTION_SERVICE, false, set_directory},
	[KEY_ENVIRONMENT] = {"environment", SECTION_SERVICE, true, set_environment},
	[KEY_FORWARD_SIGNALS] = {"forward_signals", SECTION_SERVICE, false, set_forward_signals},
};

static const char *const section_names[] = {
	[SECTION_BATON] = "[baton]",
	[SECTION_SOCKET] = "[socket:NAME]",
	[SECTION_SERVICE] = "[service:NAME]",
};

static int key_lookup(enum section_type type, const char *name)
{
	for (int i = 0; i < KEY_COUNT; i++) {
		if (keys[i].type == type && strcmp(keys[i].name, name) == 0)
			return i;
	}
	return -1;
}

static struct service_conf *service_conf_create(const char *name, unsigned line)
{
	struct service_conf *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->refs = 1;
	c->line = line;
	c->name = strdup(name);
	c->env = calloc(1, sizeof(char *));
	if (!c->name || !c->env) {
		service_conf_unref(c);
		return NULL;
	}
	c->instances = CONFIG_INSTANCES;
	c->ready.mode = READY_NONE;
	c->ready_timeout = CONFIG_READY_TIMEOUT;
	c->stop_signal = SIGTERM;
	c->stop_grace = CONFIG_STOP_GRACE;
	c->restart = RESTART_ALWAYS;
	c->restart_delay = CONFIG_RESTART_DELAY;
	c->restart_delay_max = CONFIG_RESTART_DELAY_MAX;
	c->start_limit_burst = CONFIG_START_LIMIT_BURST;
	c->start_limit_interval = CONFIG_START_LIMIT_INTERVAL;
	c->max_draining = CONFIG_MAX_DRAINING;
	return c;
}

struct service_conf *service_conf_ref(struct service_conf *conf)
{
	conf->refs++;
	return conf;
}

void service_conf_unref(struct service_conf *c)
{
	if (!c || --c->refs > 0)
		return;
	free(c->name);
	free(c->command);
	free_argv(c);
	free_names(c->sockets, c->nsockets);
	free(c->user);
	free(c->groups);
	free(c->group);
	free(c->directory);
	free_names(c->env, c->nenv);
	free(c);
}

static bool str_equal(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool names_equal(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		if (strcmp(a[i], b[i]) != 0)
			return false;
	}
	return true;
}

bool service_conf_equal(const struct service_conf *a, const struct service_conf *b)
{
	return names_equal(a->argv, a->argc, b->argv, b->argc) &&
		names_equal(a->sockets, a->nsockets, b->sockets, b->nsockets) &&
		names_equal(a->env, a->nenv, b->env, b->nenv) && a->instances == b->instances &&
		memcmp(&a->ready, &b->ready, sizeof(a->ready)) == 0 &&
		a->ready_timeout == b->ready_timeout && a->stop_signal == b->stop_signal &&
		a->stop_grace == b->stop_grace && a->stop_delay == b->stop_delay &&
		a->restart == b->restart && a->restart_delay == b->restart_delay &&
		a->restart_delay_max == b->restart_delay_max &&
		a->start_limit_burst == b->start_limit_burst &&
		a->start_limit_interval == b->start_limit_interval &&
		a->upgrade_batch == b->upgrade_batch && a->max_draining == b->max_draining &&
		str_equal(a->user, b->user) && str_equal(a->group, b->group) &&
		str_equal(a->directory, b->directory) && a->forward_signals == b->forward_signals;
}

static void socket_conf_destroy(struct socket_conf *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->listen);
	free(s);
}

static struct socket_conf *socket_conf_create(const char *name, unsigned line)
{
	struct socket_conf *s = calloc(1, sizeof(*s));
	if (!s || !(s->name = strdup(name))) {
		free(s);
		return NULL;
	}
	s->line = line;
	s->backlog = CONFIG_BACKLOG;
	s->mode = 0666;
	return s;
}

void config_destroy(struct config *config)
{
	if (!config)
		return;
	for (size_t i = 0; i < config->nsockets; i++)
		socket_conf_destroy(config->sockets[i]);
	for (size_t i = 0; i < config->nservices; i++)
		service_conf_unref(config->services[i]);
	free(config->sockets);
	free(config->services);
	free(config->path);
	free(config->control);
	free(config->control_group);
	free(config);
}

struct service_conf *config_service(const struct config *config, const char *name)
{
	for (size_t i = 0; i < config->nservices; i++) {
		if (strcmp(config->services[i]->name, name) == 0)
			return config->services[i];
	}
	return NULL;
}

struct socket_conf *config_socket(const struct config *config, const char *name)
{
	for (size_t i = 0; i < config->nsockets; i++) {
		if (strcmp(config->sockets[i]->name, name) == 0)
			return config->sockets[i];
	}
	return NULL;
}

static int append_ptr(void ***array, size_t *n, void *item)
{
	void **a = realloc(*array, (*n + 1) * sizeof(void *));
	if (!a)
		return -1;
	a[(*n)++] = item;
	*array = a;
	return 0;
}

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
		return s->socket ? append_ptr((void ***)&c->sockets, &c->nsockets, s->socket) : -1;
	}
	if (s->type == SECTION_SERVICE) {
		s->service = service_conf_create(name, s->line);
		return s->service ? append_ptr((void ***)&c->services, &c->nservices, s->service)
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
	if (!s || append_ptr((void ***)&p->sections, &p->nsections, s) < 0) {
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
		add_error(p, p->line, keys[k].name, "out of memory");
		return NULL;
	}
	free(s->values[k]);
	s->values[k] = joined;
	return joined;
}

static void apply(struct parser *p, struct section *s, int k, const char *value, unsigned line)
{
	char err[384] = "";
	if (keys[k].set(p, s, value, err, sizeof(err)) < 0)
		add_error(p, line, keys[k].name, "%s", err);
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
	int k = key_lookup(s->type, name);
	if (k < 0) {
		add_error(p, p->line, name, "unknown key in %s", section_names[s->type]);
		return 1;
	}
	if (p->continuation) {
		if (!keys[k].multiline)
			add_error(p, p->line, name,
				"only command, sockets and environment continue on indented lines");
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
	if (!keys[k].multiline)
		apply(p, s, k, value, p->line);
	return 1;
}

// Sets the values that may continue on indented lines, now that they are whole.
static void apply_multiline(struct parser *p)
{
	for (size_t i = 0; i < p->nsections; i++) {
		struct section *s = p->sections[i];
		for (int k = 0; k < KEY_COUNT; k++) {
			if (keys[k].multiline && s->key_lines[k] && s->values[k])
				apply(p, s, k, s->values[k], s->key_lines[k]);
		}
	}
}

static const char *key_name(int k)
{
	return keys[k].name;
}

static unsigned key_line(const struct section *s, int k)
{
	return s->key_lines[k] ? s->key_lines[k] : s->line;
}

static bool same_address(const struct address *a, const struct address *b)
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
	if (s->key_lines[KEY_MODE] && sock->addr.family != ADDRESS_UNIX)
		add_error(p, s->key_lines[KEY_MODE], key_name(KEY_MODE),
			"applies only to unix sockets");
	for (size_t i = 0; i < p->config->nsockets; i++) {
		struct socket_conf *other = p->config->sockets[i];
		if (other == sock)
			break;
		if (other->listen && same_address(&other->addr, &sock->addr))
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

static void print_duration(FILE *out, const char *key, double secs)
{
	char buf[64];
	format_duration(secs, buf, sizeof(buf));
	fprintf(out, "%s = %s\n", key, buf);
}

static void print_ready(FILE *out, const struct ready_spec *r)
{
	char buf[64];
	switch (r->mode) {
	case READY_NONE:
		fprintf(out, "ready = none\n");
		break;
	case READY_NOTIFY:
		fprintf(out, "ready = notify\n");
		break;
	case READY_FD:
		fprintf(out, "ready = fd:%d\n", r->fd);
		break;
	case READY_DELAY:
		format_duration(r->delay, buf, sizeof(buf));
		fprintf(out, "ready = delay:%s\n", buf);
		break;
	}
}

static void print_socket(FILE *out, const struct socket_conf *s)
{
	fprintf(out, "\n[socket:%s]\nlisten = %s\nbacklog = %u\n", s->name, s->listen, s->backlog);
	if (s->addr.family == ADDRESS_UNIX)
		fprintf(out, "mode = %04o\n", (unsigned)s->mode);
}

// Lines config_print writes wrap past this, well under the reader's limit.
#define PRINT_LINE_MAX 160
// The reader's limit: inih's 200-byte line less \r, \n and \0.
#define INI_LINE_MAX 197

// inih trims these at a line's edges, and a ';' after one starts a comment.
static bool is_blank_char(char c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n';
}

/*
 * A word is printed as a run of segments, each in one of three forms, so
 * that parse_words reads it back unchanged:
 * - bare: a backslash before ' " and \, and before a ';' that starts the
 *   word, or a '#' that starts a line (comments to inih); no blank but \v \f
 *   \r inside the word, not before a ';';
 * - 'single quoted': anything but ';
 * - "double quoted": a backslash before " and before a \ that the reader
 *   would take for an escape (one before " \ $ ` or the closing quote).
 * A quoted blank may not be followed by a ';' in the same segment: inih
 * would take the rest of the line for a comment. A plan gives each character
 * its form, with SEG_NEW where a segment begins.
 */
enum segment { SEG_BARE, SEG_SINGLE, SEG_DOUBLE };
#define SEG_FORM 3
#define SEG_NEW 4

static const char *const seg_quote[] = {"", "'", "\""};

struct word {
	const char *w;
	unsigned char *plan; /* NULL: out of memory, blanks quoted one by one */
	bool line_start;     /* the word starts a line */
};

// Whether a backslash in double quotes must be doubled before c, the next
// character of the segment ('\0' where the segment ends).
static bool dq_escapes(char c)
{
	return !c || strchr("\"\\$`", c);
}

// What character i of w costs in form f, not counting a backslash before it
// in double quotes (dq_escapes); SIZE_MAX where it cannot be.
static size_t seg_cost(const char *w, size_t i, int f, bool line_start)
{
	char c = w[i];
	if (f == SEG_SINGLE)
		return c == '\'' ? SIZE_MAX : 1;
	if (f == SEG_DOUBLE)
		return c == '"' ? 2 : 1;
	if (c == ' ' || c == '\t' || c == '\n')
		return SIZE_MAX;
	if (is_blank_char(c))
		return i > 0 && w[i + 1] && w[i + 1] != ';' ? 1 : SIZE_MAX;
	bool first = i == 0 && (c == ';' || (c == '#' && line_start));
	return strchr("'\"\\", c) || first ? 2 : 1;
}

static int plan_at(const struct word *wd, size_t i)
{
	if (wd->plan)
		return wd->plan[i];
	const char *w = wd->w;
	if (is_blank_char(w[i]))
		return SEG_DOUBLE | SEG_NEW;
	return i == 0 || is_blank_char(w[i - 1]) ? SEG_BARE | SEG_NEW : SEG_BARE;
}

// Whether character i is written after a backslash.
static bool escaped_at(const struct word *wd, size_t i)
{
	const char *w = wd->w;
	int f = plan_at(wd, i) & SEG_FORM;
	if (f == SEG_DOUBLE && w[i] == '\\')
		return dq_escapes(w[i + 1] && plan_at(wd, i + 1) == SEG_DOUBLE ? w[i + 1] : '\0');
	return f != SEG_SINGLE && seg_cost(w, i, f, wd->line_start) == 2;
}

/*
 * Plans the shortest form of wd->w (n characters), fewer segments on a tie.
 * Costs count the quotes, a segment's two when it opens, and a backslash
 * doubled in double quotes when the character after it is known.
 */
static void plan_word(struct word *wd, size_t n)
{
	const char *w = wd->w;
	struct cost {
		size_t len, segs;
	} prev[3], cur[3];
	wd->plan = calloc(4 * n + 1, 1);
	if (!wd->plan || n == 0)
		return;
	unsigned char *back = wd->plan + n;
	for (size_t i = 0; i < n; i++) {
		for (int f = 0; f < 3; f++) {
			cur[f] = (struct cost){SIZE_MAX, SIZE_MAX};
			size_t c = seg_cost(w, i, f, wd->line_start), open = f == SEG_BARE ? 0 : 2;
			if (c == SIZE_MAX)
				continue;
			if (i == 0) {
				cur[f] = (struct cost){c + open, 1};
				back[f] = SEG_NEW;
				continue;
			}
			for (int p = 0; p < 3; p++) {
				if (prev[p].len == SIZE_MAX)
					continue;
				bool comment = f != SEG_BARE && is_blank_char(w[i - 1]) && w[i] == ';';
				bool cont = p == f && !comment;
				if (!cont && f == SEG_BARE && p == SEG_BARE)
					continue;
				struct cost go = {prev[p].len + c + (cont ? 0 : open), prev[p].segs + !cont};
				if (p == SEG_DOUBLE && w[i - 1] == '\\')
					go.len += dq_escapes(cont ? w[i] : '\0');
				if (go.len < cur[f].len || (go.len == cur[f].len && go.segs < cur[f].segs)) {
					cur[f] = go;
					back[3 * i + (size_t)f] = (unsigned char)(p | (cont ? 0 : SEG_NEW));
				}
			}
		}
		memcpy(prev, cur, sizeof(prev));
	}
	if (w[n - 1] == '\\' && prev[SEG_DOUBLE].len != SIZE_MAX)
		prev[SEG_DOUBLE].len++;
	int f = 0;
	for (int g = 1; g < 3; g++) {
		if (prev[g].len < prev[f].len || (prev[g].len == prev[f].len && prev[g].segs < prev[f].segs))
			f = g;
	}
	for (size_t i = n; i-- > 0;) {
		unsigned char b = back[3 * i + (size_t)f];
		wd->plan[i] = (unsigned char)(f | (b & SEG_NEW));
		f = b & SEG_FORM;
	}
}

static void word_init(struct word *wd, const char *w, bool line_start)
{
	wd->w = w;
	wd->line_start = line_start;
	plan_word(wd, strlen(w));
}

// What character i adds to the line, with the quotes that change there.
static size_t step_length(const struct word *wd, size_t i)
{
	int s = plan_at(wd, i);
	size_t n = 1 + escaped_at(wd, i);
	if (s & SEG_NEW) {
		n += strlen(seg_quote[s & SEG_FORM]);
		if (i > 0)
			n += strlen(seg_quote[plan_at(wd, i - 1) & SEG_FORM]);
	}
	return n;
}

// Whether the word may go on to the next line at its character i: a single
// space, between quotes, and no ';' or '#' to start that line.
static bool breaks_at(const struct word *wd, size_t i)
{
	const char *p = wd->w + i;
	return *p == ' ' && (plan_at(wd, i) & SEG_FORM) != SEG_BARE && p > wd->w &&
		!is_blank_char(p[-1]) && p[1] && !is_blank_char(p[1]) && p[1] != ';' && p[1] != '#';
}

// The length of the word from character i to where it may break next, or
// its end with the closing quote.
static size_t piece_length(const struct word *wd, size_t i)
{
	size_t n = 0;
	for (; wd->w[i]; i++) {
		if (breaks_at(wd, i))
			return n + step_length(wd, i) - 1;
		n += step_length(wd, i);
	}
	return n + (i > 0 ? strlen(seg_quote[plan_at(wd, i - 1) & SEG_FORM]) : 0);
}

// The length of the word written on one line.
static size_t word_length(const struct word *wd)
{
	if (!*wd->w)
		return 2;
	size_t n = 0, i = 0;
	for (; wd->w[i]; i++)
		n += step_length(wd, i);
	return n + strlen(seg_quote[plan_at(wd, i - 1) & SEG_FORM]);
}

/*
 * Writes the word as planned from column col, and returns the column it ends
 * at. With wrap, a word too long for the line goes on to indented lines at
 * single spaces between quotes: the reader joins lines with one space. (A
 * word had to have such spaces to be read at all.)
 */
static size_t write_word(FILE *out, const struct word *wd, size_t col, bool wrap)
{
	const char *w = wd->w;
	if (!*w) {
		fputs("''", out);
		return col + 2;
	}
	int f = SEG_BARE;
	for (size_t i = 0; w[i]; i++) {
		int s = plan_at(wd, i);
		if (s & SEG_NEW) {
			const char *close = i > 0 ? seg_quote[f] : "", *open = seg_quote[s & SEG_FORM];
			fprintf(out, "%s%s", close, open);
			col += strlen(close) + strlen(open);
		}
		f = s & SEG_FORM;
		if (wrap && breaks_at(wd, i) && col + 1 + piece_length(wd, i + 1) > INI_LINE_MAX) {
			fputs("\n ", out);
			col = 1;
			continue;
		}
		bool esc = escaped_at(wd, i);
		fprintf(out, esc ? "\\%c" : "%c", w[i]);
		col += 1 + esc;
	}
	fputs(seg_quote[f], out);
	return col + strlen(seg_quote[f]);
}

void config_write_words(FILE *out, const char *key, char *const *words, size_t count)
{
	size_t col = (size_t)fprintf(out, "%s", key);
	if (count == 0)
		fputs(" =", out);
	for (size_t i = 0; i < count; i++) {
		struct word wd;
		word_init(&wd, words[i], false);
		size_t len = word_length(&wd);
		if (i == 0) {
			// key=word where the blanks would not leave it room.
			bool tight = col + 3 + len > INI_LINE_MAX;
			fputs(tight ? "=" : " = ", out);
			col += tight ? 1 : 3;
		} else if (col + 1 + len > PRINT_LINE_MAX) {
			// Indented by three, or by one where three would not leave it room.
			bool tight = 3 + len > INI_LINE_MAX;
			fputs(tight ? "\n " : "\n   ", out);
			col = tight ? 1 : 3;
			free(wd.plan);
			word_init(&wd, words[i], true);
			len = word_length(&wd);
		} else {
			fputc(' ', out);
			col++;
		}
		col = write_word(out, &wd, col, col + len > INI_LINE_MAX);
		free(wd.plan);
	}
	fputc('\n', out);
}

char *config_words_text(char *const *words, size_t count)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	if (!out)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		const char *w = words[i];
		if (i > 0)
			fputc(' ', out);
		bool control = false;
		for (const char *p = w; *p; p++)
			control |= (unsigned char)*p < 0x20 || *p == 0x7f;
		if (!control) {
			struct word wd;
			word_init(&wd, w, false);
			write_word(out, &wd, 0, false);
			free(wd.plan);
			continue;
		}
		// Shown the way a shell would take it back: $'...'.
		fputs("$'", out);
		for (const char *p = w; *p; p++) {
			unsigned char c = (unsigned char)*p;
			const char *esc = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r"
				: c == '\\' ? "\\\\" : c == '\'' ? "\\'" : NULL;
			if (esc)
				fputs(esc, out);
			else if (c < 0x20 || c == 0x7f)
				fprintf(out, "\\x%02x", c);
			else
				fputc(c, out);
		}
		fputc('\'', out);
	}
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static void print_names(FILE *out, const char *key, char **names, size_t n)
{
	if (n > 0)
		config_write_words(out, key, names, n);
}

// key = value, or key=value where the blanks would make the line too long.
static void print_value(FILE *out, const char *key, const char *value)
{
	bool tight = strlen(key) + strlen(value) + 3 > PRINT_LINE_MAX;
	fprintf(out, tight ? "%s=%s\n" : "%s = %s\n", key, value);
}

void config_print_service(const struct service_conf *c, const char *name, FILE *out)
{
	fprintf(out, "\n[service:%s]\n", name ? name : c->name);
	config_write_words(out, "command", c->argv, c->argc);
	print_names(out, "sockets", c->sockets, c->nsockets);
	fprintf(out, "instances = %u\n", c->instances);
	print_ready(out, &c->ready);
	print_duration(out, "ready_timeout", c->ready_timeout);
	if (signal_name(c->stop_signal))
		fprintf(out, "stop_signal = %s\n", signal_name(c->stop_signal));
	else
		fprintf(out, "stop_signal = %d\n", c->stop_signal);
	print_duration(out, "stop_grace", c->stop_grace);
	print_duration(out, "stop_delay", c->stop_delay);
	fprintf(out, "restart = %s\n", restart_name(c->restart));
	print_duration(out, "restart_delay", c->restart_delay);
	print_duration(out, "restart_delay_max", c->restart_delay_max);
	if (c->start_limit_burst) {
		char buf[64];
		format_duration(c->start_limit_interval, buf, sizeof(buf));
		fprintf(out, "start_limit = %u/%s\n", c->start_limit_burst, buf);
	} else {
		fprintf(out, "start_limit = none\n");
	}
	if (c->upgrade_batch)
		fprintf(out, "upgrade = rolling:%u\n", c->upgrade_batch);
	else
		fprintf(out, "upgrade = all\n");
	fprintf(out, "max_draining = %u\n", c->max_draining);
	if (c->user)
		print_value(out, "user", c->user);
	if (c->group)
		print_value(out, "group", c->group);
	if (c->directory)
		print_value(out, "directory", c->directory);
	if (c->nenv)
		config_write_words(out, "environment", c->env, c->nenv);
	if (c->forward_signals) {
		fprintf(out, "forward_signals =");
		for (int sig = 1; sig < 64; sig++) {
			if (c->forward_signals & (1ull << sig))
				fprintf(out, " %s", signal_name(sig));
		}
		fprintf(out, "\n");
	}
}

void config_print_sockets(const struct config *config, FILE *out)
{
	fprintf(out, "[baton]\n");
	if (config->control)
		fprintf(out, "control = %s\n", config->control);
	if (config->control_group)
		fprintf(out, "control_group = %s\n", config->control_group);
	for (size_t i = 0; i < config->nsockets; i++)
		print_socket(out, config->sockets[i]);
}

void config_print(const struct config *config, FILE *out)
{
	config_print_sockets(config, out);
	for (size_t i = 0; i < config->nservices; i++)
		config_print_service(config->services[i], NULL, out);
}

int config_add_service(struct config *config, struct service_conf *conf)
{
	if (append_ptr((void ***)&config->services, &config->nservices, conf) < 0)
		return -1;
	service_conf_ref(conf);
	return 0;
}

int config_set_words(struct service_conf *conf, bool env, char **words, size_t n)
{
	char **copy = calloc(n + 1, sizeof(char *));
	if (!copy)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!(copy[i] = strdup(words[i]))) {
			free_names(copy, i);
			return -1;
		}
	}
	if (env) {
		free_names(conf->env, conf->nenv);
		conf->env = copy;
		conf->nenv = n;
		return 0;
	}
	free_argv(conf);
	conf->argv = copy;
	conf->argc = n;
	conf->argv_owned = true;
	return 0;
}
