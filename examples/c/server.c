// baton-example-c: a small HTTP service that upgrades cleanly under batond. It does the three
// things a service under baton must do:
//  1. take its listening socket from batond: fd 3, when LISTEN_FDS is set for this pid;
//  2. say when it is ready: READY=1 in a datagram to the socket in NOTIFY_SOCKET;
//  3. drain on SIGTERM: stop accepting (the next generation accepts from the same socket),
//     finish the request in flight, close its connection without a reset, run its cleanup
//     and exit 0.
// To stay short it serves one connection at a time and closes each after one answer. A server
// that keeps connections open answers their next request with "Connection: close" once
// draining, and closes idle ones the same way: its side first, then the socket.
// Test hooks: the cleanup appends its line to $EXAMPLE_CLEANUP_FILE too; EXAMPLE_IGNORE_TERM=1
// ignores SIGTERM, so that batond has to SIGKILL the process and its cleanup never runs.

#define _GNU_SOURCE 1 // accept4
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define CLIENT_TIMEOUT_S 2 // to send its request, and to close once answered

static const char *generation;

// batond passes the sockets at fds 3, 4, ... and LISTEN_PID says which process they are for.
static int take_listening_socket(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

	if (!pid || !fds || atol(pid) != (long)getpid() || atoi(fds) < 1) {
		fprintf(stderr, "example: no socket in LISTEN_FDS: run me under batond\n");
		exit(1);
	}
	// Shared with batond and the other processes: accept must not wait when another
	// process took the connection first.
	fcntl(3, F_SETFL, fcntl(3, F_GETFL) | O_NONBLOCK);
	fcntl(3, F_SETFD, FD_CLOEXEC);
	return 3;
}

// Sends one datagram to $NOTIFY_SOCKET: a path, or an abstract address when it starts with '@'.
static void notify(const char *message)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t n = path ? strlen(path) : 0;
	int fd;

	if (n == 0 || n >= sizeof(addr.sun_path))
		return;
	memcpy(addr.sun_path, path, n);
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
		sendto(fd, message, strlen(message), 0, (struct sockaddr *)&addr,
			offsetof(struct sockaddr_un, sun_path) + n) < 0)
		perror("example: NOTIFY_SOCKET");
	if (fd >= 0)
		close(fd);
}

// Reads up to the end of a request's head; returns 0 when the client sent none in time.
static int read_head(int fd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;

	while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0) {
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			return 1;
	}
	return 0;
}

static void respond(int fd, const char *head)
{
	char method[8], path[256], body[128], out[512];
	const char *status = "200 OK";
	int n;

	if (sscanf(head, "%7s %255s", method, path) != 2)
		status = "400 Bad Request";
	else if (strcmp(method, "GET") != 0)
		status = "405 Method Not Allowed";
	else if (strcmp(path, "/") != 0)
		status = "404 Not Found";
	if (strcmp(status, "200 OK") == 0)
		snprintf(body, sizeof(body), "hello from pid %ld gen %s\n", (long)getpid(),
			generation);
	else
		snprintf(body, sizeof(body), "%s\n", status);
	n = snprintf(out, sizeof(out),
		"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
		"Connection: close\r\n\r\n%s",
		status, strlen(body), body);
	send(fd, out, (size_t)n, MSG_NOSIGNAL);
}

// Answers one request, then closes the connection without a reset: our side first, so that
// the client reads the whole answer and then the end, and the socket once the client has
// closed too. Closing with some of its data unread would send it a reset.
static void serve(int fd)
{
	struct timeval timeout = {.tv_sec = CLIENT_TIMEOUT_S};
	char buf[4096];

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	if (read_head(fd, buf, sizeof(buf)))
		respond(fd, buf);
	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0)
		continue;
	close(fd);
}

// A real service would flush its buffers or close its database here; this one leaves a trace.
static void cleanup(void)
{
	const char *path = getenv("EXAMPLE_CLEANUP_FILE");
	FILE *f = path ? fopen(path, "a") : NULL;
	char line[128];

	snprintf(line, sizeof(line), "example: pid %ld gen %s: drained, cleanup done\n",
		(long)getpid(), generation);
	fputs(line, stderr);
	if (f) {
		fputs(line, f);
		fclose(f);
	}
}

int main(void)
{
	sigset_t term;
	int lfd = take_listening_socket(), sigfd;

	generation = getenv("BATON_GENERATION") ? getenv("BATON_GENERATION") : "?";
	// SIGTERM comes as a datagram on sigfd, so that the loop sees it between two connections:
	// a request in flight is always finished.
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	if (getenv("EXAMPLE_IGNORE_TERM") && strcmp(getenv("EXAMPLE_IGNORE_TERM"), "1") == 0)
		signal(SIGTERM, SIG_IGN); // the test hook: only SIGKILL stops this process
	else
		sigprocmask(SIG_BLOCK, &term, NULL);
	sigfd = signalfd(-1, &term, SFD_CLOEXEC);

	notify("READY=1");
	for (;;) {
		struct pollfd fds[] = {{.fd = sigfd, .events = POLLIN}, {.fd = lfd, .events = POLLIN}};
		int fd;

		if (poll(fds, 2, -1) < 0)
			continue;
		if (fds[0].revents)
			break; // SIGTERM: stop accepting
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			serve(fd);
	}
	// This closes the socket in this process only: batond keeps it open, and the connections
	// in its queue wait there for the next generation.
	close(lfd);
	cleanup();
	return 0;
}
