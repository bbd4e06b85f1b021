#include "command.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_read.h"
#include "control.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"
#include "logs.h"
#include "metrics.h"
#include "parse.h"
#include "reexec.h"
#include "reload.h"
#include "status.h"
#include "version.h"
#include "watch.h"

// What a busy client waits for.
enum wait {
	WAIT_NONE,
	WAIT_STOP,
	WAIT_UPGRADE,
	WAIT_HASH, /* an upgrade is done: its reply waits for the new program's hash */
	WAIT_CANARY, /* an upgrade with canaries: until they are ready and it pauses */
};

struct command {
	struct daemon *d;
	struct daemon_subscriber sub;
};

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

static bool uses_socket(const struct service *svc, const char *name)
{
	for (size_t i = 0; i < svc->conf->nsockets; i++) {
		if (strcmp(svc->conf->sockets[i], name) == 0)
			return true;
	}
	return false;
}

// A part of a long reply, sent as the rest is built.
static void send_part(struct protocol_buf *buf, void *data)
{
	client_send(data, buf->data, buf->len);
	buf->len = 0;
}

static void cmd_status(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *only = NULL;
	if (req->argc > 0 && !(only = find_service(d, c, req->argv[0])))
		return;
	struct protocol_buf buf = {0};
	if (!only)
		status_daemon(&buf, d);
	struct list *pos;
	list_for_each(pos, &d->listeners) {
		struct listener *l = container_of(pos, struct listener, link);
		if (!only || uses_socket(only, l->name))
			status_socket(&buf, l);
	}
	struct status_sink sink = {send_part, c};
	status_snapshot_to(&buf, d, only, false, &sink);
	reply_ok(c, &buf);
}

static bool refuse_while_stopping(struct daemon *d, struct client *c)
{
	if (!d->shutting_down)
		return false;
	reply_error(c, PROTOCOL_E_BUSY, "batond is shutting down");
	return true;
}

static void reply_service(struct client *c, const struct service *svc)
{
	struct protocol_buf buf = {0};
	status_service(&buf, svc);
	reply_ok(c, &buf);
}

static void cmd_start(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *svc = find_service(d, c, req->argv[0]);
	if (!svc || refuse_while_stopping(d, c))
		return;
	service_start(svc);
	reply_service(c, svc);
}

static void begin_wait(struct client *c, struct service *svc, enum wait wait)
{
	c->busy = true;
	c->wait = wait;
	c->waiting_on = svc;
}

static void cmd_stop(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *svc = find_service(d, c, req->argv[0]);
	if (!svc)
		return;
	bool wait = (req->flags & FLAG_WAIT) && service_live_procs(svc) > 0;
	if (wait)
		watch_begin(d->watch, c, svc);
	service_stop(svc);
	if (wait && service_live_procs(svc) > 0) {
		begin_wait(c, svc, WAIT_STOP);
		return;
	}
	client_set_streaming(c, NULL);
	reply_service(c, svc);
}

static void cmd_restart(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *svc = find_service(d, c, req->argv[0]);
	if (!svc || refuse_while_stopping(d, c))
		return;
	service_restart(svc);
	reply_service(c, svc);
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

static void put_identity(struct protocol_buf *buf, const char *prefix, const char *exe,
	const char *hash)
{
	char key[32];
	snprintf(key, sizeof(key), "%sexe", prefix);
	if (exe)
		protocol_record_str(buf, key, exe);
	snprintf(key, sizeof(key), "%ssha256", prefix);
	if (hash[0])
		protocol_record_str(buf, key, hash);
}

// The upgrade done: the generation it replaced, and what each one runs.
static void record_upgrade_done(struct protocol_buf *buf, const struct service *svc)
{
	const struct generation *gen = svc->current;
	protocol_record_begin(buf, "upgrade");
	protocol_record_str(buf, "service", svc->name);
	protocol_record_int(buf, "gen", gen ? gen->number : 0);
	protocol_record_str(buf, "state", "done");
	if (gen)
		put_identity(buf, "", gen->pin.exe_path, gen->pin.hash);
	if (svc->replaced.number) {
		protocol_record_int(buf, "from", svc->replaced.number);
		put_identity(buf, "from_", svc->replaced.exe, svc->replaced.hash);
	}
	protocol_record_end(buf);
}

// Checks that every socket a new definition names is open.
static bool sockets_open(struct daemon *d, struct client *c, const struct service_conf *conf)
{
	for (size_t i = 0; i < conf->nsockets; i++) {
		if (!daemon_listener(d, conf->sockets[i])) {
			reply_error(c, PROTOCOL_E_INVALID,
				"socket %s is new in %s: batond has not opened it", conf->sockets[i],
				d->config_path);
			return false;
		}
	}
	return true;
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
	char err[1024];
	if (!conf)
		reply_error(c, PROTOCOL_E_NOT_FOUND, "no [service:%s] in %s any more", svc->name,
			d->config_path);
	else if (containment_check(d->cg, config, err, sizeof(err)) < 0) {
		reply_error(c, PROTOCOL_E_INVALID, "%s", err);
		conf = NULL;
	} else if (sockets_open(d, c, conf))
		service_conf_ref(conf);
	else
		conf = NULL;
	config_destroy(config);
	return conf;
}

// upgrade --continue and --abort: an upgrade in progress goes on, or ends.
static void upgrade_decision(struct daemon *d, struct client *c, struct service *svc,
	const struct protocol_request *req)
{
	char err[512];
	bool wait = req->flags & FLAG_WAIT, go_on = req->flags & FLAG_CONTINUE;
	if (req->argc != 1 || (req->flags & (FLAG_CANARY | FLAG_OBSERVE | FLAG_GATE)) ||
		(go_on && (req->flags & FLAG_ABORT))) {
		reply_error(c, PROTOCOL_E_USAGE, "usage: upgrade [--wait] --continue|--abort SERVICE");
		return;
	}
	unsigned number = svc->next ? svc->next->number : 0;
	if (go_on && wait)
		watch_begin(d->watch, c, svc);
	int rc = go_on ? service_upgrade_continue(svc, "batonctl upgrade --continue", err, sizeof(err))
		       : service_upgrade_abort(svc, "batonctl upgrade --abort", err, sizeof(err));
	if (rc < 0) {
		client_set_streaming(c, NULL);
		reply_error(c, PROTOCOL_E_BUSY, "%s", err);
		return;
	}
	if (go_on && wait && svc->upgrade.active) {
		begin_wait(c, svc, WAIT_UPGRADE);
		return;
	}
	client_set_streaming(c, NULL);
	if (go_on && !svc->upgrade.active && svc->reason[0]) {
		reply_error(c, PROTOCOL_E_FAILED, "%s", svc->reason);
		return;
	}
	struct protocol_buf buf = {0};
	if (go_on && !svc->upgrade.active)
		record_upgrade_done(&buf, svc);
	else
		record_upgrade(&buf, svc, go_on ? "continued" : "aborted", number);
	reply_ok(c, &buf);
}

// The options of an upgrade: its canaries, its observation, its gate's words.
static int upgrade_options(struct client *c, const struct protocol_request *req,
	struct upgrade_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	if ((req->flags & FLAG_OBSERVE) && !(req->flags & FLAG_CANARY)) {
		reply_error(c, PROTOCOL_E_USAGE, "upgrade: --observe goes with --canary");
		return -1;
	}
	if ((req->flags & FLAG_CANARY) && req->values[VALUE_CANARY] == 0) {
		reply_error(c, PROTOCOL_E_USAGE, "upgrade: --canary takes 1 or more processes");
		return -1;
	}
	if ((req->argc > 1) != ((req->flags & FLAG_GATE) != 0)) {
		reply_error(c, PROTOCOL_E_USAGE, "usage: %s", protocol_verb_info(VERB_UPGRADE)->usage);
		return -1;
	}
	opts->canary = (unsigned)req->values[VALUE_CANARY];
	opts->observe = (double)req->values[VALUE_OBSERVE] / 1000;
	if (req->argc > 1) {
		opts->gate = (char **)&req->argv[1];
		opts->ngate = (size_t)req->argc - 1;
	}
	return 0;
}

static void cmd_upgrade(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *svc = find_service(d, c, req->argv[0]);
	if (!svc || refuse_while_stopping(d, c))
		return;
	if (req->flags & (FLAG_CONTINUE | FLAG_ABORT)) {
		upgrade_decision(d, c, svc, req);
		return;
	}
	struct upgrade_options opts;
	if (upgrade_options(c, req, &opts) < 0)
		return;
	struct service_conf *conf = reread(d, c, svc);
	if (!conf)
		return;
	bool wait = req->flags & FLAG_WAIT;
	char err[512];
	if (wait && !svc->upgrade.active)
		watch_begin(d->watch, c, svc);
	int rc = service_upgrade(svc, conf, &opts, err, sizeof(err));
	service_conf_unref(conf);
	if (rc == -2)
		log_warn("upgrade refused: %s", err);
	if (rc < 0 || !svc->upgrade.active) {
		client_set_streaming(c, NULL);
		// Refused, or ended at once: rolled back before any process could run.
		reply_error(c, rc == -1 ? PROTOCOL_E_BUSY : rc == -2 ? PROTOCOL_E_INVALID :
			PROTOCOL_E_FAILED, "%s", rc < 0 ? err : svc->reason);
		return;
	}
	if (wait) {
		begin_wait(c, svc, opts.canary ? WAIT_CANARY : WAIT_UPGRADE);
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
	watch_begin(d->watch, c, svc);
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
	if (reload_run(d, &buf) < 0) {
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
	reexec_run(d, c->io.fd, err, sizeof(err));
	reply_error(c, PROTOCOL_E_FAILED, "%s", err);
}

static void cmd_metrics(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	(void)req;
	struct protocol_buf buf = {0};
	metrics_render(d->metrics, &buf);
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
	protocol_record_str(&buf, "version", BATON_VERSION);
	protocol_record_int(&buf, "protocol", 1);
	protocol_record_end(&buf);
	reply_ok(c, &buf);
}

static void cmd_logs(struct daemon *d, struct client *c, const struct protocol_request *req)
{
	struct service *svc = NULL;
	char err[512];
	if (req->flags & FLAG_REOPEN) {
		if (req->argc > 0 || (req->flags & ~FLAG_REOPEN)) {
			reply_error(c, PROTOCOL_E_USAGE, "logs --reopen takes nothing else");
			return;
		}
		log_info("log files reopened, as a control client (pid %d) asked", (int)c->pid);
		struct protocol_buf none = {0};
		if (logs_reopen(d->logs, err, sizeof(err)) < 0)
			reply_error(c, PROTOCOL_E_FAILED, "%s", err);
		else
			reply_ok(c, &none);
		return;
	}
	if (req->argc > 0 && !(svc = find_service(d, c, req->argv[0])))
		return;
	struct logs_filter f = {(req->flags & FLAG_LINES) != 0, req->values[VALUE_LINES],
		req->values[VALUE_GEN], (pid_t)req->values[VALUE_PID]};
	logs_reply(d->logs, c, svc, &f, req->flags & FLAG_FOLLOW);
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
	[VERB_LOGS] = cmd_logs,
};

void command_run(struct command *cmd, struct client *c, const struct protocol_request *req)
{
	commands[req->verb](cmd->d, c, req);
}

/* ---- the waits ---- */

// The operation a client waits on is over: its reply, and its next request.
static void wait_over(struct client *c, const struct lifecycle_event *e)
{
	const struct service *svc = e->svc;
	enum wait wait = (enum wait)c->wait;
	if (wait == WAIT_CANARY && e->kind == LC_UPGRADE_OVER && e->ok)
		wait = WAIT_UPGRADE; // Done without a pause: every process was a canary.
	if ((wait == WAIT_UPGRADE && e->ok) || wait == WAIT_HASH) {
		// Its reply names what the new generation runs, hash included.
		c->wait = WAIT_HASH;
		if (svc->current && generation_hashing(svc->current))
			return;
	}
	c->wait = WAIT_NONE;
	c->waiting_on = NULL;
	client_set_streaming(c, NULL);
	if (wait != WAIT_HASH && !e->ok) {
		reply_error(c, PROTOCOL_E_FAILED, "%s", e->reason);
	} else if (wait == WAIT_CANARY) {
		struct protocol_buf buf = {0};
		record_upgrade(&buf, svc, "paused", svc->next ? svc->next->number : 0);
		reply_ok(c, &buf);
	} else if (wait == WAIT_STOP) {
		reply_service(c, svc);
	} else {
		struct protocol_buf buf = {0};
		record_upgrade_done(&buf, svc);
		reply_ok(c, &buf);
	}
	client_request_done(c);
}

static void check_wait(struct client *c, void *data)
{
	const struct lifecycle_event *e = data;
	if (c->waiting_on != e->svc)
		return;
	bool paused = e->kind == LC_UPGRADE && e->state == UPGRADE_PAUSED;
	if ((c->wait == WAIT_CANARY && (paused || e->kind == LC_UPGRADE_OVER)) ||
		(c->wait == WAIT_STOP && e->kind == LC_STOP_OVER) ||
		(c->wait == WAIT_UPGRADE && e->kind == LC_UPGRADE_OVER) ||
		(c->wait == WAIT_HASH && e->kind == LC_GEN_HASHED)) {
		struct lifecycle_event ok = *e;
		ok.ok = ok.ok || paused;
		wait_over(c, &ok);
	}
}

static void event_cb(struct daemon_subscriber *s, const struct lifecycle_event *e)
{
	struct command *cmd = container_of(s, struct command, sub);
	bool paused = e->kind == LC_UPGRADE && e->state == UPGRADE_PAUSED;
	if ((e->kind == LC_STOP_OVER || e->kind == LC_UPGRADE_OVER || e->kind == LC_GEN_HASHED ||
		    paused) && cmd->d->control)
		control_each_client(cmd->d->control, check_wait, (void *)e);
}

struct command *command_create(struct daemon *d)
{
	struct command *cmd = calloc(1, sizeof(*cmd));
	if (!cmd)
		return NULL;
	cmd->d = d;
	cmd->sub.event = event_cb;
	daemon_subscribe(d, &cmd->sub);
	return cmd;
}

void command_destroy(struct command *cmd)
{
	if (!cmd)
		return;
	daemon_unsubscribe(cmd->d, &cmd->sub);
	free(cmd);
}
