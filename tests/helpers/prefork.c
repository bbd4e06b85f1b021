// prefork: N copies of a server on one listening socket, for the peers benchmark
// (tests/bench/peers.py), under supervisors that run one process per service.
//
// Under start_server the copies inherit its socket and SERVER_STARTER_PORT as they are. With
// --listen, prefork binds the socket itself and passes it the same way, as a server that binds
// its own port does under supervisord. SIGTERM, SIGINT and SIGHUP go to every copy; prefork
// exits once all have exited, 0 when they all exited 0.

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "prefork"
#define COPIES_MAX 64
#define BACKLOG 1024

extern char **environ;

struct copies {
	pid_t pids[COPIES_MAX];
	int n;
	int live;
	bool failed;
};

static void usage(void)
{
	fputs("usage: " PROG " [--listen IPV4:PORT] N COMMAND [ARG]...\n"
	      "Runs N copies of COMMAND on the socket of SERVER_STARTER_PORT, or on one bound\n"
	      "here with --listen; passes SIGTERM, SIGINT and SIGHUP to each; exits after them.\n",
		stderr);
}

// Binds spec (IPV4:PORT) and says so in SERVER_STARTER_PORT; returns the fd, or -1.
static int listen_on(const char *spec)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char host[INET_ADDRSTRLEN], env[64];
	const char *colon = strrchr(spec, ':');
	int one = 1;
	if (!colon || (size_t)(colon - spec) >= sizeof(host)) {
		fprintf(stderr, PROG ": --listen: expected IPV4:PORT, got '%s'\n", spec);
		return -1;
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || inet_pton(AF_INET, host, &sin.sin_addr) != 1 ||
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, BACKLOG) < 0) {
		fprintf(stderr, PROG ": cannot listen on %s: %s\n", spec, strerror(errno));
		return -1;
	}
	snprintf(env, sizeof(env), "%s=%d", spec, fd);
	setenv("SERVER_STARTER_PORT", env, 1);
	return fd;
}

// Starts one copy with an empty signal mask and the default action for the signals handled
// here; returns its pid, or -1.
static pid_t spawn_copy(char **argv)
{
	posix_spawnattr_t attr;
	sigset_t none, handled;
	pid_t pid;
	sigemptyset(&none);
	sigfillset(&handled);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &handled);
	int err = posix_spawnp(&pid, argv[0], NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	if (err) {
		fprintf(stderr, PROG ": exec %s: %s\n", argv[0], strerror(err));
		return -1;
	}
	return pid;
}

static void forward(struct copies *c, int sig)
{
	for (int i = 0; i < c->n; i++) {
		if (c->pids[i] > 0)
			kill(c->pids[i], sig);
	}
}

static void reap(struct copies *c)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < c->n; i++) {
			if (c->pids[i] != pid)
				continue;
			c->pids[i] = 0;
			c->live--;
			c->failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
		}
	}
}

// A test program run as a service: its leaks are not what the suite looks
// for, and LeakSanitizer's work as it exits (a tracer process that stops it
// to scan its memory) once kept one past its stop_grace, under the
// sanitizer build's load, which made batond's kill look like its own.
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
	return "detect_leaks=0";
}

int main(int argc, char **argv)
{
	struct copies c = {.n = 0};
	sigset_t set;
	int fd = -1, arg = 1;
	if (argc > 2 && strcmp(argv[1], "--listen") == 0) {
		if ((fd = listen_on(argv[2])) < 0)
			return 1;
		arg = 3;
	}
	int n = arg < argc ? atoi(argv[arg]) : 0;
	if (n < 1 || n > COPIES_MAX || arg + 1 >= argc) {
		usage();
		return 2;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (c.n = 0; c.n < n; c.n++) {
		c.pids[c.n] = spawn_copy(argv + arg + 1);
		c.live += c.pids[c.n] > 0;
		c.failed |= c.pids[c.n] < 0;
	}
	// The copies hold the socket: a server that binds its own closes it when they have.
	if (fd >= 0)
		close(fd);
	while (c.live > 0) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGCHLD)
			reap(&c);
		else if (sig > 0)
			forward(&c, sig);
	}
	return c.failed ? 1 : 0;
}
