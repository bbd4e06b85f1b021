#include "state.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_record.h"
#include "control.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"
#include "logline.h"
#include "logs.h"
#include "notify_socket.h"
#include "protocol.h"

#define LISTENERS_TEXT (CONFIG_SOCKETS_MAX * 12)
// The kept lines a state carries, in all, as log_buffer counts them.
#define STATE_LOGS_MAX ((uint64_t)16 << 20)

// The distinct definitions in use, by id.
struct conf_ids {
	const struct service_conf **confs;
	size_t n;
	bool failed;
};

static size_t conf_id(struct conf_ids *ids, const struct service_conf *c)
{
	for (size_t i = 0; i < ids->n; i++) {
		if (ids->confs[i] == c)
			return i;
	}
	const struct service_conf **confs = realloc(ids->confs, (ids->n + 1) * sizeof(*confs));
	if (!confs) {
		ids->failed = true;
		return 0;
	}
	ids->confs = confs;
	confs[ids->n] = c;
	return ids->n++;
}

// Gives every definition in use an id, before anything refers to one.
static void collect_confs(struct daemon *d, struct conf_ids *ids)
{
	for (size_t i = 0; i < d->config->nservices; i++)
		conf_id(ids, d->config->services[i]);
	struct list *pos, *g;
	list_for_each(pos, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		conf_id(ids, svc->conf);
		list_for_each(g, &svc->gens)
			conf_id(ids, container_of(g, struct generation, link)->conf);
	}
}

static size_t listener_id(struct daemon *d, const struct listener *l)
{
	size_t i = 1;
	struct list *pos;
	list_for_each(pos, &d->listeners) {
		if (container_of(pos, struct listener, link) == l)
			return i;
		i++;
	}
	return 0;
}

static void put_time(struct protocol_buf *b, const char *key, double t)
{
	char v[64];
	snprintf(v, sizeof(v), "%.6f", t);
	protocol_record_str(b, key, v);
}

static void put_opt(struct protocol_buf *b, const char *key, const char *value)
{
	if (value)
		protocol_record_str(b, key, value);
}

static void write_daemon(struct protocol_buf *b, struct daemon *d, int reply_fd)
{
	protocol_record_begin(b, "daemon");
	put_opt(b, "config_path", d->config_path);
	put_opt(b, "control_path", d->control_path);
	protocol_record_int(b, "control_fd", control_fd(d->control));
	put_opt(b, "notify_path", d->notify_path);
	protocol_record_int(b, "notify_fd", notify_socket_fd(d->notify));
	put_time(b, "started", d->started);
	protocol_record_int(b, "wall_started", (long long)d->wall_started);
	protocol_record_int(b, "orphans", (long long)d->orphans);
	protocol_record_int(b, "single", d->single);
	protocol_record_int(b, "last_status", d->last_status);
	put_opt(b, "systemd_notify", d->systemd_notify);
	protocol_record_int(b, "reply_fd", reply_fd);
	protocol_record_int(b, "cgroup_created", d->cg->created);
	unsigned long unsaid, dropped = log_dropped(&unsaid);
	protocol_record_int(b, "log_dropped", (long long)dropped);
	protocol_record_int(b, "log_unsaid", (long long)unsaid);
	protocol_record_end(b);
}

static void write_listeners(struct protocol_buf *b, struct daemon *d)
{
	struct list *pos;
	list_for_each(pos, &d->listeners) {
		struct listener *l = container_of(pos, struct listener, link);
		protocol_record_begin(b, "listener");
		protocol_record_int(b, "id", (long long)listener_id(d, l));
		protocol_record_str(b, "name", l->name);
		protocol_record_str(b, "listen", l->listen);
		protocol_record_int(b, "backlog", l->backlog);
		protocol_record_int(b, "mode", l->mode);
		protocol_record_int(b, "uid", l->uid == (uid_t)-1 ? -1 : (long long)l->uid);
		protocol_record_int(b, "gid", l->gid == (gid_t)-1 ? -1 : (long long)l->gid);
		protocol_record_int(b, "fd", l->fd);
		protocol_record_str(b, "bound", l->bound);
		protocol_record_int(b, "users", l->users);
		protocol_record_int(b, "retired", l->retired);
		protocol_record_int(b, "unlink", l->unlink_on_close);
		protocol_record_end(b);
	}
}

// The unfinished line of a stream, before the process it is of.
static void write_pending(struct protocol_buf *b, const char *stream, const struct linebuf *lb)
{
	size_t len;
	bool dropping;
	const char *bytes = linebuf_pending(lb, &len, &dropping);
	if (!len && !dropping)
		return;
	protocol_record_begin(b, "pending");
	protocol_record_str(b, "stream", stream);
	protocol_record_int(b, "dropping", dropping);
	protocol_record_int(b, "length", (long long)len);
	protocol_record_end(b);
	protocol_buf_add(b, bytes, len);
	protocol_buf_add(b, "\n", 1);
}

static void write_proc(struct protocol_buf *b, const struct proc *p)
{
	write_pending(b, "out", &p->out.lines);
	write_pending(b, "err", &p->err.lines);
	protocol_record_begin(b, "proc");
	protocol_record_str(b, "service", p->gen->svc->name);
	protocol_record_int(b, "gen", p->gen->number);
	protocol_record_int(b, "instance", p->instance);
	protocol_record_int(b, "pid", p->pid);
	protocol_record_int(b, "sid", p->sid);
	protocol_record_int(b, "state", p->state);
	put_time(b, "spawned_at", p->spawned_at);
	put_time(b, "ready_at", p->ready_at);
	put_time(b, "stop_at", p->stop_at);
	put_time(b, "signalled_at", p->signalled_at);
	put_time(b, "kill_at", p->kill_at);
	put_time(b, "timer_at", proc_timer_at(p));
	protocol_record_int(b, "flags", p->exec_done | p->signalled << 1 | p->killed << 2 |
			p->killed_early << 3 | p->replace << 4 | p->probed << 5);
	protocol_record_int(b, "restarts", p->restarts);
	put_time(b, "backoff_delay", p->backoff.delay);
	put_time(b, "backoff_window", p->backoff.window_start);
	protocol_record_int(b, "backoff_count", p->backoff.count);
	protocol_record_int(b, "conns_at_kill", p->conns_at_kill);
	protocol_record_int(b, "exec_fd", p->exec_io.fd);
	protocol_record_int(b, "ready_fd", p->ready_io.fd);
	protocol_record_int(b, "out_fd", p->out.io.fd);
	protocol_record_int(b, "err_fd", p->err.io.fd);
	put_opt(b, "status", p->status_text);
	put_opt(b, "error", p->error);
	put_opt(b, "fail_reason", p->fail_reason);
	protocol_record_end(b);
}

// What a generation runs, as it pinned it: its environment first, a record
// a variable, before the generation's own.
static void write_pin_env(struct protocol_buf *b, const struct pin *pin)
{
	for (size_t i = 0; i < pin->nenv; i++) {
		protocol_record_begin(b, "pin_env");
		protocol_record_int(b, "length", (long long)strlen(pin->env[i]));
		protocol_record_end(b);
		protocol_buf_add(b, pin->env[i], strlen(pin->env[i]));
		protocol_buf_add(b, "\n", 1);
	}
}

static void write_pin(struct protocol_buf *b, const struct pin *pin)
{
	char v[64];
	protocol_record_int(b, "pin", 1);
	protocol_record_int(b, "exe_fd", pin->exe_fd);
	put_opt(b, "exe_path", pin->exe_path);
	protocol_record_int(b, "script", pin->script);
	snprintf(v, sizeof(v), "%llu:%llu:%lld.%09ld:%lld", (unsigned long long)pin->dev,
		(unsigned long long)pin->ino, (long long)pin->mtime.tv_sec, pin->mtime.tv_nsec,
		(long long)pin->size);
	protocol_record_str(b, "identity", v);
	put_opt(b, "pin_dir", pin->directory);
	put_opt(b, "hash", pin->hash[0] ? pin->hash : NULL);
}

// "fd,fd...": the pipes gen holds that the exec keeps open (reexec.c).
static void put_held(struct protocol_buf *b, const struct generation *gen)
{
	char text[STATE_HELD_MAX * 12] = "";
	size_t n = 0;
	for (size_t i = 0; i < gen->nheld && i < STATE_HELD_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%d", i ? "," : "",
			gen->held[i]);
	if (n)
		protocol_record_str(b, "held", text);
}

static void write_gen(struct protocol_buf *b, struct daemon *d, struct conf_ids *ids,
	const struct generation *gen)
{
	write_pin_env(b, &gen->pin);
	char listeners[LISTENERS_TEXT] = "";
	size_t n = 0;
	for (size_t i = 0; i < gen->conf->nsockets && n < sizeof(listeners); i++)
		n += (size_t)snprintf(listeners + n, sizeof(listeners) - n, "%s%zu", i ? "," : "",
			gen->listeners[i] ? listener_id(d, gen->listeners[i]) : 0);
	protocol_record_begin(b, "gen");
	protocol_record_str(b, "service", gen->svc->name);
	protocol_record_int(b, "number", gen->number);
	protocol_record_int(b, "role", gen->role);
	protocol_record_int(b, "conf", (long long)conf_id(ids, gen->conf));
	protocol_record_str(b, "listeners", n ? listeners : "-");
	put_time(b, "started_at", gen->started_at);
	put_time(b, "drain_at", gen->drain_at);
	protocol_record_int(b, "strays", gen->strays);
	protocol_record_int(b, "strays_flags", gen->strays_signalled | gen->strays_killed << 1);
	put_time(b, "strays_at", gen->strays_at);
	put_held(b, gen);
	write_pin(b, &gen->pin);
	protocol_record_end(b);
	struct list *pos;
	list_for_each(pos, &gen->procs)
		write_proc(b, container_of(pos, struct proc, link));
}

static void write_log_line(void *data, const struct logline *line)
{
	struct protocol_buf *b = data;
	// The time as it is, so that the new batond shows it rounded the same.
	char when[32];
	snprintf(when, sizeof(when), "%.17g", line->time);
	protocol_record_begin(b, "log_line");
	protocol_record_str(b, "time", when);
	protocol_record_int(b, "gen", line->gen);
	protocol_record_int(b, "pid", line->pid);
	protocol_record_int(b, "stream", line->stream);
	protocol_record_int(b, "cut", line->cut);
	protocol_record_int(b, "length", (long long)line->len);
	protocol_record_end(b);
	protocol_buf_add(b, line->text, line->len);
	protocol_buf_add(b, "\n", 1);
}

// What a service's output came to, and its newest kept lines within share.
static void write_logs(struct protocol_buf *b, struct daemon *d, const struct service *svc,
	size_t share)
{
	struct logs_counters n = logs_counters_of(d->logs, svc);
	if (!n.lines && !n.dropped)
		return;
	protocol_record_begin(b, "log_counters");
	protocol_record_int(b, "lines", (long long)n.lines);
	protocol_record_int(b, "bytes", (long long)n.bytes);
	protocol_record_int(b, "dropped", (long long)n.dropped);
	protocol_record_int(b, "cut", (long long)n.cut);
	protocol_record_int(b, "unsaid", (long long)n.unsaid);
	protocol_record_end(b);
	logs_each_kept(d->logs, svc, share, write_log_line, b);
}

// What each service's kept lines may take of STATE_LOGS_MAX: all of them
// when they fit, else a share in proportion to what they take.
static size_t logs_share(struct daemon *d, const struct service *svc, uint64_t total)
{
	uint64_t kept = logs_kept_bytes(d->logs, svc);
	return (size_t)(total <= STATE_LOGS_MAX ? kept : kept * STATE_LOGS_MAX / total);
}

static uint64_t logs_total(struct daemon *d)
{
	uint64_t total = 0;
	struct list *pos;
	list_for_each(pos, &d->services)
		total += logs_kept_bytes(d->logs, container_of(pos, struct service, link));
	return total;
}

static void write_service(struct protocol_buf *b, struct daemon *d, struct conf_ids *ids,
	const struct service *svc, uint64_t logs)
{
	protocol_record_begin(b, "service");
	protocol_record_str(b, "name", svc->name);
	protocol_record_int(b, "conf", (long long)conf_id(ids, svc->conf));
	protocol_record_int(b, "flags", svc->wanted | svc->failed << 1 | svc->removed << 2 |
			svc->start_when_empty << 3);
	protocol_record_int(b, "last_gen", svc->last_gen);
	protocol_record_int(b, "restarts", (long long)svc->restarts);
	protocol_record_int(b, "upgrades", (long long)svc->upgrades);
	protocol_record_int(b, "rollbacks", (long long)svc->rollbacks);
	protocol_record_int(b, "kills", (long long)svc->kills);
	protocol_record_int(b, "checks_ok", (long long)svc->checks_ok);
	protocol_record_int(b, "checks_failed", (long long)svc->checks_failed);
	protocol_record_int(b, "unhealthy", (long long)svc->unhealthy);
	protocol_record_int(b, "oom_kills", (long long)svc->oom_kills);
	put_opt(b, "reason", svc->reason[0] ? svc->reason : NULL);
	protocol_record_end(b);
	// Oldest generation first, so that the new batond rebuilds the same order.
	for (struct list *g = svc->gens.prev; g != &svc->gens; g = g->prev)
		write_gen(b, d, ids, container_of(g, struct generation, link));
	write_logs(b, d, svc, logs_share(d, svc, logs));
}

// The definitions, then which of them the running configuration has.
static void write_confs(struct protocol_buf *b, struct daemon *d, struct conf_ids *ids)
{
	for (size_t i = 0; i < ids->n; i++)
		conf_record_write_service(b, i, ids->confs[i]);
	for (size_t i = 0; i < d->config->nservices; i++) {
		protocol_record_begin(b, "config_service");
		protocol_record_int(b, "conf", (long long)conf_id(ids, d->config->services[i]));
		protocol_record_end(b);
	}
}

static int write_all(int fd, const struct protocol_buf *b)
{
	for (size_t off = 0; off < b->len;) {
		ssize_t n = write(fd, b->data + off, b->len - off);
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

int state_write(struct daemon *d, int fd, int reply_fd)
{
	struct protocol_buf b = {0};
	struct conf_ids ids = {0};
	collect_confs(d, &ids);
	protocol_buf_printf(&b, "baton-state %d\n", STATE_VERSION);
	write_daemon(&b, d, reply_fd);
	conf_record_write_config(&b, d->config);
	write_listeners(&b, d);
	write_confs(&b, d, &ids);
	uint64_t logs = logs_total(d);
	struct list *pos;
	list_for_each(pos, &d->services)
		write_service(&b, d, &ids, container_of(pos, struct service, link), logs);
	protocol_buf_printf(&b, "end\n");
	int rc = b.failed || ids.failed ? -1 : write_all(fd, &b);
	free(ids.confs);
	protocol_buf_finish(&b);
	return rc;
}
