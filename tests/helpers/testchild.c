/*
 * A service for tests: it reports what it received from batond (fds,
 * environment, signal mask and dispositions, session, ids, directory) as
 * JSON, then behaves as told (ignore SIGTERM, exit, notify, orphan a child).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void report_fds(FILE *f)
{
	DIR *dir = opendir("/proc/self/fd");
	int self = dir ? dirfd(dir) : -1;
	bool first = true;
	fprintf(f, "\"fds\":{");
	for (struct dirent *e; dir && (e = readdir(dir));) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] == '.' || fd == self || fd == fileno(f))
			continue;
		char path[64], target[256] = "";
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		fprintf(f, "%s\"%d\":", first ? "" : ",", fd);
		json_string(f, target);
		first = false;
	}
	fprintf(f, "}");
	if (dir)
		closedir(dir);
}

static void report_signals(FILE *f)
{
	sigset_t mask;
	sigprocmask(SIG_BLOCK, NULL, &mask);
	fprintf(f, "\"blocked\":[");
	bool first = true;
	for (int s = 1; s < NSIG; s++) {
		if (sigismember(&mask, s) == 1) {
			fprintf(f, "%s%d", first ? "" : ",", s);
			first = false;
		}
	}
	fprintf(f, "],\"ignored\":[");
	first = true;
	for (int s = 1; s < NSIG; s++) {
		struct sigaction sa;
		if (sigaction(s, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
			fprintf(f, "%s%d", first ? "" : ",", s);
			first = false;
		}
	}
	fprintf(f, "]");
}

static void report_ids(FILE *f)
{
	gid_t groups[64];
	int n = getgroups(64, groups);
	fprintf(f, "\"pid\":%d,\"ppid\":%d,\"sid\":%d,\"pgid\":%d,\"uid\":%d,\"gid\":%d,\"groups\":[",
		(int)getpid(), (int)getppid(), (int)getsid(0), (int)getpgrp(), (int)getuid(),
		(int)getgid());
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%d", i ? "," : "", (int)groups[i]);
	char cwd[4096] = "";
	if (!getcwd(cwd, sizeof(cwd)))
		cwd[0] = '\0';
	fprintf(f, "],\"cwd\":");
	json_string(f, cwd);
}

static void report_env(FILE *f)
{
	fprintf(f, "\"env\":{");
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		char name[256];
		snprintf(name, sizeof(name), "%.*s", (int)(eq - *e), *e);
		fprintf(f, "%s", e == environ ? "" : ",");
		json_string(f, name);
		fputc(':', f);
		json_string(f, eq + 1);
	}
	fprintf(f, "}");
}

// Writes the report to dir/report-PID.json, atomically (rename).
static void report(const char *dir)
{
	char tmp[4096], path[4096];
	snprintf(tmp, sizeof(tmp), "%s/.report-%d.tmp", dir, (int)getpid());
	snprintf(path, sizeof(path), "%s/report-%d.json", dir, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f) {
		perror("testchild: report");
		exit(90);
	}
	fputc('{', f);
	report_ids(f);
	fputc(',', f);
	report_fds(f);
	fputc(',', f);
	report_signals(f);
	fputc(',', f);
	report_env(f);
	fprintf(f, "}\n");
	fclose(f);
	rename(tmp, path);
}

static void notify(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path)
		return;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	char buf[4096];
	size_t n = 0;
	// "\n" in the argument stands for a newline, so one message can hold several lines.
	for (const char *p = msg; *p && n < sizeof(buf) - 1; p++) {
		if (p[0] == '\\' && p[1] == 'n') {
			buf[n++] = '\n';
			p++;
		} else {
			buf[n++] = *p;
		}
	}
	if (sendto(fd, buf, n, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		perror("testchild: notify");
	close(fd);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

// Leaves a grandchild that batond must reap: it outlives its parent by ms.
static void orphan(long ms)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (fork() == 0) {
			sleep_ms(ms);
			_exit(0);
		}
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static const char *hup_log;

static void append_line(const char *path, const char *what);

static void on_hup(int sig)
{
	(void)sig;
	if (hup_log)
		append_line(hup_log, "hup");
}

static void append_line(const char *path, const char *what)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char line[128];
	int n = snprintf(line, sizeof(line), "%d %s %ld.%09ld\n", (int)getpid(), what,
		(long)ts.tv_sec, ts.tv_nsec);
	if (write(fd, line, (size_t)n) < 0)
		perror("testchild: log");
	close(fd);
}

struct opts {
	const char *report_dir;
	const char *log;
	bool ignore_term;
	int exit_code;
	long exit_after_ms;
	long term_exit_ms;
	long orphan_ms;
	int ready_fd;
	struct {
		char kind; /* 'n' notify, 'd' delay */
		const char *arg;
	} steps[16];
	int nsteps;
	const char *child_notify;
	bool hand_over;
	bool accept;          /* accept and hold connections on fd 3 */
	long close_every_ms;  /* after SIGTERM, close one held connection this often */
	long status_spam;     /* send this many STATUS= messages */
};

static void usage(void)
{
	fprintf(stderr, "usage: testchild [--report DIR] [--log FILE] [--ignore-term] "
			"[--exit N] [--exit-after-ms N] [--term-exit-ms N] [--delay-ms N] "
			"[--notify MSG]... [--notify-from-child MSG] [--ready-fd N] "
			"[--orphan-ms N]\n");
	exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"report", required_argument, NULL, 'r'},
		{"log", required_argument, NULL, 'l'},
		{"ignore-term", no_argument, NULL, 'i'},
		{"exit", required_argument, NULL, 'e'},
		{"exit-after-ms", required_argument, NULL, 'a'},
		{"term-exit-ms", required_argument, NULL, 't'},
		{"delay-ms", required_argument, NULL, 'd'},
		{"notify", required_argument, NULL, 'n'},
		{"ready-fd", required_argument, NULL, 'f'},
		{"orphan-ms", required_argument, NULL, 'o'},
		{"notify-from-child", required_argument, NULL, 'c'},
		{"hand-over", no_argument, NULL, 'H'},
		{"accept", no_argument, NULL, 'A'},
		{"term-close-every-ms", required_argument, NULL, 'C'},
		{"status-spam", required_argument, NULL, 'S'},
		{0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r': o->report_dir = optarg; break;
		case 'l': o->log = optarg; break;
		case 'i': o->ignore_term = true; break;
		case 'e': o->exit_code = atoi(optarg); break;
		case 'a': o->exit_after_ms = atol(optarg); break;
		case 't': o->term_exit_ms = atol(optarg); break;
		case 'd':
		case 'n':
			if (o->nsteps < 16) {
				o->steps[o->nsteps].kind = (char)ch;
				o->steps[o->nsteps++].arg = optarg;
			}
			break;
		case 'f': o->ready_fd = atoi(optarg); break;
		case 'o': o->orphan_ms = atol(optarg); break;
		case 'c': o->child_notify = optarg; break;
		case 'H': o->hand_over = true; break;
		case 'A': o->accept = true; break;
		case 'C': o->close_every_ms = atol(optarg); break;
		case 'S': o->status_spam = atol(optarg); break;
		default: usage();
		}
	}
}

#define MAX_HELD 1024

// Accepts connections on fd 3 and holds them. After SIGTERM it closes one
// every close_every_ms and exits once none is left; with 0 it holds them.
static void hold_connections(const struct opts *o)
{
	int held[MAX_HELD], n = 0;
	for (;;) {
		struct pollfd pfd = {.fd = 3, .events = POLLIN};
		int timeout = got_term && o->close_every_ms > 0 ? (int)o->close_every_ms : -1;
		int rc = poll(&pfd, got_term ? 0 : 1, timeout);
		if (rc > 0 && n < MAX_HELD) {
			int fd = accept4(3, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				held[n++] = fd;
				if (o->log)
					append_line(o->log, "accept");
			}
		}
		if (!got_term || o->close_every_ms <= 0)
			continue;
		if (n == 0) {
			if (o->log)
				append_line(o->log, "drained");
			exit(0);
		}
		close(held[--n]);
	}
}

static void serve(const struct opts *o)
{
	if (o->accept)
		hold_connections(o);
	for (;;) {
		pause();
		if (got_term) {
			if (o->log)
				append_line(o->log, "term");
			if (o->term_exit_ms > 0)
				sleep_ms(o->term_exit_ms);
			exit(0);
		}
	}
}

// Forks; the parent names the child the main process (MAINPID=) and exits,
// the way a daemon that re-executes itself would.
static void hand_over(void)
{
	pid_t pid = fork();
	if (pid != 0) {
		char msg[64];
		snprintf(msg, sizeof(msg), "MAINPID=%d\\nREADY=1", (int)pid);
		notify(msg);
		sleep_ms(300);
		_exit(pid < 0 ? 1 : 0);
	}
}

int main(int argc, char **argv)
{
	struct opts o = {.exit_code = -1, .ready_fd = -1};
	parse(argc, argv, &o);
	if (o.hand_over)
		hand_over();
	if (o.log)
		append_line(o.log, "start");
	if (o.report_dir)
		report(o.report_dir);
	struct sigaction sa = {.sa_handler = o.ignore_term ? SIG_IGN : on_term};
	sigaction(SIGTERM, &sa, NULL);
	if (o.log) {
		// With a log, SIGHUP is written down rather than fatal.
		hup_log = o.log;
		struct sigaction hup = {.sa_handler = on_hup, .sa_flags = SA_RESTART};
		sigaction(SIGHUP, &hup, NULL);
	}
	if (o.accept && o.close_every_ms <= 0) {
		// Holds its connections through SIGTERM, until SIGKILL.
		sa.sa_handler = SIG_IGN;
		sigaction(SIGTERM, &sa, NULL);
	}
	if (o.orphan_ms > 0)
		orphan(o.orphan_ms);
	if (o.child_notify) {
		// Sent by a process batond did not start: it must not be believed.
		pid_t pid = fork();
		if (pid == 0) {
			notify(o.child_notify);
			_exit(0);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
	for (long i = 0; i < o.status_spam; i++) {
		char msg[64];
		snprintf(msg, sizeof(msg), "STATUS=spam %ld", i);
		notify(msg);
	}
	// --delay-ms and --notify act in the order given.
	for (int i = 0; i < o.nsteps; i++) {
		if (o.steps[i].kind == 'n')
			notify(o.steps[i].arg);
		else
			sleep_ms(atol(o.steps[i].arg));
	}
	if (o.ready_fd >= 0 && (write(o.ready_fd, "\n", 1) != 1 || close(o.ready_fd) < 0))
		perror("testchild: ready fd");
	if (o.exit_after_ms > 0)
		sleep_ms(o.exit_after_ms);
	if (o.exit_code >= 0 || o.exit_after_ms > 0)
		return o.exit_code >= 0 ? o.exit_code : 0;
	serve(&o);
	return 0;
}
