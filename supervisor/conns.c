#include "conns.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

// TCP states as the kernel numbers them (include/net/tcp_states.h).
enum {
	STATE_ESTABLISHED = 1,
	STATE_TIME_WAIT = 6,
	STATE_CLOSE = 7,
	STATE_LISTEN = 10,
	STATE_COUNT = 12,
};

static int send_request(int fd, uint16_t type, const void *req, size_t len)
{
	struct {
		struct nlmsghdr nlh;
		union {
			struct inet_diag_req both;
			struct inet_diag_req_v2 inet;
			struct unix_diag_req local;
		} req;
	} msg;
	memset(&msg, 0, sizeof(msg));
	msg.nlh.nlmsg_len = (uint32_t)NLMSG_LENGTH(len);
	msg.nlh.nlmsg_type = type;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	memcpy(&msg.req, req, len);
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	return sendto(fd, &msg, msg.nlh.nlmsg_len, 0, (struct sockaddr *)&kernel,
		       sizeof(kernel)) < 0
		? -1
		: 0;
}

// Takes the inode of one reply message when it is a connection.
static int take(struct conns *c, const struct nlmsghdr *h, int family)
{
	if (family == AF_UNIX) {
		const struct unix_diag_msg *m = NLMSG_DATA(h);
		if (m->udiag_type != SOCK_STREAM && m->udiag_type != SOCK_SEQPACKET)
			return 0;
		return m->udiag_ino ? add(c, m->udiag_ino) : 0;
	}
	const struct inet_diag_msg *m = NLMSG_DATA(h);
	return m->idiag_inode ? add(c, m->idiag_inode) : 0;
}

// Reads a dump's replies until its end; returns -1 on an error.
static int read_dump(struct conns *c, int fd, int family)
{
	char buf[32768] __attribute__((aligned(8)));
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
			h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR || take(c, h, family) < 0)
				return -1;
		}
	}
}

// TCP in any state but LISTEN, CLOSE and TIME_WAIT: the kernel filters by
// state, so a flood of TIME_WAIT sockets is not copied to batond (though the
// kernel still walks them).
static const uint32_t tcp_states = ((1u << STATE_COUNT) - 1) &
	~((1u << STATE_LISTEN) | (1u << STATE_CLOSE) | (1u << STATE_TIME_WAIT));

// family: AF_UNIX, AF_INET, AF_INET6, or AF_UNSPEC for TCP of both IP
// families in one walk of the kernel's table (the older request, which alone
// takes AF_UNSPEC): half the time of two, on a host with many sockets.
static int dump(struct conns *c, int family)
{
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -1;
	int rc;
	if (family == AF_UNIX) {
		struct unix_diag_req req = {.sdiag_family = AF_UNIX,
			.udiag_states = 1u << STATE_ESTABLISHED};
		rc = send_request(fd, SOCK_DIAG_BY_FAMILY, &req, sizeof(req));
	} else if (family == AF_UNSPEC) {
		struct inet_diag_req req = {.idiag_family = AF_INET, .idiag_states = tcp_states};
		rc = send_request(fd, TCPDIAG_GETSOCK, &req, sizeof(req));
	} else {
		struct inet_diag_req_v2 req = {.sdiag_family = (uint8_t)family,
			.sdiag_protocol = IPPROTO_TCP, .idiag_states = tcp_states};
		rc = send_request(fd, SOCK_DIAG_BY_FAMILY, &req, sizeof(req));
	}
	size_t before = c->n;
	if (rc == 0)
		rc = read_dump(c, fd, family);
	if (rc < 0)
		c->n = before;
	close(fd);
	return rc;
}

int conns_load(struct conns *c)
{
	c->inodes = NULL;
	c->n = c->cap = 0;
	int read = 0;
	if (dump(c, AF_UNSPEC) == 0) {
		read++;
	} else {
		read += dump(c, AF_INET) == 0;
		read += dump(c, AF_INET6) == 0;
	}
	read += dump(c, AF_UNIX) == 0;
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

int conns_count(const struct conns *c, pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
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

