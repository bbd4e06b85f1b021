#include "config_keys.h"

#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logfile.h"
#include "parse.h"
#include "protocol.h"

static int set_string(char **field, const char *value)
{
	char *copy = strdup(value);
	if (!copy)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

static int set_control(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	if (value[0] != '/' || strlen(value) >= 108) {
		snprintf(err, errlen, "expected an absolute path shorter than 108 bytes, got \"%s\"",
			value);
		return -1;
	}
	return set_string(&t->config->control, value);
}

static int set_control_group(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	struct group *gr = getgrnam(value);
	if (!gr) {
		snprintf(err, errlen, "no such group \"%s\"", value);
		return -1;
	}
	t->config->has_control_group = true;
	t->config->control_gid = gr->gr_gid;
	return set_string(&t->config->control_group, value);
}

// auto is the default: NULL.
static int set_cgroup(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	bool is_auto;
	if (parse_cgroup(value, &is_auto, err, errlen) < 0)
		return -1;
	t->config->cgroup_line = t->line;
	if (!is_auto)
		return set_string(&t->config->cgroup, value);
	free(t->config->cgroup);
	t->config->cgroup = NULL;
	return 0;
}

static int set_listen(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	if (parse_address(value, &t->socket->addr, err, errlen) < 0)
		return -1;
	return set_string(&t->socket->listen, value);
}

static int set_backlog(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	unsigned long n;
	if (parse_uint(value, 1, 65535, &n, err, errlen) < 0)
		return -1;
	t->socket->backlog = (unsigned)n;
	return 0;
}

static int set_mode(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return parse_mode(value, &t->socket->mode, err, errlen);
}

static int set_command(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	struct service_conf *c = t->service;
	if (strlen(value) > CONFIG_COMMAND_MAX) {
		snprintf(err, errlen, "longer than %d characters", CONFIG_COMMAND_MAX);
		return -1;
	}
	size_t argc;
	char **argv = parse_words(value, &argc, err, errlen);
	if (!argv)
		return -1;
	service_conf_free_argv(c);
	c->argv = argv;
	c->argc = argc;
	c->argv_owned = false;
	return set_string(&c->command, value);
}

static int set_sockets(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	struct service_conf *c = t->service;
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
	config_free_names(c->sockets, c->nsockets);
	c->sockets = names;
	c->nsockets = n;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
error:
	free(copy);
	config_free_names(names, n);
	return -1;
}

static int set_instances(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	unsigned long n;
	if (parse_uint(value, 1, CONFIG_MAX_INSTANCES, &n, err, errlen) < 0)
		return -1;
	t->service->instances = (unsigned)n;
	return 0;
}

// A command's words, for a check or a gate set on line.
static int set_check_words(struct check_conf *c, const char *command, unsigned line, char *err,
	size_t errlen)
{
	size_t n;
	char **words = parse_words(command, &n, err, errlen);
	if (!words)
		return -1;
	int rc = check_conf_set(c, command, words, n);
	free(words);
	if (rc < 0)
		snprintf(err, errlen, "out of memory");
	c->line = line;
	return rc;
}

static int set_ready(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	struct service_conf *c = t->service;
	if (parse_ready(value, &c->ready, err, errlen) < 0)
		return -1;
	if (c->ready.mode != READY_EXEC)
		return 0;
	return set_check_words(&c->ready_check, value + 5, t->line, err, errlen);
}

static int set_check(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	if (strncmp(value, "exec:", 5) != 0) {
		snprintf(err, errlen, "expected exec:COMMAND, got \"%s\"", value);
		return -1;
	}
	return set_check_words(&t->service->check, value + 5, t->line, err, errlen);
}

// A duration that is not 0.
static int set_period(double *field, const char *value, char *err, size_t errlen)
{
	double secs;
	if (parse_duration(value, &secs, err, errlen) < 0)
		return -1;
	if (secs < 0.001) {
		snprintf(err, errlen, "must be at least 1ms");
		return -1;
	}
	*field = secs;
	return 0;
}

static int set_check_interval(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	return set_period(&t->service->check_interval, value, err, errlen);
}

static int set_check_timeout(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	return set_period(&t->service->check_timeout, value, err, errlen);
}

static int set_check_failures(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	unsigned long n;
	if (parse_uint(value, 1, 1000, &n, err, errlen) < 0)
		return -1;
	t->service->check_failures = (unsigned)n;
	return 0;
}

static int set_watchdog(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return set_period(&t->service->watchdog, value, err, errlen);
}

// Words as command has them; a first word exec:... is check's syntax, not this key's.
static int set_upgrade_gate(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	struct check_conf *gate = &t->service->upgrade_gate;
	if (strlen(value) > CONFIG_COMMAND_MAX) {
		snprintf(err, errlen, "longer than %d characters", CONFIG_COMMAND_MAX);
		return -1;
	}
	if (set_check_words(gate, value, t->line, err, errlen) < 0)
		return -1;
	if (strncmp(gate->argv[0], "exec:", 5) == 0) {
		snprintf(err, errlen,
			"expected the program to run and its arguments, without exec:, got \"%s\"",
			value);
		check_conf_clear(gate);
		return -1;
	}
	return 0;
}

static int set_upgrade_gate_timeout(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	return set_period(&t->service->upgrade_gate_timeout, value, err, errlen);
}

static int set_duration(double *field, const char *value, char *err, size_t errlen)
{
	return parse_duration(value, field, err, errlen);
}

static int set_ready_timeout(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	if (set_duration(&t->service->ready_timeout, value, err, errlen) < 0)
		return -1;
	if (t->service->ready_timeout <= 0) {
		snprintf(err, errlen, "must be longer than 0s");
		return -1;
	}
	return 0;
}

static int set_stop_signal(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return parse_signal(value, &t->service->stop_signal, err, errlen);
}

static int set_stop_grace(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return set_duration(&t->service->stop_grace, value, err, errlen);
}

static int set_stop_delay(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return set_duration(&t->service->stop_delay, value, err, errlen);
}

static int set_restart(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return parse_restart(value, &t->service->restart, err, errlen);
}

static int set_restart_delay(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	return set_duration(&t->service->restart_delay, value, err, errlen);
}

static int set_restart_delay_max(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	return set_duration(&t->service->restart_delay_max, value, err, errlen);
}

static int set_start_limit(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	struct service_conf *c = t->service;
	return parse_start_limit(value, &c->start_limit_burst, &c->start_limit_interval, err,
		errlen);
}

static int set_upgrade(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return parse_upgrade(value, &t->service->upgrade_batch, err, errlen);
}

static int set_max_draining(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	unsigned long n;
	if (parse_uint(value, 1, 1000, &n, err, errlen) < 0)
		return -1;
	t->service->max_draining = (unsigned)n;
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

// The user called value, or numbered value; NULL when there is none.
static struct passwd *find_user(const char *value)
{
	struct passwd *pw = getpwnam(value);
	uid_t uid;
	if (!pw && user_from_number(value, &uid) == 0)
		pw = getpwuid(uid);
	return pw;
}

// The group called value, or numbered value; NULL when there is none.
static struct group *find_group(const char *value)
{
	struct group *gr = getgrnam(value);
	uid_t gid;
	if (!gr && user_from_number(value, &gid) == 0)
		gr = getgrgid((gid_t)gid);
	return gr;
}

static int set_user(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	struct service_conf *c = t->service;
	struct passwd *pw = find_user(value);
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

static int set_group(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	struct group *gr = find_group(value);
	if (!gr) {
		snprintf(err, errlen, "no such group \"%s\"", value);
		return -1;
	}
	t->service->has_group = true;
	t->service->group_gid = gr->gr_gid;
	return set_string(&t->service->group, value);
}

static int set_owner(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	struct passwd *pw = find_user(value);
	if (!pw) {
		snprintf(err, errlen, "no such user \"%s\"", value);
		return -1;
	}
	t->socket->uid = pw->pw_uid;
	return set_string(&t->socket->owner, value);
}

static int set_socket_group(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	struct group *gr = find_group(value);
	if (!gr) {
		snprintf(err, errlen, "no such group \"%s\"", value);
		return -1;
	}
	t->socket->gid = gr->gr_gid;
	return set_string(&t->socket->group, value);
}

static int set_directory(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	if (value[0] != '/') {
		snprintf(err, errlen, "expected an absolute path, got \"%s\"", value);
		return -1;
	}
	return set_string(&t->service->directory, value);
}

static int set_environment(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	struct service_conf *c = t->service;
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
			config_free_names(env, i);
			goto nomem;
		}
	}
	free(words);
	config_free_names(c->env, c->nenv);
	c->env = env;
	c->nenv = n;
	return 0;
nomem:
	free(words);
	snprintf(err, errlen, "out of memory");
	return -1;
}

// Each word an absolute path, or - and one, named once.
static int check_env_files(char **words, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const char *path = words[i] + (words[i][0] == '-');
		if (path[0] != '/') {
			snprintf(err, errlen,
				"expected an absolute path, or -PATH for an optional file, got \"%s\"",
				words[i]);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(words[j] + (words[j][0] == '-'), path) == 0) {
				snprintf(err, errlen, "%s named twice", path);
				return -1;
			}
		}
	}
	return 0;
}

static int set_environment_file(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	struct service_conf *c = t->service;
	size_t n;
	char **words = parse_words(value, &n, err, errlen);
	if (!words)
		return -1;
	int rc = check_env_files(words, n, err, errlen);
	if (rc == 0) {
		config_clear_env_files(c);
		c->env_files_line = t->line;
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = config_add_env_file(c, words[i]);
		if (rc < 0)
			snprintf(err, errlen, "out of memory");
	}
	free(words);
	return rc;
}

static int set_limit(const struct key_target *t, enum limit_id id, const char *value, char *err,
	size_t errlen)
{
	struct limit_conf *l = &t->service->limits[id];
	if (parse_limit(value, config_limits[id].size, &l->soft, &l->hard, err, errlen) < 0)
		return -1;
	l->set = true;
	return 0;
}

static int set_limit_nofile(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	return set_limit(t, LIMIT_NOFILE, value, err, errlen);
}

static int set_limit_core(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return set_limit(t, LIMIT_CORE, value, err, errlen);
}

static int set_limit_nproc(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return set_limit(t, LIMIT_NPROC, value, err, errlen);
}

static int set_limit_memlock(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	return set_limit(t, LIMIT_MEMLOCK, value, err, errlen);
}

static int set_limit_stack(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return set_limit(t, LIMIT_STACK, value, err, errlen);
}

static int set_umask(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	mode_t mask;
	if (parse_umask(value, &mask, err, errlen) < 0)
		return -1;
	t->service->has_umask = true;
	t->service->umask = mask;
	return 0;
}

static int set_nice(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	long n;
	if (parse_int(value, CONFIG_NICE_MIN, CONFIG_NICE_MAX, &n, err, errlen) < 0)
		return -1;
	t->service->has_nice = true;
	t->service->nice = (int)n;
	return 0;
}

static int set_start_nice(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	long n;
	if (parse_int(value, 0, 19, &n, err, errlen) < 0)
		return -1;
	t->service->start_nice = (unsigned)n;
	return 0;
}

static int set_oom_score_adjust(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	long n;
	if (parse_int(value, CONFIG_OOM_SCORE_ADJUST_MIN, CONFIG_OOM_SCORE_ADJUST_MAX, &n, err,
		errlen) < 0)
		return -1;
	t->service->has_oom_score_adjust = true;
	t->service->oom_score_adjust = (int)n;
	return 0;
}

static int set_cgroup_limit(const struct key_target *t, enum cgroup_limit_id id, const char *value,
	char *err, size_t errlen)
{
	if (config_set_cgroup_limit(t->service, id, value, err, errlen) < 0)
		return -1;
	t->service->cgroup_limits[id].line = t->line;
	return 0;
}

static int set_memory_max(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return set_cgroup_limit(t, CGROUP_MEMORY_MAX, value, err, errlen);
}

static int set_memory_high(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	return set_cgroup_limit(t, CGROUP_MEMORY_HIGH, value, err, errlen);
}

static int set_cpu_max(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return set_cgroup_limit(t, CGROUP_CPU_MAX, value, err, errlen);
}

static int set_cpu_weight(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return set_cgroup_limit(t, CGROUP_CPU_WEIGHT, value, err, errlen);
}

static int set_pids_max(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return set_cgroup_limit(t, CGROUP_PIDS_MAX, value, err, errlen);
}

static int set_io_weight(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	return set_cgroup_limit(t, CGROUP_IO_WEIGHT, value, err, errlen);
}

static int set_forward_signals(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	uint64_t set = 0;
	if (strcmp(value, "none") != 0 && parse_signal_set(value, &set, err, errlen) < 0)
		return -1;
	t->service->forward_signals = set;
	return 0;
}

static int set_log(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	struct log_conf *l = &t->service->log;
	if (strcmp(value, "stderr") == 0 || strcmp(value, "inherit") == 0) {
		l->sink = value[0] == 's' ? LOG_STDERR : LOG_INHERIT;
		return 0;
	}
	if (strncmp(value, "file:/", 6) != 0) {
		snprintf(err, errlen, "expected stderr, inherit or file:/PATH, got \"%s\"", value);
		return -1;
	}
	l->sink = LOG_FILE;
	return set_string(&l->path, value + 5);
}

static int set_log_format(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	if (strcmp(value, "text") != 0 && strcmp(value, "json") != 0) {
		snprintf(err, errlen, "expected text or json, got \"%s\"", value);
		return -1;
	}
	t->service->log.json = value[0] == 'j';
	return 0;
}

static int set_log_max_size(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	return parse_size(value, &t->service->log.max_size, err, errlen);
}

static int set_log_keep(const struct key_target *t, const char *value, char *err, size_t errlen)
{
	unsigned long n;
	if (parse_uint(value, 0, LOGFILE_KEEP_MAX, &n, err, errlen) < 0)
		return -1;
	t->service->log.keep = (unsigned)n;
	return 0;
}

static int set_log_buffer(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	uint64_t n;
	if (parse_size(value, &n, err, errlen) < 0)
		return -1;
	if (n > CONFIG_LOG_BUFFER_MAX) {
		snprintf(err, errlen, "at most 64MiB");
		return -1;
	}
	t->service->log.buffer = n;
	return 0;
}

static int set_log_overflow(const struct key_target *t, const char *value, char *err,
	size_t errlen)
{
	if (strcmp(value, "block") != 0 && strcmp(value, "drop") != 0) {
		snprintf(err, errlen, "expected block or drop, got \"%s\"", value);
		return -1;
	}
	t->service->log.drop = value[0] == 'd';
	return 0;
}

const struct key config_keys[KEY_COUNT] = {
	[KEY_CONTROL] = {"control", SECTION_BATON, false, set_control},
	[KEY_CONTROL_GROUP] = {"control_group", SECTION_BATON, false, set_control_group},
	[KEY_CGROUP] = {"cgroup", SECTION_BATON, false, set_cgroup},
	[KEY_LISTEN] = {"listen", SECTION_SOCKET, false, set_listen},
	[KEY_BACKLOG] = {"backlog", SECTION_SOCKET, false, set_backlog},
	[KEY_MODE] = {"mode", SECTION_SOCKET, false, set_mode},
	[KEY_OWNER] = {"owner", SECTION_SOCKET, false, set_owner},
	[KEY_SOCKET_GROUP] = {"group", SECTION_SOCKET, false, set_socket_group},
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
	[KEY_ENVIRONMENT_FILE] = {"environment_file", SECTION_SERVICE, true, set_environment_file},
	[KEY_LIMIT_NOFILE] = {"limit_nofile", SECTION_SERVICE, false, set_limit_nofile},
	[KEY_LIMIT_CORE] = {"limit_core", SECTION_SERVICE, false, set_limit_core},
	[KEY_LIMIT_NPROC] = {"limit_nproc", SECTION_SERVICE, false, set_limit_nproc},
	[KEY_LIMIT_MEMLOCK] = {"limit_memlock", SECTION_SERVICE, false, set_limit_memlock},
	[KEY_LIMIT_STACK] = {"limit_stack", SECTION_SERVICE, false, set_limit_stack},
	[KEY_UMASK] = {"umask", SECTION_SERVICE, false, set_umask},
	[KEY_NICE] = {"nice", SECTION_SERVICE, false, set_nice},
	[KEY_START_NICE] = {"start_nice", SECTION_SERVICE, false, set_start_nice},
	[KEY_OOM_SCORE_ADJUST] = {"oom_score_adjust", SECTION_SERVICE, false,
		set_oom_score_adjust},
	[KEY_MEMORY_MAX] = {"memory_max", SECTION_SERVICE, false, set_memory_max},
	[KEY_MEMORY_HIGH] = {"memory_high", SECTION_SERVICE, false, set_memory_high},
	[KEY_CPU_MAX] = {"cpu_max", SECTION_SERVICE, false, set_cpu_max},
	[KEY_CPU_WEIGHT] = {"cpu_weight", SECTION_SERVICE, false, set_cpu_weight},
	[KEY_PIDS_MAX] = {"pids_max", SECTION_SERVICE, false, set_pids_max},
	[KEY_IO_WEIGHT] = {"io_weight", SECTION_SERVICE, false, set_io_weight},
	[KEY_FORWARD_SIGNALS] = {"forward_signals", SECTION_SERVICE, false, set_forward_signals},
	[KEY_LOG] = {"log", SECTION_SERVICE, false, set_log},
	[KEY_LOG_FORMAT] = {"log_format", SECTION_SERVICE, false, set_log_format},
	[KEY_LOG_MAX_SIZE] = {"log_max_size", SECTION_SERVICE, false, set_log_max_size},
	[KEY_LOG_KEEP] = {"log_keep", SECTION_SERVICE, false, set_log_keep},
	[KEY_LOG_BUFFER] = {"log_buffer", SECTION_SERVICE, false, set_log_buffer},
	[KEY_LOG_OVERFLOW] = {"log_overflow", SECTION_SERVICE, false, set_log_overflow},
	[KEY_CHECK] = {"check", SECTION_SERVICE, false, set_check},
	[KEY_CHECK_INTERVAL] = {"check_interval", SECTION_SERVICE, false, set_check_interval},
	[KEY_CHECK_TIMEOUT] = {"check_timeout", SECTION_SERVICE, false, set_check_timeout},
	[KEY_CHECK_FAILURES] = {"check_failures", SECTION_SERVICE, false, set_check_failures},
	[KEY_WATCHDOG] = {"watchdog", SECTION_SERVICE, false, set_watchdog},
	[KEY_UPGRADE_GATE] = {"upgrade_gate", SECTION_SERVICE, true, set_upgrade_gate},
	[KEY_UPGRADE_GATE_TIMEOUT] = {"upgrade_gate_timeout", SECTION_SERVICE, false,
		set_upgrade_gate_timeout},
};

int config_keys_lookup(enum section_type type, const char *name)
{
	for (int i = 0; i < KEY_COUNT; i++) {
		if (config_keys[i].type == type && strcmp(config_keys[i].name, name) == 0)
			return i;
	}
	return -1;
}
