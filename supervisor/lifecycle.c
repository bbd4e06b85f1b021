#include "lifecycle_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

// What a SIGKILL leaves to tell, told once the burst of deadlines is over.
struct kill_report {
	struct list link;
	struct service *svc; /* lives until its killed processes are reaped */
	char why[96];
	unsigned number, instance;
	pid_t pid;
	int conns;
	double t;
};

static void report_kills_cb(struct ev_loop *loop, ev_idle *w, int revents);
static void hash_cb(struct ev_loop *loop, ev_idle *w, int revents);

// What one turn of the loop hashes of a program: a millisecond or so.
#define HASH_STEP (256 * 1024)

void lifecycle_init(struct lifecycle *lc, struct ev_loop *loop, struct lifecycle_host *host)
{
	memset(lc, 0, sizeof(*lc));
	lc->loop = loop;
	lc->host = host;
	pidmap_init(&lc->procs);
	pidmap_init(&lc->checks);
	pidmap_init(&lc->gates);
	list_init(&lc->check_queue);
	list_init(&lc->kill_reports);
	ev_idle_init(&lc->kill_reporter, report_kills_cb);
	list_init(&lc->hash_queue);
	list_init(&lc->holding);
	ev_idle_init(&lc->hasher, hash_cb);
}

void lifecycle_finish(struct lifecycle *lc)
{
	if (lc->loop) {
		ev_idle_stop(lc->loop, &lc->kill_reporter);
		ev_idle_stop(lc->loop, &lc->hasher);
	}
	while (!list_empty(&lc->kill_reports)) {
		struct list *r = lc->kill_reports.next;
		list_remove(r);
		free(container_of(r, struct kill_report, link));
	}
	pidmap_finish(&lc->procs);
	pidmap_finish(&lc->checks);
	pidmap_finish(&lc->gates);
}

double lifecycle_now(void)
{
	return clock_now();
}

struct proc *lifecycle_proc(const struct lifecycle *lc, pid_t pid)
{
	return pidmap_get(&lc->procs, pid);
}

struct lifecycle_event lifecycle_event(enum lifecycle_kind kind, struct service *svc)
{
	return (struct lifecycle_event){.kind = kind, .t = lifecycle_now(), .svc = svc, .conns = -1};
}

struct lifecycle_event lifecycle_proc_event(enum lifecycle_kind kind, const struct proc *p)
{
	struct lifecycle_event e = lifecycle_event(kind, p->gen->svc);
	e.proc = p;
	e.gen = p->gen;
	e.number = p->gen->number;
	e.instance = p->instance;
	e.pid = p->pid;
	return e;
}

struct lifecycle_event lifecycle_gen_event(enum lifecycle_kind kind, const struct generation *gen)
{
	struct lifecycle_event e = lifecycle_event(kind, gen->svc);
	e.gen = gen;
	e.number = gen->number;
	return e;
}

bool generation_hashing(const struct generation *gen)
{
	return gen->hash_link.next != &gen->hash_link;
}

void lifecycle_hash_later(struct lifecycle *lc, struct generation *gen)
{
	if (gen->pin.hash[0] || gen->pin.exe_fd < 0)
		return;
	list_append(&lc->hash_queue, &gen->hash_link);
	ev_idle_start(lc->loop, &lc->hasher);
}

static void hash_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	struct lifecycle *lc = container_of(w, struct lifecycle, hasher);
	if (!list_empty(&lc->hash_queue)) {
		struct generation *gen =
			container_of(lc->hash_queue.next, struct generation, hash_link);
		if (pin_hash_step(&gen->pin, HASH_STEP))
			generation_hashed(lc, gen);
	}
	if (list_empty(&lc->hash_queue))
		ev_idle_stop(loop, w);
}

void lifecycle_emit(struct lifecycle *lc, const struct lifecycle_event *e)
{
	lc->host->event(lc->host, e);
}

void lifecycle_emit_proc(enum lifecycle_kind kind, const struct proc *p)
{
	struct lifecycle_event e = lifecycle_proc_event(kind, p);
	lifecycle_emit(p->gen->svc->lc, &e);
}

void lifecycle_error(struct service *svc, const struct proc *p, const char *fmt, ...)
{
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	struct lifecycle_event e =
		p ? lifecycle_proc_event(LC_ERROR, p) : lifecycle_event(LC_ERROR, svc);
	e.reason = reason;
	lifecycle_emit(svc->lc, &e);
}

// Tells at most max of the SIGKILLs sent.
static void flush_kills(struct lifecycle *lc, int max)
{
	for (int i = 0; i < max && !list_empty(&lc->kill_reports); i++) {
		struct kill_report *r = container_of(lc->kill_reports.next, struct kill_report, link);
		list_remove(&r->link);
		struct lifecycle_event e = lifecycle_event(LC_SIGKILL, r->svc);
		e.t = r->t;
		e.number = r->number;
		e.instance = r->instance;
		e.pid = r->pid;
		e.conns = r->conns;
		e.reason = r->why;
		lifecycle_emit(lc, &e);
		free(r);
	}
	if (list_empty(&lc->kill_reports))
		ev_idle_stop(lc->loop, &lc->kill_reporter);
}

void lifecycle_flush_kills(struct lifecycle *lc)
{
	flush_kills(lc, 1 << 30);
}

void lifecycle_forget_kills(struct lifecycle *lc, const struct service *svc)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &lc->kill_reports) {
		struct kill_report *r = container_of(pos, struct kill_report, link);
		if (r->svc == svc) {
			list_remove(&r->link);
			free(r);
		}
	}
	if (list_empty(&lc->kill_reports))
		ev_idle_stop(lc->loop, &lc->kill_reporter);
}

static void report_kills_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)loop;
	(void)revents;
	// A few at a time: a deadline that falls meanwhile waits no longer.
	flush_kills(container_of(w, struct lifecycle, kill_reporter), 2);
}

void lifecycle_report_kill(struct proc *p, const char *why)
{
	struct lifecycle *lc = p->gen->svc->lc;
	struct kill_report *r = calloc(1, sizeof(*r));
	if (!r)
		return;
	r->svc = p->gen->svc;
	snprintf(r->why, sizeof(r->why), "%s", why);
	r->number = p->gen->number;
	r->instance = p->instance;
	r->pid = p->pid;
	r->conns = p->conns_at_kill;
	r->t = lifecycle_now();
	list_append(&lc->kill_reports, &r->link);
	ev_idle_start(lc->loop, &lc->kill_reporter);
}
