#include "lifecycle_impl.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void stray_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static const char *const role_names[] = {
	[GEN_CURRENT] = "current",
	[GEN_NEXT] = "next",
	[GEN_DRAINING] = "draining",
};

const char *generation_role_name(enum gen_role role)
{
	return role_names[role];
}

// A generation holds on to the sockets it started with: a reload that
// replaces or removes one leaves it open until this generation is gone.
static struct listener **take_listeners(struct lifecycle_host *host, struct service_conf *conf)
{
	struct listener **ls = calloc(conf->nsockets ? conf->nsockets : 1, sizeof(*ls));
	for (size_t i = 0; ls && i < conf->nsockets; i++)
		ls[i] = host->listener(host, conf->sockets[i]);
	return ls;
}

static bool same_program(const struct pin *a, const struct pin *b)
{
	if (!a->exe_path || !b->exe_path)
		return a->exe_path == b->exe_path;
	return strcmp(a->exe_path, b->exe_path) == 0 && a->dev == b->dev && a->ino == b->ino &&
		a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
		a->size == b->size;
}

static bool same_words(char **a, size_t na, char **b, size_t nb)
{
	for (size_t i = 0; na == nb && i < na; i++) {
		if (strcmp(a[i], b[i]) != 0)
			return false;
	}
	return na == nb;
}

static bool same_string(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) == 0 : a == b;
}

// Whether a's hash is b's: the same file, not written to, renamed or touched
// between them (its ctime, which no one can set back, is the same).
static bool same_bytes(const struct pin *a, const struct pin *b)
{
	return a->exe_fd >= 0 && b->exe_fd >= 0 && same_program(a, b) &&
		(a->ctime.tv_sec || a->ctime.tv_nsec) && a->ctime.tv_sec == b->ctime.tv_sec &&
		a->ctime.tv_nsec == b->ctime.tv_nsec;
}

// Takes the hash of another generation of svc that runs the same bytes: an
// upgrade to the same program (a new configuration, a restart of the build
// running) does not read it again, which for an interpreter is tens of
// milliseconds of CPU taken from the processes that serve.
static void hash_from_others(struct service *svc, struct generation *gen)
{
	struct list *pos;
	list_for_each(pos, &svc->gens) {
		struct generation *other = container_of(pos, struct generation, link);
		if (other->pin.hash[0] && same_bytes(&other->pin, &gen->pin)) {
			memcpy(gen->pin.hash, other->pin.hash, sizeof(gen->pin.hash));
			return;
		}
	}
}

static void hash_known(struct lifecycle *lc, struct generation *gen)
{
	list_remove(&gen->hash_link);
	if (gen->svc->replaced.number == gen->number)
		memcpy(gen->svc->replaced.hash, gen->pin.hash, sizeof(gen->pin.hash));
	struct lifecycle_event e = lifecycle_gen_event(LC_GEN_HASHED, gen);
	lifecycle_emit(lc, &e);
}

// Services that run one program (an interpreter, most often) start together
// and queue their generations together: the file is read once for them all.
void generation_hashed(struct lifecycle *lc, struct generation *gen)
{
	hash_known(lc, gen);
	while (gen->pin.hash[0]) {
		struct generation *same = NULL;
		struct list *pos;
		list_for_each(pos, &lc->hash_queue) {
			struct generation *other = container_of(pos, struct generation, hash_link);
			if (same_bytes(&other->pin, &gen->pin)) {
				same = other;
				break;
			}
		}
		if (!same)
			return;
		memcpy(same->pin.hash, gen->pin.hash, sizeof(gen->pin.hash));
		free(same->pin.hashing); /* only the queue's first is read: none */
		same->pin.hashing = NULL;
		hash_known(lc, same);
	}
}

// What gen runs that prev did not: the names of what changed, for people.
static char *changes_from(const struct generation *prev, const struct generation *gen)
{
	char text[1024] = "", names[768];
	const struct pin *a = &prev->pin, *b = &gen->pin;
	if (!same_program(a, b))
		strcat(text, ", program");
	if (!same_words(prev->conf->argv, prev->conf->argc, gen->conf->argv, gen->conf->argc))
		strcat(text, ", arguments");
	if (!same_string(a->directory, b->directory))
		strcat(text, ", directory");
	pin_env_changes(a, b, names, sizeof(names));
	if (names[0])
		snprintf(text + strlen(text), sizeof(text) - strlen(text), ", environment (%s)", names);
	return text[0] ? strdup(text + 2) : NULL;
}

struct generation *generation_create(struct service *svc, struct service_conf *conf,
	enum gen_role role, char *err, size_t errlen)
{
	struct lifecycle_host *host = svc->lc->host;
	struct generation *gen = calloc(1, sizeof(*gen));
	if (!gen) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	gen->svc = svc;
	gen->number = svc->last_gen + 1;
	gen->conf = conf;
	gen->cgroup_dir = -1;
	ev_timer_init(&gen->stray_timer, stray_timer_cb, 0, 0);
	ev_set_priority(&gen->stray_timer, EV_MAXPRI);
	if (pin_resolve(&gen->pin, conf, err, errlen) < 0) {
		free(gen);
		return NULL;
	}
	if (host->cgroup_open && host->cgroup_open(host, gen, err, errlen) < 0) {
		pin_release(&gen->pin);
		free(gen);
		return NULL;
	}
	gen->listeners = take_listeners(host, conf);
	if (!gen->listeners) {
		if (gen->cgroup)
			host->cgroup_close(host, gen);
		pin_release(&gen->pin);
		free(gen);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	svc->last_gen = gen->number;
	gen->conf = service_conf_ref(conf);
	gen->role = role;
	gen->started_at = lifecycle_now();
	list_init(&gen->procs);
	list_init(&gen->hash_link);
	list_init(&gen->hold_link);
	hash_from_others(svc, gen);
	lifecycle_hash_later(svc->lc, gen);
	if (svc->current)
		gen->changes = changes_from(svc->current, gen);
	list_insert_after(&svc->gens, &gen->link);
	return gen;
}

void generation_destroy(struct generation *gen)
{
	struct service *svc = gen->svc;
	struct lifecycle_host *host = svc->lc->host;
	if (svc->current == gen)
		svc->current = NULL;
	if (svc->next == gen)
		svc->next = NULL;
	if (generation_hashing(gen)) {
		// Whoever waits for its hash waits no more.
		list_remove(&gen->hash_link);
		struct lifecycle_event e = lifecycle_gen_event(LC_GEN_HASHED, gen);
		lifecycle_emit(svc->lc, &e);
	}
	list_remove(&gen->link);
	ev_timer_stop(svc->lc->loop, &gen->stray_timer);
	for (size_t i = 0; i < gen->nheld; i++)
		close(gen->held[i]);
	free(gen->held);
	list_remove(&gen->hold_link);
	if (gen->cgroup)
		host->cgroup_close(host, gen);
	for (size_t i = 0; i < gen->conf->nsockets; i++) {
		if (gen->listeners[i])
			host->release(host, gen->listeners[i]);
	}
	free(gen->listeners);
	pin_release(&gen->pin);
	free(gen->changes);
	service_conf_unref(gen->conf);
	free(gen);
}

unsigned generation_count(const struct generation *gen, enum proc_state state)
{
	unsigned n = 0;
	struct list *pos;
	list_for_each(pos, &gen->procs) {
		if (container_of(pos, struct proc, link)->state == state)
			n++;
	}
	return n;
}

void generation_drain(struct generation *gen)
{
	struct service *svc = gen->svc;
	if (svc->current == gen)
		svc->current = NULL;
	if (svc->next == gen)
		svc->next = NULL;
	if (gen->role != GEN_DRAINING) {
		gen->role = GEN_DRAINING;
		gen->drain_at = lifecycle_now();
	}
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &gen->procs) {
		struct proc *p = container_of(pos, struct proc, link);
		if (p->state == PROC_WAITING)
			proc_remove(p);
		else
			proc_stop(p);
	}
	generation_check_empty(gen);
}

static bool has_instance(const struct generation *gen, unsigned instance)
{
	struct list *pos;
	list_for_each(pos, &gen->procs) {
		struct proc *p = container_of(pos, struct proc, link);
		if (p->instance == instance && p->state != PROC_STOPPING)
			return true;
	}
	return false;
}

void generation_fill(struct generation *gen)
{
	unsigned n = gen->conf->instances;
	for (unsigned i = 0; i < n; i++) {
		if (!has_instance(gen, i))
			proc_spawn_new(gen, i);
	}
}

// Processes left in the cgroup once the generation's own are gone: asked to
// stop, then killed. Returns true while there are.
static bool wait_for_strays(struct generation *gen)
{
	struct lifecycle_host *host = gen->svc->lc->host;
	if (!gen->cgroup || !host->cgroup_populated(host, gen))
		return false;
	if (gen->strays_signalled)
		return true;
	char who[512];
	struct lifecycle_event e = lifecycle_gen_event(LC_STRAYS, gen);
	gen->strays_signalled = true;
	e.count = host->cgroup_signal(host, gen, gen->conf->stop_signal, who, sizeof(who));
	gen->strays = e.count ? e.count : 1;
	e.signo = gen->conf->stop_signal;
	e.secs = gen->conf->stop_grace;
	e.text = who;
	e.len = strlen(who);
	generation_stray_timer(gen, gen->conf->stop_grace);
	lifecycle_emit(gen->svc->lc, &e);
	return true;
}

static void stray_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct generation *gen = container_of(w, struct generation, stray_timer);
	struct lifecycle_host *host = gen->svc->lc->host;
	if (!host->cgroup_populated(host, gen)) {
		lifecycle_cgroup_empty(gen);
		return;
	}
	if (!gen->strays_killed) {
		char who[512];
		struct lifecycle_event e = lifecycle_gen_event(LC_STRAYS_KILLED, gen);
		e.count = host->cgroup_signal(host, gen, SIGKILL, who, sizeof(who));
		e.text = who;
		e.len = strlen(who);
		gen->strays_killed = true;
		gen->svc->kills += e.count;
		lifecycle_emit(gen->svc->lc, &e);
	}
	// The cgroup's event tells when they are gone; this looks again meanwhile.
	generation_stray_timer(gen, 1.0);
}

// Whether a process may still write to the pipe whose read end is fd: a pipe
// none holds open for writing any more hangs up, and none can open it again.
static bool has_writer(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	if (poll(&pfd, 1, 0) < 0)
		return true;
	return !(pfd.revents & (POLLHUP | POLLERR | POLLNVAL));
}

// Closes gen's held pipes that nothing may write to; true when it holds none.
static bool release_output(struct generation *gen)
{
	size_t kept = 0;
	for (size_t i = 0; i < gen->nheld; i++) {
		if (has_writer(gen->held[i]))
			gen->held[kept++] = gen->held[i];
		else
			close(gen->held[i]);
	}
	gen->nheld = kept;
	return kept == 0;
}

// Adds fd to what gen holds; -1 when out of memory.
static int hold(struct generation *gen, int fd)
{
	int *held = realloc(gen->held, (gen->nheld + 1) * sizeof(int));
	if (!held)
		return -1;
	gen->held = held;
	held[gen->nheld++] = fd;
	if (list_empty(&gen->hold_link))
		list_append(&gen->svc->lc->holding, &gen->hold_link);
	return 0;
}

void generation_hold_output(struct generation *gen, int fd)
{
	if (release_output(gen))
		list_remove(&gen->hold_link);
	if (!gen->cgroup || fd < 0 || !has_writer(fd))
		return;
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (copy >= 0 && hold(gen, copy) < 0)
		close(copy);
}

int generation_restore_held(struct generation *gen, int fd)
{
	return hold(gen, fd);
}

void lifecycle_release_output(struct lifecycle *lc)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &lc->holding) {
		struct generation *gen = container_of(pos, struct generation, hold_link);
		if (release_output(gen))
			list_remove(&gen->hold_link);
	}
}

void generation_stray_timer(struct generation *gen, double after)
{
	ev_timer_stop(gen->svc->lc->loop, &gen->stray_timer);
	ev_timer_set(&gen->stray_timer, after > 0 ? after : 0, 0);
	ev_timer_start(gen->svc->lc->loop, &gen->stray_timer);
	gen->strays_at = lifecycle_now() + (after > 0 ? after : 0);
}

void lifecycle_cgroup_empty(struct generation *gen)
{
	if (!list_empty(&gen->procs))
		return;
	gen->strays = 0;
	generation_check_empty(gen);
}

void generation_keep_strays(struct generation *gen)
{
	if (!gen->strays_signalled)
		return;
	ev_timer_stop(gen->svc->lc->loop, &gen->stray_timer);
	gen->strays_signalled = gen->strays_killed = false;
	gen->strays = 0;
}

bool generation_saw_oom(struct generation *gen)
{
	struct lifecycle_host *host = gen->svc->lc->host;
	long long n = gen->cgroup ? host->cgroup_oom_kills(host, gen) : -1;
	if (n <= gen->oom_kills)
		return false;
	gen->oom_kills = n;
	return true;
}

void generation_check_empty(struct generation *gen)
{
	if (!list_empty(&gen->procs))
		return;
	struct service *svc = gen->svc;
	if (gen->role == GEN_NEXT)
		return;
	if (wait_for_strays(gen))
		return;
	if (gen->role == GEN_CURRENT && svc->wanted) {
		struct lifecycle_event e = lifecycle_gen_event(LC_GEN_EMPTY, gen);
		lifecycle_emit(svc->lc, &e);
	}
	if (gen->role == GEN_DRAINING) {
		struct lifecycle_event e = lifecycle_gen_event(LC_DRAINED, gen);
		e.secs = e.t - gen->drain_at;
		lifecycle_emit(svc->lc, &e);
	}
	generation_destroy(gen);
	service_check_idle(svc);
}

struct generation *generation_restore(struct service *svc, const struct generation *saved,
	struct service_conf *conf, struct listener **listeners)
{
	struct generation *gen = calloc(1, sizeof(*gen));
	if (!gen)
		return NULL;
	gen->svc = svc;
	gen->number = saved->number;
	gen->conf = service_conf_ref(conf);
	gen->role = saved->role;
	gen->started_at = saved->started_at;
	gen->drain_at = saved->drain_at;
	gen->listeners = listeners;
	gen->pin = saved->pin;
	gen->cgroup_dir = -1;
	ev_timer_init(&gen->stray_timer, stray_timer_cb, 0, 0);
	ev_set_priority(&gen->stray_timer, EV_MAXPRI);
	list_init(&gen->procs);
	list_init(&gen->hash_link);
	list_init(&gen->hold_link);
	lifecycle_hash_later(svc->lc, gen);
	// What is left in its cgroup keeps the deadline it was given.
	gen->strays = saved->strays;
	gen->strays_signalled = saved->strays_signalled;
	gen->strays_killed = saved->strays_killed;
	if (gen->strays_signalled)
		generation_stray_timer(gen, saved->strays_at - lifecycle_now());
	// Its processes are in its cgroup already: it is found again, not made.
	struct lifecycle_host *host = svc->lc->host;
	char err[256];
	if (host->cgroup_open && host->cgroup_open(host, gen, err, sizeof(err)) < 0)
		lifecycle_error(svc, NULL, "gen %u: %s", gen->number, err);
	// Oldest first in the state: each one goes in front of the ones before.
	list_insert_after(&svc->gens, &gen->link);
	if (gen->role == GEN_CURRENT)
		svc->current = gen;
	return gen;
}
