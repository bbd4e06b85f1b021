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
};

const char *upgrade_state_name(enum upgrade_state state)
{
	return state_names[state];
}

void upgrade_clear(struct service *svc)
{
	svc->upgrade.active = false;
	service_conf_unref(svc->upgrade.from);
	svc->upgrade.from = NULL;
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

void upgrade_step(struct service *svc)
{
	struct generation *gen = svc->next;
	struct upgrade *u = &svc->upgrade;
	unsigned n = gen->conf->instances;
	unsigned batch = gen->conf->upgrade_batch ? gen->conf->upgrade_batch : n;
	unsigned ready = generation_count(gen, PROC_READY);
	if (ready < u->spawned)
		return;
	if (gen->conf->upgrade_batch && ready > u->stopped)
		retire_old(svc, ready - u->stopped);
	if (u->spawned < n) {
		unsigned first = u->spawned, number = gen->number;
		u->spawned += batch < n - first ? batch : n - first;
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

void upgrade_rollback(struct service *svc, const char *reason)
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
	upgrade_event(svc, UPGRADE_ROLLED_BACK, gen->number, reason);
	restore_conf(svc, gen, from);
	generation_drain(gen);
	// A rolling upgrade may have retired old processes: start them again.
	if (svc->current)
		generation_fill(svc->current);
	else if (svc->wanted)
		service_start_generation(svc);
	upgrade_over(svc, false, svc->reason);
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
	char why[512];
	struct generation *gen = generation_create(svc, conf, GEN_NEXT, why, sizeof(why));
	if (!gen) {
		snprintf(err, errlen, "%s: cannot start gen %u: %s", svc->name, svc->last_gen + 1, why);
		return -2;
	}
	memset(&svc->upgrade, 0, sizeof(svc->upgrade));
	svc->upgrade.from = svc->conf;
	svc->conf = service_conf_ref(conf);
	svc->next = gen;
	svc->reason[0] = '\0';
	svc->upgrade.active = true;
	svc->upgrade.started_at = lifecycle_now();
	upgrade_step(svc);
	return 0;
}
