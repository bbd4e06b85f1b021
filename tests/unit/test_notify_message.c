#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "notify_message.h"

static int parse(const char *s, struct notify_message *msg)
{
	return notify_message_parse(s, strlen(s), msg);
}

static void ready(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("READY=1", &msg), 0);
	assert_true(msg.ready);
	assert_false(msg.stopping);
	assert_false(msg.has_status);
	assert_false(msg.has_extend);
	assert_int_equal(msg.mainpid, 0);
}

static void ready_with_trailing_newline(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("READY=1\n", &msg), 0);
	assert_true(msg.ready);
}

static void ready_zero_is_not_ready(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("READY=0", &msg), 0);
	assert_false(msg.ready);
	assert_int_equal(parse("READY=11", &msg), 0);
	assert_false(msg.ready);
	assert_int_equal(parse("READY=", &msg), 0);
	assert_false(msg.ready);
}

static void watchdog(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("WATCHDOG=1", &msg), 0);
	assert_true(msg.watchdog);
	assert_false(msg.watchdog_trigger);
	assert_int_equal(parse("WATCHDOG=trigger", &msg), 0);
	assert_false(msg.watchdog);
	assert_true(msg.watchdog_trigger);
	assert_int_equal(parse("WATCHDOG=0\nWATCHDOG=triggers", &msg), 0);
	assert_false(msg.watchdog);
	assert_false(msg.watchdog_trigger);
}

static void stopping(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("STOPPING=1", &msg), 0);
	assert_true(msg.stopping);
	assert_false(msg.ready);
}

static void status_copied(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("STATUS=Serving 12 clients", &msg), 0);
	assert_true(msg.has_status);
	assert_string_equal(msg.status, "Serving 12 clients");
	assert_false(msg.ready);
}

static void status_may_be_empty(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("STATUS=", &msg), 0);
	assert_true(msg.has_status);
	assert_string_equal(msg.status, "");
}

static void status_keeps_equals_and_utf8(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("STATUS=a=b caf\xc3\xa9", &msg), 0);
	assert_string_equal(msg.status, "a=b caf\xc3\xa9");
}

static void status_truncated(void **state)
{
	(void)state;
	char buf[7 + 1000 + 1];
	memcpy(buf, "STATUS=", 7);
	for (int i = 0; i < 1000; i++)
		buf[7 + i] = (char)('a' + i % 26);
	buf[7 + 1000] = '\0';
	struct notify_message msg;
	assert_int_equal(parse(buf, &msg), 0);
	assert_int_equal(strlen(msg.status), NOTIFY_MESSAGE_STATUS_MAX - 1);
	assert_memory_equal(msg.status, buf + 7, NOTIFY_MESSAGE_STATUS_MAX - 1);
}

static void status_of_exact_capacity_kept(void **state)
{
	(void)state;
	char buf[7 + NOTIFY_MESSAGE_STATUS_MAX];
	memcpy(buf, "STATUS=", 7);
	memset(buf + 7, 'x', NOTIFY_MESSAGE_STATUS_MAX - 1);
	buf[7 + NOTIFY_MESSAGE_STATUS_MAX - 1] = '\0';
	struct notify_message msg;
	assert_int_equal(parse(buf, &msg), 0);
	assert_string_equal(msg.status, buf + 7);
}

static void status_control_characters_replaced(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("STATUS=a\tb\rc\033[31md\x7f" "e", &msg), 0);
	assert_string_equal(msg.status, "a b c [31md e");
}

static void status_ends_at_newline(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("STATUS=one\nREADY=1", &msg), 0);
	assert_string_equal(msg.status, "one");
	assert_true(msg.ready);
}

static void extend_timeout(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("EXTEND_TIMEOUT_USEC=5000000", &msg), 0);
	assert_true(msg.has_extend);
	assert_int_equal(msg.extend_usec, 5000000);
	assert_int_equal(parse("EXTEND_TIMEOUT_USEC=18446744073709551615", &msg), 0);
	assert_true(msg.has_extend);
	assert_true(msg.extend_usec == UINT64_MAX);
}

static void extend_timeout_overflow_rejected(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("EXTEND_TIMEOUT_USEC=18446744073709551616", &msg), 0);
	assert_false(msg.has_extend);
	assert_int_equal(parse("EXTEND_TIMEOUT_USEC=99999999999999999999", &msg), 0);
	assert_false(msg.has_extend);
	assert_int_equal(parse("EXTEND_TIMEOUT_USEC=100000000000000000000000", &msg), 0);
	assert_false(msg.has_extend);
}

static void extend_timeout_malformed_ignored(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("EXTEND_TIMEOUT_USEC=", &msg), 0);
	assert_false(msg.has_extend);
	assert_int_equal(parse("EXTEND_TIMEOUT_USEC=-5", &msg), 0);
	assert_false(msg.has_extend);
	assert_int_equal(parse("EXTEND_TIMEOUT_USEC=5s", &msg), 0);
	assert_false(msg.has_extend);
}

static void mainpid(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("MAINPID=4242", &msg), 0);
	assert_int_equal(msg.mainpid, 4242);
}

static void mainpid_zero_and_garbage_ignored(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("MAINPID=0", &msg), 0);
	assert_int_equal(msg.mainpid, 0);
	assert_int_equal(parse("MAINPID=abc", &msg), 0);
	assert_int_equal(msg.mainpid, 0);
	assert_int_equal(parse("MAINPID=12x", &msg), 0);
	assert_int_equal(msg.mainpid, 0);
	assert_int_equal(parse("MAINPID=-1", &msg), 0);
	assert_int_equal(msg.mainpid, 0);
	assert_int_equal(parse("MAINPID=4294967297", &msg), 0);
	assert_int_equal(msg.mainpid, 0);
}

static void several_assignments(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("READY=1\nSTATUS=up\nMAINPID=77\nEXTEND_TIMEOUT_USEC=10\n", &msg),
		0);
	assert_true(msg.ready);
	assert_string_equal(msg.status, "up");
	assert_int_equal(msg.mainpid, 77);
	assert_true(msg.has_extend);
	assert_int_equal(msg.extend_usec, 10);
	assert_false(msg.stopping);
}

static void unknown_keys_ignored(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("WATCHDOG=1\nFDSTORE=1\nREADYX=1\nXREADY=1", &msg), 0);
	assert_false(msg.ready);
	assert_false(msg.has_status);
	assert_int_equal(parse("WATCHDOG=1\nREADY=1", &msg), 0);
	assert_true(msg.ready);
}

static void previous_result_cleared(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(parse("READY=1\nSTATUS=x\nMAINPID=5", &msg), 0);
	assert_int_equal(parse("STOPPING=1", &msg), 0);
	assert_false(msg.ready);
	assert_false(msg.has_status);
	assert_int_equal(msg.mainpid, 0);
	assert_true(msg.stopping);
}

static void nul_byte_rejected(void **state)
{
	(void)state;
	struct notify_message msg;
	static const char buf[] = "READY=1\0STATUS=x";
	assert_int_equal(notify_message_parse(buf, sizeof(buf) - 1, &msg), -1);
	assert_false(msg.ready);
}

static void no_assignment_rejected(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(notify_message_parse("", 0, &msg), -1);
	assert_int_equal(parse("\n\n", &msg), -1);
	assert_int_equal(parse("READY", &msg), -1);
	assert_int_equal(parse("hello world\nbye", &msg), -1);
}

static void length_bounds_the_datagram(void **state)
{
	(void)state;
	struct notify_message msg;
	assert_int_equal(notify_message_parse("READY=1\nSTATUS=hidden", 8, &msg), 0);
	assert_true(msg.ready);
	assert_false(msg.has_status);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ready),
		cmocka_unit_test(ready_with_trailing_newline),
		cmocka_unit_test(ready_zero_is_not_ready),
		cmocka_unit_test(stopping),
		cmocka_unit_test(watchdog),
		cmocka_unit_test(status_copied),
		cmocka_unit_test(status_may_be_empty),
		cmocka_unit_test(status_keeps_equals_and_utf8),
		cmocka_unit_test(status_truncated),
		cmocka_unit_test(status_of_exact_capacity_kept),
		cmocka_unit_test(status_control_characters_replaced),
		cmocka_unit_test(status_ends_at_newline),
		cmocka_unit_test(extend_timeout),
		cmocka_unit_test(extend_timeout_overflow_rejected),
		cmocka_unit_test(extend_timeout_malformed_ignored),
		cmocka_unit_test(mainpid),
		cmocka_unit_test(mainpid_zero_and_garbage_ignored),
		cmocka_unit_test(several_assignments),
		cmocka_unit_test(unknown_keys_ignored),
		cmocka_unit_test(previous_result_cleared),
		cmocka_unit_test(nul_byte_rejected),
		cmocka_unit_test(no_assignment_rejected),
		cmocka_unit_test(length_bounds_the_datagram),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
