#ifndef BATON_SD_DAEMON_H
#define BATON_SD_DAEMON_H

#include <stdbool.h>

/*
 * batond as a systemd service: the sockets systemd opened for it
 * (LISTEN_FDS, LISTEN_FDNAMES, matched by name to [socket:NAME]) and its own
 * NOTIFY_SOCKET.
 */

#define SD_DAEMON_FDS_MAX 64

struct sd_daemon_fds {
	int n;
	int fds[SD_DAEMON_FDS_MAX];
	char *names[SD_DAEMON_FDS_MAX];
	bool used[SD_DAEMON_FDS_MAX];
};

/*
 * Takes the fds passed with LISTEN_FDS when LISTEN_PID is batond's pid, and
 * removes the three variables from the environment.
 */
void sd_daemon_take_fds(struct sd_daemon_fds *s);

/* Returns the passed fd named name and marks it used, or -1. */
int sd_daemon_fd(struct sd_daemon_fds *s, const char *name);

/* Closes, with a warning, every passed fd no socket used; frees the names. */
void sd_daemon_finish(struct sd_daemon_fds *s);

/* Returns NOTIFY_SOCKET (to free) and removes it from the environment, or NULL. */
char *sd_daemon_take_notify_socket(void);

/* Sends one sd_notify datagram to path ('@' for the abstract namespace). */
int sd_daemon_notify(const char *path, const char *msg);

#endif
