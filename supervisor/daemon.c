#include "batond.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "control.h"
#include "event.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "reload.h"
#include "service.h"
#include "systemd.h"

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

static int make_parent_dir(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -1;
	char *dir = dirname(copy);
	int rc = 0;
	if (access(dir, F_OK) < 0) {
		// One level only: the parent of a control socket's directory must exist.
		rc = mkdir(dir, geteuid() == 0 ? 0755 : 0700);
		if (rc < 0 && errno == EEXIST)
			rc = 0;
	}
	if (rc < 0)
		log_error("cannot create the directory %s: %s", dir, strerror(errno));
	free(copy);
	return rc;
}

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

static void collector_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	struct daemon *d = w->data;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		if (svc->removed && list_empty(&svc->gens)) {
			log_info("%s: removed", svc->name);
			list_remove(&svc->link);
			service_destroy(svc);
		}
	}
	ev_idle_stop(loop, w);
	daemon_check_done(d);
}

void daemon_collect_later(struct daemon *d)
{
	ev_idle_start(d->loop, &d->collector);
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

void daemon_check_done(struct daemon *d)
{
	if (single_done(d)) {
		int st = d->last_status;
		d->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
		log_info("the command has ended: exiting with status %d", d->exit_status);
		ev_break(d->loop, EVBREAK_ALL);
		return;
	}
	if (!d->shutting_down)
		return;
	struct list *pos;
	list_for_each(pos, &d->services) {
		if (!list_empty(&container_of(pos, struct service, link)->gens))
			return;
	}
	ev_break(d->loop, EVBREAK_ALL);
}

void daemon_shutdown(struct daemon *d)
{
	if (d->shutting_down) {
		log_info("already shutting down: %zu process%s left", d->procs.count,
			d->procs.count == 1 ? "" : "es");
		return;
	}
	d->shutting_down = true;
	log_info("shutting down: stopping every service");
	if (d->systemd_notify)
		systemd_notify(d->systemd_notify, "STOPPING=1");
	struct list *pos;
	list_for_each(pos, &d->services)
		service_stop(container_of(pos, struct service, link));
	daemon_check_done(d);
}

int daemon_reload(struct daemon *d, struct protocol_buf *report)
{
	char err[1024];
	struct protocol_buf scratch = {0};
	if (d->shutting_down) {
		log_warn("reload: batond is shutting down");
		return -1;
	}
	if (d->systemd_notify)
		systemd_notify(d->systemd_notify, "RELOADING=1");
	int rc = reload_config(d, report ? report : &scratch, err, sizeof(err));
	protocol_buf_finish(&scratch);
	if (rc < 0) {
		log_error("reload failed, the running configuration stays: %s", err);
		if (report)
			protocol_error(report, PROTOCOL_E_INVALID, err);
	}
	if (d->systemd_notify)
		systemd_notify(d->systemd_notify, "READY=1");
	return rc;
}

static void stop_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	struct daemon *d = w->data;
	log_info("received SIG%s", signal_name(w->signum));
	daemon_shutdown(d);
}

// Passes signo on to the processes of every service whose forward_signals has it.
static bool forward(struct daemon *d, int signo)
{
	bool any = false;
	struct list *pos;
	list_for_each(pos, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		if (!(svc->conf->forward_signals & (1ull << signo)))
			continue;
		unsigned n = service_signal(svc, signo);
		log_debug("SIG%s passed on to %u process%s of %s", signal_name(signo), n,
			n == 1 ? "" : "es", svc->name);
		any = true;
	}
	return any;
}

// HUP, QUIT, USR1, USR2, WINCH and ALRM: passed on where a service asks for
// them; otherwise HUP reloads, USR2 re-executes batond, the others are
// ignored. None of them may end batond and orphan its services.
static void other_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	struct daemon *d = w->data;
	if (forward(d, w->signum))
		return;
	switch (w->signum) {
	case SIGHUP:
		log_info("received SIGHUP: reloading %s", d->config_path ? d->config_path : "nothing");
		daemon_reload(d, NULL);
		break;
	case SIGUSR2: {
		char err[512];
		log_info("received SIGUSR2");
		daemon_reexec(d, -1, err, sizeof(err));
		break;
	}
	case SIGWINCH:
	case SIGALRM:
		break;
	default:
		log_warn("received SIG%s: ignored", signal_name(w->signum));
	}
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	(void)loop;
	(void)revents;
	struct daemon *d = w->data;
	if (pidmap_get(&d->procs, w->rpid))
		d->last_status = w->rstatus;
	if (service_reap(d, w->rpid, w->rstatus))
		return;
	char desc[128];
	describe_status(w->rstatus, desc, sizeof(desc));
	d->orphans++;
	log_debug("reaped orphan %d: %s", (int)w->rpid, desc);
}

static const int other_signals[DAEMON_SIGNALS] = {
	SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM,
};

static void setup_signals(struct daemon *d)
{
	signal(SIGPIPE, SIG_IGN);
	ev_signal_init(&d->sigterm, stop_signal_cb, SIGTERM);
	ev_signal_init(&d->sigint, stop_signal_cb, SIGINT);
	d->sigterm.data = d->sigint.data = d;
	ev_signal_start(d->loop, &d->sigterm);
	ev_signal_start(d->loop, &d->sigint);
	for (int i = 0; i < DAEMON_SIGNALS; i++) {
		ev_signal_init(&d->signals[i], other_signal_cb, other_signals[i]);
		d->signals[i].data = d;
		ev_signal_start(d->loop, &d->signals[i]);
	}
	ev_child_init(&d->child, child_cb, 0, 0);
	d->child.data = d;
	ev_child_start(d->loop, &d->child);
	ev_idle_init(&d->collector, collector_cb);
	d->collector.data = d;
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

static struct listener *open_listener(struct socket_conf *conf, struct systemd_fds *sd)
{
	char err[512];
	int fd = systemd_fd(sd, conf->name);
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

static int open_listeners(struct daemon *d)
{
	struct systemd_fds sd;
	systemd_take_fds(&sd);
	int rc = 0;
	for (size_t i = 0; i < d->config->nsockets && rc == 0; i++) {
		struct listener *l = open_listener(d->config->sockets[i], &sd);
		if (l)
			list_append(&d->listeners, &l->link);
		else
			rc = -1;
	}
	systemd_finish(&sd);
	return rc;
}

static int open_sockets(struct daemon *d)
{
	char err[512];
	if (!d->control_path) {
		log_error("no control socket: XDG_RUNTIME_DIR is not set; use -s PATH");
		return -1;
	}
	if (make_parent_dir(d->control_path) < 0)
		return -1;
	d->control = control_create(d, d->control_path, err, sizeof(err));
	if (!d->control) {
		log_error("%s", err);
		return -1;
	}
	if (open_listeners(d) < 0)
		return -1;
	char *npath = daemon_notify_path(d->control_path);
	if (!npath) {
		log_error("out of memory");
		return -1;
	}
	d->notify = notify_create(d, npath, err, sizeof(err));
	free(npath);
	if (!d->notify) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

static int create_services(struct daemon *d)
{
	for (size_t i = 0; i < d->config->nservices; i++) {
		struct service *svc = service_create(d, d->config->services[i]);
		if (!svc) {
			log_error("out of memory");
			return -1;
		}
		list_append(&d->services, &svc->link);
	}
	return 0;
}

static void start_services(struct daemon *d)
{
	struct list *pos;
	list_for_each(pos, &d->services)
		service_start(container_of(pos, struct service, link));
}

void daemon_unblock_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

int daemon_count_conns(struct daemon *d, pid_t pid)
{
	int n = conns_count_pid(pid);
	if (n >= 0)
		return n;
	const struct conns *table = daemon_conns(d);
	return table ? conns_count(table, pid) : -1;
}

const struct conns *daemon_conns(struct daemon *d)
{
	unsigned iteration = ev_iteration(d->loop);
	if (d->conns_loaded && d->conns_iteration == iteration)
		return &d->conns;
	if (d->conns_loaded)
		conns_finish(&d->conns);
	d->conns_loaded = conns_load(&d->conns) == 0;
	d->conns_iteration = iteration;
	return d->conns_loaded ? &d->conns : NULL;
}

void daemon_init(struct daemon *d)
{
	memset(d, 0, sizeof(*d));
	list_init(&d->listeners);
	list_init(&d->services);
	list_init(&d->kill_reports);
	pidmap_init(&d->procs);
}

int daemon_prepare(struct daemon *d)
{
	d->loop = ev_default_loop(EVFLAG_AUTO);
	if (!d->loop) {
		log_error("cannot create the event loop");
		return -1;
	}
	// Handlers first: signals a re-exec kept blocked and pending must find
	// them once unblocked (daemon_unblock_signals).
	setup_signals(d);
	become_reaper();
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		// Replaced since this binary started (a re-exec handed the services
		// back to it): the path is still where batond is installed.
		const char *deleted = " (deleted)";
		size_t dl = strlen(deleted);
		if ((size_t)n > dl && strcmp(exe + n - dl, deleted) == 0 && access(exe, F_OK) < 0)
			exe[n - dl] = '\0';
		d->exe = strdup(exe);
	}
	return 0;
}

void daemon_tell_systemd(struct daemon *d)
{
	if (!d->systemd_notify)
		return;
	char msg[128];
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%zu services started\nMAINPID=%d",
		d->config->nservices, (int)getpid());
	if (systemd_notify(d->systemd_notify, msg) < 0)
		log_warn("NOTIFY_SOCKET %s: %s", d->systemd_notify, strerror(errno));
}

int daemon_start(struct daemon *d)
{
	d->started = clock_now();
	d->wall_started = time(NULL);
	d->systemd_notify = systemd_take_notify_socket();
	if (daemon_prepare(d) < 0)
		return -1;
	daemon_unblock_signals();
	if (open_sockets(d) < 0 || create_services(d) < 0)
		return -1;
	log_info("batond %s: %zu service%s, control socket %s", BATON_VERSION_STRING,
		d->config->nservices, d->config->nservices == 1 ? "" : "s", d->control_path);
	start_services(d);
	daemon_tell_systemd(d);
	return 0;
}

int daemon_run(struct daemon *d)
{
	ev_run(d->loop, 0);
	if (!d->single)
		log_info("every service has stopped; exiting");
	return d->exit_status;
}

void daemon_finish(struct daemon *d)
{
	while (!list_empty(&d->services)) {
		struct service *svc = container_of(d->services.next, struct service, link);
		list_remove(&svc->link);
		service_destroy(svc);
	}
	while (!list_empty(&d->listeners)) {
		struct listener *l = container_of(d->listeners.next, struct listener, link);
		list_remove(&l->link);
		listener_destroy(l, true);
	}
	if (d->loop)
		event_finish(d);
	notify_destroy(d->notify, true);
	control_destroy(d->control, true);
	config_destroy(d->config);
	pidmap_finish(&d->procs);
	free(d->control_path);
	free(d->config_path);
	free(d->systemd_notify);
	free(d->exe);
	while (!list_empty(&d->kill_reports)) {
		struct list *r = d->kill_reports.next;
		list_remove(r);
		free(r);
	}
	if (d->conns_loaded)
		conns_finish(&d->conns);
	if (d->loop)
		ev_loop_destroy(d->loop);
}
