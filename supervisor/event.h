#ifndef BATON_EVENT_H
#define BATON_EVENT_H

#include <stdbool.h>

#include "protocol.h"

struct daemon;
struct service;
struct proc;

/*
 * Events for the clients that watch (watch, upgrade --wait, stop --wait):
 * `event t=SECONDS kind=KIND service=NAME [gen= instance= pid=] ...`, t being
 * seconds on batond's monotonic clock since it started. Nothing is built or
 * sent while nobody watches.
 */
struct event {
	struct protocol_buf buf;
	const char *service;
};

/*
 * Starts an event of kind about svc, and about p when it is not NULL.
 * Returns false, and builds nothing, when no client watches svc.
 */
bool event_begin(struct event *e, struct daemon *d, const char *kind, const struct service *svc,
	const struct proc *p);

/* Starts an event of kind about the service named service, at time t (clock_now()). */
bool event_begin_at(struct event *e, struct daemon *d, const char *kind, const char *service,
	double t);

/* Starts an event like event_begin, at time t (clock_now()): when it happened. */
bool event_begin_proc_at(struct event *e, struct daemon *d, const char *kind,
	const struct service *svc, const struct proc *p, double t);

/* Sends the event to every client watching its service and frees it. */
void event_end(struct event *e, struct daemon *d);

/* Sends an event that has only the common fields. */
void event_simple(struct daemon *d, const char *kind, const struct service *svc,
	const struct proc *p);

/*
 * Starts or stops the drain progress ticks: once a second while a client
 * watches and a process is stopping, a `progress` event per stopping process
 * with its open connections.
 */
void event_update_progress(struct daemon *d);

/* Stops the progress ticks for good (batond is exiting). */
void event_finish(struct daemon *d);

#endif
