#include "eventlog.h"

#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"
#include "log.h"
#include "parse.h"

struct eventlog {
	struct daemon *d;
	struct daemon_subscriber sub;
};

// The process of an event, "web[4242] gen 3", whether or not it still exists.
static const char *label_of(const struct lifecycle_event *e, char *buf, size_t len)
{
	if (e->pid > 0)
		snprintf(buf, len, "%s[%d] gen %u", e->svc->name, (int)e->pid, e->number);
	else
		snprintf(buf, len, "%s instance %u gen %u", e->svc->name, e->instance, e->number);
	return buf;
}

static const char *duration(double secs, char *buf, size_t len)
{
	format_duration(secs, buf, len);
	return buf;
}

static void log_spawn_failed(const struct lifecycle_event *e, const char *label)
{
	char when[32];
	// In an upgrade, the rollback tells why.
	if (e->secs >= 0)
		log_error("%s: cannot start: %s; retrying in %s", label, e->reason,
			duration(e->secs, when, sizeof(when)));
}

static void log_signalled(const struct lifecycle_event *e, const char *label)
{
	char grace[32];
	const char *sig = signal_name(e->signo);
	log_info("%s: sent SIG%s; SIGKILL in %s unless it exits", label, sig ? sig : "?",
		duration(e->secs, grace, sizeof(grace)));
}

static void log_restarting(const struct lifecycle_event *e, const char *label)
{
	char when[32];
	log_warn("%s: %s; restarting in %s", label, e->reason, duration(e->secs, when, sizeof(when)));
}

static void log_killed(const struct lifecycle_event *e, const char *label)
{
	const struct proc *p = e->proc;
	char grace[32], held[64] = "";
	if (e->conns >= 0)
		snprintf(held, sizeof(held), " holding %d connection%s", e->conns,
			e->conns == 1 ? "" : "s");
	log_warn("%s: %s%s %s its %s stop_grace: its cleanup did not run", label, e->reason, held,
		p->killed_early ? "before the end of" : "after",
		duration(p->gen->conf->stop_grace, grace, sizeof(grace)));
}

static void log_exited(const struct lifecycle_event *e, const char *label)
{
	const struct proc *p = e->proc;
	if (e->stopped) {
		log_info("%s: stopped: %s after %.3fs", label, e->reason,
			e->t - (p->signalled ? p->signalled_at : p->stop_at));
		return;
	}
	// In an upgrade, the rollback tells why.
	if (p->gen->role == GEN_NEXT)
		return;
	if (e->replaced)
		log_warn("%s: %s before its replacement was ready", label, e->reason);
	else
		log_msg(e->failed ? LOG_ERROR : LOG_INFO, "%s: %s; restart = %s", label, e->reason,
			restart_name(p->gen->conf->restart));
}

static void log_upgrade(const struct lifecycle_event *e)
{
	const char *name = e->svc->name;
	const struct generation *next = e->svc->next;
	if (e->state == UPGRADE_STARTED && next && e->count)
		log_info("%s: upgrading gen %u to gen %u: %u canar%s first", name, e->from, e->number,
			e->count, e->count == 1 ? "y" : "ies");
	else if (e->state == UPGRADE_STARTED && next)
		log_info("%s: upgrading gen %u to gen %u (%s)", name, e->from, e->number,
			next->conf->upgrade_batch ? "rolling" : "all at once");
	else if (e->state == UPGRADE_DONE)
		log_info("%s: upgrade to gen %u done in %.3fs", name, e->number, e->secs);
	else if (e->state == UPGRADE_ROLLED_BACK)
		log_error("%s: %s", name, e->svc->reason);
	else if (e->state == UPGRADE_ABORTED)
		log_warn("%s: upgrade to gen %u aborted: %s", name, e->number,
			e->reason ? e->reason : "");
	else if (e->state == UPGRADE_PAUSED)
		log_info("%s: upgrade to gen %u paused: %u canar%s ready beside the old processes; "
			 "batonctl upgrade --continue %s goes on, --abort ends it", name, e->number,
			e->count, e->count == 1 ? "y" : "ies", name);
	else if (e->state == UPGRADE_CONTINUED)
		log_info("%s: upgrade to gen %u goes on: %s", name, e->number,
			e->reason ? e->reason : "");
	else if (e->state == UPGRADE_GATING)
		log_info("%s: upgrade to gen %u: its gate runs on %u new process%s", name, e->number,
			e->spawned, e->spawned == 1 ? "" : "es");
	else if (e->state == UPGRADE_GATE_PASSED)
		log_info("%s: upgrade to gen %u: the gate passed%s%s", name, e->number,
			e->reason ? ": " : "", e->reason ? e->reason : "");
}

static void log_generation(const struct lifecycle_event *e)
{
	const struct service *svc = e->svc;
	const struct service_conf *conf = e->gen->conf;
	if (e->kind == LC_GEN_STARTED)
		log_info("%s: starting gen %u: %u instance%s of %s", svc->name, e->number,
			conf->instances, conf->instances == 1 ? "" : "s", conf->command);
	else if (e->kind == LC_GEN_EMPTY)
		log_info("%s: gen %u has no process left", svc->name, e->number);
	else if (e->kind == LC_MAX_DRAINING)
		log_warn("%s: more than max_draining = %u generations draining: killing gen %u now",
			svc->name, svc->conf->max_draining, e->number);
}

static void log_strays(const struct lifecycle_event *e)
{
	const char *s = e->count == 1 ? "" : "es";
	char grace[32];
	if (e->kind == LC_STRAYS)
		log_warn("%s gen %u: %u process%s outside the service's process groups still "
			 "running: %s; sent SIG%s, SIGKILL in %s", e->svc->name, e->number, e->count, s,
			e->text, signal_name(e->signo) ? signal_name(e->signo) : "?",
			duration(e->secs, grace, sizeof(grace)));
	else
		log_warn("%s gen %u: SIGKILL to the %u process%s left in its cgroup: %s: their "
			 "cleanup did not run", e->svc->name, e->number, e->count, s, e->text);
}

static void log_service(const struct lifecycle_event *e)
{
	const struct service *svc = e->svc;
	if (e->kind == LC_STRAYS || e->kind == LC_STRAYS_KILLED)
		log_strays(e);
	else if (e->kind == LC_FAILED && !e->proc)
		log_error("%s: failed: %s", svc->name, svc->reason);
	else if (e->kind == LC_STOP)
		log_info("%s: stopping %u process%s", svc->name, e->count, e->count == 1 ? "" : "es");
	else if (e->kind == LC_ERROR)
		log_error("%s: %s", svc->name, e->reason);
	else if (e->kind == LC_UPGRADE)
		log_upgrade(e);
	else if (e->kind == LC_GEN_STARTED || e->kind == LC_GEN_EMPTY || e->kind == LC_MAX_DRAINING)
		log_generation(e);
}

static void log_check(const struct lifecycle_event *e, const char *label)
{
	const struct proc *p = e->proc;
	if (e->ok && (e->count == 0 || e->stopped))
		return;
	if (e->ok)
		log_info("%s: its check passes again", label);
	else if (e->stopped)
		log_debug("%s: not ready yet, its check: %s", label, e->reason);
	else
		log_warn("%s: check failed (%u of %u): %s", label, e->count,
			p->gen->conf->check_failures, e->reason);
}

static void log_unhealthy(const struct lifecycle_event *e, const char *label)
{
	char when[32];
	if (e->secs < 0) {
		log_warn("%s: unhealthy: %s", label, e->reason);
		return;
	}
	log_warn("%s: unhealthy: %s; replacing it in %s", label, e->reason,
		duration(e->secs, when, sizeof(when)));
}

static void log_proc(const struct lifecycle_event *e, const char *label)
{
	const struct proc *p = e->proc;
	switch (e->kind) {
	case LC_SPAWNED: log_debug("%s: started %s", label, p->gen->conf->command); break;
	case LC_SPAWN_FAILED: log_spawn_failed(e, label); break;
	case LC_READY: log_info("%s: ready after %.3fs", label, e->secs); break;
	case LC_MAIN_PID: log_info("%s: main process is now %d (MAINPID)", label, (int)p->pid); break;
	case LC_UNREADY: log_warn("%s: %s", label, e->reason); break;
	case LC_SIGNALLED: log_signalled(e, label); break;
	case LC_SIGKILL: log_warn("%s: %s: sent SIGKILL to its process group", label, e->reason); break;
	case LC_KILLED: log_killed(e, label); break;
	case LC_EXITED: log_exited(e, label); break;
	case LC_RESTARTING: log_restarting(e, label); break;
	case LC_ERROR: log_error("%s[%d]: %s", e->svc->name, (int)e->pid, e->reason); break;
	case LC_CHECK: log_check(e, label); break;
	case LC_UNHEALTHY: log_unhealthy(e, label); break;
	default: break;
	}
}

static void event_cb(struct daemon_subscriber *s, const struct lifecycle_event *e)
{
	(void)s;
	char label[128];
	if (e->proc || e->kind == LC_SIGKILL)
		log_proc(e, label_of(e, label, sizeof(label)));
	if (!e->proc)
		log_service(e);
}

struct eventlog *eventlog_create(struct daemon *d)
{
	struct eventlog *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->d = d;
	l->sub.event = event_cb;
	daemon_subscribe(d, &l->sub);
	return l;
}

void eventlog_destroy(struct eventlog *l)
{
	if (!l)
		return;
	daemon_unsubscribe(l->d, &l->sub);
	free(l);
}
