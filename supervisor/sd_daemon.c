#include "sd_daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "parse.h"

static void take_names(struct sd_daemon_fds *s, const char *names)
{
	char *copy = names ? strdup(names) : NULL, *save = NULL, *tok = copy;
	for (int i = 0; i < s->n; i++) {
		tok = tok ? strtok_r(i == 0 ? copy : NULL, ":", &save) : NULL;
		// systemd names fds "unknown" when the unit gives no FileDescriptorName=.
		s->names[i] = strdup(tok ? tok : "unknown");
	}
	free(copy);
}

void sd_daemon_take_fds(struct sd_daemon_fds *s)
{
	memset(s, 0, sizeof(*s));
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	unsigned long n = 0, p = 0;
	char err[128];
	bool mine = pid && parse_uint(pid, 1, 0x7fffffff, &p, err, sizeof(err)) == 0 &&
		(pid_t)p == getpid();
	if (fds && !mine)
		log_warn("LISTEN_FDS ignored: LISTEN_PID is not batond's pid");
	else if (fds && parse_uint(fds, 0, SD_DAEMON_FDS_MAX, &n, err, sizeof(err)) < 0)
		log_warn("LISTEN_FDS ignored: %s", err);
	else if (fds) {
		s->n = (int)n;
		for (int i = 0; i < s->n; i++)
			s->fds[i] = 3 + i;
		take_names(s, getenv("LISTEN_FDNAMES"));
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int sd_daemon_fd(struct sd_daemon_fds *s, const char *name)
{
	for (int i = 0; i < s->n; i++) {
		if (!s->used[i] && s->names[i] && strcmp(s->names[i], name) == 0) {
			s->used[i] = true;
			return s->fds[i];
		}
	}
	return -1;
}

void sd_daemon_finish(struct sd_daemon_fds *s)
{
	for (int i = 0; i < s->n; i++) {
		if (!s->used[i]) {
			log_warn("fd %d (%s) from systemd matches no [socket:NAME]: closed", s->fds[i],
				s->names[i] ? s->names[i] : "?");
			close(s->fds[i]);
		}
		free(s->names[i]);
		s->names[i] = NULL;
	}
	s->n = 0;
}

char *sd_daemon_take_notify_socket(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	char *copy = path && (path[0] == '/' || path[0] == '@') ? strdup(path) : NULL;
	unsetenv("NOTIFY_SOCKET");
	return copy;
}

int sd_daemon_notify(const char *path, const char *msg)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	ssize_t rc = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc < 0 ? -1 : 0;
}
