#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify_message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_notify_message: broken invariant: %s\n", what);
	abort();
}

// The value of the last line "KEY=..." in buf, or NULL; its length in *len.
static const char *last_value(const char *buf, size_t size, const char *key, size_t *len)
{
	const char *found = NULL, *end = buf + size;
	size_t k = strlen(key);
	for (const char *p = buf; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > k && memcmp(p, key, k) == 0 && p[k] == '=') {
			found = p + k + 1;
			*len = n - k - 1;
		}
		p = nl ? nl + 1 : end;
	}
	return found;
}

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

// The status is the last STATUS= value, truncated, control characters blanked.
static void check_status(const struct notify_message *msg, const char *buf, size_t size)
{
	size_t vlen = 0;
	const char *v = last_value(buf, size, "STATUS", &vlen);
	require(msg->has_status == (v != NULL), "has_status when a STATUS= line is there");
	size_t n = strnlen(msg->status, sizeof(msg->status));
	require(n < NOTIFY_MESSAGE_STATUS_MAX, "status is NUL-terminated and shorter than the maximum");
	if (!msg->has_status) {
		require(n == 0, "no status is an empty status");
		return;
	}
	require(n == (vlen < NOTIFY_MESSAGE_STATUS_MAX ? vlen : NOTIFY_MESSAGE_STATUS_MAX - 1),
		"status is the value, truncated");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)msg->status[i];
		require(!is_control(c), "status holds no control character");
		require(c == (unsigned char)v[i] || (c == ' ' && is_control((unsigned char)v[i])),
			"status is the value with control characters blanked");
	}
}

static void check_flag(bool flag, const char *buf, size_t size, const char *key)
{
	size_t vlen = 0;
	const char *v = last_value(buf, size, key, &vlen);
	require(flag == (v && vlen == 1 && v[0] == '1'), "a flag is set by its last KEY=1 line");
}

static void check_message(const struct notify_message *msg, const char *buf, size_t size)
{
	check_status(msg, buf, size);
	check_flag(msg->ready, buf, size, "READY");
	check_flag(msg->stopping, buf, size, "STOPPING");
	require(msg->mainpid >= 0, "mainpid is not negative");
	require(msg->has_extend || msg->extend_usec == 0, "extend_usec only with has_extend");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct notify_message msg;
	memset(&msg, 0xa5, sizeof(msg));
	int rc = notify_message_parse(buf, size, &msg);
	bool nul = size == 0 || memchr(buf, '\0', size) != NULL;
	require(!nul || rc < 0, "an empty datagram or one with a NUL is refused");
	if (rc == 0)
		check_message(&msg, buf, size);
	else
		require(!msg.ready && !msg.stopping && !msg.has_status && !msg.has_extend &&
				msg.mainpid == 0,
			"a refused datagram sets nothing");
	return 0;
}
