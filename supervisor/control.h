#ifndef BATON_CONTROL_H
#define BATON_CONTROL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "list.h"
#include "protocol.h"

struct daemon;

/*
 * The control socket of baton-protocol(7): a UNIX stream socket, mode 0600
 * (0660 with control_group) from creation, every peer checked with
 * SO_PEERCRED. Bounded: request line length, clients at once (the oldest idle
 * one makes room), output per client, time to send a request.
 */

#define CONTROL_CLIENTS_MAX 256
#define CONTROL_REQUEST_TIMEOUT 10.0
#define CONTROL_OUTPUT_MAX (64u << 20)
#define CONTROL_STREAM_OUTPUT_MAX (1u << 20)

struct control;
struct client;

/* What the control socket's owner does with its clients. */
struct control_handler {
	/* Carries out one parsed request of c; replies now, or marks c busy and later. */
	void (*request)(void *data, struct client *c, const struct protocol_request *req);
	/* The set of clients receiving events has changed. */
	void (*streams_changed)(void *data);
	/* c is closed: what works for it must forget it. */
	void (*closed)(void *data, struct client *c);
	/* c is busy, and what it has not read yet fell below CONTROL_DRAINED. */
	void (*drained)(void *data, struct client *c);
	void *data;
};

/*
 * A connected client. Lifetime: control frees a client only from an idle
 * callback, once it is closed (dead) and every callback of the loop
 * iteration that closed it has returned; a callback may keep using a client
 * it was given after closing it, but must check dead.
 */
struct client {
	struct list link;
	struct list resume_link; /* in the control's clients to resume, or empty */
	struct control *control;
	ev_io io;
	ev_timer timeout;
	uid_t uid;
	pid_t pid;
	char in[PROTOCOL_REQUEST_MAX];
	size_t inlen;
	struct protocol_buf out;
	size_t out_sent; /* the bytes at the start of out already sent */
	bool dead;      /* closed; freed once the loop is back */
	bool closing;   /* close once the output is written */
	bool read_eof;  /* the peer shut down its side */
	bool busy;      /* a request is waiting for an operation to end */
	bool streaming; /* receives events (watch, --wait) or output (logs --follow) */
	bool follows_logs; /* ...output */
	size_t stream_start;      /* output queued when it began to stream, beyond its cap */
	unsigned long follow_gen; /* logs --follow: only this generation's, or 0 */
	pid_t follow_pid;         /* ...only this process's, or 0 */
	int wait;              /* what its busy request waits for (command.c), 0 for nothing */
	const void *waiting_on; /* ... and on what */
	char watch[PROTOCOL_NAME_MAX + 1]; /* the service watched, or "" for all */
};

/*
 * Creates the control socket at path. Refuses, with the reason in err, when a
 * live batond answers there; replaces a stale socket file.
 */
struct control *control_create(struct daemon *d, const char *path,
	const struct control_handler *handler, char *err, size_t errlen);

/* Wraps a control socket fd bound by the batond before a re-exec; NULL when out of memory. */
struct control *control_adopt(struct daemon *d, const char *path, int fd,
	const struct control_handler *handler);

/*
 * Closes every client (a watch is told it ended) and the socket, removing its
 * file when remove_file is set, and frees c.
 */
void control_destroy(struct control *c, bool remove_file);

/* Returns the listening fd. */
int control_fd(const struct control *c);

/* What a busy client has not read falls below this: its handler's drained is called. */
#define CONTROL_DRAINED (512u << 10)

/* The bytes queued for the client and not sent yet. */
size_t client_pending(const struct client *c);

/* Queues bytes for the client, writing at once what the socket takes. */
void client_send(struct client *c, const char *data, size_t len);

/* Queues a buffer of records for the client and empties the buffer. */
void client_send_buf(struct client *c, struct protocol_buf *buf);

/*
 * Ends the client's current request: the next one in its input is read once
 * the loop is back, outside the callback that ended it.
 */
void client_request_done(struct client *c);

/* Closes the client once what is queued has been written. */
void client_close_later(struct client *c);

/*
 * Makes the client receive the events of svc ("" for every service), or
 * stops its events when svc is NULL.
 */
void client_set_streaming(struct client *c, const char *svc);

/*
 * Makes the client receive the output of svc's processes ("" for every
 * service's) as the logs face sends it, for good: it reads no more requests.
 */
void client_follow_logs(struct client *c, const char *svc);

/* Tells whether a client receives the events of svc (of any service when NULL). */
bool control_watched(const struct control *c, const char *svc);

/* Tells whether a client receives the output of svc (of any service when NULL). */
bool control_followed(const struct control *c, const char *svc);

/*
 * Calls fn for every streaming client that watches svc (or everything); fn
 * may close the client it is given.
 */
void control_each_stream(struct control *c, const char *svc,
	void (*fn)(struct client *client, void *data), void *data);

/* Calls fn for every client that follows the output of svc; fn may close it. */
void control_each_follower(struct control *c, const char *svc,
	void (*fn)(struct client *client, void *data), void *data);

/* Calls fn for every client that is not closed; fn may close the one it is given. */
void control_each_client(struct control *c, void (*fn)(struct client *client, void *data),
	void *data);

/* Counts the connected clients. */
unsigned control_clients(const struct control *c);

#endif
