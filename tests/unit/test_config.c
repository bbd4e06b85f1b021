#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_print.h"
#include "config_read.h"

struct fixture {
	char dir[64];
	char path[128];    /* the file under test */
	char printed[128]; /* config_print's output */
	char *errors;
	struct config *config;
	struct config *again;  /* the printed configuration, loaded back */
	char *again_errors;
	char *text;            /* a file's content */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/baton-test-config.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/baton.conf", f->dir);
	snprintf(f->printed, sizeof(f->printed), "%s/printed.conf", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	config_destroy(f->config);
	free(f->errors);
	config_destroy(f->again);
	free(f->again_errors);
	free(f->text);
	int rc = 0;
	if (unlink(f->path) < 0 && errno != ENOENT)
		rc = -1;
	if (unlink(f->printed) < 0 && errno != ENOENT)
		rc = -1;
	if (rmdir(f->dir) < 0)
		rc = -1;
	free(f);
	return rc;
}

static void write_bytes(const char *path, const char *data, size_t len)
{
	FILE *file = fopen(path, "w");
	assert_non_null(file);
	assert_int_equal(fwrite(data, 1, len, file), len);
	assert_int_equal(fclose(file), 0);
}

/* Writes text as the configuration file and loads it; errors land in f->errors. */
static struct config *load_bytes(struct fixture *f, const char *data, size_t len)
{
	write_bytes(f->path, data, len);
	config_destroy(f->config);
	free(f->errors);
	f->errors = NULL;
	f->config = config_load(f->path, &f->errors);
	return f->config;
}

static struct config *load(struct fixture *f, const char *text)
{
	return load_bytes(f, text, strlen(text));
}

/* Loads text that must be valid. */
static struct config *load_ok(struct fixture *f, const char *text)
{
	struct config *c = load(f, text);
	if (!c)
		fail_msg("unexpected errors:\n%s", f->errors ? f->errors : "(none)");
	assert_null(f->errors);
	return c;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* Tells whether errors holds a line that starts with "PATH:LINE: " then text. */
static bool has_error(const struct fixture *f, unsigned line, const char *text)
{
	char prefix[512];
	snprintf(prefix, sizeof(prefix), "%s:%u: %s", f->path, line, text);
	size_t n = strlen(prefix);
	for (const char *p = f->errors; p && *p;) {
		if (strncmp(p, prefix, n) == 0)
			return true;
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		p = nl + 1;
	}
	return false;
}

/* Loads text that must fail with exactly nerrors errors, one at line with text. */
static void assert_fails_with(struct fixture *f, const char *text, size_t nerrors, unsigned line,
	const char *error)
{
	assert_null(load(f, text));
	assert_non_null(f->errors);
	if (!has_error(f, line, error))
		fail_msg("expected \"%s:%u: %s\" in:\n%s", f->path, line, error, f->errors);
	if (count_lines(f->errors) != nerrors)
		fail_msg("expected %zu errors, got:\n%s", nerrors, f->errors);
}

static const char full_config[] =
	"[baton]\n"
	"control = /run/baton/control.sock\n"
	"control_group = root\n"
	"\n"
	"[socket:http]\n"
	"listen = tcp:127.0.0.1:8080\n"
	"backlog = 128\n"
	"\n"
	"[socket:admin]\n"
	"listen = unix:/run/baton/admin.sock\n"
	"mode = 0660\n"
	"\n"
	"[socket:dns]\n"
	"listen = udp:[::1]:5353\n"
	"\n"
	"[service:web]\n"
	"command = /usr/bin/web --port 8080 'two words'\n"
	"sockets = http, admin\n"
	"instances = 4\n"
	"ready = notify\n"
	"ready_timeout = 20s\n"
	"stop_signal = INT\n"
	"stop_grace = 15s\n"
	"stop_delay = 500ms\n"
	"restart = on-failure\n"
	"restart_delay = 200ms\n"
	"restart_delay_max = 30s\n"
	"start_limit = 3/1m\n"
	"upgrade = rolling:2\n"
	"max_draining = 3\n"
	"user = root\n"
	"group = root\n"
	"directory = /srv/web\n"
	"environment = PORT=8080 \"GREETING=hello world\"\n"
	"\n"
	"[service:dns]\n"
	"command = /usr/bin/dns\n"
	"sockets = dns\n"
	"ready = fd:4\n";

/* A full file */

static void full_file_baton_section(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, full_config);
	assert_string_equal(c->path, f->path);
	assert_string_equal(c->control, "/run/baton/control.sock");
	assert_string_equal(c->control_group, "root");
	assert_true(c->has_control_group);
	assert_int_equal(c->control_gid, 0);
}

static void full_file_sockets(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, full_config);
	assert_int_equal(c->nsockets, 3);
	struct socket_conf *http = config_socket(c, "http");
	assert_non_null(http);
	assert_string_equal(http->listen, "tcp:127.0.0.1:8080");
	assert_int_equal(http->addr.family, ADDRESS_TCP);
	assert_int_equal(http->addr.port, 8080);
	assert_int_equal(http->backlog, 128);
	assert_int_equal(http->line, 5);
	struct socket_conf *admin = config_socket(c, "admin");
	assert_non_null(admin);
	assert_int_equal(admin->addr.family, ADDRESS_UNIX);
	assert_string_equal(admin->addr.path, "/run/baton/admin.sock");
	assert_int_equal(admin->mode, 0660);
	struct socket_conf *dns = config_socket(c, "dns");
	assert_non_null(dns);
	assert_int_equal(dns->addr.family, ADDRESS_UDP);
	assert_true(dns->addr.ipv6);
	assert_null(config_socket(c, "web"));
}

static void full_file_service(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, full_config);
	assert_int_equal(c->nservices, 2);
	struct service_conf *s = config_service(c, "web");
	assert_non_null(s);
	assert_string_equal(s->name, "web");
	assert_int_equal(s->line, 16);
	assert_string_equal(s->command, "/usr/bin/web --port 8080 'two words'");
	assert_int_equal(s->argc, 4);
	assert_string_equal(s->argv[0], "/usr/bin/web");
	assert_string_equal(s->argv[3], "two words");
	assert_null(s->argv[4]);
	assert_int_equal(s->nsockets, 2);
	assert_string_equal(s->sockets[0], "http");
	assert_string_equal(s->sockets[1], "admin");
	assert_int_equal(s->instances, 4);
	assert_int_equal(s->ready.mode, READY_NOTIFY);
	assert_float_equal(s->ready_timeout, 20, 1e-9);
	assert_int_equal(s->stop_signal, SIGINT);
	assert_float_equal(s->stop_grace, 15, 1e-9);
	assert_float_equal(s->stop_delay, 0.5, 1e-9);
	assert_int_equal(s->restart, RESTART_ON_FAILURE);
	assert_float_equal(s->restart_delay, 0.2, 1e-9);
	assert_float_equal(s->restart_delay_max, 30, 1e-9);
	assert_int_equal(s->start_limit_burst, 3);
	assert_float_equal(s->start_limit_interval, 60, 1e-9);
	assert_int_equal(s->upgrade_batch, 2);
	assert_int_equal(s->max_draining, 3);
	assert_string_equal(s->directory, "/srv/web");
	assert_null(config_service(c, "http"));
}

static void full_file_user_group_environment(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, full_config);
	struct service_conf *s = config_service(c, "web");
	assert_non_null(s);
	assert_true(s->has_user);
	assert_string_equal(s->user, "root");
	assert_int_equal(s->uid, 0);
	assert_int_equal(s->gid, 0);
	assert_true(s->ngroups >= 1);
	assert_non_null(s->groups);
	assert_true(s->has_group);
	assert_string_equal(s->group, "root");
	assert_int_equal(s->group_gid, 0);
	assert_int_equal(s->nenv, 2);
	assert_string_equal(s->env[0], "PORT=8080");
	assert_string_equal(s->env[1], "GREETING=hello world");
	assert_null(s->env[2]);
}

static void full_file_ready_fd_after_sockets(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, full_config);
	struct service_conf *s = config_service(c, "dns");
	assert_non_null(s);
	assert_int_equal(s->ready.mode, READY_FD);
	assert_int_equal(s->ready.fd, 4);
}

/* Defaults */

static void defaults_for_service(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\ncommand = /bin/true\n");
	assert_null(c->control);
	assert_false(c->has_control_group);
	assert_null(c->cgroup);
	assert_int_equal(c->cgroup_line, 0);
	assert_int_equal(c->nsockets, 0);
	struct service_conf *s = config_service(c, "web");
	assert_non_null(s);
	assert_int_equal(s->refs, 1);
	assert_int_equal(s->nsockets, 0);
	assert_int_equal(s->instances, CONFIG_INSTANCES);
	assert_int_equal(s->ready.mode, READY_NONE);
	assert_true(s->ready_timeout == CONFIG_READY_TIMEOUT);
	assert_int_equal(s->stop_signal, SIGTERM);
	assert_true(s->stop_grace == CONFIG_STOP_GRACE);
	assert_true(s->stop_delay == 0);
	assert_int_equal(s->restart, RESTART_ALWAYS);
	assert_true(s->restart_delay == CONFIG_RESTART_DELAY);
	assert_true(s->restart_delay_max == CONFIG_RESTART_DELAY_MAX);
	assert_int_equal(s->start_limit_burst, CONFIG_START_LIMIT_BURST);
	assert_true(s->start_limit_interval == CONFIG_START_LIMIT_INTERVAL);
	assert_int_equal(s->upgrade_batch, 0);
	assert_int_equal(s->max_draining, CONFIG_MAX_DRAINING);
	assert_false(s->has_user);
	assert_null(s->user);
	assert_false(s->has_group);
	assert_null(s->directory);
	assert_int_equal(s->nenv, 0);
	assert_non_null(s->env);
	assert_null(s->env[0]);
	assert_int_equal(s->nenv_files, 0);
	for (int i = 0; i < LIMIT_COUNT; i++)
		assert_false(s->limits[i].set);
	assert_false(s->has_umask);
	assert_false(s->has_nice);
	assert_false(s->has_oom_score_adjust);
	for (int i = 0; i < CGROUP_LIMIT_COUNT; i++)
		assert_false(s->cgroup_limits[i].set);
	assert_null(s->upgrade_gate.command);
	assert_null(s->upgrade_gate.argv);
	assert_int_equal(s->upgrade_gate.argc, 0);
	assert_true(s->upgrade_gate_timeout == CONFIG_UPGRADE_GATE_TIMEOUT);
	assert_true(CONFIG_UPGRADE_GATE_TIMEOUT == 60.0);
}

static void defaults_for_socket(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[socket:a]\nlisten = unix:/run/a.sock\n");
	struct socket_conf *s = config_socket(c, "a");
	assert_non_null(s);
	assert_int_equal(s->backlog, CONFIG_BACKLOG);
	assert_int_equal(s->mode, 0666);
	assert_null(s->owner);
	assert_null(s->group);
}

/* What the processes get */

static void environment_files_in_order_with_their_optional_flag(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\ncommand = /bin/true\n"
				      "environment_file = /etc/app.env -/etc/app.local.env\n"
				      "    '/etc/with space.env'\n");
	struct service_conf *s = config_service(c, "web");
	assert_int_equal(s->nenv_files, 3);
	assert_string_equal(s->env_files[0].path, "/etc/app.env");
	assert_false(s->env_files[0].optional);
	assert_string_equal(s->env_files[1].path, "/etc/app.local.env");
	assert_true(s->env_files[1].optional);
	assert_string_equal(s->env_files[2].path, "/etc/with space.env");
	assert_false(s->env_files[2].optional);
}

static void limits_soft_and_hard(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\ncommand = /bin/true\n"
				      "limit_nofile = 1024:65536\nlimit_core = infinity\n"
				      "limit_nproc = 100\nlimit_memlock = 64KiB:1M\n"
				      "limit_stack = 8388608:infinity\n");
	struct service_conf *s = config_service(c, "web");
	const struct limit_conf *l = s->limits;
	assert_true(l[LIMIT_NOFILE].set);
	assert_true(l[LIMIT_NOFILE].soft == 1024 && l[LIMIT_NOFILE].hard == 65536);
	assert_true(l[LIMIT_CORE].soft == RLIM_INFINITY && l[LIMIT_CORE].hard == RLIM_INFINITY);
	assert_true(l[LIMIT_NPROC].soft == 100 && l[LIMIT_NPROC].hard == 100);
	assert_true(l[LIMIT_MEMLOCK].soft == 65536 && l[LIMIT_MEMLOCK].hard == 1048576);
	assert_true(l[LIMIT_STACK].soft == 8388608 && l[LIMIT_STACK].hard == RLIM_INFINITY);
	assert_int_equal(config_limits[LIMIT_NOFILE].resource, RLIMIT_NOFILE);
	assert_int_equal(config_limits[LIMIT_STACK].resource, RLIMIT_STACK);
}

static void umask_nice_and_oom_score_adjust(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\ncommand = /bin/true\numask = 0077\n"
				      "nice = -20\noom_score_adjust = -1000\n"
				      "[service:db]\ncommand = /bin/true\numask = 0\nnice = 19\n"
				      "oom_score_adjust = 1000\n");
	struct service_conf *s = config_service(c, "web"), *db = config_service(c, "db");
	assert_true(s->has_umask);
	assert_int_equal(s->umask, 077);
	assert_true(s->has_nice);
	assert_int_equal(s->nice, -20);
	assert_true(s->has_oom_score_adjust);
	assert_int_equal(s->oom_score_adjust, -1000);
	assert_true(db->has_umask);
	assert_int_equal(db->umask, 0);
	assert_int_equal(db->nice, 19);
	assert_int_equal(db->oom_score_adjust, 1000);
}

/* The limits of each generation's cgroup */

static void assert_cgroup_limit(const struct service_conf *s, enum cgroup_limit_id id,
	unsigned line, const char *value, const char *text)
{
	const struct cgroup_limit_conf *l = &s->cgroup_limits[id];
	assert_true(l->set);
	assert_int_equal(l->line, line);
	assert_string_equal(l->value, value);
	assert_string_equal(l->text, text);
}

static void cgroup_limits_each_with_its_file_value_and_line(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\ncommand = /bin/true\nmemory_max = 512MiB\n"
				      "memory_high = 402653184\ncpu_max = 150%\ncpu_weight = 200\n"
				      "pids_max = 64\nio_weight = 10000\n"
				      "[service:db]\ncommand = /bin/true\nmemory_max = max\n"
				      "memory_high = max\ncpu_max = max\npids_max = max\n");
	struct service_conf *s = config_service(c, "web"), *db = config_service(c, "db");
	assert_cgroup_limit(s, CGROUP_MEMORY_MAX, 3, "536870912", "512MiB");
	assert_cgroup_limit(s, CGROUP_MEMORY_HIGH, 4, "402653184", "384MiB");
	assert_cgroup_limit(s, CGROUP_CPU_MAX, 5, "150000 100000", "150%");
	assert_cgroup_limit(s, CGROUP_CPU_WEIGHT, 6, "200", "200");
	assert_cgroup_limit(s, CGROUP_PIDS_MAX, 7, "64", "64");
	assert_cgroup_limit(s, CGROUP_IO_WEIGHT, 8, "10000", "10000");
	assert_cgroup_limit(db, CGROUP_MEMORY_MAX, 11, "max", "max");
	assert_cgroup_limit(db, CGROUP_MEMORY_HIGH, 12, "max", "max");
	assert_cgroup_limit(db, CGROUP_CPU_MAX, 13, "max 100000", "max");
	assert_cgroup_limit(db, CGROUP_PIDS_MAX, 14, "max", "max");
	assert_false(db->cgroup_limits[CGROUP_CPU_WEIGHT].set);
	assert_false(db->cgroup_limits[CGROUP_IO_WEIGHT].set);
	assert_string_equal(config_cgroup_limits[CGROUP_IO_WEIGHT].file, "io.weight");
	assert_string_equal(config_cgroup_limits[CGROUP_CPU_MAX].controller, "cpu");
}

static void error_cgroup_limits_name_key_and_value(void **state)
{
	struct fixture *f = *state;
	static const char *const cases[][2] = {
		{"memory_max = 0",
			"memory_max: must be at least 4KiB, or max for no limit, got \"0\""},
		{"memory_high = 4095B",
			"memory_high: must be at least 4KiB, or max for no limit, got \"4095B\""},
		{"memory_max = 1GB",
			"memory_max: expected a size like 512MiB, or max, got \"1GB\""},
		{"cpu_max = 1.5",
			"cpu_max: expected a whole percentage of one CPU from 1% to 102400% like "
			"150%, or max, got \"1.5\""},
		{"cpu_weight = 0",
			"cpu_weight: expected a whole number from 1 to 10000, got \"0\""},
		{"pids_max = 0",
			"pids_max: expected a whole number from 1 to 4194304, or max, got \"0\""},
		{"io_weight = max",
			"io_weight: expected a whole number from 1 to 10000, got \"max\""},
	};
	char text[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[service:web]\ncommand = /bin/true\n%s\n",
			cases[i][0]);
		assert_fails_with(f, text, 1, 3, cases[i][1]);
	}
}

static void error_cgroup_limit_without_a_cgroup(void **state)
{
	struct fixture *f = *state;
	assert_fails_with(f, "[service:web]\ncommand = /bin/true\ncpu_weight = 50\n"
			     "pids_max = 10\n[baton]\ncgroup = none\n",
		2, 4, "pids_max: needs a cgroup, but [baton] cgroup = none (line 6)");
	assert_true(
		has_error(f, 3, "cpu_weight: needs a cgroup, but [baton] cgroup = none (line 6)"));
	load_ok(f, "[baton]\ncgroup = /sys/fs/cgroup/b\n[service:web]\ncommand = x\n"
		   "pids_max = 1\n");
	load_ok(f, "[baton]\ncgroup = auto\n[service:web]\ncommand = x\npids_max = 1\n");
}

/* Upgrade gates */

static void upgrade_gate_words_line_and_timeout(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\ncommand = /bin/true\n\n"
				      "upgrade_gate = /usr/bin/gate --service web\n"
				      "    'two words' \"$BATON_NEW_PIDS\"\n"
				      "upgrade_gate_timeout = 1.5s\n"
				      "[service:db]\ncommand = /bin/true\nupgrade_gate = check-db\n");
	struct service_conf *s = config_service(c, "web"), *db = config_service(c, "db");
	const struct check_conf *g = &s->upgrade_gate;
	assert_string_equal(g->command,
		"/usr/bin/gate --service web 'two words' \"$BATON_NEW_PIDS\"");
	assert_int_equal(g->argc, 5);
	static const char *const words[] = {"/usr/bin/gate", "--service", "web", "two words",
		"$BATON_NEW_PIDS"};
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(g->argv[i], words[i]);
	assert_null(g->argv[5]);
	assert_int_equal(g->line, 4);
	assert_true(s->upgrade_gate_timeout == 1.5);
	assert_int_equal(db->upgrade_gate.argc, 1);
	assert_string_equal(db->upgrade_gate.argv[0], "check-db");
	assert_int_equal(db->upgrade_gate.line, 9);
	assert_true(db->upgrade_gate_timeout == CONFIG_UPGRADE_GATE_TIMEOUT);
	c = load_ok(f, "[service:web]\ncommand = /bin/true\nupgrade_gate_timeout = 1ms\n");
	assert_null(config_service(c, "web")->upgrade_gate.argv);
	assert_true(config_service(c, "web")->upgrade_gate_timeout == 0.001);
}

static void error_upgrade_gate_names_key_and_value(void **state)
{
	struct fixture *f = *state;
	static const char *const cases[][2] = {
		{"upgrade_gate = exec:/usr/bin/gate --now",
			"upgrade_gate: expected the program to run and its arguments, without exec:, "
			"got \"exec:/usr/bin/gate --now\""},
		{"upgrade_gate = 'exec:gate'",
			"upgrade_gate: expected the program to run and its arguments, without exec:, "
			"got \"'exec:gate'\""},
		{"upgrade_gate = gate 'unterminated", "upgrade_gate: unterminated single quote"},
		{"upgrade_gate = \"\"\"", "upgrade_gate: unterminated double quote"},
		{"upgrade_gate_timeout = 0s", "upgrade_gate_timeout: must be at least 1ms"},
		{"upgrade_gate_timeout = 0.0001",
			"upgrade_gate_timeout: must be at least 1ms"},
		{"upgrade_gate_timeout = soon",
			"upgrade_gate_timeout: expected a duration like 250ms, 30s, 5m or 1h, got "
			"\"soon\""},
	};
	char text[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[service:web]\ncommand = /bin/true\n%s\n",
			cases[i][0]);
		assert_fails_with(f, text, 1, 3, cases[i][1]);
	}
}

static void error_upgrade_gate_set_twice_continued_or_elsewhere(void **state)
{
	struct fixture *f = *state;
	assert_fails_with(f, "[service:web]\ncommand = x\nupgrade_gate = a\nupgrade_gate = b\n", 1,
		4, "upgrade_gate: set twice (first at line 3)");
	assert_fails_with(f, "[service:web]\ncommand = x\nupgrade_gate_timeout = 1s\n  2s\n", 1,
		4,
		"upgrade_gate_timeout: only command, sockets, environment, environment_file and "
		"upgrade_gate continue on indented lines");
	assert_fails_with(f, "[socket:a]\nlisten = unix:/run/a.sock\nupgrade_gate = x\n", 1, 3,
		"upgrade_gate: unknown key in [socket:NAME]");
	assert_fails_with(f, "[baton]\nupgrade_gate_timeout = 1s\n", 1, 2,
		"upgrade_gate_timeout: unknown key in [baton]");
	// An error in a continued gate is at the line of its key.
	assert_fails_with(f, "[service:web]\ncommand = x\nupgrade_gate = gate\n  'open\n", 1, 3,
		"upgrade_gate: unterminated single quote");
}

/* A service whose gate is "gate" continued on lines of a's to len characters, at most 8193. */
static const char *gate_of_length(size_t len)
{
	static char text[2 * (CONFIG_COMMAND_MAX + 1) + 64];
	char a[101];
	memset(a, 'a', 100);
	a[100] = '\0';
	assert_true(len <= CONFIG_COMMAND_MAX + 1);
	char *p = text + sprintf(text, "[service:web]\ncommand = x\nupgrade_gate = gate\n");
	// Each line adds a blank and its a's: what is left is never 1.
	for (size_t left = len - strlen("gate"); left > 0;) {
		size_t n = left - 1 > 100 ? 100 : left - 1;
		if (left - 1 - n == 1)
			n--;
		p += sprintf(p, "  %.*s\n", (int)n, a);
		left -= n + 1;
	}
	return text;
}

static void error_upgrade_gate_longer_than_a_command(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, gate_of_length(CONFIG_COMMAND_MAX));
	assert_int_equal(strlen(config_service(c, "web")->upgrade_gate.command), CONFIG_COMMAND_MAX);
	assert_fails_with(f, gate_of_length(CONFIG_COMMAND_MAX + 1), 1, 3,
		"upgrade_gate: longer than 8192 characters");
}

static void socket_owner_and_group_resolved(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[socket:a]\nlisten = unix:/run/a.sock\nowner = root\n"
				      "group = 0\n");
	struct socket_conf *s = config_socket(c, "a");
	assert_string_equal(s->owner, "root");
	assert_int_equal(s->uid, 0);
	assert_string_equal(s->group, "0");
	assert_int_equal(s->gid, 0);
}

static void error_owner_and_group_on_tcp_socket(void **state)
{
	struct fixture *f = *state;
	assert_fails_with(f, "[socket:a]\nlisten = tcp:127.0.0.1:80\nowner = root\ngroup = root\n",
		2, 3, "owner: applies only to unix sockets");
	assert_true(has_error(f, 4, "group: applies only to unix sockets"));
}

static void error_unknown_socket_owner(void **state)
{
	assert_fails_with(*state,
		"[socket:a]\nlisten = unix:/run/a.sock\nowner = baton-no-such-user\n", 1, 3,
		"owner: no such user \"baton-no-such-user\"");
}

static void error_soft_limit_above_hard(void **state)
{
	assert_fails_with(*state, "[service:web]\ncommand = /bin/true\nlimit_stack = 16MiB:8MiB\n",
		1, 3, "limit_stack: the soft limit 16MiB is above the hard limit 8MiB");
}

static void error_relative_environment_file(void **state)
{
	assert_fails_with(*state,
		"[service:web]\ncommand = /bin/true\nenvironment_file = -etc/app.env\n", 1, 3,
		"environment_file: expected an absolute path, or -PATH for an optional file, got "
		"\"-etc/app.env\"");
}

static void comments_blank_lines_and_crlf_accepted(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "; a comment\r\n# another\r\n\r\n[service:web]\r\n"
				      "command = /bin/echo hi ; trailing comment\r\n"
				      "instances = 2\r\n");
	struct service_conf *s = config_service(c, "web");
	assert_non_null(s);
	assert_string_equal(s->command, "/bin/echo hi");
	assert_int_equal(s->instances, 2);
}

static void empty_file_is_valid(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "");
	assert_int_equal(c->nservices, 0);
	assert_int_equal(c->nsockets, 0);
}

/* Errors */

static void error_unknown_key(void **state)
{
	assert_fails_with(*state, "[service:web]\ncommand = /bin/true\nbogus = 1\n", 1, 3,
		"bogus: unknown key in [service:NAME]");
}

static void error_key_of_another_section(void **state)
{
	assert_fails_with(*state, "[service:web]\ncommand = /bin/true\nlisten = unix:/a\n", 1, 3,
		"listen: unknown key in [service:NAME]");
}

static void error_bad_value(void **state)
{
	assert_fails_with(*state, "[service:web]\ncommand = /bin/true\n\ninstances = 0\n", 1, 4,
		"instances: expected a whole number from 1 to 10000, got \"0\"");
}

static void error_bad_duration_names_key(void **state)
{
	assert_fails_with(*state, "[service:web]\ncommand = /bin/true\nstop_grace = 10x\n", 1, 3,
		"stop_grace: expected a duration");
}

static void error_duplicate_key_names_first_line(void **state)
{
	assert_fails_with(*state,
		"[service:web]\ncommand = /bin/true\ninstances = 2\n\ninstances = 3\n", 1, 5,
		"instances: set twice (first at line 3)");
}

static void error_duplicate_section(void **state)
{
	assert_fails_with(*state,
		"[service:web]\ncommand = /bin/true\n[service:web]\ncommand = /bin/false\n", 1, 3,
		"duplicate section [service:web] (first at line 1)");
}

static void error_duplicate_baton_section(void **state)
{
	assert_fails_with(*state, "[baton]\n\n[baton]\n", 1, 3,
		"duplicate section [baton] (first at line 1)");
}

static void error_unknown_section_type(void **state)
{
	assert_fails_with(*state, "[server:web]\ncommand = /bin/true\n", 1, 1,
		"unknown section [server:web]");
}

static void error_invalid_section_name(void **state)
{
	assert_fails_with(*state, "[service:-web]\ncommand = /bin/true\n", 1, 1,
		"[service:-web]: a name is");
}

static void error_section_without_closing_bracket(void **state)
{
	assert_fails_with(*state, "[service:web\ncommand = /bin/true\n", 1, 1,
		"section header without a closing ]");
}

static void error_key_before_any_section(void **state)
{
	assert_fails_with(*state, "\ninstances = 2\n[service:web]\ncommand = /bin/true\n", 1, 2,
		"instances: key outside of a section");
}

static void error_line_without_equals(void **state)
{
	assert_fails_with(*state, "[service:web]\ncommand = /bin/true\njunk\n", 1, 3,
		"expected KEY = VALUE or [SECTION], got \"junk\"");
}

static void error_unknown_socket_at_sockets_line(void **state)
{
	assert_fails_with(*state,
		"[socket:a]\nlisten = unix:/run/a.sock\n\n[service:web]\ncommand = /bin/true\n"
		"instances = 2\nsockets = a, b\n",
		1, 7, "sockets: no [socket:b] in this file");
}

static void error_socket_named_twice(void **state)
{
	assert_fails_with(*state,
		"[socket:a]\nlisten = unix:/run/a.sock\n[service:web]\ncommand = /bin/true\n"
		"sockets = a a\n",
		1, 5, "sockets: socket \"a\" named twice");
}

static void error_service_without_command(void **state)
{
	assert_fails_with(*state, "[baton]\n[service:web]\ninstances = 2\n", 1, 2,
		"command: missing in [service:web]");
}

static void error_socket_without_listen(void **state)
{
	assert_fails_with(*state, "\n[socket:a]\nbacklog = 5\n", 1, 2,
		"listen: missing in [socket:a]");
}

static void error_mode_on_tcp_socket(void **state)
{
	assert_fails_with(*state, "[socket:a]\nlisten = tcp:127.0.0.1:80\nmode = 0600\n", 1, 3,
		"mode: applies only to unix sockets");
}

static void error_two_sockets_same_address(void **state)
{
	assert_fails_with(*state,
		"[socket:a]\nlisten = tcp:127.0.0.1:80\n[socket:b]\nlisten = tcp:127.0.0.1:80\n", 1,
		4, "listen: tcp:127.0.0.1:80 is also the address of socket a");
}

static void error_ready_fd_taken_by_socket(void **state)
{
	assert_fails_with(*state,
		"[socket:a]\nlisten = unix:/run/a.sock\n[socket:b]\nlisten = unix:/run/b.sock\n"
		"[service:web]\ncommand = /bin/true\nready = fd:4\nsockets = a, b\n",
		1, 7, "ready: fd 4 is taken by socket b; use fd:5 or higher");
}

static void error_restart_delay_max_below_delay(void **state)
{
	assert_fails_with(*state,
		"[service:web]\ncommand = /bin/true\nrestart_delay = 5s\nrestart_delay_max = 1s\n",
		1, 4, "restart_delay_max: shorter than restart_delay");
}

static void error_bad_environment(void **state)
{
	assert_fails_with(*state,
		"[service:web]\ncommand = /bin/true\nenvironment = A=1 1B=2\n", 1, 3,
		"environment: expected NAME=VALUE, got \"1B=2\"");
}

static void error_relative_directory(void **state)
{
	assert_fails_with(*state, "[service:web]\ncommand = /bin/true\ndirectory = srv\n", 1, 3,
		"directory: expected an absolute path");
}

static void error_bad_listen_reported_once(void **state)
{
	assert_fails_with(*state, "[socket:a]\nlisten = tcp:localhost:80\n", 1, 2,
		"listen: expected a numeric address");
}

static void error_bad_command_reported_once(void **state)
{
	assert_fails_with(*state, "[service:web]\ncommand = /bin/echo 'open\n", 1, 2,
		"command: unterminated single quote");
}

static void error_missing_file(void **state)
{
	struct fixture *f = *state;
	char path[200];
	snprintf(path, sizeof(path), "%s/absent.conf", f->dir);
	assert_null(config_load(path, &f->errors));
	assert_non_null(f->errors);
	char expected[300];
	snprintf(expected, sizeof(expected), "%s: cannot open: ", path);
	assert_int_equal(strncmp(f->errors, expected, strlen(expected)), 0);
	assert_int_equal(count_lines(f->errors), 1);
}

static void error_several_all_reported(void **state)
{
	struct fixture *f = *state;
	assert_null(load(f, "[service:web]\n"
			    "command = /bin/true\n"
			    "instances = none\n"
			    "bogus = 1\n"
			    "[socket:a]\n"
			    "mode = 0600\n"
			    "[service:x]\n"
			    "ready = sometimes\n"));
	assert_true(has_error(f, 3, "instances: expected a whole number"));
	assert_true(has_error(f, 4, "bogus: unknown key"));
	assert_true(has_error(f, 5, "listen: missing in [socket:a]"));
	assert_true(has_error(f, 7, "command: missing in [service:x]"));
	assert_true(has_error(f, 8, "ready: expected notify"));
	assert_int_equal(count_lines(f->errors), 5);
}

static void errors_sorted_by_line(void **state)
{
	struct fixture *f = *state;
	assert_null(load(f, "[service:web]\n"
			    "instances = 0\n"
			    "[socket:a]\n"
			    "backlog = 0\n"));
	char expected[1024];
	const char *file = f->path;
	snprintf(expected, sizeof(expected),
		"%s:1: command: missing in [service:web]; expected the program to run and its "
		"arguments\n"
		"%s:2: instances: expected a whole number from 1 to 10000, got \"0\"\n"
		"%s:3: listen: missing in [socket:a]; expected tcp:HOST:PORT, udp:HOST:PORT or "
		"unix:/PATH\n"
		"%s:4: backlog: expected a whole number from 1 to 65535, got \"0\"\n",
		file, file, file, file);
	assert_string_equal(f->errors, expected);
}

static void error_count_capped(void **state)
{
	struct fixture *f = *state;
	char text[2048] = "[service:web]\ncommand = /bin/true\n";
	for (int i = 0; i < 25; i++)
		strcat(text, "bogus = 1\n");
	assert_null(load(f, text));
	assert_true(has_error(f, 3, "bogus: unknown key"));
	assert_true(has_error(f, 22, "bogus: unknown key"));
	assert_false(has_error(f, 23, "bogus"));
	char more[200];
	snprintf(more, sizeof(more), "%s: 5 more errors not shown\n", f->path);
	assert_non_null(strstr(f->errors, more));
	assert_int_equal(count_lines(f->errors), 21);
}

/* Continuation lines */

static void continuation_joins_command(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\n"
				      "command = /bin/echo one\n"
				      "  two\n"
				      "\tthree\n"
				      "instances = 2\n");
	struct service_conf *s = config_service(c, "web");
	assert_string_equal(s->command, "/bin/echo one two three");
	assert_int_equal(s->argc, 4);
	assert_string_equal(s->argv[3], "three");
	assert_int_equal(s->instances, 2);
}

static void continuation_joins_environment(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\n"
				      "command = /bin/true\n"
				      "environment = A=1\n"
				      "    B=2\n"
				      "    'C=x y'\n");
	struct service_conf *s = config_service(c, "web");
	assert_int_equal(s->nenv, 3);
	assert_string_equal(s->env[0], "A=1");
	assert_string_equal(s->env[1], "B=2");
	assert_string_equal(s->env[2], "C=x y");
	assert_null(s->env[3]);
}

static void continuation_joins_sockets(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[socket:a]\nlisten = unix:/run/a.sock\n"
				      "[socket:b]\nlisten = unix:/run/b.sock\n"
				      "[service:web]\ncommand = /bin/true\nsockets = a,\n  b\n");
	struct service_conf *s = config_service(c, "web");
	assert_int_equal(s->nsockets, 2);
	assert_string_equal(s->sockets[1], "b");
}

static void continuation_of_quoted_command_word(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\n"
				      "command = /bin/echo \"hello\n"
				      "  world\"\n");
	struct service_conf *s = config_service(c, "web");
	assert_int_equal(s->argc, 2);
	assert_string_equal(s->argv[1], "hello world");
}

static void continuation_rejected_for_other_keys(void **state)
{
	assert_fails_with(*state, "[service:web]\ncommand = /bin/true\ninstances = 2\n  3\n", 1, 4,
		"instances: only command, sockets, environment, environment_file and upgrade_gate "
		"continue on indented lines");
}

static void continuation_after_comment_still_joins(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\ncommand = /bin/echo a\n# note\n  b\n");
	assert_string_equal(config_service(c, "web")->command, "/bin/echo a b");
}

static void indented_key_after_section_is_a_key(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\n  command = /bin/true\n");
	assert_string_equal(config_service(c, "web")->command, "/bin/true");
}

/* Long lines and NUL bytes */

/* Returns head padded with 'a' to exactly len characters, newline added. */
static const char *long_line(struct fixture *f, const char *head, size_t len)
{
	free(f->text);
	char *line = f->text = malloc(len + 2);
	assert_non_null(line);
	memset(line, 'a', len);
	memcpy(line, head, strlen(head));
	line[len] = '\n';
	line[len + 1] = '\0';
	return line;
}

static void line_of_197_characters_accepted(void **state)
{
	struct fixture *f = *state;
	const char *line = long_line(f, "command = /bin/echo ", 197);
	char text[512];
	snprintf(text, sizeof(text), "[service:web]\n%s", line);
	struct config *c = load_ok(f, text);
	struct service_conf *s = config_service(c, "web");
	assert_int_equal(strlen(s->command), 197 - strlen("command = "));
	assert_int_equal(s->argc, 2);
}

static void line_of_198_characters_refused(void **state)
{
	struct fixture *f = *state;
	const char *line = long_line(f, "directory = /", 198);
	char text[512];
	snprintf(text, sizeof(text), "[service:web]\ncommand = /bin/true\n%s", line);
	assert_fails_with(f, text, 1, 3, "line longer than 197 characters");
}

static void very_long_line_refused_once(void **state)
{
	struct fixture *f = *state;
	const char *line = long_line(f, "command = /bin/echo ", 1000);
	char text[2048];
	snprintf(text, sizeof(text), "[service:web]\n%scommand = /bin/true\ninstances = 0\n", line);
	assert_null(load(f, text));
	assert_true(has_error(f, 2, "line longer than 197 characters"));
	assert_true(has_error(f, 4, "instances: expected"));
	assert_int_equal(count_lines(f->errors), 2);
}

static void line_with_nul_byte_refused(void **state)
{
	struct fixture *f = *state;
	static const char text[] = "[service:web]\ncommand = /bin/true\ndirectory = /srv\0/x\n";
	assert_null(load_bytes(f, text, sizeof(text) - 1));
	assert_true(has_error(f, 3, "line contains a NUL byte"));
	assert_int_equal(count_lines(f->errors), 1);
}

/* Users and groups */

static void user_by_name(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\ncommand = /bin/true\nuser = root\n");
	struct service_conf *s = config_service(c, "web");
	assert_true(s->has_user);
	assert_int_equal(s->uid, 0);
	assert_int_equal(s->gid, 0);
	assert_true(s->ngroups >= 1);
	assert_int_equal(s->groups[0], 0);
}

static void user_by_number(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[service:web]\ncommand = /bin/true\nuser = 0\ngroup = 0\n");
	struct service_conf *s = config_service(c, "web");
	assert_true(s->has_user);
	assert_int_equal(s->uid, 0);
	assert_true(s->has_group);
	assert_int_equal(s->group_gid, 0);
}

static void user_unknown_rejected(void **state)
{
	assert_fails_with(*state,
		"[service:web]\ncommand = /bin/true\nuser = baton-no-such-user\n", 1, 3,
		"user: no such user \"baton-no-such-user\"");
}

static void group_unknown_rejected(void **state)
{
	assert_fails_with(*state,
		"[service:web]\ncommand = /bin/true\ngroup = baton-no-such-group\n", 1, 3,
		"group: no such group \"baton-no-such-group\"");
}

static void control_group_unknown_rejected(void **state)
{
	assert_fails_with(*state, "[baton]\ncontrol_group = baton-no-such-group\n", 1, 2,
		"control_group: no such group");
}

static void cgroup_auto_none_or_a_path(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, "[baton]\ncontrol = /run/x.sock\ncgroup = auto\n");
	assert_null(c->cgroup);
	assert_int_equal(c->cgroup_line, 3);
	c = load_ok(f, "[baton]\ncgroup = none\n");
	assert_string_equal(c->cgroup, "none");
	assert_int_equal(c->cgroup_line, 2);
	c = load_ok(f, "\n[baton]\ncgroup = /sys/fs/cgroup/baton.slice/baton\n");
	assert_string_equal(c->cgroup, "/sys/fs/cgroup/baton.slice/baton");
	assert_int_equal(c->cgroup_line, 3);
}

static void error_cgroup_not_absolute_or_with_dot_dot(void **state)
{
	struct fixture *f = *state;
	assert_fails_with(f, "[baton]\ncgroup = sys/fs/cgroup/baton\n", 1, 2,
		"cgroup: expected auto, none or an absolute path with no . or .. component, got "
		"\"sys/fs/cgroup/baton\"");
	assert_fails_with(f, "[baton]\ncgroup = /sys/fs/cgroup/../baton\n", 1, 2,
		"cgroup: expected auto, none or an absolute path with no . or .. component, got "
		"\"/sys/fs/cgroup/../baton\"");
	assert_fails_with(f, "[baton]\ncgroup = none\ncgroup = auto\n", 1, 3,
		"cgroup: set twice (first at line 2)");
	assert_fails_with(f, "[service:web]\ncommand = x\ncgroup = none\n", 1, 3,
		"cgroup: unknown key in [service:NAME]");
}

static void control_must_be_absolute(void **state)
{
	assert_fails_with(*state, "[baton]\ncontrol = run/baton.sock\n", 1, 2,
		"control: expected an absolute path");
}

/* Equality and references */

static struct service_conf *load_service(struct fixture *f, const char *text)
{
	struct config *c = load_ok(f, text);
	struct service_conf *s = service_conf_ref(config_service(c, "web"));
	config_destroy(c);
	f->config = NULL;
	return s;
}

static void equal_same_definition(void **state)
{
	struct fixture *f = *state;
	struct service_conf *a = load_service(f, full_config);
	struct service_conf *b = load_service(f, full_config);
	bool equal = service_conf_equal(a, b) && service_conf_equal(b, a);
	service_conf_unref(a);
	service_conf_unref(b);
	assert_true(equal);
}

/* Tells whether adding extra to a minimal service changes it. */
static void assert_differs(struct fixture *f, const char *extra)
{
	static const char base[] = "[service:web]\ncommand = /bin/echo hi\n";
	char text[512];
	if (strncmp(extra, "command", 7) == 0)
		snprintf(text, sizeof(text), "[service:web]\n%s\n", extra);
	else
		snprintf(text, sizeof(text), "%s%s\n", base, extra);
	struct service_conf *a = load_service(f, base);
	struct service_conf *b = load_service(f, text);
	bool equal = service_conf_equal(a, b) || service_conf_equal(b, a);
	service_conf_unref(a);
	service_conf_unref(b);
	if (equal)
		fail_msg("\"%s\" does not change the service", extra);
}

static void equal_detects_each_difference(void **state)
{
	struct fixture *f = *state;
	assert_differs(f, "command = /bin/echo ho");
	assert_differs(f, "command = /bin/echo hi there");
	assert_differs(f, "instances = 2");
	assert_differs(f, "ready = notify");
	assert_differs(f, "ready_timeout = 5s");
	assert_differs(f, "stop_signal = INT");
	assert_differs(f, "stop_grace = 1s");
	assert_differs(f, "stop_delay = 1s");
	assert_differs(f, "restart = never");
	assert_differs(f, "restart_delay = 1s");
	assert_differs(f, "restart_delay_max = 1m");
	assert_differs(f, "start_limit = none");
	assert_differs(f, "upgrade = rolling");
	assert_differs(f, "max_draining = 1");
	assert_differs(f, "user = root");
	assert_differs(f, "group = root");
	assert_differs(f, "directory = /");
	assert_differs(f, "environment = A=1");
	assert_differs(f, "environment_file = /etc/app.env");
	assert_differs(f, "environment_file = -/etc/app.env");
	assert_differs(f, "limit_nofile = 1024");
	assert_differs(f, "limit_core = infinity");
	assert_differs(f, "limit_nproc = 10:20");
	assert_differs(f, "limit_memlock = 1MiB");
	assert_differs(f, "limit_stack = 8MiB");
	assert_differs(f, "umask = 0022");
	assert_differs(f, "nice = 0");
	assert_differs(f, "oom_score_adjust = 0");
	assert_differs(f, "memory_max = max");
	assert_differs(f, "memory_high = 1GiB");
	assert_differs(f, "cpu_max = 100%");
	assert_differs(f, "cpu_weight = 100");
	assert_differs(f, "pids_max = max");
	assert_differs(f, "io_weight = 100");
	assert_differs(f, "upgrade_gate = /bin/true");
	assert_differs(f, "upgrade_gate_timeout = 59s");
}

// Gates are compared by their words, as commands are; the default timeout is 60s.
static void equal_compares_gates_by_words(void **state)
{
	struct fixture *f = *state;
	struct service_conf *a = load_service(f, "[service:web]\ncommand = x\n"
						 "upgrade_gate = /bin/gate 'a b'\n");
	struct service_conf *b = load_service(f, "[service:web]\ncommand = x\n"
						 "upgrade_gate = \"/bin/gate\"\n  a\\ b\n"
						 "upgrade_gate_timeout = 1m\n");
	struct service_conf *c = load_service(f, "[service:web]\ncommand = x\n"
						 "upgrade_gate = /bin/gate a b\n");
	bool ab = service_conf_equal(a, b), ac = service_conf_equal(a, c);
	service_conf_unref(a);
	service_conf_unref(b);
	service_conf_unref(c);
	assert_true(ab);
	assert_false(ac);
}

// Limits are compared by what is written to their files.
static void equal_compares_cgroup_limits_by_value(void **state)
{
	struct fixture *f = *state;
	struct service_conf *a = load_service(f, "[service:web]\ncommand = x\nmemory_max = 1GiB\n"
						 "cpu_max = 50%\n");
	struct service_conf *b = load_service(f, "[service:web]\ncommand = x\n"
						 "memory_max = 1073741824\ncpu_max = 050%\n");
	struct service_conf *c = load_service(f, "[service:web]\ncommand = x\nmemory_max = 1GiB\n"
						 "cpu_max = 51%\n");
	struct service_conf *d = load_service(f, "[service:web]\ncommand = x\n"
						 "memory_high = 1GiB\ncpu_max = 50%\n");
	bool ab = service_conf_equal(a, b), ac = service_conf_equal(a, c);
	bool ad = service_conf_equal(a, d);
	service_conf_unref(a);
	service_conf_unref(b);
	service_conf_unref(c);
	service_conf_unref(d);
	assert_true(ab);
	assert_false(ac);
	assert_false(ad);
}

static void equal_compares_environment_files_and_limits(void **state)
{
	struct fixture *f = *state;
	struct service_conf *a = load_service(f, "[service:web]\ncommand = x\n"
						 "environment_file = /a.env -/b.env\nlimit_nofile = 1024\n");
	struct service_conf *b = load_service(f, "[service:web]\ncommand = x\n"
						 "environment_file = /a.env /b.env\nlimit_nofile = 1024\n");
	struct service_conf *c = load_service(f, "[service:web]\ncommand = x\n"
						 "environment_file = /a.env -/b.env\nlimit_nofile = 1024:1025\n");
	struct service_conf *d = load_service(f, "[service:web]\ncommand = x\n"
						 "environment_file = /a.env -/b.env\n"
						 "limit_nofile = 1024:1024\n");
	bool ab = service_conf_equal(a, b), ac = service_conf_equal(a, c);
	bool ad = service_conf_equal(a, d);
	service_conf_unref(a);
	service_conf_unref(b);
	service_conf_unref(c);
	service_conf_unref(d);
	assert_false(ab);
	assert_false(ac);
	assert_true(ad);
}

static void equal_ignores_how_command_is_written(void **state)
{
	struct fixture *f = *state;
	struct service_conf *a = load_service(f, "[service:web]\ncommand = /bin/echo hi\n");
	struct service_conf *b = load_service(f, "[service:web]\ncommand = '/bin/echo'   \"hi\"\n");
	bool equal = service_conf_equal(a, b);
	service_conf_unref(a);
	service_conf_unref(b);
	assert_true(equal);
}

static void reference_outlives_config(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, full_config);
	struct service_conf *s = config_service(c, "web");
	assert_ptr_equal(service_conf_ref(s), s);
	assert_int_equal(s->refs, 2);
	config_destroy(c);
	f->config = NULL;
	assert_int_equal(s->refs, 1);
	assert_string_equal(s->name, "web");
	assert_string_equal(s->env[1], "GREETING=hello world");
	service_conf_unref(s);
}

static void reference_counting_balanced(void **state)
{
	struct fixture *f = *state;
	struct config *c = load_ok(f, full_config);
	struct service_conf *s = config_service(c, "dns");
	service_conf_ref(s);
	service_conf_ref(s);
	assert_int_equal(s->refs, 3);
	service_conf_unref(s);
	service_conf_unref(s);
	assert_int_equal(s->refs, 1);
	assert_string_equal(s->sockets[0], "dns");
	service_conf_unref(NULL);
}

/* Printing */

/* Prints f->config into f->printed and loads that file back into f->again. */
static struct config *print_and_reload(struct fixture *f)
{
	FILE *out = fopen(f->printed, "w");
	assert_non_null(out);
	config_print(f->config, out);
	assert_int_equal(fclose(out), 0);
	config_destroy(f->again);
	free(f->again_errors);
	f->again_errors = NULL;
	f->again = config_load(f->printed, &f->again_errors);
	return f->again;
}

/* Reads a file into f->text. */
static const char *file_text(struct fixture *f, const char *path)
{
	FILE *in = fopen(path, "r");
	assert_non_null(in);
	free(f->text);
	f->text = calloc(1, 65536);
	assert_non_null(f->text);
	size_t n = fread(f->text, 1, 65535, in);
	f->text[n] = '\0';
	fclose(in);
	return f->text;
}

static void assert_configs_equal(const struct config *a, const struct config *b)
{
	assert_true((a->control == NULL) == (b->control == NULL));
	if (a->control)
		assert_string_equal(a->control, b->control);
	assert_true((a->control_group == NULL) == (b->control_group == NULL));
	if (a->control_group)
		assert_string_equal(a->control_group, b->control_group);
	assert_true((a->cgroup == NULL) == (b->cgroup == NULL));
	if (a->cgroup)
		assert_string_equal(a->cgroup, b->cgroup);
	assert_int_equal(a->nsockets, b->nsockets);
	for (size_t i = 0; i < a->nsockets; i++) {
		const struct socket_conf *x = a->sockets[i], *y = b->sockets[i];
		assert_string_equal(x->name, y->name);
		assert_string_equal(x->listen, y->listen);
		assert_int_equal(x->backlog, y->backlog);
		assert_int_equal(x->mode, y->mode);
		assert_true((x->owner == NULL) == (y->owner == NULL));
		if (x->owner)
			assert_string_equal(x->owner, y->owner);
		assert_true((x->group == NULL) == (y->group == NULL));
		if (x->group)
			assert_string_equal(x->group, y->group);
		assert_int_equal(x->uid, y->uid);
		assert_int_equal(x->gid, y->gid);
		assert_memory_equal(&x->addr, &y->addr, sizeof(x->addr));
	}
	assert_int_equal(a->nservices, b->nservices);
	for (size_t i = 0; i < a->nservices; i++) {
		assert_string_equal(a->services[i]->name, b->services[i]->name);
		assert_true(service_conf_equal(a->services[i], b->services[i]));
	}
}

/* Loads text, prints it, loads the print and compares both. */
static void assert_print_round_trips(struct fixture *f, const char *text)
{
	load_ok(f, text);
	if (!print_and_reload(f))
		fail_msg("printed configuration does not load:\n%s--- printed:\n%s",
			f->again_errors ? f->again_errors : "(no errors)\n",
			file_text(f, f->printed));
	assert_configs_equal(f->config, f->again);
}

static void print_full_file_round_trips(void **state)
{
	assert_print_round_trips(*state, full_config);
}

static void print_defaults_round_trip(void **state)
{
	assert_print_round_trips(*state, "[service:web]\ncommand = /bin/true\n");
}

/* Fails unless each of the n lines is in text. */
static void assert_lines_in(const char *text, const char *const *lines, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!strstr(text, lines[i]))
			fail_msg("\"%.*s\" missing from:\n%s", (int)strlen(lines[i]) - 1, lines[i],
				text);
	}
}

static void print_writes_every_default(void **state)
{
	struct fixture *f = *state;
	load_ok(f, "[socket:a]\nlisten = unix:/run/a.sock\n[service:web]\ncommand = /bin/true\n"
		   "sockets = a\nready = notify\n");
	assert_non_null(print_and_reload(f));
	const char *text = file_text(f, f->printed);
	static const char *const lines[] = {"[baton]\n", "[socket:a]\n", "backlog = 1024\n",
		"mode = 0666\n", "[service:web]\n", "command = /bin/true\n", "sockets = a\n",
		"instances = 1\n", "ready = notify\n", "ready_timeout = 30s\n",
		"stop_signal = TERM\n", "stop_grace = 10s\n", "stop_delay = 0s\n",
		"restart = always\n", "restart_delay = 100ms\n", "restart_delay_max = 10s\n",
		"start_limit = 5/10s\n", "upgrade = all\n", "max_draining = 2\n"};
	assert_lines_in(text, lines, sizeof(lines) / sizeof(lines[0]));
}

static void print_process_settings_round_trip(void **state)
{
	struct fixture *f = *state;
	assert_print_round_trips(f, "[socket:a]\nlisten = unix:/run/a.sock\nowner = root\n"
				    "group = root\n[service:web]\ncommand = /bin/true\n"
				    "environment_file = /etc/a.env \"-/etc/b c.env\" \"-/etc/it's;.env\"\n"
				    "limit_nofile = 1024:4096\nlimit_core = 0:infinity\n"
				    "limit_nproc = infinity\nlimit_memlock = 65536\n"
				    "limit_stack = 8MiB:16777216\numask = 2\nnice = -3\n"
				    "oom_score_adjust = -17\n");
	const char *text = file_text(f, f->printed);
	static const char *const lines[] = {"owner = root\n", "group = root\n",
		"environment_file = /etc/a.env '-/etc/b c.env' -/etc/it\\'s;.env\n",
		"limit_nofile = 1024:4096\n", "limit_core = 0:infinity\n",
		"limit_nproc = infinity\n", "limit_memlock = 64KiB\n",
		"limit_stack = 8MiB:16MiB\n", "umask = 0002\n", "nice = -3\n",
		"oom_score_adjust = -17\n"};
	assert_lines_in(text, lines, sizeof(lines) / sizeof(lines[0]));
}

static void print_cgroup_limits_round_trip(void **state)
{
	struct fixture *f = *state;
	assert_print_round_trips(f, "[service:web]\ncommand = /bin/true\nio_weight = 0050\n"
				    "memory_max = 1073741824\nmemory_high = 4097\ncpu_max = 250%\n"
				    "cpu_weight = 1\npids_max = max\n");
	const char *text = file_text(f, f->printed);
	assert_non_null(strstr(text, "memory_max = 1GiB\nmemory_high = 4097\ncpu_max = 250%\n"
				     "cpu_weight = 1\npids_max = max\nio_weight = 50\n"));
}

// The gate is written when set, as command is; its timeout when not the default.
static void print_gate_and_its_timeout_round_trip(void **state)
{
	struct fixture *f = *state;
	assert_print_round_trips(f, "[service:web]\ncommand = /bin/true\nupgrade = rolling\n"
				    "upgrade_gate = /usr/bin/gate \"it's\" ';x' '#y'\n"
				    "    --url http://127.0.0.1:9000/health --expect 'all good'\n"
				    "upgrade_gate_timeout = 90000ms\nmax_draining = 1\n");
	const char *text = file_text(f, f->printed);
	assert_non_null(strstr(text, "upgrade = rolling:1\n"
				     "upgrade_gate = /usr/bin/gate it\\'s \\;x #y --url "
				     "http://127.0.0.1:9000/health --expect 'all good'\n"
				     "upgrade_gate_timeout = 1m30s\nmax_draining = 1\n"));
	assert_print_round_trips(f, "[service:web]\ncommand = /bin/true\nupgrade_gate = g\n"
				    "upgrade_gate_timeout = 60s\n");
	text = file_text(f, f->printed);
	assert_non_null(strstr(text, "upgrade = all\nupgrade_gate = g\nmax_draining = 2\n"));
	assert_print_round_trips(f, "[service:web]\ncommand = /bin/true\n");
	assert_null(strstr(file_text(f, f->printed), "upgrade_gate"));
}

// A gate too long for a line is continued on indented lines, and reads back the same.
static void print_long_gate_round_trips(void **state)
{
	struct fixture *f = *state;
	assert_print_round_trips(f,
		"[service:web]\ncommand = /bin/true\n"
		"upgrade_gate = /usr/local/bin/compare-error-rates --baseline $BATON_OLD_PIDS\n"
		"    --candidate $BATON_NEW_PIDS --window 30s --max-ratio 1.05 --min-requests 500\n"
		"    --prometheus http://127.0.0.1:9090 --query 'rate(http_errors[1m])'\n");
	const char *text = file_text(f, f->printed);
	assert_non_null(strstr(text, "upgrade_gate = /usr/local/bin/compare-error-rates"));
	assert_non_null(strstr(text, "\n   "));
}

// cgroup is written when it is not auto, the default.
static void print_cgroup_when_not_auto(void **state)
{
	struct fixture *f = *state;
	const char *text = "[baton]\ncgroup = /sys/fs/cgroup/a;b #c\n";
	assert_print_round_trips(f, text);
	assert_non_null(strstr(file_text(f, f->printed), text));
	assert_print_round_trips(f, "[baton]\ncgroup = none\n");
	assert_non_null(strstr(file_text(f, f->printed), "[baton]\ncgroup = none\n"));
	assert_print_round_trips(f, "[baton]\ncgroup = auto\n");
	assert_null(strstr(file_text(f, f->printed), "cgroup"));
}

// Like user, group and directory, what is not set is not written.
static void print_leaves_out_unset_process_settings(void **state)
{
	struct fixture *f = *state;
	load_ok(f, "[socket:a]\nlisten = unix:/run/a.sock\n[service:web]\ncommand = /bin/true\n");
	assert_non_null(print_and_reload(f));
	const char *text = file_text(f, f->printed);
	static const char *const keys[] = {"owner", "group", "environment_file", "limit_", "umask",
		"nice", "oom_score_adjust", "memory_", "cpu_", "pids_", "io_"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strstr(text, keys[i]))
			fail_msg("\"%s\" written in:\n%s", keys[i], text);
	}
}

static void print_special_environment_round_trips(void **state)
{
	assert_print_round_trips(*state, "[service:web]\ncommand = /bin/true\n"
					 "environment = 'A=$HOME' \"B=say \\\"hi\\\"\" C=back\\\\slash "
					 "'D=tab\there' E= 'F=#x' G=`q`\n");
}

static void print_other_values_round_trip(void **state)
{
	assert_print_round_trips(*state, "[service:web]\ncommand = /bin/true\nready = delay:1m30s\n"
					 "start_limit = none\nupgrade = rolling\nuser = 0\n"
					 "restart = never\nstop_signal = 1\n"
					 "[service:db]\ncommand = /bin/db\nready = fd:3\n"
					 "restart_delay = 1.5s\nstop_grace = 90m\n");
}

static void print_long_continued_command_round_trips(void **state)
{
	assert_print_round_trips(*state,
		"[service:web]\n"
		"command = /usr/bin/server --listen-address 127.0.0.1 --port 8080\n"
		"    --log-file /var/log/server/access.log --error-log /var/log/server/error.log\n"
		"    --config /etc/server/server.conf --pid-file /run/server.pid --workers 16\n");
}

static void print_environment_with_semicolon_round_trips(void **state)
{
	assert_print_round_trips(*state,
		"[service:web]\ncommand = /bin/true\nenvironment = CMD=a\\ \\;b\n");
}

static void print_ready_timeout_without_ready_round_trips(void **state)
{
	assert_print_round_trips(*state,
		"[service:web]\ncommand = /bin/true\nready = none\nready_timeout = 5s\n");
}

// A word of 100 characters with a quote and dollars: in double quotes, with
// no backslash before a '$', it fits on the line it was read from.
static void print_long_word_with_quote_and_dollars_round_trips(void **state)
{
	char text[512];
	snprintf(text, sizeof(text), "[service:web]\ncommand = /bin/echo \"it's %.90s x\"\n",
		"$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$$"
		"$$$$$$$$$$");
	assert_print_round_trips(*state, text);
}

// 80 double quotes, a single quote and 80 backslashes: no one form of the word
// fits a line; single quotes, a backslash and single quotes again do.
static void print_word_in_mixed_quotes_round_trips(void **state)
{
	char word[200], text[512];
	memset(word, '"', 80);
	memcpy(word + 80, "'\\''", 4);
	memset(word + 84, '\\', 80);
	word[164] = '\0';
	snprintf(text, sizeof(text), "[service:web]\ncommand = '%s'\n", word);
	struct fixture *f = *state;
	assert_print_round_trips(f, text);
	const char *again = f->again->services[0]->argv[0];
	assert_int_equal(strlen(again), 161);
	assert_memory_equal(again + 79, "\"'\\", 3);
}

// A blank before a ';' between quotes would start a comment.
static void print_blank_before_semicolon_round_trips(void **state)
{
	assert_print_round_trips(*state,
		"[service:web]\ncommand = /bin/sh -c a\\ \\;b it\\'s\\ \\;c \\; \\ \\;\n");
}

// In double quotes, a backslash before a plain character is itself: written
// so, 61 of "'\a" fit the line they were read from.
static void print_backslashes_in_double_quotes_round_trip(void **state)
{
	char text[512] = "[service:web]\ncommand = \"";
	for (int i = 0; i < 61; i++)
		strcat(text, "'\\a");
	strcat(text, "\"\n");
	assert_print_round_trips(*state, text);
}

// A first word that fits the line only as command=word.
static void print_first_word_without_blanks_round_trips(void **state)
{
	char text[512] = "[service:web]\ncommand='";
	memset(text + strlen(text), 'A', 188);
	strcat(text, "\n B'\n");
	assert_print_round_trips(*state, text);
}

// '#' starts a comment only at the start of a line: a word wrapped there.
static void print_hash_words_round_trip(void **state)
{
	struct fixture *f = *state;
	// Twelve words of ten after "command = /bin/echo #a" fill a printed line.
	assert_print_round_trips(f, "[service:web]\ncommand = /bin/echo #a 0123456789 0123456789\n"
				    "    0123456789 0123456789 0123456789 0123456789 0123456789\n"
				    "    0123456789 0123456789 0123456789 0123456789 0123456789"
				    " #bbbbbbbbb #c\n");
	const char *printed = file_text(f, f->printed);
	assert_non_null(strstr(printed, " #a "));
	assert_non_null(strstr(printed, "\n   \\#"));
}

static void words_text_shows_control_characters(void **state)
{
	(void)state;
	char *words[] = {"sh", "-c", "echo a\n\techo 'b'", "it's", "a b", "$HOME"};
	char *text = config_words_text(words, 6);
	assert_non_null(text);
	assert_string_equal(text, "sh -c $'echo a\\n\\techo \\'b\\'' it\\'s 'a b' $HOME");
	free(text);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(full_file_baton_section),
		T(full_file_sockets),
		T(full_file_service),
		T(full_file_user_group_environment),
		T(full_file_ready_fd_after_sockets),
		T(defaults_for_service),
		T(defaults_for_socket),
		T(environment_files_in_order_with_their_optional_flag),
		T(limits_soft_and_hard),
		T(umask_nice_and_oom_score_adjust),
		T(cgroup_limits_each_with_its_file_value_and_line),
		T(error_cgroup_limits_name_key_and_value),
		T(error_cgroup_limit_without_a_cgroup),
		T(upgrade_gate_words_line_and_timeout),
		T(error_upgrade_gate_names_key_and_value),
		T(error_upgrade_gate_set_twice_continued_or_elsewhere),
		T(error_upgrade_gate_longer_than_a_command),
		T(socket_owner_and_group_resolved),
		T(error_owner_and_group_on_tcp_socket),
		T(error_unknown_socket_owner),
		T(error_soft_limit_above_hard),
		T(error_relative_environment_file),
		T(comments_blank_lines_and_crlf_accepted),
		T(empty_file_is_valid),
		T(error_unknown_key),
		T(error_key_of_another_section),
		T(error_bad_value),
		T(error_bad_duration_names_key),
		T(error_duplicate_key_names_first_line),
		T(error_duplicate_section),
		T(error_duplicate_baton_section),
		T(error_unknown_section_type),
		T(error_invalid_section_name),
		T(error_section_without_closing_bracket),
		T(error_key_before_any_section),
		T(error_line_without_equals),
		T(error_unknown_socket_at_sockets_line),
		T(error_socket_named_twice),
		T(error_service_without_command),
		T(error_socket_without_listen),
		T(error_mode_on_tcp_socket),
		T(error_two_sockets_same_address),
		T(error_ready_fd_taken_by_socket),
		T(error_restart_delay_max_below_delay),
		T(error_bad_environment),
		T(error_relative_directory),
		T(error_bad_listen_reported_once),
		T(error_bad_command_reported_once),
		T(error_missing_file),
		T(error_several_all_reported),
		T(errors_sorted_by_line),
		T(error_count_capped),
		T(continuation_joins_command),
		T(continuation_joins_environment),
		T(continuation_joins_sockets),
		T(continuation_of_quoted_command_word),
		T(continuation_rejected_for_other_keys),
		T(continuation_after_comment_still_joins),
		T(indented_key_after_section_is_a_key),
		T(line_of_197_characters_accepted),
		T(line_of_198_characters_refused),
		T(very_long_line_refused_once),
		T(line_with_nul_byte_refused),
		T(user_by_name),
		T(user_by_number),
		T(user_unknown_rejected),
		T(group_unknown_rejected),
		T(control_group_unknown_rejected),
		T(control_must_be_absolute),
		T(cgroup_auto_none_or_a_path),
		T(error_cgroup_not_absolute_or_with_dot_dot),
		T(equal_same_definition),
		T(equal_detects_each_difference),
		T(equal_compares_environment_files_and_limits),
		T(equal_compares_cgroup_limits_by_value),
		T(equal_compares_gates_by_words),
		T(equal_ignores_how_command_is_written),
		T(reference_outlives_config),
		T(reference_counting_balanced),
		T(print_full_file_round_trips),
		T(print_defaults_round_trip),
		T(print_writes_every_default),
		T(print_process_settings_round_trip),
		T(print_leaves_out_unset_process_settings),
		T(print_cgroup_limits_round_trip),
		T(print_gate_and_its_timeout_round_trip),
		T(print_long_gate_round_trips),
		T(print_cgroup_when_not_auto),
		T(print_special_environment_round_trips),
		T(print_other_values_round_trip),
		T(print_long_continued_command_round_trips),
		T(print_environment_with_semicolon_round_trips),
		T(print_ready_timeout_without_ready_round_trips),
		T(print_long_word_with_quote_and_dollars_round_trips),
		T(print_word_in_mixed_quotes_round_trips),
		T(print_blank_before_semicolon_round_trips),
		T(words_text_shows_control_characters),
		T(print_backslashes_in_double_quotes_round_trip),
		T(print_first_word_without_blanks_round_trips),
		T(print_hash_words_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
