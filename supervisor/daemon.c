#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "listener.h"
#include "log.h"
#include "parse.h"
#include "sd_daemon.h"
#include "version.h"

char *daemon_notify_path(const char *control)
{
	char *path;
	size_t n = strlen(control);
	int rc;
	if (n > 5 && strcmp(control + n - 5, ".sock") == 0)
		rc = asprintf(&path, "%.*s-notify.sock", (int)(n - 5), control);
	else
		rc = asprintf(&path, "%s.notify", control);
	return rc < 0 ? NULL : path;
}

/* ---- listeners ---- */

struct listener *daemon_listener(struct daemon *d, const char *name)
{
	struct list *pos;
	list_for_each(pos, &d->listeners) {
		struct listener *l = container_of(pos, struct listener, link);
		if (!l->retired && strcmp(l->name, name) == 0)
			return l;
	}
	return NULL;
}

// A unix socket file is removed only when no open listener has that path.
static bool path_in_use(struct daemon *d, const struct listener *gone)
{
	struct list *pos;
	list_for_each(pos, &d->listeners) {
		struct listener *l = container_of(pos, struct listener, link);
		if (l != gone && l->addr.family == ADDRESS_UNIX &&
			strcmp(l->addr.path, gone->addr.path) == 0)
			return true;
	}
	return false;
}

void daemon_listener_release(struct daemon *d, struct listener *l)
{
	if (l->users > 0)
		l->users--;
	if (!l->retired || l->users > 0)
		return;
	log_info("socket %s: closed %s %s: no generation uses it any more", l->name,
		listener_kind(l), l->bound);
	bool remove_file = l->addr.family == ADDRESS_UNIX && !path_in_use(d, l);
	list_remove(&l->link);
	listener_destroy(l, remove_file);
}

static struct listener *open_listener(struct socket_conf *conf, struct sd_daemon_fds *sd)
{
	char err[512];
	int fd = sd_daemon_fd(sd, conf->name);
	struct listener *l = fd >= 0 ? listener_adopt(conf, fd, err, sizeof(err))
				      : listener_create(conf, err, sizeof(err));
	if (!l) {
		log_error("%s", err);
		return NULL;
	}
	log_info("socket %s: %s %s %s", l->name, fd >= 0 ? "from systemd:" : "listening on",
		listener_kind(l), l->bound);
	return l;
}

int daemon_open_listeners(struct daemon *d)
{
	struct sd_daemon_fds sd;
	sd_daemon_take_fds(&sd);
	int rc = 0;
	for (size_t i = 0; i < d->config->nsockets && rc == 0; i++) {
		struct listener *l = open_listener(d->config->sockets[i], &sd);
		if (l)
			list_append(&d->listeners, &l->link);
		else
			rc = -1;
	}
	sd_daemon_finish(&sd);
	return rc;
}

/* ---- the lifecycle's host ---- */

static struct daemon *daemon_of(struct lifecycle_host *h)
{
	return container_of(h, struct daemon, host);
}

static struct listener *host_listener(struct lifecycle_host *h, const char *name)
{
	struct listener *l = daemon_listener(daemon_of(h), name);
	if (l)
		l->users++;
	return l;
}

static void host_release(struct lifecycle_host *h, struct listener *l)
{
	daemon_listener_release(daemon_of(h), l);
}

static int host_count_conns(struct lifecycle_host *h, pid_t pid)
{
	return daemon_count_conns(daemon_of(h), pid);
}

static const char *host_notify_path(struct lifecycle_host *h)
{
	return daemon_of(h)->notify_path;
}

static pid_t host_spawn(struct lifecycle_host *h, const struct spawn_request *req, int *errfd)
{
	(void)h;
	return spawn_process(req, errfd);
}

static int host_kill(struct lifecycle_host *h, pid_t pid, int signo)
{
	(void)h;
	return kill(pid, signo);
}

static pid_t host_session_of(struct lifecycle_host *h, pid_t pid)
{
	(void)h;
	return getsid(pid);
}

static int host_cgroup_open(struct lifecycle_host *h, struct generation *gen, char *err,
	size_t errlen)
{
	return containment_open(daemon_of(h)->cg, gen, err, errlen);
}

static bool host_cgroup_populated(struct lifecycle_host *h, const struct generation *gen)
{
	return containment_populated(daemon_of(h)->cg, gen);
}

static unsigned host_cgroup_signal(struct lifecycle_host *h, const struct generation *gen,
	int signo, char *who, size_t wholen)
{
	return containment_signal(daemon_of(h)->cg, gen, signo, who, wholen);
}

static long long host_cgroup_oom_kills(struct lifecycle_host *h, const struct generation *gen)
{
	struct cgroup_usage u;
	containment_usage(daemon_of(h)->cg, gen, &u);
	return u.oom_kills;
}

static void host_cgroup_close(struct lifecycle_host *h, struct generation *gen)
{
	containment_close(daemon_of(h)->cg, gen);
}

static int host_set_priority(struct lifecycle_host *h, pid_t pgid, int nice)
{
	(void)h;
	return setpriority(PRIO_PGRP, (id_t)pgid, nice);
}

// Whether batond may give a process's priority back once it is ready: as
// root, or within RLIMIT_NICE.
static bool may_renice(int base)
{
	struct rlimit rl;
	return geteuid() == 0 ||
		(getrlimit(RLIMIT_NICE, &rl) == 0 &&
			(rl.rlim_cur == RLIM_INFINITY || 20 - (long)rl.rlim_cur <= base));
}

static void collect_later(struct daemon *d)
{
	ev_idle_start(d->loop, &d->collector);
}

static void check_done(struct daemon *d);

// The daemon's own part in an event, after every subscriber's.
static void host_event(struct lifecycle_host *h, const struct lifecycle_event *e)
{
	struct daemon *d = daemon_of(h);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &d->subscribers) {
		struct daemon_subscriber *s = container_of(pos, struct daemon_subscriber, link);
		s->event(s, e);
	}
	if (e->kind != LC_IDLE)
		return;
	if (e->svc->removed)
		collect_later(d);
	check_done(d);
}

static const struct lifecycle_host daemon_host = {
	.listener = host_listener,
	.release = host_release,
	.count_conns = host_count_conns,
	.notify_path = host_notify_path,
	.spawn = host_spawn,
	.kill = host_kill,
	.session_of = host_session_of,
	.event = host_event,
	.cgroup_open = host_cgroup_open,
	.cgroup_populated = host_cgroup_populated,
	.cgroup_signal = host_cgroup_signal,
	.cgroup_oom_kills = host_cgroup_oom_kills,
	.cgroup_close = host_cgroup_close,
	.set_priority = host_set_priority,
};

void daemon_subscribe(struct daemon *d, struct daemon_subscriber *s)
{
	list_append(&d->subscribers, &s->link);
}

void daemon_unsubscribe(struct daemon *d, struct daemon_subscriber *s)
{
	(void)d;
	list_remove(&s->link);
}

/* ---- services ---- */

static void collector_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	struct daemon *d = container_of(w, struct daemon, collector);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		if (svc->removed && list_empty(&svc->gens)) {
			log_info("%s: removed", svc->name);
			list_remove(&svc->link);
			d->nservices--;
			service_destroy(svc);
		}
	}
	ev_idle_stop(loop, w);
	check_done(d);
}

struct service *daemon_service(struct daemon *d, const char *name)
{
	struct list *pos;
	list_for_each(pos, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		if (!svc->removed && strcmp(svc->name, name) == 0)
			return svc;
	}
	return NULL;
}

struct service *daemon_add_service(struct daemon *d, struct service_conf *conf)
{
	struct service *svc = service_create(&d->lc, conf);
	if (svc) {
		list_append(&d->services, &svc->link);
		d->nservices++;
	}
	return svc;
}

// In single-command mode batond ends with its command, with its status.
static bool single_done(struct daemon *d)
{
	if (!d->single)
		return false;
	struct list *pos;
	list_for_each(pos, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		if (!list_empty(&svc->gens) || svc->start_when_empty)
			return false;
	}
	return true;
}

static bool all_stopped(struct daemon *d)
{
	struct list *pos;
	list_for_each(pos, &d->services) {
		if (!list_empty(&container_of(pos, struct service, link)->gens))
			return false;
	}
	return true;
}

// Ends the loop once batond has nothing left to do.
static void check_done(struct daemon *d)
{
	if (single_done(d)) {
		int st = d->last_status;
		d->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
		log_info("the command has ended: exiting with status %d", d->exit_status);
		ev_break(d->loop, EVBREAK_ALL);
		return;
	}
	if (d->shutting_down && all_stopped(d))
		ev_break(d->loop, EVBREAK_ALL);
}

int daemon_tell_systemd(struct daemon *d, const char *msg)
{
	return d->systemd_notify ? sd_daemon_notify(d->systemd_notify, msg) : 0;
}

void daemon_shutdown(struct daemon *d)
{
	if (d->shutting_down) {
		log_info("already shutting down: %zu process%s left", d->lc.procs.count,
			d->lc.procs.count == 1 ? "" : "es");
		return;
	}
	d->shutting_down = true;
	log_info("shutting down: stopping every service");
	daemon_tell_systemd(d, "STOPPING=1");
	struct list *pos;
	list_for_each(pos, &d->services)
		service_stop(container_of(pos, struct service, link));
	check_done(d);
}

/* ---- children ---- */

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	(void)loop;
	(void)revents;
	struct daemon *d = container_of(w, struct daemon, child);
	if (lifecycle_proc(&d->lc, w->rpid))
		d->last_status = w->rstatus;
	if (lifecycle_reap(&d->lc, w->rpid, w->rstatus))
		return;
	char desc[128];
	describe_status(w->rstatus, desc, sizeof(desc));
	d->orphans++;
	log_debug("reaped orphan %d: %s", (int)w->rpid, desc);
}

static void become_reaper(void)
{
	if (getpid() == 1)
		return;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("neither PID 1 nor a subreaper (%s): orphans of services are not "
			 "reaped by batond",
			strerror(errno));
}

void daemon_unblock_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

int daemon_count_conns(struct daemon *d, pid_t pid)
{
	// Read from the kernel's tables, never from copies of the process's own
	// sockets: a copy batond holds as the process closes one keeps it in the
	// process's epoll set, and the process gets events for a connection it has
	// freed. At most once per loop iteration, however many processes are asked
	// about.
	unsigned iteration = ev_iteration(d->loop);
	if (!d->conns_loaded || d->conns_iteration != iteration) {
		if (d->conns_loaded)
			conns_finish(&d->conns);
		d->conns_loaded = conns_load(&d->conns) == 0;
		d->conns_iteration = iteration;
	}
	return d->conns_loaded ? conns_count(&d->conns, pid) : -1;
}

// Where a daemon without memory for its own has no cgroups.
static struct containment no_containment = {.root = -1, .inotify = -1};

void daemon_init(struct daemon *d)
{
	memset(d, 0, sizeof(*d));
	list_init(&d->listeners);
	list_init(&d->services);
	list_init(&d->subscribers);
	d->host = daemon_host;
	errno = 0;
	d->host.base_nice = getpriority(PRIO_PROCESS, 0);
	if (errno || !may_renice(d->host.base_nice))
		d->host.set_priority = NULL;
	// On the heap: its paths are long, and a process's stack stays what it touched.
	d->cg = malloc(sizeof(*d->cg));
	if (!d->cg)
		d->cg = &no_containment;
	d->cg->root = d->cg->inotify = -1;
	d->cg->path[0] = d->cg->why[0] = '\0';
	list_init(&d->cg->groups);
}

int daemon_contain(struct daemon *d, bool created)
{
	containment_setup(d->cg, d->loop, d->config->cgroup, created, false);
	char name[PATH_MAX + 16], err[4096];
	if (d->cg->root < 0)
		log_info("containment: process groups, no cgroups: %s", d->cg->why);
	else
		log_debug("containment: %s", containment_name(d->cg, name, sizeof(name)));
	if (containment_check(d->cg, d->config, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

// The path of batond's binary, for a re-exec.
static char *own_exe(void)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	// Replaced since this binary started (a re-exec handed the services back
	// to it): the path is still where batond is installed.
	const char *deleted = " (deleted)";
	size_t dl = strlen(deleted);
	if ((size_t)n > dl && strcmp(exe + n - dl, deleted) == 0 && access(exe, F_OK) < 0)
		exe[n - dl] = '\0';
	return strdup(exe);
}

int daemon_prepare(struct daemon *d)
{
	d->loop = ev_default_loop(EVFLAG_AUTO);
	if (!d->loop) {
		log_error("cannot create the event loop");
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	ev_child_init(&d->child, child_cb, 0, 0);
	ev_child_start(d->loop, &d->child);
	ev_idle_init(&d->collector, collector_cb);
	lifecycle_init(&d->lc, d->loop, &d->host);
	become_reaper();
	d->exe = own_exe();
	return 0;
}

int daemon_start(struct daemon *d)
{
	for (size_t i = 0; i < d->config->nservices; i++) {
		if (!daemon_add_service(d, d->config->services[i])) {
			log_error("out of memory");
			return -1;
		}
	}
	log_info("batond %s: %zu service%s, control socket %s", BATON_VERSION,
		d->config->nservices, d->config->nservices == 1 ? "" : "s", d->control_path);
	struct list *pos;
	list_for_each(pos, &d->services)
		service_start(container_of(pos, struct service, link));
	char msg[128];
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%zu services started\nMAINPID=%d",
		d->config->nservices, (int)getpid());
	if (daemon_tell_systemd(d, msg) < 0)
		log_warn("NOTIFY_SOCKET %s: %s", d->systemd_notify, strerror(errno));
	return 0;
}

int daemon_run(struct daemon *d)
{
	ev_run(d->loop, 0);
	if (!d->single)
		log_info("every service has stopped; exiting");
	return d->exit_status;
}

void daemon_destroy_services(struct daemon *d)
{
	while (!list_empty(&d->services)) {
		struct service *svc = container_of(d->services.next, struct service, link);
		list_remove(&svc->link);
		d->nservices--;
		service_destroy(svc);
	}
}

void daemon_finish(struct daemon *d)
{
	daemon_destroy_services(d);
	containment_finish(d->cg);
	if (d->cg != &no_containment)
		free(d->cg);
	d->cg = &no_containment;
	while (!list_empty(&d->listeners)) {
		struct listener *l = container_of(d->listeners.next, struct listener, link);
		list_remove(&l->link);
		listener_destroy(l, true);
	}
	if (d->loop)
		lifecycle_finish(&d->lc);
	config_destroy(d->config);
	free(d->control_path);
	free(d->notify_path);
	free(d->config_path);
	free(d->systemd_notify);
	free(d->exe);
	if (d->conns_loaded)
		conns_finish(&d->conns);
	if (d->loop)
		ev_loop_destroy(d->loop);
}
