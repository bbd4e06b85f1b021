/*
 * A service for tests: it reports what it received from batond (fds,
 * environment, signal mask and dispositions, session, ids, directory) as
 * JSON, then behaves as told (ignore SIGTERM, exit, notify, orphan a child,
 * write numbered lines to its stdout and stderr) or misbehaves (stop itself,
 * leave its process group, clobber its socket, send garbage to NOTIFY_SOCKET,
 * flood its output).
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
#include <sys/time.h>
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
static char **saved_argv;

static void report_argv(FILE *f)
{
	fprintf(f, "\"argv\":[");
	for (char **a = saved_argv; a && *a; a++) {
		fprintf(f, "%s", a == saved_argv ? "" : ",");
		json_string(f, *a);
	}
	fprintf(f, "]");
}

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
	fputc(',', f);
	report_argv(f);
	fprintf(f, "}\n");
	fclose(f);
	rename(tmp, path);
}

// Sends one datagram to NOTIFY_SOCKET, with fds attached when nfds > 0.
static void notify_raw(const void *data, size_t len, const int *fds, size_t nfds)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path)
		return;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	struct iovec iov = {(void *)data, len};
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(sizeof(int) * 32)];
	} control;
	struct msghdr mh = {.msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov,
		.msg_iovlen = 1};
	if (nfds > 0 && nfds <= 32) {
		memset(&control, 0, sizeof(control));
		mh.msg_control = &control;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	if (sendmsg(fd, &mh, 0) < 0)
		perror("testchild: notify");
	close(fd);
}

// "\n" in an argument stands for a newline.
static size_t unescape(const char *arg, char *out, size_t size)
{
	size_t n = 0;
	for (const char *p = arg; *p && n < size; p++) {
		if (p[0] == '\\' && p[1] == 'n') {
			out[n++] = '\n';
			p++;
		} else {
			out[n++] = *p;
		}
	}
	return n;
}

static void notify(const char *msg)
{
	char buf[4096];
	// A "\n" in the argument lets one message hold several lines.
	notify_raw(buf, unescape(msg, buf, sizeof(buf) - 1), NULL, 0);
}

// Sends what batond must survive on its notify socket: a 64 KiB datagram,
// NUL bytes, lines without '=', bad values, MAINPID= of a stranger, fds
// attached, then count datagrams of random bytes. None says READY=1.
static void notify_garbage(long count)
{
	if (count <= 0)
		return;
	static char big[64 << 10];
	memset(big, 'x', sizeof(big));
	memcpy(big, "STATUS=", 7);
	notify_raw(big, sizeof(big), NULL, 0);
	static const struct {
		const char *data;
		size_t len;
	} bad[] = {
#define BAD(s) {s, sizeof(s) - 1}
		BAD("STATUS=a\0b"), BAD("\0\0\0\0"), BAD("="), BAD("\n\n\n"), BAD("READY"),
		BAD("READY="), BAD("READY=11"), BAD("MAINPID=1"), BAD("MAINPID=0"),
		BAD("MAINPID=99999999999999999999999"), BAD("EXTEND_TIMEOUT_USEC=-1"),
		BAD("STATUS=\x01\x02\x7f\xff"), BAD("\xff\xfe=\x80"),
#undef BAD
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		notify_raw(bad[i].data, bad[i].len, NULL, 0);
	int fds[32];
	for (int i = 0; i < 32; i++)
		fds[i] = 2;
	unsigned seed = 1;
	char buf[512];
	for (long i = 0; i < count; i++) {
		size_t len = 1 + (size_t)rand_r(&seed) % sizeof(buf);
		for (size_t j = 0; j < len; j++)
			buf[j] = (char)rand_r(&seed);
		// Some carry fds (more than batond takes), some name a stranger.
		if (i % 10 == 0)
			notify_raw("MAINPID=1", 9, NULL, 0);
		notify_raw(buf, len, fds, i % 4 == 0 ? 32 : 0);
	}
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

/* ---- output ---- */

// What it writes, numbered: "out PID N" on stdout, "err PID N" on stderr.
struct printing {
	long every_us; /* between two lines; 0: as fast as it can, buffered */
	int to;        /* 1 stdout, 2 stderr, 3 both in turn */
	long size;     /* each line padded with a blank and 'x' bytes to this many bytes */
	bool split;    /* each line in two writes, every_us / 2 apart */
	long next;     /* the number of the next line */
};

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	nanosleep(&ts, NULL);
}

static struct outbuf {
	char data[65536];
	size_t len;
} outbufs[3];

static void write_all(int fd, const char *data, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, data, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(91);
		data += w;
		n -= (size_t)w;
	}
}

static void flush_outbufs(void)
{
	for (int fd = 1; fd <= 2; fd++) {
		write_all(fd, outbufs[fd].data, outbufs[fd].len);
		outbufs[fd].len = 0;
	}
}

// Writes n in decimal at p; returns how many digits.
static long put_number(char *p, long n)
{
	char digits[24];
	long k = 0;
	do {
		digits[k++] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	for (long i = 0; i < k; i++)
		p[i] = digits[k - 1 - i];
	return k;
}

// Writes the next line: at once, one write each, when lines are spaced out.
static void print_line(struct printing *pr)
{
	long n = pr->next++;
	int fd = pr->to == 3 ? (n % 2 ? 1 : 2) : pr->to;
	static long pid;
	if (!pid)
		pid = getpid();
	// Written by hand, not by snprintf: as a generator, it is to outrun cat.
	char line[16384 + 64];
	memcpy(line, fd == 1 ? "out " : "err ", 4);
	long len = 4 + put_number(line + 4, pid);
	line[len++] = ' ';
	len += put_number(line + len, n);
	if (pr->size > len + 1 && pr->size < (long)sizeof(line)) {
		line[len++] = ' ';
		memset(line + len, 'x', (size_t)(pr->size - 1 - len));
		len = pr->size - 1;
	}
	line[len++] = '\n';
	struct outbuf *b = &outbufs[fd];
	if (pr->every_us > 0) {
		size_t first = pr->split ? (size_t)len / 2 : (size_t)len;
		write_all(fd, line, first);
		if (pr->split) {
			sleep_us(pr->every_us / 2);
			write_all(fd, line + first, (size_t)len - first);
		}
		return;
	}
	if (b->len + (size_t)len > sizeof(b->data)) {
		write_all(fd, b->data, b->len);
		b->len = 0;
	}
	memcpy(b->data + b->len, line, (size_t)len);
	b->len += (size_t)len;
}

static volatile sig_atomic_t got_term;

// Writes count lines (count < 0: without end) until SIGTERM comes.
static void print_lines(struct printing *pr, long count)
{
	for (long i = 0; (count < 0 || i < count) && !got_term; i++) {
		print_line(pr);
		if (pr->every_us > 0)
			sleep_us(pr->split ? pr->every_us / 2 : pr->every_us);
	}
	flush_outbufs();
}

static char at_term[4096];
static size_t at_term_len;

static const char *partial;

// Its last words: written with no newline after them, as it exits.
static void write_partial(void)
{
	flush_outbufs();
	if (partial)
		write_all(1, partial, strlen(partial));
}

static volatile sig_atomic_t got_usr1;
static bool ignore_term;

static void on_term(int sig)
{
	(void)sig;
	if (at_term_len && write(1, at_term, at_term_len) < 0) {
		// Its stdout is gone: nothing else to tell.
	}
	if (!ignore_term)
		got_term = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1++;
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
	long notify_garbage;  /* send this many bad datagrams first */
	bool own_group;       /* hand over to a child in a process group of its own */
	bool stop_self;       /* SIGSTOP itself once started */
	const char *clobber_fd3; /* "close" or "dup2" (/dev/null) its socket */
	long watchdog_every_ms;  /* send WATCHDOG=1 this often once started... */
	long watchdog_stop_ms;   /* ...and stop after this long (0: never) */
	const char *check_log;   /* as a check: "start"/"end" lines in DIR/$BATON_PID */
	const char *check_unix;  /* as a check: connect to DIR/$BATON_PID.sock, expect "ok" */
	struct printing printing;
	long print;           /* numbered lines to write once started */
	bool flood;           /* then lines without end, as fast as it can */
	long print_on_usr1;   /* lines to write at each SIGUSR1 */
	const char *at_term;  /* written when SIGTERM comes */
};

static void usage(void)
{
	fprintf(stderr, "usage: testchild [--report DIR] [--log FILE] [--ignore-term] "
			"[--exit N] [--exit-after-ms N] [--term-exit-ms N] [--delay-ms N] "
			"[--notify MSG]... [--notify-from-child MSG] [--ready-fd N] "
			"[--orphan-ms N] [--hand-over] [--accept] [--term-close-every-ms N] "
			"[--status-spam N] [--notify-garbage N] [--own-group] [--stop-self] "
			"[--clobber-fd3 close|dup2] [--watchdog-every-ms N] "
			"[--watchdog-stop-after-ms N] [--check-log DIR] [--check-unix DIR] "
			"[--print N] [--print-every-us N] [--print-to out|err|both] "
			"[--print-size BYTES] [--print-split] [--flood] [--print-on-usr1 N] "
			"[--print-at-term TEXT] [--partial TEXT]\n");
	exit(2);
}

// Options are long only: a letter is only a name for getopt, and those past
// the letters are numbered from 256 so that none is taken twice.
enum {
	OPT_PRINT_EVERY_US = 256,
	OPT_PRINT_AT_TERM,
	OPT_PARTIAL,
};

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
		{"notify-garbage", required_argument, NULL, 'G'},
		{"own-group", no_argument, NULL, 'P'},
		{"stop-self", no_argument, NULL, 'Z'},
		{"clobber-fd3", required_argument, NULL, 'F'},
		{"watchdog-every-ms", required_argument, NULL, 'W'},
		{"watchdog-stop-after-ms", required_argument, NULL, 'w'},
		{"check-log", required_argument, NULL, 'k'},
		{"check-unix", required_argument, NULL, 'u'},
		{"print", required_argument, NULL, 'p'},
		{"print-every-us", required_argument, NULL, OPT_PRINT_EVERY_US},
		{"print-to", required_argument, NULL, 'T'},
		{"print-size", required_argument, NULL, 's'},
		{"print-split", no_argument, NULL, 'x'},
		{"flood", no_argument, NULL, 'L'},
		{"print-on-usr1", required_argument, NULL, 'U'},
		{"print-at-term", required_argument, NULL, OPT_PRINT_AT_TERM},
		{"partial", required_argument, NULL, OPT_PARTIAL},
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
		case 'G': o->notify_garbage = atol(optarg); break;
		case 'P': o->own_group = true; break;
		case 'Z': o->stop_self = true; break;
		case 'F': o->clobber_fd3 = optarg; break;
		case 'W': o->watchdog_every_ms = atol(optarg); break;
		case 'w': o->watchdog_stop_ms = atol(optarg); break;
		case 'k': o->check_log = optarg; break;
		case 'u': o->check_unix = optarg; break;
		case 'p': o->print = atol(optarg); break;
		case OPT_PRINT_EVERY_US: o->printing.every_us = atol(optarg); break;
		case 'T': o->printing.to = optarg[0] == 'o' ? 1 : optarg[0] == 'e' ? 2 : 3; break;
		case 's': o->printing.size = atol(optarg); break;
		case 'x': o->printing.split = true; break;
		case 'L': o->flood = true; break;
		case 'U': o->print_on_usr1 = atol(optarg); break;
		case OPT_PRINT_AT_TERM: o->at_term = optarg; break;
		case OPT_PARTIAL: partial = optarg; break;
		default: usage();
		}
	}
}

#define MAX_HELD 1024

static void on_alarm(int sig)
{
	(void)sig;
}

// Accepts a connection on fd 3, or gives up after 200 ms: the socket is
// shared, and another process may take the connection poll saw, which would
// leave a blocking accept waiting, with SIGTERM blocked, for the next one.
static int accept_or_give_up(void)
{
	struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART: accept ends */
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval limit = {.it_value = {0, 200000}}, off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &limit, NULL);
	int fd = accept4(3, NULL, NULL, SOCK_CLOEXEC);
	setitimer(ITIMER_REAL, &off, NULL);
	return fd;
}

// Accepts connections on fd 3 and holds them. After SIGTERM it closes one
// every close_every_ms and exits once none is left; with 0 it holds them.
static void hold_connections(const struct opts *o)
{
	int held[MAX_HELD], n = 0;
	// SIGTERM comes only while it waits: one that came between a look at
	// got_term and the wait would leave it waiting for good.
	sigset_t term, waiting;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &waiting);
	sigdelset(&waiting, SIGTERM);
	struct timespec every = {o->close_every_ms / 1000, (o->close_every_ms % 1000) * 1000000};
	for (;;) {
		struct pollfd pfd = {.fd = 3, .events = POLLIN};
		bool closing = got_term && o->close_every_ms > 0;
		int rc = ppoll(&pfd, got_term ? 0 : 1, closing ? &every : NULL, &waiting);
		if (rc > 0 && n < MAX_HELD && !got_term) {
			int fd = accept_or_give_up();
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

static void serve(struct opts *o)
{
	if (o->accept)
		hold_connections(o);
	// Looked at with SIGTERM and SIGUSR1 blocked, waited for with neither:
	// one that comes in between is not missed.
	sigset_t both, none;
	sigemptyset(&both);
	sigaddset(&both, SIGTERM);
	sigaddset(&both, SIGUSR1);
	sigprocmask(SIG_BLOCK, &both, &none);
	// SIGTERM may have come already, while it was stopped (--stop-self).
	for (;;) {
		if (got_term) {
			if (o->log)
				append_line(o->log, "term");
			if (o->term_exit_ms > 0)
				sleep_ms(o->term_exit_ms);
			exit(0);
		}
		if (got_usr1) {
			got_usr1--;
			print_lines(&o->printing, o->print_on_usr1);
			continue;
		}
		sigsuspend(&none);
	}
}

// Closes its socket (fd 3) or puts /dev/null over it: the copies batond and
// the other processes hold must not care.
static void clobber_fd3(const char *how)
{
	if (strcmp(how, "close") == 0) {
		close(3);
		return;
	}
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0 || dup2(fd, 3) < 0)
		perror("testchild: clobber fd 3");
	if (fd >= 0)
		close(fd);
}

// Forks; the parent names the child the main process (MAINPID=) and exits,
// the way a daemon that re-executes itself would. With own_group the child
// leaves the process group batond made (the parent, a session leader, may not).
static void hand_over(bool own_group)
{
	pid_t pid = fork();
	if (pid == 0 && own_group && setpgid(0, 0) < 0)
		perror("testchild: setpgid");
	if (pid != 0) {
		char msg[64];
		snprintf(msg, sizeof(msg), "MAINPID=%d\\nREADY=1", (int)pid);
		notify(msg);
		sleep_ms(300);
		_exit(pid < 0 ? 1 : 0);
	}
}

// Pings the watchdog (WATCHDOG=1) every watchdog_every_ms until SIGTERM or,
// with watchdog_stop_ms, until that much time has passed: then it goes quiet.
static void watchdog_pings(const struct opts *o)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!got_term) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (o->watchdog_stop_ms > 0 && ms >= o->watchdog_stop_ms)
			return;
		notify("WATCHDOG=1");
		sleep_ms(o->watchdog_every_ms);
	}
}

// A check's path: DIR/$BATON_PID, then suffix.
static void check_path(char *buf, size_t len, const char *dir, const char *suffix)
{
	const char *pid = getenv("BATON_PID");
	snprintf(buf, len, "%s/%s%s", dir, pid ? pid : "none", suffix);
}

// Runs as a check: "PID start T" and "PID end T" lines around its run, which
// lasts --exit-after-ms, in the file named after the process it checks.
static int check_log(const struct opts *o)
{
	char path[4096];
	check_path(path, sizeof(path), o->check_log, "");
	append_line(path, "start");
	sleep_ms(o->exit_after_ms);
	append_line(path, "end");
	return o->exit_code >= 0 ? o->exit_code : 0;
}

// Runs as a check of one process: its health socket must answer "ok".
static int check_unix(const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[64] = "";
	check_path(sa.sun_path, sizeof(sa.sun_path), dir, ".sock");
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		printf("connect %s: %s\n", sa.sun_path, strerror(errno));
		return 1;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	bool ok = strcmp(buf, "ok\n") == 0;
	buf[strcspn(buf, "\n")] = '\0';
	printf("%s answered: %s\n", sa.sun_path, buf[0] ? buf : "nothing");
	return ok ? 0 : 1;
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
	struct opts o = {.exit_code = -1, .ready_fd = -1, .printing = {.to = 1, .next = 1}};
	// getopt reorders argv: keep it as batond gave it.
	saved_argv = calloc((size_t)argc + 1, sizeof(char *));
	for (int i = 0; saved_argv && i < argc; i++)
		saved_argv[i] = argv[i];
	parse(argc, argv, &o);
	if (o.check_log)
		return check_log(&o);
	if (o.check_unix)
		return check_unix(o.check_unix);
	if (o.hand_over || o.own_group)
		hand_over(o.own_group);
	ignore_term = o.ignore_term;
	if (o.at_term)
		at_term_len = unescape(o.at_term, at_term, sizeof(at_term));
	// With --print-at-term, an ignored SIGTERM is still written down.
	struct sigaction sa = {.sa_handler = o.ignore_term && !o.at_term ? SIG_IGN : on_term};
	sigaction(SIGTERM, &sa, NULL);
	if (o.print_on_usr1 > 0) {
		struct sigaction usr1 = {.sa_handler = on_usr1};
		sigaction(SIGUSR1, &usr1, NULL);
	}
	if (partial)
		atexit(write_partial);
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
	// Told once its signals are handled: a test that signals it on seeing
	// these must not find it still taking their default actions.
	if (o.log)
		append_line(o.log, "start");
	if (o.report_dir)
		report(o.report_dir);
	if (o.orphan_ms > 0)
		orphan(o.orphan_ms);
	if (o.clobber_fd3) {
		clobber_fd3(o.clobber_fd3);
		if (o.log)
			append_line(o.log, "clobbered");
	}
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
	notify_garbage(o.notify_garbage);
	// --delay-ms and --notify act in the order given.
	for (int i = 0; i < o.nsteps; i++) {
		if (o.steps[i].kind == 'n')
			notify(o.steps[i].arg);
		else
			sleep_ms(atol(o.steps[i].arg));
	}
	if (o.ready_fd >= 0 && (write(o.ready_fd, "\n", 1) != 1 || close(o.ready_fd) < 0))
		perror("testchild: ready fd");
	if (o.stop_self) {
		raise(SIGSTOP);
		if (o.log)
			append_line(o.log, "continued");
	}
	if (o.print > 0)
		print_lines(&o.printing, o.print);
	if (o.flood)
		print_lines(&o.printing, -1);
	if (o.exit_after_ms > 0)
		sleep_ms(o.exit_after_ms);
	if (o.exit_code >= 0 || o.exit_after_ms > 0)
		return o.exit_code >= 0 ? o.exit_code : 0;
	if (o.watchdog_every_ms > 0)
		watchdog_pings(&o);
	serve(&o);
	return 0;
}
