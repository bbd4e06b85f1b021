#include "status.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "control.h"
#include "daemon.h"
#include "listener.h"
#include "version.h"

static void proc_times(struct protocol_buf *buf, const struct proc *p, double t)
{
	if (p->pid > 0)
		protocol_record_secs(buf, "age", t - p->spawned_at);
	if (p->state == PROC_READY || (p->state == PROC_STOPPING && p->ready_at > 0))
		protocol_record_secs(buf, "ready_after", p->ready_at - p->spawned_at);
	if (p->state == PROC_STOPPING && p->signalled)
		protocol_record_secs(buf, "stopped_for", t - p->signalled_at);
	if (p->state == PROC_STOPPING && p->signalled && !p->killed)
		protocol_record_secs(buf, "kill_in", p->kill_at - t);
}

// Connections are counted only for stopping processes: that is what a drain
// waits on, and counting every process would make status cost O(fds).
static int proc_conns(struct daemon *d, const struct proc *p)
{
	if (p->state != PROC_STOPPING || p->pid <= 0)
		return -1;
	return daemon_count_conns(d, p->pid);
}

// What its checks say: the last one's result, age and output, the failures
// in a row, and for a starting process how long it has been checked.
static void proc_health(struct protocol_buf *buf, const struct proc *p, double t)
{
	const struct proc_health *h = p->health;
	if (p->unhealthy)
		protocol_record_str(buf, "unhealthy", "yes");
	if (!h)
		return;
	if (p->state == PROC_STARTING && h->since > 0)
		protocol_record_secs(buf, "checking_for", t - h->since);
	if (!h->checked)
		return;
	protocol_record_str(buf, "check", h->ok ? "ok" : "failed");
	protocol_record_secs(buf, "checked_ago", t - h->last_at);
	protocol_record_int(buf, "check_failures", h->failures);
	if (h->last[0])
		protocol_record_str(buf, "check_output", h->last);
}

static void status_proc(struct protocol_buf *buf, struct daemon *d, const struct proc *p, double t)
{
	protocol_record_begin(buf, "proc");
	protocol_record_str(buf, "service", p->gen->svc->name);
	protocol_record_int(buf, "gen", p->gen->number);
	protocol_record_str(buf, "role", generation_role_name(p->gen->role));
	protocol_record_int(buf, "instance", p->instance);
	protocol_record_int(buf, "pid", p->pid);
	protocol_record_str(buf, "state", proc_state_name(p->state));
	double timer_at = proc_timer_at(p);
	if (p->state == PROC_WAITING && timer_at > 0)
		protocol_record_secs(buf, "restart_in", timer_at - t);
	else
		proc_times(buf, p, t);
	if (p->state == PROC_STOPPING && p->killed)
		protocol_record_str(buf, "killed", "yes");
	protocol_record_int(buf, "restarts", p->restarts);
	int conns = proc_conns(d, p);
	if (conns >= 0)
		protocol_record_int(buf, "conns", conns);
	if (p->status_text)
		protocol_record_str(buf, "status", p->status_text);
	if (p->error)
		protocol_record_str(buf, "error", p->error);
	proc_health(buf, p, t);
	protocol_record_end(buf);
}

// The command as written, cut to STATUS_COMMAND_MAX bytes (at a character's
// start) and ended with "..." when longer, so that the record fits.
#define STATUS_COMMAND_MAX 2048
static void put_command(struct protocol_buf *buf, const char *command)
{
	size_t len = strlen(command);
	if (len <= STATUS_COMMAND_MAX) {
		protocol_record_str(buf, "command", command);
		return;
	}
	len = STATUS_COMMAND_MAX;
	while (len > 0 && ((unsigned char)command[len] & 0xc0) == 0x80)
		len--;
	char cut[STATUS_COMMAND_MAX + 4];
	memcpy(cut, command, len);
	memcpy(cut + len, "...", 4);
	protocol_record_str(buf, "command", cut);
}

// The values a service's record is made of, but for an upgrade under way and
// a reason, which status_cache leaves out. Zeroed whole first: keys are
// compared with memcmp.
struct record_key {
	const struct service_conf *conf; /* for the command */
	const char *state;               /* a constant string */
	long long gen, instances, ready, running, restarts, upgrades, rollbacks, kills;
	long long removed; /* 0 or 1; as wide as the rest, so that no padding is compared */
};
_Static_assert(sizeof(struct record_key) == 2 * sizeof(void *) + 9 * sizeof(long long),
	"a record key has no padding");

static void record_key_of(struct record_key *k, const struct service *svc,
	const struct service_counts *counts)
{
	const struct generation *cur = svc->current;
	memset(k, 0, sizeof(*k));
	k->conf = svc->conf;
	k->state = service_state_of(svc, counts);
	k->gen = cur ? cur->number : 0;
	k->instances = cur ? cur->conf->instances : svc->conf->instances;
	k->ready = cur ? counts->ready : 0;
	k->running = counts->live;
	k->restarts = (long long)svc->restarts;
	k->upgrades = (long long)svc->upgrades;
	k->rollbacks = (long long)svc->rollbacks;
	k->kills = (long long)svc->kills;
	k->removed = svc->removed;
}

// The record of the service named name with the values of k, and, for one
// being upgraded or with a reason, svc's upgrade and reason.
static void record_write(struct protocol_buf *buf, const char *name, const struct record_key *k,
	const struct service *svc)
{
	protocol_record_begin(buf, "service");
	protocol_record_str(buf, "name", name);
	protocol_record_str(buf, "state", k->state);
	protocol_record_int(buf, "gen", k->gen);
	protocol_record_int(buf, "instances", k->instances);
	protocol_record_int(buf, "ready", k->ready);
	protocol_record_int(buf, "running", k->running);
	if (svc && svc->next) {
		char phase[64];
		protocol_record_int(buf, "upgrading_to", svc->next->number);
		protocol_record_str(buf, "phase", upgrade_phase(svc, phase, sizeof(phase)));
	}
	protocol_record_int(buf, "restarts", k->restarts);
	protocol_record_int(buf, "upgrades", k->upgrades);
	protocol_record_int(buf, "rollbacks", k->rollbacks);
	protocol_record_int(buf, "kills", k->kills);
	put_command(buf, k->conf->command);
	if (k->removed)
		protocol_record_str(buf, "removed", "yes");
	if (svc && svc->reason[0])
		protocol_record_str(buf, "reason", svc->reason);
	protocol_record_end(buf);
}

static void service_record(struct protocol_buf *buf, const struct service *svc,
	const struct service_counts *counts)
{
	struct record_key k;
	record_key_of(&k, svc, counts);
	record_write(buf, svc->name, &k, svc);
}

/*
 * The services' records as last sent, in the order of d->services: at a
 * thousand services they are most of a status, and few change between two.
 * A record is sent again only when its name and every value in its key are
 * those it was made of, so that it is a function of them and nothing that
 * changes a service needs to know of it. An entry holds a reference on its
 * conf: no other can take its address while it is kept.
 */
struct record_entry {
	struct record_key key;
	char *name;
	char *text;
	size_t len;
};

struct status_cache {
	struct record_entry *entries;
	size_t n, cap;
};

static void entry_clear(struct record_entry *e)
{
	if (e->key.conf)
		service_conf_unref((struct service_conf *)e->key.conf);
	free(e->name);
	free(e->text);
	memset(e, 0, sizeof(*e));
}

void status_cache_destroy(struct status_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		entry_clear(&c->entries[i]);
	free(c->entries);
	free(c);
}

// Entry i of d's cache, made as needed; NULL when out of memory.
static struct record_entry *cache_entry(struct daemon *d, size_t i)
{
	struct status_cache *c = d->status_cache;
	if (!c && !(c = d->status_cache = calloc(1, sizeof(*c))))
		return NULL;
	if (i >= c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		while (cap <= i)
			cap *= 2;
		struct record_entry *entries = realloc(c->entries, cap * sizeof(*entries));
		if (!entries)
			return NULL;
		memset(entries + c->cap, 0, (cap - c->cap) * sizeof(*entries));
		c->entries = entries;
		c->cap = cap;
	}
	if (i >= c->n)
		c->n = i + 1;
	return &c->entries[i];
}

// Drops the entries from n on: of services gone.
static void cache_trim(struct daemon *d, size_t n)
{
	struct status_cache *c = d->status_cache;
	for (; c && c->n > n; c->n--)
		entry_clear(&c->entries[c->n - 1]);
}

// The record of svc, the i-th service: the one kept when it is the same, else
// built and kept. One being upgraded, or with a reason, is built each time.
static void cached_record(struct protocol_buf *buf, struct daemon *d, size_t i,
	const struct service *svc, const struct service_counts *counts)
{
	struct record_key k;
	record_key_of(&k, svc, counts);
	struct record_entry *e = NULL;
	if (!svc->next && !svc->reason[0])
		e = cache_entry(d, i);
	if (e && e->text && !memcmp(&e->key, &k, sizeof(k)) && !strcmp(e->name, svc->name)) {
		protocol_buf_add(buf, e->text, e->len);
		return;
	}
	size_t start = buf->len;
	record_write(buf, svc->name, &k, e ? NULL : svc);
	if (!e || buf->failed)
		return;
	entry_clear(e);
	size_t len = buf->len - start;
	if (!(e->text = malloc(len)) || !(e->name = strdup(svc->name))) {
		entry_clear(e);
		return;
	}
	memcpy(e->text, buf->data + start, len);
	e->len = len;
	memcpy(&e->key, &k, sizeof(k));
	service_conf_ref((struct service_conf *)k.conf);
}

void status_service(struct protocol_buf *buf, const struct service *svc)
{
	struct service_counts counts;
	service_count(svc, &counts);
	service_record(buf, svc, &counts);
}

static bool notable(const struct proc *p)
{
	return p->state != PROC_READY || p->gen->role != GEN_CURRENT;
}

static void status_procs(struct protocol_buf *buf, struct daemon *d, const struct service *svc,
	bool all, double t)
{
	struct list *g, *pos;
	// Oldest generation first, so a drain reads top to bottom.
	for (g = svc->gens.prev; g != &svc->gens; g = g->prev) {
		struct generation *gen = container_of(g, struct generation, link);
		list_for_each(pos, &gen->procs) {
			struct proc *p = container_of(pos, struct proc, link);
			if (all || notable(p))
				status_proc(buf, d, p, t);
		}
	}
}

// What a generation runs, as it pinned it.
// What its cgroup counts, where the hierarchy says, and what is left in it.
static void gen_usage(struct protocol_buf *buf, struct daemon *d, const struct generation *gen)
{
	struct cgroup_usage u;
	containment_usage(d->cg, gen, &u);
	if (u.cpu >= 0)
		protocol_record_secs(buf, "cpu", u.cpu);
	if (u.memory >= 0)
		protocol_record_int(buf, "memory", u.memory);
	if (u.memory_peak >= 0)
		protocol_record_int(buf, "memory_peak", u.memory_peak);
	if (u.tasks >= 0)
		protocol_record_int(buf, "tasks", u.tasks);
	if (u.oom_kills > 0)
		protocol_record_int(buf, "oom_kills", u.oom_kills);
	char who[512];
	unsigned n = containment_strays(d->cg, gen, who, sizeof(who));
	if (n > 0) {
		protocol_record_int(buf, "strays", n);
		protocol_record_str(buf, "stray_processes", who);
	}
}

// Its processes with a pid, and the connections they hold now: its share of the traffic.
// count: the connections too, which costs a walk of the host's TCP table.
static void gen_procs(struct protocol_buf *buf, struct daemon *d, const struct generation *gen,
	bool count)
{
	int procs = 0, conns = 0;
	bool known = true;
	const struct list *pos;
	list_for_each(pos, &gen->procs) {
		const struct proc *p = container_of(pos, const struct proc, link);
		if (p->pid <= 0)
			continue;
		procs++;
		int n = count ? daemon_count_conns(d, p->pid) : -1;
		if (n < 0)
			known = false;
		else
			conns += n;
	}
	protocol_record_int(buf, "procs", procs);
	if (known)
		protocol_record_int(buf, "conns", conns);
}

static void status_gen(struct protocol_buf *buf, struct daemon *d, const struct generation *gen,
	bool stream)
{
	const struct pin *pin = &gen->pin;
	protocol_record_begin(buf, "gen");
	protocol_record_str(buf, "service", gen->svc->name);
	protocol_record_int(buf, "gen", gen->number);
	protocol_record_str(buf, "role", generation_role_name(gen->role));
	if (pin->exe_path) {
		protocol_record_str(buf, "exe", pin->exe_path);
		protocol_record_int(buf, "inode", (long long)pin->ino);
		protocol_record_int(buf, "mtime", (long long)pin->mtime.tv_sec);
	}
	if (pin->script)
		protocol_record_str(buf, "script", "yes");
	if (pin->hash[0])
		protocol_record_str(buf, "sha256", pin->hash);
	if (pin->directory)
		protocol_record_str(buf, "directory", pin->directory);
	if (gen->changes)
		protocol_record_str(buf, "changed", gen->changes);
	gen_procs(buf, d, gen, !stream || gen->role != GEN_CURRENT);
	gen_usage(buf, d, gen);
	protocol_record_end(buf);
}

static void status_gens(struct protocol_buf *buf, struct daemon *d, const struct service *svc,
	bool stream)
{
	for (struct list *g = svc->gens.prev; g != &svc->gens; g = g->prev)
		status_gen(buf, d, container_of(g, struct generation, link), stream);
}

// Hands the buffer on once it holds this much: a client reads the records of
// a thousand services as they are built, on another core.
#define STATUS_PART 16384

static void part_built(struct protocol_buf *buf, const struct status_sink *sink)
{
	if (sink && buf->len >= STATUS_PART && !buf->failed)
		sink->take(buf, sink->data);
}

// The services that have processes to list, found as their records are built.
struct listing {
	const struct service **services;
	size_t n, cap;
};

static void listing_add(struct protocol_buf *buf, struct listing *l, const struct service *svc)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		const struct service **services = realloc(l->services, cap * sizeof(*services));
		if (!services) {
			buf->failed = true;
			return;
		}
		l->services = services;
		l->cap = cap;
	}
	l->services[l->n++] = svc;
}

// The records of every service (or of svc), then of their generations (with
// all or svc), then of their processes: every one with all or svc, else those
// not ready or not of a current generation. The services are walked once, and
// what is counted for a service's record tells whether it has processes to list.
static void snapshot(struct protocol_buf *buf, struct daemon *d, const struct service *svc,
	bool all, bool stream, const struct status_sink *sink)
{
	double t = clock_now();
	struct service_counts counts;
	if (svc) {
		service_count(svc, &counts);
		service_record(buf, svc, &counts);
		status_gens(buf, d, svc, stream);
		status_procs(buf, d, svc, true, t);
		return;
	}
	struct listing listing = {0};
	struct list *pos;
	size_t n = 0;
	list_for_each(pos, &d->services) {
		const struct service *s = container_of(pos, struct service, link);
		service_count(s, &counts);
		cached_record(buf, d, n++, s, &counts);
		if (all || counts.unsettled > 0)
			listing_add(buf, &listing, s);
		part_built(buf, sink);
	}
	cache_trim(d, n);
	for (size_t i = 0; all && i < listing.n; i++) {
		status_gens(buf, d, listing.services[i], stream);
		part_built(buf, sink);
	}
	for (size_t i = 0; i < listing.n; i++) {
		status_procs(buf, d, listing.services[i], all, t);
		part_built(buf, sink);
	}
	free(listing.services);
}

void status_snapshot_to(struct protocol_buf *buf, struct daemon *d, const struct service *svc,
	bool all, const struct status_sink *sink)
{
	snapshot(buf, d, svc, all, false, sink);
}

void status_snapshot(struct protocol_buf *buf, struct daemon *d, const struct service *svc,
	bool all)
{
	snapshot(buf, d, svc, all, true, NULL);
}

void status_socket(struct protocol_buf *buf, const struct listener *l)
{
	protocol_record_begin(buf, "socket");
	protocol_record_str(buf, "name", l->name);
	protocol_record_str(buf, "kind", listener_kind(l));
	protocol_record_str(buf, "listen", l->listen);
	protocol_record_str(buf, "bound", l->bound);
	if (l->retired)
		protocol_record_str(buf, "retired", "yes");
	protocol_record_end(buf);
}

void status_daemon(struct protocol_buf *buf, struct daemon *d)
{
	protocol_record_begin(buf, "daemon");
	protocol_record_int(buf, "pid", getpid());
	protocol_record_str(buf, "version", BATON_VERSION);
	protocol_record_secs(buf, "uptime", clock_now() - d->started);
	protocol_record_int(buf, "services", d->nservices);
	protocol_record_int(buf, "procs", (long long)d->lc.procs.count);
	protocol_record_int(buf, "clients", control_clients(d->control));
	protocol_record_int(buf, "orphans", (long long)d->orphans);
	protocol_record_str(buf, "state", d->shutting_down ? "stopping" : "running");
	char name[PATH_MAX + 16];
	protocol_record_str(buf, "containment", containment_name(d->cg, name, sizeof(name)));
	if (d->cg->root < 0)
		protocol_record_str(buf, "containment_why", d->cg->why);
	if (d->config_path)
		protocol_record_str(buf, "config", d->config_path);
	protocol_record_end(buf);
}
