#include "lifecycle_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "parse.h"

/*
 * An upgrade's gate: a command run on each batch of new processes once they
 * are ready, before any old one goes for them. It exits 0 to let the upgrade
 * go on; anything else, or its timeout, rolls the upgrade back, with its
 * last line of output as the reason.
 */

extern char **environ;

// What a gate's output is read of, at most, once it has exited.
#define GATE_DRAIN_MAX 65536

static void gate_out_cb(struct ev_loop *loop, ev_io *w, int revents);
static void gate_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static struct lifecycle *lc_of(const struct upgrade_gate *g)
{
	return g->svc->lc;
}

// The pids of gen's processes, blank-separated, into out.
static void pids_of(const struct generation *gen, char *out, size_t len)
{
	size_t n = 0;
	out[0] = '\0';
	if (!gen)
		return;
	const struct list *pos;
	list_for_each(pos, &gen->procs) {
		const struct proc *p = container_of(pos, const struct proc, link);
		if (p->pid > 0 && n < len)
			n += (size_t)snprintf(out + n, len - n, "%s%d", n ? " " : "", (int)p->pid);
	}
}

static void gate_env(struct service *svc, struct spawn_env *env)
{
	char pids[4096], phase[64];
	const struct generation *old = svc->current, *gen = svc->next;
	spawn_env_init(env, environ, gen->pin.env);
	spawn_env_add(env, "BATON_SERVICE=%s", svc->name);
	spawn_env_add(env, "BATON_OLD_GEN=%u", old ? old->number : 0);
	spawn_env_add(env, "BATON_NEW_GEN=%u", gen->number);
	pids_of(old, pids, sizeof(pids));
	spawn_env_add(env, "BATON_OLD_PIDS=%s", pids);
	pids_of(gen, pids, sizeof(pids));
	spawn_env_add(env, "BATON_NEW_PIDS=%s", pids);
	// On the canaries, the phase they make; on a batch, which one.
	const struct upgrade *u = &svc->upgrade;
	if (u->canary && u->spawned == u->canary)
		snprintf(phase, sizeof(phase), "canary");
	else
		upgrade_phase(svc, phase, sizeof(phase));
	spawn_env_add(env, "BATON_UPGRADE_PHASE=%s", phase);
}

static pid_t spawn_gate(struct upgrade_gate *g, int out[2])
{
	struct service *svc = g->svc;
	const struct service_conf *c = svc->next->conf;
	struct spawn_env env;
	gate_env(svc, &env);
	struct spawn_request req = {.argv = svc->upgrade.gate, .envp = env.vars,
		.listen_pid_index = -1, .watchdog_pid_index = -1, .ready_fd = -1,
		.ready_source = -1, .out_fd = out[1], .err_fd = out[1],
		.set_user = c->has_user, .uid = c->uid, .set_group = c->has_user || c->has_group,
		.gid = c->has_group ? c->group_gid : c->gid, .groups = c->groups,
		.ngroups = c->ngroups, .exe_fd = -1, .cgroup_dir = -1,
		.directory = svc->next->pin.directory ? svc->next->pin.directory : c->directory};
	struct lifecycle_host *host = lc_of(g)->host;
	pid_t pid = env.failed ? (errno = ENOMEM, -1) : host->spawn(host, &req, &g->errfd);
	spawn_env_finish(&env);
	close(out[1]);
	return pid;
}

int gate_start(struct service *svc, char *err, size_t errlen)
{
	struct lifecycle *lc = svc->lc;
	struct upgrade_gate *g = calloc(1, sizeof(*g));
	int out[2] = {-1, -1};
	if (!g || pipe2(out, O_CLOEXEC) < 0 || fcntl(out[0], F_SETFL, O_NONBLOCK) < 0) {
		snprintf(err, errlen, "cannot start its gate: %s", strerror(errno ? errno : ENOMEM));
		if (out[0] >= 0) {
			close(out[0]);
			close(out[1]);
		}
		free(g);
		return -1;
	}
	g->svc = svc;
	g->errfd = -1;
	ev_io_init(&g->out, gate_out_cb, out[0], EV_READ);
	ev_timer_init(&g->timer, gate_timer_cb, svc->upgrade.gate_timeout, 0);
	if ((g->pid = spawn_gate(g, out)) < 0 || pidmap_put(&lc->gates, g->pid, g) < 0) {
		snprintf(err, errlen, "cannot start its gate %s: %s", svc->upgrade.gate[0],
			strerror(errno));
		if (g->pid > 0) {
			lc->host->kill(lc->host, -g->pid, SIGKILL);
			lc->host->kill(lc->host, g->pid, SIGKILL);
		}
		if (g->errfd >= 0)
			close(g->errfd);
		close(out[0]);
		free(g);
		return -1;
	}
	ev_io_start(lc->loop, &g->out);
	ev_timer_start(lc->loop, &g->timer);
	svc->upgrade.gate_run = g;
	return 0;
}

/* ---- its output: the last line is what it says ---- */

static void keep_output(struct upgrade_gate *g, const char *bytes, size_t n)
{
	size_t len = strlen(g->partial);
	for (size_t i = 0; i < n; i++) {
		if (bytes[i] == '\n' || bytes[i] == '\0') {
			if (len > 0)
				memcpy(g->last, g->partial, len + 1);
			len = 0;
		} else if (len < CHECK_LINE_MAX) {
			g->partial[len++] = bytes[i];
		}
		g->partial[len] = '\0';
	}
}

static int read_output(struct upgrade_gate *g)
{
	char buf[4096];
	ssize_t n = read(g->out.fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	keep_output(g, buf, (size_t)n);
	return (int)n;
}

static void close_output(struct upgrade_gate *g)
{
	if (g->out.fd < 0)
		return;
	ev_io_stop(lc_of(g)->loop, &g->out);
	close(g->out.fd);
	ev_io_set(&g->out, -1, EV_READ);
}

static void gate_out_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct upgrade_gate *g = container_of(w, struct upgrade_gate, out);
	if (read_output(g) < 0)
		close_output(g);
}

static void gate_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct upgrade_gate *g = container_of(w, struct upgrade_gate, timer);
	struct lifecycle_host *host = lc_of(g)->host;
	g->timed_out = true;
	host->kill(host, -g->pid, SIGKILL);
	host->kill(host, g->pid, SIGKILL);
}

/* ---- its end ---- */

static void gate_free(struct upgrade_gate *g)
{
	close_output(g);
	ev_timer_stop(lc_of(g)->loop, &g->timer);
	if (g->errfd >= 0)
		close(g->errfd);
	free(g);
}

void gate_cancel(struct service *svc)
{
	struct upgrade_gate *g = svc->upgrade.gate_run;
	if (!g)
		return;
	struct lifecycle *lc = svc->lc;
	svc->upgrade.gate_run = NULL;
	// Its process is reaped later, as a gate of nothing.
	pidmap_put(&lc->gates, g->pid, &lc->abandoned);
	lc->host->kill(lc->host, -g->pid, SIGKILL);
	lc->host->kill(lc->host, g->pid, SIGKILL);
	gate_free(g);
}

// What the gate said: why it failed, and its last line.
static bool describe(struct upgrade_gate *g, int status, char *why, size_t len)
{
	char msg[320], st[128] = "";
	const char *line = g->last[0] ? g->last : g->partial;
	if (g->errfd >= 0 && spawn_read_error(g->errfd, msg, sizeof(msg)) == 1) {
		snprintf(why, len, "gate: %s", msg);
		return false;
	}
	if (g->timed_out) {
		format_duration(g->svc->upgrade.gate_timeout, st, sizeof(st));
		snprintf(why, len, "gate timed out after %s%s%s", st, line[0] ? ": " : "", line);
		return false;
	}
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	describe_status(status, st, sizeof(st));
	if (ok)
		snprintf(why, len, "%s", line);
	else if (line[0])
		snprintf(why, len, "gate: %s", line);
	else
		snprintf(why, len, "gate %s %s", g->svc->upgrade.gate[0], st);
	return ok;
}

bool gate_reap(struct lifecycle *lc, pid_t pid, int status)
{
	struct upgrade_gate *g = pidmap_get(&lc->gates, pid);
	if (!g)
		return false;
	pidmap_remove(&lc->gates, pid);
	if ((void *)g == (void *)&lc->abandoned)
		return true;
	for (int total = 0, n = 0; g->out.fd >= 0 && total < GATE_DRAIN_MAX; total += n) {
		if ((n = read_output(g)) <= 0)
			break;
	}
	char why[CHECK_LINE_MAX + 256];
	bool ok = describe(g, status, why, sizeof(why));
	struct service *svc = g->svc;
	svc->upgrade.gate_run = NULL;
	gate_free(g);
	upgrade_gate_done(svc, ok, why);
	return true;
}
