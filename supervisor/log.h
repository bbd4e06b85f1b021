#ifndef BATON_LOG_H
#define BATON_LOG_H

#include <stdbool.h>
#include <stddef.h>

/*
 * batond's log: one line per message on stderr, prefixed with the program's
 * name, for a terminal, journald or a container runtime to collect. A
 * message is never waited on: while a writer is set (log_set_writer), it
 * takes each line, else a line goes to stderr only when stderr takes it at
 * once. A line that neither takes is dropped, and counted.
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

/*
 * What takes batond's lines instead of stderr: write returns false when it
 * does not take this one, which is then dropped and counted.
 */
struct log_writer {
	bool (*write)(struct log_writer *w, const char *line, size_t len);
};

/*
 * Sends every line to w from now on, or to stderr again with NULL. w must
 * stay valid until it is replaced.
 */
void log_set_writer(struct log_writer *w);

/*
 * Writes "N lines of batond's log dropped..." when some were dropped since
 * it last said so: at the next line taken, or when called, as by the writer
 * once it takes lines again.
 */
void log_say_dropped(void);

/* Returns how many of batond's lines were dropped, and how many not said yet. */
unsigned long log_dropped(unsigned long *unsaid);

/* Sets the counts of lines dropped, as a re-exec carries them. */
void log_set_dropped(unsigned long total, unsigned long unsaid);

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
