#ifndef BATON_SDNOTIFY_H
#define BATON_SDNOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The sd_notify datagram: newline-separated KEY=VALUE assignments. Pure, so
 * unit tests and a fuzzer drive it.
 */

#define SDNOTIFY_STATUS_MAX 256

struct sdnotify_msg {
	bool ready;
	bool stopping;
	bool has_status;
	char status[SDNOTIFY_STATUS_MAX]; /* truncated, control characters replaced */
	bool has_extend;
	uint64_t extend_usec;
	pid_t mainpid; /* 0 when absent */
};

/*
 * Parses a datagram of len bytes. Unknown assignments and malformed values
 * are ignored, as systemd does. Returns -1 when the datagram holds a NUL
 * byte or no assignment at all.
 */
int sdnotify_parse(const char *buf, size_t len, struct sdnotify_msg *msg);

#endif
