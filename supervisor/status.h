#ifndef BATON_STATUS_H
#define BATON_STATUS_H

#include <stdbool.h>

#include "protocol.h"

struct daemon;
struct listener;
struct service;

/*
 * batond's state as the records of baton-protocol(7): daemon, socket,
 * service and proc. Read only: building them changes nothing but what
 * d->status_cache keeps of the services' records.
 */

struct status_cache;

/* Frees what status kept of the services' records (NULL: nothing). */
void status_cache_destroy(struct status_cache *c);

/* Appends the `daemon` record. */
void status_daemon(struct protocol_buf *buf, struct daemon *d);

/* Appends a `socket` record. */
void status_socket(struct protocol_buf *buf, const struct listener *l);

/* Appends a `service` record. */
void status_service(struct protocol_buf *buf, const struct service *svc);

/*
 * The snapshot that begins a stream (watch, --wait): status_snapshot_to's,
 * but with the connections of draining generations only. Counting those of a
 * current generation walks the host's TCP table, which a busy host makes
 * long, at the start of every upgrade --wait.
 */
void status_snapshot(struct protocol_buf *buf, struct daemon *d, const struct service *svc,
	bool all);

/*
 * What a snapshot built so far can be handed to, to be sent while the rest
 * is built: it takes what buf holds and empties it.
 */
struct status_sink {
	void (*take)(struct protocol_buf *buf, void *data);
	void *data;
};

/*
 * Appends the state of one service with all its processes, or of every
 * service with the processes that need attention only (all: every process
 * anyway): not ready, or not of the current generation. buf is handed to sink,
 * when there is one, each time it holds 16 KiB or more.
 */
void status_snapshot_to(struct protocol_buf *buf, struct daemon *d, const struct service *svc,
	bool all, const struct status_sink *sink);

#endif
