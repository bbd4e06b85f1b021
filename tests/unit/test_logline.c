#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "logline.h"

/* 2026-12-01T19:45:00.123456Z */
#define TIME 1796154300.123456

static struct protocol_buf out;

static int reset(void **state)
{
	(void)state;
	protocol_buf_finish(&out);
	return 0;
}

static struct logline line_of(const char *text, size_t len)
{
	return (struct logline){
		.time = TIME,
		.service = "web",
		.pid = 4242,
		.gen = 3,
		.stream = LOGLINE_ERR,
		.text = text,
		.len = len,
	};
}

// The text form of the len bytes of text, without the time.
static const char *text_of(const char *text, size_t len)
{
	struct logline l = line_of(text, len);
	protocol_buf_finish(&out);
	logline_text(&out, &l, false);
	assert_false(out.failed);
	return out.data;
}

static const char *json_of(const char *text, size_t len)
{
	struct logline l = line_of(text, len);
	protocol_buf_finish(&out);
	logline_json(&out, &l);
	assert_false(out.failed);
	return out.data;
}

// The text form of the line after its prefix.
static const char *shown(const char *text, size_t len)
{
	static const char prefix[] = "web[4242] gen 3 err: ";
	const char *all = text_of(text, len);
	assert_memory_equal(all, prefix, sizeof(prefix) - 1);
	return all + sizeof(prefix) - 1;
}

#define TEXT(s) text_of(s, sizeof(s) - 1)
#define SHOWN(s) shown(s, sizeof(s) - 1)
#define JSON(s) json_of(s, sizeof(s) - 1)

static void text_form(void **state)
{
	(void)state;
	struct logline l = line_of("listening on :8080", 18);
	logline_text(&out, &l, false);
	assert_string_equal(out.data, "web[4242] gen 3 err: listening on :8080\n");
	protocol_buf_finish(&out);
	l.stream = LOGLINE_OUT;
	l.cut = true;
	logline_text(&out, &l, true);
	assert_string_equal(out.data,
		"2026-12-01T19:45:00.123456Z web[4242] gen 3 out: listening on :8080 [cut]\n");
	assert_string_equal(TEXT(""), "web[4242] gen 3 err: \n");
}

static void text_escapes_control_characters(void **state)
{
	(void)state;
	assert_string_equal(SHOWN("a\tb"), "a\tb\n");
	assert_string_equal(SHOWN("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m\n");
	assert_string_equal(SHOWN("nul\0here"), "nul\\x00here\n");
	assert_string_equal(SHOWN("del\x7f"), "del\\x7f\n");
	assert_string_equal(SHOWN("10%\r20%\r"), "10%\\x0d20%\n");
	assert_string_equal(SHOWN("crlf\r"), "crlf\n");
	assert_string_equal(SHOWN("\r"), "\n");
	assert_string_equal(SHOWN("\r\r"), "\\x0d\n");
	assert_string_equal(SHOWN("C:\\dir \\x41"), "C:\\dir \\x41\n");
}

static void text_keeps_utf8_but_not_c1_or_separators(void **state)
{
	(void)state;
	assert_string_equal(SHOWN("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0"),
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0\n");
	assert_string_equal(SHOWN("nel\xc2\x85 csi\xc2\x9b"), "nel\\xc2\\x85 csi\\xc2\\x9b\n");
	assert_string_equal(SHOWN("ls\xe2\x80\xa8ps\xe2\x80\xa9"),
		"ls\\xe2\\x80\\xa8ps\\xe2\\x80\\xa9\n");
}

static void text_escapes_bytes_that_are_not_utf8(void **state)
{
	(void)state;
	assert_string_equal(SHOWN("\xff\xfe"), "\\xff\\xfe\n");
	// Overlong forms, a surrogate, past U+10FFFF, cut short, a lone continuation byte.
	assert_string_equal(SHOWN("\xc0\xaf"), "\\xc0\\xaf\n");
	assert_string_equal(SHOWN("\xe0\x9f\xbf"), "\\xe0\\x9f\\xbf\n");
	assert_string_equal(SHOWN("\xed\xa0\x80"), "\\xed\\xa0\\x80\n");
	assert_string_equal(SHOWN("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80\n");
	assert_string_equal(SHOWN("\xe2\x82"), "\\xe2\\x82\n");
	assert_string_equal(SHOWN("\xe2\x82z"), "\\xe2\\x82z\n");
	assert_string_equal(SHOWN("a\x80\xc3\xa9"), "a\\x80\xc3\xa9\n");
}

static void text_escapes_the_service_name(void **state)
{
	(void)state;
	struct logline l = line_of("x", 1);
	l.service = "we\nb\xff";
	logline_text(&out, &l, false);
	assert_string_equal(out.data, "we\\x0ab\\xff[4242] gen 3 err: x\n");
}

// The time that the text form of a line at t starts with.
static const char *stamp(double t)
{
	struct logline l = line_of("x", 1);
	l.time = t;
	protocol_buf_finish(&out);
	logline_text(&out, &l, true);
	assert_string_equal(out.data + 27, " web[4242] gen 3 err: x\n");
	out.data[27] = '\0';
	return out.data;
}

static void time_in_utc_to_the_microsecond(void **state)
{
	(void)state;
	assert_string_equal(stamp(0), "1970-01-01T00:00:00.000000Z");
	assert_string_equal(stamp(1796154300.5), "2026-12-01T19:45:00.500000Z");
	assert_string_equal(stamp(1796154299.9999996), "2026-12-01T19:45:00.000000Z");
	assert_string_equal(stamp(951782400.25), "2000-02-29T00:00:00.250000Z");
	assert_string_equal(stamp(-5), "1970-01-01T00:00:00.000000Z");
	assert_string_equal(stamp(NAN), "1970-01-01T00:00:00.000000Z");
	assert_string_equal(stamp(1e300), "9999-12-31T23:59:59.999999Z");
	assert_string_equal(stamp(INFINITY), "9999-12-31T23:59:59.999999Z");
}

// Every date from 1970 to 9999 that the calendar makes hard (leap days, the
// ends of months and years, centuries) and days spread between, as gmtime
// says them.
static void time_is_the_date_gmtime_gives(void **state)
{
	(void)state;
	const long long last_day = 253402300799LL / 86400;
	size_t checked = 0;
	for (long long day = 0; day <= last_day; day += 11) {
		for (int at = 0; at < 2; at++) {
			time_t t = (time_t)(day * 86400 + (at ? 86399 : 0));
			struct tm tm;
			char want[32];
			gmtime_r(&t, &tm);
			strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
			assert_string_equal(stamp((double)t), want);
			checked++;
		}
	}
	static const int dates[][3] = {{1972, 2, 29}, {2000, 2, 29}, {2000, 3, 1}, {2100, 2, 28},
		{2100, 3, 1}, {2400, 2, 29}, {9999, 12, 31}, {1999, 12, 31}, {2024, 12, 31}};
	for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
		struct tm tm = {.tm_year = dates[i][0] - 1900, .tm_mon = dates[i][1] - 1,
			.tm_mday = dates[i][2]};
		char want[32];
		snprintf(want, sizeof(want), "%04d-%02d-%02dT00:00:00.000000Z", dates[i][0],
			dates[i][1], dates[i][2]);
		assert_string_equal(stamp((double)timegm(&tm)), want);
	}
	assert_true(checked > 1000);
}

static void json_form(void **state)
{
	(void)state;
	assert_string_equal(JSON("listening on :8080"),
		"{\"time\":\"2026-12-01T19:45:00.123456Z\",\"service\":\"web\","
		"\"pid\":4242,\"gen\":3,\"stream\":\"err\",\"line\":\"listening on :8080\"}\n");
	struct logline l = line_of("", 0);
	l.stream = LOGLINE_OUT;
	l.cut = true;
	protocol_buf_finish(&out);
	logline_json(&out, &l);
	assert_string_equal(out.data,
		"{\"time\":\"2026-12-01T19:45:00.123456Z\",\"service\":\"web\","
		"\"pid\":4242,\"gen\":3,\"stream\":\"out\",\"line\":\"\",\"cut\":true}\n");
}

// The "line" field and what follows it.
static const char *json_line(const char *text, size_t len)
{
	const char *json = json_of(text, len);
	const char *at = strstr(json, ",\"line\":");
	assert_non_null(at);
	return at + 8;
}

#define LINE(s) json_line(s, sizeof(s) - 1)

static void json_escapes(void **state)
{
	(void)state;
	assert_string_equal(LINE("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"}\n");
	assert_string_equal(LINE("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"}\n");
	assert_string_equal(LINE("\0\x01\x1b\x1f\x7f"),
		"\"\\u0000\\u0001\\u001b\\u001f\\u007f\"}\n");
	assert_string_equal(LINE("caf\xc3\xa9 \xc2\x85 \xe2\x80\xa8 \xf0\x9f\x98\x80"),
		"\"caf\xc3\xa9 \xc2\x85 \xe2\x80\xa8 \xf0\x9f\x98\x80\"}\n");
}

static void json_line_that_is_json_stays_a_string(void **state)
{
	(void)state;
	assert_string_equal(LINE("{\"level\":\"info\",\"n\":1}"),
		"\"{\\\"level\\\":\\\"info\\\",\\\"n\\\":1}\"}\n");
}

static void json_bytes_that_are_not_utf8(void **state)
{
	(void)state;
	assert_string_equal(LINE("ok\xff"), "\"ok\xef\xbf\xbd\",\"line_base64\":\"b2v/\"}\n");
	assert_string_equal(LINE("\xff"), "\"\xef\xbf\xbd\",\"line_base64\":\"/w==\"}\n");
	assert_string_equal(LINE("\xff\xfe"),
		"\"\xef\xbf\xbd\xef\xbf\xbd\",\"line_base64\":\"//4=\"}\n");
	assert_string_equal(LINE("\xff\xfe\xfd"),
		"\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\",\"line_base64\":\"//79\"}\n");
	assert_string_equal(LINE("a\0\xc0\xaf"),
		"\"a\\u0000\xef\xbf\xbd\xef\xbf\xbd\",\"line_base64\":\"YQDArw==\"}\n");
	struct logline l = line_of("\xed\xa0\x80", 3);
	l.cut = true;
	protocol_buf_finish(&out);
	logline_json(&out, &l);
	assert_non_null(strstr(out.data,
		"\"line\":\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\",\"line_base64\":\"7aCA\","
		"\"cut\":true}\n"));
}

static void json_escapes_the_service_name(void **state)
{
	(void)state;
	struct logline l = line_of("x", 1);
	l.service = "w\"e\\b\xff";
	logline_json(&out, &l);
	assert_non_null(strstr(out.data, ",\"service\":\"w\\\"e\\\\b\xef\xbf\xbd\",\"pid\":"));
	assert_null(strstr(out.data, "base64"));
}

#define TEST(f) cmocka_unit_test_teardown(f, reset)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(text_form),
		TEST(text_escapes_control_characters),
		TEST(text_keeps_utf8_but_not_c1_or_separators),
		TEST(text_escapes_bytes_that_are_not_utf8),
		TEST(text_escapes_the_service_name),
		TEST(time_in_utc_to_the_microsecond),
		TEST(time_is_the_date_gmtime_gives),
		TEST(json_form),
		TEST(json_escapes),
		TEST(json_line_that_is_json_stays_a_string),
		TEST(json_bytes_that_are_not_utf8),
		TEST(json_escapes_the_service_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
