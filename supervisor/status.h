#ifndef BATON_STATUS_H
#define BATON_STATUS_H

#include <stdbool.h>

#include "protocol.h"

struct daemon;
struct listener;
struct service;

/*
 * batond's state as the records of baton-protocol(7): daemon, socket,
 * service and proc. Read only: building them changes nothing.
 */

/* Appends the `daemon` record. */
void status_daemon(struct protocol_buf *buf, struct daemon *d);

/* Appends a `socket` record. */
void status_socket(struct protocol_buf *buf, const struct listener *l);

/* Appends a `service` record. */
void status_service(struct protocol_buf *buf, const struct service *svc);

/*
 * Appends the state of one service with all its processes, or of every
 * service with the processes that need attention only (all: every process
 * anyway): not ready, or not of the current generation.
 */
void status_snapshot(struct protocol_buf *buf, struct daemon *d, const struct service *svc,
	bool all);

#endif
