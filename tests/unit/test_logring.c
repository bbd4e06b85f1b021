#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logring.h"

static struct logring ring;

static int finish(void **state)
{
	(void)state;
	logring_finish(&ring);
	return 0;
}

static void add(const char *text, unsigned gen)
{
	struct logline l = {
		.time = 1000 + gen,
		.service = "ignored",
		.pid = (pid_t)(100 + gen),
		.gen = gen,
		.stream = gen % 2 ? LOGLINE_ERR : LOGLINE_OUT,
		.text = text,
		.len = strlen(text),
	};
	assert_int_equal(logring_add(&ring, &l), 0);
	assert_true(ring.used <= ring.max_bytes);
}

/* The lines held, as "gen:text" words joined by blanks, cut ones marked. */
struct seen {
	char words[4096];
	size_t lines;
};

static void see(void *data, const struct logline *l)
{
	struct seen *seen = data;
	size_t at = strlen(seen->words);
	assert_string_equal(l->service, "web");
	assert_true(l->time == 1000 + l->gen);
	assert_int_equal(l->pid, 100 + l->gen);
	assert_int_equal(l->stream, l->gen % 2 ? LOGLINE_ERR : LOGLINE_OUT);
	snprintf(seen->words + at, sizeof(seen->words) - at, "%s%u:%.*s%s", at ? " " : "", l->gen,
		(int)l->len, l->text, l->cut ? "[cut]" : "");
	seen->lines++;
}

// Calls fn for every line held, oldest first, as a reader from the start does.
static void each(void (*fn)(void *data, const struct logline *l), void *data)
{
	struct logring_cursor c;
	unsigned long long end = logring_cursor_start(&ring, &c), skipped;
	size_t cost;
	assert_true(logring_read(&ring, &c, end, SIZE_MAX, "web", fn, data, &skipped, &cost));
	assert_int_equal(skipped, 0);
}

static const char *held(void)
{
	static struct seen seen;
	memset(&seen, 0, sizeof(seen));
	each(see, &seen);
	assert_int_equal(seen.lines, logring_count(&ring));
	return seen.words;
}

// A budget for n lines of len bytes.
#define BUDGET(n, len) ((n) * (LOGRING_LINE_COST + (len)))

static void lines_kept_oldest_first(void **state)
{
	(void)state;
	logring_init(&ring, 65536);
	assert_int_equal(logring_count(&ring), 0);
	assert_string_equal(held(), "");
	add("one", 1);
	add("two", 2);
	add("", 3);
	assert_int_equal(logring_count(&ring), 3);
	assert_string_equal(held(), "1:one 2:two 3:");
	assert_int_equal(ring.used, BUDGET(3, 0) + 6);
}

static void oldest_lines_dropped_past_the_budget(void **state)
{
	(void)state;
	logring_init(&ring, BUDGET(3, 4));
	add("aaaa", 1);
	add("bbbb", 2);
	add("cccc", 3);
	assert_string_equal(held(), "1:aaaa 2:bbbb 3:cccc");
	assert_int_equal(ring.used, ring.max_bytes);
	add("dddd", 4);
	assert_string_equal(held(), "2:bbbb 3:cccc 4:dddd");
	// A longer line takes the room of two.
	add("eeeeeeee", 5);
	assert_string_equal(held(), "4:dddd 5:eeeeeeee");
	add("", 6);
	assert_string_equal(held(), "4:dddd 5:eeeeeeee 6:");
	for (unsigned gen = 7; gen < 1000; gen++)
		add("ffff", gen);
	assert_string_equal(held(), "997:ffff 998:ffff 999:ffff");
}

static void line_larger_than_the_budget_cut_and_kept_alone(void **state)
{
	(void)state;
	logring_init(&ring, BUDGET(1, 5));
	add("abc", 1);
	add("0123456789", 2);
	assert_string_equal(held(), "2:01234[cut]");
	assert_int_equal(ring.used, ring.max_bytes);
	add("xyz", 3);
	assert_string_equal(held(), "3:xyz");
}

static void cut_line_stays_cut(void **state)
{
	(void)state;
	logring_init(&ring, 65536);
	struct logline l = {.time = 1002, .pid = 102, .gen = 2, .text = "long", .len = 4, .cut = true};
	assert_int_equal(logring_add(&ring, &l), 0);
	assert_string_equal(held(), "2:long[cut]");
}

static void same_bytes(void *data, const struct logline *l)
{
	assert_int_equal(l->len, 4);
	assert_memory_equal(l->text, data, 4);
}

static void bytes_are_copied(void **state)
{
	(void)state;
	char text[] = "a\0b\n";
	logring_init(&ring, 65536);
	struct logline l = {.time = 1002, .pid = 102, .gen = 2, .text = text, .len = 4};
	assert_int_equal(logring_add(&ring, &l), 0);
	memset(text, 'x', sizeof(text));
	each(same_bytes, "a\0b\n");
	assert_int_equal(ring.used, LOGRING_LINE_COST + 4);
}

static void budget_too_small_keeps_nothing(void **state)
{
	(void)state;
	logring_init(&ring, 0);
	add("x", 1);
	assert_int_equal(logring_count(&ring), 0);
	logring_init(&ring, LOGRING_LINE_COST);
	add("", 1);
	assert_int_equal(logring_count(&ring), 0);
	assert_null(ring.oldest);
	logring_init(&ring, LOGRING_LINE_COST + 1);
	add("xy", 1);
	assert_string_equal(held(), "1:x[cut]");
}

// The lines are freed (ASan checks), and the ring is used again afterwards.
static void finish_frees_every_line(void **state)
{
	(void)state;
	logring_init(&ring, 65536);
	for (unsigned gen = 1; gen <= 100; gen++)
		add("a line of some length", gen);
	assert_int_equal(logring_count(&ring), 100);
	logring_finish(&ring);
	assert_int_equal(logring_count(&ring), 0);
	assert_int_equal(ring.used, 0);
	assert_null(ring.oldest);
	assert_null(ring.newest);
	assert_int_equal(ring.max_bytes, 65536);
	add("again", 1);
	assert_string_equal(held(), "1:again");
}

static const char *held_last(size_t max_bytes)
{
	static struct seen seen;
	memset(&seen, 0, sizeof(seen));
	logring_each_last(&ring, "web", max_bytes, see, &seen);
	return seen.words;
}

// Only the newest lines that fit a smaller budget, oldest first; the ring
// itself unchanged.
static void each_last_gives_the_newest_within_a_budget(void **state)
{
	(void)state;
	logring_init(&ring, 65536);
	add("one", 1);
	add("two", 2);
	add("three", 3);
	assert_string_equal(held_last(65536), "1:one 2:two 3:three");
	assert_string_equal(held_last(BUDGET(3, 0) + 11), "1:one 2:two 3:three");
	assert_string_equal(held_last(BUDGET(3, 0) + 10), "2:two 3:three");
	assert_string_equal(held_last(BUDGET(2, 0) + 8), "2:two 3:three");
	assert_string_equal(held_last(BUDGET(2, 0) + 7), "3:three");
	assert_string_equal(held_last(BUDGET(1, 0) + 5), "3:three");
	assert_string_equal(held_last(BUDGET(1, 0) + 4), "");
	assert_string_equal(held_last(0), "");
	assert_string_equal(held(), "1:one 2:two 3:three");
}

// What a read from c gives, up to end and max_bytes, as held() words.
static const char *read_from(struct logring_cursor *c, unsigned long long end, size_t max_bytes,
	bool *done, unsigned long long *skipped)
{
	static struct seen seen;
	memset(&seen, 0, sizeof(seen));
	size_t cost;
	*done = logring_read(&ring, c, end, max_bytes, "web", see, &seen, skipped, &cost);
	assert_true(seen.lines == 0 || cost >= seen.lines * LOGRING_LINE_COST);
	return seen.words;
}

static void cursor_reads_what_was_held_a_step_at_a_time(void **state)
{
	(void)state;
	struct logring_cursor c;
	unsigned long long skipped;
	bool done;
	logring_init(&ring, 65536);
	assert_int_equal(logring_cursor_start(&ring, &c), 0);
	assert_string_equal(read_from(&c, 0, 1000, &done, &skipped), "");
	assert_true(done);
	add("one", 1);
	add("two", 2);
	add("three", 3);
	unsigned long long end = logring_cursor_start(&ring, &c);
	assert_int_equal(end, 3);
	// Each read stops once its lines' cost comes to max_bytes.
	assert_string_equal(read_from(&c, end, 1, &done, &skipped), "1:one");
	assert_false(done);
	add("four", 4); /* after the start: not read */
	assert_string_equal(read_from(&c, end, BUDGET(1, 3), &done, &skipped), "2:two");
	assert_false(done);
	assert_string_equal(read_from(&c, end, BUDGET(1, 3) + 1, &done, &skipped), "3:three");
	assert_true(done);
	assert_int_equal(skipped, 0);
	assert_string_equal(read_from(&c, end, 8, &done, &skipped), "");
	assert_true(done);
	// Reading on to the newest.
	assert_string_equal(read_from(&c, 100, 1000, &done, &skipped), "4:four");
	assert_true(done);
}

static void cursor_skips_and_counts_lines_dropped_between_reads(void **state)
{
	(void)state;
	struct logring_cursor c;
	unsigned long long skipped;
	bool done;
	logring_init(&ring, BUDGET(3, 1));
	add("a", 1);
	add("b", 2);
	add("c", 3);
	unsigned long long end = logring_cursor_start(&ring, &c);
	assert_string_equal(read_from(&c, end, 1, &done, &skipped), "1:a");
	add("d", 4); /* drops a, the line read last */
	assert_string_equal(read_from(&c, end, 1, &done, &skipped), "2:b");
	assert_int_equal(skipped, 0);
	add("e", 5); /* drops b */
	add("f", 6); /* drops c, the next line to read */
	assert_int_equal(ring.dropped, 3);
	assert_string_equal(read_from(&c, 100, 1000, &done, &skipped), "4:d 5:e 6:f");
	assert_int_equal(skipped, 1);
	assert_true(done);
	// Every line dropped, those read and not, and others added: the cursor
	// goes on from the oldest.
	add("g", 7);
	logring_finish(&ring);
	add("h", 8);
	assert_string_equal(read_from(&c, 100, 1000, &done, &skipped), "8:h");
	assert_int_equal(skipped, 1);
	assert_true(done);
	logring_finish(&ring);
	assert_string_equal(read_from(&c, 100, 1000, &done, &skipped), "");
	assert_int_equal(skipped, 0);
	assert_true(done);
	// What is dropped past the end of a read is not counted as skipped.
	add("i", 9);
	add("j", 10);
	unsigned long long end2 = logring_cursor_start(&ring, &c) - 1; /* i only */
	add("k", 11);
	add("l", 12);
	add("m", 13); /* drops i, j */
	assert_string_equal(read_from(&c, end2, 1000, &done, &skipped), "");
	assert_int_equal(skipped, 1);
	assert_true(done);
}

static void cursor_at_the_last_lines(void **state)
{
	(void)state;
	struct logring_cursor c;
	unsigned long long skipped;
	bool done;
	logring_init(&ring, BUDGET(3, 1));
	assert_int_equal(logring_cursor_last(&ring, &c, 2), 0);
	assert_string_equal(read_from(&c, 0, 1000, &done, &skipped), "");
	add("a", 1);
	add("b", 2);
	add("c", 3);
	add("d", 4); /* drops a */
	unsigned long long end = logring_cursor_last(&ring, &c, 2);
	assert_int_equal(end, 4);
	assert_string_equal(read_from(&c, end, 1000, &done, &skipped), "3:c 4:d");
	assert_true(done);
	assert_int_equal(skipped, 0);
	logring_cursor_last(&ring, &c, 1);
	assert_string_equal(read_from(&c, end, 1000, &done, &skipped), "4:d");
	logring_cursor_last(&ring, &c, 3);
	assert_string_equal(read_from(&c, end, 1000, &done, &skipped), "2:b 3:c 4:d");
	logring_cursor_last(&ring, &c, 10);
	assert_string_equal(read_from(&c, end, 1000, &done, &skipped), "2:b 3:c 4:d");
	logring_cursor_last(&ring, &c, 0);
	assert_string_equal(read_from(&c, end, 1000, &done, &skipped), "");
	assert_true(done);
	// A line that comes after is read too when the read goes on to the newest.
	logring_cursor_last(&ring, &c, 1);
	add("e", 5); /* drops b */
	assert_string_equal(read_from(&c, 100, 1000, &done, &skipped), "4:d 5:e");
	assert_int_equal(skipped, 0);
}

#define TEST(f) cmocka_unit_test_teardown(f, finish)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(lines_kept_oldest_first),
		TEST(oldest_lines_dropped_past_the_budget),
		TEST(line_larger_than_the_budget_cut_and_kept_alone),
		TEST(cut_line_stays_cut),
		TEST(bytes_are_copied),
		TEST(budget_too_small_keeps_nothing),
		TEST(finish_frees_every_line),
		TEST(each_last_gives_the_newest_within_a_budget),
		TEST(cursor_reads_what_was_held_a_step_at_a_time),
		TEST(cursor_skips_and_counts_lines_dropped_between_reads),
		TEST(cursor_at_the_last_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
