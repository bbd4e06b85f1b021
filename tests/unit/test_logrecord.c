#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "logline.h"
#include "logrecord.h"

/* 2026-12-01T19:45:00.123456Z */
#define TIME 1796154300.123456

static struct protocol_buf out, want;
static struct protocol_record rec;

static int reset(void **state)
{
	(void)state;
	protocol_buf_finish(&out);
	protocol_buf_finish(&want);
	return 0;
}

static struct logline line_of(const char *text, size_t len)
{
	return (struct logline){TIME, "web", 4242, 3, LOGLINE_ERR, text, len, false};
}

// Parses the record batond sends for l into rec.
static void record_of(const struct logline *l)
{
	struct protocol_buf b = {0};
	logline_record(&b, l);
	assert_false(b.failed);
	assert_int_equal(protocol_parse_record(&rec, b.data, b.len - 1), 0);
	protocol_buf_finish(&b);
}

// Checks that batonctl shows the line of l as a log file holds it, in both forms.
static void shown_as_in_a_file(const struct logline *l)
{
	record_of(l);
	reset(NULL);
	logline_text(&want, l, true);
	assert_int_equal(logrecord_text(&out, &rec), 0);
	assert_false(out.failed);
	assert_int_equal(out.len, want.len);
	assert_memory_equal(out.data, want.data, want.len);
	reset(NULL);
	logline_json(&want, l);
	assert_int_equal(logrecord_json(&out, &rec), 0);
	assert_false(out.failed);
	assert_int_equal(out.len, want.len);
	assert_memory_equal(out.data, want.data, want.len);
	reset(NULL);
}

#define SAME(s)                                                   \
	do {                                                      \
		struct logline l_ = line_of(s, sizeof(s) - 1);    \
		shown_as_in_a_file(&l_);                          \
	} while (0)

static void text_and_json_forms(void **state)
{
	(void)state;
	struct logline l = line_of("listening on :8080", 18);
	record_of(&l);
	assert_int_equal(logrecord_text(&out, &rec), 0);
	assert_string_equal(out.data,
		"2026-12-01T19:45:00.123456Z web[4242] gen 3 err: listening on :8080\n");
	protocol_buf_finish(&out);
	assert_int_equal(logrecord_json(&out, &rec), 0);
	assert_string_equal(out.data,
		"{\"time\":\"2026-12-01T19:45:00.123456Z\",\"service\":\"web\",\"pid\":4242,"
		"\"gen\":3,\"stream\":\"err\",\"line\":\"listening on :8080\"}\n");
}

static void lines_as_log_files_hold_them(void **state)
{
	(void)state;
	SAME("");
	SAME("plain");
	SAME("a\tb \"quoted\" back\\slash key=value");
	SAME("\x1b[31mred\x1b[0m del\x7f bell\a");
	SAME("crlf\r");
	SAME("10%\r20%\r");
	SAME("\n");
	SAME("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 nel\xc2\x85 ls\xe2\x80\xa8");
	SAME("{\"level\":\"info\"}");
}

// A line of printable ASCII but '"' and '\\' is written in one pass: its
// record is, byte for byte, the one the protocol's writer makes of its fields.
static void ascii_lines_written_as_the_protocol_writes_them(void **state)
{
	(void)state;
	static const char *const texts[] = {"", "plain", "two words", "key=value", "a\tb",
		"~!@#$%^&*()_+`-[]{};':,./<>?|", " ", "="};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		for (int cut = 0; cut < 2; cut++) {
			struct logline l = line_of(texts[i], strlen(texts[i]));
			l.cut = cut;
			reset(NULL);
			logline_record(&out, &l);
			protocol_record_begin(&want, "log");
			protocol_record_str(&want, "time", "2026-12-01T19:45:00.123456Z");
			protocol_record_str(&want, "service", "web");
			protocol_record_int(&want, "gen", 3);
			protocol_record_int(&want, "pid", 4242);
			protocol_record_str(&want, "stream", "err");
			protocol_record_str(&want, "line", texts[i]);
			if (cut)
				protocol_record_str(&want, "cut", "yes");
			protocol_record_end(&want);
			assert_false(out.failed);
			assert_string_equal(out.data, want.data);
		}
	}
}

static void bytes_that_are_not_utf8_and_nul(void **state)
{
	(void)state;
	SAME("ok\xff");
	SAME("\xff\xfe\xfd");
	SAME("\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82");
	SAME("nul\0here");
	SAME("\0");
	SAME("a\0\xc0\xaf\x01\r");
}

static void cut_lines_and_other_streams(void **state)
{
	(void)state;
	struct logline l = line_of("the start \xff", 11);
	l.cut = true;
	l.stream = LOGLINE_OUT;
	shown_as_in_a_file(&l);
	record_of(&l);
	assert_int_equal(logrecord_text(&out, &rec), 0);
	assert_string_equal(out.data,
		"2026-12-01T19:45:00.123456Z web[4242] gen 3 out: the start \\xff [cut]\n");
}

// How many bytes of its line the record in b carries.
static size_t carried(const struct protocol_buf *b)
{
	struct protocol_record r;
	assert_int_equal(protocol_parse_record(&r, b->data, b->len - 1), 0);
	const char *b64 = protocol_record_get(&r, "line_base64");
	if (!b64)
		return strlen(protocol_record_get(&r, "line"));
	size_t n = strlen(b64);
	return n / 4 * 3 - (n && b64[n - 1] == '=') - (n > 1 && b64[n - 2] == '=');
}

// The record of a line too long for one carries its longest start that
// fits, on a character, marked cut: a character more would not fit.
static void record_cut_to_fit(const char *text, size_t len)
{
	struct logline l = line_of(text, len);
	struct protocol_buf b = {0}, start = {0}, more = {0};
	logline_record(&b, &l);
	assert_false(b.failed);
	assert_true(b.len <= PROTOCOL_RECORD_MAX);
	size_t n = carried(&b);
	assert_true(n < len);
	struct logline cut = line_of(text, n);
	cut.cut = true;
	logline_record(&start, &cut);
	assert_int_equal(start.len, b.len);
	assert_memory_equal(start.data, b.data, b.len);
	size_t next = n + 1;
	while (next < len && ((unsigned char)text[next] & 0xc0) == 0x80)
		next++;
	cut.len = next;
	logline_record(&more, &cut);
	assert_true(carried(&more) < next);
	protocol_buf_finish(&b);
	protocol_buf_finish(&start);
	protocol_buf_finish(&more);
}

static void long_lines_cut_to_fit_a_record(void **state)
{
	(void)state;
	static char text[20000];
	memset(text, 'y', sizeof(text));
	record_cut_to_fit(text, sizeof(text));
	record_cut_to_fit(text, PROTOCOL_RECORD_MAX - 50);
	memset(text, '\x01', 4096);
	record_cut_to_fit(text, 4096);
	for (size_t i = 0; i + 2 <= sizeof(text); i += 2)
		memcpy(text + i, "\xc3\xa9", 2);
	record_cut_to_fit(text, sizeof(text));
	record_cut_to_fit(text + 1, sizeof(text) - 1);
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = i % 7 ? 'z' : '\xff';
	record_cut_to_fit(text, sizeof(text));
	memset(text, 0, sizeof(text));
	record_cut_to_fit(text, 16384);
	// One that fits is whole.
	memset(text, 'y', 1000);
	struct logline l = line_of(text, 1000);
	record_of(&l);
	assert_null(protocol_record_get(&rec, "cut"));
	assert_int_equal(strlen(protocol_record_get(&rec, "line")), 1000);
}

static void times_to_the_microsecond(void **state)
{
	(void)state;
	static const double times[] = {0, 1796154300.000001, 1796154300.999999, 951782400.25,
		4102444800.5};
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		struct logline l = line_of("x", 1);
		l.time = times[i];
		shown_as_in_a_file(&l);
	}
}

// The time is shown as batond wrote it, whatever a double would make of it.
static void the_time_as_the_record_has_it(void **state)
{
	(void)state;
	static const char line[] =
		"log time=9999-12-31T23:59:59.999998Z service=web gen=3 pid=4242 stream=out line=x";
	assert_int_equal(protocol_parse_record(&rec, line, sizeof(line) - 1), 0);
	assert_int_equal(logrecord_json(&out, &rec), 0);
	assert_string_equal(out.data,
		"{\"time\":\"9999-12-31T23:59:59.999998Z\",\"service\":\"web\",\"pid\":4242,"
		"\"gen\":3,\"stream\":\"out\",\"line\":\"x\"}\n");
	protocol_buf_finish(&out);
	assert_int_equal(logrecord_text(&out, &rec), 0);
	assert_string_equal(out.data, "9999-12-31T23:59:59.999998Z web[4242] gen 3 out: x\n");
}

static int parse_line(const char *line)
{
	return protocol_parse_record(&rec, line, strlen(line));
}

static void malformed_records(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"log service=web gen=3 pid=1 stream=out line=x",
		"log time=2026-12-01T19:45:00Z service=web gen=3 pid=1 stream=out line=x",
		"log time=2026-12-01 service=web gen=3 pid=1 stream=out line=x",
		"log time=2026-12-01T19:45:00.123456Z gen=3 pid=1 stream=out line=x",
		"log time=2026-12-01T19:45:00.123456Z service=web pid=1 stream=out line=x",
		"log time=2026-12-01T19:45:00.123456Z service=web gen=-3 pid=1 stream=out line=x",
		"log time=2026-12-01T19:45:00.123456Z service=web gen=3 pid=x stream=out line=x",
		"log time=2026-12-01T19:45:00.123456Z service=web gen=3 pid=1 stream=in line=x",
		"log time=2026-12-01T19:45:00.123456Z service=web gen=3 pid=1 stream=out",
		"log time=2026-12-01T19:45:00.123456Z service=web gen=3 pid=1 stream=out line=x "
		"line_base64=eA",
		"log time=2026-12-01T19:45:00.123456Z service=web gen=3 pid=1 stream=out line=x "
		"line_base64=\"e===\"",
		"log time=2026-12-01T19:45:00.123456Z service=web gen=3 pid=1 stream=out line=x "
		"line_base64=\"eA=A\"",
		"log time=2026-12-01T19:45:00.123456Z service=web gen=3 pid=1 stream=out line=x "
		"line_base64=\"e*==\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_line(bad[i]), 0);
		assert_int_equal(logrecord_text(&out, &rec), -1);
		assert_int_equal(logrecord_json(&out, &rec), -1);
		assert_null(out.data);
	}
	assert_int_equal(parse_line("log time=2026-12-01T19:45:00.123456Z service=web gen=3 pid=1 "
				    "stream=out line=x line_base64=\"eA==\""),
		0);
	assert_int_equal(logrecord_text(&out, &rec), 0);
}

static void output_events(void **state)
{
	(void)state;
	assert_int_equal(parse_line("event t=4.512000 kind=output service=web gen=3 instance=0 "
				    "pid=4242 stream=err line=\"closing \\x1b[1m3\\x1b[0m\xff\" "
				    "cut=yes skipped=12"),
		0);
	assert_int_equal(logrecord_event(&out, &rec), 0);
	assert_string_equal(out.data,
		"web[4242] gen 3 err: closing \\x1b[1m3\\x1b[0m\\xff [cut]");
	protocol_buf_finish(&out);
	assert_int_equal(parse_line("event t=4.512000 kind=output service=web gen=3 instance=0 "
				    "pid=4242 stream=out line=done"),
		0);
	assert_int_equal(logrecord_event(&out, &rec), 0);
	assert_string_equal(out.data, "web[4242] gen 3 out: done");
	protocol_buf_finish(&out);
	assert_int_equal(parse_line("event t=4.512000 kind=output service=web"), 0);
	assert_int_equal(logrecord_event(&out, &rec), -1);
}

static void escape_for_a_terminal(void **state)
{
	(void)state;
	static const char text[] = "a\tb\x1b[2J\xff\xe2\x80\xa8 caf\xc3\xa9";
	logrecord_escape(&out, text, sizeof(text) - 1);
	assert_string_equal(out.data, "a\tb\\x1b[2J\\xff\\xe2\\x80\\xa8 caf\xc3\xa9");
	protocol_buf_finish(&out);
	logrecord_escape(&out, "", 0);
	assert_string_equal(out.data ? out.data : "", "");
}

#define TEST(f) cmocka_unit_test_teardown(f, reset)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(text_and_json_forms),
		TEST(lines_as_log_files_hold_them),
		TEST(ascii_lines_written_as_the_protocol_writes_them),
		TEST(bytes_that_are_not_utf8_and_nul),
		TEST(cut_lines_and_other_streams),
		TEST(long_lines_cut_to_fit_a_record),
		TEST(times_to_the_microsecond),
		TEST(the_time_as_the_record_has_it),
		TEST(malformed_records),
		TEST(output_events),
		TEST(escape_for_a_terminal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
