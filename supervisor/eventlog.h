#ifndef BATON_EVENTLOG_H
#define BATON_EVENTLOG_H

struct daemon;

/*
 * batond's log of what happens to its services: one line per lifecycle event
 * worth telling a person ("web[4242] gen 3: ready after 0.120s"), written
 * with log.h.
 */
struct eventlog;

/* Subscribes a log of events to d's events; NULL when out of memory. */
struct eventlog *eventlog_create(struct daemon *d);

/* Unsubscribes and frees l. */
void eventlog_destroy(struct eventlog *l);

#endif
