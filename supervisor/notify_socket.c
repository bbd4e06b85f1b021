#include "notify_socket.h"

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "notify_message.h"

#define NOTIFY_DATAGRAM_MAX 4096
#define NOTIFY_BATCH 64

struct notify_socket {
	struct daemon *d;
	char *path;
	ev_io io;
	struct log_limit stranger_limit;
	struct log_limit mainpid_limit; /* MAINPID= refused: a service may send many */
};

static void close_passed_fds(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *fds = (int *)(void *)CMSG_DATA(c);
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
	}
}

static const struct ucred *sender(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
			c->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
			return (const struct ucred *)(void *)CMSG_DATA(c);
	}
	return NULL;
}

static void ignore_stranger(struct notify_socket *n, pid_t pid)
{
	unsigned dropped;
	if (!log_limit_pass(&n->stranger_limit, ev_now(n->d->loop), &dropped))
		return;
	log_warn("notify: ignored a message from pid %d: it is no main process of a service"
		 "%s",
		(int)pid, dropped ? " (and more since)" : "");
}

static void set_main_pid(struct notify_socket *n, struct proc *p, pid_t pid)
{
	if (proc_set_main_pid(p, pid) == 0)
		return;
	char label[128];
	proc_label(p, label, sizeof(label));
	unsigned dropped;
	if (errno == ENOMEM)
		log_error("%s: MAINPID=%d ignored: out of memory", label, (int)pid);
	else if (log_limit_pass(&n->mainpid_limit, ev_now(n->d->loop), &dropped))
		log_warn("%s: MAINPID=%d ignored: not a process of this service%s", label, (int)pid,
			dropped ? " (and more since)" : "");
}

static void apply(struct notify_socket *n, struct proc *p, const struct notify_message *msg)
{
	if (msg->has_status)
		proc_set_status(p, msg->status);
	if (msg->has_extend)
		proc_extend_timeout(p, (double)msg->extend_usec / 1e6);
	if (msg->ready && p->gen->conf->ready.mode == READY_NOTIFY)
		proc_set_ready(p);
	if (msg->watchdog || msg->watchdog_trigger)
		proc_watchdog(p, msg->watchdog_trigger);
	if (msg->stopping)
		log_debug("%s[%d]: STOPPING=1", p->gen->svc->name, (int)p->pid);
	if (msg->mainpid && msg->mainpid != p->pid)
		set_main_pid(n, p, msg->mainpid);
}

// Reads one datagram; returns -1 when none is left.
static int receive_one(struct notify_socket *n)
{
	char buf[NOTIFY_DATAGRAM_MAX];
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 16)];
	} control;
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
		.msg_controllen = sizeof(control)};
	ssize_t len = recvmsg(n->io.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
	if (len < 0)
		return errno == EINTR ? 0 : -1;
	close_passed_fds(&mh);
	const struct ucred *cred = sender(&mh);
	if (!cred || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return 0;
	struct proc *p = lifecycle_proc(&n->d->lc, cred->pid);
	if (!p) {
		ignore_stranger(n, cred->pid);
		return 0;
	}
	struct notify_message msg;
	if (notify_message_parse(buf, (size_t)len, &msg) == 0)
		apply(n, p, &msg);
	return 0;
}

static void notify_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct notify_socket *n = container_of(w, struct notify_socket, io);
	// Bounded, so that a flood of datagrams cannot starve everything else.
	for (int i = 0; i < NOTIFY_BATCH; i++) {
		if (receive_one(n) < 0)
			break;
	}
}

static struct notify_socket *notify_alloc(struct daemon *d, const char *path, int fd)
{
	struct notify_socket *n = calloc(1, sizeof(*n));
	if (!n || !(n->path = strdup(path))) {
		free(n);
		return NULL;
	}
	n->d = d;
	ev_io_init(&n->io, notify_cb, fd, EV_READ);
	ev_io_start(d->loop, &n->io);
	return n;
}

static int bind_notify(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "notify socket %s: path too long", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto error;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
		goto error;
	if (unlink(path) < 0 && errno != ENOENT)
		goto error;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto error;
	// Services may run as any user; only the sender's pid is believed.
	if (chmod(path, 0666) < 0)
		goto error;
	return fd;
error:
	snprintf(err, errlen, "notify socket %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

struct notify_socket *notify_socket_create(struct daemon *d, const char *path, char *err, size_t errlen)
{
	int fd = bind_notify(path, err, errlen);
	if (fd < 0)
		return NULL;
	struct notify_socket *n = notify_alloc(d, path, fd);
	if (!n) {
		snprintf(err, errlen, "notify socket: out of memory");
		close(fd);
		unlink(path);
	}
	return n;
}

struct notify_socket *notify_socket_adopt(struct daemon *d, const char *path, int fd)
{
	return notify_alloc(d, path, fd);
}

void notify_socket_destroy(struct notify_socket *n, bool remove_file)
{
	if (!n)
		return;
	ev_io_stop(n->d->loop, &n->io);
	close(n->io.fd);
	if (remove_file)
		unlink(n->path);
	free(n->path);
	free(n);
}

int notify_socket_fd(const struct notify_socket *n)
{
	return n->io.fd;
}
