#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envfile.h"

/*
 * Parses text, which must be valid, and checks that it gives exactly the
 * variables listed (NAME=VALUE, NULL-terminated), in that order.
 */
static void assert_env_n(const char *text, size_t len, const char *const *expected)
{
	struct envfile e;
	char err[256] = "";
	if (envfile_parse(text, len, "test.env", &e, err, sizeof(err)) < 0)
		fail_msg("unexpected error: %s", err);
	size_t n = 0;
	while (expected[n])
		n++;
	for (size_t i = 0; i < n && i < e.n; i++) {
		if (strcmp(e.env[i], expected[i]) != 0)
			fail_msg("variable %zu: got \"%s\", expected \"%s\"", i, e.env[i], expected[i]);
	}
	assert_int_equal(e.n, n);
	assert_null(e.env[n]);
	envfile_finish(&e);
}

#define assert_env(text, ...)                                                                    \
	do {                                                                                     \
		static const char *const expected_[] = {__VA_ARGS__, NULL};                      \
		assert_env_n(text, strlen(text), expected_);                                     \
	} while (0)

/* Parses text, which must fail with exactly message. */
static void assert_error(const char *text, size_t len, const char *message)
{
	struct envfile e = {(char **)1, 1};
	char err[256] = "";
	errno = 0;
	assert_int_equal(envfile_parse(text, len, "test.env", &e, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_string_equal(err, message);
	assert_null(e.env);
	assert_int_equal(e.n, 0);
	envfile_finish(&e);
}

#define assert_fails(text, message) assert_error(text, strlen(text), message)

static void assignments_in_order(void **state)
{
	(void)state;
	assert_env("A=1\nB=two\nC_3=x\n", "A=1", "B=two", "C_3=x");
	assert_env("A=1", "A=1");
}

static void an_empty_file_has_no_variables(void **state)
{
	(void)state;
	static const char *const none[] = {NULL};
	assert_env_n("", 0, none);
	assert_env_n("\n\n  \n\t\n", 6, none);
}

static void blank_lines_and_comments_are_skipped(void **state)
{
	(void)state;
	assert_env("# a comment\n\n; another\n   # indented\nA=1\n\n#B=2\n;C=3\n", "A=1");
	// A backslash does not continue a comment.
	assert_env("# comment \\\nA=1\n", "A=1");
}

static void a_line_without_equals_is_skipped(void **state)
{
	(void)state;
	assert_env("junk\nA=1\nmore junk here\nB=2\ntail", "A=1", "B=2");
}

static void blanks_around_the_name_and_before_the_value(void **state)
{
	(void)state;
	assert_env("  A = 1\n\tB\t=\t2\t\nC=   three  \n", "A=1", "B=2", "C=three");
	assert_env("A=\nB=   \n", "A=", "B=");
}

static void an_unquoted_value_keeps_inner_blanks_and_quotes(void **state)
{
	(void)state;
	assert_env("A=hello   world\nB=it's \"fine\"\nC=a#b ;c\nD=$HOME `x`\n",
		"A=hello   world", "B=it's \"fine\"", "C=a#b ;c", "D=$HOME `x`");
}

static void a_backslash_outside_quotes_takes_the_next_character(void **state)
{
	(void)state;
	assert_env("A=a\\\\b\nB=\\\"q\\\"\nC=\\n\nD=x\\ \nE=\\ \\ lead\n", "A=a\\b", "B=\"q\"",
		"C=n", "D=x ", "E=  lead");
}

static void a_backslash_at_the_end_continues_the_line(void **state)
{
	(void)state;
	assert_env("A=one \\\n  two\nB=x\n", "A=one   two", "B=x");
	assert_env("A=\\\nvalue\n", "A=value");
	// The blanks before a backslash stay, even when nothing follows.
	assert_env("A=x  \\\n\nB=y\n", "A=x  ", "B=y");
	assert_env("A=x\\", "A=x");
}

static void single_quotes_are_literal(void **state)
{
	(void)state;
	assert_env("A='  spaced  '\nB='a\\nb $x \"q\"'\nC=''\n", "A=  spaced  ",
		"B=a\\nb $x \"q\"", "C=");
}

static void double_quotes_honour_four_escapes(void **state)
{
	(void)state;
	assert_env("A=\"say \\\"hi\\\" \\\\ \\$HOME \\`x\\`\"\n", "A=say \"hi\" \\ $HOME `x`");
	// Any other backslash is kept, with the character after it.
	assert_env("A=\"a\\nb\\tc\\'d\"\n", "A=a\\nb\\tc\\'d");
	// A backslash-newline is dropped.
	assert_env("A=\"one \\\ntwo\"\n", "A=one two");
}

static void quoted_values_span_lines(void **state)
{
	(void)state;
	assert_env("A='line one\nline two'\nB=\"x\ny\"\nC=after\n", "A=line one\nline two",
		"B=x\ny", "C=after");
}

static void quoted_parts_and_what_follows_are_joined(void **state)
{
	(void)state;
	assert_env("A='a'\"b\"c\n", "A=abc");
	assert_env("A='x' 'y'\nB=\"x\" y z  \n", "A=xy", "B=xy z");
	assert_env("A='  kept  '   \n", "A=  kept  ");
}

static void the_last_value_wins_where_the_name_was_first(void **state)
{
	(void)state;
	assert_env("A=1\nB=2\nA=3\nC=4\nB=5\nA=6\n", "A=6", "B=5", "C=4");
}

static void many_names_stay_distinct(void **state)
{
	(void)state;
	char *text = malloc(20000 * 16);
	assert_non_null(text);
	size_t len = 0;
	for (int i = 0; i < 20000; i++)
		len += (size_t)sprintf(text + len, "V%d=%d\n", i, i);
	len += (size_t)sprintf(text + len, "V123=again\n");
	struct envfile e;
	char err[256];
	assert_int_equal(envfile_parse(text, len, "big.env", &e, err, sizeof(err)), 0);
	assert_int_equal(e.n, 20000);
	assert_string_equal(e.env[0], "V0=0");
	assert_string_equal(e.env[123], "V123=again");
	assert_string_equal(e.env[19999], "V19999=19999");
	envfile_finish(&e);
	free(text);
}

static void crlf_line_ends_are_read(void **state)
{
	(void)state;
	assert_env("# c\r\nA=1\r\nB = two words \r\n\r\nC='x'\r\n", "A=1", "B=two words", "C=x");
}

static void utf8_values_are_taken(void **state)
{
	(void)state;
	assert_env("GREETING=grüß dich ✓ 😀\n", "GREETING=grüß dich ✓ 😀");
}

static void a_bad_name_is_an_error_at_its_line(void **state)
{
	(void)state;
	assert_fails("A=1\n\n1BAD=x\n",
		"test.env:3: \"1BAD\" is not a variable name: expected letters, digits and _, not "
		"starting with a digit");
	assert_fails("A B=x\n", "test.env:1: \"A B\" is not a variable name: expected letters, "
				"digits and _, not starting with a digit");
	assert_fails("=x\n", "test.env:1: \"\" is not a variable name: expected letters, digits "
			     "and _, not starting with a digit");
	assert_fails("A-B=x\n", "test.env:1: \"A-B\" is not a variable name: expected letters, "
				"digits and _, not starting with a digit");
}

static void export_is_an_error_that_says_so(void **state)
{
	(void)state;
	assert_fails("# env\nexport PATH=/bin\n",
		"test.env:2: \"export PATH\" is not a variable name: write NAME=VALUE without export");
}

static void a_quote_never_closed_is_an_error_where_it_opened(void **state)
{
	(void)state;
	assert_fails("A=1\nB='open\nC=2\n", "test.env:2: B: unterminated single quote");
	assert_fails("A=\"x\\\"\n", "test.env:1: A: unterminated double quote");
	assert_fails("A=\"x\\", "test.env:1: A: unterminated double quote");
}

static void lines_are_counted_across_continuations_and_quotes(void **state)
{
	(void)state;
	assert_fails("A='1\n2\n3'\nB=x\\\ny\n\n\"C=1\n", "test.env:7: \"\\x22C\" is not a variable "
							  "name: expected letters, digits and _, "
							  "not starting with a digit");
}

static void a_nul_byte_is_an_error(void **state)
{
	(void)state;
	assert_error("A=1\nB=x\0y\n", 10, "test.env:2: a NUL byte");
}

static void invalid_utf8_is_an_error(void **state)
{
	(void)state;
	assert_fails("A=ok\nB=\xff\n", "test.env:2: B: the value is not valid UTF-8");
	// An overlong form, a surrogate, a noncharacter, a sequence cut short.
	assert_fails("B=\xc0\xaf\n", "test.env:1: B: the value is not valid UTF-8");
	assert_fails("B=\xed\xa0\x80\n", "test.env:1: B: the value is not valid UTF-8");
	assert_fails("B=\xef\xbf\xbe\n", "test.env:1: B: the value is not valid UTF-8");
	assert_fails("B=\xe2\x9c", "test.env:1: B: the value is not valid UTF-8");
}

static void printed_variables_read_back_the_same(void **state)
{
	(void)state;
	static const char text[] = "PLAIN=abc-1.2/x:y@z%+,=\nEMPTY=\nSPACES='  a  b  '\n"
				   "QUOTES=\"it's \\\"q\\\" \\\\ \\$x \\`y\\`\"\nLINES='one\ntwo\r'\n"
				   "HASH='#x'\nSEMI=';x'\nBACK='a\\'\n";
	struct envfile e, again;
	char err[256], *printed = NULL;
	size_t len = 0;
	assert_int_equal(envfile_parse(text, strlen(text), "t", &e, err, sizeof(err)), 0);
	FILE *out = open_memstream(&printed, &len);
	assert_non_null(out);
	assert_int_equal(envfile_print(&e, out), 0);
	assert_int_equal(fclose(out), 0);
	assert_non_null(strstr(printed, "PLAIN=abc-1.2/x:y@z%+,=\n"));
	assert_non_null(strstr(printed, "EMPTY=\"\"\n"));
	if (envfile_parse(printed, len, "printed", &again, err, sizeof(err)) < 0)
		fail_msg("%s in:\n%s", err, printed);
	assert_int_equal(again.n, e.n);
	for (size_t i = 0; i < e.n; i++)
		assert_string_equal(again.env[i], e.env[i]);
	envfile_finish(&e);
	envfile_finish(&again);
	free(printed);
}

static void read_a_file(void **state)
{
	(void)state;
	char path[] = "/tmp/baton-test-envfile.XXXXXX", err[256];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "A=1\nB='2'\n", 10), 10);
	close(fd);
	struct envfile e;
	assert_int_equal(envfile_read(path, &e, err, sizeof(err)), 0);
	assert_int_equal(e.n, 2);
	assert_string_equal(e.env[1], "B=2");
	envfile_finish(&e);
	unlink(path);
}

static void read_errors_name_the_file(void **state)
{
	(void)state;
	char path[] = "/tmp/baton-test-envfile.XXXXXX", err[256], expected[300];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "A=1\nexport B=2\n", 15), 15);
	struct envfile e;
	assert_int_equal(envfile_read(path, &e, err, sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	snprintf(expected, sizeof(expected),
		"%s:2: \"export B\" is not a variable name: write NAME=VALUE without export", path);
	assert_string_equal(err, expected);
	// Past ENVFILE_MAX bytes, a file is refused.
	assert_int_equal(ftruncate(fd, ENVFILE_MAX + 1), 0);
	assert_int_equal(envfile_read(path, &e, err, sizeof(err)), -1);
	assert_int_equal(errno, EFBIG);
	snprintf(expected, sizeof(expected), "%s: larger than 1MiB", path);
	assert_string_equal(err, expected);
	close(fd);
	unlink(path);
	assert_int_equal(envfile_read(path, &e, err, sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	snprintf(expected, sizeof(expected), "%s: No such file or directory", path);
	assert_string_equal(err, expected);
	assert_null(e.env);
	assert_int_equal(envfile_read("/tmp", &e, err, sizeof(err)), -1);
	assert_string_equal(err, "/tmp: Is a directory");
}

static void a_file_of_exactly_the_largest_size_is_read(void **state)
{
	(void)state;
	char path[] = "/tmp/baton-test-envfile.XXXXXX", err[256];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	char *text = malloc(ENVFILE_MAX);
	assert_non_null(text);
	memset(text, '#', ENVFILE_MAX);
	memcpy(text, "A=1\n", 4);
	assert_int_equal(write(fd, text, ENVFILE_MAX), ENVFILE_MAX);
	close(fd);
	struct envfile e;
	assert_int_equal(envfile_read(path, &e, err, sizeof(err)), 0);
	assert_int_equal(e.n, 1);
	envfile_finish(&e);
	free(text);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(assignments_in_order),
		cmocka_unit_test(an_empty_file_has_no_variables),
		cmocka_unit_test(blank_lines_and_comments_are_skipped),
		cmocka_unit_test(a_line_without_equals_is_skipped),
		cmocka_unit_test(blanks_around_the_name_and_before_the_value),
		cmocka_unit_test(an_unquoted_value_keeps_inner_blanks_and_quotes),
		cmocka_unit_test(a_backslash_outside_quotes_takes_the_next_character),
		cmocka_unit_test(a_backslash_at_the_end_continues_the_line),
		cmocka_unit_test(single_quotes_are_literal),
		cmocka_unit_test(double_quotes_honour_four_escapes),
		cmocka_unit_test(quoted_values_span_lines),
		cmocka_unit_test(quoted_parts_and_what_follows_are_joined),
		cmocka_unit_test(the_last_value_wins_where_the_name_was_first),
		cmocka_unit_test(many_names_stay_distinct),
		cmocka_unit_test(crlf_line_ends_are_read),
		cmocka_unit_test(utf8_values_are_taken),
		cmocka_unit_test(a_bad_name_is_an_error_at_its_line),
		cmocka_unit_test(export_is_an_error_that_says_so),
		cmocka_unit_test(a_quote_never_closed_is_an_error_where_it_opened),
		cmocka_unit_test(lines_are_counted_across_continuations_and_quotes),
		cmocka_unit_test(a_nul_byte_is_an_error),
		cmocka_unit_test(invalid_utf8_is_an_error),
		cmocka_unit_test(printed_variables_read_back_the_same),
		cmocka_unit_test(read_a_file),
		cmocka_unit_test(read_errors_name_the_file),
		cmocka_unit_test(a_file_of_exactly_the_largest_size_is_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
