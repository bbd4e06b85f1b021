#ifndef BATON_WATCH_H
#define BATON_WATCH_H

#include <stdbool.h>

struct client;
struct daemon;
struct service;

/*
 * The watch stream of baton-protocol(7): the lifecycle's events as `event
 * t=SECONDS kind=KIND service=NAME [gen= instance= pid=] ...` records, t
 * being seconds on batond's monotonic clock since it started, sent to the
 * control clients that watch (watch, upgrade --wait, stop --wait); and once a
 * second, while a client watches and a process is stopping, a `progress`
 * event per stopping process with its open connections. Nothing is built or
 * sent while nobody watches.
 */
struct watch;

/* Subscribes a watch stream to d's events; NULL when out of memory. */
struct watch *watch_create(struct daemon *d);

/* Stops the progress ticks, unsubscribes and frees w. */
void watch_destroy(struct watch *w);

/*
 * Sends c the state of svc (every service when NULL) with all their
 * processes, then makes it receive their events.
 */
void watch_begin(struct watch *w, struct client *c, const struct service *svc);

/* Starts or stops the progress ticks, after the watching clients changed. */
void watch_update(struct watch *w);

#endif
