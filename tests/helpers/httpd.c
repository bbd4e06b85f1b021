// testhttpd: the HTTP/1.1 server of baton's integration tests, benchmarks and valgrind runs.
// It has what a test needs and a service does not (--no-ready, slow routes and more); the
// example services for users are under examples/.
//
// It serves on the listening socket passed in LISTEN_FDS, or in SERVER_STARTER_PORT as
// start_server (Server::Starter) passes it (or binds --listen itself), reports readiness over
// NOTIFY_SOCKET or --ready-fd, and on SIGTERM drains: it stops accepting, finishes the requests
// in flight and closes every connection cleanly before exiting.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PROG "testhttpd"
#define LISTEN_FD 3
#define LISTEN_FDS_MAX 1024
#define HEAD_MAX 8192
#define BODY_MAX (1024L * 1024)
#define OUT_MAX 512
#define GEN_MAX 64
#define VERSION_MAX 32
#define WATCHDOG_USEC_MAX (86400L * 365 * 1000000)
#define MAX_CONNS 10000
#define MAX_EVENTS 128
#define READ_BUDGET 16
#define SLOW_MAX_MS 60000
#define OPT_MS_MAX 3600000L
#define LINGER_MS 1000
#define GRACE_MS 10000
#define WRITE_TIMEOUT_MS 10000
#define ACCEPT_PAUSE_MS 100
#define CRASH_STATUS 70 // EX_SOFTWARE
#define US_PER_MS 1000
#define NO_POS SIZE_MAX

enum source_kind { SRC_LISTEN, SRC_SIGNAL, SRC_CONN, SRC_HEALTH, SRC_CLOSED };

// Every epoll registration points at one of these, first member of its owner.
struct source {
	enum source_kind kind;
};

enum conn_state {
	ST_HEAD,   // reading a request head
	ST_BODY,   // discarding a request body
	ST_WAIT,   // a slow response waits for its deadline
	ST_WRITE,  // flushing the output buffer
	ST_LINGER, // write side shut down, reading until EOF
};

enum step { STEP_AGAIN, STEP_WAIT_IN, STEP_WAIT_OUT, STEP_WAIT_TIMER, STEP_CLOSE };

enum route { ROUTE_DEFAULT, ROUTE_HEALTH, ROUTE_SLOW };

struct span {
	const char *p;
	size_t n;
};

struct request {
	int status; // 0 while the request is good
	bool fatal; // the connection's framing can't be trusted any more
	bool method_ok;
	bool head_method;
	bool http10;
	bool conn_close;
	bool conn_keep_alive;
	bool has_te;
	bool has_length;
	bool expect_continue;
	bool keep_alive;
	enum route route;
	long slow_ms;
	long length;
};

// What a closed connection's registration points at with --watch-closed: the kernel drops a
// registration when the socket is closed by every process that holds it, and until then reports
// its events. The last TOMBSTONES closed connections have one each; a registration outlives its
// close only while another process holds the socket, which is not for long.
#define TOMBSTONES 4096

struct tombstone {
	struct source src;
	int fd;
};

struct conn {
	struct source src;
	int fd;
	enum conn_state state;
	uint32_t events;
	bool keep_alive; // of the response in the output buffer
	bool interim;    // the output buffer holds a 100 Continue
	bool grace;      // the drain deadline was already extended once
	struct conn *prev, *next;
	size_t heap_pos;
	int64_t deadline;
	size_t in_len;
	size_t scan;
	size_t body_left;
	size_t out_len, out_off;
	struct request req;
	char in[HEAD_MAX];
	char out[OUT_MAX];
};

struct options {
	const char *listen;
	long ready_fd;
	long ready_delay_ms;
	long drain_idle_ms;
	bool no_ready;
	bool ignore_term;
	const char *health_dir;  // a health socket of its own, DIR/PID.sock
	long health_after_ms;    // ...opened this long after the start: a warm-up
	const char *cleanup_dir; // DIR/PID written once a drain is over: its cleanup ran
	bool watch_closed;       // report events on connections after their close
	long crash_after_ms;     // exit at once this long after readiness, or -1
	const char *version;     // said in every answer, to tell a definition from another
	bool watchdog;           // WATCHDOG=1 every quarter of WATCHDOG_USEC
};

struct server {
	struct options opt;
	struct source listen_src, signal_src;
	int epfd, lfd, sigfd, notify_fd;
	struct sockaddr_un notify_addr;
	socklen_t notify_len;
	bool notify_failed;
	bool listening; // lfd is in the epoll set
	bool ready_pending;
	bool draining;
	int64_t now;
	int64_t ready_at;
	int64_t pause_until;
	size_t nconns, reported;
	struct conn *conns;
	struct conn **heap;
	size_t heap_len;
	char addr[128];
	char gen[GEN_MAX + 1];
	char body[GEN_MAX + VERSION_MAX + 80];
	size_t body_len;
	struct source health_src;
	int health_fd;
	bool health_pending;
	int64_t health_at;
	bool crash_pending;
	int64_t crash_at;
	struct tombstone *tombstones; // TOMBSTONES of them with --watch-closed, used in turn
	size_t next_tombstone;
	unsigned long closed_events;
	char health_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int64_t watchdog_every; // 0: no watchdog pings
	int64_t watchdog_at;
};

enum {
	OPT_READY_FD = 256,
	OPT_READY_DELAY,
	OPT_NO_READY,
	OPT_IGNORE_TERM,
	OPT_DRAIN_IDLE,
	OPT_HEALTH_DIR,
	OPT_HEALTH_AFTER,
	OPT_CLEANUP_DIR,
	OPT_CRASH_AFTER,
	OPT_WATCH_CLOSED,
	OPT_VERSION,
	OPT_WATCHDOG,
};

static const struct option long_options[] = {
	{"listen", required_argument, NULL, 'l'},
	{"ready-fd", required_argument, NULL, OPT_READY_FD},
	{"ready-delay-ms", required_argument, NULL, OPT_READY_DELAY},
	{"no-ready", no_argument, NULL, OPT_NO_READY},
	{"ignore-term", no_argument, NULL, OPT_IGNORE_TERM},
	{"drain-idle-ms", required_argument, NULL, OPT_DRAIN_IDLE},
	{"health-dir", required_argument, NULL, OPT_HEALTH_DIR},
	{"health-after-ms", required_argument, NULL, OPT_HEALTH_AFTER},
	{"cleanup-dir", required_argument, NULL, OPT_CLEANUP_DIR},
	{"crash-after-ms", required_argument, NULL, OPT_CRASH_AFTER},
	{"watch-closed", no_argument, NULL, OPT_WATCH_CLOSED},
	{"version", required_argument, NULL, OPT_VERSION},
	{"watchdog", no_argument, NULL, OPT_WATCHDOG},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

__attribute__((format(printf, 1, 2))) static void log_msg(const char *fmt, ...)
{
	char line[512];
	int n = snprintf(line, sizeof(line), PROG "[%ld]: ", (long)getpid());
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	// One write per line, so that lines from several generations never interleave.
	ssize_t ignored = write(STDERR_FILENO, line, len);
	(void)ignored;
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool parse_digits(const char *s, size_t n, long max, long *out)
{
	long v = 0;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

static bool parse_long(const char *s, long max, long *out)
{
	return parse_digits(s, strlen(s), max, out);
}

static int set_fd_flag(int fd, int get, int set, int flag)
{
	int flags = fcntl(fd, get);
	if (flags < 0)
		return -1;
	return (flags & flag) ? 0 : fcntl(fd, set, flags | flag);
}

static int set_cloexec(int fd)
{
	return set_fd_flag(fd, F_GETFD, F_SETFD, FD_CLOEXEC);
}

static int set_nonblock(int fd)
{
	return set_fd_flag(fd, F_GETFL, F_SETFL, O_NONBLOCK);
}

// ---- options ----

static void usage(FILE *out)
{
	fputs("usage: " PROG " [OPTION]...\n"
	      "Serve HTTP on the socket passed in LISTEN_FDS (fd 3) or SERVER_STARTER_PORT,\n"
	      "else on --listen.\n"
	      "  -l, --listen HOST:PORT  bind IPv4 HOST:PORT if no socket is passed (port 0: any)\n"
	      "      --ready-fd N        when ready, write a newline to fd N and close it\n"
	      "      --ready-delay-ms N  wait N ms before declaring readiness, serving meanwhile\n"
	      "      --no-ready          serve, but never declare readiness\n"
	      "      --ignore-term       ignore SIGTERM: serve until killed\n"
	      "      --drain-idle-ms N   when draining, wait N ms for a request on idle "
	      "connections (1000)\n"
	      "      --health-dir DIR    also listen on DIR/PID.sock, answering \"ok\" to each\n"
	      "                          connection, until the drain: a per-process health check\n"
	      "      --health-after-ms N open that socket only N ms after the start (a warm-up)\n"
	      "      --cleanup-dir DIR   once drained, write DIR/PID (its answer, gen=G pid=P)\n"
	      "                          before exiting: the mark that its cleanup ran\n"
	      "      --crash-after-ms N  N ms after readiness, exit at once with status 70, its\n"
	      "                          connections left as they are: a crash\n"
	      "      --watch-closed      report each event the kernel still gives on a connection\n"
	      "                          after its close (another process holds its socket)\n"
	      "      --version TEXT      answer \"gen=G pid=P version=TEXT\" (up to 32 characters)\n"
	      "      --watchdog          send WATCHDOG=1 every quarter of WATCHDOG_USEC\n"
	      "  -h, --help              print this help and exit\n",
		out);
}

static bool option_number(const char *name, const char *arg, long max, long *out)
{
	if (parse_long(arg, max, out))
		return true;
	fprintf(stderr, PROG ": %s: expected a number from 0 to %ld, got '%s'\n", name, max, arg);
	return false;
}

static bool apply_option(struct options *opt, int c, const char *arg)
{
	switch (c) {
	case 'l':
		opt->listen = arg;
		return true;
	case OPT_READY_FD:
		return option_number("--ready-fd", arg, INT_MAX, &opt->ready_fd);
	case OPT_READY_DELAY:
		return option_number("--ready-delay-ms", arg, OPT_MS_MAX, &opt->ready_delay_ms);
	case OPT_DRAIN_IDLE:
		return option_number("--drain-idle-ms", arg, OPT_MS_MAX, &opt->drain_idle_ms);
	case OPT_HEALTH_DIR:
		opt->health_dir = arg;
		return true;
	case OPT_HEALTH_AFTER:
		return option_number("--health-after-ms", arg, OPT_MS_MAX, &opt->health_after_ms);
	case OPT_CLEANUP_DIR:
		opt->cleanup_dir = arg;
		return true;
	case OPT_CRASH_AFTER:
		return option_number("--crash-after-ms", arg, OPT_MS_MAX, &opt->crash_after_ms);
	case OPT_WATCH_CLOSED:
		opt->watch_closed = true;
		return true;
	case OPT_VERSION:
		if (strlen(arg) > VERSION_MAX || strpbrk(arg, " \t\r\n")) {
			fprintf(stderr, PROG ": --version: up to %d characters, no blank\n",
				VERSION_MAX);
			return false;
		}
		opt->version = arg;
		return true;
	case OPT_WATCHDOG:
		opt->watchdog = true;
		return true;
	case OPT_NO_READY:
		opt->no_ready = true;
		return true;
	case OPT_IGNORE_TERM:
		opt->ignore_term = true;
		return true;
	}
	return false;
}

// Returns -1 to go on, or the status to exit with.
static int parse_options(int argc, char **argv, struct options *opt)
{
	int c;
	while ((c = getopt_long(argc, argv, "l:h", long_options, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (!apply_option(opt, c, optarg)) {
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return -1;
}

// ---- listening socket ----

union sockaddr_any {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
	struct sockaddr_storage ss;
};

static void describe_socket(int fd, char *buf, size_t size)
{
	union sockaddr_any a;
	socklen_t len = sizeof(a);
	char host[INET6_ADDRSTRLEN] = "?";
	snprintf(buf, size, "?");
	memset(&a, 0, sizeof(a));
	if (getsockname(fd, &a.sa, &len) < 0)
		return;
	if (a.sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &a.in.sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(a.in.sin_port));
	} else if (a.sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &a.in6.sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(a.in6.sin6_port));
	} else if (a.sa.sa_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path)) {
		const char *path = a.un.sun_path;
		bool abstract = path[0] == '\0';
		size_t max = len - offsetof(struct sockaddr_un, sun_path) - abstract;
		int n = (int)strnlen(path + abstract, max);
		snprintf(buf, size, "%s%.*s", abstract ? "@" : "", n, path + abstract);
	}
}

// The fd of the first socket of SERVER_STARTER_PORT (ADDRESS=FD;ADDRESS=FD...), as
// start_server passes them, or -1.
static int take_server_starter(void)
{
	const char *env = getenv("SERVER_STARTER_PORT");
	long fd;
	if (!env)
		return -1;
	size_t end = strcspn(env, ";");
	size_t eq = end;
	while (eq > 0 && env[eq - 1] != '=')
		eq--;
	if (eq == 0 || !parse_digits(env + eq, end - eq, INT_MAX, &fd)) {
		log_msg("ignoring SERVER_STARTER_PORT=%s: expected ADDRESS=FD", env);
		return -1;
	}
	return (int)fd;
}

// Takes the socket the supervisor passed: fd 3 with LISTEN_FDS, else the first of
// SERVER_STARTER_PORT; -1 when none was passed to this process.
static int take_inherited(void)
{
	const char *fds = getenv("LISTEN_FDS");
	const char *pid = getenv("LISTEN_PID");
	long n = 0, p = 0;
	if (!fds)
		return take_server_starter();
	bool ours = parse_long(fds, LISTEN_FDS_MAX, &n) && n >= 1;
	if (ours && pid)
		ours = parse_long(pid, LONG_MAX, &p) && p == (long)getpid();
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	if (!ours)
		return -1;
	for (long i = 1; i < n; i++)
		set_cloexec(LISTEN_FD + (int)i);
	return LISTEN_FD;
}

static bool is_listening_socket(int fd)
{
	struct stat st;
	int on = 0;
	socklen_t len = sizeof(on);
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		log_msg("fd %d passed to listen on is not a socket", fd);
		return false;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0 || !on) {
		log_msg("fd %d passed to listen on is not a listening socket", fd);
		return false;
	}
	return true;
}

static bool parse_host_port(const char *s, struct sockaddr_in *sin)
{
	const char *colon = strrchr(s, ':');
	char host[INET_ADDRSTRLEN];
	long port;
	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
		return false;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (!parse_long(colon + 1, 65535, &port))
		return false;
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sin->sin_addr) == 1;
}

// Returns the bound socket, -1 on a system error, -2 on a malformed address.
static int bind_listener(const char *spec)
{
	struct sockaddr_in sin;
	int one = 1;
	if (!parse_host_port(spec, &sin)) {
		fprintf(stderr, PROG ": --listen: expected IPV4:PORT, got '%s'\n", spec);
		return -2;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_msg("socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, SOMAXCONN) < 0) {
		log_msg("cannot listen on %s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

// Returns 0, or the status to exit with.
static int open_listener(struct server *srv)
{
	int fd = take_inherited();
	bool inherited = fd >= 0;
	if (inherited && !is_listening_socket(fd))
		return 1;
	if (!inherited && !srv->opt.listen) {
		usage(stderr);
		return 2;
	}
	if (!inherited && (fd = bind_listener(srv->opt.listen)) < 0)
		return fd == -2 ? 2 : 1;
	// Shared with the supervisor and other generations: accept must never block.
	if (set_nonblock(fd) < 0 || set_cloexec(fd) < 0) {
		log_msg("fcntl on the listening socket: %s", strerror(errno));
		return 1;
	}
	srv->lfd = fd;
	describe_socket(fd, srv->addr, sizeof(srv->addr));
	if (!inherited)
		log_msg("listening on %s", srv->addr);
	return 0;
}

// ---- readiness and status ----

static bool notify_init(struct server *srv, const char *path)
{
	size_t n = strlen(path);
	struct sockaddr_un *un = &srv->notify_addr;
	if (n < 2 || n >= sizeof(un->sun_path) || (path[0] != '/' && path[0] != '@'))
		return false;
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, n);
	if (path[0] == '@')
		un->sun_path[0] = '\0';
	srv->notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	srv->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	return srv->notify_fd >= 0;
}

static void notify_open(struct server *srv)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (path && !notify_init(srv, path))
		log_msg("ignoring NOTIFY_SOCKET=%s", path);
	unsetenv("NOTIFY_SOCKET");
}

static void notify(struct server *srv, const char *msg)
{
	if (srv->notify_fd < 0)
		return;
	if (sendto(srv->notify_fd, msg, strlen(msg), MSG_NOSIGNAL,
		    (struct sockaddr *)&srv->notify_addr, srv->notify_len) >= 0)
		return;
	if (!srv->notify_failed)
		log_msg("cannot notify the supervisor: %s", strerror(errno));
	srv->notify_failed = true;
}

static void notify_draining(struct server *srv)
{
	char msg[64];
	snprintf(msg, sizeof(msg), "STATUS=draining: %zu connections open", srv->nconns);
	notify(srv, msg);
	srv->reported = srv->nconns;
}

static void declare_ready(struct server *srv)
{
	srv->ready_pending = false;
	if (srv->opt.crash_after_ms >= 0) {
		srv->crash_pending = true;
		srv->crash_at = srv->now + srv->opt.crash_after_ms * US_PER_MS;
	}
	if (srv->opt.no_ready) {
		log_msg("serving on %s gen=%s, not declaring readiness", srv->addr, srv->gen);
		return;
	}
	notify(srv, "READY=1\nSTATUS=serving");
	if (srv->opt.ready_fd >= 0) {
		if (write((int)srv->opt.ready_fd, "\n", 1) < 0)
			log_msg("--ready-fd: %s", strerror(errno));
		close((int)srv->opt.ready_fd);
		srv->opt.ready_fd = -1;
	}
	log_msg("ready on %s gen=%s", srv->addr, srv->gen);
}

// With --watchdog, from the start: batond counts the pings of a ready process only.
static void watchdog_open(struct server *srv)
{
	const char *usec = srv->opt.watchdog ? getenv("WATCHDOG_USEC") : NULL;
	long us;
	if (!usec)
		return;
	if (!parse_long(usec, WATCHDOG_USEC_MAX, &us) || us < 4) {
		log_msg("ignoring WATCHDOG_USEC=%s", usec);
		return;
	}
	srv->watchdog_every = us / 4;
	srv->watchdog_at = now_us();
}

static void watchdog_ping(struct server *srv)
{
	if (srv->watchdog_every == 0 || srv->now < srv->watchdog_at)
		return;
	notify(srv, "WATCHDOG=1");
	srv->watchdog_at = srv->now + srv->watchdog_every;
}

static bool check_ready_fd(struct server *srv)
{
	int fd = (int)srv->opt.ready_fd;
	if (fd < 0)
		return true;
	if (fd == srv->lfd || set_cloexec(fd) < 0) {
		fprintf(stderr, PROG ": --ready-fd %d: not a usable file descriptor\n", fd);
		return false;
	}
	return true;
}

// ---- deadlines: a binary min-heap of connections ----

static bool heap_less(struct server *srv, size_t a, size_t b)
{
	return srv->heap[a]->deadline < srv->heap[b]->deadline;
}

static void heap_swap(struct server *srv, size_t a, size_t b)
{
	struct conn *t = srv->heap[a];
	srv->heap[a] = srv->heap[b];
	srv->heap[b] = t;
	srv->heap[a]->heap_pos = a;
	srv->heap[b]->heap_pos = b;
}

static void heap_up(struct server *srv, size_t i)
{
	while (i > 0 && heap_less(srv, i, (i - 1) / 2)) {
		heap_swap(srv, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct server *srv, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < srv->heap_len && heap_less(srv, l, m))
			m = l;
		if (r < srv->heap_len && heap_less(srv, r, m))
			m = r;
		if (m == i)
			return;
		heap_swap(srv, i, m);
		i = m;
	}
}

static void clear_deadline(struct server *srv, struct conn *c)
{
	size_t i = c->heap_pos;
	if (i == NO_POS)
		return;
	c->heap_pos = NO_POS;
	if (i == --srv->heap_len)
		return;
	struct conn *moved = srv->heap[srv->heap_len];
	srv->heap[i] = moved;
	moved->heap_pos = i;
	heap_down(srv, i);
	heap_up(srv, moved->heap_pos);
}

static void set_deadline(struct server *srv, struct conn *c, int64_t deadline)
{
	clear_deadline(srv, c);
	c->deadline = deadline;
	c->heap_pos = srv->heap_len;
	srv->heap[srv->heap_len++] = c;
	heap_up(srv, c->heap_pos);
}

static void set_timeout_ms(struct server *srv, struct conn *c, long ms)
{
	set_deadline(srv, c, srv->now + (int64_t)ms * US_PER_MS);
}

// ---- request parsing ----

static struct span trim(const char *p, size_t n)
{
	while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return (struct span){p, n};
}

static bool span_is(struct span s, const char *lit)
{
	return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

static bool span_is_ci(struct span s, const char *lit)
{
	return s.n == strlen(lit) && strncasecmp(s.p, lit, s.n) == 0;
}

static void fail(struct request *r, int status)
{
	if (r->status == 0)
		r->status = status;
	r->fatal = true;
}

static void parse_version(struct request *r, struct span v)
{
	if (v.n != 8 || memcmp(v.p, "HTTP/", 5) != 0 || !is_digit(v.p[5]) || v.p[6] != '.' ||
		!is_digit(v.p[7]))
		fail(r, 400);
	else if (v.p[5] != '1')
		fail(r, 505);
	else
		r->http10 = v.p[7] == '0';
}

// Returns the request target.
static struct span parse_request_line(struct request *r, const char *p, size_t n)
{
	const char *sp1 = memchr(p, ' ', n);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - p)) : NULL;
	if (!sp2 || sp1 == p || sp2 == sp1 + 1) {
		fail(r, 400);
		return (struct span){p, 0};
	}
	struct span method = {p, (size_t)(sp1 - p)};
	parse_version(r, (struct span){sp2 + 1, n - (size_t)(sp2 + 1 - p)});
	r->head_method = span_is(method, "HEAD");
	r->method_ok = r->head_method || span_is(method, "GET");
	return (struct span){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
}

static void parse_connection(struct request *r, struct span v)
{
	while (v.n > 0) {
		const char *comma = memchr(v.p, ',', v.n);
		size_t len = comma ? (size_t)(comma - v.p) : v.n;
		struct span token = trim(v.p, len);
		if (span_is_ci(token, "close"))
			r->conn_close = true;
		else if (span_is_ci(token, "keep-alive"))
			r->conn_keep_alive = true;
		if (!comma)
			break;
		v.p = comma + 1;
		v.n -= len + 1;
	}
}

static void parse_length(struct request *r, struct span v)
{
	long len = 0;
	if (v.n == 0) {
		fail(r, 400);
		return;
	}
	for (size_t i = 0; i < v.n; i++) {
		if (!is_digit(v.p[i])) {
			fail(r, 400);
			return;
		}
		if (len <= BODY_MAX) // saturate: anything larger is refused anyway
			len = len * 10 + (v.p[i] - '0');
	}
	if (r->has_length && r->length != len)
		fail(r, 400);
	r->has_length = true;
	r->length = len;
}

static void parse_header(struct request *r, const char *p, size_t n)
{
	const char *colon = memchr(p, ':', n);
	if (!colon || colon == p) {
		fail(r, 400);
		return;
	}
	struct span name = {p, (size_t)(colon - p)};
	// Whitespace before the colon or a folded line is a smuggling vector: refuse both.
	if (memchr(name.p, ' ', name.n) || memchr(name.p, '\t', name.n)) {
		fail(r, 400);
		return;
	}
	struct span value = trim(colon + 1, n - name.n - 1);
	if (span_is_ci(name, "connection"))
		parse_connection(r, value);
	else if (span_is_ci(name, "content-length"))
		parse_length(r, value);
	else if (span_is_ci(name, "transfer-encoding"))
		r->has_te = true;
	else if (span_is_ci(name, "expect"))
		r->expect_continue = span_is_ci(value, "100-continue");
}

static void parse_slow(struct request *r, struct span query)
{
	struct span q = query;
	while (q.n > 0) {
		const char *amp = memchr(q.p, '&', q.n);
		size_t len = amp ? (size_t)(amp - q.p) : q.n;
		if (len > 3 && memcmp(q.p, "ms=", 3) == 0) {
			if (!parse_digits(q.p + 3, len - 3, SLOW_MAX_MS, &r->slow_ms))
				break;
			return;
		}
		if (!amp)
			break;
		q.p = amp + 1;
		q.n -= len + 1;
	}
	r->status = 400;
}

static void route(struct request *r, struct span target)
{
	const char *q = memchr(target.p, '?', target.n);
	struct span path = {target.p, q ? (size_t)(q - target.p) : target.n};
	if (span_is(path, "/health")) {
		r->route = ROUTE_HEALTH;
	} else if (span_is(path, "/slow")) {
		r->route = ROUTE_SLOW;
		struct span query = {q ? q + 1 : target.p, q ? target.n - path.n - 1 : 0};
		parse_slow(r, query);
	}
}

static void finish_head(struct request *r, struct span target)
{
	if (r->status != 0)
		return;
	if (r->has_te)
		fail(r, 411);
	else if (r->has_length && r->length > BODY_MAX)
		fail(r, 413);
	else if (!r->method_ok)
		r->status = 405;
	else
		route(r, target);
	r->keep_alive = r->http10 ? r->conn_keep_alive && !r->conn_close : !r->conn_close;
}

// head holds the whole head, up to and including the empty line.
static void parse_head(struct request *r, const char *head, size_t len)
{
	const char *end = head + len - 2;
	const char *eol = memmem(head, len, "\r\n", 2);
	struct span target = parse_request_line(r, head, (size_t)(eol - head));
	for (const char *p = eol + 2; r->status == 0 && p < end; p = eol + 2) {
		eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
		parse_header(r, p, (size_t)(eol - p));
	}
	finish_head(r, target);
}

// ---- connections ----

static void consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
	c->scan = 0;
}

// Blank lines before a request line are allowed; some clients send one after a body.
static void skip_blank_lines(struct conn *c)
{
	size_t n = 0;
	while (n + 2 <= c->in_len && c->in[n] == '\r' && c->in[n + 1] == '\n')
		n += 2;
	if (n > 0)
		consume(c, n);
}

// Returns the length of the head, blank line included, or 0 while it is incomplete.
static size_t find_head(struct conn *c)
{
	size_t from = c->scan > 3 ? c->scan - 3 : 0;
	const char *p = memmem(c->in + from, c->in_len - from, "\r\n\r\n", 4);
	if (!p) {
		c->scan = c->in_len;
		return 0;
	}
	return (size_t)(p - c->in) + 4;
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 431:
		return "Request Header Fields Too Large";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Error";
}

static void build_response(struct conn *c, int status, const char *body, size_t blen)
{
	int n = snprintf(c->out, sizeof(c->out),
		"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
		"%sConnection: %s\r\n\r\n",
		status, reason(status), blen, status == 405 ? "Allow: GET, HEAD\r\n" : "",
		c->keep_alive ? "keep-alive" : "close");
	size_t len = n > 0 ? (size_t)n : 0;
	if (len + blen > sizeof(c->out)) // cannot happen: the body is bounded by GEN_MAX
		blen = len > sizeof(c->out) ? 0 : sizeof(c->out) - len;
	if (!c->req.head_method) {
		memcpy(c->out + len, body, blen);
		len += blen;
	}
	c->out_len = len;
	c->out_off = 0;
}

static void respond(struct server *srv, struct conn *c)
{
	const struct request *r = &c->req;
	char text[64];
	c->keep_alive = r->keep_alive && !r->fatal && !srv->draining;
	if (r->status != 0) {
		int n = snprintf(text, sizeof(text), "%s\n", reason(r->status));
		build_response(c, r->status, text, (size_t)n);
	} else if (r->route == ROUTE_HEALTH) {
		build_response(c, 200, "ok\n", 3);
	} else {
		build_response(c, 200, srv->body, srv->body_len);
	}
	clear_deadline(srv, c);
	c->state = ST_WRITE;
}

static void respond_error(struct server *srv, struct conn *c, int status)
{
	memset(&c->req, 0, sizeof(c->req));
	fail(&c->req, status);
	respond(srv, c);
}

static void queue_continue(struct conn *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	memcpy(c->out, cont, sizeof(cont) - 1);
	c->out_len = sizeof(cont) - 1;
	c->out_off = 0;
	c->interim = true;
	c->state = ST_WRITE;
}

static void start_request(struct conn *c, size_t head_len)
{
	memset(&c->req, 0, sizeof(c->req));
	parse_head(&c->req, c->in, head_len);
	consume(c, head_len);
	c->body_left = c->req.fatal ? 0 : (size_t)c->req.length;
	size_t take = c->body_left < c->in_len ? c->body_left : c->in_len;
	consume(c, take);
	c->body_left -= take;
	c->state = ST_BODY;
	if (c->body_left > 0 && c->req.expect_continue && !c->req.http10)
		queue_continue(c);
}

static void dispatch(struct server *srv, struct conn *c)
{
	if (c->req.status == 0 && c->req.route == ROUTE_SLOW && c->req.slow_ms > 0) {
		c->state = ST_WAIT;
		set_timeout_ms(srv, c, c->req.slow_ms);
		return;
	}
	respond(srv, c);
}

// Reads into buf, and sets *got to the number of bytes read.
static enum step read_some(struct conn *c, char *buf, size_t size, size_t *got, int *budget)
{
	*got = 0;
	// Leave the rest to the next round, so that one busy client cannot starve the others.
	if (*budget <= 0)
		return STEP_WAIT_IN;
	(*budget)--;
	ssize_t n = recv(c->fd, buf, size, 0);
	if (n > 0) {
		*got = (size_t)n;
		return STEP_AGAIN;
	}
	if (n == 0)
		return STEP_CLOSE;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return STEP_WAIT_IN;
	return errno == EINTR ? STEP_AGAIN : STEP_CLOSE;
}

static enum step step_head(struct server *srv, struct conn *c, int *budget)
{
	size_t got;
	skip_blank_lines(c);
	size_t len = find_head(c);
	if (len > 0) {
		start_request(c, len);
		return STEP_AGAIN;
	}
	if (c->in_len == sizeof(c->in)) {
		respond_error(srv, c, 431);
		return STEP_AGAIN;
	}
	enum step s = read_some(c, c->in + c->in_len, sizeof(c->in) - c->in_len, &got, budget);
	c->in_len += got;
	return s;
}

static enum step step_body(struct server *srv, struct conn *c, int *budget)
{
	size_t got;
	if (c->body_left == 0) {
		dispatch(srv, c);
		return STEP_AGAIN;
	}
	// The input buffer is empty while a body is left to read: use it as scratch space.
	size_t want = c->body_left < sizeof(c->in) ? c->body_left : sizeof(c->in);
	enum step s = read_some(c, c->in, want, &got, budget);
	c->body_left -= got;
	return s;
}

static void enter_head(struct server *srv, struct conn *c)
{
	c->state = ST_HEAD;
	c->grace = false;
	if (srv->draining)
		set_timeout_ms(srv, c, srv->opt.drain_idle_ms);
}

// Closing with unread input would send a RST, which can destroy the response in the client's
// receive buffer: send a FIN instead and read until the client closes too.
static void start_linger(struct server *srv, struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
	c->state = ST_LINGER;
	c->in_len = 0;
	set_timeout_ms(srv, c, LINGER_MS);
}

static void finish_write(struct server *srv, struct conn *c)
{
	if (c->interim) {
		c->interim = false;
		c->state = ST_BODY;
		c->grace = true;
		if (srv->draining)
			set_timeout_ms(srv, c, GRACE_MS);
	} else if (c->keep_alive) {
		enter_head(srv, c);
	} else {
		start_linger(srv, c);
	}
}

static enum step step_write(struct server *srv, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			return STEP_CLOSE;
		if (c->heap_pos == NO_POS)
			set_timeout_ms(srv, c, WRITE_TIMEOUT_MS);
		return STEP_WAIT_OUT;
	}
	clear_deadline(srv, c);
	finish_write(srv, c);
	return STEP_AGAIN;
}

static enum step conn_step(struct server *srv, struct conn *c, int *budget)
{
	size_t got;
	switch (c->state) {
	case ST_HEAD:
		return step_head(srv, c, budget);
	case ST_BODY:
		return step_body(srv, c, budget);
	case ST_WAIT:
		return STEP_WAIT_TIMER;
	case ST_WRITE:
		return step_write(srv, c);
	case ST_LINGER:
		return read_some(c, c->in, sizeof(c->in), &got, budget);
	}
	return STEP_CLOSE;
}

// Points the connection's registration at a tombstone before its close: should the kernel keep
// the registration, its events say so instead of reaching freed memory.
static void bury(struct server *srv, struct conn *c)
{
	struct tombstone *t = &srv->tombstones[srv->next_tombstone++ % TOMBSTONES];
	t->src.kind = SRC_CLOSED;
	t->fd = c->fd;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &t->src};
	epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void closed_event(struct server *srv, const struct tombstone *t, uint32_t events)
{
	// Level-triggered, it comes again on each wait for as long as the other process holds it.
	if (++srv->closed_events > 10)
		return;
	log_msg("event 0x%x on connection fd %d after its close: another process holds its socket "
		"(%lu such events)",
		(unsigned)events, t->fd, srv->closed_events);
}

static void conn_close(struct server *srv, struct conn *c)
{
	clear_deadline(srv, c);
	if (srv->tombstones)
		bury(srv, c);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	free(c);
}

static bool set_interest(struct server *srv, struct conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = &c->src};
	if (events == c->events)
		return true;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		return false;
	c->events = events;
	return true;
}

// Runs the connection until it has to wait for the network or a timer.
static void conn_advance(struct server *srv, struct conn *c)
{
	int budget = READ_BUDGET;
	enum step s;
	do
		s = conn_step(srv, c, &budget);
	while (s == STEP_AGAIN);
	uint32_t events = s == STEP_WAIT_IN ? EPOLLIN : s == STEP_WAIT_OUT ? EPOLLOUT : 0;
	if (s == STEP_CLOSE || !set_interest(srv, c, events))
		conn_close(srv, c);
}

static void drain_expired(struct server *srv, struct conn *c)
{
	if (c->state == ST_HEAD && c->in_len == 0) {
		start_linger(srv, c);
	} else if (!c->grace) {
		// A request is arriving: give it time to complete.
		c->grace = true;
		set_timeout_ms(srv, c, GRACE_MS);
	} else {
		respond_error(srv, c, 408);
	}
}

static void conn_expired(struct server *srv, struct conn *c)
{
	switch (c->state) {
	case ST_WAIT:
		respond(srv, c);
		break;
	case ST_HEAD:
	case ST_BODY:
		drain_expired(srv, c);
		break;
	case ST_WRITE:
	case ST_LINGER:
		conn_close(srv, c);
		return;
	}
	conn_advance(srv, c);
}

static void conn_event(struct server *srv, struct conn *c, uint32_t events)
{
	// A waiting connection polls for nothing, so a hangup would be reported again and again.
	if ((events & EPOLLERR) || ((events & EPOLLHUP) && c->state == ST_WAIT)) {
		conn_close(srv, c);
		return;
	}
	conn_advance(srv, c);
}

static void conn_open(struct server *srv, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;
	if (!c) {
		close(fd);
		return;
	}
	c->src.kind = SRC_CONN;
	c->fd = fd;
	c->state = ST_HEAD;
	c->events = EPOLLIN;
	c->heap_pos = NO_POS;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->src};
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		free(c);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->next = srv->conns;
	if (c->next)
		c->next->prev = c;
	srv->conns = c;
	srv->nconns++;
}

// ---- the listening socket and the loop ----

static void pause_accepting(struct server *srv)
{
	srv->pause_until = srv->now + ACCEPT_PAUSE_MS * US_PER_MS;
}

// Returns whether to go on accepting after this error.
static bool accept_failed(struct server *srv, int err)
{
	switch (err) {
	case EAGAIN:
		return false;
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case ENETDOWN:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case ENONET:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EOPNOTSUPP:
		return true;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		break;
	default:
		log_msg("accept: %s", strerror(err));
	}
	pause_accepting(srv);
	return false;
}

static void accept_ready(struct server *srv)
{
	while (srv->lfd >= 0 && srv->nconns < MAX_CONNS && srv->now >= srv->pause_until) {
		int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			conn_open(srv, fd);
		else if (!accept_failed(srv, errno))
			return;
	}
}

static void update_listen(struct server *srv)
{
	bool want = srv->lfd >= 0 && srv->nconns < MAX_CONNS && srv->now >= srv->pause_until;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->listen_src};
	if (want == srv->listening)
		return;
	if (epoll_ctl(srv->epfd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, srv->lfd, &ev) < 0) {
		log_msg("epoll_ctl on the listening socket: %s", strerror(errno));
		pause_accepting(srv);
		return;
	}
	srv->listening = want;
}

// ---- the health socket: one per process, for a check that must reach this one ----

static void health_open(struct server *srv)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->health_src};
	srv->health_pending = false;
	int n = snprintf(un.sun_path, sizeof(un.sun_path), "%s/%ld.sock", srv->opt.health_dir,
		(long)getpid());
	if (n < 0 || (size_t)n >= sizeof(un.sun_path)) {
		log_msg("--health-dir %s: path too long", srv->opt.health_dir);
		return;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 || listen(fd, 64) < 0 ||
		epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_msg("health socket %s: %s", un.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	srv->health_fd = fd;
	memcpy(srv->health_path, un.sun_path, sizeof(srv->health_path));
	log_msg("health socket %s", un.sun_path);
}

static void health_accept(struct server *srv)
{
	int fd;
	while ((fd = accept4(srv->health_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		ssize_t ignored = send(fd, "ok\n", 3, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)ignored;
		close(fd);
	}
}

static void health_close(struct server *srv)
{
	srv->health_pending = false;
	if (srv->health_fd < 0)
		return;
	close(srv->health_fd);
	unlink(srv->health_path);
	srv->health_fd = -1;
}

static void start_drain(struct server *srv)
{
	if (srv->draining)
		return;
	srv->draining = true;
	srv->ready_pending = false;
	// The socket stays open in the supervisor and the other generations, which take the
	// connections still queued in it.
	if (srv->listening)
		epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->lfd, NULL);
	srv->listening = false;
	close(srv->lfd);
	srv->lfd = -1;
	health_close(srv);
	log_msg("draining: %zu connections open", srv->nconns);
	notify(srv, "STOPPING=1");
	notify_draining(srv);
	for (struct conn *c = srv->conns; c; c = c->next) {
		if (c->state == ST_HEAD || c->state == ST_BODY) {
			c->grace = false;
			set_timeout_ms(srv, c, srv->opt.drain_idle_ms);
		}
	}
}

static void read_signals(struct server *srv)
{
	struct signalfd_siginfo si;
	while (read(srv->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			start_drain(srv);
	}
}

static void handle_event(struct server *srv, const struct epoll_event *ev)
{
	struct source *src = ev->data.ptr;
	switch (src->kind) {
	case SRC_LISTEN:
		accept_ready(srv);
		break;
	case SRC_SIGNAL:
		read_signals(srv);
		break;
	case SRC_CONN:
		conn_event(srv, (struct conn *)(void *)src, ev->events);
		break;
	case SRC_HEALTH:
		health_accept(srv);
		break;
	case SRC_CLOSED:
		closed_event(srv, (const struct tombstone *)(const void *)src, ev->events);
		break;
	}
}

static void run_timers(struct server *srv)
{
	while (srv->heap_len > 0 && srv->heap[0]->deadline <= srv->now) {
		struct conn *c = srv->heap[0];
		clear_deadline(srv, c);
		conn_expired(srv, c);
	}
}

static int next_timeout(struct server *srv)
{
	int64_t next = INT64_MAX;
	if (srv->heap_len > 0)
		next = srv->heap[0]->deadline;
	if (srv->ready_pending && srv->listening && srv->ready_at < next)
		next = srv->ready_at;
	if (srv->lfd >= 0 && !srv->listening && srv->pause_until > srv->now &&
		srv->pause_until < next)
		next = srv->pause_until;
	if (srv->health_pending && srv->health_at < next)
		next = srv->health_at;
	if (srv->crash_pending && srv->crash_at < next)
		next = srv->crash_at;
	if (srv->watchdog_every && srv->watchdog_at < next)
		next = srv->watchdog_at;
	if (next == INT64_MAX)
		return -1;
	int64_t now = now_us();
	if (next <= now)
		return 0;
	int64_t ms = (next - now + US_PER_MS - 1) / US_PER_MS;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

// The mark of a drain that ran to its end: DIR/PID, saying which generation it was.
static void write_cleanup_marker(struct server *srv)
{
	char path[PATH_MAX];
	if (!srv->opt.cleanup_dir)
		return;
	int n = snprintf(path, sizeof(path), "%s/%ld", srv->opt.cleanup_dir, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(path)) {
		log_msg("--cleanup-dir %s: path too long", srv->opt.cleanup_dir);
		return;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, srv->body, srv->body_len) != (ssize_t)srv->body_len)
		log_msg("%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static int run(struct server *srv)
{
	struct epoll_event evs[MAX_EVENTS];
	while (!srv->draining || srv->nconns > 0) {
		update_listen(srv);
		if (srv->ready_pending && srv->listening && srv->now >= srv->ready_at)
			declare_ready(srv);
		if (srv->health_pending && srv->now >= srv->health_at)
			health_open(srv);
		if (srv->crash_pending && srv->now >= srv->crash_at) {
			log_msg("crashing (--crash-after-ms): exit %d", CRASH_STATUS);
			_exit(CRASH_STATUS);
		}
		watchdog_ping(srv);
		int n = epoll_wait(srv->epfd, evs, MAX_EVENTS, next_timeout(srv));
		if (n < 0 && errno != EINTR) {
			log_msg("epoll_wait: %s", strerror(errno));
			return 1;
		}
		srv->now = now_us();
		for (int i = 0; i < n; i++)
			handle_event(srv, &evs[i]);
		run_timers(srv);
		if (srv->draining && srv->nconns != srv->reported)
			notify_draining(srv);
	}
	log_msg("drained, exiting");
	write_cleanup_marker(srv);
	return 0;
}

// ---- setup ----

static int setup_signals(struct server *srv)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	// A disposition of SIG_IGN inherited from the parent would discard the signals.
	signal(SIGINT, SIG_DFL);
	if (srv->opt.ignore_term) {
		signal(SIGTERM, SIG_IGN);
	} else {
		signal(SIGTERM, SIG_DFL);
		sigaddset(&set, SIGTERM);
	}
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	srv->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return srv->sigfd < 0 ? -1 : 0;
}

static int setup_epoll(struct server *srv)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->signal_src};
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->epfd < 0)
		return -1;
	return epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->sigfd, &ev);
}

static void setup_body(struct server *srv)
{
	const char *gen = getenv("BATON_GENERATION");
	if (!gen)
		gen = getenv("SERVER_STARTER_GENERATION");
	snprintf(srv->gen, sizeof(srv->gen), "%s", gen ? gen : "-");
	// The generation also goes into log lines, which must stay one line each.
	for (char *p = srv->gen; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	int n;
	if (srv->opt.version)
		n = snprintf(srv->body, sizeof(srv->body), "gen=%s pid=%ld version=%s\n", srv->gen,
			(long)getpid(), srv->opt.version);
	else
		n = snprintf(srv->body, sizeof(srv->body), "gen=%s pid=%ld\n", srv->gen,
			(long)getpid());
	srv->body_len = (size_t)n;
}

static void init_server(struct server *srv)
{
	memset(srv, 0, sizeof(*srv));
	srv->opt.ready_fd = -1;
	srv->opt.drain_idle_ms = 1000;
	srv->opt.crash_after_ms = -1;
	srv->listen_src.kind = SRC_LISTEN;
	srv->signal_src.kind = SRC_SIGNAL;
	srv->epfd = srv->lfd = srv->sigfd = srv->notify_fd = srv->health_fd = -1;
	srv->health_src.kind = SRC_HEALTH;
}

// Returns 0, or the status to exit with.
static int setup(struct server *srv)
{
	// Block the signals first, so that a SIGTERM during the setup starts a drain.
	if (setup_signals(srv) < 0) {
		log_msg("signals: %s", strerror(errno));
		return 1;
	}
	int rc = open_listener(srv);
	if (rc != 0)
		return rc;
	if (!check_ready_fd(srv))
		return 2;
	notify_open(srv);
	watchdog_open(srv);
	setup_body(srv);
	srv->heap = calloc(MAX_CONNS, sizeof(*srv->heap));
	if (srv->opt.watch_closed)
		srv->tombstones = calloc(TOMBSTONES, sizeof(*srv->tombstones));
	if (!srv->heap || (srv->opt.watch_closed && !srv->tombstones) || setup_epoll(srv) < 0) {
		log_msg("setup: %s", strerror(errno));
		return 1;
	}
	srv->now = now_us();
	srv->ready_at = srv->now + srv->opt.ready_delay_ms * US_PER_MS;
	srv->ready_pending = true;
	srv->health_pending = srv->opt.health_dir != NULL;
	srv->health_at = srv->now + srv->opt.health_after_ms * US_PER_MS;
	return 0;
}

static void cleanup(struct server *srv)
{
	while (srv->conns)
		conn_close(srv, srv->conns);
	health_close(srv);
	free(srv->heap);
	free(srv->tombstones);
	int fds[] = {srv->epfd, srv->lfd, srv->sigfd, srv->notify_fd};
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (fds[i] >= 0)
			close(fds[i]);
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
	struct server srv;
	init_server(&srv);
	int rc = parse_options(argc, argv, &srv.opt);
	if (rc >= 0)
		return rc;
	rc = setup(&srv);
	if (rc == 0)
		rc = run(&srv);
	cleanup(&srv);
	return rc;
}
