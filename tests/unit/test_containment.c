/*
 * What batond writes into and reads from a generation's cgroup, against a
 * fake one: a temporary directory holding the files a cgroup v2 directory
 * has. The real hierarchy is driven by the integration tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cgroupfs.h"
#include "containment.h"

// Only the inotify callback calls it, and the tests never run a loop.
void lifecycle_cgroup_empty(struct generation *gen)
{
	(void)gen;
	fail_msg("lifecycle_cgroup_empty called");
}

static const char *const gen_files[] = {"memory.max", "memory.high", "cpu.max", "cpu.weight",
	"pids.max", "io.weight", "cgroup.procs", "cgroup.subtree_control"};

struct world {
	char dir[64];
	struct containment c;
	struct service svc;
	struct service_conf conf;
	struct generation gen;
};

static void put(const char *dir, const char *file, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void get(const char *dir, const char *file, char *out, size_t len)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
}

static void gen_dir(struct world *w, char *out, size_t len)
{
	snprintf(out, len, "%s/web/gen-5", w->dir);
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	// mkdtemp replaces the template's last six bytes with a unique name.
	snprintf(w->dir, sizeof(w->dir), "/tmp/baton-cgroup-XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	put(w->dir, "cgroup.controllers", "cpu memory pids io hugetlb\n");
	put(w->dir, "cgroup.subtree_control", "");
	char path[256];
	snprintf(path, sizeof(path), "%s/web", w->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	put(path, "cgroup.subtree_control", "");
	gen_dir(w, path, sizeof(path));
	assert_int_equal(mkdir(path, 0755), 0);
	for (size_t i = 0; i < sizeof(gen_files) / sizeof(gen_files[0]); i++)
		put(path, gen_files[i], "");
	put(path, "cgroup.events", "populated 0\nfrozen 0\n");
	struct containment *c = &w->c;
	c->root = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(c->root >= 0);
	snprintf(c->path, sizeof(c->path), "%s", w->dir);
	c->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	assert_true(c->inotify >= 0);
	c->enabled = c->available = CGROUP_CPU | CGROUP_MEMORY | CGROUP_PIDS | CGROUP_IO;
	list_init(&c->groups);
	w->svc.name = "web";
	w->gen.svc = &w->svc;
	w->gen.number = 5;
	w->gen.conf = &w->conf;
	w->gen.cgroup_dir = -1;
	*state = w;
	return 0;
}

// Empties the fake cgroups, so that batond may remove them as it would real ones.
static void empty_dir(const char *dir)
{
	char path[512];
	const char *more[] = {"cgroup.events", "cpu.stat", "memory.current", "memory.peak",
		"pids.current", "memory.events", "cgroup.controllers"};
	for (size_t i = 0; i < sizeof(gen_files) / sizeof(gen_files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, gen_files[i]);
		unlink(path);
	}
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, more[i]);
		unlink(path);
	}
}

static int teardown(void **state)
{
	struct world *w = *state;
	char path[256];
	if (w->c.root >= 0) {
		close(w->c.root);
		close(w->c.inotify);
	}
	gen_dir(w, path, sizeof(path));
	empty_dir(path);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/web", w->dir);
	empty_dir(path);
	rmdir(path);
	empty_dir(w->dir);
	assert_int_equal(rmdir(w->dir), 0);
	free(w);
	return 0;
}

static void set_limit(struct world *w, enum cgroup_limit_id id, const char *value)
{
	w->conf.cgroup_limits[id].set = true;
	snprintf(w->conf.cgroup_limits[id].value, sizeof(w->conf.cgroup_limits[id].value), "%s",
		value);
}

static void each_limit_is_written_to_its_file(void **state)
{
	struct world *w = *state;
	char err[512], text[64], path[256];
	set_limit(w, CGROUP_MEMORY_MAX, "67108864");
	set_limit(w, CGROUP_MEMORY_HIGH, "max");
	set_limit(w, CGROUP_CPU_MAX, "150000 100000");
	set_limit(w, CGROUP_CPU_WEIGHT, "200");
	set_limit(w, CGROUP_PIDS_MAX, "64");
	set_limit(w, CGROUP_IO_WEIGHT, "50");
	assert_int_equal(containment_open(&w->c, &w->gen, err, sizeof(err)), 0);
	assert_non_null(w->gen.cgroup);
	assert_true(w->gen.cgroup_dir >= 0);
	gen_dir(w, path, sizeof(path));
	const char *expected[][2] = {{"memory.max", "67108864"}, {"memory.high", "max"},
		{"cpu.max", "150000 100000"}, {"cpu.weight", "200"}, {"pids.max", "64"},
		{"io.weight", "50"}};
	for (size_t i = 0; i < 6; i++) {
		get(path, expected[i][0], text, sizeof(text));
		assert_string_equal(text, expected[i][1]);
	}
	// The service's cgroup gives its children the controllers batond uses.
	snprintf(path, sizeof(path), "%s/web", w->dir);
	get(path, "cgroup.subtree_control", text, sizeof(text));
	assert_string_equal(text, "+io");
	containment_close(&w->c, &w->gen);
	assert_null(w->gen.cgroup);
}

static void a_limit_not_set_is_not_written(void **state)
{
	struct world *w = *state;
	char err[512], text[64], path[256];
	set_limit(w, CGROUP_PIDS_MAX, "10");
	assert_int_equal(containment_open(&w->c, &w->gen, err, sizeof(err)), 0);
	gen_dir(w, path, sizeof(path));
	get(path, "memory.max", text, sizeof(text));
	assert_string_equal(text, "");
	get(path, "pids.max", text, sizeof(text));
	assert_string_equal(text, "10");
	containment_close(&w->c, &w->gen);
}

static void a_limit_the_kernel_refuses_names_file_value_and_key(void **state)
{
	struct world *w = *state;
	char err[512], path[256];
	gen_dir(w, path, sizeof(path));
	strcat(path, "/memory.max");
	unlink(path);
	set_limit(w, CGROUP_MEMORY_MAX, "1048576");
	assert_int_equal(containment_open(&w->c, &w->gen, err, sizeof(err)), -1);
	assert_null(w->gen.cgroup);
	assert_non_null(strstr(err, "/web/gen-5: memory.max 1048576 (memory_max): "));
	assert_non_null(strstr(err, strerror(ENOENT)));
}

static void usage_is_read_from_the_cgroup_files(void **state)
{
	struct world *w = *state;
	char err[512], path[256];
	gen_dir(w, path, sizeof(path));
	put(path, "cpu.stat", "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n");
	put(path, "memory.current", "4194304\n");
	put(path, "memory.peak", "8388608\n");
	put(path, "pids.current", "3\n");
	put(path, "memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n");
	assert_int_equal(containment_open(&w->c, &w->gen, err, sizeof(err)), 0);
	// A cgroup that was there already has seen its OOM kills.
	assert_int_equal(w->gen.oom_kills, 1);
	struct cgroup_usage u;
	containment_usage(&w->c, &w->gen, &u);
	assert_true(u.cpu > 1.4999 && u.cpu < 1.5001);
	assert_int_equal(u.memory, 4194304);
	assert_int_equal(u.memory_peak, 8388608);
	assert_int_equal(u.tasks, 3);
	assert_int_equal(u.oom_kills, 1);
	unlink(strcat(path, "/memory.peak"));
	containment_usage(&w->c, &w->gen, &u);
	assert_int_equal(u.memory_peak, -1);
	containment_close(&w->c, &w->gen);
}

static void without_a_cgroup_nothing_is_counted(void **state)
{
	struct world *w = *state;
	struct cgroup_usage u;
	containment_usage(&w->c, &w->gen, &u);
	assert_true(u.cpu < 0);
	assert_int_equal(u.memory, -1);
	assert_int_equal(u.tasks, -1);
	char who[64];
	assert_int_equal(containment_strays(&w->c, &w->gen, who, sizeof(who)), 0);
	assert_false(containment_populated(&w->c, &w->gen));
}

static void an_empty_cgroup_is_removed_then_its_service_s(void **state)
{
	struct world *w = *state;
	char err[512], path[256];
	assert_int_equal(containment_open(&w->c, &w->gen, err, sizeof(err)), 0);
	gen_dir(w, path, sizeof(path));
	empty_dir(path);
	put(path, "cgroup.events", "populated 0\nfrozen 0\n");
	snprintf(path, sizeof(path), "%s/web", w->dir);
	empty_dir(path);
	// A real cgroup's files go with it; these are unlinked for rmdir to work.
	gen_dir(w, path, sizeof(path));
	char events[300];
	snprintf(events, sizeof(events), "%s/cgroup.events", path);
	assert_true(cgroupfs_populated(w->gen.cgroup_dir) == false);
	unlink(events);
	containment_close(&w->c, &w->gen);
	assert_true(list_empty(&w->c.groups));
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/web", w->dir);
	assert_int_equal(access(path, F_OK), -1);
}

static void controllers_and_keys_are_parsed(void **state)
{
	struct world *w = *state;
	assert_int_equal(cgroupfs_controllers(w->c.root, "cgroup.controllers"),
		CGROUP_CPU | CGROUP_MEMORY | CGROUP_PIDS | CGROUP_IO);
	put(w->dir, "cpu.stat", "usage_usec 12\nusage_usec_x 99\n");
	assert_int_equal(cgroupfs_key(w->c.root, "cpu.stat", "usage_usec"), 12);
	assert_int_equal(cgroupfs_key(w->c.root, "cpu.stat", "user_usec"), -1);
	put(w->dir, "memory.current", "max\n");
	assert_int_equal(cgroupfs_number(w->c.root, "memory.current"), -1);
	assert_int_equal(cgroupfs_controller_bit("hugetlb"), 0);
	assert_string_equal(cgroupfs_controller_name(CGROUP_PIDS), "pids");
}

static void limits_are_checked_against_the_controllers(void **state)
{
	struct world *w = *state;
	char err[1024];
	struct service_conf *services[] = {&w->conf};
	struct config config = {.path = "/etc/baton.conf", .services = services, .nservices = 1};
	w->conf.name = "web";
	set_limit(w, CGROUP_MEMORY_MAX, "1048576");
	w->conf.cgroup_limits[CGROUP_MEMORY_MAX].line = 7;
	assert_int_equal(containment_check(&w->c, &config, err, sizeof(err)), 0);
	w->c.enabled = CGROUP_CPU;
	assert_int_equal(containment_check(&w->c, &config, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/etc/baton.conf:7: memory_max: the memory controller is "
				    "not available in "));
	int root = w->c.root;
	w->c.root = -1;
	snprintf(w->c.why, sizeof(w->c.why), "[baton] cgroup = none");
	assert_int_equal(containment_check(&w->c, &config, err, sizeof(err)), -1);
	assert_string_equal(err, "/etc/baton.conf:7: memory_max: needs a cgroup, and batond has "
				 "none: [baton] cgroup = none");
	w->c.root = root;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(each_limit_is_written_to_its_file),
		T(a_limit_not_set_is_not_written),
		T(a_limit_the_kernel_refuses_names_file_value_and_key),
		T(usage_is_read_from_the_cgroup_files),
		T(without_a_cgroup_nothing_is_counted),
		T(an_empty_cgroup_is_removed_then_its_service_s),
		T(controllers_and_keys_are_parsed),
		T(limits_are_checked_against_the_controllers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
