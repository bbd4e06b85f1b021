#include "conns.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TCP_LISTEN 0x0a
#define TCP_CLOSE 0x07
#define UNIX_ACCEPTCON 0x10000
#define UNIX_CONNECTED 3
#define UNIX_STREAM 1
#define UNIX_SEQPACKET 5

int conns_parse_tcp(const char *line, uint64_t *inode)
{
	unsigned slot, state;
	char local[64], remote[64];
	uint64_t ino;
	// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
	int n = sscanf(line, " %u: %63s %63s %x %*x:%*x %*x:%*x %*x %*u %*u %" SCNu64, &slot,
		local, remote, &state, &ino);
	if (n != 5)
		return -1;
	if (state == TCP_LISTEN || state == TCP_CLOSE || ino == 0)
		return 0;
	*inode = ino;
	return 1;
}

int conns_parse_unix(const char *line, uint64_t *inode)
{
	unsigned long refs, proto, flags, type, state;
	uint64_t ino;
	// Num: RefCount Protocol Flags Type St Inode [Path]
	int n = sscanf(line, "%*x: %lx %lx %lx %lx %lx %" SCNu64, &refs, &proto, &flags, &type,
		&state, &ino);
	if (n != 6)
		return -1;
	if ((type != UNIX_STREAM && type != UNIX_SEQPACKET) || state != UNIX_CONNECTED ||
		(flags & UNIX_ACCEPTCON) || ino == 0)
		return 0;
	*inode = ino;
	return 1;
}

static int add(struct conns *c, uint64_t inode)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		uint64_t *inodes = realloc(c->inodes, cap * sizeof(*inodes));
		if (!inodes)
			return -1;
		c->inodes = inodes;
		c->cap = cap;
	}
	c->inodes[c->n++] = inode;
	return 0;
}

static int read_table(struct conns *c, const char *path, int (*parse)(const char *, uint64_t *))
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	uint64_t inode;
	int rc = 0;
	while (rc == 0 && getline(&line, &cap, f) > 0) {
		if (parse(line, &inode) == 1)
			rc = add(c, inode);
	}
	free(line);
	fclose(f);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int conns_load(struct conns *c, const char *root)
{
	static const struct {
		const char *name;
		int (*parse)(const char *, uint64_t *);
	} tables[] = {
		{"tcp", conns_parse_tcp},
		{"tcp6", conns_parse_tcp},
		{"unix", conns_parse_unix},
	};
	c->inodes = NULL;
	c->n = c->cap = 0;
	int read = 0;
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char path[256];
		snprintf(path, sizeof(path), "%s/net/%s", root, tables[i].name);
		if (read_table(c, path, tables[i].parse) == 0)
			read++;
	}
	if (c->n > 1)
		qsort(c->inodes, c->n, sizeof(*c->inodes), cmp_u64);
	return read > 0 ? 0 : -1;
}

void conns_finish(struct conns *c)
{
	free(c->inodes);
	c->inodes = NULL;
	c->n = c->cap = 0;
}

static int socket_inode(int dirfd, const char *name, uint64_t *inode)
{
	char target[64];
	ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
	if (n <= 0)
		return -1;
	target[n] = '\0';
	return sscanf(target, "socket:[%" SCNu64 "]", inode) == 1 ? 0 : -1;
}

int conns_count(const struct conns *c, const char *root, pid_t pid)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%d/fd", root, (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return -1;
	int count = 0;
	for (struct dirent *e; (e = readdir(dir));) {
		uint64_t inode;
		// fds 0-2 may be a socket to a log collector, which is no client.
		if (e->d_name[0] == '.' || atoi(e->d_name) < 3 ||
			socket_inode(dirfd(dir), e->d_name, &inode) < 0)
			continue;
		if (bsearch(&inode, c->inodes, c->n, sizeof(*c->inodes), cmp_u64))
			count++;
	}
	closedir(dir);
	return count;
}
