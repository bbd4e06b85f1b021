/*
 * A service whose version is in its own bytes: the tests of pinned programs
 * copy this program and rewrite the version below in the copy (same length),
 * so that what a process reports is what it was executed from, whatever its
 * arguments or environment say.
 *
 *	pinchild --report DIR [--fail VERSION:INSTANCE]
 *
 * It writes DIR/PID.json ({"pid", "version", "gen", "instance"}), then says
 * READY=1 on NOTIFY_SOCKET and waits for SIGTERM; with --fail, a process of
 * that version and instance exits 1 at once instead.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

// The tests find "PINCHILD-VERSION:" and rewrite the 8 characters after it.
static const volatile char marker[] = "PINCHILD-VERSION:1-------";

static void version(char *out, size_t len)
{
	size_t n = 0, skip = strlen("PINCHILD-VERSION:");
	for (size_t i = skip; marker[i] && marker[i] != '-' && n < len - 1; i++)
		out[n++] = marker[i];
	out[n] = '\0';
}

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);
	return v ? v : fallback;
}

static void report(const char *dir, const char *v)
{
	char tmp[4096], path[4096];
	snprintf(tmp, sizeof(tmp), "%s/.%d.tmp", dir, (int)getpid());
	snprintf(path, sizeof(path), "%s/%d.json", dir, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f) {
		perror("pinchild: report");
		exit(90);
	}
	fprintf(f, "{\"pid\":%d,\"version\":\"%s\",\"gen\":\"%s\",\"instance\":\"%s\"}\n",
	        (int)getpid(), v, env_or("BATON_GENERATION", ""), env_or("BATON_INSTANCE", ""));
	fclose(f);
	rename(tmp, path);
}

static void notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path)
		return;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		perror("pinchild: notify");
	if (fd >= 0)
		close(fd);
}

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
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
	const char *dir = NULL, *fail = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--report") == 0)
			dir = argv[i + 1];
		else if (strcmp(argv[i], "--fail") == 0)
			fail = argv[i + 1];
	}
	char v[16], mine[64];
	version(v, sizeof(v));
	// SIGTERM waits until sigsuspend(), so that none is missed before it.
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &old);
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	if (dir)
		report(dir, v);
	snprintf(mine, sizeof(mine), "%s:%s", v, env_or("BATON_INSTANCE", ""));
	if (fail && strcmp(fail, mine) == 0) {
		fprintf(stderr, "pinchild %s: failing as told (--fail %s)\n", v, fail);
		return 1;
	}
	notify_ready();
	while (!got_term)
		sigsuspend(&old);
	return 0;
}
