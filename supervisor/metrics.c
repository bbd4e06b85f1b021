#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "daemon.h"
#include "histogram.h"
#include "log.h"
#include "logs.h"
#include "version.h"

// The histograms of one service, from its first event to its removal.
struct series {
	struct list link;
	struct histogram ready; /* from start to ready */
	struct histogram drain; /* from the stop to the exit */
};

struct metrics {
	struct daemon *d;
	struct daemon_subscriber sub;
	struct list series;
};

static void line(struct protocol_buf *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void line(struct protocol_buf *buf, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	protocol_record_begin(buf, "metric");
	protocol_record_str(buf, "line", text);
	protocol_record_end(buf);
}

static void header(struct protocol_buf *buf, const char *name, const char *type, const char *help)
{
	line(buf, "# HELP %s %s", name, help);
	line(buf, "# TYPE %s %s", name, type);
}

// Service names are [A-Za-z0-9_.@-]: nothing to escape in a label value.
static void counter(struct protocol_buf *buf, const char *name, const char *svc,
	unsigned long value)
{
	line(buf, "%s{service=\"%s\"} %lu", name, svc, value);
}

static void histogram(struct protocol_buf *buf, const char *name, const char *svc,
	const struct histogram *h)
{
	// The bounds as labels, written once: each service has two histograms.
	static char le[HISTOGRAM_BOUNDS][16];
	if (!le[0][0]) {
		for (size_t i = 0; i < HISTOGRAM_BOUNDS; i++)
			snprintf(le[i], sizeof(le[i]), "%g", histogram_bounds[i]);
	}
	unsigned long cumulative = 0;
	for (size_t i = 0; i < HISTOGRAM_BOUNDS; i++) {
		cumulative += h->buckets[i];
		line(buf, "%s_bucket{service=\"%s\",le=\"%s\"} %lu", name, svc, le[i], cumulative);
	}
	line(buf, "%s_bucket{service=\"%s\",le=\"+Inf\"} %lu", name, svc, h->count);
	line(buf, "%s_sum{service=\"%s\"} %.6f", name, svc, h->sum);
	line(buf, "%s_count{service=\"%s\"} %lu", name, svc, h->count);
}

static void process_states(struct protocol_buf *buf, const struct service *svc)
{
	unsigned counts[PROC_KILLED + 1] = {0};
	struct list *g, *pp;
	list_for_each(g, &svc->gens) {
		struct generation *gen = container_of(g, struct generation, link);
		list_for_each(pp, &gen->procs)
			counts[container_of(pp, struct proc, link)->state]++;
	}
	for (int st = PROC_WAITING; st <= PROC_STOPPING; st++)
		line(buf, "baton_processes{service=\"%s\",state=\"%s\"} %u", svc->name,
			proc_state_name((enum proc_state)st), counts[st]);
}

// Every service of the configuration: one removed by a reload, still
// stopping, would make a second series of the same name.
#define EACH_SERVICE(d, svc)                                                                      \
	for (struct list *pos_ = (d)->services.next;                                              \
		pos_ != &(d)->services && ((svc) = container_of(pos_, struct service, link));      \
		pos_ = pos_->next)                                                                 \
		if (!(svc)->removed)

static void service_counters(struct daemon *d, struct protocol_buf *buf)
{
	struct service *svc;
	static const struct {
		const char *name, *help;
		size_t offset;
	} counters[] = {
		{"baton_restarts_total", "Processes restarted after they exited on their own.",
			offsetof(struct service, restarts)},
		{"baton_upgrades_total", "Upgrades that completed.",
			offsetof(struct service, upgrades)},
		{"baton_rollbacks_total", "Upgrades rolled back.",
			offsetof(struct service, rollbacks)},
		{"baton_kills_total", "Processes killed with SIGKILL before they exited.",
			offsetof(struct service, kills)},
		{"baton_checks_passed_total", "Checks (ready = exec:, check = exec:) that passed.",
			offsetof(struct service, checks_ok)},
		{"baton_checks_failed_total", "Checks that failed, timed out or could not run.",
			offsetof(struct service, checks_failed)},
		{"baton_unhealthy_total", "Ready processes found unhealthy and replaced.",
			offsetof(struct service, unhealthy)},
		{"baton_oom_kills_total", "Processes the kernel's OOM killer ended.",
			offsetof(struct service, oom_kills)},
	};
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		header(buf, counters[i].name, "counter", counters[i].help);
		EACH_SERVICE(d, svc)
		counter(buf, counters[i].name, svc->name,
			*(const unsigned long *)((const char *)svc + counters[i].offset));
	}
}

// A service's histograms, kept in its faces.metrics from its first event.
static struct series *find(const struct service *svc)
{
	return svc->faces.metrics;
}

static const struct histogram *ready_of(const struct service *svc)
{
	static const struct histogram none;
	struct series *s = find(svc);
	return s ? &s->ready : &none;
}

static const struct histogram *drain_of(const struct service *svc)
{
	static const struct histogram none;
	struct series *s = find(svc);
	return s ? &s->drain : &none;
}

static void log_counters(struct metrics *m, struct protocol_buf *buf)
{
	static const struct {
		const char *name, *help;
		size_t offset;
	} counters[] = {
		{"baton_log_lines_total", "Lines the service's processes wrote.",
			offsetof(struct logs_counters, lines)},
		{"baton_log_bytes_total", "Bytes of those lines, newlines not counted.",
			offsetof(struct logs_counters, bytes)},
		{"baton_log_dropped_total", "Lines not written to the service's log: "
			"log_overflow = drop, or the log could not be written.",
			offsetof(struct logs_counters, dropped)},
		{"baton_log_cut_total", "Lines cut at 16384 bytes.",
			offsetof(struct logs_counters, cut)},
	};
	struct service *svc;
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		header(buf, counters[i].name, "counter", counters[i].help);
		EACH_SERVICE(m->d, svc) {
			struct logs_counters n = logs_counters_of(m->d->logs, svc);
			counter(buf, counters[i].name, svc->name,
				*(const unsigned long *)((const char *)&n + counters[i].offset));
		}
	}
	header(buf, "baton_log_own_dropped_total", "counter",
		"Lines of batond's own log dropped: its stderr took no more.");
	line(buf, "baton_log_own_dropped_total %lu", log_dropped(NULL));
}

// Each generation's processes and the connections they hold: the traffic it takes;
// and where each upgrade is.
static void generation_counts(struct daemon *d, struct protocol_buf *buf)
{
	struct service *svc;
	header(buf, "baton_generation_processes", "gauge",
		"Processes of the generation with a pid.");
	header(buf, "baton_generation_connections", "gauge",
		"Connections the generation's processes hold now.");
	EACH_SERVICE(d, svc) {
		struct list *g, *pos;
		list_for_each(g, &svc->gens) {
			const struct generation *gen = container_of(g, struct generation, link);
			int procs = 0, conns = 0;
			bool known = true;
			list_for_each(pos, &gen->procs) {
				const struct proc *p = container_of(pos, const struct proc, link);
				int n = p->pid > 0 ? daemon_count_conns(d, p->pid) : 0;
				procs += p->pid > 0;
				known = known && n >= 0;
				conns += n > 0 ? n : 0;
			}
			const char *role = generation_role_name(gen->role);
			line(buf, "baton_generation_processes{service=\"%s\",gen=\"%u\",role=\"%s\"} %d",
				svc->name, gen->number, role, procs);
			if (known)
				line(buf, "baton_generation_connections{service=\"%s\",gen=\"%u\","
					  "role=\"%s\"} %d", svc->name, gen->number, role, conns);
		}
	}
	header(buf, "baton_upgrade_phase", "gauge",
		"1 for each upgrade in progress, labelled with its phase: canary, paused, gating, "
		"batch K of N, continuing, starting.");
	EACH_SERVICE(d, svc) {
		char phase[64];
		if (svc->next && upgrade_phase(svc, phase, sizeof(phase))[0])
			line(buf, "baton_upgrade_phase{service=\"%s\",gen=\"%u\",phase=\"%s\"} 1",
				svc->name, svc->next->number, phase);
	}
}

// What each generation's cgroup counts, where the hierarchy says.
static void generation_usage(struct daemon *d, struct protocol_buf *buf)
{
	static const struct {
		const char *name, *type, *help;
	} gauges[] = {
		{"baton_generation_cpu_seconds_total", "counter",
			"CPU time used in the generation's cgroup (cpu.stat usage_usec)."},
		{"baton_generation_memory_bytes", "gauge",
			"Memory used in the generation's cgroup (memory.current)."},
		{"baton_generation_memory_peak_bytes", "gauge",
			"The most memory used in the generation's cgroup (memory.peak)."},
		{"baton_generation_tasks", "gauge", "Tasks in the generation's cgroup (pids.current)."},
	};
	if (d->cg->root < 0)
		return;
	struct service *svc;
	for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
		header(buf, gauges[i].name, gauges[i].type, gauges[i].help);
		EACH_SERVICE(d, svc) {
			struct list *g;
			list_for_each(g, &svc->gens) {
				const struct generation *gen = container_of(g, struct generation, link);
				struct cgroup_usage u;
				containment_usage(d->cg, gen, &u);
				long long v[] = {-1, u.memory, u.memory_peak, u.tasks};
				if (i == 0 && u.cpu >= 0)
					line(buf, "%s{service=\"%s\",gen=\"%u\",role=\"%s\"} %.6f",
						gauges[i].name, svc->name, gen->number,
						generation_role_name(gen->role), u.cpu);
				else if (i > 0 && v[i] >= 0)
					line(buf, "%s{service=\"%s\",gen=\"%u\",role=\"%s\"} %lld",
						gauges[i].name, svc->name, gen->number,
						generation_role_name(gen->role), v[i]);
			}
		}
	}
}

void metrics_render(struct metrics *m, struct protocol_buf *buf)
{
	struct daemon *d = m->d;
	struct service *svc;
	header(buf, "baton_build_info", "gauge", "The version of batond.");
	line(buf, "baton_build_info{version=\"%s\"} 1", BATON_VERSION);
	header(buf, "baton_uptime_seconds", "gauge", "Seconds since batond started.");
	line(buf, "baton_uptime_seconds %.3f", clock_now() - d->started);
	header(buf, "baton_orphans_reaped_total", "counter",
		"Orphaned descendants of services reaped by batond.");
	line(buf, "baton_orphans_reaped_total %lu", d->orphans);
	header(buf, "baton_processes", "gauge", "Processes of each service by state.");
	EACH_SERVICE(d, svc)
	process_states(buf, svc);
	service_counters(d, buf);
	header(buf, "baton_ready_seconds", "histogram",
		"Seconds from a process's start until it was ready.");
	EACH_SERVICE(d, svc)
	histogram(buf, "baton_ready_seconds", svc->name, ready_of(svc));
	header(buf, "baton_drain_seconds", "histogram",
		"Seconds from a process's stop until it was gone.");
	EACH_SERVICE(d, svc)
	histogram(buf, "baton_drain_seconds", svc->name, drain_of(svc));
	log_counters(m, buf);
	generation_counts(d, buf);
	generation_usage(d, buf);
}

static struct series *series_of(struct metrics *m, struct service *svc)
{
	struct series *s = find(svc);
	if (s || !(s = calloc(1, sizeof(*s))))
		return s;
	svc->faces.metrics = s;
	list_append(&m->series, &s->link);
	return s;
}

static void event_cb(struct daemon_subscriber *sub, const struct lifecycle_event *e)
{
	struct metrics *m = container_of(sub, struct metrics, sub);
	struct series *s;
	if (e->kind == LC_READY && (s = series_of(m, e->svc)))
		histogram_add(&s->ready, e->secs);
	else if ((e->kind == LC_EXITED || e->kind == LC_KILLED) && e->stopped &&
		(s = series_of(m, e->svc)))
		histogram_add(&s->drain, e->secs);
	else if (e->kind == LC_IDLE && e->svc->removed && (s = find(e->svc))) {
		// The collector frees the service next.
		e->svc->faces.metrics = NULL;
		list_remove(&s->link);
		free(s);
	}
}

struct metrics *metrics_create(struct daemon *d)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->d = d;
	m->sub.event = event_cb;
	list_init(&m->series);
	daemon_subscribe(d, &m->sub);
	return m;
}

void metrics_destroy(struct metrics *m)
{
	if (!m)
		return;
	daemon_unsubscribe(m->d, &m->sub);
	while (!list_empty(&m->series)) {
		struct list *pos = m->series.next;
		list_remove(pos);
		free(container_of(pos, struct series, link));
	}
	free(m);
}
