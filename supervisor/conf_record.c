#include "conf_record.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ---- */

static void put_double(struct protocol_buf *b, const char *key, double v)
{
	char text[40];
	snprintf(text, sizeof(text), "%.17g", v);
	protocol_record_str(b, key, text);
}

static void put_opt(struct protocol_buf *b, const char *key, const char *value)
{
	if (value)
		protocol_record_str(b, key, value);
}

// Ends a record with length=N, then the N bytes of text and a newline.
static void end_with_bytes(struct protocol_buf *b, const char *text)
{
	size_t len = strlen(text);
	protocol_record_int(b, "length", (long long)len);
	protocol_record_end(b);
	protocol_buf_add(b, text, len);
	protocol_buf_add(b, "\n", 1);
}

static void put_ids(struct protocol_buf *b, const struct service_conf *c)
{
	protocol_record_int(b, "has_user", c->has_user);
	put_opt(b, "user", c->user);
	protocol_record_int(b, "uid", c->uid);
	protocol_record_int(b, "gid", c->gid);
	protocol_record_int(b, "has_group", c->has_group);
	put_opt(b, "group", c->group);
	protocol_record_int(b, "group_gid", c->group_gid);
}

static void put_timing(struct protocol_buf *b, const struct service_conf *c)
{
	protocol_record_int(b, "ready_mode", c->ready.mode);
	protocol_record_int(b, "ready_fd", c->ready.fd);
	put_double(b, "ready_delay", c->ready.delay);
	put_double(b, "ready_timeout", c->ready_timeout);
	protocol_record_int(b, "stop_signal", c->stop_signal);
	put_double(b, "stop_grace", c->stop_grace);
	put_double(b, "stop_delay", c->stop_delay);
	protocol_record_int(b, "restart", c->restart);
	put_double(b, "restart_delay", c->restart_delay);
	put_double(b, "restart_delay_max", c->restart_delay_max);
	protocol_record_int(b, "start_limit_burst", c->start_limit_burst);
	put_double(b, "start_limit_interval", c->start_limit_interval);
}

static void put_log(struct protocol_buf *b, const struct log_conf *l)
{
	char size[24];
	protocol_record_int(b, "log", l->sink);
	put_opt(b, "log_path", l->path);
	protocol_record_int(b, "log_json", l->json);
	snprintf(size, sizeof(size), "%" PRIu64, l->max_size);
	protocol_record_str(b, "log_max_size", size);
	protocol_record_int(b, "log_keep", l->keep);
	snprintf(size, sizeof(size), "%" PRIu64, l->buffer);
	protocol_record_str(b, "log_buffer", size);
	protocol_record_int(b, "log_drop", l->drop);
}

static void put_checks(struct protocol_buf *b, const struct service_conf *c)
{
	put_opt(b, "ready_check", c->ready_check.command);
	put_opt(b, "check", c->check.command);
	put_double(b, "check_interval", c->check_interval);
	put_double(b, "check_timeout", c->check_timeout);
	protocol_record_int(b, "check_failures", c->check_failures);
	put_double(b, "watchdog", c->watchdog);
	put_double(b, "upgrade_gate_timeout", c->upgrade_gate_timeout);
}

static void put_words(struct protocol_buf *b, size_t id, const char *list, char *const *words,
	size_t n)
{
	for (size_t i = 0; i < n; i++) {
		protocol_record_begin(b, "word");
		protocol_record_int(b, "conf", (long long)id);
		protocol_record_str(b, "list", list);
		end_with_bytes(b, words[i]);
	}
}

// The environment files as words: PATH, or -PATH for an optional one.
static void put_env_files(struct protocol_buf *b, size_t id, const struct service_conf *c)
{
	for (size_t i = 0; i < c->nenv_files; i++) {
		const struct env_file_conf *f = &c->env_files[i];
		char *word;
		if (asprintf(&word, "%s%s", f->optional ? "-" : "", f->path) < 0) {
			b->failed = true;
			return;
		}
		put_words(b, id, "env_file", &word, 1);
		free(word);
	}
}

// A setting as a word KEY=VALUE, in baton.conf's syntax.
static void put_setting(struct protocol_buf *b, size_t id, const char *key, const char *value)
{
	char word[96];
	char *one[] = {word};
	snprintf(word, sizeof(word), "%s=%s", key, value);
	put_words(b, id, "setting", one, 1);
}

// The limits of the cgroups that are set, a setting each, then the line of each.
static void put_cgroup_limits(struct protocol_buf *b, size_t id, const struct service_conf *c)
{
	char line[16];
	for (int i = 0; i < CGROUP_LIMIT_COUNT; i++) {
		if (c->cgroup_limits[i].set)
			put_setting(b, id, config_cgroup_limits[i].key, c->cgroup_limits[i].text);
	}
	for (int i = 0; i < CGROUP_LIMIT_COUNT; i++) {
		const struct cgroup_limit_conf *l = &c->cgroup_limits[i];
		if (!l->set || !l->line)
			continue;
		snprintf(line, sizeof(line), "%s=%u", config_cgroup_limits[i].key, l->line);
		char *one[] = {line};
		put_words(b, id, "cgroup_line", one, 1);
	}
}

// The limits, umask, nice and oom_score_adjust that are set, a word each.
static void put_settings(struct protocol_buf *b, size_t id, const struct service_conf *c)
{
	char value[64];
	for (int i = 0; i < LIMIT_COUNT; i++) {
		const struct limit_conf *l = &c->limits[i];
		if (!l->set)
			continue;
		format_limit(l->soft, l->hard, config_limits[i].size, value, sizeof(value));
		put_setting(b, id, config_limits[i].key, value);
	}
	if (c->has_umask) {
		snprintf(value, sizeof(value), "%04o", (unsigned)c->umask);
		put_setting(b, id, "umask", value);
	}
	if (c->has_nice) {
		snprintf(value, sizeof(value), "%d", c->nice);
		put_setting(b, id, "nice", value);
	}
	if (c->has_oom_score_adjust) {
		snprintf(value, sizeof(value), "%d", c->oom_score_adjust);
		put_setting(b, id, "oom_score_adjust", value);
	}
	if (c->start_nice) {
		snprintf(value, sizeof(value), "%u", c->start_nice);
		put_setting(b, id, "start_nice", value);
	}
}

void conf_record_write_service(struct protocol_buf *b, size_t id, const struct service_conf *c)
{
	char signals[24];
	snprintf(signals, sizeof(signals), "%" PRIu64, c->forward_signals);
	protocol_record_begin(b, "conf");
	protocol_record_int(b, "id", (long long)id);
	protocol_record_str(b, "name", c->name);
	protocol_record_int(b, "line", c->line);
	protocol_record_int(b, "instances", c->instances);
	put_timing(b, c);
	protocol_record_int(b, "upgrade_batch", c->upgrade_batch);
	protocol_record_int(b, "max_draining", c->max_draining);
	put_ids(b, c);
	put_opt(b, "directory", c->directory);
	protocol_record_str(b, "forward_signals", signals);
	put_log(b, &c->log);
	put_checks(b, c);
	end_with_bytes(b, c->command);
	put_words(b, id, "argv", c->argv, c->argc);
	put_words(b, id, "env", c->env, c->nenv);
	put_words(b, id, "socket", c->sockets, c->nsockets);
	put_words(b, id, "ready_check", c->ready_check.argv, c->ready_check.argc);
	put_words(b, id, "check", c->check.argv, c->check.argc);
	// The gate's text as its bytes: continued lines make it longer than a record holds.
	if (c->upgrade_gate.command)
		put_words(b, id, "gate_command", &c->upgrade_gate.command, 1);
	put_words(b, id, "upgrade_gate", c->upgrade_gate.argv, c->upgrade_gate.argc);
	// Supplementary groups, as many as the user has: a word each.
	for (int i = 0; i < c->ngroups; i++) {
		char gid[16];
		snprintf(gid, sizeof(gid), "%u", (unsigned)c->groups[i]);
		char *one[] = {gid};
		put_words(b, id, "group", one, 1);
	}
	put_env_files(b, id, c);
	put_settings(b, id, c);
	put_cgroup_limits(b, id, c);
}

static void write_socket(struct protocol_buf *b, const struct socket_conf *s)
{
	protocol_record_begin(b, "socket_conf");
	protocol_record_str(b, "name", s->name);
	protocol_record_str(b, "listen", s->listen);
	protocol_record_int(b, "backlog", s->backlog);
	protocol_record_int(b, "mode", s->mode);
	if (s->owner) {
		protocol_record_str(b, "owner", s->owner);
		protocol_record_int(b, "uid", s->uid);
	}
	if (s->group) {
		protocol_record_str(b, "group", s->group);
		protocol_record_int(b, "gid", s->gid);
	}
	protocol_record_int(b, "line", s->line);
	protocol_record_end(b);
}

void conf_record_write_config(struct protocol_buf *b, const struct config *c)
{
	protocol_record_begin(b, "config");
	put_opt(b, "path", c->path);
	put_opt(b, "control", c->control);
	put_opt(b, "control_group", c->control_group);
	protocol_record_int(b, "has_control_group", c->has_control_group);
	protocol_record_int(b, "control_gid", c->control_gid);
	put_opt(b, "cgroup", c->cgroup);
	if (c->cgroup_line)
		protocol_record_int(b, "cgroup_line", c->cgroup_line);
	protocol_record_end(b);
	for (size_t i = 0; i < c->nsockets; i++)
		write_socket(b, c->sockets[i]);
}

/* ---- reading ---- */

// A field read: strict, so that a state from another build is refused
// rather than misread.
struct fields {
	const struct protocol_record *rec;
	bool bad;
};

static const char *get(struct fields *f, const char *key)
{
	const char *v = protocol_record_get(f->rec, key);
	if (!v)
		f->bad = true;
	return v ? v : "0";
}

static unsigned long long get_uint(struct fields *f, const char *key)
{
	const char *v = get(f, key);
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || *end || *v == '-')
		f->bad = true;
	return n;
}

static int get_int(struct fields *f, const char *key)
{
	const char *v = get(f, key);
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || *end || n < -1 || n > 0x7fffffff)
		f->bad = true;
	return (int)n;
}

static double get_double(struct fields *f, const char *key)
{
	const char *v = get(f, key);
	char *end;
	double d = strtod(v, &end);
	if (*end || d != d)
		f->bad = true;
	return d;
}

// Copies an optional string field; false when out of memory.
static bool copy_opt(const struct protocol_record *rec, const char *key, char **out)
{
	const char *v = protocol_record_get(rec, key);
	*out = v ? strdup(v) : NULL;
	return !v || *out;
}

static void get_timing(struct fields *f, struct service_conf *c)
{
	c->ready.mode = (enum ready_mode)get_uint(f, "ready_mode");
	c->ready.fd = get_int(f, "ready_fd");
	c->ready.delay = get_double(f, "ready_delay");
	c->ready_timeout = get_double(f, "ready_timeout");
	c->stop_signal = get_int(f, "stop_signal");
	c->stop_grace = get_double(f, "stop_grace");
	c->stop_delay = get_double(f, "stop_delay");
	c->restart = (enum restart_policy)get_uint(f, "restart");
	c->restart_delay = get_double(f, "restart_delay");
	c->restart_delay_max = get_double(f, "restart_delay_max");
	c->start_limit_burst = (unsigned)get_uint(f, "start_limit_burst");
	c->start_limit_interval = get_double(f, "start_limit_interval");
	if (c->ready.mode > READY_EXEC || c->restart > RESTART_NEVER)
		f->bad = true;
}

static bool get_ids(struct fields *f, struct service_conf *c)
{
	c->has_user = get_uint(f, "has_user") != 0;
	c->uid = (uid_t)get_uint(f, "uid");
	c->gid = (gid_t)get_uint(f, "gid");
	c->has_group = get_uint(f, "has_group") != 0;
	c->group_gid = (gid_t)get_uint(f, "group_gid");
	return copy_opt(f->rec, "user", &c->user) &&
		copy_opt(f->rec, "group", &c->group) &&
		copy_opt(f->rec, "directory", &c->directory);
}

// A state written before the checks carries none: the defaults then.
static bool get_checks(struct fields *f, struct service_conf *c)
{
	if (!protocol_record_get(f->rec, "check_interval"))
		return true;
	c->check_interval = get_double(f, "check_interval");
	c->check_timeout = get_double(f, "check_timeout");
	c->check_failures = (unsigned)get_uint(f, "check_failures");
	c->watchdog = get_double(f, "watchdog");
	// A state written before the gate's timeout carries none: the default then.
	if (protocol_record_get(f->rec, "upgrade_gate_timeout"))
		c->upgrade_gate_timeout = get_double(f, "upgrade_gate_timeout");
	return copy_opt(f->rec, "ready_check", &c->ready_check.command) &&
		copy_opt(f->rec, "check", &c->check.command);
}

// A state written before the log keys carries none: the defaults then.
static bool get_log(struct fields *f, struct log_conf *l)
{
	if (!protocol_record_get(f->rec, "log"))
		return true;
	l->sink = (enum log_sink)get_uint(f, "log");
	l->json = get_uint(f, "log_json") != 0;
	l->max_size = get_uint(f, "log_max_size");
	l->keep = (unsigned)get_uint(f, "log_keep");
	l->buffer = get_uint(f, "log_buffer");
	l->drop = get_uint(f, "log_drop") != 0;
	if (l->sink > LOG_INHERIT || (l->sink == LOG_FILE) != !!protocol_record_get(f->rec, "log_path"))
		f->bad = true;
	return copy_opt(f->rec, "log_path", &l->path);
}

struct service_conf *conf_record_read_service(const struct protocol_record *rec, char *command)
{
	struct fields f = {rec, false};
	struct service_conf *c = service_conf_create(get(&f, "name"), (unsigned)get_uint(&f, "line"));
	if (!c) {
		free(command);
		return NULL;
	}
	c->command = command;
	c->instances = (unsigned)get_uint(&f, "instances");
	get_timing(&f, c);
	c->upgrade_batch = (unsigned)get_uint(&f, "upgrade_batch");
	c->max_draining = (unsigned)get_uint(&f, "max_draining");
	c->forward_signals = get_uint(&f, "forward_signals");
	if (!get_ids(&f, c) || !get_log(&f, &c->log) || !get_checks(&f, c) || f.bad || !command) {
		service_conf_unref(c);
		return NULL;
	}
	return c;
}

// Appends word to a NULL-terminated list of n words.
static int append_word(char ***list, size_t *n, char *word)
{
	char **l = realloc(*list, (*n + 2) * sizeof(char *));
	if (!l) {
		free(word);
		return -1;
	}
	l[(*n)++] = word;
	l[*n] = NULL;
	*list = l;
	return 0;
}

// Appends the gid written in word (freed).
static int add_group(struct service_conf *c, char *word)
{
	char *end;
	errno = 0;
	unsigned long gid = strtoul(word, &end, 10);
	bool bad = errno || end == word || *end || *word == '-' || gid > 0xfffffffful ||
		c->ngroups == 0x7fffffff;
	free(word);
	gid_t *groups = bad ? NULL : realloc(c->groups, ((size_t)c->ngroups + 1) * sizeof(gid_t));
	if (!groups)
		return -1;
	groups[c->ngroups++] = (gid_t)gid;
	c->groups = groups;
	return 0;
}

static int set_limit(struct limit_conf *l, bool size, const char *value)
{
	char err[1];
	if (parse_limit(value, size, &l->soft, &l->hard, err, sizeof(err)) < 0)
		return -1;
	l->set = true;
	return 0;
}

static int set_int(bool *has, int *field, const char *value, long min, long max)
{
	char err[1];
	long n;
	if (parse_int(value, min, max, &n, err, sizeof(err)) < 0)
		return -1;
	*has = true;
	*field = (int)n;
	return 0;
}

static int set_umask(struct service_conf *c, const char *value)
{
	char err[1];
	mode_t mask;
	if (parse_umask(value, &mask, err, sizeof(err)) < 0)
		return -1;
	c->has_umask = true;
	c->umask = mask;
	return 0;
}

// The value of word if it is KEY=VALUE, else NULL.
static const char *value_of(const char *word, const char *key)
{
	size_t n = strlen(key);
	return strncmp(word, key, n) == 0 && word[n] == '=' ? word + n + 1 : NULL;
}

// Sets what a word KEY=VALUE of put_settings or put_cgroup_limits says.
static int add_setting(struct service_conf *c, const char *word)
{
	char err[1];
	const char *v;
	for (int i = 0; i < LIMIT_COUNT; i++) {
		if ((v = value_of(word, config_limits[i].key)))
			return set_limit(&c->limits[i], config_limits[i].size, v);
	}
	for (int i = 0; i < CGROUP_LIMIT_COUNT; i++) {
		enum cgroup_limit_id id = (enum cgroup_limit_id)i;
		if ((v = value_of(word, config_cgroup_limits[id].key)))
			return config_set_cgroup_limit(c, id, v, err, sizeof(err));
	}
	if ((v = value_of(word, "umask")))
		return set_umask(c, v);
	if ((v = value_of(word, "nice")))
		return set_int(&c->has_nice, &c->nice, v, CONFIG_NICE_MIN, CONFIG_NICE_MAX);
	if ((v = value_of(word, "oom_score_adjust")))
		return set_int(&c->has_oom_score_adjust, &c->oom_score_adjust, v,
			CONFIG_OOM_SCORE_ADJUST_MIN, CONFIG_OOM_SCORE_ADJUST_MAX);
	if ((v = value_of(word, "start_nice"))) {
		bool set;
		int n;
		if (set_int(&set, &n, v, 0, 19) < 0)
			return -1;
		c->start_nice = (unsigned)n;
		return 0;
	}
	return -1;
}

// Sets the line of a cgroup limit set before, from a word KEY=LINE.
static int add_cgroup_line(struct service_conf *c, const char *word)
{
	char err[1];
	const char *v;
	unsigned long line;
	for (int i = 0; i < CGROUP_LIMIT_COUNT; i++) {
		struct cgroup_limit_conf *l = &c->cgroup_limits[i];
		if (!(v = value_of(word, config_cgroup_limits[i].key)))
			continue;
		if (!l->set || parse_uint(v, 1, UINT_MAX, &line, err, sizeof(err)) < 0)
			return -1;
		l->line = (unsigned)line;
		return 0;
	}
	return -1;
}

// The gate's text (taken), once.
static int set_gate_command(struct service_conf *c, char *word)
{
	if (c->upgrade_gate.command) {
		free(word);
		return -1;
	}
	c->upgrade_gate.command = word;
	return 0;
}

// Takes word (freed) of the list setting, cgroup_line or env_file.
static int add_other(struct service_conf *c, const char *list, char *word)
{
	int rc = -1;
	if (strcmp(list, "setting") == 0)
		rc = add_setting(c, word);
	else if (strcmp(list, "cgroup_line") == 0)
		rc = add_cgroup_line(c, word);
	else if (word[word[0] == '-'] == '/')
		rc = config_add_env_file(c, word);
	free(word);
	return rc;
}

int conf_record_add_word(struct service_conf *c, const char *list, char *word)
{
	if (!word)
		return -1;
	if (strcmp(list, "group") == 0)
		return add_group(c, word);
	if (strcmp(list, "setting") == 0 || strcmp(list, "env_file") == 0 ||
		strcmp(list, "cgroup_line") == 0)
		return add_other(c, list, word);
	if (strcmp(list, "ready_check") == 0)
		return append_word(&c->ready_check.argv, &c->ready_check.argc, word);
	if (strcmp(list, "check") == 0)
		return append_word(&c->check.argv, &c->check.argc, word);
	if (strcmp(list, "upgrade_gate") == 0)
		return append_word(&c->upgrade_gate.argv, &c->upgrade_gate.argc, word);
	if (strcmp(list, "gate_command") == 0)
		return set_gate_command(c, word);
	if (strcmp(list, "env") == 0)
		return append_word(&c->env, &c->nenv, word);
	if (strcmp(list, "socket") == 0)
		return append_word(&c->sockets, &c->nsockets, word);
	if (strcmp(list, "argv") != 0) {
		free(word);
		return -1;
	}
	if (c->argv && !c->argv_owned)
		service_conf_free_argv(c);
	c->argv_owned = true;
	return append_word(&c->argv, &c->argc, word);
}

// [baton] cgroup, none or a path, where it was set; a state written before it has neither.
static bool get_cgroup(struct fields *f, struct config *c)
{
	char err[1];
	bool is_auto;
	if (protocol_record_get(f->rec, "cgroup_line"))
		c->cgroup_line = (unsigned)get_uint(f, "cgroup_line");
	if (!copy_opt(f->rec, "cgroup", &c->cgroup))
		return false;
	if (c->cgroup && (parse_cgroup(c->cgroup, &is_auto, err, sizeof(err)) < 0 || is_auto))
		f->bad = true;
	return true;
}

struct config *conf_record_read_config(const struct protocol_record *rec)
{
	struct fields f = {rec, false};
	struct config *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->has_control_group = get_uint(&f, "has_control_group") != 0;
	c->control_gid = (gid_t)get_uint(&f, "control_gid");
	if (!copy_opt(rec, "path", &c->path) || !copy_opt(rec, "control", &c->control) ||
		!copy_opt(rec, "control_group", &c->control_group) || !get_cgroup(&f, c) || f.bad) {
		config_destroy(c);
		return NULL;
	}
	return c;
}

int conf_record_add_socket(struct config *config, const struct protocol_record *rec)
{
	struct fields f = {rec, false};
	char err[256];
	struct socket_conf *s = socket_conf_create(get(&f, "name"), (unsigned)get_uint(&f, "line"));
	if (!s)
		return -1;
	s->backlog = (unsigned)get_uint(&f, "backlog");
	s->mode = (mode_t)get_uint(&f, "mode");
	// A state written before owner and group carries neither.
	if (protocol_record_get(rec, "owner"))
		s->uid = (uid_t)get_uint(&f, "uid");
	if (protocol_record_get(rec, "group"))
		s->gid = (gid_t)get_uint(&f, "gid");
	if (f.bad || !copy_opt(rec, "listen", &s->listen) || !s->listen ||
		!copy_opt(rec, "owner", &s->owner) || !copy_opt(rec, "group", &s->group) ||
		parse_address(s->listen, &s->addr, err, sizeof(err)) < 0 ||
		config_append((void ***)&config->sockets, &config->nsockets, s) < 0) {
		socket_conf_destroy(s);
		return -1;
	}
	return 0;
}
