#include "lifecycle_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "listener.h"
#include "parse.h"
#include "protocol.h"

extern char **environ;

static void proc_spawn(struct proc *p);

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

static struct lifecycle *lc_of(const struct proc *p)
{
	return p->gen->svc->lc;
}

static struct ev_loop *loop_of(const struct proc *p)
{
	return lc_of(p)->loop;
}

static struct lifecycle_host *host_of(const struct proc *p)
{
	return lc_of(p)->host;
}

const char *proc_label(const struct proc *p, char *buf, size_t len)
{
	if (p->pid > 0)
		snprintf(buf, len, "%s[%d] gen %u", p->gen->svc->name, (int)p->pid, p->gen->number);
	else
		snprintf(buf, len, "%s instance %u gen %u", p->gen->svc->name, p->instance,
			p->gen->number);
	return buf;
}

// Every change of state goes through here, so that the count of stopping
// processes (which drives drain progress) stays right.
static void set_state(struct proc *p, enum proc_state state)
{
	struct lifecycle *lc = lc_of(p);
	if (p->state == PROC_STOPPING && state != PROC_STOPPING)
		lc->nstopping--;
	else if (p->state != PROC_STOPPING && state == PROC_STOPPING)
		lc->nstopping++;
	p->state = state;
}

void proc_set_stopping(struct proc *p)
{
	set_state(p, PROC_STOPPING);
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

static void proc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void exec_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void ready_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void output_cb(struct ev_loop *loop, ev_io *w, int revents);

/* ---- output ---- */

// A read takes this much at most: a flooding process waits for the others.
#define OUTPUT_READ_MAX 65536
// At an exit, what its pipes hold is read, up to this much: a descendant
// that keeps writing must not hold the exit.
#define OUTPUT_DRAIN_MAX (1 << 20)

static void output_init(struct proc *p, struct proc_output *o)
{
	ev_io_init(&o->io, output_cb, -1, EV_READ);
	o->io.data = p;
	linebuf_init(&o->lines);
}

struct output_line {
	struct proc *p;
	int stream;
};

static void keep_last_line(struct proc *p, const char *text, size_t len)
{
	if (!p->last_line && !(p->last_line = malloc(PROC_LAST_LINE_MAX + 1)))
		return;
	if (len > PROC_LAST_LINE_MAX)
		len = PROC_LAST_LINE_MAX;
	memcpy(p->last_line, text, len);
	p->last_line[len] = '\0';
}

static void emit_line(void *data, const char *text, size_t len, unsigned flags)
{
	struct output_line *l = data;
	keep_last_line(l->p, text, len);
	struct lifecycle_event e = lifecycle_proc_event(LC_OUTPUT, l->p);
	e.stream = l->stream;
	e.text = text;
	e.len = len;
	e.flags = flags;
	lifecycle_emit(lc_of(l->p), &e);
}

static void output_close(struct proc *p, struct proc_output *o)
{
	struct output_line l = {p, o == &p->out ? 1 : 2};
	linebuf_flush(&o->lines, emit_line, &l);
	close_watched_fd(loop_of(p), &o->io);
}

// Reads what the pipe holds, at most max bytes; returns -1 at its end.
static int output_read(struct proc *p, struct proc_output *o, size_t max)
{
	static char buf[OUTPUT_READ_MAX];
	struct output_line l = {p, o == &p->out ? 1 : 2};
	ssize_t n = read(o->io.fd, buf, max < sizeof(buf) ? max : sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	linebuf_feed(&o->lines, buf, (size_t)n, emit_line, &l);
	return (int)n;
}

static void output_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct proc *p = w->data;
	struct proc_output *o = w == &p->out.io ? &p->out : &p->err;
	if (output_read(p, o, OUTPUT_READ_MAX) < 0)
		output_close(p, o);
}

// At an exit: what it wrote is told before the exit, its last line too.
static void drain_output(struct proc *p, struct proc_output *o)
{
	if (o->io.fd < 0)
		return;
	int n = 0;
	for (size_t total = 0; total < OUTPUT_DRAIN_MAX && n >= 0; total += (size_t)n) {
		if ((n = output_read(p, o, OUTPUT_DRAIN_MAX - total)) == 0)
			break;
	}
	output_close(p, o);
}

static void output_start(struct proc *p, struct proc_output *o, int fd)
{
	ev_io_set(&o->io, fd, EV_READ);
	if (!p->gen->svc->output_paused)
		ev_io_start(loop_of(p), &o->io);
}

void service_pause_output(struct service *svc, bool paused)
{
	if (svc->output_paused == paused)
		return;
	svc->output_paused = paused;
	struct list *g, *pos;
	list_for_each(g, &svc->gens) {
		struct generation *gen = container_of(g, struct generation, link);
		list_for_each(pos, &gen->procs) {
			struct proc *p = container_of(pos, struct proc, link);
			struct proc_output *outs[] = {&p->out, &p->err};
			for (int i = 0; i < 2; i++) {
				if (outs[i]->io.fd < 0)
					continue;
				if (paused)
					ev_io_stop(svc->lc->loop, &outs[i]->io);
				else
					ev_io_start(svc->lc->loop, &outs[i]->io);
			}
		}
	}
}

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
	output_init(p, &p->out);
	output_init(p, &p->err);
	backoff_init(&p->backoff);
	list_append(&gen->procs, &p->link);
	generation_keep_strays(gen);
	return p;
}

static void proc_clear_fds(struct proc *p)
{
	close_watched_fd(loop_of(p), &p->exec_io);
	close_watched_fd(loop_of(p), &p->ready_io);
	close_watched_fd(loop_of(p), &p->out.io);
	close_watched_fd(loop_of(p), &p->err.io);
}

void proc_remove(struct proc *p)
{
	struct lifecycle *lc = lc_of(p);
	if (p->pid > 0 && pidmap_get(&lc->procs, p->pid) == p)
		pidmap_remove(&lc->procs, p->pid);
	if (p->state == PROC_STOPPING)
		set_state(p, PROC_EXITED);
	ev_timer_stop(lc->loop, &p->timer);
	proc_clear_fds(p);
	health_free(p);
	if (p->replaced_by)
		p->replaced_by->replaces = NULL;
	if (p->replaces)
		p->replaces->replaced_by = NULL;
	list_remove(&p->link);
	linebuf_finish(&p->out.lines);
	linebuf_finish(&p->err.lines);
	free(p->last_line);
	free(p->error);
	free(p->status_text);
	free(p->fail_reason);
	free(p);
}

struct proc *proc_spawn_later(struct generation *gen, unsigned instance, double delay)
{
	struct proc *p = proc_create(gen, instance);
	if (!p) {
		lifecycle_error(gen->svc, NULL, "cannot start instance %u: out of memory", instance);
		return NULL;
	}
	set_timer(p, delay);
	return p;
}

void proc_spawn_new(struct generation *gen, unsigned instance)
{
	struct proc *p = proc_create(gen, instance);
	if (!p) {
		lifecycle_error(gen->svc, NULL, "cannot start instance %u: out of memory", instance);
		return;
	}
	proc_spawn(p);
}

/* ---- starting ---- */

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
	spawn_env_init(env, environ, gen->pin.env);
	if (conf->nsockets > 0) {
		listen_pid = spawn_env_listen_pid(env);
		add_socket_env(env, ls, conf->nsockets, gen->number);
	}
	const char *notify = host_of(p)->notify_path(host_of(p));
	if ((conf->ready.mode == READY_NOTIFY || conf->watchdog > 0) && notify)
		spawn_env_add(env, "NOTIFY_SOCKET=%s", notify);
	spawn_env_add(env, "BATON_SERVICE=%s", gen->svc->name);
	spawn_env_add(env, "BATON_GENERATION=%u", gen->number);
	spawn_env_add(env, "BATON_INSTANCE=%u", p->instance);
	if (conf->watchdog > 0)
		spawn_env_add(env, "WATCHDOG_USEC=%llu",
			(unsigned long long)(conf->watchdog * 1e6 + 0.5));
	return listen_pid;
}

// Retries a start that failed before any process ran (fork failed, a socket
// is missing): no start limit, so it succeeds once the cause is gone.
static void spawn_failed(struct proc *p, const char *msg)
{
	struct generation *gen = p->gen;
	struct service_conf *conf = gen->conf;
	char label[128], reason[512];
	replace_string(&p->error, msg);
	set_state(p, PROC_WAITING);
	p->pid = 0;
	struct lifecycle_event e = lifecycle_proc_event(LC_SPAWN_FAILED, p);
	e.reason = msg;
	if (gen->role == GEN_NEXT) {
		snprintf(reason, sizeof(reason), "%s: cannot start: %s",
			proc_label(p, label, sizeof(label)), msg);
		e.secs = -1;
		lifecycle_emit(lc_of(p), &e);
		proc_remove(p);
		upgrade_rollback(gen->svc, reason);
		return;
	}
	struct backoff_policy policy = {conf->restart_delay, conf->restart_delay_max, 0, 0};
	double delay = conf->restart_delay;
	backoff_next(&p->backoff, &policy, lifecycle_now(), 0, &delay);
	set_timer(p, delay);
	e.secs = delay;
	lifecycle_emit(lc_of(p), &e);
}

static void spawn_request_ids(struct spawn_request *req, const struct service_conf *conf)
{
	req->set_user = conf->has_user;
	req->uid = conf->uid;
	req->set_group = conf->has_user || conf->has_group;
	req->gid = conf->has_group ? conf->group_gid : conf->gid;
	req->groups = conf->groups;
	req->ngroups = conf->ngroups;
}

// The process started at t, as batond asked for it: what it takes to be
// ready counts from then, whatever kept batond from going on at once.
static void proc_started(struct proc *p, pid_t pid, int errfd, int readyfd, double t)
{
	struct service_conf *conf = p->gen->conf;
	struct lifecycle *lc = lc_of(p);
	p->pid = p->sid = pid;
	set_state(p, PROC_STARTING);
	p->spawned_at = t;
	p->ready_at = p->stop_at = p->signalled_at = p->kill_at = 0;
	p->exec_done = p->signalled = p->killed = p->killed_early = p->replace = false;
	replace_string(&p->error, NULL);
	replace_string(&p->status_text, NULL);
	replace_string(&p->fail_reason, NULL);
	if (pidmap_put(&lc->procs, pid, p) < 0)
		lifecycle_error(p->gen->svc, p, "out of memory: its exit will go unnoticed");
	p->unhealthy = false;
	health_attach(p);
	ev_io_set(&p->exec_io, errfd, EV_READ);
	ev_io_start(lc->loop, &p->exec_io);
	if (readyfd >= 0) {
		ev_io_set(&p->ready_io, readyfd, EV_READ);
		ev_io_start(lc->loop, &p->ready_io);
	}
	if (conf->ready.mode == READY_DELAY)
		set_timer(p, conf->ready.delay);
	else if (conf->ready.mode != READY_NONE)
		set_timer(p, conf->ready_timeout);
	lifecycle_emit_proc(LC_SPAWNED, p);
}

static void close_pair(int fds[2]);

// Makes the stdout and stderr pipes of a process whose output is captured:
// out and err get {read end, write end}, or -1s.
static int output_pipes(struct proc *p, int out[2], int err[2])
{
	out[0] = out[1] = err[0] = err[1] = -1;
	if (p->gen->conf->log.sink == LOG_INHERIT)
		return 0;
	if (pipe2(out, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(err, O_CLOEXEC) == 0 && fcntl(out[0], F_SETFL, O_NONBLOCK) == 0 &&
		fcntl(err[0], F_SETFL, O_NONBLOCK) == 0)
		return 0;
	int saved = errno;
	close_pair(out);
	close_pair(err);
	errno = saved;
	return -1;
}

static void close_pair(int fds[2])
{
	for (int i = 0; i < 2; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
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

// Starts the request's process; returns its pid, or -1 with errno set. The
// pipes' write ends are the child's only.
static pid_t start(struct proc *p, struct spawn_request *req, int *errfd)
{
	pid_t pid = host_of(p)->spawn(host_of(p), req, errfd);
	int saved = errno;
	int ends[] = {req->ready_source, req->out_fd, req->err_fd};
	for (size_t i = 0; i < 3; i++) {
		if (ends[i] >= 0)
			close(ends[i]);
	}
	errno = saved;
	return pid;
}

static void proc_spawn(struct proc *p)
{
	struct service_conf *conf = p->gen->conf;
	struct listener *ls[SPAWN_FDS_MAX];
	int fds[SPAWN_FDS_MAX], rfds[2];
	char err[256], why[200];
	if (pin_changed(&p->gen->pin, why, sizeof(why))) {
		// A generation runs the program it started with, or nothing.
		snprintf(err, sizeof(err), "%s after gen %u pinned it: upgrade to run it", why,
			p->gen->number);
		spawn_failed(p, err);
		return;
	}
	if (collect_listeners(p, ls, err, sizeof(err)) < 0) {
		spawn_failed(p, err);
		return;
	}
	for (size_t i = 0; i < conf->nsockets; i++)
		fds[i] = ls[i]->fd;
	struct spawn_env env;
	int listen_pid = build_env(p, &env, ls), out[2], errp[2];
	if (env.failed || ready_pipe(p, rfds) < 0 || output_pipes(p, out, errp) < 0) {
		snprintf(err, sizeof(err), "%s", env.failed ? "out of memory" : strerror(errno));
		spawn_env_finish(&env);
		close_pair(rfds);
		spawn_failed(p, err);
		return;
	}
	struct spawn_request req = {
		.argv = conf->argv,
		.envp = env.vars,
		.listen_pid_index = listen_pid,
		.watchdog_pid_index = conf->watchdog > 0 ? spawn_env_pid(&env, "WATCHDOG_PID") : -1,
		.fds = fds,
		.nfds = conf->nsockets,
		.ready_fd = conf->ready.mode == READY_FD ? conf->ready.fd : -1,
		.ready_source = rfds[1],
		.out_fd = out[1],
		.err_fd = errp[1],
		.settings = conf,
		.cgroup_dir = p->gen->cgroup_dir,
		.start_nice = host_of(p)->set_priority ? (int)conf->start_nice : 0,
		.exe_fd = p->gen->pin.script ? -1 : p->gen->pin.exe_fd,
		.exe_path = p->gen->pin.exe_path,
	};
	spawn_request_ids(&req, conf);
	req.directory = p->gen->pin.directory ? p->gen->pin.directory : conf->directory;
	int errfd = -1;
	double t = lifecycle_now();
	pid_t pid = start(p, &req, &errfd);
	snprintf(err, sizeof(err), "fork: %s", strerror(errno));
	spawn_env_finish(&env);
	if (pid < 0) {
		int reads[] = {rfds[0], out[0], errp[0], -1};
		close_pair(reads);
		close_pair(reads + 2);
		spawn_failed(p, err);
		return;
	}
	proc_started(p, pid, errfd, rfds[0], t);
	p->niced = req.start_nice > 0;
	if (out[0] >= 0) {
		output_start(p, &p->out, out[0]);
		output_start(p, &p->err, errp[0]);
	}
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
	health_exec_done(p);
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

/* ---- stopping ---- */

static void send_stop_signal(struct proc *p)
{
	struct service_conf *conf = p->gen->conf;
	struct lifecycle_host *host = host_of(p);
	int sig = conf->stop_signal;
	host->kill(host, p->pid, sig);
	if (sig != SIGKILL && sig != SIGCONT)
		host->kill(host, p->pid, SIGCONT);
	p->signalled = true;
	p->probed = false;
	p->signalled_at = lifecycle_now();
	p->kill_at = p->signalled_at + conf->stop_grace;
	// First a look at its connections, a little before the deadline.
	double lead = conf->stop_grace > 2 * KILL_PROBE_LEAD ? KILL_PROBE_LEAD : conf->stop_grace / 2;
	set_timer(p, conf->stop_grace - lead);
	struct lifecycle_event e = lifecycle_proc_event(LC_SIGNALLED, p);
	e.t = p->signalled_at;
	e.signo = sig;
	e.secs = conf->stop_grace;
	lifecycle_emit(lc_of(p), &e);
}

// Sends SIGKILL now, and nothing slower: when many deadlines fall together,
// each waits on the ones before it. The report follows when the loop is idle.
// Whether p is the last process of a draining generation still given time:
// its deadline is the generation's, and ends whatever is in its cgroup.
static bool last_of_drain(const struct proc *p)
{
	if (!p->gen->cgroup || p->gen->role != GEN_DRAINING)
		return false;
	const struct list *pos;
	list_for_each(pos, &p->gen->procs) {
		const struct proc *q = container_of(pos, const struct proc, link);
		if (q != p && q->pid > 0 && !q->killed)
			return false;
	}
	return true;
}

void proc_kill_now(struct proc *p, const char *why)
{
	struct lifecycle_host *host = host_of(p);
	host->kill(host, -p->sid, SIGKILL);
	host->kill(host, p->pid, SIGKILL);
	if (last_of_drain(p)) {
		// Its own processes are told as they are reaped; the others here.
		char who[512];
		struct generation *gen = p->gen;
		struct lifecycle_event e = lifecycle_gen_event(LC_STRAYS_KILLED, gen);
		e.count = host->cgroup_signal(host, gen, SIGKILL, who, sizeof(who));
		e.text = who;
		e.len = strlen(who);
		gen->strays_signalled = gen->strays_killed = true;
		generation_stray_timer(gen, 1.0);
		if (e.count > 0) {
			gen->svc->kills += e.count;
			lifecycle_emit(lc_of(p), &e);
		}
	}
	char grace[32], reason[96];
	format_duration(p->gen->conf->stop_grace, grace, sizeof(grace));
	snprintf(reason, sizeof(reason), "still running after its %s stop_grace", grace);
	lifecycle_report_kill(p, why ? why : reason);
	p->killed = true;
	if (!p->signalled) {
		p->signalled = true;
		p->signalled_at = lifecycle_now();
	}
	p->kill_at = lifecycle_now();
}

void proc_stop(struct proc *p)
{
	if (p->state == PROC_STOPPING || p->pid <= 0)
		return;
	bool was_ready = p->state == PROC_READY;
	health_stop(p);
	set_state(p, PROC_STOPPING);
	p->stop_at = lifecycle_now();
	close_watched_fd(loop_of(p), &p->ready_io);
	double delay = p->gen->conf->stop_delay;
	bool delayed = delay > 0 && was_ready && !p->replace;
	struct lifecycle_event e = lifecycle_proc_event(LC_STOPPING, p);
	e.secs = delayed ? delay : 0;
	lifecycle_emit(lc_of(p), &e);
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
	struct lifecycle_event e = lifecycle_proc_event(LC_UNREADY, p);
	e.reason = reason;
	lifecycle_emit(lc_of(p), &e);
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
	char msg[128 + CHECK_LINE_MAX], when[32];
	format_duration(conf->ready_timeout, when, sizeof(when));
	int n = snprintf(msg, sizeof(msg), "not ready after %s (ready_timeout)", when);
	if (p->health && p->health->checked)
		snprintf(msg + n, sizeof(msg) - (size_t)n, "; its check: %s",
			p->health->last[0] ? p->health->last : "no output");
	proc_fail(p, msg);
}

// The stopping process's timer: the stop signal after stop_delay, a look at
// its connections a little before the deadline, then SIGKILL.
static void stopping_deadline(struct proc *p)
{
	if (!p->signalled) {
		send_stop_signal(p);
	} else if (!p->probed) {
		// What it still holds is what its missing cleanup leaves behind.
		p->conns_at_kill = host_of(p)->count_conns(host_of(p), p->pid);
		p->probed = true;
		set_timer(p, p->kill_at - lifecycle_now());
	} else if (!p->killed) {
		// The whole grace, to the microsecond, whatever the timer's rounding.
		double left = p->kill_at - lifecycle_now();
		if (left > 0)
			set_timer(p, left);
		else
			proc_kill_now(p, NULL);
	}
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
		stopping_deadline(p);
		break;
	default:
		break;
	}
}

/* ---- what a process says ---- */

void proc_set_ready(struct proc *p)
{
	if (p->state != PROC_STARTING)
		return;
	struct service *svc = p->gen->svc;
	set_state(p, PROC_READY);
	p->ready_at = lifecycle_now();
	if (p->niced) {
		// Its own priority now that it serves: every thread of its group.
		const struct service_conf *c = p->gen->conf;
		struct lifecycle_host *host = host_of(p);
		host->set_priority(host, p->sid, c->has_nice ? c->nice : host->base_nice);
		p->niced = false;
	}
	ev_timer_stop(loop_of(p), &p->timer);
	close_watched_fd(loop_of(p), &p->ready_io);
	struct lifecycle_event e = lifecycle_proc_event(LC_READY, p);
	e.secs = p->ready_at - p->spawned_at;
	lifecycle_emit(svc->lc, &e);
	health_ready(p);
	// What it replaces drains now that it serves.
	struct proc *old = p->replaces;
	if (old) {
		old->replaced_by = p->replaces = NULL;
		proc_stop(old);
	}
	if (p->gen->role == GEN_NEXT)
		upgrade_step(svc);
}

int proc_set_main_pid(struct proc *p, pid_t pid)
{
	struct lifecycle *lc = lc_of(p);
	// Only a process of the service's own session: it is a descendant that
	// batond, as a subreaper, will reap, and nobody else's process.
	if (lc->host->session_of(lc->host, pid) != p->sid || pidmap_get(&lc->procs, pid)) {
		errno = EPERM;
		return -1;
	}
	if (pidmap_put(&lc->procs, pid, p) < 0) {
		errno = ENOMEM;
		return -1;
	}
	pidmap_remove(&lc->procs, p->pid);
	struct lifecycle_event e = lifecycle_proc_event(LC_MAIN_PID, p);
	p->pid = pid;
	lifecycle_emit(lc, &e);
	return 0;
}

void proc_set_status(struct proc *p, const char *text)
{
	if (p->status_text && strcmp(p->status_text, text) == 0)
		return;
	replace_string(&p->status_text, text);
	lifecycle_emit_proc(LC_STATUS, p);
}

void proc_extend_timeout(struct proc *p, double secs)
{
	if (!ev_is_active(&p->timer))
		return;
	double left = ev_timer_remaining(loop_of(p), &p->timer);
	if (left >= secs)
		return;
	if (p->state == PROC_STOPPING && p->signalled)
		p->kill_at = lifecycle_now() + secs;
	set_timer(p, secs);
}

double proc_timer_at(const struct proc *p)
{
	if (!ev_is_active(&p->timer))
		return 0;
	return lifecycle_now() + ev_timer_remaining(loop_of(p), (ev_timer *)&p->timer);
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
	const struct cgroup_limit_conf *max = &p->gen->conf->cgroup_limits[CGROUP_MEMORY_MAX];
	if (p->oom)
		snprintf(st, sizeof(st), "killed by the kernel's OOM killer%s%s%s",
			max->set ? " (memory_max " : "", max->set ? max->text : "", max->set ? ")" : "");
	if (p->error)
		snprintf(out, outlen, "%s", p->error);
	else if (p->fail_reason)
		snprintf(out, outlen, "%s, then %s", p->fail_reason, st);
	else
		snprintf(out, outlen, "%s", st);
}

// Tells of an exit, once its process is in its last state (so that the drain
// counts it no more); one that was asked to stop tells how long it took.
static void emit_exit(struct proc *p, enum lifecycle_kind kind, const char *desc, bool stopped)
{
	set_state(p, kind == LC_KILLED ? PROC_KILLED : PROC_EXITED);
	struct lifecycle_event e = lifecycle_proc_event(kind, p);
	e.reason = desc;
	e.stopped = stopped;
	e.failed = failed_exit(p);
	e.oom = p->oom;
	e.conns = kind == LC_KILLED ? p->conns_at_kill : -1;
	e.secs = stopped ? e.t - p->stop_at : -1;
	lifecycle_emit(lc_of(p), &e);
}

// A process that was asked to stop has exited.
static void proc_finished(struct proc *p)
{
	struct generation *gen = p->gen;
	char desc[384];
	describe_end(p, desc, sizeof(desc));
	// The SIGKILL is told before what came of it.
	lifecycle_flush_kills(lc_of(p));
	// One that exited by itself as SIGKILL was sent ran its cleanup: not killed.
	bool killed = p->killed && !WIFEXITED(p->wait_status);
	if (killed)
		gen->svc->kills++;
	emit_exit(p, killed ? LC_KILLED : LC_EXITED, desc, true);
	proc_remove(p);
	generation_check_empty(gen);
}

static void restart_later(struct proc *p, const char *desc)
{
	struct generation *gen = p->gen;
	struct service *svc = gen->svc;
	struct service_conf *conf = gen->conf;
	struct backoff_policy policy = {conf->restart_delay, conf->restart_delay_max,
		conf->start_limit_burst, conf->start_limit_interval};
	char when[32];
	double delay, t = lifecycle_now();
	if (!backoff_next(&p->backoff, &policy, t, t - p->spawned_at, &delay)) {
		format_duration(conf->start_limit_interval, when, sizeof(when));
		proc_remove(p);
		service_fail(svc, "crash loop: restarted %u times within %s (start_limit); last: %s",
			conf->start_limit_burst, when, desc);
		return;
	}
	struct lifecycle_event e = lifecycle_proc_event(LC_RESTARTING, p);
	e.reason = desc;
	e.secs = delay;
	e.oom = p->oom;
	p->oom = false;
	set_state(p, PROC_WAITING);
	p->pid = 0;
	p->restarts++;
	svc->restarts++;
	lifecycle_emit(svc->lc, &e);
	set_timer(p, delay);
}

// A process of an upgrade's new generation exited: the upgrade rolls back.
static void next_died(struct proc *p, const char *desc)
{
	struct service *svc = p->gen->svc;
	char label[128], msg[600];
	snprintf(msg, sizeof(msg), "%s: %s %s", proc_label(p, label, sizeof(label)), desc,
		p->state == PROC_READY ? "during the upgrade" : "before it was ready");
	emit_exit(p, LC_EXITED, desc, false);
	proc_remove(p);
	upgrade_rollback(svc, msg);
}

// A process that is not restarted ended; the service fails with its last one.
static void proc_ended(struct proc *p, const char *desc)
{
	struct generation *gen = p->gen;
	struct service *svc = gen->svc;
	char label[128];
	if (failed_exit(p)) {
		// The service fails with its last process; until then it is degraded.
		svc->failed = gen->procs.next->next == &gen->procs;
		snprintf(svc->reason, sizeof(svc->reason), "%s: %s; restart = %s",
			proc_label(p, label, sizeof(label)), desc, restart_name(gen->conf->restart));
		if (svc->failed)
			lifecycle_emit_proc(LC_FAILED, p);
	}
	emit_exit(p, LC_EXITED, desc, false);
	proc_remove(p);
	generation_check_empty(gen);
}

// An unhealthy process exited before its replacement was ready: no restart.
static void replaced_died(struct proc *p, const char *desc)
{
	struct lifecycle_event e = lifecycle_proc_event(LC_EXITED, p);
	set_state(p, PROC_EXITED);
	e.reason = desc;
	e.failed = failed_exit(p);
	e.replaced = true;
	lifecycle_emit(lc_of(p), &e);
	proc_remove(p);
}

// A process exited that nobody asked to stop, or one that failed.
static void proc_died(struct proc *p)
{
	struct generation *gen = p->gen;
	char desc[384];
	describe_end(p, desc, sizeof(desc));
	if (gen->role == GEN_NEXT)
		next_died(p, desc);
	else if (gen->role == GEN_DRAINING || !gen->svc->wanted)
		proc_finished(p);
	else if (p->replaced_by)
		replaced_died(p, desc);
	else if (should_restart(p))
		restart_later(p, desc);
	else
		proc_ended(p, desc);
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

bool lifecycle_reap(struct lifecycle *lc, pid_t pid, int status)
{
	struct proc *p = pidmap_get(&lc->procs, pid);
	if (!p) {
		// An orphan may have been the last to hold a pipe of a process gone before.
		lifecycle_release_output(lc);
		return health_reap(lc, pid, status) || gate_reap(lc, pid, status);
	}
	health_stop(p);
	pidmap_remove(&lc->procs, pid);
	p->wait_status = status;
	p->oom = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && !p->killed &&
		generation_saw_oom(p->gen);
	if (p->oom)
		p->gen->svc->oom_kills++;
	collect_exec_error(p);
	generation_hold_output(p->gen, p->out.io.fd);
	generation_hold_output(p->gen, p->err.io.fd);
	drain_output(p, &p->out);
	drain_output(p, &p->err);
	proc_clear_fds(p);
	ev_timer_stop(lc->loop, &p->timer);
	if (p->state == PROC_STOPPING && !p->replace)
		proc_finished(p);
	else
		proc_died(p);
	return true;
}

/* ---- a re-exec ---- */

static void restore_fields(struct proc *p, const struct proc *saved)
{
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
}

static void restore_io(struct proc *p, ev_io *io, int fd)
{
	if (fd < 0)
		return;
	ev_io_set(io, fd, EV_READ);
	ev_io_start(loop_of(p), io);
}

// The unfinished line of a stream, as the batond before kept it.
static void restore_lines(struct proc_output *o, const struct proc_output *saved)
{
	size_t len;
	bool dropping;
	const char *bytes = linebuf_pending(&saved->lines, &len, &dropping);
	if (len || dropping)
		linebuf_restore(&o->lines, bytes, len, dropping);
}

struct proc *proc_restore(struct generation *gen, const struct proc *saved, double timer_at,
	const struct proc_fds *fds)
{
	struct proc *p = proc_create(gen, saved->instance);
	if (!p)
		return NULL;
	struct lifecycle *lc = gen->svc->lc;
	restore_fields(p, saved);
	set_state(p, saved->state);
	if (p->pid > 0 && pidmap_put(&lc->procs, p->pid, p) < 0)
		lifecycle_error(gen->svc, p, "out of memory: its exit will go unnoticed");
	restore_io(p, &p->exec_io, fds->exec);
	restore_io(p, &p->ready_io, fds->ready);
	restore_lines(&p->out, &saved->out);
	restore_lines(&p->err, &saved->err);
	if (fds->out >= 0) {
		output_start(p, &p->out, fds->out);
		output_start(p, &p->err, fds->err);
	}
	if (timer_at > 0)
		set_timer(p, timer_at - lifecycle_now());
	// Its checks and watchdog start over.
	if (p->pid > 0)
		health_attach(p);
	if (p->state == PROC_READY)
		health_ready(p);
	else if (p->state == PROC_STARTING && p->exec_done)
		health_exec_done(p);
	return p;
}
