#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

struct outcome {
	int rc;
	const char *code;
	char err[256];
};

static struct outcome parse_req(struct protocol_request *req, const char *line)
{
	struct outcome o = {.code = NULL};
	o.rc = protocol_parse_request(req, line, strlen(line), &o.code, o.err, sizeof(o.err));
	return o;
}

static void assert_request_fails(const char *line, const char *code)
{
	struct protocol_request req;
	struct outcome o = parse_req(&req, line);
	assert_int_equal(o.rc, -1);
	assert_non_null(o.code);
	assert_string_equal(o.code, code);
	assert_true(o.err[0] != '\0');
}

static void assert_request_ok(const char *line, enum protocol_verb verb, int argc)
{
	struct protocol_request req;
	struct outcome o = parse_req(&req, line);
	assert_int_equal(o.rc, 0);
	assert_int_equal(req.verb, verb);
	assert_int_equal(req.argc, argc);
}

/* Requests */

static void request_status_without_argument(void **state)
{
	(void)state;
	struct protocol_request req;
	assert_int_equal(parse_req(&req, "status").rc, 0);
	assert_int_equal(req.verb, VERB_STATUS);
	assert_int_equal(req.argc, 0);
	assert_int_equal(req.flags, 0);
}

static void request_status_with_service(void **state)
{
	(void)state;
	struct protocol_request req;
	assert_int_equal(parse_req(&req, "status web").rc, 0);
	assert_int_equal(req.verb, VERB_STATUS);
	assert_int_equal(req.argc, 1);
	assert_string_equal(req.argv[0], "web");
}

static void request_every_verb_parses(void **state)
{
	(void)state;
	assert_request_ok("status", VERB_STATUS, 0);
	assert_request_ok("start web", VERB_START, 1);
	assert_request_ok("stop web", VERB_STOP, 1);
	assert_request_ok("restart web", VERB_RESTART, 1);
	assert_request_ok("upgrade web", VERB_UPGRADE, 1);
	assert_request_ok("signal web HUP", VERB_SIGNAL, 2);
	assert_request_ok("watch", VERB_WATCH, 0);
	assert_request_ok("watch web", VERB_WATCH, 1);
	assert_request_ok("reload", VERB_RELOAD, 0);
	assert_request_ok("reexec", VERB_REEXEC, 0);
	assert_request_ok("shutdown", VERB_SHUTDOWN, 0);
	assert_request_ok("metrics", VERB_METRICS, 0);
	assert_request_ok("version", VERB_VERSION, 0);
}

static void request_signal_arguments_in_order(void **state)
{
	(void)state;
	struct protocol_request req;
	assert_int_equal(parse_req(&req, "signal web USR1").rc, 0);
	assert_string_equal(req.argv[0], "web");
	assert_string_equal(req.argv[1], "USR1");
}

static void request_too_few_arguments_is_usage(void **state)
{
	(void)state;
	struct protocol_request req;
	struct outcome o = parse_req(&req, "start");
	assert_int_equal(o.rc, -1);
	assert_string_equal(o.code, PROTOCOL_E_USAGE);
	assert_non_null(strstr(o.err, "start SERVICE"));
	assert_request_fails("signal web", PROTOCOL_E_USAGE);
}

static void request_too_many_arguments_is_usage(void **state)
{
	(void)state;
	assert_request_fails("status a b", PROTOCOL_E_USAGE);
	assert_request_fails("reload now", PROTOCOL_E_USAGE);
	assert_request_fails("signal web HUP extra", PROTOCOL_E_USAGE);
	assert_request_fails("version 2", PROTOCOL_E_USAGE);
}

static void request_wait_accepted_by_stop_and_upgrade(void **state)
{
	(void)state;
	struct protocol_request req;
	assert_int_equal(parse_req(&req, "stop --wait web").rc, 0);
	assert_int_equal(req.flags, FLAG_WAIT);
	assert_int_equal(req.argc, 1);
	assert_string_equal(req.argv[0], "web");
	assert_int_equal(parse_req(&req, "upgrade web --wait").rc, 0);
	assert_int_equal(req.flags, FLAG_WAIT);
	assert_string_equal(req.argv[0], "web");
}

static void request_flags_reset_between_parses(void **state)
{
	(void)state;
	struct protocol_request req;
	assert_int_equal(parse_req(&req, "stop --wait web").rc, 0);
	assert_int_equal(parse_req(&req, "stop web").rc, 0);
	assert_int_equal(req.flags, 0);
}

static void request_wait_rejected_elsewhere(void **state)
{
	(void)state;
	assert_request_fails("start --wait web", PROTOCOL_E_USAGE);
	assert_request_fails("restart --wait web", PROTOCOL_E_USAGE);
	assert_request_fails("status --wait", PROTOCOL_E_USAGE);
}

static void request_logs_options_carry_numbers(void **state)
{
	(void)state;
	struct protocol_request req;
	assert_int_equal(parse_req(&req, "logs --follow --lines=20 --gen=3 --pid=4242 web").rc, 0);
	assert_int_equal(req.flags, FLAG_FOLLOW | FLAG_LINES | FLAG_GEN | FLAG_PID);
	assert_int_equal(req.values[VALUE_LINES], 20);
	assert_int_equal(req.values[VALUE_GEN], 3);
	assert_int_equal(req.values[VALUE_PID], 4242);
	assert_int_equal(req.argc, 1);
	assert_string_equal(req.argv[0], "web");
	assert_int_equal(parse_req(&req, "logs").rc, 0);
	assert_int_equal(req.flags, 0);
	assert_int_equal(req.values[VALUE_LINES], 0);
	assert_int_equal(parse_req(&req, "logs --reopen").rc, 0);
	assert_int_equal(req.flags, FLAG_REOPEN);
}

static void request_option_values_are_checked(void **state)
{
	(void)state;
	assert_request_fails("logs --lines", PROTOCOL_E_USAGE);
	assert_request_fails("logs --lines=", PROTOCOL_E_USAGE);
	assert_request_fails("logs --lines=-1", PROTOCOL_E_USAGE);
	assert_request_fails("logs --lines=1x", PROTOCOL_E_USAGE);
	assert_request_fails("logs --lines=99999999999", PROTOCOL_E_USAGE);
	assert_request_fails("logs --follow=1", PROTOCOL_E_USAGE);
	assert_request_fails("stop --lines=3 web", PROTOCOL_E_USAGE);
	assert_request_fails("logs --wait", PROTOCOL_E_USAGE);
	assert_request_fails("logs web other", PROTOCOL_E_USAGE);
}

static void request_wait_does_not_count_as_argument(void **state)
{
	(void)state;
	assert_request_fails("stop --wait", PROTOCOL_E_USAGE);
}

static void request_unknown_option_is_usage(void **state)
{
	(void)state;
	struct protocol_request req;
	struct outcome o = parse_req(&req, "stop --force web");
	assert_int_equal(o.rc, -1);
	assert_string_equal(o.code, PROTOCOL_E_USAGE);
	assert_non_null(strstr(o.err, "--force"));
}

static void request_unknown_verb(void **state)
{
	(void)state;
	struct protocol_request req;
	struct outcome o = parse_req(&req, "frobnicate web");
	assert_int_equal(o.rc, -1);
	assert_string_equal(o.code, PROTOCOL_E_UNKNOWN_VERB);
	assert_non_null(strstr(o.err, "frobnicate"));
}

static void request_empty_line_is_usage(void **state)
{
	(void)state;
	assert_request_fails("", PROTOCOL_E_USAGE);
	assert_request_fails("   \t ", PROTOCOL_E_USAGE);
}

static void request_blanks_separate_words(void **state)
{
	(void)state;
	struct protocol_request req;
	assert_int_equal(parse_req(&req, "  signal\t web   TERM  ").rc, 0);
	assert_int_equal(req.verb, VERB_SIGNAL);
	assert_string_equal(req.argv[0], "web");
	assert_string_equal(req.argv[1], "TERM");
}

static void request_longest_line_accepted(void **state)
{
	(void)state;
	char line[PROTOCOL_REQUEST_MAX];
	memset(line, ' ', sizeof(line));
	memcpy(line, "status", 6);
	struct protocol_request req;
	const char *code = NULL;
	char err[128];
	assert_int_equal(protocol_parse_request(&req, line, PROTOCOL_REQUEST_MAX - 1, &code, err,
				 sizeof(err)),
		0);
	assert_int_equal(req.verb, VERB_STATUS);
}

static void request_line_of_max_bytes_is_too_long(void **state)
{
	(void)state;
	char line[PROTOCOL_REQUEST_MAX + 10];
	memset(line, ' ', sizeof(line));
	memcpy(line, "status", 6);
	struct protocol_request req;
	const char *code = NULL;
	char err[128];
	assert_int_equal(
		protocol_parse_request(&req, line, PROTOCOL_REQUEST_MAX, &code, err, sizeof(err)),
		-1);
	assert_string_equal(code, PROTOCOL_E_TOO_LONG);
	code = NULL;
	assert_int_equal(protocol_parse_request(&req, line, sizeof(line), &code, err, sizeof(err)),
		-1);
	assert_string_equal(code, PROTOCOL_E_TOO_LONG);
}

static void request_control_bytes_rejected(void **state)
{
	(void)state;
	assert_request_fails("status\001web", PROTOCOL_E_USAGE);
	assert_request_fails("status w\x7f", PROTOCOL_E_USAGE);
	assert_request_fails("status w\xc3\xa9", PROTOCOL_E_USAGE);
	assert_request_fails("status\nweb", PROTOCOL_E_USAGE);
}

static void request_nul_byte_rejected(void **state)
{
	(void)state;
	struct protocol_request req;
	const char *code = NULL;
	char err[128];
	static const char line[] = "status\0web";
	assert_int_equal(
		protocol_parse_request(&req, line, sizeof(line) - 1, &code, err, sizeof(err)), -1);
	assert_string_equal(code, PROTOCOL_E_USAGE);
}

static void request_eight_words_reach_argument_check(void **state)
{
	(void)state;
	struct protocol_request req;
	/* eight words reach the argument check, not the word limit */
	struct outcome o = parse_req(&req, "status a b c d e f g");
	assert_int_equal(o.rc, -1);
	assert_non_null(strstr(o.err, "usage"));
	assert_null(strstr(o.err, "words"));
}

static void request_more_than_max_words_rejected(void **state)
{
	(void)state;
	struct protocol_request req;
	char line[256] = "status";
	for (int i = 0; i < PROTOCOL_WORDS_MAX; i++)
		strcat(line, " a");
	struct outcome o = parse_req(&req, line);
	assert_int_equal(o.rc, -1);
	assert_string_equal(o.code, PROTOCOL_E_USAGE);
	assert_non_null(strstr(o.err, "words"));
}

static void request_words_after_a_lone_dashdash_are_arguments(void **state)
{
	(void)state;
	struct protocol_request req;
	struct outcome o = parse_req(&req, "upgrade --canary=2 --observe=30000 --gate web -- "
					  "/usr/bin/check --max-errors 5");
	assert_int_equal(o.rc, 0);
	assert_int_equal(req.flags, FLAG_CANARY | FLAG_OBSERVE | FLAG_GATE);
	assert_int_equal(req.values[VALUE_CANARY], 2);
	assert_int_equal(req.values[VALUE_OBSERVE], 30000);
	assert_int_equal(req.argc, 4);
	assert_string_equal(req.argv[0], "web");
	assert_string_equal(req.argv[1], "/usr/bin/check");
	assert_string_equal(req.argv[2], "--max-errors");
	assert_string_equal(req.argv[3], "5");
	o = parse_req(&req, "upgrade --continue --wait web");
	assert_int_equal(o.rc, 0);
	assert_int_equal(req.flags, FLAG_CONTINUE | FLAG_WAIT);
	o = parse_req(&req, "stop --abort web");
	assert_int_equal(o.rc, -1);
	assert_string_equal(o.code, PROTOCOL_E_USAGE);
}

static void request_trailing_cr_ignored(void **state)
{
	(void)state;
	struct protocol_request req;
	assert_int_equal(parse_req(&req, "stop web\r").rc, 0);
	assert_int_equal(req.verb, VERB_STOP);
	assert_string_equal(req.argv[0], "web");
}

static void request_inner_cr_rejected(void **state)
{
	(void)state;
	assert_request_fails("stop\rweb", PROTOCOL_E_USAGE);
}

static void verb_info_describes_verbs(void **state)
{
	(void)state;
	const struct protocol_verb_info *info = protocol_verb_info(VERB_SIGNAL);
	assert_non_null(info);
	assert_string_equal(info->name, "signal");
	assert_int_equal(info->min_args, 2);
	assert_int_equal(info->max_args, 2);
	assert_int_equal(protocol_verb_info(VERB_STOP)->flags, FLAG_WAIT);
	assert_null(protocol_verb_info(VERB_COUNT));
}

/* Names */

static void name_valid_accepts_allowed_characters(void **state)
{
	(void)state;
	assert_true(protocol_name_valid("web"));
	assert_true(protocol_name_valid("Web_1.2-x@host"));
	assert_true(protocol_name_valid("a"));
	char name[PROTOCOL_NAME_MAX + 1];
	memset(name, 'n', PROTOCOL_NAME_MAX);
	name[PROTOCOL_NAME_MAX] = '\0';
	assert_true(protocol_name_valid(name));
}

static void name_valid_rejects_bad_names(void **state)
{
	(void)state;
	assert_false(protocol_name_valid(""));
	assert_false(protocol_name_valid("-web"));
	assert_false(protocol_name_valid(".web"));
	assert_false(protocol_name_valid("a b"));
	assert_false(protocol_name_valid("a/b"));
	assert_false(protocol_name_valid("caf\xc3\xa9"));
	assert_false(protocol_name_valid("a=b"));
	char name[PROTOCOL_NAME_MAX + 2];
	memset(name, 'n', PROTOCOL_NAME_MAX + 1);
	name[PROTOCOL_NAME_MAX + 1] = '\0';
	assert_false(protocol_name_valid(name));
}

/* Buffers */

static void buf_add_grows(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	for (int i = 0; i < 10000; i++) {
		char c = (char)('a' + i % 26);
		protocol_buf_add(&buf, &c, 1);
	}
	assert_false(buf.failed);
	assert_int_equal(buf.len, 10000);
	assert_true(buf.cap > buf.len);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf.data[i], 'a' + i % 26);
	protocol_buf_finish(&buf);
	assert_null(buf.data);
	assert_int_equal(buf.len, 0);
}

static void buf_printf_appends(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	protocol_buf_add(&buf, "x=", 2);
	protocol_buf_printf(&buf, "%d-%s", 42, "y");
	char big[1000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	protocol_buf_printf(&buf, "%s", big);
	assert_int_equal(buf.len, 6 + 999);
	assert_memory_equal(buf.data, "x=42-y", 6);
	assert_memory_equal(buf.data + 6, big, 999);
	protocol_buf_finish(&buf);
}

static void buf_consume_drops_prefix(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	protocol_buf_add(&buf, "hello world", 11);
	protocol_buf_consume(&buf, 6);
	assert_int_equal(buf.len, 5);
	assert_memory_equal(buf.data, "world", 5);
	protocol_buf_add(&buf, "!", 1);
	assert_int_equal(buf.len, 6);
	assert_memory_equal(buf.data, "world!", 6);
	protocol_buf_finish(&buf);
}

static void buf_consume_everything_empties(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	protocol_buf_add(&buf, "abc", 3);
	protocol_buf_consume(&buf, 3);
	assert_int_equal(buf.len, 0);
	protocol_buf_add(&buf, "de", 2);
	protocol_buf_consume(&buf, 100);
	assert_int_equal(buf.len, 0);
	protocol_buf_add(&buf, "f", 1);
	assert_int_equal(buf.len, 1);
	assert_memory_equal(buf.data, "f", 1);
	protocol_buf_finish(&buf);
}

/* Records */

/* Encodes one record with a string field, parses it back and returns the value. */
static void assert_str_round_trips(const char *value)
{
	struct protocol_buf buf = {0};
	protocol_record_begin(&buf, "service");
	protocol_record_str(&buf, "name", "web");
	protocol_record_str(&buf, "status", value);
	protocol_record_int(&buf, "pid", 7);
	protocol_record_end(&buf);
	assert_false(buf.failed);
	assert_true(buf.len > 0);
	assert_int_equal(buf.data[buf.len - 1], '\n');
	assert_null(memchr(buf.data, '\n', buf.len - 1));
	struct protocol_record *rec = malloc(sizeof(*rec));
	assert_non_null(rec);
	assert_int_equal(protocol_parse_record(rec, buf.data, buf.len - 1), 0);
	assert_string_equal(rec->type, "service");
	assert_int_equal(rec->nfields, 3);
	assert_string_equal(protocol_record_get(rec, "name"), "web");
	assert_string_equal(protocol_record_get(rec, "status"), value);
	assert_string_equal(protocol_record_get(rec, "pid"), "7");
	free(rec);
	protocol_buf_finish(&buf);
}

static void record_plain_value_round_trips(void **state)
{
	(void)state;
	assert_str_round_trips("running");
}

static void record_plain_value_written_bare(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	protocol_record_begin(&buf, "service");
	protocol_record_str(&buf, "name", "web");
	protocol_record_int(&buf, "pid", -12);
	protocol_record_secs(&buf, "uptime", 1.5);
	protocol_record_end(&buf);
	assert_int_equal(buf.len, strlen("service name=web pid=-12 uptime=1.500\n"));
	assert_memory_equal(buf.data, "service name=web pid=-12 uptime=1.500\n", buf.len);
	protocol_buf_finish(&buf);
}

static void record_special_values_round_trip(void **state)
{
	(void)state;
	assert_str_round_trips("two words");
	assert_str_round_trips("say \"hi\"");
	assert_str_round_trips("back\\slash");
	assert_str_round_trips("a=b");
	assert_str_round_trips("line\nbreak");
	assert_str_round_trips("tab\there");
	assert_str_round_trips("bell\a esc\033 del\x7f cr\r");
	assert_str_round_trips("");
	assert_str_round_trips(" ");
	assert_str_round_trips("\"");
	assert_str_round_trips("\\");
	assert_str_round_trips("caf\xc3\xa9 \xe2\x9c\x93");
	assert_str_round_trips("\\x41\\n");
}

static void record_control_bytes_escaped_on_the_wire(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	protocol_record_begin(&buf, "log");
	protocol_record_str(&buf, "msg", "a\001b\nc");
	protocol_record_end(&buf);
	assert_int_equal(buf.len, strlen("log msg=\"a\\x01b\\nc\"\n"));
	assert_memory_equal(buf.data, "log msg=\"a\\x01b\\nc\"\n", buf.len);
	protocol_buf_finish(&buf);
}

static void record_utf8_written_bare(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	protocol_record_begin(&buf, "log");
	protocol_record_str(&buf, "msg", "caf\xc3\xa9");
	protocol_record_end(&buf);
	assert_int_equal(buf.len, strlen("log msg=caf\xc3\xa9\n"));
	assert_memory_equal(buf.data, "log msg=caf\xc3\xa9\n", buf.len);
	protocol_buf_finish(&buf);
}

static void record_secs_nan_written_as_zero(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	protocol_record_begin(&buf, "t");
	protocol_record_secs(&buf, "age", NAN);
	protocol_record_secs(&buf, "t", 2.0004);
	protocol_record_end(&buf);
	assert_int_equal(buf.len, strlen("t age=0.000 t=2.000\n"));
	assert_memory_equal(buf.data, "t age=0.000 t=2.000\n", buf.len);
	protocol_buf_finish(&buf);
}

static void record_parse_type_only(void **state)
{
	(void)state;
	struct protocol_record rec;
	assert_int_equal(protocol_parse_record(&rec, "ok", 2), 0);
	assert_string_equal(rec.type, "ok");
	assert_int_equal(rec.nfields, 0);
	assert_null(protocol_record_get(&rec, "x"));
	assert_null(rec.code);
}

static void record_parse_trailing_cr_ignored(void **state)
{
	(void)state;
	struct protocol_record rec;
	const char *line = "svc a=1 b=\"x y\"\r";
	assert_int_equal(protocol_parse_record(&rec, line, strlen(line)), 0);
	assert_int_equal(rec.nfields, 2);
	assert_string_equal(protocol_record_get(&rec, "b"), "x y");
}

static void assert_record_rejected(const char *line)
{
	struct protocol_record rec;
	assert_int_equal(protocol_parse_record(&rec, line, strlen(line)), -1);
}

static void record_unterminated_quote_rejected(void **state)
{
	(void)state;
	assert_record_rejected("svc a=\"open");
	assert_record_rejected("svc a=\"open\\\"");
}

static void record_bad_escape_rejected(void **state)
{
	(void)state;
	assert_record_rejected("svc a=\"\\q\"");
	assert_record_rejected("svc a=\"\\x4\"");
	assert_record_rejected("svc a=\"\\xzz\"");
	assert_record_rejected("svc a=\"\\x00\"");
	assert_record_rejected("svc a=\"x\\");
}

static void record_missing_equals_rejected(void **state)
{
	(void)state;
	assert_record_rejected("svc a");
	assert_record_rejected("svc a=1 b");
	assert_record_rejected("svc =1");
}

static void record_malformed_values_rejected(void **state)
{
	(void)state;
	assert_record_rejected("svc a=");
	assert_record_rejected("svc a=x\"y");
	assert_record_rejected("svc a=x=y");
	assert_record_rejected("svc a=x\\y");
	assert_record_rejected("svc a=\"x\"y");
	assert_record_rejected("svc a=1  b=2");
	assert_record_rejected("");
	assert_record_rejected(" svc");
	assert_record_rejected("s\"vc a=1");
}

static void record_nul_byte_rejected(void **state)
{
	(void)state;
	struct protocol_record rec;
	static const char line[] = "svc a=1\0 b=2";
	assert_int_equal(protocol_parse_record(&rec, line, sizeof(line) - 1), -1);
}

static void record_too_long_rejected(void **state)
{
	(void)state;
	char *line = malloc(PROTOCOL_RECORD_MAX + 1);
	assert_non_null(line);
	memset(line, 'v', PROTOCOL_RECORD_MAX);
	memcpy(line, "svc a=", 6);
	struct protocol_record *rec = malloc(sizeof(*rec));
	assert_non_null(rec);
	assert_int_equal(protocol_parse_record(rec, line, PROTOCOL_RECORD_MAX - 1), 0);
	assert_int_equal(strlen(protocol_record_get(rec, "a")), PROTOCOL_RECORD_MAX - 1 - 6);
	assert_int_equal(protocol_parse_record(rec, line, PROTOCOL_RECORD_MAX), -1);
	free(rec);
	free(line);
}

/* Builds a record line with n fields k0=0 k1=1 ... */
static void fields_line(struct protocol_buf *buf, int n)
{
	protocol_record_begin(buf, "svc");
	for (int i = 0; i < n; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		protocol_record_int(buf, key, i);
	}
}

static void record_max_fields_accepted(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	fields_line(&buf, PROTOCOL_FIELDS_MAX);
	struct protocol_record rec;
	assert_int_equal(protocol_parse_record(&rec, buf.data, buf.len), 0);
	assert_int_equal(rec.nfields, PROTOCOL_FIELDS_MAX);
	assert_string_equal(protocol_record_get(&rec, "k47"), "47");
	protocol_buf_finish(&buf);
}

static void record_field_overflow_rejected(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	fields_line(&buf, PROTOCOL_FIELDS_MAX + 1);
	struct protocol_record rec;
	assert_int_equal(protocol_parse_record(&rec, buf.data, buf.len), -1);
	protocol_buf_finish(&buf);
}

static void record_get_finds_each_key(void **state)
{
	(void)state;
	struct protocol_record rec;
	const char *line = "svc a=1 b=2 c=\"\"";
	assert_int_equal(protocol_parse_record(&rec, line, strlen(line)), 0);
	assert_string_equal(protocol_record_get(&rec, "a"), "1");
	assert_string_equal(protocol_record_get(&rec, "b"), "2");
	assert_string_equal(protocol_record_get(&rec, "c"), "");
	assert_null(protocol_record_get(&rec, "d"));
}

/* Error lines */

static void error_line_written(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	protocol_error(&buf, PROTOCOL_E_NOT_FOUND, "no service \"web\"");
	assert_int_equal(buf.len, strlen("error not-found no service \"web\"\n"));
	assert_memory_equal(buf.data, "error not-found no service \"web\"\n", buf.len);
	protocol_buf_finish(&buf);
}

static void error_line_newlines_replaced(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	protocol_error(&buf, PROTOCOL_E_FAILED, "one\ntwo\r\nthree");
	assert_int_equal(buf.len, strlen("error failed one two  three\n"));
	assert_memory_equal(buf.data, "error failed one two  three\n", buf.len);
	protocol_buf_finish(&buf);
}

static void error_line_round_trips(void **state)
{
	(void)state;
	struct protocol_buf buf = {0};
	protocol_error(&buf, PROTOCOL_E_INVALID, "bad value \"x=y\" \\ here");
	struct protocol_record rec;
	assert_int_equal(protocol_parse_record(&rec, buf.data, buf.len - 1), 0);
	assert_string_equal(rec.type, "error");
	assert_string_equal(rec.code, PROTOCOL_E_INVALID);
	assert_string_equal(rec.message, "bad value \"x=y\" \\ here");
	assert_int_equal(rec.nfields, 0);
	protocol_buf_finish(&buf);
}

static void error_line_without_message(void **state)
{
	(void)state;
	struct protocol_record rec;
	assert_int_equal(protocol_parse_record(&rec, "error busy", 10), 0);
	assert_string_equal(rec.code, "busy");
	assert_string_equal(rec.message, "");
}

static void error_line_without_code_rejected(void **state)
{
	(void)state;
	assert_record_rejected("error");
	assert_record_rejected("error ");
}

/* Field types */

static void field_type_of_known_keys(void **state)
{
	(void)state;
	assert_int_equal(protocol_field_type("pid"), VALUE_INT);
	assert_int_equal(protocol_field_type("instances"), VALUE_INT);
	assert_int_equal(protocol_field_type("restarts"), VALUE_INT);
	assert_int_equal(protocol_field_type("uptime"), VALUE_NUMBER);
	assert_int_equal(protocol_field_type("restart_in"), VALUE_NUMBER);
	assert_int_equal(protocol_field_type("name"), VALUE_STRING);
	assert_int_equal(protocol_field_type("state"), VALUE_STRING);
	assert_int_equal(protocol_field_type("unheard-of"), VALUE_STRING);
	assert_int_equal(protocol_field_type(""), VALUE_STRING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(request_status_without_argument),
		cmocka_unit_test(request_logs_options_carry_numbers),
		cmocka_unit_test(request_option_values_are_checked),
		cmocka_unit_test(request_status_with_service),
		cmocka_unit_test(request_every_verb_parses),
		cmocka_unit_test(request_signal_arguments_in_order),
		cmocka_unit_test(request_too_few_arguments_is_usage),
		cmocka_unit_test(request_too_many_arguments_is_usage),
		cmocka_unit_test(request_wait_accepted_by_stop_and_upgrade),
		cmocka_unit_test(request_flags_reset_between_parses),
		cmocka_unit_test(request_wait_rejected_elsewhere),
		cmocka_unit_test(request_wait_does_not_count_as_argument),
		cmocka_unit_test(request_unknown_option_is_usage),
		cmocka_unit_test(request_unknown_verb),
		cmocka_unit_test(request_empty_line_is_usage),
		cmocka_unit_test(request_blanks_separate_words),
		cmocka_unit_test(request_longest_line_accepted),
		cmocka_unit_test(request_line_of_max_bytes_is_too_long),
		cmocka_unit_test(request_control_bytes_rejected),
		cmocka_unit_test(request_nul_byte_rejected),
		cmocka_unit_test(request_eight_words_reach_argument_check),
		cmocka_unit_test(request_more_than_max_words_rejected),
		cmocka_unit_test(request_words_after_a_lone_dashdash_are_arguments),
		cmocka_unit_test(request_trailing_cr_ignored),
		cmocka_unit_test(request_inner_cr_rejected),
		cmocka_unit_test(verb_info_describes_verbs),
		cmocka_unit_test(name_valid_accepts_allowed_characters),
		cmocka_unit_test(name_valid_rejects_bad_names),
		cmocka_unit_test(buf_add_grows),
		cmocka_unit_test(buf_printf_appends),
		cmocka_unit_test(buf_consume_drops_prefix),
		cmocka_unit_test(buf_consume_everything_empties),
		cmocka_unit_test(record_plain_value_round_trips),
		cmocka_unit_test(record_plain_value_written_bare),
		cmocka_unit_test(record_special_values_round_trip),
		cmocka_unit_test(record_control_bytes_escaped_on_the_wire),
		cmocka_unit_test(record_utf8_written_bare),
		cmocka_unit_test(record_secs_nan_written_as_zero),
		cmocka_unit_test(record_parse_type_only),
		cmocka_unit_test(record_parse_trailing_cr_ignored),
		cmocka_unit_test(record_unterminated_quote_rejected),
		cmocka_unit_test(record_bad_escape_rejected),
		cmocka_unit_test(record_missing_equals_rejected),
		cmocka_unit_test(record_malformed_values_rejected),
		cmocka_unit_test(record_nul_byte_rejected),
		cmocka_unit_test(record_too_long_rejected),
		cmocka_unit_test(record_max_fields_accepted),
		cmocka_unit_test(record_field_overflow_rejected),
		cmocka_unit_test(record_get_finds_each_key),
		cmocka_unit_test(error_line_written),
		cmocka_unit_test(error_line_newlines_replaced),
		cmocka_unit_test(error_line_round_trips),
		cmocka_unit_test(error_line_without_message),
		cmocka_unit_test(error_line_without_code_rejected),
		cmocka_unit_test(field_type_of_known_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
