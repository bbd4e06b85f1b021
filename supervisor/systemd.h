#ifndef BATON_SYSTEMD_H
#define BATON_SYSTEMD_H

#include <stdbool.h>

/*
 * batond as a systemd service: the sockets systemd opened for it
 * (LISTEN_FDS, LISTEN_FDNAMES, matched by name to [socket:NAME]) and its own
 * NOTIFY_SOCKET.
 */

#define SYSTEMD_FDS_MAX 64

struct systemd_fds {
	int n;
	int fds[SYSTEMD_FDS_MAX];
	char *names[SYSTEMD_FDS_MAX];
	bool used[SYSTEMD_FDS_MAX];
};

/*
 * Takes the fds passed with LISTEN_FDS when LISTEN_PID is batond's pid, and
 * removes the three variables from the environment.
 */
void systemd_take_fds(struct systemd_fds *s);

/* Returns the passed fd named name and marks it used, or -1. */
int systemd_fd(struct systemd_fds *s, const char *name);

/* Closes, with a warning, every passed fd no socket used; frees the names. */
void systemd_finish(struct systemd_fds *s);

/* Returns NOTIFY_SOCKET (to free) and removes it from the environment, or NULL. */
char *systemd_take_notify_socket(void);

/* Sends one sd_notify datagram to path ('@' for the abstract namespace). */
int systemd_notify(const char *path, const char *msg);

#endif
