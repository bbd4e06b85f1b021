#include "event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batond.h"
#include "clock.h"
#include "conns.h"
#include "control.h"
#include "service.h"

#define PROGRESS_INTERVAL 1.0

bool event_begin_at(struct event *e, struct daemon *d, const char *kind, const char *service,
	double t)
{
	memset(e, 0, sizeof(*e));
	if (!d->control || !control_watched(d->control, service))
		return false;
	e->service = service;
	protocol_record_begin(&e->buf, "event");
	char stamp[32];
	snprintf(stamp, sizeof(stamp), "%.6f", t - d->started);
	protocol_buf_printf(&e->buf, " t=%s", stamp);
	protocol_record_str(&e->buf, "kind", kind);
	if (service)
		protocol_record_str(&e->buf, "service", service);
	return true;
}

bool event_begin(struct event *e, struct daemon *d, const char *kind, const struct service *svc,
	const struct proc *p)
{
	return event_begin_proc_at(e, d, kind, svc, p, clock_now());
}

bool event_begin_proc_at(struct event *e, struct daemon *d, const char *kind,
	const struct service *svc, const struct proc *p, double t)
{
	if (!event_begin_at(e, d, kind, svc ? svc->name : NULL, t))
		return false;
	if (p) {
		protocol_record_int(&e->buf, "gen", p->gen->number);
		protocol_record_int(&e->buf, "instance", p->instance);
		protocol_record_int(&e->buf, "pid", p->pid);
	}
	return true;
}

static void send_to(struct client *c, void *data)
{
	const struct protocol_buf *buf = data;
	client_send(c, buf->data, buf->len);
}

void event_end(struct event *e, struct daemon *d)
{
	protocol_record_end(&e->buf);
	if (!e->buf.failed)
		control_each_stream(d->control, e->service, send_to, &e->buf);
	protocol_buf_finish(&e->buf);
}

void event_simple(struct daemon *d, const char *kind, const struct service *svc,
	const struct proc *p)
{
	struct event e;
	if (event_begin(&e, d, kind, svc, p))
		event_end(&e, d);
}

static void progress_of(struct daemon *d, struct proc *p)
{
	struct event e;
	if (!event_begin(&e, d, "progress", p->gen->svc, p))
		return;
	double t = clock_now();
	protocol_record_str(&e.buf, "state", proc_state_name(p->state));
	if (p->signalled) {
		protocol_record_secs(&e.buf, "stopped_for", t - p->signalled_at);
		if (!p->killed)
			protocol_record_secs(&e.buf, "kill_in", p->kill_at - t);
	}
	int n = daemon_count_conns(d, p->pid);
	if (n >= 0)
		protocol_record_int(&e.buf, "conns", n);
	if (p->status_text)
		protocol_record_str(&e.buf, "status", p->status_text);
	event_end(&e, d);
}

static void progress_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct daemon *d = w->data;
	struct list *s, *g, *pp;
	list_for_each(s, &d->services) {
		struct service *svc = container_of(s, struct service, link);
		// The kernel's tables are read only for a drain someone watches.
		if (!control_watched(d->control, svc->name))
			continue;
		list_for_each(g, &svc->gens) {
			struct generation *gen = container_of(g, struct generation, link);
			list_for_each(pp, &gen->procs) {
				struct proc *p = container_of(pp, struct proc, link);
				if (p->state == PROC_STOPPING && p->pid > 0)
					progress_of(d, p);
			}
		}
	}
}

void event_update_progress(struct daemon *d)
{
	bool want = d->control && d->nstopping > 0 && control_watched(d->control, NULL);
	bool active = ev_is_active(&d->progress) != 0;
	if (want == active)
		return;
	if (want) {
		ev_timer_init(&d->progress, progress_cb, PROGRESS_INTERVAL, PROGRESS_INTERVAL);
		d->progress.data = d;
		ev_timer_start(d->loop, &d->progress);
	} else {
		ev_timer_stop(d->loop, &d->progress);
	}
}

void event_finish(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->progress);
}
