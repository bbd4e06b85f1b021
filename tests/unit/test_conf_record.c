#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_record.h"
#include "config.h"
#include "config_read.h"

// Reads back what conf_record wrote: records, each maybe followed by bytes.
struct reader {
	const char *text;
	size_t len, pos;
	struct protocol_record rec;
};

static int next(struct reader *r)
{
	if (r->pos >= r->len)
		return -1;
	const char *line = r->text + r->pos, *nl = memchr(line, '\n', r->len - r->pos);
	size_t n = nl ? (size_t)(nl - line) : r->len - r->pos;
	r->pos += n + 1;
	return protocol_parse_record(&r->rec, line, n);
}

static char *bytes(struct reader *r)
{
	size_t n = strtoul(protocol_record_get(&r->rec, "length"), NULL, 10);
	char *text = strndup(r->text + r->pos, n);
	r->pos += n + 1;
	return text;
}

// Writes c as records and reads them back as a new definition.
static struct service_conf *round_trip(const struct service_conf *c)
{
	struct protocol_buf b = {0};
	conf_record_write_service(&b, 7, c);
	assert_false(b.failed);
	struct reader r = {b.data, b.len, 0, {0}};
	assert_int_equal(next(&r), 0);
	assert_string_equal(r.rec.type, "conf");
	assert_string_equal(protocol_record_get(&r.rec, "id"), "7");
	struct service_conf *back = conf_record_read_service(&r.rec, bytes(&r));
	assert_non_null(back);
	while (next(&r) == 0) {
		assert_string_equal(r.rec.type, "word");
		char list[16];
		snprintf(list, sizeof(list), "%s", protocol_record_get(&r.rec, "list"));
		assert_int_equal(conf_record_add_word(back, list, bytes(&r)), 0);
	}
	protocol_buf_finish(&b);
	return back;
}

static void assert_same(const struct service_conf *a, const struct service_conf *b)
{
	assert_true(service_conf_equal(a, b));
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->command, b->command);
	assert_int_equal(a->line, b->line);
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->gid, b->gid);
	assert_int_equal(a->group_gid, b->group_gid);
	assert_int_equal(a->has_user, b->has_user);
	assert_int_equal(a->has_group, b->has_group);
	assert_int_equal(a->ngroups, b->ngroups);
	for (int i = 0; i < a->ngroups; i++)
		assert_int_equal(a->groups[i], b->groups[i]);
	assert_null(b->argv[b->argc]);
	assert_null(b->env[b->nenv]);
}

static struct config *load(const char *text)
{
	char *errors = NULL;
	struct config *c = config_load_text("test", text, &errors);
	if (!c)
		fail_msg("%s", errors);
	return c;
}

static void every_field_of_every_definition_comes_back(void **state)
{
	(void)state;
	char path[512], *errors = NULL;
	snprintf(path, sizeof(path), "%s/configs/full.conf", getenv("BATON_TEST_DATA"));
	struct config *c = config_load(path, &errors);
	if (!c)
		fail_msg("%s", errors);
	for (size_t i = 0; i < c->nservices; i++) {
		struct service_conf *back = round_trip(c->services[i]);
		assert_same(c->services[i], back);
		service_conf_unref(back);
	}
	config_destroy(c);
}

static void words_come_back_byte_for_byte(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\n");
	char *words[] = {"sh", "-c", "printf '%s\\n' \"$1\"\n\t\x01 ;#=", "", "a b", NULL};
	char *env[] = {"A=line one\nline two", "B=", "C=\"quoted\" 'and' \\back", NULL};
	assert_int_equal(config_set_words(c->services[0], false, words, 5), 0);
	assert_int_equal(config_set_words(c->services[0], true, env, 3), 0);
	struct service_conf *back = round_trip(c->services[0]);
	assert_same(c->services[0], back);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(back->argv[i], words[i]);
	service_conf_unref(back);
	config_destroy(c);
}

static void resolved_ids_are_kept_not_looked_up_again(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\n");
	struct service_conf *s = c->services[0];
	static gid_t groups[] = {4, 27, 1000};
	s->has_user = true;
	s->user = strdup("someone-who-is-gone");
	s->uid = 4242;
	s->gid = 4343;
	s->groups = malloc(sizeof(groups));
	memcpy(s->groups, groups, sizeof(groups));
	s->ngroups = 3;
	s->forward_signals = 1ull << 63 | 1ull << SIGHUP;
	struct service_conf *back = round_trip(s);
	assert_same(s, back);
	assert_string_equal(back->user, "someone-who-is-gone");
	assert_true(back->forward_signals == s->forward_signals);
	service_conf_unref(back);
	config_destroy(c);
}

static void a_long_list_of_groups_comes_back_whole(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\n");
	struct service_conf *s = c->services[0];
	s->ngroups = 300;
	s->groups = calloc(300, sizeof(gid_t));
	for (int i = 0; i < 300; i++)
		s->groups[i] = 4000000000u + (gid_t)i;
	struct service_conf *back = round_trip(s);
	assert_same(s, back);
	service_conf_unref(back);
	config_destroy(c);
}

static void environment_files_and_process_settings_come_back(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\n"
				"environment_file = /etc/a.env '-/etc/b c.env'\n"
				"limit_nofile = 1024:infinity\nlimit_core = 0\nlimit_nproc = infinity\n"
				"limit_memlock = 64KiB:1MiB\nlimit_stack = 8388609\n"
				"umask = 0\nnice = -20\noom_score_adjust = -1000\n");
	struct service_conf *s = c->services[0], *back = round_trip(s);
	assert_same(s, back);
	assert_int_equal(back->nenv_files, 2);
	assert_string_equal(back->env_files[1].path, "/etc/b c.env");
	assert_true(back->env_files[1].optional);
	assert_false(back->env_files[0].optional);
	for (int i = 0; i < LIMIT_COUNT; i++)
		assert_true(back->limits[i].set);
	assert_true(back->limits[LIMIT_NOFILE].hard == RLIM_INFINITY);
	assert_true(back->limits[LIMIT_STACK].soft == 8388609);
	assert_true(back->has_umask && back->umask == 0);
	assert_true(back->has_nice && back->nice == -20);
	assert_true(back->has_oom_score_adjust && back->oom_score_adjust == -1000);
	service_conf_unref(back);
	config_destroy(c);
}

// A state written before these settings has none of their words: all unset.
static void settings_not_written_are_unset(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\n");
	struct service_conf *back = round_trip(c->services[0]);
	assert_same(c->services[0], back);
	assert_int_equal(back->nenv_files, 0);
	for (int i = 0; i < LIMIT_COUNT; i++)
		assert_false(back->limits[i].set);
	assert_false(back->has_umask || back->has_nice || back->has_oom_score_adjust);
	service_conf_unref(back);
	config_destroy(c);
}

static void bad_setting_words_are_refused(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\n");
	struct service_conf *s = c->services[0];
	static const char *const bad[] = {"limit_nofile=2:1", "limit_nofile", "nice=20",
		"oom_score_adjust=-1001", "umask=1000", "limit_bogus=1", "=1", "user=root"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (conf_record_add_word(s, "setting", strdup(bad[i])) == 0)
			fail_msg("setting \"%s\" taken", bad[i]);
	}
	assert_int_equal(conf_record_add_word(s, "env_file", strdup("relative.env")), -1);
	assert_int_equal(conf_record_add_word(s, "env_file", strdup("-")), -1);
	assert_int_equal(conf_record_add_word(s, "env_file", strdup("-/ok.env")), 0);
	assert_int_equal(conf_record_add_word(s, "setting", strdup("limit_core=infinity")), 0);
	assert_true(s->limits[LIMIT_CORE].set);
	config_destroy(c);
}

static void cgroup_limits_and_their_lines_come_back(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\nmemory_max = 536870913\n"
				"memory_high = max\ncpu_max = 102400%\ncpu_weight = 1\n"
				"pids_max = 4194304\n\nio_weight = 10000\n");
	struct service_conf *s = c->services[0], *back = round_trip(s);
	assert_same(s, back);
	for (int i = 0; i < CGROUP_LIMIT_COUNT; i++) {
		const struct cgroup_limit_conf *x = &s->cgroup_limits[i];
		const struct cgroup_limit_conf *y = &back->cgroup_limits[i];
		assert_true(y->set);
		assert_int_equal(y->line, x->line);
		assert_string_equal(y->value, x->value);
		assert_string_equal(y->text, x->text);
	}
	assert_int_equal(back->cgroup_limits[CGROUP_IO_WEIGHT].line, 9);
	assert_string_equal(back->cgroup_limits[CGROUP_CPU_MAX].value, "102400000 100000");
	service_conf_unref(back);
	config_destroy(c);
}

// A state written before cgroup limits has none of their words: none set.
static void cgroup_limits_not_written_are_unset(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\n");
	struct service_conf *back = round_trip(c->services[0]);
	for (int i = 0; i < CGROUP_LIMIT_COUNT; i++)
		assert_false(back->cgroup_limits[i].set);
	service_conf_unref(back);
	config_destroy(c);
}

static void bad_cgroup_words_are_refused(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\n");
	struct service_conf *s = c->services[0];
	static const char *const settings[] = {"memory_max=0", "memory_max=1GB", "cpu_max=150",
		"cpu_weight=max", "pids_max=0", "io_weight=10001", "memory_max"};
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		if (conf_record_add_word(s, "setting", strdup(settings[i])) == 0)
			fail_msg("setting \"%s\" taken", settings[i]);
	}
	// A line for a limit not set, or not a line.
	assert_int_equal(conf_record_add_word(s, "cgroup_line", strdup("pids_max=3")), -1);
	assert_int_equal(conf_record_add_word(s, "setting", strdup("pids_max=max")), 0);
	static const char *const lines[] = {"pids_max=0", "pids_max=-1", "pids_max=", "pids_max",
		"pids_max=4294967296", "limit_core=3", "pids_max=3 "};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (conf_record_add_word(s, "cgroup_line", strdup(lines[i])) == 0)
			fail_msg("cgroup_line \"%s\" taken", lines[i]);
	}
	assert_int_equal(conf_record_add_word(s, "cgroup_line", strdup("pids_max=3")), 0);
	assert_int_equal(s->cgroup_limits[CGROUP_PIDS_MAX].line, 3);
	assert_string_equal(s->cgroup_limits[CGROUP_PIDS_MAX].value, "max");
	config_destroy(c);
}

// A gate as long as a command, of backslashes: escaped in a field of the conf record, it
// would not fit.
static void the_upgrade_gate_and_its_timeout_come_back(void **state)
{
	(void)state;
	static char text[16384];
	char *p = text;
	p += sprintf(p, "[service:s]\ncommand = x\nupgrade_gate = gate 'a b'\n");
	for (int i = 0; i < 84; i++) {
		p += sprintf(p, "  ");
		for (int j = 0; j < 96; j++)
			*p++ = '\\';
		*p++ = '\n';
	}
	sprintf(p, "upgrade_gate_timeout = 1.5s\n");
	struct config *c = load(text);
	struct service_conf *s = c->services[0], *back = round_trip(s);
	assert_same(s, back);
	struct protocol_buf b = {0}, field = {0};
	conf_record_write_service(&b, 7, s);
	protocol_record_str(&field, "upgrade_gate", s->upgrade_gate.command);
	size_t conf_line = (size_t)((char *)memchr(b.data, '\n', b.len) - b.data);
	assert_true(conf_line + field.len > PROTOCOL_RECORD_MAX);
	protocol_buf_finish(&b);
	protocol_buf_finish(&field);
	assert_string_equal(back->upgrade_gate.command, s->upgrade_gate.command);
	assert_int_equal(back->upgrade_gate.argc, 86);
	assert_string_equal(back->upgrade_gate.argv[1], "a b");
	assert_int_equal(strlen(back->upgrade_gate.argv[85]), 48);
	assert_null(back->upgrade_gate.argv[86]);
	assert_true(back->upgrade_gate_timeout == 1.5);
	service_conf_unref(back);
	config_destroy(c);
}

// A definition without a gate has none after a re-exec, and the default timeout.
static void no_upgrade_gate_comes_back_as_none(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\n");
	struct service_conf *back = round_trip(c->services[0]);
	assert_same(c->services[0], back);
	assert_null(back->upgrade_gate.command);
	assert_null(back->upgrade_gate.argv);
	assert_true(back->upgrade_gate_timeout == CONFIG_UPGRADE_GATE_TIMEOUT);
	service_conf_unref(back);
	config_destroy(c);
}

// A state written before the gate carries neither it nor its timeout: none, and 60s.
static void a_state_from_before_the_gate_reads_none(void **state)
{
	(void)state;
	const char *line = "conf id=0 name=s line=1 instances=1 ready_mode=0 ready_fd=0 "
			   "ready_delay=0 ready_timeout=30 stop_signal=15 stop_grace=10 "
			   "stop_delay=0 restart=0 restart_delay=0.1 restart_delay_max=10 "
			   "start_limit_burst=5 start_limit_interval=10 upgrade_batch=0 "
			   "max_draining=2 has_user=0 uid=0 gid=0 has_group=0 group_gid=0 "
			   "forward_signals=0 log=0 log_json=0 log_max_size=10485760 log_keep=5 "
			   "log_buffer=65536 log_drop=0 check_interval=1 check_timeout=5 "
			   "check_failures=3 watchdog=0 length=1";
	struct protocol_record rec;
	assert_int_equal(protocol_parse_record(&rec, line, strlen(line)), 0);
	struct service_conf *c = conf_record_read_service(&rec, strdup("x"));
	assert_non_null(c);
	assert_null(c->upgrade_gate.command);
	assert_null(c->upgrade_gate.argv);
	assert_true(c->upgrade_gate_timeout == CONFIG_UPGRADE_GATE_TIMEOUT);
	service_conf_unref(c);
}

// The gate's text comes once; its words are appended.
static void a_second_gate_text_is_refused(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\n");
	struct service_conf *s = c->services[0];
	assert_int_equal(conf_record_add_word(s, "gate_command", strdup("gate --now")), 0);
	assert_int_equal(conf_record_add_word(s, "gate_command", strdup("other")), -1);
	assert_int_equal(conf_record_add_word(s, "upgrade_gate", strdup("gate")), 0);
	assert_int_equal(conf_record_add_word(s, "upgrade_gate", strdup("--now")), 0);
	assert_string_equal(s->upgrade_gate.command, "gate --now");
	assert_int_equal(s->upgrade_gate.argc, 2);
	assert_string_equal(s->upgrade_gate.argv[1], "--now");
	assert_null(s->upgrade_gate.argv[2]);
	config_destroy(c);
}

static void a_record_with_a_field_missing_is_refused(void **state)
{
	(void)state;
	struct protocol_record rec;
	const char *line = "conf id=0 name=s line=1 instances=1 length=1";
	assert_int_equal(protocol_parse_record(&rec, line, strlen(line)), 0);
	assert_null(conf_record_read_service(&rec, strdup("x")));
}

static void an_unknown_word_list_is_refused(void **state)
{
	(void)state;
	struct config *c = load("[service:s]\ncommand = x\n");
	assert_int_equal(conf_record_add_word(c->services[0], "argc", strdup("x")), -1);
	config_destroy(c);
}

static void the_configuration_and_its_sockets_come_back(void **state)
{
	(void)state;
	struct config *c = load("[baton]\ncontrol = /run/x.sock\n[socket:a]\nlisten = "
				"unix:/run/a.sock\nmode = 0600\nbacklog = 7\nowner = root\n"
				"group = 0\n[socket:b]\nlisten = tcp:[::1]:80\n");
	struct protocol_buf b = {0};
	conf_record_write_config(&b, c);
	struct reader r = {b.data, b.len, 0, {0}};
	assert_int_equal(next(&r), 0);
	struct config *back = conf_record_read_config(&r.rec);
	assert_non_null(back);
	while (next(&r) == 0)
		assert_int_equal(conf_record_add_socket(back, &r.rec), 0);
	assert_string_equal(back->control, "/run/x.sock");
	assert_int_equal(back->nsockets, 2);
	assert_string_equal(back->sockets[0]->listen, "unix:/run/a.sock");
	assert_int_equal(back->sockets[0]->mode, 0600);
	assert_int_equal(back->sockets[0]->backlog, 7);
	assert_string_equal(back->sockets[0]->owner, "root");
	assert_int_equal(back->sockets[0]->uid, 0);
	assert_string_equal(back->sockets[0]->group, "0");
	assert_int_equal(back->sockets[0]->gid, 0);
	assert_null(back->sockets[1]->owner);
	assert_null(back->sockets[1]->group);
	assert_string_equal(back->sockets[1]->addr.host, c->sockets[1]->addr.host);
	assert_int_equal(back->sockets[1]->addr.port, 80);
	protocol_buf_finish(&b);
	config_destroy(back);
	config_destroy(c);
}

// Read from a record of [baton]: the test's config record, with these fields after it.
static struct config *config_from(const char *fields)
{
	char line[256];
	struct protocol_record rec;
	snprintf(line, sizeof(line), "config has_control_group=0 control_gid=0%s", fields);
	assert_int_equal(protocol_parse_record(&rec, line, strlen(line)), 0);
	return conf_record_read_config(&rec);
}

static void the_cgroup_and_its_line_come_back(void **state)
{
	(void)state;
	static const char *const texts[] = {"[baton]\ncgroup = /sys/fs/cgroup/a b\n",
		"[baton]\ncontrol = /run/x.sock\n\ncgroup = none\n", "[baton]\ncgroup = auto\n",
		""};
	static const char *const cgroups[] = {"/sys/fs/cgroup/a b", "none", NULL, NULL};
	static const unsigned lines[] = {2, 4, 2, 0};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct config *c = load(texts[i]);
		struct protocol_buf b = {0};
		conf_record_write_config(&b, c);
		struct reader r = {b.data, b.len, 0, {0}};
		assert_int_equal(next(&r), 0);
		struct config *back = conf_record_read_config(&r.rec);
		assert_non_null(back);
		if (cgroups[i])
			assert_string_equal(back->cgroup, cgroups[i]);
		else
			assert_null(back->cgroup);
		assert_int_equal(back->cgroup_line, lines[i]);
		protocol_buf_finish(&b);
		config_destroy(back);
		config_destroy(c);
	}
}

// A state written before the key: auto, where batond found its cgroups then.
static void a_config_record_without_a_cgroup_is_auto(void **state)
{
	(void)state;
	struct config *c = config_from("");
	assert_non_null(c);
	assert_null(c->cgroup);
	assert_int_equal(c->cgroup_line, 0);
	config_destroy(c);
}

static void a_bad_cgroup_record_is_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {" cgroup=auto", " cgroup=relative", " cgroup=/a/../b",
		" cgroup=/a cgroup_line=-1", " cgroup=/a cgroup_line=x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct config *c = config_from(bad[i]);
		if (c)
			fail_msg("\"%s\" taken", bad[i]);
	}
	struct config *c = config_from(" cgroup=none cgroup_line=3");
	assert_non_null(c);
	assert_string_equal(c->cgroup, "none");
	assert_int_equal(c->cgroup_line, 3);
	config_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_field_of_every_definition_comes_back),
		cmocka_unit_test(words_come_back_byte_for_byte),
		cmocka_unit_test(resolved_ids_are_kept_not_looked_up_again),
		cmocka_unit_test(a_long_list_of_groups_comes_back_whole),
		cmocka_unit_test(environment_files_and_process_settings_come_back),
		cmocka_unit_test(settings_not_written_are_unset),
		cmocka_unit_test(bad_setting_words_are_refused),
		cmocka_unit_test(cgroup_limits_and_their_lines_come_back),
		cmocka_unit_test(cgroup_limits_not_written_are_unset),
		cmocka_unit_test(bad_cgroup_words_are_refused),
		cmocka_unit_test(the_upgrade_gate_and_its_timeout_come_back),
		cmocka_unit_test(no_upgrade_gate_comes_back_as_none),
		cmocka_unit_test(a_state_from_before_the_gate_reads_none),
		cmocka_unit_test(a_second_gate_text_is_refused),
		cmocka_unit_test(a_record_with_a_field_missing_is_refused),
		cmocka_unit_test(an_unknown_word_list_is_refused),
		cmocka_unit_test(the_configuration_and_its_sockets_come_back),
		cmocka_unit_test(the_cgroup_and_its_line_come_back),
		cmocka_unit_test(a_config_record_without_a_cgroup_is_auto),
		cmocka_unit_test(a_bad_cgroup_record_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
