#include "lifecycle_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {
	[UPGRADE_STARTED] = "started",
	[UPGRADE_BATCH] = "batch",
	[UPGRADE_DONE] = "done",
	[UPGRADE_ROLLED_BACK] = "rolled-back",
	[UPGRADE_ABORTED] = "aborted",
	[UPGRADE_PAUSED] = "paused",
	[UPGRADE_CONTINUED] = "continued",
	[UPGRADE_GATING] = "gating",
	[UPGRADE_GATE_PASSED] = "gate-passed",
};

const char *upgrade_state_name(enum upgrade_state state)
{
	return state_names[state];
}

void upgrade_clear(struct service *svc)
{
	struct upgrade *u = &svc->upgrade;
	u->active = u->paused = false;
	service_conf_unref(u->from);
	u->from = NULL;
	ev_timer_stop(svc->lc->loop, &u->observe_timer);
	gate_cancel(svc);
	for (size_t i = 0; u->gate && u->gate[i]; i++)
		free(u->gate[i]);
	free(u->gate);
	u->gate = NULL;
}

void upgrade_over(struct service *svc, bool ok, const char *reason)
{
	struct lifecycle_event e = lifecycle_event(LC_UPGRADE_OVER, svc);
	e.ok = ok;
	e.reason = reason;
	lifecycle_emit(svc->lc, &e);
}

// Tells that the upgrade to generation number moved to state.
static void upgrade_event(struct service *svc, enum upgrade_state state, unsigned number,
	const char *reason)
{
	struct lifecycle_event e = lifecycle_event(LC_UPGRADE, svc);
	e.state = state;
	e.number = number;
	if (svc->current && svc->current->number != number)
		e.from = svc->current->number;
	if (svc->next) {
		e.spawned = svc->upgrade.spawned;
		e.instances = svc->next->conf->instances;
		e.count = svc->upgrade.canary;
	}
	e.secs = e.t - svc->upgrade.started_at;
	e.reason = reason;
	lifecycle_emit(svc->lc, &e);
}

void upgrade_abort(struct service *svc, const char *why)
{
	if (!svc->upgrade.active)
		return;
	upgrade_event(svc, UPGRADE_ABORTED, svc->next ? svc->next->number : 0, why);
	upgrade_clear(svc);
	upgrade_over(svc, false, why);
}

// Kills at once every process of gen still running.
static void kill_generation(struct generation *gen)
{
	struct list *pp;
	list_for_each(pp, &gen->procs) {
		struct proc *p = container_of(pp, struct proc, link);
		struct lifecycle_host *host = gen->svc->lc->host;
		if (p->pid > 0 && !p->killed) {
			proc_set_stopping(p);
			p->killed_early = true;
			p->conns_at_kill = host->count_conns(host, p->pid);
			proc_kill_now(p, "more than max_draining generations");
		}
	}
}

// Kills the oldest draining generations beyond the service's max_draining.
static void enforce_max_draining(struct service *svc)
{
	unsigned max = svc->conf->max_draining, n = 0;
	struct list *pos;
	list_for_each(pos, &svc->gens) {
		struct generation *gen = container_of(pos, struct generation, link);
		if (gen->role != GEN_DRAINING || ++n <= max)
			continue;
		kill_generation(gen);
		struct lifecycle_event e = lifecycle_gen_event(LC_MAX_DRAINING, gen);
		lifecycle_emit(svc->lc, &e);
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

static void upgrade_finish(struct service *svc)
{
	struct generation *old = svc->current, *gen = svc->next;
	svc->upgrades++;
	free(svc->replaced.exe);
	svc->replaced.number = old ? old->number : 0;
	svc->replaced.exe = old && old->pin.exe_path ? strdup(old->pin.exe_path) : NULL;
	memcpy(svc->replaced.hash, old ? old->pin.hash : "", old ? sizeof(old->pin.hash) : 1);
	gen->role = GEN_CURRENT;
	svc->current = gen;
	svc->next = NULL;
	upgrade_event(svc, UPGRADE_DONE, gen->number, NULL);
	upgrade_clear(svc);
	if (old)
		generation_drain(old);
	enforce_max_draining(svc);
	upgrade_over(svc, true, NULL);
}

static void observe_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct service *svc = container_of(w, struct service, upgrade.observe_timer);
	char why[128], d[32], err[256];
	format_duration(svc->upgrade.observe, d, sizeof(d));
	snprintf(why, sizeof(why), "observed for %s: no canary failed", d);
	service_upgrade_continue(svc, why, err, sizeof(err));
}

// The canaries are ready: the upgrade waits for its operator, or its observation.
static void pause_upgrade(struct service *svc)
{
	struct upgrade *u = &svc->upgrade;
	u->paused = true;
	upgrade_event(svc, UPGRADE_PAUSED, svc->next->number, NULL);
	if (u->observe > 0) {
		ev_timer_set(&u->observe_timer, u->observe, 0);
		ev_timer_start(svc->lc->loop, &u->observe_timer);
	}
}

// A batch is ready: its gate judges it before any old process goes for it.
static void run_gate(struct service *svc)
{
	char err[256];
	upgrade_event(svc, UPGRADE_GATING, svc->next->number, NULL);
	if (gate_start(svc, err, sizeof(err)) < 0)
		upgrade_rollback(svc, err);
}

void upgrade_gate_done(struct service *svc, bool ok, const char *why)
{
	struct upgrade *u = &svc->upgrade;
	if (!u->active || !svc->next)
		return;
	if (!ok) {
		upgrade_rollback(svc, why);
		return;
	}
	u->gated = u->spawned;
	upgrade_event(svc, UPGRADE_GATE_PASSED, svc->next->number, why[0] ? why : NULL);
	upgrade_step(svc);
}

void upgrade_step(struct service *svc)
{
	struct generation *gen = svc->next;
	struct upgrade *u = &svc->upgrade;
	unsigned n = gen->conf->instances;
	unsigned batch = gen->conf->upgrade_batch ? gen->conf->upgrade_batch : n;
	unsigned ready = generation_count(gen, PROC_READY);
	if (ready < u->spawned || u->paused || u->gate_run)
		return;
	if (u->canary && !u->continued) {
		pause_upgrade(svc);
		return;
	}
	if (u->gate && u->gated < u->spawned) {
		run_gate(svc);
		return;
	}
	if (gen->conf->upgrade_batch && ready > u->stopped)
		retire_old(svc, ready - u->stopped);
	if (u->spawned < n) {
		unsigned first = u->spawned, number = gen->number;
		u->spawned += batch < n - first ? batch : n - first;
		u->batch++;
		upgrade_event(svc, first == 0 ? UPGRADE_STARTED : UPGRADE_BATCH, number, NULL);
		// A start that fails rolls the upgrade back and frees gen: stop then.
		for (unsigned i = first; i < u->spawned && svc->next && svc->next->number == number;
			i++)
			proc_spawn_new(svc->next, i);
		return;
	}
	upgrade_finish(svc);
}

// Back to the definition before the upgrade, unless a reload brought a newer
// one meanwhile.
static void restore_conf(struct service *svc, struct generation *gen, struct service_conf *from)
{
	if (svc->conf == gen->conf) {
		service_conf_unref(svc->conf);
		svc->conf = from;
	} else {
		service_conf_unref(from);
	}
}

// Back to the old generation, whole again: a rollback, or an abort.
static void roll_back(struct service *svc, const char *reason, bool aborted)
{
	struct generation *gen = svc->next;
	if (!gen)
		return;
	struct service_conf *from = service_conf_ref(svc->upgrade.from);
	upgrade_clear(svc);
	svc->next = NULL;
	if (!aborted)
		svc->rollbacks++;
	snprintf(svc->reason, sizeof(svc->reason), "upgrade to gen %u %s: %s", gen->number,
		aborted ? "aborted" : "rolled back", reason);
	upgrade_event(svc, aborted ? UPGRADE_ABORTED : UPGRADE_ROLLED_BACK, gen->number, reason);
	restore_conf(svc, gen, from);
	generation_drain(gen);
	// A rolling upgrade may have retired old processes: start them again.
	if (svc->current)
		generation_fill(svc->current);
	else if (svc->wanted)
		service_start_generation(svc);
	upgrade_over(svc, false, svc->reason);
}

void upgrade_rollback(struct service *svc, const char *reason)
{
	roll_back(svc, reason, false);
}

int service_upgrade_abort(struct service *svc, const char *reason, char *err, size_t errlen)
{
	if (!svc->upgrade.active || !svc->next) {
		snprintf(err, errlen, "%s has no upgrade in progress", svc->name);
		return -1;
	}
	roll_back(svc, reason, true);
	return 0;
}

int service_upgrade_continue(struct service *svc, const char *reason, char *err, size_t errlen)
{
	struct upgrade *u = &svc->upgrade;
	char phase[64];
	if (!u->active || !svc->next) {
		snprintf(err, errlen, "%s has no upgrade in progress", svc->name);
		return -1;
	}
	if (!u->paused) {
		snprintf(err, errlen, "the upgrade of %s to gen %u is not paused: it is %s", svc->name,
			svc->next->number, upgrade_phase(svc, phase, sizeof(phase)));
		return -1;
	}
	ev_timer_stop(svc->lc->loop, &u->observe_timer);
	u->paused = false;
	u->continued = true;
	upgrade_event(svc, UPGRADE_CONTINUED, svc->next->number, reason);
	upgrade_step(svc);
	return 0;
}

const char *upgrade_phase(const struct service *svc, char *buf, size_t len)
{
	const struct upgrade *u = &svc->upgrade;
	if (!u->active || !svc->next)
		snprintf(buf, len, "%s", "");
	else if (u->gate_run)
		snprintf(buf, len, "gating");
	else if (u->paused)
		snprintf(buf, len, "paused");
	else if (u->canary && !u->continued)
		snprintf(buf, len, "canary");
	else if (u->batches > 1)
		snprintf(buf, len, "batch %u of %u", u->batch, u->batches);
	else
		snprintf(buf, len, "%s", u->canary ? "continuing" : "starting");
	return buf;
}

// The gate's words, copied: the request's, else the service's upgrade_gate.
static char **copy_gate(const struct upgrade_options *opts, const struct service_conf *conf)
{
	char *const *words = opts && opts->gate ? opts->gate : conf->upgrade_gate.argv;
	size_t n = opts && opts->gate ? opts->ngate : conf->upgrade_gate.argc;
	if (!words || n == 0)
		return NULL;
	char **copy = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; copy && i < n; i++) {
		if (!(copy[i] = strdup(words[i]))) {
			for (size_t j = 0; j < i; j++)
				free(copy[j]);
			free(copy);
			return NULL;
		}
	}
	return copy;
}

int service_upgrade(struct service *svc, struct service_conf *conf,
	const struct upgrade_options *opts, char *err, size_t errlen)
{
	if (svc->upgrade.active && svc->upgrade.paused) {
		snprintf(err, errlen, "the upgrade of %s to gen %u is paused at its canaries: "
			"batonctl upgrade --continue %s goes on, --abort ends it", svc->name,
			svc->next ? svc->next->number : 0, svc->name);
		return -1;
	}
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
	char why[512];
	struct generation *gen = generation_create(svc, conf, GEN_NEXT, why, sizeof(why));
	if (!gen) {
		snprintf(err, errlen, "%s: cannot start gen %u: %s", svc->name, svc->last_gen + 1, why);
		return -2;
	}
	struct upgrade *u = &svc->upgrade;
	memset(u, 0, sizeof(*u));
	ev_timer_init(&u->observe_timer, observe_cb, 0, 0);
	u->from = svc->conf;
	svc->conf = service_conf_ref(conf);
	svc->next = gen;
	svc->reason[0] = '\0';
	u->active = true;
	u->started_at = lifecycle_now();
	unsigned n = conf->instances, batch = conf->upgrade_batch ? conf->upgrade_batch : n;
	u->canary = opts && opts->canary ? (opts->canary < n ? opts->canary : n) : 0;
	u->observe = opts ? opts->observe : 0;
	u->gate = copy_gate(opts, conf);
	u->gate_timeout = conf->upgrade_gate_timeout > 0 ? conf->upgrade_gate_timeout :
		CONFIG_UPGRADE_GATE_TIMEOUT;
	u->batches = (u->canary ? 1 : 0) + (n - u->canary + batch - 1) / batch;
	if (u->canary) {
		// The canaries first, beside every old process: nothing old goes yet.
		u->spawned = u->canary;
		u->batch = 1;
		upgrade_event(svc, UPGRADE_STARTED, gen->number, NULL);
		for (unsigned i = 0; i < u->canary && svc->next == gen; i++)
			proc_spawn_new(gen, i);
		return 0;
	}
	upgrade_step(svc);
	return 0;
}
