#ifndef BATON_NOTIFY_MESSAGE_H
#define BATON_NOTIFY_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The sd_notify datagram: newline-separated KEY=VALUE assignments. Pure, so
 * unit tests and a fuzzer drive it.
 */

#define NOTIFY_MESSAGE_STATUS_MAX 256

struct notify_message {
	bool ready;
	bool stopping;
	bool has_status;
	char status[NOTIFY_MESSAGE_STATUS_MAX]; /* truncated, control characters replaced */
	bool has_extend;
	uint64_t extend_usec;
	pid_t mainpid; /* 0 when absent */
	bool watchdog;         /* WATCHDOG=1 */
	bool watchdog_trigger; /* WATCHDOG=trigger */
};

/*
 * Parses a datagram of len bytes. Unknown assignments and malformed values
 * are ignored, as systemd does. Returns -1 when the datagram holds a NUL
 * byte or no assignment at all.
 */
int notify_message_parse(const char *buf, size_t len, struct notify_message *msg);

#endif
