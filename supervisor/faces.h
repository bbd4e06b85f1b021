#ifndef BATON_FACES_H
#define BATON_FACES_H

struct daemon;

/*
 * What batond shows the world around its daemon: the control socket and its
 * commands, the watch stream, the log of events, the notify socket and
 * batond's own signals.
 */

/*
 * Creates the faces of d, each kept in d. The control and notify sockets are
 * bound at d->control_path and d->notify_path, or wrapped when given as fds
 * (>= 0, after a re-exec). Returns 0, or -1 after logging why.
 */
int faces_start(struct daemon *d, int control_fd, int notify_fd);

/* Closes and frees the faces of d (removing the sockets' files), control clients first. */
void faces_finish(struct daemon *d);

#endif
