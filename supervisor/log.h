#ifndef BATON_LOG_H
#define BATON_LOG_H

#include <stdbool.h>

/*
 * batond's log: one line per message on stderr, prefixed with the program's
 * name, for a terminal, journald or a container runtime to collect.
 */

enum log_level {
	LOG_ERROR,
	LOG_WARNING,
	LOG_INFO,
	LOG_DEBUG,
};

/* Sets the prefix and the most detailed level written. */
void log_init(const char *prog, enum log_level level);

/* Writes one message at the given level. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * Limits a repeated message to one a second: returns true when the caller
 * may log now; *suppressed counts the messages dropped since the last one.
 */
struct log_limit {
	double last;
	unsigned suppressed;
};
bool log_limit_pass(struct log_limit *limit, double now, unsigned *suppressed);

#endif
