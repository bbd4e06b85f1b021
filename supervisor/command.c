#include "command.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batond.h"
#include "clock.h"
#include "config_read.h"
#include "conns.h"
#include "control.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "parse.h"
#include "service.h"

static void reply_error(struct client *c, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_error(struct client *c, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct protocol_buf buf = {0};
	protocol_error(&buf, code, msg);
	client_send_buf(c, &buf);
}

static void reply_ok(struct client *c, struct protocol_buf *buf)
{
	protocol_buf_add(buf, "ok\n", 3);
	client_send_buf(c, buf);
}

static struct service *find_service(struct daemon *d, struct client *c, const char *name)
{
	struct service *svc = daemon_service(d, name);
	if (!svc)
		reply_error(c, PROTOCOL_E_NOT_FOUND, "no service named \"%.64s\"", name);
	return svc;
}

static const char *const role_names[] = {
	[GEN_CURRENT] = "current",
	[GEN_NEXT] = "next",
	[GEN_DRAINING] = "draining",
};

static void record_proc_times(struct protocol_buf *buf, const struct proc *p, double t)
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
struct conn_lookup {
	struct daemon *d;
};

static int lookup_conns(struct conn_lookup *cl, const struct proc *p)
{
	if (p->state != PROC_STOPPING || p->pid <= 0)
		return -1;
	return daemon_count_conns(cl->d, p->pid);
}

static void record_proc(struct protocol_buf *buf, const struct proc *p, double t,
	struct ev_loop *loop, struct conn_lookup *cl)
{
	protocol_record_begin(buf, "proc");
	protocol_record_str(buf, "service", p->gen->svc->name);
	protocol_record_int(buf, "gen", p->gen->number);
	protocol_record_str(buf, "role", role_names[p->gen->role]);
	protocol_record_int(buf, "instance", p->instance);
	protocol_record_int(buf, "pid", p->pid);
	protocol_record_str(buf, "state", proc_state_name(p->state));
	if (p->state == PROC_WAITING && ev_is_active(&p->timer))
		protocol_record_secs(buf, "restart_in", ev_timer_remaining(loop, (ev_timer *)&p->timer));
	else
		record_proc_times(buf, p, t);
	if (p->state == PROC_STOPPING && p->killed)
		protocol_record_str(buf, "killed", "yes");
	protocol_record_int(buf, "restarts", p->restarts);
	int conns = lookup_conns(cl, p);
	if (conns >= 0)
		protocol_record_int(buf, "conns", conns);
	if (p->status_text)
		protocol_record_str(buf, "status", p->status_text);
	if (p->error)
		protocol_record_str(buf, "error", p->error);
	protocol_record_end(buf);
}

static unsigned count_ready(const struct generation *gen)
{
	unsigned n = 0;
	struct list *pos;
	list_for_each(pos, &gen->procs) {
		if (container_of(pos, struct proc, link)->state == PROC_READY)
			n++;
	}
	return n;
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

static void record_service(struct protocol_buf *buf, const struct service *svc)
{
	protocol_record_begin(buf, "service");
	protocol_record_str(buf, "name", svc->name);
	protocol_record_str(buf, "state", service_state_name(svc));
	protocol_record_int(buf, "gen", svc->current ? svc->current->number : 0);
	protocol_record_int(buf, "instances",
		svc->current ? svc->current->conf->instances : svc->conf->instances);
	protocol_record_int(buf, "ready", svc->current ? count_ready(svc->current) : 0);
	protocol_record_int(buf, "running", service_live_procs(svc));
	if (svc->next)
		protocol_record_int(buf, "upgrading_to", svc->next->number);
	protocol_record_int(buf, "restarts", (long long)svc->restarts);
	protocol_record_int(buf, "upgrades", (long long)svc->upgrades);
	protocol_record_int(buf, "rollbacks", (long long)svc->rollbacks);
	protocol_record_int(buf, "kills", (long long)svc->kills);
	put_command(buf, svc->conf->command);
	if (svc->removed)
		protocol_record_str(buf, "removed", "yes");
	if (svc->reason[0])
		protocol_record_str(buf, "reason", svc->reason);
	protocol_record_end(buf);
}

// Only the processes that need attention: not ready, or not of the current
// generation. A healthy batond with thousands of processes answers in a line
// per service.
static bool notable(const struct proc *p)
{
	return p->state != PROC_READY || p->gen->role != GEN_CURRENT;
}

static void record_procs(struct protocol_buf *buf, const struct service *svc, struct ev_loop *loop,
	struct conn_lookup *cl, bool all)
{
	double t = clock_now();
	struct list *g, *pos;
	// Oldest generation first, so a drain reads top to bottom.
	for (g = svc->gens.prev; g != &svc->gens; g = g->prev) {
		struct generation *gen = container_of(g, struct generation, link);
		list_for_each(pos, &gen->procs) {
			struct proc *p = container_of(pos, struct proc, link);
			if (all || notable(p))
				record_proc(buf, p, t, loop, cl);
		}
	}
}

/*
 * The state of one service with all its processes, or of every service with
 * the notable processes only (all: with every process anyway).
 */
static void record_snapshot(struct protocol_buf *buf, struct daemon *d, const struct service *svc,
	bool all)
{
	struct conn_lookup cl = {d};
	struct list *pos;
	list_for_each(pos, &d->services) {
		struct service *s = container_of(pos, struct service, link);
		if (!svc || s == svc)
			record_service(buf, s);
	}
	list_for_each(pos, &d->services) {
		struct service *s = container_of(pos, struct service, link);
		if (!svc || s == svc)
			record_procs(buf, s, d->loop, &cl, all || svc);
	}
}

static void record_socket(struct protocol_buf *buf, const struct listener *l)
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

static bool uses_socket(const struct service *svc, const char *name)
{
	for (size_t i = 0; i < svc->conf->nsockets; i++) {
		if (strcmp(svc->conf->sockets[i], name) == 0)
			return true;
	}
	return false;
}

static void record_daemon(struct protocol_buf *buf, struct daemon *d)
{
	unsigned nsvc = (unsigned)list_length(&d->services);
	protocol_record_begin(buf, "daemon");
	protocol_record_int(buf, "pid", getpid());
	protocol_record_str(buf, "version", BATON_VERSION_STRING);
	protocol_record_secs(buf, "uptime", clock_now() - d->started);
	protocol_record_int(buf, "services", nsvc);
	protocol_record_int(buf, "procs", (long long)d->procs.count);
	protocol_record_int(buf, "clients", control_clients(d->control));
	protocol_record_int(buf, "orphans", (long long)d->orphans);
	protocol_record_str(buf, "state", d->shutting_down ? "stopping" : "running");
	if (d->config_path)
		protocol_record_str(buf, "config", d->config_path);
	protocol_record_end(buf);
}

static void cmd_status(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *only = NULL;
	if (req->argc > 0 && !(only = find_service(d, c, req->argv[0])))
		return;
	struct protocol_buf buf = {0};
	if (!only)
		record_daemon(&buf, d);
	struct list *pos;
	list_for_each(pos, &d->listeners) {
		struct listener *l = container_of(pos, struct listener, link);
		if (!only || uses_socket(only, l->name))
			record_socket(&buf, l);
	}
	record_snapshot(&buf, d, only, false);
	reply_ok(c, &buf);
}

static bool refuse_while_stopping(struct daemon *d, struct client *c)
{
	if (!d->shutting_down)
		return false;
	reply_error(c, PROTOCOL_E_BUSY, "batond is shutting down");
	return true;
}

static void cmd_start(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *svc = find_service(d, c, req->argv[0]);
	if (!svc || refuse_while_stopping(d, c))
		return;
	service_start(svc);
	struct protocol_buf buf = {0};
	record_service(&buf, svc);
	reply_ok(c, &buf);
}

static void begin_wait(struct client *c, struct service *svc, struct list *waiters,
	void (*done)(struct service_waiter *w, bool ok, const char *message))
{
	c->busy = true;
	c->waiting_on = svc;
	c->waiter.done = done;
	list_append(waiters, &c->waiter.link);
}

// Sends the service's state, then its events as they happen.
static void begin_stream(struct daemon *d, struct client *c, struct service *svc)
{
	struct protocol_buf buf = {0};
	record_snapshot(&buf, d, svc, true);
	client_send_buf(c, &buf);
	client_set_streaming(c, svc->name);
}

static void stop_done(struct service_waiter *w, bool ok, const char *message)
{
	struct client *c = container_of(w, struct client, waiter);
	struct service *svc = c->waiting_on;
	c->waiting_on = NULL;
	client_set_streaming(c, NULL);
	if (!ok) {
		reply_error(c, PROTOCOL_E_FAILED, "%s", message);
	} else {
		struct protocol_buf buf = {0};
		record_service(&buf, svc);
		reply_ok(c, &buf);
	}
	client_request_done(c);
}

static void cmd_stop(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *svc = find_service(d, c, req->argv[0]);
	if (!svc)
		return;
	bool wait = (req->flags & FLAG_WAIT) && service_live_procs(svc) > 0;
	if (wait)
		begin_stream(d, c, svc);
	service_stop(svc);
	if (wait && service_live_procs(svc) > 0) {
		begin_wait(c, svc, &svc->stop_waiters, stop_done);
		return;
	}
	client_set_streaming(c, NULL);
	struct protocol_buf buf = {0};
	record_service(&buf, svc);
	reply_ok(c, &buf);
}

static void cmd_restart(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *svc = find_service(d, c, req->argv[0]);
	if (!svc || refuse_while_stopping(d, c))
		return;
	service_restart(svc);
	struct protocol_buf buf = {0};
	record_service(&buf, svc);
	reply_ok(c, &buf);
}

static void cmd_signal(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *svc = find_service(d, c, req->argv[0]);
	if (!svc)
		return;
	int signo;
	char err[256];
	if (parse_signal(req->argv[1], &signo, err, sizeof(err)) < 0) {
		reply_error(c, PROTOCOL_E_USAGE, "%s", err);
		return;
	}
	unsigned n = service_signal(svc, signo);
	struct protocol_buf buf = {0};
	protocol_record_begin(&buf, "signalled");
	protocol_record_str(&buf, "service", svc->name);
	protocol_record_str(&buf, "signal", signal_name(signo) ? signal_name(signo) : req->argv[1]);
	protocol_record_int(&buf, "procs", n);
	protocol_record_end(&buf);
	reply_ok(c, &buf);
}

static void record_upgrade(struct protocol_buf *buf, const struct service *svc, const char *state,
	unsigned gen)
{
	protocol_record_begin(buf, "upgrade");
	protocol_record_str(buf, "service", svc->name);
	protocol_record_int(buf, "gen", gen);
	protocol_record_str(buf, "state", state);
	protocol_record_end(buf);
}

static void upgrade_done(struct service_waiter *w, bool ok, const char *message)
{
	struct client *c = container_of(w, struct client, waiter);
	struct service *svc = c->waiting_on;
	c->waiting_on = NULL;
	client_set_streaming(c, NULL);
	if (!ok) {
		reply_error(c, PROTOCOL_E_FAILED, "%s", message);
	} else {
		struct protocol_buf buf = {0};
		record_upgrade(&buf, svc, "done", svc->current ? svc->current->number : 0);
		reply_ok(c, &buf);
	}
	client_request_done(c);
}

// Reads the service's definition again from the config file.
static struct service_conf *reread(struct daemon *d, struct client *c, struct service *svc)
{
	if (!d->config_path)
		return service_conf_ref(svc->conf);
	char *errors = NULL;
	struct config *config = config_load(d->config_path, &errors);
	if (!config) {
		size_t n = errors ? strcspn(errors, "\n") : 0;
		reply_error(c, PROTOCOL_E_INVALID, "%.*s", (int)n, errors ? errors : "");
		free(errors);
		return NULL;
	}
	struct service_conf *conf = config_service(config, svc->name);
	if (!conf) {
		reply_error(c, PROTOCOL_E_NOT_FOUND, "no [service:%s] in %s any more", svc->name,
			d->config_path);
	} else {
		for (size_t i = 0; conf && i < conf->nsockets; i++) {
			if (!daemon_listener(d, conf->sockets[i])) {
				reply_error(c, PROTOCOL_E_INVALID,
					"socket %s is new in %s: batond has not opened it",
					conf->sockets[i], d->config_path);
				conf = NULL;
			}
		}
	}
	if (conf)
		service_conf_ref(conf);
	config_destroy(config);
	return conf;
}

static void cmd_upgrade(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *svc = find_service(d, c, req->argv[0]);
	if (!svc || refuse_while_stopping(d, c))
		return;
	struct service_conf *conf = reread(d, c, svc);
	if (!conf)
		return;
	bool wait = req->flags & FLAG_WAIT;
	char err[512];
	if (wait && !svc->upgrade.active)
		begin_stream(d, c, svc);
	int rc = service_upgrade(svc, conf, err, sizeof(err));
	service_conf_unref(conf);
	if (rc < 0 || !svc->upgrade.active) {
		client_set_streaming(c, NULL);
		// Refused, or ended at once: rolled back before any process could run.
		reply_error(c, rc < 0 ? PROTOCOL_E_BUSY : PROTOCOL_E_FAILED, "%s",
			rc < 0 ? err : svc->reason);
		return;
	}
	if (wait) {
		begin_wait(c, svc, &svc->upgrade_waiters, upgrade_done);
		return;
	}
	struct protocol_buf buf = {0};
	record_upgrade(&buf, svc, "started", svc->next->number);
	reply_ok(c, &buf);
}

static void cmd_watch(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *svc = NULL;
	if (req->argc > 0 && !(svc = find_service(d, c, req->argv[0])))
		return;
	struct protocol_buf buf = {0};
	record_snapshot(&buf, d, svc, true);
	client_send_buf(c, &buf);
	client_set_streaming(c, svc ? svc->name : "");
}

static void cmd_reload(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	(void)req;
	struct protocol_buf buf = {0};
	if (d->shutting_down) {
		reply_error(c, PROTOCOL_E_BUSY, "batond is shutting down");
		return;
	}
	log_info("reload asked by a control client (pid %d)", (int)c->pid);
	if (daemon_reload(d, &buf) < 0) {
		client_send_buf(c, &buf);
		return;
	}
	reply_ok(c, &buf);
}

static void cmd_reexec(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	(void)req;
	char err[512];
	log_info("re-exec asked by a control client (pid %d)", (int)c->pid);
	// On success this does not return: the new batond answers on this socket.
	daemon_reexec(d, c->io.fd, err, sizeof(err));
	reply_error(c, PROTOCOL_E_FAILED, "%s", err);
}

static void cmd_metrics(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	(void)req;
	struct protocol_buf buf = {0};
	metrics_render(d, &buf);
	reply_ok(c, &buf);
}

static void cmd_shutdown(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	(void)req;
	struct protocol_buf buf = {0};
	reply_ok(c, &buf);
	log_info("shutdown asked by a control client (pid %d)", (int)c->pid);
	daemon_shutdown(d);
}

static void cmd_version(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	(void)d;
	(void)req;
	struct protocol_buf buf = {0};
	protocol_record_begin(&buf, "version");
	protocol_record_str(&buf, "version", BATON_VERSION_STRING);
	protocol_record_int(&buf, "protocol", 1);
	protocol_record_end(&buf);
	reply_ok(c, &buf);
}

typedef void (*command_fn)(struct daemon *d, struct client *c, const struct protocol_request *req);

static const command_fn commands[VERB_COUNT] = {
	[VERB_STATUS] = cmd_status,
	[VERB_START] = cmd_start,
	[VERB_STOP] = cmd_stop,
	[VERB_RESTART] = cmd_restart,
	[VERB_UPGRADE] = cmd_upgrade,
	[VERB_SIGNAL] = cmd_signal,
	[VERB_WATCH] = cmd_watch,
	[VERB_RELOAD] = cmd_reload,
	[VERB_REEXEC] = cmd_reexec,
	[VERB_SHUTDOWN] = cmd_shutdown,
	[VERB_METRICS] = cmd_metrics,
	[VERB_VERSION] = cmd_version,
};

void command_run(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	commands[req->verb](d, c, req);
}
