#ifndef BATON_CONNS_H
#define BATON_CONNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The connections a process still holds open: its established TCP and UNIX
 * stream sockets, not the listening ones it shares. Read from the kernel
 * (sock_diag and /proc/PID/fd) only when someone asks or watches a drain, so
 * an idle batond reads nothing.
 */
struct conns {
	uint64_t *inodes; /* sorted: the sockets that are connections */
	size_t n, cap;
};

/*
 * Reads the host's connection sockets (TCP in any state but LISTEN, CLOSE and
 * TIME_WAIT; connected UNIX stream sockets) from the kernel with sock_diag.
 * Returns 0, or -1 when none of them could be read.
 */
int conns_load(struct conns *c);

/* Frees the table. */
void conns_finish(struct conns *c);

/* Counts the connections among pid's fds (from fd 3), or returns -1 when they cannot be read. */
int conns_count(const struct conns *c, pid_t pid);

#endif
