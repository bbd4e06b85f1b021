/*
 * The lifecycle alone (lifecycle.h): services, generations, processes and
 * upgrades on a real libev loop, with a fake host, a fake spawner and a clock
 * the test moves. No process is ever started or signalled: a spawned process
 * is a pid and two pipes; it "execs" when the test closes its error pipe,
 * says it is ready on its readiness pipe, and exits when the test reaps it.
 * A check (ready = exec:, check = exec:) is a child too, told apart by its
 * program: its output is what the test writes on its stdout pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config_read.h"
#include "lifecycle.h"
#include "listener.h"

#define NS 1000000000LL
#define FIRST_PID 10000
#define NOTIFY_PATH "/run/baton-test/control-notify.sock"
#define EXEC_ERROR "exec /nonexistent/app: No such file or directory"
#define MAX_CHILDREN 80
#define MAX_SIGNALS 128
#define MAX_EVENTS 256
#define MAX_PROBES 16
#define MAX_CONFIGS 4
#define GRACE_ENDED "still running after its 5s stop_grace"
#define EPS 1e-6

/* ---- the clock ---- */

/* The monotonic clock as the lifecycle and libev read it: only the test moves it. */
static int64_t fake_ns;

/*
 * Interposed on libc's: the lifecycle (clock.h) and libev, static or shared,
 * read CLOCK_MONOTONIC through it; other clocks are the real ones.
 */
int clock_gettime(clockid_t id, struct timespec *ts)
{
	if (id != CLOCK_MONOTONIC)
		return (int)syscall(SYS_clock_gettime, id, ts);
	ts->tv_sec = (time_t)(fake_ns / NS);
	ts->tv_nsec = (long)(fake_ns % NS);
	return 0;
}

/* The fake clock in seconds, computed as clock.h computes it. */
static double now(void)
{
	return (double)(fake_ns / NS) + (double)(fake_ns % NS) / 1e9;
}

/* ---- the fake host ---- */

/* What the lifecycle asked the spawner to start; the child's pipe ends. */
struct child {
	pid_t pid;
	char **argv, **envp;
	int fds[SPAWN_FDS_MAX];
	size_t nfds;
	int ready_fd; /* where the readiness pipe goes in the child, or -1 */
	int exec_w;   /* the spawn error pipe's write end, until it "execs" */
	int ready_w;  /* a copy of the readiness pipe's write end, or -1 */
	bool check;   /* a check's process, not a service's */
	int out_w;    /* a check's: a copy of its stdout pipe's write end, or -1 */
};

struct sent {
	pid_t pid;
	int signo;
};

struct probe {
	pid_t pid;
	double t;
};

/* An event as the observer saw it, copied. */
struct rec {
	enum lifecycle_kind kind;
	double t, secs;
	unsigned number, instance, from, spawned, instances, count;
	pid_t pid;
	int signo, conns;
	bool ok, stopped, failed, killed_early, replaced;
	enum upgrade_state state;
	char reason[512];
};

struct fake {
	struct lifecycle_host host;
	struct listener listeners[2];
	int conns;       /* what count_conns answers */
	pid_t session;   /* what session_of answers */
	int spawn_errno; /* spawn fails with it when not 0 */
	struct child children[MAX_CHILDREN];
	size_t nchildren;
	struct sent sent[MAX_SIGNALS];
	size_t nsent, sent_seen;
	struct probe probes[MAX_PROBES];
	size_t nprobes;
	struct rec events[MAX_EVENTS];
	size_t nevents, seen;
	bool cgroups;       /* generations get a cgroup */
	bool cg_populated;  /* what cgroup_populated answers */
	long long cg_ooms;  /* what cgroup_oom_kills answers */
	int cg_signals[8];  /* what cgroup_signal was asked to send */
	size_t ncg_signals;
	unsigned cg_open, cg_closed;
	pid_t reniced;      /* the group set_priority was last asked about */
	int renice;         /* ...and the nice value */
	int start_nice[MAX_CHILDREN]; /* what each spawn was asked to start with */
};

static struct fake *fake_of(struct lifecycle_host *h)
{
	return container_of(h, struct fake, host);
}

static struct listener *fake_listener(struct lifecycle_host *h, const char *name)
{
	struct fake *f = fake_of(h);
	for (size_t i = 0; i < 2; i++) {
		if (strcmp(f->listeners[i].name, name) == 0) {
			f->listeners[i].users++;
			return &f->listeners[i];
		}
	}
	return NULL;
}

static void fake_release(struct lifecycle_host *h, struct listener *l)
{
	(void)h;
	assert_true(l->users > 0);
	l->users--;
}

static int fake_count_conns(struct lifecycle_host *h, pid_t pid)
{
	struct fake *f = fake_of(h);
	assert_true(f->nprobes < MAX_PROBES);
	f->probes[f->nprobes++] = (struct probe){pid, now()};
	return f->conns;
}

static const char *fake_notify_path(struct lifecycle_host *h)
{
	(void)h;
	return NOTIFY_PATH;
}

static int fake_kill(struct lifecycle_host *h, pid_t pid, int signo)
{
	struct fake *f = fake_of(h);
	assert_true(f->nsent < MAX_SIGNALS);
	f->sent[f->nsent++] = (struct sent){pid, signo};
	return 0;
}

static pid_t fake_session_of(struct lifecycle_host *h, pid_t pid)
{
	(void)pid;
	return fake_of(h)->session;
}

static void fake_event(struct lifecycle_host *h, const struct lifecycle_event *e)
{
	struct fake *f = fake_of(h);
	assert_true(f->nevents < MAX_EVENTS);
	struct rec *r = &f->events[f->nevents++];
	*r = (struct rec){.kind = e->kind, .t = e->t, .secs = e->secs, .number = e->number,
		.instance = e->instance, .from = e->from, .spawned = e->spawned,
		.instances = e->instances, .count = e->count, .pid = e->pid, .signo = e->signo,
		.conns = e->conns, .ok = e->ok, .stopped = e->stopped, .failed = e->failed,
		.replaced = e->replaced, .state = e->state};
	r->killed_early = e->proc && e->proc->killed_early;
	snprintf(r->reason, sizeof(r->reason), "%s", e->reason ? e->reason : "");
}

/* A cgroup for each generation, which holds what the test says. */
static int fake_cgroup_open(struct lifecycle_host *h, struct generation *gen, char *err,
	size_t errlen)
{
	(void)err;
	(void)errlen;
	struct fake *f = fake_of(h);
	if (f->cgroups) {
		gen->cgroup = f;
		f->cg_open++;
	}
	return 0;
}

static bool fake_cgroup_populated(struct lifecycle_host *h, const struct generation *gen)
{
	assert_non_null(gen->cgroup);
	return fake_of(h)->cg_populated;
}

static unsigned fake_cgroup_signal(struct lifecycle_host *h, const struct generation *gen,
	int signo, char *who, size_t wholen)
{
	struct fake *f = fake_of(h);
	assert_non_null(gen->cgroup);
	assert_true(f->ncg_signals < 8);
	f->cg_signals[f->ncg_signals++] = signo;
	snprintf(who, wholen, "%s", f->cg_populated ? "sleep[4321]" : "");
	return f->cg_populated ? 1 : 0;
}

static long long fake_cgroup_oom_kills(struct lifecycle_host *h, const struct generation *gen)
{
	assert_non_null(gen->cgroup);
	return fake_of(h)->cg_ooms;
}

static void fake_cgroup_close(struct lifecycle_host *h, struct generation *gen)
{
	assert_non_null(gen->cgroup);
	gen->cgroup = NULL;
	fake_of(h)->cg_closed++;
}

/* ---- the fake spawner ---- */

static char **copy_words(char *const *words)
{
	size_t n = 0;
	while (words[n])
		n++;
	char **copy = calloc(n + 1, sizeof(*copy));
	assert_non_null(copy);
	for (size_t i = 0; i < n; i++)
		copy[i] = strdup(words[i]);
	return copy;
}

static void free_words(char **words)
{
	for (size_t i = 0; words && words[i]; i++)
		free(words[i]);
	free(words);
}

static void record_request(struct child *c, const struct spawn_request *req)
{
	c->argv = copy_words(req->argv);
	c->envp = copy_words(req->envp);
	if (req->nfds)
		memcpy(c->fds, req->fds, req->nfds * sizeof(int));
	c->nfds = req->nfds;
	c->ready_fd = req->ready_fd;
	c->ready_w = c->out_w = -1;
	if (req->ready_source >= 0)
		c->ready_w = fcntl(req->ready_source, F_DUPFD_CLOEXEC, 0);
	// The services run /usr/bin/app-vN; anything else is a check.
	c->check = strncmp(req->argv[0], "/usr/bin/app-v", 14) != 0;
	if (c->check) {
		assert_true(req->out_fd >= 0 && req->err_fd == req->out_fd);
		c->out_w = fcntl(req->out_fd, F_DUPFD_CLOEXEC, 0);
	}
}

/* Starts no process: a pid, and the error pipe's read end in *errfd. */
static pid_t fake_spawn(struct lifecycle_host *h, const struct spawn_request *req, int *errfd)
{
	struct fake *f = fake_of(h);
	if (f->spawn_errno) {
		errno = f->spawn_errno;
		return -1;
	}
	assert_true(f->nchildren < MAX_CHILDREN);
	struct child *c = &f->children[f->nchildren];
	int pipefd[2];
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	assert_int_equal(fcntl(pipefd[0], F_SETFL, O_NONBLOCK), 0);
	record_request(c, req);
	f->start_nice[f->nchildren] = req->start_nice;
	c->exec_w = pipefd[1];
	c->pid = FIRST_PID + (pid_t)f->nchildren++;
	*errfd = pipefd[0];
	return c->pid;
}

static void fake_listener_init(struct listener *l, const char *name, const char *bound)
{
	memset(l, 0, sizeof(*l));
	l->name = strdup(name);
	l->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(l->fd >= 0);
	snprintf(l->bound, sizeof(l->bound), "%s", bound);
}

static void fake_init(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	f->host = (struct lifecycle_host){.listener = fake_listener, .release = fake_release,
		.count_conns = fake_count_conns, .notify_path = fake_notify_path, .spawn = fake_spawn,
		.kill = fake_kill, .session_of = fake_session_of, .event = fake_event,
		.cgroup_open = fake_cgroup_open, .cgroup_populated = fake_cgroup_populated,
		.cgroup_signal = fake_cgroup_signal, .cgroup_oom_kills = fake_cgroup_oom_kills,
		.cgroup_close = fake_cgroup_close};
	fake_listener_init(&f->listeners[0], "http", "127.0.0.1:8080");
	fake_listener_init(&f->listeners[1], "admin", "/run/baton-test/admin.sock");
	f->conns = -1;
	f->session = -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Frees what the fake holds; every use of a socket must have been released. */
static void fake_finish(struct fake *f)
{
	for (size_t i = 0; i < f->nchildren; i++) {
		free_words(f->children[i].argv);
		free_words(f->children[i].envp);
		close_fd(&f->children[i].exec_w);
		close_fd(&f->children[i].ready_w);
		close_fd(&f->children[i].out_w);
	}
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(f->listeners[i].users, 0);
		close(f->listeners[i].fd);
		free(f->listeners[i].name);
	}
}

/* ---- the world of one test ---- */

struct world {
	struct fake fake;
	struct ev_loop *loop;
	struct lifecycle lc;
	struct config *configs[MAX_CONFIGS];
	size_t nconfigs;
	struct service *svc;
};

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	fake_ns = 1000 * NS;
	w->loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(w->loop);
	fake_init(&w->fake);
	lifecycle_init(&w->lc, w->loop, &w->fake.host);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	if (w->svc)
		service_destroy(w->svc);
	lifecycle_finish(&w->lc);
	for (size_t i = 0; i < w->nconfigs; i++)
		config_destroy(w->configs[i]);
	fake_finish(&w->fake);
	ev_loop_destroy(w->loop);
	free(w);
	return 0;
}

/*
 * Runs what is due: timers, then the idle watchers and pipes they wake. The
 * clock ticks a nanosecond a round, as a real loop's rounds take time: libev
 * runs a timer once the clock has passed its time, not at it.
 */
static void settle(struct world *w)
{
	for (int i = 0; i < 8; i++) {
		fake_ns++;
		ev_run(w->loop, EVRUN_NOWAIT);
	}
}

static void advance(struct world *w, double secs)
{
	fake_ns += llround(secs * 1e9);
	settle(w);
}

/* ---- definitions ---- */

static const char sockets_text[] = "[socket:http]\n"
				   "listen = tcp:127.0.0.1:8080\n"
				   "[socket:admin]\n"
				   "listen = unix:/run/baton-test/admin.sock\n";

/* The definition of service web, version n of its program, with keys added. */
static struct service_conf *define(struct world *w, unsigned version, const char *keys)
{
	char *text, *errors = NULL;
	assert_true(asprintf(&text, "%s[service:web]\ncommand = /usr/bin/app-v%u --serve\n"
				    "sockets = http, admin\n%s",
			    sockets_text, version, keys) > 0);
	struct config *config = config_load_text("test.conf", text, &errors);
	free(text);
	if (!config)
		fail_msg("%s", errors);
	assert_true(w->nconfigs < MAX_CONFIGS);
	w->configs[w->nconfigs++] = config;
	return config_service(config, "web");
}

/* ---- what the test expects ---- */

static const char *const kind_names[] = {
	[LC_SPAWNED] = "SPAWNED", [LC_SPAWN_FAILED] = "SPAWN_FAILED", [LC_READY] = "READY",
	[LC_STATUS] = "STATUS", [LC_MAIN_PID] = "MAIN_PID", [LC_UNREADY] = "UNREADY",
	[LC_STOPPING] = "STOPPING", [LC_SIGNALLED] = "SIGNALLED", [LC_SIGKILL] = "SIGKILL",
	[LC_EXITED] = "EXITED", [LC_KILLED] = "KILLED", [LC_RESTARTING] = "RESTARTING",
	[LC_FAILED] = "FAILED", [LC_GEN_STARTED] = "GEN_STARTED", [LC_GEN_EMPTY] = "GEN_EMPTY",
	[LC_DRAINED] = "DRAINED", [LC_MAX_DRAINING] = "MAX_DRAINING", [LC_UPGRADE] = "UPGRADE",
	[LC_UPGRADE_OVER] = "UPGRADE_OVER", [LC_STOP] = "STOP", [LC_STOPPED] = "STOPPED",
	[LC_IDLE] = "IDLE", [LC_STOP_OVER] = "STOP_OVER", [LC_ERROR] = "ERROR",
	[LC_OUTPUT] = "OUTPUT", [LC_CHECK] = "CHECK", [LC_UNHEALTHY] = "UNHEALTHY",
};

/* Prints the events recorded, the next one expected marked, for a failure's log. */
static void dump_events(const struct fake *f)
{
	for (size_t i = 0; i < f->nevents; i++) {
		const struct rec *r = &f->events[i];
		print_error("%s %2zu %-12s gen %u instance %u pid %d secs %.6f %s\n",
			i == f->seen ? "->" : "  ", i, kind_names[r->kind], r->number,
			r->instance, (int)r->pid, r->secs, r->reason);
	}
}

/* The next event: of kind, about generation number and instance. */
static const struct rec *expect(struct world *w, enum lifecycle_kind kind, unsigned number,
	unsigned instance)
{
	struct fake *f = &w->fake;
	const struct rec *r = f->seen < f->nevents ? &f->events[f->seen] : NULL;
	if (!r || r->kind != kind || r->number != number || r->instance != instance) {
		print_error("expected event %zu: %s gen %u instance %u\n", f->seen,
			kind_names[kind], number, instance);
		dump_events(f);
		fail();
	}
	f->seen++;
	return r;
}

/* The next event, about the process pid. */
static const struct rec *expect_proc(struct world *w, enum lifecycle_kind kind, unsigned number,
	unsigned instance, pid_t pid)
{
	const struct rec *r = expect(w, kind, number, instance);
	assert_int_equal(r->pid, pid);
	return r;
}

/* The next event: LC_UPGRADE_OVER or LC_STOP_OVER, ok or with reason. */
static void expect_over(struct world *w, enum lifecycle_kind kind, bool ok, const char *reason)
{
	const struct rec *r = expect(w, kind, 0, 0);
	assert_int_equal(r->ok, ok);
	assert_string_equal(r->reason, reason ? reason : "");
}

/* The next event: the upgrade to gen number moved to state. */
static const struct rec *expect_upgrade(struct world *w, enum upgrade_state state,
	unsigned number, unsigned from)
{
	const struct rec *r = expect(w, LC_UPGRADE, number, 0);
	assert_string_equal(upgrade_state_name(r->state), upgrade_state_name(state));
	assert_int_equal(r->from, from);
	return r;
}

static void expect_no_event(struct world *w)
{
	if (w->fake.seen != w->fake.nevents) {
		print_error("expected no more events\n");
		dump_events(&w->fake);
		fail();
	}
}

/* The next signal sent: signo to pid (a process group when negative). */
static void expect_signal(struct world *w, pid_t pid, int signo)
{
	struct fake *f = &w->fake;
	assert_true(f->sent_seen < f->nsent);
	assert_int_equal(f->sent[f->sent_seen].pid, pid);
	assert_int_equal(f->sent[f->sent_seen].signo, signo);
	f->sent_seen++;
}

static void expect_no_signal(struct world *w)
{
	assert_int_equal(w->fake.nsent, w->fake.sent_seen);
}

/* A stop without stop_delay: LC_STOPPING, SIGTERM and SIGCONT, LC_SIGNALLED. */
static void expect_stop_signal(struct world *w, unsigned number, unsigned instance, pid_t pid,
	double grace)
{
	assert_true(expect_proc(w, LC_STOPPING, number, instance, pid)->secs == 0);
	const struct rec *r = expect_proc(w, LC_SIGNALLED, number, instance, pid);
	assert_int_equal(r->signo, SIGTERM);
	assert_float_equal(r->secs, grace, EPS);
	expect_signal(w, pid, SIGTERM);
	expect_signal(w, pid, SIGCONT);
}

/* SIGKILL sent to the group of session sid and to pid, and nothing else. */
static void expect_sigkill_sent(struct world *w, pid_t sid, pid_t pid)
{
	expect_signal(w, -sid, SIGKILL);
	expect_signal(w, pid, SIGKILL);
	expect_no_signal(w);
}

/* SIGKILL sent to instance 0 of gen number, then told: LC_SIGKILL for reason. */
static const struct rec *expect_sigkill(struct world *w, unsigned number, pid_t sid, pid_t pid,
	const char *reason)
{
	expect_sigkill_sent(w, sid, pid);
	const struct rec *r = expect_proc(w, LC_SIGKILL, number, 0, pid);
	assert_string_equal(r->reason, reason);
	return r;
}

/* An exit after a stop: LC_EXITED or LC_KILLED with stopped set. */
static const struct rec *expect_stopped_exit(struct world *w, enum lifecycle_kind kind,
	unsigned number, unsigned instance, pid_t pid)
{
	const struct rec *r = expect_proc(w, kind, number, instance, pid);
	assert_true(r->stopped);
	return r;
}

/* The end of a stopped service: its last generation drained, then idle. */
static void expect_service_stopped(struct world *w, unsigned last_gen)
{
	expect(w, LC_DRAINED, last_gen, 0);
	expect(w, LC_STOPPED, 0, 0);
	expect_over(w, LC_STOP_OVER, true, NULL);
	expect(w, LC_IDLE, 0, 0);
	expect_no_event(w);
}

/* ---- what the processes do ---- */

static int fake_set_priority(struct lifecycle_host *h, pid_t pgid, int nice)
{
	struct fake *f = fake_of(h);
	f->reniced = pgid;
	f->renice = nice;
	return 0;
}

static struct child *child_of(struct world *w, pid_t pid)
{
	assert_true(pid >= FIRST_PID && (size_t)(pid - FIRST_PID) < w->fake.nchildren);
	return &w->fake.children[pid - FIRST_PID];
}

/* The pid of the n-th process spawned, from 0. */
static pid_t nth(unsigned n)
{
	return FIRST_PID + (pid_t)n;
}

/* The program was executed: its error pipe reads end-of-file. */
static void exec_ok(struct world *w, pid_t pid)
{
	close_fd(&child_of(w, pid)->exec_w);
	settle(w);
}

/* The program could not be executed, as spawn_process's child reports it. */
static void exec_fails(struct world *w, pid_t pid)
{
	struct child *c = child_of(w, pid);
	spawn_write_error(c->exec_w, ENOENT, "exec /nonexistent/app");
	close_fd(&c->exec_w);
	settle(w);
}

/* Writes text on the process's readiness pipe (ready = fd:N). */
static void write_ready(struct world *w, pid_t pid, const char *text)
{
	struct child *c = child_of(w, pid);
	assert_true(c->ready_w >= 0);
	assert_int_equal(write(c->ready_w, text, strlen(text)), (ssize_t)strlen(text));
	settle(w);
}

static struct proc *proc_of(struct world *w, pid_t pid)
{
	struct proc *p = lifecycle_proc(&w->lc, pid);
	assert_non_null(p);
	return p;
}

static void reap(struct world *w, pid_t pid, int status)
{
	assert_true(lifecycle_reap(&w->lc, pid, status));
	settle(w);
}

/* Execs the process and, with ready = notify, sends READY=1: LC_READY. */
static void make_ready(struct world *w, unsigned number, unsigned instance, pid_t pid)
{
	exec_ok(w, pid);
	struct proc *p = proc_of(w, pid);
	if (p->state == PROC_STARTING)
		proc_set_ready(p);
	expect_proc(w, LC_READY, number, instance, pid);
}

/* Creates and starts service web with keys: LC_GEN_STARTED, an LC_SPAWNED each. */
static void start(struct world *w, const char *keys)
{
	w->svc = service_create(&w->lc, define(w, 1, keys));
	assert_non_null(w->svc);
	service_start(w->svc);
	// Every start ends a stop that may be waited on.
	expect_over(w, LC_STOP_OVER, false, "the service was started again");
	expect(w, LC_GEN_STARTED, 1, 0);
	for (unsigned i = 0; i < w->svc->conf->instances; i++)
		expect_proc(w, LC_SPAWNED, 1, i, nth(i));
	expect_no_event(w);
}

/* Starts service web with keys and makes every process ready. */
static void run(struct world *w, const char *keys)
{
	start(w, keys);
	for (unsigned i = 0; i < w->svc->conf->instances; i++)
		make_ready(w, 1, i, nth(i));
	expect_no_event(w);
	assert_string_equal(service_state_name(w->svc), "running");
}

/* Starts an upgrade to version of the program with keys; it must be accepted. */
static void upgrade(struct world *w, unsigned version, const char *keys)
{
	char err[256] = "";
	if (service_upgrade(w->svc, define(w, version, keys), NULL, err, sizeof(err)) < 0)
		fail_msg("upgrade refused: %s", err);
}

/* ---- the fake clock ---- */

static void count_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	(*(int *)t->data)++;
}

static void libev_timers_run_on_the_fake_clock(void **state)
{
	struct world *w = *state;
	int fired = 0;
	ev_timer t;
	ev_timer_init(&t, count_cb, 1.0, 0);
	t.data = &fired;
	ev_now_update(w->loop);
	ev_timer_start(w->loop, &t);
	advance(w, 0.999);
	assert_int_equal(fired, 0);
	advance(w, 0.001);
	assert_int_equal(fired, 1);
	assert_float_equal(now(), 1001.0, EPS);
}

/* ---- starting ---- */

static bool has_var(const struct child *c, const char *var)
{
	for (size_t i = 0; c->envp[i]; i++) {
		if (strcmp(c->envp[i], var) == 0)
			return true;
	}
	return false;
}

static bool has_name(const struct child *c, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; c->envp[i]; i++) {
		if (strncmp(c->envp[i], name, n) == 0 && c->envp[i][n] == '=')
			return true;
	}
	return false;
}

static void first_start_spawns_each_instance_with_its_sockets_and_environment(void **state)
{
	struct world *w = *state;
	start(w, "instances = 2\n");
	for (unsigned i = 0; i < 2; i++) {
		const struct child *c = child_of(w, nth(i));
		assert_string_equal(c->argv[0], "/usr/bin/app-v1");
		assert_string_equal(c->argv[1], "--serve");
		assert_null(c->argv[2]);
		assert_int_equal(c->nfds, 2);
		assert_int_equal(c->fds[0], w->fake.listeners[0].fd);
		assert_int_equal(c->fds[1], w->fake.listeners[1].fd);
		assert_int_equal(c->ready_fd, -1);
		assert_true(has_var(c, "LISTEN_FDS=2"));
		assert_true(has_var(c, "LISTEN_FDNAMES=http:admin"));
		assert_true(has_var(c, "BATON_SERVICE=web"));
		assert_true(has_var(c, "BATON_GENERATION=1"));
		assert_true(has_var(c, i == 0 ? "BATON_INSTANCE=0" : "BATON_INSTANCE=1"));
		assert_false(has_name(c, "NOTIFY_SOCKET"));
	}
	assert_int_equal(w->fake.listeners[0].users, 1);
	assert_string_equal(service_state_name(w->svc), "starting");
	expect_no_signal(w);
}

static void notify_socket_is_given_with_ready_notify(void **state)
{
	struct world *w = *state;
	start(w, "ready = notify\n");
	assert_true(has_var(child_of(w, nth(0)), "NOTIFY_SOCKET=" NOTIFY_PATH));
}

/* ---- readiness ---- */

static void ready_none_is_ready_once_exec_succeeded(void **state)
{
	struct world *w = *state;
	start(w, "");
	advance(w, 1);
	expect_no_event(w);
	exec_ok(w, nth(0));
	assert_float_equal(expect_proc(w, LC_READY, 1, 0, nth(0))->secs, 1, 1e-3);
	expect_no_event(w);
	assert_string_equal(service_state_name(w->svc), "running");
}

static void ready_notify_is_ready_on_ready_1_not_on_exec(void **state)
{
	struct world *w = *state;
	start(w, "ready = notify\n");
	exec_ok(w, nth(0));
	advance(w, 2);
	expect_no_event(w);
	proc_set_ready(proc_of(w, nth(0)));
	assert_float_equal(expect_proc(w, LC_READY, 1, 0, nth(0))->secs, 2, 1e-3);
	expect_no_event(w);
}

static void ready_fd_needs_a_newline_on_its_pipe(void **state)
{
	struct world *w = *state;
	start(w, "ready = fd:5\n");
	assert_int_equal(child_of(w, nth(0))->ready_fd, 5);
	exec_ok(w, nth(0));
	write_ready(w, nth(0), "starting");
	advance(w, 1);
	expect_no_event(w);
	write_ready(w, nth(0), " up\n");
	assert_float_equal(expect_proc(w, LC_READY, 1, 0, nth(0))->secs, 1, 1e-3);
	expect_no_event(w);
}

static void ready_delay_is_ready_when_the_delay_has_passed(void **state)
{
	struct world *w = *state;
	start(w, "ready = delay:500ms\n");
	exec_ok(w, nth(0));
	advance(w, 0.499);
	expect_no_event(w);
	advance(w, 0.001);
	assert_float_equal(expect_proc(w, LC_READY, 1, 0, nth(0))->secs, 0.5, 1e-6);
	expect_no_event(w);
}

static void ready_delay_waits_for_the_exec(void **state)
{
	struct world *w = *state;
	start(w, "ready = delay:500ms\n");
	advance(w, 0.7);
	expect_no_event(w);
	exec_ok(w, nth(0));
	advance(w, 0.01);
	assert_float_equal(expect_proc(w, LC_READY, 1, 0, nth(0))->secs, 0.71, 0.011);
	expect_no_event(w);
}

static void ready_timeout_stops_and_replaces_the_process(void **state)
{
	struct world *w = *state;
	start(w, "ready = fd:5\nready_timeout = 2s\nstop_delay = 5s\nrestart_delay = 1s\n");
	exec_ok(w, nth(0));
	close_fd(&child_of(w, nth(0))->ready_w); // closed without a newline: not ready
	advance(w, 1.999);
	expect_no_event(w);
	advance(w, 0.001);
	const struct rec *r = expect_proc(w, LC_UNREADY, 1, 0, nth(0));
	assert_string_equal(r->reason, "not ready after 2s (ready_timeout)");
	expect_stop_signal(w, 1, 0, nth(0), 10); // at once, without stop_delay
	reap(w, nth(0), W_EXITCODE(0, SIGTERM));
	r = expect_proc(w, LC_RESTARTING, 1, 0, nth(0));
	assert_string_equal(r->reason,
		"not ready after 2s (ready_timeout), then killed by signal 15 (TERM)");
	assert_float_equal(r->secs, 1, EPS);
	advance(w, 1);
	expect_proc(w, LC_SPAWNED, 1, 0, nth(1));
	expect_no_event(w);
	expect_no_signal(w);
}

/* ---- restarts ---- */

/* The process crashes: LC_RESTARTING in delay, then the next one spawns. */
static void crash_and_restart(struct world *w, pid_t pid, double delay)
{
	reap(w, pid, W_EXITCODE(1, 0));
	const struct rec *r = expect_proc(w, LC_RESTARTING, 1, 0, pid);
	assert_string_equal(r->reason, "exited with status 1");
	assert_float_equal(r->secs, delay, EPS);
	advance(w, delay - 0.001);
	expect_no_event(w);
	advance(w, 0.001);
	expect_proc(w, LC_SPAWNED, 1, 0, pid + 1);
	expect_no_event(w);
}

static const char backoff_keys[] = "restart_delay = 1s\nrestart_delay_max = 4s\n"
				   "start_limit = none\n";

static void crash_restarts_with_a_doubling_delay_up_to_the_max(void **state)
{
	struct world *w = *state;
	start(w, backoff_keys);
	crash_and_restart(w, nth(0), 1);
	crash_and_restart(w, nth(1), 2);
	crash_and_restart(w, nth(2), 4);
	crash_and_restart(w, nth(3), 4);
	assert_int_equal(w->svc->restarts, 4);
	expect_no_signal(w);
}

static void a_long_run_starts_the_delay_over(void **state)
{
	struct world *w = *state;
	start(w, backoff_keys);
	crash_and_restart(w, nth(0), 1);
	crash_and_restart(w, nth(1), 2);
	advance(w, BACKOFF_RESET_AFTER);
	crash_and_restart(w, nth(2), 1);
}

static void crash_loop_fails_the_service(void **state)
{
	struct world *w = *state;
	start(w, "restart_delay = 100ms\nstart_limit = 3/10s\n");
	for (unsigned i = 0; i < 3; i++)
		crash_and_restart(w, nth(i), 0.1 * (1 << i));
	reap(w, nth(3), W_EXITCODE(1, 0));
	expect(w, LC_FAILED, 0, 0);
	assert_string_equal(w->svc->reason, "crash loop: restarted 3 times within 10s "
					    "(start_limit); last: exited with status 1");
	expect_service_stopped(w, 1);
	assert_string_equal(service_state_name(w->svc), "failed");
	advance(w, 60);
	expect_no_event(w);
	assert_int_equal(w->fake.nchildren, 4);
}

static void exec_failure_is_a_failed_exit(void **state)
{
	struct world *w = *state;
	start(w, "restart = on-failure\n");
	exec_fails(w, nth(0));
	expect_no_event(w);
	reap(w, nth(0), W_EXITCODE(127, 0));
	const struct rec *r = expect_proc(w, LC_RESTARTING, 1, 0, nth(0));
	assert_string_equal(r->reason, EXEC_ERROR);
	assert_float_equal(r->secs, 0.1, EPS);
	expect_no_event(w);
}

static void restart_never_fails_the_service_with_its_last_process(void **state)
{
	struct world *w = *state;
	run(w, "instances = 2\nrestart = never\n");
	reap(w, nth(0), W_EXITCODE(3, 0));
	assert_false(expect_proc(w, LC_EXITED, 1, 0, nth(0))->stopped);
	expect_no_event(w);
	assert_string_equal(service_state_name(w->svc), "degraded");
	reap(w, nth(1), W_EXITCODE(4, 0));
	expect_proc(w, LC_FAILED, 1, 1, nth(1));
	assert_true(expect_proc(w, LC_EXITED, 1, 1, nth(1))->failed);
	assert_string_equal(w->svc->reason, "web[10001] gen 1: exited with status 4; restart = never");
	expect(w, LC_GEN_EMPTY, 1, 0);
	expect_over(w, LC_STOP_OVER, true, NULL);
	expect(w, LC_IDLE, 0, 0);
	expect_no_event(w);
	assert_string_equal(service_state_name(w->svc), "failed");
}

/* ---- stopping ---- */

static const char stop_keys[] = "stop_delay = 2s\nstop_grace = 5s\n";

/* Runs web with keys, stops it and waits out its stop_delay: LC_SIGNALLED. */
static void run_then_stop(struct world *w, const char *keys)
{
	run(w, keys);
	service_stop(w->svc);
	assert_int_equal(expect(w, LC_STOP, 0, 0)->count, 1);
	assert_float_equal(expect_proc(w, LC_STOPPING, 1, 0, nth(0))->secs, 2, EPS);
	expect_no_event(w);
	assert_string_equal(service_state_name(w->svc), "stopping");
	advance(w, 1.999);
	expect_no_event(w);
	expect_no_signal(w);
	advance(w, 0.001);
	const struct rec *r = expect_proc(w, LC_SIGNALLED, 1, 0, nth(0));
	assert_int_equal(r->signo, SIGTERM);
	assert_float_equal(r->secs, 5, EPS);
	expect_signal(w, nth(0), SIGTERM);
	expect_signal(w, nth(0), SIGCONT);
}

static void stop_signal_comes_after_stop_delay(void **state)
{
	struct world *w = *state;
	run_then_stop(w, stop_keys);
	expect_no_event(w);
	expect_no_signal(w);
}

static void sigkill_comes_exactly_at_the_end_of_stop_grace(void **state)
{
	struct world *w = *state;
	w->fake.conns = 3;
	run_then_stop(w, stop_keys);
	double deadline = now() + 5;
	advance(w, 5 - KILL_PROBE_LEAD - 0.001);
	assert_int_equal(w->fake.nprobes, 0);
	advance(w, 0.001);
	assert_int_equal(w->fake.nprobes, 1);
	assert_int_equal(w->fake.probes[0].pid, nth(0));
	assert_float_equal(w->fake.probes[0].t, deadline - KILL_PROBE_LEAD, EPS);
	advance(w, KILL_PROBE_LEAD - 1e-6);
	expect_no_signal(w);
	expect_no_event(w);
	advance(w, 1e-6);
	const struct rec *r = expect_sigkill(w, 1, nth(0), nth(0), GRACE_ENDED);
	assert_float_equal(r->t, deadline, EPS);
	assert_int_equal(r->conns, 3);
	expect_no_event(w);
}

static void killed_process_is_told_after_its_sigkill(void **state)
{
	struct world *w = *state;
	w->fake.conns = 2;
	run_then_stop(w, stop_keys);
	advance(w, 5);
	expect_sigkill(w, 1, nth(0), nth(0), GRACE_ENDED);
	reap(w, nth(0), W_EXITCODE(0, SIGKILL));
	const struct rec *r = expect_stopped_exit(w, LC_KILLED, 1, 0, nth(0));
	assert_string_equal(r->reason, "killed by signal 9 (KILL)");
	assert_int_equal(r->conns, 2);
	assert_float_equal(r->secs, 7, 1e-3);
	expect_service_stopped(w, 1);
	assert_int_equal(w->svc->kills, 1);
	assert_string_equal(service_state_name(w->svc), "stopped");
}

static void exit_by_itself_as_sigkill_is_sent_is_no_kill(void **state)
{
	struct world *w = *state;
	run_then_stop(w, stop_keys);
	advance(w, 5);
	expect_sigkill(w, 1, nth(0), nth(0), GRACE_ENDED);
	// Its cleanup ran and it exited 0 just before SIGKILL could land.
	reap(w, nth(0), W_EXITCODE(0, 0));
	const struct rec *r = expect_stopped_exit(w, LC_EXITED, 1, 0, nth(0));
	assert_string_equal(r->reason, "exited with status 0");
	assert_int_equal(r->conns, -1);
	expect_service_stopped(w, 1);
	assert_int_equal(w->svc->kills, 0);
}

static void sigkill_reaped_before_the_loop_idles_is_told_first(void **state)
{
	struct world *w = *state;
	run_then_stop(w, stop_keys);
	fake_ns += 5 * NS;
	ev_run(w->loop, EVRUN_NOWAIT); // the probe
	fake_ns++;
	ev_run(w->loop, EVRUN_NOWAIT); // SIGKILL; its report waits for an idle loop
	expect_sigkill_sent(w, nth(0), nth(0));
	expect_no_event(w);
	assert_true(lifecycle_reap(&w->lc, nth(0), W_EXITCODE(0, SIGKILL)));
	expect_proc(w, LC_SIGKILL, 1, 0, nth(0));
	expect_stopped_exit(w, LC_KILLED, 1, 0, nth(0));
	settle(w);
	expect_service_stopped(w, 1);
}

static void stop_signal_kill_sends_no_sigcont(void **state)
{
	struct world *w = *state;
	run(w, "stop_signal = KILL\n");
	service_stop(w->svc);
	expect(w, LC_STOP, 0, 0);
	expect_proc(w, LC_STOPPING, 1, 0, nth(0));
	assert_int_equal(expect_proc(w, LC_SIGNALLED, 1, 0, nth(0))->signo, SIGKILL);
	expect_signal(w, nth(0), SIGKILL);
	expect_no_signal(w);
}

static void exit_after_the_stop_signal_ends_the_stop(void **state)
{
	struct world *w = *state;
	run_then_stop(w, stop_keys);
	advance(w, 1);
	reap(w, nth(0), W_EXITCODE(0, 0));
	const struct rec *r = expect_stopped_exit(w, LC_EXITED, 1, 0, nth(0));
	assert_false(r->failed);
	assert_string_equal(r->reason, "exited with status 0");
	assert_float_equal(r->secs, 3, 1e-3);
	expect_service_stopped(w, 1);
	advance(w, 10);
	expect_no_event(w);
	expect_no_signal(w);
	assert_int_equal(w->svc->kills, 0);
}

static struct generation *oldest_gen(struct world *w)
{
	assert_false(list_empty(&w->svc->gens));
	return container_of(w->svc->gens.prev, struct generation, link);
}

// Its processes are gone, something it started is not: the stop goes on.
static void strays_left_in_the_cgroup(struct world *w)
{
	w->fake.cgroups = true;
	run_then_stop(w, stop_keys);
	advance(w, 1);
	w->fake.cg_populated = true;
	reap(w, nth(0), W_EXITCODE(0, 0));
	expect_stopped_exit(w, LC_EXITED, 1, 0, nth(0));
	const struct rec *r = expect(w, LC_STRAYS, 1, 0);
	assert_int_equal(r->count, 1);
	assert_int_equal(r->signo, SIGTERM);
	assert_float_equal(r->secs, 5, EPS);
	assert_int_equal(w->fake.ncg_signals, 1);
	assert_int_equal(w->fake.cg_signals[0], SIGTERM);
	expect_no_event(w);
	assert_string_equal(service_state_name(w->svc), "stopping");
	assert_int_equal(service_live_procs(w->svc), 1);
}

static void strays_are_killed_when_their_grace_ends_and_the_stop_waits_for_the_cgroup(
	void **state)
{
	struct world *w = *state;
	strays_left_in_the_cgroup(w);
	advance(w, 5 - 0.001);
	expect_no_event(w);
	advance(w, 0.001);
	const struct rec *r = expect(w, LC_STRAYS_KILLED, 1, 0);
	assert_int_equal(r->count, 1);
	assert_int_equal(w->fake.ncg_signals, 2);
	assert_int_equal(w->fake.cg_signals[1], SIGKILL);
	assert_int_equal(w->svc->kills, 1);
	expect_no_event(w);
	// Still there until the cgroup says it is empty.
	advance(w, 0.5);
	expect_no_event(w);
	w->fake.cg_populated = false;
	lifecycle_cgroup_empty(oldest_gen(w));
	expect_service_stopped(w, 1);
	assert_int_equal(w->fake.cg_closed, 1);
}

static void strays_that_exit_in_their_grace_end_the_stop_at_once(void **state)
{
	struct world *w = *state;
	strays_left_in_the_cgroup(w);
	advance(w, 2);
	w->fake.cg_populated = false;
	lifecycle_cgroup_empty(oldest_gen(w));
	expect_service_stopped(w, 1);
	advance(w, 10);
	expect_no_event(w);
	assert_int_equal(w->fake.ncg_signals, 1);
	assert_int_equal(w->svc->kills, 0);
}

static void the_deadline_of_a_drain_kills_its_whole_cgroup(void **state)
{
	struct world *w = *state;
	w->fake.cgroups = true;
	run_then_stop(w, stop_keys);
	w->fake.cg_populated = true;
	advance(w, 5);
	const struct rec *r = expect(w, LC_STRAYS_KILLED, 1, 0);
	assert_int_equal(r->count, 1);
	expect_sigkill(w, 1, nth(0), nth(0), GRACE_ENDED);
	assert_int_equal(w->fake.ncg_signals, 1);
	assert_int_equal(w->fake.cg_signals[0], SIGKILL);
	reap(w, nth(0), W_EXITCODE(0, SIGKILL));
	expect_stopped_exit(w, LC_KILLED, 1, 0, nth(0));
	// No second grace: what is left was killed with it, and is waited for.
	expect_no_event(w);
	advance(w, 0.5);
	w->fake.cg_populated = false;
	lifecycle_cgroup_empty(oldest_gen(w));
	expect_service_stopped(w, 1);
	assert_int_equal(w->fake.ncg_signals, 1);
	assert_int_equal(w->svc->kills, 2);
}

static void start_nice_lowers_a_start_until_readiness_gives_the_priority_back(void **state)
{
	struct world *w = *state;
	w->fake.host.set_priority = fake_set_priority;
	w->fake.host.base_nice = 2;
	start(w, "start_nice = 10\ninstances = 2\nready = notify\nnice = 5\n");
	assert_int_equal(w->fake.start_nice[0], 10);
	assert_int_equal(w->fake.start_nice[1], 10);
	exec_ok(w, nth(0));
	assert_int_equal(w->fake.reniced, 0);
	make_ready(w, 1, 0, nth(0));
	// Every thread of its group, back to the service's own nice value.
	assert_int_equal(w->fake.reniced, nth(0));
	assert_int_equal(w->fake.renice, 5);
}

static void start_nice_is_not_used_when_the_priority_could_not_come_back(void **state)
{
	struct world *w = *state;
	start(w, "start_nice = 10\n");
	assert_int_equal(w->fake.start_nice[0], 0);
	make_ready(w, 1, 0, nth(0));
	assert_int_equal(w->fake.reniced, 0);
}

static void an_empty_cgroup_ends_the_generation_with_its_last_process(void **state)
{
	struct world *w = *state;
	w->fake.cgroups = true;
	run_then_stop(w, stop_keys);
	advance(w, 1);
	reap(w, nth(0), W_EXITCODE(0, 0));
	expect_stopped_exit(w, LC_EXITED, 1, 0, nth(0));
	expect_service_stopped(w, 1);
	assert_int_equal(w->fake.ncg_signals, 0);
	assert_int_equal(w->fake.cg_open, 1);
	assert_int_equal(w->fake.cg_closed, 1);
}

static void a_sigkill_batond_did_not_send_with_an_oom_kill_counted_is_told_as_such(void **state)
{
	struct world *w = *state;
	w->fake.cgroups = true;
	run(w, "");
	w->fake.cg_ooms = 1;
	reap(w, nth(0), W_EXITCODE(0, SIGKILL));
	const struct rec *r = expect_proc(w, LC_RESTARTING, 1, 0, nth(0));
	assert_string_equal(r->reason, "killed by the kernel's OOM killer");
	assert_int_equal(w->svc->oom_kills, 1);
	// The next SIGKILL from elsewhere, with no new OOM kill, is not one.
	advance(w, 1);
	expect_proc(w, LC_SPAWNED, 1, 0, nth(1));
	exec_ok(w, nth(1));
	expect_proc(w, LC_READY, 1, 0, nth(1));
	reap(w, nth(1), W_EXITCODE(0, SIGKILL));
	r = expect_proc(w, LC_RESTARTING, 1, 0, nth(1));
	assert_string_equal(r->reason, "killed by signal 9 (KILL)");
	assert_int_equal(w->svc->oom_kills, 1);
}

static void start_while_stopping_overrides_the_stop(void **state)
{
	struct world *w = *state;
	run_then_stop(w, stop_keys);
	service_start(w->svc);
	expect_over(w, LC_STOP_OVER, false, "the service was started again");
	expect(w, LC_GEN_STARTED, 2, 0);
	expect_proc(w, LC_SPAWNED, 2, 0, nth(1));
	expect_no_event(w);
	reap(w, nth(0), W_EXITCODE(0, 0));
	expect_stopped_exit(w, LC_EXITED, 1, 0, nth(0));
	expect(w, LC_DRAINED, 1, 0);
	expect_no_event(w);
}

static void stop_delay_is_only_for_ready_processes(void **state)
{
	struct world *w = *state;
	start(w, "ready = notify\nstop_delay = 2s\n");
	service_stop(w->svc);
	expect(w, LC_STOP, 0, 0);
	expect_stop_signal(w, 1, 0, nth(0), 10);
	expect_no_event(w);
}

static void stop_drops_a_process_waiting_to_restart_at_once(void **state)
{
	struct world *w = *state;
	run(w, "restart_delay = 1s\n");
	reap(w, nth(0), W_EXITCODE(1, 0));
	expect_proc(w, LC_RESTARTING, 1, 0, nth(0));
	service_stop(w->svc);
	assert_int_equal(expect(w, LC_STOP, 0, 0)->count, 0);
	expect_service_stopped(w, 1);
	advance(w, 2);
	expect_no_event(w);
	expect_no_signal(w);
}

static void main_pid_takes_the_stop_signal_and_sigkill(void **state)
{
	struct world *w = *state;
	const pid_t main_pid = 20000;
	run(w, "stop_grace = 1s\n");
	struct proc *p = proc_of(w, nth(0));
	w->fake.session = 999;
	assert_int_equal(proc_set_main_pid(p, main_pid), -1);
	assert_int_equal(errno, EPERM);
	w->fake.session = nth(0);
	assert_int_equal(proc_set_main_pid(p, main_pid), 0);
	expect_proc(w, LC_MAIN_PID, 1, 0, nth(0));
	assert_false(lifecycle_reap(&w->lc, nth(0), W_EXITCODE(0, 0)));
	service_stop(w->svc);
	expect(w, LC_STOP, 0, 0);
	expect_stop_signal(w, 1, 0, main_pid, 1);
	advance(w, 1);
	expect_sigkill(w, 1, nth(0), main_pid, "still running after its 1s stop_grace");
	reap(w, main_pid, W_EXITCODE(0, SIGKILL));
	expect_stopped_exit(w, LC_KILLED, 1, 0, main_pid);
	expect_service_stopped(w, 1);
}

/* ---- upgrades ---- */

/* Starts an upgrade to gen number with keys: LC_UPGRADE started, its first batch spawned. */
static void begin_upgrade(struct world *w, unsigned number, const char *keys)
{
	pid_t pid = nth((unsigned)w->fake.nchildren);
	upgrade(w, number, keys);
	const struct rec *r = expect_upgrade(w, UPGRADE_STARTED, number, number - 1);
	assert_int_equal(r->instances, w->svc->next->conf->instances);
	for (unsigned i = 0; i < r->spawned; i++)
		expect_proc(w, LC_SPAWNED, number, i, pid + (pid_t)i);
	expect_no_event(w);
}

/* The stopped process exits 0: LC_EXITED. */
static void stopped_exits(struct world *w, unsigned number, unsigned instance, pid_t pid)
{
	reap(w, pid, W_EXITCODE(0, 0));
	const struct rec *r = expect_stopped_exit(w, LC_EXITED, number, instance, pid);
	assert_false(r->failed);
}

/* The last stopped process of a draining generation exits: LC_DRAINED. */
static void last_exits(struct world *w, unsigned number, unsigned instance, pid_t pid)
{
	stopped_exits(w, number, instance, pid);
	expect(w, LC_DRAINED, number, 0);
	expect_no_event(w);
}

static void upgrade_all_stops_the_old_generation_once_every_new_process_is_ready(void **state)
{
	struct world *w = *state;
	run(w, "instances = 3\n");
	begin_upgrade(w, 2, "instances = 3\n");
	assert_string_equal(child_of(w, nth(3))->argv[0], "/usr/bin/app-v2");
	assert_true(has_var(child_of(w, nth(3)), "BATON_GENERATION=2"));
	assert_string_equal(service_state_name(w->svc), "upgrading");
	for (unsigned i = 0; i < 3; i++) {
		expect_no_signal(w);
		make_ready(w, 2, i, nth(3 + i));
	}
	expect_upgrade(w, UPGRADE_DONE, 2, 0);
	for (unsigned i = 0; i < 3; i++)
		expect_stop_signal(w, 1, i, nth(i), 10);
	expect_over(w, LC_UPGRADE_OVER, true, NULL);
	stopped_exits(w, 1, 0, nth(0));
	stopped_exits(w, 1, 1, nth(1));
	last_exits(w, 1, 2, nth(2));
	assert_int_equal(w->svc->upgrades, 1);
	assert_string_equal(service_state_name(w->svc), "running");
}

static void assert_counts(struct world *w, unsigned live, unsigned ready, unsigned starting,
	unsigned unsettled)
{
	struct service_counts c;
	service_count(w->svc, &c);
	assert_int_equal(c.live, live);
	assert_int_equal(c.ready, ready);
	assert_int_equal(c.starting, starting);
	assert_int_equal(c.waiting, 0);
	assert_int_equal(c.unsettled, unsettled);
	assert_int_equal(c.live, service_live_procs(w->svc));
	assert_string_equal(service_state_of(w->svc, &c), service_state_name(w->svc));
}

/* What status counts in one walk: the current generation's states, every live
 * process, and those it lists (not ready, or not of the current generation). */
static void counts_follow_an_upgrade(void **state)
{
	struct world *w = *state;
	run(w, "instances = 3\n");
	assert_counts(w, 3, 3, 0, 0);
	begin_upgrade(w, 2, "instances = 3\n");
	assert_counts(w, 6, 3, 0, 3);
	for (unsigned i = 0; i < 3; i++)
		make_ready(w, 2, i, nth(3 + i));
	expect_upgrade(w, UPGRADE_DONE, 2, 0);
	for (unsigned i = 0; i < 3; i++)
		expect_stop_signal(w, 1, i, nth(i), 10);
	expect_over(w, LC_UPGRADE_OVER, true, NULL);
	assert_counts(w, 6, 3, 0, 3);
	stopped_exits(w, 1, 0, nth(0));
	stopped_exits(w, 1, 1, nth(1));
	assert_counts(w, 4, 3, 0, 1);
	last_exits(w, 1, 2, nth(2));
	assert_counts(w, 3, 3, 0, 0);
}

/* A new process of gen 2 is ready: the old one of its instance stops, the next batch starts. */
static void rolling_step(struct world *w, unsigned i)
{
	expect_no_signal(w);
	make_ready(w, 2, i, nth(3 + i));
	expect_stop_signal(w, 1, i, nth(i), 10);
	if (i == 2)
		return;
	const struct rec *r = expect_upgrade(w, UPGRADE_BATCH, 2, 1);
	assert_int_equal(r->spawned, i + 2);
	expect_proc(w, LC_SPAWNED, 2, i + 1, nth(4 + i));
	expect_no_event(w);
}

static void rolling_upgrade_stops_an_old_process_per_new_one_ready(void **state)
{
	struct world *w = *state;
	run(w, "instances = 3\n");
	begin_upgrade(w, 2, "instances = 3\nupgrade = rolling:1\n");
	for (unsigned i = 0; i < 3; i++)
		rolling_step(w, i);
	expect_upgrade(w, UPGRADE_DONE, 2, 0);
	expect_over(w, LC_UPGRADE_OVER, true, NULL);
	expect_no_event(w);
	stopped_exits(w, 1, 0, nth(0));
	stopped_exits(w, 1, 1, nth(1));
	last_exits(w, 1, 2, nth(2));
}

/* Runs web with keys and starts its upgrade to gen 2 with new_keys; returns gen 1's definition. */
static struct service_conf *run_then_upgrade(struct world *w, const char *keys,
	const char *new_keys)
{
	run(w, keys);
	struct service_conf *old = w->svc->conf;
	begin_upgrade(w, 2, new_keys);
	return old;
}

/* The upgrade to gen 2 rolled back for reason: gen 1 serves on its definition again. */
static void expect_rolled_back(struct world *w, struct service_conf *old, const char *reason)
{
	char want[1024];
	snprintf(want, sizeof(want), "upgrade to gen 2 rolled back: %s", reason);
	assert_string_equal(expect_upgrade(w, UPGRADE_ROLLED_BACK, 2, 1)->reason, reason);
	assert_string_equal(w->svc->reason, want);
	assert_int_equal(w->svc->rollbacks, 1);
	assert_ptr_equal(w->svc->conf, old);
	assert_int_equal(w->svc->current->number, 1);
	assert_false(w->svc->upgrade.active);
}

/* The upgrade has ended in failure, with the service's reason. */
static void expect_rollback_over(struct world *w)
{
	expect_over(w, LC_UPGRADE_OVER, false, w->svc->reason);
	expect_no_event(w);
}

/* A process of gen 2 ended the upgrade: LC_EXITED, not stopped, failed. */
static void expect_new_exit(struct world *w, unsigned instance, pid_t pid, const char *reason)
{
	const struct rec *r = expect_proc(w, LC_EXITED, 2, instance, pid);
	assert_false(r->stopped);
	assert_true(r->failed);
	assert_string_equal(r->reason, reason);
}

static void upgrade_rolls_back_when_a_ready_new_process_exits(void **state)
{
	struct world *w = *state;
	struct service_conf *old = run_then_upgrade(w, "ready = notify\n", "ready = notify\ninstances = 2\n");
	make_ready(w, 2, 0, nth(1));
	reap(w, nth(1), W_EXITCODE(0, SIGSEGV));
	expect_new_exit(w, 0, nth(1), "killed by signal 11 (SEGV)");
	expect_rolled_back(w, old, "web[10001] gen 2: killed by signal 11 (SEGV) during the upgrade");
	expect_stop_signal(w, 2, 1, nth(2), 10);
	expect_rollback_over(w);
	last_exits(w, 2, 1, nth(2));
	expect_no_signal(w);
}

static void upgrade_rolls_back_when_a_new_process_exits_before_ready(void **state)
{
	struct world *w = *state;
	struct service_conf *old = run_then_upgrade(w, "ready = notify\n", "ready = notify\n");
	exec_ok(w, nth(1));
	reap(w, nth(1), W_EXITCODE(1, 0));
	expect_new_exit(w, 0, nth(1), "exited with status 1");
	expect_rolled_back(w, old, "web[10001] gen 2: exited with status 1 before it was ready");
	expect(w, LC_DRAINED, 2, 0);
	expect_rollback_over(w);
	expect_no_signal(w);
	assert_string_equal(service_state_name(w->svc), "running");
}

static void upgrade_rolls_back_when_a_new_process_is_not_ready_in_time(void **state)
{
	struct world *w = *state;
	struct service_conf *old = run_then_upgrade(w, "ready = notify\n", "ready = notify\nready_timeout = 3s\n");
	exec_ok(w, nth(1));
	advance(w, 2.999);
	expect_no_event(w);
	advance(w, 0.001);
	expect_rolled_back(w, old, "web[10001] gen 2: not ready after 3s (ready_timeout)");
	expect_stop_signal(w, 2, 0, nth(1), 10);
	expect_rollback_over(w);
	last_exits(w, 2, 0, nth(1));
	expect_no_signal(w);
}

static void upgrade_rolls_back_when_exec_fails(void **state)
{
	struct world *w = *state;
	struct service_conf *old = run_then_upgrade(w, "", "");
	exec_fails(w, nth(1));
	expect_no_event(w);
	reap(w, nth(1), W_EXITCODE(127, 0));
	expect_new_exit(w, 0, nth(1), EXEC_ERROR);
	expect_rolled_back(w, old, "web[10001] gen 2: " EXEC_ERROR " before it was ready");
	expect(w, LC_DRAINED, 2, 0);
	expect_rollback_over(w);
	expect_no_signal(w);
}

static void rolling_rollback_starts_the_retired_old_instances_again(void **state)
{
	struct world *w = *state;
	struct service_conf *old = run_then_upgrade(w, "instances = 3\n", "instances = 3\nupgrade = rolling:1\n");
	rolling_step(w, 0);
	reap(w, nth(4), W_EXITCODE(2, 0));
	expect_new_exit(w, 1, nth(4), "exited with status 2");
	expect_rolled_back(w, old, "web[10004] gen 2: exited with status 2 before it was ready");
	expect_stop_signal(w, 2, 0, nth(3), 10);
	expect_proc(w, LC_SPAWNED, 1, 0, nth(5)); // the retired instance 0 of gen 1
	expect_rollback_over(w);
	assert_true(has_var(child_of(w, nth(5)), "BATON_GENERATION=1"));
	assert_string_equal(child_of(w, nth(5))->argv[0], "/usr/bin/app-v1");
	expect_no_signal(w);
}

/* An upgrade to gen number, ready = none: done once its one process execs. */
static void upgrade_done(struct world *w, unsigned number, const char *keys)
{
	begin_upgrade(w, number, keys);
	pid_t pid = nth((unsigned)w->fake.nchildren - 1);
	make_ready(w, number, 0, pid);
	expect_upgrade(w, UPGRADE_DONE, number, 0);
	expect_stop_signal(w, number - 1, 0, pid - 1, 10);
}

/* Generation number of svc exists and has role. */
static void assert_role(const struct service *svc, unsigned number, enum gen_role role)
{
	struct list *pos;
	list_for_each(pos, &svc->gens) {
		const struct generation *gen = container_of(pos, struct generation, link);
		if (gen->number == number) {
			assert_string_equal(generation_role_name(gen->role), generation_role_name(role));
			return;
		}
	}
	fail_msg("no gen %u", number);
}

static void second_upgrade_is_refused_while_the_first_is_in_progress(void **state)
{
	struct world *w = *state;
	run(w, "ready = notify\n");
	begin_upgrade(w, 2, "ready = notify\n");
	char err[256];
	assert_int_equal(service_upgrade(w->svc, define(w, 3, ""), NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "an upgrade of web to gen 2 is already in progress");
	expect_no_event(w);
}

static void second_upgrade_while_the_first_one_drains(void **state)
{
	struct world *w = *state;
	run(w, "");
	upgrade_done(w, 2, "");
	expect_over(w, LC_UPGRADE_OVER, true, NULL);
	upgrade_done(w, 3, "");
	expect_over(w, LC_UPGRADE_OVER, true, NULL);
	expect_no_event(w);
	expect_no_signal(w);
	assert_role(w->svc, 1, GEN_DRAINING);
	assert_role(w->svc, 2, GEN_DRAINING);
	assert_role(w->svc, 3, GEN_CURRENT);
	last_exits(w, 2, 0, nth(1));
	last_exits(w, 1, 0, nth(0));
	assert_int_equal(w->svc->upgrades, 2);
}

static void max_draining_kills_the_oldest_draining_generation(void **state)
{
	struct world *w = *state;
	w->fake.conns = 4;
	run(w, "max_draining = 1\n");
	upgrade_done(w, 2, "max_draining = 1\n");
	expect_over(w, LC_UPGRADE_OVER, true, NULL);
	upgrade_done(w, 3, "max_draining = 1\n");
	expect(w, LC_MAX_DRAINING, 1, 0);
	expect_over(w, LC_UPGRADE_OVER, true, NULL);
	const struct rec *r =
		expect_sigkill(w, 1, nth(0), nth(0), "more than max_draining generations");
	assert_int_equal(r->conns, 4);
	expect_no_event(w);
	reap(w, nth(0), W_EXITCODE(0, SIGKILL));
	r = expect_stopped_exit(w, LC_KILLED, 1, 0, nth(0));
	assert_true(r->killed_early);
	assert_int_equal(r->conns, 4);
	expect(w, LC_DRAINED, 1, 0);
	expect_no_event(w);
	assert_int_equal(w->svc->kills, 1);
}

static void stop_aborts_an_upgrade_and_drains_every_generation(void **state)
{
	struct world *w = *state;
	static const char why[] = "the service was stopped during the upgrade";
	run(w, "ready = notify\n");
	begin_upgrade(w, 2, "ready = notify\n");
	service_stop(w->svc);
	assert_string_equal(expect_upgrade(w, UPGRADE_ABORTED, 2, 1)->reason, why);
	expect_over(w, LC_UPGRADE_OVER, false, why);
	assert_int_equal(expect(w, LC_STOP, 0, 0)->count, 2);
	expect_stop_signal(w, 1, 0, nth(0), 10);
	expect_stop_signal(w, 2, 0, nth(1), 10);
	expect_no_event(w);
	last_exits(w, 2, 0, nth(1));
	stopped_exits(w, 1, 0, nth(0));
	expect_service_stopped(w, 1);
	assert_false(w->svc->upgrade.active);
}

/* ---- a start that fails before any program runs ---- */

static void spawn_failure_is_retried_with_a_growing_delay(void **state)
{
	struct world *w = *state;
	w->fake.spawn_errno = EAGAIN;
	w->svc = service_create(&w->lc, define(w, 1, "restart_delay = 1s\n"));
	service_start(w->svc);
	expect_over(w, LC_STOP_OVER, false, "the service was started again");
	expect(w, LC_GEN_STARTED, 1, 0);
	const struct rec *r = expect_proc(w, LC_SPAWN_FAILED, 1, 0, 0);
	assert_string_equal(r->reason, "fork: Resource temporarily unavailable");
	assert_float_equal(r->secs, 1, EPS);
	advance(w, 1);
	assert_float_equal(expect_proc(w, LC_SPAWN_FAILED, 1, 0, 0)->secs, 2, EPS);
	w->fake.spawn_errno = 0;
	advance(w, 1.999);
	expect_no_event(w);
	advance(w, 0.001);
	expect_proc(w, LC_SPAWNED, 1, 0, nth(0));
	expect_no_event(w);
}

static void spawn_failure_in_an_upgrade_rolls_it_back(void **state)
{
	struct world *w = *state;
	run(w, "");
	struct service_conf *old = w->svc->conf;
	w->fake.spawn_errno = EAGAIN;
	upgrade(w, 2, "");
	expect_upgrade(w, UPGRADE_STARTED, 2, 1);
	const struct rec *r = expect_proc(w, LC_SPAWN_FAILED, 2, 0, 0);
	assert_true(r->secs < 0);
	expect_rolled_back(w, old, "web instance 0 gen 2: cannot start: "
				   "fork: Resource temporarily unavailable");
	expect(w, LC_DRAINED, 2, 0);
	expect_rollback_over(w);
	expect_no_signal(w);
}

/* ---- health: checks and the watchdog ---- */

/* The last child spawned is a check of process pid, running program. */
static pid_t expect_check_spawned(struct world *w, pid_t pid, const char *program)
{
	const struct fake *f = &w->fake;
	assert_true(f->nchildren > 0);
	const struct child *c = &f->children[f->nchildren - 1];
	char var[64];
	snprintf(var, sizeof(var), "BATON_PID=%d", (int)pid);
	assert_true(c->check);
	assert_string_equal(c->argv[0], program);
	assert_true(has_var(c, var));
	return c->pid;
}

/* The last child spawned is a process of the service: its pid. */
static pid_t last_spawned(struct world *w)
{
	const struct child *c = &w->fake.children[w->fake.nchildren - 1];
	assert_false(c->check);
	return c->pid;
}

/* The check writes output, closes it and exits with status. */
static void check_exits(struct world *w, pid_t check, int status, const char *output)
{
	struct child *c = child_of(w, check);
	size_t n = strlen(output);
	assert_true(c->check);
	assert_int_equal(write(c->out_w, output, n), (ssize_t)n);
	close_fd(&c->out_w);
	close_fd(&c->exec_w);
	reap(w, check, status);
}

/* The next event: a check of gen 1's process pid ended, ok or not, with its count and reason. */
static void expect_check_ended(struct world *w, unsigned instance, pid_t pid, bool ok, unsigned count,
	bool readiness, const char *reason)
{
	const struct rec *r = expect_proc(w, LC_CHECK, 1, instance, pid);
	assert_int_equal(r->ok, ok);
	assert_int_equal(r->count, count);
	assert_int_equal(r->stopped, readiness);
	assert_string_equal(r->reason, reason);
}

static void readiness_check_passes_at_its_third_run(void **state)
{
	struct world *w = *state;
	start(w, "ready = exec:/usr/bin/check-ready --now\ncheck_interval = 2s\n");
	assert_false(has_name(child_of(w, nth(0)), "NOTIFY_SOCKET"));
	advance(w, 1);
	assert_int_equal(w->fake.nchildren, 1); // no check before the exec
	exec_ok(w, nth(0));
	pid_t check = expect_check_spawned(w, nth(0), "/usr/bin/check-ready");
	const struct child *c = child_of(w, check);
	assert_string_equal(c->argv[1], "--now");
	assert_null(c->argv[2]);
	assert_int_equal(c->nfds, 0);
	assert_true(has_var(c, "BATON_SERVICE=web"));
	assert_true(has_var(c, "BATON_GENERATION=1"));
	assert_true(has_var(c, "BATON_INSTANCE=0"));
	assert_false(has_name(c, "LISTEN_FDS"));
	check_exits(w, check, W_EXITCODE(1, 0), "connection refused\nsecond line\n");
	expect_check_ended(w, 0, nth(0), false, 1, true, "exited with status 1: connection refused");
	expect_no_event(w);
	advance(w, 1.999);
	assert_int_equal(w->fake.nchildren, 2);
	advance(w, 0.001);
	check = expect_check_spawned(w, nth(0), "/usr/bin/check-ready");
	check_exits(w, check, W_EXITCODE(0, SIGSEGV), "");
	expect_check_ended(w, 0, nth(0), false, 2, true, "killed by signal 11 (SEGV)");
	advance(w, 2);
	check = expect_check_spawned(w, nth(0), "/usr/bin/check-ready");
	check_exits(w, check, W_EXITCODE(0, 0), "up\n");
	expect_check_ended(w, 0, nth(0), true, 2, true, "up");
	assert_float_equal(expect_proc(w, LC_READY, 1, 0, nth(0))->secs, 5, 1e-3);
	expect_no_event(w);
	assert_string_equal(service_state_name(w->svc), "running");
	// Without check = exec:, a ready process is checked no more.
	advance(w, 10);
	assert_int_equal(w->fake.nchildren, 4);
	expect_no_event(w);
	expect_no_signal(w);
}

static void ready_timeout_quotes_the_last_check(void **state)
{
	struct world *w = *state;
	start(w, "ready = exec:/usr/bin/check-ready\nready_timeout = 2500ms\ncheck_interval = 1s\n"
		 "restart_delay = 1s\n");
	exec_ok(w, nth(0));
	for (unsigned i = 1; i <= 2; i++) {
		pid_t check = expect_check_spawned(w, nth(0), "/usr/bin/check-ready");
		check_exits(w, check, W_EXITCODE(2, 0), "db: connection refused\n");
		expect_check_ended(w, 0, nth(0), false, i, true,
			"exited with status 2: db: connection refused");
		advance(w, 1);
	}
	// The third run is still going at the deadline: it is killed, unheard.
	pid_t check = expect_check_spawned(w, nth(0), "/usr/bin/check-ready");
	advance(w, 0.499);
	expect_no_event(w);
	expect_no_signal(w);
	advance(w, 0.001);
	const struct rec *r = expect_proc(w, LC_UNREADY, 1, 0, nth(0));
	assert_string_equal(r->reason, "not ready after 2500ms (ready_timeout); "
				       "its check: exited with status 2: db: connection refused");
	expect_signal(w, -check, SIGKILL);
	expect_signal(w, check, SIGKILL);
	expect_stop_signal(w, 1, 0, nth(0), 10);
	expect_no_event(w);
	check_exits(w, check, W_EXITCODE(0, SIGKILL), "");
	expect_no_event(w);
	assert_int_equal(w->lc.checks_running, 0);
	reap(w, nth(0), W_EXITCODE(0, SIGTERM));
	r = expect_proc(w, LC_RESTARTING, 1, 0, nth(0));
	assert_string_equal(r->reason, "not ready after 2500ms (ready_timeout); its check: exited "
				       "with status 2: db: connection refused, then killed by "
				       "signal 15 (TERM)");
	expect_no_event(w);
}

static const char live_keys[] = "ready = notify\ncheck = exec:/usr/bin/check-live\n"
				"check_interval = 1s\ncheck_failures = 2\nrestart_delay = 500ms\n"
				"stop_delay = 2s\nstop_grace = 5s\n";

/* A check_interval passes: the ready process pid's next liveness check runs. */
static pid_t live_check(struct world *w, pid_t pid)
{
	advance(w, 1);
	return expect_check_spawned(w, pid, "/usr/bin/check-live");
}

static void failing_checks_replace_the_process_ready_first(void **state)
{
	struct world *w = *state;
	run(w, live_keys);
	advance(w, 0.999);
	assert_int_equal(w->fake.nchildren, 1);
	advance(w, 0.001);
	pid_t check = expect_check_spawned(w, nth(0), "/usr/bin/check-live");
	check_exits(w, check, W_EXITCODE(0, 0), "fine\n");
	expect_check_ended(w, 0, nth(0), true, 0, false, "fine");
	for (unsigned i = 1; i <= 2; i++) {
		check_exits(w, live_check(w, nth(0)), W_EXITCODE(1, 0), "HTTP 503\n");
		expect_check_ended(w, 0, nth(0), false, i, false, "exited with status 1: HTTP 503");
	}
	const struct rec *r = expect_proc(w, LC_UNHEALTHY, 1, 0, nth(0));
	assert_string_equal(r->reason, "check failed 2 times in a row: exited with status 1: HTTP 503");
	assert_float_equal(r->secs, 0.5, EPS);
	assert_true(proc_of(w, nth(0))->unhealthy);
	assert_int_equal(w->svc->unhealthy, 1);
	expect_no_event(w);
	advance(w, 0.499);
	expect_no_event(w);
	advance(w, 0.001);
	pid_t repl = last_spawned(w);
	expect_proc(w, LC_SPAWNED, 1, 0, repl);
	// The unhealthy one serves, unchecked, until its replacement is ready.
	size_t spawned = w->fake.nchildren;
	advance(w, 5);
	expect_no_event(w);
	expect_no_signal(w);
	assert_int_equal(w->fake.nchildren, spawned);
	make_ready(w, 1, 0, repl);
	assert_float_equal(expect_proc(w, LC_STOPPING, 1, 0, nth(0))->secs, 2, EPS);
	expect_no_event(w);
	advance(w, 2);
	assert_int_equal(expect_proc(w, LC_SIGNALLED, 1, 0, nth(0))->signo, SIGTERM);
	expect_signal(w, nth(0), SIGTERM);
	expect_signal(w, nth(0), SIGCONT);
	expect_no_signal(w);
	stopped_exits(w, 1, 0, nth(0));
	expect_no_event(w);
	// The replacement is checked in its turn.
	expect_check_spawned(w, repl, "/usr/bin/check-live");
	assert_int_equal(w->svc->restarts, 0);
	assert_string_equal(service_state_name(w->svc), "running");
}

static void unhealthy_process_exiting_before_its_replacement_is_not_restarted(void **state)
{
	struct world *w = *state;
	run(w, "ready = notify\ncheck = exec:/usr/bin/check-live\ncheck_interval = 1s\n"
	       "check_failures = 1\nrestart_delay = 500ms\n");
	check_exits(w, live_check(w, nth(0)), W_EXITCODE(1, 0), "");
	expect_check_ended(w, 0, nth(0), false, 1, false, "exited with status 1");
	expect_proc(w, LC_UNHEALTHY, 1, 0, nth(0));
	advance(w, 0.5);
	pid_t repl = last_spawned(w);
	expect_proc(w, LC_SPAWNED, 1, 0, repl);
	reap(w, nth(0), W_EXITCODE(1, 0));
	const struct rec *r = expect_proc(w, LC_EXITED, 1, 0, nth(0));
	assert_true(r->replaced);
	assert_false(r->stopped);
	assert_true(r->failed);
	expect_no_event(w);
	advance(w, 10);
	expect_no_event(w);
	assert_int_equal(last_spawned(w), repl);
	make_ready(w, 1, 0, repl);
	expect_no_event(w);
	expect_no_signal(w);
	assert_int_equal(w->svc->restarts, 0);
	assert_string_equal(service_state_name(w->svc), "running");
}

static void check_outliving_check_timeout_is_killed_with_its_group(void **state)
{
	struct world *w = *state;
	run(w, "ready = notify\ncheck = exec:/usr/bin/check-live\ncheck_interval = 1s\n"
	       "check_timeout = 3s\ncheck_failures = 1\n");
	pid_t check = live_check(w, nth(0));
	struct child *c = child_of(w, check);
	assert_int_equal(write(c->out_w, "still waiting\nfor", 17), 17);
	settle(w);
	advance(w, 2.999);
	expect_no_signal(w);
	expect_no_event(w);
	advance(w, 0.001);
	expect_signal(w, -check, SIGKILL);
	expect_signal(w, check, SIGKILL);
	expect_no_signal(w);
	expect_no_event(w);
	check_exits(w, check, W_EXITCODE(0, SIGKILL), "");
	expect_check_ended(w, 0, nth(0), false, 1, false, "timed out after 3s: still waiting");
	const struct rec *r = expect_proc(w, LC_UNHEALTHY, 1, 0, nth(0));
	assert_string_equal(r->reason, "check failed 1 time in a row: timed out after 3s: "
				       "still waiting");
	assert_int_equal(w->lc.checks_running, 0);
}

static void at_most_32_checks_run_at_once(void **state)
{
	struct world *w = *state;
	start(w, "instances = 33\nready = exec:/usr/bin/check-ready\ncheck_interval = 1s\n");
	for (unsigned i = 0; i < 33; i++)
		exec_ok(w, nth(i));
	assert_int_equal(w->fake.nchildren, 33 + 32);
	assert_int_equal(w->lc.checks_running, 32);
	for (unsigned i = 0; i < 32; i++) {
		char var[64];
		snprintf(var, sizeof(var), "BATON_PID=%d", (int)nth(i));
		assert_true(child_of(w, nth(33 + i))->check);
		assert_true(has_var(child_of(w, nth(33 + i)), var));
	}
	// The 33rd waits for a place, however long the others take.
	advance(w, 1);
	assert_int_equal(w->fake.nchildren, 65);
	expect_no_event(w);
	check_exits(w, nth(33), W_EXITCODE(0, 0), "");
	expect_check_ended(w, 0, nth(0), true, 0, true, "");
	expect_proc(w, LC_READY, 1, 0, nth(0));
	expect_no_event(w);
	assert_int_equal(w->fake.nchildren, 66);
	expect_check_spawned(w, nth(32), "/usr/bin/check-ready");
	assert_int_equal(w->lc.checks_running, 32);
}

static void unhealthy_process_of_an_upgrade_rolls_it_back(void **state)
{
	struct world *w = *state;
	run(w, "instances = 2\n");
	struct service_conf *old = w->svc->conf;
	begin_upgrade(w, 2, "instances = 2\nupgrade = rolling:1\ncheck = exec:/usr/bin/check-live\n"
			    "check_interval = 1s\ncheck_failures = 1\n");
	make_ready(w, 2, 0, nth(2));
	expect_stop_signal(w, 1, 0, nth(0), 10);
	expect_upgrade(w, UPGRADE_BATCH, 2, 1);
	expect_proc(w, LC_SPAWNED, 2, 1, nth(3));
	pid_t check = live_check(w, nth(2));
	check_exits(w, check, W_EXITCODE(1, 0), "HTTP 500\n");
	const struct rec *r = expect_proc(w, LC_CHECK, 2, 0, nth(2));
	assert_false(r->ok);
	r = expect_proc(w, LC_UNHEALTHY, 2, 0, nth(2));
	assert_true(r->secs < 0);
	expect_rolled_back(w, old, "web[10002] gen 2: unhealthy: check failed 1 time in a row: "
				   "exited with status 1: HTTP 500");
	expect_stop_signal(w, 2, 0, nth(2), 10);
	expect_stop_signal(w, 2, 1, nth(3), 10);
	expect_proc(w, LC_SPAWNED, 1, 0, nth(5)); // the retired instance 0 of gen 1
	expect_rollback_over(w);
	assert_int_equal(w->svc->unhealthy, 1);
}

static void watchdog_needs_a_ping_each_period_once_ready(void **state)
{
	struct world *w = *state;
	start(w, "ready = notify\nwatchdog = 2s\nrestart_delay = 100ms\n");
	const struct child *c = child_of(w, nth(0));
	assert_true(has_var(c, "WATCHDOG_USEC=2000000"));
	assert_true(has_name(c, "WATCHDOG_PID"));
	assert_true(has_var(c, "NOTIFY_SOCKET=" NOTIFY_PATH));
	exec_ok(w, nth(0));
	struct proc *p = proc_of(w, nth(0));
	// No watchdog before it is ready, WATCHDOG=trigger included.
	proc_watchdog(p, true);
	advance(w, 5);
	expect_no_event(w);
	proc_set_ready(p);
	expect_proc(w, LC_READY, 1, 0, nth(0));
	for (int i = 0; i < 3; i++) {
		advance(w, 1.999);
		proc_watchdog(p, false);
	}
	advance(w, 1.999);
	expect_no_event(w);
	advance(w, 0.001);
	const struct rec *r = expect_proc(w, LC_UNHEALTHY, 1, 0, nth(0));
	assert_string_equal(r->reason, "no WATCHDOG=1 within 2s (watchdog)");
	assert_float_equal(r->secs, 0.1, EPS);
	// Too late: pings change nothing now.
	proc_watchdog(p, false);
	proc_watchdog(p, true);
	expect_no_event(w);
	advance(w, 0.1);
	expect_proc(w, LC_SPAWNED, 1, 0, nth(1));
	make_ready(w, 1, 0, nth(1));
	expect_stop_signal(w, 1, 0, nth(0), 10);
	expect_no_event(w);
	// WATCHDOG=trigger: unhealthy at once, the backoff growing.
	proc_watchdog(proc_of(w, nth(1)), true);
	r = expect_proc(w, LC_UNHEALTHY, 1, 0, nth(1));
	assert_string_equal(r->reason, "WATCHDOG=trigger");
	assert_float_equal(r->secs, 0.2, EPS);
	expect_no_event(w);
}

/* ---- the end ---- */

static void destroy_ends_the_waits_and_frees_everything(void **state)
{
	struct world *w = *state;
	run(w, "ready = notify\n");
	upgrade(w, 2, "ready = notify\n");
	expect_upgrade(w, UPGRADE_STARTED, 2, 1);
	expect_proc(w, LC_SPAWNED, 2, 0, nth(1));
	service_destroy(w->svc);
	w->svc = NULL;
	expect_over(w, LC_UPGRADE_OVER, false, "batond is exiting");
	expect_over(w, LC_STOP_OVER, false, "batond is exiting");
	expect_no_event(w);
	expect_no_signal(w);
	assert_null(lifecycle_proc(&w->lc, nth(0)));
	assert_int_equal(w->fake.listeners[0].users, 0);
	assert_int_equal(w->fake.listeners[1].users, 0);
}


/* ---- canaries and gates ---- */

/* Starts an upgrade of web to gen 2 with options; it must be accepted. */
static void upgrade_with(struct world *w, const char *keys, const struct upgrade_options *o)
{
	char err[256] = "";
	if (service_upgrade(w->svc, define(w, 2, keys), o, err, sizeof(err)) < 0)
		fail_msg("upgrade refused: %s", err);
}

static const char *phase(struct world *w)
{
	static char buf[64];
	return upgrade_phase(w->svc, buf, sizeof(buf));
}

/* 3 old processes, then canaries of gen 2 from nth(3) on, ready: paused. */
static void paused_at_canaries(struct world *w, const char *keys, unsigned canary,
	double observe)
{
	run(w, "instances = 3\n");
	struct upgrade_options o = {.canary = canary, .observe = observe};
	upgrade_with(w, keys, &o);
	const struct rec *r = expect_upgrade(w, UPGRADE_STARTED, 2, 1);
	assert_int_equal(r->count, canary);
	for (unsigned i = 0; i < canary; i++)
		expect_proc(w, LC_SPAWNED, 2, i, nth(3 + i));
	expect_no_event(w);
	assert_string_equal(phase(w), "canary");
	for (unsigned i = 0; i < canary; i++)
		make_ready(w, 2, i, nth(3 + i));
	expect_upgrade(w, UPGRADE_PAUSED, 2, 1);
	expect_no_event(w);
	expect_no_signal(w);
	assert_string_equal(phase(w), "paused");
}

static void a_canary_pauses_beside_every_old_process_until_continue(void **state)
{
	struct world *w = *state;
	paused_at_canaries(w, "instances = 3\nupgrade = rolling:1\n", 1, 0);
	// Paused for good: nothing old stops, nothing new starts.
	advance(w, 3600);
	expect_no_event(w);
	expect_no_signal(w);
	char err[256];
	assert_int_equal(service_upgrade(w->svc, define(w, 3, ""), NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "paused at its canaries: batonctl upgrade --continue web"));
	assert_int_equal(service_upgrade_continue(w->svc, "asked", err, sizeof(err)), 0);
	const struct rec *r = expect_upgrade(w, UPGRADE_CONTINUED, 2, 1);
	assert_string_equal(r->reason, "asked");
	// The canary counts as started: one old process stops for it, the next batch starts.
	expect_stop_signal(w, 1, 0, nth(0), 10);
	r = expect_upgrade(w, UPGRADE_BATCH, 2, 1);
	assert_int_equal(r->spawned, 2);
	expect_proc(w, LC_SPAWNED, 2, 1, nth(4));
	expect_no_event(w);
	assert_string_equal(phase(w), "batch 2 of 3");
	rolling_step(w, 1);
	rolling_step(w, 2);
	expect_upgrade(w, UPGRADE_DONE, 2, 0);
	expect_over(w, LC_UPGRADE_OVER, true, NULL);
	assert_int_equal(service_upgrade_continue(w->svc, "late", err, sizeof(err)), -1);
	assert_string_equal(err, "web has no upgrade in progress");
}

static void abort_drains_the_canaries_and_the_old_generation_stays_whole(void **state)
{
	struct world *w = *state;
	paused_at_canaries(w, "instances = 3\n", 2, 0);
	char err[256];
	assert_int_equal(service_upgrade_abort(w->svc, "by hand", err, sizeof(err)), 0);
	const struct rec *r = expect_upgrade(w, UPGRADE_ABORTED, 2, 1);
	assert_string_equal(r->reason, "by hand");
	expect_stop_signal(w, 2, 0, nth(3), 10);
	expect_stop_signal(w, 2, 1, nth(4), 10);
	expect_over(w, LC_UPGRADE_OVER, false, "upgrade to gen 2 aborted: by hand");
	expect_no_event(w);
	assert_int_equal(w->svc->rollbacks, 0);
	assert_int_equal(w->svc->current->number, 1);
	assert_int_equal(generation_count(w->svc->current, PROC_READY), 3);
	stopped_exits(w, 2, 0, nth(3));
	last_exits(w, 2, 1, nth(4));
	expect_no_signal(w);
}

static void observe_goes_on_by_itself_when_no_canary_failed(void **state)
{
	struct world *w = *state;
	paused_at_canaries(w, "instances = 3\n", 1, 30);
	advance(w, 30 - 0.001);
	expect_no_event(w);
	advance(w, 0.001);
	const struct rec *r = expect_upgrade(w, UPGRADE_CONTINUED, 2, 1);
	assert_string_equal(r->reason, "observed for 30s: no canary failed");
	r = expect_upgrade(w, UPGRADE_BATCH, 2, 1);
	assert_int_equal(r->spawned, 3);
	expect_proc(w, LC_SPAWNED, 2, 1, nth(4));
	expect_proc(w, LC_SPAWNED, 2, 2, nth(5));
	expect_no_event(w);
	assert_string_equal(phase(w), "batch 2 of 2");
}

static void a_canary_that_exits_while_observed_rolls_the_upgrade_back(void **state)
{
	struct world *w = *state;
	paused_at_canaries(w, "instances = 3\n", 1, 30);
	advance(w, 10);
	reap(w, nth(3), W_EXITCODE(3, 0));
	expect_proc(w, LC_EXITED, 2, 0, nth(3));
	const struct rec *r = expect_upgrade(w, UPGRADE_ROLLED_BACK, 2, 1);
	assert_string_equal(r->reason, "web[10003] gen 2: exited with status 3 during the upgrade");
	expect(w, LC_DRAINED, 2, 0);
	expect_over(w, LC_UPGRADE_OVER, false,
		"upgrade to gen 2 rolled back: web[10003] gen 2: exited with status 3 during the "
		"upgrade");
	// The observation ends with it.
	advance(w, 30);
	expect_no_event(w);
	expect_no_signal(w);
	assert_int_equal(generation_count(w->svc->current, PROC_READY), 3);
}

static char *gate_words[] = {"/usr/libexec/gate", "--max-errors", "1", NULL};

/* A rolling:1 upgrade of 3 with a gate: the first batch is ready, its gate runs. */
static pid_t gated_first_batch(struct world *w)
{
	run(w, "instances = 3\n");
	struct upgrade_options o = {.gate = gate_words, .ngate = 3};
	upgrade_with(w, "instances = 3\nupgrade = rolling:1\n", &o);
	expect_upgrade(w, UPGRADE_STARTED, 2, 1);
	expect_proc(w, LC_SPAWNED, 2, 0, nth(3));
	make_ready(w, 2, 0, nth(3));
	expect_upgrade(w, UPGRADE_GATING, 2, 1);
	expect_no_event(w);
	expect_no_signal(w);
	assert_string_equal(phase(w), "gating");
	const struct child *g = &w->fake.children[w->fake.nchildren - 1];
	assert_true(g->check);
	assert_string_equal(g->argv[0], "/usr/libexec/gate");
	assert_string_equal(g->argv[2], "1");
	assert_true(has_var(g, "BATON_SERVICE=web"));
	assert_true(has_var(g, "BATON_OLD_GEN=1"));
	assert_true(has_var(g, "BATON_NEW_GEN=2"));
	assert_true(has_var(g, "BATON_OLD_PIDS=10000 10001 10002"));
	assert_true(has_var(g, "BATON_NEW_PIDS=10003"));
	assert_true(has_var(g, "BATON_UPGRADE_PHASE=batch 1 of 3"));
	return g->pid;
}

static void a_gate_that_passes_lets_each_batch_go_on(void **state)
{
	struct world *w = *state;
	pid_t gate = gated_first_batch(w);
	check_exits(w, gate, W_EXITCODE(0, 0), "error rate 0.1%\n");
	const struct rec *r = expect_upgrade(w, UPGRADE_GATE_PASSED, 2, 1);
	assert_string_equal(r->reason, "error rate 0.1%");
	expect_stop_signal(w, 1, 0, nth(0), 10);
	expect_upgrade(w, UPGRADE_BATCH, 2, 1);
	pid_t next = last_spawned(w);
	expect_proc(w, LC_SPAWNED, 2, 1, next);
	make_ready(w, 2, 1, next);
	expect_upgrade(w, UPGRADE_GATING, 2, 1);
	expect_no_signal(w);
}

static void a_gate_that_fails_rolls_everything_back_with_its_last_line(void **state)
{
	struct world *w = *state;
	pid_t gate = gated_first_batch(w);
	check_exits(w, gate, W_EXITCODE(1, 0), "checking\nerror rate 7% above 1%\n");
	const struct rec *r = expect_upgrade(w, UPGRADE_ROLLED_BACK, 2, 1);
	assert_string_equal(r->reason, "gate: error rate 7% above 1%");
	expect_stop_signal(w, 2, 0, nth(3), 10);
	expect_over(w, LC_UPGRADE_OVER, false,
		"upgrade to gen 2 rolled back: gate: error rate 7% above 1%");
	expect_no_event(w);
	assert_int_equal(w->svc->rollbacks, 1);
	assert_int_equal(generation_count(w->svc->current, PROC_READY), 3);
}

static void a_gate_that_runs_too_long_is_killed_and_rolls_back(void **state)
{
	struct world *w = *state;
	pid_t gate = gated_first_batch(w);
	advance(w, CONFIG_UPGRADE_GATE_TIMEOUT - 0.001);
	expect_no_signal(w);
	advance(w, 0.001);
	expect_signal(w, -gate, SIGKILL);
	expect_signal(w, gate, SIGKILL);
	check_exits(w, gate, W_EXITCODE(0, SIGKILL), "still looking");
	const struct rec *r = expect_upgrade(w, UPGRADE_ROLLED_BACK, 2, 1);
	assert_string_equal(r->reason, "gate timed out after 1m: still looking");
}


#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(libev_timers_run_on_the_fake_clock),
		T(first_start_spawns_each_instance_with_its_sockets_and_environment),
		T(notify_socket_is_given_with_ready_notify),
		T(ready_none_is_ready_once_exec_succeeded),
		T(ready_notify_is_ready_on_ready_1_not_on_exec),
		T(ready_fd_needs_a_newline_on_its_pipe),
		T(ready_delay_is_ready_when_the_delay_has_passed),
		T(ready_delay_waits_for_the_exec),
		T(ready_timeout_stops_and_replaces_the_process),
		T(crash_restarts_with_a_doubling_delay_up_to_the_max),
		T(a_long_run_starts_the_delay_over),
		T(crash_loop_fails_the_service),
		T(exec_failure_is_a_failed_exit),
		T(restart_never_fails_the_service_with_its_last_process),
		T(stop_signal_comes_after_stop_delay),
		T(sigkill_comes_exactly_at_the_end_of_stop_grace),
		T(killed_process_is_told_after_its_sigkill),
		T(exit_by_itself_as_sigkill_is_sent_is_no_kill),
		T(sigkill_reaped_before_the_loop_idles_is_told_first),
		T(stop_signal_kill_sends_no_sigcont),
		T(exit_after_the_stop_signal_ends_the_stop),
		T(start_while_stopping_overrides_the_stop),
		T(a_canary_pauses_beside_every_old_process_until_continue),
		T(abort_drains_the_canaries_and_the_old_generation_stays_whole),
		T(observe_goes_on_by_itself_when_no_canary_failed),
		T(a_canary_that_exits_while_observed_rolls_the_upgrade_back),
		T(a_gate_that_passes_lets_each_batch_go_on),
		T(a_gate_that_fails_rolls_everything_back_with_its_last_line),
		T(a_gate_that_runs_too_long_is_killed_and_rolls_back),
		T(strays_are_killed_when_their_grace_ends_and_the_stop_waits_for_the_cgroup),
		T(strays_that_exit_in_their_grace_end_the_stop_at_once),
		T(an_empty_cgroup_ends_the_generation_with_its_last_process),
		T(the_deadline_of_a_drain_kills_its_whole_cgroup),
		T(start_nice_lowers_a_start_until_readiness_gives_the_priority_back),
		T(start_nice_is_not_used_when_the_priority_could_not_come_back),
		T(a_sigkill_batond_did_not_send_with_an_oom_kill_counted_is_told_as_such),
		T(stop_delay_is_only_for_ready_processes),
		T(stop_drops_a_process_waiting_to_restart_at_once),
		T(main_pid_takes_the_stop_signal_and_sigkill),
		T(upgrade_all_stops_the_old_generation_once_every_new_process_is_ready),
		T(counts_follow_an_upgrade),
		T(rolling_upgrade_stops_an_old_process_per_new_one_ready),
		T(upgrade_rolls_back_when_a_ready_new_process_exits),
		T(upgrade_rolls_back_when_a_new_process_exits_before_ready),
		T(upgrade_rolls_back_when_a_new_process_is_not_ready_in_time),
		T(upgrade_rolls_back_when_exec_fails),
		T(rolling_rollback_starts_the_retired_old_instances_again),
		T(second_upgrade_is_refused_while_the_first_is_in_progress),
		T(second_upgrade_while_the_first_one_drains),
		T(max_draining_kills_the_oldest_draining_generation),
		T(stop_aborts_an_upgrade_and_drains_every_generation),
		T(spawn_failure_is_retried_with_a_growing_delay),
		T(spawn_failure_in_an_upgrade_rolls_it_back),
		T(readiness_check_passes_at_its_third_run),
		T(ready_timeout_quotes_the_last_check),
		T(failing_checks_replace_the_process_ready_first),
		T(unhealthy_process_exiting_before_its_replacement_is_not_restarted),
		T(check_outliving_check_timeout_is_killed_with_its_group),
		T(at_most_32_checks_run_at_once),
		T(unhealthy_process_of_an_upgrade_rolls_it_back),
		T(watchdog_needs_a_ping_each_period_once_ready),
		T(destroy_ends_the_waits_and_frees_everything),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
