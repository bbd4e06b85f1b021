#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "pidmap.h"

/* Distinct non-NULL values to store. */
static char objects[20001];

static void *obj(pid_t pid)
{
	return &objects[pid % 20001];
}

static void get_on_empty_map(void **state)
{
	(void)state;
	struct pidmap map;
	pidmap_init(&map);
	assert_null(pidmap_get(&map, 1));
	assert_null(pidmap_get(&map, 12345));
	pidmap_remove(&map, 1);
	assert_int_equal(map.count, 0);
	pidmap_finish(&map);
}

static void put_then_get(void **state)
{
	(void)state;
	struct pidmap map;
	pidmap_init(&map);
	assert_int_equal(pidmap_put(&map, 100, obj(1)), 0);
	assert_int_equal(pidmap_put(&map, 200, obj(2)), 0);
	assert_ptr_equal(pidmap_get(&map, 100), obj(1));
	assert_ptr_equal(pidmap_get(&map, 200), obj(2));
	assert_null(pidmap_get(&map, 300));
	assert_int_equal(map.count, 2);
	pidmap_finish(&map);
	assert_null(map.slots);
	assert_int_equal(map.count, 0);
}

static void put_replaces_value(void **state)
{
	(void)state;
	struct pidmap map;
	pidmap_init(&map);
	assert_int_equal(pidmap_put(&map, 42, obj(1)), 0);
	assert_int_equal(pidmap_put(&map, 42, obj(2)), 0);
	assert_ptr_equal(pidmap_get(&map, 42), obj(2));
	assert_int_equal(map.count, 1);
	pidmap_remove(&map, 42);
	assert_null(pidmap_get(&map, 42));
	pidmap_finish(&map);
}

static void remove_only_that_pid(void **state)
{
	(void)state;
	struct pidmap map;
	pidmap_init(&map);
	for (pid_t pid = 1; pid <= 8; pid++)
		assert_int_equal(pidmap_put(&map, pid, obj(pid)), 0);
	pidmap_remove(&map, 4);
	pidmap_remove(&map, 99);
	assert_int_equal(map.count, 7);
	assert_null(pidmap_get(&map, 4));
	for (pid_t pid = 1; pid <= 8; pid++) {
		if (pid != 4)
			assert_ptr_equal(pidmap_get(&map, pid), obj(pid));
	}
	pidmap_finish(&map);
}

static void put_after_remove(void **state)
{
	(void)state;
	struct pidmap map;
	pidmap_init(&map);
	assert_int_equal(pidmap_put(&map, 7, obj(1)), 0);
	pidmap_remove(&map, 7);
	assert_int_equal(pidmap_put(&map, 7, obj(2)), 0);
	assert_ptr_equal(pidmap_get(&map, 7), obj(2));
	assert_int_equal(map.count, 1);
	pidmap_finish(&map);
}

static void grows_and_keeps_entries(void **state)
{
	(void)state;
	struct pidmap map;
	pidmap_init(&map);
	for (pid_t pid = 1; pid <= 1000; pid++) {
		assert_int_equal(pidmap_put(&map, pid * 7919, obj(pid)), 0);
		assert_true(map.nslots > map.count);
		assert_int_equal(map.nslots & (map.nslots - 1), 0);
	}
	assert_int_equal(map.count, 1000);
	assert_true(map.nslots >= 1000);
	for (pid_t pid = 1; pid <= 1000; pid++)
		assert_ptr_equal(pidmap_get(&map, pid * 7919), obj(pid));
	assert_null(pidmap_get(&map, 7918));
	pidmap_finish(&map);
}

static void many_entries_with_removals(void **state)
{
	(void)state;
	struct pidmap map;
	pidmap_init(&map);
	for (pid_t pid = 1; pid <= 10000; pid++) {
		assert_int_equal(pidmap_put(&map, pid, obj(pid)), 0);
		if (pid % 3 == 0)
			pidmap_remove(&map, pid - 1);
	}
	for (pid_t pid = 1; pid <= 10000; pid++) {
		if (pid % 3 == 2)
			assert_null(pidmap_get(&map, pid));
		else
			assert_ptr_equal(pidmap_get(&map, pid), obj(pid));
	}
	assert_int_equal(map.count, 10000 - 3333);
	pidmap_finish(&map);
}

static void tombstones_do_not_fill_the_table(void **state)
{
	(void)state;
	struct pidmap map;
	pidmap_init(&map);
	/* a steady population of 10 with 10000 pids coming and going */
	for (pid_t pid = 1; pid <= 10000; pid++) {
		assert_int_equal(pidmap_put(&map, pid, obj(pid)), 0);
		if (pid > 10)
			pidmap_remove(&map, pid - 10);
		assert_true(map.used < map.nslots);
	}
	assert_int_equal(map.count, 10);
	assert_true(map.nslots <= 64);
	for (pid_t pid = 1; pid <= 10000; pid++) {
		if (pid > 9990)
			assert_ptr_equal(pidmap_get(&map, pid), obj(pid));
		else
			assert_null(pidmap_get(&map, pid));
	}
	pidmap_finish(&map);
}

static void lookups_pass_tombstones(void **state)
{
	(void)state;
	struct pidmap map;
	pidmap_init(&map);
	/* pids that differ by a multiple of the table size share a home slot */
	for (pid_t i = 0; i < 6; i++)
		assert_int_equal(pidmap_put(&map, 1 + i * 65536, obj(i + 1)), 0);
	pidmap_remove(&map, 1);
	pidmap_remove(&map, 1 + 2 * 65536);
	for (pid_t i = 0; i < 6; i++) {
		if (i == 0 || i == 2)
			assert_null(pidmap_get(&map, 1 + i * 65536));
		else
			assert_ptr_equal(pidmap_get(&map, 1 + i * 65536), obj(i + 1));
	}
	assert_int_equal(pidmap_put(&map, 1 + 5 * 65536, obj(9)), 0);
	assert_ptr_equal(pidmap_get(&map, 1 + 5 * 65536), obj(9));
	assert_int_equal(map.count, 4);
	pidmap_finish(&map);
}

static void large_pids(void **state)
{
	(void)state;
	struct pidmap map;
	pidmap_init(&map);
	assert_int_equal(pidmap_put(&map, 4194304, obj(1)), 0);
	assert_int_equal(pidmap_put(&map, 2147483647, obj(2)), 0);
	assert_ptr_equal(pidmap_get(&map, 4194304), obj(1));
	assert_ptr_equal(pidmap_get(&map, 2147483647), obj(2));
	pidmap_finish(&map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(get_on_empty_map),
		cmocka_unit_test(put_then_get),
		cmocka_unit_test(put_replaces_value),
		cmocka_unit_test(remove_only_that_pid),
		cmocka_unit_test(put_after_remove),
		cmocka_unit_test(grows_and_keeps_entries),
		cmocka_unit_test(many_entries_with_removals),
		cmocka_unit_test(tombstones_do_not_fill_the_table),
		cmocka_unit_test(lookups_pass_tombstones),
		cmocka_unit_test(large_pids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
