#include "watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "clock.h"
#include "control.h"
#include "daemon.h"
#include "logline.h"
#include "parse.h"
#include "status.h"

#define PROGRESS_INTERVAL 1.0
// Lines of a service's draining processes sent as events, at most, each
// second: the rest are counted, so that a flood cannot drown the events that
// matter, nor another service's last words.
#define OUTPUT_EVENTS_MAX 50
// A service's count is forgotten this long after its last line.
#define OUTPUT_COUNT_KEEP 60.0

struct output_count {
	char service[PROTOCOL_NAME_MAX + 1];
	double second;          /* the second whose output events are counted */
	unsigned events;        /* ...and how many were sent in it */
	unsigned long skipped;  /* lines not sent since the service's last output event */
};

struct watch {
	struct daemon *d;
	struct daemon_subscriber sub;
	ev_timer progress;
	struct output_count *counts; /* of the services whose lines came lately */
	size_t ncounts, cap;
};

static const char *const kind_names[] = {
	[LC_SPAWNED] = "spawned",
	[LC_SPAWN_FAILED] = "spawn_failed",
	[LC_READY] = "ready",
	[LC_STATUS] = "status",
	[LC_STOPPING] = "stopping",
	[LC_SIGNALLED] = "signalled",
	[LC_SIGKILL] = "sigkill",
	[LC_EXITED] = "exited",
	[LC_KILLED] = "killed",
	[LC_RESTARTING] = "restarting",
	[LC_FAILED] = "failed",
	[LC_DRAINED] = "drained",
	[LC_UPGRADE] = "upgrade",
	[LC_STOPPED] = "stopped",
	[LC_OUTPUT] = "output",
	[LC_CHECK] = "check",
	[LC_UNHEALTHY] = "unhealthy",
	[LC_STRAYS] = "strays",
	[LC_STRAYS_KILLED] = "strays_killed",
};

// Starts an event record: the time, its kind and its service.
static void begin(struct protocol_buf *b, struct watch *w, const char *kind, const char *service,
	double t)
{
	protocol_record_begin(b, "event");
	char stamp[32];
	snprintf(stamp, sizeof(stamp), "%.6f", t - w->d->started);
	protocol_buf_printf(b, " t=%s", stamp);
	protocol_record_str(b, "kind", kind);
	protocol_record_str(b, "service", service);
}

static void begin_proc(struct protocol_buf *b, unsigned gen, unsigned instance, pid_t pid)
{
	protocol_record_int(b, "gen", gen);
	protocol_record_int(b, "instance", instance);
	protocol_record_int(b, "pid", pid);
}

// exit=N or signal=NAME, and the exec error, of the process that ended.
static void exit_fields(struct protocol_buf *b, const struct proc *p)
{
	int st = p->wait_status;
	const char *sig = WIFSIGNALED(st) ? signal_name(WTERMSIG(st)) : NULL;
	if (WIFEXITED(st))
		protocol_record_int(b, "exit", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		protocol_record_str(b, "signal", sig ? sig : "?");
	if (p->error)
		protocol_record_str(b, "error", p->error);
}

static void exit_event(struct protocol_buf *b, const struct lifecycle_event *e)
{
	exit_fields(b, e->proc);
	if (e->kind == LC_KILLED && e->conns >= 0)
		protocol_record_int(b, "conns", e->conns);
	if (e->kind == LC_RESTARTING)
		protocol_record_secs(b, "restart_in", e->secs);
	if (e->stopped)
		protocol_record_secs(b, "elapsed", e->secs);
	protocol_record_str(b, "reason", e->reason);
}

static void upgrade_event(struct protocol_buf *b, const struct lifecycle_event *e)
{
	protocol_record_int(b, "gen", e->number);
	protocol_record_str(b, "state", upgrade_state_name(e->state));
	if (e->from)
		protocol_record_int(b, "from", e->from);
	if (e->instances) {
		protocol_record_int(b, "spawned", e->spawned);
		protocol_record_int(b, "instances", e->instances);
	}
	if (e->count)
		protocol_record_int(b, "canary", e->count);
	protocol_record_secs(b, "elapsed", e->secs);
	if (e->reason)
		protocol_record_str(b, "reason", e->reason);
}

static void signalled_event(struct protocol_buf *b, const struct lifecycle_event *e)
{
	const char *sig = signal_name(e->signo);
	protocol_record_str(b, "signal", sig ? sig : "?");
	protocol_record_secs(b, "kill_in", e->secs);
}

static void sigkill_event(struct protocol_buf *b, const struct lifecycle_event *e)
{
	if (e->conns >= 0)
		protocol_record_int(b, "conns", e->conns);
	protocol_record_str(b, "reason", e->reason);
}

// A line as valid UTF-8, for people: cut where a line shows.
static void put_line(struct protocol_buf *b, const char *key, const char *text, size_t len)
{
	char line[4 * PROC_LAST_LINE_MAX + 1];
	logline_clean(text, len, line, sizeof(line));
	protocol_record_str(b, key, line);
}

static void output_event(struct protocol_buf *b, const struct lifecycle_event *e)
{
	protocol_record_str(b, "stream", e->stream == 2 ? "err" : "out");
	put_line(b, "line", e->text, e->len);
	if (e->flags & LINEBUF_CUT)
		protocol_record_str(b, "cut", "yes");
}

static void check_event(struct protocol_buf *b, const struct lifecycle_event *e)
{
	protocol_record_str(b, "result", e->ok ? "ok" : "failed");
	protocol_record_int(b, "failures", e->count);
	if (e->stopped)
		protocol_record_str(b, "readiness", "yes");
	protocol_record_str(b, "output", e->reason);
}

// The fields after the common ones.
static void event_fields(struct protocol_buf *b, const struct lifecycle_event *e)
{
	switch (e->kind) {
	case LC_SPAWN_FAILED:
		protocol_record_str(b, "error", e->reason);
		if (e->secs >= 0)
			protocol_record_secs(b, "restart_in", e->secs);
		break;
	case LC_READY: protocol_record_secs(b, "ready_after", e->secs); break;
	case LC_STATUS: protocol_record_str(b, "status", e->proc->status_text); break;
	case LC_STOPPING:
		if (e->secs > 0)
			protocol_record_secs(b, "stop_delay", e->secs);
		break;
	case LC_SIGNALLED: signalled_event(b, e); break;
	case LC_SIGKILL: sigkill_event(b, e); break;
	case LC_EXITED:
	case LC_KILLED:
	case LC_RESTARTING: exit_event(b, e); break;
	case LC_FAILED: protocol_record_str(b, "reason", e->svc->reason); break;
	case LC_DRAINED:
		protocol_record_int(b, "gen", e->number);
		protocol_record_secs(b, "elapsed", e->secs);
		break;
	case LC_STRAYS:
	case LC_STRAYS_KILLED:
		protocol_record_int(b, "gen", e->number);
		protocol_record_int(b, "count", e->count);
		protocol_record_str(b, "processes", e->text);
		if (e->kind == LC_STRAYS) {
			protocol_record_str(b, "signal", signal_name(e->signo) ? signal_name(e->signo) : "?");
			protocol_record_secs(b, "kill_in", e->secs);
		}
		break;
	case LC_UPGRADE: upgrade_event(b, e); break;
	case LC_OUTPUT: output_event(b, e); break;
	case LC_CHECK: check_event(b, e); break;
	case LC_UNHEALTHY:
		protocol_record_str(b, "reason", e->reason);
		if (e->secs >= 0)
			protocol_record_secs(b, "replace_in", e->secs);
		break;
	default: break;
	}
}

static void send_to(struct client *c, void *data)
{
	const struct protocol_buf *buf = data;
	client_send(c, buf->data, buf->len);
}

static void send_record(struct watch *w, struct protocol_buf *b, const char *service)
{
	protocol_record_end(b);
	if (!b->failed)
		control_each_stream(w->d->control, service, send_to, b);
	protocol_buf_finish(b);
}

// Process events carry the process's identity; a service's failure does not.
static bool about_proc(const struct lifecycle_event *e)
{
	return (e->proc || e->kind == LC_SIGKILL) && e->kind != LC_FAILED;
}

// The count of a service's output events, made when it has none; NULL when
// there is no memory. Counts of services quiet for a while are dropped first.
static struct output_count *count_of(struct watch *w, const char *service, double second)
{
	for (size_t i = 0; i < w->ncounts; i++) {
		if (strcmp(w->counts[i].service, service) == 0)
			return &w->counts[i];
	}
	size_t kept = 0;
	for (size_t i = 0; i < w->ncounts; i++) {
		if (second - w->counts[i].second < OUTPUT_COUNT_KEEP)
			w->counts[kept++] = w->counts[i];
	}
	w->ncounts = kept;
	if (w->ncounts == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 8;
		struct output_count *counts = realloc(w->counts, cap * sizeof(*counts));
		if (!counts)
			return NULL;
		w->counts = counts;
		w->cap = cap;
	}
	struct output_count *c = &w->counts[w->ncounts++];
	*c = (struct output_count){.second = second};
	snprintf(c->service, sizeof(c->service), "%s", service);
	return c;
}

// Output is an event only for a process that is stopping: its last words.
// Returns the service's count when it is told, else NULL.
static struct output_count *output_told(struct watch *w, const struct lifecycle_event *e)
{
	if (e->proc->state != PROC_STOPPING)
		return NULL;
	double second = (double)(long long)e->t;
	struct output_count *c = count_of(w, e->svc->name, second);
	if (!c)
		return NULL;
	if (second != c->second) {
		c->second = second;
		c->events = 0;
	}
	if (c->events >= OUTPUT_EVENTS_MAX) {
		c->skipped++;
		return NULL;
	}
	c->events++;
	return c;
}

static void event_cb(struct daemon_subscriber *s, const struct lifecycle_event *e)
{
	struct watch *w = container_of(s, struct watch, sub);
	const char *kind = (size_t)e->kind < sizeof(kind_names) / sizeof(kind_names[0])
		? kind_names[e->kind]
		: NULL;
	struct output_count *told = NULL;
	if (kind && w->d->control && control_watched(w->d->control, e->svc->name) &&
		(e->kind != LC_OUTPUT || (told = output_told(w, e))) &&
		(e->kind != LC_CHECK || !e->ok || e->count > 0)) {
		struct protocol_buf b = {0};
		begin(&b, w, kind, e->svc->name, e->t);
		if (about_proc(e))
			begin_proc(&b, e->number, e->instance, e->pid);
		event_fields(&b, e);
		if (told && told->skipped) {
			protocol_record_int(&b, "skipped", (long long)told->skipped);
			told->skipped = 0;
		}
		send_record(w, &b, e->svc->name);
	}
	if (e->kind != LC_OUTPUT)
		watch_update(w);
}

/* ---- progress ---- */

static void progress_of(struct watch *w, struct proc *p)
{
	struct protocol_buf b = {0};
	double t = clock_now();
	begin(&b, w, "progress", p->gen->svc->name, t);
	begin_proc(&b, p->gen->number, p->instance, p->pid);
	protocol_record_str(&b, "state", proc_state_name(p->state));
	if (p->signalled) {
		protocol_record_secs(&b, "stopped_for", t - p->signalled_at);
		if (!p->killed)
			protocol_record_secs(&b, "kill_in", p->kill_at - t);
	}
	int n = daemon_count_conns(w->d, p->pid);
	if (n >= 0)
		protocol_record_int(&b, "conns", n);
	if (p->status_text)
		protocol_record_str(&b, "status", p->status_text);
	if (p->last_line)
		put_line(&b, "line", p->last_line, strlen(p->last_line));
	send_record(w, &b, p->gen->svc->name);
}

// Sends the progress of every stopping process of svc.
static void progress_of_service(struct watch *w, struct service *svc)
{
	struct list *g, *pp;
	list_for_each(g, &svc->gens) {
		struct generation *gen = container_of(g, struct generation, link);
		list_for_each(pp, &gen->procs) {
			struct proc *p = container_of(pp, struct proc, link);
			if (p->state == PROC_STOPPING && p->pid > 0)
				progress_of(w, p);
		}
	}
}

static void progress_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	struct watch *w = container_of(t, struct watch, progress);
	struct list *s;
	list_for_each(s, &w->d->services) {
		struct service *svc = container_of(s, struct service, link);
		// The kernel's tables are read only for a drain someone watches.
		if (control_watched(w->d->control, svc->name))
			progress_of_service(w, svc);
	}
	// A process may have stopped stopping with no event yet to say so.
	watch_update(w);
}

void watch_update(struct watch *w)
{
	struct daemon *d = w->d;
	bool want = d->control && d->lc.nstopping > 0 && control_watched(d->control, NULL);
	bool active = ev_is_active(&w->progress) != 0;
	if (want == active)
		return;
	if (want) {
		ev_timer_set(&w->progress, PROGRESS_INTERVAL, PROGRESS_INTERVAL);
		ev_timer_start(d->loop, &w->progress);
	} else {
		ev_timer_stop(d->loop, &w->progress);
	}
}

void watch_begin(struct watch *w, struct client *c, const struct service *svc)
{
	struct protocol_buf buf = {0};
	status_snapshot(&buf, w->d, svc, true);
	client_send_buf(c, &buf);
	client_set_streaming(c, svc ? svc->name : "");
}

struct watch *watch_create(struct daemon *d)
{
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->d = d;
	w->sub.event = event_cb;
	ev_timer_init(&w->progress, progress_cb, PROGRESS_INTERVAL, PROGRESS_INTERVAL);
	daemon_subscribe(d, &w->sub);
	return w;
}

void watch_destroy(struct watch *w)
{
	if (!w)
		return;
	ev_timer_stop(w->d->loop, &w->progress);
	daemon_unsubscribe(w->d, &w->sub);
	free(w->counts);
	free(w);
}
