#include "lifecycle_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "parse.h"

extern char **environ;

// Checks running at once, across every service: the others wait their turn.
#define CHECKS_MAX 32
// What a check's output is read of, at most, when it ends.
#define CHECK_DRAIN_MAX 65536

static void check_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void check_out_cb(struct ev_loop *loop, ev_io *w, int revents);
static void check_ended(struct proc_health *h, bool ok);
static void set_last(struct proc_health *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents);

static struct lifecycle *lc_of(const struct proc_health *h)
{
	return h->p->gen->svc->lc;
}

static bool has_health(const struct service_conf *c)
{
	return c->ready.mode == READY_EXEC || c->check.command || c->watchdog > 0;
}

void health_attach(struct proc *p)
{
	if (!has_health(p->gen->conf) || (!p->health && !(p->health = calloc(1, sizeof(*p->health)))))
		return;
	struct proc_health *h = p->health;
	memset(h, 0, sizeof(*h));
	h->p = p;
	h->errfd = -1;
	ev_io_init(&h->out, check_out_cb, -1, EV_READ);
	ev_timer_init(&h->timer, check_timer_cb, 0, 0);
	ev_timer_init(&h->watchdog, watchdog_cb, 0, 0);
	list_init(&h->queue);
}

/* ---- a run ---- */

static void check_env(struct proc *p, struct spawn_env *env)
{
	struct generation *gen = p->gen;
	spawn_env_init(env, environ, gen->pin.env);
	spawn_env_add(env, "BATON_PID=%d", (int)p->pid);
	spawn_env_add(env, "BATON_SERVICE=%s", gen->svc->name);
	spawn_env_add(env, "BATON_GENERATION=%u", gen->number);
	spawn_env_add(env, "BATON_INSTANCE=%u", p->instance);
}

static const struct check_conf *check_of(const struct proc *p)
{
	const struct service_conf *c = p->gen->conf;
	return p->state == PROC_STARTING ? &c->ready_check : &c->check;
}

// Starts the check's process; returns its pid, or -1 with h->last saying why.
static pid_t spawn_check(struct proc_health *h, int out[2])
{
	struct proc *p = h->p;
	const struct service_conf *c = p->gen->conf;
	struct spawn_env env;
	check_env(p, &env);
	struct spawn_request req = {.argv = check_of(p)->argv, .envp = env.vars,
		.listen_pid_index = -1, .watchdog_pid_index = -1, .ready_fd = -1,
		.ready_source = -1, .out_fd = out[1], .err_fd = out[1],
		.set_user = c->has_user, .uid = c->uid, .set_group = c->has_user || c->has_group,
		.gid = c->has_group ? c->group_gid : c->gid, .groups = c->groups,
		.ngroups = c->ngroups, .exe_fd = -1, .cgroup_dir = -1,
		.directory = p->gen->pin.directory ? p->gen->pin.directory : c->directory};
	struct lifecycle_host *host = lc_of(h)->host;
	pid_t pid = env.failed ? (errno = ENOMEM, -1) : host->spawn(host, &req, &h->errfd);
	if (pid < 0)
		set_last(h, "cannot start its check: %s", strerror(errno));
	spawn_env_finish(&env);
	close(out[1]);
	return pid;
}

static void run_check(struct proc_health *h)
{
	struct lifecycle *lc = lc_of(h);
	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0 || fcntl(out[0], F_SETFL, O_NONBLOCK) < 0) {
		set_last(h, "cannot start its check: %s", strerror(errno));
		check_ended(h, false);
		return;
	}
	h->line[0] = '\0';
	h->got_line = h->timed_out = false;
	if ((h->pid = spawn_check(h, out)) < 0 || pidmap_put(&lc->checks, h->pid, h) < 0) {
		close(out[0]);
		h->pid = 0;
		check_ended(h, false);
		return;
	}
	lc->checks_running++;
	ev_io_set(&h->out, out[0], EV_READ);
	ev_io_start(lc->loop, &h->out);
	ev_timer_set(&h->timer, h->p->gen->conf->check_timeout, 0);
	ev_timer_start(lc->loop, &h->timer);
}

// A run when a place is free, else in turn.
static void check_now(struct proc_health *h)
{
	struct lifecycle *lc = lc_of(h);
	if (lc->checks_running < CHECKS_MAX)
		run_check(h);
	else if (list_empty(&h->queue))
		list_append(&lc->check_queue, &h->queue);
}

static void check_later(struct proc_health *h)
{
	struct lifecycle *lc = lc_of(h);
	ev_timer_stop(lc->loop, &h->timer);
	ev_timer_set(&h->timer, h->p->gen->conf->check_interval, 0);
	ev_timer_start(lc->loop, &h->timer);
}

static void check_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct proc_health *h = container_of(w, struct proc_health, timer);
	if (!h->pid) {
		check_now(h);
		return;
	}
	// Its check_timeout: the check and what it started end now.
	h->timed_out = true;
	struct lifecycle_host *host = lc_of(h)->host;
	host->kill(host, -h->pid, SIGKILL);
	host->kill(host, h->pid, SIGKILL);
}

/* ---- its output ---- */

static void keep_output(struct proc_health *h, const char *bytes, size_t n)
{
	size_t len = strlen(h->line);
	for (size_t i = 0; i < n && !h->got_line; i++) {
		if (bytes[i] == '\n' || bytes[i] == '\0')
			h->got_line = len > 0;
		else if (len < CHECK_LINE_MAX)
			h->line[len++] = bytes[i];
	}
	h->line[len] = '\0';
}

// Reads what the check wrote; returns -1 at the end of its output.
static int read_output(struct proc_health *h)
{
	char buf[4096];
	ssize_t n = read(h->out.fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	keep_output(h, buf, (size_t)n);
	return (int)n;
}

static void close_output(struct proc_health *h)
{
	if (h->out.fd < 0)
		return;
	ev_io_stop(lc_of(h)->loop, &h->out);
	close(h->out.fd);
	ev_io_set(&h->out, -1, EV_READ);
}

static void check_out_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct proc_health *h = container_of(w, struct proc_health, out);
	if (read_output(h) < 0)
		close_output(h);
}

/* ---- the result ---- */

// What the last run said, cut to what is kept.
static void set_last(struct proc_health *h, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->last, sizeof(h->last), fmt, ap);
	va_end(ap);
}

// What the run said: its first line, or why it failed and that line.
static void describe_run(struct proc_health *h, int status, const char *exec_error)
{
	char st[128] = "";
	const char *sep = h->line[0] ? ": " : "";
	if (exec_error) {
		set_last(h, "%s", exec_error);
		return;
	}
	if (h->timed_out) {
		format_duration(h->p->gen->conf->check_timeout, st, sizeof(st));
		set_last(h, "timed out after %s%s%s", st, sep, h->line);
		return;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		describe_status(status, st, sizeof(st));
	set_last(h, "%s%s%s", st, st[0] ? sep : "", h->line);
}

static void next_in_turn(struct lifecycle *lc)
{
	while (!list_empty(&lc->check_queue) && lc->checks_running < CHECKS_MAX) {
		struct proc_health *h = container_of(lc->check_queue.next, struct proc_health, queue);
		list_remove(&h->queue);
		run_check(h);
	}
}

// A check's process ended: what it wrote, and what came of it.
static void finish_run(struct proc_health *h, int status)
{
	struct lifecycle *lc = lc_of(h);
	char msg[320];
	bool failed_exec = h->errfd >= 0 && spawn_read_error(h->errfd, msg, sizeof(msg)) == 1;
	if (h->errfd >= 0)
		close(h->errfd);
	h->errfd = -1;
	for (int total = 0, n = 0; h->out.fd >= 0 && total < CHECK_DRAIN_MAX; total += n) {
		if ((n = read_output(h)) <= 0)
			break;
	}
	close_output(h);
	ev_timer_stop(lc->loop, &h->timer);
	h->pid = 0;
	lc->checks_running--;
	describe_run(h, status, failed_exec ? msg : NULL);
	check_ended(h, !failed_exec && !h->timed_out && WIFEXITED(status) &&
		WEXITSTATUS(status) == 0);
}

bool health_reap(struct lifecycle *lc, pid_t pid, int status)
{
	void *v = pidmap_get(&lc->checks, pid);
	if (!v)
		return false;
	pidmap_remove(&lc->checks, pid);
	if (v == &lc->abandoned) {
		lc->checks_running--;
		next_in_turn(lc);
		return true;
	}
	finish_run(v, status);
	next_in_turn(lc);
	return true;
}

/* ---- beginning and ending ---- */

void health_exec_done(struct proc *p)
{
	struct proc_health *h = p->health;
	if (!h || p->gen->conf->ready.mode != READY_EXEC || p->state != PROC_STARTING)
		return;
	h->since = lifecycle_now();
	check_now(h);
}

void health_ready(struct proc *p)
{
	struct proc_health *h = p->health;
	if (!h)
		return;
	const struct service_conf *c = p->gen->conf;
	h->failures = 0;
	if (c->check.command)
		check_later(h);
	if (c->watchdog > 0) {
		ev_timer_set(&h->watchdog, c->watchdog, 0);
		ev_timer_start(lc_of(h)->loop, &h->watchdog);
	}
}

void health_stop(struct proc *p)
{
	struct proc_health *h = p->health;
	if (!h)
		return;
	struct lifecycle *lc = lc_of(h);
	ev_timer_stop(lc->loop, &h->timer);
	ev_timer_stop(lc->loop, &h->watchdog);
	list_remove(&h->queue);
	close_output(h);
	if (h->errfd >= 0)
		close(h->errfd);
	h->errfd = -1;
	if (!h->pid)
		return;
	// Its process is reaped later, as a check of nothing.
	pidmap_put(&lc->checks, h->pid, &lc->abandoned);
	lc->host->kill(lc->host, -h->pid, SIGKILL);
	lc->host->kill(lc->host, h->pid, SIGKILL);
	h->pid = 0;
}

void health_free(struct proc *p)
{
	health_stop(p);
	free(p->health);
	p->health = NULL;
}

/* ---- what a check's result does ---- */

static void tell_check(struct proc_health *h, bool ok, unsigned failures)
{
	struct proc *p = h->p;
	struct lifecycle_event e = lifecycle_proc_event(LC_CHECK, p);
	e.ok = ok;
	e.reason = h->last;
	e.count = failures;
	e.stopped = p->state == PROC_STARTING; /* a readiness check */
	lifecycle_emit(lc_of(h), &e);
}

static void check_ended(struct proc_health *h, bool ok)
{
	struct proc *p = h->p;
	struct service *svc = p->gen->svc;
	unsigned before = h->failures;
	h->checked = true;
	h->ok = ok;
	h->last_at = lifecycle_now();
	h->failures = ok ? 0 : h->failures + 1;
	if (ok)
		svc->checks_ok++;
	else
		svc->checks_failed++;
	tell_check(h, ok, ok ? before : h->failures);
	if (p->state == PROC_STARTING) {
		if (ok)
			proc_set_ready(p);
		else
			check_later(h);
		return;
	}
	if (p->state != PROC_READY)
		return;
	if (h->failures < p->gen->conf->check_failures) {
		check_later(h);
		return;
	}
	char reason[CHECK_LINE_MAX + 64];
	snprintf(reason, sizeof(reason), "check failed %u time%s in a row: %s", h->failures,
		h->failures == 1 ? "" : "s", h->last);
	proc_unhealthy(p, reason);
}

/* ---- the watchdog ---- */

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct proc_health *h = container_of(w, struct proc_health, watchdog);
	char reason[96], when[32];
	format_duration(h->p->gen->conf->watchdog, when, sizeof(when));
	snprintf(reason, sizeof(reason), "no WATCHDOG=1 within %s (watchdog)", when);
	proc_unhealthy(h->p, reason);
}

void proc_watchdog(struct proc *p, bool trigger)
{
	struct proc_health *h = p->health;
	if (!h || p->state != PROC_READY || !p->gen->conf->watchdog)
		return;
	if (trigger) {
		proc_unhealthy(p, "WATCHDOG=trigger");
		return;
	}
	ev_timer_stop(lc_of(h)->loop, &h->watchdog);
	ev_timer_set(&h->watchdog, p->gen->conf->watchdog, 0);
	ev_timer_start(lc_of(h)->loop, &h->watchdog);
}

/* ---- an unhealthy process ---- */

static void tell_unhealthy(struct proc *p, const char *reason, double replace_in)
{
	struct lifecycle_event e = lifecycle_proc_event(LC_UNHEALTHY, p);
	e.reason = reason;
	e.secs = replace_in;
	lifecycle_emit(p->gen->svc->lc, &e);
}

// Starts a process of the same instance, after the restart delay; the
// unhealthy one drains once it is ready. Too many, and the service fails.
static void replace(struct proc *p, const char *reason)
{
	struct service *svc = p->gen->svc;
	const struct service_conf *c = p->gen->conf;
	struct backoff_policy policy = {c->restart_delay, c->restart_delay_max,
		c->start_limit_burst, c->start_limit_interval};
	double delay, t = lifecycle_now();
	char when[32];
	if (!backoff_next(&p->backoff, &policy, t, t - p->spawned_at, &delay)) {
		tell_unhealthy(p, reason, -1);
		format_duration(c->start_limit_interval, when, sizeof(when));
		service_fail(svc, "crash loop: replaced %u times within %s (start_limit); last: %s",
			c->start_limit_burst, when, reason);
		return;
	}
	tell_unhealthy(p, reason, delay);
	struct proc *q = proc_spawn_later(p->gen, p->instance, delay);
	if (!q)
		return;
	q->backoff = p->backoff;
	q->replaces = p;
	p->replaced_by = q;
}

void proc_unhealthy(struct proc *p, const char *reason)
{
	if (p->unhealthy || p->state != PROC_READY)
		return;
	struct service *svc = p->gen->svc;
	p->unhealthy = true;
	svc->unhealthy++;
	health_stop(p);
	if (p->gen->role != GEN_NEXT) {
		replace(p, reason);
		return;
	}
	char label[128], msg[CHECK_LINE_MAX + 256];
	snprintf(msg, sizeof(msg), "%s: unhealthy: %s", proc_label(p, label, sizeof(label)), reason);
	tell_unhealthy(p, reason, -1);
	upgrade_rollback(svc, msg);
}
