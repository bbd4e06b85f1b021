#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

union sockaddr_any {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
	struct sockaddr_storage ss;
};

static socklen_t make_sockaddr(const struct address *a, union sockaddr_any *sa)
{
	memset(sa, 0, sizeof(*sa));
	if (a->family == ADDRESS_UNIX) {
		sa->un.sun_family = AF_UNIX;
		memcpy(sa->un.sun_path, a->path, strlen(a->path) + 1);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a->path) + 1);
	}
	if (a->ipv6) {
		sa->in6.sin6_family = AF_INET6;
		sa->in6.sin6_port = htons((uint16_t)a->port);
		inet_pton(AF_INET6, a->host, &sa->in6.sin6_addr);
		return sizeof(sa->in6);
	}
	sa->in.sin_family = AF_INET;
	sa->in.sin_port = htons((uint16_t)a->port);
	inet_pton(AF_INET, a->host, &sa->in.sin_addr);
	return sizeof(sa->in);
}

static int socket_type(const struct address *a)
{
	return a->family == ADDRESS_UDP ? SOCK_DGRAM : SOCK_STREAM;
}

static int socket_domain(const struct address *a)
{
	if (a->family == ADDRESS_UNIX)
		return AF_UNIX;
	return a->ipv6 ? AF_INET6 : AF_INET;
}

const char *listener_kind(const struct listener *l)
{
	static const char *const kinds[] = {
		[ADDRESS_TCP] = "tcp", [ADDRESS_UDP] = "udp", [ADDRESS_UNIX] = "unix"};
	return kinds[l->addr.family];
}

// Fills l->bound with the address the kernel gave the socket.
static void describe_bound(struct listener *l)
{
	if (l->addr.family == ADDRESS_UNIX) {
		snprintf(l->bound, sizeof(l->bound), "%s", l->addr.path);
		return;
	}
	union sockaddr_any sa;
	socklen_t len = sizeof(sa);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (getsockname(l->fd, &sa.sa, &len) == 0) {
		if (sa.sa.sa_family == AF_INET6) {
			inet_ntop(AF_INET6, &sa.in6.sin6_addr, host, sizeof(host));
			port = ntohs(sa.in6.sin6_port);
			snprintf(l->bound, sizeof(l->bound), "[%s]:%u", host, port);
			return;
		}
		inet_ntop(AF_INET, &sa.in.sin_addr, host, sizeof(host));
		port = ntohs(sa.in.sin_port);
	}
	snprintf(l->bound, sizeof(l->bound), "%s:%u", host, port);
}

static struct listener *listener_alloc(const struct socket_conf *conf)
{
	struct listener *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	list_init(&l->link);
	l->fd = -1;
	l->name = strdup(conf->name);
	l->listen = strdup(conf->listen);
	if (!l->name || !l->listen) {
		listener_destroy(l, false);
		return NULL;
	}
	l->addr = conf->addr;
	l->backlog = conf->backlog;
	l->mode = conf->mode;
	l->uid = conf->owner ? conf->uid : (uid_t)-1;
	l->gid = conf->group ? conf->gid : (gid_t)-1;
	return l;
}

// Tells whether a process accepts connections on the unix socket at sa.
static bool unix_alive(const union sockaddr_any *sa, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	int rc = connect(fd, &sa->sa, len);
	bool alive = rc == 0 || errno == EAGAIN;
	close(fd);
	return alive;
}

// Removes a unix socket file that no live process listens on.
static int remove_stale(const union sockaddr_any *sa, socklen_t len)
{
	struct stat st;
	if (lstat(sa->un.sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode) || unix_alive(sa, len)) {
		errno = EADDRINUSE;
		return -1;
	}
	return unlink(sa->un.sun_path);
}

static int bind_unix(struct listener *l, const union sockaddr_any *sa, socklen_t len,
	const char **what)
{
	if (remove_stale(sa, len) < 0)
		return -1;
	// Bind under a restrictive umask, then open up to the configured mode,
	// so that the socket is never reachable with wider rights.
	mode_t old = umask(0777);
	int rc = bind(l->fd, &sa->sa, len);
	umask(old);
	if (rc < 0)
		return -1;
	l->unlink_on_close = true;
	*what = "chown";
	if ((l->uid != (uid_t)-1 || l->gid != (gid_t)-1) && chown(l->addr.path, l->uid, l->gid) < 0)
		return -1;
	*what = "chmod";
	return chmod(l->addr.path, l->mode);
}

static int open_socket(struct listener *l, const char **what)
{
	union sockaddr_any sa;
	socklen_t len = make_sockaddr(&l->addr, &sa);
	l->fd = socket(socket_domain(&l->addr), socket_type(&l->addr) | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return -1;
	if (l->addr.family == ADDRESS_UNIX)
		return bind_unix(l, &sa, len, what);
	int one = 1;
	if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return -1;
	return bind(l->fd, &sa.sa, len);
}

struct listener *listener_create(const struct socket_conf *conf, char *err, size_t errlen)
{
	struct listener *l = listener_alloc(conf);
	if (!l) {
		snprintf(err, errlen, "socket %s: out of memory", conf->name);
		return NULL;
	}
	const char *what = "bind";
	if (open_socket(l, &what) < 0)
		goto error;
	what = "listen";
	if (l->addr.family != ADDRESS_UDP && listen(l->fd, (int)l->backlog) < 0)
		goto error;
	describe_bound(l);
	return l;
error:
	snprintf(err, errlen, "socket %s: %s %s: %s", conf->name, what, conf->listen,
		strerror(errno));
	listener_destroy(l, true);
	return NULL;
}

static bool fd_matches(int fd, const struct address *a)
{
	int type = 0, domain = 0, listening = 0;
	socklen_t len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return false;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return false;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
		return false;
	return type == socket_type(a) && domain == socket_domain(a) &&
		(type == SOCK_DGRAM || listening);
}

struct listener *listener_adopt(const struct socket_conf *conf, int fd, char *err, size_t errlen)
{
	if (!fd_matches(fd, &conf->addr)) {
		snprintf(err, errlen, "socket %s: fd %d is not a %s socket like %s", conf->name, fd,
			conf->addr.family == ADDRESS_UDP ? "datagram" : "listening", conf->listen);
		return NULL;
	}
	struct listener *l = listener_alloc(conf);
	if (!l) {
		snprintf(err, errlen, "socket %s: out of memory", conf->name);
		return NULL;
	}
	l->fd = fd;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		snprintf(err, errlen, "socket %s: fcntl: %s", conf->name, strerror(errno));
		l->fd = -1;
		listener_destroy(l, false);
		return NULL;
	}
	describe_bound(l);
	return l;
}

struct listener *listener_resume(const struct socket_conf *conf, int fd, const char *bound)
{
	struct listener *l = listener_alloc(conf);
	if (!l)
		return NULL;
	l->fd = fd;
	snprintf(l->bound, sizeof(l->bound), "%s", bound);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	return l;
}

void listener_destroy(struct listener *l, bool remove_file)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	if (remove_file && l->unlink_on_close)
		unlink(l->addr.path);
	free(l->name);
	free(l->listen);
	free(l);
}
