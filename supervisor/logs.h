#ifndef BATON_LOGS_H
#define BATON_LOGS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "protocol.h"

struct client;
struct daemon;
struct logline;
struct service;

/*
 * What services' processes write, line by line (LC_OUTPUT): each line goes to
 * its generation's sink (log =): batond's stderr, attributed, or a file with
 * a time on each line, rotated by size, as text or JSON; each service keeps
 * its last lines in memory (log_buffer) for batonctl logs; clients that
 * follow get each line as it comes. batond never waits on a sink: when
 * batond's stderr takes less than the services write, their output is not
 * read until it has caught up, so that a process waits on its full pipe
 * (log_overflow = block), or their lines are dropped and counted until it
 * has caught up, when batond says how many (drop). batond's own lines
 * (log.h) go to its stderr here too, after the lines before them, and are
 * kept beyond what the services may fill.
 */
struct logs;

/* What a service's output came to, for metrics. */
struct logs_counters {
	unsigned long lines, bytes; /* written by its processes */
	unsigned long dropped;      /* not written to the sink: log_overflow = drop, or an error */
	unsigned long cut;          /* longer than a line may be, cut */
	unsigned long unsaid;       /* of those dropped from stderr, how many batond has not said */
};

/* Which lines a request wants: gen and pid 0 for any. */
struct logs_filter {
	bool some;           /* only the last `lines` of them (0: none) */
	unsigned long lines;
	unsigned long gen;
	pid_t pid;
};

/* Subscribes to d's events; NULL when out of memory. */
struct logs *logs_create(struct daemon *d);

/* Writes what its sinks hold, unsubscribes and frees l. */
void logs_destroy(struct logs *l);

/* A reply of logs holds at most this much of `log` records. */
#define LOGS_REPLY_MAX (32u << 20)

/*
 * Sends c the `log` records (logline.h) of the lines kept of svc, or of
 * every service (oldest first), that f lets through: the newest that fit in
 * LOGS_REPLY_MAX bytes, after a `cut` record that counts the others; then
 * `ok`, or, with follow, the lines that came since and the lines as they
 * come. A reply of more than a few hundred KiB is built a step at a time
 * between the loop's other work, c busy meanwhile; what a service's
 * log_buffer drops before the reply has read it is counted in the `cut`.
 */
void logs_reply(struct logs *l, struct client *c, const struct service *svc,
	const struct logs_filter *f, bool follow);

/* Goes on with the reply under way to c, which has read most of what it was sent. */
void logs_reply_drained(struct logs *l, struct client *c);

/* Forgets the reply under way to c, which is closed. */
void logs_reply_cancel(struct logs *l, struct client *c);

/*
 * Opens every log file again at its path (after logrotate moved it).
 * Returns 0, or -1 with the first failure in err.
 */
int logs_reopen(struct logs *l, char *err, size_t errlen);

/*
 * Writes everything the sinks hold, before batond execs or exits, waiting
 * for its stderr at most 2 s: what that still does not take then is lost.
 */
void logs_flush(struct logs *l);

/* Returns svc's counters (all 0 before its first line). */
struct logs_counters logs_counters_of(struct logs *l, const struct service *svc);

/* Returns what svc's kept lines cost against its log_buffer. */
size_t logs_kept_bytes(struct logs *l, const struct service *svc);

/*
 * Calls fn for svc's newest kept lines, as many as cost at most max_bytes
 * against its log_buffer, oldest first; a line is valid during its call only.
 */
void logs_each_kept(struct logs *l, const struct service *svc, size_t max_bytes,
	void (*fn)(void *data, const struct logline *line), void *data);

/*
 * Gives svc the counters a re-exec carried; lines dropped and not said yet
 * are said once stderr takes lines. Returns 0, or -1 when out of memory.
 */
int logs_restore_counters(struct logs *l, struct service *svc, const struct logs_counters *n);

/*
 * Keeps a line a re-exec carried as svc's newest, within its log_buffer,
 * without writing it anywhere or counting it. Returns 0, or -1 when out of
 * memory.
 */
int logs_restore_line(struct logs *l, struct service *svc, const struct logline *line);

#endif
