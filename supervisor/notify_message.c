#include "notify_message.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
	if (n == 0 || n > 20)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool key_is(const char *line, size_t n, const char *key, const char **value,
	size_t *vlen)
{
	size_t k = strlen(key);
	if (n <= k || memcmp(line, key, k) != 0 || line[k] != '=')
		return false;
	*value = line + k + 1;
	*vlen = n - k - 1;
	return true;
}

static void set_status(struct notify_message *msg, const char *v, size_t n)
{
	if (n >= sizeof(msg->status))
		n = sizeof(msg->status) - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		msg->status[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	msg->status[n] = '\0';
	msg->has_status = true;
}

static void parse_line(struct notify_message *msg, const char *line, size_t n)
{
	const char *v;
	size_t vn;
	uint64_t u;
	if (key_is(line, n, "READY", &v, &vn))
		msg->ready = vn == 1 && v[0] == '1';
	else if (key_is(line, n, "STOPPING", &v, &vn))
		msg->stopping = vn == 1 && v[0] == '1';
	else if (key_is(line, n, "WATCHDOG", &v, &vn)) {
		msg->watchdog = vn == 1 && v[0] == '1';
		msg->watchdog_trigger = vn == 7 && memcmp(v, "trigger", 7) == 0;
	} else if (key_is(line, n, "STATUS", &v, &vn))
		set_status(msg, v, vn);
	else if (key_is(line, n, "EXTEND_TIMEOUT_USEC", &v, &vn) && parse_u64(v, vn, &u)) {
		msg->has_extend = true;
		msg->extend_usec = u;
	} else if (key_is(line, n, "MAINPID", &v, &vn) && parse_u64(v, vn, &u) && u > 0 &&
		u <= 0x7fffffff) {
		msg->mainpid = (pid_t)u;
	}
}

int notify_message_parse(const char *buf, size_t len, struct notify_message *msg)
{
	memset(msg, 0, sizeof(*msg));
	if (len == 0 || memchr(buf, '\0', len))
		return -1;
	const char *p = buf, *end = buf + len;
	bool any = false;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > 0 && memchr(p, '=', n)) {
			parse_line(msg, p, n);
			any = true;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return any ? 0 : -1;
}
