#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

const struct limit_kind config_limits[LIMIT_COUNT] = {
	[LIMIT_NOFILE] = {"limit_nofile", RLIMIT_NOFILE, false},
	[LIMIT_CORE] = {"limit_core", RLIMIT_CORE, true},
	[LIMIT_NPROC] = {"limit_nproc", RLIMIT_NPROC, false},
	[LIMIT_MEMLOCK] = {"limit_memlock", RLIMIT_MEMLOCK, true},
	[LIMIT_STACK] = {"limit_stack", RLIMIT_STACK, true},
};

const struct cgroup_limit_kind config_cgroup_limits[CGROUP_LIMIT_COUNT] = {
	[CGROUP_MEMORY_MAX] = {"memory_max", "memory", "memory.max"},
	[CGROUP_MEMORY_HIGH] = {"memory_high", "memory", "memory.high"},
	[CGROUP_CPU_MAX] = {"cpu_max", "cpu", "cpu.max"},
	[CGROUP_CPU_WEIGHT] = {"cpu_weight", "cpu", "cpu.weight"},
	[CGROUP_PIDS_MAX] = {"pids_max", "pids", "pids.max"},
	[CGROUP_IO_WEIGHT] = {"io_weight", "io", "io.weight"},
};

// How the value of each cgroup limit is written, by enum cgroup_limit_id.
static const enum cgroup_form cgroup_forms[CGROUP_LIMIT_COUNT] = {
	[CGROUP_MEMORY_MAX] = CGROUP_FORM_BYTES,
	[CGROUP_MEMORY_HIGH] = CGROUP_FORM_BYTES,
	[CGROUP_CPU_MAX] = CGROUP_FORM_CPU,
	[CGROUP_CPU_WEIGHT] = CGROUP_FORM_WEIGHT,
	[CGROUP_PIDS_MAX] = CGROUP_FORM_PIDS,
	[CGROUP_IO_WEIGHT] = CGROUP_FORM_WEIGHT,
};

void config_free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

void service_conf_free_argv(struct service_conf *c)
{
	if (c->argv_owned)
		config_free_names(c->argv, c->argc);
	else
		free(c->argv);
}

struct service_conf *service_conf_create(const char *name, unsigned line)
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
	c->check_interval = CONFIG_CHECK_INTERVAL;
	c->check_timeout = CONFIG_CHECK_TIMEOUT;
	c->check_failures = CONFIG_CHECK_FAILURES;
	c->upgrade_gate_timeout = CONFIG_UPGRADE_GATE_TIMEOUT;
	c->log.max_size = CONFIG_LOG_MAX_SIZE;
	c->log.keep = CONFIG_LOG_KEEP;
	c->log.buffer = CONFIG_LOG_BUFFER;
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
	service_conf_free_argv(c);
	config_free_names(c->sockets, c->nsockets);
	free(c->user);
	free(c->groups);
	free(c->group);
	free(c->directory);
	config_free_names(c->env, c->nenv);
	config_clear_env_files(c);
	free(c->log.path);
	check_conf_clear(&c->ready_check);
	check_conf_clear(&c->check);
	check_conf_clear(&c->upgrade_gate);
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

static bool check_conf_equal(const struct check_conf *a, const struct check_conf *b)
{
	return names_equal(a->argv, a->argc, b->argv, b->argc);
}

static bool checks_equal(const struct service_conf *a, const struct service_conf *b)
{
	return check_conf_equal(&a->ready_check, &b->ready_check) &&
		check_conf_equal(&a->check, &b->check) && a->check_interval == b->check_interval &&
		a->check_timeout == b->check_timeout && a->check_failures == b->check_failures &&
		a->watchdog == b->watchdog;
}

static bool gates_equal(const struct service_conf *a, const struct service_conf *b)
{
	return check_conf_equal(&a->upgrade_gate, &b->upgrade_gate) &&
		a->upgrade_gate_timeout == b->upgrade_gate_timeout;
}

static bool env_files_equal(const struct service_conf *a, const struct service_conf *b)
{
	if (a->nenv_files != b->nenv_files)
		return false;
	for (size_t i = 0; i < a->nenv_files; i++) {
		const struct env_file_conf *x = &a->env_files[i], *y = &b->env_files[i];
		if (x->optional != y->optional || strcmp(x->path, y->path) != 0)
			return false;
	}
	return true;
}

static bool limits_equal(const struct service_conf *a, const struct service_conf *b)
{
	for (int i = 0; i < LIMIT_COUNT; i++) {
		const struct limit_conf *x = &a->limits[i], *y = &b->limits[i];
		if (x->set != y->set || (x->set && (x->soft != y->soft || x->hard != y->hard)))
			return false;
	}
	return true;
}

// What the processes are started with besides their command and environment.
static bool process_equal(const struct service_conf *a, const struct service_conf *b)
{
	return limits_equal(a, b) && a->has_umask == b->has_umask &&
		(!a->has_umask || a->umask == b->umask) && a->has_nice == b->has_nice &&
		(!a->has_nice || a->nice == b->nice) &&
		a->start_nice == b->start_nice && a->has_oom_score_adjust == b->has_oom_score_adjust &&
		(!a->has_oom_score_adjust || a->oom_score_adjust == b->oom_score_adjust);
}

// The limits written to a generation's cgroup: the same files, the same values.
static bool cgroup_limits_equal(const struct service_conf *a, const struct service_conf *b)
{
	for (int i = 0; i < CGROUP_LIMIT_COUNT; i++) {
		const struct cgroup_limit_conf *x = &a->cgroup_limits[i], *y = &b->cgroup_limits[i];
		if (x->set != y->set || (x->set && strcmp(x->value, y->value) != 0))
			return false;
	}
	return true;
}

static bool log_conf_equal(const struct log_conf *a, const struct log_conf *b)
{
	return a->sink == b->sink && str_equal(a->path, b->path) && a->json == b->json &&
		a->max_size == b->max_size && a->keep == b->keep && a->buffer == b->buffer &&
		a->drop == b->drop;
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
		str_equal(a->directory, b->directory) && a->forward_signals == b->forward_signals &&
		log_conf_equal(&a->log, &b->log) && checks_equal(a, b) && env_files_equal(a, b) &&
		process_equal(a, b) && cgroup_limits_equal(a, b) && gates_equal(a, b);
}

void socket_conf_destroy(struct socket_conf *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->listen);
	free(s->owner);
	free(s->group);
	free(s);
}

struct socket_conf *socket_conf_create(const char *name, unsigned line)
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
	free(config->cgroup);
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

int config_append(void ***array, size_t *n, void *item)
{
	void **a = realloc(*array, (*n + 1) * sizeof(void *));
	if (!a)
		return -1;
	a[(*n)++] = item;
	*array = a;
	return 0;
}

int config_add_service(struct config *config, struct service_conf *conf)
{
	if (config_append((void ***)&config->services, &config->nservices, conf) < 0)
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
			config_free_names(copy, i);
			return -1;
		}
	}
	if (env) {
		config_free_names(conf->env, conf->nenv);
		conf->env = copy;
		conf->nenv = n;
		return 0;
	}
	service_conf_free_argv(conf);
	conf->argv = copy;
	conf->argc = n;
	conf->argv_owned = true;
	return 0;
}

void check_conf_clear(struct check_conf *c)
{
	free(c->command);
	config_free_names(c->argv, c->argc);
	memset(c, 0, sizeof(*c));
}

int check_conf_set(struct check_conf *c, const char *command, char **words, size_t n)
{
	check_conf_clear(c);
	if (!command)
		return 0;
	char **copy = calloc(n + 1, sizeof(char *));
	if (!copy || !(c->command = strdup(command))) {
		free(copy);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!(copy[i] = strdup(words[i]))) {
			config_free_names(copy, i);
			free(c->command);
			c->command = NULL;
			return -1;
		}
	}
	c->argv = copy;
	c->argc = n;
	return 0;
}

int config_add_env_file(struct service_conf *conf, const char *word)
{
	bool optional = word[0] == '-';
	struct env_file_conf *files =
		realloc(conf->env_files, (conf->nenv_files + 1) * sizeof(*files));
	if (!files)
		return -1;
	conf->env_files = files;
	char *path = strdup(word + optional);
	if (!path)
		return -1;
	files[conf->nenv_files++] = (struct env_file_conf){path, optional};
	return 0;
}

void config_clear_env_files(struct service_conf *conf)
{
	for (size_t i = 0; i < conf->nenv_files; i++)
		free(conf->env_files[i].path);
	free(conf->env_files);
	conf->env_files = NULL;
	conf->nenv_files = 0;
}

int config_set_cgroup_limit(struct service_conf *conf, enum cgroup_limit_id id, const char *s,
	char *err, size_t errlen)
{
	struct cgroup_limit_conf *l = &conf->cgroup_limits[id];
	if (parse_cgroup_limit(s, cgroup_forms[id], l->value, l->text, err, errlen) < 0)
		return -1;
	l->set = true;
	return 0;
}
