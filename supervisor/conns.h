#ifndef BATON_CONNS_H
#define BATON_CONNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The connections a process still holds open: its established TCP and UNIX
 * stream sockets, not the listening ones it shares. Read from /proc, and only
 * when someone asks or watches a drain, so an idle batond reads nothing.
 */
struct conns {
	uint64_t *inodes; /* sorted: the sockets that are connections */
	size_t n, cap;
};

/*
 * Reads the connection sockets of the host from ROOT/net/{tcp,tcp6,unix}
 * (ROOT is normally /proc). Returns 0, or -1 when none of them could be read.
 */
int conns_load(struct conns *c, const char *root);

/* Frees the table. */
void conns_finish(struct conns *c);

/* Counts the connections among pid's fds, or returns -1 when they cannot be read. */
int conns_count(const struct conns *c, const char *root, pid_t pid);

/*
 * Parses one line of /proc/net/tcp or tcp6. Returns 1 with the socket's
 * inode when it is a connection (any state but LISTEN and CLOSE), 0 when it
 * is not, -1 when the line is not one of the table's lines.
 */
int conns_parse_tcp(const char *line, uint64_t *inode);

/* Parses one line of /proc/net/unix the same way: 1 for a connected stream socket. */
int conns_parse_unix(const char *line, uint64_t *inode);

#endif
