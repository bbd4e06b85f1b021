#include "lifecycle_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		n += gen->strays;
	}
	return n;
}

void service_stop_over(struct service *svc, bool ok, const char *reason)
{
	struct lifecycle_event e = lifecycle_event(LC_STOP_OVER, svc);
	e.ok = ok;
	e.reason = reason;
	lifecycle_emit(svc->lc, &e);
}

void service_start_generation(struct service *svc)
{
	char err[512];
	struct generation *gen = generation_create(svc, svc->conf, GEN_CURRENT, err, sizeof(err));
	if (!gen) {
		service_fail(svc, "cannot start: %s", err);
		return;
	}
	svc->current = gen;
	struct lifecycle_event e = lifecycle_gen_event(LC_GEN_STARTED, gen);
	lifecycle_emit(svc->lc, &e);
	generation_fill(gen);
}

void service_check_idle(struct service *svc)
{
	if (!list_empty(&svc->gens))
		return;
	if (svc->start_when_empty) {
		svc->start_when_empty = false;
		service_start_generation(svc);
		return;
	}
	if (!svc->wanted) {
		struct lifecycle_event e = lifecycle_event(LC_STOPPED, svc);
		lifecycle_emit(svc->lc, &e);
	}
	service_stop_over(svc, true, NULL);
	struct lifecycle_event e = lifecycle_event(LC_IDLE, svc);
	lifecycle_emit(svc->lc, &e);
}

struct service *service_create(struct lifecycle *lc, struct service_conf *conf)
{
	struct service *svc = calloc(1, sizeof(*svc));
	if (!svc || !(svc->name = strdup(conf->name))) {
		free(svc);
		return NULL;
	}
	svc->lc = lc;
	svc->conf = service_conf_ref(conf);
	list_init(&svc->link);
	list_init(&svc->gens);
	return svc;
}

void service_destroy(struct service *svc)
{
	lifecycle_forget_kills(svc->lc, svc);
	while (!list_empty(&svc->gens)) {
		struct generation *gen = container_of(svc->gens.next, struct generation, link);
		while (!list_empty(&gen->procs))
			proc_remove(container_of(gen->procs.next, struct proc, link));
		generation_destroy(gen);
	}
	upgrade_over(svc, false, "batond is exiting");
	service_stop_over(svc, false, "batond is exiting");
	upgrade_clear(svc);
	service_conf_unref(svc->conf);
	free(svc->replaced.exe);
	free(svc->name);
	free(svc);
}

void service_start(struct service *svc)
{
	svc->failed = false;
	svc->reason[0] = '\0';
	svc->wanted = true;
	service_stop_over(svc, false, "the service was started again");
	if (svc->start_when_empty)
		return;
	// Instances that exited for good (restart = never) are started again.
	if (svc->current)
		generation_fill(svc->current);
	else
		service_start_generation(svc);
}

// Drains every generation of the service.
static void drain_all(struct service *svc)
{
	struct list *pos, *tmp;
	svc->current = svc->next = NULL;
	// generation_drain may free the generation it drains, and only that one:
	// walk from the oldest with a saved pointer to the one before.
	for (pos = svc->gens.prev; pos != &svc->gens; pos = tmp) {
		tmp = pos->prev;
		generation_drain(container_of(pos, struct generation, link));
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
	struct lifecycle_event e = lifecycle_event(LC_STOP, svc);
	e.count = service_live_procs(svc);
	lifecycle_emit(svc->lc, &e);
	drain_all(svc);
}

void service_restart(struct service *svc)
{
	svc->failed = false;
	svc->reason[0] = '\0';
	service_stop_over(svc, false, "the service was restarted");
	if (list_empty(&svc->gens)) {
		service_start(svc);
		return;
	}
	service_stop(svc);
	svc->wanted = true;
	if (!list_empty(&svc->gens))
		svc->start_when_empty = true;
	else
		service_start_generation(svc);
}

void service_fail(struct service *svc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(svc->reason, sizeof(svc->reason), fmt, ap);
	va_end(ap);
	struct lifecycle_event e = lifecycle_event(LC_FAILED, svc);
	lifecycle_emit(svc->lc, &e);
	svc->wanted = false;
	svc->start_when_empty = false;
	svc->failed = true;
	upgrade_abort(svc, svc->reason);
	drain_all(svc);
}

unsigned service_signal(struct service *svc, int signo)
{
	struct lifecycle_host *host = svc->lc->host;
	unsigned n = 0;
	struct list *g, *pos;
	list_for_each(g, &svc->gens) {
		struct generation *gen = container_of(g, struct generation, link);
		list_for_each(pos, &gen->procs) {
			struct proc *p = container_of(pos, struct proc, link);
			if (p->pid > 0 && host->kill(host, p->pid, signo) == 0)
				n++;
		}
	}
	return n;
}

void service_count(const struct service *svc, struct service_counts *c)
{
	*c = (struct service_counts){0};
	const struct list *g, *pos;
	list_for_each(g, &svc->gens) {
		const struct generation *gen = container_of(g, const struct generation, link);
		bool current = gen == svc->current;
		list_for_each(pos, &gen->procs) {
			const struct proc *p = container_of(pos, const struct proc, link);
			c->live += p->pid > 0;
			c->unsettled += p->state != PROC_READY || gen->role != GEN_CURRENT;
			if (!current)
				continue;
			c->ready += p->state == PROC_READY;
			c->starting += p->state == PROC_STARTING;
			c->waiting += p->state == PROC_WAITING;
		}
		c->live += gen->strays;
	}
}

const char *service_state_of(const struct service *svc, const struct service_counts *c)
{
	if (svc->failed)
		return "failed";
	if (!svc->wanted)
		return c->live ? "stopping" : "stopped";
	if (svc->start_when_empty)
		return "restarting";
	if (svc->upgrade.active)
		return "upgrading";
	if (!svc->current)
		return "exited";
	if (c->ready >= svc->current->conf->instances)
		return "running";
	if (c->starting + c->waiting > 0)
		return "starting";
	// Fewer processes than instances and none on its way: restart = never.
	return "degraded";
}

const char *service_state_name(const struct service *svc)
{
	struct service_counts c;
	service_count(svc, &c);
	return service_state_of(svc, &c);
}
