#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"

/* The lines a linebuf delivered, copied. */
struct lines {
	size_t count;
	char *text[64];
	size_t len[64];
	unsigned flags[64];
};

static void collect(void *data, const char *line, size_t len, unsigned flags)
{
	struct lines *got = data;
	assert_true(got->count < 64);
	got->text[got->count] = malloc(len + 1);
	assert_non_null(got->text[got->count]);
	memcpy(got->text[got->count], line, len);
	got->text[got->count][len] = '\0';
	got->len[got->count] = len;
	got->flags[got->count] = flags;
	got->count++;
}

static void lines_free(struct lines *got)
{
	for (size_t i = 0; i < got->count; i++)
		free(got->text[i]);
	memset(got, 0, sizeof(*got));
}

static void assert_line(const struct lines *got, size_t i, const char *text, unsigned flags)
{
	assert_true(i < got->count);
	assert_int_equal(got->len[i], strlen(text));
	assert_string_equal(got->text[i], text);
	assert_int_equal(got->flags[i], flags);
}

static size_t feed(struct linebuf *lb, const char *s, struct lines *got)
{
	return linebuf_feed(lb, s, strlen(s), collect, got);
}

/* Each test's linebuf and the lines it delivered. */
struct test {
	struct linebuf lb;
	struct lines got;
	char *text; /* a test's long line, freed after it */
};

static int setup(void **state)
{
	struct test *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	linebuf_init(&t->lb);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test *t = *state;
	linebuf_finish(&t->lb);
	lines_free(&t->got);
	free(t->text);
	free(t);
	return 0;
}

// A string of n times c, freed with the test.
static char *filled(struct test *t, size_t n, char c)
{
	t->text = malloc(n + 1);
	assert_non_null(t->text);
	memset(t->text, c, n);
	t->text[n] = '\0';
	return t->text;
}

static void assert_holds_nothing(const struct linebuf *lb)
{
	size_t len = 1;
	bool dropping = true;
	assert_null(linebuf_pending(lb, &len, &dropping));
	assert_int_equal(len, 0);
	assert_false(dropping);
	assert_null(lb->buf);
}

static void many_lines_in_one_feed(void **state)
{
	struct test *t = *state;
	assert_int_equal(feed(&t->lb, "one\ntwo\n\nthree\n", &t->got), 0);
	assert_int_equal(t->got.count, 4);
	assert_line(&t->got, 0, "one", 0);
	assert_line(&t->got, 1, "two", 0);
	assert_line(&t->got, 2, "", 0);
	assert_line(&t->got, 3, "three", 0);
	assert_holds_nothing(&t->lb);
	linebuf_flush(&t->lb, collect, &t->got);
	assert_int_equal(t->got.count, 4);
}

static void empty_lines(void **state)
{
	struct test *t = *state;
	feed(&t->lb, "\n\n", &t->got);
	feed(&t->lb, "\n", &t->got);
	assert_int_equal(t->got.count, 3);
	for (size_t i = 0; i < 3; i++)
		assert_line(&t->got, i, "", 0);
	assert_holds_nothing(&t->lb);
}

// Split in two at every position, the stream gives the same lines.
static void lines_split_across_feeds_at_every_position(void **state)
{
	struct test *t = *state;
	static const char text[] = "one\ntwo\n\nthree\r\nfour";
	for (size_t at = 0; at <= strlen(text); at++) {
		linebuf_feed(&t->lb, text, at, collect, &t->got);
		linebuf_feed(&t->lb, text + at, strlen(text) - at, collect, &t->got);
		linebuf_flush(&t->lb, collect, &t->got);
		assert_int_equal(t->got.count, 5);
		assert_line(&t->got, 0, "one", 0);
		assert_line(&t->got, 1, "two", 0);
		assert_line(&t->got, 2, "", 0);
		assert_line(&t->got, 3, "three\r", 0);
		assert_line(&t->got, 4, "four", LINEBUF_PARTIAL);
		assert_holds_nothing(&t->lb);
		lines_free(&t->got);
	}
}

static void byte_by_byte(void **state)
{
	struct test *t = *state;
	static const char text[] = "ab\n\ncd\n";
	for (size_t i = 0; i < strlen(text); i++)
		linebuf_feed(&t->lb, text + i, 1, collect, &t->got);
	assert_int_equal(t->got.count, 3);
	assert_line(&t->got, 0, "ab", 0);
	assert_line(&t->got, 1, "", 0);
	assert_line(&t->got, 2, "cd", 0);
	assert_holds_nothing(&t->lb);
}

static void nul_bytes_are_kept(void **state)
{
	struct test *t = *state;
	linebuf_feed(&t->lb, "a\0b\nc", 5, collect, &t->got);
	linebuf_feed(&t->lb, "\0\n", 2, collect, &t->got);
	assert_int_equal(t->got.count, 2);
	assert_int_equal(t->got.len[0], 3);
	assert_memory_equal(t->got.text[0], "a\0b", 3);
	assert_int_equal(t->got.len[1], 2);
	assert_memory_equal(t->got.text[1], "c\0", 2);
}

static void line_of_exactly_max_is_whole(void **state)
{
	struct test *t = *state;
	const char *line = filled(t, LINEBUF_MAX, 'x');
	// Fed whole, then in two parts with the '\n' on its own.
	assert_int_equal(feed(&t->lb, line, &t->got), 0);
	assert_int_equal(feed(&t->lb, "\n", &t->got), 0);
	assert_int_equal(linebuf_feed(&t->lb, line, 100, collect, &t->got), 0);
	assert_int_equal(feed(&t->lb, line + 100, &t->got), 0);
	assert_int_equal(t->got.count, 1);
	assert_int_equal(feed(&t->lb, "\n", &t->got), 0);
	assert_int_equal(t->got.count, 2);
	for (size_t i = 0; i < 2; i++)
		assert_line(&t->got, i, line, 0);
	// At the end of the stream it is partial, not cut.
	feed(&t->lb, line, &t->got);
	linebuf_flush(&t->lb, collect, &t->got);
	assert_line(&t->got, 2, line, LINEBUF_PARTIAL);
	assert_holds_nothing(&t->lb);
}

static void line_of_max_plus_one_is_cut(void **state)
{
	struct test *t = *state;
	char *line = filled(t, LINEBUF_MAX + 1, 'y');
	assert_int_equal(feed(&t->lb, line, &t->got), 1);
	assert_int_equal(t->got.count, 1);
	assert_int_equal(feed(&t->lb, "\nnext\n", &t->got), 0);
	// LINEBUF_MAX bytes kept, then one more: the cut is known then.
	assert_int_equal(linebuf_feed(&t->lb, line, LINEBUF_MAX, collect, &t->got), 0);
	assert_int_equal(t->got.count, 2);
	assert_int_equal(feed(&t->lb, "z\n", &t->got), 1);
	assert_int_equal(t->got.count, 3);
	line[LINEBUF_MAX] = '\0';
	assert_line(&t->got, 0, line, LINEBUF_CUT);
	assert_line(&t->got, 1, "next", 0);
	assert_line(&t->got, 2, line, LINEBUF_CUT);
	assert_holds_nothing(&t->lb);
}

static void cut_line_then_normal_lines(void **state)
{
	struct test *t = *state;
	size_t long_len = 40000, dropped = 0;
	char *text = filled(t, long_len + 4, 'l');
	memcpy(text + long_len, "\na\nb", 4);
	for (size_t at = 0, n = strlen(text); at < n; at += 1000) {
		size_t chunk = n - at < 1000 ? n - at : 1000;
		dropped += linebuf_feed(&t->lb, text + at, chunk, collect, &t->got);
	}
	linebuf_flush(&t->lb, collect, &t->got);
	assert_int_equal(dropped, long_len - LINEBUF_MAX);
	assert_int_equal(t->got.count, 3);
	assert_int_equal(t->got.len[0], LINEBUF_MAX);
	assert_int_equal(t->got.flags[0], LINEBUF_CUT);
	assert_line(&t->got, 1, "a", 0);
	assert_line(&t->got, 2, "b", LINEBUF_PARTIAL);
}

static void cut_line_at_the_end_of_the_stream(void **state)
{
	struct test *t = *state;
	assert_int_equal(feed(&t->lb, filled(t, LINEBUF_MAX + 10, 'e'), &t->got), 10);
	assert_int_equal(feed(&t->lb, "more", &t->got), 4);
	linebuf_flush(&t->lb, collect, &t->got);
	assert_int_equal(t->got.count, 1);
	assert_int_equal(t->got.flags[0], LINEBUF_CUT);
	// Flushed, the linebuf starts afresh: no more dropping.
	feed(&t->lb, "fresh\n", &t->got);
	assert_line(&t->got, 1, "fresh", 0);
}

static void flush_with_and_without_a_partial_line(void **state)
{
	struct test *t = *state;
	linebuf_flush(&t->lb, collect, &t->got);
	assert_int_equal(t->got.count, 0);
	feed(&t->lb, "done\n", &t->got);
	linebuf_flush(&t->lb, collect, &t->got);
	assert_int_equal(t->got.count, 1);
	feed(&t->lb, "no newline", &t->got);
	assert_int_equal(t->got.count, 1);
	linebuf_flush(&t->lb, collect, &t->got);
	assert_int_equal(t->got.count, 2);
	assert_line(&t->got, 1, "no newline", LINEBUF_PARTIAL);
	assert_holds_nothing(&t->lb);
}

// Memory only while a line is unfinished; finish frees it (ASan checks).
static void memory_only_for_an_unfinished_line(void **state)
{
	struct test *t = *state;
	struct linebuf lb;
	linebuf_init(&lb);
	feed(&lb, "whole\n", &t->got);
	assert_null(lb.buf);
	feed(&lb, "half", &t->got);
	assert_non_null(lb.buf);
	assert_true(lb.cap <= 64);
	feed(&lb, " and half\nnext", &t->got);
	assert_non_null(lb.buf);
	feed(&lb, "\n", &t->got);
	assert_null(lb.buf);
	feed(&lb, "left when finished", &t->got);
	linebuf_finish(&lb);
	assert_holds_nothing(&lb);
	assert_int_equal(t->got.count, 3);
}

// What linebuf_pending returns, restored in another linebuf, goes on there.
static void restore_pending(struct test *t, const char *before, const char *after)
{
	struct linebuf other;
	size_t len;
	bool dropping;
	linebuf_init(&other);
	feed(&other, before, &t->got);
	const char *bytes = linebuf_pending(&other, &len, &dropping);
	assert_int_equal(linebuf_restore(&t->lb, bytes, len, dropping), 0);
	linebuf_finish(&other);
	feed(&t->lb, after, &t->got);
}

static void pending_restored_in_another_linebuf(void **state)
{
	struct test *t = *state;
	size_t len;
	bool dropping;
	feed(&t->lb, "first\nhello wo", &t->got);
	const char *bytes = linebuf_pending(&t->lb, &len, &dropping);
	assert_int_equal(len, 8);
	assert_memory_equal(bytes, "hello wo", 8);
	assert_false(dropping);
	linebuf_finish(&t->lb);
	restore_pending(t, "first\nhello wo", "rld\n");
	assert_int_equal(t->got.count, 3);
	assert_line(&t->got, 2, "hello world", 0);
	assert_holds_nothing(&t->lb);
}

static void dropping_restored_in_another_linebuf(void **state)
{
	struct test *t = *state;
	size_t len;
	bool dropping;
	feed(&t->lb, filled(t, LINEBUF_MAX + 5, 'd'), &t->got);
	assert_null(linebuf_pending(&t->lb, &len, &dropping));
	assert_int_equal(len, 0);
	assert_true(dropping);
	linebuf_finish(&t->lb);
	restore_pending(t, t->text, "tail\nok\n");
	assert_int_equal(t->got.count, 3);
	assert_line(&t->got, 2, "ok", 0);
	assert_holds_nothing(&t->lb);
}

static void restore_refuses_what_pending_never_returns(void **state)
{
	struct test *t = *state;
	const char *line = filled(t, LINEBUF_MAX + 1, 'r');
	errno = 0;
	assert_int_equal(linebuf_restore(&t->lb, line, LINEBUF_MAX + 1, false), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(linebuf_restore(&t->lb, "ab", 2, true), -1);
	assert_int_equal(errno, EINVAL);
	assert_holds_nothing(&t->lb);
	assert_int_equal(linebuf_restore(&t->lb, line, LINEBUF_MAX, false), 0);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(many_lines_in_one_feed),
		TEST(empty_lines),
		TEST(lines_split_across_feeds_at_every_position),
		TEST(byte_by_byte),
		TEST(nul_bytes_are_kept),
		TEST(line_of_exactly_max_is_whole),
		TEST(line_of_max_plus_one_is_cut),
		TEST(cut_line_then_normal_lines),
		TEST(cut_line_at_the_end_of_the_stream),
		TEST(flush_with_and_without_a_partial_line),
		TEST(memory_only_for_an_unfinished_line),
		TEST(pending_restored_in_another_linebuf),
		TEST(dropping_restored_in_another_linebuf),
		TEST(restore_refuses_what_pending_never_returns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
