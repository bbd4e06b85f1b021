#ifndef BATON_LISTENER_H
#define BATON_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "list.h"

/*
 * A socket batond owns and hands to every generation of the services that
 * name it. It stays open, blocking, for batond's whole life (and across a
 * re-exec); batond never accepts on it.
 */
struct listener {
	struct list link;
	char *name;
	char *listen; /* as configured */
	struct address addr;
	unsigned backlog;
	mode_t mode;
	uid_t uid;            /* a unix socket's owner, or -1 for batond's */
	gid_t gid;            /* ...and group, or -1 for batond's */
	int fd;
	unsigned users;       /* generations started with this socket */
	bool retired;         /* replaced or removed by a reload: closed once unused */
	bool unlink_on_close; /* a unix socket batond created */
	char bound[128];      /* the address actually bound: 127.0.0.1:43123, /path */
};

/*
 * Creates, binds and listens on the socket of conf. Returns the listener, or
 * NULL with a message like "socket http: bind tcp:127.0.0.1:80: Address
 * already in use" in err.
 */
struct listener *listener_create(const struct socket_conf *conf, char *err, size_t errlen);

/*
 * Wraps an fd batond received (from systemd or a previous batond) as the
 * listener of conf. Returns NULL with a message in err when the fd is not a
 * socket of the configured kind.
 */
struct listener *listener_adopt(const struct socket_conf *conf, int fd, char *err, size_t errlen);

/*
 * Wraps the fd of a socket batond opened before a re-exec, as it was: conf
 * gives the name, address, backlog and mode; bound the address bound.
 */
struct listener *listener_resume(const struct socket_conf *conf, int fd, const char *bound);

/* Closes the socket, removing a unix socket's file when remove_file is set. */
void listener_destroy(struct listener *l, bool remove_file);

/* Tells the family as the config writes it: tcp, udp or unix. */
const char *listener_kind(const struct listener *l);

#endif
