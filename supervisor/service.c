#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "conns.h"
#include "event.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "parse.h"
#include "protocol.h"
#include "spawn.h"

extern char **environ;

static void proc_spawn(struct proc *p);
static void proc_spawn_new(struct generation *gen, unsigned instance);
static void proc_stop(struct proc *p);
static void proc_remove(struct proc *p);
static void gen_check_empty(struct generation *gen);
static void upgrade_step(struct service *svc);
static void upgrade_rollback(struct service *svc, const char *reason);
static void upgrade_clear(struct service *svc);
static void service_fail(struct service *svc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static const char *const proc_state_names[] = {
	[PROC_WAITING] = "waiting",
	[PROC_STARTING] = "starting",
	[PROC_READY] = "ready",
	[PROC_STOPPING] = "stopping",
	[PROC_EXITED] = "exited",
	[PROC_KILLED] = "killed",
};

const char *proc_state_name(enum proc_state state)
{
	return proc_state_names[state];
}

static double now(const struct service *svc)
{
	(void)svc;
	return clock_now();
}

static struct ev_loop *loop_of(const struct proc *p)
{
	return p->gen->svc->d->loop;
}

// "web[4242] gen 3", or "web instance 0 gen 3" while there is no pid.
static const char *proc_label(const struct proc *p, char *buf, size_t len)
{
	if (p->pid > 0)
		snprintf(buf, len, "%s[%d] gen %u", p->gen->svc->name, (int)p->pid, p->gen->number);
	else
		snprintf(buf, len, "%s instance %u gen %u", p->gen->svc->name, p->instance,
			p->gen->number);
	return buf;
}

void describe_status(int status, char *out, size_t outlen)
{
	if (WIFEXITED(status)) {
		snprintf(out, outlen, "exited with status %d", WEXITSTATUS(status));
		return;
	}
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		const char *name = signal_name(sig);
		snprintf(out, outlen, "killed by signal %d (%s)%s", sig, name ? name : "?",
			WCOREDUMP(status) ? ", core dumped" : "");
		return;
	}
	snprintf(out, outlen, "ended with wait status 0x%x", (unsigned)status);
}

// Every change of state goes through here, so that the count of stopping
// processes (which drives drain progress events) stays right.
static void set_state(struct proc *p, enum proc_state state)
{
	struct daemon *d = p->gen->svc->d;
	if (p->state == PROC_STOPPING && state != PROC_STOPPING)
		d->nstopping--;
	else if (p->state != PROC_STOPPING && state == PROC_STOPPING)
		d->nstopping++;
	p->state = state;
	event_update_progress(d);
}

static struct daemon *daemon_of(const struct proc *p)
{
	return p->gen->svc->d;
}

// Adds exit=N or signal=NAME, and the exec error, to an event.
static void event_exit_fields(struct event *e, const struct proc *p)
{
	int st = p->wait_status;
	if (WIFEXITED(st))
		protocol_record_int(&e->buf, "exit", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		protocol_record_str(&e->buf, "signal",
			signal_name(WTERMSIG(st)) ? signal_name(WTERMSIG(st)) : "?");
	if (p->error)
		protocol_record_str(&e->buf, "error", p->error);
}

static void set_timer(struct proc *p, double after)
{
	// libev counts from the start of this loop iteration; a deadline counts
	// from now, so that a grace or a delay is never cut short.
	ev_now_update(loop_of(p));
	ev_timer_stop(loop_of(p), &p->timer);
	ev_timer_set(&p->timer, after < 0 ? 0 : after, 0);
	ev_timer_start(loop_of(p), &p->timer);
}

static void close_watched_fd(struct ev_loop *loop, ev_io *io)
{
	if (io->fd < 0)
		return;
	ev_io_stop(loop, io);
	close(io->fd);
	ev_io_set(io, -1, EV_READ);
}

static void replace_string(char **field, const char *value)
{
	char *copy = value ? strdup(value) : NULL;
	free(*field);
	*field = copy;
}

/* ---- generations ---- */

static struct generation *gen_create(struct service *svc, struct service_conf *conf,
	enum gen_role role)
{
	struct generation *gen = calloc(1, sizeof(*gen));
	if (!gen)
		return NULL;
	gen->svc = svc;
	gen->number = ++svc->last_gen;
	gen->conf = service_conf_ref(conf);
	// A generation holds on to the sockets it started with: a reload that
	// replaces or removes one leaves it open until this generation is gone.
	gen->listeners = calloc(conf->nsockets ? conf->nsockets : 1, sizeof(*gen->listeners));
	if (!gen->listeners) {
		service_conf_unref(gen->conf);
		free(gen);
		return NULL;
	}
	for (size_t i = 0; i < conf->nsockets; i++) {
		gen->listeners[i] = daemon_listener(svc->d, conf->sockets[i]);
		if (gen->listeners[i])
			gen->listeners[i]->users++;
	}
	gen->role = role;
	gen->started_at = now(svc);
	list_init(&gen->procs);
	list_insert_after(&svc->gens, &gen->link);
	return gen;
}

static void gen_destroy(struct generation *gen)
{
	struct service *svc = gen->svc;
	if (svc->current == gen)
		svc->current = NULL;
	if (svc->next == gen)
		svc->next = NULL;
	list_remove(&gen->link);
	for (size_t i = 0; i < gen->conf->nsockets; i++) {
		if (gen->listeners[i])
			daemon_listener_release(svc->d, gen->listeners[i]);
	}
	free(gen->listeners);
	service_conf_unref(gen->conf);
	free(gen);
}

static unsigned gen_count(const struct generation *gen, enum proc_state state)
{
	unsigned n = 0;
	struct list *pos;
	list_for_each(pos, &gen->procs) {
		if (container_of(pos, struct proc, link)->state == state)
			n++;
	}
	return n;
}

// Stops every process of gen; the generation ends with its last process.
static void gen_drain(struct generation *gen)
{
	struct service *svc = gen->svc;
	if (svc->current == gen)
		svc->current = NULL;
	if (svc->next == gen)
		svc->next = NULL;
	if (gen->role != GEN_DRAINING) {
		gen->role = GEN_DRAINING;
		gen->drain_at = now(svc);
	}
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &gen->procs) {
		struct proc *p = container_of(pos, struct proc, link);
		if (p->state == PROC_WAITING)
			proc_remove(p);
		else
			proc_stop(p);
	}
	gen_check_empty(gen);
}

// Starts a process for every instance of gen that has none running.
static void gen_fill(struct generation *gen)
{
	unsigned n = gen->conf->instances;
	for (unsigned i = 0; i < n; i++) {
		bool have = false;
		struct list *pos;
		list_for_each(pos, &gen->procs) {
			struct proc *p = container_of(pos, struct proc, link);
			if (p->instance == i && p->state != PROC_STOPPING)
				have = true;
		}
		if (!have)
			proc_spawn_new(gen, i);
	}
}

/* ---- processes ---- */

static void proc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void exec_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void ready_io_cb(struct ev_loop *loop, ev_io *w, int revents);

static struct proc *proc_create(struct generation *gen, unsigned instance)
{
	struct proc *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->gen = gen;
	p->instance = instance;
	p->state = PROC_WAITING;
	p->conns_at_kill = -1;
	ev_timer_init(&p->timer, proc_timer_cb, 0, 0);
	// Deadlines first: a SIGKILL due must not wait behind reaping or clients.
	ev_set_priority(&p->timer, EV_MAXPRI);
	ev_io_init(&p->exec_io, exec_io_cb, -1, EV_READ);
	ev_io_init(&p->ready_io, ready_io_cb, -1, EV_READ);
	backoff_init(&p->backoff);
	list_append(&gen->procs, &p->link);
	return p;
}

static void proc_clear_fds(struct proc *p)
{
	struct ev_loop *loop = loop_of(p);
	close_watched_fd(loop, &p->exec_io);
	close_watched_fd(loop, &p->ready_io);
}

// Frees a process that has no pid any more. The caller checks its generation.
static void proc_remove(struct proc *p)
{
	struct daemon *d = p->gen->svc->d;
	if (p->pid > 0 && pidmap_get(&d->procs, p->pid) == p)
		pidmap_remove(&d->procs, p->pid);
	if (p->state == PROC_STOPPING)
		set_state(p, PROC_EXITED);
	ev_timer_stop(d->loop, &p->timer);
	proc_clear_fds(p);
	list_remove(&p->link);
	free(p->error);
	free(p->status_text);
	free(p->fail_reason);
	free(p);
}

static void proc_spawn_new(struct generation *gen, unsigned instance)
{
	struct proc *p = proc_create(gen, instance);
	if (!p) {
		log_error("%s: cannot start instance %u: out of memory", gen->svc->name, instance);
		return;
	}
	proc_spawn(p);
}

static int collect_listeners(struct proc *p, struct listener **ls, char *err, size_t errlen)
{
	struct service_conf *conf = p->gen->conf;
	if (conf->nsockets > SPAWN_FDS_MAX) {
		snprintf(err, errlen, "more than %d sockets", SPAWN_FDS_MAX);
		return -1;
	}
	for (size_t i = 0; i < conf->nsockets; i++) {
		ls[i] = p->gen->listeners[i];
		if (!ls[i]) {
			snprintf(err, errlen, "socket %s is not open", conf->sockets[i]);
			return -1;
		}
	}
	return 0;
}

static void add_socket_env(struct spawn_env *env, struct listener **ls, size_t n, unsigned gen)
{
	char names[SPAWN_FDS_MAX * (PROTOCOL_NAME_MAX + 1) + 1] = "";
	char ports[SPAWN_FDS_MAX * 140 + 1] = "";
	size_t nl = 0, np = 0;
	for (size_t i = 0; i < n; i++) {
		nl += (size_t)snprintf(names + nl, sizeof(names) - nl, "%s%s", i ? ":" : "",
			ls[i]->name);
		np += (size_t)snprintf(ports + np, sizeof(ports) - np, "%s%s=%zu", i ? ";" : "",
			ls[i]->bound, 3 + i);
	}
	spawn_env_add(env, "LISTEN_FDS=%zu", n);
	spawn_env_add(env, "LISTEN_FDNAMES=%s", names);
	spawn_env_add(env, "SERVER_STARTER_PORT=%s", ports);
	spawn_env_add(env, "SERVER_STARTER_GENERATION=%u", gen);
	spawn_env_add(env, "EINHORN_FD_COUNT=%zu", n);
	for (size_t i = 0; i < n; i++)
		spawn_env_add(env, "EINHORN_FD_%zu=%zu", i, 3 + i);
}

// Builds the child's environment; returns the LISTEN_PID entry's index or -1.
static int build_env(struct proc *p, struct spawn_env *env, struct listener **ls)
{
	struct generation *gen = p->gen;
	struct service_conf *conf = gen->conf;
	int listen_pid = -1;
	spawn_env_init(env, environ, conf->env);
	if (conf->nsockets > 0) {
		listen_pid = spawn_env_listen_pid(env);
		add_socket_env(env, ls, conf->nsockets, gen->number);
	}
	struct notify *n = gen->svc->d->notify;
	if (conf->ready.mode == READY_NOTIFY && n)
		spawn_env_add(env, "NOTIFY_SOCKET=%s", notify_path(n));
	spawn_env_add(env, "BATON_SERVICE=%s", gen->svc->name);
	spawn_env_add(env, "BATON_GENERATION=%u", gen->number);
	spawn_env_add(env, "BATON_INSTANCE=%u", p->instance);
	return listen_pid;
}

// Retries a start that failed before any process ran (fork failed, a socket
// is missing): no start limit, so it succeeds once the cause is gone.
static void spawn_failed(struct proc *p, const char *msg)
{
	struct generation *gen = p->gen;
	struct service_conf *conf = gen->conf;
	char label[128], reason[512];
	proc_label(p, label, sizeof(label));
	replace_string(&p->error, msg);
	set_state(p, PROC_WAITING);
	p->pid = 0;
	if (gen->role == GEN_NEXT) {
		snprintf(reason, sizeof(reason), "%s: cannot start: %s", label, msg);
		struct event e;
		if (event_begin(&e, gen->svc->d, "spawn_failed", gen->svc, p)) {
			protocol_record_str(&e.buf, "error", msg);
			event_end(&e, gen->svc->d);
		}
		proc_remove(p);
		upgrade_rollback(gen->svc, reason);
		return;
	}
	struct backoff_policy policy = {conf->restart_delay, conf->restart_delay_max, 0, 0};
	double delay = conf->restart_delay;
	backoff_next(&p->backoff, &policy, now(gen->svc), 0, &delay);
	char when[32];
	format_duration(delay, when, sizeof(when));
	log_error("%s: cannot start: %s; retrying in %s", label, msg, when);
	set_timer(p, delay);
	struct event e;
	if (event_begin(&e, gen->svc->d, "spawn_failed", gen->svc, p)) {
		protocol_record_str(&e.buf, "error", msg);
		protocol_record_secs(&e.buf, "restart_in", delay);
		event_end(&e, gen->svc->d);
	}
}

static void spawn_request_ids(struct spawn_request *req, const struct service_conf *conf)
{
	req->set_user = conf->has_user;
	req->uid = conf->uid;
	req->set_group = conf->has_user || conf->has_group;
	req->gid = conf->has_group ? conf->group_gid : conf->gid;
	req->groups = conf->groups;
	req->ngroups = conf->ngroups;
	req->directory = conf->directory;
}

static void proc_started(struct proc *p, pid_t pid, int errfd, int readyfd)
{
	struct service_conf *conf = p->gen->conf;
	struct daemon *d = p->gen->svc->d;
	p->pid = p->sid = pid;
	if (pidmap_put(&d->procs, pid, p) < 0)
		log_error("%s[%d]: out of memory: its exit will go unnoticed", p->gen->svc->name,
			(int)pid);
	set_state(p, PROC_STARTING);
	p->spawned_at = now(p->gen->svc);
	p->ready_at = p->stop_at = p->signalled_at = p->kill_at = 0;
	p->exec_done = p->signalled = p->killed = p->killed_early = p->replace = false;
	replace_string(&p->error, NULL);
	replace_string(&p->status_text, NULL);
	replace_string(&p->fail_reason, NULL);
	ev_io_set(&p->exec_io, errfd, EV_READ);
	ev_io_start(d->loop, &p->exec_io);
	if (readyfd >= 0) {
		ev_io_set(&p->ready_io, readyfd, EV_READ);
		ev_io_start(d->loop, &p->ready_io);
	}
	if (conf->ready.mode == READY_DELAY)
		set_timer(p, conf->ready.delay);
	else if (conf->ready.mode != READY_NONE)
		set_timer(p, conf->ready_timeout);
	event_simple(d, "spawned", p->gen->svc, p);
}

static int ready_pipe(struct proc *p, int fds[2])
{
	fds[0] = fds[1] = -1;
	if (p->gen->conf->ready.mode != READY_FD)
		return 0;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	return fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

static void proc_spawn(struct proc *p)
{
	struct service_conf *conf = p->gen->conf;
	struct listener *ls[SPAWN_FDS_MAX];
	int fds[SPAWN_FDS_MAX], rfds[2];
	char err[256];
	if (collect_listeners(p, ls, err, sizeof(err)) < 0) {
		spawn_failed(p, err);
		return;
	}
	for (size_t i = 0; i < conf->nsockets; i++)
		fds[i] = ls[i]->fd;
	struct spawn_env env;
	int listen_pid = build_env(p, &env, ls);
	if (env.failed || ready_pipe(p, rfds) < 0) {
		snprintf(err, sizeof(err), "%s", env.failed ? "out of memory" : strerror(errno));
		spawn_env_finish(&env);
		spawn_failed(p, err);
		return;
	}
	struct spawn_request req = {
		.argv = conf->argv,
		.envp = env.vars,
		.listen_pid_index = listen_pid,
		.fds = fds,
		.nfds = conf->nsockets,
		.ready_fd = conf->ready.mode == READY_FD ? conf->ready.fd : -1,
		.ready_source = rfds[1],
	};
	spawn_request_ids(&req, conf);
	int errfd = -1;
	pid_t pid = spawn_process(&req, &errfd);
	int saved = errno;
	spawn_env_finish(&env);
	if (rfds[1] >= 0)
		close(rfds[1]);
	if (pid < 0) {
		if (rfds[0] >= 0)
			close(rfds[0]);
		snprintf(err, sizeof(err), "fork: %s", strerror(saved));
		spawn_failed(p, err);
		return;
	}
	proc_started(p, pid, errfd, rfds[0]);
	char label[128];
	log_debug("%s: started %s", proc_label(p, label, sizeof(label)), conf->command);
}

static void exec_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	struct proc *p = container_of(w, struct proc, exec_io);
	char msg[320];
	int rc = spawn_read_error(w->fd, msg, sizeof(msg));
	if (rc < 0)
		return;
	close_watched_fd(loop, w);
	if (rc == 1) {
		replace_string(&p->error, msg);
		return;
	}
	p->exec_done = true;
	if (p->state == PROC_STARTING && p->gen->conf->ready.mode == READY_NONE)
		proc_set_ready(p);
}

static void ready_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	struct proc *p = container_of(w, struct proc, ready_io);
	char buf[64];
	ssize_t n = read(w->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && !memchr(buf, '\n', (size_t)n))
		return;
	close_watched_fd(loop, w);
	if (n > 0)
		proc_set_ready(p);
}

static void send_stop_signal(struct proc *p)
{
	struct service_conf *conf = p->gen->conf;
	int sig = conf->stop_signal;
	kill(p->pid, sig);
	if (sig != SIGKILL && sig != SIGCONT)
		kill(p->pid, SIGCONT);
	p->signalled = true;
	p->probed = false;
	p->signalled_at = now(p->gen->svc);
	p->kill_at = p->signalled_at + conf->stop_grace;
	// First a look at its connections, a little before the deadline.
	double lead = conf->stop_grace > 2 * KILL_PROBE_LEAD ? KILL_PROBE_LEAD : conf->stop_grace / 2;
	set_timer(p, conf->stop_grace - lead);
	char label[128], grace[32];
	format_duration(conf->stop_grace, grace, sizeof(grace));
	log_info("%s: sent SIG%s; SIGKILL in %s unless it exits", proc_label(p, label, sizeof(label)),
		signal_name(sig) ? signal_name(sig) : "?", grace);
	struct event e;
	if (event_begin_proc_at(&e, daemon_of(p), "signalled", p->gen->svc, p, p->signalled_at)) {
		protocol_record_str(&e.buf, "signal", signal_name(sig) ? signal_name(sig) : "?");
		protocol_record_secs(&e.buf, "kill_in", conf->stop_grace);
		event_end(&e, daemon_of(p));
	}
}

// What a SIGKILL leaves to say, said once the burst of deadlines is over.
struct kill_report {
	struct list link;
	char service[PROTOCOL_NAME_MAX + 1];
	char label[128];
	char why[96];
	unsigned gen, instance;
	pid_t pid;
	int conns;
	double t;
};

// Logs and reports the SIGKILLs sent; max is how many at most.
static void flush_kill_reports(struct daemon *d, int max)
{
	for (int i = 0; i < max && !list_empty(&d->kill_reports); i++) {
		struct kill_report *r = container_of(d->kill_reports.next, struct kill_report, link);
		list_remove(&r->link);
		log_warn("%s: %s: sent SIGKILL to its process group", r->label, r->why);
		struct event e;
		if (event_begin_at(&e, d, "sigkill", r->service, r->t)) {
			protocol_record_int(&e.buf, "gen", r->gen);
			protocol_record_int(&e.buf, "instance", r->instance);
			protocol_record_int(&e.buf, "pid", r->pid);
			if (r->conns >= 0)
				protocol_record_int(&e.buf, "conns", r->conns);
			protocol_record_str(&e.buf, "reason", r->why);
			event_end(&e, d);
		}
		free(r);
	}
	if (list_empty(&d->kill_reports))
		ev_idle_stop(d->loop, &d->kill_reporter);
}

static void report_kills_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)loop;
	(void)revents;
	// A few at a time: a deadline that falls meanwhile waits no longer.
	flush_kill_reports(w->data, 2);
}

static void report_kill(struct proc *p, const char *why)
{
	struct daemon *d = daemon_of(p);
	struct kill_report *r = calloc(1, sizeof(*r));
	if (!r)
		return;
	snprintf(r->service, sizeof(r->service), "%s", p->gen->svc->name);
	proc_label(p, r->label, sizeof(r->label));
	snprintf(r->why, sizeof(r->why), "%s", why);
	r->gen = p->gen->number;
	r->instance = p->instance;
	r->pid = p->pid;
	r->conns = p->conns_at_kill;
	r->t = now(p->gen->svc);
	list_append(&d->kill_reports, &r->link);
	if (!ev_is_active(&d->kill_reporter)) {
		ev_idle_init(&d->kill_reporter, report_kills_cb);
		d->kill_reporter.data = d;
		ev_idle_start(d->loop, &d->kill_reporter);
	}
}

// Sends SIGKILL now, and nothing slower: when many deadlines fall together,
// each waits on the ones before it. The report follows when the loop is idle.
static void kill_now(struct proc *p, const char *why)
{
	kill(-p->sid, SIGKILL);
	kill(p->pid, SIGKILL);
	char grace[32], reason[96];
	format_duration(p->gen->conf->stop_grace, grace, sizeof(grace));
	snprintf(reason, sizeof(reason), "still running after its %s stop_grace", grace);
	report_kill(p, why ? why : reason);
	p->killed = true;
	if (!p->signalled) {
		p->signalled = true;
		p->signalled_at = now(p->gen->svc);
	}
	p->kill_at = now(p->gen->svc);
}

// Begins the stop of a running process: stop_delay, stop signal, grace, SIGKILL.
static void proc_stop(struct proc *p)
{
	if (p->state == PROC_STOPPING || p->pid <= 0)
		return;
	bool was_ready = p->state == PROC_READY;
	set_state(p, PROC_STOPPING);
	p->stop_at = now(p->gen->svc);
	close_watched_fd(loop_of(p), &p->ready_io);
	double delay = p->gen->conf->stop_delay;
	bool delayed = delay > 0 && was_ready && !p->replace;
	struct event e;
	if (event_begin(&e, daemon_of(p), "stopping", p->gen->svc, p)) {
		if (delayed)
			protocol_record_secs(&e.buf, "stop_delay", delay);
		event_end(&e, daemon_of(p));
	}
	if (delayed) {
		set_timer(p, delay);
		return;
	}
	send_stop_signal(p);
}

// A running process failed without exiting (it was not ready in time).
static void proc_fail(struct proc *p, const char *reason)
{
	char label[128], msg[512];
	snprintf(msg, sizeof(msg), "%s: %s", proc_label(p, label, sizeof(label)), reason);
	if (p->gen->role == GEN_NEXT) {
		upgrade_rollback(p->gen->svc, msg);
		return;
	}
	log_warn("%s", msg);
	replace_string(&p->fail_reason, reason);
	p->replace = true;
	proc_stop(p);
}

static void starting_deadline(struct proc *p)
{
	struct service_conf *conf = p->gen->conf;
	if (conf->ready.mode == READY_DELAY) {
		if (p->exec_done)
			proc_set_ready(p);
		else
			set_timer(p, 0.01);
		return;
	}
	char msg[128], when[32];
	format_duration(conf->ready_timeout, when, sizeof(when));
	snprintf(msg, sizeof(msg), "not ready after %s (ready_timeout)", when);
	proc_fail(p, msg);
}

static void proc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct proc *p = container_of(w, struct proc, timer);
	switch (p->state) {
	case PROC_WAITING:
		proc_spawn(p);
		break;
	case PROC_STARTING:
		starting_deadline(p);
		break;
	case PROC_STOPPING:
		if (!p->signalled) {
			send_stop_signal(p);
		} else if (!p->probed) {
			// What it still holds is what its missing cleanup leaves behind.
			p->conns_at_kill = daemon_count_conns(daemon_of(p), p->pid);
			p->probed = true;
			set_timer(p, p->kill_at - now(p->gen->svc));
		} else if (!p->killed) {
			// The whole grace, to the microsecond, whatever the timer's rounding.
			double left = p->kill_at - now(p->gen->svc);
			if (left > 0)
				set_timer(p, left);
			else
				kill_now(p, NULL);
		}
		break;
	default:
		break;
	}
}

void proc_set_ready(struct proc *p)
{
	if (p->state != PROC_STARTING)
		return;
	struct service *svc = p->gen->svc;
	set_state(p, PROC_READY);
	p->ready_at = now(svc);
	ev_timer_stop(svc->d->loop, &p->timer);
	close_watched_fd(svc->d->loop, &p->ready_io);
	char label[128];
	log_info("%s: ready after %.3fs", proc_label(p, label, sizeof(label)),
		p->ready_at - p->spawned_at);
	histogram_add(&svc->ready_latency, p->ready_at - p->spawned_at);
	struct event e;
	if (event_begin(&e, svc->d, "ready", svc, p)) {
		protocol_record_secs(&e.buf, "ready_after", p->ready_at - p->spawned_at);
		event_end(&e, svc->d);
	}
	if (p->gen->role == GEN_NEXT)
		upgrade_step(svc);
}

void proc_set_main_pid(struct proc *p, pid_t pid)
{
	struct daemon *d = p->gen->svc->d;
	char label[128];
	proc_label(p, label, sizeof(label));
	// Only a process of the service's own session: it is a descendant that
	// batond, as a subreaper, will reap, and nobody else's process.
	if (getsid(pid) != p->sid || pidmap_get(&d->procs, pid)) {
		unsigned dropped;
		if (log_limit_pass(&d->mainpid_limit, now(p->gen->svc), &dropped))
			log_warn("%s: MAINPID=%d ignored: not a process of this service%s", label,
				(int)pid, dropped ? " (and more since)" : "");
		return;
	}
	if (pidmap_put(&d->procs, pid, p) < 0) {
		log_error("%s: MAINPID=%d ignored: out of memory", label, (int)pid);
		return;
	}
	pidmap_remove(&d->procs, p->pid);
	log_info("%s: main process is now %d (MAINPID)", label, (int)pid);
	p->pid = pid;
}

void proc_set_status(struct proc *p, const char *text)
{
	if (p->status_text && strcmp(p->status_text, text) == 0)
		return;
	replace_string(&p->status_text, text);
	struct event e;
	if (event_begin(&e, daemon_of(p), "status", p->gen->svc, p)) {
		protocol_record_str(&e.buf, "status", text);
		event_end(&e, daemon_of(p));
	}
}

void proc_extend_timeout(struct proc *p, double secs)
{
	if (!ev_is_active(&p->timer))
		return;
	double left = ev_timer_remaining(loop_of(p), &p->timer);
	if (left >= secs)
		return;
	if (p->state == PROC_STOPPING && p->signalled)
		p->kill_at = now(p->gen->svc) + secs;
	set_timer(p, secs);
}

/* ---- exits ---- */

static bool failed_exit(const struct proc *p)
{
	int st = p->wait_status;
	return p->error || p->replace || !WIFEXITED(st) || WEXITSTATUS(st) != 0;
}

static bool should_restart(const struct proc *p)
{
	switch (p->gen->conf->restart) {
	case RESTART_ALWAYS:
		return true;
	case RESTART_ON_FAILURE:
		return failed_exit(p);
	case RESTART_NEVER:
		return false;
	}
	return false;
}

// Says how a process ended: its exec error, why it was replaced, or its status.
static void describe_end(const struct proc *p, char *out, size_t outlen)
{
	char st[128];
	describe_status(p->wait_status, st, sizeof(st));
	if (p->error)
		snprintf(out, outlen, "%s", p->error);
	else if (p->fail_reason)
		snprintf(out, outlen, "%s, then %s", p->fail_reason, st);
	else
		snprintf(out, outlen, "%s", st);
}

// A process that was asked to stop has exited.
static void proc_finished(struct proc *p)
{
	struct generation *gen = p->gen;
	char label[128], desc[384], grace[32];
	proc_label(p, label, sizeof(label));
	describe_end(p, desc, sizeof(desc));
	double took = now(gen->svc) - p->stop_at;
	histogram_add(&gen->svc->drain_time, took);
	// The SIGKILL is told before what came of it.
	flush_kill_reports(gen->svc->d, INT_MAX);
	struct event e;
	if (event_begin(&e, gen->svc->d, p->killed ? "killed" : "exited", gen->svc, p)) {
		event_exit_fields(&e, p);
		if (p->killed && p->conns_at_kill >= 0)
			protocol_record_int(&e.buf, "conns", p->conns_at_kill);
		protocol_record_secs(&e.buf, "elapsed", took);
		protocol_record_str(&e.buf, "reason", desc);
		event_end(&e, gen->svc->d);
	}
	if (p->killed) {
		set_state(p, PROC_KILLED);
		gen->svc->kills++;
		format_duration(gen->conf->stop_grace, grace, sizeof(grace));
		char held[64] = "";
		if (p->conns_at_kill >= 0)
			snprintf(held, sizeof(held), " holding %d connection%s", p->conns_at_kill,
				p->conns_at_kill == 1 ? "" : "s");
		log_warn("%s: %s%s %s its %s stop_grace: its cleanup did not run", label, desc,
			held, p->killed_early ? "before the end of" : "after", grace);
	} else {
		set_state(p, PROC_EXITED);
		log_info("%s: stopped: %s after %.3fs", label, desc,
			now(gen->svc) - (p->signalled ? p->signalled_at : p->stop_at));
	}
	proc_remove(p);
	gen_check_empty(gen);
}

static void restart_later(struct proc *p, const char *desc)
{
	struct generation *gen = p->gen;
	struct service *svc = gen->svc;
	struct service_conf *conf = gen->conf;
	struct backoff_policy policy = {conf->restart_delay, conf->restart_delay_max,
		conf->start_limit_burst, conf->start_limit_interval};
	char label[128], when[32];
	proc_label(p, label, sizeof(label));
	double delay;
	if (!backoff_next(&p->backoff, &policy, now(svc), now(svc) - p->spawned_at, &delay)) {
		format_duration(conf->start_limit_interval, when, sizeof(when));
		proc_remove(p);
		service_fail(svc, "crash loop: restarted %u times within %s (start_limit); last: %s",
			conf->start_limit_burst, when, desc);
		return;
	}
	format_duration(delay, when, sizeof(when));
	log_warn("%s: %s; restarting in %s", label, desc, when);
	struct event e;
	if (event_begin(&e, svc->d, "restarting", svc, p)) {
		event_exit_fields(&e, p);
		protocol_record_secs(&e.buf, "restart_in", delay);
		protocol_record_str(&e.buf, "reason", desc);
		event_end(&e, svc->d);
	}
	set_state(p, PROC_WAITING);
	p->pid = 0;
	p->restarts++;
	svc->restarts++;
	set_timer(p, delay);
}

// A process exited that nobody asked to stop, or one that failed.
static void proc_died(struct proc *p)
{
	struct generation *gen = p->gen;
	struct service *svc = gen->svc;
	char label[128], desc[384], msg[600];
	proc_label(p, label, sizeof(label));
	describe_end(p, desc, sizeof(desc));
	if (gen->role == GEN_NEXT) {
		snprintf(msg, sizeof(msg), "%s: %s %s", label, desc,
			p->state == PROC_READY ? "during the upgrade" : "before it was ready");
		struct event e;
		if (event_begin(&e, svc->d, "exited", svc, p)) {
			event_exit_fields(&e, p);
			protocol_record_str(&e.buf, "reason", desc);
			event_end(&e, svc->d);
		}
		set_state(p, PROC_EXITED);
		proc_remove(p);
		upgrade_rollback(svc, msg);
		return;
	}
	if (gen->role == GEN_DRAINING || !svc->wanted) {
		proc_finished(p);
		return;
	}
	if (should_restart(p)) {
		restart_later(p, desc);
		return;
	}
	if (failed_exit(p)) {
		// The service fails with its last process; until then it is degraded.
		svc->failed = gen->procs.next->next == &gen->procs;
		snprintf(svc->reason, sizeof(svc->reason), "%s: %s; restart = %s", label, desc,
			restart_name(gen->conf->restart));
		log_error("%s", svc->reason);
		struct event e;
		if (svc->failed && event_begin(&e, svc->d, "failed", svc, NULL)) {
			protocol_record_str(&e.buf, "reason", svc->reason);
			event_end(&e, svc->d);
		}
	} else {
		log_info("%s: %s; restart = %s", label, desc, restart_name(gen->conf->restart));
	}
	struct event e;
	if (event_begin(&e, svc->d, "exited", svc, p)) {
		event_exit_fields(&e, p);
		protocol_record_str(&e.buf, "reason", desc);
		event_end(&e, svc->d);
	}
	set_state(p, PROC_EXITED);
	proc_remove(p);
	gen_check_empty(gen);
}

// Reads what the child reported before exec, when its exit came first.
static void collect_exec_error(struct proc *p)
{
	if (p->exec_io.fd < 0)
		return;
	char msg[320];
	if (spawn_read_error(p->exec_io.fd, msg, sizeof(msg)) == 1)
		replace_string(&p->error, msg);
}

bool service_reap(struct daemon *d, pid_t pid, int status)
{
	struct proc *p = pidmap_get(&d->procs, pid);
	if (!p)
		return false;
	pidmap_remove(&d->procs, pid);
	p->wait_status = status;
	collect_exec_error(p);
	proc_clear_fds(p);
	ev_timer_stop(d->loop, &p->timer);
	if (p->state == PROC_STOPPING && !p->replace)
		proc_finished(p);
	else
		proc_died(p);
	return true;
}

/* ---- services ---- */

unsigned service_live_procs(const struct service *svc)
{
	unsigned n = 0;
	struct list *g, *pos;
	list_for_each(g, &svc->gens) {
		struct generation *gen = container_of(g, struct generation, link);
		list_for_each(pos, &gen->procs) {
			if (container_of(pos, struct proc, link)->pid > 0)
				n++;
		}
	}
	return n;
}

static void notify_waiters(struct list *waiters, bool ok, const char *message)
{
	while (!list_empty(waiters)) {
		struct service_waiter *w = container_of(waiters->next, struct service_waiter, link);
		list_remove(&w->link);
		w->done(w, ok, message);
	}
}

static void start_generation(struct service *svc)
{
	struct generation *gen = gen_create(svc, svc->conf, GEN_CURRENT);
	if (!gen) {
		log_error("%s: cannot start: out of memory", svc->name);
		return;
	}
	svc->current = gen;
	log_info("%s: starting gen %u: %u instance%s of %s", svc->name, gen->number,
		gen->conf->instances, gen->conf->instances == 1 ? "" : "s", gen->conf->command);
	gen_fill(gen);
}

// Called whenever a generation may have lost its last process.
static void service_check_idle(struct service *svc)
{
	if (!list_empty(&svc->gens))
		return;
	if (svc->start_when_empty) {
		svc->start_when_empty = false;
		start_generation(svc);
		return;
	}
	if (!svc->wanted)
		event_simple(svc->d, "stopped", svc, NULL);
	notify_waiters(&svc->stop_waiters, true, NULL);
	if (svc->removed)
		daemon_collect_later(svc->d);
	daemon_check_done(svc->d);
}

static void gen_check_empty(struct generation *gen)
{
	if (!list_empty(&gen->procs))
		return;
	struct service *svc = gen->svc;
	if (gen->role == GEN_NEXT)
		return;
	if (gen->role == GEN_CURRENT && svc->wanted)
		log_info("%s: gen %u has no process left", svc->name, gen->number);
	struct event e;
	if (gen->role == GEN_DRAINING && event_begin(&e, svc->d, "drained", svc, NULL)) {
		protocol_record_int(&e.buf, "gen", gen->number);
		protocol_record_secs(&e.buf, "elapsed", now(svc) - gen->drain_at);
		event_end(&e, svc->d);
	}
	gen_destroy(gen);
	service_check_idle(svc);
}

struct service *service_create(struct daemon *d, struct service_conf *conf)
{
	struct service *svc = calloc(1, sizeof(*svc));
	if (!svc || !(svc->name = strdup(conf->name))) {
		free(svc);
		return NULL;
	}
	svc->d = d;
	svc->conf = service_conf_ref(conf);
	list_init(&svc->gens);
	list_init(&svc->upgrade_waiters);
	list_init(&svc->stop_waiters);
	return svc;
}

void service_destroy(struct service *svc)
{
	while (!list_empty(&svc->gens)) {
		struct generation *gen = container_of(svc->gens.next, struct generation, link);
		while (!list_empty(&gen->procs))
			proc_remove(container_of(gen->procs.next, struct proc, link));
		gen_destroy(gen);
	}
	notify_waiters(&svc->upgrade_waiters, false, "batond is exiting");
	notify_waiters(&svc->stop_waiters, false, "batond is exiting");
	upgrade_clear(svc);
	service_conf_unref(svc->conf);
	free(svc->name);
	free(svc);
}

void service_start(struct service *svc)
{
	svc->failed = false;
	svc->reason[0] = '\0';
	svc->wanted = true;
	notify_waiters(&svc->stop_waiters, false, "the service was started again");
	if (svc->start_when_empty)
		return;
	// Instances that exited for good (restart = never) are started again.
	if (svc->current)
		gen_fill(svc->current);
	else
		start_generation(svc);
}

// Ends the upgrade's own state; the generations are the caller's.
static void upgrade_clear(struct service *svc)
{
	svc->upgrade.active = false;
	service_conf_unref(svc->upgrade.from);
	svc->upgrade.from = NULL;
}

static void upgrade_event(struct service *svc, const char *state, unsigned gen,
	const char *reason);

static void upgrade_abort(struct service *svc, const char *why)
{
	if (!svc->upgrade.active)
		return;
	upgrade_event(svc, "aborted", svc->next ? svc->next->number : 0, why);
	upgrade_clear(svc);
	notify_waiters(&svc->upgrade_waiters, false, why);
}

// Drains every generation of the service.
static void drain_all(struct service *svc)
{
	struct list *pos, *tmp;
	svc->current = svc->next = NULL;
	// gen_drain may free the generation it drains, and only that one: walk
	// from the oldest with a saved pointer to the one before.
	for (pos = svc->gens.prev; pos != &svc->gens; pos = tmp) {
		tmp = pos->prev;
		gen_drain(container_of(pos, struct generation, link));
	}
}

void service_stop(struct service *svc)
{
	svc->wanted = false;
	svc->start_when_empty = false;
	upgrade_abort(svc, "the service was stopped during the upgrade");
	if (list_empty(&svc->gens)) {
		service_check_idle(svc);
		return;
	}
	log_info("%s: stopping %u process%s", svc->name, service_live_procs(svc),
		service_live_procs(svc) == 1 ? "" : "es");
	drain_all(svc);
}

void service_restart(struct service *svc)
{
	svc->failed = false;
	svc->reason[0] = '\0';
	notify_waiters(&svc->stop_waiters, false, "the service was restarted");
	if (list_empty(&svc->gens)) {
		service_start(svc);
		return;
	}
	service_stop(svc);
	svc->wanted = true;
	if (!list_empty(&svc->gens))
		svc->start_when_empty = true;
	else
		start_generation(svc);
}

static void service_fail(struct service *svc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(svc->reason, sizeof(svc->reason), fmt, ap);
	va_end(ap);
	log_error("%s: failed: %s", svc->name, svc->reason);
	struct event e;
	if (event_begin(&e, svc->d, "failed", svc, NULL)) {
		protocol_record_str(&e.buf, "reason", svc->reason);
		event_end(&e, svc->d);
	}
	svc->wanted = false;
	svc->start_when_empty = false;
	svc->failed = true;
	upgrade_abort(svc, svc->reason);
	drain_all(svc);
	service_check_idle(svc);
}

unsigned service_signal(struct service *svc, int signo)
{
	unsigned n = 0;
	struct list *g, *pos;
	list_for_each(g, &svc->gens) {
		struct generation *gen = container_of(g, struct generation, link);
		list_for_each(pos, &gen->procs) {
			struct proc *p = container_of(pos, struct proc, link);
			if (p->pid > 0 && kill(p->pid, signo) == 0)
				n++;
		}
	}
	return n;
}

const char *service_state_name(const struct service *svc)
{
	if (svc->failed)
		return "failed";
	unsigned live = service_live_procs(svc);
	if (!svc->wanted)
		return live ? "stopping" : "stopped";
	if (svc->start_when_empty)
		return "restarting";
	if (svc->upgrade.active)
		return "upgrading";
	if (!svc->current)
		return "exited";
	const struct generation *gen = svc->current;
	if (gen_count(gen, PROC_READY) >= gen->conf->instances)
		return "running";
	if (gen_count(gen, PROC_STARTING) + gen_count(gen, PROC_WAITING) > 0)
		return "starting";
	// Fewer processes than instances and none on its way: restart = never.
	return "degraded";
}

/* ---- upgrades ---- */

// Kills the oldest draining generations beyond the service's max_draining.
static void enforce_max_draining(struct service *svc)
{
	unsigned max = svc->conf->max_draining, n = 0;
	struct list *pos;
	list_for_each(pos, &svc->gens) {
		struct generation *gen = container_of(pos, struct generation, link);
		if (gen->role != GEN_DRAINING || ++n <= max)
			continue;
		log_warn("%s: more than max_draining = %u generations draining: killing gen %u now",
			svc->name, max, gen->number);
		struct list *pp;
		list_for_each(pp, &gen->procs) {
			struct proc *p = container_of(pp, struct proc, link);
			if (p->pid > 0 && !p->killed) {
				set_state(p, PROC_STOPPING);
				p->killed_early = true;
				p->conns_at_kill = daemon_count_conns(svc->d, p->pid);
				kill_now(p, "more than max_draining generations");
			}
		}
	}
}

// Stops up to count processes of the old generation, the least useful first.
static void retire_old(struct service *svc, unsigned count)
{
	static const enum proc_state order[] = {PROC_WAITING, PROC_STARTING, PROC_READY};
	struct generation *old = svc->current;
	for (size_t i = 0; i < 3 && count > 0 && old; i++) {
		struct list *pos, *tmp;
		list_for_each_safe(pos, tmp, &old->procs) {
			struct proc *p = container_of(pos, struct proc, link);
			if (count == 0 || p->state != order[i])
				continue;
			count--;
			svc->upgrade.stopped++;
			if (p->state == PROC_WAITING)
				proc_remove(p);
			else
				proc_stop(p);
		}
	}
}

// Sends `upgrade state=...` about the generation being started.
static void upgrade_event(struct service *svc, const char *state, unsigned gen,
	const char *reason)
{
	struct event e;
	if (!event_begin(&e, svc->d, "upgrade", svc, NULL))
		return;
	protocol_record_int(&e.buf, "gen", gen);
	protocol_record_str(&e.buf, "state", state);
	if (svc->current && svc->current->number != gen)
		protocol_record_int(&e.buf, "from", svc->current->number);
	if (svc->next) {
		protocol_record_int(&e.buf, "spawned", svc->upgrade.spawned);
		protocol_record_int(&e.buf, "instances", svc->next->conf->instances);
	}
	protocol_record_secs(&e.buf, "elapsed", now(svc) - svc->upgrade.started_at);
	if (reason)
		protocol_record_str(&e.buf, "reason", reason);
	event_end(&e, svc->d);
}

static void upgrade_finish(struct service *svc)
{
	struct generation *old = svc->current, *gen = svc->next;
	svc->upgrades++;
	gen->role = GEN_CURRENT;
	svc->current = gen;
	svc->next = NULL;
	log_info("%s: upgrade to gen %u done in %.3fs", svc->name, gen->number,
		now(svc) - svc->upgrade.started_at);
	upgrade_event(svc, "done", gen->number, NULL);
	upgrade_clear(svc);
	if (old)
		gen_drain(old);
	enforce_max_draining(svc);
	notify_waiters(&svc->upgrade_waiters, true, NULL);
}

static void upgrade_step(struct service *svc)
{
	struct generation *gen = svc->next;
	struct upgrade *u = &svc->upgrade;
	unsigned n = gen->conf->instances;
	unsigned batch = gen->conf->upgrade_batch ? gen->conf->upgrade_batch : n;
	unsigned ready = gen_count(gen, PROC_READY);
	if (ready < u->spawned)
		return;
	if (gen->conf->upgrade_batch && ready > u->stopped)
		retire_old(svc, ready - u->stopped);
	if (u->spawned < n) {
		unsigned first = u->spawned;
		u->spawned += batch < n - first ? batch : n - first;
		upgrade_event(svc, first == 0 ? "started" : "batch", gen->number, NULL);
		for (unsigned i = first; i < u->spawned && svc->next == gen; i++)
			proc_spawn_new(gen, i);
		return;
	}
	upgrade_finish(svc);
}

static void upgrade_rollback(struct service *svc, const char *reason)
{
	struct generation *gen = svc->next;
	if (!gen)
		return;
	struct service_conf *from = service_conf_ref(svc->upgrade.from);
	upgrade_clear(svc);
	svc->next = NULL;
	svc->rollbacks++;
	snprintf(svc->reason, sizeof(svc->reason), "upgrade to gen %u rolled back: %s",
		gen->number, reason);
	log_error("%s: %s", svc->name, svc->reason);
	upgrade_event(svc, "rolled-back", gen->number, reason);
	// Back to the old definition, unless a reload brought a newer one meanwhile.
	if (svc->conf == gen->conf) {
		service_conf_unref(svc->conf);
		svc->conf = from;
	} else {
		service_conf_unref(from);
	}
	gen_drain(gen);
	// A rolling upgrade may have retired old processes: start them again.
	if (svc->current)
		gen_fill(svc->current);
	else if (svc->wanted)
		start_generation(svc);
	notify_waiters(&svc->upgrade_waiters, false, svc->reason);
}

int service_upgrade(struct service *svc, struct service_conf *conf, char *err, size_t errlen)
{
	if (svc->upgrade.active) {
		snprintf(err, errlen, "an upgrade of %s to gen %u is already in progress", svc->name,
			svc->next ? svc->next->number : 0);
		return -1;
	}
	if (!svc->wanted || !svc->current || svc->start_when_empty) {
		snprintf(err, errlen, "%s is %s; start it first", svc->name,
			service_state_name(svc));
		return -1;
	}
	struct generation *gen = gen_create(svc, conf, GEN_NEXT);
	if (!gen) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memset(&svc->upgrade, 0, sizeof(svc->upgrade));
	svc->upgrade.from = svc->conf;
	svc->conf = service_conf_ref(conf);
	svc->next = gen;
	svc->reason[0] = '\0';
	svc->upgrade.active = true;
	svc->upgrade.started_at = now(svc);
	log_info("%s: upgrading gen %u to gen %u (%s)", svc->name, svc->current->number,
		gen->number, conf->upgrade_batch ? "rolling" : "all at once");
	upgrade_step(svc);
	return 0;
}

/* ---- re-exec ---- */

struct generation *service_restore_gen(struct service *svc, const struct generation *saved,
	struct service_conf *conf, struct listener **listeners)
{
	struct generation *gen = calloc(1, sizeof(*gen));
	if (!gen)
		return NULL;
	gen->svc = svc;
	gen->number = saved->number;
	gen->conf = service_conf_ref(conf);
	gen->role = saved->role;
	gen->started_at = saved->started_at;
	gen->drain_at = saved->drain_at;
	gen->listeners = listeners;
	list_init(&gen->procs);
	// Oldest first in the state: each one goes in front of the ones before.
	list_insert_after(&svc->gens, &gen->link);
	if (gen->role == GEN_CURRENT)
		svc->current = gen;
	return gen;
}

struct proc *service_restore_proc(struct generation *gen, const struct proc *saved,
	double timer_at, int exec_fd, int ready_fd)
{
	struct proc *p = proc_create(gen, saved->instance);
	if (!p)
		return NULL;
	struct daemon *d = gen->svc->d;
	p->pid = saved->pid;
	p->sid = saved->sid;
	p->spawned_at = saved->spawned_at;
	p->ready_at = saved->ready_at;
	p->stop_at = saved->stop_at;
	p->signalled_at = saved->signalled_at;
	p->kill_at = saved->kill_at;
	p->exec_done = saved->exec_done;
	p->signalled = saved->signalled;
	p->killed = saved->killed;
	p->killed_early = saved->killed_early;
	p->replace = saved->replace;
	p->probed = saved->probed;
	p->restarts = saved->restarts;
	p->backoff = saved->backoff;
	p->conns_at_kill = saved->conns_at_kill;
	replace_string(&p->error, saved->error);
	replace_string(&p->status_text, saved->status_text);
	replace_string(&p->fail_reason, saved->fail_reason);
	set_state(p, saved->state);
	if (p->pid > 0 && pidmap_put(&d->procs, p->pid, p) < 0)
		log_error("%s[%d]: out of memory: its exit will go unnoticed", gen->svc->name,
			(int)p->pid);
	if (exec_fd >= 0) {
		ev_io_set(&p->exec_io, exec_fd, EV_READ);
		ev_io_start(d->loop, &p->exec_io);
	}
	if (ready_fd >= 0) {
		ev_io_set(&p->ready_io, ready_fd, EV_READ);
		ev_io_start(d->loop, &p->ready_io);
	}
	if (timer_at > 0)
		set_timer(p, timer_at - now(gen->svc));
	return p;
}

double proc_timer_at(const struct proc *p)
{
	if (!ev_is_active(&p->timer))
		return 0;
	return now(p->gen->svc) + ev_timer_remaining(loop_of(p), (ev_timer *)&p->timer);
}
